/* test-ws-codec.c: the RFC 6455 frame codec, without sockets
 *
 * Client frames are built here, fed to the decoder whole, in 1-byte and
 * in 997-byte chunks (and straight into the message buffer), and the
 * events checked: lengths at every encoding boundary, every protocol
 * error with its close code, UTF-8 (valid text split at every offset,
 * invalid bytes at every position failing on the feed that brings them,
 * the Kuhn-style invalid set), close frames, the word-wise unmasking
 * against a byte-wise reference, and the encoder.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <glib.h>

#include "engineio-ws-codec-private.h"

static const guint8 KEY[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Appends a client frame: @b0 is FIN|RSV|opcode; masked with KEY unless
 * @unmasked; @len64 forces the 8-byte length encoding. */
static void
frame_full (GByteArray   *out,
            guint8        b0,
            const void   *payload,
            gsize         n,
            gboolean      unmasked,
            gboolean      len64)
{
  guint8 head[14];
  gsize h = 0;
  guint8 mbit = unmasked ? 0 : 0x80;

  head[h++] = b0;
  if (n < 126 && !len64)
    head[h++] = mbit | (guint8) n;
  else if (n <= 0xffff && !len64)
    {
      head[h++] = mbit | 126;
      head[h++] = (guint8) (n >> 8);
      head[h++] = (guint8) n;
    }
  else
    {
      head[h++] = mbit | 127;
      for (guint i = 0; i < 8; i++)
        head[h++] = (guint8) ((guint64) n >> (56 - 8 * i));
    }
  if (!unmasked)
    {
      memcpy (head + h, KEY, 4);
      h += 4;
    }
  g_byte_array_append (out, head, (guint) h);
  for (gsize i = 0; i < n; i++)
    {
      guint8 b = ((const guint8 *) payload)[i];
      if (!unmasked)
        b ^= KEY[i & 3];
      g_byte_array_append (out, &b, 1);
    }
}

static void
frame (GByteArray *out,
       guint8      b0,
       const void *payload,
       gsize       n)
{
  frame_full (out, b0, payload, n, FALSE, FALSE);
}

#define FIN 0x80

typedef struct
{
  EngineIOWsEventType type;
  gboolean            binary;
  guint16             code;
  GBytes             *data;
  gsize               at;      /* input bytes fed (in total) when it came */
} Ev;

static void
ev_clear (gpointer p)
{
  Ev *e = p;
  g_clear_pointer (&e->data, g_bytes_unref);
}

/* Feeds @in in chunks of @chunk bytes (0: whole), each chunk a fresh
 * copy (the decoder unmasks in place), until the input ends or a close or
 * error. Returns the events. */
static GArray *
run (const GByteArray *in,
     gsize             chunk,
     guint64           max_message)
{
  EngineIOWsDecoder dec;
  GArray *evs = g_array_new (FALSE, TRUE, sizeof (Ev));
  gsize pos = 0;
  gboolean done = FALSE;

  g_array_set_clear_func (evs, ev_clear);
  engine_io_ws_decoder_init (&dec, max_message);
  while (pos < in->len && !done)
    {
      gsize n = chunk == 0 ? in->len - pos : MIN (chunk, in->len - pos);
      guint8 *copy = g_memdup2 (in->data + pos, n);
      gsize off = 0;

      for (;;)
        {
          EngineIOWsEvent event;
          gsize used = engine_io_ws_decoder_feed (&dec, copy + off, n - off, &event);

          off += used;
          if (event.type != ENGINE_IO_WS_EVENT_NONE)
            {
              Ev e = { event.type, event.binary, event.code,
                       g_bytes_new (event.data, event.size), pos + n };
              g_array_append_val (evs, e);
              if (event.type == ENGINE_IO_WS_EVENT_ERROR || event.type == ENGINE_IO_WS_EVENT_CLOSE)
                {
                  done = TRUE;
                  /* Nothing more is consumed. */
                  g_assert_cmpuint (engine_io_ws_decoder_feed (&dec, copy + off, n - off, &event), ==, 0);
                  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_NONE);
                  break;
                }
              continue;
            }
          g_assert_cmpuint (off, ==, n);
          break;
        }
      g_free (copy);
      pos += n;
    }
  engine_io_ws_decoder_clear (&dec);
  return evs;
}

static Ev *
ev (GArray *evs, guint i)
{
  g_assert_cmpuint (i, <, evs->len);
  return &g_array_index (evs, Ev, i);
}

static void
assert_message (Ev *e, gboolean binary, const void *data, gsize n)
{
  gsize size;
  const guint8 *got;

  g_assert_cmpint (e->type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_cmpint (e->binary, ==, binary);
  got = g_bytes_get_data (e->data, &size);
  g_assert_cmpuint (size, ==, n);
  g_assert_true (n == 0 || memcmp (got, data, n) == 0);
}

/* One error event, @code, and it is the last. */
static void
assert_error (GArray *evs, guint16 code)
{
  g_assert_cmpuint (evs->len, >=, 1);
  g_assert_cmpint (ev (evs, evs->len - 1)->type, ==, ENGINE_IO_WS_EVENT_ERROR);
  g_assert_cmpuint (ev (evs, evs->len - 1)->code, ==, code);
}

static const gsize chunks[] = { 0, 1, 997 };

/* permessage-deflate: RSV1 allowed by engine_io_ws_decoder_set_compressed(). */

/* Feeds @in whole to a decoder allowing RSV1; the events' types, codes
 * and compressed flags as "M1" (compressed message), "M0", "E1002", ... */
static char *
run_compressed (const GByteArray *in,
                guint64           max_message)
{
  EngineIOWsDecoder dec;
  GString *out = g_string_new (NULL);
  g_autofree guint8 *copy = g_memdup2 (in->data, in->len);
  gsize off = 0;

  engine_io_ws_decoder_init (&dec, max_message);
  engine_io_ws_decoder_set_compressed (&dec, TRUE);
  while (off < in->len)
    {
      EngineIOWsEvent event;

      off += engine_io_ws_decoder_feed (&dec, copy + off, in->len - off, &event);
      if (event.type == ENGINE_IO_WS_EVENT_MESSAGE)
        g_string_append_printf (out, "M%d:%" G_GSIZE_FORMAT " ", event.compressed, event.size);
      else if (event.type == ENGINE_IO_WS_EVENT_ERROR)
        {
          g_string_append_printf (out, "E%u ", event.code);
          break;
        }
      else if (event.type == ENGINE_IO_WS_EVENT_PONG)
        g_string_append (out, "P ");
      else if (event.type == ENGINE_IO_WS_EVENT_NONE)
        break;
    }
  engine_io_ws_decoder_clear (&dec);
  return g_string_free (out, FALSE);
}

static void
check_compressed (const GByteArray *in,
                  guint64           max_message,
                  const char       *expected)
{
  g_autofree char *got = run_compressed (in, max_message);

  g_assert_cmpstr (got, ==, expected);
}

static void
test_compressed (void)
{
  static const guint8 not_utf8[] = { 0xff, 0xfe, 0xc0 };
  guint8 *big = g_malloc0 (2000);

  g_test_summary ("RSV1 (permessage-deflate negotiated): on the first frame of a data message "
                  "marks it compressed (not UTF-8-validated, limit plus 1/64 plus 64); on a "
                  "continuation or control frame, and RSV2/RSV3, 1002");
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 0x40 | 1, not_utf8, 3);            /* compressed text: not validated */
    frame (in, FIN | 0x40 | 2, "ab", 2);
    frame (in, FIN | 0xA, "", 0);
    frame (in, FIN | 1, "ok", 2);                       /* uncompressed: validated, passes */
    check_compressed (in, 1000, "M1:3 M1:2 P M0:2 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 0x40 | 1, "a", 1);
    frame (in, FIN | 1, not_utf8, 3);                   /* the next message is validated again */
    check_compressed (in, 1000, "M1:1 E1007 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, 0x40 | 1, not_utf8, 3);                  /* fragments: RSV1 on the first only */
    frame (in, FIN | 0xA, "", 0);
    frame (in, 0x0, not_utf8, 3);
    frame (in, FIN | 0x0, not_utf8, 3);
    check_compressed (in, 1000, "P M1:9 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, 0x40 | 1, "a", 1);
    frame (in, FIN | 0x40 | 0x0, "b", 1);               /* RSV1 on a continuation */
    check_compressed (in, 1000, "E1002 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 0x40 | 0x9, "a", 1);               /* on a ping */
    check_compressed (in, 1000, "E1002 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 0x20 | 1, "a", 1);                 /* RSV2 */
    check_compressed (in, 1000, "E1002 ");
  }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 0x60 | 1, "a", 1);                 /* RSV1 and RSV2 */
    check_compressed (in, 1000, "E1002 ");
  }
  {
    /* Limits: 1000 uncompressed; 1000 + 15 + 64 = 1079 compressed, over
     * fragments too. */
    g_autoptr(GByteArray) a = g_byte_array_new ();
    g_autoptr(GByteArray) b = g_byte_array_new ();
    g_autoptr(GByteArray) c = g_byte_array_new ();
    g_autoptr(GByteArray) d = g_byte_array_new ();
    frame (a, FIN | 0x40 | 2, big, 1079);
    check_compressed (a, 1000, "M1:1079 ");
    frame (b, FIN | 0x40 | 2, big, 1080);
    check_compressed (b, 1000, "E1009 ");
    frame (c, FIN | 2, big, 1001);
    check_compressed (c, 1000, "E1009 ");
    frame (d, 0x40 | 2, big, 1000);
    frame (d, FIN | 0x0, big, 80);
    check_compressed (d, 1000, "E1009 ");
  }
  g_free (big);
}

static void
test_lengths (void)
{
  static const gsize lengths[] = { 0, 1, 125, 126, 127, 128, 65535, 65536, 100000 };

  for (guint l = 0; l < G_N_ELEMENTS (lengths); l++)
    for (guint b = 0; b < 2; b++)
      for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
        for (guint len64 = 0; len64 < 2; len64++)
          {
            gsize n = lengths[l];
            g_autofree guint8 *payload = g_malloc (n + 1);
            g_autoptr(GByteArray) in = g_byte_array_new ();
            g_autoptr(GArray) evs = NULL;

            for (gsize i = 0; i < n; i++)
              payload[i] = b ? (guint8) (i * 7) : (guint8) ('a' + i % 26);
            frame_full (in, FIN | (b ? 2 : 1), payload, n, FALSE, len64);
            frame (in, FIN | 2, "x", 1);  /* a second message after it */
            evs = run (in, chunks[c], 1 << 20);
            g_assert_cmpuint (evs->len, ==, 2);
            assert_message (ev (evs, 0), b, payload, n);
            assert_message (ev (evs, 1), TRUE, "x", 1);
          }
}

/* The adapter's path: header fed, payload received straight into the
 * message buffer, in pieces of @piece bytes. */
static void
test_direct_read (void)
{
  static const gsize pieces[] = { 1, 3, 997, 65536, 1 << 20 };
  gsize n = 300000;
  g_autofree guint8 *payload = g_malloc (n);
  g_autoptr(GByteArray) in = g_byte_array_new ();

  for (gsize i = 0; i < n; i++)
    payload[i] = (guint8) ('A' + i % 50);
  frame (in, 0x01, payload, 1000);            /* first fragment */
  frame (in, FIN, payload + 1000, n - 1000);  /* the rest */

  for (guint p = 0; p < G_N_ELEMENTS (pieces); p++)
    {
      EngineIOWsDecoder dec;
      EngineIOWsEvent event;
      gsize pos = 0;
      gboolean got = FALSE;
      g_autofree guint8 *copy = g_memdup2 (in->data, in->len);

      engine_io_ws_decoder_init (&dec, n);
      while (pos < in->len)
        {
          gsize space;
          guint8 *where = engine_io_ws_decoder_payload_space (&dec, 1, &space);

          if (where != NULL)
            {
              gsize w = MIN (MIN (space, pieces[p]), in->len - pos);

              /* The buffer is sized by the header, not speculatively. */
              g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), <=, n);
              memcpy (where, copy + pos, w);
              pos += w;
              engine_io_ws_decoder_payload_written (&dec, w, &event);
            }
          else
            pos += engine_io_ws_decoder_feed (&dec, copy + pos, 1, &event);
          if (event.type != ENGINE_IO_WS_EVENT_NONE)
            {
              g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
              g_assert_false (event.binary);
              g_assert_cmpuint (event.size, ==, n);
              g_assert_true (memcmp (event.data, payload, n) == 0);
              g_assert_false (got);
              got = TRUE;
            }
        }
      g_assert_true (got);
      g_assert_true (engine_io_ws_decoder_at_frame_boundary (&dec));
      /* Delivered: the buffer goes at the next call. */
      g_assert_null (engine_io_ws_decoder_payload_space (&dec, 1, &(gsize) { 0 }));
      g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 0);
      engine_io_ws_decoder_clear (&dec);
    }
}

static void
check_error (const GByteArray *in,
             guint64           max_message,
             guint16           code,
             gsize             expect_at)  /* bytes fed when the error comes; 0: any */
{
  for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
    {
      g_autoptr(GArray) evs = run (in, chunks[c], max_message);

      assert_error (evs, code);
      if (expect_at != 0 && chunks[c] == 1)
        g_assert_cmpuint (ev (evs, evs->len - 1)->at, ==, expect_at);
    }
}

static void
test_errors (void)
{
  guint8 big[200];

  memset (big, 'p', sizeof big);

  /* Reserved bits: at the first byte. */
  for (guint rsv = 0x10; rsv <= 0x40; rsv <<= 1)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();
      frame (in, FIN | rsv | 1, "abc", 3);
      check_error (in, 1000, 1002, 1);
    }
  /* Reserved opcodes. */
  for (guint op = 3; op <= 15; op++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();

      if (op >= 8 && op <= 10)
        continue;
      frame (in, FIN | op, "abc", 3);
      check_error (in, 1000, 1002, 1);
    }
  /* Control frames: over 125 bytes (at the length byte), fragmented. */
  for (guint op = 8; op <= 10; op++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();
      g_autoptr(GByteArray) in2 = g_byte_array_new ();
      g_autoptr(GByteArray) in3 = g_byte_array_new ();

      frame (in, FIN | op, big, 126);
      check_error (in, 1000, 1002, 2);
      frame (in2, op, "ab", 2);
      check_error (in2, 1000, 1002, 1);
      frame_full (in3, FIN | op, "ab", 2, FALSE, TRUE);  /* 127: over 125 too */
      check_error (in3, 1000, 1002, 2);
    }
  /* A continuation with nothing to continue, also after a whole message. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GByteArray) in2 = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;

    frame (in, FIN | 0, "abc", 3);
    check_error (in, 1000, 1002, 1);
    frame (in2, FIN | 1, "abc", 3);
    frame (in2, FIN | 0, "abc", 3);
    evs = run (in2, 1, 1000);
    g_assert_cmpuint (evs->len, ==, 2);
    assert_message (ev (evs, 0), FALSE, "abc", 3);
    assert_error (evs, 1002);
    g_assert_cmpuint (ev (evs, 1)->at, ==, 10);
  }
  /* A new data message inside a fragmented one. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, 1, "abc", 3);
    frame (in, FIN | 2, "abc", 3);
    check_error (in, 1000, 1002, 10);
  }
  /* Unmasked: at the length byte. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame_full (in, FIN | 2, "abc", 3, TRUE, FALSE);
    check_error (in, 1000, 1002, 2);
  }
  /* A 64-bit length with its top bit set. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    guint8 h[] = { FIN | 2, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 };
    g_byte_array_append (in, h, sizeof h);
    check_error (in, G_MAXUINT64, 1002, sizeof h);
  }
  /* 1009 at the header, before any payload byte: one frame over the
   * limit, given only its header; fragments whose sum passes it. */
  for (guint enc = 0; enc < 3; enc++)
    {
      static const gsize sizes[] = { 101, 1001, 70000 };
      gsize n = sizes[enc];
      g_autoptr(GByteArray) in = g_byte_array_new ();
      g_autofree guint8 *p = g_malloc0 (n);

      frame (in, FIN | 2, p, n);
      g_byte_array_set_size (in, in->len - (guint) n);  /* the header only */
      check_error (in, n - 1, 1009, in->len);
    }
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;

    frame (in, 2, big, 100);
    frame (in, 0, big, 100);
    frame (in, 0x89, "p", 1);  /* control frames do not count */
    frame (in, 0, big, 100);   /* 300 > 250 */
    frame (in, FIN, big, 1);
    evs = run (in, 1, 250);
    g_assert_cmpuint (evs->len, ==, 2);
    g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_PING);
    assert_error (evs, 1009);
    g_assert_cmpuint (ev (evs, 1)->at, ==, 2 * (6 + 100) + 7 + 6);  /* the third header */

    /* Exactly at the limit: delivered. */
    g_byte_array_set_size (in, 0);
    frame (in, 2, big, 100);
    frame (in, FIN, big, 150);
    g_clear_pointer (&evs, g_array_unref);
    evs = run (in, 997, 250);
    g_assert_cmpuint (evs->len, ==, 1);
    g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
    g_assert_cmpuint (g_bytes_get_size (ev (evs, 0)->data), ==, 250);
  }
}

static void
test_control (void)
{
  guint8 p125[125];
  g_autoptr(GByteArray) in = g_byte_array_new ();

  for (guint i = 0; i < sizeof p125; i++)
    p125[i] = (guint8) i;
  /* Interleaved between fragments: delivered at once, in order. */
  frame (in, 1, "He", 2);
  frame (in, FIN | 9, p125, 125);
  frame (in, 0, "l", 1);
  frame (in, FIN | 0xA, "pong", 4);
  frame (in, FIN | 0, "lo", 2);
  frame (in, FIN | 9, "", 0);
  for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
    {
      g_autoptr(GArray) evs = run (in, chunks[c], 1000);

      g_assert_cmpuint (evs->len, ==, 4);
      g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_PING);
      g_assert_cmpuint (g_bytes_get_size (ev (evs, 0)->data), ==, 125);
      g_assert_true (memcmp (g_bytes_get_data (ev (evs, 0)->data, NULL), p125, 125) == 0);
      g_assert_cmpint (ev (evs, 1)->type, ==, ENGINE_IO_WS_EVENT_PONG);
      g_assert_cmpuint (g_bytes_get_size (ev (evs, 1)->data), ==, 4);
      assert_message (ev (evs, 2), FALSE, "Hello", 5);
      g_assert_cmpint (ev (evs, 3)->type, ==, ENGINE_IO_WS_EVENT_PING);
      g_assert_cmpuint (g_bytes_get_size (ev (evs, 3)->data), ==, 0);
      if (chunks[c] == 1)
        {
          /* The ping comes with its last byte, before the message ends. */
          g_assert_cmpuint (ev (evs, 0)->at, ==, 8 + 6 + 125);
        }
    }
}

static void
close_frame (GByteArray *in, guint16 code, const char *reason, gsize reason_len)
{
  guint8 p[130];

  p[0] = (guint8) (code >> 8);
  p[1] = (guint8) code;
  memcpy (p + 2, reason, reason_len);
  frame (in, FIN | 8, p, 2 + reason_len);
}

static void
test_close (void)
{
  static const guint16 valid[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                   3000, 3999, 4000, 4999 };
  static const guint16 invalid[] = { 0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016,
                                     1100, 2000, 2999, 5000, 65535 };

  for (guint i = 0; i < G_N_ELEMENTS (valid); i++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();

      close_frame (in, valid[i], "bye \xce\xba", 6);
      frame (in, FIN | 1, "after", 5);  /* never read */
      for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
        {
          g_autoptr(GArray) evs = run (in, chunks[c], 1000);

          g_assert_cmpuint (evs->len, ==, 1);
          g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_CLOSE);
          g_assert_cmpuint (ev (evs, 0)->code, ==, valid[i]);
          g_assert_cmpuint (g_bytes_get_size (ev (evs, 0)->data), ==, 6);
        }
    }
  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();
      close_frame (in, invalid[i], "", 0);
      check_error (in, 1000, 1002, in->len);
    }
  /* Empty: no code (1005). */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;

    frame (in, FIN | 8, "", 0);
    evs = run (in, 1, 1000);
    g_assert_cmpuint (evs->len, ==, 1);
    g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_CLOSE);
    g_assert_cmpuint (ev (evs, 0)->code, ==, 1005);
  }
  /* One byte: 1002. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    frame (in, FIN | 8, "\x03", 1);
    check_error (in, 1000, 1002, in->len);
  }
  /* A reason of 124 bytes (payload 126): 1002 at the length byte. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    char r[124];

    memset (r, 'r', sizeof r);
    close_frame (in, 1000, r, sizeof r);
    check_error (in, 1000, 1002, 2);
  }
  /* A reason of 123 bytes: fine. Invalid UTF-8 in it: 1007. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GByteArray) in2 = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;
    char r[123];

    memset (r, 'r', sizeof r);
    close_frame (in, 1000, r, sizeof r);
    evs = run (in, 1, 1000);
    g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_CLOSE);
    g_assert_cmpuint (g_bytes_get_size (ev (evs, 0)->data), ==, 123);
    close_frame (in2, 1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64", 16);
    check_error (in2, 1000, 1007, in2->len);
    g_byte_array_set_size (in2, 0);
    close_frame (in2, 1000, "ab\xce", 3);  /* truncated */
    check_error (in2, 1000, 1007, in2->len);
  }
  /* Between fragments: the close is taken (the message never ends). */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;

    frame (in, 1, "frag", 4);
    close_frame (in, 1000, "", 0);
    frame (in, FIN, "ment", 4);
    evs = run (in, 997, 1000);
    g_assert_cmpuint (evs->len, ==, 1);
    g_assert_cmpint (ev (evs, 0)->type, ==, ENGINE_IO_WS_EVENT_CLOSE);
    g_assert_cmpuint (ev (evs, 0)->code, ==, 1000);
  }
}

/* UTF-8 */

/* 1-, 2-, 3- and 4-byte characters. */
static const char valid_text[] =
  "Hello-\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5-\xf0\x9f\x98\x80-"
  "\xef\xbf\xbf\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80"
  "-plain ASCII long enough for a word or two-\xe2\x82\xac";

static void
test_utf8_valid_splits (void)
{
  gsize n = strlen (valid_text);

  g_assert_true (g_utf8_validate (valid_text, n, NULL));
  /* Two fragments split at every offset (inside characters too), and
   * three with an empty one; fed whole and byte by byte. */
  for (gsize split = 0; split <= n; split++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();

      frame (in, 1, valid_text, split);
      frame (in, 0, "", 0);
      frame (in, FIN, valid_text + split, n - split);
      for (guint c = 0; c < 2; c++)
        {
          g_autoptr(GArray) evs = run (in, chunks[c], 1000);

          g_assert_cmpuint (evs->len, ==, 1);
          assert_message (ev (evs, 0), FALSE, valid_text, n);
        }
    }
  /* One frame fed in two chunks split at every offset. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();

    frame (in, FIN | 1, valid_text, n);
    for (gsize split = 1; split < in->len; split++)
      {
        EngineIOWsDecoder dec;
        EngineIOWsEvent event;
        g_autofree guint8 *copy = g_memdup2 (in->data, in->len);

        engine_io_ws_decoder_init (&dec, 1000);
        g_assert_cmpuint (engine_io_ws_decoder_feed (&dec, copy, split, &event), ==, split);
        g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_NONE);
        g_assert_cmpuint (engine_io_ws_decoder_feed (&dec, copy + split, in->len - split, &event),
                          ==, in->len - split);
        g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
        g_assert_cmpuint (event.size, ==, n);
        g_assert_true (memcmp (event.data, valid_text, n) == 0);
        engine_io_ws_decoder_clear (&dec);
      }
  }
}

/* Invalid bytes at every position of a text message: the error comes on
 * the feed that brings the first bad byte, in one frame and when that
 * byte is in the middle one of three fragments (fail fast: the last
 * fragment is never needed). */
static void
test_utf8_invalid_positions (void)
{
  static const char *const bad[] = { "\xff", "\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                     "\xce\xce" };
  /* Where, in each, the DFA first rejects. */
  static const gsize bad_at[] = { 0, 0, 0, 1, 1, 1 };
  gsize n = strlen (valid_text);

  for (guint b = 0; b < G_N_ELEMENTS (bad); b++)
    for (gsize pos = 0; pos <= n; pos++)
      {
        GString *text = g_string_new_len (valid_text, (gssize) n);
        gsize reject;
        guint32 state;

        /* Insert only between characters. */
        if (pos < n && ((guint8) valid_text[pos] & 0xc0) == 0x80)
          {
            g_string_free (text, TRUE);
            continue;
          }
        g_string_insert_len (text, (gssize) pos, bad[b], (gssize) strlen (bad[b]));
        reject = pos + bad_at[b];
        state = engine_io_ws_utf8_run (0, (const guint8 *) text->str, reject + 1);
        g_assert_cmpuint (state, ==, ENGINE_IO_WS_UTF8_REJECT);
        g_assert_cmpuint (engine_io_ws_utf8_run (0, (const guint8 *) text->str, reject), !=,
                          ENGINE_IO_WS_UTF8_REJECT);

        /* One frame, byte by byte: fails on the bad byte. */
        {
          g_autoptr(GByteArray) in = g_byte_array_new ();

          frame (in, FIN | 1, text->str, text->len);
          check_error (in, 1000, 1007, (in->len - text->len) + reject + 1);
        }
        /* Three fragments, the bad byte in the second: fails before the
         * third comes. */
        {
          g_autoptr(GByteArray) in = g_byte_array_new ();
          gsize first = reject / 2;
          gsize second_end = reject + 1;
          guint hdr2;
          g_autoptr(GArray) evs = NULL;

          frame (in, 1, text->str, first);
          hdr2 = in->len + (second_end - first < 126 ? 6 : 8);
          frame (in, 0, text->str + first, second_end - first);
          frame (in, FIN, text->str + second_end, text->len - second_end);
          evs = run (in, 1, 1000);
          assert_error (evs, 1007);
          g_assert_cmpuint (ev (evs, 0)->at, ==, hdr2 + (reject - first) + 1);
        }
        g_string_free (text, TRUE);
      }
}

static void
test_utf8_kuhn (void)
{
  /* Invalid: overlongs, surrogates (lone and paired), beyond U+10FFFF,
   * 5- and 6-byte forms, bytes that never appear, lone continuations,
   * truncated sequences (at the end, and followed by ASCII). */
  static const char *const invalid[] = {
    "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf",
    "\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80",
    "\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80",
    "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf",
    "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf7\xbf\xbf\xbf", "\xf8\x88\x80\x80\x80",
    "\xfc\x84\x80\x80\x80\x80", "\xfe", "\xff", "\xfe\xfe\xff\xff",
    "\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80",
    "\xc2", "\xe0\xa0", "\xf0\x90\x80", "\xdf", "\xef\xbf", "\xf4\x8f\xbf",
    "\xc2 ", "\xe0\xa0 ", "\xf0\x90\x80 ",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
  };
  static const char *const valid[] = {
    "", "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
    "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbe",
  };

  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();

      frame (in, FIN | 1, invalid[i], strlen (invalid[i]));
      check_error (in, 1000, 1007, 0);
      g_assert_false (g_utf8_validate (invalid[i], (gssize) strlen (invalid[i]), NULL));
    }
  for (guint i = 0; i < G_N_ELEMENTS (valid); i++)
    {
      g_autoptr(GByteArray) in = g_byte_array_new ();
      g_autoptr(GArray) evs = NULL;

      frame (in, FIN | 1, valid[i], strlen (valid[i]));
      evs = run (in, 1, 1000);
      g_assert_cmpuint (evs->len, ==, 1);
      assert_message (ev (evs, 0), FALSE, valid[i], strlen (valid[i]));
    }
  /* Binary messages are not validated. */
  {
    g_autoptr(GByteArray) in = g_byte_array_new ();
    g_autoptr(GArray) evs = NULL;

    frame (in, FIN | 2, "\xff\xfe", 2);
    evs = run (in, 0, 1000);
    assert_message (ev (evs, 0), TRUE, "\xff\xfe", 2);
  }
}

/* The DFA against GLib's validator, every 1-, 2- and 3-byte sequence
 * (no NUL: g_utf8_validate() stops there) and random 4-byte ones. */
static void
test_utf8_exhaustive (void)
{
  guint8 s[4];

  for (guint a = 1; a < 256; a++)
    {
      s[0] = (guint8) a;
      g_assert_cmpint (engine_io_ws_utf8_run (0, s, 1) == 0, ==, g_utf8_validate ((char *) s, 1, NULL));
      for (guint b = 1; b < 256; b++)
        {
          s[1] = (guint8) b;
          g_assert_cmpint (engine_io_ws_utf8_run (0, s, 2) == 0, ==, g_utf8_validate ((char *) s, 2, NULL));
          if (a < 0xc0)
            continue;  /* a 3-byte sequence needs a lead byte to matter */
          for (guint c = 1; c < 256; c++)
            {
              s[2] = (guint8) c;
              g_assert_cmpint (engine_io_ws_utf8_run (0, s, 3) == 0, ==,
                               g_utf8_validate ((char *) s, 3, NULL));
            }
        }
    }
  for (guint i = 0; i < 2000000; i++)
    {
      guint32 r = g_random_int ();

      s[0] = 0xf0 | (r & 7);
      s[1] = (guint8) (r >> 8) | 1;
      s[2] = (guint8) (r >> 16) | 1;
      s[3] = (guint8) (r >> 24) | 1;
      g_assert_cmpint (engine_io_ws_utf8_run (0, s, 4) == 0, ==, g_utf8_validate ((char *) s, 4, NULL));
    }
}

static void
test_unmask (void)
{
  guint8 buf[96 + 8];
  guint8 ref[96];

  for (guint align = 0; align < 8; align++)
    for (guint offset = 0; offset < 8; offset++)
      for (guint len = 0; len <= 96; len++)
        {
          guint8 *p = buf + align;

          for (guint i = 0; i < len; i++)
            ref[i] = p[i] = (guint8) (i * 31 + align + 7 * offset);
          for (guint i = 0; i < len; i++)
            ref[i] ^= KEY[(offset + i) % 4];
          engine_io_ws_unmask (p, len, KEY, offset);
          g_assert_true (len == 0 || memcmp (p, ref, len) == 0);
        }
  /* A large offset (past 4 GiB) keeps the rotation. */
  {
    guint8 a[40] = { 0 };

    engine_io_ws_unmask (a, sizeof a, KEY, G_GUINT64_CONSTANT (0x100000003));
    for (guint i = 0; i < sizeof a; i++)
      g_assert_cmpuint (a[i], ==, KEY[(3 + i) % 4]);
  }
}

static void
test_encoder (void)
{
  static const guint64 lengths[] = { 0, 125, 126, 127, 65535, 65536, G_GUINT64_CONSTANT (1) << 40 };
  static const gsize expect[] = { 2, 2, 4, 4, 4, 10, 10 };
  guint8 buf[ENGINE_IO_WS_MAX_CLOSE_FRAME];
  gsize n;
  GString *reason;

  for (guint i = 0; i < G_N_ELEMENTS (lengths); i++)
    {
      guint64 got = 0;

      n = engine_io_ws_encode_header (buf, ENGINE_IO_WS_OP_BINARY, TRUE, lengths[i]);
      g_assert_cmpuint (n, ==, expect[i]);
      g_assert_cmpuint (buf[0], ==, 0x82);
      g_assert_cmpuint (buf[1] & 0x80, ==, 0);  /* server frames are unmasked */
      if (n == 2)
        got = buf[1];
      else if (n == 4)
        got = (guint64) buf[2] << 8 | buf[3];
      else
        for (guint j = 2; j < 10; j++)
          got = got << 8 | buf[j];
      g_assert_cmpuint (got, ==, lengths[i]);
    }
  n = engine_io_ws_encode_header (buf, ENGINE_IO_WS_OP_TEXT, FALSE, 3);
  g_assert_cmpuint (buf[0], ==, 0x01);

  n = engine_io_ws_encode_close (buf, 0, "ignored");
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpmem (buf, n, "\x88\x00", 2);
  n = engine_io_ws_encode_close (buf, 1002, NULL);
  g_assert_cmpmem (buf, n, "\x88\x02\x03\xea", 4);
  n = engine_io_ws_encode_close (buf, 1008, "output not read");
  g_assert_cmpuint (n, ==, 4 + 15);
  g_assert_cmpmem (buf + 4, 15, "output not read", 15);
  /* A long reason is cut to 123 bytes, on a character boundary. */
  reason = g_string_new ("x");
  while (reason->len < 200)
    g_string_append (reason, "\xe2\x82\xac");
  n = engine_io_ws_encode_close (buf, 1000, reason->str);
  g_assert_cmpuint (n, <=, ENGINE_IO_WS_MAX_CLOSE_FRAME);
  g_assert_cmpuint (buf[1], ==, n - 2);
  g_assert_cmpuint (n - 4, ==, 121);  /* 1 + 40 * 3 */
  g_assert_true (g_utf8_validate ((char *) buf + 4, (gssize) (n - 4), NULL));
  g_string_free (reason, TRUE);
}

/* The optional per-fragment cost: 1-byte fragments pass the bound long
 * before their payload would; 1000-byte ones of a max_message message
 * fit. */
static void
test_fragment_cost (void)
{
  g_autoptr(GByteArray) in = g_byte_array_new ();
  g_autoptr(GByteArray) sane = g_byte_array_new ();
  guint8 piece[1000];
  guint frames = 0;
  EngineIOWsDecoder dec;
  EngineIOWsEvent event;
  gsize pos = 0;

  memset (piece, 'y', sizeof piece);
  frame (in, 1, "x", 1);
  for (guint i = 0; i < 20000; i++)
    frame (in, 0, "x", 1);
  engine_io_ws_decoder_init (&dec, 100000);
  engine_io_ws_decoder_set_fragment_cost (&dec, 96, 100000 / 8 + 1024);
  while (pos < in->len)
    {
      pos += engine_io_ws_decoder_feed (&dec, in->data + pos, in->len - pos, &event);
      if (event.type != ENGINE_IO_WS_EVENT_NONE)
        break;
    }
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_ERROR);
  g_assert_cmpuint (event.code, ==, 1009);
  frames = (guint) (pos / 7);
  g_assert_cmpuint (pos % 7, ==, 6);  /* the failing frame: its header only */
  g_assert_cmpuint (frames, ==, (100000 + 100000 / 8 + 1024) / 97);  /* those that fit */
  engine_io_ws_decoder_clear (&dec);

  for (guint i = 0; i < 100; i++)
    frame (sane, i == 0 ? 2 : i == 99 ? FIN : 0, piece, sizeof piece);
  engine_io_ws_decoder_init (&dec, 100000);
  engine_io_ws_decoder_set_fragment_cost (&dec, 96, 100000 / 8 + 1024);
  pos = engine_io_ws_decoder_feed (&dec, sane->data, sane->len, &event);
  g_assert_cmpuint (pos, ==, sane->len);
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_cmpuint (event.size, ==, 100000);
  engine_io_ws_decoder_clear (&dec);
}

/* A 16 MiB message received straight into its buffer: one allocation of
 * its size, announced by the header; no copy besides the receive. */
static void
test_16mib (void)
{
  gsize n = 16 << 20;
  g_autoptr(GByteArray) in = g_byte_array_sized_new ((guint) n + 14);
  g_autofree guint8 *payload = g_malloc (n);
  EngineIOWsDecoder dec;
  EngineIOWsEvent event;
  gsize pos = 0;
  guint8 *first = NULL;

  for (gsize i = 0; i < n; i++)
    payload[i] = (guint8) ('a' + i % 23);
  frame (in, FIN | 1, payload, n);
  engine_io_ws_decoder_init (&dec, n);
  pos = engine_io_ws_decoder_feed (&dec, in->data, 14, &event);
  g_assert_cmpuint (pos, ==, 14);
  while (pos < in->len)
    {
      gsize space;
      guint8 *where = engine_io_ws_decoder_payload_space (&dec, 1, &space);
      gsize w;

      g_assert_nonnull (where);
      if (first == NULL)
        first = where;
      /* Always the same buffer, exactly the message's size. */
      g_assert_true (where == first + (pos - 14));
      g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, n);
      w = MIN (space, 1 << 20);
      memcpy (where, in->data + pos, w);
      pos += w;
      engine_io_ws_decoder_payload_written (&dec, w, &event);
    }
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_true (event.data == first);
  g_assert_cmpuint (event.size, ==, n);
  g_assert_true (memcmp (event.data, payload, n) == 0);
  engine_io_ws_decoder_release (&dec);
  g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 0);
  engine_io_ws_decoder_clear (&dec);
}

/* engine_io_ws_decoder_steal_message(): a message assembled in the
 * decoder's buffer is handed over NUL-terminated (and without the room a
 * fragmented message grew it by); one delivered from the input is not. */
static void
test_steal (void)
{
  g_autoptr(GByteArray) in = g_byte_array_new ();
  EngineIOWsDecoder dec;
  EngineIOWsEvent event;
  gsize pos = 0;
  guint8 *msg;
  char part[1000];

  memset (part, 'x', sizeof part);
  /* A text message in ten fragments: assembled in the buffer. */
  for (guint i = 0; i < 10; i++)
    frame (in, (i == 9 ? FIN : 0) | (i == 0 ? 1 : 0), part, sizeof part);
  engine_io_ws_decoder_init (&dec, 1 << 20);
  do
    pos += engine_io_ws_decoder_feed (&dec, in->data + pos, in->len - pos, &event);
  while (event.type == ENGINE_IO_WS_EVENT_NONE && pos < in->len);
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_cmpuint (event.size, ==, 10 * sizeof part);
  /* Only for the size delivered. */
  g_assert_null (engine_io_ws_decoder_steal_message (&dec, event.size - 1));
  msg = engine_io_ws_decoder_steal_message (&dec, event.size);
  g_assert_nonnull (msg);
  g_assert_cmpint (msg[event.size], ==, '\0');
  g_assert_cmpuint (strspn ((const char *) msg, "x"), ==, event.size);
  /* Handed over: the decoder holds nothing, and frees nothing. */
  g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 0);
  engine_io_ws_decoder_release (&dec);
  g_free (msg);

  /* A single frame whole in the input is delivered from there. */
  g_byte_array_set_size (in, 0);
  frame (in, FIN | 1, part, 100);
  pos = engine_io_ws_decoder_feed (&dec, in->data, in->len, &event);
  g_assert_cmpuint (pos, ==, in->len);
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_null (engine_io_ws_decoder_steal_message (&dec, event.size));
  engine_io_ws_decoder_release (&dec);
  engine_io_ws_decoder_clear (&dec);
}

/* The decoder holds nothing while idle or between messages. */
static void
test_memory (void)
{
  EngineIOWsDecoder dec;
  EngineIOWsEvent event;
  g_autoptr(GByteArray) in = g_byte_array_new ();
  guint8 *copy;
  gsize off = 0;

  g_assert_cmpuint (sizeof (EngineIOWsDecoder), <=, 256);
  frame (in, 2, "abcd", 4);
  frame (in, FIN, "efgh", 4);
  copy = g_memdup2 (in->data, in->len);
  engine_io_ws_decoder_init (&dec, 1 << 30);
  g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 0);
  off += engine_io_ws_decoder_feed (&dec, copy, 10, &event);
  /* The first fragment: a buffer of its size, not speculative. */
  g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 4);
  off += engine_io_ws_decoder_feed (&dec, copy + off, in->len - off, &event);
  g_assert_cmpint (event.type, ==, ENGINE_IO_WS_EVENT_MESSAGE);
  g_assert_cmpmem (event.data, event.size, "abcdefgh", 8);
  g_assert_cmpuint (engine_io_ws_decoder_feed (&dec, copy, 0, &event), ==, 0);
  g_assert_cmpuint (engine_io_ws_decoder_get_buffered (&dec), ==, 0);
  engine_io_ws_decoder_clear (&dec);
  g_free (copy);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ws-codec/lengths", test_lengths);
  g_test_add_func ("/ws-codec/direct-read", test_direct_read);
  g_test_add_func ("/ws-codec/errors", test_errors);
  g_test_add_func ("/ws-codec/compressed", test_compressed);
  g_test_add_func ("/ws-codec/control", test_control);
  g_test_add_func ("/ws-codec/close", test_close);
  g_test_add_func ("/ws-codec/utf8/valid-splits", test_utf8_valid_splits);
  g_test_add_func ("/ws-codec/utf8/invalid-positions", test_utf8_invalid_positions);
  g_test_add_func ("/ws-codec/utf8/kuhn", test_utf8_kuhn);
  g_test_add_func ("/ws-codec/utf8/exhaustive", test_utf8_exhaustive);
  g_test_add_func ("/ws-codec/unmask", test_unmask);
  g_test_add_func ("/ws-codec/encoder", test_encoder);
  g_test_add_func ("/ws-codec/memory", test_memory);
  g_test_add_func ("/ws-codec/fragment-cost", test_fragment_cost);
  g_test_add_func ("/ws-codec/16mib", test_16mib);
  g_test_add_func ("/ws-codec/steal", test_steal);
  return g_test_run ();
}
