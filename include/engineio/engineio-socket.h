/* engineio-socket.h: one Engine.IO session, as the application sees it
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <gio/gio.h>
#include <engineio/engineio-version.h>
#include <engineio/engineio-packet.h>
#include <engineio/engineio-handshake.h>

G_BEGIN_DECLS

/**
 * EngineIOCloseReason:
 * @ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE: `transport close`: the client went
 *   away or sent a close packet
 * @ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR: `transport error`: the transport
 *   failed (overlapping polls, a broken connection, a protocol violation)
 * @ENGINE_IO_CLOSE_REASON_PING_TIMEOUT: `ping timeout`: the heartbeat was not
 *   answered in time
 * @ENGINE_IO_CLOSE_REASON_PARSE_ERROR: `parse error`: the client sent a
 *   malformed packet or payload
 * @ENGINE_IO_CLOSE_REASON_FORCED_CLOSE: `forced close`: the application
 *   called engine_io_socket_close()
 * @ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN: `server shutting down`:
 *   engine_io_server_close() was called
 * @ENGINE_IO_CLOSE_REASON_RATE_LIMITED: `rate limit exceeded`: the client
 *   sent messages faster than #EngineIOServer:message-rate allows (with
 *   the policy %ENGINE_IO_RATE_LIMIT_CLOSE); not a reason of the reference
 *   server
 *
 * Why a session ended; engine_io_close_reason_to_string() gives the
 * reference server's wording.
 */
typedef enum
{
  ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
  ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
  ENGINE_IO_CLOSE_REASON_PING_TIMEOUT,
  ENGINE_IO_CLOSE_REASON_PARSE_ERROR,
  ENGINE_IO_CLOSE_REASON_FORCED_CLOSE,
  ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN,
  ENGINE_IO_CLOSE_REASON_RATE_LIMITED,
} EngineIOCloseReason;

ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_close_reason_to_string (EngineIOCloseReason reason);

#define ENGINE_IO_TYPE_SOCKET (engine_io_socket_get_type ())
ENGINE_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EngineIOSocket, engine_io_socket, ENGINE_IO, SOCKET, GObject)

/* Forward declaration; see engineio-server.h. */
typedef struct _EngineIOServer EngineIOServer;

/**
 * EngineIOSendCallback:
 * @socket: the socket the packet was sent on
 * @flushed: %TRUE once the packet has been handed to the transport: over
 *   polling, once the poll response carrying it has been written completely
 *   to a connection its client had not closed; over WebSocket, once the
 *   socket has taken every byte of its frame (it is in the kernel's buffer,
 *   not only in the server's own). %FALSE if the session closed before that, or
 *   the connection failed or was closed by the client first (the packet may
 *   not have arrived)
 * @user_data: the data passed with the callback
 *
 * Called once per packet sent with engine_io_socket_send_text_full() or
 * engine_io_socket_send_binary_full(), in the socket's main context.
 */
typedef void (*EngineIOSendCallback) (EngineIOSocket *socket,
                                      gboolean        flushed,
                                      gpointer        user_data);

/**
 * EngineIOMessageFunc:
 * @socket: the socket the message came on
 * @packet: (transfer none): the message: a text or binary
 *   %ENGINE_IO_PACKET_MESSAGE packet, only borrowed (take a reference to
 *   keep it)
 * @user_data: the data given to engine_io_socket_set_message_func()
 *
 * Receives a socket's messages, in the socket's main context. See
 * engine_io_socket_set_message_func().
 */
typedef void (*EngineIOMessageFunc) (EngineIOSocket *socket,
                                     EngineIOPacket *packet,
                                     gpointer        user_data);

ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_socket_get_id               (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOProtocolVersion engine_io_socket_get_protocol_version (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOTransportType   engine_io_socket_get_transport        (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOHandshake      *engine_io_socket_get_handshake        (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_socket_get_remote_address   (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOServer         *engine_io_socket_get_server           (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
GMainContext           *engine_io_socket_get_context          (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_is_closed            (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
gpointer                engine_io_socket_get_user_data        (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_socket_set_user_data        (EngineIOSocket        *self,
                                                               gpointer               user_data,
                                                               GDestroyNotify         destroy);
ENGINE_IO_AVAILABLE_IN_ALL
gpointer                engine_io_socket_dup_user_data        (EngineIOSocket        *self,
                                                               GDuplicateFunc         dup_func,
                                                               gpointer               user_data);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_socket_set_user_object      (EngineIOSocket        *self,
                                                               gpointer               object);
ENGINE_IO_AVAILABLE_IN_ALL
gpointer                engine_io_socket_dup_user_object      (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_text            (EngineIOSocket        *self,
                                                               const char            *text,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_text_len        (EngineIOSocket        *self,
                                                               const char            *text,
                                                               gssize                 length,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_text_len_full   (EngineIOSocket        *self,
                                                               const char            *text,
                                                               gssize                 length,
                                                               EngineIOSendCallback   callback,
                                                               gpointer               user_data,
                                                               GDestroyNotify         destroy,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_binary          (EngineIOSocket        *self,
                                                               GBytes                *data,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_text_full       (EngineIOSocket        *self,
                                                               const char            *text,
                                                               EngineIOSendCallback   callback,
                                                               gpointer               user_data,
                                                               GDestroyNotify         destroy,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_binary_full     (EngineIOSocket        *self,
                                                               GBytes                *data,
                                                               EngineIOSendCallback   callback,
                                                               gpointer               user_data,
                                                               GDestroyNotify         destroy,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean                engine_io_socket_send_packet          (EngineIOSocket        *self,
                                                               EngineIOPacket        *packet,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_socket_close                (EngineIOSocket        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket         *engine_io_socket_receive              (EngineIOSocket        *self,
                                                               GCancellable          *cancellable,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket         *engine_io_socket_receive_timeout      (EngineIOSocket        *self,
                                                               guint                  timeout_ms,
                                                               GCancellable          *cancellable,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket         *engine_io_socket_try_receive          (EngineIOSocket        *self,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_socket_receive_async        (EngineIOSocket        *self,
                                                               GCancellable          *cancellable,
                                                               GAsyncReadyCallback    callback,
                                                               gpointer               user_data);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOPacket         *engine_io_socket_receive_finish       (EngineIOSocket        *self,
                                                               GAsyncResult          *result,
                                                               GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_socket_set_message_func     (EngineIOSocket        *self,
                                                               EngineIOMessageFunc    func,
                                                               gpointer               user_data,
                                                               GDestroyNotify         destroy);
ENGINE_IO_AVAILABLE_IN_ALL
guint                   engine_io_socket_get_send_queue_length (EngineIOSocket       *self);

G_END_DECLS
