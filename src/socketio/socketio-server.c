/* socketio-server.c: a Socket.IO (protocol v5) server on an EngineIOServer
 *
 * Built on the public Engine.IO API only. One SioClient per Engine.IO
 * session holds the packet decoder and the session's sockets (one per
 * namespace joined); it lives in the session's main context: every packet
 * is decoded and dispatched there, and every signal of a SocketIOSocket is
 * emitted there.
 *
 * Locks (never held while application code runs):
 * - SocketIOServer.lock guards the namespace table;
 * - SocketIONamespace.lock guards its socket table, middlewares and adapter;
 * - the adapter's lock guards its rooms; the in-memory adapter holds it
 *   while it sends one broadcast to every recipient, so concurrent
 *   broadcasts reach every recipient in one order;
 * - SioClient.send_lock keeps a packet's text and its attachments together
 *   on the Engine.IO session (engine_io_socket_send_* are thread-safe, but
 *   two packets must not interleave);
 * - SocketIOSocket.ack_lock guards the pending acks of server emits.
 * - SocketIONamespace.recovery_lock (connection state recovery only): a
 *   broadcast holds it for reading; a recovered socket holds it for
 *   writing while it rejoins its rooms and is sent what it missed, so no
 *   broadcast falls between the two. The in-memory adapter's lock also
 *   guards its persisted sessions and kept packets.
 * Lock order: recovery -> adapter -> namespace -> client send; server ->
 * nothing; socket ack -> nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio/socketio.h"
#include "socketio-packet-private.h"

#include <string.h>

typedef struct _SioClient SioClient;

/* Query parameters read from a v4 CONNECT's namespace (the reference's
 * querystring.parse() maxKeys). */
#define SIO_MAX_QUERY_PARAMS 1000
/* Packets a client may send for a namespace after its CONNECT and before
 * `connection` has run (pipelined: an honest client waits for the reply);
 * they are replayed after it. One more closes the client. */
#define SIO_MAX_EARLY_PACKETS 64

struct _SioClient
{
  gatomicrefcount  ref_count;
  SocketIOServer  *server;          /* ref */
  EngineIOSocket  *eio;             /* ref */
  GMainContext    *context;         /* the session's; ref */
  GMutex           send_lock;
  SocketIOProtocol protocol;        /* v5, or v4 for Engine.IO v3 sessions */
  /* Session context only: */
  SocketIODecoder *decoder;
  GHashTable      *sockets;         /* namespace name -> SocketIOSocket (ref) */
  GHashTable      *pending;         /* namespace name -> SioConnectAttempt (ref): in middlewares */
  GSource         *connect_timer;
  const char      *close_reason;    /* static; overrides the engine's reason */
  gboolean         closed;
};

struct _SocketIOServer
{
  GObject          parent_instance;
  EngineIOServer  *engine;          /* ref */
  gulong           connection_id;
  GMutex           lock;            /* guards namespaces, patterns, namespace_func,
                                     * each namespace's configuring and parked */
  GHashTable      *namespaces;      /* name -> SocketIONamespace (ref) */
  GPtrArray       *patterns;        /* GRegex (ref) */
  SocketIONamespaceFunc namespace_func;
  gpointer         namespace_data;
  GDestroyNotify   namespace_destroy;
  guint            connect_timeout; /* atomic */
  guint            max_namespaces;  /* atomic */
  guint            max_pending_acks;/* atomic */
  guint            max_dynamic;     /* atomic */
  /* Connection state recovery (atomic): */
  gint             recovery;
  guint            max_disconnection;
  gint             skip_middlewares;
  guint            max_rec_sessions;
  guint            max_rec_packets;
  guint            max_rec_bytes;
};

typedef struct
{
  SocketIOMiddlewareFunc      func;
  SocketIOAsyncMiddlewareFunc async_func;
  gpointer                    user_data;
  GDestroyNotify              destroy;
} SioMiddleware;

struct _SocketIONamespace
{
  GObject          parent_instance;
  char            *name;
  SocketIOServer  *server;          /* not a ref: the server owns its namespaces */
  GMutex           lock;            /* guards sockets, middlewares, adapter */
  GHashTable      *sockets;         /* id -> SocketIOSocket (ref) */
  GPtrArray       *middlewares;     /* SioMiddleware; append-only until finalize */
  SocketIOAdapter *adapter;         /* ref */
  GRWLock          recovery_lock;   /* see the comment at the top */
  gboolean         configuring;     /* (server lock) dynamic, its ::new-namespace
                                     * handlers still running */
  GQueue           parked;          /* (server lock) SioConnectAttempt (ref): CONNECTs
                                     * that came meanwhile, from clients whose
                                     * sessions go on (attempt_abandon() drops the
                                     * others at once) */
};

struct _SocketIOSocket
{
  GObject            parent_instance;
  char              *id;
  SocketIONamespace *nsp;           /* ref */
  SioClient         *client;        /* ref */
  JsonNode          *auth;          /* nullable, sealed */
  gint               connected;     /* atomic */
  gint               leaving;       /* atomic: set before the rooms are left */
  gboolean           closing;       /* session context only */
  GMutex             ack_lock;      /* guards acks, next_ack_id, acks_closed, data,
                                     * early_rooms */
  JsonNode          *data;          /* nullable, sealed: socket.data */
  GHashTable        *acks;          /* gint64 id -> SioPendingAck */
  gint64             next_ack_id;
  gboolean           acks_closed;
  char              *pid;           /* private session id (recovery on), or NULL */
  gboolean           recovered;     /* set before the socket is published */
  SocketIOSession   *session;       /* session context: restored, until joined */
  char              *recovery_offset; /* session context: the offset it was restored from */
  GPtrArray         *early_rooms;   /* (ack_lock) char*: rooms joined while the
                                     * middlewares run; NULL once connected */
  gboolean           announced;     /* session context: `connection` emitted (by
                                     * announce_connection_cb() or socket_close()) */
  GQueue             early_packets; /* session context: SocketIOPacket (ref) that
                                     * came before `connection`, replayed after it
                                     * (with those that come while they are) */
};

struct _SocketIOAck
{
  GObject          parent_instance;
  SocketIOSocket  *socket;          /* ref */
  gint64           id;
  gint             sent;            /* atomic */
};

struct _SocketIOBroadcastOperator
{
  GObject            parent_instance;
  SocketIONamespace *nsp;           /* ref */
  GPtrArray         *rooms;         /* char*, NULL-terminated */
  GPtrArray         *except;        /* char*, NULL-terminated */
  SocketIOBroadcastFlags flags;
};

typedef struct
{
  SocketIONamespace *nsp;           /* not a ref: the namespace owns its adapter */
  GMutex             lock;          /* guards rooms, sids */
  GHashTable        *rooms;         /* room -> set of sids */
  GHashTable        *sids;          /* sid -> set of rooms */
  /* Connection state recovery, guarded by lock: */
  GHashTable        *sessions;      /* pid -> SioStoredSession (owned by session_queue) */
  GQueue             session_queue; /* SioStoredSession, oldest first */
  GQueue             packets;       /* SioStoredPacket, oldest first, offsets consecutive */
  gsize              packet_bytes;
  guint64            next_offset;
} SocketIOAdapterPrivate;

typedef struct
{
  GTask          *task;
  gint64          id;
  GSource        *timer;
  GSource        *cancel_source;
} SioPendingAck;

typedef struct
{
  JsonArray *args;
  GPtrArray *attachments;
} SioAckResult;

/**
 * SocketIOServer:
 *
 * A Socket.IO server on an #EngineIOServer: every Engine.IO session is a
 * Socket.IO client that joins namespaces. Its namespaces are created with
 * socket_io_server_of() (any thread).
 */

/**
 * SocketIONamespace:
 *
 * A namespace ("/" or "/name"): its sockets, middlewares and adapter
 * (rooms). #SocketIONamespace::connection is emitted in each joining
 * socket's context.
 */

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

/**
 * SocketIOBroadcastOperator:
 *
 * Addresses the sockets of a namespace in some rooms and not in others,
 * for one broadcast (socket_io_broadcast_operator_emit()) or room
 * operation. Used from one thread at a time.
 */

/**
 * SocketIOAdapter:
 *
 * The rooms of a namespace and the delivery of its broadcasts. The base
 * class keeps them in memory; subclasses (a Redis adapter) override
 * #SocketIOAdapterClass's virtual functions.
 */

G_DEFINE_FINAL_TYPE (SocketIOServer, socket_io_server, G_TYPE_OBJECT)
G_DEFINE_FINAL_TYPE (SocketIONamespace, socket_io_namespace, G_TYPE_OBJECT)
G_DEFINE_FINAL_TYPE (SocketIOSocket, socket_io_socket, G_TYPE_OBJECT)
G_DEFINE_FINAL_TYPE (SocketIOAck, socket_io_ack, G_TYPE_OBJECT)
G_DEFINE_FINAL_TYPE (SocketIOBroadcastOperator, socket_io_broadcast_operator, G_TYPE_OBJECT)
G_DEFINE_TYPE_WITH_PRIVATE (SocketIOAdapter, socket_io_adapter, G_TYPE_OBJECT)

enum { SERVER_PROP_0, SERVER_PROP_ENGINE, SERVER_PROP_CONNECT_TIMEOUT,
       SERVER_PROP_MAX_NAMESPACES, SERVER_PROP_MAX_PENDING_ACKS, SERVER_PROP_MAX_DYNAMIC,
       SERVER_PROP_RECOVERY, SERVER_PROP_MAX_DISCONNECTION, SERVER_PROP_SKIP_MIDDLEWARES,
       SERVER_PROP_MAX_REC_SESSIONS, SERVER_PROP_MAX_REC_PACKETS, SERVER_PROP_MAX_REC_BYTES,
       SERVER_N_PROPS };
static GParamSpec *server_props[SERVER_N_PROPS];

enum { SERVER_SIGNAL_NEW_NAMESPACE, SERVER_N_SIGNALS };
static guint server_signals[SERVER_N_SIGNALS];

enum { NSP_SIGNAL_CONNECTION, NSP_N_SIGNALS };
static guint nsp_signals[NSP_N_SIGNALS];

enum { SOCKET_SIGNAL_EVENT, SOCKET_SIGNAL_DISCONNECTING, SOCKET_SIGNAL_DISCONNECT, SOCKET_N_SIGNALS };
static guint socket_signals[SOCKET_N_SIGNALS];

static void socket_close (SocketIOSocket *socket, const char *reason);

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static char *
generate_id (void)
{
  guint8 raw[15];
  char *id;

  for (guint i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) g_random_int_range (0, 256);
  id = g_base64_encode (raw, sizeof raw);
  for (char *p = id; *p != '\0'; p++)
    {
      if (*p == '+')
        *p = '-';
      else if (*p == '/')
        *p = '_';
    }
  return id;
}

/* [name, args...] (the elements of @args are shared, and sealed with the
 * packet). */
static JsonNode *
event_payload (const char *name,
               JsonArray  *args)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  json_array_add_string_element (array, name);
  if (args != NULL)
    for (guint i = 0; i < json_array_get_length (args); i++)
      json_array_add_element (array, json_node_ref (json_array_get_element (args, i)));
  json_node_take_array (node, array);
  return node;
}

static JsonNode *
args_payload (JsonArray *args)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  if (args != NULL)
    for (guint i = 0; i < json_array_get_length (args); i++)
      json_array_add_element (array, json_node_ref (json_array_get_element (args, i)));
  json_node_take_array (node, array);
  return node;
}

/* The elements of @array from @first on, as a new array. */
static JsonArray *
array_tail (JsonNode *node,
            guint     first)
{
  JsonArray *out = json_array_new ();

  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = first; i < json_array_get_length (array); i++)
        json_array_add_element (out, json_node_ref (json_array_get_element (array, i)));
    }
  return out;
}

static JsonNode *
error_object (const char *message,
              JsonNode   *data)
{
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (object, "message", message);
  if (data != NULL)
    json_object_set_member (object, "data", json_node_ref (data));
  json_node_take_object (node, object);
  return node;
}

/* ------------------------------------------------------------------ */
/* SioClient                                                            */
/* ------------------------------------------------------------------ */

static SioClient *
client_ref (SioClient *c)
{
  g_atomic_ref_count_inc (&c->ref_count);
  return c;
}

static void
client_unref (SioClient *c)
{
  if (!g_atomic_ref_count_dec (&c->ref_count))
    return;
  g_assert (c->connect_timer == NULL);
  g_hash_table_unref (c->sockets);
  g_hash_table_unref (c->pending);
  socket_io_decoder_free (c->decoder);
  g_mutex_clear (&c->send_lock);
  g_main_context_unref (c->context);
  g_object_unref (c->eio);
  g_object_unref (c->server);
  g_free (c);
}

/* Any thread. Sends one encoded packet: its text, then its attachments,
 * with nothing in between. A packet cut in the middle (the engine refused
 * an attachment) would corrupt the stream: the session is closed then. */
static gboolean
client_send_encoded (SioClient  *c,
                     GBytes     *text,
                     GPtrArray  *attachments,
                     GError    **error)
{
  gsize length;
  const char *data = g_bytes_get_data (text, &length);
  gboolean ok;

  g_mutex_lock (&c->send_lock);
  ok = engine_io_socket_send_text_len (c->eio, data, (gssize) length, error);
  if (ok && attachments != NULL)
    for (guint i = 0; i < attachments->len; i++)
      if (!engine_io_socket_send_binary (c->eio, g_ptr_array_index (attachments, i), error))
        {
          engine_io_socket_close (c->eio);
          ok = FALSE;
          break;
        }
  g_mutex_unlock (&c->send_lock);
  return ok;
}

static gboolean
client_send_packet (SioClient       *c,
                    SocketIOPacket  *packet,
                    GError         **error)
{
  g_autoptr(GPtrArray) attachments = NULL;
  g_autoptr(GBytes) text = socket_io_packet_encode (packet, &attachments);

  return client_send_encoded (c, text, attachments, error);
}

static void
client_send_simple (SioClient          *c,
                    SocketIOPacketType  type,
                    const char         *nsp,
                    JsonNode           *data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = socket_io_packet_new (type, nsp, data, SOCKET_IO_NO_ACK_ID,
                                                           NULL, &error);

  if (packet == NULL || !client_send_packet (c, packet, &error))
    g_debug ("send to %s failed: %s", engine_io_socket_get_id (c->eio), error->message);
}

/* Session context. Closes the Engine.IO session; its sockets will
 * disconnect with @reason. */
static void
client_fail (SioClient  *c,
             const char *reason)
{
  if (c->closed)
    return;
  c->closed = TRUE;
  if (c->close_reason == NULL)
    c->close_reason = reason;
  engine_io_socket_close (c->eio);
}

static void
client_cancel_connect_timer (SioClient *c)
{
  if (c->connect_timer != NULL)
    {
      g_source_destroy (c->connect_timer);
      g_source_unref (c->connect_timer);
      c->connect_timer = NULL;
    }
}

/* Session context. Copies the sockets, since closing one removes it. */
static GPtrArray *
client_dup_sockets (SioClient *c)
{
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, c->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  return sockets;
}

static gboolean
on_connect_timeout (gpointer data)
{
  SioClient *c = data;

  if (g_hash_table_size (c->sockets) == 0 && g_hash_table_size (c->pending) == 0)
    {
      g_debug ("%s joined no namespace in time", engine_io_socket_get_id (c->eio));
      client_fail (c, "forced server close");
    }
  g_source_unref (c->connect_timer);
  c->connect_timer = NULL;
  return G_SOURCE_REMOVE;
}

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

static SocketIOSocket *socket_new (SocketIONamespace *nsp,
                                   SioClient         *c,
                                   JsonNode          *auth,
                                   SocketIOSession   *session);
static gboolean server_recovery_on (SocketIOServer *self);
static void socket_on_packet (SocketIOSocket *socket,
                              SocketIOPacket *packet);

/* Session context: an undeclared namespace, created if a pattern matches
 * it or the namespace function accepts it. */
static SocketIONamespace *server_of_locked (SocketIOServer *self,
                                            const char     *name);

static void namespace_configured (SocketIOServer    *self,
                                  SocketIONamespace *nsp);

/* Any thread: creates the dynamic namespace @name if a pattern or the
 * namespace function accepts it, and emits ::new-namespace for it on this
 * thread. CONNECTs to it that other clients send meanwhile are parked
 * (namespace_park()) and go on, each in its session context, once the
 * handlers have returned. */
static SocketIONamespace *
server_dynamic_namespace (SocketIOServer *self,
                          const char     *name,
                          JsonNode       *auth)
{
  g_autoptr(GPtrArray) patterns = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
  SocketIONamespaceFunc func;
  gpointer func_data;
  gboolean accept = FALSE;
  SocketIONamespace *nsp;
  gboolean created;

  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->patterns->len; i++)
    g_ptr_array_add (patterns, g_regex_ref (g_ptr_array_index (self->patterns, i)));
  func = self->namespace_func;
  func_data = self->namespace_data;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < patterns->len && !accept; i++)
    accept = g_regex_match (g_ptr_array_index (patterns, i), name, 0, NULL);
  if (!accept && func != NULL)
    accept = func (self, name, auth, func_data);
  if (!accept)
    return NULL;

  g_mutex_lock (&self->lock);
  nsp = g_hash_table_lookup (self->namespaces, name);
  created = nsp == NULL;
  if (created && g_hash_table_size (self->namespaces) >= (guint) g_atomic_int_get (&self->max_dynamic))
    {
      g_mutex_unlock (&self->lock);
      g_debug ("namespace %s refused: max-namespaces reached", name);
      return NULL;
    }
  if (created)
    {
      nsp = server_of_locked (self, name);
      nsp->configuring = TRUE;
    }
  g_object_ref (nsp);
  g_mutex_unlock (&self->lock);
  if (created)
    {
      g_signal_emit (self, server_signals[SERVER_SIGNAL_NEW_NAMESPACE], 0, nsp);
      namespace_configured (self, nsp);
    }
  return nsp;
}

/* One CONNECT going through the namespace's middlewares, which may answer
 * later from any thread (asynchronous middlewares). The session context
 * owns its progress; @lock guards @c and @socket, which the session's end
 * clears (so that a call queued in a context nobody runs any more keeps
 * neither the client nor its context alive). */
typedef struct
{
  gatomicrefcount    ref_count;
  GMutex             lock;
  SioClient         *c;             /* ref; NULL once the session ended */
  SocketIOSocket    *socket;        /* ref; NULL once the session ended */
  SocketIONamespace *nsp;           /* ref */
  char              *name;
  guint              next;          /* the next middleware; session context */
  JsonNode          *auth;          /* ref, nullable: a parked CONNECT's auth; session
                                     * context */
  GList             *park_link;     /* (server lock) its link in nsp->parked, while
                                     * there */
  gboolean           parked;        /* made by namespace_park() */
  GQueue             early;         /* session context: SocketIOPacket (ref) a parked
                                     * CONNECT's client sent after it, replayed
                                     * when it goes on */
} SioConnectAttempt;

struct _SocketIOMiddlewareCall
{
  GObject            parent_instance;
  SioConnectAttempt *attempt;       /* ref */
  gint               answered;      /* atomic */
};

G_DEFINE_FINAL_TYPE (SocketIOMiddlewareCall, socket_io_middleware_call, G_TYPE_OBJECT)

static SioConnectAttempt *
attempt_ref (SioConnectAttempt *attempt)
{
  g_atomic_ref_count_inc (&attempt->ref_count);
  return attempt;
}

static void
attempt_unref (SioConnectAttempt *attempt)
{
  if (!g_atomic_ref_count_dec (&attempt->ref_count))
    return;
  g_clear_object (&attempt->socket);
  g_clear_pointer (&attempt->c, client_unref);
  g_object_unref (attempt->nsp);
  g_free (attempt->name);
  g_clear_pointer (&attempt->auth, json_node_unref);
  g_queue_clear_full (&attempt->early, (GDestroyNotify) socket_io_packet_unref);
  g_mutex_clear (&attempt->lock);
  g_free (attempt);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SioConnectAttempt, attempt_unref)

/* Session context: the session ended; forget the client and socket. */
static void
attempt_abandon (gpointer data)
{
  SioConnectAttempt *attempt = data;
  SioClient *c;
  SocketIOSocket *socket;
  gboolean was_parked = FALSE;

  g_mutex_lock (&attempt->lock);
  c = g_steal_pointer (&attempt->c);
  socket = g_steal_pointer (&attempt->socket);
  g_mutex_unlock (&attempt->lock);
  /* A parked CONNECT (no socket yet) leaves its namespace's list at once,
   * with its auth: a slow ::new-namespace handler keeps only those of
   * clients still there (bounded by their sessions' max-namespaces). */
  if (socket == NULL && c != NULL)
    {
      g_mutex_lock (&c->server->lock);
      if (attempt->park_link != NULL)
        {
          g_queue_delete_link (&attempt->nsp->parked, attempt->park_link);
          attempt->park_link = NULL;
          was_parked = TRUE;
        }
      g_mutex_unlock (&c->server->lock);
      g_clear_pointer (&attempt->auth, json_node_unref);
      g_queue_clear_full (&attempt->early, (GDestroyNotify) socket_io_packet_unref);
    }
  g_clear_object (&socket);
  g_clear_pointer (&c, client_unref);
  if (was_parked)
    attempt_unref (attempt);    /* the list's ref; not the last: ours follows */
  attempt_unref (attempt);
}

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
    data = error_object (message, error_data);
  /* A recovered socket a middleware refused: its session stays
   * recoverable (by a CONNECT the middlewares let in). */
  if (attempt->socket != NULL && attempt->socket->session != NULL)
    {
      g_autoptr(SocketIOSession) session = g_steal_pointer (&attempt->socket->session);

      session_persist_again (attempt->nsp, session);
    }
  g_hash_table_remove (c->pending, name);     /* may free @attempt */
  if (!c->closed)
    client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
}

/* Session context, the main-loop iteration after connect_finish(): emits
 * `connection`, then hands the socket what its client sent meanwhile. By
 * then the CONNECT reply has been handed to the transport (over WebSocket,
 * written at the end of the dispatch that queued it), so what the handlers
 * send goes out after it, in a write of its own, as with the reference
 * server, whose `connection` handlers run once its reply is flushed
 * (clients that read one message per network read, like the official
 * protocol test suite's, miss a second message in the same read). A
 * socket that disconnects meanwhile is announced by socket_close(), just
 * before its `disconnecting`. */
static gboolean
announce_connection_cb (gpointer data)
{
  SocketIOSocket *socket = data;
  SocketIOPacket *packet;

  if (socket->announced)
    return G_SOURCE_REMOVE;   /* by socket_close() */
  socket->announced = TRUE;
  if (socket_io_socket_is_connected (socket))
    g_signal_emit (socket->nsp, nsp_signals[NSP_SIGNAL_CONNECTION], 0, socket);
  while ((packet = g_queue_pop_head (&socket->early_packets)) != NULL)
    {
      if (socket_io_socket_is_connected (socket) && !socket->client->closed)
        socket_on_packet (socket, packet);
      socket_io_packet_unref (packet);
    }
  return G_SOURCE_REMOVE;
}

/* @recovery_locked: the namespace's recovery lock is held for writing
 * (released here). */
static void
connect_finish (SioConnectAttempt *attempt,
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
    client_send_simple (c, SOCKET_IO_PACKET_CONNECT, name, NULL);
  else
    {
      g_autoptr(JsonNode) data = json_node_new (JSON_NODE_OBJECT);
      JsonObject *object = json_object_new ();

      json_object_set_string_member (object, "sid", socket->id);
      if (socket->pid != NULL)
        json_object_set_string_member (object, "pid", socket->pid);
      json_node_take_object (data, object);
      client_send_simple (c, SOCKET_IO_PACKET_CONNECT, name, data);
    }
  if (session != NULL)
    for (guint i = 0; i < socket_io_session_get_n_missed_packets (session) && !missed_failed; i++)
      {
        GPtrArray *attachments = NULL;
        GBytes *text = socket_io_session_get_missed_packet (session, i, &attachments);

        missed_failed = !client_send_encoded (c, text, attachments, NULL);
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
  client_cancel_connect_timer (c);
  /* A missed packet the engine refused (its send queue is full): no
   * recovery with holes. The session ends (a recoverable reason: the
   * socket is persisted again, and its client can take the rest from its
   * last offset). */
  if (missed_failed)
    client_fail (c, "forced server close");

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
static void
connect_run (SioConnectAttempt *attempt)
{
  g_autoptr(SioConnectAttempt) hold G_GNUC_UNUSED = attempt_ref (attempt);

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

          call->attempt = attempt_ref (attempt);
          m->async_func (attempt->nsp, attempt->socket, call, m->user_data);
          return;   /* socket_io_middleware_call_next() goes on */
        }
      if (!m->func (attempt->nsp, attempt->socket, &error_data, m->user_data, &error))
        {
          connect_refuse (attempt, error != NULL ? error->message : "Forbidden", error_data);
          return;
        }
    }
  connect_finish (attempt, FALSE);
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

  attempt_unref (r->attempt);
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
    connect_run (attempt);
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
    c = client_ref (self->attempt->c);
  g_mutex_unlock (&self->attempt->lock);
  if (c == NULL)
    return;
  r = g_new0 (SioResume, 1);
  r->attempt = attempt_ref (self->attempt);
  r->ok = ok;
  r->message = g_strdup (message != NULL ? message : "Forbidden");
  r->data = data != NULL ? json_node_ref (data) : NULL;
  g_main_context_invoke_full (c->context, G_PRIORITY_DEFAULT, resume_in_context, r, resume_free);
  client_unref (c);
}

static void
socket_io_middleware_call_finalize (GObject *object)
{
  SocketIOMiddlewareCall *self = SOCKET_IO_MIDDLEWARE_CALL (object);

  g_clear_pointer (&self->attempt, attempt_unref);
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

static void client_connect (SioClient  *c,
                            const char *name,
                            JsonNode   *auth);
static void client_dispatch (SioClient      *c,
                             SocketIOPacket *packet);

/* Session context, once the namespace's ::new-namespace handlers have
 * returned: the parked CONNECT starts again. */
static gboolean
unpark_in_context (gpointer data)
{
  SioConnectAttempt *attempt = data;
  g_autoptr(JsonNode) auth = NULL;
  g_autofree char *name = NULL;
  SioClient *c = attempt->c;
  GQueue early = G_QUEUE_INIT;
  SocketIOPacket *packet;

  if (c == NULL || c->closed || g_hash_table_lookup (c->pending, attempt->name) != attempt)
    return G_SOURCE_REMOVE;
  client_ref (c);
  name = g_strdup (attempt->name);
  auth = attempt->auth != NULL ? json_node_ref (attempt->auth) : NULL;
  early = attempt->early;
  g_queue_init (&attempt->early);
  g_hash_table_remove (c->pending, name);     /* forgets @attempt's client */
  client_connect (c, name, auth);
  /* What came after the CONNECT, as if it came now: for its socket's
   * `connection` (the middlewares let it in at once), or it closes the
   * client as during any pending CONNECT. */
  while ((packet = g_queue_pop_head (&early)) != NULL)
    {
      if (!c->closed)
        client_dispatch (c, packet);
      socket_io_packet_unref (packet);
    }
  client_unref (c);
  return G_SOURCE_REMOVE;
}

/* Any thread (the one that ran the ::new-namespace handlers): queues the
 * parked @data to its session context, unless its session ended. */
static void
attempt_unpark (gpointer data)
{
  SioConnectAttempt *attempt = data;
  SioClient *c = NULL;
  GSource *source;

  g_mutex_lock (&attempt->lock);
  if (attempt->c != NULL)
    c = client_ref (attempt->c);
  g_mutex_unlock (&attempt->lock);
  if (c == NULL)
    return;
  /* A source, not g_main_context_invoke(): on the handlers' own thread
   * that would run this CONNECT inside the one that created the
   * namespace. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, unpark_in_context, attempt_ref (attempt),
                         (GDestroyNotify) attempt_unref);
  g_source_set_static_name (source, "[socketio] unpark CONNECT");
  g_source_attach (source, c->context);
  g_source_unref (source);
  client_unref (c);
}

/* The thread that ran @nsp's ::new-namespace handlers, once they have
 * returned: the CONNECTs parked meanwhile go on. */
static void
namespace_configured (SocketIOServer    *self,
                      SocketIONamespace *nsp)
{
  GQueue parked;
  SioConnectAttempt *attempt;

  g_mutex_lock (&self->lock);
  nsp->configuring = FALSE;
  parked = nsp->parked;
  g_queue_init (&nsp->parked);
  for (GList *l = parked.head; l != NULL; l = l->next)
    ((SioConnectAttempt *) l->data)->park_link = NULL;
  g_mutex_unlock (&self->lock);
  while ((attempt = g_queue_pop_head (&parked)) != NULL)
    {
      attempt_unpark (attempt);
      attempt_unref (attempt);
    }
}

/* Session context: if @nsp's ::new-namespace handlers (run for another
 * client, on any thread, this one included when they iterate the
 * context) have not returned yet, @nsp has none of the middlewares they
 * add, and a client let in now would skip them. Its CONNECT is then
 * parked: a pending attempt (so that the client may send nothing else to
 * @nsp meanwhile, and its session's end forgets it) that starts again
 * once they return. Nothing waits: no thread is held, however long the
 * handlers take. */
static gboolean
namespace_park (SocketIONamespace *nsp,
                SioClient         *c,
                const char        *name,
                JsonNode          *auth)
{
  SocketIOServer *server = c->server;
  SioConnectAttempt *attempt;

  g_mutex_lock (&server->lock);
  if (!nsp->configuring)
    {
      g_mutex_unlock (&server->lock);
      return FALSE;
    }
  attempt = g_new0 (SioConnectAttempt, 1);
  g_atomic_ref_count_init (&attempt->ref_count);
  g_mutex_init (&attempt->lock);
  attempt->c = client_ref (c);
  attempt->nsp = g_object_ref (nsp);
  attempt->name = g_strdup (name);
  attempt->auth = auth != NULL ? json_node_ref (auth) : NULL;
  attempt->parked = TRUE;
  g_queue_push_tail (&nsp->parked, attempt_ref (attempt));
  attempt->park_link = nsp->parked.tail;
  g_mutex_unlock (&server->lock);
  g_debug ("%s: CONNECT to %s parked until its ::new-namespace handlers return",
           engine_io_socket_get_id (c->eio), name);
  g_hash_table_insert (c->pending, g_strdup (name), attempt);   /* takes the ref */
  return TRUE;
}

static void
client_connect (SioClient  *c,
                const char *name,
                JsonNode   *auth)
{
  g_autoptr(SocketIONamespace) nsp = socket_io_server_lookup_namespace (c->server, name);
  g_autoptr(SocketIOSession) session = NULL;
  gboolean recovery_locked = FALSE;
  SioConnectAttempt *attempt;

  if (nsp == NULL)
    nsp = server_dynamic_namespace (c->server, name, auth);
  if (nsp == NULL)
    {
      g_autoptr(JsonNode) data = error_object ("Invalid namespace", NULL);

      client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
      return;
    }
  if (g_hash_table_size (c->sockets) + g_hash_table_size (c->pending) >=
      (guint) g_atomic_int_get (&c->server->max_namespaces))
    {
      g_autoptr(JsonNode) data = error_object ("Too many namespaces", NULL);

      client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
      client_fail (c, "forced server close");
      return;
    }
  if (namespace_park (nsp, c, name, auth))
    return;

  /* Connection state recovery: the auth names the private session id and
   * the last offset the client got. Held for writing from the restore to
   * the socket's rejoining its rooms when the middlewares are skipped, so
   * that no broadcast falls in between. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V5 && server_recovery_on (c->server) &&
      auth != NULL && JSON_NODE_HOLDS_OBJECT (auth))
    {
      JsonObject *object = json_node_get_object (auth);
      JsonNode *pid = json_object_get_member (object, "pid");
      JsonNode *offset = json_object_get_member (object, "offset");

      if (pid != NULL && offset != NULL &&
          json_node_get_value_type (pid) == G_TYPE_STRING &&
          json_node_get_value_type (offset) == G_TYPE_STRING)
        {
          g_rw_lock_writer_lock (&nsp->recovery_lock);
          recovery_locked = TRUE;
          session = socket_io_adapter_restore_session (socket_io_namespace_get_adapter (nsp),
                                                       json_node_get_string (pid),
                                                       json_node_get_string (offset));
          if (session == NULL)
            {
              g_rw_lock_writer_unlock (&nsp->recovery_lock);
              recovery_locked = FALSE;
            }
        }
    }

  attempt = g_new0 (SioConnectAttempt, 1);
  g_atomic_ref_count_init (&attempt->ref_count);
  g_mutex_init (&attempt->lock);
  attempt->c = client_ref (c);
  attempt->nsp = g_object_ref (nsp);
  attempt->name = g_strdup (name);
  attempt->socket = socket_new (nsp, c, auth, session);
  if (session != NULL)
    attempt->socket->recovery_offset =
      g_strdup (json_object_get_string_member (json_node_get_object (auth), "offset"));
  g_hash_table_insert (c->pending, g_strdup (name), attempt);   /* takes the ref */
  if (session != NULL && g_atomic_int_get (&c->server->skip_middlewares))
    connect_finish (attempt, recovery_locked);
  else
    {
      if (recovery_locked)
        g_rw_lock_writer_unlock (&nsp->recovery_lock);
      connect_run (attempt);
    }
}

static void
client_dispatch (SioClient      *c,
                 SocketIOPacket *packet)
{
  const char *name = socket_io_packet_get_namespace (packet);
  SocketIOPacketType type = socket_io_packet_get_packet_type (packet);
  g_autofree char *path = NULL;
  g_autoptr(JsonNode) query_auth = NULL;
  SocketIOSocket *socket;
  SioConnectAttempt *parked;
  const char *query;

  /* v4 clients put their query in the namespace ("/nsp?token=1"): it is
   * their auth, as the reference makes it (string values; a later value
   * of a name replaces an earlier one). At most the first
   * SIO_MAX_QUERY_PARAMS parameters are read, as the reference's
   * querystring.parse() (maxKeys): GLib's and json-glib's hash tables
   * take n^2 time on names of one g_str_hash() (unseeded). A malformed
   * query gives an empty auth. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V4 && (query = strchr (name, '?')) != NULL)
    {
      JsonObject *object = json_object_new ();
      g_autoptr(GError) malformed = NULL;
      GUriParamsIter iter;
      char *key, *value;
      guint n = 0;

      path = g_strndup (name, (gsize) (query - name));
      name = path;
      g_uri_params_iter_init (&iter, query + 1, -1, "&", G_URI_PARAMS_NONE);
      while (n < SIO_MAX_QUERY_PARAMS && g_uri_params_iter_next (&iter, &key, &value, &malformed))
        {
          json_object_set_string_member (object, key, value);
          g_free (key);
          g_free (value);
          n++;
        }
      if (malformed != NULL)
        {
          json_object_unref (object);
          object = json_object_new ();
        }
      query_auth = json_node_init_object (json_node_alloc (), object);
      json_object_unref (object);
      json_node_seal (query_auth);
    }
  socket = g_hash_table_lookup (c->sockets, name);

  /* A namespace whose CONNECT is still in the middlewares: nothing may
   * come for it meanwhile (the reference closes too). */
  if (socket == NULL && type == SOCKET_IO_PACKET_CONNECT && !g_hash_table_contains (c->pending, name))
    client_connect (c, name, query_auth != NULL ? query_auth : socket_io_packet_get_data (packet));
  else if (socket != NULL && type != SOCKET_IO_PACKET_CONNECT &&
           type != SOCKET_IO_PACKET_CONNECT_ERROR)
    {
      g_autoptr(SocketIOSocket) hold = g_object_ref (socket);

      /* Queued also while earlier ones wait (`connection` or a handler
       * they reach iterates the context): none overtakes them. */
      if (!hold->announced || !g_queue_is_empty (&hold->early_packets))
        {
          /* Pipelined after its CONNECT: for after `connection`. */
          if (g_queue_get_length (&hold->early_packets) >= SIO_MAX_EARLY_PACKETS)
            {
              g_debug ("%s: more than %d packets before `connection`",
                       engine_io_socket_get_id (c->eio), SIO_MAX_EARLY_PACKETS);
              client_fail (c, "forced server close");
              return;
            }
          g_queue_push_tail (&hold->early_packets, socket_io_packet_ref (packet));
        }
      else
        socket_on_packet (hold, packet);
    }
  else if (socket == NULL && type != SOCKET_IO_PACKET_CONNECT &&
           type != SOCKET_IO_PACKET_CONNECT_ERROR &&
           (parked = g_hash_table_lookup (c->pending, name)) != NULL && parked->parked)
    {
      /* After a parked CONNECT (namespace_park()): kept for when it goes
       * on, within the same bound as for a namespace that is ready. */
      if (g_queue_get_length (&parked->early) >= SIO_MAX_EARLY_PACKETS)
        {
          g_debug ("%s: more than %d packets after a parked CONNECT",
                   engine_io_socket_get_id (c->eio), SIO_MAX_EARLY_PACKETS);
          client_fail (c, "forced server close");
          return;
        }
      g_queue_push_tail (&parked->early, socket_io_packet_ref (packet));
    }
  else
    {
      g_debug ("%s: packet type %d in an invalid state", engine_io_socket_get_id (c->eio), type);
      client_fail (c, "forced server close");
    }
}

static void
on_eio_packet (EngineIOSocket *eio,
               EngineIOPacket *epacket,
               gpointer        data)
{
  SioClient *c = data;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (c->closed || engine_io_packet_get_packet_type (epacket) != ENGINE_IO_PACKET_MESSAGE)
    return;
  if (engine_io_packet_is_binary (epacket))
    ok = socket_io_decoder_feed_binary (c->decoder, engine_io_packet_get_data (epacket),
                                        &packet, &error);
  else
    {
      gsize length = 0;
      const char *text = engine_io_packet_get_text (epacket, &length);

      ok = socket_io_decoder_feed_text (c->decoder, text, length, &packet, &error);
    }
  if (!ok)
    {
      g_debug ("%s: %s", engine_io_socket_get_id (eio), error->message);
      client_fail (c, "parse error");
      return;
    }
  if (packet != NULL)
    client_dispatch (c, packet);
}

/* Connected so that messages are not also kept for engine_io_socket_receive(). */
static void
on_eio_message (EngineIOSocket *eio,
                const char     *text,
                GBytes         *bytes,
                gpointer        data)
{
}

static const char *
close_reason_string (EngineIOCloseReason reason)
{
  switch (reason)
    {
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE:
      return "transport close";
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR:
      return "transport error";
    case ENGINE_IO_CLOSE_REASON_PING_TIMEOUT:
      return "ping timeout";
    case ENGINE_IO_CLOSE_REASON_PARSE_ERROR:
      return "parse error";
    case ENGINE_IO_CLOSE_REASON_FORCED_CLOSE:
      return "forced server close";
    case ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN:
      return "server shutting down";
    case ENGINE_IO_CLOSE_REASON_RATE_LIMITED:
    default:
      return "forced server close";
    }
}

static void
on_eio_close (EngineIOSocket      *eio,
              EngineIOCloseReason  reason,
              const char          *description,
              gpointer             data)
{
  SioClient *c = client_ref (data);
  const char *text = c->close_reason != NULL ? c->close_reason : close_reason_string (reason);
  g_autoptr(GPtrArray) sockets = NULL;

  c->closed = TRUE;
  client_cancel_connect_timer (c);
  sockets = client_dup_sockets (c);
  for (guint i = 0; i < sockets->len; i++)
    socket_close (g_ptr_array_index (sockets, i), text);
  g_hash_table_remove_all (c->pending);
  socket_io_decoder_reset (c->decoder);
  g_signal_handlers_disconnect_by_data (eio, c);
  client_unref (c);
}

static void
client_closure_notify (gpointer  data,
                       GClosure *closure)
{
  client_unref (data);
}

static void
on_engine_connection (EngineIOServer *engine,
                      EngineIOSocket *eio,
                      gpointer        data)
{
  SocketIOServer *self = data;
  SioClient *c;
  guint timeout;

  c = g_new0 (SioClient, 1);
  c->protocol = engine_io_socket_get_protocol_version (eio) == ENGINE_IO_PROTOCOL_V3
    ? SOCKET_IO_PROTOCOL_V4 : SOCKET_IO_PROTOCOL_V5;
  g_atomic_ref_count_init (&c->ref_count);
  c->server = g_object_ref (self);
  c->eio = g_object_ref (eio);
  c->context = g_main_context_ref (engine_io_socket_get_context (eio));
  g_mutex_init (&c->send_lock);
  c->decoder = socket_io_decoder_new (c->protocol);
  c->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  c->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, attempt_abandon);

  /* Signals, not the socket's message function (engine_io_socket_set_message_func()),
   * for now: without the GObject signal lock on the message path, CI's
   * ThreadSanitizer (GLib instrumented, json-glib not) reports json-glib's
   * own synchronisation (its types' g_once, its objects' atomic reference
   * counts) as races; with an instrumented json-glib this can change. */
  g_signal_connect_data (eio, "packet", G_CALLBACK (on_eio_packet), client_ref (c),
                         client_closure_notify, 0);
  g_signal_connect_data (eio, "message", G_CALLBACK (on_eio_message), client_ref (c),
                         client_closure_notify, 0);
  g_signal_connect_data (eio, "close", G_CALLBACK (on_eio_close), client_ref (c),
                         client_closure_notify, 0);

  if (c->protocol == SOCKET_IO_PROTOCOL_V4)
    {
      /* Protocol v4: the client is in the main namespace from the start. */
      client_connect (c, "/", NULL);
      client_unref (c);
      return;
    }
  timeout = g_atomic_int_get (&self->connect_timeout);
  if (timeout > 0)
    {
      c->connect_timer = g_timeout_source_new (timeout);
      g_source_set_callback (c->connect_timer, on_connect_timeout, c, NULL);
      g_source_attach (c->connect_timer, c->context);
    }
  client_unref (c);
}

/* ------------------------------------------------------------------ */
/* SocketIOServer                                                       */
/* ------------------------------------------------------------------ */

static void
socket_io_server_constructed (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  G_OBJECT_CLASS (socket_io_server_parent_class)->constructed (object);
  g_return_if_fail (self->engine != NULL);
  self->connection_id = g_signal_connect (self->engine, "connection",
                                          G_CALLBACK (on_engine_connection), self);
  /* The main namespace always exists. */
  g_object_unref (socket_io_server_of (self, "/"));
}

static void
socket_io_server_dispose (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  if (self->connection_id != 0)
    {
      g_signal_handler_disconnect (self->engine, self->connection_id);
      self->connection_id = 0;
    }
  G_OBJECT_CLASS (socket_io_server_parent_class)->dispose (object);
}

static void
socket_io_server_finalize (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  g_hash_table_unref (self->namespaces);
  g_ptr_array_unref (self->patterns);
  if (self->namespace_destroy != NULL)
    self->namespace_destroy (self->namespace_data);
  g_clear_object (&self->engine);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (socket_io_server_parent_class)->finalize (object);
}

static void
socket_io_server_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  switch (prop_id)
    {
    case SERVER_PROP_ENGINE:
      g_value_set_object (value, self->engine);
      break;
    case SERVER_PROP_CONNECT_TIMEOUT:
      g_value_set_uint (value, g_atomic_int_get (&self->connect_timeout));
      break;
    case SERVER_PROP_MAX_NAMESPACES:
      g_value_set_uint (value, g_atomic_int_get (&self->max_namespaces));
      break;
    case SERVER_PROP_MAX_PENDING_ACKS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_pending_acks));
      break;
    case SERVER_PROP_MAX_DYNAMIC:
      g_value_set_uint (value, g_atomic_int_get (&self->max_dynamic));
      break;
    case SERVER_PROP_RECOVERY:
      g_value_set_boolean (value, g_atomic_int_get (&self->recovery));
      break;
    case SERVER_PROP_MAX_DISCONNECTION:
      g_value_set_uint (value, g_atomic_int_get (&self->max_disconnection));
      break;
    case SERVER_PROP_SKIP_MIDDLEWARES:
      g_value_set_boolean (value, g_atomic_int_get (&self->skip_middlewares));
      break;
    case SERVER_PROP_MAX_REC_SESSIONS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_sessions));
      break;
    case SERVER_PROP_MAX_REC_PACKETS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_packets));
      break;
    case SERVER_PROP_MAX_REC_BYTES:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_bytes));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_server_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  switch (prop_id)
    {
    case SERVER_PROP_ENGINE:
      self->engine = g_value_dup_object (value);
      break;
    case SERVER_PROP_CONNECT_TIMEOUT:
      g_atomic_int_set (&self->connect_timeout, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_NAMESPACES:
      g_atomic_int_set (&self->max_namespaces, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_PENDING_ACKS:
      g_atomic_int_set (&self->max_pending_acks, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_DYNAMIC:
      g_atomic_int_set (&self->max_dynamic, g_value_get_uint (value));
      break;
    case SERVER_PROP_RECOVERY:
      g_atomic_int_set (&self->recovery, g_value_get_boolean (value));
      break;
    case SERVER_PROP_MAX_DISCONNECTION:
      g_atomic_int_set (&self->max_disconnection, g_value_get_uint (value));
      break;
    case SERVER_PROP_SKIP_MIDDLEWARES:
      g_atomic_int_set (&self->skip_middlewares, g_value_get_boolean (value));
      break;
    case SERVER_PROP_MAX_REC_SESSIONS:
      g_atomic_int_set (&self->max_rec_sessions, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_REC_PACKETS:
      g_atomic_int_set (&self->max_rec_packets, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_REC_BYTES:
      g_atomic_int_set (&self->max_rec_bytes, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_server_class_init (SocketIOServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = socket_io_server_constructed;
  object_class->dispose = socket_io_server_dispose;
  object_class->finalize = socket_io_server_finalize;
  object_class->get_property = socket_io_server_get_property;
  object_class->set_property = socket_io_server_set_property;

  /**
   * SocketIOServer:engine:
   *
   * The Engine.IO server this server listens on (construct-only).
   */
  server_props[SERVER_PROP_ENGINE] =
    g_param_spec_object ("engine", NULL, NULL, ENGINE_IO_TYPE_SERVER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:connect-timeout:
   *
   * Milliseconds a new Engine.IO session may take to join a namespace
   * before it is closed (the reference's `connectTimeout`); 0: no limit.
   * Read when a session opens. Default 45000.
   */
  server_props[SERVER_PROP_CONNECT_TIMEOUT] =
    g_param_spec_uint ("connect-timeout", NULL, NULL, 0, G_MAXINT, SOCKET_IO_DEFAULT_CONNECT_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-namespaces-per-client:
   *
   * How many namespaces one Engine.IO session may join at once. A CONNECT
   * past it is answered with CONNECT_ERROR `Too many namespaces` and the
   * session is closed. Default 64.
   */
  server_props[SERVER_PROP_MAX_NAMESPACES] =
    g_param_spec_uint ("max-namespaces-per-client", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_NAMESPACES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-pending-acks:
   *
   * How many socket_io_socket_emit_with_ack() calls may wait for their
   * ack on one socket; past it the call fails at once with
   * %G_IO_ERROR_NO_SPACE. Default 1024.
   */
  server_props[SERVER_PROP_MAX_PENDING_ACKS] =
    g_param_spec_uint ("max-pending-acks", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_PENDING_ACKS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-namespaces:
   *
   * How many namespaces may exist before dynamic ones are refused (a
   * client asking for one more gets `Invalid namespace`): clients create
   * dynamic namespaces, and namespaces are never removed. Declared ones
   * (socket_io_server_of()) are not refused. Default 1024.
   */
  server_props[SERVER_PROP_MAX_DYNAMIC] =
    g_param_spec_uint ("max-namespaces", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_DYNAMIC_NAMESPACES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:connection-state-recovery:
   *
   * Connection state recovery (the reference's `connectionStateRecovery`):
   * the CONNECT reply carries a private session id (`pid`); every EVENT
   * sent without ack id and not volatile (broadcasts, and
   * socket_io_socket_emit(), which then goes through the adapter to the
   * socket's own room) gets an offset appended as its last argument (the
   * client sees it as one more argument); a socket that leaves for
   * `transport close`, `transport error`, `ping timeout`, `forced server
   * close` or `server shutting down` is persisted by its adapter, and
   * a client that comes back within
   * #SocketIOServer:max-disconnection-duration with its `pid` and last
   * `offset` in the CONNECT auth gets the same socket id, rooms and data
   * and, after the CONNECT reply, the events it missed
   * (socket_io_socket_get_recovered() is then %TRUE). Protocol v5 only.
   * Set it before engine_io_server_listen(). Default %FALSE.
   */
  server_props[SERVER_PROP_RECOVERY] =
    g_param_spec_boolean ("connection-state-recovery", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-disconnection-duration:
   *
   * Milliseconds a persisted session, and a packet kept for it, stays
   * recoverable (the reference's `maxDisconnectionDuration`). Expired
   * ones are dropped lazily (on the namespace's next broadcast,
   * disconnection or recovery). Default 120000.
   */
  server_props[SERVER_PROP_MAX_DISCONNECTION] =
    g_param_spec_uint ("max-disconnection-duration", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_DISCONNECTION_DURATION,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:skip-middlewares:
   *
   * Whether a recovered socket skips the namespace's middlewares (the
   * reference's `skipMiddlewares`). When they run, the session is
   * restored again once they let the socket in (so what was broadcast
   * meanwhile is sent too); a socket they refuse leaves its session
   * recoverable. Default %TRUE.
   */
  server_props[SERVER_PROP_SKIP_MIDDLEWARES] =
    g_param_spec_boolean ("skip-middlewares", NULL, NULL, TRUE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-sessions:
   *
   * How many persisted sessions the in-memory adapter of one namespace
   * keeps; past it the oldest is dropped (its client then gets a new
   * socket). Default 10000.
   */
  server_props[SERVER_PROP_MAX_REC_SESSIONS] =
    g_param_spec_uint ("max-recovery-sessions", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_SESSIONS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-packets:
   *
   * How many sent packets the in-memory adapter of one namespace keeps
   * for recovery; past it (or past #SocketIOServer:max-recovery-bytes)
   * the oldest is dropped, and a session whose last offset was dropped
   * is not recovered (a new socket instead). Default 10000.
   */
  server_props[SERVER_PROP_MAX_REC_PACKETS] =
    g_param_spec_uint ("max-recovery-packets", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_PACKETS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-bytes:
   *
   * How many bytes (packets, attachments, room names and bookkeeping)
   * the kept packets of one namespace may take. Default 16 MiB.
   */
  server_props[SERVER_PROP_MAX_REC_BYTES] =
    g_param_spec_uint ("max-recovery-bytes", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_BYTES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, SERVER_N_PROPS, server_props);

  /**
   * SocketIOServer::new-namespace:
   * @server: the server
   * @nsp: the namespace just created
   *
   * Emitted when a dynamic namespace (socket_io_server_add_namespace_pattern(),
   * socket_io_server_set_namespace_func()) is created for a client, in
   * that client's session context, before the client joins it: connect
   * the namespace's #SocketIONamespace::connection and add its middlewares
   * here. The CONNECTs of other clients to the same namespace meanwhile
   * (from any thread, this one included if a handler iterates the main
   * context) go on once the handlers have returned, so none skips the
   * middlewares added here; they hold no thread while they wait, however
   * long the handlers take (a client whose session ends meanwhile is
   * forgotten).
   */
  server_signals[SERVER_SIGNAL_NEW_NAMESPACE] =
    g_signal_new ("new-namespace", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, SOCKET_IO_TYPE_NAMESPACE);
}

static void
socket_io_server_init (SocketIOServer *self)
{
  g_mutex_init (&self->lock);
  self->namespaces = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->patterns = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
}

/**
 * socket_io_server_set_namespace_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   decides on undeclared namespaces, or %NULL
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or when the server
 *   is finalized
 *
 * Dynamic namespaces: a CONNECT to an undeclared namespace that no
 * pattern matches asks @func. Set it before engine_io_server_listen();
 * any thread.
 */
void
socket_io_server_set_namespace_func (SocketIOServer        *self,
                                     SocketIONamespaceFunc  func,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy)
{
  GDestroyNotify old_destroy;
  gpointer old_data;

  g_return_if_fail (SOCKET_IO_IS_SERVER (self));
  g_mutex_lock (&self->lock);
  old_destroy = self->namespace_destroy;
  old_data = self->namespace_data;
  self->namespace_func = func;
  self->namespace_data = user_data;
  self->namespace_destroy = destroy;
  g_mutex_unlock (&self->lock);
  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * socket_io_server_add_namespace_pattern:
 * @self: a server
 * @pattern: a Perl-compatible regular expression (anchor it: `^/room-\\d+$`)
 * @error: return location for a #GRegexError
 *
 * Dynamic namespaces: a CONNECT to an undeclared namespace whose name
 * @pattern matches creates it (see #SocketIOServer::new-namespace). Any
 * thread.
 *
 * Returns: %TRUE if @pattern compiled
 */
gboolean
socket_io_server_add_namespace_pattern (SocketIOServer  *self,
                                        const char      *pattern,
                                        GError         **error)
{
  GRegex *regex;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (pattern != NULL, FALSE);
  regex = g_regex_new (pattern, G_REGEX_OPTIMIZE, 0, error);
  if (regex == NULL)
    return FALSE;
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->patterns, regex);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/**
 * socket_io_server_new:
 * @engine: the Engine.IO server to serve Socket.IO on
 *
 * Creates a Socket.IO server on @engine: every Engine.IO session @engine
 * opens from now on is a Socket.IO client: protocol v5 over Engine.IO v4,
 * and protocol v4 (socket.io 2.x clients) over Engine.IO v3 when @engine
 * accepts those (#EngineIOServer:allow-eio3, the reference's
 * `allowEIO3`). The namespace "/" exists from the start.
 *
 * Drop the last reference to the returned server only after
 * engine_io_server_close() (its "connection" handler runs on session
 * threads). Call before engine_io_server_listen().
 *
 * Any thread.
 *
 * Returns: (transfer full): a new server
 */
SocketIOServer *
socket_io_server_new (EngineIOServer *engine)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (engine), NULL);
  return g_object_new (SOCKET_IO_TYPE_SERVER, "engine", engine, NULL);
}

/**
 * socket_io_server_get_engine:
 * @self: a server
 *
 * Any thread.
 *
 * Returns: (transfer none): the Engine.IO server
 */
EngineIOServer *
socket_io_server_get_engine (SocketIOServer *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  return self->engine;
}

/* With the lock held. Returns: (transfer none) */
static SocketIONamespace *
server_of_locked (SocketIOServer *self,
                  const char     *name)
{
  SocketIONamespace *nsp = g_hash_table_lookup (self->namespaces, name);

  if (nsp == NULL)
    {
      nsp = g_object_new (SOCKET_IO_TYPE_NAMESPACE, NULL);
      nsp->name = g_strdup (name);
      nsp->server = self;
      nsp->adapter = socket_io_adapter_new (nsp);
      g_hash_table_insert (self->namespaces, g_strdup (name), nsp);
    }
  return nsp;
}

/**
 * socket_io_server_of:
 * @self: a server
 * @name: the namespace, starting with "/"
 *
 * Returns the namespace @name, creating (declaring) it if needed. Clients
 * may only join declared namespaces; others get CONNECT_ERROR `Invalid
 * namespace`.
 *
 * Any thread.
 *
 * Returns: (transfer full): the namespace
 */
SocketIONamespace *
socket_io_server_of (SocketIOServer *self,
                     const char     *name)
{
  SocketIONamespace *nsp;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  g_return_val_if_fail (name != NULL && name[0] == '/' && strchr (name, ',') == NULL, NULL);

  g_mutex_lock (&self->lock);
  nsp = g_object_ref (server_of_locked (self, name));
  g_mutex_unlock (&self->lock);
  return nsp;
}

/**
 * socket_io_server_lookup_namespace:
 * @self: a server
 * @name: a namespace name
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): the namespace @name if it was
 *   declared with socket_io_server_of(), else %NULL
 */
SocketIONamespace *
socket_io_server_lookup_namespace (SocketIOServer *self,
                                   const char     *name)
{
  SocketIONamespace *nsp;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  g_mutex_lock (&self->lock);
  nsp = g_hash_table_lookup (self->namespaces, name);
  if (nsp != NULL)
    g_object_ref (nsp);
  g_mutex_unlock (&self->lock);
  return nsp;
}

/**
 * socket_io_server_get_connect_timeout:
 * @self: a server
 *
 * Any thread.
 *
 * Returns: #SocketIOServer:connect-timeout
 */
guint
socket_io_server_get_connect_timeout (SocketIOServer *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), 0);
  return g_atomic_int_get (&self->connect_timeout);
}

/**
 * socket_io_server_set_connect_timeout:
 * @self: a server
 * @timeout_ms: milliseconds, 0 for none
 *
 * Sets #SocketIOServer:connect-timeout (for sessions opened afterwards).
 * Any thread.
 */
void
socket_io_server_set_connect_timeout (SocketIOServer *self,
                                      guint           timeout_ms)
{
  g_return_if_fail (SOCKET_IO_IS_SERVER (self));
  g_object_set (self, "connect-timeout", timeout_ms, NULL);
}

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
  g_queue_clear_full (&self->parked, (GDestroyNotify) attempt_unref);
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
  nsp_signals[NSP_SIGNAL_CONNECTION] =
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
    ok = client_send_encoded (socket->client, text, attachments, NULL);
  g_mutex_unlock (&self->lock);
  return ok;
}

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
  data = args_payload (args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_ACK, self->socket->nsp->name, data, self->id,
                                 attachments, error);
  if (packet == NULL)
    return FALSE;
  return client_send_packet (self->socket->client, packet, error);
}

/* ------------------------------------------------------------------ */
/* SocketIOSocket                                                       */
/* ------------------------------------------------------------------ */

static void
ack_result_free (gpointer data)
{
  SioAckResult *result = data;

  json_array_unref (result->args);
  g_ptr_array_unref (result->attachments);
  g_free (result);
}

static void
pending_free (SioPendingAck *pending)
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
static SioPendingAck *
socket_take_pending (SocketIOSocket *self,
                     gint64          id)
{
  SioPendingAck *pending = NULL;

  g_mutex_lock (&self->ack_lock);
  g_hash_table_steal_extended (self->acks, &id, NULL, (gpointer *) &pending);
  g_mutex_unlock (&self->ack_lock);
  return pending;
}

static void
pending_fail (SioPendingAck *pending,
              GIOErrorEnum   code,
              const char    *message)
{
  g_task_return_new_error (pending->task, G_IO_ERROR, code, "%s", message);
  pending_free (pending);
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
  g_clear_pointer (&self->client, client_unref);
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
  socket_signals[SOCKET_SIGNAL_EVENT] =
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
  socket_signals[SOCKET_SIGNAL_DISCONNECTING] =
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
  socket_signals[SOCKET_SIGNAL_DISCONNECT] =
    g_signal_new ("disconnect", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
}

static void
socket_io_socket_init (SocketIOSocket *self)
{
  g_mutex_init (&self->ack_lock);
  self->acks = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, NULL);
}

static SocketIOSocket *
socket_new (SocketIONamespace *nsp,
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
      self->id = generate_id ();
      if (server_recovery_on (c->server))
        self->pid = generate_id ();
    }
  self->nsp = g_object_ref (nsp);
  self->client = client_ref (c);
  self->auth = auth != NULL ? json_node_ref (auth) : NULL;
  return self;
}

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
static void
socket_on_packet (SocketIOSocket *self,
                  SocketIOPacket *packet)
{
  switch (socket_io_packet_get_packet_type (packet))
    {
    case SOCKET_IO_PACKET_EVENT:
      {
        g_autofree char *name = event_name_of (packet);
        g_autoptr(JsonArray) args = array_tail (socket_io_packet_get_data (packet), 1);
        g_autoptr(SocketIOAck) ack = NULL;
        gint64 id = socket_io_packet_get_id (packet);

        if (id != SOCKET_IO_NO_ACK_ID)
          {
            ack = g_object_new (SOCKET_IO_TYPE_ACK, NULL);
            ack->socket = g_object_ref (self);
            ack->id = id;
          }
        g_signal_emit (self, socket_signals[SOCKET_SIGNAL_EVENT], g_quark_try_string (name),
                       name, args, socket_io_packet_get_attachments (packet), ack);
        break;
      }
    case SOCKET_IO_PACKET_ACK:
      {
        SioPendingAck *pending = socket_take_pending (self, socket_io_packet_get_id (packet));
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
        result->args = array_tail (socket_io_packet_get_data (packet), 0);
        result->attachments = g_ptr_array_ref (socket_io_packet_get_attachments (packet));
        g_task_return_pointer (pending->task, result, ack_result_free);
        pending_free (pending);
        break;
      }
    case SOCKET_IO_PACKET_DISCONNECT:
      socket_close (self, "client namespace disconnect");
      break;
    default:
      break;
    }
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
static void
socket_close (SocketIOSocket *self,
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
      g_signal_emit (self->nsp, nsp_signals[NSP_SIGNAL_CONNECTION], 0, self);
      if (self->closing || !g_atomic_int_get (&self->connected))
        return;
    }
  self->closing = TRUE;

  g_signal_emit (self, socket_signals[SOCKET_SIGNAL_DISCONNECTING], 0, reason);

  /* Persisted while the socket is still in its rooms: a broadcast from
   * now on is kept for it (its client tells by the offset what it got). */
  if (self->pid != NULL && server_recovery_on (c->server) && reason_is_recoverable (reason))
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
    pending_fail (g_ptr_array_index (pendings, i), G_IO_ERROR_CLOSED, "Socket disconnected");

  g_signal_emit (self, socket_signals[SOCKET_SIGNAL_DISCONNECT], 0, reason);
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
  data = event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, data,
                                 SOCKET_IO_NO_ACK_ID, attachments, error);
  if (packet == NULL)
    return FALSE;
  if (server_recovery_on (self->nsp->server))
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
  return client_send_packet (self->client, packet, error);
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
  SioPendingAck *pending = socket_take_pending (ref->socket, ref->id);

  if (pending != NULL)
    pending_fail (pending, G_IO_ERROR_TIMED_OUT, "Ack timed out");
  return G_SOURCE_REMOVE;
}

static gboolean
on_ack_cancelled (GCancellable *cancellable,
                  gpointer      data)
{
  SioAckRef *ref = data;
  SioPendingAck *pending = socket_take_pending (ref->socket, ref->id);

  if (pending != NULL)
    pending_fail (pending, G_IO_ERROR_CANCELLED, "Operation was cancelled");
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

  data = event_payload (name, args);
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
      pending_fail (pending, G_IO_ERROR_NOT_CONNECTED, "Socket is disconnected");
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

  if (!client_send_packet (self->client, packet, &error))
    {
      pending = socket_take_pending (self, id);
      if (pending != NULL)
        {
          g_task_return_error (pending->task, g_steal_pointer (&error));
          pending_free (pending);
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
  ack_result_free (ack);
  return args;
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
      /* No list any more: connect_finish() took it (on its thread) after
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
    sockets = client_dup_sockets (c);
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
      client_send_simple (c, SOCKET_IO_PACKET_DISCONNECT, socket->nsp->name, NULL);
      socket_close (socket, "server namespace disconnect");
    }
  if (close_transport)
    client_fail (c, "server namespace disconnect");
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
  data = event_payload (name, args);
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp->name, data,
                                 SOCKET_IO_NO_ACK_ID, attachments, error);
  if (packet == NULL)
    return FALSE;
  text = socket_io_packet_encode (packet, &encoded_attachments);
  recovery = server_recovery_on (self->nsp->server);
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
  check = event_payload (name, args);
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

/* ------------------------------------------------------------------ */
/* SocketIOSession                                                      */
/* ------------------------------------------------------------------ */

struct _SocketIOSession
{
  gatomicrefcount ref_count;
  char           *sid;
  char           *pid;
  char          **rooms;
  JsonNode       *data;              /* nullable, sealed */
  GPtrArray      *missed;            /* GBytes text, then GPtrArray attachments (or NULL) */
};

G_DEFINE_BOXED_TYPE (SocketIOSession, socket_io_session, socket_io_session_ref, socket_io_session_unref)

/**
 * socket_io_session_new:
 * @sid: the socket id
 * @pid: the private session id
 * @rooms: (array zero-terminated=1): the rooms of the socket
 * @data: (nullable): the socket's data (sealed by this call)
 *
 * Creates a session to persist or to restore (for adapters). Any thread.
 *
 * Returns: (transfer full): a new session, without missed packets
 */
SocketIOSession *
socket_io_session_new (const char         *sid,
                       const char         *pid,
                       const char * const *rooms,
                       JsonNode           *data)
{
  SocketIOSession *self;

  g_return_val_if_fail (sid != NULL && pid != NULL && rooms != NULL, NULL);
  self = g_new0 (SocketIOSession, 1);
  g_atomic_ref_count_init (&self->ref_count);
  self->sid = g_strdup (sid);
  self->pid = g_strdup (pid);
  self->rooms = g_strdupv ((char **) rooms);
  if (data != NULL)
    {
      self->data = json_node_ref (data);
      json_node_seal (self->data);
    }
  self->missed = g_ptr_array_new ();
  return self;
}

/**
 * socket_io_session_ref:
 * @self: a session
 *
 * Any thread.
 *
 * Returns: (transfer full): @self
 */
SocketIOSession *
socket_io_session_ref (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

/**
 * socket_io_session_unref:
 * @self: (transfer full): a session
 *
 * Any thread.
 */
void
socket_io_session_unref (SocketIOSession *self)
{
  g_return_if_fail (self != NULL);
  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;
  for (guint i = 0; i < self->missed->len; i += 2)
    {
      g_bytes_unref (g_ptr_array_index (self->missed, i));
      if (g_ptr_array_index (self->missed, i + 1) != NULL)
        g_ptr_array_unref (g_ptr_array_index (self->missed, i + 1));
    }
  g_ptr_array_unref (self->missed);
  g_clear_pointer (&self->data, json_node_unref);
  g_strfreev (self->rooms);
  g_free (self->pid);
  g_free (self->sid);
  g_free (self);
}

/**
 * socket_io_session_get_sid:
 * @self: a session
 *
 * Returns: the socket id
 */
const char *
socket_io_session_get_sid (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->sid;
}

/**
 * socket_io_session_get_pid:
 * @self: a session
 *
 * Returns: the private session id
 */
const char *
socket_io_session_get_pid (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->pid;
}

/**
 * socket_io_session_get_rooms:
 * @self: a session
 *
 * Returns: (transfer none) (array zero-terminated=1): the socket's rooms
 */
const char * const *
socket_io_session_get_rooms (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return (const char * const *) self->rooms;
}

/**
 * socket_io_session_get_data:
 * @self: a session
 *
 * Returns: (transfer none) (nullable): the socket's data (sealed)
 */
JsonNode *
socket_io_session_get_data (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->data;
}

/**
 * socket_io_session_add_missed_packet:
 * @self: a session being restored
 * @text: an encoded packet (its offset included)
 * @attachments: (nullable) (element-type GBytes): its binary messages
 *
 * Adds a packet the client missed, to be sent after the CONNECT reply,
 * in the order added. Only by the thread building the session.
 */
void
socket_io_session_add_missed_packet (SocketIOSession *self,
                                     GBytes          *text,
                                     GPtrArray       *attachments)
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (text != NULL);
  g_ptr_array_add (self->missed, g_bytes_ref (text));
  g_ptr_array_add (self->missed, attachments != NULL && attachments->len > 0
                   ? g_ptr_array_ref (attachments) : NULL);
}

/**
 * socket_io_session_get_n_missed_packets:
 * @self: a session
 *
 * Returns: how many packets were added with socket_io_session_add_missed_packet()
 */
guint
socket_io_session_get_n_missed_packets (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->missed->len / 2;
}

/**
 * socket_io_session_get_missed_packet:
 * @self: a session
 * @index: a packet index, below socket_io_session_get_n_missed_packets()
 * @attachments: (out) (optional) (nullable) (transfer none) (element-type GBytes):
 *   its binary messages, or %NULL
 *
 * Returns: (transfer none): the encoded packet
 */
GBytes *
socket_io_session_get_missed_packet (SocketIOSession  *self,
                                     guint             index,
                                     GPtrArray       **attachments)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (index < self->missed->len / 2, NULL);
  if (attachments != NULL)
    *attachments = g_ptr_array_index (self->missed, 2 * index + 1);
  return g_ptr_array_index (self->missed, 2 * index);
}

static gboolean
server_recovery_on (SocketIOServer *self)
{
  return g_atomic_int_get (&self->recovery) != 0;
}

/* ------------------------------------------------------------------ */
/* SocketIOAdapter: the in-memory adapter                               */
/* ------------------------------------------------------------------ */

/* A persisted session (connection state recovery). */
typedef struct
{
  SocketIOSession *session;
  gint64           at;              /* monotonic, disconnection */
  GList           *link;            /* in session_queue */
} SioStoredSession;

/* A packet kept for recovery, with its offset already appended. */
typedef struct
{
  guint64     offset;
  gint64      at;                   /* monotonic, sent */
  GBytes     *text;
  GPtrArray  *attachments;          /* nullable */
  char      **rooms;
  char      **except;
  gsize       size;                 /* what it takes, counted in packet_bytes */
} SioStoredPacket;

static void
stored_session_free (SioStoredSession *stored)
{
  socket_io_session_unref (stored->session);
  g_free (stored);
}

static void
stored_packet_free (SioStoredPacket *packet)
{
  g_bytes_unref (packet->text);
  g_clear_pointer (&packet->attachments, g_ptr_array_unref);
  g_strfreev (packet->rooms);
  g_strfreev (packet->except);
  g_free (packet);
}

/* With the lock held. */
static void
adapter_drop_session (SocketIOAdapterPrivate *priv,
                      SioStoredSession       *stored)
{
  g_hash_table_remove (priv->sessions, stored->session->pid);
  g_queue_delete_link (&priv->session_queue, stored->link);
  stored_session_free (stored);
}

static void
adapter_drop_oldest_packet (SocketIOAdapterPrivate *priv)
{
  SioStoredPacket *packet = g_queue_pop_head (&priv->packets);

  priv->packet_bytes -= packet->size;
  stored_packet_free (packet);
}

/* With the lock held: drops what expired (lazily: on the namespace's
 * broadcasts, disconnections and recoveries). */
static void
adapter_purge (SocketIOAdapterPrivate *priv)
{
  SocketIOServer *server = priv->nsp != NULL ? priv->nsp->server : NULL;
  gint64 now = g_get_monotonic_time ();
  gint64 max;
  SioStoredSession *stored;
  SioStoredPacket *packet;

  if (server == NULL)
    return;
  max = (gint64) g_atomic_int_get (&server->max_disconnection) * 1000;
  while ((stored = g_queue_peek_head (&priv->session_queue)) != NULL && stored->at + max < now)
    adapter_drop_session (priv, stored);
  while ((packet = g_queue_peek_head (&priv->packets)) != NULL && packet->at + max < now)
    adapter_drop_oldest_packet (priv);
}

static gsize
strv_size (char **strv)
{
  gsize size = sizeof (char *);

  for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
    size += sizeof (char *) + strlen (strv[i]) + 1 + 16;
  return size;
}

/* The EVENT @text (`2[...]`, `51-/nsp,[...]`) with the string @offset
 * appended to its arguments, or NULL for a packet that gets no offset
 * (not an EVENT, or with an ack id). */
static GBytes *
text_with_offset (GBytes     *text,
                  const char *offset)
{
  gsize len, i = 1;
  const char *p = g_bytes_get_data (text, &len);
  GString *out;

  if (len < 2 || (p[0] != '2' && p[0] != '5') || p[len - 1] != ']')
    return NULL;
  if (p[0] == '5')
    {
      while (i < len && g_ascii_isdigit (p[i]))
        i++;
      if (i >= len || p[i] != '-')
        return NULL;
      i++;
    }
  if (i < len && p[i] == '/')
    {
      while (i < len && p[i] != ',')
        i++;
      if (i >= len)
        return NULL;
      i++;
    }
  if (i >= len || p[i] != '[')
    return NULL;    /* an ack id */
  out = g_string_sized_new (len + strlen (offset) + 4);
  g_string_append_len (out, p, (gssize) len - 1);
  g_string_append (out, ",\"");
  g_string_append (out, offset);
  g_string_append (out, "\"]");
  return g_string_free_to_bytes (out);
}

/* With the lock held: numbers, keeps and returns the packet to send
 * (@text with its offset), or NULL to send @text as it is. */
static GBytes *
adapter_keep_packet (SocketIOAdapterPrivate *priv,
                     GBytes                 *text,
                     GPtrArray              *attachments,
                     const char * const     *rooms,
                     const char * const     *except)
{
  SocketIOServer *server = priv->nsp->server;
  char offset[24];
  GBytes *out;
  SioStoredPacket *packet;
  guint max_packets = g_atomic_int_get (&server->max_rec_packets);
  gsize max_bytes = g_atomic_int_get (&server->max_rec_bytes);

  g_snprintf (offset, sizeof offset, "%" G_GUINT64_FORMAT, priv->next_offset);
  out = text_with_offset (text, offset);
  if (out == NULL)
    return NULL;
  packet = g_new0 (SioStoredPacket, 1);
  packet->offset = priv->next_offset++;
  packet->at = g_get_monotonic_time ();
  packet->text = g_bytes_ref (out);
  packet->rooms = g_strdupv ((char **) rooms);
  packet->except = g_strdupv ((char **) except);
  packet->size = sizeof *packet + 64 + g_bytes_get_size (out) + strv_size (packet->rooms) +
    strv_size (packet->except);
  if (attachments != NULL && attachments->len > 0)
    {
      packet->attachments = g_ptr_array_ref (attachments);
      for (guint i = 0; i < attachments->len; i++)
        packet->size += 64 + g_bytes_get_size (g_ptr_array_index (attachments, i));
    }
  g_queue_push_tail (&priv->packets, packet);
  priv->packet_bytes += packet->size;
  /* The oldest go first: a session whose offset went is not recovered. */
  while (priv->packets.length > 0 &&
         (priv->packets.length > max_packets || priv->packet_bytes > max_bytes))
    adapter_drop_oldest_packet (priv);
  return out;
}

static gboolean
strv_intersects (char              **a,
                 const char * const *b)
{
  for (guint i = 0; a != NULL && a[i] != NULL; i++)
    if (b != NULL && g_strv_contains (b, a[i]))
      return TRUE;
  return FALSE;
}

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
  adapter_purge (priv);
  stored = g_hash_table_lookup (priv->sessions, session->pid);
  if (stored != NULL)
    adapter_drop_session (priv, stored);
  while (priv->session_queue.length > 0 && priv->session_queue.length >= max)
    adapter_drop_session (priv, g_queue_peek_head (&priv->session_queue));
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
  adapter_purge (priv);
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
        strv_intersects (out->rooms, (const char * const *) packet->rooms);

      if (included && !strv_intersects (out->rooms, (const char * const *) packet->except))
        socket_io_session_add_missed_packet (out, packet->text, packet->attachments);
    }
  adapter_drop_session (priv, stored);
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
  if (priv->nsp != NULL && server_recovery_on (priv->nsp->server) &&
      !(flags & SOCKET_IO_BROADCAST_VOLATILE))
    {
      adapter_purge (priv);
      kept = adapter_keep_packet (priv, text, attachments, rooms, except);
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
  g_queue_clear_full (&priv->session_queue, (GDestroyNotify) stored_session_free);
  g_queue_clear_full (&priv->packets, (GDestroyNotify) stored_packet_free);
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
