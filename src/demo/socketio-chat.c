/* socketio-chat: the demo chat over Socket.IO
 *
 * Serves the web page (data/sio-chat/) and a Socket.IO server (namespace
 * "/", Engine.IO mounted at /socket.io/ through <engineio/engineio-mhd.h>)
 * from one libmicrohttpd daemon (demo-static.c, shared with engineio-chat).
 * The page uses the official socket.io-client bundle (socket.io.min.js), and
 * the Engine.IO chat's stylesheet (data/chat/chat.css) under its own
 * sio-chat.css.
 *
 * The protocol (data/sio-chat/README.md; data/python/sio-chat.py speaks the
 * same), every client event answered through its acknowledgement when the
 * client asks for one:
 *
 *   client -> server  login(name)  join(room)  leave()  message(text)
 *                     typing()  stop-typing()
 *   ack               {"ok":true,...} or {"ok":false,"error":CODE,"message":M}
 *   server -> client  message {room,name,text,time,id}  joined/left {room,name,users}
 *                     typing/stop-typing {room,name}  rooms [{name,count}]
 *                     error {error,message} (a refusal of an event without ack)
 *
 * Every user is in exactly one chat room at a time (a Socket.IO room of
 * the same name, "#general" after login). Uses only the public API.
 *
 * With --redis URL the namespace gets a SocketIORedisAdapter: the room
 * broadcasts (message, joined, left, typing) reach the members of the
 * room of that name on every node of the cluster. What the chat keeps
 * (names, members, history, the `rooms` list) stays per node: names are
 * unique per node, `users`, `history` and `rooms` list this node's; the
 * joined/left notices carry no `users` list then, and pages add and
 * remove the name they carry.
 *
 * SPDX-License-Identifier: MIT
 */
#include "sio-chat-config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <engineio/engineio.h>
#include <socketio/socketio.h>
#ifdef SOCKET_IO_HAVE_REDIS
#include <socketio/socketio-redis.h>
#endif

#include "demo-static.h"
#include "../tools/tool-cli.h"

#define NAME "socketio-chat"

#define BUNDLE_URL "/socket.io.min.js"
#define BUNDLE_NAME "socket.io.min.js"
#define BASE_CSS_URL "/chat.css"      /* data/chat/chat.css, sio-chat.css adds to it */
#define BASE_CSS_NAME "chat.css"
#define ENGINE_PATH "/socket.io/"
#define MAX_FRAME_BYTES (64 * 1024)

/* The protocol's limits (data/sio-chat/README.md documents them). */
#define SIO_CHAT_MAX_NAME_CHARS   32    /* code points in a name, after trimming */
#define SIO_CHAT_MAX_ROOM_CHARS   24    /* characters after the '#' */
#define SIO_CHAT_MAX_TEXT_CHARS   1000  /* code points in a message */
#define SIO_CHAT_RATE_PER_SECOND  10    /* token bucket refill, events per second */
#define SIO_CHAT_RATE_BURST       20    /* token bucket size */
#define SIO_CHAT_DEFAULT_HISTORY  50    /* messages kept per room */
#define SIO_CHAT_DEFAULT_ROOMS    32    /* rooms existing at once, #general included */
#define SIO_CHAT_DEFAULT_USERS    1000  /* users logged in at once */
#define SIO_CHAT_GENERAL          "#general"

/* The chat's state, shared by every session thread.
 *
 * Chat.lock guards everything below it, and every Conn and Room. The
 * broadcasts a change causes and the acknowledgement of the event that
 * caused it are sent with the lock held, so every client sees the events
 * of a room in one order, and a joiner's history (in its ack) is followed
 * by exactly the messages sent after it. Lock order: Chat.lock, then the
 * library's locks (the library never calls back into us with its locks
 * held: our handlers run from signals in the sockets' contexts).
 */
typedef struct _Room Room;

typedef struct
{
  char           *sid;       /* owned */
  SocketIOSocket *socket;    /* owned */
  char           *name;      /* owned, nullable: NULL until logged in */
  char           *key;       /* owned, nullable: the name casefolded (uniqueness) */
  Room           *room;      /* the current room, NULL until logged in */
  double          tokens;    /* rate limit */
  gint64          refilled;  /* monotonic µs */
  gboolean        throttled; /* told about the rate limit already */
} Conn;

struct _Room
{
  char       *name;     /* owned */
  GQueue      history;  /* JsonObject*, owned, oldest first */
  GHashTable *members;  /* Conn* set (not owned) */
  guint64     next_id;
};

typedef struct
{
  GMutex      lock;
  GHashTable *conns;     /* sid -> Conn (owned) */
  GHashTable *names;     /* key -> Conn (not owned): logged-in users */
  GHashTable *rooms;     /* name -> Room (owned) */
  guint       history;   /* immutable after start */
  guint       max_rooms; /* immutable after start */
  guint       max_users; /* immutable after start */
} Chat;

typedef struct
{
  EngineIOServer    *engine;      /* owned; outlives the daemon */
  SocketIOServer    *io;          /* owned */
  SocketIONamespace *nsp;         /* owned */
  gboolean           cluster;     /* --redis: immutable after start */
  gint64             id_base;     /* added to message ids: in a cluster, a
                                   * random multiple of 2^32 per node, so that
                                   * pages (which skip ids they have shown)
                                   * never see two nodes' ids collide */
  Chat               chat;
} App;

/* JSON helpers */

static JsonNode *
node_object (JsonObject *object)
{
  /* Takes @object. */
  JsonNode *node = json_node_init_object (json_node_alloc (), object);
  json_object_unref (object);
  return node;
}

static JsonNode *
node_array (JsonArray *array)
{
  /* Takes @array (json_node_init_array() takes a reference of its own). */
  JsonNode *node = json_node_init_array (json_node_alloc (), array);
  json_array_unref (array);
  return node;
}

static JsonArray *
args_of (JsonNode *node)
{
  JsonArray *args = json_array_new ();
  json_array_add_element (args, node);
  return args;
}

static const char *
arg_string (JsonArray *args,
            guint      index)
{
  JsonNode *node;

  if (args == NULL || json_array_get_length (args) <= index)
    return NULL;
  node = json_array_get_element (args, index);
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/* Rooms and users (Chat.lock held) */

static void
room_free (gpointer data)
{
  Room *room = data;

  g_queue_clear_full (&room->history, (GDestroyNotify) json_object_unref);
  g_hash_table_unref (room->members);
  g_free (room->name);
  g_free (room);
}

static void
conn_free (gpointer data)
{
  Conn *conn = data;

  g_object_unref (conn->socket);
  g_free (conn->sid);
  g_free (conn->name);
  g_free (conn->key);
  g_free (conn);
}

static int
compare_strings (gconstpointer a,
                 gconstpointer b)
{
  return g_utf8_collate (*(const char * const *) a, *(const char * const *) b);
}

static JsonNode *
room_users (Room *room)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  JsonArray *array = json_array_new ();
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, room->members);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (names, ((Conn *) key)->name);
  g_ptr_array_sort (names, compare_strings);
  for (guint i = 0; i < names->len; i++)
    json_array_add_string_element (array, g_ptr_array_index (names, i));
  return node_array (array);
}

static JsonNode *
room_history (Room *room)
{
  JsonArray *array = json_array_new ();

  for (GList *l = room->history.head; l != NULL; l = l->next)
    json_array_add_element (array, json_node_init_object (json_node_alloc (), l->data));
  return node_array (array);
}

static JsonNode *
rooms_list (Chat *chat)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  JsonArray *array = json_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, chat->rooms);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (names, ((Room *) value)->name);
  g_ptr_array_sort (names, compare_strings);
  for (guint i = 0; i < names->len; i++)
    {
      Room *room = g_hash_table_lookup (chat->rooms, g_ptr_array_index (names, i));
      JsonObject *item = json_object_new ();

      json_object_set_string_member (item, "name", room->name);
      json_object_set_int_member (item, "count", g_hash_table_size (room->members));
      json_array_add_object_element (array, item);
    }
  return node_array (array);
}

/* To every socket of the room but @except (nullable). Takes @payload. */
static void
room_emit (App        *app,
           Room       *room,
           Conn       *except,
           const char *event,
           JsonNode   *payload)
{
  g_autoptr(SocketIOBroadcastOperator) op = NULL;
  g_autoptr(JsonArray) args = args_of (payload);
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (except != NULL)
    op = socket_io_socket_to (except->socket, room->name);
  else
    op = socket_io_namespace_to (app->nsp, room->name);
  ok = socket_io_broadcast_operator_emit (op, event, args, NULL, NULL, &error);
  if (!ok)
    g_debug ("broadcast of %s to %s failed: %s", event, room->name, error->message);
}

static void
broadcast_rooms (App *app)
{
  g_autoptr(JsonArray) args = args_of (rooms_list (&app->chat));
  g_autoptr(SocketIOBroadcastOperator) op = socket_io_namespace_broadcast (app->nsp);
  g_autoptr(GError) error = NULL;

  /* This node's list, to this node's clients only (with --redis, the
   * other nodes send theirs to theirs). */
  socket_io_broadcast_operator_local (op);
  if (!socket_io_broadcast_operator_emit (op, "rooms", args, NULL, NULL, &error))
    g_debug ("broadcast of rooms failed: %s", error->message);
}

/* A joined/left notice. Alone, it carries the room's members; in a
 * cluster it does not (this node knows only its own, and the notice
 * reaches every node's pages): pages then add or remove the name. */
static JsonNode *
presence (App        *app,
          Room       *room,
          const char *name)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "room", room->name);
  json_object_set_string_member (object, "name", name);
  if (!app->cluster)
    json_object_set_member (object, "users", room_users (room));
  return node_object (object);
}

/* Moves @conn out of its room: the Socket.IO room is left, the others are
 * told, an empty room other than #general goes away (with its history). */
static void
leave_room (App  *app,
            Conn *conn)
{
  Room *room = conn->room;

  if (room == NULL)
    return;
  conn->room = NULL;
  g_hash_table_remove (room->members, conn);
  if (socket_io_socket_is_connected (conn->socket))
    socket_io_socket_leave (conn->socket, room->name);
  room_emit (app, room, NULL, "left", presence (app, room, conn->name));
  if (g_hash_table_size (room->members) == 0 && strcmp (room->name, SIO_CHAT_GENERAL) != 0)
    g_hash_table_remove (app->chat.rooms, room->name);
}

/* Puts @conn in room @name (created if needed). Returns the room, or NULL
 * with @error_code set when there are too many rooms. */
static Room *
enter_room (App         *app,
            Conn        *conn,
            const char  *name,
            const char **error_code)
{
  Room *room = g_hash_table_lookup (app->chat.rooms, name);

  if (room == NULL)
    {
      if (g_hash_table_size (app->chat.rooms) >= app->chat.max_rooms)
        {
          *error_code = "too-many-rooms";
          return NULL;
        }
      room = g_new0 (Room, 1);
      room->name = g_strdup (name);
      room->members = g_hash_table_new (NULL, NULL);
      g_queue_init (&room->history);
      g_hash_table_insert (app->chat.rooms, room->name, room);
    }
  /* Told before the joiner is in the Socket.IO room: not to the joiner. */
  g_hash_table_add (room->members, conn);
  conn->room = room;
  room_emit (app, room, conn, "joined", presence (app, room, conn->name));
  socket_io_socket_join (conn->socket, room->name);
  return room;
}

/* Validation */

/* The name trimmed, or NULL when it is not 1 to SIO_CHAT_MAX_NAME_CHARS
 * characters without control characters. */
static char *
normalize_name (const char *raw)
{
  g_autofree char *name = NULL;
  glong length;

  if (raw == NULL || !g_utf8_validate (raw, -1, NULL))
    return NULL;
  name = g_strstrip (g_strdup (raw));
  length = g_utf8_strlen (name, -1);
  if (length < 1 || length > SIO_CHAT_MAX_NAME_CHARS)
    return NULL;
  for (const char *p = name; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (g_unichar_iscntrl (c) || g_unichar_type (c) == G_UNICODE_FORMAT ||
          c == 0x2028 || c == 0x2029)
        return NULL;
    }
  return g_steal_pointer (&name);
}

/* "#" then 1 to SIO_CHAT_MAX_ROOM_CHARS of [a-z0-9_-] (ASCII letters are
 * lowered, a missing '#' is added), or NULL. */
static char *
normalize_room (const char *raw)
{
  g_autofree char *stripped = NULL;
  const char *body;
  gsize length;

  if (raw == NULL)
    return NULL;
  stripped = g_strstrip (g_ascii_strdown (raw, -1));
  body = stripped[0] == '#' ? stripped + 1 : stripped;
  length = strlen (body);
  if (length < 1 || length > SIO_CHAT_MAX_ROOM_CHARS)
    return NULL;
  for (const char *p = body; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_')
      return NULL;
  return g_strconcat ("#", body, NULL);
}

/* Takes a token of @conn's bucket. */
static gboolean
take_token (Conn *conn)
{
  gint64 now = g_get_monotonic_time ();

  conn->tokens = MIN ((double) SIO_CHAT_RATE_BURST,
                      conn->tokens + (now - conn->refilled) * SIO_CHAT_RATE_PER_SECOND / 1e6);
  conn->refilled = now;
  if (conn->tokens < 1.0)
    return FALSE;
  conn->tokens -= 1.0;
  conn->throttled = FALSE;
  return TRUE;
}

/* Answers: through @ack when the client asked, else (refusals only) as an
 * `error` event. Takes @answer. */
static void
answer (Conn        *conn,
        SocketIOAck *ack,
        JsonObject  *answer)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) args = args_of (node_object (answer));

  if (ack != NULL)
    {
      if (!socket_io_ack_send (ack, args, NULL, &error))
        g_debug ("ack to %s failed: %s", conn->sid, error->message);
    }
  else if (!json_object_get_boolean_member (answer, "ok"))
    {
      if (!socket_io_socket_emit (conn->socket, "error", args, NULL, &error))
        g_debug ("emit to %s failed: %s", conn->sid, error->message);
    }
}

static JsonObject *
refusal (const char *code,
         const char *message)
{
  JsonObject *object = json_object_new ();

  json_object_set_boolean_member (object, "ok", FALSE);
  json_object_set_string_member (object, "error", code);
  json_object_set_string_member (object, "message", message);
  return object;
}

/* The answer to a login or a join: the room, its users and history, and
 * the rooms. */
static JsonObject *
welcome (App  *app,
         Conn *conn)
{
  JsonObject *object = json_object_new ();

  json_object_set_boolean_member (object, "ok", TRUE);
  json_object_set_string_member (object, "name", conn->name);
  json_object_set_string_member (object, "room", conn->room->name);
  json_object_set_member (object, "users", room_users (conn->room));
  json_object_set_member (object, "history", room_history (conn->room));
  json_object_set_member (object, "rooms", rooms_list (&app->chat));
  return object;
}

/* Events (in the socket's context) */

typedef enum { EV_LOGIN, EV_JOIN, EV_LEAVE, EV_MESSAGE, EV_TYPING, EV_STOP_TYPING, EV_UNKNOWN } EventKind;

static EventKind
event_kind (const char *name)
{
  static const char * const names[] = { "login", "join", "leave", "message", "typing", "stop-typing" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (strcmp (name, names[i]) == 0)
      return (EventKind) i;
  return EV_UNKNOWN;
}

static void
handle_login (App         *app,
              Conn        *conn,
              JsonArray   *args,
              SocketIOAck *ack)
{
  g_autofree char *name = normalize_name (arg_string (args, 0));
  g_autofree char *key = NULL;
  const char *error_code = NULL;

  if (conn->name != NULL)
    {
      answer (conn, ack, refusal ("already-logged-in", "You are logged in already"));
      return;
    }
  if (name == NULL)
    {
      answer (conn, ack, refusal ("bad-name", "A name is 1 to 32 characters, without control characters"));
      return;
    }
  key = g_utf8_casefold (name, -1);
  if (g_hash_table_contains (app->chat.names, key))
    {
      answer (conn, ack, refusal ("name-taken", "That name is taken"));
      return;
    }
  if (g_hash_table_size (app->chat.names) >= app->chat.max_users)
    {
      answer (conn, ack, refusal ("server-full", "The chat is full, try again later"));
      return;
    }

  conn->name = g_steal_pointer (&name);
  conn->key = g_steal_pointer (&key);
  g_hash_table_insert (app->chat.names, conn->key, conn);
  if (enter_room (app, conn, SIO_CHAT_GENERAL, &error_code) == NULL)
    g_assert_not_reached ();  /* #general always exists */
  answer (conn, ack, welcome (app, conn));
  broadcast_rooms (app);
}

static void
handle_join (App         *app,
             Conn        *conn,
             JsonArray   *args,
             SocketIOAck *ack,
             gboolean     leave)
{
  g_autofree char *name = leave ? g_strdup (SIO_CHAT_GENERAL) : normalize_room (arg_string (args, 0));
  Room *old = conn->room;
  const char *error_code = NULL;

  if (name == NULL)
    {
      answer (conn, ack, refusal ("bad-room", "A room is # then 1 to 24 letters, digits, - or _"));
      return;
    }
  if (strcmp (old->name, name) == 0)
    {
      if (leave)
        {
          answer (conn, ack, refusal ("bad-room", "You cannot leave #general"));
          return;
        }
          {
            answer (conn, ack, welcome (app, conn));
            return;
          }
    }
  if (!g_hash_table_contains (app->chat.rooms, name) &&
      g_hash_table_size (app->chat.rooms) >= app->chat.max_rooms &&
      !(g_hash_table_size (old->members) == 1 && strcmp (old->name, SIO_CHAT_GENERAL) != 0))
        {
          answer (conn, ack, refusal ("too-many-rooms", "There are too many rooms: join one of them"));
          return;
        }

  leave_room (app, conn);
  if (enter_room (app, conn, name, &error_code) == NULL)
    {
      /* Only possible if leaving freed no room: cannot happen after the
       * check above, but go back to #general rather than nowhere. */
      enter_room (app, conn, SIO_CHAT_GENERAL, &error_code);
      answer (conn, ack, refusal (error_code, "There are too many rooms: join one of them"));
    }
  else
    answer (conn, ack, welcome (app, conn));
  broadcast_rooms (app);
}

static void
handle_message (App         *app,
                Conn        *conn,
                JsonArray   *args,
                SocketIOAck *ack)
{
  const char *raw = arg_string (args, 0);
  g_autofree char *text = NULL;
  JsonObject *message, *reply;
  Room *room = conn->room;
  glong length;

  if (raw == NULL)
    {
      answer (conn, ack, refusal ("bad-message", "A message is a string"));
      return;
    }
  text = g_strstrip (g_strdup (raw));
  length = g_utf8_strlen (text, -1);
  if (length < 1)
    {
      answer (conn, ack, refusal ("bad-message", "The message is empty"));
      return;
    }
  if (length > SIO_CHAT_MAX_TEXT_CHARS)
    {
      answer (conn, ack, refusal ("too-long", "A message is at most 1000 characters"));
      return;
    }

  message = json_object_new ();
  json_object_set_string_member (message, "room", room->name);
  json_object_set_string_member (message, "name", conn->name);
  json_object_set_string_member (message, "text", text);
  json_object_set_int_member (message, "time", g_get_real_time () / 1000);
  json_object_set_int_member (message, "id", app->id_base + (gint64) ++room->next_id);
  json_object_seal (message);

  /* To the others; the sender shows its own copy, delivered on the ack. */
  room_emit (app, room, conn, "message",
             json_node_init_object (json_node_alloc (), message));
  g_queue_push_tail (&room->history, json_object_ref (message));
  while (g_queue_get_length (&room->history) > app->chat.history)
    json_object_unref (g_queue_pop_head (&room->history));

  reply = json_object_new ();
  json_object_set_boolean_member (reply, "ok", TRUE);
  json_object_set_int_member (reply, "id", json_object_get_int_member (message, "id"));
  json_object_set_int_member (reply, "time", json_object_get_int_member (message, "time"));
  json_object_unref (message);
  answer (conn, ack, reply);
}

static void
on_event (SocketIOSocket *socket,
          const char     *name,
          JsonArray      *args,
          GPtrArray      *attachments,
          SocketIOAck    *ack,
          gpointer        user_data)
{
  App *app = user_data;
  EventKind kind = event_kind (name);
  Conn *conn;

  g_mutex_lock (&app->chat.lock);
  conn = g_hash_table_lookup (app->chat.conns, socket_io_socket_get_id (socket));
  if (conn == NULL)
    goto out;  /* disconnected meanwhile */
  if (!take_token (conn))
    {
      if (ack != NULL || !conn->throttled)
        answer (conn, ack, refusal ("rate-limited", "Slow down: too many events"));
      conn->throttled = TRUE;
      goto out;
    }
  if (kind == EV_UNKNOWN)
    answer (conn, ack, refusal ("unknown-event", "Unknown event"));
  else if (attachments != NULL && attachments->len > 0)
    answer (conn, ack, refusal ("bad-message", "Binary arguments are not accepted"));
  else if (kind == EV_LOGIN)
    handle_login (app, conn, args, ack);
  else if (conn->name == NULL)
    answer (conn, ack, refusal ("not-logged-in", "Log in first"));
  else if (kind == EV_JOIN || kind == EV_LEAVE)
    handle_join (app, conn, args, ack, kind == EV_LEAVE);
  else if (kind == EV_MESSAGE)
    handle_message (app, conn, args, ack);
  else
    {
      /* typing, stop-typing: to the rest of the room, nothing kept. */
      JsonObject *object = json_object_new ();

      json_object_set_string_member (object, "room", conn->room->name);
      json_object_set_string_member (object, "name", conn->name);
      room_emit (app, conn->room, conn, name, node_object (object));
      if (ack != NULL)
        {
          JsonObject *reply = json_object_new ();
          json_object_set_boolean_member (reply, "ok", TRUE);
          answer (conn, ack, reply);
        }
    }
out:
  g_mutex_unlock (&app->chat.lock);
}

static void
on_disconnect (SocketIOSocket *socket,
               const char     *reason,
               gpointer        user_data)
{
  App *app = user_data;
  Conn *conn;

  g_debug ("Socket %s left: %s", socket_io_socket_get_id (socket), reason);
  g_mutex_lock (&app->chat.lock);
  conn = g_hash_table_lookup (app->chat.conns, socket_io_socket_get_id (socket));
  if (conn != NULL)
    {
      if (conn->name != NULL)
        {
          leave_room (app, conn);
          g_hash_table_remove (app->chat.names, conn->key);
          broadcast_rooms (app);
        }
      g_hash_table_remove (app->chat.conns, conn->sid);
    }
  g_mutex_unlock (&app->chat.lock);
}

static void
on_connection (SocketIONamespace *nsp,
               SocketIOSocket    *socket,
               gpointer           user_data)
{
  App *app = user_data;
  Conn *conn = g_new0 (Conn, 1);

  conn->sid = g_strdup (socket_io_socket_get_id (socket));
  conn->socket = g_object_ref (socket);
  conn->tokens = SIO_CHAT_RATE_BURST;
  conn->refilled = g_get_monotonic_time ();
  g_debug ("Socket %s joined", conn->sid);

  g_mutex_lock (&app->chat.lock);
  g_hash_table_replace (app->chat.conns, conn->sid, conn);
  g_mutex_unlock (&app->chat.lock);
  g_signal_connect (socket, "event", G_CALLBACK (on_event), app);
  g_signal_connect (socket, "disconnect", G_CALLBACK (on_disconnect), app);
}

static void
chat_init (Chat  *chat,
           guint  history,
           guint  max_rooms,
           guint  max_users)
{
  Room *general = g_new0 (Room, 1);

  g_mutex_init (&chat->lock);
  chat->conns = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, conn_free);
  chat->names = g_hash_table_new (g_str_hash, g_str_equal);
  chat->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, room_free);
  chat->history = history;
  chat->max_rooms = max_rooms;
  chat->max_users = max_users;
  general->name = g_strdup (SIO_CHAT_GENERAL);
  general->members = g_hash_table_new (NULL, NULL);
  g_queue_init (&general->history);
  g_hash_table_insert (chat->rooms, general->name, general);
}

static void
chat_clear (Chat *chat)
{
  g_hash_table_unref (chat->names);
  g_hash_table_unref (chat->conns);
  g_hash_table_unref (chat->rooms);
  g_mutex_clear (&chat->lock);
}


int
main (int   argc,
      char *argv[])
{
  g_autofree char *address = NULL;  /* GOption does not free a default it replaces */
  g_autofree char *static_dir = NULL;
  g_autofree char *bundle = NULL;
  g_autofree char *base_css = NULL;
  int port = 8080;
  int history = SIO_CHAT_DEFAULT_HISTORY;
  int max_rooms = SIO_CHAT_DEFAULT_ROOMS;
  int max_users = SIO_CHAT_DEFAULT_USERS;
  int loop_threads = 0;
  g_autofree char *redis = NULL;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "address", 0, 0, G_OPTION_ARG_STRING, &address, "Address to bind (default 127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port (default 8080; 0 picks a free one)", "PORT" },
    { "static-dir", 0, 0, G_OPTION_ARG_FILENAME, &static_dir,
      "Directory of the web page (default: the source tree's data/sio-chat, or the installed copy)", "DIR" },
    { "client-bundle", 0, 0, G_OPTION_ARG_FILENAME, &bundle,
      "socket.io-client's socket.io.min.js (default: in the static directory, the build tree or "
      "tests/interop/node_modules)", "PATH" },
    { "history", 0, 0, G_OPTION_ARG_INT, &history, "Messages kept per room for joiners (default 50)", "N" },
    { "max-rooms", 0, 0, G_OPTION_ARG_INT, &max_rooms, "Rooms at once, #general included (default 32)", "N" },
    { "max-users", 0, 0, G_OPTION_ARG_INT, &max_users, "Users logged in at once (default 1000)", "N" },
    { "loop-threads", 0, 0, G_OPTION_ARG_INT, &loop_threads,
      "Shared session threads (default 0: one thread per session)", "N" },
    { "redis", 0, 0, G_OPTION_ARG_STRING, &redis,
      "Join a cluster of chat servers through Redis (wire of npm @socket.io/redis-adapter 8)",
      "redis://HOST[:PORT][/DB]" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Socket.IO chat demo");
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  struct MHD_Daemon *daemon;
  guint bound_port = 0;
  App app = { NULL, };
  const DemoPage page = {
    "socketio-chat", SIO_CHAT_BUILD_DIR, SIO_CHAT_SOURCE_DATADIR, SIO_CHAT_INSTALLED_DATADIR,
    "socket.io-client", BUNDLE_NAME, SIO_CHAT_BUILD_BUNDLE, SIO_CHAT_SOURCE_BUNDLE,
  };
  int status;
  DemoStatic *files;

  setlocale (LC_ALL, "");

  /* stdout carries only the "listening on" line; logs go to stderr. */
  g_log_writer_default_set_use_stderr (TRUE);

  g_option_context_set_summary (options,
    "Serves a chat web page and its Socket.IO endpoint (" ENGINE_PATH ").\n"
    "Prints \"listening on URL\" as its first line of output.\n"
    "Logs go to stderr; G_MESSAGES_DEBUG=all shows the details.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr (NAME ": %s\n", error->message);
      return TOOL_EXIT_USAGE;
    }
  if (version)
    return tool_print_version (NAME, ENGINE_IO_VERSION_S);
  if (address == NULL)
    address = g_strdup ("127.0.0.1");
  if (!tool_check_no_arguments (NAME, argc, argv) ||
      !tool_check_range (NAME, "port", port, 0, 65535) ||
      !tool_check_range (NAME, "history", history, 0, 10000) ||
      !tool_check_range (NAME, "max-rooms", max_rooms, 1, 10000) ||
      !tool_check_range (NAME, "max-users", max_users, 1, 1000000) ||
      !tool_check_range (NAME, "loop-threads", loop_threads, 0, 1024))
    return TOOL_EXIT_USAGE;

  status = demo_locate_page (&page, &static_dir, &bundle);
  if (status != 0)
    return status;

  /* The base stylesheet: the static directory's own when it has one (a
   * complete copy of the page), else the Engine.IO chat's. */
  base_css = g_build_filename (static_dir, BASE_CSS_NAME, NULL);
  if (!g_file_test (base_css, G_FILE_TEST_IS_REGULAR))
    {
      g_autofree char *base_dir = demo_find_dir (SIO_CHAT_BUILD_DIR, SIO_CHAT_BASE_SOURCE_DATADIR,
                                                 SIO_CHAT_BASE_INSTALLED_DATADIR, BASE_CSS_NAME);
      g_clear_pointer (&base_css, g_free);
      if (base_dir != NULL)
        base_css = g_build_filename (base_dir, BASE_CSS_NAME, NULL);
      else
        g_warning ("The page's base stylesheet " BASE_CSS_NAME " was not found (looked in %s, %s "
                   "and %s): the page will have no style", static_dir, SIO_CHAT_BASE_SOURCE_DATADIR,
                   SIO_CHAT_BASE_INSTALLED_DATADIR);
    }

  chat_init (&app.chat, (guint) history, (guint) max_rooms, (guint) max_users);
  app.engine = g_object_new (ENGINE_IO_TYPE_SERVER,
                             "path", ENGINE_PATH,
                             "loop-threads", (guint) loop_threads,
                             "max-payload", (guint64) MAX_FRAME_BYTES,
                             NULL);
  app.io = socket_io_server_new (app.engine);
  app.nsp = socket_io_server_of (app.io, "/");
  g_signal_connect (app.nsp, "connection", G_CALLBACK (on_connection), &app);
  if (redis != NULL)
    {
#ifdef SOCKET_IO_HAVE_REDIS
      g_autoptr(SocketIOAdapter) adapter = socket_io_redis_adapter_new (app.nsp, redis, NULL, &error);

      if (adapter == NULL)
        {
          g_printerr (NAME ": --redis: %s\n", error->message);
          engine_io_server_close (app.engine);
          g_object_unref (app.nsp);
          g_object_unref (app.io);
          g_object_unref (app.engine);
          chat_clear (&app.chat);
          return TOOL_EXIT_USAGE;
        }
      socket_io_namespace_set_adapter (app.nsp, adapter);
      app.cluster = TRUE;
      /* Below 2^52 with 2^32 messages a room: exact in JavaScript. */
      app.id_base = (gint64) g_random_int_range (1, 1 << 20) << 32;
#else
      g_printerr (NAME ": built without Redis support (hiredis, msgpack-c)\n");
      engine_io_server_close (app.engine);
      g_object_unref (app.nsp);
      g_object_unref (app.io);
      g_object_unref (app.engine);
      chat_clear (&app.chat);
      return TOOL_EXIT_USAGE;
#endif
    }

  files = demo_static_new (app.engine, ENGINE_PATH, static_dir);
  if (bundle != NULL)
    demo_static_add_file (files, BUNDLE_URL, bundle);
  if (base_css != NULL)
    demo_static_add_file (files, BASE_CSS_URL, base_css);
  daemon = demo_static_start (files, address, (guint) port, &bound_port, &error);
  if (daemon == NULL)
    {
      g_printerr ("socketio-chat: %s\n", error->message);
      engine_io_server_close (app.engine);
      g_object_unref (app.nsp);
      g_object_unref (app.io);
      g_object_unref (app.engine);
      chat_clear (&app.chat);
      demo_static_free (files);
      return 1;
    }

  url = demo_url_for (address, bound_port);
  printf ("listening on %s\n", url);
  fflush (stdout);
  g_message ("Socket.IO chat on %s (page from %s, client bundle %s, history %d, rooms %d, users %d%s%s)",
             url, static_dir, bundle != NULL ? bundle : "missing", history,
             max_rooms, max_users, redis != NULL ? ", cluster through " : "", redis != NULL ? redis : "");

  demo_run_until_signal ();

  /* Close the sessions (each client hears so), and only then stop the
   * daemon: it must outlive the engine's requests. */
  g_message ("Shutting down");
  engine_io_server_close (app.engine);
  MHD_stop_daemon (daemon);
  demo_static_free (files);

  g_object_unref (app.nsp);
  g_object_unref (app.io);
  g_object_unref (app.engine);
  chat_clear (&app.chat);
  return 0;
}
