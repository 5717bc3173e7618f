/* engineio-server.h: the Engine.IO server
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <gio/gio.h>
#include <engineio/engineio-version.h>
#include <engineio/engineio-handshake.h>
#include <engineio/engineio-socket.h>
#include <engineio/engineio-metrics.h>

G_BEGIN_DECLS

/**
 * EngineIOTransports:
 * @ENGINE_IO_TRANSPORTS_NONE: no transport
 * @ENGINE_IO_TRANSPORTS_POLLING: HTTP long-polling
 * @ENGINE_IO_TRANSPORTS_WEBSOCKET: WebSocket
 *
 * A set of transports, for #EngineIOServer:transports.
 */
typedef enum /*< flags >*/
{
  ENGINE_IO_TRANSPORTS_NONE = 0,
  ENGINE_IO_TRANSPORTS_POLLING = 1 << 0,
  ENGINE_IO_TRANSPORTS_WEBSOCKET = 1 << 1,
} EngineIOTransports;

/**
 * EngineIOBackpressurePolicy:
 * @ENGINE_IO_BACKPRESSURE_KEEP_QUEUING: queue past the high-water mark;
 *   memory grows with a slow reader (what the application sends; the
 *   session still stops reading its client at the mark)
 * @ENGINE_IO_BACKPRESSURE_DROP_NEWEST: refuse packets sent past the mark
 *   (the send fails with %ENGINE_IO_ERROR_QUEUE_FULL; a v3 pong past it is
 *   not sent)
 * @ENGINE_IO_BACKPRESSURE_CLOSE: close the session (reason `transport error`)
 *   when a send (or a v3 pong) would pass the mark
 *
 * What a send does when a socket's outgoing queue is over
 * #EngineIOServer:send-queue-high-water (counted in real bytes: see
 * there).
 */
typedef enum
{
  ENGINE_IO_BACKPRESSURE_KEEP_QUEUING,
  ENGINE_IO_BACKPRESSURE_DROP_NEWEST,
  ENGINE_IO_BACKPRESSURE_CLOSE,
} EngineIOBackpressurePolicy;

/**
 * EngineIORateLimitPolicy:
 * @ENGINE_IO_RATE_LIMIT_CLOSE: close the session (reason
 *   `rate limit exceeded`; over WebSocket with close code 1008)
 * @ENGINE_IO_RATE_LIMIT_DROP: drop the message, deliver the next ones
 *   that are within the rate, and count it
 *   (engine_io_metrics_get_messages_dropped())
 *
 * What happens to a message a client sends past
 * #EngineIOServer:message-rate.
 */
typedef enum
{
  ENGINE_IO_RATE_LIMIT_CLOSE,
  ENGINE_IO_RATE_LIMIT_DROP,
} EngineIORateLimitPolicy;

#define ENGINE_IO_TYPE_SERVER (engine_io_server_get_type ())
ENGINE_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (EngineIOServer, engine_io_server, ENGINE_IO, SERVER, GObject)

/**
 * EngineIOAdmissionFunc:
 * @server: the server
 * @handshake: the handshake request (headers, query, remote address)
 * @user_data: the data given to engine_io_server_set_admission_func()
 *
 * Decides whether a handshake may open a session. It runs before the
 * session exists, in the main context that will run the session's signals.
 *
 * Returns: %TRUE to accept, %FALSE to refuse (HTTP 403, code 4 `Forbidden`)
 */
typedef gboolean (*EngineIOAdmissionFunc) (EngineIOServer    *server,
                                           EngineIOHandshake *handshake,
                                           gpointer           user_data);

/**
 * EngineIOIdFunc:
 * @server: the server
 * @handshake: the handshake request
 * @user_data: the data given to engine_io_server_set_id_func()
 *
 * Generates the id of a new session. The id must be 1 to 128 URL-safe
 * characters (`A-Z a-z 0-9 - _ .`) and unique among open sessions; a
 * handshake whose generated id is not is refused with HTTP 500. Runs where
 * #EngineIOAdmissionFunc runs, after it accepted.
 *
 * Returns: (transfer full): the new id
 */
typedef char *(*EngineIOIdFunc) (EngineIOServer    *server,
                                 EngineIOHandshake *handshake,
                                 gpointer           user_data);

ENGINE_IO_AVAILABLE_IN_ALL
EngineIOServer *engine_io_server_new                (void);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean        engine_io_server_listen             (EngineIOServer        *self,
                                                     const char            *address,
                                                     guint                  port,
                                                     GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
guint           engine_io_server_get_port           (EngineIOServer        *self);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_close              (EngineIOServer        *self);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_close_async        (EngineIOServer        *self,
                                                     GCancellable          *cancellable,
                                                     GAsyncReadyCallback    callback,
                                                     gpointer               user_data);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean        engine_io_server_close_finish       (EngineIOServer        *self,
                                                     GAsyncResult          *result,
                                                     GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
GPtrArray      *engine_io_server_get_sockets        (EngineIOServer        *self);
ENGINE_IO_AVAILABLE_IN_ALL
guint           engine_io_server_get_socket_count   (EngineIOServer        *self);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOSocket *engine_io_server_lookup_socket      (EngineIOServer        *self,
                                                     const char            *sid);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOMetrics *engine_io_server_get_metrics       (EngineIOServer        *self);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_set_admission_func (EngineIOServer        *self,
                                                     EngineIOAdmissionFunc  func,
                                                     gpointer               user_data,
                                                     GDestroyNotify         destroy);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_set_id_func        (EngineIOServer        *self,
                                                     EngineIOIdFunc         func,
                                                     gpointer               user_data,
                                                     GDestroyNotify         destroy);

G_END_DECLS
