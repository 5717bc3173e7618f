/* engineio-handshake.h: the HTTP request that opened a session
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <glib-object.h>
#include <engineio/engineio-version.h>
#include <engineio/engineio-packet.h>

G_BEGIN_DECLS

typedef struct _EngineIOHandshake EngineIOHandshake;

#define ENGINE_IO_TYPE_HANDSHAKE (engine_io_handshake_get_type ())

ENGINE_IO_AVAILABLE_IN_ALL
GType                   engine_io_handshake_get_type             (void) G_GNUC_CONST;
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOHandshake      *engine_io_handshake_ref                  (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
void                    engine_io_handshake_unref                (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_handshake_get_method           (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_handshake_get_path             (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_handshake_get_header           (EngineIOHandshake *handshake,
                                                                  const char        *name);
ENGINE_IO_AVAILABLE_IN_ALL
GHashTable             *engine_io_handshake_get_headers          (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_handshake_get_query_param      (EngineIOHandshake *handshake,
                                                                  const char        *name);
ENGINE_IO_AVAILABLE_IN_ALL
GHashTable             *engine_io_handshake_get_query            (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
const char             *engine_io_handshake_get_remote_address   (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOProtocolVersion engine_io_handshake_get_protocol_version (EngineIOHandshake *handshake);
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOTransportType   engine_io_handshake_get_transport        (EngineIOHandshake *handshake);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOHandshake, engine_io_handshake_unref)

G_END_DECLS
