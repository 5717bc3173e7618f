/* engineio-packet.c: Engine.IO packets and the sans-I/O codec (v3 and v4)
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

#include "engineio-packet.h"
#include "engineio-packet-private.h"

#include <string.h>

/* Immutable once built: only the reference count changes, atomically. */
struct _EngineIOPacket
{
  gatomicrefcount     ref_count;  /* (atomic) */
  EngineIOPacketType  type;       /* immutable */
  gboolean            is_binary;  /* immutable */
  guint32             pinned;     /* immutable: bytes of a larger buffer that
                                   * @data keeps alive beyond its own size
                                   * (a zero-copy slice), for the footprint */
  GBytes             *data;       /* owned, immutable; for text the buffer
                                   * has a NUL at [size] */
};

G_DEFINE_BOXED_TYPE (EngineIOPacket, engine_io_packet,
                     engine_io_packet_ref, engine_io_packet_unref)

#define RECORD_SEPARATOR 0x1e

#define PACKET_TYPE_IS_VALID(t) ((guint) (t) <= ENGINE_IO_PACKET_NOOP)
#define VERSION_IS_VALID(v) ((v) == ENGINE_IO_PROTOCOL_V3 || (v) == ENGINE_IO_PROTOCOL_V4)
#define FORMAT_IS_VALID(f) ((guint) (f) <= ENGINE_IO_PAYLOAD_V3_BINARY)

/* g_base64_encode_step() documents a worst case slightly above the exact
 * encoded size; payload buffers keep this much spare room at the end. */
#define BASE64_SLACK 8

#define HIGH_BITS G_GUINT64_CONSTANT (0x8080808080808080)

/* Parse errors; every message ends with the byte offset. */
#define parse_error(error, format, ...) \
  g_set_error ((error), ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE, format, __VA_ARGS__)

static const char * const packet_type_names[] = {
  "open", "close", "ping", "pong", "message", "upgrade", "noop",
};

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

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */
/* ------------------------------------------------------------------ */

static inline guint64
load64 (const guchar *p)
{
  guint64 w;

  memcpy (&w, p, sizeof w);
  return w;
}

static inline guint
popcount64 (guint64 w)
{
#if defined(__GNUC__) || defined(__clang__)
  return (guint) __builtin_popcountll (w);
#else
  guint n = 0;

  for (; w != 0; w &= w - 1)
    n++;
  return n;
#endif
}

/* Number of UTF-16 code units contributed by the 8 bytes of @w: one per
 * byte that is not a continuation byte (10xxxxxx), one more per 4-byte lead
 * (11110xxx). Works in any byte order: bytes are classified independently. */
static inline guint
utf16_units_in_word (guint64 w)
{
  guint64 cont = w & ~(w << 1) & HIGH_BITS;
  guint64 lead4 = w & (w << 1) & (w << 2) & (w << 3) & HIGH_BITS;

  return 8 - popcount64 (cont) + popcount64 (lead4);
}

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

static inline guint8 *
write_bytes (guint8       *dest,
             const guint8 *src,
             gsize         n)
{
  if (n > 0)
    memcpy (dest, src, n);
  return dest + n;
}

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

static gboolean
owner_contains (GBytes       *owner,
                const guint8 *data,
                gsize         length)
{
  gsize size;
  const guint8 *base = g_bytes_get_data (owner, &size);

  if (length == 0)
    return TRUE;

  return base != NULL && data >= base && length <= size &&
         (gsize) (data - base) <= size - length;
}

/* A zero-copy slice keeps its whole parent buffer alive: slices smaller
 * than 1/ENGINE_IO_SLICE_MIN_FRACTION of their parent (a 2-byte packet in
 * a 1 MB POST body) are copied instead, so a packet never pins more than
 * its own size again in memory it does not use. */
#define ENGINE_IO_SLICE_MIN_FRACTION 2

/* A binary packet of @length bytes at @data: a zero-copy slice of @owner
 * when there is one and it is large enough, else a copy. */
static EngineIOPacket *
packet_new_slice (EngineIOPacketType  type,
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
/* UTF-8 and UTF-16                                                     */
/* ------------------------------------------------------------------ */

gboolean
engine_io_utf8_validate (const char *data,
                         gsize       length,
                         gsize      *out_bad_offset)
{
  const guchar *p = (const guchar *) data;
  gsize i = 0;

  g_return_val_if_fail (data != NULL || length == 0, FALSE);

  while (i < length)
    {
      const char *end;
      gsize run_end;

      /* ASCII (NUL included) 32, then 8 bytes at a time. */
      while (length - i >= 32)
        {
          guint64 w = load64 (p + i) | load64 (p + i + 8) |
                      load64 (p + i + 16) | load64 (p + i + 24);

          if (w & HIGH_BITS)
            break;
          i += 32;
        }
      while (length - i >= 8 && (load64 (p + i) & HIGH_BITS) == 0)
        i += 8;
      while (i < length && p[i] < 0x80)
        i++;
      if (i == length)
        break;

      /* A run of bytes >= 0x80 must be whole, valid multi-byte sequences.
       * It contains no NUL, which g_utf8_validate_len() would reject. */
      run_end = i + 1;
      while (run_end < length && p[run_end] >= 0x80)
        run_end++;

      if (!g_utf8_validate_len (data + i, run_end - i, &end))
        {
          if (out_bad_offset != NULL)
            *out_bad_offset = (gsize) (end - data);
          return FALSE;
        }
      i = run_end;
    }

  if (out_bad_offset != NULL)
    *out_bad_offset = length;
  return TRUE;
}

gsize
engine_io_utf16_length (const char *utf8,
                        gsize       length)
{
  const guchar *p = (const guchar *) utf8;
  gsize units = 0;
  gsize i = 0;

  g_return_val_if_fail (utf8 != NULL || length == 0, 0);

  for (; length - i >= 8; i += 8)
    {
      guint64 w = load64 (p + i);

      units += G_LIKELY ((w & HIGH_BITS) == 0) ? 8 : utf16_units_in_word (w);
    }
  for (; i < length; i++)
    {
      if ((p[i] & 0xc0) != 0x80)
        units++;
      if (p[i] >= 0xf0)
        units++;
    }

  return units;
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
/* Enumerations                                                         */
/* ------------------------------------------------------------------ */

/**
 * engine_io_packet_type_to_string:
 * @type: a packet type
 *
 * The name of @type as the reference implementation spells it: `open`,
 * `close`, `ping`, `pong`, `message`, `upgrade` or `noop`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_packet_type_to_string (EngineIOPacketType type)
{
  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);

  return packet_type_names[type];
}

/**
 * engine_io_packet_type_from_string:
 * @str: a packet type name, as engine_io_packet_type_to_string() returns
 * @out_type: (out) (optional): the packet type
 *
 * Parses a packet type name. The match is exact (case-sensitive).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str names a packet type
 */
gboolean
engine_io_packet_type_from_string (const char         *str,
                                   EngineIOPacketType *out_type)
{
  guint i;

  g_return_val_if_fail (str != NULL, FALSE);

  for (i = 0; i < G_N_ELEMENTS (packet_type_names); i++)
    {
      if (strcmp (str, packet_type_names[i]) == 0)
        {
          if (out_type != NULL)
            *out_type = (EngineIOPacketType) i;
          return TRUE;
        }
    }

  return FALSE;
}

/**
 * engine_io_protocol_version_to_string:
 * @version: a protocol version
 *
 * The value of the `EIO` query parameter for @version: `"3"` or `"4"`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_protocol_version_to_string (EngineIOProtocolVersion version)
{
  g_return_val_if_fail (VERSION_IS_VALID (version), NULL);

  return version == ENGINE_IO_PROTOCOL_V3 ? "3" : "4";
}

/**
 * engine_io_protocol_version_from_string:
 * @str: the value of an `EIO` query parameter
 * @out_version: (out) (optional): the protocol version
 *
 * Parses an `EIO` value. Only exactly `"3"` and `"4"` are accepted:
 * `"04"`, `"4 "`, `"5"` or the empty string are not, and the caller must
 * answer them with "Unsupported protocol version" rather than guess.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str is a supported protocol version
 */
gboolean
engine_io_protocol_version_from_string (const char              *str,
                                        EngineIOProtocolVersion *out_version)
{
  EngineIOProtocolVersion version;

  g_return_val_if_fail (str != NULL, FALSE);

  if (strcmp (str, "3") == 0)
    version = ENGINE_IO_PROTOCOL_V3;
  else if (strcmp (str, "4") == 0)
    version = ENGINE_IO_PROTOCOL_V4;
  else
    return FALSE;

  if (out_version != NULL)
    *out_version = version;
  return TRUE;
}

/**
 * engine_io_transport_type_to_string:
 * @transport: a transport
 *
 * The value of the `transport` query parameter for @transport: `polling`
 * or `websocket`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_transport_type_to_string (EngineIOTransportType transport)
{
  switch (transport)
    {
    case ENGINE_IO_TRANSPORT_POLLING:
      return "polling";
    case ENGINE_IO_TRANSPORT_WEBSOCKET:
      return "websocket";
    default:
      g_return_val_if_reached (NULL);
    }
}

/**
 * engine_io_transport_type_from_string:
 * @str: the value of a `transport` query parameter
 * @out_transport: (out) (optional): the transport
 *
 * Parses a transport name: exactly `polling` or `websocket`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str names a transport
 */
gboolean
engine_io_transport_type_from_string (const char            *str,
                                      EngineIOTransportType *out_transport)
{
  EngineIOTransportType transport;

  g_return_val_if_fail (str != NULL, FALSE);

  if (strcmp (str, "polling") == 0)
    transport = ENGINE_IO_TRANSPORT_POLLING;
  else if (strcmp (str, "websocket") == 0)
    transport = ENGINE_IO_TRANSPORT_WEBSOCKET;
  else
    return FALSE;

  if (out_transport != NULL)
    *out_transport = transport;
  return TRUE;
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

static void
set_unknown_type_error (GError  **error,
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
          set_unknown_type_error (error, data[1], FALSE, base + 1);
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
static EngineIOPacket *
decode_text_packet (const char               *data,
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
      set_unknown_type_error (error, c, FALSE, base);
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

/* A text frame whose UTF-8 the transport already validated (wslay does,
 * closing with 1007 otherwise): parse it without checking again. */
EngineIOPacket *
engine_io_packet_decode_valid_text (const char               *data,
                                    gsize                     length,
                                    EngineIOProtocolVersion   version,
                                    GError                  **error)
{
  return decode_text_packet (data, length, version, TRUE, 0, error);
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
    return decode_text_packet ((const char *) data, length, version, FALSE, 0, error);

  if (version == ENGINE_IO_PROTOCOL_V4)
    return packet_new_slice (ENGINE_IO_PACKET_MESSAGE, owner, data, length);

  if (length == 0)
    {
      parse_error (error, "Empty packet at byte offset %d", 0);
      return NULL;
    }
  if (!PACKET_TYPE_IS_VALID (data[0]))
    {
      set_unknown_type_error (error, data[0], TRUE, 0);
      return NULL;
    }

  return packet_new_slice (data[0], owner, data + 1, length - 1);
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
  return decode_text_packet (data + pos, end - pos, ENGINE_IO_PROTOCOL_V4, FALSE, pos, error);
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
          return decode_text_packet (data + pos, end - pos, ENGINE_IO_PROTOCOL_V3, TRUE, pos, error);
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
    packet = decode_text_packet ((const char *) data + pos, packet_length,
                                 ENGINE_IO_PROTOCOL_V3, FALSE, pos, error);
  else if (!PACKET_TYPE_IS_VALID (data[pos]))
    {
      set_unknown_type_error (error, data[pos], TRUE, pos);
      packet = NULL;
    }
  else
    packet = packet_new_slice (data[pos], reader->owner, data + pos + 1, packet_length - 1);

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
