/* socketio-connect.c: a socket's connection to a namespace
 *
 * A CONNECT attempt through the namespace's middlewares
 * (SocketIOMiddlewareCall), then its CONNECT reply, recovered session
 * and `connection` (or its CONNECT_ERROR).
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

struct _SocketIOMiddlewareCall
{
  GObject            parent_instance;
  SioConnectAttempt *attempt;       /* ref */
  gint               answered;      /* atomic */
};

G_DEFINE_FINAL_TYPE (SocketIOMiddlewareCall, socket_io_middleware_call, G_TYPE_OBJECT)

/* Gives a restored session (without its missed packets) back to the
 * adapter. */
static void
session_persist_again (SocketIONamespace *nsp,
                       SocketIOSession   *session)
{
  g_autoptr(SocketIOSession) again =
    socket_io_session_new (socket_io_session_get_sid (session), socket_io_session_get_pid (session),
                           socket_io_session_get_rooms (session), socket_io_session_get_data (session));

  socket_io_adapter_persist_session (socket_io_namespace_get_adapter (nsp), again);
}

static void
connect_refuse (SioConnectAttempt *attempt,
                const char        *message,
                JsonNode          *error_data)
{
  SioClient *c = attempt->c;
  g_autoptr(JsonNode) data = NULL;
  g_autofree char *name = g_strdup (attempt->name);

  /* v4 (socket.io 2.x) clients get the data, or the message, alone. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V4)
    data = error_data != NULL ? json_node_ref (error_data)
                              : json_node_init_string (json_node_alloc (), message);
  else
    data = socket_io_error_object (message, error_data);
  /* A recovered socket a middleware refused: its session stays
   * recoverable (by a CONNECT the middlewares let in). */
  if (attempt->socket != NULL && attempt->socket->session != NULL)
    {
      g_autoptr(SocketIOSession) session = g_steal_pointer (&attempt->socket->session);

      session_persist_again (attempt->nsp, session);
    }
  g_hash_table_remove (c->pending, name);     /* may free @attempt */
  if (!c->closed)
    socket_io_client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
}

/* Session context, the main-loop iteration after socket_io_connect_finish(): emits
 * `connection`, then hands the socket what its client sent meanwhile. By
 * then the CONNECT reply has been handed to the transport (over WebSocket,
 * written at the end of the dispatch that queued it), so what the handlers
 * send goes out after it, in a write of its own, as with the reference
 * server, whose `connection` handlers run once its reply is flushed
 * (clients that read one message per network read, like the official
 * protocol test suite's, miss a second message in the same read). A
 * socket that disconnects meanwhile is announced by socket_io_socket_close(), just
 * before its `disconnecting`. */
static gboolean
announce_connection_cb (gpointer data)
{
  SocketIOSocket *socket = data;
  SocketIOPacket *packet;

  if (socket->announced)
    return G_SOURCE_REMOVE;   /* by socket_io_socket_close() */
  socket->announced = TRUE;
  if (socket_io_socket_is_connected (socket))
    g_signal_emit (socket->nsp, socket_io_namespace_signals[NSP_SIGNAL_CONNECTION], 0, socket);
  while ((packet = g_queue_pop_head (&socket->early_packets)) != NULL)
    {
      if (socket_io_socket_is_connected (socket) && !socket->client->closed)
        socket_io_socket_on_packet (socket, packet);
      socket_io_packet_unref (packet);
    }
  return G_SOURCE_REMOVE;
}

/* @recovery_locked: the namespace's recovery lock is held for writing
 * (released here). */
void
socket_io_connect_finish (SioConnectAttempt *attempt,
                          gboolean           recovery_locked)
{
  SioClient *c = attempt->c;
  g_autoptr(SocketIONamespace) nsp = g_object_ref (attempt->nsp);
  g_autoptr(SocketIOSocket) socket = g_object_ref (attempt->socket);
  g_autofree char *name = g_strdup (attempt->name);
  g_autoptr(SocketIOSession) session = g_steal_pointer (&socket->session);
  gboolean missed_failed = FALSE;
  const char *rooms[2];
  g_autoptr(GPtrArray) early_rooms = NULL;

  g_hash_table_remove (c->pending, name);     /* may free @attempt */

  /* A recovered socket gets what it missed and rejoins its rooms with
   * no broadcast in between. After the middlewares (skip-middlewares
   * FALSE), what was broadcast while they ran is missed too: the session
   * is given back and restored again, under the lock; should that fail
   * (the client's offset was dropped meanwhile), the session ends rather
   * than recover with holes. */
  if (session != NULL && !recovery_locked)
    {
      g_autoptr(SocketIOSession) fresh = NULL;

      g_rw_lock_writer_lock (&nsp->recovery_lock);
      recovery_locked = TRUE;
      session_persist_again (nsp, session);
      fresh = socket_io_adapter_restore_session (socket_io_namespace_get_adapter (nsp),
                                                 socket_io_session_get_pid (session),
                                                 socket->recovery_offset);
      if (fresh != NULL)
        {
          g_clear_pointer (&session, socket_io_session_unref);
          session = g_steal_pointer (&fresh);
        }
      else
        missed_failed = TRUE;
    }

  /* The reply is queued before the socket can be reached (tables,
   * adapter): a broadcast from another thread meanwhile misses it,
   * instead of reaching the client before its CONNECT reply. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V4)
    socket_io_client_send_simple (c, SOCKET_IO_PACKET_CONNECT, name, NULL);
  else
    {
      g_autoptr(JsonNode) data = json_node_new (JSON_NODE_OBJECT);
      JsonObject *object = json_object_new ();

      json_object_set_string_member (object, "sid", socket->id);
      if (socket->pid != NULL)
        json_object_set_string_member (object, "pid", socket->pid);
      json_node_take_object (data, object);
      socket_io_client_send_simple (c, SOCKET_IO_PACKET_CONNECT, name, data);
    }
  if (session != NULL)
    for (guint i = 0; i < socket_io_session_get_n_missed_packets (session) && !missed_failed; i++)
      {
        GPtrArray *attachments = NULL;
        GBytes *text = socket_io_session_get_missed_packet (session, i, &attachments);

        missed_failed = !socket_io_client_send_encoded (c, text, attachments, NULL);
      }

  g_atomic_int_set (&socket->connected, 1);
  g_hash_table_insert (c->sockets, g_strdup (name), g_object_ref (socket));
  g_mutex_lock (&nsp->lock);
  g_hash_table_insert (nsp->sockets, g_strdup (socket->id), g_object_ref (socket));
  g_mutex_unlock (&nsp->lock);
  rooms[0] = socket->id;
  rooms[1] = NULL;
  socket_io_adapter_add_all (socket_io_namespace_get_adapter (nsp), socket->id, rooms);
  g_mutex_lock (&socket->ack_lock);
  early_rooms = g_steal_pointer (&socket->early_rooms);
  g_mutex_unlock (&socket->ack_lock);
  if (early_rooms->len > 0)
    {
      g_ptr_array_add (early_rooms, NULL);
      socket_io_adapter_add_all (socket_io_namespace_get_adapter (nsp), socket->id,
                                 (const char * const *) early_rooms->pdata);
    }
  if (session != NULL)
    socket_io_adapter_add_all (socket_io_namespace_get_adapter (nsp), socket->id,
                               socket_io_session_get_rooms (session));
  if (recovery_locked)
    g_rw_lock_writer_unlock (&nsp->recovery_lock);
  socket_io_client_cancel_connect_timer (c);
  /* A missed packet the engine refused (its send queue is full): no
   * recovery with holes. The session ends (a recoverable reason: the
   * socket is persisted again, and its client can take the rest from its
   * last offset). */
  if (missed_failed)
    socket_io_client_fail (c, "forced server close");

  /* `connection` in the next iteration, before any other source of the
   * context (so before the client's next packets are read). */
  {
    GSource *source = g_idle_source_new ();

    g_source_set_priority (source, G_PRIORITY_HIGH);
    g_source_set_callback (source, announce_connection_cb, g_object_ref (socket), g_object_unref);
    g_source_set_static_name (source, "[socketio] connection");
    g_source_attach (source, c->context);
    g_source_unref (source);
  }
}

/* Session context: runs the middlewares from attempt->next on. */
void
socket_io_connect_run (SioConnectAttempt *attempt)
{
  g_autoptr(SioConnectAttempt) hold G_GNUC_UNUSED = socket_io_connect_attempt_ref (attempt);

  for (;;)
    {
      SioMiddleware *m = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonNode) error_data = NULL;

      if (attempt->c == NULL || attempt->c->closed)
        return;
      /* Append-only until the namespace is finalized (the attempt holds it). */
      g_mutex_lock (&attempt->nsp->lock);
      if (attempt->next < attempt->nsp->middlewares->len)
        m = g_ptr_array_index (attempt->nsp->middlewares, attempt->next);
      g_mutex_unlock (&attempt->nsp->lock);
      if (m == NULL)
        break;
      attempt->next++;
      if (m->async_func != NULL)
        {
          g_autoptr(SocketIOMiddlewareCall) call = g_object_new (SOCKET_IO_TYPE_MIDDLEWARE_CALL, NULL);

          call->attempt = socket_io_connect_attempt_ref (attempt);
          m->async_func (attempt->nsp, attempt->socket, call, m->user_data);
          return;   /* socket_io_middleware_call_next() goes on */
        }
      if (!m->func (attempt->nsp, attempt->socket, &error_data, m->user_data, &error))
        {
          connect_refuse (attempt, error != NULL ? error->message : "Forbidden", error_data);
          return;
        }
    }
  socket_io_connect_finish (attempt, FALSE);
}

typedef struct
{
  SioConnectAttempt *attempt;
  gboolean           ok;
  char              *message;
  JsonNode          *data;
} SioResume;

static void
resume_free (gpointer data)
{
  SioResume *r = data;

  socket_io_connect_attempt_unref (r->attempt);
  g_free (r->message);
  g_clear_pointer (&r->data, json_node_unref);
  g_free (r);
}

static gboolean
resume_in_context (gpointer data)
{
  SioResume *r = data;
  SioConnectAttempt *attempt = r->attempt;

  if (attempt->c == NULL || attempt->c->closed ||
      g_hash_table_lookup (attempt->c->pending, attempt->name) != attempt)
    return G_SOURCE_REMOVE;
  if (r->ok)
    socket_io_connect_run (attempt);
  else
    connect_refuse (attempt, r->message, r->data);
  return G_SOURCE_REMOVE;
}

static void
middleware_call_answer (SocketIOMiddlewareCall *self,
                        gboolean                ok,
                        const char             *message,
                        JsonNode               *data)
{
  SioClient *c = NULL;
  SioResume *r;

  if (!g_atomic_int_compare_and_exchange (&self->answered, 0, 1))
    {
      g_critical ("A Socket.IO middleware call was answered twice");
      return;
    }
  g_mutex_lock (&self->attempt->lock);
  if (self->attempt->c != NULL)
    c = socket_io_client_ref (self->attempt->c);
  g_mutex_unlock (&self->attempt->lock);
  if (c == NULL)
    return;
  r = g_new0 (SioResume, 1);
  r->attempt = socket_io_connect_attempt_ref (self->attempt);
  r->ok = ok;
  r->message = g_strdup (message != NULL ? message : "Forbidden");
  r->data = data != NULL ? json_node_ref (data) : NULL;
  g_main_context_invoke_full (c->context, G_PRIORITY_DEFAULT, resume_in_context, r, resume_free);
  socket_io_client_unref (c);
}

static void
socket_io_middleware_call_finalize (GObject *object)
{
  SocketIOMiddlewareCall *self = SOCKET_IO_MIDDLEWARE_CALL (object);

  g_clear_pointer (&self->attempt, socket_io_connect_attempt_unref);
  G_OBJECT_CLASS (socket_io_middleware_call_parent_class)->finalize (object);
}

static void
socket_io_middleware_call_class_init (SocketIOMiddlewareCallClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_middleware_call_finalize;
}

static void
socket_io_middleware_call_init (SocketIOMiddlewareCall *self)
{
}

/**
 * socket_io_middleware_call_next:
 * @self: the call given to a #SocketIOAsyncMiddlewareFunc
 *
 * Lets the socket through this middleware: the next one runs, or the
 * socket joins. Call it, or socket_io_middleware_call_refuse(), once,
 * from any thread, also after the middleware function returned (keep a
 * ref). A call dropped unanswered leaves the CONNECT pending until the
 * session ends.
 */
void
socket_io_middleware_call_next (SocketIOMiddlewareCall *self)
{
  g_return_if_fail (SOCKET_IO_IS_MIDDLEWARE_CALL (self));
  middleware_call_answer (self, TRUE, NULL, NULL);
}

/**
 * socket_io_middleware_call_refuse:
 * @self: the call given to a #SocketIOAsyncMiddlewareFunc
 * @message: the CONNECT_ERROR's `message`
 * @data: (nullable): the CONNECT_ERROR's `data`
 *
 * Refuses the socket: the client gets CONNECT_ERROR. Once, from any
 * thread.
 */
void
socket_io_middleware_call_refuse (SocketIOMiddlewareCall *self,
                                  const char             *message,
                                  JsonNode               *data)
{
  g_return_if_fail (SOCKET_IO_IS_MIDDLEWARE_CALL (self));
  g_return_if_fail (message != NULL);
  middleware_call_answer (self, FALSE, message, data);
}

/**
 * socket_io_middleware_call_get_socket:
 * @self: a middleware call
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): the socket asking to join, or
 *   %NULL once its session ended
 */
SocketIOSocket *
socket_io_middleware_call_get_socket (SocketIOMiddlewareCall *self)
{
  SocketIOSocket *socket = NULL;

  g_return_val_if_fail (SOCKET_IO_IS_MIDDLEWARE_CALL (self), NULL);
  g_mutex_lock (&self->attempt->lock);
  if (self->attempt->socket != NULL)
    socket = g_object_ref (self->attempt->socket);
  g_mutex_unlock (&self->attempt->lock);
  return socket;
}
