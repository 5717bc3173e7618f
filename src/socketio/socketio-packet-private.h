/* socketio-packet-private.h: the Socket.IO packet codec (sans-I/O)
 *
 * Socket.IO packets (protocol v5, and v4 for socket.io 2.x clients over
 * Engine.IO v3) as carried in Engine.IO messages: one text message
 *
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 *
 * followed, for BINARY_EVENT and BINARY_ACK, by <attachments> binary
 * messages that replace the {"_placeholder":true,"num":N} objects of the
 * payload. GLib and json-glib only: no sockets, threads, clocks or main
 * contexts. The Engine.IO "4" (message) prefix is not part of it.
 *
 * In memory a packet is its logical type (EVENT or ACK for binary packets
 * too), its namespace, its ack id, its payload as a sealed JsonNode in
 * which binaries stay placeholders, and its attachments as GBytes:
 * placeholder N stands for attachments[N]. That is what the public API
 * will hand out (JsonNode arguments plus GBytes), and what the Python
 * overrides will turn into bytes in place.
 *
 * A packet is immutable once built: any thread may read it, and its
 * encoding (a GBytes text and GBytes attachments) may be shared by every
 * recipient of a broadcast. A decoder belongs to one connection and is
 * used from one thread at a time (it holds the packet whose attachments
 * are still arriving).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <json-glib/json-glib.h>

#include "socketio-error-private.h"

G_BEGIN_DECLS

/**
 * SocketIOProtocol:
 * @SOCKET_IO_PROTOCOL_V4: Socket.IO protocol 4 (socket.io 1.x and 2.x
 *   clients, over Engine.IO v3)
 * @SOCKET_IO_PROTOCOL_V5: Socket.IO protocol 5 (socket.io 3.x and later,
 *   over Engine.IO v4)
 *
 * Both share the packet format. The codec differs only in what a decoded
 * CONNECT may carry (v5: an auth object; v4: nothing); v4's other
 * differences (no sid in the CONNECT reply, implicit connection to "/",
 * a query string in the CONNECT namespace, CONNECT_ERROR with a string)
 * belong to the server.
 */
typedef enum {
  SOCKET_IO_PROTOCOL_V4 = 4,
  SOCKET_IO_PROTOCOL_V5 = 5,
} SocketIOProtocol;

/**
 * SocketIOPacketType:
 *
 * Wire types. Decoded and constructed packets only ever have the first
 * five: a BINARY_EVENT or BINARY_ACK is an EVENT or ACK with attachments
 * (and is encoded back as one).
 */
typedef enum {
  SOCKET_IO_PACKET_CONNECT = 0,
  SOCKET_IO_PACKET_DISCONNECT = 1,
  SOCKET_IO_PACKET_EVENT = 2,
  SOCKET_IO_PACKET_ACK = 3,
  SOCKET_IO_PACKET_CONNECT_ERROR = 4,
  SOCKET_IO_PACKET_BINARY_EVENT = 5,
  SOCKET_IO_PACKET_BINARY_ACK = 6,
} SocketIOPacketType;

/* No ack id. Ack ids are 0 .. SOCKET_IO_MAX_ACK_ID (2^53 - 1, the largest
 * integer JavaScript peers hold exactly). */
#define SOCKET_IO_NO_ACK_ID (G_GINT64_CONSTANT (-1))
#define SOCKET_IO_MAX_ACK_ID (G_GINT64_CONSTANT (9007199254740991))

/* Decoder defaults. socket.io-parser's maxAttachments is 10; it has no
 * depth or memory bound (V8's stack and heap are the bounds). */
#define SOCKET_IO_DEFAULT_MAX_ATTACHMENTS      10
#define SOCKET_IO_DEFAULT_MAX_ATTACHMENT_BYTES (16 * 1024 * 1024)
#define SOCKET_IO_DEFAULT_MAX_DEPTH            128
#define SOCKET_IO_DEFAULT_MAX_TREE_BYTES       (32 * 1024 * 1024)

typedef struct _SocketIOPacket SocketIOPacket;

SocketIOPacket     *socket_io_packet_new                (SocketIOPacketType  type,
                                                         const char         *nsp,
                                                         JsonNode           *data,
                                                         gint64              id,
                                                         GPtrArray          *attachments,
                                                         GError            **error);
SocketIOPacket     *socket_io_packet_ref                (SocketIOPacket     *packet);
void                socket_io_packet_unref              (SocketIOPacket     *packet);

SocketIOPacketType  socket_io_packet_get_packet_type    (SocketIOPacket     *packet);
const char         *socket_io_packet_get_namespace      (SocketIOPacket     *packet);
gint64              socket_io_packet_get_id             (SocketIOPacket     *packet);
JsonNode           *socket_io_packet_get_data           (SocketIOPacket     *packet);
GPtrArray          *socket_io_packet_get_attachments    (SocketIOPacket     *packet);
const char         *socket_io_packet_get_event_name     (SocketIOPacket     *packet);

GBytes             *socket_io_packet_encode             (SocketIOPacket     *packet,
                                                         GPtrArray         **attachments);
gboolean            socket_io_packet_equal              (SocketIOPacket     *a,
                                                         SocketIOPacket     *b);

gboolean            socket_io_json_node_equal           (JsonNode           *a,
                                                         JsonNode           *b);
JsonNode           *socket_io_placeholder_new           (guint               num);
gboolean            socket_io_event_name_is_reserved   (const char         *name);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SocketIOPacket, socket_io_packet_unref)

typedef struct _SocketIODecoder SocketIODecoder;

SocketIODecoder    *socket_io_decoder_new               (SocketIOProtocol    protocol);
void                socket_io_decoder_free              (SocketIODecoder    *self);
void                socket_io_decoder_set_max_attachments      (SocketIODecoder *self,
                                                                guint            max_attachments);
void                socket_io_decoder_set_max_attachment_bytes (SocketIODecoder *self,
                                                                gsize            max_bytes);
void                socket_io_decoder_set_max_depth            (SocketIODecoder *self,
                                                                guint            max_depth);
void                socket_io_decoder_set_max_tree_bytes       (SocketIODecoder *self,
                                                                gsize            max_bytes);

gboolean            socket_io_decoder_feed_text         (SocketIODecoder    *self,
                                                         const char         *text,
                                                         gsize               length,
                                                         SocketIOPacket    **packet,
                                                         GError            **error);
gboolean            socket_io_decoder_feed_binary       (SocketIODecoder    *self,
                                                         GBytes             *data,
                                                         SocketIOPacket    **packet,
                                                         GError            **error);
guint               socket_io_decoder_get_missing_attachments (SocketIODecoder *self);
gsize               socket_io_decoder_get_pending_bytes (SocketIODecoder    *self);
void                socket_io_decoder_reset             (SocketIODecoder    *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SocketIODecoder, socket_io_decoder_free)

G_END_DECLS
