/* socketio-echo: a Socket.IO server for tests, benchmarks and the official
 * protocol test suite (socketio/socket.io-protocol test-suite/), behaving
 * like the suite's reference server.
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <socketio/socketio.h>

static gboolean verbose;
static GMutex print_lock;

static void
event_line (const char *format,
            ...) G_GNUC_PRINTF (1, 2);

static void
event_line (const char *format,
            ...)
{
  va_list args;

  if (!verbose)
    return;
  g_mutex_lock (&print_lock);
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
  g_mutex_unlock (&print_lock);
}

static void
on_message (SocketIOSocket *socket,
            const char     *name,
            JsonArray      *args,
            GPtrArray      *attachments,
            SocketIOAck    *ack,
            gpointer        user_data)
{
  g_autoptr(GError) error = NULL;

  if (!socket_io_socket_emit (socket, "message-back", args, attachments, &error))
    g_debug ("emit to %s failed: %s", socket_io_socket_get_id (socket), error->message);
}

static void
on_message_with_ack (SocketIOSocket *socket,
                     const char     *name,
                     JsonArray      *args,
                     GPtrArray      *attachments,
                     SocketIOAck    *ack,
                     gpointer        user_data)
{
  g_autoptr(GError) error = NULL;

  if (ack != NULL && !socket_io_ack_send (ack, args, attachments, &error))
    g_debug ("ack to %s failed: %s", socket_io_socket_get_id (socket), error->message);
}

static void
on_broadcast (SocketIOSocket *socket,
              const char     *name,
              JsonArray      *args,
              GPtrArray      *attachments,
              SocketIOAck    *ack,
              gpointer        user_data)
{
  g_autoptr(GError) error = NULL;

  if (!socket_io_namespace_emit (socket_io_socket_get_namespace (socket), "broadcast-back",
                                 args, attachments, &error))
    g_debug ("broadcast failed: %s", error->message);
}

static void
on_disconnect (SocketIOSocket *socket,
               const char     *reason,
               gpointer        user_data)
{
  event_line ("disconnect %s %s %s", socket_io_namespace_get_name (socket_io_socket_get_namespace (socket)),
              socket_io_socket_get_id (socket), reason);
}

static void
on_connection (SocketIONamespace *nsp,
               SocketIOSocket    *socket,
               gpointer           user_data)
{
  g_autoptr(JsonArray) args = json_array_new ();
  g_autoptr(GError) error = NULL;
  JsonNode *auth = socket_io_socket_get_auth (socket);

  event_line ("connect %s %s", socket_io_namespace_get_name (nsp), socket_io_socket_get_id (socket));
  g_signal_connect (socket, "event::message", G_CALLBACK (on_message), NULL);
  g_signal_connect (socket, "event::message-with-ack", G_CALLBACK (on_message_with_ack), NULL);
  g_signal_connect (socket, "event::broadcast", G_CALLBACK (on_broadcast), NULL);
  g_signal_connect (socket, "disconnect", G_CALLBACK (on_disconnect), NULL);

  if (auth != NULL)
    json_array_add_element (args, json_node_ref (auth));
  else
    {
      JsonNode *empty = json_node_new (JSON_NODE_OBJECT);

      json_node_take_object (empty, json_object_new ());
      json_array_add_element (args, empty);
    }
  if (!socket_io_socket_emit (socket, "auth", args, NULL, &error))
    g_debug ("emit to %s failed: %s", socket_io_socket_get_id (socket), error->message);
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
  g_autofree char *address = NULL;
  g_autofree char *path = NULL;
  g_autofree char *cors = NULL;
  int port = 3000;
  int ping_interval = 25000;
  int ping_timeout = 20000;
  gint64 max_payload = 1000000;
  int loop_threads = 0;
  int connect_timeout = 45000;
  gboolean eio3 = FALSE;
  gboolean recovery = FALSE;
  int max_disconnection = 120000;
  GOptionEntry entries[] = {
    { "address", 0, 0, G_OPTION_ARG_STRING, &address, "Address to bind (default 127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port (default 3000; 0 picks a free one)", "PORT" },
    { "path", 0, 0, G_OPTION_ARG_STRING, &path, "Engine path (default /socket.io/)", "PATH" },
    { "ping-interval", 0, 0, G_OPTION_ARG_INT, &ping_interval, "Heartbeat interval in ms (default 25000)", "MS" },
    { "ping-timeout", 0, 0, G_OPTION_ARG_INT, &ping_timeout, "Heartbeat timeout in ms (default 20000)", "MS" },
    { "max-payload", 0, 0, G_OPTION_ARG_INT64, &max_payload, "Largest payload in bytes (default 1000000)", "BYTES" },
    { "cors", 0, 0, G_OPTION_ARG_STRING, &cors, "Allowed CORS origin(s): * or a comma-separated list", "ORIGIN" },
    { "loop-threads", 0, 0, G_OPTION_ARG_INT, &loop_threads, "Shared session threads (default 0: one per session)", "N" },
    { "connect-timeout", 0, 0, G_OPTION_ARG_INT, &connect_timeout, "Milliseconds a client may take to join a namespace (default 45000; 0: no limit)", "MS" },
    { "connection-state-recovery", 0, 0, G_OPTION_ARG_NONE, &recovery, "Let clients that reconnect in time recover their socket id, rooms, data and missed events", NULL },
    { "max-disconnection-duration", 0, 0, G_OPTION_ARG_INT, &max_disconnection, "Milliseconds a disconnected socket stays recoverable (default 120000)", "MS" },
    { "eio3", 0, 0, G_OPTION_ARG_NONE, &eio3, "Also accept socket.io 2.x clients (Engine.IO v3, Socket.IO protocol v4)", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print one line per connect and disconnect", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Socket.IO echo server");
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) engine = NULL;
  g_autoptr(SocketIOServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  guint sigint, sigterm;

  g_option_context_set_summary (options,
    "On connection to / and /custom emits “auth” with the handshake's auth; answers\n"
    "“message” with “message-back”, acknowledges “message-with-ack”, and broadcasts\n"
    "“broadcast” as “broadcast-back” to the whole namespace, all with the same arguments.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr ("socketio-echo: %s\n", error->message);
      return 2;
    }
  if (address == NULL)
    address = g_strdup ("127.0.0.1");
  if (path == NULL)
    path = g_strdup ("/socket.io/");
  if (port < 0 || port > 65535 || ping_interval < 1 || ping_timeout < 1 ||
      max_payload < 1 || max_payload > G_MAXUINT32 || loop_threads < 0 || loop_threads > 1024 ||
      connect_timeout < 0 || max_disconnection < 0)
    {
      g_printerr ("socketio-echo: an option is out of range (see --help)\n");
      return 2;
    }

  engine = g_object_new (ENGINE_IO_TYPE_SERVER,
                         "path", path,
                         "ping-interval", (guint) ping_interval,
                         "ping-timeout", (guint) ping_timeout,
                         "max-payload", (guint64) max_payload,
                         "cors-origin", cors,
                         "loop-threads", (guint) loop_threads,
                         "allow-eio3", eio3,
                         NULL);
  server = g_object_new (SOCKET_IO_TYPE_SERVER,
                         "engine", engine,
                         "connect-timeout", (guint) connect_timeout,
                         "connection-state-recovery", recovery,
                         "max-disconnection-duration", (guint) max_disconnection,
                         NULL);
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(SocketIONamespace) nsp = socket_io_server_of (server, i == 0 ? "/" : "/custom");

      g_signal_connect (nsp, "connection", G_CALLBACK (on_connection), NULL);
    }

  if (!engine_io_server_listen (engine, address, (guint) port, &error))
    {
      g_printerr ("socketio-echo: %s\n", error->message);
      return 1;
    }

  printf ("listening on http://%s%s%s:%u%s\n",
          strchr (address, ':') ? "[" : "", address, strchr (address, ':') ? "]" : "",
          engine_io_server_get_port (engine), path);
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  sigint = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);

  engine_io_server_close (engine);
  return 0;
}
