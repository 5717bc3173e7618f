/* test-sio-redis-attack.c: what anything that can PUBLISH on the
 * cluster's Redis (a buggy or compromised node, an emitter, another
 * application sharing the Redis) can do to a SocketIORedisAdapter
 *
 * Regression tests of the adversarial review of the Redis side (issue
 * 17). Starts Debian's redis-server on a loopback port it picks (as
 * test-sio-redis.c), one SocketIOServer with a Redis adapter on "/"
 * (SioLoopback, sioutil.h), and
 * publishes crafted payloads with raw RESP on the channels the adapter
 * listens to: `socket.io#/#`, `socket.io-request#/#`,
 * `socket.io-response#/#`. After each attack the node must still be
 * alive and serving: a server-side emit published afterwards reaches its
 * handler (the subscriber connection delivers in order). Skipped only
 * when redis-server is not on PATH. Run with ENGINE_IO_TEST_LOOP_THREADS=0
 * and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <msgpack.h>

#include "testutil.h"
#include "sioutil.h"
#include "redisutil.h"
#include "socketio/socketio.h"
#include "socketio/socketio-redis.h"
#include "socketio/socketio-redis-emitter.h"

#define REQUEST_CHANNEL  "socket.io-request#/#"
#define RESPONSE_CHANNEL "socket.io-response#/#"
#define BROADCAST_CHANNEL "socket.io#/#"

typedef struct
{
  GMutex     lock;
  GCond      cond;
  GPtrArray *events;   /* "name:n_args" */
  gboolean   blocked;  /* the handler of "block" is waiting for release */
  gboolean   release;
} SideEvents;

typedef struct
{
  GPid               redis;
  guint              redis_port;
  char              *url;
  SioLoopback        lb;
  SocketIONamespace *nsp;
  SocketIOAdapter   *adapter;
  SideEvents         side;
  gulong             handler;
} Fixture;

/* redis-server's arguments beyond redisutil's: no pubsub output-buffer
 * limit (so that big publications reach the adapter, as with a Redis
 * configured for big broadcasts). */
static const char *const redis_args[] = { "--client-output-buffer-limit", "pubsub 0 0 0", NULL };

static JsonNode *
on_server_side_event (SocketIORedisAdapter *adapter,
                      const char           *name,
                      JsonArray            *args,
                      gpointer              user_data)
{
  SideEvents *side = user_data;

  g_mutex_lock (&side->lock);
  g_ptr_array_add (side->events, g_strdup_printf ("%s:%u", name, json_array_get_length (args)));
  if (g_str_equal (name, "block"))
    {
      /* Parks the Redis thread until the test releases it. */
      side->blocked = TRUE;
      g_cond_broadcast (&side->cond);
      while (!side->release)
        g_cond_wait (&side->cond, &side->lock);
    }
  g_mutex_unlock (&side->lock);
  return NULL;
}

static gboolean
side_has (SideEvents *side,
          const char *event)
{
  gboolean found = FALSE;

  g_mutex_lock (&side->lock);
  for (guint i = 0; i < side->events->len && !found; i++)
    found = g_str_equal (g_ptr_array_index (side->events, i), event);
  g_mutex_unlock (&side->lock);
  return found;
}

/* The node is alive and has handled everything published before: a
 * server-side emit "alive-@tag" published now reaches its handler. */
static void
assert_alive (Fixture    *f,
              const char *tag)
{
  g_autofree char *payload = g_strdup_printf ("{\"uid\":\"zzzzzz\",\"type\":6,\"data\":[\"alive-%s\"]}", tag);
  g_autofree char *event = g_strdup_printf ("alive-%s:0", tag);
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;

  g_assert_cmpint (redis_publish (f->redis_port, REQUEST_CHANNEL, payload, strlen (payload)), ==, 1);
  while (!side_has (&f->side, event) && g_get_monotonic_time () < end)
    g_usleep (10 * 1000);
  if (!side_has (&f->side, event))
    g_test_fail_printf ("the node did not handle %s", event);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  f->redis_port = 0;
  f->redis = redis_start_full (&f->redis_port, redis_args);
  f->url = g_strdup_printf ("redis://127.0.0.1:%u", f->redis_port);
  sio_loopback_init (&f->lb, NULL);
  f->nsp = sio_loopback_of (&f->lb, "/");
  f->adapter = socket_io_redis_adapter_new (f->nsp, f->url, NULL, &error);
  g_assert_no_error (error);
  socket_io_namespace_set_adapter (f->nsp, f->adapter);
  sio_loopback_listen (&f->lb);
  g_mutex_init (&f->side.lock);
  g_cond_init (&f->side.cond);
  f->side.events = g_ptr_array_new_with_free_func (g_free);
  f->handler = g_signal_connect (f->adapter, "server-side-event",
                                 G_CALLBACK (on_server_side_event), &f->side);
  g_assert_true (redis_wait_connected (f->adapter, TRUE, 10000));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  if (f->handler != 0)
    g_signal_handler_disconnect (f->adapter, f->handler);
  if (f->lb.engine != NULL)
    engine_io_server_close (f->lb.engine);
  g_clear_object (&f->adapter);
  g_clear_object (&f->nsp);
  sio_loopback_clear (&f->lb);
  redis_stop (f->redis);
  g_free (f->url);
  g_ptr_array_unref (f->side.events);
  g_mutex_clear (&f->side.lock);
  g_cond_clear (&f->side.cond);
  test_log_check ();
}

/* `{"uid":"zzzzzz","type":6,"@member":` then @depth nested arrays. */
static GString *
deep_json (const char *head,
           guint       depth)
{
  GString *text = g_string_new (head);

  for (guint i = 0; i < depth; i++)
    g_string_append_c (text, '[');
  for (guint i = 0; i < depth; i++)
    g_string_append_c (text, ']');
  g_string_append_c (text, '}');
  return text;
}

/* JSON nested 500,000 deep on the request and the response channels (1
 * MB each): JsonParser recursed on the Redis thread until its stack
 * overflowed (SIGSEGV: every node of the cluster dies of one
 * publication). Now refused as the client decoder refuses it. */
static void
test_deep_json (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GString) request = deep_json ("{\"uid\":\"zzzzzz\",\"type\":6,\"data\":", 500000);
  g_autoptr(GString) response = deep_json ("{\"requestId\":\"abcdef\",\"sockets\":", 500000);

  g_assert_cmpint (redis_publish (f->redis_port, REQUEST_CHANNEL, request->str, request->len), ==, 1);
  assert_alive (f, "request");
  g_assert_cmpint (redis_publish (f->redis_port, RESPONSE_CHANNEL, response->str, response->len), ==, 1);
  assert_alive (f, "response");
}

/* Bytes of the process's heap in use (glibc's view). */
static gsize
heap_in_use (void)
{
  struct mallinfo2 info = mallinfo2 ();

  return info.uordblks + info.hblkhd;
}

typedef struct
{
  gint      stop;
  gsize     peak;
} Sampler;

static gpointer
sample_heap (gpointer data)
{
  Sampler *sampler = data;

  while (!g_atomic_int_get (&sampler->stop))
    {
      gsize now = heap_in_use ();

      if (now > sampler->peak)
        sampler->peak = now;
      g_usleep (1000);
    }
  return NULL;
}

/* A msgpack server-side emit ["big", nil x @n] (one byte a nil). */
static void
pack_big_request (msgpack_sbuffer *sbuf,
                  guint            n)
{
  msgpack_packer pk;

  msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
  msgpack_pack_map (&pk, 3);
  msgpack_pack_str_with_body (&pk, "uid", 3);
  msgpack_pack_str_with_body (&pk, "zzzzzz", 6);
  msgpack_pack_str_with_body (&pk, "type", 4);
  msgpack_pack_int (&pk, 6);
  msgpack_pack_str_with_body (&pk, "data", 4);
  msgpack_pack_array (&pk, n + 1);
  msgpack_pack_str_with_body (&pk, "big", 3);
  for (guint i = 0; i < n; i++)
    msgpack_pack_nil (&pk);
}

/* One publication of 2 MB (a msgpack request of 2,000,000 nils, which
 * Redis relays like any other) made the node build a JSON tree of about
 * 200 MB on the Redis thread (a JsonNode and more a byte), and as much
 * again copying the arguments for the handler: some hundred times the
 * bytes received, with no bound. Now the tree is bounded as a client's
 * (the decoder's 32 MiB estimate): the request is ignored, the heap
 * does not grow by more than the bound. */
static void
test_msgpack_tree_bound (Fixture       *f,
                         gconstpointer  data)
{
  msgpack_sbuffer sbuf;
  Sampler sampler = { 0 };
  GThread *thread;
  gsize before;

  msgpack_sbuffer_init (&sbuf);
  pack_big_request (&sbuf, 2000000);
  assert_alive (f, "warm-up");
  before = heap_in_use ();
  sampler.peak = before;
  thread = g_thread_new ("heap-sampler", sample_heap, &sampler);
  g_assert_cmpint (redis_publish (f->redis_port, REQUEST_CHANNEL, sbuf.data, sbuf.size), ==, 1);
  assert_alive (f, "after");
  g_atomic_int_set (&sampler.stop, 1);
  g_thread_join (thread);
  msgpack_sbuffer_destroy (&sbuf);
  g_test_message ("2 MB msgpack request: heap peak %" G_GSIZE_FORMAT " KiB above the start",
                  (sampler.peak - before) / 1024);
  g_assert_false (side_has (&f->side, "big:2000000"));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  g_test_message ("heap not measured under a sanitizer (mallinfo2() does not see its allocator)");
#else
  /* The message itself (hiredis's reply, msgpack's zone: 2 MB and 48
   * MB), then nothing past the tree's 32 MiB bound (unbounded: 180 MB). */
  g_assert_cmpuint (sampler.peak - before, <=, 130 * 1024 * 1024);
#endif
}

static void
publish_text (Fixture    *f,
              const char *channel,
              const char *text)
{
  redis_publish (f->redis_port, channel, text, strlen (text));
}

static void
publish_hex (Fixture    *f,
             const char *channel,
             const char *hex)
{
  gsize n = strlen (hex) / 2;
  g_autofree guint8 *bytes = g_malloc (n + 1);

  for (gsize i = 0; i < n; i++)
    bytes[i] = (guint8) (g_ascii_xdigit_value (hex[2 * i]) * 16 + g_ascii_xdigit_value (hex[2 * i + 1]));
  redis_publish (f->redis_port, channel, bytes, n);
}

/* Malformed and hostile requests, responses and broadcasts of every kind:
 * wrong types, missing members, a request id missing or not a string,
 * unknown ids, truncated msgpack, ext types, huge ids and counts. The node
 * neither crashes nor answers nonsense, and its client still gets a valid
 * broadcast afterwards. */
static void
test_malformed (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = sio_loopback_client (&f->lb, "/", &sid);
  char *sid_requests[6] = { NULL };
  static const char * const requests[] = {
    "{", "{}", "[]", "{\"type\":\"6\"}", "{\"type\":6}", "{\"type\":6,\"data\":{}}",
    "{\"type\":6,\"data\":[]}", "{\"type\":6,\"data\":[1,2]}", "{\"type\":1e400}",
    "{\"type\":9007199254740993}", "{\"type\":-1}", "{\"type\":0}", "{\"type\":0,\"requestId\":5}",
    "{\"type\":0,\"requestId\":\"r\",\"rooms\":{}}", "{\"type\":1}", "{\"type\":1,\"requestId\":null}",
    "{\"type\":2}", "{\"type\":2,\"opts\":5}", "{\"type\":2,\"opts\":{\"rooms\":5},\"rooms\":\"x\"}",
    "{\"type\":3,\"opts\":{\"rooms\":[[],{},null,1.5,true]},\"rooms\":[null]}",
    "{\"type\":4,\"opts\":{\"rooms\":[\"none\"]},\"close\":\"yes\"}", "{\"type\":5}", "{\"type\":5,\"opts\":{}}",
    "{\"type\":7,\"requestId\":\"b\",\"opts\":{}}", "{\"type\":7,\"requestId\":\"b\",\"opts\":{},\"packet\":5}",
    "{\"type\":7,\"requestId\":\"b\",\"opts\":{\"flags\":{\"timeout\":-5}},\"packet\":{\"data\":[5]}}",
    "{\"type\":7,\"requestId\":\"b\",\"opts\":{\"flags\":{\"timeout\":{}}},\"packet\":{\"data\":[]}}",
    "{\"type\":8,\"requestId\":\"b\"}", "{\"type\":9,\"requestId\":\"b\",\"packet\":[]}",
    "{\"type\":99,\"requestId\":\"b\"}",
  };
  static const char * const responses[] = {
    "{", "{}", "{\"requestId\":5}", "{\"requestId\":\"nope\",\"sockets\":[1]}", "{\"requestId\":null}",
    "{\"requestId\":\"nope\",\"type\":6,\"data\":1}", "[1,2,3]",
  };
  static const char * const msgpack_requests[] = {
    "", "c1", "dd", "ddffffffff", "dfffffffff", "c7ff01", "d40100", "81a474797065c7ff01",
    /* {type: 6, data: [ext, bin]} */ "82a474797065a64a7b2274797065223a367d", "82a474797065" "06" "a464617461" "92d40100c40100",
    /* {type: 7, requestId: "b", opts: {}} without a packet */ "83a474797065" "07" "a9726571756573744964a162a46f70747380",
  };
  static const char * const msgpack_broadcasts[] = {
    "", "90", "93", "93a67a7a7a7a7a7a", "93a67a7a7a7a7a7a8080", "93a67a7a7a7a7a7a81a474797065ff80",
    /* [uid, {type: 2, nsp: 5}, {}] */ "93a67a7a7a7a7a7a82a47479706502a36e737005" "80",
    /* [uid, {type: 2, data: ext}, 5] */ "93a67a7a7a7a7a7a82a47479706502a464617461d4010005",
    /* [uid, {type: 2, data: ["e"], id: -1}, {}] */ "93a67a7a7a7a7a7a83a47479706502a464617461" "91a165" "a26964ff" "80",
    /* [uid, {type: 2, data: ["e"], id: 2^64-1}, {rooms: 5}] */
    "93a67a7a7a7a7a7a83a47479706502a464617461" "91a165" "a26964cfffffffffffffffff" "81a5726f6f6d7305",
    /* [uid, {type: 6}, {}] */ "93a67a7a7a7a7a7a81a47479706506" "80",
    /* [uid, {type: 3, data: 5}, {}] */ "93a67a7a7a7a7a7a82a47479706503a46461746105" "80",
  };

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    publish_text (f, REQUEST_CHANNEL, requests[i]);
  /* Requests on this node's socket, by sid, without or with a bad id. */
  sid_requests[0] = g_strdup_printf ("{\"type\":2,\"sid\":\"%s\",\"room\":\"r1\"}", sid);
  sid_requests[1] = g_strdup_printf ("{\"type\":3,\"sid\":\"%s\",\"room\":5,\"requestId\":5}", sid);
  sid_requests[2] = g_strdup_printf ("{\"type\":2,\"sid\":\"%s\"}", sid);
  sid_requests[3] = g_strdup_printf ("{\"type\":0,\"rooms\":[\"%s\"]}", sid);
  sid_requests[4] = g_strdup_printf ("{\"type\":5,\"requestId\":\"q\",\"opts\":{\"rooms\":[\"%s\"]}}", sid);
  for (guint i = 0; sid_requests[i] != NULL; i++)
    {
      publish_text (f, REQUEST_CHANNEL, sid_requests[i]);
      g_free (sid_requests[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (responses); i++)
    publish_text (f, RESPONSE_CHANNEL, responses[i]);
  for (guint i = 0; i < G_N_ELEMENTS (msgpack_requests); i++)
    publish_hex (f, REQUEST_CHANNEL, msgpack_requests[i]);
  for (guint i = 0; i < G_N_ELEMENTS (msgpack_broadcasts); i++)
    publish_hex (f, BROADCAST_CHANNEL, msgpack_broadcasts[i]);
  assert_alive (f, "malformed");

  /* The client got nothing from the broadcasts above but the one with a
   * valid event (id clamped or dropped); then a valid broadcast. */
  /* [uid, {type: 2, data: ["ok"], nsp: "/"}, {rooms: [], except: []}] */
  publish_hex (f, BROADCAST_CHANNEL,
               "93a67a7a7a7a7a7a83a47479706502a46461746191a26f6ba36e7370a12f"
               "82a5726f6f6d7390a6657863657074" "90");
  for (;;)
    {
      g_autofree char *message = sio_next (ws, TEST_TIMEOUT_MS);

      g_assert_nonnull (message);
      if (message == NULL || g_str_equal (message, "2[\"ok\"]"))
        break;
      g_test_message ("client got %s", message);
      g_assert_true (g_str_has_prefix (message, "2"));
    }
}

/* A Node peer's BROADCAST request with ack (emitWithAck to our clients)
 * that our clients never answer, without timeout: then the server stops.
 * The acks fail when the sockets close; their GTasks are finalized on
 * the Redis thread, which then often held the last ref to a socket, so
 * to its namespace, so to the adapter: the adapter was disposed on its own
 * thread (a g_critical) and finalized under it, and redis_thread() went on
 * writing to it (heap-use-after-free under ASan, in thread-per-session
 * mode). Nothing may leak or run on a freed adapter (ASan/LSan). */
static void
test_dispose_pending_ack (Fixture       *f,
                          gconstpointer  data)
{
  TestWs *clients[4];
  GWeakRef adapter;
  GObject *left = NULL;
  gint64 end;
  const char *request = "{\"uid\":\"zzzzzz\",\"type\":7,\"requestId\":\"ackreq\","
                        "\"opts\":{\"rooms\":[],\"except\":[],\"flags\":{}},"
                        "\"packet\":{\"type\":2,\"data\":[\"question\",1],\"nsp\":\"/\"}}";

  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      g_autofree char *sid = NULL;

      clients[i] = sio_loopback_client (&f->lb, "/", &sid);
    }
  publish_text (f, REQUEST_CHANNEL, request);
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      g_autofree char *message = sio_next (clients[i], TEST_TIMEOUT_MS);

      g_assert_cmpstr (message, ==, "20[\"question\",1]");
    }
  assert_alive (f, "ack");
  /* The Redis thread parked in a handler: the server stops with the acks
   * waiting, everything else lets go of the sockets (their clients see
   * the connection end), then the Redis thread finalizes the tasks. */
  publish_text (f, REQUEST_CHANNEL, "{\"uid\":\"zzzzzz\",\"type\":6,\"data\":[\"block\"]}");
  g_mutex_lock (&f->side.lock);
  while (!f->side.blocked)
    g_cond_wait (&f->side.cond, &f->side.lock);
  g_mutex_unlock (&f->side.lock);
  g_weak_ref_init (&adapter, f->adapter);
  engine_io_server_close (f->lb.engine);
  f->handler = 0;   /* goes with the adapter */
  g_clear_object (&f->adapter);
  g_clear_object (&f->nsp);
  g_clear_object (&f->lb.sio);
  g_clear_object (&f->lb.engine);
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      /* Whatever is left, then the end of the connection. */
      for (guint n = 0; n < 10; n++)
        {
          g_autofree char *message = sio_next (clients[i], 1000);

          if (message == NULL)
            break;
        }
      test_ws_free (clients[i]);
    }
  g_mutex_lock (&f->side.lock);
  f->side.release = TRUE;
  g_cond_broadcast (&f->side.cond);
  g_mutex_unlock (&f->side.lock);
  /* The adapter goes (on its thread, which then ends). */
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  while ((left = g_weak_ref_get (&adapter)) != NULL && g_get_monotonic_time () < end)
    {
      g_clear_object (&left);
      g_usleep (10 * 1000);
    }
  g_assert_null (left);
  g_clear_object (&left);
  g_weak_ref_clear (&adapter);
  /* Its thread is past its last use of the adapter, the handler's lock
   * with it, a moment after the finalize. */
  g_usleep (100 * 1000);
}


/* A service that is not Redis on the emitter's port: it answers "+OK" to
 * whatever it gets, until the peer closes. */
static gpointer
fake_redis (gpointer data)
{
  GSocket *listener = data;
  g_autoptr(GSocket) peer = g_socket_accept (listener, NULL, NULL);
  char buffer[4096];

  while (peer != NULL && g_socket_receive (peer, buffer, sizeof buffer, NULL, NULL) > 0)
    if (g_socket_send (peer, "+OK\r\n", 5, NULL, NULL) != 5)
      break;
  return NULL;
}

/* The emitter pointed at something that is not Redis (a wrong port, a
 * proxy): it answered every PUBLISH with "+OK" and the emitter reported
 * the event emitted (it reached nobody). Now an error: PUBLISH's answer is
 * an integer. */
static void
test_emitter_not_redis (void)
{
  guint port = 0;
  g_autoptr(GSocket) listener = redis_loopback_socket (TRUE, &port);
  g_autoptr(SocketIORedisEmitter) emitter = NULL;
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *url = g_strdup_printf ("redis://127.0.0.1:%u", port);
  GThread *thread;

  thread = g_thread_new ("fake-redis", fake_redis, listener);
  emitter = socket_io_redis_emitter_new (url, NULL, &error);
  g_assert_no_error (error);
  json_array_add_string_element (args, "x");
  g_assert_false (socket_io_redis_emitter_emit (emitter, "news", args, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_clear_object (&emitter);   /* closes the connection: the thread ends */
  g_thread_join (thread);
}


static void
on_ack_result (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* The error of an emit with ack of our own to @socket (timeout 50 ms:
 * the raw client does not answer). */
static GError *
own_ack_error (SocketIOSocket *socket)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(JsonArray) answer = NULL;
  GError *error = NULL;
  gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;

  g_main_context_push_thread_default (context);
  socket_io_socket_emit_with_ack (socket, "mine", args, NULL, 50, NULL, on_ack_result, &result);
  while (result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (context, FALSE))
      g_usleep (1000);
  g_main_context_pop_thread_default (context);
  g_assert_nonnull (result);
  answer = socket_io_socket_emit_with_ack_finish (socket, result, NULL, &error);
  return error;
}

/* BROADCAST requests (a peer's emitWithAck) without a timeout, to a
 * client that never answers: each left an ack waiting for ever in the
 * socket, so max-pending-acks of them (here 3; 1024 by default) filled
 * its table for good and the application's own emit_with_ack() failed
 * with G_IO_ERROR_NO_SPACE from then on. Now such a request waits the
 * adapter's requests timeout (Node always sends one). */
static void
test_broadcast_ack_no_timeout (Fixture       *f,
                               gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = sio_loopback_client (&f->lb, "/", &sid);
  g_autoptr(SocketIOSocket) socket = socket_io_namespace_lookup_socket (f->nsp, sid);
  g_autoptr(GError) error = NULL;
  gint64 end;

  g_assert_nonnull (socket);
  g_object_set (f->lb.sio, "max-pending-acks", 3, NULL);
  socket_io_redis_adapter_set_requests_timeout (SOCKET_IO_REDIS_ADAPTER (f->adapter), 300);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *request = g_strdup_printf (
          "{\"uid\":\"zzzzzz\",\"type\":7,\"requestId\":\"nt%u\",\"opts\":{\"rooms\":[],\"except\":[]},"
          "\"packet\":{\"type\":2,\"data\":[\"nobody-acks\"],\"nsp\":\"/\"}}", i);
      g_autofree char *message = NULL;

      publish_text (f, REQUEST_CHANNEL, request);
      message = sio_next (ws, TEST_TIMEOUT_MS);
      g_assert_nonnull (message);
      g_assert_true (g_str_has_suffix (message, "[\"nobody-acks\"]"));
    }
  /* The table is full now; within the requests timeout (and the test's
   * margin) it has room again. */
  end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  do
    {
      g_clear_error (&error);
      error = own_ack_error (socket);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
        break;
      g_usleep (50 * 1000);
    }
  while (g_get_monotonic_time () < end);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
}

/* A raw Redis connection, SUBSCRIBEd to @channel, reads with a timeout. */
static GSocketConnection *
raw_subscriber (guint       port,
                const char *channel)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *command = g_strdup_printf ("*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n",
                                              strlen (channel), channel);
  GSocketConnection *connection;
  GString *reply = g_string_new (NULL);

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, &error);
  g_assert_no_error (error);
  if (connection == NULL)
    return NULL;
  g_socket_set_timeout (g_socket_connection_get_socket (connection),
                        (test_scaled_ms (10000) + 999) / 1000);
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                             command, strlen (command), NULL, NULL, &error);
  g_assert_no_error (error);
  /* The subscribe confirmation: *3 $9 subscribe $N channel :1 */
  while (error == NULL && strstr (reply->str, "\r\n:") == NULL)
    {
      char buffer[256];
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                      buffer, sizeof buffer, NULL, &error);
      if (n <= 0)
        break;
      g_string_append_len (reply, buffer, n);
    }
  g_assert_no_error (error);
  g_string_free (reply, TRUE);
  return connection;
}

/* Reads @connection until a `"requestId":"…"` shows; its value. */
static char *
read_request_id (GSocketConnection *connection)
{
  g_autoptr(GString) seen = g_string_new (NULL);
  g_autoptr(GRegex) regex = g_regex_new ("\"requestId\":\"([^\"]+)\"", 0, 0, NULL);
  g_autoptr(GError) error = NULL;

  for (;;)
    {
      g_autoptr(GMatchInfo) match = NULL;
      char buffer[4096];
      gssize n;

      if (g_regex_match (regex, seen->str, 0, &match))
        return g_match_info_fetch (match, 1);
      n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                               buffer, sizeof buffer, NULL, &error);
      if (n <= 0)
        {
          g_test_fail_printf ("no request seen on the request channel: %s",
                              error != NULL ? error->message : "end of stream");
          return NULL;
        }
      g_string_append_len (seen, buffer, n);
    }
}

/* Reads @connection into @seen until @needle shows; FALSE (the test
 * failed) on its end or timeout. */
static gboolean
read_until (GSocketConnection *connection,
            GString           *seen,
            const char        *needle)
{
  g_autoptr(GError) error = NULL;

  while (strstr (seen->str, needle) == NULL)
    {
      char buffer[4096];
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                      buffer, sizeof buffer, NULL, &error);

      if (n <= 0)
        {
          g_test_fail_printf ("%s not seen: %s", needle, error != NULL ? error->message : "end of stream");
          return FALSE;
        }
      /* msgpack has NULs: kept out of the text searched. */
      for (gssize i = 0; i < n; i++)
        g_string_append_c (seen, buffer[i] != '\0' ? buffer[i] : ' ');
    }
  return TRUE;
}

/* A Node peer's BROADCAST request with ack that the client answers, 20
 * times: the event's arguments (an object) are sent from the Redis
 * thread, the client's ack (an object) is parsed on its session's thread
 * and packed into the BROADCAST_ACK on the Redis thread. Under TSan (with
 * an instrumented json-glib, for their counts): nothing of either tree
 * is referenced by both threads. */
static void
test_broadcast_ack_answered (Fixture       *f,
                             gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(TestWs) ws = sio_loopback_client (&f->lb, "/", &sid);
  g_autoptr(GString) seen = g_string_new (NULL);
  GSocketConnection *subscriber = raw_subscriber (f->redis_port, RESPONSE_CHANNEL);

  g_assert_nonnull (subscriber);
  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *request = g_strdup_printf (
          "{\"uid\":\"zzzzzz\",\"type\":7,\"requestId\":\"ans%u\","
          "\"opts\":{\"rooms\":[],\"except\":[],\"flags\":{\"timeout\":%u}},"
          "\"packet\":{\"type\":2,\"data\":[\"question\",{\"round\":%u,\"list\":[\"a\"]}],\"nsp\":\"/\"}}",
          i, test_scaled_ms (10000), i);
      g_autofree char *expected = g_strdup_printf ("[\"question\",{\"round\":%u,\"list\":[\"a\"]}]", i);
      g_autofree char *message = NULL;
      g_autofree char *answer = NULL;
      g_autofree char *needle = g_strdup_printf ("yes%02u", i);
      guint64 id;

      publish_text (f, REQUEST_CHANNEL, request);
      message = sio_next (ws, TEST_TIMEOUT_MS);
      g_assert_nonnull (message);
      g_assert_true (message[0] == '2');
      id = g_ascii_strtoull (message + 1, NULL, 10);
      g_assert_true (g_str_has_suffix (message, expected));
      answer = g_strdup_printf ("3%" G_GUINT64_FORMAT "[{\"answer\":\"%s\",\"list\":[1,\"two\"]}]",
                                id, needle);
      g_assert_true (sio_send (ws, answer));
      g_assert_true (read_until (subscriber, seen, needle));
      g_string_truncate (seen, 0);
    }
  g_object_unref (subscriber);
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

#define ANSWERERS 20
#define SOCKETS_PER_ANSWER 3000

/* Whoever can subscribe to the request channel raises the number of
 * answers a fetchSockets (or a server-side emit with ack) waits for
 * (PUBSUB NUMSUB), and can publish as many answers: each bounded by the
 * publication bounds, their sum was not. Here 20 subscriptions and 20
 * answers of 3,000 sockets (about 6.5 MB estimated each, 130 MB in all)
 * for one request: before, all of it was kept and returned; now the
 * request fails once its answers pass 64 MiB, and the node goes on. */
static void
test_request_answers_bound (Fixture       *f,
                            gconstpointer  data)
{
  GSocketConnection *subscribers[ANSWERERS] = { NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GString) answer = g_string_new (NULL);
  g_autoptr(JsonArray) sockets = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *request_id = NULL;
  gint64 end;

  socket_io_redis_adapter_set_requests_timeout (SOCKET_IO_REDIS_ADAPTER (f->adapter),
                                                test_scaled_ms (30000));
  for (guint i = 0; i < ANSWERERS; i++)
    {
      subscribers[i] = raw_subscriber (f->redis_port, REQUEST_CHANNEL);
      if (subscribers[i] == NULL)
        goto out;
    }
  socket_io_redis_adapter_fetch_sockets_async (SOCKET_IO_REDIS_ADAPTER (f->adapter), NULL, NULL,
                                               NULL, store_result, &result);
  request_id = read_request_id (subscribers[0]);
  if (request_id == NULL)
    goto out;

  g_string_append_printf (answer, "{\"requestId\":\"%s\",\"sockets\":[", request_id);
  for (guint i = 0; i < SOCKETS_PER_ANSWER; i++)
    g_string_append_printf (answer, "%s{\"id\":\"s%06u\",\"handshake\":{},\"rooms\":[\"r\"],\"data\":{}}",
                            i > 0 ? "," : "", i);
  g_string_append (answer, "]}");
  for (guint i = 0; i < ANSWERERS && result == NULL; i++)
    {
      redis_publish (f->redis_port, RESPONSE_CHANNEL, answer->str, answer->len);
      while (g_main_context_iteration (NULL, FALSE))
        ;
    }

  end = g_get_monotonic_time () + (gint64) test_scaled_ms (30000) * 1000;
  while (result == NULL && g_get_monotonic_time () < end)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (10 * 1000);
  g_assert_nonnull (result);
  if (result == NULL)
    goto out;
  sockets = socket_io_redis_adapter_fetch_sockets_finish (SOCKET_IO_REDIS_ADAPTER (f->adapter),
                                                          result, &error);
  if (sockets != NULL)
    g_test_message ("fetchSockets returned %u sockets", json_array_get_length (sockets));
  g_assert_null (sockets);
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_FAILED);
  if (error != NULL)
    {
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, "64 MiB"));
    }
  for (guint i = 0; i < ANSWERERS; i++)
    g_clear_object (&subscribers[i]);
  /* Redis sees the subscribers go a moment later: until then a
   * publication (here one the node ignores) reaches them too. */
  end = g_get_monotonic_time () + (gint64) test_scaled_ms (10000) * 1000;
  while (redis_publish (f->redis_port, REQUEST_CHANNEL, "{}", 2) > 1 && g_get_monotonic_time () < end)
    g_usleep (10 * 1000);
  assert_alive (f, "answers");

out:
  for (guint i = 0; i < ANSWERERS; i++)
    g_clear_object (&subscribers[i]);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();
  if (!redis_available ("/sio-redis-attack/redis-server"))
    return g_test_run ();
#define ADD(path, func) \
  g_test_add ("/sio-redis-attack/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("deep-json", test_deep_json);
  ADD ("msgpack-tree-bound", test_msgpack_tree_bound);
  ADD ("malformed", test_malformed);
  ADD ("dispose-pending-ack", test_dispose_pending_ack);
  ADD ("broadcast-ack-no-timeout", test_broadcast_ack_no_timeout);
  ADD ("broadcast-ack-answered", test_broadcast_ack_answered);
  ADD ("request-answers-bound", test_request_answers_bound);
  g_test_add_func ("/sio-redis-attack/emitter-not-redis", test_emitter_not_redis);
  return g_test_run ();
}
