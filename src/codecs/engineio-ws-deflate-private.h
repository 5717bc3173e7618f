/* engineio-ws-deflate-private.h: permessage-deflate (RFC 7692)
 *
 * Negotiation: the server accepts an offer only as
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
 * so every message is compressed and decompressed on its own. zlib
 * streams are therefore not held per connection: a small process-wide
 * pool (guarded by a mutex, streams reset per message) lends one for the
 * time of one message, so an idle connection holds no zlib state.
 *
 * Threads: all of it may be called from any thread.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The answer to an accepted offer (the Sec-WebSocket-Extensions value). */
#define ENGINE_IO_WS_DEFLATE_RESPONSE \
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* Whether a Sec-WebSocket-Extensions value (nullable) holds a
 * permessage-deflate offer we accept: the first one whose parameters are
 * all known, each at most once, with valid values, and that does not ask
 * for server_max_window_bits below 15 (we compress with a 15-bit window
 * only). Bounded: at most 16 offers and 16 parameters per offer are looked
 * at; no allocation. */
gboolean engine_io_ws_deflate_negotiate (const char *extensions);

/* Compresses @prefix (if >= 0) then @data as one message: raw deflate,
 * a sync flush, the trailing 00 00 ff ff removed (RFC 7692, 7.2.1).
 * Returns the compressed bytes (g_free() them) and their length in
 * @out_len, or NULL if zlib failed (send the message uncompressed). */
guint8  *engine_io_ws_deflate_message  (gint          prefix,
                                        const guint8 *data,
                                        gsize         len,
                                        gsize        *out_len);

/* Decompresses one message (00 00 ff ff appended, RFC 7692, 7.2.2), its
 * output bounded by @max_out: past it, stops at once and returns 1009.
 * Returns 0 with the bytes in @out (g_free() them; never NULL) and
 * @out_len, 1007 for data that is not valid deflate, 1011 if zlib could
 * not get memory. */
guint16  engine_io_ws_inflate_message  (const guint8 *data,
                                        gsize         len,
                                        guint64       max_out,
                                        guint8      **out,
                                        gsize        *out_len);

/* zlib streams idle in the pool (for tests and measurements). */
guint    engine_io_ws_deflate_pooled   (void);

G_END_DECLS
