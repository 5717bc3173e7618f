/* engineio-soup-private.h: what the libsoup host shows the tests
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The WebSocket relays (TLS) of every attached SoupServer in the process
 * that have not been freed yet: each holds its SoupServer's context until
 * its last callback has run there. Any thread. */
guint engine_io_soup_live_relays (void);

G_END_DECLS
