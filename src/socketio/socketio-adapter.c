/* socketio-adapter.c: SocketIOAdapter (the in-memory adapter) and a
 * socket's rooms
 *
 * The adapter's virtual functions and their base implementation (rooms,
 * broadcasts, the remote operations on sockets), with what a socket does
 * through it: join, leave, disconnect and close (leaving every room,
 * persisting its session). These call each other both ways (the adapter's
 * add_sockets, del_sockets and disconnect_sockets call a socket's join,
 * leave and disconnect, which call the adapter), so they share one file;
 * the kept packets and persisted sessions of connection state recovery
 * are in socketio-recovery.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/**
 * SocketIOAdapter:
 *
 * The rooms of a namespace and the delivery of its broadcasts. The base
 * class keeps them in memory; subclasses (a Redis adapter) override
 * #SocketIOAdapterClass's virtual functions.
 */

G_DEFINE_TYPE_WITH_PRIVATE (SocketIOAdapter, socket_io_adapter, G_TYPE_OBJECT)

/**
 * socket_io_namespace_set_adapter:
 * @self: a namespace
 * @adapter: the adapter (a #SocketIOAdapter subclass made with
 *   socket_io_adapter_new()'s namespace)
 *
 * Replaces the in-memory adapter. Only before any client joined @self
 * (before engine_io_server_listen()); any thread.
 */
void
socket_io_namespace_set_adapter (SocketIONamespace *self,
                                 SocketIOAdapter   *adapter)
{
  SocketIOAdapter *old;

  g_return_if_fail (SOCKET_IO_IS_NAMESPACE (self));
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (adapter));
  g_mutex_lock (&self->lock);
  old = self->adapter;
  self->adapter = g_object_ref (adapter);
  g_mutex_unlock (&self->lock);
  g_clear_object (&old);
}

/* The reasons after which the reference persists a session. */
static gboolean
reason_is_recoverable (const char *reason)
{
  static const char * const reasons[] = {
    "transport error", "transport close", "forced close", "ping timeout",
    "server shutting down", "forced server close", NULL
  };

  return g_strv_contains (reasons, reason);
}

/* Session context. */
void
socket_io_socket_close (SocketIOSocket *self,
                        const char     *reason)
{
  g_autoptr(SocketIOSocket) hold = NULL;
  g_autoptr(GPtrArray) pendings = NULL;
  SioClient *c = self->client;
  GHashTableIter iter;
  gpointer value;

  if (self->closing || !g_atomic_int_get (&self->connected))
    return;
  hold = g_object_ref (self);
  /* Not announced yet (its `connection` waits for the next iteration):
   * announced now, so that no `disconnect` comes without `connection`
   * (a middleware may have connected it); what the client pipelined is
   * dropped with the connection. A handler may disconnect it. */
  if (!self->announced)
    {
      self->announced = TRUE;
      g_queue_clear_full (&self->early_packets, (GDestroyNotify) socket_io_packet_unref);
      g_signal_emit (self->nsp, socket_io_namespace_signals[NSP_SIGNAL_CONNECTION], 0, self);
      if (self->closing || !g_atomic_int_get (&self->connected))
        return;
    }
  self->closing = TRUE;

  g_signal_emit (self, socket_io_socket_signals[SOCKET_SIGNAL_DISCONNECTING], 0, reason);

  /* Persisted while the socket is still in its rooms: a broadcast from
   * now on is kept for it (its client tells by the offset what it got). */
  if (self->pid != NULL && socket_io_server_recovery_on (c->server) && reason_is_recoverable (reason))
    {
      g_auto(GStrv) rooms = socket_io_socket_get_rooms (self);
      g_autoptr(JsonNode) data = socket_io_socket_dup_data (self);
      g_autoptr(SocketIOSession) session = socket_io_session_new (self->id, self->pid,
                                                                  (const char * const *) rooms, data);

      socket_io_adapter_persist_session (socket_io_namespace_get_adapter (self->nsp), session);
    }

  g_atomic_int_set (&self->leaving, 1);
  socket_io_adapter_del_all (socket_io_namespace_get_adapter (self->nsp), self->id);
  g_mutex_lock (&self->nsp->lock);
  g_hash_table_remove (self->nsp->sockets, self->id);
  g_mutex_unlock (&self->nsp->lock);
  g_hash_table_remove (c->sockets, self->nsp->name);

  pendings = g_ptr_array_new ();
  g_mutex_lock (&self->ack_lock);
  self->acks_closed = TRUE;
  g_atomic_int_set (&self->connected, 0);
  g_hash_table_iter_init (&iter, self->acks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (pendings, value);
  g_hash_table_steal_all (self->acks);
  g_mutex_unlock (&self->ack_lock);
  for (guint i = 0; i < pendings->len; i++)
    socket_io_pending_ack_fail (g_ptr_array_index (pendings, i), G_IO_ERROR_CLOSED, "Socket disconnected");

  g_signal_emit (self, socket_io_socket_signals[SOCKET_SIGNAL_DISCONNECT], 0, reason);
}

/**
 * socket_io_socket_join:
 * @self: a socket
 * @room: a room
 *
 * Adds the socket to @room (through the namespace's adapter). Any thread;
 * does nothing on a disconnected socket. Called from a middleware (before
 * the socket is connected), the room is joined when the socket connects,
 * before #SocketIONamespace::connection, and not at all if a middleware
 * refuses it.
 */
void
socket_io_socket_join (SocketIOSocket *self,
                       const char     *room)
{
  const char *rooms[2] = { room, NULL };

  g_return_if_fail (SOCKET_IO_IS_SOCKET (self));
  g_return_if_fail (room != NULL);
  if (!socket_io_socket_is_connected (self))
    {
      gboolean early;

      /* A middleware's join: the rooms are joined with the connection. */
      g_mutex_lock (&self->ack_lock);
      early = self->early_rooms != NULL;
      if (early && !g_ptr_array_find_with_equal_func (self->early_rooms, room, g_str_equal, NULL))
        g_ptr_array_add (self->early_rooms, g_strdup (room));
      g_mutex_unlock (&self->ack_lock);
      /* No list any more: socket_io_connect_finish() took it (on its thread) after
       * the socket became connected, so this join is a connected one;
       * unless the socket has disconnected since. */
      if (early || !socket_io_socket_is_connected (self))
        return;
    }
  if (g_atomic_int_get (&self->leaving))
    return;
  socket_io_adapter_add_all (socket_io_namespace_get_adapter (self->nsp), self->id, rooms);
  /* Raced with the socket leaving its rooms (another thread): undo, the
   * socket's entry included (`leaving` is set after `disconnecting`, so no
   * handler needs its rooms any more). del() would leave an empty entry. */
  if (g_atomic_int_get (&self->leaving))
    socket_io_adapter_del_all (socket_io_namespace_get_adapter (self->nsp), self->id);
}

/**
 * socket_io_socket_leave:
 * @self: a socket
 * @room: a room
 *
 * Removes the socket from @room. Any thread. From a middleware, undoes a
 * join made there.
 */
void
socket_io_socket_leave (SocketIOSocket *self,
                        const char     *room)
{
  g_return_if_fail (SOCKET_IO_IS_SOCKET (self));
  g_return_if_fail (room != NULL);
  g_mutex_lock (&self->ack_lock);
  if (self->early_rooms != NULL)
    {
      guint index;

      if (g_ptr_array_find_with_equal_func (self->early_rooms, room, g_str_equal, &index))
        g_ptr_array_remove_index (self->early_rooms, index);
      g_mutex_unlock (&self->ack_lock);
      return;
    }
  g_mutex_unlock (&self->ack_lock);
  socket_io_adapter_del (socket_io_namespace_get_adapter (self->nsp), self->id, room);
}

/**
 * socket_io_socket_get_rooms:
 * @self: a socket
 *
 * Any thread.
 *
 * Returns: (transfer full) (array zero-terminated=1): the rooms the socket
 *   is in (its own id included while connected), sorted
 */
char **
socket_io_socket_get_rooms (SocketIOSocket *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SOCKET (self), NULL);
  return socket_io_adapter_socket_rooms (socket_io_namespace_get_adapter (self->nsp), self->id);
}

/**
 * socket_io_socket_disconnect:
 * @self: a socket
 * @close_transport: whether to also close the Engine.IO session (and so
 *   every other namespace of the same client)
 *
 * Sends the client a DISCONNECT and makes the socket leave its namespace
 * with reason `server namespace disconnect`; with @close_transport, every
 * socket of the client does so and the Engine.IO session is closed.
 *
 * Any thread. In the socket's context (socket_io_socket_get_context(),
 * e.g. from its signal handlers) this happens at once, `disconnecting`
 * and `disconnect` being emitted before it returns; from any other thread
 * it is queued to that context and happens there (a socket that is gone
 * by then is left alone).
 */
static void disconnect_later (SocketIOSocket *self, gboolean close_transport);

void
socket_io_socket_disconnect (SocketIOSocket *self,
                             gboolean        close_transport)
{
  SioClient *c;
  g_autoptr(GPtrArray) sockets = NULL;

  g_return_if_fail (SOCKET_IO_IS_SOCKET (self));
  c = self->client;
  if (!g_main_context_is_owner (c->context))
    {
      /* Signals, `closing` and the client's state belong to its context. */
      disconnect_later (self, close_transport);
      return;
    }
  if (close_transport)
    sockets = socket_io_client_dup_sockets (c);
  else
    {
      sockets = g_ptr_array_new_with_free_func (g_object_unref);
      g_ptr_array_add (sockets, g_object_ref (self));
    }
  for (guint i = 0; i < sockets->len; i++)
    {
      SocketIOSocket *socket = g_ptr_array_index (sockets, i);

      if (socket->closing || !socket_io_socket_is_connected (socket))
        continue;
      socket_io_client_send_simple (c, SOCKET_IO_PACKET_DISCONNECT, socket->nsp->name, NULL);
      socket_io_socket_close (socket, "server namespace disconnect");
    }
  if (close_transport)
    socket_io_client_fail (c, "server namespace disconnect");
}

/* A weak ref: a call still queued in the context of a session that has
 * ended must not keep that context alive (the socket holds it). */
typedef struct
{
  GWeakRef  socket;
  gboolean  close_transport;
} SioDisconnectCall;

static gboolean
invoke_disconnect (gpointer data)
{
  SioDisconnectCall *call = data;
  g_autoptr(SocketIOSocket) socket = g_weak_ref_get (&call->socket);

  if (socket != NULL)
    socket_io_socket_disconnect (socket, call->close_transport);
  return G_SOURCE_REMOVE;
}

static void
disconnect_call_free (gpointer data)
{
  SioDisconnectCall *call = data;

  g_weak_ref_clear (&call->socket);
  g_free (call);
}

/* Queues socket_io_socket_disconnect() to the socket's context. */
static void
disconnect_later (SocketIOSocket *self,
                  gboolean        close_transport)
{
  SioDisconnectCall *call = g_new0 (SioDisconnectCall, 1);

  g_weak_ref_init (&call->socket, self);
  call->close_transport = close_transport;
  g_main_context_invoke_full (self->client->context, G_PRIORITY_DEFAULT,
                              invoke_disconnect, call, disconnect_call_free);
}

/* ------------------------------------------------------------------ */
/* SocketIOAdapter: the in-memory adapter                               */
/* ------------------------------------------------------------------ */

static void
adapter_real_persist_session (SocketIOAdapter *self,
                              SocketIOSession *session)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  SioStoredSession *stored;
  guint max;

  if (priv->nsp == NULL)
    return;
  max = g_atomic_int_get (&priv->nsp->server->max_rec_sessions);
  g_mutex_lock (&priv->lock);
  socket_io_adapter_purge (priv);
  stored = g_hash_table_lookup (priv->sessions, session->pid);
  if (stored != NULL)
    socket_io_adapter_drop_session (priv, stored);
  while (priv->session_queue.length > 0 && priv->session_queue.length >= max)
    socket_io_adapter_drop_session (priv, g_queue_peek_head (&priv->session_queue));
  if (max > 0)
    {
      stored = g_new0 (SioStoredSession, 1);
      stored->session = socket_io_session_ref (session);
      stored->at = g_get_monotonic_time ();
      g_queue_push_tail (&priv->session_queue, stored);
      stored->link = priv->session_queue.tail;
      g_hash_table_insert (priv->sessions, stored->session->pid, stored);
    }
  g_mutex_unlock (&priv->lock);
}

static SocketIOSession *
adapter_real_restore_session (SocketIOAdapter *self,
                              const char      *pid,
                              const char      *offset)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  SioStoredSession *stored;
  SioStoredPacket *first;
  SocketIOSession *out = NULL;
  guint64 value;
  GList *link;

  g_mutex_lock (&priv->lock);
  socket_io_adapter_purge (priv);
  stored = g_hash_table_lookup (priv->sessions, pid);
  first = g_queue_peek_head (&priv->packets);
  /* The packet of @offset must still be kept, so that every later one is. */
  if (stored == NULL || first == NULL ||
      !g_ascii_string_to_unsigned (offset, 10, 0, G_MAXUINT64, &value, NULL) ||
      value < first->offset || value - first->offset >= priv->packets.length)
    {
      g_mutex_unlock (&priv->lock);
      return NULL;
    }
  /* Taken: a pid recovers one socket once. */
  out = socket_io_session_new (stored->session->sid, stored->session->pid,
                               (const char * const *) stored->session->rooms, stored->session->data);
  if (value - first->offset < priv->packets.length / 2)
    link = g_queue_peek_nth_link (&priv->packets, (guint) (value - first->offset));
  else
    for (link = priv->packets.tail; ((SioStoredPacket *) link->data)->offset != value; link = link->prev)
      ;
  for (link = link->next; link != NULL; link = link->next)
    {
      SioStoredPacket *packet = link->data;
      gboolean included = packet->rooms == NULL || packet->rooms[0] == NULL ||
        socket_io_strv_intersects (out->rooms, (const char * const *) packet->rooms);

      if (included && !socket_io_strv_intersects (out->rooms, (const char * const *) packet->except))
        socket_io_session_add_missed_packet (out, packet->text, packet->attachments);
    }
  socket_io_adapter_drop_session (priv, stored);
  g_mutex_unlock (&priv->lock);
  return out;
}

static GHashTable *
string_set_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
adapter_real_add_all (SocketIOAdapter    *self,
                      const char         *sid,
                      const char * const *rooms)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  GHashTable *mine;

  g_mutex_lock (&priv->lock);
  mine = g_hash_table_lookup (priv->sids, sid);
  if (mine == NULL)
    {
      mine = string_set_new ();
      g_hash_table_insert (priv->sids, g_strdup (sid), mine);
    }
  for (guint i = 0; rooms[i] != NULL; i++)
    {
      GHashTable *members = g_hash_table_lookup (priv->rooms, rooms[i]);

      if (members == NULL)
        {
          members = string_set_new ();
          g_hash_table_insert (priv->rooms, g_strdup (rooms[i]), members);
        }
      g_hash_table_add (members, g_strdup (sid));
      g_hash_table_add (mine, g_strdup (rooms[i]));
    }
  g_mutex_unlock (&priv->lock);
}

/* Called with the lock held. */
static void
adapter_remove_member (SocketIOAdapterPrivate *priv,
                       const char             *sid,
                       const char             *room)
{
  GHashTable *members = g_hash_table_lookup (priv->rooms, room);

  if (members != NULL)
    {
      g_hash_table_remove (members, sid);
      if (g_hash_table_size (members) == 0)
        g_hash_table_remove (priv->rooms, room);
    }
}

static void
adapter_real_del (SocketIOAdapter *self,
                  const char      *sid,
                  const char      *room)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  GHashTable *mine;

  g_mutex_lock (&priv->lock);
  adapter_remove_member (priv, sid, room);
  mine = g_hash_table_lookup (priv->sids, sid);
  if (mine != NULL)
    g_hash_table_remove (mine, room);
  g_mutex_unlock (&priv->lock);
}

static void
adapter_real_del_all (SocketIOAdapter *self,
                      const char      *sid)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  GHashTable *mine;

  g_mutex_lock (&priv->lock);
  mine = g_hash_table_lookup (priv->sids, sid);
  if (mine != NULL)
    {
      GHashTableIter iter;
      gpointer room;

      g_hash_table_iter_init (&iter, mine);
      while (g_hash_table_iter_next (&iter, &room, NULL))
        adapter_remove_member (priv, sid, room);
      g_hash_table_remove (priv->sids, sid);
    }
  g_mutex_unlock (&priv->lock);
}

static int
compare_str_ptr (const void *a,
                 const void *b)
{
  return strcmp (*(char * const *) a, *(char * const *) b);
}

static char **
adapter_real_socket_rooms (SocketIOAdapter *self,
                           const char      *sid)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  GHashTable *mine;
  char **rooms;

  g_mutex_lock (&priv->lock);
  mine = g_hash_table_lookup (priv->sids, sid);
  if (mine != NULL)
    {
      guint n;
      gpointer *keys = g_hash_table_get_keys_as_array (mine, &n);

      rooms = g_new0 (char *, n + 1);
      for (guint i = 0; i < n; i++)
        rooms[i] = g_strdup (keys[i]);
      g_free (keys);
    }
  else
    rooms = g_new0 (char *, 1);
  g_mutex_unlock (&priv->lock);
  qsort (rooms, g_strv_length (rooms), sizeof (char *), compare_str_ptr);
  return rooms;
}

static void adapter_targets (SocketIOAdapterPrivate *priv,
                             const char * const     *rooms,
                             const char * const     *except,
                             GHashTable             *excluded,
                             GHashTable             *targets);

static guint
adapter_real_broadcast (SocketIOAdapter    *self,
                        GBytes             *text,
                        GPtrArray          *attachments,
                        const char * const *rooms,
                        const char * const *except,
                        SocketIOBroadcastFlags flags)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  g_autoptr(GHashTable) excluded = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GHashTable) targets = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter iter;
  gpointer key;
  guint sent = 0;

  g_autoptr(GBytes) kept = NULL;

  /* Held while sending: one order for concurrent broadcasts (and offsets
   * in that order). */
  g_mutex_lock (&priv->lock);
  if (priv->nsp != NULL && socket_io_server_recovery_on (priv->nsp->server) &&
      !(flags & SOCKET_IO_BROADCAST_VOLATILE))
    {
      socket_io_adapter_purge (priv);
      kept = socket_io_adapter_keep_packet (priv, text, attachments, rooms, except);
      if (kept != NULL)
        text = kept;
    }
  adapter_targets (priv, rooms, except, excluded, targets);
  g_hash_table_iter_init (&iter, targets);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (priv->nsp != NULL && socket_io_namespace_send_encoded (priv->nsp, key, text, attachments, flags))
      sent++;
  g_mutex_unlock (&priv->lock);
  return sent;
}

static char **
adapter_real_sockets (SocketIOAdapter    *self,
                      const char * const *rooms,
                      const char * const *except)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);
  g_autoptr(GHashTable) excluded = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GHashTable) targets = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter iter;
  gpointer key;
  GStrvBuilder *builder = g_strv_builder_new ();
  char **out;

  g_mutex_lock (&priv->lock);
  adapter_targets (priv, rooms, except, excluded, targets);
  g_hash_table_iter_init (&iter, targets);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_strv_builder_add (builder, key);
  g_mutex_unlock (&priv->lock);
  out = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return out;
}

/* With the lock held: the sids in any of @rooms (all when none) and in
 * none of @except, into @targets (keys owned by the adapter's tables). */
static void
adapter_targets (SocketIOAdapterPrivate *priv,
                 const char * const     *rooms,
                 const char * const     *except,
                 GHashTable             *excluded,
                 GHashTable             *targets)
{
  GHashTableIter iter;
  gpointer key;

  for (guint i = 0; except != NULL && except[i] != NULL; i++)
    {
      GHashTable *members = g_hash_table_lookup (priv->rooms, except[i]);

      if (members == NULL)
        continue;
      g_hash_table_iter_init (&iter, members);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        g_hash_table_add (excluded, key);
    }
  if (rooms == NULL || rooms[0] == NULL)
    {
      g_hash_table_iter_init (&iter, priv->sids);
      while (g_hash_table_iter_next (&iter, &key, NULL))
        if (!g_hash_table_contains (excluded, key))
          g_hash_table_add (targets, key);
    }
  else
    for (guint i = 0; rooms[i] != NULL; i++)
      {
        GHashTable *members = g_hash_table_lookup (priv->rooms, rooms[i]);

        if (members == NULL)
          continue;
        g_hash_table_iter_init (&iter, members);
        while (g_hash_table_iter_next (&iter, &key, NULL))
          if (!g_hash_table_contains (excluded, key))
            g_hash_table_add (targets, key);
      }
}

static void
socket_io_adapter_finalize (GObject *object)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (SOCKET_IO_ADAPTER (object));

  g_hash_table_unref (priv->rooms);
  g_hash_table_unref (priv->sids);
  g_hash_table_unref (priv->sessions);
  g_queue_clear_full (&priv->session_queue, (GDestroyNotify) socket_io_stored_session_free);
  g_queue_clear_full (&priv->packets, (GDestroyNotify) socket_io_stored_packet_free);
  g_mutex_clear (&priv->lock);
  G_OBJECT_CLASS (socket_io_adapter_parent_class)->finalize (object);
}

/* The local sockets an adapter addresses (looked up in its namespace). */
static GPtrArray *
adapter_local_sockets (SocketIOAdapter    *self,
                       const char * const *rooms,
                       const char * const *except)
{
  SocketIONamespace *nsp = socket_io_adapter_get_namespace (self);
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  g_auto(GStrv) ids = socket_io_adapter_sockets (self, rooms, except);

  for (guint i = 0; ids[i] != NULL; i++)
    {
      SocketIOSocket *socket = socket_io_namespace_lookup_socket (nsp, ids[i]);

      if (socket != NULL)
        g_ptr_array_add (sockets, socket);
    }
  return sockets;
}

static void
adapter_real_add_sockets (SocketIOAdapter        *self,
                          const char * const     *rooms,
                          const char * const     *except,
                          SocketIOBroadcastFlags  flags,
                          const char * const     *join)
{
  g_autoptr(GPtrArray) sockets = adapter_local_sockets (self, rooms, except);

  for (guint i = 0; i < sockets->len; i++)
    for (guint j = 0; join[j] != NULL; j++)
      socket_io_socket_join (g_ptr_array_index (sockets, i), join[j]);
}

static void
adapter_real_del_sockets (SocketIOAdapter        *self,
                          const char * const     *rooms,
                          const char * const     *except,
                          SocketIOBroadcastFlags  flags,
                          const char * const     *leave)
{
  g_autoptr(GPtrArray) sockets = adapter_local_sockets (self, rooms, except);

  for (guint i = 0; i < sockets->len; i++)
    for (guint j = 0; leave[j] != NULL; j++)
      socket_io_socket_leave (g_ptr_array_index (sockets, i), leave[j]);
}

static void
adapter_real_disconnect_sockets (SocketIOAdapter        *self,
                                 const char * const     *rooms,
                                 const char * const     *except,
                                 SocketIOBroadcastFlags  flags,
                                 gboolean                close_transport)
{
  g_autoptr(GPtrArray) sockets = adapter_local_sockets (self, rooms, except);

  for (guint i = 0; i < sockets->len; i++)
    disconnect_later (g_ptr_array_index (sockets, i), close_transport);
}

enum { ADAPTER_PROP_0, ADAPTER_PROP_NAMESPACE };

static void
socket_io_adapter_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (SOCKET_IO_ADAPTER (object));

  switch (prop_id)
    {
    case ADAPTER_PROP_NAMESPACE:
      /* Not a ref: the namespace owns its adapter. */
      priv->nsp = g_value_get_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_adapter_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (SOCKET_IO_ADAPTER (object));

  switch (prop_id)
    {
    case ADAPTER_PROP_NAMESPACE:
      g_value_set_object (value, priv->nsp);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_adapter_class_init (SocketIOAdapterClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_adapter_finalize;
  G_OBJECT_CLASS (klass)->set_property = socket_io_adapter_set_property;
  G_OBJECT_CLASS (klass)->get_property = socket_io_adapter_get_property;

  /**
   * SocketIOAdapter:namespace:
   *
   * The namespace the adapter serves (not referenced: the namespace owns
   * its adapter). Set by subclasses' constructors.
   */
  g_object_class_install_property (G_OBJECT_CLASS (klass), ADAPTER_PROP_NAMESPACE,
    g_param_spec_object ("namespace", NULL, NULL, SOCKET_IO_TYPE_NAMESPACE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS));
  klass->add_all = adapter_real_add_all;
  klass->del = adapter_real_del;
  klass->del_all = adapter_real_del_all;
  klass->socket_rooms = adapter_real_socket_rooms;
  klass->broadcast = adapter_real_broadcast;
  klass->sockets = adapter_real_sockets;
  klass->persist_session = adapter_real_persist_session;
  klass->restore_session = adapter_real_restore_session;
  klass->add_sockets = adapter_real_add_sockets;
  klass->del_sockets = adapter_real_del_sockets;
  klass->disconnect_sockets = adapter_real_disconnect_sockets;
}

static void
socket_io_adapter_init (SocketIOAdapter *self)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);

  g_mutex_init (&priv->lock);
  priv->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) g_hash_table_unref);
  priv->sids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_hash_table_unref);
  priv->sessions = g_hash_table_new (g_str_hash, g_str_equal);
  g_queue_init (&priv->session_queue);
  g_queue_init (&priv->packets);
  priv->next_offset = 1;
}

/**
 * socket_io_adapter_new:
 * @nsp: the namespace the adapter serves (not referenced: the namespace
 *   owns its adapter)
 *
 * Creates the in-memory adapter. Any thread.
 *
 * Returns: (transfer full): a new adapter
 */
SocketIOAdapter *
socket_io_adapter_new (SocketIONamespace *nsp)
{
  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (nsp), NULL);
  return g_object_new (SOCKET_IO_TYPE_ADAPTER, "namespace", nsp, NULL);
}

/**
 * socket_io_adapter_get_namespace:
 * @self: an adapter
 *
 * Any thread.
 *
 * Returns: (transfer none): the namespace
 */
SocketIONamespace *
socket_io_adapter_get_namespace (SocketIOAdapter *self)
{
  SocketIOAdapterPrivate *priv = socket_io_adapter_get_instance_private (self);

  return priv->nsp;
}

/**
 * socket_io_adapter_add_all:
 * @self: an adapter
 * @sid: a socket id
 * @rooms: (array zero-terminated=1): rooms to join
 *
 * Any thread.
 */
void
socket_io_adapter_add_all (SocketIOAdapter    *self,
                           const char         *sid,
                           const char * const *rooms)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  SOCKET_IO_ADAPTER_GET_CLASS (self)->add_all (self, sid, rooms);
}

/**
 * socket_io_adapter_del:
 * @self: an adapter
 * @sid: a socket id
 * @room: a room to leave
 *
 * Any thread.
 */
void
socket_io_adapter_del (SocketIOAdapter *self,
                       const char      *sid,
                       const char      *room)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  SOCKET_IO_ADAPTER_GET_CLASS (self)->del (self, sid, room);
}

/**
 * socket_io_adapter_del_all:
 * @self: an adapter
 * @sid: a socket id
 *
 * Removes @sid from every room. Any thread.
 */
void
socket_io_adapter_del_all (SocketIOAdapter *self,
                           const char      *sid)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  SOCKET_IO_ADAPTER_GET_CLASS (self)->del_all (self, sid);
}

/**
 * socket_io_adapter_socket_rooms:
 * @self: an adapter
 * @sid: a socket id
 *
 * Any thread.
 *
 * Returns: (transfer full) (array zero-terminated=1): the rooms of @sid
 */
char **
socket_io_adapter_socket_rooms (SocketIOAdapter *self,
                                const char      *sid)
{
  g_return_val_if_fail (SOCKET_IO_IS_ADAPTER (self), NULL);
  return SOCKET_IO_ADAPTER_GET_CLASS (self)->socket_rooms (self, sid);
}

/**
 * socket_io_adapter_broadcast:
 * @self: an adapter
 * @text: the encoded packet
 * @attachments: (nullable) (element-type GBytes): its binary messages
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 * @flags: delivery flags
 *
 * Any thread.
 *
 * Returns: how many local sockets the packet was queued for
 */
guint
socket_io_adapter_broadcast (SocketIOAdapter        *self,
                             GBytes                 *text,
                             GPtrArray              *attachments,
                             const char * const     *rooms,
                             const char * const     *except,
                             SocketIOBroadcastFlags  flags)
{
  g_return_val_if_fail (SOCKET_IO_IS_ADAPTER (self), 0);
  return SOCKET_IO_ADAPTER_GET_CLASS (self)->broadcast (self, text, attachments, rooms, except, flags);
}

/**
 * socket_io_adapter_sockets:
 * @self: an adapter
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 *
 * Any thread.
 *
 * Returns: (transfer full) (array zero-terminated=1): the ids of the
 *   local sockets addressed
 */
char **
socket_io_adapter_sockets (SocketIOAdapter    *self,
                           const char * const *rooms,
                           const char * const *except)
{
  g_return_val_if_fail (SOCKET_IO_IS_ADAPTER (self), NULL);
  return SOCKET_IO_ADAPTER_GET_CLASS (self)->sockets (self, rooms, except);
}

/**
 * socket_io_adapter_persist_session:
 * @self: an adapter
 * @session: the session of a socket that left for a recoverable reason
 *
 * Keeps @session for connection state recovery (the in-memory adapter:
 * at most #SocketIOServer:max-recovery-sessions per namespace, the oldest
 * dropped, each for #SocketIOServer:max-disconnection-duration). Any
 * thread.
 */
void
socket_io_adapter_persist_session (SocketIOAdapter *self,
                                   SocketIOSession *session)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  g_return_if_fail (session != NULL);
  SOCKET_IO_ADAPTER_GET_CLASS (self)->persist_session (self, session);
}

/**
 * socket_io_adapter_restore_session:
 * @self: an adapter
 * @pid: the private session id the client sent
 * @offset: the offset of the last packet the client got
 *
 * Takes back a persisted session (once: a pid recovers one socket) if it
 * did not expire and the packet at @offset is still kept, with the kept
 * packets after @offset that its rooms received. Any thread.
 *
 * Returns: (transfer full) (nullable): the session with its missed
 *   packets, or %NULL (the client gets a new socket)
 */
SocketIOSession *
socket_io_adapter_restore_session (SocketIOAdapter *self,
                                   const char      *pid,
                                   const char      *offset)
{
  g_return_val_if_fail (SOCKET_IO_IS_ADAPTER (self), NULL);
  g_return_val_if_fail (pid != NULL && offset != NULL, NULL);
  return SOCKET_IO_ADAPTER_GET_CLASS (self)->restore_session (self, pid, offset);
}

/**
 * socket_io_adapter_add_sockets:
 * @self: an adapter
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 * @flags: %SOCKET_IO_BROADCAST_LOCAL keeps it to this node
 * @join: (array zero-terminated=1): rooms to join
 *
 * Makes the sockets addressed join every room of @join (on every node of
 * a cluster unless @flags is local). Any thread.
 */
void
socket_io_adapter_add_sockets (SocketIOAdapter        *self,
                               const char * const     *rooms,
                               const char * const     *except,
                               SocketIOBroadcastFlags  flags,
                               const char * const     *join)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  g_return_if_fail (join != NULL);
  SOCKET_IO_ADAPTER_GET_CLASS (self)->add_sockets (self, rooms, except, flags, join);
}

/**
 * socket_io_adapter_del_sockets:
 * @self: an adapter
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 * @flags: %SOCKET_IO_BROADCAST_LOCAL keeps it to this node
 * @leave: (array zero-terminated=1): rooms to leave
 *
 * Makes the sockets addressed leave every room of @leave (on every node
 * of a cluster unless @flags is local). Any thread.
 */
void
socket_io_adapter_del_sockets (SocketIOAdapter        *self,
                               const char * const     *rooms,
                               const char * const     *except,
                               SocketIOBroadcastFlags  flags,
                               const char * const     *leave)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  g_return_if_fail (leave != NULL);
  SOCKET_IO_ADAPTER_GET_CLASS (self)->del_sockets (self, rooms, except, flags, leave);
}

/**
 * socket_io_adapter_disconnect_sockets:
 * @self: an adapter
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 * @flags: %SOCKET_IO_BROADCAST_LOCAL keeps it to this node
 * @close_transport: as for socket_io_socket_disconnect()
 *
 * Disconnects the sockets addressed (on every node of a cluster unless
 * @flags is local), each in its own context (at once for the sockets of
 * the calling context, later for the others). Any thread.
 */
void
socket_io_adapter_disconnect_sockets (SocketIOAdapter        *self,
                                      const char * const     *rooms,
                                      const char * const     *except,
                                      SocketIOBroadcastFlags  flags,
                                      gboolean                close_transport)
{
  g_return_if_fail (SOCKET_IO_IS_ADAPTER (self));
  SOCKET_IO_ADAPTER_GET_CLASS (self)->disconnect_sockets (self, rooms, except, flags,
                                                          close_transport);
}

