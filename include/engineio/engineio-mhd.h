/* engineio-mhd.h: mounting the engine in an application's own libmicrohttpd daemon
 *
 * Not part of <engineio/engineio.h> nor of the GIR: include it explicitly
 * from C code that owns a libmicrohttpd daemon.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <microhttpd.h>
#include <engineio/engineio.h>

G_BEGIN_DECLS

ENGINE_IO_AVAILABLE_IN_ALL
enum MHD_Result engine_io_server_mhd_handler   (EngineIOServer                   *server,
                                                struct MHD_Connection            *connection,
                                                const char                       *url,
                                                const char                       *method,
                                                const char                       *version,
                                                const char                       *upload_data,
                                                size_t                           *upload_data_size,
                                                void                            **req_cls);
ENGINE_IO_AVAILABLE_IN_ALL
void            engine_io_server_mhd_completed (EngineIOServer                   *server,
                                                struct MHD_Connection            *connection,
                                                void                            **req_cls,
                                                enum MHD_RequestTerminationCode   toe);

G_END_DECLS
