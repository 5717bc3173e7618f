/* socketio-redis-adapter-internal.h: what the Redis adapter's files share
 *
 * The adapter's struct, limits and message types, and the functions its
 * files call across. Only socketio-redis-*.c files of the adapter include
 * it. The files, each calling only those listed before it
 * (tests/check-file-cycles.py checks there is no cycle):
 * - socketio-redis-encoding.c: msgpack and JSON from other nodes, checked;
 * - socketio-redis-publish.c: the Redis thread's queue, PUBLISH;
 * - socketio-redis-requests.c: other nodes' broadcasts, requests and
 *   responses;
 * - socketio-redis-connection.c: the thread and the two connections;
 * - socketio-redis-adapter.c: SocketIORedisAdapter, its virtual functions
 *   and its API (threads: see its top comment).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "socketio/socketio-redis.h"
#include "socketio-json-private.h"
#include "socketio-packet-private.h"
#include "socketio-redis-private.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/glib.h>
#include <msgpack.h>

G_BEGIN_DECLS

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

enum {
  SIGNAL_SERVER_SIDE_EVENT,
  N_SIGNALS
};

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

/* socketio-redis-connection.c */
gpointer socket_io_redis_thread (gpointer data);
gboolean socket_io_redis_quit_loop (gpointer loop);

/* socketio-redis-encoding.c */
gboolean socket_io_redis_unpack_checked (msgpack_unpacked *msg,
                                         const char       *payload,
                                         gsize             length);
JsonNode *socket_io_redis_unpack_json (const msgpack_object *obj,
                                       GPtrArray            *attachments,
                                       guint                 depth,
                                       gsize                *budget);
GPtrArray *socket_io_redis_json_rooms (JsonNode *node);
JsonNode *socket_io_redis_strv_node (const char * const *strv);
SocketIOBroadcastFlags socket_io_redis_json_flags (JsonNode *node);

/* socketio-redis-publish.c */
void socket_io_redis_run_on_thread (SocketIORedisAdapter *self,
                                    gint                  priority,
                                    GSourceFunc           func,
                                    gpointer              data,
                                    GDestroyNotify        notify);
GBytes *socket_io_redis_bytes_take_exact (char  *data,
                                          gsize  size);
void socket_io_redis_count_failure (SocketIORedisAdapter *self,
                                    const char           *channel,
                                    const char           *why);
void socket_io_redis_publish (SocketIORedisAdapter *self,
                              const char           *channel,
                              GBytes               *payload);
void socket_io_redis_publish_json (SocketIORedisAdapter *self,
                                   const char           *channel,
                                   JsonBuilder          *builder);

/* socketio-redis-requests.c */
extern guint socket_io_redis_adapter_signals[N_SIGNALS];
extern gpointer socket_io_redis_parent_class;
void socket_io_redis_on_broadcast_message (SocketIORedisAdapter *self,
                                           const char           *channel,
                                           const char           *payload,
                                           gsize                 length);
void socket_io_redis_add_local_sockets (SocketIORedisAdapter *self,
                                        JsonBuilder          *builder,
                                        const char * const   *rooms,
                                        const char * const   *except);
void socket_io_redis_on_request (SocketIORedisAdapter *self,
                                 const char           *payload,
                                 gsize                 length);
void socket_io_redis_request_free (gpointer data);
void socket_io_redis_on_response (SocketIORedisAdapter *self,
                                  const char           *payload,
                                  gsize                 length);
void socket_io_redis_fetch_call_free (gpointer data);
gboolean socket_io_redis_fetch_on_thread (gpointer data);

G_END_DECLS
