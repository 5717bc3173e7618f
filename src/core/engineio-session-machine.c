/* engineio-session-machine.c: an Engine.IO session as a state machine
 *
 * Sans-I/O (GLib only): inputs and the time in, actions out, in a
 * caller-owned array. The machine (issue 14) holds the heartbeat, the
 * rules for a packet the client sent, at its delivery in the session
 * context, the upgrade to WebSocket with its probe, and the close's
 * timing (its linger, the bound on its last write, when it finishes); see
 * engineio-session-machine-private.h for the interface and
 * src/runtime/engineio-socket-executor.c for the executor.
 *
 * I = ping-interval, T = ping-timeout, G = ping-interval-grace,
 * U = upgrade-timeout (ms); "stop all" is a TIMER_STOP for each armed
 * heartbeat timer (ping, heartbeat: the upgrade timer is the upgrade's,
 * below); "close R" is stop all, then CLOSE R, and the state becomes
 * CLOSED.
 *
 *  state  input                     version  actions                                      next
 *  -----  ------------------------  -------  -------------------------------------------  ------
 *  NEW    START                     v4       TIMER_START ping (now + I)                   OPEN
 *  NEW    START                     v3       TIMER_START heartbeat (now + I + T + G)      OPEN
 *  NEW    PACKET, TIMER             -        -                                            NEW
 *  any    CLOSE                     -        stop all (and the upgrade's rows and the     CLOSED
 *                                            close's timing, below)
 *
 *  OPEN   TIMER ping (armed)        v4       SEND `2`, TIMER_START heartbeat              OPEN
 *                                            (now + T + G); the ping is outstanding
 *  OPEN   TIMER heartbeat (armed)   -        close ping-timeout                           CLOSED
 *  OPEN   TIMER (not armed)         -        - (stale: the executor disarmed it)          OPEN
 *
 *  OPEN   PACKET, close requested   -        - (a close overtakes what the handlers      OPEN
 *                                            have not seen)
 *  OPEN   PACKET p                  -        RECEIVED p, then by p's type:
 *           ping                    v4       close transport-error "... v4 client sent a ping"
 *           ping                    v3       TIMER_START heartbeat (now + I + T + G),     OPEN
 *                                            SEND `3` + p's data (text or binary:
 *                                            `2probe` -> `3probe`), HEARTBEAT
 *           pong                    v3       close transport-error "... v3 client sent a pong"
 *           pong, ping outstanding  v4       TIMER_STOP heartbeat, TIMER_START ping       OPEN
 *                                            (now + I), HEARTBEAT (rtt = now - ping sent)
 *           pong, none outstanding  v4       - (unsolicited: it would put the next ping   OPEN
 *                                            off for ever)
 *           message                 v3       TIMER_START heartbeat (now + I + T + G),     OPEN
 *                                            DELIVER p
 *           message                 v4       DELIVER p                                    OPEN
 *           close                   -        close transport-close (client_closed)
 *           open, upgrade, noop     v3       TIMER_START heartbeat (now + I + T + G)      OPEN
 *           open, upgrade, noop     v4       -                                            OPEN
 *
 *  CLOSED anything else             -        -                                            CLOSED
 *
 * The upgrade (PROTOCOL.md, upgrade with probe), a sub-state: NONE,
 * PROBING, UPGRADING, KEPT, DONE; the same in both protocol versions.
 * `2probe` is a text ping "probe"; "bad" a probe frame that did not
 * decode (.packet NULL). "give up C R" is TIMER_STOP upgrade, then
 * GIVE_UP_PROBE C R: the probe closes, polling goes on (another probe may
 * come); the upgrade is NONE. Probe packets are not RECEIVED (not
 * counted, no ::packet) and do not move the heartbeat. The machine's own
 * close ("close R" above) leaves the probe to the CLOSE input the
 * runtime's close feeds at once (with the linger it decided).
 *
 *  state  upgrade            input                 actions                                 upgrade
 *  -----  -----------------  --------------------  --------------------------------------  ---------
 *  OPEN   NONE               PROBE_ATTACHED        TIMER_START upgrade (now + U)           PROBING
 *  OPEN   PROBING,UPGRADING  PROBE_PACKET `2probe` SEND_ON_PROBE `3probe`,                 UPGRADING
 *                                                  RELEASE_POLL_NOOP, EMIT_UPGRADING
 *  OPEN   UPGRADING          PROBE_PACKET `5`      TIMER_STOP upgrade, COMPLETE_UPGRADE    DONE
 *  OPEN   PROBING            PROBE_PACKET `5`      give up 1002 "unexpected packet ..."    NONE
 *  OPEN   PROBING,UPGRADING  PROBE_PACKET other    give up 1002 "unexpected packet ..."    NONE
 *  CLOSED KEPT               PROBE_PACKET `5`      TIMER_STOP upgrade, COMPLETE_UPGRADE    DONE
 *                                                  (closing)
 *  CLOSED KEPT               PROBE_PACKET other    give up 1002 "unexpected packet ..."    NONE
 *  OPEN   PROBING,UPGRADING  PROBE_PACKET bad      give up 1002 "bad packet ..."           NONE
 *  CLOSED KEPT               PROBE_PACKET bad      give up 1002 "bad packet ..."           NONE
 *  any    PROBING..KEPT      PROBE_LOST            give up 0 (closed: no frame),           NONE
 *                                                  1008 (stalled)
 *  any    PROBING..KEPT      TIMER upgrade (armed) GIVE_UP_PROBE 1000 "upgrade timeout"    NONE
 *                                                  (it fired: no TIMER_STOP)
 *  any    UPGRADING          CLOSE, wait linger    stop all; the probe is kept for its     KEPT
 *                                                  `5` (upgrade timer still armed)
 *  any    PROBING,UPGRADING  CLOSE, other wait     stop all, give up probe_code            NONE
 *  any    PROBING            CLOSE, wait linger    stop all, give up probe_code            NONE
 *  any    PROBING..KEPT      FINISHED (the         give up 0 (the session ends)            NONE
 *                            runtime's close
 *                            finished)
 *  any    NONE, DONE         PROBE_*, TIMER upgr.  - (stale, or not the machine's probe)   same
 *  other combinations                              -                                       same
 *
 * So, while OPEN: in v4 exactly one heartbeat timer is armed, the
 * heartbeat (the pong's deadline) while a ping is outstanding and the
 * ping otherwise; in v3 the heartbeat (the expiry, moved by every packet
 * received) and never the ping. The upgrade timer is armed exactly while
 * the upgrade is PROBING, UPGRADING or KEPT. COMPLETE_UPGRADE comes only
 * after `3probe` went out on that probe. A CLOSE action comes once, last;
 * after it (and after the CLOSE input) nothing comes but the rows of a
 * kept probe and the close's timing, below.
 *
 * The close's timing (the runtime's close: CLOSE, once), a sub-state:
 * NONE, LINGER, WRITE, WEBSOCKET, DONE. L = close-linger (2000 ms), W =
 * the close's write bound (connection-timeout); B = L once a shutdown
 * reached the close (CLOSE .shutdown, or SHUTDOWN), else W. "finish" is
 * FINISH_CLOSE (the runtime ends the session: engine_io_socket_finish_
 * close(), which feeds FINISHED); closing becomes DONE. The actions come
 * after the rows above (the heartbeat stopped, the probe settled).
 *
 *  closing    input                          actions                                closing
 *  ---------  -----------------------------  -------------------------------------  ---------
 *  NONE       CLOSE wait nothing             finish                                 DONE
 *  NONE       CLOSE wait linger              TIMER_START linger (now + min(L, T))   LINGER
 *  NONE       CLOSE wait poll                TIMER_START close-write (now + L + B)  WRITE
 *  NONE       CLOSE wait websocket           -                                      WEBSOCKET
 *  LINGER     TIMER linger, polled           TIMER_START close-write (now + B):     WRITE
 *                                            the last poll is being answered
 *  LINGER     TIMER linger, not polled,      MARK_FINISHES_CLOSE, TIMER_START       WRITE
 *             writing                        close-write (now + B)
 *  LINGER     TIMER linger, not polled,      finish                                 DONE
 *             not writing
 *  LINGER     LINGER_TAKEN (a kept probe's   TIMER_STOP linger                      WEBSOCKET
 *             `5`)
 *  WRITE      TIMER close-write              finish (the write goes on, what it     DONE
 *                                            carries is reported not delivered)
 *  LINGER,    WAIT_OVER                      TIMER_STOP (the armed one), finish     DONE
 *  WRITE,
 *  WEBSOCKET
 *  LINGER     SHUTDOWN (first)               - (the linger's end bounds with L)     LINGER
 *  WEBSOCKET  SHUTDOWN (first), websocket    - (its own close timeout)              WEBSOCKET
 *  WRITE,     SHUTDOWN (first) (WRITE: with  TIMER_START close-write (now + L)      WRITE
 *  WEBSOCKET  or without a probe kept; WEB-
 *             SOCKET: no websocket)
 *  any        FINISHED                       give up a kept probe (0), TIMER_STOP   DONE
 *                                            the armed closing timer (none, when
 *                                            it follows FINISH_CLOSE)
 *  other combinations (a second SHUTDOWN, stale timers)  -                          same
 *
 * So the linger timer is armed exactly while closing is LINGER, the
 * close-write timer exactly while it is WRITE, and FINISH_CLOSE comes at
 * most once, with neither armed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-session-machine-private.h"

#include <string.h>

#define MS (G_GINT64_CONSTANT (1000))

void
engine_io_session_machine_init (EngineIOSessionMachine       *machine,
                                EngineIOProtocolVersion       version,
                                const EngineIOSessionTimings *timings)
{
  g_assert (timings != NULL);
  g_assert ((guint) version <= G_MAXUINT8);

  machine->timings = timings;
  machine->ping_sent_us = 0;
  machine->state = ENGINE_IO_SESSION_NEW;
  machine->version = version;
  machine->upgrade = ENGINE_IO_SESSION_UPGRADE_NONE;
  machine->closing = ENGINE_IO_SESSION_CLOSING_NONE;
  machine->armed = 0;
  machine->shutdown = FALSE;
  machine->ping_outstanding = FALSE;
}

static EngineIOSessionAction *
push (EngineIOSessionActions    *out,
      EngineIOSessionActionKind  kind)
{
  EngineIOSessionAction *action;

  /* The table bounds the actions per input: more is a bug here. */
  g_assert (out->len < ENGINE_IO_SESSION_MAX_ACTIONS);
  action = &out->actions[out->len++];
  action->kind = kind;
  action->packet = NULL;
  if (kind == ENGINE_IO_SESSION_ACTION_SEND || kind == ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE)
    out->n_send++;
  return action;
}

static void
timer_start (EngineIOSessionMachine *machine,
             EngineIOSessionActions *out,
             EngineIOSessionTimer    timer,
             gint64                  deadline_us)
{
  EngineIOSessionAction *action = push (out, ENGINE_IO_SESSION_ACTION_TIMER_START);

  action->timer = timer;
  action->deadline_us = deadline_us;
  machine->armed |= 1u << timer;
}

static void
timer_stop (EngineIOSessionMachine *machine,
            EngineIOSessionActions *out,
            EngineIOSessionTimer    timer)
{
  if (!engine_io_session_machine_timer_armed (machine, timer))
    return;
  push (out, ENGINE_IO_SESSION_ACTION_TIMER_STOP)->timer = timer;
  machine->armed &= ~(1u << timer);
}

/* The heartbeat's timers (the upgrade's is the upgrade's). */
static void
stop_all (EngineIOSessionMachine *machine,
          EngineIOSessionActions *out)
{
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_PING);
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT);
}

static void
close_session (EngineIOSessionMachine     *machine,
               EngineIOSessionActions     *out,
               EngineIOSessionCloseReason  reason,
               const char                 *description,
               gboolean                    client_closed)
{
  EngineIOSessionAction *action;

  machine->state = ENGINE_IO_SESSION_CLOSED;
  machine->ping_outstanding = FALSE;
  stop_all (machine, out);
  action = push (out, ENGINE_IO_SESSION_ACTION_CLOSE);
  action->reason = reason;
  action->description = description;
  action->client_closed = client_closed;
}

/* v3: the session expires I + T + G after the last packet received. */
static void
reset_expiry (EngineIOSessionMachine *machine,
              EngineIOSessionActions *out,
              gint64                  now_us)
{
  gint64 ms = (gint64) machine->timings->ping_interval_ms + machine->timings->ping_timeout_ms + machine->timings->ping_grace_ms;

  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT, now_us + ms * MS);
}

static void
schedule_ping (EngineIOSessionMachine *machine,
               EngineIOSessionActions *out,
               gint64                  now_us)
{
  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_PING, now_us + machine->timings->ping_interval_ms * MS);
}

static void
handle_start (EngineIOSessionMachine *machine,
              EngineIOSessionActions *out,
              gint64                  now_us)
{
  if (machine->state != ENGINE_IO_SESSION_NEW)
    return;
  machine->state = ENGINE_IO_SESSION_OPEN;
  if (machine->version == ENGINE_IO_PROTOCOL_V4)
    schedule_ping (machine, out, now_us);
  else
    reset_expiry (machine, out, now_us);
}

static void
give_up_probe_action (EngineIOSessionActions *out,
                      guint16                 code,
                      const char             *description)
{
  EngineIOSessionAction *action = push (out, ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE);

  action->code = code;
  action->description = description;
}

static gboolean
probe_present (EngineIOSessionMachine *machine)
{
  return machine->upgrade == ENGINE_IO_SESSION_UPGRADE_PROBING ||
         machine->upgrade == ENGINE_IO_SESSION_UPGRADE_UPGRADING ||
         machine->upgrade == ENGINE_IO_SESSION_UPGRADE_KEPT;
}

/* The probe closes, polling goes on. */
static void
give_up_probe (EngineIOSessionMachine *machine,
               EngineIOSessionActions *out,
               guint16                 code,
               const char             *description)
{
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_UPGRADE);
  machine->upgrade = ENGINE_IO_SESSION_UPGRADE_NONE;
  give_up_probe_action (out, code, description);
}

static void linger_ended (EngineIOSessionMachine     *machine,
                          EngineIOSessionActions     *out,
                          const EngineIOSessionInput *input,
                          gint64                      now_us);
static void finish (EngineIOSessionMachine *machine,
                    EngineIOSessionActions *out);

static void
handle_timer (EngineIOSessionMachine     *machine,
              EngineIOSessionActions     *out,
              const EngineIOSessionInput *input,
              gint64                      now_us)
{
  EngineIOSessionTimer timer = input->timer;

  if (!engine_io_session_machine_timer_armed (machine, timer))
    return;
  if (timer == ENGINE_IO_SESSION_TIMER_LINGER || timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE)
    {
      /* Armed exactly while closing is LINGER, WRITE. */
      machine->armed &= ~(1u << timer);  /* it fired */
      if (timer == ENGINE_IO_SESSION_TIMER_LINGER)
        linger_ended (machine, out, input, now_us);
      else
        finish (machine, out);
      return;
    }
  if (timer == ENGINE_IO_SESSION_TIMER_UPGRADE)
    {
      /* Armed exactly while a probe is (kept through a close included). */
      machine->armed &= ~(1u << timer);  /* it fired */
      machine->upgrade = ENGINE_IO_SESSION_UPGRADE_NONE;
      give_up_probe_action (out, 1000, ENGINE_IO_SESSION_PROBE_TIMEOUT);
      return;
    }
  if (machine->state != ENGINE_IO_SESSION_OPEN)
    return;
  machine->armed &= ~(1u << timer);  /* it fired */

  switch (timer)
    {
    case ENGINE_IO_SESSION_TIMER_PING:
      machine->ping_outstanding = TRUE;
      machine->ping_sent_us = now_us;
      push (out, ENGINE_IO_SESSION_ACTION_SEND)->packet = engine_io_packet_new (ENGINE_IO_PACKET_PING);
      timer_start (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT,
                   now_us + ((gint64) machine->timings->ping_timeout_ms + machine->timings->ping_grace_ms) * MS);
      break;

    case ENGINE_IO_SESSION_TIMER_HEARTBEAT:
      close_session (machine, out, ENGINE_IO_SESSION_CLOSE_PING_TIMEOUT, NULL, FALSE);
      break;

    case ENGINE_IO_SESSION_TIMER_UPGRADE:
    case ENGINE_IO_SESSION_TIMER_LINGER:
    case ENGINE_IO_SESSION_TIMER_CLOSE_WRITE:
    case ENGINE_IO_SESSION_N_TIMERS:
    default:
      g_assert_not_reached ();
    }
}

/* v3: a pong with the ping's data (`2probe` -> `3probe`). */
static EngineIOPacket *
echo_pong (EngineIOPacket *ping)
{
  gsize len = 0;
  const char *text;

  if (engine_io_packet_is_binary (ping))
    return engine_io_packet_new_binary (ENGINE_IO_PACKET_PONG, engine_io_packet_get_data (ping));
  text = engine_io_packet_get_text (ping, &len);
  return engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, text, len);
}

static void
handle_packet (EngineIOSessionMachine *machine,
               EngineIOSessionActions *out,
               EngineIOPacket         *packet,
               gint64                  now_us)
{
  gboolean v3 = machine->version == ENGINE_IO_PROTOCOL_V3;

  push (out, ENGINE_IO_SESSION_ACTION_RECEIVED)->packet = packet;

  switch (engine_io_packet_get_packet_type (packet))
    {
    case ENGINE_IO_PACKET_PING:
      if (!v3)
        {
          close_session (machine, out, ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR,
                         ENGINE_IO_SESSION_V4_PING_DESCRIPTION, FALSE);
          return;
        }
      reset_expiry (machine, out, now_us);
      push (out, ENGINE_IO_SESSION_ACTION_SEND)->packet = echo_pong (packet);
      push (out, ENGINE_IO_SESSION_ACTION_HEARTBEAT)->rtt_us = -1;
      break;

    case ENGINE_IO_PACKET_PONG:
      if (v3)
        {
          close_session (machine, out, ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR,
                         ENGINE_IO_SESSION_V3_PONG_DESCRIPTION, FALSE);
          return;
        }
      /* Only the answer to our ping counts: an unsolicited pong would
       * put the next ping off for ever, so a client could stay alive
       * without ever reading (with WebSocket output that does not drain,
       * see ws_stalled_cb()). */
      if (!machine->ping_outstanding)
        break;
      machine->ping_outstanding = FALSE;
      timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT);
      schedule_ping (machine, out, now_us);
      push (out, ENGINE_IO_SESSION_ACTION_HEARTBEAT)->rtt_us = now_us - machine->ping_sent_us;
      break;

    case ENGINE_IO_PACKET_MESSAGE:
      if (v3)
        reset_expiry (machine, out, now_us);
      push (out, ENGINE_IO_SESSION_ACTION_DELIVER)->packet = packet;
      break;

    case ENGINE_IO_PACKET_CLOSE:
      close_session (machine, out, ENGINE_IO_SESSION_CLOSE_TRANSPORT_CLOSE, NULL, TRUE);
      break;

    case ENGINE_IO_PACKET_OPEN:
    case ENGINE_IO_PACKET_UPGRADE:
    case ENGINE_IO_PACKET_NOOP:
    default:
      /* Nothing to do: the reference ignores these as well. */
      if (v3)
        reset_expiry (machine, out, now_us);
      break;
    }
}

/* The upgrade (the table's second part) */

static void
handle_probe_attached (EngineIOSessionMachine *machine,
                       EngineIOSessionActions *out,
                       gint64                  now_us)
{
  if (machine->state != ENGINE_IO_SESSION_OPEN || machine->upgrade != ENGINE_IO_SESSION_UPGRADE_NONE)
    return;
  machine->upgrade = ENGINE_IO_SESSION_UPGRADE_PROBING;
  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_UPGRADE, now_us + machine->timings->upgrade_timeout_ms * MS);
}

static gboolean
is_probe_ping (EngineIOPacket *packet)
{
  const char *text;

  if (engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_PING || engine_io_packet_is_binary (packet))
    return FALSE;
  text = engine_io_packet_get_text (packet, NULL);
  return text != NULL && strcmp (text, "probe") == 0;
}

static void
complete_upgrade (EngineIOSessionMachine *machine,
                  EngineIOSessionActions *out,
                  gboolean                closing)
{
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_UPGRADE);
  machine->upgrade = ENGINE_IO_SESSION_UPGRADE_DONE;
  push (out, ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE)->closing = closing;
}

static void
handle_probe_packet (EngineIOSessionMachine *machine,
                     EngineIOSessionActions *out,
                     EngineIOPacket         *packet)
{
  if (!probe_present (machine))
    return;
  if (packet == NULL)
    {
      give_up_probe (machine, out, 1002, ENGINE_IO_SESSION_PROBE_BAD);
      return;
    }

  if (machine->upgrade == ENGINE_IO_SESSION_UPGRADE_KEPT)
    {
      /* A probe kept through a close: only `5` is expected. */
      if (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_UPGRADE)
        complete_upgrade (machine, out, TRUE);
      else
        give_up_probe (machine, out, 1002, ENGINE_IO_SESSION_PROBE_UNEXPECTED);
      return;
    }

  if (is_probe_ping (packet))
    {
      machine->upgrade = ENGINE_IO_SESSION_UPGRADE_UPGRADING;
      push (out, ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE)->packet =
        engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, "probe", 5);
      push (out, ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP);
      push (out, ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING);
      return;
    }
  if (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_UPGRADE &&
      machine->upgrade == ENGINE_IO_SESSION_UPGRADE_UPGRADING)
    {
      complete_upgrade (machine, out, FALSE);
      return;
    }
  /* Anything else on a probe (`5` before `3probe` included). */
  give_up_probe (machine, out, 1002, ENGINE_IO_SESSION_PROBE_UNEXPECTED);
}

/* The close's timing (the table's third part) */

/* How long a closing session's poll response may take to be written:
 * libmicrohttpd's connection timeout is for inactivity, and a client that
 * reads a little, often enough, keeps the write going for as long as it
 * likes, and the session (its max-sessions place, its thread, its
 * ::close) with it. In a server shutdown, which waits for its sessions,
 * the linger's time; else "connection-timeout". */
static gint64
write_bound_ms (EngineIOSessionMachine *machine)
{
  return machine->shutdown ? machine->timings->close_linger_ms : machine->timings->close_write_ms;
}

static void
finish (EngineIOSessionMachine *machine,
        EngineIOSessionActions *out)
{
  machine->closing = ENGINE_IO_SESSION_CLOSING_DONE;
  push (out, ENGINE_IO_SESSION_ACTION_FINISH_CLOSE);
}

static void
bound_write (EngineIOSessionMachine *machine,
             EngineIOSessionActions *out,
             gint64                  deadline_us)
{
  machine->closing = ENGINE_IO_SESSION_CLOSING_WRITE;
  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE, deadline_us);
}

static void
handle_close (EngineIOSessionMachine     *machine,
              EngineIOSessionActions     *out,
              const EngineIOSessionInput *input,
              gint64                      now_us)
{
  gboolean linger = input->wait == ENGINE_IO_SESSION_WAIT_LINGER;

  if (machine->closing != ENGINE_IO_SESSION_CLOSING_NONE)
    return;  /* the runtime's close begins once */
  machine->state = ENGINE_IO_SESSION_CLOSED;
  machine->ping_outstanding = FALSE;
  stop_all (machine, out);
  /* During an upgrade the client may have paused polling for good (see
   * engine_io_socket_do_close()): an answered probe is kept for its `5`
   * while the close lingers. */
  if (machine->upgrade == ENGINE_IO_SESSION_UPGRADE_UPGRADING && linger)
    machine->upgrade = ENGINE_IO_SESSION_UPGRADE_KEPT;
  else if (probe_present (machine))
    give_up_probe (machine, out, input->probe_code, NULL);

  machine->shutdown = input->shutdown;
  switch (input->wait)
    {
    case ENGINE_IO_SESSION_WAIT_LINGER:
      /* (No longer than the client's own ping timeout.) */
      machine->closing = ENGINE_IO_SESSION_CLOSING_LINGER;
      timer_start (machine, out, ENGINE_IO_SESSION_TIMER_LINGER,
                   now_us + MIN (machine->timings->close_linger_ms, machine->timings->ping_timeout_ms) * MS);
      break;

    case ENGINE_IO_SESSION_WAIT_POLL:
      /* The waiting poll was resumed: its response (what was queued and
       * `1`; a lot if the poll waited while another response was being
       * written) gets as long as a linger and a last poll's write, then
       * the session ends all the same. */
      bound_write (machine, out, now_us + ((gint64) machine->timings->close_linger_ms + write_bound_ms (machine)) * MS);
      break;

    case ENGINE_IO_SESSION_WAIT_WEBSOCKET:
      /* What is queued goes out, then the close frame; the WebSocket's
       * close (with its own timeout) is the WAIT_OVER. */
      machine->closing = ENGINE_IO_SESSION_CLOSING_WEBSOCKET;
      break;

    case ENGINE_IO_SESSION_WAIT_NOTHING:
    default:
      finish (machine, out);
      break;
    }
}

/* The linger ended. The runtime claimed its linger flag under its lock, as
 * the last poll and a kept probe claim it. A last poll that came in time
 * (.polled) is being answered: the end of its request finishes the close
 * (WAIT_OVER), and its send callbacks say whether it was written; ending
 * the session here would report what it carries as not delivered while it
 * may be on its way (a slow write, a loaded machine). So its write gets
 * the bound (in a server shutdown, which waits for its sessions, only L:
 * a client that does not read would hold the shutdown for its whole 10 s
 * wait; what the poll carries is then reported not delivered).
 * No last poll came, but a poll taken before the close is still being
 * written (.writing): the same, the end of its request finishes the
 * close (its client got what was queued, without `1`); the runtime marks
 * it so under that lock. */
static void
linger_ended (EngineIOSessionMachine     *machine,
              EngineIOSessionActions     *out,
              const EngineIOSessionInput *input,
              gint64                      now_us)
{
  if (!input->polled && !input->writing)
    {
      finish (machine, out);
      return;
    }
  if (!input->polled)
    push (out, ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE);
  bound_write (machine, out, now_us + write_bound_ms (machine) * MS);
}

/* A server shutdown reached a session that was closing already (the
 * application closed it, or its client, or a timeout). Its close may be
 * waiting for a poll response to be written (its last poll, a poll the
 * close resumed, or one taken before the close): the shutdown bounds that
 * write as its own close does, else a client that does not read would
 * hold the shutdown for its whole 10 s wait (the first close's reason
 * kept the bound long). A linger still running bounds with L when it
 * ends; a WebSocket's close has its own timeout. */
static void
handle_shutdown (EngineIOSessionMachine     *machine,
                 EngineIOSessionActions     *out,
                 const EngineIOSessionInput *input,
                 gint64                      now_us)
{
  if (machine->shutdown || machine->closing == ENGINE_IO_SESSION_CLOSING_NONE ||
      machine->closing == ENGINE_IO_SESSION_CLOSING_DONE)
    return;
  machine->shutdown = TRUE;
  /* A probe kept through the close is no WebSocket the close waits for:
   * once its last poll came (WRITE), the write is bound all the same
   * (leaving it alone let a client that kept its probe and did not read
   * its last poll hold the shutdown for the close's own bound,
   * connection-timeout, past the shutdown's 10 s wait). */
  if (machine->closing == ENGINE_IO_SESSION_CLOSING_LINGER ||
      (machine->closing == ENGINE_IO_SESSION_CLOSING_WEBSOCKET && input->websocket))
    return;
  bound_write (machine, out, now_us + machine->timings->close_linger_ms * MS);
}

static void
handle_wait_over (EngineIOSessionMachine *machine,
                  EngineIOSessionActions *out)
{
  if (machine->closing != ENGINE_IO_SESSION_CLOSING_LINGER &&
      machine->closing != ENGINE_IO_SESSION_CLOSING_WRITE &&
      machine->closing != ENGINE_IO_SESSION_CLOSING_WEBSOCKET)
    return;
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_LINGER);
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE);
  finish (machine, out);
}

static void
handle_finished (EngineIOSessionMachine *machine,
                 EngineIOSessionActions *out)
{
  machine->state = ENGINE_IO_SESSION_CLOSED;
  machine->closing = ENGINE_IO_SESSION_CLOSING_DONE;
  machine->ping_outstanding = FALSE;
  stop_all (machine, out);  /* (none: the CLOSE input stopped them) */
  /* A probe kept: freed (aborted). */
  if (probe_present (machine))
    give_up_probe (machine, out, 0, NULL);
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_LINGER);
  timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_CLOSE_WRITE);
}

void
engine_io_session_machine_handle (EngineIOSessionMachine     *machine,
                                  const EngineIOSessionInput *input,
                                  gint64                      now_us,
                                  EngineIOSessionActions     *out)
{
  out->len = 0;
  out->n_send = 0;

  switch (input->kind)
    {
    case ENGINE_IO_SESSION_INPUT_START:
      handle_start (machine, out, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_PACKET:
      if (machine->state == ENGINE_IO_SESSION_OPEN && !input->close_requested)
        handle_packet (machine, out, input->packet, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_TIMER:
      handle_timer (machine, out, input, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_CLOSE:
      handle_close (machine, out, input, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_SHUTDOWN:
      handle_shutdown (machine, out, input, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_LINGER_TAKEN:
      if (machine->closing == ENGINE_IO_SESSION_CLOSING_LINGER)
        {
          timer_stop (machine, out, ENGINE_IO_SESSION_TIMER_LINGER);
          machine->closing = ENGINE_IO_SESSION_CLOSING_WEBSOCKET;
        }
      break;

    case ENGINE_IO_SESSION_INPUT_WAIT_OVER:
      handle_wait_over (machine, out);
      break;

    case ENGINE_IO_SESSION_INPUT_FINISHED:
      handle_finished (machine, out);
      break;

    case ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED:
      handle_probe_attached (machine, out, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_PROBE_PACKET:
      /* Open, or a probe kept through a close. */
      if (machine->state == ENGINE_IO_SESSION_OPEN || machine->upgrade == ENGINE_IO_SESSION_UPGRADE_KEPT)
        handle_probe_packet (machine, out, input->packet);
      break;

    case ENGINE_IO_SESSION_INPUT_PROBE_LOST:
      if (probe_present (machine))
        give_up_probe (machine, out, input->stalled ? 1008 : 0, NULL);
      break;

    default:
      g_assert_not_reached ();
    }
}

void
engine_io_session_actions_clear (EngineIOSessionActions *actions)
{
  for (guint i = 0; i < actions->len && actions->n_send > 0; i++)
    {
      EngineIOSessionAction *action = &actions->actions[i];

      if ((action->kind == ENGINE_IO_SESSION_ACTION_SEND ||
           action->kind == ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE) && action->packet != NULL)
        engine_io_packet_unref (g_steal_pointer (&action->packet));
    }
  actions->len = 0;
  actions->n_send = 0;
}

const char *
engine_io_session_action_kind_to_string (EngineIOSessionActionKind kind)
{
  switch (kind)
    {
    case ENGINE_IO_SESSION_ACTION_TIMER_START: return "timer-start";
    case ENGINE_IO_SESSION_ACTION_TIMER_STOP: return "timer-stop";
    case ENGINE_IO_SESSION_ACTION_RECEIVED: return "received";
    case ENGINE_IO_SESSION_ACTION_SEND: return "send";
    case ENGINE_IO_SESSION_ACTION_HEARTBEAT: return "heartbeat";
    case ENGINE_IO_SESSION_ACTION_DELIVER: return "deliver";
    case ENGINE_IO_SESSION_ACTION_CLOSE: return "close";
    case ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE: return "send-on-probe";
    case ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP: return "release-poll-noop";
    case ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING: return "emit-upgrading";
    case ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE: return "complete-upgrade";
    case ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE: return "give-up-probe";
    case ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE: return "mark-finishes-close";
    case ENGINE_IO_SESSION_ACTION_FINISH_CLOSE: return "finish-close";
    default: return "?";
    }
}

const char *
engine_io_session_timer_to_string (EngineIOSessionTimer timer)
{
  switch (timer)
    {
    case ENGINE_IO_SESSION_TIMER_PING: return "ping";
    case ENGINE_IO_SESSION_TIMER_HEARTBEAT: return "heartbeat";
    case ENGINE_IO_SESSION_TIMER_UPGRADE: return "upgrade";
    case ENGINE_IO_SESSION_TIMER_LINGER: return "linger";
    case ENGINE_IO_SESSION_TIMER_CLOSE_WRITE: return "close-write";
    case ENGINE_IO_SESSION_N_TIMERS:
    default: return "?";
    }
}

const char *
engine_io_session_upgrade_to_string (EngineIOSessionUpgrade upgrade)
{
  switch (upgrade)
    {
    case ENGINE_IO_SESSION_UPGRADE_NONE: return "none";
    case ENGINE_IO_SESSION_UPGRADE_PROBING: return "probing";
    case ENGINE_IO_SESSION_UPGRADE_UPGRADING: return "upgrading";
    case ENGINE_IO_SESSION_UPGRADE_KEPT: return "kept";
    case ENGINE_IO_SESSION_UPGRADE_DONE: return "done";
    default: return "?";
    }
}

const char *
engine_io_session_closing_to_string (EngineIOSessionClosing closing)
{
  switch (closing)
    {
    case ENGINE_IO_SESSION_CLOSING_NONE: return "none";
    case ENGINE_IO_SESSION_CLOSING_LINGER: return "linger";
    case ENGINE_IO_SESSION_CLOSING_WRITE: return "write";
    case ENGINE_IO_SESSION_CLOSING_WEBSOCKET: return "websocket";
    case ENGINE_IO_SESSION_CLOSING_DONE: return "done";
    default: return "?";
    }
}
