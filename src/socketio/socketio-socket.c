/* socketio-socket.c: SocketIOSocket and SocketIOAck, a socket's state
 *
 * The objects, their accessors and a socket's pending acks; what a socket
 * receives and emits is in socketio-socket-emit.c, its rooms and its
 * disconnection in socketio-adapter.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/**
 * SocketIOSocket:
 *
 * One client in one namespace. Its signals are emitted in its Engine.IO
 * session's context (socket_io_socket_get_context()); emits, acks, joins
 * and leaves may be called from any thread.
 */

/**
 * SocketIOAck:
 *
 * The acknowledgement a client waits for on one event; answer it once
 * with socket_io_ack_send(), from any thread.
 */
G_DEFINE_FINAL_TYPE (SocketIOSocket, socket_io_socket, G_TYPE_OBJECT)
G_DEFINE_FINAL_TYPE (SocketIOAck, socket_io_ack, G_TYPE_OBJECT)
guint socket_io_socket_signals[SOCKET_N_SIGNALS];

/* ------------------------------------------------------------------ */
/* SocketIOAck                                                          */
/* ------------------------------------------------------------------ */

static void
socket_io_ack_finalize (GObject *object)
{
  g_clear_object (&SOCKET_IO_ACK (object)->socket);
  G_OBJECT_CLASS (socket_io_ack_parent_class)->finalize (object);
}

static void
socket_io_ack_class_init (SocketIOAckClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_ack_finalize;
}

static void
socket_io_ack_init (SocketIOAck *self)
{
}

/**
 * socket_io_ack_get_id:
 * @self: an ack
 *
 * Any thread.
 *
 * Returns: the ack id the client chose
 */
gint64
socket_io_ack_get_id (SocketIOAck *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_ACK (self), -1);
  return self->id;
}

/**
 * socket_io_ack_send:
 * @self: an ack
 * @args: (nullable): the arguments of the acknowledgement (sealed by this
 *   call)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders refer to
 * @error: return location for an error
 *
 * Answers the client's event (ACK, or BINARY_ACK with attachments). Only
 * the first call sends; later ones fail with %G_IO_ERROR_EXISTS. Any
 * thread, also after the event handler returned (keep a ref).
 *
 * Returns: %TRUE if the ack was queued
 */
gboolean
socket_io_ack_send (SocketIOAck  *self,
                    JsonArray    *args,
                    GPtrArray    *attachments,
                    GError      **error)
{
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;

  g_return_val_if_fail (SOCKET_IO_IS_ACK (self), FALSE);
  if (!g_atomic_int_compare_and_exchange (&self->sent, 0, 1))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_EXISTS, "Ack already sent");
      return FALSE;
    }
  if (!socket_io_socket_is_connected (self->socket))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "Socket is disconnected");
      return FALSE;
    }
  data = socket_io_args_payload (args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_ACK, self->socket->nsp->name, data, self->id,
                                 attachments, error);
  if (packet == NULL)
    return FALSE;
  return socket_io_client_send_packet (self->socket->client, packet, error);
}

/* ------------------------------------------------------------------ */
/* SocketIOSocket                                                       */
/* ------------------------------------------------------------------ */

void
socket_io_ack_result_free (gpointer data)
{
  SioAckResult *result = data;

  json_array_unref (result->args);
  g_ptr_array_unref (result->attachments);
  g_free (result);
}

void
socket_io_pending_ack_free (SioPendingAck *pending)
{
  if (pending->timer != NULL)
    {
      g_source_destroy (pending->timer);
      g_source_unref (pending->timer);
    }
  if (pending->cancel_source != NULL)
    {
      g_source_destroy (pending->cancel_source);
      g_source_unref (pending->cancel_source);
    }
  g_clear_object (&pending->task);
  g_free (pending);
}

/* Any thread. Whoever takes a pending ack out of the table completes it. */
SioPendingAck *
socket_io_socket_take_pending (SocketIOSocket *self,
                               gint64          id)
{
  SioPendingAck *pending = NULL;

  g_mutex_lock (&self->ack_lock);
  g_hash_table_steal_extended (self->acks, &id, NULL, (gpointer *) &pending);
  g_mutex_unlock (&self->ack_lock);
  return pending;
}

void
socket_io_pending_ack_fail (SioPendingAck *pending,
                            GIOErrorEnum   code,
                            const char    *message)
{
  g_task_return_new_error (pending->task, G_IO_ERROR, code, "%s", message);
  socket_io_pending_ack_free (pending);
}

static void
socket_io_socket_finalize (GObject *object)
{
  SocketIOSocket *self = SOCKET_IO_SOCKET (object);

  g_hash_table_unref (self->acks);
  g_mutex_clear (&self->ack_lock);
  g_clear_pointer (&self->auth, json_node_unref);
  g_clear_pointer (&self->data, json_node_unref);
  g_clear_object (&self->nsp);
  g_clear_pointer (&self->client, socket_io_client_unref);
  g_clear_pointer (&self->session, socket_io_session_unref);
  g_clear_pointer (&self->early_rooms, g_ptr_array_unref);
  g_queue_clear_full (&self->early_packets, (GDestroyNotify) socket_io_packet_unref);
  g_free (self->pid);
  g_free (self->recovery_offset);
  g_free (self->id);
  G_OBJECT_CLASS (socket_io_socket_parent_class)->finalize (object);
}

static void
socket_io_socket_class_init (SocketIOSocketClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_socket_finalize;

  /**
   * SocketIOSocket::event:
   * @socket: the socket
   * @name: the event name
   * @args: the arguments (binary ones as `{"_placeholder":true,"num":N}`
   *   placeholders standing for @attachments[N])
   * @attachments: (element-type GBytes): the binary attachments (empty
   *   for a plain EVENT)
   * @ack: (nullable): the acknowledgement the client waits for, or %NULL;
   *   answer with socket_io_ack_send()
   *
   * Emitted for every event the client sends, in the socket's context.
   * Detailed by the event name (`event::message`) when a handler for that
   * detail exists; a handler without detail sees every event (catch-all).
   */
  socket_io_socket_signals[SOCKET_SIGNAL_EVENT] =
    g_signal_new ("event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  JSON_TYPE_ARRAY,
                  G_TYPE_PTR_ARRAY,
                  SOCKET_IO_TYPE_ACK);
  /**
   * SocketIOSocket::disconnecting:
   * @socket: the socket
   * @reason: the Socket.IO disconnect reason
   *
   * Emitted in the socket's context when the socket is about to leave its
   * namespace; its rooms are still known.
   */
  socket_io_socket_signals[SOCKET_SIGNAL_DISCONNECTING] =
    g_signal_new ("disconnecting", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
  /**
   * SocketIOSocket::disconnect:
   * @socket: the socket
   * @reason: the Socket.IO disconnect reason: `client namespace
   *   disconnect`, `server namespace disconnect`, `transport close`,
   *   `transport error`, `ping timeout`, `parse error`, `forced server
   *   close`, `server shutting down`
   *
   * Emitted once in the socket's context when the socket left its
   * namespace (rooms left, pending acks failed).
   */
  socket_io_socket_signals[SOCKET_SIGNAL_DISCONNECT] =
    g_signal_new ("disconnect", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
socket_io_socket_init (SocketIOSocket *self)
{
  g_mutex_init (&self->ack_lock);
  self->acks = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, NULL);
}

SocketIOSocket *
socket_io_socket_new (SocketIONamespace *nsp,
                      SioClient         *c,
                      JsonNode          *auth,
                      SocketIOSession   *session)
{
  SocketIOSocket *self = g_object_new (SOCKET_IO_TYPE_SOCKET, NULL);

  self->early_rooms = g_ptr_array_new_with_free_func (g_free);
  if (session != NULL)
    {
      /* Recovered: the same id, private id and data. */
      self->id = g_strdup (socket_io_session_get_sid (session));
      self->pid = g_strdup (socket_io_session_get_pid (session));
      self->data = socket_io_session_get_data (session) != NULL
        ? json_node_ref (socket_io_session_get_data (session)) : NULL;
      self->recovered = TRUE;
      self->session = socket_io_session_ref (session);
    }
  else if (c->protocol == SOCKET_IO_PROTOCOL_V4)
    /* As the reference with allowEIO3: socket.io 2.x ids. */
    self->id = strcmp (nsp->name, "/") == 0
      ? g_strdup (engine_io_socket_get_id (c->eio))
      : g_strconcat (nsp->name, "#", engine_io_socket_get_id (c->eio), NULL);
  else
    {
      self->id = socket_io_generate_id ();
      if (socket_io_server_recovery_on (c->server))
        self->pid = socket_io_generate_id ();
    }
  self->nsp = g_object_ref (nsp);
  self->client = socket_io_client_ref (c);
  self->auth = auth != NULL ? json_node_ref (auth) : NULL;
  return self;
}

/**
 * socket_io_socket_get_id:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: the socket's id (also the name of its own room)
 */
const char *
socket_io_socket_get_id (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return self->id;
}

/**
 * socket_io_socket_get_namespace:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer none): the namespace
 */
SocketIONamespace *
socket_io_socket_get_namespace (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return self->nsp;
}

/**
 * socket_io_socket_get_engine_socket:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer none): the Engine.IO session carrying the socket
 */
EngineIOSocket *
socket_io_socket_get_engine_socket (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return self->client->eio;
}

/**
 * socket_io_socket_get_auth:
 * @self: a socket
 *
 * The CONNECT packet's auth payload (socket.io-client's `auth` option).
 * Any thread.
 *
 * Returns: (transfer none) (nullable): the auth object (sealed), or %NULL
 *   if the client sent none
 */
JsonNode *
socket_io_socket_get_auth (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return self->auth;
}

/**
 * socket_io_socket_get_handshake:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer none): the Engine.IO handshake request (headers,
 *   query, remote address)
 */
EngineIOHandshake *
socket_io_socket_get_handshake (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return engine_io_socket_get_handshake (self->client->eio);
}

/**
 * socket_io_socket_get_context:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer none): the main context in which the socket's signals
 *   are emitted (its Engine.IO session's)
 */
GMainContext *
socket_io_socket_get_context (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return self->client->context;
}

/**
 * socket_io_socket_is_connected:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: whether the socket is in its namespace (%TRUE from
 *   #SocketIONamespace::connection until #SocketIOSocket::disconnect)
 */
gboolean
socket_io_socket_is_connected (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), FALSE);
  return g_atomic_int_get (&self->connected) != 0;
}

/**
 * socket_io_socket_get_recovered:
 * @self: a socket
 *
 * Whether the socket was recovered (#SocketIOServer:connection-state-recovery):
 * its client came back in time with its private session id, and got the
 * socket's id, rooms, data and the events it missed (the reference's
 * `socket.recovered`). Any thread.
 *
 * Returns: %TRUE for a recovered socket
 */
gboolean
socket_io_socket_get_recovered (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), FALSE);
  return self->recovered;
}

/**
 * socket_io_socket_dup_data:
 * @self: a socket
 *
 * The application's data for this socket (the reference's `socket.data`:
 * JSON, so that a scale-out adapter can carry it). Any thread.
 *
 * Returns: (transfer full) (nullable): the data (sealed), or %NULL
 */
JsonNode *
socket_io_socket_dup_data (SocketIOSocket *self)
{
  JsonNode *data;

  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  g_mutex_lock (&self->ack_lock);
  data = self->data != NULL ? json_node_ref (self->data) : NULL;
  g_mutex_unlock (&self->ack_lock);
  return data;
}

/**
 * socket_io_socket_set_data:
 * @self: a socket
 * @data: (nullable): the new data (sealed by this call), or %NULL
 *
 * Replaces the socket's data. Any thread.
 */
void
socket_io_socket_set_data (SocketIOSocket *self,
                           JsonNode       *data)
{
  JsonNode *old;

  g_return_if_fail (SOCKET_IO_IS_SOCKET (self));
  if (data != NULL)
    {
      data = json_node_ref (data);
      json_node_seal (data);
    }
  g_mutex_lock (&self->ack_lock);
  old = self->data;
  self->data = data;
  g_mutex_unlock (&self->ack_lock);
  g_clear_pointer (&old, json_node_unref);
}
