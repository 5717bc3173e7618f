/* test-sio-redis.c: SocketIORedisAdapter against a real redis-server
 *
 * Starts Debian's redis-server on a loopback port picked by binding a
 * socket to port 0 and closing it (redis cannot bind port 0), without
 * persistence; two SocketIOServers in this process (two ports), each with
 * a Redis adapter on "/" (SioLoopback, sioutil.h), driven by raw Socket.IO
 * clients.
 * Skipped only when redis-server is not on PATH. Run with
 * ENGINE_IO_TEST_LOOP_THREADS=0 and =2.
 *
 * The Node interop of the same adapter is tests/socketio/interop-sio-redis.mjs.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <malloc.h>
#include <signal.h>
#include <string.h>

#include "testutil.h"
#include "sioutil.h"
#include "redisutil.h"
#include "socketio/socketio.h"
#include "socketio/socketio-redis.h"
#include "socketio-packet-private.h"

typedef struct
{
  SioLoopback        lb;
  SocketIONamespace *nsp;
  SocketIOAdapter   *adapter;
} Node;

typedef struct
{
  GPid         redis;   /* 0: not running */
  guint        redis_port;
  char        *url;
  Node         nodes[2];
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->redis_port = 0;
  f->redis = redis_start (&f->redis_port);
  f->url = g_strdup_printf ("redis://127.0.0.1:%u", f->redis_port);
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      Node *node = &f->nodes[i];
      g_autoptr(GError) error = NULL;

      sio_loopback_init (&node->lb, NULL);
      node->nsp = sio_loopback_of (&node->lb, "/");
      node->adapter = socket_io_redis_adapter_new (node->nsp, f->url, NULL, &error);
      g_assert_no_error (error);
      socket_io_namespace_set_adapter (node->nsp, node->adapter);
      sio_loopback_listen (&node->lb);
    }
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    g_assert_true (redis_wait_connected (f->nodes[i].adapter, TRUE, 10000));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      Node *node = &f->nodes[i];

      engine_io_server_close (node->lb.engine);
      g_clear_object (&node->adapter);
      g_clear_object (&node->nsp);
      sio_loopback_clear (&node->lb);
    }
  redis_stop (f->redis);
  f->redis = 0;
  g_free (f->url);
  test_log_check ();
}

static void
emit (Node       *node,
      const char *tag)
{
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;

  json_array_add_string_element (args, tag);
  g_assert_true (socket_io_namespace_emit (node->nsp, "news", args, NULL, &error));
  g_assert_no_error (error);
}

/* A broadcast on either node reaches the clients of both, once each; a
 * binary one keeps its attachment. */
static void
test_broadcast (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->nodes[0].lb, "/", NULL);
  g_autoptr(TestWs) b = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  emit (&f->nodes[0], "from-0");
  expect_next (a, "2[\"news\",\"from-0\"]");
  expect_next (b, "2[\"news\",\"from-0\"]");
  emit (&f->nodes[1], "from-1");
  expect_next (a, "2[\"news\",\"from-1\"]");
  expect_next (b, "2[\"news\",\"from-1\"]");

  json_array_add_element (args, socket_io_placeholder_new (0));
  g_ptr_array_add (attachments, g_bytes_new_static ("\x01\x02\xff", 3));
  g_assert_true (socket_io_namespace_emit (f->nodes[0].nsp, "bin", args, attachments, &error));
  g_assert_no_error (error);
  expect_next (b, "51-[\"bin\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (b, "<bin:0102ff>");
  expect_next (a, "51-[\"bin\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (a, "<bin:0102ff>");
  sio_expect_quiet (a);
  sio_expect_quiet (b);
  g_assert_cmpuint (socket_io_redis_adapter_get_publish_failures (SOCKET_IO_REDIS_ADAPTER (f->nodes[0].adapter)), ==, 0);
}

/* Redis killed: broadcasts still reach the local clients, each one that
 * could not be published is counted (with one warning); Redis restarted on
 * the same port: both nodes reconnect and resubscribe, broadcasts cross
 * again. */
static void
test_redis_restart (Fixture       *f,
                    gconstpointer  data)
{
  Node *n0 = &f->nodes[0];
  SocketIORedisAdapter *r0 = SOCKET_IO_REDIS_ADAPTER (n0->adapter);
  g_autoptr(TestWs) a = sio_loopback_client (&n0->lb, "/", NULL);
  g_autoptr(TestWs) b = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
  guint64 before;

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      test_log_expect (G_LOG_LEVEL_WARNING, "lost publisher connection");
      test_log_expect (G_LOG_LEVEL_WARNING, "lost subscriber connection");
    }
  test_log_expect (G_LOG_LEVEL_WARNING, "could not publish");
  redis_stop (f->redis);
  f->redis = 0;
  g_assert_true (redis_wait_connected (n0->adapter, FALSE, 5000));
  g_assert_true (redis_wait_connected (f->nodes[1].adapter, FALSE, 5000));

  before = socket_io_redis_adapter_get_publish_failures (r0);
  for (guint i = 0; i < 3; i++)
    {
      emit (n0, "during-outage");
      expect_next (a, "2[\"news\",\"during-outage\"]");
    }
  g_assert_cmpuint (socket_io_redis_adapter_get_publish_failures (r0), ==, before + 3);
  sio_expect_quiet (b);

  f->redis = redis_start (&f->redis_port);
  g_assert_true (redis_wait_connected (n0->adapter, TRUE, 10000));
  g_assert_true (redis_wait_connected (f->nodes[1].adapter, TRUE, 10000));
  emit (n0, "after-restart");
  expect_next (a, "2[\"news\",\"after-restart\"]");
  expect_next (b, "2[\"news\",\"after-restart\"]");
  g_assert_cmpuint (socket_io_redis_adapter_get_publish_failures (r0), ==, before + 3);
  g_assert_true (test_log_wait_expected (1000));
}

/* Rooms across nodes: a room broadcast reaches the members of both nodes
 * only; socketsJoin on one node (add_sockets) puts the sockets of the other
 * node in the room too. */
static void
test_rooms (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_client (&f->nodes[0].lb, "/", NULL);
  g_autoptr(TestWs) b = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
  g_autoptr(TestWs) c = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
  g_autoptr(SocketIOBroadcastOperator) all = NULL;
  g_autoptr(GPtrArray) sockets = NULL;
  g_autoptr(JsonArray) args = json_array_new ();
  gint64 end;

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_nonnull (c);
  /* b joins "r" on its own node. */
  sockets = socket_io_namespace_get_sockets (f->nodes[1].nsp);
  g_assert_cmpuint (sockets->len, ==, 2);
  {
    g_autofree char *first = NULL;

    socket_io_socket_join (g_ptr_array_index (sockets, 0), "r");
    json_array_add_string_element (args, "to-r");
    {
      g_autoptr(SocketIOBroadcastOperator) op = socket_io_namespace_to (f->nodes[0].nsp, "r");

      g_assert_true (socket_io_broadcast_operator_emit (op, "room", args, NULL, NULL, NULL));
    }
    /* Exactly one of b, c is the member. */
    first = sio_next (b, 1000);
    if (first != NULL)
      {
        g_assert_cmpstr (first, ==, "2[\"room\",\"to-r\"]");
        sio_expect_quiet (c);
      }
    else
      expect_next (c, "2[\"room\",\"to-r\"]");
    sio_expect_quiet (a);
  }

  /* Every socket of both nodes joins "all" from node 0. */
  all = socket_io_namespace_broadcast (f->nodes[0].nsp);
  socket_io_broadcast_operator_sockets_join (all, "all");
  end = g_get_monotonic_time () + (gint64) test_scaled_ms (5000) * 1000;
  for (;;)
    {
      const char *room[] = { "all", NULL };
      g_auto(GStrv) ids = socket_io_adapter_sockets (f->nodes[1].adapter, room, NULL);

      if (g_strv_length (ids) == 2)
        break;
      if (g_get_monotonic_time () > end)
        {
          g_test_fail_printf ("node 1 has %u sockets in the room", g_strv_length (ids));
          return;
        }
      g_usleep (10 * 1000);
    }
  {
    g_autoptr(SocketIOBroadcastOperator) op = socket_io_namespace_to (f->nodes[1].nsp, "all");

    g_assert_true (socket_io_broadcast_operator_emit (op, "room", args, NULL, NULL, NULL));
  }
  expect_next (a, "2[\"room\",\"to-r\"]");
  expect_next (b, "2[\"room\",\"to-r\"]");
  expect_next (c, "2[\"room\",\"to-r\"]");
}

static void
on_count (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* The count of PUBSUB NUMSUB through the adapter's thread, the callback in
 * the caller's context; -1 with the error's message in @message. */
static gint
server_count (Node  *node,
              char **message)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  SocketIORedisAdapter *adapter = SOCKET_IO_REDIS_ADAPTER (node->adapter);
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  guint n;

  g_main_context_push_thread_default (context);
  socket_io_redis_adapter_server_count_async (adapter, NULL, on_count, &result);
  while (result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (1000);
  g_main_context_pop_thread_default (context);
  g_clear_pointer (message, g_free);
  if (result == NULL)
    {
      *message = g_strdup ("no answer");
      return -1;
    }
  n = socket_io_redis_adapter_server_count_finish (adapter, result, &error);
  if (error != NULL)
    {
      *message = g_strdup (error->message);
      return -1;
    }
  return (gint) n;
}

/* serverCount: both nodes (the request channel's subscribers); Redis down:
 * an error, not a wait. */
static void
test_server_count (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *message = NULL;

  g_assert_cmpint (server_count (&f->nodes[0], &message), ==, 2);
  g_assert_cmpint (server_count (&f->nodes[1], &message), ==, 2);
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      test_log_expect (G_LOG_LEVEL_WARNING, "lost publisher connection");
      test_log_expect (G_LOG_LEVEL_WARNING, "lost subscriber connection");
    }
  redis_stop (f->redis);
  f->redis = 0;
  g_assert_true (redis_wait_connected (f->nodes[0].adapter, FALSE, 5000));
  g_assert_cmpint (server_count (&f->nodes[0], &message), ==, -1);
  g_assert_cmpstr (message, ==, "Not connected to Redis");
  f->redis = redis_start (&f->redis_port);
  g_assert_true (redis_wait_connected (f->nodes[0].adapter, TRUE, 10000));
  g_assert_true (redis_wait_connected (f->nodes[1].adapter, TRUE, 10000));
  g_assert_cmpint (server_count (&f->nodes[0], &message), ==, 2);
  g_assert_true (test_log_wait_expected (1000));
}


/* What a node's server-side-event handler saw (the Redis thread writes,
 * the test reads). */
typedef struct
{
  GMutex  lock;
  GPtrArray *events;   /* "name:args-json" */
  gboolean answer;
  char    *label;
} SideEvents;

static JsonNode *
on_server_side_event (SocketIORedisAdapter *adapter,
                      const char           *name,
                      JsonArray            *args,
                      gpointer              user_data)
{
  SideEvents *side = user_data;
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
  g_autofree char *text = NULL;
  JsonObject *answer;
  JsonNode *result;

  json_node_set_array (node, args);
  text = json_to_string (node, FALSE);
  g_mutex_lock (&side->lock);
  g_ptr_array_add (side->events, g_strdup_printf ("%s:%s", name, text));
  g_mutex_unlock (&side->lock);
  if (!side->answer)
    return NULL;
  answer = json_object_new ();
  json_object_set_string_member (answer, "from", side->label);
  json_object_set_string_member (answer, "args", text);
  result = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (result, answer);
  return result;
}

static guint
side_count (SideEvents *side)
{
  guint n;

  g_mutex_lock (&side->lock);
  n = side->events->len;
  g_mutex_unlock (&side->lock);
  return n;
}

/* serverSideEmit between two C nodes: without ack (the other node's
 * handler runs once, the sender's never), with ack (one answer per other
 * node), and a node that does not answer (G_IO_ERROR_TIMED_OUT after the
 * requests timeout). */
static void
test_server_side_emit (Fixture       *f,
                       gconstpointer  data)
{
  SocketIORedisAdapter *r0 = SOCKET_IO_REDIS_ADAPTER (f->nodes[0].adapter);
  SocketIORedisAdapter *r1 = SOCKET_IO_REDIS_ADAPTER (f->nodes[1].adapter);
  SideEvents side0 = { .events = g_ptr_array_new_with_free_func (g_free), .label = "node0" };
  SideEvents side1 = { .events = g_ptr_array_new_with_free_func (g_free), .label = "node1", .answer = TRUE };
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(JsonArray) answers = NULL;
  gint64 end;
  gulong h0, h1;

  g_mutex_init (&side0.lock);
  g_mutex_init (&side1.lock);
  h0 = g_signal_connect (r0, "server-side-event", G_CALLBACK (on_server_side_event), &side0);
  h1 = g_signal_connect (r1, "server-side-event::ping", G_CALLBACK (on_server_side_event), &side1);

  g_assert_false (socket_io_redis_adapter_server_side_emit (r0, args, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
  g_clear_error (&error);
  json_array_add_string_element (args, "ping");
  json_array_add_int_element (args, 42);
  g_assert_true (socket_io_redis_adapter_server_side_emit (r0, args, &error));
  g_assert_no_error (error);
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while (side_count (&side1) < 1 && g_get_monotonic_time () < end)
    g_usleep (10 * 1000);
  g_usleep (200 * 1000);
  g_assert_cmpuint (side_count (&side1), ==, 1);
  g_assert_cmpstr (g_ptr_array_index (side1.events, 0), ==, "ping:[42]");
  g_assert_cmpuint (side_count (&side0), ==, 0);

  /* With ack: node1 answers. */
  g_main_context_push_thread_default (context);
  socket_io_redis_adapter_server_side_emit_async (r0, args, NULL, on_count, &result);
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while (result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (1000);
  g_assert_nonnull (result);
  answers = socket_io_redis_adapter_server_side_emit_finish (r0, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (answers);
  g_assert_cmpuint (json_array_get_length (answers), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (answers, 0), "from"), ==, "node1");
  g_clear_object (&result);
  g_clear_pointer (&answers, json_array_unref);

  /* Again and again, each answer read and dropped at once: the answers
   * must share nothing with what the Redis thread still holds (json-glib
   * counts an object's references without atomics). Under TSan this
   * raced with the Redis thread's release of the parsed response (CI,
   * 2026-12-05). */
  for (guint i = 0; i < 40; i++)
    {
      socket_io_redis_adapter_server_side_emit_async (r0, args, NULL, on_count, &result);
      end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
      while (result == NULL && g_get_monotonic_time () < end)
        if (!g_main_context_iteration (context, FALSE))
          g_usleep (100);
      g_assert_nonnull (result);
      answers = socket_io_redis_adapter_server_side_emit_finish (r0, result, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (answers, 0), "from"), ==, "node1");
      g_clear_object (&result);
      g_clear_pointer (&answers, json_array_unref);
    }

  /* node0 does not answer (its handler returns NULL): node1 times out. */
  socket_io_redis_adapter_set_requests_timeout (r1, 300);
  socket_io_redis_adapter_server_side_emit_async (r1, args, NULL, on_count, &result);
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while (result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (1000);
  g_main_context_pop_thread_default (context);
  g_assert_nonnull (result);
  answers = socket_io_redis_adapter_server_side_emit_finish (r1, result, &error);
  g_assert_null (answers);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpuint (side_count (&side0), ==, 1);

  g_signal_handler_disconnect (r0, h0);
  g_signal_handler_disconnect (r1, h1);
  g_ptr_array_unref (side0.events);
  g_ptr_array_unref (side1.events);
  g_mutex_clear (&side0.lock);
  g_mutex_clear (&side1.lock);
}

/* Bytes the process holds from malloc (in use, whatever RSS says). */
static gsize
malloc_in_use (void)
{
  struct mallinfo2 info = mallinfo2 ();

  return info.uordblks + info.hblkhd;
}

/* Iterates @context until @result is set. */
static void
wait_result (GMainContext  *context,
             GAsyncResult **result)
{
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;

  while (*result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (100);
  g_assert_nonnull (*result);
}

/* The name in the data of the one socket @result lists. */
static char *
fetched_name (SocketIORedisAdapter *adapter,
              GAsyncResult         *result)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) sockets = socket_io_redis_adapter_fetch_sockets_finish (adapter, result, &error);
  JsonObject *socket;

  g_assert_no_error (error);
  g_assert_cmpuint (json_array_get_length (sockets), ==, 1);
  socket = json_array_get_object_element (sockets, 0);
  return g_strdup (json_object_get_string_member (json_object_get_object_member (socket, "data"), "name"));
}

typedef struct
{
  SocketIORedisAdapter *adapter;
  JsonArray            *args;
} SharedSideEmit;

#define SIDE_EMITS 100
#define N_SHARED_THREADS 2

static gpointer
side_emit_shared (gpointer data)
{
  SharedSideEmit *shared = data;

  for (guint i = 0; i < SIDE_EMITS; i++)
    {
      g_autoptr(GError) error = NULL;

      if (!socket_io_redis_adapter_server_side_emit (shared->adapter, shared->args, &error))
        return g_strdup (error->message);
    }
  return NULL;
}

/* A socket's data copied for fetchSockets on the caller's thread and on
 * the Redis thread (a remote REMOTE_FETCH) at once: the copies shared no
 * JsonObject or JsonArray with it, but json_node_copy() of its values
 * shared their JsonValues, whose references json-glib counts without
 * atomics, between the two threads. Run under TSan with an instrumented
 * json-glib (the counts are inside it). */
#define FETCH_ROUNDS 10
#define LOCAL_FETCHES 20

static void
test_fetch_shared_data (Fixture       *f,
                        gconstpointer  data)
{
  SocketIORedisAdapter *r0 = SOCKET_IO_REDIS_ADAPTER (f->nodes[0].adapter);
  SocketIORedisAdapter *r1 = SOCKET_IO_REDIS_ADAPTER (f->nodes[1].adapter);
  g_autoptr(TestWs) client = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GPtrArray) sockets = NULL;
  g_autoptr(JsonNode) socket_data = json_from_string ("{\"name\":\"carol\",\"tags\":[\"a\",1]}", NULL);

  g_assert_nonnull (client);
  sockets = socket_io_namespace_get_sockets (f->nodes[1].nsp);
  g_assert_cmpuint (sockets->len, ==, 1);
  socket_io_socket_set_data (g_ptr_array_index (sockets, 0), socket_data);

  g_main_context_push_thread_default (context);
  for (guint i = 0; i < FETCH_ROUNDS; i++)
    {
      GAsyncResult *remote = NULL;
      GAsyncResult *local[LOCAL_FETCHES] = { NULL, };
      g_autofree char *remote_name = NULL;

      /* node1's data copied by node1's Redis thread for node0, while
       * this thread copies it for node1's own requests. */
      socket_io_redis_adapter_fetch_sockets_async (r0, NULL, NULL, NULL, on_count, &remote);
      for (guint j = 0; j < LOCAL_FETCHES; j++)
        socket_io_redis_adapter_fetch_sockets_async (r1, NULL, NULL, NULL, on_count, &local[j]);
      for (guint j = 0; j < LOCAL_FETCHES; j++)
        {
          g_autofree char *local_name = NULL;

          wait_result (context, &local[j]);
          local_name = fetched_name (r1, local[j]);
          g_assert_cmpstr (local_name, ==, "carol");
          g_clear_object (&local[j]);
        }
      wait_result (context, &remote);
      remote_name = fetched_name (r0, remote);
      g_assert_cmpstr (remote_name, ==, "carol");
      g_clear_object (&remote);
    }
  g_main_context_pop_thread_default (context);
}

/* A server-side emit of the same arguments from two threads at once: the
 * adapter json_node_copy()ed them, counting references to the caller's
 * objects and values from both threads without atomics (json-glib's).
 * TSan with an instrumented json-glib. */
static void
test_side_emit_shared_args (Fixture       *f,
                            gconstpointer  data)
{
  SocketIORedisAdapter *r0 = SOCKET_IO_REDIS_ADAPTER (f->nodes[0].adapter);
  SocketIORedisAdapter *r1 = SOCKET_IO_REDIS_ADAPTER (f->nodes[1].adapter);
  SideEvents side1 = { .events = g_ptr_array_new_with_free_func (g_free), .label = "node1" };
  g_autoptr(JsonArray) args = json_array_new ();
  JsonObject *object = json_object_new ();
  SharedSideEmit shared = { r0, args };
  gint64 end;
  gulong handler;

  g_mutex_init (&side1.lock);
  handler = g_signal_connect (r1, "server-side-event::shared", G_CALLBACK (on_server_side_event), &side1);
  json_array_add_string_element (args, "shared");
  json_object_set_string_member (object, "text", "shared");
  json_array_add_object_element (args, object);
  json_array_add_string_element (args, "value");
  redis_run_json_threads ("side-emit-shared", side_emit_shared, &shared, N_SHARED_THREADS);
  /* All delivered, in full (before Redis stops). */
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while (side_count (&side1) < N_SHARED_THREADS * SIDE_EMITS && g_get_monotonic_time () < end)
    g_usleep (10 * 1000);
  g_assert_cmpuint (side_count (&side1), ==, N_SHARED_THREADS * SIDE_EMITS);
  g_assert_cmpstr (g_ptr_array_index (side1.events, 0), ==, "shared:[{\"text\":\"shared\"},\"value\"]");
  g_signal_handler_disconnect (r1, handler);
  g_ptr_array_unref (side1.events);
  g_mutex_clear (&side1.lock);
}

/* Redis stopped (SIGSTOP: the connection stays, nothing is read): 1 MiB
 * broadcasts wait for Redis, at most 64 MiB of them; past that each is
 * dropped and counted, and the memory held for those waiting stays near
 * 64 MiB, counted in real bytes (one copy each, not the payload kept
 * beside hiredis's formatted command). Redis resumed: what waited goes
 * out and broadcasts cross again. */
static void
test_pending_bound (Fixture       *f,
                    gconstpointer  data)
{
  Node *n0 = &f->nodes[0];
  SocketIORedisAdapter *r0 = SOCKET_IO_REDIS_ADAPTER (n0->adapter);
  const gsize big_size = 1024 * 1024;
  const guint n_big = 100;
  g_autofree char *big = g_malloc (big_size + 1);
  g_autoptr(TestWs) b = NULL;
  gsize before, held;
  guint64 failures;
  gboolean got_after = FALSE;
  gint64 deadline;

  memset (big, 'x', big_size);
  big[big_size] = '\0';
  /* Redis's default would cut node 1's subscriber connection while it
   * relays 64 MiB at once (pubsub output buffer 32 MiB): not the point. */
  redis_command (f->redis_port, "CONFIG SET client-output-buffer-limit \"pubsub 0 0 0\"\r\n");
  test_log_expect (G_LOG_LEVEL_WARNING, "could not publish");
  kill (f->redis, SIGSTOP);
  before = malloc_in_use ();
  for (guint i = 0; i < n_big; i++)
    emit (n0, big);
  /* The Redis thread takes each publication into hiredis's output buffer. */
  g_usleep (test_scaled_ms (1000) * 1000);
  held = malloc_in_use () - MIN (before, malloc_in_use ());
  failures = socket_io_redis_adapter_get_publish_failures (r0);
  g_test_message ("%u broadcasts of 1 MiB to a stopped Redis: %" G_GUINT64_FORMAT " dropped, "
                  "%" G_GSIZE_FORMAT " KiB held", n_big, failures, held / 1024);
  /* 64 MiB of publications a little over 1 MiB each: 36 or more dropped,
   * but not all of them. */
  g_assert_cmpuint (failures, >=, n_big - 64);
  g_assert_cmpuint (failures, <=, n_big - 50);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* The sanitizers' allocator is not glibc's: mallinfo2() does not see it.
   * The bound on memory is asserted by the normal build. */
  g_test_message ("held memory not measured under a sanitizer");
#else
  g_assert_cmpuint (held, <=, 80 * 1024 * 1024);
#endif

  kill (f->redis, SIGCONT);
  /* Node 1 may still be relaying what waited (some 60 MiB, to every
   * client of its own): skip those. A client that reads them slower than
   * node 1 relays them meets its send queue's high-water mark and is
   * closed (the back-pressure policy): then a new one connects. */
  deadline = g_get_monotonic_time () + (gint64) test_scaled_ms (30000) * 1000;
  for (guint round = 0; !got_after && g_get_monotonic_time () < deadline; round++)
    {
      if (b == NULL)
        {
          b = sio_loopback_client (&f->nodes[1].lb, "/", NULL);
          g_assert_nonnull (b);
        }
      emit (n0, "after-resume");
      for (;;)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(TestWsFrame) frame = test_ws_read_frame (b, 1000, &error);
          g_autofree char *text = NULL;

          if (frame == NULL || frame->opcode == TEST_WS_CLOSE)
            {
              if (frame != NULL || !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
                {
                  g_test_message ("round %u: the client's connection ended (%s): a new one",
                                  round, error != NULL ? error->message : "close frame");
                  g_clear_pointer (&b, test_ws_free);
                }
              break;
            }
          if (frame->opcode != TEST_WS_TEXT)
            continue;
          text = test_ws_frame_dup_text (frame);
          if (g_str_equal (text, "2"))
            test_ws_send_text (b, "3");
          else if (g_str_equal (text, "42[\"news\",\"after-resume\"]"))
            {
              got_after = TRUE;
              break;
            }
        }
    }
  g_assert_true (got_after);
  g_assert_cmpuint (socket_io_redis_adapter_get_publish_failures (r0), ==, failures);
  g_assert_true (test_log_wait_expected (1000));
}

/* An invalid URL is a GError, not a thread. */
static void
test_bad_url (void)
{
  g_autoptr(EngineIOServer) engine = test_server_new ();
  g_autoptr(SocketIOServer) sio = g_object_new (SOCKET_IO_TYPE_SERVER, "engine", engine, NULL);
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (sio, "/");
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOAdapter) adapter = socket_io_redis_adapter_new (nsp, "http://127.0.0.1/", NULL, &error);

  g_assert_null (adapter);
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
}

/* The harness's Redis is the one the test talks to: CI once had two test
 * processes share one Redis (a port picked free was taken by the other's
 * redis-server first; ours failed to bind, the wait for the port saw the
 * other's, and each adapter received the other's publications). A
 * redis-server started where another already listens is reported as
 * failed (0), not taken for ours; a fresh start picks a port of its own. */
static void
test_harness_port_taken (void)
{
  guint port = 0;
  GPid first = redis_start (&port);
  guint other = 0;
  GPid second;

  g_assert_cmpint (first, >, 0);
  g_assert_cmpuint (port, !=, 0);
  g_assert_cmpint (redis_try_start (port, NULL), ==, 0);
  second = redis_start (&other);
  g_assert_cmpint (second, >, 0);
  g_assert_cmpuint (other, !=, port);
  redis_stop (second);
  redis_stop (first);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  g_test_add_func ("/sio-redis/bad-url", test_bad_url);
  if (!redis_available ("/sio-redis/redis-server"))
    return g_test_run ();
  g_test_add_func ("/sio-redis/harness-port-taken", test_harness_port_taken);
#define ADD(path, func) \
  g_test_add ("/sio-redis/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("broadcast", test_broadcast);
  ADD ("rooms", test_rooms);
  ADD ("redis-restart", test_redis_restart);
  ADD ("server-count", test_server_count);
  ADD ("pending-bound", test_pending_bound);
  ADD ("server-side-emit", test_server_side_emit);
  ADD ("fetch-shared-data", test_fetch_shared_data);
  ADD ("side-emit-shared-args", test_side_emit_shared_args);
  return g_test_run ();
}
