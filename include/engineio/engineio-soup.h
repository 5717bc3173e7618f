/* engineio-soup.h: hosting the engine in a libsoup 3 SoupServer
 *
 * Not part of <engineio/engineio.h>: include it explicitly from code that
 * owns a SoupServer (pkg-config module engineio-soup-1.0, which requires
 * libsoup-3.0). Present only when the library was built with libsoup
 * (the `soup` build option).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <libsoup/soup.h>
#include <engineio/engineio.h>

G_BEGIN_DECLS

ENGINE_IO_AVAILABLE_IN_ALL
gboolean engine_io_server_attach_soup (EngineIOServer  *server,
                                       SoupServer      *soup_server,
                                       const char      *path,
                                       GError         **error);
ENGINE_IO_AVAILABLE_IN_ALL
void     engine_io_server_detach_soup (EngineIOServer  *server,
                                       SoupServer      *soup_server);

G_END_DECLS
