/* socketio-error.h: the SOCKET_IO_ERROR domain
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>
#include <socketio/socketio-version.h>

G_BEGIN_DECLS

#define SOCKET_IO_ERROR (socket_io_error_quark ())

/**
 * SocketIOError:
 * @SOCKET_IO_ERROR_FAILED: any other failure
 * @SOCKET_IO_ERROR_PARSE: a malformed or disallowed Socket.IO packet; the
 *   message names the problem and ends with "at byte offset N" (N inside the
 *   Engine.IO message that caused it)
 * @SOCKET_IO_ERROR_INVALID: a packet built by the application breaks the
 *   protocol's rules (reserved event name, bad namespace, placeholder
 *   without attachment...)
 *
 * Error codes of the %SOCKET_IO_ERROR domain.
 */
typedef enum {
  SOCKET_IO_ERROR_FAILED,
  SOCKET_IO_ERROR_PARSE,
  SOCKET_IO_ERROR_INVALID,
} SocketIOError;

SOCKET_IO_AVAILABLE_IN_ALL
GQuark socket_io_error_quark (void);

G_END_DECLS
