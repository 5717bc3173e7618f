/* test-soup-attack.c: an attacker against the libsoup 3 host
 * (engine_io_server_attach_soup(), src/adapters/engineio-soup.c), over
 * real loopback TCP, compared with what the libmicrohttpd host bounds.
 *
 * The SoupServer runs in a thread of its own with its own thread-default
 * context (as in tests/test-soup.c); clients are raw sockets. Every case
 * ends with the process's descriptors back at their baseline (paused
 * messages, watched sockets and stolen connections all released), and a
 * fresh client still served.
 *
 * - content-length-over, chunked-over, chunked-endless, trickled-body:
 *   POST bodies past max-payload, or never finished;
 * - vanishing-polls: waiting polls whose clients reset or half-close;
 * - pipelined-behind-poll: requests pipelined behind a waiting poll, then
 *   the client goes;
 * - overlapping-posts: a POST while another one's body is coming;
 * - upgrade-bad-key, upgrade-extra-bytes, upgrade-twice,
 *   upgrade-client-gone: WebSocket upgrades that are wrong, carry frames
 *   right behind their head, come twice, or whose client goes at once;
 * - http10: HTTP/1.0 clients;
 * - huge-head, many-query-params: heads libsoup reads without a bound of
 *   its own;
 * - unref-while-paused, close-while-paused: the SoupServer dropped, or
 *   the engine closed, while polls wait and bodies come.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libsoup/soup.h>
#include <engineio/engineio-soup.h>

#include "relutil.h"
#include "testutil.h"

#define MAX_PAYLOAD 1000

typedef struct
{
  EngineIOServer *server;
  TestRecorder   *events;
  guint           port;

  GThread        *thread;
  GMainContext   *context;
  GMainLoop      *loop;
  SoupServer     *soup;
  GMutex          lock;
  GCond           cond;
  gboolean        ready;
  gboolean        attached;
  gboolean        dropped;      /* the SoupServer is gone already */
  gboolean        tls;          /* the SoupServer serves HTTPS (the wss-* cases) */
  GIOStream      *kept;         /* a client connection kept open through the teardown */
  guint           baseline_fds;
} Fixture;

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  Fixture *f = user_data;

  if (text != NULL && strcmp (text, "flood") == 0)
    {
      /* 16 MiB for a client that will not read them (wss-stalled-reader):
       * more than the TCP buffers on the way take. */
      g_autofree char *big = g_strnfill (65536, 'f');

      test_recorder_add (f->events, "message %s", text);
      for (guint i = 0; i < 256; i++)
        engine_io_socket_send_text (socket, big, NULL);
    }
  else if (text != NULL)
    {
      test_recorder_add (f->events, "message %s", text);
      engine_io_socket_send_text (socket, text, NULL);
    }
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  Fixture *f = user_data;

  test_recorder_add (f->events, "close %s %s", engine_io_socket_get_id (socket),
                     engine_io_close_reason_to_string (reason));
}

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;

  test_recorder_add (f->events, "connection %s", engine_io_socket_get_id (socket));
  g_signal_connect (socket, "message", G_CALLBACK (on_message), f);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), f);
}

static gpointer
soup_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  GSList *uris;

  g_main_context_push_thread_default (f->context);
  if (f->tls)
    {
      g_autoptr(GTlsCertificate) certificate = test_tls_certificate_new (&error);

      g_assert_no_error (error);
      f->soup = soup_server_new ("server-header", NULL, "tls-certificate", certificate, NULL);
    }
  else
    f->soup = soup_server_new ("server-header", NULL, NULL);
  if (!engine_io_server_attach_soup (f->server, f->soup, NULL, &error) ||
      !soup_server_listen_local (f->soup, 0, SOUP_SERVER_LISTEN_IPV4_ONLY |
                                 (f->tls ? SOUP_SERVER_LISTEN_HTTPS : 0), &error))
    g_test_fail_printf ("attach/listen: %s", error->message);
  else
    {
      uris = soup_server_get_uris (f->soup);
      if (uris != NULL)
        f->port = (guint) g_uri_get_port (uris->data);
      g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
      f->attached = TRUE;
    }
  g_mutex_lock (&f->lock);
  f->ready = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);

  g_main_loop_run (f->loop);

  if (f->soup != NULL)
    {
      if (f->attached)
        engine_io_server_detach_soup (f->server, f->soup);
      soup_server_disconnect (f->soup);
      g_clear_object (&f->soup);
    }
  while (g_main_context_iteration (f->context, FALSE))
    ;
  g_main_context_pop_thread_default (f->context);
  return NULL;
}

/* The fixture data of the wss-* cases: a TLS SoupServer. */
static const int tls_marker = 1;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->baseline_fds = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);
  f->tls = data == &tls_marker;
  f->events = test_recorder_new ();
  f->server = test_server_new ();
  g_object_set (f->server, "max-payload", (guint64) MAX_PAYLOAD, "connection-timeout", 2u,
                "ping-interval", 20000u, "ping-timeout", 20000u, NULL);
  g_signal_connect (f->server, "connection", G_CALLBACK (on_connection), f);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->context = g_main_context_new ();
  f->loop = g_main_loop_new (f->context, FALSE);
  f->thread = g_thread_new ("soup-server", soup_thread, f);
  g_mutex_lock (&f->lock);
  while (!f->ready)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
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
  engine_io_server_close (f->server);
  g_main_context_invoke (f->context, quit_loop, f->loop);
  g_thread_join (f->thread);
  g_clear_object (&f->server);
  g_main_loop_unref (f->loop);
  g_main_context_unref (f->context);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
  test_recorder_free (f->events);
  if (test_wait_count_at_most (test_count_fds, f->baseline_fds + (f->kept != NULL),
                               TEST_TIMEOUT_MS) > f->baseline_fds + (f->kept != NULL))
    {
      rel_resources_dump_fds ();
      g_test_fail_printf ("descriptors: %u, %u before%s", test_count_fds (), f->baseline_fds,
                          f->kept != NULL ? " and the client's kept" : "");
    }
  if (f->kept != NULL)
    {
      g_io_stream_close (f->kept, NULL, NULL);
      g_clear_object (&f->kept);
    }
}

/* Raw HTTP */

static int
connect_or_fail (Fixture *f)
{
  int fd = rel_tcp_connect (f->port);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

static gboolean
send_text (int         fd,
           const char *text)
{
  return rel_tcp_send (fd, text, strlen (text));
}

/* Reads until @len bytes, EOF or @timeout_ms; appends to @out. */
static void
read_some (int         fd,
           GByteArray *out,
           gsize       len,
           guint       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (out->len < len)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      char buffer[16384];
      ssize_t n;

      if (left <= 0 || poll (&p, 1, (int) left) <= 0)
        return;
      n = recv (fd, buffer, MIN (sizeof buffer, len - out->len), 0);
      if (n <= 0)
        return;
      g_byte_array_append (out, (guint8 *) buffer, (guint) n);
    }
}

/* Reads one response head (and up to a few bytes after it). */
static char *
read_head (int   fd,
           guint timeout_ms)
{
  GString *got = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (strstr (got->str, "\r\n\r\n") == NULL)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      char byte;

      if (left <= 0 || poll (&p, 1, (int) left) <= 0 || recv (fd, &byte, 1, 0) != 1)
        break;
      g_string_append_c (got, byte);
    }
  return g_string_free (got, FALSE);
}

static guint
status_of (const char *head)
{
  guint status = 0;

  if (sscanf (head, "HTTP/1.%*d %u", &status) != 1)
    return 0;
  return status;
}

static gsize
content_length_of (const char *head)
{
  const char *p = strstr (head, "Content-Length: ");

  if (p == NULL)
    p = strstr (head, "content-length: ");
  return p != NULL ? (gsize) g_ascii_strtoull (p + 16, NULL, 10) : 0;
}

/* One response on @fd: its status, its body in @body if given. */
static guint
read_response (int    fd,
               char **body,
               guint  timeout_ms)
{
  g_autofree char *head = read_head (fd, timeout_ms);
  g_autoptr(GByteArray) got = g_byte_array_new ();
  gsize length = content_length_of (head);

  read_some (fd, got, length, timeout_ms);
  g_byte_array_append (got, (guint8 *) "", 1);
  if (body != NULL)
    *body = g_strdup ((char *) got->data);
  return status_of (head);
}

/* A handshake on a connection of its own; the sid. */
static char *
handshake (Fixture *f)
{
  int fd = connect_or_fail (f);
  g_autofree char *body = NULL;
  const char *p, *end;
  guint status;

  send_text (fd, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n");
  status = read_response (fd, &body, TEST_TIMEOUT_MS);
  close (fd);
  g_assert_cmpuint (status, ==, 200);
  p = strstr (body, "\"sid\":\"");
  g_assert_nonnull (p);
  p += 7;
  end = strchr (p, '"');
  g_assert_nonnull (end);
  return g_strndup (p, (gsize) (end - p));
}

static char *
poll_head (const char *sid)
{
  return g_strdup_printf ("GET /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n", sid);
}

/* A fresh client is served: handshake, POST, poll echo. */
static void
assert_served (Fixture *f)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *post = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                           "Host: x\r\nContent-Length: 6\r\n\r\n4alive", sid);
  g_autofree char *get = poll_head (sid);
  g_autofree char *body = NULL;
  int fd = connect_or_fail (f);

  send_text (fd, post);
  g_assert_cmpuint (read_response (fd, &body, TEST_TIMEOUT_MS), ==, 200);
  g_assert_cmpstr (body, ==, "ok");
  g_clear_pointer (&body, g_free);
  send_text (fd, get);
  g_assert_cmpuint (read_response (fd, &body, TEST_TIMEOUT_MS), ==, 200);
  g_assert_cmpstr (body, ==, "4alive");
  close (fd);
}

static gboolean
wait_event (Fixture    *f,
            const char *event)
{
  if (test_recorder_wait (f->events, event, TEST_TIMEOUT_MS))
    return TRUE;
  {
    g_auto(GStrv) events = test_recorder_dup (f->events);

    for (guint i = 0; events[i] != NULL; i++)
      g_test_message ("event: %.80s", events[i]);
  }
  return FALSE;
}

/* Cases */

/* Content-Length past max-payload: 413 at the head (the body is not
 * read); sent anyway, the connection is not kept reading it for ever. */
static void
test_content_length_over (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                           "Host: x\r\nContent-Length: 100000000\r\n\r\n", sid);
  g_autofree char *block = g_malloc0 (65536);
  g_autoptr(GByteArray) got = g_byte_array_new ();
  int fd = connect_or_fail (f);
  guint i;

  gint64 start = g_get_monotonic_time ();

  send_text (fd, head);
  for (i = 0; i < 1600; i++)
    if (!rel_tcp_send (fd, block, 65536))
      break;
  /* Not the whole 100 MB: the connection was closed past 1 MiB... */
  g_assert_cmpuint (i, <, 1600);
  g_assert_true (rel_tcp_wait_closed (fd, TEST_TIMEOUT_MS, got));
  /* ... at once (libsoup kept a shut-down connection reading, or held
   * it for ~100 s), ... */
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) test_scaled_ms (3000) * 1000);
  /* ... after its answer (given at the head: written before the close). */
  g_byte_array_append (got, (guint8 *) "", 1);
  g_assert_true (g_str_has_prefix ((char *) got->data, "HTTP/1.1 413 "));
  close (fd);
  assert_served (f);
}

/* A chunked body past max-payload: 413 at its end (or the connection
 * shut down), never accumulated. */
static void
test_chunked_over (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                           "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", sid);
  int fd = connect_or_fail (f);
  g_autofree char *chunk = NULL;
  g_autofree char *filler = g_strnfill (600, 'a');

  send_text (fd, head);
  chunk = g_strdup_printf ("258\r\n%s\r\n", filler);  /* 600 bytes */
  send_text (fd, chunk);
  send_text (fd, chunk);
  send_text (fd, "0\r\n\r\n");
  g_assert_cmpuint (read_response (fd, NULL, TEST_TIMEOUT_MS), ==, 413);
  close (fd);
  assert_served (f);
}

/* A chunked body without end on a path nobody keeps: shut down past the
 * bound, not read for ever. */
static void
test_chunked_endless (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                           "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n", sid);
  g_autofree char *filler = g_strnfill (65536, 'a');
  g_autofree char *chunk = g_strdup_printf ("10000\r\n%s\r\n", filler);
  int fd = connect_or_fail (f);
  guint i;

  gint64 start = g_get_monotonic_time ();

  send_text (fd, head);
  for (i = 0; i < 1600; i++)
    if (!send_text (fd, chunk))
      break;
  g_assert_cmpuint (i, <, 1600);
  g_assert_true (rel_tcp_wait_closed (fd, TEST_TIMEOUT_MS, NULL));
  /* At once (see content-length-over). */
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) test_scaled_ms (3000) * 1000);
  close (fd);
  assert_served (f);
}

/* A body trickled, never finished: the connection is shut down after
 * connection-timeout (2 s here). */
static void
test_trickled_body (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                           "Host: x\r\nContent-Length: 500\r\n\r\n4", sid);
  int fd = connect_or_fail (f);
  gint64 start = g_get_monotonic_time ();
  gboolean closed = FALSE;

  send_text (fd, head);
  while (!closed && g_get_monotonic_time () - start < 10 * G_USEC_PER_SEC)
    {
      if (!send_text (fd, "a"))
        closed = TRUE;
      else
        closed = rel_tcp_wait_closed (fd, 200, NULL);
    }
  g_assert_true (closed);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 6 * G_USEC_PER_SEC);
  close (fd);
  assert_served (f);
}

/* Waiting polls whose clients go (half the clients reset, half
 * half-close): each session ends (`transport close`) at once, and every
 * paused message, watch and descriptor is given back. */
static void
test_vanishing_polls (Fixture       *f,
                      gconstpointer  data)
{
  enum { N = 40 };
  int fds[N];
  char *sids[N];
  guint i;

  for (i = 0; i < N; i++)
    {
      g_autofree char *get = NULL;

      sids[i] = handshake (f);
      get = poll_head (sids[i]);
      fds[i] = connect_or_fail (f);
      send_text (fds[i], get);
    }
  /* Every poll is waiting (none answered). */
  for (i = 0; i < N; i++)
    {
      struct pollfd p = { .fd = fds[i], .events = POLLIN };

      g_assert_cmpint (poll (&p, 1, 0), ==, 0);
    }
  for (i = 0; i < N; i++)
    {
      if (i % 2 == 0)
        rel_tcp_reset (fds[i]);
      else
        shutdown (fds[i], SHUT_WR);
    }
  for (i = 0; i < N; i++)
    {
      g_autofree char *event = g_strdup_printf ("close %s transport close", sids[i]);

      g_assert_true (wait_event (f, event));
    }
  for (i = 0; i < N; i++)
    {
      if (i % 2 == 1)
        {
          g_assert_true (rel_tcp_wait_closed (fds[i], TEST_TIMEOUT_MS, NULL));
          close (fds[i]);
        }
      g_free (sids[i]);
    }
  assert_served (f);
}

/* Polls pipelined behind a waiting poll on one keep-alive connection
 * (libsoup reads none of them while the first one waits), then the
 * client resets the connection: the session ends (`transport close`)
 * at once, as when no bytes were pipelined, not at the next heartbeat
 * (the watch of the waiting poll stopped at the pipelined bytes). */
static void
test_pipelined_behind_poll (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *get = poll_head (sid);
  g_autofree char *two = g_strconcat (get, get, NULL);
  g_autofree char *prefix = g_strdup_printf ("close %s", sid);
  g_autofree char *event = g_strdup_printf ("close %s transport close", sid);
  int fd = connect_or_fail (f);

  /* The first poll waits (it is paused and watched), then two more come
   * behind it (a client must not pipeline polls; libsoup does not read
   * them while the first one waits). */
  send_text (fd, get);
  g_assert_false (test_recorder_wait_count (f->events, prefix, 1, test_scaled_ms (300)));
  send_text (fd, two);
  g_assert_false (test_recorder_wait_count (f->events, prefix, 1, test_scaled_ms (300)));
  rel_tcp_reset (fd);
  g_assert_true (wait_event (f, event));
  assert_served (f);
}

/* A POST while another POST's body is still coming: the second is
 * refused 400 and the session ends (as the libmicrohttpd host does). */
static void
test_overlapping_posts (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *first = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                            "Host: x\r\nContent-Length: 10\r\n\r\n4he", sid);
  g_autofree char *second = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                             "Host: x\r\nContent-Length: 6\r\n\r\n4hello", sid);
  g_autofree char *prefix = g_strdup_printf ("close %s", sid);
  int a = connect_or_fail (f);
  int b;

  send_text (a, first);
  g_assert_true (test_recorder_wait (f->events, "connection", 0) || TRUE);
  /* The first POST has begun (its head was seen) before the second. */
  g_usleep (0);
  b = connect_or_fail (f);
  {
    /* Wait until the server has the first head: a round trip on another
     * connection through the same serving context. */
    g_free (handshake (f));
  }
  send_text (b, second);
  g_assert_cmpuint (read_response (b, NULL, TEST_TIMEOUT_MS), ==, 400);
  close (b);
  g_assert_true (test_recorder_wait_count (f->events, prefix, 1, TEST_TIMEOUT_MS) ||
                 test_recorder_index_prefix (f->events, prefix) >= 0);
  send_text (a, "llo1234");
  g_assert_cmpuint (read_response (a, NULL, TEST_TIMEOUT_MS), ==, 400);
  close (a);
  g_assert_cmpint (test_recorder_index (f->events, "message hello123"), <, 0);
  assert_served (f);
}

static char *
upgrade_head (const char *sid,
              const char *key,
              const char *version)
{
  GString *s = g_string_new ("GET /engine.io/?EIO=4&transport=websocket");

  if (sid != NULL)
    g_string_append_printf (s, "&sid=%s", sid);
  g_string_append_printf (s, " %s\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\n", version);
  if (key != NULL)
    g_string_append_printf (s, "Sec-WebSocket-Key: %s\r\n", key);
  g_string_append (s, "\r\n");
  return g_string_free (s, FALSE);
}

/* Upgrades without a key or with a wrong one: 400, the connection given
 * back. */
static void
test_upgrade_bad_key (Fixture       *f,
                      gconstpointer  data)
{
  const char *keys[] = { NULL, "", "abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==" };

  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    {
      g_autofree char *head = upgrade_head (NULL, keys[i], "HTTP/1.1");
      g_autofree char *response = NULL;
      int fd = connect_or_fail (f);

      send_text (fd, head);
      response = read_head (fd, TEST_TIMEOUT_MS);
      g_assert_cmpuint (status_of (response), ==, 400);
      close (fd);
    }
  assert_served (f);
}

/* A frame sent right behind the upgrade's head, before the 101 is
 * written: it reaches the session (libsoup's buffered bytes are handed
 * over with the connection). */
static void
test_upgrade_extra_bytes (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sid = handshake (f);
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *head = upgrade_head (sid, key, "HTTP/1.1");
  g_autofree char *response = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) got = g_byte_array_new ();
  int fd = connect_or_fail (f);

  g_byte_array_append (out, (guint8 *) head, (guint) strlen (head));
  test_ws_append_frame (out, TEST_WS_FIRST_BYTE (TRUE, 0, 1), TRUE, "2probe", 6);
  g_assert_true (rel_tcp_send (fd, out->data, out->len));
  response = read_head (fd, TEST_TIMEOUT_MS);
  g_assert_cmpuint (status_of (response), ==, 101);
  /* 0x81 0x06 "3probe" */
  read_some (fd, got, 8, TEST_TIMEOUT_MS);
  g_assert_cmpuint (got->len, ==, 8);
  g_assert_cmpmem (got->data + 2, 6, "3probe", 6);
  rel_tcp_reset (fd);
  assert_served (f);
}

/* A second upgrade on a session that has its WebSocket: closed at once,
 * the first one unaffected. */
static void
test_upgrade_twice (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *head = NULL;
  g_autofree char *response = NULL;
  g_autofree char *reply = NULL;
  int fd;

  ws = test_ws_connect (f->port, "/engine.io/?EIO=4&transport=websocket", NULL, 0, NULL, &error);
  g_assert_no_error (error);
  reply = rel_ws_next (ws, TEST_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_assert_true (reply[0] == '0');
  {
    const char *p = strstr (reply, "\"sid\":\"") + 7;

    sid = g_strndup (p, (gsize) (strchr (p, '"') - p));
  }
  head = upgrade_head (sid, key, "HTTP/1.1");
  fd = connect_or_fail (f);
  send_text (fd, head);
  response = read_head (fd, TEST_TIMEOUT_MS);
  /* As from the libmicrohttpd host: the handshake completes and the
   * WebSocket is closed at once (a close frame, then the end). */
  g_assert_cmpuint (status_of (response), ==, 101);
  {
    g_autoptr(GByteArray) got = g_byte_array_new ();

    g_assert_true (rel_tcp_wait_closed (fd, TEST_TIMEOUT_MS, got));
    g_assert_cmpuint (got->len, >=, 2);
    g_assert_cmphex (got->data[0], ==, 0x88);
  }
  close (fd);
  g_assert_true (rel_ws_echo (ws, "4still", TEST_TIMEOUT_MS, &error));
  g_assert_no_error (error);
  g_clear_pointer (&ws, test_ws_free);
  assert_served (f);
}

/* Clients that send an upgrade and go at once (reset), before or while
 * the 101 is written: nothing is kept. */
static void
test_upgrade_client_gone (Fixture       *f,
                          gconstpointer  data)
{
  for (guint i = 0; i < 30; i++)
    {
      g_autofree char *sid = handshake (f);
      g_autofree char *key = test_ws_make_key ();
      g_autofree char *head = upgrade_head (i % 3 == 0 ? NULL : sid, key, "HTTP/1.1");
      int fd = connect_or_fail (f);

      send_text (fd, head);
      if (i % 2 == 0)
        rel_tcp_reset (fd);
      else
        {
          shutdown (fd, SHUT_WR);
          rel_tcp_wait_closed (fd, test_scaled_ms (200), NULL);
          close (fd);
        }
    }
  assert_served (f);
}

/* HTTP/1.0 clients, with and without Host (which HTTP/1.0 does not
 * require): a handshake is answered 200 and the connection closed, as by
 * the libmicrohttpd host. Without Host, libsoup (3.2) builds the URI with
 * the whole request-target as its path (the query in it): the adapter
 * answered such requests 404. An upgrade over HTTP/1.0 is answered. */
static void
test_http10 (Fixture       *f,
             gconstpointer  data)
{
  const char *requests[] = {
    "GET /engine.io/?EIO=4&transport=polling HTTP/1.0\r\nHost: x\r\n\r\n",
    "GET /engine.io/?EIO=4&transport=polling HTTP/1.0\r\n\r\n",
  };
  g_autofree char *sid = handshake (f);
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *head = upgrade_head (sid, key, "HTTP/1.0");
  g_autofree char *response = NULL;
  int fd;

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      g_autoptr(GByteArray) got = g_byte_array_new ();

      fd = connect_or_fail (f);
      send_text (fd, requests[i]);
      g_assert_true (rel_tcp_wait_closed (fd, TEST_TIMEOUT_MS, got));
      g_assert_cmpuint (rel_http_status_of (got), ==, 200);
      g_byte_array_append (got, (guint8 *) "", 1);
      g_assert_nonnull (strstr ((char *) got->data, "\"sid\""));
      close (fd);
    }

  fd = connect_or_fail (f);
  send_text (fd, head);
  response = read_head (fd, TEST_TIMEOUT_MS);
  g_assert_cmpuint (status_of (response), !=, 0);
  rel_tcp_reset (fd);
  assert_served (f);
}

/* A head of megabytes: libsoup (3.2) drops the connection past its own
 * bound on a head; the server goes on serving others. */
static void
test_huge_head (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *pad = g_strnfill (8000, 'a');
  g_autofree char *line = g_strdup_printf ("X-Pad: %s\r\n", pad);
  int fd = connect_or_fail (f);
  guint sent = 0;

  send_text (fd, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
  for (guint i = 0; i < 1024; i++)
    if (send_text (fd, line))
      sent++;
    else
      break;
  /* Not the whole 8 MB: the connection was dropped. */
  g_assert_cmpuint (sent, <, 1024);
  rel_tcp_reset (fd);
  assert_served (f);
}

/* Query parameters: 2000 are answered (the handshake ignores them);
 * 100 000 (a 1 MB request line) make libsoup drop the connection (its
 * bound on a head), without an answer and without holding it. */
static void
test_many_query_params (Fixture       *f,
                        gconstpointer  data)
{
  const guint counts[] = { 2000, 100000 };

  for (guint c = 0; c < G_N_ELEMENTS (counts); c++)
    {
      GString *s = g_string_new ("GET /engine.io/?EIO=4&transport=polling");
      int fd = connect_or_fail (f);

      for (guint i = 0; i < counts[c]; i++)
        g_string_append_printf (s, "&k%u=v", i);
      g_string_append (s, " HTTP/1.1\r\nHost: x\r\n\r\n");
      rel_tcp_send (fd, s->str, s->len);
      g_string_free (s, TRUE);
      if (c == 0)
        g_assert_cmpuint (read_response (fd, NULL, TEST_TIMEOUT_MS), ==, 200);
      else
        g_assert_true (rel_tcp_wait_closed (fd, TEST_TIMEOUT_MS, NULL));
      close (fd);
    }
  assert_served (f);
}

typedef struct
{
  Fixture *f;
  gboolean detach_first;
  gboolean done;
  GMutex  *lock;
  GCond   *cond;
} DropData;

static gboolean
drop_soup (gpointer data)
{
  DropData *d = data;

  if (d->detach_first)
    engine_io_server_detach_soup (d->f->server, d->f->soup);
  d->f->attached = FALSE;
  g_clear_object (&d->f->soup);
  g_mutex_lock (d->lock);
  d->done = TRUE;
  g_cond_broadcast (d->cond);
  g_mutex_unlock (d->lock);
  return G_SOURCE_REMOVE;
}

/* Polls waiting, a body trickling and an upgrade's head in, then the
 * application drops its SoupServer (detached first, or not): no
 * use-after-free (ASan), descriptors given back once the engine closes. */
static void
test_unref_while_paused (Fixture       *f,
                         gconstpointer  data)
{
  enum { N = 6 };
  int fds[N + 2];
  DropData d = { f, GPOINTER_TO_INT (data), FALSE, &f->lock, &f->cond };

  for (guint i = 0; i < N; i++)
    {
      g_autofree char *sid = handshake (f);
      g_autofree char *get = poll_head (sid);

      fds[i] = connect_or_fail (f);
      send_text (fds[i], get);
    }
  {
    g_autofree char *sid = handshake (f);
    g_autofree char *post = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                             "Host: x\r\nContent-Length: 100\r\n\r\n4ab", sid);

    fds[N] = connect_or_fail (f);
    send_text (fds[N], post);
  }
  {
    g_autofree char *sid = handshake (f);
    g_autofree char *key = test_ws_make_key ();
    g_autofree char *head = upgrade_head (sid, key, "HTTP/1.1");

    g_autofree char *response = NULL;

    fds[N + 1] = connect_or_fail (f);
    send_text (fds[N + 1], head);
    response = read_head (fds[N + 1], TEST_TIMEOUT_MS);
    g_assert_cmpuint (status_of (response), ==, 101);
  }
  /* All heads in: one more round trip through the context. */
  g_free (handshake (f));

  g_main_context_invoke (f->context, drop_soup, &d);
  g_mutex_lock (&f->lock);
  while (!d.done)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);

  /* The connections are closed by the SoupServer's end; the WebSocket
   * is its session's (documented), until the engine closes. */
  for (guint i = 0; i < N + 1; i++)
    {
      if (!rel_tcp_wait_closed (fds[i], TEST_TIMEOUT_MS, NULL))
        g_test_fail_printf ("connection %u (%s) not closed", i,
                            i < N ? "waiting poll" : i == N ? "POST body" : "upgrade");
      close (fds[i]);
    }
  g_assert_false (rel_tcp_is_closed (fds[N + 1]));
  engine_io_server_close (f->server);
  g_assert_true (rel_tcp_wait_closed (fds[N + 1], TEST_TIMEOUT_MS, NULL));
  close (fds[N + 1]);
}

/* The engine closed while polls wait and a body trickles: each poll is
 * answered, the trickling POST is ended, nothing kept. */
static void
test_close_while_paused (Fixture       *f,
                         gconstpointer  data)
{
  enum { N = 6 };
  int fds[N + 1];

  for (guint i = 0; i < N; i++)
    {
      g_autofree char *sid = handshake (f);
      g_autofree char *get = poll_head (sid);

      fds[i] = connect_or_fail (f);
      send_text (fds[i], get);
    }
  {
    g_autofree char *sid = handshake (f);
    g_autofree char *post = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                                             "Host: x\r\nContent-Length: 100\r\n\r\n4ab", sid);

    fds[N] = connect_or_fail (f);
    send_text (fds[N], post);
  }
  g_free (handshake (f));
  engine_io_server_close (f->server);
  for (guint i = 0; i < N; i++)
    {
      g_autofree char *body = NULL;

      g_assert_cmpuint (read_response (fds[i], &body, TEST_TIMEOUT_MS), ==, 200);
      close (fds[i]);
    }
  /* The trickled body: shut down within connection-timeout. */
  g_assert_true (rel_tcp_wait_closed (fds[N], test_scaled_ms (6000), NULL));
  close (fds[N]);
}


/* WebSocket over TLS: the stolen TLS stream relayed to the session's
 * socketpair (engineio-soup.c, Relay). */

static gboolean
stream_write (GIOStream  *stream,
              const void *data,
              gsize       length)
{
  return g_output_stream_write_all (g_io_stream_get_output_stream (stream), data, length, NULL, NULL, NULL);
}

static gboolean
ws_write_text (GIOStream  *stream,
               const char *text)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();

  test_ws_append_frame (frame, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_TEXT), TRUE, text, strlen (text));
  return stream_write (stream, frame->data, frame->len);
}

/* One unmasked frame from the server: its opcode, its payload as text. */
static char *
ws_read_frame (GIOStream *stream,
               guint     *opcode)
{
  GInputStream *input = g_io_stream_get_input_stream (stream);
  guint8 head[8];
  gsize length;
  g_autofree char *payload = NULL;

  if (!g_input_stream_read_all (input, head, 2, NULL, NULL, NULL))
    return NULL;
  length = head[1] & 0x7f;
  if (length == 126)
    {
      if (!g_input_stream_read_all (input, head + 2, 2, NULL, NULL, NULL))
        return NULL;
      length = ((gsize) head[2] << 8) | head[3];
    }
  else if (length == 127)
    return NULL;
  payload = g_malloc0 (length + 1);
  if (length > 0 && !g_input_stream_read_all (input, payload, length, NULL, NULL, NULL))
    return NULL;
  *opcode = head[0] & 0x0f;
  return g_steal_pointer (&payload);
}

/* A TLS connection trusting the test CA, its socket's receive buffer
 * @rcvbuf bytes (0: the default), upgraded to an Engine.IO WebSocket;
 * its sid in @out_sid. */
static GIOStream *
wss_open (Fixture  *f,
          int       rcvbuf,
          GSocket **out_socket,
          char    **out_sid)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, (guint16) f->port);
  g_autoptr(GSocketConnection) base = NULL;
  g_autoptr(GTlsDatabase) database = NULL;
  g_autoptr(GSocketConnectable) identity = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autofree char *head = NULL;
  g_autofree char *open = NULL;
  GString *got = g_string_new (NULL);
  guint opcode = 0;

  g_assert_no_error (error);
  if (rcvbuf > 0)
    g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, rcvbuf, NULL);
  g_socket_set_timeout (socket, (TEST_TIMEOUT_MS + 999) / 1000);
  g_assert_true (g_socket_connect (socket, address, NULL, &error));
  base = g_socket_connection_factory_create_connection (socket);
  database = g_tls_file_database_new (test_tls_ca_file (), &error);
  g_assert_no_error (error);
  identity = g_network_address_new ("127.0.0.1", (guint16) f->port);
  stream = g_tls_client_connection_new (G_IO_STREAM (base), identity, &error);
  g_assert_no_error (error);
  g_tls_connection_set_database (G_TLS_CONNECTION (stream), database);
  g_assert_true (g_tls_connection_handshake (G_TLS_CONNECTION (stream), NULL, &error));
  head = g_strdup_printf ("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                          f->port);
  g_assert_true (stream_write (stream, head, strlen (head)));
  while (!g_str_has_suffix (got->str, "\r\n\r\n") && got->len < 4096)
    {
      char c;

      if (!g_input_stream_read_all (g_io_stream_get_input_stream (stream), &c, 1, NULL, NULL, NULL))
        break;
      g_string_append_c (got, c);
    }
  g_assert_true (g_str_has_prefix (got->str, "HTTP/1.1 101"));
  g_string_free (got, TRUE);
  open = ws_read_frame (stream, &opcode);
  g_assert_nonnull (open);
  g_assert_true (g_str_has_prefix (open, "0{\"sid\":\""));
  *out_sid = g_strndup (open + 9, strcspn (open + 9, "\""));
  if (out_socket != NULL)
    *out_socket = g_object_ref (socket);
  return g_steal_pointer (&stream);
}

/* Messages both ways through the relay, a few at once and some of
 * max-payload; the client closing ends the session. */
static void
test_wss_echo (Fixture       *f,
               gconstpointer  data)
{
  guint before = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);
  g_autofree char *sid = NULL;
  g_autoptr(GIOStream) stream = wss_open (f, 0, NULL, &sid);
  g_autofree char *big = g_strnfill (MAX_PAYLOAD - 1, 'b');
  g_autofree char *message = g_strconcat ("4", big, NULL);
  g_autofree char *closed = NULL;

  for (guint round = 0; round < 3; round++)
    {
      for (guint i = 0; i < 50; i++)
        g_assert_true (ws_write_text (stream, i % 2 ? "4hello" : message));
      for (guint i = 0; i < 50; i++)
        {
          guint opcode = 0;
          g_autofree char *echo = ws_read_frame (stream, &opcode);

          g_assert_nonnull (echo);
          g_assert_cmpuint (opcode, ==, 1);
          g_assert_cmpstr (echo, ==, i % 2 ? "4hello" : message);
        }
    }
  /* A close frame (1000): answered, then the server closes. */
  {
    g_autoptr(GByteArray) frame = g_byte_array_new ();
    guint opcode = 0;
    g_autofree char *reply = NULL;

    test_ws_append_frame (frame, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_CLOSE), TRUE, "\x03\xe8", 2);
    g_assert_true (stream_write (stream, frame->data, frame->len));
    reply = ws_read_frame (stream, &opcode);
    g_assert_nonnull (reply);
    g_assert_cmpuint (opcode, ==, TEST_WS_CLOSE);
  }
  closed = g_strdup_printf ("close %s transport close", sid);
  g_assert_true (wait_event (f, closed));
  g_io_stream_close (stream, NULL, NULL);
  /* The relay's end (its streams' closes) while the SoupServer's context
   * still runs: the teardown stops it. */
  test_wait_count_at_most (test_count_fds, before, TEST_TIMEOUT_MS);
}

/* The client resets its TCP connection: the relay ends, the session
 * sees its connection end without a close frame (`transport error`),
 * nothing kept (the teardown counts the descriptors). */
static void
test_wss_client_reset (Fixture       *f,
                       gconstpointer  data)
{
  guint before = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);
  g_autofree char *sid = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GIOStream) stream = wss_open (f, 0, &socket, &sid);
  g_autofree char *closed = NULL;

  g_assert_true (ws_write_text (stream, "4before"));
  closed = g_strdup_printf ("message before");
  g_assert_true (wait_event (f, closed));
  g_clear_pointer (&closed, g_free);
  {
    struct linger linger = { .l_onoff = 1, .l_linger = 0 };

    setsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  }
  g_socket_close (socket, NULL);
  /* No close frame: the WebSocket failed. */
  closed = g_strdup_printf ("close %s transport error", sid);
  g_assert_true (wait_event (f, closed));
  g_clear_object (&stream);
  /* As in wss-echo. */
  test_wait_count_at_most (test_count_fds, before, TEST_TIMEOUT_MS);
}

/* A client that asks for 16 MiB and reads nothing (its receive buffer
 * small) and keeps its connection, then the server closes: the session
 * ends, and the relay lets go of the connection and the socketpair (if
 * it cannot pass on what it holds, connection-timeout, 2 s, after the
 * session let go of its end): the teardown counts the descriptors with
 * the client's still open. */
static void
test_wss_stalled_reader (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *closed = NULL;
  guint before = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);

  f->kept = wss_open (f, 4096, NULL, &sid);
  g_assert_true (ws_write_text (f->kept, "4flood"));
  g_assert_true (wait_event (f, "message flood"));
  engine_io_server_close (f->server);
  closed = g_strdup_printf ("close %s server shutting down", sid);
  g_assert_true (wait_event (f, closed));
  /* The relay gone while the SoupServer's context still runs (the
   * teardown stops it: a relay still under way then would stay); the
   * teardown counts the descriptors, the client's still open. */
  test_wait_count_at_most (test_count_fds, before + 1, test_scaled_ms (3000) + TEST_TIMEOUT_MS);
}

int
main (int    argc,
      char **argv)
{
  gboolean have_tls;
  int ret;

  g_test_init (&argc, &argv, NULL);
  test_log_init ();
  /* What the first server leaves for the process (GLib's own threads and
   * their descriptors) is not a case's. */
  {
    Fixture warm = { 0 };

    fixture_setup (&warm, NULL);
    g_free (handshake (&warm));
    warm.baseline_fds = G_MAXUINT;
    fixture_teardown (&warm, NULL);
  }
  have_tls = test_tls_ca_make () && g_tls_backend_supports_tls (g_tls_backend_get_default ());
  if (!have_tls)
    g_printerr ("test-soup-attack: no test CA (openssl) or no TLS backend: the wss-* cases are left out\n");
  else
    {
      /* The same for the TLS backend's first use (and GIO's worker
       * context, which some run's first relay creates). */
      Fixture warm = { 0 };

      fixture_setup (&warm, &tls_marker);
      test_wss_echo (&warm, NULL);
      test_wss_client_reset (&warm, NULL);
      warm.baseline_fds = G_MAXUINT;
      fixture_teardown (&warm, &tls_marker);
    }
#define ADD(name, func, data) \
  g_test_add ("/reliability/soup-attack/" name, Fixture, data, fixture_setup, func, fixture_teardown)
  ADD ("content-length-over", test_content_length_over, NULL);
  ADD ("chunked-over", test_chunked_over, NULL);
  ADD ("chunked-endless", test_chunked_endless, NULL);
  ADD ("trickled-body", test_trickled_body, NULL);
  ADD ("vanishing-polls", test_vanishing_polls, NULL);
  ADD ("pipelined-behind-poll", test_pipelined_behind_poll, NULL);
  ADD ("overlapping-posts", test_overlapping_posts, NULL);
  ADD ("upgrade-bad-key", test_upgrade_bad_key, NULL);
  ADD ("upgrade-extra-bytes", test_upgrade_extra_bytes, NULL);
  ADD ("upgrade-twice", test_upgrade_twice, NULL);
  ADD ("upgrade-client-gone", test_upgrade_client_gone, NULL);
  ADD ("http10", test_http10, NULL);
  ADD ("huge-head", test_huge_head, NULL);
  ADD ("many-query-params", test_many_query_params, NULL);
  ADD ("unref-while-paused/detached", test_unref_while_paused, GINT_TO_POINTER (TRUE));
  ADD ("unref-while-paused/attached", test_unref_while_paused, GINT_TO_POINTER (FALSE));
  ADD ("close-while-paused", test_close_while_paused, NULL);
  if (have_tls)
    {
      ADD ("wss-echo", test_wss_echo, &tls_marker);
      ADD ("wss-client-reset", test_wss_client_reset, &tls_marker);
      ADD ("wss-stalled-reader", test_wss_stalled_reader, &tls_marker);
    }
#undef ADD
  ret = g_test_run ();
  test_tls_ca_remove ();
  return ret;
}
