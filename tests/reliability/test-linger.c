/* test-linger.c: the WebSocket close handshake against clients that do
 * not play along (the lingering close after a protocol error, and the
 * close timer that bounds the whole handshake).
 *
 * - peer-close-behind-unread-output: a client that sends pings without
 *   reading the pongs, then its close frame, and never reads: our close
 *   reply waits behind the pongs. The connection (and the session, its
 *   max-sessions place, its thread, its descriptor) must end within the
 *   close timeout (3 s), not when the client lets go. Before the fix it
 *   was held for as long as the client liked: the peer's close queued our
 *   reply without the close timer, and the stall deadline and the
 *   heartbeat only asked for a close that was already queued.
 * - shutdown-peer-close-behind-unread-output: the same client, and the
 *   server shutting down: the shutdown is held 3 s at most (before the
 *   fix: its whole 10 s wait, with a warning).
 * - protocol-error-late-in-close: the application closes the session;
 *   2.8 s later the client sends a frame with a reserved bit set, then
 *   goes on sending: the lingering close that follows the protocol error
 *   must end at the close's 3 s deadline, not 1 s after the error (before
 *   the fix the linger replaced the close timer: 3.8 s).
 * - linger-flood: clients that break the protocol and then flood what
 *   they send, never closing: each connection ends within the linger
 *   (1 s), and a healthy session on the same server (with two shared
 *   loop threads: on the same threads) keeps echoing meanwhile.
 *
 * - shutdown-during-linger: a server shutting down while such clients
 *   flood: the shutdown waits for the linger (1 s) at most, one ::close
 *   each.
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relutil.h"

/* The server's close handshake bound (CLOSE_TIMEOUT_MS in
 * engineio-websocket.c) and its linger (LINGER_MS). */
#define CLOSE_TIMEOUT_MS 3000
#define LINGER_MS 1000

#define PING_INTERVAL_MS 500
#define PING_TIMEOUT_MS 500

typedef struct
{
  RelServer *rs;
  guint      port;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->rs = rel_server_new ();
  g_object_set (f->rs->lb.server,
                "ping-interval", GPOINTER_TO_UINT (data) != 0 ? PING_INTERVAL_MS : 20000,
                "ping-timeout", GPOINTER_TO_UINT (data) != 0 ? PING_TIMEOUT_MS : 20000,
                NULL);
  g_assert_true (rel_server_listen (f->rs));
  f->port = f->rs->lb.port;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->rs, rel_server_free);
  test_log_check ();
}

static guint16
port_of (struct sockaddr_storage *ss)
{
  if (ss->ss_family == AF_INET)
    return ntohs (((struct sockaddr_in *) ss)->sin_port);
  if (ss->ss_family == AF_INET6)
    return ntohs (((struct sockaddr_in6 *) ss)->sin6_port);
  return 0;
}

/* The server runs in this process: sets SO_SNDBUF of its end of @ws's
 * connection (every descriptor of it) to @size, as a host with a low
 * net.ipv4.tcp_wmem (or under memory pressure) would have it, so that
 * what the kernel holds for the client is small and known. Returns how
 * many descriptors were found. */
static guint
shrink_server_sndbuf (Fixture *f,
                      TestWs  *ws,
                      int      size)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (test_ws_get_socket (ws), NULL);
  guint16 client_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  DIR *dir = opendir ("/proc/self/fd");
  struct dirent *entry;
  guint found = 0;

  g_assert_nonnull (dir);
  while ((entry = readdir (dir)) != NULL)
    {
      struct sockaddr_storage name, peer;
      socklen_t name_len = sizeof name, peer_len = sizeof peer;
      struct stat st;
      int fd;

      if (entry->d_name[0] == '.')
        continue;
      fd = atoi (entry->d_name);
      if (fd == dirfd (dir) || fstat (fd, &st) != 0 || !S_ISSOCK (st.st_mode))
        continue;
      if (getsockname (fd, (struct sockaddr *) &name, &name_len) != 0 ||
          getpeername (fd, (struct sockaddr *) &peer, &peer_len) != 0)
        continue;
      if (port_of (&name) != f->port || port_of (&peer) != client_port)
        continue;
      g_assert_cmpint (setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), ==, 0);
      found++;
    }
  closedir (dir);
  return found;
}

/* Waits for @sid's ::close; the ms it took from @since (monotonic µs),
 * or -1 if it did not come within @timeout_ms. */
static gint64
wait_close_ms (Fixture    *f,
               const char *sid,
               gint64      since,
               guint       timeout_ms)
{
  if (rel_server_wait_reason (f->rs, sid, timeout_ms) < 0)
    return -1;
  return (g_get_monotonic_time () - since) / 1000;
}

/* ------------------------------------------------------------------ */

/* Pings whose pongs are more than the kernel holds for the client (its
 * receive buffer and our send buffer, both small here) and less than the
 * adapter's wire queue takes (256 KiB): the close reply goes on the wire
 * queue, behind pongs that are never read. */
#define STUCK_PINGS 1000

/* Opens a direct WebSocket session (its sid in @out_sid) and sends
 * STUCK_PINGS pings and a close frame, reading nothing but the open
 * packet; the server's end of the connection gets a small send buffer. */
static TestWs *
open_stuck_closer (Fixture  *f,
                   char    **out_sid)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWsFrame) open = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  guint8 payload[125];
  const guint8 close_payload[2] = { 1000 >> 8, 1000 & 0xff };

  {
    g_autofree char *target = test_eio_target (4, "websocket", NULL);
    ws = test_ws_connect (f->port, target, NULL, 4096, NULL, &error);
    g_assert_no_error (error);
  }
  open = test_ws_read_frame (ws, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  {
    g_autofree char *text = test_ws_frame_dup_text (open);
    g_autoptr(TestOpenPacket) packet = test_open_packet_parse (text + 1, &error);
    g_assert_no_error (error);
    *out_sid = g_strdup (packet->sid);
  }
  g_assert_cmpuint (shrink_server_sndbuf (f, ws, 4096), >, 0);

  memset (payload, 'p', sizeof payload);
  for (guint i = 0; i < STUCK_PINGS; i++)
    test_ws_append_frame (out, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_PING), TRUE, payload, sizeof payload);
  test_ws_append_frame (out, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_CLOSE), TRUE,
                        close_payload, sizeof close_payload);
  g_assert_true (test_ws_send_raw (ws, out->data, out->len, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&ws);
}

static void
test_peer_close_behind_unread_output (Fixture       *f,
                                      gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  gint64 sent_at, took;

  g_test_summary ("A client sends pings without reading the pongs, then its close frame, "
                  "and never reads: the server's close reply waits behind the pongs; the "
                  "connection and the session end within the close timeout (3 s), not when "
                  "the client lets go (heartbeat and stall deadline pass meanwhile)");

  ws = open_stuck_closer (f, &sid);
  sent_at = g_get_monotonic_time ();

  /* The client holds on, reading nothing, for longer than a correct
   * server takes. */
  took = wait_close_ms (f, sid, sent_at, CLOSE_TIMEOUT_MS + test_scaled_ms (3000));
  g_test_message ("the session ended %" G_GINT64_FORMAT " ms after the client's close", took);
  g_assert_cmpint (took, >=, 0);
}

static void
test_shutdown_peer_close_behind_unread_output (Fixture       *f,
                                               gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  gint64 sent_at, took;

  g_test_summary ("The same client, and the server shutting down at once: the shutdown "
                  "waits for the close timeout (3 s) at most, not its 10 s (with a warning)");

  ws = open_stuck_closer (f, &sid);
  sent_at = g_get_monotonic_time ();
  engine_io_server_close (f->rs->lb.server);
  took = (g_get_monotonic_time () - sent_at) / 1000;
  g_test_message ("the shutdown took %" G_GINT64_FORMAT " ms", took);
  g_assert_cmpint (rel_server_reason (f->rs, sid), >=, 0);
  g_assert_cmpint (took, <=, CLOSE_TIMEOUT_MS + test_scaled_ms (3000));
}

/* ------------------------------------------------------------------ */

#define LATE_ERROR_MS 2800

static void
test_protocol_error_late_in_close (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  gint64 close_read_at, took = -1;
  gint code;
  const guint8 junk[64] = { 0 };

  g_test_summary ("The application closes a WebSocket session; 2.8 s later the client "
                  "breaks the protocol (a reserved bit) and goes on sending: the lingering "
                  "close ends at the close's 3 s deadline, not 1 s after the error");

  ws = rel_ws_open (f->port, &sid, &error);
  g_assert_no_error (error);
  g_assert_true (rel_ws_send (ws, "4close-me", &error));
  g_assert_no_error (error);
  code = test_ws_read_close (ws, REL_WAIT_MS, NULL);
  close_read_at = g_get_monotonic_time ();
  g_assert_cmpint (code, ==, 1000);

  g_usleep (LATE_ERROR_MS * 1000);
  {
    g_autoptr(GByteArray) bad = g_byte_array_new ();

    test_ws_append_frame (bad, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_TEXT), TRUE, "x", 1);
    /* Late already (a loaded machine): the server may be gone. */
    test_ws_send_raw (ws, bad->data, bad->len, NULL);
  }
  /* Goes on sending (the linger waits for EOF) until the server is gone. */
  while ((g_get_monotonic_time () - close_read_at) / 1000 < CLOSE_TIMEOUT_MS + test_scaled_ms (5000))
    {
      if (rel_server_reason (f->rs, sid) >= 0)
        {
          took = (g_get_monotonic_time () - close_read_at) / 1000;
          break;
        }
      test_ws_send_raw (ws, junk, sizeof junk, NULL);
      g_usleep (20 * 1000);
    }
  g_test_message ("the session ended %" G_GINT64_FORMAT " ms after its close frame was read",
                  took);
  g_assert_cmpint (took, >=, 0);
  /* The close timer started before the close frame was written. */
  g_assert_cmpint (took, <=, CLOSE_TIMEOUT_MS + test_scaled_ms (500));
}

/* ------------------------------------------------------------------ */

#define FLOODERS 6
#define FLOOD_CHUNK (64 * 1024)

typedef struct
{
  Fixture   *f;
  RelErrors *errors;
  gint64     max_ms;  /* (atomic via lock) the longest linger seen */
  GMutex     lock;
} Flood;

static void
flood_one (guint    index,
           gpointer data)
{
  Flood *flood = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  g_autofree guint8 *junk = g_malloc0 (FLOOD_CHUNK);
  g_autoptr(GByteArray) bad = g_byte_array_new ();
  gint64 start, took = -1;
  int fd;

  ws = rel_ws_open (flood->f->port, &sid, &error);
  if (ws == NULL)
    {
      rel_errors_add (flood->errors, "flooder %u: %s", index, error->message);
      return;
    }
  fd = g_socket_get_fd (test_ws_get_socket (ws));
  test_ws_append_frame (bad, TEST_WS_FIRST_BYTE (TRUE, 2, TEST_WS_TEXT), TRUE, "x", 1);
  if (!test_ws_send_raw (ws, bad->data, bad->len, &error))
    {
      rel_errors_add (flood->errors, "flooder %u: %s", index, error->message);
      return;
    }
  start = g_get_monotonic_time ();
  /* Floods (never reading, never closing) until the server is gone. */
  while ((g_get_monotonic_time () - start) / 1000 < LINGER_MS + test_scaled_ms (5000))
    {
      ssize_t r = send (fd, junk, FLOOD_CHUNK, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        break;  /* reset: the server closed */
      if (rel_server_reason (flood->f->rs, sid) >= 0)
        break;
      if (r < 0)
        g_usleep (1000);
    }
  if (rel_server_wait_reason (flood->f->rs, sid, REL_WAIT_MS) < 0)
    {
      rel_errors_add (flood->errors, "flooder %u: the session did not end", index);
      return;
    }
  took = (g_get_monotonic_time () - start) / 1000;
  g_mutex_lock (&flood->lock);
  flood->max_ms = MAX (flood->max_ms, took);
  g_mutex_unlock (&flood->lock);
}

static void
test_linger_flood (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  RelHealthy *healthy;
  Flood flood = { f, rel_errors_new (), 0, };
  g_autofree char *healthy_error = NULL;
  guint before;

  g_test_summary ("Clients break the protocol, then flood (never reading, never closing): "
                  "each connection ends within the linger (1 s), and a healthy WebSocket "
                  "session on the same server keeps echoing meanwhile");

  g_mutex_init (&flood.lock);
  healthy = rel_healthy_start (f->port, REL_HEALTHY_WEBSOCKET, &error);
  g_assert_no_error (error);
  g_assert_true (rel_healthy_wait_more (healthy, 5, REL_WAIT_MS));
  before = rel_healthy_round_trips (healthy);

  for (guint round = 0; round < 3; round++)
    rel_parallel (FLOODERS, FLOODERS, flood_one, &flood);

  g_assert_true (rel_healthy_wait_more (healthy, 5, REL_WAIT_MS));
  g_test_message ("longest linger %" G_GINT64_FORMAT " ms; healthy: %u round trips meanwhile, "
                  "slowest %u ms", flood.max_ms, rel_healthy_round_trips (healthy) - before,
                  rel_healthy_max_ms (healthy));
  healthy_error = rel_healthy_stop (healthy, TRUE);
  g_assert_null (healthy_error);
  rel_errors_report (flood.errors, 10);
  rel_errors_free (flood.errors);
  g_mutex_clear (&flood.lock);
  g_assert_cmpint (flood.max_ms, <=, LINGER_MS + test_scaled_ms (1500));
  g_assert_true (rel_server_wait_settled (f->rs, 0, REL_WAIT_MS, &error));
  g_assert_no_error (error);
}

/* ------------------------------------------------------------------ */

typedef struct
{
  TestWs   *ws;
  gint      stop;   /* atomic */
  GThread  *thread;
} Flooder;

static gpointer
flooder_thread (gpointer data)
{
  Flooder *fl = data;
  int fd = g_socket_get_fd (test_ws_get_socket (fl->ws));
  g_autofree guint8 *junk = g_malloc0 (FLOOD_CHUNK);

  while (!g_atomic_int_get (&fl->stop))
    {
      ssize_t r = send (fd, junk, FLOOD_CHUNK, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        break;
      if (r < 0)
        g_usleep (1000);
    }
  return NULL;
}

static void
test_shutdown_during_linger (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  Flooder flooders[FLOODERS];
  char *sids[FLOODERS];
  gint64 start, took;

  g_test_summary ("A server shutting down while connections linger after a protocol error, "
                  "their clients flooding: the shutdown is held by the linger (1 s) at most, "
                  "and every session ends with one ::close");

  for (guint i = 0; i < FLOODERS; i++)
    {
      g_autoptr(GByteArray) bad = g_byte_array_new ();

      flooders[i].ws = rel_ws_open (f->port, &sids[i], &error);
      g_assert_no_error (error);
      flooders[i].stop = 0;
      test_ws_append_frame (bad, TEST_WS_FIRST_BYTE (TRUE, 1, TEST_WS_BINARY), TRUE, "x", 1);
      g_assert_true (test_ws_send_raw (flooders[i].ws, bad->data, bad->len, &error));
      g_assert_no_error (error);
      flooders[i].thread = g_thread_new ("flooder", flooder_thread, &flooders[i]);
    }
  /* Each client gets its close frame (the linger has begun). */
  for (guint i = 0; i < FLOODERS; i++)
    g_assert_cmpint (test_ws_read_close (flooders[i].ws, REL_WAIT_MS, NULL), ==, 1002);

  start = g_get_monotonic_time ();
  engine_io_server_close (f->rs->lb.server);
  took = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("the shutdown took %" G_GINT64_FORMAT " ms", took);

  for (guint i = 0; i < FLOODERS; i++)
    {
      g_atomic_int_set (&flooders[i].stop, 1);
      g_thread_join (flooders[i].thread);
      g_assert_cmpint (rel_server_reason (f->rs, sids[i]), >=, 0);
      g_clear_pointer (&flooders[i].ws, test_ws_free);
      g_free (sids[i]);
    }
  g_assert_cmpuint (rel_server_repeated (f->rs), ==, 0);
  g_assert_cmpint (took, <=, LINGER_MS + test_scaled_ms (1500));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add ("/reliability/linger/peer-close-behind-unread-output", Fixture, GUINT_TO_POINTER (1),
              fixture_setup, test_peer_close_behind_unread_output, fixture_teardown);
  g_test_add ("/reliability/linger/shutdown-peer-close-behind-unread-output", Fixture, GUINT_TO_POINTER (1),
              fixture_setup, test_shutdown_peer_close_behind_unread_output, fixture_teardown);
  g_test_add ("/reliability/linger/protocol-error-late-in-close", Fixture, GUINT_TO_POINTER (0),
              fixture_setup, test_protocol_error_late_in_close, fixture_teardown);
  g_test_add ("/reliability/linger/linger-flood", Fixture, GUINT_TO_POINTER (0),
              fixture_setup, test_linger_flood, fixture_teardown);
  g_test_add ("/reliability/linger/shutdown-during-linger", Fixture, GUINT_TO_POINTER (0),
              fixture_setup, test_shutdown_during_linger, fixture_teardown);

  return g_test_run ();
}
