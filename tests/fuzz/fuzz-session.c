/* fuzz-session.c: libFuzzer target for the session state machine
 * (src/core/engineio-session-machine.c)
 *
 * The input is a session: its first bytes pick the protocol version, the
 * heartbeat's settings and the start time; the rest is a sequence of
 * inputs (start, a packet of any type, text or binary, with or without a
 * close requested, a timer that is due, a timer that is not, the
 * runtime's close) with time passing between them. A model executor
 * carries the actions out and checks, after every input:
 *
 * - nothing happens before START or after the session is CLOSED, and
 *   nothing for a packet that comes with a close requested;
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
 * - a CLOSE comes once, last, after every timer was stopped;
 * - a due timer always does something (a ping or a close).
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
  EngineIOSessionMachine machine;
  EngineIOProtocolVersion version;
  gint64   interval_us, timeout_us, grace_us;
  gint64   now;
  gboolean armed[ENGINE_IO_SESSION_N_TIMERS];
  gint64   deadline[ENGINE_IO_SESSION_N_TIMERS];
  guint    outstanding;   /* v4 pings sent, not answered */
  gint64   ping_sent;
  guint    closes;
} Model;

static gboolean
model_any_armed (Model *m)
{
  for (guint t = 0; t < ENGINE_IO_SESSION_N_TIMERS; t++)
    if (m->armed[t])
      return TRUE;
  return FALSE;
}

/* Feeds @input and checks its actions against the model. */
static void
run (Model                      *m,
     const EngineIOSessionInput *input)
{
  EngineIOSessionActions out;
  EngineIOSessionState before = engine_io_session_machine_get_state (&m->machine);
  EngineIOPacketType type = input->packet != NULL ? engine_io_packet_get_packet_type (input->packet) : 0;
  gboolean v4 = m->version == ENGINE_IO_PROTOCOL_V4;

  engine_io_session_machine_handle (&m->machine, input, m->now, &out);
  FUZZ_CHECK (out.len <= ENGINE_IO_SESSION_MAX_ACTIONS);

  if (before == ENGINE_IO_SESSION_CLOSED ||
      (before == ENGINE_IO_SESSION_NEW && input->kind != ENGINE_IO_SESSION_INPUT_START) ||
      (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && input->close_requested))
    FUZZ_CHECK (out.len == 0);
  if (input->kind == ENGINE_IO_SESSION_INPUT_PACKET && out.len > 0)
    {
      FUZZ_CHECK (out.actions[0].kind == ENGINE_IO_SESSION_ACTION_RECEIVED);
      FUZZ_CHECK (out.actions[0].packet == input->packet);
    }

  for (guint i = 0; i < out.len; i++)
    {
      EngineIOSessionAction *a = &out.actions[i];

      /* A CLOSE is answered with timer stops only: the runtime's close
       * carries them out itself (engineio-socket-close.c). */
      if (input->kind == ENGINE_IO_SESSION_INPUT_CLOSE)
        FUZZ_CHECK (a->kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP);

      switch (a->kind)
        {
        case ENGINE_IO_SESSION_ACTION_TIMER_START:
          FUZZ_CHECK (a->timer < ENGINE_IO_SESSION_N_TIMERS);
          FUZZ_CHECK (a->deadline_us >= m->now);
          if (a->timer == ENGINE_IO_SESSION_TIMER_PING)
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
  engine_io_session_machine_init (&m.machine, m.version, m.interval_us / 1000, m.timeout_us / 1000,
                                  m.grace_us / 1000, 10000);

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
            {
              guint closes = m.closes;
              guint outstanding = m.outstanding;

              run (&m, &input);
              FUZZ_CHECK (!m.armed[t]);
              FUZZ_CHECK (m.closes > closes || m.outstanding > outstanding);
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
          input.kind = ENGINE_IO_SESSION_INPUT_CLOSE;
          run (&m, &input);
          break;

        default:
          /* Only time passes. */
          m.now += take (&r) * G_GINT64_CONSTANT (1000);
          break;
        }
    }

  return 0;
}
