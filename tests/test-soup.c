/* test-soup.c: the engine hosted in a libsoup 3 SoupServer
 * (engine_io_server_attach_soup()), over real loopback HTTP.
 *
 * The SoupServer runs in a thread of its own, with its own thread-default
 * main context; the test's blocking client (testutil) talks to it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libsoup/soup.h>
#include <engineio/engineio.h>
#include <engineio/engineio-soup.h>

#include "testutil.h"
#include "wsutil.h"

#define MAX_PAYLOAD 1000

typedef struct
{
  TestLoopback    lb;        /* served by a SoupServer instead of listening */

  GThread        *thread;
  GMainContext   *context;
  GMainLoop      *loop;
  SoupServer     *soup;
  GMutex          lock;
  GCond           cond;
  gboolean        ready;
  gboolean        attached;
  guint           baseline_fds;
} Fixture;

static gpointer
soup_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  GSList *uris;

  g_main_context_push_thread_default (f->context);
  f->soup = soup_server_new ("server-header", NULL, NULL);
  if (!engine_io_server_attach_soup (f->lb.server, f->soup, NULL, &error) ||
      !soup_server_listen_local (f->soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error))
    g_test_fail_printf ("attach/listen: %s", error->message);
  else
    {
      uris = soup_server_get_uris (f->soup);
      if (uris != NULL)
        f->lb.port = (guint) g_uri_get_port (uris->data);
      g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
      f->attached = TRUE;
    }
  g_mutex_lock (&f->lock);
  f->ready = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);

  g_main_loop_run (f->loop);

  if (f->attached)
    engine_io_server_detach_soup (f->lb.server, f->soup);
  soup_server_disconnect (f->soup);
  g_clear_object (&f->soup);
  /* What the disconnection queued (the requests' ends). */
  while (g_main_context_iteration (f->context, FALSE))
    ;
  g_main_context_pop_thread_default (f->context);
  return NULL;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->baseline_fds = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_ECHO;
  g_object_set (f->lb.server, "max-payload", (guint64) MAX_PAYLOAD, "connection-timeout", 1u, NULL);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->context = g_main_context_new ();
  f->loop = g_main_loop_new (f->context, FALSE);
  f->thread = g_thread_new ("soup-server", soup_thread, f);
  g_mutex_lock (&f->lock);
  while (!f->ready)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  f->lb.http = test_http_new (f->lb.port);
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->lb.http, test_http_free);
  engine_io_server_close (f->lb.server);
  /* The SoupServer's thread detaches the server before it is freed. */
  g_main_context_invoke (f->context, quit_loop, f->loop);
  g_thread_join (f->thread);
  test_loopback_clear (&f->lb);
  g_main_loop_unref (f->loop);
  g_main_context_unref (f->context);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
  /* Nothing of the connections is left (sockets, stolen streams). */
  g_assert_cmpuint (test_wait_count_at_most (test_count_fds, f->baseline_fds, TEST_TIMEOUT_MS), <=,
                    f->baseline_fds);
  test_log_check ();
}

/* A polling handshake; returns the sid. */
static char *
handshake (Fixture *f)
{
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (f->lb.http, 4);

  test_require_val (open != NULL, NULL);
  g_assert_cmpint (open->max_payload, ==, MAX_PAYLOAD);
  return g_strdup (open->sid);
}

static void
test_roundtrip (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autofree char *event = NULL;

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  post = test_http_post (f->lb.http, target, TEST_S ("4hello"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  g_assert_true (test_response_body_equal (post, TEST_S ("ok")));
  event = g_strdup_printf ("message %s hello", sid);
  g_assert_true (test_recorder_wait (f->lb.events, event, TEST_TIMEOUT_MS));
  /* The echo, on a poll (it may wait for it: a long poll paused in libsoup). */
  poll = test_http_get (f->lb.http, target);
  test_require (poll != NULL);
  g_assert_cmpuint (poll->status, ==, 200);
  g_assert_true (test_response_body_equal (poll, TEST_S ("4hello")));
}

/* A poll that waits (paused) until a message comes from another thread:
 * resume() is marshalled to the SoupServer's context. */
static void
test_long_poll (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autoptr(TestHttp) other = test_http_new (f->lb.port);
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(GError) error = NULL;

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  g_assert_true (test_http_send (f->lb.http, "GET", target, NULL, NULL, -1, &error));
  g_assert_no_error (error);
  /* Held: nothing to send yet. */
  g_assert_false (test_http_wait_readable (f->lb.http, 200));
  post = test_http_post (other, target, TEST_S ("4ping-pong"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  poll = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  g_assert_cmpuint (poll->status, ==, 200);
  g_assert_true (test_response_body_equal (poll, TEST_S ("4ping-pong")));
}

/* max-payload, by Content-Length: 413 (the session goes on). */
static void
test_max_payload_length (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autofree char *big = NULL;
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) post = NULL;

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  big = g_strnfill (MAX_PAYLOAD + 1, 'x');
  big[0] = '4';
  refused = test_http_post (f->lb.http, target, big, MAX_PAYLOAD + 1);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 413);
  post = test_http_post (f->lb.http, target, TEST_S ("4small"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
}

/* max-payload, chunked: refused as the chunks pass it, never kept. */
static void
test_max_payload_chunked (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autoptr(GString) body = g_string_new (NULL);
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(GError) error = NULL;
  const char *const headers[] = { "Transfer-Encoding", "chunked", NULL };

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  /* Four chunks of 400 bytes: 1600 in all. */
  for (int i = 0; i < 4; i++)
    {
      g_autofree char *chunk = g_strnfill (400, i == 0 ? '4' : 'y');
      g_string_append_printf (body, "%x\r\n%s\r\n", 400, chunk);
    }
  g_string_append (body, "0\r\n\r\n");
  g_assert_true (test_http_send (f->lb.http, "POST", target, headers, body->str, (gssize) body->len, &error));
  g_assert_no_error (error);
  refused = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 413);
  post = test_http_post (f->lb.http, target, TEST_S ("4small"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
}

/* A chunked body that goes on far past max-payload: its connection is
 * shut down (not read for ever, never kept). */
static void
test_max_payload_endless (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autofree char *head = NULL;
  g_autofree char *chunk = g_strnfill (16384, 'z');
  g_autofree char *framed = NULL;
  g_autoptr(GError) error = NULL;
  gboolean failed = FALSE;

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", target);
  framed = g_strdup_printf ("%x\r\n%s\r\n", 16384, chunk);
  g_assert_true (test_http_send_raw (f->lb.http, head, strlen (head), &error));
  /* 4 MiB at most: the server gives up after about 1 MiB. */
  for (int i = 0; i < 256 && !failed; i++)
    {
      if (!test_http_send_raw (f->lb.http, framed, strlen (framed), NULL))
        failed = TRUE;
    }
  if (!failed)
    {
      g_autoptr(TestResponse) response = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL);
      /* Whatever came (an error status), the connection ends. */
      g_assert_true (response == NULL || response->status >= 400);
    }
  g_assert_true (failed || test_http_wait_readable (f->lb.http, TEST_TIMEOUT_MS));
}

/* An oversized Content-Length with `Expect: 100-continue`: 413 at once,
 * before a byte of the body is sent (refused at the head). */
static void
test_max_payload_expect (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = NULL;
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(GError) error = NULL;

  test_require (sid != NULL);
  head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nContent-Length: 100000000\r\n"
                          "Expect: 100-continue\r\n\r\n", sid);
  g_assert_true (test_http_send_raw (f->lb.http, head, strlen (head), &error));
  g_assert_no_error (error);
  refused = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 413);
}

/* An oversized Content-Length whose body does come: read and dropped up
 * to a bound, then the connection is shut down (never buffered, never
 * read for ever). */
static void
test_max_payload_length_endless (Fixture       *f,
                                 gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = NULL;
  g_autofree char *block = g_strnfill (65536, 'q');
  g_autoptr(GError) error = NULL;
  gboolean failed = FALSE;

  test_require (sid != NULL);
  head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n", sid);
  g_assert_true (test_http_send_raw (f->lb.http, head, strlen (head), &error));
  for (int i = 0; i < 64 && !failed; i++)  /* 4 MiB at most */
    if (!test_http_send_raw (f->lb.http, block, 65536, NULL))
      failed = TRUE;
  /* Shut down: the end of the stream (after a response, or none). */
  g_assert_true (failed || test_http_wait_readable (f->lb.http, TEST_TIMEOUT_MS));
  if (!failed)
    {
      g_autoptr(TestResponse) response = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL);
      g_assert_true (response == NULL || response->status >= 400);
    }
}

/* A POST body trickled in (half of it, then nothing): the connection is
 * shut down after connection-timeout (1 s here), instead of holding the
 * body's memory for as long as the client likes. */
static void
test_body_deadline (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  test_require (sid != NULL);
  head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                          "Host: 127.0.0.1\r\nContent-Length: 10\r\n\r\n4hel", sid);
  start = g_get_monotonic_time ();
  g_assert_true (test_http_send_raw (f->lb.http, head, strlen (head), &error));
  g_assert_no_error (error);
  /* Nothing before the deadline... */
  g_assert_false (test_http_wait_readable (f->lb.http, 500));
  /* ... then the end of the connection (whatever comes first). */
  g_assert_true (test_http_wait_readable (f->lb.http, TEST_TIMEOUT_MS));
  g_assert_cmpint (g_get_monotonic_time () - start, >=, G_USEC_PER_SEC);
  g_assert_null (test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL));
}

/* The client of a waiting poll closes its connection: the session ends
 * at once (`transport close`), nothing leaks (the teardown counts the
 * descriptors). */
static void
test_poll_client_gone (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *target = NULL;
  g_autofree char *event = NULL;
  g_autoptr(GError) error = NULL;

  test_require (sid != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  g_assert_true (test_http_send (f->lb.http, "GET", target, NULL, NULL, -1, &error));
  g_assert_no_error (error);
  g_assert_false (test_http_wait_readable (f->lb.http, 200));
  test_http_drop (f->lb.http, FALSE);
  event = g_strdup_printf ("close %s transport close", sid);
  g_assert_true (test_recorder_wait (f->lb.events, event, TEST_TIMEOUT_MS));
}

/* After detach, the path is the SoupServer's again (404); a session
 * made before ends with the server. */
static gboolean
detach_in_context (gpointer data)
{
  Fixture *f = data;

  engine_io_server_detach_soup (f->lb.server, f->soup);
  g_mutex_lock (&f->lock);
  f->attached = FALSE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
  return G_SOURCE_REMOVE;
}

static void
test_detach (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autoptr(TestResponse) response = NULL;

  test_require (sid != NULL);
  g_main_context_invoke (f->context, detach_in_context, f);
  g_mutex_lock (&f->lock);
  while (f->attached)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  response = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling");
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 404);
}

/* Attach errors: a path that is not the server's; twice. */
static void
test_attach_errors (void)
{
  g_autoptr(EngineIOServer) server = g_object_new (ENGINE_IO_TYPE_SERVER, NULL);
  g_autoptr(SoupServer) soup = soup_server_new (NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (engine_io_server_attach_soup (server, soup, "/elsewhere/", &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (engine_io_server_attach_soup (server, soup, "/engine.io", &error));
  g_assert_no_error (error);
  g_assert_false (engine_io_server_attach_soup (server, soup, NULL, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  engine_io_server_detach_soup (server, soup);
  engine_io_server_detach_soup (server, soup);  /* nothing: not attached */
  engine_io_server_close (server);
}

/* The close of a polling session the application closed, on this host:
 * its linger (2 s), its last poll, and the bound on that poll's write
 * (connection-timeout, 1 s here, after the linger). */
typedef enum
{
  CLOSE_LAST_POLL,    /* the last poll comes within the linger and is read */
  CLOSE_NO_POLL,      /* no poll comes */
  CLOSE_POLL_UNREAD,  /* the last poll (6 MiB) comes and is never read */
} CloseCase;

typedef struct
{
  int sent;    /* (atomic) */
  int unsent;  /* (atomic) */
} CloseCounts;

static void
close_on_sent (EngineIOSocket *socket,
               gboolean        flushed,
               gpointer        user_data)
{
  CloseCounts *counts = user_data;

  g_atomic_int_inc (flushed ? &counts->sent : &counts->unsent);
}

#define CLOSE_BIG_MESSAGES 6
#define CLOSE_BIG_SIZE (1024 * 1024)

static void
test_close_linger (Fixture       *f,
                   gconstpointer  data)
{
  CloseCase c = GPOINTER_TO_INT (data);
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *event = NULL;
  g_autofree char *text = NULL;
  g_autoptr(EngineIOSocket) session = NULL;
  g_autoptr(GError) error = NULL;
  CloseCounts counts = { 0, 0 };
  guint n = c == CLOSE_POLL_UNREAD ? CLOSE_BIG_MESSAGES : 1;
  gint64 start, took_ms;
  int fd = -1;

  f->lb.keep_sockets = TRUE;
  sid = handshake (f);
  test_require (sid != NULL);
  session = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
  test_require (session != NULL);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  event = g_strdup_printf ("close %s forced close", sid);

  if (c == CLOSE_POLL_UNREAD)
    {
      text = g_malloc (CLOSE_BIG_SIZE + 1);
      memset (text, 'x', CLOSE_BIG_SIZE);
      text[CLOSE_BIG_SIZE] = '\0';
    }
  for (guint i = 0; i < n; i++)
    {
      g_assert_true (engine_io_socket_send_text_full (session, text != NULL ? text : "m", close_on_sent, &counts,
                                                      NULL, &error));
      g_assert_no_error (error);
    }
  engine_io_socket_close (session);
  start = g_get_monotonic_time ();

  if (c == CLOSE_LAST_POLL)
    {
      g_autoptr(TestResponse) poll = NULL;

      g_usleep (200 * 1000);
      poll = test_http_get (f->lb.http, target);
      test_require (poll != NULL);
      g_assert_cmpuint (poll->status, ==, 200);
      g_assert_true (test_response_body_equal (poll, TEST_S ("4m\x1e" "1")));
    }
  else if (c == CLOSE_POLL_UNREAD)
    {
      g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
      struct sockaddr_in address = { 0 };
      int size = 4096;

      g_usleep (200 * 1000);
      fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_assert_cmpint (fd, >=, 0);
      setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      address.sin_family = AF_INET;
      address.sin_port = htons ((guint16) f->lb.port);
      address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      g_assert_cmpint (connect (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
      g_assert_cmpint (write (fd, request, strlen (request)), ==, (gssize) strlen (request));
    }

  g_assert_true (test_recorder_wait (f->lb.events, event, 8000));
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("::close %" G_GINT64_FORMAT " ms after the close", took_ms);
  for (guint i = 0; i < 300 && g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent) < (int) n; i++)
    g_usleep (10 * 1000);
  g_usleep (50 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent), ==, n);
  switch (c)
    {
    case CLOSE_LAST_POLL:
      g_assert_cmpint (took_ms, <, 1500);  /* with the poll's end, not the linger's */
      g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
      break;
    case CLOSE_NO_POLL:
      g_assert_cmpint (took_ms, >=, 1900);  /* the linger, 2 s */
      g_assert_cmpint (took_ms, <, 3500);
      g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);
      break;
    case CLOSE_POLL_UNREAD:
      g_assert_cmpint (took_ms, >=, 2900);  /* the linger, then connection-timeout */
      g_assert_cmpint (took_ms, <, 5000);
      g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, CLOSE_BIG_MESSAGES);
      break;
    }
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 1);
  if (fd >= 0)
    close (fd);
}

static void
test_close_blocked_in_handshake (Fixture       *f,
                                 gconstpointer  data)
{
  const char *where = data;
  gboolean websocket = g_str_equal (where, "connection-websocket");
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(GError) error = NULL;
  TestBlocker b;

  test_blocker_init (&b);
  if (websocket)
    g_signal_connect (f->lb.server, "connection", G_CALLBACK (test_blocker_on_connection), &b);
  else
    engine_io_server_set_admission_func (f->lb.server, test_blocker_admission, &b, NULL);
  if (websocket)
    {
      g_autofree char *key = test_ws_make_key ();
      g_autofree char *head = g_strdup_printf ("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                                               "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                               key);

      g_assert_true (test_http_send_raw (f->lb.http, head, strlen (head), &error));
    }
  else
    g_assert_true (test_http_send (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, -1, &error));
  g_assert_no_error (error);
  test_require (test_blocker_wait_entered (&b, TEST_TIMEOUT_MS));

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  engine_io_server_close (f->lb.server);
  answer = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  g_assert_cmpuint (answer->status, ==, 503);
  test_blocker_release (&b);
  g_assert_true (test_blocker_wait_returned (&b, TEST_TIMEOUT_MS));
  if (websocket)
    g_assert_true (test_blocker_wait_finalized (&b, TEST_TIMEOUT_MS));
  test_blocker_clear (&b);
}

#define ADD(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  (void) g_main_context_default ();
  /* What libsoup loads once (GIO modules): before any descriptor count. */
  g_object_unref (soup_server_new (NULL, NULL));

  ADD ("/soup/polling/roundtrip", test_roundtrip);
  ADD ("/soup/polling/long-poll", test_long_poll);
  ADD ("/soup/polling/client-gone", test_poll_client_gone);
  ADD ("/soup/max-payload/content-length", test_max_payload_length);
  ADD ("/soup/max-payload/chunked", test_max_payload_chunked);
  ADD ("/soup/max-payload/endless", test_max_payload_endless);
  ADD ("/soup/max-payload/expect-continue", test_max_payload_expect);
  ADD ("/soup/max-payload/length-endless", test_max_payload_length_endless);
  ADD ("/soup/body-deadline", test_body_deadline);
  ADD ("/soup/detach", test_detach);
  g_test_add ("/soup/close/last-poll", Fixture, GINT_TO_POINTER (CLOSE_LAST_POLL), fixture_setup,
              test_close_linger, fixture_teardown);
  g_test_add ("/soup/close/no-poll", Fixture, GINT_TO_POINTER (CLOSE_NO_POLL), fixture_setup,
              test_close_linger, fixture_teardown);
  g_test_add ("/soup/close/poll-unread", Fixture, GINT_TO_POINTER (CLOSE_POLL_UNREAD), fixture_setup,
              test_close_linger, fixture_teardown);
  g_test_add ("/soup/close/blocked-in-handshake/admission", Fixture, "admission", fixture_setup,
              test_close_blocked_in_handshake, fixture_teardown);
  g_test_add ("/soup/close/blocked-in-handshake/connection-websocket", Fixture, "connection-websocket",
              fixture_setup, test_close_blocked_in_handshake, fixture_teardown);
  g_test_add_func ("/soup/attach-errors", test_attach_errors);
  return g_test_run ();
}
