/* test-websocket.c: integration tests of the WebSocket transport
 *
 * An in-process EngineIOServer on 127.0.0.1 (port 0) and a raw WebSocket
 * client (wsutil.c) that also sends what real clients never do. The
 * server's "loop-threads" comes from ENGINE_IO_TEST_LOOP_THREADS, so meson
 * runs the suite once with a thread per session and once pooled.
 *
 * Every wait is bounded; nothing sleeps to synchronise.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "wsutil.h"

/* Waits that include a server-side timer (the close handshake's 3 s, a
 * heartbeat) get more than TEST_TIMEOUT_MS. */
#define LONG_TIMEOUT_MS (test_scaled_ms (10000))

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  TestLoopback    lb;             /* lb.watch: set before fixture_listen() */

  GMutex          lock;
  GHashTable     *sockets;        /* (lock) sid -> EngineIOSocket (ref): every session seen */

  /* Set before fixture_listen(); read-only afterwards. */
  guint           numbered;       /* > 0: check "c<n>" messages, 0..numbered-1, instead of recording */
} Fixture;

typedef struct
{
  int eio;
} Params;

static const Params v4 = { 4 };
static const Params v3 = { 3 };

/* With f->numbered: checks that the client's messages are "c0", "c1", ...
 * in order, recording "seqerr" on the first one out of order and "cdone"
 * after the last. */
static void
on_numbered_message (EngineIOSocket *socket,
                     const char     *text,
                     GBytes         *data,
                     Fixture        *f)
{
  const char *sid = engine_io_socket_get_id (socket);
  /* Session context only: no lock needed for the counter. */
  guint expected = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (socket), "next-client"));
  guint64 n = G_MAXUINT64;

  if (text == NULL || text[0] != 'c' ||
      !g_ascii_string_to_unsigned (text + 1, 10, 0, G_MAXUINT, &n, NULL) || n != expected)
    {
      test_recorder_add (f->lb.events, "seqerr %s expected c%u got %s", sid, expected,
                         text != NULL ? text : "(binary)");
      return;
    }
  g_object_set_data (G_OBJECT (socket), "next-client", GUINT_TO_POINTER (expected + 1));
  if (expected + 1 == f->numbered)
    test_recorder_add (f->lb.events, "cdone %s", sid);
}

/* What the ::connection handler does besides recording. */
static void
on_connection (TestLoopback   *lb,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;

  g_mutex_lock (&f->lock);
  g_hash_table_replace (f->sockets, g_strdup (engine_io_socket_get_id (socket)), g_object_ref (socket));
  g_mutex_unlock (&f->lock);

  if (f->numbered > 0)
    g_signal_connect (socket, "message", G_CALLBACK (on_numbered_message), f);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_mutex_init (&f->lock);
  f->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_TRANSPORT;
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  g_object_set (f->lb.server, "allow-eio3", TRUE, NULL);
}

/* Tests set server properties first, then listen. */
static gboolean
fixture_listen (Fixture *f)
{
  return test_loopback_listen (&f->lb);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (&f->lb);
  g_hash_table_unref (f->sockets);
  g_mutex_clear (&f->lock);
  test_log_check ();
}

/* (transfer full) (nullable) */
static EngineIOSocket *
fixture_socket (Fixture    *f,
                const char *sid)
{
  EngineIOSocket *socket;

  g_mutex_lock (&f->lock);
  socket = g_hash_table_lookup (f->sockets, sid);
  if (socket != NULL)
    g_object_ref (socket);
  g_mutex_unlock (&f->lock);
  return socket;
}

/* Waits for an exact event; on timeout fails the test and lists what
 * was recorded. */
#define wait_event(f, timeout_ms, ...) test_recorder_expect ((f)->lb.events, (timeout_ms), __VA_ARGS__)

/* The close event of @sid, or NULL if there is none yet. */
static char *
close_event_of (Fixture    *f,
                const char *sid)
{
  g_autofree char *prefix = g_strdup_printf ("close %s ", sid);
  g_auto(GStrv) all = test_recorder_dup (f->lb.events);

  for (guint i = 0; all[i] != NULL; i++)
    if (g_str_has_prefix (all[i], prefix))
      return g_strdup (all[i] + strlen (prefix));
  return NULL;
}

/* Waits until @sid closed, whatever the reason; returns the reason. */
static char *
wait_close (Fixture    *f,
            const char *sid,
            guint       timeout_ms)
{
  g_autofree char *prefix = g_strdup_printf ("close %s ", sid);

  if (!test_recorder_wait_count (f->lb.events, prefix, 1, timeout_ms))
    {
      g_test_fail_printf ("session %s did not close within %u ms", sid, timeout_ms);
      return NULL;
    }
  return close_event_of (f, sid);
}

/* Asserts the next frame is the text @expected. */
static gboolean
expect_text (TestWs     *ws,
             const char *expected)
{
  g_autofree char *text = test_ws_read_text (ws, TEST_TIMEOUT_MS);

  g_assert_cmpstr (text, ==, expected);
  return g_strcmp0 (text, expected) == 0;
}

/* A direct WebSocket session: the open packet must be the first frame. */
static TestWs *
direct_open (Fixture            *f,
             int                 eio,
             gint                rcvbuf,
             const char * const *headers,
             char              **out_sid)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = test_eio_ws_open_try (f->lb.port, eio, headers, rcvbuf, TEST_TIMEOUT_MS,
                                               &open, &error);

  g_assert_no_error (error);
  if (ws == NULL)
    return NULL;
  g_assert_true (test_sid_is_url_safe (open->sid));
  /* No upgrade from WebSocket. */
  g_assert_nonnull (open->upgrades);
  g_assert_cmpuint (g_strv_length (open->upgrades), ==, 0);
  if (out_sid != NULL)
    *out_sid = g_strdup (open->sid);
  return g_steal_pointer (&ws);
}

static GPtrArray *
poll_packets (Fixture    *f,
              int         eio,
              const char *sid)
{
  g_autofree char *target = test_eio_target (eio, "polling", sid);
  g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);

  return test_eio_poll_packets (response, eio);
}

/* Asserts that @packets are exactly @expected (NULL-terminated). */
static gboolean
packets_equal (GPtrArray          *packets,
               const char * const *expected)
{
  g_autoptr(GString) got = g_string_new (NULL);
  gboolean same;

  if (packets == NULL)
    return FALSE;
  same = packets->len == g_strv_length ((char **) expected);
  for (guint i = 0; i < packets->len; i++)
    {
      g_string_append_printf (got, "%s“%s”", i ? ", " : "", (char *) g_ptr_array_index (packets, i));
      if (same && strcmp (g_ptr_array_index (packets, i), expected[i]) != 0)
        same = FALSE;
    }
  if (!same)
    {
      g_autofree char *want = g_strjoinv ("”, “", (char **) expected);
      g_test_fail_printf ("packets were [%s], expected [“%s”]", got->str, want);
    }
  return same;
}

/* ------------------------------------------------------------------ */
/* Direct WebSocket sessions                                            */
/* ------------------------------------------------------------------ */

static void
test_direct_open (Fixture       *f,
                  gconstpointer  data)
{
  const Params *p = data;
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;

  g_test_summary ("transport=websocket without sid: a session whose first frame is the open "
                  "packet, with no upgrades, on a socket whose transport is WebSocket");
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);
  test_require (wait_event (f, TEST_TIMEOUT_MS, "connection %s websocket", sid));
  socket = fixture_socket (f, sid);
  test_require (socket != NULL);
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_WEBSOCKET);
  g_assert_cmpint (engine_io_socket_get_protocol_version (socket), ==,
                   p->eio == 4 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3);

  /* The response carries no extension and nothing else comes unasked. */
  g_assert_null (test_ws_response_header (ws, "Sec-WebSocket-Extensions"));
  g_assert_false (test_ws_wait_readable (ws, 100));

  /* Polling for a WebSocket session's sid is refused. */
  {
    g_autofree char *target = test_eio_target (p->eio, "polling", sid);
    g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);
    g_assert_true (test_eio_is_error (response, 400, 3));
  }
}

static void
test_direct_echo_text (Fixture       *f,
                       gconstpointer  data)
{
  const Params *p = data;
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("Text messages over a direct WebSocket, one packet per frame: emoji, the "
                  "empty message `4`, a record separator as data");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);

  test_require (test_ws_send_text (ws, "4hello 😀 é€"));
  test_require (expect_text (ws, "4hello 😀 é€"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s hello 😀 é€", sid));

  test_require (test_ws_send_text (ws, "4"));
  test_require (expect_text (ws, "4"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s ", sid));

  /* \x1e separates packets in a polling payload only. */
  test_require (test_ws_send_text (ws, "4a\x1e" "4b"));
  test_require (expect_text (ws, "4a\x1e" "4b"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s a\x1e" "4b", sid));

  /* A large message (several reads on both sides). */
  {
    g_autofree char *big = g_strnfill (600 * 1000, 'z');
    big[0] = '4';
    big[300 * 1000] = 'y';
    test_require (test_ws_send_text (ws, big));
    test_require (expect_text (ws, big));
  }

  /* Several frames back to back, in order. */
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *text = g_strdup_printf ("4n%u", i);
      test_require (test_ws_send_text (ws, text));
    }
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *text = g_strdup_printf ("4n%u", i);
      test_require (expect_text (ws, text));
    }
}

static void
test_direct_binary (Fixture       *f,
                    gconstpointer  data)
{
  const Params *p = data;
  static const guint8 bytes[] = { 0x00, 0x01, 0x04, 0xff, 0x80, '4' };
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWsFrame) frame = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) sent = g_byte_array_new ();
  g_autoptr(GByteArray) expected = g_byte_array_new ();

  g_test_summary ("Binary messages over WebSocket: v4 frames carry the raw bytes, v3 frames "
                  "start with the type byte 0x04");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);

  if (p->eio == 3)
    {
      guint8 type = 0x04;
      g_byte_array_append (sent, &type, 1);
    }
  g_byte_array_append (sent, bytes, sizeof bytes);
  g_byte_array_append (expected, sent->data, sent->len);

  test_require (test_ws_send_binary (ws, sent->data, sent->len));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "binary %s 000104ff8034", sid));

  frame = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (frame != NULL);
  g_assert_cmpuint (frame->opcode, ==, TEST_WS_BINARY);
  g_assert_true (frame->fin);
  g_assert_false (frame->masked);
  g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL), g_bytes_get_size (frame->payload),
                   expected->data, expected->len);

  /* An empty binary message (v4: an empty frame; v3: the type byte alone). */
  g_clear_pointer (&frame, test_ws_frame_free);
  test_require (test_ws_send_binary (ws, "\x04", p->eio == 3 ? 1 : 0));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "binary %s ", sid));
  frame = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (frame != NULL);
  g_assert_cmpuint (frame->opcode, ==, TEST_WS_BINARY);
  g_assert_cmpuint (g_bytes_get_size (frame->payload), ==, p->eio == 3 ? 1 : 0);
}

static void
test_direct_fragmented (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWsFrame) pong = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A text message in three fragments, with a ping frame between them, is one "
                  "message; the ping is answered at once");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, NULL, &sid);
  test_require (ws != NULL);

  test_require (test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_NOT_FIN, "4fr", 3, &error));
  test_require (test_ws_send_frame (ws, TEST_WS_PING, TEST_WS_SEND_DEFAULT, "mid", 3, &error));
  pong = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pong != NULL);
  g_assert_cmpuint (pong->opcode, ==, TEST_WS_PONG);
  g_assert_cmpmem (g_bytes_get_data (pong->payload, NULL), g_bytes_get_size (pong->payload), "mid", 3);

  test_require (test_ws_send_frame (ws, TEST_WS_CONTINUATION, TEST_WS_SEND_NOT_FIN, "ag", 2, &error));
  test_require (test_ws_send_frame (ws, TEST_WS_CONTINUATION, TEST_WS_SEND_DEFAULT, "ment", 4, &error));
  g_assert_no_error (error);
  test_require (expect_text (ws, "4fragment"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s fragment", sid));
}

/* ------------------------------------------------------------------ */
/* Upgrade from polling                                                 */
/* ------------------------------------------------------------------ */

static void
test_upgrade (Fixture       *f,
              gconstpointer  data)
{
  const Params *p = data;
  const char *noop[] = { "6", NULL };
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestResponse) pending = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *poll_target = NULL;
  g_autofree char *ws_target = NULL;

  g_test_summary ("Upgrade from polling: 2probe/3probe, the waiting GET and GETs during the "
                  "upgrade get `6`, packets queued before `5` go out on the WebSocket after "
                  "it, once, in order; no open packet; then polling is refused, and a second "
                  "WebSocket (during the probe or after) is answered 101 and closed at once");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, p->eio);
  test_require (open != NULL);
  test_require (open->upgrades != NULL && g_strv_contains ((const char * const *) open->upgrades, "websocket"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "connection %s polling", open->sid));
  socket = fixture_socket (f, open->sid);
  test_require (socket != NULL);
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_POLLING);

  poll_target = test_eio_target (p->eio, "polling", open->sid);
  ws_target = test_eio_target (p->eio, "websocket", open->sid);

  /* A message over polling first, so the session is really in use. */
  test_require (engine_io_socket_send_text (socket, "before", &error));
  packets = poll_packets (f, p->eio, open->sid);
  test_require (packets_equal (packets, (const char *[]) { "4before", NULL }));
  g_clear_pointer (&packets, g_ptr_array_unref);

  /* A GET that waits (nothing is queued). */
  test_require (test_http_send (f->lb.http, "GET", poll_target, NULL, NULL, -1, &error));

  ws = test_eio_probe (f->lb.port, p->eio, open->sid);
  test_require (ws != NULL);

  /* The waiting GET is answered with a noop, promptly. */
  pending = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (pending != NULL);
  packets = test_eio_poll_packets (pending, p->eio);
  test_require (packets_equal (packets, noop));
  g_clear_pointer (&packets, g_ptr_array_unref);

  /* A second probe while this one is open is refused: as in the
   * reference, its handshake completes and it is closed at once (a close
   * frame without a status code). */
  {
    g_autoptr(GError) local_error = NULL;
    g_autoptr(TestWs) second = test_ws_connect (f->lb.port, ws_target, NULL, 0, NULL, &local_error);
    g_assert_no_error (local_error);
    test_require (second != NULL);
    g_assert_cmpint (test_ws_read_close (second, TEST_TIMEOUT_MS, NULL), ==, -1);
  }

  /* Sent between probe and upgrade: they wait for the WebSocket. */
  test_require (engine_io_socket_send_text (socket, "between-1", &error));
  test_require (engine_io_socket_send_text (socket, "between-2", &error));
  {
    g_autoptr(GBytes) bytes = g_bytes_new_static ("\x00\x01\x02", 3);
    test_require (engine_io_socket_send_binary (socket, bytes, &error));
  }

  /* A GET during the upgrade gets a noop, not the queued messages. */
  packets = poll_packets (f, p->eio, open->sid);
  test_require (packets_equal (packets, noop));
  g_clear_pointer (&packets, g_ptr_array_unref);

  /* A POST during the upgrade still works; its echo is queued as well. */
  {
    const char *one[] = { "4from-polling", NULL };
    g_autofree char *payload = test_eio_payload (p->eio, one);
    g_autoptr(TestResponse) response = test_http_post (f->lb.http, poll_target, payload, strlen (payload));
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
    g_assert_true (test_response_body_equal (response, TEST_S ("ok")));
  }
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s from-polling", open->sid));

  /* Nothing may come on the probe before `5`. */
  g_assert_false (test_ws_wait_readable (ws, 50));

  test_require (test_ws_send_text (ws, "5"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "transport %s websocket", open->sid));
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_WEBSOCKET);

  /* Exactly these, in this order: no open packet, no noop, no repeat. */
  test_require (expect_text (ws, "4between-1"));
  test_require (expect_text (ws, "4between-2"));
  {
    g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    test_require (frame != NULL);
    g_assert_cmpuint (frame->opcode, ==, TEST_WS_BINARY);
    if (p->eio == 4)
      g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL), g_bytes_get_size (frame->payload),
                       "\x00\x01\x02", 3);
    else
      g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL), g_bytes_get_size (frame->payload),
                       "\x04\x00\x01\x02", 4);
  }
  test_require (expect_text (ws, "4from-polling"));
  test_require (test_ws_send_text (ws, "4after"));
  test_require (expect_text (ws, "4after"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "message %s after", open->sid));

  /* Polling for an upgraded session is refused. */
  {
    g_autoptr(TestResponse) response = test_http_get (f->lb.http, poll_target);
    g_assert_true (test_eio_is_error (response, 400, 3));
  }
  {
    const char *one[] = { "4late", NULL };
    g_autofree char *payload = test_eio_payload (p->eio, one);
    g_autoptr(TestResponse) response = test_http_post (f->lb.http, poll_target, payload, strlen (payload));
    g_assert_true (test_eio_is_error (response, 400, 3));
  }

  /* So is a second WebSocket (101, then a close frame). */
  {
    g_autoptr(GError) local_error = NULL;
    g_autoptr(TestWs) second = test_ws_connect (f->lb.port, ws_target, NULL, 0, NULL, &local_error);
    g_assert_no_error (local_error);
    test_require (second != NULL);
    g_assert_cmpint (test_ws_read_close (second, TEST_TIMEOUT_MS, NULL), ==, -1);
  }

  /* The session is unharmed by the refusals. */
  test_require (test_ws_send_text (ws, "4still"));
  test_require (expect_text (ws, "4still"));
  g_assert_null (close_event_of (f, open->sid));
  g_assert_cmpint (test_recorder_count (f->lb.events, "transport "), ==, 1);
}

static void
test_upgrade_timeout (Fixture       *f,
                      gconstpointer  data)
{
  const Params *p = data;
  const char *noop[] = { "6", NULL };
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;

  gint64 probe_started, probe_done, closed_at;

  g_test_summary ("A probe that never sends `5` is closed after upgrade-timeout; the session "
                  "goes on over polling, with what was queued meanwhile, and may upgrade again");
  g_object_set (f->lb.server, "upgrade-timeout", 300u, NULL);
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, p->eio);
  test_require (open != NULL);
  socket = fixture_socket (f, open->sid);
  test_require (socket != NULL);

  /* The deadline starts when the probe's WebSocket is accepted: after
   * probe_started, before probe_done. */
  probe_started = g_get_monotonic_time ();
  ws = test_eio_probe (f->lb.port, p->eio, open->sid);
  probe_done = g_get_monotonic_time ();
  test_require (ws != NULL);
  test_require (engine_io_socket_send_text (socket, "during-probe", &error));

  /* While the probe is open, polls get a noop. */
  packets = poll_packets (f, p->eio, open->sid);
  test_require (packets_equal (packets, noop));
  g_clear_pointer (&packets, g_ptr_array_unref);

  /* The server closes the probe with a close frame (1000) when
   * upgrade-timeout has passed: never sooner, and not much later. */
  g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, NULL), ==, 1000);
  closed_at = g_get_monotonic_time ();
  g_clear_pointer (&ws, test_ws_free);
  g_test_message ("probe closed %.0f ms after it was accepted (upgrade-timeout 300 ms)",
                  (closed_at - probe_done) / 1000.0);
  g_assert_cmpint (closed_at - probe_started, >=, 300 * 1000);
  g_assert_cmpint (closed_at - probe_done, <=, test_scaled_ms (300 + 1000) * G_GINT64_CONSTANT (1000));

  /* Polling works again and carries what was queued during the probe. */
  {
    gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * 1000;
    gboolean got = FALSE;

    while (!got && g_get_monotonic_time () < deadline)
      {
        g_autoptr(GPtrArray) more = poll_packets (f, p->eio, open->sid);
        test_require (more != NULL);
        for (guint i = 0; i < more->len; i++)
          {
            const char *packet = g_ptr_array_index (more, i);
            if (strcmp (packet, "4during-probe") == 0)
              got = TRUE;
            else if (strcmp (packet, "6") != 0)
              {
                g_test_fail_printf ("unexpected packet “%s” after the probe timed out", packet);
                return;
              }
          }
      }
    g_assert_true (got);
  }
  {
    const char *one[] = { "4ping-pong", NULL };
    g_autofree char *target = test_eio_target (p->eio, "polling", open->sid);
    g_autofree char *payload = test_eio_payload (p->eio, one);
    g_autoptr(TestResponse) response = test_http_post (f->lb.http, target, payload, strlen (payload));
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
    packets = poll_packets (f, p->eio, open->sid);
    test_require (packets_equal (packets, one));
    g_clear_pointer (&packets, g_ptr_array_unref);
  }
  g_assert_null (close_event_of (f, open->sid));
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_POLLING);

  /* A new probe may upgrade the session. */
  ws = test_eio_probe (f->lb.port, p->eio, open->sid);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "5"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "transport %s websocket", open->sid));
  test_require (test_ws_send_text (ws, "4upgraded"));
  test_require (expect_text (ws, "4upgraded"));
}

static void
test_upgrade_probe_dies (Fixture       *f,
                         gconstpointer  data)
{
  const Params *p = data;
  gboolean reset = p->eio == 4;  /* v4 resets the connection, v3 closes it orderly */
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) received = g_ptr_array_new_with_free_func (g_free);
  gint64 deadline;

  g_test_summary ("A probe WebSocket whose TCP connection dies before `5` leaves the session "
                  "on polling; what was queued meanwhile comes over polling, once, in order");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, p->eio);
  test_require (open != NULL);
  socket = fixture_socket (f, open->sid);
  test_require (socket != NULL);

  ws = test_eio_probe (f->lb.port, p->eio, open->sid);
  test_require (ws != NULL);
  test_require (engine_io_socket_send_text (socket, "m1", &error));
  test_ws_drop (ws, reset);
  test_require (engine_io_socket_send_text (socket, "m2", &error));

  /* Polls may get noops until the server saw the probe die; then the
   * messages, each once. */
  deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * 1000;
  while (received->len < 2 && g_get_monotonic_time () < deadline)
    {
      g_autoptr(GPtrArray) packets = poll_packets (f, p->eio, open->sid);
      test_require (packets != NULL);
      for (guint i = 0; i < packets->len; i++)
        if (strcmp (g_ptr_array_index (packets, i), "6") != 0)
          g_ptr_array_add (received, g_strdup (g_ptr_array_index (packets, i)));
    }
  test_require (packets_equal (received, (const char *[]) { "4m1", "4m2", NULL }));

  /* Round trip over polling. */
  {
    const char *one[] = { "4alive", NULL };
    g_autofree char *target = test_eio_target (p->eio, "polling", open->sid);
    g_autofree char *payload = test_eio_payload (p->eio, one);
    g_autoptr(TestResponse) response = test_http_post (f->lb.http, target, payload, strlen (payload));
    g_autoptr(GPtrArray) packets = NULL;
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
    packets = poll_packets (f, p->eio, open->sid);
    test_require (packets_equal (packets, one));
  }
  g_assert_null (close_event_of (f, open->sid));
  g_assert_cmpint (engine_io_socket_get_transport (socket), ==, ENGINE_IO_TRANSPORT_POLLING);
}

typedef struct
{
  Fixture *f;
  char    *sid;
} SyncData;

static gboolean
record_synced_cb (gpointer data)
{
  SyncData *sync = data;

  test_recorder_add (sync->f->lb.events, "synced %s", sync->sid);
  return G_SOURCE_REMOVE;
}

static void
sync_data_free (gpointer data)
{
  SyncData *sync = data;

  g_free (sync->sid);
  g_free (sync);
}

/* The application sends "bye" and closes @socket; returns once the
 * session context has handled the close. (The close is an event for the
 * session context, handled by a G_PRIORITY_DEFAULT source attached
 * before ours: our G_PRIORITY_LOW idle runs only after it; or, if the
 * session ended at once, its context may be gone with our idle: its close
 * event says it was handled.) */
static gboolean
send_bye_and_close (Fixture        *f,
                    EngineIOSocket *socket)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSource) idle = g_idle_source_new ();
  SyncData *sync = g_new0 (SyncData, 1);

  sync->f = f;
  sync->sid = g_strdup (engine_io_socket_get_id (socket));
  if (!engine_io_socket_send_text (socket, "bye", &error))
    {
      g_test_fail_printf ("send: %s", error->message);
      sync_data_free (sync);
      return FALSE;
    }
  engine_io_socket_close (socket);
  g_source_set_priority (idle, G_PRIORITY_LOW);
  g_source_set_callback (idle, record_synced_cb, sync, sync_data_free);
  g_source_attach (idle, engine_io_socket_get_context (socket));
  {
    g_autofree char *synced = g_strdup_printf ("synced %s", engine_io_socket_get_id (socket));
    gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);

    for (;;)
      {
        g_autofree char *closed = close_event_of (f, engine_io_socket_get_id (socket));

        if (closed != NULL || test_recorder_index (f->lb.events, synced) >= 0)
          return TRUE;
        if (g_get_monotonic_time () > deadline)
          break;
        g_usleep (2000);
      }
  }
  g_test_fail_printf ("the close of %s was not handled within %u ms",
                      engine_io_socket_get_id (socket), TEST_TIMEOUT_MS);
  return FALSE;
}

/* Handshake, a GET that waits, the probe (`2probe`/`3probe`), the GET
 * answered `6`: the state of an engine.io-client that paused polling for
 * its upgrade. Returns the probe. */
static TestWs *
open_and_probe (Fixture         *f,
                int              eio,
                TestOpenPacket **out_open,
                EngineIOSocket **out_socket)
{
  const char *noop[] = { "6", NULL };
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestResponse) pending = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *poll_target = NULL;

  open = test_eio_polling_open (f->lb.http, eio);
  if (open == NULL)
    return NULL;
  *out_socket = fixture_socket (f, open->sid);
  if (*out_socket == NULL)
    {
      g_test_fail_printf ("no connection event for %s", open->sid);
      return NULL;
    }
  poll_target = test_eio_target (eio, "polling", open->sid);
  if (!test_http_send (f->lb.http, "GET", poll_target, NULL, NULL, -1, &error))
    {
      g_test_fail_printf ("GET: %s", error->message);
      return NULL;
    }
  ws = test_eio_probe (f->lb.port, eio, open->sid);
  if (ws == NULL)
    return NULL;
  pending = test_http_receive (f->lb.http, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  if (pending == NULL)
    return NULL;
  packets = test_eio_poll_packets (pending, eio);
  if (!packets_equal (packets, noop))
    return NULL;
  *out_open = g_steal_pointer (&open);
  return g_steal_pointer (&ws);
}

static void
test_upgrade_close_next_poll (Fixture       *f,
                              gconstpointer  data)
{
  const Params *p = data;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autofree char *reason = NULL;
  gint code;

  g_test_summary ("The application closes a session whose upgrade is under way (`3probe` "
                  "sent, the waiting GET answered `6`): the next GET gets what was queued "
                  "and `1` (engine.io-client, its probe failed, hears it only there), then "
                  "the probe is closed and the session ends with `forced close`");
  test_require (fixture_listen (f));

  ws = open_and_probe (f, p->eio, &open, &socket);
  test_require (ws != NULL);
  test_require (send_bye_and_close (f, socket));

  packets = poll_packets (f, p->eio, open->sid);
  test_require (packets_equal (packets, (const char *[]) { "4bye", "1", NULL }));

  reason = wait_close (f, open->sid, TEST_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "forced close");
  /* The probe goes with the session (a close frame, or the connection
   * dropped): its client knows from the poll already. */
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, !=, -3);
  g_assert_cmpint (test_recorder_count (f->lb.events, "transport "), ==, 0);
}

static void
test_upgrade_close_probe_completes (Fixture       *f,
                                    gconstpointer  data)
{
  const Params *p = data;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  g_autofree char *reason = NULL;

  g_test_summary ("The application closes a session whose upgrade is under way (`3probe` "
                  "sent, the waiting GET answered `6`): as in the reference, the probe stays "
                  "open, and the client's `5` completes the upgrade: what was queued comes "
                  "on the WebSocket, then a close frame (1000); polling is refused after");
  test_require (fixture_listen (f));

  ws = open_and_probe (f, p->eio, &open, &socket);
  test_require (ws != NULL);
  test_require (send_bye_and_close (f, socket));

  /* The paused client, its GET answered, sends `5` on the probe. */
  test_require (test_ws_send_text (ws, "5"));
  test_require (expect_text (ws, "4bye"));
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, skipped), ==, 1000);
  g_assert_cmpuint (skipped->len, ==, 0);
  test_require (test_ws_send_close (ws, 1000));

  reason = wait_close (f, open->sid, TEST_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "forced close");
  g_assert_cmpint (test_recorder_count (f->lb.events, "transport "), ==, 1);
  {
    g_autofree char *target = test_eio_target (p->eio, "polling", open->sid);
    g_autoptr(TestResponse) response = test_http_get (f->lb.http, target);
    g_assert_true (test_eio_is_error (response, 400, 1));
  }
}

static void
test_upgrade_probe_bad_packet (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWs) again = NULL;
  g_autofree char *target = NULL;
  g_autoptr(GError) error = NULL;
  gint code;

  g_test_summary ("A message on a probe WebSocket before `2probe` closes the probe, not the "
                  "session; polling goes on and a proper probe may follow");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, 4);
  test_require (open != NULL);
  target = test_eio_target (4, "websocket", open->sid);
  ws = test_ws_connect (f->lb.port, target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "4too-early"));
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, !=, -3);  /* closed (with or without a frame), not left open */

  g_assert_null (close_event_of (f, open->sid));
  {
    const char *one[] = { "4still-polling", NULL };
    g_autofree char *poll = test_eio_target (4, "polling", open->sid);
    g_autofree char *payload = test_eio_payload (4, one);
    g_autoptr(TestResponse) response = test_http_post (f->lb.http, poll, payload, strlen (payload));
    g_autoptr(GPtrArray) packets = NULL;
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
    packets = poll_packets (f, 4, open->sid);
    test_require (packets_equal (packets, one));
  }

  again = test_eio_probe (f->lb.port, 4, open->sid);
  test_require (again != NULL);
  test_require (test_ws_send_text (again, "5"));
  test_require (test_ws_send_text (again, "4upgraded"));
  test_require (expect_text (again, "4upgraded"));
}

static void
test_upgrade_heartbeat (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *heartbeat = NULL;

  g_test_summary ("v4: after an upgrade the server's pings come over the WebSocket and the "
                  "pongs sent there keep the session alive");
  g_object_set (f->lb.server, "ping-interval", 300u, "ping-timeout", 3000u, NULL);
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, 4);
  test_require (open != NULL);
  heartbeat = g_strdup_printf ("heartbeat %s", open->sid);
  ws = test_eio_probe (f->lb.port, 4, open->sid);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "5"));

  for (guint i = 1; i <= 3; i++)
    {
      test_require (expect_text (ws, "2"));
      test_require (test_ws_send_text (ws, "3"));
      test_require (test_recorder_wait_count (f->lb.events, heartbeat, i, TEST_TIMEOUT_MS));
    }
  g_assert_null (close_event_of (f, open->sid));
}

/* ------------------------------------------------------------------ */
/* Heartbeat                                                            */
/* ------------------------------------------------------------------ */

static void
test_heartbeat_v4 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;
  gint code;

  g_test_summary ("v4 over WebSocket: the server sends `2`, the client's `3` completes the "
                  "heartbeat (::heartbeat), a missing pong closes with `ping timeout`");
  g_object_set (f->lb.server, "ping-interval", 200u, "ping-timeout", 1500u, NULL);
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, NULL, &sid);
  test_require (ws != NULL);

  for (guint i = 1; i <= 3; i++)
    {
      g_autofree char *heartbeat = g_strdup_printf ("heartbeat %s", sid);
      test_require (expect_text (ws, "2"));
      test_require (test_ws_send_text (ws, "3"));
      test_require (test_recorder_wait_count (f->lb.events, heartbeat, i, TEST_TIMEOUT_MS));
    }
  g_assert_null (close_event_of (f, sid));

  /* No pong: the next ping is the last thing before the close. */
  test_require (expect_text (ws, "2"));
  code = test_ws_read_close (ws, LONG_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, >=, -1);
  test_ws_send_close (ws, 1000);
  g_assert_true (test_ws_wait_eof (ws, LONG_TIMEOUT_MS));
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "ping timeout");
}

static void
test_heartbeat_v4_client_ping (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("v4 over WebSocket: a ping from the client is the wrong heartbeat direction "
                  "and closes the session with `transport error`, as in the reference");
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, NULL, &sid);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "2"));
  g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, NULL), >=, -1);
  test_ws_send_close (ws, 1000);
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "transport error");
}

static void
test_heartbeat_v3 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *heartbeat = NULL;
  g_autoptr(TestWs) ws = NULL;
  gint64 until;
  guint pings = 0;

  g_test_summary ("v3 over WebSocket: the client's `2` gets `3` (with its data), ::heartbeat "
                  "fires, client packets keep the session alive and silence expires it");
  g_object_set (f->lb.server, "ping-interval", 800u, "ping-timeout", 800u, NULL);
  test_require (fixture_listen (f));

  ws = direct_open (f, 3, 0, NULL, &sid);
  test_require (ws != NULL);
  heartbeat = g_strdup_printf ("heartbeat %s", sid);

  test_require (test_ws_send_text (ws, "2"));
  test_require (expect_text (ws, "3"));
  test_require (test_ws_send_text (ws, "2probe"));
  test_require (expect_text (ws, "3probe"));
  test_require (test_recorder_wait_count (f->lb.events, heartbeat, 2, TEST_TIMEOUT_MS));
  pings = 2;

  /* Pinging for longer than pingInterval + pingTimeout keeps it open.
   * (The pause only paces the pings; each waits for its pong.) */
  until = g_get_monotonic_time () + 2000 * 1000;
  while (g_get_monotonic_time () < until)
    {
      test_require (test_ws_send_text (ws, "2"));
      test_require (expect_text (ws, "3"));
      pings++;
      g_usleep (50 * 1000);
    }
  g_assert_null (close_event_of (f, sid));
  test_require (test_recorder_wait_count (f->lb.events, heartbeat, pings, TEST_TIMEOUT_MS));

  /* Silence: expiry. The server never pings a v3 client itself. */
  {
    g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
    g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, skipped), >=, -1);
    g_assert_cmpuint (skipped->len, ==, 0);
  }
  test_ws_send_close (ws, 1000);
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "ping timeout");
}

/* ------------------------------------------------------------------ */
/* Limits and protocol errors                                           */
/* ------------------------------------------------------------------ */

/* Sends a frame that the server must refuse with @code and checks that
 * the session ends; returns the close reason. */
static char *
violation (Fixture         *f,
           guint8           opcode,
           TestWsSendFlags  flags,
           const void      *payload,
           gsize            length,
           gint             code)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = direct_open (f, 4, 0, NULL, &sid);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);

  if (ws == NULL)
    return NULL;
  /* The session works before the violation. */
  if (!test_ws_send_text (ws, "4ok") || !expect_text (ws, "4ok"))
    return NULL;

  test_ws_send_frame (ws, opcode, flags, payload, length, &error);
  g_assert_no_error (error);
  g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, skipped), ==, code);
  g_assert_cmpuint (skipped->len, ==, 0);
  test_ws_send_close (ws, (guint16) code);
  g_assert_true (test_ws_wait_eof (ws, LONG_TIMEOUT_MS));
  return wait_close (f, sid, LONG_TIMEOUT_MS);
}

static void
test_max_payload (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *at_limit = NULL;
  g_autofree char *over = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A WebSocket message of exactly max-payload bytes is accepted; one byte "
                  "more gets close code 1009 and ends the session");
  g_object_set (f->lb.server, "max-payload", (guint64) 1000, NULL);
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, NULL, &sid);
  test_require (ws != NULL);

  at_limit = g_strnfill (1000, 'a');
  at_limit[0] = '4';
  test_require (test_ws_send_text (ws, at_limit));
  test_require (expect_text (ws, at_limit));

  /* The limit is on the message, not the frame: two fragments over it. */
  over = g_strnfill (1001, 'b');
  over[0] = '4';
  test_require (test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_NOT_FIN, over, 600, &error));
  test_require (test_ws_send_frame (ws, TEST_WS_CONTINUATION, TEST_WS_SEND_DEFAULT, over + 600, 401, &error));
  g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, NULL), ==, 1009);
  test_ws_send_close (ws, 1009);
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_nonnull (reason);
  /* Only the message at the limit reached the application. */
  g_assert_cmpuint (test_recorder_count (f->lb.events, "message "), ==, 1);

  /* A single frame over the limit, on a fresh session. */
  g_clear_pointer (&reason, g_free);
  reason = violation (f, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, over, 1001, 1009);
  g_assert_nonnull (reason);
}

static void
test_invalid_utf8 (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *reason = NULL;

  g_test_summary ("Invalid UTF-8 in a text frame: close code 1007 (RFC 6455 8.1), the session ends");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  reason = violation (f, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, "4\xc3\x28", 3, 1007);
  g_assert_nonnull (reason);
  g_clear_pointer (&reason, g_free);
  /* A truncated sequence at the end of the message. */
  reason = violation (f, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, "4abc\xe2\x82", 6, 1007);
  g_assert_nonnull (reason);
}

static void
test_unmasked (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *reason = NULL;

  g_test_summary ("An unmasked client frame: close code 1002, session closed (transport error)");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  reason = violation (f, TEST_WS_TEXT, TEST_WS_SEND_UNMASKED, "4hi", 3, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
}

static void
test_bad_opcode (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *reason = NULL;

  g_test_summary ("Reserved opcodes (0x3 data, 0xB control), a stray continuation frame and "
                  "an unnegotiated RSV1 bit: close code 1002, `transport error`");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  reason = violation (f, 0x3, TEST_WS_SEND_DEFAULT, "4hi", 3, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
  g_clear_pointer (&reason, g_free);
  reason = violation (f, 0xb, TEST_WS_SEND_DEFAULT, "", 0, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
  g_clear_pointer (&reason, g_free);
  reason = violation (f, TEST_WS_CONTINUATION, TEST_WS_SEND_DEFAULT, "4hi", 3, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
  g_clear_pointer (&reason, g_free);
  reason = violation (f, TEST_WS_TEXT, TEST_WS_SEND_RSV1, "4hi", 3, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
}

static void
test_bad_control_frame (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *reason = NULL;
  g_autofree char *long_ping = g_strnfill (126, 'p');

  g_test_summary ("A fragmented control frame and a control frame over 125 bytes (RFC 6455 "
                  "5.5): close code 1002, `transport error`");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  reason = violation (f, TEST_WS_PING, TEST_WS_SEND_NOT_FIN, "x", 1, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
  g_clear_pointer (&reason, g_free);
  reason = violation (f, TEST_WS_PING, TEST_WS_SEND_DEFAULT, long_ping, 126, 1002);
  g_assert_cmpstr (reason, ==, "transport error");
}

static void
test_ping_frame (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_strnfill (125, 'p');
  const char *payloads[] = { "", "hello", big };

  g_test_summary ("A WebSocket ping frame is answered with a pong frame carrying the same "
                  "payload (empty, short, the 125-byte maximum); the session is untouched");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, NULL, &sid);
  test_require (ws != NULL);

  for (guint i = 0; i < G_N_ELEMENTS (payloads); i++)
    {
      g_autoptr(TestWsFrame) pong = NULL;

      test_require (test_ws_send_frame (ws, TEST_WS_PING, TEST_WS_SEND_DEFAULT, payloads[i],
                                        strlen (payloads[i]), &error));
      pong = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      test_require (pong != NULL);
      g_assert_cmpuint (pong->opcode, ==, TEST_WS_PONG);
      g_assert_true (pong->fin);
      g_assert_false (pong->masked);
      g_assert_cmpmem (g_bytes_get_data (pong->payload, NULL), g_bytes_get_size (pong->payload),
                       payloads[i], strlen (payloads[i]));
    }

  /* An unsolicited pong frame is ignored. */
  test_require (test_ws_send_frame (ws, TEST_WS_PONG, TEST_WS_SEND_DEFAULT, "x", 1, &error));
  test_require (test_ws_send_text (ws, "4after"));
  test_require (expect_text (ws, "4after"));
  g_assert_null (close_event_of (f, sid));
  g_assert_cmpint (test_recorder_count (f->lb.events, "heartbeat "), ==, 0);
}

static void
test_permessage_deflate (Fixture       *f,
                         gconstpointer  data)
{
  const char *headers[] = {
    "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits",
    NULL,
  };
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("A permessage-deflate offer gets a 101 without Sec-WebSocket-Extensions, "
                  "and frames stay uncompressed");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  ws = direct_open (f, 4, 0, headers, &sid);
  test_require (ws != NULL);
  g_assert_null (test_ws_response_header (ws, "Sec-WebSocket-Extensions"));
  test_require (test_ws_send_text (ws, "4plain text plain text plain text"));
  test_require (expect_text (ws, "4plain text plain text plain text"));

  /* The same on an upgrade. */
  {
    g_autoptr(TestOpenPacket) open = test_eio_polling_open (f->lb.http, 4);
    g_autofree char *target = NULL;
    g_autoptr(TestWs) probe = NULL;
    g_autoptr(GError) error = NULL;

    test_require (open != NULL);
    target = test_eio_target (4, "websocket", open->sid);
    probe = test_ws_connect (f->lb.port, target, headers, 0, NULL, &error);
    g_assert_no_error (error);
    test_require (probe != NULL);
    g_assert_null (test_ws_response_header (probe, "Sec-WebSocket-Extensions"));
  }
}

static void
test_bad_upgrade_requests (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *direct = test_eio_target (4, "websocket", NULL);
  g_autofree char *with_sid = NULL;
  guint sessions;

  g_test_summary ("Bad WebSocket opening handshakes get HTTP 400 with JSON code 3 (no key, "
                  "a bad key, version 8, no Upgrade header, POST with a sid) or code 2 (a "
                  "POST handshake); none opens a session or harms an existing one");
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  open = test_eio_polling_open (f->lb.http, 4);
  test_require (open != NULL);
  with_sid = test_eio_target (4, "websocket", open->sid);
  sessions = engine_io_server_get_socket_count (f->lb.server);

  for (guint t = 0; t < 2; t++)
    {
      const char *target = t == 0 ? direct : with_sid;
      struct
      {
        const char *method;
        const char *headers[12];
        gint        code;
      } cases[] = {
        /* No Sec-WebSocket-Key. */
        { "GET", { "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13", NULL }, 3 },
        /* A key that is not 16 bytes of base64. */
        { "GET", { "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13",
                   "Sec-WebSocket-Key", "c2hvcnQ=", NULL }, 3 },
        /* Version 8. */
        { "GET", { "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "8",
                   "Sec-WebSocket-Key", key, NULL }, 3 },
        /* No Upgrade header at all. */
        { "GET", { "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", key, NULL }, 3 },
        /* POST: a bad handshake method without sid, a bad request with one. */
        { "POST", { "Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13",
                    "Sec-WebSocket-Key", key, NULL }, t == 0 ? 2 : 3 },
      };

      for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
        {
          g_autoptr(TestHttp) http = test_http_new (f->lb.port);
          g_autoptr(GError) error = NULL;
          g_autoptr(TestResponse) response =
            test_http_request (http, cases[i].method, target, cases[i].headers,
                               NULL, strcmp (cases[i].method, "POST") == 0 ? 0 : -1,
                               TEST_TIMEOUT_MS, &error);

          g_assert_no_error (error);
          test_require (response != NULL);
          if (!test_eio_is_error (response, 400, cases[i].code))
            {
              g_autofree char *text = test_response_text (response);
              g_test_fail_printf ("%s %s case %u: expected 400 code %d, got %u %s", cases[i].method,
                                  target, i, cases[i].code, response->status, text);
            }
        }
    }

  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, sessions);
  g_assert_cmpint (test_recorder_count (f->lb.events, "connection "), ==, 1);

  /* The polling session still upgrades. */
  {
    g_autoptr(TestWs) ws = test_eio_probe (f->lb.port, 4, open->sid);
    test_require (ws != NULL);
    test_require (test_ws_send_text (ws, "5"));
    test_require (test_ws_send_text (ws, "4fine"));
    test_require (expect_text (ws, "4fine"));
  }
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */
/* ------------------------------------------------------------------ */

static void
test_close_frame_from_client (Fixture       *f,
                              gconstpointer  data)
{
  const Params *p = data;
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;
  gint code;

  g_test_summary ("A close frame from the client: a close frame back, then ::close with "
                  "`transport close`");
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);
  test_require (test_ws_send_close (ws, 1000));
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, ==, 1000);
  g_assert_true (test_ws_wait_eof (ws, TEST_TIMEOUT_MS));
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "transport close");
}

static void
test_close_abrupt (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *sid_reset = NULL;
  g_autofree char *sid_fin = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws_reset = NULL;
  g_autoptr(TestWs) ws_fin = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A WebSocket whose TCP connection is reset, or closed without a close "
                  "frame, ends the session with `transport error`");
  test_require (fixture_listen (f));

  ws_reset = direct_open (f, 4, 0, NULL, &sid_reset);
  test_require (ws_reset != NULL);
  ws_fin = direct_open (f, 4, 0, NULL, &sid_fin);
  test_require (ws_fin != NULL);

  test_ws_drop (ws_reset, TRUE);
  reason = wait_close (f, sid_reset, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "transport error");
  g_clear_pointer (&reason, g_free);

  test_ws_drop (ws_fin, FALSE);
  reason = wait_close (f, sid_fin, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "transport error");

  /* Sends to a closed session fail. */
  {
    g_autoptr(EngineIOSocket) socket = fixture_socket (f, sid_reset);
    test_require (socket != NULL);
    g_assert_false (engine_io_socket_send_text (socket, "gone", &error));
    g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
    g_assert_true (engine_io_socket_is_closed (socket));
  }
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
}

static void
test_close_packet (Fixture       *f,
                   gconstpointer  data)
{
  const Params *p = data;
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("A `1` close packet over WebSocket ends the session with `transport "
                  "close`, and the server closes the WebSocket");
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);
  test_require (test_ws_send_text (ws, "1"));
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), >=, -1);
  test_ws_send_close (ws, 1000);
  g_assert_true (test_ws_wait_eof (ws, TEST_TIMEOUT_MS));
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "transport close");
}

static gpointer
server_close_thread (gpointer data)
{
  engine_io_server_close (data);
  return NULL;
}

static void
test_close_server_shutdown (Fixture       *f,
                            gconstpointer  data)
{
  g_autofree char *direct_sid = NULL;
  g_autoptr(TestWs) direct = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) upgraded = NULL;
  g_autofree char *reason = NULL;
  GThread *thread;

  g_test_summary ("engine_io_server_close() with WebSocket sessions: each gets a close frame, "
                  "::close says `server shutting down`, and the close returns promptly once "
                  "the clients answer");
  test_require (fixture_listen (f));

  direct = direct_open (f, 4, 0, NULL, &direct_sid);
  test_require (direct != NULL);
  open = test_eio_polling_open (f->lb.http, 3);
  test_require (open != NULL);
  upgraded = test_eio_probe (f->lb.port, 3, open->sid);
  test_require (upgraded != NULL);
  test_require (test_ws_send_text (upgraded, "5"));
  test_require (wait_event (f, TEST_TIMEOUT_MS, "transport %s websocket", open->sid));

  thread = g_thread_new ("server-close", server_close_thread, f->lb.server);
  g_assert_cmpint (test_ws_read_close (direct, TEST_TIMEOUT_MS, NULL), >=, -1);
  test_ws_send_close (direct, 1000);
  g_assert_cmpint (test_ws_read_close (upgraded, TEST_TIMEOUT_MS, NULL), >=, -1);
  test_ws_send_close (upgraded, 1000);
  g_assert_true (test_ws_wait_eof (direct, TEST_TIMEOUT_MS));
  g_assert_true (test_ws_wait_eof (upgraded, TEST_TIMEOUT_MS));
  g_thread_join (thread);

  reason = close_event_of (f, direct_sid);
  g_assert_cmpstr (reason, ==, "server shutting down");
  g_clear_pointer (&reason, g_free);
  reason = close_event_of (f, open->sid);
  g_assert_cmpstr (reason, ==, "server shutting down");
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
}

typedef struct
{
  Fixture *f;
  guint    index;
} SendNote;

static void
send_done_cb (EngineIOSocket *socket,
              gboolean        flushed,
              gpointer        user_data)
{
  SendNote *note = user_data;

  test_recorder_add (note->f->lb.events, "sent %s %u %s", engine_io_socket_get_id (socket),
                     note->index, flushed ? "flushed" : "dropped");
}

static void
test_close_forced (Fixture       *f,
                   gconstpointer  data)
{
  const Params *p = data;
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  guint next = 0;
  gint code;

  g_test_summary ("engine_io_socket_close() on a WebSocket session: the queued messages "
                  "arrive, then a close frame; ::close says `forced close`; the send "
                  "callbacks report flushed; later sends fail");
  test_require (fixture_listen (f));

  ws = direct_open (f, p->eio, 0, NULL, &sid);
  test_require (ws != NULL);
  socket = fixture_socket (f, sid);
  test_require (socket != NULL);

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *text = g_strdup_printf ("queued-%u", i);
      SendNote *note = g_new (SendNote, 1);
      note->f = f;
      note->index = i;
      test_require (engine_io_socket_send_text_full (socket, text, send_done_cb, note, g_free, &error));
    }
  engine_io_socket_close (socket);

  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, frames);
  g_assert_cmpint (code, !=, -3);
  g_assert_cmpint (code, !=, -2);  /* a close frame, not just EOF */
  for (guint i = 0; i < frames->len; i++)
    {
      TestWsFrame *frame = g_ptr_array_index (frames, i);
      g_autofree char *text = test_ws_frame_dup_text (frame);
      g_autofree char *expected = g_strdup_printf ("4queued-%u", next);

      g_assert_cmpuint (frame->opcode, ==, TEST_WS_TEXT);
      if (next == 5)
        g_assert_cmpstr (text, ==, "1");  /* an optional close packet, last */
      else
        g_assert_cmpstr (text, ==, expected);
      next++;
    }
  g_assert_cmpuint (next, >=, 5);
  g_assert_cmpuint (next, <=, 6);
  test_ws_send_close (ws, 1000);
  g_assert_true (test_ws_wait_eof (ws, TEST_TIMEOUT_MS));

  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "forced close");
  for (guint i = 0; i < 5; i++)
    test_require (wait_event (f, TEST_TIMEOUT_MS, "sent %s %u flushed", sid, i));
  g_assert_cmpint (test_recorder_count (f->lb.events, "sent "), ==, 5);

  g_assert_false (engine_io_socket_send_text (socket, "late", &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
}

#define BACKLOG_MESSAGES 64

static void
test_close_forced_backlog (Fixture       *f,
                           gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autofree char *reason = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  g_autofree char *filler = g_strnfill (64 * 1024, 'q');
  guint texts = 0;
  gint code;

  g_test_summary ("engine_io_socket_close() while a slow client has a backlog (messages "
                  "waiting in the WebSocket's own buffer): every message still arrives, in "
                  "order, before the close frame");
  g_object_set (f->lb.server, "send-queue-high-water", (guint64) 0, NULL);
  test_require (fixture_listen (f));

  /* A small receive window, and nothing read until the close. */
  ws = direct_open (f, 4, 4096, NULL, &sid);
  test_require (ws != NULL);
  socket = fixture_socket (f, sid);
  test_require (socket != NULL);

  for (guint i = 0; i < BACKLOG_MESSAGES; i++)
    {
      g_autofree char *text = g_strdup_printf ("%02u:%s", i, filler);
      test_require (engine_io_socket_send_text (socket, text, &error));
    }
  engine_io_socket_close (socket);

  code = test_ws_read_close (ws, LONG_TIMEOUT_MS, frames);
  for (guint i = 0; i < frames->len; i++)
    {
      TestWsFrame *frame = g_ptr_array_index (frames, i);
      g_autofree char *text = test_ws_frame_dup_text (frame);
      g_autofree char *expected = g_strdup_printf ("4%02u:%s", texts, filler);

      if (texts == BACKLOG_MESSAGES && strcmp (text, "1") == 0)
        continue;  /* an optional close packet */
      g_assert_cmpuint (frame->opcode, ==, TEST_WS_TEXT);
      if (strcmp (text, expected) != 0)
        {
          g_test_fail_printf ("frame %u: got “%.8s…”, expected “%.8s…”", i, text, expected);
          break;
        }
      texts++;
    }
  g_assert_cmpuint (texts, ==, BACKLOG_MESSAGES);
  g_assert_cmpint (code, >=, -1);  /* a close frame, not EOF or a timeout */
  test_ws_send_close (ws, 1000);
  g_assert_true (test_ws_wait_eof (ws, LONG_TIMEOUT_MS));
  reason = wait_close (f, sid, LONG_TIMEOUT_MS);
  g_assert_cmpstr (reason, ==, "forced close");
}

/* ------------------------------------------------------------------ */
/* Back-pressure                                                        */
/* ------------------------------------------------------------------ */

#define BP_MESSAGE_SIZE   (64 * 1024)
#define BP_HIGH_WATER     (256 * 1024)
#define BP_MAX_MESSAGES   512               /* 32 MiB: far past any buffer */
/* DROP_NEWEST: attempts until 64 refusals in a row. Refusals and accepts
 * alternate while the session thread still moves the queue into the
 * kernel (its send buffer grows with autotuning): under CI's load the last
 * accept came at attempt 451 of 512, leaving 60 refusals in a row. What
 * bounds the memory is checked apart (BP_BOUND_BYTES). */
#define BP_DROP_ATTEMPTS  8192
#define BP_BOUND_BYTES    (16 * 1024 * 1024)

static char *
bp_message (guint n)
{
  char *text = g_strnfill (BP_MESSAGE_SIZE, 'x');
  char head[16];
  int len = g_snprintf (head, sizeof head, "%06u:", n);

  memcpy (text, head, (gsize) len);
  return text;
}

/* One echo round trip on @ws, bounded. */
static gboolean
echo_round_trip (TestWs *ws,
                 guint   n)
{
  g_autofree char *text = g_strdup_printf ("4fast-%u", n);

  return test_ws_send_text (ws, text) && expect_text (ws, text);
}

static void
backpressure (Fixture                    *f,
              EngineIOBackpressurePolicy  policy)
{
  g_autofree char *slow_sid = NULL;
  g_autofree char *fast_sid = NULL;
  g_autoptr(TestWs) slow = NULL;
  g_autoptr(TestWs) fast = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) accepted = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autofree char *drain = NULL;
  guint attempts = policy == ENGINE_IO_BACKPRESSURE_KEEP_QUEUING ? 128
                   : policy == ENGINE_IO_BACKPRESSURE_DROP_NEWEST ? BP_DROP_ATTEMPTS
                   : BP_MAX_MESSAGES;
  guint fast_trips = 0;
  guint failures = 0;
  guint consecutive = 0;
  guint drains = 0;
  guint i;

  g_object_set (f->lb.server,
                "send-queue-high-water", (guint64) BP_HIGH_WATER,
                "backpressure-policy", policy,
                NULL);
  f->lb.watch |= TEST_WATCH_ECHO;
  test_require (fixture_listen (f));

  /* A client with a tiny receive window that stops reading. */
  slow = direct_open (f, 4, 4096, NULL, &slow_sid);
  test_require (slow != NULL);
  fast = direct_open (f, 4, 0, NULL, &fast_sid);
  test_require (fast != NULL);
  socket = fixture_socket (f, slow_sid);
  test_require (socket != NULL);
  drain = g_strdup_printf ("drain %s", slow_sid);

  for (i = 0; i < attempts; i++)
    {
      g_autofree char *text = bp_message (i);
      guint drains_before = test_recorder_count (f->lb.events, drain);

      g_clear_error (&error);
      if (engine_io_socket_send_text (socket, text, &error))
        {
          g_array_append_val (accepted, i);
          /* The queue held this message after the send: a ::drain must
           * come after this point. */
          drains = drains_before;
          consecutive = 0;
        }
      else
        {
          g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL);
          failures++;
          consecutive++;
          if (policy == ENGINE_IO_BACKPRESSURE_CLOSE)
            break;
          /* DROP_NEWEST: the stalled queue refuses send after send. */
          if (consecutive == 64)
            break;
        }
      /* Meanwhile, the other session echoes at normal speed. */
      if (i % 16 == 0)
        {
          gint64 start = g_get_monotonic_time ();
          test_require (echo_round_trip (fast, fast_trips++));
          g_assert_cmpint (g_get_monotonic_time () - start, <, test_scaled_ms (2000) * G_GINT64_CONSTANT (1000));
        }
    }

  /* However the policy, the server never held much more than the mark
   * plus what the kernel and the WebSocket buffer take. */
  if (policy != ENGINE_IO_BACKPRESSURE_KEEP_QUEUING)
    g_assert_cmpuint ((guint64) accepted->len * BP_MESSAGE_SIZE, <=, BP_BOUND_BYTES);

  switch (policy)
    {
    case ENGINE_IO_BACKPRESSURE_CLOSE:
      {
        g_autofree char *reason = NULL;

        g_assert_cmpuint (failures, ==, 1);
        reason = wait_close (f, slow_sid, LONG_TIMEOUT_MS);
        g_assert_cmpstr (reason, ==, "transport error");
        g_clear_error (&error);
        g_assert_false (engine_io_socket_send_text (socket, "late", &error));
        g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
        g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);
        /* The stalled connection is dropped within the close timeout. */
        g_assert_true (test_ws_wait_eof (slow, LONG_TIMEOUT_MS));
        for (guint k = 0; k < 5; k++)
          test_require (echo_round_trip (fast, fast_trips++));
        g_assert_null (close_event_of (f, fast_sid));
        return;
      }

    case ENGINE_IO_BACKPRESSURE_DROP_NEWEST:
      g_assert_cmpuint (consecutive, ==, 64);
      g_assert_null (close_event_of (f, slow_sid));
      break;

    case ENGINE_IO_BACKPRESSURE_KEEP_QUEUING:
    default:
      g_assert_cmpuint (failures, ==, 0);
      g_assert_cmpuint (accepted->len, ==, attempts);
      /* Far over the mark, still queued. */
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), >, BP_HIGH_WATER / BP_MESSAGE_SIZE);
      break;
    }

  /* The client reads again: every accepted message, in order, once. */
  for (guint k = 0; k < accepted->len; k++)
    {
      guint n = g_array_index (accepted, guint, k);
      g_autofree char *text = test_ws_read_text (slow, LONG_TIMEOUT_MS);
      g_autofree char *expected = bp_message (n);

      test_require (text != NULL);
      if (text[0] != '4' || strcmp (text + 1, expected) != 0)
        {
          g_test_fail_printf ("accepted message %u (#%u): got “%.12s…” (%zu bytes)", k, n, text,
                              strlen (text));
          return;
        }
    }
  test_require (test_recorder_wait_count (f->lb.events, drain, drains + 1, TEST_TIMEOUT_MS));
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);

  /* And the session works normally. */
  {
    g_autofree char *text = bp_message (i + 1);
    g_autofree char *got = NULL;

    g_clear_error (&error);
    g_assert_true (engine_io_socket_send_text (socket, text, &error));
    g_assert_no_error (error);
    got = test_ws_read_text (slow, LONG_TIMEOUT_MS);
    test_require (got != NULL);
    g_assert_true (got[0] == '4' && strcmp (got + 1, text) == 0);
  }
  test_require (test_ws_send_text (slow, "4slow-again"));
  test_require (expect_text (slow, "4slow-again"));
  g_assert_null (close_event_of (f, slow_sid));
  g_assert_null (close_event_of (f, fast_sid));
}

static void
test_backpressure_close (Fixture       *f,
                         gconstpointer  data)
{
  g_test_summary ("A client that stops reading: with backpressure-policy CLOSE a send past "
                  "the high-water mark fails (QUEUE_FULL) and the session closes with "
                  "`transport error`, memory bounded; another session keeps echoing");
  backpressure (f, ENGINE_IO_BACKPRESSURE_CLOSE);
}

static void
test_backpressure_drop_newest (Fixture       *f,
                               gconstpointer  data)
{
  g_test_summary ("A client that stops reading: with DROP_NEWEST sends past the mark fail "
                  "with QUEUE_FULL and the session stays; once the client reads, every "
                  "accepted message arrives in order and ::drain fires");
  backpressure (f, ENGINE_IO_BACKPRESSURE_DROP_NEWEST);
}

static void
test_backpressure_keep_queuing (Fixture       *f,
                                gconstpointer  data)
{
  g_test_summary ("A client that stops reading: with KEEP_QUEUING sends keep succeeding past "
                  "the mark; once the client reads, everything arrives in order and ::drain "
                  "fires; another session keeps echoing meanwhile");
  backpressure (f, ENGINE_IO_BACKPRESSURE_KEEP_QUEUING);
}

/* ------------------------------------------------------------------ */
/* Upgrade under load                                                   */
/* ------------------------------------------------------------------ */

#define LOAD_SESSIONS      200
#define LOAD_THREADS       4
#define LOAD_PER_STEP      3   /* numbers sent by each side per step */
#define LOAD_CLIENT_TOTAL  (3 * LOAD_PER_STEP)
#define LOAD_SERVER_TOTAL  (4 * LOAD_PER_STEP)

typedef struct
{
  TestHttp       *http;
  TestWs         *ws;
  char           *sid;
  EngineIOSocket *socket;
  guint           server_sent;
  guint           server_received;
  guint           client_sent;
} LoadSession;

typedef struct
{
  Fixture     *f;
  int          eio;
  LoadSession *sessions;
  guint        n;
  GString     *errors;
} LoadWorker;

#define LOAD_FAIL(w, s, ...)                                                  \
  G_STMT_START {                                                              \
    g_string_append_printf ((w)->errors, "[%s] ", (s)->sid ? (s)->sid : "-"); \
    g_string_append_printf ((w)->errors, __VA_ARGS__);                        \
    g_string_append_c ((w)->errors, '\n');                                    \
    return FALSE;                                                             \
  } G_STMT_END

static gboolean
load_server_send (LoadWorker  *w,
                  LoadSession *s)
{
  for (guint i = 0; i < LOAD_PER_STEP; i++)
    {
      g_autofree char *text = g_strdup_printf ("s%u", s->server_sent);
      g_autoptr(GError) error = NULL;

      if (!engine_io_socket_send_text (s->socket, text, &error))
        LOAD_FAIL (w, s, "server send %s: %s", text, error->message);
      s->server_sent++;
    }
  return TRUE;
}

/* A packet the client received: it must be the next server number. */
static gboolean
load_take (LoadWorker  *w,
           LoadSession *s,
           const char  *packet,
           const char  *where)
{
  g_autofree char *expected = g_strdup_printf ("4s%u", s->server_received);

  if (strcmp (packet, expected) != 0)
    LOAD_FAIL (w, s, "%s: got “%s”, expected “%s”", where, packet, expected);
  s->server_received++;
  return TRUE;
}

static GPtrArray *
load_poll (LoadWorker  *w,
           LoadSession *s,
           TestResponse *response,
           GError       *error)
{
  g_autoptr(GError) local_error = NULL;
  GPtrArray *packets;

  if (response == NULL)
    {
      g_string_append_printf (w->errors, "[%s] poll failed: %s\n", s->sid, error ? error->message : "?");
      return NULL;
    }
  packets = test_eio_poll_packets_try (response, w->eio, &local_error);
  if (packets == NULL)
    g_string_append_printf (w->errors, "[%s] %s\n", s->sid, local_error->message);
  return packets;
}

static gboolean
load_post (LoadWorker  *w,
           LoadSession *s)
{
  g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *payload = NULL;
  g_autofree char *target = test_eio_target (w->eio, "polling", s->sid);
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  static const char *const headers[] = { "Content-Type", "text/plain;charset=UTF-8", NULL };

  for (guint i = 0; i < LOAD_PER_STEP; i++)
    g_ptr_array_add (packets, g_strdup_printf ("4c%u", s->client_sent++));
  g_ptr_array_add (packets, NULL);
  payload = test_eio_payload (w->eio, (const char * const *) packets->pdata);
  response = test_http_request (s->http, "POST", target, headers, payload, (gssize) strlen (payload),
                                LONG_TIMEOUT_MS, &error);
  if (response == NULL || response->status != 200)
    LOAD_FAIL (w, s, "POST failed: %s", error ? error->message : "not 200");
  return TRUE;
}

static gboolean
load_expect_noop (LoadWorker   *w,
                  LoadSession  *s,
                  TestResponse *response,
                  GError       *error,
                  const char   *where)
{
  g_autoptr(GPtrArray) packets = load_poll (w, s, response, error);

  if (packets == NULL)
    return FALSE;
  if (packets->len != 1 || strcmp (g_ptr_array_index (packets, 0), "6") != 0)
    LOAD_FAIL (w, s, "%s: expected only a noop, got %u packets, first “%s”", where, packets->len,
               packets->len > 0 ? (char *) g_ptr_array_index (packets, 0) : "");
  return TRUE;
}

static gboolean
load_step (LoadWorker  *w,
           LoadSession *s,
           guint        step)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *poll = s->sid ? test_eio_target (w->eio, "polling", s->sid) : NULL;

  switch (step)
    {
    case 0:  /* handshake */
      {
        g_autoptr(TestOpenPacket) open = NULL;
        g_autoptr(GPtrArray) packets = test_eio_polling_handshake_try (s->http, w->eio, NULL,
                                                                       LONG_TIMEOUT_MS, &open, &error);

        if (packets == NULL)
          LOAD_FAIL (w, s, "bad handshake: %s", error->message);
        if (packets->len != 1)
          LOAD_FAIL (w, s, "bad handshake: %u packets", packets->len);
        s->sid = g_strdup (open->sid);
        s->socket = fixture_socket (w->f, s->sid);
        if (s->socket == NULL)
          LOAD_FAIL (w, s, "no ::connection before the handshake response");
        return TRUE;
      }

    case 1:  /* both sides send over polling; the client polls them */
      {
        g_autoptr(TestResponse) response = NULL;
        g_autoptr(GPtrArray) packets = NULL;

        if (!load_server_send (w, s) || !load_post (w, s))
          return FALSE;
        response = test_http_request (s->http, "GET", poll, NULL, NULL, -1, LONG_TIMEOUT_MS, &error);
        packets = load_poll (w, s, response, error);
        if (packets == NULL)
          return FALSE;
        for (guint i = 0; i < packets->len; i++)
          if (!load_take (w, s, g_ptr_array_index (packets, i), "first poll"))
            return FALSE;
        if (s->server_received != s->server_sent)
          LOAD_FAIL (w, s, "first poll carried %u of %u messages", s->server_received, s->server_sent);
        /* A poll that waits through the probe. */
        if (!test_http_send (s->http, "GET", poll, NULL, NULL, -1, &error))
          LOAD_FAIL (w, s, "pending GET: %s", error->message);
        return TRUE;
      }

    case 2:  /* probe */
      {
        g_autofree char *target = test_eio_target (w->eio, "websocket", s->sid);
        g_autoptr(TestWsFrame) frame = NULL;
        g_autofree char *text = NULL;

        s->ws = test_ws_connect (w->f->lb.port, target, NULL, 0, NULL, &error);
        if (s->ws == NULL)
          LOAD_FAIL (w, s, "probe connect: %s", error->message);
        if (!test_ws_send_frame (s->ws, TEST_WS_TEXT, 0, "2probe", 6, &error))
          LOAD_FAIL (w, s, "probe send: %s", error->message);
        frame = test_ws_read_frame (s->ws, LONG_TIMEOUT_MS, &error);
        if (frame == NULL)
          LOAD_FAIL (w, s, "probe answer: %s", error->message);
        text = test_ws_frame_dup_text (frame);
        if (frame->opcode != TEST_WS_TEXT || strcmp (text, "3probe") != 0)
          LOAD_FAIL (w, s, "probe answered “%s”", text);
        return TRUE;
      }

    case 3:  /* during the upgrade */
      {
        g_autoptr(TestResponse) pending = test_http_receive (s->http, LONG_TIMEOUT_MS, &error);
        g_autoptr(TestResponse) during = NULL;

        if (!load_expect_noop (w, s, pending, error, "pending GET"))
          return FALSE;
        if (!load_server_send (w, s) || !load_post (w, s))
          return FALSE;
        during = test_http_request (s->http, "GET", poll, NULL, NULL, -1, LONG_TIMEOUT_MS, &error);
        return load_expect_noop (w, s, during, error, "GET during the upgrade");
      }

    case 4:  /* upgrade */
      if (!test_ws_send_frame (s->ws, TEST_WS_TEXT, 0, "5", 1, &error))
        LOAD_FAIL (w, s, "upgrade send: %s", error->message);
      return load_server_send (w, s);

    case 5:  /* both sides over the WebSocket */
      for (guint i = 0; i < LOAD_PER_STEP; i++)
        {
          g_autofree char *text = g_strdup_printf ("4c%u", s->client_sent++);
          if (!test_ws_send_frame (s->ws, TEST_WS_TEXT, 0, text, strlen (text), &error))
            LOAD_FAIL (w, s, "WebSocket send: %s", error->message);
        }
      return load_server_send (w, s);

    case 6:  /* collect */
      while (s->server_received < LOAD_SERVER_TOTAL)
        {
          g_autoptr(TestWsFrame) frame = test_ws_read_frame (s->ws, LONG_TIMEOUT_MS, &error);
          g_autofree char *text = NULL;

          if (frame == NULL)
            LOAD_FAIL (w, s, "WebSocket read after %u messages: %s", s->server_received, error->message);
          text = test_ws_frame_dup_text (frame);
          if (frame->opcode != TEST_WS_TEXT)
            LOAD_FAIL (w, s, "WebSocket frame opcode %u", frame->opcode);
          if (!load_take (w, s, text, "WebSocket"))
            return FALSE;
        }
      /* Nothing more: no duplicate. */
      if (test_ws_wait_readable (s->ws, 0))
        LOAD_FAIL (w, s, "more data after the last message");
      return TRUE;

    default:
      g_assert_not_reached ();
    }
}

#define LOAD_STEPS 7

static gpointer
load_worker (gpointer data)
{
  LoadWorker *w = data;

  for (guint step = 0; step < LOAD_STEPS; step++)
    for (guint i = 0; i < w->n; i++)
      if (!load_step (w, &w->sessions[i], step))
        return NULL;  /* the errors say why */
  return NULL;
}

static void
test_upgrade_load (Fixture       *f,
                   gconstpointer  data)
{
  const Params *p = data;
  LoadSession *sessions = g_new0 (LoadSession, LOAD_SESSIONS);
  LoadWorker workers[LOAD_THREADS];
  GThread *threads[LOAD_THREADS];
  gint64 start = g_get_monotonic_time ();
  gboolean failed = FALSE;

  g_test_summary ("200 sessions upgrade at once while both sides send numbered messages "
                  "(client POSTs and WebSocket frames, server sends from other threads): "
                  "every number arrives exactly once, in order, on both sides");
  f->numbered = LOAD_CLIENT_TOTAL;
  f->lb.watch |= TEST_WATCH_NO_MESSAGE;
  test_require (fixture_listen (f));

  for (guint i = 0; i < LOAD_SESSIONS; i++)
    sessions[i].http = test_http_new (f->lb.port);

  for (guint t = 0; t < LOAD_THREADS; t++)
    {
      workers[t].f = f;
      workers[t].eio = p->eio;
      workers[t].sessions = sessions + t * (LOAD_SESSIONS / LOAD_THREADS);
      workers[t].n = LOAD_SESSIONS / LOAD_THREADS;
      workers[t].errors = g_string_new (NULL);
      threads[t] = g_thread_new ("load-client", load_worker, &workers[t]);
    }
  for (guint t = 0; t < LOAD_THREADS; t++)
    {
      g_thread_join (threads[t]);
      if (workers[t].errors->len > 0)
        {
          g_test_fail_printf ("client thread %u:\n%s", t, workers[t].errors->str);
          failed = TRUE;
        }
      g_string_free (workers[t].errors, TRUE);
    }

  if (!failed)
    {
      g_auto(GStrv) all = NULL;

      if (!test_recorder_wait_count (f->lb.events, "cdone ", LOAD_SESSIONS, LONG_TIMEOUT_MS))
        g_test_fail_printf ("the server got every client message on %u of %u sessions",
                            test_recorder_count (f->lb.events, "cdone "), LOAD_SESSIONS);
      g_assert_cmpuint (test_recorder_count (f->lb.events, "seqerr "), ==, 0);
      g_assert_cmpuint (test_recorder_count (f->lb.events, "transport "), ==, LOAD_SESSIONS);
      g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 0);
      all = test_recorder_dup (f->lb.events);
      for (guint i = 0; all[i] != NULL; i++)
        if (g_str_has_prefix (all[i], "seqerr "))
          g_test_message ("%s", all[i]);
    }

  g_test_message ("%u sessions upgraded in %.1f s", LOAD_SESSIONS,
                  (g_get_monotonic_time () - start) / 1e6);

  for (guint i = 0; i < LOAD_SESSIONS; i++)
    {
      test_ws_free (sessions[i].ws);
      test_http_free (sessions[i].http);
      g_clear_object (&sessions[i].socket);
      g_free (sessions[i].sid);
    }
  g_free (sessions);
}

/* ------------------------------------------------------------------ */

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, params, func) \
  g_test_add (path, Fixture, params, fixture_setup, func, fixture_teardown)

  ADD ("/websocket/direct/open/v4", &v4, test_direct_open);
  ADD ("/websocket/direct/open/v3", &v3, test_direct_open);
  ADD ("/websocket/direct/echo-text/v4", &v4, test_direct_echo_text);
  ADD ("/websocket/direct/echo-text/v3", &v3, test_direct_echo_text);
  ADD ("/websocket/direct/binary/v4", &v4, test_direct_binary);
  ADD ("/websocket/direct/binary/v3", &v3, test_direct_binary);
  ADD ("/websocket/direct/fragmented", &v4, test_direct_fragmented);

  ADD ("/websocket/upgrade/v4", &v4, test_upgrade);
  ADD ("/websocket/upgrade/v3", &v3, test_upgrade);
  ADD ("/websocket/upgrade/timeout/v4", &v4, test_upgrade_timeout);
  ADD ("/websocket/upgrade/timeout/v3", &v3, test_upgrade_timeout);
  ADD ("/websocket/upgrade/probe-dies/v4", &v4, test_upgrade_probe_dies);
  ADD ("/websocket/upgrade/probe-dies/v3", &v3, test_upgrade_probe_dies);
  ADD ("/websocket/upgrade/probe-bad-packet", &v4, test_upgrade_probe_bad_packet);
  ADD ("/websocket/upgrade/close-during-upgrade/next-poll/v4", &v4, test_upgrade_close_next_poll);
  ADD ("/websocket/upgrade/close-during-upgrade/next-poll/v3", &v3, test_upgrade_close_next_poll);
  ADD ("/websocket/upgrade/close-during-upgrade/probe-completes/v4", &v4, test_upgrade_close_probe_completes);
  ADD ("/websocket/upgrade/close-during-upgrade/probe-completes/v3", &v3, test_upgrade_close_probe_completes);
  ADD ("/websocket/upgrade/heartbeat", &v4, test_upgrade_heartbeat);

  ADD ("/websocket/heartbeat/v4", &v4, test_heartbeat_v4);
  ADD ("/websocket/heartbeat/v4-client-ping", &v4, test_heartbeat_v4_client_ping);
  ADD ("/websocket/heartbeat/v3", &v3, test_heartbeat_v3);

  ADD ("/websocket/limits/max-payload", &v4, test_max_payload);
  ADD ("/websocket/errors/invalid-utf8", &v4, test_invalid_utf8);
  ADD ("/websocket/errors/unmasked", &v4, test_unmasked);
  ADD ("/websocket/errors/bad-opcode", &v4, test_bad_opcode);
  ADD ("/websocket/errors/bad-control-frame", &v4, test_bad_control_frame);
  ADD ("/websocket/ping-frame", &v4, test_ping_frame);
  ADD ("/websocket/permessage-deflate", &v4, test_permessage_deflate);
  ADD ("/websocket/bad-upgrade-requests", &v4, test_bad_upgrade_requests);

  ADD ("/websocket/close/client-close-frame/v4", &v4, test_close_frame_from_client);
  ADD ("/websocket/close/client-close-frame/v3", &v3, test_close_frame_from_client);
  ADD ("/websocket/close/abrupt", &v4, test_close_abrupt);
  ADD ("/websocket/close/close-packet/v4", &v4, test_close_packet);
  ADD ("/websocket/close/close-packet/v3", &v3, test_close_packet);
  ADD ("/websocket/close/server-shutdown", &v4, test_close_server_shutdown);
  ADD ("/websocket/close/forced/v4", &v4, test_close_forced);
  ADD ("/websocket/close/forced/v3", &v3, test_close_forced);
  ADD ("/websocket/close/forced-backlog", &v4, test_close_forced_backlog);

  ADD ("/websocket/backpressure/close", NULL, test_backpressure_close);
  ADD ("/websocket/backpressure/drop-newest", NULL, test_backpressure_drop_newest);
  ADD ("/websocket/backpressure/keep-queuing", NULL, test_backpressure_keep_queuing);

  ADD ("/websocket/upgrade/load/v4", &v4, test_upgrade_load);
  ADD ("/websocket/upgrade/load/v3", &v3, test_upgrade_load);

#undef ADD

  return g_test_run ();
}
