/* engineio-http-rules-private.h: the protocol core's pure HTTP rules
 *
 * Sans-I/O (GLib only): what an origin, a header, a WebSocket opening
 * handshake or a session id must look like.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

#include "engineio-request-private.h"

G_BEGIN_DECLS

gboolean engine_io_origin_is_serialized         (const char      *origin);
gboolean engine_io_request_is_websocket_upgrade (EngineIORequest *req);
gboolean engine_io_sid_is_valid                 (const char      *sid);
gboolean engine_io_header_is_clean              (const char      *value);
gboolean engine_io_header_is_reserved           (const char      *name);
gboolean engine_io_header_name_is_token         (const char      *name);

G_END_DECLS
