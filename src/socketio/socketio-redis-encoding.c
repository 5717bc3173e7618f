/* socketio-redis-encoding.c: the Redis adapter's decoding of messages
 *
 * msgpack from other nodes checked and turned into JSON trees (bounded in
 * depth and size), and the JSON fields of requests (rooms, flags).
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-adapter-internal.h"

#include <string.h>

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
gboolean
socket_io_redis_unpack_checked (msgpack_unpacked *msg,
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
JsonNode *
socket_io_redis_unpack_json (const msgpack_object *obj,
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
            JsonNode *element = socket_io_redis_unpack_json (&obj->via.array.ptr[i], attachments, depth + 1, budget);

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
            value = socket_io_redis_unpack_json (&kv->val, attachments, depth + 1, budget);
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
GPtrArray *
socket_io_redis_json_rooms (JsonNode *node)
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

JsonNode *
socket_io_redis_strv_node (const char * const *strv)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
    json_array_add_string_element (array, strv[i]);
  json_node_take_array (node, array);
  return node;
}

SocketIOBroadcastFlags
socket_io_redis_json_flags (JsonNode *node)
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
