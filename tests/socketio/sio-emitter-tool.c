/* sio-emitter-tool.c: SocketIORedisEmitter driven by JSON commands on
 * stdin, one per line, for tests/socketio/interop-sio-redis-emitter.mjs
 * (not installed):
 *
 *   sio-emitter-tool redis://127.0.0.1:PORT
 *   {"op":"emit","nsp":"/","to":["r"],"except":["x"],"event":"ev","args":[...],"bins":["0102ff"]}
 *   {"op":"join"|"leave","to":[...],"except":[...],"rooms":["j"]}
 *   {"op":"disconnect","to":[...],"close":false}
 *   {"op":"ssemit","args":["name",1,2]}
 *
 * `args` may hold placeholders {"_placeholder":true,"num":N} for the
 * binaries given in hex in `bins`. Answers each line with `ok` or
 * `error MESSAGE` on stdout.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "socketio/socketio.h"
#include "socketio/socketio-redis.h"

static GStrv
strv_member (JsonObject *object,
             const char *name)
{
  GStrvBuilder *builder = g_strv_builder_new ();
  GStrv strv;

  if (json_object_has_member (object, name))
    {
      JsonArray *array = json_object_get_array_member (object, name);

      for (guint i = 0; i < json_array_get_length (array); i++)
        g_strv_builder_add (builder, json_array_get_string_element (array, i));
    }
  strv = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return strv;
}

static GBytes *
hex_bytes (const char *hex)
{
  gsize len = strlen (hex) / 2;
  guint8 *data = g_malloc (len + 1);

  for (gsize i = 0; i < len; i++)
    data[i] = (guint8) (g_ascii_xdigit_value (hex[2 * i]) * 16 + g_ascii_xdigit_value (hex[2 * i + 1]));
  return g_bytes_new_take (data, len);
}

static gboolean
run (SocketIORedisEmitter  *root,
     const char            *line,
     GError               **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(SocketIORedisEmitter) emitter = NULL;
  g_auto(GStrv) to = NULL;
  g_auto(GStrv) except = NULL;
  JsonObject *cmd;
  const char *op;

  if (!json_parser_load_from_data (parser, line, -1, error))
    return FALSE;
  cmd = json_node_get_object (json_parser_get_root (parser));
  op = json_object_get_string_member (cmd, "op");
  emitter = socket_io_redis_emitter_of (root, json_object_get_string_member_with_default (cmd, "nsp", "/"));
  to = strv_member (cmd, "to");
  except = strv_member (cmd, "except");
  for (guint i = 0; to[i] != NULL; i++)
    {
      SocketIORedisEmitter *next = socket_io_redis_emitter_to (emitter, to[i]);

      g_object_unref (emitter);
      emitter = next;
    }
  for (guint i = 0; except[i] != NULL; i++)
    {
      SocketIORedisEmitter *next = socket_io_redis_emitter_except (emitter, except[i]);

      g_object_unref (emitter);
      emitter = next;
    }
  if (strcmp (op, "emit") == 0)
    {
      g_autoptr(GPtrArray) bins = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_auto(GStrv) hex = strv_member (cmd, "bins");
      JsonArray *args = json_object_has_member (cmd, "args") ? json_object_get_array_member (cmd, "args") : NULL;

      for (guint i = 0; hex[i] != NULL; i++)
        g_ptr_array_add (bins, hex_bytes (hex[i]));
      return socket_io_redis_emitter_emit (emitter, json_object_get_string_member (cmd, "event"), args,
                                           bins->len > 0 ? bins : NULL, error);
    }
  if (strcmp (op, "join") == 0 || strcmp (op, "leave") == 0)
    {
      g_auto(GStrv) rooms = strv_member (cmd, "rooms");

      return op[0] == 'j' ? socket_io_redis_emitter_sockets_join (emitter, (const char * const *) rooms, error)
                          : socket_io_redis_emitter_sockets_leave (emitter, (const char * const *) rooms, error);
    }
  if (strcmp (op, "disconnect") == 0)
    return socket_io_redis_emitter_disconnect_sockets (
        emitter, json_object_get_boolean_member_with_default (cmd, "close", FALSE), error);
  if (strcmp (op, "ssemit") == 0)
    return socket_io_redis_emitter_server_side_emit (emitter, json_object_get_array_member (cmd, "args"), error);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "unknown op %s", op);
  return FALSE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(SocketIORedisEmitter) emitter = NULL;
  g_autoptr(GError) error = NULL;
  char line[65536];

  if (argc != 2)
    {
      g_printerr ("usage: %s redis://HOST:PORT[/DB]\n", argv[0]);
      return 2;
    }
  emitter = socket_io_redis_emitter_new (argv[1], NULL, &error);
  if (emitter == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  while (fgets (line, sizeof line, stdin) != NULL)
    {
      g_clear_error (&error);
      if (run (emitter, line, &error))
        printf ("ok\n");
      else
        printf ("error %s\n", error->message);
      fflush (stdout);
    }
  return 0;
}
