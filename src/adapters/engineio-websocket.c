/* engineio-websocket.c: the WebSocket adapter
 *
 * Non-blocking I/O on an upgraded socket from a GSource in the session's
 * context; the framing is our own sans-I/O codec
 * (src/core/engineio-ws-codec.c: masking, fragments, control frames, UTF-8,
 * the 1009 limit at the header). This file owns the I/O, the input and
 * the close handshake; engineio-websocket-output.c the output queues, and
 * engineio-websocket-internal.h the state both share.
 *
 * System calls are what a small message costs, and copies what a large
 * one costs, so:
 *  - we read large chunks into a per-thread read buffer and decode from
 *    there (a whole message in it is unmasked in place and handed over
 *    without a copy), and read the socket at most once per dispatch
 *    (after a short read the kernel would only say EAGAIN; after a full
 *    one, a level-triggered poll brings us back, after the other sources
 *    of the context had their turn); the payload of a large frame is
 *    received straight into its message buffer (one recv(), no copy);
 *  - frames are written with one sendmsg() of an iovec: headers and small
 *    frames coalesced in one buffer, large payloads (kept referenced, as
 *    GBytes) sent from where they are;
 *  - the GSource is re-entrant-safe and marked so, because GLib otherwise
 *    removes and re-adds its fd around every dispatch, and its poll events
 *    change only when they need to.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

#include "engineio-websocket-internal.h"
#include "engineio-ws-deflate-private.h"
#include "engineio-loop-private.h"
#include "engineio-lock-private.h"

/* Read buffers. An idle WebSocket holds none: a buffer is lent to a
 * WebSocket for a dispatch and given back when all it read has been
 * consumed, so memory per idle session stays small. A thread that serves
 * many sessions (a pooled loop thread, the application's context) keeps
 * one spare buffer for itself. A session's own thread does not: it serves
 * one session for that session's life, and the pages its messages touched
 * in a spare of its own (up to the whole 256 KiB) would stay resident with
 * every idle session. Its buffers come from a process-wide pool of at most
 * SPARE_POOL_MAX spares (read_buffer_lock, a leaf: rank 10 of
 * engineio-lock-private.h); what is over it is freed. */
#define SPARE_POOL_MAX 4

static GPrivate spare_read_buffer = G_PRIVATE_INIT (g_free);
static GMutex   read_buffer_lock;
static guint8  *spare_pool[SPARE_POOL_MAX];  /* (read_buffer_lock) */
static guint    n_spare_pool;                /* (read_buffer_lock) */

static guint8 *
take_spare (void)
{
  guint8 *buf = NULL;

  if (!engine_io_in_session_thread ())
    {
      buf = g_private_get (&spare_read_buffer);
      if (buf != NULL)
        g_private_set (&spare_read_buffer, NULL);
      return buf;
    }
  ENGINE_IO_LOCK (&read_buffer_lock, READ_BUFFERS);
  if (n_spare_pool > 0)
    {
      buf = spare_pool[--n_spare_pool];
      spare_pool[n_spare_pool] = NULL;  /* a buffer leaked later is not reachable from here */
    }
  ENGINE_IO_UNLOCK (&read_buffer_lock);
  return buf;
}

/* Keeps @buf (READ_BUFFER_SIZE bytes) as a spare, or frees it. */
static void
give_spare (guint8 *buf)
{
  if (!engine_io_in_session_thread ())
    {
      if (g_private_get (&spare_read_buffer) == NULL)
        g_private_set (&spare_read_buffer, buf);
      else
        g_free (buf);
      return;
    }
  ENGINE_IO_LOCK (&read_buffer_lock, READ_BUFFERS);
  if (n_spare_pool < SPARE_POOL_MAX)
    {
      spare_pool[n_spare_pool++] = buf;
      buf = NULL;
    }
  ENGINE_IO_UNLOCK (&read_buffer_lock);
  g_free (buf);
}

static void
borrow_read_buffer (EngineIOWebSocket *ws)
{
  guint8 *buf = take_spare ();

  g_free (ws->rbuf);  /* empty (or too small: the bytes that came with the upgrade) */
  if (buf == NULL)
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
  if (ws->rcap == READ_BUFFER_SIZE)
    give_spare (ws->rbuf);
  else
    g_free (ws->rbuf);
  ws->rbuf = NULL;
  ws->rcap = ws->rlen = ws->rpos = 0;
}

static gboolean close_timeout_cb (gpointer data);

/* The close handshake is bounded: the connection ends CLOSE_TIMEOUT_MS
 * after our close frame was queued (or engine_io_websocket_close() was
 * called) at most, whatever the peer does: our close frame may wait
 * behind output the peer does not read, and nothing else would end the
 * wait then (the stall deadline only closes, and our close is queued
 * already). */
static void
arm_close_timer (EngineIOWebSocket *ws)
{
  if (ws->close_timer != NULL || ws->source == NULL || ws->released)
    return;
  ws->close_timer = g_timeout_source_new (CLOSE_TIMEOUT_MS);
  g_source_set_callback (ws->close_timer, close_timeout_cb, ws, NULL);
  g_source_set_static_name (ws->close_timer, "[engineio] websocket close");
  g_source_attach (ws->close_timer, ws->context);
}

/* Queues our close frame (@code 0: none), ahead of queued data. */
static void
queue_close (EngineIOWebSocket *ws,
             guint16            code,
             const char        *reason)
{
  guint8 frame[ENGINE_IO_WS_MAX_CLOSE_FRAME];
  gsize n;

  if (ws->close_queued)
    return;
  ws->close_queued = TRUE;
  /* Also when the peer's close (or a protocol error) queued it: the
   * reply may wait behind output the peer does not read. */
  arm_close_timer (ws);
  n = engine_io_ws_encode_close (frame, code, reason);
  engine_io_websocket_queue_control (ws, ENGINE_IO_WS_OP_CLOSE, frame + 2, n - 2);
}

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

/* Moves what is queued to the socket, as far as it goes now. */
static void
pump (EngineIOWebSocket *ws)
{
  while (!ws->failed && !ws->released)
    {
      engine_io_websocket_fill_wire (ws);
      if (!engine_io_websocket_write_out (ws))
        break;
      /* Stop when the kernel is full or nothing more is queued. */
      if (pending_output (ws) > 0 || !want_write (ws))
        break;
    }
}

/* With no events the descriptor is not polled at all: poll() reports an
 * error or hang-up (a reset peer) whatever is asked, and a WebSocket that
 * may not read (its session paused) would be dispatched again and again,
 * a busy thread, until it may read again. */
static void
set_events (EngineIOWebSocket *ws,
            GIOCondition       events)
{
  if (events == ws->events)
    return;
  ws->events = events;
  if (events == 0)
    {
      g_source_remove_unix_fd (ws->source, ws->fd_tag);
      ws->fd_tag = NULL;
    }
  else if (ws->fd_tag == NULL)
    ws->fd_tag = g_source_add_unix_fd (ws->source, ws->fd, events);
  else
    g_source_modify_unix_fd (ws->source, ws->fd_tag, events);
}

static void
queue_close_now (EngineIOWebSocket *ws)
{
  queue_close (ws, ws->close_pending_code, ws->close_pending_reason);
  pump (ws);
}

/* Our close frame for a protocol error is written and the peer has not
 * closed: shut our side and drop its input until it does, for at most
 * LINGER_MS (see there), and never past the close timer's deadline (the
 * bound of the whole close handshake). FALSE if there is nothing to wait
 * for. */
static gboolean
start_linger (EngineIOWebSocket *ws)
{
  gint64 linger_end = g_get_monotonic_time () + (gint64) LINGER_MS * 1000;

  if (ws->close_received || !ws->close_on_wire || ws->source == NULL)
    return FALSE;
  if (shutdown (ws->fd, SHUT_WR) != 0)
    return FALSE;
  ws->lingering = TRUE;
  /* What was read and not decoded is dropped too, and nothing is held
   * while lingering: the read buffer goes back, a partial message is freed. */
  ws->rpos = ws->rlen = 0;
  release_read_buffer (ws);
  engine_io_ws_decoder_clear (&ws->dec);
  if (ws->close_timer != NULL)
    {
      gint64 close_end = g_source_get_ready_time (ws->close_timer);

      if (close_end >= 0 && close_end <= linger_end)
        return TRUE;  /* the close deadline comes first: it ends the linger */
      g_source_destroy (ws->close_timer);
      g_clear_pointer (&ws->close_timer, g_source_unref);
    }
  ws->close_timer = g_timeout_source_new (LINGER_MS);
  g_source_set_callback (ws->close_timer, close_timeout_cb, ws, NULL);
  g_source_set_static_name (ws->close_timer, "[engineio] websocket linger");
  g_source_attach (ws->close_timer, ws->context);
  return TRUE;
}

/* Reads and drops what the peer still sends after our close, a bounded
 * number of reads per dispatch; its EOF (or an error) ends the wait. */
static void
linger_read (EngineIOWebSocket *ws)
{
  guint8 scratch[4096];

  for (guint i = 0; i < LINGER_READS; i++)
    {
      ssize_t r;

      do
        r = recv (ws->fd, scratch, sizeof scratch, 0);
      while (r < 0 && errno == EINTR);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (r <= 0)
        {
          ws->failed = TRUE;
          return;
        }
    }
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
      /* The data is out: now the close frame (control frames go ahead of
       * queued data, so it had to wait). */
      ws->close_pending = FALSE;
      ws->drain_pending = FALSE;
      queue_close_now (ws);
    }

  reading = ws->read_enabled;
  writing = want_write (ws);
  if (reading && read_blocked (ws))
    reading = FALSE;       /* not finished: still wants to read, later */

  if (!ws->failed && !ws->read_enabled && !writing && (ws->lingering || start_linger (ws)))
    {
      set_events (ws, G_IO_IN);
      return TRUE;
    }

  if (ws->failed || (!ws->read_enabled && !writing))
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

/* Input */

static void handle_compressed (EngineIOWebSocket *ws, const EngineIOWsEvent *event);

static void
handle_event (EngineIOWebSocket     *ws,
              const EngineIOWsEvent *event)
{
  switch (event->type)
    {
    case ENGINE_IO_WS_EVENT_MESSAGE:
      if (event->compressed)
        {
          handle_compressed (ws, event);
          break;
        }
      if (!ws->released && ws->callbacks != NULL)
        {
          /* A message assembled in the decoder's buffer (a large one, read
           * straight into it, or one in several frames or reads) is handed
           * over with that buffer, so that its packet need not copy it. */
          guint8 *buffer = event->size >= OWNED_MESSAGE_MIN ?
            engine_io_ws_decoder_steal_message (&ws->dec, event->size) : NULL;
          g_autoptr(GBytes) owner = buffer != NULL ? g_bytes_new_take (buffer, event->size + 1) : NULL;

          ws->callbacks->message (ws, event->binary, buffer != NULL ? buffer : event->data,
                                  event->size, owner, ws->user_data);
        }
      /* An idle connection holds no message buffer. */
      engine_io_ws_decoder_release (&ws->dec);
      break;

    case ENGINE_IO_WS_EVENT_PING:
      if (!ws->close_queued)
        engine_io_websocket_queue_control (ws, ENGINE_IO_WS_OP_PONG, event->data, event->size);
      break;

    case ENGINE_IO_WS_EVENT_PONG:
      break;

    case ENGINE_IO_WS_EVENT_CLOSE:
      /* The peer's close: echoed with its code and reason (none if it
       * gave none), ahead of queued data; nothing more is read. */
      ws->close_received = TRUE;
      ws->close_code = event->code;
      ws->read_enabled = FALSE;
      {
        g_autofree char *reason = g_strndup ((const char *) event->data, event->size);
        queue_close (ws, event->code == 1005 ? 0 : event->code, reason);
      }
      break;

    case ENGINE_IO_WS_EVENT_ERROR:
      g_debug ("websocket: %s: closing with %u", event->error_message, event->code);
      /* A close payload of one byte is a protocol error (RFC 6455,
       * 5.5.1), but still the peer's close: reported clean, with 1002. */
      if (ws->dec.opcode == ENGINE_IO_WS_OP_CLOSE && ws->dec.ctrl_len == 1)
        {
          ws->close_received = TRUE;
          ws->close_code = 1002;
        }
      ws->read_enabled = FALSE;
      /* What the peer's earlier messages made us send (their answers,
       * already queued) goes out first, then the close: nothing more is
       * taken (RFC 6455 7.1.7 lets us drop it; Autobahn calls that
       * non-strict). The close timer and the stall deadline bound the
       * wait. */
      if (want_write (ws) && !ws->stalled && !ws->close_queued && ws->source != NULL)
        {
          ws->error_closing = TRUE;
          engine_io_websocket_close (ws, event->code, NULL);
        }
      else
        queue_close (ws, event->code, NULL);
      break;

    case ENGINE_IO_WS_EVENT_NONE:
    default:
      break;
    }
}

/* A compressed message (permessage-deflate): inflated with its output
 * bounded by max_message (past it: 1009, nothing more inflated), a text
 * message then validated as UTF-8 (1007); data that is not valid deflate
 * fails with 1007, as npm ws answers it. */
static void
handle_compressed (EngineIOWebSocket     *ws,
                   const EngineIOWsEvent *event)
{
  g_autofree guint8 *plain = NULL;
  gsize plain_len = 0;
  EngineIOWsEvent error = { 0 };

  error.code = engine_io_ws_inflate_message (event->data, event->size, ws->max_message,
                                             &plain, &plain_len);
  /* Past the limit, about max_message was inflated: count that. */
  ws->inflated += error.code == 1009 ? (gsize) MIN (ws->max_message, G_MAXSIZE / 2) : plain_len;
  /* The compressed bytes are not needed any more. */
  engine_io_ws_decoder_release (&ws->dec);
  if (error.code == 0 && !event->binary &&
      engine_io_ws_utf8_run (ENGINE_IO_WS_UTF8_ACCEPT, plain, plain_len) != ENGINE_IO_WS_UTF8_ACCEPT)
    error.code = 1007;
  if (error.code != 0)
    {
      error.type = ENGINE_IO_WS_EVENT_ERROR;
      error.error_message = error.code == 1009 ? "compressed message inflates over the size limit"
                            : error.code == 1007 ? "compressed message invalid (deflate data or UTF-8)"
                            : "cannot inflate a compressed message";
      ws->dec.state = ENGINE_IO_WS_DEC_FAILED;
      handle_event (ws, &error);
      return;
    }
  if (!ws->released && ws->callbacks != NULL)
    ws->callbacks->message (ws, event->binary, plain, plain_len, NULL, ws->user_data);
}

/* Decodes what is buffered and reads the socket (once per dispatch), while
 * reading may go on. */
static void
read_input (EngineIOWebSocket *ws)
{
  guint control_rounds = 0;

  for (;;)
    {
      EngineIOWsEvent event;

      if (ws->failed || ws->released || !ws->read_enabled)
        break;
      if (pending_control (ws) >= MAX_PENDING_CONTROL)
        {
          /* Answers wait to go on the wire queue: write them and read on,
           * a bounded number of rounds. */
          if (control_rounds++ >= CONTROL_ROUNDS)
            break;
          pump (ws);
          if (pending_control (ws) >= MAX_PENDING_CONTROL)
            break;  /* our buffer is full: the peer does not read */
        }
      if (read_blocked (ws))
        break;
      /* Enough inflated for this dispatch: the rest is decoded from the
       * next one (update_events() brings it back). */
      if (ws->inflated >= INFLATE_PER_DISPATCH)
        break;

      if (ws->rpos == ws->rlen)
        {
          gsize space = 0;
          guint8 *direct;
          ssize_t r;

          /* One read of the socket per dispatch: a client that writes
           * faster than we parse must not keep the loop thread from its
           * other sources (a level-triggered poll brings us back). */
          if (ws->read_done)
            break;

          direct = engine_io_ws_decoder_payload_space (&ws->dec, DIRECT_READ_MIN, &space);
          if (direct != NULL)
            {
              /* A large payload: straight into its message. */
              do
                r = recv (ws->fd, direct, space, 0);
              while (r < 0 && errno == EINTR);
            }
          else
            {
              if (ws->rcap < READ_BUFFER_SIZE)
                borrow_read_buffer (ws);
              do
                r = recv (ws->fd, ws->rbuf, READ_BUFFER_SIZE, 0);
              while (r < 0 && errno == EINTR);
            }

          if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
          if (r <= 0)
            {
              ws->failed = TRUE;  /* EOF or reset */
              break;
            }
          ws->read_done = TRUE;
          if (direct != NULL)
            {
              engine_io_ws_decoder_payload_written (&ws->dec, (gsize) r, &event);
              handle_event (ws, &event);
              continue;
            }
          ws->rlen = (gsize) r;
          ws->rpos = 0;
        }

      ws->rpos += engine_io_ws_decoder_feed (&ws->dec, ws->rbuf + ws->rpos,
                                             ws->rlen - ws->rpos, &event);
      handle_event (ws, &event);
    }
}

static gboolean
ws_source_dispatch (GSource     *source,
                    GSourceFunc  callback,
                    gpointer     user_data)
{
  EngineIOWebSocket *ws = ((WsSource *) source)->ws;
  GIOCondition revents = ws->fd_tag != NULL ? g_source_query_unix_fd (source, ws->fd_tag) : 0;

  /* Marked re-entrant (see the top of the file): a handler that iterates
   * this context must not read or write under our feet. */
  if (ws->in_dispatch)
    return G_SOURCE_CONTINUE;

  if (g_source_get_ready_time (source) != -1)
    g_source_set_ready_time (source, -1);
  ws->in_dispatch = TRUE;
  ws->read_done = FALSE;
  ws->inflated = 0;

  /* Bytes already buffered (those that came with the upgrade request, or
   * read before reading had to wait) count as readable. */
  if (ws->lingering)
    {
      if (!ws->failed && (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL)))
        linger_read (ws);
    }
  else if (!ws->failed && ((revents & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL)) || ws->rpos < ws->rlen))
    read_input (ws);

  /* Write what reading queued (pongs, close replies) and what the message
   * handlers sent, at once. */
  pump (ws);

  ws->in_dispatch = FALSE;
  if (ws->free_pending)
    {
      engine_io_websocket_free (ws);
      return G_SOURCE_REMOVE;
    }
  release_read_buffer (ws);
  if (!ws->released)
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
  ws->wire = g_array_new (FALSE, FALSE, sizeof (WirePiece));
  ws->msg_ends = g_array_new (FALSE, FALSE, sizeof (SentMark));
  g_queue_init (&ws->ctrl_queue);
  g_queue_init (&ws->data_queue);
  ws->read_enabled = TRUE;
  ws->write_enabled = TRUE;
  /* Longer messages are answered with close code 1009, at their header. */
  engine_io_ws_decoder_init (&ws->dec, max_message);
  engine_io_ws_decoder_set_fragment_cost (&ws->dec, FRAGMENT_OVERHEAD, fragment_allowance (max_message));

  /* Bytes libmicrohttpd read past the request are the first frames. */
  if (extra_in_size > 0)
    {
      ws->rbuf = g_memdup2 (extra_in, extra_in_size);
      ws->rcap = ws->rlen = extra_in_size;
    }

  flags = fcntl (fd, F_GETFL, 0);
  if (flags >= 0)
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);

  return ws;
}

/* Negotiated permessage-deflate: compressed messages are accepted, and
 * data messages of at least @threshold bytes are sent compressed. Before
 * engine_io_websocket_start(). */
void
engine_io_websocket_set_deflate (EngineIOWebSocket *ws,
                                 guint              threshold)
{
  ws->deflate = TRUE;
  ws->deflate_threshold = threshold;
  engine_io_ws_decoder_set_compressed (&ws->dec, TRUE);
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

static gboolean
queue_data (EngineIOWebSocket *ws,
            gboolean           binary,
            gint               prefix,
            const void        *data,
            gsize              size,
            GBytes            *bytes)
{
  OutMsg *msg;

  if (ws->released || ws->failed || ws->stalled || ws->close_queued || ws->error_closing)
    return FALSE;
  msg = engine_io_websocket_out_msg_new (binary ? ENGINE_IO_WS_OP_BINARY : ENGINE_IO_WS_OP_TEXT, prefix, data, size, bytes);
  g_queue_push_tail (&ws->data_queue, msg);
  ws->queued_bytes += msg->len;
  ws->data_queued++;
  ws->drain_pending = TRUE;
  return TRUE;
}

/* Queues a data message (copied). FALSE if the connection takes no more
 * (failed, stalled, closing or released). */
gboolean
engine_io_websocket_send (EngineIOWebSocket *ws,
                          gboolean           binary,
                          const void        *data,
                          gsize              size)
{
  g_autoptr(GBytes) bytes = NULL;

  /* A large payload is copied once, into a GBytes the wire queue sends
   * from (see engine_io_websocket_send_bytes() to avoid that copy). */
  if (size > COALESCE_MAX)
    bytes = g_bytes_new (data, size);
  return queue_data (ws, binary, -1, data, size, bytes);
}

/* The same, with the payload referenced, not copied (if large). */
gboolean
engine_io_websocket_send_bytes (EngineIOWebSocket *ws,
                                gboolean           binary,
                                GBytes            *payload)
{
  gsize size;
  gconstpointer data = g_bytes_get_data (payload, &size);

  return queue_data (ws, binary, -1, data, size, payload);
}

/* The same, the payload being @prefix then @payload (an Engine.IO packet:
 * its type, then its data, sent from where it is). */
gboolean
engine_io_websocket_send_prefixed (EngineIOWebSocket *ws,
                                   gboolean           binary,
                                   guint8             prefix,
                                   GBytes            *payload)
{
  gsize size;
  gconstpointer data = g_bytes_get_data (payload, &size);

  return queue_data (ws, binary, prefix, data, size, payload);
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
  if (ws->released || ws->close_on_wire)
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

  arm_close_timer (ws);

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
  if (ws->in_dispatch)
    {
      /* Our dispatch is below the caller on the stack (a handler it
       * called iterated the context, and the session was given up
       * meanwhile: a close timer, a shutdown): it must find @ws whole
       * when it returns, do nothing more with it, and free it then. */
      ws->callbacks = NULL;
      ws->failed = TRUE;
      ws->free_pending = TRUE;
      return;
    }
  engine_io_ws_decoder_clear (&ws->dec);
  g_queue_clear_full (&ws->ctrl_queue, (GDestroyNotify) engine_io_websocket_out_msg_free);
  g_queue_clear_full (&ws->data_queue, (GDestroyNotify) engine_io_websocket_out_msg_free);
  for (guint i = ws->wire_head; i < ws->wire->len; i++)
    g_clear_pointer (&g_array_index (ws->wire, WirePiece, i).bytes, g_bytes_unref);
  g_array_unref (ws->wire);
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
