/* test-host.c: the engine hosted through the public host seam
 * (EngineIOHostRequest) by a small web server written here in C, over
 * real loopback HTTP and WebSocket.
 *
 * The host is a GThreadedSocketService: a thread per connection, which is
 * the serving thread of its requests, reading heads with a
 * GDataInputStream; a suspended request waits in poll() on a pipe that the
 * class's resume() writes to and on its connection for the client leaving
 * (then engine_io_host_request_client_gone()); an upgrade writes the 101 and
 * hands a duplicate of the descriptor over with
 * engine_io_host_request_attach_connection(). The test's blocking clients
 * (testutil, wsutil) talk to it. Also run under ASan and with the lock-order
 * checks (tests/run-all.sh): the object's lifetime against resumptions from
 * session threads is what the stress case is for.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* POLLRDHUP */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <engineio/engineio.h>

#include "testutil.h"
#include "wsutil.h"

#define MAX_PAYLOAD 1000
#define MAX_HEAD_LINE 8192

/* The host's request class */

#define TEST_TYPE_REQUEST (test_request_get_type ())
G_DECLARE_FINAL_TYPE (TestRequest, test_request, TEST, REQUEST, EngineIOHostRequest)

struct _TestRequest
{
  EngineIOHostRequest  parent_instance;
  /* Serving thread. */
  gboolean             responded;
  guint                status;
  GStrv                headers;
  GBytes              *body;
  gboolean             suspended;
  GStrv                upgrade_headers;
  /* resume() (any thread) writes a byte to wake[1]. */
  int                  wake[2];
};

G_DEFINE_FINAL_TYPE (TestRequest, test_request, ENGINE_IO_TYPE_HOST_REQUEST)

static void
test_request_respond (EngineIOHostRequest *request,
                      guint                status,
                      const char * const  *headers,
                      GBytes              *body)
{
  TestRequest *self = TEST_REQUEST (request);

  g_assert_false (self->responded);
  self->responded = TRUE;
  self->status = status;
  self->headers = g_strdupv ((char **) headers);
  self->body = g_bytes_ref (body);
}

static void
test_request_suspend (EngineIOHostRequest *request)
{
  TEST_REQUEST (request)->suspended = TRUE;
}

static void
test_request_resume (EngineIOHostRequest *request)
{
  TestRequest *self = TEST_REQUEST (request);
  ssize_t n;

  do
    n = write (self->wake[1], "r", 1);
  while (n < 0 && errno == EINTR);
  g_assert_cmpint (n, ==, 1);
}

static gboolean
test_request_upgrade (EngineIOHostRequest *request,
                      const char * const  *headers)
{
  TEST_REQUEST (request)->upgrade_headers = g_strdupv ((char **) headers);
  return TRUE;
}

static void
test_request_finalize (GObject *object)
{
  TestRequest *self = TEST_REQUEST (object);

  g_strfreev (self->headers);
  g_strfreev (self->upgrade_headers);
  g_clear_pointer (&self->body, g_bytes_unref);
  close (self->wake[0]);
  close (self->wake[1]);
  G_OBJECT_CLASS (test_request_parent_class)->finalize (object);
}

static void
test_request_class_init (TestRequestClass *klass)
{
  EngineIOHostRequestClass *host_class = ENGINE_IO_HOST_REQUEST_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = test_request_finalize;
  host_class->respond = test_request_respond;
  host_class->suspend = test_request_suspend;
  host_class->resume = test_request_resume;
  host_class->upgrade = test_request_upgrade;
}

static void
test_request_init (TestRequest *self)
{
  g_assert_no_errno (pipe2 (self->wake, O_CLOEXEC));
}

/* The host */

typedef struct
{
  TestLoopback            lb;         /* served by this host instead of listening; sockets kept */
  GSocketService         *service;    /* created and run in @thread's context */
  GThread                *thread;
  GMainContext           *context;
  GMainLoop              *loop;
  GMutex                  lock;
  GCond                   cond;         /* @ready, @waiting, @connections changed */
  gboolean                ready;
  int                     client_gone;  /* (atomic) */
  int                     switched;     /* (atomic) */
  guint                   waiting;      /* (lock) requests suspended now */
  guint                   connections;  /* (lock) being served */
} Fixture;

static gboolean
write_all (GOutputStream *out,
           const void    *data,
           gsize          size)
{
  return g_output_stream_write_all (out, data, size, NULL, NULL, NULL);
}

static gboolean
write_response (GOutputStream *out,
                TestRequest   *req,
                gboolean       close)
{
  g_autoptr(GString) head = g_string_new (NULL);
  gsize size;
  gconstpointer data = g_bytes_get_data (req->body, &size);

  g_string_append_printf (head, "HTTP/1.1 %u Status\r\n", req->status);
  for (guint i = 0; req->headers[i] != NULL && req->headers[i + 1] != NULL; i += 2)
    g_string_append_printf (head, "%s: %s\r\n", req->headers[i], req->headers[i + 1]);
  g_string_append_printf (head, "Content-Length: %" G_GSIZE_FORMAT "\r\n%s\r\n", size,
                          close ? "Connection: close\r\n" : "");
  return write_all (out, head->str, head->len) && (size == 0 || write_all (out, data, size));
}

static void
fixture_count (Fixture *f,
               guint   *counter,
               int      delta)
{
  g_mutex_lock (&f->lock);
  *counter += delta;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);
}

/* Whether *@counter became @value within TEST_TIMEOUT_MS. */
static gboolean
fixture_wait_count (Fixture *f,
                    guint   *counter,
                    guint    value)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
  gboolean reached;

  g_mutex_lock (&f->lock);
  while (*counter != value && g_cond_wait_until (&f->cond, &f->lock, deadline))
    ;
  reached = *counter == value;
  g_mutex_unlock (&f->lock);
  return reached;
}

/* Waits for resume() while watching @fd for the client closing it. */
static void
wait_resumed (Fixture     *f,
              TestRequest *req,
              int          fd)
{
  struct pollfd fds[2] = {
    { .fd = req->wake[0], .events = POLLIN },
    { .fd = fd, .events = POLLRDHUP },
  };
  nfds_t n = 2;
  char byte;

  fixture_count (f, &f->waiting, 1);
  for (;;)
    {
      if (poll (fds, n, -1) < 0)
        {
          g_assert_cmpint (errno, ==, EINTR);
          continue;
        }
      if (fds[0].revents & POLLIN)
        break;
      if (n == 2 && fds[1].revents != 0)
        {
          n = 1;
          g_atomic_int_inc (&f->client_gone);
          engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
        }
    }
  g_assert_cmpint (read (req->wake[0], &byte, 1), ==, 1);
  fixture_count (f, &f->waiting, -1);
}

/* One request on a connection; whether the connection goes on. */
static gboolean
serve_request (Fixture           *f,
               GSocketConnection *connection,
               GDataInputStream  *in,
               GOutputStream     *out)
{
  g_autofree char *line = NULL;
  g_auto(GStrv) parts = NULL;
  g_autoptr(TestRequest) req = NULL;
  g_autofree char *path = NULL;
  EngineIOHostRequest *host;
  GSocket *gsocket = g_socket_connection_get_socket (connection);
  const char *query;
  gint64 length = -1;
  gboolean chunked = FALSE;
  gboolean body_left;
  gboolean close = FALSE;
  gsize n;

  line = g_data_input_stream_read_line (in, &n, NULL, NULL);
  if (line == NULL || n > MAX_HEAD_LINE)
    return FALSE;
  parts = g_strsplit (line, " ", 3);
  if (g_strv_length (parts) != 3)
    return FALSE;
  query = strchr (parts[1], '?');
  path = g_uri_unescape_segment (parts[1], query, NULL);
  req = g_object_new (TEST_TYPE_REQUEST, "method", parts[0], "path", path != NULL ? path : "",
                      "remote-address", "127.0.0.1", NULL);
  host = ENGINE_IO_HOST_REQUEST (req);
  engine_io_host_request_add_query_string (host, query != NULL ? query + 1 : "");
  for (;;)
    {
      g_autofree char *header = g_data_input_stream_read_line (in, &n, NULL, NULL);
      char *colon;

      if (header == NULL || n > MAX_HEAD_LINE)
        {
          engine_io_host_request_finished (host, FALSE);
          return FALSE;
        }
      g_strchomp (header);
      if (header[0] == '\0')
        break;
      colon = strchr (header, ':');
      if (colon == NULL)
        continue;
      *colon = '\0';
      g_strstrip (colon + 1);
      engine_io_host_request_add_header (host, header, colon + 1);
      if (g_ascii_strcasecmp (header, "content-length") == 0)
        length = g_ascii_strtoll (colon + 1, NULL, 10);
      else if (g_ascii_strcasecmp (header, "transfer-encoding") == 0)
        chunked = g_ascii_strcasecmp (colon + 1, "chunked") == 0;
      else if (g_ascii_strcasecmp (header, "connection") == 0 &&
               g_ascii_strcasecmp (colon + 1, "close") == 0)
        close = TRUE;
    }
  engine_io_host_request_set_content_length (host, length);
  body_left = chunked || length > 0;

  if (engine_io_server_handle_host_request (f->lb.server, host))
    {
      gboolean go_on = TRUE;
      guint8 buffer[4096];

      if (chunked)
        {
          for (;;)
            {
              g_autofree char *size_line = g_data_input_stream_read_line (in, &n, NULL, NULL);
              guint64 size;

              if (size_line == NULL)
                {
                  engine_io_host_request_client_gone (host);
                  engine_io_host_request_finished (host, FALSE);
                  return FALSE;
                }
              g_strchomp (size_line);
              size = g_ascii_strtoull (size_line, NULL, 16);
              if (size == 0)
                {
                  g_free (g_data_input_stream_read_line (in, &n, NULL, NULL));
                  break;
                }
              while (size > 0 && go_on)
                {
                  gsize want = MIN (size, sizeof buffer);

                  if (!g_input_stream_read_all (G_INPUT_STREAM (in), buffer, want, &n, NULL, NULL) ||
                      n != want)
                    {
                      engine_io_host_request_client_gone (host);
                      engine_io_host_request_finished (host, FALSE);
                      return FALSE;
                    }
                  size -= want;
                  go_on = engine_io_host_request_add_body (host, buffer, want);
                }
              if (!go_on)
                break;
              g_free (g_data_input_stream_read_line (in, &n, NULL, NULL));
            }
        }
      else
        {
          gint64 left = MAX (length, 0);

          while (left > 0 && go_on)
            {
              gsize want = (gsize) MIN (left, (gint64) sizeof buffer);

              if (!g_input_stream_read_all (G_INPUT_STREAM (in), buffer, want, &n, NULL, NULL) ||
                  n != want)
                {
                  engine_io_host_request_client_gone (host);
                  engine_io_host_request_finished (host, FALSE);
                  return FALSE;
                }
              left -= (gint64) want;
              go_on = engine_io_host_request_add_body (host, buffer, want);
            }
        }
      if (go_on)
        {
          engine_io_host_request_end_body (host);
          body_left = FALSE;
        }
    }

  for (;;)
    {
      if (req->responded)
        {
          gboolean ok = write_response (out, req, close || body_left);

          engine_io_host_request_finished (host, ok);
          return ok && !close && !body_left;
        }
      if (req->upgrade_headers != NULL)
        {
          g_autoptr(GString) head = g_string_new ("HTTP/1.1 101 Switching Protocols\r\n");
          g_autoptr(GBytes) extra = NULL;
          gconstpointer buffered;
          gsize buffered_size;
          int fd;

          for (guint i = 0; req->upgrade_headers[i] != NULL && req->upgrade_headers[i + 1] != NULL; i += 2)
            g_string_append_printf (head, "%s: %s\r\n", req->upgrade_headers[i], req->upgrade_headers[i + 1]);
          g_string_append (head, "\r\n");
          if (!write_all (out, head->str, head->len))
            {
              engine_io_host_request_finished (host, FALSE);
              return FALSE;
            }
          buffered = g_buffered_input_stream_peek_buffer (G_BUFFERED_INPUT_STREAM (in), &buffered_size);
          if (buffered_size > 0)
            extra = g_bytes_new (buffered, buffered_size);
          /* A duplicate: the service closes its own (without a shutdown). */
          fd = fcntl (g_socket_get_fd (gsocket), F_DUPFD_CLOEXEC, 0);
          g_assert_cmpint (fd, >=, 0);
          engine_io_host_request_attach_connection (host, g_socket_new_from_fd (fd, NULL), extra);
          engine_io_host_request_finished (host, TRUE);
          g_atomic_int_inc (&f->switched);
          return FALSE;
        }
      if (req->suspended)
        {
          wait_resumed (f, req, g_socket_get_fd (gsocket));
          req->suspended = FALSE;
          engine_io_host_request_resumed (host);
          continue;
        }
      /* A poll whose client left: no answer. */
      engine_io_host_request_finished (host, FALSE);
      return FALSE;
    }
}

static gboolean
run_cb (GThreadedSocketService *service,
        GSocketConnection      *connection,
        GObject                *source_object,
        gpointer                user_data)
{
  Fixture *f = user_data;
  g_autoptr(GDataInputStream) in =
    g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (connection));

  fixture_count (f, &f->connections, 1);
  g_data_input_stream_set_newline_type (in, G_DATA_STREAM_NEWLINE_TYPE_CR_LF);
  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (in), FALSE);
  while (serve_request (f, connection, in, out))
    ;
  g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  fixture_count (f, &f->connections, -1);
  return TRUE;
}

/* The application */

/* The service accepts in a main context of its own (GSocketService
 * accepts asynchronously there); its connections run on threads of its
 * own. */
static gpointer
accept_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (f->context);
  f->service = g_threaded_socket_service_new (64);
  f->lb.port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (f->service), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (f->service, "run", G_CALLBACK (run_cb), f);
  g_socket_service_start (f->service);
  g_mutex_lock (&f->lock);
  f->ready = TRUE;
  g_cond_broadcast (&f->cond);
  g_mutex_unlock (&f->lock);

  g_main_loop_run (f->loop);

  g_socket_service_stop (f->service);
  g_socket_listener_close (G_SOCKET_LISTENER (f->service));
  g_clear_object (&f->service);
  while (g_main_context_iteration (f->context, FALSE))
    ;
  g_main_context_pop_thread_default (f->context);
  return NULL;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_ECHO;
  f->lb.keep_sockets = TRUE;
  g_object_set (f->lb.server, "max-payload", (guint64) MAX_PAYLOAD, "ping-interval", 20000u,
                "ping-timeout", 20000u, NULL);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->context = g_main_context_new ();
  f->loop = g_main_loop_new (f->context, FALSE);
  f->thread = g_thread_new ("host-accept", accept_thread, f);
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
  GSource *source;

  g_clear_pointer (&f->lb.http, test_http_free);
  engine_io_server_close (f->lb.server);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  source = g_idle_source_new ();
  g_source_set_callback (source, quit_loop, f->loop, NULL);
  g_source_attach (source, f->context);
  g_source_unref (source);
  g_thread_join (f->thread);
  /* The connections' threads are done with @f (their clients are closed). */
  g_assert_true (fixture_wait_count (f, &f->connections, 0));
  g_main_loop_unref (f->loop);
  g_main_context_unref (f->context);
  g_mutex_clear (&f->lock);
  g_cond_clear (&f->cond);
  test_loopback_clear (&f->lb);
  test_log_check ();
}

static char *
open_session (Fixture *f)
{
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (f->lb.http, 4);

  test_require_val (open != NULL, NULL);
  return g_strdup (open->sid);
}

/* Polling: a message echoed through a held poll; the handshake offers the
 * upgrade (the class has upgrade()). */
static void
test_polling_echo (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (f->lb.http, 4);
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(GPtrArray) packets = NULL;

  test_require (open != NULL);
  g_assert_nonnull (open->upgrades);
  g_assert_true (g_strv_contains ((const char * const *) open->upgrades, "websocket"));
  target = test_eio_target (4, "polling", open->sid);
  post = test_http_post (f->lb.http, target, TEST_S ("4héllo"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  poll = test_http_get (f->lb.http, target);
  test_require (poll != NULL);
  packets = test_eio_poll_packets (poll, 4);
  test_require (packets != NULL);
  g_assert_cmpuint (packets->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4héllo");
}

/* A WebSocket session (transport=websocket) and an upgrade of a polling
 * one: the connections handed over through attach_connection(). */
static void
test_websocket (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(TestWs) ws = test_eio_ws_open (f->lb.port, 4);
  g_autofree char *echo = NULL;
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) probe = NULL;
  g_autofree char *echo2 = NULL;

  test_require (ws != NULL);
  g_assert_true (test_ws_send_text (ws, "4over websocket"));
  echo = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (echo, ==, "over websocket");

  sid = open_session (f);
  test_require (sid != NULL);
  probe = test_eio_probe (f->lb.port, 4, sid);
  test_require (probe != NULL);
  g_assert_true (test_ws_send_text (probe, "5"));
  g_assert_true (test_ws_send_text (probe, "4upgraded"));
  echo2 = test_eio_ws_next (probe, TEST_TIMEOUT_MS);
  g_assert_cmpstr (echo2, ==, "upgraded");
  g_assert_cmpint (g_atomic_int_get (&f->switched), ==, 2);
}

/* A POST over max-payload, chunked: 413 as its chunks come, the session
 * unharmed. */
static void
test_max_payload (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *target = NULL;
  g_autofree char *big = NULL;
  g_autoptr(GString) chunked = g_string_new (NULL);
  const char *headers[] = { "Transfer-Encoding", "chunked", NULL };
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(GPtrArray) packets = NULL;

  test_require (sid != NULL);
  target = test_eio_target (4, "polling", sid);
  big = g_strnfill (3 * MAX_PAYLOAD, 'x');
  big[0] = '4';
  for (gsize i = 0; i < 3 * MAX_PAYLOAD; i += 500)
    g_string_append_printf (chunked, "%x\r\n%.500s\r\n", 500, big + i);
  g_string_append (chunked, "0\r\n\r\n");
  refused = test_http_request (f->lb.http, "POST", target, headers, chunked->str,
                               (gssize) chunked->len, TEST_TIMEOUT_MS, NULL);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 413);

  http = test_http_new (f->lb.port);
  post = test_http_post (http, target, TEST_S ("4after"));
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  poll = test_http_get (http, target);
  test_require (poll != NULL);
  packets = test_eio_poll_packets (poll, 4);
  test_require (packets != NULL);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4after");
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
}

/* A client closes its connection while its poll is held: the session ends
 * at once, `transport close`. */
static void
test_client_leaves_held_poll (Fixture       *f,
                              gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *target = NULL;
  g_autofree char *expected = NULL;

  test_require (sid != NULL);
  target = test_eio_target (4, "polling", sid);
  g_assert_true (test_http_send (f->lb.http, "GET", target, NULL, NULL, -1, NULL));
  g_assert_true (fixture_wait_count (f, &f->waiting, 1));
  test_http_drop (f->lb.http, FALSE);
  expected = g_strdup_printf ("close %s transport close", sid);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));
  g_assert_cmpint (g_atomic_int_get (&f->client_gone), ==, 1);
}

/* Many held polls resumed by the application's sends from session threads
 * while their serving threads answer and drop them at once: the objects'
 * references against resumptions on their way (ASan). */
static void
test_resume_stress (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *target = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  guint got = 0;

  test_require (sid != NULL);
  socket = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
  test_require (socket != NULL);
  target = test_eio_target (4, "polling", sid);
  for (guint i = 0; i < 200; i++)
    {
      g_autoptr(TestResponse) poll = NULL;
      g_autoptr(GPtrArray) packets = NULL;
      g_autofree char *text = g_strdup_printf ("m%u", i);

      g_assert_true (test_http_send (f->lb.http, "GET", target, NULL, NULL, -1, NULL));
      /* Sent from here while the poll may or may not be held yet. */
      g_assert_true (engine_io_socket_send_text (socket, text, NULL));
      poll = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL);
      test_require (poll != NULL);
      packets = test_eio_poll_packets (poll, 4);
      test_require (packets != NULL);
      got += packets->len;
    }
  g_assert_cmpuint (got, >=, 200);
}

/* Driving the seam directly from the test's thread (the serving thread
 * here): a careless host's calls, in the wrong order or at the wrong
 * time. The API refuses what it cannot honour (a critical) and never
 * corrupts the request, its session or the engine. */

static TestRequest *
direct_request (const char *method,
                const char *query)
{
  TestRequest *req = g_object_new (TEST_TYPE_REQUEST, "method", method, "path", "/engine.io/",
                                   "remote-address", "127.0.0.1", NULL);

  engine_io_host_request_add_query_string (ENGINE_IO_HOST_REQUEST (req), query);
  return req;
}

/* Whether resume() came (its byte is read) within TEST_TIMEOUT_MS. */
static gboolean
direct_wait_resume (TestRequest *req,
                    guint        timeout_ms)
{
  struct pollfd fds = { .fd = req->wake[0], .events = POLLIN };
  char byte;

  if (poll (&fds, 1, (int) timeout_ms) != 1)
    return FALSE;
  return read (req->wake[0], &byte, 1) == 1;
}

/* A handshake over the seam itself; the session's id. */
static char *
direct_open (Fixture *f)
{
  g_autoptr(TestRequest) req = direct_request ("GET", "EIO=4&transport=polling");
  EngineIOHostRequest *host = ENGINE_IO_HOST_REQUEST (req);
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *text = NULL;
  gsize size;
  const char *data;

  g_assert_false (engine_io_server_handle_host_request (f->lb.server, host));
  while (req->suspended)
    {
      test_require_val (direct_wait_resume (req, TEST_TIMEOUT_MS), NULL);
      req->suspended = FALSE;
      engine_io_host_request_resumed (host);
    }
  test_require_val (req->responded, NULL);
  g_assert_cmpuint (req->status, ==, 200);
  engine_io_host_request_finished (host, TRUE);
  data = g_bytes_get_data (req->body, &size);
  test_require_val (size > 1 && data[0] == '0', NULL);
  text = g_strndup (data + 1, size - 1);
  open = test_open_packet_parse (text, NULL);
  test_require_val (open != NULL, NULL);
  return g_strdup (open->sid);
}

/* A poll of @sid, held (nothing queued). */
static TestRequest *
direct_held_poll (Fixture    *f,
                  const char *sid)
{
  g_autofree char *query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);
  TestRequest *req = direct_request ("GET", query);

  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_true (req->suspended);
  g_assert_false (req->responded);
  return req;
}

/* Calls out of order on a handshake: each refused with a critical, the
 * request served as if they had not been made. */
static void
test_misuse_order (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestRequest) req = direct_request ("GET", "EIO=4&transport=polling");
  EngineIOHostRequest *host = ENGINE_IO_HOST_REQUEST (req);
  int pair[2];
  char byte;

  /* Before the hand-over: the body calls and resumed() do nothing. */
  g_assert_false (engine_io_host_request_add_body (host, (const guint8 *) "x", 1));
  engine_io_host_request_end_body (host);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "suspended");
  engine_io_host_request_resumed (host);

  g_assert_false (engine_io_server_handle_host_request (f->lb.server, host));
  g_assert_true (req->suspended);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "handed");
  engine_io_host_request_add_header (host, "Origin", "http://evil.example");
  test_log_expect (G_LOG_LEVEL_CRITICAL, "handed");
  engine_io_host_request_add_query (host, "sid", "x");
  test_log_expect (G_LOG_LEVEL_CRITICAL, "handed");
  engine_io_host_request_add_query_string (host, "sid=x");
  test_log_expect (G_LOG_LEVEL_CRITICAL, "handed");
  engine_io_host_request_set_content_length (host, 5);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "handed");
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, host));
  test_log_expect (G_LOG_LEVEL_CRITICAL, "suspended request");
  engine_io_host_request_finished (host, TRUE);
  g_assert_false (engine_io_host_request_add_body (host, (const guint8 *) "x", 1));
  engine_io_host_request_end_body (host);
  g_assert_true (test_log_wait_expected (0));

  g_assert_true (direct_wait_resume (req, TEST_TIMEOUT_MS));
  req->suspended = FALSE;
  engine_io_host_request_resumed (host);
  g_assert_true (req->responded);
  g_assert_cmpuint (req->status, ==, 200);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "suspended");
  engine_io_host_request_resumed (host);

  /* attach_connection() without an upgrade: refused, and the socket given
   * (transfer full) is closed. */
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
  test_log_expect (G_LOG_LEVEL_CRITICAL, "without an upgrade");
  engine_io_host_request_attach_connection (host, g_socket_new_from_fd (pair[0], NULL), NULL);
  g_assert_cmpint (read (pair[1], &byte, 1), ==, 0);
  close (pair[1]);

  engine_io_host_request_finished (host, TRUE);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "finished");
  engine_io_host_request_finished (host, TRUE);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "finished");
  engine_io_host_request_client_gone (host);
  g_assert_true (test_log_wait_expected (0));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
}

/* resumed() while the request is suspended but its resume() has not come
 * (a host that woke up for something else): refused; the held poll stays
 * the session's, answered when a message comes. */
static void
test_misuse_resumed_early (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestRequest) poll = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestResponse) response = g_new0 (TestResponse, 1);

  test_require (sid != NULL);
  socket = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
  test_require (socket != NULL);
  poll = direct_held_poll (f, sid);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "resume");
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_true (test_log_wait_expected (0));
  g_assert_false (poll->responded);

  g_assert_true (engine_io_socket_send_text (socket, "late", NULL));
  g_assert_true (direct_wait_resume (poll, TEST_TIMEOUT_MS));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_true (poll->responded);
  g_assert_cmpuint (poll->status, ==, 200);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), TRUE);
  response->status = poll->status;
  response->body = g_bytes_ref (poll->body);
  packets = test_eio_poll_packets (response, 4);
  test_require (packets != NULL);
  g_assert_cmpuint (packets->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4late");
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
}

/* handle_host_request() on a request already finished: refused; it never
 * becomes the session's poll (which nobody would answer or finish). */
static void
test_misuse_handle_after_finished (Fixture       *f,
                                   gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  g_autofree char *query = NULL;
  g_autoptr(TestRequest) stale = NULL;
  g_autoptr(TestRequest) poll = NULL;

  test_require (sid != NULL);
  query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);
  stale = direct_request ("GET", query);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (stale), FALSE);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "finished");
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (stale)));
  g_assert_true (test_log_wait_expected (0));
  g_assert_false (stale->suspended);
  g_assert_false (stale->responded);
  g_clear_object (&stale);

  /* The session's next poll is held as usual, not refused as overlapping. */
  poll = direct_held_poll (f, sid);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
  /* The fixture's close resumes it; answer it from here meanwhile. */
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_true (direct_wait_resume (poll, TEST_TIMEOUT_MS));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_false (poll->responded);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), FALSE);
}

static TestRequest *
direct_post (Fixture    *f,
             const char *sid,
             gint64      length)
{
  g_autofree char *query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);
  TestRequest *req = direct_request ("POST", query);

  engine_io_host_request_set_content_length (ENGINE_IO_HOST_REQUEST (req), length);
  return req;
}

/* A whole POST of @text; its status. */
static guint
direct_post_text (Fixture    *f,
                  const char *sid,
                  const char *text)
{
  g_autoptr(TestRequest) req = direct_post (f, sid, (gint64) strlen (text));
  EngineIOHostRequest *host = ENGINE_IO_HOST_REQUEST (req);

  if (engine_io_server_handle_host_request (f->lb.server, host) &&
      engine_io_host_request_add_body (host, (const guint8 *) text, strlen (text)))
    engine_io_host_request_end_body (host);
  while (req->suspended)
    {
      test_require_val (direct_wait_resume (req, TEST_TIMEOUT_MS), 0);
      req->suspended = FALSE;
      engine_io_host_request_resumed (host);
    }
  test_require_val (req->responded, 0);
  engine_io_host_request_finished (host, TRUE);
  return req->status;
}

static TestRequest *
direct_upgrade (Fixture    *f,
                const char *sid)
{
  g_autofree char *query = g_strdup_printf ("EIO=4&transport=websocket&sid=%s", sid);
  TestRequest *req = direct_request ("GET", query);
  EngineIOHostRequest *host = ENGINE_IO_HOST_REQUEST (req);

  engine_io_host_request_add_header (host, "Upgrade", "websocket");
  engine_io_host_request_add_header (host, "Connection", "Upgrade");
  engine_io_host_request_add_header (host, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  engine_io_host_request_add_header (host, "Sec-WebSocket-Version", "13");
  return req;
}

/* The host drops its reference without finished() at each stage: a
 * warning, and the engine lets go of the request (the session's POST and
 * upgrade slots are free again). */
static void
test_misuse_drop_unfinished (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  TestRequest *req;

  test_require (sid != NULL);

  /* Mid-body. */
  req = direct_post (f, sid, 10);
  g_assert_true (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_true (engine_io_host_request_add_body (ENGINE_IO_HOST_REQUEST (req), (const guint8 *) "4ab", 3));
  test_log_expect (G_LOG_LEVEL_WARNING, "without engine_io_host_request_finished");
  g_object_unref (req);
  g_assert_true (test_log_wait_expected (0));
  g_assert_cmpuint (direct_post_text (f, sid, "4next"), ==, 200);

  /* Upgrading, never attached. */
  req = direct_upgrade (f, sid);
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_nonnull (req->upgrade_headers);
  test_log_expect (G_LOG_LEVEL_WARNING, "without engine_io_host_request_finished");
  g_object_unref (req);
  g_assert_true (test_log_wait_expected (0));
  /* The session stays on polling and may try again. */
  req = direct_upgrade (f, sid);
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_nonnull (req->upgrade_headers);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_object_unref (req);
  g_assert_cmpuint (direct_post_text (f, sid, "4again"), ==, 200);

  /* Answered, never finished. */
  req = direct_request ("GET", "EIO=4&transport=polling&sid=nope");
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_cmpuint (req->status, ==, 400);
  test_log_expect (G_LOG_LEVEL_WARNING, "without engine_io_host_request_finished");
  g_object_unref (req);
  g_assert_true (test_log_wait_expected (0));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
}

/* client_gone() at each stage of a request. */
static void
test_misuse_client_gone_stages (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  g_autofree char *sid2 = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *query = NULL;
  TestRequest *req;

  test_require (sid != NULL);

  /* During a POST's body: that POST is dropped, the session goes on. */
  req = direct_post (f, sid, 10);
  g_assert_true (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_true (engine_io_host_request_add_body (ENGINE_IO_HOST_REQUEST (req), (const guint8 *) "4ab", 3));
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_assert_false (req->responded);
  g_object_unref (req);
  g_assert_cmpuint (direct_post_text (f, sid, "4next"), ==, 200);

  /* Answered, not yet written. */
  req = direct_request ("GET", "EIO=4&transport=polling&sid=nope");
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_object_unref (req);

  /* A handshake awaiting admission: resumed by the admission, answered
   * (the host drops the answer). */
  req = direct_request ("GET", "EIO=4&transport=polling");
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_true (req->suspended);
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  g_assert_true (direct_wait_resume (req, TEST_TIMEOUT_MS));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (req));
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_object_unref (req);

  /* Before the hand-over, a poll: answered nothing, its session ends. */
  query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);
  req = direct_request ("GET", query);
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (req)));
  g_assert_false (req->responded);
  g_assert_false (req->suspended);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_object_unref (req);
  expected = g_strdup_printf ("close %s transport close", sid);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));

  /* Held, twice: one resume(), answered nothing. */
  sid2 = direct_open (f);
  test_require (sid2 != NULL);
  req = direct_held_poll (f, sid2);
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (req));
  g_assert_true (direct_wait_resume (req, TEST_TIMEOUT_MS));
  g_assert_false (direct_wait_resume (req, 100));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (req));
  g_assert_false (req->responded);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (req), FALSE);
  g_object_unref (req);
  g_free (expected);
  expected = g_strdup_printf ("close %s transport close", sid2);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));
}

typedef struct
{
  EngineIOSocket *socket;
  GMutex         *go;   /* held by the test until the race starts */
} SendJob;

static gpointer
send_after_go (gpointer data)
{
  SendJob *job = data;

  g_mutex_lock (job->go);
  g_mutex_unlock (job->go);
  engine_io_socket_send_text (job->socket, "race", NULL);
  return NULL;
}

/* A held poll's client leaves (client_gone() on the serving thread) just
 * as the application sends it a message from another thread: resume()
 * comes once, from either side; the poll is answered nothing, finished
 * and dropped; no race (TSan), no leak (ASan). */
static void
test_race_gone_vs_send (Fixture       *f,
                        gconstpointer  data)
{
  for (guint i = 0; i < 60; i++)
    {
      g_autofree char *sid = direct_open (f);
      g_autoptr(EngineIOSocket) socket = NULL;
      g_autoptr(TestRequest) poll = NULL;
      GMutex go;
      SendJob job;
      GThread *thread;

      test_require (sid != NULL);
      socket = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
      test_require (socket != NULL);
      poll = direct_held_poll (f, sid);
      g_mutex_init (&go);
      g_mutex_lock (&go);
      job.socket = socket;
      job.go = &go;
      thread = g_thread_new ("send", send_after_go, &job);
      g_mutex_unlock (&go);
      /* A jitter (not a synchronisation): the message sometimes first. */
      if (i % 3 != 0)
        g_usleep ((i % 7) * 100);
      engine_io_host_request_client_gone (ENGINE_IO_HOST_REQUEST (poll));
      g_assert_true (direct_wait_resume (poll, TEST_TIMEOUT_MS));
      poll->suspended = FALSE;
      engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
      /* Whoever resumed it, a poll whose client left is answered nothing. */
      g_assert_false (poll->suspended);
      g_assert_false (poll->responded);
      engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), FALSE);
      g_clear_object (&poll);
      g_thread_join (thread);
      g_mutex_clear (&go);
      engine_io_socket_close (socket);
    }
}

typedef struct
{
  EngineIOServer *server;
  gint64          took;
} CloseJob;

static gpointer
close_server (gpointer data)
{
  CloseJob *job = data;
  gint64 start = g_get_monotonic_time ();

  engine_io_server_close (job->server);
  job->took = g_get_monotonic_time () - start;
  return NULL;
}

/* engine_io_server_close() from another thread while one request is held
 * (a poll) and another is mid-body (a POST of another session): the poll
 * is resumed and answered with the close packet, the POST's next part is
 * refused; the close returns once both are finished, well before its
 * 2 s limit. Requests handed over afterwards are refused. */
static void
test_close_while_held (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  g_autofree char *sid2 = direct_open (f);
  g_autoptr(TestRequest) poll = NULL;
  g_autoptr(TestRequest) post = NULL;
  g_autofree char *body = NULL;
  g_autofree char *expected = NULL;
  CloseJob job = { f->lb.server, 0 };
  GThread *thread;

  test_require (sid != NULL && sid2 != NULL);
  poll = direct_held_poll (f, sid);
  post = direct_post (f, sid2, 10);
  g_assert_true (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (post)));
  g_assert_true (engine_io_host_request_add_body (ENGINE_IO_HOST_REQUEST (post), (const guint8 *) "4ab", 3));

  thread = g_thread_new ("close", close_server, &job);
  g_assert_true (direct_wait_resume (poll, TEST_TIMEOUT_MS));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_true (poll->responded);
  g_assert_cmpuint (poll->status, ==, 200);
  body = g_strndup (g_bytes_get_data (poll->body, NULL), g_bytes_get_size (poll->body));
  g_assert_cmpstr (body, ==, "1");
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), TRUE);

  expected = g_strdup_printf ("close %s", sid2);
  g_assert_true (test_recorder_wait_count (f->lb.events, expected, 1, TEST_TIMEOUT_MS));
  g_assert_false (engine_io_host_request_add_body (ENGINE_IO_HOST_REQUEST (post), (const guint8 *) "cdefghi", 7));
  g_assert_true (post->responded);
  g_assert_cmpuint (post->status, ==, 400);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (post), TRUE);
  g_thread_join (thread);
  g_assert_cmpint (job.took, <, 2 * G_USEC_PER_SEC);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);

  /* Requests handed over after the close: refused, nothing held. */
  {
    g_autofree char *query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);
    const char *queries[] = { "EIO=4&transport=polling", query };

    for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
      {
        g_autoptr(TestRequest) late = direct_request ("GET", queries[i]);

        g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (late)));
        g_assert_false (late->suspended);
        g_assert_true (late->responded);
        g_assert_cmpuint (late->status, >=, 400);
        engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (late), TRUE);
      }
  }
}

/* The application drops its server while a request of the host's is held:
 * the request's reference keeps it; the held poll is answered by its
 * session (a ping), the request finished and dropped; the session then
 * times out and everything is freed (ASan's leak check). */
static void
test_server_dropped_while_held (Fixture       *f,
                                gconstpointer  data)
{
  EngineIOServer *server = test_server_new ();
  EngineIOServer *saved = f->lb.server;
  g_autofree char *sid = NULL;
  g_autoptr(TestRequest) poll = NULL;
  GWeakRef weak;

  g_object_set (server, "ping-interval", 200u, "ping-timeout", 200u, NULL);
  f->lb.server = server;
  sid = direct_open (f);
  f->lb.server = saved;
  test_require (sid != NULL);
  {
    g_autofree char *query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);

    poll = direct_request ("GET", query);
  }
  g_assert_false (engine_io_server_handle_host_request (server, ENGINE_IO_HOST_REQUEST (poll)));
  g_assert_true (poll->suspended);
  g_weak_ref_init (&weak, server);
  g_object_unref (server);

  g_assert_true (direct_wait_resume (poll, TEST_TIMEOUT_MS));
  engine_io_host_request_resumed (ENGINE_IO_HOST_REQUEST (poll));
  g_assert_true (poll->responded);
  g_assert_cmpuint (poll->status, ==, 200);
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), TRUE);
  g_clear_object (&poll);
  /* No pong: the session times out and lets go of the server. */
  for (guint i = 0; i < TEST_TIMEOUT_MS / 10; i++)
    {
      g_autoptr(EngineIOServer) alive = g_weak_ref_get (&weak);

      if (alive == NULL)
        break;
      g_usleep (10000);
    }
  {
    g_autoptr(EngineIOServer) alive = g_weak_ref_get (&weak);

    g_assert_null (alive);
  }
  g_weak_ref_clear (&weak);
}

/* Attacks by a client through the host */

/* The session echoes a message over polling (on a connection of its own). */
static gboolean
session_echoes (Fixture    *f,
                const char *sid,
                const char *text)
{
  g_autoptr(TestHttp) http = test_http_new (f->lb.port);
  g_autofree char *target = test_eio_target (4, "polling", sid);
  g_autofree char *packet = g_strconcat ("4", text, NULL);
  g_autoptr(TestResponse) post = test_http_post (http, target, packet, strlen (packet));
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(GPtrArray) packets = NULL;

  if (post == NULL || post->status != 200)
    return FALSE;
  poll = test_http_get (http, target);
  packets = test_eio_poll_packets (poll, 4);
  return packets != NULL && packets->len >= 1 &&
         g_strcmp0 (g_ptr_array_index (packets, 0), packet) == 0;
}

/* An oversized Content-Length is refused before its body is read; a body
 * trickled in while another POST of its session comes: the overlap closes
 * the session (400), the trickled body's next part is refused (400); other
 * sessions go on. */
static void
test_attack_post_bodies (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *other = open_session (f);
  g_autofree char *target = NULL;
  g_autofree char *head = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(TestHttp) big = test_http_new (f->lb.port);
  g_autoptr(TestHttp) trickle = test_http_new (f->lb.port);
  g_autoptr(TestHttp) overlap = test_http_new (f->lb.port);
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) second = NULL;
  g_autoptr(TestResponse) rest = NULL;

  test_require (sid != NULL && other != NULL);
  target = test_eio_target (4, "polling", sid);

  head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n4", target);
  g_assert_true (test_http_send_raw (big, head, strlen (head), NULL));
  refused = test_http_receive (big, TEST_TIMEOUT_MS, NULL);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 413);
  g_assert_true (session_echoes (f, sid, "after 413"));

  g_free (head);
  head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n4trickled", target);
  g_assert_true (test_http_send_raw (trickle, head, strlen (head), NULL));
  g_assert_false (test_http_wait_readable (trickle, 200));
  second = test_http_post (overlap, target, TEST_S ("4second"));
  test_require (second != NULL);
  g_assert_cmpuint (second->status, ==, 400);
  expected = g_strdup_printf ("close %s transport error", sid);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));
  g_assert_true (test_http_send_raw (trickle, "0123456789012345678901234567890123456789x", 41, NULL));
  rest = test_http_receive (trickle, TEST_TIMEOUT_MS, NULL);
  test_require (rest != NULL);
  g_assert_true (test_eio_is_error (rest, 400, 1));
  g_assert_true (session_echoes (f, other, "unaffected"));
}

/* A second poll while one is held: 400 for it, the held one answered (its
 * serving thread freed), the session closed. */
static void
test_attack_overlapping_polls (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *target = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(TestHttp) second = test_http_new (f->lb.port);
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) held = NULL;

  test_require (sid != NULL);
  target = test_eio_target (4, "polling", sid);
  g_assert_true (test_http_send (f->lb.http, "GET", target, NULL, NULL, -1, NULL));
  g_assert_true (fixture_wait_count (f, &f->waiting, 1));
  refused = test_http_get (second, target);
  test_require (refused != NULL);
  g_assert_cmpuint (refused->status, ==, 400);
  held = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL);
  test_require (held != NULL);
  g_assert_cmpuint (held->status, ==, 200);
  g_assert_true (fixture_wait_count (f, &f->waiting, 0));
  expected = g_strdup_printf ("close %s transport error", sid);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));
}

/* Malformed queries: encoded NULs and broken escapes are 400 (code 3), a
 * huge or many-parameter query a plain refusal; the connection and the
 * session go on. */
static void
test_attack_queries (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autoptr(GString) many = g_string_new ("/engine.io/?EIO=4");
  g_autoptr(GString) huge = g_string_new ("/engine.io/?EIO=4&transport=polling&sid=");
  g_autoptr(TestResponse) response = NULL;
  const char *bad[] = { "sid=%s%%00junk", "sid=%s%%zz", "sid=%s%%", "sid=%s%%4", "sid%%00=%s",
                        "sid=%s&x=%%00" };

  test_require (sid != NULL);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *query = g_strdup_printf (bad[i], sid);
      g_autofree char *target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&%s", query);

      g_clear_pointer (&response, test_response_free);
      response = test_http_get (f->lb.http, target);
      test_require (response != NULL);
      if (!test_eio_is_error (response, 400, 3))
        g_error ("%s: answered %u", target, response->status);
    }
  {
    g_autofree char *target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s%%ff", sid);

    g_clear_pointer (&response, test_response_free);
    response = test_http_get (f->lb.http, target);
    test_require (response != NULL);
    g_assert_true (test_eio_is_error (response, 400, 1));
  }
  for (guint i = 0; many->len < 7000; i++)
    g_string_append_printf (many, "&p%u=%%41", i);
  g_string_append (many, "&transport=polling");
  g_clear_pointer (&response, test_response_free);
  response = test_http_get (f->lb.http, many->str);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);  /* a handshake */
  for (guint i = 0; huge->len < 8000; i++)
    g_string_append (huge, "%41%42");
  g_clear_pointer (&response, test_response_free);
  response = test_http_get (f->lb.http, huge->str);
  test_require (response != NULL);
  g_assert_true (test_eio_is_error (response, 400, 1));
  g_assert_true (session_echoes (f, sid, "after bad queries"));
}

/* Repeated headers: thousands of X-Forwarded-For lines from behind a
 * trusted proxy are joined within a bound; the last hop still decides. */
static void
test_attack_repeated_headers (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GString) request = g_string_new ("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  const char *proxies[] = { "127.0.0.1", NULL };

  g_object_set (f->lb.server, "trusted-proxies", proxies, NULL);
  for (guint i = 0; i < 3000; i++)
    g_string_append_printf (request, "X-Forwarded-For: 10.0.%u.%u, 10.1.%u.%u\r\n",
                            i / 256, i % 256, i / 256, i % 256);
  g_string_append (request, "X-Forwarded-For: 192.0.2.7\r\nOrigin: x\r\nOrigin: y\r\n\r\n");
  g_assert_true (test_http_send_raw (f->lb.http, request->str, request->len, NULL));
  response = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, NULL);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  socket = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
  test_require (socket != NULL);
  g_assert_cmpstr (engine_io_socket_get_remote_address (socket), ==, "192.0.2.7");
}

/* Upgrades abandoned at each step: the session stays on polling and
 * echoes. */
static void
test_attack_abandoned_upgrades (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *sid = open_session (f);
  g_autofree char *target = NULL;

  test_require (sid != NULL);
  target = test_eio_target (4, "websocket", sid);
  for (guint step = 0; step < 4; step++)
    {
      g_autofree char *text = g_strdup_printf ("after step %u", step);

      if (step == 0)
        {
          /* The upgrade request, then gone before the 101 is read. */
          g_autoptr(TestHttp) http = test_http_new (f->lb.port);
          g_autofree char *key = test_ws_make_key ();
          g_autofree char *head = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                                   "Sec-WebSocket-Version: 13\r\n\r\n", target, key);

          g_assert_true (test_http_send_raw (http, head, strlen (head), NULL));
          test_http_drop (http, TRUE);
        }
      else if (step == 1)
        {
          /* The 101 read, then gone without a frame. */
          g_autoptr(TestWs) ws = test_ws_connect (f->lb.port, target, NULL, 0, NULL, NULL);

          test_require (ws != NULL);
          test_ws_drop (ws, step == 1);
        }
      else
        {
          /* Probed (2probe, 3probe), then gone before `5`, by FIN or RST. */
          g_autoptr(TestWs) ws = test_eio_probe (f->lb.port, 4, sid);

          test_require (ws != NULL);
          test_ws_drop (ws, step == 3);
        }
      g_assert_true (session_echoes (f, sid, text));
    }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
}

/* A flood of handshakes from one address: handshake-rate sees the host's
 * remote-address (429 past the burst), max-sessions bounds the sessions;
 * an open session goes on. */
static void
test_attack_handshake_flood (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = test_eio_target (4, "polling", NULL);
  guint ok = 0, limited = 0;

  g_object_set (f->lb.server, "handshake-rate", 0.5, "handshake-burst", 20u, "max-sessions", 10u, NULL);
  sid = open_session (f);
  test_require (sid != NULL);
  for (guint i = 0; i < 100; i++)
    {
      g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);

      test_require (response != NULL);
      if (response->status == 200)
        ok++;
      else if (response->status == 429)
        limited++;
      else
        g_assert_cmpuint (response->status, ==, 503);
    }
  g_assert_cmpuint (ok, ==, 9);
  g_assert_cmpuint (limited, >=, 70);  /* the burst, and a refill meanwhile */
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 10);
  g_assert_true (session_echoes (f, sid, "still here"));
}

/* A host that gives up on a held poll (finished() refused: a critical) and
 * drops it: the engine's reference keeps it until the session resumes it
 * (a message); the last reference then goes on that thread, which lets go
 * of the request (a warning) as one whose connection failed: the session
 * ends at once (transport close), nothing is left for close to wait for. */
static void
test_misuse_abandon_suspended (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = direct_open (f);
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *expected = NULL;
  TestRequest *poll;
  GWeakRef weak;

  test_require (sid != NULL);
  socket = g_async_queue_timeout_pop (f->lb.sockets, TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND);
  test_require (socket != NULL);
  poll = direct_held_poll (f, sid);
  g_weak_ref_init (&weak, poll);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "suspended request");
  engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), FALSE);
  g_object_unref (poll);
  {
    g_autoptr(GObject) alive = g_weak_ref_get (&weak);

    g_assert_nonnull (alive);
  }
  test_log_expect (G_LOG_LEVEL_WARNING, "without engine_io_host_request_finished");
  g_assert_true (engine_io_socket_send_text (socket, "kept", NULL));
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
  {
    g_autoptr(GObject) alive = g_weak_ref_get (&weak);

    g_assert_null (alive);
  }
  g_weak_ref_clear (&weak);
  /* Its connection is gone for the session: it ends (transport close). */
  expected = g_strdup_printf ("close %s transport close", sid);
  g_assert_true (test_recorder_wait (f->lb.events, expected, TEST_TIMEOUT_MS));
}

/* A POST held by back-pressure (the session's send queue over its high
 * water: the echoes of a client that does not poll) whose client leaves:
 * client_gone() does not resume it (its body was read whole: it is still
 * delivered); it is resumed when the queue drains (here, a poll) or the
 * session ends, and answered; the host drops the answer. */
static void
test_held_post_client_gone (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *big = g_strnfill (300, 'x');
  g_autoptr(TestRequest) post = NULL;
  g_autoptr(TestRequest) poll = NULL;
  EngineIOHostRequest *host;

  g_object_set (f->lb.server, "send-queue-high-water", (guint64) 200,
                "backpressure-policy", ENGINE_IO_BACKPRESSURE_KEEP_QUEUING, NULL);
  sid = direct_open (f);
  test_require (sid != NULL);
  big[0] = '4';
  g_assert_cmpuint (direct_post_text (f, sid, big), ==, 200);
  /* Once the echo is queued (the client does not poll), a POST is held. */
  for (guint i = 0; i < 100; i++)
    {
      g_clear_object (&post);
      post = direct_post (f, sid, 5);
      host = ENGINE_IO_HOST_REQUEST (post);
      g_assert_true (engine_io_server_handle_host_request (f->lb.server, host));
      g_assert_true (engine_io_host_request_add_body (host, (const guint8 *) "4held", 5));
      engine_io_host_request_end_body (host);
      if (post->suspended)
        break;
      test_require (post->responded);
      g_assert_cmpuint (post->status, ==, 200);
      engine_io_host_request_finished (host, TRUE);
      g_usleep (10000);  /* the echo is queued by the session's thread */
    }
  test_require (post->suspended);
  engine_io_host_request_client_gone (host);
  g_assert_false (direct_wait_resume (post, 300));
  /* The queue drains: resumed, answered (the host drops the answer). */
  {
    g_autofree char *query = g_strdup_printf ("EIO=4&transport=polling&sid=%s", sid);

    poll = direct_request ("GET", query);
    g_assert_false (engine_io_server_handle_host_request (f->lb.server, ENGINE_IO_HOST_REQUEST (poll)));
    g_assert_true (poll->responded);
    engine_io_host_request_finished (ENGINE_IO_HOST_REQUEST (poll), TRUE);
  }
  g_assert_true (direct_wait_resume (post, TEST_TIMEOUT_MS));
  post->suspended = FALSE;
  engine_io_host_request_resumed (host);
  g_assert_true (post->responded);
  engine_io_host_request_finished (host, FALSE);
}

/* engine_io_server_start(): an invalid configuration is reported there
 * (not at the first request); a started server starts again as a no-op;
 * a closed one does not. */
static void
test_start (void)
{
  g_autoptr(EngineIOServer) invalid = engine_io_server_new ();
  g_autoptr(EngineIOServer) server = engine_io_server_new ();
  g_autoptr(GError) error = NULL;

  g_object_set (invalid, "cors-origin", "*", "cors-credentials", TRUE, NULL);
  g_assert_false (engine_io_server_start (invalid, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  g_assert_true (engine_io_server_start (server, &error));
  g_assert_no_error (error);
  g_assert_true (engine_io_server_start (server, NULL));
  engine_io_server_close (server);
  g_assert_false (engine_io_server_start (server, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  engine_io_server_close (invalid);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

#define ADD(name, func) \
  g_test_add ("/host/" name, Fixture, NULL, fixture_setup, func, fixture_teardown)
  g_test_add_func ("/host/start", test_start);
  ADD ("polling-echo", test_polling_echo);
  ADD ("websocket", test_websocket);
  ADD ("max-payload", test_max_payload);
  ADD ("client-leaves-held-poll", test_client_leaves_held_poll);
  ADD ("resume-stress", test_resume_stress);
  ADD ("misuse/order", test_misuse_order);
  ADD ("misuse/resumed-early", test_misuse_resumed_early);
  ADD ("misuse/handle-after-finished", test_misuse_handle_after_finished);
  ADD ("misuse/drop-unfinished", test_misuse_drop_unfinished);
  ADD ("misuse/client-gone-stages", test_misuse_client_gone_stages);
  ADD ("misuse/abandon-suspended", test_misuse_abandon_suspended);
  ADD ("held-post-client-gone", test_held_post_client_gone);
  ADD ("race/gone-vs-send", test_race_gone_vs_send);
  ADD ("close-while-held", test_close_while_held);
  ADD ("server-dropped-while-held", test_server_dropped_while_held);
  ADD ("attack/post-bodies", test_attack_post_bodies);
  ADD ("attack/overlapping-polls", test_attack_overlapping_polls);
  ADD ("attack/queries", test_attack_queries);
  ADD ("attack/repeated-headers", test_attack_repeated_headers);
  ADD ("attack/abandoned-upgrades", test_attack_abandoned_upgrades);
  ADD ("attack/handshake-flood", test_attack_handshake_flood);
#undef ADD

  return g_test_run ();
}
