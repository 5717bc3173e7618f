/* test-sio-abuse.c: attacks on the Socket.IO server (regression tests of
 * the adversarial review)
 *
 * An EngineIOServer on 127.0.0.1 port 0 with a SocketIOServer on top,
 * driven by raw Engine.IO clients speaking Socket.IO by hand (SioLoopback,
 * sioutil.h). Run with ENGINE_IO_TEST_LOOP_THREADS=0 and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "sioutil.h"
#include "socketio/socketio.h"
#include "socketio-json-private.h"

typedef struct
{
  SioLoopback lb;
} Fixture;

/* Members of the object @node, or -1. */
static gint
members_of (JsonNode *node)
{
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return -1;
  return (gint) json_object_get_size (json_node_get_object (node));
}

static void
on_event (SocketIOSocket *socket,
          const char     *name,
          JsonArray      *args,
          GPtrArray      *attachments,
          SocketIOAck    *ack,
          gpointer        user_data)
{
  g_autoptr(GError) error = NULL;

  if (strcmp (name, "echo") == 0)
    g_assert_true (socket_io_socket_emit (socket, "echo-back", args, attachments, &error));
  else if (strcmp (name, "count") == 0 && ack != NULL)
    {
      /* Answers with the member count of the first argument. */
      g_autoptr(JsonArray) reply = json_array_new ();

      json_array_add_int_element (reply, members_of (json_array_get_element (args, 0)));
      g_assert_true (socket_io_ack_send (ack, reply, NULL, &error));
    }
  g_assert_no_error (error);
}

/* The suite's handlers, and the number of members of the auth object. */
static void
on_connection (SioLoopback    *lb,
               SocketIOSocket *socket,
               gpointer        user_data)
{
  test_recorder_add (lb->rec, "auth %s members=%d",
                     socket_io_namespace_get_name (socket_io_socket_get_namespace (socket)),
                     members_of (socket_io_socket_get_auth (socket)));
  g_signal_connect (socket, "event", G_CALLBACK (on_event), NULL);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const char *names[] = { "/", "/custom" };

  sio_loopback_init (&f->lb, NULL);
  g_object_set (f->lb.engine, "allow-eio3", TRUE, NULL);
  f->lb.on_connection = on_connection;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_object_unref (sio_loopback_of (&f->lb, names[i]));
  sio_loopback_listen (&f->lb);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  sio_loopback_clear (&f->lb);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* Hash flooding                                                        */
/* ------------------------------------------------------------------ */

/* json-glib keys the members of a JsonObject on g_str_hash(), unseeded
 * DJB (h = h * 33 + c): "Ez" and "FY" hash alike, and so do all 2^k
 * strings of k such blocks. 24,000 such names (30 bytes each) in one
 * object took json-glib 7 s of CPU (17 s under ASan) to build, from one
 * 840 KB message, where distinct names take 0.04 s. */
#define FLOOD_BLOCKS 15
#define FLOOD_NAMES  24000

static void
append_flood_name (GString *out,
                   guint    i)
{
  for (guint j = 0; j < FLOOD_BLOCKS; j++)
    g_string_append (out, (i >> j) & 1 ? "FY" : "Ez");
}

/* {"<name0>":0,"<name1>":0,...} with @n colliding names (or distinct
 * ones, of the same length, without @colliding). */
static void
append_flood_object (GString  *out,
                     guint     n,
                     gboolean  colliding)
{
  g_string_append_c (out, '{');
  for (guint i = 0; i < n; i++)
    {
      if (i > 0)
        g_string_append_c (out, ',');
      g_string_append_c (out, '"');
      if (colliding)
        append_flood_name (out, i);
      else
        g_string_append_printf (out, "%0*u", 2 * FLOOD_BLOCKS, i);
      g_string_append (out, "\":0");
    }
  g_string_append_c (out, '}');
}

/* While @attacked is busy: another client echoes in time. */
static void
check_healthy (TestWs *healthy)
{
  gint64 start = g_get_monotonic_time ();

  test_require (sio_send (healthy, "2[\"echo\",\"still here\"]"));
  expect_next (healthy, "2[\"echo-back\",\"still here\"]");
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) TEST_TIMEOUT_MS * 1000);
}

static void
test_hash_flood_event (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(TestWs) healthy = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(GString) packet = g_string_new ("2[\"count\",");
  g_autoptr(GString) plain = g_string_new ("21[\"count\",");

  test_require (healthy != NULL && ws != NULL);
  test_require (sio_connect (healthy, "/", NULL, NULL, NULL));
  test_require (sio_connect (ws, "/", NULL, NULL, NULL));

  /* The same size with distinct names: accepted at once. */
  append_flood_object (plain, FLOOD_NAMES, FALSE);
  g_string_append_c (plain, ']');
  test_require (sio_send (ws, plain->str));
  expect_next (ws, "31[24000]");

  /* Colliding names: refused like malformed JSON, before json-glib
   * builds the object; the session closes with "parse error". */
  append_flood_object (packet, FLOOD_NAMES, TRUE);
  g_string_append_c (packet, ']');
  test_require (sio_send (ws, packet->str));
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), !=, -3);
  sio_loopback_expect (&f->lb, "disconnect / parse error rooms=0");
  check_healthy (healthy);
}

/* The CONNECT payload is parsed before any middleware runs: the attack
 * needs no namespace. */
static void
test_hash_flood_connect (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestWs) healthy = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(GString) packet = g_string_new ("0");

  test_require (healthy != NULL && ws != NULL);
  test_require (sio_connect (healthy, "/", NULL, NULL, NULL));
  append_flood_object (packet, FLOOD_NAMES, TRUE);
  test_require (sio_send (ws, packet->str));
  g_assert_cmpint (test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL), !=, -3);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "connect "), ==, 1);
  check_healthy (healthy);
}

static JsonNode *
parse_member_names (const char * const *names,
                    guint               n,
                    GError            **error)
{
  SocketIOJsonLimits limits = { 128, 32 * 1024 * 1024, 0 };
  g_autoptr(GString) text = g_string_new ("{");

  for (guint i = 0; i < n; i++)
    g_string_append_printf (text, "%s\"%s\":%u", i > 0 ? "," : "", names[i], i);
  g_string_append_c (text, '}');
  return socket_io_json_parse (text->str, text->len, 0, &limits, error);
}

/* Names that collide once decoded: escapes and non-ASCII bytes count as
 * json-glib stores them (UTF-8, hashed as signed chars); what stays
 * accepted: up to 16 names of one hash per object, duplicates included,
 * and the same name in many objects. */
static void
test_hash_flood_json (void)
{
  /* Two blocks of each family hash alike once decoded: "Ez" "FY", and
   * U+00BF U+00DE (C2 BF, C3 9E: 33 * -62 - 65 == 33 * -61 - 98). */
  static const char * const family_a[] = { "Ez", "FY", "\\u0045z", "F\\u0059" };
  static const char * const family_b[] = { "\\u00bf", "\xc3\x9e", "\xc2\xbf", "\\u00DE" };
  const char * const *families[] = { family_a, family_b };

  for (guint fam = 0; fam < G_N_ELEMENTS (families); fam++)
    for (guint n = 16; n <= 17; n++)
      {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
        g_autoptr(GError) error = NULL;
        g_autoptr(JsonNode) node = NULL;

        /* Spelt four ways, two strings once decoded: a hash of the
         * text instead of the decoded name would see 8 or 9 alike. */
        for (guint i = 0; i < n; i++)
          g_ptr_array_add (names, g_strdup (families[fam][i % 4]));
        node = parse_member_names ((const char * const *) names->pdata, n, &error);
        if (n <= 16)
          {
            g_assert_no_error (error);
            g_assert_nonnull (node);
          }
        else
          {
            g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
            g_assert_null (node);
          }
      }

  /* Ordinary data: one name in many objects, short repeated names. */
  {
    SocketIOJsonLimits limits = { 128, 32 * 1024 * 1024, 0 };
    g_autoptr(GString) text = g_string_new ("[");
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = NULL;

    for (guint i = 0; i < 1000; i++)
      g_string_append_printf (text, "%s{\"id\":%u,\"name\":\"n\",\"a\":{\"id\":1}}", i ? "," : "", i);
    g_string_append (text, ",{\"a\":1,\"a\":2,\"a\":3}]");
    node = socket_io_json_parse (text->str, text->len, 0, &limits, &error);
    g_assert_no_error (error);
    g_assert_nonnull (node);
  }
}

static guint32
djb_hash (const char *s)
{
  guint32 h = 5381;

  for (const signed char *p = (const signed char *) s; *p != '\0'; p++)
    h = (h << 5) + h + (guint32) *p;
  return h;
}

/* Names of distinct hashes that GLib's GHashTable (a table of 2^13
 * slots indexes with (hash * 11) % 8191) puts in one bucket: the chain
 * is as long, only its compares are cheaper. 60,000 such names (900 KB,
 * found offline in 2 minutes, forever: the hash is unseeded) took 3.8 s
 * to parse, distinct ones 0.05 s. Here 3,000, found in a moment. */
static void
test_hash_flood_buckets (void)
{
  SocketIOJsonLimits limits = { 128, 32 * 1024 * 1024, 0 };
  g_autoptr(GString) text = g_string_new ("{");
  g_autoptr(GHashTable) seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;
  guint found = 0;

  for (guint64 k = 0; found < 3000; k++)
    {
      char name[11];
      guint64 x = k;
      guint32 h;

      for (int i = 0; i < 10; i++, x /= 26)
        name[i] = (char) ('a' + x % 26);
      name[10] = '\0';
      h = djb_hash (name);
      if ((guint32) (h * 11) % 8191 != 0 || !g_hash_table_add (seen, GUINT_TO_POINTER (h)))
        continue;
      g_string_append_printf (text, "%s\"%s\":0", found++ > 0 ? "," : "", name);
    }
  g_string_append_c (text, '}');
  node = socket_io_json_parse (text->str, text->len, 0, &limits, &error);
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  g_assert_null (node);
}

/* Protocol v4: the query of a CONNECT's namespace becomes the auth
 * object. As the reference (Node's querystring, maxKeys 1000), at most
 * 1000 parameters are read: 24,000 colliding names took GLib's and
 * json-glib's hash tables 8.7 s of CPU (25 s under ASan). */
static void
test_hash_flood_v4_query (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(TestWs) healthy = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) ws = sio_ws_open (f->lb.port, 3);
  g_autoptr(GString) packet = g_string_new ("0/custom?");
  gint64 start;

  test_require (healthy != NULL && ws != NULL);
  test_require (sio_connect (healthy, "/", NULL, NULL, NULL));
  expect_next (ws, "0");
  for (guint i = 0; i < FLOOD_NAMES; i++)
    {
      if (i > 0)
        g_string_append_c (packet, '&');
      append_flood_name (packet, i);
      g_string_append (packet, "=1");
    }
  start = g_get_monotonic_time ();
  test_require (sio_send (ws, packet->str));
  expect_next (ws, "0/custom,");
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) TEST_TIMEOUT_MS * 1000);
  sio_loopback_expect (&f->lb, "auth /custom members=1000");
  check_healthy (healthy);
}

/* ------------------------------------------------------------------ */
/* Ordering                                                             */
/* ------------------------------------------------------------------ */

typedef struct
{
  SocketIONamespace *nsp;
  gint               stop;   /* atomic */
  guint              sent;
} Broadcaster;

static gpointer
broadcaster_thread (gpointer data)
{
  Broadcaster *b = data;

  while (!g_atomic_int_get (&b->stop))
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (socket_io_namespace_emit (b->nsp, "tick", NULL, NULL, &error));
      b->sent++;
    }
  return NULL;
}

/* The CONNECT reply is the first packet of a namespace a client gets,
 * however busy the namespace: a broadcast racing with the join either
 * misses the socket or comes after the reply (the reference joins the
 * socket's room and queues the reply in one go). Broadcasts used to
 * reach the socket once it was in the adapter, before the reply was
 * queued. */
static void
test_connect_reply_first (Fixture       *f,
                          gconstpointer  data)
{
  Broadcaster b = { socket_io_server_of (f->lb.sio, "/"), 0, 0 };
  GThread *thread = g_thread_new ("broadcaster", broadcaster_thread, &b);
  guint early = 0;

  for (guint i = 0; i < 300; i++)
    {
      g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
      g_autofree char *first = NULL;

      if (ws == NULL)
        break;
      sio_send (ws, "0");
      first = sio_next (ws, TEST_TIMEOUT_MS);
      if (first == NULL)
        {
          g_test_fail_printf ("no answer to CONNECT");
          break;
        }
      if (!g_str_has_prefix (first, "0{\"sid\":"))
        early++;
    }
  g_atomic_int_set (&b.stop, 1);
  g_thread_join (thread);
  g_test_message ("%u broadcasts; %u CONNECT replies came after a broadcast", b.sent, early);
  g_assert_cmpuint (early, ==, 0);
  g_object_unref (b.nsp);
}

/* ------------------------------------------------------------------ */
/* Server acks against disconnection                                    */
/* ------------------------------------------------------------------ */

typedef struct
{
  Fixture      *f;
  gint          stop;        /* atomic */
  gint          issued;      /* atomic */
  gint          completed;   /* atomic */
  gint          answered;    /* atomic */
  GMainContext *context;     /* the asker thread's */
} Asker;

static void
on_churn_ack (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Asker *a = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) args = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source), result,
                                                                     NULL, &error);

  g_assert_true ((args != NULL) != (error != NULL));
  if (args != NULL)
    g_atomic_int_inc (&a->answered);
  g_atomic_int_inc (&a->completed);
}

/* An application thread asking every socket of "/" with a short timeout
 * (or none; with a cancellable or not) while clients come and go; its
 * callbacks run in its own context. */
static gpointer
asker_thread (gpointer data)
{
  Asker *a = data;
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (a->f->lb.sio, "/");
  guint round = 0;

  g_main_context_push_thread_default (a->context);
  while (!g_atomic_int_get (&a->stop))
    {
      g_autoptr(GPtrArray) sockets = socket_io_namespace_get_sockets (nsp);

      for (guint i = 0; i < sockets->len; i++, round++)
        {
          g_autoptr(GCancellable) cancellable = round % 3 == 2 ? g_cancellable_new () : NULL;

          g_atomic_int_inc (&a->issued);
          socket_io_socket_emit_with_ack (g_ptr_array_index (sockets, i), "q", NULL, NULL,
                                          round % 3 == 0 ? 0 : 1 + round % 7, cancellable,
                                          on_churn_ack, a);
          /* Not cancelled: cancelling from this thread while the
           * session's thread completes the ask (and drops its
           * GCancellableSource) leaks that source in GLib 2.74
           * (cancellable_source_dispose() "resurrects" it during a
           * cancellation whose handler already ran). */
        }
      while (g_main_context_iteration (a->context, FALSE))
        ;
      g_usleep (500);
    }
  /* Every ask completes: answered, timed out, cancelled or failed by the
   * disconnection of its socket (the clients are all gone by now). */
  for (gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
       g_atomic_int_get (&a->completed) < g_atomic_int_get (&a->issued) && g_get_monotonic_time () < end;)
    g_main_context_iteration (a->context, FALSE) || (g_usleep (1000), TRUE);
  g_main_context_pop_thread_default (a->context);
  return NULL;
}

static void
test_ack_churn (Fixture       *f,
                gconstpointer  data)
{
  Asker a = { f, 0, 0, 0, 0, g_main_context_new () };
  GThread *thread = g_thread_new ("asker", asker_thread, &a);

  for (guint i = 0; i < 60; i++)
    {
      g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
      g_autofree char *question = NULL;

      if (ws == NULL || !sio_connect (ws, "/", NULL, NULL, NULL))
        break;
      /* Answer one question, or none; then leave one way or another. */
      question = sio_next (ws, TEST_TIMEOUT_MS);
      if (question != NULL && i % 2 == 0)
        {
          const char *id = question + 1;
          g_autofree char *answer = g_strdup_printf ("3%.*s[\"a\"]", (int) strspn (id, "0123456789"), id);

          sio_send (ws, answer);
          g_usleep (2000);
        }
      switch (i % 3)
        {
        case 0:
          test_ws_drop (ws, TRUE);
          break;
        case 1:
          sio_send (ws, "1");
          break;
        default:
          test_ws_send_close (ws, 1000);
        }
    }
  /* Let every session end before the asker stops. */
  for (gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
       test_recorder_count (f->lb.rec, "disconnect ") < test_recorder_count (f->lb.rec, "connect ") &&
       g_get_monotonic_time () < end;)
    g_usleep (10000);
  g_atomic_int_set (&a.stop, 1);
  g_thread_join (thread);
  g_test_message ("%d asks, %d answered", a.issued, a.answered);
  g_assert_cmpint (a.issued, >, 0);
  g_assert_cmpint (a.completed, ==, a.issued);
  g_main_context_unref (a.context);
}

/* ------------------------------------------------------------------ */
/* socketio-echo                                                        */
/* ------------------------------------------------------------------ */

/* socketio-echo leaked the empty auth object it emits on every
 * connection without auth (LeakSanitizer fails the exit status in the
 * ASan build; elsewhere this checks the echo and a clean exit). */
static void
test_echo_tool (void)
{
  const char *echo = g_getenv ("SOCKETIO_ECHO");
  g_autofree char *loop_threads = g_strdup_printf ("%u", test_loop_threads_from_env ());
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  guint port = 0;
  const char *p;

  if (echo == NULL)
    {
      g_test_skip ("SOCKETIO_ECHO is not set (meson test sets it)");
      return;
    }
  /* GLib's slices would hide the leak from LeakSanitizer. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "G_SLICE", "always-malloc", TRUE);
  process = g_subprocess_launcher_spawn (launcher, &error, echo,
                                         "--port", "0", "--path", "/engine.io/",
                                         "--loop-threads", loop_threads, NULL);
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

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(TestWs) ws = sio_ws_open (port, 4);

      test_require (ws != NULL);
      test_require (sio_connect (ws, "/", NULL, NULL, NULL));
      expect_next (ws, "2[\"auth\",{}]");
      test_require (sio_send (ws, "2[\"message\",1]"));
      expect_next (ws, "2[\"message-back\",1]");
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
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/sio-abuse/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("hash-flood/event", test_hash_flood_event);
  ADD ("hash-flood/connect", test_hash_flood_connect);
  ADD ("hash-flood/v4-query", test_hash_flood_v4_query);
  ADD ("connect-reply-first", test_connect_reply_first);
  ADD ("ack-churn", test_ack_churn);
#undef ADD
  g_test_add_func ("/sio-abuse/hash-flood/json", test_hash_flood_json);
  g_test_add_func ("/sio-abuse/hash-flood/buckets", test_hash_flood_buckets);
  g_test_add_func ("/sio-abuse/echo-tool", test_echo_tool);
  return g_test_run ();
}
