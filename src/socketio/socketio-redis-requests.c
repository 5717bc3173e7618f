/* socketio-redis-requests.c: the Redis adapter's messages from other nodes
 *
 * Broadcasts received from other nodes, the requests of the
 * request/response protocol (fetchSockets, serverSideEmit, remote
 * join/leave/disconnect, broadcasts with acks) answered for this node, and
 * the responses to this node's own requests. Redis thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-adapter-internal.h"

#include <string.h>

guint socket_io_redis_adapter_signals[N_SIGNALS];
/* The in-memory adapter's class, set by the class_init of
 * socketio-redis-adapter.c (its socket_io_redis_adapter_parent_class):
 * what this file calls to deliver locally. */
gpointer socket_io_redis_parent_class;

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

void
socket_io_redis_on_broadcast_message (SocketIORedisAdapter *self,
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
  if (!socket_io_redis_unpack_checked (&msg, payload, length))
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
      data = socket_io_redis_unpack_json (data_obj, attachments, 0, &budget);
      if (data == NULL)
        goto out;
    }
  opts = socket_io_redis_unpack_json (opts_obj, NULL, 0, &budget);
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
  rooms = socket_io_redis_json_rooms (json_object_get_member (json_node_get_object (opts), "rooms"));
  except = socket_io_redis_json_rooms (json_object_get_member (json_node_get_object (opts), "except"));
  SOCKET_IO_ADAPTER_CLASS (socket_io_redis_parent_class)->broadcast (
      adapter, text, encoded_attachments,
      (const char * const *) rooms->pdata, (const char * const *) except->pdata,
      socket_io_redis_json_flags (json_object_get_member (json_node_get_object (opts), "flags")) | SOCKET_IO_BROADCAST_LOCAL);
out:
  msgpack_unpacked_destroy (&msg);
}

static void
publish_response (SocketIORedisAdapter *self,
                  JsonBuilder          *builder)
{
  socket_io_redis_publish_json (self, self->response_channel, builder);
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
      socket_io_redis_publish (self, self->response_channel, socket_io_redis_bytes_take_exact (sbuf.data, sbuf.size));
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

  ids = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_parent_class)->sockets (
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
  socket_io_redis_publish_json (self, self->response_channel, builder);
}

/* The local sockets addressed, as Node's REMOTE_FETCH response lists them:
 * {id, handshake {address, url, headers, query, auth}, rooms, data}. */
void
socket_io_redis_add_local_sockets (SocketIORedisAdapter *self,
                                   JsonBuilder          *builder,
                                   const char * const   *rooms,
                                   const char * const   *except)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  SocketIONamespace *nsp = socket_io_adapter_get_namespace (adapter);
  g_auto(GStrv) ids = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_parent_class)->sockets (adapter, rooms, except);

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
      json_builder_add_value (builder, socket_io_redis_strv_node ((const char * const *) socket_rooms));
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

void
socket_io_redis_on_request (SocketIORedisAdapter *self,
                            const char           *payload,
                            gsize                 length)
{
  SocketIOAdapter *adapter = SOCKET_IO_ADAPTER (self);
  SocketIOAdapterClass *parent = SOCKET_IO_ADAPTER_CLASS (socket_io_redis_parent_class);
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
      if (socket_io_redis_unpack_checked (&msg, payload, length))
        root = socket_io_redis_unpack_json (&msg.data, attachments, 0, &budget);
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
      rooms = socket_io_redis_json_rooms (json_object_get_member (json_node_get_object (opts), "rooms"));
      except = socket_io_redis_json_rooms (json_object_get_member (json_node_get_object (opts), "except"));
    }
  else
    opts = NULL;
  if (uid != NULL && strcmp (uid, self->uid) == 0)
    return;   /* ours: applied locally when made */

  switch (type)
    {
    case REQ_SOCKETS:
      {
        g_autoptr(GPtrArray) want = socket_io_redis_json_rooms (json_object_get_member (request, "rooms"));
        g_auto(GStrv) ids = parent->sockets (adapter, (const char * const *) want->pdata, NULL);

        builder = json_builder_new ();
        json_builder_begin_object (builder);
        json_builder_set_member_name (builder, "requestId");
        json_builder_add_string_value (builder, request_id);
        json_builder_set_member_name (builder, "sockets");
        json_builder_add_value (builder, socket_io_redis_strv_node ((const char * const *) ids));
        json_builder_end_object (builder);
        publish_response (self, builder);
      }
      break;

    case REQ_REMOTE_JOIN:
    case REQ_REMOTE_LEAVE:
    case REQ_REMOTE_DISCONNECT:
      if (opts != NULL)
        {
          g_autoptr(GPtrArray) targets = socket_io_redis_json_rooms (json_object_get_member (request, "rooms"));

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
          socket_io_redis_add_local_sockets (self, builder, (const char * const *) rooms->pdata,
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
        g_signal_emit (self, socket_io_redis_adapter_signals[SIGNAL_SERVER_SIDE_EVENT], g_quark_try_string (name),
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

void
socket_io_redis_request_free (gpointer data)
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

void
socket_io_redis_on_response (SocketIORedisAdapter *self,
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

void
socket_io_redis_fetch_call_free (gpointer data)
{
  RedisRequest *request = data;

  if (!request->inserted)   /* the thread stopped before it ran */
    socket_io_redis_request_free (request);
}

gboolean
socket_io_redis_fetch_on_thread (gpointer data)
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
