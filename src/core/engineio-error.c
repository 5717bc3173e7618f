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
GQuark
engine_io_error_quark (void)
{
  /* Not G_DEFINE_QUARK: its unsynchronized lazy cache is a data race when
   * the first calls come from two threads at once. */
  static gsize quark = 0;

  if (g_once_init_enter (&quark))
    g_once_init_leave (&quark, g_quark_from_static_string ("engine-io-error-quark"));
  return (GQuark) quark;
}
