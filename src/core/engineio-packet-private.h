/* engineio-packet-private.h: internal API of the sans-I/O codec
 *
 * Shared between the .c files of the library and the tests; never installed.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-error.h"
#include "engineio-packet.h"

G_BEGIN_DECLS

/* Largest number of decimal digits accepted in a v3 packet length (text
 * payload `<len>:` and binary payload digit bytes): 999 999 999 at most,
 * which cannot overflow and is far above any sane maxPayload. */
#define ENGINE_IO_V3_MAX_LENGTH_DIGITS 9

/* engine_io_packet_new_take_text:
 * @type: the packet type
 * @text: (transfer full): a g_malloc()ed buffer of @length bytes of valid
 *   UTF-8 followed by a NUL at text[@length]
 * @length: the length of @text in bytes, without the NUL
 *
 * Wraps @text without copying or validating it: for trusted callers only.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new text packet
 */
EngineIOPacket *engine_io_packet_new_take_text   (EngineIOPacketType        type,
                                                  char                     *text,
                                                  gsize                     length);

/* engine_io_packet_decode_data:
 * @data: (array length=length): one WebSocket frame
 * @length: the frame length in bytes
 * @is_binary: whether the frame was a binary frame
 * @version: the protocol version of the session
 * @owner: (nullable): a #GBytes containing @data; binary packets are then
 *   zero-copy slices of it, otherwise their data is copied
 * @error: return location for an %ENGINE_IO_ERROR_PARSE error
 *
 * engine_io_packet_decode() on a raw buffer.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the packet, or %NULL on error
 */
EngineIOPacket *engine_io_packet_decode_data     (const guint8             *data,
                                                  gsize                     length,
                                                  gboolean                  is_binary,
                                                  EngineIOProtocolVersion   version,
                                                  GBytes                   *owner,
                                                  GError                  **error);

/* engine_io_packet_encode_append:
 * @packet: a packet
 * @version: the protocol version of the session
 * @out: the buffer the WebSocket frame form of @packet is appended to
 * @out_is_binary: (out) (optional): whether to send a binary frame
 *
 * engine_io_packet_encode() into an existing buffer (for example a send
 * queue), without an intermediate #GBytes.
 *
 * Thread-safe: may be called from any thread.
 */
EngineIOPacket *engine_io_packet_decode_valid_text (const char              *data,
                                                    gsize                    length,
                                                    EngineIOProtocolVersion  version,
                                                    GError                 **error);
EngineIOPacket *engine_io_packet_decode_valid_text_owned (GBytes                  *owner,
                                                          const char              *data,
                                                          gsize                    length,
                                                          EngineIOProtocolVersion  version,
                                                          GError                 **error);
void            engine_io_packet_encode_append   (EngineIOPacket           *packet,
                                                  EngineIOProtocolVersion   version,
                                                  GByteArray               *out,
                                                  gboolean                 *out_is_binary);

/* engine_io_payload_encode_append:
 * @format: the payload framing
 * @packets: (array length=n_packets): the packets, in order
 * @n_packets: the number of @packets
 * @out: the buffer the payload is appended to (grown at most once)
 *
 * engine_io_payload_encode() from a plain array into an existing buffer.
 *
 * Thread-safe: may be called from any thread.
 */
void            engine_io_payload_encode_append  (EngineIOPayloadFormat     format,
                                                  EngineIOPacket * const   *packets,
                                                  gsize                     n_packets,
                                                  GByteArray               *out);

/* engine_io_payload_decode_data:
 * @format: the payload framing
 * @data: (array length=length): the payload (an HTTP request body)
 * @length: the payload length in bytes
 * @owner: (nullable): a #GBytes containing @data; binary packets of a
 *   %ENGINE_IO_PAYLOAD_V3_BINARY payload are then zero-copy slices of it
 * @error: return location for an %ENGINE_IO_ERROR_PARSE error
 *
 * engine_io_payload_decode() on a raw buffer.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (element-type EngineIOPacket) (nullable): the
 *   packets (the array frees them), or %NULL on error
 */
GPtrArray      *engine_io_payload_decode_data    (EngineIOPayloadFormat     format,
                                                  const guint8             *data,
                                                  gsize                     length,
                                                  GBytes                   *owner,
                                                  GError                  **error);

/* engine_io_utf16_length:
 * @utf8: valid UTF-8 (NUL bytes allowed)
 * @length: the length of @utf8 in bytes
 *
 * The number of UTF-16 code units of @utf8, i.e. its JavaScript
 * `String.length`: characters above U+FFFF count 2. The result is
 * meaningless for invalid UTF-8 (but never reads past @length).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the UTF-16 length
 */
gsize           engine_io_utf16_length           (const char               *utf8,
                                                  gsize                     length);

/* engine_io_utf8_validate:
 * @data: (array length=length): bytes to check
 * @length: the length of @data in bytes
 * @out_bad_offset: (out) (optional): the offset of the first byte of the
 *   first invalid sequence when %FALSE is returned
 *
 * Whether @data is valid UTF-8 as RFC 3629 (and the WebSocket and JSON
 * specifications) define it: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequences. Unlike g_utf8_validate(), NUL
 * bytes are valid (U+0000 is a character). ASCII is checked 32 and 8 bytes
 * at a time; runs of non-ASCII bytes go through g_utf8_validate_len().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @data is valid UTF-8
 */
gboolean        engine_io_utf8_validate          (const char               *data,
                                                  gsize                     length,
                                                  gsize                    *out_bad_offset);

/* ENGINE_IO_ALLOC_SIZE:
 * @n: a size passed to malloc()
 *
 * What a malloc() of @n bytes really takes, for memory accounting: glibc's
 * malloc adds an 8-byte header, rounds up to 16 bytes and allocates at
 * least 32. Other allocators are close to this (or smaller).
 */
#define ENGINE_IO_ALLOC_SIZE(n) MAX ((gsize) 32, ((gsize) (n) + 8 + 15) & ~(gsize) 15)

/* engine_io_packet_get_footprint:
 * @packet: a packet
 *
 * The memory @packet holds, in real bytes: its struct, its #GBytes and
 * its data as allocated (ENGINE_IO_ALLOC_SIZE()), plus what a zero-copy
 * slice keeps alive of its parent buffer. The shared empty data counts
 * nothing. Data shared with the application counts whole: an upper bound.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the footprint in bytes
 */
gsize           engine_io_packet_get_footprint   (EngineIOPacket           *packet);

/* EngineIOPayloadReader:
 *
 * Reads a long-polling payload one packet at a time, so that a server can
 * stop between packets (back-pressure) and go on later. @data (and @owner)
 * must stay alive and unchanged while the reader is used. Binary packets
 * of a v3 binary payload are zero-copy slices of @owner when they are at
 * least half of it; anything smaller is copied.
 */
typedef struct
{
  EngineIOPayloadFormat  format;
  const guint8          *data;
  gsize                  length;
  GBytes                *owner;   /* (nullable) (unowned) */
  gsize                  pos;     /* where the next packet starts */
  gboolean               done;    /* no packet left (or an error was met) */
} EngineIOPayloadReader;

/* engine_io_payload_reader_init:
 * Checks what applies to the whole payload (it is not empty; a v3 text
 * payload is UTF-8) and places @reader before the first packet. FALSE
 * with an %ENGINE_IO_ERROR_PARSE error, as engine_io_payload_decode().
 * Thread-safe: a reader belongs to its caller. */
gboolean        engine_io_payload_reader_init    (EngineIOPayloadReader    *reader,
                                                  EngineIOPayloadFormat     format,
                                                  const guint8             *data,
                                                  gsize                     length,
                                                  GBytes                   *owner,
                                                  GError                  **error);
/* engine_io_payload_reader_next:
 * Returns: (transfer full) (nullable): the next packet; %NULL with @error
 *   set on a malformed packet, %NULL without at the end (reader->done). */
EngineIOPacket *engine_io_payload_reader_next    (EngineIOPayloadReader    *reader,
                                                  GError                  **error);
/* engine_io_payload_reader_validate_rest:
 * Whether the rest of the payload (after what @reader has read) decodes,
 * without keeping any packet and without moving @reader. */
gboolean        engine_io_payload_reader_validate_rest (const EngineIOPayloadReader *reader,
                                                        GError                    **error);

G_END_DECLS
