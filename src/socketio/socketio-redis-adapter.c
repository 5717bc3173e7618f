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
 * an idle source attached to its context (socket_io_redis_run_on_thread(); never
 * g_main_context_invoke(), which runs the function on the calling thread
 * when the context is not owned yet) and never wait for Redis. Messages from
 * other nodes are delivered from that thread through the in-memory
 * adapter (the parent class), which is thread-safe.
 * State: `pub`, `sub`, timers: Redis thread only. `publish_failures`,
 * `pending_bytes`, `connected`: atomics.
 *
 * This file: the object, its virtual functions and its API; the others
 * are listed in socketio-redis-adapter-internal.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-adapter-internal.h"

#include <string.h>

#define REDIS_DEFAULT_REQUESTS_TIMEOUT 5000

G_DEFINE_FINAL_TYPE (SocketIORedisAdapter, socket_io_redis_adapter, SOCKET_IO_TYPE_ADAPTER)

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
        socket_io_redis_count_failure (self, self->channel, error != NULL ? error->message : "incomplete packet");
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
          socket_io_redis_publish (self, channel, socket_io_redis_bytes_take_exact (sbuf.data, sbuf.size));
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
  json_builder_add_value (builder, socket_io_redis_strv_node (rooms));
  json_builder_set_member_name (builder, "except");
  json_builder_add_value (builder, socket_io_redis_strv_node (except));
  json_builder_end_object (builder);
  if (type == REQ_REMOTE_DISCONNECT)
    {
      json_builder_set_member_name (builder, "close");
      json_builder_add_boolean_value (builder, close_transport);
    }
  else
    {
      json_builder_set_member_name (builder, "rooms");
      json_builder_add_value (builder, socket_io_redis_strv_node (target_rooms));
    }
  json_builder_end_object (builder);
  socket_io_redis_publish_json (self, self->request_channel, builder);
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
  socket_io_redis_add_local_sockets (self, local, rooms, except);
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
  json_builder_add_value (builder, socket_io_redis_strv_node (rooms));
  json_builder_set_member_name (builder, "except");
  json_builder_add_value (builder, socket_io_redis_strv_node (except));
  json_builder_end_object (builder);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  request->request = json_generator_to_data (generator, NULL);
  /* socket_io_redis_request_free() answers the task if the thread stops first. */
  socket_io_redis_run_on_thread (self, G_PRIORITY_DEFAULT, socket_io_redis_fetch_on_thread, request, socket_io_redis_fetch_call_free);
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
  socket_io_redis_publish_json (self, self->request_channel, builder);
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
  socket_io_redis_run_on_thread (self, G_PRIORITY_DEFAULT, socket_io_redis_fetch_on_thread, request, socket_io_redis_fetch_call_free);
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

static void
socket_io_redis_adapter_dispose (GObject *object)
{
  SocketIORedisAdapter *self = SOCKET_IO_REDIS_ADAPTER (object);

  if (self->thread != NULL)
    {
      /* Through the context: a g_main_loop_quit() made before the thread
       * entered g_main_loop_run() would be lost. */
      socket_io_redis_run_on_thread (self, G_PRIORITY_HIGH, socket_io_redis_quit_loop,
                                     g_main_loop_ref (self->loop), (GDestroyNotify) g_main_loop_unref);
      if (g_thread_self () == self->thread)
        {
          /* The last ref dropped on the Redis thread itself: the server
           * stopped while a socket was held there (the GTask of an ack a
           * peer's BROADCAST request waits for is finalized there, and
           * the socket with it, then its namespace, which owns this
           * adapter). It cannot join itself: it keeps the adapter alive
           * until socket_io_redis_thread() has finished with it, which drops this
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

  socket_io_redis_parent_class = socket_io_redis_adapter_parent_class;
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
  socket_io_redis_adapter_signals[SIGNAL_SERVER_SIDE_EVENT] =
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
  self->requests = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, socket_io_redis_request_free);
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
  self->thread = g_thread_new ("sio-redis", socket_io_redis_thread, self);
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
  socket_io_redis_run_on_thread (self, G_PRIORITY_DEFAULT, server_count_on_thread, call, server_count_call_free);
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

