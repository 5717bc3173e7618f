/* test-metrics.c: the server's counters, through the API and by scraping
 * the Prometheus endpoint over loopback
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "testutil.h"

/* The shared loopback fixture; sessions echo. */
typedef TestLoopback Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->watch = TEST_WATCH_ECHO;
  g_object_set (f->server, "metrics-path", "/metrics", "ping-interval", 200, "ping-timeout", 2000, NULL);
  test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

/* The value of one sample line, e.g. `engineio_handshakes_total`. */
static gint64
sample (const char *text,
        const char *name)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  gsize len = strlen (name);

  for (guint i = 0; lines[i] != NULL; i++)
    if (strncmp (lines[i], name, len) == 0 && lines[i][len] == ' ')
      return g_ascii_strtoll (lines[i] + len + 1, NULL, 10);
  return -1;
}

static char *
scrape (Fixture *f)
{
  g_autoptr(TestResponse) response = test_http_get (f->http, "/metrics");

  if (response == NULL)
    return NULL;
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_true (g_str_has_prefix (test_response_header (response, "Content-Type"), "text/plain; version=0.0.4"));
  return test_response_text (response);
}

static void
test_metrics_scrape (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestResponse) open = NULL;
  g_autoptr(TestResponse) echo = NULL;
  g_autoptr(TestOpenPacket) packet = NULL;
  g_autoptr(EngineIOMetrics) metrics = NULL;
  g_autofree char *before = NULL;
  g_autofree char *during = NULL;
  g_autofree char *after = NULL;
  g_autofree char *target = NULL;
  g_autofree char *body = NULL;
  g_autofree char *heartbeat = NULL;
  gboolean answered = FALSE;

  g_test_summary ("metrics-path serves the counters in the Prometheus text format: sessions "
                  "open by transport and version, handshakes, packets and bytes, closes by "
                  "reason, the ping round-trip histogram; the C API reports the same numbers");

  before = scrape (f);
  g_assert_nonnull (before);
  g_assert_cmpint (sample (before, "engineio_handshakes_total"), ==, 0);
  g_assert_cmpint (sample (before, "engineio_sessions_open{transport=\"polling\",protocol=\"4\"}"), ==, 0);

  open = test_http_get (f->http, "/engine.io/?EIO=4&transport=polling");
  g_assert_nonnull (open);
  body = test_response_text (open);
  packet = test_open_packet_parse (body + 1, NULL);
  g_assert_nonnull (packet);
  target = g_strdup_printf ("/engine.io/?EIO=4&transport=polling&sid=%s", packet->sid);

  during = scrape (f);
  g_assert_cmpint (sample (during, "engineio_handshakes_total"), ==, 1);
  g_assert_cmpint (sample (during, "engineio_sessions_open{transport=\"polling\",protocol=\"4\"}"), ==, 1);

  /* Two messages in, echoed out; then answer the server's ping. */
  g_clear_pointer (&open, test_response_free);
  open = test_http_post (f->http, target, "4hello\x1e" "4world", 13);
  g_assert_nonnull (open);
  g_assert_cmpuint (open->status, ==, 200);
  for (guint i = 0; i < 10 && !answered; i++)
    {
      g_autofree char *text = NULL;
      g_clear_pointer (&echo, test_response_free);
      echo = test_http_get (f->http, target);
      g_assert_nonnull (echo);
      text = test_response_text (echo);
      if (strstr (text, "2") != NULL && text[0] != '4')
        {
          g_autoptr(TestResponse) pong = test_http_post (f->http, target, "3", 1);
          g_assert_nonnull (pong);
          answered = TRUE;
        }
    }
  g_assert_true (answered);
  heartbeat = g_strdup_printf ("heartbeat %s", packet->sid);
  g_assert_true (test_recorder_wait (f->events, heartbeat, 5000));

  /* The client leaves. */
  g_clear_pointer (&open, test_response_free);
  open = test_http_post (f->http, target, "1", 1);
  g_assert_nonnull (open);
  {
    g_autofree char *closed = g_strdup_printf ("close %s transport close", packet->sid);
    g_assert_true (test_recorder_wait (f->events, closed, 5000));
  }

  after = scrape (f);
  g_assert_cmpint (sample (after, "engineio_sessions_open{transport=\"polling\",protocol=\"4\"}"), ==, 0);
  g_assert_cmpint (sample (after, "engineio_closes_total{reason=\"transport close\"}"), ==, 1);
  g_assert_cmpint (sample (after, "engineio_closes_total{reason=\"ping timeout\"}"), ==, 0);
  /* hello, world, the pong and the close */
  g_assert_cmpint (sample (after, "engineio_packets_received_total"), ==, 4);
  g_assert_cmpint (sample (after, "engineio_bytes_received_total"), ==, 6 + 6 + 1 + 1);
  /* the open packet, two echoes, at least one ping */
  g_assert_cmpint (sample (after, "engineio_packets_sent_total"), >=, 4);
  g_assert_cmpint (sample (after, "engineio_ping_rtt_seconds_count"), >=, 1);
  g_assert_cmpint (sample (after, "engineio_ping_rtt_seconds_bucket{le=\"+Inf\"}"), ==,
                   sample (after, "engineio_ping_rtt_seconds_count"));
  g_assert_cmpint (sample (after, "engineio_send_queue_high_water_bytes"), >, 0);

  metrics = engine_io_server_get_metrics (f->server);
  g_assert_cmpuint (engine_io_metrics_get_handshakes (metrics), ==, 1);
  g_assert_cmpuint (engine_io_metrics_get_packets_received (metrics), ==, 4);
  g_assert_cmpuint (engine_io_metrics_get_closes (metrics, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE), ==, 1);
  g_assert_cmpuint (engine_io_metrics_get_open_sessions (metrics, ENGINE_IO_TRANSPORT_POLLING,
                                                         ENGINE_IO_PROTOCOL_V4), ==, 0);
  g_assert_cmpuint (engine_io_metrics_get_ping_rtt_n_buckets (metrics), ==, 15);
  g_assert_cmpuint (engine_io_metrics_get_ping_rtt_bucket (metrics, 14, NULL), ==,
                    engine_io_metrics_get_ping_rtt_count (metrics));
}

static void
test_metrics_method (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("The metrics path answers GET only (405 otherwise), and other paths stay 404");

  response = test_http_post (f->http, "/metrics", "x", 1);
  g_assert_nonnull (response);
  g_assert_cmpuint (response->status, ==, 405);
  g_clear_pointer (&response, test_response_free);
  response = test_http_get (f->http, "/metricsx");
  g_assert_nonnull (response);
  g_assert_cmpuint (response->status, ==, 404);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add ("/metrics/scrape", Fixture, NULL, fixture_setup, test_metrics_scrape, fixture_teardown);
  g_test_add ("/metrics/method", Fixture, NULL, fixture_setup, test_metrics_method, fixture_teardown);

  return g_test_run ();
}
