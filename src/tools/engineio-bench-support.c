/* engineio-bench-support.c: errors, buffers, the latency histogram, the
 * checked payloads and base64 of engineio-bench.
 *
 * SPDX-License-Identifier: MIT
 */
#include "engineio-bench-private.h"

/* ---------------------------------------------------------------- util */

void
die (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  fputs ("engineio-bench: ", stderr);
  vfprintf (stderr, format, args);
  fputc ('\n', stderr);
  va_end (args);
  exit (2);
}

/* The first few failures are printed; the rest are only counted. */
void
report (const char *format,
        ...)
{
  va_list args;
  char line[512];

  if (__atomic_fetch_add (&g_printed, 1, __ATOMIC_RELAXED) >= MAX_PRINTED)
    return;
  va_start (args, format);
  vsnprintf (line, sizeof line, format, args);
  va_end (args);
  fprintf (stderr, "engineio-bench: %s\n", line);
}

double
thread_cpu_s (int who)
{
  struct rusage ru;

  getrusage (who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void
buf_reserve (Buf    *b,
             size_t  extra)
{
  size_t need = b->len + extra;
  size_t cap;

  if (need <= b->cap)
    return;
  cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  b->data = realloc (b->data, cap);
  if (b->data == NULL)
    die ("out of memory");
  b->cap = cap;
}

void
buf_append (Buf        *b,
            const void *data,
            size_t      len)
{
  buf_reserve (b, len);
  memcpy (b->data + b->len, data, len);
  b->len += len;
}

void
buf_printf (Buf        *b,
            const char *format,
            ...)
{
  va_list args;
  int n;

  buf_reserve (b, 512);
  va_start (args, format);
  n = vsnprintf (b->data + b->len, b->cap - b->len, format, args);
  va_end (args);
  if (n < 0)
    die ("formatting failed");
  if ((size_t) n >= b->cap - b->len)
    {
      buf_reserve (b, (size_t) n + 1);
      va_start (args, format);
      vsnprintf (b->data + b->len, b->cap - b->len, format, args);
      va_end (args);
    }
  b->len += (size_t) n;
}

void
buf_free (Buf *b)
{
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ----------------------------------------------------------- histogram */

void
hist_merge (Hist       *into,
            const Hist *from)
{
  for (guint i = 0; i < HIST_BUCKETS; i++)
    into->counts[i] += from->counts[i];
  into->total += from->total;
  if (from->max > into->max)
    into->max = from->max;
}

/* The upper bound of the bucket holding the @p quantile, capped at max. */
guint64
hist_quantile (const Hist *h,
               double      p)
{
  guint64 target, seen = 0;

  if (h->total == 0)
    return 0;
  target = (guint64) (p * h->total + 0.999999);
  if (target < 1)
    target = 1;
  for (guint i = 0; i < HIST_BUCKETS; i++)
    {
      seen += h->counts[i];
      if (seen >= target)
        {
          guint64 upper;

          if (i < 2 * HIST_HALF)
            upper = i;
          else
            {
              guint shift = i / HIST_HALF - 1;
              guint64 m = i - shift * HIST_HALF;

              upper = ((m + 1) << shift) - 1;
            }
          return MIN (upper, h->max);
        }
    }
  return h->max;
}

/* ------------------------------------------------------------- payload */

const char hex_digits[17] = "0123456789abcdef";

gboolean
payload_seq (const char *p,
             size_t      len,
             guint64    *seq)
{
  guint64 v = 0;

  if (len < 16)
    return FALSE;
  for (int i = 0; i < 16; i++)
    {
      const char *d = memchr (hex_digits, p[i], 16);

      if (d == NULL || p[i] == '\0')
        return FALSE;
      v = v << 4 | (guint64) (d - hex_digits);
    }
  *seq = v;
  return TRUE;
}

VerrKind
payload_check (const char *p,
               size_t      len,
               guint64     seq)
{
  size_t h = MIN (16, cfg.size);
  guint64 s = seq;

  if (len != cfg.size)
    return VERR_LENGTH;
  for (size_t i = h; i > 0; i--)
    {
      if (p[i - 1] != hex_digits[s & 15])
        {
          guint64 got;

          if (payload_seq (p, len, &got) && got != seq)
            return VERR_ORDER;
          return VERR_CONTENT;
        }
      s >>= 4;
    }
  /* payload_write shifted seq by 4·h bits before taking the filler offset */
  if (memcmp (p + h, g_filler + (s & 63), len - h) != 0)
    return VERR_CONTENT;
  return VERR_NONE;
}

void
filler_init (void)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  size_t n = cfg.size + 64;

  g_filler = malloc (n + 1);
  if (g_filler == NULL)
    die ("out of memory");
  for (size_t i = 0; i < n; i++)
    {
      if (cfg.binary)
        g_filler[i] = (char) ((i * 131 + (i >> 8) * 17 + 7) & 0xff);
      else
        g_filler[i] = alphabet[(i * 7 + i / 62) % 62];
    }
}

/* -------------------------------------------------------------- base64 */

static const char b64_chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
b64_len (size_t n)
{
  return (n + 2) / 3 * 4;
}

void
b64_encode (char          *out,
            const guint8  *in,
            size_t         n)
{
  size_t i = 0;

  for (; i + 3 <= n; i += 3)
    {
      guint32 v = (guint32) in[i] << 16 | (guint32) in[i + 1] << 8 | in[i + 2];

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = b64_chars[(v >> 6) & 63];
      *out++ = b64_chars[v & 63];
    }
  if (n - i == 1)
    {
      guint32 v = (guint32) in[i] << 16;

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = '=';
      *out++ = '=';
    }
  else if (n - i == 2)
    {
      guint32 v = (guint32) in[i] << 16 | (guint32) in[i + 1] << 8;

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = b64_chars[(v >> 6) & 63];
      *out++ = '=';
    }
}

static signed char b64_rev[256];

void
b64_init (void)
{
  memset (b64_rev, -1, sizeof b64_rev);
  for (int i = 0; i < 64; i++)
    b64_rev[(guint8) b64_chars[i]] = (signed char) i;
}

/* Returns the decoded length, or -1 on bad input. */
gssize
b64_decode (guint8     *out,
            const char *in,
            size_t      n)
{
  guint32 acc = 0;
  int bits = 0;
  size_t o = 0;

  while (n > 0 && in[n - 1] == '=')
    n--;
  for (size_t i = 0; i < n; i++)
    {
      int v = b64_rev[(guint8) in[i]];

      if (v < 0)
        return -1;
      acc = acc << 6 | (guint32) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (guint8) (acc >> bits);
        }
    }
  return (gssize) o;
}

