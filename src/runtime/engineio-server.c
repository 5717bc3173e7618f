/* engineio-server.c: the Engine.IO server: the public object, its hooks,
 * ::connection and ::connection-error, the public functions on its
 * sessions and its shutdown, and the GObject boilerplate
 *
 * The rest of the server is in the engineio-server-*.c files that
 * engineio-server-impl-private.h lists. This file is the top of the
 * object: the session table, the admission and the shutdown files call
 * none of its functions (tests/check-file-cycles.py), so the public
 * functions that check the type (ENGINE_IO_IS_SERVER()) are here, and
 * call theirs with a checked server.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-server-impl-private.h"
#include "engineio-enum-types.h"
#include "engineio-error.h"
#include "engineio-packet-private.h"

/**
 * EngineIOServer:
 *
 * An Engine.IO server: it accepts handshakes, keeps the sessions
 * (#EngineIOSocket), and speaks protocol v4 (and v3 with
 * #EngineIOServer:allow-eio3) over HTTP long-polling and WebSocket.
 *
 * Configure it with properties, connect to #EngineIOServer::connection,
 * then either engine_io_server_listen() (the server runs its own
 * libmicrohttpd daemon) or mount it in your own daemon with
 * engine_io_server_mhd_handler() from `<engineio/engineio-mhd.h>`.
 *
 * Properties may be set until the server starts (listen() or the first
 * mounted request); after that they are read-only and setting one logs a
 * warning. Every property can be read from any thread.
 *
 * Threads: libmicrohttpd's worker threads parse requests and never block
 * for a poll nor run application code (but for an #EngineIOHeadersFunc,
 * which runs on the thread that answers); every other signal and hook runs
 * in the main context of the session it concerns (see
 * #EngineIOServer:loop-threads and #EngineIOServer:callback-context), and
 * #EngineIOServer::connection-error, which concerns no session, in
 * #EngineIOServer:callback-context or the global default main context. Every function of the server and
 * of its sockets may be called from any thread and from any handler, except
 * engine_io_socket_receive() from the socket's own context. Shut down with
 * engine_io_server_close() (blocking where it may wait, starting the
 * shutdown from handlers) or engine_io_server_close_async().
 */

G_DEFINE_FINAL_TYPE (EngineIOServer, engine_io_server, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_PING_INTERVAL,
  PROP_PING_TIMEOUT,
  PROP_UPGRADE_TIMEOUT,
  PROP_MAX_PAYLOAD,
  PROP_PATH,
  PROP_TRANSPORTS,
  PROP_ALLOW_UPGRADES,
  PROP_ALLOW_EIO3,
  PROP_HTTP_COMPRESSION,
  PROP_HTTP_COMPRESSION_THRESHOLD,
  PROP_PER_MESSAGE_DEFLATE,
  PROP_PER_MESSAGE_DEFLATE_THRESHOLD,
  PROP_CORS_ORIGIN,
  PROP_CORS_CREDENTIALS,
  PROP_COOKIE,
  PROP_COOKIE_PATH,
  PROP_COOKIE_HTTP_ONLY,
  PROP_COOKIE_SAME_SITE,
  PROP_MAX_SESSIONS,
  PROP_LOOP_THREADS,
  PROP_SEND_QUEUE_HIGH_WATER,
  PROP_RECEIVE_QUEUE_HIGH_WATER,
  PROP_BACKPRESSURE_POLICY,
  PROP_CALLBACK_CONTEXT,
  PROP_METRICS_PATH,
  PROP_CONNECTION_TIMEOUT,
  PROP_HANDSHAKE_RATE,
  PROP_HANDSHAKE_BURST,
  PROP_MESSAGE_RATE,
  PROP_MESSAGE_BURST,
  PROP_MESSAGE_RATE_POLICY,
  PROP_ALLOWED_ORIGINS,
  PROP_RAISE_FD_LIMIT,
  PROP_FD_RESERVE,
  PROP_PORT,
  PROP_TRUSTED_PROXIES,
  PROP_TLS_CERTIFICATE,
  PROP_MAX_PENDING_ADMISSIONS,
  PROP_ADMISSION_TIMEOUT,
  PROP_PING_INTERVAL_GRACE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_CONNECTION,
  SIGNAL_CONNECTION_ERROR,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* ::connection-error */

/* Reports waiting for the callback context, at most; past it they are
 * dropped (a client making refused requests faster than the context runs
 * does not grow the queue). */
#define MAX_QUEUED_CONNECTION_ERRORS 128

typedef struct
{
  EngineIOHandshake *request;
  guint              status;
  int                code;
  char              *message;
} ErrorReport;

static void
error_report_free (gpointer data)
{
  ErrorReport *report = data;

  engine_io_handshake_unref (report->request);
  g_free (report->message);
  g_free (report);
}

/* One dispatch emits the reports waiting when it began, no more: those a
 * client makes meanwhile wait for the next dispatch, so a flood of refused
 * requests faster than a slow handler cannot hold the callback context in
 * this source (its other sources run in between). */
static gboolean
deliver_connection_errors_cb (gpointer data)
{
  EngineIOServer *self = data;
  guint batch;

  ENGINE_IO_LOCK (&self->errors_lock, ERRORS);
  batch = self->error_reports.length;
  ENGINE_IO_UNLOCK (&self->errors_lock);

  for (guint i = 0; i < batch; i++)
    {
      ErrorReport *report;

      ENGINE_IO_LOCK (&self->errors_lock, ERRORS);
      report = g_queue_pop_head (&self->error_reports);
      ENGINE_IO_UNLOCK (&self->errors_lock);
      if (report == NULL)
        break;
      g_signal_emit (self, signals[SIGNAL_CONNECTION_ERROR], 0,
                     report->request, report->status, report->code, report->message);
      error_report_free (report);
    }

  /* Still scheduled (error_source_pending stays set) while reports wait. */
  ENGINE_IO_LOCK (&self->errors_lock, ERRORS);
  if (self->error_reports.length > 0)
    {
      ENGINE_IO_UNLOCK (&self->errors_lock);
      return G_SOURCE_CONTINUE;
    }
  self->error_source_pending = FALSE;
  ENGINE_IO_UNLOCK (&self->errors_lock);
  return G_SOURCE_REMOVE;
}

/* The serving thread (or any), after a core entry point answered @req. */
void
engine_io_server_report_connection_error (EngineIOServer  *self,
                                          EngineIORequest *req)
{
  const char *value;
  EngineIOProtocolVersion version = ENGINE_IO_PROTOCOL_V4;
  EngineIOTransportType transport = ENGINE_IO_TRANSPORT_POLLING;
  ErrorReport *report;
  gboolean attach = FALSE;

  if (req->error_status == 0 || req->error_reported)
    return;
  req->error_reported = TRUE;
  if (!g_signal_has_handler_pending (self, signals[SIGNAL_CONNECTION_ERROR], 0, TRUE))
    return;

  value = g_hash_table_lookup (req->query, "EIO");
  if (value != NULL && !engine_io_protocol_version_from_string (value, &version))
    version = ENGINE_IO_PROTOCOL_V4;
  value = g_hash_table_lookup (req->query, "transport");
  if (value != NULL && !engine_io_transport_type_from_string (value, &transport))
    transport = ENGINE_IO_TRANSPORT_POLLING;

  ENGINE_IO_LOCK (&self->errors_lock, ERRORS);
  if (self->error_reports.length >= MAX_QUEUED_CONNECTION_ERRORS)
    {
      ENGINE_IO_UNLOCK (&self->errors_lock);
      return;
    }
  report = g_new0 (ErrorReport, 1);
  report->request = engine_io_handshake_new (req->method, req->path,
                                             engine_io_copy_string_table (req->headers),
                                             engine_io_copy_string_table (req->query),
                                             req->remote_address, version, transport);
  report->status = req->error_status;
  report->code = req->error_code;
  report->message = g_strdup (req->error_message);
  g_queue_push_tail (&self->error_reports, report);
  if (!self->error_source_pending)
    self->error_source_pending = attach = TRUE;
  ENGINE_IO_UNLOCK (&self->errors_lock);

  if (attach)
    {
      GSource *source = g_idle_source_new ();

      g_source_set_callback (source, deliver_connection_errors_cb, g_object_ref (self), g_object_unref);
      g_source_set_static_name (source, "[engineio] connection-error");
      g_source_attach (source, self->callback_context != NULL ? self->callback_context
                                                              : g_main_context_default ());
      g_source_unref (source);
    }
}

/* ::connection */

static void
emit_connection (EngineIOServer *self,
                 EngineIOSocket *socket)
{
  g_signal_emit (self, signals[SIGNAL_CONNECTION], 0, socket);
}

/* What the server gives each socket it creates (the admission file makes
 * them): the socket emits ::connection through it and, when it has
 * closed, is forgotten by the session table. */
static const EngineIOSocketOwner socket_owner = {
  .connection = emit_connection,
  .finished = engine_io_server_socket_finished,
};

/* Public API */

/**
 * engine_io_server_new:
 *
 * Creates a server with the reference server's defaults. Set properties
 * with g_object_set() (or use g_object_new() with them) before it starts.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new server
 */
EngineIOServer *
engine_io_server_new (void)
{
  return g_object_new (ENGINE_IO_TYPE_SERVER, NULL);
}

/* engine_io_server_listen()'s server side (the public function is the
 * libmicrohttpd adapter's, engineio-http-daemon.c: the server never calls
 * the adapter). Before the adapter starts its daemon: the descriptor
 * limit, the start, and "a server listens at most once". */
gboolean
engine_io_server_prepare_listen (EngineIOServer  *self,
                                 GError         **error)
{
  /* Before the server starts, which takes its descriptor budget from the
   * limit. */
  if (self->raise_fd_limit && !engine_io_server_is_started (self))
    engine_io_raise_fd_limit ();
  if (!engine_io_server_ensure_started (self, error))
    return FALSE;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (self->listener != NULL)
    {
      ENGINE_IO_UNLOCK (&self->lock);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN, "The server is already listening");
      return FALSE;
    }
  ENGINE_IO_UNLOCK (&self->lock);
  return TRUE;
}

/* After: the server owns @listener (stopped by engine_io_server_close()
 * through @listener_class) and listens on @port. */
void
engine_io_server_set_listener (EngineIOServer              *self,
                               const EngineIOListenerClass *listener_class,
                               gpointer                     listener,
                               guint                        port)
{
  ENGINE_IO_LOCK (&self->lock, SERVER);
  self->listener = listener;
  self->listener_class = listener_class;
  self->port = port;
  ENGINE_IO_UNLOCK (&self->lock);

  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PORT]);
}

/**
 * engine_io_server_get_port:
 * @self: a server
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the port the server listens on, or 0 if it does not listen
 */
guint
engine_io_server_get_port (EngineIOServer *self)
{
  guint port;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);

  ENGINE_IO_LOCK (&self->lock, SERVER);
  port = self->port;
  ENGINE_IO_UNLOCK (&self->lock);

  return port;
}

/**
 * engine_io_server_get_metrics:
 * @self: a server
 *
 * A snapshot of the server's counters; see #EngineIOMetrics. Counting is
 * always on and costs a few atomic additions per packet.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): the counters now
 */
EngineIOMetrics *
engine_io_server_get_metrics (EngineIOServer *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);

  return engine_io_metrics_new (&self->counters);
}

EngineIOCounters *
engine_io_server_get_counters (EngineIOServer *self)
{
  return &self->counters;
}

/**
 * engine_io_server_set_admission_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   decides whether a handshake may open a session, or %NULL to accept all
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or at finalization
 *
 * Installs the admission hook. It runs for every handshake, before the
 * session exists, in the main context that will run the session (a
 * session thread, or #EngineIOServer:callback-context), possibly for
 * several handshakes at once on different threads. Refused clients get
 * HTTP 403 with `{"code":4,"message":"Forbidden"}`.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_admission_func (EngineIOServer        *self,
                                     EngineIOAdmissionFunc  func,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  ENGINE_IO_LOCK (&self->lock, SERVER);
  old_data = self->admission_data;
  old_destroy = self->admission_destroy;
  self->admission_func = func;
  self->admission_data = user_data;
  self->admission_destroy = destroy;
  ENGINE_IO_UNLOCK (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_server_set_admission_async_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data): the hook, or %NULL
 *   to remove it
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs the asynchronous admission hook: it runs for every handshake
 * (after the #EngineIOAdmissionFunc of engine_io_server_set_admission_func(),
 * if one is set and accepted), in the main context that will run the
 * session's signals, and answers with engine_io_admission_accept() or
 * engine_io_admission_refuse(), then or later, from any thread. This is
 * Node's `allowRequest(req, callback)`: the refusal carries the HTTP
 * status, Engine.IO code and message the application chooses.
 *
 * Bounds: at most #EngineIOServer:max-pending-admissions handshakes wait
 * for an answer at once (more get HTTP 503 `{"code":4,"message":"Too many
 * pending admissions"}` at once, without running the hook); one not
 * answered within #EngineIOServer:admission-timeout is refused with 503
 * `Admission timed out`; engine_io_server_close() refuses those still
 * waiting with 503 `Server shutting down`.
 *
 * Thread-safe: may be called from any thread; handshakes already waiting
 * keep their admission.
 */
void
engine_io_server_set_admission_async_func (EngineIOServer             *self,
                                           EngineIOAdmissionAsyncFunc  func,
                                           gpointer                    user_data,
                                           GDestroyNotify              destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  ENGINE_IO_LOCK (&self->lock, SERVER);
  old_data = self->admission_async_data;
  old_destroy = self->admission_async_destroy;
  self->admission_async_func = func;
  self->admission_async_data = user_data;
  self->admission_async_destroy = destroy;
  ENGINE_IO_UNLOCK (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_server_set_headers_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data): the hook, or %NULL
 *   to remove it
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs the response-header hook (#EngineIOHeadersFunc): Node's
 * `initial_headers` and `headers` events. It runs on the threads that
 * answer requests, not in a main context: set it before the server
 * starts.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_headers_func (EngineIOServer      *self,
                                   EngineIOHeadersFunc  func,
                                   gpointer             user_data,
                                   GDestroyNotify       destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  ENGINE_IO_LOCK (&self->lock, SERVER);
  old_data = self->headers_data;
  old_destroy = self->headers_destroy;
  g_atomic_pointer_set (&self->headers_func, func);
  self->headers_data = user_data;
  self->headers_destroy = destroy;
  ENGINE_IO_UNLOCK (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_server_set_id_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   generates session ids, or %NULL for the default (144 random bits from
 *   getrandom(), base64url)
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or at finalization
 *
 * Installs a session id generator; see #EngineIOIdFunc for the rules.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_id_func (EngineIOServer *self,
                              EngineIOIdFunc  func,
                              gpointer        user_data,
                              GDestroyNotify  destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  ENGINE_IO_LOCK (&self->lock, SERVER);
  old_data = self->id_data;
  old_destroy = self->id_destroy;
  self->id_func = func;
  self->id_data = user_data;
  self->id_destroy = destroy;
  ENGINE_IO_UNLOCK (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/* The sessions (engineio-server-sessions.c) */

/**
 * engine_io_server_get_sockets:
 * @self: a server
 *
 * The open sessions, at the time of the call.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer container) (element-type EngineIOSocket): a new array
 *   holding a new reference to each socket; the array's free function drops
 *   them, so g_ptr_array_unref() frees everything. (Annotated `container`,
 *   not `full`: bindings would otherwise unref every element a second time.)
 */
GPtrArray *
engine_io_server_get_sockets (EngineIOServer *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);

  return engine_io_server_list_sockets (self);
}

/**
 * engine_io_server_get_socket_count:
 * @self: a server
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of open sessions
 */
guint
engine_io_server_get_socket_count (EngineIOServer *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);

  return engine_io_server_count_sockets (self);
}

/**
 * engine_io_server_lookup_socket:
 * @self: a server
 * @sid: a session id
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the open session with id @sid, or
 *   %NULL
 */
EngineIOSocket *
engine_io_server_lookup_socket (EngineIOServer *self,
                                const char     *sid)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);
  g_return_val_if_fail (sid != NULL, NULL);

  return engine_io_server_find_socket (self, sid);
}

/**
 * engine_io_server_broadcast_packet:
 * @self: a server
 * @packet: a message packet (%ENGINE_IO_PACKET_MESSAGE, text or binary)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @packet to every open socket but @except: one packet shared by
 * all (it is not copied nor validated again per socket). Concurrent
 * broadcasts reach every socket in one order (a socket may still see a
 * direct send between two of them). Sockets that are closing, or whose
 * send queue refuses the packet (#EngineIOServer:backpressure), are
 * skipped without error. Never blocks on I/O.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_packet (EngineIOServer *self,
                                   EngineIOPacket *packet,
                                   EngineIOSocket *except)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (packet != NULL, 0);
  g_return_val_if_fail (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_MESSAGE, 0);
  g_return_val_if_fail (except == NULL || ENGINE_IO_IS_SOCKET (except), 0);

  return engine_io_server_broadcast (self, packet, except);
}

/**
 * engine_io_server_broadcast_text:
 * @self: a server
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @except: (nullable): a socket not to send it to
 * @error: return location for a #GError
 *
 * Validates and copies @text once and queues it to every open socket but
 * @except; see engine_io_server_broadcast_packet(). From Python, @text is
 * a `bytes` (or use the overrides' `Server.broadcast()`).
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to (0 with @error set on
 *   failure)
 */
guint
engine_io_server_broadcast_text (EngineIOServer  *self,
                                 const char      *text,
                                 gssize           length,
                                 EngineIOSocket  *except,
                                 GError         **error)
{
  g_autoptr(EngineIOPacket) packet = NULL;
  gsize len, bad = 0;
  char *copy;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (text != NULL || length == 0, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && !engine_io_utf8_validate (text, len, &bad))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Message is not valid UTF-8 (bad byte at offset %" G_GSIZE_FORMAT ")", bad);
      return 0;
    }
  copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, text, len);
  copy[len] = '\0';
  packet = engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, copy, len);
  return engine_io_server_broadcast_packet (self, packet, except);
}

/**
 * engine_io_server_broadcast_binary:
 * @self: a server
 * @data: the binary message (shared, not copied)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @data to every open socket but @except; see
 * engine_io_server_broadcast_packet().
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_binary (EngineIOServer *self,
                                   GBytes         *data,
                                   EngineIOSocket *except)
{
  g_autoptr(EngineIOPacket) packet = NULL;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (data != NULL, 0);

  packet = engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, data);
  return engine_io_server_broadcast_packet (self, packet, except);
}

/* Shutdown (engineio-server-shutdown.c) */

/**
 * engine_io_server_close:
 * @self: a server
 *
 * Shuts the server down gracefully: stops accepting connections, closes
 * every session (reason `server shutting down`; a waiting poll is answered
 * with a close packet), waits for them to end (up to 10 seconds), stops
 * the daemon and ends every thread the server started. Idempotent.
 *
 * Where it may wait, it blocks until all of that is done, and every
 * #EngineIOSocket::close has been emitted when it returns: from any thread
 * that is not a session thread, including (with
 * #EngineIOServer:callback-context) the thread that iterates that context,
 * outside the library's own callbacks; it then iterates the context while
 * it waits. A second call while another thread closes the server waits for
 * that close too.
 *
 * A session whose context is still blocked after those 10 seconds (a
 * handler that does not return) is left to end on its own: its waiting
 * poll is answered 503 (`Server shutting down`), and so are the polls its
 * client sends after that (and its POSTs, where the session would hold
 * them: over #EngineIOServer:receive-queue-high-water), as is a handshake
 * waiting for a loop thread the blocked handler holds; the listening socket is closed and the host's
 * other connections are ended when this returns, but the session keeps its connection, its thread (a loop
 * thread of #EngineIOServer:loop-threads too, which goes on iterating
 * until its last session ends) and what the HTTP host holds for it (over
 * TLS its relay; libmicrohttpd's stopped daemons), until its handler
 * returns and it ends; "Server close: … still pending after 10 s" is
 * logged then.
 *
 * From the library's own callbacks — a signal handler of the server or of
 * a socket, a hook, a send callback, a source attached to a session's
 * context, anything on a session thread, or a nested main loop in
 * #EngineIOServer:callback-context — it cannot wait (the sessions it
 * would wait for run there): it starts the shutdown, returns at once, and
 * a thread of the server finishes it. Use engine_io_server_close_async()
 * to know when it is done.
 *
 * Thread-safe: may be called from any thread, and from any handler.
 */
void
engine_io_server_close (EngineIOServer *self)
{
  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  engine_io_server_shutdown (self);
}

/**
 * engine_io_server_close_async:
 * @self: a server
 * @cancellable: (nullable): a #GCancellable: cancelling it stops the wait
 *   (the callback gets %G_IO_ERROR_CANCELLED), not the shutdown
 * @callback: (scope async) (closure user_data): called once the server is
 *   closed
 * @user_data: data for @callback
 *
 * Starts the shutdown engine_io_server_close() describes (if it has not
 * started) and returns at once; @callback runs when it is complete: every
 * session has ended (each #EngineIOSocket::close emitted), or 10 seconds
 * passed, and the daemon and the server's threads are stopped. Get the
 * result with engine_io_server_close_finish(). Calling it after the server
 * closed completes at once.
 *
 * @callback runs in the thread-default main context of the caller, as GIO
 * callbacks do; except when called from a session thread (a signal
 * handler with the default #EngineIOServer:loop-threads, for instance),
 * whose context ends with the shutdown: then @callback runs in the global
 * default main context (g_main_context_default()), which the application
 * must iterate.
 *
 * Thread-safe: may be called from any thread, and from any handler.
 */
void
engine_io_server_close_async (EngineIOServer      *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (ENGINE_IO_IS_SERVER (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  engine_io_server_shutdown_async (self, cancellable, callback, user_data);
}

/**
 * engine_io_server_close_finish:
 * @self: a server
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes engine_io_server_close_async().
 *
 * Call from the context the callback runs in.
 *
 * Returns: %TRUE once the server is closed; %FALSE with
 *   %G_IO_ERROR_CANCELLED if the wait was cancelled
 */
gboolean
engine_io_server_close_finish (EngineIOServer  *self,
                               GAsyncResult    *result,
                               GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == engine_io_server_shutdown_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/* GObject */

static void
engine_io_server_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  if (engine_io_server_is_started (self))
    {
      g_warning ("EngineIOServer: property “%s” cannot change once the server has started",
                 pspec->name);
      return;
    }

  switch (prop_id)
    {
    case PROP_PING_INTERVAL: self->ping_interval = g_value_get_uint (value); break;
    case PROP_PING_TIMEOUT: self->ping_timeout = g_value_get_uint (value); break;
    case PROP_PING_INTERVAL_GRACE: self->ping_interval_grace = g_value_get_uint (value); break;
    case PROP_MAX_PENDING_ADMISSIONS: self->max_pending_admissions = g_value_get_uint (value); break;
    case PROP_ADMISSION_TIMEOUT: self->admission_timeout = g_value_get_uint (value); break;
    case PROP_UPGRADE_TIMEOUT: self->upgrade_timeout = g_value_get_uint (value); break;
    case PROP_MAX_PAYLOAD: self->max_payload = g_value_get_uint64 (value); break;
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      if (self->path == NULL)
        self->path = g_strdup ("/engine.io/");
      break;
    case PROP_TRANSPORTS: self->transports = g_value_get_flags (value); break;
    case PROP_ALLOW_UPGRADES: self->allow_upgrades = g_value_get_boolean (value); break;
    case PROP_ALLOW_EIO3: self->allow_eio3 = g_value_get_boolean (value); break;
    case PROP_HTTP_COMPRESSION: self->http_compression = g_value_get_boolean (value); break;
    case PROP_HTTP_COMPRESSION_THRESHOLD: self->http_compression_threshold = g_value_get_uint (value); break;
    case PROP_PER_MESSAGE_DEFLATE: self->per_message_deflate = g_value_get_boolean (value); break;
    case PROP_PER_MESSAGE_DEFLATE_THRESHOLD: self->per_message_deflate_threshold = g_value_get_uint (value); break;
    case PROP_CORS_ORIGIN:
      g_free (self->cors_origin);
      self->cors_origin = g_value_dup_string (value);
      break;
    case PROP_CORS_CREDENTIALS: self->cors_credentials = g_value_get_boolean (value); break;
    case PROP_COOKIE:
      g_free (self->cookie);
      self->cookie = g_value_dup_string (value);
      break;
    case PROP_COOKIE_PATH:
      g_free (self->cookie_path);
      self->cookie_path = g_value_dup_string (value);
      break;
    case PROP_COOKIE_HTTP_ONLY: self->cookie_http_only = g_value_get_boolean (value); break;
    case PROP_COOKIE_SAME_SITE:
      g_free (self->cookie_same_site);
      self->cookie_same_site = g_value_dup_string (value);
      break;
    case PROP_MAX_SESSIONS: self->max_sessions = g_value_get_uint (value); break;
    case PROP_LOOP_THREADS: self->loop_threads = g_value_get_uint (value); break;
    case PROP_SEND_QUEUE_HIGH_WATER: self->send_queue_high_water = g_value_get_uint64 (value); break;
    case PROP_RECEIVE_QUEUE_HIGH_WATER: self->receive_queue_high_water = g_value_get_uint64 (value); break;
    case PROP_BACKPRESSURE_POLICY: self->backpressure = g_value_get_enum (value); break;
    case PROP_CALLBACK_CONTEXT:
      g_clear_pointer (&self->callback_context, g_main_context_unref);
      self->callback_context = g_value_dup_boxed (value);
      break;
    case PROP_METRICS_PATH:
      g_free (self->metrics_path);
      self->metrics_path = g_value_dup_string (value);
      break;
    case PROP_CONNECTION_TIMEOUT: self->connection_timeout = g_value_get_uint (value); break;
    case PROP_HANDSHAKE_RATE: self->handshake_rate = g_value_get_double (value); break;
    case PROP_HANDSHAKE_BURST: self->handshake_burst = g_value_get_uint (value); break;
    case PROP_MESSAGE_RATE: self->message_rate = g_value_get_double (value); break;
    case PROP_MESSAGE_BURST: self->message_burst = g_value_get_uint (value); break;
    case PROP_MESSAGE_RATE_POLICY: self->message_policy = g_value_get_enum (value); break;
    case PROP_ALLOWED_ORIGINS:
      g_strfreev (self->allowed_origins);
      self->allowed_origins = g_value_dup_boxed (value);
      break;
    case PROP_TRUSTED_PROXIES:
      g_strfreev (self->trusted_proxies);
      self->trusted_proxies = g_value_dup_boxed (value);
      break;
    case PROP_TLS_CERTIFICATE:
      g_set_object (&self->tls_certificate, g_value_get_object (value));
      break;
    case PROP_RAISE_FD_LIMIT: self->raise_fd_limit = g_value_get_boolean (value); break;
    case PROP_FD_RESERVE: self->fd_reserve = g_value_get_uint (value); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
  g_object_notify_by_pspec (object, pspec);
}

static void
engine_io_server_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  switch (prop_id)
    {
    case PROP_PING_INTERVAL: g_value_set_uint (value, self->ping_interval); break;
    case PROP_PING_TIMEOUT: g_value_set_uint (value, self->ping_timeout); break;
    case PROP_PING_INTERVAL_GRACE: g_value_set_uint (value, self->ping_interval_grace); break;
    case PROP_MAX_PENDING_ADMISSIONS: g_value_set_uint (value, self->max_pending_admissions); break;
    case PROP_ADMISSION_TIMEOUT: g_value_set_uint (value, self->admission_timeout); break;
    case PROP_UPGRADE_TIMEOUT: g_value_set_uint (value, self->upgrade_timeout); break;
    case PROP_MAX_PAYLOAD: g_value_set_uint64 (value, self->max_payload); break;
    case PROP_PATH: g_value_set_string (value, self->path); break;
    case PROP_TRANSPORTS: g_value_set_flags (value, self->transports); break;
    case PROP_ALLOW_UPGRADES: g_value_set_boolean (value, self->allow_upgrades); break;
    case PROP_ALLOW_EIO3: g_value_set_boolean (value, self->allow_eio3); break;
    case PROP_HTTP_COMPRESSION: g_value_set_boolean (value, self->http_compression); break;
    case PROP_HTTP_COMPRESSION_THRESHOLD: g_value_set_uint (value, self->http_compression_threshold); break;
    case PROP_PER_MESSAGE_DEFLATE: g_value_set_boolean (value, self->per_message_deflate); break;
    case PROP_PER_MESSAGE_DEFLATE_THRESHOLD: g_value_set_uint (value, self->per_message_deflate_threshold); break;
    case PROP_CORS_ORIGIN: g_value_set_string (value, self->cors_origin); break;
    case PROP_CORS_CREDENTIALS: g_value_set_boolean (value, self->cors_credentials); break;
    case PROP_COOKIE: g_value_set_string (value, self->cookie); break;
    case PROP_COOKIE_PATH: g_value_set_string (value, self->cookie_path); break;
    case PROP_COOKIE_HTTP_ONLY: g_value_set_boolean (value, self->cookie_http_only); break;
    case PROP_COOKIE_SAME_SITE: g_value_set_string (value, self->cookie_same_site); break;
    case PROP_MAX_SESSIONS: g_value_set_uint (value, self->max_sessions); break;
    case PROP_LOOP_THREADS: g_value_set_uint (value, self->loop_threads); break;
    case PROP_SEND_QUEUE_HIGH_WATER: g_value_set_uint64 (value, self->send_queue_high_water); break;
    case PROP_RECEIVE_QUEUE_HIGH_WATER: g_value_set_uint64 (value, self->receive_queue_high_water); break;
    case PROP_BACKPRESSURE_POLICY: g_value_set_enum (value, self->backpressure); break;
    case PROP_CALLBACK_CONTEXT: g_value_set_boxed (value, self->callback_context); break;
    case PROP_METRICS_PATH: g_value_set_string (value, self->metrics_path); break;
    case PROP_CONNECTION_TIMEOUT: g_value_set_uint (value, self->connection_timeout); break;
    case PROP_HANDSHAKE_RATE: g_value_set_double (value, self->handshake_rate); break;
    case PROP_HANDSHAKE_BURST: g_value_set_uint (value, self->handshake_burst); break;
    case PROP_MESSAGE_RATE: g_value_set_double (value, self->message_rate); break;
    case PROP_MESSAGE_BURST: g_value_set_uint (value, self->message_burst); break;
    case PROP_MESSAGE_RATE_POLICY: g_value_set_enum (value, self->message_policy); break;
    case PROP_ALLOWED_ORIGINS: g_value_set_boxed (value, self->allowed_origins); break;
    case PROP_TRUSTED_PROXIES: g_value_set_boxed (value, self->trusted_proxies); break;
    case PROP_TLS_CERTIFICATE: g_value_set_object (value, self->tls_certificate); break;
    case PROP_RAISE_FD_LIMIT: g_value_set_boolean (value, self->raise_fd_limit); break;
    case PROP_FD_RESERVE: g_value_set_uint (value, self->fd_reserve); break;
    case PROP_PORT: g_value_set_uint (value, engine_io_server_get_port (self)); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_server_dispose (GObject *object)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  /* Sessions hold the server: if we get here none is open. But an
   * application may have let go of its server while sessions were open:
   * the last of them drops it, on its session thread or on a thread of
   * the daemon, where the close cannot wait. The close then goes on in
   * the shutdown thread, which holds the server (we are called again,
   * and finalize, once it is done); the daemon must not outlive the
   * server. */
  if (self->config != NULL && !self->closed)
    {
      gboolean stranded;

      engine_io_server_close (self);
      /* Not closed, and no shutdown thread holds the server: it could not
       * be started (the process is out of threads) on a thread that may
       * not wait for the daemon. Freeing the server under its running
       * daemon would be a use after free: it is kept instead (leaked,
       * still serving), and whoever holds it may close it later. */
      ENGINE_IO_LOCK (&self->lock, SERVER);
      stranded = !self->closed && !self->finishing;
      ENGINE_IO_UNLOCK (&self->lock);
      if (stranded)
        {
          g_warning ("A dropped server could not be shut down here (no shutdown thread): "
                     "it is kept running, not freed");
          g_object_ref (self);
          return;
        }
    }

  G_OBJECT_CLASS (engine_io_server_parent_class)->dispose (object);
}

static void
engine_io_server_finalize (GObject *object)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  engine_io_server_set_admission_func (self, NULL, NULL, NULL);
  engine_io_server_set_admission_async_func (self, NULL, NULL, NULL);
  engine_io_server_set_headers_func (self, NULL, NULL, NULL);
  engine_io_server_set_id_func (self, NULL, NULL, NULL);
  g_hash_table_unref (self->admissions);  /* empty: each holds the server */
  g_assert (g_queue_is_empty (&self->handshake_jobs));  /* each job holds the server */
  g_queue_clear_full (&self->error_reports, error_report_free);
  g_mutex_clear (&self->errors_lock);
  g_clear_pointer (&self->pool, engine_io_loop_pool_free);
  g_clear_pointer (&self->config, engine_io_config_unref);
  g_hash_table_unref (self->sockets);
  g_ptr_array_unref (self->close_tasks);  /* empty: each task holds the server */
  g_clear_pointer (&self->callback_context, g_main_context_unref);
  g_free (self->path);
  g_free (self->cors_origin);
  g_free (self->cookie);
  g_free (self->cookie_path);
  g_free (self->cookie_same_site);
  g_free (self->metrics_path);
  g_strfreev (self->allowed_origins);
  g_strfreev (self->trusted_proxies);
  g_clear_object (&self->tls_certificate);
  engine_io_rate_table_clear (&self->rate_table);
  g_mutex_clear (&self->rate_lock);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->broadcast_lock);
  g_cond_clear (&self->cond);

  G_OBJECT_CLASS (engine_io_server_parent_class)->finalize (object);
}

static void
engine_io_server_class_init (EngineIOServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->set_property = engine_io_server_set_property;
  object_class->get_property = engine_io_server_get_property;
  object_class->dispose = engine_io_server_dispose;
  object_class->finalize = engine_io_server_finalize;

  /**
   * EngineIOServer:ping-interval:
   *
   * Milliseconds between heartbeats (reference `pingInterval`). v4: the
   * server pings this long after the last pong; v3: the client pings this
   * often.
   */
  properties[PROP_PING_INTERVAL] =
    g_param_spec_uint ("ping-interval", NULL, NULL, 1, G_MAXINT / 2, 25000, rw);

  /**
   * EngineIOServer:ping-timeout:
   *
   * Milliseconds to wait for the heartbeat's answer before closing the
   * session with `ping timeout` (reference `pingTimeout`).
   */
  properties[PROP_PING_TIMEOUT] =
    g_param_spec_uint ("ping-timeout", NULL, NULL, 1, G_MAXINT / 2, 20000, rw);

  /**
   * EngineIOServer:upgrade-timeout:
   *
   * Milliseconds a WebSocket upgrade may take from the probe to the
   * upgrade packet before the probe is closed (reference `upgradeTimeout`).
   */
  properties[PROP_UPGRADE_TIMEOUT] =
    g_param_spec_uint ("upgrade-timeout", NULL, NULL, 1, G_MAXINT / 2, 10000, rw);

  /**
   * EngineIOServer:max-payload:
   *
   * The largest POST body (bytes, whole payload) or WebSocket message
   * accepted (reference `maxHttpBufferSize`). Exactly this many bytes are
   * accepted; more gets HTTP 413 or WebSocket close code 1009.
   */
  properties[PROP_MAX_PAYLOAD] =
    g_param_spec_uint64 ("max-payload", NULL, NULL, 1, G_MAXUINT32, 1000000, rw);

  /**
   * EngineIOServer:path:
   *
   * The request path the engine answers (`/engine.io/`; with or without
   * the trailing slash on the wire).
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, "/engine.io/", rw);

  /**
   * EngineIOServer:transports:
   *
   * The transports clients may use.
   */
  properties[PROP_TRANSPORTS] =
    g_param_spec_flags ("transports", NULL, NULL, ENGINE_IO_TYPE_TRANSPORTS,
                        ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET, rw);

  /**
   * EngineIOServer:allow-upgrades:
   *
   * Whether polling sessions may upgrade to WebSocket.
   */
  properties[PROP_ALLOW_UPGRADES] =
    g_param_spec_boolean ("allow-upgrades", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:allow-eio3:
   *
   * Whether protocol v3 clients (`EIO=3`, engine.io-client 3.x) are
   * accepted. Off by default, as in the reference; refused clients get
   * code 5 `Unsupported protocol version`.
   */
  properties[PROP_ALLOW_EIO3] =
    g_param_spec_boolean ("allow-eio3", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:http-compression:
   *
   * Whether polling responses of at least
   * #EngineIOServer:http-compression-threshold bytes are compressed
   * (`Content-Encoding: gzip` or `deflate`) for clients that accept it
   * (`Accept-Encoding`, as browsers and python-engineio send). On by
   * default, like the reference's `httpCompression`. Compression runs on
   * the thread that answers the poll, at zlib level 1; each such thread
   * keeps one zlib stream per coding (about 256 KiB each, reused), no
   * session holds any. WebSocket messages are compressed only by
   * #EngineIOServer:per-message-deflate.
   *
   * Since: 0.1
   */
  properties[PROP_HTTP_COMPRESSION] =
    g_param_spec_boolean ("http-compression", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:http-compression-threshold:
   *
   * The smallest polling response body, in bytes, that
   * #EngineIOServer:http-compression compresses (default 1024, as in the
   * reference): smaller bodies gain little for the CPU they cost.
   *
   * Since: 0.1
   */
  properties[PROP_HTTP_COMPRESSION_THRESHOLD] =
    g_param_spec_uint ("http-compression-threshold", NULL, NULL, 0, G_MAXUINT, 1024, rw);

  /**
   * EngineIOServer:per-message-deflate:
   *
   * Whether the WebSocket transport accepts a client's `permessage-deflate`
   * offer (RFC 7692; browsers always offer it, and so does npm
   * engine.io-client in Node unless its `perMessageDeflate` option is
   * false). Off by default, like the
   * reference's `perMessageDeflate: false`.
   *
   * The first offer whose parameters are valid is accepted, answered with
   * `permessage-deflate; server_no_context_takeover;
   * client_no_context_takeover`: every message is compressed on its own,
   * so no session holds a zlib stream (a small process-wide pool lends one
   * per message). An offer with an unknown, repeated or invalid parameter,
   * or asking for `server_max_window_bits` below 15, is declined
   * (RFC 7692, 5.1 and 7.1.2.1), and the connection goes on uncompressed
   * if no other offer fits.
   *
   * Received compressed messages are inflated with their output bounded
   * by #EngineIOServer:max-payload: a message that inflates past it is
   * refused with close code 1009 as soon as it does, whatever its
   * compressed size; data that is not valid deflate closes with 1007, as
   * does a text message whose inflated bytes are not UTF-8. Data messages
   * of at least #EngineIOServer:per-message-deflate-threshold bytes are
   * sent compressed (zlib level 1), on the session's thread.
   *
   * Read when the server starts listening.
   *
   * Since: 0.1
   */
  properties[PROP_PER_MESSAGE_DEFLATE] =
    g_param_spec_boolean ("per-message-deflate", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:per-message-deflate-threshold:
   *
   * The smallest WebSocket data message, in bytes (the Engine.IO packet
   * type included), that #EngineIOServer:per-message-deflate sends
   * compressed (default 1024, as in the reference); smaller ones go
   * uncompressed. Received messages are inflated whatever their size.
   *
   * Since: 0.1
   */
  properties[PROP_PER_MESSAGE_DEFLATE_THRESHOLD] =
    g_param_spec_uint ("per-message-deflate-threshold", NULL, NULL, 0, G_MAXUINT, 1024, rw);

  /**
   * EngineIOServer:cors-origin:
   *
   * Origins allowed to make cross-origin requests: %NULL (default) sends
   * no CORS headers, `*` allows any origin, otherwise a comma-separated
   * list of exact origins (`https://a.example, https://b.example`). Applied
   * to every response, errors and OPTIONS preflights included.
   */
  properties[PROP_CORS_ORIGIN] =
    g_param_spec_string ("cors-origin", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:cors-credentials:
   *
   * Whether to send `Access-Control-Allow-Credentials: true` to allowed
   * origins. Cannot be combined with a `*` origin: listen() fails.
   */
  properties[PROP_CORS_CREDENTIALS] =
    g_param_spec_boolean ("cors-credentials", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:cookie:
   *
   * The name of a cookie holding the session id, set on the handshake
   * response (what sticky load balancers key on); %NULL (default) sets
   * none. The reference's usual name is `io`.
   */
  properties[PROP_COOKIE] =
    g_param_spec_string ("cookie", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:cookie-path:
   *
   * The cookie's `Path`, or %NULL for none.
   */
  properties[PROP_COOKIE_PATH] =
    g_param_spec_string ("cookie-path", NULL, NULL, "/", rw);

  /**
   * EngineIOServer:cookie-http-only:
   *
   * Whether the cookie is `HttpOnly`.
   */
  properties[PROP_COOKIE_HTTP_ONLY] =
    g_param_spec_boolean ("cookie-http-only", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:cookie-same-site:
   *
   * The cookie's `SameSite` (`Lax`, `Strict`, `None`), or %NULL for none.
   */
  properties[PROP_COOKIE_SAME_SITE] =
    g_param_spec_string ("cookie-same-site", NULL, NULL, "Lax", rw);

  /**
   * EngineIOServer:max-sessions:
   *
   * The most sessions open at once; 0 (default) for no limit other than
   * the descriptor budget (see #EngineIOServer:fd-reserve). Handshakes
   * over it get HTTP 503 with `{"code":4,"message":"Too many sessions"}`.
   */
  properties[PROP_MAX_SESSIONS] =
    g_param_spec_uint ("max-sessions", NULL, NULL, 0, G_MAXUINT, 0, rw);

  /**
   * EngineIOServer:loop-threads:
   *
   * Which threads run the sessions' main contexts: 0 (default) starts one
   * thread per session; N > 0 spreads sessions over N shared threads (the
   * way to hold very many sessions: a thread per session is bounded by the
   * system's thread limit). Ignored with #EngineIOServer:callback-context.
   *
   * A session thread's memory: about 34 KB of resident memory per idle
   * WebSocket session on GLib 2.74, of which about 15 KB is GSlice's
   * per-thread caches (GLib before 2.76). Setting `G_SLICE=always-malloc`
   * in the process's environment (GLib reads it at start; 2.76 and later
   * always use malloc) brings it to about 19 KB; N shared threads take
   * about 5 KB per session.
   */
  properties[PROP_LOOP_THREADS] =
    g_param_spec_uint ("loop-threads", NULL, NULL, 0, 1024, 0, rw);

  /**
   * EngineIOServer:send-queue-high-water:
   *
   * The memory, in bytes, a session may hold in packets waiting to be sent
   * (0 for no limit). Counted in real bytes: each queued packet counts its
   * data as allocated plus a fixed overhead for the packet, its #GBytes and
   * the queue's bookkeeping (about 150 bytes on 64-bit glibc; an empty
   * message costs that much, not 1 byte), and every packet type counts
   * (messages, v3 pongs, pings, noops). Packets that client input is still
   * to produce count as well: a session stops reading its client (a
   * WebSocket is not read, a POST is held unanswered) while what it holds
   * for sending and what it has read but not handled reaches this mark, and
   * reads again once that is under half of it. A send (or a v3 pong) that
   * would go over the mark is dealt with by
   * #EngineIOServer:backpressure-policy.
   */
  properties[PROP_SEND_QUEUE_HIGH_WATER] =
    g_param_spec_uint64 ("send-queue-high-water", NULL, NULL, 0, G_MAXUINT64, 8 * 1024 * 1024, rw);

  /**
   * EngineIOServer:receive-queue-high-water:
   *
   * The memory, in bytes, a session may hold in messages waiting for
   * engine_io_socket_receive() (messages no #EngineIOSocket::message handler
   * took); 0 for no limit. Counted in real bytes like
   * #EngineIOServer:send-queue-high-water (a queued message costs its data
   * as allocated plus about 100 bytes). When the queue and the messages read
   * but not yet handled reach the mark the session stops reading its client
   * (back-pressure: a WebSocket is not read, a POST is held unanswered) until
   * engine_io_socket_receive() has taken it under half of the mark. Should
   * the queue still grow to twice the mark, the session is closed
   * (%ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR, "receive queue over its
   * limit").
   */
  properties[PROP_RECEIVE_QUEUE_HIGH_WATER] =
    g_param_spec_uint64 ("receive-queue-high-water", NULL, NULL, 0, G_MAXUINT64, 8 * 1024 * 1024, rw);

  /**
   * EngineIOServer:backpressure-policy:
   *
   * What a send does past #EngineIOServer:send-queue-high-water; the
   * default closes the session, so a client that stops reading cannot make
   * the server buffer without bound.
   */
  properties[PROP_BACKPRESSURE_POLICY] =
    g_param_spec_enum ("backpressure-policy", NULL, NULL, ENGINE_IO_TYPE_BACKPRESSURE_POLICY,
                       ENGINE_IO_BACKPRESSURE_CLOSE, rw);

  /**
   * EngineIOServer:callback-context:
   *
   * A #GMainContext that runs every session instead of session threads:
   * all signals, hooks and send callbacks are delivered there, in order
   * per session, and the application must iterate it (for example with a
   * #GMainLoop on the default context). This is the mode for Python and
   * GTK applications that want their handlers on their main thread.
   * %NULL (default): sessions run on threads of their own.
   *
   * Handlers may call any thread-safe function, engine_io_server_close()
   * included (from a handler it starts the shutdown and returns; see
   * there). engine_io_socket_receive() must not be called from this
   * context.
   */
  properties[PROP_CALLBACK_CONTEXT] =
    g_param_spec_boxed ("callback-context", NULL, NULL, G_TYPE_MAIN_CONTEXT, rw);

  /**
   * EngineIOServer:metrics-path:
   *
   * A path (e.g. `/metrics`) where GET returns the server's counters in the
   * Prometheus text format (engine_io_metrics_to_prometheus()); %NULL
   * (default) serves none. Not protected: bind the server to an address
   * only your scraper reaches, or mount it and route the path yourself.
   * It must differ from #EngineIOServer:path (with or without its trailing
   * slash): engine_io_server_listen() fails with
   * %ENGINE_IO_ERROR_INVALID_ARGUMENT otherwise.
   */
  properties[PROP_METRICS_PATH] =
    g_param_spec_string ("metrics-path", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:ping-interval-grace:
   *
   * Milliseconds the server adds to a client's heartbeat deadline before
   * it declares the session dead (python-engineio's `ping_interval`
   * grace period): a v4 client's pong is awaited
   * #EngineIOServer:ping-timeout + this after each ping, a v3 session
   * expires ping-interval + ping-timeout + this after the client's last
   * packet. Clients are not told (the handshake advertises ping-interval
   * and ping-timeout): it absorbs their timers' slack and slow networks.
   * Default 0.
   */
  properties[PROP_PING_INTERVAL_GRACE] =
    g_param_spec_uint ("ping-interval-grace", NULL, NULL, 0, 3600000, 0, rw);

  /**
   * EngineIOServer:max-pending-admissions:
   *
   * How many handshakes may wait for an #EngineIOAdmissionAsyncFunc's
   * answer at once (each holds a suspended request, a timer and a copy
   * of its headers). Past it a handshake is refused at once with HTTP 503
   * `{"code":4,"message":"Too many pending admissions"}`, without running
   * the hook. Default 64. Unused without an asynchronous hook.
   */
  properties[PROP_MAX_PENDING_ADMISSIONS] =
    g_param_spec_uint ("max-pending-admissions", NULL, NULL, 1, 65536, 64, rw);

  /**
   * EngineIOServer:admission-timeout:
   *
   * Milliseconds an #EngineIOAdmissionAsyncFunc has to answer; then the
   * handshake is refused with HTTP 503 `{"code":4,"message":"Admission
   * timed out"}` and a later answer is ignored. Default 10000.
   */
  properties[PROP_ADMISSION_TIMEOUT] =
    g_param_spec_uint ("admission-timeout", NULL, NULL, 1, 600000, 10000, rw);

  /**
   * EngineIOServer:connection-timeout:
   *
   * The defence against clients that open connections and send their
   * requests slowly or never (slowloris). Default 30. It bounds:
   *
   * - idleness: a connection that receives and sends nothing for this
   *   long is closed (this also closes idle keep-alive connections);
   * - a request head, which must be complete this long after the
   *   connection opened (or after the previous response on it);
   * - a POST body, which must be complete this long after its head;
   * - the write of a closed session's last poll response: the session
   *   ends this long after its close's linger at most (a client that
   *   reads a little, often enough, is not idle), what was not written
   *   reported not delivered.
   *
   * A client that sends a byte now and then is closed all the same.
   *
   * A long poll waiting for packets is not idle: libmicrohttpd does not
   * time out suspended connections (the heartbeat answers every poll
   * within #EngineIOServer:ping-interval anyway), nor upgraded ones
   * (WebSockets are watched by the heartbeat). 0 is not allowed: without
   * a timeout a client holds a connection (and a descriptor) for ever.
   *
   * Applies to the daemon engine_io_server_listen() starts; a mounted
   * server (engine_io_server_mhd_handler()) uses its daemon's
   * `MHD_OPTION_CONNECTION_TIMEOUT`.
   */
  properties[PROP_CONNECTION_TIMEOUT] =
    g_param_spec_uint ("connection-timeout", NULL, NULL, 1, 86400, 30, rw);

  /**
   * EngineIOServer:handshake-rate:
   *
   * Handshakes per second a client address may make (a token bucket of
   * #EngineIOServer:handshake-burst tokens refilled at this rate); 0
   * (default) for no limit. Fractions are allowed (0.1: one every ten
   * seconds). The address is the TCP peer's: IPv4 addresses each, IPv6
   * addresses by /64 network; behind a reverse proxy every client shares
   * the proxy's address (forwarding headers are not trusted).
   *
   * Each handshake (a polling GET or a direct WebSocket without sid)
   * takes a token, whatever becomes of it after. Without one it gets HTTP
   * 429 with `Retry-After` and `{"code":4,"message":"Too many handshakes
   * from this address"}`, and no session is created. Requests with a sid
   * are not counted. The server remembers at most 16384 addresses at a
   * time: a bucket that has refilled is forgotten, and past that number
   * the least recently seen go first.
   *
   * Threads: checked on libmicrohttpd's threads, under a lock of its own,
   * before any application hook runs.
   */
  properties[PROP_HANDSHAKE_RATE] =
    g_param_spec_double ("handshake-rate", NULL, NULL, 0, 1e6, 0, rw);

  /**
   * EngineIOServer:handshake-burst:
   *
   * How many handshakes an address may make at once before
   * #EngineIOServer:handshake-rate paces it (the bucket's size); 0
   * (default) for one second's worth (the rate rounded up, at least 1).
   */
  properties[PROP_HANDSHAKE_BURST] =
    g_param_spec_uint ("handshake-burst", NULL, NULL, 0, 1000000, 0, rw);

  /**
   * EngineIOServer:message-rate:
   *
   * Messages per second each session may receive from its client (a
   * token bucket of #EngineIOServer:message-burst tokens refilled at this
   * rate); 0 (default) for no limit. Counts message packets (`4`) and
   * pings (`2`: a v3 client's ping costs a pong, so a ping flood counts as
   * a message flood) over both transports and protocol versions, when
   * they arrive (a polling POST's packets as they are read from its body);
   * pongs, noops and the other control packets are not counted. Past the
   * rate, #EngineIOServer:message-rate-policy decides: close the session
   * or drop the packet.
   *
   * Threads: polling POSTs are counted on libmicrohttpd's threads, and
   * WebSocket messages in the session's main context, both under the
   * session's lock; the application's handlers never see a refused
   * message.
   */
  properties[PROP_MESSAGE_RATE] =
    g_param_spec_double ("message-rate", NULL, NULL, 0, 1e9, 0, rw);

  /**
   * EngineIOServer:message-burst:
   *
   * How many messages a client may send at once before
   * #EngineIOServer:message-rate paces it (the bucket's size); 0
   * (default) for one second's worth (the rate rounded up, at least 1).
   */
  properties[PROP_MESSAGE_BURST] =
    g_param_spec_uint ("message-burst", NULL, NULL, 0, G_MAXUINT, 0, rw);

  /**
   * EngineIOServer:message-rate-policy:
   *
   * What happens to a message past #EngineIOServer:message-rate: the
   * default closes the session (reason `rate limit exceeded`, WebSocket
   * close code 1008; messages of the client not yet delivered are not
   * delivered); %ENGINE_IO_RATE_LIMIT_DROP drops the message (no
   * ::message, no ::packet) and counts it in
   * engine_io_metrics_get_messages_dropped().
   */
  properties[PROP_MESSAGE_RATE_POLICY] =
    g_param_spec_enum ("message-rate-policy", NULL, NULL, ENGINE_IO_TYPE_RATE_LIMIT_POLICY,
                       ENGINE_IO_RATE_LIMIT_CLOSE, rw);

  /**
   * EngineIOServer:allowed-origins:
   *
   * The origins browsers may connect from, as they send them in the
   * `Origin` header (`https://app.example`, `http://localhost:8080`;
   * compared exactly: lowercase, no path, no trailing slash, no default
   * port); %NULL (default) allows every origin. An empty list allows
   * only requests without an `Origin`.
   *
   * Every request to #EngineIOServer:path but a CORS preflight is checked:
   * handshakes (polling and direct WebSocket), polls, POSTs and WebSocket
   * upgrades of existing sessions. A request whose `Origin` is not in the
   * list gets HTTP 403 with `{"code":4,"message":"Origin not allowed"}`,
   * and no session is created. A request without `Origin` is allowed:
   * non-browser clients send none, and browsers send one on every
   * WebSocket and cross-origin request, which is what the list guards
   * against. Preflights (`OPTIONS`) are answered as #EngineIOServer:cors-origin
   * says; the request that follows is refused. This is not
   * #EngineIOServer:cors-origin, which only decides the CORS headers
   * (WebSockets are not subject to CORS at all).
   *
   * listen() fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT for an entry
   * that no browser would send (uppercase letters, a path, a default
   * port).
   *
   * Bindings that turn a %NULL string array into an empty list (Python)
   * read both "unset" and "empty" as an empty list; set %NULL (`None`)
   * to allow every origin.
   */
  properties[PROP_ALLOWED_ORIGINS] =
    g_param_spec_boxed ("allowed-origins", NULL, NULL, G_TYPE_STRV, rw);

  /**
   * EngineIOServer:raise-fd-limit:
   *
   * Whether engine_io_server_listen() raises the process's soft
   * `RLIMIT_NOFILE` (descriptors) to its hard limit, as servers commonly
   * do: the soft limit is often 1024, a few hundred sessions. Default
   * %TRUE. Set %FALSE if the process relies on the lower limit (select()
   * handles only descriptors below `FD_SETSIZE`, 1024) or sets it itself.
   * A mounted server (engine_io_server_mhd_handler()) never changes the
   * limit.
   */
  properties[PROP_RAISE_FD_LIMIT] =
    g_param_spec_boolean ("raise-fd-limit", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:fd-reserve:
   *
   * Descriptors the server leaves to the application; 0 (default) for
   * the automatic reserve: 1/16 of the limit, at least 64 and at most
   * 4096.
   *
   * When the server starts, it takes as its descriptor budget the soft
   * `RLIMIT_NOFILE` (raised first, see #EngineIOServer:raise-fd-limit)
   * less the descriptors open then, less this reserve. Every descriptor
   * the server makes counts against the budget: each session's main
   * context with a thread per session (an eventfd), the loop threads'
   * contexts, WebSockets, the connections of the daemon
   * engine_io_server_listen() started and that daemon's own descriptors
   * (engine_io_metrics_get_descriptors()).
   *
   * Sessions may reserve all of the budget but an eighth (at least 16),
   * which is kept for connections that answer refusals, for a session's
   * second connection (a POST while a poll waits) and for upgrades: each
   * session reserves its connection or WebSocket, and its main context
   * with a thread per session (2 descriptors then, 1 otherwise). Past
   * that, or when the descriptors held leave less than half of that
   * eighth, handshakes get HTTP 503 with `{"code":4,"message":"Too many
   * sessions (descriptor limit)"}` and `Connection: close`
   * (engine_io_metrics_get_handshakes_refused()); existing sessions keep
   * working. When the server holds its whole budget, new connections are
   * closed as soon as they are accepted
   * (engine_io_metrics_get_connections_refused()), so libmicrohttpd never
   * runs out of descriptors. With a limit of 1024: about 400 sessions with
   * a thread per session, 800 otherwise.
   *
   * A mounted server counts only its own descriptors (contexts, not its
   * daemon's connections): give that daemon a
   * `MHD_OPTION_CONNECTION_LIMIT` that leaves room for them.
   */
  properties[PROP_FD_RESERVE] =
    g_param_spec_uint ("fd-reserve", NULL, NULL, 0, G_MAXINT, 0, rw);

  /**
   * EngineIOServer:trusted-proxies:
   *
   * The reverse proxies (numeric IPv4 or IPv6 addresses, or networks as
   * `address/prefix-length`: `10.0.0.0/8`, `::1`, `fd00::/8`) whose
   * `X-Forwarded-For` (or, without one, `Forwarded: for=`) header names
   * the client; empty or %NULL (default): none, every client is the TCP
   * peer.
   *
   * When a request's TCP peer is in the list, its client address is the
   * right-most address of the header that is not itself in the list
   * (the header is read from right to left, each trusted proxy having
   * appended the address it saw; when every address is trusted, the
   * left-most one). Several headers of the same name count as one list.
   * That address is what engine_io_socket_get_remote_address(),
   * engine_io_handshake_get_remote_address() (the admission hook) and
   * #EngineIOServer:handshake-rate see. A header that is missing, empty,
   * has more than 32 entries to walk or an entry that is not a numeric
   * address (`unknown`, an obfuscated identifier, garbage) leaves the
   * TCP peer as the client address. Ports (`192.0.2.1:4711`,
   * `"[2001:db8::1]:4711"`) are ignored; IPv4-mapped IPv6 addresses count
   * as their IPv4 address, in the header, as the TCP peer and in the list
   * (`::ffff:10.0.0.1` is `10.0.0.1`, `::ffff:10.0.0.0/104` is `10.0.0.0/8`).
   *
   * List only proxies that set or append to `X-Forwarded-For` (nginx:
   * `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`):
   * anyone who can reach the server directly from a listed address can
   * claim any client address. A proxy that sets only `Forwarded` must
   * remove a client's `X-Forwarded-For`, which is read first.
   *
   * listen() fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT naming the first
   * entry that is neither an address nor a network. Set it before the
   * server starts, from any thread (the server keeps a copy); it applies to
   * a mounted server (engine_io_server_mhd_handler()) too.
   */
  properties[PROP_TRUSTED_PROXIES] =
    g_param_spec_boxed ("trusted-proxies", NULL, NULL, G_TYPE_STRV, rw);

  /**
   * EngineIOServer:tls-certificate:
   *
   * The certificate, with its private key, that engine_io_server_listen()
   * serves HTTPS and WSS with (libmicrohttpd with GnuTLS); %NULL (default)
   * for plain HTTP. Load it with g_tls_certificate_new_from_files() or
   * g_tls_certificate_new_from_pem() (which need a GIO TLS backend,
   * glib-networking): its #GTlsCertificate:certificate-pem, its issuers'
   * (the chain sent to clients) and its #GTlsCertificate:private-key-pem
   * are handed to libmicrohttpd when the server listens; it speaks TLS 1.2
   * and 1.3 only (GnuTLS `NORMAL` otherwise). listen() fails
   * with %ENGINE_IO_ERROR_INVALID_ARGUMENT for a certificate without a
   * private key in PEM (a PKCS #11 one), and with %ENGINE_IO_ERROR_LISTEN
   * when libmicrohttpd was built without TLS.
   *
   * Over TLS, libmicrohttpd relays every WebSocket through a socketpair:
   * each counts three descriptors instead of one in the descriptor budget
   * (#EngineIOServer:fd-reserve), until libmicrohttpd closes the connection:
   * once the WebSocket has ended, at most #EngineIOServer:connection-timeout
   * later when the client does not take what the relay still holds. libmicrohttpd before 1.0 (0.9.75 in
   * Debian 12) relays through an 8-byte buffer, so a WebSocket over TLS
   * moves only some tens of KiB/s (polling is not affected): for bulk
   * traffic terminate TLS in a reverse proxy (see the Deployment page). A mounted server
   * (engine_io_server_mhd_handler()) does not use this property: TLS is
   * its daemon's. Set it before the server starts, from any thread.
   */
  properties[PROP_TLS_CERTIFICATE] =
    g_param_spec_object ("tls-certificate", NULL, NULL, G_TYPE_TLS_CERTIFICATE, rw);

  /**
   * EngineIOServer:port:
   *
   * The port engine_io_server_listen() bound, 0 when not listening.
   */
  properties[PROP_PORT] =
    g_param_spec_uint ("port", NULL, NULL, 0, 65535, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * EngineIOServer::connection:
   * @server: the server
   * @socket: the new session
   *
   * Emitted when a handshake has been accepted, in the new socket's main
   * context (its session thread, or #EngineIOServer:callback-context),
   * before any other signal of the socket. Sessions on different threads
   * emit it concurrently. Messages sent from the handler travel with the
   * handshake response.
   */
  signals[SIGNAL_CONNECTION] =
    g_signal_new ("connection", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_SOCKET);

  /**
   * EngineIOServer::connection-error:
   * @server: the server
   * @request: the refused request: its method, path, headers, query and
   *   remote address (its protocol version and transport are those of
   *   the query when valid, else 4 and polling)
   * @status: the HTTP status answered (400, 403, 404, 429, 503, ...)
   * @code: the Engine.IO error code of the JSON body (0 unknown transport,
   *   1 unknown session id, 2 bad handshake method, 3 bad request,
   *   4 forbidden, 5 unsupported protocol version, or the code an
   *   #EngineIOAdmissionAsyncFunc chose)
   * @message: the message of the JSON body
   *
   * Emitted for each request answered with an Engine.IO error (a JSON
   * body `{"code":…,"message":…}`): unknown transport or session id, a bad
   * handshake method or request, an origin not allowed, a refused or
   * timed-out admission, a handshake over a rate or session limit, a
   * server shutting down. Node's `connection_error` event.
   *
   * Emitted in #EngineIOServer:callback-context, or in the global default
   * main context (g_main_context_default()) when that property is unset,
   * some time after the response was given. Reports wait there in a
   * queue of at most 128: when clients are refused faster than that
   * context runs, the reports past it are dropped (the responses are
   * not). Only made while a handler is connected; reports waiting hold a
   * reference on the server, so connect it only if that context runs.
   */
  signals[SIGNAL_CONNECTION_ERROR] =
    g_signal_new ("connection-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4, ENGINE_IO_TYPE_HANDSHAKE,
                  G_TYPE_UINT, G_TYPE_INT, G_TYPE_STRING);
}

static void
engine_io_server_init (EngineIOServer *self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->broadcast_lock);
  g_cond_init (&self->cond);
  self->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->admissions = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) engine_io_admission_unref, NULL);
  g_mutex_init (&self->errors_lock);
  self->max_pending_admissions = 64;
  self->admission_timeout = 10000;
  self->close_tasks = g_ptr_array_new ();
  self->socket_owner = &socket_owner;
  self->ping_interval = 25000;
  self->ping_timeout = 20000;
  self->upgrade_timeout = 10000;
  self->max_payload = 1000000;
  self->path = g_strdup ("/engine.io/");
  self->transports = ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET;
  self->allow_upgrades = TRUE;
  self->http_compression = TRUE;
  self->http_compression_threshold = 1024;
  self->per_message_deflate = FALSE;
  self->per_message_deflate_threshold = 1024;
  self->cookie_path = g_strdup ("/");
  self->cookie_http_only = TRUE;
  self->cookie_same_site = g_strdup ("Lax");
  self->send_queue_high_water = 8 * 1024 * 1024;
  self->receive_queue_high_water = 8 * 1024 * 1024;
  self->backpressure = ENGINE_IO_BACKPRESSURE_CLOSE;
  self->connection_timeout = 30;
  self->message_policy = ENGINE_IO_RATE_LIMIT_CLOSE;
  self->raise_fd_limit = TRUE;
  g_mutex_init (&self->rate_lock);
  engine_io_rate_table_init (&self->rate_table, RATE_MAX_ADDRESSES);
}
