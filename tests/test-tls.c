/* test-tls.c: EngineIOServer:tls-certificate against the real server over
 * loopback: a test CA and a server certificate are made with `openssl` in
 * a temporary directory, and GIO's TLS client (glib-networking), trusting
 * only that CA, speaks polling and WebSocket over https and wss.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio-loop-private.h"

typedef struct
{
  TestLoopback    lb;                /* sessions echo */
  guint64         idle_descriptors;  /* what the server counts with no client */
} Fixture;

static guint64
server_descriptors (EngineIOServer *server)
{
  g_autoptr(EngineIOMetrics) metrics = engine_io_server_get_metrics (server);

  return engine_io_metrics_get_descriptors (metrics);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;

  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_ECHO;
  certificate = test_tls_certificate_new (&error);
  g_assert_no_error (error);
  g_object_set (f->lb.server, "tls-certificate", certificate, NULL);
  /* @data: a heartbeat (ping-interval = ping-timeout, ms), or the default */
  if (data != NULL)
    g_object_set (f->lb.server, "ping-interval", GPOINTER_TO_UINT (data),
                  "ping-timeout", GPOINTER_TO_UINT (data), NULL);
  test_loopback_listen (&f->lb);
  f->idle_descriptors = server_descriptors (f->lb.server);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (&f->lb);
  test_log_check ();
}

static gboolean
stream_write (GIOStream   *stream,
              const void  *data,
              gsize        length)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_io_stream_get_output_stream (stream), data, length, NULL, NULL, &error);
  g_assert_no_error (error);
  return error == NULL;
}

/* One HTTP/1.1 request with `Connection: close` over a new TLS connection;
 * returns the body of a 200 response, NULL otherwise (the test failed). */
static char *
https_request (guint       port,
               const char *method,
               const char *target,
               const char *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = test_tls_connect (port, TRUE, &error);
  g_autoptr(GString) request = g_string_new (NULL);
  g_autoptr(GByteArray) in = g_byte_array_new ();
  guint status = 0;
  const char *head_end;

  g_assert_no_error (error);
  test_require_val (stream != NULL, NULL);
  g_string_printf (request, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n",
                   method, target, port);
  if (body != NULL)
    g_string_append_printf (request, "Content-Type: text/plain;charset=UTF-8\r\nContent-Length: %zu\r\n",
                            strlen (body));
  g_string_append (request, "\r\n");
  if (body != NULL)
    g_string_append (request, body);
  test_require_val (stream_write (stream, request->str, request->len), NULL);
  for (;;)
    {
      guint8 buf[4096];
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (stream), buf, sizeof buf, NULL, &error);

      if (n <= 0)
        break;
      g_byte_array_append (in, buf, (guint) n);
    }
  /* A peer that closes without close_notify is an error to GIO; the
   * response is whole all the same (Connection: close). */
  g_clear_error (&error);
  g_byte_array_append (in, (const guint8 *) "", 1);
  test_require_val (sscanf ((const char *) in->data, "HTTP/1.1 %u", &status) == 1, NULL);
  g_assert_cmpuint (status, ==, 200);
  head_end = strstr ((const char *) in->data, "\r\n\r\n");
  test_require_val (status == 200 && head_end != NULL, NULL);
  return g_strdup (head_end + 4);
}

static void
test_polling (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *open = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *ok = NULL;
  g_autofree char *echo = NULL;
  const char *start, *end;

  g_test_summary ("Polling over https: handshake, a message and its echo");
  test_require (f->lb.port != 0);
  open = https_request (f->lb.port, "GET", "/engine.io/?EIO=4&transport=polling", NULL);
  test_require (open != NULL && open[0] == '0');
  start = strstr (open, "\"sid\":\"");
  test_require (start != NULL);
  start += strlen ("\"sid\":\"");
  end = strchr (start, '"');
  test_require (end != NULL);
  sid = g_strndup (start, end - start);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
  ok = https_request (f->lb.port, "POST", target, "4hello over https");
  g_assert_cmpstr (ok, ==, "ok");
  {
    g_autofree char *event = g_strdup_printf ("message %s hello over https", sid);
    g_assert_true (test_recorder_wait (f->lb.events, event, TEST_TIMEOUT_MS));
  }
  echo = https_request (f->lb.port, "GET", target, NULL);
  g_assert_cmpstr (echo, ==, "4hello over https");
}

/* TCP_NODELAY on the server's end of @socket's TCP connection (in this
 * process: the descriptor whose peer is the client's address), or -1 if
 * it is not found. */
static int
server_end_nodelay (GSocket *socket)
{
  g_autoptr(GSocketAddress) local = NULL;
  struct sockaddr_in client;
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  local = g_socket_get_local_address (socket, NULL);
  g_assert_nonnull (local);
  g_assert_true (g_socket_address_to_native (local, &client, sizeof client, NULL));
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      int fd = atoi (name);
      struct sockaddr_in peer;
      socklen_t length = sizeof peer;
      int value = 0;
      socklen_t value_length = sizeof value;

      if (getpeername (fd, (struct sockaddr *) &peer, &length) == 0 &&
          peer.sin_family == AF_INET && peer.sin_port == client.sin_port &&
          peer.sin_addr.s_addr == client.sin_addr.s_addr &&
          getsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &value, &value_length) == 0)
        return value != 0;
    }
  return -1;
}

static void
test_websocket (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *big = NULL;
  g_autofree char *echo = NULL;
  g_autofree char *big_echo = NULL;
  guint64 during, expected;

  g_test_summary ("A direct WebSocket over wss: 101, the open packet, a message and its "
                  "echo, and a 20 KB message through libmicrohttpd's TLS relay");
  test_require (f->lb.port != 0);
  /* The shared WebSocket client, over TLS trusting only the test CA; it
   * checks the 101 and its Sec-WebSocket-Accept. */
  test_ws_use_tls (test_tls_ca_file ());
  ws = test_eio_ws_open_try (f->lb.port, 4, NULL, 0, TEST_TIMEOUT_MS, &open, &error);
  test_ws_use_tls (NULL);
  g_assert_no_error (error);
  test_require (ws != NULL);
  g_assert_nonnull (open->sid);
  test_require (test_ws_send_text (ws, "4hello over wss"));
  echo = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (echo, ==, "hello over wss");
  /* libmicrohttpd's relay writes a message as several TLS records: with
   * Nagle's algorithm on, each after the first waited for the client's
   * delayed ACK (about 40 ms a message; ws-conformance-tls took 87 s
   * instead of 58). */
  g_assert_cmpint (server_end_nodelay (test_ws_get_socket (ws)), ==, 1);

  big = g_strnfill (20000, 'x');
  big[0] = '4';
  test_require (test_ws_send_text (ws, big));
  big_echo = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (big_echo, ==, big + 1);

  /* The WebSocket holds its connection and the relay's socketpair (and,
   * with a thread per session, the session's context; a loop thread's
   * context stays with the server). Once the client is gone they are
   * released: libmicrohttpd 0.9.75 does not pass the client's close on
   * through its relay, so the session ends when its next ping fails (1 s
   * here), as for a client that vanished without a word. */
  during = server_descriptors (f->lb.server);
  expected = during - 3 - (test_loop_threads_from_env () == 0 ? ENGINE_IO_CONTEXT_DESCRIPTORS : 0);
  g_assert_cmpuint (during, >=, f->idle_descriptors + 3);
  g_clear_pointer (&ws, test_ws_free);
  {
    gint64 deadline = g_get_monotonic_time () + (2000 + (gint64) TEST_TIMEOUT_MS) * 1000;

    while (server_descriptors (f->lb.server) != expected && g_get_monotonic_time () < deadline)
      g_usleep (20000);
  }
  g_assert_cmpuint (server_descriptors (f->lb.server), ==, expected);
}

/* The descriptors of this process that are Unix-domain sockets: over TLS,
 * libmicrohttpd relays an upgraded connection through a socketpair whose
 * one end is the session's. */
static guint
count_unix_sockets (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      int domain = 0;
      socklen_t length = sizeof domain;

      if (getsockopt (atoi (name), SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 &&
          domain == AF_UNIX)
        n++;
    }
  return n;
}

static void
blocking_on_connection (TestLoopback   *lb,
                        EngineIOSocket *socket,
                        gpointer        user_data)
{
  /* Only the WebSocket session blocks and is waited for: the keep-alive
   * connection's polling session ends with the close, long before it (when
   * its finalization was the one waited for, the test freed its recorder
   * while the WebSocket session could still emit ::close into it: TSan). */
  if (engine_io_socket_get_transport (socket) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    test_blocker_connect (user_data, socket);
}

/* An idle keep-alive https connection: a polling handshake answered, the
 * connection left open. */
static GIOStream *
keep_alive_connection (guint port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = test_tls_connect (port, TRUE, &error);
  g_autofree char *request = g_strdup_printf ("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                                              "Host: 127.0.0.1:%u\r\n\r\n", port);
  g_autoptr(GString) in = g_string_new (NULL);
  gsize body_start = 0;  /* 0 until the head is in */
  gsize length = 0;

  g_assert_no_error (error);
  test_require_val (stream != NULL, NULL);
  test_require_val (stream_write (stream, request, strlen (request)), NULL);
  /* The head, then Content-Length bytes of body. */
  while (body_start == 0 || in->len < body_start + length)
    {
      char buf[4096];
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (stream), buf, sizeof buf,
                                      NULL, &error);
      const char *head_end;

      g_assert_no_error (error);
      test_require_val (n > 0, NULL);
      g_string_append_len (in, buf, n);
      if (body_start == 0 && (head_end = strstr (in->str, "\r\n\r\n")) != NULL)
        {
          const char *cl = g_strstr_len (in->str, head_end - in->str, "Content-Length: ");

          test_require_val (g_str_has_prefix (in->str, "HTTP/1.1 200") && cl != NULL, NULL);
          length = strtoul (cl + strlen ("Content-Length: "), NULL, 10);
          body_start = (gsize) (head_end + 4 - in->str);
        }
    }
  return g_steal_pointer (&stream);
}

static void
test_close_blocked_session (void)
{
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  TestLoopback lb = { NULL, };
  TestBlocker blocker;
  guint unix_before, unix_during, unix_after_close, unix_after;
  gint64 start;
  GSocketClient *client;
  GSocketConnection *refused;
  g_autoptr(GIOStream) keep_alive = NULL;
  g_autoptr(GError) read_error = NULL;
  char byte;
  gssize n;

  g_test_summary ("engine_io_server_close() over TLS while a WebSocket session's handler "
                  "blocks longer than the close waits (10 s): the session's end of "
                  "libmicrohttpd's relay stays open (never a descriptor closed under it "
                  "that could be reused) and, once the handler returns, the session ends "
                  "and everything is released; no use of the freed daemon (ASan), the "
                  "port is free as soon as close() returns, and an idle keep-alive "
                  "connection is ended by then too (not left open, unserved, for as long "
                  "as the handler blocks)");
  test_blocker_init (&blocker);
  test_loopback_init (&lb);
  lb.on_connection = blocking_on_connection;
  lb.user_data = &blocker;
  certificate = test_tls_certificate_new (&error);
  g_assert_no_error (error);
  /* The suite's threading mode (test_server_new()): with a thread per
   * session the blocked handler blocks its own session only; with a pool,
   * its shared thread (the pool's shutdown quits it: it goes on until its
   * sessions let go, or they never ended). */
  g_object_set (lb.server, "tls-certificate", certificate, NULL);
  test_require (test_loopback_listen (&lb));
  unix_before = count_unix_sockets ();

  test_ws_use_tls (test_tls_ca_file ());
  ws = test_eio_ws_open_try (lb.port, 4, NULL, 0, TEST_TIMEOUT_MS, NULL, &error);
  test_ws_use_tls (NULL);
  g_assert_no_error (error);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "4block"));
  test_require (test_blocker_wait_entered (&blocker, TEST_TIMEOUT_MS));
  unix_during = count_unix_sockets ();
  g_assert_cmpuint (unix_during, ==, unix_before + 2);  /* the relay's socketpair */
  keep_alive = keep_alive_connection (lb.port);
  test_require (keep_alive != NULL);

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "session threads did not end in time");
  start = g_get_monotonic_time ();
  engine_io_server_close (lb.server);
  g_test_message ("close() returned after %.1f s",
                  (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
  unix_after_close = count_unix_sockets ();
  /* The port is closed at once. */
  client = g_socket_client_new ();
  g_socket_client_set_enable_proxy (client, FALSE);  /* as test_tls_connect() */
  refused = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) lb.port, NULL, NULL);
  g_assert_null (refused);
  g_clear_object (&refused);
  g_object_unref (client);
  /* Still the session's: libmicrohttpd closed it before, while the
   * session could still write to it. */
  g_assert_cmpuint (unix_after_close, ==, unix_during);
  /* The keep-alive connection has ended (no close_notify: an error to
   * GIO), not waiting: it was left open, unserved, while the handler
   * blocked. */
  g_socket_set_timeout (g_socket_connection_get_socket (G_SOCKET_CONNECTION (keep_alive)), 3);
  n = g_input_stream_read (g_io_stream_get_input_stream (keep_alive), &byte, 1, NULL, &read_error);
  g_test_message ("keep-alive connection after close(): %" G_GSSIZE_FORMAT " (%s)", n,
                  read_error != NULL ? read_error->message : "end of stream");
  g_assert_cmpint (n, <=, 0);
  g_assert_false (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
  g_clear_object (&keep_alive);

  test_blocker_release (&blocker);
  unix_after = test_wait_count_at_most (count_unix_sockets, unix_before, 10000 + TEST_TIMEOUT_MS);
  g_assert_cmpuint (unix_after, ==, unix_before);
  g_assert_true (test_blocker_wait_finalized (&blocker, TEST_TIMEOUT_MS));

  g_clear_pointer (&ws, test_ws_free);
  test_loopback_clear (&lb);
  g_assert_true (test_blocker_wait_returned (&blocker, TEST_TIMEOUT_MS));
  test_blocker_clear (&blocker);
  test_log_check ();
}

static void
test_untrusted (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = NULL;

  g_test_summary ("The server presents the configured certificate: a client that does not "
                  "trust the test CA refuses it; plain HTTP gets no HTTP answer");
  test_require (f->lb.port != 0);
  stream = test_tls_connect (f->lb.port, FALSE, &error);
  g_assert_null (stream);
  g_assert_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);

  {
    g_autoptr(TestHttp) http = test_http_new (f->lb.port);
    g_autoptr(GError) http_error = NULL;
    g_autoptr(TestResponse) response = test_http_request (http, "GET", "/engine.io/?EIO=4&transport=polling",
                                                          NULL, NULL, -1, TEST_TIMEOUT_MS, &http_error);
    g_assert_null (response);
    g_assert_nonnull (http_error);
  }
}

static void
test_no_key (void)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *pem = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;

  g_test_summary ("A certificate without its private key: listen() fails with a GError");
  g_file_get_contents (test_tls_cert_file (), &pem, NULL, &error);
  g_assert_no_error (error);
  certificate = g_tls_certificate_new_from_pem (pem, -1, &error);
  g_assert_no_error (error);
  test_require (certificate != NULL);
  g_object_set (server, "tls-certificate", certificate, NULL);
  g_assert_false (engine_io_server_listen (server, "127.0.0.1", 0, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (engine_io_server_get_port (server), ==, 0);
  engine_io_server_close (server);
  test_log_check ();
}

static void
test_close_blocked_in_handshake (gconstpointer data)
{
  const char *where = data;
  gboolean websocket = g_str_equal (where, "connection-websocket");
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *head = NULL;
  TestBlocker b;
  guint port;
  char buf[256];
  gssize n;
  guint status = 0;

  g_test_summary ("engine_io_server_close() over TLS while the admission hook or a WebSocket "
                  "session's ::connection blocks past the close's wait: the handshake is "
                  "answered 503 (libmicrohttpd aborted the process at its stop before)");
  test_blocker_init (&b);
  certificate = test_tls_certificate_new (&error);
  g_assert_no_error (error);
  g_object_set (server, "tls-certificate", certificate, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  if (websocket)
    g_signal_connect (server, "connection", G_CALLBACK (test_blocker_on_connection), &b);
  else
    engine_io_server_set_admission_func (server, test_blocker_admission, &b, NULL);
  port = test_server_listen (server);
  test_require (port != 0);

  stream = test_tls_connect (port, TRUE, &error);
  g_assert_no_error (error);
  test_require (stream != NULL);
  if (websocket)
    head = g_strdup_printf ("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                            "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key);
  else
    head = g_strdup ("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n");
  test_require (stream_write (stream, head, strlen (head)));
  test_require (test_blocker_wait_entered (&b, TEST_TIMEOUT_MS));

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  engine_io_server_close (server);
  n = g_input_stream_read (g_io_stream_get_input_stream (stream), buf, sizeof buf - 1, NULL, &error);
  g_assert_no_error (error);
  test_require (n > 0);
  buf[n] = '\0';
  test_require (sscanf (buf, "HTTP/1.1 %u", &status) == 1);
  g_assert_cmpuint (status, ==, 503);
  test_blocker_release (&b);
  g_assert_true (test_blocker_wait_returned (&b, TEST_TIMEOUT_MS));
  g_clear_object (&server);
  if (websocket)
    g_assert_true (test_blocker_wait_finalized (&b, TEST_TIMEOUT_MS));
  test_blocker_clear (&b);
  test_log_check ();
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

  if (!test_tls_ca_make ())
    {
      /* A missing tool is a failure, not a skip. */
      g_printerr ("test-tls: cannot make the test CA with openssl\n");
      test_tls_ca_remove ();
      return 1;
    }
  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_printerr ("test-tls: GIO has no TLS backend (install glib-networking)\n");
      test_tls_ca_remove ();
      return 1;
    }

  g_test_add_func ("/tls/no-key", test_no_key);
  g_test_add ("/tls/polling", Fixture, NULL, fixture_setup, test_polling, fixture_teardown);
  g_test_add ("/tls/websocket", Fixture, GUINT_TO_POINTER (1000), fixture_setup, test_websocket,
              fixture_teardown);
  g_test_add ("/tls/untrusted", Fixture, NULL, fixture_setup, test_untrusted, fixture_teardown);
  g_test_add_func ("/tls/close-blocked-session", test_close_blocked_session);
  g_test_add_data_func ("/tls/close-blocked-in-handshake/admission", "admission",
                        test_close_blocked_in_handshake);
  g_test_add_data_func ("/tls/close-blocked-in-handshake/connection-websocket", "connection-websocket",
                        test_close_blocked_in_handshake);

  status = g_test_run ();
  test_tls_ca_remove ();
  return status;
}
