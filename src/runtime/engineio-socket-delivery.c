/* engineio-socket-delivery.c: what reaches the application
 *
 * The bottom of the session's files: the socket's signal and property
 * ids (registered by engineio-socket.c's class_init, emitted by the
 * session's files), the message function and the signal cache that goes
 * with it, and the delivery side of the receive queue (a waiting
 * receive_async() caller takes a message, the close wakes every
 * receiver). It calls no other engineio-socket*.c file; the public
 * receive API (engineio-socket-receive.c) sits on it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Filled in by engine_io_socket_class_init(). */
GParamSpec *engine_io_socket_properties[N_PROPS];
guint engine_io_socket_signals[N_SIGNALS];

/* recv_lock held: the oldest receive_async() caller still waiting whose
 * cancellable was not cancelled, with its cancellation source destroyed by
 * the caller (engine_io_socket_receive_task_return()). A cancelled caller takes nothing,
 * even before its context dispatched the cancellation: it stays in
 * @recv_tasks until receive_async_cancelled() (or engine_io_socket_receive_close()) returns
 * it, and the message goes to the next caller or to the queue. */
GTask *
engine_io_socket_receive_take_task_locked (EngineIOSocket *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->recv_lock);
  for (GList *l = self->recv_tasks.head; l != NULL; l = l->next)
    {
      GTask *task = l->data;

      if (!g_cancellable_is_cancelled (g_task_get_cancellable (task)))
        {
          g_queue_delete_link (&self->recv_tasks, l);
          return task;
        }
    }
  return NULL;
}

/* No lock held: @task (ref, taken off recv_tasks) gets @packet, or the
 * socket's close error when @packet is NULL. */
void
engine_io_socket_receive_task_return (GTask          *task,
                                      EngineIOPacket *packet)
{
  ReceiveTaskData *d = g_task_get_task_data (task);

  /* Set (under recv_lock) before the task left the queue, if at all. A
   * cancellation dispatched meanwhile finds the task gone and leaves it
   * to us. */
  if (d->cancel_source != NULL)
    g_source_destroy (d->cancel_source);
  if (packet != NULL)
    g_task_return_pointer (task, engine_io_packet_ref (packet), (GDestroyNotify) engine_io_packet_unref);
  else
    {
      EngineIOCloseReason reason;

      ENGINE_IO_LOCK (&d->socket->recv_lock, RECV);
      reason = d->socket->recv_reason;
      ENGINE_IO_UNLOCK (&d->socket->recv_lock);
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                               "Socket “%s” is closed: %s", d->socket->id,
                               engine_io_close_reason_to_string (reason));
    }
  g_object_unref (task);
}

/* Session context, once, when the session is over: wakes every receiver. */
void
engine_io_socket_receive_close (EngineIOSocket      *self,
                                EngineIOCloseReason  reason)
{
  GQueue tasks = G_QUEUE_INIT;
  GTask *task;

  ENGINE_IO_LOCK (&self->recv_lock, RECV);
  self->recv_closed = TRUE;
  self->recv_reason = reason;
  /* Nothing is queued while a task that is not cancelled waits: each
   * gets the close. */
  tasks = self->recv_tasks;
  g_queue_init (&self->recv_tasks);
  g_cond_broadcast (&self->recv_cond);
  ENGINE_IO_UNLOCK (&self->recv_lock);
  while ((task = g_queue_pop_head (&tasks)) != NULL)
    engine_io_socket_receive_task_return (task, NULL);
}
/* The message function */

typedef struct
{
  gpointer       data;
  GDestroyNotify destroy;
} DeferredFree;

static void update_signal_cache (EngineIOSocket *self);

/* Session context: sets the message function (NULL: none), freeing the
 * data it replaces (once it returns, if it is running). */
void
engine_io_socket_replace_message_func (EngineIOSocket      *self,
                      EngineIOMessageFunc  func,
                      gpointer             user_data,
                      GDestroyNotify       destroy)
{
  gpointer old_data = self->message_func_data;
  GDestroyNotify old_destroy = self->message_func_destroy;

  self->message_func = func;
  self->message_func_data = user_data;
  self->message_func_destroy = destroy;
  update_signal_cache (self);

  if (old_destroy == NULL)
    return;
  if (self->message_func_depth > 0)
    {
      /* @func replaced itself: its data lives until it returns. */
      DeferredFree *deferred = g_new (DeferredFree, 1);

      deferred->data = old_data;
      deferred->destroy = old_destroy;
      self->message_func_deferred = g_slist_prepend (self->message_func_deferred, deferred);
    }
  else
    old_destroy (old_data);
}

/* Whether @signal (SIGNAL_PACKET, SIGNAL_PACKET_CREATE or SIGNAL_DRAIN) has
 * handlers: GObject's answer (under its process-wide signal lock), or,
 * while a message function is set, the answer taken when it was set. Any
 * thread. */
gboolean
engine_io_socket_wants_signal (EngineIOSocket *self,
                               guint           signal)
{
  int cache = g_atomic_int_get (&self->signal_cache);

  if ((cache & SIGNAL_CACHE_VALID) == 0)
    return g_signal_has_handler_pending (self, engine_io_socket_signals[signal], 0, TRUE);
  switch (signal)
    {
    case SIGNAL_PACKET:
      return (cache & SIGNAL_CACHE_PACKET) != 0;
    case SIGNAL_PACKET_CREATE:
      return (cache & SIGNAL_CACHE_PACKET_CREATE) != 0;
    case SIGNAL_DRAIN:
      return (cache & SIGNAL_CACHE_DRAIN) != 0;
    default:
      g_return_val_if_reached (TRUE);
    }
}

/* Session context: the cache follows the message function. */
static void
update_signal_cache (EngineIOSocket *self)
{
  int cache = 0;

  if (self->message_func != NULL)
    {
      cache = SIGNAL_CACHE_VALID;
      if (g_signal_has_handler_pending (self, engine_io_socket_signals[SIGNAL_PACKET], 0, TRUE))
        cache |= SIGNAL_CACHE_PACKET;
      if (g_signal_has_handler_pending (self, engine_io_socket_signals[SIGNAL_PACKET_CREATE], 0, TRUE))
        cache |= SIGNAL_CACHE_PACKET_CREATE;
      if (g_signal_has_handler_pending (self, engine_io_socket_signals[SIGNAL_DRAIN], 0, TRUE))
        cache |= SIGNAL_CACHE_DRAIN;
    }
  g_atomic_int_set (&self->signal_cache, cache);
}

/* Session context: @packet (a message) to the message function. FALSE if
 * there is none. */
gboolean
engine_io_socket_call_message_func (EngineIOSocket *self,
                                    EngineIOPacket *packet)
{
  if (self->message_func == NULL)
    return FALSE;

  self->message_func_depth++;
  self->message_func (self, packet, self->message_func_data);
  if (--self->message_func_depth == 0 && self->message_func_deferred != NULL)
    {
      GSList *deferred = g_steal_pointer (&self->message_func_deferred);

      for (GSList *l = deferred; l != NULL; l = l->next)
        {
          DeferredFree *d = l->data;

          d->destroy (d->data);
          g_free (d);
        }
      g_slist_free (deferred);
    }
  return TRUE;
}

/* Session context, after ::close, and finalize: the function is dropped. */
void
engine_io_socket_clear_message_func (EngineIOSocket *self)
{
  engine_io_socket_replace_message_func (self, NULL, NULL, NULL);
}
