/* socketio-socket-emit.c: a socket's events, in and out, and their acks
 *
 * The packets a socket receives (::event, the client's acks of server
 * emits) and socket_io_socket_emit(), socket_io_socket_emit_with_ack().
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

static char *
event_name_of (SocketIOPacket *packet)
{
  const char *name = socket_io_packet_get_event_name (packet);
  JsonNode *node;

  if (name != NULL)
    return g_strdup (name);
  node = json_array_get_element (json_node_get_array (socket_io_packet_get_data (packet)), 0);
  if (json_node_get_value_type (node) == G_TYPE_INT64)
    return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (node));
  return g_strdup_printf ("%.17g", json_node_get_double (node));
}

/* Session context. */
void
socket_io_socket_on_packet (SocketIOSocket *self,
                            SocketIOPacket *packet)
{
  switch (socket_io_packet_get_packet_type (packet))
    {
    case SOCKET_IO_PACKET_EVENT:
      {
        g_autofree char *name = event_name_of (packet);
        g_autoptr(JsonArray) args = socket_io_array_tail (socket_io_packet_get_data (packet), 1);
        g_autoptr(SocketIOAck) ack = NULL;
        gint64 id = socket_io_packet_get_id (packet);

        if (id != SOCKET_IO_NO_ACK_ID)
          {
            ack = g_object_new (SOCKET_IO_TYPE_ACK, NULL);
            ack->socket = g_object_ref (self);
            ack->id = id;
          }
        g_signal_emit (self, socket_io_socket_signals[SOCKET_SIGNAL_EVENT], g_quark_try_string (name),
                       name, args, socket_io_packet_get_attachments (packet), ack);
        break;
      }
    case SOCKET_IO_PACKET_ACK:
      {
        SioPendingAck *pending = socket_io_socket_take_pending (self, socket_io_packet_get_id (packet));
        SioAckResult *result;

        if (pending == NULL)
          {
            /* As the reference: an ack for an unknown id (late, after its
             * timeout) is dropped. */
            g_debug ("%s: ack %" G_GINT64_FORMAT " for nothing", self->id,
                     socket_io_packet_get_id (packet));
            break;
          }
        result = g_new0 (SioAckResult, 1);
        result->args = socket_io_array_tail (socket_io_packet_get_data (packet), 0);
        result->attachments = g_ptr_array_ref (socket_io_packet_get_attachments (packet));
        g_task_return_pointer (pending->task, result, socket_io_ack_result_free);
        socket_io_pending_ack_free (pending);
        break;
      }
    case SOCKET_IO_PACKET_DISCONNECT:
      socket_io_socket_close (self, "client namespace disconnect");
      break;
    default:
      break;
    }
}

/**
 * socket_io_socket_emit:
 * @self: a socket
 * @name: the event name (not a reserved one: connect, connect_error,
 *   disconnect, disconnecting, newListener, removeListener)
 * @args: (nullable): the arguments (sealed by this call); binaries as
 *   placeholders made for @attachments
 * @attachments: (nullable) (element-type GBytes): the binaries (shared,
 *   not copied)
 * @error: return location for an error
 *
 * Sends an event (EVENT, or BINARY_EVENT with attachments) to the client.
 * Any thread.
 *
 * Returns: %TRUE if the packet was queued
 */
gboolean
socket_io_socket_emit (SocketIOSocket  *self,
                       const char      *name,
                       JsonArray       *args,
                       GPtrArray       *attachments,
                       GError         **error)
{
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;

  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  if (!socket_io_socket_is_connected (self))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "Socket is disconnected");
      return FALSE;
    }
  data = socket_io_event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, data,
                                 SOCKET_IO_NO_ACK_ID, attachments, error);
  if (packet == NULL)
    return FALSE;
  if (socket_io_server_recovery_on (self->nsp->server))
    {
      /* As the reference: through the adapter to the socket's own room,
       * so that the event gets an offset and is kept for recovery. */
      g_autoptr(GPtrArray) encoded_attachments = NULL;
      g_autoptr(GBytes) text = socket_io_packet_encode (packet, &encoded_attachments);
      const char *rooms[2] = { self->id, NULL };
      guint n;

      g_rw_lock_reader_lock (&self->nsp->recovery_lock);
      n = socket_io_adapter_broadcast (socket_io_namespace_get_adapter (self->nsp), text,
                                       encoded_attachments, rooms, NULL, SOCKET_IO_BROADCAST_NONE);
      g_rw_lock_reader_unlock (&self->nsp->recovery_lock);
      if (n == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "The event was not queued");
          return FALSE;
        }
      return TRUE;
    }
  return socket_io_client_send_packet (self->client, packet, error);
}

typedef struct
{
  SocketIOSocket *socket;
  gint64          id;
} SioAckRef;

static void
ack_ref_free (gpointer data)
{
  SioAckRef *ref = data;

  g_object_unref (ref->socket);
  g_free (ref);
}

static gboolean
on_ack_timeout (gpointer data)
{
  SioAckRef *ref = data;
  SioPendingAck *pending = socket_io_socket_take_pending (ref->socket, ref->id);

  if (pending != NULL)
    socket_io_pending_ack_fail (pending, G_IO_ERROR_TIMED_OUT, "Ack timed out");
  return G_SOURCE_REMOVE;
}

static gboolean
on_ack_cancelled (GCancellable *cancellable,
                  gpointer      data)
{
  SioAckRef *ref = data;
  SioPendingAck *pending = socket_io_socket_take_pending (ref->socket, ref->id);

  if (pending != NULL)
    socket_io_pending_ack_fail (pending, G_IO_ERROR_CANCELLED, "Operation was cancelled");
  return G_SOURCE_REMOVE;
}

/**
 * socket_io_socket_emit_with_ack:
 * @self: a socket
 * @name: the event name
 * @args: (nullable): the arguments (sealed by this call)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders refer to
 * @timeout_ms: how long to wait for the client's ack; 0 for no limit
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called with the client's
 *   ack, or on timeout, cancellation or disconnection
 * @user_data: data for @callback
 *
 * Sends an event with an ack id and waits for the client's ACK. At most
 * #SocketIOServer:max-pending-acks wait per socket; past that the call
 * fails with %G_IO_ERROR_NO_SPACE. @callback runs in the thread-default
 * main context of the caller, which must keep running until then (the
 * context of another socket's session stops with that session). Any
 * thread.
 */
void
socket_io_socket_emit_with_ack (SocketIOSocket      *self,
                                const char          *name,
                                JsonArray           *args,
                                GPtrArray           *attachments,
                                guint                timeout_ms,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  SioPendingAck *pending;
  SioAckRef *ref;
  gint64 id;

  g_return_if_fail (SOCKET_IO_IS_SOCKET (self));
  g_return_if_fail (name != NULL);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, socket_io_socket_emit_with_ack);

  g_mutex_lock (&self->ack_lock);
  if (self->acks_closed || !g_atomic_int_get (&self->connected))
    {
      g_mutex_unlock (&self->ack_lock);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "Socket is disconnected");
      return;
    }
  if (g_hash_table_size (self->acks) >= (guint) g_atomic_int_get (&self->client->server->max_pending_acks))
    {
      g_mutex_unlock (&self->ack_lock);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "Too many pending acks");
      return;
    }
  id = self->next_ack_id++;
  if (self->next_ack_id > SOCKET_IO_MAX_ACK_ID)
    self->next_ack_id = 0;
  g_mutex_unlock (&self->ack_lock);

  data = socket_io_event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, data, id,
                                 attachments, &error);
  if (packet == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  pending = g_new0 (SioPendingAck, 1);
  pending->task = g_object_ref (task);
  pending->id = id;
  if (timeout_ms > 0)
    {
      ref = g_new0 (SioAckRef, 1);
      ref->socket = g_object_ref (self);
      ref->id = id;
      pending->timer = g_timeout_source_new (timeout_ms);
      g_source_set_callback (pending->timer, on_ack_timeout, ref, ack_ref_free);
    }
  if (cancellable != NULL)
    {
      ref = g_new0 (SioAckRef, 1);
      ref->socket = g_object_ref (self);
      ref->id = id;
      pending->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (pending->cancel_source, G_SOURCE_FUNC (on_ack_cancelled), ref, ack_ref_free);
    }

  g_mutex_lock (&self->ack_lock);
  if (self->acks_closed)
    {
      g_mutex_unlock (&self->ack_lock);
      socket_io_pending_ack_fail (pending, G_IO_ERROR_NOT_CONNECTED, "Socket is disconnected");
      return;
    }
  g_hash_table_insert (self->acks, &pending->id, pending);
  /* Attached under the lock: whoever takes the pending ack destroys them,
   * and only after they were attached. */
  if (pending->timer != NULL)
    g_source_attach (pending->timer, self->client->context);
  if (pending->cancel_source != NULL)
    g_source_attach (pending->cancel_source, self->client->context);
  g_mutex_unlock (&self->ack_lock);

  if (!socket_io_client_send_packet (self->client, packet, &error))
    {
      pending = socket_io_socket_take_pending (self, id);
      if (pending != NULL)
        {
          g_task_return_error (pending->task, g_steal_pointer (&error));
          socket_io_pending_ack_free (pending);
        }
    }
}

/**
 * socket_io_socket_emit_with_ack_finish:
 * @self: a socket
 * @result: the result given to the callback
 * @attachments: (out) (optional) (transfer container) (element-type GBytes):
 *   the binaries of the client's ack
 * @error: return location for an error: %G_IO_ERROR_TIMED_OUT,
 *   %G_IO_ERROR_CANCELLED, %G_IO_ERROR_CLOSED (disconnected while
 *   waiting), %G_IO_ERROR_NOT_CONNECTED, %G_IO_ERROR_NO_SPACE...
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): the ack's arguments, or %NULL with
 *   @error set
 */
JsonArray *
socket_io_socket_emit_with_ack_finish (SocketIOSocket  *self,
                                       GAsyncResult    *result,
                                       GPtrArray      **attachments,
                                       GError         **error)
{
  SioAckResult *ack;
  JsonArray *args;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  ack = g_task_propagate_pointer (G_TASK (result), error);
  if (ack == NULL)
    return NULL;
  args = json_array_ref (ack->args);
  if (attachments != NULL)
    *attachments = g_ptr_array_ref (ack->attachments);
  socket_io_ack_result_free (ack);
  return args;
}
