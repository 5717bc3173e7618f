/* engineio-limits-private.h: the token bucket behind the rate limits
 *
 * A bucket holds up to @burst tokens and gains @rate tokens per second;
 * each event takes one, and an event that finds less than one token is
 * over the limit. Not thread-safe: its owner serializes the calls (the
 * server's rate lock for handshakes, the session lock for messages).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  double  tokens;
  gint64  last_us;   /* monotonic time of the last refill; 0: never used (full) */
} EngineIOTokenBucket;

/* The bucket's capacity: @burst, or one second's worth (at least one
 * token) when @burst is 0. */
static inline double
engine_io_token_bucket_capacity (double rate,
                                 guint  burst)
{
  double whole;

  if (burst > 0)
    return burst;
  whole = (double) (guint64) rate;   /* rate >= 0: floor */
  return MAX (1.0, whole < rate ? whole + 1 : whole);
}

static inline void
engine_io_token_bucket_refill (EngineIOTokenBucket *bucket,
                               double               rate,
                               double               capacity,
                               gint64               now_us)
{
  if (bucket->last_us == 0)
    bucket->tokens = capacity;
  else if (now_us > bucket->last_us)
    bucket->tokens = MIN (capacity, bucket->tokens + (double) (now_us - bucket->last_us) * rate / G_USEC_PER_SEC);
  if (now_us > bucket->last_us)
    bucket->last_us = now_us;
}

/* Takes a token at @now_us; FALSE (and nothing taken) when the bucket
 * has less than one. */
static inline gboolean
engine_io_token_bucket_take (EngineIOTokenBucket *bucket,
                             double               rate,
                             double               capacity,
                             gint64               now_us)
{
  engine_io_token_bucket_refill (bucket, rate, capacity, now_us);
  if (bucket->tokens < 1.0)
    return FALSE;
  bucket->tokens -= 1.0;
  return TRUE;
}

/* Whether the bucket would be full at @now_us: it is then the same as a
 * bucket never used, and may be forgotten. */
static inline gboolean
engine_io_token_bucket_is_full (const EngineIOTokenBucket *bucket,
                                double                     rate,
                                double                     capacity,
                                gint64                     now_us)
{
  return bucket->tokens + (double) (now_us - bucket->last_us) * rate / G_USEC_PER_SEC >= capacity;
}

/* Seconds until the bucket has a token again (at least 1, for Retry-After). */
static inline guint
engine_io_token_bucket_retry_after (const EngineIOTokenBucket *bucket,
                                    double                     rate)
{
  double seconds = rate > 0 ? (1.0 - bucket->tokens) / rate : 1.0;

  seconds = CLAMP (seconds, 0.0, 86400.0);
  return MAX (1, (guint) seconds + ((double) (guint) seconds < seconds ? 1 : 0));
}

G_END_DECLS
