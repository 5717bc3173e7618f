/* test-server.c: the long-polling server, over real HTTP on 127.0.0.1
 *
 * Every rule of PROTOCOL.md about requests, errors, polling, heartbeats
 * and v3 framing, checked against an in-process EngineIOServer with the
 * small HTTP client of testutil.c. Where a rule is the session machine's
 * or the polling rules' (tests/test-session.c: the heartbeat, overlapping
 * polls and POSTs, what a poll gets while the session closes), the case
 * here is its wiring over HTTP, once. Signals run on session threads; they
 * are recorded (TestRecorder) and the test thread waits for them with a
 * bound. The suite runs twice (see meson.build): with a thread per session
 * and with a pool of two loop threads (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "wsutil.h"

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  TestLoopback    lb;                  /* lb.watch: set before fixture_start() */

  /* Set before fixture_start(); read on session threads. */
  char           *welcome;             /* sent from the ::connection handler */
  guint           welcome_sleep_ms;    /* ... which then takes this long */

  guint           baseline_threads;
  guint           baseline_fds;
} Fixture;

static const char *const error_messages[] = {
  "Transport unknown",
  "Session ID unknown",
  "Bad handshake method",
  "Bad request",
  "Forbidden",
  "Unsupported protocol version",
};

/* What the ::connection handler does besides recording. */
static void
on_connection (TestLoopback   *lb,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;

  if (f->welcome != NULL)
    engine_io_socket_send_text (socket, f->welcome, NULL);
  if (f->welcome_sleep_ms > 0)
    g_usleep (f->welcome_sleep_ms * G_TIME_SPAN_MILLISECOND);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->baseline_threads = test_settled_count (test_count_threads, 150, TEST_TIMEOUT_MS);
  f->baseline_fds = test_settled_count (test_count_fds, 50, TEST_TIMEOUT_MS);
  test_loopback_init (&f->lb);
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
}

/* Listens; properties must be set before. */
static void
fixture_start (Fixture *f)
{
  test_loopback_listen (&f->lb);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (&f->lb);
  g_free (f->welcome);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

#define assert_event(f, ...) test_recorder_expect ((f)->lb.events, TEST_TIMEOUT_MS, __VA_ARGS__)

static char *
v4_url (const char *sid)
{
  return g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", sid);
}

static char *
v3_url (const char *sid,
        const char *extra)
{
  return g_strdup_printf ("/engine.io/?EIO=3&transport=polling&sid=%s%s", sid, extra ? extra : "");
}

/* Checks an error response: status, JSON content type, exact body. */
#define assert_error(r, status, code) assert_error_at ((r), (status), (code), __FILE__, __LINE__)

static void
assert_error_at (TestResponse *response,
                 guint         status,
                 int           code,
                 const char   *file,
                 int           line)
{
  g_autofree char *expected = NULL;
  g_autofree char *body = NULL;
  const char *type;

  if (response == NULL)
    {
      g_test_fail_printf ("%s:%d: no response (expected error %d)", file, line, code);
      return;
    }
  expected = g_strdup_printf ("{\"code\":%d,\"message\":\"%s\"}", code, error_messages[code]);
  body = test_response_text (response);
  if (response->status != status || g_strcmp0 (body, expected) != 0)
    g_test_fail_printf ("%s:%d: expected HTTP %u %s, got HTTP %u %s", file, line,
                        status, expected, response->status, body);
  type = test_response_header (response, "Content-Type");
  if (type == NULL || !g_str_has_prefix (type, "application/json"))
    g_test_fail_printf ("%s:%d: error response Content-Type is “%s”, not application/json",
                        file, line, type ? type : "(none)");
}

/* A request expected to fail with @code. */
static void
expect_error (TestHttp           *http,
              const char         *method,
              const char         *target,
              const char * const *headers,
              const char         *body,
              guint               status,
              int                 code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response = NULL;

  response = test_http_request (http, method, target, headers, body,
                                body != NULL ? (gssize) strlen (body) : (strcmp (method, "POST") == 0 ? 0 : -1),
                                TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  if (response == NULL)
    return;
  if (response->status != status)
    g_test_message ("%s %s", method, target);
  assert_error (response, status, code);
}

/* A v4 handshake on the fixture's connection; returns the sid. */
static char *
handshake (Fixture *f)
{
  return test_eio_polling_open_sid (f->lb.http, 4, NULL);
}

/* GET on a session; returns the body, asserting 200 and text/plain. */
static char *
poll_text (TestHttp   *http,
           const char *sid)
{
  g_autofree char *target = v4_url (sid);
  g_autoptr(TestResponse) response = test_http_get (http, target);

  test_require_val (response != NULL, NULL);
  if (response->status != 200)
    {
      g_autofree char *body = test_response_text (response);
      g_test_fail_printf ("poll of %s: HTTP %u %s", sid, response->status, body);
      return NULL;
    }
  g_assert_cmpstr (test_response_header (response, "Content-Type"), ==, "text/plain; charset=UTF-8");
  return test_response_text (response);
}

/* Sends a GET that will wait, on its own connection. */
static gboolean
send_poll (TestHttp   *http,
           const char *sid)
{
  g_autofree char *target = v4_url (sid);
  g_autoptr(GError) error = NULL;

  test_http_send (http, "GET", target, NULL, NULL, -1, &error);
  g_assert_no_error (error);
  return error == NULL;
}

/* Reads the answer of a GET sent with send_poll(); returns its body. */
static char *
receive_text (TestHttp *http,
              guint     expected_status)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response = test_http_receive (http, TEST_TIMEOUT_MS, &error);

  g_assert_no_error (error);
  test_require_val (response != NULL, NULL);
  g_assert_cmpuint (response->status, ==, expected_status);
  return test_response_text (response);
}

static void
post_ok_len (TestHttp   *http,
             const char *target,
             const void *body,
             gsize       length)
{
  g_autoptr(TestResponse) response = test_http_post (http, target, body, length);

  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_true (test_response_body_equal (response, TEST_S ("ok")));
}

static void
post_ok (TestHttp   *http,
         const char *sid,
         const char *body)
{
  g_autofree char *target = v4_url (sid);

  post_ok_len (http, target, body, strlen (body));
}

static EngineIOSocket *
get_socket (Fixture    *f,
            const char *sid)
{
  EngineIOSocket *socket = engine_io_server_lookup_socket (f->lb.server, sid);

  g_assert_nonnull (socket);
  return socket;
}

/* engine_io_socket_close(), then the poll a client makes next: it takes
 * what was queued and the close packet (“1”), so the session ends without
 * waiting for a last poll that would never come. */
static void
close_and_poll (Fixture        *f,
                EngineIOSocket *socket)
{
  g_autofree char *target = v4_url (engine_io_socket_get_id (socket));
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *body = NULL;

  engine_io_socket_close (socket);
  response = test_http_get (f->lb.http, target);
  test_require (response != NULL);
  body = test_response_text (response);
  if (response->status == 200)
    g_assert_true (g_str_has_suffix (body, "1"));
  else
    assert_error (response, 400, 1);
}

/* Whether a request sent on @http is still unanswered after @ms. */
static gboolean
still_waiting (TestHttp *http,
               guint     ms)
{
  return !test_http_wait_readable (http, ms);
}

/* ------------------------------------------------------------------ */
/* Handshake                                                            */
/* ------------------------------------------------------------------ */

static void
test_handshake_open (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;

  g_test_summary ("A v4 handshake answers an open packet with a long URL-safe sid, the "
                  "websocket upgrade and the configured heartbeat and payload limits");

  g_object_set (f->lb.server, "ping-interval", 1234, "ping-timeout", 2345,
                "max-payload", (guint64) 34567, NULL);
  fixture_start (f);

  /* The cache-buster and other unknown parameters are ignored. */
  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling&t=PxYz12&foo=bar", &open);
  test_require (packets != NULL && open != NULL);
  g_assert_cmpuint (packets->len, ==, 1);

  g_assert_cmpuint (strlen (open->sid), >=, 20);
  g_assert_true (test_sid_is_url_safe (open->sid));
  g_assert_cmpuint (g_strv_length (open->upgrades), ==, 1);
  g_assert_cmpstr (open->upgrades[0], ==, "websocket");
  g_assert_cmpint (open->ping_interval, ==, 1234);
  g_assert_cmpint (open->ping_timeout, ==, 2345);
  g_assert_cmpint (open->max_payload, ==, 34567);

  socket = get_socket (f, open->sid);
  test_require (socket != NULL);
  g_assert_cmpstr (engine_io_socket_get_id (socket), ==, open->sid);
  g_assert_cmpint (engine_io_socket_get_protocol_version (socket), ==, ENGINE_IO_PROTOCOL_V4);
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_POLLING);
  g_assert_cmpstr (engine_io_socket_get_remote_address (socket), ==, "127.0.0.1");
  g_assert_cmpstr (engine_io_handshake_get_query_param (engine_io_socket_get_handshake (socket), "t"),
                   ==, "PxYz12");
  g_assert_false (engine_io_socket_is_closed (socket));

  /* Query order does not matter; the path works without its slash. */
  response = test_http_get (f->lb.http, "/engine.io?transport=polling&EIO=4");
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpint (((const char *) g_bytes_get_data (response->body, NULL))[0], ==, '0');
  g_assert_cmpstr (test_response_header (response, "Content-Length"), !=, NULL);
}

static void
test_handshake_defaults (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestOpenPacket) open_v3 = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) v3_packets = NULL;
  g_autoptr(GError) error = NULL;
  gsize sid_bytes = 0;

  g_test_summary ("A server left at its defaults opens sessions with the reference's values: "
                  "pingInterval 25000, pingTimeout 20000, maxPayload 1000000, the websocket "
                  "upgrade, and a sid of 144 random bits in URL-safe base64 (24 characters); "
                  "v3 the same (the reference sends maxPayload to v3 clients too)");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);

  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (packets != NULL && open != NULL);
  g_assert_cmpuint (packets->len, ==, 1);
  g_assert_cmpint (open->ping_interval, ==, 25000);
  g_assert_cmpint (open->ping_timeout, ==, 20000);
  g_assert_cmpint (open->max_payload, ==, 1000000);
  test_require (open->upgrades != NULL);
  g_assert_cmpuint (g_strv_length (open->upgrades), ==, 1);
  g_assert_cmpstr (open->upgrades[0], ==, "websocket");
  /* 144 bits are 18 bytes: 24 base64url characters, no padding. */
  g_assert_cmpuint (strlen (open->sid), ==, 24);
  g_assert_true (test_sid_is_url_safe (open->sid));
  g_assert_null (strchr (open->sid, '.'));
  {
    g_autofree char *standard = g_strdup (open->sid);
    g_autofree guchar *decoded = NULL;

    g_strdelimit (standard, "-", '+');
    g_strdelimit (standard, "_", '/');
    decoded = g_base64_decode (standard, &sid_bytes);
    g_assert_cmpuint (sid_bytes, ==, 18);
  }
  /* The JSON has these five fields and no others. */
  {
    g_autoptr(JsonParser) parser = json_parser_new ();
    JsonObject *object;

    test_require (json_parser_load_from_data (parser, open->json, -1, &error));
    object = json_node_get_object (json_parser_get_root (parser));
    g_assert_cmpuint (json_object_get_size (object), ==, 5);
  }

  response = test_http_get (f->lb.http, "/engine.io/?EIO=3&transport=polling");
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  v3_packets = test_payload_v3_split (response->body, &error);
  g_assert_no_error (error);
  test_require (v3_packets != NULL && v3_packets->len >= 1);
  test_require (((const char *) g_ptr_array_index (v3_packets, 0))[0] == '0');
  open_v3 = test_open_packet_parse ((const char *) g_ptr_array_index (v3_packets, 0) + 1, &error);
  g_assert_no_error (error);
  test_require (open_v3 != NULL);
  g_assert_cmpint (open_v3->ping_interval, ==, 25000);
  g_assert_cmpint (open_v3->ping_timeout, ==, 20000);
  g_assert_cmpint (open_v3->max_payload, ==, 1000000);
  g_assert_cmpuint (g_strv_length (open_v3->upgrades), ==, 1);
  g_assert_cmpstr (open_v3->upgrades[0], ==, "websocket");
  g_assert_cmpuint (strlen (open_v3->sid), ==, 24);
  g_assert_true (test_sid_is_url_safe (open_v3->sid));
}

static void
test_handshake_no_upgrades (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(EngineIOServer) polling_only = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open2 = NULL;
  g_autoptr(GPtrArray) packets2 = NULL;
  guint port;

  g_test_summary ("Without allow-upgrades, or without the websocket transport, the open "
                  "packet lists no upgrades");

  g_object_set (f->lb.server, "allow-upgrades", FALSE, NULL);
  fixture_start (f);
  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (open != NULL);
  g_assert_cmpuint (g_strv_length (open->upgrades), ==, 0);

  polling_only = test_server_new ();
  g_object_set (polling_only, "transports", ENGINE_IO_TRANSPORTS_POLLING, NULL);
  port = test_server_listen (polling_only);
  test_require (port != 0);
  http = test_http_new (port);
  packets2 = test_eio_polling_handshake (http, 4, "/engine.io/?EIO=4&transport=polling", &open2);
  test_require (open2 != NULL);
  g_assert_cmpuint (g_strv_length (open2->upgrades), ==, 0);
  /* A transport that is not enabled is unknown. */
  expect_error (http, "GET", "/engine.io/?EIO=4&transport=websocket", NULL, NULL, 400, 0);
  engine_io_server_close (polling_only);
}

static void
test_handshake_unique_sids (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  g_test_summary ("Every handshake gets a different sid");

  fixture_start (f);
  for (guint i = 0; i < 100; i++)
    {
      char *sid = handshake (f);
      test_require (sid != NULL);
      g_assert_cmpuint (strlen (sid), >=, 20);
      g_assert_true (test_sid_is_url_safe (sid));
      g_assert_false (g_hash_table_contains (seen, sid));
      g_hash_table_add (seen, sid);
    }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 100);
}

static void
test_handshake_connection_first (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  gint connection_at, message_at;
  g_autofree char *ev_connection = NULL;
  g_autofree char *ev_message = NULL;

  g_test_summary ("EngineIOServer::connection comes before the session's first message, "
                  "and what its handler sends travels with the handshake response");

  f->welcome = g_strdup ("welcome");
  fixture_start (f);

  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (open != NULL);
  test_require (packets->len == 2);
  g_assert_cmpstr (g_ptr_array_index (packets, 1), ==, "4welcome");

  post_ok (f->lb.http, open->sid, "4first\x1e" "4second");
  assert_event (f, "message %s second", open->sid);

  ev_connection = g_strdup_printf ("connection %s polling", open->sid);
  ev_message = g_strdup_printf ("message %s first", open->sid);
  connection_at = test_recorder_index (f->lb.events, ev_connection);
  message_at = test_recorder_index (f->lb.events, ev_message);
  g_assert_cmpint (connection_at, >=, 0);
  g_assert_cmpint (message_at, >, connection_at);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "connection "), ==, 1);
}

static void
test_handshake_slow_connection_handler (Fixture       *f,
                                        gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autofree char *next = NULL;
  g_autofree char *closed = NULL;

  g_test_summary ("A ::connection handler that sends and then takes its time: its message "
                  "travels with the handshake response, and the client's next poll waits "
                  "(for the ping here) instead of being answered with a close packet");

  f->welcome = g_strdup ("welcome");
  f->welcome_sleep_ms = 300;
  g_object_set (f->lb.server, "ping-interval", 1000, "ping-timeout", 5000, NULL);
  fixture_start (f);

  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (open != NULL);
  test_require (packets->len == 2);
  g_assert_cmpstr (g_ptr_array_index (packets, 1), ==, "4welcome");

  next = poll_text (f->lb.http, open->sid);
  g_assert_cmpstr (next, ==, "2");
  closed = g_strdup_printf ("close %s", open->sid);
  g_assert_cmpint (test_recorder_index_prefix (f->lb.events, closed), <, 0);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

static gboolean
admit_unless_deny (EngineIOServer    *server,
                   EngineIOHandshake *handshake,
                   gpointer           user_data)
{
  return engine_io_handshake_get_query_param (handshake, "deny") == NULL;
}

static void
test_errors_codes (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *ws_target = NULL;
  static const char *const bad_origin[] = { "Origin", "https://a.example\x01", NULL };

  g_test_summary ("Errors 0, 1, 2, 3 and 5: HTTP 400 with the exact JSON body");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  target = v4_url (sid);

  /* 0 Transport unknown */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4", NULL, NULL, 400, 0);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=foo", NULL, NULL, 400, 0);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=POLLING", NULL, NULL, 400, 0);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=", NULL, NULL, 400, 0);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=%FF%FE", NULL, NULL, 400, 0);

  /* 1 Session ID unknown */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&sid=nosuchsession", NULL, NULL, 400, 1);
  expect_error (f->lb.http, "POST", "/engine.io/?EIO=4&transport=polling&sid=nosuchsession", NULL, "4x", 400, 1);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&sid=", NULL, NULL, 400, 1);

  /* 2 Bad handshake method */
  expect_error (f->lb.http, "POST", "/engine.io/?EIO=4&transport=polling", NULL, "4x", 400, 2);
  expect_error (f->lb.http, "PUT", "/engine.io/?EIO=4&transport=polling", NULL, "", 400, 2);
  expect_error (f->lb.http, "DELETE", "/engine.io/?EIO=4&transport=polling", NULL, NULL, 400, 2);

  /* 3 Bad request */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=websocket", NULL, NULL, 400, 3);
  ws_target = g_strdup_printf ("/engine.io/?EIO=4&transport=websocket&sid=%s", sid);
  expect_error (f->lb.http, "GET", ws_target, NULL, NULL, 400, 3);
  expect_error (f->lb.http, "PUT", target, NULL, "4x", 400, 3);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", bad_origin, NULL, 400, 3);

  /* 5 Unsupported protocol version: EIO missing or anything but 4 (3 is
   * off by default). */
  expect_error (f->lb.http, "GET", "/engine.io/?transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=5&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=2&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=3&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=04&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4.0&transport=polling", NULL, NULL, 400, 5);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=abc&transport=polling", NULL, NULL, 400, 5);

  /* The session is unharmed by all this. */
  post_ok (f->lb.http, sid, "4still here");
  assert_event (f, "message %s still here", sid);
}

static void
test_errors_forbidden (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sid = NULL;

  g_test_summary ("An admission function that refuses gives HTTP 403 with code 4");

  engine_io_server_set_admission_func (f->lb.server, admit_unless_deny, NULL, NULL);
  fixture_start (f);

  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&deny=1", NULL, NULL, 403, 4);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "connection "), ==, 0);

  sid = handshake (f);
  g_assert_nonnull (sid);
}

static void
test_errors_order (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  static const char *const bad_origin[] = { "Origin", "https://a.example\x01", NULL };

  g_test_summary ("When a request has several faults, the error is the first in "
                  "PROTOCOL.md's order: 0, 1, 3, 2, 4, 5");

  engine_io_server_set_admission_func (f->lb.server, admit_unless_deny, NULL, NULL);
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);

  /* Transport before everything. */
  expect_error (f->lb.http, "POST", "/engine.io/?EIO=9&transport=foo&sid=nosuch", NULL, "4x", 400, 0);
  expect_error (f->lb.http, "PUT", "/engine.io/?transport=foo&deny=1", NULL, "", 400, 0);
  /* Session before method and version. */
  expect_error (f->lb.http, "PUT", "/engine.io/?EIO=9&transport=polling&sid=nosuch", NULL, "", 400, 1);
  /* The session's transport before the version. */
  target = g_strdup_printf ("/engine.io/?EIO=9&transport=websocket&sid=%s", sid);
  expect_error (f->lb.http, "GET", target, NULL, NULL, 400, 3);
  /* A bad Origin header before the session (as the reference). */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&sid=nosuch", bad_origin, NULL, 400, 3);
  /* Handshake method before WebSocket-without-Upgrade, admission and version. */
  expect_error (f->lb.http, "POST", "/engine.io/?EIO=9&transport=websocket&deny=1", NULL, "", 400, 2);
  expect_error (f->lb.http, "POST", "/engine.io/?EIO=9&transport=polling&deny=1", NULL, "", 400, 2);
  /* WebSocket without Upgrade before admission and version. */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=9&transport=websocket&deny=1", NULL, NULL, 400, 3);
  /* Admission before the version. */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=9&transport=polling&deny=1", NULL, NULL, 403, 4);
  expect_error (f->lb.http, "GET", "/engine.io/?transport=polling&deny=1", NULL, NULL, 403, 4);
  /* And the version last. */
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=9&transport=polling", NULL, NULL, 400, 5);
}

static void
test_errors_eio3 (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(EngineIOServer) v3 = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autofree char *sid = NULL;
  guint port;

  g_test_summary ("EIO=3 is refused with code 5 unless allow-eio3 is set");

  fixture_start (f);
  expect_error (f->lb.http, "GET", "/engine.io/?EIO=3&transport=polling", NULL, NULL, 400, 5);

  v3 = test_server_new ();
  g_object_set (v3, "allow-eio3", TRUE, NULL);
  port = test_server_listen (v3);
  test_require (port != 0);
  http = test_http_new (port);
  sid = test_eio_polling_open_sid (http, 3, NULL);
  g_assert_nonnull (sid);
  /* Still nothing else than 3 and 4. */
  expect_error (http, "GET", "/engine.io/?EIO=2&transport=polling", NULL, NULL, 400, 5);
  expect_error (http, "GET", "/engine.io/?transport=polling", NULL, NULL, 400, 5);
  engine_io_server_close (v3);
}

/* ------------------------------------------------------------------ */
/* CORS, cookie, path, ids, limits                                      */
/* ------------------------------------------------------------------ */

static void
test_cors_any (Fixture       *f,
               gconstpointer  data)
{
  static const char *const origin[] = { "Origin", "https://a.example", NULL };
  static const char *const preflight[] = {
    "Origin", "https://a.example",
    "Access-Control-Request-Method", "POST",
    "Access-Control-Request-Headers", "content-type, x-custom",
    NULL
  };
  g_autoptr(TestResponse) hs = NULL;
  g_autoptr(TestResponse) err = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) pre1 = NULL;
  g_autoptr(TestResponse) pre2 = NULL;
  g_autoptr(TestResponse) pre3 = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL;
  const char *methods;

  g_test_summary ("cors-origin “*”: every response, errors and preflights included, allows "
                  "any origin; OPTIONS is answered 204 before any check, with or without sid");

  g_object_set (f->lb.server, "cors-origin", "*", NULL);
  fixture_start (f);

  hs = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", origin, NULL, -1,
                          TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (hs != NULL && hs->status == 200);
  g_assert_cmpstr (test_response_header (hs, "Access-Control-Allow-Origin"), ==, "*");
  packets = test_payload_v4_split (hs->body);
  open = test_open_packet_parse ((char *) g_ptr_array_index (packets, 0) + 1, &error);
  g_assert_no_error (error);
  test_require (open != NULL);
  target = v4_url (open->sid);

  err = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=nope", origin, NULL, -1,
                           TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  assert_error (err, 400, 0);
  g_assert_cmpstr (test_response_header (err, "Access-Control-Allow-Origin"), ==, "*");

  post = test_http_request (f->lb.http, "POST", target, origin, "4x", 2, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  g_assert_cmpstr (test_response_header (post, "Access-Control-Allow-Origin"), ==, "*");

  /* Preflights: handshake, with a sid, with an unknown sid and a bad
   * transport: all 204 with the CORS headers. */
  pre1 = test_http_request (f->lb.http, "OPTIONS", "/engine.io/?EIO=4&transport=polling", preflight,
                            NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pre1 != NULL);
  g_assert_cmpuint (pre1->status, ==, 204);
  g_assert_cmpstr (test_response_header (pre1, "Access-Control-Allow-Origin"), ==, "*");
  methods = test_response_header (pre1, "Access-Control-Allow-Methods");
  g_assert_nonnull (methods);
  g_assert_nonnull (strstr (methods ? methods : "", "GET"));
  g_assert_nonnull (strstr (methods ? methods : "", "POST"));
  g_assert_nonnull (test_response_header (pre1, "Access-Control-Allow-Headers"));
  g_assert_nonnull (strstr (test_response_header (pre1, "Access-Control-Allow-Headers") ?: "",
                            "x-custom"));

  pre2 = test_http_request (f->lb.http, "OPTIONS", target, preflight, NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pre2 != NULL);
  g_assert_cmpuint (pre2->status, ==, 204);
  g_assert_cmpstr (test_response_header (pre2, "Access-Control-Allow-Origin"), ==, "*");

  pre3 = test_http_request (f->lb.http, "OPTIONS", "/engine.io/?EIO=9&transport=nope&sid=nosuch",
                            preflight, NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pre3 != NULL);
  g_assert_cmpuint (pre3->status, ==, 204);
  g_assert_cmpstr (test_response_header (pre3, "Access-Control-Allow-Origin"), ==, "*");

  /* The preflights did not disturb the session. */
  assert_event (f, "message %s x", open->sid);
  g_assert_false (test_recorder_count (f->lb.events, "close ") > 0);
}

static void
test_cors_list (Fixture       *f,
                gconstpointer  data)
{
  static const char *const origin_a[] = { "Origin", "https://a.example", NULL };
  static const char *const origin_b[] = { "Origin", "https://b.example", NULL };
  static const char *const origin_c[] = { "Origin", "https://c.example", NULL };
  g_autoptr(TestResponse) a = NULL;
  g_autoptr(TestResponse) b = NULL;
  g_autoptr(TestResponse) c = NULL;
  g_autoptr(TestResponse) pre = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("cors-origin as a list: a listed origin is echoed (with Vary: Origin), "
                  "another gets no CORS headers; credentials add Allow-Credentials");

  g_object_set (f->lb.server, "cors-origin", "https://a.example, https://b.example",
                "cors-credentials", TRUE, NULL);
  fixture_start (f);

  a = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", origin_a, NULL, -1,
                         TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (a != NULL);
  g_assert_cmpuint (a->status, ==, 200);
  g_assert_cmpstr (test_response_header (a, "Access-Control-Allow-Origin"), ==, "https://a.example");
  g_assert_cmpstr (test_response_header (a, "Access-Control-Allow-Credentials"), ==, "true");
  g_assert_nonnull (test_response_header (a, "Vary"));
  g_assert_nonnull (strstr (test_response_header (a, "Vary") ?: "", "Origin"));

  /* An error response, for the other listed origin. */
  b = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&sid=nosuch", origin_b,
                         NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  assert_error (b, 400, 1);
  test_require (b != NULL);
  g_assert_cmpstr (test_response_header (b, "Access-Control-Allow-Origin"), ==, "https://b.example");
  g_assert_cmpstr (test_response_header (b, "Access-Control-Allow-Credentials"), ==, "true");

  /* Not listed. */
  c = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", origin_c, NULL, -1,
                         TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (c != NULL);
  g_assert_cmpuint (c->status, ==, 200);
  g_assert_null (test_response_header (c, "Access-Control-Allow-Origin"));
  g_assert_null (test_response_header (c, "Access-Control-Allow-Credentials"));

  pre = test_http_request (f->lb.http, "OPTIONS", "/engine.io/?EIO=4&transport=polling&sid=nosuch",
                           origin_b, NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pre != NULL);
  g_assert_cmpuint (pre->status, ==, 204);
  g_assert_cmpstr (test_response_header (pre, "Access-Control-Allow-Origin"), ==, "https://b.example");
  g_assert_cmpstr (test_response_header (pre, "Access-Control-Allow-Credentials"), ==, "true");
}

static void
test_cors_none (Fixture       *f,
                gconstpointer  data)
{
  static const char *const origin[] = { "Origin", "https://a.example", NULL };
  g_autoptr(TestResponse) hs = NULL;
  g_autoptr(TestResponse) err = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Without cors-origin no CORS header is sent");

  fixture_start (f);
  hs = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling", origin, NULL, -1,
                          TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (hs != NULL);
  g_assert_cmpuint (hs->status, ==, 200);
  g_assert_null (test_response_header (hs, "Access-Control-Allow-Origin"));
  err = test_http_request (f->lb.http, "GET", "/engine.io/?EIO=4", origin, NULL, -1, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  assert_error (err, 400, 0);
  test_require (err != NULL);
  g_assert_null (test_response_header (err, "Access-Control-Allow-Origin"));
}

static void
test_cors_credentials_wildcard (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("cors-credentials with cors-origin “*” makes listen() fail with "
                  "ENGINE_IO_ERROR_INVALID_ARGUMENT");

  g_object_set (f->lb.server, "cors-origin", "*", "cors-credentials", TRUE, NULL);
  g_assert_false (engine_io_server_listen (f->lb.server, "127.0.0.1", 0, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (engine_io_server_get_port (f->lb.server), ==, 0);
}

static void
test_cookie (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(TestResponse) hs = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *target = NULL;
  g_autoptr(EngineIOServer) plain = NULL;
  g_autoptr(EngineIOServer) custom = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) hs2 = NULL;
  g_autoptr(TestResponse) hs3 = NULL;
  g_autoptr(GPtrArray) packets3 = NULL;
  g_autoptr(TestOpenPacket) open3 = NULL;
  g_autofree char *expected3 = NULL;
  guint port;

  g_test_summary ("The cookie property sets a cookie holding the sid on the handshake "
                  "response, with the configured attributes; no cookie by default");

  g_object_set (f->lb.server, "cookie", "io", NULL);
  fixture_start (f);

  hs = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling");
  test_require (hs != NULL && hs->status == 200);
  packets = test_payload_v4_split (hs->body);
  open = test_open_packet_parse ((char *) g_ptr_array_index (packets, 0) + 1, &error);
  g_assert_no_error (error);
  test_require (open != NULL);
  expected = g_strdup_printf ("io=%s; Path=/; HttpOnly; SameSite=Lax", open->sid);
  g_assert_cmpstr (test_response_header (hs, "Set-Cookie"), ==, expected);

  /* Only the handshake sets it. */
  {
    g_autoptr(EngineIOSocket) socket = get_socket (f, open->sid);
    test_require (socket != NULL);
    engine_io_socket_send_text (socket, "x", NULL);
  }
  target = v4_url (open->sid);
  poll = test_http_get (f->lb.http, target);
  test_require (poll != NULL);
  g_assert_cmpuint (poll->status, ==, 200);
  g_assert_null (test_response_header (poll, "Set-Cookie"));

  plain = test_server_new ();
  port = test_server_listen (plain);
  test_require (port != 0);
  http = test_http_new (port);
  hs2 = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  test_require (hs2 != NULL);
  g_assert_cmpuint (hs2->status, ==, 200);
  g_assert_null (test_response_header (hs2, "Set-Cookie"));
  engine_io_server_close (plain);
  g_clear_pointer (&http, test_http_free);

  custom = test_server_new ();
  g_object_set (custom, "cookie", "sticky", "cookie-path", NULL, "cookie-http-only", FALSE,
                "cookie-same-site", "Strict", NULL);
  port = test_server_listen (custom);
  test_require (port != 0);
  http = test_http_new (port);
  hs3 = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  test_require (hs3 != NULL && hs3->status == 200);
  packets3 = test_payload_v4_split (hs3->body);
  open3 = test_open_packet_parse ((char *) g_ptr_array_index (packets3, 0) + 1, &error);
  g_assert_no_error (error);
  test_require (open3 != NULL);
  expected3 = g_strdup_printf ("sticky=%s; SameSite=Strict", open3->sid);
  g_assert_cmpstr (test_response_header (hs3, "Set-Cookie"), ==, expected3);
  engine_io_server_close (custom);
}

static void
test_path (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) packets2 = NULL;
  static const char *const elsewhere[] = {
    "/engine.io/?EIO=4&transport=polling",
    "/custom/x?EIO=4&transport=polling",
    "/customx?EIO=4&transport=polling",
    "/?EIO=4&transport=polling",
    "/favicon.ico",
  };

  g_test_summary ("The path property moves the engine; other paths get 404");

  g_object_set (f->lb.server, "path", "/custom/", NULL);
  fixture_start (f);

  packets = test_eio_polling_handshake (f->lb.http, 4, "/custom/?EIO=4&transport=polling", &open);
  g_assert_nonnull (open);
  packets2 = test_eio_polling_handshake (f->lb.http, 4, "/custom?EIO=4&transport=polling", NULL);
  g_assert_nonnull (packets2);

  for (guint i = 0; i < G_N_ELEMENTS (elsewhere); i++)
    {
      g_autoptr(TestResponse) response = test_http_get (f->lb.http, elsewhere[i]);
      test_require (response != NULL);
      g_assert_cmpuint (response->status, ==, 404);
    }
}

static char *
custom_id (EngineIOServer    *server,
           EngineIOHandshake *handshake,
           gpointer           user_data)
{
  const char *wanted = engine_io_handshake_get_query_param (handshake, "want");
  int n = g_atomic_int_add ((int *) user_data, 1);

  if (wanted != NULL)
    return g_strdup (wanted);
  return g_strdup_printf ("custom-%d", n);
}

static void
test_id_func (Fixture       *f,
              gconstpointer  data)
{
  static int counter;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) bad = NULL;
  g_autoptr(TestResponse) dup = NULL;
  g_autoptr(TestResponse) empty = NULL;

  g_test_summary ("A custom id function names the sessions; an invalid or duplicate id "
                  "refuses the handshake with HTTP 500");

  counter = 0;
  engine_io_server_set_id_func (f->lb.server, custom_id, &counter, NULL);
  fixture_start (f);

  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (open != NULL);
  g_assert_cmpstr (open->sid, ==, "custom-0");
  socket = engine_io_server_lookup_socket (f->lb.server, "custom-0");
  g_assert_nonnull (socket);
  post_ok (f->lb.http, "custom-0", "4hi");
  assert_event (f, "message custom-0 hi");

  test_log_expect (G_LOG_LEVEL_WARNING, "invalid session id");
  bad = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling&want=bad%20id!");
  test_require (bad != NULL);
  g_assert_cmpuint (bad->status, ==, 500);

  test_log_expect (G_LOG_LEVEL_WARNING, "invalid session id");
  empty = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling&want=");
  test_require (empty != NULL);
  g_assert_cmpuint (empty->status, ==, 500);

  test_log_expect (G_LOG_LEVEL_WARNING, "id of an open session");
  dup = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling&want=custom-0");
  test_require (dup != NULL);
  g_assert_cmpuint (dup->status, ==, 500);

  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 1);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "connection "), ==, 1);
}

static void
test_max_sessions (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;
  g_autofree char *c = NULL;
  g_autoptr(TestResponse) full = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *body = NULL;

  g_test_summary ("max-sessions: handshakes over the limit get HTTP 503; a closed session "
                  "frees its place");

  g_object_set (f->lb.server, "max-sessions", 2, NULL);
  fixture_start (f);

  a = handshake (f);
  b = handshake (f);
  test_require (a != NULL && b != NULL);

  full = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling");
  test_require (full != NULL);
  g_assert_cmpuint (full->status, ==, 503);
  body = test_response_text (full);
  g_assert_cmpstr (body, ==, "{\"code\":4,\"message\":\"Too many sessions\"}");
  g_assert_cmpstr (test_response_header (full, "Content-Type"), ==, "application/json");

  socket = get_socket (f, a);
  test_require (socket != NULL);
  close_and_poll (f, socket);
  assert_event (f, "close %s forced close", a);

  c = handshake (f);
  g_assert_nonnull (c);
}

static void
test_max_sessions_refused (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sid = NULL;
  gint64 start;

  g_test_summary ("Refused handshakes do not use up max-sessions, and do not delay "
                  "engine_io_server_close()");

  g_object_set (f->lb.server, "max-sessions", 1, NULL);
  engine_io_server_set_admission_func (f->lb.server, admit_unless_deny, NULL, NULL);
  fixture_start (f);

  for (guint i = 0; i < 3; i++)
    expect_error (f->lb.http, "GET", "/engine.io/?EIO=4&transport=polling&deny=1", NULL, NULL, 403, 4);
  sid = handshake (f);
  g_assert_nonnull (sid);

  start = g_get_monotonic_time ();
  engine_io_server_close (f->lb.server);
  g_assert_cmpint (g_get_monotonic_time () - start, <, test_scaled_ms (5000) * G_GINT64_CONSTANT (1000));
  if (sid != NULL)
    assert_event (f, "close %s server shutting down", sid);
}

/* ------------------------------------------------------------------ */
/* Polling                                                              */
/* ------------------------------------------------------------------ */

static void
test_polling_post_ok (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestResponse) raw = NULL;
  g_autoptr(GError) error = NULL;
  const char *body = "4h\xc3\xa9llo";

  g_test_summary ("A POST answers exactly “ok”; a POST without Content-Type is UTF-8 text");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  target = v4_url (sid);

  response = test_http_post (f->lb.http, target, TEST_S ("4hello"));
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_true (test_response_body_equal (response, TEST_S ("ok")));
  assert_event (f, "message %s hello", sid);

  /* No Content-Type at all. */
  raw = test_http_request (f->lb.http, "POST", target, NULL, body, (gssize) strlen (body),
                           TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (raw != NULL);
  g_assert_cmpuint (raw->status, ==, 200);
  g_assert_true (test_response_body_equal (raw, TEST_S ("ok")));
  assert_event (f, "message %s h\xc3\xa9llo", sid);
}

static void
test_polling_utf8 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *text = NULL;
  g_autofree char *empty = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *target = NULL;
  const char *emoji = "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe2\x82\xac \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd";
  g_autofree char *packet = g_strconcat ("4", emoji, NULL);

  g_test_summary ("Text with emoji both ways (Content-Length counts bytes), and the empty "
                  "message “4”");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);
  target = v4_url (sid);

  g_assert_true (engine_io_socket_send_text (socket, emoji, NULL));
  response = test_http_get (f->lb.http, target);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_true (test_response_body_equal (response, packet, strlen (packet)));
  g_assert_cmpstr (test_response_header (response, "Content-Length"), ==,
                   (text = g_strdup_printf ("%" G_GSIZE_FORMAT, strlen (packet))));

  post_ok (f->lb.http, sid, packet);
  assert_event (f, "message %s %s", sid, emoji);

  /* The empty message. */
  g_assert_true (engine_io_socket_send_text (socket, "", NULL));
  empty = poll_text (f->lb.http, sid);
  g_assert_cmpstr (empty, ==, "4");
  post_ok (f->lb.http, sid, "4");
  assert_event (f, "message %s ", sid);
}

static void
test_polling_large (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(GString) big = g_string_new (NULL);
  g_autofree char *packet = NULL;
  g_autofree char *body = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *event = NULL;

  g_test_summary ("A 100 KiB text message both ways");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  while (big->len < 100 * 1024)
    g_string_append_printf (big, "%06u:\xc3\xa9\xe2\x82\xac;", (guint) big->len);
  packet = g_strconcat ("4", big->str, NULL);

  g_assert_true (engine_io_socket_send_text (socket, big->str, NULL));
  body = poll_text (f->lb.http, sid);
  test_require (body != NULL);
  g_assert_cmpuint (strlen (body), ==, strlen (packet));
  g_assert_true (strcmp (body, packet) == 0);

  post_ok (f->lb.http, sid, packet);
  event = g_strdup_printf ("message %s %s", sid, big->str);
  g_assert_true (test_recorder_wait (f->lb.events, event, TEST_TIMEOUT_MS));
}

static void
test_polling_binary (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  guint8 bytes[256];
  g_autoptr(GBytes) payload = NULL;
  g_autofree char *b64 = NULL;
  g_autofree char *hex = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *body = NULL;
  g_autofree char *mixed = NULL;
  g_autofree char *body2 = NULL;

  g_test_summary ("Binary messages in v4 polling: “b” + base64, both ways, mixed with text");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  for (guint i = 0; i < sizeof bytes; i++)
    bytes[i] = (guint8) (255 - i);
  payload = g_bytes_new (bytes, sizeof bytes);
  b64 = g_base64_encode (bytes, sizeof bytes);
  hex = test_hex_of (payload);

  g_assert_true (engine_io_socket_send_binary (socket, payload, NULL));
  body = poll_text (f->lb.http, sid);
  expected = g_strconcat ("b", b64, NULL);
  g_assert_cmpstr (body, ==, expected);

  mixed = g_strconcat ("4before\x1e" "b", b64, "\x1e" "bAAEC/w==\x1e" "4after", NULL);
  post_ok (f->lb.http, sid, mixed);
  assert_event (f, "message %s after", sid);
  assert_event (f, "binary %s %s", sid, hex);
  assert_event (f, "binary %s 000102ff", sid);
  {
    g_autofree char *e1 = g_strdup_printf ("message %s before", sid);
    g_autofree char *e2 = g_strdup_printf ("binary %s %s", sid, hex);
    g_autofree char *e3 = g_strdup_printf ("binary %s 000102ff", sid);
    g_autofree char *e4 = g_strdup_printf ("message %s after", sid);
    gint i1 = test_recorder_index (f->lb.events, e1), i2 = test_recorder_index (f->lb.events, e2);
    gint i3 = test_recorder_index (f->lb.events, e3), i4 = test_recorder_index (f->lb.events, e4);
    g_assert_cmpint (i1, >=, 0);
    g_assert_cmpint (i2, >, i1);
    g_assert_cmpint (i3, >, i2);
    g_assert_cmpint (i4, >, i3);
  }

  /* An empty binary message. */
  {
    g_autoptr(GBytes) nothing = g_bytes_new (NULL, 0);
    g_assert_true (engine_io_socket_send_binary (socket, nothing, NULL));
    body2 = poll_text (f->lb.http, sid);
    g_assert_cmpstr (body2, ==, "b");
  }
}

static void
test_polling_multiple_packets (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *body = NULL;
  g_autoptr(TestHttp) waiter = NULL;
  g_autofree char *prefix = NULL;

  g_test_summary ("Several packets in one POST arrive in order; a GET returns every queued "
                  "packet at once");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  post_ok (f->lb.http, sid, "4one\x1e" "4two\x1e" "4three\x1e" "4");
  assert_event (f, "message %s ", sid);
  {
    g_auto(GStrv) all = test_recorder_dup (f->lb.events);
    g_autoptr(GPtrArray) messages = g_ptr_array_new ();
    prefix = g_strdup_printf ("message %s ", sid);
    for (guint i = 0; all[i] != NULL; i++)
      if (g_str_has_prefix (all[i], prefix))
        g_ptr_array_add (messages, all[i] + strlen (prefix));
    test_require (messages->len == 4);
    g_assert_cmpstr (g_ptr_array_index (messages, 0), ==, "one");
    g_assert_cmpstr (g_ptr_array_index (messages, 1), ==, "two");
    g_assert_cmpstr (g_ptr_array_index (messages, 2), ==, "three");
    g_assert_cmpstr (g_ptr_array_index (messages, 3), ==, "");
  }

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *text = g_strdup_printf ("m%u", i);
      g_assert_true (engine_io_socket_send_text (socket, text, NULL));
    }
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 5);
  body = poll_text (f->lb.http, sid);
  g_assert_cmpstr (body, ==, "4m0\x1e" "4m1\x1e" "4m2\x1e" "4m3\x1e" "4m4");
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);

  /* Nothing left: the next GET waits. */
  waiter = test_http_new (f->lb.port);
  test_require (send_poll (waiter, sid));
  g_assert_true (still_waiting (waiter, 200));
}

typedef struct
{
  EngineIOSocket *socket;
  guint           delay_ms;
  const char     *text;
} SendLater;

static gpointer
send_later_thread (gpointer data)
{
  SendLater *later = data;

  g_usleep (later->delay_ms * 1000);
  engine_io_socket_send_text (later->socket, later->text, NULL);
  return NULL;
}

static void
test_polling_get_waits (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) waiter = NULL;
  g_autofree char *body = NULL;
  g_autofree char *body2 = NULL;
  SendLater later;
  GThread *thread;
  gint64 start;

  g_test_summary ("A GET with nothing queued waits, and a send from another thread "
                  "answers it");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  waiter = test_http_new (f->lb.port);
  test_require (send_poll (waiter, sid));
  g_assert_true (still_waiting (waiter, 300));

  g_assert_true (engine_io_socket_send_text (socket, "wake", NULL));
  body = receive_text (waiter, 200);
  g_assert_cmpstr (body, ==, "4wake");

  /* Again, from a thread that is not the session's. */
  later.socket = socket;
  later.delay_ms = 100;
  later.text = "from a thread";
  start = g_get_monotonic_time ();
  test_require (send_poll (waiter, sid));
  thread = g_thread_new ("send-later", send_later_thread, &later);
  body2 = receive_text (waiter, 200);
  g_thread_join (thread);
  g_assert_cmpstr (body2, ==, "4from a thread");
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 90 * 1000);
}

static void
test_polling_many_waiting (Fixture       *f,
                           gconstpointer  data)
{
  enum { N_WAITING = 64 };
  TestHttp *waiters[N_WAITING];
  char *sids[N_WAITING];
  g_autofree char *busy = NULL;
  gint64 start;

  g_test_summary ("64 waiting polls (more than the server's HTTP threads) do not keep it "
                  "from answering other sessions, and each gets its own message");

  f->lb.watch |= TEST_WATCH_ECHO;
  fixture_start (f);

  for (guint i = 0; i < N_WAITING; i++)
    {
      waiters[i] = test_http_new (f->lb.port);
      sids[i] = test_eio_polling_open_sid (waiters[i], 4, NULL);
      test_require (sids[i] != NULL);
      test_require (send_poll (waiters[i], sids[i]));
    }

  /* Meanwhile another session works normally, promptly. */
  busy = handshake (f);
  test_require (busy != NULL);
  start = g_get_monotonic_time ();
  for (guint round = 0; round < 10; round++)
    {
      g_autofree char *text = g_strdup_printf ("4round %u", round);
      g_autofree char *echoed = NULL;
      post_ok (f->lb.http, busy, text);
      echoed = poll_text (f->lb.http, busy);
      g_assert_cmpstr (echoed, ==, text);
    }
  g_assert_cmpint (g_get_monotonic_time () - start, <, test_scaled_ms (3000) * G_GINT64_CONSTANT (1000));

  for (guint i = 0; i < N_WAITING; i++)
    g_assert_true (still_waiting (waiters[i], 0));

  for (guint i = 0; i < N_WAITING; i++)
    {
      g_autoptr(EngineIOSocket) socket = get_socket (f, sids[i]);
      g_autofree char *text = g_strdup_printf ("for %u", i);
      test_require (socket != NULL);
      g_assert_true (engine_io_socket_send_text (socket, text, NULL));
    }
  for (guint i = 0; i < N_WAITING; i++)
    {
      g_autofree char *expected = g_strdup_printf ("4for %u", i);
      g_autofree char *body = receive_text (waiters[i], 200);
      g_assert_cmpstr (body, ==, expected);
      test_http_free (waiters[i]);
      g_free (sids[i]);
    }
}

typedef struct
{
  EngineIOSocket *socket;
  guint           thread;
  guint           count;
  gint            failures;  /* (atomic) */
} Sender;

static gpointer
sender_thread (gpointer data)
{
  Sender *sender = data;

  for (guint i = 0; i < sender->count; i++)
    {
      g_autofree char *text = g_strdup_printf ("t%u-%u", sender->thread, i);
      if (!engine_io_socket_send_text (sender->socket, text, NULL))
        g_atomic_int_inc (&sender->failures);
    }
  return NULL;
}

static void
test_polling_send_order_threads (Fixture       *f,
                                 gconstpointer  data)
{
  enum { N_THREADS = 4, PER_THREAD = 500 };
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  Sender senders[N_THREADS];
  GThread *threads[N_THREADS];
  guint next[N_THREADS] = { 0, };
  guint total = 0;
  gint64 deadline;

  g_test_summary ("Messages sent from several threads at once all arrive, once each, in "
                  "the order each thread sent them");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  for (guint t = 0; t < N_THREADS; t++)
    {
      senders[t].socket = socket;
      senders[t].thread = t;
      senders[t].count = PER_THREAD;
      senders[t].failures = 0;
      threads[t] = g_thread_new ("sender", sender_thread, &senders[t]);
    }

  deadline = g_get_monotonic_time () + test_scaled_ms (10000) * G_GINT64_CONSTANT (1000);
  while (total < N_THREADS * PER_THREAD && g_get_monotonic_time () < deadline)
    {
      g_autofree char *target = v4_url (sid);
      g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);
      g_autoptr(GPtrArray) packets = NULL;

      if (response == NULL || response->status != 200)
        break;
      packets = test_payload_v4_split (response->body);
      for (guint i = 0; i < packets->len; i++)
        {
          const char *packet = g_ptr_array_index (packets, i);
          guint t, n;
          if (sscanf (packet, "4t%u-%u", &t, &n) != 2 || t >= N_THREADS)
            {
              g_test_fail_printf ("unexpected packet “%s”", packet);
              continue;
            }
          if (n != next[t])
            g_test_fail_printf ("thread %u: got message %u, expected %u", t, n, next[t]);
          next[t] = n + 1;
          total++;
        }
    }
  for (guint t = 0; t < N_THREADS; t++)
    {
      g_thread_join (threads[t]);
      g_assert_cmpint (senders[t].failures, ==, 0);
      g_assert_cmpuint (next[t], ==, PER_THREAD);
    }
  g_assert_cmpuint (total, ==, N_THREADS * PER_THREAD);
}

static void
test_polling_backpressure (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *body = NULL;
  g_autofree char *sid2 = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(EngineIOSocket) socket2 = NULL;
  g_autoptr(EngineIOServer) closing = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;
  g_autoptr(GError) error3 = NULL;
  char big[601];
  guint port;

  g_test_summary ("send-queue-high-water: drop-newest refuses sends past the mark with "
                  "QUEUE_FULL (and accepts again once polled); close ends the session with "
                  "“transport error”");

  memset (big, 'q', 600);
  big[600] = '\0';

  g_object_set (f->lb.server, "send-queue-high-water", (guint64) 1000,
                "backpressure-policy", ENGINE_IO_BACKPRESSURE_DROP_NEWEST, NULL);
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_true (engine_io_socket_send_text (socket, big, NULL));
  g_assert_false (engine_io_socket_send_text (socket, big, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL);
  body = poll_text (f->lb.http, sid);
  test_require (body != NULL);
  g_assert_cmpuint (strlen (body), ==, 601);
  g_assert_true (engine_io_socket_send_text (socket, big, &error2));
  g_assert_no_error (error2);
  g_assert_false (engine_io_socket_is_closed (socket));

  closing = test_server_new ();
  g_object_set (closing, "send-queue-high-water", (guint64) 1000,
                "backpressure-policy", ENGINE_IO_BACKPRESSURE_CLOSE, NULL);
  test_loopback_watch_server (&f->lb, closing);
  port = test_server_listen (closing);
  test_require (port != 0);
  http = test_http_new (port);
  sid2 = test_eio_polling_open_sid (http, 4, NULL);
  test_require (sid2 != NULL);
  socket2 = engine_io_server_lookup_socket (closing, sid2);
  test_require (socket2 != NULL);
  g_assert_true (engine_io_socket_send_text (socket2, big, NULL));
  g_assert_false (engine_io_socket_send_text (socket2, big, &error3));
  g_assert_error (error3, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL);
  assert_event (f, "close %s transport error", sid2);
  engine_io_server_close (closing);
}

/* The rules (a second GET or POST while one is active: overlap) are
 * /session/polling/get-overlap and /session/polling/post; this is their
 * wiring, once for each method: the 400 for the second request, what the
 * first one gets, the close. */
static void
test_polling_overlap (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *get_sid = NULL;
  g_autofree char *get_target = NULL;
  g_autofree char *post_sid = NULL;
  g_autofree char *post_target = NULL;
  g_autoptr(TestHttp) first_get = NULL;
  g_autoptr(TestResponse) second_get = NULL;
  g_autofree char *body = NULL;
  g_autoptr(TestHttp) first_post = NULL;
  g_autoptr(TestResponse) cont = NULL;
  g_autoptr(TestResponse) second_post = NULL;
  g_autoptr(TestResponse) late = NULL;
  g_autoptr(GError) error = NULL;
  static const char *const headers[] = {
    "Content-Type", "text/plain;charset=UTF-8",
    "Content-Length", "10",
    "Expect", "100-continue",
    NULL
  };

  g_test_summary ("A second concurrent GET gets 400, the first gets “1”, and the session "
                  "closes with “transport error”; a second concurrent POST gets 400 and "
                  "closes the session, the first, completed afterwards, gets 400 “Session "
                  "ID unknown” and delivers nothing");

  fixture_start (f);

  /* GET */
  get_sid = handshake (f);
  test_require (get_sid != NULL);
  get_target = v4_url (get_sid);
  first_get = test_http_new (f->lb.port);
  test_require (send_poll (first_get, get_sid));
  g_assert_true (still_waiting (first_get, 200));

  second_get = test_http_get (f->lb.http, get_target);
  assert_error (second_get, 400, 3);
  body = receive_text (first_get, 200);
  g_assert_cmpstr (body, ==, "1");
  assert_event (f, "close %s transport error", get_sid);
  expect_error (f->lb.http, "GET", get_target, NULL, NULL, 400, 1);
  {
    g_autoptr(EngineIOSocket) gone = engine_io_server_lookup_socket (f->lb.server, get_sid);
    g_assert_null (gone);
  }

  /* POST: one whose body is still coming (the server has seen its
   * headers when it asks for the body: 100 Continue). */
  post_sid = handshake (f);
  test_require (post_sid != NULL);
  post_target = v4_url (post_sid);
  first_post = test_http_new (f->lb.port);
  test_require (test_http_send (first_post, "POST", post_target, headers, NULL, 0, &error));
  cont = test_http_receive (first_post, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (cont != NULL);
  g_assert_cmpuint (cont->status, ==, 100);

  second_post = test_http_post (f->lb.http, post_target, TEST_S ("4second"));
  assert_error (second_post, 400, 3);
  assert_event (f, "close %s transport error", post_sid);

  /* The first one completes after the session is gone: it is answered
   * (the reference server leaves it hanging) as any request for an
   * unknown sid, and its message is not delivered. */
  test_require (test_http_send_raw (first_post, "4first6789", 10, &error));
  late = test_http_receive (first_post, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  assert_error (late, 400, 1);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 0);
}

static void
test_polling_max_payload (Fixture       *f,
                          gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *exact = NULL;
  g_autofree char *over = NULL;
  g_autoptr(TestResponse) too_big = NULL;
  g_autoptr(TestResponse) chunked = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestHttp) raw = NULL;
  g_autoptr(GString) request = g_string_new (NULL);

  g_test_summary ("max-payload counts the whole POST body: exactly the limit is accepted, "
                  "one byte more gets 413 (with Content-Length or chunked; a chunked body "
                  "is read to its end and its connection kept)");

  g_object_set (f->lb.server, "max-payload", (guint64) 1000, NULL);
  fixture_start (f);
  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling", &open);
  test_require (open != NULL);
  g_assert_cmpint (open->max_payload, ==, 1000);
  sid = g_strdup (open->sid);
  target = v4_url (sid);

  exact = g_malloc0 (1001);
  exact[0] = '4';
  memset (exact + 1, 'x', 999);
  post_ok (f->lb.http, sid, exact);
  {
    g_autofree char *event = g_strdup_printf ("message %s %s", sid, exact + 1);
    g_assert_true (test_recorder_wait (f->lb.events, event, TEST_TIMEOUT_MS));
  }

  over = g_malloc0 (1002);
  over[0] = '4';
  memset (over + 1, 'y', 1000);
  too_big = test_http_post (f->lb.http, target, over, 1001);
  test_require (too_big != NULL);
  g_assert_cmpuint (too_big->status, ==, 413);

  /* Chunked, without Content-Length: found while reading. */
  raw = test_http_new (f->lb.port);
  g_string_append_printf (request, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Type: text/plain\r\n\r\n", target);
  g_string_append_printf (request, "%x\r\n%s\r\n0\r\n\r\n", 1001, over);
  test_require (test_http_send_raw (raw, request->str, request->len, &error));
  chunked = test_http_receive (raw, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (chunked != NULL);
  g_assert_cmpuint (chunked->status, ==, 413);
  /* The body was read to its end: the connection serves the next request. */
  {
    g_autoptr(TestResponse) next = test_http_get (raw, "/engine.io/?EIO=4&transport=polling&sid=nosuchsession");

    test_require (next != NULL);
    g_assert_cmpuint (next->status, ==, 400);
  }

  g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 1);
}

static void
test_polling_malformed (Fixture       *f,
                        gconstpointer  data)
{
  static const struct { const char *body; gsize length; } cases[] = {
    { TEST_S ("9unknown type") },
    { TEST_S ("hello") },
    { TEST_S ("4a\x1e\x1e" "4b") },
    { TEST_S ("4a\x1e") },
    { TEST_S ("b!!!not base64") },
    { TEST_S ("4\xff\xfe invalid UTF-8") },
    { TEST_S ("4\xc3") },
    { TEST_S ("4\xed\xa0\x80 surrogate") },
  };

  g_test_summary ("A malformed payload gets 400 and closes the session with “parse error”");

  fixture_start (f);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *sid = handshake (f);
      g_autofree char *target = NULL;
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(TestHttp) waiter = test_http_new (f->lb.port);
      g_autofree char *body = NULL;

      test_require (sid != NULL);
      target = v4_url (sid);
      test_require (send_poll (waiter, sid));
      g_assert_true (still_waiting (waiter, 100));

      response = test_http_post (f->lb.http, target, cases[i].body, cases[i].length);
      test_require (response != NULL);
      if (response->status != 400)
        g_test_message ("case %u", i);
      assert_error (response, 400, 3);
      assert_event (f, "close %s parse error", sid);
      /* The waiting poll is not left hanging. */
      body = receive_text (waiter, 200);
      g_assert_cmpstr (body, ==, "1");
      g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 0);
    }
}

/* v3 payloads (text, XHR2 binary, JSONP form-encoded) malformed in each
 * way the POST's body can fail: before a body is made (JSONP without `d=`),
 * when its reader is set up (empty, invalid UTF-8), or partway through
 * (a length past the end): 400, `parse error`, nothing delivered. */
static void
test_v3_polling_malformed (Fixture       *f,
                           gconstpointer  data)
{
  static const char *const text_headers[] = { "Content-Type", "text/plain;charset=UTF-8", NULL };
  static const char *const binary_headers[] = { "Content-Type", "application/octet-stream", NULL };
  static const char *const form_headers[] = { "Content-Type", "application/x-www-form-urlencoded", NULL };
  static const struct
  {
    const char *const *headers;
    const char        *extra;
    const char        *body;
    gsize              length;
  } cases[] = {
    { text_headers, NULL, TEST_S ("9:4abcdef") },
    { text_headers, NULL, TEST_S ("2:4a3:4bc9:4") },
    { text_headers, NULL, TEST_S ("x:4a") },
    { text_headers, NULL, TEST_S ("2:4\xff") },
    { binary_headers, NULL, TEST_S ("\x00\x09\xff" "4ab") },
    { binary_headers, NULL, TEST_S ("\x00\x02\xff" "4a" "\x01\x09\xff\x04") },
    { form_headers, "&j=0", TEST_S ("x=2%3A4a") },
    { form_headers, "&j=0", TEST_S ("d=") },
    { form_headers, "&j=0", TEST_S ("d=2%3A4a9%3A4") },
  };

  g_test_summary ("A malformed v3 payload (text, binary or JSONP) gets 400 and closes the "
                  "session with “parse error”, nothing delivered");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *sid = test_eio_polling_open_sid (f->lb.http, 3, NULL);
      g_autofree char *target = NULL;
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) error = NULL;

      test_require (sid != NULL);
      target = v3_url (sid, cases[i].extra);
      response = test_http_request (f->lb.http, "POST", target, cases[i].headers, cases[i].body,
                                    (gssize) cases[i].length, TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      test_require (response != NULL);
      if (response->status != 400)
        g_test_message ("case %u", i);
      assert_error (response, 400, 3);
      assert_event (f, "close %s parse error", sid);
      g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 0);
    }
}

static void
test_polling_transport_mismatch (Fixture       *f,
                                 gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *ws = NULL;

  g_test_summary ("A polling session's sid with transport=websocket and no Upgrade gets 400 "
                  "code 3 and leaves the session alone");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  ws = g_strdup_printf ("/engine.io/?EIO=4&transport=websocket&sid=%s", sid);
  expect_error (f->lb.http, "GET", ws, NULL, NULL, 400, 3);
  expect_error (f->lb.http, "POST", ws, NULL, "4x", 400, 3);
  post_ok (f->lb.http, sid, "4alive");
  assert_event (f, "message %s alive", sid);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 0);
}

static void
test_polling_websocket_sid (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestHttp) ws = NULL;
  g_autoptr(TestResponse) switching = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) ws_only = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autofree char *target = NULL;
  g_autofree char *json = NULL;
  static const char *const upgrade[] = {
    "Upgrade", "websocket",
    "Connection", "Upgrade",
    "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version", "13",
    NULL
  };
  guint8 head[2];
  guint port;

  g_test_summary ("The sid of a WebSocket session used for polling gets 400 code 3; with "
                  "only WebSocket enabled, a polling handshake is an unknown transport");

  fixture_start (f);

  /* A WebSocket session without polling: the open packet is its first frame. */
  ws = test_http_new (f->lb.port);
  test_require (test_http_send (ws, "GET", "/engine.io/?EIO=4&transport=websocket", upgrade,
                                NULL, -1, &error));
  switching = test_http_receive (ws, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (switching != NULL);
  g_assert_cmpuint (switching->status, ==, 101);
  test_require (switching->status == 101);
  test_require (test_http_read_exact (ws, head, 2, TEST_TIMEOUT_MS, &error));
  g_assert_cmpuint (head[0], ==, 0x81);           /* FIN, text */
  test_require ((head[1] & 0x80) == 0 && (head[1] & 0x7f) < 126);  /* unmasked, short */
  json = g_malloc0 ((head[1] & 0x7f) + 1);
  test_require (test_http_read_exact (ws, json, head[1] & 0x7f, TEST_TIMEOUT_MS, &error));
  test_require (json[0] == '0');
  open = test_open_packet_parse (json + 1, &error);
  g_assert_no_error (error);
  test_require (open != NULL);
  assert_event (f, "connection %s websocket", open->sid);

  target = v4_url (open->sid);
  expect_error (f->lb.http, "GET", target, NULL, NULL, 400, 3);
  expect_error (f->lb.http, "POST", target, NULL, "4x", 400, 3);

  ws_only = test_server_new ();
  g_object_set (ws_only, "transports", ENGINE_IO_TRANSPORTS_WEBSOCKET, NULL);
  port = test_server_listen (ws_only);
  test_require (port != 0);
  http = test_http_new (port);
  expect_error (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, 400, 0);
  engine_io_server_close (ws_only);
}

/* ------------------------------------------------------------------ */
/* Heartbeat                                                            */
/* ------------------------------------------------------------------ */

/* The rules (when the pings go, when the pong is due, what a pong does)
 * are /session/v4/heartbeat and /session/v4/ping-timeout; this is their
 * wiring: the session's real timers, the ping on a poll, the pong in a
 * POST, ::heartbeat, and the close answering the waiting poll. */
static void
test_heartbeat_v4 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *closing = NULL;
  g_autoptr(TestHttp) waiter = NULL;
  guint timeout = test_scaled_ms (500);  /* room for the pongs on a loaded machine */
  gint64 pong_at = 0, closed_at;

  g_test_summary ("v4: the server pings on the poll; a pong in a POST keeps the session and "
                  "emits ::heartbeat; then no pong within ping-timeout closes it with “ping "
                  "timeout”, answering the waiting GET with “1”");

  g_object_set (f->lb.server, "ping-interval", 200, "ping-timeout", timeout, NULL);
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);

  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *ping = poll_text (f->lb.http, sid);
      g_assert_cmpstr (ping, ==, "2");
      pong_at = g_get_monotonic_time ();
      post_ok (f->lb.http, sid, "3");
    }
  prefix = g_strdup_printf ("heartbeat %s", sid);
  g_assert_true (test_recorder_wait_count (f->lb.events, prefix, 2, TEST_TIMEOUT_MS));
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 0);

  /* The third ping goes unanswered. */
  {
    g_autofree char *ping = poll_text (f->lb.http, sid);
    g_assert_cmpstr (ping, ==, "2");
  }
  waiter = test_http_new (f->lb.port);
  test_require (send_poll (waiter, sid));
  closing = receive_text (waiter, 200);
  closed_at = g_get_monotonic_time ();
  g_assert_cmpstr (closing, ==, "1");
  /* Not before ping-interval + ping-timeout after the last pong (sent
   * after pong_at): the real timers do not fire early. */
  g_assert_cmpint (closed_at - pong_at, >=, (gint64) (200 + timeout) * 1000);
  assert_event (f, "close %s ping timeout", sid);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "heartbeat "), ==, 2);
}

/* ------------------------------------------------------------------ */
/* v3                                                                   */
/* ------------------------------------------------------------------ */

static void
test_v3_handshake (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  const char *first;

  g_test_summary ("v3 handshake: the open packet in a `<len>:<packet>` text payload");

  g_object_set (f->lb.server, "allow-eio3", TRUE, "ping-interval", 1500, "ping-timeout", 1600, NULL);
  fixture_start (f);

  response = test_http_get (f->lb.http, "/engine.io/?EIO=3&transport=polling&t=abc");
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpstr (test_response_header (response, "Content-Type"), ==, "text/plain; charset=UTF-8");
  packets = test_payload_v3_split (response->body, &error);
  g_assert_no_error (error);
  test_require (packets != NULL && packets->len == 1);
  first = g_ptr_array_index (packets, 0);
  test_require (first[0] == '0');
  open = test_open_packet_parse (first + 1, &error);
  g_assert_no_error (error);
  test_require (open != NULL);
  g_assert_cmpuint (strlen (open->sid), >=, 20);
  g_assert_true (test_sid_is_url_safe (open->sid));
  g_assert_cmpint (open->ping_interval, ==, 1500);
  g_assert_cmpint (open->ping_timeout, ==, 1600);
  g_assert_cmpuint (g_strv_length (open->upgrades), ==, 1);

  socket = get_socket (f, open->sid);
  test_require (socket != NULL);
  g_assert_cmpint (engine_io_socket_get_protocol_version (socket), ==, ENGINE_IO_PROTOCOL_V3);
}

static void
test_v3_text_payload (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) one = NULL;
  g_autoptr(TestResponse) two = NULL;
  const char *text = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";  /* é€😀 */

  g_test_summary ("v3 text payloads count UTF-16 code units: “4é€😀” is “5:4é€😀”");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);
  sid = test_eio_polling_open_sid (f->lb.http, 3, NULL);
  test_require (sid != NULL);
  target = v3_url (sid, NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_true (engine_io_socket_send_text (socket, text, NULL));
  one = test_http_get (f->lb.http, target);
  test_require (one != NULL);
  g_assert_cmpuint (one->status, ==, 200);
  g_assert_cmpstr (test_response_header (one, "Content-Type"), ==, "text/plain; charset=UTF-8");
  g_assert_true (test_response_body_equal (one, TEST_S ("5:4\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")));

  g_assert_true (engine_io_socket_send_text (socket, "a", NULL));
  g_assert_true (engine_io_socket_send_text (socket, text, NULL));
  g_assert_true (engine_io_socket_send_text (socket, "", NULL));
  two = test_http_get (f->lb.http, target);
  test_require (two != NULL);
  g_assert_true (test_response_body_equal (two, TEST_S ("2:4a5:4\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "1:4")));

  post_ok_len (f->lb.http, target, TEST_S ("5:4\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "2:4b1:4"));
  assert_event (f, "message %s %s", sid, text);
  assert_event (f, "message %s b", sid);
  assert_event (f, "message %s ", sid);
}

static void
test_v3_binary_payload (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestResponse) posted = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GByteArray) body = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  static const guint8 bytes[] = { 0x00, 0x01, 0x02, 0xff };
  static const guint8 expected[] = {
    0x00, 0x03, 0xff, '4', 'h', 'i',
    0x01, 0x05, 0xff, 0x04, 0x00, 0x01, 0x02, 0xff,
  };
  static const char *const headers[] = { "Content-Type", "application/octet-stream", NULL };
  static const guint8 binary_packet[] = { 0x04, 0x09, 0x08 };
  g_autoptr(GString) long_text = g_string_new ("4");

  g_test_summary ("v3: a queued binary message makes the GET answer an XHR2 binary payload "
                  "(application/octet-stream, byte lengths, type byte kept); binary POSTs "
                  "are decoded");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);
  sid = test_eio_polling_open_sid (f->lb.http, 3, NULL);
  test_require (sid != NULL);
  target = v3_url (sid, NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  payload = g_bytes_new_static (bytes, sizeof bytes);
  g_assert_true (engine_io_socket_send_text (socket, "hi", NULL));
  g_assert_true (engine_io_socket_send_binary (socket, payload, NULL));
  response = test_http_get (f->lb.http, target);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpstr (test_response_header (response, "Content-Type"), ==, "application/octet-stream");
  g_assert_cmpmem (g_bytes_get_data (response->body, NULL), g_bytes_get_size (response->body),
                   expected, sizeof expected);

  /* POST: text (lengths count bytes: é is 2) and binary packets. */
  test_payload_v3_binary_append (body, FALSE, TEST_S ("4h\xc3\xa9y"));
  test_payload_v3_binary_append (body, TRUE, binary_packet, sizeof binary_packet);
  while (long_text->len < 1234)
    g_string_append_c (long_text, 'z');
  test_payload_v3_binary_append (body, FALSE, long_text->str, long_text->len);
  posted = test_http_request (f->lb.http, "POST", target, headers, body->data, body->len,
                              TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (posted != NULL);
  g_assert_cmpuint (posted->status, ==, 200);
  g_assert_true (test_response_body_equal (posted, TEST_S ("ok")));
  assert_event (f, "message %s h\xc3\xa9y", sid);
  assert_event (f, "binary %s 0908", sid);
  assert_event (f, "message %s %s", sid, long_text->str + 1);
}

static void
test_v3_b64 (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) response = NULL;
  static const guint8 bytes[] = { 1, 2, 3 };
  g_autoptr(GBytes) payload = g_bytes_new_static (bytes, sizeof bytes);

  g_test_summary ("v3 with b64=1: binary goes as “b4<base64>” in a text payload; a client "
                  "may post “b4…” too");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);
  sid = test_eio_polling_open_sid (f->lb.http, 3, "&b64=1");
  test_require (sid != NULL);
  target = v3_url (sid, "&b64=1");
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_true (engine_io_socket_send_text (socket, "t", NULL));
  g_assert_true (engine_io_socket_send_binary (socket, payload, NULL));
  response = test_http_get (f->lb.http, target);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpstr (test_response_header (response, "Content-Type"), ==, "text/plain; charset=UTF-8");
  g_assert_true (test_response_body_equal (response, TEST_S ("2:4t6:b4AQID")));

  post_ok_len (f->lb.http, target, TEST_S ("6:b4BAUG"));
  assert_event (f, "binary %s 040506", sid);
}

/* What engine.io-client 3.x does to a payload before a JSONP POST:
 * backslash-n becomes backslash-backslash-n, then newlines backslash-n. */
static char *
jsonp_client_escape (const char *payload)
{
  g_autoptr(GString) out = g_string_new (NULL);

  for (const char *p = payload; *p; p++)
    {
      if (p[0] == '\\' && p[1] == 'n')
        {
          g_string_append (out, "\\\\n");
          p++;
        }
      else if (*p == '\n')
        g_string_append (out, "\\n");
      else
        g_string_append_c (out, *p);
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* Checks a JSONP response and returns the payload it carries. */
static char *
jsonp_payload (TestResponse *response,
               const char   *index)
{
  g_autofree char *body = NULL;
  g_autofree char *head = g_strdup_printf ("___eio[%s](\"", index);
  gsize length;

  test_require_val (response != NULL, NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpstr (test_response_header (response, "Content-Type"), ==,
                   "text/javascript; charset=UTF-8");
  body = test_response_text (response);
  length = strlen (body);
  if (!g_str_has_prefix (body, head) || !g_str_has_suffix (body, "\");"))
    {
      g_test_fail_printf ("not a JSONP response for index %s: %s", index, body);
      return NULL;
    }
  return test_js_unescape (body + strlen (head), length - strlen (head) - 3);
}

static void
test_v3_jsonp (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *hs_payload = NULL;
  g_autofree char *payload = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(TestResponse) hs = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(TestResponse) posted = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) hs_bytes = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autofree char *frames = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *form = NULL;
  g_autofree char *form_value = NULL;
  static const char *const form_headers[] = {
    "Content-Type", "application/x-www-form-urlencoded", NULL
  };
  const char *tricky = "quote\" backslash\\ newline\n tab\t u2028\xe2\x80\xa8 emoji\xf0\x9f\x98\x80";

  g_test_summary ("v3 JSONP (j=N): responses are ___eio[N](\"…\"); carrying the text "
                  "payload; form-encoded POSTs (d=…) with the client's newline escaping");

  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
  fixture_start (f);

  hs = test_http_get (f->lb.http, "/engine.io/?EIO=3&transport=polling&j=0");
  hs_payload = jsonp_payload (hs, "0");
  test_require (hs_payload != NULL);
  hs_bytes = g_bytes_new (hs_payload, strlen (hs_payload));
  packets = test_payload_v3_split (hs_bytes, &error);
  g_assert_no_error (error);
  test_require (packets != NULL && packets->len == 1);
  {
    g_autoptr(TestOpenPacket) open = test_open_packet_parse ((char *) g_ptr_array_index (packets, 0) + 1,
                                                             &error);
    g_assert_no_error (error);
    test_require (open != NULL);
    sid = g_strdup (open->sid);
  }
  target = v3_url (sid, "&j=12");
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_true (engine_io_socket_send_text (socket, tricky, NULL));
  poll = test_http_get (f->lb.http, target);
  payload = jsonp_payload (poll, "12");
  {
    g_autofree char *packet = g_strconcat ("4", tricky, NULL);
    expected = test_v3_frame (packet);
  }
  g_assert_cmpstr (payload, ==, expected);
  {
    /* U+2028 must not appear raw in the script. */
    g_autofree char *raw = test_response_text (poll);
    g_assert_null (strstr (raw, "\xe2\x80\xa8"));
  }

  /* POST: a newline and a literal backslash-n, as the 3.x client sends them. */
  {
    g_autofree char *f1 = test_v3_frame ("4line1\nline2");
    g_autofree char *f2 = test_v3_frame ("4x\\ny");
    g_autofree char *f3 = test_v3_frame ("4a&b=c+d%");
    frames = g_strconcat (f1, f2, f3, NULL);
  }
  escaped = jsonp_client_escape (frames);
  form_value = g_uri_escape_string (escaped, NULL, FALSE);
  form = g_strconcat ("d=", form_value, NULL);
  posted = test_http_request (f->lb.http, "POST", target, form_headers, form, (gssize) strlen (form),
                              TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (posted != NULL);
  g_assert_cmpuint (posted->status, ==, 200);
  g_assert_true (test_response_body_equal (posted, TEST_S ("ok")));
  assert_event (f, "message %s a&b=c+d%%", sid);
  assert_event (f, "message %s line1\nline2", sid);
  assert_event (f, "message %s x\\ny", sid);
}

static void
test_v4_jsonp_ignored (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *body = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  const char *text = "quote\" newline\n u2028\xe2\x80\xa8";

  g_test_summary ("v4 has no JSONP (PROTOCOL.md; v4 clients have none): with j=N the "
                  "handshake, polls and POSTs are the plain v4 ones, never a script "
                  "(___eio[N](…), text/javascript) another site could include");

  fixture_start (f);

  /* handshake_packets() checks text/plain and the plain open packet. */
  packets = test_eio_polling_handshake (f->lb.http, 4, "/engine.io/?EIO=4&transport=polling&j=0", &open);
  test_require (packets != NULL && open != NULL);
  g_assert_cmpuint (packets->len, ==, 1);
  sid = g_strdup (open->sid);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&j=3&sid=%s", sid);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  /* A poll: the v4 payload as it is, nothing escaped. */
  g_assert_true (engine_io_socket_send_text (socket, text, NULL));
  g_assert_true (engine_io_socket_send_text (socket, "second", NULL));
  poll = test_http_get (f->lb.http, target);
  test_require (poll != NULL);
  g_assert_cmpuint (poll->status, ==, 200);
  g_assert_cmpstr (test_response_header (poll, "Content-Type"), ==, "text/plain; charset=UTF-8");
  body = test_response_text (poll);
  {
    g_autofree char *expected = g_strconcat ("4", text, "\x1e" "4second", NULL);
    g_assert_cmpstr (body, ==, expected);
  }

  /* A POST: a v4 payload, not a form with d=. */
  post_ok_len (f->lb.http, target, TEST_S ("4hi\x1e" "4there"));
  assert_event (f, "message %s hi", sid);
  assert_event (f, "message %s there", sid);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 0);
}

static void
test_v3_heartbeat (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autofree char *prefix = NULL;
  g_autoptr(TestHttp) waiter = NULL;
  g_autofree char *closing = NULL;
  gint64 last_ping, elapsed;

  g_test_summary ("v3: the client pings in a POST, the server answers “3” with the same data "
                  "on the poll and emits ::heartbeat; when the pings stop the session expires "
                  "(“ping timeout”, waiting GET gets “1”)");

  /* The rules (the pong, the expiry ping-interval + ping-timeout after the
   * last packet received) are /session/v3/ping-pong and
   * /session/v3/expiry; this is their wiring. Expiry after 600 ms. */
  g_object_set (f->lb.server, "allow-eio3", TRUE, "ping-interval", 300, "ping-timeout", 300, NULL);
  fixture_start (f);
  sid = test_eio_polling_open_sid (f->lb.http, 3, NULL);
  test_require (sid != NULL);
  target = v3_url (sid, NULL);

  post_ok_len (f->lb.http, target, TEST_S ("6:2probe"));
  {
    g_autoptr(TestResponse) pong = test_http_get (f->lb.http, target);
    test_require (pong != NULL);
    g_assert_true (test_response_body_equal (pong, TEST_S ("6:3probe")));
  }

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(TestResponse) pong = NULL;
      post_ok_len (f->lb.http, target, TEST_S ("1:2"));
      pong = test_http_get (f->lb.http, target);
      test_require (pong != NULL);
      g_assert_cmpuint (pong->status, ==, 200);
      g_assert_true (test_response_body_equal (pong, TEST_S ("1:3")));
    }
  last_ping = g_get_monotonic_time ();
  prefix = g_strdup_printf ("heartbeat %s", sid);
  g_assert_true (test_recorder_wait_count (f->lb.events, prefix, 3, TEST_TIMEOUT_MS));
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 0);

  /* Now stop pinging: a waiting GET is answered with a close packet. */
  waiter = test_http_new (f->lb.port);
  {
    g_autoptr(GError) error = NULL;
    test_http_send (waiter, "GET", target, NULL, NULL, -1, &error);
    g_assert_no_error (error);
  }
  closing = receive_text (waiter, 200);
  elapsed = g_get_monotonic_time () - last_ping;
  g_assert_cmpstr (closing, ==, "1:1");
  g_assert_cmpint (elapsed, >=, 450 * 1000);
  g_assert_cmpint (elapsed, <, test_scaled_ms (3000) * G_GINT64_CONSTANT (1000));
  assert_event (f, "close %s ping timeout", sid);
}

typedef struct
{
  EngineIOSocket *socket;
  gint            stop;
} Chatter;

static gpointer
chatter_thread (gpointer data)
{
  Chatter *chatter = data;

  while (!g_atomic_int_get (&chatter->stop) && !engine_io_socket_is_closed (chatter->socket))
    {
      engine_io_socket_send_text (chatter->socket, "tick", NULL);
      g_usleep (50 * 1000);
    }
  return NULL;
}

static void
test_v3_expiry_not_reset_by_sends (Fixture       *f,
                                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  Chatter chatter = { NULL, 0 };
  GThread *thread;
  gint64 start;
  gboolean closed = FALSE;

  g_test_summary ("v3: packets the server sends (and the client polls) do not extend the "
                  "session; only packets received do");

  g_object_set (f->lb.server, "allow-eio3", TRUE, "ping-interval", 200, "ping-timeout", 200, NULL);
  fixture_start (f);
  sid = test_eio_polling_open_sid (f->lb.http, 3, NULL);
  start = g_get_monotonic_time ();
  test_require (sid != NULL);
  target = v3_url (sid, NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  chatter.socket = socket;
  thread = g_thread_new ("chatter", chatter_thread, &chatter);
  while (g_get_monotonic_time () - start < test_scaled_ms (3000) * G_GINT64_CONSTANT (1000))
    {
      g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);
      g_autofree char *body = NULL;
      if (response == NULL)
        break;
      body = test_response_text (response);  /* NUL-terminated copy */
      if (response->status != 200 || g_str_has_suffix (body, "1:1"))
        {
          closed = TRUE;
          break;
        }
    }
  g_atomic_int_set (&chatter.stop, 1);
  g_thread_join (thread);

  g_assert_true (closed);
  assert_event (f, "close %s ping timeout", sid);
  g_assert_cmpint (g_get_monotonic_time () - start, <, test_scaled_ms (2000) * G_GINT64_CONSTANT (1000));
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  TestRecorder *events;
  char         *label;
} SendNote;

static void
send_note_free (gpointer data)
{
  SendNote *note = data;

  test_recorder_add (note->events, "destroyed %s", note->label);
  g_free (note->label);
  g_free (note);
}

static void
send_done (EngineIOSocket *socket,
           gboolean        flushed,
           gpointer        user_data)
{
  SendNote *note = user_data;

  test_recorder_add (note->events, "sent %s %s", note->label, flushed ? "TRUE" : "FALSE");
}

static gboolean
send_noted (Fixture        *f,
            EngineIOSocket *socket,
            const char     *text)
{
  SendNote *note = g_new0 (SendNote, 1);
  g_autoptr(GError) error = NULL;
  gboolean ok;

  note->events = f->lb.events;
  note->label = g_strdup (text);
  ok = engine_io_socket_send_text_full (socket, text, send_done, note, send_note_free, &error);
  g_assert_no_error (error);
  return ok;
}

static void
test_close_pending_get (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) waiter = NULL;
  g_autofree char *body = NULL;
  g_autofree char *body2 = NULL;
  g_autofree char *target = NULL;

  g_test_summary ("engine_io_socket_close(): the waiting GET gets what was sent (callbacks "
                  "report TRUE, ::drain) and then “1”; ::close says “forced close”");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);
  target = v4_url (sid);

  waiter = test_http_new (f->lb.port);
  test_require (send_poll (waiter, sid));
  g_assert_true (still_waiting (waiter, 100));
  g_assert_true (send_noted (f, socket, "delivered"));
  body = receive_text (waiter, 200);
  g_assert_cmpstr (body, ==, "4delivered");
  assert_event (f, "sent delivered TRUE");
  assert_event (f, "destroyed delivered");
  assert_event (f, "drain %s", sid);

  test_require (send_poll (waiter, sid));
  g_assert_true (still_waiting (waiter, 100));
  engine_io_socket_close (socket);
  body2 = receive_text (waiter, 200);
  g_assert_cmpstr (body2, ==, "1");
  assert_event (f, "close %s forced close", sid);
  g_assert_true (engine_io_socket_is_closed (socket));
  {
    g_autoptr(EngineIOSocket) gone = engine_io_server_lookup_socket (f->lb.server, sid);
    g_assert_null (gone);
  }
  expect_error (f->lb.http, "GET", target, NULL, NULL, 400, 1);
}

/* Regression (noloss under ASan in CI: a v4 polling client's pong POST
 * crossed the application's close; the POST got 400 “Session ID unknown”,
 * engine.io-client failed its transport with `xhr post error` and never
 * polled for the 21 packets queued before the close). */
static void
test_close_post_while_closing (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(GPtrArray) received = g_ptr_array_new_with_free_func (g_free);
  gboolean got_close = FALSE;

  g_test_summary ("A POST that arrives after engine_io_socket_close(), while the last packets "
                  "wait for a poll: answered 200 `ok` (its packets dropped, as the reference), "
                  "and the next poll still gets the queued messages and “1”");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);
  target = v4_url (sid);

  /* Two messages queued, no poll waiting: the close keeps them for the
   * next polls, in order, before “1” (the rule is
   * /session/polling/get-closing; this was /server/close/flushes-queue). */
  g_assert_true (send_noted (f, socket, "a"));
  g_assert_true (send_noted (f, socket, "b"));
  engine_io_socket_close (socket);

  post = test_http_post (f->lb.http, target, TEST_S ("3\x1e" "4late"));
  test_require (post != NULL);
  {
    g_autofree char *text = test_response_text (post);
    g_test_message ("POST after close: HTTP %u %s", post->status, text);
    g_assert_cmpuint (post->status, ==, 200);
    g_assert_cmpstr (text, ==, "ok");
  }

  for (guint i = 0; i < 3 && !got_close; i++)
    {
      g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);
      g_autoptr(GPtrArray) packets = NULL;

      if (response == NULL || response->status != 200)
        break;
      packets = test_payload_v4_split (response->body);
      for (guint j = 0; j < packets->len; j++)
        {
          const char *packet = g_ptr_array_index (packets, j);
          if (strcmp (packet, "6") == 0)
            continue;
          got_close |= strcmp (packet, "1") == 0;
          g_ptr_array_add (received, g_strdup (packet));
        }
    }
  test_require (received->len == 3);
  g_assert_cmpstr (g_ptr_array_index (received, 0), ==, "4a");
  g_assert_cmpstr (g_ptr_array_index (received, 1), ==, "4b");
  g_assert_cmpstr (g_ptr_array_index (received, 2), ==, "1");
  assert_event (f, "sent a TRUE");
  assert_event (f, "sent b TRUE");
  assert_event (f, "close %s forced close", sid);
  /* The late message was not delivered to the application. */
  {
    g_autofree char *late = g_strdup_printf ("message %s late", sid);
    g_assert_cmpuint (test_recorder_count (f->lb.events, late), ==, 0);
  }
}

/* The other side of post-while-closing: POSTs accepted while closing
 * must not keep a session that nobody polls alive past its linger. */
static void
test_close_posts_do_not_extend (Fixture       *f,
                                gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = NULL;
  g_autofree char *closed = NULL;
  gint64 start, end;
  guint posts = 0;

  g_test_summary ("A client that only POSTs after engine_io_socket_close() and never polls: "
                  "the session still ends when its linger (2 s) runs out, the POSTs answered "
                  "`ok` until then");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);
  target = v4_url (sid);
  closed = g_strdup_printf ("close %s forced close", sid);

  g_assert_true (send_noted (f, socket, "a"));
  start = g_get_monotonic_time ();
  engine_io_socket_close (socket);
  end = start + (gint64) test_scaled_ms (6000) * 1000;
  while (test_recorder_count (f->lb.events, closed) == 0 && g_get_monotonic_time () < end)
    {
      g_autoptr(TestResponse) post = test_http_post (f->lb.http, target, TEST_S ("4more"));

      test_require (post != NULL);
      if (post->status == 200)
        posts++;
      g_usleep (50 * 1000);
    }
  g_test_message ("%u POSTs answered ok; closed after %" G_GINT64_FORMAT " ms", posts,
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpuint (test_recorder_count (f->lb.events, closed), ==, 1);
  g_assert_cmpuint (posts, >, 0);
  assert_event (f, "sent a FALSE");
}

static void
test_close_undelivered (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;

  g_test_summary ("Messages never delivered (the client vanished) report flushed FALSE "
                  "when the session closes; their data is freed");

  g_object_set (f->lb.server, "ping-interval", 100, "ping-timeout", 100, NULL);
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_true (send_noted (f, socket, "lost1"));
  g_assert_true (send_noted (f, socket, "lost2"));
  assert_event (f, "close %s ping timeout", sid);
  assert_event (f, "sent lost1 FALSE");
  assert_event (f, "sent lost2 FALSE");
  assert_event (f, "destroyed lost1");
  assert_event (f, "destroyed lost2");
  g_assert_cmpint (test_recorder_index (f->lb.events, "sent lost1 TRUE"), ==, -1);
}

typedef struct
{
  EngineIOSocket *socket;
  GAsyncQueue    *results;      /* char*: "message <text>" or "error <domain> <code>" */
  GCancellable   *cancellable;  /* nullable */
  const char     *name;         /* prefixes results when set */
} Receiver;

static gpointer
receiver_thread (gpointer data)
{
  Receiver *receiver = data;
  const char *name = receiver->name ? receiver->name : "";
  const char *space = receiver->name ? " " : "";

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      EngineIOPacket *packet = engine_io_socket_receive (receiver->socket, receiver->cancellable, &error);

      if (packet != NULL && g_cancellable_is_cancelled (receiver->cancellable))
        {
          /* Not trusted (it has been a sentinel, not a packet): neither
           * read nor unreferenced. */
          g_async_queue_push (receiver->results,
                              g_strdup_printf ("%s%sa packet (%p) instead of CANCELLED", name, space, packet));
          return NULL;
        }
      if (packet == NULL)
        {
          g_async_queue_push (receiver->results,
                              g_strdup_printf ("%s%serror %s %d", name, space,
                                               error && error->domain == ENGINE_IO_ERROR ? "engine-io" : "other",
                                               error ? error->code : -1));
          return NULL;
        }
      g_async_queue_push (receiver->results,
                          g_strdup_printf ("%s%smessage %s", name, space,
                                           engine_io_packet_get_text (packet, NULL)));
      engine_io_packet_unref (packet);
    }
}

static char *
pop_result (GAsyncQueue *queue)
{
  char *result = g_async_queue_timeout_pop (queue, TEST_TIMEOUT_MS * 1000);

  if (result == NULL)
    g_test_fail_printf ("no result from the receiving thread within %u ms", TEST_TIMEOUT_MS);
  return result;
}

static void
test_close_receive (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GAsyncQueue) results = g_async_queue_new_full (g_free);
  Receiver receiver;
  GThread *thread;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) late = NULL;
  g_autoptr(EngineIOPacket) after = NULL;

  g_test_summary ("Without a ::message handler, engine_io_socket_receive() on another "
                  "thread gets the messages in order, then fails with CLOSED after close "
                  "(messages already queued are still returned)");

  f->lb.watch |= TEST_WATCH_NO_MESSAGE;
  f->lb.watch |= TEST_WATCH_PACKETS;
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  receiver.socket = socket;
  receiver.results = results;
  receiver.cancellable = NULL;
  receiver.name = NULL;
  thread = g_thread_new ("receiver", receiver_thread, &receiver);

  post_ok (f->lb.http, sid, "4m1\x1e" "4m2");
  post_ok (f->lb.http, sid, "4m3");
  {
    g_autofree char *r1 = pop_result (results);
    g_autofree char *r2 = pop_result (results);
    g_autofree char *r3 = pop_result (results);
    g_assert_cmpstr (r1, ==, "message m1");
    g_assert_cmpstr (r2, ==, "message m2");
    g_assert_cmpstr (r3, ==, "message m3");
  }

  close_and_poll (f, socket);
  {
    g_autofree char *end = pop_result (results);
    g_autofree char *expected = g_strdup_printf ("error engine-io %d", ENGINE_IO_ERROR_CLOSED);
    g_assert_cmpstr (end, ==, expected);
  }
  g_thread_join (thread);
  assert_event (f, "close %s forced close", sid);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 0);

  /* A message dispatched before the close is still returned after it. */
  {
    g_autofree char *sid2 = handshake (f);
    g_autoptr(EngineIOSocket) socket2 = NULL;
    test_require (sid2 != NULL);
    socket2 = get_socket (f, sid2);
    test_require (socket2 != NULL);
    post_ok (f->lb.http, sid2, "4late");
    assert_event (f, "packet %s 4late", sid2);
    close_and_poll (f, socket2);
    assert_event (f, "close %s forced close", sid2);
    late = engine_io_socket_receive (socket2, NULL, &error);
    g_assert_no_error (error);
    test_require (late != NULL);
    g_assert_cmpstr (engine_io_packet_get_text (late, NULL), ==, "late");
    after = engine_io_socket_receive (socket2, NULL, &error);
    g_assert_null (after);
    g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  }
}

static void
test_close_receive_cancel (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GAsyncQueue) results = g_async_queue_new_full (g_free);
  g_autoptr(GCancellable) c1 = g_cancellable_new ();
  g_autoptr(GCancellable) c2 = g_cancellable_new ();
  Receiver alone = { NULL, NULL, NULL, "alone" };
  Receiver plain = { NULL, NULL, NULL, "plain" };
  Receiver cancelled = { NULL, NULL, NULL, "cancelled" };
  GThread *t_alone, *t_plain, *t_cancelled;
  g_autofree char *expected = g_strdup_printf ("error engine-io %d", ENGINE_IO_ERROR_CANCELLED);

  g_test_summary ("engine_io_socket_receive() fails with CANCELLED when its cancellable is "
                  "cancelled, also while another thread receives on the same socket");

  f->lb.watch |= TEST_WATCH_NO_MESSAGE;
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  /* One receiver. */
  alone.socket = socket;
  alone.results = results;
  alone.cancellable = c1;
  t_alone = g_thread_new ("alone", receiver_thread, &alone);
  g_assert_null (g_async_queue_timeout_pop (results, 100 * 1000));
  g_cancellable_cancel (c1);
  {
    g_autofree char *result = pop_result (results);
    g_autofree char *want = g_strconcat ("alone ", expected, NULL);
    g_assert_cmpstr (result, ==, want);
  }
  g_thread_join (t_alone);

  /* Two receivers; only one is cancelled. */
  plain.socket = cancelled.socket = socket;
  plain.results = cancelled.results = results;
  cancelled.cancellable = c2;
  t_plain = g_thread_new ("plain", receiver_thread, &plain);
  t_cancelled = g_thread_new ("cancelled", receiver_thread, &cancelled);
  g_assert_null (g_async_queue_timeout_pop (results, 100 * 1000));
  g_cancellable_cancel (c2);
  {
    g_autofree char *result = pop_result (results);
    g_autofree char *want = g_strconcat ("cancelled ", expected, NULL);
    g_assert_cmpstr (result, ==, want);
  }
  post_ok (f->lb.http, sid, "4for plain");
  {
    g_autofree char *result = pop_result (results);
    g_assert_cmpstr (result, ==, "plain message for plain");
  }

  /* Closing wakes whoever still waits, with CLOSED; nothing else comes. */
  close_and_poll (f, socket);
  {
    g_autofree char *result = pop_result (results);
    g_autofree char *want = g_strdup_printf ("plain error engine-io %d", ENGINE_IO_ERROR_CLOSED);
    g_assert_cmpstr (result, ==, want);
  }
  g_thread_join (t_plain);
  g_thread_join (t_cancelled);
  g_assert_cmpint (g_async_queue_length (results), ==, 0);
}

static void
test_close_send_errors (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;
  g_autoptr(GError) error3 = NULL;
  g_autoptr(GBytes) bytes = g_bytes_new_static ("x", 1);
  g_autofree char *body = NULL;
  SendNote *note;

  g_test_summary ("Sending invalid UTF-8 fails with INVALID_ARGUMENT (the session goes on); "
                  "sending after close fails with CLOSED and frees the callback data");

  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  socket = get_socket (f, sid);
  test_require (socket != NULL);

  g_assert_false (engine_io_socket_send_text (socket, "bad \xff\xfe", &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);
  g_assert_true (engine_io_socket_send_text (socket, "fine", NULL));
  body = poll_text (f->lb.http, sid);
  g_assert_cmpstr (body, ==, "4fine");

  close_and_poll (f, socket);
  assert_event (f, "close %s forced close", sid);

  g_assert_false (engine_io_socket_send_text (socket, "too late", &error2));
  g_assert_error (error2, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  g_assert_false (engine_io_socket_send_binary (socket, bytes, &error3));
  g_assert_error (error3, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);

  note = g_new0 (SendNote, 1);
  note->events = f->lb.events;
  note->label = g_strdup ("after-close");
  g_assert_false (engine_io_socket_send_text_full (socket, "x", send_done, note, send_note_free, NULL));
  g_assert_cmpint (test_recorder_index (f->lb.events, "destroyed after-close"), >=, 0);
  g_assert_cmpint (test_recorder_index_prefix (f->lb.events, "sent after-close"), ==, -1);
}

/* ------------------------------------------------------------------ */
/* Bad input                                                            */
/* ------------------------------------------------------------------ */

typedef enum
{
  BAD_TRANSPORT,
  BAD_TRANSPORT_MISSING,
  BAD_SID,
  BAD_EIO,
  BAD_EIO_MISSING,
  BAD_METHOD_HANDSHAKE,
  BAD_METHOD_SESSION,
  BAD_WEBSOCKET_NO_UPGRADE,
  BAD_PAYLOAD,
  BAD_PAYLOAD_UTF8,
  BAD_PAYLOAD_BASE64,
  BAD_OVERSIZED,
  BAD_OVERSIZED_CHUNKED,
  BAD_V3_TRUNCATED,
  BAD_V3_LENGTH,
  BAD_HEADER_LINE,
  BAD_REQUEST_LINE,
  BAD_ORIGIN,
  BAD_CONTENT_LENGTH,
  BAD_QUERY_UTF8,
  N_BAD_KINDS
} BadKind;

typedef struct
{
  guint           port;
  guint           n_requests;
  GMutex          lock;
  GPtrArray      *failures;    /* char*, under lock */
  guint           per_kind[N_BAD_KINDS];
  gint            done;        /* (atomic) requests fired, all threads */
} Storm;

static void
storm_fail (Storm      *storm,
            const char *format,
            ...) G_GNUC_PRINTF (2, 3);

static void
storm_fail (Storm      *storm,
            const char *format,
            ...)
{
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_mutex_lock (&storm->lock);
  if (storm->failures->len < 50)
    g_ptr_array_add (storm->failures, message);
  else
    g_free (message);
  g_mutex_unlock (&storm->lock);
}

/* A throwaway session for payload abuse; NULL on failure. */
static char *
storm_session (Storm    *storm,
               TestHttp *http,
               gboolean  v3)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response =
    test_http_request (http, "GET", v3 ? "/engine.io/?EIO=3&transport=polling"
                                       : "/engine.io/?EIO=4&transport=polling",
                       NULL, NULL, -1, TEST_TIMEOUT_MS, &error);
  g_autofree char *body = NULL;
  const char *start;
  const char *end;

  if (response == NULL || response->status != 200)
    {
      storm_fail (storm, "throwaway handshake failed: %s", error ? error->message : "bad status");
      return NULL;
    }
  body = test_response_text (response);
  start = strstr (body, "\"sid\":\"");
  if (start == NULL)
    return NULL;
  start += 7;
  end = strchr (start, '"');
  return end ? g_strndup (start, end - start) : NULL;
}

static void
storm_one (Storm    *storm,
           TestHttp *http,
           BadKind   kind,
           guint     n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(GString) raw = g_string_new (NULL);
  guint expected = 400;
  const char *method = "GET";
  const char *body = NULL;
  gssize body_len = -1;
  const char *const *headers = NULL;
  static const char *const bad_origin[] = { "Origin", "http://x\x01y", NULL };
  static const char *const octet[] = { "Content-Type", "text/plain", NULL };
  g_autofree char *big = NULL;

  switch (kind)
    {
    case BAD_TRANSPORT:
      target = g_strdup_printf ("/engine.io/?EIO=4&transport=carrier-pigeon-%u", n);
      break;
    case BAD_TRANSPORT_MISSING:
      target = g_strdup ("/engine.io/?EIO=4");
      break;
    case BAD_SID:
      target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=forged%08x", g_random_int ());
      break;
    case BAD_EIO:
      target = g_strdup_printf ("/engine.io/?EIO=%u&transport=polling", 5 + n % 50);
      break;
    case BAD_EIO_MISSING:
      target = g_strdup ("/engine.io/?transport=polling");
      break;
    case BAD_METHOD_HANDSHAKE:
      method = (n % 2) ? "PUT" : "DELETE";
      target = g_strdup ("/engine.io/?EIO=4&transport=polling");
      body = "";
      body_len = 0;
      break;
    case BAD_WEBSOCKET_NO_UPGRADE:
      target = g_strdup ("/engine.io/?EIO=4&transport=websocket");
      break;
    case BAD_METHOD_SESSION:
    case BAD_PAYLOAD:
    case BAD_PAYLOAD_UTF8:
    case BAD_PAYLOAD_BASE64:
    case BAD_OVERSIZED:
    case BAD_OVERSIZED_CHUNKED:
      sid = storm_session (storm, http, FALSE);
      if (sid == NULL)
        return;
      target = v4_url (sid);
      method = "POST";
      headers = octet;
      if (kind == BAD_METHOD_SESSION)
        {
          method = "PATCH";
          body = "4x";
        }
      else if (kind == BAD_PAYLOAD)
        body = (n % 3 == 0) ? "9nine" : (n % 3 == 1) ? "4a\x1e\x1e" : "garbage";
      else if (kind == BAD_PAYLOAD_UTF8)
        body = "4\xc0\xaf overlong";
      else if (kind == BAD_PAYLOAD_BASE64)
        body = "b$$$";
      else
        {
          big = g_malloc (1200);
          memset (big, 'z', 1199);
          big[0] = '4';
          big[1199] = '\0';
          body = big;
          expected = 413;
          if (kind == BAD_OVERSIZED_CHUNKED)
            {
              g_string_append_printf (raw, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "%x\r\n%s\r\n0\r\n\r\n", target, 1199, big);
            }
        }
      if (body_len < 0)
        body_len = (gssize) strlen (body);
      break;
    case BAD_V3_TRUNCATED:
    case BAD_V3_LENGTH:
      sid = storm_session (storm, http, TRUE);
      if (sid == NULL)
        return;
      target = v3_url (sid, NULL);
      method = "POST";
      body = kind == BAD_V3_TRUNCATED ? "10:4abc" : "x:4abc";
      body_len = (gssize) strlen (body);
      break;
    case BAD_HEADER_LINE:
      g_string_append (raw, "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                            "this line has no colon\r\n\r\n");
      break;
    case BAD_REQUEST_LINE:
      g_string_append (raw, "\x01\x02 garbage\r\n\r\n");
      break;
    case BAD_ORIGIN:
      target = g_strdup ("/engine.io/?EIO=4&transport=polling");
      headers = bad_origin;
      break;
    case BAD_CONTENT_LENGTH:
      g_string_append (raw, "POST /engine.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\n"
                            "Content-Length: twelve\r\n\r\n");
      break;
    case BAD_QUERY_UTF8:
      target = g_strdup ("/engine.io/?EIO=4&transport=po%FFlling");
      break;
    default:
      g_assert_not_reached ();
    }

  if (raw->len > 0)
    {
      if (test_http_send_raw (http, raw->str, raw->len, &error))
        response = test_http_receive (http, TEST_TIMEOUT_MS, &error);
      /* Whatever libmicrohttpd does with junk, it must not keep the
       * connection: start afresh. */
      test_http_disconnect (http);
    }
  else
    response = test_http_request (http, method, target, headers, body, body_len, TEST_TIMEOUT_MS, &error);

  if (response == NULL)
    {
      storm_fail (storm, "kind %d: no response: %s", kind, error ? error->message : "?");
      return;
    }
  if (response->status != expected)
    {
      g_autofree char *text = test_response_text (response);
      storm_fail (storm, "kind %d: expected HTTP %u, got %u %s", kind, expected, response->status, text);
    }
}

static gpointer
storm_thread (gpointer data)
{
  Storm *storm = data;
  g_autoptr(TestHttp) http = test_http_new (storm->port);

  for (;;)
    {
      guint n = (guint) g_atomic_int_add (&storm->done, 1);
      BadKind kind;
      if (n >= storm->n_requests)
        break;
      kind = (BadKind) (n % N_BAD_KINDS);
      storm_one (storm, http, kind, n);
    }
  return NULL;
}

static void
test_bad_input_storm (Fixture       *f,
                      gconstpointer  data)
{
  enum { N_THREADS = 4 };
  Storm storm = { 0, };
  GThread *threads[N_THREADS];
  g_autofree char *sid = NULL;
  g_autofree char *target = NULL;
  g_autoptr(GArray) echoed = g_array_new (FALSE, FALSE, sizeof (guint));
  guint sent = 0;
  gboolean storm_over = FALSE;

  g_test_summary ("1000 malformed requests of every kind, from several threads, each get "
                  "their error status while a healthy session echoes numbered messages "
                  "without losing or reordering any");

  f->lb.watch |= TEST_WATCH_ECHO;
  g_object_set (f->lb.server, "max-payload", (guint64) 1000, "allow-eio3", TRUE, NULL);
  fixture_start (f);
  sid = handshake (f);
  test_require (sid != NULL);
  target = v4_url (sid);

  storm.port = f->lb.port;
  storm.n_requests = 1000;
  g_mutex_init (&storm.lock);
  storm.failures = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("storm", storm_thread, &storm);

  /* Echo numbered messages until the storm is over (and at least 100). */
  while (!storm_over || sent < 100)
    {
      g_autoptr(GString) batch = g_string_new (NULL);
      guint batch_size = 1 + sent % 3;

      for (guint i = 0; i < batch_size; i++)
        {
          if (batch->len > 0)
            g_string_append_c (batch, '\x1e');
          g_string_append_printf (batch, "4%u", sent++);
        }
      post_ok (f->lb.http, sid, batch->str);

      /* Collect the echoes of this batch (they may come in several polls). */
      while (echoed->len < sent)
        {
          g_autoptr(TestResponse) poll = test_http_get (f->lb.http, target);
          g_autoptr(GPtrArray) got = NULL;
          if (poll == NULL || poll->status != 200)
            {
              g_test_fail_printf ("healthy session poll failed (HTTP %u)", poll ? poll->status : 0);
              goto out;
            }
          got = test_payload_v4_split (poll->body);
          for (guint i = 0; i < got->len; i++)
            {
              const char *packet = g_ptr_array_index (got, i);
              guint64 number;
              guint value;
              if (packet[0] != '4' || !g_ascii_string_to_unsigned (packet + 1, 10, 0, G_MAXUINT, &number, NULL))
                {
                  g_test_fail_printf ("healthy session got an unexpected packet “%s”", packet);
                  goto out;
                }
              value = (guint) number;
              g_array_append_val (echoed, value);
            }
        }
      storm_over = (guint) g_atomic_int_get (&storm.done) >= storm.n_requests;
      if (sent > 100000)
        break;
    }

out:
  g_atomic_int_set (&storm.done, (gint) storm.n_requests);
  for (guint i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);

  for (guint i = 0; i < storm.failures->len; i++)
    g_test_message ("storm: %s", (char *) g_ptr_array_index (storm.failures, i));
  g_assert_cmpuint (storm.failures->len, ==, 0);

  g_assert_cmpuint (echoed->len, ==, sent);
  for (guint i = 0; i < echoed->len; i++)
    if (g_array_index (echoed, guint, i) != i)
      {
        g_test_fail_printf ("echo %u came back as %u", i, g_array_index (echoed, guint, i));
        break;
      }
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), >, 0);
  {
    g_autofree char *healthy_close = g_strdup_printf ("close %s", sid);
    g_assert_cmpuint (test_recorder_count (f->lb.events, healthy_close), ==, 0);
  }
  {
    g_autoptr(EngineIOSocket) socket = get_socket (f, sid);
    g_assert_true (socket != NULL && !engine_io_socket_is_closed (socket));
  }

  g_ptr_array_unref (storm.failures);
  g_mutex_clear (&storm.lock);
}

/* ------------------------------------------------------------------ */
/* Server lifecycle                                                     */
/* ------------------------------------------------------------------ */

static void
test_shutdown_pending_polls (Fixture       *f,
                             gconstpointer  data)
{
  enum { N_SESSIONS = 100 };
  TestHttp *clients[N_SESSIONS];
  char *sids[N_SESSIONS];
  gint64 start, elapsed;
  guint threads, fds, port;
  gboolean any_answered = FALSE;

  g_test_summary ("engine_io_server_close() with 100 sessions waiting in polls returns "
                  "promptly, answers every poll with “1”, closes every socket with “server "
                  "shutting down”, ends its threads, closes its descriptors and the port");

  fixture_start (f);
  port = f->lb.port;
  for (guint i = 0; i < N_SESSIONS; i++)
    {
      clients[i] = test_http_new (f->lb.port);
      sids[i] = test_eio_polling_open_sid (clients[i], 4, NULL);
      test_require (sids[i] != NULL);
      test_require (send_poll (clients[i], sids[i]));
    }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, N_SESSIONS);
  /* They all wait (give the last ones a moment to arrive). */
  g_assert_true (still_waiting (clients[N_SESSIONS - 1], 300));
  for (guint i = 0; i < N_SESSIONS; i++)
    any_answered |= !still_waiting (clients[i], 0);
  g_assert_false (any_answered);

  start = g_get_monotonic_time ();
  engine_io_server_close (f->lb.server);
  elapsed = g_get_monotonic_time () - start;
  g_assert_cmpint (elapsed, <, test_scaled_ms (5000) * G_GINT64_CONSTANT (1000));

  for (guint i = 0; i < N_SESSIONS; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestResponse) response = test_http_receive (clients[i], TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      if (response != NULL)
        {
          g_assert_cmpuint (response->status, ==, 200);
          g_assert_true (test_response_body_equal (response, TEST_S ("1")));
        }
    }
  g_assert_true (test_recorder_wait_count (f->lb.events, "close ", N_SESSIONS, TEST_TIMEOUT_MS));
  for (guint i = 0; i < N_SESSIONS; i++)
    {
      g_autofree char *event = g_strdup_printf ("close %s server shutting down", sids[i]);
      g_assert_cmpint (test_recorder_index (f->lb.events, event), >=, 0);
    }
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, N_SESSIONS);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  g_assert_cmpuint (engine_io_server_get_port (f->lb.server), ==, 0);

  for (guint i = 0; i < N_SESSIONS; i++)
    {
      test_http_free (clients[i]);
      g_free (sids[i]);
    }
  g_clear_pointer (&f->lb.http, test_http_free);
  g_clear_object (&f->lb.server);

  threads = test_wait_count_at_most (test_count_threads, f->baseline_threads, TEST_TIMEOUT_MS);
  g_assert_cmpuint (threads, <=, f->baseline_threads);
  fds = test_wait_count_at_most (test_count_fds, f->baseline_fds, TEST_TIMEOUT_MS);
  g_assert_cmpuint (fds, <=, f->baseline_fds);
  g_assert_true (test_port_refuses (port));
}

static void
test_shutdown_dead_polls (Fixture       *f,
                          gconstpointer  data)
{
  enum { N_SESSIONS = 10 };
  TestHttp *clients[N_SESSIONS];
  char *sids[N_SESSIONS];
  gint64 start;
  guint port;

  g_test_summary ("engine_io_server_close() returns promptly when the clients of waiting "
                  "polls have gone away (their connections closed), and every socket closes");

  fixture_start (f);
  port = f->lb.port;
  for (guint i = 0; i < N_SESSIONS; i++)
    {
      clients[i] = test_http_new (f->lb.port);
      sids[i] = test_eio_polling_open_sid (clients[i], 4, NULL);
      test_require (sids[i] != NULL);
      test_require (send_poll (clients[i], sids[i]));
    }
  g_assert_true (still_waiting (clients[N_SESSIONS - 1], 200));
  for (guint i = 0; i < N_SESSIONS; i++)
    test_http_free (clients[i]);

  start = g_get_monotonic_time ();
  engine_io_server_close (f->lb.server);
  g_assert_cmpint (g_get_monotonic_time () - start, <, test_scaled_ms (5000) * G_GINT64_CONSTANT (1000));
  /* Close has returned: the sockets are closed already. */
  g_assert_true (test_recorder_wait_count (f->lb.events, "close ", N_SESSIONS, 500));
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  g_assert_true (test_port_refuses (port));
  for (guint i = 0; i < N_SESSIONS; i++)
    g_free (sids[i]);
}

static void
test_server_close_idempotent (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) never = NULL;
  g_autoptr(EngineIOServer) dropped = NULL;
  g_autofree char *sid = NULL;
  guint port, dropped_port, threads, fds;

  g_test_summary ("engine_io_server_close() twice is harmless, listen() after it fails with "
                  "CLOSED; a server never started closes and unrefs cleanly; dropping the "
                  "last reference of a listening server stops it");

  fixture_start (f);
  port = f->lb.port;
  sid = handshake (f);
  test_require (sid != NULL);
  engine_io_server_close (f->lb.server);
  assert_event (f, "close %s server shutting down", sid);
  engine_io_server_close (f->lb.server);
  g_assert_false (engine_io_server_listen (f->lb.server, "127.0.0.1", 0, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  g_assert_cmpuint (engine_io_server_get_port (f->lb.server), ==, 0);
  g_assert_true (test_port_refuses (port));
  g_clear_object (&f->lb.server);

  never = test_server_new ();
  engine_io_server_close (never);
  engine_io_server_close (never);
  g_clear_object (&never);

  dropped = test_server_new ();
  dropped_port = test_server_listen (dropped);
  test_require (dropped_port != 0);
  g_assert_cmpuint (dropped_port, ==, engine_io_server_get_port (dropped));
  {
    guint prop_port = 0;
    g_object_get (dropped, "port", &prop_port, NULL);
    g_assert_cmpuint (prop_port, ==, dropped_port);
  }
  g_clear_object (&dropped);
  g_assert_true (test_port_refuses (dropped_port));

  g_clear_pointer (&f->lb.http, test_http_free);
  threads = test_wait_count_at_most (test_count_threads, f->baseline_threads, TEST_TIMEOUT_MS);
  g_assert_cmpuint (threads, <=, f->baseline_threads);
  fds = test_wait_count_at_most (test_count_fds, f->baseline_fds, TEST_TIMEOUT_MS);
  g_assert_cmpuint (fds, <=, f->baseline_fds);
}

static gboolean
ptr_array_has_sid (GPtrArray  *sockets,
                   const char *sid)
{
  for (guint i = 0; i < sockets->len; i++)
    if (g_strcmp0 (engine_io_socket_get_id (g_ptr_array_index (sockets, i)), sid) == 0)
      return TRUE;
  return FALSE;
}

static void
test_server_sockets (Fixture       *f,
                     gconstpointer  data)
{
  char *sids[3];
  g_autoptr(GPtrArray) sockets = NULL;
  g_autoptr(GPtrArray) after = NULL;
  g_autoptr(EngineIOSocket) first = NULL;

  g_test_summary ("get_sockets(), get_socket_count() and lookup_socket() follow the open "
                  "sessions");

  fixture_start (f);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  for (guint i = 0; i < 3; i++)
    {
      sids[i] = handshake (f);
      test_require (sids[i] != NULL);
    }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 3);
  sockets = engine_io_server_get_sockets (f->lb.server);
  g_assert_cmpuint (sockets->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (f->lb.server, sids[i]);
      g_assert_true (ptr_array_has_sid (sockets, sids[i]));
      g_assert_nonnull (socket);
      g_assert_cmpstr (engine_io_socket_get_id (socket), ==, sids[i]);
      g_assert_true (engine_io_socket_get_server (socket) == f->lb.server);
    }
  g_assert_null (engine_io_server_lookup_socket (f->lb.server, "nosuchsession"));

  first = engine_io_server_lookup_socket (f->lb.server, sids[0]);
  close_and_poll (f, first);
  assert_event (f, "close %s forced close", sids[0]);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 2);
  g_assert_null (engine_io_server_lookup_socket (f->lb.server, sids[0]));
  after = engine_io_server_get_sockets (f->lb.server);
  g_assert_cmpuint (after->len, ==, 2);
  g_assert_false (ptr_array_has_sid (after, sids[0]));
  g_assert_true (ptr_array_has_sid (after, sids[1]));
  g_assert_true (ptr_array_has_sid (after, sids[2]));

  for (guint i = 0; i < 3; i++)
    g_free (sids[i]);
}

/* ------------------------------------------------------------------ */

#define ADD(path, func) \
  g_test_add ((path), Fixture, NULL, fixture_setup, (func), fixture_teardown)

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* A failed test does not stop the others (server bugs are reported per
   * test); test_require() leaves a test whose precondition failed. */
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  /* GLib creates the default main context (and its eventfd) lazily, the
   * first time a client socket wants it: before any descriptor count. */
  (void) g_main_context_default ();

  ADD ("/server/handshake/open", test_handshake_open);
  ADD ("/server/handshake/defaults", test_handshake_defaults);
  ADD ("/server/handshake/no-upgrades", test_handshake_no_upgrades);
  ADD ("/server/handshake/unique-sids", test_handshake_unique_sids);
  ADD ("/server/handshake/connection-first", test_handshake_connection_first);
  ADD ("/server/handshake/slow-connection-handler", test_handshake_slow_connection_handler);

  ADD ("/server/errors/codes", test_errors_codes);
  ADD ("/server/errors/forbidden", test_errors_forbidden);
  ADD ("/server/errors/order", test_errors_order);
  ADD ("/server/errors/eio3", test_errors_eio3);

  ADD ("/server/cors/any", test_cors_any);
  ADD ("/server/cors/list", test_cors_list);
  ADD ("/server/cors/none", test_cors_none);
  ADD ("/server/cors/credentials-wildcard", test_cors_credentials_wildcard);
  ADD ("/server/config/cookie", test_cookie);
  ADD ("/server/config/path", test_path);
  ADD ("/server/config/id-func", test_id_func);
  ADD ("/server/config/max-sessions", test_max_sessions);
  ADD ("/server/config/max-sessions-refused", test_max_sessions_refused);

  ADD ("/server/polling/post-ok", test_polling_post_ok);
  ADD ("/server/polling/utf8", test_polling_utf8);
  ADD ("/server/polling/large", test_polling_large);
  ADD ("/server/polling/binary", test_polling_binary);
  ADD ("/server/polling/multiple-packets", test_polling_multiple_packets);
  ADD ("/server/polling/get-waits", test_polling_get_waits);
  ADD ("/server/polling/many-waiting", test_polling_many_waiting);
  ADD ("/server/polling/send-order-threads", test_polling_send_order_threads);
  ADD ("/server/polling/backpressure", test_polling_backpressure);
  ADD ("/server/polling/overlap", test_polling_overlap);
  ADD ("/server/polling/max-payload", test_polling_max_payload);
  ADD ("/server/polling/malformed", test_polling_malformed);
  ADD ("/server/v3/polling-malformed", test_v3_polling_malformed);
  ADD ("/server/polling/transport-mismatch", test_polling_transport_mismatch);
  ADD ("/server/polling/websocket-sid", test_polling_websocket_sid);

  ADD ("/server/heartbeat/v4", test_heartbeat_v4);

  ADD ("/server/v3/handshake", test_v3_handshake);
  ADD ("/server/v3/text-payload", test_v3_text_payload);
  ADD ("/server/v3/binary-payload", test_v3_binary_payload);
  ADD ("/server/v3/b64", test_v3_b64);
  ADD ("/server/v3/jsonp", test_v3_jsonp);
  ADD ("/server/v3/heartbeat", test_v3_heartbeat);
  ADD ("/server/v4/jsonp-ignored", test_v4_jsonp_ignored);
  ADD ("/server/v3/expiry-not-reset-by-sends", test_v3_expiry_not_reset_by_sends);

  ADD ("/server/close/pending-get", test_close_pending_get);
  ADD ("/server/close/post-while-closing", test_close_post_while_closing);
  ADD ("/server/close/posts-do-not-extend", test_close_posts_do_not_extend);
  ADD ("/server/close/undelivered", test_close_undelivered);
  ADD ("/server/close/receive", test_close_receive);
  ADD ("/server/close/receive-cancel", test_close_receive_cancel);
  ADD ("/server/close/send-errors", test_close_send_errors);

  ADD ("/server/bad-input/storm", test_bad_input_storm);

  ADD ("/server/lifecycle/shutdown-pending-polls", test_shutdown_pending_polls);
  ADD ("/server/lifecycle/shutdown-dead-polls", test_shutdown_dead_polls);
  ADD ("/server/lifecycle/close-idempotent", test_server_close_idempotent);
  ADD ("/server/lifecycle/sockets", test_server_sockets);

  return g_test_run ();
}
