/* engineio-server.c: the Engine.IO server and its protocol core
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "engineio-server-private.h"
#include "engineio-socket-private.h"
#include "engineio-handshake-private.h"
#include "engineio-packet-private.h"
#include "engineio-http-private.h"
#include "engineio-websocket-private.h"
#include "engineio-limits-private.h"
#include "engineio-enum-types.h"
#include "engineio-error.h"

/**
 * EngineIOServer:
 *
 * An Engine.IO server: it accepts handshakes, keeps the sessions
 * (#EngineIOSocket), and speaks protocol v4 (and v3 with
 * #EngineIOServer:allow-eio3) over HTTP long-polling and WebSocket.
 *
 * Configure it with properties, connect to #EngineIOServer::connection,
 * then either engine_io_server_listen() (the server runs its own
 * libmicrohttpd daemon) or mount it in your own daemon with
 * engine_io_server_mhd_handler() from `<engineio/engineio-mhd.h>`.
 *
 * Properties may be set until the server starts (listen() or the first
 * mounted request); after that they are read-only and setting one logs a
 * warning. Every property can be read from any thread.
 *
 * Threads: libmicrohttpd's worker threads parse requests and never block
 * for a poll nor run application code; every signal and hook runs in the
 * main context of the session it concerns (see #EngineIOServer:loop-threads
 * and #EngineIOServer:callback-context). Every function of the server and
 * of its sockets may be called from any thread and from any handler, except
 * engine_io_socket_receive() from the socket's own context. Shut down with
 * engine_io_server_close() (blocking where it may wait, starting the
 * shutdown from handlers) or engine_io_server_close_async().
 */

struct _EngineIOServer
{
  GObject                     parent_instance;

  /* Property values; written only before the server starts. */
  guint                       ping_interval;
  guint                       ping_timeout;
  guint                       upgrade_timeout;
  guint64                     max_payload;
  char                       *path;
  EngineIOTransports          transports;
  gboolean                    allow_upgrades;
  gboolean                    allow_eio3;
  char                       *cors_origin;
  gboolean                    cors_credentials;
  char                       *cookie;
  char                       *cookie_path;
  gboolean                    cookie_http_only;
  char                       *cookie_same_site;
  guint                       max_sessions;
  guint                       loop_threads;
  guint64                     send_queue_high_water;
  guint64                     receive_queue_high_water;
  EngineIOBackpressurePolicy  backpressure;
  GMainContext               *callback_context;   /* owned, nullable */
  char                       *metrics_path;
  guint                       connection_timeout;
  double                      handshake_rate;
  guint                       handshake_burst;
  double                      message_rate;
  guint                       message_burst;
  EngineIORateLimitPolicy     message_policy;
  GStrv                       allowed_origins;
  gboolean                    raise_fd_limit;
  guint                       fd_reserve;
  EngineIOCounters            counters;           /* (atomic) each word */

  GMutex                      rate_lock;          /* guards the two below */
  GHashTable                 *rate_table;         /* (rate_lock) key -> RateEntry (owned) */
  GQueue                      rate_lru;           /* (rate_lock) RateEntry, least recently used first */

  GMutex                      lock;
  GCond                       cond;               /* live_sessions / suspended changed */
  EngineIOConfig             *config;             /* (atomic) set once at start under @lock, then immutable */
  EngineIOLoopPool           *pool;               /* (lock) set once at start */
  GHashTable                 *sockets;            /* (lock) sid -> EngineIOSocket (ref) */
  guint                       live_sessions;      /* (lock) created and not finished */
  guint                       pending_handshakes; /* (lock) admitted, socket not yet made */
  int                         suspended;          /* (atomic) suspended requests; @cond at 0 */
  int                         active_requests;    /* (atomic) begun, not yet completed; @cond at 0 */
  gboolean                    closing;            /* (lock) */
  gboolean                    closed;             /* (lock) */
  gboolean                    finishing;          /* (lock) a thread runs server_finish_close() */
  int                         closed_flag;        /* (atomic) closing or closed */
  EngineIOAdmissionFunc       admission_func;     /* (lock) */
  gpointer                    admission_data;
  GDestroyNotify              admission_destroy;
  GPtrArray                  *close_tasks;        /* (lock) GTask*: close_async() calls waiting for @closed */
  EngineIOIdFunc              id_func;            /* (lock) */
  gpointer                    id_data;
  GDestroyNotify              id_destroy;

  EngineIOHttpDaemon         *daemon;             /* owned; the listening thread's */
  guint                       port;
};

G_DEFINE_FINAL_TYPE (EngineIOServer, engine_io_server, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_PING_INTERVAL,
  PROP_PING_TIMEOUT,
  PROP_UPGRADE_TIMEOUT,
  PROP_MAX_PAYLOAD,
  PROP_PATH,
  PROP_TRANSPORTS,
  PROP_ALLOW_UPGRADES,
  PROP_ALLOW_EIO3,
  PROP_CORS_ORIGIN,
  PROP_CORS_CREDENTIALS,
  PROP_COOKIE,
  PROP_COOKIE_PATH,
  PROP_COOKIE_HTTP_ONLY,
  PROP_COOKIE_SAME_SITE,
  PROP_MAX_SESSIONS,
  PROP_LOOP_THREADS,
  PROP_SEND_QUEUE_HIGH_WATER,
  PROP_RECEIVE_QUEUE_HIGH_WATER,
  PROP_BACKPRESSURE_POLICY,
  PROP_CALLBACK_CONTEXT,
  PROP_METRICS_PATH,
  PROP_CONNECTION_TIMEOUT,
  PROP_HANDSHAKE_RATE,
  PROP_HANDSHAKE_BURST,
  PROP_MESSAGE_RATE,
  PROP_MESSAGE_BURST,
  PROP_MESSAGE_RATE_POLICY,
  PROP_ALLOWED_ORIGINS,
  PROP_RAISE_FD_LIMIT,
  PROP_FD_RESERVE,
  PROP_PORT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_CONNECTION,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Configuration snapshot */

EngineIOConfig *
engine_io_config_ref (EngineIOConfig *config)
{
  g_atomic_ref_count_inc (&config->ref_count);
  return config;
}

void
engine_io_config_unref (EngineIOConfig *config)
{
  if (!g_atomic_ref_count_dec (&config->ref_count))
    return;

  g_free (config->path);
  g_strfreev (config->cors_origins);
  g_free (config->cookie_name);
  g_free (config->cookie_path);
  g_free (config->cookie_same_site);
  g_free (config->metrics_path);
  g_strfreev (config->allowed_origins);
  g_free (config);
}

/* An origin as browsers serialize it (RFC 6454): `null`, or
 * scheme://host[:port] in lowercase, without a path, a trailing slash, a
 * query, user information or the scheme's default port. Anything else
 * would never equal an Origin header. */
static gboolean
origin_is_serialized (const char *origin)
{
  const char *p = origin;
  const char *host;
  const char *port = NULL;
  gsize scheme_len;

  if (strcmp (origin, "null") == 0)
    return TRUE;
  if (!g_ascii_islower (*p))
    return FALSE;
  while (g_ascii_islower (*p) || g_ascii_isdigit (*p) || *p == '+' || *p == '-' || *p == '.')
    p++;
  scheme_len = p - origin;
  if (strncmp (p, "://", 3) != 0)
    return FALSE;
  host = p += 3;
  if (*p == '[')
    {
      /* An IPv6 literal */
      for (p++; *p != '\0' && *p != ']'; p++)
        if ((!g_ascii_isxdigit (*p) && *p != ':' && *p != '.') || g_ascii_isupper (*p))
          return FALSE;
      if (*p != ']' || p == host + 1)
        return FALSE;
      p++;
    }
  else
    while (*p != '\0' && *p != ':')
      {
        if (g_ascii_isupper (*p) || strchr ("/?#@[] \t\\", *p) != NULL || (guchar) *p < 0x20)
          return FALSE;
        p++;
      }
  if (p == host)
    return FALSE;
  if (*p == ':')
    {
      guint64 number;

      port = ++p;
      if (!g_ascii_string_to_unsigned (port, 10, 1, 65535, &number, NULL) || port[0] == '0')
        return FALSE;
      if ((number == 80 && (scheme_len == 4 && strncmp (origin, "http", 4) == 0)) ||
          (number == 443 && (scheme_len == 5 && strncmp (origin, "https", 5) == 0)) ||
          (number == 80 && (scheme_len == 2 && strncmp (origin, "ws", 2) == 0)) ||
          (number == 443 && (scheme_len == 3 && strncmp (origin, "wss", 3) == 0)))
        return FALSE;
      return TRUE;
    }
  return *p == '\0';
}

/* Descriptors */

/* The soft RLIMIT_NOFILE, G_MAXINT if unlimited. */
static guint64
fd_limit_now (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0)
    return 1024;
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > G_MAXINT)
    return G_MAXINT;
  return limit.rlim_cur;
}

/* Raises the soft RLIMIT_NOFILE to the hard one (#EngineIOServer:raise-fd-limit). */
static void
raise_fd_limit (void)
{
  struct rlimit limit;
  guint64 nr_open;
  g_autofree char *text = NULL;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == limit.rlim_max)
    return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &limit) == 0)
    return;
  /* An unlimited hard limit: Linux allows up to fs.nr_open. */
  if (limit.rlim_max == RLIM_INFINITY &&
      g_file_get_contents ("/proc/sys/fs/nr_open", &text, NULL, NULL) &&
      g_ascii_string_to_unsigned (g_strstrip (text), 10, 1, G_MAXINT, &nr_open, NULL))
    {
      limit.rlim_cur = nr_open;
      if (setrlimit (RLIMIT_NOFILE, &limit) == 0)
        return;
    }
  g_debug ("cannot raise the descriptor limit: %s", g_strerror (errno));
}

/* Descriptors open in the process now: /proc/self/fd on Linux (less the
 * one reading it), a guess elsewhere. */
static guint64
count_open_descriptors (void)
{
  GDir *dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint64 n = 0;

  if (dir == NULL)
    return 32;
  while (g_dir_read_name (dir) != NULL)
    n++;
  g_dir_close (dir);
  return n > 0 ? n - 1 : 0;
}

/* The budget, from the limit at start (see #EngineIOServer:fd-reserve). */
static void
config_set_descriptor_budget (EngineIOConfig *config,
                              EngineIOServer *self)
{
  guint64 limit = fd_limit_now ();
  guint64 held = count_open_descriptors ();
  guint64 reserve = self->fd_reserve > 0 ? self->fd_reserve : CLAMP (limit / 16, 64, 4096);
  guint64 headroom;
  guint64 loops = 0;
  gboolean own_contexts = self->callback_context == NULL;

  config->descriptor_limit = limit > held + reserve ? limit - held - reserve : 0;
  headroom = MAX (16, config->descriptor_limit / 8);
  /* Shared loop threads' contexts are the server's, not a session's. */
  if (own_contexts && self->loop_threads > 0)
    loops = (guint64) self->loop_threads * ENGINE_IO_CONTEXT_DESCRIPTORS;
  config->session_descriptors = config->descriptor_limit > headroom + loops
                                ? config->descriptor_limit - headroom - loops : 0;
  /* Its connection (a waiting poll) or WebSocket, and its own main
   * context with a thread per session. */
  config->session_cost = 1 + (own_contexts && self->loop_threads == 0 ? ENGINE_IO_CONTEXT_DESCRIPTORS : 0);
  __atomic_store_n (&self->counters.descriptor_limit, config->descriptor_limit, __ATOMIC_RELAXED);

  if (config->session_descriptors < config->session_cost)
    g_warning ("A descriptor limit of %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " open, "
               "fd-reserve %" G_GUINT64_FORMAT ") leaves no room for sessions: every handshake "
               "will be refused", limit, held, reserve);
  else
    g_debug ("descriptor budget: %" G_GUINT64_FORMAT " of a limit of %" G_GUINT64_FORMAT
             " (%" G_GUINT64_FORMAT " open, %" G_GUINT64_FORMAT " reserved); sessions: %"
             G_GUINT64_FORMAT " at %u each", config->descriptor_limit, limit, held, reserve,
             config->session_descriptors / config->session_cost, config->session_cost);
}

/* Called with the lock held: whether one more session fits in the
 * descriptor budget, both in what sessions reserve (each its connection
 * or WebSocket, and its context) and in what the server holds now (all
 * but half the headroom, which is kept for connections to answer
 * refusals on, and for sessions' second connections and upgrades). */
static gboolean
descriptors_allow_session (EngineIOServer *self,
                           EngineIOConfig *config)
{
  guint64 reserved = ((guint64) self->live_sessions + self->pending_handshakes + 1) * config->session_cost;
  guint64 held = __atomic_load_n (&self->counters.descriptors, __ATOMIC_RELAXED);
  guint64 headroom = config->descriptor_limit - config->session_descriptors;

  return reserved <= config->session_descriptors &&
         held + config->session_cost + headroom / 2 <= config->descriptor_limit;
}

static EngineIOConfig *
config_new_from_server (EngineIOServer  *self,
                        GError         **error)
{
  g_autoptr(GStrvBuilder) origins = NULL;
  EngineIOConfig *config;

  if (self->path == NULL || self->path[0] != '/')
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Path “%s” must start with “/”", self->path ? self->path : "(null)");
      return NULL;
    }
  if ((self->transports & (ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET)) == 0)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "No transport is enabled (property “transports”)");
      return NULL;
    }

  config = g_new0 (EngineIOConfig, 1);
  g_atomic_ref_count_init (&config->ref_count);
  config->ping_interval = self->ping_interval;
  config->ping_timeout = self->ping_timeout;
  config->upgrade_timeout = self->upgrade_timeout;
  config->max_payload = self->max_payload;
  config->path = g_str_has_suffix (self->path, "/") ? g_strdup (self->path)
                                                    : g_strconcat (self->path, "/", NULL);
  config->transports = self->transports;
  config->allow_upgrades = self->allow_upgrades;
  config->allow_eio3 = self->allow_eio3;
  config->cors_credentials = self->cors_credentials;
  config->cookie_name = g_strdup (self->cookie);
  config->cookie_path = g_strdup (self->cookie_path);
  config->cookie_http_only = self->cookie_http_only;
  config->cookie_same_site = g_strdup (self->cookie_same_site);
  config->max_sessions = self->max_sessions;
  config->send_queue_high_water = self->send_queue_high_water;
  config->receive_queue_high_water = self->receive_queue_high_water;
  config->backpressure = self->backpressure;
  config->connection_timeout = self->connection_timeout;
  config->handshake_rate = self->handshake_rate;
  config->handshake_capacity = engine_io_token_bucket_capacity (self->handshake_rate, self->handshake_burst);
  config->message_rate = self->message_rate;
  config->message_capacity = engine_io_token_bucket_capacity (self->message_rate, self->message_burst);
  config->message_policy = self->message_policy;
  config_set_descriptor_budget (config, self);
  if (self->allowed_origins != NULL)
    {
      for (guint i = 0; self->allowed_origins[i] != NULL; i++)
        if (!origin_is_serialized (self->allowed_origins[i]))
          {
            g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                         "“%s” in “allowed-origins” is not an origin as browsers send it: "
                         "scheme://host[:port] in lowercase, without a path, a trailing slash "
                         "or the scheme's default port (or “null”)", self->allowed_origins[i]);
            engine_io_config_unref (config);
            return NULL;
          }
      config->allowed_origins = g_strdupv (self->allowed_origins);
    }
  if (self->metrics_path != NULL && self->metrics_path[0] != '\0')
    {
      if (self->metrics_path[0] != '/')
        {
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                       "Metrics path “%s” must start with “/”", self->metrics_path);
          engine_io_config_unref (config);
          return NULL;
        }
      /* The engine answers the path with and without its trailing slash
       * (engine_io_server_path_matches()); the metrics must not take
       * either. */
      if (strcmp (self->metrics_path, config->path) == 0 ||
          (strlen (self->metrics_path) + 1 == strlen (config->path) &&
           strncmp (self->metrics_path, config->path, strlen (self->metrics_path)) == 0))
        {
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                       "Metrics path “%s” is the engine's path “%s”: choose another one",
                       self->metrics_path, self->path);
          engine_io_config_unref (config);
          return NULL;
        }
      config->metrics_path = g_strdup (self->metrics_path);
    }

  if (self->cors_origin != NULL && self->cors_origin[0] != '\0')
    {
      g_auto(GStrv) parts = g_strsplit (self->cors_origin, ",", -1);
      origins = g_strv_builder_new ();
      for (guint i = 0; parts[i] != NULL; i++)
        {
          g_strstrip (parts[i]);
          if (parts[i][0] != '\0')
            g_strv_builder_add (origins, parts[i]);
        }
      config->cors_origins = g_strv_builder_end (origins);
      if (config->cors_credentials && g_strv_contains ((const char * const *) config->cors_origins, "*"))
        {
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                       "“cors-credentials” cannot be combined with “cors-origin” “*”: "
                       "list the allowed origins instead");
          engine_io_config_unref (config);
          return NULL;
        }
    }

  return config;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOConfig, engine_io_config_unref)

/* Starting */

static gboolean server_is_started (EngineIOServer *self);

static gboolean
server_ensure_started (EngineIOServer  *self,
                       GError         **error)
{
  gboolean ok = TRUE;

  if (g_atomic_pointer_get (&self->config) != NULL && !g_atomic_int_get (&self->closed_flag))
    return TRUE;

  g_mutex_lock (&self->lock);
  if (self->closed || self->closing)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED, "The server is closed");
      ok = FALSE;
    }
  else if (self->config == NULL)
    {
      EngineIOConfig *config = config_new_from_server (self, error);
      if (config == NULL)
        ok = FALSE;
      else
        {
          self->pool = engine_io_loop_pool_new (self->loop_threads, self->callback_context,
                                                &self->counters.descriptors);
          g_atomic_pointer_set (&self->config, config);
        }
    }
  g_mutex_unlock (&self->lock);

  return ok;
}

/* The snapshot never changes once set and lives as long as the server. */
static EngineIOConfig *
server_get_config (EngineIOServer *self)
{
  EngineIOConfig *config = g_atomic_pointer_get (&self->config);

  return config != NULL ? engine_io_config_ref (config) : NULL;
}

/* Responses */

static gboolean header_is_clean (const char *value);

static void
add_cors_headers (EngineIOConfig  *config,
                  EngineIORequest *req,
                  GPtrArray       *headers,
                  gboolean         preflight)
{
  const char *origin;
  const char *allow = NULL;

  if (config->cors_origins == NULL)
    return;

  origin = g_hash_table_lookup (req->headers, "origin");
  if (g_strv_contains ((const char * const *) config->cors_origins, "*"))
    allow = "*";
  else if (origin != NULL && g_strv_contains ((const char * const *) config->cors_origins, origin))
    allow = origin;

  if (allow == NULL)
    return;

  g_ptr_array_add (headers, g_strdup ("Access-Control-Allow-Origin"));
  g_ptr_array_add (headers, g_strdup (allow));
  if (strcmp (allow, "*") != 0)
    {
      g_ptr_array_add (headers, g_strdup ("Vary"));
      g_ptr_array_add (headers, g_strdup ("Origin"));
      if (config->cors_credentials)
        {
          g_ptr_array_add (headers, g_strdup ("Access-Control-Allow-Credentials"));
          g_ptr_array_add (headers, g_strdup ("true"));
        }
    }
  if (preflight)
    {
      const char *wanted = g_hash_table_lookup (req->headers, "access-control-request-headers");
      g_ptr_array_add (headers, g_strdup ("Access-Control-Allow-Methods"));
      g_ptr_array_add (headers, g_strdup ("GET, POST, OPTIONS"));
      g_ptr_array_add (headers, g_strdup ("Access-Control-Allow-Headers"));
      /* Reflected only if clean, as the Origin is (no control characters). */
      g_ptr_array_add (headers, g_strdup (wanted != NULL && header_is_clean (wanted) ? wanted : "Content-Type"));
      g_ptr_array_add (headers, g_strdup ("Access-Control-Max-Age"));
      g_ptr_array_add (headers, g_strdup ("86400"));
    }
}

/* @extra: NULL, or NULL-terminated name, value pairs. */
static void
respond_full_with_headers (EngineIOConfig     *config,
                           EngineIORequest    *req,
                           guint               status,
                           const char         *content_type,
                           GBytes             *body,
                           gboolean            preflight,
                           const char * const *extra)
{
  g_autoptr(GPtrArray) headers = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GBytes) empty = NULL;

  if (content_type != NULL)
    {
      g_ptr_array_add (headers, g_strdup ("Content-Type"));
      g_ptr_array_add (headers, g_strdup (content_type));
    }
  for (guint i = 0; extra != NULL && extra[i] != NULL && extra[i + 1] != NULL; i += 2)
    {
      g_ptr_array_add (headers, g_strdup (extra[i]));
      g_ptr_array_add (headers, g_strdup (extra[i + 1]));
    }
  if (config != NULL)
    add_cors_headers (config, req, headers, preflight);
  if (req->set_cookie != NULL)
    {
      g_ptr_array_add (headers, g_strdup ("Set-Cookie"));
      g_ptr_array_add (headers, g_strdup (req->set_cookie));
    }

  if (body == NULL)
    body = empty = g_bytes_new_static ("", 0);

  req->kind = ENGINE_IO_REQUEST_DONE;
  req->vtable->respond (req, status, headers, body);
}

static void
respond_full (EngineIOConfig  *config,
              EngineIORequest *req,
              guint            status,
              const char      *content_type,
              GBytes          *body,
              gboolean         preflight)
{
  respond_full_with_headers (config, req, status, content_type, body, preflight, NULL);
}

void
engine_io_core_respond (EngineIOConfig  *config,
                        EngineIORequest *req,
                        guint            status,
                        const char      *content_type,
                        GBytes          *body)
{
  respond_full (config, req, status, content_type, body, FALSE);
}

static const char *const error_messages[] = {
  "Transport unknown",
  "Session ID unknown",
  "Bad handshake method",
  "Bad request",
  "Forbidden",
  "Unsupported protocol version",
};

static GBytes *
error_json (int         code,
            const char *message)
{
  char *text = g_strdup_printf ("{\"code\":%d,\"message\":\"%s\"}", code, message);
  return g_bytes_new_take (text, strlen (text));
}

void
engine_io_core_respond_error (EngineIOConfig  *config,
                              EngineIORequest *req,
                              int              code)
{
  g_autoptr(GBytes) body = NULL;

  g_assert (code >= 0 && code < (int) G_N_ELEMENTS (error_messages));
  body = error_json (code, error_messages[code]);
  respond_full (config, req, code == ENGINE_IO_CODE_FORBIDDEN ? 403 : 400,
                "application/json", body, FALSE);
}

static void
respond_status_json (EngineIOConfig  *config,
                     EngineIORequest *req,
                     guint            status,
                     int              code,
                     const char      *message)
{
  g_autoptr(GBytes) body = error_json (code, message);
  respond_full (config, req, status, "application/json", body, FALSE);
}

/* JSONP (v3): ___eio[N]("<payload as a JS string>"); */
static GBytes *
jsonp_wrap (const char *index,
            GBytes     *payload)
{
  gsize size;
  const char *data = g_bytes_get_data (payload, &size);
  GString *out = g_string_sized_new (size + 32);
  const char *p = data;
  const char *end = data + size;

  g_string_append (out, "___eio[");
  for (const char *d = index; *d; d++)
    if (g_ascii_isdigit (*d))
      g_string_append_c (out, *d);
  g_string_append (out, "](\"");
  while (p < end)
    {
      guchar c = (guchar) *p;
      if (c == '"' || c == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, c);
        }
      else if (c < 0x20)
        g_string_append_printf (out, "\\u%04x", c);
      else if (c == 0xE2 && end - p >= 3 && (guchar) p[1] == 0x80 &&
               ((guchar) p[2] == 0xA8 || (guchar) p[2] == 0xA9))
        {
          /* U+2028 / U+2029 end lines in older JavaScript */
          g_string_append (out, (guchar) p[2] == 0xA8 ? "\\u2028" : "\\u2029");
          p += 2;
        }
      else
        g_string_append_c (out, c);
      p++;
    }
  g_string_append (out, "\");");
  return g_string_free_to_bytes (out);
}

void
engine_io_core_respond_packets (EngineIOConfig          *config,
                                EngineIORequest         *req,
                                EngineIOProtocolVersion  version,
                                EngineIOPacket * const  *packets,
                                gsize                    n_packets)
{
  EngineIOPayloadFormat format = ENGINE_IO_PAYLOAD_V4;
  const char *content_type = "text/plain; charset=UTF-8";
  const char *jsonp = NULL;
  GByteArray *out = g_byte_array_new ();
  g_autoptr(GBytes) body = NULL;

  if (version == ENGINE_IO_PROTOCOL_V3)
    {
      gboolean any_binary = FALSE;

      for (gsize i = 0; i < n_packets; i++)
        any_binary |= engine_io_packet_is_binary (packets[i]);

      jsonp = g_hash_table_lookup (req->query, "j");
      format = ENGINE_IO_PAYLOAD_V3_TEXT;
      if (jsonp != NULL)
        content_type = "text/javascript; charset=UTF-8";
      else if (any_binary && !g_hash_table_contains (req->query, "b64"))
        {
          format = ENGINE_IO_PAYLOAD_V3_BINARY;
          content_type = "application/octet-stream";
        }
    }

  engine_io_payload_encode_append (format, packets, n_packets, out);
  body = g_byte_array_free_to_bytes (out);
  if (jsonp != NULL)
    {
      GBytes *wrapped = jsonp_wrap (jsonp, body);
      g_bytes_unref (body);
      body = wrapped;
    }

  respond_full (config, req, 200, content_type, body, FALSE);
}

void
engine_io_core_request_suspend (EngineIOServer  *self,
                                EngineIORequest *req)
{
  req->suspend_counted = TRUE;
  g_atomic_int_inc (&self->suspended);
  req->vtable->suspend (req);
}

/* The serving thread saw the request again (resumed), or for the last time
 * (a resumed connection whose client had gone is completed without
 * re-entering the handler). */
static void
request_unsuspend (EngineIOServer  *self,
                   EngineIORequest *req)
{
  if (!req->suspend_counted)
    return;
  req->suspend_counted = FALSE;
  if (g_atomic_int_dec_and_test (&self->suspended))
    {
      /* engine_io_server_close() checks the count under the lock. */
      g_mutex_lock (&self->lock);
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
    }
}

void
engine_io_core_request_resume (EngineIORequest *req)
{
  req->vtable->resume (req);
}


/* WebSocket upgrades */

static gboolean
header_has_token (GHashTable *headers,
                  const char *name,
                  const char *token)
{
  const char *value = g_hash_table_lookup (headers, name);
  g_auto(GStrv) parts = NULL;

  if (value == NULL)
    return FALSE;
  parts = g_strsplit (value, ",", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    if (g_ascii_strcasecmp (g_strstrip (parts[i]), token) == 0)
      return TRUE;
  return FALSE;
}

/* An RFC 6455 opening handshake we can answer? */
static gboolean
is_websocket_upgrade (EngineIORequest *req)
{
  const char *key = g_hash_table_lookup (req->headers, "sec-websocket-key");
  const char *version = g_hash_table_lookup (req->headers, "sec-websocket-version");
  gsize decoded_len = 0;
  g_autofree guchar *decoded = NULL;

  if (strcmp (req->method, "GET") != 0 ||
      !header_has_token (req->headers, "upgrade", "websocket") ||
      !header_has_token (req->headers, "connection", "upgrade") ||
      key == NULL || version == NULL || strcmp (version, "13") != 0 ||
      strlen (key) != 24)
    return FALSE;
  decoded = g_base64_decode (key, &decoded_len);
  return decoded_len == 16;
}

/* Answers 101 (the adapter switches the connection and attaches it to
 * @socket). Any permessage-deflate offer is declined by not echoing
 * Sec-WebSocket-Extensions. */
static void
upgrade_request (EngineIOConfig  *config,
                 EngineIORequest *req,
                 EngineIOSocket  *socket)
{
  g_autoptr(GPtrArray) headers = g_ptr_array_new_with_free_func (g_free);
  const char *key = g_hash_table_lookup (req->headers, "sec-websocket-key");

  g_ptr_array_add (headers, g_strdup ("Upgrade"));
  g_ptr_array_add (headers, g_strdup ("websocket"));
  g_ptr_array_add (headers, g_strdup ("Connection"));
  g_ptr_array_add (headers, g_strdup ("Upgrade"));
  g_ptr_array_add (headers, g_strdup ("Sec-WebSocket-Accept"));
  g_ptr_array_add (headers, engine_io_websocket_accept_key (key));
  if (req->set_cookie != NULL)
    {
      g_ptr_array_add (headers, g_strdup ("Set-Cookie"));
      g_ptr_array_add (headers, g_strdup (req->set_cookie));
    }

  req->kind = ENGINE_IO_REQUEST_UPGRADE;
  if (req->socket == NULL)
    req->socket = g_object_ref (socket);
  if (!req->vtable->upgrade (req, headers, socket))
    {
      req->kind = ENGINE_IO_REQUEST_DONE;
      if (!req->reject_ws)
        engine_io_socket_upgrade_failed (socket);
    }
}

/* Session ids */

static gboolean
sid_is_valid (const char *sid)
{
  gsize len = 0;

  if (sid == NULL)
    return FALSE;
  for (const char *p = sid; *p; p++, len++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return len >= 1 && len <= 128;
}

/* 144 bits from the kernel's CSPRNG, base64url without padding (24 chars). */
static char *
generate_sid (void)
{
  guint8 random[18];
  gsize done = 0;
  char *sid;

  while (done < sizeof random)
    {
      ssize_t n = getrandom (random + done, sizeof random - done, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          g_error ("getrandom() failed: %s", g_strerror (errno));
        }
      done += (gsize) n;
    }

  sid = g_base64_encode (random, sizeof random);
  for (char *p = sid; *p; p++)
    {
      if (*p == '+')
        *p = '-';
      else if (*p == '/')
        *p = '_';
    }
  return sid;
}

/* Handshakes */

typedef struct
{
  EngineIOServer    *server;     /* ref */
  EngineIORequest   *req;        /* suspended; owned by its adapter */
  EngineIOHandshake *handshake;  /* ref */
  EngineIOLoop      *loop;       /* one use, passed on to the socket */
  gboolean           version_ok; /* else refuse with code 5 once admitted */
} HandshakeJob;

static void
prepare_response (EngineIORequest *req,
                  guint            status,
                  int              code,
                  const char      *message)
{
  req->prepared_status = status;
  req->prepared_type = g_strdup ("application/json");
  req->prepared_body = error_json (code, message);
}

static gboolean
handshake_job_cb (gpointer data)
{
  HandshakeJob *job = data;
  EngineIOServer *self = job->server;
  EngineIORequest *req = job->req;
  EngineIOAdmissionFunc admission;
  gpointer admission_data;
  EngineIOIdFunc id_func;
  gpointer id_data;
  gboolean closing;
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  EngineIOConfig *config = self->config;

  g_mutex_lock (&self->lock);
  admission = self->admission_func;
  admission_data = self->admission_data;
  id_func = self->id_func;
  id_data = self->id_data;
  closing = self->closing;
  g_mutex_unlock (&self->lock);

  if (closing)
    prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else if (admission != NULL && !admission (self, job->handshake, admission_data))
    prepare_response (req, 403, ENGINE_IO_CODE_FORBIDDEN, "Forbidden");
  else if (!job->version_ok)
    prepare_response (req, 400, ENGINE_IO_CODE_UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version");
  else
    sid = id_func != NULL ? id_func (self, job->handshake, id_data) : generate_sid ();

  /* The handshake stops being pending here, whatever became of it. */
  g_mutex_lock (&self->lock);
  if (sid == NULL)
    ;  /* refused above */
  else if (!sid_is_valid (sid))
    {
      g_warning ("The id function returned an invalid session id (1 to 128 of A-Z a-z 0-9 - _ .)");
      prepare_response (req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Invalid session id generated");
    }
  else if (g_hash_table_contains (self->sockets, sid))
    {
      g_warning ("The id function returned the id of an open session");
      prepare_response (req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Duplicate session id generated");
    }
  else if (self->closing)
    prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else
    {
      socket = engine_io_socket_new (self, config, sid, job->handshake, job->loop);
      job->loop = NULL;
      g_hash_table_insert (self->sockets, g_strdup (sid), g_object_ref (socket));
      self->live_sessions++;
    }
  g_assert (self->pending_handshakes > 0);
  self->pending_handshakes--;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  if (socket == NULL)
    {
      engine_io_core_request_resume (req);  /* with the prepared refusal */
      return G_SOURCE_REMOVE;
    }

  if (config->cookie_name != NULL)
    {
      GString *cookie = g_string_new (NULL);
      g_string_append_printf (cookie, "%s=%s", config->cookie_name, sid);
      if (config->cookie_path != NULL)
        g_string_append_printf (cookie, "; Path=%s", config->cookie_path);
      if (config->cookie_http_only)
        g_string_append (cookie, "; HttpOnly");
      if (config->cookie_same_site != NULL && config->cookie_same_site[0] != '\0')
        g_string_append_printf (cookie, "; SameSite=%s", config->cookie_same_site);
      req->set_cookie = g_string_free (cookie, FALSE);
    }

  if (engine_io_handshake_get_transport (job->handshake) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      /* The open packet will be the first frame once the connection is
       * switched (on the serving thread, when it resumes). */
      req->socket = g_object_ref (socket);
      req->kind = ENGINE_IO_REQUEST_UPGRADE;
      engine_io_socket_start (socket, NULL);
      engine_io_core_request_resume (req);
      return G_SOURCE_REMOVE;
    }

  /* Polling: the handshake GET is the session's first poll. */
  engine_io_socket_start (socket, req);
  return G_SOURCE_REMOVE;
}

static void
handshake_job_free (gpointer data)
{
  HandshakeJob *job = data;

  if (job->loop != NULL)
    engine_io_loop_release (job->loop);
  engine_io_handshake_unref (job->handshake);
  g_object_unref (job->server);
  g_free (job);
}

static GHashTable *
copy_string_table (GHashTable *table)
{
  GHashTable *copy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (copy, g_strdup (key), g_strdup (value));
  return copy;
}

/* Handshake rate limit: a token bucket per client address (IPv4), per
 * /64 network (IPv6: one host commonly holds a whole /64), in a table
 * bounded in size. Buckets that refilled are forgotten (a full bucket is
 * the same as none); past RATE_MAX_ADDRESSES the least recently seen go
 * first. */

#define RATE_MAX_ADDRESSES 16384

typedef struct
{
  GList                link;    /* in rate_lru; data: this entry */
  char                *key;
  EngineIOTokenBucket  bucket;
} RateEntry;

static void
rate_entry_free (gpointer data)
{
  RateEntry *entry = data;

  g_free (entry->key);
  g_free (entry);
}

/* The bucket key of a numeric address. */
static char *
rate_key (const char *address)
{
  g_autoptr(GInetAddress) inet = NULL;
  guint8 bytes[16];

  if (address == NULL || address[0] == '\0')
    return g_strdup ("");
  inet = g_inet_address_new_from_string (address);
  if (inet == NULL || g_inet_address_get_family (inet) != G_SOCKET_FAMILY_IPV6)
    return g_strdup (address);

  memcpy (bytes, g_inet_address_to_bytes (inet), 16);
  if (memcmp (bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
    {
      /* IPv4-mapped: the IPv4 address */
      g_autoptr(GInetAddress) v4 = g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);
      return g_inet_address_to_string (v4);
    }
  memset (bytes + 8, 0, 8);
  {
    g_autoptr(GInetAddress) prefix = g_inet_address_new_from_bytes (bytes, G_SOCKET_FAMILY_IPV6);
    g_autofree char *text = g_inet_address_to_string (prefix);
    return g_strconcat (text, "/64", NULL);
  }
}

/* Any thread. Takes a handshake token for @address; on refusal, sets
 * @retry_after (seconds). */
static gboolean
handshake_rate_take (EngineIOServer *self,
                     EngineIOConfig *config,
                     const char     *address,
                     guint          *retry_after)
{
  g_autofree char *key = rate_key (address);
  gint64 now = g_get_monotonic_time ();
  RateEntry *entry;
  gboolean ok;

  g_mutex_lock (&self->rate_lock);
  while (self->rate_lru.head != NULL)
    {
      RateEntry *oldest = self->rate_lru.head->data;

      if (self->rate_lru.length < RATE_MAX_ADDRESSES &&
          !engine_io_token_bucket_is_full (&oldest->bucket, config->handshake_rate,
                                           config->handshake_capacity, now))
        break;
      g_queue_unlink (&self->rate_lru, &oldest->link);
      g_hash_table_remove (self->rate_table, oldest->key);  /* frees it */
    }

  entry = g_hash_table_lookup (self->rate_table, key);
  if (entry == NULL)
    {
      entry = g_new0 (RateEntry, 1);
      entry->key = g_steal_pointer (&key);
      entry->link.data = entry;
      g_hash_table_insert (self->rate_table, entry->key, entry);
    }
  else
    g_queue_unlink (&self->rate_lru, &entry->link);
  g_queue_push_tail_link (&self->rate_lru, &entry->link);

  ok = engine_io_token_bucket_take (&entry->bucket, config->handshake_rate, config->handshake_capacity, now);
  if (!ok)
    *retry_after = engine_io_token_bucket_retry_after (&entry->bucket, config->handshake_rate);
  g_mutex_unlock (&self->rate_lock);

  return ok;
}

guint
engine_io_server_get_rate_table_size (EngineIOServer *self)
{
  guint n;

  g_mutex_lock (&self->rate_lock);
  n = g_hash_table_size (self->rate_table);
  g_mutex_unlock (&self->rate_lock);
  return n;
}

/* Whether a request may come from its Origin: with allowed-origins set, a
 * request that has an Origin header needs it in the list (exactly);
 * requests without one (non-browser clients, same-origin GETs) pass. */
static gboolean
origin_allowed (EngineIOConfig  *config,
                EngineIORequest *req)
{
  const char *origin;

  if (config->allowed_origins == NULL)
    return TRUE;
  origin = g_hash_table_lookup (req->headers, "origin");
  return origin == NULL ||
         g_strv_contains ((const char * const *) config->allowed_origins, origin);
}

static void
handle_handshake (EngineIOServer          *self,
                  EngineIOConfig          *config,
                  EngineIORequest         *req,
                  EngineIOTransportType    transport)
{
  const char *eio = g_hash_table_lookup (req->query, "EIO");
  EngineIOProtocolVersion version;
  HandshakeJob *job;
  EngineIOLoop *loop;
  GSource *source;
  GMainContext *context;
  gboolean full = FALSE;
  gboolean no_descriptors = FALSE;
  gboolean closing;
  gboolean version_ok;

  if (strcmp (req->method, "GET") != 0)
    {
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_HANDSHAKE_METHOD);
      return;
    }
  if (transport == ENGINE_IO_TRANSPORT_WEBSOCKET &&
      (!is_websocket_upgrade (req) || req->vtable->upgrade == NULL))
    {
      /* A WebSocket handshake without a valid Upgrade. */
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
      return;
    }
  /* Every handshake counts against its address's rate, whatever becomes
   * of it after; refused ones create nothing. */
  if (config->handshake_rate > 0)
    {
      guint retry_after = 0;

      if (!handshake_rate_take (self, config, req->remote_address, &retry_after))
        {
          g_autofree char *seconds = g_strdup_printf ("%u", retry_after);
          const char *extra[] = { "Retry-After", seconds, NULL };
          g_autoptr(GBytes) body = error_json (ENGINE_IO_CODE_FORBIDDEN, "Too many handshakes from this address");

          engine_io_counter_add (&self->counters.handshakes_rate_limited, 1);
          g_debug ("handshake from %s refused: over handshake-rate", req->remote_address);
          respond_full_with_headers (config, req, 429, "application/json", body, FALSE, extra);
          return;
        }
    }
  /* An unsupported version is refused with code 5 after the admission
   * hook (code 4), as PROTOCOL.md and the reference order them; without a
   * hook there is nothing to wait for. */
  version_ok = eio != NULL && engine_io_protocol_version_from_string (eio, &version) &&
               (version != ENGINE_IO_PROTOCOL_V3 || config->allow_eio3);
  if (!version_ok)
    {
      gboolean hook;

      g_mutex_lock (&self->lock);
      hook = self->admission_func != NULL;
      g_mutex_unlock (&self->lock);
      if (!hook)
        {
          engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNSUPPORTED_PROTOCOL_VERSION);
          return;
        }
      version = ENGINE_IO_PROTOCOL_V4;  /* what the hook sees; the query has the real EIO */
    }

  g_mutex_lock (&self->lock);
  if (self->closing)
    full = TRUE;
  else if (config->max_sessions > 0 &&
           self->live_sessions + self->pending_handshakes >= config->max_sessions)
    full = TRUE;
  else if (!descriptors_allow_session (self, config))
    full = no_descriptors = TRUE;
  else
    self->pending_handshakes++;
  closing = self->closing;
  g_mutex_unlock (&self->lock);

  if (no_descriptors)
    {
      /* The connection is closed after the answer: a client that keeps
       * trying does not hold a descriptor between its attempts. */
      const char *extra[] = { "Connection", "close", NULL };
      g_autoptr(GBytes) body = error_json (ENGINE_IO_CODE_FORBIDDEN, "Too many sessions (descriptor limit)");

      engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      g_debug ("handshake from %s refused: at the descriptor budget", req->remote_address);
      respond_full_with_headers (config, req, 503, "application/json", body, FALSE, extra);
      return;
    }
  if (full)
    {
      if (!closing)
        engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      respond_status_json (config, req, 503, ENGINE_IO_CODE_FORBIDDEN,
                           closing ? "Server shutting down" : "Too many sessions");
      return;
    }

  loop = engine_io_loop_pool_acquire (self->pool);
  if (loop == NULL)
    {
      g_mutex_lock (&self->lock);
      self->pending_handshakes--;
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      respond_status_json (config, req, 503, ENGINE_IO_CODE_FORBIDDEN, "Cannot start a session");
      return;
    }

  job = g_new0 (HandshakeJob, 1);
  job->server = g_object_ref (self);
  job->req = req;
  job->loop = loop;
  job->version_ok = version_ok;
  job->handshake = engine_io_handshake_new (req->method, req->path,
                                            copy_string_table (req->headers),
                                            copy_string_table (req->query),
                                            req->remote_address, version, transport);

  req->kind = ENGINE_IO_REQUEST_HANDSHAKE;
  engine_io_core_request_suspend (self, req);

  /* The admission hook and ::connection run in the session's context. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, handshake_job_cb, job, handshake_job_free);
  g_source_set_static_name (source, "[engineio] handshake");
  /* With a reference on the context until the source's is dropped: the
   * session may run, end and release its loop before g_source_unref(), and
   * a context's last unref must not race with it (g_source_unref() reads
   * source->context, which that unref clears, then locks the context). */
  context = g_main_context_ref (engine_io_loop_get_context (loop));
  g_source_attach (source, context);
  g_source_unref (source);
  g_main_context_unref (context);
}

/* Protocol core entry points */

gboolean
engine_io_server_path_matches (EngineIOServer *self,
                               const char     *path)
{
  g_autoptr(EngineIOConfig) config = NULL;
  gsize len;

  /* A mounted server starts on its first request. */
  server_ensure_started (self, NULL);
  config = server_get_config (self);
  if (config == NULL)
    return FALSE;
  len = strlen (config->path);
  /* "/engine.io/" matches "/engine.io" and "/engine.io/" */
  if (config->metrics_path != NULL && strcmp (path, config->metrics_path) == 0)
    return TRUE;
  return strcmp (path, config->path) == 0 ||
         (strlen (path) == len - 1 && strncmp (path, config->path, len - 1) == 0);
}

static EngineIOSocket *
lookup_socket (EngineIOServer *self,
               const char     *sid)
{
  EngineIOSocket *socket;

  g_mutex_lock (&self->lock);
  socket = g_hash_table_lookup (self->sockets, sid);
  if (socket != NULL)
    g_object_ref (socket);
  g_mutex_unlock (&self->lock);

  return socket;
}

static gboolean
header_is_clean (const char *value)
{
  if (value == NULL)
    return TRUE;
  for (const guchar *p = (const guchar *) value; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* While the server closes, its sessions still take requests (with a sid):
 * a polling session closed with something left to deliver waits for its
 * client's next poll (it lingers), which gets what was queued, then `1`;
 * other requests for a closing session are refused by the session. */
static gboolean
server_is_closing_sessions (EngineIOServer  *self,
                            EngineIORequest *req)
{
  gboolean closing;

  if (!g_hash_table_contains (req->query, "sid"))
    return FALSE;
  g_mutex_lock (&self->lock);
  closing = self->closing && !self->closed && self->config != NULL;
  g_mutex_unlock (&self->lock);
  return closing;
}

gboolean
engine_io_server_request_begin (EngineIOServer  *self,
                                EngineIORequest *req)
{
  g_autoptr(EngineIOConfig) config = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  const char *transport_name;
  const char *sid;
  EngineIOTransportType transport;

  if (!server_ensure_started (self, NULL) && !server_is_closing_sessions (self, req))
    {
      /* The same answer as a handshake gets while the server closes. */
      respond_status_json (NULL, req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
      return FALSE;
    }
  config = server_get_config (self);

  /* Counted until the adapter reports it complete: close waits for the
   * responses to be written before stopping the daemon. */
  req->begun = TRUE;
  g_atomic_int_inc (&self->active_requests);

  if (config->metrics_path != NULL && strcmp (req->path, config->metrics_path) == 0)
    {
      g_autoptr(EngineIOMetrics) metrics = engine_io_server_get_metrics (self);
      char *text = engine_io_metrics_to_prometheus (metrics);
      g_autoptr(GBytes) body = g_bytes_new_take (text, strlen (text));

      if (strcmp (req->method, "GET") != 0 && strcmp (req->method, "HEAD") != 0)
        respond_status_json (NULL, req, 405, ENGINE_IO_CODE_BAD_REQUEST, "Method not allowed");
      else
        respond_full (NULL, req, 200, "text/plain; version=0.0.4; charset=utf-8", body, FALSE);
      return FALSE;
    }

  /* A CORS preflight is answered before any check, with or without sid. */
  if (strcmp (req->method, "OPTIONS") == 0)
    {
      respond_full (config, req, 204, NULL, NULL, TRUE);
      return FALSE;
    }

  /* A query value the adapter could not pass whole (an encoded NUL): the
   * truncated value (`sid=<sid>%00junk`) must not be taken for another. */
  if (req->malformed)
    {
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
      return FALSE;
    }

  transport_name = g_hash_table_lookup (req->query, "transport");
  if (transport_name == NULL ||
      !engine_io_transport_type_from_string (transport_name, &transport) ||
      !(config->transports & (transport == ENGINE_IO_TRANSPORT_POLLING ? ENGINE_IO_TRANSPORTS_POLLING
                                                                       : ENGINE_IO_TRANSPORTS_WEBSOCKET)))
    {
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNKNOWN_TRANSPORT);
      return FALSE;
    }

  if (!header_is_clean (g_hash_table_lookup (req->headers, "origin")))
    {
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
      return FALSE;
    }

  /* allowed-origins: handshakes, polls, POSTs and upgrades alike (a
   * preflight was answered above, by cors-origin's rules). */
  if (!origin_allowed (config, req))
    {
      g_debug ("request from origin %s refused: not in allowed-origins",
               (const char *) g_hash_table_lookup (req->headers, "origin"));
      respond_status_json (config, req, 403, ENGINE_IO_CODE_FORBIDDEN, "Origin not allowed");
      return FALSE;
    }

  sid = g_hash_table_lookup (req->query, "sid");
  if (sid == NULL)
    {
      handle_handshake (self, config, req, transport);
      return FALSE;
    }

  socket = lookup_socket (self, sid);
  if (socket == NULL)
    {
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNKNOWN_SID);
      return FALSE;
    }

  if (transport == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      /* An upgrade of a polling session; after it upgraded (a second
       * WebSocket) and while another probe is open, answered 101 and
       * closed at once, as the reference does. */
      if (!config->allow_upgrades || req->vtable->upgrade == NULL ||
          !is_websocket_upgrade (req) || !engine_io_socket_begin_upgrade (socket, &req->reject_ws))
        {
          engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
          return FALSE;
        }
      upgrade_request (config, req, socket);
      return FALSE;
    }

  if (transport != engine_io_socket_get_transport (socket))
    {
      /* Polling for a session that upgraded. */
      engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
      return FALSE;
    }

  if (strcmp (req->method, "GET") == 0)
    {
      engine_io_socket_handle_poll (socket, req);
      return FALSE;
    }
  if (strcmp (req->method, "POST") == 0)
    {
      if (req->content_length >= 0 && (guint64) req->content_length > config->max_payload)
        {
          engine_io_server_request_too_large (self, req);
          return FALSE;
        }
      return engine_io_socket_begin_post (socket, req);
    }

  engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
  return FALSE;
}

void
engine_io_server_request_body (EngineIOServer  *self,
                               EngineIORequest *req,
                               GBytes          *body)
{
  g_return_if_fail (req->kind == ENGINE_IO_REQUEST_POST && req->socket != NULL);

  engine_io_socket_handle_post (req->socket, req, body);
}

void
engine_io_server_request_too_large (EngineIOServer  *self,
                                    EngineIORequest *req)
{
  g_autoptr(EngineIOConfig) config = server_get_config (self);
  char *message = g_strdup_printf ("Payload too large (max-payload is %" G_GUINT64_FORMAT " bytes)",
                                   config != NULL ? config->max_payload : self->max_payload);
  g_autoptr(GBytes) body = g_bytes_new_take (message, strlen (message));

  /* A POST refused after it began (a chunked body that grew too large):
   * the session takes the client's next POST, which may come as soon as
   * the client reads the 413, before libmicrohttpd reports this request
   * complete. */
  if (req->kind == ENGINE_IO_REQUEST_POST && req->socket != NULL)
    engine_io_socket_end_post (req->socket, req);
  respond_full (config, req, 413, "text/plain; charset=UTF-8", body, FALSE);
}

void
engine_io_server_request_resumed (EngineIOServer  *self,
                                  EngineIORequest *req)
{
  request_unsuspend (self, req);

  if (req->prepared_body != NULL)
    {
      g_autoptr(EngineIOConfig) config = server_get_config (self);
      respond_full (config, req, req->prepared_status, req->prepared_type, req->prepared_body, FALSE);
      return;
    }

  if (req->kind == ENGINE_IO_REQUEST_POLL && req->socket != NULL)
    {
      engine_io_socket_handle_poll_resumed (req->socket, req);
      return;
    }

  if (req->kind == ENGINE_IO_REQUEST_POST && req->socket != NULL)
    {
      /* A POST held while its session was over its memory bound. */
      engine_io_socket_handle_post_resumed (req->socket, req);
      return;
    }

  if (req->kind == ENGINE_IO_REQUEST_UPGRADE && req->socket != NULL)
    {
      g_autoptr(EngineIOConfig) config = server_get_config (self);
      upgrade_request (config, req, req->socket);
      return;
    }

  g_warn_if_reached ();
  respond_status_json (NULL, req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Internal error");
}

void
engine_io_server_request_client_gone (EngineIOServer  *self,
                                      EngineIORequest *req)
{
  request_unsuspend (self, req);
  if (req->kind == ENGINE_IO_REQUEST_POLL && req->socket != NULL && req->prepared_body == NULL)
    engine_io_socket_poll_client_gone (req->socket, req);
}

void
engine_io_server_request_gone_unanswered (EngineIOServer  *self,
                                          EngineIORequest *req)
{
  g_autoptr(EngineIOSocket) socket = NULL;
  const char *sid = g_hash_table_lookup (req->query, "sid");

  if (sid == NULL || req->malformed ||
      g_strcmp0 (g_hash_table_lookup (req->query, "transport"), "polling") != 0 ||
      !server_ensure_started (self, NULL))
    return;
  socket = lookup_socket (self, sid);
  if (socket != NULL)
    engine_io_socket_poll_gone_unanswered (socket);
}

void
engine_io_server_request_finished (EngineIOServer  *self,
                                   EngineIORequest *req,
                                   gboolean         completed)
{
  request_unsuspend (self, req);
  if (req->begun)
    {
      req->begun = FALSE;
      if (g_atomic_int_dec_and_test (&self->active_requests))
        {
          g_mutex_lock (&self->lock);
          g_cond_broadcast (&self->cond);
          g_mutex_unlock (&self->lock);
        }
    }

  if (req->socket == NULL)
    return;
  if (req->kind == ENGINE_IO_REQUEST_UPGRADE)
    {
      /* The 101 was queued but the connection never switched. */
      if (!req->reject_ws)
        engine_io_socket_upgrade_failed (req->socket);
      return;
    }
  /* A switched request was never the session's poll or POST: nothing to
   * undo. Not taking the socket lock here also keeps one lock order (the
   * socket's before libmicrohttpd's): libmicrohttpd reports the end of an
   * upgraded connection with its own lock held, while a poll suspends its
   * connection under the socket lock. */
  if (req->switched)
    return;
  engine_io_socket_request_finished (req->socket, req, completed);
}

guint64
engine_io_server_get_max_payload (EngineIOServer *self)
{
  EngineIOConfig *config = g_atomic_pointer_get (&self->config);

  return config != NULL ? config->max_payload : self->max_payload;
}

guint64
engine_io_server_get_descriptor_limit (EngineIOServer *self)
{
  EngineIOConfig *config = g_atomic_pointer_get (&self->config);

  return config != NULL ? config->descriptor_limit : G_MAXUINT64;
}

guint
engine_io_server_get_connection_timeout (EngineIOServer *self)
{
  EngineIOConfig *config = g_atomic_pointer_get (&self->config);

  return config != NULL ? config->connection_timeout : self->connection_timeout;
}

/* Request objects */

void
engine_io_request_init (EngineIORequest             *req,
                        const EngineIORequestVTable *vtable)
{
  static gsize serial;

  memset (req, 0, sizeof *req);
  req->vtable = vtable;
  req->content_length = -1;
  req->serial = (gsize) g_atomic_pointer_add (&serial, 1) + 1;
}

void
engine_io_request_clear (EngineIORequest *req)
{
  /* engine_io_server_request_finished() handed them to the session. */
  g_warn_if_fail (req->flush_items == NULL);
  g_clear_pointer (&req->method, g_free);
  g_clear_pointer (&req->path, g_free);
  g_clear_pointer (&req->query, g_hash_table_unref);
  g_clear_pointer (&req->headers, g_hash_table_unref);
  g_clear_pointer (&req->remote_address, g_free);
  g_clear_object (&req->socket);
  g_clear_pointer (&req->prepared_body, g_bytes_unref);
  g_clear_pointer (&req->prepared_type, g_free);
  g_clear_pointer (&req->set_cookie, g_free);
}

/* Sessions */

void
engine_io_server_unregister_socket (EngineIOServer *self,
                                    EngineIOSocket *socket)
{
  g_mutex_lock (&self->lock);
  if (g_hash_table_lookup (self->sockets, engine_io_socket_get_id (socket)) == socket)
    g_hash_table_remove (self->sockets, engine_io_socket_get_id (socket));
  g_mutex_unlock (&self->lock);
}

void
engine_io_server_socket_finished (EngineIOServer *self)
{
  g_mutex_lock (&self->lock);
  g_assert (self->live_sessions > 0);
  self->live_sessions--;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

void
engine_io_server_emit_connection (EngineIOServer *self,
                                  EngineIOSocket *socket)
{
  g_signal_emit (self, signals[SIGNAL_CONNECTION], 0, socket);
}

/* Public API */

/**
 * engine_io_server_new:
 *
 * Creates a server with the reference server's defaults. Set properties
 * with g_object_set() (or use g_object_new() with them) before it starts.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): a new server
 */
EngineIOServer *
engine_io_server_new (void)
{
  return g_object_new (ENGINE_IO_TYPE_SERVER, NULL);
}

/**
 * engine_io_server_listen:
 * @self: a server
 * @address: (nullable): a numeric IPv4 or IPv6 address to bind, or %NULL
 *   for 127.0.0.1
 * @port: the TCP port, or 0 to pick a free one (read it back with
 *   engine_io_server_get_port())
 * @error: return location for a #GError
 *
 * Starts the server on its own libmicrohttpd daemon (a pool of worker
 * threads using epoll). First, unless #EngineIOServer:raise-fd-limit is
 * %FALSE, raises the process's soft `RLIMIT_NOFILE` to its hard limit;
 * the server's descriptor budget is taken from the limit then (see
 * #EngineIOServer:fd-reserve). Fails with %ENGINE_IO_ERROR_LISTEN if the address
 * cannot be bound, %ENGINE_IO_ERROR_INVALID_ARGUMENT for a bad address or
 * configuration, %ENGINE_IO_ERROR_CLOSED after engine_io_server_close().
 * A server listens at most once.
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE on success
 */
gboolean
engine_io_server_listen (EngineIOServer  *self,
                         const char      *address,
                         guint            port,
                         GError         **error)
{
  EngineIOHttpDaemon *daemon;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (port <= 65535, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Before the server starts, which takes its descriptor budget from the
   * limit. */
  if (self->raise_fd_limit && !server_is_started (self))
    raise_fd_limit ();
  if (!server_ensure_started (self, error))
    return FALSE;

  g_mutex_lock (&self->lock);
  if (self->daemon != NULL)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN, "The server is already listening");
      return FALSE;
    }
  g_mutex_unlock (&self->lock);

  daemon = engine_io_http_daemon_start (self, address ? address : "127.0.0.1", port, error);
  if (daemon == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  self->daemon = daemon;
  self->port = engine_io_http_daemon_get_port (daemon);
  g_mutex_unlock (&self->lock);

  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PORT]);
  return TRUE;
}

/**
 * engine_io_server_get_port:
 * @self: a server
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the port the server listens on, or 0 if it does not listen
 */
guint
engine_io_server_get_port (EngineIOServer *self)
{
  guint port;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);

  g_mutex_lock (&self->lock);
  port = self->port;
  g_mutex_unlock (&self->lock);

  return port;
}

/* Called with the lock held. Whether every session, handshake and poll is
 * gone. */
static gboolean
sessions_gone_locked (EngineIOServer *self)
{
  return self->live_sessions == 0 && self->pending_handshakes == 0 &&
         g_atomic_int_get (&self->suspended) == 0;
}

static gboolean
closed_locked (EngineIOServer *self)
{
  return self->closed;
}

/* Called with the lock held; waits until @done or @deadline. With
 * @iterate_external, runs #EngineIOServer:callback-context meanwhile
 * whenever this thread can acquire it (sessions deliver into it, and the
 * thread calling may be the one that iterates it). */
static gboolean
wait_locked (EngineIOServer  *self,
             gboolean       (*done) (EngineIOServer *self),
             gint64           deadline,
             gboolean         iterate_external)
{
  GMainContext *external = iterate_external ? self->callback_context : NULL;

  while (!done (self))
    {
      if (external != NULL && g_main_context_acquire (external))
        {
          g_mutex_unlock (&self->lock);
          g_main_context_iteration (external, FALSE);
          g_main_context_release (external);
          g_usleep (1000);
          g_mutex_lock (&self->lock);
          if (g_get_monotonic_time () > deadline)
            return done (self);
          continue;
        }
      /* In slices: another thread may stop iterating the context. */
      if (!g_cond_wait_until (&self->cond, &self->lock,
                              external != NULL ? MIN (deadline, g_get_monotonic_time () + 50 * 1000)
                                               : deadline) &&
          g_get_monotonic_time () >= deadline)
        return done (self);
    }
  return TRUE;
}

/* Whether this thread may wait for the sessions to end. Not on a session
 * thread (its own session, or its loop's other sessions, could not end),
 * not from inside a dispatch of one of our sources (a signal handler, a
 * hook, a send callback or a timer in #EngineIOServer:callback-context:
 * iterating the context from there would re-enter the session whose
 * source is on the stack), and not from a nested dispatch of that context
 * (one of ours may be further down the stack). Our sources are all named
 * "[engineio] …". */
static gboolean
may_wait_here (EngineIOServer *self)
{
  GSource *current;
  const char *name;

  if (engine_io_in_loop_thread () || engine_io_http_in_daemon_thread ())
    return FALSE;
  current = g_main_current_source ();
  name = current != NULL ? g_source_get_name (current) : NULL;
  if (name != NULL && g_str_has_prefix (name, "[engineio]"))
    return FALSE;
  if (self->callback_context != NULL && g_main_context_is_owner (self->callback_context) &&
      g_main_depth () > 1)
    return FALSE;
  return TRUE;
}

/* Starts the shutdown; FALSE if it had started already. Any thread. */
static gboolean
server_begin_close (EngineIOServer *self)
{
  g_autoptr(GPtrArray) sockets = NULL;

  g_mutex_lock (&self->lock);
  if (self->closing || self->closed)
    {
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
  self->closing = TRUE;
  g_atomic_int_set (&self->closed_flag, 1);
  g_mutex_unlock (&self->lock);

  /* No MHD_quiesce_daemon(): with a worker pool on epoll, libmicrohttpd
   * 0.9.75 can abort in it ("Failed to remove listen FD from epoll set")
   * when a worker toggles the listen socket at the same time. New
   * handshakes during the close are answered 503 {"code":4,"message":
   * "Server shutting down"} until the daemon stops; requests for a
   * session go to it (a lingering session's last poll takes what was
   * queued), 400 once it is forgotten. */

  /* Each close is an event for the session's context: never re-entrant,
   * so this is safe from the sessions' own handlers. */
  sockets = engine_io_server_get_sockets (self);
  for (guint i = 0; i < sockets->len; i++)
    engine_io_socket_close_with_reason (g_ptr_array_index (sockets, i),
                                        ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN, NULL);
  return TRUE;
}

static void close_task_complete (GTask *task);

static gboolean
none_suspended_locked (EngineIOServer *self)
{
  return g_atomic_int_get (&self->suspended) == 0;
}

/* Answers the waiting polls and held POSTs of the sessions still open
 * (503, server shutting down); they are finished by their serving
 * threads, and their sessions end whenever their context runs again. */
static void
release_suspended_requests (EngineIOServer *self)
{
  g_autoptr(GPtrArray) sockets = engine_io_server_get_sockets (self);

  for (guint i = 0; i < sockets->len; i++)
    {
      g_autoptr(GPtrArray) taken = engine_io_socket_take_suspended (g_ptr_array_index (sockets, i));

      for (guint j = 0; j < taken->len; j++)
        {
          EngineIORequest *req = g_ptr_array_index (taken, j);

          if (req->prepared_body == NULL)
            prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
          engine_io_core_request_resume (req);
        }
    }
}

/* Waits for the sessions to end (up to 10 seconds), stops the daemon and
 * every thread of the pool, then marks the server closed and completes
 * the engine_io_server_close_async() calls. Only where may_wait_here()
 * (or on the shutdown thread, with @iterate_external FALSE). */
static void
server_finish_close (EngineIOServer *self,
                     gboolean        iterate_external)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  EngineIOHttpDaemon *daemon;
  g_autoptr(GPtrArray) tasks = NULL;

  g_mutex_lock (&self->lock);
  if (!wait_locked (self, sessions_gone_locked, deadline, iterate_external))
    {
      g_warning ("Server close: %u sessions, %u handshakes and %u polls still pending after 10 s",
                 self->live_sessions, self->pending_handshakes, g_atomic_int_get (&self->suspended));
      /* libmicrohttpd aborts the process when it is stopped with a
       * suspended connection: the polls and POSTs of sessions that did
       * not end (their context is blocked) are answered now. */
      g_mutex_unlock (&self->lock);
      release_suspended_requests (self);
      g_mutex_lock (&self->lock);
      deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
      if (!wait_locked (self, none_suspended_locked, deadline, iterate_external))
        g_warning ("Server close: %u requests still suspended", g_atomic_int_get (&self->suspended));
    }
  /* Let the last responses (the `1`s) be written; a request still
   * uploading its body is given a moment, not more. */
  deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  while (g_atomic_int_get (&self->active_requests) > 0)
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
      break;
  daemon = g_steal_pointer (&self->daemon);
  self->port = 0;
  g_mutex_unlock (&self->lock);

  if (daemon != NULL)
    engine_io_http_daemon_stop (daemon);

  if (self->pool != NULL)
    engine_io_loop_pool_shutdown (self->pool, 5 * G_USEC_PER_SEC);

  g_mutex_lock (&self->lock);
  self->closed = TRUE;
  tasks = g_steal_pointer (&self->close_tasks);
  self->close_tasks = g_ptr_array_new ();
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < tasks->len; i++)
    close_task_complete (g_ptr_array_index (tasks, i));
}

/* The shutdown, when its caller must not wait for it (see may_wait_here()).
 * Holds a reference on the server until the close is complete. */
static gpointer
shutdown_thread_func (gpointer data)
{
  EngineIOServer *self = data;

  server_finish_close (self, FALSE);
  g_object_unref (self);
  return NULL;
}

/* Called with the lock held: whether this caller is the one to finish the
 * close (exactly one does). */
static gboolean
claim_finish_locked (EngineIOServer *self)
{
  if (self->closed || self->finishing)
    return FALSE;
  self->finishing = TRUE;
  return TRUE;
}

static void
server_finish_close_in_background (EngineIOServer *self)
{
  g_autoptr(GError) error = NULL;
  GThread *thread;
  gboolean claimed;

  g_mutex_lock (&self->lock);
  claimed = claim_finish_locked (self);
  g_mutex_unlock (&self->lock);
  if (!claimed)
    return;

  thread = g_thread_try_new ("eio-shutdown", shutdown_thread_func, g_object_ref (self), &error);
  if (thread == NULL)
    {
      /* The sessions still end (their close events are queued); the
       * daemon and the threads stop at the next close from where one may
       * wait, or at dispose. */
      g_warning ("Cannot start the shutdown thread: %s", error->message);
      g_mutex_lock (&self->lock);
      self->finishing = FALSE;
      g_mutex_unlock (&self->lock);
      g_object_unref (self);
      return;
    }
  g_thread_unref (thread);
}

/**
 * engine_io_server_close:
 * @self: a server
 *
 * Shuts the server down gracefully: stops accepting connections, closes
 * every session (reason `server shutting down`; a waiting poll is answered
 * with a close packet), waits for them to end (up to 10 seconds), stops
 * the daemon and ends every thread the server started. Idempotent.
 *
 * Where it may wait, it blocks until all of that is done, and every
 * #EngineIOSocket::close has been emitted when it returns: from any thread
 * that is not a session thread, including (with
 * #EngineIOServer:callback-context) the thread that iterates that context,
 * outside the library's own callbacks; it then iterates the context while
 * it waits. A second call while another thread closes the server waits for
 * that close too.
 *
 * From the library's own callbacks — a signal handler of the server or of
 * a socket, a hook, a send callback, a source attached to a session's
 * context, anything on a session thread, or a nested main loop in
 * #EngineIOServer:callback-context — it cannot wait (the sessions it
 * would wait for run there): it starts the shutdown, returns at once, and
 * a thread of the server finishes it. Use engine_io_server_close_async()
 * to know when it is done.
 *
 * Thread-safe: may be called from any thread, and from any handler.
 */
void
engine_io_server_close (EngineIOServer *self)
{
  gboolean claimed;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  server_begin_close (self);
  if (!may_wait_here (self))
    {
      server_finish_close_in_background (self);
      return;
    }

  g_mutex_lock (&self->lock);
  claimed = claim_finish_locked (self);
  if (!claimed)
    {
      /* Another call is finishing it: wait for that one (bounded by its
       * own deadlines; this one is a backstop). */
      gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

      if (!wait_locked (self, closed_locked, deadline, TRUE))
        g_warning ("Server close: still closing after 30 s");
    }
  g_mutex_unlock (&self->lock);

  if (claimed)
    server_finish_close (self, TRUE);
}

/* engine_io_server_close_async() */

typedef struct
{
  int           done;        /* (atomic) the task has returned */
  GCancellable *cancellable; /* (nullable) ref */
  gulong        handler;     /* on @cancellable, 0 if none */
} CloseTaskData;

static void
close_task_data_free (gpointer data)
{
  CloseTaskData *d = data;

  g_clear_object (&d->cancellable);
  g_free (d);
}

/* Any thread, once per task: the close is done. */
static void
close_task_complete (GTask *task)
{
  CloseTaskData *d = g_task_get_task_data (task);

  if (d->handler != 0)
    g_cancellable_disconnect (d->cancellable, d->handler);
  if (g_atomic_int_compare_and_exchange (&d->done, 0, 1))
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
close_task_cancelled_cb (GCancellable *cancellable,
                         gpointer      data)
{
  GTask *task = data;
  CloseTaskData *d = g_task_get_task_data (task);

  /* The shutdown goes on; only the wait ends. */
  if (g_atomic_int_compare_and_exchange (&d->done, 0, 1))
    g_task_return_error_if_cancelled (task);
}

/* Takes @task. */
static void
server_add_close_task (EngineIOServer *self,
                       GTask          *task)
{
  CloseTaskData *d = g_new0 (CloseTaskData, 1);
  gboolean closed;

  g_task_set_task_data (task, d, close_task_data_free);
  if (g_task_get_cancellable (task) != NULL)
    {
      d->cancellable = g_object_ref (g_task_get_cancellable (task));
      d->handler = g_cancellable_connect (d->cancellable, G_CALLBACK (close_task_cancelled_cb),
                                          g_object_ref (task), g_object_unref);
    }

  g_mutex_lock (&self->lock);
  closed = self->closed;
  if (!closed)
    g_ptr_array_add (self->close_tasks, task);
  g_mutex_unlock (&self->lock);

  if (closed)
    close_task_complete (task);
}

typedef struct
{
  EngineIOServer      *server;      /* ref */
  GCancellable        *cancellable; /* (nullable) ref */
  GAsyncReadyCallback  callback;
  gpointer             user_data;
} CloseAsyncCall;

static void
close_async_call_free (gpointer data)
{
  CloseAsyncCall *call = data;

  g_object_unref (call->server);
  g_clear_object (&call->cancellable);
  g_free (call);
}

/* In the global default main context: makes the task there, so that it
 * returns there. */
static gboolean
close_async_in_default_cb (gpointer data)
{
  CloseAsyncCall *call = data;
  GTask *task = g_task_new (call->server, call->cancellable, call->callback, call->user_data);

  g_task_set_source_tag (task, engine_io_server_close_async);
  g_task_set_name (task, "[engineio] server close");
  server_add_close_task (call->server, task);
  return G_SOURCE_REMOVE;
}

/**
 * engine_io_server_close_async:
 * @self: a server
 * @cancellable: (nullable): a #GCancellable: cancelling it stops the wait
 *   (the callback gets %G_IO_ERROR_CANCELLED), not the shutdown
 * @callback: (scope async) (closure user_data): called once the server is
 *   closed
 * @user_data: data for @callback
 *
 * Starts the shutdown engine_io_server_close() describes (if it has not
 * started) and returns at once; @callback runs when it is complete: every
 * session has ended (each #EngineIOSocket::close emitted), or 10 seconds
 * passed, and the daemon and the server's threads are stopped. Get the
 * result with engine_io_server_close_finish(). Calling it after the server
 * closed completes at once.
 *
 * @callback runs in the thread-default main context of the caller, as GIO
 * callbacks do; except when called from a session thread (a signal
 * handler with the default #EngineIOServer:loop-threads, for instance),
 * whose context ends with the shutdown: then @callback runs in the global
 * default main context (g_main_context_default()), which the application
 * must iterate.
 *
 * Thread-safe: may be called from any thread, and from any handler.
 */
void
engine_io_server_close_async (EngineIOServer      *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (ENGINE_IO_IS_SERVER (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  if (engine_io_in_loop_thread ())
    {
      CloseAsyncCall *call = g_new0 (CloseAsyncCall, 1);

      call->server = g_object_ref (self);
      call->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;
      call->callback = callback;
      call->user_data = user_data;
      g_main_context_invoke_full (g_main_context_default (), G_PRIORITY_DEFAULT,
                                  close_async_in_default_cb, call, close_async_call_free);
    }
  else
    {
      GTask *task = g_task_new (self, cancellable, callback, user_data);

      g_task_set_source_tag (task, engine_io_server_close_async);
      g_task_set_name (task, "[engineio] server close");
      server_add_close_task (self, task);
    }

  server_begin_close (self);
  server_finish_close_in_background (self);
}

/**
 * engine_io_server_close_finish:
 * @self: a server
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes engine_io_server_close_async().
 *
 * Call from the context the callback runs in.
 *
 * Returns: %TRUE once the server is closed; %FALSE with
 *   %G_IO_ERROR_CANCELLED if the wait was cancelled
 */
gboolean
engine_io_server_close_finish (EngineIOServer  *self,
                               GAsyncResult    *result,
                               GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == engine_io_server_close_async, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * engine_io_server_get_sockets:
 * @self: a server
 *
 * The open sessions, at the time of the call.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer container) (element-type EngineIOSocket): a new array
 *   holding a new reference to each socket; the array's free function drops
 *   them, so g_ptr_array_unref() frees everything. (Annotated `container`,
 *   not `full`: bindings would otherwise unref every element a second time.)
 */
GPtrArray *
engine_io_server_get_sockets (EngineIOServer *self)
{
  GPtrArray *sockets;
  GHashTableIter iter;
  gpointer value;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);

  g_mutex_lock (&self->lock);
  sockets = g_ptr_array_new_full (g_hash_table_size (self->sockets), g_object_unref);
  g_hash_table_iter_init (&iter, self->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  g_mutex_unlock (&self->lock);

  return sockets;
}

/**
 * engine_io_server_get_socket_count:
 * @self: a server
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of open sessions
 */
guint
engine_io_server_get_socket_count (EngineIOServer *self)
{
  guint n;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);

  g_mutex_lock (&self->lock);
  n = g_hash_table_size (self->sockets);
  g_mutex_unlock (&self->lock);

  return n;
}

/**
 * engine_io_server_lookup_socket:
 * @self: a server
 * @sid: a session id
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the open session with id @sid, or
 *   %NULL
 */
EngineIOSocket *
engine_io_server_lookup_socket (EngineIOServer *self,
                                const char     *sid)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);
  g_return_val_if_fail (sid != NULL, NULL);

  return lookup_socket (self, sid);
}

/**
 * engine_io_server_get_metrics:
 * @self: a server
 *
 * A snapshot of the server's counters; see #EngineIOMetrics. Counting is
 * always on and costs a few atomic additions per packet.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): the counters now
 */
EngineIOMetrics *
engine_io_server_get_metrics (EngineIOServer *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);

  return engine_io_metrics_new (&self->counters);
}

EngineIOCounters *
engine_io_server_get_counters (EngineIOServer *self)
{
  return &self->counters;
}

/**
 * engine_io_server_set_admission_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   decides whether a handshake may open a session, or %NULL to accept all
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or at finalization
 *
 * Installs the admission hook. It runs for every handshake, before the
 * session exists, in the main context that will run the session (a
 * session thread, or #EngineIOServer:callback-context), possibly for
 * several handshakes at once on different threads. Refused clients get
 * HTTP 403 with `{"code":4,"message":"Forbidden"}`.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_admission_func (EngineIOServer        *self,
                                     EngineIOAdmissionFunc  func,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  g_mutex_lock (&self->lock);
  old_data = self->admission_data;
  old_destroy = self->admission_destroy;
  self->admission_func = func;
  self->admission_data = user_data;
  self->admission_destroy = destroy;
  g_mutex_unlock (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_server_set_id_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   generates session ids, or %NULL for the default (144 random bits from
 *   getrandom(), base64url)
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or at finalization
 *
 * Installs a session id generator; see #EngineIOIdFunc for the rules.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_id_func (EngineIOServer *self,
                              EngineIOIdFunc  func,
                              gpointer        user_data,
                              GDestroyNotify  destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  g_mutex_lock (&self->lock);
  old_data = self->id_data;
  old_destroy = self->id_destroy;
  self->id_func = func;
  self->id_data = user_data;
  self->id_destroy = destroy;
  g_mutex_unlock (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/* GObject */

static gboolean
server_is_started (EngineIOServer *self)
{
  return g_atomic_pointer_get (&self->config) != NULL;
}

static void
engine_io_server_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  if (server_is_started (self))
    {
      g_warning ("EngineIOServer: property “%s” cannot change once the server has started",
                 pspec->name);
      return;
    }

  switch (prop_id)
    {
    case PROP_PING_INTERVAL: self->ping_interval = g_value_get_uint (value); break;
    case PROP_PING_TIMEOUT: self->ping_timeout = g_value_get_uint (value); break;
    case PROP_UPGRADE_TIMEOUT: self->upgrade_timeout = g_value_get_uint (value); break;
    case PROP_MAX_PAYLOAD: self->max_payload = g_value_get_uint64 (value); break;
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      if (self->path == NULL)
        self->path = g_strdup ("/engine.io/");
      break;
    case PROP_TRANSPORTS: self->transports = g_value_get_flags (value); break;
    case PROP_ALLOW_UPGRADES: self->allow_upgrades = g_value_get_boolean (value); break;
    case PROP_ALLOW_EIO3: self->allow_eio3 = g_value_get_boolean (value); break;
    case PROP_CORS_ORIGIN:
      g_free (self->cors_origin);
      self->cors_origin = g_value_dup_string (value);
      break;
    case PROP_CORS_CREDENTIALS: self->cors_credentials = g_value_get_boolean (value); break;
    case PROP_COOKIE:
      g_free (self->cookie);
      self->cookie = g_value_dup_string (value);
      break;
    case PROP_COOKIE_PATH:
      g_free (self->cookie_path);
      self->cookie_path = g_value_dup_string (value);
      break;
    case PROP_COOKIE_HTTP_ONLY: self->cookie_http_only = g_value_get_boolean (value); break;
    case PROP_COOKIE_SAME_SITE:
      g_free (self->cookie_same_site);
      self->cookie_same_site = g_value_dup_string (value);
      break;
    case PROP_MAX_SESSIONS: self->max_sessions = g_value_get_uint (value); break;
    case PROP_LOOP_THREADS: self->loop_threads = g_value_get_uint (value); break;
    case PROP_SEND_QUEUE_HIGH_WATER: self->send_queue_high_water = g_value_get_uint64 (value); break;
    case PROP_RECEIVE_QUEUE_HIGH_WATER: self->receive_queue_high_water = g_value_get_uint64 (value); break;
    case PROP_BACKPRESSURE_POLICY: self->backpressure = g_value_get_enum (value); break;
    case PROP_CALLBACK_CONTEXT:
      g_clear_pointer (&self->callback_context, g_main_context_unref);
      self->callback_context = g_value_dup_boxed (value);
      break;
    case PROP_METRICS_PATH:
      g_free (self->metrics_path);
      self->metrics_path = g_value_dup_string (value);
      break;
    case PROP_CONNECTION_TIMEOUT: self->connection_timeout = g_value_get_uint (value); break;
    case PROP_HANDSHAKE_RATE: self->handshake_rate = g_value_get_double (value); break;
    case PROP_HANDSHAKE_BURST: self->handshake_burst = g_value_get_uint (value); break;
    case PROP_MESSAGE_RATE: self->message_rate = g_value_get_double (value); break;
    case PROP_MESSAGE_BURST: self->message_burst = g_value_get_uint (value); break;
    case PROP_MESSAGE_RATE_POLICY: self->message_policy = g_value_get_enum (value); break;
    case PROP_ALLOWED_ORIGINS:
      g_strfreev (self->allowed_origins);
      self->allowed_origins = g_value_dup_boxed (value);
      break;
    case PROP_RAISE_FD_LIMIT: self->raise_fd_limit = g_value_get_boolean (value); break;
    case PROP_FD_RESERVE: self->fd_reserve = g_value_get_uint (value); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      return;
    }
  g_object_notify_by_pspec (object, pspec);
}

static void
engine_io_server_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  switch (prop_id)
    {
    case PROP_PING_INTERVAL: g_value_set_uint (value, self->ping_interval); break;
    case PROP_PING_TIMEOUT: g_value_set_uint (value, self->ping_timeout); break;
    case PROP_UPGRADE_TIMEOUT: g_value_set_uint (value, self->upgrade_timeout); break;
    case PROP_MAX_PAYLOAD: g_value_set_uint64 (value, self->max_payload); break;
    case PROP_PATH: g_value_set_string (value, self->path); break;
    case PROP_TRANSPORTS: g_value_set_flags (value, self->transports); break;
    case PROP_ALLOW_UPGRADES: g_value_set_boolean (value, self->allow_upgrades); break;
    case PROP_ALLOW_EIO3: g_value_set_boolean (value, self->allow_eio3); break;
    case PROP_CORS_ORIGIN: g_value_set_string (value, self->cors_origin); break;
    case PROP_CORS_CREDENTIALS: g_value_set_boolean (value, self->cors_credentials); break;
    case PROP_COOKIE: g_value_set_string (value, self->cookie); break;
    case PROP_COOKIE_PATH: g_value_set_string (value, self->cookie_path); break;
    case PROP_COOKIE_HTTP_ONLY: g_value_set_boolean (value, self->cookie_http_only); break;
    case PROP_COOKIE_SAME_SITE: g_value_set_string (value, self->cookie_same_site); break;
    case PROP_MAX_SESSIONS: g_value_set_uint (value, self->max_sessions); break;
    case PROP_LOOP_THREADS: g_value_set_uint (value, self->loop_threads); break;
    case PROP_SEND_QUEUE_HIGH_WATER: g_value_set_uint64 (value, self->send_queue_high_water); break;
    case PROP_RECEIVE_QUEUE_HIGH_WATER: g_value_set_uint64 (value, self->receive_queue_high_water); break;
    case PROP_BACKPRESSURE_POLICY: g_value_set_enum (value, self->backpressure); break;
    case PROP_CALLBACK_CONTEXT: g_value_set_boxed (value, self->callback_context); break;
    case PROP_METRICS_PATH: g_value_set_string (value, self->metrics_path); break;
    case PROP_CONNECTION_TIMEOUT: g_value_set_uint (value, self->connection_timeout); break;
    case PROP_HANDSHAKE_RATE: g_value_set_double (value, self->handshake_rate); break;
    case PROP_HANDSHAKE_BURST: g_value_set_uint (value, self->handshake_burst); break;
    case PROP_MESSAGE_RATE: g_value_set_double (value, self->message_rate); break;
    case PROP_MESSAGE_BURST: g_value_set_uint (value, self->message_burst); break;
    case PROP_MESSAGE_RATE_POLICY: g_value_set_enum (value, self->message_policy); break;
    case PROP_ALLOWED_ORIGINS: g_value_set_boxed (value, self->allowed_origins); break;
    case PROP_RAISE_FD_LIMIT: g_value_set_boolean (value, self->raise_fd_limit); break;
    case PROP_FD_RESERVE: g_value_set_uint (value, self->fd_reserve); break;
    case PROP_PORT: g_value_set_uint (value, engine_io_server_get_port (self)); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_server_dispose (GObject *object)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  /* Sessions hold the server: if we get here none is open. But an
   * application may have let go of its server while sessions were open:
   * the last of them drops it, on its session thread or on a thread of
   * the daemon, where the close cannot wait. The close then goes on in
   * the shutdown thread, which holds the server (we are called again,
   * and finalize, once it is done); the daemon must not outlive the
   * server. */
  if (self->config != NULL && !self->closed)
    {
      gboolean stranded;

      engine_io_server_close (self);
      /* Not closed, and no shutdown thread holds the server: it could not
       * be started (the process is out of threads) on a thread that may
       * not wait for the daemon. Freeing the server under its running
       * daemon would be a use after free: it is kept instead (leaked,
       * still serving), and whoever holds it may close it later. */
      g_mutex_lock (&self->lock);
      stranded = !self->closed && !self->finishing;
      g_mutex_unlock (&self->lock);
      if (stranded)
        {
          g_warning ("A dropped server could not be shut down here (no shutdown thread): "
                     "it is kept running, not freed");
          g_object_ref (self);
          return;
        }
    }

  G_OBJECT_CLASS (engine_io_server_parent_class)->dispose (object);
}

static void
engine_io_server_finalize (GObject *object)
{
  EngineIOServer *self = ENGINE_IO_SERVER (object);

  engine_io_server_set_admission_func (self, NULL, NULL, NULL);
  engine_io_server_set_id_func (self, NULL, NULL, NULL);
  g_clear_pointer (&self->pool, engine_io_loop_pool_free);
  g_clear_pointer (&self->config, engine_io_config_unref);
  g_hash_table_unref (self->sockets);
  g_ptr_array_unref (self->close_tasks);  /* empty: each task holds the server */
  g_clear_pointer (&self->callback_context, g_main_context_unref);
  g_free (self->path);
  g_free (self->cors_origin);
  g_free (self->cookie);
  g_free (self->cookie_path);
  g_free (self->cookie_same_site);
  g_free (self->metrics_path);
  g_strfreev (self->allowed_origins);
  /* The queue's links live inside the entries, which the table frees
   * (g_queue_clear() would free the links themselves). */
  g_queue_init (&self->rate_lru);
  g_hash_table_unref (self->rate_table);
  g_mutex_clear (&self->rate_lock);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);

  G_OBJECT_CLASS (engine_io_server_parent_class)->finalize (object);
}

static void
engine_io_server_class_init (EngineIOServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->set_property = engine_io_server_set_property;
  object_class->get_property = engine_io_server_get_property;
  object_class->dispose = engine_io_server_dispose;
  object_class->finalize = engine_io_server_finalize;

  /**
   * EngineIOServer:ping-interval:
   *
   * Milliseconds between heartbeats (reference `pingInterval`). v4: the
   * server pings this long after the last pong; v3: the client pings this
   * often.
   */
  properties[PROP_PING_INTERVAL] =
    g_param_spec_uint ("ping-interval", NULL, NULL, 1, G_MAXINT / 2, 25000, rw);

  /**
   * EngineIOServer:ping-timeout:
   *
   * Milliseconds to wait for the heartbeat's answer before closing the
   * session with `ping timeout` (reference `pingTimeout`).
   */
  properties[PROP_PING_TIMEOUT] =
    g_param_spec_uint ("ping-timeout", NULL, NULL, 1, G_MAXINT / 2, 20000, rw);

  /**
   * EngineIOServer:upgrade-timeout:
   *
   * Milliseconds a WebSocket upgrade may take from the probe to the
   * upgrade packet before the probe is closed (reference `upgradeTimeout`).
   */
  properties[PROP_UPGRADE_TIMEOUT] =
    g_param_spec_uint ("upgrade-timeout", NULL, NULL, 1, G_MAXINT / 2, 10000, rw);

  /**
   * EngineIOServer:max-payload:
   *
   * The largest POST body (bytes, whole payload) or WebSocket message
   * accepted (reference `maxHttpBufferSize`). Exactly this many bytes are
   * accepted; more gets HTTP 413 or WebSocket close code 1009.
   */
  properties[PROP_MAX_PAYLOAD] =
    g_param_spec_uint64 ("max-payload", NULL, NULL, 1, G_MAXUINT32, 1000000, rw);

  /**
   * EngineIOServer:path:
   *
   * The request path the engine answers (`/engine.io/`; with or without
   * the trailing slash on the wire).
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, "/engine.io/", rw);

  /**
   * EngineIOServer:transports:
   *
   * The transports clients may use.
   */
  properties[PROP_TRANSPORTS] =
    g_param_spec_flags ("transports", NULL, NULL, ENGINE_IO_TYPE_TRANSPORTS,
                        ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET, rw);

  /**
   * EngineIOServer:allow-upgrades:
   *
   * Whether polling sessions may upgrade to WebSocket.
   */
  properties[PROP_ALLOW_UPGRADES] =
    g_param_spec_boolean ("allow-upgrades", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:allow-eio3:
   *
   * Whether protocol v3 clients (`EIO=3`, engine.io-client 3.x) are
   * accepted. Off by default, as in the reference; refused clients get
   * code 5 `Unsupported protocol version`.
   */
  properties[PROP_ALLOW_EIO3] =
    g_param_spec_boolean ("allow-eio3", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:cors-origin:
   *
   * Origins allowed to make cross-origin requests: %NULL (default) sends
   * no CORS headers, `*` allows any origin, otherwise a comma-separated
   * list of exact origins (`https://a.example, https://b.example`). Applied
   * to every response, errors and OPTIONS preflights included.
   */
  properties[PROP_CORS_ORIGIN] =
    g_param_spec_string ("cors-origin", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:cors-credentials:
   *
   * Whether to send `Access-Control-Allow-Credentials: true` to allowed
   * origins. Cannot be combined with a `*` origin: listen() fails.
   */
  properties[PROP_CORS_CREDENTIALS] =
    g_param_spec_boolean ("cors-credentials", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:cookie:
   *
   * The name of a cookie holding the session id, set on the handshake
   * response (what sticky load balancers key on); %NULL (default) sets
   * none. The reference's usual name is `io`.
   */
  properties[PROP_COOKIE] =
    g_param_spec_string ("cookie", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:cookie-path:
   *
   * The cookie's `Path`, or %NULL for none.
   */
  properties[PROP_COOKIE_PATH] =
    g_param_spec_string ("cookie-path", NULL, NULL, "/", rw);

  /**
   * EngineIOServer:cookie-http-only:
   *
   * Whether the cookie is `HttpOnly`.
   */
  properties[PROP_COOKIE_HTTP_ONLY] =
    g_param_spec_boolean ("cookie-http-only", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:cookie-same-site:
   *
   * The cookie's `SameSite` (`Lax`, `Strict`, `None`), or %NULL for none.
   */
  properties[PROP_COOKIE_SAME_SITE] =
    g_param_spec_string ("cookie-same-site", NULL, NULL, "Lax", rw);

  /**
   * EngineIOServer:max-sessions:
   *
   * The most sessions open at once; 0 (default) for no limit other than
   * the descriptor budget (see #EngineIOServer:fd-reserve). Handshakes
   * over it get HTTP 503 with `{"code":4,"message":"Too many sessions"}`.
   */
  properties[PROP_MAX_SESSIONS] =
    g_param_spec_uint ("max-sessions", NULL, NULL, 0, G_MAXUINT, 0, rw);

  /**
   * EngineIOServer:loop-threads:
   *
   * Which threads run the sessions' main contexts: 0 (default) starts one
   * thread per session; N > 0 spreads sessions over N shared threads (the
   * way to hold very many sessions: a thread per session is bounded by the
   * system's thread limit). Ignored with #EngineIOServer:callback-context.
   */
  properties[PROP_LOOP_THREADS] =
    g_param_spec_uint ("loop-threads", NULL, NULL, 0, 1024, 0, rw);

  /**
   * EngineIOServer:send-queue-high-water:
   *
   * The memory, in bytes, a session may hold in packets waiting to be sent
   * (0 for no limit). Counted in real bytes: each queued packet counts its
   * data as allocated plus a fixed overhead for the packet, its #GBytes and
   * the queue's bookkeeping (about 150 bytes on 64-bit glibc; an empty
   * message costs that much, not 1 byte), and every packet type counts
   * (messages, v3 pongs, pings, noops). Packets that client input is still
   * to produce count as well: a session stops reading its client (a
   * WebSocket is not read, a POST is held unanswered) while what it holds
   * for sending and what it has read but not handled reaches this mark, and
   * reads again once that is under half of it. A send (or a v3 pong) that
   * would go over the mark is dealt with by
   * #EngineIOServer:backpressure-policy.
   */
  properties[PROP_SEND_QUEUE_HIGH_WATER] =
    g_param_spec_uint64 ("send-queue-high-water", NULL, NULL, 0, G_MAXUINT64, 8 * 1024 * 1024, rw);

  /**
   * EngineIOServer:receive-queue-high-water:
   *
   * The memory, in bytes, a session may hold in messages waiting for
   * engine_io_socket_receive() (messages no #EngineIOSocket::message handler
   * took); 0 for no limit. Counted in real bytes like
   * #EngineIOServer:send-queue-high-water (a queued message costs its data
   * as allocated plus about 100 bytes). When the queue and the messages read
   * but not yet handled reach the mark the session stops reading its client
   * (back-pressure: a WebSocket is not read, a POST is held unanswered) until
   * engine_io_socket_receive() has taken it under half of the mark. Should
   * the queue still grow to twice the mark, the session is closed
   * (%ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR, "receive queue over its
   * limit").
   */
  properties[PROP_RECEIVE_QUEUE_HIGH_WATER] =
    g_param_spec_uint64 ("receive-queue-high-water", NULL, NULL, 0, G_MAXUINT64, 8 * 1024 * 1024, rw);

  /**
   * EngineIOServer:backpressure-policy:
   *
   * What a send does past #EngineIOServer:send-queue-high-water; the
   * default closes the session, so a client that stops reading cannot make
   * the server buffer without bound.
   */
  properties[PROP_BACKPRESSURE_POLICY] =
    g_param_spec_enum ("backpressure-policy", NULL, NULL, ENGINE_IO_TYPE_BACKPRESSURE_POLICY,
                       ENGINE_IO_BACKPRESSURE_CLOSE, rw);

  /**
   * EngineIOServer:callback-context:
   *
   * A #GMainContext that runs every session instead of session threads:
   * all signals, hooks and send callbacks are delivered there, in order
   * per session, and the application must iterate it (for example with a
   * #GMainLoop on the default context). This is the mode for Python and
   * GTK applications that want their handlers on their main thread.
   * %NULL (default): sessions run on threads of their own.
   *
   * Handlers may call any thread-safe function, engine_io_server_close()
   * included (from a handler it starts the shutdown and returns; see
   * there). engine_io_socket_receive() must not be called from this
   * context.
   */
  properties[PROP_CALLBACK_CONTEXT] =
    g_param_spec_boxed ("callback-context", NULL, NULL, G_TYPE_MAIN_CONTEXT, rw);

  /**
   * EngineIOServer:metrics-path:
   *
   * A path (e.g. `/metrics`) where GET returns the server's counters in the
   * Prometheus text format (engine_io_metrics_to_prometheus()); %NULL
   * (default) serves none. Not protected: bind the server to an address
   * only your scraper reaches, or mount it and route the path yourself.
   * It must differ from #EngineIOServer:path (with or without its trailing
   * slash): engine_io_server_listen() fails with
   * %ENGINE_IO_ERROR_INVALID_ARGUMENT otherwise.
   */
  properties[PROP_METRICS_PATH] =
    g_param_spec_string ("metrics-path", NULL, NULL, NULL, rw);

  /**
   * EngineIOServer:connection-timeout:
   *
   * The defence against clients that open connections and send their
   * requests slowly or never (slowloris). Default 30. It bounds:
   *
   * - idleness: a connection that receives and sends nothing for this
   *   long is closed (this also closes idle keep-alive connections);
   * - a request head, which must be complete this long after the
   *   connection opened (or after the previous response on it);
   * - a POST body, which must be complete this long after its head;
   * - the write of a closed session's last poll response: the session
   *   ends this long after its close's linger at most (a client that
   *   reads a little, often enough, is not idle), what was not written
   *   reported not delivered.
   *
   * A client that sends a byte now and then is closed all the same.
   *
   * A long poll waiting for packets is not idle: libmicrohttpd does not
   * time out suspended connections (the heartbeat answers every poll
   * within #EngineIOServer:ping-interval anyway), nor upgraded ones
   * (WebSockets are watched by the heartbeat). 0 is not allowed: without
   * a timeout a client holds a connection (and a descriptor) for ever.
   *
   * Applies to the daemon engine_io_server_listen() starts; a mounted
   * server (engine_io_server_mhd_handler()) uses its daemon's
   * `MHD_OPTION_CONNECTION_TIMEOUT`.
   */
  properties[PROP_CONNECTION_TIMEOUT] =
    g_param_spec_uint ("connection-timeout", NULL, NULL, 1, 86400, 30, rw);

  /**
   * EngineIOServer:handshake-rate:
   *
   * Handshakes per second a client address may make (a token bucket of
   * #EngineIOServer:handshake-burst tokens refilled at this rate); 0
   * (default) for no limit. Fractions are allowed (0.1: one every ten
   * seconds). The address is the TCP peer's: IPv4 addresses each, IPv6
   * addresses by /64 network; behind a reverse proxy every client shares
   * the proxy's address (forwarding headers are not trusted).
   *
   * Each handshake (a polling GET or a direct WebSocket without sid)
   * takes a token, whatever becomes of it after. Without one it gets HTTP
   * 429 with `Retry-After` and `{"code":4,"message":"Too many handshakes
   * from this address"}`, and no session is created. Requests with a sid
   * are not counted. The server remembers at most 16384 addresses at a
   * time: a bucket that has refilled is forgotten, and past that number
   * the least recently seen go first.
   *
   * Threads: checked on libmicrohttpd's threads, under a lock of its own,
   * before any application hook runs.
   */
  properties[PROP_HANDSHAKE_RATE] =
    g_param_spec_double ("handshake-rate", NULL, NULL, 0, 1e6, 0, rw);

  /**
   * EngineIOServer:handshake-burst:
   *
   * How many handshakes an address may make at once before
   * #EngineIOServer:handshake-rate paces it (the bucket's size); 0
   * (default) for one second's worth (the rate rounded up, at least 1).
   */
  properties[PROP_HANDSHAKE_BURST] =
    g_param_spec_uint ("handshake-burst", NULL, NULL, 0, 1000000, 0, rw);

  /**
   * EngineIOServer:message-rate:
   *
   * Messages per second each session may receive from its client (a
   * token bucket of #EngineIOServer:message-burst tokens refilled at this
   * rate); 0 (default) for no limit. Counts message packets (`4`) and
   * pings (`2`: a v3 client's ping costs a pong, so a ping flood counts as
   * a message flood) over both transports and protocol versions, when
   * they arrive (a polling POST's packets as they are read from its body);
   * pongs, noops and the other control packets are not counted. Past the
   * rate, #EngineIOServer:message-rate-policy decides: close the session
   * or drop the packet.
   *
   * Threads: polling POSTs are counted on libmicrohttpd's threads, and
   * WebSocket messages in the session's main context, both under the
   * session's lock; the application's handlers never see a refused
   * message.
   */
  properties[PROP_MESSAGE_RATE] =
    g_param_spec_double ("message-rate", NULL, NULL, 0, 1e9, 0, rw);

  /**
   * EngineIOServer:message-burst:
   *
   * How many messages a client may send at once before
   * #EngineIOServer:message-rate paces it (the bucket's size); 0
   * (default) for one second's worth (the rate rounded up, at least 1).
   */
  properties[PROP_MESSAGE_BURST] =
    g_param_spec_uint ("message-burst", NULL, NULL, 0, G_MAXUINT, 0, rw);

  /**
   * EngineIOServer:message-rate-policy:
   *
   * What happens to a message past #EngineIOServer:message-rate: the
   * default closes the session (reason `rate limit exceeded`, WebSocket
   * close code 1008; messages of the client not yet delivered are not
   * delivered); %ENGINE_IO_RATE_LIMIT_DROP drops the message (no
   * ::message, no ::packet) and counts it in
   * engine_io_metrics_get_messages_dropped().
   */
  properties[PROP_MESSAGE_RATE_POLICY] =
    g_param_spec_enum ("message-rate-policy", NULL, NULL, ENGINE_IO_TYPE_RATE_LIMIT_POLICY,
                       ENGINE_IO_RATE_LIMIT_CLOSE, rw);

  /**
   * EngineIOServer:allowed-origins:
   *
   * The origins browsers may connect from, as they send them in the
   * `Origin` header (`https://app.example`, `http://localhost:8080`;
   * compared exactly: lowercase, no path, no trailing slash, no default
   * port); %NULL (default) allows every origin. An empty list allows
   * only requests without an `Origin`.
   *
   * Every request to #EngineIOServer:path but a CORS preflight is checked:
   * handshakes (polling and direct WebSocket), polls, POSTs and WebSocket
   * upgrades of existing sessions. A request whose `Origin` is not in the
   * list gets HTTP 403 with `{"code":4,"message":"Origin not allowed"}`,
   * and no session is created. A request without `Origin` is allowed:
   * non-browser clients send none, and browsers send one on every
   * WebSocket and cross-origin request, which is what the list guards
   * against. Preflights (`OPTIONS`) are answered as #EngineIOServer:cors-origin
   * says; the request that follows is refused. This is not
   * #EngineIOServer:cors-origin, which only decides the CORS headers
   * (WebSockets are not subject to CORS at all).
   *
   * listen() fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT for an entry
   * that no browser would send (uppercase letters, a path, a default
   * port).
   *
   * Bindings that turn a %NULL string array into an empty list (Python)
   * read both "unset" and "empty" as an empty list; set %NULL (`None`)
   * to allow every origin.
   */
  properties[PROP_ALLOWED_ORIGINS] =
    g_param_spec_boxed ("allowed-origins", NULL, NULL, G_TYPE_STRV, rw);

  /**
   * EngineIOServer:raise-fd-limit:
   *
   * Whether engine_io_server_listen() raises the process's soft
   * `RLIMIT_NOFILE` (descriptors) to its hard limit, as servers commonly
   * do: the soft limit is often 1024, a few hundred sessions. Default
   * %TRUE. Set %FALSE if the process relies on the lower limit (select()
   * handles only descriptors below `FD_SETSIZE`, 1024) or sets it itself.
   * A mounted server (engine_io_server_mhd_handler()) never changes the
   * limit.
   */
  properties[PROP_RAISE_FD_LIMIT] =
    g_param_spec_boolean ("raise-fd-limit", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:fd-reserve:
   *
   * Descriptors the server leaves to the application; 0 (default) for
   * the automatic reserve: 1/16 of the limit, at least 64 and at most
   * 4096.
   *
   * When the server starts, it takes as its descriptor budget the soft
   * `RLIMIT_NOFILE` (raised first, see #EngineIOServer:raise-fd-limit)
   * less the descriptors open then, less this reserve. Every descriptor
   * the server makes counts against the budget: each session's main
   * context with a thread per session (an eventfd), the loop threads'
   * contexts, WebSockets, the connections of the daemon
   * engine_io_server_listen() started and that daemon's own descriptors
   * (engine_io_metrics_get_descriptors()).
   *
   * Sessions may reserve all of the budget but an eighth (at least 16),
   * which is kept for connections that answer refusals, for a session's
   * second connection (a POST while a poll waits) and for upgrades: each
   * session reserves its connection or WebSocket, and its main context
   * with a thread per session (2 descriptors then, 1 otherwise). Past
   * that, or when the descriptors held leave less than half of that
   * eighth, handshakes get HTTP 503 with `{"code":4,"message":"Too many
   * sessions (descriptor limit)"}` and `Connection: close`
   * (engine_io_metrics_get_handshakes_refused()); existing sessions keep
   * working. When the server holds its whole budget, new connections are
   * closed as soon as they are accepted
   * (engine_io_metrics_get_connections_refused()), so libmicrohttpd never
   * runs out of descriptors. With a limit of 1024: about 400 sessions with
   * a thread per session, 800 otherwise.
   *
   * A mounted server counts only its own descriptors (contexts, not its
   * daemon's connections): give that daemon a
   * `MHD_OPTION_CONNECTION_LIMIT` that leaves room for them.
   */
  properties[PROP_FD_RESERVE] =
    g_param_spec_uint ("fd-reserve", NULL, NULL, 0, G_MAXINT, 0, rw);

  /**
   * EngineIOServer:port:
   *
   * The port engine_io_server_listen() bound, 0 when not listening.
   */
  properties[PROP_PORT] =
    g_param_spec_uint ("port", NULL, NULL, 0, 65535, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * EngineIOServer::connection:
   * @server: the server
   * @socket: the new session
   *
   * Emitted when a handshake has been accepted, in the new socket's main
   * context (its session thread, or #EngineIOServer:callback-context),
   * before any other signal of the socket. Sessions on different threads
   * emit it concurrently. Messages sent from the handler travel with the
   * handshake response.
   */
  signals[SIGNAL_CONNECTION] =
    g_signal_new ("connection", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_SOCKET);
}

static void
engine_io_server_init (EngineIOServer *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->close_tasks = g_ptr_array_new ();
  self->ping_interval = 25000;
  self->ping_timeout = 20000;
  self->upgrade_timeout = 10000;
  self->max_payload = 1000000;
  self->path = g_strdup ("/engine.io/");
  self->transports = ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET;
  self->allow_upgrades = TRUE;
  self->cookie_path = g_strdup ("/");
  self->cookie_http_only = TRUE;
  self->cookie_same_site = g_strdup ("Lax");
  self->send_queue_high_water = 8 * 1024 * 1024;
  self->receive_queue_high_water = 8 * 1024 * 1024;
  self->backpressure = ENGINE_IO_BACKPRESSURE_CLOSE;
  self->connection_timeout = 30;
  self->message_policy = ENGINE_IO_RATE_LIMIT_CLOSE;
  self->raise_fd_limit = TRUE;
  g_mutex_init (&self->rate_lock);
  self->rate_table = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, rate_entry_free);
  g_queue_init (&self->rate_lru);
}
