/* test-close-races3.c: a session the application closed while a poll
 * response is still being written, and a server shutdown after that
 * (adversarial review of "an application close that finds a poll response
 * still being written waits for its write").
 *
 * A client that never reads its poll response (or reads it slowly) must
 * not hold a server shutdown for the shutdown's whole 10 s wait: once the
 * shutdown reaches a session, whatever closed it first, the write gets
 * 2 s after the linger, as in a plain shutdown. Nor may a client that
 * reads its response a little at a time, often enough that
 * libmicrohttpd's connection timeout (for inactivity) never fires, hold
 * the closed session past connection-timeout after the linger.
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

#define BIG_MESSAGES 6
#define BIG_MESSAGE_SIZE (1024 * 1024)

/* Queues BIG_MESSAGES messages of a MiB with on_sent(): more than
 * loopback's socket buffers hold, so a client that does not read stalls
 * the response that carries them. */
static gboolean
queue_big_messages (EngineIOSocket *socket,
                    SendCounts     *counts)
{
  g_autofree char *text = g_malloc (BIG_MESSAGE_SIZE + 1);

  memset (text, 'x', BIG_MESSAGE_SIZE);
  text[BIG_MESSAGE_SIZE] = '\0';
  for (guint i = 0; i < BIG_MESSAGES; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!engine_io_socket_send_text_full (socket, text, on_sent, counts, NULL, &error))
        {
          g_test_message ("send %u: %s", i, error->message);
          return FALSE;
        }
    }
  return TRUE;
}

/* A GET for @target on a new connection whose receive window is tiny
 * (@size > 0, its SO_RCVBUF): what the server writes to it stalls once the
 * server's send buffer is full. */
static int
slow_get_full (guint       port,
               const char *target,
               int         size)
{
  g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
  struct sockaddr_in address = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;
  if (size > 0)
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  address.sin_family = AF_INET;
  address.sin_port = htons ((guint16) port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) != 0 ||
      !rel_tcp_send (fd, request, strlen (request)))
    {
      close (fd);
      return -1;
    }
  return fd;
}

static int
slow_get (guint       port,
          const char *target)
{
  return slow_get_full (port, target, 4096);
}

static gboolean
wait_counts (SendCounts *counts,
             guint       n,
             guint       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  while (g_atomic_int_get (&counts->sent) + g_atomic_int_get (&counts->unsent) < (int) n &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  return g_atomic_int_get (&counts->sent) + g_atomic_int_get (&counts->unsent) >= (int) n;
}

/* No session emitted ::close twice. */
static void
assert_closed_once (RelServer *rs)
{
  g_assert_cmpuint (rel_server_repeated (rs), ==, 0);
}

typedef enum
{
  POLL_BEFORE_CLOSE,  /* a poll took the queue while the session was open */
  POLL_IN_LINGER,     /* the last poll came within the linger */
  POLL_WAITING,       /* as POLL_BEFORE_CLOSE, and a second poll waits (it takes
                       * nothing while the first is written) with 6 MiB more
                       * queued: the close resumes it with them */
} PollWhen;

typedef enum
{
  SHUTDOWN_IN_LINGER,     /* 0.5 s after the application's close */
  SHUTDOWN_AFTER_LINGER,  /* 2.5 s after it: the session waits for the write */
  SHUTDOWN_ONLY,          /* no application close: the shutdown closes it */
} ShutdownWhen;

typedef struct
{
  PollWhen     poll;
  ShutdownWhen shutdown;
} Case;

/* The application closes a polling session (ping-timeout 20 s: a 2 s
 * linger) whose poll response (6 MiB) is never read; then the server shuts
 * down. The session must end 2 s after the later of the linger and the
 * shutdown at most, not at the end of the shutdown's 10 s wait. */
static void
test_app_close_then_shutdown (gconstpointer data)
{
  const Case *c = data;
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start, took_ms;
  gint reason;
  guint n_messages = c->poll == POLL_WAITING ? 2 * BIG_MESSAGES : BIG_MESSAGES;
  int fd = -1, fd2 = -1;

  g_test_summary ("The application closes a polling session while a poll response (6 MiB, "
                  "taken before the close, by the last poll within the linger, or by a poll "
                  "the close resumed) is never read; the server then shuts down (or only the "
                  "shutdown closes it): the session ends within 2 s after the linger and the "
                  "shutdown (4 s for a resumed poll), what the polls carry reported not "
                  "delivered, once; the client does not hold the shutdown for its 10 s wait "
                  "(it did: the first close's reason kept the shutdown's bound off, and a "
                  "resumed poll had no bound)");

  g_mutex_init (&s.lock);
  g_object_set (rs->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  g_signal_connect (rs->lb.server, "connection", G_CALLBACK (on_connection), &s);
  test_require (rel_server_listen (rs));

  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = sessions_take (&s);
  test_require (socket != NULL);
  test_require (queue_big_messages (socket, &counts));

  if (c->poll == POLL_BEFORE_CLOSE || c->poll == POLL_WAITING)
    {
      gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;

      fd = slow_get (rs->lb.port, poll->target);
      test_require (fd >= 0);
      while (engine_io_socket_get_send_queue_length (socket) > 0 && g_get_monotonic_time () < deadline)
        g_usleep (5 * 1000);
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);
    }
  if (c->poll == POLL_WAITING)
    {
      /* The second poll waits while the first is written: the next 6 MiB
       * stay queued. */
      fd2 = slow_get (rs->lb.port, poll->target);
      test_require (fd2 >= 0);
      g_usleep (300 * 1000);
      test_require (queue_big_messages (socket, &counts));
      g_usleep (100 * 1000);
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, BIG_MESSAGES);
    }

  start = g_get_monotonic_time ();
  if (c->shutdown != SHUTDOWN_ONLY)
    {
      engine_io_socket_close (socket);

      if (c->poll == POLL_IN_LINGER)
        {
          /* Once the close has reached the session. */
          g_usleep (200 * 1000);
          fd = slow_get (rs->lb.port, poll->target);
          test_require (fd >= 0);
        }

      g_usleep ((c->shutdown == SHUTDOWN_IN_LINGER ? 500 : 2500) * 1000 -
                (g_get_monotonic_time () - start));
      g_test_message ("session closed yet: %s", rel_server_reason (rs, poll->sid) >= 0 ? "yes" : "no");
    }

  start = g_get_monotonic_time ();
  engine_io_server_close_async (rs->lb.server, NULL, NULL, NULL);

  /* At most 2 s of linger left, 2 s more for the write, then the session
   * ends; 8 s is below the shutdown's 10 s wait for its sessions. */
  reason = rel_server_wait_reason (rs, poll->sid, test_scaled_ms (8000));
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("session ended %" G_GINT64_FORMAT " ms after the shutdown began", took_ms);
  g_assert_cmpint (reason, ==, c->shutdown == SHUTDOWN_ONLY ? ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN
                                                            : ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);

  /* Never read: every callback says FALSE, once. */
  g_assert_true (wait_counts (&counts, n_messages, REL_WAIT_MS));
  g_usleep (100 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, (int) n_messages);

  assert_closed_once (rs);
  g_clear_object (&socket);
  rel_server_free (rs);
  if (fd >= 0)
    close (fd);
  if (fd2 >= 0)
    close (fd2);
  g_mutex_clear (&s.lock);
  /* No "still pending after 10 s" from the shutdown. */
  test_log_check ();
}

/* The client of a closed session reads its poll response (24 MiB) at
 * 1 MiB/s: often enough that libmicrohttpd's connection timeout (2 s
 * here, for inactivity) never fires, slowly enough that the write would
 * take some 20 s. The session must end within connection-timeout after
 * the linger all the same (as the README says), reporting what was not
 * written FALSE, once. */
#define STEADY_TIMEOUT_S 2
#define STEADY_MESSAGES 16  /* what an open session's poll takes at most */
#define STEADY_MESSAGE_SIZE (3 * 512 * 1024)
#define STEADY_READ (256 * 1024)
#define STEADY_EVERY_MS 250

static void
test_app_close_steady_reader (gconstpointer data)
{
  PollWhen when = GPOINTER_TO_INT (data);
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_malloc (STEADY_MESSAGE_SIZE + 1);
  g_autofree guint8 *chunk = g_malloc (STEADY_READ);
  gint64 start, deadline, took_ms;
  gsize total = 0;
  gint reason = -1;
  guint n_messages = when == POLL_WAITING ? 2 * STEADY_MESSAGES : STEADY_MESSAGES;
  int fd = -1, stalled = -1;

  g_test_summary ("The application closes a polling session whose poll response (24 MiB, "
                  "taken before the close, by the last poll within the linger, or by a waiting "
                  "poll the close answers) its client "
                  "reads at 1 MiB/s, often enough that libmicrohttpd's idle timeout "
                  "(connection-timeout, 2 s) never fires: the session ends within the linger "
                  "and connection-timeout, each send callback FALSE once (it was held until "
                  "the write ended, some 20 s: its max-sessions place, its thread, its "
                  "::close)");

  g_mutex_init (&s.lock);
  g_object_set (rs->lb.server, "ping-interval", 20000, "ping-timeout", 20000,
                "connection-timeout", STEADY_TIMEOUT_S,
                "send-queue-high-water", (guint64) 64 * 1024 * 1024, NULL);
  g_signal_connect (rs->lb.server, "connection", G_CALLBACK (on_connection), &s);
  test_require (rel_server_listen (rs));

  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = sessions_take (&s);
  test_require (socket != NULL);
  memset (text, 'y', STEADY_MESSAGE_SIZE);
  text[STEADY_MESSAGE_SIZE] = '\0';
  for (guint i = 0; i < STEADY_MESSAGES; i++)
    {
      g_assert_true (engine_io_socket_send_text_full (socket, text, on_sent, &counts, NULL, &error));
      g_assert_no_error (error);
    }

  if (when == POLL_BEFORE_CLOSE || when == POLL_WAITING)
    {
      /* (POLL_WAITING: this poll is never read; the next waits, and the
       * close answers it with 24 MiB more: that one is read.) */
      deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
      fd = slow_get_full (rs->lb.port, poll->target, when == POLL_WAITING ? 4096 : 0);
      test_require (fd >= 0);
      while (engine_io_socket_get_send_queue_length (socket) > 0 && g_get_monotonic_time () < deadline)
        g_usleep (5 * 1000);
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);
    }
  if (when == POLL_WAITING)
    {
      stalled = fd;
      fd = slow_get_full (rs->lb.port, poll->target, 0);
      test_require (fd >= 0);
      g_usleep (300 * 1000);
      for (guint i = 0; i < STEADY_MESSAGES; i++)
        {
          g_assert_true (engine_io_socket_send_text_full (socket, text, on_sent, &counts, NULL, &error));
          g_assert_no_error (error);
        }
      g_usleep (100 * 1000);
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, STEADY_MESSAGES);
    }

  start = g_get_monotonic_time ();
  engine_io_socket_close (socket);
  if (when == POLL_IN_LINGER)
    {
      g_usleep (200 * 1000);
      fd = slow_get_full (rs->lb.port, poll->target, 0);
      test_require (fd >= 0);
    }

  /* The linger (2 s), connection-timeout, and a margin; the write at this
   * pace takes some 20 s. */
  deadline = start + test_scaled_ms (2000 + STEADY_TIMEOUT_S * 1000 + 5000) * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < deadline && (reason = rel_server_reason (rs, poll->sid)) < 0)
    {
      ssize_t n = recv (fd, chunk, STEADY_READ, MSG_DONTWAIT);

      if (n > 0)
        total += (gsize) n;
      else if (n == 0)
        break;
      g_usleep (STEADY_EVERY_MS * 1000);
    }
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("after %" G_GINT64_FORMAT " ms: %" G_GSIZE_FORMAT " bytes read, session %s",
                  took_ms, total, reason >= 0 ? "ended" : "still there");
  /* The reader kept the write going: far from done. */
  g_assert_cmpuint (total, <, STEADY_MESSAGES * STEADY_MESSAGE_SIZE / 2);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);

  /* Not written whole when the session ended: every callback says FALSE,
   * once, even when the write ends later. */
  g_assert_true (wait_counts (&counts, n_messages, REL_WAIT_MS));
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < deadline)
    {
      ssize_t n = recv (fd, chunk, STEADY_READ, 0);

      if (n <= 0 || (total += (gsize) n) >= STEADY_MESSAGES * (gsize) (STEADY_MESSAGE_SIZE + 2) - 1)
        break;
    }
  g_test_message ("%" G_GSIZE_FORMAT " bytes read in all", total);
  g_usleep (100 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, (int) n_messages);

  assert_closed_once (rs);
  g_clear_object (&socket);
  rel_server_free (rs);
  close (fd);
  if (stalled >= 0)
    close (stalled);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

/* The race between the linger's end and the end of the write: a poll
 * response (6 MiB) taken before the application's close is read whole
 * starting around the end of the 2 s linger, a little later each round.
 * Whether the write ends before the linger's timer, between the timer and
 * its claim, or after, the client got everything: every send callback
 * says TRUE, once, and the session ends once, soon after the write. */
#define RACE_ROUNDS 8

static void
test_inflight_linger_race (void)
{
  RelServer *rs = rel_server_new ();
  Sessions s = { 0, };

  g_test_summary ("A poll response (6 MiB) taken before the application's close, read whole "
                  "from around the end of the 2 s linger (a little later each round): every "
                  "send callback TRUE once, one ::close (forced close) soon after the write");

  g_mutex_init (&s.lock);
  g_object_set (rs->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  g_signal_connect (rs->lb.server, "connection", G_CALLBACK (on_connection), &s);
  test_require (rel_server_listen (rs));

  for (guint round = 0; round < RACE_ROUNDS; round++)
    {
      SendCounts counts = { 0, 0 };
      g_autoptr(RelPoll) poll = NULL;
      g_autoptr(EngineIOSocket) socket = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree guint8 *chunk = g_malloc (65536);
      gint64 start, deadline;
      gsize total = 0;
      gint reason;
      int fd;

      poll = rel_poll_open (rs->lb.port, &error);
      g_assert_no_error (error);
      test_require (poll != NULL);
      socket = sessions_take (&s);
      test_require (socket != NULL);
      test_require (queue_big_messages (socket, &counts));

      deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
      fd = slow_get (rs->lb.port, poll->target);
      test_require (fd >= 0);
      while (engine_io_socket_get_send_queue_length (socket) > 0 && g_get_monotonic_time () < deadline)
        g_usleep (5 * 1000);
      g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);

      start = g_get_monotonic_time ();
      engine_io_socket_close (socket);
      g_usleep ((1850 + 40 * round) * 1000);

      /* Everything, as fast as it comes. */
      deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
      while (total < BIG_MESSAGES * (gsize) (BIG_MESSAGE_SIZE + 2) - 1 && g_get_monotonic_time () < deadline)
        {
          ssize_t n = recv (fd, chunk, 65536, MSG_DONTWAIT);

          if (n > 0)
            total += (gsize) n;
          else if (n == 0)
            break;
          else
            g_usleep (1000);
        }
      reason = rel_server_wait_reason (rs, poll->sid, REL_WAIT_MS);
      g_test_message ("round %u: read %" G_GSIZE_FORMAT " bytes, session ended after %" G_GINT64_FORMAT " ms",
                      round, total, (g_get_monotonic_time () - start) / 1000);
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      g_assert_cmpuint (total, >=, BIG_MESSAGES * (gsize) (BIG_MESSAGE_SIZE + 2) - 1);
      g_assert_true (wait_counts (&counts, BIG_MESSAGES, REL_WAIT_MS));
      g_usleep (50 * 1000);
      g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
      g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, BIG_MESSAGES);
      close (fd);
    }

  assert_closed_once (rs);
  rel_server_free (rs);
  g_mutex_clear (&s.lock);
  test_log_check ();
}

static const Case cases[] = {
  { POLL_BEFORE_CLOSE, SHUTDOWN_IN_LINGER },
  { POLL_BEFORE_CLOSE, SHUTDOWN_AFTER_LINGER },
  { POLL_IN_LINGER, SHUTDOWN_IN_LINGER },
  { POLL_IN_LINGER, SHUTDOWN_AFTER_LINGER },
  { POLL_WAITING, SHUTDOWN_ONLY },
  { POLL_WAITING, SHUTDOWN_IN_LINGER },
};

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_data_func ("/reliability/close-races3/inflight-poll/shutdown-in-linger",
                        &cases[0], test_app_close_then_shutdown);
  g_test_add_data_func ("/reliability/close-races3/inflight-poll/shutdown-after-linger",
                        &cases[1], test_app_close_then_shutdown);
  g_test_add_data_func ("/reliability/close-races3/last-poll/shutdown-in-linger",
                        &cases[2], test_app_close_then_shutdown);
  g_test_add_data_func ("/reliability/close-races3/last-poll/shutdown-after-linger",
                        &cases[3], test_app_close_then_shutdown);
  g_test_add_data_func ("/reliability/close-races3/waiting-poll/shutdown",
                        &cases[4], test_app_close_then_shutdown);
  g_test_add_data_func ("/reliability/close-races3/waiting-poll/app-close-then-shutdown",
                        &cases[5], test_app_close_then_shutdown);

  g_test_add_data_func ("/reliability/close-races3/inflight-poll/steady-reader",
                        GINT_TO_POINTER (POLL_BEFORE_CLOSE), test_app_close_steady_reader);
  g_test_add_data_func ("/reliability/close-races3/last-poll/steady-reader",
                        GINT_TO_POINTER (POLL_IN_LINGER), test_app_close_steady_reader);
  g_test_add_data_func ("/reliability/close-races3/waiting-poll/steady-reader",
                        GINT_TO_POINTER (POLL_WAITING), test_app_close_steady_reader);

  g_test_add_func ("/reliability/close-races3/inflight-poll/linger-race", test_inflight_linger_race);

  return g_test_run ();
}
