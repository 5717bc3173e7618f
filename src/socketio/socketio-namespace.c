/* socketio-namespace.c: SocketIONamespace, a namespace's sockets and middlewares
 *
 * Its adapter is set in socketio-adapter.c, its broadcast operators made in
 * socketio-broadcast.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/**
 * SocketIONamespace:
 *
 * A namespace ("/" or "/name"): its sockets, middlewares and adapter
 * (rooms). #SocketIONamespace::connection is emitted in each joining
 * socket's context.
 */
G_DEFINE_FINAL_TYPE (SocketIONamespace, socket_io_namespace, G_TYPE_OBJECT)
guint socket_io_namespace_signals[NSP_N_SIGNALS];

/* ------------------------------------------------------------------ */
/* SocketIONamespace                                                    */
/* ------------------------------------------------------------------ */

static void
middleware_free (gpointer data)
{
  SioMiddleware *m = data;

  if (m->destroy != NULL)
    m->destroy (m->user_data);
  g_free (m);
}

static void
socket_io_namespace_finalize (GObject *object)
{
  SocketIONamespace *self = SOCKET_IO_NAMESPACE (object);

  g_hash_table_unref (self->sockets);
  g_ptr_array_unref (self->middlewares);
  g_queue_clear_full (&self->parked, (GDestroyNotify) socket_io_connect_attempt_unref);
  g_clear_object (&self->adapter);
  g_free (self->name);
  g_mutex_clear (&self->lock);
  g_rw_lock_clear (&self->recovery_lock);
  G_OBJECT_CLASS (socket_io_namespace_parent_class)->finalize (object);
}

static void
socket_io_namespace_class_init (SocketIONamespaceClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_namespace_finalize;

  /**
   * SocketIONamespace::connection:
   * @nsp: the namespace
   * @socket: the socket that joined
   *
   * Emitted when a client joined the namespace (after the middlewares let
   * it in and the CONNECT reply was handed to the transport: in the main
   * loop iteration after the one that queued it), in the socket's context
   * (its Engine.IO session's: see socket_io_socket_get_context()). Connect
   * the socket's signals here: packets the client sent meanwhile (at most
   * 64, pipelined after its CONNECT) are handed to the socket after this
   * signal. A socket whose client goes away before is announced then,
   * just before its #SocketIOSocket::disconnecting (the packets are
   * dropped): no socket disconnects unannounced.
   */
  socket_io_namespace_signals[NSP_SIGNAL_CONNECTION] =
    g_signal_new ("connection", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, SOCKET_IO_TYPE_SOCKET);
}

static void
socket_io_namespace_init (SocketIONamespace *self)
{
  g_mutex_init (&self->lock);
  g_rw_lock_init (&self->recovery_lock);
  self->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->middlewares = g_ptr_array_new_with_free_func (middleware_free);
}

/**
 * socket_io_namespace_get_name:
 * @self: a namespace
 *
 * Any thread.
 *
 * Returns: the name ("/" for the main namespace)
 */
const char *
socket_io_namespace_get_name (SocketIONamespace *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), NULL);
  return self->name;
}

/**
 * socket_io_namespace_get_server:
 * @self: a namespace
 *
 * Any thread.
 *
 * Returns: (transfer none): the server
 */
SocketIOServer *
socket_io_namespace_get_server (SocketIONamespace *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), NULL);
  return self->server;
}

/**
 * socket_io_namespace_get_adapter:
 * @self: a namespace
 *
 * Any thread. The adapter stays valid while @self lives unless
 * socket_io_namespace_set_adapter() replaces it.
 *
 * Returns: (transfer none): the namespace's adapter
 */
SocketIOAdapter *
socket_io_namespace_get_adapter (SocketIONamespace *self)
{
  SocketIOAdapter *adapter;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), NULL);
  g_mutex_lock (&self->lock);
  adapter = self->adapter;
  g_mutex_unlock (&self->lock);
  return adapter;
}

/**
 * socket_io_namespace_use:
 * @self: a namespace
 * @func: (scope notified) (closure user_data) (destroy destroy): the middleware
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when the namespace is finalized
 *
 * Adds a middleware: every CONNECT to @self runs the middlewares in the
 * order added, in the socket's context; one that refuses sends the client
 * CONNECT_ERROR `{"message": error->message, "data": error_data}`.
 *
 * Any thread.
 */
void
socket_io_namespace_use (SocketIONamespace      *self,
                         SocketIOMiddlewareFunc  func,
                         gpointer                user_data,
                         GDestroyNotify          destroy)
{
  SioMiddleware *m;

  g_return_if_fail (SOCKET_IO_IS_NAMESPACE (self));
  g_return_if_fail (func != NULL);
  m = g_new0 (SioMiddleware, 1);
  m->func = func;
  m->user_data = user_data;
  m->destroy = destroy;
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->middlewares, m);
  g_mutex_unlock (&self->lock);
}

/**
 * socket_io_namespace_use_async:
 * @self: a namespace
 * @func: (scope notified) (closure user_data) (destroy destroy): the middleware
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when the namespace is finalized
 *
 * Adds an asynchronous middleware (after those added before, synchronous
 * or not): @func runs in the socket's context and answers, then or later
 * from any thread, with socket_io_middleware_call_next() or
 * socket_io_middleware_call_refuse(). Packets for the namespace that
 * arrive meanwhile close the client, as the reference does.
 *
 * Any thread.
 */
void
socket_io_namespace_use_async (SocketIONamespace           *self,
                               SocketIOAsyncMiddlewareFunc  func,
                               gpointer                     user_data,
                               GDestroyNotify               destroy)
{
  SioMiddleware *m;

  g_return_if_fail (SOCKET_IO_IS_NAMESPACE (self));
  g_return_if_fail (func != NULL);
  m = g_new0 (SioMiddleware, 1);
  m->async_func = func;
  m->user_data = user_data;
  m->destroy = destroy;
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->middlewares, m);
  g_mutex_unlock (&self->lock);
}

/**
 * socket_io_namespace_get_sockets:
 * @self: a namespace
 *
 * Any thread.
 *
 * Returns: (transfer container) (element-type SocketIOSocket): the
 *   connected sockets of this server in @self
 */
GPtrArray *
socket_io_namespace_get_sockets (SocketIONamespace *self)
{
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), sockets);
  g_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  g_mutex_unlock (&self->lock);
  return sockets;
}

/**
 * socket_io_namespace_lookup_socket:
 * @self: a namespace
 * @id: a socket id
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): the connected socket @id, or %NULL
 */
SocketIOSocket *
socket_io_namespace_lookup_socket (SocketIONamespace *self,
                                   const char        *id)
{
  SocketIOSocket *socket;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), NULL);
  g_mutex_lock (&self->lock);
  socket = g_hash_table_lookup (self->sockets, id);
  if (socket != NULL)
    g_object_ref (socket);
  g_mutex_unlock (&self->lock);
  return socket;
}

/**
 * socket_io_namespace_send_encoded:
 * @self: a namespace
 * @sid: a socket id
 * @text: an encoded Socket.IO packet
 * @attachments: (nullable) (element-type GBytes): its attachments
 * @flags: %SOCKET_IO_BROADCAST_VOLATILE skips a socket whose send queue
 *   is not empty
 *
 * Sends an encoded packet to the local socket @sid; for adapters. Any
 * thread.
 *
 * Returns: %TRUE if @sid is connected here and the packet was queued
 */
gboolean
socket_io_namespace_send_encoded (SocketIONamespace      *self,
                                  const char             *sid,
                                  GBytes                 *text,
                                  GPtrArray              *attachments,
                                  SocketIOBroadcastFlags  flags)
{
  SocketIOSocket *socket;
  gboolean ok = FALSE;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), FALSE);
  g_mutex_lock (&self->lock);
  socket = g_hash_table_lookup (self->sockets, sid);
  if (socket != NULL &&
      !((flags & SOCKET_IO_BROADCAST_VOLATILE) &&
        engine_io_socket_get_send_queue_length (socket->client->eio) > 0))
    ok = socket_io_client_send_encoded (socket->client, text, attachments, NULL);
  g_mutex_unlock (&self->lock);
  return ok;
}
