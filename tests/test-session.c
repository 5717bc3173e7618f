/* test-session.c: the session state machine (src/core/engineio-session-machine.c),
 * without sockets and with a fake clock
 *
 * Each test feeds scripted inputs at given times and compares the actions
 * the machine hands out, written one per line as strings:
 *
 *   timer-start ping 25000     a timer armed, deadline in ms of the fake clock
 *   timer-stop heartbeat
 *   received ping:probe        the session took a packet (type:text, or type:b<hex>)
 *   send pong:probe            a packet queued for the client
 *   heartbeat rtt 300          ::heartbeat, with the round trip in ms (v4)
 *   deliver message:hello      a message for the application
 *   close transport-error: DESCRIPTION
 *   send-on-probe pong:probe   written on the upgrade's probe
 *   release-poll-noop          polls get a noop (the waiting one now)
 *   emit-upgrading             ::upgrading
 *   complete-upgrade [closing] the probe is the transport
 *   give-up-probe 1002: DESCRIPTION   the probe closes (with that code), polling goes on
 *   mark-finishes-close        the polls being written finish the close when they end
 *   finish-close               the session ends
 *
 * The machine covers the heartbeat of both protocol versions, the rules
 * for a packet the client sent and the upgrade with its probe (the
 * /session/upgrade/ tests) and the close's timing (the /session/close/
 * tests: the linger, the bound on the last write, a shutdown's); the loopback suites (test-server.c,
 * test-websocket.c, the interop upgrade tests) keep the wiring tests over
 * real sockets.
 *
 * The /session/polling/ tests cover the polling rules
 * (src/core/engineio-session-polling.c): what a GET poll, a resumed poll,
 * a POST and a POST's next round get, when a waiting poll is woken, and
 * when a poll's client going away closes the session. They are pure
 * functions of a snapshot of the session, with no time in them: each test
 * states a session and checks the verdict (as a string).
 *
 * SPDX-License-Identifier: MIT
 */
#include <glib.h>

#include "engineio-session-machine-private.h"
#include "engineio-session-polling-private.h"

#define MS G_GINT64_CONSTANT (1000)

/* pingInterval, pingTimeout and the grace, in ms: all different, so a
 * deadline says which it was made of. */
#define INTERVAL 25000
#define TIMEOUT 20000
#define GRACE 1500
#define UPGRADE 10000
/* The close's linger and its write bound (connection-timeout). */
#define LINGER 2000
#define WRITE 30000

typedef struct
{
  EngineIOSessionTimings timings;
  EngineIOSessionMachine machine;
  EngineIOSessionActions actions;
} Fixture;

static void
fixture_init (Fixture                 *f,
              EngineIOProtocolVersion  version)
{
  /* (Again on a used fixture: its last actions go.) */
  engine_io_session_actions_clear (&f->actions);
  f->timings = (EngineIOSessionTimings) { INTERVAL, TIMEOUT, GRACE, UPGRADE, LINGER, WRITE };
  engine_io_session_machine_init (&f->machine, version, &f->timings);
}

static char *
packet_to_string (EngineIOPacket *packet)
{
  GString *s = g_string_new (engine_io_packet_type_to_string (engine_io_packet_get_packet_type (packet)));

  if (engine_io_packet_is_binary (packet))
    {
      gsize len = 0;
      const guint8 *data = g_bytes_get_data (engine_io_packet_get_data (packet), &len);

      g_string_append (s, ":b");
      for (gsize i = 0; i < len; i++)
        g_string_append_printf (s, "%02x", data[i]);
    }
  else
    {
      const char *text = engine_io_packet_get_text (packet, NULL);

      if (text != NULL && *text != '\0')
        g_string_append_printf (s, ":%s", text);
    }
  return g_string_free (s, FALSE);
}

static const char *
close_reason_to_string (EngineIOSessionCloseReason reason)
{
  switch (reason)
    {
    case ENGINE_IO_SESSION_CLOSE_PING_TIMEOUT: return "ping-timeout";
    case ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR: return "transport-error";
    case ENGINE_IO_SESSION_CLOSE_TRANSPORT_CLOSE: return "transport-close";
    default: return "?";
    }
}

/* The actions of the last input, one per line. */
static char *
actions_to_string (EngineIOSessionActions *actions)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < actions->len; i++)
    {
      EngineIOSessionAction *action = &actions->actions[i];
      g_autofree char *packet = NULL;

      if (i > 0)
        g_string_append_c (s, '\n');
      g_string_append (s, engine_io_session_action_kind_to_string (action->kind));
      switch (action->kind)
        {
        case ENGINE_IO_SESSION_ACTION_TIMER_START:
          g_string_append_printf (s, " %s %" G_GINT64_FORMAT, engine_io_session_timer_to_string (action->timer),
                                  action->deadline_us / MS);
          break;
        case ENGINE_IO_SESSION_ACTION_TIMER_STOP:
          g_string_append_printf (s, " %s", engine_io_session_timer_to_string (action->timer));
          break;
        case ENGINE_IO_SESSION_ACTION_RECEIVED:
        case ENGINE_IO_SESSION_ACTION_SEND:
        case ENGINE_IO_SESSION_ACTION_DELIVER:
        case ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE:
          packet = packet_to_string (action->packet);
          g_string_append_printf (s, " %s", packet);
          break;
        case ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP:
        case ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING:
        case ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE:
        case ENGINE_IO_SESSION_ACTION_FINISH_CLOSE:
          break;
        case ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE:
          if (action->closing)
            g_string_append (s, " closing");
          break;
        case ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE:
          g_string_append_printf (s, " %u", action->code);
          if (action->description != NULL)
            g_string_append_printf (s, ": %s", action->description);
          break;
        case ENGINE_IO_SESSION_ACTION_HEARTBEAT:
          if (action->rtt_us >= 0)
            g_string_append_printf (s, " rtt %" G_GINT64_FORMAT, action->rtt_us / MS);
          break;
        case ENGINE_IO_SESSION_ACTION_CLOSE:
          g_string_append_printf (s, " %s", close_reason_to_string (action->reason));
          if (action->client_closed)
            g_string_append (s, " (client)");
          if (action->description != NULL)
            g_string_append_printf (s, ": %s", action->description);
          break;
        default:
          g_assert_not_reached ();
        }
    }
  return g_string_free (s, FALSE);
}

/* Feeds @input at @now_ms and checks the actions against @expected (one
 * per line, "" for none). The actions stay in @f until the next feed. */
static void
feed_input (Fixture                    *f,
            const EngineIOSessionInput *input,
            gint64                      now_ms,
            const char                 *expected)
{
  g_autofree char *got = NULL;

  engine_io_session_actions_clear (&f->actions);
  engine_io_session_machine_handle (&f->machine, input, now_ms * MS, &f->actions);
  got = actions_to_string (&f->actions);
  g_assert_cmpstr (got, ==, expected);
}

static void
feed_start (Fixture    *f,
            gint64      now_ms,
            const char *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_START };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_timer (Fixture              *f,
            EngineIOSessionTimer  timer,
            gint64                now_ms,
            const char           *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_TIMER, .timer = timer };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_close (Fixture    *f,
            gint64      now_ms,
            const char *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_CLOSE };

  feed_input (f, &input, now_ms, expected);
}

/* The runtime's close: @linger, it waits for a last poll (else for
 * nothing); @probe_code, the close frame for a probe given up. */
static void
feed_close_full (Fixture    *f,
                 gboolean    linger,
                 guint16     probe_code,
                 gint64      now_ms,
                 const char *expected)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_CLOSE,
    .wait = linger ? ENGINE_IO_SESSION_WAIT_LINGER : ENGINE_IO_SESSION_WAIT_NOTHING,
    .probe_code = probe_code,
  };

  feed_input (f, &input, now_ms, expected);
}

/* The runtime's close, waiting for @wait; @shutdown: a server shutdown's. */
static void
feed_close_wait (Fixture                  *f,
                 EngineIOSessionCloseWait  wait,
                 gboolean                  shutdown,
                 gint64                    now_ms,
                 const char               *expected)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_CLOSE,
    .wait = wait,
    .shutdown = shutdown,
    .probe_code = 1000,
  };

  feed_input (f, &input, now_ms, expected);
}

/* The linger's end, with what the runtime saw when it claimed its flag. */
static void
feed_linger_end (Fixture    *f,
                 gboolean    polled,
                 gboolean    writing,
                 gint64      now_ms,
                 const char *expected)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_TIMER,
    .timer = ENGINE_IO_SESSION_TIMER_LINGER,
    .polled = polled,
    .writing = writing,
  };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_kind (Fixture                  *f,
           EngineIOSessionInputKind  kind,
           gint64                    now_ms,
           const char               *expected)
{
  EngineIOSessionInput input = { .kind = kind };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_shutdown (Fixture    *f,
               gboolean    websocket,
               gint64      now_ms,
               const char *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_SHUTDOWN, .websocket = websocket };

  feed_input (f, &input, now_ms, expected);
}

static void
assert_closing (Fixture                *f,
                EngineIOSessionClosing  closing)
{
  g_assert_cmpstr (engine_io_session_closing_to_string (engine_io_session_machine_get_closing (&f->machine)), ==,
                   engine_io_session_closing_to_string (closing));
  /* The linger timer is armed exactly while closing is LINGER, the
   * close-write timer exactly while it is WRITE. */
  g_assert_cmpint (engine_io_session_machine_timer_armed (&f->machine, ENGINE_IO_SESSION_TIMER_LINGER), ==,
                   closing == ENGINE_IO_SESSION_CLOSING_LINGER);
  g_assert_cmpint (engine_io_session_machine_timer_armed (&f->machine, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE), ==,
                   closing == ENGINE_IO_SESSION_CLOSING_WRITE);
}

static void
feed_probe_attached (Fixture    *f,
                     gint64      now_ms,
                     const char *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_probe_lost (Fixture    *f,
                 gboolean    stalled,
                 gint64      now_ms,
                 const char *expected)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_PROBE_LOST, .stalled = stalled };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_packet_full (Fixture        *f,
                  EngineIOPacket *packet,
                  gboolean        close_requested,
                  gint64          now_ms,
                  const char     *expected)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_PACKET,
    .packet = packet,
    .close_requested = close_requested,
  };

  feed_input (f, &input, now_ms, expected);
  /* Borrowed packets are only valid for the call: forget them before the
   * test drops its reference. */
  for (guint i = 0; i < f->actions.len; i++)
    if (f->actions.actions[i].kind != ENGINE_IO_SESSION_ACTION_SEND &&
        f->actions.actions[i].kind != ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE)
      f->actions.actions[i].packet = NULL;
}

/* A packet read on the upgrade's probe (@type NULL text: no data; @bad: a
 * frame that did not decode). */
static void
feed_probe_full (Fixture            *f,
                 gboolean            bad,
                 EngineIOPacketType  type,
                 const char         *text,
                 gint64              now_ms,
                 const char         *expected)
{
  g_autoptr(EngineIOPacket) packet = bad ? NULL
                                         : text != NULL ? engine_io_packet_new_text (type, text, -1)
                                                        : engine_io_packet_new (type);
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_PROBE_PACKET, .packet = packet };

  feed_input (f, &input, now_ms, expected);
}

static void
feed_probe (Fixture            *f,
            EngineIOPacketType  type,
            const char         *text,
            gint64              now_ms,
            const char         *expected)
{
  feed_probe_full (f, FALSE, type, text, now_ms, expected);
}

static void
assert_upgrade (Fixture                *f,
                EngineIOSessionUpgrade  upgrade)
{
  g_assert_cmpstr (engine_io_session_upgrade_to_string (engine_io_session_machine_get_upgrade (&f->machine)), ==,
                   engine_io_session_upgrade_to_string (upgrade));
  /* The upgrade timer is armed exactly while there is a probe. */
  g_assert_cmpint (engine_io_session_machine_timer_armed (&f->machine, ENGINE_IO_SESSION_TIMER_UPGRADE), ==,
                   upgrade == ENGINE_IO_SESSION_UPGRADE_PROBING ||
                   upgrade == ENGINE_IO_SESSION_UPGRADE_UPGRADING ||
                   upgrade == ENGINE_IO_SESSION_UPGRADE_KEPT);
}

/* A text packet of @type, fed at @now_ms. */
static void
feed_text (Fixture            *f,
           EngineIOPacketType  type,
           const char         *text,
           gint64              now_ms,
           const char         *expected)
{
  g_autoptr(EngineIOPacket) packet = text != NULL ? engine_io_packet_new_text (type, text, -1)
                                                  : engine_io_packet_new (type);

  feed_packet_full (f, packet, FALSE, now_ms, expected);
}

static void
fixture_clear (Fixture *f)
{
  engine_io_session_actions_clear (&f->actions);
}

static void
assert_armed (Fixture  *f,
              gboolean  ping,
              gboolean  heartbeat)
{
  g_assert_cmpint (engine_io_session_machine_timer_armed (&f->machine, ENGINE_IO_SESSION_TIMER_PING), ==, ping);
  g_assert_cmpint (engine_io_session_machine_timer_armed (&f->machine, ENGINE_IO_SESSION_TIMER_HEARTBEAT), ==, heartbeat);
}

/* v4 */

static void
test_session_v4_heartbeat (void)
{
  Fixture f = { 0, };

  g_test_summary ("v4: the server pings every pingInterval; the pong is due pingTimeout + the "
                  "grace after the ping; the pong stops the deadline, schedules the next ping "
                  "and reports the round trip");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_NEW);
  feed_start (&f, 0, "timer-start ping 25000");
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_OPEN);
  assert_armed (&f, TRUE, FALSE);

  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000,
              "send ping\n"
              "timer-start heartbeat 46500");
  g_assert_true (engine_io_session_machine_ping_outstanding (&f.machine));
  assert_armed (&f, FALSE, TRUE);

  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 25300,
             "received pong\n"
             "timer-stop heartbeat\n"
             "timer-start ping 50300\n"
             "heartbeat rtt 300");
  g_assert_false (engine_io_session_machine_ping_outstanding (&f.machine));
  assert_armed (&f, TRUE, FALSE);

  /* Messages do not move the heartbeat in v4. */
  feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "hi", 30000, "received message:hi\ndeliver message:hi");

  /* The second round trip, answered within the grace only. */
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 50300, "send ping\ntimer-start heartbeat 71800");
  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 71799,
             "received pong\n"
             "timer-stop heartbeat\n"
             "timer-start ping 96799\n"
             "heartbeat rtt 21499");
  fixture_clear (&f);
}

static void
test_session_v4_ping_timeout (void)
{
  Fixture f = { 0, };

  g_test_summary ("v4: no pong by the deadline (pingTimeout + the grace after the ping) closes "
                  "the session with ping-timeout, its timers stopped");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 1000, "timer-start ping 26000");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 26000, "send ping\ntimer-start heartbeat 47500");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_HEARTBEAT, 47500, "close ping-timeout");
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_CLOSED);
  assert_armed (&f, FALSE, FALSE);

  /* Too late: nothing more happens. */
  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 47501, "");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 50000, "");
  feed_close (&f, 47502, "finish-close");
  fixture_clear (&f);
}

static void
test_session_v4_unsolicited_pong (void)
{
  Fixture f = { 0, };

  g_test_summary ("v4: a pong nobody asked for is taken (::packet) but does not count: no "
                  "::heartbeat, the next ping stays due when it was");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 10000, "received pong");
  feed_text (&f, ENGINE_IO_PACKET_PONG, "probe", 20000, "received pong:probe");
  assert_armed (&f, TRUE, FALSE);

  /* The answer counts once; a second pong for the same ping does not. */
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000, "send ping\ntimer-start heartbeat 46500");
  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 25010,
             "received pong\ntimer-stop heartbeat\ntimer-start ping 50010\nheartbeat rtt 10");
  feed_text (&f, ENGINE_IO_PACKET_PONG, NULL, 25020, "received pong");
  assert_armed (&f, TRUE, FALSE);
  fixture_clear (&f);
}

static void
test_session_v4_ping_from_client (void)
{
  Fixture f = { 0, };

  g_test_summary ("v4: a ping from the client is a heartbeat in the wrong direction: the "
                  "session closes with transport-error and says so");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_text (&f, ENGINE_IO_PACKET_PING, NULL, 100,
             "received ping\n"
             "timer-stop ping\n"
             "close transport-error: invalid heartbeat direction: a v4 client sent a ping");
  assert_armed (&f, FALSE, FALSE);

  /* With a ping outstanding, its deadline is stopped. */
  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000, "send ping\ntimer-start heartbeat 46500");
  feed_text (&f, ENGINE_IO_PACKET_PING, "probe", 25001,
             "received ping:probe\n"
             "timer-stop heartbeat\n"
             "close transport-error: invalid heartbeat direction: a v4 client sent a ping");
  assert_armed (&f, FALSE, FALSE);
  fixture_clear (&f);
}

/* v3 */

static void
test_session_v3_ping_pong (void)
{
  Fixture f = { 0, };
  g_autoptr(EngineIOPacket) binary = NULL;
  g_autoptr(GBytes) bytes = NULL;
  static const guint8 data[] = { 0x00, 0x01, 0xfe };

  g_test_summary ("v3: the client pings, the server answers with a pong carrying the same "
                  "data (`2probe` -> `3probe`, binary too) and emits ::heartbeat; the server "
                  "never pings");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  assert_armed (&f, FALSE, TRUE);

  feed_text (&f, ENGINE_IO_PACKET_PING, NULL, 1000,
             "received ping\ntimer-start heartbeat 47500\nsend pong\nheartbeat");
  feed_text (&f, ENGINE_IO_PACKET_PING, "probe", 2000,
             "received ping:probe\ntimer-start heartbeat 48500\nsend pong:probe\nheartbeat");
  g_assert_false (engine_io_packet_is_binary (f.actions.actions[2].packet));
  feed_text (&f, ENGINE_IO_PACKET_PING, "é ✓", 3000,
             "received ping:é ✓\ntimer-start heartbeat 49500\nsend pong:é ✓\nheartbeat");

  bytes = g_bytes_new_static (data, sizeof data);
  binary = engine_io_packet_new_binary (ENGINE_IO_PACKET_PING, bytes);
  feed_packet_full (&f, binary, FALSE, 4000,
                    "received ping:b0001fe\ntimer-start heartbeat 50500\nsend pong:b0001fe\nheartbeat");
  g_assert_true (engine_io_packet_is_binary (f.actions.actions[2].packet));
  assert_armed (&f, FALSE, TRUE);
  fixture_clear (&f);
}

static void
test_session_v3_expiry (void)
{
  Fixture f = { 0, };
  static const EngineIOPacketType others[] = {
    ENGINE_IO_PACKET_OPEN, ENGINE_IO_PACKET_UPGRADE, ENGINE_IO_PACKET_NOOP,
  };

  g_test_summary ("v3: the session expires pingInterval + pingTimeout + the grace after the "
                  "last packet received, whatever its type; then it closes with ping-timeout");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "a", 10000,
             "received message:a\ntimer-start heartbeat 56500\ndeliver message:a");
  for (guint i = 0; i < G_N_ELEMENTS (others); i++)
    {
      g_autofree char *expected = g_strdup_printf ("received %s\ntimer-start heartbeat %u",
                                                   engine_io_packet_type_to_string (others[i]),
                                                   20000 + i + INTERVAL + TIMEOUT + GRACE);

      feed_text (&f, others[i], NULL, 20000 + i, expected);
    }
  assert_armed (&f, FALSE, TRUE);
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_HEARTBEAT, 66502, "close ping-timeout");
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_CLOSED);
  assert_armed (&f, FALSE, FALSE);
  fixture_clear (&f);
}

static void
test_session_v3_pong_from_client (void)
{
  Fixture f = { 0, };

  g_test_summary ("v3: a pong from the client is a heartbeat in the wrong direction: the "
                  "session closes with transport-error and says so");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_text (&f, ENGINE_IO_PACKET_PONG, "probe", 100,
             "received pong:probe\n"
             "timer-stop heartbeat\n"
             "close transport-error: invalid heartbeat direction: a v3 client sent a pong");
  assert_armed (&f, FALSE, FALSE);
  fixture_clear (&f);
}

/* Both */

static void
test_session_close_packet (void)
{
  Fixture f = { 0, };

  g_test_summary ("A close packet from the client closes the session with transport-close, "
                  "marked as the client's, its timers stopped (both versions)");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_text (&f, ENGINE_IO_PACKET_CLOSE, NULL, 10,
             "received close\ntimer-stop ping\nclose transport-close (client)");
  assert_armed (&f, FALSE, FALSE);
  feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "late", 20, "");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_text (&f, ENGINE_IO_PACKET_CLOSE, NULL, 10,
             "received close\ntimer-stop heartbeat\nclose transport-close (client)");
  assert_armed (&f, FALSE, FALSE);
  fixture_clear (&f);
}

static void
test_session_messages_in_order (void)
{
  Fixture f = { 0, };
  EngineIOPacket *packets[4];
  g_autoptr(GBytes) bytes = NULL;
  static const guint8 data[] = { 1, 2 };

  g_test_summary ("Messages are delivered in the order they came, text and binary, each "
                  "after the session took it (::packet first)");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  packets[0] = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "one", -1);
  bytes = g_bytes_new_static (data, sizeof data);
  packets[1] = engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, bytes);
  packets[2] = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "", 0);
  packets[3] = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "three", -1);
  for (guint i = 0; i < G_N_ELEMENTS (packets); i++)
    {
      EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_PACKET, .packet = packets[i] };

      engine_io_session_actions_clear (&f.actions);
      engine_io_session_machine_handle (&f.machine, &input, i * MS, &f.actions);
      g_assert_cmpuint (f.actions.len, ==, 2);
      g_assert_cmpint (f.actions.actions[0].kind, ==, ENGINE_IO_SESSION_ACTION_RECEIVED);
      g_assert_true (f.actions.actions[0].packet == packets[i]);
      g_assert_cmpint (f.actions.actions[1].kind, ==, ENGINE_IO_SESSION_ACTION_DELIVER);
      g_assert_true (f.actions.actions[1].packet == packets[i]);
      f.actions.len = 0;
    }
  for (guint i = 0; i < G_N_ELEMENTS (packets); i++)
    engine_io_packet_unref (packets[i]);
  fixture_clear (&f);
}

static void
test_session_close_requested (void)
{
  Fixture f = { 0, };
  g_autoptr(EngineIOPacket) message = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "x", -1);
  g_autoptr(EngineIOPacket) ping = engine_io_packet_new (ENGINE_IO_PACKET_PING);
  g_autoptr(EngineIOPacket) pong = engine_io_packet_new (ENGINE_IO_PACKET_PONG);

  g_test_summary ("A close requested (not begun yet) overtakes the packets the handlers have "
                  "not seen: they are dropped, heartbeat included; the timers keep running "
                  "until the close begins");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000, "send ping\ntimer-start heartbeat 46500");
  feed_packet_full (&f, message, TRUE, 25001, "");
  feed_packet_full (&f, pong, TRUE, 25002, "");
  g_assert_true (engine_io_session_machine_ping_outstanding (&f.machine));
  assert_armed (&f, FALSE, TRUE);
  feed_close (&f, 25003, "timer-stop heartbeat\nfinish-close");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_packet_full (&f, ping, TRUE, 10, "");
  feed_packet_full (&f, message, TRUE, 20, "");
  assert_armed (&f, FALSE, TRUE);
  fixture_clear (&f);
}

static void
test_session_not_open (void)
{
  Fixture f = { 0, };

  g_test_summary ("Nothing happens before the session starts, nor after it closed (for any "
                  "reason): no packet handled, no timer, no second close");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "early", 0, "");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 0, "");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_HEARTBEAT, 0, "");
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_NEW);

  /* Closed before it started (a handshake that failed): nothing to stop. */
  feed_close (&f, 0, "finish-close");
  feed_start (&f, 1, "");
  g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_CLOSED);

  /* Started twice: the second is nothing. */
  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_start (&f, 1, "");
  /* A timer that is not armed (stale) does nothing. */
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 2, "");
  feed_close (&f, 3, "timer-stop heartbeat\nfinish-close");
  feed_close (&f, 4, "");
  feed_text (&f, ENGINE_IO_PACKET_PING, NULL, 5, "");
  feed_text (&f, ENGINE_IO_PACKET_CLOSE, NULL, 6, "");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_HEARTBEAT, 7, "");
  fixture_clear (&f);
}

static void
test_session_close_stops_timers (void)
{
  Fixture f = { 0, };

  g_test_summary ("The runtime's close (the application, a shutdown, a transport) stops the "
                  "timers the machine armed, whichever they are");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_close (&f, 10, "timer-stop ping\nfinish-close");
  assert_armed (&f, FALSE, FALSE);

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000, "send ping\ntimer-start heartbeat 46500");
  feed_close (&f, 25001, "timer-stop heartbeat\nfinish-close");
  g_assert_false (engine_io_session_machine_ping_outstanding (&f.machine));
  assert_armed (&f, FALSE, FALSE);

  fixture_init (&f, ENGINE_IO_PROTOCOL_V3);
  feed_start (&f, 0, "timer-start heartbeat 46500");
  feed_close (&f, 10, "timer-stop heartbeat\nfinish-close");
  assert_armed (&f, FALSE, FALSE);
  fixture_clear (&f);
}

static void
test_session_send_not_taken (void)
{
  Fixture f = { 0, };

  g_test_summary ("A packet to send that the executor did not take is dropped with the "
                  "actions (no leak; the ASan build checks)");

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_PING, 25000, "send ping\ntimer-start heartbeat 46500");
  g_assert_nonnull (f.actions.actions[0].packet);
  engine_io_session_actions_clear (&f.actions);
  g_assert_cmpuint (f.actions.len, ==, 0);
  fixture_clear (&f);
}

/* The upgrade (PROTOCOL.md, upgrade with probe) */

#define PROBE_ANSWERED "send-on-probe pong:probe\nrelease-poll-noop\nemit-upgrading"
#define UNEXPECTED "timer-stop upgrade\ngive-up-probe 1002: unexpected packet during upgrade"

/* An open session (v4: ping armed at 25000; v3: expiry at 46500) with a
 * probe attached at 100. */
static void
start_probing (Fixture                 *f,
               EngineIOProtocolVersion  version)
{
  fixture_init (f, version);
  feed_start (f, 0, version == ENGINE_IO_PROTOCOL_V4 ? "timer-start ping 25000" : "timer-start heartbeat 46500");
  feed_probe_attached (f, 100, "timer-start upgrade 10100");
  assert_upgrade (f, ENGINE_IO_SESSION_UPGRADE_PROBING);
}

static void
test_upgrade_probe (void)
{
  g_test_summary ("PROTOCOL.md: `2probe` on the probe is answered `3probe` on it, the waiting "
                  "poll gets a noop and ::upgrading is emitted; the client's `5` stops the "
                  "deadline and completes the upgrade (the executor flushes the queue on the "
                  "WebSocket after it: the action is last); both protocol versions, the "
                  "heartbeat untouched");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_UPGRADING);
      /* Probe packets are not the session's: not RECEIVED, no expiry moved. */
      assert_armed (&f, version == ENGINE_IO_PROTOCOL_V4, version == ENGINE_IO_PROTOCOL_V3);
      /* Polling goes on meanwhile: the transport's packets as ever. */
      feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "polled", 250,
                 version == ENGINE_IO_PROTOCOL_V4 ? "received message:polled\ndeliver message:polled"
                                                  : "received message:polled\ntimer-start heartbeat 46750\n"
                                                    "deliver message:polled");
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 300, "timer-stop upgrade\ncomplete-upgrade");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_DONE);
      assert_armed (&f, version == ENGINE_IO_PROTOCOL_V4, version == ENGINE_IO_PROTOCOL_V3);
      g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_OPEN);

      /* Upgraded: no probe any more; a second attach or `5` is nothing. */
      feed_probe_attached (&f, 400, "");
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 500, "");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_DONE);
      fixture_clear (&f);
    }
}

static void
test_upgrade_probe_twice (void)
{
  Fixture f = { 0, };

  g_test_summary ("A second `2probe` while upgrading is answered again (as the runtime always "
                  "did); the deadline is not moved");

  start_probing (&f, ENGINE_IO_PROTOCOL_V4);
  feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
  feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 300, PROBE_ANSWERED);
  assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_UPGRADING);
  feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "give-up-probe 1000: upgrade timeout");
  fixture_clear (&f);
}

static void
test_upgrade_without_probe (void)
{
  Fixture f = { 0, };

  g_test_summary ("`5` before `3probe` went out gives the probe up (polling goes on); `5` with "
                  "no probe at all is nothing (on the transport, a packet the session ignores)");

  for (guint v = 0; v < 2; v++)
    {
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 200, UNEXPECTED);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 300, "");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
    }

  fixture_init (&f, ENGINE_IO_PROTOCOL_V4);
  feed_start (&f, 0, "timer-start ping 25000");
  feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 10, "");
  feed_text (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 20, "received upgrade");
  assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
  fixture_clear (&f);
}

static void
test_upgrade_give_up (void)
{
  static const struct {
    const char *name;
    const char *expected;
  } cases[] = {
    { "message", UNEXPECTED },
    { "ping-other", UNEXPECTED },
    { "noop", UNEXPECTED },
    { "bad", "timer-stop upgrade\ngive-up-probe 1002: bad packet during upgrade" },
    { "closed", "timer-stop upgrade\ngive-up-probe 0" },
    { "stalled", "timer-stop upgrade\ngive-up-probe 1008" },
  };

  g_test_summary ("During the probe (before or after `3probe`), an unexpected packet, a bad "
                  "packet, the probe closing or stalling give the probe up with the right close "
                  "code; polling goes on (the heartbeat untouched) and another probe may come");

  for (guint v = 0; v < 2; v++)
    for (guint answered = 0; answered < 2; answered++)
      for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
        {
          Fixture f = { 0, };
          EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
          const char *name = cases[i].name;

          g_test_message ("v%d, %s, %s", version, answered ? "upgrading" : "probing", name);
          start_probing (&f, version);
          if (answered)
            feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);

          if (g_str_equal (name, "message"))
            feed_probe (&f, ENGINE_IO_PACKET_MESSAGE, "hello", 300, cases[i].expected);
          else if (g_str_equal (name, "ping-other"))
            feed_probe (&f, ENGINE_IO_PACKET_PING, "probe?", 300, cases[i].expected);
          else if (g_str_equal (name, "noop"))
            feed_probe (&f, ENGINE_IO_PACKET_NOOP, NULL, 300, cases[i].expected);
          else if (g_str_equal (name, "bad"))
            feed_probe_full (&f, TRUE, 0, NULL, 300, cases[i].expected);
          else
            feed_probe_lost (&f, g_str_equal (name, "stalled"), 300, cases[i].expected);

          assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
          assert_armed (&f, version == ENGINE_IO_PROTOCOL_V4, version == ENGINE_IO_PROTOCOL_V3);
          g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_OPEN);
          /* Given up: more of the same is nothing; the deadline is gone. */
          feed_probe_lost (&f, FALSE, 400, "");
          feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 400, "");
          feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "");
          /* Another probe may come, and succeed. */
          feed_probe_attached (&f, 500, "timer-start upgrade 10500");
          feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 600, PROBE_ANSWERED);
          feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 700, "timer-stop upgrade\ncomplete-upgrade");
          fixture_clear (&f);
        }
}

static void
test_upgrade_timeout (void)
{
  g_test_summary ("The upgrade timeout gives the probe up (close frame 1000, \"upgrade "
                  "timeout\"), before or after `3probe`; polling goes on");

  for (guint v = 0; v < 2; v++)
    for (guint answered = 0; answered < 2; answered++)
      {
        Fixture f = { 0, };
        EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

        start_probing (&f, version);
        if (answered)
          feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
        feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "give-up-probe 1000: upgrade timeout");
        assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
        assert_armed (&f, version == ENGINE_IO_PROTOCOL_V4, version == ENGINE_IO_PROTOCOL_V3);
        /* Stale firings, and the probe's packets after it, are nothing. */
        feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10101, "");
        feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 10102, "");
        fixture_clear (&f);
      }
}

static void
test_upgrade_kept_through_close (void)
{
  g_test_summary ("PROTOCOL.md: a probe answered when the session closes with a linger is kept: "
                  "only `5` is expected, and completes the upgrade while closing; anything else, "
                  "the probe lost, its deadline or the close finishing give it up");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
      g_autofree char *stop = g_strdup_printf ("%s\ntimer-start linger 2300",
                                               version == ENGINE_IO_PROTOCOL_V4 ? "timer-stop ping"
                                                                                : "timer-stop heartbeat");

      /* `5` completes it. */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      g_assert_cmpint (engine_io_session_machine_get_state (&f.machine), ==, ENGINE_IO_SESSION_CLOSED);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_KEPT);
      assert_armed (&f, FALSE, FALSE);
      /* The transport's packets are over. */
      feed_text (&f, ENGINE_IO_PACKET_MESSAGE, "late", 350, "");
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 400, "timer-stop upgrade\ncomplete-upgrade closing");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_DONE);
      /* The runtime claimed the linger for it: the WebSocket's close ends it. */
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_LINGER_TAKEN, 400, "timer-stop linger");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WEBSOCKET);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 450, "finish-close");
      /* The close finishing: nothing left to give up. */
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_FINISHED, 500, "");

      /* Only `5`: a second `2probe` gives it up. */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 400, UNEXPECTED);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 500, "");

      /* A bad packet, the probe closing, stalling, its deadline. */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      feed_probe_full (&f, TRUE, 0, NULL, 400, "timer-stop upgrade\ngive-up-probe 1002: bad packet during upgrade");
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      feed_probe_lost (&f, TRUE, 400, "timer-stop upgrade\ngive-up-probe 1008");
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "give-up-probe 1000: upgrade timeout");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);

      /* The close finishing (its last poll came, or its linger ended). */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, TRUE, 1000, 300, stop);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_FINISHED, 2000, "timer-stop upgrade\ngive-up-probe 0\ntimer-stop linger");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 2001, "");
      fixture_clear (&f);
    }
}

static void
test_upgrade_close_while_probing (void)
{
  g_test_summary ("A close that does not keep the probe (not answered yet, or no linger) stops "
                  "the upgrade timer and gives the probe up with the close's code; so does the "
                  "runtime's close after the machine's own (the client's close packet), unless it keeps "
                  "an answered probe");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
      const char *stop = version == ENGINE_IO_PROTOCOL_V4 ? "timer-stop ping" : "timer-stop heartbeat";
      g_autofree char *give_up = g_strdup_printf ("%s\ntimer-stop upgrade\ngive-up-probe 1001", stop);
      g_autofree char *give_up_linger = g_strdup_printf ("%s\ntimer-start linger 2300", give_up);
      g_autofree char *give_up_finish = g_strdup_printf ("%s\nfinish-close", give_up);
      g_autofree char *client_close = g_strdup_printf ("received close\n%s\nclose transport-close (client)", stop);

      /* Not answered: a linger does not keep it. */
      start_probing (&f, version);
      feed_close_full (&f, TRUE, 1001, 300, give_up_linger);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 400, "");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_UPGRADE, 10100, "");

      /* Answered, but the close does not linger. */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_close_full (&f, FALSE, 1001, 300, give_up_finish);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_NONE);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 400, "");

      /* The machine's own close leaves the probe to the runtime's close. */
      start_probing (&f, version);
      feed_probe (&f, ENGINE_IO_PACKET_PING, "probe", 200, PROBE_ANSWERED);
      feed_text (&f, ENGINE_IO_PACKET_CLOSE, NULL, 300, client_close);
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_UPGRADING);
      feed_close_full (&f, TRUE, 1000, 300, "timer-start linger 2300");
      assert_upgrade (&f, ENGINE_IO_SESSION_UPGRADE_KEPT);
      feed_probe (&f, ENGINE_IO_PACKET_UPGRADE, NULL, 400, "timer-stop upgrade\ncomplete-upgrade closing");
      fixture_clear (&f);
    }
}

/* The close's timing (engineio-session-machine.c, the table's third part) */

/* An open session of @version (started at 0), closed at 100 waiting for
 * @wait; @shutdown: a server shutdown's close. */
static void
start_closed (Fixture                  *f,
              EngineIOProtocolVersion   version,
              EngineIOSessionCloseWait  wait,
              gboolean                  shutdown,
              const char               *expected_tail)
{
  const char *stop = version == ENGINE_IO_PROTOCOL_V4 ? "timer-stop ping" : "timer-stop heartbeat";
  g_autofree char *expected = g_strdup_printf ("%s%s%s", stop, *expected_tail != '\0' ? "\n" : "", expected_tail);

  fixture_init (f, version);
  feed_start (f, 0, version == ENGINE_IO_PROTOCOL_V4 ? "timer-start ping 25000" : "timer-start heartbeat 46500");
  feed_close_wait (f, wait, shutdown, 100, expected);
  g_assert_cmpint (engine_io_session_machine_get_state (&f->machine), ==, ENGINE_IO_SESSION_CLOSED);
  assert_armed (f, FALSE, FALSE);
}

static void
test_close_linger_last_poll (void)
{
  g_test_summary ("A closing polling session lingers min(2 s, pingTimeout) for its last poll; "
                  "one that came is answered: its write gets connection-timeout from the linger's "
                  "end, and the end of its request finishes the close (once)");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      /* The last poll came, its write ends after the linger. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_LINGER);
      feed_linger_end (&f, TRUE, TRUE, 2100, "timer-start close-write 32100");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WRITE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 2500, "timer-stop close-write\nfinish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 2501, "");
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_FINISHED, 2502, "");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 32100, "");

      /* Its write ended within the linger. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 600, "timer-stop linger\nfinish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      feed_linger_end (&f, TRUE, FALSE, 2100, "");
      /* A second close is nothing. */
      feed_close_wait (&f, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, 2200, "");

      /* Its write never ends: the bound finishes the close. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, TRUE, FALSE, 2100, "timer-start close-write 32100");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 32100, "finish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 32200, "");

      /* The linger is no longer than the client's ping timeout. */
      engine_io_session_actions_clear (&f.actions);
      f.timings.ping_timeout_ms = 500;
      engine_io_session_machine_init (&f.machine, version, &f.timings);
      feed_start (&f, 0, version == ENGINE_IO_PROTOCOL_V4 ? "timer-start ping 25000" : "timer-start heartbeat 27000");
      feed_close_wait (&f, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, 100,
                       version == ENGINE_IO_PROTOCOL_V4 ? "timer-stop ping\ntimer-start linger 600"
                                                        : "timer-stop heartbeat\ntimer-start linger 600");
      fixture_clear (&f);
    }
}

static void
test_close_linger_no_poll (void)
{
  g_test_summary ("No last poll within the linger: the close finishes at its end, unless a poll "
                  "taken before the close is still being written: then that poll's end finishes "
                  "it (it is marked so), bound by connection-timeout");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      /* Nothing in flight: it finishes at the linger's end. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, FALSE, FALSE, 2100, "finish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 2101, "");
      feed_shutdown (&f, FALSE, 2102, "");

      /* A poll in flight at the linger's end. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, FALSE, TRUE, 2100, "mark-finishes-close\ntimer-start close-write 32100");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WRITE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 3000, "timer-stop close-write\nfinish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);

      /* ... whose write never ends. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, FALSE, TRUE, 2100, "mark-finishes-close\ntimer-start close-write 32100");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 32100, "finish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      fixture_clear (&f);
    }
}

static void
test_close_waits (void)
{
  g_test_summary ("What the runtime's close waits for: nothing (it finishes at once), the resumed "
                  "poll (its write bound by the linger plus connection-timeout), the WebSocket's "
                  "close (its own timeout: no timer); the end of the wait finishes the close once");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_NOTHING, FALSE, "finish-close");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 200, "");

      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_POLL, FALSE, "timer-start close-write 32100");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WRITE);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 200, "timer-stop close-write\nfinish-close");
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_POLL, FALSE, "timer-start close-write 32100");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 32100, "finish-close");

      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_WEBSOCKET, FALSE, "");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WEBSOCKET);
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_LINGER_TAKEN, 150, "");
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 200, "finish-close");
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_WAIT_OVER, 201, "");
      feed_kind (&f, ENGINE_IO_SESSION_INPUT_FINISHED, 202, "");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_DONE);
      fixture_clear (&f);
    }
}

static void
test_close_shutdown (void)
{
  g_test_summary ("A server shutdown's close bounds the write its close waits for with 2 s "
                  "instead of connection-timeout (a client that does not read would hold the "
                  "shutdown for its whole wait)");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      /* The last poll came: 2 s from the linger's end. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, TRUE, "timer-start linger 2100");
      feed_linger_end (&f, TRUE, FALSE, 2100, "timer-start close-write 4100");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 4100, "finish-close");
      /* A poll in flight. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, TRUE, "timer-start linger 2100");
      feed_linger_end (&f, FALSE, TRUE, 2100, "mark-finishes-close\ntimer-start close-write 4100");
      /* The resumed poll: the linger and 2 s. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_POLL, TRUE, "timer-start close-write 4100");
      /* (The shutdown reaching it again is nothing.) */
      feed_shutdown (&f, FALSE, 200, "");
      fixture_clear (&f);
    }
}

static void
test_close_shutdown_closing (void)
{
  g_test_summary ("A server shutdown reaching a session closing already (for another reason) "
                  "bounds the write its close waits for with 2 s from now; a linger still "
                  "running bounds it so when it ends; the WebSocket transport (its own close timeout) is left "
                  "alone; once");

  for (guint v = 0; v < 2; v++)
    {
      Fixture f = { 0, };
      EngineIOProtocolVersion version = v == 0 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;

      /* Its resumed poll's write (bound at 32100): 2 s from now. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_POLL, FALSE, "timer-start close-write 32100");
      feed_shutdown (&f, FALSE, 1000, "timer-start close-write 3000");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WRITE);
      feed_shutdown (&f, FALSE, 1500, "");
      feed_timer (&f, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, 3000, "finish-close");

      /* Its last poll's write, after the linger. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, TRUE, FALSE, 2100, "timer-start close-write 32100");
      feed_shutdown (&f, FALSE, 5000, "timer-start close-write 7000");

      /* A linger running: its end bounds the write with 2 s. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_shutdown (&f, FALSE, 1000, "");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_LINGER);
      feed_linger_end (&f, TRUE, FALSE, 2100, "timer-start close-write 4100");

      /* The WebSocket transport there: left alone (its own close timeout). */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_WEBSOCKET, FALSE, "");
      feed_shutdown (&f, TRUE, 1000, "");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WEBSOCKET);
      /* A last poll's write, a WebSocket there all the same (a runtime
       * that counts a probe kept through the close as one): bound, as
       * the close does not wait for it (it was left alone, for the
       * close's own 30 s bound). */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_LINGER, FALSE, "timer-start linger 2100");
      feed_linger_end (&f, TRUE, FALSE, 2100, "timer-start close-write 32100");
      feed_shutdown (&f, TRUE, 5000, "timer-start close-write 7000");
      assert_closing (&f, ENGINE_IO_SESSION_CLOSING_WRITE);
      /* ... gone: bound from now. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_WEBSOCKET, FALSE, "");
      feed_shutdown (&f, FALSE, 1000, "timer-start close-write 3000");

      /* Finished already, or not closing: nothing. */
      start_closed (&f, version, ENGINE_IO_SESSION_WAIT_NOTHING, FALSE, "finish-close");
      feed_shutdown (&f, FALSE, 1000, "");
      fixture_init (&f, version);
      feed_shutdown (&f, FALSE, 0, "");
      fixture_clear (&f);
    }
}

/* Polling rules (src/core/engineio-session-polling.c) */

/* An open polling session with nothing queued and no request active. */
static EngineIOPollingView
open_view (void)
{
  return (EngineIOPollingView) { .state = ENGINE_IO_POLLING_OPEN, .polling = TRUE };
}

static void
assert_poll (const EngineIOPollingView *view,
             const char                *expected)
{
  g_assert_cmpstr (engine_io_poll_verdict_to_string (engine_io_polling_decide_poll (view)), ==, expected);
}

/* PROTOCOL.md, Long-polling: "A GET returns every queued packet at once,
 * or waits until there is one (never pins a server thread while
 * waiting)." */
static void
test_polling_get (void)
{
  EngineIOPollingView view = open_view ();

  assert_poll (&view, "suspend");
  view.queued = TRUE;
  assert_poll (&view, "packets");
  /* A response carrying packets is still being written: the next poll
   * waits for it (taking more would reorder them). */
  view.poll_in_flight = TRUE;
  assert_poll (&view, "suspend");
  /* Even when the transport is no longer polling's: the request routing
   * refuses those before they reach the session. */
  view = open_view ();
  view.polling = FALSE;
  assert_poll (&view, "suspend");
}

/* PROTOCOL.md, Long-polling: "A second concurrent GET on one session: 400
 * for it, `1` for the first, session closed." */
static void
test_polling_get_overlap (void)
{
  EngineIOPollingView view = open_view ();

  view.poll_waiting = TRUE;
  assert_poll (&view, "overlap");
  /* Before the upgrade's noop and before the queue. */
  view.upgrading = TRUE;
  view.queued = TRUE;
  assert_poll (&view, "overlap");
  g_assert_cmpstr (ENGINE_IO_POLLING_OVERLAPPING_GETS_DESCRIPTION, ==, "overlapping polls from the client");
}

/* PROTOCOL.md, Upgrade 2: "The pending GET (and any GET that arrives
 * before the upgrade ends) is answered with `6` promptly." What is queued
 * waits for the WebSocket. */
static void
test_polling_get_upgrading (void)
{
  EngineIOPollingView view = open_view ();

  view.upgrading = TRUE;
  assert_poll (&view, "noop");
  view.queued = TRUE;
  assert_poll (&view, "noop");
}

/* A session that is not open: 400 unknown sid, but for the one poll a
 * lingering close waits for (PROTOCOL.md, Long-polling: "answer it with
 * `1` when the session closes"), which takes what was queued and `1`. */
static void
test_polling_get_closing (void)
{
  EngineIOPollingView view = open_view ();

  view.state = ENGINE_IO_POLLING_OPENING;
  assert_poll (&view, "unknown-sid");
  view.state = ENGINE_IO_POLLING_CLOSED;
  assert_poll (&view, "unknown-sid");
  view.state = ENGINE_IO_POLLING_CLOSING;
  assert_poll (&view, "unknown-sid");
  view.lingering = TRUE;
  assert_poll (&view, "last");
  view.closed_for_application = TRUE;
  view.upgrading = TRUE;   /* a probe kept through the close: the poll still gets `1` */
  assert_poll (&view, "last");
  /* A poll already waits for the close: the next is refused, the session
   * is closing already. */
  view.poll_waiting = TRUE;
  assert_poll (&view, "unknown-sid");
  /* Lingering is only ever set while closing. */
  view = open_view ();
  view.lingering = TRUE;
  assert_poll (&view, "suspend");
}

/* A suspended poll, resumed: released for an upgrade it answers `6`;
 * woken while closing it is the last poll (all that is queued, then the
 * session ends); otherwise it carries what was queued. */
static void
test_polling_resumed (void)
{
  EngineIOPollingView view = open_view ();

#define RESUMED(noop) engine_io_poll_verdict_to_string (engine_io_polling_decide_resumed (&view, (noop)))
  g_assert_cmpstr (RESUMED (FALSE), ==, "packets");
  g_assert_cmpstr (RESUMED (TRUE), ==, "noop");
  view.state = ENGINE_IO_POLLING_CLOSING;
  g_assert_cmpstr (RESUMED (FALSE), ==, "last");
  /* The client's close packet while its GET waits: the reference answers
   * that GET with a noop, not `1`. */
  g_assert_cmpstr (RESUMED (TRUE), ==, "noop");
  view.state = ENGINE_IO_POLLING_CLOSED;
  g_assert_cmpstr (RESUMED (FALSE), ==, "packets");
#undef RESUMED
}

/* Packets queued while a poll waits wake it (PROTOCOL.md, Long-polling:
 * "or waits until there is one"), but not while another response is
 * being written (unless the session closes: the close packet must go
 * out), and never during an upgrade (the poll gets `6` instead). */
static void
test_polling_wake (void)
{
  EngineIOPollingView view = open_view ();

  g_assert_false (engine_io_polling_wakes_poll (&view, FALSE));  /* no poll */
  view.poll_waiting = TRUE;
  g_assert_true (engine_io_polling_wakes_poll (&view, TRUE));
  g_assert_false (engine_io_polling_wakes_poll (&view, FALSE));  /* resumed already */
  view.poll_in_flight = TRUE;
  g_assert_false (engine_io_polling_wakes_poll (&view, TRUE));
  view.state = ENGINE_IO_POLLING_CLOSING;
  g_assert_true (engine_io_polling_wakes_poll (&view, TRUE));
  view.upgrading = TRUE;
  g_assert_false (engine_io_polling_wakes_poll (&view, TRUE));

  /* A poll response written: the waiting poll takes what was queued
   * meanwhile, while open. */
  view = open_view ();
  g_assert_false (engine_io_polling_written_kicks (&view));
  view.queued = TRUE;
  g_assert_true (engine_io_polling_written_kicks (&view));
  view.poll_in_flight = TRUE;   /* another one is still being written */
  g_assert_false (engine_io_polling_written_kicks (&view));
  view.poll_in_flight = FALSE;
  view.state = ENGINE_IO_POLLING_CLOSING;
  g_assert_false (engine_io_polling_written_kicks (&view));
}

/* PROTOCOL.md, Long-polling: "A second concurrent POST: 400, session
 * closed." A session that is not open refuses a POST, but one closed by
 * the application or a server shutdown, whose client did nothing wrong
 * and still polls for the last packets and `1`. */
static void
test_polling_post (void)
{
  EngineIOPollingView view = open_view ();

#define POST() engine_io_post_verdict_to_string (engine_io_polling_decide_post (&view))
  g_assert_cmpstr (POST (), ==, "accept");
  view.poll_waiting = TRUE;   /* a GET waiting does not matter */
  view.upgrading = TRUE;
  g_assert_cmpstr (POST (), ==, "accept");
  view.post_active = TRUE;
  g_assert_cmpstr (POST (), ==, "overlap");
  g_assert_cmpstr (ENGINE_IO_POLLING_OVERLAPPING_POSTS_DESCRIPTION, ==, "overlapping POST requests from the client");

  view = open_view ();
  view.state = ENGINE_IO_POLLING_OPENING;
  g_assert_cmpstr (POST (), ==, "unknown-sid");
  view.state = ENGINE_IO_POLLING_CLOSED;
  view.closed_for_application = TRUE;
  g_assert_cmpstr (POST (), ==, "unknown-sid");
  /* Closed for the client's error, a timeout or its own close: gone for
   * that client, as the reference's socket. */
  view.state = ENGINE_IO_POLLING_CLOSING;
  view.closed_for_application = FALSE;
  g_assert_cmpstr (POST (), ==, "unknown-sid");
  view.closed_for_application = TRUE;
  g_assert_cmpstr (POST (), ==, "accept");
  view.post_active = TRUE;
  g_assert_cmpstr (POST (), ==, "overlap");
#undef POST
}

/* Each round of a POST's body: answered `ok` with its packets dropped
 * once the application (or a shutdown) closed the session (a 400 made the
 * client give up before taking the last packets); 400 if the session is
 * otherwise gone; held while the session is over its input bound
 * (back-pressure); read otherwise. */
static void
test_polling_post_round (void)
{
  EngineIOPollingView view = open_view ();

#define ROUND() engine_io_post_round_verdict_to_string (engine_io_polling_decide_post_round (&view))
  view.post_active = TRUE;
  g_assert_cmpstr (ROUND (), ==, "read");
  view.input_over = TRUE;
  g_assert_cmpstr (ROUND (), ==, "hold");
  view.state = ENGINE_IO_POLLING_CLOSING;
  g_assert_cmpstr (ROUND (), ==, "unknown-sid");
  view.closed_for_application = TRUE;
  g_assert_cmpstr (ROUND (), ==, "ok");
  view.state = ENGINE_IO_POLLING_CLOSED;
  g_assert_cmpstr (ROUND (), ==, "unknown-sid");
  /* (An open session is never "closed for the application".) */
  view.state = ENGINE_IO_POLLING_OPEN;
  view.input_over = FALSE;
  g_assert_cmpstr (ROUND (), ==, "read");
#undef ROUND
}

/* The client of a waiting poll closed its connection: the session closes
 * (transport close, as the reference), unless it is moving to a WebSocket
 * (upgrading, or the poll was released with `6`) or has moved, or is not
 * open. */
static void
test_polling_gone (void)
{
  EngineIOPollingView view = open_view ();

  g_assert_true (engine_io_polling_gone_closes (&view, FALSE));
  g_assert_false (engine_io_polling_gone_closes (&view, TRUE));
  view.upgrading = TRUE;
  g_assert_false (engine_io_polling_gone_closes (&view, FALSE));
  view = open_view ();
  view.polling = FALSE;
  g_assert_false (engine_io_polling_gone_closes (&view, FALSE));
  view = open_view ();
  view.state = ENGINE_IO_POLLING_CLOSING;
  g_assert_false (engine_io_polling_gone_closes (&view, FALSE));
}

/* Every snapshot: the rules give what the runtime decided inline before
 * they moved to the core (the conditions below are copied from
 * engineio-socket-polling.c and engineio-socket-queue.c as they were),
 * so the move changed nothing. */
static void
test_polling_exhaustive (void)
{
  for (guint bits = 0; bits < (1u << 11); bits++)
    for (int state = ENGINE_IO_POLLING_OPENING; state <= ENGINE_IO_POLLING_CLOSED; state++)
      {
        EngineIOPollingView v = {
          .state = state,
          .closed_for_application = (bits >> 0) & 1,
          .lingering = (bits >> 1) & 1,
          .poll_waiting = (bits >> 2) & 1,
          .post_active = (bits >> 3) & 1,
          .upgrading = (bits >> 4) & 1,
          .polling = (bits >> 5) & 1,
          .queued = (bits >> 6) & 1,
          .poll_in_flight = (bits >> 7) & 1,
          .input_over = (bits >> 8) & 1,
        };
        gboolean flag = (bits >> 9) & 1;      /* answer_noop, or the poll is suspended */
        gboolean completed = (bits >> 10) & 1;
        gboolean open = state == ENGINE_IO_POLLING_OPEN;
        gboolean closing = state == ENGINE_IO_POLLING_CLOSING;
        gboolean takes_posts = closing && v.closed_for_application;
        EngineIOPollVerdict poll, resumed;
        EngineIOPostVerdict post;
        EngineIOPostRoundVerdict round;

        if (closing && v.lingering && !v.poll_waiting)
          poll = ENGINE_IO_POLL_LAST;
        else if (!open)
          poll = ENGINE_IO_POLL_UNKNOWN_SID;
        else if (v.poll_waiting)
          poll = ENGINE_IO_POLL_OVERLAP;
        else if (v.upgrading)
          poll = ENGINE_IO_POLL_NOOP;
        else if (v.queued && !v.poll_in_flight)
          poll = ENGINE_IO_POLL_PACKETS;
        else
          poll = ENGINE_IO_POLL_SUSPEND;
        g_assert_cmpint (engine_io_polling_decide_poll (&v), ==, poll);

        resumed = flag ? ENGINE_IO_POLL_NOOP : closing ? ENGINE_IO_POLL_LAST : ENGINE_IO_POLL_PACKETS;
        g_assert_cmpint (engine_io_polling_decide_resumed (&v, flag), ==, resumed);

        g_assert_cmpint (engine_io_polling_wakes_poll (&v, flag), ==,
                         v.poll_waiting && flag && !v.upgrading && (!v.poll_in_flight || !open));
        g_assert_cmpint (engine_io_polling_written_kicks (&v), ==, !v.poll_in_flight && open && v.queued);

        if (!open && !takes_posts)
          post = ENGINE_IO_POST_UNKNOWN_SID;
        else if (v.post_active)
          post = ENGINE_IO_POST_OVERLAP;
        else
          post = ENGINE_IO_POST_ACCEPT;
        g_assert_cmpint (engine_io_polling_decide_post (&v), ==, post);

        if (takes_posts)
          round = ENGINE_IO_POST_ROUND_OK;
        else if (!open)
          round = ENGINE_IO_POST_ROUND_UNKNOWN_SID;
        else if (v.input_over)
          round = ENGINE_IO_POST_ROUND_HOLD;
        else
          round = ENGINE_IO_POST_ROUND_READ;
        g_assert_cmpint (engine_io_polling_decide_post_round (&v), ==, round);

        /* poll_client_gone(), then request_finished()'s "vanished". */
        g_assert_cmpint (engine_io_polling_gone_closes (&v, flag), ==,
                         open && !v.upgrading && !flag && v.polling);
        g_assert_cmpint (!completed && engine_io_polling_gone_closes (&v, FALSE), ==,
                         open && !completed && !v.upgrading && v.polling);
      }
}

/* The session begins to close (engine_io_socket_do_close()): what it
 * waits for on polling. PROTOCOL.md, Long-polling: a close answers the
 * waiting GET with what was queued and `1`; with no GET waiting, an
 * application close (or a shutdown with something left to deliver)
 * lingers for the next poll. */
static void
test_polling_close (void)
{
  EngineIOPollingView view = open_view ();

#define CLOSE(shutdown, client_closed, released, suspended, ws) \
  engine_io_close_verdict_to_string (engine_io_polling_decide_close (&view, (shutdown), (client_closed), \
                                                                     (released), (suspended), (ws)))
  view.state = ENGINE_IO_POLLING_CLOSING;
  /* The client closed, or a timeout: nothing to wait for. */
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "now");
  view.queued = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "now");
  /* The application's close lingers for the next poll, queued or not. */
  view.closed_for_application = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "linger");
  view.queued = FALSE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "linger");
  /* A shutdown only with something to deliver (queued, or a poll
   * response still being written). */
  g_assert_cmpstr (CLOSE (TRUE, FALSE, FALSE, FALSE, FALSE), ==, "now");
  view.poll_in_flight = TRUE;
  g_assert_cmpstr (CLOSE (TRUE, FALSE, FALSE, FALSE, FALSE), ==, "linger");
  view.poll_in_flight = FALSE;
  view.queued = TRUE;
  g_assert_cmpstr (CLOSE (TRUE, FALSE, FALSE, FALSE, FALSE), ==, "linger");
  /* Not over a WebSocket (its close frame follows the queue), nor once
   * upgraded; during an upgrade (a probe, polling still) it lingers. */
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, TRUE), ==, "now");
  view.polling = FALSE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "now");
  view.polling = TRUE;
  view.upgrading = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, FALSE, FALSE), ==, "linger");
  /* A poll waiting carries the queue and `1`, whatever the reason... */
  view = open_view ();
  view.state = ENGINE_IO_POLLING_CLOSING;
  view.poll_waiting = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, TRUE, FALSE), ==, "poll-last");
  view.closed_for_application = TRUE;
  g_assert_cmpstr (CLOSE (TRUE, FALSE, FALSE, TRUE, FALSE), ==, "poll-last");
  /* ...but the client's own close: a noop for it, the session ends now. */
  view.closed_for_application = FALSE;
  g_assert_cmpstr (CLOSE (FALSE, TRUE, FALSE, TRUE, FALSE), ==, "poll-noop");
  g_assert_cmpstr (CLOSE (FALSE, TRUE, FALSE, FALSE, FALSE), ==, "poll-last");  /* resumed already */
  /* A poll released for an upgrade (or any, while upgrading) is not
   * waiting: it answers `6`. */
  g_assert_cmpstr (CLOSE (FALSE, TRUE, TRUE, FALSE, FALSE), ==, "now");
  view.closed_for_application = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, TRUE, FALSE, FALSE), ==, "linger");
  view.upgrading = TRUE;
  g_assert_cmpstr (CLOSE (FALSE, FALSE, FALSE, TRUE, FALSE), ==, "linger");
#undef CLOSE
}

/* Every view against the conditions as they were in
 * engine_io_socket_do_close() before the close's rule moved to the core
 * (copied from it), so the move changed nothing. */
static void
test_polling_close_exhaustive (void)
{
  for (guint bits = 0; bits < (1u << 10); bits++)
    for (int reason = 0; reason < 3; reason++)  /* 0: another reason, 1: forced close, 2: shutdown */
      {
        EngineIOPollingView v = {
          .state = ENGINE_IO_POLLING_CLOSING,
          .closed_for_application = reason != 0,
          .poll_waiting = (bits >> 0) & 1,
          .upgrading = (bits >> 1) & 1,
          .polling = (bits >> 2) & 1,
          .queued = (bits >> 3) & 1,
          .poll_in_flight = (bits >> 4) & 1,
        };
        gboolean client_closed = (bits >> 5) & 1;
        gboolean answer_noop = (bits >> 6) & 1;
        gboolean suspended = (bits >> 7) & 1;
        gboolean ws = (bits >> 8) & 1;       /* a WebSocket is there */
        gboolean ws_probe = (bits >> 9) & 1; /* ... as a probe */
        gboolean waiting;
        gboolean linger = FALSE;
        EngineIOCloseVerdict expected;

        waiting = v.poll_waiting && !v.upgrading && !answer_noop;
        if (waiting && client_closed && suspended)
          expected = ENGINE_IO_CLOSE_POLL_NOOP;
        else
          {
            if (!waiting && (!ws || ws_probe) && v.polling &&
                (reason == 1 || (reason == 2 && (v.queued || v.poll_in_flight))))
              linger = TRUE;
            expected = waiting ? ENGINE_IO_CLOSE_POLL_LAST : linger ? ENGINE_IO_CLOSE_LINGER : ENGINE_IO_CLOSE_NOW;
          }
        g_assert_cmpint (engine_io_polling_decide_close (&v, reason == 2, client_closed, answer_noop,
                                                         suspended, ws && !ws_probe), ==, expected);
      }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/session/v4/heartbeat", test_session_v4_heartbeat);
  g_test_add_func ("/session/v4/ping-timeout", test_session_v4_ping_timeout);
  g_test_add_func ("/session/v4/unsolicited-pong", test_session_v4_unsolicited_pong);
  g_test_add_func ("/session/v4/ping-from-client", test_session_v4_ping_from_client);
  g_test_add_func ("/session/v3/ping-pong", test_session_v3_ping_pong);
  g_test_add_func ("/session/v3/expiry", test_session_v3_expiry);
  g_test_add_func ("/session/v3/pong-from-client", test_session_v3_pong_from_client);
  g_test_add_func ("/session/close-packet", test_session_close_packet);
  g_test_add_func ("/session/messages-in-order", test_session_messages_in_order);
  g_test_add_func ("/session/close-requested", test_session_close_requested);
  g_test_add_func ("/session/not-open", test_session_not_open);
  g_test_add_func ("/session/close-stops-timers", test_session_close_stops_timers);
  g_test_add_func ("/session/send-not-taken", test_session_send_not_taken);
  g_test_add_func ("/session/upgrade/probe", test_upgrade_probe);
  g_test_add_func ("/session/upgrade/probe-twice", test_upgrade_probe_twice);
  g_test_add_func ("/session/upgrade/without-probe", test_upgrade_without_probe);
  g_test_add_func ("/session/upgrade/give-up", test_upgrade_give_up);
  g_test_add_func ("/session/upgrade/timeout", test_upgrade_timeout);
  g_test_add_func ("/session/upgrade/kept-through-close", test_upgrade_kept_through_close);
  g_test_add_func ("/session/upgrade/close-while-probing", test_upgrade_close_while_probing);
  g_test_add_func ("/session/close/linger-last-poll", test_close_linger_last_poll);
  g_test_add_func ("/session/close/linger-no-poll", test_close_linger_no_poll);
  g_test_add_func ("/session/close/waits", test_close_waits);
  g_test_add_func ("/session/close/shutdown", test_close_shutdown);
  g_test_add_func ("/session/close/shutdown-closing", test_close_shutdown_closing);
  g_test_add_func ("/session/polling/get", test_polling_get);
  g_test_add_func ("/session/polling/get-overlap", test_polling_get_overlap);
  g_test_add_func ("/session/polling/get-upgrading", test_polling_get_upgrading);
  g_test_add_func ("/session/polling/get-closing", test_polling_get_closing);
  g_test_add_func ("/session/polling/resumed", test_polling_resumed);
  g_test_add_func ("/session/polling/wake", test_polling_wake);
  g_test_add_func ("/session/polling/post", test_polling_post);
  g_test_add_func ("/session/polling/post-round", test_polling_post_round);
  g_test_add_func ("/session/polling/gone", test_polling_gone);
  g_test_add_func ("/session/polling/exhaustive", test_polling_exhaustive);
  g_test_add_func ("/session/polling/close", test_polling_close);
  g_test_add_func ("/session/polling/close-exhaustive", test_polling_close_exhaustive);

  return g_test_run ();
}
