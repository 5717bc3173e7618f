/* socketio-server.h: a Socket.IO (protocol v5) server on an EngineIOServer
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (SOCKET_IO_INSIDE) && !defined (SOCKET_IO_COMPILATION)
#error "Only <socketio/socketio.h> can be included directly."
#endif

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <engineio/engineio.h>
#include <socketio/socketio-version.h>
#include <socketio/socketio-error.h>

G_BEGIN_DECLS

/* Default bounds (see the properties of SocketIOServer). */
#define SOCKET_IO_DEFAULT_CONNECT_TIMEOUT        45000
#define SOCKET_IO_DEFAULT_MAX_NAMESPACES         64
#define SOCKET_IO_DEFAULT_MAX_PENDING_ACKS       1024
#define SOCKET_IO_DEFAULT_MAX_DYNAMIC_NAMESPACES 1024
#define SOCKET_IO_DEFAULT_MAX_DISCONNECTION_DURATION 120000
#define SOCKET_IO_DEFAULT_MAX_RECOVERY_SESSIONS  10000
#define SOCKET_IO_DEFAULT_MAX_RECOVERY_PACKETS   10000
#define SOCKET_IO_DEFAULT_MAX_RECOVERY_BYTES     (16 * 1024 * 1024)

/**
 * SocketIOBroadcastFlags:
 * @SOCKET_IO_BROADCAST_NONE: no flag
 * @SOCKET_IO_BROADCAST_VOLATILE: skip a recipient whose Engine.IO send
 *   queue is not empty (the event may be lost; the reference's `volatile`)
 * @SOCKET_IO_BROADCAST_LOCAL: only this server's sockets (what the
 *   in-memory adapter does anyway; for scale-out adapters)
 * @SOCKET_IO_BROADCAST_COMPRESS: asked-for compression (no effect: the
 *   engine does not compress messages)
 *
 * How a broadcast is delivered (socket_io_broadcast_operator_volatile()...).
 */
typedef enum /*< flags >*/
{
  SOCKET_IO_BROADCAST_NONE     = 0,
  SOCKET_IO_BROADCAST_VOLATILE = 1 << 0,
  SOCKET_IO_BROADCAST_LOCAL    = 1 << 1,
  SOCKET_IO_BROADCAST_COMPRESS = 1 << 2,
} SocketIOBroadcastFlags;

#define SOCKET_IO_TYPE_SERVER (socket_io_server_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIOServer, socket_io_server, SOCKET_IO, SERVER, GObject)

#define SOCKET_IO_TYPE_NAMESPACE (socket_io_namespace_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIONamespace, socket_io_namespace, SOCKET_IO, NAMESPACE, GObject)

#define SOCKET_IO_TYPE_SOCKET (socket_io_socket_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIOSocket, socket_io_socket, SOCKET_IO, SOCKET, GObject)

#define SOCKET_IO_TYPE_ACK (socket_io_ack_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIOAck, socket_io_ack, SOCKET_IO, ACK, GObject)

#define SOCKET_IO_TYPE_BROADCAST_OPERATOR (socket_io_broadcast_operator_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIOBroadcastOperator, socket_io_broadcast_operator, SOCKET_IO, BROADCAST_OPERATOR, GObject)

#define SOCKET_IO_TYPE_MIDDLEWARE_CALL (socket_io_middleware_call_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIOMiddlewareCall, socket_io_middleware_call, SOCKET_IO, MIDDLEWARE_CALL, GObject)

/**
 * SocketIOSession:
 *
 * The state of a socket kept for connection state recovery: its id, its
 * private session id (pid), its rooms, its data and, once restored, the
 * encoded packets it missed. Reference-counted; built by one thread and
 * then only read (any thread).
 */
typedef struct _SocketIOSession SocketIOSession;

#define SOCKET_IO_TYPE_SESSION (socket_io_session_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
GType              socket_io_session_get_type          (void) G_GNUC_CONST;
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOSession   *socket_io_session_new               (const char          *sid,
                                                        const char          *pid,
                                                        const char * const  *rooms,
                                                        JsonNode            *data);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOSession   *socket_io_session_ref               (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_session_unref             (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
const char        *socket_io_session_get_sid           (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
const char        *socket_io_session_get_pid           (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
const char * const *socket_io_session_get_rooms        (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
JsonNode          *socket_io_session_get_data          (SocketIOSession     *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_session_add_missed_packet (SocketIOSession     *self,
                                                        GBytes              *text,
                                                        GPtrArray           *attachments);
SOCKET_IO_AVAILABLE_IN_ALL
guint              socket_io_session_get_n_missed_packets (SocketIOSession  *self);
SOCKET_IO_AVAILABLE_IN_ALL
GBytes            *socket_io_session_get_missed_packet (SocketIOSession     *self,
                                                        guint                index,
                                                        GPtrArray          **attachments);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SocketIOSession, socket_io_session_unref)

#define SOCKET_IO_TYPE_ADAPTER (socket_io_adapter_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (SocketIOAdapter, socket_io_adapter, SOCKET_IO, ADAPTER, GObject)

/**
 * SocketIOAdapterClass:
 * @parent_class: the parent class
 * @add_all: adds socket @sid to every room of @rooms
 * @del: removes socket @sid from @room
 * @del_all: removes socket @sid from every room
 * @socket_rooms: the rooms of socket @sid (a new %NULL-terminated array)
 * @sockets: the ids of the local sockets in any of @rooms (every socket
 *   when @rooms is empty) and in none of @except (a new %NULL-terminated
 *   array)
 * @broadcast: sends an encoded packet (@text then @attachments as binary
 *   messages) to every local socket in any of @rooms (every socket of the
 *   namespace when @rooms is empty) and in none of @except, as @flags
 *   say; must deliver concurrent broadcasts to every recipient in one
 *   order. With connection state recovery on, the in-memory adapter
 *   appends an offset to every EVENT without ack id that is not
 *   volatile and keeps it for the sessions persisted
 * @persist_session: keeps @session (a socket that left for a recoverable
 *   reason: `transport close`, `ping timeout`...) so that its client may
 *   recover it for #SocketIOServer:max-disconnection-duration
 * @restore_session: takes back the session @pid if it did not expire and
 *   every packet after @offset is still kept; returns it with the
 *   packets it missed (socket_io_session_add_missed_packet()), or %NULL
 * @add_sockets: makes every socket in any of @rooms (every socket when
 *   @rooms is empty) and in none of @except join every room of @join:
 *   the reference's `addSockets()`. The in-memory adapter does it for the
 *   local sockets; a scale-out adapter also asks the other nodes unless
 *   @flags has %SOCKET_IO_BROADCAST_LOCAL
 * @del_sockets: the same, leaving every room of @leave (`delSockets()`)
 * @disconnect_sockets: the same, disconnecting the sockets
 *   (`disconnectSockets()`), each in its own context;
 *   @close_transport as for socket_io_socket_disconnect()
 *
 * The class of the room registry of a namespace. The base class is the
 * in-memory adapter; a scale-out adapter (Redis...) overrides the
 * virtual functions, chains up for the local part, and forwards to other
 * nodes. Every virtual function may be called from any thread.
 */
struct _SocketIOAdapterClass
{
  GObjectClass parent_class;

  void     (*add_all)      (SocketIOAdapter    *self,
                            const char         *sid,
                            const char * const *rooms);
  void     (*del)          (SocketIOAdapter    *self,
                            const char         *sid,
                            const char         *room);
  void     (*del_all)      (SocketIOAdapter    *self,
                            const char         *sid);
  char   **(*socket_rooms) (SocketIOAdapter    *self,
                            const char         *sid);
  guint    (*broadcast)    (SocketIOAdapter    *self,
                            GBytes             *text,
                            GPtrArray          *attachments,
                            const char * const *rooms,
                            const char * const *except,
                            SocketIOBroadcastFlags flags);
  char   **(*sockets)      (SocketIOAdapter    *self,
                            const char * const *rooms,
                            const char * const *except);
  void     (*persist_session) (SocketIOAdapter *self,
                               SocketIOSession *session);
  SocketIOSession *(*restore_session) (SocketIOAdapter *self,
                                       const char      *pid,
                                       const char      *offset);
  void     (*add_sockets)  (SocketIOAdapter    *self,
                            const char * const *rooms,
                            const char * const *except,
                            SocketIOBroadcastFlags flags,
                            const char * const *join);
  void     (*del_sockets)  (SocketIOAdapter    *self,
                            const char * const *rooms,
                            const char * const *except,
                            SocketIOBroadcastFlags flags,
                            const char * const *leave);
  void     (*disconnect_sockets) (SocketIOAdapter    *self,
                                  const char * const *rooms,
                                  const char * const *except,
                                  SocketIOBroadcastFlags flags,
                                  gboolean            close_transport);

  /*< private >*/
  gpointer padding[2];
};

/**
 * SocketIOMiddlewareFunc:
 * @nsp: the namespace being joined
 * @socket: the socket that would join (not connected yet): its auth
 *   (socket_io_socket_get_auth()) and handshake
 *   (socket_io_socket_get_handshake()) are set
 * @error_data: (out) (optional) (nullable) (transfer full): the `data`
 *   member of the CONNECT_ERROR packet when refusing, or leave %NULL
 * @user_data: the data given to socket_io_namespace_use()
 * @error: return location for the refusal: its message is the
 *   CONNECT_ERROR's `message`
 *
 * Decides whether @socket may join @nsp. Runs in the socket's context (its
 * Engine.IO session's), before #SocketIONamespace::connection, in the
 * order the middlewares were added; the first refusal stops.
 *
 * Returns: %TRUE to let the socket in, %FALSE (with @error set) to refuse
 */
typedef gboolean (*SocketIOMiddlewareFunc) (SocketIONamespace  *nsp,
                                            SocketIOSocket     *socket,
                                            JsonNode          **error_data,
                                            gpointer            user_data,
                                            GError            **error);

/**
 * SocketIOAsyncMiddlewareFunc:
 * @nsp: the namespace being joined
 * @socket: the socket that would join (not connected yet)
 * @call: answer it with socket_io_middleware_call_next() or
 *   socket_io_middleware_call_refuse() (keep a ref to answer later)
 * @user_data: the data given to socket_io_namespace_use_async()
 *
 * An asynchronous middleware; it runs in the socket's context.
 */
typedef void (*SocketIOAsyncMiddlewareFunc) (SocketIONamespace      *nsp,
                                             SocketIOSocket         *socket,
                                             SocketIOMiddlewareCall *call,
                                             gpointer                user_data);

/**
 * SocketIONamespaceFunc:
 * @server: the server
 * @name: the namespace a client asks for, not declared yet
 * @auth: (nullable): the CONNECT packet's auth payload
 * @user_data: the data given to socket_io_server_set_namespace_func()
 *
 * Decides whether an undeclared namespace may be created for a client
 * (dynamic namespaces). Runs in the client's session context.
 *
 * Returns: %TRUE to create the namespace (then #SocketIOServer::new-namespace
 *   is emitted and the client joins it), %FALSE for `Invalid namespace`
 */
typedef gboolean (*SocketIONamespaceFunc) (SocketIOServer *server,
                                           const char     *name,
                                           JsonNode       *auth,
                                           gpointer        user_data);

/* SocketIOServer */
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOServer    *socket_io_server_new                (EngineIOServer      *engine);
SOCKET_IO_AVAILABLE_IN_ALL
EngineIOServer    *socket_io_server_get_engine         (SocketIOServer      *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIONamespace *socket_io_server_of                 (SocketIOServer      *self,
                                                        const char          *name);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIONamespace *socket_io_server_lookup_namespace   (SocketIOServer      *self,
                                                        const char          *name);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_server_set_namespace_func (SocketIOServer      *self,
                                                        SocketIONamespaceFunc func,
                                                        gpointer             user_data,
                                                        GDestroyNotify       destroy);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_server_add_namespace_pattern (SocketIOServer   *self,
                                                        const char          *pattern,
                                                        GError             **error);
SOCKET_IO_AVAILABLE_IN_ALL
guint              socket_io_server_get_connect_timeout (SocketIOServer     *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_server_set_connect_timeout (SocketIOServer     *self,
                                                         guint               timeout_ms);

/* SocketIONamespace */
SOCKET_IO_AVAILABLE_IN_ALL
const char        *socket_io_namespace_get_name        (SocketIONamespace   *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOServer    *socket_io_namespace_get_server      (SocketIONamespace   *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOAdapter   *socket_io_namespace_get_adapter     (SocketIONamespace   *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_namespace_set_adapter     (SocketIONamespace   *self,
                                                        SocketIOAdapter     *adapter);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_namespace_use             (SocketIONamespace   *self,
                                                        SocketIOMiddlewareFunc func,
                                                        gpointer             user_data,
                                                        GDestroyNotify       destroy);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_namespace_use_async       (SocketIONamespace   *self,
                                                        SocketIOAsyncMiddlewareFunc func,
                                                        gpointer             user_data,
                                                        GDestroyNotify       destroy);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_middleware_call_next      (SocketIOMiddlewareCall *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_middleware_call_refuse    (SocketIOMiddlewareCall *self,
                                                        const char          *message,
                                                        JsonNode            *data);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOSocket    *socket_io_middleware_call_get_socket (SocketIOMiddlewareCall *self);
SOCKET_IO_AVAILABLE_IN_ALL
GPtrArray         *socket_io_namespace_get_sockets     (SocketIONamespace   *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOSocket    *socket_io_namespace_lookup_socket   (SocketIONamespace   *self,
                                                        const char          *id);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_namespace_broadcast (SocketIONamespace *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_namespace_to      (SocketIONamespace   *self,
                                                        const char          *room);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_namespace_emit            (SocketIONamespace   *self,
                                                        const char          *name,
                                                        JsonArray           *args,
                                                        GPtrArray           *attachments,
                                                        GError             **error);

/* SocketIOSocket */
SOCKET_IO_AVAILABLE_IN_ALL
const char        *socket_io_socket_get_id             (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIONamespace *socket_io_socket_get_namespace      (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
EngineIOSocket    *socket_io_socket_get_engine_socket  (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
JsonNode          *socket_io_socket_get_auth           (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
EngineIOHandshake *socket_io_socket_get_handshake      (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
GMainContext      *socket_io_socket_get_context        (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_socket_is_connected       (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_socket_get_recovered      (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
JsonNode          *socket_io_socket_dup_data           (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_socket_set_data           (SocketIOSocket      *self,
                                                        JsonNode            *data);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_socket_emit               (SocketIOSocket      *self,
                                                        const char          *name,
                                                        JsonArray           *args,
                                                        GPtrArray           *attachments,
                                                        GError             **error);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_socket_emit_with_ack      (SocketIOSocket      *self,
                                                        const char          *name,
                                                        JsonArray           *args,
                                                        GPtrArray           *attachments,
                                                        guint                timeout_ms,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
SOCKET_IO_AVAILABLE_IN_ALL
JsonArray         *socket_io_socket_emit_with_ack_finish (SocketIOSocket    *self,
                                                        GAsyncResult        *result,
                                                        GPtrArray          **attachments,
                                                        GError             **error);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_socket_join               (SocketIOSocket      *self,
                                                        const char          *room);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_socket_leave              (SocketIOSocket      *self,
                                                        const char          *room);
SOCKET_IO_AVAILABLE_IN_ALL
char             **socket_io_socket_get_rooms          (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_socket_broadcast  (SocketIOSocket      *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_socket_to         (SocketIOSocket      *self,
                                                        const char          *room);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_socket_disconnect         (SocketIOSocket      *self,
                                                        gboolean             close_transport);

/* SocketIOAck */
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_ack_send                  (SocketIOAck         *self,
                                                        JsonArray           *args,
                                                        GPtrArray           *attachments,
                                                        GError             **error);
SOCKET_IO_AVAILABLE_IN_ALL
gint64             socket_io_ack_get_id                (SocketIOAck         *self);

/* SocketIOBroadcastOperator */
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_broadcast_operator_to     (SocketIOBroadcastOperator *self,
                                                                const char                *room);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_broadcast_operator_except (SocketIOBroadcastOperator *self,
                                                                const char                *room);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_broadcast_operator_volatile (SocketIOBroadcastOperator *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_broadcast_operator_local    (SocketIOBroadcastOperator *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOBroadcastOperator *socket_io_broadcast_operator_compress (SocketIOBroadcastOperator *self,
                                                                  gboolean                   compress);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_broadcast_operator_emit   (SocketIOBroadcastOperator *self,
                                                        const char          *name,
                                                        JsonArray           *args,
                                                        GPtrArray           *attachments,
                                                        guint               *recipients,
                                                        GError             **error);

SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_broadcast_operator_emit_with_ack (SocketIOBroadcastOperator *self,
                                                               const char                *name,
                                                               JsonArray                 *args,
                                                               GPtrArray                 *attachments,
                                                               guint                      timeout_ms,
                                                               GCancellable              *cancellable,
                                                               GAsyncReadyCallback        callback,
                                                               gpointer                   user_data);
SOCKET_IO_AVAILABLE_IN_ALL
GPtrArray         *socket_io_broadcast_operator_emit_with_ack_finish (SocketIOBroadcastOperator *self,
                                                                      GAsyncResult              *result,
                                                                      guint                     *missing,
                                                                      GError                   **error);
SOCKET_IO_AVAILABLE_IN_ALL
GPtrArray         *socket_io_broadcast_operator_emit_with_ack_finish_full (SocketIOBroadcastOperator *self,
                                                                           GAsyncResult              *result,
                                                                           GPtrArray                **attachments,
                                                                           guint                     *missing,
                                                                           GError                   **error);
SOCKET_IO_AVAILABLE_IN_ALL
GPtrArray         *socket_io_broadcast_operator_fetch_sockets (SocketIOBroadcastOperator *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_broadcast_operator_sockets_join  (SocketIOBroadcastOperator *self,
                                                               const char                *room);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_broadcast_operator_sockets_leave (SocketIOBroadcastOperator *self,
                                                               const char                *room);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_broadcast_operator_disconnect_sockets (SocketIOBroadcastOperator *self,
                                                                    gboolean                   close_transport);

/* SocketIOAdapter */
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOAdapter   *socket_io_adapter_new               (SocketIONamespace   *nsp);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIONamespace *socket_io_adapter_get_namespace     (SocketIOAdapter     *self);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_add_all           (SocketIOAdapter     *self,
                                                        const char          *sid,
                                                        const char * const  *rooms);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_del               (SocketIOAdapter     *self,
                                                        const char          *sid,
                                                        const char          *room);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_del_all           (SocketIOAdapter     *self,
                                                        const char          *sid);
SOCKET_IO_AVAILABLE_IN_ALL
char             **socket_io_adapter_socket_rooms      (SocketIOAdapter     *self,
                                                        const char          *sid);
SOCKET_IO_AVAILABLE_IN_ALL
char             **socket_io_adapter_sockets           (SocketIOAdapter     *self,
                                                        const char * const  *rooms,
                                                        const char * const  *except);
SOCKET_IO_AVAILABLE_IN_ALL
guint              socket_io_adapter_broadcast         (SocketIOAdapter     *self,
                                                        GBytes              *text,
                                                        GPtrArray           *attachments,
                                                        const char * const  *rooms,
                                                        const char * const  *except,
                                                        SocketIOBroadcastFlags flags);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_persist_session   (SocketIOAdapter     *self,
                                                        SocketIOSession     *session);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIOSession   *socket_io_adapter_restore_session   (SocketIOAdapter     *self,
                                                        const char          *pid,
                                                        const char          *offset);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_add_sockets       (SocketIOAdapter     *self,
                                                        const char * const  *rooms,
                                                        const char * const  *except,
                                                        SocketIOBroadcastFlags flags,
                                                        const char * const  *join);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_del_sockets       (SocketIOAdapter     *self,
                                                        const char * const  *rooms,
                                                        const char * const  *except,
                                                        SocketIOBroadcastFlags flags,
                                                        const char * const  *leave);
SOCKET_IO_AVAILABLE_IN_ALL
void               socket_io_adapter_disconnect_sockets (SocketIOAdapter    *self,
                                                        const char * const  *rooms,
                                                        const char * const  *except,
                                                        SocketIOBroadcastFlags flags,
                                                        gboolean             close_transport);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean           socket_io_namespace_send_encoded    (SocketIONamespace   *self,
                                                        const char          *sid,
                                                        GBytes              *text,
                                                        GPtrArray           *attachments,
                                                        SocketIOBroadcastFlags flags);

G_END_DECLS
