/* test-sio-park.c: attacks on the CONNECTs parked while a dynamic
 * namespace's ::new-namespace handlers run (namespace_park() in
 * socketio-server.c): regression tests of an adversarial review.
 *
 * A real EngineIOServer on 127.0.0.1 port 0 with a SocketIOServer on top,
 * driven by raw Engine.IO v4 WebSocket clients (SioLoopback, sioutil.h). The
 * ::new-namespace handler iterates its context (a nested main loop, so
 * that every session, of every loop thread, goes on meanwhile) until the
 * test opens its gate.
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "sioutil.h"
#include "socketio/socketio.h"

typedef struct
{
  SioLoopback        lb;
  GMutex             lock;
  gboolean           open;          /* (lock) the handler's gate */
  SocketIONamespace *nsp;           /* (lock) ref: the one being configured */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_mutex_init (&f->lock);
  sio_loopback_init (&f->lb, NULL);
  sio_loopback_listen (&f->lb);
}

static void
gate_open (Fixture *f)
{
  g_mutex_lock (&f->lock);
  f->open = TRUE;
  g_mutex_unlock (&f->lock);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  gate_open (f);
  sio_loopback_clear (&f->lb);
  g_clear_object (&f->nsp);
  g_mutex_clear (&f->lock);
  test_log_check ();
}

/* Iterates its context until the gate opens (at most 30 s, scaled). */
static void
on_gated_new_namespace (SocketIOServer    *server,
                        SocketIONamespace *nsp,
                        gpointer           user_data)
{
  Fixture *f = user_data;
  GMainContext *context = g_main_context_get_thread_default ();
  gint64 end = g_get_monotonic_time () + (gint64) test_scaled_ms (30000) * 1000;

  g_mutex_lock (&f->lock);
  g_set_object (&f->nsp, nsp);
  g_mutex_unlock (&f->lock);
  test_recorder_add (f->lb.rec, "configuring %s", socket_io_namespace_get_name (nsp));
  for (;;)
    {
      gboolean open;

      g_mutex_lock (&f->lock);
      open = f->open;
      g_mutex_unlock (&f->lock);
      if (open || g_get_monotonic_time () >= end)
        break;
      g_main_context_iteration (context, FALSE) || (g_usleep (1000), TRUE);
    }
  test_recorder_add (f->lb.rec, "configured %s", socket_io_namespace_get_name (nsp));
}

static void
gated_dynamic (Fixture *f)
{
  socket_io_server_set_namespace_func (f->lb.sio, sio_accept_any_namespace, NULL, NULL);
  sio_loopback_watch_dynamic (&f->lb);
  g_signal_connect (f->lb.sio, "new-namespace", G_CALLBACK (on_gated_new_namespace), f);
}

/* The namespace being configured's reference count: each parked CONNECT
 * holds one (with its name and auth). */
static guint
nsp_refs (Fixture *f)
{
  guint refs;

  g_mutex_lock (&f->lock);
  refs = f->nsp != NULL ? g_atomic_int_get ((gint *) &G_OBJECT (f->nsp)->ref_count) : 0;
  g_mutex_unlock (&f->lock);
  return refs;
}

/* Waits until nsp_refs() satisfies @cmp against @want; the last value. */
static guint
wait_nsp_refs (Fixture  *f,
               gboolean  at_least,
               guint     want)
{
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  guint refs;

  while (refs = nsp_refs (f), (at_least ? refs < want : refs > want) &&
         g_get_monotonic_time () < end)
    g_usleep (5000);
  return refs;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

#define GONE_CLIENTS 12
#define AUTH_BYTES   4000

/* Clients park a CONNECT with a large auth and go away while the handler
 * still runs: nothing of them is kept. */
static void
test_gone_forgotten (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  g_autofree char *filler = g_strnfill (AUTH_BYTES, 'x');
  g_autofree char *connect = g_strdup_printf ("0/dyn,{\"token\":\"%s\"}", filler);
  guint base, refs;

  g_test_summary ("While a dynamic namespace's ::new-namespace handler runs, 12 clients "
                  "CONNECT to it with a 4 kB auth (parked), then close their connections: "
                  "their parked CONNECTs are dropped at once (they stayed in the "
                  "namespace's parked list with their name and auth until the handler "
                  "returned: memory without bound while it runs, clients coming and going)");
  gated_dynamic (f);
  test_require ((a = sio_loopback_open (&f->lb)) != NULL);
  test_require (sio_send (a, "0/dyn,"));
  sio_loopback_expect (&f->lb, "configuring /dyn");
  base = nsp_refs (f);

  for (guint round = 0; round < 2; round++)
    {
      TestWs *gone[GONE_CLIENTS];

      for (guint i = 0; i < GONE_CLIENTS; i++)
        {
          test_require ((gone[i] = sio_loopback_open (&f->lb)) != NULL);
          test_require (sio_send (gone[i], connect));
        }
      /* All parked: one namespace ref each. */
      refs = wait_nsp_refs (f, TRUE, base + GONE_CLIENTS);
      g_assert_cmpuint (refs, >=, base + GONE_CLIENTS);
      for (guint i = 0; i < GONE_CLIENTS; i++)
        test_ws_free (gone[i]);
      /* Their sessions end: their parked CONNECTs are dropped. */
      refs = wait_nsp_refs (f, FALSE, base);
      g_test_message ("round %u: %u namespace refs after the clients left (base %u)",
                      round, refs, base);
      g_assert_cmpuint (refs, ==, base);
    }

  gate_open (f);
  sio_loopback_expect (&f->lb, "configured /dyn");
  sio_expect_prefix (a, "0/dyn,{\"sid\":");
}

/* A CONNECT parked with events pipelined after it (in one read): they
 * are kept with it and replayed once it is let in, as for a CONNECT to a
 * namespace that is ready. */
static void
test_pipelined_while_parked (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  g_autoptr(TestWs) b = NULL;
  const char *batch[] = { "0/dyn,", "2/dyn,[\"e\",1]", "2/dyn,[\"e\",2]", NULL };
  guint base;

  g_test_summary ("While a dynamic namespace's ::new-namespace handler runs, a client sends "
                  "its CONNECT to it and two events in one read: once the handler returns "
                  "it joins and the events reach its socket in order, as on a namespace that "
                  "is ready (the parked CONNECT made the events close the client; before "
                  "parking, the CONNECT waited and they were kept)");
  gated_dynamic (f);
  test_require ((a = sio_loopback_open (&f->lb)) != NULL);
  test_require ((b = sio_loopback_open (&f->lb)) != NULL);
  test_require (sio_send (a, "0/dyn,"));
  sio_loopback_expect (&f->lb, "configuring /dyn");
  base = nsp_refs (f);
  test_require (sio_send_batch (b, batch));
  g_assert_cmpuint (wait_nsp_refs (f, TRUE, base + 1), >=, base + 1);
  gate_open (f);
  sio_loopback_expect (&f->lb, "configured /dyn");
  sio_expect_prefix (a, "0/dyn,{\"sid\":");
  sio_expect_prefix (b, "0/dyn,{\"sid\":");
  sio_loopback_expect_event (&f->lb, "/dyn", "e", "[2]");
  /* Each `connection` is emitted in its own session's context, in the
   * main-loop iteration after its CONNECT reply was handed over: a's may
   * come after b's events (b's session goes on on its own thread once the
   * handler returned), so it is awaited, not expected by now. */
  g_assert_true (test_recorder_wait_count (f->lb.rec, "connect /dyn ", 2, TEST_TIMEOUT_MS));
  {
    g_auto(GStrv) got = test_recorder_dup (f->lb.rec);
    g_autofree char *all = g_strjoinv (" | ", got);
    g_test_message ("recorded: %s", all);
  }
  g_assert_cmpint (test_recorder_index (f->lb.rec, "event /dyn e [1]"), <, test_recorder_index (f->lb.rec, "event /dyn e [2]"));
  g_assert_cmpint (test_recorder_index (f->lb.rec, "event /dyn e [1]"), >, test_recorder_index (f->lb.rec, "configured /dyn"));
  /* b's own `connection` before its first event (whichever client's comes
   * first, one precedes the events). */
  g_assert_cmpint (test_recorder_index_prefix (f->lb.rec, "connect /dyn "), <, test_recorder_index (f->lb.rec, "event /dyn e [1]"));
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "connect /dyn "), ==, 2);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "event "), ==, 2);
}

/* The packets kept after a parked CONNECT have the bound of those kept
 * before `connection` (64): one more closes the client at once, the
 * others go on. */
static void
test_parked_early_bound (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  g_autoptr(TestWs) b = NULL;
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  gint code;

  g_test_summary ("While a dynamic namespace's ::new-namespace handler runs, a client sends "
                  "its CONNECT to it and 65 events: it is closed before the handler returns "
                  "(the 65th is over the bound of 64); the creator joins");
  gated_dynamic (f);
  test_require ((a = sio_loopback_open (&f->lb)) != NULL);
  test_require ((b = sio_loopback_open (&f->lb)) != NULL);
  test_require (sio_send (a, "0/dyn,"));
  sio_loopback_expect (&f->lb, "configuring /dyn");
  g_ptr_array_add (batch, g_strdup ("0/dyn,"));
  for (guint i = 1; i <= 65; i++)
    g_ptr_array_add (batch, g_strdup_printf ("2/dyn,[\"e\",%u]", i));
  g_ptr_array_add (batch, NULL);
  test_require (sio_send_batch (b, (const char **) batch->pdata));
  code = test_ws_read_close (b, TEST_TIMEOUT_MS, skipped);
  g_test_message ("close: %d after %u frames", code, skipped->len);
  g_assert_cmpint (code, !=, -3);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "configured "), ==, 0);
  gate_open (f);
  sio_loopback_expect (&f->lb, "configured /dyn");
  sio_expect_prefix (a, "0/dyn,{\"sid\":");
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "event "), ==, 0);
}

/* The server shuts down while CONNECTs are parked and the handler still
 * runs: the parked ones are dropped at once, nobody joins, nothing is left
 * (ASan). */
static void
test_shutdown_while_parked (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  TestWs *parked[3];
  guint base;

  g_test_summary ("The server closes (engine_io_server_close_async()) while three CONNECTs "
                  "are parked on a ::new-namespace handler that still runs: the parked "
                  "clients' sessions end and their CONNECTs are dropped before the handler "
                  "returns; once it returns none of them joins, and nothing is left (ASan)");
  gated_dynamic (f);
  test_require ((a = sio_loopback_open (&f->lb)) != NULL);
  test_require (sio_send (a, "0/dyn,"));
  sio_loopback_expect (&f->lb, "configuring /dyn");
  base = nsp_refs (f);
  for (guint i = 0; i < G_N_ELEMENTS (parked); i++)
    {
      test_require ((parked[i] = sio_loopback_open (&f->lb)) != NULL);
      test_require (sio_send (parked[i], "0/dyn,{\"k\":1}"));
    }
  g_assert_cmpuint (wait_nsp_refs (f, TRUE, base + G_N_ELEMENTS (parked)), >=,
                    base + G_N_ELEMENTS (parked));
  engine_io_server_close_async (f->lb.engine, NULL, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (parked); i++)
    {
      g_assert_cmpint (test_ws_read_close (parked[i], TEST_TIMEOUT_MS, NULL), !=, -3);
      test_ws_free (parked[i]);
    }
  g_assert_cmpuint (wait_nsp_refs (f, FALSE, base), ==, base);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "configured "), ==, 0);
  gate_open (f);
  sio_loopback_expect (&f->lb, "configured /dyn");
  g_assert_true (test_ws_wait_eof (a, TEST_TIMEOUT_MS));
  /* The creator's own CONNECT was under way in its session's dispatch
   * (its close waits for it): it may join, then goes with the shutdown.
   * None of the parked ones. */
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "connect "), <=, 1);
}

/* The creator's client sends its CONNECT again while its handler iterates
 * the context: its session's packets wait for the handler (the engine
 * does not dispatch a session's events inside its own dispatch), so the
 * second CONNECT comes after the first was let in, and closes the client
 * as any CONNECT to a namespace it is in. */
static void
test_creator_duplicate (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_frame_free);
  gint code;

  g_test_summary ("A client creates a dynamic namespace whose ::new-namespace handler "
                  "iterates the context, and sends the same CONNECT again meanwhile: the "
                  "second is not read before the handler returns (nothing of it is "
                  "parked), the client joins, then the second CONNECT closes it");
  gated_dynamic (f);
  test_require ((a = sio_loopback_open (&f->lb)) != NULL);
  test_require (sio_send (a, "0/dyn,"));
  sio_loopback_expect (&f->lb, "configuring /dyn");
  test_require (sio_send (a, "0/dyn,"));
  gate_open (f);
  sio_loopback_expect (&f->lb, "configured /dyn");
  code = test_ws_read_close (a, TEST_TIMEOUT_MS, skipped);
  g_test_message ("close: %d after %u frames", code, skipped->len);
  g_assert_cmpint (code, !=, -3);
  g_assert_cmpuint (skipped->len, >=, 1);
  if (skipped->len >= 1)
    {
      g_autofree char *text = test_ws_frame_dup_text (g_ptr_array_index (skipped, 0));

      if (text == NULL || !g_str_has_prefix (text, "40/dyn,{\"sid\":"))
        g_test_fail_printf ("first frame “%s”", text ? text : "(binary)");
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/sio-park/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("gone-forgotten", test_gone_forgotten);
  ADD ("creator-duplicate", test_creator_duplicate);
  ADD ("pipelined-while-parked", test_pipelined_while_parked);
  ADD ("parked-early-bound", test_parked_early_bound);
  ADD ("shutdown-while-parked", test_shutdown_while_parked);
#undef ADD
  return g_test_run ();
}
