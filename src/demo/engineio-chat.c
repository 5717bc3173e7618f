/* engineio-chat: the demo chat server
 *
 * Serves the web page (data/chat/) and the engine from one libmicrohttpd
 * daemon of its own, with the engine mounted at /engine.io/ through
 * <engineio/engineio-mhd.h> (demo-static.c, shared with socketio-chat).
 * The chat itself is chat-room.c.
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include "chat-config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <engineio/engineio.h>

#include "chat-room.h"
#include "demo-static.h"
#include "../tools/tool-cli.h"

#define NAME "engineio-chat"

#define BUNDLE_URL "/engine.io.min.js"
#define BUNDLE_NAME "engine.io.min.js"
#define ENGINE_PATH "/engine.io/"
#define MAX_FRAME_BYTES (256 * 1024)

typedef struct
{
  EngineIOServer *engine;      /* owned; outlives the daemon */
  ChatRoom       *room;        /* owned */
} App;

/* The chat */

static void
send_to_socket (const char *json,
                gpointer    user_data)
{
  EngineIOSocket *socket = user_data;
  g_autoptr(GError) error = NULL;

  if (!engine_io_socket_send_text (socket, json, &error))
    g_debug ("Send to %s failed: %s", engine_io_socket_get_id (socket), error->message);
}

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  ChatSession *session = user_data;

  if (text != NULL)
    chat_session_receive (session, text);
  else
    chat_session_receive_binary (session);
}

static void
on_transport (EngineIOSocket *socket,
              GParamSpec     *pspec,
              gpointer        user_data)
{
  g_debug ("Session %s upgraded to %s", engine_io_socket_get_id (socket),
           engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)));
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  g_debug ("Session %s closed: %s%s%s", engine_io_socket_get_id (socket),
           engine_io_close_reason_to_string (reason),
           description != NULL ? ": " : "", description != NULL ? description : "");
  /* No signal of @socket follows ::close: the session can go. */
  chat_session_free (user_data);
}

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  App *app = user_data;
  ChatSession *session;

  g_debug ("Session %s opened (v%s, %s)", engine_io_socket_get_id (socket),
           engine_io_protocol_version_to_string (engine_io_socket_get_protocol_version (socket)),
           engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)));

  session = chat_session_new (app->room, send_to_socket, g_object_ref (socket), g_object_unref);
  g_signal_connect (socket, "message", G_CALLBACK (on_message), session);
  g_signal_connect (socket, "notify::transport", G_CALLBACK (on_transport), NULL);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), session);
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *address = NULL;  /* GOption does not free a default it replaces */
  g_autofree char *static_dir = NULL;
  g_autofree char *bundle = NULL;
  int port = 8080;
  int history = CHAT_DEFAULT_HISTORY;
  int loop_threads = 0;
  gboolean version = FALSE;
  gboolean eio3 = FALSE;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  g_autoptr(GTlsCertificate) certificate = NULL;
  GOptionEntry entries[] = {
    { "address", 0, 0, G_OPTION_ARG_STRING, &address, "Address to bind (default 127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port (default 8080; 0 picks a free one)", "PORT" },
    { "static-dir", 0, 0, G_OPTION_ARG_FILENAME, &static_dir,
      "Directory of the web page (default: the source tree's data/chat, or the installed copy)", "DIR" },
    { "client-bundle", 0, 0, G_OPTION_ARG_FILENAME, &bundle,
      "engine.io-client's engine.io.min.js (default: in the static directory, the build tree or "
      "tests/interop/node_modules)", "PATH" },
    { "eio3", 0, 0, G_OPTION_ARG_NONE, &eio3, "Also accept Engine.IO protocol v3 clients", NULL },
    { "history", 0, 0, G_OPTION_ARG_INT, &history, "Messages replayed to a newcomer (default 50)", "N" },
    { "loop-threads", 0, 0, G_OPTION_ARG_INT, &loop_threads,
      "Shared session threads (default 0: one thread per session)", "N" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert, "Serve HTTPS/WSS with this PEM certificate (chain)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key, "The PEM private key of --tls-cert", "FILE" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Engine.IO chat demo");
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  struct MHD_Daemon *daemon;
  guint bound_port = 0;
  App app = { NULL, };
  const DemoPage page = {
    "engineio-chat", CHAT_BUILD_DIR, CHAT_SOURCE_DATADIR, CHAT_INSTALLED_DATADIR,
    "engine.io-client", BUNDLE_NAME, CHAT_BUILD_BUNDLE, CHAT_SOURCE_BUNDLE,
  };
  int status;
  DemoStatic *files;

  setlocale (LC_ALL, "");

  /* stdout carries only the "listening on" line; logs go to stderr. */
  g_log_writer_default_set_use_stderr (TRUE);

  g_option_context_set_summary (options,
    "Serves a chat web page and its Engine.IO endpoint (" ENGINE_PATH ").\n"
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
      !tool_check_range (NAME, "history", history, 0, 100000) ||
      !tool_check_range (NAME, "loop-threads", loop_threads, 0, 1024))
    return TOOL_EXIT_USAGE;
  status = tool_load_tls (NAME, tls_cert, tls_key, &certificate);
  if (status != 0)
    return status;

  status = demo_locate_page (&page, &static_dir, &bundle);
  if (status != 0)
    return status;

  app.room = chat_room_new ((guint) history);
  app.engine = g_object_new (ENGINE_IO_TYPE_SERVER,
                             "path", ENGINE_PATH,
                             "allow-eio3", eio3,
                             "loop-threads", (guint) loop_threads,
                             "max-payload", (guint64) MAX_FRAME_BYTES,
                             NULL);
  g_signal_connect (app.engine, "connection", G_CALLBACK (on_connection), &app);

  files = demo_static_new (app.engine, ENGINE_PATH, static_dir);
  if (bundle != NULL)
    demo_static_add_file (files, BUNDLE_URL, bundle);
  if (certificate != NULL && !demo_static_set_tls (files, certificate, &error))
    daemon = NULL;
  else
    daemon = demo_static_start (files, address, (guint) port, &bound_port, &error);
  if (daemon == NULL)
    {
      g_printerr ("engineio-chat: %s\n", error->message);
      engine_io_server_close (app.engine);
      g_object_unref (app.engine);
      chat_room_unref (app.room);
      demo_static_free (files);
      return 1;
    }

  url = demo_url_for (address, bound_port);
  if (certificate != NULL)
    {
      char *https = g_strconcat ("https", url + strlen ("http"), NULL);

      g_free (url);
      url = https;
    }
  printf ("listening on %s\n", url);
  fflush (stdout);
  g_message ("Chat on %s (page from %s, client bundle %s, history %d%s)", url, static_dir,
             bundle != NULL ? bundle : "missing", history, eio3 ? ", EIO 3 accepted" : "");

  demo_run_until_signal ();

  /* Close the sessions (each client hears so), and only then stop the
   * daemon: it must outlive the engine's requests. (No MHD_quiesce_daemon():
   * libmicrohttpd 0.9.75 can abort in it with a worker pool on epoll.) */
  g_message ("Shutting down");
  engine_io_server_close (app.engine);
  MHD_stop_daemon (daemon);
  demo_static_free (files);

  g_object_unref (app.engine);
  chat_room_unref (app.room);
  return 0;
}
