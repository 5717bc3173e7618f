/* engineio-socket-close.c: closing a session
 *
 * Closing (session context): the close for the application, the linger
 * of a polling session waiting for its last poll, the bounded write of a
 * closing session's poll response, and the end of the session.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Closing (session context) */

/* How long a closing polling session waits for the client's next poll to
 * hand it what was queued (the reference waits for the drain). */
#define CLOSE_LINGER_MS 2000

/* A closing session's poll response, still being written a while after
 * the linger (or the close): the session does not wait for it any longer
 * (what it carries is reported not delivered; libmicrohttpd goes on
 * writing it). */
static gboolean
last_poll_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  engine_io_socket_finish_close (self);
  return G_SOURCE_REMOVE;
}

/* Session context: how long a closing session waits for a poll response
 * to be written, from the end of its linger (or from its close, if no
 * linger). libmicrohttpd's connection timeout is for inactivity: a client
 * that reads a little, often enough, keeps the write going for as long as
 * it likes, and the session (its max-sessions place, its thread, its
 * ::close) with it. In a server shutdown, which waits for its sessions,
 * CLOSE_LINGER_MS; else "connection-timeout". */
static guint
closing_write_ms (EngineIOSocket *self)
{
  if (self->shutting_down)
    return CLOSE_LINGER_MS;
  return MIN (self->config->connection_timeout, G_MAXUINT / 1000) * 1000;
}

static void
bound_closing_write (EngineIOSocket *self,
                     guint           ms)
{
  engine_io_socket_clear_source (&self->timeout_source);
  self->timeout_source = engine_io_socket_add_timeout (self, ms, last_poll_timeout_cb,
                                                       "[engineio] close: a poll response's write");
  self->write_bound = TRUE;
}

static gboolean
linger_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;
  gboolean in_vain;
  gboolean writing = FALSE;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  /* Claimed under the lock, as the last poll and a kept probe claim it.
   * A last poll that came in time is being answered: the end of its
   * request finishes the close, and its send callbacks say whether it was
   * written; ending the session here would report what it carries as not
   * delivered while it may be on its way (a slow write, a loaded machine).
   * In a server shutdown, which waits for its sessions, only for another
   * CLOSE_LINGER_MS: a client that does not read would hold the shutdown
   * for its whole 10 s wait; what the poll carries is then reported not
   * delivered.
   * No last poll came, but a poll taken before the close (its callbacks
   * pending) is still being written: the same, the end of its request
   * finishes the close (its client got what was queued, without `1`). */
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  in_vain = self->lingering;
  self->lingering = FALSE;
  if (in_vain)
    for (guint i = 0; i < self->inflight->len; i++)
      {
        EngineIORequest *req = g_ptr_array_index (self->inflight, i);

        req->finishes_close = TRUE;
        writing = TRUE;
      }
  ENGINE_IO_UNLOCK (&self->state_lock);
  if (in_vain && !writing)
    engine_io_socket_finish_close (self);
  else
    bound_closing_write (self, closing_write_ms (self));
  return G_SOURCE_REMOVE;
}

/* Session context: the session machine's CLOSE input (engineio-session-
 * machine.c: its state becomes CLOSED, its timers stop, an upgrade probe
 * is given up or kept). Carried out here, not by the executor
 * (engine_io_socket_run_machine(), which is above this file and calls it:
 * its CLOSE action begins the close): the machine answers a CLOSE with
 * timer stops and at most one GIVE_UP_PROBE only, which need none of the
 * executor's other actions (no signal, no send, no close).
 * @linger: the close waits for a last poll (an answered probe is kept for
 * its `5`); @probe_code: the close frame for a probe given up (0: none). */
static void
close_machine (EngineIOSocket *self,
               gboolean        linger,
               guint16         probe_code)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_CLOSE,
    .linger = linger,
    .probe_code = probe_code,
  };
  EngineIOSessionActions actions;

  engine_io_session_machine_handle (&self->machine, &input, g_get_monotonic_time (), &actions);
  for (guint i = 0; i < actions.len; i++)
    {
      EngineIOSessionAction *action = &actions.actions[i];

      if (action->kind == ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE)
        engine_io_socket_clear_probe (self, action->code, action->description);
      else
        {
          g_assert (action->kind == ENGINE_IO_SESSION_ACTION_TIMER_STOP);
          engine_io_socket_clear_source (&self->timers[action->timer]);
        }
    }
  engine_io_session_actions_clear (&actions);
}

/* Session context: a server shutdown reached a session that was closing
 * already (the application closed it, or its client, or a timeout). Its
 * close may be waiting for a poll response to be written (its last poll,
 * a poll the close resumed, or one taken before the close): the shutdown
 * bounds that write as its own close does, else a client that does not
 * read would hold the shutdown for its whole 10 s wait (the first close's
 * reason would have kept the bound off). A linger still running arms the
 * bound when it ends (linger_timeout_cb()); a WebSocket's close has its
 * own timeout. */
static void
socket_shutdown_closing (EngineIOSocket *self)
{
  if (self->shutting_down)
    return;
  self->shutting_down = TRUE;
  if ((self->timeout_source != NULL && !self->write_bound) || self->ws != NULL)
    return;
  bound_closing_write (self, CLOSE_LINGER_MS);
}

/* Closes the session for the application: no more sends, no more
 * messages. What was queued still goes out (on the waiting poll, the next
 * poll within CLOSE_LINGER_MS when the application or a shutdown closed
 * it -- or a probe kept through the close, if its `5` comes first -- or
 * the WebSocket, then a close frame); engine_io_socket_finish_close() ends it and
 * emits ::close. */
void
engine_io_socket_do_close (EngineIOSocket      *self,
                           EngineIOCloseReason  reason,
                           const char          *description)
{
  g_autoptr(EngineIOSocket) hold = NULL;
  EngineIORequest *resume = NULL;
  EngineIOPollingView view;
  gboolean waiting;
  gboolean linger = FALSE;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (self->state != STATE_OPEN && self->state != STATE_OPENING)
    {
      gboolean closing = self->state == STATE_CLOSING;

      ENGINE_IO_UNLOCK (&self->state_lock);
      if (closing && reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN)
        socket_shutdown_closing (self);
      return;
    }
  g_atomic_int_set ((int *) &self->state, STATE_CLOSING);
  self->shutting_down = reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN;

  /* The server's table may hold the last reference; keep the socket alive
   * through the close. (Finalizing a closed socket on its own thread is
   * safe: by then it has released its loop and owns no source.) */
  hold = g_object_ref (self);

  self->close_reason = reason;
  self->close_description = g_strdup (description);

  /* What the close waits for on polling: the polling rules
   * (engine_io_polling_decide_close(), src/core/engineio-session-polling.c)
   * decide, on a snapshot taken with the state CLOSING and the reason set.
   *
   * During an upgrade (`3probe` sent, the polls answered `6`) the client
   * may have paused polling for good: engine.io-client, once the pause its
   * `3probe` started is complete, sends `5` on the probe and never polls
   * again; if the probe dies first it gives up the upgrade and stays
   * paused, and only a poll answered `1` would tell it the session is
   * gone. So, as in the reference (whose session is only "closing" until
   * its polling transport closes), the probe is kept while lingering (the
   * session machine decides, on its CLOSE input with the linger: its
   * upgrade becomes KEPT): its `5` completes the upgrade and the WebSocket
   * carries what was queued, then its close frame (COMPLETE_UPGRADE,
   * closing: upgrade_complete_closing() in the executor); a poll that
   * comes instead gets what was queued and `1`. A probe not answered yet
   * is closed: its client still polls. */
  view = engine_io_socket_polling_view_locked (self);
  switch (engine_io_polling_decide_close (&view, reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN,
                                          self->client_closed,
                                          self->active_get != NULL && self->active_get->answer_noop,
                                          self->active_get != NULL && self->active_get->suspended,
                                          self->ws != NULL && !self->ws_probe))
    {
    case ENGINE_IO_CLOSE_POLL_NOOP:
      /* The client sent a close packet (POSTed while its GET waits): as
       * the reference, the waiting GET gets a noop, not `1`, and the
       * session ends now; what was queued is not delivered (its send
       * callbacks say so). */
      resume = engine_io_socket_release_poll_with_noop_locked (self);
      waiting = FALSE;
      break;

    case ENGINE_IO_CLOSE_POLL_LAST:
      waiting = TRUE;
      break;

    case ENGINE_IO_CLOSE_LINGER:
      /* The last poll adds the close packet (engine_io_socket_handle_poll()):
       * the queue may go out on the probe instead. */
      waiting = FALSE;
      linger = self->lingering = TRUE;
      break;

    case ENGINE_IO_CLOSE_NOW:
    default:
      waiting = FALSE;
      break;
    }

  if (waiting)
    {
      /* The poll carries what is queued, then the close packet. */
      SendItem *item = g_new0 (SendItem, 1);
      item->packet = engine_io_packet_new (ENGINE_IO_PACKET_CLOSE);
      g_queue_push_tail (&self->outbound, item);
      self->queued_bytes += engine_io_socket_item_size (item->packet);
      resume = engine_io_socket_kick_transport_locked (self);
    }
  ENGINE_IO_UNLOCK (&self->state_lock);

  if (resume != NULL)
    engine_io_core_request_resume (resume);

  /* RFC 6455, 7.4.1: 1001 for a server going down. */
  if (reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN && self->ws_close_code == 1000)
    self->ws_close_code = 1001;

  /* The machine stops its timers (the heartbeat) and gives up an upgrade
   * probe, or keeps an answered one while the close lingers. */
  close_machine (self, linger, self->ws_close_code);

  if (self->ws != NULL && !self->ws_probe)
    {
      /* WebSocket: what is queued goes out, then the close frame; the
       * session finishes when the connection is down. (A stalled one
       * takes nothing more: what is queued is reported not sent.) */
      if (engine_io_websocket_can_send (self->ws))
        {
          g_autoptr(GPtrArray) packets = NULL;
          GPtrArray *notify = NULL;

          ENGINE_IO_LOCK (&self->state_lock, SESSION);
          packets = engine_io_socket_take_outbound_locked (self, 0, 0, &notify);
          ENGINE_IO_UNLOCK (&self->state_lock);
          engine_io_socket_ws_send_packets (self, packets, notify);
        }
      engine_io_websocket_close (self->ws, self->ws_close_code, NULL);
      waiting = TRUE;
    }

  /* Reads again: a held POST is answered, a WebSocket's close is read. */
  engine_io_socket_update_input (self);

  if (linger)
    self->timeout_source = engine_io_socket_add_timeout (self, MIN (CLOSE_LINGER_MS, self->config->ping_timeout),
                                                         linger_timeout_cb, "[engineio] close linger");
  else if (!waiting)
    engine_io_socket_finish_close (self);
  else if (self->ws == NULL)
    /* The waiting poll was resumed: its response (what was queued and
     * `1`; a lot if the poll waited while another response was being
     * written) gets as long as a linger and a last poll's write, then the
     * session ends all the same. */
    bound_closing_write (self, CLOSE_LINGER_MS + closing_write_ms (self));
}

/* The session is over: report what was never sent, wake blocked receivers
 * and give the loop back. Nothing is attached to our context after this. */
void
engine_io_socket_finish_close (EngineIOSocket *self)
{
  g_autoptr(EngineIOSocket) hold = g_object_ref (self);  /* alive until the end */
  g_autoptr(GPtrArray) leftover = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_socket_send_item_free);
  EngineIORequest *held_post;
  SendItem *item;
  Event *event;

  (void) hold;

  /* What the WebSocket (if still here) did write: flushed, below. */
  if (self->state != STATE_CLOSED)
    engine_io_socket_ws_report_sent (self);

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (self->state == STATE_CLOSED)
    {
      ENGINE_IO_UNLOCK (&self->state_lock);
      return;
    }
  g_atomic_int_set ((int *) &self->state, STATE_CLOSED);
  /* Poll responses still being written: not known to be delivered. */
  for (guint i = 0; i < self->inflight->len; i++)
    {
      EngineIORequest *req = g_ptr_array_index (self->inflight, i);

      g_ptr_array_extend_and_steal (leftover, g_steal_pointer (&req->flush_items));
    }
  g_ptr_array_set_size (self->inflight, 0);
  while ((item = g_queue_pop_head (&self->outbound)) != NULL)
    g_ptr_array_add (leftover, item);
  /* Messages in the WebSocket not all taken by send(): not delivered. */
  while ((item = g_queue_pop_head (&self->ws_unsent)) != NULL)
    g_ptr_array_add (leftover, item);
  self->queued_bytes = 0;
  held_post = g_steal_pointer (&self->held_post);
  if (held_post != NULL)
    held_post->suspended = FALSE;
  self->input_paused = FALSE;
  ENGINE_IO_UNLOCK (&self->state_lock);

  /* A POST held for back-pressure is answered (the session is gone). */
  if (held_post != NULL)
    engine_io_core_request_resume (held_post);

  /* Events that raced with the close: only flushes still matter. */
  while ((event = g_async_queue_try_pop (self->inbound)) != NULL)
    {
      if (event->kind == EVENT_FLUSHED)
        engine_io_socket_call_send_callbacks (self, event->items, event->flushed);
      engine_io_socket_event_free (event);
    }
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  self->inbound_bytes = 0;
  self->inbound_packets = 0;
  ENGINE_IO_UNLOCK (&self->state_lock);

  engine_io_socket_call_send_callbacks (self, leftover, FALSE);

  close_machine (self, FALSE, 0);  /* a probe kept: freed (aborted) */
  engine_io_socket_clear_source (&self->timeout_source);
  g_clear_pointer (&self->ws, engine_io_websocket_free);
  g_ptr_array_set_size (self->dying_ws, 0);  /* frees (aborts) them */

  /* The server forgets the session (its max-sessions place included)
   * before ::close runs. */
  self->owner->finished (self->server, self);
  if (self->counted_open)
    engine_io_counter_sub (engine_io_counter_open (self->counters, engine_io_socket_transport (self), self->version), 1);
  engine_io_counter_add (&self->counters->closes[self->close_reason], 1);

  g_debug ("socket %s closed: %s%s%s", self->id, engine_io_close_reason_to_string (self->close_reason),
           self->close_description ? ": " : "", self->close_description ? self->close_description : "");
  /* Receivers learn it first: a ::close handler, or whoever waits for
   * it, finds the receive queue closed. */
  engine_io_socket_receive_close (self, self->close_reason);
  g_signal_emit (self, engine_io_socket_signals[SIGNAL_CLOSE], 0, self->close_reason, self->close_description);
  /* The references its data holds end with the session. */
  engine_io_socket_clear_message_func (self);

  engine_io_loop_release (g_steal_pointer (&self->loop));
}

/* Any thread */

void
engine_io_socket_close_with_reason (EngineIOSocket      *self,
                                    EngineIOCloseReason  reason,
                                    const char          *description)
{
  Event *event = g_new0 (Event, 1);

  /* From now on sends fail and queued messages are not delivered to the
   * application: the close overtakes what the handlers have not seen. */
  g_atomic_int_set (&self->close_requested, 1);

  event->kind = EVENT_CLOSE;
  event->reason = reason;
  event->description = g_strdup (description);
  engine_io_socket_post_event (self, event);
}
