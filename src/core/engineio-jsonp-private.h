/* engineio-jsonp-private.h: the body of a v3 JSONP POST and the script of a
 * JSONP poll response
 *
 * Sans-I/O (GLib only): bytes in, the long-polling payload they carry out.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* engine_io_jsonp_decode_post:
 * @body: the body of a JSONP POST (`j=N` in the query of a v3 session)
 * @error: return location for an %ENGINE_IO_ERROR_PARSE error (no `d`
 *   field) or a #GUriError (a form g_uri_parse_params() rejects)
 *
 * JSONP posts are form-encoded (`d=<payload>`, `application/x-www-form-urlencoded`)
 * and engine.io-client 3.x escapes newlines in the payload: a newline
 * travels as `\n` and a literal `\n` as `\\n`. Returns the payload with
 * both undone, to be read as an %ENGINE_IO_PAYLOAD_V3_TEXT payload. The
 * body is read up to its first NUL byte, if any.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the payload, or %NULL on error
 */
GBytes *engine_io_jsonp_decode_post (GBytes  *body,
                                     GError **error);

/* engine_io_jsonp_wrap:
 * @index: the `j` of the query (its digits are kept, nothing else)
 * @payload: a v3 text payload
 *
 * A poll response for a JSONP client: `___eio[N]("<payload as a JS
 * string>");`.
 *
 * Returns: (transfer full): the script
 */
GBytes *engine_io_jsonp_wrap (const char *index,
                              GBytes     *payload);

G_END_DECLS
