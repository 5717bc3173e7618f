/* engineio-server-requests.c: the protocol core's request entry points, for
 * adapters
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"
#include "engineio-http-rules-private.h"

/* Protocol core entry points */

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

gboolean
engine_io_server_path_matches (EngineIOServer *self,
                               const char     *path)
{
  g_autoptr(EngineIOConfig) config = NULL;
  gsize len;

  /* A mounted server starts on its first request. */
  engine_io_server_ensure_started (self, NULL);
  config = engine_io_server_ref_config (self);
  if (config == NULL)
    return FALSE;
  len = strlen (config->path);
  /* "/engine.io/" matches "/engine.io" and "/engine.io/" */
  if (config->metrics_path != NULL && strcmp (path, config->metrics_path) == 0)
    return TRUE;
  return strcmp (path, config->path) == 0 ||
         (strlen (path) == len - 1 && strncmp (path, config->path, len - 1) == 0);
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
  ENGINE_IO_LOCK (&self->lock, SERVER);
  closing = self->closing && !self->closed && self->config != NULL;
  ENGINE_IO_UNLOCK (&self->lock);
  return closing;
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

  engine_io_server_report_connection_error (self, req);
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

  if (!engine_io_server_ensure_started (self, NULL) && !server_is_closing_sessions (self, req))
    {
      /* The same answer as a handshake gets while the server closes. */
      engine_io_core_respond_status_json (NULL, req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
      return FALSE;
    }
  config = engine_io_server_ref_config (self);

  /* Behind a trusted proxy, the client it forwards is the remote address
   * for everything that follows (hooks, handshake-rate, the socket). */
  {
    char *client = engine_io_forwarded_client_address (config, req);

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
        engine_io_core_respond_status_json (NULL, req, 405, ENGINE_IO_CODE_BAD_REQUEST, "Method not allowed");
      else
        engine_io_core_respond_full (NULL, req, 200, "text/plain; version=0.0.4; charset=utf-8", body, FALSE);
      return FALSE;
    }

  /* A CORS preflight is answered before any check, with or without sid. */
  if (strcmp (req->method, "OPTIONS") == 0)
    {
      engine_io_core_respond_full (config, req, 204, NULL, NULL, TRUE);
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

  if (!engine_io_header_is_clean (g_hash_table_lookup (req->headers, "origin")))
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
      engine_io_core_respond_status_json (config, req, 403, ENGINE_IO_CODE_FORBIDDEN, "Origin not allowed");
      return FALSE;
    }

  sid = g_hash_table_lookup (req->query, "sid");
  if (sid == NULL)
    {
      engine_io_server_handle_handshake (self, config, req, transport);
      return FALSE;
    }

  socket = engine_io_server_find_socket (self, sid);
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
          !engine_io_request_is_websocket_upgrade (req) || !engine_io_socket_begin_upgrade (socket, &req->reject_ws))
        {
          engine_io_core_respond_error (config, req, ENGINE_IO_CODE_BAD_REQUEST);
          return FALSE;
        }
      if (!engine_io_core_upgrade_request (config, req, socket))
        engine_io_socket_upgrade_failed (socket);
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
  engine_io_server_report_connection_error (self, req);
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
  g_autoptr(EngineIOConfig) config = engine_io_server_ref_config (self);

  engine_io_core_respond_error (config, req, ENGINE_IO_CODE_UNKNOWN_SID);
  engine_io_server_report_connection_error (self, req);
}

void
engine_io_server_request_too_large (EngineIOServer  *self,
                                    EngineIORequest *req)
{
  g_autoptr(EngineIOConfig) config = engine_io_server_ref_config (self);
  char *message = g_strdup_printf ("Payload too large (max-payload is %" G_GUINT64_FORMAT " bytes)",
                                   config != NULL ? config->max_payload : self->max_payload);
  g_autoptr(GBytes) body = g_bytes_new_take (message, strlen (message));

  /* A POST refused after it began (a chunked body that grew too large):
   * the session takes the client's next POST, which may come as soon as
   * the client reads the 413, before libmicrohttpd reports this request
   * complete. */
  if (req->kind == ENGINE_IO_REQUEST_POST && req->socket != NULL)
    engine_io_socket_end_post (req->socket, req);
  engine_io_core_respond_full (config, req, 413, "text/plain; charset=UTF-8", body, FALSE);
}

void
engine_io_server_request_resumed (EngineIOServer  *self,
                                  EngineIORequest *req)
{
  engine_io_core_request_unsuspend (self, req);

  if (req->prepared_body != NULL)
    {
      g_autoptr(EngineIOConfig) config = engine_io_server_ref_config (self);
      if (req->prepared_message != NULL)
        engine_io_core_note_refusal (req, req->prepared_status, req->prepared_code, req->prepared_message);
      engine_io_core_respond_full (config, req, req->prepared_status, req->prepared_type, req->prepared_body, FALSE);
      engine_io_server_report_connection_error (self, req);
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
      g_autoptr(EngineIOConfig) config = engine_io_server_ref_config (self);
      if (!engine_io_core_upgrade_request (config, req, req->socket))
        engine_io_socket_upgrade_failed (req->socket);
      return;
    }

  g_warn_if_reached ();
  engine_io_core_respond_status_json (NULL, req, 500, ENGINE_IO_CODE_BAD_REQUEST, "Internal error");
}

void
engine_io_server_request_client_gone (EngineIOServer  *self,
                                      EngineIORequest *req)
{
  engine_io_core_request_unsuspend (self, req);
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
      !engine_io_server_ensure_started (self, NULL))
    return;
  socket = engine_io_server_find_socket (self, sid);
  if (socket != NULL)
    engine_io_socket_poll_gone_unanswered (socket);
}

void
engine_io_server_request_finished (EngineIOServer  *self,
                                   EngineIORequest *req,
                                   gboolean         completed)
{
  engine_io_core_request_unsuspend (self, req);
  if (req->begun)
    {
      req->begun = FALSE;
      if (g_atomic_int_dec_and_test (&self->active_requests))
        {
          ENGINE_IO_LOCK (&self->lock, SERVER);
          g_cond_broadcast (&self->cond);
          ENGINE_IO_UNLOCK (&self->lock);
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

