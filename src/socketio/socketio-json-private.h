/* socketio-json-private.h: JSON as socket.io-parser reads and writes it
 *
 * A reader that checks the text as JSON.parse() would, within bounds of
 * depth and (estimated) memory, then lets json-glib's JsonParser build the
 * tree; and a small writer (json-glib 1.6's JsonGenerator writes invalid
 * JSON for some doubles: socketio-json.c says which code is ours and
 * why). Both know Socket.IO's binary placeholders,
 * {"_placeholder":true,"num":N}.
 *
 * Sans-I/O: GLib and json-glib only.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Estimated heap cost of decoded values (JsonNode, JsonArray with its
 * GPtrArray, JsonObject with its GHashTable and GQueue, malloc headers);
 * what the max_tree_bytes bound counts. Measured with mallinfo2() on
 * json-glib 1.6 / GLib 2.74 (G_SLICE=always-malloc, glibc): 100,000 empty
 * arrays, empty objects, ints, 2-byte strings and 3-member objects come
 * within 10 % of the real heap (strings also count their bytes); trees
 * built by JsonParser too (re-measured: estimate/heap 0.98 to 1.07).
 * The validator charges them before JsonParser runs. Not charged: the
 * text's copy when it holds integers beyond 2^53 and JsonParser's
 * transient buffers, both at most about the text's size, which the
 * Engine.IO message bound limits. */
#define SOCKET_IO_JSON_VALUE_COST   88
#define SOCKET_IO_JSON_STRING_COST  32
#define SOCKET_IO_JSON_ARRAY_COST   128
#define SOCKET_IO_JSON_ELEMENT_COST 8
#define SOCKET_IO_JSON_OBJECT_COST  320
#define SOCKET_IO_JSON_MEMBER_COST  112

/* The deepest tree the codec handles: the largest max_depth a decoder may
 * be given, and the bound on trees applications build. JsonParser and the
 * writer recurse (JsonParser takes about 100-200 bytes of stack a level:
 * 80,000 levels overflow 8 MiB), so this keeps both within ~200 KiB. */
#define SOCKET_IO_JSON_MAX_DEPTH 1000

typedef struct {
  guint   max_depth;          /* nesting levels (the top-level value is 1),
                               * at most SOCKET_IO_JSON_MAX_DEPTH */
  gsize   max_tree_bytes;     /* estimated bytes of the tree built */
  guint   n_attachments;      /* > 0: objects with "_placeholder": true are
                               * placeholders, checked against this count */
} SocketIOJsonLimits;

JsonNode *socket_io_json_parse          (const char               *text,
                                         gsize                     length,
                                         gsize                     base_offset,
                                         const SocketIOJsonLimits *limits,
                                         GError                  **error);

gboolean  socket_io_json_is_placeholder (JsonNode                 *node,
                                         gint64                   *num);

void      socket_io_json_write          (GString                  *out,
                                         JsonNode                 *node,
                                         GPtrArray                *attachments,
                                         GPtrArray                *out_attachments);
void      socket_io_json_write_string   (GString                  *out,
                                         const char               *str);
void      socket_io_json_write_double   (GString                  *out,
                                         double                    value);

G_END_DECLS
