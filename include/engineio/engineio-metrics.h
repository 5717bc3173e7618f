/* engineio-metrics.h: what a server has done, as numbers
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#if !defined (ENGINE_IO_INSIDE) && !defined (ENGINE_IO_COMPILATION)
#error "Only <engineio/engineio.h> can be included directly."
#endif

#include <glib-object.h>
#include <engineio/engineio-version.h>
#include <engineio/engineio-packet.h>
#include <engineio/engineio-socket.h>

G_BEGIN_DECLS

typedef struct _EngineIOMetrics EngineIOMetrics;

#define ENGINE_IO_TYPE_METRICS (engine_io_metrics_get_type ())

ENGINE_IO_AVAILABLE_IN_ALL
GType            engine_io_metrics_get_type                (void) G_GNUC_CONST;
ENGINE_IO_AVAILABLE_IN_ALL
EngineIOMetrics *engine_io_metrics_ref                     (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
void             engine_io_metrics_unref                   (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_open_sessions       (EngineIOMetrics         *metrics,
                                                            EngineIOTransportType    transport,
                                                            EngineIOProtocolVersion  version);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_handshakes          (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_upgrades            (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_packets_received    (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_packets_sent        (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_bytes_received      (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_bytes_sent          (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_closes              (EngineIOMetrics         *metrics,
                                                            EngineIOCloseReason      reason);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_send_queue_high_water (EngineIOMetrics       *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_ping_rtt_count      (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
double           engine_io_metrics_get_ping_rtt_sum        (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint            engine_io_metrics_get_ping_rtt_n_buckets  (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_ping_rtt_bucket     (EngineIOMetrics         *metrics,
                                                            guint                    index,
                                                            double                  *out_upper_bound);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_messages_dropped    (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_handshakes_rate_limited (EngineIOMetrics     *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_handshakes_refused  (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_connections_refused (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_descriptors         (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
guint64          engine_io_metrics_get_descriptor_limit    (EngineIOMetrics         *metrics);
ENGINE_IO_AVAILABLE_IN_ALL
char            *engine_io_metrics_to_prometheus           (EngineIOMetrics         *metrics);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOMetrics, engine_io_metrics_unref)

G_END_DECLS
