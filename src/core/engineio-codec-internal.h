/* engineio-codec-internal.h: what the files of the packet codec share
 *
 * engineio-packet.c (EngineIOPacket, single packets), engineio-payload.c
 * (payloads), engineio-utf.c (UTF-8 and UTF-16) and engineio-enums.c
 * (to/from string) include it; nothing outside src/core/ does (the rest of
 * the library and the tests use engineio-packet-private.h).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <string.h>

#include "engineio-packet.h"
#include "engineio-packet-private.h"

G_BEGIN_DECLS

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

#define RECORD_SEPARATOR 0x1e

#define PACKET_TYPE_IS_VALID(t) ((guint) (t) <= ENGINE_IO_PACKET_NOOP)
#define VERSION_IS_VALID(v) ((v) == ENGINE_IO_PROTOCOL_V3 || (v) == ENGINE_IO_PROTOCOL_V4)
#define FORMAT_IS_VALID(f) ((guint) (f) <= ENGINE_IO_PAYLOAD_V3_BINARY)

#define HIGH_BITS G_GUINT64_CONSTANT (0x8080808080808080)

/* Parse errors; every message ends with the byte offset. */
#define parse_error(error, format, ...) \
  g_set_error ((error), ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE, format, __VA_ARGS__)

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

static inline guint8 *
write_bytes (guint8       *dest,
             const guint8 *src,
             gsize         n)
{
  if (n > 0)
    memcpy (dest, src, n);
  return dest + n;
}

static inline gboolean
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

/* engine_io_packet_new_slice:
 *
 * A binary packet of @length bytes at @data: a zero-copy slice of @owner
 * when there is one and it is large enough, else a copy (engineio-packet.c).
 */
EngineIOPacket *engine_io_packet_new_slice         (EngineIOPacketType        type,
                                                    GBytes                   *owner,
                                                    const guint8             *data,
                                                    gsize                     length);

/* engine_io_packet_decode_text:
 *
 * One packet in text form: `<type digit><UTF-8 text>` or base64 binary.
 * @utf8_checked: the caller validated all of @data already; @base is the
 * offset of @data in the frame or payload, for error messages
 * (engineio-packet.c).
 */
EngineIOPacket *engine_io_packet_decode_text       (const char               *data,
                                                    gsize                     length,
                                                    EngineIOProtocolVersion   version,
                                                    gboolean                  utf8_checked,
                                                    gsize                     base,
                                                    GError                  **error);

/* engine_io_packet_set_unknown_type_error:
 *
 * Sets the parse error for the unknown packet type @c at @offset, printed
 * as a character when it is one and @binary is %FALSE (engineio-packet.c).
 */
void            engine_io_packet_set_unknown_type_error (GError  **error,
                                                         guchar    c,
                                                         gboolean  binary,
                                                         gsize     offset);

G_END_DECLS
