/* test-jsonp.c: the body of a v3 JSONP POST and the script of a JSONP poll
 * response (src/core/engineio-jsonp.c), without sockets
 *
 * Form decoding (percent escapes, `+`, other fields), the client's
 * newline escaping undone after it (`\n` is a newline, `\\n` a literal
 * backslash-n, any other backslash kept), and the errors: no `d` field
 * (an empty body included) and a form GLib rejects. The loopback side
 * (a v3 session posting with j=N) is /server/v3/jsonp in test-server.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <glib.h>

#include "engineio-error.h"
#include "engineio-jsonp-private.h"

/* Decodes @body (NUL-terminated here) and returns the payload as a string,
 * or NULL with @error set. */
static char *
decode (const char  *body,
        GError     **error)
{
  g_autoptr(GBytes) in = g_bytes_new (body, strlen (body));
  g_autoptr(GBytes) out = engine_io_jsonp_decode_post (in, error);
  gsize size;
  const char *data;

  if (out == NULL)
    return NULL;
  data = g_bytes_get_data (out, &size);
  g_assert_null (memchr (data != NULL ? data : "", '\0', size));
  return g_strndup (data != NULL ? data : "", size);
}

static void
check (const char *body,
       const char *expected)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = decode (body, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (payload, ==, expected);
}

static void
test_jsonp_form (void)
{
  g_test_summary ("The payload is the form's `d` field, percent escapes and `+` decoded, "
                  "other fields ignored, in any order");

  check ("d=6:4hello", "6:4hello");
  check ("d=", "");
  check ("d=1%3A4+x%26y%3Dz", "1:4 x&y=z");
  check ("d=%E2%82%AC", "\xe2\x82\xac");
  check ("x=1&d=2:4a&y=2", "2:4a");
}

static void
test_jsonp_newlines (void)
{
  g_test_summary ("engine.io-client 3.x escapes newlines: `\\n` becomes a newline, `\\\\n` a "
                  "literal backslash-n, other backslashes stay; after form decoding");

  check ("d=4a\\nb", "4a\nb");
  check ("d=4a\\\\nb", "4a\\nb");
  check ("d=4a\\\\\\nb", "4a\\\\nb");
  check ("d=4a\\b\\", "4a\\b\\");
  check ("d=%5Cn", "\n");
  check ("d=%5C%5Cn", "\\n");
  check ("d=\\n\\n", "\n\n");
}

static void
test_jsonp_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = NULL;

  g_test_summary ("No `d` field (an empty body included) is ENGINE_IO_ERROR_PARSE; a form "
                  "GLib cannot parse is its G_URI_ERROR");

  payload = decode ("x=1", &error);
  g_assert_null (payload);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE);
  g_assert_nonnull (strstr (error->message, "no “d” field"));
  g_clear_error (&error);

  payload = decode ("", &error);
  g_assert_null (payload);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE);
  g_clear_error (&error);

  payload = decode ("d=%zz", &error);
  g_assert_null (payload);
  g_assert_nonnull (error);
  g_assert_true (error->domain == G_URI_ERROR);
}

static void
check_wrap (const char *index,
            const char *payload,
            const char *expected)
{
  g_autoptr(GBytes) in = g_bytes_new (payload, strlen (payload));
  g_autoptr(GBytes) out = engine_io_jsonp_wrap (index, in);
  gsize size;
  const char *data = g_bytes_get_data (out, &size);

  g_assert_cmpmem (data, size, expected, strlen (expected));
}

static void
test_jsonp_wrap (void)
{
  g_test_summary ("A poll response for a JSONP client is `___eio[N](\"<payload>\");`: "
                  "only the digits of `j` kept, quotes, backslashes, control characters "
                  "and U+2028/U+2029 escaped, other UTF-8 as it is");

  check_wrap ("0", "6:4hello", "___eio[0](\"6:4hello\");");
  check_wrap ("12", "", "___eio[12](\"\");");
  check_wrap ("1\");alert(1);//", "1:4", "___eio[11](\"1:4\");");
  check_wrap ("3", "4\"\\\n\t", "___eio[3](\"4\\\"\\\\\\u000a\\u0009\");");
  check_wrap ("3", "4\xe2\x80\xa8\xe2\x80\xa9\xe2\x82\xac",
              "___eio[3](\"4\\u2028\\u2029\xe2\x82\xac\");");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/jsonp/form", test_jsonp_form);
  g_test_add_func ("/jsonp/newlines", test_jsonp_newlines);
  g_test_add_func ("/jsonp/errors", test_jsonp_errors);
  g_test_add_func ("/jsonp/wrap", test_jsonp_wrap);

  return g_test_run ();
}
