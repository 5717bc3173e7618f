/* socketio-error-private.h: the SOCKET_IO_ERROR domain
 *
 * The domain is public now (include/socketio/socketio-error.h); the codec
 * keeps including this name.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <socketio/socketio-error.h>
