/* engineio-utf.c: UTF-8 validation and UTF-16 lengths
 *
 * Bytes in, packets out: no threads, no sockets, no main context. Every
 * decoder treats its input as hostile: it never reads out of bounds, never
 * trusts a length before checking it against the bytes that are left, and
 * reports every failure as an %ENGINE_IO_ERROR_PARSE error naming the
 * problem and its byte offset in the frame or payload.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-codec-internal.h"

/* ------------------------------------------------------------------ */
/* UTF-8 and UTF-16                                                     */
/* ------------------------------------------------------------------ */

gboolean
engine_io_utf8_validate (const char *data,
                         gsize       length,
                         gsize      *out_bad_offset)
{
  const guchar *p = (const guchar *) data;
  gsize i = 0;

  g_return_val_if_fail (data != NULL || length == 0, FALSE);

  while (i < length)
    {
      const char *end;
      gsize run_end;

      /* ASCII (NUL included) 32, then 8 bytes at a time. */
      while (length - i >= 32)
        {
          guint64 w = load64 (p + i) | load64 (p + i + 8) |
                      load64 (p + i + 16) | load64 (p + i + 24);

          if (w & HIGH_BITS)
            break;
          i += 32;
        }
      while (length - i >= 8 && (load64 (p + i) & HIGH_BITS) == 0)
        i += 8;
      while (i < length && p[i] < 0x80)
        i++;
      if (i == length)
        break;

      /* A run of bytes >= 0x80 must be whole, valid multi-byte sequences.
       * It contains no NUL, which g_utf8_validate_len() would reject. */
      run_end = i + 1;
      while (run_end < length && p[run_end] >= 0x80)
        run_end++;

      if (!g_utf8_validate_len (data + i, run_end - i, &end))
        {
          if (out_bad_offset != NULL)
            *out_bad_offset = (gsize) (end - data);
          return FALSE;
        }
      i = run_end;
    }

  if (out_bad_offset != NULL)
    *out_bad_offset = length;
  return TRUE;
}

gsize
engine_io_utf16_length (const char *utf8,
                        gsize       length)
{
  const guchar *p = (const guchar *) utf8;
  gsize units = 0;
  gsize i = 0;

  g_return_val_if_fail (utf8 != NULL || length == 0, 0);

  for (; length - i >= 8; i += 8)
    {
      guint64 w = load64 (p + i);

      units += G_LIKELY ((w & HIGH_BITS) == 0) ? 8 : utf16_units_in_word (w);
    }
  for (; i < length; i++)
    {
      if ((p[i] & 0xc0) != 0x80)
        units++;
      if (p[i] >= 0xf0)
        units++;
    }

  return units;
}
