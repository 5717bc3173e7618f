/* engineio-http-rules.c: the protocol core's pure HTTP rules: origins,
 * WebSocket opening handshakes, session ids and header names and values
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-http-rules-private.h"

/* Origins */

/* An origin as browsers serialize it (RFC 6454): `null`, or
 * scheme://host[:port] in lowercase, without a path, a trailing slash, a
 * query, user information or the scheme's default port. Anything else
 * would never equal an Origin header. */
gboolean
engine_io_origin_is_serialized (const char *origin)
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
gboolean
engine_io_request_is_websocket_upgrade (EngineIORequest *req)
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

/* Session ids */

gboolean
engine_io_sid_is_valid (const char *sid)
{
  gsize len = 0;

  if (sid == NULL)
    return FALSE;
  for (const char *p = sid; *p; p++, len++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return len >= 1 && len <= 128;
}

/* Headers */

gboolean
engine_io_header_is_clean (const char *value)
{
  if (value == NULL)
    return TRUE;
  for (const guchar *p = (const guchar *) value; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
      return FALSE;
  return TRUE;
}

/* Names the server sets itself (framing, the body's coding, the upgrade
 * and its extensions, of which it accepts none):
 * a hook that took the server's Content-Encoding off a compressed body,
 * or claimed one for a plain body, would make the client misread it. */
gboolean
engine_io_header_is_reserved (const char *name)
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

gboolean
engine_io_header_name_is_token (const char *name)
{
  if (name == NULL || name[0] == '\0')
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && strchr ("!#$%&'*+-.^_`|~", *p) == NULL)
      return FALSE;
  return TRUE;
}

