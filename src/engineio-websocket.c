/* engineio-websocket.c: the wslay adapter
 *
 * The only file that includes <wslay/wslay.h>. wslay does the framing
 * (masking, fragments, control frames, close handshake, the 1009 limit);
 * this file does the non-blocking I/O from a GSource in the session's
 * context.
 *
 * System calls are what a small message costs, so:
 *  - wslay's event API asks its recv callback for a few KiB at a time; we
 *    read large chunks into our own buffer and serve it from there, and
 *    read the socket at most once per dispatch (after a short read the
 *    kernel would only say EAGAIN; after a full one, a level-triggered
 *    poll brings us back, after the other sources of the context had
 *    their turn);
 *  - wslay writes a frame's header and payload in separate calls; its send
 *    callback appends to our output buffer, written with one send() per
 *    dispatch (or per flush);
 *  - the GSource is re-entrant-safe and marked so, because GLib otherwise
 *    removes and re-adds its fd around every dispatch, and its poll events
 *    change only when they need to.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include <wslay/wslay.h>

#include "engineio-websocket-private.h"

#define READ_BUFFER_SIZE (256 * 1024)
#define WRITE_BUFFER_LIMIT (256 * 1024)
#define CLOSE_TIMEOUT_MS 3000

/* Output bounds (RFC 6455, 10.4). What a connection holds for sending is
 * counted in real bytes: our write buffer plus wslay's queued messages,
 * each costing its payload and WSLAY_MSG_OVERHEAD (wslay 1.1.1 mallocs a
 * message struct, a queue cell and a copy of the payload per message:
 * about 100 bytes of glibc chunks besides the payload). While it is at
 * OUTPUT_READ_LIMIT or more, the connection is not read. The owner keeps
 * its own data under WS_BUFFER_TARGET (engineio-socket.c) by
 * engine_io_websocket_get_buffered(), so only single large messages come
 * near this bound.
 *
 * Control frames the peer makes us answer (pongs, the close reply) are
 * bounded by count: wslay queues one pong per ping it parses, so we hand
 * it the client's bytes only up to the end of each control frame
 * (follow_input()), and stop handing it any while MAX_PENDING_CONTROL
 * answers are queued in wslay, not yet in our write buffer (which only
 * takes them while it is under WRITE_BUFFER_LIMIT). A client that sends
 * pings without reading the pongs fills its own TCP window, not our
 * memory. */
#define WSLAY_MSG_OVERHEAD 128
#define OUTPUT_READ_LIMIT (1024 * 1024)
#define MAX_PENDING_CONTROL 16
/* A message received in fragments: wslay 1.1.1 holds each fragment that
 * has a payload in its own chunk (a chunk struct, a queue cell and a
 * malloc of the payload: about 96 bytes of glibc chunks besides the
 * payload) until the last one comes, and checks only the payload against
 * max-payload, so a max-payload message in 1-byte fragments would hold
 * ~100 times max-payload. We count each such fragment at its payload plus
 * FRAGMENT_OVERHEAD, and answer a message whose count passes max-payload
 * by more than fragment_allowance() (an eighth of it and 64 KiB: fragments
 * of 1 KiB or more always fit) as a message too big, with 1009. */
#define FRAGMENT_OVERHEAD 96

static guint64
fragment_allowance (guint64 max_message)
{
  return max_message / 8 + 64 * 1024;
}
/* Rounds of reading and writing per dispatch while control answers hold
 * reading up (see ws_source_dispatch()). */
#define CONTROL_ROUNDS 64

typedef struct
{
  GSource            source;
  EngineIOWebSocket *ws;
} WsSource;

/* Which data messages send() has taken: @count of them once @end bytes
 * (of all ever appended to the write buffer) are sent. At most
 * MAX_SENT_MARKS are kept: past that the last one moves on (its messages
 * are known sent a little later), so tiny messages cost no memory per
 * message here. */
typedef struct
{
  guint64 end;
  guint64 count;
} SentMark;

#define MAX_SENT_MARKS 256

struct _EngineIOWebSocket
{
  int                               fd;
  wslay_event_context_ptr           ctx;
  guint64                           max_message;

  GMainContext                     *context;      /* ref, once started */
  GSource                          *source;       /* owned, once started */
  gpointer                          fd_tag;
  GSource                          *close_timer;  /* owned */
  GSource                          *stall_timer;  /* owned, once started; see stall_source_dispatch() */
  guint                             stall_timeout_ms;
  gint64                            progress_at;  /* monotonic µs: last write, or output became pending */
  gboolean                          stall_armed;  /* @stall_timer has a ready time */
  const EngineIOWebSocketCallbacks *callbacks;
  gpointer                          user_data;

  EngineIOWebSocketReleaseFunc      release;
  gpointer                          release_data;

  guint8                           *rbuf;         /* read-ahead buffer, while it holds data */
  gsize                             rcap;
  gsize                             rlen;
  gsize                             rpos;

  gboolean                          read_done;    /* the socket was read this dispatch */
  gboolean                          paused;       /* the owner wants no more messages for now */
  GByteArray                       *obuf;         /* frames not yet written */
  gsize                             opos;         /* written part of @obuf */
  GIOCondition                      events;       /* what the fd is polled for */

  gboolean                          in_dispatch;
  gboolean                          failed;       /* an I/O error or EOF */
  gboolean                          released;     /* the socket was given back */
  gboolean                          close_received;
  guint16                           close_code;
  gboolean                          stalled;      /* output made no progress for stall_timeout_ms */
  gboolean                          close_1002;   /* our answer to a bad close frame must say 1002 */
  guint64                           out_frame_left; /* payload bytes of the frame wslay is writing */
  gboolean                          out_ctrl;     /* ... and it is a control frame */
  guint64                           data_queued;  /* data messages given to wslay */
  guint64                           data_written; /* ... and written to our buffer */
  guint64                           out_appended; /* bytes ever appended to @obuf */
  guint64                           out_sent;     /* ... and taken by send() */
  GArray                           *msg_ends;     /* SentMark: where data messages in @obuf end,
                                                   * not yet all sent (see MAX_SENT_MARKS) */
  guint                             msg_ends_head;/* first live element of @msg_ends */
  guint64                           data_sent;    /* data messages all taken by send() */
  gboolean                          control_wait; /* recv_cb() stopped for MAX_PENDING_CONTROL */

  /* The peer's frames, followed as they are handed to wslay (see
   * follow_input()). */
  guint8                            in_hdr[14];
  guint                             in_hdr_len;   /* header bytes seen */
  guint                             in_hdr_need;  /* header length, once known (0: not yet) */
  guint64                           in_frame_left;/* payload bytes left */
  gboolean                          in_ctrl;      /* the frame is a control frame */
  guint64                           in_msg_cost;  /* the data message being received, in memory */
  gboolean                          in_too_big;   /* ... passed its bound: close with 1009 */
  gboolean                          drain_pending;
  gboolean                          close_pending; /* close once the data is out */
  guint16                           close_pending_code;
  char                             *close_pending_reason;
};

/* Read buffers. An idle WebSocket holds none: each thread keeps one spare
 * buffer, lent to a WebSocket for a dispatch and given back when all it
 * read has been consumed, so memory per idle session stays small. */
static GPrivate spare_read_buffer = G_PRIVATE_INIT (g_free);

static void
borrow_read_buffer (EngineIOWebSocket *ws)
{
  guint8 *buf = g_private_get (&spare_read_buffer);

  g_free (ws->rbuf);  /* empty (or too small: the bytes that came with the upgrade) */
  if (buf != NULL)
    g_private_set (&spare_read_buffer, NULL);
  else
    buf = g_malloc (READ_BUFFER_SIZE);
  ws->rbuf = buf;
  ws->rcap = READ_BUFFER_SIZE;
  ws->rlen = ws->rpos = 0;
}

/* Gives the buffer back if everything in it was consumed. */
static void
release_read_buffer (EngineIOWebSocket *ws)
{
  if (ws->rbuf == NULL || ws->rpos < ws->rlen)
    return;
  if (ws->rcap == READ_BUFFER_SIZE && g_private_get (&spare_read_buffer) == NULL)
    g_private_set (&spare_read_buffer, ws->rbuf);
  else
    g_free (ws->rbuf);
  ws->rbuf = NULL;
  ws->rcap = ws->rlen = ws->rpos = 0;
}

static gsize
pending_output (EngineIOWebSocket *ws)
{
  return ws->obuf->len - ws->opos;
}

/* What the connection holds for sending, in real bytes (see
 * OUTPUT_READ_LIMIT). */
static gsize
output_cost (EngineIOWebSocket *ws)
{
  return pending_output (ws) + wslay_event_get_queued_msg_length (ws->ctx) +
         wslay_event_get_queued_msg_count (ws->ctx) * WSLAY_MSG_OVERHEAD;
}

/* Control frames (pongs, a close) queued in wslay, not yet written to
 * our buffer: its queue holds them and the data messages not yet written
 * (see send_cb()). */
static gsize
pending_control (EngineIOWebSocket *ws)
{
  gsize count = wslay_event_get_queued_msg_count (ws->ctx);
  guint64 data = ws->data_queued - ws->data_written;

  return count > data ? count - (gsize) data : 0;
}

/* Whether reading must wait: the owner asked, the output is over its
 * bound, control answers wait to be written, or the output stalled (the
 * connection is closing). */
static gboolean
read_blocked (EngineIOWebSocket *ws)
{
  return ws->paused || ws->stalled || output_cost (ws) >= OUTPUT_READ_LIMIT ||
         pending_control (ws) >= MAX_PENDING_CONTROL;
}

static guint64 header_payload_length (const uint8_t *data, size_t len);

/* How many of the @n bytes at @data (the next ones of the stream) wslay
 * may have now: all of them, or up to the end of the first control frame
 * that ends among them, so that wslay answers one control frame at a
 * time and recv_cb() can stop before the next one. Follows the frame
 * headers (whatever wslay makes of them: it fails the connection on a bad
 * one). */
static gsize
follow_input (EngineIOWebSocket *ws,
              const guint8      *data,
              gsize              n)
{
  gsize i = 0;

  while (i < n)
    {
      gboolean frame_end = FALSE;

      if (ws->in_hdr_need == 0 || ws->in_hdr_len < ws->in_hdr_need)
        {
          ws->in_hdr[ws->in_hdr_len++] = data[i++];
          if (ws->in_hdr_len == 2)
            {
              guint8 length = ws->in_hdr[1] & 0x7f;
              ws->in_hdr_need = 2 + (length == 126 ? 2 : length == 127 ? 8 : 0) +
                                ((ws->in_hdr[1] & 0x80) ? 4 : 0);
            }
          if (ws->in_hdr_len == ws->in_hdr_need)
            {
              ws->in_frame_left = header_payload_length (ws->in_hdr, ws->in_hdr_len);
              ws->in_ctrl = (ws->in_hdr[0] & 0x08) != 0;
              frame_end = ws->in_frame_left == 0;
              if (!ws->in_ctrl)
                {
                  /* A data frame: what wslay will hold of its message
                   * (see FRAGMENT_OVERHEAD). Text and binary frames
                   * start a message, continuations add to it. */
                  if ((ws->in_hdr[0] & 0x0f) != 0)
                    ws->in_msg_cost = 0;
                  if (ws->in_frame_left > 0)
                    ws->in_msg_cost += MIN (ws->in_frame_left, G_MAXUINT32) + FRAGMENT_OVERHEAD;
                  if (ws->in_msg_cost > ws->max_message + fragment_allowance (ws->max_message))
                    {
                      /* wslay gets this header, not its payload: recv_cb()
                       * closes with 1009 before wslay holds any of it. */
                      ws->in_too_big = TRUE;
                      ws->in_hdr_len = ws->in_hdr_need = 0;
                      break;
                    }
                }
            }
        }
      else
        {
          gsize take = (gsize) MIN (ws->in_frame_left, (guint64) (n - i));

          i += take;
          ws->in_frame_left -= take;
          frame_end = ws->in_frame_left == 0;
        }

      if (frame_end)
        {
          ws->in_hdr_len = ws->in_hdr_need = 0;
          if (ws->in_ctrl)
            break;
        }
    }
  return i;
}

/* wslay callbacks */

static ssize_t
recv_cb (wslay_event_context_ptr  ctx,
         uint8_t                 *buf,
         size_t                   len,
         int                      flags,
         void                    *user_data)
{
  EngineIOWebSocket *ws = user_data;
  gsize n;

  if (ws->in_too_big)
    {
      /* A fragmented message past its bound (see FRAGMENT_OVERHEAD):
       * close with 1009 as wslay does for a payload over the limit, and
       * read no more (the connection ends once the close is out). */
      if (wslay_event_get_read_enabled (ctx))
        {
          ws->close_code = 1009;
          wslay_event_queue_close (ctx, 1009, NULL, 0);
          wslay_event_shutdown_read (ctx);
        }
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
  if (pending_control (ws) >= MAX_PENDING_CONTROL)
    ws->control_wait = TRUE;  /* see ws_source_dispatch() */
  if (read_blocked (ws))
    {
      wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }

  if (ws->rpos == ws->rlen)
    {
      ssize_t r;

      /* One read of the socket per dispatch: a client that writes faster
       * than we parse must not keep the loop thread from its other
       * sources (a level-triggered poll brings us back). */
      if (ws->read_done)
        {
          wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
          return -1;
        }

      if (ws->rcap < READ_BUFFER_SIZE)
        borrow_read_buffer (ws);
      do
        r = recv (ws->fd, ws->rbuf, READ_BUFFER_SIZE, 0);
      while (r < 0 && errno == EINTR);

      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
          return -1;
        }
      if (r <= 0)
        {
          ws->failed = TRUE;  /* EOF or reset */
          wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE);
          return -1;
        }
      ws->rlen = (gsize) r;
      ws->rpos = 0;
      ws->read_done = TRUE;
    }

  n = follow_input (ws, ws->rbuf + ws->rpos, MIN (len, ws->rlen - ws->rpos));
  memcpy (buf, ws->rbuf + ws->rpos, n);
  ws->rpos += n;
  return (ssize_t) n;
}

/* One send() of what is buffered. FALSE on a fatal error. */
static gboolean
write_out (EngineIOWebSocket *ws)
{
  ssize_t r;

  if (pending_output (ws) == 0)
    return TRUE;

  do
    r = send (ws->fd, ws->obuf->data + ws->opos, pending_output (ws), MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);

  if (r < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return TRUE;
      ws->failed = TRUE;
      return FALSE;
    }

  ws->opos += (gsize) r;
  ws->out_sent += (guint64) r;
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
      if (ws->obuf->len > 2 * WRITE_BUFFER_LIMIT)
        {
          /* A large message went out: do not keep its room. */
          g_byte_array_unref (ws->obuf);
          ws->obuf = g_byte_array_new ();
        }
      else
        g_byte_array_set_size (ws->obuf, 0);
      ws->opos = 0;
    }
  return TRUE;
}

/* wslay writes each frame as its whole header in one call (we take all of
 * a call or none), then the payload. Following the frames this way tells
 * data messages written from control frames still queued
 * (pending_control()), and lets us put the right status code in the close
 * frame that answers a malformed one (wslay answers an empty close
 * there). Returns the payload length of the frame whose header is @data
 * (a client's header, masked, too). */
static guint64
header_payload_length (const uint8_t *data,
                       size_t         len)
{
  guint64 length = len >= 2 ? data[1] & 0x7f : 0;

  if (length == 126 && len >= 4)
    length = ((guint64) data[2] << 8) | data[3];
  else if (length == 127 && len >= 10)
    {
      length = 0;
      for (guint i = 2; i < 10; i++)
        length = (length << 8) | data[i];
    }
  return length;
}

static ssize_t
send_cb (wslay_event_context_ptr  ctx,
         const uint8_t           *data,
         size_t                   len,
         int                      flags,
         void                    *user_data)
{
  EngineIOWebSocket *ws = user_data;
  gboolean message_end;

  if (pending_output (ws) >= WRITE_BUFFER_LIMIT)
    {
      /* Full: make room, or let wslay wait for writability. */
      if (!write_out (ws))
        {
          wslay_event_set_error (ctx, WSLAY_ERR_CALLBACK_FAILURE);
          return -1;
        }
      if (pending_output (ws) >= WRITE_BUFFER_LIMIT)
        {
          wslay_event_set_error (ctx, WSLAY_ERR_WOULDBLOCK);
          return -1;
        }
    }

  if (ws->opos > 0 && ws->opos == ws->obuf->len)
    {
      g_byte_array_set_size (ws->obuf, 0);
      ws->opos = 0;
    }

  if (ws->out_frame_left == 0)
    {
      /* A frame header. */
      guint64 length = header_payload_length (data, len);

      if (ws->close_1002 && len == 2 && (data[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && length == 0)
        {
          static const guint8 close_1002[] = { 0x88, 0x02, 0x03, 0xEA };

          g_byte_array_append (ws->obuf, close_1002, sizeof close_1002);
          ws->out_appended += sizeof close_1002;
          return (ssize_t) len;
        }
      ws->out_frame_left = length;
      ws->out_ctrl = (data[0] & 0x08) != 0;
      message_end = length == 0 && !ws->out_ctrl;
    }
  else
    {
      ws->out_frame_left -= MIN (ws->out_frame_left, len);
      message_end = ws->out_frame_left == 0 && !ws->out_ctrl;
    }

  g_byte_array_append (ws->obuf, data, len);
  ws->out_appended += len;
  if (message_end)
    {
      /* Written once send() has taken this far (see
       * engine_io_websocket_get_sent_count()). */
      SentMark mark = { ws->out_appended, ++ws->data_written };

      if (ws->msg_ends->len - ws->msg_ends_head < MAX_SENT_MARKS)
        g_array_append_val (ws->msg_ends, mark);
      else
        g_array_index (ws->msg_ends, SentMark, ws->msg_ends->len - 1) = mark;
    }
  return (ssize_t) len;
}

static void
on_msg_recv_cb (wslay_event_context_ptr                   ctx,
                const struct wslay_event_on_msg_recv_arg *arg,
                void                                     *user_data)
{
  EngineIOWebSocket *ws = user_data;

  if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
    {
      if (!ws->released && ws->callbacks != NULL)
        ws->callbacks->message (ws, arg->opcode == WSLAY_BINARY_FRAME,
                                arg->msg, arg->msg_length, ws->user_data);
    }
  else if (arg->opcode == WSLAY_CONNECTION_CLOSE)
    {
      ws->close_received = TRUE;
      ws->close_code = arg->status_code;
      /* A close payload is empty or starts with a status code: one byte
       * is a protocol error (RFC 6455, 5.5.1), which wslay answers with
       * an empty close; send_cb() puts 1002 in it. */
      if (arg->msg_length == 1)
        {
          ws->close_1002 = TRUE;
          ws->close_code = 1002;
        }
    }
}

static const struct wslay_event_callbacks wslay_callbacks = {
  .recv_callback = recv_cb,
  .send_callback = send_cb,
  .on_msg_recv_callback = on_msg_recv_cb,
};

/* I/O */

static void
release_socket (EngineIOWebSocket *ws)
{
  if (ws->released)
    return;
  ws->released = TRUE;

  if (ws->source != NULL)
    {
      g_source_destroy (ws->source);
      g_clear_pointer (&ws->source, g_source_unref);
    }
  if (ws->close_timer != NULL)
    {
      g_source_destroy (ws->close_timer);
      g_clear_pointer (&ws->close_timer, g_source_unref);
    }
  if (ws->stall_timer != NULL)
    {
      g_source_destroy (ws->stall_timer);
      g_clear_pointer (&ws->stall_timer, g_source_unref);
    }
  ws->release (ws->release_data);
}

/* The connection is over: give the socket back, then tell the owner (who
 * may free @ws from the callback). */
static void
finish (EngineIOWebSocket *ws)
{
  gboolean clean = ws->close_received;
  guint16 code = ws->close_received ? ws->close_code : 1006;

  if (ws->released)
    return;
  release_socket (ws);
  if (ws->callbacks != NULL)
    ws->callbacks->closed (ws, clean, code == 0 ? 1005 : code, ws->user_data);
}

static gboolean
want_write (EngineIOWebSocket *ws)
{
  return pending_output (ws) > 0 || wslay_event_want_write (ws->ctx);
}

/* Moves what wslay has queued to the socket, as far as it goes now. */
static void
pump (EngineIOWebSocket *ws)
{
  while (!ws->failed)
    {
      if (wslay_event_want_write (ws->ctx) && wslay_event_send (ws->ctx) != 0)
        {
          ws->failed = TRUE;
          break;
        }
      if (!write_out (ws))
        break;
      /* Stop when the kernel is full or wslay has nothing more. */
      if (pending_output (ws) > 0 || !wslay_event_want_write (ws->ctx))
        break;
    }
}

static void
set_events (EngineIOWebSocket *ws,
            GIOCondition       events)
{
  if (events != ws->events)
    {
      ws->events = events;
      g_source_modify_unix_fd (ws->source, ws->fd_tag, events);
    }
}

static void
queue_close_now (EngineIOWebSocket *ws)
{
  const char *reason = ws->close_pending_reason;

  wslay_event_queue_close (ws->ctx, ws->close_pending_code, (const uint8_t *) reason,
                           reason != NULL ? strlen (reason) : 0);
  pump (ws);
}

/* After I/O: finish, or poll for what is wanted. Returns FALSE if the
 * connection finished (and @ws may be gone). */
static gboolean
update_events (EngineIOWebSocket *ws,
               gboolean           may_call_back)
{
  gboolean reading;
  gboolean writing;

  if (!ws->failed && ws->close_pending && !want_write (ws))
    {
      /* The data is out: now the close frame (wslay sends control frames
       * ahead of queued data, so it had to wait). */
      ws->close_pending = FALSE;
      ws->drain_pending = FALSE;
      queue_close_now (ws);
    }

  reading = wslay_event_want_read (ws->ctx);
  writing = want_write (ws);
  if (reading && read_blocked (ws))
    reading = FALSE;       /* not finished: still wants to read, later */

  if (ws->failed || (!wslay_event_want_read (ws->ctx) && !writing))
    {
      if (may_call_back)
        finish (ws);
      else
        g_source_set_ready_time (ws->source, 0);  /* finish from a dispatch */
      return FALSE;
    }

  set_events (ws, (reading ? G_IO_IN : 0) | (writing ? G_IO_OUT : 0));
  /* Bytes read before reading had to wait: the socket may say nothing
   * more, so come back for them. */
  if (reading && ws->rpos < ws->rlen && !ws->in_dispatch)
    g_source_set_ready_time (ws->source, 0);

  /* The stall deadline runs while there is output to write. */
  if (writing && !ws->stall_armed && ws->stall_timer != NULL)
    {
      ws->stall_armed = TRUE;
      ws->progress_at = g_get_monotonic_time ();
      g_source_set_ready_time (ws->stall_timer,
                               ws->progress_at + (gint64) ws->stall_timeout_ms * 1000);
    }
  else if (!writing && ws->stall_armed)
    {
      ws->stall_armed = FALSE;
      g_source_set_ready_time (ws->stall_timer, -1);
    }

  if (!writing && ws->drain_pending)
    {
      ws->drain_pending = FALSE;
      if (may_call_back && ws->callbacks != NULL && ws->callbacks->drained != NULL)
        ws->callbacks->drained (ws, ws->user_data);
    }
  return TRUE;
}

/* wslay_event_recv() failed while our reads were fine: a frame-level
 * violation (a fragmented or oversized control frame, a bad length).
 * wslay queued a close frame without a status code; RFC 6455 wants 1002,
 * which we write ourselves when the stream is between frames. */
static void
protocol_error (EngineIOWebSocket *ws)
{
  static const guint8 close_1002[] = { 0x88, 0x02, 0x03, 0xEA };

  ws->close_code = 1002;
  write_out (ws);
  if (wslay_event_get_close_sent (ws->ctx))
    return;  /* our close frame went out already: a second one is a violation */
  if (pending_output (ws) == 0 && wslay_event_get_queued_msg_count (ws->ctx) <= 1)
    {
      if (send (ws->fd, close_1002, sizeof close_1002, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        g_debug ("websocket: could not send close 1002: %s", g_strerror (errno));
    }
  else
    pump (ws);  /* what is queued, then wslay's own close */
}

static gboolean
ws_source_dispatch (GSource     *source,
                    GSourceFunc  callback,
                    gpointer     user_data)
{
  EngineIOWebSocket *ws = ((WsSource *) source)->ws;
  GIOCondition revents = g_source_query_unix_fd (source, ws->fd_tag);

  /* Marked re-entrant (see the top of the file): a handler that iterates
   * this context must not read or write under our feet. */
  if (ws->in_dispatch)
    return G_SOURCE_CONTINUE;

  if (g_source_get_ready_time (source) != -1)
    g_source_set_ready_time (source, -1);
  ws->in_dispatch = TRUE;
  ws->read_done = FALSE;

  /* Bytes already buffered (those that came with the upgrade request, or
   * read before reading had to wait) count as readable. */
  if (!ws->failed && ((revents & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL)) || ws->rpos < ws->rlen))
    {
      /* Control answers stop reading until they are written to our
       * buffer: write them and read on, a bounded number of rounds. */
      for (guint round = 0; round < CONTROL_ROUNDS; round++)
        {
          ws->control_wait = FALSE;
          if (ws->failed || !wslay_event_want_read (ws->ctx) || read_blocked (ws))
            break;
          if (wslay_event_recv (ws->ctx) != 0)
            {
              if (!ws->failed)
                protocol_error (ws);
              ws->failed = TRUE;
              break;
            }
          if (!ws->control_wait)
            break;
          pump (ws);
          if (pending_control (ws) >= MAX_PENDING_CONTROL)
            break;  /* our buffer is full: the peer does not read */
        }
    }

  /* Write what reading queued (pongs, close replies) and what the message
   * handlers sent, at once. */
  pump (ws);

  ws->in_dispatch = FALSE;
  release_read_buffer (ws);
  update_events (ws, TRUE);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs ws_source_funcs = {
  .dispatch = ws_source_dispatch,
};

/* The stall deadline: output has been waiting and none of it could be
 * written for stall_timeout_ms (the client does not read). The
 * connection stops being read and closes with 1008: its close frame goes
 * ahead of what is still queued, and the connection ends when it is out
 * or CLOSE_TIMEOUT_MS later. */
static gboolean
stall_source_dispatch (GSource     *source,
                       GSourceFunc  callback,
                       gpointer     user_data)
{
  EngineIOWebSocket *ws = ((WsSource *) source)->ws;
  gint64 deadline = ws->progress_at + (gint64) ws->stall_timeout_ms * 1000;

  if (ws->released || !want_write (ws))
    {
      ws->stall_armed = FALSE;
      g_source_set_ready_time (source, -1);
      return G_SOURCE_CONTINUE;
    }
  if (g_get_monotonic_time () < deadline)
    {
      g_source_set_ready_time (source, deadline);  /* written since */
      return G_SOURCE_CONTINUE;
    }

  ws->stall_armed = FALSE;
  g_source_set_ready_time (source, -1);
  if (ws->stalled)
    return G_SOURCE_CONTINUE;
  g_debug ("websocket: no output written for %u ms (%" G_GSIZE_FORMAT " bytes waiting): closing",
           ws->stall_timeout_ms, output_cost (ws));
  ws->stalled = TRUE;
  engine_io_websocket_close (ws, 1008, "output not read");
  /* Last: the owner may free @ws. */
  if (ws->callbacks != NULL && ws->callbacks->stalled != NULL)
    ws->callbacks->stalled (ws, ws->user_data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs stall_source_funcs = {
  .dispatch = stall_source_dispatch,
};

static gboolean
close_timeout_cb (gpointer data)
{
  EngineIOWebSocket *ws = data;

  g_clear_pointer (&ws->close_timer, g_source_unref);
  ws->failed = TRUE;
  finish (ws);
  return G_SOURCE_REMOVE;
}

/* API */

EngineIOWebSocket *
engine_io_websocket_new (int                           fd,
                         const void                   *extra_in,
                         gsize                         extra_in_size,
                         guint64                       max_message,
                         EngineIOWebSocketReleaseFunc  release,
                         gpointer                      release_data)
{
  EngineIOWebSocket *ws = g_new0 (EngineIOWebSocket, 1);
  int flags;

  ws->fd = fd;
  ws->max_message = max_message;
  ws->release = release;
  ws->release_data = release_data;
  ws->obuf = g_byte_array_new ();
  ws->msg_ends = g_array_new (FALSE, FALSE, sizeof (SentMark));

  /* Bytes libmicrohttpd read past the request are the first frames. */
  if (extra_in_size > 0)
    {
      ws->rbuf = g_memdup2 (extra_in, extra_in_size);
      ws->rcap = ws->rlen = extra_in_size;
    }

  flags = fcntl (fd, F_GETFL, 0);
  if (flags >= 0)
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);

  wslay_event_context_server_init (&ws->ctx, &wslay_callbacks, ws);
  /* wslay answers a longer message with close code 1009. */
  wslay_event_config_set_max_recv_msg_length (ws->ctx, max_message);

  return ws;
}

void
engine_io_websocket_start (EngineIOWebSocket                *ws,
                           GMainContext                     *context,
                           const EngineIOWebSocketCallbacks *callbacks,
                           gpointer                          user_data,
                           guint                             stall_timeout_ms)
{
  GSource *source;

  g_return_if_fail (ws->source == NULL && !ws->released);

  ws->context = g_main_context_ref (context);
  ws->callbacks = callbacks;
  ws->user_data = user_data;

  source = g_source_new (&ws_source_funcs, sizeof (WsSource));
  ((WsSource *) source)->ws = ws;
  g_source_set_static_name (source, "[engineio] websocket");
  g_source_set_can_recurse (source, TRUE);  /* see the top of the file */
  ws->events = G_IO_IN;
  ws->fd_tag = g_source_add_unix_fd (source, ws->fd, ws->events);
  ws->source = source;
  g_source_attach (source, context);

  if (stall_timeout_ms > 0)
    {
      ws->stall_timeout_ms = stall_timeout_ms;
      ws->stall_timer = g_source_new (&stall_source_funcs, sizeof (WsSource));
      ((WsSource *) ws->stall_timer)->ws = ws;
      g_source_set_static_name (ws->stall_timer, "[engineio] websocket stall");
      g_source_attach (ws->stall_timer, context);
    }

  /* Frames that came with the upgrade request are read now. */
  if (ws->rlen > 0)
    g_source_set_ready_time (source, 0);
}

gboolean
engine_io_websocket_send (EngineIOWebSocket *ws,
                          gboolean           binary,
                          const void        *data,
                          gsize              size)
{
  struct wslay_event_msg msg = {
    .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
    .msg = data,
    .msg_length = size,
  };

  if (ws->released || ws->failed || ws->stalled)
    return FALSE;
  if (wslay_event_queue_msg (ws->ctx, &msg) != 0)
    return FALSE;
  ws->data_queued++;
  ws->drain_pending = TRUE;
  return TRUE;
}

/* Writes what was queued with engine_io_websocket_send(). Inside our own
 * dispatch this happens anyway, at its end. Never calls back: a failure is
 * reported from the next dispatch. */
void
engine_io_websocket_flush (EngineIOWebSocket *ws)
{
  if (ws->released || ws->in_dispatch || ws->source == NULL)
    return;

  pump (ws);
  update_events (ws, FALSE);
}

/* Stops (or resumes) reading: the owner has a backlog of messages. Bytes
 * already read stay buffered; the kernel's buffer and TCP flow control
 * hold the rest. */
void
engine_io_websocket_set_paused (EngineIOWebSocket *ws,
                                gboolean           paused)
{
  if (ws->paused == paused || ws->released)
    return;
  ws->paused = paused;
  if (ws->source != NULL)
    {
      if (!ws->in_dispatch)
        update_events (ws, FALSE);
      if (!paused)
        g_source_set_ready_time (ws->source, 0);  /* what is buffered already */
    }
}

/* Whether engine_io_websocket_send() would take a message: FALSE once the
 * connection failed, stalled or is released. */
gboolean
engine_io_websocket_can_send (EngineIOWebSocket *ws)
{
  return !ws->released && !ws->failed && !ws->stalled;
}

/* Data messages taken by engine_io_websocket_send(), ever. */
guint64
engine_io_websocket_get_queued_count (EngineIOWebSocket *ws)
{
  return ws->data_queued;
}

/* Data messages whose every byte send() has taken (the kernel has them:
 * the client gets them unless the connection is reset), ever: the first
 * engine_io_websocket_get_sent_count() of those counted by
 * engine_io_websocket_get_queued_count(), in order. */
guint64
engine_io_websocket_get_sent_count (EngineIOWebSocket *ws)
{
  return ws->data_sent;
}

/* What the connection holds for sending, in bytes of memory. */
gsize
engine_io_websocket_get_buffered (EngineIOWebSocket *ws)
{
  return ws->released ? 0 : output_cost (ws);
}

/* Sends a close frame with @code (0: a close frame without a status code)
 * and @reason once what is queued is out, then ends the connection when
 * the peer's close comes or CLOSE_TIMEOUT_MS later. A stalled connection
 * (see stall_source_dispatch()) puts its close frame ahead of the queue. */
void
engine_io_websocket_close (EngineIOWebSocket *ws,
                           guint16            code,
                           const char        *reason)
{
  if (ws->released || wslay_event_get_close_sent (ws->ctx))
    return;
  if (ws->close_pending)
    {
      if (ws->stalled)
        {
          /* Waiting for output that will not go: close now, with @code. */
          ws->close_pending = FALSE;
          ws->close_pending_code = code;
          g_free (ws->close_pending_reason);
          ws->close_pending_reason = g_strdup (reason);
          queue_close_now (ws);
          if (!ws->in_dispatch)
            update_events (ws, FALSE);
        }
      return;
    }

  ws->close_pending_code = code;
  g_free (ws->close_pending_reason);
  ws->close_pending_reason = g_strdup (reason);

  if (ws->source == NULL)
    {
      engine_io_websocket_abort (ws);  /* never started: nothing to say */
      return;
    }

  if (ws->close_timer == NULL)
    {
      ws->close_timer = g_timeout_source_new (CLOSE_TIMEOUT_MS);
      g_source_set_callback (ws->close_timer, close_timeout_cb, ws, NULL);
      g_source_set_static_name (ws->close_timer, "[engineio] websocket close");
      g_source_attach (ws->close_timer, ws->context);
    }

  if (want_write (ws) && !ws->stalled)
    ws->close_pending = TRUE;  /* queued messages first (see update_events()) */
  else
    queue_close_now (ws);  /* a control frame: ahead of any queued message */
  if (!ws->in_dispatch)
    update_events (ws, FALSE);
}

void
engine_io_websocket_abort (EngineIOWebSocket *ws)
{
  release_socket (ws);
}

gboolean
engine_io_websocket_is_closed (EngineIOWebSocket *ws)
{
  return ws->released;
}

void
engine_io_websocket_free (EngineIOWebSocket *ws)
{
  if (ws == NULL)
    return;

  release_socket (ws);
  wslay_event_context_free (ws->ctx);
  g_byte_array_unref (ws->obuf);
  g_array_unref (ws->msg_ends);
  g_free (ws->close_pending_reason);
  g_clear_pointer (&ws->context, g_main_context_unref);
  g_free (ws->rbuf);
  g_free (ws);
}

char *
engine_io_websocket_accept_key (const char *key)
{
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize digest_len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, strlen (key));
  g_checksum_update (sha1, (const guchar *) guid, sizeof guid - 1);
  g_checksum_get_digest (sha1, digest, &digest_len);
  return g_base64_encode (digest, digest_len);
}
