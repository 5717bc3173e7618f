/* engineio-rate-table.c: token buckets per key, bounded in number (see
 * engineio-rate-table-private.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-rate-table-private.h"

typedef struct
{
  GList                link;    /* in lru; data: this entry */
  char                *key;
  EngineIOTokenBucket  bucket;
} RateEntry;

static void
rate_entry_free (gpointer data)
{
  RateEntry *entry = data;

  g_free (entry->key);
  g_free (entry);
}

void
engine_io_rate_table_init (EngineIORateTable *table,
                           guint              max_keys)
{
  g_return_if_fail (max_keys > 0);

  table->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, rate_entry_free);
  g_queue_init (&table->lru);
  table->max_keys = max_keys;
}

void
engine_io_rate_table_clear (EngineIORateTable *table)
{
  /* The queue's links live inside the entries, which the table frees
   * (g_queue_clear() would free the links themselves). */
  g_queue_init (&table->lru);
  g_clear_pointer (&table->entries, g_hash_table_unref);
}

gboolean
engine_io_rate_table_take (EngineIORateTable *table,
                           char              *key_in,
                           double             rate,
                           double             capacity,
                           gint64             now,
                           guint             *retry_after)
{
  g_autofree char *key = key_in;
  RateEntry *entry;
  gboolean ok;

  while (table->lru.head != NULL)
    {
      RateEntry *oldest = table->lru.head->data;

      if (table->lru.length < table->max_keys &&
          !engine_io_token_bucket_is_full (&oldest->bucket, rate,
                                           capacity, now))
        break;
      g_queue_unlink (&table->lru, &oldest->link);
      g_hash_table_remove (table->entries, oldest->key);  /* frees it */
    }

  entry = g_hash_table_lookup (table->entries, key);
  if (entry == NULL)
    {
      entry = g_new0 (RateEntry, 1);
      entry->key = g_steal_pointer (&key);
      entry->link.data = entry;
      g_hash_table_insert (table->entries, entry->key, entry);
    }
  else
    g_queue_unlink (&table->lru, &entry->link);
  g_queue_push_tail_link (&table->lru, &entry->link);

  ok = engine_io_token_bucket_take (&entry->bucket, rate, capacity, now);
  if (!ok)
    *retry_after = engine_io_token_bucket_retry_after (&entry->bucket, rate);

  return ok;
}

guint
engine_io_rate_table_size (EngineIORateTable *table)
{
  return g_hash_table_size (table->entries);
}
