/* test-hooks.c: the application hooks against a real server over loopback,
 * in both threading modes (ENGINE_IO_TEST_LOOP_THREADS): the asynchronous
 * admission (engine_io_server_set_admission_async_func(), its answer, its
 * timeout and its bound), ::connection-error (and its bounded queue),
 * EngineIOSocket::upgrading / ::upgrade, and ping-interval-grace.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio/engineio.h"

/* The shared loopback fixture (sockets kept; no ::message handler) and
 * what the hooks of this file need. */
typedef struct
{
  TestLoopback    lb;
  GAsyncQueue    *admissions;  /* EngineIOAdmission (ref), as the hook got them */
  /* What the async hook does: 0 keep it (the test answers), 1 refuse now. */
  int             mode;
  guint           refuse_status;
  int             refuse_code;
  const char     *refuse_message;
  guint           hook_calls;  /* (atomic) */
  GMainContext   *context;     /* the callback-context, if set; else the default one */
  gboolean        tap;         /* connect ::packet-create */
} Fixture;

static void
on_upgrading (EngineIOSocket        *socket,
              EngineIOTransportType  transport,
              gpointer               data)
{
  Fixture *f = data;

  test_recorder_add (f->lb.events, "upgrading %d transport=%d", transport == ENGINE_IO_TRANSPORT_WEBSOCKET,
                     (int) engine_io_socket_get_transport (socket));
}

static void
on_upgrade (EngineIOSocket        *socket,
            EngineIOTransportType  transport,
            gpointer               data)
{
  Fixture *f = data;

  test_recorder_add (f->lb.events, "upgrade %d transport=%d", transport == ENGINE_IO_TRANSPORT_WEBSOCKET,
                     (int) engine_io_socket_get_transport (socket));
}

static void
on_packet_create (EngineIOSocket *socket,
                  EngineIOPacket *packet,
                  gpointer        data)
{
  Fixture *f = data;
  const char *text = engine_io_packet_is_binary (packet) ? NULL : engine_io_packet_get_text (packet, NULL);

  test_recorder_add (f->lb.events, "create %d %s", (int) engine_io_packet_get_packet_type (packet),
                     text != NULL ? text : "");
}

static void
on_connection (TestLoopback   *lb,
               EngineIOSocket *socket,
               gpointer        data)
{
  Fixture *f = data;

  g_signal_connect (socket, "upgrading", G_CALLBACK (on_upgrading), f);
  g_signal_connect (socket, "upgrade", G_CALLBACK (on_upgrade), f);
  if (f->tap)
    g_signal_connect (socket, "packet-create", G_CALLBACK (on_packet_create), f);
}

static void
on_connection_error (EngineIOServer    *server,
                     EngineIOHandshake *request,
                     guint              status,
                     int                code,
                     const char        *message,
                     gpointer           data)
{
  Fixture *f = data;
  const char *transport = engine_io_handshake_get_query_param (request, "transport");

  test_recorder_add (f->lb.events, "error %u %d %s|%s %s %s|transport=%s|main=%d",
                     status, code, message,
                     engine_io_handshake_get_method (request),
                     engine_io_handshake_get_path (request),
                     engine_io_handshake_get_remote_address (request),
                     transport != NULL ? transport : "-",
                     g_main_context_is_owner (f->context != NULL ? f->context : g_main_context_default ()));
}

static void
admission_hook (EngineIOServer    *server,
                EngineIOAdmission *admission,
                gpointer           data)
{
  Fixture *f = data;

  g_atomic_int_inc (&f->hook_calls);
  g_assert_nonnull (engine_io_admission_get_handshake (admission));
  if (f->mode == 1)
    g_assert_true (engine_io_admission_refuse (admission, f->refuse_status, f->refuse_code,
                                               f->refuse_message));
  else
    g_async_queue_push (f->admissions, engine_io_admission_ref (admission));
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->admissions = g_async_queue_new_full ((GDestroyNotify) engine_io_admission_unref);
  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_NO_MESSAGE;
  f->lb.keep_sockets = TRUE;
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  g_object_set (f->lb.server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  engine_io_server_close (f->lb.server);
  /* Deliver what the close refused, so nothing is left queued. */
  while (g_main_context_iteration (f->context, FALSE))
    ;
  test_loopback_clear (&f->lb);
  g_clear_pointer (&f->context, g_main_context_unref);
  g_async_queue_unref (f->admissions);
  test_log_check ();
}

/* Runs the default main context (where ::connection-error is emitted
 * without a callback-context) until @n events start with @prefix. */
static gboolean
spin_until (Fixture    *f,
            const char *prefix,
            guint       n,
            guint       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (test_recorder_count (f->lb.events, prefix) < n)
    {
      if (g_get_monotonic_time () > deadline)
        return FALSE;
      if (!g_main_context_iteration (f->context, FALSE))
        g_usleep (1000);
    }
  return TRUE;
}

/* The "message" of a JSON error body, or NULL. */
static char *
error_message_of (TestResponse *response)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *text = test_response_text (response);
  JsonObject *object;

  if (!json_parser_load_from_data (parser, text, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  object = json_node_get_object (json_parser_get_root (parser));
  if (!json_object_has_member (object, "message"))
    return NULL;
  return g_strdup (json_object_get_string_member (object, "message"));
}

/* A polling handshake sent, its response not read. */
static TestHttp *
start_handshake (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (4, "polling", NULL);
  TestHttp *http = test_http_new (f->lb.port);

  if (!test_http_send (http, "GET", target, NULL, NULL, -1, &error))
    g_test_fail_printf ("send: %s", error->message);
  return http;
}

static EngineIOAdmission *
pop_admission (Fixture *f)
{
  return g_async_queue_timeout_pop (f->admissions, (guint64) TEST_TIMEOUT_MS * 1000);
}

/* ------------------------------------------------------------------ */

static void
test_refuse_with_answer (Fixture       *f,
                         gconstpointer  data)
{
  /* A message that needs JSON escaping: quotes, a backslash, a newline,
   * non-ASCII. */
  static const char message[] = "No \"token\" \\ given\n: é";
  TestHttp *http;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestResponse) ws_response = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  g_autofree char *ws_got = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autofree char *expected = NULL;
  TestWs *ws;

  g_test_summary ("An async hook that refuses at once: the client gets the status, the code and "
                  "the (escaped) message the application chose, over polling and WebSocket; "
                  "::connection-error reports them with the request, in the default main context");
  f->mode = 1;
  f->refuse_status = 401;
  f->refuse_code = 42;
  f->refuse_message = message;
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  g_signal_connect (f->lb.server, "connection-error", G_CALLBACK (on_connection_error), f);
  test_loopback_listen (&f->lb);

  http = f->lb.http;
  response = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  test_require (response != NULL);
  g_assert_true (test_eio_is_error (response, 401, 42));
  got = error_message_of (response);
  g_assert_cmpstr (got, ==, message);

  ws = test_ws_connect (f->lb.port, target, NULL, 0, &ws_response, &error);
  g_assert_null (ws);
  g_clear_error (&error);
  test_require (ws_response != NULL);
  g_assert_true (test_eio_is_error (ws_response, 401, 42));
  ws_got = error_message_of (ws_response);
  g_assert_cmpstr (ws_got, ==, message);

  g_assert_true (spin_until (f, "error ", 2, TEST_TIMEOUT_MS));
  expected = g_strdup_printf ("error 401 42 %s|GET /engine.io/ 127.0.0.1|transport=polling|main=1", message);
  g_assert_cmpint (test_recorder_index (f->lb.events, expected), >=, 0);
  g_free (expected);
  expected = g_strdup_printf ("error 401 42 %s|GET /engine.io/ 127.0.0.1|transport=websocket|main=1", message);
  g_assert_cmpint (test_recorder_index (f->lb.events, expected), >=, 0);
  g_assert_cmpint (test_recorder_count (f->lb.events, "connection"), ==, 0);
  g_assert_cmpuint (g_atomic_int_get (&f->hook_calls), ==, 2);
}

typedef struct
{
  EngineIOAdmission *admission;
  gboolean           accept;
  gboolean           result;
} Answerer;

static gpointer
answer_thread (gpointer data)
{
  Answerer *a = data;

  if (a->accept)
    a->result = engine_io_admission_accept (a->admission);
  else
    a->result = engine_io_admission_refuse (a->admission, 403, 4, "Not in the database");
  return NULL;
}

static gboolean
answer_from_thread (EngineIOAdmission *admission,
                    gboolean           accept)
{
  Answerer a = { admission, accept, FALSE };
  GThread *thread = g_thread_new ("answer", answer_thread, &a);

  g_thread_join (thread);
  return a.result;
}

static void
test_async_answer_from_thread (Fixture       *f,
                               gconstpointer  data)
{
  g_autoptr(TestHttp) first = NULL;
  g_autoptr(TestHttp) second = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(EngineIOAdmission) admission = NULL;
  g_autoptr(EngineIOAdmission) admission2 = NULL;
  g_autofree char *message = NULL;

  g_test_summary ("An async hook answered later from another thread: the handshake waits "
                  "(suspended) for the answer, accept opens the session, refuse gives the "
                  "chosen answer; a second answer is ignored");
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  test_loopback_listen (&f->lb);

  first = start_handshake (f);
  admission = pop_admission (f);
  test_require (admission != NULL);
  g_assert_cmpstr (engine_io_handshake_get_query_param (engine_io_admission_get_handshake (admission),
                                                        "transport"), ==, "polling");
  /* Not answered: nothing comes back. */
  g_assert_false (test_http_wait_readable (first, 200));
  g_assert_cmpint (test_recorder_count (f->lb.events, "connection"), ==, 0);

  g_assert_true (answer_from_thread (admission, TRUE));
  response = test_http_receive (first, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  packets = test_eio_poll_packets (response, 4);
  test_require (packets != NULL && packets->len >= 1);
  g_assert_cmpint (((const char *) g_ptr_array_index (packets, 0))[0], ==, '0');
  g_assert_true (test_recorder_wait_count (f->lb.events, "connection ", 1, TEST_TIMEOUT_MS));
  /* Answered already. */
  g_assert_false (engine_io_admission_refuse (admission, 403, 4, "late"));
  g_assert_false (engine_io_admission_accept (admission));

  second = start_handshake (f);
  admission2 = pop_admission (f);
  test_require (admission2 != NULL);
  g_assert_true (answer_from_thread (admission2, FALSE));
  refused = test_http_receive (second, TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  g_assert_true (test_eio_is_error (refused, 403, 4));
  message = error_message_of (refused);
  g_assert_cmpstr (message, ==, "Not in the database");
  g_assert_cmpint (test_recorder_count (f->lb.events, "connection"), ==, 1);
}

static void
test_admission_timeout (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOAdmission) admission = NULL;
  g_autofree char *message = NULL;
  gint64 start;
  gint64 elapsed_ms;

  g_test_summary ("An admission never answered is refused with 503 `Admission timed out` after "
                  "admission-timeout, not before; a later answer is ignored");
  g_object_set (f->lb.server, "admission-timeout", 400, NULL);
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  test_loopback_listen (&f->lb);

  start = g_get_monotonic_time ();
  http = start_handshake (f);
  admission = pop_admission (f);
  test_require (admission != NULL);
  response = test_http_receive (http, TEST_TIMEOUT_MS + 400, &error);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_assert_no_error (error);
  g_assert_true (test_eio_is_error (response, 503, 4));
  message = error_message_of (response);
  g_assert_cmpstr (message, ==, "Admission timed out");
  g_assert_cmpint (elapsed_ms, >=, 400);
  g_assert_false (engine_io_admission_accept (admission));
  g_assert_cmpint (test_recorder_count (f->lb.events, "connection"), ==, 0);
}

#define MAX_PENDING 3

static void
test_admission_bound (Fixture       *f,
                      gconstpointer  data)
{
  TestHttp *waiting[MAX_PENDING + 1] = { NULL, };
  EngineIOAdmission *admissions[MAX_PENDING + 1] = { NULL, };
  g_autoptr(GError) error = NULL;

  g_test_summary ("At most max-pending-admissions handshakes wait for the hook: more get 503 "
                  "`Too many pending admissions` at once without running the hook; an answer "
                  "frees a place; the server's close refuses those still waiting at once");
  g_object_set (f->lb.server, "max-pending-admissions", MAX_PENDING, "admission-timeout", 60000, NULL);
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  test_loopback_listen (&f->lb);

  for (guint i = 0; i < MAX_PENDING; i++)
    {
      waiting[i] = start_handshake (f);
      admissions[i] = pop_admission (f);
      test_require (admissions[i] != NULL);
    }

  /* Over the bound, many times: each refused at once. */
  for (guint i = 0; i < 20; i++)
    {
      g_autoptr(TestHttp) http = test_http_new (f->lb.port);
      g_autoptr(TestResponse) response = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
      g_autofree char *message = NULL;

      test_require (response != NULL);
      g_assert_true (test_eio_is_error (response, 503, 4));
      message = error_message_of (response);
      g_assert_cmpstr (message, ==, "Too many pending admissions");
    }
  g_assert_cmpuint (g_atomic_int_get (&f->hook_calls), ==, MAX_PENDING);

  /* One answered: its place is free again. */
  g_assert_true (engine_io_admission_accept (admissions[0]));
  {
    g_autoptr(TestResponse) response = test_http_receive (waiting[0], TEST_TIMEOUT_MS, &error);
    g_assert_no_error (error);
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 200);
  }
  waiting[MAX_PENDING] = start_handshake (f);
  admissions[MAX_PENDING] = pop_admission (f);
  test_require (admissions[MAX_PENDING] != NULL);
  g_assert_cmpuint (g_atomic_int_get (&f->hook_calls), ==, MAX_PENDING + 1);

  /* The close does not wait for the admission timeout (a minute). */
  {
    gint64 start = g_get_monotonic_time ();

    engine_io_server_close (f->lb.server);
    g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) TEST_TIMEOUT_MS * 1000);
  }
  for (guint i = 1; i <= MAX_PENDING; i++)
    {
      g_autoptr(TestResponse) response = test_http_receive (waiting[i], TEST_TIMEOUT_MS, &error);
      g_autofree char *message = NULL;

      g_assert_no_error (error);
      g_clear_error (&error);
      g_assert_true (test_eio_is_error (response, 503, 4));
      message = response != NULL ? error_message_of (response) : NULL;
      g_assert_cmpstr (message, ==, "Server shutting down");
      g_assert_false (engine_io_admission_accept (admissions[i]));
    }
  for (guint i = 0; i <= MAX_PENDING; i++)
    {
      g_clear_pointer (&waiting[i], test_http_free);
      g_clear_pointer (&admissions[i], engine_io_admission_unref);
    }
}

/* Something with EngineIOAdmissionFunc's signature that refuses. */
static gboolean
refuse_all (EngineIOServer    *server,
                EngineIOHandshake *handshake,
                gpointer           data)
{
  return FALSE;
}

static void
test_sync_hook_unchanged (Fixture       *f,
                          gconstpointer  data)
{
  TestHttp *http;
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *message = NULL;

  g_test_summary ("The synchronous hook still refuses with 403 `Forbidden`, before the async "
                  "hook runs");
  engine_io_server_set_admission_func (f->lb.server, refuse_all, NULL, NULL);
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  test_loopback_listen (&f->lb);

  http = f->lb.http;
  response = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  g_assert_true (test_eio_is_error (response, 403, 4));
  message = error_message_of (response);
  g_assert_cmpstr (message, ==, "Forbidden");
  g_assert_cmpuint (g_atomic_int_get (&f->hook_calls), ==, 0);
}

static void
test_connection_error_kinds (Fixture       *f,
                             gconstpointer  data)
{
  TestHttp *http;
  static const struct
  {
    const char *method;
    const char *target;
    const char *event;
  } cases[] = {
    { "GET", "/engine.io/?EIO=4&transport=carrier-pigeon",
      "error 400 0 Transport unknown|GET /engine.io/ 127.0.0.1|transport=carrier-pigeon|main=1" },
    { "GET", "/engine.io/?EIO=4&transport=polling&sid=nosuchsession",
      "error 400 1 Session ID unknown|GET /engine.io/ 127.0.0.1|transport=polling|main=1" },
    { "POST", "/engine.io/?EIO=4&transport=polling",
      "error 400 2 Bad handshake method|POST /engine.io/ 127.0.0.1|transport=polling|main=1" },
    { "GET", "/engine.io/?EIO=9&transport=polling",
      "error 400 5 Unsupported protocol version|GET /engine.io/ 127.0.0.1|transport=polling|main=1" },
    { "GET", "/engine.io/?EIO=4&transport=websocket",
      "error 400 3 Bad request|GET /engine.io/ 127.0.0.1|transport=websocket|main=1" },
  };

  g_test_summary ("::connection-error for each kind of refused request, with its code, message "
                  "and request, in the default main context; none for an accepted handshake");
  g_signal_connect (f->lb.server, "connection-error", G_CALLBACK (on_connection_error), f);
  test_loopback_listen (&f->lb);
  http = f->lb.http;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) error = NULL;

      response = test_http_request (http, cases[i].method, cases[i].target, NULL,
                                    strcmp (cases[i].method, "POST") == 0 ? "1:4x" : NULL,
                                    strcmp (cases[i].method, "POST") == 0 ? 4 : -1,
                                    TEST_TIMEOUT_MS, &error);
      g_assert_no_error (error);
      test_require (response != NULL);
      g_assert_cmpuint (response->status, ==, 400);
      if (!spin_until (f, "error ", i + 1, TEST_TIMEOUT_MS))
        {
          g_test_fail_printf ("no ::connection-error for %s %s", cases[i].method, cases[i].target);
          return;
        }
      if (test_recorder_index (f->lb.events, cases[i].event) < 0)
        {
          g_auto(GStrv) all = test_recorder_dup (f->lb.events);
          g_autofree char *joined = g_strjoinv ("\n", all);
          g_test_fail_printf ("expected “%s” among:\n%s", cases[i].event, joined);
        }
    }

  /* An accepted handshake reports nothing. */
  {
    g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
    g_assert_nonnull (open);
    g_assert_true (test_recorder_wait_count (f->lb.events, "connection ", 1, TEST_TIMEOUT_MS));
    while (g_main_context_iteration (NULL, FALSE))
      ;
    g_assert_cmpuint (test_recorder_count (f->lb.events, "error "), ==, G_N_ELEMENTS (cases));
  }
}

#define MAX_QUEUED_REPORTS 128

static void
test_connection_error_bounded (Fixture       *f,
                               gconstpointer  data)
{
  TestHttp *http;
  guint n = MAX_QUEUED_REPORTS + 72;

  g_test_summary ("Reports waiting for a context that does not run are bounded (128): a client "
                  "making refused requests meanwhile does not grow them; the responses are all "
                  "given");
  g_signal_connect (f->lb.server, "connection-error", G_CALLBACK (on_connection_error), f);
  test_loopback_listen (&f->lb);
  http = f->lb.http;

  /* The default main context does not run meanwhile. */
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(TestResponse) response = test_http_get (http, "/engine.io/?EIO=4&transport=polling&sid=x");
      test_require (response != NULL);
      g_assert_true (test_eio_is_error (response, 400, 1));
    }
  /* A request on the same connection is served after the previous one's
   * report was made: an accepted handshake (which makes none) answered
   * means every report above was queued or dropped. */
  {
    g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
    test_require (open != NULL);
  }
  g_assert_true (spin_until (f, "error ", MAX_QUEUED_REPORTS, TEST_TIMEOUT_MS));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (test_recorder_count (f->lb.events, "error "), ==, MAX_QUEUED_REPORTS);

  /* Delivered, the queue takes reports again. */
  {
    g_autoptr(TestResponse) response = test_http_get (http, "/engine.io/?EIO=4&transport=polling&sid=y");
    g_assert_true (test_eio_is_error (response, 400, 1));
    g_assert_true (spin_until (f, "error ", MAX_QUEUED_REPORTS + 1, TEST_TIMEOUT_MS));
  }
}

static void
test_upgrade_signals (Fixture       *f,
                      gconstpointer  data)
{
  TestHttp *http;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *message = NULL;

  g_test_summary ("::upgrading when the probe is answered (still polling), ::upgrade when the "
                  "client's `5` completed it (now WebSocket), in that order, once each");
  test_loopback_listen (&f->lb);
  http = f->lb.http;
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  socket = g_async_queue_timeout_pop (f->lb.sockets, (guint64) TEST_TIMEOUT_MS * 1000);
  test_require (socket != NULL);

  ws = test_eio_probe (f->lb.port, 4, open->sid);
  test_require (ws != NULL);
  g_assert_true (test_recorder_wait (f->lb.events, "upgrading 1 transport=0", TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_count (f->lb.events, "upgrade "), ==, 0);

  test_require (test_ws_send_text (ws, "5"));
  g_assert_true (test_recorder_wait (f->lb.events, "upgrade 1 transport=1", TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_index_prefix (f->lb.events, "upgrading"), <,
                   test_recorder_index_prefix (f->lb.events, "upgrade "));

  /* The session works over the WebSocket. */
  g_assert_true (engine_io_socket_send_text (socket, "after", NULL));
  message = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (message, ==, "after");
  g_assert_cmpuint (test_recorder_count (f->lb.events, "upgrading"), ==, 1);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "upgrade "), ==, 1);
}

static void
test_ping_interval_grace (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  TestHttp *http;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestOpenPacket) ws_open = NULL;
  gint64 ping_at = 0;
  gint64 closed_at;
  gint code;

  g_test_summary ("ping-interval-grace: a client that never answers a ping is closed (ping "
                  "timeout) no sooner than ping-timeout + the grace after the ping; the open "
                  "packet still advertises ping-interval and ping-timeout alone");
  g_object_set (f->lb.server, "ping-interval", 200, "ping-timeout", 200, "ping-interval-grace", 2000, NULL);
  test_loopback_listen (&f->lb);

  http = f->lb.http;
  open = test_eio_polling_open (http, 4);
  test_require (open != NULL);
  g_assert_cmpint (open->ping_interval, ==, 200);
  g_assert_cmpint (open->ping_timeout, ==, 200);

  /* A WebSocket session whose client reads but answers no ping. */
  ws = test_eio_ws_open_try (f->lb.port, 4, NULL, 0, TEST_TIMEOUT_MS, &ws_open, &error);
  g_assert_no_error (error);
  test_require (ws != NULL);
  while (ping_at == 0)
    {
      g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, TEST_TIMEOUT_MS, &error);
      g_autofree char *text = NULL;

      g_assert_no_error (error);
      test_require (frame != NULL);
      text = test_ws_frame_dup_text (frame);
      if (g_strcmp0 (text, "2") == 0)
        ping_at = g_get_monotonic_time ();
    }
  code = test_ws_read_close (ws, 2200 + TEST_TIMEOUT_MS, NULL);
  closed_at = g_get_monotonic_time ();
  g_assert_cmpint (code, !=, -3);
  g_test_message ("closed %" G_GINT64_FORMAT " ms after the ping", (closed_at - ping_at) / 1000);
  /* 200 + 2000 after the server sent the ping; the client may have read
   * the ping late, hence the margin (without the grace: about 200). */
  g_assert_cmpint ((closed_at - ping_at) / 1000, >=, 1700);
  test_recorder_expect (f->lb.events, TEST_TIMEOUT_MS, "close %s %s", open->sid,
                        engine_io_close_reason_to_string (ENGINE_IO_CLOSE_REASON_PING_TIMEOUT));
  test_recorder_expect (f->lb.events, TEST_TIMEOUT_MS, "close %s %s", ws_open->sid,
                        engine_io_close_reason_to_string (ENGINE_IO_CLOSE_REASON_PING_TIMEOUT));
}

static void
headers_hook (EngineIOServer          *server,
              EngineIOHandshake       *request,
              guint                    status,
              gboolean                 handshake,
              EngineIOResponseHeaders *headers,
              gpointer                 data)
{
  g_autofree char *value = g_strdup_printf ("%u %s %s", status, engine_io_handshake_get_method (request),
                                            engine_io_handshake_get_query_param (request, "transport"));

  engine_io_response_headers_append (headers, "X-Hook", value);
  if (handshake)
    engine_io_response_headers_append (headers, "X-Initial", "yes");
  if (g_strcmp0 (engine_io_handshake_get_query_param (request, "evil"), "1") == 0)
    {
      /* Response splitting and framing: not added, not removed. */
      engine_io_response_headers_append (headers, "X-Split", "a\r\nSet-Cookie: x=y");
      engine_io_response_headers_append (headers, "Content-Length", "0");
      g_assert_cmpuint (engine_io_response_headers_remove (headers, "Content-Type"), ==, 1);
      g_assert_null (engine_io_response_headers_get (headers, "content-type"));
      engine_io_response_headers_append (headers, "Content-Type", "application/json; hooked");
    }
}

static void
test_headers_hook (Fixture       *f,
                   gconstpointer  data)
{
  TestHttp *http;
  g_autoptr(TestResponse) handshake = NULL;
  g_autoptr(TestResponse) poll = NULL;
  g_autoptr(TestResponse) refused = NULL;
  g_autoptr(TestResponse) evil = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = NULL;
  g_autofree char *ws_target = test_eio_target (4, "websocket", NULL);

  g_test_summary ("The response-header hook adds headers to the handshake (flagged as such: "
                  "Node's initial_headers) and to every other response (polls, errors, the "
                  "WebSocket 101); what it may not add (control characters, framing headers) "
                  "is dropped with a warning");
  engine_io_server_set_headers_func (f->lb.server, headers_hook, NULL, NULL);
  test_loopback_listen (&f->lb);
  http = f->lb.http;

  handshake = test_http_get (http, "/engine.io/?EIO=4&transport=polling");
  test_require (handshake != NULL && handshake->status == 200);
  g_assert_cmpstr (test_response_header (handshake, "X-Hook"), ==, "200 GET polling");
  g_assert_cmpstr (test_response_header (handshake, "X-Initial"), ==, "yes");
  socket = g_async_queue_timeout_pop (f->lb.sockets, (guint64) TEST_TIMEOUT_MS * 1000);
  test_require (socket != NULL);
  g_assert_true (engine_io_socket_send_text (socket, "hi", NULL));
  target = test_eio_target (4, "polling", engine_io_socket_get_id (socket));
  poll = test_http_get (http, target);
  test_require (poll != NULL && poll->status == 200);
  g_assert_cmpstr (test_response_header (poll, "X-Hook"), ==, "200 GET polling");
  g_assert_null (test_response_header (poll, "X-Initial"));

  refused = test_http_get (http, "/engine.io/?EIO=4&transport=polling&sid=nope");
  g_assert_true (test_eio_is_error (refused, 400, 1));
  g_assert_cmpstr (test_response_header (refused, "X-Hook"), ==, "400 GET polling");
  g_assert_null (test_response_header (refused, "X-Initial"));

  ws = test_ws_connect (f->lb.port, ws_target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  test_require (ws != NULL);
  g_assert_cmpstr (test_ws_response_header (ws, "X-Hook"), ==, "101 GET websocket");
  g_assert_cmpstr (test_ws_response_header (ws, "X-Initial"), ==, "yes");

  test_log_expect (G_LOG_LEVEL_WARNING, "X-Split");
  test_log_expect (G_LOG_LEVEL_WARNING, "Content-Length");
  evil = test_http_get (http, "/engine.io/?EIO=4&transport=polling&sid=nope&evil=1");
  test_require (evil != NULL);
  g_assert_true (test_eio_is_error (evil, 400, 1));
  g_assert_null (test_response_header (evil, "X-Split"));
  g_assert_null (test_response_header (evil, "Set-Cookie"));
  g_assert_cmpstr (test_response_header (evil, "Content-Length"), !=, "0");
  g_assert_cmpstr (test_response_header (evil, "Content-Type"), ==, "application/json; hooked");
  g_assert_true (test_log_wait_expected (TEST_TIMEOUT_MS));
}

static void
test_node_client_sees_refusal (Fixture       *f,
                               gconstpointer  data)
{
  const char *dir = g_getenv ("ENGINE_IO_INTEROP_DIR");
  g_autofree char *node = g_find_program_in_path ("node");
  g_autofree char *script = NULL;
  g_autofree char *modules = NULL;
  g_autofree char *url = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(JsonParser) body_parser = json_parser_new ();
  JsonObject *result;
  JsonObject *body;

  g_test_summary ("npm engine.io-client 6 (polling) gets the status and the JSON body "
                  "{code, message} an asynchronous admission hook chose");
  if (dir == NULL || node == NULL)
    {
      g_test_skip ("ENGINE_IO_INTEROP_DIR or node missing");
      return;
    }
  script = g_build_filename (dir, "client-refused.mjs", NULL);
  modules = g_build_filename (dir, "node_modules", "engine.io-client", NULL);
  if (!g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("tests/interop/node_modules missing (npm ci --prefix tests/interop)");
      return;
    }

  f->mode = 1;
  f->refuse_status = 401;
  f->refuse_code = 4;
  f->refuse_message = "Invalid token";
  engine_io_server_set_admission_async_func (f->lb.server, admission_hook, f, NULL);
  test_loopback_listen (&f->lb);
  url = g_strdup_printf ("http://127.0.0.1:%u/engine.io/", f->lb.port);

  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error,
                              node, script, url, NULL);
  g_assert_no_error (error);
  test_require (process != NULL);
  g_subprocess_communicate_utf8 (process, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_if_exited (process) || g_subprocess_get_exit_status (process) != 0)
    {
      g_test_fail_printf ("client-refused.mjs failed: %s %s", out ? out : "", err ? err : "");
      return;
    }
  test_require (json_parser_load_from_data (parser, out, -1, NULL));
  result = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpint (json_object_get_int_member (result, "status"), ==, 401);
  test_require (json_parser_load_from_data (body_parser, json_object_get_string_member (result, "body"),
                                            -1, NULL));
  body = json_node_get_object (json_parser_get_root (body_parser));
  g_assert_cmpint (json_object_get_int_member (body, "code"), ==, 4);
  g_assert_cmpstr (json_object_get_string_member (body, "message"), ==, "Invalid token");
}

static void
test_connection_error_callback_context (Fixture       *f,
                                        gconstpointer  data)
{
  TestHttp *http;
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("With a callback-context, ::connection-error is emitted there (not in the "
                  "default main context)");
  f->context = g_main_context_new ();
  g_object_set (f->lb.server, "callback-context", f->context, NULL);
  g_signal_connect (f->lb.server, "connection-error", G_CALLBACK (on_connection_error), f);
  test_loopback_listen (&f->lb);
  http = f->lb.http;
  response = test_http_get (http, "/engine.io/?EIO=4&transport=polling&sid=nope");
  g_assert_true (test_eio_is_error (response, 400, 1));
  /* The default context runs meanwhile and must not get it. */
  for (guint i = 0; i < 20; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpuint (test_recorder_count (f->lb.events, "error "), ==, 0);
  g_assert_true (spin_until (f, "error ", 1, TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_index (f->lb.events, "error 400 1 Session ID unknown|GET /engine.io/ "
                                        "127.0.0.1|transport=polling|main=1"), >=, 0);
}

static void
test_packet_create (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_auto(GStrv) events = NULL;
  gint close_at;

  g_test_summary ("::packet-create reports each packet queued for the client (messages sent "
                  "from another thread, the server's pings), in queue order, in the "
                  "socket's context, none after ::close");
  f->tap = TRUE;
  g_object_set (f->lb.server, "ping-interval", 300, "ping-timeout", 5000, NULL);
  test_loopback_listen (&f->lb);
  ws = test_eio_ws_open_socket (f->lb.port, f->lb.sockets, (gpointer *) &socket);
  test_require (ws != NULL);

  g_assert_true (engine_io_socket_send_text (socket, "first", NULL));
  g_assert_true (engine_io_socket_send_text (socket, "second", NULL));
  first = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  second = test_eio_ws_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (first, ==, "first");
  g_assert_cmpstr (second, ==, "second");
  g_assert_true (test_recorder_wait (f->lb.events, "create 4 second", TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_index (f->lb.events, "create 4 first"), <,
                   test_recorder_index (f->lb.events, "create 4 second"));
  /* A ping (answered by the client) is reported too. */
  g_assert_true (test_recorder_wait (f->lb.events, "create 2 ", 300 + TEST_TIMEOUT_MS));

  engine_io_socket_close (socket);
  g_assert_true (test_recorder_wait_count (f->lb.events, "close ", 1, TEST_TIMEOUT_MS));
  /* Whatever is queued after the close is not reported. */
  engine_io_socket_send_text (socket, "late", NULL);
  events = test_recorder_dup (f->lb.events);
  close_at = test_recorder_index_prefix (f->lb.events, "close ");
  for (guint i = (guint) close_at + 1; events[i] != NULL; i++)
    g_assert_false (g_str_has_prefix (events[i], "create "));
  g_assert_cmpint (test_recorder_index (f->lb.events, "create 4 late"), <, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/hooks/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("admission/refuse-with-answer", test_refuse_with_answer);
  ADD ("admission/async-answer-from-thread", test_async_answer_from_thread);
  ADD ("admission/timeout", test_admission_timeout);
  ADD ("admission/bound", test_admission_bound);
  ADD ("admission/sync-hook-unchanged", test_sync_hook_unchanged);
  ADD ("connection-error/kinds", test_connection_error_kinds);
  ADD ("connection-error/bounded", test_connection_error_bounded);
  ADD ("connection-error/callback-context", test_connection_error_callback_context);
  ADD ("socket/upgrade-signals", test_upgrade_signals);
  ADD ("socket/ping-interval-grace", test_ping_interval_grace);
  ADD ("socket/packet-create", test_packet_create);
  ADD ("headers", test_headers_hook);
  ADD ("admission/node-client-sees-refusal", test_node_client_sees_refusal);
#undef ADD
  return g_test_run ();
}
