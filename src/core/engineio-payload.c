/* engineio-payload.c: payloads (HTTP long-polling bodies): v4, v3 text, v3 binary
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

/* g_base64_encode_step() documents a worst case slightly above the exact
 * encoded size; payload buffers keep this much spare room at the end. */
#define BASE64_SLACK 8

static inline guint
decimal_digits (gsize value)
{
  guint n = 1;

  while (value >= 10)
    {
      value /= 10;
      n++;
    }
  return n;
}

/* Writes @value as @n_digits decimal digits, as ASCII characters or (for v3
 * binary payloads) as byte values 0..9. Returns the end of what it wrote. */
static inline guint8 *
write_decimal (guint8   *dest,
               gsize     value,
               guint     n_digits,
               gboolean  ascii)
{
  guint8 zero = ascii ? '0' : 0;
  guint i;

  for (i = n_digits; i > 0; i--)
    {
      dest[i - 1] = zero + (guint8) (value % 10);
      value /= 10;
    }
  return dest + n_digits;
}

/* The exact length of the padded base64 encoding of @n bytes, or 0 with
 * %FALSE on overflow. */
static inline gboolean
base64_encoded_length (gsize  n,
                       gsize *out_length)
{
  return g_size_checked_mul (out_length, n / 3 + (n % 3 != 0), 4);
}

/* Writes the padded base64 encoding of @src with GLib's encoder. @dest must
 * have room for base64_encoded_length (@n) + %BASE64_SLACK bytes. */
static guint8 *
write_base64 (guint8       *dest,
              const guint8 *src,
              gsize         n)
{
  gint state = 0;
  gint save = 0;
  gsize written;

  if (n == 0)
    return dest;

  written = g_base64_encode_step (src, n, FALSE, (char *) dest, &state, &save);
  written += g_base64_encode_close (FALSE, (char *) dest + written, &state, &save);
  return dest + written;
}

/* Finds where a v3 text packet of @units UTF-16 code units starting at
 * @start ends. @data is known to be valid UTF-8 and @start is on a
 * character boundary. @length_offset is where the length was written. */
static gboolean
find_utf16_end (const char  *data,
                gsize        length,
                gsize        start,
                gsize        units,
                gsize        length_offset,
                gsize       *out_end,
                GError     **error)
{
  const guchar *p = (const guchar *) data;
  gsize remaining = units;
  gsize i = start;

  /* Whole words that cannot reach the end of the packet. Counting is per
   * byte, so a word may end in the middle of a character. */
  while (length - i >= 8)
    {
      guint64 w = load64 (p + i);
      gsize u = G_LIKELY ((w & HIGH_BITS) == 0) ? 8 : utf16_units_in_word (w);

      if (u >= remaining)
        break;
      remaining -= u;
      i += 8;
    }

  for (; i < length; i++)
    {
      guchar c = p[i];

      if ((c & 0xc0) == 0x80)
        continue;
      if (remaining == 0)
        break;
      if (c >= 0xf0)
        {
          if (remaining == 1)
            {
              parse_error (error,
                           "Length %" G_GSIZE_FORMAT " splits a surrogate pair at byte offset %" G_GSIZE_FORMAT,
                           units, i);
              return FALSE;
            }
          remaining -= 2;
        }
      else
        {
          remaining--;
        }
    }

  if (remaining > 0)
    {
      parse_error (error,
                   "Length %" G_GSIZE_FORMAT " past the end of the payload at byte offset %" G_GSIZE_FORMAT,
                   units, length_offset);
      return FALSE;
    }

  *out_end = i;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Payloads (HTTP long-polling bodies)                                  */
/* ------------------------------------------------------------------ */

/* Sizes computed before encoding, so a payload is written with one
 * allocation and no reallocation. */
typedef struct
{
  gsize  size;             /* exact encoded size */
  gsize *units;            /* V3_TEXT: length prefix of each packet */
  gsize  units_stack[32];
} EncodePlan;

static void
encode_plan_clear (EncodePlan *plan)
{
  if (plan->units != plan->units_stack)
    g_free (plan->units);
  plan->units = NULL;
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (EncodePlan, encode_plan_clear)

static gboolean
encode_plan_init (EncodePlan               *plan,
                  EngineIOPayloadFormat     format,
                  EngineIOPacket * const   *packets,
                  gsize                     n_packets)
{
  gsize total = 0;
  gsize i;

  plan->units = NULL;
  if (format == ENGINE_IO_PAYLOAD_V3_TEXT)
    plan->units = n_packets <= G_N_ELEMENTS (plan->units_stack) ?
                  plan->units_stack : g_new (gsize, n_packets);

  if (format == ENGINE_IO_PAYLOAD_V3_TEXT && n_packets == 0)
    total = 2;  /* "0:", as the reference encodes an empty list */

  for (i = 0; i < n_packets; i++)
    {
      EngineIOPacket *packet = packets[i];
      gsize size;
      gsize body;   /* bytes of the packet itself */
      gsize frame;  /* bytes including separator or length prefix */

      g_return_val_if_fail (packet != NULL, FALSE);
      g_return_val_if_fail (!packet->is_binary || format != ENGINE_IO_PAYLOAD_V4 ||
                            packet->type == ENGINE_IO_PACKET_MESSAGE, FALSE);

      size = g_bytes_get_size (packet->data);

      if (packet->is_binary && format != ENGINE_IO_PAYLOAD_V3_BINARY)
        {
          /* "b" + base64 (v4) or "b<type>" + base64 (v3) */
          if (!base64_encoded_length (size, &body) ||
              !g_size_checked_add (&body, body, format == ENGINE_IO_PAYLOAD_V4 ? 1 : 2))
            goto overflow;
        }
      else if (!g_size_checked_add (&body, size, 1))
        {
          goto overflow;
        }

      switch (format)
        {
        case ENGINE_IO_PAYLOAD_V4:
          frame = body + (i > 0);
          break;

        case ENGINE_IO_PAYLOAD_V3_TEXT:
          plan->units[i] = packet->is_binary ? body
                           : 1 + engine_io_utf16_length (g_bytes_get_data (packet->data, NULL), size);
          frame = body + decimal_digits (plan->units[i]) + 1;
          break;

        case ENGINE_IO_PAYLOAD_V3_BINARY:
          frame = body + decimal_digits (body) + 2;
          break;

        default:
          g_assert_not_reached ();
        }

      if (frame < body || !g_size_checked_add (&total, total, frame))
        goto overflow;
    }

  if (total > G_MAXSIZE - BASE64_SLACK)
    goto overflow;

  plan->size = total;
  return TRUE;

overflow:
  g_critical ("%s: payload too large to encode", G_STRFUNC);
  encode_plan_clear (plan);
  return FALSE;
}

/* Writes the payload @plan was made for; @dest has room for
 * plan->size + %BASE64_SLACK bytes. Returns the number of bytes written. */
static gsize
encode_plan_write (EncodePlan               *plan,
                   EngineIOPayloadFormat     format,
                   EngineIOPacket * const   *packets,
                   gsize                     n_packets,
                   guint8                   *dest)
{
  guint8 *p = dest;
  gsize i;

  if (format == ENGINE_IO_PAYLOAD_V3_TEXT && n_packets == 0)
    {
      memcpy (p, "0:", 2);
      return 2;
    }

  for (i = 0; i < n_packets; i++)
    {
      EngineIOPacket *packet = packets[i];
      gsize size;
      const guint8 *data = g_bytes_get_data (packet->data, &size);

      switch (format)
        {
        case ENGINE_IO_PAYLOAD_V4:
          if (i > 0)
            *p++ = RECORD_SEPARATOR;
          if (packet->is_binary)
            {
              *p++ = 'b';
              p = write_base64 (p, data, size);
            }
          else
            {
              *p++ = '0' + packet->type;
              p = write_bytes (p, data, size);
            }
          break;

        case ENGINE_IO_PAYLOAD_V3_TEXT:
          p = write_decimal (p, plan->units[i], decimal_digits (plan->units[i]), TRUE);
          *p++ = ':';
          if (packet->is_binary)
            {
              *p++ = 'b';
              *p++ = '0' + packet->type;
              p = write_base64 (p, data, size);
            }
          else
            {
              *p++ = '0' + packet->type;
              p = write_bytes (p, data, size);
            }
          break;

        case ENGINE_IO_PAYLOAD_V3_BINARY:
          *p++ = packet->is_binary ? 1 : 0;
          p = write_decimal (p, size + 1, decimal_digits (size + 1), FALSE);
          *p++ = 0xff;
          *p++ = packet->is_binary ? (guint8) packet->type : '0' + packet->type;
          p = write_bytes (p, data, size);
          break;

        default:
          g_assert_not_reached ();
        }
    }

  return (gsize) (p - dest);
}

void
engine_io_payload_encode_append (EngineIOPayloadFormat     format,
                                 EngineIOPacket * const   *packets,
                                 gsize                     n_packets,
                                 GByteArray               *out)
{
  g_auto(EncodePlan) plan = { 0, };
  guint old_len;
  gsize written;

  g_return_if_fail (FORMAT_IS_VALID (format));
  g_return_if_fail (packets != NULL || n_packets == 0);
  g_return_if_fail (out != NULL);

  if (!encode_plan_init (&plan, format, packets, n_packets))
    return;

  old_len = out->len;
  g_return_if_fail (plan.size + BASE64_SLACK <= G_MAXUINT - old_len);

  g_byte_array_set_size (out, old_len + plan.size + BASE64_SLACK);
  written = encode_plan_write (&plan, format, packets, n_packets, out->data + old_len);
  g_assert (written == plan.size);
  g_byte_array_set_size (out, old_len + plan.size);
}

/**
 * engine_io_payload_encode:
 * @format: the payload framing
 * @packets: (element-type EngineIOPacket): the packets, in order
 *
 * Encodes @packets as one HTTP long-polling body (see
 * #EngineIOPayloadFormat):
 *
 * - %ENGINE_IO_PAYLOAD_V4: packets joined by `\x1e`, binary messages as
 *   `b<base64>`. An empty list gives an empty payload. A text packet that
 *   contains U+001E cannot be framed in v4 (the reference has the same
 *   limitation): the receiver will split it.
 * - %ENGINE_IO_PAYLOAD_V3_TEXT: `<len>:<packet>` per packet, `len` in
 *   UTF-16 code units (`4é€😀` is `5:4é€😀`); binary packets as
 *   `b<type digit><base64>`. An empty list gives `0:`.
 * - %ENGINE_IO_PAYLOAD_V3_BINARY: per packet 0 (text) or 1 (binary), the
 *   byte length as one byte per decimal digit, 0xFF, then the packet with
 *   its type digit (text) or type byte (binary).
 *
 * In v4 only %ENGINE_IO_PACKET_MESSAGE packets can be binary.
 *
 * The result is computed in one allocation of exactly the right size.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): the payload
 */
GBytes *
engine_io_payload_encode (EngineIOPayloadFormat  format,
                          GPtrArray             *packets)
{
  g_auto(EncodePlan) plan = { 0, };
  EngineIOPacket * const *items;
  guint8 *buffer;
  gsize written;

  g_return_val_if_fail (FORMAT_IS_VALID (format), NULL);
  g_return_val_if_fail (packets != NULL, NULL);

  items = (EngineIOPacket * const *) packets->pdata;
  if (!encode_plan_init (&plan, format, items, packets->len))
    return NULL;

  buffer = g_malloc (plan.size + BASE64_SLACK);
  written = encode_plan_write (&plan, format, items, packets->len, buffer);
  g_assert (written == plan.size);

  return g_bytes_new_take (buffer, plan.size);
}

/* Payloads are read one packet at a time (EngineIOPayloadReader), so a
 * server can stop taking packets out of a large body while its session
 * is over its memory bound; engine_io_payload_decode_data() reads them
 * all. */

gboolean
engine_io_payload_reader_init (EngineIOPayloadReader  *reader,
                               EngineIOPayloadFormat   format,
                               const guint8           *data,
                               gsize                   length,
                               GBytes                 *owner,
                               GError                **error)
{
  gsize bad;

  g_return_val_if_fail (reader != NULL, FALSE);
  g_return_val_if_fail (FORMAT_IS_VALID (format), FALSE);
  g_return_val_if_fail (data != NULL || length == 0, FALSE);
  g_return_val_if_fail (owner == NULL || owner_contains (owner, data, length), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  reader->format = format;
  reader->data = data;
  reader->length = length;
  reader->owner = owner;
  reader->pos = 0;
  reader->done = TRUE;

  if (length == 0)
    {
      parse_error (error, "Empty payload at byte offset %d", 0);
      return FALSE;
    }

  /* v3 text lengths count characters: the whole payload must be UTF-8 to
   * count them, and then each packet is known to be valid. */
  if (format == ENGINE_IO_PAYLOAD_V3_TEXT &&
      !engine_io_utf8_validate ((const char *) data, length, &bad))
    {
      parse_error (error, "Invalid UTF-8 in text payload at byte offset %" G_GSIZE_FORMAT, bad);
      return FALSE;
    }

  reader->done = FALSE;
  return TRUE;
}

/* v4: packets separated by 0x1e, each a text packet or `b<base64>`. */
static EngineIOPacket *
reader_next_v4 (EngineIOPayloadReader  *reader,
                GError                **error)
{
  const char *data = (const char *) reader->data;
  gsize length = reader->length;
  gsize pos = reader->pos;
  const char *sep = memchr (data + pos, RECORD_SEPARATOR, length - pos);
  gsize end = sep != NULL ? (gsize) (sep - data) : length;

  if (sep == NULL)
    reader->done = TRUE;
  else
    reader->pos = end + 1;
  return engine_io_packet_decode_text (data + pos, end - pos, ENGINE_IO_PROTOCOL_V4, FALSE, pos, error);
}

/* v3 text: `<len>:<packet>` repeated, len in UTF-16 code units. */
static EngineIOPacket *
reader_next_v3_text (EngineIOPayloadReader  *reader,
                     GError                **error)
{
  const char *data = (const char *) reader->data;
  gsize length = reader->length;
  gsize pos = reader->pos;

  while (pos < length)
    {
      gsize length_offset = pos;
      gsize units = 0;
      guint n_digits = 0;
      gsize end;

      for (; pos < length && data[pos] != ':'; pos++)
        {
          char c = data[pos];

          if (c < '0' || c > '9')
            {
              parse_error (error, "Invalid character in packet length at byte offset %" G_GSIZE_FORMAT, pos);
              return NULL;
            }
          if (n_digits == ENGINE_IO_V3_MAX_LENGTH_DIGITS)
            {
              parse_error (error, "Packet length longer than %d digits at byte offset %" G_GSIZE_FORMAT,
                           ENGINE_IO_V3_MAX_LENGTH_DIGITS, pos);
              return NULL;
            }
          units = units * 10 + (gsize) (c - '0');
          n_digits++;
        }

      if (pos == length)
        {
          parse_error (error, "Missing “:” after packet length at byte offset %" G_GSIZE_FORMAT, pos);
          return NULL;
        }
      if (n_digits == 0)
        {
          parse_error (error, "Missing packet length at byte offset %" G_GSIZE_FORMAT, pos);
          return NULL;
        }
      pos++;  /* ':' */

      if (!find_utf16_end (data, length, pos, units, length_offset, &end, error))
        return NULL;

      /* The reference skips zero-length packets ("0:" is an empty list). */
      if (end > pos)
        {
          reader->pos = end;
          reader->done = end == length;
          return engine_io_packet_decode_text (data + pos, end - pos, ENGINE_IO_PROTOCOL_V3, TRUE, pos, error);
        }
      pos = end;
    }

  reader->pos = pos;
  reader->done = TRUE;
  return NULL;
}

/* v3 binary (XHR2): per packet 0|1, decimal digit bytes, 0xFF, packet. */
static EngineIOPacket *
reader_next_v3_binary (EngineIOPayloadReader  *reader,
                       GError                **error)
{
  const guint8 *data = reader->data;
  gsize length = reader->length;
  gsize pos = reader->pos;
  guint8 marker = data[pos];
  gsize length_offset;
  gsize packet_length = 0;
  guint n_digits = 0;
  EngineIOPacket *packet;

  if (marker > 1)
    {
      parse_error (error, "Invalid packet marker 0x%02x (expected 0 or 1) at byte offset %" G_GSIZE_FORMAT,
                   marker, pos);
      return NULL;
    }
  length_offset = ++pos;

  for (;; pos++)
    {
      guint8 c;

      if (pos == length)
        {
          parse_error (error, "Truncated packet length at byte offset %" G_GSIZE_FORMAT, pos);
          return NULL;
        }
      c = data[pos];
      if (c == 0xff)
        break;
      if (c > 9)
        {
          parse_error (error, "Invalid length digit 0x%02x at byte offset %" G_GSIZE_FORMAT, c, pos);
          return NULL;
        }
      if (n_digits == ENGINE_IO_V3_MAX_LENGTH_DIGITS)
        {
          parse_error (error, "Packet length longer than %d digits at byte offset %" G_GSIZE_FORMAT,
                       ENGINE_IO_V3_MAX_LENGTH_DIGITS, pos);
          return NULL;
        }
      packet_length = packet_length * 10 + c;
      n_digits++;
    }

  if (n_digits == 0)
    {
      parse_error (error, "Missing packet length at byte offset %" G_GSIZE_FORMAT, pos);
      return NULL;
    }
  pos++;  /* 0xFF */

  if (packet_length > length - pos)
    {
      parse_error (error,
                   "Length %" G_GSIZE_FORMAT " past the end of the payload at byte offset %" G_GSIZE_FORMAT,
                   packet_length, length_offset);
      return NULL;
    }
  if (packet_length == 0)
    {
      parse_error (error, "Empty packet at byte offset %" G_GSIZE_FORMAT, pos);
      return NULL;
    }

  if (marker == 0)
    packet = engine_io_packet_decode_text ((const char *) data + pos, packet_length,
                                 ENGINE_IO_PROTOCOL_V3, FALSE, pos, error);
  else if (!PACKET_TYPE_IS_VALID (data[pos]))
    {
      engine_io_packet_set_unknown_type_error (error, data[pos], TRUE, pos);
      packet = NULL;
    }
  else
    packet = engine_io_packet_new_slice (data[pos], reader->owner, data + pos + 1, packet_length - 1);

  reader->pos = pos + packet_length;
  reader->done = reader->pos == length;
  return packet;
}

EngineIOPacket *
engine_io_payload_reader_next (EngineIOPayloadReader  *reader,
                               GError                **error)
{
  EngineIOPacket *packet;

  g_return_val_if_fail (reader != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (reader->done)
    return NULL;

  switch (reader->format)
    {
    case ENGINE_IO_PAYLOAD_V4:
      packet = reader_next_v4 (reader, error);
      break;
    case ENGINE_IO_PAYLOAD_V3_TEXT:
      /* Zero-length packets at the end give NULL with no error. */
      packet = reader_next_v3_text (reader, error);
      break;
    case ENGINE_IO_PAYLOAD_V3_BINARY:
      packet = reader_next_v3_binary (reader, error);
      break;
    default:
      g_return_val_if_reached (NULL);
    }

  if (packet == NULL)
    reader->done = TRUE;  /* an error ends the payload */
  return packet;
}

gboolean
engine_io_payload_reader_validate_rest (const EngineIOPayloadReader  *reader,
                                        GError                      **error)
{
  EngineIOPayloadReader copy = *reader;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Packets are decoded and dropped at once: the allocator reuses the
   * same few blocks, and nothing is kept. */
  while (!copy.done)
    {
      EngineIOPacket *packet = engine_io_payload_reader_next (&copy, &local);

      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (packet != NULL)
        engine_io_packet_unref (packet);
    }
  return TRUE;
}

GPtrArray *
engine_io_payload_decode_data (EngineIOPayloadFormat   format,
                               const guint8           *data,
                               gsize                   length,
                               GBytes                 *owner,
                               GError                **error)
{
  g_autoptr(GPtrArray) packets = NULL;
  EngineIOPayloadReader reader;

  g_return_val_if_fail (FORMAT_IS_VALID (format), NULL);
  g_return_val_if_fail (data != NULL || length == 0, NULL);
  g_return_val_if_fail (owner == NULL || owner_contains (owner, data, length), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!engine_io_payload_reader_init (&reader, format, data, length, owner, error))
    return NULL;

  packets = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
  while (!reader.done)
    {
      g_autoptr(GError) local = NULL;
      EngineIOPacket *packet = engine_io_payload_reader_next (&reader, &local);

      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      if (packet != NULL)
        g_ptr_array_add (packets, packet);
    }

  return g_steal_pointer (&packets);
}

/**
 * engine_io_payload_decode:
 * @format: the payload framing
 * @payload: an HTTP long-polling body
 * @error: return location for a #GError, or %NULL
 *
 * Decodes the packets of a long-polling body (see #EngineIOPayloadFormat
 * and engine_io_payload_encode()).
 *
 * Anything malformed fails the whole payload with %ENGINE_IO_ERROR_PARSE,
 * whose message names the problem and its byte offset in @payload: an
 * empty payload, an empty packet (two separators in a row or a trailing
 * one in v4; a zero length in v3 binary), a bad, missing or over-long
 * length (more than 9 digits), a length past the end of the payload or
 * splitting a UTF-16 surrogate pair, an unknown packet type, invalid
 * UTF-8, invalid base64. In a v3 text payload zero-length packets are
 * skipped, as the reference does, so `0:` decodes to no packets.
 *
 * Binary packets of a %ENGINE_IO_PAYLOAD_V3_BINARY payload share
 * @payload's memory when they are at least half of it (zero-copy, so they
 * keep all of @payload alive); smaller ones, and everything else, are
 * copied, so a small packet never keeps a large body alive.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer container) (element-type EngineIOPacket) (nullable):
 *   the packets, in order, or %NULL on error. The array's free function
 *   unrefs the packets, so g_ptr_array_unref() frees everything. (Annotated
 *   `container`, not `full`: bindings would otherwise unref every packet a
 *   second time.)
 */
GPtrArray *
engine_io_payload_decode (EngineIOPayloadFormat   format,
                          GBytes                 *payload,
                          GError                **error)
{
  const guint8 *data;
  gsize length;

  g_return_val_if_fail (payload != NULL, NULL);

  data = g_bytes_get_data (payload, &length);
  return engine_io_payload_decode_data (format, data, length, payload, error);
}
