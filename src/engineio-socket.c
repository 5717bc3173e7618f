/* engineio-socket.c: one Engine.IO session
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-private.h"
#include "engineio-packet-private.h"
#include "engineio-jsonp-private.h"
#include "engineio-websocket-private.h"
#include "engineio-limits-private.h"
#include "engineio-enum-types.h"
#include "engineio-marshal.h"
#include "engineio-error.h"

/**
 * EngineIOSocket:
 *
 * One Engine.IO session with a client.
 *
 * Sockets are created by the server when a client's handshake is accepted
 * and handed to the application in #EngineIOServer::connection. Every
 * socket has a main context (engine_io_socket_get_context()) that runs its
 * heartbeat timers, its transport's events and *all of its signals*, in
 * order; by default a thread of its own iterates it (see
 * #EngineIOServer:loop-threads).
 *
 * Sending (engine_io_socket_send_text(), engine_io_socket_send_binary()) and
 * closing are thread-safe and never block. Incoming messages arrive as
 * #EngineIOSocket::message, or, for thread-style code, through the blocking
 * engine_io_socket_receive(): a message for which no ::message handler is
 * connected when it is dispatched goes to the receive queue instead.
 *
 * What a client can make a session hold is bounded in real bytes: packets
 * queued for sending by #EngineIOServer:send-queue-high-water, messages
 * waiting in the receive queue by #EngineIOServer:receive-queue-high-water.
 * At either mark the session stops reading its client (back-pressure)
 * until the queue is under half of it.
 */

typedef enum
{
  STATE_OPENING,  /* created, ::connection not yet emitted */
  STATE_OPEN,
  STATE_CLOSING,  /* closed for the application; a poll takes the last packets */
  STATE_CLOSED,   /* the loop is released; nothing more happens */
} SocketState;

typedef enum
{
  EVENT_PACKET,        /* a packet from the client */
  EVENT_FLUSHED,       /* send items were handed to the transport (or failed to be) */
  EVENT_CLOSE,         /* close with a reason */
  EVENT_FINISH_CLOSE,  /* the last poll took the last packets */
  EVENT_WS_ATTACH,     /* an upgraded connection for this session */
  EVENT_PACKET_CREATE, /* a packet was queued for the client: ::packet-create */
} EventKind;

typedef struct
{
  EngineIOPacket      *packet;
  EngineIOSendCallback callback;
  gpointer             user_data;
  GDestroyNotify       destroy;
  guint64              ws_seq;   /* over WebSocket: its message's number (see ws_unsent) */
} SendItem;

typedef struct
{
  EventKind            kind;
  EngineIOPacket      *packet;       /* EVENT_PACKET, EVENT_PACKET_CREATE */
  GPtrArray           *items;        /* EVENT_FLUSHED: SendItem* */
  gsize                size;         /* EVENT_PACKET: counted in inbound_bytes;
                                      * EVENT_PACKET_CREATE: counted in tap_bytes */
  gboolean             flushed;      /* EVENT_FLUSHED: what the send callbacks hear */
  EngineIOCloseReason  reason;       /* EVENT_CLOSE */
  char                *description;  /* EVENT_CLOSE */
  EngineIOWebSocket   *ws;           /* EVENT_WS_ATTACH */
  gboolean             reject_ws;    /* EVENT_WS_ATTACH: close it at once */
} Event;

struct _EngineIOSocket
{
  GObject                  parent_instance;

  /* Immutable after construction: any thread may read. */
  char                    *id;
  EngineIOProtocolVersion  version;
  EngineIOHandshake       *handshake;
  EngineIOServer          *server;        /* strong ref, dropped in finalize */
  EngineIOConfig          *config;
  GMainContext            *context;       /* ref; the loop's context */

  /* The outbound queue (SendItem*). Its lock is the session lock: it also
   * guards the fields marked (lock), because handing a waiting poll its
   * packets must be atomic with looking at the queue. */
  GAsyncQueue             *outbound;
  SocketState              state;         /* (lock) written; (atomic) read elsewhere */
  EngineIORequest         *active_get;    /* (lock) the poll attached to us, if any */
  EngineIORequest         *active_post;   /* (lock) the POST reading its body, if any */
  GPtrArray               *inflight;      /* (lock) EngineIORequest*: poll responses whose
                                           * send items wait for the end of the request */
  int                      transport;     /* (atomic) EngineIOTransportType */
  guint64                  queued_bytes;  /* (lock) real bytes in @outbound (item_size()) */
  guint64                  tap_bytes;     /* (lock) real bytes of the packets held for
                                           * ::packet-create handlers not yet told of them
                                           * (sent or not): they count against the send
                                           * mark with @queued_bytes */
  guint                    inflight_polls;/* (lock) poll responses carrying packets not yet
                                           * reported written: while there is one, an
                                           * open session takes nothing more out of its
                                           * queue (see take_for_poll_locked()) */
  guint64                  inbound_bytes; /* (lock) real bytes of EVENT_PACKETs in @inbound */
  guint                    inbound_packets; /* (lock) EVENT_PACKETs in @inbound */
  guint64                  received_bytes;/* (lock) real bytes in @received */
  gboolean                 input_paused;  /* (lock) the client is not read (back-pressure) */
  EngineIORequest         *held_post;     /* (lock) that POST, suspended while input_paused */
  gboolean                 ws_claimed;    /* (lock) a WebSocket was accepted for us */
  gboolean                 upgrading;     /* (lock) probe answered: polls get a noop */
  gboolean                 lingering;     /* (lock) closing, waiting for one last poll (or
                                           * the `5` of a probe kept through the close) */
  int                      close_requested; /* (atomic) a close is on its way: no more sends, no more messages */
  gboolean                 flush_inline;  /* (lock) the session thread flushes soon anyway */
  EngineIOTokenBucket      message_bucket; /* (lock) message-rate */

  /* Events for the session context (Event*), with one wake-up at a time. */
  GAsyncQueue             *inbound;
  int                      drain_pending; /* (atomic) a drain source is attached */

  /* Messages nobody handled, for engine_io_socket_receive() and its
   * variants. recv_lock nests inside the session lock (@outbound's), never
   * the other way round; no callback runs with it held. */
  GMutex                   recv_lock;
  GCond                    recv_cond;     /* (recv_lock) a message, the close or a cancellation */
  GQueue                   received;      /* (recv_lock) EngineIOPacket (ref) */
  GQueue                   recv_tasks;    /* (recv_lock) GTask (ref): receive_async() callers waiting */
  gboolean                 recv_closed;   /* (recv_lock) the session is over */
  EngineIOCloseReason      recv_reason;   /* (recv_lock) ... why */

  /* The body of the POST being read (@active_post), read a round of packets
   * at a time: only its serving thread touches these. */
  GBytes                  *post_payload;
  EngineIOPayloadReader    post_reader;
  gboolean                 post_validated; /* the whole body is known to decode */

  /* Session context only. */
  EngineIOLoop            *loop;          /* released when the session ends */
  GSource                 *ping_source;   /* v4: the next ping is due */
  GSource                 *timeout_source;/* v4: pong deadline; v3: expiry */
  gint64                   ping_sent_at;  /* v4: for the round-trip histogram */
  gboolean                 counted_open;  /* in the open-sessions gauge */
  gboolean                 client_closed; /* the client sent a close packet */
  gboolean                 shutting_down; /* a server shutdown reached us (perhaps closing
                                           * already, for another reason): a poll response
                                           * the close waits for gets a bounded time */
  gboolean                 write_bound;   /* @timeout_source bounds the write of a closing
                                           * session's poll response (not its linger) */
  EngineIOCounters        *counters;      /* the server's; immutable pointer */
  EngineIOCloseReason      close_reason;  /* written once, under the lock, with state
                                           * CLOSING: serving threads read it under the
                                           * lock (closing_takes_posts_locked()) */
  char                    *close_description;
  EngineIOWebSocket       *ws;            /* the transport, or an upgrade probe */
  gboolean                 ws_probe;      /* @ws is a probe, not yet the transport */
  GSource                 *upgrade_source;/* the probe's deadline */
  guint16                  ws_close_code; /* for the close frame when we close */
  GByteArray              *frame;         /* scratch for encoding frames */
  gint64                   inline_window; /* see ws_message_cb() */
  gint64                   inline_spent;
  GPtrArray               *dying_ws;      /* given-up WebSockets finishing their close */
  GQueue                   ws_unsent;     /* SendItem*: handed to @ws, not yet all taken by
                                           * send(), by ws_seq (see ws_report_sent()) */

  /* The application's data. Its own lock, never held while calling out
   * but for a dup function: a reader copies or references the data under
   * it, so a concurrent replacement cannot free it in between. */
  GMutex                   user_data_lock;
  gpointer                 user_data;          /* (user_data_lock) */
  GDestroyNotify           user_data_destroy;  /* (user_data_lock) */
  gboolean                 user_data_is_object;/* (user_data_lock) set by set_user_object() */
};

G_DEFINE_FINAL_TYPE (EngineIOSocket, engine_io_socket, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_ID,
  PROP_PROTOCOL_VERSION,
  PROP_TRANSPORT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_MESSAGE,
  SIGNAL_PACKET,
  SIGNAL_HEARTBEAT,
  SIGNAL_DRAIN,
  SIGNAL_CLOSE,
  SIGNAL_UPGRADING,
  SIGNAL_UPGRADE,
  SIGNAL_PACKET_CREATE,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void receive_close (EngineIOSocket      *self,
                           EngineIOCloseReason  reason);
static GTask *receive_take_task_locked (EngineIOSocket *self);
static void receive_task_return (GTask          *task,
                                 EngineIOPacket *packet);

static void socket_do_close     (EngineIOSocket      *self,
                                 EngineIOCloseReason  reason,
                                 const char          *description);
static void socket_finish_close (EngineIOSocket      *self);

/**
 * engine_io_close_reason_to_string:
 * @reason: a close reason
 *
 * The reference server's wording of @reason: `transport close`,
 * `transport error`, `ping timeout`, `parse error`, `forced close` or
 * `server shutting down`; and `rate limit exceeded`, which is ours.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_close_reason_to_string (EngineIOCloseReason reason)
{
  switch (reason)
    {
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE: return "transport close";
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR: return "transport error";
    case ENGINE_IO_CLOSE_REASON_PING_TIMEOUT: return "ping timeout";
    case ENGINE_IO_CLOSE_REASON_PARSE_ERROR: return "parse error";
    case ENGINE_IO_CLOSE_REASON_FORCED_CLOSE: return "forced close";
    case ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN: return "server shutting down";
    case ENGINE_IO_CLOSE_REASON_RATE_LIMITED: return "rate limit exceeded";
    default: return "unknown";
    }
}

/* Send items and events */

static void
send_item_free (SendItem *item)
{
  engine_io_packet_unref (item->packet);
  if (item->destroy != NULL)
    item->destroy (item->user_data);
  g_free (item);
}

/* Payload bytes, for the byte counters of the metrics. */
static gsize
packet_size (EngineIOPacket *packet)
{
  return g_bytes_get_size (engine_io_packet_get_data (packet)) + 1;
}

/* Memory accounting, in real bytes (see #EngineIOServer:send-queue-high-water):
 * a packet's footprint (engine_io_packet_get_footprint(): its struct, its
 * GBytes, its data as allocated, what a slice keeps alive) plus what
 * holding it in each queue costs. On 64-bit glibc an empty message queued
 * for sending is 112 bytes, a 2-byte one 192; a received one 32 + 32 or
 * 112 + 32; a read one waiting for the session context 32 + 96. */
#define QUEUE_LINK_SIZE ENGINE_IO_ALLOC_SIZE (sizeof (GList))  /* GAsyncQueue's GQueue link */
#define SEND_ITEM_OVERHEAD (ENGINE_IO_ALLOC_SIZE (sizeof (SendItem)) + QUEUE_LINK_SIZE)
#define EVENT_OVERHEAD (ENGINE_IO_ALLOC_SIZE (sizeof (Event)) + QUEUE_LINK_SIZE)
#define RECEIVED_OVERHEAD QUEUE_LINK_SIZE

/* What a packet in the outbound queue costs. */
static gsize
item_size (EngineIOPacket *packet)
{
  return engine_io_packet_get_footprint (packet) + SEND_ITEM_OVERHEAD;
}

static void
event_free (Event *event)
{
  g_clear_pointer (&event->packet, engine_io_packet_unref);
  g_clear_pointer (&event->items, g_ptr_array_unref);
  g_free (event->description);
  g_clear_pointer (&event->ws, engine_io_websocket_free);
  g_free (event);
}

static gboolean drain_inbound_cb (gpointer data);

/* Events handled per dispatch of a socket's event source, at most, and
 * the time after which a dispatch stops taking more. */
#define EVENT_BATCH 64
#define EVENT_BATCH_US 5000
/* WebSocket messages are handled inline until their handlers used
 * EVENT_BATCH_US within INLINE_WINDOW_US; reading pauses while more than
 * INBOUND_PAUSE events wait. */
#define INLINE_WINDOW_US 50000
#define INBOUND_PAUSE 1024

/* Called with the lock held. */
static void
schedule_drain_locked (EngineIOSocket *self)
{
  if (g_atomic_int_compare_and_exchange (&self->drain_pending, 0, 1))
    {
      GSource *source = g_idle_source_new ();
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, drain_inbound_cb, g_object_ref (self), g_object_unref);
      g_source_set_static_name (source, "[engineio] socket events");
      g_source_attach (source, self->context);
      g_source_unref (source);
    }
}

/* Called with the lock held. Events reach a socket until it is CLOSED. */
static gboolean
post_event_locked (EngineIOSocket *self,
                   Event          *event)
{
  if (self->state == STATE_CLOSED)
    {
      event_free (event);
      return FALSE;
    }
  if (event->kind == EVENT_PACKET)
    {
      event->size = engine_io_packet_get_footprint (event->packet) + EVENT_OVERHEAD;
      self->inbound_bytes += event->size;
      self->inbound_packets++;
    }
  g_async_queue_push (self->inbound, event);
  schedule_drain_locked (self);
  return TRUE;
}

/* Called with the lock held: whether the session should not read its
 * client now (back-pressure). What client input can make a session hold
 * is what it has read and not handled (@inbound_bytes) plus what that
 * turns into: packets to send (@queued_bytes: echoes, v3 pongs) or
 * messages for engine_io_socket_receive() (@received_bytes). Reading stops
 * when either reaches its mark, and (with @paused, the session is not
 * reading) starts again once both are under half of it. A WebSocket also
 * pauses while more than INBOUND_PAUSE packets wait for slow handlers. */
static gboolean
input_over_locked (EngineIOSocket *self,
                   gboolean        paused)
{
  guint64 send_mark = self->config->send_queue_high_water;
  guint64 receive_mark = self->config->receive_queue_high_water;
  guint64 out = self->queued_bytes + self->tap_bytes + self->inbound_bytes;
  guint64 in = self->received_bytes + self->inbound_bytes;

  if (send_mark > 0 && out >= (paused ? send_mark / 2 : send_mark))
    return TRUE;
  if (receive_mark > 0 && in >= (paused ? receive_mark / 2 : receive_mark))
    return TRUE;
  return g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_WEBSOCKET &&
         self->inbound_packets >= (paused ? INBOUND_PAUSE / 4 : INBOUND_PAUSE);
}

static void
post_event (EngineIOSocket *self,
            Event          *event)
{
  g_async_queue_lock (self->outbound);
  post_event_locked (self, event);
  g_async_queue_unlock (self->outbound);
}

/* message-rate. Called with the lock held, where a packet arrives (a
 * POST's serving thread, or the session context for WebSocket): whether
 * it may go on. Messages count, and so do pings (a v3 client's ping costs
 * a pong, so a ping flood is a message flood); pongs, noops, close and
 * upgrade packets do not. A packet over the rate is counted here when the
 * policy drops it; closing is the caller's. */
static gboolean
message_within_rate_locked (EngineIOSocket *self,
                            EngineIOPacket *packet)
{
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

  if (self->config->message_rate <= 0 ||
      (type != ENGINE_IO_PACKET_MESSAGE && type != ENGINE_IO_PACKET_PING))
    return TRUE;
  if (engine_io_token_bucket_take (&self->message_bucket, self->config->message_rate,
                                   self->config->message_capacity, g_get_monotonic_time ()))
    return TRUE;
  if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_DROP)
    engine_io_counter_add (&self->counters->messages_dropped, 1);
  return FALSE;
}

#define RATE_LIMITED_DESCRIPTION "the client sent messages faster than message-rate allows"
#define RECEIVE_OVER_DESCRIPTION "receive queue over its limit"

/* At most this many packets go in one poll response while the session is
 * open: python-engineio (Debian's 4.x) rejects payloads of more than 16
 * packets (Payload.max_decode_packets) and drops the connection. The rest
 * goes in the next poll, which follows at once. */
#define POLL_MAX_PACKETS 16

/* Called with the lock held: takes every queued item (in order) and
 * returns their packets. The items go to the session context in an
 * EVENT_FLUSHED when anyone wants to know (a send callback, a ::drain
 * handler), and are freed here otherwise. With @notify_out, those items
 * are returned there instead (NULL if none), for a poll response: its
 * callbacks learn when the request ends whether the response was
 * written (attach_flush_items_locked()). */
static GPtrArray *
take_outbound_locked (EngineIOSocket  *self,
                      guint64          limit,
                      guint            max_items,
                      GPtrArray      **notify_out)
{
  guint queued = (guint) MAX (g_async_queue_length_unlocked (self->outbound), 0);
  GPtrArray *packets;
  GPtrArray *notify_items = NULL;  /* what the session context hears about */
  gboolean drain;
  SendItem *item;
  guint64 taken = 0;

  packets = g_ptr_array_new_full (max_items > 0 ? MIN (queued, max_items) : queued,
                                  (GDestroyNotify) engine_io_packet_unref);
  if (queued == 0)
    return packets;

  /* Items only travel to the session context when someone listens: a send
   * callback, or a ::drain handler. Most sends have neither, and cost no
   * event. */
  drain = g_signal_has_handler_pending (self, signals[SIGNAL_DRAIN], 0, TRUE);

  /* @limit in bytes, 0 for everything; at least one item is taken. */
  while ((limit == 0 || taken < limit) &&
         (max_items == 0 || packets->len < max_items) &&
         (item = g_async_queue_try_pop_unlocked (self->outbound)) != NULL)
    {
      gsize size = packet_size (item->packet);
      gsize held = item_size (item->packet);

      g_ptr_array_add (packets, engine_io_packet_ref (item->packet));
      taken += size;
      self->queued_bytes = self->queued_bytes > held ? self->queued_bytes - held : 0;
      if (drain || item->callback != NULL)
        {
          if (notify_items == NULL)
            notify_items = g_ptr_array_new_with_free_func ((GDestroyNotify) send_item_free);
          item->ws_seq = packets->len;  /* its place in @packets, from 1 */
          g_ptr_array_add (notify_items, item);
        }
      else
        send_item_free (item);
    }
  if (g_async_queue_length_unlocked (self->outbound) == 0)
    self->queued_bytes = 0;

  /* The session context decides whether its client may be read again. */
  if (self->input_paused && packets->len > 0 && self->state != STATE_CLOSED)
    schedule_drain_locked (self);

  if (packets->len > 0)
    {
      engine_io_counter_add (&self->counters->packets_out, packets->len);
      engine_io_counter_add (&self->counters->bytes_out, taken);
    }

  if (notify_out != NULL)
    *notify_out = notify_items;
  else if (notify_items != NULL)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_FLUSHED;
      event->items = notify_items;
      event->flushed = TRUE;
      post_event_locked (self, event);
    }

  return packets;
}

/* Called with the lock held: @req's response carries @items (may be
 * NULL). Their callbacks are called when libmicrohttpd reports the end of
 * the request (engine_io_socket_request_finished()): TRUE only if the
 * response was written completely; FALSE if the connection failed, or the
 * session ended first. */
static void
attach_flush_items_locked (EngineIOSocket  *self,
                           EngineIORequest *req,
                           GPtrArray       *items)
{
  if (items == NULL)
    return;
  g_assert (req->flush_items == NULL);
  req->flush_items = items;
  g_ptr_array_add (self->inflight, req);
}

/* Called with the lock held: takes what a poll response carries out of
 * the queue (as take_outbound_locked()). A response is held whole until
 * libmicrohttpd has written it, outside the queue and its mark, so while
 * one is being written an open session answers no other poll with packets
 * (the next poll waits, and takes them once the first is reported written,
 * engine_io_socket_request_finished()): a client that polls on new
 * connections and never reads cannot move the queue, again and again, into
 * responses nobody counts. An honest client polls again only once it has
 * read the previous response. */
static GPtrArray *
take_for_poll_locked (EngineIOSocket   *self,
                      EngineIORequest  *req,
                      guint             max_items,
                      GPtrArray       **notify_out)
{
  GPtrArray *packets = take_outbound_locked (self, 0, max_items, notify_out);

  if (packets->len > 0 && !req->inflight)
    {
      req->inflight = TRUE;
      self->inflight_polls++;
    }
  return packets;
}

/* Called with the lock held; returns the request to resume (outside the
 * lock), if the transport needs waking to carry what was queued. */
static EngineIORequest *
kick_transport_locked (EngineIOSocket *self)
{
  EngineIORequest *req = self->active_get;

  if (g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_WEBSOCKET)
    {
      /* The session context writes to the WebSocket. */
      if (!self->flush_inline && self->state != STATE_CLOSED)
        schedule_drain_locked (self);
      return NULL;
    }

  /* Not while another poll response is being written, but to close. */
  if (req != NULL && req->suspended && !self->upgrading &&
      (self->inflight_polls == 0 || self->state != STATE_OPEN))
    {
      req->suspended = FALSE;
      return req;
    }
  return NULL;
}

/* Any thread. Takes @packet. */
static gboolean
socket_enqueue (EngineIOSocket       *self,
                EngineIOPacket       *packet,
                EngineIOSendCallback  callback,
                gpointer              user_data,
                GDestroyNotify        destroy,
                gboolean              kick,
                GError              **error)
{
  EngineIORequest *resume = NULL;
  SendItem *item;
  gsize size = item_size (packet);
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);
  gboolean close_for_backpressure = FALSE;

  g_async_queue_lock (self->outbound);

  /* The open packet is queued even when a close is already on its way
   * (a server closing during the handshake): the first poll must carry it
   * before the close packet, never the close packet alone. */
  if ((self->state != STATE_OPEN && self->state != STATE_OPENING) ||
      (g_atomic_int_get (&self->close_requested) &&
       engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_OPEN))
    {
      g_async_queue_unlock (self->outbound);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                   "Socket “%s” is closed", self->id);
      engine_io_packet_unref (packet);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  /* Every packet counts against the mark; the policy applies to messages
   * and to v3 pongs (the client's pings make those). The open packet and
   * our pings are queued anyway: one per session, one per ping interval. */
  if (self->config->send_queue_high_water > 0 &&
      self->queued_bytes + self->tap_bytes + size > self->config->send_queue_high_water &&
      (type == ENGINE_IO_PACKET_MESSAGE || type == ENGINE_IO_PACKET_PONG))
    {
      switch (self->config->backpressure)
        {
        case ENGINE_IO_BACKPRESSURE_KEEP_QUEUING:
          break;
        case ENGINE_IO_BACKPRESSURE_DROP_NEWEST:
          /* queued_bytes is (lock): read it before unlocking. */
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL,
                       "Send queue of socket “%s” is over its high-water mark (%" G_GUINT64_FORMAT " bytes queued)",
                       self->id, self->queued_bytes);
          g_async_queue_unlock (self->outbound);
          engine_io_packet_unref (packet);
          if (destroy != NULL)
            destroy (user_data);
          return FALSE;
        case ENGINE_IO_BACKPRESSURE_CLOSE:
        default:
          close_for_backpressure = TRUE;
          break;
        }
    }

  if (close_for_backpressure)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_CLOSE;
      event->reason = ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR;
      event->description = g_strdup ("send queue over its high-water mark");
      post_event_locked (self, event);
      g_async_queue_unlock (self->outbound);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_QUEUE_FULL,
                   "Send queue of socket “%s” is over its high-water mark: closing it",
                   self->id);
      engine_io_packet_unref (packet);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  item = g_new (SendItem, 1);
  item->packet = packet;
  item->callback = callback;
  item->user_data = user_data;
  item->destroy = destroy;
  g_async_queue_push_unlocked (self->outbound, item);
  self->queued_bytes += size;
  /* The tap: told in the socket's context, in queue order (the signal
   * lock taken here is a leaf lock). */
  if (g_signal_has_handler_pending (self, signals[SIGNAL_PACKET_CREATE], 0, TRUE))
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_PACKET_CREATE;
      event->packet = engine_io_packet_ref (packet);
      event->size = size;
      if (post_event_locked (self, event))
        self->tap_bytes += size;
    }
  engine_io_counter_max (&self->counters->queue_high_water, self->queued_bytes);

  if (kick)
    resume = kick_transport_locked (self);

  g_async_queue_unlock (self->outbound);

  if (resume != NULL)
    engine_io_core_request_resume (resume);

  return TRUE;
}

/* Timers (session context) */

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_source_unref (*source);
      *source = NULL;
    }
}

static GSource *
add_timeout (EngineIOSocket *self,
             guint           ms,
             GSourceFunc     func,
             const char     *name)
{
  GSource *source = g_timeout_source_new (ms);

  /* No reference: the socket destroys its timers when it closes, and the
   * server holds it until then. */
  g_source_set_callback (source, func, self, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, self->context);
  return source;
}

static gboolean
ping_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  socket_do_close (self, ENGINE_IO_CLOSE_REASON_PING_TIMEOUT, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
send_ping_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->ping_source, g_source_unref);
  self->ping_sent_at = g_get_monotonic_time ();
  socket_enqueue (self, engine_io_packet_new (ENGINE_IO_PACKET_PING), NULL, NULL, NULL, TRUE, NULL);
  clear_source (&self->timeout_source);
  self->timeout_source = add_timeout (self, self->config->ping_timeout + self->config->ping_interval_grace,
                                      ping_timeout_cb, "[engineio] pong deadline");
  return G_SOURCE_REMOVE;
}

static void
schedule_ping (EngineIOSocket *self)
{
  clear_source (&self->ping_source);
  self->ping_source = add_timeout (self, self->config->ping_interval, send_ping_cb,
                                   "[engineio] ping");
}

/* v3: the session expires pingInterval + pingTimeout after the last packet
 * received from the client. */
static void
reset_expiry (EngineIOSocket *self)
{
  clear_source (&self->timeout_source);
  self->timeout_source = add_timeout (self, self->config->ping_interval + self->config->ping_timeout +
                                      self->config->ping_interval_grace,
                                      ping_timeout_cb, "[engineio] expiry");
}

/* Event handling (session context) */

static void
call_send_callbacks (EngineIOSocket *self,
                     GPtrArray      *items,
                     gboolean        flushed)
{
  for (guint i = 0; i < items->len; i++)
    {
      SendItem *item = g_ptr_array_index (items, i);
      if (item->callback != NULL)
        item->callback (self, flushed, item->user_data);
    }
}

static void
handle_packet (EngineIOSocket *self,
               EngineIOPacket *packet)
{
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

  if (self->state != STATE_OPEN || g_atomic_int_get (&self->close_requested))
    return;

  engine_io_counter_add (&self->counters->packets_in, 1);
  engine_io_counter_add (&self->counters->bytes_in, packet_size (packet));

  g_signal_emit (self, signals[SIGNAL_PACKET], 0, packet);
  if (self->state != STATE_OPEN)
    return;

  if (self->version == ENGINE_IO_PROTOCOL_V3)
    reset_expiry (self);

  switch (type)
    {
    case ENGINE_IO_PACKET_PING:
      if (self->version != ENGINE_IO_PROTOCOL_V3)
        {
          socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                           "invalid heartbeat direction: a v4 client sent a ping");
          return;
        }
      /* v3: answer with the same data (`2probe` -> `3probe`) */
      {
        gsize len = 0;
        const char *text = engine_io_packet_get_text (packet, &len);
        EngineIOPacket *pong = engine_io_packet_is_binary (packet)
          ? engine_io_packet_new_binary (ENGINE_IO_PACKET_PONG, engine_io_packet_get_data (packet))
          : engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, text, len);
        socket_enqueue (self, pong, NULL, NULL, NULL, TRUE, NULL);
      }
      g_signal_emit (self, signals[SIGNAL_HEARTBEAT], 0);
      break;

    case ENGINE_IO_PACKET_PONG:
      if (self->version != ENGINE_IO_PROTOCOL_V4)
        {
          socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                           "invalid heartbeat direction: a v3 client sent a pong");
          return;
        }
      /* Only the answer to our ping counts: an unsolicited pong would
       * put the next ping off for ever, so a client could stay alive
       * without ever reading (with WebSocket output that does not drain,
       * see ws_stalled_cb()). */
      if (self->ping_sent_at == 0)
        break;
      clear_source (&self->timeout_source);
      engine_io_counters_record_rtt (self->counters, g_get_monotonic_time () - self->ping_sent_at);
      self->ping_sent_at = 0;
      schedule_ping (self);
      g_signal_emit (self, signals[SIGNAL_HEARTBEAT], 0);
      break;

    case ENGINE_IO_PACKET_MESSAGE:
      if (g_signal_has_handler_pending (self, signals[SIGNAL_MESSAGE], 0, FALSE))
        {
          if (engine_io_packet_is_binary (packet))
            g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, NULL, engine_io_packet_get_data (packet));
          else
            g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, engine_io_packet_get_text (packet, NULL), NULL);
        }
      else
        {
          /* For engine_io_socket_receive(). Reading stops at the receive
           * mark (input_over_locked()), so the queue passes twice the mark
           * only if something is badly wrong: then the session ends. */
          gsize size = engine_io_packet_get_footprint (packet) + RECEIVED_OVERHEAD;
          guint64 mark = self->config->receive_queue_high_water;
          GTask *task = NULL;
          gboolean over;

          g_async_queue_lock (self->outbound);
          g_mutex_lock (&self->recv_lock);
          /* A receive_async() caller waiting takes it at once: never
           * queued, it does not count against the bound. */
          task = receive_take_task_locked (self);
          over = task == NULL && mark > 0 && self->received_bytes + size > 2 * mark;
          if (task == NULL && !over)
            {
              self->received_bytes += size;
              g_queue_push_tail (&self->received, engine_io_packet_ref (packet));
              g_cond_broadcast (&self->recv_cond);
            }
          g_mutex_unlock (&self->recv_lock);
          g_async_queue_unlock (self->outbound);
          if (task != NULL)
            receive_task_return (task, packet);
          if (over)
            {
              self->ws_close_code = 1008;  /* policy violation */
              socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR, RECEIVE_OVER_DESCRIPTION);
            }
        }
      break;

    case ENGINE_IO_PACKET_CLOSE:
      self->client_closed = TRUE;
      socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE, NULL);
      break;

    case ENGINE_IO_PACKET_OPEN:
    case ENGINE_IO_PACKET_UPGRADE:
    case ENGINE_IO_PACKET_NOOP:
    default:
      /* Nothing to do: the reference ignores these as well. */
      break;
    }
}


/* Session context: stops or starts reading the client, as
 * input_over_locked() says: pauses the WebSocket, or resumes the POST held
 * while the session was over its bound. A session that is no longer open
 * reads again (a WebSocket's close must be read; a held POST is answered). */
static void
update_input (EngineIOSocket *self)
{
  EngineIORequest *resume = NULL;
  gboolean paused;

  g_async_queue_lock (self->outbound);
  paused = self->state == STATE_OPEN && input_over_locked (self, self->input_paused);
  self->input_paused = paused;
  if (!paused && self->held_post != NULL)
    {
      resume = g_steal_pointer (&self->held_post);
      resume->suspended = FALSE;
    }
  g_async_queue_unlock (self->outbound);

  if (self->ws != NULL && !self->ws_probe)
    engine_io_websocket_set_paused (self->ws, paused);
  if (resume != NULL)
    engine_io_core_request_resume (resume);
}

/* WebSocket (session context) */

/* Bytes the WebSocket may hold before we stop moving packets into it: the rest
 * stays in the outbound queue, where the high-water mark sees it. */
#define WS_BUFFER_TARGET (256 * 1024)
/* The encoding buffer (@frame) serves packets up to this size (and keeps
 * its room between frames); larger ones are encoded on their own. */
#define WS_FRAME_KEEP (64 * 1024)

static void ws_message_cb (EngineIOWebSocket *ws, gboolean binary, const guint8 *data, gsize size, gpointer user_data);
static void ws_drained_cb (EngineIOWebSocket *ws, gpointer user_data);
static void ws_closed_cb  (EngineIOWebSocket *ws, gboolean clean, guint16 code, gpointer user_data);
static void ws_stalled_cb (EngineIOWebSocket *ws, gpointer user_data);

static const EngineIOWebSocketCallbacks ws_callbacks = {
  .message = ws_message_cb,
  .drained = ws_drained_cb,
  .closed = ws_closed_cb,
  .stalled = ws_stalled_cb,
};

/* Given-up WebSockets (probes, second WebSockets) finishing their close
 * handshake, per session, at most; a new one drops the oldest. */
#define MAX_DYING_WS 8

/* How long WebSocket output may wait with none of it written before the
 * connection closes with 1008: a heartbeat's worth, after which a client
 * that reads would have answered a ping. */
static guint
ws_stall_timeout (EngineIOSocket *self)
{
  return self->config->ping_interval + self->config->ping_timeout;
}

static gboolean
ws_send_packet (EngineIOSocket *self,
                EngineIOPacket *packet)
{
  GBytes *data = engine_io_packet_get_data (packet);
  gboolean binary = FALSE;

  if (g_bytes_get_size (data) > WS_FRAME_KEEP)
    {
      /* A large packet: sent from its own data, not copied (the WebSocket
       * writes the type byte, if any, then the data, with one sendmsg()). */
      EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

      binary = engine_io_packet_is_binary (packet);
      if (binary && self->version == ENGINE_IO_PROTOCOL_V4)
        return engine_io_websocket_send_bytes (self->ws, TRUE, data);
      return engine_io_websocket_send_prefixed (self->ws, binary,
                                                binary ? (guint8) type : (guint8) ('0' + type), data);
    }
  g_byte_array_set_size (self->frame, 0);
  engine_io_packet_encode_append (packet, self->version, self->frame, &binary);
  return engine_io_websocket_send (self->ws, binary, self->frame->data, self->frame->len);
}

/* Send items whose message is in the WebSocket are told TRUE only once
 * send() has taken all of it (the kernel has it), not when it is handed
 * to the WebSocket: a connection that fails or stalls with output still in our
 * buffers would otherwise have said delivered for messages its client
 * never gets. Posts EVENT_FLUSHED for those sent since (session
 * context). */
static void
ws_report_sent (EngineIOSocket *self)
{
  GPtrArray *done = NULL;
  guint64 sent;

  if (self->ws == NULL || self->ws_probe || g_queue_is_empty (&self->ws_unsent))
    return;
  sent = engine_io_websocket_get_sent_count (self->ws);
  while (!g_queue_is_empty (&self->ws_unsent) &&
         ((SendItem *) g_queue_peek_head (&self->ws_unsent))->ws_seq <= sent)
    {
      if (done == NULL)
        done = g_ptr_array_new_with_free_func ((GDestroyNotify) send_item_free);
      g_ptr_array_add (done, g_queue_pop_head (&self->ws_unsent));
    }
  if (done != NULL)
    {
      Event *event = g_new0 (Event, 1);

      event->kind = EVENT_FLUSHED;
      event->items = done;
      event->flushed = TRUE;
      post_event (self, event);
    }
}

/* Hands @packets to the WebSocket; @notify (may be NULL, taken) are the
 * send items among them (ws_seq: their place in @packets): they wait in
 * ws_unsent for their message to be sent, or are told FALSE at once if
 * the WebSocket did not take it. */
static void
ws_send_packets (EngineIOSocket *self,
                 GPtrArray      *packets,
                 GPtrArray      *notify)
{
  guint64 base = engine_io_websocket_get_queued_count (self->ws);
  guint n_ok = 0;

  while (n_ok < packets->len && ws_send_packet (self, g_ptr_array_index (packets, n_ok)))
    n_ok++;  /* a WebSocket that refused one refuses the rest */

  if (notify != NULL)
    {
      GPtrArray *refused = NULL;
      gsize n = 0;
      gpointer *items = g_ptr_array_steal (notify, &n);

      for (gsize i = 0; i < n; i++)
        {
          SendItem *item = items[i];

          if (item->ws_seq <= n_ok)
            {
              item->ws_seq += base;
              g_queue_push_tail (&self->ws_unsent, item);
            }
          else
            {
              if (refused == NULL)
                refused = g_ptr_array_new_with_free_func ((GDestroyNotify) send_item_free);
              g_ptr_array_add (refused, item);
            }
        }
      g_free (items);
      g_ptr_array_unref (notify);
      if (refused != NULL)
        {
          Event *event = g_new0 (Event, 1);

          event->kind = EVENT_FLUSHED;
          event->items = refused;
          event->flushed = FALSE;
          post_event (self, event);
        }
    }
}

/* Moves queued packets into the WebSocket while it is not too full; the
 * rest waits in the outbound queue (where the high-water mark sees it)
 * until the WebSocket drains. */
static void
ws_flush_outbound (EngineIOSocket *self)
{
  while (self->ws != NULL && !self->ws_probe && engine_io_websocket_can_send (self->ws) &&
         engine_io_websocket_get_buffered (self->ws) < WS_BUFFER_TARGET)
    {
      g_autoptr(GPtrArray) packets = NULL;
      GPtrArray *notify = NULL;

      g_async_queue_lock (self->outbound);
      if (g_async_queue_length_unlocked (self->outbound) <= 0)
        {
          g_async_queue_unlock (self->outbound);
          break;
        }
      packets = take_outbound_locked (self, WS_BUFFER_TARGET, 0, &notify);
      g_async_queue_unlock (self->outbound);

      ws_send_packets (self, packets, notify);
      engine_io_websocket_flush (self->ws);
    }
  ws_report_sent (self);
}

/* Closes @ws (a probe we give up) in the background; it is freed when its
 * close completes, or when the session ends, whichever comes first. */
static void
retire_ws (EngineIOSocket    *self,
           EngineIOWebSocket *ws,
           guint16            code,
           const char        *reason)
{
  /* Too many: the oldest goes without finishing its close handshake.
   * (Not @ws: it may be dispatching, a probe given up from its own
   * message. The dying ones never call back into the session but to
   * leave dying_ws, so none of them is on the stack here.) */
  if (self->dying_ws->len >= MAX_DYING_WS)
    g_ptr_array_remove_index (self->dying_ws, 0);
  engine_io_websocket_close (ws, code, reason);
  if (engine_io_websocket_is_closed (ws))
    engine_io_websocket_free (ws);
  else
    g_ptr_array_add (self->dying_ws, ws);
}

/* Drops the upgrade probe (if any is still ours), with a close frame with
 * @code (0: none, the probe is closed already), and lets polling go on;
 * another probe may come. */
static void
clear_probe (EngineIOSocket *self,
             guint16         code,
             const char     *reason)
{
  clear_source (&self->upgrade_source);
  if (self->ws != NULL && self->ws_probe)
    {
      if (code != 0)
        retire_ws (self, g_steal_pointer (&self->ws), code, reason);
      else
        g_clear_pointer (&self->ws, engine_io_websocket_free);
    }
  if (self->ws == NULL)
    {
      self->ws_probe = FALSE;
      g_async_queue_lock (self->outbound);
      self->upgrading = FALSE;
      self->ws_claimed = FALSE;
      g_async_queue_unlock (self->outbound);
    }
}

static gboolean
upgrade_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->upgrade_source, g_source_unref);
  g_debug ("socket %s: upgrade probe timed out", self->id);
  clear_probe (self, 1000, "upgrade timeout");  /* polling goes on */
  return G_SOURCE_REMOVE;
}

/* Answers a waiting poll with a noop (upgrading) and returns it. */
static EngineIORequest *
release_poll_with_noop_locked (EngineIOSocket *self)
{
  EngineIORequest *req = self->active_get;

  if (req != NULL && req->suspended)
    {
      req->suspended = FALSE;
      req->answer_noop = TRUE;
      return req;
    }
  return NULL;
}

static void
complete_upgrade (EngineIOSocket *self)
{
  EngineIORequest *resume;

  clear_source (&self->upgrade_source);
  self->ws_probe = FALSE;

  g_async_queue_lock (self->outbound);
  self->upgrading = FALSE;
  g_atomic_int_set (&self->transport, ENGINE_IO_TRANSPORT_WEBSOCKET);
  resume = release_poll_with_noop_locked (self);
  g_async_queue_unlock (self->outbound);
  engine_io_counter_sub (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_POLLING, self->version), 1);
  engine_io_counter_add (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_WEBSOCKET, self->version), 1);
  engine_io_counter_add (&self->counters->upgrades, 1);
  if (resume != NULL)
    engine_io_core_request_resume (resume);

  g_debug ("socket %s upgraded to websocket", self->id);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TRANSPORT]);
  g_signal_emit (self, signals[SIGNAL_UPGRADE], 0, ENGINE_IO_TRANSPORT_WEBSOCKET);

  /* What was queued since the probe goes out now, in order, once. */
  ws_flush_outbound (self);
}

/* The client's `5` on a probe kept through a close (socket_do_close()):
 * as in the reference, the upgrade completes, what was queued goes out on
 * the WebSocket, then its close frame; the session finishes when the
 * WebSocket is closed (within its close timeout). If the session's last
 * poll came first, it answered `1` and the session ends with it: the `5`
 * is ignored. */
static void
complete_upgrade_closing (EngineIOSocket *self)
{
  g_autoptr(GPtrArray) packets = NULL;
  GPtrArray *notify = NULL;
  gboolean take;

  g_async_queue_lock (self->outbound);
  take = self->lingering;
  if (take)
    {
      self->lingering = FALSE;
      self->upgrading = FALSE;
      g_atomic_int_set (&self->transport, ENGINE_IO_TRANSPORT_WEBSOCKET);
    }
  g_async_queue_unlock (self->outbound);
  if (!take)
    return;

  clear_source (&self->upgrade_source);
  clear_source (&self->timeout_source);  /* the linger: no poll is waited for now */
  self->ws_probe = FALSE;
  engine_io_counter_sub (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_POLLING, self->version), 1);
  engine_io_counter_add (engine_io_counter_open (self->counters, ENGINE_IO_TRANSPORT_WEBSOCKET, self->version), 1);
  engine_io_counter_add (&self->counters->upgrades, 1);
  g_debug ("socket %s upgraded to websocket while closing", self->id);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TRANSPORT]);

  if (engine_io_websocket_can_send (self->ws))
    {
      g_async_queue_lock (self->outbound);
      packets = take_outbound_locked (self, 0, 0, &notify);
      g_async_queue_unlock (self->outbound);
      ws_send_packets (self, packets, notify);
    }
  engine_io_websocket_close (self->ws, self->ws_close_code, NULL);
}

static void
handle_probe_packet (EngineIOSocket *self,
                     EngineIOPacket *packet)
{
  EngineIOPacketType type = engine_io_packet_get_packet_type (packet);
  const char *text = engine_io_packet_get_text (packet, NULL);
  EngineIORequest *resume = NULL;

  if (self->state != STATE_OPEN)
    {
      /* A probe kept through a close: only `5` is expected. */
      if (type == ENGINE_IO_PACKET_UPGRADE)
        complete_upgrade_closing (self);
      else
        clear_probe (self, 1002, "unexpected packet during upgrade");
      return;
    }

  if (type == ENGINE_IO_PACKET_PING && text != NULL && strcmp (text, "probe") == 0)
    {
      g_autoptr(EngineIOPacket) pong = engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, "probe", 5);

      ws_send_packet (self, pong);
      g_async_queue_lock (self->outbound);
      self->upgrading = TRUE;
      resume = release_poll_with_noop_locked (self);
      g_async_queue_unlock (self->outbound);
      if (resume != NULL)
        engine_io_core_request_resume (resume);
      g_signal_emit (self, signals[SIGNAL_UPGRADING], 0, ENGINE_IO_TRANSPORT_WEBSOCKET);
      return;
    }

  if (type == ENGINE_IO_PACKET_UPGRADE)
    {
      gboolean upgrading;

      g_async_queue_lock (self->outbound);
      upgrading = self->upgrading;
      g_async_queue_unlock (self->outbound);
      if (upgrading)
        {
          complete_upgrade (self);
          return;
        }
    }

  /* Anything else on a probe: give up the probe, keep polling. */
  g_debug ("socket %s: unexpected %s packet on the upgrade probe", self->id,
           engine_io_packet_type_to_string (type));
  clear_probe (self, 1002, "unexpected packet during upgrade");
}

static void
ws_message_cb (EngineIOWebSocket *ws,
               gboolean           binary,
               const guint8      *data,
               gsize              size,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;

  /* A probe may be kept through a close (see socket_do_close()). */
  if (ws != self->ws || (self->state != STATE_OPEN && !(self->ws_probe && self->state == STATE_CLOSING)))
    return;

  /* The WebSocket codec validated text frames' UTF-8 (closing with 1007 otherwise). */
  if (binary)
    {
      g_autoptr(GBytes) frame = g_bytes_new (data, size);
      packet = engine_io_packet_decode (frame, TRUE, self->version, &error);
    }
  else
    packet = engine_io_packet_decode_valid_text ((const char *) data, size, self->version, &error);

  if (packet == NULL)
    {
      if (self->ws_probe)
        {
          clear_probe (self, 1002, "bad packet during upgrade");
        }
      else
        {
          self->ws_close_code = 1002;
          socket_do_close (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
        }
      return;
    }

  if (self->ws_probe)
    {
      handle_probe_packet (self, packet);
      return;
    }

  if (self->config->message_rate > 0)
    {
      gboolean within;

      g_async_queue_lock (self->outbound);
      within = message_within_rate_locked (self, packet);
      g_async_queue_unlock (self->outbound);
      if (!within)
        {
          if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_CLOSE)
            {
              self->ws_close_code = 1008;  /* policy violation */
              socket_do_close (self, ENGINE_IO_CLOSE_REASON_RATE_LIMITED, RATE_LIMITED_DESCRIPTION);
            }
          return;
        }
    }

  /* Handled here while the handlers are quick; slow handlers (or a client
   * sending faster than they run) turn this into a backlog handled by the
   * event source in bounded batches, so other sources of the context get
   * their turn. Once there is a backlog, everything goes through it, in
   * order, and reading pauses while it is long. */
  {
    gint64 now = g_get_monotonic_time ();
    Event *event;

    if (now - self->inline_window > INLINE_WINDOW_US)
      {
        self->inline_window = now;
        self->inline_spent = 0;
      }
    if (self->inline_spent > EVENT_BATCH_US || g_async_queue_length (self->inbound) > 0)
      {
        event = g_new0 (Event, 1);
        event->kind = EVENT_PACKET;
        event->packet = g_steal_pointer (&packet);
        post_event (self, event);
        update_input (self);
        return;
      }

    /* Sends from the handlers are written at the end of this dispatch. */
    g_async_queue_lock (self->outbound);
    self->flush_inline = TRUE;
    g_async_queue_unlock (self->outbound);

    /* A handler that iterates the context may see the session end and
     * the server drop it meanwhile: we still need it when it returns. */
    g_object_ref (self);
    handle_packet (self, packet);

    g_async_queue_lock (self->outbound);
    self->flush_inline = FALSE;
    g_async_queue_unlock (self->outbound);
    self->inline_spent += g_get_monotonic_time () - now;
    ws_flush_outbound (self);
    update_input (self);
    g_object_unref (self);
  }
}

static void
ws_drained_cb (EngineIOWebSocket *ws,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws == self->ws && !self->ws_probe)
    ws_flush_outbound (self);
}

static void
ws_closed_cb (EngineIOWebSocket *ws,
              gboolean           clean,
              guint16            code,
              gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws != self->ws)
    {
      /* A probe we gave up: removing it frees it. */
      g_ptr_array_remove_fast (self->dying_ws, ws);
      return;
    }

  if (self->ws_probe)
    {
      g_debug ("socket %s: upgrade probe closed", self->id);
      clear_probe (self, 0, NULL);
      return;
    }

  ws_report_sent (self);  /* the rest: FALSE, when the session finishes */
  g_clear_pointer (&self->ws, engine_io_websocket_free);
  if (self->state == STATE_OPEN)
    socket_do_close (self, clean ? ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE
                                 : ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                     clean ? "the client closed the WebSocket" : "the WebSocket connection failed");
  else if (self->state == STATE_CLOSING)
    socket_finish_close (self);
}

/* The WebSocket's output waited a heartbeat with nothing written: its
 * client does not read. The adapter stopped reading it and is closing it
 * with 1008; the session (or the probe) ends with it. */
static void
ws_stalled_cb (EngineIOWebSocket *ws,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws != self->ws)
    return;  /* a given-up WebSocket: it is closing already */
  if (self->ws_probe)
    {
      clear_probe (self, 1008, NULL);
      return;
    }
  self->ws_close_code = 1008;
  socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                   "the client does not read: no WebSocket output written for a heartbeat");
}

/* @reject: the session has a WebSocket (or a probe) already; like the
 * reference, the second one was answered 101 and is closed at once
 * (with a close frame without a status code), the first one goes on. */
static void
handle_ws_attach (EngineIOSocket    *self,
                  EngineIOWebSocket *ws,
                  gboolean           reject)
{
  if (self->state != STATE_OPEN)
    {
      engine_io_websocket_free (ws);
      return;
    }
  if (reject || self->ws != NULL)
    {
      g_debug ("socket %s: a second WebSocket, closed", self->id);
      engine_io_websocket_start (ws, self->context, &ws_callbacks, self, ws_stall_timeout (self));
      retire_ws (self, ws, 0, NULL);
      return;
    }

  self->ws = ws;
  self->ws_probe = engine_io_socket_get_transport (self) == ENGINE_IO_TRANSPORT_POLLING;
  engine_io_websocket_start (ws, self->context, &ws_callbacks, self, ws_stall_timeout (self));

  if (self->ws_probe)
    self->upgrade_source = add_timeout (self, self->config->upgrade_timeout, upgrade_timeout_cb,
                                        "[engineio] upgrade deadline");
  else
    ws_flush_outbound (self);  /* a direct WebSocket session: the open packet first */
}

static void
handle_event (EngineIOSocket *self,
              Event          *event)
{
  switch (event->kind)
    {
    case EVENT_PACKET:
      handle_packet (self, event->packet);
      break;

    case EVENT_FLUSHED:
      call_send_callbacks (self, event->items, event->flushed);
      if (event->flushed && self->state == STATE_OPEN &&
          engine_io_socket_get_send_queue_length (self) == 0)
        g_signal_emit (self, signals[SIGNAL_DRAIN], 0);
      break;

    case EVENT_CLOSE:
      socket_do_close (self, event->reason, event->description);
      break;

    case EVENT_FINISH_CLOSE:
      socket_finish_close (self);
      break;

    case EVENT_WS_ATTACH:
      handle_ws_attach (self, g_steal_pointer (&event->ws), event->reject_ws);
      break;

    case EVENT_PACKET_CREATE:
      if (self->state != STATE_CLOSED)
        g_signal_emit (self, signals[SIGNAL_PACKET_CREATE], 0, event->packet);
      break;

    default:
      g_assert_not_reached ();
    }
}

static gboolean
drain_inbound_cb (gpointer data)
{
  EngineIOSocket *self = data;
  Event *event;
  gint64 deadline;
  gboolean again;

  /* A bounded batch (in count and in time), so a client that sends faster
   * than its handlers run cannot keep the context from its timers and
   * other sources. */
  deadline = g_get_monotonic_time () + EVENT_BATCH_US;

  for (guint n = 0; n < EVENT_BATCH; n++)
    {
      event = g_async_queue_try_pop (self->inbound);
      if (event == NULL)
        break;
      if (event->kind == EVENT_PACKET)
        {
          g_async_queue_lock (self->outbound);
          self->inbound_bytes -= MIN (self->inbound_bytes, event->size);
          self->inbound_packets -= MIN (self->inbound_packets, 1);
          g_async_queue_unlock (self->outbound);
        }
      else if (event->kind == EVENT_PACKET_CREATE)
        {
          /* Given back before the handler runs: a send from it counts
           * what is held from then on. */
          g_async_queue_lock (self->outbound);
          self->tap_bytes -= MIN (self->tap_bytes, event->size);
          g_async_queue_unlock (self->outbound);
        }
      handle_event (self, event);
      event_free (event);
      if (g_get_monotonic_time () > deadline)
        break;
    }
  if (self->state == STATE_OPEN)
    ws_flush_outbound (self);
  update_input (self);

  if (g_async_queue_length (self->inbound) > 0)
    return G_SOURCE_CONTINUE;  /* still scheduled: drain_pending stays set */

  /* Done: clear the flag, then look again, for an event pushed after our
   * last pop whose pusher saw the flag still set, and for a receive() that
   * took the receive queue under its mark after our update_input() and
   * found the flag still set (it asks for a drain to resume reading). */
  g_atomic_int_set (&self->drain_pending, 0);
  g_async_queue_lock (self->outbound);
  again = self->input_paused && self->state == STATE_OPEN && !input_over_locked (self, TRUE);
  g_async_queue_unlock (self->outbound);
  if ((again || g_async_queue_length (self->inbound) > 0) &&
      g_atomic_int_compare_and_exchange (&self->drain_pending, 0, 1))
    return G_SOURCE_CONTINUE;

  return G_SOURCE_REMOVE;
}

/* Closing (session context) */

/* How long a closing polling session waits for the client's next poll to
 * hand it what was queued (the reference waits for the drain). */
#define CLOSE_LINGER_MS 2000

/* A closing session's poll response, still being written a while after
 * the linger (or the close): the session does not wait for it any longer
 * (what it carries is reported not delivered; libmicrohttpd goes on
 * writing it). */
static gboolean
last_poll_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  socket_finish_close (self);
  return G_SOURCE_REMOVE;
}

/* Session context: how long a closing session waits for a poll response
 * to be written, from the end of its linger (or from its close, if no
 * linger). libmicrohttpd's connection timeout is for inactivity: a client
 * that reads a little, often enough, keeps the write going for as long as
 * it likes, and the session (its max-sessions place, its thread, its
 * ::close) with it. In a server shutdown, which waits for its sessions,
 * CLOSE_LINGER_MS; else "connection-timeout". */
static guint
closing_write_ms (EngineIOSocket *self)
{
  if (self->shutting_down)
    return CLOSE_LINGER_MS;
  return MIN (self->config->connection_timeout, G_MAXUINT / 1000) * 1000;
}

static void
bound_closing_write (EngineIOSocket *self,
                     guint           ms)
{
  clear_source (&self->timeout_source);
  self->timeout_source = add_timeout (self, ms, last_poll_timeout_cb,
                                      "[engineio] close: a poll response's write");
  self->write_bound = TRUE;
}

static gboolean
linger_timeout_cb (gpointer data)
{
  EngineIOSocket *self = data;
  gboolean in_vain;
  gboolean writing = FALSE;

  g_clear_pointer (&self->timeout_source, g_source_unref);
  /* Claimed under the lock, as the last poll and a kept probe claim it.
   * A last poll that came in time is being answered: the end of its
   * request finishes the close, and its send callbacks say whether it was
   * written; ending the session here would report what it carries as not
   * delivered while it may be on its way (a slow write, a loaded machine).
   * In a server shutdown, which waits for its sessions, only for another
   * CLOSE_LINGER_MS: a client that does not read would hold the shutdown
   * for its whole 10 s wait; what the poll carries is then reported not
   * delivered.
   * No last poll came, but a poll taken before the close (its callbacks
   * pending) is still being written: the same, the end of its request
   * finishes the close (its client got what was queued, without `1`). */
  g_async_queue_lock (self->outbound);
  in_vain = self->lingering;
  self->lingering = FALSE;
  if (in_vain)
    for (guint i = 0; i < self->inflight->len; i++)
      {
        EngineIORequest *req = g_ptr_array_index (self->inflight, i);

        req->finishes_close = TRUE;
        writing = TRUE;
      }
  g_async_queue_unlock (self->outbound);
  if (in_vain && !writing)
    socket_finish_close (self);
  else
    bound_closing_write (self, closing_write_ms (self));
  return G_SOURCE_REMOVE;
}

/* Session context: a server shutdown reached a session that was closing
 * already (the application closed it, or its client, or a timeout). Its
 * close may be waiting for a poll response to be written (its last poll,
 * a poll the close resumed, or one taken before the close): the shutdown
 * bounds that write as its own close does, else a client that does not
 * read would hold the shutdown for its whole 10 s wait (the first close's
 * reason would have kept the bound off). A linger still running arms the
 * bound when it ends (linger_timeout_cb()); a WebSocket's close has its
 * own timeout. */
static void
socket_shutdown_closing (EngineIOSocket *self)
{
  if (self->shutting_down)
    return;
  self->shutting_down = TRUE;
  if ((self->timeout_source != NULL && !self->write_bound) || self->ws != NULL)
    return;
  bound_closing_write (self, CLOSE_LINGER_MS);
}

/* Closes the session for the application: no more sends, no more
 * messages. What was queued still goes out (on the waiting poll, the next
 * poll within CLOSE_LINGER_MS when the application or a shutdown closed
 * it -- or a probe kept through the close, if its `5` comes first -- or
 * the WebSocket, then a close frame); socket_finish_close() ends it and
 * emits ::close. */
static void
socket_do_close (EngineIOSocket      *self,
                 EngineIOCloseReason  reason,
                 const char          *description)
{
  g_autoptr(EngineIOSocket) hold = NULL;
  EngineIORequest *resume = NULL;
  gboolean waiting;
  gboolean linger = FALSE;
  gboolean keep_probe = FALSE;

  g_async_queue_lock (self->outbound);
  if (self->state != STATE_OPEN && self->state != STATE_OPENING)
    {
      gboolean closing = self->state == STATE_CLOSING;

      g_async_queue_unlock (self->outbound);
      if (closing && reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN)
        socket_shutdown_closing (self);
      return;
    }
  g_atomic_int_set ((int *) &self->state, STATE_CLOSING);
  self->shutting_down = reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN;

  /* The server's table may hold the last reference; keep the socket alive
   * through the close. (Finalizing a closed socket on its own thread is
   * safe: by then it has released its loop and owns no source.) */
  hold = g_object_ref (self);

  self->close_reason = reason;
  self->close_description = g_strdup (description);

  /* Polling with no poll waiting: an application close waits for the next
   * poll to say `1` (the reference's shouldClose), a shutdown only if there
   * is something left to deliver. A poll already resumed to answer `6`
   * (an upgrade) carries nothing more: it is not waiting.
   *
   * During an upgrade (`3probe` sent, the polls answered `6`) the client
   * may have paused polling for good: engine.io-client, once the pause its
   * `3probe` started is complete, sends `5` on the probe and never polls
   * again; if the probe dies first it gives up the upgrade and stays
   * paused, and only a poll answered `1` would tell it the session is
   * gone. So, as in the reference (whose session is only "closing" until
   * its polling transport closes), the probe is kept while lingering: its
   * `5` completes the upgrade and the WebSocket carries what was queued,
   * then its close frame (complete_upgrade_closing()); a poll that comes
   * instead gets what was queued and `1`. A probe not answered yet is
   * closed: its client still polls. */
  waiting = self->active_get != NULL && !self->upgrading && !self->active_get->answer_noop;
  if (waiting && self->client_closed && self->active_get->suspended)
    {
      /* The client sent a close packet (POSTed while its GET waits): as
       * the reference, the waiting GET gets a noop, not `1`, and the
       * session ends now; what was queued is not delivered (its send
       * callbacks say so). */
      resume = release_poll_with_noop_locked (self);
      waiting = FALSE;
    }
  else if (!waiting && (self->ws == NULL || self->ws_probe) &&
           g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING &&
           (reason == ENGINE_IO_CLOSE_REASON_FORCED_CLOSE ||
            (reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN &&
             (g_async_queue_length_unlocked (self->outbound) > 0 || self->inflight_polls > 0))))
    {
      /* (A poll response still being written, taken while the session was
       * open: ending now would report what it carries as not delivered
       * while it is on its way, and its client would never hear `1`. The
       * linger lets the write finish and the next poll say `1`.) */
      /* The last poll adds the close packet (engine_io_socket_handle_poll()):
       * the queue may go out on the probe instead. */
      linger = self->lingering = TRUE;
      keep_probe = self->ws != NULL && self->upgrading;
    }

  if (waiting)
    {
      /* The poll carries what is queued, then the close packet. */
      SendItem *item = g_new0 (SendItem, 1);
      item->packet = engine_io_packet_new (ENGINE_IO_PACKET_CLOSE);
      g_async_queue_push_unlocked (self->outbound, item);
      self->queued_bytes += item_size (item->packet);
      resume = kick_transport_locked (self);
    }
  g_async_queue_unlock (self->outbound);

  if (resume != NULL)
    engine_io_core_request_resume (resume);

  clear_source (&self->ping_source);
  clear_source (&self->timeout_source);

  /* RFC 6455, 7.4.1: 1001 for a server going down. */
  if (reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN && self->ws_close_code == 1000)
    self->ws_close_code = 1001;
  if (self->ws != NULL && self->ws_probe && !keep_probe)
    clear_probe (self, self->ws_close_code, NULL);
  if (self->ws != NULL && !self->ws_probe)
    {
      /* WebSocket: what is queued goes out, then the close frame; the
       * session finishes when the connection is down. (A stalled one
       * takes nothing more: what is queued is reported not sent.) */
      if (engine_io_websocket_can_send (self->ws))
        {
          g_autoptr(GPtrArray) packets = NULL;
          GPtrArray *notify = NULL;

          g_async_queue_lock (self->outbound);
          packets = take_outbound_locked (self, 0, 0, &notify);
          g_async_queue_unlock (self->outbound);
          ws_send_packets (self, packets, notify);
        }
      engine_io_websocket_close (self->ws, self->ws_close_code, NULL);
      waiting = TRUE;
    }

  /* Reads again: a held POST is answered, a WebSocket's close is read. */
  update_input (self);

  if (linger)
    self->timeout_source = add_timeout (self, MIN (CLOSE_LINGER_MS, self->config->ping_timeout),
                                        linger_timeout_cb, "[engineio] close linger");
  else if (!waiting)
    socket_finish_close (self);
  else if (self->ws == NULL)
    /* The waiting poll was resumed: its response (what was queued and
     * `1`; a lot if the poll waited while another response was being
     * written) gets as long as a linger and a last poll's write, then the
     * session ends all the same. */
    bound_closing_write (self, CLOSE_LINGER_MS + closing_write_ms (self));
}

/* The session is over: report what was never sent, wake blocked receivers
 * and give the loop back. Nothing is attached to our context after this. */
static void
socket_finish_close (EngineIOSocket *self)
{
  g_autoptr(EngineIOSocket) hold = g_object_ref (self);  /* alive until the end */
  g_autoptr(GPtrArray) leftover = g_ptr_array_new_with_free_func ((GDestroyNotify) send_item_free);
  EngineIORequest *held_post;
  SendItem *item;
  Event *event;

  (void) hold;

  /* What the WebSocket (if still here) did write: flushed, below. */
  if (self->state != STATE_CLOSED)
    ws_report_sent (self);

  g_async_queue_lock (self->outbound);
  if (self->state == STATE_CLOSED)
    {
      g_async_queue_unlock (self->outbound);
      return;
    }
  g_atomic_int_set ((int *) &self->state, STATE_CLOSED);
  /* Poll responses still being written: not known to be delivered. */
  for (guint i = 0; i < self->inflight->len; i++)
    {
      EngineIORequest *req = g_ptr_array_index (self->inflight, i);

      g_ptr_array_extend_and_steal (leftover, g_steal_pointer (&req->flush_items));
    }
  g_ptr_array_set_size (self->inflight, 0);
  while ((item = g_async_queue_try_pop_unlocked (self->outbound)) != NULL)
    g_ptr_array_add (leftover, item);
  /* Messages in the WebSocket not all taken by send(): not delivered. */
  while ((item = g_queue_pop_head (&self->ws_unsent)) != NULL)
    g_ptr_array_add (leftover, item);
  self->queued_bytes = 0;
  held_post = g_steal_pointer (&self->held_post);
  if (held_post != NULL)
    held_post->suspended = FALSE;
  self->input_paused = FALSE;
  g_async_queue_unlock (self->outbound);

  /* A POST held for back-pressure is answered (the session is gone). */
  if (held_post != NULL)
    engine_io_core_request_resume (held_post);

  /* Events that raced with the close: only flushes still matter. */
  while ((event = g_async_queue_try_pop (self->inbound)) != NULL)
    {
      if (event->kind == EVENT_FLUSHED)
        call_send_callbacks (self, event->items, event->flushed);
      event_free (event);
    }
  g_async_queue_lock (self->outbound);
  self->inbound_bytes = 0;
  self->inbound_packets = 0;
  g_async_queue_unlock (self->outbound);

  call_send_callbacks (self, leftover, FALSE);

  clear_source (&self->timeout_source);
  clear_source (&self->upgrade_source);
  g_clear_pointer (&self->ws, engine_io_websocket_free);
  g_ptr_array_set_size (self->dying_ws, 0);  /* frees (aborts) them */

  /* The server forgets the session (its max-sessions place included)
   * before ::close runs. */
  engine_io_server_unregister_socket (self->server, self);
  engine_io_server_socket_finished (self->server);
  if (self->counted_open)
    engine_io_counter_sub (engine_io_counter_open (self->counters, engine_io_socket_get_transport (self), self->version), 1);
  engine_io_counter_add (&self->counters->closes[self->close_reason], 1);

  g_debug ("socket %s closed: %s%s%s", self->id, engine_io_close_reason_to_string (self->close_reason),
           self->close_description ? ": " : "", self->close_description ? self->close_description : "");
  /* Receivers learn it first: a ::close handler, or whoever waits for
   * it, finds the receive queue closed. */
  receive_close (self, self->close_reason);
  g_signal_emit (self, signals[SIGNAL_CLOSE], 0, self->close_reason, self->close_description);

  engine_io_loop_release (g_steal_pointer (&self->loop));
}

/* GObject */

static void
engine_io_socket_finalize (GObject *object)
{
  EngineIOSocket *self = ENGINE_IO_SOCKET (object);
  EngineIOPacket *packet;

  g_warn_if_fail (self->loop == NULL || self->state == STATE_OPENING);
  if (self->loop != NULL)
    engine_io_loop_release (self->loop);

  while ((packet = g_queue_pop_head (&self->received)) != NULL)
    engine_io_packet_unref (packet);
  g_warn_if_fail (g_queue_is_empty (&self->recv_tasks));   /* each holds a ref */
  g_mutex_clear (&self->recv_lock);
  g_cond_clear (&self->recv_cond);

  if (self->user_data_destroy != NULL)
    self->user_data_destroy (self->user_data);
  g_mutex_clear (&self->user_data_lock);
  g_clear_pointer (&self->post_payload, g_bytes_unref);

  g_byte_array_unref (self->frame);
  g_ptr_array_unref (self->dying_ws);
  g_queue_clear_full (&self->ws_unsent, (GDestroyNotify) send_item_free);
  g_ptr_array_unref (self->inflight);
  g_async_queue_unref (self->inbound);
  g_async_queue_unref (self->outbound);
  g_main_context_unref (self->context);
  engine_io_config_unref (self->config);
  g_clear_object (&self->server);
  engine_io_handshake_unref (self->handshake);
  g_free (self->close_description);
  g_free (self->id);

  G_OBJECT_CLASS (engine_io_socket_parent_class)->finalize (object);
}

static void
engine_io_socket_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  EngineIOSocket *self = ENGINE_IO_SOCKET (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_PROTOCOL_VERSION:
      g_value_set_enum (value, self->version);
      break;
    case PROP_TRANSPORT:
      g_value_set_enum (value, engine_io_socket_get_transport (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_socket_class_init (EngineIOSocketClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = engine_io_socket_finalize;
  object_class->get_property = engine_io_socket_get_property;

  /**
   * EngineIOSocket:id:
   *
   * The session id (`sid`). Immutable; readable from any thread.
   */
  properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EngineIOSocket:protocol-version:
   *
   * The protocol version the client speaks. Immutable; readable from any
   * thread.
   */
  properties[PROP_PROTOCOL_VERSION] =
    g_param_spec_enum ("protocol-version", NULL, NULL,
                       ENGINE_IO_TYPE_PROTOCOL_VERSION, ENGINE_IO_PROTOCOL_V4,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EngineIOSocket:transport:
   *
   * The transport the session uses now; it changes once, from polling to
   * WebSocket, when the client upgrades. Readable from any thread; its
   * `notify::transport` is emitted in the socket's main context (its session
   * thread, or #EngineIOServer:callback-context).
   */
  properties[PROP_TRANSPORT] =
    g_param_spec_enum ("transport", NULL, NULL,
                       ENGINE_IO_TYPE_TRANSPORT_TYPE, ENGINE_IO_TRANSPORT_POLLING,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * EngineIOSocket::message:
   * @socket: the socket
   * @text: (nullable): the message, for a text message
   * @data: (nullable): the message, for a binary message
   *
   * Emitted once per client message, in order, in the socket's main
   * context (its session thread, or #EngineIOServer:callback-context; see
   * engine_io_socket_get_context()). Exactly one of @text and @data is set:
   * from Python, @text is a `str` for a text message and @data a
   * `GLib.Bytes` for a binary one. (A text containing
   * U+0000 is cut there in @text; #EngineIOSocket::packet has it whole,
   * with engine_io_packet_get_text_bytes(), from C and Python alike.)
   *
   * While a handler is connected, messages do not reach
   * engine_io_socket_receive().
   */
  signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, _engine_io_marshal_VOID__STRING_BOXED, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);
  g_signal_set_va_marshaller (signals[SIGNAL_MESSAGE], G_TYPE_FROM_CLASS (klass),
                              _engine_io_marshal_VOID__STRING_BOXEDv);

  /**
   * EngineIOSocket::packet:
   * @socket: the socket
   * @packet: the packet
   *
   * Emitted for every packet received from the client (pings, pongs,
   * messages, close), before it is acted on, in the socket's main context
   * (its session thread, or #EngineIOServer:callback-context). @packet is
   * only borrowed: take a reference to keep it.
   */
  signals[SIGNAL_PACKET] =
    g_signal_new ("packet", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  ENGINE_IO_TYPE_PACKET | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * EngineIOSocket::heartbeat:
   * @socket: the socket
   *
   * Emitted when a heartbeat completes (v4: the client's pong arrived; v3:
   * the client's ping arrived), in the socket's main context (its session
   * thread, or #EngineIOServer:callback-context).
   */
  signals[SIGNAL_HEARTBEAT] =
    g_signal_new ("heartbeat", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EngineIOSocket::drain:
   * @socket: the socket
   *
   * Emitted in the socket's main context (its session thread, or
   * #EngineIOServer:callback-context) when everything queued for sending
   * has been handed to the transport (a poll response, once written, or
   * the WebSocket).
   */
  signals[SIGNAL_DRAIN] =
    g_signal_new ("drain", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EngineIOSocket::close:
   * @socket: the socket
   * @reason: why the session ended
   * @description: (nullable): details, for logs
   *
   * Emitted once when the session ends, in the socket's main context (its
   * session thread, or #EngineIOServer:callback-context); no other signal
   * of this socket follows it. The server has already
   * forgotten the socket when this runs.
   */
  signals[SIGNAL_CLOSE] =
    g_signal_new ("close", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, _engine_io_marshal_VOID__ENUM_STRING, G_TYPE_NONE, 2,
                  ENGINE_IO_TYPE_CLOSE_REASON,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
  g_signal_set_va_marshaller (signals[SIGNAL_CLOSE], G_TYPE_FROM_CLASS (klass),
                              _engine_io_marshal_VOID__ENUM_STRINGv);

  /**
   * EngineIOSocket::upgrading:
   * @socket: the socket
   * @transport: the transport being probed (%ENGINE_IO_TRANSPORT_WEBSOCKET)
   *
   * Emitted when a polling session's client probed a new transport (its
   * `2probe` was answered `3probe`): the upgrade is under way and
   * #EngineIOSocket::upgrade follows if the client completes it (it may
   * not: the session then goes on polling). Node's `upgrading` event.
   * Emitted in the socket's main context (its session thread, or
   * #EngineIOServer:callback-context).
   */
  signals[SIGNAL_UPGRADING] =
    g_signal_new ("upgrading", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_TRANSPORT_TYPE);

  /**
   * EngineIOSocket::upgrade:
   * @socket: the socket
   * @transport: the new transport (%ENGINE_IO_TRANSPORT_WEBSOCKET)
   *
   * Emitted when the client completed an upgrade (its `5`): the session
   * now uses @transport (#EngineIOSocket:transport changed just before).
   * Node's `upgrade` event. Emitted in the socket's main context (its
   * session thread, or #EngineIOServer:callback-context).
   */
  signals[SIGNAL_UPGRADE] =
    g_signal_new ("upgrade", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_TRANSPORT_TYPE);

  /**
   * EngineIOSocket::packet-create:
   * @socket: the socket
   * @packet: the packet queued for the client (message, ping, close, v3
   *   pong; not the open packet, queued before #EngineIOServer::connection,
   *   nor the `6` noops answered during an upgrade)
   *
   * The outgoing tap (Node's `packetCreate`): emitted in the socket's main
   * context (its session thread, or #EngineIOServer:callback-context) for
   * each packet queued for the client, in queue order, after it was
   * queued (it may be on its way already, and a send from another thread
   * returns before its handler runs). Packets queued while a handler is
   * connected are reported; none after #EngineIOSocket::close (those
   * queued as the session closes may not be). A packet is held for the
   * handler until it is told of it, and counts against
   * #EngineIOServer:send-queue-high-water meanwhile (even once sent): a
   * slow handler makes #EngineIOServer:backpressure-policy apply to the
   * sends, rather than holding memory without bound.
   */
  signals[SIGNAL_PACKET_CREATE] =
    g_signal_new ("packet-create", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_PACKET);
}

static void
engine_io_socket_init (EngineIOSocket *self)
{
  g_mutex_init (&self->user_data_lock);
  self->outbound = g_async_queue_new ();
  self->inbound = g_async_queue_new ();
  g_mutex_init (&self->recv_lock);
  g_cond_init (&self->recv_cond);
  g_queue_init (&self->received);
  g_queue_init (&self->recv_tasks);
  self->state = STATE_OPENING;
  self->frame = g_byte_array_new ();
  self->dying_ws = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_websocket_free);
  g_queue_init (&self->ws_unsent);
  self->inflight = g_ptr_array_new ();
  self->ws_close_code = 1000;
}

EngineIOSocket *
engine_io_socket_new (EngineIOServer    *server,
                      EngineIOConfig    *config,
                      const char        *id,
                      EngineIOHandshake *handshake,
                      EngineIOLoop      *loop)
{
  EngineIOSocket *self = g_object_new (ENGINE_IO_TYPE_SOCKET, NULL);

  self->id = g_strdup (id);
  self->server = g_object_ref (server);
  self->config = engine_io_config_ref (config);
  self->handshake = engine_io_handshake_ref (handshake);
  self->version = engine_io_handshake_get_protocol_version (handshake);
  self->transport = engine_io_handshake_get_transport (handshake);
  self->loop = loop;
  self->context = g_main_context_ref (engine_io_loop_get_context (loop));
  self->counters = engine_io_server_get_counters (server);

  return self;
}

static char *
build_open_json (EngineIOSocket *self)
{
  gboolean upgrade = engine_io_socket_get_transport (self) == ENGINE_IO_TRANSPORT_POLLING &&
                     self->config->allow_upgrades &&
                     (self->config->transports & ENGINE_IO_TRANSPORTS_WEBSOCKET);

  /* The sid is URL-safe ([A-Za-z0-9._-], checked when generated): no JSON
   * escaping needed. */
  return g_strdup_printf ("{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,"
                          "\"pingTimeout\":%u,\"maxPayload\":%" G_GUINT64_FORMAT "}",
                          self->id, upgrade ? "\"websocket\"" : "",
                          self->config->ping_interval, self->config->ping_timeout,
                          self->config->max_payload);
}

void
engine_io_socket_start (EngineIOSocket  *self,
                        EngineIORequest *first_poll)
{
  g_autofree char *json = build_open_json (self);
  EngineIORequest *resume = NULL;

  g_async_queue_lock (self->outbound);
  if (first_poll != NULL)
    {
      first_poll->kind = ENGINE_IO_REQUEST_POLL;
      first_poll->socket = g_object_ref (self);
      first_poll->suspended = TRUE;
      self->active_get = first_poll;
    }
  g_async_queue_unlock (self->outbound);

  socket_enqueue (self, engine_io_packet_new_text (ENGINE_IO_PACKET_OPEN, json, -1),
                  NULL, NULL, NULL, FALSE, NULL);

  g_async_queue_lock (self->outbound);
  g_atomic_int_set ((int *) &self->state, STATE_OPEN);
  g_async_queue_unlock (self->outbound);
  engine_io_counter_add (engine_io_counter_open (self->counters, engine_io_socket_get_transport (self), self->version), 1);
  engine_io_counter_add (&self->counters->handshakes, 1);
  self->counted_open = TRUE;

  if (self->version == ENGINE_IO_PROTOCOL_V4)
    schedule_ping (self);
  else
    reset_expiry (self);

  /* Before the first poll is answered, so messages the application sends
   * from its handler travel with the open packet, as in the reference. */
  engine_io_server_emit_connection (self->server, self);

  /* Only if the open packet is still queued: a send from the handler may
   * have answered the first poll already, and the client's next poll,
   * waiting now with nothing queued, must not be woken (it would get `1`
   * while the session stays open). */
  g_async_queue_lock (self->outbound);
  if (g_async_queue_length_unlocked (self->outbound) > 0)
    resume = kick_transport_locked (self);
  g_async_queue_unlock (self->outbound);
  if (resume != NULL)
    engine_io_core_request_resume (resume);
}

/* Serving-thread entry points */


void
engine_io_socket_handle_poll (EngineIOSocket  *self,
                              EngineIORequest *req)
{
  g_autoptr(GPtrArray) packets = NULL;

  g_async_queue_lock (self->outbound);

  if (self->state == STATE_CLOSING && self->lingering && self->active_get == NULL)
    {
      /* The last poll of a closed session: what was queued, then `1`;
       * the session ends with this response. */
      GPtrArray *items = NULL;
      self->lingering = FALSE;
      req->kind = ENGINE_IO_REQUEST_POLL;
      req->socket = g_object_ref (self);
      req->carried_packets = TRUE;
      req->finishes_close = TRUE;
      packets = take_for_poll_locked (self, req, 0, &items);
      attach_flush_items_locked (self, req, items);
      g_async_queue_unlock (self->outbound);
      g_ptr_array_add (packets, engine_io_packet_new (ENGINE_IO_PACKET_CLOSE));
      engine_io_counter_add (&self->counters->packets_out, 1);
      engine_io_counter_add (&self->counters->bytes_out,
                             packet_size (g_ptr_array_index (packets, packets->len - 1)));
      engine_io_core_respond_packets (self->config, req, self->version,
                                      (EngineIOPacket * const *) packets->pdata, packets->len);
      return;
    }

  if (self->state != STATE_OPEN)
    {
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
      return;
    }

  if (self->active_get != NULL)
    {
      /* A second concurrent GET: 400 for it, `1` for the first, closed. */
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                          "overlapping polls from the client");
      return;
    }

  req->kind = ENGINE_IO_REQUEST_POLL;
  req->socket = g_object_ref (self);

  if (self->upgrading)
    {
      /* An upgrade is under way: what is queued waits for the WebSocket. */
      EngineIOPacket *noop = engine_io_packet_new (ENGINE_IO_PACKET_NOOP);
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_packets (self->config, req, self->version, &noop, 1);
      engine_io_packet_unref (noop);
      return;
    }

  if (g_async_queue_length_unlocked (self->outbound) > 0 && self->inflight_polls == 0)
    {
      GPtrArray *items = NULL;
      packets = take_for_poll_locked (self, req, POLL_MAX_PACKETS, &items);
      attach_flush_items_locked (self, req, items);
      g_async_queue_unlock (self->outbound);
      req->carried_packets = TRUE;
      engine_io_core_respond_packets (self->config, req, self->version,
                                      (EngineIOPacket * const *) packets->pdata, packets->len);
      return;
    }

  /* Nothing to send: wait without holding a worker. */
  self->active_get = req;
  req->suspended = TRUE;
  engine_io_core_request_suspend (self->server, req);
  g_async_queue_unlock (self->outbound);
}

void
engine_io_socket_handle_poll_resumed (EngineIOSocket  *self,
                                      EngineIORequest *req)
{
  g_autoptr(GPtrArray) packets = NULL;
  GPtrArray *items = NULL;
  gboolean closing;

  g_async_queue_lock (self->outbound);
  if (self->active_get == req)
    self->active_get = NULL;
  if (req->answer_noop)
    {
      EngineIOPacket *noop = engine_io_packet_new (ENGINE_IO_PACKET_NOOP);
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_packets (self->config, req, self->version, &noop, 1);
      engine_io_packet_unref (noop);
      return;
    }
  closing = self->state == STATE_CLOSING;
  /* Closing: this is the last poll, it takes everything, and the session
   * ends with its response. */
  packets = take_for_poll_locked (self, req, closing ? 0 : POLL_MAX_PACKETS, &items);
  attach_flush_items_locked (self, req, items);
  req->finishes_close = closing;
  g_async_queue_unlock (self->outbound);

  if (packets->len == 0)
    {
      /* Resumed with nothing queued: only a close can do that, and it
       * queues the close packet; answer `1` anyway to be safe. */
      g_ptr_array_add (packets, engine_io_packet_new (ENGINE_IO_PACKET_CLOSE));
    }

  req->carried_packets = TRUE;
  engine_io_core_respond_packets (self->config, req, self->version,
                                  (EngineIOPacket * const *) packets->pdata, packets->len);
}

/* Called with the lock held: whether a POST that finds the session
 * closing is answered `ok` (its packets dropped) rather than 400. Only
 * when the application or a server shutdown closed it: its client did
 * nothing wrong and still polls for the last packets and `1`. A session
 * closed for its client's error, a timeout or the client's own close is
 * gone for that client, as in the reference (its socket is removed at
 * once): a client that goes on POSTing to it while a poll response waits
 * to be written must not have its bodies read and acknowledged. */
static gboolean
closing_takes_posts_locked (EngineIOSocket *self)
{
  return self->state == STATE_CLOSING &&
         (self->close_reason == ENGINE_IO_CLOSE_REASON_FORCED_CLOSE ||
          self->close_reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
}

gboolean
engine_io_socket_begin_post (EngineIOSocket  *self,
                             EngineIORequest *req)
{
  g_async_queue_lock (self->outbound);

  /* Closed by the application or a shutdown, a poll still to take the
   * last packets: the POST is read and answered `ok`, its packets dropped
   * (post_continue()). */
  if (self->state != STATE_OPEN && !closing_takes_posts_locked (self))
    {
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
      return FALSE;
    }

  if (self->active_post != NULL)
    {
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                          "overlapping POST requests from the client");
      return FALSE;
    }

  self->active_post = req;
  req->kind = ENGINE_IO_REQUEST_POST;
  req->socket = g_object_ref (self);
  g_async_queue_unlock (self->outbound);

  return TRUE;
}

static EngineIOPayloadFormat
post_format (EngineIOSocket  *self,
             EngineIORequest *req)
{
  const char *type;

  if (self->version == ENGINE_IO_PROTOCOL_V4)
    return ENGINE_IO_PAYLOAD_V4;
  type = g_hash_table_lookup (req->headers, "content-type");
  if (type != NULL && g_str_has_prefix (type, "application/octet-stream"))
    return ENGINE_IO_PAYLOAD_V3_BINARY;
  return ENGINE_IO_PAYLOAD_V3_TEXT;
}

/* Packets (by their footprint) one round of a POST reads out of its body
 * before handing them to the session and looking at its bound again. */
#define POST_ROUND_BYTES (64 * 1024)

/* Called with the lock held: the active POST is done with its body. */
static GBytes *
post_done_locked (EngineIOSocket *self)
{
  self->active_post = NULL;
  return g_steal_pointer (&self->post_payload);
}

/* Serving thread of the active POST: reads its body a round of packets at
 * a time and hands them to the session. While the session is over its
 * bound (input_over_locked()) the POST is held, suspended and unanswered,
 * until the session context resumes it (update_input()); then this goes
 * on where it stopped. The body is checked whole before its first packet
 * is handed over: a malformed body delivers nothing. */
static void
post_continue (EngineIOSocket  *self,
               EngineIORequest *req)
{
  for (;;)
    {
      g_autoptr(GPtrArray) packets = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(GBytes) done_payload = NULL;
      gsize round = 0;
      gboolean rate_limited = FALSE;
      gboolean done;

      g_async_queue_lock (self->outbound);
      if (closing_takes_posts_locked (self))
        {
          /* Closed for the application, a poll still to take the last
           * packets: the POST succeeds and its packets are dropped, as
           * the reference's (its transport answers `ok` until the socket
           * is gone). A 400 here made the client fail its transport and
           * never take those last packets: a heartbeat answer crossing
           * the application's close lost them. */
          done_payload = post_done_locked (self);
          g_async_queue_unlock (self->outbound);
          {
            static const char ok[] = "ok";
            g_autoptr(GBytes) ok_bytes = g_bytes_new_static (ok, 2);
            engine_io_core_respond (self->config, req, 200, "text/html", ok_bytes);
          }
          return;
        }
      if (self->state != STATE_OPEN)
        {
          done_payload = post_done_locked (self);
          g_async_queue_unlock (self->outbound);
          engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
          return;
        }
      if (input_over_locked (self, self->input_paused))
        {
          /* Back-pressure: the rest of the body waits. */
          self->input_paused = TRUE;
          self->held_post = req;
          req->suspended = TRUE;
          engine_io_core_request_suspend (self->server, req);
          g_async_queue_unlock (self->outbound);
          return;
        }
      g_async_queue_unlock (self->outbound);

      packets = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
      while (!self->post_reader.done && round < POST_ROUND_BYTES)
        {
          EngineIOPacket *packet = engine_io_payload_reader_next (&self->post_reader, &error);

          if (packet == NULL)
            break;
          round += engine_io_packet_get_footprint (packet) + EVENT_OVERHEAD;
          g_ptr_array_add (packets, packet);
        }
      if (error == NULL && !self->post_validated && !self->post_reader.done)
        engine_io_payload_reader_validate_rest (&self->post_reader, &error);
      self->post_validated = TRUE;

      if (error != NULL)
        {
          g_async_queue_lock (self->outbound);
          done_payload = post_done_locked (self);
          g_async_queue_unlock (self->outbound);
          engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
          engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
          return;
        }

      g_async_queue_lock (self->outbound);
      for (guint i = 0; i < packets->len; i++)
        {
          Event *event;

          if (!message_within_rate_locked (self, g_ptr_array_index (packets, i)))
            {
              if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_DROP)
                continue;
              rate_limited = TRUE;  /* the rest of the payload goes too */
              break;
            }
          event = g_new0 (Event, 1);
          event->kind = EVENT_PACKET;
          event->packet = engine_io_packet_ref (g_ptr_array_index (packets, i));
          post_event_locked (self, event);
        }
      done = rate_limited || self->post_reader.done;
      if (done)
        done_payload = post_done_locked (self);
      g_async_queue_unlock (self->outbound);

      if (!done)
        continue;

      /* The POST itself succeeded; the session ends (a waiting poll gets `1`). */
      if (rate_limited)
        engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_RATE_LIMITED, RATE_LIMITED_DESCRIPTION);

      {
        static const char ok[] = "ok";
        g_autoptr(GBytes) ok_bytes = g_bytes_new_static (ok, 2);
        engine_io_core_respond (self->config, req, 200, "text/html", ok_bytes);
      }
      return;
    }
}

void
engine_io_socket_handle_post (EngineIOSocket  *self,
                              EngineIORequest *req,
                              GBytes          *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  gboolean ok = FALSE;

  if (self->version == ENGINE_IO_PROTOCOL_V3 && g_hash_table_contains (req->query, "j"))
    payload = engine_io_jsonp_decode_post (body, &error);
  else
    payload = g_bytes_ref (body);

  if (payload != NULL)
    {
      gsize length;
      const guint8 *data = g_bytes_get_data (payload, &length);

      ok = engine_io_payload_reader_init (&self->post_reader, post_format (self, req),
                                          data, length, payload, &error);
    }

  if (!ok)
    {
      g_autoptr(GBytes) done_payload = NULL;

      g_async_queue_lock (self->outbound);
      done_payload = post_done_locked (self);
      g_async_queue_unlock (self->outbound);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
      return;
    }

  /* The reader points into the payload: they live and go together. */
  g_clear_pointer (&self->post_payload, g_bytes_unref);
  self->post_payload = g_steal_pointer (&payload);
  self->post_validated = FALSE;
  post_continue (self, req);
}

void
engine_io_socket_handle_post_resumed (EngineIOSocket  *self,
                                      EngineIORequest *req)
{
  post_continue (self, req);
}

/* A POST answered without its body being taken (413): the session may
 * take the client's next POST at once. */
void
engine_io_socket_end_post (EngineIOSocket  *self,
                           EngineIORequest *req)
{
  g_autoptr(GBytes) post_payload = NULL;

  g_async_queue_lock (self->outbound);
  if (self->active_post == req)
    {
      if (self->held_post == req)
        self->held_post = NULL;
      post_payload = post_done_locked (self);
    }
  g_async_queue_unlock (self->outbound);
}

gboolean
engine_io_socket_is_finished (EngineIOSocket *self)
{
  return g_atomic_int_get ((int *) &self->state) == STATE_CLOSED;
}

/* Called with the lock held: @req, the waiting poll, ends without a
 * response of ours. If the session was waiting for it to close, it will
 * not come: finish now. */
static void
detach_poll_locked (EngineIOSocket  *self,
                    EngineIORequest *req)
{
  if (self->active_get != req)
    return;
  self->active_get = NULL;
  if (self->state == STATE_CLOSING && !self->lingering)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_FINISH_CLOSE;
      post_event_locked (self, event);
    }
}

#define POLL_GONE_DESCRIPTION "the client closed the connection of its waiting poll"

/* Any thread (the adapter's watcher): the client of @req, a waiting poll
 * of this session, closed its connection. Resumes @req if it is still
 * suspended, for the adapter to close it (serial: @req is the request the
 * watcher saw, not a later one at the same address). */
gboolean
engine_io_socket_resume_gone_poll (EngineIOSocket  *self,
                                   EngineIORequest *req,
                                   gsize            serial)
{
  gboolean resume = FALSE;

  g_async_queue_lock (self->outbound);
  /* While it is our active_get, @req is alive (it is detached, under this
   * lock, before it is freed). */
  if (self->active_get == req && req->serial == serial && req->suspended)
    {
      req->suspended = FALSE;
      req->client_gone = TRUE;
      resume = TRUE;
    }
  g_async_queue_unlock (self->outbound);

  if (resume)
    engine_io_core_request_resume (req);
  return resume;
}

/* Serving thread: @req, resumed, found its client gone before it could
 * answer; no response will be written. The session closes with
 * `transport close` (as the reference does when a waiting poll's
 * connection closes), unless it is moving to a WebSocket; what was queued
 * stays queued and is reported not flushed. */
void
engine_io_socket_poll_client_gone (EngineIOSocket  *self,
                                   EngineIORequest *req)
{
  gboolean close;

  g_async_queue_lock (self->outbound);
  detach_poll_locked (self, req);
  close = self->state == STATE_OPEN && !self->upgrading && !req->answer_noop &&
          g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING;
  g_async_queue_unlock (self->outbound);

  g_debug ("socket %s: %s", self->id, POLL_GONE_DESCRIPTION);
  if (close)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

void
engine_io_socket_poll_gone_unanswered (EngineIOSocket *self)
{
  gboolean close;

  g_async_queue_lock (self->outbound);
  close = self->state == STATE_OPEN && !self->upgrading &&
          g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING;
  g_async_queue_unlock (self->outbound);

  g_debug ("socket %s: a poll came from a client that had closed its connection", self->id);
  if (close)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

void
engine_io_socket_request_finished (EngineIOSocket  *self,
                                   EngineIORequest *req,
                                   gboolean         completed)
{
  g_autoptr(GBytes) post_payload = NULL;
  EngineIORequest *resume = NULL;
  gboolean vanished = FALSE;

  g_async_queue_lock (self->outbound);
  if (req->kind == ENGINE_IO_REQUEST_POST && self->active_post == req)
    {
      /* A POST that never completed its body, or whose connection failed
       * while it was held. */
      if (self->held_post == req)
        self->held_post = NULL;
      post_payload = post_done_locked (self);
    }
  if (req->inflight)
    {
      /* Written (or failed): a poll that waits meanwhile takes what is
       * queued now. */
      req->inflight = FALSE;
      self->inflight_polls -= MIN (self->inflight_polls, 1);
      if (self->inflight_polls == 0 && self->state == STATE_OPEN &&
          g_async_queue_length_unlocked (self->outbound) > 0)
        resume = kick_transport_locked (self);
    }
  if (req->flush_items != NULL)
    {
      /* Delivered only if the whole response was written. (The session
       * is not closed: socket_finish_close() takes the items first.) */
      Event *event = g_new0 (Event, 1);

      g_ptr_array_remove_fast (self->inflight, req);
      event->kind = EVENT_FLUSHED;
      event->items = g_steal_pointer (&req->flush_items);
      event->flushed = completed;
      post_event_locked (self, event);
    }
  if (req->finishes_close)
    {
      Event *event = g_new0 (Event, 1);

      req->finishes_close = FALSE;
      event->kind = EVENT_FINISH_CLOSE;
      post_event_locked (self, event);
    }
  if (self->active_get == req)
    {
      /* A poll that ended without carrying anything: its client went
       * away while it waited (libmicrohttpd saw it first). */
      vanished = self->state == STATE_OPEN && !completed && !self->upgrading &&
                 g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING;
      detach_poll_locked (self, req);
    }
  g_async_queue_unlock (self->outbound);

  if (resume != NULL)
    engine_io_core_request_resume (resume);
  if (req->carried_packets && !completed)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                        "the connection failed while sending a poll response");
  else if (vanished)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

GPtrArray *
engine_io_socket_take_suspended (EngineIOSocket *self)
{
  GPtrArray *taken = g_ptr_array_new ();

  g_async_queue_lock (self->outbound);
  /* Whoever resumes a request clears its suspended flag under this lock
   * first: cleared here, no one else resumes these. The poll stays our
   * active_get (and the POST our active_post) until it is finished. */
  if (self->active_get != NULL && self->active_get->suspended)
    {
      self->active_get->suspended = FALSE;
      g_ptr_array_add (taken, self->active_get);
    }
  if (self->held_post != NULL)
    {
      EngineIORequest *post = g_steal_pointer (&self->held_post);

      post->suspended = FALSE;
      g_ptr_array_add (taken, post);
    }
  g_async_queue_unlock (self->outbound);
  return taken;
}

/* Whether a WebSocket request for this session is answered 101: for the
 * upgrade of a polling session (which claims it), and, like the
 * reference, for a second WebSocket while one is upgrading or after the
 * upgrade (*@out_reject is then TRUE: that one is closed at once). */
gboolean
engine_io_socket_begin_upgrade (EngineIOSocket *self,
                                gboolean       *out_reject)
{
  gboolean ok;

  *out_reject = FALSE;
  g_async_queue_lock (self->outbound);
  ok = self->state == STATE_OPEN;
  if (ok && !self->ws_claimed &&
      g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING)
    self->ws_claimed = TRUE;
  else
    *out_reject = ok;
  g_async_queue_unlock (self->outbound);

  return ok;
}

void
engine_io_socket_attach_websocket (EngineIOSocket    *self,
                                   EngineIOWebSocket *ws,
                                   gboolean           reject)
{
  Event *event = g_new0 (Event, 1);

  event->kind = EVENT_WS_ATTACH;
  event->ws = ws;
  event->reject_ws = reject;
  post_event (self, event);  /* a closed session frees @ws with the event */
}

void
engine_io_socket_upgrade_failed (EngineIOSocket *self)
{
  gboolean direct = engine_io_socket_get_transport (self) == ENGINE_IO_TRANSPORT_WEBSOCKET;

  if (direct)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                        "the WebSocket upgrade did not complete");
  else
    {
      g_async_queue_lock (self->outbound);
      self->ws_claimed = FALSE;
      g_async_queue_unlock (self->outbound);
    }
}

void
engine_io_socket_close_with_reason (EngineIOSocket      *self,
                                    EngineIOCloseReason  reason,
                                    const char          *description)
{
  Event *event = g_new0 (Event, 1);

  /* From now on sends fail and queued messages are not delivered to the
   * application: the close overtakes what the handlers have not seen. */
  g_atomic_int_set (&self->close_requested, 1);

  event->kind = EVENT_CLOSE;
  event->reason = reason;
  event->description = g_strdup (description);
  post_event (self, event);
}

/* Public API */

/**
 * engine_io_socket_get_id:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the session id
 */
const char *
engine_io_socket_get_id (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->id;
}

/**
 * engine_io_socket_get_protocol_version:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the protocol version the client speaks
 */
EngineIOProtocolVersion
engine_io_socket_get_protocol_version (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), ENGINE_IO_PROTOCOL_V4);
  return self->version;
}

/**
 * engine_io_socket_get_transport:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the transport the session uses now
 */
EngineIOTransportType
engine_io_socket_get_transport (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), ENGINE_IO_TRANSPORT_POLLING);
  return g_atomic_int_get (&self->transport);
}

/**
 * engine_io_socket_get_handshake:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the request that opened the session
 */
EngineIOHandshake *
engine_io_socket_get_handshake (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->handshake;
}

/**
 * engine_io_socket_get_remote_address:
 * @self: a socket
 *
 * The client's address at the handshake, as text, without the port.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the remote address
 */
const char *
engine_io_socket_get_remote_address (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return engine_io_handshake_get_remote_address (self->handshake);
}

/**
 * engine_io_socket_get_server:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the server the session belongs to
 */
EngineIOServer *
engine_io_socket_get_server (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->server;
}

/**
 * engine_io_socket_get_context:
 * @self: a socket
 *
 * The main context that runs this socket's timers, transport and signals.
 * Attach your own sources to it to run code in order with the socket's
 * signals.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the socket's main context
 */
GMainContext *
engine_io_socket_get_context (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->context;
}

/**
 * engine_io_socket_is_closed:
 * @self: a socket
 *
 * Whether the session has ended or is ending: after engine_io_socket_close()
 * (or any other close) this is %TRUE at once, and sends fail. A socket that
 * is not closed may still close at any moment.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE once the session is closed
 */
gboolean
engine_io_socket_is_closed (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), TRUE);
  return g_atomic_int_get ((int *) &self->state) >= STATE_CLOSING ||
         g_atomic_int_get (&self->close_requested);
}

/**
 * engine_io_socket_get_user_data: (skip)
 * @self: a socket
 *
 * The data set with engine_io_socket_set_user_data(), borrowed: nothing
 * keeps it alive once this returns. Safe only where no other thread can
 * replace or clear it meanwhile — typically in the socket's own main
 * context (its signal handlers), when only that context sets it. To read
 * another socket's data (a broadcast from one session's handler over
 * engine_io_server_get_sockets(), say), use engine_io_socket_dup_user_data()
 * or engine_io_socket_dup_user_object(): a concurrent
 * engine_io_socket_set_user_data() on the owner's thread frees the old data
 * as soon as it is replaced.
 *
 * Thread-safe: may be called from any thread, but the pointer it returns is
 * only safe to use under the rule above.
 *
 * Returns: (transfer none) (nullable): the data set with
 *   engine_io_socket_set_user_data()
 */
gpointer
engine_io_socket_get_user_data (EngineIOSocket *self)
{
  gpointer data;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  g_mutex_lock (&self->user_data_lock);
  data = self->user_data;
  g_mutex_unlock (&self->user_data_lock);

  return data;
}

/**
 * engine_io_socket_dup_user_data: (skip)
 * @self: a socket
 * @dup_func: (nullable): makes a copy of the data, or takes a reference on
 *   it (g_object_ref(), g_rc_box_acquire(), a reference-counting function of
 *   your own); %NULL returns the data as it is (borrowed, as
 *   engine_io_socket_get_user_data() does)
 * @user_data: passed to @dup_func
 *
 * Reads the socket's data safely from any thread, as g_object_dup_data()
 * does: @dup_func runs under the socket's user-data lock, so a concurrent
 * engine_io_socket_set_user_data() (which frees the old data outside that
 * lock) cannot free it before the copy or reference is taken. @dup_func
 * is not called when there is no data. It must not call back into this
 * socket's user-data functions.
 *
 * For data stored with engine_io_socket_set_user_object(), or from
 * bindings, engine_io_socket_dup_user_object() does the same.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): what @dup_func returned (free it as
 *   it says), or %NULL if there is no data
 */
gpointer
engine_io_socket_dup_user_data (EngineIOSocket *self,
                                GDuplicateFunc  dup_func,
                                gpointer        user_data)
{
  gpointer data;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  g_mutex_lock (&self->user_data_lock);
  data = self->user_data;
  if (data != NULL && dup_func != NULL)
    data = dup_func (data, user_data);
  g_mutex_unlock (&self->user_data_lock);

  return data;
}

/* Replaces the data and frees the old one outside the lock. */
static void
socket_replace_user_data (EngineIOSocket *self,
                          gpointer        user_data,
                          GDestroyNotify  destroy,
                          gboolean        is_object)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_mutex_lock (&self->user_data_lock);
  old_data = self->user_data;
  old_destroy = self->user_data_destroy;
  self->user_data = user_data;
  self->user_data_destroy = destroy;
  self->user_data_is_object = is_object;
  g_mutex_unlock (&self->user_data_lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_socket_set_user_data: (skip)
 * @self: a socket
 * @user_data: (nullable): data for the application
 * @destroy: (nullable): frees @user_data when it is replaced or the socket
 *   is finalized
 *
 * Attaches one pointer of application data to the socket (for more, use
 * g_object_set_data()); it replaces what engine_io_socket_set_user_object()
 * stored. Any previous data is freed with its destroy function, outside
 * the socket's lock, at once: another thread holding it from
 * engine_io_socket_get_user_data() is left with a dangling pointer. Data
 * that other threads read should be reference counted and read with
 * engine_io_socket_dup_user_data() (or be a #GObject, with
 * engine_io_socket_set_user_object()).
 *
 * Bindings use engine_io_socket_set_user_object().
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_set_user_data (EngineIOSocket *self,
                                gpointer        user_data,
                                GDestroyNotify  destroy)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));

  socket_replace_user_data (self, user_data, destroy, FALSE);
}

/**
 * engine_io_socket_set_user_object:
 * @self: a socket
 * @object: (nullable) (type GObject.Object): a #GObject, or %NULL to clear
 *
 * Stores a reference to @object as the socket's user data (the same slot
 * as engine_io_socket_set_user_data(), which it replaces); the reference
 * is dropped when the data is replaced or the socket is finalized. Read it
 * from any thread with engine_io_socket_dup_user_object(). From Python,
 * any `GObject.Object` (a subclass with your fields) will do.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_set_user_object (EngineIOSocket *self,
                                  gpointer        object)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));
  g_return_if_fail (object == NULL || G_IS_OBJECT (object));

  if (object != NULL)
    socket_replace_user_data (self, g_object_ref (object), g_object_unref, TRUE);
  else
    socket_replace_user_data (self, NULL, NULL, FALSE);
}

/**
 * engine_io_socket_dup_user_object:
 * @self: a socket
 *
 * A new reference to the object stored with
 * engine_io_socket_set_user_object(), taken under the socket's user-data
 * lock: safe from any thread while the owner replaces it.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable) (type GObject.Object): the object, or
 *   %NULL if none is stored (or the data was set with
 *   engine_io_socket_set_user_data())
 */
gpointer
engine_io_socket_dup_user_object (EngineIOSocket *self)
{
  gpointer object = NULL;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  g_mutex_lock (&self->user_data_lock);
  if (self->user_data_is_object && self->user_data != NULL)
    object = g_object_ref (self->user_data);
  g_mutex_unlock (&self->user_data_lock);

  return object;
}

/**
 * engine_io_socket_send_text_len_full:
 * @self: a socket
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data after @callback ran (or instead,
 *   if the send fails)
 * @error: return location for a #GError
 *
 * Queues a text message of @length bytes (copied). Never blocks. Messages
 * are delivered in the order they were sent from any one thread. Text
 * with U+0000 in it goes whole; receive such text with
 * #EngineIOSocket::packet and engine_io_packet_get_text_bytes() (or the
 * @length of engine_io_packet_get_text()). From Python, @text is a `bytes`
 * (`text.encode()`).
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8, with
 * %ENGINE_IO_ERROR_CLOSED if the session has ended, and with
 * %ENGINE_IO_ERROR_QUEUE_FULL when the queue is over
 * #EngineIOServer:send-queue-high-water and the back-pressure policy says
 * so (see #EngineIOBackpressurePolicy).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_len_full (EngineIOSocket        *self,
                                     const char            *text,
                                     gssize                 length,
                                     EngineIOSendCallback   callback,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy,
                                     GError               **error)
{
  gsize len;
  gsize bad = 0;
  char *copy;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (text != NULL || length == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && !engine_io_utf8_validate (text, len, &bad))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Message is not valid UTF-8 (bad byte at offset %" G_GSIZE_FORMAT ")", bad);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, text, len);
  copy[len] = '\0';
  return socket_enqueue (self, engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, copy, len),
                         callback, user_data, destroy, TRUE, error);
}

/**
 * engine_io_socket_send_packet:
 * @self: a socket
 * @packet: a message packet (%ENGINE_IO_PACKET_MESSAGE, text or binary)
 * @error: return location for a #GError
 *
 * Queues @packet as it is: it is shared, not copied (one packet may be
 * queued to many sockets; see engine_io_server_broadcast_packet()). Fails
 * like engine_io_socket_send_text_len_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_packet (EngineIOSocket  *self,
                              EngineIOPacket  *packet,
                              GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (packet != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_MESSAGE)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Only message packets may be sent (not type %d)",
                   (int) engine_io_packet_get_packet_type (packet));
      return FALSE;
    }
  return socket_enqueue (self, engine_io_packet_ref (packet), NULL, NULL, NULL, TRUE, error);
}

/**
 * engine_io_socket_send_text_len:
 * @self: a socket
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @error: return location for a #GError
 *
 * Queues a text message of @length bytes; see
 * engine_io_socket_send_text_len_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_len (EngineIOSocket  *self,
                                const char      *text,
                                gssize           length,
                                GError         **error)
{
  return engine_io_socket_send_text_len_full (self, text, length, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_send_text_full:
 * @self: a socket
 * @text: a UTF-8 message
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data after @callback ran (or instead,
 *   if the send fails)
 * @error: return location for a #GError
 *
 * Queues a text message (NUL-terminated: for text that contains U+0000,
 * use engine_io_socket_send_text_len_full()). Never blocks. Messages are
 * delivered in the order they were sent from any one thread.
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8, with
 * %ENGINE_IO_ERROR_CLOSED if the session has ended, and with
 * %ENGINE_IO_ERROR_QUEUE_FULL when the queue is over
 * #EngineIOServer:send-queue-high-water and the back-pressure policy says
 * so (see #EngineIOBackpressurePolicy).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_full (EngineIOSocket        *self,
                                 const char            *text,
                                 EngineIOSendCallback   callback,
                                 gpointer               user_data,
                                 GDestroyNotify         destroy,
                                 GError               **error)
{
  g_return_val_if_fail (text != NULL, FALSE);

  return engine_io_socket_send_text_len_full (self, text, -1, callback, user_data, destroy, error);
}

/**
 * engine_io_socket_send_text:
 * @self: a socket
 * @text: a UTF-8 message
 * @error: return location for a #GError
 *
 * Queues a text message; see engine_io_socket_send_text_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text (EngineIOSocket  *self,
                            const char      *text,
                            GError         **error)
{
  return engine_io_socket_send_text_full (self, text, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_send_binary_full:
 * @self: a socket
 * @data: the message
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data
 * @error: return location for a #GError
 *
 * Queues a binary message (the bytes are referenced, not copied). Never
 * blocks. Errors as for engine_io_socket_send_text_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_binary_full (EngineIOSocket        *self,
                                   GBytes                *data,
                                   EngineIOSendCallback   callback,
                                   gpointer               user_data,
                                   GDestroyNotify         destroy,
                                   GError               **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return socket_enqueue (self, engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, data),
                         callback, user_data, destroy, TRUE, error);
}

/**
 * engine_io_socket_send_binary:
 * @self: a socket
 * @data: the message
 * @error: return location for a #GError
 *
 * Queues a binary message; see engine_io_socket_send_binary_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_binary (EngineIOSocket  *self,
                              GBytes          *data,
                              GError         **error)
{
  return engine_io_socket_send_binary_full (self, data, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_close:
 * @self: a socket
 *
 * Ends the session (reason `forced close`). From the moment it returns,
 * sends fail with %ENGINE_IO_ERROR_CLOSED and messages the handlers have not
 * seen yet are not delivered. What was queued before is still handed to the
 * client (over polling on the waiting poll, or the next one within two
 * seconds), followed by a close packet, or over WebSocket by a close frame
 * (a poll response still being written is waited for, up to
 * #EngineIOServer:connection-timeout after those two seconds: its send
 * callbacks say whether it was written);
 * during an upgrade (the client's probe answered) it goes on the WebSocket
 * instead if the client completes the upgrade within those two seconds
 * rather than polling. Meanwhile a POST from the client (a heartbeat
 * answer that crossed the close, say) is answered `ok` and its packets are
 * dropped, as the reference does, so the client still polls for the last
 * packets. Returns at once; #EngineIOSocket::close follows in the socket's main
 * context once the transport is done. Does nothing if the session has
 * already ended.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_close (EngineIOSocket *self)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));

  engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE, NULL);
}

/* recv_lock held: the oldest receive_async() caller still waiting whose
 * cancellable was not cancelled, with its cancellation source destroyed by
 * the caller (receive_task_return()). A cancelled caller takes nothing,
 * even before its context dispatched the cancellation: it stays in
 * @recv_tasks until receive_async_cancelled() (or receive_close()) returns
 * it, and the message goes to the next caller or to the queue. */
static GTask *
receive_take_task_locked (EngineIOSocket *self)
{
  for (GList *l = self->recv_tasks.head; l != NULL; l = l->next)
    {
      GTask *task = l->data;

      if (!g_cancellable_is_cancelled (g_task_get_cancellable (task)))
        {
          g_queue_delete_link (&self->recv_tasks, l);
          return task;
        }
    }
  return NULL;
}

typedef struct
{
  EngineIOSocket *socket;          /* ref */
  GSource        *cancel_source;   /* ref: the cancellable's, while the task waits */
} ReceiveTaskData;

static void
receive_task_data_free (gpointer data)
{
  ReceiveTaskData *d = data;

  g_object_unref (d->socket);
  g_clear_pointer (&d->cancel_source, g_source_unref);
  g_free (d);
}

/* No lock held: @task (ref, taken off recv_tasks) gets @packet, or the
 * socket's close error when @packet is NULL. */
static void
receive_task_return (GTask          *task,
                     EngineIOPacket *packet)
{
  ReceiveTaskData *d = g_task_get_task_data (task);

  /* Set (under recv_lock) before the task left the queue, if at all. A
   * cancellation dispatched meanwhile finds the task gone and leaves it
   * to us. */
  if (d->cancel_source != NULL)
    g_source_destroy (d->cancel_source);
  if (packet != NULL)
    g_task_return_pointer (task, engine_io_packet_ref (packet), (GDestroyNotify) engine_io_packet_unref);
  else
    {
      EngineIOCloseReason reason;

      g_mutex_lock (&d->socket->recv_lock);
      reason = d->socket->recv_reason;
      g_mutex_unlock (&d->socket->recv_lock);
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                               "Socket “%s” is closed: %s", d->socket->id,
                               engine_io_close_reason_to_string (reason));
    }
  g_object_unref (task);
}

/* Session context, once, when the session is over: wakes every receiver. */
static void
receive_close (EngineIOSocket      *self,
               EngineIOCloseReason  reason)
{
  GQueue tasks = G_QUEUE_INIT;
  GTask *task;

  g_mutex_lock (&self->recv_lock);
  self->recv_closed = TRUE;
  self->recv_reason = reason;
  /* Nothing is queued while a task that is not cancelled waits: each
   * gets the close. */
  tasks = self->recv_tasks;
  g_queue_init (&self->recv_tasks);
  g_cond_broadcast (&self->recv_cond);
  g_mutex_unlock (&self->recv_lock);
  while ((task = g_queue_pop_head (&tasks)) != NULL)
    receive_task_return (task, NULL);
}

/* recv_lock held: the next queued message (the receive queue's bytes
 * given back by receive_taken()), or NULL. */
static EngineIOPacket *
receive_pop_locked (EngineIOSocket *self)
{
  return g_queue_pop_head (&self->received);
}

/* No lock held: @packet was taken off the queue; the session may read
 * its client again. */
static EngineIOPacket *
receive_taken (EngineIOSocket *self,
               EngineIOPacket *packet)
{
  g_async_queue_lock (self->outbound);
  self->received_bytes -= MIN (self->received_bytes,
                               engine_io_packet_get_footprint (packet) + RECEIVED_OVERHEAD);
  if (self->input_paused && self->state != STATE_CLOSED)
    schedule_drain_locked (self);
  g_async_queue_unlock (self->outbound);
  return packet;
}

static void
receive_set_closed_error (EngineIOSocket  *self,
                          GError         **error)
{
  g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
               "Socket “%s” is closed: %s", self->id,
               engine_io_close_reason_to_string (self->recv_reason));
}

static void
receive_wake (GCancellable *cancellable,
              gpointer      data)
{
  EngineIOSocket *self = data;

  g_mutex_lock (&self->recv_lock);
  g_cond_broadcast (&self->recv_cond);
  g_mutex_unlock (&self->recv_lock);
}

/* Blocking receive: until a message, the close, @cancellable or
 * @end_time (monotonic µs, or -1: none). */
static EngineIOPacket *
receive_wait (EngineIOSocket  *self,
              gint64           end_time,
              GCancellable    *cancellable,
              GError         **error)
{
  EngineIOPacket *packet = NULL;
  gulong cancelled_id = 0;
  gboolean timed_out = FALSE;

  if (g_cancellable_set_error_if_cancelled (cancellable, NULL))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                   "Receive on socket “%s” was cancelled", self->id);
      return NULL;
    }
  /* Wakes us at once when cancelled: no polling. */
  if (cancellable != NULL)
    cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (receive_wake), self, NULL);

  g_mutex_lock (&self->recv_lock);
  for (;;)
    {
      if ((packet = receive_pop_locked (self)) != NULL || self->recv_closed ||
          g_cancellable_is_cancelled (cancellable) || timed_out)
        break;
      if (end_time < 0)
        g_cond_wait (&self->recv_cond, &self->recv_lock);
      else
        timed_out = !g_cond_wait_until (&self->recv_cond, &self->recv_lock, end_time) &&
                    g_get_monotonic_time () >= end_time;
    }
  if (packet == NULL)
    {
      if (self->recv_closed)
        receive_set_closed_error (self, error);
      else if (g_cancellable_is_cancelled (cancellable))
        g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                     "Receive on socket “%s” was cancelled", self->id);
      else
        g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_TIMED_OUT,
                     "Nothing was received on socket “%s” in time", self->id);
    }
  g_mutex_unlock (&self->recv_lock);
  if (cancelled_id != 0)
    g_cancellable_disconnect (cancellable, cancelled_id);
  return packet != NULL ? receive_taken (self, packet) : NULL;
}

/**
 * engine_io_socket_receive:
 * @self: a socket
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Waits for the next message nobody handled: a message goes to this queue
 * when no #EngineIOSocket::message handler is connected at the moment it
 * is dispatched. Meant for thread-style code; must not be called from the
 * socket's own main context (it would wait for itself): there, use
 * engine_io_socket_try_receive() or engine_io_socket_receive_async().
 *
 * The queue is bounded by #EngineIOServer:receive-queue-high-water, in
 * real bytes (each message counts its data as allocated plus about 100
 * bytes): when it is full the session stops reading its client, and reads
 * again once this function has taken the queue under half of the mark.
 * While paused, the client's heartbeat answers are not read either: a
 * session whose queue is not taken from within #EngineIOServer:ping-interval
 * plus #EngineIOServer:ping-timeout ends with `ping timeout`. Connect a
 * ::message handler instead if the application does not want messages
 * queued at all.
 *
 * Messages already queued are returned even after the session closed;
 * then it fails with %ENGINE_IO_ERROR_CLOSED, whose message ends with the
 * close reason (engine_io_close_reason_to_string(): `: ping timeout`).
 * Cancelling fails it with %ENGINE_IO_ERROR_CANCELLED at once (the caller
 * is woken, not polled). Several threads may receive from one socket: each
 * message goes to one of them.
 *
 * Thread-safe: may be called from any thread but the socket's context's.
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive (EngineIOSocket  *self,
                          GCancellable    *cancellable,
                          GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (!g_main_context_is_owner (self->context), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return receive_wait (self, -1, cancellable, error);
}

/**
 * engine_io_socket_receive_timeout:
 * @self: a socket
 * @timeout_ms: how long to wait at most, in milliseconds (0: do not wait)
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * engine_io_socket_receive() waiting at most @timeout_ms: then it fails
 * with %ENGINE_IO_ERROR_TIMED_OUT.
 *
 * Thread-safe: may be called from any thread but the socket's context's.
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive_timeout (EngineIOSocket  *self,
                                  guint            timeout_ms,
                                  GCancellable    *cancellable,
                                  GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (!g_main_context_is_owner (self->context), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return receive_wait (self, g_get_monotonic_time () + (gint64) timeout_ms * 1000,
                       cancellable, error);
}

/**
 * engine_io_socket_try_receive:
 * @self: a socket
 * @error: return location for a #GError
 *
 * The next queued message if there is one (see
 * engine_io_socket_receive()), without waiting. Returns %NULL without an
 * error when none is queued, and fails with %ENGINE_IO_ERROR_CLOSED once
 * the session is over and the queue empty.
 *
 * Thread-safe: may be called from any thread, the socket's context's
 * included.
 *
 * Returns: (transfer full) (nullable): the next message packet, or %NULL
 */
EngineIOPacket *
engine_io_socket_try_receive (EngineIOSocket  *self,
                              GError         **error)
{
  EngineIOPacket *packet;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  g_mutex_lock (&self->recv_lock);
  packet = receive_pop_locked (self);
  if (packet == NULL && self->recv_closed)
    receive_set_closed_error (self, error);
  g_mutex_unlock (&self->recv_lock);
  return packet != NULL ? receive_taken (self, packet) : NULL;
}

/* The task's context: its cancellable was cancelled. */
static gboolean
receive_async_cancelled (GCancellable *cancellable,
                         gpointer      data)
{
  GTask *task = data;
  ReceiveTaskData *d = g_task_get_task_data (task);
  EngineIOSocket *self = d->socket;
  gboolean mine;

  g_mutex_lock (&self->recv_lock);
  mine = g_queue_remove (&self->recv_tasks, task);
  g_mutex_unlock (&self->recv_lock);
  if (mine)
    {
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                               "Receive on socket “%s” was cancelled", self->id);
      g_object_unref (task);   /* the queue's */
    }
  /* else a message or the close came first: receive_task_return() has it */
  return G_SOURCE_REMOVE;
}

/**
 * engine_io_socket_receive_async:
 * @self: a socket
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when a message came, the session is over
 *   or @cancellable was cancelled
 * @user_data: data for @callback
 *
 * engine_io_socket_receive() without blocking: @callback runs in the
 * thread-default main context of the caller (which must be iterated) and
 * calls engine_io_socket_receive_finish(). Messages go to waiting callers
 * in the order they called. Holds no thread while it waits. Once
 * @cancellable is cancelled the call takes no message (it fails with
 * %ENGINE_IO_ERROR_CANCELLED, when its context runs, and messages go to
 * the other callers or stay queued); a message it took before is returned.
 *
 * Thread-safe: may be called from any thread, the socket's context's
 * included.
 */
void
engine_io_socket_receive_async (EngineIOSocket      *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  EngineIOPacket *packet = NULL;
  ReceiveTaskData *d;
  gboolean closed = FALSE;

  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, engine_io_socket_receive_async);
  g_task_set_name (task, "[engineio] receive");
  /* A message handed to the task is returned even if the cancellable is
   * cancelled meanwhile (GTask would drop it for G_IO_ERROR_CANCELLED);
   * a cancellation while it waits gives ENGINE_IO_ERROR_CANCELLED. */
  g_task_set_check_cancellable (task, FALSE);
  d = g_new0 (ReceiveTaskData, 1);
  d->socket = g_object_ref (self);
  g_task_set_task_data (task, d, receive_task_data_free);
  if (g_cancellable_is_cancelled (cancellable))
    {
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CANCELLED,
                               "Receive on socket “%s” was cancelled", self->id);
      return;
    }

  g_mutex_lock (&self->recv_lock);
  packet = receive_pop_locked (self);
  closed = packet == NULL && self->recv_closed;
  if (packet == NULL && !closed)
    g_queue_push_tail (&self->recv_tasks, g_object_ref (task));
  g_mutex_unlock (&self->recv_lock);

  if (packet != NULL)
    {
      receive_taken (self, packet);
      g_task_return_pointer (task, packet, (GDestroyNotify) engine_io_packet_unref);
    }
  else if (closed)
    {
      g_mutex_lock (&self->recv_lock);
      g_task_return_new_error (task, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED,
                               "Socket “%s” is closed: %s", self->id,
                               engine_io_close_reason_to_string (self->recv_reason));
      g_mutex_unlock (&self->recv_lock);
    }
  else if (cancellable != NULL)
    {
      /* Cancellation is dispatched in the task's context (a
       * GCancellableSource): nothing runs in the thread that cancels. */
      GSource *source = g_cancellable_source_new (cancellable);
      gboolean waiting;

      g_source_set_callback (source, G_SOURCE_FUNC (receive_async_cancelled),
                             g_object_ref (task), g_object_unref);
      g_source_set_static_name (source, "[engineio] receive cancelled");
      g_source_attach (source, g_task_get_context (task));
      g_mutex_lock (&self->recv_lock);
      waiting = g_queue_find (&self->recv_tasks, task) != NULL;
      if (waiting)
        d->cancel_source = g_source_ref (source);
      g_mutex_unlock (&self->recv_lock);
      if (!waiting)
        g_source_destroy (source);   /* a message or the close came meanwhile */
      g_source_unref (source);
    }
}

/**
 * engine_io_socket_receive_finish:
 * @self: a socket
 * @result: the result given to the callback
 * @error: return location for a #GError
 *
 * Finishes engine_io_socket_receive_async(): the errors are those of
 * engine_io_socket_receive().
 *
 * Returns: (transfer full): the next message packet, or %NULL on error
 */
EngineIOPacket *
engine_io_socket_receive_finish (EngineIOSocket  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == engine_io_socket_receive_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * engine_io_socket_get_send_queue_length:
 * @self: a socket
 *
 * How many packets are queued and not yet handed to the transport.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of queued packets
 */
guint
engine_io_socket_get_send_queue_length (EngineIOSocket *self)
{
  gint n;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), 0);

  n = g_async_queue_length (self->outbound);
  return n > 0 ? (guint) n : 0;
}
