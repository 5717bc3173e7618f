/* socketio-server-internal.h: what the Socket.IO server's files share
 *
 * The structs of the server's objects, their private types, and the
 * functions the files call across. Only the server library's
 * socketio-*.c files include it. The files, each calling only those
 * listed before it (tests/check-file-cycles.py checks there is no cycle):
 * - socketio-client.c: a client (an Engine.IO session): sends, failure,
 *   connect timeout; CONNECT attempts' references; payload helpers;
 * - socketio-recovery.c: SocketIOSession, the in-memory adapter's
 *   persisted sessions and kept packets;
 * - socketio-socket.c: SocketIOSocket and SocketIOAck;
 * - socketio-namespace.c: SocketIONamespace;
 * - socketio-adapter.c: SocketIOAdapter, and a socket's rooms, disconnect
 *   and close (they call each other);
 * - socketio-socket-emit.c: a socket's incoming events and its emits;
 * - socketio-broadcast.c: SocketIOBroadcastOperator;
 * - socketio-connect.c: a CONNECT through the middlewares to `connection`;
 * - socketio-server.c: SocketIOServer, dynamic namespaces, each client's
 *   packets and CONNECTs.
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
#pragma once

#include "socketio/socketio.h"
#include "socketio-packet-private.h"

G_BEGIN_DECLS

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
                                     * sessions go on (socket_io_connect_attempt_abandon() drops the
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
                                     * announce_connection_cb() or socket_io_socket_close()) */
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

enum { NSP_SIGNAL_CONNECTION, NSP_N_SIGNALS };

enum { SOCKET_SIGNAL_EVENT, SOCKET_SIGNAL_DISCONNECTING, SOCKET_SIGNAL_DISCONNECT, SOCKET_N_SIGNALS };

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

struct _SocketIOSession
{
  gatomicrefcount ref_count;
  char           *sid;
  char           *pid;
  char          **rooms;
  JsonNode       *data;              /* nullable, sealed */
  GPtrArray      *missed;            /* GBytes text, then GPtrArray attachments (or NULL) */
};

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

/* socketio-adapter.c */
void socket_io_socket_close (SocketIOSocket *self,
                             const char     *reason);

/* socketio-client.c */
char *socket_io_generate_id (void);
JsonNode *socket_io_event_payload (const char *name,
                                   JsonArray  *args);
JsonNode *socket_io_args_payload (JsonArray *args);
JsonArray *socket_io_array_tail (JsonNode *node,
                                 guint     first);
JsonNode *socket_io_error_object (const char *message,
                                  JsonNode   *data);
SioClient *socket_io_client_ref (SioClient *c);
void socket_io_client_unref (SioClient *c);
gboolean socket_io_client_send_encoded (SioClient  *c,
                                        GBytes     *text,
                                        GPtrArray  *attachments,
                                        GError    **error);
gboolean socket_io_client_send_packet (SioClient       *c,
                                       SocketIOPacket  *packet,
                                       GError         **error);
void socket_io_client_send_simple (SioClient          *c,
                                   SocketIOPacketType  type,
                                   const char         *nsp,
                                   JsonNode           *data);
void socket_io_client_fail (SioClient  *c,
                            const char *reason);
void socket_io_client_cancel_connect_timer (SioClient *c);
GPtrArray *socket_io_client_dup_sockets (SioClient *c);
gboolean socket_io_client_on_connect_timeout (gpointer data);
SioConnectAttempt *socket_io_connect_attempt_ref (SioConnectAttempt *attempt);
void socket_io_connect_attempt_unref (SioConnectAttempt *attempt);
void socket_io_connect_attempt_abandon (gpointer data);

/* socketio-connect.c */
void socket_io_connect_finish (SioConnectAttempt *attempt,
                               gboolean           recovery_locked);
void socket_io_connect_run (SioConnectAttempt *attempt);

/* socketio-socket-emit.c */
void socket_io_socket_on_packet (SocketIOSocket *self,
                                 SocketIOPacket *packet);

/* socketio-namespace.c */
extern guint socket_io_namespace_signals[NSP_N_SIGNALS];

/* socketio-recovery.c */
/* Inline: read on every emit and broadcast (static, and inlined, in
 * socketio-server.c before the split). */
static inline gboolean
socket_io_server_recovery_on (SocketIOServer *self)
{
  return g_atomic_int_get (&self->recovery) != 0;
}
void socket_io_stored_session_free (SioStoredSession *stored);
void socket_io_stored_packet_free (SioStoredPacket *packet);
void socket_io_adapter_drop_session (SocketIOAdapterPrivate *priv,
                                     SioStoredSession       *stored);
void socket_io_adapter_purge (SocketIOAdapterPrivate *priv);
GBytes *socket_io_adapter_keep_packet (SocketIOAdapterPrivate *priv,
                                       GBytes                 *text,
                                       GPtrArray              *attachments,
                                       const char * const     *rooms,
                                       const char * const     *except);
gboolean socket_io_strv_intersects (char              **a,
                                    const char * const *b);

/* socketio-socket.c */
extern guint socket_io_socket_signals[SOCKET_N_SIGNALS];
void socket_io_ack_result_free (gpointer data);
void socket_io_pending_ack_free (SioPendingAck *pending);
SioPendingAck *socket_io_socket_take_pending (SocketIOSocket *self,
                                              gint64          id);
void socket_io_pending_ack_fail (SioPendingAck *pending,
                                 GIOErrorEnum   code,
                                 const char    *message);
SocketIOSocket *socket_io_socket_new (SocketIONamespace *nsp,
                                      SioClient         *c,
                                      JsonNode          *auth,
                                      SocketIOSession   *session);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SioConnectAttempt, socket_io_connect_attempt_unref)

G_END_DECLS
