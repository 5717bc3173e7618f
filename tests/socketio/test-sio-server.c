/* test-sio-server.c: the Socket.IO server over a real Engine.IO server
 *
 * An EngineIOServer on 127.0.0.1 port 0 with a SocketIOServer on top,
 * driven by raw Engine.IO clients (SioLoopback, sioutil.h; and the
 * polling client of tests/testutil.h) speaking Socket.IO v5 by hand.
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
  SioLoopback lb;
} Fixture;

static void
on_ask_done (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) attachments = NULL;
  g_autoptr(JsonArray) args = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source), result,
                                                                     &attachments, &error);

  if (args != NULL)
    {
      g_autofree char *json = json_of_array (args);

      test_recorder_add (f->lb.rec, "ask-result %s %u", json, attachments->len);
    }
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    test_recorder_add (f->lb.rec, "ask-error timed-out");
  else
    test_recorder_add (f->lb.rec, "ask-error %s", error->message);
}

/* A copy of @args without its first @n elements. */
static JsonArray *
args_from (JsonArray *args,
           guint      n)
{
  JsonArray *out = json_array_new ();

  for (guint i = n; i < json_array_get_length (args); i++)
    json_array_add_element (out, json_node_copy (json_array_get_element (args, i)));
  return out;
}

static gint
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

static void
on_ask_all_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  guint missing = 0;
  g_autoptr(GPtrArray) responses =
    socket_io_broadcast_operator_emit_with_ack_finish (SOCKET_IO_BROADCAST_OPERATOR (source), result,
                                                       &missing, &error);

  g_assert_no_error (error);
  if (responses != NULL)
    {
      g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);

      g_autofree char *joined = NULL;

      for (guint i = 0; i < responses->len; i++)
        g_ptr_array_add (texts, json_of_array (g_ptr_array_index (responses, i)));
      g_ptr_array_sort (texts, compare_strings);
      g_ptr_array_add (texts, NULL);
      joined = g_strjoinv (",", (char **) texts->pdata);
      test_recorder_add (f->lb.rec, "ask-all %u missing=%u %s", responses->len, missing, joined);
    }
}

/* A copy of @node with every `{"_placeholder":true,"num":N}` replaced by
 * the string "<bin:HEX>" of @attachments[N] ("<bad:N>" for a number out
 * of range). */
static JsonNode *
resolve_placeholders (JsonNode  *node,
                      GPtrArray *attachments)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *object = json_node_get_object (node);
      JsonObject *copy;
      GList *members;

      if (json_object_get_size (object) == 2 &&
          json_object_get_boolean_member_with_default (object, "_placeholder", FALSE) &&
          json_object_has_member (object, "num"))
        {
          gint64 num = json_object_get_int_member_with_default (object, "num", -1);
          GString *out;
          const guint8 *data;
          gsize len;

          if (attachments == NULL || num < 0 || num >= attachments->len)
            return json_node_init_string (json_node_alloc (), "<bad>");
          data = g_bytes_get_data (g_ptr_array_index (attachments, num), &len);
          out = g_string_new ("<bin:");
          for (gsize i = 0; i < len; i++)
            g_string_append_printf (out, "%02x", data[i]);
          g_string_append_c (out, '>');
          node = json_node_init_string (json_node_alloc (), out->str);
          g_string_free (out, TRUE);
          return node;
        }
      copy = json_object_new ();
      members = json_object_get_members (object);
      for (GList *l = members; l != NULL; l = l->next)
        json_object_set_member (copy, l->data,
                                resolve_placeholders (json_object_get_member (object, l->data), attachments));
      g_list_free (members);
      node = json_node_init_object (json_node_alloc (), copy);
      json_object_unref (copy);
      return node;
    }
  if (JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);
      JsonArray *copy = json_array_new ();

      for (guint i = 0; i < json_array_get_length (array); i++)
        json_array_add_element (copy, resolve_placeholders (json_array_get_element (array, i), attachments));
      node = json_node_init_array (json_node_alloc (), copy);
      json_array_unref (copy);
      return node;
    }
  return json_node_copy (node);
}

/* Broadcast acks with their binaries: each response with its placeholders
 * resolved against its own attachments, sorted. */
static void
on_ask_all_binary_done (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) attachments = NULL;
  guint missing = 0;
  g_autoptr(GPtrArray) responses =
    socket_io_broadcast_operator_emit_with_ack_finish_full (SOCKET_IO_BROADCAST_OPERATOR (source), result,
                                                            &attachments, &missing, &error);
  g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *joined = NULL;

  g_assert_no_error (error);
  if (responses == NULL)
    return;
  g_assert_nonnull (attachments);
  g_assert_cmpuint (attachments->len, ==, responses->len);
  for (guint i = 0; i < responses->len; i++)
    {
      g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
      g_autoptr(JsonNode) resolved = NULL;

      json_node_set_array (node, g_ptr_array_index (responses, i));
      resolved = resolve_placeholders (node, g_ptr_array_index (attachments, i));
      g_ptr_array_add (texts, json_of_node (resolved));
    }
  g_ptr_array_sort (texts, compare_strings);
  g_ptr_array_add (texts, NULL);
  joined = g_strjoinv (",", (char **) texts->pdata);
  test_recorder_add (f->lb.rec, "ask-all-bin %u missing=%u %s", responses->len, missing, joined);
}

static void
on_ask_cancelled_done (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) args = socket_io_socket_emit_with_ack_finish (SOCKET_IO_SOCKET (source), result,
                                                                     NULL, &error);

  test_recorder_add (f->lb.rec, "ask-cancel %s", args == NULL &&
                     g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ? "cancelled" : "other");
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

  /* The fixture recorded the event. */
  if (strcmp (name, "echo") == 0)
    g_assert_true (socket_io_socket_emit (socket, "echo-back", args, attachments, &error));
  else if (strcmp (name, "ack") == 0 && ack != NULL)
    {
      g_assert_true (socket_io_ack_send (ack, args, attachments, &error));
      g_assert_false (socket_io_ack_send (ack, args, attachments, NULL));
    }
  else if (strcmp (name, "join") == 0)
    {
      g_auto(GStrv) rooms = NULL;

      socket_io_socket_join (socket, arg_string (args, 0));
      rooms = socket_io_socket_get_rooms (socket);
      test_recorder_add (f->lb.rec, "rooms %s %u", arg_string (args, 0), g_strv_length (rooms));
    }
  else if (strcmp (name, "leave") == 0)
    socket_io_socket_leave (socket, arg_string (args, 0));
  else if (strcmp (name, "to") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op = socket_io_socket_to (socket, arg_string (args, 0));
      g_autoptr(JsonArray) rest = args_from (args, 1);
      guint n = 0;

      g_assert_true (socket_io_broadcast_operator_emit (op, "room-msg", rest, attachments, &n, &error));
      test_recorder_add (f->lb.rec, "sent-to %u", n);
    }
  else if (strcmp (name, "nsp-to") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), arg_string (args, 0));
      g_autoptr(JsonArray) rest = args_from (args, 1);

      g_assert_true (socket_io_broadcast_operator_emit (op, "room-msg", rest, attachments, NULL, &error));
    }
  else if (strcmp (name, "set-data") == 0)
    socket_io_socket_set_data (socket, json_array_get_element (args, 0));
  else if (strcmp (name, "get-data") == 0)
    {
      g_autoptr(JsonNode) stored = socket_io_socket_dup_data (socket);
      g_autofree char *text = json_of_node (stored);

      test_recorder_add (f->lb.rec, "data %s", text);
    }
  else if (strcmp (name, "fetch") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), arg_string (args, 0));
      g_autoptr(GPtrArray) sockets = socket_io_broadcast_operator_fetch_sockets (op);

      test_recorder_add (f->lb.rec, "fetched %s %u", arg_string (args, 0), sockets->len);
    }
  else if (strcmp (name, "room-join") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), arg_string (args, 0));

      socket_io_broadcast_operator_sockets_join (op, arg_string (args, 1));
      test_recorder_add (f->lb.rec, "room-joined");
    }
  else if (strcmp (name, "room-leave") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), arg_string (args, 0));

      socket_io_broadcast_operator_sockets_leave (op, arg_string (args, 1));
    }
  else if (strcmp (name, "room-kick") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), arg_string (args, 0));

      socket_io_broadcast_operator_disconnect_sockets (op, FALSE);
    }
  else if (strcmp (name, "vbcast") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_broadcast (socket_io_socket_get_namespace (socket));
      guint n = 0;

      socket_io_broadcast_operator_compress (socket_io_broadcast_operator_local (
        socket_io_broadcast_operator_volatile (socket_io_broadcast_operator_except (op, socket_io_socket_get_id (socket)))),
        TRUE);
      g_assert_true (socket_io_broadcast_operator_emit (op, "v", args, attachments, &n, &error));
      test_recorder_add (f->lb.rec, "vbcast-sent %u", n);
    }
  else if (strcmp (name, "bcast") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op = socket_io_socket_broadcast (socket);

      g_assert_true (socket_io_broadcast_operator_emit (op, "bcast-back", args, attachments, NULL, &error));
    }
  else if (strcmp (name, "ask") == 0)
    socket_io_socket_emit_with_ack (socket, "question", args, attachments, test_scaled_ms (400),
                                    NULL, on_ask_done, f);
  else if (strcmp (name, "ask-all") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_broadcast (socket_io_socket_get_namespace (socket));

      socket_io_broadcast_operator_emit_with_ack (op, "poll", args, attachments, test_scaled_ms (600),
                                                  NULL, on_ask_all_done, f);
    }
  else if (strcmp (name, "ask-all-bin") == 0)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_broadcast (socket_io_socket_get_namespace (socket));

      socket_io_broadcast_operator_emit_with_ack (op, "poll", args, attachments, test_scaled_ms (600),
                                                  NULL, on_ask_all_binary_done, f);
    }
  else if (strcmp (name, "ask-cancel") == 0)
    {
      g_autoptr(GCancellable) cancellable = g_cancellable_new ();

      socket_io_socket_emit_with_ack (socket, "question", args, attachments, 0,
                                      cancellable, on_ask_cancelled_done, f);
      g_cancellable_cancel (cancellable);
    }
  else if (strcmp (name, "bye") == 0)
    socket_io_socket_disconnect (socket, FALSE);
  else if (strcmp (name, "kill") == 0)
    socket_io_socket_disconnect (socket, TRUE);
  g_assert_no_error (error);
}

static void
on_detailed_echo (SocketIOSocket *socket,
                  const char     *name,
                  JsonArray      *args,
                  GPtrArray      *attachments,
                  SocketIOAck    *ack,
                  gpointer        user_data)
{
  Fixture *f = user_data;

  test_recorder_add (f->lb.rec, "detail %s", name);
}

static void
on_disconnecting (SocketIOSocket *socket,
                  const char     *reason,
                  gpointer        user_data)
{
  Fixture *f = user_data;
  g_auto(GStrv) rooms = socket_io_socket_get_rooms (socket);
  const char *id = socket_io_socket_get_id (socket);

  /* The socket's own room is there; report the others. */
  test_recorder_add (f->lb.rec, "disconnecting %s own=%d rooms=%u connected=%d",
                     socket_io_namespace_get_name (socket_io_socket_get_namespace (socket)),
                     g_strv_contains ((const char * const *) rooms, id), g_strv_length (rooms),
                     socket_io_socket_is_connected (socket));
}

static void
on_disconnect (SocketIOSocket *socket,
               const char     *reason,
               gpointer        user_data)
{
  Fixture *f = user_data;

  /* Signals of a socket are emitted in its context, whoever asked. */
  if (!g_main_context_is_owner (socket_io_socket_get_context (socket)))
    test_recorder_add (f->lb.rec, "disconnect outside its context");
}

/* The suite's handlers (the fixture recorded the connection). */
static void
on_connection (SioLoopback    *lb,
               SocketIOSocket *socket,
               gpointer        user_data)
{
  Fixture *f = user_data;

  g_signal_connect (socket, "event", G_CALLBACK (on_event), f);
  g_signal_connect (socket, "event::echo", G_CALLBACK (on_detailed_echo), f);
  g_signal_connect (socket, "disconnecting", G_CALLBACK (on_disconnecting), f);
  g_signal_connect (socket, "disconnect", G_CALLBACK (on_disconnect), f);
}

static gboolean
private_middleware (SocketIONamespace  *nsp,
                    SocketIOSocket     *socket,
                    JsonNode          **error_data,
                    gpointer            user_data,
                    GError            **error)
{
  JsonNode *auth = socket_io_socket_get_auth (socket);
  JsonObject *data;

  g_assert_nonnull (socket_io_socket_get_handshake (socket));
  if (auth != NULL && JSON_NODE_HOLDS_OBJECT (auth) &&
      g_strcmp0 (json_object_get_string_member_with_default (json_node_get_object (auth), "token", ""),
                 "secret") == 0)
    return TRUE;
  data = json_object_new ();
  json_object_set_int_member (data, "code", 42);
  *error_data = json_node_init_object (json_node_alloc (), data);
  json_object_unref (data);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "not authorized");
  return FALSE;
}

typedef struct
{
  SocketIOMiddlewareCall *call;
  char                   *token;
} AsyncAnswer;

/* Answers from another thread, after a while. */
static gpointer
async_answer_thread (gpointer data)
{
  AsyncAnswer *answer = data;

  g_usleep (strcmp (answer->token, "slow") == 0 ? 300000 : 20000);
  if (strcmp (answer->token, "ok") == 0 || strcmp (answer->token, "slow") == 0)
    socket_io_middleware_call_next (answer->call);
  else
    socket_io_middleware_call_refuse (answer->call, "async no", NULL);
  g_object_unref (answer->call);
  g_free (answer->token);
  g_free (answer);
  return NULL;
}

static void
async_middleware (SocketIONamespace      *nsp,
                  SocketIOSocket         *socket,
                  SocketIOMiddlewareCall *call,
                  gpointer                user_data)
{
  JsonNode *auth = socket_io_socket_get_auth (socket);
  AsyncAnswer *answer = g_new0 (AsyncAnswer, 1);
  g_autoptr(SocketIOSocket) same = socket_io_middleware_call_get_socket (call);

  g_assert_true (same == socket);
  answer->call = g_object_ref (call);
  answer->token = g_strdup (auth != NULL && JSON_NODE_HOLDS_OBJECT (auth)
                            ? json_object_get_string_member_with_default (json_node_get_object (auth), "token", "")
                            : "");
  g_thread_unref (g_thread_new ("async-middleware", async_answer_thread, answer));
}

static gboolean
namespace_func (SocketIOServer *server,
                const char     *name,
                JsonNode       *auth,
                gpointer        user_data)
{
  return strcmp (name, "/func-ok") == 0;
}

static void
fixture_setup_with (Fixture *f,
                    guint    connect_timeout)
{
  const char *names[] = { "/", "/custom", "/private", "/async" };

  sio_loopback_init (&f->lb, "connect-timeout", connect_timeout, NULL);
  g_object_set (f->lb.engine, "allow-eio3", TRUE, NULL);
  f->lb.on_connection = on_connection;
  f->lb.user_data = f;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(SocketIONamespace) nsp = sio_loopback_of (&f->lb, names[i]);

      if (i == 2)
        socket_io_namespace_use (nsp, private_middleware, NULL, NULL);
      if (i == 3)
        socket_io_namespace_use_async (nsp, async_middleware, NULL, NULL);
    }
  g_assert_true (socket_io_server_add_namespace_pattern (f->lb.sio, "^/dyn-\\d+$", NULL));
  socket_io_server_set_namespace_func (f->lb.sio, namespace_func, NULL, NULL);
  sio_loopback_watch_dynamic (&f->lb);
  sio_loopback_listen (&f->lb);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  fixture_setup_with (f, 45000);
}

static void
fixture_setup_short (Fixture       *f,
                     gconstpointer  data)
{
  fixture_setup_with (f, 300);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  sio_loopback_clear (&f->lb);
  test_log_check ();
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void
test_connect_auth (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;
  g_autofree char *sid2 = NULL;
  g_autofree char *expected = NULL;

  test_require (ws != NULL);
  sio_connect (ws, "/", "{\"token\":\"abc\"}", &sid, NULL);
  test_require (sid != NULL && sid[0] != '\0');
  test_require (test_sid_is_url_safe (sid));
  expected = g_strdup_printf ("connect / %s {\"token\":\"abc\"}", sid);
  sio_loopback_expect (&f->lb, "%s", expected);

  /* A second namespace on the same session, without auth: a new sid. */
  sio_connect (ws, "/custom", NULL, &sid2, NULL);
  test_require (sid2 != NULL && sid2[0] != '\0');
  g_assert_cmpstr (sid, !=, sid2);
  g_free (expected);
  expected = g_strdup_printf ("connect /custom %s null", sid2);
  sio_loopback_expect (&f->lb, "%s", expected);
}

static void
test_invalid_namespace (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);

  test_require (ws != NULL);
  test_require (sio_send (ws, "0/nope,"));
  expect_next (ws, "4/nope,{\"message\":\"Invalid namespace\"}");
  /* The session stays usable. */
  sio_connect (ws, "/", NULL, NULL, NULL);
  test_require (sio_send (ws, "2[\"echo\",1]"));
  expect_next (ws, "2[\"echo-back\",1]");
}

static void
test_events (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);

  test_require (ws != NULL);
  sio_connect (ws, "/", NULL, NULL, NULL);
  sio_connect (ws, "/custom", NULL, NULL, NULL);
  test_require (sio_send (ws, "2[\"echo\",1,{\"a\":\"b\"},[true,null]]"));
  expect_next (ws, "2[\"echo-back\",1,{\"a\":\"b\"},[true,null]]");
  sio_loopback_expect_event (&f->lb, "/", "echo", "[1,{\"a\":\"b\"},[true,null]]");
  /* The detailed handler saw it too; another event does not reach it. */
  sio_loopback_expect (&f->lb, "detail echo");
  test_require (sio_send (ws, "2/custom,[\"echo\",\"x\"]"));
  expect_next (ws, "2/custom,[\"echo-back\",\"x\"]");
  test_require (sio_send (ws, "2[\"other\"]"));
  sio_loopback_expect_event (&f->lb, "/", "other", "[]");
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "detail "), ==, 2);
}

static void
test_binary (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  static const guint8 one[] = { 1, 2, 3 };
  static const guint8 two[] = { 0xff, 0 };

  test_require (ws != NULL);
  sio_connect (ws, "/", NULL, NULL, NULL);
  test_require (sio_send (ws, "52-[\"echo\",{\"_placeholder\":true,\"num\":0},{\"x\":[{\"_placeholder\":true,\"num\":1}]}]"));
  test_require (test_ws_send_binary (ws, one, sizeof one));
  test_require (test_ws_send_binary (ws, two, sizeof two));
  expect_next (ws, "52-[\"echo-back\",{\"_placeholder\":true,\"num\":0},{\"x\":[{\"_placeholder\":true,\"num\":1}]}]");
  expect_next (ws, "<bin:010203>");
  expect_next (ws, "<bin:ff00>");
  g_assert_true (test_recorder_wait_count (f->lb.rec, "event / echo ", 1, TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_index_prefix (f->lb.rec, "event / echo [{\"_placeholder\":true,\"num\":0},{\"x\":[{\"_placeholder\":true,\"num\":1}]}] +2"), >=, 0);
}

static void
test_acks (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  static const guint8 one[] = { 7, 7 };
  gint64 start;
  g_autofree char *question = NULL;

  test_require (ws != NULL);
  sio_connect (ws, "/", NULL, NULL, NULL);

  /* Client to server, plain and binary. */
  test_require (sio_send (ws, "21[\"ack\",\"x\",2]"));
  expect_next (ws, "31[\"x\",2]");
  test_require (sio_send (ws, "51-9007199254740991[\"ack\",{\"_placeholder\":true,\"num\":0}]"));
  test_require (test_ws_send_binary (ws, one, sizeof one));
  expect_next (ws, "61-9007199254740991[{\"_placeholder\":true,\"num\":0}]");
  expect_next (ws, "<bin:0707>");

  /* Server to client: answered. */
  test_require (sio_send (ws, "2[\"ask\",\"q\"]"));
  expect_next (ws, "20[\"question\",\"q\"]");
  test_require (sio_send (ws, "30[\"answer\",{\"n\":1}]"));
  sio_loopback_expect (&f->lb, "ask-result [\"answer\",{\"n\":1}] 0");

  /* An ack for an id nobody waits for is dropped; the session lives. */
  test_require (sio_send (ws, "30[\"again\"]"));

  /* Server to client: not answered, times out. */
  start = g_get_monotonic_time ();
  test_require (sio_send (ws, "2[\"ask\",\"q2\"]"));
  question = sio_next (ws, TEST_TIMEOUT_MS);
  g_assert_cmpstr (question, ==, "21[\"question\",\"q2\"]");
  sio_loopback_expect (&f->lb, "ask-error timed-out");
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 400 * 1000);
  /* A late answer is dropped too. */
  test_require (sio_send (ws, "31[\"late\"]"));
  test_require (sio_send (ws, "2[\"echo\",\"alive\"]"));
  expect_next (ws, "2[\"echo-back\",\"alive\"]");
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "ask-"), ==, 2);
}

static void
test_ack_disconnect (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);

  test_require (ws != NULL);
  sio_connect (ws, "/", NULL, NULL, NULL);
  test_require (sio_send (ws, "2[\"ask\",\"q\"]"));
  expect_next (ws, "20[\"question\",\"q\"]");
  test_require (sio_send (ws, "1"));
  sio_loopback_expect (&f->lb, "ask-error Socket disconnected");
}

static void
test_rooms_broadcast (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) c = sio_loopback_open (&f->lb);
  g_autofree char *sid_b = NULL;
  g_autofree char *sent = NULL;

  test_require (a != NULL && b != NULL && c != NULL);
  sio_connect (a, "/", NULL, NULL, NULL);
  sio_connect (b, "/", NULL, &sid_b, NULL);
  sio_connect (c, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"join\",\"r1\"]"));
  test_require (sio_send (b, "2[\"join\",\"r1\"]"));
  g_assert_true (test_recorder_wait_count (f->lb.rec, "rooms r1 2", 2, TEST_TIMEOUT_MS));

  /* C (not in r1) to r1: A and B get it. */
  test_require (sio_send (c, "2[\"to\",\"r1\",\"hi\",3]"));
  expect_next (a, "2[\"room-msg\",\"hi\",3]");
  expect_next (b, "2[\"room-msg\",\"hi\",3]");
  sio_loopback_expect (&f->lb, "sent-to 2");

  /* A to r1 from inside: B only (the sender is excluded). */
  test_require (sio_send (a, "2[\"to\",\"r1\",\"from-a\"]"));
  expect_next (b, "2[\"room-msg\",\"from-a\"]");
  sio_loopback_expect (&f->lb, "sent-to 1");

  /* A socket's own room: C to B by id. */
  sent = g_strdup_printf ("2[\"nsp-to\",\"%s\",\"direct\"]", sid_b);
  test_require (sio_send (c, sent));
  expect_next (b, "2[\"room-msg\",\"direct\"]");

  /* Broadcast excluding the sender. */
  test_require (sio_send (a, "2[\"bcast\",\"yo\"]"));
  expect_next (b, "2[\"bcast-back\",\"yo\"]");
  expect_next (c, "2[\"bcast-back\",\"yo\"]");

  /* B leaves r1; C to r1 again reaches A only. */
  test_require (sio_send (b, "2[\"leave\",\"r1\"]"));
  test_require (sio_send (b, "2[\"echo\",\"sync\"]"));
  expect_next (b, "2[\"echo-back\",\"sync\"]");
  test_require (sio_send (c, "2[\"to\",\"r1\",\"again\"]"));
  expect_next (a, "2[\"room-msg\",\"again\"]");
  sio_loopback_expect (&f->lb, "sent-to 1");

  /* Nothing else was queued for A and C: the next thing each sees is its echo. */
  test_require (sio_send (a, "2[\"echo\",\"end\"]"));
  expect_next (a, "2[\"echo-back\",\"end\"]");
  test_require (sio_send (c, "2[\"echo\",\"end\"]"));
  expect_next (c, "2[\"echo-back\",\"end\"]");
  test_require (sio_send (b, "2[\"echo\",\"end\"]"));
  expect_next (b, "2[\"echo-back\",\"end\"]");

  /* Rooms are still known in ::disconnecting and gone in ::disconnect. */
  test_require (sio_send (a, "1"));
  sio_loopback_expect (&f->lb, "disconnecting / own=1 rooms=2 connected=1");
  sio_loopback_expect (&f->lb, "disconnect / client namespace disconnect rooms=0");
}

/* Broadcast with acks: every answer collected, the silent one counted. */
static void
test_broadcast_acks (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) c = sio_loopback_open (&f->lb);
  g_autofree char *qa = NULL;
  g_autofree char *qb = NULL;
  g_autofree char *qc = NULL;
  g_autofree char *reply = NULL;

  test_require (a != NULL && b != NULL && c != NULL);
  sio_connect (a, "/", NULL, NULL, NULL);
  sio_connect (b, "/", NULL, NULL, NULL);
  sio_connect (c, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"ask-all\",7]"));
  qa = sio_next (a, TEST_TIMEOUT_MS);
  qb = sio_next (b, TEST_TIMEOUT_MS);
  qc = sio_next (c, TEST_TIMEOUT_MS);
  g_assert_cmpstr (qa, ==, "20[\"poll\",7]");
  g_assert_cmpstr (qb, ==, "20[\"poll\",7]");
  g_assert_cmpstr (qc, ==, "20[\"poll\",7]");
  test_require (sio_send (a, "30[\"a\"]"));
  test_require (sio_send (b, "30[\"b\"]"));
  /* (socket.data, on the way) */
  test_require (sio_send (c, "2[\"get-data\"]"));
  sio_loopback_expect (&f->lb, "data null");
  test_require (sio_send (c, "2[\"set-data\",{\"user\":\"c\",\"n\":[1]}]"));
  test_require (sio_send (c, "2[\"get-data\"]"));
  sio_loopback_expect (&f->lb, "data {\"user\":\"c\",\"n\":[1]}");
  sio_loopback_expect (&f->lb, "ask-all 2 missing=1 [\"a\"],[\"b\"]");

  /* A cancelled server ack. */
  test_require (sio_send (a, "2[\"ask-cancel\"]"));
  sio_loopback_expect (&f->lb, "ask-cancel cancelled");
  reply = sio_next (a, TEST_TIMEOUT_MS);
  g_assert_cmpstr (reply, ==, "21[\"question\"]");
}

/* Broadcast acks carrying binaries (BINARY_ACK): each client's bytes reach
 * the result intact, next to its own placeholders; a plain ack and a
 * silent client still count. */
static void
test_broadcast_binary_acks (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) c = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) d = sio_loopback_open (&f->lb);
  static const guint8 a0[] = { 0xaa, 0x01 };
  static const guint8 b0[] = { 0xbb, 0x02 };
  static const guint8 b1[] = { 0xbb, 0x03, 0x00, 0x04 };
  static const guint8 sent[] = { 0x51, 0x52, 0x53 };

  test_require (a != NULL && b != NULL && c != NULL && d != NULL);
  sio_connect (a, "/", NULL, NULL, NULL);
  sio_connect (b, "/", NULL, NULL, NULL);
  sio_connect (c, "/", NULL, NULL, NULL);
  sio_connect (d, "/", NULL, NULL, NULL);
  /* The broadcast itself carries a binary too. */
  test_require (sio_send (a, "51-[\"ask-all-bin\",{\"_placeholder\":true,\"num\":0}]"));
  test_require (test_ws_send_binary (a, sent, sizeof sent));
  expect_next (a, "51-0[\"poll\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (a, "<bin:515253>");
  expect_next (b, "51-0[\"poll\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (b, "<bin:515253>");
  expect_next (c, "51-0[\"poll\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (c, "<bin:515253>");
  expect_next (d, "51-0[\"poll\",{\"_placeholder\":true,\"num\":0}]");
  expect_next (d, "<bin:515253>");

  /* A: one binary first; B: two, nested and in reverse order; C: plain
   * JSON; D does not answer. */
  test_require (sio_send (a, "61-0[{\"_placeholder\":true,\"num\":0},\"a\"]"));
  test_require (test_ws_send_binary (a, a0, sizeof a0));
  test_require (sio_send (b, "62-0[\"b\",{\"x\":[{\"_placeholder\":true,\"num\":1}]},{\"_placeholder\":true,\"num\":0}]"));
  test_require (test_ws_send_binary (b, b0, sizeof b0));
  test_require (test_ws_send_binary (b, b1, sizeof b1));
  test_require (sio_send (c, "30[\"c\"]"));
  g_assert_true (test_recorder_wait (f->lb.rec,
                                     "ask-all-bin 3 missing=1 "
                                     "[\"<bin:aa01>\",\"a\"],"
                                     "[\"b\",{\"x\":[\"<bin:bb030004>\"]},\"<bin:bb02>\"],"
                                     "[\"c\"]",
                                     TEST_TIMEOUT_MS));

  /* The sessions are fine: the next thing each sees is its echo. */
  test_require (sio_send (b, "2[\"echo\",\"end\"]"));
  expect_next (b, "2[\"echo-back\",\"end\"]");
}

/* A volatile broadcast skips a recipient that has not taken the previous
 * one: a polling client that does not poll. */
static void
test_volatile (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(TestHttp) http = test_http_new (f->lb.port);
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) get = NULL;
  g_autoptr(TestResponse) get2 = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) packets2 = NULL;

  test_require (ws != NULL && open != NULL);
  sio_connect (ws, "/", NULL, NULL, NULL);
  target = test_eio_target (4, "polling", open->sid);
  post = test_http_post (http, target, TEST_S ("40"));
  test_require (post != NULL && post->status == 200);
  get = test_http_get (http, target);
  test_require (get != NULL);
  packets = test_eio_poll_packets (get, 4);
  test_require (packets != NULL && packets->len == 1);

  /* The poller's queue is empty: the first reaches it; then it holds one. */
  test_require (sio_send (ws, "2[\"vbcast\",1]"));
  sio_loopback_expect (&f->lb, "vbcast-sent 1");
  test_require (sio_send (ws, "2[\"vbcast\",2]"));
  sio_loopback_expect (&f->lb, "vbcast-sent 0");
  get2 = test_http_get (http, target);
  test_require (get2 != NULL);
  packets2 = test_eio_poll_packets (get2, 4);
  test_require (packets2 != NULL);
  g_assert_cmpuint (packets2->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (packets2, 0), ==, "42[\"v\",1]");
}

/* fetch_sockets and join/leave/disconnect over a room selection. */
static void
test_room_operations (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) c = sio_loopback_open (&f->lb);

  test_require (a != NULL && b != NULL && c != NULL);
  sio_connect (a, "/", NULL, NULL, NULL);
  sio_connect (b, "/", NULL, NULL, NULL);
  sio_connect (c, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"join\",\"r\"]"));
  test_require (sio_send (b, "2[\"join\",\"r\"]"));
  g_assert_true (test_recorder_wait_count (f->lb.rec, "rooms r 2", 2, TEST_TIMEOUT_MS));

  test_require (sio_send (c, "2[\"fetch\",\"r\"]"));
  sio_loopback_expect (&f->lb, "fetched r 2");
  test_require (sio_send (c, "2[\"fetch\",\"nobody\"]"));
  sio_loopback_expect (&f->lb, "fetched nobody 0");

  /* Everyone in r joins r2. */
  test_require (sio_send (c, "2[\"room-join\",\"r\",\"r2\"]"));
  sio_loopback_expect (&f->lb, "room-joined");
  test_require (sio_send (c, "2[\"nsp-to\",\"r2\",\"x\"]"));
  expect_next (a, "2[\"room-msg\",\"x\"]");
  expect_next (b, "2[\"room-msg\",\"x\"]");
  test_require (sio_send (c, "2[\"fetch\",\"r2\"]"));
  sio_loopback_expect (&f->lb, "fetched r2 2");

  /* Everyone in r2 is disconnected from the namespace (each in its own
   * context); C is not. */
  test_require (sio_send (c, "2[\"room-kick\",\"r2\"]"));
  expect_next (a, "1");
  expect_next (b, "1");
  g_assert_true (test_recorder_wait_count (f->lb.rec, "disconnect / server namespace disconnect", 2, TEST_TIMEOUT_MS));
  test_require (sio_send (c, "2[\"fetch\",\"r\"]"));
  sio_loopback_expect (&f->lb, "fetched r 0");
  test_require (sio_send (c, "2[\"echo\",\"c\"]"));
  expect_next (c, "2[\"echo-back\",\"c\"]");
}

/* Concurrent broadcasts from two senders reach two receivers in one order. */
static void
test_broadcast_order (Fixture       *f,
                      gconstpointer  data)
{
  TestWs *ws[4];
  g_autoptr(GPtrArray) seen0 = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) seen1 = g_ptr_array_new_with_free_func (g_free);
  GPtrArray *seen[2] = { seen0, seen1 };
  const guint n = 30;

  for (guint i = 0; i < 4; i++)
    {
      ws[i] = sio_loopback_open (&f->lb);
      test_require (ws[i] != NULL);
      sio_connect (ws[i], "/", NULL, NULL, NULL);
    }
  for (guint i = 0; i < 2; i++)
    {
      test_require (sio_send (ws[i + 2], "2[\"join\",\"watch\"]"));
    }
  g_assert_true (test_recorder_wait_count (f->lb.rec, "rooms watch", 2, TEST_TIMEOUT_MS));
  for (guint k = 0; k < n; k++)
    for (guint s = 0; s < 2; s++)
      {
        g_autofree char *msg = g_strdup_printf ("2[\"nsp-to\",\"watch\",%u]", s * 1000 + k);

        test_require (sio_send (ws[s], msg));
      }
  for (guint i = 0; i < 2; i++)
    for (guint k = 0; k < 2 * n; k++)
      {
        char *got = sio_next (ws[i + 2], TEST_TIMEOUT_MS);

        test_require (got != NULL);
        g_ptr_array_add (seen[i], got);
      }
  for (guint k = 0; k < 2 * n; k++)
    g_assert_cmpstr (g_ptr_array_index (seen[0], k), ==, g_ptr_array_index (seen[1], k));
  for (guint i = 0; i < 4; i++)
    test_ws_free (ws[i]);
}

static void
test_disconnect_reasons (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) c = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) d = sio_loopback_open (&f->lb);

  test_require (a != NULL && b != NULL && c != NULL && d != NULL);

  /* Client namespace disconnect: the session stays. */
  sio_connect (a, "/custom", NULL, NULL, NULL);
  test_require (sio_send (a, "1/custom,"));
  sio_loopback_expect (&f->lb, "disconnect /custom client namespace disconnect rooms=0");

  /* Server namespace disconnect without closing the transport. */
  sio_connect (a, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"bye\"]"));
  expect_next (a, "1");
  sio_loopback_expect (&f->lb, "disconnect / server namespace disconnect rooms=0");
  sio_connect (a, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"echo\",1]"));
  expect_next (a, "2[\"echo-back\",1]");

  /* Server disconnect closing the transport: every namespace of it. */
  test_recorder_clear (f->lb.rec);
  sio_connect (b, "/", NULL, NULL, NULL);
  sio_connect (b, "/custom", NULL, NULL, NULL);
  test_require (sio_send (b, "2/custom,[\"kill\"]"));
  g_assert_true (sio_wait_closed (b, TEST_TIMEOUT_MS));
  g_assert_true (test_recorder_wait_count (f->lb.rec, "disconnect ", 2, TEST_TIMEOUT_MS));
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "disconnect / server namespace disconnect"), ==, 1);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "disconnect /custom server namespace disconnect"), ==, 1);

  /* Transport close: the client closes its WebSocket. */
  test_recorder_clear (f->lb.rec);
  sio_connect (c, "/", NULL, NULL, NULL);
  test_require (test_ws_send_close (c, 1000));
  sio_loopback_expect (&f->lb, "disconnect / transport close rooms=0");

  /* Transport error: the connection breaks without a close frame. */
  test_recorder_clear (f->lb.rec);
  sio_connect (d, "/", NULL, NULL, NULL);
  test_ws_drop (d, TRUE);
  sio_loopback_expect (&f->lb, "disconnect / transport error rooms=0");

  /* A is untouched. */
  test_require (sio_send (a, "2[\"echo\",2]"));
  expect_next (a, "2[\"echo-back\",2]");
}

static gpointer
disconnect_thread (gpointer data)
{
  socket_io_socket_disconnect (data, FALSE);
  return NULL;
}

/* socket_io_socket_disconnect() from a thread that is not the socket's:
 * it happens in the socket's context (the signals there, `closing` and
 * the client's state touched by that thread only). It used to run in the
 * caller's thread. */
static void
test_disconnect_other_thread (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;
  g_autoptr(SocketIOSocket) socket = NULL;
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/");
  GThread *thread;

  test_require (a != NULL);
  sio_connect (a, "/", NULL, &sid, NULL);
  test_require (sid != NULL);
  socket = socket_io_namespace_lookup_socket (nsp, sid);
  test_require (socket != NULL);
  test_recorder_clear (f->lb.rec);

  thread = g_thread_new ("disconnect", disconnect_thread, socket);
  g_thread_join (thread);
  expect_next (a, "1");
  sio_loopback_expect (&f->lb, "disconnect / server namespace disconnect rooms=0");
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "disconnect outside its context"), ==, 0);
  g_assert_false (socket_io_socket_is_connected (socket));

  /* The session stays: the client connects again and is served. */
  sio_connect (a, "/", NULL, NULL, NULL);
  test_require (sio_send (a, "2[\"echo\",3]"));
  expect_next (a, "2[\"echo-back\",3]");
}

static void
test_malformed (Fixture       *f,
                gconstpointer  data)
{
  static const char *bad[] = {
    "2[bad",                       /* JSON */
    "9",                           /* type */
    "2[\"echo\"",                  /* unterminated */
    "511-[\"echo\"]",              /* attachments over the decoder's bound (10) */
    "2[\"echo\"]",                 /* an event before any CONNECT: invalid state */
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(TestWs) good = sio_loopback_open (&f->lb);
      g_autoptr(TestWs) evil = sio_loopback_open (&f->lb);

      test_require (good != NULL && evil != NULL);
      sio_connect (good, "/", NULL, NULL, NULL);
      if (i + 1 < G_N_ELEMENTS (bad))
        sio_connect (evil, "/", NULL, NULL, NULL);
      test_recorder_clear (f->lb.rec);
      test_require (sio_send (evil, bad[i]));
      if (!sio_wait_closed (evil, TEST_TIMEOUT_MS))
        g_test_fail_printf ("“%s” did not close its session", bad[i]);
      if (i + 1 < G_N_ELEMENTS (bad))
        g_assert_true (test_recorder_wait_count (f->lb.rec, "disconnect / ", 1, TEST_TIMEOUT_MS));
      test_require (sio_send (good, "2[\"echo\",\"still here\"]"));
      expect_next (good, "2[\"echo-back\",\"still here\"]");
      g_assert_cmpuint (test_recorder_count (f->lb.rec, "disconnect "), <=, 1);
    }
}

static void
test_malformed_reason (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(TestWs) evil = sio_loopback_open (&f->lb);
  static const guint8 stray[] = { 1 };

  test_require (evil != NULL);
  sio_connect (evil, "/", NULL, NULL, NULL);
  /* A binary message with no binary packet waiting. */
  test_require (test_ws_send_binary (evil, stray, sizeof stray));
  g_assert_true (sio_wait_closed (evil, TEST_TIMEOUT_MS));
  sio_loopback_expect (&f->lb, "disconnect / parse error rooms=0");
}

static void
test_middleware (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;

  test_require (ws != NULL);
  test_require (sio_send (ws, "0/private,{\"token\":\"nope\"}"));
  expect_next (ws, "4/private,{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
  test_require (sio_send (ws, "0/private,"));
  expect_next (ws, "4/private,{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
  g_assert_cmpint (test_recorder_index_prefix (f->lb.rec, "connect /private"), <, 0);
  sio_connect (ws, "/private", "{\"token\":\"secret\"}", &sid, NULL);
  test_require (sid != NULL && sid[0] != '\0');
  sio_loopback_expect (&f->lb, "connect /private %s {\"token\":\"secret\"}", sid);
}

static void
test_connect_timeout (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(TestWs) idle = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) joined = sio_loopback_open (&f->lb);
  gint64 start = g_get_monotonic_time ();

  test_require (idle != NULL && joined != NULL);
  sio_connect (joined, "/", NULL, NULL, NULL);
  /* 300 ms after the session opened, the idle one is closed... */
  g_assert_true (sio_wait_closed (idle, TEST_TIMEOUT_MS));
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 250 * 1000);
  /* ...and the one that joined a namespace is not. */
  test_require (sio_send (joined, "2[\"echo\",\"ok\"]"));
  expect_next (joined, "2[\"echo-back\",\"ok\"]");
}

/* Every Engine.IO session of the Socket.IO server, weakly. */
typedef struct
{
  GMutex     lock;
  GPtrArray *refs;  /* GWeakRef* */
} EioRefs;

static void
eio_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static void
on_eio_connection_weak (EngineIOServer *engine,
                        EngineIOSocket *eio,
                        gpointer        data)
{
  EioRefs *refs = data;
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, eio);
  g_mutex_lock (&refs->lock);
  g_ptr_array_add (refs->refs, ref);
  g_mutex_unlock (&refs->lock);
}

static guint
eio_refs_alive (EioRefs *refs)
{
  guint alive = 0;

  g_mutex_lock (&refs->lock);
  for (guint i = 0; i < refs->refs->len; i++)
    {
      g_autoptr(EngineIOSocket) eio = g_weak_ref_get (g_ptr_array_index (refs->refs, i));

      alive += eio != NULL;
    }
  g_mutex_unlock (&refs->lock);
  return alive;
}

/* The SioClient holds its Engine.IO socket, and the socket's message
 * function holds the SioClient: a cycle that only the socket's drop of the
 * function after ::close breaks. LeakSanitizer cannot see it (every
 * instance with a signal handler is reachable from GObject's global handler
 * table), so this looks at the sockets themselves. With the long connect
 * timeout (@data NULL): a client that never connected to a namespace, one
 * that joined one, one that closed its session, then the shutdown; with the
 * short one, also a client closed by the connect timeout. */
static void
test_clients_released (Fixture       *f,
                       gconstpointer  data)
{
  gboolean short_timeout = data != NULL;
  EioRefs refs = { .refs = g_ptr_array_new_with_free_func (eio_ref_free) };
  g_autoptr(TestWs) idle = NULL;
  g_autoptr(TestWs) joined = NULL;
  g_autoptr(TestWs) left = NULL;
  gint64 end;

  g_mutex_init (&refs.lock);
  g_signal_connect (f->lb.engine, "connection", G_CALLBACK (on_eio_connection_weak), &refs);
  idle = sio_loopback_open (&f->lb);
  joined = sio_loopback_open (&f->lb);
  left = sio_loopback_open (&f->lb);
  test_require (idle != NULL && joined != NULL && left != NULL);
  sio_connect (joined, "/", NULL, NULL, NULL);
  test_require (sio_send (joined, "2[\"echo\",\"ok\"]"));
  expect_next (joined, "2[\"echo-back\",\"ok\"]");
  sio_connect (left, "/", NULL, NULL, NULL);
  test_require (test_ws_send_text (left, "1"));
  g_assert_true (sio_wait_closed (left, TEST_TIMEOUT_MS));
  if (short_timeout)
    g_assert_true (sio_wait_closed (idle, TEST_TIMEOUT_MS));
  g_assert_cmpuint (refs.refs->len, ==, 3);

  engine_io_server_close (f->lb.engine);
  end = g_get_monotonic_time () + TEST_TIMEOUT_MS * 1000;
  while (eio_refs_alive (&refs) > 0 && g_get_monotonic_time () < end)
    g_usleep (10 * 1000);
  g_assert_cmpuint (eio_refs_alive (&refs), ==, 0);

  g_signal_handlers_disconnect_by_data (f->lb.engine, &refs);
  g_ptr_array_unref (refs.refs);
  g_mutex_clear (&refs.lock);
}

static void
test_polling (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(TestHttp) http = test_http_new (f->lb.port);
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (http, 4);
  g_autofree char *target = NULL;
  g_autoptr(TestResponse) post = NULL;
  g_autoptr(TestResponse) get = NULL;
  g_autoptr(TestResponse) post2 = NULL;
  g_autoptr(TestResponse) get2 = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) packets2 = NULL;

  test_require (open != NULL);
  target = test_eio_target (4, "polling", open->sid);
  post = test_http_post (http, target, TEST_S ("40{\"k\":1}"));
  test_require (post != NULL && post->status == 200);
  get = test_http_get (http, target);
  test_require (get != NULL);
  packets = test_eio_poll_packets (get, 4);
  test_require (packets != NULL && packets->len == 1);
  g_assert_true (g_str_has_prefix (g_ptr_array_index (packets, 0), "40{\"sid\":\""));
  /* The server's "auth"-less app sends nothing else; an echo comes back. */
  post2 = test_http_post (http, target, TEST_S ("42[\"echo\",\"p\"]"));
  test_require (post2 != NULL && post2->status == 200);
  get2 = test_http_get (http, target);
  test_require (get2 != NULL);
  packets2 = test_eio_poll_packets (get2, 4);
  test_require (packets2 != NULL && packets2->len >= 1);
  g_assert_cmpstr (g_ptr_array_index (packets2, 0), ==, "42[\"echo-back\",\"p\"]");
}

/* Asynchronous middleware answering from another thread. */
static void
test_async_middleware (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) eager = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) gone = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;

  test_require (ws != NULL && eager != NULL && gone != NULL);
  test_require (sio_send (ws, "0/async,{\"token\":\"bad\"}"));
  expect_next (ws, "4/async,{\"message\":\"async no\"}");
  sio_connect (ws, "/async", "{\"token\":\"ok\"}", &sid, NULL);
  test_require (sid != NULL && sid[0] != '\0');
  test_require (sio_send (ws, "2/async,[\"echo\",\"a\"]"));
  expect_next (ws, "2/async,[\"echo-back\",\"a\"]");

  /* A packet for the namespace while its CONNECT waits closes the client. */
  test_require (sio_send (eager, "0/async,{\"token\":\"slow\"}"));
  test_require (sio_send (eager, "2/async,[\"echo\",\"early\"]"));
  g_assert_true (sio_wait_closed (eager, TEST_TIMEOUT_MS));

  /* A client gone while its CONNECT waits: the late answer is dropped. */
  test_require (sio_send (gone, "0/async,{\"token\":\"slow\"}"));
  test_ws_drop (gone, TRUE);
  test_require (sio_send (ws, "2/async,[\"echo\",\"b\"]"));
  expect_next (ws, "2/async,[\"echo-back\",\"b\"]");
  g_usleep (400000);  /* let the slow answers come (nothing to assert but no crash or leak) */
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "connect /async"), ==, 1);
}

/* Dynamic namespaces: a pattern, a function, and their bound. */
static void
test_dynamic_namespaces (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;

  test_require (a != NULL && b != NULL);
  sio_connect (a, "/dyn-1", NULL, &sid, NULL);
  test_require (sid != NULL);
  sio_loopback_expect (&f->lb, "new-namespace /dyn-1");
  test_require (sio_send (a, "2/dyn-1,[\"echo\",1]"));
  expect_next (a, "2/dyn-1,[\"echo-back\",1]");
  test_require (sio_send (a, "0/dyn-x,"));
  expect_next (a, "4/dyn-x,{\"message\":\"Invalid namespace\"}");
  sio_connect (a, "/func-ok", NULL, NULL, NULL);
  sio_loopback_expect (&f->lb, "new-namespace /func-ok");
  test_require (sio_send (a, "0/func-no,"));
  expect_next (a, "4/func-no,{\"message\":\"Invalid namespace\"}");

  /* 6 namespaces exist now: no seventh, but the existing ones still work. */
  g_object_set (f->lb.sio, "max-namespaces", 6, NULL);
  test_require (sio_send (b, "0/dyn-2,"));
  expect_next (b, "4/dyn-2,{\"message\":\"Invalid namespace\"}");
  sio_connect (b, "/dyn-1", NULL, NULL, NULL);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "new-namespace "), ==, 2);
}

/* A ::new-namespace handler that takes a while to add its middleware. */
static void
on_new_gated_namespace (SocketIOServer    *server,
                        SocketIONamespace *nsp,
                        gpointer           user_data)
{
  Fixture *f = user_data;

  if (!g_str_has_prefix (socket_io_namespace_get_name (nsp), "/dyn-7"))
    return;
  test_recorder_add (f->lb.rec, "configuring %s", socket_io_namespace_get_name (nsp));
  g_usleep (500 * 1000);
  socket_io_namespace_use (nsp, private_middleware, NULL, NULL);
}

/* Two clients join a new dynamic namespace at once: the second waits for
 * the middleware the first one's ::new-namespace handler adds. */
static void
test_dynamic_namespace_configuring (Fixture       *f,
                                    gconstpointer  data)
{
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);

  g_test_summary ("A second client joins a dynamic namespace while the first one's "
                  "::new-namespace handler is still adding the namespace's middleware: it "
                  "waits for the handler and is refused by the middleware (it was let in "
                  "without it)");
  test_require (a != NULL && b != NULL);
  g_signal_connect (f->lb.sio, "new-namespace", G_CALLBACK (on_new_gated_namespace), f);

  test_require (sio_send (a, "0/dyn-7,"));
  sio_loopback_expect (&f->lb, "configuring /dyn-7");
  test_require (sio_send (b, "0/dyn-7,"));
  expect_next (b, "4/dyn-7,{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
  expect_next (a, "4/dyn-7,{\"message\":\"not authorized\",\"data\":{\"code\":42}}");
  /* With the token, both are let in. */
  sio_connect (b, "/dyn-7", "{\"token\":\"secret\"}", NULL, NULL);
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "configuring "), ==, 1);
}

/* A middleware that joins rooms (and leaves one of them again); one
 * after it refuses a client whose auth says so. */
static gboolean
joining_middleware (SocketIONamespace  *nsp,
                    SocketIOSocket     *socket,
                    JsonNode          **error_data,
                    gpointer            user_data,
                    GError            **error)
{
  socket_io_socket_join (socket, "vip");
  socket_io_socket_join (socket, "tmp");
  socket_io_socket_join (socket, "vip");
  socket_io_socket_leave (socket, "tmp");
  return TRUE;
}

static gboolean
refusing_middleware (SocketIONamespace  *nsp,
                     SocketIOSocket     *socket,
                     JsonNode          **error_data,
                     gpointer            user_data,
                     GError            **error)
{
  JsonNode *auth = socket_io_socket_get_auth (socket);

  if (auth != NULL && JSON_NODE_HOLDS_OBJECT (auth) &&
      json_object_get_boolean_member_with_default (json_node_get_object (auth), "refuse", FALSE))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED, "refused");
      return FALSE;
    }
  return TRUE;
}

static void
on_early_connection (SocketIONamespace *nsp,
                     SocketIOSocket    *socket,
                     gpointer           user_data)
{
  Fixture *f = user_data;
  g_auto(GStrv) rooms = socket_io_socket_get_rooms (socket);
  g_autoptr(GPtrArray) sorted = g_ptr_array_new ();
  g_autofree char *joined = NULL;

  for (guint i = 0; rooms[i] != NULL; i++)
    if (strcmp (rooms[i], socket_io_socket_get_id (socket)) != 0)
      g_ptr_array_add (sorted, rooms[i]);
  g_ptr_array_sort (sorted, compare_strings);
  g_ptr_array_add (sorted, NULL);
  joined = g_strjoinv (",", (char **) sorted->pdata);
  test_recorder_add (f->lb.rec, "early-rooms %s", joined);
}

/* Rooms joined by a middleware are joined with the connection. */
static void
test_middleware_join (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/early");
  g_autoptr(SocketIOBroadcastOperator) vip = NULL;
  g_autoptr(TestWs) a = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) b = sio_loopback_open (&f->lb);
  g_autofree char *sid = NULL;
  g_autofree char *sid_b = NULL;
  guint recipients = 0;

  g_test_summary ("A middleware joins rooms (and leaves one): the socket is in them when "
                  "`connection` runs and gets what is broadcast to them; a socket a later "
                  "middleware refuses joins none (joins in a middleware did nothing)");
  test_require (a != NULL && b != NULL);
  socket_io_namespace_use (nsp, joining_middleware, NULL, NULL);
  socket_io_namespace_use (nsp, refusing_middleware, NULL, NULL);
  g_signal_connect (nsp, "connection", G_CALLBACK (on_early_connection), f);

  test_require (sio_send (b, "0/early,{\"refuse\":true}"));
  expect_next (b, "4/early,{\"message\":\"refused\"}");
  sio_connect (a, "/early", NULL, &sid, NULL);
  test_require (sid != NULL);
  sio_loopback_expect (&f->lb, "early-rooms vip");
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "early-rooms "), ==, 1);

  /* Only the connected socket is in the room. */
  vip = socket_io_namespace_to (nsp, "vip");
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonArray) args = json_array_new ();

    json_array_add_string_element (args, "hi");
    g_assert_true (socket_io_broadcast_operator_emit (vip, "news", args, NULL, &recipients, &error));
    g_assert_no_error (error);
  }
  g_assert_cmpuint (recipients, ==, 1);
  expect_next (a, "2/early,[\"news\",\"hi\"]");
  /* Without the refusal, the second client gets in (and in the room). */
  sio_connect (b, "/early", NULL, &sid_b, NULL);
  g_assert_nonnull (sid_b);
  g_assert_true (test_recorder_wait_count (f->lb.rec, "early-rooms vip", 2, TEST_TIMEOUT_MS));
}

static void
on_ordered_connection (SocketIONamespace *nsp,
                       SocketIOSocket    *socket,
                       gpointer           user_data)
{
  Fixture *f = user_data;
  EngineIOSocket *eio = socket_io_socket_get_engine_socket (socket);

  test_recorder_add (f->lb.rec, "queued %u", engine_io_socket_get_send_queue_length (eio));
  g_assert_true (socket_io_socket_emit (socket, "hello", NULL, NULL, NULL));
}

/* `connection` runs once the CONNECT reply is on its way; what the client
 * pipelined after its CONNECT reaches the handlers connected there. */
static void
test_connection_after_reply (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(SocketIONamespace) nsp = socket_io_server_of (f->lb.sio, "/custom");
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autofree char *reply = NULL;

  g_test_summary ("Over WebSocket, `connection` runs once the CONNECT reply has been handed "
                  "to the transport (it ran with the reply still queued, and what it emitted "
                  "went out in the same write: the official protocol test suite, which reads "
                  "one message per read, missed it); events the client pipelined after its "
                  "CONNECT reach the handlers `connection` connects");
  test_require (ws != NULL);
  g_signal_connect (nsp, "connection", G_CALLBACK (on_ordered_connection), f);
  test_require (sio_send (ws, "0/custom,"));
  test_require (sio_send (ws, "2/custom,[\"echo\",1]"));
  test_require (sio_send (ws, "2/custom,[\"echo\",2]"));
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "0/custom,{\"sid\":"));
  expect_next (ws, "2/custom,[\"hello\"]");
  expect_next (ws, "2/custom,[\"echo-back\",1]");
  expect_next (ws, "2/custom,[\"echo-back\",2]");
  sio_loopback_expect (&f->lb, "queued 0");
}

/* The bounds of one client: namespaces joined at once, pending server acks. */
static void
test_bounds (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(TestWs) ws = sio_loopback_open (&f->lb);
  g_autoptr(TestWs) other = sio_loopback_open (&f->lb);

  test_require (ws != NULL && other != NULL);
  g_object_set (f->lb.sio, "max-pending-acks", 2, "max-namespaces-per-client", 2, NULL);
  sio_connect (other, "/", NULL, NULL, NULL);

  sio_connect (ws, "/", NULL, NULL, NULL);
  for (guint i = 0; i < 3; i++)
    test_require (sio_send (ws, "2[\"ask\",\"q\"]"));
  expect_next (ws, "20[\"question\",\"q\"]");
  expect_next (ws, "21[\"question\",\"q\"]");
  /* The third has no room: it fails at once, and nothing is sent. */
  sio_loopback_expect (&f->lb, "ask-error Too many pending acks");
  test_require (sio_send (ws, "30[]"));
  sio_loopback_expect (&f->lb, "ask-result [] 0");
  test_require (sio_send (ws, "2[\"ask\",\"again\"]"));
  expect_next (ws, "22[\"question\",\"again\"]");

  /* Two namespaces are fine; a third gets CONNECT_ERROR and the session ends. */
  sio_connect (ws, "/custom", NULL, NULL, NULL);
  test_require (sio_send (ws, "0/private,{\"token\":\"secret\"}"));
  expect_next (ws, "4/private,{\"message\":\"Too many namespaces\"}");
  g_assert_true (sio_wait_closed (ws, TEST_TIMEOUT_MS));
  sio_loopback_expect (&f->lb, "disconnect /custom forced server close rooms=0");
  /* Its two pending acks failed (timed out, or on disconnection): with the
   * refused one, three errors. The other client is unaffected. */
  g_assert_true (test_recorder_wait_count (f->lb.rec, "ask-error ", 3, TEST_TIMEOUT_MS));
  g_assert_cmpuint (test_recorder_count (f->lb.rec, "ask-error timed-out") +
                    test_recorder_count (f->lb.rec, "ask-error Socket disconnected"), ==, 2);
  test_require (sio_send (other, "2[\"echo\",\"fine\"]"));
  expect_next (other, "2[\"echo-back\",\"fine\"]");
}

/* Protocol v4: socket.io 2.x clients over Engine.IO v3. */
static void
test_protocol_v4 (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (3, "websocket", NULL);
  g_autoptr(TestWs) ws = test_ws_connect (f->lb.port, target, NULL, 0, NULL, &error);
  g_autofree char *open = NULL;
  g_autoptr(TestOpenPacket) parsed = NULL;
  g_autofree char *expected = NULL;

  g_assert_no_error (error);
  test_require (ws != NULL);
  open = test_ws_read_text (ws, TEST_TIMEOUT_MS);
  test_require (open != NULL && open[0] == '0');
  parsed = test_open_packet_parse (open + 1, &error);
  test_require (parsed != NULL);

  /* Connected to "/" without asking, with no sid in the reply; the
   * socket's id is the Engine.IO session's. */
  expect_next (ws, "0");
  expected = g_strdup_printf ("connect / %s null", parsed->sid);
  sio_loopback_expect (&f->lb, "%s", expected);
  test_require (sio_send (ws, "2[\"echo\",1,\"a\"]"));
  expect_next (ws, "2[\"echo-back\",1,\"a\"]");
  test_require (sio_send (ws, "21[\"ack\",{\"x\":1}]"));
  expect_next (ws, "31[{\"x\":1}]");

  /* Another namespace, with its query as auth; id "/nsp#<engine sid>". */
  test_require (sio_send (ws, "0/custom?token=abc"));
  expect_next (ws, "0/custom,");
  g_free (expected);
  expected = g_strdup_printf ("connect /custom /custom#%s {\"token\":\"abc\"}", parsed->sid);
  sio_loopback_expect (&f->lb, "%s", expected);
  test_require (sio_send (ws, "2/custom,[\"echo\",2]"));
  expect_next (ws, "2/custom,[\"echo-back\",2]");

  /* Refusals. */
  test_require (sio_send (ws, "0/nope"));
  expect_next (ws, "4/nope,{\"message\":\"Invalid namespace\"}");
  test_require (sio_send (ws, "0/private?token=no"));
  expect_next (ws, "4/private,{\"code\":42}");
  test_require (sio_send (ws, "0/private?token=secret"));
  expect_next (ws, "0/private,");

  test_require (sio_send (ws, "1/custom,"));
  sio_loopback_expect (&f->lb, "disconnect /custom client namespace disconnect rooms=0");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/sio-server/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("connect-auth", test_connect_auth);
  ADD ("invalid-namespace", test_invalid_namespace);
  ADD ("events", test_events);
  ADD ("binary", test_binary);
  ADD ("acks", test_acks);
  ADD ("ack-disconnect", test_ack_disconnect);
  ADD ("rooms-broadcast", test_rooms_broadcast);
  ADD ("broadcast-order", test_broadcast_order);
  ADD ("room-operations", test_room_operations);
  ADD ("broadcast-acks", test_broadcast_acks);
  ADD ("broadcast-binary-acks", test_broadcast_binary_acks);
  ADD ("volatile", test_volatile);
  ADD ("disconnect-reasons", test_disconnect_reasons);
  ADD ("disconnect-other-thread", test_disconnect_other_thread);
  ADD ("malformed", test_malformed);
  ADD ("malformed-reason", test_malformed_reason);
  ADD ("middleware", test_middleware);
  ADD ("polling", test_polling);
  ADD ("protocol-v4", test_protocol_v4);
  ADD ("bounds", test_bounds);
  ADD ("dynamic-namespaces", test_dynamic_namespaces);
  ADD ("dynamic-namespace-configuring", test_dynamic_namespace_configuring);
  ADD ("middleware-join", test_middleware_join);
  ADD ("connection-after-reply", test_connection_after_reply);
  ADD ("async-middleware", test_async_middleware);
#undef ADD
  g_test_add ("/sio-server/connect-timeout", Fixture, NULL, fixture_setup_short,
              test_connect_timeout, fixture_teardown);
  g_test_add ("/sio-server/clients-released", Fixture, NULL, fixture_setup,
              test_clients_released, fixture_teardown);
  g_test_add ("/sio-server/clients-released-connect-timeout", Fixture, "short", fixture_setup_short,
              test_clients_released, fixture_teardown);
  return g_test_run ();
}
