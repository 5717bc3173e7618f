/* engineio-server-config.c: the server's configuration snapshot, its
 * descriptor budget, and starting
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "engineio-server-impl-private.h"
#include "engineio-http-rules-private.h"
#include "engineio-limits-private.h"
#include "engineio-error.h"

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
void
engine_io_raise_fd_limit (void)
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
gboolean
engine_io_server_descriptors_allow_session (EngineIOServer *self,
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
  config->session_timings = (EngineIOSessionTimings) {
    .ping_interval_ms = config->ping_interval,
    .ping_timeout_ms = config->ping_timeout,
    .ping_grace_ms = config->ping_interval_grace,
    .upgrade_timeout_ms = config->upgrade_timeout,
    .close_linger_ms = ENGINE_IO_SOCKET_CLOSE_LINGER_MS,
    .close_write_ms = MIN (config->connection_timeout, G_MAXUINT / 1000) * 1000,
  };
  if (self->allowed_origins != NULL)
    {
      for (guint i = 0; self->allowed_origins[i] != NULL; i++)
        if (!engine_io_origin_is_serialized (self->allowed_origins[i]))
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
          GInetAddressMask *mask = engine_io_trusted_proxy_mask_new (entry);

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

/* Starting */

gboolean
engine_io_server_ensure_started (EngineIOServer  *self,
                                 GError         **error)
{
  gboolean ok = TRUE;

  if (g_atomic_pointer_get (&self->config) != NULL && !g_atomic_int_get (&self->closed_flag))
    return TRUE;

  ENGINE_IO_LOCK (&self->lock, SERVER);
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
  ENGINE_IO_UNLOCK (&self->lock);

  return ok;
}

/* The snapshot never changes once set and lives as long as the server. */
EngineIOConfig *
engine_io_server_ref_config (EngineIOServer *self)
{
  EngineIOConfig *config = g_atomic_pointer_get (&self->config);

  return config != NULL ? engine_io_config_ref (config) : NULL;
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

gboolean
engine_io_server_is_started (EngineIOServer *self)
{
  return g_atomic_pointer_get (&self->config) != NULL;
}

