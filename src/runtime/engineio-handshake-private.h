/* engineio-handshake-private.h: building EngineIOHandshake (internal)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-handshake.h"

G_BEGIN_DECLS

/* Takes ownership of @headers (lowercase names) and @query; both map
 * char* to char*, must not be modified afterwards. Strings must be UTF-8. */
EngineIOHandshake *engine_io_handshake_new (const char              *method,
                                            const char              *path,
                                            GHashTable              *headers,
                                            GHashTable              *query,
                                            const char              *remote_address,
                                            EngineIOProtocolVersion  version,
                                            EngineIOTransportType    transport);

G_END_DECLS
