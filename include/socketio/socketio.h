/* socketio.h: the one header applications include
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#define SOCKET_IO_INSIDE
# include <socketio/socketio-version.h>
# include <socketio/socketio-error.h>
# include <socketio/socketio-server.h>
#undef SOCKET_IO_INSIDE
