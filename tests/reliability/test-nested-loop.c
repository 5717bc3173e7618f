/* test-nested-loop.c: handlers that iterate their session's main context
 * (a nested main loop, as a modal dialog or a synchronous wait written
 * with GMainLoop would) while the session around them ends: the
 * WebSocket whose dispatch is below them on the stack must not be freed
 * under it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "relutil.h"

typedef struct
{
  TestLoopback    lb;          /* sockets kept; every session's events in lb.events */
  guint           nest_ms;     /* how long the handler iterates */
} Fixture;

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  Fixture *f = user_data;
  GMainContext *context = engine_io_socket_get_context (socket);
  gint64 end;

  if (g_strcmp0 (text, "nest") != 0)
    return;
  test_recorder_add (f->lb.events, "nesting");
  end = g_get_monotonic_time () + (gint64) f->nest_ms * 1000;
  while (g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (1000);
  test_recorder_add (f->lb.events, "nested done");
}

static void
on_connection (TestLoopback   *loopback,
               EngineIOSocket *socket,
               gpointer        data)
{
  g_signal_connect (socket, "message", G_CALLBACK (on_message), data);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (&f->lb);
  f->lb.keep_sockets = TRUE;
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  g_object_set (f->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  test_loopback_listen (&f->lb);
  /* Past the WebSocket's close timeout (3 s, not scaled) after the
   * close, within the shutdown's wait for session threads (10 s). */
  f->nest_ms = 4500;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (&f->lb);
  test_log_check ();
}

static TestWs *
open_nesting (Fixture         *f,
              EngineIOSocket **socket)
{
  TestWs *ws = test_eio_ws_open_socket (f->lb.port, f->lb.sockets, (gpointer *) socket);

  if (ws == NULL)
    return NULL;
  g_assert_true (test_ws_send_text (ws, "4nest"));
  g_assert_true (test_recorder_wait (f->lb.events, "nesting", TEST_TIMEOUT_MS));
  return ws;
}

/* The client never answers the close frame: the WebSocket's close timer
 * gives up on it while the handler still iterates. */
static void
test_app_close (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("A message handler iterates its session's context for 4.5 s; meanwhile the "
                  "application closes the socket and the client never answers the close "
                  "frame: the WebSocket is given up (3 s) while its dispatch is below the "
                  "handler (it was freed under it: a crash in wslay_event_recv)");
  test_require ((ws = open_nesting (f, &socket)) != NULL);
  engine_io_socket_close (socket);
  g_assert_true (test_recorder_wait (f->lb.events, "nested done", f->nest_ms + TEST_TIMEOUT_MS));
  test_recorder_expect (f->lb.events, TEST_TIMEOUT_MS, "close %s forced close",
                        engine_io_socket_get_id (socket));
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 1);
}

static void
on_closed (GObject      *source,
           GAsyncResult *result,
           gpointer      data)
{
  Fixture *f = data;

  engine_io_server_close_finish (ENGINE_IO_SERVER (source), result, NULL);
  test_recorder_add (f->lb.events, "server closed");
}

/* The same with a server shutdown. */
static void
test_shutdown (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  gint64 end;

  g_test_summary ("A message handler iterates its session's context for 4.5 s; meanwhile the "
                  "server shuts down (close_async) and the client never answers the close "
                  "frame: no crash, the session ends once, the shutdown completes");
  g_main_context_push_thread_default (context);
  test_require ((ws = open_nesting (f, &socket)) != NULL);
  engine_io_server_close_async (f->lb.server, NULL, on_closed, f);
  end = g_get_monotonic_time () + (gint64) (f->nest_ms + 2 * TEST_TIMEOUT_MS) * 1000;
  while (test_recorder_count (f->lb.events, "server closed") == 0 && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (2000);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "server closed"), ==, 1);
  g_assert_true (test_recorder_wait (f->lb.events, "nested done", TEST_TIMEOUT_MS));
  g_assert_cmpuint (test_recorder_count (f->lb.events, "close "), ==, 1);
  g_main_context_pop_thread_default (context);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/nested-loop/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("app-close", test_app_close);
  ADD ("shutdown", test_shutdown);
#undef ADD
  return g_test_run ();
}
