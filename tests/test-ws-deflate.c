/* test-ws-deflate.c: permessage-deflate (RFC 7692) on the WebSocket transport
 *
 * The offer parser (a pure function, table-driven), then a real server on
 * 127.0.0.1 (port 0) echoing every message, driven by the raw client of
 * wsutil.c, which compresses and decompresses here with zlib directly (not
 * with the library's code): negotiation in the 101, echoes both ways at
 * sizes around the threshold, a message compressed in fragments, RSV1
 * where it is not allowed (1002), invalid deflate data (1007), invalid
 * UTF-8 once inflated (1007), and a zip bomb (1009, with the process's
 * peak memory measured). Both threading modes (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio-ws-deflate-private.h"

#define LONG_TIMEOUT_MS (test_scaled_ms (30000))
#define MIB (1024 * 1024)
#define MAX_PAYLOAD (2 * MIB)

/* ------------------------------------------------------------------ */
/* zlib, client side                                                    */
/* ------------------------------------------------------------------ */

/* Raw deflate of @len bytes, sync flush, 00 00 ff ff stripped. */
static GBytes *
client_deflate (const void *data,
                gsize       len,
                int         level)
{
  z_stream z = { 0 };
  gsize cap = deflateBound (&z, len) + 64;
  guint8 *out;
  gsize n;

  g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
  cap = deflateBound (&z, len) + 64;
  out = g_malloc (cap);
  z.next_in = (Bytef *) data;
  z.avail_in = (uInt) len;
  z.next_out = out;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, Z_SYNC_FLUSH), ==, Z_OK);
  g_assert_cmpuint (z.avail_out, >, 0);
  n = cap - z.avail_out;
  deflateEnd (&z);
  g_assert_cmpuint (n, >=, 4);
  g_assert_cmpmem (out + n - 4, 4, "\x00\x00\xff\xff", 4);
  return g_bytes_new_take (out, n - 4);
}

/* Inflates a message (00 00 ff ff appended). */
static GBytes *
client_inflate (GBytes *compressed)
{
  z_stream z = { 0 };
  GByteArray *out = g_byte_array_new ();
  gsize len;
  const guint8 *data = g_bytes_get_data (compressed, &len);
  g_autofree guint8 *in = g_malloc (len + 4);
  guint8 chunk[65536];
  int ret;

  memcpy (in, data, len);
  memcpy (in + len, "\x00\x00\xff\xff", 4);
  g_assert_cmpint (inflateInit2 (&z, -15), ==, Z_OK);
  z.next_in = in;
  z.avail_in = (uInt) (len + 4);
  do
    {
      z.next_out = chunk;
      z.avail_out = sizeof chunk;
      ret = inflate (&z, Z_SYNC_FLUSH);
      g_assert_true (ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
      g_byte_array_append (out, chunk, sizeof chunk - z.avail_out);
    }
  while (z.avail_out == 0 || z.avail_in > 0);
  inflateEnd (&z);
  return g_byte_array_free_to_bytes (out);
}

/* A zip bomb: raw deflate of @total bytes of zeros (a multiple of 1 MiB),
 * built without compressing them all: after a first block, a block that
 * encodes 1 MiB of zeros by back-references only is repeated. */
static GBytes *
zip_bomb (gsize total)
{
  g_autofree guint8 *zeros = g_malloc0 (MIB);
  z_stream z = { 0 };
  gsize cap = 2 * MIB;
  g_autofree guint8 *first = g_malloc (cap);
  g_autofree guint8 *block = g_malloc (cap);
  gsize first_len, block_len;
  GByteArray *out = g_byte_array_new ();

  g_assert_cmpint (deflateInit2 (&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
  z.next_in = zeros;
  z.avail_in = MIB;
  z.next_out = first;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, Z_SYNC_FLUSH), ==, Z_OK);
  first_len = cap - z.avail_out;
  z.next_in = zeros;
  z.avail_in = MIB;
  z.next_out = block;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, Z_SYNC_FLUSH), ==, Z_OK);
  block_len = cap - z.avail_out;
  deflateEnd (&z);

  g_byte_array_append (out, first, (guint) first_len);
  for (gsize i = 1; i < total / MIB; i++)
    g_byte_array_append (out, block, (guint) block_len);
  g_byte_array_set_size (out, out->len - 4);  /* the last 00 00 ff ff */
  return g_byte_array_free_to_bytes (out);
}

/* ------------------------------------------------------------------ */
/* The offer parser                                                     */
/* ------------------------------------------------------------------ */

static void
test_negotiate (void)
{
  static const struct { const char *header; gboolean accepted; } cases[] = {
    { NULL, FALSE },
    { "", FALSE },
    { "permessage-deflate", TRUE },
    { "PerMessage-Deflate", TRUE },
    { "permessage-deflate; client_max_window_bits", TRUE },                 /* Chromium, npm ws */
    { "permessage-deflate;client_max_window_bits=10", TRUE },
    { "permessage-deflate; client_max_window_bits=\"12\"", TRUE },
    { "permessage-deflate; server_no_context_takeover; client_no_context_takeover", TRUE },
    { "permessage-deflate; server_max_window_bits=15", TRUE },
    { "x-webkit-deflate-frame, permessage-deflate", TRUE },
    { "permessage-deflate; server_max_window_bits=10", FALSE },             /* we use 15 */
    { "permessage-deflate; server_max_window_bits=10, permessage-deflate", TRUE },
    { "permessage-deflate; server_max_window_bits", FALSE },                /* a value is required */
    { "permessage-deflate; client_max_window_bits=16", FALSE },
    { "permessage-deflate; client_max_window_bits=7", FALSE },
    { "permessage-deflate; client_max_window_bits=09", FALSE },
    { "permessage-deflate; client_max_window_bits=abc", FALSE },
    { "permessage-deflate; server_no_context_takeover=1", FALSE },
    { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", FALSE },
    { "permessage-deflate; client_max_window_bits; client_max_window_bits=9", FALSE },
    { "permessage-deflate; foo", FALSE },
    { "permessage-deflate; foo=\"a, permessage-deflate\"", FALSE },
    { "permessage-deflatex", FALSE },
    { "deflate-frame", FALSE },
    { ",,, ;;; ,", FALSE },
  };

  g_test_summary ("Sec-WebSocket-Extensions: the first valid permessage-deflate offer is accepted; "
                  "unknown, repeated or invalid parameters decline an offer (RFC 7692, 5.1, 7.1)");
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    if (engine_io_ws_deflate_negotiate (cases[i].header) != cases[i].accepted)
      g_test_fail_printf ("“%s”: expected %s", cases[i].header ? cases[i].header : "(null)",
                          cases[i].accepted ? "accepted" : "declined");
}

/* ------------------------------------------------------------------ */
/* Fixture: an echo server                                              */
/* ------------------------------------------------------------------ */

/* The shared loopback fixture; its ::message handler echoes (messages
 * of up to 2 MiB, not recorded). */
typedef TestLoopback Fixture;

static void
fixture_start (Fixture  *f,
               gboolean  deflate)
{
  test_loopback_init (f);
  f->watch = TEST_WATCH_ECHO | TEST_WATCH_UNRECORDED;
  g_object_set (f->server,
                "per-message-deflate", deflate,
                "max-payload", (guint64) MAX_PAYLOAD,
                "ping-interval", 300000u,
                NULL);
  test_loopback_listen (f);
}

static void
setup_on (Fixture       *f,
          gconstpointer  data)
{
  fixture_start (f, TRUE);
}

static void
setup_off (Fixture       *f,
           gconstpointer  data)
{
  fixture_start (f, FALSE);
}

static void
teardown (Fixture       *f,
          gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

/* An Engine.IO v4 WebSocket session offering @offer (NULL: none); its open
 * packet read. NULL (and the test failed) otherwise. */
static TestWs *
open_session (Fixture    *f,
              const char *offer)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  const char *headers[] = { "Sec-WebSocket-Extensions", offer, NULL };
  TestWs *ws = test_ws_connect (f->port, target, offer ? headers : NULL, 0, NULL, &error);
  g_autofree char *open = NULL;

  g_assert_no_error (error);
  if (ws == NULL)
    return NULL;
  open = test_ws_read_text (ws, TEST_TIMEOUT_MS);
  if (open == NULL || open[0] != '0')
    {
      g_test_fail_printf ("expected an open packet, got “%s”", open ? open : "(nothing)");
      test_ws_free (ws);
      return NULL;
    }
  return ws;
}

static void
check_extension (TestWs     *ws,
                 const char *expected)
{
  g_assert_cmpstr (test_ws_response_header (ws, "sec-websocket-extensions"), ==, expected);
}

/* Sends a whole message (compressed with RSV1 if @compress). */
static void
send_message (TestWs       *ws,
              guint8        opcode,
              const guint8 *data,
              gsize         len,
              gboolean      compress)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) z = NULL;
  gsize zlen;
  const guint8 *zdata;

  if (!compress)
    {
      test_ws_send_frame (ws, opcode, TEST_WS_SEND_DEFAULT, data, len, &error);
      g_assert_no_error (error);
      return;
    }
  z = client_deflate (data, len, 6);
  zdata = g_bytes_get_data (z, &zlen);
  test_ws_send_frame (ws, opcode, TEST_WS_SEND_RSV1, zdata, zlen, &error);
  g_assert_no_error (error);
}

/* Reads the next data message; @compressed tells whether it had RSV1. */
static GBytes *
read_message (TestWs   *ws,
              guint8   *opcode,
              gboolean *compressed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, LONG_TIMEOUT_MS, &error);

  g_assert_no_error (error);
  if (frame == NULL)
    return NULL;
  g_assert_true (frame->fin);
  g_assert_false (frame->masked);
  g_assert_true (frame->rsv == 0 || frame->rsv == 4);
  *opcode = frame->opcode;
  *compressed = frame->rsv == 4;
  if (*compressed)
    return client_inflate (frame->payload);
  return g_bytes_ref (frame->payload);
}

/* Text: "4" then @len - 1 bytes of UTF-8 that compresses somewhat. */
static guint8 *
make_text (gsize len)
{
  static const char *words[] = { "engine", "socket", "deflate", "é", "→", "frame", " ", "\n" };
  guint8 *text = g_malloc (len + 8);
  gsize n = 0;

  text[n++] = '4';
  while (n < len)
    {
      const char *w = words[g_random_int_range (0, G_N_ELEMENTS (words))];
      gsize wl = strlen (w);

      if (n + wl > len)
        w = "x", wl = 1;
      memcpy (text + n, w, wl);
      n += wl;
    }
  return text;
}

static void
echo_case (TestWs   *ws,
           gboolean  binary,
           gsize     len,
           gboolean  compress)
{
  g_autofree guint8 *data = binary ? g_malloc (len + 1) : make_text (len);
  g_autoptr(GBytes) echo = NULL;
  guint8 opcode = 0;
  gboolean compressed = FALSE;

  if (binary)
    for (gsize i = 0; i < len; i++)
      data[i] = (guint8) (i % 251 < 200 ? 'a' + i % 7 : g_random_int ());
  send_message (ws, binary ? TEST_WS_BINARY : TEST_WS_TEXT, data, len, compress);
  echo = read_message (ws, &opcode, &compressed);
  g_assert_nonnull (echo);
  if (echo == NULL)
    return;
  g_assert_cmpuint (opcode, ==, binary ? TEST_WS_BINARY : TEST_WS_TEXT);
  /* The server compresses what is at least the threshold (1024). */
  if (compressed != (len >= 1024))
    g_test_fail_printf ("%s message of %" G_GSIZE_FORMAT " bytes: echoed %scompressed",
                        binary ? "binary" : "text", len, compressed ? "" : "un");
  g_assert_cmpmem (g_bytes_get_data (echo, NULL), g_bytes_get_size (echo), data, len);
}

/* ------------------------------------------------------------------ */
/* Negotiation                                                          */
/* ------------------------------------------------------------------ */

static void
test_offer_accepted (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate; client_max_window_bits");

  g_test_summary ("An offer with parameters is accepted, both sides without context takeover");
  g_assert_nonnull (ws);
  check_extension (ws, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  echo_case (ws, FALSE, 4096, TRUE);
}

static void
test_no_offer (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, NULL);

  g_test_summary ("No offer: no extension, large messages go uncompressed both ways");
  g_assert_nonnull (ws);
  check_extension (ws, NULL);
  /* echo_case() expects compression from 1024 bytes: look by hand. */
  {
    g_autofree guint8 *text = make_text (65536);
    g_autoptr(GBytes) echo = NULL;
    guint8 opcode;
    gboolean compressed;

    send_message (ws, TEST_WS_TEXT, text, 65536, FALSE);
    echo = read_message (ws, &opcode, &compressed);
    g_assert_false (compressed);
    g_assert_cmpmem (g_bytes_get_data (echo, NULL), g_bytes_get_size (echo), text, 65536);
  }
}

static void
test_bad_offers (Fixture       *f,
                 gconstpointer  data)
{
  static const char *offers[] = {
    "permessage-deflate; foo",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=9",
  };

  g_test_summary ("Offers with invalid, unknown or repeated parameters are declined; "
                  "the session goes on uncompressed");
  for (guint i = 0; i < G_N_ELEMENTS (offers); i++)
    {
      g_autoptr(TestWs) ws = open_session (f, offers[i]);

      g_assert_nonnull (ws);
      if (ws == NULL)
        continue;
      if (test_ws_response_header (ws, "sec-websocket-extensions") != NULL)
        g_test_fail_printf ("“%s” was accepted", offers[i]);
    }
  {
    g_autoptr(TestWs) ws = open_session (f, "permessage-deflate; server_max_window_bits=9, permessage-deflate");

    g_assert_nonnull (ws);
    check_extension (ws, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  }
}

static void
test_property_off (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate; client_max_window_bits");
  g_autofree guint8 *text = make_text (100);
  gint code;
  gboolean on = TRUE;

  g_test_summary ("per-message-deflate off (the default): an offer is declined, and RSV1 "
                  "stays a protocol error (1002)");
  g_object_get (f->server, "per-message-deflate", &on, NULL);
  g_assert_false (on);
  g_assert_nonnull (ws);
  check_extension (ws, NULL);
  send_message (ws, TEST_WS_TEXT, text, 100, TRUE);
  code = test_ws_read_close (ws, TEST_TIMEOUT_MS, NULL);
  g_assert_cmpint (code, ==, 1002);
}

/* ------------------------------------------------------------------ */
/* Echoes                                                               */
/* ------------------------------------------------------------------ */

static const gsize sizes[] = { 1, 1023, 1024, 65536, MIB };

static void
test_echo (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");

  g_test_summary ("Text and binary messages of 1 B to 1 MiB, sent compressed or not, are "
                  "echoed intact; the echo is compressed from 1024 bytes on");
  g_assert_nonnull (ws);
  if (ws == NULL)
    return;
  for (guint binary = 0; binary < 2; binary++)
    for (guint compress = 0; compress < 2; compress++)
      for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
        echo_case (ws, binary, sizes[i] - (binary && i == 0 ? 1 : 0), compress);
}

static void
test_fragmented (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autofree guint8 *text = make_text (200000);
  g_autoptr(GBytes) z = client_deflate (text, 200000, 6);
  gsize zlen;
  const guint8 *zdata = g_bytes_get_data (z, &zlen);
  g_autoptr(GByteArray) wire = g_byte_array_new ();
  g_autoptr(GBytes) echo = NULL;
  g_autoptr(GError) error = NULL;
  guint8 opcode;
  gboolean compressed;
  gsize a = zlen / 3, b = 2 * zlen / 3;

  g_test_summary ("A compressed message in three fragments (RSV1 on the first only), "
                  "with a ping between them, is echoed intact");
  g_assert_nonnull (ws);
  if (ws == NULL)
    return;
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (FALSE, 4, TEST_WS_TEXT), TRUE, zdata, a);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_PING), TRUE, "p", 1);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (FALSE, 0, TEST_WS_CONTINUATION), TRUE, zdata + a, b - a);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_CONTINUATION), TRUE, zdata + b, zlen - b);
  test_ws_send_chopped (ws, wire->data, wire->len, 7000, &error);
  g_assert_no_error (error);
  {
    g_autoptr(TestWsFrame) pong = test_ws_read_frame (ws, LONG_TIMEOUT_MS, &error);

    g_assert_no_error (error);
    g_assert_nonnull (pong);
    g_assert_cmpuint (pong->opcode, ==, TEST_WS_PONG);
  }
  echo = read_message (ws, &opcode, &compressed);
  g_assert_nonnull (echo);
  g_assert_true (compressed);
  g_assert_cmpmem (g_bytes_get_data (echo, NULL), g_bytes_get_size (echo), text, 200000);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

/* Sends @wire and expects a close with @code, then EOF. */
static void
expect_close (TestWs       *ws,
              const guint8 *wire,
              gsize         len,
              gint          code)
{
  g_autoptr(GError) error = NULL;

  test_ws_send_raw (ws, wire, len, &error);
  g_assert_no_error (error);
  g_assert_cmpint (test_ws_read_close (ws, LONG_TIMEOUT_MS, NULL), ==, code);
  g_assert_true (test_ws_wait_eof (ws, LONG_TIMEOUT_MS));
}

static void
test_rsv1_continuation (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(GBytes) z = client_deflate ("4hello", 6, 6);
  gsize zlen;
  const guint8 *zdata = g_bytes_get_data (z, &zlen);
  g_autoptr(GByteArray) wire = g_byte_array_new ();

  g_test_summary ("RSV1 on a continuation frame: 1002");
  g_assert_nonnull (ws);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (FALSE, 4, TEST_WS_TEXT), TRUE, zdata, 1);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_CONTINUATION), TRUE, zdata + 1, zlen - 1);
  expect_close (ws, wire->data, wire->len, 1002);
}

static void
test_rsv1_control (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(GByteArray) wire = g_byte_array_new ();

  g_test_summary ("RSV1 on a ping: 1002");
  g_assert_nonnull (ws);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_PING), TRUE, "x", 1);
  expect_close (ws, wire->data, wire->len, 1002);
}

static void
test_rsv23 (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(GByteArray) wire = g_byte_array_new ();

  g_test_summary ("RSV2 on a data frame, negotiated or not: 1002");
  g_assert_nonnull (ws);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 2, TEST_WS_TEXT), TRUE, "4x", 2);
  expect_close (ws, wire->data, wire->len, 1002);
}

static void
test_invalid_deflate (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(GByteArray) wire = g_byte_array_new ();
  /* BFINAL 1, BTYPE 11: a reserved block type. */
  static const guint8 bad[] = { 0xff, 0xff, 0xff, 0x00, 0x12 };

  g_test_summary ("Compressed data that is not valid deflate: 1007 (as npm ws answers)");
  g_assert_nonnull (ws);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_BINARY), TRUE, bad, sizeof bad);
  expect_close (ws, wire->data, wire->len, 1007);
}

static void
test_invalid_utf8 (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(GBytes) z = client_deflate ("4ok \xce\xba\xe1\xbd\xb9\xff\xfe", 11, 6);
  gsize zlen;
  const guint8 *zdata = g_bytes_get_data (z, &zlen);
  g_autoptr(GByteArray) wire = g_byte_array_new ();

  g_test_summary ("A compressed text message that inflates to invalid UTF-8: 1007");
  g_assert_nonnull (ws);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_TEXT), TRUE, zdata, zlen);
  expect_close (ws, wire->data, wire->len, 1007);
}

static glong
peak_rss_kib (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static void
test_zip_bomb (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(TestWs) ws = open_session (f, "permessage-deflate");
  g_autoptr(TestWs) other = open_session (f, "permessage-deflate");
  /* 1 GiB of zeros in about 1 MiB: under max-payload (2 MiB) compressed. */
  g_autoptr(GBytes) bomb = zip_bomb ((gsize) 1024 * MIB);
  gsize blen;
  const guint8 *bdata = g_bytes_get_data (bomb, &blen);
  g_autoptr(GByteArray) wire = g_byte_array_new ();
  glong before;
  gint64 start;

  g_test_summary ("A zip bomb (1 MiB inflating to 1 GiB): 1009, the process's peak memory "
                  "grows by well under 1 GiB; another session still echoes");
  g_assert_nonnull (ws);
  g_assert_nonnull (other);
  g_assert_cmpuint (blen, <, MAX_PAYLOAD);
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_BINARY), TRUE, bdata, blen);
  before = peak_rss_kib ();
  start = g_get_monotonic_time ();
  expect_close (ws, wire->data, wire->len, 1009);
  g_test_message ("1009 after %" G_GINT64_FORMAT " ms; peak RSS %ld KiB -> %ld KiB",
                  (g_get_monotonic_time () - start) / 1000, before, peak_rss_kib ());
  /* Inflating all of it would take 1 GiB; bounded, it takes max-payload
   * (2 MiB) and its buffers. */
  g_assert_cmpint (peak_rss_kib () - before, <, 64 * 1024);
  echo_case (other, TRUE, 4096, TRUE);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/ws-deflate/negotiate", test_negotiate);
#define ADD(path, setup, func) g_test_add ("/ws-deflate/" path, Fixture, NULL, setup, func, teardown)
  ADD ("offer-accepted", setup_on, test_offer_accepted);
  ADD ("no-offer", setup_on, test_no_offer);
  ADD ("bad-offers", setup_on, test_bad_offers);
  ADD ("property-off", setup_off, test_property_off);
  ADD ("echo", setup_on, test_echo);
  ADD ("fragmented", setup_on, test_fragmented);
  ADD ("rsv1-continuation", setup_on, test_rsv1_continuation);
  ADD ("rsv1-control", setup_on, test_rsv1_control);
  ADD ("rsv2", setup_on, test_rsv23);
  ADD ("invalid-deflate", setup_on, test_invalid_deflate);
  ADD ("invalid-utf8", setup_on, test_invalid_utf8);
  ADD ("zip-bomb", setup_on, test_zip_bomb);
#undef ADD
  return g_test_run ();
}
