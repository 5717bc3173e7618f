/* socketio-echo: a Socket.IO server for tests, benchmarks and the official
 * protocol test suite (socketio/socket.io-protocol test-suite/), behaving
 * like the suite's reference server.
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <socketio/socketio.h>
#ifdef SOCKET_IO_HAVE_REDIS
#include <socketio/socketio-redis.h>
#endif

#include "tool-cli.h"

#define NAME "socketio-echo"

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

/* "join" ROOM: joins ROOM, then acknowledges (no arguments). */
static void
on_join (SocketIOSocket *socket,
         const char     *name,
         JsonArray      *args,
         GPtrArray      *attachments,
         SocketIOAck    *ack,
         gpointer        user_data)
{
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;

  if (room != NULL)
    socket_io_socket_join (socket, room);
  if (ack != NULL)
    socket_io_ack_send (ack, NULL, NULL, NULL);
}

/* "to-room" ROOM ARGS...: emits "room-back" ARGS... to ROOM (every node
 * of a cluster), then acknowledges. */
static void
on_to_room (SocketIOSocket *socket,
            const char     *name,
            JsonArray      *args,
            GPtrArray      *attachments,
            SocketIOAck    *ack,
            gpointer        user_data)
{
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;
  g_autoptr(JsonArray) rest = json_array_new ();
  g_autoptr(GError) error = NULL;

  if (room != NULL)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), room);

      for (guint i = 1; i < json_array_get_length (args); i++)
        json_array_add_element (rest, json_node_copy (json_array_get_element (args, i)));
      if (!socket_io_broadcast_operator_emit (op, "room-back", rest, attachments, NULL, &error))
        g_debug ("room broadcast failed: %s", error->message);
    }
  if (ack != NULL)
    socket_io_ack_send (ack, NULL, NULL, NULL);
}

/* "all-join" ROOM: makes every socket of the namespace (every node of a
 * cluster) join ROOM, then acknowledges. */
static void
on_all_join (SocketIOSocket *socket,
             const char     *name,
             JsonArray      *args,
             GPtrArray      *attachments,
             SocketIOAck    *ack,
             gpointer        user_data)
{
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;

  if (room != NULL)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_broadcast (socket_io_socket_get_namespace (socket));

      socket_io_broadcast_operator_sockets_join (op, room);
    }
  if (ack != NULL)
    socket_io_ack_send (ack, NULL, NULL, NULL);
}

/* "all-leave" ROOM: makes every socket of the namespace (every node of a
 * cluster) leave ROOM, then acknowledges. */
static void
on_all_leave (SocketIOSocket *socket,
              const char     *name,
              JsonArray      *args,
              GPtrArray      *attachments,
              SocketIOAck    *ack,
              gpointer        user_data)
{
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;

  if (room != NULL)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_broadcast (socket_io_socket_get_namespace (socket));

      socket_io_broadcast_operator_sockets_leave (op, room);
    }
  if (ack != NULL)
    socket_io_ack_send (ack, NULL, NULL, NULL);
}

/* "disconnect-room" ROOM: disconnects the sockets in ROOM (every node of a
 * cluster; the transport stays open), then acknowledges. */
static void
on_disconnect_room (SocketIOSocket *socket,
                    const char     *name,
                    JsonArray      *args,
                    GPtrArray      *attachments,
                    SocketIOAck    *ack,
                    gpointer        user_data)
{
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;

  if (ack != NULL)
    socket_io_ack_send (ack, NULL, NULL, NULL);
  if (room != NULL)
    {
      g_autoptr(SocketIOBroadcastOperator) op =
        socket_io_namespace_to (socket_io_socket_get_namespace (socket), room);

      socket_io_broadcast_operator_disconnect_sockets (op, FALSE);
    }
}

/* "publish-failures": acknowledges with the number of publications the
 * namespace's Redis adapter could not make
 * (socket_io_redis_adapter_get_publish_failures()), or null without one. */
static void
on_publish_failures (SocketIOSocket *socket,
                     const char     *name,
                     JsonArray      *args,
                     GPtrArray      *attachments,
                     SocketIOAck    *ack,
                     gpointer        user_data)
{
  g_autoptr(JsonArray) reply = json_array_new ();

  if (ack == NULL)
    return;
#ifdef SOCKET_IO_HAVE_REDIS
  {
    SocketIOAdapter *adapter = socket_io_namespace_get_adapter (socket_io_socket_get_namespace (socket));

    if (SOCKET_IO_IS_REDIS_ADAPTER (adapter))
      json_array_add_int_element (reply, (gint64) socket_io_redis_adapter_get_publish_failures (
                                           SOCKET_IO_REDIS_ADAPTER (adapter)));
    else
      json_array_add_null_element (reply);
  }
#else
  json_array_add_null_element (reply);
#endif
  socket_io_ack_send (ack, reply, NULL, NULL);
}

#ifdef SOCKET_IO_HAVE_REDIS
static void
on_fetched (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(SocketIOAck) ack = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) sockets = socket_io_redis_adapter_fetch_sockets_finish (SOCKET_IO_REDIS_ADAPTER (source),
                                                                               result, &error);
  g_autoptr(JsonArray) ids = json_array_new ();
  g_autoptr(JsonArray) args = json_array_new ();

  for (guint i = 0; sockets != NULL && i < json_array_get_length (sockets); i++)
    json_array_add_string_element (ids, json_object_get_string_member_with_default (
                                          json_array_get_object_element (sockets, i), "id", ""));
  if (error != NULL)
    json_array_add_string_element (args, error->message);
  else
    json_array_add_null_element (args);
  json_array_add_array_element (args, g_steal_pointer (&ids));
  socket_io_ack_send (ack, args, NULL, NULL);
}
#endif

#ifdef SOCKET_IO_HAVE_REDIS
static void
on_server_side_answers (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  g_autoptr(SocketIOAck) ack = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) answers = socket_io_redis_adapter_server_side_emit_finish (SOCKET_IO_REDIS_ADAPTER (source),
                                                                                  result, &error);
  g_autoptr(JsonArray) args = json_array_new ();

  if (error != NULL)
    json_array_add_string_element (args, error->message);
  else
    json_array_add_null_element (args);
  json_array_add_array_element (args, answers != NULL ? g_steal_pointer (&answers) : json_array_new ());
  socket_io_ack_send (ack, args, NULL, NULL);
}

/* A server-side "ss-echo" from another node: answered with
 * {"node": "c", "args": ARGS} when asked. Adapter thread. */
static JsonNode *
on_ss_echo (SocketIORedisAdapter *adapter,
            const char           *name,
            JsonArray            *args,
            gpointer              user_data)
{
  JsonObject *answer = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (answer, "node", "c");
  json_object_set_array_member (answer, "args", json_array_ref (args));
  json_node_take_object (node, answer);
  return node;
}
#endif

/* "server-side-emit" NAME ARGS...: with --redis, sends the event to the
 * other servers with ack (socket_io_redis_adapter_server_side_emit_async())
 * and acknowledges with (error or null, the answers). */
static void
on_server_side_emit (SocketIOSocket *socket,
                     const char     *name,
                     JsonArray      *args,
                     GPtrArray      *attachments,
                     SocketIOAck    *ack,
                     gpointer        user_data)
{
  SocketIOAdapter *adapter = socket_io_namespace_get_adapter (socket_io_socket_get_namespace (socket));

  if (ack == NULL)
    return;
#ifdef SOCKET_IO_HAVE_REDIS
  if (SOCKET_IO_IS_REDIS_ADAPTER (adapter))
    {
      socket_io_redis_adapter_server_side_emit_async (SOCKET_IO_REDIS_ADAPTER (adapter), args, NULL,
                                                      on_server_side_answers, g_object_ref (ack));
      return;
    }
#endif
  {
    g_autoptr(JsonArray) reply = json_array_new ();

    (void) adapter;
    json_array_add_string_element (reply, "not in a cluster (--redis)");
    json_array_add_array_element (reply, json_array_new ());
    socket_io_ack_send (ack, reply, NULL, NULL);
  }
}

/* "fetch" [ROOM]: acknowledges with (error or null, the ids of the sockets
 * of every node of a cluster in ROOM, or in the namespace). */
static void
on_fetch (SocketIOSocket *socket,
          const char     *name,
          JsonArray      *args,
          GPtrArray      *attachments,
          SocketIOAck    *ack,
          gpointer        user_data)
{
  SocketIONamespace *nsp = socket_io_socket_get_namespace (socket);
  const char *room = json_array_get_length (args) > 0 ? json_array_get_string_element (args, 0) : NULL;
  const char *rooms[] = { room, NULL };

  if (ack == NULL)
    return;
#ifdef SOCKET_IO_HAVE_REDIS
  if (SOCKET_IO_IS_REDIS_ADAPTER (socket_io_namespace_get_adapter (nsp)))
    {
      socket_io_redis_adapter_fetch_sockets_async (SOCKET_IO_REDIS_ADAPTER (socket_io_namespace_get_adapter (nsp)),
                                                   rooms, NULL, NULL, on_fetched, g_object_ref (ack));
      return;
    }
#endif
  {
    g_autoptr(SocketIOBroadcastOperator) op = room != NULL ? socket_io_namespace_to (nsp, room)
                                                           : socket_io_namespace_broadcast (nsp);
    g_autoptr(GPtrArray) sockets = socket_io_broadcast_operator_fetch_sockets (op);
    g_autoptr(JsonArray) ids = json_array_new ();
    g_autoptr(JsonArray) reply = json_array_new ();

    for (guint i = 0; i < sockets->len; i++)
      json_array_add_string_element (ids, socket_io_socket_get_id (g_ptr_array_index (sockets, i)));
    json_array_add_null_element (reply);
    json_array_add_array_element (reply, g_steal_pointer (&ids));
    socket_io_ack_send (ack, reply, NULL, NULL);
  }
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
  g_signal_connect (socket, "event::join", G_CALLBACK (on_join), NULL);
  g_signal_connect (socket, "event::to-room", G_CALLBACK (on_to_room), NULL);
  g_signal_connect (socket, "event::all-join", G_CALLBACK (on_all_join), NULL);
  g_signal_connect (socket, "event::fetch", G_CALLBACK (on_fetch), NULL);
  g_signal_connect (socket, "event::server-side-emit", G_CALLBACK (on_server_side_emit), NULL);
  g_signal_connect (socket, "event::all-leave", G_CALLBACK (on_all_leave), NULL);
  g_signal_connect (socket, "event::disconnect-room", G_CALLBACK (on_disconnect_room), NULL);
  g_signal_connect (socket, "event::publish-failures", G_CALLBACK (on_publish_failures), NULL);
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
  g_autofree char *redis = NULL;
  g_autofree char *cookie = NULL;
  int max_disconnection = 120000;
  gboolean version = FALSE;
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
    { "cookie", 0, 0, G_OPTION_ARG_STRING, &cookie, "Set a cookie NAME holding the session id on the handshake (for sticky load balancers; default none)", "NAME" },
    { "redis", 0, 0, G_OPTION_ARG_STRING, &redis, "Join a cluster through Redis (wire of npm @socket.io/redis-adapter 8)", "redis://HOST[:PORT][/DB]" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print one line per connect and disconnect", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Socket.IO echo server");
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) engine = NULL;
  g_autoptr(SocketIOServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  guint sigint, sigterm;

  /* Localized GOption messages, and arguments decoded from the locale's
   * charset (UTF-8 ones fail to convert in the C locale). */
  setlocale (LC_ALL, "");

  g_option_context_set_summary (options,
    "On connection to / and /custom emits “auth” with the handshake's auth; answers\n"
    "“message” with “message-back”, acknowledges “message-with-ack”, and broadcasts\n"
    "“broadcast” as “broadcast-back” to the whole namespace, all with the same arguments.\n"
    "“join” ROOM joins ROOM; “to-room” ROOM ARGS... emits “room-back” ARGS... to ROOM;\n"
    "“all-join” ROOM makes every socket of the namespace join ROOM (each acknowledged);\n"
    "“fetch” [ROOM] acknowledges with (error or null, the ids of the sockets in ROOM or all);\n"
    "“all-leave” ROOM makes every socket leave ROOM; “disconnect-room” ROOM disconnects\n"
    "the sockets in ROOM (each acknowledged); “publish-failures” acknowledges with the\n"
    "number of publications the Redis adapter lost (null without --redis).");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr (NAME ": %s\n", error->message);
      return TOOL_EXIT_USAGE;
    }
  if (version)
    return tool_print_version (NAME, ENGINE_IO_VERSION_S);
  if (!tool_check_no_arguments (NAME, argc, argv))
    return TOOL_EXIT_USAGE;
  if (address == NULL)
    address = g_strdup ("127.0.0.1");
  if (path == NULL)
    path = g_strdup ("/socket.io/");
  /* The ranges of the servers' properties. */
  if (!tool_check_range (NAME, "port", port, 0, 65535) ||
      !tool_check_range (NAME, "ping-interval", ping_interval, 1, G_MAXINT / 2) ||
      !tool_check_range (NAME, "ping-timeout", ping_timeout, 1, G_MAXINT / 2) ||
      !tool_check_range (NAME, "max-payload", max_payload, 1, G_MAXUINT32) ||
      !tool_check_range (NAME, "loop-threads", loop_threads, 0, 1024) ||
      !tool_check_range (NAME, "connect-timeout", connect_timeout, 0, G_MAXINT64) ||
      !tool_check_range (NAME, "max-disconnection-duration", max_disconnection, 0, G_MAXINT64))
    return TOOL_EXIT_USAGE;

  engine = g_object_new (ENGINE_IO_TYPE_SERVER,
                         "path", path,
                         "ping-interval", (guint) ping_interval,
                         "ping-timeout", (guint) ping_timeout,
                         "max-payload", (guint64) max_payload,
                         "cors-origin", cors,
                         "loop-threads", (guint) loop_threads,
                         "allow-eio3", eio3,
                         "cookie", cookie,
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
      if (redis != NULL)
        {
#ifdef SOCKET_IO_HAVE_REDIS
          g_autoptr(SocketIOAdapter) adapter = socket_io_redis_adapter_new (nsp, redis, NULL, &error);

          if (adapter == NULL)
            {
              g_printerr ("socketio-echo: --redis: %s\n", error->message);
              return 2;
            }
          socket_io_namespace_set_adapter (nsp, adapter);
          g_signal_connect (adapter, "server-side-event::ss-echo", G_CALLBACK (on_ss_echo), NULL);
#else
          g_printerr ("socketio-echo: built without Redis support (hiredis, msgpack-c)\n");
          return 2;
#endif
        }
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
