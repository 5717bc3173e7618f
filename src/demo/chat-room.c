/* chat-room.c: the demo chat's room: logins, broadcast, history, limits
 *
 * The JSON protocol is documented in data/chat/README.md.
 *
 * Threads: each session is fed from its own thread (an Engine.IO session's
 * main context), so every piece of room state, the sessions' included, is
 * guarded by the room's one lock. Frames are sent with the lock held, which
 * gives every client the same order of events; ChatSendFunc never blocks.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <json-glib/json-glib.h>

#include "chat-room.h"

typedef struct
{
  char   *name;
  char   *text;
  gint64  time_ms;
} ChatEntry;

/* The token bucket counts in microseconds of refill time, so that it is
 * exact: a token is worth TOKEN_US, the bucket holds BUCKET_US. */
#define TOKEN_US  (G_USEC_PER_SEC / CHAT_RATE_PER_SECOND)
#define BUCKET_US (TOKEN_US * CHAT_RATE_BURST)

struct _ChatRoom
{
  GMutex         lock;
  guint          history_length;  /* immutable */
  ChatClockFunc  monotonic;       /* set before the first session; then immutable */
  ChatClockFunc  real;
  gpointer       clock_data;
  GPtrArray     *members;         /* (lock) logged-in ChatSession*, unowned, in login order */
  GHashTable    *names;           /* (lock) name (owned by the session) -> ChatSession* */
  GQueue         history;         /* (lock) ChatEntry*, oldest first */
};

struct _ChatSession
{
  ChatRoom       *room;           /* owned ref; immutable */
  ChatSendFunc    send;           /* immutable */
  gpointer        user_data;
  GDestroyNotify  destroy;
  char           *name;           /* (lock) NULL until logged in */
  gint64          credit;         /* (lock) rate limit bucket, in µs: TOKEN_US per token */
  gint64          refilled_at;    /* (lock) monotonic µs of the last refill */
  gboolean        throttled;      /* (lock) the rate-limited error was sent */
};

static void
chat_entry_free (gpointer data)
{
  ChatEntry *entry = data;

  g_free (entry->name);
  g_free (entry->text);
  g_free (entry);
}

static gint64
default_monotonic (gpointer user_data)
{
  return g_get_monotonic_time ();
}

static gint64
default_real (gpointer user_data)
{
  return g_get_real_time ();
}

/**
 * chat_room_new:
 * @history_length: how many messages a newcomer is shown (0 for none)
 *
 * Returns: (transfer full): a new, empty room
 */
ChatRoom *
chat_room_new (guint history_length)
{
  ChatRoom *room = g_atomic_rc_box_new0 (ChatRoom);

  g_mutex_init (&room->lock);
  room->history_length = history_length;
  room->monotonic = default_monotonic;
  room->real = default_real;
  room->members = g_ptr_array_new ();
  room->names = g_hash_table_new (g_str_hash, g_str_equal);
  g_queue_init (&room->history);
  return room;
}

ChatRoom *
chat_room_ref (ChatRoom *room)
{
  return g_atomic_rc_box_acquire (room);
}

static void
chat_room_clear (ChatRoom *room)
{
  g_warn_if_fail (room->members->len == 0);
  g_ptr_array_unref (room->members);
  g_hash_table_unref (room->names);
  g_queue_clear_full (&room->history, chat_entry_free);
  g_mutex_clear (&room->lock);
}

void
chat_room_unref (ChatRoom *room)
{
  g_atomic_rc_box_release_full (room, (GDestroyNotify) chat_room_clear);
}

/**
 * chat_room_set_clocks:
 * @room: a room
 * @monotonic: (nullable): the clock of the rate limit, in µs
 * @real: (nullable): the clock of message timestamps, in µs since the epoch
 * @user_data: data for both
 *
 * Replaces the clocks (for tests). Call before the first session.
 */
void
chat_room_set_clocks (ChatRoom      *room,
                      ChatClockFunc  monotonic,
                      ChatClockFunc  real,
                      gpointer       user_data)
{
  room->monotonic = monotonic != NULL ? monotonic : default_monotonic;
  room->real = real != NULL ? real : default_real;
  room->clock_data = user_data;
}

/**
 * chat_room_get_count:
 * @room: a room
 *
 * Thread-safe.
 *
 * Returns: the number of logged-in users
 */
guint
chat_room_get_count (ChatRoom *room)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&room->lock);

  return room->members->len;
}

/**
 * chat_room_dup_users:
 * @room: a room
 *
 * Thread-safe.
 *
 * Returns: (transfer full): the logged-in users' names, in login order
 */
GStrv
chat_room_dup_users (ChatRoom *room)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&room->lock);
  GStrv names = g_new0 (char *, room->members->len + 1);

  for (guint i = 0; i < room->members->len; i++)
    names[i] = g_strdup (((ChatSession *) room->members->pdata[i])->name);
  return names;
}

/* Frames */

static char *
builder_to_string (JsonBuilder *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);

  return json_to_string (root, FALSE);
}

static JsonBuilder *
frame_begin (const char *type)
{
  JsonBuilder *builder = json_builder_new_immutable ();

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, type);
  return builder;
}

static char *
frame_end (JsonBuilder *builder)
{
  json_builder_end_object (builder);
  return builder_to_string (builder);
}

/* A frame with a type and a name: typing, stop-typing. */
static char *
frame_name (const char *type,
            const char *name)
{
  g_autoptr(JsonBuilder) builder = frame_begin (type);

  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, name);
  return frame_end (builder);
}

/* joined, left */
static char *
frame_name_count (const char *type,
                  const char *name,
                  guint       count)
{
  g_autoptr(JsonBuilder) builder = frame_begin (type);

  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, name);
  json_builder_set_member_name (builder, "count");
  json_builder_add_int_value (builder, count);
  return frame_end (builder);
}

static void
add_entry_members (JsonBuilder     *builder,
                   const ChatEntry *entry)
{
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, entry->name);
  json_builder_set_member_name (builder, "text");
  json_builder_add_string_value (builder, entry->text);
  json_builder_set_member_name (builder, "time");
  json_builder_add_int_value (builder, entry->time_ms);
}

static char *
frame_message (const ChatEntry *entry)
{
  g_autoptr(JsonBuilder) builder = frame_begin ("message");

  add_entry_members (builder, entry);
  return frame_end (builder);
}

static char *
frame_welcome_locked (ChatRoom    *room,
                      ChatSession *session)
{
  g_autoptr(JsonBuilder) builder = frame_begin ("welcome");

  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, session->name);

  json_builder_set_member_name (builder, "users");
  json_builder_begin_array (builder);
  for (guint i = 0; i < room->members->len; i++)
    json_builder_add_string_value (builder, ((ChatSession *) room->members->pdata[i])->name);
  json_builder_end_array (builder);

  json_builder_set_member_name (builder, "count");
  json_builder_add_int_value (builder, room->members->len);

  json_builder_set_member_name (builder, "history");
  json_builder_begin_array (builder);
  for (GList *l = room->history.head; l != NULL; l = l->next)
    {
      json_builder_begin_object (builder);
      add_entry_members (builder, l->data);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);

  return frame_end (builder);
}

static void
send_error_locked (ChatSession *session,
                   const char  *code,
                   const char  *message)
{
  g_autoptr(JsonBuilder) builder = frame_begin ("error");
  g_autofree char *json = NULL;

  json_builder_set_member_name (builder, "code");
  json_builder_add_string_value (builder, code);
  json_builder_set_member_name (builder, "message");
  json_builder_add_string_value (builder, message);
  json = frame_end (builder);

  g_debug ("Error “%s” for a client: %s", code, message);
  session->send (json, session->user_data);
}

/* To every logged-in member but @except (nullable). */
static void
broadcast_locked (ChatRoom    *room,
                  const char  *json,
                  ChatSession *except)
{
  for (guint i = 0; i < room->members->len; i++)
    {
      ChatSession *member = room->members->pdata[i];

      if (member != except)
        member->send (json, member->user_data);
    }
}

/* Validation */

/**
 * chat_normalize_name:
 * @raw: a name as a client sent it (UTF-8)
 * @out_name: (out) (optional) (transfer full): the name without leading and
 *   trailing whitespace
 *
 * A valid name is valid UTF-8 and, once trimmed, 1 to %CHAT_MAX_NAME_CHARS
 * code points with no control character (Unicode Cc) and no line or
 * paragraph separator.
 *
 * Returns: whether @raw is a valid name
 */
gboolean
chat_normalize_name (const char  *raw,
                     char       **out_name)
{
  const char *start, *end, *p;
  glong length;

  if (out_name != NULL)
    *out_name = NULL;
  if (raw == NULL || !g_utf8_validate (raw, -1, NULL))
    return FALSE;

  /* Trim: [start, end) is the name without surrounding whitespace. */
  start = raw;
  while (*start != '\0' && g_unichar_isspace (g_utf8_get_char (start)))
    start = g_utf8_next_char (start);
  end = start;
  for (p = start; *p != '\0'; p = g_utf8_next_char (p))
    if (!g_unichar_isspace (g_utf8_get_char (p)))
      end = g_utf8_next_char (p);

  for (p = start; p < end; p = g_utf8_next_char (p))
    {
      GUnicodeType type = g_unichar_type (g_utf8_get_char (p));

      if (type == G_UNICODE_CONTROL || type == G_UNICODE_LINE_SEPARATOR ||
          type == G_UNICODE_PARAGRAPH_SEPARATOR)
        return FALSE;
    }

  length = g_utf8_strlen (start, end - start);
  if (length < 1 || length > CHAT_MAX_NAME_CHARS)
    return FALSE;
  if (out_name != NULL)
    *out_name = g_strndup (start, end - start);
  return TRUE;
}

static gboolean
is_blank (const char *text)
{
  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    if (!g_unichar_isspace (g_utf8_get_char (p)))
      return FALSE;
  return TRUE;
}

/* Strict JSON (RFC 8259) */

/* json-glib accepts more than JSON (comments, single quotes, hex numbers,
 * several values in a row), so frames are checked against the grammar
 * first: the protocol is JSON, whatever the parser. Recursion is bounded
 * by the frame's length (CHAT_MAX_FRAME_CHARS). */
typedef struct
{
  const char *p;
  const char *end;
} JsonScan;

static gboolean scan_value (JsonScan *scan);

static void
scan_whitespace (JsonScan *scan)
{
  while (scan->p < scan->end &&
         (*scan->p == ' ' || *scan->p == '\t' || *scan->p == '\n' || *scan->p == '\r'))
    scan->p++;
}

static gboolean
scan_char (JsonScan *scan,
           char      c)
{
  if (scan->p < scan->end && *scan->p == c)
    {
      scan->p++;
      return TRUE;
    }
  return FALSE;
}

static gboolean
scan_digits (JsonScan *scan)
{
  const char *start = scan->p;

  while (scan->p < scan->end && g_ascii_isdigit (*scan->p))
    scan->p++;
  return scan->p > start;
}

static gboolean
scan_number (JsonScan *scan)
{
  scan_char (scan, '-');
  if (scan_char (scan, '0'))
    ;
  else if (scan->p < scan->end && *scan->p >= '1' && *scan->p <= '9')
    scan_digits (scan);
  else
    return FALSE;
  if (scan_char (scan, '.') && !scan_digits (scan))
    return FALSE;
  if (scan_char (scan, 'e') || scan_char (scan, 'E'))
    {
      if (!scan_char (scan, '+'))
        scan_char (scan, '-');
      if (!scan_digits (scan))
        return FALSE;
    }
  return TRUE;
}

static gboolean
scan_string (JsonScan *scan)
{
  if (!scan_char (scan, '"'))
    return FALSE;
  while (scan->p < scan->end)
    {
      guchar c = (guchar) *scan->p++;

      if (c == '"')
        return TRUE;
      if (c < 0x20)
        return FALSE;
      if (c == '\\')
        {
          if (scan->p >= scan->end)
            return FALSE;
          c = (guchar) *scan->p++;
          if (c == 'u')
            {
              for (int i = 0; i < 4; i++)
                if (scan->p >= scan->end || !g_ascii_isxdigit (*scan->p++))
                  return FALSE;
            }
          else if (strchr ("\"\\/bfnrt", c) == NULL || c == '\0')
            return FALSE;
        }
    }
  return FALSE;
}

static gboolean
scan_literal (JsonScan   *scan,
              const char *literal)
{
  gsize length = strlen (literal);

  if ((gsize) (scan->end - scan->p) < length || strncmp (scan->p, literal, length) != 0)
    return FALSE;
  scan->p += length;
  return TRUE;
}

static gboolean
scan_container (JsonScan *scan,
                char      close,
                gboolean  object)
{
  scan_whitespace (scan);
  if (scan_char (scan, close))
    return TRUE;
  for (;;)
    {
      if (object)
        {
          if (!scan_string (scan))
            return FALSE;
          scan_whitespace (scan);
          if (!scan_char (scan, ':'))
            return FALSE;
        }
      if (!scan_value (scan))
        return FALSE;
      if (scan_char (scan, close))
        return TRUE;
      if (!scan_char (scan, ','))
        return FALSE;
      scan_whitespace (scan);
    }
}

/* A value with the whitespace around it. */
static gboolean
scan_value (JsonScan *scan)
{
  gboolean ok;

  scan_whitespace (scan);
  if (scan->p >= scan->end)
    return FALSE;
  switch (*scan->p)
    {
    case '{':
      scan->p++;
      ok = scan_container (scan, '}', TRUE);
      break;
    case '[':
      scan->p++;
      ok = scan_container (scan, ']', FALSE);
      break;
    case '"':
      ok = scan_string (scan);
      break;
    case 't':
      ok = scan_literal (scan, "true");
      break;
    case 'f':
      ok = scan_literal (scan, "false");
      break;
    case 'n':
      ok = scan_literal (scan, "null");
      break;
    default:
      ok = scan_number (scan);
      break;
    }
  scan_whitespace (scan);
  return ok;
}

/* Whether @text is exactly one JSON value. */
static gboolean
is_strict_json (const char *text,
                gsize       length)
{
  JsonScan scan = { text, text + length };

  return scan_value (&scan) && scan.p == scan.end;
}

/* The string member @name of @object, or NULL if absent or not a string. */
static const char *
get_string_member (JsonObject *object,
                   const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/* The token bucket: TRUE if the frame may be handled. */
static gboolean
take_token_locked (ChatSession *session)
{
  ChatRoom *room = session->room;
  gint64 now = room->monotonic (room->clock_data);

  if (now > session->refilled_at)
    {
      session->credit = MIN (BUCKET_US, session->credit + (now - session->refilled_at));
      session->refilled_at = now;
    }
  if (session->credit >= TOKEN_US)
    {
      session->credit -= TOKEN_US;
      session->throttled = FALSE;
      return TRUE;
    }
  /* Tell the client once per throttled stretch, not once per dropped frame. */
  if (!session->throttled)
    {
      session->throttled = TRUE;
      send_error_locked (session, "rate-limited",
                         "Slow down: at most 10 messages per second (bursts of 20); "
                         "messages are dropped until then");
    }
  return FALSE;
}

/* Handlers; each runs with the room locked */

static void
handle_login_locked (ChatSession *session,
                     JsonObject  *object)
{
  ChatRoom *room = session->room;
  const char *raw = get_string_member (object, "name");
  g_autofree char *name = NULL;
  g_autofree char *welcome = NULL;
  g_autofree char *joined = NULL;

  if (session->name != NULL)
    {
      send_error_locked (session, "bad-message", "Already logged in");
      return;
    }
  if (raw == NULL)
    {
      send_error_locked (session, "bad-message", "A login needs a string “name”");
      return;
    }
  if (!chat_normalize_name (raw, &name))
    {
      send_error_locked (session, "bad-name",
                         "A name is 1 to 32 characters, without control characters");
      return;
    }
  if (g_hash_table_contains (room->names, name))
    {
      g_autofree char *message = g_strdup_printf ("The name “%s” is taken", name);
      send_error_locked (session, "name-taken", message);
      return;
    }

  session->name = g_steal_pointer (&name);
  g_hash_table_insert (room->names, session->name, session);
  g_ptr_array_add (room->members, session);
  g_debug ("A user logged in; %u online", room->members->len);

  welcome = frame_welcome_locked (room, session);
  session->send (welcome, session->user_data);
  joined = frame_name_count ("joined", session->name, room->members->len);
  broadcast_locked (room, joined, session);
}

static void
handle_message_locked (ChatSession *session,
                       JsonObject  *object)
{
  ChatRoom *room = session->room;
  const char *text = get_string_member (object, "text");
  g_autofree char *json = NULL;
  ChatEntry *entry;

  /* json-glib decodes a lone surrogate escape ("\ud800") to invalid UTF-8. */
  if (text == NULL || !g_utf8_validate (text, -1, NULL))
    {
      send_error_locked (session, "bad-message", "A message needs a string “text”");
      return;
    }
  if (is_blank (text))
    {
      send_error_locked (session, "bad-message", "A message cannot be empty");
      return;
    }

  entry = g_new (ChatEntry, 1);
  entry->name = g_strdup (session->name);
  entry->text = g_strdup (text);
  entry->time_ms = room->real (room->clock_data) / 1000;
  json = frame_message (entry);

  if (room->history_length > 0)
    {
      g_queue_push_tail (&room->history, entry);
      while (room->history.length > room->history_length)
        chat_entry_free (g_queue_pop_head (&room->history));
    }
  else
    chat_entry_free (entry);

  broadcast_locked (room, json, NULL);
}

static void
handle_frame_locked (ChatSession *session,
                     const char  *text)
{
  gsize length = strlen (text);
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) error = NULL;
  JsonNode *root;
  JsonObject *object;
  const char *type;

  if (!g_utf8_validate (text, length, NULL))
    {
      send_error_locked (session, "bad-json", "A frame must be UTF-8 JSON");
      return;
    }
  /* A code point is at most 4 bytes: skip counting what is surely too long. */
  if (length > 4 * CHAT_MAX_FRAME_CHARS ||
      g_utf8_strlen (text, length) > CHAT_MAX_FRAME_CHARS)
    {
      send_error_locked (session, "too-long", "A frame is at most 2000 characters");
      return;
    }

  parser = json_parser_new_immutable ();
  if (!is_strict_json (text, length) ||
      !json_parser_load_from_data (parser, text, length, &error) ||
      (root = json_parser_get_root (parser)) == NULL)
    {
      send_error_locked (session, "bad-json", "A frame must be one JSON object");
      return;
    }
  if (!JSON_NODE_HOLDS_OBJECT (root))
    {
      send_error_locked (session, "bad-message", "A frame must be a JSON object");
      return;
    }
  object = json_node_get_object (root);
  type = get_string_member (object, "type");
  if (type == NULL)
    {
      send_error_locked (session, "bad-message", "A frame needs a string “type”");
      return;
    }

  if (strcmp (type, "login") == 0)
    {
      handle_login_locked (session, object);
      return;
    }
  if (strcmp (type, "message") != 0 && strcmp (type, "typing") != 0 &&
      strcmp (type, "stop-typing") != 0)
    {
      send_error_locked (session, "unknown-type",
                         "Unknown type: expected login, message, typing or stop-typing");
      return;
    }
  if (session->name == NULL)
    {
      send_error_locked (session, "not-logged-in", "Log in first");
      return;
    }

  if (strcmp (type, "message") == 0)
    handle_message_locked (session, object);
  else
    {
      g_autofree char *json = frame_name (type, session->name);
      broadcast_locked (session->room, json, session);
    }
}

/* Sessions */

/**
 * chat_session_new:
 * @room: the room
 * @send: (scope notified): delivers frames to the client
 * @user_data: data for @send
 * @destroy: (nullable): frees @user_data in chat_session_free()
 *
 * A new connection, not logged in yet. Thread-safe.
 *
 * Returns: (transfer full): the session
 */
ChatSession *
chat_session_new (ChatRoom       *room,
                  ChatSendFunc    send,
                  gpointer        user_data,
                  GDestroyNotify  destroy)
{
  ChatSession *session;

  g_return_val_if_fail (room != NULL, NULL);
  g_return_val_if_fail (send != NULL, NULL);

  session = g_new0 (ChatSession, 1);
  session->room = chat_room_ref (room);
  session->send = send;
  session->user_data = user_data;
  session->destroy = destroy;
  session->credit = BUCKET_US;
  session->refilled_at = room->monotonic (room->clock_data);
  return session;
}

/**
 * chat_session_receive:
 * @session: a session
 * @text: a text frame from the client, as received
 *
 * Handles one client frame: anything at all, since it comes from the
 * network. Problems are answered with an error frame to this client only.
 * Call from one thread at a time per session.
 */
void
chat_session_receive (ChatSession *session,
                      const char  *text)
{
  g_autoptr(GMutexLocker) locker = NULL;

  g_return_if_fail (session != NULL);
  g_return_if_fail (text != NULL);

  locker = g_mutex_locker_new (&session->room->lock);
  if (take_token_locked (session))
    handle_frame_locked (session, text);
}

/**
 * chat_session_receive_binary:
 * @session: a session
 *
 * Handles a binary frame from the client: the protocol has none.
 */
void
chat_session_receive_binary (ChatSession *session)
{
  g_autoptr(GMutexLocker) locker = NULL;

  g_return_if_fail (session != NULL);

  locker = g_mutex_locker_new (&session->room->lock);
  if (take_token_locked (session))
    send_error_locked (session, "bad-message", "Frames are JSON text, not binary");
}

/**
 * chat_session_dup_name:
 * @session: a session
 *
 * Thread-safe.
 *
 * Returns: (transfer full) (nullable): the name, or %NULL before login
 */
char *
chat_session_dup_name (ChatSession *session)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&session->room->lock);

  return g_strdup (session->name);
}

/**
 * chat_session_free:
 * @session: (transfer full): a session
 *
 * The connection ended: leaves the room (the others are told if @session
 * was logged in), then frees @session and its user data.
 */
void
chat_session_free (ChatSession *session)
{
  ChatRoom *room;

  if (session == NULL)
    return;
  room = session->room;

  g_mutex_lock (&room->lock);
  if (session->name != NULL)
    {
      g_autofree char *left = NULL;

      g_hash_table_remove (room->names, session->name);
      g_ptr_array_remove (room->members, session);
      left = frame_name_count ("left", session->name, room->members->len);
      broadcast_locked (room, left, NULL);
      g_debug ("A user left; %u online", room->members->len);
    }
  g_mutex_unlock (&room->lock);

  if (session->destroy != NULL)
    session->destroy (session->user_data);
  g_free (session->name);
  chat_room_unref (room);
  g_free (session);
}
