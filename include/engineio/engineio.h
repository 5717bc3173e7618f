/* engineio.h: the one header applications include
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#define ENGINE_IO_INSIDE
# include <engineio/engineio-version.h>
# include <engineio/engineio-enum-types.h>
# include <engineio/engineio-error.h>
# include <engineio/engineio-packet.h>
# include <engineio/engineio-handshake.h>
# include <engineio/engineio-socket.h>
# include <engineio/engineio-metrics.h>
# include <engineio/engineio-server.h>
# include <engineio/engineio-host.h>
#undef ENGINE_IO_INSIDE
