/* engineio-rate-table-private.h: token buckets per key, bounded in number
 *
 * The table behind the handshake rate limit (engineio-server-handshake.c
 * keys it by client address, IPv6 by /64 network). Buckets that refilled are
 * forgotten (a full bucket is the same as none); past @max_keys the least
 * recently seen go first, so the table never holds more than @max_keys
 * buckets whatever the keys a client makes up.
 *
 * Sans-I/O (GLib only): the time is an argument. Not thread-safe: its
 * owner serializes the calls (the server's rate lock).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

#include "engineio-limits-private.h"

G_BEGIN_DECLS

typedef struct
{
  GHashTable *entries;   /* key -> RateEntry (owned) */
  GQueue      lru;       /* RateEntry, least recently used first */
  guint       max_keys;
} EngineIORateTable;

/* engine_io_rate_table_init:
 * @table: the table to set up
 * @max_keys: the most buckets it holds (at least 1)
 */
void     engine_io_rate_table_init  (EngineIORateTable *table,
                                     guint              max_keys);

/* engine_io_rate_table_clear:
 * @table: a table set up with engine_io_rate_table_init()
 *
 * Frees the buckets.
 */
void     engine_io_rate_table_clear (EngineIORateTable *table);

/* engine_io_rate_table_take:
 * @table: a table
 * @key: (transfer full): the bucket's key (a g_malloc()ed string)
 * @rate: tokens per second
 * @capacity: the most tokens a bucket holds (engine_io_token_bucket_capacity())
 * @now_us: the monotonic time, in microseconds
 * @retry_after: (out): on refusal, seconds until the bucket has a token
 *
 * Forgets the buckets that refilled (and the least recently seen past
 * @max_keys), then takes a token from @key's bucket (a new, full one if
 * it has none), which becomes the most recently seen.
 *
 * Returns: %TRUE if a token was taken, %FALSE if @key is over its rate
 */
gboolean engine_io_rate_table_take  (EngineIORateTable *table,
                                     char              *key,
                                     double             rate,
                                     double             capacity,
                                     gint64             now_us,
                                     guint             *retry_after);

/* engine_io_rate_table_size:
 * @table: a table
 *
 * Returns: the number of buckets it holds
 */
guint    engine_io_rate_table_size  (EngineIORateTable *table);

G_END_DECLS
