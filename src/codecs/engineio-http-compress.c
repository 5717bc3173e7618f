/* engineio-http-compress.c: HTTP compression of polling responses
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <zlib.h>

#include "engineio-http-compress-private.h"

/* Level 1, like nginx's default gzip_comp_level: poll responses are
 * compressed on a serving thread, so speed matters more than the last
 * percent of ratio. */
#define COMPRESSION_LEVEL 1

/* The weight of one Accept-Encoding element: "q=0.5" → 500 (RFC 9110,
 * 12.4.2: at most three decimals). -1 when the parameters carry no valid
 * weight (the element is then ignored, as RFC 9110 lets us). */
static int
parse_weight (const char *params,
              const char *end)
{
  const char *p = params;

  /* Parameters: *( OWS ";" OWS name "=" value ); only q matters. */
  while (p < end)
    {
      const char *name;

      while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
        p++;
      name = p;
      while (p < end && *p != ';')
        p++;
      if (p - name >= 2 && (name[0] == 'q' || name[0] == 'Q') && name[1] == '=')
        {
          const char *v = name + 2;
          const char *vend = p;
          int weight;
          int digits = 0;

          while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
          if (v >= vend || (*v != '0' && *v != '1'))
            return -1;
          weight = (*v++ - '0') * 1000;
          if (v < vend)
            {
              if (*v++ != '.')
                return -1;
              for (int scale = 100; v < vend; v++, scale /= 10)
                {
                  if (!g_ascii_isdigit (*v) || ++digits > 3)
                    return -1;
                  weight += (*v - '0') * scale;
                }
            }
          return weight <= 1000 ? weight : -1;
        }
    }
  return 1000;
}

/**
 * engine_io_coding_negotiate:
 * @accept_encoding: (nullable): the request's `Accept-Encoding` value
 *
 * Picks the coding for a response: the one of gzip and deflate the client
 * weighs highest (explicitly, or through `*`), gzip on a tie; identity when
 * the header is absent or neither is acceptable. Reads the value once,
 * allocating nothing.
 */
EngineIOCoding
engine_io_coding_negotiate (const char *accept_encoding)
{
  int gzip = -1, deflate = -1, any = -1;
  const char *p = accept_encoding;

  if (p == NULL)
    return ENGINE_IO_CODING_IDENTITY;

  while (*p != '\0')
    {
      const char *start, *name_end, *end;
      int weight;
      gsize len;

      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      if (*p == '\0')
        break;
      start = p;
      while (*p != '\0' && *p != ',')
        p++;
      end = p;
      name_end = start;
      while (name_end < end && *name_end != ';' && *name_end != ' ' && *name_end != '\t')
        name_end++;
      weight = parse_weight (name_end, end);
      if (weight < 0)
        continue;
      len = (gsize) (name_end - start);
      /* "x-gzip" is gzip (RFC 9110, 8.4.1.3). */
      if ((len == 4 && g_ascii_strncasecmp (start, "gzip", 4) == 0) ||
          (len == 6 && g_ascii_strncasecmp (start, "x-gzip", 6) == 0))
        gzip = MAX (gzip, weight);
      else if (len == 7 && g_ascii_strncasecmp (start, "deflate", 7) == 0)
        deflate = MAX (deflate, weight);
      else if (len == 1 && *start == '*')
        any = MAX (any, weight);
    }

  if (gzip < 0)
    gzip = any;
  if (deflate < 0)
    deflate = any;
  if (gzip > 0 && gzip >= deflate)
    return ENGINE_IO_CODING_GZIP;
  if (deflate > 0)
    return ENGINE_IO_CODING_DEFLATE;
  return ENGINE_IO_CODING_IDENTITY;
}

const char *
engine_io_coding_to_string (EngineIOCoding coding)
{
  switch (coding)
    {
    case ENGINE_IO_CODING_GZIP:
      return "gzip";
    case ENGINE_IO_CODING_DEFLATE:
      return "deflate";
    case ENGINE_IO_CODING_IDENTITY:
    default:
      return "identity";
    }
}

typedef struct
{
  z_stream streams[2];   /* gzip, deflate */
  gboolean ready[2];
} ThreadStreams;

static void
thread_streams_free (gpointer data)
{
  ThreadStreams *ts = data;

  for (guint i = 0; i < G_N_ELEMENTS (ts->streams); i++)
    if (ts->ready[i])
      deflateEnd (&ts->streams[i]);
  g_free (ts);
}

static GPrivate thread_streams = G_PRIVATE_INIT (thread_streams_free);

/**
 * engine_io_coding_compress:
 * @coding: gzip or deflate
 * @body: what to compress
 *
 * Compresses @body whole with this thread's stream for @coding.
 *
 * Returns: (transfer full) (nullable): the compressed body, or %NULL when
 *   compressing would not make it smaller or zlib failed (out of memory):
 *   the caller then sends @body as it is.
 */
GBytes *
engine_io_coding_compress (EngineIOCoding  coding,
                           GBytes         *body)
{
  ThreadStreams *ts = g_private_get (&thread_streams);
  guint index;
  z_stream *zs;
  gsize size;
  const guint8 *data = g_bytes_get_data (body, &size);
  uLong bound;
  guint8 *out;
  int rc;

  g_return_val_if_fail (coding == ENGINE_IO_CODING_GZIP || coding == ENGINE_IO_CODING_DEFLATE, NULL);
  /* zlib counts in uInt; poll responses are far smaller (max-payload). */
  if (size == 0 || size > G_MAXUINT32 / 2)
    return NULL;

  if (ts == NULL)
    {
      ts = g_new0 (ThreadStreams, 1);
      g_private_set (&thread_streams, ts);
    }
  index = coding == ENGINE_IO_CODING_GZIP ? 0 : 1;
  zs = &ts->streams[index];
  if (!ts->ready[index])
    {
      memset (zs, 0, sizeof *zs);
      /* windowBits 15 (+16: the gzip wrapper); memLevel 8: zlib's default,
       * about 256 KiB per stream. */
      if (deflateInit2 (zs, COMPRESSION_LEVEL, Z_DEFLATED, index == 0 ? 15 + 16 : 15, 8,
                        Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
      ts->ready[index] = TRUE;
    }
  else if (deflateReset (zs) != Z_OK)
    return NULL;

  bound = deflateBound (zs, (uLong) size);
  out = g_try_malloc (bound);
  if (out == NULL)
    return NULL;
  zs->next_in = (Bytef *) data;
  zs->avail_in = (uInt) size;
  zs->next_out = out;
  zs->avail_out = (uInt) bound;
  rc = deflate (zs, Z_FINISH);
  if (rc != Z_STREAM_END || zs->total_out >= size)
    {
      g_free (out);
      return NULL;
    }
  return g_bytes_new_take (g_realloc (out, zs->total_out), zs->total_out);
}
