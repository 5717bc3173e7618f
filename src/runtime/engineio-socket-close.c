/* engineio-socket-close.c: closing a session
 *
 * Closing (session context): the close for the application, the end of
 * the session, and the executor of the session machine's closing inputs:
 * the machine decides the close's timing (the linger of a polling session
 * waiting for its last poll, the bounded write of a closing session's
 * poll response, a shutdown's shorter bound, when the close finishes);
 * this file claims the locked linger flag, arms the timers and finishes.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Closing (session context) */

/* The close's timing is the session machine's (engineio-session-
 * machine.c, the table's third part: the linger, the bound on a closing
 * session's poll response's write, a shutdown's shorter bound, when the
 * close finishes). Its closing inputs (CLOSE, SHUTDOWN, the closing
 * timers, LINGER_TAKEN, WAIT_OVER, FINISHED) are fed here, not through
 * the executor (engine_io_socket_run_machine(), which is above this file
 * and calls it): the machine answers them with timer starts and stops, at
 * most one GIVE_UP_PROBE, MARK_FINISHES_CLOSE and FINISH_CLOSE only,
 * which need none of the executor's other actions (no signal, no send).
 * Carries out @actions but MARK_FINISHES_CLOSE (the caller's, under the
 * lock) and FINISH_CLOSE (returned: the caller finishes the close when
 * it is ready). */
static gboolean close_execute (EngineIOSocket         *self,
                               EngineIOSessionActions *actions,
                               gint64                  now_us);

/* The close-write timer: a closing session's poll response, still being
 * written a while after the linger (or the close): the session does not
 * wait for it any longer (what it carries is reported not delivered;
 * libmicrohttpd goes on writing it). */
static gboolean
close_write_timer_cb (gpointer data)
{
  EngineIOSocket *self = data;
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_TIMER, .timer = ENGINE_IO_SESSION_TIMER_CLOSE_WRITE };
  EngineIOSessionActions actions;
  gint64 now = g_get_monotonic_time ();

  g_clear_pointer (&self->timers[ENGINE_IO_SESSION_TIMER_CLOSE_WRITE], g_source_unref);
  engine_io_session_machine_handle (&self->machine, &input, now, &actions);
  if (close_execute (self, &actions, now))
    engine_io_socket_finish_close (self);
  return G_SOURCE_REMOVE;
}

/* The linger timer. The linger flag is claimed under the lock, as the
 * last poll (engine_io_socket_handle_poll()) and a kept probe's `5`
 * (upgrade_complete_closing()) claim it; the machine decides on what the
 * claim saw (a last poll came: .polled; polls taken before the close
 * still being written: .writing), under the same lock, so that the polls
 * it marks finishes_close are the ones it saw (one whose request ended
 * since would be waited for, bound, for nothing). */
static gboolean
linger_timer_cb (gpointer data)
{
  EngineIOSocket *self = data;
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_TIMER, .timer = ENGINE_IO_SESSION_TIMER_LINGER };
  EngineIOSessionActions actions;
  gint64 now = g_get_monotonic_time ();

  g_clear_pointer (&self->timers[ENGINE_IO_SESSION_TIMER_LINGER], g_source_unref);
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  input.polled = !self->lingering;
  input.writing = self->inflight->len > 0;
  self->lingering = FALSE;
  engine_io_session_machine_handle (&self->machine, &input, now, &actions);
  for (guint i = 0; i < actions.len; i++)
    if (actions.actions[i].kind == ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE)
      for (guint j = 0; j < self->inflight->len; j++)
        {
          EngineIORequest *req = g_ptr_array_index (self->inflight, j);

          req->finishes_close = TRUE;
        }
  ENGINE_IO_UNLOCK (&self->state_lock);
  if (close_execute (self, &actions, now))
    engine_io_socket_finish_close (self);
  return G_SOURCE_REMOVE;
}

static gboolean
close_execute (EngineIOSocket         *self,
               EngineIOSessionActions *actions,
               gint64                  now_us)
{
  gboolean finish = FALSE;

  for (guint i = 0; i < actions->len; i++)
    {
      EngineIOSessionAction *action = &actions->actions[i];
      gint64 ms;

      switch (action->kind)
        {
        case ENGINE_IO_SESSION_ACTION_TIMER_STOP:
          engine_io_socket_clear_source (&self->timers[action->timer]);
          break;

        case ENGINE_IO_SESSION_ACTION_TIMER_START:
          /* Only the closing timers start on these inputs (a bound moved by a
           * shutdown is a new source, as its name says what it bounds). */
          ms = CLAMP ((action->deadline_us - now_us) / 1000, 0, (gint64) G_MAXUINT);
          engine_io_socket_clear_source (&self->timers[action->timer]);
          if (action->timer == ENGINE_IO_SESSION_TIMER_LINGER)
            self->timers[action->timer] = engine_io_socket_add_timeout (self, (guint) ms, linger_timer_cb,
                                                                        "[engineio] close linger");
          else
            {
              g_assert (action->timer == ENGINE_IO_SESSION_TIMER_CLOSE_WRITE);
              self->timers[action->timer] = engine_io_socket_add_timeout (self, (guint) ms, close_write_timer_cb,
                                                                          "[engineio] close: a poll response's write");
            }
          break;

        case ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE:
          engine_io_socket_clear_probe (self, action->code, action->description);
          break;

        case ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE:
          break;  /* the caller's, under the lock */

        case ENGINE_IO_SESSION_ACTION_FINISH_CLOSE:
          finish = TRUE;
          break;

        default:
          g_assert_not_reached ();
        }
    }
  engine_io_session_actions_clear (actions);
  return finish;
}

/* Feeds the machine one of its closing inputs and carries out its
 * actions; returns whether the close finishes now (FINISH_CLOSE). */
static gboolean
close_feed (EngineIOSocket             *self,
            const EngineIOSessionInput *input)
{
  EngineIOSessionActions actions;
  gint64 now = g_get_monotonic_time ();

  engine_io_session_machine_handle (&self->machine, input, now, &actions);
  return close_execute (self, &actions, now);
}

/* Session context: what the close waited for is over (the session
 * machine's WAIT_OVER): a poll response that finishes it ended (written
 * or not: its send callbacks say), the waiting poll went away without an
 * answer, or the WebSocket transport closed. The close finishes (once:
 * the machine decides). */
void
engine_io_socket_close_wait_over (EngineIOSocket *self)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_WAIT_OVER };

  if (close_feed (self, &input))
    engine_io_socket_finish_close (self);
}

/* Session context: the `5` of a probe kept through the close claimed the
 * linger flag first (upgrade_complete_closing()): no poll is waited for
 * now, the WebSocket's close finishes the session (the machine's
 * LINGER_TAKEN stops the linger). */
void
engine_io_socket_close_linger_taken (EngineIOSocket *self)
{
  EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_LINGER_TAKEN };

  (void) close_feed (self, &input);
}

/* Session context: a server shutdown reached a session that was closing
 * already (the application closed it, or its client, or a timeout): the
 * machine bounds the write its close waits for with the shutdown's
 * shorter time (its SHUTDOWN input; a WebSocket's close has its own
 * timeout, a linger still running bounds it when it ends). */
static void
socket_shutdown_closing (EngineIOSocket *self)
{
  EngineIOSessionInput input = {
    .kind = ENGINE_IO_SESSION_INPUT_SHUTDOWN,
    .websocket = self->ws != NULL && !self->ws_probe,  /* a probe kept is not waited for */
  };

  (void) close_feed (self, &input);
}

/* Closes the session for the application: no more sends, no more
 * messages. What was queued still goes out (on the waiting poll, the next
 * poll within the linger when the application or a shutdown closed
 * it -- or a probe kept through the close, if its `5` comes first -- or
 * the WebSocket, then a close frame); engine_io_socket_finish_close() ends it and
 * emits ::close, when the session machine says (FINISH_CLOSE). */
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
  gboolean ws_transport;
  gboolean finish;

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

  /* The machine stops its timers (the heartbeat), gives up an upgrade
   * probe, or keeps an answered one while the close lingers, and times
   * what the close waits for: the linger, the bound on the resumed poll's
   * write (a linger and a last poll's write: its response may be a lot if
   * the poll waited while another response was being written), the
   * WebSocket's close (its own timeout), or nothing: it finishes, below. */
  ws_transport = self->ws != NULL && !self->ws_probe;
  {
    EngineIOSessionInput input = {
      .kind = ENGINE_IO_SESSION_INPUT_CLOSE,
      .wait = linger ? ENGINE_IO_SESSION_WAIT_LINGER
            : !waiting && !ws_transport ? ENGINE_IO_SESSION_WAIT_NOTHING
            : ws_transport ? ENGINE_IO_SESSION_WAIT_WEBSOCKET
            : ENGINE_IO_SESSION_WAIT_POLL,
      .shutdown = reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN,
      .probe_code = self->ws_close_code,
    };

    finish = close_feed (self, &input);
  }

  if (ws_transport)
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
    }

  /* Reads again: a held POST is answered, a WebSocket's close is read. */
  engine_io_socket_update_input (self);

  if (finish)
    engine_io_socket_finish_close (self);
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

  {
    /* A probe kept: freed (aborted); no closing timer stays armed. */
    EngineIOSessionInput input = { .kind = ENGINE_IO_SESSION_INPUT_FINISHED };

    (void) close_feed (self, &input);
  }
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
