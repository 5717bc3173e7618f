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
                  "session ends when the linger does (what the poll carries reported not "
                  "delivered), so one client that does not read does not hold the shutdown "
                  "for its 10 s wait (it did, with a warning, until libmicrohttpd's "
                  "connection timeout or the daemon's stop)");

  g_mutex_init (&s.lock);
  /* linger = MIN (2 s, ping-timeout) */
  g_object_set (rs->server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  g_signal_connect (rs->server, "connection", G_CALLBACK (on_connection), &s);
  test_require (rel_server_listen (rs));

  poll = rel_poll_open (rs->port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = sessions_take (&s);
  test_require (socket != NULL);
  test_require (queue_big_messages (socket));

  fd = tcp_connect_small_window (rs->port);
  test_require (fd >= 0);

  start = g_get_monotonic_time ();
  engine_io_server_close_async (rs->server, NULL, NULL, NULL);
  /* The client's last poll, within the linger (once the shutdown has
   * reached the session: a poll that came first would just carry the
   * queue); never read. */
  g_usleep (200 * 1000);
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);
  test_require (rel_tcp_send (fd, request, strlen (request)));

  /* 2 s of linger, then the session ends; 8 s is well below the
   * shutdown's 10 s wait for its sessions. */
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

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/reliability/close-races/stalled-last-poll/shutdown",
                   test_stalled_last_poll_shutdown);

  return g_test_run ();
}
