/* test-close-races.c: sessions closed while their last poll, their
 * upgrade probe or the server's shutdown are under way (adversarial
 * review of the close-during-upgrade linger, the linger's claim and the
 * refcounted loop pool).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"

/* The application's side: the last session opened. */
typedef struct
{
  GMutex          lock;
  EngineIOSocket *last;  /* (lock) (owned) */
} Sessions;

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Sessions *s = user_data;

  g_mutex_lock (&s->lock);
  g_clear_object (&s->last);
  s->last = g_object_ref (socket);
  g_mutex_unlock (&s->lock);
}

static EngineIOSocket *
sessions_take (Sessions *s)
{
  EngineIOSocket *socket;

  g_mutex_lock (&s->lock);
  socket = g_steal_pointer (&s->last);
  g_mutex_unlock (&s->lock);
  return socket;
}

/* A TCP connection to @port whose receive window is tiny: what the server
 * writes to it stalls once the server's send buffer is full. */
static int
tcp_connect_small_window (guint port)
{
  struct sockaddr_in address = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int size = 4096;

  if (fd < 0)
    return -1;
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  address.sin_family = AF_INET;
  address.sin_port = htons ((guint16) port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) != 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

#define BIG_MESSAGES 6
#define BIG_MESSAGE_SIZE (1024 * 1024)

/* Queues BIG_MESSAGES messages of a MiB: more than loopback's socket
 * buffers hold, so a client that does not read stalls the response. */
static gboolean
queue_big_messages (EngineIOSocket *socket)
{
  g_autofree char *text = g_malloc (BIG_MESSAGE_SIZE + 1);

  memset (text, 'x', BIG_MESSAGE_SIZE);
  text[BIG_MESSAGE_SIZE] = '\0';
  for (guint i = 0; i < BIG_MESSAGES; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!engine_io_socket_send_text (socket, text, &error))
        {
          g_test_message ("send %u: %s", i, error->message);
          return FALSE;
        }
    }
  return TRUE;
}

/* The server of most cases here: its sessions recorded in @s, the
 * client's heartbeat out of the way (ping-interval 20 s), @ping_timeout_ms
 * (a closing polling session's linger is MIN (2 s, ping-timeout));
 * listening. FALSE: it could not listen. */
static gboolean
linger_server_listen (RelServer *rs,
                      Sessions  *s,
                      guint      ping_timeout_ms)
{
  g_mutex_init (&s->lock);
  g_object_set (rs->lb.server, "ping-interval", 20000, "ping-timeout", ping_timeout_ms, NULL);
  g_signal_connect (rs->lb.server, "connection", G_CALLBACK (on_connection), s);
  return rel_server_listen (rs);
}

/* A session with megabytes queued when the server shuts down; its client
 * sends its last poll within the linger and never reads the answer. */
static void
test_stalled_last_poll_shutdown (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *request = NULL;
  gint64 start;
  gint64 took_ms;
  gint reason;
  int fd;

  g_test_summary ("The server shuts down while a polling session has megabytes queued; the "
                  "client's last poll comes within the linger (2 s) and is never read: the "
                  "session ends 2 s after the linger (what the poll carries reported not "
                  "delivered), so one client that does not read does not hold the shutdown "
                  "for its 10 s wait (it did, with a warning, until libmicrohttpd's "
                  "connection timeout or the daemon's stop)");

  test_require (linger_server_listen (rs, &s, 20000));

  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = sessions_take (&s);
  test_require (socket != NULL);
  test_require (queue_big_messages (socket));

  fd = tcp_connect_small_window (rs->lb.port);
  test_require (fd >= 0);

  start = g_get_monotonic_time ();
  engine_io_server_close_async (rs->lb.server, NULL, NULL, NULL);
  /* The client's last poll, within the linger (once the shutdown has
   * reached the session: a poll that came first would just carry the
   * queue); never read. */
  g_usleep (200 * 1000);
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);
  test_require (rel_tcp_send (fd, request, strlen (request)));

  /* 2 s of linger, 2 s more for the poll's write, then the session
   * ends; 8 s is below the shutdown's 10 s wait for its sessions. */
  reason = rel_server_wait_reason (rs, poll->sid, test_scaled_ms (8000));
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("session ended after %" G_GINT64_FORMAT " ms", took_ms);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);

  g_clear_object (&socket);
  rel_server_free (rs);
  close (fd);
  g_mutex_clear (&s.lock);
  /* No "still pending after 10 s" from the shutdown. */
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* A probe kept through the close (`3probe` sent, then the application  */
/* closes the session)                                                   */
/* ------------------------------------------------------------------ */

typedef struct
{
  int sent;     /* (atomic) callbacks with TRUE */
  int unsent;   /* (atomic) callbacks with FALSE */
} SendCounts;

static void
on_sent (EngineIOSocket *socket,
         gboolean        flushed,
         gpointer        user_data)
{
  SendCounts *counts = user_data;

  g_atomic_int_inc (flushed ? &counts->sent : &counts->unsent);
}

static gboolean
wait_counts_once (SendCounts *counts,
                  guint       n)
{
  for (guint i = 0; i < 500 && g_atomic_int_get (&counts->sent) + g_atomic_int_get (&counts->unsent) < (int) n; i++)
    g_usleep (10 * 1000);
  g_usleep (50 * 1000);
  return g_atomic_int_get (&counts->sent) + g_atomic_int_get (&counts->unsent) == (int) n;
}

/* A polling session, its probe answered (`3probe`: polls now get `6`);
 * @n_messages of @size bytes queued with on_sent(), then the application
 * closes it. */
static TestWs *
probe_then_close (RelServer   *rs,
                  Sessions    *s,
                  RelPoll    **out_poll,
                  guint        n_messages,
                  gsize        size,
                  SendCounts  *counts)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_malloc (size + 1);

  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require_val (poll != NULL, NULL);
  socket = sessions_take (s);
  test_require_val (socket != NULL, NULL);
  ws = test_eio_probe (rs->lb.port, 4, poll->sid);
  test_require_val (ws != NULL, NULL);

  memset (text, 'q', size);
  text[size] = '\0';
  for (guint i = 0; i < n_messages; i++)
    {
      test_require_val (engine_io_socket_send_text_full (socket, text, on_sent, counts, NULL, &error), NULL);
      g_assert_no_error (error);
    }
  engine_io_socket_close (socket);
  *out_poll = g_steal_pointer (&poll);
  return g_steal_pointer (&ws);
}

static void
test_kept_probe_upgrade_never_read (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  SendCounts counts = { 0, 0 };
  gint reason;

  g_test_summary ("A session closed during its upgrade with 6 MB queued; the client sends "
                  "`5` on the kept probe and never reads: the session still ends within the "
                  "WebSocket close's bound, and every send callback is called exactly once");
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, BIG_MESSAGES, BIG_MESSAGE_SIZE, &counts);
  test_require (ws != NULL);
  g_usleep (200 * 1000);  /* the close reached the session */
  test_require (test_ws_send_text (ws, "5"));

  reason = rel_server_wait_reason (rs, poll->sid, test_scaled_ms (10000));
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  rel_server_free (rs);
  g_test_message ("sent %d, not sent %d", g_atomic_int_get (&counts.sent),
                  g_atomic_int_get (&counts.unsent));
  g_assert_cmpint (g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent), ==, BIG_MESSAGES);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

static void
test_kept_probe_bad_packet (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  SendCounts counts = { 0, 0 };
  g_autofree char *got = NULL;
  gint reason;
  gint code;

  g_test_summary ("A session closed during its upgrade; its kept probe sends a second "
                  "`2probe` instead of `5`: the probe is closed (1002), the next poll gets "
                  "what was queued and `1`, the session ends once with `forced close`");
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
  test_require (ws != NULL);
  g_usleep (200 * 1000);
  test_require (test_ws_send_text (ws, "2probe"));
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, ==, 1002);

  got = rel_poll_next (poll, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got, ==, "4qqq");
  reason = rel_server_wait_reason (rs, poll->sid, TEST_TIMEOUT_MS);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  rel_server_free (rs);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

static void
on_closed_async (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  int *done = user_data;

  engine_io_server_close_finish (ENGINE_IO_SERVER (source), result, NULL);
  g_atomic_int_set (done, 1);
}

static void
test_kept_probe_server_close (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  g_autoptr(GMainContext) context = g_main_context_new ();
  SendCounts counts = { 0, 0 };
  gboolean got = FALSE;
  gint64 deadline;
  int done = 0;
  gint code;

  g_test_summary ("A session closed during its upgrade; the server shuts down while it "
                  "lingers, and the client's `5` comes during the shutdown: the queued "
                  "message comes on the WebSocket, then a close frame; the shutdown ends "
                  "well within its 10 s wait");
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
  test_require (ws != NULL);
  g_usleep (200 * 1000);
  g_main_context_push_thread_default (context);
  engine_io_server_close_async (rs->lb.server, NULL, on_closed_async, &done);
  g_main_context_pop_thread_default (context);
  g_usleep (100 * 1000);
  test_require (test_ws_send_text (ws, "5"));
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, frames);
  g_assert_cmpint (code, ==, 1000);
  for (guint i = 0; i < frames->len; i++)
    {
      g_autofree char *text = test_ws_frame_dup_text (g_ptr_array_index (frames, i));
      got |= g_strcmp0 (text, "4qqq") == 0;
    }
  g_assert_true (got);
  test_ws_send_close (ws, 1000);
  g_assert_cmpint (rel_server_wait_reason (rs, poll->sid, TEST_TIMEOUT_MS), ==,
                   ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  deadline = g_get_monotonic_time () + test_scaled_ms (8000) * G_TIME_SPAN_MILLISECOND;
  while (!g_atomic_int_get (&done) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, FALSE) || (g_usleep (5000), TRUE);
  g_assert_true (g_atomic_int_get (&done));
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

static void
test_kept_probe_linger_expires (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  SendCounts counts = { 0, 0 };
  gint64 start;
  gint code;

  g_test_summary ("A session closed during its upgrade whose client neither polls nor sends "
                  "`5`: the session ends when the linger does (2 s), the probe is closed, "
                  "the queued message is reported not delivered, once");
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
  test_require (ws != NULL);
  start = g_get_monotonic_time ();
  g_assert_cmpint (rel_server_wait_reason (rs, poll->sid, test_scaled_ms (6000)), ==,
                   ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_test_message ("ended after %" G_GINT64_FORMAT " ms", (g_get_monotonic_time () - start) / 1000);
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, !=, -3);
  rel_server_free (rs);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* The same without a shutdown: the close's own bound, connection-timeout
 * (2 s here) after the linger, ends the session at the latest; the probe
 * kept is freed with it. */
static void
test_kept_probe_last_poll_unread (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *request = NULL;
  SendCounts counts = { 0, 0 };
  gint64 start, took_ms;
  int fd;

  g_test_summary ("A session closed during its upgrade with 6 MB queued; its client sends its "
                  "last poll (not `5`) and never reads it: the session ends connection-timeout "
                  "(2 s) after the linger (2 s) at most, every callback FALSE once, the probe "
                  "closed");
  g_object_set (rs->lb.server, "upgrade-timeout", 60000, "connection-timeout", 2u, NULL);
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, BIG_MESSAGES, BIG_MESSAGE_SIZE, &counts);
  test_require (ws != NULL);
  start = g_get_monotonic_time ();
  fd = tcp_connect_small_window (rs->lb.port);
  test_require (fd >= 0);
  g_usleep (200 * 1000);
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);
  test_require (rel_tcp_send (fd, request, strlen (request)));

  g_assert_cmpint (rel_server_wait_reason (rs, poll->sid, test_scaled_ms (8000)), ==,
                   ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("session ended %" G_GINT64_FORMAT " ms after the close", took_ms);
  /* libmicrohttpd's inactivity timeout (the same 2 s) may end the stalled
   * write first; the bound is there for a client that reads a little. */
  g_assert_cmpint (took_ms, <, 2000 + 2000 + 1500);
  g_assert_true (wait_counts_once (&counts, BIG_MESSAGES));
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, BIG_MESSAGES);
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), !=, -3);

  rel_server_free (rs);
  close (fd);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* The kept probe is a WebSocket, but the close does not wait for it:
 * the last poll came (the `5` did not), and its response is never read.
 * A server shutdown must bound that write as it does without a probe. */
static void
test_kept_probe_last_poll_unread_shutdown (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autofree char *request = NULL;
  SendCounts counts = { 0, 0 };
  gint64 start, took_ms, shutdown_ms;
  int done = 0;
  gint reason;
  int fd;

  g_test_summary ("A session closed during its upgrade with 6 MB queued; its client sends "
                  "its last poll (not `5`) and never reads it; after the linger the server "
                  "shuts down: the session ends 2 s later (the shutdown's bound on the "
                  "write), not when the close's own bound (connection-timeout) or the "
                  "shutdown's 10 s wait runs out (the probe kept for `5` made the "
                  "shutdown take it for a WebSocket with its own close timeout)");
  g_object_set (rs->lb.server, "upgrade-timeout", 60000, NULL);
  test_require (linger_server_listen (rs, &s, 20000));

  ws = probe_then_close (rs, &s, &poll, BIG_MESSAGES, BIG_MESSAGE_SIZE, &counts);
  test_require (ws != NULL);
  fd = tcp_connect_small_window (rs->lb.port);
  test_require (fd >= 0);
  g_usleep (200 * 1000);  /* the close reached the session: it lingers */
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);
  test_require (rel_tcp_send (fd, request, strlen (request)));

  /* The linger (2 s from the close) ends with the poll being written:
   * its write is bound by connection-timeout (30 s). */
  g_usleep (2500 * 1000);
  g_assert_cmpint (rel_server_reason (rs, poll->sid), ==, -1);

  start = g_get_monotonic_time ();
  g_main_context_push_thread_default (context);
  engine_io_server_close_async (rs->lb.server, NULL, on_closed_async, &done);
  g_main_context_pop_thread_default (context);
  reason = rel_server_wait_reason (rs, poll->sid, test_scaled_ms (8000));
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("session ended %" G_GINT64_FORMAT " ms after the shutdown began", took_ms);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  {
    gint64 deadline = g_get_monotonic_time () + test_scaled_ms (9000) * G_TIME_SPAN_MILLISECOND;

    while (!g_atomic_int_get (&done) && g_get_monotonic_time () < deadline)
      g_main_context_iteration (context, FALSE) || (g_usleep (5000), TRUE);
  }
  shutdown_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("shutdown took %" G_GINT64_FORMAT " ms", shutdown_ms);
  g_assert_true (g_atomic_int_get (&done));
  g_assert_cmpint (shutdown_ms, <, 8000);
  /* Every callback once; the poll's were not written. */
  g_assert_true (g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent) == BIG_MESSAGES);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);

  rel_server_free (rs);
  close (fd);
  g_mutex_clear (&s.lock);
  /* No "still pending after 10 s" from the shutdown. */
  test_log_check ();
}

/* The kept probe's `5` and a poll sent at the same moment: one of them
 * carries the queued message, exactly once. */
#define RACE_ROUNDS 40

static gpointer
send_upgrade_thread (gpointer data)
{
  TestWs *ws = data;

  /* May fail: the poll may have ended the session (and the probe) first. */
  test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, "5", 1, NULL);
  return NULL;
}

static void
test_kept_probe_upgrade_races_poll (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  guint via_ws = 0, via_poll = 0;

  g_test_summary ("A session closed during its upgrade; the client sends `5` on the kept "
                  "probe and a GET at the same moment, many times: the queued message comes "
                  "exactly once (on the WebSocket or the poll), its callback says TRUE once, "
                  "the session ends once with `forced close`");
  test_require (linger_server_listen (rs, &s, 20000));

  for (guint round = 0; round < RACE_ROUNDS; round++)
    {
      g_autoptr(RelPoll) poll = NULL;
      g_autoptr(TestWs) ws = NULL;
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GPtrArray) packets = NULL;
      g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
      g_autoptr(GError) error = NULL;
      SendCounts counts = { 0, 0 };
      GThread *thread;
      gboolean poll_got = FALSE, ws_got = FALSE;
      gint reason;
      gint code;

      ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
      test_require (ws != NULL);
      g_usleep (g_random_int_range (0, 50) * 1000);
      thread = g_thread_new ("upgrade", send_upgrade_thread, ws);
      test_require (rel_poll_send_get (poll, &error));
      g_thread_join (thread);

      response = test_http_receive (poll->http, TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      test_require (response != NULL);
      if (response->status == 200)
        {
          packets = test_eio_poll_packets (response, 4);
          test_require (packets != NULL);
          for (guint i = 0; i < packets->len; i++)
            if (g_strcmp0 (g_ptr_array_index (packets, i), "4qqq") == 0)
              poll_got = TRUE;
          if (packets->len == 1 && g_strcmp0 (g_ptr_array_index (packets, 0), "6") == 0)
            {
              /* engine_io_socket_close() is asynchronous: the poll came
               * before the close reached the session, which answered it
               * as any poll during an upgrade (seen under ASan with a
               * thread per session). The message then goes on the
               * WebSocket. */
              g_test_message ("round %u: the poll came before the close: a noop", round);
            }
          else
            g_assert_cmpstr (g_ptr_array_index (packets, packets->len - 1), ==, "1");
        }
      else
        {
          g_autofree char *body = test_response_text (response);
          g_test_message ("round %u: the poll got %u %s", round, response->status, body);
          g_assert_cmpuint (response->status, ==, 400);
        }

      code = test_ws_read_close (ws, TEST_TIMEOUT_MS, frames);
      g_assert_cmpint (code, !=, -3);
      for (guint i = 0; i < frames->len; i++)
        {
          g_autofree char *text = test_ws_frame_dup_text (g_ptr_array_index (frames, i));
          if (g_strcmp0 (text, "4qqq") == 0)
            ws_got = TRUE;
        }
      if (code >= -1)
        {
          guint8 payload[2] = { 1000 >> 8, 1000 & 0xff };
          test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, NULL);
        }
      g_assert_true (poll_got != ws_got);
      via_ws += ws_got;
      via_poll += poll_got;

      reason = rel_server_wait_reason (rs, poll->sid, TEST_TIMEOUT_MS);
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      /* The callback runs in the session's context, before or after ::close. */
      for (guint i = 0; i < 500 && g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent) == 0; i++)
        g_usleep (10 * 1000);
      g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
      g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
    }
  g_test_message ("delivered on the WebSocket %u times, on the poll %u times", via_ws, via_poll);
  {
    g_autoptr(GError) error = NULL;

    /* No session left behind (in CLOSING, in the table, in the gauge). */
    g_assert_true (rel_server_wait_settled (rs, 0, REL_WAIT_MS, &error));
    g_assert_no_error (error);
  }
  g_assert_cmpuint (rel_server_repeated (rs), ==, 0);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* The last poll at the linger's end                                    */
/* ------------------------------------------------------------------ */

#define LINGER_EDGE_ROUNDS 30
#define SHORT_LINGER_MS 300  /* the linger is MIN (2 s, ping-timeout) */

static void
test_last_poll_at_linger_end (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  guint got_last = 0, got_400 = 0;

  g_test_summary ("An application close with one message queued; the client's last poll comes "
                  "around the end of the linger (ping-timeout 300 ms shortens it), many times: "
                  "either the poll gets the message and `1` and its callback says TRUE, or it "
                  "gets 400 and the callback says FALSE; one ::close each, no session left");
  test_require (linger_server_listen (rs, &s, SHORT_LINGER_MS));

  for (guint round = 0; round < LINGER_EDGE_ROUNDS; round++)
    {
      g_autoptr(RelPoll) poll = NULL;
      g_autoptr(EngineIOSocket) socket = NULL;
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) error = NULL;
      SendCounts counts = { 0, 0 };
      gint reason;

      poll = rel_poll_open (rs->lb.port, &error);
      g_assert_no_error (error);
      test_require (poll != NULL);
      socket = sessions_take (&s);
      test_require (socket != NULL);
      test_require (engine_io_socket_send_text_full (socket, "m", on_sent, &counts, NULL, &error));
      engine_io_socket_close (socket);
      g_usleep ((SHORT_LINGER_MS - 40 + 3 * round) * 1000);
      test_require (rel_poll_send_get (poll, &error));
      response = test_http_receive (poll->http, TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      test_require (response != NULL);
      reason = rel_server_wait_reason (rs, poll->sid, TEST_TIMEOUT_MS);
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      for (guint i = 0; i < 300 && g_atomic_int_get (&counts.sent) + g_atomic_int_get (&counts.unsent) == 0; i++)
        g_usleep (10 * 1000);
      g_usleep (20 * 1000);
      if (response->status == 200)
        {
          g_autoptr(GPtrArray) packets = test_eio_poll_packets (response, 4);

          test_require (packets != NULL);
          g_assert_cmpuint (packets->len, ==, 2);
          g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4m");
          g_assert_cmpstr (g_ptr_array_index (packets, 1), ==, "1");
          g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
          g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
          got_last++;
        }
      else
        {
          g_assert_cmpuint (response->status, ==, 400);
          g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
          g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);
          got_400++;
        }
    }
  g_test_message ("the last poll got the message %u times, 400 %u times", got_last, got_400);
  {
    g_autoptr(GError) error = NULL;

    g_assert_true (rel_server_wait_settled (rs, 0, REL_WAIT_MS, &error));
    g_assert_no_error (error);
  }
  g_mutex_lock (&rs->lock);
  g_assert_cmpuint (rs->n_repeated, ==, 0);
  g_mutex_unlock (&rs->lock);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* The kept probe's `5` around the end of the linger. */
static void
test_kept_probe_upgrade_at_linger_end (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  guint via_ws = 0, lost = 0;

  g_test_summary ("A session closed during its upgrade; the kept probe's `5` comes around the "
                  "end of the linger (ping-timeout 300 ms shortens it), many times: either the "
                  "WebSocket carries the queued message and a close frame and the callback says "
                  "TRUE, or the probe is closed without it and the callback says FALSE; one "
                  "::close each, no session left");
  test_require (linger_server_listen (rs, &s, SHORT_LINGER_MS));

  for (guint round = 0; round < LINGER_EDGE_ROUNDS; round++)
    {
      g_autoptr(RelPoll) poll = NULL;
      g_autoptr(TestWs) ws = NULL;
      g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
      SendCounts counts = { 0, 0 };
      gboolean got = FALSE;
      gint code;

      ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
      test_require (ws != NULL);
      g_usleep ((SHORT_LINGER_MS - 40 + 3 * round) * 1000);
      /* May fail: the linger's end may have closed the probe first. */
      test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, "5", 1, NULL);
      code = test_ws_read_close (ws, TEST_TIMEOUT_MS, frames);
      for (guint i = 0; i < frames->len; i++)
        {
          g_autofree char *text = test_ws_frame_dup_text (g_ptr_array_index (frames, i));
          got |= g_strcmp0 (text, "4qqq") == 0;
        }
      if (code >= -1)
        {
          guint8 payload[2] = { 1000 >> 8, 1000 & 0xff };
          test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, NULL);
        }
      g_assert_cmpint (rel_server_wait_reason (rs, poll->sid, TEST_TIMEOUT_MS), ==,
                       ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      g_assert_true (wait_counts_once (&counts, 1));
      if (got)
        {
          g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
          via_ws++;
        }
      else
        {
          g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);
          lost++;
        }
    }
  g_test_message ("the WebSocket carried the message %u times, the linger ended first %u times", via_ws, lost);
  {
    g_autoptr(GError) error = NULL;

    g_assert_true (rel_server_wait_settled (rs, 0, REL_WAIT_MS, &error));
    g_assert_no_error (error);
  }
  g_mutex_lock (&rs->lock);
  g_assert_cmpuint (rs->n_repeated, ==, 0);
  g_mutex_unlock (&rs->lock);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* A WebSocket close the client never answers                          */
/* ------------------------------------------------------------------ */

/* The WebSocket's close handshake bound (engineio-websocket.c). */
#define WS_CLOSE_TIMEOUT_MS 3000

typedef enum
{
  WS_DIRECT,          /* a direct WebSocket session, closed by the application */
  WS_KEPT_PROBE,      /* a probe kept through the close, its `5` takes it */
  WS_KEPT_SHUTDOWN,   /* the same, and a server shutdown right after the `5` */
} WsCloseCase;

static void
test_ws_close_unanswered (gconstpointer data)
{
  WsCloseCase c = GPOINTER_TO_INT (data);
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GPtrArray) frames = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autofree char *sid = NULL;
  SendCounts counts = { 0, 0 };
  const char *expected;
  gboolean got = FALSE;
  gint64 start, took_ms;
  int done = 0;
  gint code;

  g_test_summary ("The server's close frame on a WebSocket (a direct session the application "
                  "closed, or a probe kept through the close whose `5` took it; a shutdown "
                  "meanwhile) is read with what was queued and never answered, the connection "
                  "left open: the session ends once, within the close handshake's bound (3 s), "
                  "the queued message reported delivered; the shutdown is not held longer");
  test_require (linger_server_listen (rs, &s, 20000));

  if (c == WS_DIRECT)
    {
      g_autoptr(EngineIOSocket) socket = NULL;
      g_autoptr(GError) error = NULL;

      ws = rel_ws_open (rs->lb.port, &sid, &error);
      g_assert_no_error (error);
      test_require (ws != NULL);
      socket = sessions_take (&s);
      test_require (socket != NULL);
      test_require (engine_io_socket_send_text_full (socket, "qqq", on_sent, &counts, NULL, &error));
      start = g_get_monotonic_time ();
      engine_io_socket_close (socket);
    }
  else
    {
      ws = probe_then_close (rs, &s, &poll, 1, 3, &counts);
      test_require (ws != NULL);
      sid = g_strdup (poll->sid);
      g_usleep (200 * 1000);  /* the close reached the session: it lingers */
      start = g_get_monotonic_time ();
      test_require (test_ws_send_text (ws, "5"));
      if (c == WS_KEPT_SHUTDOWN)
        {
          g_usleep (100 * 1000);
          g_main_context_push_thread_default (context);
          engine_io_server_close_async (rs->lb.server, NULL, on_closed_async, &done);
          g_main_context_pop_thread_default (context);
        }
    }

  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, frames);
  expected = "4qqq";
  for (guint i = 0; i < frames->len; i++)
    {
      g_autofree char *text = test_ws_frame_dup_text (g_ptr_array_index (frames, i));
      got |= g_strcmp0 (text, expected) == 0;
    }
  g_assert_true (got);
  g_assert_cmpint (code, ==, 1000);
  /* No reply: the connection stays open. */
  g_assert_cmpint (rel_server_wait_reason (rs, sid, test_scaled_ms (WS_CLOSE_TIMEOUT_MS + 3000)), ==,
                   ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("::close %" G_GINT64_FORMAT " ms after the close frame was asked for", took_ms);
  g_assert_cmpint (took_ms, <, WS_CLOSE_TIMEOUT_MS + 1500);
  g_assert_true (wait_counts_once (&counts, 1));
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
  if (c == WS_KEPT_SHUTDOWN)
    {
      gint64 deadline = g_get_monotonic_time () + test_scaled_ms (6000) * G_TIME_SPAN_MILLISECOND;

      while (!g_atomic_int_get (&done) && g_get_monotonic_time () < deadline)
        g_main_context_iteration (context, FALSE) || (g_usleep (5000), TRUE);
      g_assert_true (g_atomic_int_get (&done));
      g_test_message ("shutdown done %" G_GINT64_FORMAT " ms after the `5`",
                      (g_get_monotonic_time () - start) / 1000);
    }
  g_mutex_lock (&rs->lock);
  g_assert_cmpuint (rs->n_repeated, ==, 0);
  g_mutex_unlock (&rs->lock);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* The application drops the server without closing it                 */
/* ------------------------------------------------------------------ */

static void
test_drop_server_open_session (void)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  GWeakRef weak;
  guint port;
  guint threads = test_count_threads ();

  g_test_summary ("The application drops its server (no close) while a session is open; "
                  "the client then closes the session: the server is shut down and freed, "
                  "without aborting the process or running its daemon on a freed server");
  port = test_server_listen (server);
  test_require (port != 0);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);

  g_weak_ref_init (&weak, server);
  g_clear_object (&server);  /* the session holds it */
  g_assert_true (rel_poll_post (poll, "1", &error));
  g_assert_no_error (error);

  /* The last session lets go of the server (on its thread, or on
   * libmicrohttpd's, where the daemon cannot be stopped): the server is
   * shut down and freed all the same, and stops listening. (It stopped
   * the daemon from libmicrohttpd's own thread, which aborted the
   * process, or freed the server under the still running daemon: a use
   * after free at the next connection.) */
  {
    gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    EngineIOServer *alive;

    while ((alive = g_weak_ref_get (&weak)) != NULL && g_get_monotonic_time () < deadline)
      {
        g_object_unref (alive);
        g_usleep (10 * 1000);
      }
    g_assert_null (alive);
    g_clear_object (&alive);
  }
  /* (The weak reference is cleared as dispose starts: the shutdown
   * thread may still be closing it.) */
  {
    gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;

    while (!test_port_refuses (port) && g_get_monotonic_time () < deadline)
      g_usleep (10 * 1000);
    g_assert_true (test_port_refuses (port));
  }
  /* Its threads end (LeakSanitizer checks the server is freed). */
  g_assert_cmpuint (test_wait_count_at_most (test_count_threads, threads, REL_WAIT_MS), <=, threads);
  g_weak_ref_clear (&weak);
  test_log_check ();
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/reliability/close-races/stalled-last-poll/shutdown",
                   test_stalled_last_poll_shutdown);

  g_test_add_func ("/reliability/close-races/kept-probe/upgrade-never-read",
                   test_kept_probe_upgrade_never_read);
  g_test_add_func ("/reliability/close-races/kept-probe/bad-packet",
                   test_kept_probe_bad_packet);
  g_test_add_func ("/reliability/close-races/kept-probe/linger-expires",
                   test_kept_probe_linger_expires);
  g_test_add_func ("/reliability/close-races/kept-probe/server-close",
                   test_kept_probe_server_close);
  g_test_add_func ("/reliability/close-races/kept-probe/last-poll-unread",
                   test_kept_probe_last_poll_unread);
  g_test_add_func ("/reliability/close-races/kept-probe/last-poll-unread-shutdown",
                   test_kept_probe_last_poll_unread_shutdown);
  g_test_add_func ("/reliability/close-races/kept-probe/upgrade-races-poll",
                   test_kept_probe_upgrade_races_poll);
  g_test_add_func ("/reliability/close-races/last-poll/at-linger-end",
                   test_last_poll_at_linger_end);
  g_test_add_func ("/reliability/close-races/kept-probe/upgrade-at-linger-end",
                   test_kept_probe_upgrade_at_linger_end);
  g_test_add_data_func ("/reliability/close-races/ws-close-unanswered/direct",
                        GINT_TO_POINTER (WS_DIRECT), test_ws_close_unanswered);
  g_test_add_data_func ("/reliability/close-races/ws-close-unanswered/kept-probe",
                        GINT_TO_POINTER (WS_KEPT_PROBE), test_ws_close_unanswered);
  g_test_add_data_func ("/reliability/close-races/ws-close-unanswered/kept-probe-shutdown",
                        GINT_TO_POINTER (WS_KEPT_SHUTDOWN), test_ws_close_unanswered);
  g_test_add_func ("/reliability/close-races/drop-server/open-session",
                   test_drop_server_open_session);

  return g_test_run ();
}
