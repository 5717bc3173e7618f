/* soup-asan.h: included once by the programs that run a libsoup 3 SoupServer
 * (test-soup, test-ws-conformance, engineio-echo).
 *
 * libsoup 3.2.3 leaks a GSocket per accepted connection and a local
 * GSocketAddress per listener (.ci/lsan.supp suppresses them by the GIO
 * frames that allocate them). Debian's GLib has no frame pointers, so
 * ASan's default fast unwinder stops at g_malloc() and no suppression can
 * match: these programs unwind fully on malloc. Only in ASan builds.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ENGINE_IO_SOUP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ENGINE_IO_SOUP_ASAN 1
#endif

#ifdef ENGINE_IO_SOUP_ASAN
const char *__asan_default_options (void);
const char *
__asan_default_options (void)
{
  return "fast_unwind_on_malloc=0";
}
#endif
