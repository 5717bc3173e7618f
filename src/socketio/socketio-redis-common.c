/* socketio-redis-common.c: helpers shared by the Redis adapter and the
 * Redis emitter (socketio-redis-private.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-private.h"
#include "socketio/socketio-error.h"

#include <string.h>

static gboolean
node_is_placeholder (JsonNode *node,
                     guint    *num)
{
  JsonObject *object;
  JsonNode *flag, *index;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return FALSE;
  object = json_node_get_object (node);
  if (json_object_get_size (object) != 2)
    return FALSE;
  flag = json_object_get_member (object, "_placeholder");
  index = json_object_get_member (object, "num");
  if (flag == NULL || index == NULL || !JSON_NODE_HOLDS_VALUE (flag) ||
      json_node_get_value_type (flag) != G_TYPE_BOOLEAN || !json_node_get_boolean (flag) ||
      !JSON_NODE_HOLDS_VALUE (index) || json_node_get_value_type (index) != G_TYPE_INT64)
    return FALSE;
  *num = (guint) json_node_get_int (index);
  return TRUE;
}

void
socket_io_redis_pack_string (msgpack_packer *pk,
                             const char     *str)
{
  gsize len = strlen (str);

  msgpack_pack_str (pk, len);
  msgpack_pack_str_body (pk, str, len);
}

void
socket_io_redis_pack_json (msgpack_packer *pk,
                           JsonNode       *node,
                           GPtrArray      *attachments)
{
  guint num;

  if (node == NULL)
    {
      msgpack_pack_nil (pk);
      return;
    }
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_NULL:
      msgpack_pack_nil (pk);
      break;
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint len = json_array_get_length (array);

        msgpack_pack_array (pk, len);
        for (guint i = 0; i < len; i++)
          socket_io_redis_pack_json (pk, json_array_get_element (array, i), attachments);
      }
      break;
    case JSON_NODE_OBJECT:
      if (attachments != NULL && node_is_placeholder (node, &num) && num < attachments->len)
        {
          gsize size;
          const void *data = g_bytes_get_data (g_ptr_array_index (attachments, num), &size);

          msgpack_pack_bin (pk, size);
          msgpack_pack_bin_body (pk, data, size);
        }
      else
        {
          JsonObject *object = json_node_get_object (node);
          JsonObjectIter iter;
          const char *member;
          JsonNode *value;

          msgpack_pack_map (pk, json_object_get_size (object));
          json_object_iter_init_ordered (&iter, object);
          while (json_object_iter_next_ordered (&iter, &member, &value))
            {
              socket_io_redis_pack_string (pk, member);
              socket_io_redis_pack_json (pk, value, attachments);
            }
        }
      break;
    case JSON_NODE_VALUE:
      switch (json_node_get_value_type (node))
        {
        case G_TYPE_INT64:
          msgpack_pack_int64 (pk, json_node_get_int (node));
          break;
        case G_TYPE_DOUBLE:
          msgpack_pack_double (pk, json_node_get_double (node));
          break;
        case G_TYPE_BOOLEAN:
          if (json_node_get_boolean (node))
            msgpack_pack_true (pk);
          else
            msgpack_pack_false (pk);
          break;
        case G_TYPE_STRING:
          socket_io_redis_pack_string (pk, json_node_get_string (node));
          break;
        default:
          msgpack_pack_nil (pk);
        }
      break;
    }
}

gboolean
socket_io_redis_parse_url (const char  *url,
                           char       **host,
                           int         *port,
                           int         *db,
                           GError     **error)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, error);
  const char *path;
  guint64 number = 0;

  if (uri == NULL)
    return FALSE;
  if (g_strcmp0 (g_uri_get_scheme (uri), "redis") != 0 || g_uri_get_host (uri) == NULL)
    {
      g_set_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                   "Not a redis://HOST[:PORT][/DB] URL: %s", url);
      return FALSE;
    }
  path = g_uri_get_path (uri);
  if (path != NULL && path[0] == '/' && path[1] != '\0' &&
      !g_ascii_string_to_unsigned (path + 1, 10, 0, G_MAXINT, &number, error))
    return FALSE;
  *host = g_strdup (g_uri_get_host (uri));
  *port = g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 6379;
  *db = (int) number;
  return TRUE;
}

char *
socket_io_redis_random_id (void)
{
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char id[7];

  for (guint i = 0; i < 6; i++)
    id[i] = alphabet[g_random_int_range (0, 64)];
  id[6] = '\0';
  return g_strdup (id);
}

/* Depth: the parser's bound, or the application's own data. */
JsonNode *
socket_io_redis_json_deep_copy (JsonNode *node)
{
  JsonNode *copy = json_node_alloc ();

  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      {
        JsonObject *object = json_object_new ();
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;

        /* In order: the copy is what goes on the wire. */
        json_object_iter_init_ordered (&iter, json_node_get_object (node));
        while (json_object_iter_next_ordered (&iter, &name, &member))
          json_object_set_member (object, name, socket_io_redis_json_deep_copy (member));
        json_node_init_object (copy, object);
        json_object_unref (object);
        break;
      }
    case JSON_NODE_ARRAY:
      {
        JsonArray *source = json_node_get_array (node);
        JsonArray *array = json_array_sized_new (json_array_get_length (source));

        for (guint i = 0; i < json_array_get_length (source); i++)
          json_array_add_element (array, socket_io_redis_json_deep_copy (json_array_get_element (source, i)));
        json_node_init_array (copy, array);
        json_array_unref (array);
        break;
      }
    case JSON_NODE_VALUE:
      /* A new JsonValue: json_node_copy() would share it. */
      switch (json_node_get_value_type (node))
        {
        case G_TYPE_INT64:
          json_node_init_int (copy, json_node_get_int (node));
          break;
        case G_TYPE_DOUBLE:
          json_node_init_double (copy, json_node_get_double (node));
          break;
        case G_TYPE_BOOLEAN:
          json_node_init_boolean (copy, json_node_get_boolean (node));
          break;
        case G_TYPE_STRING:
          json_node_init_string (copy, json_node_get_string (node));
          break;
        default:
          json_node_init (copy, JSON_NODE_VALUE);   /* no value, as @node */
          break;
        }
      break;
    case JSON_NODE_NULL:
    default:
      json_node_init_null (copy);
      break;
    }
  return copy;
}
