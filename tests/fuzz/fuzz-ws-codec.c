/* fuzz-ws-codec.c: libFuzzer target for the RFC 6455 frame codec alone
 *
 * The first input byte picks the options: bits 0-1 the message limit
 * (64 B, 1000 B, 64 KiB, 1 MiB), bits 2-4 how the rest (a stream of
 * client frames) is fed the second time: in chunks of 1, 2, 3, 7, 64 or
 * 997 bytes, or with payloads written straight into the message buffer
 * (engine_io_ws_decoder_payload_space()) in pieces of 1 or 5000 bytes;
 * bit 5 allows RSV1 (permessage-deflate negotiated: compressed messages
 * are delivered unvalidated, within the limit plus 1/64 plus 64 bytes).
 * The stream is decoded whole, then that way, and the two must give the
 * same events (chunking never changes what is decoded). Every event is
 * checked: an uncompressed text message (and a close reason) is valid UTF-8 by GLib's
 * validator, a message is within the limit, a control payload within 125
 * bytes, a close code valid, an error code one of 1002, 1007, 1009, and
 * nothing is consumed after a close or an error.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engineio-ws-codec-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
  G_STMT_START { \
    if (G_UNLIKELY (!(cond))) \
      { \
        g_printerr ("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        abort (); \
      } \
  } G_STMT_END

static const guint64 limits[] = { 64, 1000, 65536, 1 << 20 };
static const gsize chunk_sizes[] = { 1, 2, 3, 7, 64, 997 };

static gboolean
utf8_ok (const guint8 *p, gsize n)
{
  /* GLib's validator, which stops at NUL: NUL is valid UTF-8. */
  g_autofree char *copy = g_malloc (n + 1);

  for (gsize i = 0; i < n; i++)
    copy[i] = p[i] == 0 ? 'x' : (char) p[i];
  return g_utf8_validate (copy, (gssize) n, NULL);
}

static gboolean compressed_allowed;

/* What a compressed message may take (see engine_io_ws_decoder_set_compressed()). */
static guint64
compressed_limit (guint64 limit)
{
  return compressed_allowed ? limit + limit / 64 + 64 : limit;
}

static void
record (GString               *log,
        const EngineIOWsEvent *event,
        guint64                limit)
{
  g_string_append_printf (log, "%d:%d:%d:%u:%" G_GSIZE_FORMAT ":", event->type, event->binary,
                          event->compressed, event->code, event->size);
  g_string_append_len (log, (const char *) event->data, (gssize) event->size);
  g_string_append_c (log, '\n');

  switch (event->type)
    {
    case ENGINE_IO_WS_EVENT_MESSAGE:
      FUZZ_CHECK (compressed_allowed || !event->compressed);
      FUZZ_CHECK (event->size <= (event->compressed ? compressed_limit (limit) : limit));
      FUZZ_CHECK (event->size == 0 || event->data != NULL);
      if (!event->binary && !event->compressed)
        FUZZ_CHECK (utf8_ok (event->data, event->size));
      break;
    case ENGINE_IO_WS_EVENT_PING:
    case ENGINE_IO_WS_EVENT_PONG:
      FUZZ_CHECK (event->size <= 125);
      break;
    case ENGINE_IO_WS_EVENT_CLOSE:
      FUZZ_CHECK (event->size <= 123);
      FUZZ_CHECK (event->code == 1005 || engine_io_ws_close_code_valid (event->code));
      FUZZ_CHECK (event->code != 1005 || event->size == 0);
      FUZZ_CHECK (utf8_ok (event->data, event->size));
      break;
    case ENGINE_IO_WS_EVENT_ERROR:
      FUZZ_CHECK (event->code == 1002 || event->code == 1007 || event->code == 1009);
      FUZZ_CHECK (event->error_message != NULL);
      break;
    default:
      FUZZ_CHECK (FALSE);
    }
}

static gboolean
finished (const EngineIOWsEvent *event)
{
  return event->type == ENGINE_IO_WS_EVENT_CLOSE || event->type == ENGINE_IO_WS_EVENT_ERROR;
}

/* Feeds @in (copied: the decoder unmasks in place) in chunks of @chunk
 * (0: whole), or straight into the message buffer in pieces of @direct. */
static void
decode (const guint8 *in,
        gsize         size,
        guint64       limit,
        gsize         chunk,
        gsize         direct,
        GString      *log)
{
  EngineIOWsDecoder dec;
  EngineIOWsEvent event;
  guint8 *copy = g_memdup2 (in, size);
  gsize pos = 0;
  gboolean done = FALSE;

  engine_io_ws_decoder_init (&dec, limit);
  engine_io_ws_decoder_set_compressed (&dec, compressed_allowed);
  while (pos < size && !done)
    {
      gsize space = 0;
      guint8 *where = direct > 0 ? engine_io_ws_decoder_payload_space (&dec, 1, &space) : NULL;

      if (where != NULL)
        {
          gsize n = MIN (MIN (space, direct), size - pos);

          FUZZ_CHECK (engine_io_ws_decoder_get_buffered (&dec) <= compressed_limit (limit));
          memcpy (where, copy + pos, n);
          pos += n;
          engine_io_ws_decoder_payload_written (&dec, n, &event);
          if (event.type != ENGINE_IO_WS_EVENT_NONE)
            {
              record (log, &event, limit);
              done = finished (&event);
            }
          continue;
        }

      {
        gsize n = chunk == 0 ? size - pos : MIN (chunk, size - pos);
        gsize off = 0;

        while (!done)
          {
            gsize used = engine_io_ws_decoder_feed (&dec, copy + pos + off, n - off, &event);

            FUZZ_CHECK (used <= n - off);
            off += used;
            if (event.type == ENGINE_IO_WS_EVENT_NONE)
              {
                FUZZ_CHECK (off == n);
                break;
              }
            record (log, &event, limit);
            if (finished (&event))
              {
                done = TRUE;
                FUZZ_CHECK (engine_io_ws_decoder_feed (&dec, copy + pos + off, n - off, &event) == 0);
                FUZZ_CHECK (event.type == ENGINE_IO_WS_EVENT_NONE);
              }
            else if (off == n)
              break;
          }
        pos += n;
      }
      FUZZ_CHECK (engine_io_ws_decoder_get_buffered (&dec) <= compressed_limit (limit));
    }
  engine_io_ws_decoder_clear (&dec);
  g_free (copy);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  guint64 limit;
  guint mode;
  g_autoptr(GString) whole = g_string_new (NULL);
  g_autoptr(GString) again = g_string_new (NULL);

  if (size == 0)
    return 0;
  limit = limits[data[0] & 3];
  mode = (data[0] >> 2) & 7;
  compressed_allowed = (data[0] & 0x20) != 0;
  data++;
  size--;

  decode (data, size, limit, 0, 0, whole);
  if (mode < G_N_ELEMENTS (chunk_sizes))
    decode (data, size, limit, chunk_sizes[mode], 0, again);
  else
    decode (data, size, limit, 1, mode == 6 ? 1 : 5000, again);
  FUZZ_CHECK (g_string_equal (whole, again));
  return 0;
}
