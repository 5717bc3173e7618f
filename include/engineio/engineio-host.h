/* engineio-host.h: hosting the engine in any web server
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <gio/gio.h>
#include <engineio/engineio-version.h>
#include <engineio/engineio-server.h>

G_BEGIN_DECLS

#define ENGINE_IO_TYPE_HOST_REQUEST (engine_io_host_request_get_type ())
ENGINE_IO_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (EngineIOHostRequest, engine_io_host_request, ENGINE_IO, HOST_REQUEST, GObject)

/**
 * EngineIOHostRequestClass:
 * @parent_class: the parent class
 * @respond: give the response: write @status, the @headers (a %NULL-terminated
 *   array of name, value, name, value, ...) and @body. Called on the serving
 *   thread, inside a call of the host into the engine, at most once per request.
 * @suspend: hold the response: the engine answers later (a long poll, a
 *   handshake waiting for its admission). Called on the serving thread, inside
 *   a call of the host into the engine.
 * @resume: the held request may go on: the host calls
 *   engine_io_host_request_resumed() on its serving thread soon. Called from any
 *   thread, never with a lock of the engine held, once per @suspend; it must
 *   not block (set a flag, wake the serving thread).
 * @upgrade: answer `101 Switching Protocols` with @headers (a
 *   %NULL-terminated array of name, value, ...) and, once the connection is
 *   switched, call engine_io_host_request_attach_connection(). Called on the
 *   serving thread, inside a call of the host into the engine. Return %FALSE
 *   if the connection cannot be taken over (the engine then answers 400). A
 *   class that does not override it (the default returns %FALSE) has no
 *   WebSocket: handshakes do not offer the upgrade, and WebSocket requests
 *   are refused (400), so clients stay on HTTP long-polling.
 *
 * The virtual functions a host implements. See engine_io_server_handle_host_request().
 */
struct _EngineIOHostRequestClass
{
  GObjectClass parent_class;

  /*< public >*/
  void     (*respond) (EngineIOHostRequest *self,
                       guint                status,
                       const char * const  *headers,
                       GBytes              *body);
  void     (*suspend) (EngineIOHostRequest *self);
  void     (*resume)  (EngineIOHostRequest *self);
  gboolean (*upgrade) (EngineIOHostRequest *self,
                       const char * const  *headers);

  /*< private >*/
  gpointer padding[12];
};

ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_host_request_get_method         (EngineIOHostRequest *self);
ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_host_request_get_path           (EngineIOHostRequest *self);
ENGINE_IO_AVAILABLE_IN_ALL
const char *engine_io_host_request_get_remote_address (EngineIOHostRequest *self);

ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_add_query          (EngineIOHostRequest *self,
                                                       const char          *name,
                                                       const char          *value);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_add_query_string   (EngineIOHostRequest *self,
                                                       const char          *query);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_add_header         (EngineIOHostRequest *self,
                                                       const char          *name,
                                                       const char          *value);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_set_content_length (EngineIOHostRequest *self,
                                                       gint64               length);

ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_server_start                    (EngineIOServer      *server,
                                                       GError             **error);
ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_server_handle_host_request      (EngineIOServer      *server,
                                                       EngineIOHostRequest *request);

ENGINE_IO_AVAILABLE_IN_ALL
gboolean    engine_io_host_request_add_body           (EngineIOHostRequest *self,
                                                       const guint8        *data,
                                                       gsize                length);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_end_body           (EngineIOHostRequest *self);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_resumed            (EngineIOHostRequest *self);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_client_gone        (EngineIOHostRequest *self);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_attach_connection  (EngineIOHostRequest *self,
                                                       GSocket             *socket,
                                                       GBytes              *extra);
ENGINE_IO_AVAILABLE_IN_ALL
void        engine_io_host_request_finished           (EngineIOHostRequest *self,
                                                       gboolean             completed);

G_END_DECLS
