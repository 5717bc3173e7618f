/* engineio-server-responses.c: responses (CORS, errors, poll payloads, the
 * 101 of an upgrade), the response-headers hook and suspended requests
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "engineio-server-impl-private.h"
#include "engineio-http-compress-private.h"
#include "engineio-ws-deflate-private.h"
#include "engineio-socket-private.h"
#include "engineio-packet-private.h"
#include "engineio-websocket-private.h"
#include "engineio-jsonp-private.h"
#include "engineio-http-rules-private.h"

/* Responses */

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
      g_ptr_array_add (headers, g_strdup (wanted != NULL && engine_io_header_is_clean (wanted) ? wanted : "Content-Type"));
      g_ptr_array_add (headers, g_strdup ("Access-Control-Max-Age"));
      g_ptr_array_add (headers, g_strdup ("86400"));
    }
}

/* @extra: NULL, or NULL-terminated name, value pairs. */
void
engine_io_core_respond_full_with_headers (EngineIOConfig     *config,
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

void
engine_io_core_respond_full (EngineIOConfig  *config,
                             EngineIORequest *req,
                             guint            status,
                             const char      *content_type,
                             GBytes          *body,
                             gboolean         preflight)
{
  engine_io_core_respond_full_with_headers (config, req, status, content_type, body, preflight, NULL);
}

void
engine_io_core_respond (EngineIOConfig  *config,
                        EngineIORequest *req,
                        guint            status,
                        const char      *content_type,
                        GBytes          *body)
{
  engine_io_core_respond_full (config, req, status, content_type, body, FALSE);
}

static const char *const error_messages[] = {
  "Transport unknown",
  "Session ID unknown",
  "Bad handshake method",
  "Bad request",
  "Forbidden",
  "Unsupported protocol version",
};

GBytes *
engine_io_core_error_json (int         code,
                           const char *message)
{
  g_autoptr(JsonNode) node = json_node_init_string (json_node_alloc (), message);
  g_autofree char *quoted = json_to_string (node, FALSE);
  char *text = g_strdup_printf ("{\"code\":%d,\"message\":%s}", code, quoted);
  return g_bytes_new_take (text, strlen (text));
}

/* Remembers a refusal for ::connection-error (reported by
 * engine_io_server_report_connection_error() when the core entry point returns). */
void
engine_io_core_note_refusal (EngineIORequest *req,
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
  body = engine_io_core_error_json (code, error_messages[code]);
  engine_io_core_note_refusal (req, code == ENGINE_IO_CODE_FORBIDDEN ? 403 : 400, code, error_messages[code]);
  engine_io_core_respond_full (config, req, code == ENGINE_IO_CODE_FORBIDDEN ? 403 : 400,
                               "application/json", body, FALSE);
}

void
engine_io_core_respond_status_json (EngineIOConfig  *config,
                                    EngineIORequest *req,
                                    guint            status,
                                    int              code,
                                    const char      *message)
{
  g_autoptr(GBytes) body = engine_io_core_error_json (code, message);
  engine_io_core_note_refusal (req, status, code, message);
  engine_io_core_respond_full (config, req, status, "application/json", body, FALSE);
}

/* Whoever resumes @req (any thread, @req suspended): the refusal is noted
 * for ::connection-error by the serving thread when it gives the response
 * (engine_io_server_request_resumed()), not here: that thread may still be
 * reading the request's refusal fields after its core entry point. */
void
engine_io_core_prepare_response (EngineIORequest *req,
                                 guint            status,
                                 int              code,
                                 const char      *message)
{
  req->prepared_status = status;
  req->prepared_type = g_strdup ("application/json");
  req->prepared_body = engine_io_core_error_json (code, message);
  req->prepared_code = code;
  g_free (req->prepared_message);
  req->prepared_message = g_strdup (message);
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
      GBytes *wrapped = engine_io_jsonp_wrap (jsonp, body);
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
      engine_io_core_respond_full_with_headers (config, req, 200, content_type, body, FALSE, extra);
      return;
    }

  engine_io_core_respond_full (config, req, 200, content_type, body, FALSE);
}

void
engine_io_core_request_suspend (EngineIOServer  *self,
                                EngineIORequest *req)
{
  req->suspend_counted = TRUE;
  g_atomic_int_inc (&self->suspended);
  req->vtable->suspend (req);
}

gboolean
engine_io_core_refuses_suspend (EngineIOServer *self)
{
  return g_atomic_int_get (&self->refuse_suspend);
}

/* The serving thread saw the request again (resumed), or for the last time
 * (a resumed connection whose client had gone is completed without
 * re-entering the handler). */
void
engine_io_core_request_unsuspend (EngineIOServer  *self,
                                  EngineIORequest *req)
{
  if (!req->suspend_counted)
    return;
  req->suspend_counted = FALSE;
  if (g_atomic_int_dec_and_test (&self->suspended))
    {
      /* engine_io_server_close() checks the count under the lock. */
      ENGINE_IO_LOCK (&self->lock, SERVER);
      g_cond_broadcast (&self->cond);
      ENGINE_IO_UNLOCK (&self->lock);
    }
}

void
engine_io_core_request_resume (EngineIORequest *req)
{
  req->vtable->resume (req);
}


/* Answers 101 (the adapter switches the connection and attaches it to
 * @socket). A permessage-deflate offer is accepted only with the
 * per-message-deflate property on (see engine_io_ws_deflate_negotiate());
 * otherwise declined by not echoing Sec-WebSocket-Extensions.
 *
 * Returns: FALSE if the adapter could not switch the connection and the
 * session must release its upgrade claim: the caller then calls
 * engine_io_socket_upgrade_failed() (this file calls no session file). */
gboolean
engine_io_core_upgrade_request (EngineIOConfig  *config,
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
      return req->reject_ws;
    }
  return TRUE;
}

GHashTable *
engine_io_copy_string_table (GHashTable *table)
{
  GHashTable *copy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (copy, g_strdup (key), g_strdup (value));
  return copy;
}

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

  if (!engine_io_header_name_is_token (name) || !engine_io_header_is_clean (value) || engine_io_header_is_reserved (name))
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

  if (engine_io_header_is_reserved (name))
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
  ENGINE_IO_LOCK (&self->lock, SERVER);
  func = self->headers_func;
  data = self->headers_data;
  ENGINE_IO_UNLOCK (&self->lock);
  if (func == NULL)
    return;

  value = g_hash_table_lookup (req->query, "EIO");
  if (value != NULL && !engine_io_protocol_version_from_string (value, &version))
    version = ENGINE_IO_PROTOCOL_V4;
  value = g_hash_table_lookup (req->query, "transport");
  if (value != NULL && !engine_io_transport_type_from_string (value, &transport))
    transport = ENGINE_IO_TRANSPORT_POLLING;
  request = engine_io_handshake_new (req->method, req->path,
                                     engine_io_copy_string_table (req->headers),
                                     engine_io_copy_string_table (req->query),
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

