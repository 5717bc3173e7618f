/* test-sio-recovery.c: connection state recovery (SocketIOServer's
 * connection-state-recovery, the reference's `connectionStateRecovery`)
 *
 * An EngineIOServer on 127.0.0.1 port 0 with a SocketIOServer on top,
 * driven by raw Engine.IO v4 WebSocket clients (SioLoopback, sioutil.h)
 * speaking Socket.IO v5 by hand. Missed broadcasts are emitted from the test
 * thread (socket_io_namespace_emit() and friends may be called from any
 * thread; they are queued when they return). Run with
 * ENGINE_IO_TEST_LOOP_THREADS=0 and =2.
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
  guint max_disconnection;   /* ms, unscaled */
  guint max_packets;
  guint max_sessions;
  gboolean recovery;
  guint max_bytes;
  guint64 send_high_water;   /* the engine's; 0: its default */
  gboolean run_middlewares;  /* skip-middlewares FALSE */
} Config;

typedef struct
{
  SioLoopback     lb;
  GMutex          lock;
  SocketIOMiddlewareCall *held;   /* (lock) an /async CONNECT waiting */
} Fixture;

#define MiB (1024 * 1024)
static const Config default_config = { 120000, 10000, 10000, TRUE, 16 * MiB };
static const Config short_config = { 300, 10000, 10000, TRUE, 16 * MiB };
static const Config few_packets_config = { 120000, 3, 10000, TRUE, 16 * MiB };
static const Config one_session_config = { 120000, 10000, 1, TRUE, 16 * MiB };
static const Config off_config = { 120000, 10000, 10000, FALSE, 16 * MiB };
static const Config few_bytes_config = { 120000, 10000, 10000, TRUE, 16384 };
static const Config small_queue_config = { 120000, 10000, 10000, TRUE, 16 * MiB, 8192 };
static const Config middlewares_config = { 120000, 10000, 10000, TRUE, 16 * MiB, 0, TRUE };

/* "a,b" of the rooms of @socket but its own, sorted ("-" for none). */
static char *
other_rooms (SocketIOSocket *socket)
{
  g_auto(GStrv) rooms = socket_io_socket_get_rooms (socket);
  GString *out = g_string_new (NULL);

  for (guint i = 0; rooms[i] != NULL; i++)
    if (strcmp (rooms[i], socket_io_socket_get_id (socket)) != 0)
      g_string_append_printf (out, "%s%s", out->len > 0 ? "," : "", rooms[i]);
  if (out->len == 0)
    g_string_append_c (out, '-');
  return g_string_free (out, FALSE);
}

static void
on_ask_done (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(JsonArray) args G_GNUC_UNUSED = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source),
                                                                                  result, NULL, NULL);
}

static void
on_event (SocketIOSocket *socket,
          const char     *name,
          JsonArray      *args,
          GPtrArray      *attachments,
          SocketIOAck    *ack,
          gpointer        user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  if (strcmp (name, "join") == 0)
    {
      socket_io_socket_join (socket, arg_string (args, 0));
      test_recorder_add (f->lb.rec, "joined %s", arg_string (args, 0));
    }
  else if (strcmp (name, "set-data") == 0)
    {
      socket_io_socket_set_data (socket, json_array_get_element (args, 0));
      test_recorder_add (f->lb.rec, "data-set");
    }
  else if (strcmp (name, "direct") == 0)
    g_assert_true (socket_io_socket_emit (socket, "direct-back", args, attachments, &error));
  else if (strcmp (name, "ask") == 0)
    socket_io_socket_emit_with_ack (socket, "question", args, attachments, 0, NULL, on_ask_done, f);
  else if (strcmp (name, "bye") == 0)
    socket_io_socket_disconnect (socket, FALSE);
  g_assert_no_error (error);
}

static void
on_disconnect (SocketIOSocket *socket,
               const char     *reason,
               gpointer        user_data)
{
  Fixture *f = user_data;

  test_recorder_add (f->lb.rec, "left %s %s", socket_io_socket_get_id (socket), reason);
}

/* Besides the fixture's records: "state <nsp> <sid> recovered=<0|1>
 * rooms=<other rooms> data=<json>" when a socket connects, "left <sid>
 * <reason>" when it disconnects. */
static void
on_connection (SioLoopback    *lb,
               SocketIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;
  g_autoptr(JsonNode) data = socket_io_socket_dup_data (socket);
  g_autofree char *data_json = json_of_node (data);
  g_autofree char *rooms = other_rooms (socket);

  test_recorder_add (f->lb.rec, "state %s %s recovered=%d rooms=%s data=%s",
                     socket_io_namespace_get_name (socket_io_socket_get_namespace (socket)),
                     socket_io_socket_get_id (socket),
                     socket_io_socket_get_recovered (socket), rooms, data_json);
  g_signal_connect (socket, "event", G_CALLBACK (on_event), f);
  g_signal_connect (socket, "disconnect", G_CALLBACK (on_disconnect), f);
}

static gboolean
deny_middleware (SocketIONamespace  *nsp,
                 SocketIOSocket     *socket,
                 JsonNode          **error_data,
                 gpointer            user_data,
                 GError            **error)
{
  JsonNode *auth = socket_io_socket_get_auth (socket);

  if (auth != NULL && JSON_NODE_HOLDS_OBJECT (auth) &&
      json_object_has_member (json_node_get_object (auth), "token"))
    return TRUE;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "no token");
  return FALSE;
}

/* Holds every CONNECT to /async until the test answers it. */
static void
hold_middleware (SocketIONamespace      *nsp,
                 SocketIOSocket         *socket,
                 SocketIOMiddlewareCall *call,
                 gpointer                user_data)
{
  Fixture *f = user_data;

  g_mutex_lock (&f->lock);
  g_clear_object (&f->held);
  f->held = g_object_ref (call);
  g_mutex_unlock (&f->lock);
}

static SocketIOMiddlewareCall *
wait_held (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + TEST_TIMEOUT_MS * G_GINT64_CONSTANT (1000);
  SocketIOMiddlewareCall *call = NULL;

  while (call == NULL && g_get_monotonic_time () < deadline)
    {
      g_mutex_lock (&f->lock);
      call = g_steal_pointer (&f->held);
      g_mutex_unlock (&f->lock);
      if (call == NULL)
        g_usleep (2000);
    }
  return call;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const Config *config = data;
  const char *names[] = { "/", "/private", "/async" };

  g_mutex_init (&f->lock);
  sio_loopback_init (&f->lb,
                     "connection-state-recovery", config->recovery,
                     "max-disconnection-duration", config->max_disconnection,
                     "max-recovery-packets", config->max_packets,
                     "max-recovery-sessions", config->max_sessions,
                     "max-recovery-bytes", config->max_bytes,
                     "skip-middlewares", !config->run_middlewares,
                     NULL);
  if (config->send_high_water > 0)
    g_object_set (f->lb.engine, "send-queue-high-water", config->send_high_water,
                  "backpressure-policy", ENGINE_IO_BACKPRESSURE_DROP_NEWEST, NULL);
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(SocketIONamespace) nsp = sio_loopback_of (&f->lb, names[i]);

      if (i == 1)
        socket_io_namespace_use (nsp, deny_middleware, NULL, NULL);
      if (i == 2)
        socket_io_namespace_use_async (nsp, hold_middleware, f, NULL);
    }
  sio_loopback_listen (&f->lb);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  sio_loopback_clear (&f->lb);
  g_clear_object (&f->held);
  g_mutex_clear (&f->lock);
  test_log_check ();
}

/* An EVENT "2[...]" for "/": its arguments as JSON, and its last argument
 * if it is a string (the offset). */
static gboolean
parse_event (const char  *text,
             char       **offset)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonArray *array;
  const char *last;

  *offset = NULL;
  if (text == NULL || text[0] != '2' || !json_parser_load_from_data (parser, text + 1, -1, NULL) ||
      !JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser)))
    return FALSE;
  array = json_node_get_array (json_parser_get_root (parser));
  last = arg_string (array, json_array_get_length (array) - 1);
  *offset = g_strdup (last);
  return TRUE;
}

/* Expects the EVENT `2["<name>",<args>,"<offset>"]` and returns its offset. */
static char *
expect_event_with_offset (TestWs     *ws,
                          const char *name_and_args)
{
  g_autofree char *got = sio_next (ws, TEST_TIMEOUT_MS);
  g_autofree char *offset = NULL;
  g_autofree char *expected = NULL;

  if (!parse_event (got, &offset) || offset == NULL)
    {
      g_test_fail_printf ("expected an event with an offset, got “%s”", got ? got : "(nothing)");
      return NULL;
    }
  expected = g_strdup_printf ("2[%s,\"%s\"]", name_and_args, offset);
  if (strcmp (got, expected) != 0)
    {
      g_test_fail_printf ("expected “%s”, got “%s”", expected, got);
      return NULL;
    }
  return g_steal_pointer (&offset);
}

static void
emit_to (Fixture    *f,
         const char *room,
         const char *name,
         const char *arg)
{
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/");
  g_autoptr(SocketIOBroadcastOperator) op = room != NULL
    ? socket_io_namespace_to (nsp, room) : socket_io_namespace_broadcast (nsp);
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;

  json_array_add_string_element (args, arg);
  g_assert_true (socket_io_broadcast_operator_emit (op, name, args, NULL, NULL, &error));
  g_assert_no_error (error);
}

/* A client connected to "/" that joined room "r", set its data to
 * {"n":7} and got one broadcast (so it has an offset). */
typedef struct
{
  TestWs *ws;
  char   *sid;
  char   *pid;
  char   *offset;
} Client;

static void
client_clear (Client *c)
{
  g_clear_pointer (&c->ws, test_ws_free);
  g_clear_pointer (&c->sid, g_free);
  g_clear_pointer (&c->pid, g_free);
  g_clear_pointer (&c->offset, g_free);
}

static gboolean
client_setup (Fixture *f,
              Client  *c,
              const char *room)
{
  g_autofree char *expected = NULL;
  g_autofree char *join = NULL;

  c->ws = sio_loopback_open (&f->lb);
  test_require_val (c->ws != NULL, FALSE);
  test_require_val (sio_connect (c->ws, "/", NULL, &c->sid, &c->pid), FALSE);
  test_require_val (c->pid != NULL && c->pid[0] != '\0' && strcmp (c->pid, c->sid) != 0, FALSE);
  expected = g_strdup_printf ("state / %s recovered=0 rooms=- data=null", c->sid);
  test_require_val (test_recorder_wait (f->lb.rec, expected, TEST_TIMEOUT_MS), FALSE);
  join = g_strdup_printf ("2[\"join\",\"%s\"]", room);
  test_require_val (sio_send (c->ws, join), FALSE);
  g_free (expected);
  expected = g_strdup_printf ("joined %s", room);
  test_require_val (test_recorder_wait_count (f->lb.rec, expected, 1, TEST_TIMEOUT_MS), FALSE);
  test_recorder_clear (f->lb.rec);
  test_require_val (sio_send (c->ws, "2[\"set-data\",{\"n\":7}]"), FALSE);
  test_require_val (test_recorder_wait (f->lb.rec, "data-set", TEST_TIMEOUT_MS), FALSE);
  emit_to (f, room, "hello", "h");
  c->offset = expect_event_with_offset (c->ws, "\"hello\",\"h\"");
  return c->offset != NULL;
}

/* Drops @c's TCP connection and waits until the server saw it. */
static gboolean
client_drop (Fixture *f,
             Client  *c)
{
  g_autofree char *prefix = g_strdup_printf ("left %s transport", c->sid);

  test_ws_drop (c->ws, TRUE);
  g_clear_pointer (&c->ws, test_ws_free);
  return test_recorder_wait_count (f->lb.rec, prefix, 1, TEST_TIMEOUT_MS);
}

static char *
recovery_auth (Client *c)
{
  return g_strdup_printf ("{\"pid\":\"%s\",\"offset\":\"%s\"}", c->pid, c->offset);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* The CONNECT reply carries a pid; EVENTs without ack id and not
 * volatile carry an offset, increasing; acks and volatile ones do not. */
static void
test_offsets (Fixture       *f,
              gconstpointer  data)
{
  Client c = { 0 };
  g_autofree char *o1 = NULL;
  g_autofree char *o2 = NULL;
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/");

  test_require (client_setup (f, &c, "r"));

  /* A direct emit goes through the adapter: an offset. */
  test_require (sio_send (c.ws, "2[\"direct\",1]"));
  o1 = expect_event_with_offset (c.ws, "\"direct-back\",1");
  test_require (o1 != NULL);
  emit_to (f, NULL, "all", "a");
  o2 = expect_event_with_offset (c.ws, "\"all\",\"a\"");
  test_require (o2 != NULL);
  g_assert_cmpuint (g_ascii_strtoull (c.offset, NULL, 10), <, g_ascii_strtoull (o1, NULL, 10));
  g_assert_cmpuint (g_ascii_strtoull (o1, NULL, 10), <, g_ascii_strtoull (o2, NULL, 10));

  /* An emit with ack: no offset (as the reference: not kept). */
  test_require (sio_send (c.ws, "2[\"ask\",2]"));
  expect_next (c.ws, "20[\"question\",2]");

  /* A volatile broadcast: no offset. */
  {
    g_autoptr(SocketIOBroadcastOperator) op = socket_io_namespace_broadcast (nsp);
    g_autoptr(JsonArray) args = json_array_new ();

    json_array_add_int_element (args, 3);
    g_assert_true (socket_io_broadcast_operator_emit (socket_io_broadcast_operator_volatile (op),
                                                      "v", args, NULL, NULL, NULL));
  }
  expect_next (c.ws, "2[\"v\",3]");
  client_clear (&c);
}

/* Without the option: no pid, no offsets, and a pid in the auth does
 * nothing. */
static void
test_off (Fixture       *f,
          gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *expected = NULL;

  test_require (ws != NULL);
  test_require (sio_connect (ws, "/", "{\"pid\":\"x\",\"offset\":\"1\"}", &sid, &pid));
  g_assert_null (pid);
  expected = g_strdup_printf ("state / %s recovered=0 rooms=- data=null", sid);
  sio_loopback_expect (&f->lb, "%s", expected);
  emit_to (f, NULL, "all", "a");
  expect_next (ws, "2[\"all\",\"a\"]");
  test_require (sio_send (ws, "2[\"direct\",1]"));
  expect_next (ws, "2[\"direct-back\",1]");
}

/* A client whose transport dropped comes back with its pid and offset:
 * same id, rooms and data, and exactly the events it missed (its rooms',
 * the namespace's, its own), in order, after the CONNECT reply. */
static void
test_recover (Fixture       *f,
              gconstpointer  data)
{
  Client c = { 0 };
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *auth = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *m1 = NULL;
  g_autofree char *m2 = NULL;
  g_autofree char *m3 = NULL;
  g_autofree char *live = NULL;

  test_require (client_setup (f, &c, "r"));
  test_require (client_drop (f, &c));

  /* Missed: to its room, to everyone, to its own id; not: another room. */
  emit_to (f, "r", "room", "1");
  emit_to (f, "other", "elsewhere", "2");
  emit_to (f, NULL, "all", "3");
  emit_to (f, c.sid, "own", "4");

  ws = sio_loopback_open (&f->lb);
  test_require (ws != NULL);
  auth = recovery_auth (&c);
  test_require (sio_connect (ws, "/", auth, &sid, &pid));
  g_assert_cmpstr (sid, ==, c.sid);
  g_assert_cmpstr (pid, ==, c.pid);
  m1 = expect_event_with_offset (ws, "\"room\",\"1\"");
  m2 = expect_event_with_offset (ws, "\"all\",\"3\"");
  m3 = expect_event_with_offset (ws, "\"own\",\"4\"");
  test_require (m1 != NULL && m2 != NULL && m3 != NULL);
  expected = g_strdup_printf ("state / %s recovered=1 rooms=r data={\"n\":7}", c.sid);
  sio_loopback_expect (&f->lb, "%s", expected);

  /* Back in its room for what comes next. */
  emit_to (f, "r", "room", "5");
  live = expect_event_with_offset (ws, "\"room\",\"5\"");
  test_require (live != NULL);

  /* A pid recovers once: the same auth again (another session) gets a new
   * socket. */
  {
    g_autoptr(TestWs) again = sio_loopback_open (&f->lb);
    g_autofree char *sid2 = NULL;
    g_autofree char *pid2 = NULL;

    test_require (again != NULL);
    test_require (sio_connect (again, "/", auth, &sid2, &pid2));
    g_assert_cmpstr (sid2, !=, c.sid);
    g_assert_cmpstr (pid2, !=, c.pid);
  }
  client_clear (&c);
}

typedef struct
{
  Fixture *f;
  guint    n;
} Streamer;

static gpointer
stream_thread (gpointer data)
{
  Streamer *st = data;

  for (guint i = 0; i < st->n; i++)
    {
      g_autofree char *arg = g_strdup_printf ("%u", i);

      emit_to (st->f, "r", "seq", arg);
      if (i % 16 == 0)
        g_thread_yield ();
    }
  return NULL;
}

/* Broadcasts keep coming from another thread while the client recovers:
 * it sees every one exactly once, in order (missed ones, then live ones,
 * with no gap or duplicate in between). */
static void
test_recover_while_broadcasting (Fixture       *f,
                                 gconstpointer  data)
{
  Client c = { 0 };
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *auth = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  Streamer st = { f, 3000 };
  GThread *thread;
  guint next = 0;

  test_require (client_setup (f, &c, "r"));
  test_require (client_drop (f, &c));
  thread = g_thread_new ("streamer", stream_thread, &st);
  g_usleep (1000);
  ws = sio_loopback_open (&f->lb);
  if (ws != NULL)
    {
      auth = recovery_auth (&c);
      if (sio_connect (ws, "/", auth, &sid, &pid))
        {
          g_assert_cmpstr (sid, ==, c.sid);
          while (next < st.n)
            {
              g_autofree char *got = sio_next (ws, TEST_TIMEOUT_MS);
              g_autofree char *offset = NULL;
              g_autofree char *expected = NULL;

              if (!parse_event (got, &offset))
                {
                  g_test_fail_printf ("after seq %u: “%s”", next, got ? got : "(nothing)");
                  break;
                }
              expected = g_strdup_printf ("2[\"seq\",\"%u\",\"%s\"]", next, offset);
              if (strcmp (got, expected) != 0)
                {
                  g_test_fail_printf ("expected “%s”, got “%s”", expected, got);
                  break;
                }
              next++;
            }
        }
    }
  g_thread_join (thread);
  client_clear (&c);
}

/* Recovered sockets skip the middlewares (skip-middlewares, default);
 * with skip-middlewares FALSE they run: no token, refused. */
static void
test_skip_middlewares (Fixture       *f,
                       gconstpointer  data)
{
  const Config *config = data;
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) ws2 = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *offset = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  g_autofree char *auth = NULL;
  g_autofree char *prefix = NULL;
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/private");
  g_autoptr(JsonArray) args = json_array_new ();

  test_require (ws != NULL);
  test_require (sio_send (ws, "0/private,{\"token\":1}"));
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  test_require (reply != NULL && g_str_has_prefix (reply, "0/private,"));
  test_require (json_parser_load_from_data (parser, reply + strlen ("0/private,"), -1, NULL));
  object = json_node_get_object (json_parser_get_root (parser));
  sid = g_strdup (json_object_get_string_member (object, "sid"));
  auth = g_strdup_printf ("{\"pid\":\"%s\",\"offset\":\"%%s\"}", json_object_get_string_member (object, "pid"));
  json_array_add_int_element (args, 1);
  g_assert_true (socket_io_namespace_emit (nsp, "x", args, NULL, NULL));
  g_free (reply);
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  test_require (reply != NULL && g_str_has_prefix (reply, "2/private,[\"x\",1,\""));
  offset = g_strndup (reply + strlen ("2/private,[\"x\",1,\""),
                      strlen (reply) - strlen ("2/private,[\"x\",1,\"") - 2);
  prefix = g_strdup_printf ("left %s transport", sid);
  test_ws_drop (ws, TRUE);
  g_clear_pointer (&ws, test_ws_free);
  test_require (test_recorder_wait_count (f->lb.rec, prefix, 1, TEST_TIMEOUT_MS));

  /* No token: the middleware would refuse, but the socket is recovered. */
  ws2 = sio_loopback_open (&f->lb);
  test_require (ws2 != NULL);
  {
    g_autofree char *full_auth = g_strdup_printf (auth, offset);
    g_autofree char *packet = g_strdup_printf ("0/private,%s", full_auth);
    g_autofree char *got = NULL;
    g_autofree char *want = NULL;

    test_require (sio_send (ws2, packet));
    got = sio_next (ws2, TEST_TIMEOUT_MS);
    if (config->run_middlewares)
      want = g_strdup ("4/private,{\"message\":\"no token\"}");
    else
      want = g_strdup_printf ("0/private,{\"sid\":\"%s\",\"pid\":", sid);
    if (got == NULL || !g_str_has_prefix (got, want))
      g_test_fail_printf ("expected “%s…”, got “%s”", want, got ? got : "(nothing)");
  }
  if (config->run_middlewares)
    {
      /* The refused CONNECT left the session recoverable: with a token,
       * the same socket, and what was broadcast meanwhile. */
      g_autoptr(JsonArray) more = json_array_new ();
      g_autofree char *token_auth = g_strdup_printf (auth, offset);
      g_autofree char *with_token = NULL;
      g_autofree char *packet = NULL;
      g_autofree char *got = NULL;
      g_autofree char *want = NULL;

      json_array_add_int_element (more, 2);
      g_assert_true (socket_io_namespace_emit (nsp, "y", more, NULL, NULL));
      with_token = g_strdup_printf ("{\"token\":1,%s", token_auth + 1);
      packet = g_strdup_printf ("0/private,%s", with_token);
      test_require (sio_send (ws2, packet));
      got = sio_next (ws2, TEST_TIMEOUT_MS);
      want = g_strdup_printf ("0/private,{\"sid\":\"%s\",\"pid\":", sid);
      if (got == NULL || !g_str_has_prefix (got, want))
        g_test_fail_printf ("expected “%s…”, got “%s”", want, got ? got : "(nothing)");
      g_free (got);
      got = sio_next (ws2, TEST_TIMEOUT_MS);
      g_assert_true (got != NULL && g_str_has_prefix (got, "2/private,[\"y\",2,\""));
    }
}

/* skip-middlewares FALSE: what is broadcast while an asynchronous
 * middleware holds the recovering CONNECT is sent too, after the events
 * missed before it. */
static void
test_broadcast_during_middleware (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) ws2 = NULL;
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/async");
  g_autoptr(SocketIOMiddlewareCall) call = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *reply = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *offset = NULL;
  g_autofree char *packet = NULL;
  g_autofree char *prefix = NULL;
  g_autofree char *want = NULL;
  JsonObject *object;
  const char *head = "2/async,[\"n\",\"";

  test_require (ws != NULL);
  test_require (sio_send (ws, "0/async,"));
  call = wait_held (f);
  test_require (call != NULL);
  socket_io_middleware_call_next (call);
  g_clear_object (&call);
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  test_require (reply != NULL && g_str_has_prefix (reply, "0/async,"));
  test_require (json_parser_load_from_data (parser, reply + strlen ("0/async,"), -1, NULL));
  object = json_node_get_object (json_parser_get_root (parser));
  sid = g_strdup (json_object_get_string_member (object, "sid"));
  pid = g_strdup (json_object_get_string_member (object, "pid"));
  {
    g_autoptr(JsonArray) args = json_array_new ();

    json_array_add_string_element (args, "0");
    g_assert_true (socket_io_namespace_emit (nsp, "n", args, NULL, NULL));
  }
  g_free (reply);
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  test_require (reply != NULL && g_str_has_prefix (reply, "2/async,[\"n\",\"0\",\""));
  offset = g_strndup (reply + strlen ("2/async,[\"n\",\"0\",\""),
                      strlen (reply) - strlen ("2/async,[\"n\",\"0\",\"") - 2);
  prefix = g_strdup_printf ("left %s transport", sid);
  test_ws_drop (ws, TRUE);
  g_clear_pointer (&ws, test_ws_free);
  test_require (test_recorder_wait_count (f->lb.rec, prefix, 1, TEST_TIMEOUT_MS));

  /* Missed before the CONNECT, then while its middleware runs. */
  {
    g_autoptr(JsonArray) args = json_array_new ();

    json_array_add_string_element (args, "1");
    g_assert_true (socket_io_namespace_emit (nsp, "n", args, NULL, NULL));
  }
  ws2 = sio_loopback_open (&f->lb);
  test_require (ws2 != NULL);
  packet = g_strdup_printf ("0/async,{\"pid\":\"%s\",\"offset\":\"%s\"}", pid, offset);
  test_require (sio_send (ws2, packet));
  call = wait_held (f);
  test_require (call != NULL);
  {
    g_autoptr(JsonArray) args = json_array_new ();

    json_array_add_string_element (args, "2");
    g_assert_true (socket_io_namespace_emit (nsp, "n", args, NULL, NULL));
  }
  socket_io_middleware_call_next (call);
  g_free (reply);
  reply = sio_next (ws2, TEST_TIMEOUT_MS);
  want = g_strdup_printf ("0/async,{\"sid\":\"%s\"", sid);
  test_require (reply != NULL && g_str_has_prefix (reply, want));
  for (guint i = 1; i <= 2; i++)
    {
      g_autofree char *expected = g_strdup_printf ("%s%u\",\"", head, i);

      g_free (reply);
      reply = sio_next (ws2, TEST_TIMEOUT_MS);
      if (reply == NULL || !g_str_has_prefix (reply, expected))
        g_test_fail_printf ("expected “%s…”, got “%s”", expected, reply ? reply : "(nothing)");
    }
}

/* A server-side disconnect (and a client-side one) persists nothing: a
 * new socket. */
static void
test_not_after_namespace_disconnect (Fixture       *f,
                                     gconstpointer  data)
{
  for (guint round = 0; round < 2; round++)
    {
      Client c = { 0 };
      g_autofree char *auth = NULL;
      g_autofree char *sid = NULL;
      g_autofree char *pid = NULL;
      g_autofree char *prefix = NULL;
      g_autofree char *expected = NULL;

      test_require (client_setup (f, &c, "r"));
      prefix = g_strdup_printf ("left %s %s namespace disconnect", c.sid,
                                round == 0 ? "server" : "client");
      test_require (sio_send (c.ws, round == 0 ? "2[\"bye\"]" : "1"));
      test_require (test_recorder_wait (f->lb.rec, prefix, TEST_TIMEOUT_MS));
      if (round == 0)
        expect_next (c.ws, "1");
      emit_to (f, "r", "room", "1");
      /* Reconnect on the same session: a new socket. */
      auth = recovery_auth (&c);
      test_require (sio_connect (c.ws, "/", auth, &sid, &pid));
      g_assert_cmpstr (sid, !=, c.sid);
      expected = g_strdup_printf ("state / %s recovered=0 rooms=- data=null", sid);
      sio_loopback_expect (&f->lb, "%s", expected);
      client_clear (&c);
      test_recorder_clear (f->lb.rec);
    }
}

/* A session expires after max-disconnection-duration. */
static void
test_expiry (Fixture       *f,
             gconstpointer  data)
{
  Client c = { 0 };
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *auth = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *expected = NULL;

  test_require (client_setup (f, &c, "r"));
  test_require (client_drop (f, &c));
  /* A lower bound the protocol sets: never scaled. */
  g_usleep ((short_config.max_disconnection + 200) * 1000);
  ws = sio_loopback_open (&f->lb);
  test_require (ws != NULL);
  auth = recovery_auth (&c);
  test_require (sio_connect (ws, "/", auth, &sid, &pid));
  g_assert_cmpstr (sid, !=, c.sid);
  expected = g_strdup_printf ("state / %s recovered=0 rooms=- data=null", sid);
  sio_loopback_expect (&f->lb, "%s", expected);
  client_clear (&c);
}

/* max-recovery-packets 3: two missed events are recovered (the client's
 * offset is still kept); with four, its offset was dropped: a new socket,
 * never a recovery with holes. Garbage pids and offsets: new sockets. */
static void
test_packet_bound (Fixture       *f,
                   gconstpointer  data)
{
  for (guint missed = 2; missed <= 4; missed += 2)
    {
      Client c = { 0 };
      g_autoptr(TestWs) ws = NULL;
      g_autofree char *auth = NULL;
      g_autofree char *sid = NULL;
      g_autofree char *pid = NULL;

      test_require (client_setup (f, &c, "r"));
      test_require (client_drop (f, &c));
      for (guint i = 0; i < missed; i++)
        {
          g_autofree char *arg = g_strdup_printf ("%u", i);

          emit_to (f, "r", "room", arg);
        }
      ws = sio_loopback_open (&f->lb);
      test_require (ws != NULL);
      auth = recovery_auth (&c);
      test_require (sio_connect (ws, "/", auth, &sid, &pid));
      if (missed == 2)
        {
          g_autofree char *m0 = NULL;
          g_autofree char *m1 = NULL;

          g_assert_cmpstr (sid, ==, c.sid);
          m0 = expect_event_with_offset (ws, "\"room\",\"0\"");
          m1 = expect_event_with_offset (ws, "\"room\",\"1\"");
        }
      else
        g_assert_cmpstr (sid, !=, c.sid);
      client_clear (&c);
      test_recorder_clear (f->lb.rec);
    }

  {
    const char *auths[] = {
      "{\"pid\":\"nope\",\"offset\":\"1\"}",
      "{\"pid\":1,\"offset\":\"1\"}",
      "{\"pid\":\"nope\",\"offset\":\"99999999999999999999999\"}",
      "{\"pid\":\"nope\",\"offset\":\"-1\"}",
    };

    for (guint i = 0; i < G_N_ELEMENTS (auths); i++)
      {
        g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
        g_autofree char *sid = NULL;
        g_autofree char *pid = NULL;

        test_require (ws != NULL);
        test_require (sio_connect (ws, "/", auths[i], &sid, &pid));
        g_assert_nonnull (pid);
      }
  }
}

/* max-recovery-bytes 16 KiB: a 1 KB missed event is recovered; after
 * a 20 KB one the client's offset was dropped: a new socket. */
static void
test_byte_bound (Fixture       *f,
                 gconstpointer  data)
{
  for (guint round = 0; round < 2; round++)
    {
      Client c = { 0 };
      g_autoptr(TestWs) ws = NULL;
      g_autofree char *auth = NULL;
      g_autofree char *sid = NULL;
      g_autofree char *pid = NULL;
      g_autofree char *big = g_strnfill (round == 0 ? 1000 : 20000, 'x');

      test_require (client_setup (f, &c, "r"));
      test_require (client_drop (f, &c));
      emit_to (f, "r", "big", big);
      ws = sio_loopback_open (&f->lb);
      test_require (ws != NULL);
      auth = recovery_auth (&c);
      test_require (sio_connect (ws, "/", auth, &sid, &pid));
      if (round == 0)
        {
          g_autofree char *expected = g_strdup_printf ("\"big\",\"%s\"", big);
          g_autofree char *m = NULL;

          g_assert_cmpstr (sid, ==, c.sid);
          m = expect_event_with_offset (ws, expected);
        }
      else
        g_assert_cmpstr (sid, !=, c.sid);
      client_clear (&c);
      test_recorder_clear (f->lb.rec);
    }
}

/* More missed events than the engine's send queue takes at once: the
 * server never recovers with holes; it ends the session after what it
 * could queue, persists the socket again, and the client, recovering from
 * its last offset each time, gets every event once, in order. */
static void
test_missed_over_send_queue (Fixture       *f,
                             gconstpointer  data)
{
  Client c = { 0 };
  g_autofree char *big = g_strnfill (2000, 'y');
  guint next = 0;
  guint rounds = 0;

  test_require (client_setup (f, &c, "r"));
  test_require (client_drop (f, &c));
  for (guint i = 0; i < 12; i++)
    {
      g_autofree char *arg = g_strdup_printf ("%u-%s", i, big);

      emit_to (f, "r", "big", arg);
    }
  while (next < 12 && rounds < 12)
    {
      g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
      g_autofree char *auth = NULL;
      g_autofree char *sid = NULL;
      g_autofree char *pid = NULL;
      g_autofree char *prefix = NULL;

      rounds++;
      test_require (ws != NULL);
      auth = recovery_auth (&c);
      test_require (sio_connect (ws, "/", auth, &sid, &pid));
      test_require (g_strcmp0 (sid, c.sid) == 0);
      for (;;)
        {
          /* The server's close comes after its close handshake times out
           * (about 3 s: this client does not answer close frames). */
          g_autofree char *got = sio_next (ws, 2 * TEST_TIMEOUT_MS);
          g_autofree char *offset = NULL;
          g_autofree char *expected = NULL;

          if (got == NULL)
            break;   /* closed by the server */
          test_require (parse_event (got, &offset) && offset != NULL);
          expected = g_strdup_printf ("2[\"big\",\"%u-%s\",\"%s\"]", next, big, offset);
          test_require (strcmp (got, expected) == 0);
          g_free (c.offset);
          c.offset = g_steal_pointer (&offset);
          next++;
          if (next == 12)
            break;
        }
      prefix = g_strdup_printf ("left %s", c.sid);
      if (next < 12)
        test_require (test_recorder_wait_count (f->lb.rec, prefix, rounds + 1, TEST_TIMEOUT_MS));
    }
  g_assert_cmpuint (next, ==, 12);
  g_assert_cmpuint (rounds, >, 1);
  client_clear (&c);
}

/* max-recovery-sessions 1: a second persisted session drops the first. */
static void
test_session_bound (Fixture       *f,
                    gconstpointer  data)
{
  Client a = { 0 }, b = { 0 };
  g_autoptr(TestWs) wa = NULL;
  g_autoptr(TestWs) wb = NULL;
  g_autofree char *auth_a = NULL;
  g_autofree char *auth_b = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *sid_b = NULL;
  g_autofree char *pid_b = NULL;

  test_require (client_setup (f, &a, "r"));
  test_require (client_setup (f, &b, "s"));
  test_require (client_drop (f, &a));
  test_require (client_drop (f, &b));
  wa = sio_loopback_open (&f->lb);
  test_require (wa != NULL);
  auth_a = recovery_auth (&a);
  test_require (sio_connect (wa, "/", auth_a, &sid, &pid));
  g_assert_cmpstr (sid, !=, a.sid);
  wb = sio_loopback_open (&f->lb);
  test_require (wb != NULL);
  auth_b = recovery_auth (&b);
  test_require (sio_connect (wb, "/", auth_b, &sid_b, &pid_b));
  g_assert_cmpstr (sid_b, ==, b.sid);
  client_clear (&a);
  client_clear (&b);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, config, func) \
  g_test_add ("/sio-recovery/" path, Fixture, &config, fixture_setup, func, fixture_teardown)
  ADD ("offsets", default_config, test_offsets);
  ADD ("off", off_config, test_off);
  ADD ("recover", default_config, test_recover);
  ADD ("recover-while-broadcasting", default_config, test_recover_while_broadcasting);
  ADD ("skip-middlewares", default_config, test_skip_middlewares);
  ADD ("run-middlewares", middlewares_config, test_skip_middlewares);
  ADD ("broadcast-during-middleware", middlewares_config, test_broadcast_during_middleware);
  ADD ("not-after-namespace-disconnect", default_config, test_not_after_namespace_disconnect);
  ADD ("expiry", short_config, test_expiry);
  ADD ("packet-bound", few_packets_config, test_packet_bound);
  ADD ("session-bound", one_session_config, test_session_bound);
  ADD ("byte-bound", few_bytes_config, test_byte_bound);
  ADD ("missed-over-send-queue", small_queue_config, test_missed_over_send_queue);
#undef ADD
  return g_test_run ();
}
