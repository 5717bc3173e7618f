/* engineio-jsonp.c: the body of a v3 JSONP POST and the script of a JSONP
 * poll response (see engineio-jsonp-private.h)
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-error.h"
#include "engineio-jsonp-private.h"

GBytes *
engine_io_jsonp_decode_post (GBytes  *body,
                             GError **error)
{
  gsize size;
  const char *data = g_bytes_get_data (body, &size);
  /* An empty body has no data pointer: g_strndup() would give NULL. */
  g_autofree char *text = size > 0 ? g_strndup (data, size) : g_strdup ("");
  g_autoptr(GHashTable) form = NULL;
  const char *d;
  GString *out;

  form = g_uri_parse_params (text, -1, "&", G_URI_PARAMS_WWW_FORM, error);
  if (form == NULL)
    return NULL;
  d = g_hash_table_lookup (form, "d");
  if (d == NULL)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE,
                   "JSONP POST body has no “d” field at byte offset 0");
      return NULL;
    }
  out = g_string_sized_new (strlen (d));
  for (const char *p = d; *p; p++)
    {
      if (p[0] == '\\' && p[1] == '\\' && p[2] == 'n')
        {
          g_string_append (out, "\\n");   /* an escaped literal backslash-n */
          p += 2;
        }
      else if (p[0] == '\\' && p[1] == 'n')
        {
          g_string_append_c (out, '\n');  /* an escaped newline */
          p += 1;
        }
      else
        g_string_append_c (out, *p);
    }
  return g_string_free_to_bytes (out);
}

/* JSONP (v3): ___eio[N]("<payload as a JS string>"); */
GBytes *
engine_io_jsonp_wrap (const char *index,
                      GBytes     *payload)
{
  gsize size;
  const char *data = g_bytes_get_data (payload, &size);
  GString *out = g_string_sized_new (size + 32);
  const char *p = data;
  const char *end = data + size;

  g_string_append (out, "___eio[");
  for (const char *d = index; *d; d++)
    if (g_ascii_isdigit (*d))
      g_string_append_c (out, *d);
  g_string_append (out, "](\"");
  while (p < end)
    {
      guchar c = (guchar) *p;
      if (c == '"' || c == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, c);
        }
      else if (c < 0x20)
        g_string_append_printf (out, "\\u%04x", c);
      else if (c == 0xE2 && end - p >= 3 && (guchar) p[1] == 0x80 &&
               ((guchar) p[2] == 0xA8 || (guchar) p[2] == 0xA9))
        {
          /* U+2028 / U+2029 end lines in older JavaScript */
          g_string_append (out, (guchar) p[2] == 0xA8 ? "\\u2028" : "\\u2029");
          p += 2;
        }
      else
        g_string_append_c (out, c);
      p++;
    }
  g_string_append (out, "\");");
  return g_string_free_to_bytes (out);
}
