/* engineio-packet.c: EngineIOPacket and single packets (WebSocket frames), v3 and v4
 *
 * Bytes in, packets out: no threads, no sockets, no main context. Every
 * decoder treats its input as hostile: it never reads out of bounds, never
 * trusts a length before checking it against the bytes that are left, and
 * reports every failure as an %ENGINE_IO_ERROR_PARSE error naming the
 * problem and its byte offset in the frame or payload.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-codec-internal.h"

G_DEFINE_BOXED_TYPE (EngineIOPacket, engine_io_packet,
                     engine_io_packet_ref, engine_io_packet_unref)

/* 0 for the 64 characters of the standard base64 alphabet, 1 for anything
 * else (padding included: it is checked separately). */
static const guint8 base64_invalid[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,
  1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1,
  1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* A shared empty buffer for empty text and empty binary data: its data
 * pointer is "" so get_text() can hand out a NUL-terminated string, and a
 * payload of many empty packets does not cost a GBytes each. */
static GBytes *
empty_bytes (void)
{
  static gsize empty = 0;

  if (g_once_init_enter (&empty))
    g_once_init_leave (&empty, (gsize) g_bytes_new_static ("", 0));

  return g_bytes_ref ((GBytes *) empty);
}

static EngineIOPacket *
packet_new_take_bytes (EngineIOPacketType  type,
                       gboolean            is_binary,
                       GBytes             *data)
{
  EngineIOPacket *packet = g_new (EngineIOPacket, 1);

  g_atomic_ref_count_init (&packet->ref_count);
  packet->type = type;
  packet->is_binary = is_binary;
  packet->pinned = 0;
  packet->data = data;

  return packet;
}

/* A zero-copy slice keeps its whole parent buffer alive: slices smaller
 * than 1/ENGINE_IO_SLICE_MIN_FRACTION of their parent (a 2-byte packet in
 * a 1 MB POST body) are copied instead, so a packet never pins more than
 * its own size again in memory it does not use. */
#define ENGINE_IO_SLICE_MIN_FRACTION 2

/* A binary packet of @length bytes at @data: a zero-copy slice of @owner
 * when there is one and it is large enough, else a copy. */
EngineIOPacket *
engine_io_packet_new_slice (EngineIOPacketType  type,
                  GBytes             *owner,
                  const guint8       *data,
                  gsize               length)
{
  EngineIOPacket *packet;
  const guint8 *base;
  gsize owner_size;

  if (length == 0)
    return packet_new_take_bytes (type, TRUE, empty_bytes ());
  if (owner == NULL)
    return packet_new_take_bytes (type, TRUE, g_bytes_new (data, length));

  base = g_bytes_get_data (owner, &owner_size);
  if (length < owner_size / ENGINE_IO_SLICE_MIN_FRACTION)
    return packet_new_take_bytes (type, TRUE, g_bytes_new (data, length));

  packet = packet_new_take_bytes (type, TRUE,
                                  g_bytes_new_from_bytes (owner, (gsize) (data - base), length));
  packet->pinned = (guint32) MIN (owner_size - length, G_MAXUINT32);
  return packet;
}

/* ------------------------------------------------------------------ */
/* Packets                                                              */
/* ------------------------------------------------------------------ */

EngineIOPacket *
engine_io_packet_new_take_text (EngineIOPacketType  type,
                                char               *text,
                                gsize               length)
{
  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);
  g_return_val_if_fail (text != NULL, NULL);

  if (length == 0)
    {
      g_free (text);
      return packet_new_take_bytes (type, FALSE, empty_bytes ());
    }

  return packet_new_take_bytes (type, FALSE, g_bytes_new_take (text, length));
}

/**
 * engine_io_packet_new:
 * @type: the packet type
 *
 * Creates a packet of @type with no data, for example a `2` ping or a `6`
 * noop. It is a text packet whose text is empty.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new packet
 */
EngineIOPacket *
engine_io_packet_new (EngineIOPacketType type)
{
  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);

  return packet_new_take_bytes (type, FALSE, empty_bytes ());
}

/**
 * engine_io_packet_new_text:
 * @type: the packet type
 * @text: UTF-8 text; may be %NULL if @length is 0
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 *
 * Creates a text packet holding a copy of @text. With an explicit @length,
 * @text may contain NUL characters (U+0000 is valid in Engine.IO text).
 *
 * @text must be valid UTF-8: passing anything else is a programmer error.
 * Text from the network goes through engine_io_packet_decode() or
 * engine_io_payload_decode(), which report invalid UTF-8 as a #GError.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new packet
 */
EngineIOPacket *
engine_io_packet_new_text (EngineIOPacketType  type,
                           const char         *text,
                           gssize              length)
{
  gsize len;
  char *copy;

  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);
  g_return_val_if_fail (text != NULL || length == 0, NULL);

  if (text == NULL)
    return engine_io_packet_new (type);

  len = length < 0 ? strlen (text) : (gsize) length;
  g_return_val_if_fail (engine_io_utf8_validate (text, len, NULL), NULL);

  copy = g_malloc (len + 1);
  memcpy (copy, text, len);
  copy[len] = '\0';

  return engine_io_packet_new_take_text (type, copy, len);
}

/**
 * engine_io_packet_new_binary:
 * @type: the packet type; %ENGINE_IO_PACKET_MESSAGE for application data
 * @data: the binary data
 *
 * Creates a binary packet that shares @data (it takes a reference, nothing
 * is copied). Protocol v4 has binary messages only: a binary packet of
 * another type can be encoded in the v3 formats only.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new packet
 */
EngineIOPacket *
engine_io_packet_new_binary (EngineIOPacketType  type,
                             GBytes             *data)
{
  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);
  g_return_val_if_fail (data != NULL, NULL);

  return packet_new_take_bytes (type, TRUE, g_bytes_ref (data));
}

/**
 * engine_io_packet_ref:
 * @packet: a packet
 *
 * Takes a reference to @packet.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): @packet
 */
EngineIOPacket *
engine_io_packet_ref (EngineIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, NULL);

  g_atomic_ref_count_inc (&packet->ref_count);
  return packet;
}

/**
 * engine_io_packet_unref:
 * @packet: (transfer full): a packet
 *
 * Drops a reference to @packet, freeing it with the last one.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_packet_unref (EngineIOPacket *packet)
{
  g_return_if_fail (packet != NULL);

  if (g_atomic_ref_count_dec (&packet->ref_count))
    {
      g_bytes_unref (packet->data);
      g_free (packet);
    }
}

/**
 * engine_io_packet_get_packet_type:
 * @packet: a packet
 *
 * The type of @packet.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the packet type
 */
EngineIOPacketType
engine_io_packet_get_packet_type (EngineIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, ENGINE_IO_PACKET_NOOP);

  return packet->type;
}

/**
 * engine_io_packet_is_binary:
 * @packet: a packet
 *
 * Whether @packet carries binary data rather than text.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE for a binary packet
 */
gboolean
engine_io_packet_is_binary (EngineIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, FALSE);

  return packet->is_binary;
}

/**
 * engine_io_packet_get_text:
 * @packet: a packet
 * @length: (out) (optional): the length of the text in bytes (0 for a
 *   binary packet)
 *
 * The text of a text packet: valid UTF-8, NUL-terminated, possibly with
 * NUL characters inside (use @length to see them). From Python this
 * returns a `(text, length)` tuple. It stays valid as long
 * as @packet (or the #GBytes from engine_io_packet_get_data()) lives.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (nullable): the text, or %NULL for a binary packet
 */
const char *
engine_io_packet_get_text (EngineIOPacket *packet,
                           gsize          *length)
{
  const char *text;
  gsize size;

  if (length != NULL)
    *length = 0;

  g_return_val_if_fail (packet != NULL, NULL);

  if (packet->is_binary)
    return NULL;

  text = g_bytes_get_data (packet->data, &size);
  if (length != NULL)
    *length = size;

  return text != NULL ? text : "";
}

gsize
engine_io_packet_get_footprint (EngineIOPacket *packet)
{
  gsize size;
  gsize total = ENGINE_IO_ALLOC_SIZE (sizeof (EngineIOPacket));

  g_return_val_if_fail (packet != NULL, 0);

  size = g_bytes_get_size (packet->data);
  /* The shared empty buffer costs nothing per packet. Otherwise a GBytes
   * (five words) and its data: text keeps a NUL after it, base64 decoding
   * allocates up to 3 bytes more than it writes. */
  if (size > 0)
    total += ENGINE_IO_ALLOC_SIZE (5 * sizeof (gpointer)) + ENGINE_IO_ALLOC_SIZE (size + 3);
  return total + packet->pinned;
}

/**
 * engine_io_packet_get_data:
 * @packet: a packet
 *
 * The data of @packet: the binary data, or the UTF-8 bytes of the text
 * (without the trailing NUL, which is there nonetheless).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the data
 */
GBytes *
engine_io_packet_get_data (EngineIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, NULL);

  return packet->data;
}

/**
 * engine_io_packet_get_text_bytes:
 * @packet: a packet
 *
 * The UTF-8 bytes of a text packet, all of them: unlike the string of
 * engine_io_packet_get_text() in bindings (and #EngineIOSocket::message's
 * @text), it does not end at a U+0000 inside the text. From Python:
 * `packet.get_text_bytes().get_data().decode()`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (nullable): the text, without a trailing NUL, or
 *   %NULL for a binary packet
 */
GBytes *
engine_io_packet_get_text_bytes (EngineIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, NULL);

  return packet->is_binary ? NULL : packet->data;
}

/**
 * engine_io_packet_equal:
 * @a: a packet
 * @b: another packet
 *
 * Whether @a and @b have the same type, are both text or both binary, and
 * hold the same bytes.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the packets are equal
 */
gboolean
engine_io_packet_equal (EngineIOPacket *a,
                        EngineIOPacket *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (a == b)
    return TRUE;

  return a->type == b->type &&
         a->is_binary == b->is_binary &&
         g_bytes_equal (a->data, b->data);
}

/* ------------------------------------------------------------------ */
/* Single packets (WebSocket frames)                                    */
/* ------------------------------------------------------------------ */

void
engine_io_packet_set_unknown_type_error (GError  **error,
                                         guchar    c,
                                         gboolean  binary,
                                         gsize     offset)
{
  if (!binary && g_ascii_isprint (c))
    parse_error (error, "Unknown packet type “%c” at byte offset %" G_GSIZE_FORMAT, c, offset);
  else
    parse_error (error, "Unknown packet type 0x%02x at byte offset %" G_GSIZE_FORMAT, c, offset);
}

/* Base64 as the reference encoders produce it: the standard alphabet,
 * padded to a multiple of 4, `=` only in the last two places. GLib's
 * decoder skips anything it does not know, so check first.
 *
 * Deliberately stricter than the reference server, whose Buffer.from()
 * also takes unpadded and URL-safe base64 and skips garbage: every client
 * (engine.io-client 3.x and 6.x, python-engineio) sends padded standard
 * base64, and garbage in a packet is a parse error, not data. */
static gboolean
validate_base64 (const char  *b64,
                 gsize        n,
                 gsize        base,
                 GError     **error)
{
  const guchar *s = (const guchar *) b64;
  gsize data_end;
  gsize i = 0;

  if (n % 4 != 0)
    {
      parse_error (error,
                   "Invalid base64 length %" G_GSIZE_FORMAT " (not a multiple of 4) at byte offset %" G_GSIZE_FORMAT,
                   n, base);
      return FALSE;
    }
  if (n == 0)
    return TRUE;

  data_end = n;
  if (s[n - 1] == '=')
    data_end = s[n - 2] == '=' ? n - 2 : n - 1;

  for (; data_end - i >= 8; i += 8)
    {
      if (base64_invalid[s[i]] | base64_invalid[s[i + 1]] |
          base64_invalid[s[i + 2]] | base64_invalid[s[i + 3]] |
          base64_invalid[s[i + 4]] | base64_invalid[s[i + 5]] |
          base64_invalid[s[i + 6]] | base64_invalid[s[i + 7]])
        break;
    }
  for (; i < data_end; i++)
    {
      if (!base64_invalid[s[i]])
        continue;

      if (s[i] == '=')
        parse_error (error, "Misplaced base64 padding at byte offset %" G_GSIZE_FORMAT, base + i);
      else
        parse_error (error, "Invalid base64 character at byte offset %" G_GSIZE_FORMAT, base + i);
      return FALSE;
    }

  return TRUE;
}

/* Decodes validated base64 with GLib. */
static GBytes *
base64_decode (const char *b64,
               gsize       n)
{
  gint state = 0;
  guint save = 0;
  guchar *buffer;
  gsize written;

  if (n == 0)
    return empty_bytes ();

  /* What g_base64_decode_step() documents as enough. */
  buffer = g_malloc (n / 4 * 3 + 3);
  written = g_base64_decode_step (b64, n, buffer, &state, &save);

  return g_bytes_new_take (buffer, written);
}

/* `b<base64>` (v4) or `b<type digit><base64>` (v3): a binary packet in a
 * text frame or text payload. @data[0] is 'b'; @base is the offset of
 * @data in the frame or payload, for error messages. */
static EngineIOPacket *
decode_base64_packet (const char               *data,
                      gsize                     length,
                      EngineIOProtocolVersion   version,
                      gsize                     base,
                      GError                  **error)
{
  EngineIOPacketType type = ENGINE_IO_PACKET_MESSAGE;
  gsize skip = 1;

  if (version == ENGINE_IO_PROTOCOL_V3)
    {
      if (length < 2)
        {
          parse_error (error, "Missing packet type after “b” at byte offset %" G_GSIZE_FORMAT, base + 1);
          return NULL;
        }
      if (data[1] < '0' || data[1] > '6')
        {
          engine_io_packet_set_unknown_type_error (error, data[1], FALSE, base + 1);
          return NULL;
        }
      type = data[1] - '0';
      skip = 2;
    }

  if (!validate_base64 (data + skip, length - skip, base + skip, error))
    return NULL;

  return packet_new_take_bytes (type, TRUE, base64_decode (data + skip, length - skip));
}

/* One packet in text form: `<type digit><UTF-8 text>` or base64 binary.
 * @utf8_checked: the caller validated all of @data already. */
EngineIOPacket *
engine_io_packet_decode_text (const char               *data,
                              gsize                     length,
                              EngineIOProtocolVersion   version,
                              gboolean                  utf8_checked,
                              gsize                     base,
                              GError                  **error)
{
  gsize bad;
  char *text;
  guchar c;

  if (length == 0)
    {
      parse_error (error, "Empty packet at byte offset %" G_GSIZE_FORMAT, base);
      return NULL;
    }

  c = data[0];
  if (c == 'b')
    return decode_base64_packet (data, length, version, base, error);
  if (c < '0' || c > '6')
    {
      engine_io_packet_set_unknown_type_error (error, c, FALSE, base);
      return NULL;
    }

  if (!utf8_checked && !engine_io_utf8_validate (data + 1, length - 1, &bad))
    {
      parse_error (error, "Invalid UTF-8 in text packet at byte offset %" G_GSIZE_FORMAT,
                   base + 1 + bad);
      return NULL;
    }

  if (length == 1)
    return packet_new_take_bytes (c - '0', FALSE, empty_bytes ());

  text = g_malloc (length);
  memcpy (text, data + 1, length - 1);
  text[length - 1] = '\0';

  return packet_new_take_bytes (c - '0', FALSE, g_bytes_new_take (text, length - 1));
}

/* A text frame whose UTF-8 the transport already validated (our WebSocket codec does,
 * closing with 1007 otherwise): parse it without checking again. */
EngineIOPacket *
engine_io_packet_decode_valid_text (const char               *data,
                                    gsize                     length,
                                    EngineIOProtocolVersion   version,
                                    GError                  **error)
{
  return engine_io_packet_decode_text (data, length, version, TRUE, 0, error);
}

/* engine_io_packet_decode_valid_text() of a message that @owner holds,
 * followed by a NUL byte (the WebSocket adapter hands over the buffers it
 * assembles messages in): a message's text is a zero-copy slice of
 * @owner, NUL-terminated as packet text must be. Anything else (other
 * packet types with data, base64, a @data not so held) is decoded by
 * copying, as without @owner. */
EngineIOPacket *
engine_io_packet_decode_valid_text_owned (GBytes                   *owner,
                                          const char               *data,
                                          gsize                     length,
                                          EngineIOProtocolVersion   version,
                                          GError                  **error)
{
  EngineIOPacket *packet;
  const char *base;
  gsize owner_size;
  gsize offset;

  base = g_bytes_get_data (owner, &owner_size);
  if (length < 2 || data[0] < '0' || data[0] > '6' || base == NULL || data < base ||
      (gsize) (data - base) > owner_size || owner_size - (gsize) (data - base) < length + 1 ||
      data[length] != '\0')
    return engine_io_packet_decode_text (data, length, version, TRUE, 0, error);

  offset = (gsize) (data - base);
  packet = packet_new_take_bytes (data[0] - '0', FALSE,
                                  g_bytes_new_from_bytes (owner, offset + 1, length - 1));
  packet->pinned = (guint32) MIN (owner_size - (length - 1), G_MAXUINT32);
  return packet;
}

EngineIOPacket *
engine_io_packet_decode_data (const guint8             *data,
                              gsize                     length,
                              gboolean                  is_binary,
                              EngineIOProtocolVersion   version,
                              GBytes                   *owner,
                              GError                  **error)
{
  g_return_val_if_fail (data != NULL || length == 0, NULL);
  g_return_val_if_fail (VERSION_IS_VALID (version), NULL);
  g_return_val_if_fail (owner == NULL || owner_contains (owner, data, length), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!is_binary)
    return engine_io_packet_decode_text ((const char *) data, length, version, FALSE, 0, error);

  if (version == ENGINE_IO_PROTOCOL_V4)
    return engine_io_packet_new_slice (ENGINE_IO_PACKET_MESSAGE, owner, data, length);

  if (length == 0)
    {
      parse_error (error, "Empty packet at byte offset %d", 0);
      return NULL;
    }
  if (!PACKET_TYPE_IS_VALID (data[0]))
    {
      engine_io_packet_set_unknown_type_error (error, data[0], TRUE, 0);
      return NULL;
    }

  return engine_io_packet_new_slice (data[0], owner, data + 1, length - 1);
}

/**
 * engine_io_packet_decode:
 * @frame: the payload of one WebSocket frame
 * @is_binary: %TRUE for a binary frame, %FALSE for a text frame
 * @version: the protocol version of the session
 * @error: return location for a #GError, or %NULL
 *
 * Decodes one packet from a WebSocket frame.
 *
 * A text frame is a type digit `0`–`6` then UTF-8 text (`4hello`; `4` is
 * the empty message), or a binary packet in base64: `b<base64>` in v4,
 * `b<type digit><base64>` in v3. A binary frame is the raw message in v4
 * (any length, including 0) and a type byte then the data in v3; the data
 * of the packet is then a zero-copy slice of @frame (a copy when it is
 * less than half of @frame, so it never keeps much more than itself
 * alive).
 *
 * Malformed input (an empty text frame or v3 binary frame, an unknown
 * type, invalid UTF-8, invalid base64) fails with %ENGINE_IO_ERROR_PARSE,
 * whose message names the problem and its byte offset in @frame.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the packet, or %NULL on error
 */
EngineIOPacket *
engine_io_packet_decode (GBytes                   *frame,
                         gboolean                  is_binary,
                         EngineIOProtocolVersion   version,
                         GError                  **error)
{
  const guint8 *data;
  gsize length;

  g_return_val_if_fail (frame != NULL, NULL);

  data = g_bytes_get_data (frame, &length);
  return engine_io_packet_decode_data (data, length, is_binary, version, frame, error);
}

void
engine_io_packet_encode_append (EngineIOPacket           *packet,
                                EngineIOProtocolVersion   version,
                                GByteArray               *out,
                                gboolean                 *out_is_binary)
{
  const guint8 *data;
  gsize size;
  guint old_len;

  g_return_if_fail (packet != NULL);
  g_return_if_fail (VERSION_IS_VALID (version));
  g_return_if_fail (out != NULL);
  g_return_if_fail (!packet->is_binary || version == ENGINE_IO_PROTOCOL_V3 ||
                    packet->type == ENGINE_IO_PACKET_MESSAGE);

  data = g_bytes_get_data (packet->data, &size);
  old_len = out->len;
  g_return_if_fail (size < G_MAXUINT - old_len);

  if (out_is_binary != NULL)
    *out_is_binary = packet->is_binary;

  if (packet->is_binary && version == ENGINE_IO_PROTOCOL_V4)
    {
      if (size > 0)
        g_byte_array_append (out, data, size);
      return;
    }

  g_byte_array_set_size (out, old_len + 1 + size);
  out->data[old_len] = packet->is_binary ? (guint8) packet->type : '0' + packet->type;
  write_bytes (out->data + old_len + 1, data, size);
}

/**
 * engine_io_packet_encode:
 * @packet: a packet
 * @version: the protocol version of the session
 * @out_is_binary: (out) (optional): whether the result must go in a binary
 *   WebSocket frame (%TRUE) or a text frame (%FALSE)
 *
 * Encodes @packet as one WebSocket frame: a text packet as its type digit
 * and text (`4hello`), a binary packet as the raw data in v4 (no type
 * byte; the result shares @packet's data) and as the type byte then the
 * data in v3 (`\x04…`).
 *
 * In v4 only %ENGINE_IO_PACKET_MESSAGE packets can be binary.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): the frame payload
 */
GBytes *
engine_io_packet_encode (EngineIOPacket           *packet,
                         EngineIOProtocolVersion   version,
                         gboolean                 *out_is_binary)
{
  const guint8 *data;
  gsize size;
  guint8 *buffer;

  g_return_val_if_fail (packet != NULL, NULL);
  g_return_val_if_fail (VERSION_IS_VALID (version), NULL);
  g_return_val_if_fail (!packet->is_binary || version == ENGINE_IO_PROTOCOL_V3 ||
                        packet->type == ENGINE_IO_PACKET_MESSAGE, NULL);

  if (out_is_binary != NULL)
    *out_is_binary = packet->is_binary;

  if (packet->is_binary && version == ENGINE_IO_PROTOCOL_V4)
    return g_bytes_ref (packet->data);

  data = g_bytes_get_data (packet->data, &size);
  buffer = g_malloc (size + 1);
  buffer[0] = packet->is_binary ? (guint8) packet->type : '0' + packet->type;
  write_bytes (buffer + 1, data, size);

  return g_bytes_new_take (buffer, size + 1);
}
