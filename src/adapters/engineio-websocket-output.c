/* engineio-websocket-output.c: the WebSocket adapter's output
 *
 * Frames queued by the owner (data) and by the input (control answers)
 * wait in two queues; they move to the wire queue (headers and small
 * frames coalesced in one buffer, large payloads referenced as GBytes)
 * while it is under WRITE_BUFFER_LIMIT, compressed on the way when
 * permessage-deflate was negotiated, and the wire queue is written with
 * one sendmsg() of an iovec. Accounting and bounds:
 * engineio-websocket-internal.h. Nothing here calls back into
 * engineio-websocket.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "engineio-websocket-internal.h"
#include "engineio-ws-deflate-private.h"

/* Output */

OutMsg *
engine_io_websocket_out_msg_new (guint8        opcode,
                                 gint          prefix,
                                 const guint8 *data,
                                 gsize         len,
                                 GBytes       *bytes)
{
  gsize total = len + (prefix >= 0 ? 1 : 0);
  OutMsg *msg;

  if (bytes != NULL && len > COALESCE_MAX)
    {
      msg = g_malloc (sizeof (OutMsg));
      msg->bytes = g_bytes_ref (bytes);
      msg->prefix = (gint16) prefix;
    }
  else
    {
      guint8 *p;

      msg = g_malloc (sizeof (OutMsg) + total);
      msg->bytes = NULL;
      msg->prefix = -1;
      p = msg->data;
      if (prefix >= 0)
        *p++ = (guint8) prefix;
      if (len > 0)
        memcpy (p, data, len);
    }
  msg->opcode = opcode;
  msg->len = total;
  return msg;
}

void
engine_io_websocket_out_msg_free (OutMsg *msg)
{
  g_clear_pointer (&msg->bytes, g_bytes_unref);
  g_free (msg);
}

void
engine_io_websocket_queue_control (EngineIOWebSocket *ws,
                                   guint8             opcode,
                                   const guint8      *data,
                                   gsize              len)
{
  g_queue_push_tail (&ws->ctrl_queue, engine_io_websocket_out_msg_new (opcode, -1, data, len, NULL));
  ws->queued_bytes += len;
}

static void
wire_append (EngineIOWebSocket *ws,
             const guint8      *data,
             gsize              len)
{
  WirePiece *tail = ws->wire->len > ws->wire_head
                    ? &g_array_index (ws->wire, WirePiece, ws->wire->len - 1) : NULL;

  if (len == 0)
    return;
  g_byte_array_append (ws->obuf, data, (guint) len);
  if (tail != NULL && tail->bytes == NULL)
    tail->len += len;
  else
    {
      WirePiece piece = { NULL, len };
      g_array_append_val (ws->wire, piece);
    }
  ws->wire_pending += len;
  ws->out_appended += len;
}

static void
wire_append_bytes (EngineIOWebSocket *ws,
                   GBytes            *bytes,
                   gsize              len)
{
  WirePiece piece = { g_bytes_ref (bytes), len };

  g_array_append_val (ws->wire, piece);
  ws->wire_pending += len;
  ws->out_appended += len;
}

/* Appends @msg compressed (permessage-deflate) with RSV1 set. FALSE if
 * zlib failed: the caller sends it as it is. */
static gboolean
wire_append_deflated (EngineIOWebSocket *ws,
                      OutMsg            *msg)
{
  guint8 header[ENGINE_IO_WS_MAX_HEADER];
  const guint8 *payload;
  gint prefix = -1;
  gsize len = msg->len;
  gsize zlen;
  guint8 *z;
  gsize hlen;

  if (msg->bytes != NULL)
    {
      payload = g_bytes_get_data (msg->bytes, NULL);
      prefix = msg->prefix;
      if (prefix >= 0)
        len--;
    }
  else
    payload = msg->data;
  z = engine_io_ws_deflate_message (prefix, payload, len, &zlen);
  if (z == NULL)
    return FALSE;
  hlen = engine_io_ws_encode_header (header, msg->opcode, TRUE, zlen);
  header[0] |= ENGINE_IO_WS_RSV1;
  wire_append (ws, header, hlen);
  if (zlen > COALESCE_MAX)
    {
      g_autoptr(GBytes) bytes = g_bytes_new_take (z, zlen);

      wire_append_bytes (ws, bytes, zlen);
    }
  else
    {
      wire_append (ws, z, zlen);
      g_free (z);
    }
  return TRUE;
}

/* Moves queued frames to the wire queue while it is under
 * WRITE_BUFFER_LIMIT: control frames first, then data messages. Our close
 * frame is the last: queued data behind it is dropped (never reported
 * sent). */
void
engine_io_websocket_fill_wire (EngineIOWebSocket *ws)
{
  while (ws->write_enabled && ws->wire_pending < WRITE_BUFFER_LIMIT)
    {
      OutMsg *msg = g_queue_pop_head (&ws->ctrl_queue);
      gboolean data = FALSE;
      guint8 header[ENGINE_IO_WS_MAX_HEADER];
      gsize hlen;

      if (msg == NULL)
        {
          msg = g_queue_pop_head (&ws->data_queue);
          data = TRUE;
        }
      if (msg == NULL)
        break;
      ws->queued_bytes -= msg->len;

      if (!data || !ws->deflate || msg->len < ws->deflate_threshold ||
          !wire_append_deflated (ws, msg))
        {
          hlen = engine_io_ws_encode_header (header, msg->opcode, TRUE, msg->len);
          wire_append (ws, header, hlen);
          if (msg->bytes != NULL)
            {
              if (msg->prefix >= 0)
                wire_append (ws, &(guint8) { (guint8) msg->prefix }, 1);
              wire_append_bytes (ws, msg->bytes, msg->len - (msg->prefix >= 0 ? 1 : 0));
            }
          else
            wire_append (ws, msg->data, msg->len);
        }

      if (data)
        {
          /* Written once send() has taken this far (see
           * engine_io_websocket_get_sent_count()). */
          SentMark mark = { ws->out_appended, ++ws->data_written };

          if (ws->msg_ends->len - ws->msg_ends_head < MAX_SENT_MARKS)
            g_array_append_val (ws->msg_ends, mark);
          else
            g_array_index (ws->msg_ends, SentMark, ws->msg_ends->len - 1) = mark;
        }
      else if (msg->opcode == ENGINE_IO_WS_OP_CLOSE)
        {
          ws->close_on_wire = TRUE;
          ws->write_enabled = FALSE;
          g_queue_clear_full (&ws->ctrl_queue, (GDestroyNotify) engine_io_websocket_out_msg_free);
          g_queue_clear_full (&ws->data_queue, (GDestroyNotify) engine_io_websocket_out_msg_free);
          ws->queued_bytes = 0;
        }
      engine_io_websocket_out_msg_free (msg);
    }
}

/* One sendmsg() of the wire queue. FALSE on a fatal error. */
gboolean
engine_io_websocket_write_out (EngineIOWebSocket *ws)
{
  struct iovec iov[MAX_IOV];
  struct msghdr mh = { 0 };
  gsize inline_off = ws->opos;
  guint n = 0;
  ssize_t r;
  gsize left;

  if (pending_output (ws) == 0)
    return TRUE;
  if (ws->released)
    return FALSE;   /* the descriptor was given back */

  for (guint i = ws->wire_head; i < ws->wire->len && n < MAX_IOV; i++)
    {
      WirePiece *piece = &g_array_index (ws->wire, WirePiece, i);
      gsize skip = i == ws->wire_head ? ws->wire_head_off : 0;

      if (piece->bytes == NULL)
        {
          iov[n].iov_base = ws->obuf->data + inline_off;
          inline_off += piece->len - skip;
        }
      else
        iov[n].iov_base = (guint8 *) g_bytes_get_data (piece->bytes, NULL) + skip;
      iov[n].iov_len = piece->len - skip;
      n++;
    }
  mh.msg_iov = iov;
  mh.msg_iovlen = n;

  do
    r = sendmsg (ws->fd, &mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);

  if (r < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return TRUE;
      ws->failed = TRUE;
      return FALSE;
    }

  /* Advance over what was taken. */
  left = (gsize) r;
  while (left > 0)
    {
      WirePiece *piece = &g_array_index (ws->wire, WirePiece, ws->wire_head);
      gsize take = MIN (left, piece->len - ws->wire_head_off);

      if (piece->bytes == NULL)
        ws->opos += take;
      ws->wire_head_off += take;
      left -= take;
      if (ws->wire_head_off == piece->len)
        {
          g_clear_pointer (&piece->bytes, g_bytes_unref);
          ws->wire_head++;
          ws->wire_head_off = 0;
        }
    }
  ws->wire_pending -= (gsize) r;
  ws->out_sent += (guint64) r;
  if (ws->wire_head == ws->wire->len)
    {
      g_array_set_size (ws->wire, 0);
      ws->wire_head = 0;
    }
  else if (ws->wire_head >= 64)
    {
      g_array_remove_range (ws->wire, 0, ws->wire_head);
      ws->wire_head = 0;
    }

  while (ws->msg_ends_head < ws->msg_ends->len &&
         g_array_index (ws->msg_ends, SentMark, ws->msg_ends_head).end <= ws->out_sent)
    {
      ws->data_sent = g_array_index (ws->msg_ends, SentMark, ws->msg_ends_head).count;
      ws->msg_ends_head++;
    }
  if (ws->msg_ends_head == ws->msg_ends->len)
    {
      g_array_set_size (ws->msg_ends, 0);
      ws->msg_ends_head = 0;
    }
  else if (ws->msg_ends_head >= MAX_SENT_MARKS)
    {
      g_array_remove_range (ws->msg_ends, 0, ws->msg_ends_head);
      ws->msg_ends_head = 0;
    }
  if (r > 0)
    ws->progress_at = g_get_monotonic_time ();
  if (ws->opos == ws->obuf->len)
    {
      if (ws->obuf->len > 1024)
        {
          /* Frames went out: do not keep their room (an idle connection
           * holds no buffer beyond a small one). */
          g_byte_array_unref (ws->obuf);
          ws->obuf = g_byte_array_new ();
        }
      else
        g_byte_array_set_size (ws->obuf, 0);
      ws->opos = 0;
    }
  return TRUE;
}
