/* engineio-ws-codec.c: a sans-I/O RFC 6455 frame codec (server role)
 *
 * See engineio-ws-codec-private.h. The per-byte work of a WebSocket
 * server is unmasking and UTF-8 validation; both run here a machine word
 * at a time where they can:
 *  - unmasking XORs 8 bytes at a time with the 4-byte key repeated and
 *    rotated to the payload offset (byte-wise head to alignment and tail;
 *    words are loaded and stored with memcpy(), so unaligned buffers are
 *    defined behaviour);
 *  - UTF-8 validation skips ASCII 8 bytes at a time and runs the rest
 *    through a table-driven DFA (Björn Höhrmann's state table: states are
 *    multiples of 12, 0 accepts, 12 rejects), whose state carries over
 *    between feeds and frames; it rejects on the first byte that cannot
 *    continue a valid sequence (overlongs, surrogates, > U+10FFFF), so an
 *    invalid message fails as soon as that byte arrives.
 *
 * Payload bytes move at most once: a single-frame message wholly inside
 * the caller's input is unmasked in place and delivered from there;
 * anything else is copied (or received, see
 * engine_io_ws_decoder_payload_space()) into the message buffer, which is
 * sized by the frame headers, never beyond max_message.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-ws-codec-private.h"

/* Höhrmann's DFA: byte -> character class (first 256 entries), then
 * state + class -> state. */
static const guint8 utf8d[] = {
  /* 0x00..0x7f: class 0 */
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
  /* 0x80..0x8f: 1, 0x90..0x9f: 9, 0xa0..0xbf: 7 */
  1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,
  7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7, 7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,7,
  /* 0xc0, 0xc1: 8 (overlong); 0xc2..0xdf: 2 */
  8,8,2,2,2,2,2,2,2,2,2,2,2,2,2,2, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
  /* 0xe0: 10; 0xe1..0xec: 3; 0xed: 4; 0xee, 0xef: 3;
   * 0xf0: 11; 0xf1..0xf3: 6; 0xf4: 5; 0xf5..0xff: 8 */
  10,3,3,3,3,3,3,3,3,3,3,3,3,4,3,3, 11,6,6,6,5,8,8,8,8,8,8,8,8,8,8,8,
  /* transitions */
  0,12,24,36,60,96,84,12,12,12,48,72, 12,12,12,12,12,12,12,12,12,12,12,12,
  12, 0,12,12,12,12,12, 0,12, 0,12,12, 12,24,12,12,12,12,12,24,12,24,12,12,
  12,12,12,12,12,12,12,24,12,12,12,12, 12,24,12,12,12,12,12,12,12,24,12,12,
  12,12,12,12,12,12,12,36,12,36,12,12, 12,36,12,12,12,12,12,36,12,36,12,12,
  12,36,12,12,12,12,12,12,12,12,12,12,
};

#define ASCII_MASK G_GUINT64_CONSTANT (0x8080808080808080)

guint32
engine_io_ws_utf8_run (guint32       state,
                       const guint8 *data,
                       gsize         len)
{
  gsize i = 0;

  while (i < len)
    {
      if (state == ENGINE_IO_WS_UTF8_ACCEPT)
        {
          /* Between characters: skip ASCII four words, then a word, at a
           * time. */
          while (len - i >= 32)
            {
              guint64 w[4];

              memcpy (w, data + i, 32);
              if (((w[0] | w[1] | w[2] | w[3]) & ASCII_MASK) != 0)
                break;
              i += 32;
            }
          while (len - i >= 8)
            {
              guint64 w;

              memcpy (&w, data + i, 8);
              if ((w & ASCII_MASK) != 0)
                break;
              i += 8;
            }
          while (i < len && data[i] < 0x80)
            i++;
          if (i == len)
            break;
        }
      state = utf8d[256 + state + utf8d[data[i]]];
      if (state == ENGINE_IO_WS_UTF8_REJECT)
        return state;
      i++;
    }
  return state;
}

void
engine_io_ws_unmask (guint8       *data,
                     gsize         len,
                     const guint8  mask[4],
                     guint64       offset)
{
  gsize i = 0;

  /* Byte head, up to an 8-byte boundary of the buffer. */
  while (i < len && ((guintptr) (data + i) & 7) != 0)
    {
      data[i] ^= mask[(offset + i) & 3];
      i++;
    }
  if (len - i >= 8)
    {
      guint8 rotated[8];
      guint64 m;

      for (guint j = 0; j < 8; j++)
        rotated[j] = mask[(offset + i + j) & 3];
      memcpy (&m, rotated, 8);
      /* i moves by multiples of 8: the rotation stays the same. Four
       * words per step first (independent, so they pipeline). */
      for (; len - i >= 32; i += 32)
        {
          guint64 w[4];

          memcpy (w, data + i, 32);
          w[0] ^= m;
          w[1] ^= m;
          w[2] ^= m;
          w[3] ^= m;
          memcpy (data + i, w, 32);
        }
      for (; len - i >= 8; i += 8)
        {
          guint64 w;

          memcpy (&w, data + i, 8);
          w ^= m;
          memcpy (data + i, &w, 8);
        }
    }
  for (; i < len; i++)
    data[i] ^= mask[(offset + i) & 3];
}

gboolean
engine_io_ws_close_code_valid (guint16 code)
{
  /* RFC 6455, 7.4.1 and 7.4.2: 1004-1006 and 1015 are never sent,
   * 1012-2999 are reserved (as wslay judged them), 3000-4999 are for
   * libraries and applications. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

/* Decoder */

void
engine_io_ws_decoder_init (EngineIOWsDecoder *dec,
                           guint64            max_message)
{
  memset (dec, 0, sizeof *dec);
  dec->max_message = max_message;
  dec->state = ENGINE_IO_WS_DEC_HEADER;
}

static void
free_message (EngineIOWsDecoder *dec)
{
  g_clear_pointer (&dec->msg, g_free);
  dec->msg_len = dec->msg_cap = 0;
  dec->release_msg = FALSE;
}

void
engine_io_ws_decoder_clear (EngineIOWsDecoder *dec)
{
  free_message (dec);
}

void
engine_io_ws_decoder_set_fragment_cost (EngineIOWsDecoder *dec,
                                        guint32            overhead,
                                        guint64            allowance)
{
  dec->frag_overhead = overhead;
  dec->frag_allowance = allowance;
}

void
engine_io_ws_decoder_set_compressed (EngineIOWsDecoder *dec,
                                     gboolean           allowed)
{
  dec->rsv1_allowed = allowed != FALSE;
}

/* What a message may take in the decoder: compressed data of an
 * incompressible message is a little longer than the message. */
static guint64
message_limit (EngineIOWsDecoder *dec,
               gboolean           compressed)
{
  guint64 slack;

  if (!compressed)
    return dec->max_message;
  slack = dec->max_message / 64 + 64;
  return dec->max_message > G_MAXUINT64 / 2 - slack ? dec->max_message : dec->max_message + slack;
}

void
engine_io_ws_decoder_release (EngineIOWsDecoder *dec)
{
  if (dec->release_msg)
    free_message (dec);
}

guint8 *
engine_io_ws_decoder_steal_message (EngineIOWsDecoder *dec,
                                    gsize              size)
{
  guint8 *msg;

  if (!dec->release_msg || dec->msg == NULL || dec->msg_len != size)
    return NULL;
  msg = dec->msg;
  /* A message in many fragments may have left room behind it (the buffer
   * grows geometrically): give it back, the caller keeps the buffer. */
  if (dec->msg_cap - dec->msg_len > dec->msg_len / 8)
    msg = g_realloc (msg, dec->msg_len + 1);
  msg[dec->msg_len] = '\0';
  dec->msg = NULL;
  dec->msg_len = dec->msg_cap = 0;
  dec->release_msg = FALSE;
  return msg;
}

gboolean
engine_io_ws_decoder_at_frame_boundary (EngineIOWsDecoder *dec)
{
  return dec->state == ENGINE_IO_WS_DEC_HEADER && dec->hdr_len == 0;
}

gsize
engine_io_ws_decoder_get_buffered (EngineIOWsDecoder *dec)
{
  return dec->msg_cap;
}

static void
fail (EngineIOWsDecoder *dec,
      EngineIOWsEvent   *event,
      guint16            code,
      const char        *message)
{
  dec->state = ENGINE_IO_WS_DEC_FAILED;
  free_message (dec);
  event->type = ENGINE_IO_WS_EVENT_ERROR;
  event->code = code;
  event->error_message = message;
  event->data = NULL;
  event->size = 0;
}

static gboolean
is_control (guint8 opcode)
{
  return (opcode & 0x08) != 0;
}

/* Checks what the first header byte says. */
static gboolean
check_byte0 (EngineIOWsDecoder *dec,
             EngineIOWsEvent   *event)
{
  guint8 b = dec->hdr[0];
  guint8 opcode = b & 0x0f;

  dec->fin = (b & 0x80) != 0;
  dec->opcode = opcode;
  dec->ctrl_len = 0;
  dec->frame_rsv1 = FALSE;
  if ((b & 0x70) != 0)
    {
      if ((b & 0x70) == ENGINE_IO_WS_RSV1 && dec->rsv1_allowed &&
          (opcode == ENGINE_IO_WS_OP_TEXT || opcode == ENGINE_IO_WS_OP_BINARY))
        dec->frame_rsv1 = TRUE;  /* a compressed message (RFC 7692, 6) */
      else
        {
          fail (dec, event, 1002, dec->rsv1_allowed && (b & 0x70) == ENGINE_IO_WS_RSV1
                                  ? "RSV1 set on a continuation or control frame"
                                  : "reserved bits set (no extension negotiated)");
          return FALSE;
        }
    }
  switch (opcode)
    {
    case ENGINE_IO_WS_OP_CONTINUATION:
      if (!dec->in_message)
        {
          fail (dec, event, 1002, "continuation frame with no message to continue");
          return FALSE;
        }
      break;
    case ENGINE_IO_WS_OP_TEXT:
    case ENGINE_IO_WS_OP_BINARY:
      if (dec->in_message)
        {
          fail (dec, event, 1002, "new data message inside a fragmented one");
          return FALSE;
        }
      break;
    case ENGINE_IO_WS_OP_CLOSE:
    case ENGINE_IO_WS_OP_PING:
    case ENGINE_IO_WS_OP_PONG:
      if (!dec->fin)
        {
          fail (dec, event, 1002, "fragmented control frame");
          return FALSE;
        }
      break;
    default:
      fail (dec, event, 1002, "reserved opcode");
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_byte1 (EngineIOWsDecoder *dec,
             EngineIOWsEvent   *event)
{
  guint8 b = dec->hdr[1];
  guint8 len7 = b & 0x7f;

  if ((b & 0x80) == 0)
    {
      fail (dec, event, 1002, "unmasked client frame");
      return FALSE;
    }
  if (is_control (dec->opcode) && len7 > 125)
    {
      fail (dec, event, 1002, "control frame payload over 125 bytes");
      return FALSE;
    }
  dec->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
  return TRUE;
}

static void deliver_control (EngineIOWsDecoder *dec, EngineIOWsEvent *event);
static void end_data_frame  (EngineIOWsDecoder *dec, EngineIOWsEvent *event);

/* The header is complete. */
static void
header_done (EngineIOWsDecoder *dec,
             EngineIOWsEvent   *event)
{
  guint8 len7 = dec->hdr[1] & 0x7f;
  guint8 *key = dec->hdr + dec->hdr_need - 4;
  guint64 length;
  guint64 limit;

  if (len7 == 126)
    length = ((guint64) dec->hdr[2] << 8) | dec->hdr[3];
  else if (len7 == 127)
    {
      length = 0;
      for (guint i = 2; i < 10; i++)
        length = (length << 8) | dec->hdr[i];
      if (length >> 63)
        {
          fail (dec, event, 1002, "payload length with its most significant bit set");
          return;
        }
    }
  else
    length = len7;
  memcpy (dec->mask, key, 4);
  dec->frame_len = length;
  dec->frame_off = 0;
  dec->hdr_len = dec->hdr_need = 0;
  dec->msg_direct = FALSE;

  if (is_control (dec->opcode))
    {
      dec->ctrl_len = 0;
      if (length == 0)
        deliver_control (dec, event);
      else
        dec->state = ENGINE_IO_WS_DEC_PAYLOAD;
      return;
    }

  /* A data frame: the limit, before a byte of its payload is read. */
  limit = message_limit (dec, dec->opcode == ENGINE_IO_WS_OP_CONTINUATION
                              ? dec->msg_compressed : dec->frame_rsv1);
  if (length > limit || (dec->in_message && length > limit - dec->msg_len))
    {
      fail (dec, event, 1009, "message over the size limit");
      return;
    }
  if (dec->opcode != ENGINE_IO_WS_OP_CONTINUATION)
    {
      dec->in_message = TRUE;
      dec->msg_compressed = dec->frame_rsv1;
      dec->msg_opcode = dec->opcode;
      dec->utf8_state = ENGINE_IO_WS_UTF8_ACCEPT;
      dec->msg_len = 0;
      dec->msg_cost = 0;
    }
  if (dec->frag_overhead > 0 && length > 0)
    {
      guint64 bound = dec->max_message > G_MAXUINT64 - dec->frag_allowance
                      ? G_MAXUINT64 : dec->max_message + dec->frag_allowance;
      guint64 cost = length + dec->frag_overhead;  /* length <= max_message < 2^63 */

      if (cost > bound - MIN (dec->msg_cost, bound))
        {
          fail (dec, event, 1009, "message in too many fragments");
          return;
        }
      dec->msg_cost += cost;
    }
  if (length == 0)
    end_data_frame (dec, event);
  else
    dec->state = ENGINE_IO_WS_DEC_PAYLOAD;
}

static void
deliver_control (EngineIOWsDecoder *dec,
                 EngineIOWsEvent   *event)
{
  dec->state = ENGINE_IO_WS_DEC_HEADER;
  event->data = dec->ctrl;
  event->size = dec->ctrl_len;
  switch (dec->opcode)
    {
    case ENGINE_IO_WS_OP_PING:
      event->type = ENGINE_IO_WS_EVENT_PING;
      break;
    case ENGINE_IO_WS_OP_PONG:
      event->type = ENGINE_IO_WS_EVENT_PONG;
      break;
    default: /* close */
      if (dec->ctrl_len == 0)
        {
          event->code = 1005;
        }
      else if (dec->ctrl_len == 1)
        {
          fail (dec, event, 1002, "close frame with a 1-byte payload");
          return;
        }
      else
        {
          event->code = (guint16) ((dec->ctrl[0] << 8) | dec->ctrl[1]);
          if (!engine_io_ws_close_code_valid (event->code))
            {
              fail (dec, event, 1002, "invalid close code");
              return;
            }
          if (engine_io_ws_utf8_run (ENGINE_IO_WS_UTF8_ACCEPT, dec->ctrl + 2,
                                     dec->ctrl_len - 2u) != ENGINE_IO_WS_UTF8_ACCEPT)
            {
              fail (dec, event, 1007, "close reason not valid UTF-8");
              return;
            }
          event->data = dec->ctrl + 2;
          event->size = dec->ctrl_len - 2u;
        }
      event->type = ENGINE_IO_WS_EVENT_CLOSE;
      dec->state = ENGINE_IO_WS_DEC_CLOSED;
      break;
    }
}

static void
end_data_frame (EngineIOWsDecoder *dec,
                EngineIOWsEvent   *event)
{
  dec->state = ENGINE_IO_WS_DEC_HEADER;
  if (!dec->fin)
    return;
  if (dec->msg_opcode == ENGINE_IO_WS_OP_TEXT && !dec->msg_compressed &&
      dec->utf8_state != ENGINE_IO_WS_UTF8_ACCEPT)
    {
      fail (dec, event, 1007, "text message ends inside a character");
      return;
    }
  event->type = ENGINE_IO_WS_EVENT_MESSAGE;
  event->binary = dec->msg_opcode == ENGINE_IO_WS_OP_BINARY;
  event->compressed = dec->msg_compressed;
  if (!dec->msg_direct)
    {
      event->data = dec->msg != NULL ? dec->msg : (const guint8 *) "";
      event->size = dec->msg_len;
      dec->release_msg = TRUE;  /* freed at the next call */
    }
  dec->in_message = FALSE;
  dec->msg_direct = FALSE;
}

/* Makes room in the message buffer for the rest of the current frame. */
static void
reserve (EngineIOWsDecoder *dec)
{
  gsize need = dec->msg_len + (gsize) (dec->frame_len - dec->frame_off);
  gsize cap;

  if (need <= dec->msg_cap)
    return;
  /* Grow geometrically for messages in many fragments, but never past
   * what the limit allows (need is within it: checked at the header). */
  cap = MAX (need, MIN (dec->msg_cap * 2,
                        (gsize) MIN (message_limit (dec, dec->msg_compressed), G_MAXSIZE)));
  /* One byte more than the capacity: room for the NUL that
   * engine_io_ws_decoder_steal_message() promises after a message. */
  dec->msg = g_realloc (dec->msg, cap + 1);
  dec->msg_cap = cap;
}

/* @n payload bytes of a data frame are at dec->msg + dec->msg_len,
 * masked: unmask, validate, account. */
static void
data_in_buffer (EngineIOWsDecoder *dec,
                gsize              n,
                EngineIOWsEvent   *event)
{
  guint8 *p = dec->msg + dec->msg_len;

  engine_io_ws_unmask (p, n, dec->mask, dec->frame_off);
  dec->msg_len += n;
  dec->frame_off += n;
  if (dec->msg_opcode == ENGINE_IO_WS_OP_TEXT && !dec->msg_compressed)
    {
      dec->utf8_state = engine_io_ws_utf8_run (dec->utf8_state, p, n);
      if (dec->utf8_state == ENGINE_IO_WS_UTF8_REJECT)
        {
          fail (dec, event, 1007, "text message not valid UTF-8");
          return;
        }
    }
  if (dec->frame_off == dec->frame_len)
    end_data_frame (dec, event);
}

/* @n (> 0) payload bytes of the current frame, at @p in the input. */
static void
payload (EngineIOWsDecoder *dec,
         guint8            *p,
         gsize              n,
         EngineIOWsEvent   *event)
{
  if (is_control (dec->opcode))
    {
      engine_io_ws_unmask (p, n, dec->mask, dec->frame_off);
      memcpy (dec->ctrl + dec->ctrl_len, p, n);
      dec->ctrl_len += (guint8) n;
      dec->frame_off += n;
      if (dec->frame_off == dec->frame_len)
        deliver_control (dec, event);
      return;
    }

  if (dec->fin && dec->opcode != ENGINE_IO_WS_OP_CONTINUATION && dec->frame_off == 0 &&
      n == dec->frame_len)
    {
      /* A whole message in the input: unmasked in place, delivered from
       * there. */
      engine_io_ws_unmask (p, n, dec->mask, 0);
      dec->frame_off = n;
      if (dec->msg_opcode == ENGINE_IO_WS_OP_TEXT && !dec->msg_compressed &&
          (dec->utf8_state = engine_io_ws_utf8_run (ENGINE_IO_WS_UTF8_ACCEPT, p, n)) ==
          ENGINE_IO_WS_UTF8_REJECT)
        {
          fail (dec, event, 1007, "text message not valid UTF-8");
          return;
        }
      dec->msg_direct = TRUE;
      event->data = p;
      event->size = n;
      end_data_frame (dec, event);
      return;
    }

  reserve (dec);
  memcpy (dec->msg + dec->msg_len, p, n);
  data_in_buffer (dec, n, event);
}

gsize
engine_io_ws_decoder_feed (EngineIOWsDecoder *dec,
                           guint8            *data,
                           gsize              len,
                           EngineIOWsEvent   *event)
{
  gsize i = 0;

  memset (event, 0, sizeof *event);
  if (dec->release_msg)
    free_message (dec);

  while (i < len)
    {
      switch (dec->state)
        {
        case ENGINE_IO_WS_DEC_HEADER:
          dec->hdr[dec->hdr_len++] = data[i++];
          if (dec->hdr_len == 1)
            {
              if (!check_byte0 (dec, event))
                return i;
            }
          else if (dec->hdr_len == 2)
            {
              if (!check_byte1 (dec, event))
                return i;
            }
          if (dec->hdr_len == dec->hdr_need)
            {
              header_done (dec, event);
              if (event->type != ENGINE_IO_WS_EVENT_NONE)
                return i;
            }
          break;

        case ENGINE_IO_WS_DEC_PAYLOAD:
          {
            gsize n = (gsize) MIN (dec->frame_len - dec->frame_off, (guint64) (len - i));

            payload (dec, data + i, n, event);
            i += n;
            if (event->type != ENGINE_IO_WS_EVENT_NONE)
              return i;
          }
          break;

        case ENGINE_IO_WS_DEC_CLOSED:
        case ENGINE_IO_WS_DEC_FAILED:
        default:
          return i;
        }
    }
  return i;
}

guint8 *
engine_io_ws_decoder_payload_space (EngineIOWsDecoder *dec,
                                    gsize              min_size,
                                    gsize             *n)
{
  guint64 left;

  *n = 0;
  if (dec->release_msg)
    free_message (dec);
  if (dec->state != ENGINE_IO_WS_DEC_PAYLOAD || is_control (dec->opcode))
    return NULL;
  left = dec->frame_len - dec->frame_off;
  if (left < MAX (min_size, 1))
    return NULL;
  reserve (dec);
  *n = (gsize) left;
  return dec->msg + dec->msg_len;
}

void
engine_io_ws_decoder_payload_written (EngineIOWsDecoder *dec,
                                      gsize              n,
                                      EngineIOWsEvent   *event)
{
  memset (event, 0, sizeof *event);
  g_return_if_fail (dec->state == ENGINE_IO_WS_DEC_PAYLOAD && !is_control (dec->opcode));
  g_return_if_fail (n <= dec->frame_len - dec->frame_off && dec->msg_len + n <= dec->msg_cap);
  if (n == 0)
    return;
  data_in_buffer (dec, n, event);
}

/* Encoder */

gsize
engine_io_ws_encode_header (guint8           *buf,
                            EngineIOWsOpcode  opcode,
                            gboolean          fin,
                            guint64           payload_len)
{
  buf[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  if (payload_len < 126)
    {
      buf[1] = (guint8) payload_len;
      return 2;
    }
  if (payload_len <= 0xffff)
    {
      buf[1] = 126;
      buf[2] = (guint8) (payload_len >> 8);
      buf[3] = (guint8) payload_len;
      return 4;
    }
  buf[1] = 127;
  for (guint i = 0; i < 8; i++)
    buf[2 + i] = (guint8) (payload_len >> (56 - 8 * i));
  return 10;
}

gsize
engine_io_ws_encode_close (guint8     *buf,
                           guint16     code,
                           const char *reason)
{
  gsize reason_len = 0;

  if (code == 0)
    return engine_io_ws_encode_header (buf, ENGINE_IO_WS_OP_CLOSE, TRUE, 0);
  if (reason != NULL)
    {
      reason_len = strlen (reason);
      if (reason_len > 123)
        {
          reason_len = 123;
          /* Cut on a character boundary. */
          while (reason_len > 0 && ((guint8) reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
        }
    }
  engine_io_ws_encode_header (buf, ENGINE_IO_WS_OP_CLOSE, TRUE, 2 + reason_len);
  buf[2] = (guint8) (code >> 8);
  buf[3] = (guint8) code;
  if (reason_len > 0)
    memcpy (buf + 4, reason, reason_len);
  return 4 + reason_len;
}
