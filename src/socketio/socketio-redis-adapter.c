/* socketio-redis-adapter.c: a SocketIOAdapter that joins a cluster of
 * Socket.IO servers through Redis pub/sub, on the wire of npm
 * @socket.io/redis-adapter 8.x's classic adapter (lib/index.ts):
 *
 * - every node has a uid (6 characters) and PSUBSCRIBEs `<key>#<nsp>#*`;
 *   a broadcast is PUBLISHed on `<key>#<nsp>#` (`<key>#<nsp>#<room>#` when
 *   it addresses exactly one room) as msgpack
 *   `[uid, packet, {rooms, except, flags}]`, the packet being
 *   socket.io-parser's object `{type, data, nsp, id?}` with binaries as
 *   msgpack bin (type 2: the receiver's encoder makes it binary);
 * - requests on `<key>-request#<nsp>#` (JSON, or msgpack for BROADCAST),
 *   responses on `<key>-response#<nsp>#` (and `...#<uid>#`), JSON;
 *   serverCount is PUBSUB NUMSUB of the request channel.
 *
 * Threads: the adapter owns a thread running its own GMainContext, to
 * which hiredis's two async connections (one to publish, one subscribed)
 * are attached with hiredis's GLib adapter. Everything touching hiredis
 * runs there; other threads (session contexts) hand it publications with
 * an idle source attached to its context (run_on_thread(); never
 * g_main_context_invoke(), which runs the function on the calling thread
 * when the context is not owned yet) and never wait for Redis. Messages from
 * other nodes are delivered from that thread through the in-memory
 * adapter (the parent class), which is thread-safe.
 * State: `pub`, `sub`, timers: Redis thread only. `publish_failures`,
 * `pending_bytes`, `connected`: atomics.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio/socketio-redis.h"
#include "socketio-json-private.h"
#include "socketio-packet-private.h"
#include "socketio-redis-private.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/glib.h>
#include <msgpack.h>
#include <string.h>

/* Bytes queued for PUBLISH (not yet written to Redis) past which a
 * publication is dropped and counted, so that a slow or absent Redis
 * cannot make the process hold unbounded memory. */
#define REDIS_MAX_PENDING_BYTES (64 * 1024 * 1024)
/* What one waiting publication holds besides its payload and channel: our
 * job and the source that carries it to the Redis thread, hiredis's
 * callback entry and the command's protocol header, with the allocator's
 * overhead. Counted so that many small publications are bounded too. */
#define REDIS_PUBLISH_OVERHEAD  256
#define REDIS_BACKOFF_MIN_MS    100
#define REDIS_BACKOFF_MAX_MS    5000
/* Deepest msgpack or JSON value taken from Redis. */
#define REDIS_MAX_DEPTH         SOCKET_IO_DEFAULT_MAX_DEPTH
/* Estimated heap bytes of the tree built from one message taken from
 * Redis (the bound a client's packets have: socketio-json-private.h's
 * costs): a publication of a few MB would otherwise make a tree of some
 * hundred times its size on the Redis thread. */
#define REDIS_MAX_TREE_BYTES    SOCKET_IO_DEFAULT_MAX_TREE_BYTES
/* Estimated heap bytes of the answers one request (fetch sockets, a
 * server-side emit with ack) keeps: whoever can subscribe to the request
 * channel raises the number of answers awaited (PUBSUB NUMSUB) and can
 * answer as often, so their sum is bounded too; past it the request
 * fails. */
#define REDIS_MAX_REQUEST_BYTES (64 * 1024 * 1024)

typedef enum {
  REQ_SOCKETS = 0,
  REQ_ALL_ROOMS = 1,
  REQ_REMOTE_JOIN = 2,
  REQ_REMOTE_LEAVE = 3,
  REQ_REMOTE_DISCONNECT = 4,
  REQ_REMOTE_FETCH = 5,
  REQ_SERVER_SIDE_EMIT = 6,
  REQ_BROADCAST = 7,
  REQ_BROADCAST_CLIENT_COUNT = 8,
  REQ_BROADCAST_ACK = 9,
} RedisRequestType;

typedef struct _RedisConn RedisConn;

struct _RedisConn
{
  SocketIORedisAdapter *self;      /* not a ref: the thread stops before finalize */
  redisAsyncContext    *ac;        /* Redis thread */
  GSource              *source;    /* hiredis's GLib source for ac; Redis thread */
  GSource              *timer;     /* reconnect timer; Redis thread */
  guint                 backoff_ms;
  gboolean              subscriber;
  gboolean              ready;
};

struct _SocketIORedisAdapter
{
  SocketIOAdapter parent_instance;

  char         *uid;
  char         *host;
  int           port;
  int           db;
  char         *key;
  char         *channel;            /* <key>#<nsp># */
  char         *request_channel;    /* <key>-request#<nsp># */
  char         *response_channel;   /* <key>-response#<nsp># */
  char         *specific_channel;   /* <key>-response#<nsp>#<uid># */

  GMainContext *context;
  GMainLoop    *loop;
  GThread      *thread;

  RedisConn     pub;
  RedisConn     sub;
  gboolean      stopping;           /* Redis thread */
  gboolean      disposed_on_thread; /* Redis thread: holds a ref until it ends */

  guint64       publish_failures;   /* atomic */
  gssize        pending_bytes;      /* atomic */
  gint          connected;          /* atomic: both connections ready */
  gint          failing;            /* atomic: logged the current failure run */

  GHashTable   *requests;           /* Redis thread: requestId -> RedisRequest */
  guint         requests_timeout;   /* ms; atomic */
};

#define REDIS_DEFAULT_REQUESTS_TIMEOUT 5000

G_DEFINE_FINAL_TYPE (SocketIORedisAdapter, socket_io_redis_adapter, SOCKET_IO_TYPE_ADAPTER)

enum {
  SIGNAL_SERVER_SIDE_EVENT,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Queues @func to the adapter's thread, in order, from any thread (the
 * Redis thread included: then it runs on a later iteration). */
static void
run_on_thread (SocketIORedisAdapter *self,
               gint                  priority,
               GSourceFunc           func,
               gpointer              data,
               GDestroyNotify        notify)
{
  GSource *source = g_idle_source_new ();

  g_source_set_priority (source, priority);
  g_source_set_callback (source, func, data, notify);
  g_source_attach (source, self->context);
  g_source_unref (source);
}

static void conn_start (RedisConn *conn);

/* ------------------------------------------------------------------ */
/* JSON <-> msgpack                                                     */
/* ------------------------------------------------------------------ */

/* Whether @data is one complete msgpack value whose arrays and maps claim
 * no more elements than there are bytes left to hold them. msgpack-c
 * allocates a container's elements (24 bytes each) from its header's
 * count before reading them: five bytes `dd ff ff ff ff` would make it
 * ask for 96 GiB, and a few such headers nested as many times that of
 * address space. Checked first, its allocations stay within 24 times the
 * message. */
static gboolean
msgpack_counts_sane (const guint8 *data,
                     gsize         length)
{
  gsize pos = 0;
  guint64 pending = 1;   /* values still to read */

  while (pending > 0)
    {
      guint8 b;
      guint64 skip = 0, n = 0;
      guint size_bytes = 0;

      if (pos >= length)
        return FALSE;
      b = data[pos++];
      pending--;
      if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        continue;
      if (b >= 0x80 && b <= 0x8f)
        n = 2 * (guint64) (b & 0x0f);
      else if (b >= 0x90 && b <= 0x9f)
        n = b & 0x0f;
      else if (b >= 0xa0 && b <= 0xbf)
        skip = b & 0x1f;
      else
        switch (b)
          {
          case 0xc4: case 0xd9: size_bytes = 1; break;            /* bin8, str8 */
          case 0xc5: case 0xda: size_bytes = 2; break;            /* bin16, str16 */
          case 0xc6: case 0xdb: size_bytes = 4; break;            /* bin32, str32 */
          case 0xc7: size_bytes = 1; skip = 1; break;             /* ext8 */
          case 0xc8: size_bytes = 2; skip = 1; break;             /* ext16 */
          case 0xc9: size_bytes = 4; skip = 1; break;             /* ext32 */
          case 0xca: case 0xce: case 0xd2: skip = 4; break;
          case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
          case 0xcc: case 0xd0: skip = 1; break;
          case 0xcd: case 0xd1: skip = 2; break;
          case 0xd4: skip = 2; break;                             /* fixext1..16 */
          case 0xd5: skip = 3; break;
          case 0xd6: skip = 5; break;
          case 0xd7: skip = 9; break;
          case 0xd8: skip = 17; break;
          case 0xdc: case 0xde: size_bytes = 2; break;            /* array16, map16 */
          case 0xdd: case 0xdf: size_bytes = 4; break;            /* array32, map32 */
          default: return FALSE;                                  /* 0xc1 */
          }
      if (size_bytes > 0)
        {
          guint64 count = 0;

          if (length - pos < size_bytes)
            return FALSE;
          for (guint i = 0; i < size_bytes; i++)
            count = (count << 8) | data[pos++];
          if (b == 0xdc || b == 0xdd)
            n = count;
          else if (b == 0xde || b == 0xdf)
            n = 2 * count;
          else
            skip += count;
        }
      if (skip > length - pos)
        return FALSE;
      pos += skip;
      /* Every value takes a byte at least. */
      if (n > length - pos || pending + n > length - pos)
        return FALSE;
      pending += n;
    }
  return TRUE;
}

/* msgpack_unpack_next() of @payload once msgpack_counts_sane() agrees. */
static gboolean
unpack_checked (msgpack_unpacked *msg,
                const char       *payload,
                gsize             length)
{
  return msgpack_counts_sane ((const guint8 *) payload, length) &&
         msgpack_unpack_next (msg, payload, length, NULL) == MSGPACK_UNPACK_SUCCESS;
}

/* Takes @cost from @budget; FALSE (and nothing taken) when it has less. */
static gboolean
charge (gsize *budget,
        gsize  cost)
{
  if (cost > *budget)
    return FALSE;
  *budget -= cost;
  return TRUE;
}

/* A msgpack value as JSON; every bin becomes a placeholder for the
 * GBytes appended to @attachments. NULL when deeper than the bound or
 * when the tree would cost more than @budget (estimated heap bytes, as
 * the JSON reader counts them; what it costs is taken from @budget). */
static JsonNode *
unpack_json (const msgpack_object *obj,
             GPtrArray            *attachments,
             guint                 depth,
             gsize                *budget)
{
  JsonNode *node;

  if (depth > REDIS_MAX_DEPTH)
    return NULL;
  switch (obj->type)
    {
    case MSGPACK_OBJECT_STR:
      if (!charge (budget, SOCKET_IO_JSON_VALUE_COST + SOCKET_IO_JSON_STRING_COST + obj->via.str.size))
        return NULL;
      break;
    case MSGPACK_OBJECT_BIN:
      if (!charge (budget, SOCKET_IO_JSON_OBJECT_COST + 2 * SOCKET_IO_JSON_MEMBER_COST +
                           SOCKET_IO_JSON_VALUE_COST + obj->via.bin.size))
        return NULL;
      break;
    case MSGPACK_OBJECT_ARRAY:
      if (!charge (budget, SOCKET_IO_JSON_ARRAY_COST +
                           (gsize) obj->via.array.size * SOCKET_IO_JSON_ELEMENT_COST))
        return NULL;
      break;
    case MSGPACK_OBJECT_MAP:
      if (!charge (budget, SOCKET_IO_JSON_OBJECT_COST))
        return NULL;
      break;
    default:
      if (!charge (budget, SOCKET_IO_JSON_VALUE_COST))
        return NULL;
      break;
    }
  switch (obj->type)
    {
    case MSGPACK_OBJECT_BOOLEAN:
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_boolean (node, obj->via.boolean);
      return node;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      node = json_node_new (JSON_NODE_VALUE);
      if (obj->via.u64 > G_MAXINT64)
        json_node_set_double (node, (double) obj->via.u64);
      else
        json_node_set_int (node, (gint64) obj->via.u64);
      return node;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_int (node, obj->via.i64);
      return node;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_double (node, obj->via.f64);
      return node;
    case MSGPACK_OBJECT_STR:
      {
        g_autofree char *str = g_strndup (obj->via.str.ptr, obj->via.str.size);

        node = json_node_new (JSON_NODE_VALUE);
        json_node_set_string (node, str);
        return node;
      }
    case MSGPACK_OBJECT_BIN:
      if (attachments == NULL)
        return json_node_new (JSON_NODE_NULL);
      g_ptr_array_add (attachments, g_bytes_new (obj->via.bin.ptr, obj->via.bin.size));
      return socket_io_placeholder_new (attachments->len - 1);
    case MSGPACK_OBJECT_ARRAY:
      {
        JsonArray *array = json_array_sized_new (obj->via.array.size);

        node = json_node_new (JSON_NODE_ARRAY);
        json_node_take_array (node, array);
        for (guint32 i = 0; i < obj->via.array.size; i++)
          {
            JsonNode *element = unpack_json (&obj->via.array.ptr[i], attachments, depth + 1, budget);

            if (element == NULL)
              {
                json_node_unref (node);
                return NULL;
              }
            json_array_add_element (array, element);
          }
        return node;
      }
    case MSGPACK_OBJECT_MAP:
      {
        JsonObject *object = json_object_new ();

        node = json_node_new (JSON_NODE_OBJECT);
        json_node_take_object (node, object);
        for (guint32 i = 0; i < obj->via.map.size; i++)
          {
            const msgpack_object_kv *kv = &obj->via.map.ptr[i];
            g_autofree char *member = NULL;
            JsonNode *value;

            if (kv->key.type != MSGPACK_OBJECT_STR &&
                kv->key.type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                kv->key.type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
              continue;
            if (!charge (budget, SOCKET_IO_JSON_MEMBER_COST +
                                 (kv->key.type == MSGPACK_OBJECT_STR ? kv->key.via.str.size : 21)))
              {
                json_node_unref (node);
                return NULL;
              }
            if (kv->key.type == MSGPACK_OBJECT_STR)
              member = g_strndup (kv->key.via.str.ptr, kv->key.via.str.size);
            else if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
              member = g_strdup_printf ("%" G_GUINT64_FORMAT, kv->key.via.u64);
            else if (kv->key.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
              member = g_strdup_printf ("%" G_GINT64_FORMAT, kv->key.via.i64);
            else
              continue;
            value = unpack_json (&kv->val, attachments, depth + 1, budget);
            if (value == NULL)
              {
                json_node_unref (node);
                return NULL;
              }
            json_object_set_member (object, member, value);
          }
        return node;
      }
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_EXT:   /* notepack's undefined */
    default:
      return json_node_new (JSON_NODE_NULL);
    }
}

/* Rooms as Node has them: strings (a number is taken as its decimal). */
static GPtrArray *
json_rooms (JsonNode *node)
{
  GPtrArray *rooms = g_ptr_array_new_with_free_func (g_free);

  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode *room = json_array_get_element (array, i);

          if (!JSON_NODE_HOLDS_VALUE (room))
            continue;
          if (json_node_get_value_type (room) == G_TYPE_STRING)
            g_ptr_array_add (rooms, g_strdup (json_node_get_string (room)));
          else if (json_node_get_value_type (room) == G_TYPE_INT64)
            g_ptr_array_add (rooms, g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (room)));
        }
    }
  g_ptr_array_add (rooms, NULL);
  return rooms;
}

static JsonNode *
strv_node (const char * const *strv)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
    json_array_add_string_element (array, strv[i]);
  json_node_take_array (node, array);
  return node;
}

static SocketIOBroadcastFlags
json_flags (JsonNode *node)
{
  SocketIOBroadcastFlags flags = SOCKET_IO_BROADCAST_NONE;
  JsonObject *object;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return flags;
  object = json_node_get_object (node);
  if (json_object_has_member (object, "volatile") &&
      json_object_get_boolean_member_with_default (object, "volatile", FALSE))
    flags |= SOCKET_IO_BROADCAST_VOLATILE;
  if (json_object_get_boolean_member_with_default (object, "compress", FALSE))
    flags |= SOCKET_IO_BROADCAST_COMPRESS;
  return flags;
}

/* ------------------------------------------------------------------ */
/* Publishing (any thread -> Redis thread)                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  SocketIORedisAdapter *self;
  char                 *channel;
  GBytes               *payload;  /* until hiredis has copied it */
  gssize                cost;     /* counted in pending_bytes */
} RedisPublish;

/* A GBytes of exactly @size bytes from a buffer that may have more room
 * (msgpack's and GString's grow by doubling): what is counted is what is
 * held. */
static GBytes *
bytes_take_exact (char  *data,
                  gsize  size)
{
  if (size == 0)
    {
      g_free (data);
      return g_bytes_new (NULL, 0);
    }
  return g_bytes_new_take (g_realloc (data, size), size);
}

static void
publish_free (gpointer data)
{
  RedisPublish *job = data;

  g_free (job->channel);
  g_clear_pointer (&job->payload, g_bytes_unref);
  g_free (job);
}

static void
count_failure (SocketIORedisAdapter *self,
               const char           *channel,
               const char           *why)
{
  __atomic_add_fetch (&self->publish_failures, 1, __ATOMIC_RELAXED);
  /* One warning per run of failures, then debug lines. */
  if (g_atomic_int_compare_and_exchange (&self->failing, 0, 1))
    g_warning ("Redis adapter %s: could not publish on %s (%s); counting the losses "
               "(socket_io_redis_adapter_get_publish_failures())", self->uid, channel, why);
  else
    g_debug ("Redis adapter %s: could not publish on %s (%s)", self->uid, channel, why);
}

static void
on_published (redisAsyncContext *ac,
              void              *r,
              void              *privdata)
{
  RedisPublish *job = privdata;
  redisReply *reply = r;

  g_atomic_pointer_add (&job->self->pending_bytes, -job->cost);
  if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
    count_failure (job->self, job->channel,
                   reply != NULL ? reply->str : "connection lost");
  else
    g_atomic_int_set (&job->self->failing, 0);
  publish_free (job);
}

/* Redis thread. */
static gboolean
publish_on_thread (gpointer data)
{
  RedisPublish *shell = data;
  RedisPublish *job = g_memdup2 (shell, sizeof *shell);
  SocketIORedisAdapter *self = job->self;
  gsize size;
  const void *bytes = g_bytes_get_data (job->payload, &size);

  /* The shell is freed by the source; hiredis's callback frees the job. */
  shell->channel = NULL;
  shell->payload = NULL;
  if (self->pub.ac == NULL || !self->pub.ready ||
      redisAsyncCommand (self->pub.ac, on_published, job, "PUBLISH %s %b",
                         job->channel, bytes, size) != REDIS_OK)
    {
      g_atomic_pointer_add (&self->pending_bytes, -job->cost);
      count_failure (self, job->channel, "not connected");
      publish_free (job);
      return G_SOURCE_REMOVE;
    }
  /* hiredis has the command, payload included, in its output buffer:
   * one copy is held while it waits, not two. */
  g_clear_pointer (&job->payload, g_bytes_unref);
  return G_SOURCE_REMOVE;
}

/* Any thread; takes @payload. */
static void
publish (SocketIORedisAdapter *self,
         const char           *channel,
         GBytes               *payload)
{
  RedisPublish *job;
  gssize size = (gssize) (g_bytes_get_size (payload) + strlen (channel) + REDIS_PUBLISH_OVERHEAD);

  if (!g_atomic_int_get (&self->connected))
    {
      count_failure (self, channel, "not connected");
      g_bytes_unref (payload);
      return;
    }
  if (g_atomic_pointer_add (&self->pending_bytes, size) + size > REDIS_MAX_PENDING_BYTES)
    {
      g_atomic_pointer_add (&self->pending_bytes, -size);
      count_failure (self, channel, "too many bytes waiting for Redis");
      g_bytes_unref (payload);
      return;
    }
  job = g_new0 (RedisPublish, 1);
  job->self = self;
  job->channel = g_strdup (channel);
  job->payload = payload;
  job->cost = size;
  /* The job is freed without running if the thread stops first. */
  run_on_thread (self, G_PRIORITY_DEFAULT, publish_on_thread, job, publish_free);
}

static void
publish_json (SocketIORedisAdapter *self,
              const char           *channel,
              JsonBuilder          *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  gsize length;
  char *text;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &length);
  publish (self, channel, bytes_take_exact (text, length));
}

/* ------------------------------------------------------------------ */
/* The adapter's virtual functions (any thread)                         */
/* ------------------------------------------------------------------ */

static guint
redis_broadcast (SocketIOAdapter        *adapter,
                 GBytes                 *text,
                 GPtrArray              *attachments,
                 const char * const     *rooms,
                 const char * const     *except,
                 SocketIOBroadcastFlags  flags)
{
  SocketIORedisAdapter *self = SOCKET_IO_REDIS_ADAPTER (adapter);
  guint n;

  if (!(flags & SOCKET_IO_BROADCAST_LOCAL))
    {
      g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (SOCKET_IO_PROTOCOL_V5);
      g_autoptr(SocketIOPacket) packet = NULL;
      g_autoptr(GError) error = NULL;
      gsize size;
      const char *data = g_bytes_get_data (text, &size);

      socket_io_decoder_set_max_attachments (decoder, G_MAXUINT);
      socket_io_decoder_set_max_attachment_bytes (decoder, G_MAXSIZE);
      socket_io_decoder_set_max_tree_bytes (decoder, G_MAXSIZE);
      if (socket_io_decoder_feed_text (decoder, data, size, &packet, &error))
        for (guint i = 0; packet == NULL && attachments != NULL && i < attachments->len; i++)
          if (!socket_io_decoder_feed_binary (decoder, g_ptr_array_index (attachments, i),
                                              &packet, &error))
            break;
      if (packet == NULL)
        count_failure (self, self->channel, error != NULL ? error->message : "incomplete packet");
      else
        {
          msgpack_sbuffer sbuf;
          msgpack_packer pk;
          SocketIOPacketType type = socket_io_packet_get_packet_type (packet);
          gint64 id = socket_io_packet_get_id (packet);
          guint n_rooms = rooms != NULL ? g_strv_length ((char **) rooms) : 0;
          guint n_flags = 0;
          g_autofree char *channel = NULL;

          msgpack_sbuffer_init (&sbuf);
          msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
          msgpack_pack_array (&pk, 3);
          socket_io_redis_pack_string (&pk, self->uid);
          /* socket.io-parser's packet object, as Node's emit() makes it:
           * EVENT/ACK with the binaries inline. */
          msgpack_pack_map (&pk, id >= 0 ? 4 : 3);
          socket_io_redis_pack_string (&pk, "type");
          msgpack_pack_int (&pk, type == SOCKET_IO_PACKET_BINARY_EVENT ? SOCKET_IO_PACKET_EVENT :
                                 type == SOCKET_IO_PACKET_BINARY_ACK ? SOCKET_IO_PACKET_ACK : type);
          socket_io_redis_pack_string (&pk, "data");
          socket_io_redis_pack_json (&pk, socket_io_packet_get_data (packet), socket_io_packet_get_attachments (packet));
          socket_io_redis_pack_string (&pk, "nsp");
          socket_io_redis_pack_string (&pk, socket_io_namespace_get_name (socket_io_adapter_get_namespace (adapter)));
          if (id >= 0)
            {
              socket_io_redis_pack_string (&pk, "id");
              msgpack_pack_int64 (&pk, id);
            }
          msgpack_pack_map (&pk, 3);
          socket_io_redis_pack_string (&pk, "rooms");
          msgpack_pack_array (&pk, n_rooms);
          for (guint i = 0; i < n_rooms; i++)
            socket_io_redis_pack_string (&pk, rooms[i]);
          socket_io_redis_pack_string (&pk, "except");
          msgpack_pack_array (&pk, except != NULL ? g_strv_length ((char **) except) : 0);
          for (guint i = 0; except != NULL && except[i] != NULL; i++)
            socket_io_redis_pack_string (&pk, except[i]);
          socket_io_redis_pack_string (&pk, "flags");
          n_flags = !!(flags & SOCKET_IO_BROADCAST_VOLATILE) + !!(flags & SOCKET_IO_BROADCAST_COMPRESS);
          msgpack_pack_map (&pk, n_flags);
          if (flags & SOCKET_IO_BROADCAST_VOLATILE)
            {
              socket_io_redis_pack_string (&pk, "volatile");
              msgpack_pack_true (&pk);
            }
          if (flags & SOCKET_IO_BROADCAST_COMPRESS)
            {
              socket_io_redis_pack_string (&pk, "compress");
              msgpack_pack_true (&pk);
            }
          channel = n_rooms == 1 ? g_strconcat (self->channel, rooms[0], "#", NULL)
                                 : g_strdup (self->channel);
          publish (self, channel, bytes_take_exact (sbuf.data, sbuf.size));
        }
    }
  n = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->broadcast (adapter, text, attachments,
                                                                                  rooms, except, flags);
  return n;
}

static void
publish_sockets_request (SocketIORedisAdapter *self,
                         RedisRequestType      type,
                         const char * const   *rooms,
                         const char * const   *except,
                         const char * const   *target_rooms,
                         gboolean              close_transport)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "uid");
  json_builder_add_string_value (builder, self->uid);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, type);
  json_builder_set_member_name (builder, "opts");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "rooms");
  json_builder_add_value (builder, strv_node (rooms));
  json_builder_set_member_name (builder, "except");
  json_builder_add_value (builder, strv_node (except));
  json_builder_end_object (builder);
  if (type == REQ_REMOTE_DISCONNECT)
    {
      json_builder_set_member_name (builder, "close");
      json_builder_add_boolean_value (builder, close_transport);
    }
  else
    {
      json_builder_set_member_name (builder, "rooms");
      json_builder_add_value (builder, strv_node (target_rooms));
    }
  json_builder_end_object (builder);
  publish_json (self, self->request_channel, builder);
}

/* Node's adapter applies its own request when it hears it back from
 * Redis; this one applies it at once (local delivery goes on without
 * Redis) and ignores its own uid. */
static void
redis_add_sockets (SocketIOAdapter        *adapter,
                   const char * const     *rooms,
                   const char * const     *except,
                   SocketIOBroadcastFlags  flags,
                   const char * const     *join)
{
  if (!(flags & SOCKET_IO_BROADCAST_LOCAL))
    publish_sockets_request (SOCKET_IO_REDIS_ADAPTER (adapter), REQ_REMOTE_JOIN, rooms, except, join, FALSE);
  SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->add_sockets (adapter, rooms, except,
                                                                                flags, join);
}

static void
redis_del_sockets (SocketIOAdapter        *adapter,
                   const char * const     *rooms,
                   const char * const     *except,
                   SocketIOBroadcastFlags  flags,
                   const char * const     *leave)
{
  if (!(flags & SOCKET_IO_BROADCAST_LOCAL))
    publish_sockets_request (SOCKET_IO_REDIS_ADAPTER (adapter), REQ_REMOTE_LEAVE, rooms, except, leave, FALSE);
  SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->del_sockets (adapter, rooms, except,
                                                                                flags, leave);
}

static void
redis_disconnect_sockets (SocketIOAdapter        *adapter,
                          const char * const     *rooms,
                          const char * const     *except,
                          SocketIOBroadcastFlags  flags,
                          gboolean                close_transport)
{
  if (!(flags & SOCKET_IO_BROADCAST_LOCAL))
    publish_sockets_request (SOCKET_IO_REDIS_ADAPTER (adapter), REQ_REMOTE_DISCONNECT, rooms, except,
                             NULL, close_transport);
  SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->disconnect_sockets (adapter, rooms, except,
                                                                                       flags, close_transport);
}

/* ------------------------------------------------------------------ */
/* Messages from other nodes (Redis thread)                             */
/* ------------------------------------------------------------------ */

static gboolean
has_local_room (SocketIORedisAdapter *self,
                const char           *room)
{
  const char *rooms[] = { room, NULL };
  g_auto(GStrv) ids = socket_io_adapter_sockets (SOCKET_IO_ADAPTER (self), rooms, NULL);

  return ids[0] != NULL;
}

static const msgpack_object *
map_get (const msgpack_object *map,
         const char           *key)
{
  gsize len = strlen (key);

  if (map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (guint32 i = 0; i < map->via.map.size; i++)
    {
      const msgpack_object_kv *kv = &map->via.map.ptr[i];

      if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == len &&
          memcmp (kv->key.via.str.ptr, key, len) == 0)
        return &kv->val;
    }
  return NULL;
}

static gboolean
str_equal (const msgpack_object *obj,
           const char           *str)
{
  return obj != NULL && obj->type == MSGPACK_OBJECT_STR && obj->via.str.size == strlen (str) &&
         memcmp (obj->via.str.ptr, str, obj->via.str.size) == 0;
}

static void
on_broadcast_message (SocketIORedisAdapter *self,
                      const char           *channel,
                      const char           *payload,
                      gsize                 length)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  const char *nsp_name = socket_io_namespace_get_name (socket_io_adapter_get_namespace (adapter));
  gsize prefix = strlen (self->channel);
  gsize chan_len = strlen (channel);
  msgpack_unpacked msg;
  const msgpack_object *root, *packet_obj, *opts_obj, *type_obj, *nsp_obj, *id_obj, *data_obj;
  g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(JsonNode) opts = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GPtrArray) encoded_attachments = NULL;
  g_autoptr(GBytes) text = NULL;
  g_autoptr(GPtrArray) rooms = NULL;
  g_autoptr(GPtrArray) except = NULL;
  g_autoptr(GError) error = NULL;
  gint64 id = SOCKET_IO_NO_ACK_ID;
  gint64 type;
  gsize budget = REDIS_MAX_TREE_BYTES;

  /* `<key>#<nsp>#`, or `<key>#<nsp>#<room>#` */
  if (chan_len < prefix || strncmp (channel, self->channel, prefix) != 0)
    return;
  if (chan_len > prefix && channel[chan_len - 1] != '#')
    return;
  if (chan_len > prefix)
    {
      g_autofree char *room = g_strndup (channel + prefix, chan_len - prefix - 1);

      if (!has_local_room (self, room))
        return;
    }

  msgpack_unpacked_init (&msg);
  if (!unpack_checked (&msg, payload, length))
    goto out;
  root = &msg.data;
  if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 3)
    goto out;
  if (str_equal (&root->via.array.ptr[0], self->uid))
    goto out;
  packet_obj = &root->via.array.ptr[1];
  opts_obj = &root->via.array.ptr[2];
  nsp_obj = map_get (packet_obj, "nsp");
  if (nsp_obj != NULL ? !str_equal (nsp_obj, nsp_name) : strcmp (nsp_name, "/") != 0)
    goto out;
  type_obj = map_get (packet_obj, "type");
  if (type_obj == NULL || type_obj->type != MSGPACK_OBJECT_POSITIVE_INTEGER || type_obj->via.u64 > 6)
    goto out;
  type = (gint64) type_obj->via.u64;
  id_obj = map_get (packet_obj, "id");
  if (id_obj != NULL && id_obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    id = (gint64) MIN (id_obj->via.u64, (guint64) SOCKET_IO_MAX_ACK_ID);
  data_obj = map_get (packet_obj, "data");
  if (data_obj != NULL)
    {
      data = unpack_json (data_obj, attachments, 0, &budget);
      if (data == NULL)
        goto out;
    }
  opts = unpack_json (opts_obj, NULL, 0, &budget);
  if (opts == NULL || !JSON_NODE_HOLDS_OBJECT (opts))
    goto out;
  packet = socket_io_packet_new ((SocketIOPacketType) type, nsp_name, data, id,
                                 attachments->len > 0 ? attachments : NULL, &error);
  if (packet == NULL)
    {
      g_debug ("Redis adapter %s: ignoring a broadcast: %s", self->uid, error->message);
      goto out;
    }
  text = socket_io_packet_encode (packet, &encoded_attachments);
  rooms = json_rooms (json_object_get_member (json_node_get_object (opts), "rooms"));
  except = json_rooms (json_object_get_member (json_node_get_object (opts), "except"));
  SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->broadcast (
      adapter, text, encoded_attachments,
      (const char * const *) rooms->pdata, (const char * const *) except->pdata,
      json_flags (json_object_get_member (json_node_get_object (opts), "flags")) | SOCKET_IO_BROADCAST_LOCAL);
out:
  msgpack_unpacked_destroy (&msg);
}

static void
publish_response (SocketIORedisAdapter *self,
                  JsonBuilder          *builder)
{
  publish_json (self, self->response_channel, builder);
}

/* A BROADCAST request (a Node peer's io.timeout(ms).emit(..., ack) or
 * emitWithAck()): emit with an ack id to every local socket addressed,
 * answer at once with BROADCAST_CLIENT_COUNT, then one BROADCAST_ACK per
 * ack received (its first argument, as Node's adapter sends it). */
typedef struct
{
  SocketIORedisAdapter *self;   /* not a ref: callbacks run on the Redis thread, which stops first */
  char                 *request_id;
} RedisAckWait;

static void
on_remote_broadcast_ack (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  RedisAckWait *wait = user_data;
  SocketIORedisAdapter *self = wait->self;
  g_autoptr(GPtrArray) attachments = NULL;
  g_autoptr(JsonArray) args = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source), result,
                                                                     &attachments, NULL);

  if (args != NULL)
    {
      msgpack_sbuffer sbuf;
      msgpack_packer pk;

      msgpack_sbuffer_init (&sbuf);
      msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
      msgpack_pack_map (&pk, 3);
      socket_io_redis_pack_string (&pk, "type");
      msgpack_pack_int (&pk, REQ_BROADCAST_ACK);
      socket_io_redis_pack_string (&pk, "requestId");
      socket_io_redis_pack_string (&pk, wait->request_id);
      socket_io_redis_pack_string (&pk, "packet");
      socket_io_redis_pack_json (&pk, json_array_get_length (args) > 0 ? json_array_get_element (args, 0) : NULL,
                 attachments);
      publish (self, self->response_channel, bytes_take_exact (sbuf.data, sbuf.size));
    }
  g_free (wait->request_id);
  g_free (wait);
}

static void
broadcast_with_ack (SocketIORedisAdapter *self,
                    const char           *request_id,
                    JsonNode             *packet,
                    GPtrArray            *attachments,
                    GPtrArray            *rooms,
                    GPtrArray            *except,
                    JsonNode             *flags)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  SocketIONamespace *nsp = socket_io_adapter_get_namespace (adapter);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonArray) args = json_array_new ();
  g_auto(GStrv) ids = NULL;
  JsonObject *object;
  JsonArray *data;
  const char *name;
  gint64 timeout_ms = 0;
  guint n = 0;

  if (packet == NULL || !JSON_NODE_HOLDS_OBJECT (packet))
    return;
  object = json_node_get_object (packet);
  if (!json_object_has_member (object, "data") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "data")))
    return;
  data = json_object_get_array_member (object, "data");
  if (json_array_get_length (data) == 0 ||
      !JSON_NODE_HOLDS_VALUE (json_array_get_element (data, 0)) ||
      json_node_get_value_type (json_array_get_element (data, 0)) != G_TYPE_STRING)
    return;
  name = json_array_get_string_element (data, 0);
  for (guint i = 1; i < json_array_get_length (data); i++)
    json_array_add_element (args, json_node_copy (json_array_get_element (data, i)));
  if (flags != NULL && JSON_NODE_HOLDS_OBJECT (flags))
    timeout_ms = json_object_get_int_member_with_default (json_node_get_object (flags), "timeout", 0);
  /* Node's peers always send one (io.timeout(ms) is required to broadcast
   * with acks). Without one, each request would leave an ack waiting for
   * ever in every socket addressed (a client that has no handler never
   * answers): some max-pending-acks publications would fill every
   * socket's table, and the application's own acks would fail. */
  if (timeout_ms <= 0)
    timeout_ms = g_atomic_int_get (&self->requests_timeout);

  ids = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->sockets (
      adapter, (const char * const *) rooms->pdata, (const char * const *) except->pdata);
  for (guint i = 0; ids[i] != NULL; i++)
    {
      g_autoptr(SocketIOSocket) socket = socket_io_namespace_lookup_socket (nsp, ids[i]);
      RedisAckWait *wait;

      if (socket == NULL)
        continue;
      wait = g_new0 (RedisAckWait, 1);
      wait->self = self;
      wait->request_id = g_strdup (request_id);
      socket_io_socket_emit_with_ack (socket, name, args, attachments->len > 0 ? attachments : NULL,
                                      (guint) CLAMP (timeout_ms, 0, G_MAXUINT), NULL,
                                      on_remote_broadcast_ack, wait);
      n++;
    }
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, REQ_BROADCAST_CLIENT_COUNT);
  json_builder_set_member_name (builder, "requestId");
  json_builder_add_string_value (builder, request_id);
  json_builder_set_member_name (builder, "clientCount");
  json_builder_add_int_value (builder, n);
  json_builder_end_object (builder);
  publish_json (self, self->response_channel, builder);
}

/* The local sockets addressed, as Node's REMOTE_FETCH response lists them:
 * {id, handshake {address, url, headers, query, auth}, rooms, data}. */
static void
add_local_sockets (SocketIORedisAdapter *self,
                   JsonBuilder          *builder,
                   const char * const   *rooms,
                   const char * const   *except)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  SocketIONamespace *nsp = socket_io_adapter_get_namespace (adapter);
  g_auto(GStrv) ids = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class)->sockets (adapter, rooms, except);

  for (guint i = 0; ids[i] != NULL; i++)
    {
      g_autoptr(SocketIOSocket) socket = socket_io_namespace_lookup_socket (nsp, ids[i]);
      g_auto(GStrv) socket_rooms = NULL;
      EngineIOHandshake *handshake;
      g_autoptr(JsonNode) socket_data = NULL;

      if (socket == NULL)
        continue;
      socket_rooms = socket_io_socket_get_rooms (socket);
      handshake = socket_io_socket_get_handshake (socket);
      socket_data = socket_io_socket_dup_data (socket);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "id");
      json_builder_add_string_value (builder, ids[i]);
      json_builder_set_member_name (builder, "handshake");
      json_builder_begin_object (builder);
      if (handshake != NULL)
        {
          GHashTableIter iter;
          gpointer name, value;

          json_builder_set_member_name (builder, "address");
          json_builder_add_string_value (builder, engine_io_handshake_get_remote_address (handshake));
          json_builder_set_member_name (builder, "url");
          json_builder_add_string_value (builder, engine_io_handshake_get_path (handshake));
          json_builder_set_member_name (builder, "headers");
          json_builder_begin_object (builder);
          g_hash_table_iter_init (&iter, engine_io_handshake_get_headers (handshake));
          while (g_hash_table_iter_next (&iter, &name, &value))
            {
              json_builder_set_member_name (builder, name);
              json_builder_add_string_value (builder, value);
            }
          json_builder_end_object (builder);
          json_builder_set_member_name (builder, "query");
          json_builder_begin_object (builder);
          g_hash_table_iter_init (&iter, engine_io_handshake_get_query (handshake));
          while (g_hash_table_iter_next (&iter, &name, &value))
            {
              json_builder_set_member_name (builder, name);
              json_builder_add_string_value (builder, value);
            }
          json_builder_end_object (builder);
        }
      json_builder_set_member_name (builder, "auth");
      if (socket_io_socket_get_auth (socket) != NULL)
        json_builder_add_value (builder, socket_io_redis_json_deep_copy (socket_io_socket_get_auth (socket)));
      else
        {
          json_builder_begin_object (builder);
          json_builder_end_object (builder);
        }
      json_builder_end_object (builder);
      json_builder_set_member_name (builder, "rooms");
      json_builder_add_value (builder, strv_node ((const char * const *) socket_rooms));
      json_builder_set_member_name (builder, "data");
      if (socket_data != NULL)
        json_builder_add_value (builder, socket_io_redis_json_deep_copy (socket_data));
      else
        json_builder_add_null_value (builder);
      json_builder_end_object (builder);
    }
}

/* A JSON request or response from Redis, within the bounds a client's
 * packet has (json-glib's parser recurses: unchecked, one publication
 * nested a few hundred thousand deep overflows the Redis thread's stack). */
static JsonNode *
parse_json (SocketIORedisAdapter *self,
            const char           *payload,
            gsize                 length)
{
  const SocketIOJsonLimits limits = { REDIS_MAX_DEPTH, REDIS_MAX_TREE_BYTES, 0 };
  g_autoptr(GError) error = NULL;
  JsonNode *root = socket_io_json_parse (payload, length, 0, &limits, &error);

  if (root == NULL)
    g_debug ("Redis adapter %s: ignoring a message: %s", self->uid, error->message);
  return root;
}

static void
on_request (SocketIORedisAdapter *self,
            const char           *payload,
            gsize                 length)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  SocketIOAdapterClass *parent = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_adapter_parent_class);
  SocketIONamespace *nsp = socket_io_adapter_get_namespace (adapter);
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonBuilder) builder = NULL;
  g_autoptr(GPtrArray) rooms = NULL;
  g_autoptr(GPtrArray) except = NULL;
  g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  JsonObject *request;
  JsonNode *opts;
  const char *uid, *request_id, *sid;
  gint64 type;

  if (length > 0 && payload[0] == '{')
    root = parse_json (self, payload, length);
  else
    {
      msgpack_unpacked msg;
      gsize budget = REDIS_MAX_TREE_BYTES;

      msgpack_unpacked_init (&msg);
      if (unpack_checked (&msg, payload, length))
        root = unpack_json (&msg.data, attachments, 0, &budget);
      msgpack_unpacked_destroy (&msg);
    }
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  request = json_node_get_object (root);
  uid = json_object_get_string_member_with_default (request, "uid", NULL);
  request_id = json_object_get_string_member_with_default (request, "requestId", NULL);
  sid = json_object_get_string_member_with_default (request, "sid", NULL);
  type = json_object_get_int_member_with_default (request, "type", -1);
  opts = json_object_get_member (request, "opts");
  if (opts != NULL && JSON_NODE_HOLDS_OBJECT (opts))
    {
      rooms = json_rooms (json_object_get_member (json_node_get_object (opts), "rooms"));
      except = json_rooms (json_object_get_member (json_node_get_object (opts), "except"));
    }
  else
    opts = NULL;
  if (uid != NULL && strcmp (uid, self->uid) == 0)
    return;   /* ours: applied locally when made */

  switch (type)
    {
    case REQ_SOCKETS:
      {
        g_autoptr(GPtrArray) want = json_rooms (json_object_get_member (request, "rooms"));
        g_auto(GStrv) ids = parent->sockets (adapter, (const char * const *) want->pdata, NULL);

        builder = json_builder_new ();
        json_builder_begin_object (builder);
        json_builder_set_member_name (builder, "requestId");
        json_builder_add_string_value (builder, request_id);
        json_builder_set_member_name (builder, "sockets");
        json_builder_add_value (builder, strv_node ((const char * const *) ids));
        json_builder_end_object (builder);
        publish_response (self, builder);
      }
      break;

    case REQ_REMOTE_JOIN:
    case REQ_REMOTE_LEAVE:
    case REQ_REMOTE_DISCONNECT:
      if (opts != NULL)
        {
          g_autoptr(GPtrArray) targets = json_rooms (json_object_get_member (request, "rooms"));

          if (type == REQ_REMOTE_JOIN)
            parent->add_sockets (adapter, (const char * const *) rooms->pdata,
                                 (const char * const *) except->pdata, SOCKET_IO_BROADCAST_LOCAL,
                                 (const char * const *) targets->pdata);
          else if (type == REQ_REMOTE_LEAVE)
            parent->del_sockets (adapter, (const char * const *) rooms->pdata,
                                 (const char * const *) except->pdata, SOCKET_IO_BROADCAST_LOCAL,
                                 (const char * const *) targets->pdata);
          else
            parent->disconnect_sockets (adapter, (const char * const *) rooms->pdata,
                                        (const char * const *) except->pdata, SOCKET_IO_BROADCAST_LOCAL,
                                        json_object_get_boolean_member_with_default (request, "close", FALSE));
        }
      else if (sid != NULL)
        {
          g_autoptr(SocketIOSocket) socket = socket_io_namespace_lookup_socket (nsp, sid);
          const char *room = json_object_get_string_member_with_default (request, "room", NULL);

          if (socket == NULL)
            return;
          if (type == REQ_REMOTE_JOIN && room != NULL)
            socket_io_socket_join (socket, room);
          else if (type == REQ_REMOTE_LEAVE && room != NULL)
            socket_io_socket_leave (socket, room);
          else if (type == REQ_REMOTE_DISCONNECT)
            {
              const char *none[] = { NULL };
              g_autofree char *own = g_strdup (sid);
              const char *only[] = { own, NULL };

              /* Through the adapter: in the socket's own context. */
              parent->disconnect_sockets (adapter, only, none, SOCKET_IO_BROADCAST_LOCAL,
                                          json_object_get_boolean_member_with_default (request, "close", FALSE));
            }
          builder = json_builder_new ();
          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "requestId");
          json_builder_add_string_value (builder, request_id);
          json_builder_end_object (builder);
          publish_response (self, builder);
        }
      break;

    case REQ_REMOTE_FETCH:
      if (opts != NULL && request_id != NULL)
        {
          builder = json_builder_new ();
          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "requestId");
          json_builder_add_string_value (builder, request_id);
          json_builder_set_member_name (builder, "sockets");
          json_builder_begin_array (builder);
          add_local_sockets (self, builder, (const char * const *) rooms->pdata,
                             (const char * const *) except->pdata);
          json_builder_end_array (builder);
          json_builder_end_object (builder);
          publish_response (self, builder);
        }
      break;

    case REQ_ALL_ROOMS:
      if (request_id != NULL)
        {
          g_autoptr(GPtrArray) sockets = socket_io_namespace_get_sockets (nsp);
          g_autoptr(GHashTable) all = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
          GHashTableIter iter;
          gpointer room;

          /* Node answers with its adapter's room table: every room of a
           * local socket, the sockets' own ids included. */
          for (guint i = 0; i < sockets->len; i++)
            {
              g_auto(GStrv) socket_rooms = socket_io_socket_get_rooms (g_ptr_array_index (sockets, i));

              for (guint j = 0; socket_rooms[j] != NULL; j++)
                g_hash_table_add (all, g_steal_pointer (&socket_rooms[j]));
            }
          builder = json_builder_new ();
          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "requestId");
          json_builder_add_string_value (builder, request_id);
          json_builder_set_member_name (builder, "rooms");
          json_builder_begin_array (builder);
          g_hash_table_iter_init (&iter, all);
          while (g_hash_table_iter_next (&iter, &room, NULL))
            json_builder_add_string_value (builder, room);
          json_builder_end_array (builder);
          json_builder_end_object (builder);
          publish_response (self, builder);
        }
      break;

    case REQ_BROADCAST:
      if (opts != NULL && request_id != NULL)
        broadcast_with_ack (self, request_id, json_object_get_member (request, "packet"),
                            attachments, rooms, except,
                            json_object_get_member (json_node_get_object (opts), "flags"));
      break;

    case REQ_SERVER_SIDE_EMIT:
      {
        JsonNode *data = json_object_get_member (request, "data");
        g_autoptr(JsonArray) args = json_array_new ();
        g_autoptr(JsonNode) answer = NULL;
        JsonArray *array;
        const char *name;

        if (data == NULL || !JSON_NODE_HOLDS_ARRAY (data))
          break;
        array = json_node_get_array (data);
        if (json_array_get_length (array) == 0 ||
            !JSON_NODE_HOLDS_VALUE (json_array_get_element (array, 0)) ||
            json_node_get_value_type (json_array_get_element (array, 0)) != G_TYPE_STRING)
          break;
        name = json_array_get_string_element (array, 0);
        for (guint i = 1; i < json_array_get_length (array); i++)
          json_array_add_element (args, json_node_copy (json_array_get_element (array, i)));
        /* g_quark_try_string(): a name nobody connected to makes no quark
         * (the quark table never shrinks). */
        g_signal_emit (self, signals[SIGNAL_SERVER_SIDE_EVENT], g_quark_try_string (name),
                       name, args, &answer);
        if (answer != NULL && request_id != NULL)
          {
            builder = json_builder_new ();
            json_builder_begin_object (builder);
            json_builder_set_member_name (builder, "type");
            json_builder_add_int_value (builder, REQ_SERVER_SIDE_EMIT);
            json_builder_set_member_name (builder, "requestId");
            json_builder_add_string_value (builder, request_id);
            json_builder_set_member_name (builder, "data");
            json_builder_add_value (builder, g_steal_pointer (&answer));
            json_builder_end_object (builder);
            publish_response (self, builder);
          }
      }
      break;

    default:
      g_debug ("Redis adapter %s: ignoring request type %" G_GINT64_FORMAT, self->uid, type);
      break;
    }
}

/* ------------------------------------------------------------------ */
/* Requests this node makes (Redis thread)                              */
/* ------------------------------------------------------------------ */

/* A REMOTE_FETCH or a SERVER_SIDE_EMIT with ack waiting for the other
 * nodes' answers. */
typedef struct
{
  SocketIORedisAdapter *self;
  RedisRequestType      type;
  char                 *id;
  GTask                *task;
  char                 *request;     /* JSON text to publish */
  JsonArray            *sockets;     /* REMOTE_FETCH: local ones first, then every answer's;
                                        SERVER_SIDE_EMIT: each answer's argument */
  guint                 expected;    /* answers still missing */
  gsize                 held;        /* estimated heap bytes of the answers kept */
  GSource              *timeout;
  gboolean              inserted;    /* in self->requests, which frees it */
} RedisRequest;

static void
request_free (gpointer data)
{
  RedisRequest *request = data;

  if (request->timeout != NULL)
    {
      g_source_destroy (request->timeout);
      g_source_unref (request->timeout);
    }
  if (request->task != NULL)
    {
      g_task_return_new_error (request->task, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED,
                               "The Redis adapter stopped");
      g_object_unref (request->task);
    }
  g_clear_pointer (&request->sockets, json_array_unref);
  g_free (request->request);
  g_free (request->id);
  g_free (request);
}

/* A server-side emit cannot say "nobody else" when it could not ask. */
static void
request_fail (RedisRequest *request,
              const char   *why)
{
  GTask *task = g_steal_pointer (&request->task);

  g_task_return_new_error (task, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED, "%s", why);
  g_object_unref (task);
  g_hash_table_remove (request->self->requests, request->id);
}

static void
request_return (RedisRequest *request)
{
  GTask *task = g_steal_pointer (&request->task);

  /* Handed over, not shared: json-glib counts an array's references
   * without atomics, and the task's callback runs in another thread. */
  g_task_return_pointer (task, g_steal_pointer (&request->sockets), (GDestroyNotify) json_array_unref);
  g_object_unref (task);
  g_hash_table_remove (request->self->requests, request->id);
}

static gboolean
on_request_timeout (gpointer data)
{
  RedisRequest *request = data;
  GTask *task = g_steal_pointer (&request->task);

  if (request->type == REQ_SERVER_SIDE_EMIT)
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                             "timeout reached: only %u responses received out of %u",
                             json_array_get_length (request->sockets),
                             json_array_get_length (request->sockets) + request->expected);
  else
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                             "timeout reached while waiting for fetchSockets response "
                             "(%u answers missing)", request->expected);
  g_object_unref (task);
  g_hash_table_remove (request->self->requests, request->id);
  return G_SOURCE_REMOVE;
}

/* Estimated heap bytes of a copy of @node (socketio-json-private.h's
 * costs). Its depth is bounded by the parser's REDIS_MAX_DEPTH. */
static gsize
json_tree_cost (JsonNode *node)
{
  gsize cost = SOCKET_IO_JSON_VALUE_COST;

  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      {
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;

        cost += SOCKET_IO_JSON_OBJECT_COST;
        json_object_iter_init (&iter, json_node_get_object (node));
        while (json_object_iter_next (&iter, &name, &member))
          cost += SOCKET_IO_JSON_MEMBER_COST + strlen (name) + json_tree_cost (member);
        break;
      }
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);

        cost += SOCKET_IO_JSON_ARRAY_COST;
        for (guint i = 0; i < json_array_get_length (array); i++)
          cost += SOCKET_IO_JSON_ELEMENT_COST + json_tree_cost (json_array_get_element (array, i));
        break;
      }
    case JSON_NODE_VALUE:
      if (json_node_get_value_type (node) == G_TYPE_STRING)
        cost += SOCKET_IO_JSON_STRING_COST + strlen (json_node_get_string (node));
      break;
    case JSON_NODE_NULL:
    default:
      break;
    }
  return cost;
}

/* Charges an answer of @cost to @request; FALSE (and the request failed)
 * past REDIS_MAX_REQUEST_BYTES. */
static gboolean
request_charge (RedisRequest *request,
                gsize         cost)
{
  if (cost > REDIS_MAX_REQUEST_BYTES - request->held)
    {
      g_debug ("Redis adapter %s: request %s: the answers exceed %u MiB",
               request->self->uid, request->id, REDIS_MAX_REQUEST_BYTES / (1024 * 1024));
      request_fail (request, "The answers to the request exceed the adapter's bound "
                             "(64 MiB of answers per request)");
      return FALSE;
    }
  request->held += cost;
  return TRUE;
}

static void
on_response (SocketIORedisAdapter *self,
             const char           *payload,
             gsize                 length)
{
  g_autoptr(JsonNode) root = NULL;
  JsonObject *response;
  const char *request_id;
  RedisRequest *request;
  JsonNode *sockets;

  if (length == 0 || payload[0] != '{' || (root = parse_json (self, payload, length)) == NULL)
    return;
  if (!JSON_NODE_HOLDS_OBJECT (root))
    return;
  response = json_node_get_object (root);
  request_id = json_object_get_string_member_with_default (response, "requestId", NULL);
  if (request_id == NULL || (request = g_hash_table_lookup (self->requests, request_id)) == NULL)
    return;
  if (request->type == REQ_SERVER_SIDE_EMIT)
    {
      JsonNode *data = json_object_get_member (response, "data");

      if (json_object_get_int_member_with_default (response, "type", -1) != REQ_SERVER_SIDE_EMIT)
        return;
      if (!request_charge (request, data != NULL ? json_tree_cost (data) : SOCKET_IO_JSON_VALUE_COST))
        return;
      json_array_add_element (request->sockets,
                              data != NULL ? json_node_copy (data) : json_node_new (JSON_NODE_NULL));
      /* The copies share their objects with @root: released here, before
       * the answers go to another thread (non-atomic counts). */
      g_clear_pointer (&root, json_node_unref);
      if (--request->expected == 0)
        request_return (request);
      return;
    }
  sockets = json_object_get_member (response, "sockets");
  if (sockets == NULL || !JSON_NODE_HOLDS_ARRAY (sockets))
    return;
  if (!request_charge (request, json_tree_cost (sockets)))
    return;
  for (guint i = 0; i < json_array_get_length (json_node_get_array (sockets)); i++)
    json_array_add_element (request->sockets,
                            json_node_copy (json_array_get_element (json_node_get_array (sockets), i)));
  g_clear_pointer (&root, json_node_unref);  /* as above */
  if (--request->expected == 0)
    request_return (request);
}

static void
on_fetch_numsub (redisAsyncContext *ac,
                 void              *r,
                 void              *privdata)
{
  RedisRequest *request = privdata;
  SocketIORedisAdapter *self = request->self;
  redisReply *reply = r;
  long long numsub;

  if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
      /* Redis gone meanwhile: the local sockets only, as when alone. */
      if (request->type == REQ_SERVER_SIDE_EMIT)
        request_fail (request, "PUBSUB NUMSUB failed: connection lost");
      else
        request_return (request);
      return;
    }
  numsub = reply->element[1]->integer;
  if (numsub <= 1 || self->pub.ac == NULL)
    {
      request_return (request);
      return;
    }
  request->expected = (guint) MIN (numsub - 1, G_MAXUINT);
  request->timeout = g_timeout_source_new (g_atomic_int_get (&self->requests_timeout));
  g_source_set_callback (request->timeout, on_request_timeout, request, NULL);
  g_source_attach (request->timeout, self->context);
  redisAsyncCommand (self->pub.ac, NULL, NULL, "PUBLISH %s %s", self->request_channel, request->request);
}

static void
fetch_call_free (gpointer data)
{
  RedisRequest *request = data;

  if (!request->inserted)   /* the thread stopped before it ran */
    request_free (request);
}

static gboolean
fetch_on_thread (gpointer data)
{
  RedisRequest *request = data;
  SocketIORedisAdapter *self = request->self;

  g_hash_table_insert (self->requests, request->id, request);
  request->inserted = TRUE;
  if (self->pub.ac == NULL || !self->pub.ready ||
      redisAsyncCommand (self->pub.ac, on_fetch_numsub, request, "PUBSUB NUMSUB %s",
                         self->request_channel) != REDIS_OK)
    {
      if (request->type == REQ_SERVER_SIDE_EMIT)
        request_fail (request, "Not connected to Redis");
      else
        request_return (request);   /* not connected: this node's sockets */
    }
  return G_SOURCE_REMOVE;
}

/**
 * socket_io_redis_adapter_fetch_sockets_async:
 * @self: a Redis adapter
 * @rooms: (nullable) (array zero-terminated=1): rooms addressed (none:
 *   every socket)
 * @except: (nullable) (array zero-terminated=1): rooms excluded
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called with the sockets
 * @user_data: data for @callback
 *
 * The sockets of every node of the cluster in any of @rooms and in none
 * of @except (the reference's `io.in(rooms).except(except).fetchSockets()`
 * on a Redis adapter): this node's, then those every other node answers
 * (REMOTE_FETCH) within the requests timeout. Not connected to Redis:
 * this node's only. Any thread; @callback runs in the caller's
 * thread-default main context.
 */
void
socket_io_redis_adapter_fetch_sockets_async (SocketIORedisAdapter *self,
                                             const char * const   *rooms,
                                             const char * const   *except,
                                             GCancellable         *cancellable,
                                             GAsyncReadyCallback   callback,
                                             gpointer              user_data)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonBuilder) local = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(JsonNode) local_root = NULL;
  RedisRequest *request;
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char id[7];

  g_return_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self));
  for (guint i = 0; i < 6; i++)
    id[i] = alphabet[g_random_int_range (0, 64)];
  id[6] = '\0';
  request = g_new0 (RedisRequest, 1);
  request->self = self;
  request->type = REQ_REMOTE_FETCH;
  request->id = g_strdup (id);
  request->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (request->task, socket_io_redis_adapter_fetch_sockets_async);

  json_builder_begin_array (local);
  add_local_sockets (self, local, rooms, except);
  json_builder_end_array (local);
  local_root = json_builder_get_root (local);
  request->sockets = json_array_ref (json_node_get_array (local_root));
  /* The Redis thread takes the array: nothing of it stays here
   * (non-atomic counts). */
  g_clear_pointer (&local_root, json_node_unref);
  json_builder_reset (local);  /* its root shared the array too */

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "uid");
  json_builder_add_string_value (builder, self->uid);
  json_builder_set_member_name (builder, "requestId");
  json_builder_add_string_value (builder, id);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, REQ_REMOTE_FETCH);
  json_builder_set_member_name (builder, "opts");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "rooms");
  json_builder_add_value (builder, strv_node (rooms));
  json_builder_set_member_name (builder, "except");
  json_builder_add_value (builder, strv_node (except));
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  request->request = json_generator_to_data (generator, NULL);
  /* request_free() answers the task if the thread stops first. */
  run_on_thread (self, G_PRIORITY_DEFAULT, fetch_on_thread, request, fetch_call_free);
}

/**
 * socket_io_redis_adapter_fetch_sockets_finish:
 * @self: a Redis adapter
 * @result: the result given to the callback
 * @error: return location for an error (%G_IO_ERROR_TIMED_OUT when a node
 *   did not answer within the requests timeout, as the reference rejects;
 *   %SOCKET_IO_ERROR_FAILED when the answers pass 64 MiB, estimated real
 *   bytes: PUBSUB NUMSUB, which sets how many are awaited, counts any
 *   subscriber of the request channel)
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): one object per socket: `id`,
 *   `handshake` (`address`, `url`, `headers`, `query`, `auth`; a Node
 *   node sends its whole handshake), `rooms`, `data`
 */
JsonArray *
socket_io_redis_adapter_fetch_sockets_finish (SocketIORedisAdapter  *self,
                                              GAsyncResult          *result,
                                              GError               **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* [name, args...] as the request's `data`, or NULL with @error set. */
static JsonNode *
server_side_data (JsonArray  *args,
                  GError    **error)
{
  JsonArray *array;
  JsonNode *node;

  if (args == NULL || json_array_get_length (args) == 0 ||
      !JSON_NODE_HOLDS_VALUE (json_array_get_element (args, 0)) ||
      json_node_get_value_type (json_array_get_element (args, 0)) != G_TYPE_STRING)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                           "A server-side emit needs an event name (a string) first");
      return NULL;
    }
  /* Deep: the caller's tree is only read (json_node_copy() would count
   * references to its objects and values without atomics, racing with
   * another thread that emits or copies the same @args). */
  array = json_array_new ();
  for (guint i = 0; i < json_array_get_length (args); i++)
    json_array_add_element (array, socket_io_redis_json_deep_copy (json_array_get_element (args, i)));
  node = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (node, array);
  return node;
}

/**
 * socket_io_redis_adapter_server_side_emit:
 * @self: a Redis adapter
 * @args: the event: its name (a string) first, then its arguments (JSON
 *   values); only read (other threads may use the same at once)
 * @error: return location for a %SOCKET_IO_ERROR_INVALID @args
 *
 * Sends an event to the other servers of the cluster, not to clients (the
 * reference's `io.serverSideEmit(name, ...args)` without ack): Node nodes
 * emit it on their namespace, C nodes emit
 * #SocketIORedisAdapter::server-side-event. Never waits for Redis; not
 * connected: the publication is dropped and counted, as a broadcast's. Any
 * thread.
 *
 * Returns: %TRUE if @args is an event
 */
gboolean
socket_io_redis_adapter_server_side_emit (SocketIORedisAdapter  *self,
                                          JsonArray             *args,
                                          GError               **error)
{
  g_autoptr(JsonBuilder) builder = NULL;
  JsonNode *data;

  g_return_val_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self), FALSE);
  data = server_side_data (args, error);
  if (data == NULL)
    return FALSE;
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "uid");
  json_builder_add_string_value (builder, self->uid);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, REQ_SERVER_SIDE_EMIT);
  json_builder_set_member_name (builder, "data");
  json_builder_add_value (builder, data);
  json_builder_end_object (builder);
  publish_json (self, self->request_channel, builder);
  return TRUE;
}

/**
 * socket_io_redis_adapter_server_side_emit_async:
 * @self: a Redis adapter
 * @args: the event: its name (a string) first, then its arguments;
 *   only read
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called with the answers
 * @user_data: data for @callback
 *
 * Sends an event to the other servers of the cluster and collects one
 * answer from each (the reference's `io.serverSideEmit(name, ...args,
 * callback)`): as many as PUBSUB NUMSUB counts other nodes, within the
 * requests timeout (socket_io_redis_adapter_set_requests_timeout()). Any
 * thread; @callback runs in the caller's thread-default main context.
 */
void
socket_io_redis_adapter_server_side_emit_async (SocketIORedisAdapter *self,
                                                JsonArray            *args,
                                                GCancellable         *cancellable,
                                                GAsyncReadyCallback   callback,
                                                gpointer              user_data)
{
  g_autoptr(JsonBuilder) builder = NULL;
  g_autoptr(JsonGenerator) generator = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autoptr(GError) error = NULL;
  RedisRequest *request;
  JsonNode *data;

  g_return_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self));
  data = server_side_data (args, &error);
  if (data == NULL)
    {
      g_task_report_error (self, callback, user_data, socket_io_redis_adapter_server_side_emit_async,
                           g_steal_pointer (&error));
      return;
    }
  request = g_new0 (RedisRequest, 1);
  request->self = self;
  request->type = REQ_SERVER_SIDE_EMIT;
  request->id = socket_io_redis_random_id ();
  request->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (request->task, socket_io_redis_adapter_server_side_emit_async);
  request->sockets = json_array_new ();
  builder = json_builder_new ();
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "uid");
  json_builder_add_string_value (builder, self->uid);
  json_builder_set_member_name (builder, "requestId");
  json_builder_add_string_value (builder, request->id);
  json_builder_set_member_name (builder, "type");
  json_builder_add_int_value (builder, REQ_SERVER_SIDE_EMIT);
  json_builder_set_member_name (builder, "data");
  json_builder_add_value (builder, data);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  generator = json_generator_new ();
  json_generator_set_root (generator, root);
  request->request = json_generator_to_data (generator, NULL);
  run_on_thread (self, G_PRIORITY_DEFAULT, fetch_on_thread, request, fetch_call_free);
}

/**
 * socket_io_redis_adapter_server_side_emit_finish:
 * @self: a Redis adapter
 * @result: the result given to the callback
 * @error: return location for an error: %G_IO_ERROR_TIMED_OUT when a node
 *   did not answer within the requests timeout (as the reference), Redis
 *   not connected, %SOCKET_IO_ERROR_INVALID arguments;
 *   %SOCKET_IO_ERROR_FAILED when the answers pass 64 MiB (estimated real
 *   bytes)
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): each other node's answer (one
 *   value each; empty when this node is alone)
 */
JsonArray *
socket_io_redis_adapter_server_side_emit_finish (SocketIORedisAdapter  *self,
                                                 GAsyncResult          *result,
                                                 GError               **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * socket_io_redis_adapter_set_requests_timeout:
 * @self: a Redis adapter
 * @timeout_ms: how long a request waits for the other nodes (default
 *   5000, as the reference's `requestsTimeout`)
 *
 * Any thread.
 */
void
socket_io_redis_adapter_set_requests_timeout (SocketIORedisAdapter *self,
                                              guint                 timeout_ms)
{
  g_return_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self));
  g_atomic_int_set (&self->requests_timeout, MAX (timeout_ms, 1));
}

/* ------------------------------------------------------------------ */
/* Connections (Redis thread)                                           */
/* ------------------------------------------------------------------ */

static void
update_connected (SocketIORedisAdapter *self)
{
  g_atomic_int_set (&self->connected, self->pub.ready && self->sub.ready);
}

static void
on_subscription (redisAsyncContext *ac,
                 void              *r,
                 void              *privdata)
{
  SocketIORedisAdapter *self = privdata;
  redisReply *reply = r;
  const char *kind;

  if (self->stopping)
    return;   /* disposed on this thread: its namespace is gone */
  if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING)
    return;
  kind = reply->element[0]->str;
  if (strcmp (kind, "pmessage") == 0 && reply->elements == 4 &&
      reply->element[2]->type == REDIS_REPLY_STRING && reply->element[3]->type == REDIS_REPLY_STRING)
    on_broadcast_message (self, reply->element[2]->str, reply->element[3]->str, reply->element[3]->len);
  else if (strcmp (kind, "message") == 0 &&
           reply->element[1]->type == REDIS_REPLY_STRING && reply->element[2]->type == REDIS_REPLY_STRING)
    {
      const char *channel = reply->element[1]->str;

      if (strcmp (channel, self->request_channel) == 0)
        on_request (self, reply->element[2]->str, reply->element[2]->len);
      else if (strcmp (channel, self->response_channel) == 0 ||
               strcmp (channel, self->specific_channel) == 0)
        on_response (self, reply->element[2]->str, reply->element[2]->len);
    }
  else if (strcmp (kind, "subscribe") == 0 || strcmp (kind, "psubscribe") == 0)
    {
      RedisConn *conn = &self->sub;

      /* Ready once the last of the four subscriptions is confirmed. */
      if (reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[2]->integer == 4)
        {
          conn->ready = TRUE;
          conn->backoff_ms = 0;
          update_connected (self);
          g_info ("Redis adapter %s: subscribed to %s*", self->uid, self->channel);
        }
    }
}

static void
on_select (redisAsyncContext *ac,
           void              *r,
           void              *privdata)
{
  RedisConn *conn = privdata;
  redisReply *reply = r;

  if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
    {
      conn->ready = TRUE;
      conn->backoff_ms = 0;
      update_connected (conn->self);
    }
  else if (reply != NULL && conn->ac != NULL)
    {
      g_warning ("Redis adapter %s: SELECT %d: %s", conn->self->uid, conn->self->db, reply->str);
      redisAsyncDisconnect (conn->ac);
    }
}

static gboolean
on_reconnect_timer (gpointer data)
{
  RedisConn *conn = data;

  g_clear_pointer (&conn->timer, g_source_unref);
  conn_start (conn);
  return G_SOURCE_REMOVE;
}

static void
conn_lost (RedisConn *conn)
{
  SocketIORedisAdapter *self = conn->self;

  conn->ac = NULL;
  conn->ready = FALSE;
  update_connected (self);
  if (self->stopping || conn->timer != NULL)
    return;
  conn->backoff_ms = conn->backoff_ms == 0 ? REDIS_BACKOFF_MIN_MS
                                           : MIN (conn->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
  conn->timer = g_timeout_source_new (g_random_int_range (conn->backoff_ms / 2, conn->backoff_ms + 1));
  g_source_set_callback (conn->timer, on_reconnect_timer, conn, NULL);
  g_source_attach (conn->timer, self->context);
}

static void
on_connect (const redisAsyncContext *ac,
            int                      status)
{
  RedisConn *conn = ac->data;
  SocketIORedisAdapter *self = conn->self;

  if (status != REDIS_OK)
    {
      g_debug ("Redis adapter %s: cannot connect to %s:%d: %s", self->uid, self->host, self->port,
               ac->errstr);
      conn_lost (conn);   /* hiredis frees @ac after this */
      return;
    }
  if (conn->subscriber)
    {
      g_autofree char *pattern = g_strconcat (self->channel, "*", NULL);

      redisAsyncCommand (conn->ac, on_subscription, self, "PSUBSCRIBE %s", pattern);
      redisAsyncCommand (conn->ac, on_subscription, self, "SUBSCRIBE %s %s %s",
                         self->request_channel, self->response_channel, self->specific_channel);
    }
  else if (self->db != 0)
    redisAsyncCommand (conn->ac, on_select, conn, "SELECT %d", self->db);
  else
    {
      conn->ready = TRUE;
      conn->backoff_ms = 0;
      update_connected (self);
    }
}

static void
on_disconnect (const redisAsyncContext *ac,
               int                      status)
{
  RedisConn *conn = ac->data;

  if (!conn->self->stopping)
    g_warning ("Redis adapter %s: lost %s connection to %s:%d (%s); reconnecting",
               conn->self->uid, conn->subscriber ? "subscriber" : "publisher",
               conn->self->host, conn->self->port, status == REDIS_OK ? "closed" : ac->errstr);
  conn_lost (conn);   /* hiredis frees @ac after this */
}

/* hiredis's cleanup hook, wrapped: the GLib adapter's own cleanup, then
 * the source goes (its dispatch must not go on to read a freed context:
 * after a failed write it would handle a read too). */
static void
conn_source_cleanup (void *data)
{
  RedisSource *source = data;
  RedisConn *conn = source->ac->data;

  redis_source_cleanup (data);
  source->poll_fd.revents = 0;
  g_source_destroy ((GSource *) source);
  if (conn != NULL && conn->source == (GSource *) source)
    conn->source = NULL;
  g_source_unref ((GSource *) source);
}

static void
conn_start (RedisConn *conn)
{
  SocketIORedisAdapter *self = conn->self;
  redisAsyncContext *ac = redisAsyncConnect (self->host, self->port);

  if (ac == NULL || ac->err)
    {
      g_debug ("Redis adapter %s: cannot connect to %s:%d: %s", self->uid, self->host, self->port,
               ac != NULL ? ac->errstr : "out of memory");
      if (ac != NULL)
        redisAsyncFree (ac);
      conn_lost (conn);
      return;
    }
  ac->data = conn;
  conn->ac = ac;
  conn->source = redis_source_new (ac);
  ac->ev.cleanup = conn_source_cleanup;
  g_source_attach (conn->source, self->context);
  redisAsyncSetConnectCallback (ac, on_connect);
  redisAsyncSetDisconnectCallback (ac, on_disconnect);
}

static gpointer
redis_thread (gpointer data)
{
  SocketIORedisAdapter *self = data;

  g_main_context_push_thread_default (self->context);
  conn_start (&self->pub);
  conn_start (&self->sub);
  g_main_loop_run (self->loop);
  self->stopping = TRUE;
  for (RedisConn *conn = &self->pub; conn <= &self->sub; conn++)
    {
      if (conn->timer != NULL)
        {
          g_source_destroy (conn->timer);
          g_clear_pointer (&conn->timer, g_source_unref);
        }
      if (conn->ac != NULL)
        redisAsyncFree (conn->ac);   /* callbacks get NULL replies: counted */
      conn->ac = NULL;
    }
  /* Requests still waiting: answered with an error, on this thread. */
  g_hash_table_remove_all (self->requests);
  g_main_context_pop_thread_default (self->context);
  if (self->disposed_on_thread)
    g_object_unref (self);   /* the last ref: finalized here */
  return NULL;
}

/* ------------------------------------------------------------------ */
/* GObject                                                              */
/* ------------------------------------------------------------------ */

static gboolean
quit_loop (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

static void
socket_io_redis_adapter_dispose (GObject *object)
{
  SocketIORedisAdapter *self = SOCKET_IO_REDIS_ADAPTER (object);

  if (self->thread != NULL)
    {
      /* Through the context: a g_main_loop_quit() made before the thread
       * entered g_main_loop_run() would be lost. */
      run_on_thread (self, G_PRIORITY_HIGH, quit_loop,
                     g_main_loop_ref (self->loop), (GDestroyNotify) g_main_loop_unref);
      if (g_thread_self () == self->thread)
        {
          /* The last ref dropped on the Redis thread itself: the server
           * stopped while a socket was held there (the GTask of an ack a
           * peer's BROADCAST request waits for is finalized there, and
           * the socket with it, then its namespace, which owns this
           * adapter). It cannot join itself: it keeps the adapter alive
           * until redis_thread() has finished with it, which drops this
           * ref last (finalize then runs there), and handles no more
           * messages (the namespace is gone). */
          g_debug ("Redis adapter %s disposed on its own thread", self->uid);
          self->stopping = TRUE;
          self->disposed_on_thread = TRUE;
          g_object_ref (self);
          g_thread_unref (self->thread);
        }
      else
        g_thread_join (self->thread);
      self->thread = NULL;
    }
  G_OBJECT_CLASS (socket_io_redis_adapter_parent_class)->dispose (object);
}

static void
socket_io_redis_adapter_finalize (GObject *object)
{
  SocketIORedisAdapter *self = SOCKET_IO_REDIS_ADAPTER (object);

  g_clear_pointer (&self->requests, g_hash_table_unref);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_free (self->uid);
  g_free (self->host);
  g_free (self->key);
  g_free (self->channel);
  g_free (self->request_channel);
  g_free (self->response_channel);
  g_free (self->specific_channel);
  G_OBJECT_CLASS (socket_io_redis_adapter_parent_class)->finalize (object);
}

/* The first non-NULL answer wins. */
static gboolean
first_answer (GSignalInvocationHint *hint,
              GValue                *accumulated,
              const GValue          *returned,
              gpointer               data)
{
  JsonNode *node = g_value_get_boxed (returned);

  if (node == NULL)
    return TRUE;
  g_value_set_boxed (accumulated, node);
  return FALSE;
}

static void
socket_io_redis_adapter_class_init (SocketIORedisAdapterClass *klass)
{
  SocketIOAdapterClass *adapter_class = SOCKET_IO_ADAPTER_CLASS (klass);

  G_OBJECT_CLASS (klass)->dispose = socket_io_redis_adapter_dispose;
  G_OBJECT_CLASS (klass)->finalize = socket_io_redis_adapter_finalize;
  adapter_class->broadcast = redis_broadcast;
  adapter_class->add_sockets = redis_add_sockets;
  adapter_class->del_sockets = redis_del_sockets;
  adapter_class->disconnect_sockets = redis_disconnect_sockets;

  /**
   * SocketIORedisAdapter::server-side-event:
   * @self: the adapter
   * @name: the event's name
   * @args: the event's arguments (JSON values), the adapter thread's
   *
   * Another node of the cluster (or an emitter) sent an event to the
   * servers (the reference's `io.serverSideEmit(name, ...args)`; a Node
   * node emits it on its namespace). Detailed by @name when a handler was
   * connected for that name (`server-side-event::ping`). Emitted on the
   * adapter's own thread: a handler must not block, and takes its own
   * locks for what it shares.
   *
   * @args is valid during the handler, and its tree belongs to the
   * adapter's thread: json-glib counts the references of a #JsonObject, a
   * #JsonArray and a value without atomics, and json_node_copy() shares
   * them, so a handler that passes the arguments to another thread passes
   * a deep copy (json_to_string() here, json_from_string() there, say),
   * not @args or json_node_copy()s of its elements.
   *
   * Returns: (transfer full) (nullable): the answer, when the sender asked
   *   for one (with socket_io_redis_adapter_server_side_emit_async()); the
   *   first handler to return non-%NULL answers. %NULL: no answer from
   *   this node (the sender's request times out, as with a Node node
   *   whose handler does not call its callback). The adapter takes it and
   *   releases it on its thread: it shares no object, array or value
   *   with a tree another thread keeps (built here, from @args or anew)
   */
  signals[SIGNAL_SERVER_SIDE_EVENT] =
    g_signal_new ("server-side-event", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, first_answer, NULL, NULL,
                  JSON_TYPE_NODE, 2, G_TYPE_STRING, JSON_TYPE_ARRAY);
}

static void
socket_io_redis_adapter_init (SocketIORedisAdapter *self)
{
  self->uid = socket_io_redis_random_id ();
  self->pub.self = self;
  self->sub.self = self;
  self->sub.subscriber = TRUE;
  self->requests = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, request_free);
  self->requests_timeout = REDIS_DEFAULT_REQUESTS_TIMEOUT;
}

/**
 * socket_io_redis_adapter_new:
 * @nsp: the namespace the adapter serves
 * @url: `redis://HOST[:PORT][/DB]`
 * @key: (nullable): the channels' prefix (%NULL: `socket.io`, as npm
 *   @socket.io/redis-adapter)
 * @error: return location for an invalid @url
 *
 * Creates a Redis adapter for @nsp (install it with
 * socket_io_namespace_set_adapter() before any client joins). It starts
 * its own thread, which connects to Redis (and reconnects with backoff
 * whenever the connection is lost) without blocking the caller: until it
 * is connected, broadcasts reach the local sockets only and every
 * publication that could not be made is counted
 * (socket_io_redis_adapter_get_publish_failures()). Any thread.
 *
 * Returns: (transfer full) (nullable): the adapter, or %NULL with @error set
 */
SocketIOAdapter *
socket_io_redis_adapter_new (SocketIONamespace  *nsp,
                             const char         *url,
                             const char         *key,
                             GError            **error)
{
  g_autoptr(SocketIORedisAdapter) self = NULL;
  const char *name;

  g_return_val_if_fail (SOCKET_IO_IS_NAMESPACE (nsp), NULL);
  g_return_val_if_fail (url != NULL, NULL);
  self = g_object_new (SOCKET_IO_TYPE_REDIS_ADAPTER, "namespace", nsp, NULL);
  if (!socket_io_redis_parse_url (url, &self->host, &self->port, &self->db, error))
    return NULL;
  name = socket_io_namespace_get_name (nsp);
  self->key = g_strdup (key != NULL ? key : "socket.io");
  self->channel = g_strconcat (self->key, "#", name, "#", NULL);
  self->request_channel = g_strconcat (self->key, "-request#", name, "#", NULL);
  self->response_channel = g_strconcat (self->key, "-response#", name, "#", NULL);
  self->specific_channel = g_strconcat (self->response_channel, self->uid, "#", NULL);
  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new ("sio-redis", redis_thread, self);
  return SOCKET_IO_ADAPTER (g_steal_pointer (&self));
}

/**
 * socket_io_redis_adapter_get_uid:
 * @self: a Redis adapter
 *
 * Any thread.
 *
 * Returns: this node's id in the cluster (6 characters)
 */
const char *
socket_io_redis_adapter_get_uid (SocketIORedisAdapter *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self), NULL);
  return self->uid;
}

/**
 * socket_io_redis_adapter_get_publish_failures:
 * @self: a Redis adapter
 *
 * How many publications (broadcasts, requests, responses) could not be
 * made: Redis unreachable or restarting, the publication queue at its
 * bound, or a packet that could not be encoded. Any thread.
 *
 * Returns: the count since the adapter was made
 */
guint64
socket_io_redis_adapter_get_publish_failures (SocketIORedisAdapter *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self), 0);
  return __atomic_load_n (&self->publish_failures, __ATOMIC_RELAXED);
}

/**
 * socket_io_redis_adapter_is_connected:
 * @self: a Redis adapter
 *
 * Any thread.
 *
 * Returns: whether both Redis connections (publisher and subscriber) are
 *   up and subscribed
 */
gboolean
socket_io_redis_adapter_is_connected (SocketIORedisAdapter *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self), FALSE);
  return g_atomic_int_get (&self->connected);
}

/* serverCount: PUBSUB NUMSUB of the request channel (every node's adapter
 * of this namespace, Node's and C's, subscribes to it). */
typedef struct
{
  GTask *task;   /* NULL once handed to hiredis */
} RedisCountCall;

static void
on_numsub (redisAsyncContext *ac,
           void              *r,
           void              *privdata)
{
  g_autoptr(GTask) task = privdata;
  redisReply *reply = r;

  if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[1]->type == REDIS_REPLY_INTEGER)
    g_task_return_int (task, reply->element[1]->integer);
  else
    g_task_return_new_error (task, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED,
                             "PUBSUB NUMSUB failed: %s",
                             reply == NULL ? "connection lost"
                             : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
}

static gboolean
server_count_on_thread (gpointer data)
{
  RedisCountCall *call = data;
  SocketIORedisAdapter *self = g_task_get_source_object (call->task);
  GTask *task = g_steal_pointer (&call->task);

  if (self->pub.ac == NULL || !self->pub.ready ||
      redisAsyncCommand (self->pub.ac, on_numsub, task, "PUBSUB NUMSUB %s",
                         self->request_channel) != REDIS_OK)
    {
      g_task_return_new_error (task, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED,
                               "Not connected to Redis");
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

static void
server_count_call_free (gpointer data)
{
  RedisCountCall *call = data;

  /* Never ran: the adapter's thread stopped first. */
  if (call->task != NULL)
    {
      g_task_return_new_error (call->task, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED,
                               "The Redis adapter stopped");
      g_object_unref (call->task);
    }
  g_free (call);
}

/**
 * socket_io_redis_adapter_server_count_async:
 * @self: a Redis adapter
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called with the count
 * @user_data: data for @callback
 *
 * Counts the nodes of the cluster serving this namespace, this one
 * included (the reference's `serverCount()`: PUBSUB NUMSUB of
 * `<key>-request#<nsp>#`). Never waits for Redis on the calling thread.
 * Any thread; @callback runs in the caller's thread-default main context.
 */
void
socket_io_redis_adapter_server_count_async (SocketIORedisAdapter *self,
                                            GCancellable         *cancellable,
                                            GAsyncReadyCallback   callback,
                                            gpointer              user_data)
{
  RedisCountCall *call;

  g_return_if_fail (SOCKET_IO_IS_REDIS_ADAPTER (self));
  call = g_new0 (RedisCountCall, 1);
  call->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (call->task, socket_io_redis_adapter_server_count_async);
  run_on_thread (self, G_PRIORITY_DEFAULT, server_count_on_thread, call, server_count_call_free);
}

/**
 * socket_io_redis_adapter_server_count_finish:
 * @self: a Redis adapter
 * @result: the result given to the callback
 * @error: return location for an error (Redis not connected, the
 *   connection lost meanwhile, the adapter stopped)
 *
 * Any thread.
 *
 * Returns: the number of nodes, or 0 with @error set
 */
guint
socket_io_redis_adapter_server_count_finish (SocketIORedisAdapter  *self,
                                             GAsyncResult          *result,
                                             GError               **error)
{
  gssize n;

  g_return_val_if_fail (g_task_is_valid (result, self), 0);
  n = g_task_propagate_int (G_TASK (result), error);
  return n < 0 ? 0 : (guint) n;
}
