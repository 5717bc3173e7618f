/* engineio-error.h: the ENGINE_IO_ERROR domain
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <glib.h>
#include <engineio/engineio-version.h>

G_BEGIN_DECLS

/**
 * ENGINE_IO_ERROR:
 *
 * The error domain of engineio-glib. Errors in this domain come from the
 * #EngineIOError enumeration.
 */
#define ENGINE_IO_ERROR (engine_io_error_quark ())

/**
 * EngineIOError:
 * @ENGINE_IO_ERROR_FAILED: a failure not covered by another code
 * @ENGINE_IO_ERROR_PARSE: malformed packet or payload; the message names the
 *   problem and its byte offset
 * @ENGINE_IO_ERROR_PAYLOAD_TOO_LARGE: a payload exceeded the configured
 *   maximum
 * @ENGINE_IO_ERROR_CLOSED: the socket or server is closed
 * @ENGINE_IO_ERROR_UNKNOWN_SID: no session has this id
 * @ENGINE_IO_ERROR_INVALID_ARGUMENT: an argument or configuration value is
 *   not acceptable (for example text that is not UTF-8)
 * @ENGINE_IO_ERROR_LISTEN: the server could not listen on the requested
 *   address and port
 * @ENGINE_IO_ERROR_CANCELLED: the operation was cancelled
 * @ENGINE_IO_ERROR_QUEUE_FULL: the socket's send queue is over its high-water
 *   mark and the back-pressure policy refused the packet
 * @ENGINE_IO_ERROR_TIMED_OUT: nothing came in the time given
 *
 * Error codes in the %ENGINE_IO_ERROR domain. New members may be added.
 */
typedef enum
{
  ENGINE_IO_ERROR_FAILED,
  ENGINE_IO_ERROR_PARSE,
  ENGINE_IO_ERROR_PAYLOAD_TOO_LARGE,
  ENGINE_IO_ERROR_CLOSED,
  ENGINE_IO_ERROR_UNKNOWN_SID,
  ENGINE_IO_ERROR_INVALID_ARGUMENT,
  ENGINE_IO_ERROR_LISTEN,
  ENGINE_IO_ERROR_CANCELLED,
  ENGINE_IO_ERROR_QUEUE_FULL,
  ENGINE_IO_ERROR_TIMED_OUT,
} EngineIOError;

ENGINE_IO_AVAILABLE_IN_ALL
GQuark engine_io_error_quark (void);

G_END_DECLS
