/* engineio-error.c: the ENGINE_IO_ERROR domain
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-error.h"

/**
 * engine_io_error_quark:
 *
 * The quark of the %ENGINE_IO_ERROR domain.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the error domain quark
 */
G_DEFINE_QUARK (engine-io-error-quark, engine_io_error)
