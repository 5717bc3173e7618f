/* engineio-socket-events.c: a session's context: heartbeat, timers, events
 *
 * The session context's side: heartbeat and expiry timers, the handling
 * of a client's packets and of the events posted to the session (its
 * event source), and pausing or resuming the client's input.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Timers (session context) */

void
engine_io_socket_clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_source_unref (*source);
      *source = NULL;
    }
}

GSource *
engine_io_socket_add_timeout (EngineIOSocket *self,
                              guint           ms,
                              GSourceFunc     func,
                              const char     *name)
{
  GSource *source = g_timeout_source_new (ms);

  /* No reference: the socket destroys its timers when it closes, and the
   * server holds it until then. */
  g_source_set_callback (source, func, self, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, self->context);
  return source;
}

static gboolean
ping_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
send_ping_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->ping_source, g_source_unref);
  self->ping_sent_at = g_get_monotonic_time ();
  engine_io_socket_enqueue (self, engine_io_packet_new (ENGINE_IO_PACKET_PING), NULL, NULL, NULL, TRUE, NULL);
  engine_io_socket_clear_source (&self->timeout_source);
  self->timeout_source = engine_io_socket_add_timeout (self, self->config->ping_timeout + self->config->ping_interval_grace,
                                                       ping_timeout_cb, "[engineio] pong deadline");
  return G_SOURCE_REMOVE;
}

void
engine_io_socket_schedule_ping (EngineIOSocket *self)
{
  engine_io_socket_clear_source (&self->ping_source);
  self->ping_source = engine_io_socket_add_timeout (self, self->config->ping_interval, send_ping_cb,
                                                    "[engineio] ping");
}

/* v3: the session expires pingInterval + pingTimeout after the last packet
 * received from the client. */
void
engine_io_socket_reset_expiry (EngineIOSocket *self)
{
  engine_io_socket_clear_source (&self->timeout_source);
  self->timeout_source = engine_io_socket_add_timeout (self, self->config->ping_interval + self->config->ping_timeout +
                                                       self->config->ping_interval_grace,
                                                       ping_timeout_cb, "[engineio] expiry");
}

/* Event handling (session context) */

void
engine_io_socket_call_send_callbacks (EngineIOSocket *self,
                                      GPtrArray      *items,
                                      gboolean        flushed)
{
  for (guint i = 0; i < items->len; i++)
    {
      SendItem *item = g_ptr_array_index (items, i);
      if (item->callback != NULL)
        item->callback (self, flushed, item->user_data);
    }
}

void
engine_io_socket_handle_packet (EngineIOSocket *self,
                                EngineIOPacket *packet)
{
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

  if (self->state != STATE_OPEN || g_atomic_int_get (&self->close_requested))
    return;

  engine_io_counter_add (&self->counters->packets_in, 1);
  engine_io_counter_add (&self->counters->bytes_in, engine_io_socket_packet_size (packet));

  g_signal_emit (self, engine_io_socket_signals[SIGNAL_PACKET], 0, packet);
  if (self->state != STATE_OPEN)
    return;

  if (self->version == ENGINE_IO_PROTOCOL_V3)
    engine_io_socket_reset_expiry (self);

  switch (type)
    {
    case ENGINE_IO_PACKET_PING:
      if (self->version != ENGINE_IO_PROTOCOL_V3)
        {
          engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                     "invalid heartbeat direction: a v4 client sent a ping");
          return;
        }
      /* v3: answer with the same data (`2probe` -> `3probe`) */
      {
        gsize len = 0;
        const char *text = engine_io_packet_get_text (packet, &len);
        EngineIOPacket *pong = engine_io_packet_is_binary (packet)
          ? engine_io_packet_new_binary (ENGINE_IO_PACKET_PONG, engine_io_packet_get_data (packet))
          : engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, text, len);
        engine_io_socket_enqueue (self, pong, NULL, NULL, NULL, TRUE, NULL);
      }
      g_signal_emit (self, engine_io_socket_signals[SIGNAL_HEARTBEAT], 0);
      break;

    case ENGINE_IO_PACKET_PONG:
      if (self->version != ENGINE_IO_PROTOCOL_V4)
        {
          engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                     "invalid heartbeat direction: a v3 client sent a pong");
          return;
        }
      /* Only the answer to our ping counts: an unsolicited pong would
       * put the next ping off for ever, so a client could stay alive
       * without ever reading (with WebSocket output that does not drain,
       * see ws_stalled_cb()). */
      if (self->ping_sent_at == 0)
        break;
      engine_io_socket_clear_source (&self->timeout_source);
      engine_io_counters_record_rtt (self->counters, g_get_monotonic_time () - self->ping_sent_at);
      self->ping_sent_at = 0;
      engine_io_socket_schedule_ping (self);
      g_signal_emit (self, engine_io_socket_signals[SIGNAL_HEARTBEAT], 0);
      break;

    case ENGINE_IO_PACKET_MESSAGE:
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
      break;

    case ENGINE_IO_PACKET_CLOSE:
      self->client_closed = TRUE;
      engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE, NULL);
      break;

    case ENGINE_IO_PACKET_OPEN:
    case ENGINE_IO_PACKET_UPGRADE:
    case ENGINE_IO_PACKET_NOOP:
    default:
      /* Nothing to do: the reference ignores these as well. */
      break;
    }
}

/* Session context: stops or starts reading the client, as
 * engine_io_socket_input_over_locked() says: pauses the WebSocket, or resumes the POST held
 * while the session was over its bound. A session that is no longer open
 * reads again (a WebSocket's close must be read; a held POST is answered). */
void
engine_io_socket_update_input (EngineIOSocket *self)
{
  EngineIORequest *resume = NULL;
  gboolean paused;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  paused = self->state == STATE_OPEN && engine_io_socket_input_over_locked (self, self->input_paused);
  self->input_paused = paused;
  if (!paused && self->held_post != NULL)
    {
      resume = g_steal_pointer (&self->held_post);
      resume->suspended = FALSE;
    }
  ENGINE_IO_UNLOCK (&self->state_lock);

  if (self->ws != NULL && !self->ws_probe)
    engine_io_websocket_set_paused (self->ws, paused);
  if (resume != NULL)
    engine_io_core_request_resume (resume);
}

static void
handle_event (EngineIOSocket *self,
              Event          *event)
{
  switch (event->kind)
    {
    case EVENT_PACKET:
      engine_io_socket_handle_packet (self, event->packet);
      break;

    case EVENT_FLUSHED:
      engine_io_socket_call_send_callbacks (self, event->items, event->flushed);
      if (event->flushed && self->state == STATE_OPEN &&
          engine_io_socket_get_send_queue_length (self) == 0)
        g_signal_emit (self, engine_io_socket_signals[SIGNAL_DRAIN], 0);
      break;

    case EVENT_CLOSE:
      engine_io_socket_do_close (self, event->reason, event->description);
      break;

    case EVENT_FINISH_CLOSE:
      engine_io_socket_finish_close (self);
      break;

    case EVENT_WS_ATTACH:
      engine_io_socket_handle_ws_attach (self, g_steal_pointer (&event->ws), event->reject_ws);
      break;

    case EVENT_PACKET_CREATE:
      if (self->state != STATE_CLOSED)
        g_signal_emit (self, engine_io_socket_signals[SIGNAL_PACKET_CREATE], 0, event->packet);
      break;

    default:
      g_assert_not_reached ();
    }
}

gboolean
engine_io_socket_drain_inbound_cb (gpointer data)
{
  EngineIOSocket *self = data;
  Event *event;
  gint64 deadline;
  gboolean again;

  /* A bounded batch (in count and in time), so a client that sends faster
   * than its handlers run cannot keep the context from its timers and
   * other sources. */
  deadline = g_get_monotonic_time () + EVENT_BATCH_US;

  for (guint n = 0; n < EVENT_BATCH; n++)
    {
      event = g_async_queue_try_pop (self->inbound);
      if (event == NULL)
        break;
      if (event->kind == EVENT_PACKET)
        {
          ENGINE_IO_LOCK (&self->state_lock, SESSION);
          self->inbound_bytes -= MIN (self->inbound_bytes, event->size);
          self->inbound_packets -= MIN (self->inbound_packets, 1);
          ENGINE_IO_UNLOCK (&self->state_lock);
        }
      else if (event->kind == EVENT_PACKET_CREATE)
        {
          /* Given back before the handler runs: a send from it counts
           * what is held from then on. */
          ENGINE_IO_LOCK (&self->state_lock, SESSION);
          self->tap_bytes -= MIN (self->tap_bytes, event->size);
          ENGINE_IO_UNLOCK (&self->state_lock);
        }
      handle_event (self, event);
      engine_io_socket_event_free (event);
      if (g_get_monotonic_time () > deadline)
        break;
    }
  if (self->state == STATE_OPEN)
    engine_io_socket_ws_flush_outbound (self);
  engine_io_socket_update_input (self);

  if (g_async_queue_length (self->inbound) > 0)
    return G_SOURCE_CONTINUE;  /* still scheduled: drain_pending stays set */

  /* Done: clear the flag, then look again, for an event pushed after our
   * last pop whose pusher saw the flag still set, and for a receive() that
   * took the receive queue under its mark after our engine_io_socket_update_input() and
   * found the flag still set (it asks for a drain to resume reading). */
  g_atomic_int_set (&self->drain_pending, 0);
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  again = self->input_paused && self->state == STATE_OPEN && !engine_io_socket_input_over_locked (self, TRUE);
  ENGINE_IO_UNLOCK (&self->state_lock);
  if ((again || g_async_queue_length (self->inbound) > 0) &&
      g_atomic_int_compare_and_exchange (&self->drain_pending, 0, 1))
    return G_SOURCE_CONTINUE;

  return G_SOURCE_REMOVE;
}
