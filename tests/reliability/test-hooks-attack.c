/* test-hooks-attack.c: the application hooks (asynchronous admission,
 * ::connection-error, the response-headers hook) attacked by hostile
 * clients and misused by careless applications, against a real server
 * over loopback, in both threading modes (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "relutil.h"
#include "testutil.h"
#include "wsutil.h"
#include "engineio/engineio.h"

typedef struct
{
  TestLoopback    lb;          /* the sessions watched, without a ::message handler */
  GAsyncQueue    *admissions;  /* EngineIOAdmission (ref), as the hook got them */
  GMainContext   *context;     /* the callback-context, when one is set */
  guint           reports;     /* (atomic) ::connection-error emissions */
  guint           report_sleep_us;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->admissions = g_async_queue_new_full ((GDestroyNotify) engine_io_admission_unref);
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_NO_MESSAGE;
  g_object_set (f->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->lb.server != NULL)
    engine_io_server_close (f->lb.server);
  if (f->context != NULL)
    while (g_main_context_iteration (f->context, FALSE))
      ;
  test_loopback_clear (&f->lb);
  g_clear_pointer (&f->context, g_main_context_unref);
  g_async_queue_unref (f->admissions);
  test_log_check ();
}

static void
keep_admission (EngineIOServer    *server,
                EngineIOAdmission *admission,
                gpointer           data)
{
  Fixture *f = data;

  g_async_queue_push (f->admissions, engine_io_admission_ref (admission));
}

static EngineIOAdmission *
pop_admission (Fixture *f)
{
  return g_async_queue_timeout_pop (f->admissions, (guint64) TEST_TIMEOUT_MS * 1000);
}

static TestHttp *
start_handshake_on (guint    port,
                    gboolean websocket)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (4, websocket ? "websocket" : "polling", NULL);
  g_autofree char *key = test_ws_make_key ();
  const char *upgrade[] = { "Upgrade", "websocket", "Connection", "Upgrade",
                            "Sec-WebSocket-Key", key, "Sec-WebSocket-Version", "13", NULL };
  TestHttp *http = test_http_new (port);

  if (!test_http_send (http, "GET", target, websocket ? upgrade : NULL, NULL, -1, &error))
    g_test_fail_printf ("send: %s", error->message);
  return http;
}

static TestHttp *
start_handshake (guint port)
{
  return start_handshake_on (port, FALSE);
}

/* ------------------------------------------------------------------ */
/* ::connection-error                                                   */
/* ------------------------------------------------------------------ */

static void
slow_report (EngineIOServer    *server,
             EngineIOHandshake *request,
             guint              status,
             int                code,
             const char        *message,
             gpointer           data)
{
  Fixture *f = data;

  g_atomic_int_inc (&f->reports);
  g_usleep (f->report_sleep_us);
}

typedef struct
{
  guint     port;
  gint64    until;    /* monotonic: the flood stops then, whatever the context does */
  guint     sent;
} Flooder;

static gpointer
flood_refused (gpointer data)
{
  Flooder *fl = data;
  g_autoptr(TestHttp) http = test_http_new (fl->port);

  while (g_get_monotonic_time () < fl->until)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestResponse) response =
        test_http_request (http, "GET", "/engine.io/?EIO=4&transport=polling&sid=flood", NULL, NULL, -1,
                           TEST_TIMEOUT_MS, &error);

      if (response == NULL)
        break;
      fl->sent++;
    }
  return NULL;
}

static gboolean
count_dispatch (gpointer data)
{
  return G_SOURCE_REMOVE;
}

static void
test_connection_error_flood_slow_handler (Fixture       *f,
                                          gconstpointer  data)
{
  enum { N_FLOODERS = 3 };
  Flooder flooders[N_FLOODERS];
  GThread *threads[N_FLOODERS];
  guint max_per_dispatch = 0;
  guint total_sent = 0;
  gint64 end;

  g_test_summary ("A client making refused requests faster than a slow ::connection-error "
                  "handler runs does not hold the callback context in one dispatch: each "
                  "dispatch emits at most the reports that were waiting (128), and the "
                  "context's other sources run in between");
  f->context = g_main_context_new ();
  f->report_sleep_us = 2000;
  g_object_set (f->lb.server, "callback-context", f->context, NULL);
  g_signal_connect (f->lb.server, "connection-error", G_CALLBACK (slow_report), f);
  test_require (test_loopback_listen (&f->lb));

  end = g_get_monotonic_time () + (gint64) test_scaled_ms (1500) * 1000;
  for (guint i = 0; i < N_FLOODERS; i++)
    {
      flooders[i] = (Flooder) { f->lb.port, end, 0 };
      threads[i] = g_thread_new ("flooder", flood_refused, &flooders[i]);
    }

  /* While the flood goes on, each iteration of the context is one
   * dispatch of the delivery source (plus our idle marker): count the
   * reports it emitted. Unbounded, one dispatch lasts as long as the
   * flood. */
  while (g_get_monotonic_time () < end)
    {
      guint before = g_atomic_int_get (&f->reports);
      GSource *marker = g_idle_source_new ();

      g_source_set_callback (marker, count_dispatch, NULL, NULL);
      g_source_attach (marker, f->context);
      g_source_unref (marker);
      g_main_context_iteration (f->context, TRUE);
      max_per_dispatch = MAX (max_per_dispatch, g_atomic_int_get (&f->reports) - before);
    }
  for (guint i = 0; i < N_FLOODERS; i++)
    {
      g_thread_join (threads[i]);
      total_sent += flooders[i].sent;
    }
  g_test_message ("%u refused requests, %u reports, at most %u per dispatch", total_sent,
                  g_atomic_int_get (&f->reports), max_per_dispatch);
  /* Whether the flood outran the handler (else this run proved little:
   * the bound below holds anyway). */
  if (total_sent <= (guint) g_atomic_int_get (&f->reports))
    g_test_message ("the flood did not outrun the handler on this machine");
  g_assert_cmpuint (max_per_dispatch, <=, 128);
}

/* ------------------------------------------------------------------ */
/* Asynchronous admission                                               */
/* ------------------------------------------------------------------ */

typedef struct
{
  EngineIOAdmission *admission;
  gint              *go;   /* (atomic) */
  gint              *won;  /* (atomic) */
  guint              n;
} Racer;

static gpointer
race_answer (gpointer data)
{
  Racer *r = data;
  gboolean won;

  while (!g_atomic_int_get (r->go))
    ;
  if (r->n % 2 == 0)
    won = engine_io_admission_accept (r->admission);
  else
    won = engine_io_admission_refuse (r->admission, 403, 4, "raced");
  if (won)
    g_atomic_int_inc (r->won);
  return NULL;
}

static void
test_admission_client_gone_answer_race (Fixture       *f,
                                        gconstpointer  data)
{
  enum { N = 6, RACERS = 8 };
  TestHttp *clients[N];
  EngineIOAdmission *admissions[N];

  g_test_summary ("Clients that leave while their handshake waits; the application answers "
                  "later from many threads at once: one answer wins each, the places are "
                  "freed, the server takes new handshakes and closes cleanly");
  g_object_set (f->lb.server, "max-pending-admissions", N, NULL);
  engine_io_server_set_admission_async_func (f->lb.server, keep_admission, f, NULL);
  test_require (test_loopback_listen (&f->lb));

  /* Polling and WebSocket handshakes (an accepted one is answered 101
   * on a connection its client closed). */
  for (guint i = 0; i < N; i++)
    clients[i] = start_handshake_on (f->lb.port, i % 3 == 1);
  for (guint i = 0; i < N; i++)
    {
      admissions[i] = pop_admission (f);
      test_require (admissions[i] != NULL);
    }
  /* At the bound: the next one is refused at once. */
  {
    g_autoptr(TestResponse) response = test_http_get (f->lb.http, "/engine.io/?EIO=4&transport=polling");

    test_require (response != NULL);
    g_assert_true (test_eio_is_error (response, 503, 4));
  }
  for (guint i = 0; i < N; i++)
    test_http_drop (clients[i], i % 2 == 0);

  for (guint i = 0; i < N; i++)
    {
      GThread *threads[RACERS];
      Racer racers[RACERS];
      gint go = 0, won = 0;

      for (guint j = 0; j < RACERS; j++)
        {
          racers[j] = (Racer) { admissions[i], &go, &won, j + i };
          threads[j] = g_thread_new ("racer", race_answer, &racers[j]);
        }
      g_atomic_int_set (&go, 1);
      for (guint j = 0; j < RACERS; j++)
        g_thread_join (threads[j]);
      g_assert_cmpint (won, ==, 1);
      g_assert_false (engine_io_admission_accept (admissions[i]));
    }

  /* The places are free again. */
  {
    g_autoptr(TestHttp) http = start_handshake (f->lb.port);
    g_autoptr(EngineIOAdmission) admission = pop_admission (f);
    g_autoptr(TestResponse) response = NULL;
    g_autoptr(GError) error = NULL;

    test_require (admission != NULL);
    g_assert_true (engine_io_admission_accept (admission));
    response = test_http_receive (http, TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
  }

  engine_io_server_close (f->lb.server);
  for (guint i = 0; i < N; i++)
    {
      g_assert_false (engine_io_admission_refuse (admissions[i], 403, 4, NULL));
      engine_io_admission_unref (admissions[i]);
      test_http_free (clients[i]);
    }
}

static void
test_admission_pending_at_close (Fixture       *f,
                                 gconstpointer  data)
{
  enum { N = 5 };
  TestHttp *clients[N];
  EngineIOAdmission *admissions[N];

  g_test_summary ("A server closed and dropped with admissions pending (some clients gone): "
                  "each waiting client gets 503, the application's later answers are refused, "
                  "the admissions outlive the server safely");
  engine_io_server_set_admission_async_func (f->lb.server, keep_admission, f, NULL);
  test_require (test_loopback_listen (&f->lb));
  for (guint i = 0; i < N; i++)
    clients[i] = start_handshake (f->lb.port);
  for (guint i = 0; i < N; i++)
    {
      admissions[i] = pop_admission (f);
      test_require (admissions[i] != NULL);
    }
  test_http_drop (clients[0], TRUE);
  test_http_drop (clients[1], FALSE);

  engine_io_server_close (f->lb.server);
  for (guint i = 2; i < N; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestResponse) response = test_http_receive (clients[i], TEST_TIMEOUT_MS, &error);

      g_assert_no_error (error);
      test_require (response != NULL);
      g_assert_true (test_eio_is_error (response, 503, 4));
    }
  g_clear_object (&f->lb.server);
  for (guint i = 0; i < N; i++)
    {
      g_assert_false (engine_io_admission_accept (admissions[i]));
      g_assert_nonnull (engine_io_handshake_get_remote_address (engine_io_admission_get_handshake (admissions[i])));
      engine_io_admission_unref (admissions[i]);
      test_http_free (clients[i]);
    }
}

static gpointer
accept_later (gpointer data)
{
  EngineIOAdmission *admission = data;

  g_usleep (50 * 1000);
  engine_io_admission_accept (admission);
  engine_io_admission_unref (admission);
  return NULL;
}

static void
test_admission_dropped_server (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  EngineIOAdmission *admission;
  GThread *thread;

  g_test_summary ("An application that drops its server (without closing it) while it holds "
                  "an admission, then accepts it from another thread: the admission held the "
                  "server, the session opens and holds it in turn (as any session does), and "
                  "once the session ends the server shuts down and is freed");
  g_object_set (f->lb.server, "ping-interval", 200, "ping-timeout", 200, NULL);
  engine_io_server_set_admission_async_func (f->lb.server, keep_admission, f, NULL);
  test_require (test_loopback_listen (&f->lb));
  http = start_handshake (f->lb.port);
  admission = pop_admission (f);
  test_require (admission != NULL);

  g_clear_object (&f->lb.server);  /* the admission holds it */
  thread = g_thread_new ("answer", accept_later, admission);
  g_thread_join (thread);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestResponse) response = test_http_receive (http, TEST_TIMEOUT_MS, &error);

    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
  }
  /* The client leaves: its session times out, the last reference on the
   * server goes with it, the server shuts down. */
  test_http_drop (http, TRUE);
  {
    gint64 deadline = g_get_monotonic_time () + (gint64) REL_WAIT_MS * 1000;

    while (!test_port_refuses (f->lb.port) && g_get_monotonic_time () < deadline)
      g_usleep (10 * 1000);
    g_assert_true (test_port_refuses (f->lb.port));
  }
}

/* ------------------------------------------------------------------ */
/* The response-headers hook                                            */
/* ------------------------------------------------------------------ */

static void
coding_hook (EngineIOServer          *server,
             EngineIOHandshake       *request,
             guint                    status,
             gboolean                 handshake,
             EngineIOResponseHeaders *headers,
             gpointer                 data)
{
  /* A careless application: takes the server's coding off, or claims
   * one the body does not have. */
  engine_io_response_headers_remove (headers, "Content-Encoding");
  engine_io_response_headers_append (headers, "Content-Encoding", "br");
}

static void
test_headers_content_encoding (Fixture       *f,
                               gconstpointer  data)
{
  TestHttp *http;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = NULL;
  g_autofree char *big = g_strnfill (4000, 'a');
  const char *gzip[] = { "Accept-Encoding", "gzip", NULL };

  g_test_summary ("The headers hook cannot change Content-Encoding (the server sets it with "
                  "the body it compressed): a hook removing or adding it is ignored, with a "
                  "warning for the addition");
  f->lb.keep_sockets = TRUE;
  engine_io_server_set_headers_func (f->lb.server, coding_hook, NULL, NULL);
  test_require (test_loopback_listen (&f->lb));
  http = f->lb.http;

  test_log_expect (G_LOG_LEVEL_WARNING, "Content-Encoding");
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
  socket = g_async_queue_timeout_pop (f->lb.sockets, (guint64) TEST_TIMEOUT_MS * 1000);
  test_require (socket != NULL);
  target = test_eio_target (4, "polling", open->sid);

  /* Compressed: the server's Content-Encoding stays, alone. */
  test_log_expect (G_LOG_LEVEL_WARNING, "Content-Encoding");
  g_assert_true (engine_io_socket_send_text (socket, big, NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TestResponse) response = test_http_request (http, "GET", target, gzip, NULL, -1,
                                                          TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    test_require (response != NULL && response->status == 200);
    g_assert_cmpstr (test_response_header (response, "Content-Encoding"), ==, "gzip");
  }
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));

  /* Not compressed: none. */
  test_log_expect (G_LOG_LEVEL_WARNING, "Content-Encoding");
  g_assert_true (engine_io_socket_send_text (socket, big, NULL));
  {
    g_autoptr(TestResponse) response = test_http_get (http, target);

    test_require (response != NULL && response->status == 200);
    g_assert_null (test_response_header (response, "Content-Encoding"));
    g_assert_cmpuint (g_bytes_get_size (response->body), ==, 4001);
  }
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
}

static void
extensions_hook (EngineIOServer          *server,
                 EngineIOHandshake       *request,
                 guint                    status,
                 gboolean                 handshake,
                 EngineIOResponseHeaders *headers,
                 gpointer                 data)
{
  /* A careless application echoes the client's offer: the client would
   * then compress its frames (RSV1), which the server refuses (1002). */
  if (status == 101)
    engine_io_response_headers_append (headers, "Sec-WebSocket-Extensions", "permessage-deflate");
}

static void
test_headers_websocket_extensions (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  const char *offer[] = { "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits", NULL };

  g_test_summary ("The headers hook cannot accept a WebSocket extension on the 101 (the server "
                  "negotiates none): Sec-WebSocket-Extensions added by the hook is dropped with "
                  "a warning");
  engine_io_server_set_headers_func (f->lb.server, extensions_hook, NULL, NULL);
  test_require (test_loopback_listen (&f->lb));

  test_log_expect (G_LOG_LEVEL_WARNING, "Sec-WebSocket-Extensions");
  ws = test_ws_connect (f->lb.port, target, offer, 0, NULL, &error);
  g_assert_no_error (error);
  test_require (ws != NULL);
  g_assert_null (test_ws_response_header (ws, "sec-websocket-extensions"));
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
}

/* ------------------------------------------------------------------ */
/* ::packet-create                                                      */
/* ------------------------------------------------------------------ */

typedef struct
{
  GMutex          lock;
  GCond           cond;
  gboolean        open;      /* (lock) the gate: the tap handler may return */
  gboolean        entered;   /* (lock) */
  EngineIOSocket *socket;    /* (lock) (ref) */
} Gate;

static void
blocking_tap (EngineIOSocket *socket,
              EngineIOPacket *packet,
              gpointer        data)
{
  Gate *gate = data;
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  g_mutex_lock (&gate->lock);
  gate->entered = TRUE;
  g_cond_broadcast (&gate->cond);
  while (!gate->open && g_cond_wait_until (&gate->cond, &gate->lock, deadline))
    ;
  g_mutex_unlock (&gate->lock);
}

static void
on_tap_connection (EngineIOServer *server,
                   EngineIOSocket *socket,
                   gpointer        data)
{
  Gate *gate = data;

  g_signal_connect (socket, "packet-create", G_CALLBACK (blocking_tap), gate);
  g_mutex_lock (&gate->lock);
  gate->socket = g_object_ref (socket);
  g_cond_broadcast (&gate->cond);
  g_mutex_unlock (&gate->lock);
}

typedef struct
{
  RelPoll *poll;
  gint64   until;
  guint    received;
} Poller;

static gpointer
poll_all (gpointer data)
{
  Poller *p = data;

  while (g_get_monotonic_time () < p->until)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *packet = rel_poll_next (p->poll, 200, &error);

      if (packet != NULL)
        p->received++;
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        break;
    }
  return NULL;
}

#define TAP_MARK (64 * 1024)
#define TAP_MESSAGE 1024

static void
test_packet_create_slow_tap (Fixture       *f,
                             gconstpointer  data)
{
  Gate gate = { 0 };
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strnfill (TAP_MESSAGE, 'x');
  EngineIOSocket *socket;
  Poller poller;
  GThread *thread;
  guint accepted = 0;
  gint64 end;

  g_test_summary ("A slow ::packet-create handler: the packets it has not been told of yet are "
                  "held for it after they were sent, and count against send-queue-high-water "
                  "(drop-newest refuses sends past it) instead of growing without bound while "
                  "a polling client takes everything at once");
  g_mutex_init (&gate.lock);
  g_cond_init (&gate.cond);
  g_object_set (f->lb.server, "send-queue-high-water", (guint64) TAP_MARK,
                "backpressure-policy", ENGINE_IO_BACKPRESSURE_DROP_NEWEST, NULL);
  g_signal_connect (f->lb.server, "connection", G_CALLBACK (on_tap_connection), &gate);
  test_require (test_loopback_listen (&f->lb));
  poll = rel_poll_open (f->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);

  g_mutex_lock (&gate.lock);
  while (gate.socket == NULL)
    g_cond_wait (&gate.cond, &gate.lock);
  socket = g_object_ref (gate.socket);
  g_mutex_unlock (&gate.lock);

  end = g_get_monotonic_time () + (gint64) test_scaled_ms (2000) * 1000;
  poller = (Poller) { poll, end, 0 };
  thread = g_thread_new ("poller", poll_all, &poller);

  /* The first send blocks the tap; the client takes what follows. */
  g_assert_true (engine_io_socket_send_text (socket, text, NULL));
  g_mutex_lock (&gate.lock);
  while (!gate.entered)
    g_cond_wait (&gate.cond, &gate.lock);
  g_mutex_unlock (&gate.lock);
  while (g_get_monotonic_time () < end && accepted < 4 * TAP_MARK / TAP_MESSAGE)
    {
      if (engine_io_socket_send_text (socket, text, NULL))
        accepted++;
      else
        g_usleep (1000);
    }
  g_thread_join (thread);
  g_test_message ("%u sends accepted while the tap was blocked, %u taken by the client", accepted,
                  poller.received);

  g_mutex_lock (&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast (&gate.cond);
  g_mutex_unlock (&gate.lock);

  /* What the blocked tap holds stays within the mark. */
  g_assert_cmpuint ((guint64) accepted * TAP_MESSAGE, <=, TAP_MARK);

  engine_io_socket_close (socket);
  g_object_unref (socket);
  engine_io_server_close (f->lb.server);
  g_mutex_lock (&gate.lock);
  g_clear_object (&gate.socket);
  g_mutex_unlock (&gate.lock);
  g_mutex_clear (&gate.lock);
  g_cond_clear (&gate.cond);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/hooks-attack/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("connection-error/flood-slow-handler", test_connection_error_flood_slow_handler);
  ADD ("admission/client-gone-answer-race", test_admission_client_gone_answer_race);
  ADD ("admission/pending-at-close", test_admission_pending_at_close);
  ADD ("admission/dropped-server", test_admission_dropped_server);
  ADD ("headers/content-encoding", test_headers_content_encoding);
  ADD ("headers/websocket-extensions", test_headers_websocket_extensions);
  ADD ("packet-create/slow-tap", test_packet_create_slow_tap);
#undef ADD
  return g_test_run ();
}
