/* engineio-soup-private.h: what the libsoup host shows the tests
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The WebSocket relays (TLS) of every attached SoupServer in the process
 * that have not been freed yet: each holds its SoupServer's context until
 * its last callback has run there. Any thread. */
guint    engine_io_soup_live_relays (void);

/* engineio-soup-relay.c: the connection of an upgraded request, as a
 * socket that is the session's (the serving thread, in the SoupServer's
 * context). */
GSocket *engine_io_soup_relay_start (GMainContext *context,
                                     guint         timeout_s,
                                     GIOStream    *stream,
                                     GSocket      *gsocket);
GSocket *engine_io_soup_take_socket (GIOStream    *stream,
                                     GSocket      *gsocket);

G_END_DECLS
