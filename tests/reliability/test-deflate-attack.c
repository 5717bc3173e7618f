/* test-deflate-attack.c: hostile clients against permessage-deflate
 *
 * A real server on 127.0.0.1 (port 0) with per-message-deflate on, both
 * threading modes (ENGINE_IO_TEST_LOOP_THREADS): clients that compress
 * with zlib here (not with the library's code) what no honest client
 * sends.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <zlib.h>

#include "relutil.h"

#define MIB (1024 * 1024)

/* Raw deflate of @len bytes at @level, sync flush, 00 00 ff ff stripped
 * (RFC 7692, 7.2.1). */
static GBytes *
client_deflate (const void *data,
                gsize       len,
                int         level)
{
  z_stream z = { 0 };
  gsize cap;
  guint8 *out;
  gsize n;

  g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), ==, Z_OK);
  cap = deflateBound (&z, len) + 64;
  out = g_malloc (cap);
  z.next_in = (Bytef *) data;
  z.avail_in = (uInt) len;
  z.next_out = out;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, Z_SYNC_FLUSH), ==, Z_OK);
  n = cap - z.avail_out;
  deflateEnd (&z);
  g_assert_cmpuint (n, >=, 4);
  g_assert_cmpmem (out + n - 4, 4, "\x00\x00\xff\xff", 4);
  return g_bytes_new_take (out, n - 4);
}

/* A text message "<type>" then @len - 1 bytes of 'a', compressed at the
 * best ratio deflate has (about 1:1000). */
static GBytes *
bomb_message (char  type,
              gsize len)
{
  g_autofree char *text = g_malloc (len);

  memset (text, 'a', len);
  text[0] = type;
  return client_deflate (text, len, 9);
}

/* A direct WebSocket session (v4) offering permessage-deflate; the
 * extension must be accepted. */
static TestWs *
open_deflate (guint     port,
              char    **out_sid,
              GError  **error)
{
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  const char *headers[] = { "Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits", NULL };
  g_autoptr(TestWs) ws = test_ws_connect (port, target, headers, 0, NULL, error);
  g_autoptr(TestWsFrame) frame = NULL;
  g_autofree char *text = NULL;
  g_autoptr(TestOpenPacket) open = NULL;

  if (ws == NULL)
    return NULL;
  if (g_strcmp0 (test_ws_response_header (ws, "sec-websocket-extensions"),
                 "permessage-deflate; server_no_context_takeover; client_no_context_takeover") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "extension not accepted: %s",
                   test_ws_response_header (ws, "sec-websocket-extensions"));
      return NULL;
    }
  frame = test_ws_read_frame (ws, REL_WAIT_MS, error);
  if (frame == NULL)
    return NULL;
  text = test_ws_frame_dup_text (frame);
  if (frame->opcode != TEST_WS_TEXT || text[0] != '0' ||
      (open = test_open_packet_parse (text + 1, error)) == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "first frame “%.200s”", text);
      return NULL;
    }
  if (out_sid != NULL)
    *out_sid = g_strdup (open->sid);
  return g_steal_pointer (&ws);
}

static RelServer *
server_new (guint64 max_payload)
{
  RelServer *rs = rel_server_new ();

  g_object_set (rs->lb.server,
                "per-message-deflate", TRUE,
                "max-payload", max_payload,
                NULL);
  g_assert_true (rel_server_listen (rs));
  return rs;
}

/* ------------------------------------------------------------------ */
/* A stream of bombs just under max-payload                             */
/* ------------------------------------------------------------------ */

typedef struct
{
  TestWs   *ws;
  GBytes   *burst;
  gint      stop;      /* atomic */
  guint64   sent;      /* bytes, once stopped */
  char     *error;
} Flooder;

static gpointer
flood_thread (gpointer data)
{
  Flooder *fl = data;
  gsize len;
  const guint8 *burst = g_bytes_get_data (fl->burst, &len);

  while (!g_atomic_int_get (&fl->stop))
    {
      g_autoptr(GError) error = NULL;

      if (!test_ws_send_raw (fl->ws, burst, len, &error))
        {
          fl->error = g_strdup (error->message);
          break;
        }
      fl->sent += len;
    }
  return NULL;
}

/* Noop packets ("6", which the server drops) of max-payload - 1 bytes,
 * about 1 KiB each compressed, sent back to back: each costs the server
 * the inflation of almost max-payload, and nothing it answers slows the
 * client down. Another session on the same loop thread (pooled mode: two
 * sessions come first, so the flooder shares a thread with one of them)
 * must still get its echoes within a bound: inflating is bounded per
 * dispatch, not only per message. */
static void
test_bomb_stream (void)
{
  RelServer *rs = server_new (1000000);
  g_autoptr(GError) error = NULL;
  RelHealthy *healthy[2] = { NULL, NULL };
  g_autoptr(GBytes) message = bomb_message ('6', 1000000 - 1);
  g_autoptr(GByteArray) burst = g_byte_array_new ();
  Flooder fl = { 0 };
  GThread *thread;
  gsize mlen;
  const guint8 *mdata = g_bytes_get_data (message, &mlen);
  guint max_ms = 0;
  guint64 before_trips[2];

  g_test_summary ("Back-to-back compressed messages each inflating to just under max-payload: "
                  "other sessions on the loop thread keep their echoes within a bound");

  for (guint i = 0; i < 2; i++)
    {
      healthy[i] = rel_healthy_start (rs->lb.port, REL_HEALTHY_WEBSOCKET, &error);
      g_assert_no_error (error);
      g_assert_true (rel_healthy_wait_more (healthy[i], 3, REL_WAIT_MS));
    }
  fl.ws = open_deflate (rs->lb.port, NULL, &error);
  g_assert_no_error (error);
  /* A small send buffer: with the kernel's auto-tuned one (4 MiB of
   * bombs, 4 GB inflated) the last write of the flood waited for the
   * server to inflate all of it, over the write timeout on a loaded
   * machine under ASan. Now it waits for one read buffer's worth. */
  g_assert_true (g_socket_set_option (test_ws_get_socket (fl.ws), SOL_SOCKET, SO_SNDBUF,
                                      64 * 1024, &error));
  g_assert_no_error (error);
  g_test_message ("one message: %" G_GSIZE_FORMAT " bytes compressed", mlen);
  while (burst->len < 256 * 1024)
    test_ws_append_frame (burst, TEST_WS_FIRST_BYTE (TRUE, 4, TEST_WS_TEXT), TRUE, mdata, mlen);
  fl.burst = g_byte_array_free_to_bytes (g_steal_pointer (&burst));
  burst = NULL;

  for (guint i = 0; i < 2; i++)
    before_trips[i] = rel_healthy_round_trips (healthy[i]);
  thread = g_thread_new ("deflate-flood", flood_thread, &fl);
  /* Round trips of both during the flood: a few ms each when the loop
   * thread is shared fairly; with a read buffer of bombs inflated per
   * dispatch, each took 0.5 to 3 s (15 to 34 round trips in 20 s). */
  for (guint i = 0; i < 2; i++)
    {
      gint64 start = g_get_monotonic_time ();

      if (!rel_healthy_wait_more (healthy[i], 30, test_scaled_ms (5000)))
        g_test_fail_printf ("healthy session %u: not 30 round trips in %u ms during the flood",
                            i, test_scaled_ms (5000));
      g_test_message ("healthy %u: 30 round trips in %" G_GINT64_FORMAT " ms", i,
                      (g_get_monotonic_time () - start) / 1000);
    }
  /* The flooder's writes do not block for long: the server reads on. */
  g_atomic_int_set (&fl.stop, 1);
  g_thread_join (thread);
  test_ws_drop (fl.ws, TRUE);
  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *herr = NULL;

      max_ms = MAX (max_ms, rel_healthy_max_ms (healthy[i]));
      g_test_message ("healthy %u: %u round trips", i,
                      (guint) (rel_healthy_round_trips (healthy[i]) - before_trips[i]));
      herr = rel_healthy_stop (healthy[i], TRUE);
      g_assert_null (herr);
    }
  g_test_message ("flooder sent %" G_GUINT64_FORMAT " KiB (%" G_GUINT64_FORMAT
                  " messages); slowest echo of the others: %u ms",
                  fl.sent / 1024, fl.sent / (mlen + 8), max_ms);
  /* Noop packets are no offence: the flooder was read to the end. */
  if (fl.error != NULL)
    g_test_fail_printf ("the flooder's writes failed: %s", fl.error);
  g_free (fl.error);
  test_ws_free (fl.ws);
  g_bytes_unref (fl.burst);
  /* A dispatch inflating a whole read buffer of bombs (256 KiB: some
   * 250 MB of output) took the loop thread for a second or more; one
   * message per dispatch takes a few ms. The machine may stall a thread
   * for a while too, so the bound is loose (the round trips' rate above
   * is the finer check). */
  if (max_ms > test_scaled_ms (1000))
    g_test_fail_printf ("an echo took %u ms while another session inflated bombs", max_ms);
  rel_server_free (rs);
}

/* ------------------------------------------------------------------ */
/* Deflate streams of every shape                                       */
/* ------------------------------------------------------------------ */

/* Deflate of @len bytes with zlib's @window_bits (-15: raw; 15: with a
 * zlib header), @strategy and @flush (Z_SYNC_FLUSH: the tail stripped;
 * Z_FINISH: a final block, nothing stripped). */
static GByteArray *
deflate_with (const void *data,
              gsize       len,
              int         level,
              int         window_bits,
              int         strategy,
              int         flush)
{
  z_stream z = { 0 };
  GByteArray *out = g_byte_array_new ();
  gsize cap;

  g_assert_cmpint (deflateInit2 (&z, level, Z_DEFLATED, window_bits, 8, strategy), ==, Z_OK);
  cap = deflateBound (&z, len) + 64;
  g_byte_array_set_size (out, (guint) cap);
  z.next_in = (Bytef *) data;
  z.avail_in = (uInt) len;
  z.next_out = out->data;
  z.avail_out = (uInt) cap;
  g_assert_cmpint (deflate (&z, flush), ==, flush == Z_FINISH ? Z_STREAM_END : Z_OK);
  g_byte_array_set_size (out, (guint) (cap - z.avail_out));
  deflateEnd (&z);
  if (flush == Z_SYNC_FLUSH)
    {
      g_assert_cmpmem (out->data + out->len - 4, 4, "\x00\x00\xff\xff", 4);
      g_byte_array_set_size (out, out->len - 4);
    }
  return out;
}

/* Sends @wire on a new deflate session; @echo: the packet the echo must
 * bring back, or NULL for a close with @code. */
static void
shape_case (guint         port,
            const char   *what,
            const guint8 *wire,
            gsize         len,
            const char   *echo,
            gint          code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = open_deflate (port, NULL, &error);
  g_autofree char *got = NULL;
  gint close_code = -1;

  if (ws == NULL)
    {
      g_test_fail_printf ("%s: %s", what, error->message);
      return;
    }
  if (!test_ws_send_raw (ws, wire, len, &error))
    {
      g_test_fail_printf ("%s: %s", what, error->message);
      return;
    }
  got = rel_ws_next (ws, REL_WAIT_MS, &close_code, &error);
  if (echo != NULL && g_strcmp0 (got, echo) != 0)
    g_test_fail_printf ("%s: expected the echo “%s”, got “%s” (%s)", what, echo,
                        got ? got : "nothing", error ? error->message : "");
  if (echo == NULL && close_code != code)
    g_test_fail_printf ("%s: expected a close with %d, got %d (“%s”)", what, code, close_code,
                        got ? got : "");
  if (echo == NULL && !test_ws_wait_eof (ws, REL_WAIT_MS))
    g_test_fail_printf ("%s: the connection did not end after the close", what);
}

static void
append_compressed (GByteArray   *wire,
                   guint8        opcode,
                   const guint8 *data,
                   gsize         len)
{
  test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (TRUE, 4, opcode), TRUE, data, len);
}

static void
test_shapes (void)
{
  RelServer *rs = server_new (1000000);
  static const char text[] = "4hello, deflate";
  const gsize tlen = sizeof text - 1;

  g_test_summary ("Stored, fixed and dynamic blocks, a final block, data after it, a zlib "
                  "header, an empty message, a bomb in 1-byte fragments, a declined offer: "
                  "each echoed or closed with the right code");

  {
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 0, -15, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "stored block", wire->data, wire->len, text, 0);
  }
  {
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 6, -15, Z_FIXED, Z_SYNC_FLUSH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "fixed Huffman", wire->data, wire->len, text, 0);
  }
  {
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 9, -15, Z_HUFFMAN_ONLY, Z_SYNC_FLUSH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "dynamic Huffman", wire->data, wire->len, text, 0);
  }
  {
    /* A final block (BFINAL), no sync flush tail: valid (RFC 7692, 7.2.3.4). */
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 6, -15, Z_DEFAULT_STRATEGY, Z_FINISH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "final block", wire->data, wire->len, text, 0);
    /* Bytes after the final block are not inflated (nor delivered). */
    g_byte_array_append (z, (const guint8 *) "\xff\xff\xff\xff", 4);
    g_byte_array_set_size (wire, 0);
    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "data after the final block", wire->data, wire->len, text, 0);
  }
  {
    /* A zlib header (as with a preset dictionary) is not raw deflate. */
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 6, 15, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    shape_case (rs->lb.port, "zlib header", wire->data, wire->len, NULL, 1007);
  }
  {
    /* Empty: inflates to an empty text message, not an Engine.IO packet. */
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    append_compressed (wire, TEST_WS_TEXT, (const guint8 *) "", 0);
    shape_case (rs->lb.port, "empty message", wire->data, wire->len, NULL, 1002);
  }
  {
    /* 1.5 MB inflated (max-payload 1 MB), sent one byte per fragment. */
    g_autoptr(GBytes) bomb = bomb_message ('4', 1500000);
    gsize blen;
    const guint8 *b = g_bytes_get_data (bomb, &blen);
    g_autoptr(GByteArray) wire = g_byte_array_new ();

    for (gsize i = 0; i < blen; i++)
      test_ws_append_frame (wire, TEST_WS_FIRST_BYTE (i == blen - 1, i == 0 ? 4 : 0,
                                                      i == 0 ? TEST_WS_TEXT : TEST_WS_CONTINUATION),
                            TRUE, b + i, 1);
    shape_case (rs->lb.port, "bomb in 1-byte fragments", wire->data, wire->len, NULL, 1009);
  }
  {
    /* A declined offer: RSV1 stays a protocol error. */
    g_autofree char *target = test_eio_target (4, "websocket", NULL);
    const char *headers[] = { "Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=8", NULL };
    g_autoptr(GError) error = NULL;
    g_autoptr(TestWs) ws = test_ws_connect (rs->lb.port, target, headers, 0, NULL, &error);
    g_autoptr(GByteArray) z = deflate_with (text, tlen, 6, -15, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH);
    g_autoptr(GByteArray) wire = g_byte_array_new ();
    gint close_code = -1;
    g_autofree char *open = NULL;

    g_assert_no_error (error);
    g_assert_null (test_ws_response_header (ws, "sec-websocket-extensions"));
    open = rel_ws_next (ws, REL_WAIT_MS, NULL, &error);
    g_assert_no_error (error);
    append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
    test_ws_send_raw (ws, wire->data, wire->len, &error);
    g_assert_no_error (error);
    g_assert_null (rel_ws_next (ws, REL_WAIT_MS, &close_code, NULL));
    g_assert_cmpint (close_code, ==, 1002);
  }
  rel_server_free (rs);
}

/* ------------------------------------------------------------------ */
/* Negotiation                                                          */
/* ------------------------------------------------------------------ */

static void
test_offers (void)
{
  RelServer *rs = server_new (1000000);
  g_autoptr(GString) many = g_string_new (NULL);
  g_autoptr(GString) junk = g_string_new (NULL);
  struct { const char *value; gboolean accepted; } cases[] = {
    { NULL, FALSE },  /* 16 declined offers, then a good one: not looked at */
    { NULL, TRUE },   /* an offer with 6 KB of quoted separators and escapes, then a good one */
    { "  PERMESSAGE-DEFLATE ;\tclient_max_window_bits = \"15\"  ", TRUE },
    { "permessage-deflate; client_max_window_bits=\"1\\5\"", FALSE },
    { "permessage-deflate; x=\"unterminated, permessage-deflate", FALSE },
    { "permessage-deflate;;", FALSE },
  };

  g_test_summary ("Sec-WebSocket-Extensions from a hostile client: many offers, kilobytes of "
                  "separators and quotes, case and whitespace, escapes: bounded, and declined "
                  "offers leave the session uncompressed");
  for (guint i = 0; i < 16; i++)
    g_string_append (many, "permessage-deflate; foo, ");
  g_string_append (many, "permessage-deflate");
  cases[0].value = many->str;
  g_string_append (junk, "permessage-deflate; x=\"");
  for (guint i = 0; i < 1500; i++)
    g_string_append (junk, ",;\\\"");
  g_string_append (junk, "\", permessage-deflate");
  cases[1].value = junk->str;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *target = test_eio_target (4, "websocket", NULL);
      const char *headers[] = { "Sec-WebSocket-Extensions", cases[i].value, NULL };
      g_autoptr(GError) error = NULL;
      g_autoptr(TestWs) ws = test_ws_connect (rs->lb.port, target, headers, 0, NULL, &error);
      const char *answer;

      if (ws == NULL)
        {
          g_test_fail_printf ("case %u: %s", i, error->message);
          continue;
        }
      answer = test_ws_response_header (ws, "sec-websocket-extensions");
      if ((answer != NULL) != cases[i].accepted)
        g_test_fail_printf ("case %u (“%.60s…”): %s", i, cases[i].value,
                            answer ? "accepted" : "declined");
      g_free (rel_ws_next (ws, REL_WAIT_MS, NULL, &error));
      g_assert_no_error (error);
      if (!rel_ws_echo (ws, "after the offer", REL_WAIT_MS, &error))
        g_test_fail_printf ("case %u: %s", i, error->message);
    }
  rel_server_free (rs);
}

/* ------------------------------------------------------------------ */
/* The headers hook and the negotiated extension                        */
/* ------------------------------------------------------------------ */

/* Removes the server's Sec-WebSocket-Extensions from every response, or
 * (@data non-NULL) appends one. */
static void
extensions_hook (EngineIOServer          *server,
                 EngineIOHandshake       *request,
                 guint                    status,
                 gboolean                 handshake,
                 EngineIOResponseHeaders *headers,
                 gpointer                 data)
{
  if (data != NULL)
    engine_io_response_headers_append (headers, "Sec-WebSocket-Extensions", "permessage-deflate");
  else
    engine_io_response_headers_remove (headers, "Sec-WebSocket-Extensions");
}

/* What the 101 says is negotiated must be what the server does: a hook
 * removing the server's answer left the server compressing (RSV1) what
 * the client was told would not be; a hook adding one made the client
 * compress what the server refused (1002). */
static void
test_hook_extensions (void)
{
  static const char text[] = "4hello, deflate";
  g_autofree char *big = g_malloc (4001);

  g_test_summary ("A headers hook cannot remove or add Sec-WebSocket-Extensions: the 101 "
                  "always says what the server negotiated");
  memset (big, 'b', 4000);
  big[0] = '4';
  big[4000] = '\0';
  for (guint add = 0; add < 2; add++)
    {
      RelServer *rs = rel_server_new ();
      g_autofree char *target = test_eio_target (4, "websocket", NULL);
      const char *headers[] = { "Sec-WebSocket-Extensions", "permessage-deflate", NULL };
      g_autoptr(GError) error = NULL;
      g_autoptr(TestWs) ws = NULL;
      g_autofree char *open = NULL;
      g_autofree char *echo = NULL;
      const char *answer;

      g_object_set (rs->lb.server, "per-message-deflate", !add, NULL);
      engine_io_server_set_headers_func (rs->lb.server, extensions_hook, add ? rs : NULL, NULL);
      g_assert_true (rel_server_listen (rs));
      if (add)
        test_log_expect (G_LOG_LEVEL_WARNING, "Sec-WebSocket-Extensions");
      ws = test_ws_connect (rs->lb.port, target, headers, 0, NULL, &error);
      g_assert_no_error (error);
      answer = test_ws_response_header (ws, "sec-websocket-extensions");
      open = rel_ws_next (ws, REL_WAIT_MS, NULL, &error);
      g_assert_no_error (error);
      if (add)
        {
          /* Deflate off: the hook's header is not added. */
          if (answer != NULL)
            g_test_fail_printf ("off, hook adding: the 101 says “%s”", answer);
        }
      else if (g_strcmp0 (answer, "permessage-deflate; server_no_context_takeover; "
                                  "client_no_context_takeover") != 0)
        g_test_fail_printf ("on, hook removing: the 101 says “%s”", answer ? answer : "(none)");

      /* As a client that believes the 101: compressed only if it said so;
       * a large echo comes compressed only if it said so. */
      if (answer != NULL)
        {
          g_autoptr(GByteArray) z = deflate_with (text, sizeof text - 1, 6, -15, Z_DEFAULT_STRATEGY, Z_SYNC_FLUSH);
          g_autoptr(GByteArray) wire = g_byte_array_new ();

          append_compressed (wire, TEST_WS_TEXT, z->data, z->len);
          test_ws_send_raw (ws, wire->data, wire->len, &error);
        }
      else
        test_ws_send_text (ws, text);
      g_assert_no_error (error);
      echo = rel_ws_next (ws, REL_WAIT_MS, NULL, &error);
      if (g_strcmp0 (echo, text) != 0)
        g_test_fail_printf ("%s: no echo (%s)", add ? "off, hook adding" : "on, hook removing",
                            error ? error->message : echo);
      g_clear_error (&error);
      if (answer == NULL && echo != NULL)
        {
          g_autoptr(TestWsFrame) frame = NULL;

          test_ws_send_text (ws, big);
          frame = test_ws_read_frame (ws, REL_WAIT_MS, &error);
          g_assert_no_error (error);
          if (frame != NULL && frame->rsv != 0)
            g_test_fail_printf ("%s: a frame with RSV bits %u though no extension was negotiated",
                                add ? "off, hook adding" : "on, hook removing", frame->rsv);
        }
      test_ws_free (g_steal_pointer (&ws));
      rel_server_free (rs);
      test_log_check ();
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/deflate-attack/bomb-stream", test_bomb_stream);
  g_test_add_func ("/deflate-attack/shapes", test_shapes);
  g_test_add_func ("/deflate-attack/offers", test_offers);
  g_test_add_func ("/deflate-attack/hook-extensions", test_hook_extensions);
  return g_test_run ();
}
