/* noloss-server: the server half of the no-loss test (tests/soak/noloss.mjs).
 *
 * Uses only the public API. Listens on 127.0.0.1, port 0, and prints
 * `port N`. For every session it
 *   - sends numbered messages at a steady rate with
 *     engine_io_socket_send_text_full() / _send_binary_full() and checks
 *     that the flush callbacks come once per message, in order, TRUE for a
 *     prefix and FALSE for the rest (the messages it learnt it could not
 *     deliver);
 *   - checks that the numbered messages from the client are exactly
 *     1, 2, 3, … with the exact content (no gap, duplicate, reordering or
 *     corruption);
 *   - on the client's `!END <n> <mode>` checks it has received exactly n,
 *     stops its timer and ends the session in one of three ways:
 *       fin    sends `!FIN <sent>` and closes;
 *       burst  queues BURST more numbered messages and `!FIN <sent>`, then
 *              closes at once (close with a full queue: all must still be
 *              delivered);
 *       stall  (polling) sends `!PAUSE`; once that was flushed the client
 *              stops polling, so the STALL_EXTRA numbered messages sent
 *              300 ms later and the close can never be delivered: their
 *              flush callbacks must say FALSE (close before flush);
 *   - prints one line `S {json}` when the session's ::close runs, with its
 *     counts and any error.
 * SIGTERM / SIGINT: closes the server and prints `bye SESSIONS`.
 *
 * Message format (shared with noloss.mjs): text `<tag><n>|<filler(n)>` with
 * tag `s` (server) or `c` (client); every 5th number is binary instead:
 * 4 bytes big-endian n, then n % 41 bytes (n * 31 + i) & 0xff.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <engineio/engineio.h>

#define BURST 20
#define STALL_EXTRA 10
#define STALL_DELAY_MS 300
#define MAX_ERRORS 5

static GMutex print_lock;
static gint n_sessions;

static int send_interval = 250;

/* The filler after `|`: whole code points, 1- to 4-byte UTF-8. */
static const char *const filler_units[] = {
  "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
  "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
  "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
};

static char *
make_text (char    tag,
           guint64 n)
{
  GString *s = g_string_new (NULL);
  guint len = (guint) (n % 23);

  g_string_append_printf (s, "%c%" G_GUINT64_FORMAT "|", tag, n);
  for (guint i = 0; i < len; i++)
    g_string_append (s, filler_units[(n + i) % G_N_ELEMENTS (filler_units)]);
  return g_string_free (s, FALSE);
}

static GBytes *
make_binary (guint64 n)
{
  gsize len = 4 + n % 41;
  guint8 *b = g_malloc (len);

  b[0] = (n >> 24) & 0xff;
  b[1] = (n >> 16) & 0xff;
  b[2] = (n >> 8) & 0xff;
  b[3] = n & 0xff;
  for (gsize i = 4; i < len; i++)
    b[i] = (n * 31 + (i - 4)) & 0xff;
  return g_bytes_new_take (b, len);
}

static gboolean
is_binary_number (guint64 n)
{
  return n % 5 == 0;
}

typedef struct
{
  EngineIOSocket *socket;      /* not a reference: the socket owns us */
  GSource        *timer;       /* the send timer, or the stall delay */
  guint64         recv_next;   /* the client's next number */
  guint64         sent;        /* numbered messages queued */
  guint64         cb_next;     /* the next flush callback expected */
  guint64         flushed;
  guint64         unflushed;
  guint64         unflushed_first;
  guint           heartbeats;
  gboolean        upgraded;
  gboolean        ended;       /* !END received */
  guint64         end_n;
  char           *mode;
  char           *start_transport;
  guint           n_errors;
  GString        *errors;      /* the first MAX_ERRORS problems, `; `-separated */
} Session;

static void G_GNUC_PRINTF (2, 3)
session_error (Session    *s,
               const char *format,
               ...)
{
  va_list args;

  s->n_errors++;
  if (s->n_errors > MAX_ERRORS)
    return;
  if (s->errors->len > 0)
    g_string_append (s->errors, "; ");
  va_start (args, format);
  g_string_append_vprintf (s->errors, format, args);
  va_end (args);
}

static void
session_free (gpointer data)
{
  Session *s = data;

  if (s->timer != NULL)
    {
      g_source_destroy (s->timer);
      g_source_unref (s->timer);
    }
  g_string_free (s->errors, TRUE);
  g_free (s->mode);
  g_free (s->start_transport);
  g_free (s);
}

static Session *
session_get (EngineIOSocket *socket)
{
  return engine_io_socket_get_user_data (socket);
}

static void
stop_timer (Session *s)
{
  if (s->timer != NULL)
    {
      g_source_destroy (s->timer);
      g_clear_pointer (&s->timer, g_source_unref);
    }
}

static void
on_flushed (EngineIOSocket *socket,
            gboolean        flushed,
            gpointer        user_data)
{
  Session *s = session_get (socket);
  guint64 n = GPOINTER_TO_SIZE (user_data);

  if (n != s->cb_next)
    session_error (s, "flush callback for #%" G_GUINT64_FORMAT " where #%" G_GUINT64_FORMAT " was expected",
                   n, s->cb_next);
  s->cb_next = n + 1;
  if (flushed)
    {
      if (s->unflushed > 0)
        session_error (s, "#%" G_GUINT64_FORMAT " flushed after #%" G_GUINT64_FORMAT " was reported undeliverable",
                       n, s->unflushed_first);
      s->flushed++;
    }
  else
    {
      if (s->unflushed++ == 0)
        s->unflushed_first = n;
    }
}

/* Queues the next numbered message. */
static gboolean
send_numbered (Session *s)
{
  g_autoptr(GError) error = NULL;
  guint64 n = s->sent + 1;
  gboolean ok;

  if (is_binary_number (n))
    {
      g_autoptr(GBytes) data = make_binary (n);
      ok = engine_io_socket_send_binary_full (s->socket, data, on_flushed, GSIZE_TO_POINTER (n), NULL, &error);
    }
  else
    {
      g_autofree char *text = make_text ('s', n);
      ok = engine_io_socket_send_text_full (s->socket, text, on_flushed, GSIZE_TO_POINTER (n), NULL, &error);
    }
  if (!ok)
    {
      session_error (s, "send of #%" G_GUINT64_FORMAT " failed: %s", n, error->message);
      return FALSE;
    }
  s->sent = n;
  return TRUE;
}

static gboolean
on_send_timer (gpointer data)
{
  Session *s = data;

  if (engine_io_socket_is_closed (s->socket) || !send_numbered (s))
    {
      g_clear_pointer (&s->timer, g_source_unref);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static void
send_control (Session    *s,
              const char *text)
{
  g_autoptr(GError) error = NULL;

  if (!engine_io_socket_send_text (s->socket, text, &error))
    session_error (s, "send of “%s” failed: %s", text, error->message);
}

static void
send_fin (Session *s)
{
  g_autofree char *fin = g_strdup_printf ("!FIN %" G_GUINT64_FORMAT, s->sent);
  send_control (s, fin);
}

/* stall: STALL_DELAY_MS after the client saw !PAUSE. */
static gboolean
on_stall_timer (gpointer data)
{
  Session *s = data;

  g_clear_pointer (&s->timer, g_source_unref);
  for (guint i = 0; i < STALL_EXTRA; i++)
    send_numbered (s);
  engine_io_socket_close (s->socket);
  return G_SOURCE_REMOVE;
}

static void
on_pause_flushed (EngineIOSocket *socket,
                  gboolean        flushed,
                  gpointer        user_data)
{
  Session *s = session_get (socket);

  if (!flushed)
    {
      session_error (s, "the !PAUSE control message was not delivered");
      return;
    }
  s->timer = g_timeout_source_new (STALL_DELAY_MS);
  g_source_set_callback (s->timer, on_stall_timer, s, NULL);
  g_source_attach (s->timer, engine_io_socket_get_context (socket));
}

static void
handle_end (Session    *s,
            const char *text)
{
  g_auto(GStrv) parts = g_strsplit (text, " ", -1);
  guint64 n;

  if (s->ended)
    {
      session_error (s, "a second !END: “%s”", text);
      return;
    }
  if (g_strv_length (parts) != 3 || !g_ascii_string_to_unsigned (parts[1], 10, 0, G_MAXUINT64, &n, NULL))
    {
      session_error (s, "bad control message “%s”", text);
      return;
    }
  s->ended = TRUE;
  s->end_n = n;
  s->mode = g_strdup (parts[2]);
  if (n != s->recv_next - 1)
    session_error (s, "the client says it sent %" G_GUINT64_FORMAT " messages, %" G_GUINT64_FORMAT " arrived",
                   n, s->recv_next - 1);
  stop_timer (s);

  if (g_str_equal (s->mode, "fin"))
    {
      send_fin (s);
      engine_io_socket_close (s->socket);
    }
  else if (g_str_equal (s->mode, "burst"))
    {
      for (guint i = 0; i < BURST; i++)
        send_numbered (s);
      send_fin (s);
      engine_io_socket_close (s->socket);
    }
  else if (g_str_equal (s->mode, "stall"))
    {
      g_autoptr(GError) error = NULL;
      if (!engine_io_socket_send_text_full (s->socket, "!PAUSE", on_pause_flushed, NULL, NULL, &error))
        session_error (s, "send of !PAUSE failed: %s", error->message);
    }
  else
    {
      session_error (s, "unknown end mode “%s”", s->mode);
      engine_io_socket_close (s->socket);
    }
}

/* Checks one numbered message from the client: exact number and content. */
static void
check_numbered (Session    *s,
                const char *text,
                GBytes     *data)
{
  guint64 want = s->recv_next;
  guint64 n;

  if (s->ended)
    {
      session_error (s, "a numbered message after !END");
      return;
    }

  if (text != NULL)
    {
      const char *bar = strchr (text, '|');
      g_autofree char *number = NULL;
      g_autofree char *expected = NULL;

      if (text[0] != 'c' || bar == NULL)
        {
          session_error (s, "malformed message after #%" G_GUINT64_FORMAT ": “%.40s”", want - 1, text);
          return;
        }
      number = g_strndup (text + 1, bar - text - 1);
      if (!g_ascii_string_to_unsigned (number, 10, 1, G_MAXUINT64, &n, NULL))
        {
          session_error (s, "bad number in “%.40s”", text);
          return;
        }
      expected = make_text ('c', n);
      if (is_binary_number (n) || strcmp (text, expected) != 0)
        {
          session_error (s, "#%" G_GUINT64_FORMAT " content differs: “%.60s”", n, text);
          return;
        }
    }
  else
    {
      gsize len = 0;
      const guint8 *b = g_bytes_get_data (data, &len);
      g_autoptr(GBytes) expected = NULL;

      if (len < 4)
        {
          session_error (s, "binary message of %" G_GSIZE_FORMAT " bytes after #%" G_GUINT64_FORMAT, len, want - 1);
          return;
        }
      n = ((guint64) b[0] << 24) | ((guint64) b[1] << 16) | ((guint64) b[2] << 8) | b[3];
      expected = make_binary (n);
      if (!is_binary_number (n) || !g_bytes_equal (data, expected))
        {
          session_error (s, "binary #%" G_GUINT64_FORMAT " content differs (%" G_GSIZE_FORMAT " bytes)", n, len);
          return;
        }
    }

  if (n != want)
    {
      session_error (s, "got #%" G_GUINT64_FORMAT " where #%" G_GUINT64_FORMAT " was expected (%s)",
                     n, want, n < want ? "duplicate or reordered" : "gap");
      if (n < want)
        return;
    }
  s->recv_next = n + 1;
}

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  Session *s = session_get (socket);

  if (text != NULL && text[0] == '!')
    {
      if (g_str_has_prefix (text, "!END "))
        handle_end (s, text);
      else
        session_error (s, "unknown control message “%.40s”", text);
      return;
    }
  check_numbered (s, text, data);
}

static void
on_heartbeat (EngineIOSocket *socket,
              gpointer        user_data)
{
  session_get (socket)->heartbeats++;
}

static void
on_transport (EngineIOSocket *socket,
              GParamSpec     *pspec,
              gpointer        user_data)
{
  Session *s = session_get (socket);

  if (engine_io_socket_get_transport (socket) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      if (s->upgraded)
        session_error (s, "a second upgrade");
      s->upgraded = TRUE;
    }
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  Session *s = session_get (socket);
  g_autofree char *errors = NULL;
  g_autofree char *desc = NULL;

  stop_timer (s);
  if (s->cb_next != s->sent + 1)
    session_error (s, "%" G_GUINT64_FORMAT " messages sent but %" G_GUINT64_FORMAT " flush callbacks ran before ::close",
                   s->sent, s->cb_next - 1);
  if (s->flushed + s->unflushed != s->sent)
    session_error (s, "flushed %" G_GUINT64_FORMAT " + unflushed %" G_GUINT64_FORMAT " != sent %" G_GUINT64_FORMAT,
                   s->flushed, s->unflushed, s->sent);

  errors = g_strescape (s->errors->str, NULL);
  desc = g_strescape (description != NULL ? description : "", NULL);
  g_mutex_lock (&print_lock);
  printf ("S {\"sid\":\"%s\",\"version\":%d,\"start\":\"%s\",\"transport\":\"%s\",\"upgraded\":%s,"
          "\"recv\":%" G_GUINT64_FORMAT ",\"sent\":%" G_GUINT64_FORMAT ",\"flushed\":%" G_GUINT64_FORMAT ","
          "\"unflushed\":%" G_GUINT64_FORMAT ",\"heartbeats\":%u,\"ended\":%s,\"end_n\":%" G_GUINT64_FORMAT ","
          "\"mode\":\"%s\",\"reason\":\"%s\",\"description\":\"%s\",\"n_errors\":%u,\"errors\":\"%s\"}\n",
          engine_io_socket_get_id (socket),
          engine_io_socket_get_protocol_version (socket) == ENGINE_IO_PROTOCOL_V3 ? 3 : 4,
          s->start_transport,
          engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)),
          s->upgraded ? "true" : "false",
          s->recv_next - 1, s->sent, s->flushed, s->unflushed, s->heartbeats,
          s->ended ? "true" : "false", s->end_n, s->mode != NULL ? s->mode : "",
          engine_io_close_reason_to_string (reason), desc, s->n_errors, errors);
  fflush (stdout);
  g_mutex_unlock (&print_lock);
}

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  Session *s = g_new0 (Session, 1);

  s->socket = socket;
  s->recv_next = 1;
  s->cb_next = 1;
  s->errors = g_string_new (NULL);
  s->start_transport = g_strdup (engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)));
  engine_io_socket_set_user_data (socket, s, session_free);
  g_atomic_int_inc (&n_sessions);

  g_signal_connect (socket, "message", G_CALLBACK (on_message), NULL);
  g_signal_connect (socket, "heartbeat", G_CALLBACK (on_heartbeat), NULL);
  g_signal_connect (socket, "notify::transport", G_CALLBACK (on_transport), NULL);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), NULL);

  /* The first message goes out at once, then one per interval. */
  send_numbered (s);
  s->timer = g_timeout_source_new (send_interval);
  g_source_set_callback (s->timer, on_send_timer, s, NULL);
  g_source_attach (s->timer, engine_io_socket_get_context (socket));
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

int
main (int   argc,
      char *argv[])
{
  int loop_threads = 0;
  int ping_interval = 3000;
  int ping_timeout = 10000;
  GOptionEntry entries[] = {
    { "loop-threads", 0, 0, G_OPTION_ARG_INT, &loop_threads, "Shared session threads (0: one per session)", "N" },
    { "ping-interval", 0, 0, G_OPTION_ARG_INT, &ping_interval, "Heartbeat interval in ms (default 3000)", "MS" },
    { "ping-timeout", 0, 0, G_OPTION_ARG_INT, &ping_timeout, "Heartbeat timeout in ms (default 10000)", "MS" },
    { "send-interval", 0, 0, G_OPTION_ARG_INT, &send_interval, "ms between numbered messages per session (default 250)", "MS" },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- no-loss test server");
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  guint sigint, sigterm;

  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("noloss-server: %s\n", error->message);
      return 2;
    }
  if (loop_threads < 0 || ping_interval < 1 || ping_timeout < 1 || send_interval < 1)
    {
      g_printerr ("noloss-server: an option is out of range\n");
      return 2;
    }

  server = g_object_new (ENGINE_IO_TYPE_SERVER,
                         "ping-interval", (guint) ping_interval,
                         "ping-timeout", (guint) ping_timeout,
                         "allow-eio3", TRUE,
                         "loop-threads", (guint) loop_threads,
                         NULL);
  g_signal_connect (server, "connection", G_CALLBACK (on_connection), NULL);
  if (!engine_io_server_listen (server, "127.0.0.1", 0, &error))
    {
      g_printerr ("noloss-server: %s\n", error->message);
      return 1;
    }
  g_mutex_lock (&print_lock);
  printf ("port %u\n", engine_io_server_get_port (server));
  fflush (stdout);
  g_mutex_unlock (&print_lock);

  loop = g_main_loop_new (NULL, FALSE);
  sigint = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);

  engine_io_server_close (server);
  g_mutex_lock (&print_lock);
  printf ("bye %d\n", g_atomic_int_get (&n_sessions));
  fflush (stdout);
  g_mutex_unlock (&print_lock);
  return 0;
}
