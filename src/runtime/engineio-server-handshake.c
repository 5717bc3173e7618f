/* engineio-server-handshake.c: a handshake's checks (method, rate, version,
 * room for a session) before its job starts
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-server-impl-private.h"
#include "engineio-http-rules-private.h"

/* Handshake rate limit: a token bucket per client address (IPv4), per
 * /64 network (IPv6: one host commonly holds a whole /64), in a table
 * bounded in size (src/core/engineio-rate-table.c). Buckets that refilled are
 * forgotten (a full bucket is the same as none); past RATE_MAX_ADDRESSES
 * the least recently seen go first. */

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

  ENGINE_IO_LOCK (&self->rate_lock, RATE);
  ok = engine_io_rate_table_take (&self->rate_table, key, config->handshake_rate,
                                  config->handshake_capacity, now, retry_after);
  ENGINE_IO_UNLOCK (&self->rate_lock);

  return ok;
}

guint
engine_io_server_get_rate_table_size (EngineIOServer *self)
{
  guint n;

  ENGINE_IO_LOCK (&self->rate_lock, RATE);
  n = engine_io_rate_table_size (&self->rate_table);
  ENGINE_IO_UNLOCK (&self->rate_lock);
  return n;
}

void
engine_io_server_handle_handshake (EngineIOServer          *self,
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
      (!engine_io_request_is_websocket_upgrade (req) || req->vtable->upgrade == NULL))
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
          g_autoptr(GBytes) body = engine_io_core_error_json (ENGINE_IO_CODE_FORBIDDEN, "Too many handshakes from this address");

          engine_io_counter_add (&self->counters.handshakes_rate_limited, 1);
          engine_io_core_note_refusal (req, 429, ENGINE_IO_CODE_FORBIDDEN, "Too many handshakes from this address");
          g_debug ("handshake from %s refused: over handshake-rate", req->remote_address);
          engine_io_core_respond_full_with_headers (config, req, 429, "application/json", body, FALSE, extra);
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

      ENGINE_IO_LOCK (&self->lock, SERVER);
      hook = self->admission_func != NULL || self->admission_async_func != NULL;
      ENGINE_IO_UNLOCK (&self->lock);
      if (!hook)
        {
          engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNSUPPORTED_PROTOCOL_VERSION);
          return;
        }
      version = ENGINE_IO_PROTOCOL_V4;  /* what the hook sees; the query has the real EIO */
    }

  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (self->closing)
    full = TRUE;
  else if (config->max_sessions > 0 &&
           self->live_sessions + self->pending_handshakes >= config->max_sessions)
    full = TRUE;
  else if (!engine_io_server_descriptors_allow_session (self, config))
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
  ENGINE_IO_UNLOCK (&self->lock);

  if (no_descriptors)
    {
      /* The connection is closed after the answer: a client that keeps
       * trying does not hold a descriptor between its attempts. */
      const char *extra[] = { "Connection", "close", NULL };
      g_autoptr(GBytes) body = engine_io_core_error_json (ENGINE_IO_CODE_FORBIDDEN, "Too many sessions (descriptor limit)");

      engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      engine_io_core_note_refusal (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Too many sessions (descriptor limit)");
      g_debug ("handshake from %s refused: at the descriptor budget", req->remote_address);
      engine_io_core_respond_full_with_headers (config, req, 503, "application/json", body, FALSE, extra);
      return;
    }
  if (full)
    {
      if (!closing)
        engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      engine_io_core_respond_status_json (config, req, 503, ENGINE_IO_CODE_FORBIDDEN,
                                          closing ? "Server shutting down" :
                                          busy ? "Too many pending admissions" : "Too many sessions");
      return;
    }

  loop = engine_io_loop_pool_acquire (self->pool);
  if (loop == NULL)
    {
      ENGINE_IO_LOCK (&self->lock, SERVER);
      self->pending_handshakes--;
      if (counted)
        self->pending_admissions--;
      g_cond_broadcast (&self->cond);
      ENGINE_IO_UNLOCK (&self->lock);
      engine_io_counter_add (&self->counters.handshakes_refused_full, 1);
      engine_io_core_respond_status_json (config, req, 503, ENGINE_IO_CODE_FORBIDDEN, "Cannot start a session");
      return;
    }

  job = g_new0 (HandshakeJob, 1);
  job->server = g_object_ref (self);
  job->req = req;
  job->loop = loop;
  job->version_ok = version_ok;
  job->counted = counted;
  job->handshake = engine_io_handshake_new (req->method, req->path,
                                            engine_io_copy_string_table (req->headers),
                                            engine_io_copy_string_table (req->query),
                                            req->remote_address, version, transport);

  req->kind = ENGINE_IO_REQUEST_HANDSHAKE;
  req->is_handshake = TRUE;
  engine_io_core_request_suspend (self, req);
  ENGINE_IO_LOCK (&self->lock, SERVER);
  engine_io_server_list_job_locked (self, job);
  ENGINE_IO_UNLOCK (&self->lock);

  /* The admission hook and ::connection run in the session's context. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, engine_io_handshake_job_cb, job, engine_io_handshake_job_free);
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

