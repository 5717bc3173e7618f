/* socketio-broadcast.c: SocketIOBroadcastOperator
 *
 * The operator, the namespace's and socket's functions that make one
 * (socket_io_namespace_broadcast(), _to(), _emit(), socket_io_socket_to()),
 * broadcasts with acks, and the room operations on the sockets it
 * addresses.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/**
 * SocketIOBroadcastOperator:
 *
 * Addresses the sockets of a namespace in some rooms and not in others,
 * for one broadcast (socket_io_broadcast_operator_emit()) or room
 * operation. Used from one thread at a time.
 */
G_DEFINE_FINAL_TYPE (SocketIOBroadcastOperator, socket_io_broadcast_operator, G_TYPE_OBJECT)

/**
 * socket_io_namespace_broadcast:
 * @self: a namespace
 *
 * Any thread.
 *
 * Returns: (transfer full): a broadcast operator addressing every socket
 *   of @self
 */
SocketIOBroadcastOperator *
socket_io_namespace_broadcast (SocketIONamespace *self)
{
  SocketIOBroadcastOperator *op;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (self), NULL);
  op = g_object_new (SOCKET_IO_TYPE_BROADCAST_OPERATOR, NULL);
  op->nsp = g_object_ref (self);
  return op;
}

/**
 * socket_io_namespace_to:
 * @self: a namespace
 * @room: a room
 *
 * Any thread.
 *
 * Returns: (transfer full): a broadcast operator addressing the sockets of
 *   @self in @room
 */
SocketIOBroadcastOperator *
socket_io_namespace_to (SocketIONamespace *self,
                        const char        *room)
{
  SocketIOBroadcastOperator *op = socket_io_namespace_broadcast (self);

  return socket_io_broadcast_operator_to (op, room);
}

/**
 * socket_io_namespace_emit:
 * @self: a namespace
 * @name: the event name
 * @args: (nullable): the arguments (sealed by this call)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders refer to
 * @error: return location for a %SOCKET_IO_ERROR_INVALID error
 *
 * Emits an event to every socket of @self. Any thread.
 *
 * Returns: %TRUE if the packet was valid
 */
gboolean
socket_io_namespace_emit (SocketIONamespace  *self,
                          const char         *name,
                          JsonArray          *args,
                          GPtrArray          *attachments,
                          GError            **error)
{
  g_autoptr(SocketIOBroadcastOperator) op = socket_io_namespace_broadcast (self);

  return socket_io_broadcast_operator_emit (op, name, args, attachments, NULL, error);
}

/**
 * socket_io_socket_broadcast:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer full): a broadcast operator addressing every socket
 *   of the namespace but @self
 */
SocketIOBroadcastOperator *
socket_io_socket_broadcast (SocketIOSocket *self)
{
  SocketIOBroadcastOperator *op;

  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  op = socket_io_namespace_broadcast (self->nsp);
  return socket_io_broadcast_operator_except (op, self->id);
}

/**
 * socket_io_socket_to:
 * @self: a socket
 * @room: a room
 *
 * Any thread.
 *
 * Returns: (transfer full): a broadcast operator addressing the sockets in
 *   @room but @self
 */
SocketIOBroadcastOperator *
socket_io_socket_to (SocketIOSocket *self,
                     const char     *room)
{
  return socket_io_broadcast_operator_to (socket_io_socket_broadcast (self), room);
}

/* ------------------------------------------------------------------ */
/* SocketIOBroadcastOperator                                            */
/* ------------------------------------------------------------------ */

static void
socket_io_broadcast_operator_finalize (GObject *object)
{
  SocketIOBroadcastOperator *self = SOCKET_IO_BROADCAST_OPERATOR (object);

  g_ptr_array_unref (self->rooms);
  g_ptr_array_unref (self->except);
  g_clear_object (&self->nsp);
  G_OBJECT_CLASS (socket_io_broadcast_operator_parent_class)->finalize (object);
}

static void
socket_io_broadcast_operator_class_init (SocketIOBroadcastOperatorClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_broadcast_operator_finalize;
}

static void
socket_io_broadcast_operator_init (SocketIOBroadcastOperator *self)
{
  self->rooms = g_ptr_array_new_null_terminated (2, g_free, TRUE);
  self->except = g_ptr_array_new_null_terminated (2, g_free, TRUE);
}

/**
 * socket_io_broadcast_operator_to:
 * @self: an operator
 * @room: a room
 *
 * Adds @room to the rooms addressed (a socket in any of them receives).
 * An operator is used from one thread at a time.
 *
 * Returns: (transfer none): @self, for chaining
 */
SocketIOBroadcastOperator *
socket_io_broadcast_operator_to (SocketIOBroadcastOperator *self,
                                 const char                *room)
{
  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), NULL);
  g_return_val_if_fail (room != NULL, self);
  g_ptr_array_add (self->rooms, g_strdup (room));
  return self;
}

/**
 * socket_io_broadcast_operator_except:
 * @self: an operator
 * @room: a room (or a socket id)
 *
 * Excludes the sockets in @room. An operator is used from one thread at
 * a time.
 *
 * Returns: (transfer none): @self, for chaining
 */
SocketIOBroadcastOperator *
socket_io_broadcast_operator_except (SocketIOBroadcastOperator *self,
                                     const char                *room)
{
  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), NULL);
  g_return_val_if_fail (room != NULL, self);
  g_ptr_array_add (self->except, g_strdup (room));
  return self;
}

/**
 * socket_io_broadcast_operator_volatile:
 * @self: an operator
 *
 * Sets %SOCKET_IO_BROADCAST_VOLATILE: recipients that have not taken what
 * was sent to them before are skipped.
 *
 * Returns: (transfer none): @self, for chaining
 */
SocketIOBroadcastOperator *
socket_io_broadcast_operator_volatile (SocketIOBroadcastOperator *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), NULL);
  self->flags |= SOCKET_IO_BROADCAST_VOLATILE;
  return self;
}

/**
 * socket_io_broadcast_operator_local:
 * @self: an operator
 *
 * Sets %SOCKET_IO_BROADCAST_LOCAL: this server's sockets only.
 *
 * Returns: (transfer none): @self, for chaining
 */
SocketIOBroadcastOperator *
socket_io_broadcast_operator_local (SocketIOBroadcastOperator *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), NULL);
  self->flags |= SOCKET_IO_BROADCAST_LOCAL;
  return self;
}

/**
 * socket_io_broadcast_operator_compress:
 * @self: an operator
 * @compress: whether compression is asked for
 *
 * Sets or clears %SOCKET_IO_BROADCAST_COMPRESS (no effect today: the
 * engine does not compress messages).
 *
 * Returns: (transfer none): @self, for chaining
 */
SocketIOBroadcastOperator *
socket_io_broadcast_operator_compress (SocketIOBroadcastOperator *self,
                                       gboolean                   compress)
{
  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), NULL);
  if (compress)
    self->flags |= SOCKET_IO_BROADCAST_COMPRESS;
  else
    self->flags &= ~SOCKET_IO_BROADCAST_COMPRESS;
  return self;
}

/**
 * socket_io_broadcast_operator_emit:
 * @self: an operator
 * @name: the event name
 * @args: (nullable): the arguments (sealed by this call)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders refer to
 * @recipients: (out) (optional): how many sockets it was queued for
 * @error: return location for a %SOCKET_IO_ERROR_INVALID error
 *
 * Encodes the event once and queues the same bytes for every addressed
 * socket. Concurrent broadcasts in a namespace reach every recipient in
 * one order. Any thread (one at a time per operator).
 *
 * Returns: %TRUE if the event was valid
 */
gboolean
socket_io_broadcast_operator_emit (SocketIOBroadcastOperator  *self,
                                   const char                 *name,
                                   JsonArray                  *args,
                                   GPtrArray                  *attachments,
                                   guint                      *recipients,
                                   GError                    **error)
{
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GPtrArray) encoded_attachments = NULL;
  g_autoptr(GBytes) text = NULL;
  gboolean recovery;
  guint n;

  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  data = socket_io_event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, data,
                                 SOCKET_IO_NO_ACK_ID, attachments, error);
  if (packet == NULL)
    return FALSE;
  text = socket_io_packet_encode (packet, &encoded_attachments);
  recovery = socket_io_server_recovery_on (self->nsp->server);
  if (recovery)
    g_rw_lock_reader_lock (&self->nsp->recovery_lock);
  n = socket_io_adapter_broadcast (socket_io_namespace_get_adapter (self->nsp), text,
                                   encoded_attachments,
                                   (const char * const *) self->rooms->pdata,
                                   (const char * const *) self->except->pdata,
                                   self->flags);
  if (recovery)
    g_rw_lock_reader_unlock (&self->nsp->recovery_lock);
  if (recipients != NULL)
    *recipients = n;
  return TRUE;
}

/* What a broadcast's emit_with_ack() task returns. */
typedef struct
{
  GPtrArray *responses;   /* JsonArray: each ack's arguments, with placeholders */
  GPtrArray *attachments; /* GPtrArray of GBytes: attachments[i] belongs to responses[i] */
  guint      missing;
} SioBroadcastAckResult;

static void
broadcast_ack_result_free (gpointer data)
{
  SioBroadcastAckResult *result = data;

  g_ptr_array_unref (result->responses);
  g_ptr_array_unref (result->attachments);
  g_free (result);
}

typedef struct
{
  GMutex     lock;        /* guards responses, attachments, missing, waiting */
  GPtrArray *responses;   /* JsonArray */
  GPtrArray *attachments; /* GPtrArray of GBytes, one per response */
  guint      missing;
  guint      waiting;
  GTask     *task;
} SioBroadcastAcks;

static void
broadcast_acks_free (SioBroadcastAcks *acks)
{
  g_clear_pointer (&acks->responses, g_ptr_array_unref);
  g_clear_pointer (&acks->attachments, g_ptr_array_unref);
  g_mutex_clear (&acks->lock);
  g_free (acks);
}

static void
broadcast_acks_return (SioBroadcastAcks *acks)
{
  GTask *task = acks->task;
  SioBroadcastAckResult *result = g_new0 (SioBroadcastAckResult, 1);

  /* Every emit answered: nobody else touches @acks now. */
  result->responses = g_steal_pointer (&acks->responses);
  result->attachments = g_steal_pointer (&acks->attachments);
  result->missing = acks->missing;
  g_task_return_pointer (task, result, broadcast_ack_result_free);
  broadcast_acks_free (acks);
  g_object_unref (task);
}

static void
on_broadcast_ack (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  SioBroadcastAcks *acks = user_data;
  g_autoptr(GPtrArray) attachments = NULL;
  g_autoptr(JsonArray) args = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source), result,
                                                                     &attachments, NULL);
  gboolean last;

  g_mutex_lock (&acks->lock);
  if (args != NULL)
    {
      g_ptr_array_add (acks->responses, json_array_ref (args));
      g_ptr_array_add (acks->attachments, g_ptr_array_ref (attachments));
    }
  else
    acks->missing++;
  last = --acks->waiting == 0;
  g_mutex_unlock (&acks->lock);
  if (last)
    broadcast_acks_return (acks);
}

/**
 * socket_io_broadcast_operator_emit_with_ack:
 * @self: an operator
 * @name: the event name
 * @args: (nullable): the arguments (sealed by this call)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders refer to
 * @timeout_ms: how long each client has to answer; 0 for no limit
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called once every
 *   addressed socket answered, timed out or disconnected
 * @user_data: data for @callback
 *
 * Emits to every addressed socket with an ack id and collects the acks
 * (the reference's `io.timeout(ms).emit(..., callback)`), binary ones
 * with their attachments (see
 * socket_io_broadcast_operator_emit_with_ack_finish_full()). An answered
 * ack is kept until every addressed socket answered or timed out. Unlike
 * socket_io_broadcast_operator_emit(), the event is encoded once per
 * socket (each has its own ack ids). Any thread; @callback runs in the
 * thread-default main context of the caller, which must keep running
 * until then (a session's context stops with its session).
 */
void
socket_io_broadcast_operator_emit_with_ack (SocketIOBroadcastOperator *self,
                                            const char                *name,
                                            JsonArray                 *args,
                                            GPtrArray                 *attachments,
                                            guint                      timeout_ms,
                                            GCancellable              *cancellable,
                                            GAsyncReadyCallback        callback,
                                            gpointer                   user_data)
{
  g_autoptr(GPtrArray) sockets = NULL;
  g_autoptr(JsonNode) check = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  SioBroadcastAcks *acks;
  GTask *task;

  g_return_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self));
  g_return_if_fail (name != NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, socket_io_broadcast_operator_emit_with_ack);
  /* Cancelled, it still returns what came (and counts the rest missing). */
  g_task_set_check_cancellable (task, FALSE);

  /* Refuse an invalid event before sending anything. */
  check = socket_io_event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, check, 0,
                                 attachments, &error);
  if (packet == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      g_object_unref (task);
      return;
    }

  sockets = socket_io_broadcast_operator_fetch_sockets (self);
  acks = g_new0 (SioBroadcastAcks, 1);
  g_mutex_init (&acks->lock);
  acks->responses = g_ptr_array_new_with_free_func ((GDestroyNotify) json_array_unref);
  acks->attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  acks->task = task;
  acks->waiting = sockets->len + 1;   /* + 1 until every emit is made */
  for (guint i = 0; i < sockets->len; i++)
    socket_io_socket_emit_with_ack (g_ptr_array_index (sockets, i), name, args, attachments,
                                    timeout_ms, cancellable, on_broadcast_ack, acks);
  g_mutex_lock (&acks->lock);
  if (--acks->waiting == 0)
    {
      g_mutex_unlock (&acks->lock);
      broadcast_acks_return (acks);
      return;
    }
  g_mutex_unlock (&acks->lock);
}

/**
 * socket_io_broadcast_operator_emit_with_ack_finish:
 * @self: an operator
 * @result: the result given to the callback
 * @missing: (out) (optional): how many addressed sockets did not answer
 *   (timed out, disconnected, cancelled)
 * @error: return location for an error (an invalid event)
 *
 * Finishes socket_io_broadcast_operator_emit_with_ack() without the
 * acks' binary attachments: a binary in a response stays a
 * `{"_placeholder":true,"num":N}` object. Use
 * socket_io_broadcast_operator_emit_with_ack_finish_full() to get them.
 * Call one of the two finish functions, once. Any thread.
 *
 * Returns: (transfer container) (element-type JsonArray) (nullable): the
 *   arguments of every ack received, in arrival order
 */
GPtrArray *
socket_io_broadcast_operator_emit_with_ack_finish (SocketIOBroadcastOperator  *self,
                                                   GAsyncResult               *result,
                                                   guint                      *missing,
                                                   GError                    **error)
{
  return socket_io_broadcast_operator_emit_with_ack_finish_full (self, result, NULL, missing, error);
}

/**
 * socket_io_broadcast_operator_emit_with_ack_finish_full:
 * @self: an operator
 * @result: the result given to the callback
 * @attachments: (out) (optional) (transfer container)
 *   (element-type GPtrArray<GBytes>): one array per response: the
 *   binaries of the ack at the same index of the returned array (an empty
 *   array for an ack without binaries)
 * @missing: (out) (optional): how many addressed sockets did not answer
 *   (timed out, disconnected, cancelled)
 * @error: return location for an error (an invalid event)
 *
 * Finishes socket_io_broadcast_operator_emit_with_ack() with the acks'
 * binary attachments. Each response is represented as
 * socket_io_socket_emit_with_ack_finish() represents one ack: the
 * returned array's element `i` holds the ack's arguments, every binary
 * in them (at any position and depth) replaced by a
 * `{"_placeholder":true,"num":N}` object, and `N` indexes the `GBytes`
 * of @attachments' element `i` (the BINARY_ACK's attachments, in the
 * order the client sent them). Responses and their attachments are in
 * arrival order; both arrays have the same length. Any thread.
 *
 * Returns: (transfer container) (element-type JsonArray) (nullable): the
 *   arguments of every ack received, in arrival order, or %NULL with
 *   @error set (and @attachments set to %NULL, @missing to 0)
 */
GPtrArray *
socket_io_broadcast_operator_emit_with_ack_finish_full (SocketIOBroadcastOperator  *self,
                                                        GAsyncResult               *result,
                                                        GPtrArray                 **attachments,
                                                        guint                      *missing,
                                                        GError                    **error)
{
  SioBroadcastAckResult *acks;
  GPtrArray *responses;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  if (attachments != NULL)
    *attachments = NULL;
  if (missing != NULL)
    *missing = 0;
  acks = g_task_propagate_pointer (G_TASK (result), error);
  if (acks == NULL)
    return NULL;
  responses = g_ptr_array_ref (acks->responses);
  if (attachments != NULL)
    *attachments = g_ptr_array_ref (acks->attachments);
  if (missing != NULL)
    *missing = acks->missing;
  broadcast_ack_result_free (acks);
  return responses;
}

/**
 * socket_io_broadcast_operator_fetch_sockets:
 * @self: an operator
 *
 * The sockets the operator addresses (this server's: the in-memory
 * adapter has no others). Any thread.
 *
 * Returns: (transfer container) (element-type SocketIOSocket): the
 *   sockets
 */
GPtrArray *
socket_io_broadcast_operator_fetch_sockets (SocketIOBroadcastOperator *self)
{
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  g_auto(GStrv) ids = NULL;

  g_return_val_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self), sockets);
  ids = socket_io_adapter_sockets (socket_io_namespace_get_adapter (self->nsp),
                                   (const char * const *) self->rooms->pdata,
                                   (const char * const *) self->except->pdata);
  for (guint i = 0; ids[i] != NULL; i++)
    {
      SocketIOSocket *socket = socket_io_namespace_lookup_socket (self->nsp, ids[i]);

      if (socket != NULL)
        g_ptr_array_add (sockets, socket);
    }
  return sockets;
}

/**
 * socket_io_broadcast_operator_sockets_join:
 * @self: an operator
 * @room: a room
 *
 * Makes every socket the operator addresses join @room (through the
 * namespace's adapter: on every node of a cluster unless the operator is
 * local). Any thread.
 */
void
socket_io_broadcast_operator_sockets_join (SocketIOBroadcastOperator *self,
                                           const char                *room)
{
  const char *join[] = { room, NULL };

  g_return_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self));
  g_return_if_fail (room != NULL);
  socket_io_adapter_add_sockets (socket_io_namespace_get_adapter (self->nsp),
                                 (const char * const *) self->rooms->pdata,
                                 (const char * const *) self->except->pdata,
                                 self->flags, join);
}

/**
 * socket_io_broadcast_operator_sockets_leave:
 * @self: an operator
 * @room: a room
 *
 * Makes every socket the operator addresses leave @room (through the
 * namespace's adapter: on every node of a cluster unless the operator is
 * local). Any thread.
 */
void
socket_io_broadcast_operator_sockets_leave (SocketIOBroadcastOperator *self,
                                            const char                *room)
{
  const char *leave[] = { room, NULL };

  g_return_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self));
  g_return_if_fail (room != NULL);
  socket_io_adapter_del_sockets (socket_io_namespace_get_adapter (self->nsp),
                                 (const char * const *) self->rooms->pdata,
                                 (const char * const *) self->except->pdata,
                                 self->flags, leave);
}
/**
 * socket_io_broadcast_operator_disconnect_sockets:
 * @self: an operator
 * @close_transport: as for socket_io_socket_disconnect()
 *
 * Disconnects every socket the operator addresses (through the
 * namespace's adapter: on every node of a cluster unless the operator is
 * local), each in its own context (at once for the sockets of the
 * calling context, later for the others). Any thread.
 */
void
socket_io_broadcast_operator_disconnect_sockets (SocketIOBroadcastOperator *self,
                                                 gboolean                   close_transport)
{
  g_return_if_fail (SOCKET_IO_IS_BROADCAST_OPERATOR (self));
  socket_io_adapter_disconnect_sockets (socket_io_namespace_get_adapter (self->nsp),
                                        (const char * const *) self->rooms->pdata,
                                        (const char * const *) self->except->pdata,
                                        self->flags, close_transport);
}
