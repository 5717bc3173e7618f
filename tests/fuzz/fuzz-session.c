/* fuzz-session.c: libFuzzer target for the session state machine
 * (src/core/engineio-session-machine.c)
 *
 * The input is a session: its first bytes pick the protocol version, the
 * heartbeat's and the upgrade's settings and the start time; the rest is
 * a sequence of inputs (start, a packet of any type, text or binary, with
 * or without a close requested, a timer that is due, a timer that is not,
 * the runtime's close, waiting for nothing, a linger, a poll or a
 * WebSocket, a shutdown's or not; an upgrade probe attached, a packet on
 * it: `2probe`, `5`, a bad one or any, the probe lost or stalled; a
 * shutdown reaching the close, the linger's end with a last poll come or
 * not and polls being written or not, the linger taken by a kept probe,
 * the close's wait over, the close finished) with time passing between
 * them. A model executor carries the actions out and checks, after every
 * input:
 *
 * - nothing happens before START, nothing for a packet that comes with a
 *   close requested, and nothing after the session is CLOSED but the
 *   upgrade's end: the runtime's CLOSE input settling a probe, and the
 *   rows of a probe kept through the close;
 * - the timers the actions arm are the machine's, each stopped only when
 *   armed, each deadline in the future and exactly what the protocol says
 *   (v4 ping: interval; pong: timeout + grace; v3 expiry: all three);
 * - while OPEN, v4 has exactly one timer armed, the heartbeat while (and
 *   only while) a ping is outstanding, at most one ping outstanding; v3
 *   has the heartbeat armed, moved by every packet it takes, and never
 *   pings;
 * - a v3 pong carries its ping's data; a v4 ::heartbeat comes with the
 *   round trip of the one outstanding ping; v3's with none;
 * - a packet the session takes is RECEIVED first; only messages are
 *   DELIVERed, the same packet, last;
 * - a CLOSE comes once, last, after every heartbeat timer was stopped;
 * - a due timer always does something (a ping, a close, or a probe given
 *   up);
 * - the upgrade: the upgrade timer is armed exactly while there is a
 *   probe (attached, not given up nor completed), its deadline the
 *   upgrade timeout; `3probe` goes out only for `2probe`, followed by
 *   RELEASE_POLL_NOOP and EMIT_UPGRADING, last; COMPLETE_UPGRADE comes
 *   only for `5`, after `3probe` went out on that probe, once, last, with
 *   the upgrade timer stopped (closing: only on a probe kept through a
 *   close); GIVE_UP_PROBE comes only while there is a probe, last, with
 *   the code and description its cause gives; a CLOSE input is answered
 *   with TIMER_STOPs, at most one GIVE_UP_PROBE and a closing timer's
 *   start or FINISH_CLOSE;
 * - the close's timing: the linger timer is armed exactly while the
 *   model's closing state is LINGER, the close-write timer exactly while
 *   it is WRITE (the machine's agrees); their deadlines are the rules'
 *   (min(linger, ping timeout); linger + bound, bound, linger for a
 *   shutdown reaching the close; the bound the linger once a shutdown is
 *   in it); MARK_FINISHES_CLOSE only at the linger's end without a last
 *   poll but with polls being written, before the bound; FINISH_CLOSE at
 *   most once, last, with no closing timer armed, and after it no timer
 *   starts; after FINISHED no timer at all is armed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-common.h"

#include "engineio-session-machine-private.h"

typedef struct
{
  const uint8_t *data;
  size_t         size;
} Reader;

static guint
take (Reader *r)
{
  guint byte;

  if (r->size == 0)
    return 0;
  byte = r->data[0];
  r->data++;
  r->size--;
  return byte;
}

typedef struct
{
  EngineIOSessionTimings timings;   /* the machine borrows it */
  EngineIOSessionMachine machine;
  EngineIOProtocolVersion version;
  gint64   interval_us, timeout_us, grace_us;
  gint64   now;
  gboolean armed[ENGINE_IO_SESSION_N_TIMERS];
  gint64   deadline[ENGINE_IO_SESSION_N_TIMERS];
  guint    outstanding;   /* v4 pings sent, not answered */
  gint64   ping_sent;
  guint    closes;
  gint64   upgrade_us;
  gint64   linger_us, write_us;   /* the close's linger and write bound */
  EngineIOSessionClosing closing; /* the model's */
  gboolean shutdown;              /* a shutdown reached the close */
  guint    finishes;              /* FINISH_CLOSEs */
  guint    closing_steps;         /* closing timers started, FINISH_CLOSEs */
  gboolean probe;         /* a probe attached, not given up nor completed */
  gboolean answered;      /* ... and `3probe` went out on it */
  guint    upgrades;      /* COMPLETE_UPGRADEs */
  guint    give_ups;      /* GIVE_UP_PROBEs */
} Model;

/* The heartbeat's timers (the upgrade's is the probe's). */
static gboolean
model_any_armed (Model *m)
{
  return m->armed[ENGINE_IO_SESSION_TIMER_PING] || m->armed[ENGINE_IO_SESSION_TIMER_HEARTBEAT];
}

static gboolean
is_probe_ping (EngineIOPacket *packet)
{
  const char *text;

  if (packet == NULL || engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_PING ||
      engine_io_packet_is_binary (packet))
    return FALSE;
  text = engine_io_packet_get_text (packet, NULL);
  return text != NULL && strcmp (text, "probe") == 0;
}

/* Feeds @input and checks its actions against the model. */
static void
run (Model                      *m,
     const EngineIOSessionInput *input)
{
  EngineIOSessionActions out;
  EngineIOSessionState before = engine_io_session_machine_get_state (&m->machine);
  EngineIOSessionUpgrade upgrade_before = engine_io_session_machine_get_upgrade (&m->machine);
  EngineIOPacketType type = input->packet != NULL ? engine_io_packet_get_packet_type (input->packet) : 0;
  gboolean v4 = m->version == ENGINE_IO_PROTOCOL_V4;
  gboolean probe_input = input->kind == ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED ||
                         input->kind == ENGINE_IO_SESSION_INPUT_PROBE_PACKET ||
                         input->kind == ENGINE_IO_SESSION_INPUT_PROBE_LOST;

  gboolean closing_input = input->kind == ENGINE_IO_SESSION_INPUT_CLOSE ||
                           input->kind == ENGINE_IO_SESSION_INPUT_SHUTDOWN ||
                           input->kind == ENGINE_IO_SESSION_INPUT_LINGER_TAKEN ||
                           input->kind == ENGINE_IO_SESSION_INPUT_WAIT_OVER ||
                           input->kind == ENGINE_IO_SESSION_INPUT_FINISHED ||
                           (input->kind == ENGINE_IO_SESSION_INPUT_TIMER &&
                            (input->timer == ENGINE_IO_SESSION_TIMER_LINGER ||
                             input->timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE));
  EngineIOSessionClosing closing_before = m->closing;
  gint64 bound = m->shutdown ? m->linger_us : m->write_us;

  engine_io_session_machine_handle (&m->machine, input, m->now, &out);
  FUZZ_CHECK (out.len <= ENGINE_IO_SESSION_MAX_ACTIONS);

  /* The model's closing state (the machine's must agree, below). */
  switch (input->kind)
    {
    case ENGINE_IO_SESSION_INPUT_CLOSE:
      if (m->closing == ENGINE_IO_SESSION_CLOSING_NONE)
        {
          m->shutdown = input->shutdown;
          bound = m->shutdown ? m->linger_us : m->write_us;
          m->closing = input->wait == ENGINE_IO_SESSION_WAIT_LINGER ? ENGINE_IO_SESSION_CLOSING_LINGER
                     : input->wait == ENGINE_IO_SESSION_WAIT_POLL ? ENGINE_IO_SESSION_CLOSING_WRITE
                     : input->wait == ENGINE_IO_SESSION_WAIT_WEBSOCKET ? ENGINE_IO_SESSION_CLOSING_WEBSOCKET
                     : ENGINE_IO_SESSION_CLOSING_DONE;
        }
      else
        FUZZ_CHECK (out.len == 0);
      break;
    case ENGINE_IO_SESSION_INPUT_SHUTDOWN:
      if (m->closing == ENGINE_IO_SESSION_CLOSING_NONE || m->closing == ENGINE_IO_SESSION_CLOSING_DONE || m->shutdown)
        FUZZ_CHECK (out.len == 0);
      else
        {
          m->shutdown = TRUE;
          if (m->closing == ENGINE_IO_SESSION_CLOSING_LINGER ||
              (m->closing == ENGINE_IO_SESSION_CLOSING_WEBSOCKET && input->websocket))
            FUZZ_CHECK (out.len == 0);
          else
            m->closing = ENGINE_IO_SESSION_CLOSING_WRITE;
        }
      break;
    case ENGINE_IO_SESSION_INPUT_LINGER_TAKEN:
      if (m->closing == ENGINE_IO_SESSION_CLOSING_LINGER)
        m->closing = ENGINE_IO_SESSION_CLOSING_WEBSOCKET;
      else
        FUZZ_CHECK (out.len == 0);
      break;
    case ENGINE_IO_SESSION_INPUT_WAIT_OVER:
      if (m->closing == ENGINE_IO_SESSION_CLOSING_NONE || m->closing == ENGINE_IO_SESSION_CLOSING_DONE)
        FUZZ_CHECK (out.len == 0);
      else
        m->closing = ENGINE_IO_SESSION_CLOSING_DONE;
      break;
    case ENGINE_IO_SESSION_INPUT_FINISHED:
      m->closing = ENGINE_IO_SESSION_CLOSING_DONE;
      break;
    case ENGINE_IO_SESSION_INPUT_TIMER:
      if (input->timer == ENGINE_IO_SESSION_TIMER_LINGER && out.len > 0)
        {
          FUZZ_CHECK (m->closing == ENGINE_IO_SESSION_CLOSING_LINGER);
          m->closing = !input->polled && !input->writing ? ENGINE_IO_SESSION_CLOSING_DONE
                                                         : ENGINE_IO_SESSION_CLOSING_WRITE;
        }
      else if (input->timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE && out.len > 0)
        {
          FUZZ_CHECK (m->closing == ENGINE_IO_SESSION_CLOSING_WRITE);
          m->closing = ENGINE_IO_SESSION_CLOSING_DONE;
        }
      break;
    default:
      break;
    }

  if ((before == ENGINE_IO_SESSION_NEW && input->kind != ENGINE_IO_SESSION_INPUT_START && !closing_input) ||
      (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && input->close_requested))
    FUZZ_CHECK (out.len == 0);
  /* After the close, nothing but the upgrade's end: a probe kept through
   * it, or settled by the runtime's CLOSE input. */
  if (before == ENGINE_IO_SESSION_CLOSED)
    for (guint i = 0; i < out.len; i++)
      FUZZ_CHECK ((closing_input &&
                   (((out.actions[i].kind == ENGINE_IO_SESSION_ACTION_TIMER_START ||
                      out.actions[i].kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP) &&
                     out.actions[i].timer >= ENGINE_IO_SESSION_TIMER_LINGER) ||
                    out.actions[i].kind == ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE ||
                    out.actions[i].kind == ENGINE_IO_SESSION_ACTION_FINISH_CLOSE)) ||
                  (m->probe &&
                  ((out.actions[i].kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP &&
                    out.actions[i].timer == ENGINE_IO_SESSION_TIMER_UPGRADE) ||
                   out.actions[i].kind == ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE ||
                   (out.actions[i].kind == ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE &&
                    upgrade_before == ENGINE_IO_SESSION_UPGRADE_KEPT))));
  /* The closing inputs: the closing timers, the probe's end, MARK,
   * FINISH_CLOSE only (and CLOSE the heartbeat's stops). */
  if (closing_input)
    for (guint i = 0; i < out.len; i++)
      {
        EngineIOSessionAction *a = &out.actions[i];

        FUZZ_CHECK (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_START || a->kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP ||
                    a->kind == ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE ||
                    a->kind == ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE ||
                    a->kind == ENGINE_IO_SESSION_ACTION_FINISH_CLOSE);
        if (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_START)
          FUZZ_CHECK (a->timer >= ENGINE_IO_SESSION_TIMER_LINGER);
        if (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP && input->kind != ENGINE_IO_SESSION_INPUT_CLOSE &&
            input->kind != ENGINE_IO_SESSION_INPUT_FINISHED)
          FUZZ_CHECK (a->timer >= ENGINE_IO_SESSION_TIMER_LINGER);
      }
  else
    for (guint i = 0; i < out.len; i++)
      FUZZ_CHECK (out.actions[i].kind != ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE &&
                  out.actions[i].kind != ENGINE_IO_SESSION_ACTION_FINISH_CLOSE &&
                  ((out.actions[i].kind != ENGINE_IO_SESSION_ACTION_TIMER_START &&
                    out.actions[i].kind != ENGINE_IO_SESSION_ACTION_TIMER_STOP) ||
                   out.actions[i].timer < ENGINE_IO_SESSION_TIMER_LINGER));
  /* After the close finished, no timer starts. */
  if (m->finishes > 0)
    for (guint i = 0; i < out.len; i++)
      FUZZ_CHECK (out.actions[i].kind != ENGINE_IO_SESSION_ACTION_TIMER_START &&
                  out.actions[i].kind != ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE);
  /* No probe, no probe's actions. */
  if (probe_input && !m->probe && input->kind != ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED)
    FUZZ_CHECK (out.len == 0);
  if (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && out.len > 0)
    {
      FUZZ_CHECK (out.actions[0].kind == ENGINE_IO_SESSION_ACTION_RECEIVED);
      FUZZ_CHECK (out.actions[0].packet == input->packet);
    }

  for (guint i = 0; i < out.len; i++)
    {
      EngineIOSessionAction *a = &out.actions[i];

      /* A CLOSE is answered with timer stops, at most one probe given
       * up and the close's timing only: the runtime's close carries them
       * out itself (engineio-socket-close.c). */
      if (input->kind == ENGINE_IO_SESSION_INPUT_CLOSE)
        FUZZ_CHECK (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP ||
                    a->kind == ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE ||
                    (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_START && i == out.len - 1) ||
                    a->kind == ENGINE_IO_SESSION_ACTION_FINISH_CLOSE);
      /* The probe's inputs: the upgrade's actions and its timer only. */
      if (probe_input)
        FUZZ_CHECK (a->kind != ENGINE_IO_SESSION_ACTION_RECEIVED && a->kind != ENGINE_IO_SESSION_ACTION_SEND &&
                    a->kind != ENGINE_IO_SESSION_ACTION_DELIVER && a->kind != ENGINE_IO_SESSION_ACTION_HEARTBEAT &&
                    a->kind != ENGINE_IO_SESSION_ACTION_CLOSE &&
                    ((a->kind != ENGINE_IO_SESSION_ACTION_TIMER_START && a->kind != ENGINE_IO_SESSION_ACTION_TIMER_STOP) ||
                     a->timer == ENGINE_IO_SESSION_TIMER_UPGRADE));

      switch (a->kind)
        {
        case ENGINE_IO_SESSION_ACTION_TIMER_START:
          FUZZ_CHECK (a->timer < ENGINE_IO_SESSION_N_TIMERS);
          FUZZ_CHECK (a->deadline_us >= m->now);
          if (a->timer == ENGINE_IO_SESSION_TIMER_UPGRADE)
            {
              FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED && !m->probe);
              FUZZ_CHECK (!m->armed[a->timer] && a->deadline_us == m->now + m->upgrade_us);
              m->probe = TRUE;
              m->answered = FALSE;
            }
          else if (a->timer == ENGINE_IO_SESSION_TIMER_LINGER)
            {
              FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_CLOSE && input->wait == ENGINE_IO_SESSION_WAIT_LINGER);
              FUZZ_CHECK (a->deadline_us == m->now + MIN (m->linger_us, m->timeout_us));
              m->closing_steps++;
            }
          else if (a->timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE)
            {
              if (input->kind == ENGINE_IO_SESSION_INPUT_CLOSE)
                FUZZ_CHECK (input->wait == ENGINE_IO_SESSION_WAIT_POLL &&
                            a->deadline_us == m->now + m->linger_us + bound);
              else if (input->kind == ENGINE_IO_SESSION_INPUT_TIMER)
                FUZZ_CHECK (input->timer == ENGINE_IO_SESSION_TIMER_LINGER && (input->polled || input->writing) &&
                            a->deadline_us == m->now + bound);
              else
                FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_SHUTDOWN &&
                            (closing_before == ENGINE_IO_SESSION_CLOSING_WRITE ||
                             (closing_before == ENGINE_IO_SESSION_CLOSING_WEBSOCKET && !input->websocket)) &&
                            a->deadline_us == m->now + m->linger_us);
              FUZZ_CHECK (i == out.len - 1);
              m->closing_steps++;
            }
          else if (a->timer == ENGINE_IO_SESSION_TIMER_PING)
            FUZZ_CHECK (v4 && a->deadline_us == m->now + m->interval_us);
          else if (v4)
            FUZZ_CHECK (a->deadline_us == m->now + m->timeout_us + m->grace_us);
          else
            FUZZ_CHECK (a->deadline_us == m->now + m->interval_us + m->timeout_us + m->grace_us);
          m->armed[a->timer] = TRUE;
          m->deadline[a->timer] = a->deadline_us;
          break;

        case ENGINE_IO_SESSION_ACTION_TIMER_STOP:
          FUZZ_CHECK (a->timer < ENGINE_IO_SESSION_N_TIMERS);
          FUZZ_CHECK (m->armed[a->timer]);
          m->armed[a->timer] = FALSE;
          /* The upgrade timer is stopped only to end the probe, at once. */
          if (a->timer == ENGINE_IO_SESSION_TIMER_UPGRADE)
            FUZZ_CHECK (i + 1 < out.len &&
                        (out.actions[i + 1].kind == ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE ||
                         out.actions[i + 1].kind == ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE));
          break;

        case ENGINE_IO_SESSION_ACTION_RECEIVED:
          FUZZ_CHECK (i == 0 && input->kind == ENGINE_IO_SESSION_INPUT_PACKET);
          break;

        case ENGINE_IO_SESSION_ACTION_SEND:
          FUZZ_CHECK (a->packet != NULL);
          if (v4)
            {
              FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_TIMER);
              FUZZ_CHECK (engine_io_packet_get_packet_type (a->packet) == ENGINE_IO_PACKET_PING);
              FUZZ_CHECK (m->outstanding == 0);
              m->outstanding++;
              m->ping_sent = m->now;
            }
          else
            {
              FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && type == ENGINE_IO_PACKET_PING);
              FUZZ_CHECK (engine_io_packet_get_packet_type (a->packet) == ENGINE_IO_PACKET_PONG);
              FUZZ_CHECK (engine_io_packet_is_binary (a->packet) == engine_io_packet_is_binary (input->packet));
              FUZZ_CHECK (g_bytes_equal (engine_io_packet_get_data (a->packet),
                                         engine_io_packet_get_data (input->packet)));
            }
          break;

        case ENGINE_IO_SESSION_ACTION_HEARTBEAT:
          FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PACKET);
          if (v4)
            {
              FUZZ_CHECK (type == ENGINE_IO_PACKET_PONG && m->outstanding == 1);
              FUZZ_CHECK (a->rtt_us == m->now - m->ping_sent && a->rtt_us >= 0);
              m->outstanding = 0;
            }
          else
            FUZZ_CHECK (type == ENGINE_IO_PACKET_PING && a->rtt_us == -1);
          break;

        case ENGINE_IO_SESSION_ACTION_DELIVER:
          FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && type == ENGINE_IO_PACKET_MESSAGE);
          FUZZ_CHECK (a->packet == input->packet && i == out.len - 1);
          break;

        case ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE:
          FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PROBE_PACKET && is_probe_ping (input->packet));
          FUZZ_CHECK (m->probe && before == ENGINE_IO_SESSION_OPEN && i == 0 && out.len == 3);
          FUZZ_CHECK (is_probe_ping (input->packet));
          FUZZ_CHECK (a->packet != NULL && engine_io_packet_get_packet_type (a->packet) == ENGINE_IO_PACKET_PONG &&
                      !engine_io_packet_is_binary (a->packet) &&
                      g_strcmp0 (engine_io_packet_get_text (a->packet, NULL), "probe") == 0);
          m->answered = TRUE;
          break;

        case ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP:
          FUZZ_CHECK (i == 1 && out.actions[0].kind == ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE);
          break;

        case ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING:
          FUZZ_CHECK (i == 2 && i == out.len - 1 && out.actions[1].kind == ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP);
          break;

        case ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE:
          FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_PROBE_PACKET && type == ENGINE_IO_PACKET_UPGRADE);
          /* Never without `3probe` on that probe. */
          FUZZ_CHECK (m->probe && m->answered && m->upgrades == 0);
          FUZZ_CHECK (i == out.len - 1 && !m->armed[ENGINE_IO_SESSION_TIMER_UPGRADE]);
          FUZZ_CHECK (a->closing == (before == ENGINE_IO_SESSION_CLOSED));
          m->upgrades++;
          m->probe = m->answered = FALSE;
          break;

        case ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE:
          FUZZ_CHECK (input->kind == ENGINE_IO_SESSION_INPUT_TIMER && input->timer == ENGINE_IO_SESSION_TIMER_LINGER);
          FUZZ_CHECK (!input->polled && input->writing && i == 0 && out.len == 2 &&
                      out.actions[1].kind == ENGINE_IO_SESSION_ACTION_TIMER_START &&
                      out.actions[1].timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE);
          break;

        case ENGINE_IO_SESSION_ACTION_FINISH_CLOSE:
          FUZZ_CHECK (m->finishes == 0 && i == out.len - 1);
          FUZZ_CHECK (!m->armed[ENGINE_IO_SESSION_TIMER_LINGER] && !m->armed[ENGINE_IO_SESSION_TIMER_CLOSE_WRITE]);
          FUZZ_CHECK (!model_any_armed (m));
          FUZZ_CHECK ((input->kind == ENGINE_IO_SESSION_INPUT_CLOSE && input->wait == ENGINE_IO_SESSION_WAIT_NOTHING) ||
                      input->kind == ENGINE_IO_SESSION_INPUT_WAIT_OVER ||
                      (input->kind == ENGINE_IO_SESSION_INPUT_TIMER &&
                       (input->timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE ||
                        (input->timer == ENGINE_IO_SESSION_TIMER_LINGER && !input->polled && !input->writing))));
          m->finishes++;
          m->closing_steps++;
          break;

        case ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE:
          FUZZ_CHECK (m->probe && !m->armed[ENGINE_IO_SESSION_TIMER_UPGRADE]);
          /* Last, but for the close's timing after it. */
          for (guint j = i + 1; j < out.len; j++)
            FUZZ_CHECK (out.actions[j].kind == ENGINE_IO_SESSION_ACTION_FINISH_CLOSE ||
                        ((out.actions[j].kind == ENGINE_IO_SESSION_ACTION_TIMER_START ||
                          out.actions[j].kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP) &&
                         out.actions[j].timer >= ENGINE_IO_SESSION_TIMER_LINGER));
          switch (input->kind)
            {
            case ENGINE_IO_SESSION_INPUT_PROBE_PACKET:
              FUZZ_CHECK (a->code == 1002);
              FUZZ_CHECK (g_strcmp0 (a->description, input->packet == NULL ? ENGINE_IO_SESSION_PROBE_BAD
                                                                            : ENGINE_IO_SESSION_PROBE_UNEXPECTED) == 0);
              FUZZ_CHECK (input->packet == NULL || !is_probe_ping (input->packet) ||
                          upgrade_before == ENGINE_IO_SESSION_UPGRADE_KEPT);
              FUZZ_CHECK (input->packet == NULL || type != ENGINE_IO_PACKET_UPGRADE || !m->answered);
              break;
            case ENGINE_IO_SESSION_INPUT_PROBE_LOST:
              FUZZ_CHECK (a->code == (input->stalled ? 1008 : 0) && a->description == NULL);
              break;
            case ENGINE_IO_SESSION_INPUT_TIMER:
              FUZZ_CHECK (input->timer == ENGINE_IO_SESSION_TIMER_UPGRADE && out.len == 1);
              FUZZ_CHECK (a->code == 1000 && g_strcmp0 (a->description, ENGINE_IO_SESSION_PROBE_TIMEOUT) == 0);
              break;
            case ENGINE_IO_SESSION_INPUT_CLOSE:
              FUZZ_CHECK (a->code == input->probe_code && a->description == NULL);
              /* Kept only an answered probe, for a close that lingers. */
              FUZZ_CHECK (upgrade_before == ENGINE_IO_SESSION_UPGRADE_KEPT ||
                          input->wait != ENGINE_IO_SESSION_WAIT_LINGER || !m->answered);
              break;
            case ENGINE_IO_SESSION_INPUT_FINISHED:
              /* The close finishing frees a probe (kept, or one the
               * runtime's CLOSE never settled). */
              FUZZ_CHECK (a->code == 0 && a->description == NULL);
              break;
            default:
              FUZZ_CHECK (FALSE);
            }
          m->give_ups++;
          m->probe = m->answered = FALSE;
          break;

        case ENGINE_IO_SESSION_ACTION_CLOSE:
          FUZZ_CHECK (i == out.len - 1);
          FUZZ_CHECK (input->kind != ENGINE_IO_SESSION_INPUT_CLOSE);
          FUZZ_CHECK (!model_any_armed (m));
          FUZZ_CHECK (m->closes == 0);
          m->closes++;
          if (a->client_closed)
            FUZZ_CHECK (type == ENGINE_IO_PACKET_CLOSE && a->reason == ENGINE_IO_SESSION_CLOSE_TRANSPORT_CLOSE);
          if (a->reason == ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR)
            FUZZ_CHECK (g_strcmp0 (a->description, v4 ? ENGINE_IO_SESSION_V4_PING_DESCRIPTION
                                                       : ENGINE_IO_SESSION_V3_PONG_DESCRIPTION) == 0);
          break;

        default:
          FUZZ_CHECK (FALSE);
        }
    }

  /* The state after the input. */
  for (guint t = 0; t < ENGINE_IO_SESSION_N_TIMERS; t++)
    FUZZ_CHECK (m->armed[t] == engine_io_session_machine_timer_armed (&m->machine, t));
  /* The closing timers: armed exactly in their closing state. */
  FUZZ_CHECK (engine_io_session_machine_get_closing (&m->machine) == m->closing);
  FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_LINGER] == (m->closing == ENGINE_IO_SESSION_CLOSING_LINGER));
  FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_CLOSE_WRITE] == (m->closing == ENGINE_IO_SESSION_CLOSING_WRITE));
  FUZZ_CHECK (m->finishes <= 1);
  if (m->closing != ENGINE_IO_SESSION_CLOSING_NONE)
    FUZZ_CHECK (engine_io_session_machine_get_state (&m->machine) == ENGINE_IO_SESSION_CLOSED);
  /* After FINISHED, nothing is armed. */
  if (input->kind == ENGINE_IO_SESSION_INPUT_FINISHED)
    for (guint t = 0; t < ENGINE_IO_SESSION_N_TIMERS; t++)
      FUZZ_CHECK (!m->armed[t]);
  /* The upgrade timer: armed exactly while there is a probe. */
  FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_UPGRADE] == m->probe);
  switch (engine_io_session_machine_get_upgrade (&m->machine))
    {
    case ENGINE_IO_SESSION_UPGRADE_NONE:
    case ENGINE_IO_SESSION_UPGRADE_DONE:
      FUZZ_CHECK (!m->probe);
      FUZZ_CHECK ((engine_io_session_machine_get_upgrade (&m->machine) == ENGINE_IO_SESSION_UPGRADE_DONE) ==
                  (m->upgrades == 1));
      break;
    case ENGINE_IO_SESSION_UPGRADE_PROBING:
      /* (Either may outlive a close of the machine's own, until the
       * runtime's CLOSE input, which follows it, settles the probe.) */
      FUZZ_CHECK (m->probe && !m->answered);
      break;
    case ENGINE_IO_SESSION_UPGRADE_UPGRADING:
      FUZZ_CHECK (m->probe && m->answered);
      break;
    case ENGINE_IO_SESSION_UPGRADE_KEPT:
      FUZZ_CHECK (m->probe && m->answered &&
                  engine_io_session_machine_get_state (&m->machine) == ENGINE_IO_SESSION_CLOSED);
      break;
    default:
      FUZZ_CHECK (FALSE);
    }
  switch (engine_io_session_machine_get_state (&m->machine))
    {
    case ENGINE_IO_SESSION_NEW:
      FUZZ_CHECK (!model_any_armed (m));
      break;
    case ENGINE_IO_SESSION_OPEN:
      FUZZ_CHECK (m->closes == 0);
      if (v4)
        {
          FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_PING] != m->armed[ENGINE_IO_SESSION_TIMER_HEARTBEAT]);
          FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_HEARTBEAT] == (m->outstanding == 1));
          FUZZ_CHECK (engine_io_session_machine_ping_outstanding (&m->machine) == (m->outstanding == 1));
        }
      else
        {
          FUZZ_CHECK (m->armed[ENGINE_IO_SESSION_TIMER_HEARTBEAT] && !m->armed[ENGINE_IO_SESSION_TIMER_PING]);
          /* Any packet taken moves the expiry. */
          if (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && out.len > 0)
            FUZZ_CHECK (m->deadline[ENGINE_IO_SESSION_TIMER_HEARTBEAT] ==
                        m->now + m->interval_us + m->timeout_us + m->grace_us);
        }
      break;
    case ENGINE_IO_SESSION_CLOSED:
      FUZZ_CHECK (!model_any_armed (m));
      break;
    default:
      FUZZ_CHECK (FALSE);
    }

  engine_io_session_actions_clear (&out);
  FUZZ_CHECK (out.len == 0);
}

static EngineIOPacket *
make_packet (Reader *r)
{
  guint spec = take (r);
  EngineIOPacketType type = spec % 7;
  gboolean binary = (spec & 0x80) != 0;
  gsize len = MIN ((spec >> 3) & 0x0f, r->size);
  g_autoptr(GBytes) bytes = NULL;
  EngineIOPacket *packet;

  if (binary)
    {
      bytes = g_bytes_new (r->data, len);
      packet = engine_io_packet_new_binary (type, bytes);
    }
  else
    {
      /* Any bytes, made valid UTF-8 (the codec only hands out that). */
      g_autofree char *text = g_utf8_make_valid ((const char *) r->data, len);

      packet = engine_io_packet_new_text (type, text, -1);
    }
  r->data += len;
  r->size -= len;
  return packet;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  Reader r = { data, size };
  Model m = { 0, };
  guint first = take (&r);

  m.version = (first & 1) ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
  /* Small settings (0 included), so deadlines come often and collide. */
  m.interval_us = take (&r) * G_GINT64_CONSTANT (1000);
  m.timeout_us = take (&r) * G_GINT64_CONSTANT (1000);
  m.grace_us = (first >> 1) * G_GINT64_CONSTANT (1000);
  m.now = (gint64) take (&r) << 20;
  m.upgrade_us = take (&r) * G_GINT64_CONSTANT (1000);
  m.linger_us = take (&r) * G_GINT64_CONSTANT (1000);
  m.write_us = take (&r) * G_GINT64_CONSTANT (4000);
  m.timings = (EngineIOSessionTimings) {
    m.interval_us / 1000, m.timeout_us / 1000, m.grace_us / 1000,
    m.upgrade_us / 1000, m.linger_us / 1000, m.write_us / 1000,
  };
  engine_io_session_machine_init (&m.machine, m.version, &m.timings);

  while (r.size > 0)
    {
      guint op = take (&r);
      EngineIOSessionInput input = { 0, };

      /* Time passes (or not) before each input. */
      m.now += (op >> 4) * G_GINT64_CONSTANT (700);

      switch (op & 0x0f)
        {
        case 0:
          input.kind = ENGINE_IO_SESSION_INPUT_START;
          run (&m, &input);
          break;

        case 1: case 2: case 3: case 4: case 5: case 6:
          {
            g_autoptr(EngineIOPacket) packet = make_packet (&r);

            input.kind = ENGINE_IO_SESSION_INPUT_PACKET;
            input.packet = packet;
            input.close_requested = (op & 0x0f) == 6;
            run (&m, &input);
          }
          break;

        case 7: case 8: case 9:
          {
            /* The executor: time goes on to the earliest deadline armed,
             * and that timer fires. */
            gint t = -1;

            for (guint i = 0; i < ENGINE_IO_SESSION_N_TIMERS; i++)
              if (m.armed[i] && (t < 0 || m.deadline[i] < m.deadline[t]))
                t = i;
            if (t < 0)
              break;
            m.now = MAX (m.now, m.deadline[t]);
            m.armed[t] = FALSE;  /* it fired: disarmed without a TIMER_STOP */
            input.kind = ENGINE_IO_SESSION_INPUT_TIMER;
            input.timer = t;
            if (t == ENGINE_IO_SESSION_TIMER_LINGER)
              {
                /* What the runtime saw when it claimed its linger flag. */
                guint saw = take (&r);

                input.polled = saw & 1;
                input.writing = (saw >> 1) & 1;
              }
            {
              guint closes = m.closes;
              guint outstanding = m.outstanding;
              guint give_ups = m.give_ups;
              guint closing_steps = m.closing_steps;

              run (&m, &input);
              FUZZ_CHECK (!m.armed[t]);
              FUZZ_CHECK (m.closes > closes || m.outstanding > outstanding || m.give_ups > give_ups ||
                          m.closing_steps > closing_steps);
            }
          }
          break;

        case 10:
          /* A timer that is not armed (a stale firing): nothing. */
          for (guint t = 0; t < ENGINE_IO_SESSION_N_TIMERS; t++)
            if (!m.armed[t])
              {
                EngineIOSessionActions out;

                input.kind = ENGINE_IO_SESSION_INPUT_TIMER;
                input.timer = t;
                engine_io_session_machine_handle (&m.machine, &input, m.now, &out);
                FUZZ_CHECK (out.len == 0);
              }
          break;

        case 11:
          {
            guint how = take (&r);

            input.kind = ENGINE_IO_SESSION_INPUT_CLOSE;
            input.wait = how & 3;
            input.probe_code = (how & 4) ? 1001 : (how & 8) ? 0 : 1000;
            input.shutdown = (how >> 4) & 1;
            run (&m, &input);
          }
          break;

        case 12:
          input.kind = ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED;
          run (&m, &input);
          break;

        case 13:
          {
            /* A packet on the probe: `2probe`, `5`, a bad frame, or any. */
            guint which = take (&r) % 4;
            g_autoptr(EngineIOPacket) packet = which == 0 ? engine_io_packet_new_text (ENGINE_IO_PACKET_PING, "probe", 5)
                                             : which == 1 ? engine_io_packet_new (ENGINE_IO_PACKET_UPGRADE)
                                             : which == 2 ? NULL
                                             : make_packet (&r);

            input.kind = ENGINE_IO_SESSION_INPUT_PROBE_PACKET;
            input.packet = packet;
            run (&m, &input);
          }
          break;

        case 14:
          input.kind = ENGINE_IO_SESSION_INPUT_PROBE_LOST;
          input.stalled = take (&r) & 1;
          run (&m, &input);
          break;

        default:
          {
            /* The close's other inputs, or only time passing. */
            guint which = take (&r);

            switch (which % 8)
              {
              case 4:
                input.kind = ENGINE_IO_SESSION_INPUT_SHUTDOWN;
                input.websocket = (which >> 3) & 1;
                run (&m, &input);
                break;
              case 5:
                input.kind = ENGINE_IO_SESSION_INPUT_LINGER_TAKEN;
                run (&m, &input);
                break;
              case 6:
                input.kind = ENGINE_IO_SESSION_INPUT_WAIT_OVER;
                run (&m, &input);
                break;
              case 7:
                input.kind = ENGINE_IO_SESSION_INPUT_FINISHED;
                run (&m, &input);
                break;
              default:
                m.now += which * G_GINT64_CONSTANT (1000);
                break;
              }
          }
          break;
        }
    }

  return 0;
}
