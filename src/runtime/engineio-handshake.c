/* engineio-handshake.c: the HTTP request that opened a session
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-handshake-private.h"

/**
 * EngineIOHandshake:
 *
 * What the server saw of the request that opened a session: method, path,
 * headers (names in lower case), query parameters, the client's address,
 * the protocol version and the transport it asked for.
 *
 * The admission hook (#EngineIOAdmissionFunc) receives one before the
 * session exists; engine_io_socket_get_handshake() returns the same data for
 * an open session. It is immutable: any thread may read it.
 */
struct _EngineIOHandshake
{
  gatomicrefcount          ref_count;
  char                    *method;          /* owned, immutable */
  char                    *path;            /* owned, immutable */
  GHashTable              *headers;         /* owned, immutable: lowercase name -> value */
  GHashTable              *query;           /* owned, immutable */
  char                    *remote_address;  /* owned, immutable */
  EngineIOProtocolVersion  version;
  EngineIOTransportType    transport;
};

G_DEFINE_BOXED_TYPE (EngineIOHandshake, engine_io_handshake,
                     engine_io_handshake_ref, engine_io_handshake_unref)

EngineIOHandshake *
engine_io_handshake_new (const char              *method,
                         const char              *path,
                         GHashTable              *headers,
                         GHashTable              *query,
                         const char              *remote_address,
                         EngineIOProtocolVersion  version,
                         EngineIOTransportType    transport)
{
  EngineIOHandshake *self = g_new0 (EngineIOHandshake, 1);

  g_atomic_ref_count_init (&self->ref_count);
  self->method = g_strdup (method);
  self->path = g_strdup (path);
  self->headers = headers;
  self->query = query;
  self->remote_address = g_strdup (remote_address ? remote_address : "");
  self->version = version;
  self->transport = transport;

  return self;
}

/**
 * engine_io_handshake_ref:
 * @handshake: a handshake
 *
 * Takes a reference. Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full): @handshake
 */
EngineIOHandshake *
engine_io_handshake_ref (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);

  g_atomic_ref_count_inc (&handshake->ref_count);
  return handshake;
}

/**
 * engine_io_handshake_unref:
 * @handshake: (transfer full): a handshake
 *
 * Drops a reference; the last one frees it. Thread-safe: may be called
 * from any thread.
 */
void
engine_io_handshake_unref (EngineIOHandshake *handshake)
{
  g_return_if_fail (handshake != NULL);

  if (!g_atomic_ref_count_dec (&handshake->ref_count))
    return;

  g_free (handshake->method);
  g_free (handshake->path);
  g_hash_table_unref (handshake->headers);
  g_hash_table_unref (handshake->query);
  g_free (handshake->remote_address);
  g_free (handshake);
}

/**
 * engine_io_handshake_get_method:
 * @handshake: a handshake
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the HTTP method, `GET` for a valid handshake
 */
const char *
engine_io_handshake_get_method (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  return handshake->method;
}

/**
 * engine_io_handshake_get_path:
 * @handshake: a handshake
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the request path, without the query string
 */
const char *
engine_io_handshake_get_path (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  return handshake->path;
}

/**
 * engine_io_handshake_get_header:
 * @handshake: a handshake
 * @name: a header name, in any case
 *
 * Looks up a request header. Values that were not valid UTF-8 on the wire
 * are given with U+FFFD in place of the bad bytes.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (nullable): the header's value, or %NULL
 */
const char *
engine_io_handshake_get_header (EngineIOHandshake *handshake,
                                const char        *name)
{
  g_autofree char *lower = NULL;

  g_return_val_if_fail (handshake != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  lower = g_ascii_strdown (name, -1);
  return g_hash_table_lookup (handshake->headers, lower);
}

/**
 * engine_io_handshake_get_headers:
 * @handshake: a handshake
 *
 * All request headers, names in lower case. The table must not be modified.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (element-type utf8 utf8): the headers
 */
GHashTable *
engine_io_handshake_get_headers (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  return handshake->headers;
}

/**
 * engine_io_handshake_get_query_param:
 * @handshake: a handshake
 * @name: a query parameter name (case-sensitive)
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (nullable): the decoded value, or %NULL
 */
const char *
engine_io_handshake_get_query_param (EngineIOHandshake *handshake,
                                     const char        *name)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);
  return g_hash_table_lookup (handshake->query, name);
}

/**
 * engine_io_handshake_get_query:
 * @handshake: a handshake
 *
 * All query parameters, decoded. The table must not be modified.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none) (element-type utf8 utf8): the query parameters
 */
GHashTable *
engine_io_handshake_get_query (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  return handshake->query;
}

/**
 * engine_io_handshake_get_remote_address:
 * @handshake: a handshake
 *
 * The client's IP address as text (`127.0.0.1`, `::1`), without the port;
 * empty when the transport did not tell.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the remote address
 */
const char *
engine_io_handshake_get_remote_address (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, NULL);
  return handshake->remote_address;
}

/**
 * engine_io_handshake_get_protocol_version:
 * @handshake: a handshake
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the protocol version the client asked for (`EIO`)
 */
EngineIOProtocolVersion
engine_io_handshake_get_protocol_version (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, ENGINE_IO_PROTOCOL_V4);
  return handshake->version;
}

/**
 * engine_io_handshake_get_transport:
 * @handshake: a handshake
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the transport the handshake came on
 */
EngineIOTransportType
engine_io_handshake_get_transport (EngineIOHandshake *handshake)
{
  g_return_val_if_fail (handshake != NULL, ENGINE_IO_TRANSPORT_POLLING);
  return handshake->transport;
}
