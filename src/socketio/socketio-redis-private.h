/* socketio-redis-private.h: what the Redis adapter and the Redis emitter
 * share (URL syntax, msgpack encoding of socket.io-parser packets)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <json-glib/json-glib.h>
#include <msgpack.h>

G_BEGIN_DECLS

/* Parses redis://HOST[:PORT][/DB]; @host is newly allocated. */
gboolean socket_io_redis_parse_url   (const char      *url,
                                      char           **host,
                                      int             *port,
                                      int             *db,
                                      GError         **error);
void     socket_io_redis_pack_string (msgpack_packer  *pk,
                                      const char      *str);
/* Packs @node, each placeholder `{_placeholder: true, num}` as the msgpack
 * bin of @attachments[num] (notepack's encoding of a Buffer). */
void     socket_io_redis_pack_json   (msgpack_packer  *pk,
                                      JsonNode        *node,
                                      GPtrArray       *attachments);
/* A copy of @node that shares nothing with it: json-glib counts the
 * references of a JsonObject, a JsonArray and a JsonValue without atomics
 * (a JsonNode's atomically), and json_node_copy() shares all three with
 * the original. A tree another thread may also reference is read only
 * through this (its owner's refcounts are not touched), and what is
 * handed to another thread shares nothing with what this one keeps. */
JsonNode *socket_io_redis_json_deep_copy (JsonNode *node);
/* Six characters of [A-Za-z0-9_-] (the reference's uid). */
char    *socket_io_redis_random_id   (void);

G_END_DECLS
