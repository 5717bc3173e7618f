/* test-chat.c: the demo chat's room (src/demo/chat-room.c), without a
 * network or a browser: clients are arrays of the frames they were sent.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <json-glib/json-glib.h>

#include "chat-room.h"

/* A client: what the room sent it, parsed. */
typedef struct
{
  GMutex     lock;
  GPtrArray *frames;   /* (lock) JsonNode* */
  guint      next;     /* (lock) the first frame not yet looked at */
} Client;

typedef struct
{
  ChatRoom *room;
  gint64    now;       /* the fake monotonic clock, µs */
  gint64    real;      /* the fake wall clock, µs */
  gboolean  clock_runs;  /* the monotonic clock jumps 1 s per reading */
} Fixture;

static gint64
fake_monotonic (gpointer user_data)
{
  Fixture *fixture = user_data;

  /* The room reads it under its lock: no two threads at once. */
  if (fixture->clock_runs)
    fixture->now += G_USEC_PER_SEC;
  return fixture->now;
}

static gint64
fake_real (gpointer user_data)
{
  Fixture *fixture = user_data;

  return fixture->real;
}

static void
fixture_setup_history (Fixture *fixture,
                       guint    history)
{
  fixture->now = 1000 * G_USEC_PER_SEC;
  fixture->real = G_GINT64_CONSTANT (1795000000123456);
  fixture->room = chat_room_new (history);
  chat_room_set_clocks (fixture->room, fake_monotonic, fake_real, fixture);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  /* @data is the history length + 1, or NULL for the default. */
  fixture_setup_history (fixture, data != NULL ? GPOINTER_TO_UINT (data) - 1 : CHAT_DEFAULT_HISTORY);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_clear_pointer (&fixture->room, chat_room_unref);
}

static void
client_send (const char *json,
             gpointer    user_data)
{
  Client *client = user_data;
  g_autoptr(GError) error = NULL;
  JsonNode *node = json_from_string (json, &error);

  g_assert_no_error (error);
  g_assert_nonnull (node);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (node));
  g_mutex_lock (&client->lock);
  g_ptr_array_add (client->frames, node);
  g_mutex_unlock (&client->lock);
}

static Client *
client_new (void)
{
  Client *client = g_new0 (Client, 1);

  g_mutex_init (&client->lock);
  client->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) json_node_unref);
  return client;
}

static void
client_free (gpointer data)
{
  Client *client = data;

  g_ptr_array_unref (client->frames);
  g_mutex_clear (&client->lock);
  g_free (client);
}

/* A session whose frames go to a new client, which the session frees. */
static ChatSession *
connect_client (Fixture  *fixture,
                Client  **out_client)
{
  Client *client = client_new ();

  *out_client = client;
  return chat_session_new (fixture->room, client_send, client, client_free);
}

static guint
client_pending (Client *client)
{
  guint n;

  g_mutex_lock (&client->lock);
  n = client->frames->len - client->next;
  g_mutex_unlock (&client->lock);
  return n;
}

/* The next frame, which must have type @type. */
static JsonObject *
client_expect (Client     *client,
               const char *type)
{
  JsonNode *node;
  JsonObject *object;

  g_mutex_lock (&client->lock);
  if (client->next >= client->frames->len)
    g_error ("expected a “%s” frame, got none", type);
  node = client->frames->pdata[client->next++];
  g_mutex_unlock (&client->lock);

  object = json_node_get_object (node);
  g_assert_true (json_object_has_member (object, "type"));
  g_assert_cmpstr (json_object_get_string_member (object, "type"), ==, type);
  return object;
}

static void
client_expect_error (Client     *client,
                     const char *code)
{
  JsonObject *object = client_expect (client, "error");

  g_assert_cmpstr (json_object_get_string_member (object, "code"), ==, code);
  g_assert_cmpuint (strlen (json_object_get_string_member (object, "message")), >, 0);
}

static void
client_expect_nothing (Client *client)
{
  g_assert_cmpuint (client_pending (client), ==, 0);
}

static void
send_json (ChatSession *session,
           const char  *format,
           ...) G_GNUC_PRINTF (2, 3);

static void
send_json (ChatSession *session,
           const char  *format,
           ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  chat_session_receive (session, text);
}

static void
send_login (ChatSession *session,
            const char  *name)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, "login");
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, name);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  text = json_to_string (root, FALSE);
  chat_session_receive (session, text);
}

static void
send_message (ChatSession *session,
              const char  *message)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, "message");
  json_builder_set_member_name (builder, "text");
  json_builder_add_string_value (builder, message);
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  text = json_to_string (root, FALSE);
  chat_session_receive (session, text);
}

/* A logged-in session; its welcome is consumed. */
static ChatSession *
login_client (Fixture     *fixture,
              const char  *name,
              Client     **out_client)
{
  ChatSession *session = connect_client (fixture, out_client);

  send_login (session, name);
  client_expect (*out_client, "welcome");
  return session;
}

static void
assert_string_array (JsonArray          *array,
                     const char * const *expected)
{
  g_assert_cmpuint (json_array_get_length (array), ==, g_strv_length ((GStrv) expected));
  for (guint i = 0; expected[i] != NULL; i++)
    g_assert_cmpstr (json_array_get_string_element (array, i), ==, expected[i]);
}

/* Logging in */

static void
test_login_welcome (Fixture       *fixture,
                    gconstpointer  data)
{
  Client *alice;
  g_autoptr(ChatSession) session = connect_client (fixture, &alice);
  JsonObject *welcome;
  const char * const users[] = { "alice", NULL };

  g_test_summary ("A login is answered with a welcome: the name, the users, the count, the history");

  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 0);
  send_login (session, "alice");
  welcome = client_expect (alice, "welcome");
  g_assert_cmpstr (json_object_get_string_member (welcome, "name"), ==, "alice");
  assert_string_array (json_object_get_array_member (welcome, "users"), users);
  g_assert_cmpint (json_object_get_int_member (welcome, "count"), ==, 1);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (welcome, "history")), ==, 0);
  client_expect_nothing (alice);
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 1);
}

static void
test_login_trim (Fixture       *fixture,
                 gconstpointer  data)
{
  Client *client;
  g_autoptr(ChatSession) session = connect_client (fixture, &client);
  g_autofree char *name = NULL;

  g_test_summary ("Names are trimmed of surrounding whitespace, Unicode spaces included");

  send_login (session, " \t\u3000 Zoë Ω \n ");
  g_assert_cmpstr (json_object_get_string_member (client_expect (client, "welcome"), "name"), ==,
                   "Zoë Ω");
  name = chat_session_dup_name (session);
  g_assert_cmpstr (name, ==, "Zoë Ω");
}

static void
test_login_bad_name (Fixture       *fixture,
                     gconstpointer  data)
{
  const char *bad[] = {
    "", "   ", "\t\n", "a\nb", "a\tb", "\x01" "bob", "bob\x7f" "x", "a\u2028b",
    "123456789012345678901234567890123",  /* 33 */
    "<img src=x onerror=window.__xss=1>",  /* 34 */
  };
  const char *good[] = {
    "x", "12345678901234567890123456789012",  /* 32 */
    "éééééééééééééééééééééééééééééééé",  /* 32 code points, 64 bytes */
    "<img src=x onerror=__xss=1>",
  };
  Client *client;
  g_autoptr(ChatSession) session = connect_client (fixture, &client);

  g_test_summary ("Names are 1 to 32 code points after trimming, without control characters");

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("bad name %" G_GSIZE_FORMAT, i);
      send_login (session, bad[i]);
      client_expect_error (client, "bad-name");
      g_assert_false (chat_normalize_name (bad[i], NULL));
    }
  /* Not a string at all is a malformed frame. */
  send_json (session, "{\"type\":\"login\",\"name\":42}");
  client_expect_error (client, "bad-message");
  send_json (session, "{\"type\":\"login\"}");
  client_expect_error (client, "bad-message");
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 0);

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autofree char *normalized = NULL;
      g_assert_true (chat_normalize_name (good[i], &normalized));
      g_assert_cmpstr (normalized, ==, good[i]);
    }
  send_login (session, good[2]);
  client_expect (client, "welcome");
}

static void
test_login_name_taken (Fixture       *fixture,
                             gconstpointer  data)
{
  Client *a, *b, *c;
  ChatSession *first = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) second = connect_client (fixture, &b);
  g_autoptr(ChatSession) third = connect_client (fixture, &c);
  JsonObject *welcome;

  g_test_summary ("A name in use is refused, also with other whitespace; it is free again after its user left");

  send_login (second, "alice");
  client_expect_error (b, "name-taken");
  send_login (second, "  alice ");
  client_expect_error (b, "name-taken");
  client_expect_nothing (a);
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 1);

  /* Names are compared exactly: another case is another name. */
  send_login (third, "Alice");
  client_expect (c, "welcome");
  client_expect (a, "joined");

  chat_session_free (first);
  client_expect (c, "left");
  send_login (second, "alice");
  welcome = client_expect (b, "welcome");
  g_assert_cmpint (json_object_get_int_member (welcome, "count"), ==, 2);
}

static void
test_login_twice (Fixture       *fixture,
                  gconstpointer  data)
{
  Client *a;
  g_autoptr(ChatSession) session = login_client (fixture, "alice", &a);

  g_test_summary ("A second login on the same connection is refused");

  send_login (session, "bob");
  client_expect_error (a, "bad-message");
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 1);
}

/* Joining and leaving */

static void
test_join_leave (Fixture       *fixture,
                 gconstpointer  data)
{
  Client *a, *b, *c, *lurker;
  ChatSession *alice = login_client (fixture, "alice", &a);
  ChatSession *bob = connect_client (fixture, &b);
  ChatSession *nobody = connect_client (fixture, &lurker);
  ChatSession *carol;
  JsonObject *frame;
  const char * const users[] = { "alice", "bob", NULL };
  g_auto(GStrv) online = NULL;

  g_test_summary ("Joined and left notices go to the others with the count; the welcome lists who is online");

  send_login (bob, "bob");
  frame = client_expect (b, "welcome");
  assert_string_array (json_object_get_array_member (frame, "users"), users);
  g_assert_cmpint (json_object_get_int_member (frame, "count"), ==, 2);
  frame = client_expect (a, "joined");
  g_assert_cmpstr (json_object_get_string_member (frame, "name"), ==, "bob");
  g_assert_cmpint (json_object_get_int_member (frame, "count"), ==, 2);
  client_expect_nothing (b);
  client_expect_nothing (lurker);  /* not logged in: hears nothing */

  carol = login_client (fixture, "carol", &c);
  g_assert_cmpint (json_object_get_int_member (client_expect (a, "joined"), "count"), ==, 3);
  g_assert_cmpint (json_object_get_int_member (client_expect (b, "joined"), "count"), ==, 3);
  online = chat_room_dup_users (fixture->room);
  g_assert_cmpstrv (online, ((const char * const[]) { "alice", "bob", "carol", NULL }));

  chat_session_free (bob);
  frame = client_expect (a, "left");
  g_assert_cmpstr (json_object_get_string_member (frame, "name"), ==, "bob");
  g_assert_cmpint (json_object_get_int_member (frame, "count"), ==, 2);
  frame = client_expect (c, "left");
  g_assert_cmpint (json_object_get_int_member (frame, "count"), ==, 2);

  /* A connection that never logged in leaves silently. */
  chat_session_free (nobody);
  client_expect_nothing (a);
  client_expect_nothing (c);
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 2);

  chat_session_free (alice);
  g_assert_cmpint (json_object_get_int_member (client_expect (c, "left"), "count"), ==, 1);
  chat_session_free (carol);
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 0);
}

/* Messages */

static void
test_message_broadcast (Fixture       *fixture,
                        gconstpointer  data)
{
  Client *a, *b, *lurker;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) bob = login_client (fixture, "bob", &b);
  g_autoptr(ChatSession) nobody = connect_client (fixture, &lurker);
  const char *text = "hello <b>world</b> & \"you\" \u2764";

  g_test_summary ("A message goes to everyone logged in, its sender included, with name, text and time in ms");

  client_expect (a, "joined");
  send_message (alice, text);
  for (Client **c = (Client *[]) { a, b, NULL }; *c != NULL; c++)
    {
      JsonObject *frame = client_expect (*c, "message");
      g_assert_cmpstr (json_object_get_string_member (frame, "name"), ==, "alice");
      g_assert_cmpstr (json_object_get_string_member (frame, "text"), ==, text);
      g_assert_cmpint (json_object_get_int_member (frame, "time"), ==, fixture->real / 1000);
      client_expect_nothing (*c);
    }
  client_expect_nothing (lurker);
}

static void
test_message_invalid (Fixture       *fixture,
                      gconstpointer  data)
{
  Client *a, *b;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) bob = login_client (fixture, "bob", &b);

  g_test_summary ("Messages without a string text, or with only whitespace, are refused to their sender only");

  client_expect (a, "joined");
  send_json (alice, "{\"type\":\"message\"}");
  client_expect_error (a, "bad-message");
  send_json (alice, "{\"type\":\"message\",\"text\":7}");
  client_expect_error (a, "bad-message");
  send_json (alice, "{\"type\":\"message\",\"text\":null}");
  client_expect_error (a, "bad-message");
  send_json (alice, "{\"type\":\"message\",\"text\":[\"x\"]}");
  client_expect_error (a, "bad-message");
  send_json (alice, "{\"type\":\"message\",\"text\":\"\"}");
  client_expect_error (a, "bad-message");
  send_json (alice, "{\"type\":\"message\",\"text\":\" \\n\\t \"}");
  client_expect_error (a, "bad-message");
  client_expect_nothing (a);
  client_expect_nothing (b);

  /* Unknown members are ignored. */
  send_json (alice, "{\"type\":\"message\",\"text\":\"ok\",\"extra\":{\"x\":1}}");
  client_expect (a, "message");
  client_expect (b, "message");
}

static void
test_not_logged_in (Fixture       *fixture,
                    gconstpointer  data)
{
  Client *a, *b;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) nobody = connect_client (fixture, &b);

  g_test_summary ("Messages and typing before a login are refused with not-logged-in");

  send_message (nobody, "hi");
  client_expect_error (b, "not-logged-in");
  send_json (nobody, "{\"type\":\"typing\"}");
  client_expect_error (b, "not-logged-in");
  send_json (nobody, "{\"type\":\"stop-typing\"}");
  client_expect_error (b, "not-logged-in");
  client_expect_nothing (a);
  client_expect_nothing (b);
}

static void
test_typing (Fixture       *fixture,
             gconstpointer  data)
{
  Client *a, *b, *c;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) bob = login_client (fixture, "bob", &b);
  g_autoptr(ChatSession) carol = login_client (fixture, "carol", &c);

  g_test_summary ("Typing and stop-typing go to the others, not back to the typist");

  client_expect (a, "joined");
  client_expect (a, "joined");
  client_expect (b, "joined");

  send_json (alice, "{\"type\":\"typing\"}");
  g_assert_cmpstr (json_object_get_string_member (client_expect (b, "typing"), "name"), ==, "alice");
  g_assert_cmpstr (json_object_get_string_member (client_expect (c, "typing"), "name"), ==, "alice");
  client_expect_nothing (a);

  send_json (alice, "{\"type\":\"stop-typing\"}");
  g_assert_cmpstr (json_object_get_string_member (client_expect (b, "stop-typing"), "name"), ==, "alice");
  g_assert_cmpstr (json_object_get_string_member (client_expect (c, "stop-typing"), "name"), ==, "alice");
  client_expect_nothing (a);
}

/* Validation */

static void
test_validation_shapes (Fixture       *fixture,
                        gconstpointer  data)
{
  const struct
  {
    const char *frame;
    const char *code;
  } cases[] = {
    { "", "bad-json" },
    { "   ", "bad-json" },
    { "nope", "bad-json" },
    { "{", "bad-json" },
    { "{\"type\":\"login\",}x", "bad-json" },
    { "{\"type\":\"login\"} {\"type\":\"login\"}", "bad-json" },
    { "\xff\xfe{}", "bad-json" },
    { "{\"type\":\"message\",\"text\":\"\xc3\x28\"}", "bad-json" },
    /* json-glib would take these; JSON does not. */
    { "{'type':'dance'}", "bad-json" },
    { "{\"type\":\"dance\"} /* comment */", "bad-json" },
    { "{\"type\":\"dance\",\"n\":0x10}", "bad-json" },
    { "{\"type\":\"dance\",\"n\":01}", "bad-json" },
    { "{\"type\":\"dance\",\"n\":.5}", "bad-json" },
    { "{\"type\":\"dance\",\"n\":1.}", "bad-json" },
    { "{\"type\":\"dance\",\"n\":NaN}", "bad-json" },
    { "{\"type\":\"da\tnce\"}", "bad-json" },
    { "{\"type\":\"\\x41\"}", "bad-json" },
    { "{\"type\":\"\\u12\"}", "bad-json" },
    { "{\"type\":\"dance\",}", "bad-json" },
    { "[1,]", "bad-json" },
    { "{\"type\":\"message\",\"text\":\"\\ud800\"}", "bad-json" },
    /* JSON, but not the protocol's. */
    { " \r\n{\"type\":\"dance\",\"n\":-1.5e+3,\"o\":{\"a\":[true,false,null,\"\\u00e9\\n\"]}} \n", "unknown-type" },
    { "\"login\"", "bad-message" },
    { "42", "bad-message" },
    { "null", "bad-message" },
    { "[{\"type\":\"login\",\"name\":\"x\"}]", "bad-message" },
    { "{}", "bad-message" },
    { "{\"type\":null}", "bad-message" },
    { "{\"type\":1}", "bad-message" },
    { "{\"type\":{\"a\":1}}", "bad-message" },
    { "{\"type\":\"dance\"}", "unknown-type" },
    { "{\"type\":\"LOGIN\",\"name\":\"x\"}", "unknown-type" },
    { "{\"type\":\"welcome\"}", "unknown-type" },
    { "{\"type\":\"\"}", "unknown-type" },
  };
  Client *client;
  g_autoptr(ChatSession) session = connect_client (fixture, &client);

  g_test_summary ("Frames that are not JSON objects with a known string type get the matching error");

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *escaped = g_strescape (cases[i].frame, NULL);

      g_test_message ("frame %" G_GSIZE_FORMAT ": %s", i, escaped);
      /* Past the rate limit's burst: keep the bucket full. */
      fixture->now += G_USEC_PER_SEC;
      chat_session_receive (session, cases[i].frame);
      client_expect_error (client, cases[i].code);
      client_expect_nothing (client);
    }

  chat_session_receive_binary (session);
  client_expect_error (client, "bad-message");
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 0);
}

static void
test_validation_too_long (Fixture       *fixture,
                          gconstpointer  data)
{
  Client *a;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  const char *prefix = "{\"type\":\"message\",\"text\":\"";
  const char *suffix = "\"}";
  gsize room_for_text = CHAT_MAX_FRAME_CHARS - strlen (prefix) - strlen (suffix);
  g_autoptr(GString) frame = g_string_new (prefix);
  JsonObject *message;

  g_test_summary ("Frames of up to 2000 code points are accepted, longer ones refused with too-long");

  /* Exactly 2000 code points, two bytes each in the text. */
  for (gsize i = 0; i < room_for_text; i++)
    g_string_append (frame, "é");
  g_string_append (frame, suffix);
  g_assert_cmpint (g_utf8_strlen (frame->str, -1), ==, CHAT_MAX_FRAME_CHARS);
  chat_session_receive (alice, frame->str);
  message = client_expect (a, "message");
  g_assert_cmpint (g_utf8_strlen (json_object_get_string_member (message, "text"), -1), ==, room_for_text);

  /* One more is too many. */
  g_string_insert (frame, strlen (prefix), "x");
  chat_session_receive (alice, frame->str);
  client_expect_error (a, "too-long");

  /* Long garbage is refused for its length before anything else. */
  g_string_set_size (frame, 0);
  for (gsize i = 0; i < 100000; i++)
    g_string_append_c (frame, '[');
  chat_session_receive (alice, frame->str);
  client_expect_error (a, "too-long");
  client_expect_nothing (a);
}

static void
test_validation_garbage (Fixture       *fixture,
                         gconstpointer  data)
{
  Client *client;
  g_autoptr(ChatSession) session = connect_client (fixture, &client);
  const char *pieces[] = {
    "{", "}", "[", "]", "\"", ":", ",", "type", "login", "message", "name", "text",
    "typing", "null", "1e999", "-", "\\u0000", "\\ud800", "\\", "é", " ", "\xff", "true",
  };

  g_test_summary ("Random frames built from JSON pieces never crash the room and always get at most one answer");

  fixture->clock_runs = TRUE;
  for (guint n = 0; n < 5000; n++)
    {
      g_autoptr(GString) frame = g_string_new (NULL);
      guint length = g_test_rand_int_range (0, 24);
      guint before, after;

      for (guint i = 0; i < length; i++)
        g_string_append (frame, pieces[g_test_rand_int_range (0, G_N_ELEMENTS (pieces))]);
      before = client_pending (client);
      chat_session_receive (session, frame->str);
      after = client_pending (client);
      g_assert_cmpuint (after - before, <=, 1);
    }
  /* Deep nesting within the size limit is parsed (and refused: not an object). */
  {
    g_autoptr(GString) deep = g_string_new (NULL);
    for (guint i = 0; i < 1000; i++)
      g_string_append_c (deep, '[');
    for (guint i = 0; i < 1000; i++)
      g_string_append_c (deep, ']');
    client->next = client->frames->len;
    chat_session_receive (session, deep->str);
    client_expect_error (client, "bad-message");
    client_expect_nothing (client);
  }
}

/* Rate limit */

static void
test_rate_limit (Fixture       *fixture,
                 gconstpointer  data)
{
  Client *a, *b;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) bob = login_client (fixture, "bob", &b);

  g_test_summary ("Each user has a token bucket of 10 frames per second with bursts of 20, and is told once when throttled");

  client_expect (a, "joined");
  /* The login took one token: 19 more go through at once. */
  for (guint i = 0; i < CHAT_RATE_BURST - 1; i++)
    send_json (alice, "{\"type\":\"typing\"}");
  for (guint i = 0; i < CHAT_RATE_BURST - 1; i++)
    client_expect (b, "typing");
  client_expect_nothing (a);

  /* The next ones are dropped; only the first drop is reported. */
  for (guint i = 0; i < 5; i++)
    send_message (alice, "spam");
  client_expect_error (a, "rate-limited");
  client_expect_nothing (a);
  client_expect_nothing (b);

  /* Bob has his own bucket. */
  send_message (bob, "still here");
  client_expect (a, "message");
  client_expect (b, "message");

  /* 100 ms refill one token. */
  fixture->now += 100 * 1000;
  send_message (alice, "one");
  client_expect (a, "message");
  client_expect (b, "message");
  send_message (alice, "two");
  client_expect_error (a, "rate-limited");
  client_expect_nothing (a);

  /* A second refills ten; the bucket never holds more than 20. */
  fixture->now += G_USEC_PER_SEC;
  for (guint i = 0; i < 11; i++)
    send_json (alice, "{\"type\":\"stop-typing\"}");
  for (guint i = 0; i < 10; i++)
    client_expect (b, "stop-typing");
  client_expect_nothing (b);
  client_expect_error (a, "rate-limited");

  fixture->now += 60 * G_USEC_PER_SEC;
  for (guint i = 0; i < CHAT_RATE_BURST + 1; i++)
    send_json (alice, "{\"type\":\"stop-typing\"}");
  client_expect_error (a, "rate-limited");
  client_expect_nothing (a);
}

/* History */

static void
test_history (Fixture       *fixture,
              gconstpointer  data)
{
  Client *a, *n;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) newcomer = connect_client (fixture, &n);
  JsonObject *welcome;
  JsonArray *history;

  g_test_summary ("A newcomer is shown the last N messages, oldest first");

  for (guint i = 1; i <= 5; i++)
    {
      g_autofree char *text = g_strdup_printf ("message %u", i);
      fixture->real += 1000;
      send_message (alice, text);
    }
  send_login (newcomer, "newcomer");
  welcome = client_expect (n, "welcome");
  history = json_object_get_array_member (welcome, "history");
  g_assert_cmpuint (json_array_get_length (history), ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      JsonObject *entry = json_array_get_object_element (history, i);
      g_autofree char *text = g_strdup_printf ("message %u", i + 3);

      g_assert_cmpstr (json_object_get_string_member (entry, "name"), ==, "alice");
      g_assert_cmpstr (json_object_get_string_member (entry, "text"), ==, text);
      g_assert_cmpint (json_object_get_int_member (entry, "time"), ==,
                       (G_GINT64_CONSTANT (1795000000123456) + (i + 3) * 1000) / 1000);
      g_assert_cmpuint (json_object_get_size (entry), ==, 3);
    }
}

static void
test_history_none (Fixture       *fixture,
                   gconstpointer  data)
{
  Client *a, *n;
  g_autoptr(ChatSession) alice = login_client (fixture, "alice", &a);
  g_autoptr(ChatSession) newcomer = connect_client (fixture, &n);

  g_test_summary ("With a history of 0, newcomers are shown nothing");

  send_message (alice, "gone");
  send_login (newcomer, "newcomer");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (client_expect (n, "welcome"),
                                                                         "history")), ==, 0);
}

/* Threads */

#define N_THREADS 8
#define N_MESSAGES 200

typedef struct
{
  Fixture     *fixture;
  ChatSession *session;
  guint        index;
} Worker;

static gpointer
worker_run (gpointer data)
{
  Worker *worker = data;

  for (guint i = 0; i < N_MESSAGES; i++)
    {
      g_autofree char *text = g_strdup_printf ("%u:%u", worker->index, i);
      send_message (worker->session, text);
      if (i % 50 == 0)
        send_json (worker->session, "{\"type\":\"typing\"}");
    }
  return NULL;
}

static void
test_threads (Fixture       *fixture,
              gconstpointer  data)
{
  Client *clients[N_THREADS];
  Worker workers[N_THREADS];
  GThread *threads[N_THREADS];
  Client *watcher;
  g_autoptr(ChatSession) watching = NULL;
  g_autoptr(GPtrArray) reference = NULL;
  JsonObject *welcome;

  g_test_summary ("Sessions fed from several threads at once: everyone sees every message, in the same order");

  /* Each reading of the clock is a second later: no rate limit here. */
  fixture->clock_runs = TRUE;
  for (guint t = 0; t < N_THREADS; t++)
    {
      g_autofree char *name = g_strdup_printf ("user%u", t);
      workers[t].fixture = fixture;
      workers[t].index = t;
      workers[t].session = login_client (fixture, name, &clients[t]);
    }
  for (guint t = 0; t < N_THREADS; t++)
    threads[t] = g_thread_new ("chat-test", worker_run, &workers[t]);
  for (guint t = 0; t < N_THREADS; t++)
    g_thread_join (threads[t]);

  watching = connect_client (fixture, &watcher);
  send_login (watching, "watcher");
  welcome = client_expect (watcher, "welcome");
  g_assert_cmpint (json_object_get_int_member (welcome, "count"), ==, N_THREADS + 1);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (welcome, "history")), ==,
                    CHAT_DEFAULT_HISTORY);

  for (guint t = 0; t < N_THREADS; t++)
    {
      g_autoptr(GPtrArray) messages = g_ptr_array_new ();
      guint per_sender[N_THREADS] = { 0, };

      for (guint i = 0; i < clients[t]->frames->len; i++)
        {
          JsonObject *frame = json_node_get_object (clients[t]->frames->pdata[i]);
          if (g_strcmp0 (json_object_get_string_member (frame, "type"), "message") == 0)
            {
              const char *text = json_object_get_string_member (frame, "text");
              guint sender = (guint) g_ascii_strtoull (text, NULL, 10);
              g_autofree char *expected = NULL;

              g_assert_cmpuint (sender, <, N_THREADS);
              /* Each sender's messages arrive in the order sent. */
              expected = g_strdup_printf ("%u:%u", sender, per_sender[sender]++);
              g_assert_cmpstr (text, ==, expected);
              g_ptr_array_add (messages, (gpointer) text);
            }
        }
      g_assert_cmpuint (messages->len, ==, N_THREADS * N_MESSAGES);
      g_ptr_array_add (messages, NULL);
      /* Everyone sees the same interleaving as the first client. */
      if (reference == NULL)
        reference = g_ptr_array_ref (messages);
      else
        g_assert_cmpstrv ((GStrv) messages->pdata, (GStrv) reference->pdata);
    }

  for (guint t = 0; t < N_THREADS; t++)
    chat_session_free (workers[t].session);
  g_assert_cmpuint (chat_room_get_count (fixture->room), ==, 1);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_setup, func, fixture_teardown)

  ADD ("/chat/login/welcome", test_login_welcome, NULL);
  ADD ("/chat/login/trim", test_login_trim, NULL);
  ADD ("/chat/login/bad-name", test_login_bad_name, NULL);
  ADD ("/chat/login/name-taken", test_login_name_taken, NULL);
  ADD ("/chat/login/twice", test_login_twice, NULL);
  ADD ("/chat/room/join-leave", test_join_leave, NULL);
  ADD ("/chat/message/broadcast", test_message_broadcast, NULL);
  ADD ("/chat/message/invalid", test_message_invalid, NULL);
  ADD ("/chat/message/not-logged-in", test_not_logged_in, NULL);
  ADD ("/chat/typing", test_typing, NULL);
  ADD ("/chat/validation/shapes", test_validation_shapes, NULL);
  ADD ("/chat/validation/too-long", test_validation_too_long, NULL);
  ADD ("/chat/validation/garbage", test_validation_garbage, NULL);
  ADD ("/chat/rate-limit", test_rate_limit, NULL);
  ADD ("/chat/history/last-n", test_history, GUINT_TO_POINTER (3 + 1));
  ADD ("/chat/history/none", test_history_none, GUINT_TO_POINTER (0 + 1));
  ADD ("/chat/threads", test_threads, NULL);

#undef ADD

  return g_test_run ();
}
