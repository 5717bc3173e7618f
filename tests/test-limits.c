/* test-limits.c: the server's limits (connection-timeout, handshake-rate,
 * message-rate, allowed-origins) against the real server over loopback,
 * with the HTTP and WebSocket clients of testutil.c and wsutil.c
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio-server-private.h"
#include "engineio-limits-private.h"

/* The shared loopback fixture; sessions echo. */
typedef TestLoopback Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->watch = TEST_WATCH_ECHO;
}

/* Listens once the test has set its properties. */
static gboolean
start (Fixture *f)
{
  return test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

static EngineIOMetrics *
metrics (Fixture *f)
{
  return engine_io_server_get_metrics (f->server);
}

/* ------------------------------------------------------------------ */
/* Raw TCP, for half requests and other source addresses                */
/* ------------------------------------------------------------------ */

/* A TCP connection to 127.0.0.1:@port from @source (a loopback address,
 * port picked by the kernel), blocking with a 20 s timeout per call. */
static GSocket *
raw_connect (const char *source,
             guint       port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, &error);
  g_autoptr(GInetAddress) from = g_inet_address_new_from_string (source);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (from, 0);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) remote = g_inet_socket_address_new (loopback, (guint16) port);

  g_assert_no_error (error);
  g_socket_set_timeout (socket, 20);
  if (!g_socket_bind (socket, local, FALSE, &error) ||
      !g_socket_connect (socket, remote, NULL, &error))
    {
      g_test_fail_printf ("connect from %s: %s", source, error->message);
      return NULL;
    }
  return g_steal_pointer (&socket);
}

static gboolean
raw_send (GSocket    *socket,
          const char *text)
{
  g_autoptr(GError) error = NULL;
  gsize length = strlen (text);
  gsize done = 0;

  while (done < length)
    {
      gssize n = g_socket_send (socket, text + done, length - done, NULL, &error);
      if (n <= 0)
        {
          g_test_fail_printf ("send: %s", error ? error->message : "nothing sent");
          return FALSE;
        }
      done += (gsize) n;
    }
  return TRUE;
}

/* A GET with `Connection: close` from @source; the status (0 on failure)
 * and, in @out_text, the whole response. */
static guint
raw_get_from (const char  *source,
              guint        port,
              const char  *target,
              char       **out_text)
{
  g_autoptr(GSocket) socket = raw_connect (source, port);
  g_autofree char *request = NULL;
  g_autoptr(GString) in = g_string_new (NULL);
  guint status = 0;

  if (socket == NULL)
    return 0;
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
                             target, port);
  if (!raw_send (socket, request))
    return 0;
  for (;;)
    {
      char buffer[4096];
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_receive (socket, buffer, sizeof buffer, NULL, &error);
      if (n < 0)
        {
          g_test_fail_printf ("receive from %s: %s", source, error->message);
          return 0;
        }
      if (n == 0)
        break;
      g_string_append_len (in, buffer, n);
    }
  if (g_str_has_prefix (in->str, "HTTP/1.1 ") && in->len >= 12)
    status = (guint) g_ascii_strtoull (in->str + 9, NULL, 10);
  if (out_text != NULL)
    *out_text = g_strdup (in->str);
  return status;
}

/* Waits for the server to close @socket; the time it took (µs), or -1
 * if it sent data instead or stayed open for @timeout_ms. */
static gint64
raw_wait_closed (GSocket *socket,
                 guint    timeout_ms)
{
  gint64 start = g_get_monotonic_time ();
  char buffer[256];
  g_autoptr(GError) error = NULL;
  gssize n;

  if (!g_socket_condition_timed_wait (socket, G_IO_IN, (gint64) timeout_ms * 1000, NULL, NULL))
    return -1;
  n = g_socket_receive (socket, buffer, sizeof buffer, NULL, &error);
  if (n > 0)
    {
      g_test_message ("server sent %" G_GSSIZE_FORMAT " bytes instead of closing: %.*s", n, (int) n, buffer);
      return -1;
    }
  /* EOF, or a reset */
  return g_get_monotonic_time () - start;
}

/* ------------------------------------------------------------------ */
/* The token bucket, with a clock of our own                            */
/* ------------------------------------------------------------------ */

static void
test_token_bucket (void)
{
  EngineIOTokenBucket bucket = { 0, 0 };
  const gint64 t0 = 1000 * G_USEC_PER_SEC;

  g_test_summary ("The token bucket: a fresh bucket is full, takes one token per event, refills "
                  "at the rate up to its size; a burst of 0 means one second's worth, at least 1");

  g_assert_cmpfloat (engine_io_token_bucket_capacity (2.5, 0), ==, 3);
  g_assert_cmpfloat (engine_io_token_bucket_capacity (3, 0), ==, 3);
  g_assert_cmpfloat (engine_io_token_bucket_capacity (0.1, 0), ==, 1);
  g_assert_cmpfloat (engine_io_token_bucket_capacity (100, 7), ==, 7);

  g_assert_true (engine_io_token_bucket_take (&bucket, 1, 2, t0));
  g_assert_true (engine_io_token_bucket_take (&bucket, 1, 2, t0));
  g_assert_false (engine_io_token_bucket_take (&bucket, 1, 2, t0));
  g_assert_cmpuint (engine_io_token_bucket_retry_after (&bucket, 1), ==, 1);
  g_assert_cmpuint (engine_io_token_bucket_retry_after (&bucket, 0.1), ==, 10);
  /* Half a token after half a second: still refused, not consumed. */
  g_assert_false (engine_io_token_bucket_take (&bucket, 1, 2, t0 + G_USEC_PER_SEC / 2));
  g_assert_true (engine_io_token_bucket_take (&bucket, 1, 2, t0 + G_USEC_PER_SEC));
  g_assert_false (engine_io_token_bucket_take (&bucket, 1, 2, t0 + G_USEC_PER_SEC));
  g_assert_false (engine_io_token_bucket_is_full (&bucket, 1, 2, t0 + G_USEC_PER_SEC));
  /* Never more than the size, however long it rested. */
  g_assert_true (engine_io_token_bucket_is_full (&bucket, 1, 2, t0 + 3 * G_USEC_PER_SEC));
  g_assert_true (engine_io_token_bucket_take (&bucket, 1, 2, t0 + 100 * G_USEC_PER_SEC));
  g_assert_true (engine_io_token_bucket_take (&bucket, 1, 2, t0 + 100 * G_USEC_PER_SEC));
  g_assert_false (engine_io_token_bucket_take (&bucket, 1, 2, t0 + 100 * G_USEC_PER_SEC));
  /* A clock that goes back refills nothing. */
  g_assert_false (engine_io_token_bucket_take (&bucket, 1, 2, t0));
}

/* ------------------------------------------------------------------ */
/* Properties                                                           */
/* ------------------------------------------------------------------ */

static void
test_defaults (Fixture       *f,
               gconstpointer  data)
{
  guint timeout = 0, handshake_burst = 1, message_burst = 1;
  double handshake_rate = 1, message_rate = 1;
  EngineIORateLimitPolicy policy = ENGINE_IO_RATE_LIMIT_DROP;
  g_auto(GStrv) origins = NULL;
  g_auto(GStrv) back = NULL;
  const char *good[] = { "https://good.example", "http://localhost:8080", "null", "http://[::1]:3000", NULL };

  g_test_summary ("The limits' defaults (timeout 30 s, no rate limits, policy close, any origin), "
                  "read back as set, and frozen at listen");

  g_object_get (f->server,
                "connection-timeout", &timeout,
                "handshake-rate", &handshake_rate,
                "handshake-burst", &handshake_burst,
                "message-rate", &message_rate,
                "message-burst", &message_burst,
                "message-rate-policy", &policy,
                "allowed-origins", &origins,
                NULL);
  g_assert_cmpuint (timeout, ==, 30);
  g_assert_cmpfloat (handshake_rate, ==, 0);
  g_assert_cmpuint (handshake_burst, ==, 0);
  g_assert_cmpfloat (message_rate, ==, 0);
  g_assert_cmpuint (message_burst, ==, 0);
  g_assert_cmpint (policy, ==, ENGINE_IO_RATE_LIMIT_CLOSE);
  g_assert_null (origins);

  g_object_set (f->server,
                "connection-timeout", 5u,
                "handshake-rate", 0.5,
                "handshake-burst", 4u,
                "message-rate", 100.0,
                "message-burst", 200u,
                "message-rate-policy", ENGINE_IO_RATE_LIMIT_DROP,
                "allowed-origins", good,
                NULL);
  test_require (start (f));
  g_object_get (f->server,
                "connection-timeout", &timeout,
                "handshake-rate", &handshake_rate,
                "handshake-burst", &handshake_burst,
                "message-rate", &message_rate,
                "message-burst", &message_burst,
                "message-rate-policy", &policy,
                "allowed-origins", &back,
                NULL);
  g_assert_cmpuint (timeout, ==, 5);
  g_assert_cmpfloat (handshake_rate, ==, 0.5);
  g_assert_cmpuint (handshake_burst, ==, 4);
  g_assert_cmpfloat (message_rate, ==, 100);
  g_assert_cmpuint (message_burst, ==, 200);
  g_assert_cmpint (policy, ==, ENGINE_IO_RATE_LIMIT_DROP);
  g_assert_cmpstrv (back, good);

  test_log_expect (G_LOG_LEVEL_WARNING, "cannot change once the server has started");
  g_object_set (f->server, "message-rate", 1.0, NULL);
  g_object_get (f->server, "message-rate", &message_rate, NULL);
  g_assert_cmpfloat (message_rate, ==, 100);
}

static void
test_origin_validation (void)
{
  const char *bad[] = {
    "https://Good.example",       /* browsers send lowercase */
    "HTTPS://good.example",
    "https://good.example/",      /* no trailing slash */
    "https://good.example/app",
    "https://good.example:443",   /* no default port */
    "http://good.example:80",
    "https://good.example:0",
    "https://good.example:99999",
    "https://user@good.example",
    "good.example",
    "*",
    "",
    "https://",
    "http://[]",
    NULL,
  };

  g_test_summary ("listen() refuses an allowed-origins entry no browser would send, naming it");

  for (guint i = 0; bad[i] != NULL; i++)
    {
      g_autoptr(EngineIOServer) server = test_server_new ();
      g_autoptr(GError) error = NULL;
      const char *origins[] = { "https://ok.example", bad[i], NULL };

      g_object_set (server, "allowed-origins", origins, NULL);
      g_assert_false (engine_io_server_listen (server, "127.0.0.1", 0, &error));
      g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "allowed-origins"));
      g_assert_nonnull (strstr (error->message, bad[i]));
    }
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* connection-timeout                                                   */
/* ------------------------------------------------------------------ */

static void
test_timeout_half_header (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GSocket) socket = NULL;
  gint64 took;

  g_test_summary ("connection-timeout 1: a connection that sends half a request head, or a "
                  "head and part of its body, and then nothing is closed after about a second, "
                  "not before");

  g_object_set (f->server, "connection-timeout", 1u, NULL);
  test_require (start (f));

  socket = raw_connect ("127.0.0.1", f->port);
  test_require (socket != NULL);
  test_require (raw_send (socket, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  took = raw_wait_closed (socket, 15000);
  g_assert_cmpint (took, >=, 500 * 1000);
  g_clear_object (&socket);

  /* A POST whose body stalls (the session exists: the body is awaited). */
  {
    g_autoptr(TestHttp) http = test_http_new (f->port);
    g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
    g_autofree char *head = NULL;

    test_require (open != NULL);
    socket = raw_connect ("127.0.0.1", f->port);
    test_require (socket != NULL);
    head = g_strdup_printf ("POST /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
                            "Host: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n4hel",
                            open->sid);
    test_require (raw_send (socket, head));
    took = raw_wait_closed (socket, 15000);
    g_assert_cmpint (took, >=, 500 * 1000);
  }
}

static void
test_timeout_default_keeps (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GSocket) socket = NULL;
  char buffer[4096];
  g_autoptr(GError) error = NULL;
  gssize n;

  g_test_summary ("With the default connection-timeout (30 s) a half request head is still "
                  "open after 2 s, and finishing it gets the handshake");

  test_require (start (f));
  socket = raw_connect ("127.0.0.1", f->port);
  test_require (socket != NULL);
  test_require (raw_send (socket, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
  g_assert_false (g_socket_condition_timed_wait (socket, G_IO_IN, 2 * G_USEC_PER_SEC, NULL, NULL));
  test_require (raw_send (socket, "Connection: close\r\n\r\n"));
  n = g_socket_receive (socket, buffer, sizeof buffer - 1, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, >, 12);
  buffer[n] = '\0';
  g_assert_true (g_str_has_prefix (buffer, "HTTP/1.1 200"));
}

static void
test_timeout_long_poll (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autofree char *target = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start_time;

  g_test_summary ("connection-timeout 1 does not end a long poll that waits longer: the poll "
                  "waits for the ping 3 s later and gets it");

  g_object_set (f->server, "connection-timeout", 1u, "ping-interval", 3000u, "ping-timeout", 20000u, NULL);
  test_require (start (f));
  http = test_http_new (f->port);
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);

  target = test_eio_target (4, "polling", open->sid);
  start_time = g_get_monotonic_time ();
  response = test_http_request (http, "GET", target, NULL, NULL, -1, 20000, &error);
  g_assert_no_error (error);
  packets = test_eio_poll_packets (response, 4);
  test_require (packets != NULL);
  g_assert_cmpuint (packets->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "2");
  /* It waited well past the connection timeout. */
  g_assert_cmpint (g_get_monotonic_time () - start_time, >=, 2 * G_USEC_PER_SEC);
  g_assert_false (test_recorder_index_prefix (f->events, "close ") >= 0);
}

static void
test_timeout_websocket (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) direct = NULL;
  g_autoptr(TestWs) upgraded = NULL;
  g_autofree char *target = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("connection-timeout 1 does not end WebSockets (direct or upgraded) idle for "
                  "2.5 s: they still echo afterwards (heartbeats watch them instead)");

  g_object_set (f->server, "connection-timeout", 1u, "ping-interval", 20000u, NULL);
  test_require (start (f));

  target = test_eio_target (4, "websocket", NULL);
  direct = test_ws_connect (f->port, target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  test_require (direct != NULL);
  text = test_ws_read_text (direct, TEST_TIMEOUT_MS);
  test_require (text != NULL && text[0] == '0');
  g_clear_pointer (&text, g_free);

  http = test_http_new (f->port);
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  upgraded = test_eio_probe (f->port, 4, open->sid);
  test_require (upgraded != NULL);
  test_require (test_ws_send_text (upgraded, "5"));
  test_require (test_recorder_wait_count (f->events, "connection ", 2, TEST_TIMEOUT_MS));

  /* Idle: nothing arrives and nothing closes. */
  g_assert_false (test_ws_wait_readable (direct, 2500));
  g_assert_false (test_ws_wait_readable (upgraded, 10));

  test_require (test_ws_send_text (direct, "4still there"));
  text = test_ws_read_text (direct, TEST_TIMEOUT_MS);
  g_assert_cmpstr (text, ==, "4still there");
  g_clear_pointer (&text, g_free);
  test_require (test_ws_send_text (upgraded, "4me too"));
  text = test_ws_read_text (upgraded, TEST_TIMEOUT_MS);
  g_assert_cmpstr (text, ==, "4me too");
  g_assert_cmpint (test_recorder_index_prefix (f->events, "close "), ==, -1);
}

/* ------------------------------------------------------------------ */
/* handshake-rate                                                       */
/* ------------------------------------------------------------------ */

static gboolean
is_rate_refusal (TestResponse *response)
{
  g_autofree char *text = NULL;
  const char *retry;

  if (!test_eio_is_error (response, 429, 4))
    return FALSE;
  text = test_response_text (response);
  retry = test_response_header (response, "Retry-After");
  return strstr (text, "Too many handshakes") != NULL && retry != NULL && atoi (retry) >= 1;
}

static void
test_handshake_rate_polling (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(EngineIOMetrics) m = NULL;
  g_autoptr(TestOpenPacket) first = NULL;
  g_autofree char *target = NULL;
  g_autofree char *text = NULL;
  g_autofree char *prometheus = NULL;

  g_test_summary ("handshake-rate with burst 3: three polling handshakes from one address open "
                  "sessions, the fourth gets 429 {code 4} with Retry-After and creates nothing; "
                  "requests with a sid are not counted; another address has its own bucket");

  g_object_set (f->server, "handshake-rate", 0.001, "handshake-burst", 3u, NULL);
  test_require (start (f));
  http = test_http_new (f->port);

  first = test_eio_polling_open (http, 4);
  test_require (first != NULL);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
      test_require (open != NULL);
    }
  test_require (test_recorder_wait_count (f->events, "connection ", 3, TEST_TIMEOUT_MS));

  refused = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  g_assert_true (is_rate_refusal (refused));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->server), ==, 3);

  /* A session's own requests are not handshakes. */
  target = test_eio_target (4, "polling", first->sid);
  {
    g_autoptr(TestResponse) post = test_http_post (http, target, TEST_S ("4hi"));
    g_assert_nonnull (post);
    g_assert_cmpuint (post->status, ==, 200);
  }
  poll = test_http_get (http, target);
  g_assert_nonnull (poll);
  g_assert_cmpuint (poll->status, ==, 200);

  /* Another source address: its own bucket. */
  g_assert_cmpuint (raw_get_from ("127.0.0.2", f->port, "/engine.io/?EIO=4&transport=polling", &text), ==, 200);
  g_clear_pointer (&text, g_free);
  g_assert_cmpuint (raw_get_from ("127.0.0.1", f->port, "/engine.io/?EIO=4&transport=polling", &text), ==, 429);
  g_assert_nonnull (strstr (text, "Retry-After"));
  test_require (test_recorder_wait_count (f->events, "connection ", 4, TEST_TIMEOUT_MS));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->server), ==, 4);

  m = metrics (f);
  g_assert_cmpuint (engine_io_metrics_get_handshakes (m), ==, 4);
  g_assert_cmpuint (engine_io_metrics_get_handshakes_rate_limited (m), ==, 2);
  prometheus = engine_io_metrics_to_prometheus (m);
  g_assert_nonnull (strstr (prometheus, "\nengineio_handshakes_rate_limited_total 2\n"));
  g_assert_cmpuint (engine_io_server_get_rate_table_size (f->server), ==, 2);
}

static void
test_handshake_rate_websocket (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestWs) a = NULL;
  g_autoptr(TestWs) b = NULL;
  g_autoptr(TestWs) c = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autoptr(GError) error = NULL;

  g_test_summary ("handshake-rate counts direct WebSocket handshakes in the same bucket as "
                  "polling ones: over it the opening handshake gets 429 {code 4}, no 101, no "
                  "session; an upgrade of an existing session is not a handshake");

  g_object_set (f->server, "handshake-rate", 0.001, "handshake-burst", 2u, NULL);
  test_require (start (f));
  http = test_http_new (f->port);

  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  a = test_ws_connect (f->port, target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  test_require (a != NULL);
  b = test_ws_connect (f->port, target, NULL, 0, &response, &error);
  g_assert_null (b);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_true (is_rate_refusal (response));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->server), ==, 2);

  c = test_eio_probe (f->port, 4, open->sid);
  g_assert_nonnull (c);
}

static void
test_handshake_rate_refill (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  guint attempts = 0;
  gboolean refused = FALSE;
  gboolean passed = FALSE;
  gint64 refused_at, passed_sent_at = 0, swept_at, deadline;
  guint size = 0;

  g_test_summary ("handshake-rate 4/s, burst 2: handshakes in a row hit 429 within a few; "
                  "within a second handshakes pass again; a bucket that refilled is swept "
                  "away by a handshake from elsewhere, one that did not is kept");

  g_object_set (f->server, "handshake-rate", 4.0, "handshake-burst", 2u, NULL);
  test_require (start (f));
  http = test_http_new (f->port);

  while (!refused && attempts++ < 200)
    {
      g_autoptr(TestResponse) response = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
      test_require (response != NULL);
      if (response->status == 429)
        refused = is_rate_refusal (response);
      else
        g_assert_cmpuint (response->status, ==, 200);
    }
  test_require (refused);
  refused_at = g_get_monotonic_time ();
  g_assert_cmpuint (engine_io_server_get_rate_table_size (f->server), ==, 1);

  /* 4 tokens a second: one is back within 250 ms of the refusal. Retry
   * every 20 ms until a handshake passes; a bucket that never refills
   * fails here. */
  deadline = refused_at + test_scaled_ms (1000) * G_GINT64_CONSTANT (1000);
  while (!passed && g_get_monotonic_time () < deadline)
    {
      g_autoptr(TestResponse) response = NULL;

      passed_sent_at = g_get_monotonic_time ();
      response = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
      test_require (response != NULL);
      if (response->status == 200)
        passed = TRUE;
      else
        {
          g_assert_true (is_rate_refusal (response));
          g_usleep (20 * 1000);
        }
    }
  g_test_message ("a handshake passed again %.0f ms after the refusal",
                  (g_get_monotonic_time () - refused_at) / 1000.0);
  test_require (passed);

  /* Its bucket now holds less than one token. Handshakes from 127.0.0.3
   * every 100 ms sweep away the buckets that are full: 127.0.0.1's only
   * once it has refilled (2 tokens at 4/s: half a second), never
   * 127.0.0.3's own (it keeps taking tokens, or being refused). */
  deadline = passed_sent_at + test_scaled_ms (1500) * G_GINT64_CONSTANT (1000);
  for (;;)
    {
      guint status = raw_get_from ("127.0.0.3", f->port, "/engine.io/?EIO=4&transport=polling", NULL);

      g_assert_true (status == 200 || status == 429);
      swept_at = g_get_monotonic_time ();
      size = engine_io_server_get_rate_table_size (f->server);
      if (size != 2 || swept_at >= deadline)
        break;
      g_usleep (100 * 1000);
    }
  g_test_message ("127.0.0.1's bucket swept %.0f ms after its last handshake",
                  (swept_at - passed_sent_at) / 1000.0);
  g_assert_cmpuint (size, ==, 1);
  /* Never before it could have refilled: it held less than one token,
   * so at the very least a quarter of a second. */
  g_assert_cmpint (swept_at - passed_sent_at, >=, 250 * 1000);
}

static void
test_handshake_rate_off (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(EngineIOMetrics) m = NULL;

  g_test_summary ("Without handshake-rate (the default) 30 handshakes in a row all open sessions");

  test_require (start (f));
  http = test_http_new (f->port);
  for (guint i = 0; i < 30; i++)
    {
      g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
      test_require (open != NULL);
    }
  m = metrics (f);
  g_assert_cmpuint (engine_io_metrics_get_handshakes_rate_limited (m), ==, 0);
  g_assert_cmpuint (engine_io_server_get_rate_table_size (f->server), ==, 0);
}

/* ------------------------------------------------------------------ */
/* message-rate                                                         */
/* ------------------------------------------------------------------ */

typedef struct
{
  int      eio;
  gboolean websocket;
} MessageCase;

static const MessageCase polling_v3 = { 3, FALSE };
static const MessageCase polling_v4 = { 4, FALSE };
static const MessageCase websocket_v3 = { 3, TRUE };
static const MessageCase websocket_v4 = { 4, TRUE };

/* One client session over polling or a direct WebSocket. */
typedef struct
{
  Fixture  *f;
  int       eio;
  TestHttp *http;
  TestWs   *ws;
  char     *sid;
  char     *target;
} Client;

static void
client_free (Client *c)
{
  g_clear_pointer (&c->http, test_http_free);
  g_clear_pointer (&c->ws, test_ws_free);
  g_free (c->sid);
  g_free (c->target);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_free)

static Client *
client_open (Fixture           *f,
             const MessageCase *mc)
{
  g_autoptr(Client) c = g_new0 (Client, 1);

  c->f = f;
  c->eio = mc->eio;
  if (mc->websocket)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestOpenPacket) open = NULL;

      c->ws = test_eio_ws_open_try (f->port, mc->eio, NULL, 0, TEST_TIMEOUT_MS, &open, &error);
      g_assert_no_error (error);
      test_require_val (c->ws != NULL, NULL);
      c->sid = g_strdup (open->sid);
    }
  else
    {
      g_autoptr(TestOpenPacket) open = NULL;

      c->http = test_http_new (f->port);
      open = test_eio_polling_open (c->http, mc->eio);
      test_require_val (open != NULL, NULL);
      c->sid = g_strdup (open->sid);
    }
  c->target = test_eio_target (mc->eio, mc->websocket ? "websocket" : "polling", c->sid);
  {
    g_autofree char *event = g_strdup_printf ("connection %s %s", c->sid,
                                              mc->websocket ? "websocket" : "polling");
    test_require_val (test_recorder_wait (f->events, event, TEST_TIMEOUT_MS), NULL);
  }
  return g_steal_pointer (&c);
}

/* Sends @packets: one POST, or one frame each. */
static gboolean
client_send (Client             *c,
             const char * const *packets)
{
  if (c->ws != NULL)
    {
      for (guint i = 0; packets[i] != NULL; i++)
        if (!test_ws_send_text (c->ws, packets[i]))
          return FALSE;
      return TRUE;
    }
  else
    {
      g_autofree char *payload = test_eio_payload (c->eio, packets);
      g_autoptr(TestResponse) response = test_http_post (c->http, c->target, payload, strlen (payload));

      test_require_val (response != NULL, FALSE);
      g_assert_cmpuint (response->status, ==, 200);
      return response->status == 200;
    }
}

/* The texts of the messages the server delivered for @sid, in order. */
static GStrv
delivered (Fixture    *f,
           const char *sid)
{
  g_auto(GStrv) events = test_recorder_dup (f->events);
  g_autofree char *prefix = g_strdup_printf ("message %s ", sid);
  g_autoptr(GStrvBuilder) out = g_strv_builder_new ();

  for (guint i = 0; events[i] != NULL; i++)
    if (g_str_has_prefix (events[i], prefix))
      g_strv_builder_add (out, events[i] + strlen (prefix));
  return g_strv_builder_end (out);
}

static gboolean
wait_event (Fixture    *f,
            const char *format,
            const char *sid,
            const char *arg)
{
  g_autofree char *event = g_strdup_printf (format, sid, arg);

  if (test_recorder_wait (f->events, event, TEST_TIMEOUT_MS))
    return TRUE;
  g_test_fail_printf ("no event “%s”", event);
  return FALSE;
}

static void
test_message_rate_close (Fixture       *f,
                         gconstpointer  data)
{
  const MessageCase *mc = data;
  g_autoptr(Client) c = NULL;
  g_autoptr(EngineIOMetrics) m = NULL;
  g_auto(GStrv) got = NULL;
  g_autofree char *prometheus = NULL;
  const char *first[] = { "4a", "4b", "4c", NULL };
  const char *over[] = { "4d", NULL };
  const char *expected[] = { "a", "b", "c", NULL };

  g_test_summary ("message-rate with burst 3, policy close: three messages are delivered, the "
                  "fourth closes the session with `rate limit exceeded` (WebSocket: close code "
                  "1008) and is never delivered");

  g_object_set (f->server, "allow-eio3", TRUE, "message-rate", 0.001, "message-burst", 3u, NULL);
  test_require (start (f));
  c = client_open (f, mc);
  test_require (c != NULL);

  test_require (client_send (c, first));
  test_require (wait_event (f, "message %s %s", c->sid, "c"));
  if (c->ws != NULL)
    for (guint i = 0; first[i] != NULL; i++)
      {
        g_autofree char *echo = test_ws_read_text (c->ws, TEST_TIMEOUT_MS);
        g_assert_cmpstr (echo, ==, first[i]);
      }

  test_require (client_send (c, over));
  test_require (wait_event (f, "close %s %s", c->sid, "rate limit exceeded"));
  if (c->ws != NULL)
    g_assert_cmpint (test_ws_read_close (c->ws, TEST_TIMEOUT_MS, NULL), ==, 1008);
  else
    {
      /* The session is gone. */
      g_autoptr(TestResponse) poll = test_http_get (c->http, c->target);
      g_assert_true (test_eio_is_error (poll, 400, 1));
    }

  got = delivered (f, c->sid);
  g_assert_cmpstrv (got, expected);
  m = metrics (f);
  g_assert_cmpuint (engine_io_metrics_get_closes (m, ENGINE_IO_CLOSE_REASON_RATE_LIMITED), ==, 1);
  g_assert_cmpuint (engine_io_metrics_get_messages_dropped (m), ==, 0);
  prometheus = engine_io_metrics_to_prometheus (m);
  g_assert_nonnull (strstr (prometheus, "\nengineio_closes_total{reason=\"rate limit exceeded\"} 1\n"));
}

/* One POST of many rounds (its body read a round of packets at a time)
 * that runs out of message tokens partway: with policy close the POST is
 * answered `ok`, at most the burst is delivered, in order, and the session
 * closes; with policy drop exactly the burst is delivered, the rest
 * dropped, the POST answered `ok`, and the session takes the client's
 * next POST. */
#define RATE_ROUNDS_BURST 3000u
#define RATE_ROUNDS_MESSAGES 12000u

static void
test_message_rate_post_rounds (Fixture       *f,
                               gconstpointer  data)
{
  EngineIORateLimitPolicy policy = GPOINTER_TO_INT (data);
  g_autoptr(Client) c = NULL;
  g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(EngineIOMetrics) m = NULL;
  g_auto(GStrv) got = NULL;
  const char *after[] = { "4after", NULL };  /* (dropped too) */

  g_test_summary ("message-rate: one POST of 12,000 messages (many rounds of its body) with "
                  "a burst of 3,000: the POST is answered `ok`, its messages delivered in order; "
                  "policy close ends the session (at most the burst delivered), policy drop "
                  "delivers exactly the burst, drops the rest, and the session takes the next POST");

  g_object_set (f->server, "message-rate", 0.001, "message-burst", RATE_ROUNDS_BURST,
                "message-rate-policy", policy, NULL);
  test_require (start (f));
  c = client_open (f, &polling_v4);
  test_require (c != NULL);

  for (guint i = 0; i < RATE_ROUNDS_MESSAGES; i++)
    g_ptr_array_add (packets, g_strdup_printf ("4%05u", i));
  g_ptr_array_add (packets, NULL);
  test_require (client_send (c, (const char * const *) packets->pdata));

  if (policy == ENGINE_IO_RATE_LIMIT_CLOSE)
    test_require (wait_event (f, "close %s %s", c->sid, "rate limit exceeded"));
  else
    {
      /* The POST was answered: its burst is on its way to the handler,
       * and the session still takes POSTs (its messages dropped too: no
       * token has come back). */
      test_require (client_send (c, after));
      test_require (wait_event (f, "message %s %s", c->sid, "02999"));
    }

  got = delivered (f, c->sid);
  g_test_message ("%u of %u messages delivered (burst %u)", g_strv_length (got),
                  RATE_ROUNDS_MESSAGES, RATE_ROUNDS_BURST);
  /* In order, never past the burst (with policy close, what was read in
   * the round the close came in may be dropped with the close). */
  if (policy == ENGINE_IO_RATE_LIMIT_DROP)
    {
      g_assert_cmpuint (g_strv_length (got), ==, RATE_ROUNDS_BURST);
    }
  else
    g_assert_cmpuint (g_strv_length (got), <=, RATE_ROUNDS_BURST);
  for (guint i = 0; i < MIN (g_strv_length (got), RATE_ROUNDS_BURST); i++)
    {
      g_autofree char *expected = g_strdup_printf ("%05u", i);
      if (g_strcmp0 (got[i], expected) != 0)
        {
          g_assert_cmpstr (got[i], ==, expected);
          break;
        }
    }
  m = metrics (f);
  if (policy == ENGINE_IO_RATE_LIMIT_CLOSE)
    g_assert_cmpuint (engine_io_metrics_get_closes (m, ENGINE_IO_CLOSE_REASON_RATE_LIMITED), ==, 1);
  else
    g_assert_cmpuint (engine_io_metrics_get_messages_dropped (m), ==,
                      RATE_ROUNDS_MESSAGES - RATE_ROUNDS_BURST + 1);
  g_assert_cmpint (test_recorder_count (f->events, "close "), ==,
                   policy == ENGINE_IO_RATE_LIMIT_CLOSE ? 1 : 0);
}

static void
test_message_rate_close_waiting_poll (Fixture       *f,
                                      gconstpointer  data)
{
  g_autoptr(Client) c = NULL;
  g_autoptr(TestHttp) poller = NULL;
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(GError) error = NULL;
  const char *over[] = { "4a", "4b", "4c", NULL };
  const char *expected[] = { "a", NULL };
  g_auto(GStrv) got = NULL;

  g_test_summary ("Polling, policy close: a POST that goes over the rate is answered `ok`, its "
                  "messages past the limit are never delivered, and the session ends (a waiting "
                  "poll gets what was queued and the close packet, or a later poll gets 400)");

  g_object_set (f->server, "message-rate", 0.001, "message-burst", 1u, NULL);
  test_require (start (f));
  c = client_open (f, &polling_v4);
  test_require (c != NULL);

  poller = test_http_new (f->port);
  test_require (test_http_send (poller, "GET", c->target, NULL, NULL, -1, &error));
  /* The poll is parked unless the server is very slow; either way the
   * session must end. */
  g_assert_false (test_http_wait_readable (poller, 300));
  test_require (client_send (c, over));
  test_require (wait_event (f, "close %s %s", c->sid, "rate limit exceeded"));
  answer = test_http_receive (poller, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  if (answer->status == 200)
    {
      /* The echo of `a` (if it came first), then the close packet, or
       * nothing more: the session is gone. */
      g_autoptr(GPtrArray) packets = test_eio_poll_packets (answer, 4);
      test_require (packets != NULL && packets->len > 0);
      if (strcmp (g_ptr_array_index (packets, packets->len - 1), "1") != 0)
        {
          g_autoptr(TestResponse) next = test_http_get (poller, c->target);
          g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4a");
          g_assert_true (test_eio_is_error (next, 400, 1));
        }
    }
  else
    g_assert_true (test_eio_is_error (answer, 400, 1));

  got = delivered (f, c->sid);
  /* `a` was within the rate but the close overtakes what the handlers
   * have not seen yet: it may or may not have been delivered. */
  g_assert_cmpuint (g_strv_length (got), <=, 1);
  if (got[0] != NULL)
    g_assert_cmpstrv (got, expected);
}

static void
test_message_rate_close_upgrade (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *target = NULL;
  g_auto(GStrv) got = NULL;
  const char *expected[] = { "a", "b", "c", NULL };

  g_test_summary ("A session's message budget is one across transports: one message over "
                  "polling and two over the upgraded WebSocket use a burst of 3, the next closes "
                  "with 1008");

  g_object_set (f->server, "message-rate", 0.001, "message-burst", 3u, NULL);
  test_require (start (f));
  http = test_http_new (f->port);
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  target = test_eio_target (4, "polling", open->sid);
  {
    g_autoptr(TestResponse) post = test_http_post (http, target, TEST_S ("4a"));
    g_assert_nonnull (post);
    g_assert_cmpuint (post->status, ==, 200);
  }
  test_require (wait_event (f, "message %s %s", open->sid, "a"));

  ws = test_eio_probe (f->port, 4, open->sid);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "5"));
  test_require (test_ws_send_text (ws, "4b"));
  test_require (test_ws_send_text (ws, "4c"));
  test_require (wait_event (f, "message %s %s", open->sid, "c"));
  test_require (test_ws_send_text (ws, "4d"));
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), ==, 1008);
  test_require (wait_event (f, "close %s %s", open->sid, "rate limit exceeded"));
  got = delivered (f, open->sid);
  g_assert_cmpstrv (got, expected);
}

static void
test_message_rate_drop (Fixture       *f,
                        gconstpointer  data)
{
  const MessageCase *mc = data;
  g_autoptr(Client) c = NULL;
  g_autoptr(EngineIOMetrics) m = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_auto(GStrv) got = NULL;
  g_autofree char *prometheus = NULL;
  const char *burst[] = { "4a", "4b", "4c", "4d", NULL };
  const char *later[] = { "4e", NULL };
  const char *expected[] = { "a", "b", "e", NULL };

  g_test_summary ("message-rate 0.5/s with burst 2, policy drop: of four messages sent at once "
                  "the two past the burst are dropped and counted; the session stays open and a "
                  "message sent after the bucket refilled is delivered");

  g_object_set (f->server, "allow-eio3", TRUE, "message-rate", 0.5, "message-burst", 2u,
                "message-rate-policy", ENGINE_IO_RATE_LIMIT_DROP, NULL);
  test_require (start (f));
  c = client_open (f, mc);
  test_require (c != NULL);

  test_require (client_send (c, burst));
  test_require (wait_event (f, "message %s %s", c->sid, "b"));
  /* Counted as they arrive: by the time `b` was delivered, c and d are
   * counted (POST: before its `ok`; WebSocket: in the same order). */
  {
    guint64 dropped = 0;
    gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * 1000;
    do
      {
        g_autoptr(EngineIOMetrics) now = metrics (f);
        dropped = engine_io_metrics_get_messages_dropped (now);
      }
    while (dropped < 2 && g_get_monotonic_time () < deadline && (g_usleep (1000), TRUE));
    g_assert_cmpuint (dropped, ==, 2);
  }

  /* 2.5 s at 0.5/s: more than one token again. */
  g_usleep (2500 * 1000);
  test_require (client_send (c, later));
  test_require (wait_event (f, "message %s %s", c->sid, "e"));
  got = delivered (f, c->sid);
  g_assert_cmpstrv (got, expected);
  if (c->ws != NULL)
    {
      const char *echoes[] = { "4a", "4b", "4e" };
      for (guint i = 0; i < G_N_ELEMENTS (echoes); i++)
        {
          g_autofree char *echo = test_ws_read_text (c->ws, TEST_TIMEOUT_MS);
          g_assert_cmpstr (echo, ==, echoes[i]);
        }
    }

  socket = engine_io_server_lookup_socket (f->server, c->sid);
  g_assert_nonnull (socket);
  g_assert_false (engine_io_socket_is_closed (socket));
  g_assert_cmpint (test_recorder_index_prefix (f->events, "close "), ==, -1);
  m = metrics (f);
  g_assert_cmpuint (engine_io_metrics_get_messages_dropped (m), ==, 2);
  prometheus = engine_io_metrics_to_prometheus (m);
  g_assert_nonnull (strstr (prometheus, "\nengineio_messages_dropped_total 2\n"));
}

static void
test_message_rate_control_packets (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(Client) c = NULL;
  const char *noops[] = { "6", "6", "6", "6", "6", "4a", NULL };
  const char *over[] = { "4b", NULL };

  g_test_summary ("Only messages (and pings) count: five noops and then a message pass a burst "
                  "of 1; the next message closes with 1008");

  g_object_set (f->server, "message-rate", 0.001, "message-burst", 1u, NULL);
  test_require (start (f));
  c = client_open (f, &websocket_v4);
  test_require (c != NULL);
  test_require (client_send (c, noops));
  test_require (wait_event (f, "message %s %s", c->sid, "a"));
  test_require (client_send (c, over));
  g_assert_cmpint (test_ws_read_close (c->ws, TEST_TIMEOUT_MS, NULL), ==, 1008);
  test_require (wait_event (f, "close %s %s", c->sid, "rate limit exceeded"));
}

static void
test_message_rate_off (Fixture       *f,
                       gconstpointer  data)
{
  const MessageCase *mc = data;
  g_autoptr(Client) c = NULL;
  g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(EngineIOMetrics) m = NULL;
  g_auto(GStrv) got = NULL;

  g_test_summary ("Without message-rate (the default) 200 messages sent at once are all delivered");

  g_object_set (f->server, "allow-eio3", TRUE, NULL);
  test_require (start (f));
  c = client_open (f, mc);
  test_require (c != NULL);
  for (guint i = 0; i < 200; i++)
    g_ptr_array_add (packets, g_strdup_printf ("4m%u", i));
  g_ptr_array_add (packets, NULL);
  test_require (client_send (c, (const char * const *) packets->pdata));
  test_require (wait_event (f, "message %s %s", c->sid, "m199"));
  got = delivered (f, c->sid);
  g_assert_cmpuint (g_strv_length (got), ==, 200);
  m = metrics (f);
  g_assert_cmpuint (engine_io_metrics_get_messages_dropped (m), ==, 0);
  g_assert_cmpint (test_recorder_index_prefix (f->events, "close "), ==, -1);
}

/* ------------------------------------------------------------------ */
/* allowed-origins                                                      */
/* ------------------------------------------------------------------ */

static const char *const allowed[] = { "https://good.example", "http://localhost:8080", NULL };

static TestResponse *
get_with_origin (TestHttp   *http,
                 const char *target,
                 const char *origin)
{
  const char *headers[] = { "Origin", origin, NULL };
  g_autoptr(GError) error = NULL;
  TestResponse *response = test_http_request (http, "GET", target, origin != NULL ? headers : NULL,
                                              NULL, -1, TEST_TIMEOUT_MS, &error);

  g_assert_no_error (error);
  return response;
}

static gboolean
is_origin_refusal (TestResponse *response)
{
  g_autofree char *text = NULL;

  if (!test_eio_is_error (response, 403, 4))
    return FALSE;
  text = test_response_text (response);
  return strstr (text, "Origin not allowed") != NULL;
}

static void
test_origins_polling (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autofree char *target = NULL;
  g_autofree char *sid = NULL;

  g_test_summary ("allowed-origins, polling: a handshake from a listed origin or without "
                  "Origin opens a session; one from another origin (or a near miss) gets 403 "
                  "{code 4, Origin not allowed} and creates nothing; a session's polls and POSTs "
                  "from another origin are refused too; preflights are answered as before");

  g_object_set (f->server, "allowed-origins", allowed, "cors-origin", "*", NULL);
  test_require (start (f));
  http = test_http_new (f->port);

  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", "https://good.example");
  packets = test_eio_poll_packets (response, 4);
  test_require (packets != NULL && packets->len > 0);
  {
    g_autoptr(TestOpenPacket) open = test_open_packet_parse ((char *) g_ptr_array_index (packets, 0) + 1, NULL);
    test_require (open != NULL);
    sid = g_strdup (open->sid);
  }
  g_clear_pointer (&response, test_response_free);
  g_clear_pointer (&packets, g_ptr_array_unref);

  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", "http://localhost:8080");
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);
  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);
  test_require (test_recorder_wait_count (f->events, "connection ", 3, TEST_TIMEOUT_MS));

  {
    const char *refused[] = { "https://evil.example", "https://good.example.evil.example",
                              "http://good.example", "https://good.example:8443",
                              "https://good.example/", "null", NULL };
    for (guint i = 0; refused[i] != NULL; i++)
      {
        response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", refused[i]);
        g_assert_true (is_origin_refusal (response));
        g_clear_pointer (&response, test_response_free);
      }
  }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->server), ==, 3);

  /* The session's own requests from another origin. */
  target = test_eio_target (4, "polling", sid);
  response = get_with_origin (http, target, "https://evil.example");
  g_assert_true (is_origin_refusal (response));
  g_clear_pointer (&response, test_response_free);
  {
    const char *headers[] = { "Origin", "https://evil.example", "Content-Type", "text/plain", NULL };
    g_autoptr(GError) error = NULL;
    response = test_http_request (http, "POST", target, headers, "4x", 2, TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    g_assert_true (is_origin_refusal (response));
    g_clear_pointer (&response, test_response_free);
  }
  {
    const char *headers[] = { "Origin", "https://good.example", "Content-Type", "text/plain", NULL };
    g_autoptr(GError) error = NULL;
    response = test_http_request (http, "POST", target, headers, "4y", 2, TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (response->status, ==, 200);
    g_clear_pointer (&response, test_response_free);
  }
  test_require (wait_event (f, "message %s %s", sid, "y"));
  {
    g_autofree char *event = g_strdup_printf ("message %s x", sid);
    g_assert_cmpint (test_recorder_index (f->events, event), ==, -1);
  }

  /* A preflight is answered by cors-origin's rules. */
  {
    const char *headers[] = { "Origin", "https://evil.example", "Access-Control-Request-Method", "POST", NULL };
    g_autoptr(GError) error = NULL;
    response = test_http_request (http, "OPTIONS", "/engine.io/?EIO=4&transport=polling", headers,
                                  NULL, -1, TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (response->status, ==, 204);
  }
}

static void
test_origins_websocket (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *direct = test_eio_target (4, "websocket", NULL);
  g_autofree char *upgrade = NULL;
  const char *good[] = { "Origin", "https://good.example", NULL };
  const char *evil[] = { "Origin", "https://evil.example", NULL };

  g_test_summary ("allowed-origins, WebSocket: a direct WebSocket from a listed origin or "
                  "without Origin opens; from another origin the opening handshake gets 403 "
                  "{code 4} (no 101, no session); an upgrade of an existing session from another "
                  "origin gets 403 and the session goes on polling, one from a listed origin "
                  "upgrades");

  g_object_set (f->server, "allowed-origins", allowed, NULL);
  test_require (start (f));

  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (f->port, direct, good, 0, NULL, &error);
    g_assert_no_error (error);
    g_assert_nonnull (ws);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (f->port, direct, NULL, 0, NULL, &error);
    g_assert_no_error (error);
    g_assert_nonnull (ws);
  }
  test_require (test_recorder_wait_count (f->events, "connection ", 2, TEST_TIMEOUT_MS));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestResponse) response = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (f->port, direct, evil, 0, &response, &error);
    g_assert_null (ws);
    g_assert_nonnull (error);
    g_assert_true (is_origin_refusal (response));
  }

  http = test_http_new (f->port);
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  upgrade = test_eio_target (4, "websocket", open->sid);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestResponse) response = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (f->port, upgrade, evil, 0, &response, &error);
    g_assert_null (ws);
    g_assert_true (is_origin_refusal (response));
  }
  /* Still polling. */
  {
    g_autofree char *target = test_eio_target (4, "polling", open->sid);
    g_autoptr(TestResponse) post = test_http_post (http, target, TEST_S ("4still polling"));
    g_assert_nonnull (post);
    g_assert_cmpuint (post->status, ==, 200);
    test_require (wait_event (f, "message %s %s", open->sid, "still polling"));
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (f->port, upgrade, good, 0, NULL, &error);
    g_autofree char *pong = NULL;
    g_assert_no_error (error);
    test_require (ws != NULL);
    test_require (test_ws_send_text (ws, "2probe"));
    pong = test_ws_read_text (ws, TEST_TIMEOUT_MS);
    g_assert_cmpstr (pong, ==, "3probe");
  }
  /* Two direct WebSockets and the polling session; the refused ones made nothing. */
  g_assert_cmpuint (test_recorder_count (f->events, "connection "), ==, 3);
}

static void
test_origins_off_and_empty (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(EngineIOServer) strict = NULL;
  g_autoptr(TestHttp) strict_http = NULL;
  const char *none[] = { NULL };
  const char *null_origin[] = { "null", NULL };
  g_autoptr(EngineIOServer) nulls = NULL;
  g_autoptr(TestHttp) nulls_http = NULL;
  guint port;

  g_test_summary ("allowed-origins unset (the default) allows any Origin; an empty list allows "
                  "only requests without Origin; a listed `null` allows `Origin: null`");

  test_require (start (f));
  http = test_http_new (f->port);
  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", "https://anyone.example");
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);

  strict = test_server_new ();
  g_object_set (strict, "allowed-origins", none, NULL);
  port = test_server_listen (strict);
  test_require (port != 0);
  strict_http = test_http_new (port);
  response = get_with_origin (strict_http, "/engine.io/?EIO=4&transport=polling", "https://good.example");
  g_assert_true (is_origin_refusal (response));
  g_clear_pointer (&response, test_response_free);
  response = get_with_origin (strict_http, "/engine.io/?EIO=4&transport=polling", NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);
  g_clear_pointer (&strict_http, test_http_free);
  engine_io_server_close (strict);

  nulls = test_server_new ();
  g_object_set (nulls, "allowed-origins", null_origin, NULL);
  port = test_server_listen (nulls);
  test_require (port != 0);
  nulls_http = test_http_new (port);
  response = get_with_origin (nulls_http, "/engine.io/?EIO=4&transport=polling", "null");
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);
  response = get_with_origin (nulls_http, "/engine.io/?EIO=4&transport=polling", "https://good.example");
  g_assert_true (is_origin_refusal (response));
  g_clear_pointer (&nulls_http, test_http_free);
  engine_io_server_close (nulls);
}

/* ------------------------------------------------------------------ */
/* engineio-echo's options                                              */
/* ------------------------------------------------------------------ */

static void
test_echo_flags (void)
{
  const char *echo = g_getenv ("ENGINEIO_ECHO");
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *loop_threads = g_strdup_printf ("%u", test_loop_threads_from_env ());
  guint port = 0;
  const char *p;

  g_test_summary ("engineio-echo passes --allowed-origins, --handshake-rate/-burst, "
                  "--message-rate/-burst/-policy and --connection-timeout to the server, and "
                  "rejects bad values");

  test_require (echo != NULL);

  /* Bad values: exit status 2 (options) or 1 (listen refused the origin). */
  {
    const char *const bad[][3] = {
      { "--message-rate-policy", "sometimes", "2" },
      { "--connection-timeout", "0", "2" },
      { "--handshake-rate", "-1", "2" },
      { "--allowed-origins", "https://Good.example", "1" },
    };
    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autoptr(GSubprocess) bad_process =
          g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error,
                            echo, "--port", "0", bad[i][0], bad[i][1], NULL);
        g_assert_no_error (error);
        g_assert_true (g_subprocess_wait (bad_process, NULL, &error));
        g_assert_no_error (error);
        g_assert_cmpint (g_subprocess_get_exit_status (bad_process), ==, atoi (bad[i][2]));
      }
  }

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, echo,
                              "--port", "0", "--loop-threads", loop_threads,
                              "--allowed-origins", "https://good.example, http://localhost:8080",
                              "--handshake-rate", "0.001", "--handshake-burst", "2",
                              "--message-rate", "0.001", "--message-burst", "1",
                              "--message-rate-policy", "close", "--connection-timeout", "1",
                              NULL);
  g_assert_no_error (error);
  test_require (process != NULL);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  test_require (line != NULL);
  p = strstr (line, "127.0.0.1:");
  test_require (p != NULL);
  port = (guint) g_ascii_strtoull (p + strlen ("127.0.0.1:"), NULL, 10);
  test_require (port != 0);

  http = test_http_new (port);
  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", "https://evil.example");
  g_assert_true (is_origin_refusal (response));
  g_clear_pointer (&response, test_response_free);
  {
    const MessageCase *mc = &websocket_v4;
    g_autofree char *target = test_eio_target (mc->eio, "websocket", NULL);
    const char *headers[] = { "Origin", "http://localhost:8080", NULL };
    g_autoptr(TestWs) ws = test_ws_connect (port, target, headers, 0, NULL, &error);
    g_autofree char *open = NULL;
    g_autofree char *echoed = NULL;

    g_assert_no_error (error);
    test_require (ws != NULL);
    open = test_ws_read_text (ws, TEST_TIMEOUT_MS);
    test_require (open != NULL && open[0] == '0');
    test_require (test_ws_send_text (ws, "4one"));
    echoed = test_ws_read_text (ws, TEST_TIMEOUT_MS);
    g_assert_cmpstr (echoed, ==, "4one");
    test_require (test_ws_send_text (ws, "4two"));
    g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), ==, 1008);
  }
  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_clear_pointer (&response, test_response_free);
  response = get_with_origin (http, "/engine.io/?EIO=4&transport=polling", NULL);
  g_assert_true (is_rate_refusal (response));
  g_clear_pointer (&response, test_response_free);
  g_clear_pointer (&http, test_http_free);

  {
    g_autoptr(GSocket) socket = raw_connect ("127.0.0.1", port);
    test_require (socket != NULL);
    test_require (raw_send (socket, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\n"));
    g_assert_cmpint (raw_wait_closed (socket, 15000), >=, 500 * 1000);
  }

  g_subprocess_send_signal (process, SIGTERM);
  g_assert_true (g_subprocess_wait (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

  g_test_add_func ("/limits/token-bucket", test_token_bucket);
  g_test_add ("/limits/defaults", Fixture, NULL, fixture_setup, test_defaults, fixture_teardown);
  g_test_add_func ("/limits/origins/validation", test_origin_validation);

  g_test_add ("/limits/connection-timeout/half-request", Fixture, NULL, fixture_setup,
              test_timeout_half_header, fixture_teardown);
  g_test_add ("/limits/connection-timeout/default-keeps", Fixture, NULL, fixture_setup,
              test_timeout_default_keeps, fixture_teardown);
  g_test_add ("/limits/connection-timeout/long-poll", Fixture, NULL, fixture_setup,
              test_timeout_long_poll, fixture_teardown);
  g_test_add ("/limits/connection-timeout/websocket", Fixture, NULL, fixture_setup,
              test_timeout_websocket, fixture_teardown);

  g_test_add ("/limits/handshake-rate/polling", Fixture, NULL, fixture_setup,
              test_handshake_rate_polling, fixture_teardown);
  g_test_add ("/limits/handshake-rate/websocket", Fixture, NULL, fixture_setup,
              test_handshake_rate_websocket, fixture_teardown);
  g_test_add ("/limits/handshake-rate/refill", Fixture, NULL, fixture_setup,
              test_handshake_rate_refill, fixture_teardown);
  g_test_add ("/limits/handshake-rate/off", Fixture, NULL, fixture_setup,
              test_handshake_rate_off, fixture_teardown);

  g_test_add ("/limits/message-rate/close/polling-v3", Fixture, &polling_v3, fixture_setup,
              test_message_rate_close, fixture_teardown);
  g_test_add ("/limits/message-rate/close/polling-v4", Fixture, &polling_v4, fixture_setup,
              test_message_rate_close, fixture_teardown);
  g_test_add ("/limits/message-rate/close/websocket-v3", Fixture, &websocket_v3, fixture_setup,
              test_message_rate_close, fixture_teardown);
  g_test_add ("/limits/message-rate/close/websocket-v4", Fixture, &websocket_v4, fixture_setup,
              test_message_rate_close, fixture_teardown);
  g_test_add ("/limits/message-rate/close/post-rounds", Fixture, GINT_TO_POINTER (ENGINE_IO_RATE_LIMIT_CLOSE),
              fixture_setup, test_message_rate_post_rounds, fixture_teardown);
  g_test_add ("/limits/message-rate/drop/post-rounds", Fixture, GINT_TO_POINTER (ENGINE_IO_RATE_LIMIT_DROP),
              fixture_setup, test_message_rate_post_rounds, fixture_teardown);
  g_test_add ("/limits/message-rate/close/waiting-poll", Fixture, NULL, fixture_setup,
              test_message_rate_close_waiting_poll, fixture_teardown);
  g_test_add ("/limits/message-rate/close/upgrade", Fixture, NULL, fixture_setup,
              test_message_rate_close_upgrade, fixture_teardown);
  g_test_add ("/limits/message-rate/drop/polling-v3", Fixture, &polling_v3, fixture_setup,
              test_message_rate_drop, fixture_teardown);
  g_test_add ("/limits/message-rate/drop/polling-v4", Fixture, &polling_v4, fixture_setup,
              test_message_rate_drop, fixture_teardown);
  g_test_add ("/limits/message-rate/drop/websocket-v3", Fixture, &websocket_v3, fixture_setup,
              test_message_rate_drop, fixture_teardown);
  g_test_add ("/limits/message-rate/drop/websocket-v4", Fixture, &websocket_v4, fixture_setup,
              test_message_rate_drop, fixture_teardown);
  g_test_add ("/limits/message-rate/control-packets", Fixture, NULL, fixture_setup,
              test_message_rate_control_packets, fixture_teardown);
  g_test_add ("/limits/message-rate/off/polling-v4", Fixture, &polling_v4, fixture_setup,
              test_message_rate_off, fixture_teardown);
  g_test_add ("/limits/message-rate/off/websocket-v3", Fixture, &websocket_v3, fixture_setup,
              test_message_rate_off, fixture_teardown);

  g_test_add ("/limits/origins/polling", Fixture, NULL, fixture_setup,
              test_origins_polling, fixture_teardown);
  g_test_add ("/limits/origins/websocket", Fixture, NULL, fixture_setup,
              test_origins_websocket, fixture_teardown);
  g_test_add ("/limits/origins/off-and-empty", Fixture, NULL, fixture_setup,
              test_origins_off_and_empty, fixture_teardown);

  g_test_add_func ("/limits/echo-flags", test_echo_flags);

  return g_test_run ();
}
