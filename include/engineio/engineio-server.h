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
 * EngineIOAdmission:
 *
 * A handshake waiting for the application's answer, given to an
 * #EngineIOAdmissionAsyncFunc. Answer it once, from any thread, with
 * engine_io_admission_accept() or engine_io_admission_refuse(); until
 * then the handshake's HTTP request is suspended (it holds no thread).
 * An admission not answered within #EngineIOServer:admission-timeout is
 * refused by the server (HTTP 503, `{"code":4,"message":"Admission timed
 * out"}`), as are the pending ones when the server closes (`Server
 * shutting down`); a later answer is then ignored.
 *
 * Reference counted: take a reference (engine_io_admission_ref()) to
 * answer it after the hook returned.
 */
typedef struct _EngineIOAdmission EngineIOAdmission;

#define ENGINE_IO_TYPE_ADMISSION (engine_io_admission_get_type ())
ENGINE_IO_AVAILABLE_IN_ALL
GType              engine_io_admission_get_type      (void) G_GNUC_CONST;
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOAdmission *engine_io_admission_ref           (EngineIOAdmission *admission);
ENGINE_IO_AVAILABLE_IN_ALL
void               engine_io_admission_unref         (EngineIOAdmission *admission);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOHandshake *engine_io_admission_get_handshake (EngineIOAdmission *admission);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean           engine_io_admission_accept        (EngineIOAdmission *admission);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean           engine_io_admission_refuse        (EngineIOAdmission *admission,
                                                      guint              status,
                                                      int                code,
                                                      const char        *message);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOAdmission, engine_io_admission_unref)

/**
 * EngineIOAdmissionAsyncFunc:
 * @server: the server
 * @admission: (transfer none): the pending handshake; answer it, now or
 *   later from any thread, with engine_io_admission_accept() or
 *   engine_io_admission_refuse() (keep a reference with
 *   engine_io_admission_ref() to answer it after returning)
 * @user_data: the data given to engine_io_server_set_admission_async_func()
 *
 * Decides whether a handshake may open a session, with an answer of the
 * application's choosing (HTTP status, Engine.IO error code and message),
 * possibly later: a hook that asks a database starts its query and
 * returns. It runs in the main context that will run the session's
 * signals, after the #EngineIOAdmissionFunc (if any) accepted; it must not
 * block. At most #EngineIOServer:max-pending-admissions handshakes wait
 * for an answer at once.
 */
typedef void (*EngineIOAdmissionAsyncFunc) (EngineIOServer    *server,
                                            EngineIOAdmission *admission,
                                            gpointer           user_data);

/**
 * EngineIOResponseHeaders:
 *
 * The headers of a response being made, given to an #EngineIOHeadersFunc;
 * changes made after the hook returned have no effect. Not thread-safe:
 * use it in the hook.
 */
typedef struct _EngineIOResponseHeaders EngineIOResponseHeaders;

#define ENGINE_IO_TYPE_RESPONSE_HEADERS (engine_io_response_headers_get_type ())
ENGINE_IO_AVAILABLE_IN_ALL
GType                    engine_io_response_headers_get_type (void) G_GNUC_CONST;
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOResponseHeaders *engine_io_response_headers_ref      (EngineIOResponseHeaders *headers);
ENGINE_IO_AVAILABLE_IN_ALL
void                     engine_io_response_headers_unref    (EngineIOResponseHeaders *headers);
ENGINE_IO_AVAILABLE_IN_ALL
const char              *engine_io_response_headers_get      (EngineIOResponseHeaders *headers,
                                                              const char              *name);
ENGINE_IO_AVAILABLE_IN_ALL
void                     engine_io_response_headers_append   (EngineIOResponseHeaders *headers,
                                                              const char              *name,
                                                              const char              *value);
ENGINE_IO_AVAILABLE_IN_ALL
guint                    engine_io_response_headers_remove   (EngineIOResponseHeaders *headers,
                                                              const char              *name);

/**
 * EngineIOHeadersFunc:
 * @server: the server
 * @request: the request being answered (method, path, headers, query,
 *   remote address)
 * @status: the HTTP status of the response (101 for a WebSocket's)
 * @handshake: whether this response opens a session (a handshake's 200 or
 *   101): Node's `initial_headers`; every response is Node's `headers`
 * @headers: the response's headers: read, add or remove them with
 *   engine_io_response_headers_get(), _append() and _remove()
 * @user_data: the data given to engine_io_server_set_headers_func()
 *
 * Adds or changes the headers of a response (of the handshake and of every
 * other response the server gives, errors included). Headers the server
 * sets for framing, the body's coding (`Content-Encoding`) and the upgrade
 * (`Sec-WebSocket-Extensions` included: it accepts none) cannot be added,
 * changed or removed.
 * Costs a copy of the request's headers per response while set.
 *
 * Runs on the thread that answers the request: a libmicrohttpd thread or a
 * session's (not in a main context); it must be quick, must not block, and
 * may run on several threads at once.
 */
typedef void (*EngineIOHeadersFunc) (EngineIOServer          *server,
                                     EngineIOHandshake       *request,
                                     guint                    status,
                                     gboolean                 handshake,
                                     EngineIOResponseHeaders *headers,
                                     gpointer                 user_data);

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
guint           engine_io_server_broadcast_packet   (EngineIOServer        *self,
                                                     EngineIOPacket        *packet,
                                                     EngineIOSocket        *except);
ENGINE_IO_AVAILABLE_IN_ALL
guint           engine_io_server_broadcast_text     (EngineIOServer        *self,
                                                     const char            *text,
                                                     gssize                 length,
                                                     EngineIOSocket        *except,
                                                     GError               **error);
ENGINE_IO_AVAILABLE_IN_ALL
guint           engine_io_server_broadcast_binary   (EngineIOServer        *self,
                                                     GBytes                *data,
                                                     EngineIOSocket        *except);
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
void            engine_io_server_set_admission_async_func (EngineIOServer             *self,
                                                           EngineIOAdmissionAsyncFunc  func,
                                                           gpointer                    user_data,
                                                           GDestroyNotify              destroy);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_set_headers_func   (EngineIOServer        *self,
                                                     EngineIOHeadersFunc    func,
                                                     gpointer               user_data,
                                                     GDestroyNotify         destroy);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_set_id_func        (EngineIOServer        *self,
                                                     EngineIOIdFunc         func,
                                                     gpointer               user_data,
                                                     GDestroyNotify         destroy);

G_END_DECLS
