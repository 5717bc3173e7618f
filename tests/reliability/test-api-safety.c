/* test-api-safety.c: the public API used where applications use it
 *
 * - engine_io_server_close() from a ::message handler (a "/shutdown"
 *   command), over WebSocket and polling, with signals on session threads
 *   and with #EngineIOServer:callback-context: no crash, no deadlock, the
 *   call returns at once, the shutdown completes well within the 10 s it
 *   may take at worst, and engine_io_server_close_async() reports it;
 * - engine_io_server_close_async() from the application's thread, and with
 *   a cancelled cancellable;
 * - reading another socket's user data while its owner replaces it
 *   (engine_io_socket_dup_user_data(), engine_io_socket_dup_user_object()):
 *   meaningful under ASan and TSan, where a use after free or a race fails;
 * - a close packet POSTed while a GET waits: the GET gets a noop (`6`), the
 *   POST `ok`, later requests 400, as the reference answers;
 * - engineio-echo ($ENGINEIO_ECHO) echoes text with U+0000 whole and exits
 *   with status 0 after --address (in the ASan build LeakSanitizer makes a
 *   leak fail the exit status).
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"

/* How long the client side waits for anything: short enough that a server
 * that never closes fails the test well within meson's timeout. */
#define CLIENT_WAIT_MS (test_scaled_ms (8000))
/* The shutdown from a handler must be done within this (the server gives
 * sessions up to 10 s; these close at once). */
#define SHUTDOWN_BOUND_US (5 * G_USEC_PER_SEC)
/* engine_io_server_close() from a handler only starts the shutdown. */
#define HANDLER_CLOSE_BOUND_US (1 * G_USEC_PER_SEC)

typedef enum
{
  KIND_WEBSOCKET,
  KIND_POLLING,
} Kind;

typedef struct
{
  Kind     kind;
  gboolean context;  /* callback-context = the default main context */
} Case;

typedef struct
{
  const Case     *c;
  TestLoopback    lb;                 /* the sessions watched, without a ::message handler */
  GThread        *main_thread;

  int             n_connections;      /* (atomic) */
  int             n_closes;           /* (atomic) */
  int             n_shutdown_closes;  /* (atomic) reason server shutting down */

  GMutex          lock;
  gint64          command_at;         /* (lock) "/shutdown" handled */
  gint64          handler_close_us;   /* (lock) engine_io_server_close() in the handler */
  gint            handler_calls;      /* (lock) */
  gboolean        closed_fired;       /* (lock) the close_async callback ran */
  gint64          closed_at;          /* (lock) */
  gboolean        closed_ok;          /* (lock) close_finish() said TRUE */
  gboolean        closed_on_main;     /* (lock) in the main thread */
  gint            closes_at_callback; /* (lock) ::close emitted before it */

  /* The client thread's results. */
  GThread        *client;
  int             client_done;        /* (atomic) */
  char           *client_error;       /* (lock) */
  char           *result[2];          /* (lock) what each session saw at the end */
} Fixture;

static void
fixture_client_error (Fixture    *f,
                      const char *format,
                      ...) G_GNUC_PRINTF (2, 3);

static void
fixture_client_error (Fixture    *f,
                      const char *format,
                      ...)
{
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_mutex_lock (&f->lock);
  if (f->client_error == NULL)
    f->client_error = message;
  else
    g_free (message);
  g_mutex_unlock (&f->lock);
}

/* Iterates the default main context (the callback context of the context
 * cases, and where close_async() from a session thread reports) until
 * @done or @timeout_ms. */
static gboolean
iterate_until (gboolean (*done) (Fixture *f),
               Fixture   *f,
               guint      timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (!done (f))
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
  return TRUE;
}

static void
on_close_finished (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok = engine_io_server_close_finish (ENGINE_IO_SERVER (source), result, &error);

  g_mutex_lock (&f->lock);
  f->closed_fired = TRUE;
  f->closed_at = g_get_monotonic_time ();
  f->closed_ok = ok && error == NULL;
  f->closed_on_main = g_thread_self () == f->main_thread;
  f->closes_at_callback = g_atomic_int_get (&f->n_shutdown_closes);
  g_mutex_unlock (&f->lock);
}

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  Fixture *f = user_data;
  gint64 start;

  if (text == NULL || strcmp (text, "/shutdown") != 0)
    {
      if (text != NULL)
        engine_io_socket_send_text (socket, text, NULL);
      return;
    }

  /* What an application writes in its command handler. */
  start = g_get_monotonic_time ();
  engine_io_server_close (engine_io_socket_get_server (socket));
  g_mutex_lock (&f->lock);
  f->command_at = start;
  f->handler_close_us = g_get_monotonic_time () - start;
  f->handler_calls++;
  g_mutex_unlock (&f->lock);

  engine_io_server_close_async (engine_io_socket_get_server (socket), NULL, on_close_finished, f);
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  Fixture *f = user_data;

  if (reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN)
    g_atomic_int_inc (&f->n_shutdown_closes);
  g_atomic_int_inc (&f->n_closes);
}

static void
on_connection (TestLoopback   *loopback,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;

  g_signal_connect (socket, "message", G_CALLBACK (on_message), f);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), f);
  g_atomic_int_inc (&f->n_connections);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  static const Case plain = { KIND_POLLING, FALSE };

  f->c = data != NULL ? data : &plain;
  g_mutex_init (&f->lock);
  f->main_thread = g_thread_self ();
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_NO_MESSAGE;
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  g_object_set (f->lb.server, "ping-interval", 5000, "ping-timeout", 5000, NULL);
  if (f->c->context)
    g_object_set (f->lb.server, "callback-context", g_main_context_default (), NULL);
  test_loopback_listen (&f->lb);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  GWeakRef weak;

  if (f->client != NULL)
    {
      /* Bounded: the client's own waits are. */
      g_thread_join (f->client);
      f->client = NULL;
    }

  if (f->lb.server != NULL)
    {
      gint64 start = g_get_monotonic_time ();

      engine_io_server_close (f->lb.server);
      g_assert_cmpint (g_get_monotonic_time () - start, <, 12 * G_USEC_PER_SEC);
      g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);

      /* The server is finalized once nothing holds it, not even the
       * shutdown thread (which may drop the last reference). */
      g_weak_ref_init (&weak, f->lb.server);
      g_clear_object (&f->lb.server);
      {
        gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
        EngineIOServer *still;

        while ((still = g_weak_ref_get (&weak)) != NULL && g_get_monotonic_time () < deadline)
          {
            g_object_unref (still);
            g_main_context_iteration (NULL, FALSE);
            g_usleep (1000);
          }
        if (still != NULL)
          {
            g_test_fail_printf ("the server was still alive 5 s after its last reference was dropped");
            g_object_unref (still);
          }
      }
      g_weak_ref_clear (&weak);
    }

  /* Sources the sessions left in the default context (the context cases). */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  test_loopback_clear (&f->lb);

  g_free (f->client_error);
  g_free (f->result[0]);
  g_free (f->result[1]);
  g_mutex_clear (&f->lock);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* engine_io_server_close() from a ::message handler                    */
/* ------------------------------------------------------------------ */

static gboolean
shutdown_done (Fixture *f)
{
  gboolean fired;

  g_mutex_lock (&f->lock);
  fired = f->closed_fired;
  g_mutex_unlock (&f->lock);
  return fired && g_atomic_int_get (&f->client_done);
}

static void
set_result (Fixture    *f,
            guint       index,
            char       *result)
{
  g_mutex_lock (&f->lock);
  g_free (f->result[index]);
  f->result[index] = result;
  g_mutex_unlock (&f->lock);
}

/* Two WebSocket sessions; the first sends "/shutdown"; both wait for the
 * server's close frame. */
static gpointer
websocket_client (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) a = NULL;
  g_autoptr(TestWs) b = NULL;
  g_autofree char *sid_a = NULL;
  g_autofree char *sid_b = NULL;
  gint code;

  a = rel_ws_open (f->lb.port, &sid_a, &error);
  if (a == NULL)
    {
      fixture_client_error (f, "WebSocket session A: %s", error->message);
      goto out;
    }
  b = rel_ws_open (f->lb.port, &sid_b, &error);
  if (b == NULL)
    {
      fixture_client_error (f, "WebSocket session B: %s", error->message);
      goto out;
    }
  if (!rel_ws_echo (a, "hello", CLIENT_WAIT_MS, &error))
    {
      fixture_client_error (f, "echo before the shutdown: %s", error->message);
      goto out;
    }
  if (!rel_ws_send (a, "4/shutdown", &error))
    {
      fixture_client_error (f, "sending /shutdown: %s", error->message);
      goto out;
    }
  code = rel_ws_wait_server_close (a, CLIENT_WAIT_MS);
  set_result (f, 0, g_strdup_printf ("%d", code));
  code = rel_ws_wait_server_close (b, CLIENT_WAIT_MS);
  set_result (f, 1, g_strdup_printf ("%d", code));

out:
  g_atomic_int_set (&f->client_done, 1);
  return NULL;
}

/* The answer to a waiting GET, as "<status> <body>". */
static char *
receive_poll (TestHttp *http)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response = test_http_receive (http, CLIENT_WAIT_MS, &error);
  g_autofree char *text = NULL;

  if (response == NULL)
    return g_strdup_printf ("no answer: %s", error->message);
  text = test_response_text (response);
  return g_strdup_printf ("%u %s", response->status, text);
}

/* Two polling sessions, each with a GET waiting; the first POSTs
 * "/shutdown" (on a second connection); both GETs must be answered with
 * the close packet. */
static gpointer
polling_client (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) a = NULL;
  g_autoptr(RelPoll) b = NULL;
  g_autoptr(TestHttp) poster = NULL;
  g_autoptr(TestResponse) response = NULL;

  a = rel_poll_open (f->lb.port, &error);
  if (a == NULL)
    {
      fixture_client_error (f, "polling session A: %s", error->message);
      goto out;
    }
  b = rel_poll_open (f->lb.port, &error);
  if (b == NULL)
    {
      fixture_client_error (f, "polling session B: %s", error->message);
      goto out;
    }
  if (!rel_poll_send_get (a, &error) || !rel_poll_send_get (b, &error))
    {
      fixture_client_error (f, "sending the GETs: %s", error->message);
      goto out;
    }
  /* Both GETs are waiting once nothing comes for a moment. */
  if (test_http_wait_readable (a->http, 100) || test_http_wait_readable (b->http, 100))
    {
      fixture_client_error (f, "a GET was answered before anything was sent");
      goto out;
    }
  poster = test_http_new (f->lb.port);
  response = test_http_request (poster, "POST", a->target, NULL, TEST_S ("4/shutdown"),
                                CLIENT_WAIT_MS, &error);
  if (response == NULL || response->status != 200)
    {
      fixture_client_error (f, "POST /shutdown: %s",
                            response == NULL ? error->message : "not 200");
      goto out;
    }
  set_result (f, 0, receive_poll (a->http));
  set_result (f, 1, receive_poll (b->http));

out:
  g_atomic_int_set (&f->client_done, 1);
  return NULL;
}

static void
test_close_from_handler (Fixture       *f,
                         gconstpointer  data)
{
  gint64 handler_close_us, took;
  gboolean fired, ok, on_main;
  gint closes_at_callback, calls;

  g_test_summary ("engine_io_server_close() from a ::message handler returns at once, "
                  "the shutdown completes within 5 s, and close_async() reports it after "
                  "every ::close (issue 12, item 8)");
  test_require (f->lb.port != 0);

  f->client = g_thread_new ("client", f->c->kind == KIND_WEBSOCKET ? websocket_client : polling_client, f);
  if (!iterate_until (shutdown_done, f, 15000))
    {
      g_test_fail_printf ("the shutdown from a handler did not complete within 15 s "
                          "(client done: %d; %d sessions closed)",
                          g_atomic_int_get (&f->client_done), g_atomic_int_get (&f->n_closes));
    }

  g_mutex_lock (&f->lock);
  handler_close_us = f->handler_close_us;
  fired = f->closed_fired;
  ok = f->closed_ok;
  on_main = f->closed_on_main;
  closes_at_callback = f->closes_at_callback;
  calls = f->handler_calls;
  took = f->closed_at - f->command_at;
  if (f->client_error != NULL)
    g_test_fail_printf ("client: %s", f->client_error);
  g_test_message ("session A saw “%s”, session B “%s”; close() in the handler took %" G_GINT64_FORMAT
                  " us; the shutdown %" G_GINT64_FORMAT " us",
                  f->result[0] ? f->result[0] : "(nothing)", f->result[1] ? f->result[1] : "(nothing)",
                  handler_close_us, took);
  g_mutex_unlock (&f->lock);

  g_assert_cmpint (calls, ==, 1);
  g_assert_cmpint (handler_close_us, <, HANDLER_CLOSE_BOUND_US);
  g_assert_true (fired);
  g_assert_true (ok);
  g_assert_true (on_main);  /* the default context: the caller's, or the global one from a session thread */
  g_assert_cmpint (took, <, SHUTDOWN_BOUND_US);
  g_assert_cmpint (closes_at_callback, ==, 2);
  g_assert_cmpint (g_atomic_int_get (&f->n_closes), ==, 2);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);

  g_mutex_lock (&f->lock);
  if (f->c->kind == KIND_WEBSOCKET)
    {
      /* A close frame (1000, or 1001 "going away"), then the end. */
      for (guint i = 0; i < 2; i++)
        if (g_strcmp0 (f->result[i], "1000") != 0 && g_strcmp0 (f->result[i], "1001") != 0)
          g_test_fail_printf ("session %c ended with %s, not a close frame",
                              'A' + i, f->result[i] ? f->result[i] : "(nothing)");
    }
  else
    {
      /* The waiting GETs got the close packet. */
      for (guint i = 0; i < 2; i++)
        if (f->result[i] == NULL || !g_str_has_prefix (f->result[i], "200 ") ||
            !g_str_has_suffix (f->result[i], "1"))
          g_test_fail_printf ("session %c's GET got “%s”, not the close packet",
                              'A' + i, f->result[i] ? f->result[i] : "(nothing)");
    }
  g_mutex_unlock (&f->lock);

  /* Closed: closing again returns at once, and close_async() completes. */
  {
    gint64 start = g_get_monotonic_time ();

    engine_io_server_close (f->lb.server);
    g_assert_cmpint (g_get_monotonic_time () - start, <, HANDLER_CLOSE_BOUND_US);
    g_mutex_lock (&f->lock);
    f->closed_fired = FALSE;
    g_mutex_unlock (&f->lock);
    engine_io_server_close_async (f->lb.server, NULL, on_close_finished, f);
    g_assert_true (iterate_until (shutdown_done, f, 5000));
  }
}

/* ------------------------------------------------------------------ */
/* close_async() from the application's thread                          */
/* ------------------------------------------------------------------ */

static gboolean
closed_fired (Fixture *f)
{
  gboolean fired;

  g_mutex_lock (&f->lock);
  fired = f->closed_fired;
  g_mutex_unlock (&f->lock);
  return fired;
}

typedef struct
{
  gboolean  fired;
  GError   *error;
} CancelResult;

static void
on_cancelled_close (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  CancelResult *r = user_data;

  r->fired = TRUE;
  g_assert_false (engine_io_server_close_finish (ENGINE_IO_SERVER (source), result, &r->error));
}

static gpointer
open_poll_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr(GError) error = NULL;
  RelPoll *poll = rel_poll_open (f->lb.port, &error);

  if (poll == NULL)
    fixture_client_error (f, "polling session: %s", error->message);
  g_atomic_int_set (&f->client_done, 1);
  return poll;
}

static gboolean
client_done (Fixture *f)
{
  return g_atomic_int_get (&f->client_done);
}

/* A polling session opened on another thread while this one iterates the
 * default context (which runs the handshake in the context cases). */
static RelPoll *
open_poll (Fixture *f)
{
  GThread *thread;

  g_atomic_int_set (&f->client_done, 0);
  thread = g_thread_new ("client", open_poll_thread, f);
  iterate_until (client_done, f, 25000);
  return g_thread_join (thread);
}

static void
test_close_async_from_app (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  CancelResult cancelled = { FALSE, NULL };
  gint64 start;

  g_test_summary ("close_async() from the application's thread: a cancelled wait reports "
                  "G_IO_ERROR_CANCELLED, the shutdown goes on, and the other call's "
                  "callback runs once every session closed");
  test_require (f->lb.port != 0);

  poll = open_poll (f);
  test_require (poll != NULL);

  g_cancellable_cancel (cancellable);
  start = g_get_monotonic_time ();
  engine_io_server_close_async (f->lb.server, cancellable, on_cancelled_close, &cancelled);
  engine_io_server_close_async (f->lb.server, NULL, on_close_finished, f);
  g_assert_cmpint (g_get_monotonic_time () - start, <, HANDLER_CLOSE_BOUND_US);

  g_assert_true (iterate_until (closed_fired, f, 10000));
  g_assert_cmpint (g_get_monotonic_time () - start, <, SHUTDOWN_BOUND_US);
  g_assert_true (cancelled.fired);
  g_assert_error (cancelled.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&cancelled.error);
  g_mutex_lock (&f->lock);
  g_assert_true (f->closed_ok);
  g_assert_true (f->closed_on_main);
  g_assert_cmpint (f->closes_at_callback, ==, 1);
  g_mutex_unlock (&f->lock);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
  g_assert_true (test_port_refuses (f->lb.port));
}

static void
on_last_words_sent (EngineIOSocket *socket,
                    gboolean        flushed,
                    gpointer        user_data)
{
  g_atomic_int_set ((int *) user_data, flushed ? 1 : 2);
}

static void
test_close_lingering_poll (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestResponse) last = NULL;
  g_autoptr(GError) error = NULL;
  int sent = 0;  /* (atomic) 0: no callback yet, 1: flushed, 2: not flushed */

  g_test_summary ("The server closes while a polling session has a message queued and no "
                  "poll waiting: the client's next poll (within the linger) gets the message "
                  "then “1”, not 503, and the send callback says TRUE");
  test_require (f->lb.port != 0);

  poll = open_poll (f);
  test_require (poll != NULL);
  socket = engine_io_server_lookup_socket (f->lb.server, poll->sid);
  test_require (socket != NULL);
  g_assert_true (engine_io_socket_send_text_full (socket, "last words", on_last_words_sent,
                                                  &sent, NULL, &error));
  g_assert_no_error (error);

  engine_io_server_close_async (f->lb.server, NULL, on_close_finished, f);
  last = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (last != NULL);
  /* The poll may reach the session before the close does: it then takes
   * the message while the session is open. What matters is the same: the
   * message arrives and its callback says TRUE. (If the close finds that
   * response still being written, the session lingers and the next poll
   * gets `1`, close-async/inflight-poll; if it was written, the shutdown,
   * with nothing left to deliver, does not wait for another poll.) */
  if (last->status == 200 && test_response_body_equal (last, TEST_S ("4last words")))
    g_test_message ("the poll came before the close");
  else if (last->status != 200 || !test_response_body_equal (last, TEST_S ("4last words\x1e" "1")))
    {
      g_autofree char *text = test_response_text (last);
      g_test_fail_printf ("the last poll got %u “%s”, not 200 “4last words␞1”", last->status, text);
    }

  g_assert_true (iterate_until (closed_fired, f, 10000));
  g_assert_cmpint (g_atomic_int_get (&sent), ==, 1);
  g_mutex_lock (&f->lock);
  g_assert_true (f->closed_ok);
  g_mutex_unlock (&f->lock);
}

/* The last poll of a lingering session, read slowly: its response (6 MB,
 * more than the kernel's buffers take) is still being written when the
 * linger (2 s) ends. */
#define SLOW_LAST_MESSAGES 6
#define SLOW_LAST_SIZE 999000

/* A poll for @target on a new connection with a small receive buffer,
 * not read yet: its response stays in the server's hands while it is
 * larger than the kernel's buffers. */
static int
slow_poll_send (guint       port,
                const char *target)
{
  g_autofree char *get = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
  struct sockaddr_in address = { 0 };
  int rcvbuf = 4096;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  address.sin_family = AF_INET;
  address.sin_port = htons ((guint16) port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  g_assert_true (rel_tcp_send (fd, get, strlen (get)));
  return fd;
}

/* Reads that poll's response into @got (head and body) until its
 * Content-Length is complete, the connection ends or CLIENT_WAIT_MS pass.
 * Returns the body's length (0 if no head came) and its offset in @body_at. */
static gsize
slow_poll_read (int         fd,
                GByteArray *got,
                gsize      *body_at)
{
  gint64 deadline = g_get_monotonic_time () + CLIENT_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  gsize length = 0;

  *body_at = 0;
  while (g_get_monotonic_time () < deadline && (length == 0 || got->len < *body_at + length))
    {
      guint8 chunk[65536];
      ssize_t n = recv (fd, chunk, sizeof chunk, MSG_DONTWAIT);

      if (n > 0)
        g_byte_array_append (got, chunk, (guint) n);
      else if (n == 0)
        break;
      else
        g_usleep (1000);
      if (length == 0 && got->len > 0)
        {
          const char *end = g_strstr_len ((const char *) got->data, got->len, "\r\n\r\n");
          const char *field = end != NULL ? g_strstr_len ((const char *) got->data,
                                                          end - (const char *) got->data,
                                                          "Content-Length: ") : NULL;
          if (field != NULL)
            {
              *body_at = (gsize) (end + 4 - (const char *) got->data);
              length = g_ascii_strtoull (field + strlen ("Content-Length: "), NULL, 10);
            }
        }
    }
  return length;
}

static void
on_slow_last_sent (EngineIOSocket *socket,
                   gboolean        flushed,
                   gpointer        user_data)
{
  int *counts = user_data;  /* [0]: TRUE, [1]: FALSE; atomic */

  g_atomic_int_inc (&counts[flushed ? 0 : 1]);
}

/* The slow-poll cases' server (TestLoopback, its sessions watched without
 * a ::message handler) and a polling session; @session is its socket, or
 * NULL (and the test failed). */
static void
slow_poll_setup (TestLoopback     *lb,
                 RelPoll         **poll,
                 EngineIOSocket  **session)
{
  g_autoptr(GError) error = NULL;

  test_loopback_init (lb);
  lb->watch = TEST_WATCH_NO_MESSAGE;
  g_object_set (lb->server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  *session = NULL;
  test_require (test_loopback_listen (lb));
  *poll = rel_poll_open (lb->port, &error);
  g_assert_no_error (error);
  test_require (*poll != NULL);
  *session = engine_io_server_lookup_socket (lb->server, (*poll)->sid);
}

static void
test_close_lingering_slow_poll (void)
{
  g_auto(TestLoopback) lb = { 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) session = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) message = g_string_sized_new (SLOW_LAST_SIZE);
  g_autoptr(GByteArray) got = g_byte_array_new ();
  int counts[2] = { 0, 0 };
  int fd;
  gint64 deadline;
  gsize body_at = 0, length = 0;

  g_test_summary ("An application closes a polling session with 6 MB queued; its last poll "
                  "comes at once but is read slowly, past the 2 s linger: every send callback "
                  "says TRUE once the response is written (the linger's end closed the "
                  "session under the write and said FALSE for messages the client then got)");

  slow_poll_setup (&lb, &poll, &session);
  test_require (session != NULL);

  while (message->len < SLOW_LAST_SIZE)
    g_string_append_c (message, 'w');
  for (guint i = 0; i < SLOW_LAST_MESSAGES; i++)
    {
      g_assert_true (engine_io_socket_send_text_full (session, message->str, on_slow_last_sent,
                                                      counts, NULL, &error));
      g_assert_no_error (error);
    }
  engine_io_socket_close (session);

  /* The last poll, on a connection with a small receive buffer, not read
   * for longer than the linger. */
  fd = slow_poll_send (lb.port, poll->target);
  g_usleep (2500 * 1000);  /* the client is slow: past the linger */

  /* Now it reads the whole response: 200, the six messages, then `1`.
   * (The close is asynchronous: on a loaded machine the poll may reach the
   * session first and take the six messages while it is open, and the
   * close then finds that response being written; no second poll comes,
   * so no `1`. Either way the write is waited for: seen under ASan, where
   * the linger's end reported the six FALSE.) */
  length = slow_poll_read (fd, got, &body_at);
  close (fd);
  test_require (length > 0);
  g_assert_cmpuint (got->len, ==, body_at + length);
  g_assert_true (g_str_has_prefix ((const char *) got->data, "HTTP/1.1 200"));
  if (got->data[got->len - 1] == '1')
    {
      g_assert_cmpuint (length, ==, SLOW_LAST_MESSAGES * (SLOW_LAST_SIZE + 2) + 1);
      g_assert_cmpint (got->data[got->len - 2], ==, 0x1e);
    }
  else
    {
      g_test_message ("the poll came before the close: the messages without `1`");
      g_assert_cmpuint (length, ==, SLOW_LAST_MESSAGES * (SLOW_LAST_SIZE + 2) - 1);
    }

  /* Written whole: every callback says so, once. */
  deadline = g_get_monotonic_time () + CLIENT_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_atomic_int_get (&counts[0]) + g_atomic_int_get (&counts[1]) < SLOW_LAST_MESSAGES &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts[1]), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts[0]), ==, SLOW_LAST_MESSAGES);
}

/* A poll that took the queue while the session was open, its response
 * still being written (read slowly), when the server closes: the write
 * finishes and is reported, the next poll gets `1`. With @app_close the
 * application closes the session instead, and the client reads only after
 * the linger: the write is still waited for and reported, and the session
 * ends with it (the next poll: unknown session). */
static void
close_inflight_poll_run (gboolean app_close)
{
  g_auto(TestLoopback) lb = { 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) session = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) message = g_string_sized_new (SLOW_LAST_SIZE);
  g_autoptr(GByteArray) got = g_byte_array_new ();
  int counts[2] = { 0, 0 };
  int fd;
  gint64 deadline;
  gsize body_at = 0, length = 0;

  slow_poll_setup (&lb, &poll, &session);
  test_require (session != NULL);

  while (message->len < SLOW_LAST_SIZE)
    g_string_append_c (message, 'w');
  for (guint i = 0; i < SLOW_LAST_MESSAGES; i++)
    {
      g_assert_true (engine_io_socket_send_text_full (session, message->str, on_slow_last_sent,
                                                      counts, NULL, &error));
      g_assert_no_error (error);
    }

  /* A poll on a connection with a small receive buffer takes the queue
   * while the session is open; it is not read yet. */
  fd = slow_poll_send (lb.port, poll->target);
  deadline = g_get_monotonic_time () + CLIENT_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (engine_io_socket_get_send_queue_length (session) > 0 && g_get_monotonic_time () < deadline)
    g_usleep (5 * 1000);
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (session), ==, 0);

  if (app_close)
    {
      engine_io_socket_close (session);
      g_usleep (2500 * 1000);  /* the client is slow: past the linger */
    }
  else
    engine_io_server_close_async (lb.server, NULL, NULL, NULL);

  /* The client reads the whole response now: 200 and the six messages. */
  length = slow_poll_read (fd, got, &body_at);
  close (fd);
  test_require (length > 0);
  g_assert_cmpuint (got->len, ==, body_at + length);
  g_assert_true (g_str_has_prefix ((const char *) got->data, "HTTP/1.1 200"));
  g_assert_cmpuint (length, ==, SLOW_LAST_MESSAGES * (SLOW_LAST_SIZE + 2) - 1);

  /* The next poll (within the linger) is told the session is closed;
   * after it (or once its linger is over), that the session is unknown. */
    {
      g_autoptr(TestResponse) last = NULL;

      last = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1,
                                CLIENT_WAIT_MS, &error);
      g_assert_no_error (error);
      test_require (last != NULL);
      g_assert_cmpuint (last->status, ==, app_close ? 400 : 200);
      if (!app_close)
        g_assert_true (test_response_body_equal (last, TEST_S ("1")));
    }

  deadline = g_get_monotonic_time () + CLIENT_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_atomic_int_get (&counts[0]) + g_atomic_int_get (&counts[1]) < SLOW_LAST_MESSAGES &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  g_assert_cmpint (g_atomic_int_get (&counts[1]), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&counts[0]), ==, SLOW_LAST_MESSAGES);
}

static void
test_close_inflight_poll (void)
{
  g_test_summary ("A server close while a poll response that took the queue (6 MB, read "
                  "slowly) is still being written: every send callback says TRUE once it is "
                  "written, and the client's next poll gets `1` (the session ended at once: "
                  "FALSE for what the client got, and no `1`)");
  close_inflight_poll_run (FALSE);
}

static void
test_close_inflight_poll_app (void)
{
  g_test_summary ("An application close while a poll response that took the queue (6 MB) "
                  "is still being written, read only after the 2 s linger: every send "
                  "callback says TRUE once it is written (the linger's end closed the session "
                  "under the write and said FALSE for what the client then got)");
  close_inflight_poll_run (TRUE);
}

static void
on_block_connection (EngineIOServer *server,
                     EngineIOSocket *socket,
                     gpointer        user_data)
{
  test_blocker_connect (user_data, socket);
}

static void
close_blocked_session (gboolean drop_server_first)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(GError) error = NULL;
  TestBlocker b;
  gint64 start;
  guint port;
  guint threads = test_count_threads ();

  if (!drop_server_first)
    g_test_summary ("engine_io_server_close() while a session's handler blocks (longer than "
                  "the close waits) and that session's GET poll waits: the close ends (the "
                  "waiting poll is answered) instead of stopping libmicrohttpd with a "
                  "suspended connection, which aborted the process");

  test_blocker_init (&b);
  g_object_set (server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  g_signal_connect (server, "connection", G_CALLBACK (on_block_connection), &b);
  port = test_server_listen (server);
  test_require (port != 0);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);

  g_assert_true (rel_poll_post (poll, "4block", &error));
  g_assert_no_error (error);
  test_require (test_blocker_wait_entered (&b, CLIENT_WAIT_MS));
  /* A poll waits now (nothing queued), its session's thread busy. */
  g_assert_true (rel_poll_send_get (poll, &error));
  g_assert_no_error (error);
  g_assert_false (test_http_wait_readable (poll->http, 300));

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  start = g_get_monotonic_time ();
  engine_io_server_close (server);
  g_test_message ("close returned after %.1f s", (g_get_monotonic_time () - start) / 1e6);
  answer = test_http_receive (poll->http, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  g_assert_cmpuint (answer->status, ==, 503);

  /* The application may drop the server while that handler still blocks:
   * the session's thread outlives the server and its loop pool must stay
   * until that thread ends (it used to be freed under it: a warning that
   * GTest makes fatal, and a use after free as the thread ended). */
  if (drop_server_first)
    g_clear_object (&server);
  test_blocker_release (&b);
  /* The session's thread ends once its handler returns. */
  g_assert_cmpuint (test_wait_count_at_most (test_count_threads, threads, CLIENT_WAIT_MS), <=, threads);
  g_clear_object (&server);
  /* The thread count may reach its mark early (threads of earlier tests
   * ending): the blocker is freed only once the handler is done with it
   * (ThreadSanitizer saw it freed under the handler's g_cond_wait_until()).
   * And the session ends, its socket freed, in both threading modes (a
   * polling session's end needs no timer; the WebSocket case, which did
   * not end in pooled mode, is /tls/close-blocked-session). */
  g_assert_true (test_blocker_wait_returned (&b, CLIENT_WAIT_MS));
  g_assert_true (test_blocker_wait_finalized (&b, CLIENT_WAIT_MS));
  test_blocker_clear (&b);
  test_log_check ();
}

static gpointer
close_thread_func (gpointer data)
{
  engine_io_server_close (data);
  return NULL;
}

/* The end of a blocked-session case: the handler released and returned,
 * the server dropped, the session's socket finalized, the blocker freed. */
static void
release_blocked (TestBlocker     *b,
                 EngineIOServer **server)
{
  test_blocker_release (b);
  g_assert_true (test_blocker_wait_returned (b, CLIENT_WAIT_MS));
  g_clear_object (server);
  g_assert_true (test_blocker_wait_finalized (b, CLIENT_WAIT_MS));
  test_blocker_clear (b);
}

static void
test_close_blocked_session_again (void)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(RelPoll) other_session = NULL;
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(TestHttp) get_http = NULL;
  g_autoptr(TestHttp) post_http = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *head = NULL;
  g_autofree char *big = g_strnfill (4000, 'x');
  TestBlocker b;
  GThread *closer;
  guint port;
  int slow_post;

  g_test_summary ("engine_io_server_close() while a polling session's handler blocks past "
                  "the close's wait, the session over its receive mark: once its waiting "
                  "poll is answered 503, its client polls and POSTs again at once while "
                  "another request (a POST body still coming) keeps the close waiting; both "
                  "are answered 503 at once. They were suspended (the poll waited, the POST "
                  "was held: the session, its context blocked, still looked open), and "
                  "libmicrohttpd aborted the process when the close stopped it with a "
                  "suspended connection");

  test_blocker_init (&b);
  g_object_set (server, "ping-interval", 20000, "ping-timeout", 20000,
                "receive-queue-high-water", (guint64) 2048, NULL);
  port = test_server_listen (server);
  test_require (port != 0);
  /* Another session, not blocked (its ::connection, before the open
   * packet, is done by now). */
  other_session = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (other_session != NULL);
  g_signal_connect (server, "connection", G_CALLBACK (on_block_connection), &b);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  g_assert_true (rel_poll_post (poll, "4block", &error));
  g_assert_no_error (error);
  test_require (test_blocker_wait_entered (&b, CLIENT_WAIT_MS));
  /* Over the session's receive mark: its next POST would be held. */
  big[0] = '4';
  g_assert_true (rel_poll_post (poll, big, &error));
  g_assert_no_error (error);
  g_assert_true (rel_poll_send_get (poll, &error));
  g_assert_no_error (error);
  /* A POST of the other session whose body never completes: the close
   * waits for it (2 s) after answering the waiting poll. */
  head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                          "Content-Length: 100\r\n\r\n4ab", other_session->target);
  slow_post = rel_tcp_connect (port);
  g_assert_cmpint (slow_post, >=, 0);
  g_assert_cmpint (send (slow_post, head, strlen (head), MSG_NOSIGNAL), ==, (gssize) strlen (head));
  /* The connections the client polls and POSTs again on, open already
   * (another path: 404, kept alive). */
  get_http = test_http_new (port);
  post_http = test_http_new (port);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(TestResponse) other = test_http_request (i == 0 ? get_http : post_http, "GET",
                                                         "/elsewhere", NULL, NULL, -1,
                                                         CLIENT_WAIT_MS, &error);
      g_assert_no_error (error);
      test_require (other != NULL);
      g_assert_cmpuint (other->status, ==, 404);
    }

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  closer = g_thread_new ("closer", close_thread_func, server);
  answer = test_http_receive (poll->http, 10000 + CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  g_assert_cmpuint (answer->status, ==, 503);
  /* The client POSTs and polls again at once (the close waits up to 2 s
   * for the other POST meanwhile). */
  for (guint i = 0; i < 2; i++)
    {
      TestHttp *http = i == 0 ? post_http : get_http;
      g_autoptr(TestResponse) again = NULL;

      if (i == 0)
        g_assert_true (test_http_send (http, "POST", poll->target, NULL, "4again", 6, &error));
      else
        {
          /* A poll that came before the server is done with the first
           * poll's request would be an overlapping GET (400). */
          g_usleep (100 * 1000);
          g_assert_true (test_http_send (http, "GET", poll->target, NULL, NULL, -1, &error));
        }
      g_assert_no_error (error);
      again = test_http_receive (http, CLIENT_WAIT_MS, &error);
      g_assert_no_error (error);
      test_require (again != NULL);
      g_test_message ("%s again: %u", i == 0 ? "POST" : "GET", again->status);
      g_assert_cmpuint (again->status, ==, 503);
    }
  g_thread_join (closer);
  close (slow_post);

  release_blocked (&b, &server);
  test_log_check ();
}

static void
test_close_blocked_handshake (void)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(GError) error = NULL;
  TestBlocker b;
  guint port;

  g_test_summary ("engine_io_server_close() while a session's handler blocks past the close's "
                  "wait, with one shared loop thread (loop-threads 1): a handshake made "
                  "meanwhile, whose session would be on that blocked thread, is answered 503 "
                  "by the close. It stayed suspended (its job never ran), and libmicrohttpd "
                  "aborted the process when the close stopped it");
  test_blocker_init (&b);
  /* Both suites' modes: the handshake needs the blocked shared thread. */
  g_object_set (server, "ping-interval", 20000, "ping-timeout", 20000, "loop-threads", 1, NULL);
  g_signal_connect (server, "connection", G_CALLBACK (on_block_connection), &b);
  port = test_server_listen (server);
  test_require (port != 0);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  g_assert_true (rel_poll_post (poll, "4block", &error));
  test_require (test_blocker_wait_entered (&b, CLIENT_WAIT_MS));
  /* A handshake now: its session would be on the blocked loop. */
  http = test_http_new (port);
  g_assert_true (test_http_send (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, -1, &error));
  g_assert_no_error (error);
  /* Suspended, its job queued on the blocked thread. */
  g_assert_false (test_http_wait_readable (http, 300));

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  engine_io_server_close (server);
  answer = test_http_receive (http, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  g_assert_cmpuint (answer->status, ==, 503);
  release_blocked (&b, &server);
  test_log_check ();
}

static void
test_close_blocked_in_handshake (gconstpointer data)
{
  const char *where = data;
  gboolean websocket = g_str_has_suffix (where, "websocket");
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) answer = NULL;
  g_autoptr(GError) error = NULL;
  TestBlocker b;
  guint port;

  g_test_summary ("engine_io_server_close() while application code of a handshake blocks past "
                  "the close's wait (the admission hook, the id function, ::connection of a "
                  "polling or a WebSocket session): the handshake is answered 503 by the close "
                  "and the process goes on. The admission hook, the id function and a "
                  "WebSocket session's ::connection run after the handshake's job took its "
                  "request, which stayed suspended, and libmicrohttpd aborted the process when "
                  "the close stopped it");
  test_blocker_init (&b);
  g_object_set (server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  if (g_str_equal (where, "admission"))
    engine_io_server_set_admission_func (server, test_blocker_admission, &b, NULL);
  else if (g_str_equal (where, "id"))
    engine_io_server_set_id_func (server, test_blocker_id, &b, NULL);
  else
    g_signal_connect (server, "connection", G_CALLBACK (test_blocker_on_connection), &b);
  port = test_server_listen (server);
  test_require (port != 0);

  http = test_http_new (port);
  if (websocket)
    {
      g_autofree char *key = test_ws_make_key ();
      g_autofree char *head = g_strdup_printf ("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                                               "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                                               key);

      g_assert_true (test_http_send_raw (http, head, strlen (head), &error));
    }
  else
    g_assert_true (test_http_send (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, -1, &error));
  g_assert_no_error (error);
  test_require (test_blocker_wait_entered (&b, CLIENT_WAIT_MS));
  g_assert_false (test_http_wait_readable (http, 100));

  test_log_expect (G_LOG_LEVEL_WARNING, "still pending after 10 s");
  /* The session's thread (or the shared loop thread) is blocked. */
  test_log_expect (G_LOG_LEVEL_WARNING, "did not end in time");
  engine_io_server_close (server);
  answer = test_http_receive (http, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (answer != NULL);
  g_assert_cmpuint (answer->status, ==, 503);
  test_blocker_release (&b);
  g_assert_true (test_blocker_wait_returned (&b, CLIENT_WAIT_MS));
  g_clear_object (&server);
  if (g_str_has_prefix (where, "connection"))
    g_assert_true (test_blocker_wait_finalized (&b, CLIENT_WAIT_MS));
  test_blocker_clear (&b);
  test_log_check ();
}

static void
test_close_blocked_session (void)
{
  close_blocked_session (FALSE);
}

static void
test_close_blocked_session_drop_server (void)
{
  g_test_summary ("As close/blocked-session, and the application drops the server before "
                  "the blocked handler returns: the session's thread ends cleanly later");
  close_blocked_session (TRUE);
}

/* ------------------------------------------------------------------ */
/* User data read from other threads                                    */
/* ------------------------------------------------------------------ */

#define PATTERN_SIZE 64
#define STRESS_US (300 * 1000)

typedef struct
{
  EngineIOSocket *socket;
  gboolean        objects;  /* set_user_object() / dup_user_object() */
  int             stop;     /* (atomic) */
  int             reads;    /* (atomic) reads that found data */
  int             bad;      /* (atomic) reads that found broken data */
  int             writes;   /* (atomic) */
} Stress;

static GQuark
stress_quark (void)
{
  return g_quark_from_static_string ("api-safety-tag");
}

static gpointer
ref_bytes (gpointer data,
           gpointer user_data)
{
  return g_bytes_ref (data);
}

static gpointer
stress_writer (gpointer data)
{
  Stress *s = data;
  guint i = 0;

  while (!g_atomic_int_get (&s->stop))
    {
      guint8 value = (guint8) (i++ % 251) + 1;

      if (s->objects)
        {
          GObject *object = g_object_new (G_TYPE_OBJECT, NULL);
          guint8 *pattern = g_malloc (PATTERN_SIZE);

          memset (pattern, value, PATTERN_SIZE);
          g_object_set_qdata_full (object, stress_quark (), pattern, g_free);
          engine_io_socket_set_user_object (s->socket, object);
          g_object_unref (object);  /* the socket holds the only reference */
        }
      else
        {
          guint8 pattern[PATTERN_SIZE];

          memset (pattern, value, sizeof pattern);
          engine_io_socket_set_user_data (s->socket, g_bytes_new (pattern, sizeof pattern),
                                          (GDestroyNotify) g_bytes_unref);
        }
      g_atomic_int_inc (&s->writes);
    }
  return NULL;
}

static gboolean
pattern_ok (const guint8 *data,
            gsize         size)
{
  if (data == NULL || size != PATTERN_SIZE || data[0] == 0)
    return FALSE;
  for (gsize i = 1; i < size; i++)
    if (data[i] != data[0])
      return FALSE;
  return TRUE;
}

static gpointer
stress_reader (gpointer data)
{
  Stress *s = data;

  while (!g_atomic_int_get (&s->stop))
    {
      gboolean ok;

      if (s->objects)
        {
          GObject *object = engine_io_socket_dup_user_object (s->socket);

          if (object == NULL)
            continue;
          ok = G_IS_OBJECT (object) && pattern_ok (g_object_get_qdata (object, stress_quark ()), PATTERN_SIZE);
          g_object_unref (object);
        }
      else
        {
          GBytes *bytes = engine_io_socket_dup_user_data (s->socket, ref_bytes, NULL);
          gsize size = 0;
          const guint8 *p;

          if (bytes == NULL)
            continue;
          p = g_bytes_get_data (bytes, &size);
          ok = pattern_ok (p, size);
          g_bytes_unref (bytes);
        }
      if (!ok)
        g_atomic_int_inc (&s->bad);
      g_atomic_int_inc (&s->reads);
    }
  return NULL;
}

static void
run_stress (EngineIOSocket *socket,
            gboolean        objects)
{
  Stress s = { socket, objects, 0, 0, 0, 0 };
  GThread *writer, *readers[2];

  writer = g_thread_new ("writer", stress_writer, &s);
  readers[0] = g_thread_new ("reader", stress_reader, &s);
  readers[1] = g_thread_new ("reader", stress_reader, &s);
  g_usleep (STRESS_US);
  g_atomic_int_set (&s.stop, 1);
  g_thread_join (writer);
  g_thread_join (readers[0]);
  g_thread_join (readers[1]);

  g_test_message ("%s: %d writes, %d reads", objects ? "objects" : "pointers", s.writes, s.reads);
  g_assert_cmpint (s.writes, >, 0);
  g_assert_cmpint (s.reads, >, 0);
  g_assert_cmpint (s.bad, ==, 0);
}

static void
test_user_data_stress (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;

  g_test_summary ("A thread replaces a socket's user data as fast as it can while two others "
                  "read it with dup_user_data() / dup_user_object(): every read is whole "
                  "(under ASan/TSan: no use after free, no race) (issue 12, item 9)");
  test_require (f->lb.port != 0);

  poll = rel_poll_open (f->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  socket = engine_io_server_lookup_socket (f->lb.server, poll->sid);
  test_require (socket != NULL);

  run_stress (socket, FALSE);
  run_stress (socket, TRUE);

  /* Mixed: pointer data is not an object. */
  engine_io_socket_set_user_data (socket, g_bytes_new_static ("x", 1), (GDestroyNotify) g_bytes_unref);
  g_assert_null (engine_io_socket_dup_user_object (socket));
  engine_io_socket_set_user_object (socket, NULL);
  g_assert_null (engine_io_socket_get_user_data (socket));
  g_assert_null (engine_io_socket_dup_user_data (socket, ref_bytes, NULL));
}

/* ------------------------------------------------------------------ */
/* A client's close packet while its GET waits                          */
/* ------------------------------------------------------------------ */

static gboolean
one_closed (Fixture *f)
{
  return g_atomic_int_get (&f->n_closes) >= 1;
}

static void
test_client_close_packet (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestHttp) poster = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) get = NULL;
  g_autoptr(TestResponse) later = NULL;
  g_autoptr(TestResponse) later_post = NULL;

  g_test_summary ("A close packet POSTed while a GET waits: the POST gets “ok”, the GET a noop "
                  "“6” (the reference's answer; not “1”), later requests 400 code 1 "
                  "(issue 12, should-fix)");
  test_require (f->lb.port != 0);

  poll = rel_poll_open (f->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  test_require (rel_poll_send_get (poll, &error));
  g_assert_false (test_http_wait_readable (poll->http, 100));

  poster = test_http_new (f->lb.port);
  post = test_http_request (poster, "POST", poll->target, NULL, TEST_S ("1"), CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (post != NULL);
  g_assert_cmpuint (post->status, ==, 200);
  g_assert_true (test_response_body_equal (post, TEST_S ("ok")));

  get = test_http_receive (poll->http, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (get != NULL);
  g_assert_cmpuint (get->status, ==, 200);
  if (!test_response_body_equal (get, TEST_S ("6")))
    {
      g_autofree char *text = test_response_text (get);
      g_test_fail_printf ("the waiting GET got “%s”, not “6”", text);
    }

  g_assert_true (iterate_until (one_closed, f, CLIENT_WAIT_MS));
  later = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1, CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (later != NULL);
  g_assert_true (test_eio_is_error (later, 400, 1));
  later_post = test_http_request (poster, "POST", poll->target, NULL, TEST_S ("4x"), CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (later_post != NULL);
  g_assert_true (test_eio_is_error (later_post, 400, 1));
}

/* ------------------------------------------------------------------ */
/* engineio-echo                                                        */
/* ------------------------------------------------------------------ */

static void
test_echo_tool (Fixture       *f,
                gconstpointer  data)
{
  const char *echo = g_getenv ("ENGINEIO_ECHO");
  g_autofree char *loop_threads = g_strdup_printf ("%u", test_loop_threads_from_env ());
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestResponse) response = NULL;
  guint port = 0;
  const char *p;

  g_test_summary ("engineio-echo echoes text with U+0000 whole (polling and WebSocket), and "
                  "exits cleanly with --address given (no leaked default: LeakSanitizer "
                  "fails the exit status in the ASan build) (issue 12, should-fix)");
  if (echo == NULL)
    {
      g_test_skip ("ENGINEIO_ECHO is not set (meson test sets it)");
      return;
    }

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error, echo,
                              "--address", "127.0.0.1", "--port", "0", "--path", "/engine.io/",
                              "--transports", "polling,websocket", "--loop-threads", loop_threads,
                              NULL);
  g_assert_no_error (error);
  test_require (process != NULL);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  test_require (line != NULL);
  p = strstr (line, "127.0.0.1:");
  test_require (p != NULL);
  port = (guint) g_ascii_strtoull (p + strlen ("127.0.0.1:"), NULL, 10);
  test_require (port != 0);

  /* Polling */
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  response = test_http_request (poll->http, "POST", poll->target, NULL, TEST_S ("4a\0b\x1e" "4c"),
                                CLIENT_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL && response->status == 200);
  g_clear_pointer (&response, test_response_free);
  /* The two echoes may come in one poll or two (the second may not be
   * sent yet when the first poll is answered): what the polls bring,
   * joined with the separator, must be both, whole. */
  {
    g_autoptr(GByteArray) echoed = g_byte_array_new ();
    static const char expected[] = "4a\0b\x1e" "4c";

    for (guint polls = 0; polls < 2 && echoed->len < sizeof expected - 1; polls++)
      {
        gsize size;
        gconstpointer body;

        response = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1,
                                      CLIENT_WAIT_MS, &error);
        g_assert_no_error (error);
        test_require (response != NULL);
        g_assert_cmpuint (response->status, ==, 200);
        body = g_bytes_get_data (response->body, &size);
        if (echoed->len > 0)
          g_byte_array_append (echoed, (const guint8 *) "\x1e", 1);
        g_byte_array_append (echoed, body, size);
        g_clear_pointer (&response, test_response_free);
      }
    if (echoed->len != sizeof expected - 1 || memcmp (echoed->data, expected, echoed->len) != 0)
      {
        g_autofree char *text = g_strndup ((const char *) echoed->data, echoed->len);
        g_autofree char *escaped = NULL;

        for (guint i = 0; i < echoed->len; i++)
          if (text[i] == '\0')
            text[i] = '@';  /* shown as @, not cut */
        escaped = g_strescape (text, NULL);
        g_test_message ("polling: the echo of “4a\\0b”, “4c” was “%s” (%u bytes; U+0000 shown as @)",
                        escaped, echoed->len);
        g_test_fail ();
      }
  }

  /* WebSocket */
  {
    g_autofree char *sid = NULL;
    g_autoptr(TestWs) ws = rel_ws_open (port, &sid, &error);
    g_autoptr(TestWsFrame) frame = NULL;

    g_assert_no_error (error);
    test_require (ws != NULL);
    test_require (test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, TEST_S ("4x\0y"), &error));
    frame = test_ws_read_frame (ws, CLIENT_WAIT_MS, &error);
    g_assert_no_error (error);
    test_require (frame != NULL);
    g_assert_cmpint (frame->opcode, ==, TEST_WS_TEXT);
    g_assert_cmpmem (g_bytes_get_data (frame->payload, NULL), g_bytes_get_size (frame->payload),
                     "4x\0y", 4);
  }

  g_subprocess_send_signal (process, SIGTERM);
  g_assert_true (g_subprocess_wait (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  static const Case ws_threads = { KIND_WEBSOCKET, FALSE };
  static const Case ws_context = { KIND_WEBSOCKET, TRUE };
  static const Case poll_threads = { KIND_POLLING, FALSE };
  static const Case poll_context = { KIND_POLLING, TRUE };

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  /* GLib makes its global default main context the first time something
   * needs it; make it now. */
  g_main_context_default ();

#define ADD(path, func, c) \
  g_test_add ("/reliability/api-safety/" path, Fixture, c, fixture_setup, func, fixture_teardown)
  ADD ("close-from-handler/websocket", test_close_from_handler, &ws_threads);
  ADD ("close-from-handler/websocket-callback-context", test_close_from_handler, &ws_context);
  ADD ("close-from-handler/polling", test_close_from_handler, &poll_threads);
  ADD ("close-from-handler/polling-callback-context", test_close_from_handler, &poll_context);
  ADD ("close-async/from-app", test_close_async_from_app, &poll_threads);
  ADD ("close-async/from-app-callback-context", test_close_async_from_app, &poll_context);
  ADD ("close-async/lingering-poll", test_close_lingering_poll, &poll_threads);
  ADD ("user-data/stress", test_user_data_stress, NULL);
  ADD ("polling/client-close-packet", test_client_close_packet, NULL);
  ADD ("echo-tool", test_echo_tool, NULL);
#undef ADD
  g_test_add_func ("/reliability/api-safety/close-async/lingering-slow-poll",
                   test_close_lingering_slow_poll);
  g_test_add_func ("/reliability/api-safety/close-async/inflight-poll", test_close_inflight_poll);
  g_test_add_func ("/reliability/api-safety/close-async/inflight-poll-app-close",
                   test_close_inflight_poll_app);
  g_test_add_func ("/reliability/api-safety/close/blocked-session", test_close_blocked_session);
  g_test_add_func ("/reliability/api-safety/close/blocked-session-again",
                   test_close_blocked_session_again);
  g_test_add_func ("/reliability/api-safety/close/blocked-handshake", test_close_blocked_handshake);
  g_test_add_data_func ("/reliability/api-safety/close/blocked-in-handshake/admission", "admission",
                        test_close_blocked_in_handshake);
  g_test_add_data_func ("/reliability/api-safety/close/blocked-in-handshake/id", "id",
                        test_close_blocked_in_handshake);
  g_test_add_data_func ("/reliability/api-safety/close/blocked-in-handshake/connection-polling",
                        "connection-polling", test_close_blocked_in_handshake);
  g_test_add_data_func ("/reliability/api-safety/close/blocked-in-handshake/connection-websocket",
                        "connection-websocket", test_close_blocked_in_handshake);
  g_test_add_func ("/reliability/api-safety/close/blocked-session-drop-server",
                   test_close_blocked_session_drop_server);

  return g_test_run ();
}
