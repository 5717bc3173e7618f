/* test-sio-emitter.c: SocketIORedisEmitter against a real redis-server and
 * a real SocketIOServer with SocketIORedisAdapter
 *
 * Starts Debian's redis-server on a loopback port picked by binding a
 * socket to port 0 and closing it (redis cannot bind port 0), without
 * persistence; one SocketIOServer in this process with a Redis adapter on
 *  "/" and "/chat" (SioLoopback, sioutil.h), driven by raw Socket.IO clients. The
 * emitter (no clients of its own) publishes; the clients must receive.
 * Skipped only when redis-server is not on PATH. Run with
 * ENGINE_IO_TEST_LOOP_THREADS=0 and =2.
 *
 * The emitter against Node nodes (npm socket.io with
 * @socket.io/redis-adapter), and npm @socket.io/redis-emitter against
 * ours: tests/socketio/interop-sio-redis-emitter.mjs.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "sioutil.h"
#include "redisutil.h"
#include "socketio/socketio.h"
#include "socketio/socketio-redis.h"
#include "socketio-packet-private.h"

typedef struct
{
  GPid                  redis;   /* 0: not running */
  guint                 redis_port;
  char                 *url;
  SioLoopback           lb;
  SocketIONamespace    *nsp[2];      /* "/", "/chat" */
  SocketIOAdapter      *adapter[2];
  SocketIORedisEmitter *emitter;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const char *names[] = { "/", "/chat" };
  g_autoptr(GError) error = NULL;

  f->redis_port = 0;
  f->redis = redis_start (&f->redis_port);
  f->url = g_strdup_printf ("redis://127.0.0.1:%u", f->redis_port);
  sio_loopback_init (&f->lb, NULL);
  for (guint i = 0; i < 2; i++)
    {
      f->nsp[i] = sio_loopback_of (&f->lb, names[i]);
      f->adapter[i] = socket_io_redis_adapter_new (f->nsp[i], f->url, NULL, &error);
      g_assert_no_error (error);
      socket_io_namespace_set_adapter (f->nsp[i], f->adapter[i]);
    }
  sio_loopback_listen (&f->lb);
  for (guint i = 0; i < 2; i++)
    g_assert_true (redis_wait_connected (f->adapter[i], TRUE, 10000));
  f->emitter = socket_io_redis_emitter_new (f->url, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (socket_io_redis_emitter_get_namespace (f->emitter), ==, "/");
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->emitter);
  engine_io_server_close (f->lb.engine);
  for (guint i = 0; i < 2; i++)
    {
      g_clear_object (&f->adapter[i]);
      g_clear_object (&f->nsp[i]);
    }
  sio_loopback_clear (&f->lb);
  redis_stop (f->redis);
  f->redis = 0;
  g_free (f->url);
  test_log_check ();
}

static void
emit_text (SocketIORedisEmitter *emitter,
           const char           *name,
           const char           *tag)
{
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;

  json_array_add_string_element (args, tag);
  g_assert_true (socket_io_redis_emitter_emit (emitter, name, args, NULL, &error));
  g_assert_no_error (error);
}

/* Polls until @n sockets of @adapter are in @room. */
static gboolean
wait_room_size (SocketIOAdapter *adapter,
                const char      *room,
                guint            n)
{
  const char *rooms[] = { room, NULL };
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;

  for (;;)
    {
      g_auto(GStrv) ids = socket_io_adapter_sockets (adapter, rooms, NULL);

      if (g_strv_length (ids) == n)
        return TRUE;
      if (g_get_monotonic_time () > end)
        {
          g_test_fail_printf ("%u sockets in %s, not %u", g_strv_length (ids), room, n);
          return FALSE;
        }
      g_usleep (10 * 1000);
    }
}

/* emit() to the whole namespace, text then binary: every client of the
 * namespace gets it once, the clients of another namespace nothing. */
static void
test_emit (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(TestWs) b = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(TestWs) c = sio_loopback_client (&f->lb, "/chat", NULL);
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(JsonObject) object = json_object_new ();
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_nonnull (c);
  emit_text (f->emitter, "news", "hello");
  expect_next (a, "2[\"news\",\"hello\"]");
  expect_next (b, "2[\"news\",\"hello\"]");

  /* [1, {"x": <bin>}, <bin>] */
  json_array_add_int_element (args, 1);
  json_object_set_member (object, "x", socket_io_placeholder_new (0));
  json_array_add_object_element (args, json_object_ref (object));
  json_array_add_element (args, socket_io_placeholder_new (1));
  g_ptr_array_add (attachments, g_bytes_new_static ("\x01\x02\xff", 3));
  g_ptr_array_add (attachments, g_bytes_new_static ("", 0));
  g_assert_true (socket_io_redis_emitter_emit (f->emitter, "bin", args, attachments, &error));
  g_assert_no_error (error);
  for (TestWs **ws = (TestWs *[]) { a, b, NULL }; *ws != NULL; ws++)
    {
      expect_next (*ws, "52-[\"bin\",1,{\"x\":{\"_placeholder\":true,\"num\":0}},"
                        "{\"_placeholder\":true,\"num\":1}]");
      expect_next (*ws, "<bin:0102ff>");
      expect_next (*ws, "<bin:>");
    }
  sio_expect_quiet (a);
  sio_expect_quiet (b);
  sio_expect_quiet (c);
}

/* of("/chat") reaches that namespace only; of("chat") is the same. */
static void
test_of (Fixture       *f,
         gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(TestWs) c = sio_loopback_client (&f->lb, "/chat", NULL);
  g_autoptr(SocketIORedisEmitter) chat = socket_io_redis_emitter_of (f->emitter, "chat");

  g_assert_nonnull (a);
  g_assert_nonnull (c);
  g_assert_cmpstr (socket_io_redis_emitter_get_namespace (chat), ==, "/chat");
  emit_text (chat, "news", "to-chat");
  expect_next (c, "2/chat,[\"news\",\"to-chat\"]");
  sio_expect_quiet (a);
}

/* to/in/except: one room (the room's channel), two rooms (the namespace's
 * channel), a room less another; emitters are immutable. Then
 * socketsJoin/socketsLeave/disconnectSockets on the addressed sockets. */
static void
test_rooms (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(TestWs) b = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(TestWs) c = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(GPtrArray) sockets = NULL;
  g_autoptr(SocketIORedisEmitter) to_r = NULL;
  g_autoptr(SocketIORedisEmitter) to_rs = NULL;
  g_autoptr(SocketIORedisEmitter) to_rs_except = NULL;
  g_autoptr(SocketIORedisEmitter) all_except_r = NULL;
  g_autoptr(SocketIORedisEmitter) in_s = NULL;
  g_autoptr(SocketIORedisEmitter) to_j = NULL;
  g_autoptr(GError) error = NULL;
  TestWs *in_r = NULL, *in_s_ws = NULL, *other = NULL;
  const char *join[] = { "j", "k", NULL };
  const char *leave[] = { "k", NULL };

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_nonnull (c);
  /* Put one socket in "r", another in "s" (found by who receives). */
  sockets = socket_io_namespace_get_sockets (f->nsp[0]);
  g_assert_cmpuint (sockets->len, ==, 3);
  socket_io_socket_join (g_ptr_array_index (sockets, 0), "r");
  socket_io_socket_join (g_ptr_array_index (sockets, 1), "s");

  to_r = socket_io_redis_emitter_to (f->emitter, "r");
  emit_text (to_r, "room", "r");
  for (TestWs **ws = (TestWs *[]) { a, b, c, NULL }; *ws != NULL; ws++)
    {
      g_autofree char *got = sio_next (*ws, 1000);

      if (got != NULL)
        {
          g_assert_cmpstr (got, ==, "2[\"room\",\"r\"]");
          g_assert_null (in_r);
          in_r = *ws;
        }
    }
  g_assert_nonnull (in_r);
  in_s = socket_io_redis_emitter_in (f->emitter, "s");
  emit_text (in_s, "room", "s");
  for (TestWs **ws = (TestWs *[]) { a, b, c, NULL }; *ws != NULL; ws++)
    if (*ws != in_r)
      {
        g_autofree char *got = sio_next (*ws, 1000);

        if (got != NULL)
          {
            g_assert_cmpstr (got, ==, "2[\"room\",\"s\"]");
            in_s_ws = *ws;
          }
        else
          other = *ws;
      }
  g_assert_nonnull (in_s_ws);
  g_assert_nonnull (other);
  sio_expect_quiet (in_r);

  /* r and s: both members, once each; the emitter it came from is
   * unchanged (still r only). */
  to_rs = socket_io_redis_emitter_to (to_r, "s");
  emit_text (to_rs, "room", "r+s");
  expect_next (in_r, "2[\"room\",\"r+s\"]");
  expect_next (in_s_ws, "2[\"room\",\"r+s\"]");
  sio_expect_quiet (other);
  emit_text (to_r, "room", "r-again");
  expect_next (in_r, "2[\"room\",\"r-again\"]");
  sio_expect_quiet (in_s_ws);

  to_rs_except = socket_io_redis_emitter_except (to_rs, "s");
  emit_text (to_rs_except, "room", "r+s-s");
  expect_next (in_r, "2[\"room\",\"r+s-s\"]");
  all_except_r = socket_io_redis_emitter_except (f->emitter, "r");
  emit_text (all_except_r, "room", "all-r");
  expect_next (in_s_ws, "2[\"room\",\"all-r\"]");
  expect_next (other, "2[\"room\",\"all-r\"]");
  sio_expect_quiet (in_r);
  sio_expect_quiet (in_s_ws);

  /* Every socket but r's joins j and k; then leaves k. */
  g_assert_true (socket_io_redis_emitter_sockets_join (all_except_r, join, &error));
  g_assert_no_error (error);
  g_assert_true (wait_room_size (f->adapter[0], "j", 2));
  g_assert_true (wait_room_size (f->adapter[0], "k", 2));
  g_assert_true (socket_io_redis_emitter_sockets_leave (f->emitter, leave, &error));
  g_assert_no_error (error);
  g_assert_true (wait_room_size (f->adapter[0], "k", 0));
  to_j = socket_io_redis_emitter_to (f->emitter, "j");
  emit_text (to_j, "room", "j");
  expect_next (in_s_ws, "2[\"room\",\"j\"]");
  expect_next (other, "2[\"room\",\"j\"]");
  sio_expect_quiet (in_r);

  /* disconnectSockets in j: those two get a DISCONNECT, r's stays. */
  g_assert_true (socket_io_redis_emitter_disconnect_sockets (to_j, FALSE, &error));
  g_assert_no_error (error);
  expect_next (in_s_ws, "1");
  expect_next (other, "1");
  emit_text (f->emitter, "news", "after");
  expect_next (in_r, "2[\"news\",\"after\"]");
  sio_expect_quiet (in_s_ws);
  sio_expect_quiet (other);
}

static JsonNode *
on_side_event (SocketIORedisAdapter *adapter,
               const char           *name,
               JsonArray            *args,
               gpointer              user_data)
{
  GAsyncQueue *queue = user_data;
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
  g_autofree char *text = NULL;

  json_node_set_array (node, args);
  text = json_to_string (node, FALSE);
  g_async_queue_push (queue, g_strdup_printf ("%s:%s", name, text));
  return NULL;
}

/* serverSideEmit reaches the adapter's server-side-event, once. */
static void
test_server_side_emit (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GAsyncQueue) queue = g_async_queue_new_full (g_free);
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  g_autofree char *more = NULL;
  gulong id = g_signal_connect (f->adapter[0], "server-side-event", G_CALLBACK (on_side_event), queue);

  json_array_add_string_element (args, "hello");
  json_array_add_int_element (args, 1);
  json_array_add_string_element (args, "two");
  g_assert_true (socket_io_redis_emitter_server_side_emit (f->emitter, args, &error));
  g_assert_no_error (error);
  got = g_async_queue_timeout_pop (queue, (guint64) TEST_TIMEOUT_MS * 1000);
  g_assert_cmpstr (got, ==, "hello:[1,\"two\"]");
  more = g_async_queue_timeout_pop (queue, 300 * 1000);
  g_assert_null (more);
  g_signal_handler_disconnect (f->adapter[0], id);
}

/* Two threads emitting the same arguments at once (the emitter: any
 * thread; the arguments: the caller's, only read). The emitter used to
 * json_node_copy() them: the copies counted references to the caller's
 * objects and values without atomics (json-glib's), from both threads at
 * once, and the packet sealed the caller's objects. */
typedef struct
{
  SocketIORedisEmitter *emitter;
  JsonArray            *args;    /* an emit's arguments */
  JsonArray            *event;   /* a server-side emit's */
} SharedEmit;

#define SHARED_EMITS 100
#define N_SHARED_THREADS 2

static gpointer
emit_shared (gpointer data)
{
  SharedEmit *shared = data;

  for (guint i = 0; i < SHARED_EMITS; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!socket_io_redis_emitter_emit (shared->emitter, "shared", shared->args, NULL, &error) ||
          !socket_io_redis_emitter_server_side_emit (shared->emitter, shared->event, &error))
        return g_strdup (error->message);
    }
  return NULL;
}

static void
test_shared_args (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(JsonArray) event = json_array_new ();
  JsonObject *object = json_object_new ();
  SharedEmit shared = { f->emitter, args, event };

  g_assert_nonnull (a);
  json_object_set_string_member (object, "text", "shared");
  json_object_set_int_member (object, "n", 1);
  json_array_add_object_element (args, json_object_ref (object));
  json_array_add_string_element (args, "value");
  json_array_add_string_element (event, "shared-event");
  json_array_add_object_element (event, object);
  json_array_add_string_element (event, "value");
  redis_run_json_threads ("emit-shared", emit_shared, &shared, N_SHARED_THREADS);
  /* Still the caller's to change. */
  g_assert_false (json_object_is_immutable (object));
  for (guint i = 0; i < N_SHARED_THREADS * SHARED_EMITS; i++)
    expect_next (a, "2[\"shared\",{\"text\":\"shared\",\"n\":1},\"value\"]");
}

/* Invalid events are refused before Redis is asked. */
static void
test_invalid (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  g_assert_false (socket_io_redis_emitter_emit (f->emitter, "connect", NULL, NULL, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
  g_clear_error (&error);
  /* A placeholder with no such attachment. */
  json_array_add_element (args, socket_io_placeholder_new (5));
  g_ptr_array_add (attachments, g_bytes_new_static ("a", 1));
  g_assert_false (socket_io_redis_emitter_emit (f->emitter, "x", args, attachments, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (socket_io_redis_emitter_server_side_emit (f->emitter, NULL, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
  g_clear_error (&error);
}

/* Redis gone: a GError at once (refused), and after Redis is back the
 * next publication reconnects and is delivered. */
static void
test_redis_restart (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->lb, "/", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) args = json_array_new ();
  gboolean ok = TRUE;
  gint64 start;

  g_assert_nonnull (a);
  emit_text (f->emitter, "news", "before");
  expect_next (a, "2[\"news\",\"before\"]");
  for (guint i = 0; i < 2; i++)
    {
      test_log_expect (G_LOG_LEVEL_WARNING, "lost publisher connection");
      test_log_expect (G_LOG_LEVEL_WARNING, "lost subscriber connection");
    }
  redis_stop (f->redis);
  f->redis = 0;
  /* The first try may find the old connection broken, the next one
   * cannot connect: both fail, neither hangs. */
  start = g_get_monotonic_time ();
  for (guint i = 0; i < 2 && ok; i++)
    {
      g_clear_error (&error);
      ok = socket_io_redis_emitter_emit (f->emitter, "news", args, NULL, &error);
    }
  g_assert_false (ok);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpint (g_get_monotonic_time () - start, <, (gint64) TEST_TIMEOUT_MS * 1000);
  g_clear_error (&error);
  g_assert_false (socket_io_redis_emitter_connect (f->emitter, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_error (&error);

  f->redis = redis_start (&f->redis_port);
  g_assert_true (redis_wait_connected (f->adapter[0], TRUE, 10000));
  g_assert_true (socket_io_redis_emitter_connect (f->emitter, &error));
  g_assert_no_error (error);
  emit_text (f->emitter, "news", "after");
  expect_next (a, "2[\"news\",\"after\"]");
  g_assert_true (test_log_wait_expected (5000));
}

/* A peer that accepts the TCP connection (the listen backlog) but never
 * answers: the emit fails with G_IO_ERROR_TIMED_OUT after about the
 * timeout, not never. */
static void
test_timeout (void)
{
  guint port = 0;
  g_autoptr(GSocket) listener G_GNUC_UNUSED = redis_loopback_socket (TRUE, &port);
  g_autoptr(SocketIORedisEmitter) emitter = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strdup_printf ("redis://127.0.0.1:%u", port);
  gint64 start, elapsed;

  emitter = socket_io_redis_emitter_new (url, NULL, &error);
  g_assert_no_error (error);
  socket_io_redis_emitter_set_timeout (emitter, 300);
  g_assert_cmpuint (socket_io_redis_emitter_get_timeout (emitter), ==, 300);
  start = g_get_monotonic_time ();
  g_assert_false (socket_io_redis_emitter_emit (emitter, "news", NULL, NULL, &error));
  elapsed = g_get_monotonic_time () - start;
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (elapsed, >=, 250 * 1000);
  g_assert_cmpint (elapsed, <, (gint64) test_scaled_ms (3000) * 1000);
}

static void
test_bad_url (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIORedisEmitter) emitter = socket_io_redis_emitter_new ("http://127.0.0.1/", NULL, &error);

  g_assert_null (emitter);
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  g_test_add_func ("/sio-emitter/bad-url", test_bad_url);
  g_test_add_func ("/sio-emitter/timeout", test_timeout);
  if (!redis_available ("/sio-emitter/redis-server"))
    return g_test_run ();
#define ADD(path, func) \
  g_test_add ("/sio-emitter/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("emit", test_emit);
  ADD ("of", test_of);
  ADD ("rooms", test_rooms);
  ADD ("invalid", test_invalid);
  ADD ("server-side-emit", test_server_side_emit);
  ADD ("shared-args", test_shared_args);
  ADD ("redis-restart", test_redis_restart);
  return g_test_run ();
}
