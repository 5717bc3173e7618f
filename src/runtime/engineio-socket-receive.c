/* engineio-socket-receive.c: a session's receive queue
 *
 * Messages nobody handled, for engine_io_socket_receive() and its
 * blocking, timed, non-blocking and async variants, and
 * engine_io_socket_set_message_func(): the public receive API, on top of
 * engineio-socket-delivery.c (which puts messages in the queue and holds
 * the message function). No other session file calls it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* What receive_async() keeps with a waiting task (see
 * engine_io_socket_receive_task_return()). */
static void
receive_task_data_free (gpointer data)
{
  ReceiveTaskData *d = data;

  g_object_unref (d->socket);
  g_clear_pointer (&d->cancel_source, g_source_unref);
  g_free (d);
}

/* recv_lock held: the next queued message (the receive queue's bytes
 * given back by receive_taken()), or NULL. */
static EngineIOPacket *
receive_pop_locked (EngineIOSocket *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->recv_lock);
  return g_queue_pop_head (&self->received);
}

/* No lock held: @packet was taken off the queue; the session may read
 * its client again. */
static EngineIOPacket *
receive_taken (EngineIOSocket *self,
               EngineIOPacket *packet)
{
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  self->received_bytes -= MIN (self->received_bytes,
                               engine_io_packet_get_footprint (packet) + RECEIVED_OVERHEAD);
  if (self->input_paused && self->state != STATE_CLOSED)
    engine_io_socket_schedule_drain_locked (self);
  ENGINE_IO_UNLOCK (&self->state_lock);
  return packet;
}

static void
receive_set_closed_error (EngineIOSocket  *self,
                          GError         **error)
{
  g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
               "Socket “%s” is closed: %s", self->id,
               engine_io_close_reason_to_string (self->recv_reason));
}

static void
receive_wake (GCancellable *cancellable,
              gpointer      data)
{
  EngineIOSocket *self = data;

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  g_cond_broadcast (&self->recv_cond);
  ENGINE_IO_UNLOCK (&self->recv_lock);
}

/* Blocking receive: until a message, the close, @cancellable or
 * @end_time (monotonic µs, or -1: none). */
static EngineIOPacket *
receive_wait (EngineIOSocket  *self,
              gint64           end_time,
              GCancellable    *cancellable,
              GError         **error)
{
  EngineIOPacket *packet = NULL;
  gulong cancelled_id = 0;
  gboolean timed_out = FALSE;

  if (g_cancellable_set_error_if_cancelled (cancellable, NULL))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                   "Receive on socket “%s” was cancelled", self->id);
      return NULL;
    }
  /* Wakes us at once when cancelled: no polling. */
  if (cancellable != NULL)
    cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (receive_wake), self, NULL);

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  for (;;)
    {
      if ((packet = receive_pop_locked (self)) != NULL || self->recv_closed ||
          g_cancellable_is_cancelled (cancellable) || timed_out)
        break;
      if (end_time < 0)
        g_cond_wait (&self->recv_cond, &self->recv_lock);
      else
        timed_out = !g_cond_wait_until (&self->recv_cond, &self->recv_lock, end_time) &&
                    g_get_monotonic_time () >= end_time;
    }
  if (packet == NULL)
    {
      if (self->recv_closed)
        receive_set_closed_error (self, error);
      else if (g_cancellable_is_cancelled (cancellable))
        g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                     "Receive on socket “%s” was cancelled", self->id);
      else
        g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_TIMED_OUT,
                     "Nothing was received on socket “%s” in time", self->id);
    }
  ENGINE_IO_UNLOCK (&self->recv_lock);
  if (cancelled_id != 0)
    g_cancellable_disconnect (cancellable, cancelled_id);
  return packet != NULL ? receive_taken (self, packet) : NULL;
}

/**
 * engine_io_socket_receive:
 * @self: a socket
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Waits for the next message nobody handled: a message goes to this queue
 * when no #EngineIOSocket::message handler is connected at the moment it
 * is dispatched. Meant for thread-style code; must not be called from the
 * socket's own main context (it would wait for itself): there, use
 * engine_io_socket_try_receive() or engine_io_socket_receive_async().
 *
 * The queue is bounded by #EngineIOServer:receive-queue-high-water, in
 * real bytes (each message counts its data as allocated plus about 100
 * bytes): when it is full the session stops reading its client, and reads
 * again once this function has taken the queue under half of the mark.
 * While paused, the client's heartbeat answers are not read either: a
 * session whose queue is not taken from within #EngineIOServer:ping-interval
 * plus #EngineIOServer:ping-timeout ends with `ping timeout`. Connect a
 * ::message handler instead if the application does not want messages
 * queued at all.
 *
 * Messages already queued are returned even after the session closed;
 * then it fails with %ENGINE_IO_ERROR_CLOSED, whose message ends with the
 * close reason (engine_io_close_reason_to_string(): `: ping timeout`).
 * Cancelling fails it with %ENGINE_IO_ERROR_CANCELLED at once (the caller
 * is woken, not polled). Several threads may receive from one socket: each
 * message goes to one of them.
 *
 * Thread-safe: may be called from any thread but the socket's context's.
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive (EngineIOSocket  *self,
                          GCancellable    *cancellable,
                          GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (!g_main_context_is_owner (self->context), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return receive_wait (self, -1, cancellable, error);
}

/**
 * engine_io_socket_receive_timeout:
 * @self: a socket
 * @timeout_ms: how long to wait at most, in milliseconds (0: do not wait)
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * engine_io_socket_receive() waiting at most @timeout_ms: then it fails
 * with %ENGINE_IO_ERROR_TIMED_OUT.
 *
 * Thread-safe: may be called from any thread but the socket's context's.
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive_timeout (EngineIOSocket  *self,
                                  guint            timeout_ms,
                                  GCancellable    *cancellable,
                                  GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (!g_main_context_is_owner (self->context), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return receive_wait (self, g_get_monotonic_time () + (gint64) timeout_ms * 1000,
                       cancellable, error);
}

/**
 * engine_io_socket_try_receive:
 * @self: a socket
 * @error: return location for a #GError
 *
 * The next queued message if there is one (see
 * engine_io_socket_receive()), without waiting. Returns %NULL without an
 * error when none is queued, and fails with %ENGINE_IO_ERROR_CLOSED once
 * the session is over and the queue empty.
 *
 * Thread-safe: may be called from any thread, the socket's context's
 * included.
 *
 * Returns: (transfer full) (nullable): the next message packet, or %NULL
 */
EngineIOPacket *
engine_io_socket_try_receive (EngineIOSocket  *self,
                              GError         **error)
{
  EngineIOPacket *packet;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  packet = receive_pop_locked (self);
  if (packet == NULL && self->recv_closed)
    receive_set_closed_error (self, error);
  ENGINE_IO_UNLOCK (&self->recv_lock);
  return packet != NULL ? receive_taken (self, packet) : NULL;
}

/* The task's context: its cancellable was cancelled. */
static gboolean
receive_async_cancelled (GCancellable *cancellable,
                         gpointer      data)
{
  GTask *task = data;
  ReceiveTaskData *d = g_task_get_task_data (task);
  EngineIOSocket *self = d->socket;
  gboolean mine;

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  mine = g_queue_remove (&self->recv_tasks, task);
  ENGINE_IO_UNLOCK (&self->recv_lock);
  if (mine)
    {
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                               "Receive on socket “%s” was cancelled", self->id);
      g_object_unref (task);   /* the queue's */
    }
  /* else a message or the close came first: engine_io_socket_receive_task_return() has it */
  return G_SOURCE_REMOVE;
}

/**
 * engine_io_socket_receive_async:
 * @self: a socket
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when a message came, the session is over
 *   or @cancellable was cancelled
 * @user_data: data for @callback
 *
 * engine_io_socket_receive() without blocking: @callback runs in the
 * thread-default main context of the caller (which must be iterated) and
 * calls engine_io_socket_receive_finish(). Messages go to waiting callers
 * in the order they called. Holds no thread while it waits. Once
 * @cancellable is cancelled the call takes no message (it fails with
 * %ENGINE_IO_ERROR_CANCELLED, when its context runs, and messages go to
 * the other callers or stay queued); a message it took before is returned.
 *
 * Thread-safe: may be called from any thread, the socket's context's
 * included.
 */
void
engine_io_socket_receive_async (EngineIOSocket      *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  EngineIOPacket *packet = NULL;
  ReceiveTaskData *d;
  gboolean closed = FALSE;

  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, engine_io_socket_receive_async);
  g_task_set_name (task, "[engineio] receive");
  /* A message handed to the task is returned even if the cancellable is
   * cancelled meanwhile (GTask would drop it for G_IO_ERROR_CANCELLED);
   * a cancellation while it waits gives ENGINE_IO_ERROR_CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);
  d = g_new0 (ReceiveTaskData, 1);
  d->socket = g_object_ref (self);
  g_task_set_task_data (task, d, receive_task_data_free);
  if (g_cancellable_is_cancelled (cancellable))
    {
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                               "Receive on socket “%s” was cancelled", self->id);
      return;
    }

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  packet = receive_pop_locked (self);
  closed = packet == NULL && self->recv_closed;
  if (packet == NULL && !closed)
    g_queue_push_tail (&self->recv_tasks, g_object_ref (task));
  ENGINE_IO_UNLOCK (&self->recv_lock);

  if (packet != NULL)
    {
      receive_taken (self, packet);
      g_task_return_pointer (task, packet, (GDestroyNotify) engine_io_packet_unref);
    }
  else if (closed)
    {
      ENGINE_IO_LOCK (&self->recv_lock, RECV);
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                               "Socket “%s” is closed: %s", self->id,
                               engine_io_close_reason_to_string (self->recv_reason));
      ENGINE_IO_UNLOCK (&self->recv_lock);
    }
  else if (cancellable != NULL)
    {
      /* Cancellation is dispatched in the task's context (a
       * GCancellableSource): nothing runs in the thread that cancels. */
      GSource *source = g_cancellable_source_new (cancellable);
      gboolean waiting;

      g_source_set_callback (source, G_SOURCE_FUNC (receive_async_cancelled),
                             g_object_ref (task), g_object_unref);
      g_source_set_static_name (source, "[engineio] receive cancelled");
      g_source_attach (source, g_task_get_context (task));
      ENGINE_IO_LOCK (&self->recv_lock, RECV);
      waiting = g_queue_find (&self->recv_tasks, task) != NULL;
      if (waiting)
        d->cancel_source = g_source_ref (source);
      ENGINE_IO_UNLOCK (&self->recv_lock);
      if (!waiting)
        g_source_destroy (source);   /* a message or the close came meanwhile */
      g_source_unref (source);
    }
}

/**
 * engine_io_socket_receive_finish:
 * @self: a socket
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes engine_io_socket_receive_async(): the errors are those of
 * engine_io_socket_receive().
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive_finish (EngineIOSocket  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == engine_io_socket_receive_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
/**
 * engine_io_socket_set_message_func:
 * @self: a socket
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy): the
 *   function that receives the socket's messages, or %NULL to go back to
 *   #EngineIOSocket::message and the receive queue
 * @user_data: (nullable): data for @func
 * @destroy: (nullable): frees @user_data when @func is replaced, after the
 *   socket's #EngineIOSocket::close, or when the socket is finalized
 *
 * Hands every message of the socket to @func, in the socket's main
 * context, in order, instead of emitting #EngineIOSocket::message or
 * keeping it for engine_io_socket_receive(). #EngineIOSocket::packet is
 * still emitted first (if it had handlers when the function was set: see
 * below).
 *
 * It is the fast way to receive. GObject takes one process-wide lock for
 * each signal emission and each check for handlers; with a thread per
 * session and hundreds of busy sessions on a core, a thread preempted
 * while holding it stalls every other session's signals (for seconds,
 * measured at 1000 sessions). A message function is called with no lock
 * held and costs no signal, and while one is set the socket takes that
 * lock on no message's path: it looks for #EngineIOSocket::packet,
 * #EngineIOSocket::packet-create and #EngineIOSocket::drain handlers when
 * the function is set, not for every packet. So connect those before
 * calling engine_io_socket_set_message_func() (or call it again after
 * connecting them, from the socket's context): a handler of one of those
 * three connected later is not called until then. Servers built on this
 * library should set one (`engineio-echo` and the Python overrides'
 * `on('message')` do).
 *
 * @func may send, close the socket and replace or clear itself; replaced
 * from inside @func, the old @user_data is freed when @func returns. The
 * function is dropped (@destroy called) after #EngineIOSocket::close has
 * been emitted, which ends the references its data holds; set on a closed
 * socket, it is dropped at once.
 *
 * Call it from the socket's main context (engine_io_socket_get_context()),
 * for example from an #EngineIOServer::connection handler, which runs
 * there before the socket's first message.
 */
void
engine_io_socket_set_message_func (EngineIOSocket      *self,
                                   EngineIOMessageFunc  func,
                                   gpointer             user_data,
                                   GDestroyNotify       destroy)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));
  g_return_if_fail (g_main_context_is_owner (self->context));

  engine_io_socket_replace_message_func (self, func, user_data, destroy);
  /* A closed socket keeps none (engine_io_socket_clear_message_func()). */
  if (g_atomic_int_get ((int *) &self->state) == STATE_CLOSED)
    engine_io_socket_replace_message_func (self, NULL, NULL, NULL);
}