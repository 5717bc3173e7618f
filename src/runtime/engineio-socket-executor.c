/* engineio-socket-executor.c: the session machine's executor
 *
 * Session context: feeds the session machine
 * (src/core/engineio-session-machine.c: the heartbeat and the rules for
 * the client's packets) its inputs and carries out its actions: its
 * timers as GSources on the session's context, its sends, its signals,
 * the delivery of a message to the application, its closes. Called by
 * the event source (engineio-socket-events.c), the WebSocket transport
 * (a message read: engine_io_socket_handle_packet()) and the public
 * object (the start); it calls the close, the queue and the delivery
 * below it, and no file above.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"


/* The machine's timers (engineio-session-machine.c) */

static void
machine_timer_fired (EngineIOSocket       *self,
                     EngineIOSessionTimer  timer)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_TIMER, .timer = timer };

  g_clear_pointer (&self->timers[timer], g_source_unref);
  engine_io_socket_run_machine (self, &input, g_get_monotonic_time ());
}

static gboolean
ping_timer_cb (gpointer data)
{
  machine_timer_fired (data, ENGINE_IO_SESSION_TIMER_PING);
  return G_SOURCE_REMOVE;
}

static gboolean
heartbeat_timer_cb (gpointer data)
{
  machine_timer_fired (data, ENGINE_IO_SESSION_TIMER_HEARTBEAT);
  return G_SOURCE_REMOVE;
}

/* @now_us: the time the machine was given; deadlines are that time plus a
 * number of milliseconds. An armed timer gets its new deadline in place
 * (v3 moves the expiry on every packet received). */
static void
machine_timer_start (EngineIOSocket       *self,
                     EngineIOSessionTimer  timer,
                     gint64                deadline_us,
                     gint64                now_us)
{
  gint64 ms;

  if (self->timers[timer] != NULL)
    {
      g_source_set_ready_time (self->timers[timer], deadline_us);
      return;
    }
  ms = CLAMP ((deadline_us - now_us) / 1000, 0, (gint64) G_MAXUINT);
  if (timer == ENGINE_IO_SESSION_TIMER_PING)
    self->timers[timer] = engine_io_socket_add_timeout (self, (guint) ms, ping_timer_cb, "[engineio] ping");
  else
    self->timers[timer] = engine_io_socket_add_timeout (self, (guint) ms, heartbeat_timer_cb,
                                                        self->version == ENGINE_IO_PROTOCOL_V4
                                                          ? "[engineio] pong deadline" : "[engineio] expiry");
}

static EngineIOCloseReason
machine_close_reason (EngineIOSessionCloseReason reason)
{
  switch (reason)
    {
    case ENGINE_IO_SESSION_CLOSE_PING_TIMEOUT:
      return ENGINE_IO_CLOSE_REASON_PING_TIMEOUT;
    case ENGINE_IO_SESSION_CLOSE_TRANSPORT_CLOSE:
      return ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE;
    case ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR:
    default:
      return ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR;
    }
}

/* Running the machine (session context) */

/* A message for the application: its message function, ::message, or the
 * receive queue. */
static void
deliver_message (EngineIOSocket *self,
                 EngineIOPacket *packet)
{
  if (engine_io_socket_call_message_func (self, packet))
    return;
  if (g_signal_has_handler_pending (self, engine_io_socket_signals[SIGNAL_MESSAGE], 0, FALSE))
    {
      if (engine_io_packet_is_binary (packet))
        g_signal_emit (self, engine_io_socket_signals[SIGNAL_MESSAGE], 0, NULL, engine_io_packet_get_data (packet));
      else
        g_signal_emit (self, engine_io_socket_signals[SIGNAL_MESSAGE], 0, engine_io_packet_get_text (packet, NULL), NULL);
    }
  else
    {
      /* For engine_io_socket_receive(). Reading stops at the receive
       * mark (engine_io_socket_input_over_locked()), so the queue passes twice the mark
       * only if something is badly wrong: then the session ends. */
      gsize size = engine_io_packet_get_footprint (packet) + RECEIVED_OVERHEAD;
      guint64 mark = self->config->receive_queue_high_water;
      GTask *task = NULL;
      gboolean over;

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      ENGINE_IO_LOCK (&self->recv_lock, RECV);
      /* A receive_async() caller waiting takes it at once: never
       * queued, it does not count against the bound. */
      task = engine_io_socket_receive_take_task_locked (self);
      over = task == NULL && mark > 0 && self->received_bytes + size > 2 * mark;
      if (task == NULL && !over)
        {
          self->received_bytes += size;
          g_queue_push_tail (&self->received, engine_io_packet_ref (packet));
          g_cond_broadcast (&self->recv_cond);
        }
      ENGINE_IO_UNLOCK (&self->recv_lock);
      ENGINE_IO_UNLOCK (&self->state_lock);
      if (task != NULL)
        engine_io_socket_receive_task_return (task, packet);
      if (over)
        {
          self->ws_close_code = 1008;  /* policy violation */
          engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR, RECEIVE_OVER_DESCRIPTION);
        }
    }
}

/* Session context: the executor. Feeds @input to the session machine and
 * carries out its actions, in order: timers become GSources on the
 * session's context, packets go to the send queue, and the rest are
 * signals and closes. An action that runs user code (a signal) may see
 * the session's close begin (a handler that iterates the context:
 * engine_io_socket_do_close() has fed the machine its CLOSE and stopped
 * its timers): the actions left are stale then, and not carried out.
 * @now_us: g_get_monotonic_time(), read by the caller (the callers on the
 * message path have just read it: no second clock read per message). */
void
engine_io_socket_run_machine (EngineIOSocket             *self,
                              const EngineIOSessionInput *input,
                              gint64                      now_us)
{
  EngineIOSessionActions actions;
  gint64 now = now_us;

  engine_io_session_machine_handle (&self->machine, input, now, &actions);

  for (guint i = 0; i < actions.len; i++)
    {
      EngineIOSessionAction *action = &actions.actions[i];
      gboolean user_code = FALSE;

      switch (action->kind)
        {
        case ENGINE_IO_SESSION_ACTION_TIMER_START:
          machine_timer_start (self, action->timer, action->deadline_us, now);
          break;

        case ENGINE_IO_SESSION_ACTION_TIMER_STOP:
          engine_io_socket_clear_source (&self->timers[action->timer]);
          break;

        case ENGINE_IO_SESSION_ACTION_RECEIVED:
          engine_io_counter_add (&self->counters->packets_in, 1);
          engine_io_counter_add (&self->counters->bytes_in, engine_io_socket_packet_size (action->packet));
          if (engine_io_socket_wants_signal (self, SIGNAL_PACKET))
            g_signal_emit (self, engine_io_socket_signals[SIGNAL_PACKET], 0, action->packet);
          user_code = TRUE;
          break;

        case ENGINE_IO_SESSION_ACTION_SEND:
          engine_io_socket_enqueue (self, g_steal_pointer (&action->packet), NULL, NULL, NULL, TRUE, NULL);
          break;

        case ENGINE_IO_SESSION_ACTION_HEARTBEAT:
          if (action->rtt_us >= 0)
            engine_io_counters_record_rtt (self->counters, action->rtt_us);
          g_signal_emit (self, engine_io_socket_signals[SIGNAL_HEARTBEAT], 0);
          user_code = TRUE;
          break;

        case ENGINE_IO_SESSION_ACTION_DELIVER:
          deliver_message (self, action->packet);
          user_code = TRUE;
          break;

        case ENGINE_IO_SESSION_ACTION_CLOSE:
          if (action->client_closed)
            self->client_closed = TRUE;
          engine_io_socket_do_close (self, machine_close_reason (action->reason), action->description);
          break;

        default:
          g_assert_not_reached ();
        }

      /* (Not the machine's state: it is CLOSED already when the close is
       * one of this input's own actions, still to come.) */
      if (user_code && self->state != STATE_OPEN)
        break;
    }

  engine_io_session_actions_clear (&actions);
}

/* Session context: a packet from the client, at @now_us (the machine's
 * deadlines and round trip are taken at its delivery, before the ::packet
 * handlers run). A close requested from any thread is part of the
 * machine's input. */
void
engine_io_socket_handle_packet (EngineIOSocket *self,
                                EngineIOPacket *packet,
                                gint64          now_us)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_PACKET,
    .packet = packet,
    .close_requested = g_atomic_int_get (&self->close_requested),
  };

  engine_io_socket_run_machine (self, &input, now_us);
}
