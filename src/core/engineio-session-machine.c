/* engineio-session-machine.c: an Engine.IO session as a state machine
 *
 * Sans-I/O (GLib only): inputs and the time in, actions out, in a
 * caller-owned array. This slice (issue 14) holds the heartbeat and the
 * rules for a packet the client sent, at its delivery in the session
 * context; see engineio-session-machine-private.h for the interface and
 * src/runtime/engineio-socket-executor.c for the executor.
 *
 * I = ping-interval, T = ping-timeout, G = ping-interval-grace (ms);
 * "stop all" is a TIMER_STOP for each armed timer; "close R" is stop all,
 * then CLOSE R, and the state becomes CLOSED.
 *
 *  state  input                     version  actions                                      next
 *  -----  ------------------------  -------  -------------------------------------------  ------
 *  NEW    START                     v4       TIMER_START ping (now + I)                   OPEN
 *  NEW    START                     v3       TIMER_START heartbeat (now + I + T + G)      OPEN
 *  NEW    PACKET, TIMER             -        -                                            NEW
 *  any    CLOSE                     -        stop all                                     CLOSED
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
 *  CLOSED anything                  -        -                                            CLOSED
 *
 * So, while OPEN: in v4 exactly one timer is armed, the heartbeat (the
 * pong's deadline) while a ping is outstanding and the ping otherwise; in
 * v3 the heartbeat (the expiry, moved by every packet received) and never
 * the ping. A CLOSE action comes once, last; nothing comes after it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-session-machine-private.h"

#define MS (G_GINT64_CONSTANT (1000))

void
engine_io_session_machine_init (EngineIOSessionMachine  *machine,
                                EngineIOProtocolVersion  version,
                                guint                    ping_interval_ms,
                                guint                    ping_timeout_ms,
                                guint                    ping_grace_ms)
{
  machine->state = ENGINE_IO_SESSION_NEW;
  machine->version = version;
  machine->ping_interval_ms = ping_interval_ms;
  machine->ping_timeout_ms = ping_timeout_ms;
  machine->ping_grace_ms = ping_grace_ms;
  machine->armed = 0;
  machine->ping_outstanding = FALSE;
  machine->ping_sent_us = 0;
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
  if (kind == ENGINE_IO_SESSION_ACTION_SEND)
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

static void
stop_all (EngineIOSessionMachine *machine,
          EngineIOSessionActions *out)
{
  for (guint timer = 0; timer < ENGINE_IO_SESSION_N_TIMERS; timer++)
    timer_stop (machine, out, timer);
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
  gint64 ms = (gint64) machine->ping_interval_ms + machine->ping_timeout_ms + machine->ping_grace_ms;

  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT, now_us + ms * MS);
}

static void
schedule_ping (EngineIOSessionMachine *machine,
               EngineIOSessionActions *out,
               gint64                  now_us)
{
  timer_start (machine, out, ENGINE_IO_SESSION_TIMER_PING, now_us + machine->ping_interval_ms * MS);
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
handle_timer (EngineIOSessionMachine *machine,
              EngineIOSessionActions *out,
              EngineIOSessionTimer    timer,
              gint64                  now_us)
{
  if (machine->state != ENGINE_IO_SESSION_OPEN || !engine_io_session_machine_timer_armed (machine, timer))
    return;
  machine->armed &= ~(1u << timer);  /* it fired */

  switch (timer)
    {
    case ENGINE_IO_SESSION_TIMER_PING:
      machine->ping_outstanding = TRUE;
      machine->ping_sent_us = now_us;
      push (out, ENGINE_IO_SESSION_ACTION_SEND)->packet = engine_io_packet_new (ENGINE_IO_PACKET_PING);
      timer_start (machine, out, ENGINE_IO_SESSION_TIMER_HEARTBEAT,
                   now_us + ((gint64) machine->ping_timeout_ms + machine->ping_grace_ms) * MS);
      break;

    case ENGINE_IO_SESSION_TIMER_HEARTBEAT:
      close_session (machine, out, ENGINE_IO_SESSION_CLOSE_PING_TIMEOUT, NULL, FALSE);
      break;

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
      handle_timer (machine, out, input->timer, now_us);
      break;

    case ENGINE_IO_SESSION_INPUT_CLOSE:
      machine->state = ENGINE_IO_SESSION_CLOSED;
      machine->ping_outstanding = FALSE;
      stop_all (machine, out);
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

      if (action->kind == ENGINE_IO_SESSION_ACTION_SEND && action->packet != NULL)
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
    case ENGINE_IO_SESSION_N_TIMERS:
    default: return "?";
    }
}
