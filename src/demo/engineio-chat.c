/* engineio-chat: the demo chat server
 *
 * Serves the web page (data/chat/) and the engine from one libmicrohttpd
 * daemon of its own, with the engine mounted at /engine.io/ through
 * <engineio/engineio-mhd.h>. The chat itself is chat-room.c.
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include "chat-config.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <engineio/engineio.h>
#include <engineio/engineio-mhd.h>

#include "chat-room.h"

#define BUNDLE_URL "/engine.io.min.js"
#define BUNDLE_NAME "engine.io.min.js"
#define ENGINE_PATH "/engine.io/"
#define MAX_FRAME_BYTES (256 * 1024)
#define HTTP_TIMEOUT_S 60u

typedef struct
{
  EngineIOServer *engine;      /* owned; outlives the daemon */
  ChatRoom       *room;        /* owned */
  char           *static_dir;  /* owned; canonical, without trailing slash */
  char           *bundle;      /* owned, nullable: path of engine.io.min.js */
} App;

/* *req_cls of the requests we answer ourselves; the engine's have its own. */
static int static_request_marker;

static const struct
{
  const char *suffix;
  const char *type;
} content_types[] = {
  { ".html", "text/html; charset=utf-8" },
  { ".css", "text/css; charset=utf-8" },
  { ".js", "text/javascript; charset=utf-8" },
  { ".mjs", "text/javascript; charset=utf-8" },
  { ".map", "application/json; charset=utf-8" },
  { ".json", "application/json; charset=utf-8" },
  { ".svg", "image/svg+xml" },
  { ".png", "image/png" },
  { ".ico", "image/x-icon" },
  { ".webp", "image/webp" },
  { ".txt", "text/plain; charset=utf-8" },
};

/* The page may only load its own scripts and styles and talk to its own
 * origin: defence in depth on top of the page never using innerHTML. */
static const char page_csp[] =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
  "frame-ancestors 'none'";

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

/* Static files */

static enum MHD_Result
respond_text (struct MHD_Connection *connection,
              unsigned int           status,
              const char            *text)
{
  struct MHD_Response *response =
    MHD_create_response_from_buffer (strlen (text), (void *) text, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret;

  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
  MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  ret = MHD_queue_response (connection, status, response);
  MHD_destroy_response (response);
  return ret;
}

static const char *
content_type_for (const char *path)
{
  for (gsize i = 0; i < G_N_ELEMENTS (content_types); i++)
    if (g_str_has_suffix (path, content_types[i].suffix))
      return content_types[i].type;
  return NULL;
}

/* Whether @rel (the URL path without its leading slash) may name a file of
 * the static directory: plain names only, so no "..", no hidden files, no
 * backslashes or other characters a file system might treat specially. */
static gboolean
is_safe_relative_path (const char *rel)
{
  g_auto(GStrv) segments = NULL;

  if (rel[0] == '\0' || strlen (rel) > 200)
    return FALSE;
  for (const char *p = rel; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && strchr ("._-/", *p) == NULL)
      return FALSE;
  segments = g_strsplit (rel, "/", -1);
  for (guint i = 0; segments[i] != NULL; i++)
    if (segments[i][0] == '\0' || segments[i][0] == '.')
      return FALSE;
  return TRUE;
}

/* The file to serve for @url, or NULL for 404. */
static char *
resolve_static (App        *app,
                const char *url)
{
  g_autofree char *candidate = NULL;
  char resolved[PATH_MAX];

  if (strcmp (url, BUNDLE_URL) == 0 && app->bundle != NULL)
    return g_strdup (app->bundle);
  if (strcmp (url, "/") == 0)
    url = "/index.html";
  if (url[0] != '/' || !is_safe_relative_path (url + 1) || content_type_for (url) == NULL)
    return NULL;

  /* Symbolic links must not lead out of the directory either. */
  candidate = g_build_filename (app->static_dir, url + 1, NULL);
  if (realpath (candidate, resolved) == NULL ||
      !g_str_has_prefix (resolved, app->static_dir) ||
      resolved[strlen (app->static_dir)] != '/' ||
      !g_file_test (resolved, G_FILE_TEST_IS_REGULAR))
    return NULL;
  return g_strdup (resolved);
}

static enum MHD_Result
serve_static (App                   *app,
              struct MHD_Connection *connection,
              const char            *url,
              const char            *method)
{
  g_autofree char *path = NULL;
  g_autoptr(GError) error = NULL;
  struct MHD_Response *response;
  enum MHD_Result ret;
  const char *type;
  char *contents;
  gsize length;

  if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
    return respond_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed\n");

  path = resolve_static (app, url);
  if (path == NULL)
    {
      g_debug ("%s %s: 404", method, url);
      return respond_text (connection, MHD_HTTP_NOT_FOUND, "Not found\n");
    }
  if (!g_file_get_contents (path, &contents, &length, &error))
    {
      g_warning ("Cannot read %s: %s", path, error->message);
      return respond_text (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error\n");
    }

  type = content_type_for (path);
  response = MHD_create_response_from_buffer_with_free_callback (length, contents, g_free);
  MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE,
                           type != NULL ? type : "application/octet-stream");
  MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header (response, "Referrer-Policy", "no-referrer");
  if (g_str_has_suffix (path, ".html"))
    MHD_add_response_header (response, "Content-Security-Policy", page_csp);
  ret = MHD_queue_response (connection, MHD_HTTP_OK, response);
  MHD_destroy_response (response);
  g_debug ("%s %s: 200, %" G_GSIZE_FORMAT " bytes", method, url, length);
  return ret;
}

/* The daemon */

static gboolean
is_engine_url (const char *url)
{
  return strcmp (url, "/engine.io") == 0 || g_str_has_prefix (url, ENGINE_PATH);
}

static enum MHD_Result
access_cb (void                  *cls,
           struct MHD_Connection *connection,
           const char            *url,
           const char            *method,
           const char            *version,
           const char            *upload_data,
           size_t                *upload_data_size,
           void                 **req_cls)
{
  App *app = cls;

  if ((*req_cls == NULL && is_engine_url (url)) ||
      (*req_cls != NULL && *req_cls != &static_request_marker))
    return engine_io_server_mhd_handler (app->engine, connection, url, method, version,
                                         upload_data, upload_data_size, req_cls);

  /* Ours: answer at the final call, after any body (which we ignore). */
  if (*req_cls == NULL)
    {
      *req_cls = &static_request_marker;
      return MHD_YES;
    }
  if (*upload_data_size > 0)
    {
      *upload_data_size = 0;
      return MHD_YES;
    }
  return serve_static (app, connection, url, method);
}

static void
completed_cb (void                            *cls,
              struct MHD_Connection           *connection,
              void                           **req_cls,
              enum MHD_RequestTerminationCode  toe)
{
  App *app = cls;

  if (*req_cls == &static_request_marker)
    *req_cls = NULL;
  else if (*req_cls != NULL)
    engine_io_server_mhd_completed (app->engine, connection, req_cls, toe);
}

static void
mhd_log_cb (void       *cls,
            const char *format,
            va_list     args)
{
  int saved_errno = errno;  /* reported after a failed start */
  g_autofree char *message = g_strdup_vprintf (format, args);

  g_debug ("libmicrohttpd: %s", g_strchomp (message));
  errno = saved_errno;
}

static struct MHD_Daemon *
start_daemon (App         *app,
              const char  *address,
              guint        port,
              guint       *out_port,
              GError     **error)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (address);
  g_autoptr(GSocketAddress) sockaddr = NULL;
  struct sockaddr_storage native;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
  unsigned int threads = CLAMP (g_get_num_processors (), 2, 8);
  const union MHD_DaemonInfo *info;
  struct MHD_Daemon *daemon;

  if (inet == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "“%s” is not a numeric IPv4 or IPv6 address", address);
      return NULL;
    }
  sockaddr = g_inet_socket_address_new (inet, port);
  if (!g_socket_address_to_native (sockaddr, &native, sizeof native, error))
    return NULL;
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    flags |= MHD_USE_IPv6;

  errno = 0;
  daemon = MHD_start_daemon (flags, (uint16_t) port, NULL, NULL,
                             access_cb, app,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &native,
                             MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_NOTIFY_COMPLETED, completed_cb, app,
                             MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S,
                             /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets
                             * SO_REUSEPORT, and a second instance on the same
                             * port would start silently and take half the
                             * connections. libmicrohttpd's default
                             * (SO_REUSEADDR) already lets a restarted server
                             * bind while old connections linger in TIME_WAIT. */
                             MHD_OPTION_END);
  if (daemon == NULL)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "Cannot listen on %s port %u: %s", address, port,
                   saved != 0 ? g_strerror (saved) : "libmicrohttpd could not start");
      return NULL;
    }
  info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
  *out_port = info != NULL ? info->port : port;
  return daemon;
}

/* Finding the files */

static gboolean
running_from_build_tree (void)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;
  char resolved[PATH_MAX];

  if (exe == NULL)
    return FALSE;
  dir = g_path_get_dirname (exe);
  return realpath (CHAT_BUILD_DIR, resolved) != NULL && strcmp (dir, resolved) == 0;
}

/* The first directory with an index.html: the source tree's data/chat for
 * a program run from its build tree, the installed copy otherwise. */
static char *
find_static_dir (void)
{
  const char *candidates[2];
  char resolved[PATH_MAX];

  if (running_from_build_tree ())
    {
      candidates[0] = CHAT_SOURCE_DATADIR;
      candidates[1] = CHAT_INSTALLED_DATADIR;
    }
  else
    {
      candidates[0] = CHAT_INSTALLED_DATADIR;
      candidates[1] = CHAT_SOURCE_DATADIR;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      g_autofree char *index = g_build_filename (candidates[i], "index.html", NULL);
      if (g_file_test (index, G_FILE_TEST_IS_REGULAR) && realpath (candidates[i], resolved) != NULL)
        return g_strdup (resolved);
    }
  return NULL;
}

static char *
find_bundle (const char *static_dir)
{
  g_autofree char *in_static = g_build_filename (static_dir, BUNDLE_NAME, NULL);
  const char *candidates[] = { in_static, CHAT_BUILD_BUNDLE, CHAT_SOURCE_BUNDLE };

  for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_REGULAR))
      return g_strdup (candidates[i]);
  return NULL;
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
  g_autofree char *address = NULL;  /* GOption does not free a default it replaces */
  g_autofree char *static_dir = NULL;
  g_autofree char *bundle = NULL;
  int port = 8080;
  int history = CHAT_DEFAULT_HISTORY;
  int loop_threads = 0;
  gboolean eio3 = FALSE;
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
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Engine.IO chat demo");
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *url = NULL;
  struct MHD_Daemon *daemon;
  guint bound_port = 0;
  guint sigint, sigterm;
  App app = { NULL, };

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
      g_printerr ("engineio-chat: %s\n", error->message);
      return 2;
    }
  if (address == NULL)
    address = g_strdup ("127.0.0.1");
  if (argc > 1 || port < 0 || port > 65535 || history < 0 || history > 100000 ||
      loop_threads < 0 || loop_threads > 1024)
    {
      g_printerr ("engineio-chat: an option is out of range, or an extra argument (see --help)\n");
      return 2;
    }

  if (static_dir == NULL)
    static_dir = find_static_dir ();
  else
    {
      char resolved[PATH_MAX];
      if (realpath (static_dir, resolved) == NULL)
        {
          g_printerr ("engineio-chat: cannot use --static-dir %s: %s\n", static_dir, g_strerror (errno));
          return 2;
        }
      g_free (static_dir);
      static_dir = g_strdup (resolved);
    }
  if (static_dir == NULL)
    {
      g_printerr ("engineio-chat: cannot find the web page (looked in %s and %s); use --static-dir\n",
                  CHAT_SOURCE_DATADIR, CHAT_INSTALLED_DATADIR);
      return 1;
    }
  if (bundle == NULL)
    bundle = find_bundle (static_dir);
  else if (!g_file_test (bundle, G_FILE_TEST_IS_REGULAR))
    {
      g_printerr ("engineio-chat: --client-bundle %s is not a file\n", bundle);
      return 2;
    }
  if (bundle == NULL)
    g_warning ("engine.io-client's " BUNDLE_NAME " was not found: the page cannot connect. "
               "Run `npm ci --prefix tests/interop` in the source tree, or pass --client-bundle");

  app.static_dir = g_steal_pointer (&static_dir);
  app.bundle = g_steal_pointer (&bundle);
  app.room = chat_room_new ((guint) history);
  app.engine = g_object_new (ENGINE_IO_TYPE_SERVER,
                             "path", ENGINE_PATH,
                             "allow-eio3", eio3,
                             "loop-threads", (guint) loop_threads,
                             "max-payload", (guint64) MAX_FRAME_BYTES,
                             NULL);
  g_signal_connect (app.engine, "connection", G_CALLBACK (on_connection), &app);

  daemon = start_daemon (&app, address, (guint) port, &bound_port, &error);
  if (daemon == NULL)
    {
      g_printerr ("engineio-chat: %s\n", error->message);
      engine_io_server_close (app.engine);
      g_object_unref (app.engine);
      chat_room_unref (app.room);
      g_free (app.static_dir);
      g_free (app.bundle);
      return 1;
    }

  url = g_strdup_printf ("http://%s%s%s:%u/", strchr (address, ':') ? "[" : "", address,
                         strchr (address, ':') ? "]" : "", bound_port);
  printf ("listening on %s\n", url);
  fflush (stdout);
  g_message ("Chat on %s (page from %s, client bundle %s, history %d%s)", url, app.static_dir,
             app.bundle != NULL ? app.bundle : "missing", history, eio3 ? ", EIO 3 accepted" : "");

  loop = g_main_loop_new (NULL, FALSE);
  sigint = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);

  /* Close the sessions (each client hears so), and only then stop the
   * daemon: it must outlive the engine's requests. (No MHD_quiesce_daemon():
   * libmicrohttpd 0.9.75 can abort in it with a worker pool on epoll.) */
  g_message ("Shutting down");
  engine_io_server_close (app.engine);
  MHD_stop_daemon (daemon);

  g_object_unref (app.engine);
  chat_room_unref (app.room);
  g_free (app.static_dir);
  g_free (app.bundle);
  return 0;
}
