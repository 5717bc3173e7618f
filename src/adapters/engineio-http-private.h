/* engineio-http-private.h: the libmicrohttpd adapter, as the server drives it
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-server.h"

G_BEGIN_DECLS

typedef struct _EngineIOHttpDaemon EngineIOHttpDaemon;

EngineIOHttpDaemon *engine_io_http_daemon_start    (EngineIOServer     *server,
                                                    const char         *address,
                                                    guint               port,
                                                    GError            **error);
guint               engine_io_http_daemon_get_port (EngineIOHttpDaemon *daemon);
/* Whether this is a thread of a daemon we started (not from which to stop
 * one). */
gboolean            engine_io_http_in_daemon_thread (void);
/* Only once no connection is suspended. Frees @daemon. */
void                engine_io_http_daemon_stop     (EngineIOHttpDaemon *daemon);

G_END_DECLS
