/* socketio-redis-emitter.c: emits into a Socket.IO cluster through Redis
 * from a process that serves no clients, on the wire of npm
 * @socket.io/redis-emitter 5.x (lib/index.ts):
 *
 * - emit(): PUBLISH on `<key>#<nsp>#` (`<key>#<nsp>#<room>#` when exactly
 *   one room is addressed) of msgpack `["emitter", packet, opts]`, packet
 *   being socket.io-parser's `{type: 2, data: [name, ...args], nsp}` with
 *   binaries as msgpack bin, opts `{rooms, flags, except}`;
 * - socketsJoin/socketsLeave/disconnectSockets: PUBLISH on
 *   `<key>-request#<nsp>#` of JSON `{type: 2|3|4, opts: {rooms, except},
 *   rooms | close}` (no uid, as the reference);
 * - serverSideEmit: JSON `{uid: "emitter", type: 6, data: [args...]}` on
 *   the request channel (no acks, as the reference).
 *
 * Threads: every call is synchronous, on the calling thread, through
 * hiredis's blocking API with a timeout on connect, read and write. The
 * emitters made from one another (of(), to(), except()...) share one
 * connection (RedisEmitterConn), whose mutex serializes the commands:
 * any thread may use any of them. Immutable once made, apart from that
 * connection.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio/socketio-redis-emitter.h"
#include "socketio-packet-private.h"
#include "socketio-redis-private.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <string.h>

#define EMITTER_UID                "emitter"
#define EMITTER_DEFAULT_TIMEOUT_MS 5000

enum {
  REQ_REMOTE_JOIN = 2,
  REQ_REMOTE_LEAVE = 3,
  REQ_REMOTE_DISCONNECT = 4,
  REQ_SERVER_SIDE_EMIT = 6,
};

typedef struct
{
  gatomicrefcount  ref;
  char            *host;
  int              port;
  int              db;
  char            *key;
  guint            timeout_ms;   /* atomic */
  GMutex           mutex;        /* guards ctx */
  redisContext    *ctx;          /* NULL: not connected */
} RedisEmitterConn;

struct _SocketIORedisEmitter
{
  GObject           parent_instance;

  RedisEmitterConn *conn;
  char             *nsp;
  char             *broadcast_channel;   /* <key>#<nsp># */
  char             *request_channel;     /* <key>-request#<nsp># */
  GPtrArray        *rooms;               /* distinct, in order; NULL-terminated */
  GPtrArray        *except;              /* distinct, in order; NULL-terminated */
  gboolean          volatile_flag;
  gint              compress;            /* -1: not set (no member), else 0/1 */
};

G_DEFINE_FINAL_TYPE (SocketIORedisEmitter, socket_io_redis_emitter, G_TYPE_OBJECT)

static RedisEmitterConn *
conn_ref (RedisEmitterConn *conn)
{
  g_atomic_ref_count_inc (&conn->ref);
  return conn;
}

static void
conn_unref (RedisEmitterConn *conn)
{
  if (!g_atomic_ref_count_dec (&conn->ref))
    return;
  g_clear_pointer (&conn->ctx, redisFree);
  g_mutex_clear (&conn->mutex);
  g_free (conn->host);
  g_free (conn->key);
  g_free (conn);
}

static void
set_redis_error (GError     **error,
                 redisContext *ctx,
                 const char   *what)
{
  /* hiredis reports a timed out connect as ETIMEDOUT ("Connection timed
   * out"), a read or write past its timeout as EAGAIN ("Resource
   * temporarily unavailable"; hiredis 1.x: "timeout"). */
  const char *why = ctx != NULL ? ctx->errstr : "out of memory";
  gboolean timed_out = ctx != NULL && ctx->err == REDIS_ERR_IO &&
                       (strstr (why, "timed out") != NULL || strstr (why, "temporarily unavailable") != NULL ||
                        strstr (why, "timeout") != NULL);

#ifdef REDIS_ERR_TIMEOUT
  if (ctx != NULL && ctx->err == REDIS_ERR_TIMEOUT)
    timed_out = TRUE;
#endif

  g_set_error (error, G_IO_ERROR, timed_out ? G_IO_ERROR_TIMED_OUT : G_IO_ERROR_FAILED,
               "Redis emitter: %s: %s", what, why);
}

/* conn->mutex held. */
static gboolean
conn_ensure (RedisEmitterConn  *conn,
             GError           **error)
{
  guint timeout_ms = g_atomic_int_get (&conn->timeout_ms);
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  redisContext *ctx;

  if (conn->ctx != NULL)
    return TRUE;
  ctx = redisConnectWithTimeout (conn->host, conn->port, tv);
  if (ctx == NULL || ctx->err)
    {
      g_autofree char *what = g_strdup_printf ("cannot connect to %s:%d", conn->host, conn->port);

      set_redis_error (error, ctx, what);
      g_clear_pointer (&ctx, redisFree);
      return FALSE;
    }
  if (redisSetTimeout (ctx, tv) != REDIS_OK)
    {
      set_redis_error (error, ctx, "cannot set the timeout");
      redisFree (ctx);
      return FALSE;
    }
  if (conn->db != 0)
    {
      redisReply *reply = redisCommand (ctx, "SELECT %d", conn->db);

      if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        {
          if (reply != NULL)
            g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis emitter: SELECT %d: %s",
                         conn->db, reply->str);
          else
            set_redis_error (error, ctx, "SELECT");
          g_clear_pointer (&reply, freeReplyObject);
          redisFree (ctx);
          return FALSE;
        }
      freeReplyObject (reply);
    }
  conn->ctx = ctx;
  return TRUE;
}

/* Any thread: blocks for at most the timeout per step (connect, SELECT,
 * PUBLISH). A connection broken meanwhile is dropped (the next call makes
 * a new one); the publication is not retried (it may have been made). */
static gboolean
conn_publish (RedisEmitterConn  *conn,
              const char        *channel,
              const void        *data,
              gsize              size,
              GError           **error)
{
  g_autoptr(GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new (&conn->mutex);
  redisReply *reply;

  if (!conn_ensure (conn, error))
    return FALSE;
  reply = redisCommand (conn->ctx, "PUBLISH %b %b", channel, strlen (channel), data, size);
  if (reply == NULL)
    {
      g_autofree char *what = g_strdup_printf ("PUBLISH on %s", channel);

      set_redis_error (error, conn->ctx, what);
      g_clear_pointer (&conn->ctx, redisFree);
      return FALSE;
    }
  if (reply->type == REDIS_REPLY_ERROR)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis emitter: PUBLISH on %s: %s",
                   channel, reply->str);
      freeReplyObject (reply);
      return FALSE;
    }
  if (reply->type != REDIS_REPLY_INTEGER)
    {
      /* Redis answers PUBLISH with the number of receivers: anything else
       * is not Redis (or not in step with us), and the publication was
       * not made. The connection is dropped. */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "Redis emitter: PUBLISH on %s: unexpected reply (type %d): not Redis?",
                   channel, reply->type);
      freeReplyObject (reply);
      g_clear_pointer (&conn->ctx, redisFree);
      return FALSE;
    }
  freeReplyObject (reply);
  return TRUE;
}

static gboolean
publish_json (SocketIORedisEmitter  *self,
              JsonBuilder           *builder,
              GError               **error)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;
  gsize length;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &length);
  return conn_publish (self->conn, self->request_channel, text, length, error);
}

/* ------------------------------------------------------------------ */
/* GObject                                                              */
/* ------------------------------------------------------------------ */

static void
socket_io_redis_emitter_finalize (GObject *object)
{
  SocketIORedisEmitter *self = SOCKET_IO_REDIS_EMITTER (object);

  g_clear_pointer (&self->conn, conn_unref);
  g_free (self->nsp);
  g_free (self->broadcast_channel);
  g_free (self->request_channel);
  g_ptr_array_unref (self->rooms);
  g_ptr_array_unref (self->except);
  G_OBJECT_CLASS (socket_io_redis_emitter_parent_class)->finalize (object);
}

static void
socket_io_redis_emitter_class_init (SocketIORedisEmitterClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = socket_io_redis_emitter_finalize;
}

static void
socket_io_redis_emitter_init (SocketIORedisEmitter *self)
{
  self->rooms = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->rooms, NULL);
  self->except = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (self->except, NULL);
  self->compress = -1;
}

/* A new emitter on @conn for @nsp (a leading "/" added if missing). */
static SocketIORedisEmitter *
emitter_new (RedisEmitterConn *conn,
             const char       *nsp)
{
  SocketIORedisEmitter *self = g_object_new (SOCKET_IO_TYPE_REDIS_EMITTER, NULL);

  self->conn = conn_ref (conn);
  self->nsp = nsp[0] == '/' ? g_strdup (nsp) : g_strconcat ("/", nsp, NULL);
  self->broadcast_channel = g_strconcat (conn->key, "#", self->nsp, "#", NULL);
  self->request_channel = g_strconcat (conn->key, "-request#", self->nsp, "#", NULL);
  return self;
}

static void
copy_rooms (GPtrArray *to,
            GPtrArray *from)
{
  g_ptr_array_set_size (to, 0);
  for (guint i = 0; i + 1 < from->len; i++)
    g_ptr_array_add (to, g_strdup (g_ptr_array_index (from, i)));
  g_ptr_array_add (to, NULL);
}

/* A copy of @self (same connection, namespace, rooms and flags). */
static SocketIORedisEmitter *
emitter_copy (SocketIORedisEmitter *self)
{
  SocketIORedisEmitter *copy = emitter_new (self->conn, self->nsp);

  copy_rooms (copy->rooms, self->rooms);
  copy_rooms (copy->except, self->except);
  copy->volatile_flag = self->volatile_flag;
  copy->compress = self->compress;
  return copy;
}

/* Adds @room to the NULL-terminated set @rooms (a Set in the reference). */
static void
rooms_add (GPtrArray  *rooms,
           const char *room)
{
  for (guint i = 0; i + 1 < rooms->len; i++)
    if (strcmp (g_ptr_array_index (rooms, i), room) == 0)
      return;
  g_ptr_array_insert (rooms, rooms->len - 1, g_strdup (room));
}

/**
 * SocketIORedisEmitter:
 *
 * Emits into a cluster of Socket.IO servers that share rooms and
 * broadcasts through Redis (#SocketIORedisAdapter, or npm
 * `@socket.io/redis-adapter` 8.x), from a process that serves no clients
 * (a script, a worker): the protocol of npm `@socket.io/redis-emitter`
 * 5.x.
 *
 * |[<!-- language="C" -->
 * g_autoptr(SocketIORedisEmitter) emitter = socket_io_redis_emitter_new ("redis://127.0.0.1:6379", NULL, &error);
 * g_autoptr(SocketIORedisEmitter) chat = socket_io_redis_emitter_of (emitter, "/chat");
 * g_autoptr(SocketIORedisEmitter) room = socket_io_redis_emitter_to (chat, "lobby");
 *
 * if (!socket_io_redis_emitter_emit (room, "news", args, NULL, &error))
 *   g_printerr ("%s\n", error->message);
 * ]|
 *
 * Like the reference's, an emitter is immutable: of(), to(), in(),
 * except(), volatile() and compress() return a new one. All emitters made
 * from one share its Redis connection.
 *
 * Threads: every call that publishes is synchronous and blocks the calling
 * thread until Redis answered, at most the timeout per step (connecting,
 * SELECT, PUBLISH; socket_io_redis_emitter_set_timeout()); then it fails
 * with %G_IO_ERROR_TIMED_OUT. Do not call them from a thread that must
 * not block (a server's session context). Any thread may call any method;
 * the commands on one connection are serialized.
 *
 * Delivery: a publication that failed (Redis unreachable, the connection
 * broken) is reported with a #GError and not retried (a PUBLISH whose
 * answer was lost may have been made); the next call connects again. As
 * with any Redis pub/sub, what the nodes do not receive (no node
 * subscribed, a node reconnecting) is lost.
 */

/**
 * socket_io_redis_emitter_new:
 * @url: `redis://HOST[:PORT][/DB]` (the syntax of socket_io_redis_adapter_new())
 * @key: (nullable): the channels' prefix (%NULL: `socket.io`, as the
 *   reference)
 * @error: return location for an invalid @url
 *
 * Creates an emitter for the namespace "/". It connects on its first
 * publication (or socket_io_redis_emitter_connect()), not here. Any
 * thread.
 *
 * Returns: (transfer full) (nullable): the emitter, or %NULL with @error set
 */
SocketIORedisEmitter *
socket_io_redis_emitter_new (const char  *url,
                             const char  *key,
                             GError     **error)
{
  RedisEmitterConn *conn;
  SocketIORedisEmitter *self;
  g_autofree char *host = NULL;
  int port, db;

  g_return_val_if_fail (url != NULL, NULL);
  if (!socket_io_redis_parse_url (url, &host, &port, &db, error))
    return NULL;
  conn = g_new0 (RedisEmitterConn, 1);
  g_atomic_ref_count_init (&conn->ref);
  g_mutex_init (&conn->mutex);
  conn->host = g_steal_pointer (&host);
  conn->port = port;
  conn->db = db;
  conn->key = g_strdup (key != NULL ? key : "socket.io");
  conn->timeout_ms = EMITTER_DEFAULT_TIMEOUT_MS;
  self = emitter_new (conn, "/");
  conn_unref (conn);
  return self;
}

/**
 * socket_io_redis_emitter_connect:
 * @self: an emitter
 * @error: return location for an error (%G_IO_ERROR_TIMED_OUT, or
 *   %G_IO_ERROR_FAILED with Redis's reason)
 *
 * Connects to Redis now if not connected yet (a publication does it
 * anyway), to report an unreachable Redis early. Blocks for at most the
 * timeout per step. Any thread.
 *
 * Returns: %TRUE if connected
 */
gboolean
socket_io_redis_emitter_connect (SocketIORedisEmitter  *self,
                                 GError               **error)
{
  g_autoptr(GMutexLocker) locker = NULL;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  locker = g_mutex_locker_new (&self->conn->mutex);
  return conn_ensure (self->conn, error);
}

/**
 * socket_io_redis_emitter_set_timeout:
 * @self: an emitter
 * @timeout_ms: the longest wait for Redis, per step (connecting, SELECT,
 *   PUBLISH); default 5000, at least 1
 *
 * Sets the timeout of @self's connection (shared by the emitters made
 * from one another), from the next connection on. Any thread.
 */
void
socket_io_redis_emitter_set_timeout (SocketIORedisEmitter *self,
                                     guint                 timeout_ms)
{
  g_return_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self));
  g_atomic_int_set (&self->conn->timeout_ms, MAX (timeout_ms, 1));
}

/**
 * socket_io_redis_emitter_get_timeout:
 * @self: an emitter
 *
 * Any thread.
 *
 * Returns: the timeout in milliseconds
 */
guint
socket_io_redis_emitter_get_timeout (SocketIORedisEmitter *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), 0);
  return g_atomic_int_get (&self->conn->timeout_ms);
}

/**
 * socket_io_redis_emitter_get_namespace:
 * @self: an emitter
 *
 * Any thread.
 *
 * Returns: the namespace @self emits into ("/", "/chat"...)
 */
const char *
socket_io_redis_emitter_get_namespace (SocketIORedisEmitter *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  return self->nsp;
}

/**
 * socket_io_redis_emitter_of:
 * @self: an emitter
 * @nsp: a namespace ("/chat"; "chat" is taken as "/chat")
 *
 * An emitter for @nsp on the same connection, with no rooms or flags (the
 * reference's `emitter.of(nsp)`). Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_of (SocketIORedisEmitter *self,
                            const char           *nsp)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  g_return_val_if_fail (nsp != NULL, NULL);
  return emitter_new (self->conn, nsp);
}

/**
 * socket_io_redis_emitter_to:
 * @self: an emitter
 * @room: a room (a socket's id addresses that socket)
 *
 * An emitter addressing the sockets in @room as well as those @self
 * addresses (the reference's `to(room)`). Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_to (SocketIORedisEmitter *self,
                            const char           *room)
{
  SocketIORedisEmitter *copy;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  g_return_val_if_fail (room != NULL, NULL);
  copy = emitter_copy (self);
  rooms_add (copy->rooms, room);
  return copy;
}

/**
 * socket_io_redis_emitter_in:
 * @self: an emitter
 * @room: a room
 *
 * The same as socket_io_redis_emitter_to(). Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_in (SocketIORedisEmitter *self,
                            const char           *room)
{
  return socket_io_redis_emitter_to (self, room);
}

/**
 * socket_io_redis_emitter_except:
 * @self: an emitter
 * @room: a room
 *
 * An emitter that leaves out the sockets in @room (the reference's
 * `except(room)`). Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_except (SocketIORedisEmitter *self,
                                const char           *room)
{
  SocketIORedisEmitter *copy;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  g_return_val_if_fail (room != NULL, NULL);
  copy = emitter_copy (self);
  rooms_add (copy->except, room);
  return copy;
}

/**
 * socket_io_redis_emitter_volatile:
 * @self: an emitter
 *
 * An emitter whose events may be dropped for a client that is not ready
 * to take them (the `volatile` flag). Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_volatile (SocketIORedisEmitter *self)
{
  SocketIORedisEmitter *copy;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  copy = emitter_copy (self);
  copy->volatile_flag = TRUE;
  return copy;
}

/**
 * socket_io_redis_emitter_compress:
 * @self: an emitter
 * @compress: the `compress` flag
 *
 * An emitter with the `compress` flag set to @compress. Any thread.
 *
 * Returns: (transfer full): a new emitter
 */
SocketIORedisEmitter *
socket_io_redis_emitter_compress (SocketIORedisEmitter *self,
                                  gboolean              compress)
{
  SocketIORedisEmitter *copy;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), NULL);
  copy = emitter_copy (self);
  copy->compress = !!compress;
  return copy;
}

static void
pack_rooms (msgpack_packer *pk,
            GPtrArray      *rooms)
{
  msgpack_pack_array (pk, rooms->len - 1);
  for (guint i = 0; i + 1 < rooms->len; i++)
    socket_io_redis_pack_string (pk, g_ptr_array_index (rooms, i));
}

/**
 * socket_io_redis_emitter_emit:
 * @self: an emitter
 * @name: the event name (not a reserved one: connect, connect_error,
 *   disconnect, disconnecting, newListener, removeListener)
 * @args: (nullable): the arguments (only read: other threads may use
 *   the same at once)
 * @attachments: (nullable) (element-type GBytes): binaries the arguments'
 *   placeholders (`{"_placeholder": true, "num": N}`) refer to; they
 *   travel as msgpack bin, and reach the clients as binary attachments
 * @error: return location for a %SOCKET_IO_ERROR_INVALID event, or a
 *   %G_IO_ERROR from Redis (%G_IO_ERROR_TIMED_OUT past the timeout)
 *
 * Sends the event to every socket @self addresses on every node of the
 * cluster (the reference's `emit()`): PUBLISHes it on the namespace's
 * channel, or on the room's when exactly one room is addressed. Blocks
 * until Redis answered, at most the timeout per step. Any thread.
 *
 * Returns: %TRUE if Redis took the publication
 */
gboolean
socket_io_redis_emitter_emit (SocketIORedisEmitter  *self,
                              const char            *name,
                              JsonArray             *args,
                              GPtrArray             *attachments,
                              GError               **error)
{
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(JsonNode) data = NULL;
  g_autofree char *channel = NULL;
  JsonArray *array;
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  gboolean ok;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  array = json_array_new ();
  json_array_add_string_element (array, name);
  /* Deep: @args is only read. A json_node_copy() would count references
   * to the caller's objects and values without atomics, and the packet
   * seals its tree: two threads emitting the same @args would race, and
   * the caller's objects would stay sealed. */
  for (guint i = 0; args != NULL && i < json_array_get_length (args); i++)
    json_array_add_element (array, socket_io_redis_json_deep_copy (json_array_get_element (args, i)));
  data = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (data, array);
  /* Validates the event as a server's emit does (name, values,
   * placeholders against the attachments). */
  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, self->nsp, data, SOCKET_IO_NO_ACK_ID,
                                 attachments != NULL && attachments->len > 0 ? attachments : NULL,
                                 error);
  if (packet == NULL)
    return FALSE;

  msgpack_sbuffer_init (&sbuf);
  msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_array (&pk, 3);
  socket_io_redis_pack_string (&pk, EMITTER_UID);
  msgpack_pack_map (&pk, 3);
  socket_io_redis_pack_string (&pk, "type");
  msgpack_pack_int (&pk, SOCKET_IO_PACKET_EVENT);   /* 2 even with binaries, as the reference */
  socket_io_redis_pack_string (&pk, "data");
  socket_io_redis_pack_json (&pk, socket_io_packet_get_data (packet), socket_io_packet_get_attachments (packet));
  socket_io_redis_pack_string (&pk, "nsp");
  socket_io_redis_pack_string (&pk, self->nsp);
  msgpack_pack_map (&pk, 3);
  socket_io_redis_pack_string (&pk, "rooms");
  pack_rooms (&pk, self->rooms);
  socket_io_redis_pack_string (&pk, "flags");
  msgpack_pack_map (&pk, (self->volatile_flag ? 1 : 0) + (self->compress >= 0 ? 1 : 0));
  if (self->volatile_flag)
    {
      socket_io_redis_pack_string (&pk, "volatile");
      msgpack_pack_true (&pk);
    }
  if (self->compress >= 0)
    {
      socket_io_redis_pack_string (&pk, "compress");
      if (self->compress)
        msgpack_pack_true (&pk);
      else
        msgpack_pack_false (&pk);
    }
  socket_io_redis_pack_string (&pk, "except");
  pack_rooms (&pk, self->except);

  channel = self->rooms->len == 2
              ? g_strconcat (self->broadcast_channel, (const char *) g_ptr_array_index (self->rooms, 0), "#", NULL)
              : g_strdup (self->broadcast_channel);
  ok = conn_publish (self->conn, channel, sbuf.data, sbuf.size, error);
  msgpack_sbuffer_destroy (&sbuf);
  return ok;
}

static JsonNode *
rooms_node (const char * const *rooms,
            guint               n)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (guint i = 0; i < n && rooms[i] != NULL; i++)
    json_array_add_string_element (array, rooms[i]);
  json_node_take_array (node, array);
  return node;
}

/* {type, opts: {rooms, except}, rooms|close}, as the reference (no uid). */
static gboolean
publish_sockets_request (SocketIORedisEmitter  *self,
                         gint                   type,
                         const char * const    *targets,
                         gboolean               close_transport,
                         GError               **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, type);
  json_builder_set_member_name (builder, "opts");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "rooms");
  json_builder_add_value (builder, rooms_node ((const char * const *) self->rooms->pdata, self->rooms->len - 1));
  json_builder_set_member_name (builder, "except");
  json_builder_add_value (builder, rooms_node ((const char * const *) self->except->pdata, self->except->len - 1));
  json_builder_end_object (builder);
  if (type == REQ_REMOTE_DISCONNECT)
    {
      json_builder_set_member_name (builder, "close");
      json_builder_add_boolean_value (builder, close_transport);
    }
  else
    {
      json_builder_set_member_name (builder, "rooms");
      json_builder_add_value (builder, rooms_node (targets, G_MAXUINT));
    }
  json_builder_end_object (builder);
  return publish_json (self, builder, error);
}

/**
 * socket_io_redis_emitter_sockets_join:
 * @self: an emitter
 * @rooms: (array zero-terminated=1): the rooms to join
 * @error: return location for a %G_IO_ERROR from Redis
 *
 * Makes every socket @self addresses, on every node, join @rooms (the
 * reference's `socketsJoin()`: a REMOTE_JOIN request). Blocks as
 * socket_io_redis_emitter_emit(). Any thread.
 *
 * Returns: %TRUE if Redis took the request
 */
gboolean
socket_io_redis_emitter_sockets_join (SocketIORedisEmitter  *self,
                                      const char * const    *rooms,
                                      GError               **error)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  g_return_val_if_fail (rooms != NULL, FALSE);
  return publish_sockets_request (self, REQ_REMOTE_JOIN, rooms, FALSE, error);
}

/**
 * socket_io_redis_emitter_sockets_leave:
 * @self: an emitter
 * @rooms: (array zero-terminated=1): the rooms to leave
 * @error: return location for a %G_IO_ERROR from Redis
 *
 * Makes every socket @self addresses, on every node, leave @rooms (the
 * reference's `socketsLeave()`: a REMOTE_LEAVE request). Blocks as
 * socket_io_redis_emitter_emit(). Any thread.
 *
 * Returns: %TRUE if Redis took the request
 */
gboolean
socket_io_redis_emitter_sockets_leave (SocketIORedisEmitter  *self,
                                       const char * const    *rooms,
                                       GError               **error)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  g_return_val_if_fail (rooms != NULL, FALSE);
  return publish_sockets_request (self, REQ_REMOTE_LEAVE, rooms, FALSE, error);
}

/**
 * socket_io_redis_emitter_disconnect_sockets:
 * @self: an emitter
 * @close_transport: whether to close the clients' Engine.IO connections
 *   too (not only their Socket.IO session in this namespace)
 * @error: return location for a %G_IO_ERROR from Redis
 *
 * Disconnects every socket @self addresses, on every node (the
 * reference's `disconnectSockets(close)`: a REMOTE_DISCONNECT request).
 * Blocks as socket_io_redis_emitter_emit(). Any thread.
 *
 * Returns: %TRUE if Redis took the request
 */
gboolean
socket_io_redis_emitter_disconnect_sockets (SocketIORedisEmitter  *self,
                                            gboolean               close_transport,
                                            GError               **error)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  return publish_sockets_request (self, REQ_REMOTE_DISCONNECT, NULL, close_transport, error);
}

/**
 * socket_io_redis_emitter_server_side_emit:
 * @self: an emitter
 * @args: (nullable): the event: its name (a string) first, then its
 *   arguments (JSON only: a server-side emit has no attachments); only
 *   read
 * @error: return location for a %SOCKET_IO_ERROR_INVALID @args, or a
 *   %G_IO_ERROR from Redis
 *
 * Sends an event to the servers of the cluster, not to their clients (the
 * reference's `serverSideEmit(name, ...args)`; a Node node emits it on its
 * namespace, `io.on(name, ...)`). No acks, as the reference. Blocks as
 * socket_io_redis_emitter_emit(). Any thread.
 *
 * Returns: %TRUE if Redis took the request
 */
gboolean
socket_io_redis_emitter_server_side_emit (SocketIORedisEmitter  *self,
                                          JsonArray             *args,
                                          GError               **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  JsonArray *data;
  JsonNode *node;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_EMITTER (self), FALSE);
  if (args == NULL || json_array_get_length (args) == 0 ||
      !JSON_NODE_HOLDS_VALUE (json_array_get_element (args, 0)) ||
      json_node_get_value_type (json_array_get_element (args, 0)) != G_TYPE_STRING)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                           "A server-side emit needs an event name (a string) first");
      return FALSE;
    }
  data = json_array_new ();
  for (guint i = 0; i < json_array_get_length (args); i++)   /* deep: as emit()'s */
    json_array_add_element (data, socket_io_redis_json_deep_copy (json_array_get_element (args, i)));
  node = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (node, data);
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "uid");
  json_builder_add_string_value (builder, EMITTER_UID);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, REQ_SERVER_SIDE_EMIT);
  json_builder_set_member_name (builder, "data");
  json_builder_add_value (builder, node);
  json_builder_end_object (builder);
  return publish_json (self, builder, error);
}
