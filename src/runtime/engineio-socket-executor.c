/* engineio-socket-executor.c: the session machine's executor
 *
 * Session context: feeds the session machine
 * (src/core/engineio-session-machine.c: the heartbeat, the rules for the
 * client's packets and the upgrade's) its inputs and carries out its
 * actions: its timers as GSources on the session's context, its sends,
 * its signals, the delivery of a message to the application, its closes,
 * and the upgrade's I/O (the probe's `3probe`, the poll released with a
 * noop, the switch of transport, a probe given up). Called by the event
 * source (engineio-socket-events.c), the WebSocket transport (a message
 * read: engine_io_socket_handle_packet(); the probe's inputs) and the
 * public object (the start); it calls the close, the queue, the
 * WebSocket output and the delivery below it, and no file above.
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

static gboolean
upgrade_timer_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_debug ("socket %s: upgrade probe timed out", self->id);
  machine_timer_fired (self, ENGINE_IO_SESSION_TIMER_UPGRADE);
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
  else if (timer == ENGINE_IO_SESSION_TIMER_UPGRADE)
    self->timers[timer] = engine_io_socket_add_timeout (self, (guint) ms, upgrade_timer_cb,
                                                        "[engineio] upgrade deadline");
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

/* The upgrade's actions (session context) */

/* RELEASE_POLL_NOOP: polls get a noop while upgrading (the serving
 * threads read the flag under the lock); the waiting one gets it now. */
static void
upgrade_release_poll (EngineIOSocket *self)
{
  EngineIORequest *resume;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  self->upgrading = TRUE;
  resume = engine_io_socket_release_poll_with_noop_locked (self);
  ENGINE_IO_UNLOCK (&self->state_lock);
  if (resume != NULL)
    engine_io_core_request_resume (resume);
}

static void
upgrade_count (EngineIOSocket *self)
{
  engine_io_counter_sub (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_POLLING, self->version), 1);
  engine_io_counter_add (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_WEBSOCKET, self->version), 1);
  engine_io_counter_add (&self->counters->upgrades, 1);
}

/* COMPLETE_UPGRADE, open: the probe is the transport. A waiting poll
 * gets a noop and returns. */
static void
upgrade_complete (EngineIOSocket *self)
{
  EngineIORequest *resume;

  self->ws_probe = FALSE;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  self->upgrading = FALSE;
  g_atomic_int_set (&self->transport, ENGINE_IO_TRANSPORT_WEBSOCKET);
  resume = engine_io_socket_release_poll_with_noop_locked (self);
  ENGINE_IO_UNLOCK (&self->state_lock);
  upgrade_count (self);
  if (resume != NULL)
    engine_io_core_request_resume (resume);

  g_debug ("socket %s upgraded to websocket", self->id);
  g_object_notify_by_pspec (G_OBJECT (self), engine_io_socket_properties[PROP_TRANSPORT]);
  g_signal_emit (self, engine_io_socket_signals[SIGNAL_UPGRADE], 0, ENGINE_IO_TRANSPORT_WEBSOCKET);

  /* What was queued since the probe goes out now, in order, once. */
  engine_io_socket_ws_flush_outbound (self);
}

/* COMPLETE_UPGRADE, closing: the client's `5` on a probe kept through a
 * close (engine_io_socket_do_close()): as in the reference, the upgrade
 * completes, what was queued goes out on the WebSocket, then its close
 * frame; the session finishes when the WebSocket is closed (within its
 * close timeout). If the session's last poll came first, it answered `1`
 * and the session ends with it: the `5` is ignored (the probe stays until
 * the session finishes, which frees it). */
static void
upgrade_complete_closing (EngineIOSocket *self)
{
  g_autoptr(GPtrArray) packets = NULL;
  GPtrArray *notify = NULL;
  gboolean take;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  take = self->lingering;
  if (take)
    {
      self->lingering = FALSE;
      self->upgrading = FALSE;
      g_atomic_int_set (&self->transport, ENGINE_IO_TRANSPORT_WEBSOCKET);
    }
  ENGINE_IO_UNLOCK (&self->state_lock);
  if (!take)
    return;

  engine_io_socket_close_linger_taken (self);  /* the linger: no poll is waited for now */
  self->ws_probe = FALSE;
  upgrade_count (self);
  g_debug ("socket %s upgraded to websocket while closing", self->id);
  g_object_notify_by_pspec (G_OBJECT (self), engine_io_socket_properties[PROP_TRANSPORT]);

  if (engine_io_websocket_can_send (self->ws))
    {
      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      packets = engine_io_socket_take_outbound_locked (self, 0, 0, &notify);
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_socket_ws_send_packets (self, packets, notify);
    }
  engine_io_websocket_close (self->ws, self->ws_close_code, NULL);
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

        case ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE:
          engine_io_socket_ws_send_packet (self, action->packet);
          break;

        case ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP:
          upgrade_release_poll (self);
          break;

        case ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING:
          g_signal_emit (self, engine_io_socket_signals[SIGNAL_UPGRADING], 0, ENGINE_IO_TRANSPORT_WEBSOCKET);
          user_code = TRUE;
          break;

        case ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE:
          if (action->closing)
            upgrade_complete_closing (self);
          else
            upgrade_complete (self);
          break;

        case ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE:
          g_debug ("socket %s: upgrade probe given up (%u%s%s)", self->id, action->code,
                   action->description != NULL ? ": " : "",
                   action->description != NULL ? action->description : "");
          engine_io_socket_clear_probe (self, action->code, action->description);
          break;

        default:
          g_assert_not_reached ();
        }

      /* (Not the machine's state: it is CLOSED already when the close is
       * one of this input's own actions, still to come. The upgrade's
       * actions that run user code are last.) */
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
