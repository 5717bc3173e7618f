/* engineio-ws-deflate.c: permessage-deflate (RFC 7692)
 *
 * See engineio-ws-deflate-private.h. Both directions run without context
 * takeover, so a zlib stream carries nothing from one message to the
 * next: streams live in a process-wide pool (at most POOL_MAX idle of each
 * kind, guarded by pool_lock), are lent for one message and reset when
 * given back. An idle connection holds no zlib state; the pool holds at
 * most POOL_MAX * (about 270 KiB deflate + 40 KiB inflate) in all.
 *
 * Inflating is bounded by its output: the buffer grows (geometrically)
 * up to the limit plus one byte, and inflate() stops as soon as it would
 * pass it, so a message that expands past max-payload (a "zip bomb")
 * costs at most max-payload of output memory and the CPU to produce it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>
#include <zlib.h>

#include "engineio-ws-deflate-private.h"

/* Level 1, as for HTTP compression: speed over the last percent of ratio. */
#define COMPRESSION_LEVEL 1
#define WINDOW_BITS 15
#define POOL_MAX 4
/* zlib counts in uInt: larger buffers go in pieces of this size. */
#define CHUNK ((gsize) 1 << 30)

static GMutex    pool_lock;
static z_stream *deflaters[POOL_MAX];   /* (pool_lock) */
static guint     n_deflaters;           /* (pool_lock) */
static z_stream *inflaters[POOL_MAX];   /* (pool_lock) */
static guint     n_inflaters;           /* (pool_lock) */

static z_stream *
pool_take (z_stream **pool,
           guint     *n)
{
  z_stream *z = NULL;

  g_mutex_lock (&pool_lock);
  if (*n > 0)
    z = pool[--*n];
  g_mutex_unlock (&pool_lock);
  return z;
}

/* FALSE if the pool is full (the caller ends the stream). */
static gboolean
pool_give (z_stream **pool,
           guint     *n,
           z_stream  *z)
{
  gboolean kept = FALSE;

  g_mutex_lock (&pool_lock);
  if (*n < POOL_MAX)
    {
      pool[(*n)++] = z;
      kept = TRUE;
    }
  g_mutex_unlock (&pool_lock);
  return kept;
}

guint
engine_io_ws_deflate_pooled (void)
{
  guint n;

  g_mutex_lock (&pool_lock);
  n = n_deflaters + n_inflaters;
  g_mutex_unlock (&pool_lock);
  return n;
}

static z_stream *
deflater_get (void)
{
  z_stream *z = pool_take (deflaters, &n_deflaters);

  if (z != NULL)
    return z;
  z = g_new0 (z_stream, 1);
  if (deflateInit2 (z, COMPRESSION_LEVEL, Z_DEFLATED, -WINDOW_BITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    {
      g_free (z);
      return NULL;
    }
  return z;
}

static void
deflater_put (z_stream *z)
{
  if (deflateReset (z) == Z_OK && pool_give (deflaters, &n_deflaters, z))
    return;
  deflateEnd (z);
  g_free (z);
}

static z_stream *
inflater_get (void)
{
  z_stream *z = pool_take (inflaters, &n_inflaters);

  if (z != NULL)
    return z;
  z = g_new0 (z_stream, 1);
  if (inflateInit2 (z, -WINDOW_BITS) != Z_OK)
    {
      g_free (z);
      return NULL;
    }
  return z;
}

static void
inflater_put (z_stream *z)
{
  if (inflateReset (z) == Z_OK && pool_give (inflaters, &n_inflaters, z))
    return;
  inflateEnd (z);
  g_free (z);
}

/* Negotiation */

static gboolean
is_space (char c)
{
  return c == ' ' || c == '\t';
}

/* The end of the element starting at @p: the next @sep outside a quoted
 * string, or @end. */
static const char *
element_end (const char *p,
             const char *end,
             char        sep)
{
  gboolean quoted = FALSE;

  for (; p < end; p++)
    {
      if (quoted && *p == '\\' && p + 1 < end)
        p++;
      else if (*p == '"')
        quoted = !quoted;
      else if (!quoted && *p == sep)
        break;
    }
  return p;
}

static void
trim (const char **p,
      const char **end)
{
  while (*p < *end && is_space (**p))
    (*p)++;
  while (*end > *p && is_space ((*end)[-1]))
    (*end)--;
}

static gboolean
span_is (const char *p,
         const char *end,
         const char *word)
{
  gsize n = strlen (word);

  return (gsize) (end - p) == n && g_ascii_strncasecmp (p, word, n) == 0;
}

/* A window-bits value: 8..15, as a token or a quoted string. -1 if
 * invalid. */
static int
window_bits (const char *v,
             const char *end)
{
  int bits = 0;

  if (end - v >= 2 && *v == '"' && end[-1] == '"')
    {
      v++;
      end--;
    }
  if (v == end || end - v > 2 || *v == '0')
    return -1;
  for (; v < end; v++)
    {
      if (!g_ascii_isdigit (*v))
        return -1;
      bits = bits * 10 + (*v - '0');
    }
  return bits >= 8 && bits <= 15 ? bits : -1;
}

/* The parameters of one permessage-deflate offer, from @p (after its
 * name) to @end: whether we accept it. */
static gboolean
offer_acceptable (const char *p,
                  const char *end)
{
  enum { SNCT = 1, CNCT = 2, SMWB = 4, CMWB = 8 };
  guint seen = 0;

  while (p < end)
    {
      const char *pend;
      const char *name;
      const char *name_end;
      const char *value = NULL;
      const char *value_end = NULL;
      guint which;

      if (*p != ';')
        return FALSE;
      p++;
      pend = element_end (p, end, ';');
      name = p;
      name_end = element_end (p, pend, '=');
      if (name_end < pend)
        {
          value = name_end + 1;
          value_end = pend;
          trim (&value, &value_end);
        }
      trim (&name, &name_end);
      p = pend;

      if (span_is (name, name_end, "server_no_context_takeover"))
        which = SNCT;
      else if (span_is (name, name_end, "client_no_context_takeover"))
        which = CNCT;
      else if (span_is (name, name_end, "server_max_window_bits"))
        which = SMWB;
      else if (span_is (name, name_end, "client_max_window_bits"))
        which = CMWB;
      else
        return FALSE;  /* unknown parameter (RFC 7692, 5.1) */
      if (seen & which)
        return FALSE;  /* twice */
      seen |= which;

      switch (which)
        {
        case SNCT:
        case CNCT:
          if (value != NULL)
            return FALSE;
          break;
        case SMWB:
          /* We compress with a 15-bit window only. */
          if (value == NULL || window_bits (value, value_end) != 15)
            return FALSE;
          break;
        case CMWB:
        default:
          /* We inflate with a 15-bit window: any client window fits. */
          if (value != NULL && window_bits (value, value_end) < 0)
            return FALSE;
          break;
        }
    }
  return TRUE;
}

#define MAX_OFFERS 16

gboolean
engine_io_ws_deflate_negotiate (const char *extensions)
{
  const char *p = extensions;
  const char *end;

  if (extensions == NULL)
    return FALSE;
  end = p + strlen (p);
  for (guint i = 0; i < MAX_OFFERS && p < end; i++)
    {
      const char *oend = element_end (p, end, ',');
      const char *name = p;
      const char *name_end = element_end (p, oend, ';');
      const char *params = name_end;
      const char *params_end = oend;

      trim (&name, &name_end);
      trim (&params, &params_end);
      if (span_is (name, name_end, "permessage-deflate") &&
          offer_acceptable (params, params_end))
        return TRUE;
      p = oend < end ? oend + 1 : end;
    }
  return FALSE;
}

/* Compression */

/* Runs deflate() over @len bytes at @in with @flush at the end, the
 * output appended at *@pos of *@out (grown as needed). */
static gboolean
run_deflate (z_stream     *z,
             const guint8 *in,
             gsize         len,
             int           flush,
             guint8      **out,
             gsize        *cap,
             gsize        *pos)
{
  do
    {
      gsize in_chunk = MIN (len, CHUNK);
      int f = in_chunk == len ? flush : Z_NO_FLUSH;

      z->next_in = (Bytef *) in;
      z->avail_in = (uInt) in_chunk;
      do
        {
          uInt avail;
          int ret;

          if (*pos == *cap)
            {
              *cap *= 2;
              *out = g_realloc (*out, *cap);
            }
          avail = (uInt) MIN (*cap - *pos, CHUNK);
          z->next_out = *out + *pos;
          z->avail_out = avail;
          ret = deflate (z, f);
          if (ret == Z_STREAM_ERROR)
            return FALSE;
          *pos += avail - z->avail_out;
        }
      while (z->avail_out == 0);
      in += in_chunk;
      len -= in_chunk;
    }
  while (len > 0);
  return TRUE;
}

guint8 *
engine_io_ws_deflate_message (gint          prefix,
                              const guint8 *data,
                              gsize         len,
                              gsize        *out_len)
{
  z_stream *z = deflater_get ();
  guint8 *out;
  gsize cap;
  gsize pos = 0;
  gboolean ok;

  *out_len = 0;
  if (z == NULL)
    return NULL;
  cap = (gsize) deflateBound (z, (uLong) MIN (len, CHUNK)) + 16 + (len > CHUNK ? len - CHUNK : 0);
  out = g_malloc (cap);
  if (prefix >= 0)
    {
      guint8 b = (guint8) prefix;

      ok = run_deflate (z, &b, 1, Z_NO_FLUSH, &out, &cap, &pos);
    }
  else
    ok = TRUE;
  ok = ok && run_deflate (z, data, len, Z_SYNC_FLUSH, &out, &cap, &pos);
  deflater_put (z);
  /* A sync flush ends with an empty stored block: 00 00 ff ff, which
   * the receiver appends back (RFC 7692, 7.2.1). */
  if (!ok || pos < 4 || memcmp (out + pos - 4, "\x00\x00\xff\xff", 4) != 0)
    {
      g_free (out);
      return NULL;
    }
  *out_len = pos - 4;
  /* The wire queue counts what it holds at its compressed size: do not
   * keep the room deflateBound() asked for. */
  if (cap - *out_len > 4096)
    out = g_realloc (out, MAX (*out_len, 1));
  return out;
}

guint16
engine_io_ws_inflate_message (const guint8 *data,
                              gsize         len,
                              guint64       max_out,
                              guint8      **out,
                              gsize        *out_len)
{
  static const guint8 tail[4] = { 0x00, 0x00, 0xff, 0xff };
  const guint8 *pieces[2] = { data, tail };
  gsize lens[2] = { len, sizeof tail };
  /* One byte more than allowed: producing it means "too big". */
  gsize limit = (gsize) MIN (max_out, (guint64) G_MAXSIZE - 1) + 1;
  gsize cap = MIN (limit, MAX ((gsize) 4096, len < G_MAXSIZE / 4 ? len * 4 : len));
  gsize pos = 0;
  guint16 code = 0;
  gboolean full = FALSE;
  gboolean ended = FALSE;
  z_stream *z = inflater_get ();
  guint8 *buf;

  *out = NULL;
  *out_len = 0;
  if (z == NULL)
    return 1011;
  buf = g_malloc (cap);
  for (guint i = 0; i < G_N_ELEMENTS (pieces) && !ended && code == 0; i++)
    {
      const guint8 *p = pieces[i];
      gsize left = lens[i];

      z->avail_in = 0;
      while (left > 0 || z->avail_in > 0 || full)
        {
          uInt avail;
          int ret;

          if (z->avail_in == 0 && left > 0)
            {
              gsize chunk = MIN (left, CHUNK);

              z->next_in = (Bytef *) p;
              z->avail_in = (uInt) chunk;
              p += chunk;
              left -= chunk;
            }
          if (pos == cap)
            {
              if (cap == limit)
                {
                  code = 1009;  /* inflates past the limit: stop here */
                  break;
                }
              cap = cap > limit / 2 ? limit : cap * 2;
              buf = g_realloc (buf, cap);
            }
          avail = (uInt) MIN (cap - pos, CHUNK);
          z->next_out = buf + pos;
          z->avail_out = avail;
          ret = inflate (z, Z_NO_FLUSH);
          pos += avail - z->avail_out;
          full = z->avail_out == 0;
          if (ret == Z_STREAM_END)
            {
              /* The client ended the stream (a final block): what
               * follows, our tail included, is ignored. */
              ended = TRUE;
              break;
            }
          if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_STREAM_ERROR)
            {
              code = 1007;
              break;
            }
          if (ret == Z_MEM_ERROR)
            {
              code = 1011;
              break;
            }
          if (ret == Z_BUF_ERROR && !full && z->avail_in > 0)
            {
              code = 1007;  /* no progress possible (never expected) */
              break;
            }
        }
    }
  if (code == 0 && pos > max_out)
    code = 1009;
  inflater_put (z);
  if (code != 0)
    {
      g_free (buf);
      return code;
    }
  *out = buf;
  *out_len = pos;
  return 0;
}
