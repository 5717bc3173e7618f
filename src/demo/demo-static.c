/* demo-static: the static files and the daemon of both demo chats
 * (demo-static.h says what it does).
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include "demo-static.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <engineio/engineio-mhd.h>

#define HTTP_TIMEOUT_S 60u

struct _DemoStatic
{
  EngineIOServer *engine;       /* owned; outlives the daemon */
  char           *engine_path;  /* owned: "/engine.io/" */
  char           *engine_url;   /* owned: engine_path without its trailing slash */
  char           *static_dir;   /* owned; canonical, without trailing slash */
  GHashTable     *files;        /* owned: URL -> path, served besides static_dir */
  char           *tls_cert_pem; /* owned, nullable: HTTPS with this chain */
  char           *tls_key_pem;  /* owned, nullable; wiped when freed */
};

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
resolve_static (DemoStatic *self,
                const char *url)
{
  g_autofree char *candidate = NULL;
  char resolved[PATH_MAX];
  const char *file = g_hash_table_lookup (self->files, url);

  if (file != NULL)
    return g_strdup (file);
  if (strcmp (url, "/") == 0)
    url = "/index.html";
  if (url[0] != '/' || !is_safe_relative_path (url + 1) || content_type_for (url) == NULL)
    return NULL;

  /* Symbolic links must not lead out of the directory either. */
  candidate = g_build_filename (self->static_dir, url + 1, NULL);
  if (realpath (candidate, resolved) == NULL ||
      !g_str_has_prefix (resolved, self->static_dir) ||
      resolved[strlen (self->static_dir)] != '/' ||
      !g_file_test (resolved, G_FILE_TEST_IS_REGULAR))
    return NULL;
  return g_strdup (resolved);
}

static enum MHD_Result
serve_static (DemoStatic            *self,
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

  path = resolve_static (self, url);
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
is_engine_url (DemoStatic *self,
               const char *url)
{
  return strcmp (url, self->engine_url) == 0 || g_str_has_prefix (url, self->engine_path);
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
  DemoStatic *self = cls;

  if ((*req_cls == NULL && is_engine_url (self, url)) ||
      (*req_cls != NULL && *req_cls != &static_request_marker))
    return engine_io_server_mhd_handler (self->engine, connection, url, method, version,
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
  return serve_static (self, connection, url, method);
}

static void
completed_cb (void                            *cls,
              struct MHD_Connection           *connection,
              void                           **req_cls,
              enum MHD_RequestTerminationCode  toe)
{
  DemoStatic *self = cls;

  if (*req_cls == &static_request_marker)
    *req_cls = NULL;
  else if (*req_cls != NULL)
    engine_io_server_mhd_completed (self->engine, connection, req_cls, toe);
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

/**
 * demo_static_set_tls:
 * @self: the static files
 * @certificate: the certificate (and its issuers) with its private key
 * @error: return location for a #GError
 *
 * Makes demo_static_start() serve HTTPS (and WSS) with @certificate.
 *
 * Returns: FALSE with @error when libmicrohttpd has no TLS or
 *   @certificate no private key in PEM.
 */
gboolean
demo_static_set_tls (DemoStatic       *self,
                     GTlsCertificate  *certificate,
                     GError          **error)
{
  g_autoptr(GString) chain = g_string_new (NULL);
  char *key = NULL;

  if (!MHD_is_feature_supported (MHD_FEATURE_TLS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "This libmicrohttpd was built without TLS (GnuTLS)");
      return FALSE;
    }
  g_object_get (certificate, "private-key-pem", &key, NULL);
  if (key == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "The TLS certificate has no private key in PEM");
      return FALSE;
    }
  for (GTlsCertificate *c = certificate; c != NULL; c = g_tls_certificate_get_issuer (c))
    {
      g_autofree char *pem = NULL;

      g_object_get (c, "certificate-pem", &pem, NULL);
      if (pem != NULL)
        g_string_append (chain, pem);
    }
  g_free (self->tls_cert_pem);
  self->tls_cert_pem = g_string_free (g_steal_pointer (&chain), FALSE);
  g_free (self->tls_key_pem);
  self->tls_key_pem = key;
  return TRUE;
}

/**
 * demo_static_start:
 * @self: a #DemoStatic, read-only from now on
 * @address: a numeric IPv4 or IPv6 address
 * @port: the port, 0 for a free one
 * @out_port: (out): the port bound
 * @error: return location for a #GError
 *
 * Starts the daemon (a pool of libmicrohttpd threads). Stop it with
 * MHD_stop_daemon() after engine_io_server_close(), and before
 * demo_static_free().
 *
 * Returns: (transfer full) (nullable): the daemon, or NULL and @error set.
 */
struct MHD_Daemon *
demo_static_start (DemoStatic  *self,
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
  struct MHD_OptionItem tls_options[3] = {
    { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
  };

  if (self->tls_cert_pem != NULL)
    {
      flags |= MHD_USE_TLS;
      tls_options[0] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, self->tls_cert_pem };
      tls_options[1] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls_key_pem };
    }
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
                             access_cb, self,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &native,
                             MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_NOTIFY_COMPLETED, completed_cb, self,
                             MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S,
                             /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets
                             * SO_REUSEPORT, and a second instance on the same
                             * port would start silently and take half the
                             * connections. libmicrohttpd's default
                             * (SO_REUSEADDR) already lets a restarted server
                             * bind while old connections linger in TIME_WAIT. */
                             MHD_OPTION_ARRAY, tls_options,
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
running_from_build_tree (const char *build_dir)
{
  g_autofree char *exe = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *dir = NULL;
  char resolved[PATH_MAX];

  if (exe == NULL)
    return FALSE;
  dir = g_path_get_dirname (exe);
  return realpath (build_dir, resolved) != NULL && strcmp (dir, resolved) == 0;
}

/**
 * demo_find_dir:
 * @build_dir: the build directory of the demo programs
 * @source_dir: the directory in the source tree
 * @installed_dir: the installed copy
 * @file: a file the directory must have
 *
 * Returns: (transfer full) (nullable): the canonical path of the first
 *   directory with @file: @source_dir for a program run from @build_dir,
 *   @installed_dir otherwise; NULL when neither has it.
 */
char *
demo_find_dir (const char *build_dir,
               const char *source_dir,
               const char *installed_dir,
               const char *file)
{
  const char *candidates[2];
  char resolved[PATH_MAX];

  if (running_from_build_tree (build_dir))
    {
      candidates[0] = source_dir;
      candidates[1] = installed_dir;
    }
  else
    {
      candidates[0] = installed_dir;
      candidates[1] = source_dir;
    }
  for (gsize i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      g_autofree char *path = g_build_filename (candidates[i], file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR) && realpath (candidates[i], resolved) != NULL)
        return g_strdup (resolved);
    }
  return NULL;
}

/**
 * demo_find_file:
 * @candidates: (array zero-terminated=1): paths, the preferred first
 *
 * Returns: (transfer full) (nullable): the first of @candidates that is a
 *   regular file.
 */
char *
demo_find_file (const char *const *candidates)
{
  for (gsize i = 0; candidates[i] != NULL; i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_REGULAR))
      return g_strdup (candidates[i]);
  return NULL;
}

/**
 * demo_canonical_dir:
 * @dir: a directory named by the user
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (nullable): @dir made canonical, or NULL and
 *   @error set (from realpath()'s errno).
 */
char *
demo_canonical_dir (const char  *dir,
                    GError     **error)
{
  char resolved[PATH_MAX];

  if (realpath (dir, resolved) == NULL)
    {
      int saved = errno;
      g_set_error_literal (error, G_IO_ERROR, g_io_error_from_errno (saved), g_strerror (saved));
      return NULL;
    }
  return g_strdup (resolved);
}

/**
 * demo_url_for:
 * @address: the numeric address the daemon listens on
 * @port: its port
 *
 * Returns: (transfer full): the page's URL, "http://ADDRESS:PORT/"
 *   (IPv6 addresses in brackets).
 */
char *
demo_url_for (const char *address,
              guint       port)
{
  return g_strdup_printf ("http://%s%s%s:%u/", strchr (address, ':') ? "[" : "", address,
                          strchr (address, ':') ? "]" : "", port);
}

/**
 * demo_locate_page:
 * @page: where @page's files may be
 * @static_dir: (inout) (transfer full) (nullable): --static-dir, or NULL to
 *   look for the page; the canonical directory on return
 * @bundle: (inout) (transfer full) (nullable): --client-bundle, or NULL to
 *   look for it (in @static_dir, the build tree, then node_modules); NULL on
 *   return when it was not found (a warning says so: the page cannot connect)
 *
 * Finds the page and the client bundle, saying what is wrong on stderr.
 *
 * Returns: 0 when the demo can go on, else the exit status to return.
 */
int
demo_locate_page (const DemoPage  *page,
                  char           **static_dir,
                  char           **bundle)
{
  g_autoptr(GError) error = NULL;

  if (*static_dir == NULL)
    *static_dir = demo_find_dir (page->build_dir, page->source_dir, page->installed_dir, "index.html");
  else
    {
      char *resolved = demo_canonical_dir (*static_dir, &error);
      if (resolved == NULL)
        {
          g_printerr ("%s: cannot use --static-dir %s: %s\n", page->program, *static_dir, error->message);
          return 2;
        }
      g_free (*static_dir);
      *static_dir = resolved;
    }
  if (*static_dir == NULL)
    {
      g_printerr ("%s: cannot find the web page (looked in %s and %s); use --static-dir\n",
                  page->program, page->source_dir, page->installed_dir);
      return 1;
    }
  if (*bundle == NULL)
    {
      g_autofree char *in_static = g_build_filename (*static_dir, page->bundle_name, NULL);
      const char *candidates[] = { in_static, page->build_bundle, page->source_bundle, NULL };
      *bundle = demo_find_file (candidates);
    }
  else if (!g_file_test (*bundle, G_FILE_TEST_IS_REGULAR))
    {
      g_printerr ("%s: --client-bundle %s is not a file\n", page->program, *bundle);
      return 2;
    }
  if (*bundle == NULL)
    g_warning ("%s's %s was not found: the page cannot connect. "
               "Run `npm ci --prefix tests/interop` in the source tree, or pass --client-bundle",
               page->client, page->bundle_name);
  return 0;
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

/**
 * demo_run_until_signal:
 *
 * Runs the default main context until SIGINT or SIGTERM.
 */
void
demo_run_until_signal (void)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  guint sigint = g_unix_signal_add (SIGINT, on_signal, loop);
  guint sigterm = g_unix_signal_add (SIGTERM, on_signal, loop);

  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);
}

/* The daemon's configuration */

/**
 * demo_static_new:
 * @engine: the engine to mount (a reference is taken)
 * @engine_path: its path, with the trailing slash ("/engine.io/")
 * @static_dir: the canonical directory of the page, without trailing slash
 *
 * Returns: (transfer full): the configuration of a daemon serving @engine
 *   and @static_dir; free with demo_static_free() after stopping the daemon.
 */
DemoStatic *
demo_static_new (EngineIOServer *engine,
                 const char     *engine_path,
                 const char     *static_dir)
{
  DemoStatic *self;

  g_return_val_if_fail (g_str_has_suffix (engine_path, "/"), NULL);

  self = g_new0 (DemoStatic, 1);
  self->engine = g_object_ref (engine);
  self->engine_path = g_strdup (engine_path);
  self->engine_url = g_strndup (engine_path, strlen (engine_path) - 1);
  self->static_dir = g_strdup (static_dir);
  self->files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return self;
}

/**
 * demo_static_add_file:
 * @self: a #DemoStatic not started yet
 * @url: a URL path ("/engine.io.min.js")
 * @path: the file served for @url, whatever directory it is in (its
 *   Content-Type is that of its suffix)
 *
 * Serves @path at @url, before the files of the static directory.
 */
void
demo_static_add_file (DemoStatic *self,
                      const char *url,
                      const char *path)
{
  g_hash_table_replace (self->files, g_strdup (url), g_strdup (path));
}

/**
 * demo_static_free:
 * @self: (transfer full): a #DemoStatic whose daemon is stopped
 */
void
demo_static_free (DemoStatic *self)
{
  g_object_unref (self->engine);
  g_free (self->engine_path);
  g_free (self->engine_url);
  g_free (self->static_dir);
  g_hash_table_unref (self->files);
  g_free (self->tls_cert_pem);
  if (self->tls_key_pem != NULL)
    explicit_bzero (self->tls_key_pem, strlen (self->tls_key_pem));
  g_free (self->tls_key_pem);
  g_free (self);
}
