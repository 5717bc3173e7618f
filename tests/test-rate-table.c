/* test-rate-table.c: the handshake rate table (src/core/engineio-rate-table.c),
 * without sockets and with a fake clock
 *
 * A bucket per key: the burst, then one token per 1/rate seconds, with
 * Retry-After; keys independent; buckets that refilled forgotten; never
 * more than max_keys buckets, the least recently seen going first. The
 * loopback side (handshakes refused with 429 and Retry-After, the table
 * size after many addresses) is in test-limits.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <glib.h>

#include "engineio-rate-table-private.h"

#define SECOND G_USEC_PER_SEC
/* Any time but 0 (a bucket's "never used"). */
#define T0 (1000 * SECOND)

static gboolean
take (EngineIORateTable *table,
      const char        *key,
      double             rate,
      double             capacity,
      gint64             now,
      guint             *retry_after)
{
  guint dummy = G_MAXUINT;

  return engine_io_rate_table_take (table, g_strdup (key), rate, capacity, now,
                                    retry_after != NULL ? retry_after : &dummy);
}

static void
test_rate_table_burst_and_refill (void)
{
  EngineIORateTable table;
  guint retry_after = 0;

  g_test_summary ("A key gets its burst at once, then one token per 1/rate seconds; a "
                  "refusal says how many whole seconds to wait (at least 1)");

  engine_io_rate_table_init (&table, 16);

  /* rate 1/s, burst 3 */
  for (guint i = 0; i < 3; i++)
    g_assert_true (take (&table, "a", 1.0, 3.0, T0, NULL));
  g_assert_false (take (&table, "a", 1.0, 3.0, T0, &retry_after));
  g_assert_cmpuint (retry_after, ==, 1);
  g_assert_false (take (&table, "a", 1.0, 3.0, T0 + SECOND / 2, NULL));
  g_assert_true (take (&table, "a", 1.0, 3.0, T0 + SECOND, NULL));
  g_assert_false (take (&table, "a", 1.0, 3.0, T0 + SECOND, NULL));
  /* Two seconds later: two tokens, not more. */
  g_assert_true (take (&table, "a", 1.0, 3.0, T0 + 3 * SECOND, NULL));
  g_assert_true (take (&table, "a", 1.0, 3.0, T0 + 3 * SECOND, NULL));
  g_assert_false (take (&table, "a", 1.0, 3.0, T0 + 3 * SECOND, NULL));

  /* rate 0.25/s, burst 1: four seconds to wait. */
  g_assert_true (take (&table, "slow", 0.25, 1.0, T0, NULL));
  g_assert_false (take (&table, "slow", 0.25, 1.0, T0, &retry_after));
  g_assert_cmpuint (retry_after, ==, 4);
  g_assert_false (take (&table, "slow", 0.25, 1.0, T0 + 3 * SECOND, &retry_after));
  g_assert_cmpuint (retry_after, ==, 1);
  g_assert_true (take (&table, "slow", 0.25, 1.0, T0 + 4 * SECOND, NULL));

  engine_io_rate_table_clear (&table);
}

static void
test_rate_table_keys (void)
{
  EngineIORateTable table;

  g_test_summary ("Keys have their own buckets: one key over its rate does not limit another");

  engine_io_rate_table_init (&table, 16);
  g_assert_true (take (&table, "a", 1.0, 1.0, T0, NULL));
  g_assert_false (take (&table, "a", 1.0, 1.0, T0, NULL));
  g_assert_true (take (&table, "b", 1.0, 1.0, T0, NULL));
  g_assert_false (take (&table, "b", 1.0, 1.0, T0, NULL));
  g_assert_true (take (&table, "", 1.0, 1.0, T0, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 3);
  engine_io_rate_table_clear (&table);
}

static void
test_rate_table_forgets_full (void)
{
  EngineIORateTable table;

  g_test_summary ("Buckets that refilled are forgotten at the next take (a full bucket is the "
                  "same as none); buckets still refilling are kept");

  engine_io_rate_table_init (&table, 16);
  g_assert_true (take (&table, "a", 1.0, 2.0, T0, NULL));
  g_assert_true (take (&table, "b", 1.0, 2.0, T0 + SECOND / 2, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 2);

  /* At T0 + 1 s "a" is full again, "b" is not: "a" goes, "c" comes. */
  g_assert_true (take (&table, "c", 1.0, 2.0, T0 + SECOND, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 2);

  /* Much later every bucket is full: only the one just used is left. */
  g_assert_true (take (&table, "d", 1.0, 2.0, T0 + 100 * SECOND, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 1);
  engine_io_rate_table_clear (&table);
}

static void
test_rate_table_bound (void)
{
  EngineIORateTable table;
  char key[32];

  g_test_summary ("The table never holds more than max_keys buckets, however many keys come: "
                  "the least recently seen is dropped first (its key starts again full)");

  engine_io_rate_table_init (&table, 4);

  /* A very slow rate: no bucket refills during the test. */
  for (guint i = 0; i < 1000; i++)
    {
      g_snprintf (key, sizeof key, "k%u", i);
      g_assert_true (take (&table, key, 0.001, 1.0, T0 + i, NULL));
      g_assert_cmpuint (engine_io_rate_table_size (&table), <=, 4);
    }
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 4);
  engine_io_rate_table_clear (&table);

  /* At the bound every take first drops the least recently seen bucket
   * (even when the key taken has one). a, b, c; a seen again (refused)
   * becomes the most recent; d fills the table; e pushes out b, the least
   * recently seen; a is still counted (c goes), b starts again full. */
  engine_io_rate_table_init (&table, 4);
  g_assert_true (take (&table, "a", 0.001, 1.0, T0, NULL));
  g_assert_true (take (&table, "b", 0.001, 1.0, T0 + 1, NULL));
  g_assert_true (take (&table, "c", 0.001, 1.0, T0 + 2, NULL));
  g_assert_false (take (&table, "a", 0.001, 1.0, T0 + 3, NULL));
  g_assert_true (take (&table, "d", 0.001, 1.0, T0 + 4, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 4);
  g_assert_true (take (&table, "e", 0.001, 1.0, T0 + 5, NULL));
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 4);
  g_assert_false (take (&table, "a", 0.001, 1.0, T0 + 6, NULL));   /* still counted */
  g_assert_true (take (&table, "b", 0.001, 1.0, T0 + 7, NULL));    /* forgotten: full again */
  g_assert_cmpuint (engine_io_rate_table_size (&table), ==, 4);
  engine_io_rate_table_clear (&table);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/rate-table/burst-and-refill", test_rate_table_burst_and_refill);
  g_test_add_func ("/rate-table/keys", test_rate_table_keys);
  g_test_add_func ("/rate-table/forgets-full", test_rate_table_forgets_full);
  g_test_add_func ("/rate-table/bound", test_rate_table_bound);

  return g_test_run ();
}
