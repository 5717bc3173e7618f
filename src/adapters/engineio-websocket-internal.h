/* engineio-websocket-internal.h: the WebSocket adapter's state, shared by
 * engineio-websocket.c (I/O, input, the close handshake, the API) and
 * engineio-websocket-output.c (the output queues and the wire queue).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-websocket-private.h"
#include "engineio-ws-codec-private.h"

G_BEGIN_DECLS

#define READ_BUFFER_SIZE (256 * 1024)
#define WRITE_BUFFER_LIMIT (256 * 1024)
#define CLOSE_TIMEOUT_MS 3000
/* After our close frame for a protocol error, the peer may still be
 * sending: closing a socket with unread input sends a reset, and a reset
 * can make the peer's kernel drop our close frame before its application
 * reads it. So the write side is shut (FIN after the close frame) and
 * input is read and dropped until the peer's EOF, for at most this long
 * (a lingering close, as HTTP servers do; RFC 9112, 9.6). */
#define LINGER_MS 1000
/* Reads of dropped input per dispatch while lingering. */
#define LINGER_READS 16
/* A frame payload at least this long, with nothing buffered ahead of it,
 * is received straight into its message buffer. */
#define DIRECT_READ_MIN (16 * 1024)
/* Messages at least this long, assembled in the decoder's buffer, are
 * handed to the owner with it (smaller ones are cheaper to copy than a
 * GBytes and a slice are to make). */
#define OWNED_MESSAGE_MIN (8 * 1024)
/* Payloads up to this size are copied into the coalescing buffer (one
 * iovec for many small frames); larger ones are sent from their GBytes. */
#define COALESCE_MAX ENGINE_IO_WEBSOCKET_COALESCE_MAX
#define MAX_IOV 64

/* Output bounds (RFC 6455, 10.4). What a connection holds for sending is
 * counted in real bytes: what is on the wire queue (our coalescing buffer
 * and the large payloads referenced from it, not yet written) plus the
 * messages queued behind it, each at its payload and MSG_OVERHEAD (the
 * OutMsg struct, its queue link and, for large payloads, the GBytes:
 * about 100 bytes of glibc chunks). While it is at OUTPUT_READ_LIMIT or
 * more, the connection is not read. The owner keeps its own data under
 * WS_BUFFER_TARGET (engineio-socket-ws-output.c) by
 * engine_io_websocket_get_buffered(), so only single large messages come
 * near this bound.
 *
 * Control frames the peer makes us answer (pongs, the close reply) are
 * bounded by count: the decoder hands us one event at a time, and we stop
 * decoding while MAX_PENDING_CONTROL answers are queued, not yet on the
 * wire queue (which only takes them while it is under
 * WRITE_BUFFER_LIMIT). A client that sends pings without reading the
 * pongs fills its own TCP window, not our memory. */
#define MSG_OVERHEAD 128
#define OUTPUT_READ_LIMIT (1024 * 1024)
#define MAX_PENDING_CONTROL 16
/* A message received in fragments is held contiguously in one buffer
 * (no allocation per fragment), but each frame costs a header parse and a
 * dispatch of work: as before (when wslay held each fragment in its own
 * chunks), each fragment with a payload is counted at its payload plus
 * FRAGMENT_OVERHEAD, and a message whose count passes max-payload by more
 * than fragment_allowance() (an eighth of it and 64 KiB: fragments of
 * 1 KiB or more always fit) is answered as a message too big, with 1009. */
#define FRAGMENT_OVERHEAD 96

static inline guint64
fragment_allowance (guint64 max_message)
{
  return max_message / 8 + 64 * 1024;
}
/* Rounds of writing control answers and reading on per dispatch while
 * they hold reading up (see read_input()). */
#define CONTROL_ROUNDS 64
/* Bytes inflated per dispatch (permessage-deflate), after which decoding
 * waits for the next dispatch (the rest stays buffered): a compressed
 * message may inflate about 1000 times its size, so the one read per
 * dispatch no longer bounds its work (a read buffer of messages each
 * inflating to max-payload would take the loop thread, and every other
 * session on it, for seconds). One message is always decoded. */
#define INFLATE_PER_DISPATCH (1024 * 1024)

typedef struct
{
  GSource            source;
  EngineIOWebSocket *ws;
} WsSource;

/* Which data messages send() has taken: @count of them once @end bytes
 * (of all ever put on the wire queue) are sent. At most MAX_SENT_MARKS
 * are kept: past that the last one moves on (its messages are known sent
 * a little later), so tiny messages cost no memory per message here. */
typedef struct
{
  guint64 end;
  guint64 count;
} SentMark;

#define MAX_SENT_MARKS 256

/* A frame queued, not yet on the wire queue. */
typedef struct
{
  guint8  opcode;
  gint16  prefix;   /* a byte sent ahead of @bytes (-1: none) */
  gsize   len;      /* of the whole payload (the prefix included) */
  GBytes *bytes;    /* the payload (after the prefix), or NULL: all of it follows in @data */
  guint8  data[];
} OutMsg;

/* A piece of the wire queue: a large payload, or (@bytes NULL) the next
 * @len bytes of the coalescing buffer. */
typedef struct
{
  GBytes *bytes;
  gsize   len;
} WirePiece;

struct _EngineIOWebSocket
{
  int                               fd;
  guint64                           max_message;
  EngineIOWsDecoder                 dec;
  gboolean                          deflate;      /* permessage-deflate negotiated */
  guint                             deflate_threshold; /* smaller messages go uncompressed */

  GMainContext                     *context;      /* ref, once started */
  GSource                          *source;       /* owned, once started */
  gpointer                          fd_tag;       /* NULL while no events are wanted */
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
  gsize                             inflated;     /* bytes inflated this dispatch (see INFLATE_PER_DISPATCH) */
  gboolean                          read_enabled; /* FALSE once the peer's close, an error or EOF came */
  gboolean                          write_enabled;/* FALSE once our close frame is on the wire queue */
  gboolean                          paused;       /* the owner wants no more messages for now */
  GIOCondition                      events;       /* what the fd is polled for */

  /* Output: frames queued (control frames go first, between frames), then
   * the wire queue, written with sendmsg(). */
  GQueue                            ctrl_queue;   /* OutMsg */
  GQueue                            data_queue;   /* OutMsg */
  gsize                             queued_bytes; /* payload bytes of both queues */
  GByteArray                       *obuf;         /* coalesced headers and small frames */
  gsize                             opos;         /* written part of @obuf */
  GArray                           *wire;         /* WirePiece */
  guint                             wire_head;    /* first live piece */
  gsize                             wire_head_off;/* bytes of it written */
  gsize                             wire_pending; /* bytes of the wire queue not written */

  gboolean                          in_dispatch;
  gboolean                          failed;       /* an I/O error or EOF */
  gboolean                          released;     /* the socket was given back */
  gboolean                          free_pending; /* freed by its owner during a dispatch
                                                   * (a handler iterated the context):
                                                   * freed when that dispatch returns */
  gboolean                          close_received;
  guint16                           close_code;
  gboolean                          stalled;      /* output made no progress for stall_timeout_ms */
  gboolean                          close_queued; /* our close frame is queued (no more data) */
  gboolean                          close_on_wire;/* ... and on the wire queue */
  gboolean                          lingering;    /* our close is out, the write side shut:
                                                   * input is read and dropped until EOF
                                                   * (see LINGER_MS) */
  guint64                           data_queued;  /* data messages taken by send() */
  guint64                           data_written; /* ... and put on the wire queue */
  guint64                           out_appended; /* bytes ever put on the wire queue */
  guint64                           out_sent;     /* ... and taken by send() */
  GArray                           *msg_ends;     /* SentMark: where data messages on the wire
                                                   * queue end, not yet all sent (see MAX_SENT_MARKS) */
  guint                             msg_ends_head;/* first live element of @msg_ends */
  guint64                           data_sent;    /* data messages all taken by send() */
  gboolean                          drain_pending;
  gboolean                          close_pending; /* close once the data is out */
  gboolean                          error_closing; /* ... for a protocol error: nothing more
                                                    * is taken to send */
  guint16                           close_pending_code;
  char                             *close_pending_reason;
};

/* Accounting */

static inline gsize
pending_output (EngineIOWebSocket *ws)
{
  return ws->wire_pending;
}

/* What the connection holds for sending, in real bytes (see
 * OUTPUT_READ_LIMIT). */
static inline gsize
output_cost (EngineIOWebSocket *ws)
{
  return pending_output (ws) + ws->queued_bytes +
         (ws->ctrl_queue.length + ws->data_queue.length) * MSG_OVERHEAD;
}

/* Control frames (pongs, a close) queued, not yet on the wire queue. */
static inline gsize
pending_control (EngineIOWebSocket *ws)
{
  return ws->ctrl_queue.length;
}

/* Whether reading must wait: the owner asked, the output is over its
 * bound, control answers wait to be written, or the output stalled (the
 * connection is closing). */
static inline gboolean
read_blocked (EngineIOWebSocket *ws)
{
  return ws->paused || ws->stalled || output_cost (ws) >= OUTPUT_READ_LIMIT ||
         pending_control (ws) >= MAX_PENDING_CONTROL;
}

static inline gboolean
want_write (EngineIOWebSocket *ws)
{
  return pending_output (ws) > 0 ||
         (ws->write_enabled && (ws->ctrl_queue.length > 0 || ws->data_queue.length > 0));
}

/* engineio-websocket-output.c */

OutMsg  *engine_io_websocket_out_msg_new      (guint8             opcode,
                                               gint               prefix,
                                               const guint8      *data,
                                               gsize              len,
                                               GBytes            *bytes);
void     engine_io_websocket_out_msg_free     (OutMsg            *msg);
void     engine_io_websocket_queue_control    (EngineIOWebSocket *ws,
                                               guint8             opcode,
                                               const guint8      *data,
                                               gsize              len);
void     engine_io_websocket_fill_wire        (EngineIOWebSocket *ws);
gboolean engine_io_websocket_write_out        (EngineIOWebSocket *ws);

G_END_DECLS
