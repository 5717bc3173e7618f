/* fuzz-sio-packet.c: libFuzzer target for the Socket.IO packet codec
 *
 * Input: one flags byte, then Engine.IO messages separated by NUL bytes:
 * the first is a text message (a Socket.IO packet, NUL is never valid in
 * one), the others binary messages (attachments). Flags: bit 0 protocol
 * v4 (else v5); bit 1 small bounds (4 levels, 4 KiB of tree, 3
 * attachments of 16 bytes in all) so that every bound is reached.
 *
 * Checked on every input:
 * - a failure is a SOCKET_IO_ERROR_PARSE error ending in "at byte offset
 *   N", N within the message that caused it, never from json-glib's
 *   JsonParser (socketio-json.c validates the text first and must refuse
 *   everything it would), and never both a packet and an error;
 * - a decoded packet encodes, the encoding decodes (default bounds) to an
 *   equal packet (attachments compared by content; infinities, from
 *   numbers like 1e400, become null as in JavaScript), and encoding that
 *   gives the same text and attachments again (a fixed point);
 * - a binary message after the packet is complete is refused;
 * - no g_return_if_fail() or other warning fires (they are made fatal).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "socketio-packet-private.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
  G_STMT_START { \
    if (G_UNLIKELY (!(cond))) \
      { \
        g_printerr ("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        abort (); \
      } \
  } G_STMT_END

static void
trap_to_abort (int sig)
{
  abort ();
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  /* GLib 2.74 reads G_SLICE once, before we get here: without
   * always-malloc its slice allocator hides use-after-free from ASan. */
  if (g_strcmp0 (getenv ("G_SLICE"), "always-malloc") != 0)
    {
      setenv ("G_SLICE", "always-malloc", 1);
      execv ("/proc/self/exe", *argv);
      g_printerr ("cannot re-execute with G_SLICE=always-malloc; set it yourself\n");
      abort ();
    }
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  signal (SIGTRAP, trap_to_abort);
  return 0;
}

static void
check_error (GError *error,
             gsize   message_size)
{
  const char *marker;
  guint64 offset;
  char *end;

  FUZZ_CHECK (error != NULL);
  FUZZ_CHECK (g_error_matches (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE));
  marker = g_strrstr (error->message, " at byte offset ");
  FUZZ_CHECK (marker != NULL);
  offset = g_ascii_strtoull (marker + strlen (" at byte offset "), &end, 10);
  FUZZ_CHECK (*end == '\0');
  FUZZ_CHECK (offset <= message_size);
  /* json-glib's JsonParser never refuses what our validator let through
   * (its messages start "<data>:LINE:COL: Parse error"). */
  FUZZ_CHECK (strstr (error->message, "Parse error") == NULL);
}

/* 1e400 reads as infinity (as in JSON.parse()), which is written as null
 * (as by JSON.stringify()): such packets are equal to their re-decoding
 * only from the second round on. */
static gboolean
has_non_finite (JsonNode *node)
{
  guint i;

  if (node == NULL)
    return FALSE;
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_VALUE:
      return json_node_get_value_type (node) == G_TYPE_DOUBLE && !isfinite (json_node_get_double (node));
    case JSON_NODE_ARRAY:
      for (i = 0; i < json_array_get_length (json_node_get_array (node)); i++)
        if (has_non_finite (json_array_get_element (json_node_get_array (node), i)))
          return TRUE;
      return FALSE;
    case JSON_NODE_OBJECT:
      {
        JsonObjectIter iter;
        JsonNode *member;

        json_object_iter_init (&iter, json_node_get_object (node));
        while (json_object_iter_next (&iter, NULL, &member))
          if (has_non_finite (member))
            return TRUE;
        return FALSE;
      }
    default:
      return FALSE;
    }
}

static GBytes *
encode_and_check (SocketIOPacket *packet,
                  GPtrArray     **attachments)
{
  g_autoptr(GBytes) text = socket_io_packet_encode (packet, attachments);
  g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (SOCKET_IO_PROTOCOL_V5);
  g_autoptr(SocketIOPacket) again = NULL;
  g_autoptr(GError) error = NULL;
  guint i;

  FUZZ_CHECK (text != NULL && *attachments != NULL);
  if (!socket_io_decoder_feed_text (decoder, g_bytes_get_data (text, NULL), g_bytes_get_size (text),
                                    &again, &error))
    g_error ("Encoded packet does not decode: %s: %.*s", error->message,
             (int) MIN (g_bytes_get_size (text), 300), (const char *) g_bytes_get_data (text, NULL));
  for (i = 0; i < (*attachments)->len; i++)
    {
      FUZZ_CHECK (again == NULL);
      FUZZ_CHECK (socket_io_decoder_feed_binary (decoder, (*attachments)->pdata[i], &again, &error));
    }
  FUZZ_CHECK (again != NULL);
  FUZZ_CHECK (socket_io_packet_equal (packet, again) || has_non_finite (socket_io_packet_get_data (packet)));
  return g_steal_pointer (&text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(SocketIODecoder) decoder = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  SocketIOProtocol protocol;
  const uint8_t *p, *end, *stop;
  gboolean ok;

  if (size == 0)
    return 0;
  protocol = (data[0] & 1) ? SOCKET_IO_PROTOCOL_V4 : SOCKET_IO_PROTOCOL_V5;
  decoder = socket_io_decoder_new (protocol);
  if (data[0] & 2)
    {
      socket_io_decoder_set_max_depth (decoder, 4);
      socket_io_decoder_set_max_tree_bytes (decoder, 4096);
      socket_io_decoder_set_max_attachments (decoder, 3);
      socket_io_decoder_set_max_attachment_bytes (decoder, 16);
    }
  p = data + 1;
  end = data + size;

  /* The text message: a heap copy of exactly its bytes, so ASan sees any
   * read past it. */
  stop = memchr (p, '\0', end - p);
  if (stop == NULL)
    stop = end;
  {
    g_autofree char *text = g_memdup2 (p, stop - p);

    ok = socket_io_decoder_feed_text (decoder, text, stop - p, &packet, &error);
    if (!ok)
      {
        FUZZ_CHECK (packet == NULL);
        check_error (error, stop - p);
        return 0;
      }
    FUZZ_CHECK (error == NULL);
  }

  /* Attachments */
  while (stop < end)
    {
      g_autoptr(GBytes) bin = NULL;
      SocketIOPacket *completed = NULL;

      p = stop + 1;
      stop = memchr (p, '\0', end - p);
      if (stop == NULL)
        stop = end;
      bin = g_bytes_new (p, stop - p);
      ok = socket_io_decoder_feed_binary (decoder, bin, &completed, &error);
      if (!ok)
        {
          FUZZ_CHECK (completed == NULL);
          check_error (error, stop - p);
          FUZZ_CHECK (socket_io_decoder_get_missing_attachments (decoder) == 0);
          if (packet != NULL)
            break;       /* stray binary after a complete packet: expected */
          return 0;
        }
      FUZZ_CHECK (packet == NULL);   /* a complete packet refuses more */
      packet = completed;
    }

  if (packet == NULL)
    {
      FUZZ_CHECK (socket_io_decoder_get_missing_attachments (decoder) > 0);
      return 0;
    }

  {
    g_autoptr(GPtrArray) attachments = NULL;
    g_autoptr(GPtrArray) attachments_again = NULL;
    g_autoptr(GBytes) text = encode_and_check (packet, &attachments);
    g_autoptr(SocketIODecoder) redecoder = socket_io_decoder_new (SOCKET_IO_PROTOCOL_V5);
    g_autoptr(SocketIOPacket) again = NULL;
    g_autoptr(GBytes) text_again = NULL;
    guint i;

    FUZZ_CHECK (socket_io_decoder_feed_text (redecoder, g_bytes_get_data (text, NULL), g_bytes_get_size (text),
                                             &again, NULL));
    for (i = 0; i < attachments->len; i++)
      FUZZ_CHECK (socket_io_decoder_feed_binary (redecoder, attachments->pdata[i], &again, NULL));
    FUZZ_CHECK (again != NULL);
    FUZZ_CHECK (!has_non_finite (socket_io_packet_get_data (again)));
    text_again = socket_io_packet_encode (again, &attachments_again);
    FUZZ_CHECK (g_bytes_equal (text, text_again));
    FUZZ_CHECK (attachments->len == attachments_again->len);
    for (i = 0; i < attachments->len; i++)
      FUZZ_CHECK (g_bytes_equal (attachments->pdata[i], attachments_again->pdata[i]));
  }
  return 0;
}
