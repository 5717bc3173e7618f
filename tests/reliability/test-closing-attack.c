/* test-closing-attack.c: clients that POST to a polling session while it
 * closes (adversarial review of "a POST that comes while a session
 * lingers is answered `ok`, its packets dropped").
 *
 * A session the application (or a server shutdown) closed waits up to
 * 2 s (the linger) for a last poll to take what was queued and `1`; a
 * POST that comes meanwhile is read and answered `ok`, its packets
 * dropped. A session closed for anything else answers POSTs 400 code 1.
 * What a client must not be able to do with those POSTs:
 *
 * - slow-body-past-linger: keep the session (its max-sessions place, its
 *   ::close, the verdict of its send callbacks) past the linger with a
 *   POST whose body trickles in; the body completed after the session
 *   ended is answered 400 code 1, its message never delivered;
 * - dropped-server: nor keep a server the application dropped running
 *   past its last session's end with such a body (it did, for as long as
 *   the client trickled: the request held the gone session's socket, the
 *   socket the server);
 * - many-lingerers: the same with 24 sessions at once: their threads are
 *   given back while the POSTs are open;
 * - chunked-shutdown, chunked-shutdown-only: hold a server shutdown with
 *   a chunked body that never ends, sent while the session lingers;
 * - overlapping-in-linger: break the last poll with a second POST
 *   (400) while the first one's body is being read;
 * - body-across-close: have a message whose POST began before the close
 *   delivered after it;
 * - held-post/app-close, held-post/client-error, held-post/shutdown: a
 *   POST held for back-pressure when the session closes is answered at
 *   once (`ok` for the application's close, 400 code 1 for the client's
 *   error; in a shutdown with nothing queued, which does not linger,
 *   either), not left suspended until the session ends or for ever;
 * - client-error-while-writing: a session closed for its client's error
 *   while poll responses wait to be written answers a POST 400 code 1 at
 *   once, not `ok` (it is not lingering for the application);
 * - posts-while-last-poll-unread: POST without end while the last poll's
 *   response (6 MiB) is never read: the session still ends within the
 *   linger and connection-timeout.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"

/* The linger of a closing polling session (ENGINE_IO_SOCKET_CLOSE_LINGER_MS,
 * the session machine's close-linger; ping-timeout is 20 s here, so the linger is 2 s). */
#define LINGER_MS 2000

typedef struct
{
  TestLoopback    lb;          /* the sessions watched, without a ::message handler */
  gboolean        echo;        /* connect a ::message handler (else messages queue
                                * for engine_io_socket_receive()) */

  GMutex          lock;
  GCond           cond;
  EngineIOSocket *last;        /* (lock) (owned) the last session opened */
  gint            reason;      /* (lock) its close reason, -1 before ::close */
  guint           n_closes;    /* (lock) ::close emissions, all sessions */
  gint64          closed_at;   /* (lock) monotonic time of the last ::close */
  GPtrArray      *messages;    /* (lock) char*: every message text delivered */
  guint           after_close; /* (lock) messages delivered once a close was asked */
} Fx;

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

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  Fx *fx = user_data;

  g_mutex_lock (&fx->lock);
  g_ptr_array_add (fx->messages, g_strdup (text != NULL ? text : "(binary)"));
  if (engine_io_socket_is_closed (socket))
    fx->after_close++;
  g_mutex_unlock (&fx->lock);
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  Fx *fx = user_data;

  g_mutex_lock (&fx->lock);
  fx->reason = reason;
  fx->n_closes++;
  fx->closed_at = g_get_monotonic_time ();
  g_cond_broadcast (&fx->cond);
  g_mutex_unlock (&fx->lock);
}

static void
on_connection (TestLoopback   *loopback,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Fx *fx = user_data;

  if (fx->echo)
    g_signal_connect (socket, "message", G_CALLBACK (on_message), fx);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), fx);
  g_mutex_lock (&fx->lock);
  g_clear_object (&fx->last);
  fx->last = g_object_ref (socket);
  fx->reason = -1;
  g_mutex_unlock (&fx->lock);
}

static Fx *
fx_new (gboolean echo)
{
  Fx *fx = g_new0 (Fx, 1);

  g_mutex_init (&fx->lock);
  g_cond_init (&fx->cond);
  fx->messages = g_ptr_array_new_with_free_func (g_free);
  fx->reason = -1;
  fx->echo = echo;
  test_loopback_init (&fx->lb);
  fx->lb.watch = TEST_WATCH_NO_MESSAGE;
  fx->lb.on_connection = on_connection;
  fx->lb.user_data = fx;
  g_object_set (fx->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  return fx;
}

static gboolean
fx_listen (Fx *fx)
{
  return test_loopback_listen (&fx->lb);
}

static void
fx_free (Fx *fx)
{
  test_loopback_clear (&fx->lb);
  g_clear_object (&fx->last);
  g_ptr_array_unref (fx->messages);
  g_mutex_clear (&fx->lock);
  g_cond_clear (&fx->cond);
  g_free (fx);
}

static EngineIOSocket *
fx_take (Fx *fx)
{
  EngineIOSocket *socket;

  g_mutex_lock (&fx->lock);
  socket = g_steal_pointer (&fx->last);
  g_mutex_unlock (&fx->lock);
  return socket;
}

/* The close reason of the last session, waiting up to @timeout_ms; -1. */
static gint
fx_wait_close (Fx    *fx,
               guint  timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gint reason;

  g_mutex_lock (&fx->lock);
  while (fx->n_closes == 0)
    if (!g_cond_wait_until (&fx->cond, &fx->lock, deadline))
      break;
  reason = fx->n_closes > 0 ? fx->reason : -1;
  g_mutex_unlock (&fx->lock);
  return reason;
}

static guint
fx_closes (Fx *fx)
{
  guint n;

  g_mutex_lock (&fx->lock);
  n = fx->n_closes;
  g_mutex_unlock (&fx->lock);
  return n;
}

static gint64
fx_closed_at (Fx *fx)
{
  gint64 t;

  g_mutex_lock (&fx->lock);
  t = fx->closed_at;
  g_mutex_unlock (&fx->lock);
  return t;
}

/* Messages delivered whose text starts with @prefix, and messages
 * delivered once a close had been asked for. */
static guint
fx_count_messages (Fx         *fx,
                   const char *prefix)
{
  guint n = 0;

  g_mutex_lock (&fx->lock);
  for (guint i = 0; i < fx->messages->len; i++)
    if (g_str_has_prefix (g_ptr_array_index (fx->messages, i), prefix))
      n++;
  g_mutex_unlock (&fx->lock);
  return n;
}

static guint
fx_after_close (Fx *fx)
{
  guint n;

  g_mutex_lock (&fx->lock);
  n = fx->after_close;
  g_mutex_unlock (&fx->lock);
  return n;
}

/* An Engine.IO error answer with code @code (400 {"code":N,...}). */
static void
assert_error_response (TestResponse *response,
                       guint         code)
{
  g_autofree char *text = test_response_text (response);
  g_autofree char *expected = g_strdup_printf ("\"code\":%u", code);

  g_test_message ("answered %u %s", response->status, text);
  g_assert_cmpuint (response->status, ==, 400);
  g_assert_nonnull (strstr (text, expected));
}

static void
assert_ok_response (TestResponse *response)
{
  g_autofree char *text = test_response_text (response);

  g_test_message ("answered %u %s", response->status, text);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_cmpstr (text, ==, "ok");
}

/* Polls until `1` (three polls at most): every packet but noops, or NULL
 * if a poll failed. */
static GPtrArray *
poll_until_close (RelPoll *poll)
{
  g_autoptr(GPtrArray) received = g_ptr_array_new_with_free_func (g_free);
  gboolean got_close = FALSE;

  for (guint i = 0; i < 3 && !got_close; i++)
    {
      g_autoptr(TestResponse) response = test_http_get (poll->http, poll->target);
      g_autoptr(GPtrArray) packets = NULL;

      if (response == NULL || response->status != 200)
        return NULL;
      packets = test_payload_v4_split (response->body);
      for (guint j = 0; j < packets->len; j++)
        {
          const char *packet = g_ptr_array_index (packets, j);

          if (strcmp (packet, "6") == 0)
            continue;
          got_close |= strcmp (packet, "1") == 0;
          g_ptr_array_add (received, g_strdup (packet));
        }
    }
  return g_steal_pointer (&received);
}

/* The POST head for @target with a Content-Length of @length (raw: the
 * body follows as the test likes). */
static char *
post_head (const char *target,
           gsize       length)
{
  return g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Type: text/plain;charset=UTF-8\r\n"
                          "Content-Length: %" G_GSIZE_FORMAT "\r\n\r\n", target, length);
}

/* ------------------------------------------------------------------ */

/* The application closes a session with a message queued; nobody polls.
 * A POST begins in the linger and its body trickles in (a byte every
 * 100 ms, far slower than the linger): the session ends at the end of
 * its linger all the same, the message reported not delivered; the body
 * completed afterwards is answered 400 code 1, its message never
 * delivered; the session's thread is given back. */
static const char trickle_body[] = "4late-and-slow-message";

static void
test_slow_body_past_linger (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(EngineIOSocket) found = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestResponse) late_poll = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *head = NULL;
  RelResources before, after;
  gint64 start, deadline, took_ms;
  gsize sent = 0;
  gint reason = -1;

  g_test_summary ("A POST whose body trickles in, begun while an application-closed session "
                  "lingers: the session ends with its linger (2 s) all the same, its queued "
                  "message reported not delivered, its max-sessions place and thread given "
                  "back; the body completed later gets 400 code 1 and its message is never "
                  "delivered");

  rel_resources_settled (&before);
  g_object_set (fx->lb.server, "max-sessions", 1, NULL);
  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  g_assert_true (engine_io_socket_send_text_full (socket, "a", on_sent, &counts, NULL, NULL));

  start = g_get_monotonic_time ();
  engine_io_socket_close (socket);

  /* Lingering, it holds the only place. */
  {
    g_autoptr(RelPoll) refused = rel_poll_open (fx->lb.port, &error);

    g_assert_null (refused);
    g_test_message ("a handshake in the linger: %s", error != NULL ? error->message : "?");
    g_clear_error (&error);
  }

  post = test_http_new (fx->lb.port);
  head = post_head (poll->target, strlen (trickle_body));
  g_assert_true (test_http_send_raw (post, head, strlen (head), &error));
  g_assert_no_error (error);

  /* A byte every 100 ms: the whole body would take 2.2 s, past the
   * linger; stop one byte short, whatever happens. */
  deadline = start + test_scaled_ms (LINGER_MS + 4000) * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < deadline && (reason = fx_wait_close (fx, 100)) < 0)
    if (sent + 1 < strlen (trickle_body))
      {
        g_assert_true (test_http_send_raw (post, trickle_body + sent, 1, &error));
        sent++;
      }
  took_ms = (fx_closed_at (fx) - start) / 1000;
  g_test_message ("%" G_GSIZE_FORMAT " bytes of the body sent; session ended %" G_GINT64_FORMAT
                  " ms after the close", sent, took_ms);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_cmpint (took_ms, >=, LINGER_MS - 100);
  g_assert_cmpint (took_ms, <, test_scaled_ms (LINGER_MS + 2000));

  /* Never polled for: not delivered, once. */
  g_assert_true (wait_counts (&counts, 1, REL_WAIT_MS));
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);

  /* Forgotten: its place is free, the POST still reading its body. */
  found = engine_io_server_lookup_socket (fx->lb.server, poll->sid);
  g_assert_null (found);
  {
    g_autoptr(RelPoll) next = rel_poll_open (fx->lb.port, &error);

    g_assert_no_error (error);
    g_assert_nonnull (next);
  }

  /* The rest of the body: the session is gone. */
  g_assert_true (test_http_send_raw (post, trickle_body + sent, strlen (trickle_body) - sent, &error));
  g_assert_no_error (error);
  response = test_http_receive (post, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  assert_error_response (response, 1);

  late_poll = test_http_get (poll->http, poll->target);
  test_require (late_poll != NULL);
  assert_error_response (late_poll, 1);

  g_assert_cmpuint (fx_count_messages (fx, "late"), ==, 0);
  g_assert_cmpuint (fx_after_close (fx), ==, 0);
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  g_clear_object (&socket);
  g_clear_pointer (&post, test_http_free);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  if (!rel_resources_wait_at_most (before.threads, before.fds + 2, REL_WAIT_MS, &after))
    rel_resources_dump_fds ();
  g_test_message ("threads %u -> %u, descriptors %u -> %u", before.threads, after.threads,
                  before.fds, after.fds);
  g_assert_cmpuint (after.threads, <=, before.threads);
  g_assert_cmpuint (after.fds, <=, before.fds + 2);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* Many sessions at once, each closed by the application with a message
 * queued and each with a POST whose body never completes: every session
 * ends with its linger, and its thread (with loop-threads 0) is given
 * back while the POSTs' connections are still open. */
#define MANY 24

static void
test_many_lingerers (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  RelPoll *polls[MANY] = { NULL, };
  EngineIOSocket *sockets[MANY] = { NULL, };
  int posts[MANY];
  RelResources before, after;
  g_autoptr(GError) error = NULL;
  gint64 start, deadline;
  guint n_closes;

  g_test_summary ("24 sessions closed by the application, each with a message queued and a "
                  "POST whose body never completes: all end with their linger (2 s), every "
                  "message reported not delivered, and the sessions' threads are given back "
                  "while the POSTs' connections are still open");

  test_require (fx_listen (fx));
  rel_resources_settled (&before);
  for (guint i = 0; i < MANY; i++)
    {
      polls[i] = rel_poll_open (fx->lb.port, &error);
      g_assert_no_error (error);
      test_require (polls[i] != NULL);
      sockets[i] = fx_take (fx);
      test_require (sockets[i] != NULL);
      g_assert_true (engine_io_socket_send_text_full (sockets[i], "a", on_sent, &counts, NULL, NULL));
    }

  start = g_get_monotonic_time ();
  for (guint i = 0; i < MANY; i++)
    {
      g_autofree char *head = post_head (polls[i]->target, 1000);

      engine_io_socket_close (sockets[i]);
      posts[i] = rel_tcp_connect (fx->lb.port);
      g_assert_cmpint (posts[i], >=, 0);
      g_assert_true (rel_tcp_send (posts[i], head, strlen (head)));
      g_assert_true (rel_tcp_send (posts[i], "4never", 6));
    }

  deadline = start + test_scaled_ms (LINGER_MS + 3000) * G_TIME_SPAN_MILLISECOND;
  g_mutex_lock (&fx->lock);
  while (fx->n_closes < MANY)
    if (!g_cond_wait_until (&fx->cond, &fx->lock, deadline))
      break;
  n_closes = fx->n_closes;
  g_mutex_unlock (&fx->lock);
  g_test_message ("%u sessions ended after %" G_GINT64_FORMAT " ms", n_closes,
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpuint (n_closes, ==, MANY);
  g_assert_true (wait_counts (&counts, MANY, REL_WAIT_MS));
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, MANY);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);

  /* The POSTs still wait for their bodies; the sessions' threads are gone
   * (the shared loop threads, started with the first session, stay). */
  rel_resources_wait_at_most (before.threads + test_loop_threads_from_env (), G_MAXUINT,
                              REL_WAIT_MS, &after);
  g_test_message ("threads %u -> %u while %u POSTs are still open", before.threads, after.threads, MANY);
  g_assert_cmpuint (after.threads, <=, before.threads + test_loop_threads_from_env ());
  for (guint i = 0; i < MANY; i++)
    g_assert_false (rel_tcp_is_closed (posts[i]));

  for (guint i = 0; i < MANY; i++)
    {
      close (posts[i]);
      g_clear_object (&sockets[i]);
      g_clear_pointer (&polls[i], rel_poll_free);
    }
  g_assert_cmpuint (fx_after_close (fx), ==, 0);
  fx_free (fx);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* A chunked POST whose body never ends (a chunk of a byte every 50 ms)
 * on a thread of its own, until its connection fails or it is told to
 * stop. */
typedef struct
{
  guint      port;
  char      *target;
  int        stop;     /* (atomic) */
  int        failed;   /* (atomic) the server closed or reset the connection */
  int        chunks;   /* (atomic) chunks sent */
  GThread   *thread;
} Trickler;

static gpointer
trickler_thread (gpointer data)
{
  Trickler *t = data;
  g_autofree char *head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           "Content-Type: text/plain;charset=UTF-8\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n"
                                           "1\r\n4\r\n", t->target);
  int fd = rel_tcp_connect (t->port);

  if (fd < 0 || !rel_tcp_send (fd, head, strlen (head)))
    {
      g_atomic_int_set (&t->failed, 1);
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  while (!g_atomic_int_get (&t->stop))
    {
      if (rel_tcp_is_closed (fd) || !rel_tcp_send (fd, "1\r\nx\r\n", 6))
        {
          g_atomic_int_set (&t->failed, 1);
          break;
        }
      g_atomic_int_inc (&t->chunks);
      g_usleep (50 * 1000);
    }
  close (fd);
  return NULL;
}

static Trickler *
trickler_start (guint       port,
                const char *target)
{
  Trickler *t = g_new0 (Trickler, 1);

  t->port = port;
  t->target = g_strdup (target);
  t->thread = g_thread_new ("trickler", trickler_thread, t);
  return t;
}

static void
trickler_stop (Trickler *t)
{
  g_atomic_int_set (&t->stop, 1);
  g_thread_join (t->thread);
  g_free (t->target);
  g_free (t);
}

/* The session lingers (the application closed it, or only the shutdown
 * did, with a message queued) while a chunked POST that never ends is
 * read; then the server shuts down. The shutdown must not wait for the
 * body: the linger (2 s), a moment for the requests still uploading (2 s),
 * then the daemon stops and the connection with it. */
static void
test_chunked_shutdown (gconstpointer data)
{
  gboolean app_close = GPOINTER_TO_INT (data);
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  Trickler *t = NULL;
  gint64 start, took_ms, deadline;
  gint reason;

  g_test_summary ("A chunked POST that never ends, sent while a session lingers (closed by the "
                  "application, or by the shutdown with a message queued); the server shuts "
                  "down: engine_io_server_close() returns within the linger and the 2 s given "
                  "to uploading requests, the session closed once, its message reported not "
                  "delivered, the POST's connection closed");

  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  g_assert_true (engine_io_socket_send_text_full (socket, "a", on_sent, &counts, NULL, NULL));

  if (app_close)
    engine_io_socket_close (socket);
  t = trickler_start (fx->lb.port, poll->target);
  /* The POST is being read. */
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_atomic_int_get (&t->chunks) < 3 && !g_atomic_int_get (&t->failed) &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_cmpint (g_atomic_int_get (&t->chunks), >=, 3);

  /* (Without the application's close, the POST began while the session
   * was open: the shutdown's linger (a message is queued) comes while its
   * body is read.) */
  start = g_get_monotonic_time ();
  engine_io_server_close (fx->lb.server);
  took_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("shutdown took %" G_GINT64_FORMAT " ms; %d chunks sent", took_ms,
                  g_atomic_int_get (&t->chunks));
  g_assert_cmpint (took_ms, <, test_scaled_ms (LINGER_MS + 2000 + 2500));

  reason = fx_wait_close (fx, REL_WAIT_MS);
  g_assert_cmpint (reason, ==, app_close ? ENGINE_IO_CLOSE_REASON_FORCED_CLOSE
                                         : ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
  g_assert_cmpuint (fx_closes (fx), ==, 1);
  g_assert_true (wait_counts (&counts, 1, REL_WAIT_MS));
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 1);

  /* The daemon is stopped: the connection is gone. */
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (!g_atomic_int_get (&t->failed) && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_true (g_atomic_int_get (&t->failed));
  trickler_stop (t);
  g_assert_cmpuint (fx_after_close (fx), ==, 0);

  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* The application closes its last session and drops its server (no
 * engine_io_server_close(): the sessions hold the server, and the last
 * one to end shuts it down). A chunked POST to that session goes on
 * without end: the server must still be shut down when the session ends,
 * not kept listening (its daemon, its threads) for as long as a client
 * trickles a body to a session that is gone. */
static void
test_dropped_server (void)
{
  Fx *fx = fx_new (TRUE);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  Trickler *t = NULL;
  GWeakRef weak;
  gint64 start, deadline;
  gboolean refused = FALSE;
  gint reason;

  g_test_summary ("The application closes its last session and drops its server (no close) "
                  "while a chunked POST to that session never ends: the server is shut down "
                  "when the session ends (its port refuses connections, the POST's connection "
                  "closed), not kept running by the POST (it was, for as long as the client "
                  "trickled)");

  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);

  t = trickler_start (fx->lb.port, poll->target);
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_atomic_int_get (&t->chunks) < 3 && !g_atomic_int_get (&t->failed) &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_cmpint (g_atomic_int_get (&t->chunks), >=, 3);

  start = g_get_monotonic_time ();
  engine_io_socket_close (socket);
  g_clear_object (&socket);
  g_weak_ref_init (&weak, fx->lb.server);
  g_clear_object (&fx->lb.server);  /* the session holds it */

  reason = fx_wait_close (fx, test_scaled_ms (LINGER_MS + 3000));
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);

  /* The shutdown of a dropped server: the daemon stops (the POST's
   * connection with it) within the 2 s it gives uploading requests. */
  deadline = g_get_monotonic_time () + test_scaled_ms (2000 + 3000) * G_TIME_SPAN_MILLISECOND;
  while (!(refused = test_port_refuses (fx->lb.port)) && g_get_monotonic_time () < deadline)
    g_usleep (50 * 1000);
  g_test_message ("port %s %" G_GINT64_FORMAT " ms after the close; %d chunks sent, POST %s",
                  refused ? "refused" : "still open", (g_get_monotonic_time () - start) / 1000,
                  g_atomic_int_get (&t->chunks), g_atomic_int_get (&t->failed) ? "closed" : "still open");
  g_assert_true (refused);
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (!g_atomic_int_get (&t->failed) && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_true (g_atomic_int_get (&t->failed));
  trickler_stop (t);

  /* Freed once its shutdown is done. */
  {
    EngineIOServer *alive;

    deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    while ((alive = g_weak_ref_get (&weak)) != NULL && g_get_monotonic_time () < deadline)
      {
        g_object_unref (alive);
        g_usleep (10 * 1000);
      }
    g_assert_null (alive);
    g_clear_object (&alive);
  }
  g_weak_ref_clear (&weak);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* In the linger, a POST whose body is not complete yet, and a second
 * POST on another connection: the second gets 400 (overlapping), the
 * first, once complete, `ok`, and the last poll still takes the queued
 * message and `1`, reported delivered. */
static void
test_overlapping_in_linger (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) first = NULL;
  g_autoptr(TestHttp) second = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *head = NULL;
  const char body[] = "4late-first";

  g_test_summary ("While an application-closed session lingers, a POST whose body is still "
                  "coming and a second, overlapping POST: the second gets 400, the first `ok` "
                  "once complete (its message not delivered), and the last poll still takes "
                  "the queued message and `1`, reported delivered");

  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  g_assert_true (engine_io_socket_send_text_full (socket, "a", on_sent, &counts, NULL, NULL));
  engine_io_socket_close (socket);

  first = test_http_new (fx->lb.port);
  head = post_head (poll->target, strlen (body));
  g_assert_true (test_http_send_raw (first, head, strlen (head), &error));
  g_assert_true (test_http_send_raw (first, body, 4, &error));
  g_assert_no_error (error);
  /* Its head is read before the second comes (the server shows nothing
   * to wait on: a generous moment). */
  g_usleep (test_scaled_ms (300) * 1000);

  second = test_http_new (fx->lb.port);
  response = test_http_request (second, "POST", poll->target, NULL, TEST_S ("4late-second"),
                                REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  assert_error_response (response, 3);
  g_clear_pointer (&response, test_response_free);

  g_assert_true (test_http_send_raw (first, body + 4, strlen (body) - 4, &error));
  response = test_http_receive (first, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  assert_ok_response (response);

  packets = poll_until_close (poll);
  test_require (packets != NULL);
  g_assert_cmpuint (packets->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4a");
  g_assert_cmpstr (g_ptr_array_index (packets, 1), ==, "1");

  g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_true (wait_counts (&counts, 1, REL_WAIT_MS));
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 0);
  g_assert_cmpuint (fx_count_messages (fx, "late"), ==, 0);
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* A POST begun while the session is open, its body completed after the
 * application's close: answered `ok`, its message never delivered (the
 * close overtakes what the handlers have not seen); the last poll takes
 * the queued message and `1`. */
static void
test_body_across_close (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *head = NULL;
  const char body[] = "4late\x1e" "4late-too";

  g_test_summary ("A POST begun while the session is open, whose body is completed after "
                  "the application's close: answered `ok`, its messages never delivered; the "
                  "last poll takes the queued message and `1`, reported delivered");

  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  /* The session works. */
  g_assert_true (rel_poll_post (poll, "4before", &error));
  g_assert_no_error (error);

  post = test_http_new (fx->lb.port);
  head = post_head (poll->target, strlen (body));
  g_assert_true (test_http_send_raw (post, head, strlen (head), &error));
  g_assert_true (test_http_send_raw (post, body, 3, &error));
  g_assert_no_error (error);
  /* Its head is read (the POST begun) while the session is open. */
  g_usleep (100 * 1000);

  g_assert_true (engine_io_socket_send_text_full (socket, "a", on_sent, &counts, NULL, NULL));
  engine_io_socket_close (socket);
  g_assert_true (test_http_send_raw (post, body + 3, strlen (body) - 3, &error));
  response = test_http_receive (post, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  assert_ok_response (response);

  /* (A poll may come before the close has reached the session: it takes
   * "4a", the next one `1`.) */
  packets = poll_until_close (poll);
  test_require (packets != NULL);
  g_assert_cmpuint (packets->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (packets, 0), ==, "4a");
  g_assert_cmpstr (g_ptr_array_index (packets, 1), ==, "1");

  g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_true (wait_counts (&counts, 1, REL_WAIT_MS));
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 1);
  g_assert_cmpuint (fx_count_messages (fx, "before"), ==, 1);
  g_assert_cmpuint (fx_count_messages (fx, "late"), ==, 0);
  g_assert_cmpuint (fx_after_close (fx), ==, 0);

  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* A session whose application takes no message (no ::message handler, and
 * nobody calls engine_io_socket_receive()) and whose receive queue's mark
 * is 64 KiB: a POST of 256 KiB of messages is held (back-pressure), its
 * connection suspended. Then the session closes: */
typedef enum
{
  HELD_APP_CLOSE,     /* the application closes it: `ok` at once (not at the
                       * end of the linger) */
  HELD_CLIENT_ERROR,  /* the client POSTs again (overlapping): 400 code 1 at once */
  HELD_SHUTDOWN,      /* the server shuts down (nothing queued: no linger): `ok`
                       * or 400 code 1, at once, and the shutdown is quick */
} HeldClose;

#define HELD_MARK (64 * 1024)
#define HELD_MESSAGES 256
#define HELD_MESSAGE_SIZE 1023

/* The start of the held-POST cases: a server whose receive queue holds
 * HELD_MARK, a polling session (@poll, @socket), and a POST of
 * HELD_MESSAGES messages that the session holds (not answered within
 * @hold_ms). Returns the POST's connection, or NULL (the test failed). */
static TestHttp *
held_post_open (Fx              *fx,
                RelPoll        **poll,
                EngineIOSocket **socket,
                guint            hold_ms)
{
  g_autoptr(GString) body = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autofree char *head = NULL;

  g_object_set (fx->lb.server, "receive-queue-high-water", (guint64) HELD_MARK, NULL);
  test_require_val (fx_listen (fx), NULL);
  *poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require_val (*poll != NULL, NULL);
  *socket = fx_take (fx);
  test_require_val (*socket != NULL, NULL);

  for (guint i = 0; i < HELD_MESSAGES; i++)
    {
      if (i > 0)
        g_string_append_c (body, '\x1e');
      g_string_append_printf (body, "4%04u", i);
      for (guint j = 4; j < HELD_MESSAGE_SIZE; j++)
        g_string_append_c (body, 'm');
    }
  post = test_http_new (fx->lb.port);
  head = post_head ((*poll)->target, body->len);
  g_assert_true (test_http_send_raw (post, head, strlen (head), &error));
  g_assert_true (test_http_send_raw (post, body->str, body->len, &error));
  g_assert_no_error (error);
  /* Held: no answer (a held POST has no event to wait for). */
  g_assert_false (test_http_wait_readable (post, test_scaled_ms (hold_ms)));
  return g_steal_pointer (&post);
}

static void
test_held_post (gconstpointer data)
{
  HeldClose how = GPOINTER_TO_INT (data);
  Fx *fx = fx_new (FALSE);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start, answered_ms;
  gboolean closed_before;
  guint received = 0;
  gint reason;

  g_test_summary ("A POST held for back-pressure (the application takes no message, the "
                  "receive queue is over its 64 KiB mark) when its session closes: answered "
                  "at once (`ok` for the application's close, 400 code 1 when the client's "
                  "own error closed it, either in a shutdown that has nothing to linger for), "
                  "not when the session ends; the rest of its body is not delivered, the "
                  "session ends in bounded time, once");

  /* Held: no answer (a held POST has no event to wait for). */
  post = held_post_open (fx, &poll, &socket, 1000);
  test_require (post != NULL);

  start = g_get_monotonic_time ();
  switch (how)
    {
    case HELD_APP_CLOSE:
      engine_io_socket_close (socket);
      break;
    case HELD_CLIENT_ERROR:
      {
        g_autoptr(TestResponse) second = NULL;

        second = test_http_request (poll->http, "POST", poll->target, NULL, TEST_S ("4second"),
                                    REL_WAIT_MS, &error);
        g_assert_no_error (error);
        test_require (second != NULL);
        assert_error_response (second, 3);
      }
      break;
    case HELD_SHUTDOWN:
      engine_io_server_close_async (fx->lb.server, NULL, NULL, NULL);
      break;
    default:
      g_assert_not_reached ();
    }

  response = test_http_receive (post, REL_WAIT_MS, &error);
  answered_ms = (g_get_monotonic_time () - start) / 1000;
  closed_before = fx_closes (fx) > 0;
  g_assert_no_error (error);
  test_require (response != NULL);
  g_test_message ("held POST answered %" G_GINT64_FORMAT " ms after the close (session %s)",
                  answered_ms, closed_before ? "ended" : "not ended yet");
  if (how == HELD_CLIENT_ERROR)
    assert_error_response (response, 1);
  else if (how == HELD_APP_CLOSE)
    assert_ok_response (response);
  else if (response->status != 200)
    {
      /* Nothing queued: the shutdown does not linger, and the session may
       * be gone before the POST's thread looks at it. */
      assert_error_response (response, 1);
    }
  else
    assert_ok_response (response);
  if (how == HELD_APP_CLOSE)
    {
      /* By the close, not by the end of the linger. */
      g_assert_false (closed_before);
      g_assert_cmpint (answered_ms, <, LINGER_MS);
    }

  reason = fx_wait_close (fx, REL_WAIT_MS);
  g_test_message ("session ended %" G_GINT64_FORMAT " ms after the close",
                  (fx_closed_at (fx) - start) / 1000);
  switch (how)
    {
    case HELD_APP_CLOSE:
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      break;
    case HELD_CLIENT_ERROR:
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
      break;
    case HELD_SHUTDOWN:
      g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
      break;
    default:
      g_assert_not_reached ();
    }
  g_assert_cmpint ((fx_closed_at (fx) - start) / 1000, <, test_scaled_ms (LINGER_MS + 2000));

  /* What was read before the hold, at most: about the mark, never the
   * whole body. */
  for (;;)
    {
      g_autoptr(EngineIOPacket) packet = engine_io_socket_try_receive (socket, NULL);

      if (packet == NULL)
        break;
      received++;
    }
  g_test_message ("%u of %u messages were read before the hold", received, HELD_MESSAGES);
  g_assert_cmpuint (received, <, HELD_MESSAGES);

  if (how == HELD_SHUTDOWN)
    {
      start = g_get_monotonic_time ();
      engine_io_server_close (fx->lb.server);
      g_assert_cmpint ((g_get_monotonic_time () - start) / 1000, <, test_scaled_ms (5000));
    }
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  g_clear_object (&socket);
  g_clear_pointer (&post, test_http_free);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* A POST held for back-pressure whose client closes its connection while
 * it is held; then the application takes its messages (the receive queue
 * drops under its mark: the POST is resumed, its body read on), or closes
 * the session, or the server shuts down. The POST's body (its own
 * allocation, taken out when the POST is done) is read on or let go once,
 * never after: the session takes the client's next POST (no "overlapping"
 * close: the vanished POST is no longer the session's), or ends once. */
typedef enum
{
  GONE_THEN_DRAIN,
  GONE_THEN_APP_CLOSE,
  GONE_THEN_SHUTDOWN,
} GoneThen;

static void
test_held_post_client_gone (gconstpointer data)
{
  GoneThen then = GPOINTER_TO_INT (data);
  Fx *fx = fx_new (FALSE);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autoptr(GError) error = NULL;
  guint received = 0;
  gboolean after = FALSE;
  gint64 deadline;

  g_test_summary ("A POST held for back-pressure whose client closes its connection while "
                  "held, then the application drains the session (the POST resumes), closes "
                  "it, or the server shuts down: no use of the POST's body after it is let "
                  "go, the session takes the next POST or ends once");

  post = held_post_open (fx, &poll, &socket, 500);
  test_require (post != NULL);

  /* The client goes away while its POST is held. */
  g_clear_pointer (&post, test_http_free);
  g_usleep (200 * 1000);

  switch (then)
    {
    case GONE_THEN_DRAIN:
      /* Until nothing more comes for 500 ms (all of it, or what was read
       * before the host saw the client gone: the rest of the body is
       * dropped then). */
      deadline = g_get_monotonic_time () + test_scaled_ms (500) * G_TIME_SPAN_MILLISECOND;
      while (g_get_monotonic_time () < deadline && received < HELD_MESSAGES)
        {
          g_autoptr(EngineIOPacket) packet = engine_io_socket_try_receive (socket, NULL);

          if (packet == NULL)
            {
              g_usleep (5 * 1000);
              continue;
            }
          received++;
          deadline = g_get_monotonic_time () + test_scaled_ms (500) * G_TIME_SPAN_MILLISECOND;
        }
      g_test_message ("%u of %u messages of the vanished POST delivered", received, HELD_MESSAGES);
      g_assert_cmpuint (received, >, 0);
      g_assert_cmpuint (received, <=, HELD_MESSAGES);

      /* The session takes the client's next POST. */
      {
        g_autoptr(TestResponse) next = NULL;

        next = test_http_request (poll->http, "POST", poll->target, NULL, TEST_S ("4after"),
                                  REL_WAIT_MS, &error);
        g_assert_no_error (error);
        test_require (next != NULL);
        assert_ok_response (next);
      }
      deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
      while (!after && g_get_monotonic_time () < deadline)
        {
          g_autoptr(EngineIOPacket) packet = engine_io_socket_try_receive (socket, NULL);

          if (packet == NULL)
            {
              g_usleep (5 * 1000);
              continue;
            }
          after = g_strcmp0 (engine_io_packet_get_text (packet, NULL), "after") == 0;
        }
      g_assert_true (after);
      g_assert_cmpuint (fx_closes (fx), ==, 0);
      engine_io_socket_close (socket);
      /* (The client's last poll ends the linger.) */
      g_ptr_array_unref (poll_until_close (poll));
      g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      break;
    case GONE_THEN_APP_CLOSE:
      engine_io_socket_close (socket);
      g_ptr_array_unref (poll_until_close (poll));
      g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      break;
    case GONE_THEN_SHUTDOWN:
      engine_io_server_close (fx->lb.server);
      g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
      break;
    default:
      g_assert_not_reached ();
    }
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* A POST held for back-pressure while its session upgrades to a
 * WebSocket (a client that sends `5` with its POST unanswered, which the
 * reference's client does not: no order between the two is kept then):
 * once the application takes its messages the POST goes on where it
 * stopped (its body kept across the upgrade) and is answered `ok`; every
 * message of it arrives once, in order, and the WebSocket's. */
static void
test_held_post_upgrade (void)
{
  Fx *fx = fx_new (FALSE);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestHttp) post = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  TestWs *ws = NULL;
  guint received = 0;
  gboolean ws_message = FALSE;
  gint64 deadline;

  g_test_summary ("A POST held for back-pressure across its session's upgrade to a "
                  "WebSocket: resumed when the application takes its messages, answered `ok`, "
                  "every message of it once and in order, and the WebSocket's");

  post = held_post_open (fx, &poll, &socket, 500);
  test_require (post != NULL);

  ws = rel_ws_upgrade (fx->lb.port, poll->sid, &error);
  g_assert_no_error (error);
  test_require (ws != NULL);
  g_assert_true (rel_ws_send (ws, "4ws", &error));
  g_assert_no_error (error);

  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < deadline && !(ws_message && received == HELD_MESSAGES))
    {
      g_autoptr(EngineIOPacket) packet = engine_io_socket_try_receive (socket, NULL);
      g_autofree char *expected = NULL;
      const char *text;

      if (packet == NULL)
        {
          g_usleep (5 * 1000);
          continue;
        }
      text = engine_io_packet_get_text (packet, NULL);
      test_require (text != NULL);
      if (strcmp (text, "ws") == 0)
        {
          ws_message = TRUE;
          continue;
        }
      expected = g_strdup_printf ("%04u", received);
      g_assert_true (g_str_has_prefix (text, expected));
      received++;
    }
  g_test_message ("%u of %u messages, and the WebSocket's: %s", received, HELD_MESSAGES,
                  ws_message ? "yes" : "no");
  g_assert_true (ws_message);
  g_assert_cmpuint (received, ==, HELD_MESSAGES);
  response = test_http_receive (post, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  assert_ok_response (response);
  g_assert_cmpuint (fx_closes (fx), ==, 0);

  engine_io_socket_close (socket);
  g_assert_cmpint (rel_ws_wait_server_close (ws, REL_WAIT_MS), ==, 1000);
  g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  test_ws_free (ws);
  g_clear_object (&socket);
  g_clear_pointer (&post, test_http_free);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* POSTs of more than one round (each body's reader in its own allocation)
 * on one session from several connections at once, the session held for
 * back-pressure, drained, and closed under them by the application, a
 * client's overlapping POST or a shutdown; some clients vanish before
 * their answer. Every POST is answered or its connection closed, the
 * session ends once, and (ASan, TSan) no body is read after it is let go
 * or by two threads. */
#define STORM_ROUNDS 6
#define STORM_CLIENTS 3
#define STORM_MESSAGES 12000   /* about 100 KiB of packets: two rounds */

typedef struct
{
  guint        port;
  const char  *target;
  GString     *body;
  gboolean     vanish;
  guint        answered;
} StormClient;

static gpointer
storm_client (gpointer data)
{
  StormClient *c = data;

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(TestHttp) http = test_http_new (c->port);
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *head = post_head (c->target, c->body->len);

      if (!test_http_send_raw (http, head, strlen (head), &error) ||
          !test_http_send_raw (http, c->body->str, c->body->len, &error))
        continue;
      if (c->vanish && i == 0)
        {
          g_usleep (20 * 1000);
          test_http_drop (http, TRUE);
          continue;
        }
      response = test_http_receive (http, REL_WAIT_MS, &error);
      if (response != NULL)
        {
          g_assert_true (response->status == 200 || response->status == 400 ||
                         response->status == 503);
          c->answered++;
        }
    }
  return NULL;
}

static void
test_post_storm (void)
{
  g_autoptr(GString) body = g_string_new (NULL);

  g_test_summary ("POSTs of two rounds each from several connections at once on one session "
                  "held for back-pressure and drained, closed under them by the application, an "
                  "overlapping POST or a shutdown, some clients vanishing: answered or closed, "
                  "the session ends once, no body read after it is let go");

  for (guint i = 0; i < STORM_MESSAGES; i++)
    g_string_append_printf (body, "%s4%05u", i > 0 ? "\x1e" : "", i);

  for (guint round = 0; round < STORM_ROUNDS; round++)
    {
      Fx *fx = fx_new (FALSE);
      g_autoptr(RelPoll) poll = NULL;
      g_autoptr(EngineIOSocket) socket = NULL;
      g_autoptr(GError) error = NULL;
      StormClient clients[STORM_CLIENTS];
      GThread *threads[STORM_CLIENTS];
      gint64 until;

      g_object_set (fx->lb.server, "receive-queue-high-water", (guint64) (32 * 1024), NULL);
      test_require (fx_listen (fx));
      poll = rel_poll_open (fx->lb.port, &error);
      g_assert_no_error (error);
      test_require (poll != NULL);
      socket = fx_take (fx);
      test_require (socket != NULL);

      for (guint i = 0; i < STORM_CLIENTS; i++)
        {
          clients[i] = (StormClient) { fx->lb.port, poll->target, body, i == 1, 0 };
          threads[i] = g_thread_new ("storm", storm_client, &clients[i]);
        }
      /* Drain a while, then the close. */
      until = g_get_monotonic_time () + (gint64) (50 + 40 * round) * 1000;
      while (g_get_monotonic_time () < until)
        {
          g_autoptr(EngineIOPacket) packet = engine_io_socket_try_receive (socket, NULL);

          if (packet == NULL)
            g_usleep (500);
        }
      switch (round % 3)
        {
        case 0:
          engine_io_socket_close (socket);
          break;
        case 1:
          engine_io_server_close_async (fx->lb.server, NULL, NULL, NULL);
          break;
        default:
          break;  /* the clients' own overlapping POSTs close it */
        }
      for (guint i = 0; i < STORM_CLIENTS; i++)
        g_thread_join (threads[i]);
      g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), !=, -1);
      g_assert_cmpuint (fx_closes (fx), ==, 1);
      for (guint i = 0; i < STORM_CLIENTS; i++)
        g_test_message ("round %u client %u: %u answered", round, i, clients[i].answered);

      g_clear_object (&socket);
      g_clear_pointer (&poll, rel_poll_free);
      fx_free (fx);
    }
  test_log_check ();
}

/* ------------------------------------------------------------------ */

/* The application closes a session with 6 MiB queued; the last poll comes
 * in the linger on a connection that never reads its response. The client
 * POSTs without pause meanwhile (each answered `ok`, then 400 once the
 * session is gone): the session ends within the linger and
 * connection-timeout (2 s here), every send callback FALSE once. */
#define BIG_MESSAGES 6
#define BIG_MESSAGE_SIZE (1024 * 1024)
#define WRITE_TIMEOUT_S 2

static int
slow_get (guint       port,
          const char *target)
{
  g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
  struct sockaddr_in address = { 0 };
  int size = 4096;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;
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

static void
test_posts_while_last_poll_unread (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_malloc (BIG_MESSAGE_SIZE + 1);
  g_autofree char *filler = NULL;
  gint64 start, deadline, took_ms;
  guint n_ok = 0, n_refused = 0;
  gint reason = -1;
  int fd;

  g_test_summary ("The last poll of an application-closed session (6 MiB) is never read and "
                  "its client POSTs 100 KB bodies without pause: the session ends within the "
                  "linger and connection-timeout (2 s) all the same, every send callback "
                  "FALSE once, the POSTs answered `ok` until then and 400 code 1 after, none "
                  "of their messages delivered");

  g_object_set (fx->lb.server, "connection-timeout", WRITE_TIMEOUT_S, NULL);
  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  memset (text, 'x', BIG_MESSAGE_SIZE);
  text[BIG_MESSAGE_SIZE] = '\0';
  for (guint i = 0; i < BIG_MESSAGES; i++)
    g_assert_true (engine_io_socket_send_text_full (socket, text, on_sent, &counts, NULL, NULL));

  start = g_get_monotonic_time ();
  engine_io_socket_close (socket);
  fd = slow_get (fx->lb.port, poll->target);
  test_require (fd >= 0);

  filler = g_strnfill (100 * 1000, 'p');
  filler[0] = '4';
  filler[1] = 'l';  /* "4lpp...": a message starting "lpp" */
  deadline = start + test_scaled_ms (LINGER_MS + WRITE_TIMEOUT_S * 1000 + 5000) * G_TIME_SPAN_MILLISECOND;
  while (g_get_monotonic_time () < deadline && n_refused < 3)
    {
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) local = NULL;

      response = test_http_request (poll->http, "POST", poll->target, NULL, filler, strlen (filler),
                                    REL_WAIT_MS, &local);
      g_assert_no_error (local);
      test_require (response != NULL);
      if (response->status == 200)
        {
          n_ok++;
          g_assert_cmpuint (n_refused, ==, 0);
        }
      else
        {
          assert_error_response (response, 1);
          n_refused++;
        }
    }
  /* The server forgets the session (POSTs answered 400 code 1) just
   * before its ::close runs on the session's thread: a wait, not a look
   * (a look found no ::close yet once, pooled mode, 18,055 POSTs); how
   * soon it ended is took_ms's bound below. */
  reason = fx_wait_close (fx, REL_WAIT_MS);
  took_ms = (fx_closed_at (fx) - start) / 1000;
  g_test_message ("%u POSTs answered ok, %u refused; session ended %" G_GINT64_FORMAT
                  " ms after the close", n_ok, n_refused, took_ms);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
  g_assert_cmpint (took_ms, <, test_scaled_ms (LINGER_MS + WRITE_TIMEOUT_S * 1000 + 2000));
  g_assert_cmpuint (n_ok, >, 0);
  g_assert_cmpuint (n_refused, >, 0);

  g_assert_true (wait_counts (&counts, BIG_MESSAGES, REL_WAIT_MS));
  g_usleep (100 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, BIG_MESSAGES);
  g_assert_cmpuint (fx_count_messages (fx, "lpp"), ==, 0);
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  close (fd);
  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

/* The client's error closes a session while a poll response is being
 * written: a slow GET took 6 MiB (never read) and a second slow GET
 * waits, 6 MiB more queued behind the first; a third GET (overlapping
 * polls) closes the session with `transport error`, and the waiting poll
 * is answered with the 6 MiB and `1`, never read either. The session is
 * closing for its client's error, not lingering for the application: a
 * POST now gets 400 code 1 at once, its body not acknowledged (a client
 * over its send mark that goes on POSTing gets nothing more read). */
static void
test_client_error_while_writing (void)
{
  Fx *fx = fx_new (TRUE);
  SendCounts counts = { 0, 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) third = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_malloc (BIG_MESSAGE_SIZE + 1);
  gint64 deadline, start;
  gboolean closed_before;
  int fd1, fd2;

  g_test_summary ("A session closed for its client's error (overlapping polls) while two poll "
                  "responses (6 MiB each) wait to be written: a POST that comes meanwhile gets "
                  "400 code 1 at once, not `ok`, its message not delivered; the session ends "
                  "within the bound of that write, every send callback FALSE once");

  g_object_set (fx->lb.server, "connection-timeout", WRITE_TIMEOUT_S, NULL);
  test_require (fx_listen (fx));
  poll = rel_poll_open (fx->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = fx_take (fx);
  test_require (socket != NULL);
  memset (text, 'x', BIG_MESSAGE_SIZE);
  text[BIG_MESSAGE_SIZE] = '\0';
  for (guint i = 0; i < BIG_MESSAGES; i++)
    g_assert_true (engine_io_socket_send_text_full (socket, text, on_sent, &counts, NULL, NULL));

  fd1 = slow_get (fx->lb.port, poll->target);
  test_require (fd1 >= 0);
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (engine_io_socket_get_send_queue_length (socket) > 0 && g_get_monotonic_time () < deadline)
    g_usleep (5 * 1000);
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, 0);

  /* The second poll waits while the first is written (nothing shows it
   * waiting: a moment), and 6 MiB more stay queued. */
  fd2 = slow_get (fx->lb.port, poll->target);
  test_require (fd2 >= 0);
  g_usleep (test_scaled_ms (300) * 1000);
  for (guint i = 0; i < BIG_MESSAGES; i++)
    g_assert_true (engine_io_socket_send_text_full (socket, text, on_sent, &counts, NULL, NULL));
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), ==, BIG_MESSAGES);

  start = g_get_monotonic_time ();
  third = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (third != NULL);
  assert_error_response (third, 3);

  post = test_http_request (poll->http, "POST", poll->target, NULL, TEST_S ("4late"),
                            REL_WAIT_MS, &error);
  closed_before = fx_closes (fx) > 0;
  g_assert_no_error (error);
  test_require (post != NULL);
  g_test_message ("POST answered %" G_GINT64_FORMAT " ms after the close (session %s)",
                  (g_get_monotonic_time () - start) / 1000, closed_before ? "ended" : "closing");
  /* Closing, not gone (the writes hold it): the answer is the close's. */
  g_assert_false (closed_before);
  assert_error_response (post, 1);

  g_assert_cmpint (fx_wait_close (fx, REL_WAIT_MS), ==, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
  g_test_message ("session ended %" G_GINT64_FORMAT " ms after the close",
                  (fx_closed_at (fx) - start) / 1000);
  g_assert_cmpint ((fx_closed_at (fx) - start) / 1000, <,
                   test_scaled_ms (LINGER_MS + WRITE_TIMEOUT_S * 1000 + 2000));
  g_assert_true (wait_counts (&counts, 2 * BIG_MESSAGES, REL_WAIT_MS));
  g_usleep (100 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts.sent), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts.unsent), ==, 2 * BIG_MESSAGES);
  g_assert_cmpuint (fx_count_messages (fx, "late"), ==, 0);
  g_assert_cmpuint (fx_closes (fx), ==, 1);

  close (fd1);
  close (fd2);
  g_clear_object (&socket);
  g_clear_pointer (&poll, rel_poll_free);
  fx_free (fx);
  test_log_check ();
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/reliability/closing-attack/slow-body-past-linger", test_slow_body_past_linger);
  g_test_add_func ("/reliability/closing-attack/many-lingerers", test_many_lingerers);
  g_test_add_data_func ("/reliability/closing-attack/chunked-shutdown",
                        GINT_TO_POINTER (TRUE), test_chunked_shutdown);
  g_test_add_data_func ("/reliability/closing-attack/chunked-shutdown-only",
                        GINT_TO_POINTER (FALSE), test_chunked_shutdown);
  g_test_add_func ("/reliability/closing-attack/dropped-server", test_dropped_server);
  g_test_add_func ("/reliability/closing-attack/overlapping-in-linger", test_overlapping_in_linger);
  g_test_add_func ("/reliability/closing-attack/body-across-close", test_body_across_close);
  g_test_add_data_func ("/reliability/closing-attack/held-post/app-close",
                        GINT_TO_POINTER (HELD_APP_CLOSE), test_held_post);
  g_test_add_data_func ("/reliability/closing-attack/held-post/client-error",
                        GINT_TO_POINTER (HELD_CLIENT_ERROR), test_held_post);
  g_test_add_data_func ("/reliability/closing-attack/held-post/shutdown",
                        GINT_TO_POINTER (HELD_SHUTDOWN), test_held_post);
  g_test_add_data_func ("/reliability/closing-attack/held-post-client-gone/drain",
                        GINT_TO_POINTER (GONE_THEN_DRAIN), test_held_post_client_gone);
  g_test_add_data_func ("/reliability/closing-attack/held-post-client-gone/app-close",
                        GINT_TO_POINTER (GONE_THEN_APP_CLOSE), test_held_post_client_gone);
  g_test_add_data_func ("/reliability/closing-attack/held-post-client-gone/shutdown",
                        GINT_TO_POINTER (GONE_THEN_SHUTDOWN), test_held_post_client_gone);
  g_test_add_func ("/reliability/closing-attack/held-post-upgrade", test_held_post_upgrade);
  g_test_add_func ("/reliability/closing-attack/post-storm", test_post_storm);
  g_test_add_func ("/reliability/closing-attack/posts-while-last-poll-unread",
                   test_posts_while_last_poll_unread);
  g_test_add_func ("/reliability/closing-attack/client-error-while-writing",
                   test_client_error_while_writing);

  return g_test_run ();
}
