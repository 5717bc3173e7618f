/* test-compression.c: HTTP compression of polling responses
 *
 * The negotiation of Accept-Encoding (a pure function, table-driven), then
 * a real server on 127.0.0.1: a session sent a message of some size, the
 * poll that carries it asked with various Accept-Encoding values; what
 * comes back is decoded with GIO's zlib converter (not ours) and compared.
 * Both threading modes (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <gio/gio.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio-http-compress-private.h"

/* ---------------------------------------------------------------- negotiation */

static void
test_negotiate (void)
{
  static const struct { const char *header; EngineIOCoding coding; } cases[] = {
    { NULL, ENGINE_IO_CODING_IDENTITY },
    { "", ENGINE_IO_CODING_IDENTITY },
    { "gzip", ENGINE_IO_CODING_GZIP },
    { "deflate", ENGINE_IO_CODING_DEFLATE },
    { "gzip, deflate, br", ENGINE_IO_CODING_GZIP },          /* browsers */
    { "gzip, deflate, br, zstd", ENGINE_IO_CODING_GZIP },
    { "deflate, gzip", ENGINE_IO_CODING_GZIP },              /* a tie: gzip */
    { "gzip;q=0.5, deflate", ENGINE_IO_CODING_DEFLATE },
    { "gzip ; q=0.2 , deflate ; q=0.3", ENGINE_IO_CODING_DEFLATE },
    { "gzip;q=0, deflate;q=0", ENGINE_IO_CODING_IDENTITY },
    { "gzip;q=0.000", ENGINE_IO_CODING_IDENTITY },
    { "gzip;q=1.000", ENGINE_IO_CODING_GZIP },
    { "gzip;q=0.001", ENGINE_IO_CODING_GZIP },
    { "*", ENGINE_IO_CODING_GZIP },
    { "*;q=0", ENGINE_IO_CODING_IDENTITY },
    { "*, gzip;q=0", ENGINE_IO_CODING_DEFLATE },
    { "deflate;q=0.5, *;q=0.9", ENGINE_IO_CODING_GZIP },
    { "br", ENGINE_IO_CODING_IDENTITY },
    { "identity", ENGINE_IO_CODING_IDENTITY },
    { "GZIP", ENGINE_IO_CODING_GZIP },
    { "x-gzip", ENGINE_IO_CODING_GZIP },
    { "gzipx, deflatex", ENGINE_IO_CODING_IDENTITY },
    { "gzip;level=9", ENGINE_IO_CODING_GZIP },               /* other parameters ignored */
    /* invalid weights: the element is ignored */
    { "gzip;q=1.001", ENGINE_IO_CODING_IDENTITY },
    { "gzip;q=2", ENGINE_IO_CODING_IDENTITY },
    { "gzip;q=abc, deflate", ENGINE_IO_CODING_DEFLATE },
    { "gzip;q=0.12345", ENGINE_IO_CODING_IDENTITY },
    { "gzip;q=", ENGINE_IO_CODING_IDENTITY },
    { ",,, ;;; ,", ENGINE_IO_CODING_IDENTITY },
    { ";q=1", ENGINE_IO_CODING_IDENTITY },
  };

  g_test_summary ("Accept-Encoding negotiation: gzip or deflate by the client's weights "
                  "(explicit or through *), gzip on a tie, invalid weights ignored");
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      EngineIOCoding got = engine_io_coding_negotiate (cases[i].header);

      if (got != cases[i].coding)
        g_test_fail_printf ("“%s”: %s, expected %s", cases[i].header ? cases[i].header : "(none)",
                            engine_io_coding_to_string (got),
                            engine_io_coding_to_string (cases[i].coding));
    }

  /* A long header (libmicrohttpd bounds its size) is read once, in time
   * linear in its length. */
  {
    GString *big = g_string_new (NULL);

    for (guint i = 0; i < 20000; i++)
      g_string_append (big, i % 2 ? ", ;q=0.5" : "br;q=0.1");
    g_string_append (big, ", deflate");
    g_assert_cmpint (engine_io_coding_negotiate (big->str), ==, ENGINE_IO_CODING_DEFLATE);
    g_string_free (big, TRUE);
  }
}

/* ---------------------------------------------------------------- a server */

/* The shared loopback fixture: sockets kept, no ::message handler. */
typedef TestLoopback Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->watch = TEST_WATCH_NO_MESSAGE;
  f->keep_sockets = TRUE;
}

static void
fixture_listen (Fixture *f)
{
  test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
}

/* Text of @n bytes that compresses well but is not trivial. */
static char *
make_text (gsize n)
{
  char *text = g_malloc (n + 1);

  for (gsize i = 0; i < n; i++)
    text[i] = "The quick brown fox jumps over the lazy dog. "[i % 45];
  text[n] = '\0';
  return text;
}

static GBytes *
decompress (GBytes                *body,
            GZlibCompressorFormat  format,
            GError               **error)
{
  g_autoptr(GZlibDecompressor) decompressor = g_zlib_decompressor_new (format);
  g_autoptr(GInputStream) raw = g_memory_input_stream_new_from_bytes (body);
  g_autoptr(GInputStream) in = g_converter_input_stream_new (raw, G_CONVERTER (decompressor));
  g_autoptr(GOutputStream) out = g_memory_output_stream_new_resizable ();

  if (g_output_stream_splice (out, in, G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE |
                                       G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, error) < 0)
    return NULL;
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
}

/* Opens a polling session, has the server send @text (and @binary, if
 * given) on it, then polls with @accept_encoding (NULL: no header).
 * Returns the response. */
static TestResponse *
poll_after_send (Fixture    *f,
                 const char *text,
                 GBytes     *binary,
                 const char *accept_encoding)
{
  g_autoptr(TestOpenPacket) open = test_eio_polling_open (f->http, 4);
  g_autoptr(GError) error = NULL;
  g_autofree char *target = NULL;
  const char *headers[] = { "Accept-Encoding", accept_encoding, NULL };
  EngineIOSocket *socket;
  TestResponse *response;

  test_require_val (open != NULL, NULL);
  socket = g_async_queue_timeout_pop (f->sockets, TEST_TIMEOUT_MS * 1000);
  test_require_val (socket != NULL, NULL);
  if (text != NULL)
    g_assert_true (engine_io_socket_send_text (socket, text, &error));
  g_assert_no_error (error);
  if (binary != NULL)
    g_assert_true (engine_io_socket_send_binary (socket, binary, &error));
  g_assert_no_error (error);
  g_object_unref (socket);

  target = test_eio_target (4, "polling", open->sid);
  response = test_http_request (f->http, "GET", target,
                                accept_encoding != NULL ? headers : NULL, NULL, -1,
                                TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  test_require_val (response != NULL, NULL);
  g_assert_cmpuint (response->status, ==, 200);
  return response;
}

static void
assert_body (TestResponse          *response,
             const char            *coding,
             GZlibCompressorFormat  format,
             const void            *expected,
             gsize                  expected_len)
{
  const char *got = test_response_header (response, "content-encoding");
  g_autoptr(GBytes) plain = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_cmpstr (got, ==, coding);
  if (coding == NULL)
    {
      g_assert_true (test_response_body_equal (response, expected, expected_len));
      return;
    }
  g_assert_cmpstr (test_response_header (response, "vary"), ==, "Accept-Encoding");
  g_assert_cmpuint (g_bytes_get_size (response->body), <, expected_len);
  plain = decompress (response->body, format, &error);
  g_assert_no_error (error);
  g_assert_nonnull (plain);
  g_assert_cmpmem (g_bytes_get_data (plain, NULL), g_bytes_get_size (plain), expected, expected_len);
}

static void
test_gzip (Fixture       *f,
           gconstpointer  data)
{
  g_autofree char *text = make_text (4000);
  g_autofree char *packet = g_strconcat ("4", text, NULL);
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("A poll response of 4001 bytes to a browser's Accept-Encoding is gzip, "
                  "with Vary, and decodes (GIO's zlib) to the payload");
  fixture_listen (f);
  response = poll_after_send (f, text, NULL, "gzip, deflate, br, zstd");
  test_require (response != NULL);
  assert_body (response, "gzip", G_ZLIB_COMPRESSOR_FORMAT_GZIP, packet, strlen (packet));
  g_assert_cmpuint (g_bytes_get_size (response->body), <, 200);
}

static void
test_deflate (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *text = make_text (100000);
  g_autofree char *packet = g_strconcat ("4", text, NULL);
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("“gzip;q=0, deflate”: a 100 kB poll response is deflate (zlib format) and "
                  "decodes to the payload");
  fixture_listen (f);
  response = poll_after_send (f, text, NULL, "gzip;q=0, deflate");
  test_require (response != NULL);
  assert_body (response, "deflate", G_ZLIB_COMPRESSOR_FORMAT_ZLIB, packet, strlen (packet));
}

static void
test_several_packets (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *text = make_text (3000);
  static const guint8 bin[] = { 0, 1, 2, 3, 0xff, 0xfe };
  g_autoptr(GBytes) binary = g_bytes_new_static (bin, sizeof bin);
  g_autofree char *expected = g_strconcat ("4", text, "\x1e" "bAAECA//+", NULL);
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("A payload of a text and a binary packet is compressed whole and decodes to "
                  "both, separator and base64 included");
  fixture_listen (f);
  response = poll_after_send (f, text, binary, "gzip");
  test_require (response != NULL);
  assert_body (response, "gzip", G_ZLIB_COMPRESSOR_FORMAT_GZIP, expected, strlen (expected));
}

static void
test_identity_cases (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *text = make_text (4000);
  g_autofree char *packet = g_strconcat ("4", text, NULL);

  g_test_summary ("No compression without Accept-Encoding, with only unknown codings, with "
                  "both refused, or below the 1024-byte threshold");
  fixture_listen (f);
  {
    g_autoptr(TestResponse) response = poll_after_send (f, text, NULL, NULL);
    test_require (response != NULL);
    assert_body (response, NULL, 0, packet, strlen (packet));
    /* The representation depends on Accept-Encoding: caches must know. */
    g_assert_cmpstr (test_response_header (response, "vary"), ==, "Accept-Encoding");
  }
  {
    g_autoptr(TestResponse) response = poll_after_send (f, text, NULL, "br, zstd");
    test_require (response != NULL);
    assert_body (response, NULL, 0, packet, strlen (packet));
  }
  {
    g_autoptr(TestResponse) response = poll_after_send (f, text, NULL, "gzip;q=0, deflate;q=0, *;q=0");
    test_require (response != NULL);
    assert_body (response, NULL, 0, packet, strlen (packet));
  }
  {
    /* 1022 bytes of text: a 1023-byte body, one under the threshold. */
    g_autofree char *small = make_text (1022);
    g_autofree char *small_packet = g_strconcat ("4", small, NULL);
    g_autoptr(TestResponse) response = poll_after_send (f, small, NULL, "gzip");
    test_require (response != NULL);
    assert_body (response, NULL, 0, small_packet, strlen (small_packet));
  }
  {
    /* 1023 bytes: a 1024-byte body, at the threshold. */
    g_autofree char *at = make_text (1023);
    g_autofree char *at_packet = g_strconcat ("4", at, NULL);
    g_autoptr(TestResponse) response = poll_after_send (f, at, NULL, "gzip");
    test_require (response != NULL);
    assert_body (response, "gzip", G_ZLIB_COMPRESSOR_FORMAT_GZIP, at_packet, strlen (at_packet));
  }
}

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *text = make_text (4000);
  g_autofree char *packet = g_strconcat ("4", text, NULL);
  gboolean on = FALSE;
  guint threshold = 0;

  g_test_summary ("http-compression is on by default with a 1024-byte threshold; turned off, "
                  "a client asking for gzip gets the payload as it is");
  g_object_get (f->server, "http-compression", &on, "http-compression-threshold", &threshold, NULL);
  g_assert_true (on);
  g_assert_cmpuint (threshold, ==, 1024);
  g_object_set (f->server, "http-compression", FALSE, NULL);
  fixture_listen (f);
  {
    g_autoptr(TestResponse) response = poll_after_send (f, text, NULL, "gzip, deflate");
    test_require (response != NULL);
    assert_body (response, NULL, 0, packet, strlen (packet));
  }
}

static void
test_threshold (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *text = make_text (300);
  g_autofree char *packet = g_strconcat ("4", text, NULL);

  g_test_summary ("http-compression-threshold 100: a 301-byte body is compressed; a body "
                  "that would not get smaller (“4hi”, threshold 0) goes as it is");
  g_object_set (f->server, "http-compression-threshold", 100u, NULL);
  fixture_listen (f);
  {
    g_autoptr(TestResponse) response = poll_after_send (f, text, NULL, "gzip");
    test_require (response != NULL);
    assert_body (response, "gzip", G_ZLIB_COMPRESSOR_FORMAT_GZIP, packet, strlen (packet));
  }
  engine_io_server_close (f->server);
  g_clear_object (&f->server);
  g_clear_pointer (&f->http, test_http_free);
  f->server = test_server_new ();
  test_loopback_watch_server (f, f->server);
  g_object_set (f->server, "http-compression-threshold", 0u, NULL);
  fixture_listen (f);
  {
    g_autoptr(TestResponse) response = poll_after_send (f, "hi", NULL, "gzip");
    test_require (response != NULL);
    assert_body (response, NULL, 0, "4hi", 3);
    g_assert_cmpstr (test_response_header (response, "vary"), ==, "Accept-Encoding");
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/compression/negotiate", test_negotiate);
#define ADD(path, func) \
  g_test_add ("/compression/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("gzip", test_gzip);
  ADD ("deflate", test_deflate);
  ADD ("several-packets", test_several_packets);
  ADD ("identity", test_identity_cases);
  ADD ("properties", test_properties);
  ADD ("threshold", test_threshold);
#undef ADD
  return g_test_run ();
}
