/* engineio-packet.h: Engine.IO packets and the sans-I/O codec (v3 and v4)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <glib-object.h>
#include <engineio/engineio-version.h>

G_BEGIN_DECLS

/**
 * EngineIOPacketType:
 * @ENGINE_IO_PACKET_OPEN: `0`, the handshake, sent by the server
 * @ENGINE_IO_PACKET_CLOSE: `1`, close the session
 * @ENGINE_IO_PACKET_PING: `2`, heartbeat (server to client in v4, client to
 *   server in v3) and the upgrade probe `2probe`
 * @ENGINE_IO_PACKET_PONG: `3`, heartbeat answer and `3probe`
 * @ENGINE_IO_PACKET_MESSAGE: `4`, application data, text or binary
 * @ENGINE_IO_PACKET_UPGRADE: `5`, completes an upgrade to WebSocket
 * @ENGINE_IO_PACKET_NOOP: `6`, answers a pending poll during an upgrade
 *
 * The Engine.IO packet types; the value is the digit on the wire.
 */
typedef enum
{
  ENGINE_IO_PACKET_OPEN = 0,
  ENGINE_IO_PACKET_CLOSE = 1,
  ENGINE_IO_PACKET_PING = 2,
  ENGINE_IO_PACKET_PONG = 3,
  ENGINE_IO_PACKET_MESSAGE = 4,
  ENGINE_IO_PACKET_UPGRADE = 5,
  ENGINE_IO_PACKET_NOOP = 6,
} EngineIOPacketType;

/**
 * EngineIOProtocolVersion:
 * @ENGINE_IO_PROTOCOL_V3: Engine.IO protocol 3 (`EIO=3`, engine.io-client 3.x)
 * @ENGINE_IO_PROTOCOL_V4: Engine.IO protocol 4 (`EIO=4`, engine.io-client 4+)
 *
 * The protocol revisions this library speaks; the value is the `EIO` number.
 */
typedef enum
{
  ENGINE_IO_PROTOCOL_V3 = 3,
  ENGINE_IO_PROTOCOL_V4 = 4,
} EngineIOProtocolVersion;

/**
 * EngineIOTransportType:
 * @ENGINE_IO_TRANSPORT_POLLING: HTTP long-polling
 * @ENGINE_IO_TRANSPORT_WEBSOCKET: WebSocket
 *
 * The transports a session can use.
 */
typedef enum
{
  ENGINE_IO_TRANSPORT_POLLING,
  ENGINE_IO_TRANSPORT_WEBSOCKET,
} EngineIOTransportType;

/**
 * EngineIOPayloadFormat:
 * @ENGINE_IO_PAYLOAD_V4: v4 polling payload: packets joined by `\x1e`,
 *   binary messages as `b` + base64
 * @ENGINE_IO_PAYLOAD_V3_TEXT: v3 text payload: `<len>:<packet>` repeated,
 *   `len` in UTF-16 code units; binary packets as `b<type><base64>` (what
 *   `b64=1` clients and JSONP receive)
 * @ENGINE_IO_PAYLOAD_V3_BINARY: v3 binary (XHR2) payload: per packet a byte
 *   0 (text) or 1 (binary), the byte length as one byte per decimal digit,
 *   0xFF, then the packet; binary packets keep their type byte
 *
 * How several packets are framed in one HTTP long-polling body.
 */
typedef enum
{
  ENGINE_IO_PAYLOAD_V4,
  ENGINE_IO_PAYLOAD_V3_TEXT,
  ENGINE_IO_PAYLOAD_V3_BINARY,
} EngineIOPayloadFormat;

ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_packet_type_to_string        (EngineIOPacketType       type);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_packet_type_from_string      (const char              *str,
                                                    EngineIOPacketType      *out_type);
ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_protocol_version_to_string   (EngineIOProtocolVersion  version);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_protocol_version_from_string (const char              *str,
                                                    EngineIOProtocolVersion *out_version);
ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_transport_type_to_string     (EngineIOTransportType    transport);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_transport_type_from_string   (const char              *str,
                                                    EngineIOTransportType   *out_transport);

/**
 * EngineIOPacket:
 *
 * One Engine.IO packet: a type and either UTF-8 text or binary data.
 *
 * A packet is reference counted and immutable once built, so it can be
 * shared between threads without locking.
 */
typedef struct _EngineIOPacket EngineIOPacket;

#define ENGINE_IO_TYPE_PACKET (engine_io_packet_get_type ())

ENGINE_IO_AVAILABLE_IN_ALL
GType              engine_io_packet_get_type        (void) G_GNUC_CONST;
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket    *engine_io_packet_new             (EngineIOPacketType  type);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket    *engine_io_packet_new_text        (EngineIOPacketType  type,
                                                     const char         *text,
                                                     gssize              length);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket    *engine_io_packet_new_binary      (EngineIOPacketType  type,
                                                     GBytes             *data);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket    *engine_io_packet_ref             (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
void               engine_io_packet_unref           (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacketType engine_io_packet_get_packet_type (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean           engine_io_packet_is_binary       (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
const char        *engine_io_packet_get_text        (EngineIOPacket     *packet,
                                                     gsize              *length);
ENGINE_IO_AVAILABLE_IN_ALL
GBytes            *engine_io_packet_get_data        (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
GBytes            *engine_io_packet_get_text_bytes  (EngineIOPacket     *packet);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean           engine_io_packet_equal           (EngineIOPacket     *a,
                                                     EngineIOPacket     *b);

ENGINE_IO_AVAILABLE_IN_ALL
GBytes            *engine_io_packet_encode          (EngineIOPacket          *packet,
                                                     EngineIOProtocolVersion  version,
                                                     gboolean                *out_is_binary);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket    *engine_io_packet_decode          (GBytes                  *frame,
                                                     gboolean                 is_binary,
                                                     EngineIOProtocolVersion  version,
                                                     GError                 **error);

ENGINE_IO_AVAILABLE_IN_ALL
GBytes            *engine_io_payload_encode         (EngineIOPayloadFormat    format,
                                                     GPtrArray               *packets);
ENGINE_IO_AVAILABLE_IN_ALL
GPtrArray         *engine_io_payload_decode         (EngineIOPayloadFormat    format,
                                                     GBytes                  *payload,
                                                     GError                 **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOPacket, engine_io_packet_unref)

G_END_DECLS
