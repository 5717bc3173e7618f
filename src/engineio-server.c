/* engineio-server.c: the Engine.IO server and its protocol core
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include <json-glib/json-glib.h>

#include "engineio-server-private.h"
#include "engineio-http-compress-private.h"
#include "engineio-ws-deflate-private.h"
#include "engineio-socket-private.h"
#include "engineio-handshake-private.h"
#include "engineio-packet-private.h"
#include "engineio-http-private.h"
#include "engineio-websocket-private.h"
#include "engineio-limits-private.h"
#include "engineio-rate-table-private.h"
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
 * for a poll nor run application code (but for an #EngineIOHeadersFunc,
 * which runs on the thread that answers); every other signal and hook runs
 * in the main context of the session it concerns (see
 * #EngineIOServer:loop-threads and #EngineIOServer:callback-context), and
 * #EngineIOServer::connection-error, which concerns no session, in
 * #EngineIOServer:callback-context or the global default main context. Every function of the server and
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
  gboolean                    http_compression;
  guint                       http_compression_threshold;
  gboolean                    per_message_deflate;
  guint                       per_message_deflate_threshold;
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
  GStrv                       trusted_proxies;
  GTlsCertificate            *tls_certificate;    /* owned, nullable */
  gboolean                    raise_fd_limit;
  guint                       fd_reserve;
  EngineIOCounters            counters;           /* (atomic) each word */

  GMutex                      rate_lock;          /* guards the one below */
  EngineIORateTable           rate_table;         /* (rate_lock) handshake buckets by rate_key() */

  GMutex                      lock;
  GMutex                      broadcast_lock;     /* held by a broadcast from its snapshot of
                                                   * the sockets to its last enqueue, so that
                                                   * concurrent broadcasts reach every socket
                                                   * in one order; taken before @lock and the
                                                   * sockets' locks, never after */
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

  /* Hooks */
  EngineIOAdmissionAsyncFunc  admission_async_func;  /* (lock) */
  gpointer                    admission_async_data;
  GDestroyNotify              admission_async_destroy;
  guint                       max_pending_admissions;
  guint                       admission_timeout;     /* ms */
  guint                       ping_interval_grace;   /* ms */
  guint                       pending_admissions;    /* (lock) handshakes counted against max-pending-admissions */
  GHashTable                 *admissions;            /* (lock) EngineIOAdmission (ref) awaiting an answer */
  GMutex                      errors_lock;           /* guards the two below */
  GQueue                      error_reports;         /* (errors_lock) ErrorReport, for ::connection-error */
  gboolean                    error_source_pending;  /* (errors_lock) a delivery source is attached */
  EngineIOHeadersFunc         headers_func;          /* (lock) written; (atomic) for the quick check */
  gpointer                    headers_data;
  GDestroyNotify              headers_destroy;
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
  PROP_HTTP_COMPRESSION,
  PROP_HTTP_COMPRESSION_THRESHOLD,
  PROP_PER_MESSAGE_DEFLATE,
  PROP_PER_MESSAGE_DEFLATE_THRESHOLD,
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
  PROP_TRUSTED_PROXIES,
  PROP_TLS_CERTIFICATE,
  PROP_MAX_PENDING_ADMISSIONS,
  PROP_ADMISSION_TIMEOUT,
  PROP_PING_INTERVAL_GRACE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_CONNECTION,
  SIGNAL_CONNECTION_ERROR,
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
  g_clear_pointer (&config->trusted_proxies, g_ptr_array_unref);
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
  /* Over TLS, libmicrohttpd relays a WebSocket through a socketpair. */
  if (self->tls_certificate != NULL)
    config->session_cost += 2;
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

static GInetAddress *inet_address_unmap (GInetAddress *inet);

/* A trusted-proxies entry (`address` or `address/length`) as a mask, or
 * NULL. (GInetAddressMask warns about a length out of range, rather than
 * failing: checked here first.) An IPv4-mapped IPv6 entry (with a length
 * of 96 or more), as get_remote_address() gives peers on a dual-stack
 * listener, is its IPv4 address or network: peers are matched unmapped. */
static GInetAddressMask *
trusted_proxy_mask_new (const char *entry)
{
  const char *slash = strchr (entry, '/');
  g_autofree char *address = slash != NULL ? g_strndup (entry, slash - entry) : g_strdup (entry);
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (address);
  g_autoptr(GInetAddress) unmapped = NULL;
  guint64 length;

  if (inet == NULL)
    return NULL;
  length = g_inet_address_get_native_size (inet) * 8;
  if (slash != NULL &&
      !g_ascii_string_to_unsigned (slash + 1, 10, 0, length, &length, NULL))
    return NULL;
  unmapped = inet_address_unmap (inet);
  if (g_inet_address_get_family (unmapped) != g_inet_address_get_family (inet) && length >= 96)
    return g_inet_address_mask_new (unmapped, (guint) (length - 96), NULL);
  return g_inet_address_mask_new (inet, (guint) length, NULL);
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
  config->ping_interval_grace = self->ping_interval_grace;
  config->max_pending_admissions = self->max_pending_admissions;
  config->admission_timeout = self->admission_timeout;
  config->upgrade_timeout = self->upgrade_timeout;
  config->max_payload = self->max_payload;
  config->path = g_str_has_suffix (self->path, "/") ? g_strdup (self->path)
                                                    : g_strconcat (self->path, "/", NULL);
  config->transports = self->transports;
  config->allow_upgrades = self->allow_upgrades;
  config->allow_eio3 = self->allow_eio3;
  config->http_compression = self->http_compression;
  config->http_compression_threshold = self->http_compression_threshold;
  config->per_message_deflate = self->per_message_deflate;
  config->per_message_deflate_threshold = self->per_message_deflate_threshold;
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
  if (self->trusted_proxies != NULL && self->trusted_proxies[0] != NULL)
    {
      config->trusted_proxies = g_ptr_array_new_with_free_func (g_object_unref);
      for (guint i = 0; self->trusted_proxies[i] != NULL; i++)
        {
          const char *entry = self->trusted_proxies[i];
          GInetAddressMask *mask = trusted_proxy_mask_new (entry);

          if (mask == NULL)
            {
              g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                           "“%s” in “trusted-proxies” is not a numeric IPv4 or IPv6 address "
                           "nor a network (address/prefix length)", entry);
              engine_io_config_unref (config);
              return NULL;
            }
          g_ptr_array_add (config->trusted_proxies, mask);
        }
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
static void apply_headers_func (EngineIORequest *req,
                                guint            status,
                                GPtrArray       *headers);

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

  apply_headers_func (req, status, headers);
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
  g_autoptr(JsonNode) node = json_node_init_string (json_node_alloc (), message);
  g_autofree char *quoted = json_to_string (node, FALSE);
  char *text = g_strdup_printf ("{\"code\":%d,\"message\":%s}", code, quoted);
  return g_bytes_new_take (text, strlen (text));
}

/* Remembers a refusal for ::connection-error (reported by
 * report_connection_error() when the core entry point returns). */
static void
note_refusal (EngineIORequest *req,
              guint            status,
              int              code,
              const char      *message)
{
  req->error_status = status;
  req->error_code = code;
  g_free (req->error_message);
  req->error_message = g_strdup (message);
}

void
engine_io_core_respond_error (EngineIOConfig  *config,
                              EngineIORequest *req,
                              int              code)
{
  g_autoptr(GBytes) body = NULL;

  g_assert (code >= 0 && code < (int) G_N_ELEMENTS (error_messages));
  body = error_json (code, error_messages[code]);
  note_refusal (req, code == ENGINE_IO_CODE_FORBIDDEN ? 403 : 400, code, error_messages[code]);
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
  note_refusal (req, status, code, message);
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

  if (config != NULL && config->http_compression &&
      g_bytes_get_size (body) >= config->http_compression_threshold)
    {
      EngineIOCoding coding =
        engine_io_coding_negotiate (g_hash_table_lookup (req->headers, "accept-encoding"));
      GBytes *compressed = NULL;
      const char *extra[] = { "Vary", "Accept-Encoding", NULL, NULL, NULL };

      if (coding != ENGINE_IO_CODING_IDENTITY)
        compressed = engine_io_coding_compress (coding, body);
      if (compressed != NULL)
        {
          extra[2] = "Content-Encoding";
          extra[3] = engine_io_coding_to_string (coding);
          g_bytes_unref (body);
          body = compressed;
        }
      respond_full_with_headers (config, req, 200, content_type, body, FALSE, extra);
      return;
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
 * @socket). A permessage-deflate offer is accepted only with the
 * per-message-deflate property on (see engine_io_ws_deflate_negotiate());
 * otherwise declined by not echoing Sec-WebSocket-Extensions. */
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
  req->ws_deflate = config->per_message_deflate &&
                    engine_io_ws_deflate_negotiate (g_hash_table_lookup (req->headers,
                                                                         "sec-websocket-extensions"));
  req->ws_deflate_threshold = config->per_message_deflate_threshold;
  if (req->ws_deflate)
    {
      g_ptr_array_add (headers, g_strdup ("Sec-WebSocket-Extensions"));
      g_ptr_array_add (headers, g_strdup (ENGINE_IO_WS_DEFLATE_RESPONSE));
    }
  if (req->set_cookie != NULL)
    {
      g_ptr_array_add (headers, g_strdup ("Set-Cookie"));
      g_ptr_array_add (headers, g_strdup (req->set_cookie));
    }

  apply_headers_func (req, 101, headers);
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
  gboolean           counted;    /* in the server's pending_admissions */
  gboolean           detached;   /* owned by an EngineIOAdmission, not by its source */
} HandshakeJob;

static void handshake_job_free (gpointer data);
static void handshake_job_finish (HandshakeJob *job);
static void admission_start (HandshakeJob               *job,
                             EngineIOAdmissionAsyncFunc  func,
                             gpointer                    data);

/* Whoever resumes @req (any thread, @req suspended): the refusal is noted
 * for ::connection-error by the serving thread when it gives the response
 * (engine_io_server_request_resumed()), not here: that thread may still be
 * reading the request's refusal fields after its core entry point. */
static void
prepare_response (EngineIORequest *req,
                  guint            status,
                  int              code,
                  const char      *message)
{
  req->prepared_status = status;
  req->prepared_type = g_strdup ("application/json");
  req->prepared_body = error_json (code, message);
  req->prepared_code = code;
  g_free (req->prepared_message);
  req->prepared_message = g_strdup (message);
}

static gboolean
handshake_job_cb (gpointer data)
{
  HandshakeJob *job = data;
  EngineIOServer *self = job->server;
  EngineIORequest *req = job->req;
  EngineIOAdmissionFunc admission;
  gpointer admission_data;
  EngineIOAdmissionAsyncFunc admission_async;
  gpointer admission_async_data;
  gboolean closing;

  g_mutex_lock (&self->lock);
  admission = self->admission_func;
  admission_data = self->admission_data;
  admission_async = self->admission_async_func;
  admission_async_data = self->admission_async_data;
  closing = self->closing;
  g_mutex_unlock (&self->lock);

  if (closing)
    prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else if (admission != NULL && !admission (self, job->handshake, admission_data))
    prepare_response (req, 403, ENGINE_IO_CODE_FORBIDDEN, "Forbidden");
  else if (admission_async != NULL && job->counted)
    {
      /* The admission owns the job from here; this source's destroy
       * notify leaves it alone. */
      job->detached = TRUE;
      admission_start (job, admission_async, admission_async_data);
      return G_SOURCE_REMOVE;
    }

  handshake_job_finish (job);
  return G_SOURCE_REMOVE;
}

/* In the session's context, once admitted (or refused: a response was
 * prepared). Does not free @job. */
static void
handshake_job_finish (HandshakeJob *job)
{
  EngineIOServer *self = job->server;
  EngineIORequest *req = job->req;
  EngineIOIdFunc id_func;
  gpointer id_data;
  g_autofree char *sid = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  EngineIOConfig *config = self->config;

  g_mutex_lock (&self->lock);
  id_func = self->id_func;
  id_data = self->id_data;
  g_mutex_unlock (&self->lock);

  if (req->prepared_body != NULL)
    ;  /* refused */
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
      return;
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
      return;
    }

  /* Polling: the handshake GET is the session's first poll. */
  engine_io_socket_start (socket, req);
  return;
}

static void
handshake_job_free (gpointer data)
{
  HandshakeJob *job = data;

  if (job->detached)
    return;  /* its admission frees it */
  if (job->counted)
    {
      g_mutex_lock (&job->server->lock);
      g_assert (job->server->pending_admissions > 0);
      job->server->pending_admissions--;
      g_mutex_unlock (&job->server->lock);
    }
  if (job->loop != NULL)
    engine_io_loop_release (job->loop);
  engine_io_handshake_unref (job->handshake);
  g_object_unref (job->server);
  g_free (job);
}

static GHashTable *copy_string_table (GHashTable *table);

/* Asynchronous admission */

struct _EngineIOAdmission
{
  gatomicrefcount    ref_count;
  int                answered;   /* (atomic) 0 until the first answer wins */
  EngineIOServer    *server;     /* ref */
  EngineIOHandshake *handshake;  /* ref */
  HandshakeJob      *job;        /* owned (detached); the continuation takes it */
  GMainContext      *context;    /* ref: the session's, where the job continues */
  GSource           *timeout;    /* ref; set before the hook runs, cleared by the answer */
  /* Written by the winning answer before the continuation is attached. */
  gboolean           accepted;
  guint              status;
  int                code;
  char              *message;
};

G_DEFINE_BOXED_TYPE (EngineIOAdmission, engine_io_admission,
                     engine_io_admission_ref, engine_io_admission_unref)

/**
 * engine_io_admission_ref:
 * @admission: an admission
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): @admission
 */
EngineIOAdmission *
engine_io_admission_ref (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, NULL);

  g_atomic_ref_count_inc (&admission->ref_count);
  return admission;
}

/**
 * engine_io_admission_unref:
 * @admission: (transfer full): an admission
 *
 * Drops a reference. Dropping yours does not answer the admission (the
 * server refuses it at #EngineIOServer:admission-timeout).
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_admission_unref (EngineIOAdmission *admission)
{
  g_return_if_fail (admission != NULL);

  if (!g_atomic_ref_count_dec (&admission->ref_count))
    return;
  if (admission->job != NULL)
    {
      admission->job->detached = FALSE;
      handshake_job_free (admission->job);
    }
  g_clear_pointer (&admission->timeout, g_source_unref);
  g_main_context_unref (admission->context);
  engine_io_handshake_unref (admission->handshake);
  g_object_unref (admission->server);
  g_free (admission->message);
  g_free (admission);
}

/**
 * engine_io_admission_get_handshake:
 * @admission: an admission
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the handshake request (headers, query, remote
 *   address), valid as long as @admission
 */
EngineIOHandshake *
engine_io_admission_get_handshake (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, NULL);

  return admission->handshake;
}

/* In the session's context: the rest of the handshake, with the answer. */
static gboolean
admission_continue_cb (gpointer data)
{
  EngineIOAdmission *admission = data;
  HandshakeJob *job = g_steal_pointer (&admission->job);

  if (!admission->accepted)
    prepare_response (job->req, admission->status, admission->code, admission->message);
  else
    {
      gboolean closing;

      g_mutex_lock (&admission->server->lock);
      closing = admission->server->closing;
      g_mutex_unlock (&admission->server->lock);
      if (closing)
        prepare_response (job->req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
    }
  handshake_job_finish (job);
  job->detached = FALSE;
  handshake_job_free (job);
  return G_SOURCE_REMOVE;
}

/* Any thread. The first answer wins; TRUE if it was this one. */
static gboolean
admission_answer (EngineIOAdmission *admission,
                  gboolean           accepted,
                  guint              status,
                  int                code,
                  const char        *message)
{
  EngineIOServer *server = admission->server;
  GSource *timeout;
  GSource *source;

  if (!g_atomic_int_compare_and_exchange (&admission->answered, 0, 1))
    return FALSE;

  admission->accepted = accepted;
  admission->status = status;
  admission->code = code;
  admission->message = g_strdup (message);

  g_mutex_lock (&server->lock);
  timeout = g_steal_pointer (&admission->timeout);
  /* Its place is free from now, before its client can have the answer
   * (the continuation attached below gives it, and takes the job) and
   * come back. */
  if (admission->job->counted)
    {
      g_assert (server->pending_admissions > 0);
      server->pending_admissions--;
      admission->job->counted = FALSE;
    }
  g_mutex_unlock (&server->lock);
  if (timeout != NULL)
    {
      g_source_destroy (timeout);  /* drops its reference on @admission */
      g_source_unref (timeout);
    }

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, admission_continue_cb, engine_io_admission_ref (admission),
                         (GDestroyNotify) engine_io_admission_unref);
  g_source_set_static_name (source, "[engineio] admission answer");
  g_source_attach (source, admission->context);
  g_source_unref (source);

  g_mutex_lock (&server->lock);
  g_hash_table_remove (server->admissions, admission);  /* its reference */
  g_mutex_unlock (&server->lock);
  return TRUE;
}

/**
 * engine_io_admission_accept:
 * @admission: an admission
 *
 * Admits the handshake: the session opens (unless the server closed
 * meanwhile, or the handshake asked for a protocol version the server
 * does not speak).
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE if this was the admission's answer, %FALSE if it had
 *   one already (an earlier call, its timeout, or the server's close)
 */
gboolean
engine_io_admission_accept (EngineIOAdmission *admission)
{
  g_return_val_if_fail (admission != NULL, FALSE);

  return admission_answer (admission, TRUE, 0, 0, NULL);
}

/**
 * engine_io_admission_refuse:
 * @admission: an admission
 * @status: the HTTP status, 400 to 599 (Node's engine.io uses 403)
 * @code: the Engine.IO error code of the JSON body (4 is `Forbidden`;
 *   any integer is sent as given)
 * @message: (nullable): the message of the JSON body, UTF-8; %NULL for
 *   `Forbidden`
 *
 * Refuses the handshake. The client gets @status with the body
 * `{"code":<code>,"message":"<message>"}` (the message JSON-escaped), as
 * Node's `allowRequest` callback gives it; #EngineIOServer::connection-error
 * reports it.
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE if this was the admission's answer, %FALSE if it had
 *   one already (an earlier call, its timeout, or the server's close)
 */
gboolean
engine_io_admission_refuse (EngineIOAdmission *admission,
                            guint              status,
                            int                code,
                            const char        *message)
{
  g_return_val_if_fail (admission != NULL, FALSE);
  g_return_val_if_fail (status >= 400 && status <= 599, FALSE);
  g_return_val_if_fail (message == NULL || g_utf8_validate (message, -1, NULL), FALSE);

  return admission_answer (admission, FALSE, status, code, message != NULL ? message : "Forbidden");
}

static gboolean
admission_timeout_cb (gpointer data)
{
  EngineIOAdmission *admission = data;

  g_debug ("handshake from %s: no admission answer in time",
           engine_io_handshake_get_remote_address (admission->handshake));
  admission_answer (admission, FALSE, 503, ENGINE_IO_CODE_FORBIDDEN, "Admission timed out");
  return G_SOURCE_REMOVE;
}

/* In the session's context; @job is detached and becomes the admission's. */
static void
admission_start (HandshakeJob               *job,
                 EngineIOAdmissionAsyncFunc  func,
                 gpointer                    data)
{
  EngineIOServer *self = job->server;
  EngineIOAdmission *admission = g_new0 (EngineIOAdmission, 1);
  gboolean closing;

  g_atomic_ref_count_init (&admission->ref_count);
  admission->server = g_object_ref (self);
  admission->handshake = engine_io_handshake_ref (job->handshake);
  admission->job = job;
  admission->context = g_main_context_ref (engine_io_loop_get_context (job->loop));
  admission->timeout = g_timeout_source_new (self->config->admission_timeout);
  g_source_set_callback (admission->timeout, admission_timeout_cb, engine_io_admission_ref (admission),
                         (GDestroyNotify) engine_io_admission_unref);
  g_source_set_static_name (admission->timeout, "[engineio] admission deadline");
  g_source_attach (admission->timeout, admission->context);

  /* Registered for the close, which refuses what is still pending. */
  g_mutex_lock (&self->lock);
  closing = self->closing;
  g_hash_table_add (self->admissions, engine_io_admission_ref (admission));
  g_mutex_unlock (&self->lock);

  if (closing)
    admission_answer (admission, FALSE, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
  else
    func (self, admission, data);
  engine_io_admission_unref (admission);
}

/* Any thread: refuses every admission still waiting (server close). */
static void
admissions_refuse_all (EngineIOServer *self)
{
  g_autoptr(GPtrArray) pending = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_admission_unref);
  GHashTableIter iter;
  gpointer key;

  g_mutex_lock (&self->lock);
  g_hash_table_iter_init (&iter, self->admissions);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    g_ptr_array_add (pending, engine_io_admission_ref (key));
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < pending->len; i++)
    admission_answer (g_ptr_array_index (pending, i), FALSE, 503, ENGINE_IO_CODE_FORBIDDEN,
                      "Server shutting down");
}

/* ::connection-error */

/* Reports waiting for the callback context, at most; past it they are
 * dropped (a client making refused requests faster than the context runs
 * does not grow the queue). */
#define MAX_QUEUED_CONNECTION_ERRORS 128

typedef struct
{
  EngineIOHandshake *request;
  guint              status;
  int                code;
  char              *message;
} ErrorReport;

static void
error_report_free (gpointer data)
{
  ErrorReport *report = data;

  engine_io_handshake_unref (report->request);
  g_free (report->message);
  g_free (report);
}

/* One dispatch emits the reports waiting when it began, no more: those a
 * client makes meanwhile wait for the next dispatch, so a flood of refused
 * requests faster than a slow handler cannot hold the callback context in
 * this source (its other sources run in between). */
static gboolean
deliver_connection_errors_cb (gpointer data)
{
  EngineIOServer *self = data;
  guint batch;

  g_mutex_lock (&self->errors_lock);
  batch = self->error_reports.length;
  g_mutex_unlock (&self->errors_lock);

  for (guint i = 0; i < batch; i++)
    {
      ErrorReport *report;

      g_mutex_lock (&self->errors_lock);
      report = g_queue_pop_head (&self->error_reports);
      g_mutex_unlock (&self->errors_lock);
      if (report == NULL)
        break;
      g_signal_emit (self, signals[SIGNAL_CONNECTION_ERROR], 0,
                     report->request, report->status, report->code, report->message);
      error_report_free (report);
    }

  /* Still scheduled (error_source_pending stays set) while reports wait. */
  g_mutex_lock (&self->errors_lock);
  if (self->error_reports.length > 0)
    {
      g_mutex_unlock (&self->errors_lock);
      return G_SOURCE_CONTINUE;
    }
  self->error_source_pending = FALSE;
  g_mutex_unlock (&self->errors_lock);
  return G_SOURCE_REMOVE;
}

/* The serving thread (or any), after a core entry point answered @req. */
static void
report_connection_error (EngineIOServer  *self,
                         EngineIORequest *req)
{
  const char *value;
  EngineIOProtocolVersion version = ENGINE_IO_PROTOCOL_V4;
  EngineIOTransportType transport = ENGINE_IO_TRANSPORT_POLLING;
  ErrorReport *report;
  gboolean attach = FALSE;

  if (req->error_status == 0 || req->error_reported)
    return;
  req->error_reported = TRUE;
  if (!g_signal_has_handler_pending (self, signals[SIGNAL_CONNECTION_ERROR], 0, TRUE))
    return;

  value = g_hash_table_lookup (req->query, "EIO");
  if (value != NULL && !engine_io_protocol_version_from_string (value, &version))
    version = ENGINE_IO_PROTOCOL_V4;
  value = g_hash_table_lookup (req->query, "transport");
  if (value != NULL && !engine_io_transport_type_from_string (value, &transport))
    transport = ENGINE_IO_TRANSPORT_POLLING;

  g_mutex_lock (&self->errors_lock);
  if (self->error_reports.length >= MAX_QUEUED_CONNECTION_ERRORS)
    {
      g_mutex_unlock (&self->errors_lock);
      return;
    }
  report = g_new0 (ErrorReport, 1);
  report->request = engine_io_handshake_new (req->method, req->path,
                                             copy_string_table (req->headers),
                                             copy_string_table (req->query),
                                             req->remote_address, version, transport);
  report->status = req->error_status;
  report->code = req->error_code;
  report->message = g_strdup (req->error_message);
  g_queue_push_tail (&self->error_reports, report);
  if (!self->error_source_pending)
    self->error_source_pending = attach = TRUE;
  g_mutex_unlock (&self->errors_lock);

  if (attach)
    {
      GSource *source = g_idle_source_new ();

      g_source_set_callback (source, deliver_connection_errors_cb, g_object_ref (self), g_object_unref);
      g_source_set_static_name (source, "[engineio] connection-error");
      g_source_attach (source, self->callback_context != NULL ? self->callback_context
                                                              : g_main_context_default ());
      g_source_unref (source);
    }
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
 * bounded in size (core/engineio-rate-table.c). Buckets that refilled are
 * forgotten (a full bucket is the same as none); past RATE_MAX_ADDRESSES
 * the least recently seen go first. */

#define RATE_MAX_ADDRESSES 16384

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
  char *key = rate_key (address);
  gint64 now = g_get_monotonic_time ();
  gboolean ok;

  g_mutex_lock (&self->rate_lock);
  ok = engine_io_rate_table_take (&self->rate_table, key, config->handshake_rate,
                                  config->handshake_capacity, now, retry_after);
  g_mutex_unlock (&self->rate_lock);

  return ok;
}

guint
engine_io_server_get_rate_table_size (EngineIOServer *self)
{
  guint n;

  g_mutex_lock (&self->rate_lock);
  n = engine_io_rate_table_size (&self->rate_table);
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
  gboolean busy = FALSE;
  gboolean counted = FALSE;
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
          note_refusal (req, 429, ENGINE_IO_CODE_FORBIDDEN, "Too many handshakes from this address");
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
      hook = self->admission_func != NULL || self->admission_async_func != NULL;
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
  else if (self->admission_async_func != NULL &&
           self->pending_admissions >= config->max_pending_admissions)
    full = busy = TRUE;
  else
    {
      self->pending_handshakes++;
      /* Counted from here: the handshake waits for the async hook. */
      if (self->admission_async_func != NULL)
        {
          self->pending_admissions++;
          counted = TRUE;
        }
    }
  closing = self->closing;
  g_mutex_unlock (&self->lock);

  if (no_descriptors)
    {
      /* The connection is closed after the answer: a client that keeps
       * trying does not hold a descriptor between its attempts. */
      const char *extra[] = { "Connection", "close", NULL };
      g_autoptr(GBytes) body = error_json (ENGINE_IO_CODE_FORBIDDEN, "Too many sessions (descriptor limit)");

      engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      note_refusal (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Too many sessions (descriptor limit)");
      g_debug ("handshake from %s refused: at the descriptor budget", req->remote_address);
      respond_full_with_headers (config, req, 503, "application/json", body, FALSE, extra);
      return;
    }
  if (full)
    {
      if (!closing)
        engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      respond_status_json (config, req, 503, ENGINE_IO_CODE_FORBIDDEN,
                           closing ? "Server shutting down" :
                           busy ? "Too many pending admissions" : "Too many sessions");
      return;
    }

  loop = engine_io_loop_pool_acquire (self->pool);
  if (loop == NULL)
    {
      g_mutex_lock (&self->lock);
      self->pending_handshakes--;
      if (counted)
        self->pending_admissions--;
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
  job->counted = counted;
  job->handshake = engine_io_handshake_new (req->method, req->path,
                                            copy_string_table (req->headers),
                                            copy_string_table (req->query),
                                            req->remote_address, version, transport);

  req->kind = ENGINE_IO_REQUEST_HANDSHAKE;
  req->is_handshake = TRUE;
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

/* trusted-proxies: the client address a trusted proxy forwards. */

/* How many entries of X-Forwarded-For / Forwarded are walked at most, and
 * the longest entry read: bounded work and no allocation per entry
 * beyond one GInetAddress. */
#define FORWARDED_MAX_HOPS 32
#define FORWARDED_MAX_ENTRY 128

/* (transfer full): @inet, or its IPv4 address when it is IPv4-mapped */
static GInetAddress *
inet_address_unmap (GInetAddress *inet)
{
  const guint8 *bytes;

  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    {
      bytes = g_inet_address_to_bytes (inet);
      if (memcmp (bytes, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
        return g_inet_address_new_from_bytes (bytes + 12, G_SOCKET_FAMILY_IPV4);
    }
  return g_object_ref (inet);
}

static gboolean
address_is_trusted (EngineIOConfig *config,
                    GInetAddress   *inet)
{
  for (guint i = 0; i < config->trusted_proxies->len; i++)
    if (g_inet_address_mask_matches (g_ptr_array_index (config->trusted_proxies, i), inet))
      return TRUE;
  return FALSE;
}

/* One entry of X-Forwarded-For (@forwarded FALSE) or one element of
 * Forwarded (its `for=` parameter), [@start, @end) of the header, as an
 * address (unmapped), or NULL when it names none. */
static GInetAddress *
forwarded_entry_address (const char *start,
                         const char *end,
                         gboolean    forwarded)
{
  char buf[FORWARDED_MAX_ENTRY];
  g_autoptr(GInetAddress) inet = NULL;
  char *p, *q;
  gsize len;

  if (forwarded)
    {
      /* for=<node> among `;`-separated pairs */
      const char *pair = start;
      const char *value = NULL;

      while (pair < end)
        {
          const char *pair_end = memchr (pair, ';', end - pair);

          if (pair_end == NULL)
            pair_end = end;
          while (pair < pair_end && g_ascii_isspace (*pair))
            pair++;
          if (pair_end - pair >= 4 && g_ascii_strncasecmp (pair, "for=", 4) == 0)
            {
              value = pair + 4;
              end = pair_end;
              break;
            }
          pair = pair_end + 1;
        }
      if (value == NULL)
        return NULL;
      start = value;
    }

  while (start < end && g_ascii_isspace (*start))
    start++;
  while (end > start && g_ascii_isspace (end[-1]))
    end--;
  len = end - start;
  if (len == 0 || len >= sizeof buf)
    return NULL;
  memcpy (buf, start, len);
  buf[len] = '\0';
  p = buf;

  if (forwarded && p[0] == '"')
    {
      if (len < 2 || p[len - 1] != '"')
        return NULL;
      p[len - 1] = '\0';
      p++;
    }
  if (p[0] == '[')
    {
      /* [v6] or [v6]:port */
      q = strchr (p, ']');
      if (q == NULL || (q[1] != '\0' && q[1] != ':'))
        return NULL;
      *q = '\0';
      p++;
    }
  else if ((q = strchr (p, ':')) != NULL && strchr (q + 1, ':') == NULL)
    *q = '\0';  /* v4:port (one colon: not IPv6) */

  inet = g_inet_address_new_from_string (p);
  if (inet == NULL)
    return NULL;
  return inet_address_unmap (inet);
}

/* The client address of @req when its peer is a trusted proxy, or NULL
 * to keep the peer address. (transfer full) */
static char *
forwarded_client_address (EngineIOConfig  *config,
                          EngineIORequest *req)
{
  g_autoptr(GInetAddress) peer_raw = NULL;
  g_autoptr(GInetAddress) peer = NULL;
  const char *header;
  const char *end;
  gboolean forwarded = FALSE;

  if (config->trusted_proxies == NULL || req->remote_address == NULL)
    return NULL;
  peer_raw = g_inet_address_new_from_string (req->remote_address);
  if (peer_raw == NULL)
    return NULL;
  peer = inet_address_unmap (peer_raw);
  if (!address_is_trusted (config, peer))
    return NULL;

  header = g_hash_table_lookup (req->headers, "x-forwarded-for");
  if (header == NULL)
    {
      header = g_hash_table_lookup (req->headers, "forwarded");
      forwarded = TRUE;
    }
  if (header == NULL)
    return NULL;

  /* Right to left: each proxy appended the address it saw. */
  end = header + strlen (header);
  for (guint hops = 0; hops < FORWARDED_MAX_HOPS; hops++)
    {
      const char *start = end;
      g_autoptr(GInetAddress) inet = NULL;

      while (start > header && start[-1] != ',')
        start--;
      inet = forwarded_entry_address (start, end, forwarded);
      if (inet == NULL)
        return NULL;  /* malformed, unknown or obfuscated: the peer */
      if (!address_is_trusted (config, inet) || start == header)
        return g_inet_address_to_string (inet);
      end = start - 1;  /* before the comma */
    }
  return NULL;  /* too long a chain */
}

static gboolean request_begin (EngineIOServer  *self,
                               EngineIORequest *req);

gboolean
engine_io_server_request_begin (EngineIOServer  *self,
                                EngineIORequest *req)
{
  gboolean want_body;

  req->server = self;
  want_body = request_begin (self, req);

  report_connection_error (self, req);
  return want_body;
}

static gboolean
request_begin (EngineIOServer  *self,
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

  /* Behind a trusted proxy, the client it forwards is the remote address
   * for everything that follows (hooks, handshake-rate, the socket). */
  {
    char *client = forwarded_client_address (config, req);

    if (client != NULL)
      {
        g_free (req->remote_address);
        req->remote_address = client;
      }
  }

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
  report_connection_error (self, req);
}

/* The session of a POST whose body is still coming has ended (its linger
 * ran out, say). The request holds the session's socket, and the socket
 * its server: a body trickled in for ever kept them (a server the
 * application dropped, which is shut down when the last of them lets go,
 * went on listening) for as long as the client liked. */
gboolean
engine_io_server_request_detach_ended (EngineIOServer  *self,
                                       EngineIORequest *req)
{
  if (req->kind != ENGINE_IO_REQUEST_POST || req->socket == NULL ||
      !engine_io_socket_is_finished (req->socket))
    return FALSE;
  engine_io_socket_end_post (req->socket, req);
  g_clear_object (&req->socket);
  return TRUE;
}

/* ... and its body is read: answered as any request for an unknown sid. */
void
engine_io_server_request_orphaned (EngineIOServer  *self,
                                   EngineIORequest *req)
{
  g_autoptr(EngineIOConfig) config = server_get_config (self);

  engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNKNOWN_SID);
  report_connection_error (self, req);
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
      if (req->prepared_message != NULL)
        note_refusal (req, req->prepared_status, req->prepared_code, req->prepared_message);
      respond_full (config, req, req->prepared_status, req->prepared_type, req->prepared_body, FALSE);
      report_connection_error (self, req);
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

/* (transfer none) (nullable): written only before the server starts */
GTlsCertificate *
engine_io_server_get_tls_certificate (EngineIOServer *self)
{
  return self->tls_certificate;
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
  g_clear_pointer (&req->prepared_message, g_free);
  g_clear_pointer (&req->prepared_type, g_free);
  g_clear_pointer (&req->set_cookie, g_free);
  g_clear_pointer (&req->error_message, g_free);
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

  admissions_refuse_all (self);

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
 * engine_io_server_broadcast_packet:
 * @self: a server
 * @packet: a message packet (%ENGINE_IO_PACKET_MESSAGE, text or binary)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @packet to every open socket but @except: one packet shared by
 * all (it is not copied nor validated again per socket). Concurrent
 * broadcasts reach every socket in one order (a socket may still see a
 * direct send between two of them). Sockets that are closing, or whose
 * send queue refuses the packet (#EngineIOServer:backpressure), are
 * skipped without error. Never blocks on I/O.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_packet (EngineIOServer *self,
                                   EngineIOPacket *packet,
                                   EngineIOSocket *except)
{
  g_autoptr(GPtrArray) sockets = NULL;
  guint queued = 0;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (packet != NULL, 0);
  g_return_val_if_fail (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_MESSAGE, 0);
  g_return_val_if_fail (except == NULL || ENGINE_IO_IS_SOCKET (except), 0);

  g_mutex_lock (&self->broadcast_lock);
  sockets = engine_io_server_get_sockets (self);
  for (guint i = 0; i < sockets->len; i++)
    {
      EngineIOSocket *socket = g_ptr_array_index (sockets, i);

      if (socket != except && engine_io_socket_send_packet (socket, packet, NULL))
        queued++;
    }
  g_mutex_unlock (&self->broadcast_lock);
  return queued;
}

/**
 * engine_io_server_broadcast_text:
 * @self: a server
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @except: (nullable): a socket not to send it to
 * @error: return location for a #GError
 *
 * Validates and copies @text once and queues it to every open socket but
 * @except; see engine_io_server_broadcast_packet(). From Python, @text is
 * a `bytes` (or use the overrides' `Server.broadcast()`).
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to (0 with @error set on
 *   failure)
 */
guint
engine_io_server_broadcast_text (EngineIOServer  *self,
                                 const char      *text,
                                 gssize           length,
                                 EngineIOSocket  *except,
                                 GError         **error)
{
  g_autoptr(EngineIOPacket) packet = NULL;
  gsize len, bad = 0;
  char *copy;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (text != NULL || length == 0, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && !engine_io_utf8_validate (text, len, &bad))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Message is not valid UTF-8 (bad byte at offset %" G_GSIZE_FORMAT ")", bad);
      return 0;
    }
  copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, text, len);
  copy[len] = '\0';
  packet = engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, copy, len);
  return engine_io_server_broadcast_packet (self, packet, except);
}

/**
 * engine_io_server_broadcast_binary:
 * @self: a server
 * @data: the binary message (shared, not copied)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @data to every open socket but @except; see
 * engine_io_server_broadcast_packet().
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_binary (EngineIOServer *self,
                                   GBytes         *data,
                                   EngineIOSocket *except)
{
  g_autoptr(EngineIOPacket) packet = NULL;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (data != NULL, 0);

  packet = engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, data);
  return engine_io_server_broadcast_packet (self, packet, except);
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
 * engine_io_server_set_admission_async_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data): the hook, or %NULL
 *   to remove it
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs the asynchronous admission hook: it runs for every handshake
 * (after the #EngineIOAdmissionFunc of engine_io_server_set_admission_func(),
 * if one is set and accepted), in the main context that will run the
 * session's signals, and answers with engine_io_admission_accept() or
 * engine_io_admission_refuse(), then or later, from any thread. This is
 * Node's `allowRequest(req, callback)`: the refusal carries the HTTP
 * status, Engine.IO code and message the application chooses.
 *
 * Bounds: at most #EngineIOServer:max-pending-admissions handshakes wait
 * for an answer at once (more get HTTP 503 `{"code":4,"message":"Too many
 * pending admissions"}` at once, without running the hook); one not
 * answered within #EngineIOServer:admission-timeout is refused with 503
 * `Admission timed out`; engine_io_server_close() refuses those still
 * waiting with 503 `Server shutting down`.
 *
 * Thread-safe: may be called from any thread; handshakes already waiting
 * keep their admission.
 */
void
engine_io_server_set_admission_async_func (EngineIOServer             *self,
                                           EngineIOAdmissionAsyncFunc  func,
                                           gpointer                    user_data,
                                           GDestroyNotify              destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  g_mutex_lock (&self->lock);
  old_data = self->admission_async_data;
  old_destroy = self->admission_async_destroy;
  self->admission_async_func = func;
  self->admission_async_data = user_data;
  self->admission_async_destroy = destroy;
  g_mutex_unlock (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_server_set_headers_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data): the hook, or %NULL
 *   to remove it
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data
 *
 * Installs the response-header hook (#EngineIOHeadersFunc): Node's
 * `initial_headers` and `headers` events. It runs on the threads that
 * answer requests, not in a main context: set it before the server
 * starts.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_server_set_headers_func (EngineIOServer      *self,
                                   EngineIOHeadersFunc  func,
                                   gpointer             user_data,
                                   GDestroyNotify       destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_return_if_fail (ENGINE_IO_IS_SERVER (self));

  g_mutex_lock (&self->lock);
  old_data = self->headers_data;
  old_destroy = self->headers_destroy;
  g_atomic_pointer_set (&self->headers_func, func);
  self->headers_data = user_data;
  self->headers_destroy = destroy;
  g_mutex_unlock (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

static gboolean header_is_reserved (const char *name);
static gboolean header_name_is_token (const char *name);

struct _EngineIOResponseHeaders
{
  gatomicrefcount  ref_count;
  GPtrArray       *pairs;  /* (ref) name, value, ... owned strings */
};

G_DEFINE_BOXED_TYPE (EngineIOResponseHeaders, engine_io_response_headers,
                     engine_io_response_headers_ref, engine_io_response_headers_unref)

/**
 * engine_io_response_headers_ref:
 * @headers: response headers
 *
 * Returns: (transfer full): @headers
 */
EngineIOResponseHeaders *
engine_io_response_headers_ref (EngineIOResponseHeaders *headers)
{
  g_return_val_if_fail (headers != NULL, NULL);

  g_atomic_ref_count_inc (&headers->ref_count);
  return headers;
}

/**
 * engine_io_response_headers_unref:
 * @headers: (transfer full): response headers
 */
void
engine_io_response_headers_unref (EngineIOResponseHeaders *headers)
{
  g_return_if_fail (headers != NULL);

  if (!g_atomic_ref_count_dec (&headers->ref_count))
    return;
  g_ptr_array_unref (headers->pairs);
  g_free (headers);
}

/**
 * engine_io_response_headers_get:
 * @headers: response headers
 * @name: a header name (any case)
 *
 * Returns: (nullable): the value of the first header called @name, or %NULL
 */
const char *
engine_io_response_headers_get (EngineIOResponseHeaders *headers,
                                const char              *name)
{
  g_return_val_if_fail (headers != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i + 1 < headers->pairs->len; i += 2)
    if (g_ascii_strcasecmp (g_ptr_array_index (headers->pairs, i), name) == 0)
      return g_ptr_array_index (headers->pairs, i + 1);
  return NULL;
}

/**
 * engine_io_response_headers_append:
 * @headers: response headers
 * @name: a header name (an HTTP token)
 * @value: its value (no control characters)
 *
 * Adds a header (after those of the same name, if any). An invalid name
 * or value, or a header the server sets itself, is not added: a warning
 * says so. The server's are `Content-Length`, `Transfer-Encoding`,
 * `Content-Encoding` (the coding of the body it compressed, or not),
 * `Connection`, `Upgrade`, `Sec-WebSocket-Accept` and
 * `Sec-WebSocket-Extensions` (it accepts no extension: a client told
 * otherwise would send compressed frames, refused with 1002).
 */
void
engine_io_response_headers_append (EngineIOResponseHeaders *headers,
                                   const char              *name,
                                   const char              *value)
{
  g_return_if_fail (headers != NULL);
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);

  if (!header_name_is_token (name) || !header_is_clean (value) || header_is_reserved (name))
    {
      g_warning ("Response header “%s” not added: an invalid name or value, or one the server sets", name);
      return;
    }
  g_ptr_array_add (headers->pairs, g_strdup (name));
  g_ptr_array_add (headers->pairs, g_strdup (value));
}

/**
 * engine_io_response_headers_remove:
 * @headers: response headers
 * @name: a header name (any case)
 *
 * Removes every header called @name, except those the server sets itself
 * (see engine_io_response_headers_append()).
 *
 * Returns: how many were removed
 */
guint
engine_io_response_headers_remove (EngineIOResponseHeaders *headers,
                                   const char              *name)
{
  guint removed = 0;

  g_return_val_if_fail (headers != NULL, 0);
  g_return_val_if_fail (name != NULL, 0);

  if (header_is_reserved (name))
    return 0;
  for (guint i = 0; i + 1 < headers->pairs->len; )
    {
      if (g_ascii_strcasecmp (g_ptr_array_index (headers->pairs, i), name) == 0)
        {
          g_ptr_array_remove_range (headers->pairs, i, 2);
          removed++;
        }
      else
        i += 2;
    }
  return removed;
}

/* Names the server sets itself (framing, the body's coding, the upgrade
 * and its extensions, of which it accepts none):
 * a hook that took the server's Content-Encoding off a compressed body,
 * or claimed one for a plain body, would make the client misread it. */
static gboolean
header_is_reserved (const char *name)
{
  static const char *const reserved[] = {
    "content-length", "transfer-encoding", "content-encoding", "connection", "upgrade",
    "sec-websocket-accept", "sec-websocket-extensions",
  };

  for (guint i = 0; i < G_N_ELEMENTS (reserved); i++)
    if (g_ascii_strcasecmp (name, reserved[i]) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
header_name_is_token (const char *name)
{
  if (name == NULL || name[0] == '\0')
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("!#$%&'*+-.^_`|~", *p) == NULL)
      return FALSE;
  return TRUE;
}

/* Any thread answering @req: runs the headers hook on @headers (name,
 * value pairs of owned strings), then drops what it may not add. */
static void
apply_headers_func (EngineIORequest *req,
                    guint            status,
                    GPtrArray       *headers)
{
  EngineIOServer *self = req->server;
  EngineIOHeadersFunc func;
  gpointer data;
  g_autoptr(EngineIOHandshake) request = NULL;
  EngineIOResponseHeaders *wrapper;
  const char *value;
  EngineIOProtocolVersion version = ENGINE_IO_PROTOCOL_V4;
  EngineIOTransportType transport = ENGINE_IO_TRANSPORT_POLLING;

  /* Most servers have no hook: no lock taken per response then. */
  if (self == NULL || g_atomic_pointer_get (&self->headers_func) == NULL)
    return;
  g_mutex_lock (&self->lock);
  func = self->headers_func;
  data = self->headers_data;
  g_mutex_unlock (&self->lock);
  if (func == NULL)
    return;

  value = g_hash_table_lookup (req->query, "EIO");
  if (value != NULL && !engine_io_protocol_version_from_string (value, &version))
    version = ENGINE_IO_PROTOCOL_V4;
  value = g_hash_table_lookup (req->query, "transport");
  if (value != NULL && !engine_io_transport_type_from_string (value, &transport))
    transport = ENGINE_IO_TRANSPORT_POLLING;
  request = engine_io_handshake_new (req->method, req->path,
                                     copy_string_table (req->headers),
                                     copy_string_table (req->query),
                                     req->remote_address, version, transport);

  /* The hook edits a copy: one it keeps (a binding may) cannot touch the
   * response after it was given. */
  wrapper = g_new0 (EngineIOResponseHeaders, 1);
  g_atomic_ref_count_init (&wrapper->ref_count);
  wrapper->pairs = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < headers->len; i++)
    g_ptr_array_add (wrapper->pairs, g_strdup (g_ptr_array_index (headers, i)));

  func (self, request, status, req->is_handshake && status < 400, wrapper, data);

  g_ptr_array_set_size (headers, 0);
  for (guint i = 0; i < wrapper->pairs->len; i++)
    g_ptr_array_add (headers, g_strdup (g_ptr_array_index (wrapper->pairs, i)));
  engine_io_response_headers_unref (wrapper);
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
    case PROP_PING_INTERVAL_GRACE: self->ping_interval_grace = g_value_get_uint (value); break;
    case PROP_MAX_PENDING_ADMISSIONS: self->max_pending_admissions = g_value_get_uint (value); break;
    case PROP_ADMISSION_TIMEOUT: self->admission_timeout = g_value_get_uint (value); break;
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
    case PROP_HTTP_COMPRESSION: self->http_compression = g_value_get_boolean (value); break;
    case PROP_HTTP_COMPRESSION_THRESHOLD: self->http_compression_threshold = g_value_get_uint (value); break;
    case PROP_PER_MESSAGE_DEFLATE: self->per_message_deflate = g_value_get_boolean (value); break;
    case PROP_PER_MESSAGE_DEFLATE_THRESHOLD: self->per_message_deflate_threshold = g_value_get_uint (value); break;
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
    case PROP_TRUSTED_PROXIES:
      g_strfreev (self->trusted_proxies);
      self->trusted_proxies = g_value_dup_boxed (value);
      break;
    case PROP_TLS_CERTIFICATE:
      g_set_object (&self->tls_certificate, g_value_get_object (value));
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
    case PROP_PING_INTERVAL_GRACE: g_value_set_uint (value, self->ping_interval_grace); break;
    case PROP_MAX_PENDING_ADMISSIONS: g_value_set_uint (value, self->max_pending_admissions); break;
    case PROP_ADMISSION_TIMEOUT: g_value_set_uint (value, self->admission_timeout); break;
    case PROP_UPGRADE_TIMEOUT: g_value_set_uint (value, self->upgrade_timeout); break;
    case PROP_MAX_PAYLOAD: g_value_set_uint64 (value, self->max_payload); break;
    case PROP_PATH: g_value_set_string (value, self->path); break;
    case PROP_TRANSPORTS: g_value_set_flags (value, self->transports); break;
    case PROP_ALLOW_UPGRADES: g_value_set_boolean (value, self->allow_upgrades); break;
    case PROP_ALLOW_EIO3: g_value_set_boolean (value, self->allow_eio3); break;
    case PROP_HTTP_COMPRESSION: g_value_set_boolean (value, self->http_compression); break;
    case PROP_HTTP_COMPRESSION_THRESHOLD: g_value_set_uint (value, self->http_compression_threshold); break;
    case PROP_PER_MESSAGE_DEFLATE: g_value_set_boolean (value, self->per_message_deflate); break;
    case PROP_PER_MESSAGE_DEFLATE_THRESHOLD: g_value_set_uint (value, self->per_message_deflate_threshold); break;
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
    case PROP_TRUSTED_PROXIES: g_value_set_boxed (value, self->trusted_proxies); break;
    case PROP_TLS_CERTIFICATE: g_value_set_object (value, self->tls_certificate); break;
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
  engine_io_server_set_admission_async_func (self, NULL, NULL, NULL);
  engine_io_server_set_headers_func (self, NULL, NULL, NULL);
  engine_io_server_set_id_func (self, NULL, NULL, NULL);
  g_hash_table_unref (self->admissions);  /* empty: each holds the server */
  g_queue_clear_full (&self->error_reports, error_report_free);
  g_mutex_clear (&self->errors_lock);
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
  g_strfreev (self->trusted_proxies);
  g_clear_object (&self->tls_certificate);
  engine_io_rate_table_clear (&self->rate_table);
  g_mutex_clear (&self->rate_lock);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->broadcast_lock);
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
   * EngineIOServer:http-compression:
   *
   * Whether polling responses of at least
   * #EngineIOServer:http-compression-threshold bytes are compressed
   * (`Content-Encoding: gzip` or `deflate`) for clients that accept it
   * (`Accept-Encoding`, as browsers and python-engineio send). On by
   * default, like the reference's `httpCompression`. Compression runs on
   * the thread that answers the poll, at zlib level 1; each such thread
   * keeps one zlib stream per coding (about 256 KiB each, reused), no
   * session holds any. WebSocket messages are compressed only by
   * #EngineIOServer:per-message-deflate.
   *
   * Since: 0.1
   */
  properties[PROP_HTTP_COMPRESSION] =
    g_param_spec_boolean ("http-compression", NULL, NULL, TRUE, rw);

  /**
   * EngineIOServer:http-compression-threshold:
   *
   * The smallest polling response body, in bytes, that
   * #EngineIOServer:http-compression compresses (default 1024, as in the
   * reference): smaller bodies gain little for the CPU they cost.
   *
   * Since: 0.1
   */
  properties[PROP_HTTP_COMPRESSION_THRESHOLD] =
    g_param_spec_uint ("http-compression-threshold", NULL, NULL, 0, G_MAXUINT, 1024, rw);

  /**
   * EngineIOServer:per-message-deflate:
   *
   * Whether the WebSocket transport accepts a client's `permessage-deflate`
   * offer (RFC 7692; browsers always offer it, and so does npm
   * engine.io-client in Node unless its `perMessageDeflate` option is
   * false). Off by default, like the
   * reference's `perMessageDeflate: false`.
   *
   * The first offer whose parameters are valid is accepted, answered with
   * `permessage-deflate; server_no_context_takeover;
   * client_no_context_takeover`: every message is compressed on its own,
   * so no session holds a zlib stream (a small process-wide pool lends one
   * per message). An offer with an unknown, repeated or invalid parameter,
   * or asking for `server_max_window_bits` below 15, is declined
   * (RFC 7692, 5.1 and 7.1.2.1), and the connection goes on uncompressed
   * if no other offer fits.
   *
   * Received compressed messages are inflated with their output bounded
   * by #EngineIOServer:max-payload: a message that inflates past it is
   * refused with close code 1009 as soon as it does, whatever its
   * compressed size; data that is not valid deflate closes with 1007, as
   * does a text message whose inflated bytes are not UTF-8. Data messages
   * of at least #EngineIOServer:per-message-deflate-threshold bytes are
   * sent compressed (zlib level 1), on the session's thread.
   *
   * Read when the server starts listening.
   *
   * Since: 0.1
   */
  properties[PROP_PER_MESSAGE_DEFLATE] =
    g_param_spec_boolean ("per-message-deflate", NULL, NULL, FALSE, rw);

  /**
   * EngineIOServer:per-message-deflate-threshold:
   *
   * The smallest WebSocket data message, in bytes (the Engine.IO packet
   * type included), that #EngineIOServer:per-message-deflate sends
   * compressed (default 1024, as in the reference); smaller ones go
   * uncompressed. Received messages are inflated whatever their size.
   *
   * Since: 0.1
   */
  properties[PROP_PER_MESSAGE_DEFLATE_THRESHOLD] =
    g_param_spec_uint ("per-message-deflate-threshold", NULL, NULL, 0, G_MAXUINT, 1024, rw);

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
   * EngineIOServer:ping-interval-grace:
   *
   * Milliseconds the server adds to a client's heartbeat deadline before
   * it declares the session dead (python-engineio's `ping_interval`
   * grace period): a v4 client's pong is awaited
   * #EngineIOServer:ping-timeout + this after each ping, a v3 session
   * expires ping-interval + ping-timeout + this after the client's last
   * packet. Clients are not told (the handshake advertises ping-interval
   * and ping-timeout): it absorbs their timers' slack and slow networks.
   * Default 0.
   */
  properties[PROP_PING_INTERVAL_GRACE] =
    g_param_spec_uint ("ping-interval-grace", NULL, NULL, 0, 3600000, 0, rw);

  /**
   * EngineIOServer:max-pending-admissions:
   *
   * How many handshakes may wait for an #EngineIOAdmissionAsyncFunc's
   * answer at once (each holds a suspended request, a timer and a copy
   * of its headers). Past it a handshake is refused at once with HTTP 503
   * `{"code":4,"message":"Too many pending admissions"}`, without running
   * the hook. Default 64. Unused without an asynchronous hook.
   */
  properties[PROP_MAX_PENDING_ADMISSIONS] =
    g_param_spec_uint ("max-pending-admissions", NULL, NULL, 1, 65536, 64, rw);

  /**
   * EngineIOServer:admission-timeout:
   *
   * Milliseconds an #EngineIOAdmissionAsyncFunc has to answer; then the
   * handshake is refused with HTTP 503 `{"code":4,"message":"Admission
   * timed out"}` and a later answer is ignored. Default 10000.
   */
  properties[PROP_ADMISSION_TIMEOUT] =
    g_param_spec_uint ("admission-timeout", NULL, NULL, 1, 600000, 10000, rw);

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
   * EngineIOServer:trusted-proxies:
   *
   * The reverse proxies (numeric IPv4 or IPv6 addresses, or networks as
   * `address/prefix-length`: `10.0.0.0/8`, `::1`, `fd00::/8`) whose
   * `X-Forwarded-For` (or, without one, `Forwarded: for=`) header names
   * the client; empty or %NULL (default): none, every client is the TCP
   * peer.
   *
   * When a request's TCP peer is in the list, its client address is the
   * right-most address of the header that is not itself in the list
   * (the header is read from right to left, each trusted proxy having
   * appended the address it saw; when every address is trusted, the
   * left-most one). Several headers of the same name count as one list.
   * That address is what engine_io_socket_get_remote_address(),
   * engine_io_handshake_get_remote_address() (the admission hook) and
   * #EngineIOServer:handshake-rate see. A header that is missing, empty,
   * has more than 32 entries to walk or an entry that is not a numeric
   * address (`unknown`, an obfuscated identifier, garbage) leaves the
   * TCP peer as the client address. Ports (`192.0.2.1:4711`,
   * `"[2001:db8::1]:4711"`) are ignored; IPv4-mapped IPv6 addresses count
   * as their IPv4 address, in the header, as the TCP peer and in the list
   * (`::ffff:10.0.0.1` is `10.0.0.1`, `::ffff:10.0.0.0/104` is `10.0.0.0/8`).
   *
   * List only proxies that set or append to `X-Forwarded-For` (nginx:
   * `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`):
   * anyone who can reach the server directly from a listed address can
   * claim any client address. A proxy that sets only `Forwarded` must
   * remove a client's `X-Forwarded-For`, which is read first.
   *
   * listen() fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT naming the first
   * entry that is neither an address nor a network. Set it before the
   * server starts, from any thread (the server keeps a copy); it applies to
   * a mounted server (engine_io_server_mhd_handler()) too.
   */
  properties[PROP_TRUSTED_PROXIES] =
    g_param_spec_boxed ("trusted-proxies", NULL, NULL, G_TYPE_STRV, rw);

  /**
   * EngineIOServer:tls-certificate:
   *
   * The certificate, with its private key, that engine_io_server_listen()
   * serves HTTPS and WSS with (libmicrohttpd with GnuTLS); %NULL (default)
   * for plain HTTP. Load it with g_tls_certificate_new_from_files() or
   * g_tls_certificate_new_from_pem() (which need a GIO TLS backend,
   * glib-networking): its #GTlsCertificate:certificate-pem, its issuers'
   * (the chain sent to clients) and its #GTlsCertificate:private-key-pem
   * are handed to libmicrohttpd when the server listens; it speaks TLS 1.2
   * and 1.3 only (GnuTLS `NORMAL` otherwise). listen() fails
   * with %ENGINE_IO_ERROR_INVALID_ARGUMENT for a certificate without a
   * private key in PEM (a PKCS #11 one), and with %ENGINE_IO_ERROR_LISTEN
   * when libmicrohttpd was built without TLS.
   *
   * Over TLS, libmicrohttpd relays every WebSocket through a socketpair:
   * each counts three descriptors instead of one in the descriptor budget
   * (#EngineIOServer:fd-reserve), until libmicrohttpd closes the connection:
   * once the WebSocket has ended, at most #EngineIOServer:connection-timeout
   * later when the client does not take what the relay still holds. libmicrohttpd before 1.0 (0.9.75 in
   * Debian 12) relays through an 8-byte buffer, so a WebSocket over TLS
   * moves only some tens of KiB/s (polling is not affected): for bulk
   * traffic terminate TLS in a reverse proxy (see the Deployment page). A mounted server
   * (engine_io_server_mhd_handler()) does not use this property: TLS is
   * its daemon's. Set it before the server starts, from any thread.
   */
  properties[PROP_TLS_CERTIFICATE] =
    g_param_spec_object ("tls-certificate", NULL, NULL, G_TYPE_TLS_CERTIFICATE, rw);

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

  /**
   * EngineIOServer::connection-error:
   * @server: the server
   * @request: the refused request: its method, path, headers, query and
   *   remote address (its protocol version and transport are those of
   *   the query when valid, else 4 and polling)
   * @status: the HTTP status answered (400, 403, 404, 429, 503, ...)
   * @code: the Engine.IO error code of the JSON body (0 unknown transport,
   *   1 unknown session id, 2 bad handshake method, 3 bad request,
   *   4 forbidden, 5 unsupported protocol version, or the code an
   *   #EngineIOAdmissionAsyncFunc chose)
   * @message: the message of the JSON body
   *
   * Emitted for each request answered with an Engine.IO error (a JSON
   * body `{"code":…,"message":…}`): unknown transport or session id, a bad
   * handshake method or request, an origin not allowed, a refused or
   * timed-out admission, a handshake over a rate or session limit, a
   * server shutting down. Node's `connection_error` event.
   *
   * Emitted in #EngineIOServer:callback-context, or in the global default
   * main context (g_main_context_default()) when that property is unset,
   * some time after the response was given. Reports wait there in a
   * queue of at most 128: when clients are refused faster than that
   * context runs, the reports past it are dropped (the responses are
   * not). Only made while a handler is connected; reports waiting hold a
   * reference on the server, so connect it only if that context runs.
   */
  signals[SIGNAL_CONNECTION_ERROR] =
    g_signal_new ("connection-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 4, ENGINE_IO_TYPE_HANDSHAKE,
                  G_TYPE_UINT, G_TYPE_INT, G_TYPE_STRING);
}

static void
engine_io_server_init (EngineIOServer *self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->broadcast_lock);
  g_cond_init (&self->cond);
  self->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->admissions = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) engine_io_admission_unref, NULL);
  g_mutex_init (&self->errors_lock);
  self->max_pending_admissions = 64;
  self->admission_timeout = 10000;
  self->close_tasks = g_ptr_array_new ();
  self->ping_interval = 25000;
  self->ping_timeout = 20000;
  self->upgrade_timeout = 10000;
  self->max_payload = 1000000;
  self->path = g_strdup ("/engine.io/");
  self->transports = ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET;
  self->allow_upgrades = TRUE;
  self->http_compression = TRUE;
  self->http_compression_threshold = 1024;
  self->per_message_deflate = FALSE;
  self->per_message_deflate_threshold = 1024;
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
  engine_io_rate_table_init (&self->rate_table, RATE_MAX_ADDRESSES);
}
