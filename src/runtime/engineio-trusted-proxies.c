/* engineio-trusted-proxies.c: #EngineIOServer:trusted-proxies: its entries as
 * masks, and the client address a trusted proxy forwards
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-server-impl-private.h"

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

/* A trusted-proxies entry (`address` or `address/length`) as a mask, or
 * NULL. (GInetAddressMask warns about a length out of range, rather than
 * failing: checked here first.) An IPv4-mapped IPv6 entry (with a length
 * of 96 or more), as get_remote_address() gives peers on a dual-stack
 * listener, is its IPv4 address or network: peers are matched unmapped. */
GInetAddressMask *
engine_io_trusted_proxy_mask_new (const char *entry)
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
char *
engine_io_forwarded_client_address (EngineIOConfig  *config,
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

