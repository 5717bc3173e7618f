/* socketio-error-private.h: the SOCKET_IO_ERROR domain
 *
 * Private until the public Socket.IO library exists; it then moves to
 * include/socketio/socketio-error.h (with glib-mkenums), unchanged.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

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

GQuark socket_io_error_quark (void);

G_END_DECLS
