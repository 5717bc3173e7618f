/* engineio-socket-queue.c: a session's queues and back-pressure
 *
 * Send items and events; the outbound queue and its memory accounting,
 * the inbound event queue and its wake-up, back-pressure on the client's
 * input (and pausing or resuming it: engine_io_socket_update_input()),
 * message-rate; what a poll response or the WebSocket takes out of the
 * queue, and engine_io_socket_enqueue() (any thread).
 *
 * Below the executor, the WebSocket and the close: it calls none of them.
 * The event source's dispatch (engineio-socket-events.c) is reached
 * through engine_io_socket_upcalls, which engine_io_socket_class_init()
 * fills in.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Filled in by engine_io_socket_class_init(), before any socket exists. */
EngineIOSocketUpcalls engine_io_socket_upcalls;

/* Send items and events */

void
engine_io_socket_send_item_free (SendItem *item)
{
  engine_io_packet_unref (item->packet);
  if (item->destroy != NULL)
    item->destroy (item->user_data);
  g_free (item);
}

void
engine_io_socket_event_free (Event *event)
{
  g_clear_pointer (&event->packet, engine_io_packet_unref);
  g_clear_pointer (&event->items, g_ptr_array_unref);
  g_free (event->description);
  g_clear_pointer (&event->ws, engine_io_websocket_free);
  g_free (event);
}

/* Session context: tells each item's send callback whether it was
 * handed to the transport. */
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

/* Called with the lock held. */
void
engine_io_socket_schedule_drain_locked (EngineIOSocket *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  if (g_atomic_int_compare_and_exchange (&self->drain_pending, 0, 1))
    {
      GSource *source = g_idle_source_new ();
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, engine_io_socket_upcalls.dispatch_events, g_object_ref (self), g_object_unref);
      g_source_set_static_name (source, "[engineio] socket events");
      g_source_attach (source, self->context);
      g_source_unref (source);
    }
}

/* Called with the lock held. Events reach a socket until it is CLOSED. */
gboolean
engine_io_socket_post_event_locked (EngineIOSocket *self,
                                    Event          *event)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  if (self->state == STATE_CLOSED)
    {
      engine_io_socket_event_free (event);
      return FALSE;
    }
  if (event->kind == EVENT_PACKET)
    {
      event->size = engine_io_packet_get_footprint (event->packet) + EVENT_OVERHEAD;
      self->inbound_bytes += event->size;
      self->inbound_packets++;
    }
  g_async_queue_push (self->inbound, event);
  engine_io_socket_schedule_drain_locked (self);
  return TRUE;
}

/* Called with the lock held: whether the session should not read its
 * client now (back-pressure). What client input can make a session hold
 * is what it has read and not handled (@inbound_bytes) plus what that
 * turns into: packets to send (@queued_bytes: echoes, v3 pongs) or
 * messages for engine_io_socket_receive() (@received_bytes). Reading stops
 * when either reaches its mark, and (with @paused, the session is not
 * reading) starts again once both are under half of it. A WebSocket also
 * pauses while more than INBOUND_PAUSE packets wait for slow handlers. */
gboolean
engine_io_socket_input_over_locked (EngineIOSocket *self,
                                    gboolean        paused)
{
  guint64 send_mark = self->config->send_queue_high_water;
  guint64 receive_mark = self->config->receive_queue_high_water;
  guint64 out = self->queued_bytes + self->tap_bytes + self->inbound_bytes;
  guint64 in = self->received_bytes + self->inbound_bytes;

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  if (send_mark > 0 && out >= (paused ? send_mark / 2 : send_mark))
    return TRUE;
  if (receive_mark > 0 && in >= (paused ? receive_mark / 2 : receive_mark))
    return TRUE;
  return g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_WEBSOCKET &&
         self->inbound_packets >= (paused ? INBOUND_PAUSE / 4 : INBOUND_PAUSE);
}

void
engine_io_socket_post_event (EngineIOSocket *self,
                             Event          *event)
{
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  engine_io_socket_post_event_locked (self, event);
  ENGINE_IO_UNLOCK (&self->state_lock);
}

/* message-rate. Called with the lock held, where a packet arrives (a
 * POST's serving thread, or the session context for WebSocket): whether
 * it may go on. Messages count, and so do pings (a v3 client's ping costs
 * a pong, so a ping flood is a message flood); pongs, noops, close and
 * upgrade packets do not. A packet over the rate is counted here when the
 * policy drops it; closing is the caller's. */
gboolean
engine_io_socket_message_within_rate_locked (EngineIOSocket *self,
                                             EngineIOPacket *packet)
{
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  if (self->config->message_rate <= 0 ||
      (type != ENGINE_IO_PACKET_MESSAGE && type != ENGINE_IO_PACKET_PING))
    return TRUE;
  if (engine_io_token_bucket_take (&self->message_bucket, self->config->message_rate,
                                   self->config->message_capacity, g_get_monotonic_time ()))
    return TRUE;
  if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_DROP)
    engine_io_counter_add (&self->counters->messages_dropped, 1);
  return FALSE;
}

/* Called with the lock held: takes every queued item (in order) and
 * returns their packets. The items go to the session context in an
 * EVENT_FLUSHED when anyone wants to know (a send callback, a ::drain
 * handler), and are freed here otherwise. With @notify_out, those items
 * are returned there instead (NULL if none), for a poll response: its
 * callbacks learn when the request ends whether the response was
 * written (engine_io_socket_attach_flush_items_locked()). */
GPtrArray *
engine_io_socket_take_outbound_locked (EngineIOSocket  *self,
                                       guint64          limit,
                                       guint            max_items,
                                       GPtrArray      **notify_out)
{
  guint queued = self->outbound.length;
  GPtrArray *packets;
  GPtrArray *notify_items = NULL;  /* what the session context hears about */
  gboolean drain;
  SendItem *item;
  guint64 taken = 0;

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  packets = g_ptr_array_new_full (max_items > 0 ? MIN (queued, max_items) : queued,
                                  (GDestroyNotify) engine_io_packet_unref);
  if (queued == 0)
    return packets;

  /* Items only travel to the session context when someone listens: a send
   * callback, or a ::drain handler. Most sends have neither, and cost no
   * event. */
  drain = engine_io_socket_wants_signal (self, SIGNAL_DRAIN);

  /* @limit in bytes, 0 for everything; at least one item is taken. */
  while ((limit == 0 || taken < limit) &&
         (max_items == 0 || packets->len < max_items) &&
         (item = g_queue_pop_head (&self->outbound)) != NULL)
    {
      gsize size = engine_io_socket_packet_size (item->packet);
      gsize held = engine_io_socket_item_size (item->packet);

      g_ptr_array_add (packets, engine_io_packet_ref (item->packet));
      taken += size;
      self->queued_bytes = self->queued_bytes > held ? self->queued_bytes - held : 0;
      if (drain || item->callback != NULL)
        {
          if (notify_items == NULL)
            notify_items = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_socket_send_item_free);
          item->ws_seq = packets->len;  /* its place in @packets, from 1 */
          g_ptr_array_add (notify_items, item);
        }
      else
        engine_io_socket_send_item_free (item);
    }
  if (self->outbound.length == 0)
    self->queued_bytes = 0;

  /* The session context decides whether its client may be read again. */
  if (self->input_paused && packets->len > 0 && self->state != STATE_CLOSED)
    engine_io_socket_schedule_drain_locked (self);

  if (packets->len > 0)
    {
      engine_io_counter_add (&self->counters->packets_out, packets->len);
      engine_io_counter_add (&self->counters->bytes_out, taken);
    }

  if (notify_out != NULL)
    *notify_out = notify_items;
  else if (notify_items != NULL)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_FLUSHED;
      event->items = notify_items;
      event->flushed = TRUE;
      engine_io_socket_post_event_locked (self, event);
    }

  return packets;
}

/* Called with the lock held: @req's response carries @items (may be
 * NULL). Their callbacks are called when libmicrohttpd reports the end of
 * the request (engine_io_socket_request_finished()): TRUE only if the
 * response was written completely; FALSE if the connection failed, or the
 * session ended first. */
void
engine_io_socket_attach_flush_items_locked (EngineIOSocket  *self,
                                            EngineIORequest *req,
                                            GPtrArray       *items)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  if (items == NULL)
    return;
  g_assert (req->flush_items == NULL);
  req->flush_items = items;
  g_ptr_array_add (self->inflight, req);
}

/* Called with the lock held: takes what a poll response carries out of
 * the queue (as engine_io_socket_take_outbound_locked()). A response is held whole until
 * libmicrohttpd has written it, outside the queue and its mark, so while
 * one is being written an open session answers no other poll with packets
 * (the next poll waits, and takes them once the first is reported written,
 * engine_io_socket_request_finished()): a client that polls on new
 * connections and never reads cannot move the queue, again and again, into
 * responses nobody counts. An honest client polls again only once it has
 * read the previous response. */
GPtrArray *
engine_io_socket_take_for_poll_locked (EngineIOSocket   *self,
                                       EngineIORequest  *req,
                                       guint             max_items,
                                       GPtrArray       **notify_out)
{
  GPtrArray *packets = engine_io_socket_take_outbound_locked (self, 0, max_items, notify_out);

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  if (packets->len > 0 && !req->inflight)
    {
      req->inflight = TRUE;
      self->inflight_polls++;
    }
  return packets;
}

/* Called with the lock held, polling: the waiting poll, if the polling
 * rules (src/core/engineio-session-polling.c) say it is to be woken: not
 * while another poll response is being written, but to close. Out of
 * line, so that the WebSocket path below sets up no frame for the
 * snapshot. */
static G_GNUC_NO_INLINE EngineIORequest *
kick_poll_locked (EngineIOSocket *self)
{
  EngineIORequest *req = self->active_get;
  EngineIOPollingView view = engine_io_socket_polling_view_locked (self);

  if (!engine_io_polling_wakes_poll (&view, req != NULL && req->suspended))
    return NULL;
  req->suspended = FALSE;
  return req;
}

/* Called with the lock held; returns the request to resume (outside the
 * lock), if the transport needs waking to carry what was queued. */
EngineIORequest *
engine_io_socket_kick_transport_locked (EngineIOSocket *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  if (g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      /* The session context writes to the WebSocket. */
      if (!self->flush_inline && self->state != STATE_CLOSED)
        engine_io_socket_schedule_drain_locked (self);
      return NULL;
    }

  return kick_poll_locked (self);
}

/* Any thread. Takes @packet. */
gboolean
engine_io_socket_enqueue (EngineIOSocket       *self,
                          EngineIOPacket       *packet,
                          EngineIOSendCallback  callback,
                          gpointer              user_data,
                          GDestroyNotify        destroy,
                          gboolean              kick,
                          GError              **error)
{
  EngineIORequest *resume = NULL;
  SendItem *item;
  gsize size = engine_io_socket_item_size (packet);
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);
  gboolean close_for_backpressure = FALSE;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);

  /* The open packet is queued even when a close is already on its way
   * (a server closing during the handshake): the first poll must carry it
   * before the close packet, never the close packet alone. */
  if ((self->state != STATE_OPEN && self->state != STATE_OPENING) ||
      (g_atomic_int_get (&self->close_requested) &&
       engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_OPEN))
    {
      ENGINE_IO_UNLOCK (&self->state_lock);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                   "Socket “%s” is closed", self->id);
      engine_io_packet_unref (packet);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  /* Every packet counts against the mark; the policy applies to messages
   * and to v3 pongs (the client's pings make those). The open packet and
   * our pings are queued anyway: one per session, one per ping interval. */
  if (self->config->send_queue_high_water > 0 &&
      self->queued_bytes + self->tap_bytes + size > self->config->send_queue_high_water &&
      (type == ENGINE_IO_PACKET_MESSAGE || type == ENGINE_IO_PACKET_PONG))
    {
      switch (self->config->backpressure)
        {
        case ENGINE_IO_BACKPRESSURE_KEEP_QUEUING:
          break;
        case ENGINE_IO_BACKPRESSURE_DROP_NEWEST:
          /* queued_bytes is (lock): read it before unlocking. */
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL,
                       "Send queue of socket “%s” is over its high-water mark (%" G_GUINT64_FORMAT " bytes queued)",
                       self->id, self->queued_bytes);
          ENGINE_IO_UNLOCK (&self->state_lock);
          engine_io_packet_unref (packet);
          if (destroy != NULL)
            destroy (user_data);
          return FALSE;
        case ENGINE_IO_BACKPRESSURE_CLOSE:
        default:
          close_for_backpressure = TRUE;
          break;
        }
    }

  if (close_for_backpressure)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_CLOSE;
      event->reason = ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR;
      event->description = g_strdup ("send queue over its high-water mark");
      engine_io_socket_post_event_locked (self, event);
      ENGINE_IO_UNLOCK (&self->state_lock);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL,
                   "Send queue of socket “%s” is over its high-water mark: closing it",
                   self->id);
      engine_io_packet_unref (packet);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  item = g_new (SendItem, 1);
  item->packet = packet;
  item->callback = callback;
  item->user_data = user_data;
  item->destroy = destroy;
  g_queue_push_tail (&self->outbound, item);
  self->queued_bytes += size;
  /* The tap: told in the socket's context, in queue order (the signal
   * lock taken here is a leaf lock). */
  if (engine_io_socket_wants_signal (self, SIGNAL_PACKET_CREATE))
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_PACKET_CREATE;
      event->packet = engine_io_packet_ref (packet);
      event->size = size;
      if (engine_io_socket_post_event_locked (self, event))
        self->tap_bytes += size;
    }
  engine_io_counter_max (&self->counters->queue_high_water, self->queued_bytes);

  if (kick)
    resume = engine_io_socket_kick_transport_locked (self);

  ENGINE_IO_UNLOCK (&self->state_lock);

  if (resume != NULL)
    engine_io_core_request_resume (resume);

  return TRUE;
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
