/* sio-codec-tool.c: the Socket.IO codec on stdin/stdout, for
 * crosscheck-parser.mjs (which compares it with npm socket.io-parser)
 *
 * One JSON command per input line, one JSON answer per output line.
 * Texts and binaries travel as hex, so nothing depends on how either side
 * escapes JSON.
 *
 *   {"op":"decode","protocol":5,"text":HEX,"bins":[HEX...]}
 *     -> {"ok":true,"complete":BOOL,"type":T,"nsp":S,"id":N|null,
 *         "text":HEX,"bins":[HEX...]}        (our re-encoding)
 *      | {"ok":false,"error":S}
 *   {"op":"encode","type":T,"nsp":S,"id":N|null,"data":HEX|null,"bins":[HEX...]}
 *     (data is JSON read with json-glib's parser, not ours; placeholders
 *      refer to bins) -> {"ok":true,"text":HEX,"bins":[HEX...]} | {"ok":false,...}
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "socketio-packet-private.h"

static char *
to_hex (const guint8 *data,
        gsize         size)
{
  static const char digits[] = "0123456789abcdef";
  char *out = g_malloc (size * 2 + 1);
  gsize i;

  for (i = 0; i < size; i++)
    {
      out[2 * i] = digits[data[i] >> 4];
      out[2 * i + 1] = digits[data[i] & 15];
    }
  out[2 * size] = '\0';
  return out;
}

static GBytes *
from_hex (const char *hex)
{
  gsize n = strlen (hex) / 2, i;
  guint8 *out = g_malloc (n + 1);

  for (i = 0; i < n; i++)
    out[i] = g_ascii_xdigit_value (hex[2 * i]) * 16 + g_ascii_xdigit_value (hex[2 * i + 1]);
  return g_bytes_new_take (out, n);
}

static void
add_encoding (JsonBuilder    *b,
              SocketIOPacket *packet)
{
  g_autoptr(GPtrArray) bins = NULL;
  g_autoptr(GBytes) text = socket_io_packet_encode (packet, &bins);
  g_autofree char *hex = to_hex (g_bytes_get_data (text, NULL), g_bytes_get_size (text));
  guint i;

  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, hex);
  json_builder_set_member_name (b, "bins");
  json_builder_begin_array (b);
  for (i = 0; i < bins->len; i++)
    {
      g_autofree char *h = to_hex (g_bytes_get_data (bins->pdata[i], NULL), g_bytes_get_size (bins->pdata[i]));

      json_builder_add_string_value (b, h);
    }
  json_builder_end_array (b);
}

static void
answer_packet (JsonBuilder    *b,
               SocketIOPacket *packet)
{
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "complete");
  json_builder_add_boolean_value (b, packet != NULL);
  if (packet == NULL)
    return;
  json_builder_set_member_name (b, "type");
  json_builder_add_int_value (b, socket_io_packet_get_packet_type (packet));
  json_builder_set_member_name (b, "nsp");
  json_builder_add_string_value (b, socket_io_packet_get_namespace (packet));
  json_builder_set_member_name (b, "id");
  if (socket_io_packet_get_id (packet) == SOCKET_IO_NO_ACK_ID)
    json_builder_add_null_value (b);
  else
    json_builder_add_int_value (b, socket_io_packet_get_id (packet));
  add_encoding (b, packet);
}

static void
answer_error (JsonBuilder *b,
              GError      *error)
{
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "error");
  json_builder_add_string_value (b, error->message);
}

static void
run_decode (JsonBuilder *b,
            JsonObject  *command)
{
  g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (json_object_get_int_member (command, "protocol"));
  g_autoptr(GBytes) text = from_hex (json_object_get_string_member (command, "text"));
  JsonArray *bins = json_object_get_array_member (command, "bins");
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  guint i;

  if (!socket_io_decoder_feed_text (decoder, g_bytes_get_data (text, NULL), g_bytes_get_size (text),
                                    &packet, &error))
    {
      answer_error (b, error);
      return;
    }
  for (i = 0; i < json_array_get_length (bins); i++)
    {
      g_autoptr(GBytes) bin = from_hex (json_array_get_string_element (bins, i));

      if (packet != NULL)
        {
          g_set_error_literal (&error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE,
                               "Binary message while no packet expects attachments at byte offset 0");
          answer_error (b, error);
          return;
        }
      if (!socket_io_decoder_feed_binary (decoder, bin, &packet, &error))
        {
          answer_error (b, error);
          return;
        }
    }
  answer_packet (b, packet);
}

static void
run_encode (JsonBuilder *b,
            JsonObject  *command)
{
  g_autoptr(GPtrArray) bins = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  JsonArray *hex_bins = json_object_get_array_member (command, "bins");
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  JsonNode *data = NULL;
  guint i;

  if (!json_object_get_null_member (command, "data"))
    {
      g_autoptr(GBytes) json = from_hex (json_object_get_string_member (command, "data"));

      if (!json_parser_load_from_data (parser, g_bytes_get_data (json, NULL), g_bytes_get_size (json), &error))
        {
          answer_error (b, error);
          return;
        }
      data = json_parser_get_root (parser);
    }
  for (i = 0; i < json_array_get_length (hex_bins); i++)
    g_ptr_array_add (bins, from_hex (json_array_get_string_element (hex_bins, i)));
  packet = socket_io_packet_new (json_object_get_int_member (command, "type"),
                                 json_object_get_string_member (command, "nsp"),
                                 data,
                                 json_object_get_null_member (command, "id")
                                   ? SOCKET_IO_NO_ACK_ID : json_object_get_int_member (command, "id"),
                                 bins, &error);
  if (packet == NULL)
    {
      answer_error (b, error);
      return;
    }
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, TRUE);
  add_encoding (b, packet);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GIOChannel) in = g_io_channel_unix_new (0);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  char *line = NULL;
  gsize length;

  g_io_channel_set_encoding (in, NULL, NULL);
  while (g_io_channel_read_line (in, &line, &length, NULL, NULL) == G_IO_STATUS_NORMAL)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      g_autoptr(JsonBuilder) b = json_builder_new ();
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonNode) root = NULL;
      g_autofree char *out = NULL;
      JsonObject *command;
      const char *op;

      if (!json_parser_load_from_data (parser, line, length, &error))
        g_error ("bad command: %s", error->message);
      g_clear_pointer (&line, g_free);
      command = json_node_get_object (json_parser_get_root (parser));
      op = json_object_get_string_member (command, "op");
      json_builder_begin_object (b);
      if (g_strcmp0 (op, "decode") == 0)
        run_decode (b, command);
      else if (g_strcmp0 (op, "encode") == 0)
        run_encode (b, command);
      else
        g_error ("unknown op %s", op);
      json_builder_end_object (b);
      root = json_builder_get_root (b);
      json_generator_set_root (generator, root);
      out = json_generator_to_data (generator, NULL);
      puts (out);
    }
  return 0;
}
