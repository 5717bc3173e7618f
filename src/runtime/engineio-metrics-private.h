/* engineio-metrics-private.h: the server's live counters
 *
 * Plain 64-bit words updated with relaxed atomic operations from any
 * thread (HTTP workers, session threads); engine_io_metrics_new() copies
 * them into an immutable snapshot.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-metrics.h"

G_BEGIN_DECLS

/* Upper bounds (seconds) of the ping round-trip histogram; +Inf follows. */
#define ENGINE_IO_RTT_BUCKETS 14

typedef struct
{
  guint64 open[2][2];       /* [EngineIOTransportType][v3 = 0, v4 = 1] */
  guint64 handshakes;
  guint64 upgrades;
  guint64 packets_in;
  guint64 packets_out;
  guint64 bytes_in;
  guint64 bytes_out;
  guint64 closes[ENGINE_IO_CLOSE_REASON_RATE_LIMITED + 1];  /* [EngineIOCloseReason] */
  guint64 queue_high_water; /* bytes */
  guint64 rtt[ENGINE_IO_RTT_BUCKETS + 1];  /* per bucket, not cumulative */
  guint64 rtt_count;
  guint64 rtt_sum_us;
  guint64 messages_dropped;          /* over message-rate, policy DROP */
  guint64 handshakes_rate_limited;   /* refused over handshake-rate */
  guint64 handshakes_refused_full;   /* refused (503): max-sessions or the descriptor budget */
  guint64 connections_refused;       /* closed at accept: the descriptor budget */
  guint64 descriptors;               /* gauge: descriptors the server holds, as counted */
  guint64 descriptor_limit;          /* gauge: the budget they are held to (0: not started) */
} EngineIOCounters;

static inline void
engine_io_counter_add (guint64 *counter,
                       guint64  n)
{
  __atomic_fetch_add (counter, n, __ATOMIC_RELAXED);
}

static inline void
engine_io_counter_sub (guint64 *counter,
                       guint64  n)
{
  __atomic_fetch_sub (counter, n, __ATOMIC_RELAXED);
}

static inline guint64 *
engine_io_counter_open (EngineIOCounters        *counters,
                        EngineIOTransportType    transport,
                        EngineIOProtocolVersion  version)
{
  return &counters->open[transport == ENGINE_IO_TRANSPORT_WEBSOCKET][version == ENGINE_IO_PROTOCOL_V4];
}

void             engine_io_counter_max         (guint64          *counter,
                                                guint64           value);
void             engine_io_counters_record_rtt (EngineIOCounters *counters,
                                                gint64            microseconds);
EngineIOMetrics *engine_io_metrics_new         (EngineIOCounters *counters);

G_END_DECLS
