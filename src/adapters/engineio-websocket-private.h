/* engineio-websocket-private.h: the WebSocket adapter
 *
 * A WebSocket connection driven from one GMainContext (the session's):
 * non-blocking reads and writes on the upgraded socket, framing by our
 * RFC 6455 codec (src/core/engineio-ws-codec-private.h).
 * It knows nothing of Engine.IO packets, nor of libmicrohttpd: the HTTP
 * adapter hands it the socket and a function that gives the socket back.
 *
 * Threads: engine_io_websocket_new() and engine_io_websocket_abort() on an
 * unstarted connection may run anywhere; everything else in the context
 * given to engine_io_websocket_start().
 *
 * Bounds (RFC 6455, 10.4): what a connection holds for sending is counted
 * in bytes of memory (engine_io_websocket_get_buffered()); while it is
 * over 1 MiB the connection is not read, so a peer that makes us answer
 * (pings) without reading the answers fills its own TCP window, not our
 * memory; and output that waits the stall timeout without a byte written
 * closes the connection with 1008.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _EngineIOWebSocket EngineIOWebSocket;

/* Gives the socket back to whoever owns it (libmicrohttpd closes it). */
typedef void (*EngineIOWebSocketReleaseFunc) (gpointer release_data);

typedef struct
{
  /* A complete message; text frames are valid UTF-8 (the codec checks,
   * and closes with 1007 otherwise). @owner (nullable, transfer none):
   * a GBytes of @size + 1 bytes whose data is @data followed by a NUL
   * byte, which the callee may keep (a message assembled in its own
   * buffer); when NULL, @data is valid only during the call. */
  void (*message) (EngineIOWebSocket *ws,
                   gboolean           binary,
                   const guint8      *data,
                   gsize              size,
                   GBytes            *owner,
                   gpointer           user_data);
  /* Everything queued has been written to the socket. */
  void (*drained) (EngineIOWebSocket *ws,
                   gpointer           user_data);
  /* The connection is over and the socket released; @ws stays valid until
   * freed. @clean: the peer sent a close frame; @code: its status code
   * (1005 if none). */
  void (*closed)  (EngineIOWebSocket *ws,
                   gboolean           clean,
                   guint16            code,
                   gpointer           user_data);
  /* Optional. Output has waited the stall timeout without a byte of it
   * written (the peer does not read): the connection stopped reading and
   * is closing with 1008 (closed() follows). @ws stays valid. */
  void (*stalled) (EngineIOWebSocket *ws,
                   gpointer           user_data);
} EngineIOWebSocketCallbacks;

EngineIOWebSocket *engine_io_websocket_new          (int                           fd,
                                                     const void                   *extra_in,
                                                     gsize                         extra_in_size,
                                                     guint64                       max_message,
                                                     EngineIOWebSocketReleaseFunc  release,
                                                     gpointer                      release_data);
/* permessage-deflate was negotiated (RFC 7692, both sides without context
 * takeover): compressed messages are accepted (inflated up to the
 * max_message given to engine_io_websocket_new(), 1009 past it) and data
 * messages of at least @threshold bytes are sent compressed. Call before
 * engine_io_websocket_start(). */
void               engine_io_websocket_set_deflate  (EngineIOWebSocket            *ws,
                                                     guint                         threshold);
/* @stall_timeout_ms: how long output may wait with none of it written
 * before the connection closes with 1008 (0: forever). */
void               engine_io_websocket_start        (EngineIOWebSocket            *ws,
                                                     GMainContext                 *context,
                                                     const EngineIOWebSocketCallbacks *callbacks,
                                                     gpointer                      user_data,
                                                     guint                         stall_timeout_ms);
/* Data payloads up to this size are copied into the connection's
 * coalescing buffer; larger ones are written from their GBytes (see
 * engine_io_websocket_send_bytes()), so engine_io_websocket_send() copies
 * them once into a new GBytes. */
#define ENGINE_IO_WEBSOCKET_COALESCE_MAX (8 * 1024)

gboolean           engine_io_websocket_send         (EngineIOWebSocket            *ws,
                                                     gboolean                      binary,
                                                     const void                   *data,
                                                     gsize                         size);
/* The same, sending from @payload (referenced, not copied, if large). */
gboolean           engine_io_websocket_send_bytes   (EngineIOWebSocket            *ws,
                                                     gboolean                      binary,
                                                     GBytes                       *payload);
/* The same, the payload being @prefix then @payload. */
gboolean           engine_io_websocket_send_prefixed (EngineIOWebSocket           *ws,
                                                     gboolean                      binary,
                                                     guint8                        prefix,
                                                     GBytes                       *payload);
void               engine_io_websocket_flush        (EngineIOWebSocket            *ws);
void               engine_io_websocket_set_paused   (EngineIOWebSocket            *ws,
                                                     gboolean                      paused);
gboolean           engine_io_websocket_can_send     (EngineIOWebSocket            *ws);
gsize              engine_io_websocket_get_buffered (EngineIOWebSocket            *ws);
guint64            engine_io_websocket_get_queued_count (EngineIOWebSocket        *ws);
guint64            engine_io_websocket_get_sent_count (EngineIOWebSocket          *ws);
void               engine_io_websocket_close        (EngineIOWebSocket            *ws,
                                                     guint16                       code,
                                                     const char                   *reason);
void               engine_io_websocket_abort        (EngineIOWebSocket            *ws);
gboolean           engine_io_websocket_is_closed    (EngineIOWebSocket            *ws);
void               engine_io_websocket_free         (EngineIOWebSocket            *ws);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455, 4.2.2). */
char              *engine_io_websocket_accept_key   (const char                   *key);

G_END_DECLS
