/* engineio-http-compress-private.h: HTTP compression of polling responses
 *
 * Content negotiation (RFC 9110, 12.5.3) of `Accept-Encoding` between the
 * two codings the reference server offers (gzip, deflate), and one-shot
 * compression of a response body. No sockets, no main context, no clock:
 * each thread that compresses keeps one zlib stream per coding, reset
 * between bodies and freed when the thread ends, so no session holds zlib
 * state.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  ENGINE_IO_CODING_IDENTITY,
  ENGINE_IO_CODING_GZIP,
  ENGINE_IO_CODING_DEFLATE,   /* the zlib format (RFC 9110, 8.4.1.2) */
} EngineIOCoding;

EngineIOCoding  engine_io_coding_negotiate (const char     *accept_encoding);
const char     *engine_io_coding_to_string (EngineIOCoding  coding);
GBytes         *engine_io_coding_compress  (EngineIOCoding  coding,
                                            GBytes         *body);

G_END_DECLS
