/* engineio-metrics.c: what a server has done, as numbers
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <math.h>

#include "engineio-metrics-private.h"

/**
 * EngineIOMetrics:
 *
 * A snapshot of a server's counters, taken by engine_io_server_get_metrics():
 * open sessions by transport and protocol version, handshakes, upgrades,
 * packets and bytes each way, closes by reason, the largest send queue seen,
 * a histogram of heartbeat round-trip times (v4: from the server's ping
 * to the client's pong), and what the rate limits refused.
 *
 * Immutable: any thread may read it. engine_io_metrics_to_prometheus()
 * gives the Prometheus text form, which #EngineIOServer:metrics-path serves.
 */
struct _EngineIOMetrics
{
  gatomicrefcount  ref_count;
  EngineIOCounters values;
};

G_DEFINE_BOXED_TYPE (EngineIOMetrics, engine_io_metrics, engine_io_metrics_ref, engine_io_metrics_unref)

static const double rtt_bounds[ENGINE_IO_RTT_BUCKETS] = {
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const transport_names[] = { "polling", "websocket" };
static const char *const version_names[] = { "3", "4" };

void
engine_io_counter_max (guint64 *counter,
                       guint64  value)
{
  guint64 seen = __atomic_load_n (counter, __ATOMIC_RELAXED);

  while (value > seen &&
         !__atomic_compare_exchange_n (counter, &seen, value, TRUE, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
}

void
engine_io_counters_record_rtt (EngineIOCounters *counters,
                               gint64            microseconds)
{
  double seconds = (double) microseconds / G_USEC_PER_SEC;
  guint i = 0;

  if (microseconds < 0)
    return;
  while (i < ENGINE_IO_RTT_BUCKETS && seconds > rtt_bounds[i])
    i++;
  engine_io_counter_add (&counters->rtt[i], 1);
  engine_io_counter_add (&counters->rtt_count, 1);
  engine_io_counter_add (&counters->rtt_sum_us, (guint64) microseconds);
}

EngineIOMetrics *
engine_io_metrics_new (EngineIOCounters *counters)
{
  EngineIOMetrics *self = g_new0 (EngineIOMetrics, 1);
  const guint64 *from = (const guint64 *) counters;
  guint64 *to = (guint64 *) &self->values;

  g_atomic_ref_count_init (&self->ref_count);
  for (gsize i = 0; i < sizeof (EngineIOCounters) / sizeof (guint64); i++)
    to[i] = __atomic_load_n (&from[i], __ATOMIC_RELAXED);
  return self;
}

/**
 * engine_io_metrics_ref:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): @metrics
 */
EngineIOMetrics *
engine_io_metrics_ref (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, NULL);
  g_atomic_ref_count_inc (&metrics->ref_count);
  return metrics;
}

/**
 * engine_io_metrics_unref:
 * @metrics: (transfer full): a snapshot
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_metrics_unref (EngineIOMetrics *metrics)
{
  g_return_if_fail (metrics != NULL);
  if (g_atomic_ref_count_dec (&metrics->ref_count))
    g_free (metrics);
}

/**
 * engine_io_metrics_get_open_sessions:
 * @metrics: a snapshot
 * @transport: a transport
 * @version: a protocol version
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the sessions open on @transport with @version
 */
guint64
engine_io_metrics_get_open_sessions (EngineIOMetrics         *metrics,
                                     EngineIOTransportType    transport,
                                     EngineIOProtocolVersion  version)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return *engine_io_counter_open (&metrics->values, transport, version);
}

/**
 * engine_io_metrics_get_handshakes:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the sessions opened since the server started
 */
guint64
engine_io_metrics_get_handshakes (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.handshakes;
}

/**
 * engine_io_metrics_get_upgrades:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the sessions upgraded from polling to WebSocket
 */
guint64
engine_io_metrics_get_upgrades (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.upgrades;
}

/**
 * engine_io_metrics_get_packets_received:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the packets received from clients (all types)
 */
guint64
engine_io_metrics_get_packets_received (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.packets_in;
}

/**
 * engine_io_metrics_get_packets_sent:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the packets handed to transports (all types)
 */
guint64
engine_io_metrics_get_packets_sent (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.packets_out;
}

/**
 * engine_io_metrics_get_bytes_received:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the bytes of received packets (data plus the type), not counting
 *   HTTP or WebSocket framing
 */
guint64
engine_io_metrics_get_bytes_received (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.bytes_in;
}

/**
 * engine_io_metrics_get_bytes_sent:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the bytes of sent packets (data plus the type), not counting
 *   framing
 */
guint64
engine_io_metrics_get_bytes_sent (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.bytes_out;
}

/**
 * engine_io_metrics_get_closes:
 * @metrics: a snapshot
 * @reason: a close reason
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the sessions that ended for @reason
 */
guint64
engine_io_metrics_get_closes (EngineIOMetrics     *metrics,
                              EngineIOCloseReason  reason)
{
  g_return_val_if_fail (metrics != NULL, 0);
  g_return_val_if_fail ((guint) reason < G_N_ELEMENTS (metrics->values.closes), 0);
  return metrics->values.closes[reason];
}

/**
 * engine_io_metrics_get_send_queue_high_water:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the most memory, in bytes, any socket's send queue held (as
 *   #EngineIOServer:send-queue-high-water counts it: real bytes, with the
 *   per-packet overhead)
 */
guint64
engine_io_metrics_get_send_queue_high_water (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.queue_high_water;
}

/**
 * engine_io_metrics_get_ping_rtt_count:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the heartbeat round trips measured
 */
guint64
engine_io_metrics_get_ping_rtt_count (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.rtt_count;
}

/**
 * engine_io_metrics_get_ping_rtt_sum:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the sum of the measured round trips, in seconds
 */
double
engine_io_metrics_get_ping_rtt_sum (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return (double) metrics->values.rtt_sum_us / G_USEC_PER_SEC;
}

/**
 * engine_io_metrics_get_ping_rtt_n_buckets:
 * @metrics: a snapshot
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of histogram buckets, the last one unbounded
 */
guint
engine_io_metrics_get_ping_rtt_n_buckets (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return ENGINE_IO_RTT_BUCKETS + 1;
}

/**
 * engine_io_metrics_get_ping_rtt_bucket:
 * @metrics: a snapshot
 * @index: a bucket, below engine_io_metrics_get_ping_rtt_n_buckets()
 * @out_upper_bound: (out) (optional): the bucket's upper bound in seconds
 *   (infinity for the last)
 *
 * Cumulative, as Prometheus histograms are: round trips up to the bound.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the round trips of at most the bucket's bound
 */
guint64
engine_io_metrics_get_ping_rtt_bucket (EngineIOMetrics *metrics,
                                       guint            index,
                                       double          *out_upper_bound)
{
  guint64 total = 0;

  g_return_val_if_fail (metrics != NULL, 0);
  g_return_val_if_fail (index <= ENGINE_IO_RTT_BUCKETS, 0);

  for (guint i = 0; i <= index; i++)
    total += metrics->values.rtt[i];
  if (out_upper_bound != NULL)
    *out_upper_bound = index < ENGINE_IO_RTT_BUCKETS ? rtt_bounds[index] : INFINITY;
  return total;
}

/**
 * engine_io_metrics_get_messages_dropped:
 * @metrics: a snapshot
 *
 * Messages dropped because their client sent them faster than
 * #EngineIOServer:message-rate allows, with the policy
 * %ENGINE_IO_RATE_LIMIT_DROP. They are not counted in
 * engine_io_metrics_get_packets_received().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the messages dropped by the rate limit
 */
guint64
engine_io_metrics_get_messages_dropped (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.messages_dropped;
}

/**
 * engine_io_metrics_get_handshakes_rate_limited:
 * @metrics: a snapshot
 *
 * Handshakes refused with HTTP 429 because their address went over
 * #EngineIOServer:handshake-rate.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the handshakes refused by the rate limit
 */
guint64
engine_io_metrics_get_handshakes_rate_limited (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.handshakes_rate_limited;
}

/**
 * engine_io_metrics_get_handshakes_refused:
 * @metrics: a snapshot
 *
 * Handshakes refused with HTTP 503 because the server was full: at
 * #EngineIOServer:max-sessions, or at its descriptor budget (see
 * #EngineIOServer:fd-reserve).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the handshakes refused for lack of room
 */
guint64
engine_io_metrics_get_handshakes_refused (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.handshakes_refused_full;
}

/**
 * engine_io_metrics_get_connections_refused:
 * @metrics: a snapshot
 *
 * Connections closed as soon as they were accepted because the server
 * held all the descriptors of its budget (see #EngineIOServer:fd-reserve).
 * Only the daemon engine_io_server_listen() starts refuses connections.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the connections refused
 */
guint64
engine_io_metrics_get_connections_refused (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.connections_refused;
}

/**
 * engine_io_metrics_get_descriptors:
 * @metrics: a snapshot
 *
 * The file descriptors the server held: its sessions' main contexts (with
 * a thread per session), its loop threads' contexts, detached WebSockets,
 * the connections of the daemon engine_io_server_listen() started and that
 * daemon's own. Descriptors of the application, and connections of a
 * daemon the server is mounted in, are not counted.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the descriptors the server holds
 */
guint64
engine_io_metrics_get_descriptors (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.descriptors;
}

/**
 * engine_io_metrics_get_descriptor_limit:
 * @metrics: a snapshot
 *
 * The most descriptors the server lets itself hold (see
 * #EngineIOServer:fd-reserve), or 0 before it starts.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the server's descriptor budget
 */
guint64
engine_io_metrics_get_descriptor_limit (EngineIOMetrics *metrics)
{
  g_return_val_if_fail (metrics != NULL, 0);
  return metrics->values.descriptor_limit;
}

/**
 * engine_io_metrics_to_prometheus:
 * @metrics: a snapshot
 *
 * The snapshot in the Prometheus text exposition format (version 0.0.4),
 * metric names prefixed `engineio_`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): the text
 */
char *
engine_io_metrics_to_prometheus (EngineIOMetrics *metrics)
{
  GString *out = g_string_sized_new (2048);
  const EngineIOCounters *v;
  char number[G_ASCII_DTOSTR_BUF_SIZE];

  g_return_val_if_fail (metrics != NULL, NULL);
  v = &metrics->values;

  g_string_append (out, "# HELP engineio_sessions_open Open sessions by transport and protocol version.\n"
                        "# TYPE engineio_sessions_open gauge\n");
  for (guint t = 0; t < 2; t++)
    for (guint p = 0; p < 2; p++)
      g_string_append_printf (out, "engineio_sessions_open{transport=\"%s\",protocol=\"%s\"} %" G_GUINT64_FORMAT "\n",
                              transport_names[t], version_names[p], v->open[t][p]);

#define COUNTER(name, help, value) \
  g_string_append_printf (out, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %" G_GUINT64_FORMAT "\n", (guint64) (value))
  COUNTER ("engineio_handshakes_total", "Sessions opened.", v->handshakes);
  COUNTER ("engineio_upgrades_total", "Sessions upgraded from polling to WebSocket.", v->upgrades);
  COUNTER ("engineio_packets_received_total", "Packets received from clients.", v->packets_in);
  COUNTER ("engineio_packets_sent_total", "Packets handed to transports.", v->packets_out);
  COUNTER ("engineio_bytes_received_total", "Bytes of received packets.", v->bytes_in);
  COUNTER ("engineio_bytes_sent_total", "Bytes of sent packets.", v->bytes_out);
  COUNTER ("engineio_messages_dropped_total", "Messages dropped over the message rate limit.",
           v->messages_dropped);
  COUNTER ("engineio_handshakes_rate_limited_total", "Handshakes refused over the handshake rate limit.",
           v->handshakes_rate_limited);
  COUNTER ("engineio_handshakes_refused_total",
           "Handshakes refused because the server was full (max-sessions or its descriptor budget).",
           v->handshakes_refused_full);
  COUNTER ("engineio_connections_refused_total",
           "Connections closed at accept because the server held its whole descriptor budget.",
           v->connections_refused);
#undef COUNTER

  g_string_append_printf (out, "# HELP engineio_descriptors File descriptors the server holds.\n"
                               "# TYPE engineio_descriptors gauge\n"
                               "engineio_descriptors %" G_GUINT64_FORMAT "\n"
                               "# HELP engineio_descriptor_limit The most descriptors the server lets itself hold.\n"
                               "# TYPE engineio_descriptor_limit gauge\n"
                               "engineio_descriptor_limit %" G_GUINT64_FORMAT "\n",
                          v->descriptors, v->descriptor_limit);

  g_string_append (out, "# HELP engineio_closes_total Sessions ended, by reason.\n"
                        "# TYPE engineio_closes_total counter\n");
  for (guint r = 0; r < G_N_ELEMENTS (v->closes); r++)
    g_string_append_printf (out, "engineio_closes_total{reason=\"%s\"} %" G_GUINT64_FORMAT "\n",
                            engine_io_close_reason_to_string (r), v->closes[r]);

  g_string_append_printf (out, "# HELP engineio_send_queue_high_water_bytes The most memory a socket's send queue held, in bytes.\n"
                               "# TYPE engineio_send_queue_high_water_bytes gauge\n"
                               "engineio_send_queue_high_water_bytes %" G_GUINT64_FORMAT "\n",
                          v->queue_high_water);

  g_string_append (out, "# HELP engineio_ping_rtt_seconds Heartbeat round-trip time (v4: ping to pong).\n"
                        "# TYPE engineio_ping_rtt_seconds histogram\n");
  for (guint i = 0; i <= ENGINE_IO_RTT_BUCKETS; i++)
    {
      double bound;
      guint64 count = engine_io_metrics_get_ping_rtt_bucket (metrics, i, &bound);
      if (i < ENGINE_IO_RTT_BUCKETS)
        g_ascii_formatd (number, sizeof number, "%g", bound);
      else
        g_strlcpy (number, "+Inf", sizeof number);
      g_string_append_printf (out, "engineio_ping_rtt_seconds_bucket{le=\"%s\"} %" G_GUINT64_FORMAT "\n",
                              number, count);
    }
  g_ascii_formatd (number, sizeof number, "%.6f", engine_io_metrics_get_ping_rtt_sum (metrics));
  g_string_append_printf (out, "engineio_ping_rtt_seconds_sum %s\n"
                               "engineio_ping_rtt_seconds_count %" G_GUINT64_FORMAT "\n",
                          number, v->rtt_count);

  return g_string_free (out, FALSE);
}
