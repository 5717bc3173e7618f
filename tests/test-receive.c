/* test-receive.c: engine_io_socket_receive() and its variants (timeout,
 * try, async) against a real server over loopback, with raw WebSocket
 * clients (tests/wsutil.h). Run in both threading modes
 * (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio/engineio.h"

/* The shared loopback fixture, sockets kept; its recorder has each
 * session's "close <sid> <reason>" and what the handlers below add. No
 * ::message handler (every message goes to the receive queue) and no
 * ::drain handler (test_message_func_signals() connects its own late). */
typedef TestLoopback Fixture;

/* engine_io_socket_set_message_func() */

typedef struct
{
  Fixture *f;
  char    *name;
} FuncData;

static FuncData *
func_data_new (Fixture    *f,
               const char *name)
{
  FuncData *d = g_new0 (FuncData, 1);

  d->f = f;
  d->name = g_strdup (name);
  return d;
}

static void
func_data_free (gpointer data)
{
  FuncData *d = data;

  test_recorder_add (d->f->events, "destroy %s", d->name);
  g_free (d->name);
  g_free (d);
}

/* "block": the function waits for block_release(). */
static GMutex block_lock;
static GCond block_cond;
static gboolean block_released;

static void
block_release (void)
{
  g_mutex_lock (&block_lock);
  block_released = TRUE;
  g_cond_broadcast (&block_cond);
  g_mutex_unlock (&block_lock);
}

static void on_message_func (EngineIOSocket *socket,
                             EngineIOPacket *packet,
                             gpointer        data);

static void
on_drain_signal (EngineIOSocket *socket,
                 gpointer        data)
{
  Fixture *f = data;

  test_recorder_add (f->events, "drain");
}

static void
on_packet_create_signal (EngineIOSocket *socket,
                         EngineIOPacket *packet,
                         gpointer        data)
{
  Fixture *f = data;

  if (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_MESSAGE)
    test_recorder_add (f->events, "packet-create %s", engine_io_packet_get_text (packet, NULL));
}

/* "swap" replaces the function from inside it (the old data must live
 * until it returns), "clear" goes back to the receive queue. */
static void
on_message_func (EngineIOSocket *socket,
                 EngineIOPacket *packet,
                 gpointer        data)
{
  FuncData *d = data;
  g_autofree char *text = NULL;

  g_assert_cmpint (engine_io_packet_get_packet_type (packet), ==, ENGINE_IO_PACKET_MESSAGE);
  if (engine_io_packet_is_binary (packet))
    text = g_strdup_printf ("bin:%" G_GSIZE_FORMAT, g_bytes_get_size (engine_io_packet_get_data (packet)));
  else
    text = g_strdup (engine_io_packet_get_text (packet, NULL));
  test_recorder_add (d->f->events, "func %s %s", d->name, text);
  if (g_str_equal (text, "block"))
    {
      gint64 end = g_get_monotonic_time () + TEST_TIMEOUT_MS * 1000;

      g_mutex_lock (&block_lock);
      while (!block_released && g_cond_wait_until (&block_cond, &block_lock, end))
        ;
      g_mutex_unlock (&block_lock);
    }
  if (g_str_equal (text, "swap"))
    engine_io_socket_set_message_func (socket, on_message_func, func_data_new (d->f, "second"),
                                       func_data_free);
  else if (g_str_equal (text, "clear"))
    engine_io_socket_set_message_func (socket, NULL, NULL, NULL);
  else if (g_str_equal (text, "connect-drain"))
    {
      /* Connected after the function was set: not seen until it is set again. */
      g_signal_connect (socket, "drain", G_CALLBACK (on_drain_signal), d->f);
      g_signal_connect (socket, "packet-create", G_CALLBACK (on_packet_create_signal), d->f);
      engine_io_socket_send_text (socket, "x", NULL);
    }
  else if (g_str_equal (text, "refresh"))
    {
      engine_io_socket_set_message_func (socket, on_message_func, func_data_new (d->f, "third"),
                                         func_data_free);
      engine_io_socket_send_text (socket, "y", NULL);
    }
  /* Still readable: replaced above, its data is freed after we return. */
  test_recorder_add (d->f->events, "return %s %s", d->name, text);
}

static void
on_packet_signal (EngineIOSocket *socket,
                  EngineIOPacket *packet,
                  gpointer        data)
{
  Fixture *f = data;

  if (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_MESSAGE &&
      !engine_io_packet_is_binary (packet))
    test_recorder_add (f->events, "packet %s", engine_io_packet_get_text (packet, NULL));
}

static void
on_close_set_func (EngineIOSocket      *socket,
                   EngineIOCloseReason  reason,
                   const char          *description,
                   gpointer             data)
{
  Fixture *f = data;

  /* Set on a closed socket: dropped at once. */
  engine_io_socket_set_message_func (socket, on_message_func, func_data_new (f, "late"), func_data_free);
  test_recorder_add (f->events, "late set");
}

static void
on_connection (TestLoopback   *f,
               EngineIOSocket *socket,
               gpointer        data)
{
  /* ::packet first: with a message function, the socket looks for its
   * handlers when the function is set. */
  g_signal_connect (socket, "packet", G_CALLBACK (on_packet_signal), f);
  engine_io_socket_set_message_func (socket, on_message_func, func_data_new (f, "first"),
                                     func_data_free);
  g_signal_connect (socket, "close", G_CALLBACK (on_close_set_func), f);
}

/* @data non-NULL: each session gets a message function. */
static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->watch = TEST_WATCH_NO_MESSAGE | TEST_WATCH_NO_DRAIN;
  f->keep_sockets = TRUE;
  if (data != NULL)
    f->on_connection = on_connection;
  g_object_set (f->server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

/* A WebSocket session whose open packet was read, and its server socket. */
static TestWs *
open_session (Fixture         *f,
              EngineIOSocket **socket)
{
  return test_eio_ws_open_socket (f->port, f->sockets, (gpointer *) socket);
}

static char *
packet_text (EngineIOPacket *packet)
{
  return packet != NULL ? g_strdup (engine_io_packet_get_text (packet, NULL)) : NULL;
}

/* Waits until @socket's ::close was emitted (the session is over). */
static void
wait_closed (Fixture        *f,
             EngineIOSocket *socket)
{
  g_autofree char *prefix = g_strdup_printf ("close %s ", engine_io_socket_get_id (socket));

  g_assert_true (test_recorder_wait_count (f->events, prefix, 1, TEST_TIMEOUT_MS));
}

static void
test_timeout (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) none = NULL;
  g_autoptr(EngineIOPacket) zero = NULL;
  g_autoptr(EngineIOPacket) got = NULL;
  g_autofree char *text = NULL;
  gint64 start, waited;

  g_test_summary ("engine_io_socket_receive_timeout(): TIMED_OUT after about its timeout "
                  "when nothing comes (0: at once), the message when one comes meanwhile");
  test_require ((ws = open_session (f, &socket)) != NULL);

  start = g_get_monotonic_time ();
  none = engine_io_socket_receive_timeout (socket, 200, NULL, &error);
  waited = (g_get_monotonic_time () - start) / 1000;
  g_assert_null (none);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (waited, >=, 200);
  g_assert_cmpint (waited, <, 200 + TEST_TIMEOUT_MS);
  g_clear_error (&error);

  zero = engine_io_socket_receive_timeout (socket, 0, NULL, &error);
  g_assert_null (zero);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);

  test_require (test_ws_send_text (ws, "4hello"));
  got = engine_io_socket_receive_timeout (socket, TEST_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  text = packet_text (got);
  g_assert_cmpstr (text, ==, "hello");
}

static void
test_try (Fixture       *f,
          gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) empty = NULL;
  g_autoptr(EngineIOPacket) first = NULL;
  g_autoptr(EngineIOPacket) second = NULL;
  g_autoptr(EngineIOPacket) after = NULL;
  g_autofree char *t1 = NULL;
  g_autofree char *t2 = NULL;
  gint64 end;

  g_test_summary ("engine_io_socket_try_receive(): NULL without an error when nothing is "
                  "queued, the queued messages in order, then CLOSED naming the reason "
                  "once the session is over");
  test_require ((ws = open_session (f, &socket)) != NULL);

  empty = engine_io_socket_try_receive (socket, &error);
  g_assert_null (empty);
  g_assert_no_error (error);

  test_require (test_ws_send_text (ws, "4one"));
  test_require (test_ws_send_text (ws, "4two"));
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while (first == NULL && error == NULL && g_get_monotonic_time () < end)
    if ((first = engine_io_socket_try_receive (socket, &error)) == NULL)
      g_usleep (1000);
  g_assert_no_error (error);
  t1 = packet_text (first);
  g_assert_cmpstr (t1, ==, "one");
  while (second == NULL && error == NULL && g_get_monotonic_time () < end)
    if ((second = engine_io_socket_try_receive (socket, &error)) == NULL)
      g_usleep (1000);
  g_assert_no_error (error);
  t2 = packet_text (second);
  g_assert_cmpstr (t2, ==, "two");

  /* The client goes away: `transport close`. */
  g_clear_pointer (&ws, test_ws_free);
  wait_closed (f, socket);
  after = engine_io_socket_try_receive (socket, &error);
  g_assert_null (after);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  g_test_message ("%s", error->message);
  {
    g_auto(GStrv) events = test_recorder_dup (f->events);
    g_autofree char *prefix = g_strdup_printf ("close %s ", engine_io_socket_get_id (socket));
    const char *reason = NULL;

    for (guint i = 0; events[i] != NULL; i++)
      if (g_str_has_prefix (events[i], prefix))
        reason = events[i] + strlen (prefix);
    test_require (reason != NULL);
    g_assert_true (g_str_has_suffix (error->message, reason));
    g_assert_true (strstr (error->message, " is closed: ") != NULL);
  }
}

typedef struct
{
  GMainLoop      *loop;
  GPtrArray      *results;   /* char*: "message <text>" or "error <code>" */
  guint           expected;
} AsyncResults;

static void
on_received (GObject      *source,
             GAsyncResult *result,
             gpointer      data)
{
  AsyncResults *r = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) packet = engine_io_socket_receive_finish (ENGINE_IO_SOCKET (source),
                                                                      result, &error);

  if (packet != NULL)
    g_ptr_array_add (r->results, g_strdup_printf ("message %s", engine_io_packet_get_text (packet, NULL)));
  else
    g_ptr_array_add (r->results, g_strdup_printf ("error %d %s", error->code, error->message));
  g_test_message ("result %u: %s", r->results->len - 1,
                  (const char *) g_ptr_array_index (r->results, r->results->len - 1));
  if (r->results->len >= r->expected)
    g_main_loop_quit (r->loop);
}

static gboolean
quit_on_timeout (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

/* Runs the thread-default context until @r has @expected results (or the
 * test timeout). */
static void
async_wait (AsyncResults *r,
            guint         expected)
{
  GSource *timeout;

  r->expected = expected;
  if (r->results->len >= expected)
    return;
  timeout = g_timeout_source_new (TEST_TIMEOUT_MS);
  g_source_set_callback (timeout, quit_on_timeout, r->loop, NULL);
  g_source_attach (timeout, g_main_loop_get_context (r->loop));
  g_main_loop_run (r->loop);
  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_assert_cmpuint (r->results->len, >=, expected);
}

static void
test_async (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) never = g_cancellable_new ();
  AsyncResults r = { NULL, NULL, 0 };
  g_autofree char *cancelled = g_strdup_printf ("error %d ", ENGINE_IO_ERROR_CANCELLED);
  g_autofree char *closed = g_strdup_printf ("error %d ", ENGINE_IO_ERROR_CLOSED);

  g_test_summary ("engine_io_socket_receive_async(): waiting callers get the messages in "
                  "the order they called, a queued message at once, a cancelled one CANCELLED "
                  "(and no message), the others CLOSED naming the reason when the session ends");
  g_main_context_push_thread_default (context);
  r.loop = g_main_loop_new (context, FALSE);
  r.results = g_ptr_array_new_with_free_func (g_free);
  test_require ((ws = open_session (f, &socket)) != NULL);

  /* Three waiting, the second with a cancellable it will never see cancelled. */
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  engine_io_socket_receive_async (socket, never, on_received, &r);
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  test_require (test_ws_send_text (ws, "4a"));
  test_require (test_ws_send_text (ws, "4b"));
  test_require (test_ws_send_text (ws, "4c"));
  async_wait (&r, 3);
  g_assert_cmpstr (g_ptr_array_index (r.results, 0), ==, "message a");
  g_assert_cmpstr (g_ptr_array_index (r.results, 1), ==, "message b");
  g_assert_cmpstr (g_ptr_array_index (r.results, 2), ==, "message c");

  /* A cancelled waiter leaves the next message to the one after it. */
  engine_io_socket_receive_async (socket, cancellable, on_received, &r);
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  g_cancellable_cancel (cancellable);
  async_wait (&r, 4);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (r.results, 3), cancelled));
  test_require (test_ws_send_text (ws, "4d"));
  async_wait (&r, 5);
  g_assert_cmpstr (g_ptr_array_index (r.results, 4), ==, "message d");

  /* Already cancelled: fails at once, takes nothing. */
  engine_io_socket_receive_async (socket, cancellable, on_received, &r);
  async_wait (&r, 6);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (r.results, 5), cancelled));

  /* Queued before the call (no caller was waiting): returned at once. */
  test_require (test_ws_send_text (ws, "4e"));
  g_usleep (200 * 1000);
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  async_wait (&r, 7);
  g_assert_cmpstr (g_ptr_array_index (r.results, 6), ==, "message e");

  /* The session ends with two waiting. */
  engine_io_socket_receive_async (socket, never, on_received, &r);
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  engine_io_socket_close (socket);
  async_wait (&r, 9);
  for (guint i = 7; i < 9; i++)
    {
      const char *result = g_ptr_array_index (r.results, i);

      g_assert_true (g_str_has_prefix (result, closed));
      g_assert_true (g_str_has_suffix (result, ": forced close"));
    }
  /* And after it. */
  engine_io_socket_receive_async (socket, NULL, on_received, &r);
  async_wait (&r, 10);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (r.results, 9), closed));

  g_ptr_array_unref (r.results);
  g_main_loop_unref (r.loop);
  g_main_context_pop_thread_default (context);
}

typedef struct
{
  EngineIOSocket *socket;
  GCancellable   *cancellable;
  gint64          returned_at;  /* read after the join */
  GError         *error;
} Blocked;

static gpointer
blocked_thread (gpointer data)
{
  Blocked *b = data;
  EngineIOPacket *packet = engine_io_socket_receive (b->socket, b->cancellable, &b->error);

  g_clear_pointer (&packet, engine_io_packet_unref);
  b->returned_at = g_get_monotonic_time ();
  return NULL;
}

static void
test_cancel_wakes (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Blocked b = { NULL, NULL, 0, NULL };
  GThread *thread;
  gint64 cancelled_at;

  g_test_summary ("A thread blocked in engine_io_socket_receive() returns CANCELLED as soon as "
                  "another thread cancels its cancellable");
  test_require ((ws = open_session (f, &socket)) != NULL);
  b.socket = socket;
  b.cancellable = cancellable;
  thread = g_thread_new ("blocked", blocked_thread, &b);
  g_usleep (100 * 1000);
  cancelled_at = g_get_monotonic_time ();
  g_cancellable_cancel (cancellable);
  g_thread_join (thread);
  g_assert_error (b.error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED);
  g_test_message ("returned %" G_GINT64_FORMAT " µs after the cancel",
                  b.returned_at - cancelled_at);
  g_clear_error (&b.error);
}

static void
test_closed_reason (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) late = NULL;
  g_autoptr(EngineIOPacket) none = NULL;
  g_autofree char *text = NULL;

  g_test_summary ("engine_io_socket_receive() after the close: the message queued before it, "
                  "then CLOSED whose message ends with the close reason (it said only that "
                  "the socket is closed)");
  test_require ((ws = open_session (f, &socket)) != NULL);
  test_require (test_ws_send_text (ws, "4late"));
  test_require (test_ws_send_text (ws, "1"));   /* the client closes */
  wait_closed (f, socket);
  late = engine_io_socket_receive (socket, NULL, &error);
  g_assert_no_error (error);
  text = packet_text (late);
  g_assert_cmpstr (text, ==, "late");
  none = engine_io_socket_receive (socket, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
  g_assert_true (g_str_has_suffix (error->message, ": transport close"));
}

static void
test_message_func (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) queued = NULL;
  g_autoptr(EngineIOPacket) none = NULL;
  g_autofree char *text = NULL;
  g_autofree char *close_event = NULL;
  static const guint8 bin[3] = { 0, 1, 2 };

  g_test_summary ("engine_io_socket_set_message_func(): every message goes to the function "
                  "in order, after ::packet, not to the receive queue; replaced from inside "
                  "itself, the old data is freed when it returns; cleared, messages go to "
                  "the receive queue again; the function is dropped after ::close, and one "
                  "set on a closed socket at once");
  test_require ((ws = open_session (f, &socket)) != NULL);

  test_require (test_ws_send_text (ws, "4a"));
  test_require (test_ws_send_binary (ws, bin, sizeof bin));
  test_require (test_ws_send_text (ws, "4swap"));
  test_require (test_ws_send_text (ws, "4b"));
  test_require (test_ws_send_text (ws, "4clear"));
  g_assert_true (test_recorder_wait (f->events, "return second clear", TEST_TIMEOUT_MS));
  test_require (test_ws_send_text (ws, "4queued"));
  queued = engine_io_socket_receive_timeout (socket, TEST_TIMEOUT_MS, NULL, &error);
  g_assert_no_error (error);
  text = packet_text (queued);
  g_assert_cmpstr (text, ==, "queued");
  /* Nothing else was queued: the function had the rest. */
  none = engine_io_socket_try_receive (socket, &error);
  g_assert_no_error (error);
  g_assert_null (none);

  test_require (test_ws_send_text (ws, "1"));
  wait_closed (f, socket);
  g_assert_true (test_recorder_wait (f->events, "late set", TEST_TIMEOUT_MS));
  close_event = g_strdup_printf ("close %s ", engine_io_socket_get_id (socket));
  {
    const char *expected[] = {
      "packet a", "func first a", "return first a",
      "func first bin:3", "return first bin:3",
      "packet swap", "func first swap", "return first swap", "destroy first",
      "packet b", "func second b", "return second b",
      "packet clear", "func second clear", "return second clear", "destroy second",
      "packet queued", close_event, "destroy late", "late set",
    };
    g_auto(GStrv) events = test_recorder_dup (f->events);
    g_autoptr(GPtrArray) seen = g_ptr_array_new ();

    /* The "connection" and "heartbeat" lines aside, exactly these, in
     * this order (the close with its reason, whatever it is). */
    for (guint i = 0; events[i] != NULL; i++)
      if (!g_str_has_prefix (events[i], "connection ") && !g_str_has_prefix (events[i], "heartbeat "))
        g_ptr_array_add (seen, g_str_has_prefix (events[i], close_event) ? close_event : events[i]);
    for (guint i = 0; i < seen->len; i++)
      g_test_message ("event %u: %s", i, (char *) g_ptr_array_index (seen, i));
    g_assert_cmpuint (seen->len, ==, G_N_ELEMENTS (expected));
    for (guint i = 0; i < seen->len && i < G_N_ELEMENTS (expected); i++)
      g_assert_cmpstr (g_ptr_array_index (seen, i), ==, expected[i]);
  }
}

static void
test_message_func_signals (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("With a message function set, ::drain and ::packet-create handlers are "
                  "looked for when it is set (no process-wide signal lock per message): "
                  "connected later, they are not called until the function is set again, "
                  "then they are");
  test_require ((ws = open_session (f, &socket)) != NULL);
  test_require (test_ws_send_text (ws, "4connect-drain"));
  g_assert_true (test_recorder_wait (f->events, "return first connect-drain", TEST_TIMEOUT_MS));
  /* "x" is written (the WebSocket's flush runs in the same context soon
   * after): no ::drain, no ::packet-create. */
  g_usleep (300 * 1000);
  g_assert_cmpint (test_recorder_count (f->events, "drain"), ==, 0);
  g_assert_cmpint (test_recorder_count (f->events, "packet-create x"), ==, 0);

  test_require (test_ws_send_text (ws, "4refresh"));
  g_assert_true (test_recorder_wait (f->events, "packet-create y", TEST_TIMEOUT_MS));
  g_assert_true (test_recorder_wait (f->events, "drain", TEST_TIMEOUT_MS));
  g_assert_true (test_recorder_wait (f->events, "destroy first", TEST_TIMEOUT_MS));
}

static void
test_message_func_wrong_thread (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("engine_io_socket_set_message_func() from a thread that does not own the "
                  "socket's context is refused with a critical, and the function stays");
  test_require ((ws = open_session (f, &socket)) != NULL);
  test_log_expect (G_LOG_LEVEL_CRITICAL, "g_main_context_is_owner");
  engine_io_socket_set_message_func (socket, NULL, NULL, NULL);
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
  test_require (test_ws_send_text (ws, "4still"));
  g_assert_true (test_recorder_wait (f->events, "return first still", TEST_TIMEOUT_MS));
}

static void
test_message_func_close_other_thread (Fixture       *f,
                                      gconstpointer  data)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  TestHttp *http = f->http;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) post2 = NULL;
  g_autofree char *target = NULL;
  g_auto(GStrv) events = NULL;

  g_test_summary ("A close requested from another thread while the function runs and "
                  "messages wait in the session's queue (polling: a worker thread queued "
                  "them): none is delivered after it, as with ::message, and the function "
                  "is dropped after ::close");
  test_require ((open = test_eio_polling_open (http, 4)) != NULL);
  socket = g_async_queue_timeout_pop (f->sockets, TEST_TIMEOUT_MS * 1000);
  test_require (socket != NULL);
  target = test_eio_target (4, "polling", open->sid);
  post = test_http_post (http, target, TEST_S ("4block"));
  test_require (post != NULL && post->status == 200);
  g_assert_true (test_recorder_wait (f->events, "func first block", TEST_TIMEOUT_MS));
  /* Answered once queued for the session, which is busy in the function. */
  post2 = test_http_post (http, target, TEST_S ("4after\x1e" "4after\x1e" "4after"));
  test_require (post2 != NULL && post2->status == 200);
  engine_io_socket_close (socket);
  block_release ();
  wait_closed (f, socket);
  g_assert_true (test_recorder_wait (f->events, "destroy first", TEST_TIMEOUT_MS));
  events = test_recorder_dup (f->events);
  for (guint i = 0; events[i] != NULL; i++)
    g_assert_false (g_str_has_prefix (events[i], "func first after"));
  g_assert_true (g_strv_contains ((const char * const *) events, "return first block"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/receive/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("timeout", test_timeout);
  ADD ("try", test_try);
  ADD ("async", test_async);
  ADD ("cancel-wakes", test_cancel_wakes);
  ADD ("closed-reason", test_closed_reason);
#undef ADD
  g_test_add ("/receive/message-func", Fixture, "func", fixture_setup, test_message_func, fixture_teardown);
  g_test_add ("/receive/message-func-close-other-thread", Fixture, "func", fixture_setup,
              test_message_func_close_other_thread, fixture_teardown);
  g_test_add ("/receive/message-func-signals", Fixture, "func", fixture_setup,
              test_message_func_signals, fixture_teardown);
  g_test_add ("/receive/message-func-wrong-thread", Fixture, "func", fixture_setup,
              test_message_func_wrong_thread, fixture_teardown);
  return g_test_run ();
}
