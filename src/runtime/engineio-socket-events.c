/* engineio-socket-events.c: a session's event source
 *
 * Session context: the dispatch of the events posted to the session (its
 * event source: the queue file posts them and reaches
 * engine_io_socket_drain_inbound_cb() through engine_io_socket_upcalls):
 * packets read by a serving thread go to the executor
 * (engineio-socket-executor.c), a WebSocket for the session to the
 * WebSocket transport, closes to the close; send callbacks and ::drain,
 * ::packet-create. The top of the session's files below the public object.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Any thread: whether nothing waits in the send queue (what
 * engine_io_socket_get_send_queue_length() counts). */
static gboolean
send_queue_empty (EngineIOSocket *self)
{
  gboolean empty;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  empty = self->outbound.length == 0;
  ENGINE_IO_UNLOCK (&self->state_lock);
  return empty;
}

static void
handle_event (EngineIOSocket *self,
              Event          *event,
              gint64          now_us)
{
  switch (event->kind)
    {
    case EVENT_PACKET:
      engine_io_socket_handle_packet (self, event->packet, now_us);
      break;

    case EVENT_FLUSHED:
      engine_io_socket_call_send_callbacks (self, event->items, event->flushed);
      if (event->flushed && self->state == STATE_OPEN &&
          send_queue_empty (self) &&
          engine_io_socket_wants_signal (self, SIGNAL_DRAIN))
        g_signal_emit (self, engine_io_socket_signals[SIGNAL_DRAIN], 0);
      break;

    case EVENT_CLOSE:
      engine_io_socket_do_close (self, event->reason, event->description);
      break;

    case EVENT_FINISH_CLOSE:
      engine_io_socket_close_wait_over (self);
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
  gint64 now;
  gint64 deadline;
  gboolean again;

  /* A bounded batch (in count and in time), so a client that sends faster
   * than its handlers run cannot keep the context from its timers and
   * other sources. */
  now = g_get_monotonic_time ();
  deadline = now + EVENT_BATCH_US;

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
      handle_event (self, event, now);
      engine_io_socket_event_free (event);
      now = g_get_monotonic_time ();
      if (now > deadline)
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
