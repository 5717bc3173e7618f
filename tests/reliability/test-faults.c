/* test-faults.c: clients that fail in every way a network lets them, and
 * a server that must stay responsive to a healthy session meanwhile and
 * give back what the dead ones held.
 *
 * Every test runs two healthy sessions (one polling, one WebSocket) doing
 * echo round trips on their own threads through the fault, and checks
 * that they kept going during it and still answer after it; that each
 * dead session closed with the reason it should; and that the server's
 * sessions, the process's threads and its descriptors are back to where
 * they were before the fault (and, after the server is closed and
 * unreferenced, to where they were before it existed).
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "relutil.h"

#define N_HEALTHY 2

typedef struct
{
  guint ping_interval;    /* ms */
  guint ping_timeout;     /* ms */
  guint upgrade_timeout;  /* ms */
} Config;

/* A heartbeat short enough that silent clients die within a second or
 * two, long enough that a waiting poll is still waiting 100 ms after it
 * was sent. */
static const Config default_config = { 600, 600, 1000 };
/* The flood: abandoned sessions die fast. */
static const Config flood_config = { 250, 500, 1000 };
/* The shutdown under a handshake storm: the sessions whose POST is half
 * sent cannot answer a ping, and must still be open when the close comes
 * after the storm's first few hundred handshakes (under ASan on CI's
 * loaded machine that took over the 1.2 s of default_config: they closed
 * with "ping timeout"). */
static const Config shutdown_config = { 5000, 5000, 1000 };

/* Seconds; the "connection-timeout" of every server here. */
#define CONNECTION_TIMEOUT_S 1

typedef struct
{
  const Config *config;
  RelResources  pre;     /* before the server existed */
  RelResources  base;    /* listening, healthy sessions running */
  RelServer    *rs;
  guint         port;
  RelHealthy   *healthy[N_HEALTHY];
  char         *healthy_sid[N_HEALTHY];
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->config = data != NULL ? data : &default_config;
  rel_resources_settled (&f->pre);

  f->rs = rel_server_new ();
  g_object_set (f->rs->lb.server,
                "ping-interval", f->config->ping_interval,
                "ping-timeout", f->config->ping_timeout,
                "upgrade-timeout", f->config->upgrade_timeout,
                "connection-timeout", CONNECTION_TIMEOUT_S,
                NULL);
  g_assert_true (rel_server_listen (f->rs));
  f->port = f->rs->lb.port;

  for (guint i = 0; i < N_HEALTHY; i++)
    {
      f->healthy[i] = rel_healthy_start (f->port, i == 0 ? REL_HEALTHY_POLLING : REL_HEALTHY_WEBSOCKET,
                                         &error);
      g_assert_no_error (error);
      f->healthy_sid[i] = g_strdup (rel_healthy_sid (f->healthy[i]));
      g_assert_true (rel_healthy_wait_more (f->healthy[i], 3, REL_WAIT_MS));
    }
  rel_resources_settled (&f->base);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  RelResources final;
  guint port = f->port;

  for (guint i = 0; i < N_HEALTHY; i++)
    if (f->healthy[i] != NULL)
      {
        g_autofree char *error = rel_healthy_stop (f->healthy[i], TRUE);
        if (error != NULL)
          g_test_fail_printf ("%s", error);
        g_assert_cmpint (rel_server_wait_reason (f->rs, f->healthy_sid[i], REL_WAIT_MS), ==,
                         ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
      }
  for (guint i = 0; i < N_HEALTHY; i++)
    g_free (f->healthy_sid[i]);
  g_assert_cmpuint (rel_server_repeated (f->rs), ==, 0);
  g_clear_pointer (&f->rs, rel_server_free);

  if (!rel_resources_wait_at_most (f->pre.threads, f->pre.fds, REL_WAIT_MS, &final))
    g_test_fail_printf ("after the server closed: %u threads (before it: %u), %u descriptors "
                        "(before it: %u)", final.threads, f->pre.threads, final.fds, f->pre.fds);
  g_assert_true (test_port_refuses (port));
  test_log_check ();
}

/* Both healthy sessions do @n more round trips (within the usual bound). */
static void
assert_healthy_progress (Fixture *f,
                         guint    n)
{
  for (guint i = 0; i < N_HEALTHY; i++)
    if (!rel_healthy_wait_more (f->healthy[i], n, REL_WAIT_MS))
      {
        g_autofree char *error = rel_healthy_dup_error (f->healthy[i]);
        g_test_fail_printf ("healthy session %s did not make %u round trips within %u ms: %s",
                            f->healthy_sid[i], n, REL_WAIT_MS, error ? error : "too slow");
      }
}

/* Every session but the healthy ones has closed and been forgotten, and
 * the threads and descriptors are back to the baseline; the healthy
 * sessions still answer. */
static void
assert_recovered (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  RelResources now;

  if (!rel_server_wait_settled (f->rs, N_HEALTHY, 60 * 1000, &error))
    g_test_fail_printf ("sessions left: %s", error->message);
  if (!rel_resources_wait_at_most (f->base.threads, f->base.fds, REL_WAIT_MS, &now))
    rel_resources_dump_fds (),
    g_test_fail_printf ("after the fault: %u threads (baseline %u), %u descriptors (baseline %u)",
                        now.threads, f->base.threads, now.fds, f->base.fds);
  assert_healthy_progress (f, 3);
  for (guint i = 0; i < N_HEALTHY; i++)
    g_test_message ("healthy session %u: %u round trips, slowest %u ms", i,
                    rel_healthy_round_trips (f->healthy[i]), rel_healthy_max_ms (f->healthy[i]));
}

#define assert_reason(f, sid, reason)                                                      \
  G_STMT_START {                                                                           \
    gint got_ = rel_server_wait_reason ((f)->rs, (sid), REL_WAIT_MS);                      \
    if (got_ != (gint) (reason))                                                           \
      g_test_fail_printf ("%s:%d: session %s closed with “%s”, expected “%s”",             \
                          __FILE__, __LINE__, (sid),                                       \
                          got_ < 0 ? "(no close)" : engine_io_close_reason_to_string (got_), \
                          engine_io_close_reason_to_string (reason));                      \
  } G_STMT_END

static RelPoll *
open_polling (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  RelPoll *poll = rel_poll_open (f->port, &error);

  g_assert_no_error (error);
  g_assert_true (rel_poll_echo (poll, "hello", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  return poll;
}

static char *
head_for (Fixture    *f,
          const char *method,
          const char *target,
          const char *extra)
{
  return g_strdup_printf ("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n", method, target, f->port,
                          extra ? extra : "");
}

/* ------------------------------------------------------------------ */
/* A client vanishes in the middle of a poll                           */
/* ------------------------------------------------------------------ */

static void
test_poll_reset (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autofree char *sid = NULL;
  gint reason;

  g_test_summary ("A client whose connection is reset (RST) while its GET poll is suspended: "
                  "the server notices (its watcher of waiting polls, or the heartbeat resuming "
                  "the poll, whichever comes first) and the session closes with “transport "
                  "close” without writing the ping into the dead connection; the connection "
                  "and the session's thread are given back");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  /* Wait for a ping and answer it: the next one is a ping-interval away. */
  {
    g_autoptr(TestResponse) ping = test_http_request (poll->http, "GET", poll->target, NULL, NULL,
                                                      -1, REL_WAIT_MS, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (ping->status, ==, 200);
    g_assert_true (test_response_body_equal (ping, TEST_S ("2")));
  }
  g_assert_true (rel_poll_post (poll, "3", &error));
  g_assert_no_error (error);
  g_assert_true (rel_poll_send_get (poll, &error));
  g_assert_no_error (error);
  /* The poll is suspended: nothing to answer before the next ping. */
  g_assert_false (test_http_wait_readable (poll->http, 100));
  test_http_drop (poll->http, TRUE);

  assert_healthy_progress (f, 5);
  reason = rel_server_wait_reason (f->rs, sid, REL_WAIT_MS);
  g_test_message ("closed with “%s”", reason < 0 ? "(nothing)" : engine_io_close_reason_to_string (reason));
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
  assert_recovered (f);
}

static void
test_poll_half_open (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GByteArray) received = g_byte_array_new ();
  g_autofree char *sid = NULL;
  g_autofree char *head = NULL;
  gint64 start;
  int fd;

  g_test_summary ("A silent half-open peer: the client sends a GET poll on a connection and "
                  "then neither reads nor writes nor closes. The heartbeat answers the poll "
                  "with a ping, no pong comes: “ping timeout”; the idle connection is closed "
                  "by the server after connection-timeout, without the client's help");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  fd = rel_tcp_connect (f->port);
  g_assert_cmpint (fd, >=, 0);
  head = head_for (f, "GET", poll->target, NULL);
  g_assert_true (rel_tcp_send (fd, head, strlen (head)));
  g_clear_pointer (&poll, rel_poll_free);  /* the handshake's connection goes away cleanly */

  assert_healthy_progress (f, 5);
  start = g_get_monotonic_time ();
  assert_reason (f, sid, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
  /* The server ends the connection by itself (we only look now). */
  g_assert_true (rel_tcp_wait_closed (fd, (CONNECTION_TIMEOUT_S + 10) * 1000, received));
  g_test_message ("connection closed by the server %.1f s after the ping timeout",
                  (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpuint (rel_http_status_of (received), ==, 200);
  close (fd);
  assert_recovered (f);
}

/* ------------------------------------------------------------------ */
/* A client vanishes in the middle of an upgrade                       */
/* ------------------------------------------------------------------ */

static TestWs *
probe (Fixture    *f,
       const char *sid)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", sid);
  g_autoptr(TestWs) ws = test_ws_connect (f->port, target, NULL, 0, NULL, &error);
  g_autofree char *answer = NULL;

  g_assert_no_error (error);
  g_assert_true (rel_ws_send (ws, "2probe", &error));
  answer = rel_ws_next (ws, REL_WAIT_MS, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (answer, ==, "3probe");
  return g_steal_pointer (&ws);
}

/* Upgrades @poll_in (taken), closes its polling connection, does a round
 * trip and closes the session from the client. */
static void
upgrade_and_close (Fixture *f,
                   RelPoll *poll_in)
{
  g_autoptr(RelPoll) poll = poll_in;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = rel_ws_upgrade (f->port, poll->sid, &error);

  g_assert_no_error (error);
  test_http_disconnect (poll->http);
  g_assert_true (rel_ws_echo (ws, "upgraded", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  g_assert_true (rel_ws_send (ws, "1", &error));
  g_assert_cmpint (rel_ws_wait_server_close (ws, REL_WAIT_MS), >=, -1);
  assert_reason (f, poll->sid, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
}

static void
test_upgrade_reset_after_probe (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) gone = NULL;
  g_autoptr(RelPoll) stays = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *gone_sid = NULL;

  g_test_summary ("A client resets its WebSocket after `2probe`/`3probe`, before `5`. If it "
                  "vanished altogether (its polling connection reset too), the session ends "
                  "with “ping timeout”; if it keeps polling, the session goes on over polling "
                  "and a later upgrade succeeds (the dead probe gave its place back)");

  gone = open_polling (f);
  gone_sid = g_strdup (gone->sid);
  ws = probe (f, gone->sid);
  test_ws_drop (ws, TRUE);
  test_http_drop (gone->http, TRUE);
  g_clear_pointer (&ws, test_ws_free);

  stays = open_polling (f);
  ws = probe (f, stays->sid);
  test_ws_drop (ws, TRUE);
  g_clear_pointer (&ws, test_ws_free);
  /* Polling goes on: a noop or two while the server drops the probe. */
  g_assert_true (rel_poll_echo (stays, "still polling", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  assert_healthy_progress (f, 5);
  upgrade_and_close (f, g_steal_pointer (&stays));

  assert_reason (f, gone_sid, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
  assert_recovered (f);
}

static void
test_upgrade_silent_after_probe (Fixture       *f,
                                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  gint64 start;

  g_test_summary ("A client that stops after `3probe` without sending `5` (its WebSocket "
                  "left open and silent): after upgrade-timeout the server drops the probe "
                  "(a close frame, then it closes that connection, unanswered), polling goes "
                  "on, a later upgrade succeeds");

  poll = open_polling (f);
  ws = probe (f, poll->sid);
  start = g_get_monotonic_time ();
  g_assert_cmpint (test_ws_read_close (ws, f->config->upgrade_timeout + REL_WAIT_MS, NULL), >=, -1);
  g_test_message ("probe closed after %.2f s", (g_get_monotonic_time () - start) / 1e6);
  /* The upgrade deadline dropped it (it started a little before `3probe`). */
  g_assert_cmpint (g_get_monotonic_time () - start, >=, (gint64) f->config->upgrade_timeout * 500);

  /* Polling goes on (at once: the heartbeat is short) while the probe's
   * close is left unanswered, until the server ends that connection by
   * itself. */
  for (guint i = 0; ; i++)
    {
      g_assert_true (rel_poll_echo (poll, "still polling", REL_WAIT_MS, &error));
      g_assert_no_error (error);
      if (test_ws_wait_eof (ws, 100))
        break;
      g_assert_cmpuint (i, <, REL_WAIT_MS / 100);
    }
  g_clear_pointer (&ws, test_ws_free);
  assert_healthy_progress (f, 5);
  upgrade_and_close (f, g_steal_pointer (&poll));
  assert_recovered (f);
}

static void
test_upgrade_mid_request (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *target = NULL;
  g_autofree char *request = NULL;
  g_autofree char *sid = NULL;
  gsize half;
  gint64 start;
  int reset_fd, silent_fd;

  g_test_summary ("A client that vanishes in the middle of its HTTP upgrade request (half the "
                  "head, then RST), and one that stops there (half the head, then silence, "
                  "closed by the server after connection-timeout): the session is unaffected, "
                  "keeps polling and upgrades later; reset after that, it closes with "
                  "“transport error”");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  target = test_eio_target (4, "websocket", poll->sid);
  request = head_for (f, "GET", target,
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
  half = strlen (request) / 2;

  reset_fd = rel_tcp_connect (f->port);
  silent_fd = rel_tcp_connect (f->port);
  g_assert_cmpint (reset_fd, >=, 0);
  g_assert_cmpint (silent_fd, >=, 0);
  g_assert_true (rel_tcp_send (reset_fd, request, half));
  g_assert_true (rel_tcp_send (silent_fd, request, half));
  start = g_get_monotonic_time ();
  rel_tcp_reset (reset_fd);

  g_assert_true (rel_poll_echo (poll, "still polling", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  assert_healthy_progress (f, 5);

  g_assert_true (rel_tcp_wait_closed (silent_fd, (CONNECTION_TIMEOUT_S + 10) * 1000, NULL));
  g_test_message ("half upgrade request closed by the server after %.1f s",
                  (g_get_monotonic_time () - start) / 1e6);
  close (silent_fd);

  ws = rel_ws_upgrade (f->port, poll->sid, &error);
  g_assert_no_error (error);
  g_clear_pointer (&poll, rel_poll_free);
  g_assert_true (rel_ws_echo (ws, "upgraded", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  test_ws_drop (ws, TRUE);
  assert_reason (f, sid, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
  assert_recovered (f);
}

/* ------------------------------------------------------------------ */
/* A client vanishes in the middle of a WebSocket frame                */
/* ------------------------------------------------------------------ */

/* The first @length bytes of a masked text frame carrying 100 bytes. */
static GByteArray *
partial_frame (gsize length)
{
  GByteArray *frame = g_byte_array_new ();
  guint8 head[6] = { 0x81, 0x80 | 100, 0x12, 0x34, 0x56, 0x78 };

  g_byte_array_append (frame, head, sizeof head);
  for (guint i = 0; i < 100; i++)
    {
      guint8 b = (guint8) ('4' + (i > 0)) ^ head[2 + i % 4];
      g_byte_array_append (frame, &b, 1);
    }
  g_byte_array_set_size (frame, (guint) length);
  return frame;
}

static TestWs *
open_ws (Fixture  *f,
         gboolean  upgraded,
         char    **out_sid)
{
  g_autoptr(GError) error = NULL;
  TestWs *ws;

  if (upgraded)
    {
      g_autoptr(RelPoll) poll = open_polling (f);
      ws = rel_ws_upgrade (f->port, poll->sid, &error);
      *out_sid = g_strdup (poll->sid);
    }
  else
    ws = rel_ws_open (f->port, out_sid, &error);
  g_assert_no_error (error);
  g_assert_true (rel_ws_echo (ws, "hello", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  return ws;
}

static void
test_ws_reset_mid_frame (Fixture       *f,
                         gconstpointer  data)
{
  static const struct { gboolean upgraded; gsize length; } cases[] = {
    { FALSE, 1 },    /* half the 2-byte header */
    { FALSE, 4 },    /* the header and half the mask */
    { FALSE, 56 },   /* half the payload */
    { TRUE, 1 },
    { TRUE, 56 },
  };
  char *sids[G_N_ELEMENTS (cases)];

  g_test_summary ("WebSocket clients (direct and upgraded) reset their connection after half "
                  "a frame header, half a mask or half a payload: each session closes with "
                  "“transport error” and gives back its connection and thread");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TestWs) ws = open_ws (f, cases[i].upgraded, &sids[i]);
      g_autoptr(GByteArray) frame = partial_frame (cases[i].length);
      g_autoptr(GError) error = NULL;

      g_assert_true (test_ws_send_raw (ws, frame->data, frame->len, &error));
      g_assert_no_error (error);
      test_ws_drop (ws, TRUE);
    }
  assert_healthy_progress (f, 5);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      assert_reason (f, sids[i], ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
      g_free (sids[i]);
    }
  assert_recovered (f);
}

static void
test_ws_silent_mid_frame (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(TestWs) direct = NULL;
  g_autoptr(TestWs) upgraded = NULL;
  g_autoptr(GByteArray) frame = partial_frame (56);
  g_autoptr(GError) error = NULL;
  g_autofree char *direct_sid = NULL;
  g_autofree char *upgraded_sid = NULL;
  gint64 start;

  g_test_summary ("WebSocket clients that send half a frame and then go silent (connection "
                  "open, nothing read or written): no pong comes, “ping timeout”; the server's "
                  "close frame gets no answer and the server drops the connection by itself");

  direct = open_ws (f, FALSE, &direct_sid);
  upgraded = open_ws (f, TRUE, &upgraded_sid);
  g_assert_true (test_ws_send_raw (direct, frame->data, frame->len, &error));
  g_assert_true (test_ws_send_raw (upgraded, frame->data, frame->len, &error));
  g_assert_no_error (error);

  assert_healthy_progress (f, 5);
  start = g_get_monotonic_time ();
  assert_reason (f, direct_sid, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
  assert_reason (f, upgraded_sid, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
  /* Only now does the client look: the server has closed the connection. */
  g_assert_true (test_ws_wait_eof (direct, REL_WAIT_MS));
  g_assert_true (test_ws_wait_eof (upgraded, REL_WAIT_MS));
  g_test_message ("connections dropped %.1f s after the ping timeouts",
                  (g_get_monotonic_time () - start) / 1e6);
  g_clear_pointer (&direct, test_ws_free);
  g_clear_pointer (&upgraded, test_ws_free);
  assert_recovered (f);
}

/* ------------------------------------------------------------------ */
/* The server closes while handshakes are in flight                    */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint      port;
  int        stop;       /* (atomic) */
  int        ok;         /* (atomic) handshakes answered with an open packet */
  int        refused;    /* (atomic) 503 "Server shutting down" */
  int        dropped;    /* (atomic) connection refused, reset or closed */
  RelErrors *errors;     /* anything else */
} Storm;

static void
storm_count_error (Storm        *storm,
                   const char   *what,
                   const GError *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
    g_atomic_int_inc (&storm->dropped);
  else
    rel_errors_add (storm->errors, "%s: %s", what, error->message);
}

static void
storm_response (Storm        *storm,
                const char   *what,
                TestResponse *response)
{
  /* 503 during the close: code 4 "Server shutting down", whichever path
   * the request took. */
  if (test_eio_is_error (response, 503, 4))
    g_atomic_int_inc (&storm->refused);
  else
    {
      g_autofree char *text = test_response_text (response);
      rel_errors_add (storm->errors, "%s: answered %u “%.100s”", what, response->status, text);
    }
}

/* NULL when @packet is a v4 open packet (type 0, its JSON has a URL-safe
 * sid, a heartbeat and maxPayload, and the websocket upgrade when
 * @polling, no upgrade otherwise); otherwise what is wrong with it. */
static char *
storm_open_packet_problem (const char *packet,
                           gboolean    polling)
{
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;

  if (packet[0] != '0')
    return g_strdup_printf ("not an open packet: “%.100s”", packet);
  open = test_open_packet_parse (packet + 1, &error);
  if (open == NULL)
    return g_strdup_printf ("open packet “%.100s”: %s", packet, error->message);
  if (open->sid == NULL || open->sid[0] == '\0' || !test_sid_is_url_safe (open->sid) ||
      open->upgrades == NULL || g_strv_length (open->upgrades) != (polling ? 1 : 0) ||
      (polling && strcmp (open->upgrades[0], "websocket") != 0) ||
      open->ping_interval <= 0 || open->ping_timeout <= 0 || open->max_payload <= 0)
    return g_strdup_printf ("open packet with wrong fields: “%.200s”", packet);
  return NULL;
}

/* A polling handshake's answer: the open packet, and perhaps already the
 * close packet after it (the server was closing); NULL when it is that. */
static char *
storm_polling_problem (TestResponse *response)
{
  g_autoptr(GPtrArray) packets = test_payload_v4_split (response->body);

  if (packets == NULL || packets->len == 0)
    return g_strdup ("an empty payload");
  for (guint i = 1; i < packets->len; i++)
    if (strcmp (g_ptr_array_index (packets, i), "1") != 0)
      return g_strdup_printf ("packet %u after the open packet is “%.100s”",
                              i, (const char *) g_ptr_array_index (packets, i));
  return storm_open_packet_problem (g_ptr_array_index (packets, 0), TRUE);
}

static gpointer
storm_thread (gpointer data)
{
  Storm *storm = data;

  for (guint n = 0; !g_atomic_int_get (&storm->stop); n++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestResponse) response = NULL;

      if (n % 2 == 0)
        {
          g_autoptr(TestHttp) http = test_http_new (storm->port);
          response = test_http_request (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL,
                                        NULL, -1, REL_WAIT_MS, &error);
          if (response == NULL)
            storm_count_error (storm, "polling handshake", error);
          else if (response->status == 200)
            {
              g_autofree char *problem = storm_polling_problem (response);
              if (problem == NULL)
                g_atomic_int_inc (&storm->ok);
              else
                rel_errors_add (storm->errors, "polling handshake: %s", problem);
            }
          else
            storm_response (storm, "polling handshake", response);
        }
      else
        {
          g_autofree char *target = test_eio_target (4, "websocket", NULL);
          g_autoptr(TestWs) ws = test_ws_connect (storm->port, target, NULL, 0, &response, &error);
          g_autoptr(TestWsFrame) frame = NULL;

          if (ws == NULL && response != NULL)
            storm_response (storm, "WebSocket handshake", response);
          else if (ws == NULL)
            storm_count_error (storm, "WebSocket handshake", error);
          else if ((frame = test_ws_read_frame (ws, REL_WAIT_MS, &error)) == NULL)
            storm_count_error (storm, "WebSocket open packet", error);
          else if (frame->opcode == TEST_WS_TEXT)
            {
              g_autofree char *text = test_ws_frame_dup_text (frame);
              g_autofree char *problem = storm_open_packet_problem (text, FALSE);
              if (problem == NULL)
                g_atomic_int_inc (&storm->ok);
              else
                rel_errors_add (storm->errors, "WebSocket: first frame: %s", problem);
            }
          else if (frame->opcode == TEST_WS_CLOSE)
            g_atomic_int_inc (&storm->dropped);  /* closed before its session began */
          else
            rel_errors_add (storm->errors, "WebSocket: first frame has opcode %u", frame->opcode);
        }
    }
  return NULL;
}

static void
test_shutdown_mid_handshake (Fixture       *f,
                             gconstpointer  data)
{
  enum { N_THREADS = 8, N_HALF_HEADS = 30, N_HALF_BODIES = 10 };
  g_autoptr(GError) error = NULL;
  Storm storm = { 0 };
  GThread *threads[N_THREADS];
  int half_heads[N_HALF_HEADS];
  int half_bodies[N_HALF_BODIES];
  char *body_sids[N_HALF_BODIES];
  gint64 start, elapsed;
  guint64 handshakes;
  guint unexpected = 0;

  g_test_summary ("engine_io_server_close() while 8 threads open sessions as fast as they can "
                  "(polling and WebSocket handshakes in flight), 30 requests have sent half "
                  "their head and 10 POSTs half their body: close returns within its bounds, "
                  "every handshake got an open packet, a 503 or a closed connection (nothing "
                  "else), every session closed exactly once, the healthy sessions with “server "
                  "shutting down”, every half request's connection is closed");

  storm.port = f->port;
  storm.errors = rel_errors_new ();

  for (guint i = 0; i < N_HALF_BODIES; i++)
    {
      g_autoptr(RelPoll) poll = rel_poll_open (f->port, &error);
      g_autofree char *head = NULL;
      g_assert_no_error (error);
      body_sids[i] = g_strdup (poll->sid);
      head = head_for (f, "POST", poll->target, "Content-Type: text/plain;charset=UTF-8\r\n"
                                                "Content-Length: 1000\r\n");
      half_bodies[i] = rel_tcp_connect (f->port);
      g_assert_cmpint (half_bodies[i], >=, 0);
      g_assert_true (rel_tcp_send (half_bodies[i], head, strlen (head)));
      g_assert_true (rel_tcp_send (half_bodies[i], "4hello, wor", 11));
    }
  for (guint i = 0; i < N_HALF_HEADS; i++)
    {
      g_autofree char *head = head_for (f, "GET", "/engine.io/?EIO=4&transport=polling", NULL);
      half_heads[i] = rel_tcp_connect (f->port);
      g_assert_cmpint (half_heads[i], >=, 0);
      g_assert_true (rel_tcp_send (half_heads[i], head, strlen (head) / 2 + i % 10));
    }

  for (guint i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("storm", storm_thread, &storm);
  /* Handshakes under way: wait for a few hundred to have completed. */
  start = g_get_monotonic_time ();
  while (rel_server_handshakes (f->rs) < 300 + N_HALF_BODIES + N_HEALTHY &&
         rel_errors_count (storm.errors) == 0 &&
         g_get_monotonic_time () - start < REL_WAIT_MS * 1000)
    g_usleep (1000);
  assert_healthy_progress (f, 3);

  start = g_get_monotonic_time ();
  engine_io_server_close (f->rs->lb.server);
  elapsed = g_get_monotonic_time () - start;
  g_atomic_int_set (&storm.stop, 1);
  for (guint i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);

  g_test_message ("close took %.2f s; handshakes: %d open packets, %d refused (503), "
                  "%d dropped connections", elapsed / 1e6, storm.ok, storm.refused, storm.dropped);
  /* Ten seconds for the sessions, two for the last responses and
   * uploads, then the daemon stops. */
  g_assert_cmpint (elapsed, <, 13 * G_USEC_PER_SEC);
  rel_errors_report (storm.errors, 20);
  g_assert_cmpuint (rel_errors_count (storm.errors), ==, 0);
  g_assert_cmpint (storm.ok, >=, 100);

  /* The sessions: every one closed once; none is left. */
  handshakes = rel_server_handshakes (f->rs);
  g_assert_cmpuint (rel_server_total_closes (f->rs), ==, handshakes);
  g_assert_cmpuint (rel_server_repeated (f->rs), ==, 0);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->rs->lb.server), ==, 0);
  g_assert_cmpuint (rel_server_open_gauge (f->rs), ==, 0);
  for (guint r = 0; r < REL_N_REASONS; r++)
    if (rel_server_closes (f->rs, r) > 0)
      g_test_message ("  closes “%s”: %u", engine_io_close_reason_to_string (r), rel_server_closes (f->rs, r));
  /* Abandoned by their clients, they may have timed out or seen their
   * connection close before the shutdown reached them; nothing else. */
  unexpected = rel_server_closes (f->rs, ENGINE_IO_CLOSE_REASON_PARSE_ERROR) +
               rel_server_closes (f->rs, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_cmpuint (unexpected, ==, 0);
  for (guint i = 0; i < N_HEALTHY; i++)
    {
      g_free (rel_healthy_stop (f->healthy[i], FALSE));
      f->healthy[i] = NULL;
      assert_reason (f, f->healthy_sid[i], ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
    }
  for (guint i = 0; i < N_HALF_BODIES; i++)
    {
      assert_reason (f, body_sids[i], ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
      g_free (body_sids[i]);
    }

  /* Half requests: their connections are closed, nothing was answered
   * but perhaps an error. */
  for (guint i = 0; i < N_HALF_HEADS; i++)
    {
      g_assert_true (rel_tcp_wait_closed (half_heads[i], REL_WAIT_MS, NULL));
      close (half_heads[i]);
    }
  for (guint i = 0; i < N_HALF_BODIES; i++)
    {
      g_assert_true (rel_tcp_wait_closed (half_bodies[i], REL_WAIT_MS, NULL));
      close (half_bodies[i]);
    }
  g_assert_true (test_port_refuses (f->port));
  rel_errors_free (storm.errors);
  /* The teardown checks that threads and descriptors are back to where
   * they were before the server. */
}

/* ------------------------------------------------------------------ */
/* Slowloris                                                            */
/* ------------------------------------------------------------------ */

enum { N_SLOW_HEADS = 100, N_SLOW_BODIES = 20, N_SLOW = N_SLOW_HEADS + N_SLOW_BODIES };

/* Opens 100 connections that send a request head up to a header value
 * and 20 POSTs (each on a session of its own) that send their head and
 * the first byte of a 100,000-byte body. Then, every @tick_ms, sends one
 * more byte on each (@tick_ms 0: never) until the server has closed them
 * all or 10 × connection-timeout have passed. Returns how many are still
 * open; @out_quiet: the shortest time from a connection's last byte to
 * its close; @out_last: when the last one was closed, in µs after the
 * start. */
static guint
slow_clients (Fixture *f,
              guint    tick_ms,
              gint64  *out_quiet,
              gint64  *out_last)
{
  int fds[N_SLOW];
  gint64 closed_at[N_SLOW] = { 0 };
  gint64 last_sent[N_SLOW];
  char *body_sids[N_SLOW_BODIES];
  guint healthy_before[N_HEALTHY];
  guint open, ticks = 0;
  gint64 start, deadline;

  for (guint i = 0; i < N_SLOW_BODIES; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(RelPoll) poll = rel_poll_open (f->port, &error);
      g_autofree char *head = NULL;
      g_assert_no_error (error);
      body_sids[i] = g_strdup (poll->sid);
      head = head_for (f, "POST", poll->target, "Content-Type: text/plain;charset=UTF-8\r\n"
                                                "Content-Length: 100000\r\n");
      fds[N_SLOW_HEADS + i] = rel_tcp_connect (f->port);
      g_assert_cmpint (fds[N_SLOW_HEADS + i], >=, 0);
      g_assert_true (rel_tcp_send (fds[N_SLOW_HEADS + i], head, strlen (head)));
      g_assert_true (rel_tcp_send (fds[N_SLOW_HEADS + i], "4", 1));
      last_sent[N_SLOW_HEADS + i] = g_get_monotonic_time ();
    }
  for (guint i = 0; i < N_SLOW_HEADS; i++)
    {
      static const char head[] = "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nX-Slow: ";
      fds[i] = rel_tcp_connect (f->port);
      g_assert_cmpint (fds[i], >=, 0);
      g_assert_true (rel_tcp_send (fds[i], head, sizeof head - 1));
      last_sent[i] = g_get_monotonic_time ();
    }
  for (guint i = 0; i < N_HEALTHY; i++)
    healthy_before[i] = rel_healthy_round_trips (f->healthy[i]);

  start = g_get_monotonic_time ();
  deadline = start + CONNECTION_TIMEOUT_S * 10 * G_USEC_PER_SEC;
  do
    {
      open = 0;
      ticks++;
      for (guint i = 0; i < N_SLOW; i++)
        {
          if (closed_at[i] != 0)
            continue;
          if (rel_tcp_is_closed (fds[i]) ||
              (tick_ms > 0 && !rel_tcp_send (fds[i], i < N_SLOW_HEADS ? "a" : "b", 1)))
            closed_at[i] = g_get_monotonic_time ();
          else
            {
              if (tick_ms > 0)
                last_sent[i] = g_get_monotonic_time ();
              open++;
            }
        }
      if (open > 0)
        g_usleep ((tick_ms > 0 ? tick_ms : 50) * 1000);
    }
  while (open > 0 && g_get_monotonic_time () < deadline);

  /* The shortest quiet time before a close (from the last byte sent to
   * when the close was seen), and when the last one closed. */
  *out_quiet = G_MAXINT64;
  *out_last = 0;
  for (guint i = 0; i < N_SLOW; i++)
    if (closed_at[i] != 0)
      {
        *out_quiet = MIN (*out_quiet, closed_at[i] - last_sent[i]);
        *out_last = MAX (*out_last, closed_at[i] - start);
      }
  g_test_message ("%u of %u slow connections still open after %.1f s; the last closed after "
                  "%.1f s, the shortest quiet time before a close %.2f s", open, N_SLOW,
                  (g_get_monotonic_time () - start) / 1e6, *out_last / 1e6,
                  *out_quiet == G_MAXINT64 ? -1.0 : *out_quiet / 1e6);
  for (guint i = 0; i < N_HEALTHY; i++)
    {
      guint done = rel_healthy_round_trips (f->healthy[i]) - healthy_before[i];
      g_test_message ("healthy session %u: %u round trips meanwhile", i, done);
      g_assert_cmpuint (done, >=, 3);
    }

  for (guint i = 0; i < N_SLOW; i++)
    close (fds[i]);
  /* Their sessions never poll: the heartbeat ends them. */
  for (guint i = 0; i < N_SLOW_BODIES; i++)
    {
      assert_reason (f, body_sids[i], ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
      g_free (body_sids[i]);
    }
  return open;
}

static void
test_slowloris_stalled (Fixture       *f,
                        gconstpointer  data)
{
  gint64 quiet, last;

  g_test_summary ("100 connections send part of a request head and 20 POSTs part of their "
                  "body, then nothing: the server closes each of them after its "
                  "connection-timeout (1 s here), while the healthy sessions keep their round "
                  "trips going; the sessions of the stalled POSTs end by ping timeout");

  g_assert_cmpuint (slow_clients (f, 0, &quiet, &last), ==, 0);
  /* Closed for being idle, not at once. */
  g_assert_cmpint (quiet, >=, CONNECTION_TIMEOUT_S * G_USEC_PER_SEC * 9 / 10);
  assert_recovered (f);
}

static void
test_slowloris_drip (Fixture       *f,
                     gconstpointer  data)
{
  gint64 quiet, last;
  guint open;

  g_test_summary ("100 connections send their request head one byte every 200 ms and 20 "
                  "POSTs their body likewise (slowloris: never idle for connection-timeout, "
                  "never done): the server closes each of them within 10 × connection-timeout, "
                  "while the healthy sessions keep their round trips going; the sessions of "
                  "the slow POSTs end by ping timeout");

  open = slow_clients (f, 200, &quiet, &last);
  if (open > 0)
    g_test_fail_printf ("%u of %u connections sending one byte every 200 ms are still open "
                        "after %u s (connection-timeout %u s)", open, N_SLOW,
                        CONNECTION_TIMEOUT_S * 10, CONNECTION_TIMEOUT_S);
  assert_recovered (f);
}

/* ------------------------------------------------------------------ */
/* Oversized requests                                                   */
/* ------------------------------------------------------------------ */

static guint
oversized (Fixture    *f,
           const char *request,
           gsize       length)
{
  g_autoptr(GByteArray) received = g_byte_array_new ();
  int fd = rel_tcp_connect (f->port);
  gboolean closed;

  g_assert_cmpint (fd, >=, 0);
  /* The server may answer and close before it has read everything. */
  rel_tcp_send (fd, request, length);
  closed = rel_tcp_wait_closed (fd, REL_WAIT_MS, received);
  close (fd);
  g_assert_true (closed);
  return rel_http_status_of (received);
}

static void
test_oversized_headers (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GString) big_header = g_string_new (NULL);
  g_autoptr(GString) many_headers = g_string_new (NULL);
  g_autoptr(GString) big_target = g_string_new ("/engine.io/?EIO=4&transport=polling&x=");
  g_autofree char *request = NULL;
  g_autofree char *value = NULL;
  guint64 handshakes = rel_server_handshakes (f->rs);
  guint status;

  g_test_summary ("A 64 KiB header, 4000 headers, a 64 KiB URL: libmicrohttpd refuses each "
                  "with a 4xx (431 for the headers, 414 for the URL) and closes the connection; "
                  "no session is made, nothing crashes, the healthy sessions go on");

  value = g_strnfill (64 * 1024, 'x');
  request = head_for (f, "GET", "/engine.io/?EIO=4&transport=polling", NULL);
  g_string_append_len (big_header, request, strlen (request) - 2);
  g_string_append_printf (big_header, "X-Big: %s\r\n\r\n", value);
  status = oversized (f, big_header->str, big_header->len);
  g_test_message ("64 KiB header: %u", status);
  g_assert_cmpuint (status, ==, 431);

  g_string_append_len (many_headers, request, strlen (request) - 2);
  for (guint i = 0; i < 4000; i++)
    g_string_append_printf (many_headers, "X-Header-%u: value %u\r\n", i, i);
  g_string_append (many_headers, "\r\n");
  status = oversized (f, many_headers->str, many_headers->len);
  g_test_message ("4000 headers (%u bytes): %u", (guint) many_headers->len, status);
  g_assert_cmpuint (status, ==, 431);

  g_string_append (big_target, value);
  g_clear_pointer (&request, g_free);
  request = head_for (f, "GET", big_target->str, NULL);
  status = oversized (f, request, strlen (request));
  g_test_message ("64 KiB URL: %u", status);
  g_assert_cmpuint (status, ==, 414);

  assert_healthy_progress (f, 5);
  g_assert_cmpuint (rel_server_handshakes (f->rs), ==, handshakes);
  assert_recovered (f);
}

/* ------------------------------------------------------------------ */
/* A flood of handshakes                                                */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint      port;
  RelErrors *errors;
} Flood;

static void
flood_thread (guint    index,
              gpointer data)
{
  enum { PER_THREAD = 1250 };
  Flood *flood = data;
  g_autoptr(TestHttp) http = test_http_new (flood->port);

  for (guint i = 0; i < PER_THREAD; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestResponse) response =
        test_http_request (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, -1,
                           REL_WAIT_MS, &error);

      if (response == NULL)
        rel_errors_add (flood->errors, "flood handshake: %s", error->message);
      else if (response->status != 200 ||
               g_bytes_get_size (response->body) < 2 ||
               memcmp (g_bytes_get_data (response->body, NULL), "0{", 2) != 0)
        rel_errors_add (flood->errors, "flood handshake answered %u", response->status);
    }
}

static void
test_handshake_flood (Fixture       *f,
                      gconstpointer  data)
{
  enum { N_THREADS = 8, N_HANDSHAKES = 10000 };
  g_autoptr(GError) error = NULL;
  Flood flood = { f->port, rel_errors_new () };
  guint healthy_before[N_HEALTHY];
  gint64 start, flooded, settled;

  g_test_summary ("10,000 polling handshakes from 8 threads, never polled again: every one "
                  "is answered with an open packet, the healthy sessions keep their round trips "
                  "going, and each abandoned session ends by “ping timeout”; then the sessions, "
                  "threads and descriptors are back to the baseline");

  for (guint i = 0; i < N_HEALTHY; i++)
    healthy_before[i] = rel_healthy_round_trips (f->healthy[i]);
  start = g_get_monotonic_time ();
  rel_parallel (N_THREADS, N_THREADS, flood_thread, &flood);
  flooded = g_get_monotonic_time ();
  for (guint i = 0; i < N_HEALTHY; i++)
    g_test_message ("healthy session %u: %u round trips during the flood, slowest so far %u ms", i,
                    rel_healthy_round_trips (f->healthy[i]) - healthy_before[i],
                    rel_healthy_max_ms (f->healthy[i]));
  rel_errors_report (flood.errors, 20);
  g_assert_cmpuint (rel_errors_count (flood.errors), ==, 0);
  for (guint i = 0; i < N_HEALTHY; i++)
    g_assert_cmpuint (rel_healthy_round_trips (f->healthy[i]) - healthy_before[i], >=, 1);

  if (!rel_server_wait_settled (f->rs, N_HEALTHY, 120 * 1000, &error))
    g_test_fail_printf ("sessions left: %s", error->message);
  settled = g_get_monotonic_time ();
  g_test_message ("%u handshakes in %.1f s; all timed out %.1f s later", N_HANDSHAKES,
                  (flooded - start) / 1e6, (settled - flooded) / 1e6);
  g_assert_cmpuint (rel_server_closes (f->rs, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT), ==, N_HANDSHAKES);
  g_assert_cmpuint (rel_server_total_closes (f->rs), ==, N_HANDSHAKES);
  rel_errors_free (flood.errors);
  assert_recovered (f);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();
  /* GLib makes its global default main context (an eventfd) the first
   * time a client needs it; make it now, before any baseline. */
  g_main_context_default ();

#define ADD(path, func, config) \
  g_test_add ("/reliability/faults/" path, Fixture, config, fixture_setup, func, fixture_teardown)
  ADD ("poll/reset", test_poll_reset, NULL);
  ADD ("poll/half-open", test_poll_half_open, NULL);
  ADD ("upgrade/reset-after-probe", test_upgrade_reset_after_probe, NULL);
  ADD ("upgrade/silent-after-probe", test_upgrade_silent_after_probe, NULL);
  ADD ("upgrade/mid-request", test_upgrade_mid_request, NULL);
  ADD ("websocket/reset-mid-frame", test_ws_reset_mid_frame, NULL);
  ADD ("websocket/silent-mid-frame", test_ws_silent_mid_frame, NULL);
  ADD ("shutdown/mid-handshake", test_shutdown_mid_handshake, &shutdown_config);
  ADD ("slowloris/stalled", test_slowloris_stalled, NULL);
  ADD ("slowloris/drip", test_slowloris_drip, NULL);
  ADD ("oversized-headers", test_oversized_headers, NULL);
  ADD ("handshake-flood", test_handshake_flood, &flood_config);
#undef ADD

  return g_test_run ();
}
