/* engineio-socket-internal.h: what the engineio-socket*.c files share
 *
 * The session's struct, its types and limits, and the functions its files
 * call across. Only engineio-socket*.c include it; the rest of the library
 * uses engineio-socket-private.h.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-socket-private.h"
#include "engineio-packet-private.h"
#include "engineio-websocket-private.h"
#include "engineio-limits-private.h"
#include "engineio-error.h"
#include "engineio-lock-private.h"
#include "engineio-session-machine-private.h"
#include "engineio-session-polling-private.h"

G_BEGIN_DECLS

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
  EVENT_FINISH_CLOSE,  /* what the close waits for is over: a poll response that finishes
                        * it ended, or the waiting poll went away (the machine's WAIT_OVER) */
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

/* The body of a POST being read (engineio-socket-polling.c). */
typedef struct _EngineIOPostBody EngineIOPostBody;
void engine_io_socket_post_body_free (EngineIOPostBody *body);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOPostBody, engine_io_socket_post_body_free)

struct _EngineIOSocket
{
  GObject                  parent_instance;

  /* Immutable after construction: any thread may read. */
  char                    *id;
  EngineIOHandshake       *handshake;
  EngineIOServer          *server;        /* strong ref, dropped in finalize */
  const EngineIOSocketOwner *owner;       /* what calls into @server; static */
  EngineIOConfig          *config;
  GMainContext            *context;       /* ref; the loop's context */
  /* (and @version, with the bytes below) */

  /* The session lock. It guards the outbound queue and every field marked
   * (lock) below, in one critical section, because handing a waiting poll
   * its packets must be atomic with looking at the queue; and, for the
   * adapter, the `suspended` and `answer_noop` flags of the session's
   * requests (engineio-request-private.h). Functions named `_locked` are
   * called with it held (ENGINE_IO_LOCK_ASSERT_HELD() checks it in
   * -Dlock_checks=true builds).
   *
   * Order (engineio-lock-private.h has the whole table; rank 3): taken
   * after the server's broadcast_lock and lock, never before them (no
   * server lock is taken with it held); with it held, a thread may take
   * the HTTP watcher's lock (a waiting poll is registered under it),
   * @recv_lock, and the leaves below us: libmicrohttpd's locks (a poll is
   * suspended or resumed under it), GMainContext's (sources attached,
   * contexts woken) and @inbound's (an event posted). Never two sessions'
   * at once. No signal handler, hook or send callback runs with it held,
   * and no socket I/O is done under it. */
  GMutex                   state_lock;
  GQueue                   outbound;      /* (lock) SendItem*, oldest first */
  SocketState              state;         /* (lock) written; (atomic) read elsewhere */
  int                      transport;     /* (atomic) EngineIOTransportType */
  EngineIORequest         *active_get;    /* (lock) the poll attached to us, if any */
  EngineIORequest         *active_post;   /* (lock) the POST reading its body, if any */
  EngineIORequest         *held_post;     /* (lock) a POST suspended while @input_paused */
  GPtrArray               *inflight;      /* (lock) EngineIORequest*: poll responses whose
                                           * send items wait for the end of the request */
  guint64                  queued_bytes;  /* (lock) real bytes in @outbound (engine_io_socket_item_size()) */
  guint64                  tap_bytes;     /* (lock) real bytes of the packets held for
                                           * ::packet-create handlers not yet told of them
                                           * (sent or not): they count against the send
                                           * mark with @queued_bytes */
  guint64                  inbound_bytes; /* (lock) real bytes of EVENT_PACKETs in @inbound */
  guint64                  received_bytes;/* (lock) real bytes in @received */
  /* (The 4-byte fields together, then the 1-byte ones: no padding between
   * them. The flags are bytes, not bits: bits of one word written under
   * different locks would race; bytes are memory locations of their own.
   * Idle memory per session is a benchmark figure: keep this struct small.) */
  guint                    inflight_polls;/* (lock) poll responses carrying packets not yet
                                           * reported written: while there is one, an
                                           * open session takes nothing more out of its
                                           * queue (see engine_io_socket_take_for_poll_locked()) */
  guint                    inbound_packets; /* (lock) EVENT_PACKETs in @inbound */
  int                      close_requested; /* (atomic) a close is on its way: no more sends, no more messages */
  int                      drain_pending; /* (atomic) a drain source is attached */
  int                      signal_cache;  /* (atomic) SIGNAL_CACHE_* bits: while a message
                                           * function is set, which of ::packet,
                                           * ::packet-create and ::drain had handlers when it
                                           * was set (engine_io_socket_wants_signal()) */
  guint                    message_func_depth;  /* (session context) calls of the message
                                           * function under way */
  guint16                  ws_close_code; /* (session context) for the close frame when we close */
  guint8                   input_paused;  /* (lock) the client is not read (back-pressure) */
  guint8                   ws_claimed;    /* (lock) a WebSocket was accepted for us */
  guint8                   upgrading;     /* (lock) probe answered: polls get a noop */
  guint8                   lingering;     /* (lock) closing, waiting for one last poll (or
                                           * the `5` of a probe kept through the close) */
  guint8                   flush_inline;  /* (lock) the session thread flushes soon anyway */
  guint8                   close_reason;  /* (lock) EngineIOCloseReason: written once, under
                                           * the lock, with state CLOSING: serving threads
                                           * read it under the lock (the polling rules'
                                           * closed_for_application) */
  guint8                   recv_closed;   /* (recv_lock) the session is over */
  guint8                   recv_reason;   /* (recv_lock) EngineIOCloseReason: ... why */
  guint8                   counted_open;  /* (session context) in the open-sessions gauge */
  guint8                   client_closed; /* (session context) the client sent a close packet */
  guint8                   ws_probe;      /* (session context) @ws is a probe, not yet the
                                           * transport */
  guint8                   user_data_is_object; /* (user_data_lock) set by set_user_object() */
  guint8                   version;       /* immutable: EngineIOProtocolVersion */
  EngineIOTokenBucket      message_bucket; /* (lock) message-rate */

  /* Events for the session context (Event*), with one wake-up at a time.
   * A GAsyncQueue of its own, not under @state_lock: events are posted
   * both with the session lock held and without it (from the adapter's
   * WebSocket callbacks and the session context), and taken in the
   * session context without it. Its internal lock is a leaf. */
  GAsyncQueue             *inbound;

  /* Messages nobody handled, for engine_io_socket_receive() and its
   * variants. recv_lock (rank 5) nests inside @state_lock, never the other
   * way round; no lock of ours is taken with it held, and no callback runs
   * with it held (a blocking receive() waits on @recv_cond with it). */
  GMutex                   recv_lock;
  GCond                    recv_cond;     /* (recv_lock) a message, the close or a cancellation */
  GQueue                   received;      /* (recv_lock) EngineIOPacket (ref) */
  GQueue                   recv_tasks;    /* (recv_lock) GTask (ref): receive_async() callers waiting */

  /* The body of the POST being read (@active_post), read a round of packets
   * at a time: only its serving thread touches it; taken out under the
   * lock when the POST is done with it (engineio-socket-polling.c). */
  EngineIOPostBody        *post_body;

  /* Session context only. */
  EngineIOLoop            *loop;          /* released when the session ends */
  EngineIOSessionMachine   machine;       /* the heartbeat, the client's packets' rules
                                           * and the upgrade's (engine_io_socket_run_machine()) */
  GSource                 *timers[ENGINE_IO_SESSION_N_TIMERS]; /* the machine's armed timers (the
                                           * closing ones: engineio-socket-close.c) */
  EngineIOCounters        *counters;      /* the server's; immutable pointer */
  char                    *close_description;
  EngineIOWebSocket       *ws;            /* the transport, or an upgrade probe */
  GByteArray              *frame;         /* scratch for encoding frames */
  gint64                   inline_window; /* see ws_message_cb() */
  gint64                   inline_spent;
  EngineIOMessageFunc      message_func;  /* engine_io_socket_set_message_func(): set in the */
  gpointer                 message_func_data;   /* session context, dropped after ::close */
  GDestroyNotify           message_func_destroy;
  GSList                  *message_func_deferred; /* data it replaced while running */
  GPtrArray               *dying_ws;      /* given-up WebSockets finishing their close */
  GQueue                   ws_unsent;     /* SendItem*: handed to @ws, not yet all taken by
                                           * send(), by ws_seq (see engine_io_socket_ws_report_sent()) */

  /* The application's data. Its own lock (rank 9, a leaf: taken with no
   * other lock of ours held, and none taken with it held), never held
   * while calling out but for a dup function: a reader copies or
   * references the data under it, so a concurrent replacement cannot free
   * it in between. */
  GMutex                   user_data_lock;
  gpointer                 user_data;          /* (user_data_lock) */
  GDestroyNotify           user_data_destroy;  /* (user_data_lock) */
};

/* The enums stored in bytes above fit. */
G_STATIC_ASSERT (ENGINE_IO_PROTOCOL_V4 <= G_MAXUINT8);
G_STATIC_ASSERT (ENGINE_IO_CLOSE_REASON_RATE_LIMITED <= G_MAXUINT8);

enum
{
  PROP_0,
  PROP_ID,
  PROP_PROTOCOL_VERSION,
  PROP_TRANSPORT,
  N_PROPS
};

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

/* Memory accounting, in real bytes (see #EngineIOServer:send-queue-high-water):
 * a packet's footprint (engine_io_packet_get_footprint(): its struct, its
 * GBytes, its data as allocated, what a slice keeps alive) plus what
 * holding it in each queue costs. On 64-bit glibc an empty message queued
 * for sending is 112 bytes, a 2-byte one 192; a received one 32 + 32 or
 * 112 + 32; a read one waiting for the session context 32 + 96. */
#define QUEUE_LINK_SIZE ENGINE_IO_ALLOC_SIZE (sizeof (GList))  /* a GQueue link (GAsyncQueue's too) */
#define SEND_ITEM_OVERHEAD (ENGINE_IO_ALLOC_SIZE (sizeof (SendItem)) + QUEUE_LINK_SIZE)
#define EVENT_OVERHEAD (ENGINE_IO_ALLOC_SIZE (sizeof (Event)) + QUEUE_LINK_SIZE)
#define RECEIVED_OVERHEAD QUEUE_LINK_SIZE

/* Events handled per dispatch of a socket's event source, at most, and
 * the time after which a dispatch stops taking more. */
#define EVENT_BATCH 64
#define EVENT_BATCH_US 5000

/* WebSocket messages are handled inline until their handlers used
 * EVENT_BATCH_US within INLINE_WINDOW_US; reading pauses while more than
 * INBOUND_PAUSE events wait. */
#define INLINE_WINDOW_US 50000
#define INBOUND_PAUSE 1024

#define RATE_LIMITED_DESCRIPTION "the client sent messages faster than message-rate allows"
#define RECEIVE_OVER_DESCRIPTION "receive queue over its limit"

/* At most this many packets go in one poll response while the session is
 * open: python-engineio (Debian's 4.x) rejects payloads of more than 16
 * packets (Payload.max_decode_packets) and drops the connection. The rest
 * goes in the next poll, which follows at once. */
#define POLL_MAX_PACKETS 16

/* The polling rules (src/core/engineio-session-polling.c) see the state
 * value for value. */
G_STATIC_ASSERT ((int) STATE_OPENING == (int) ENGINE_IO_POLLING_OPENING);
G_STATIC_ASSERT ((int) STATE_OPEN == (int) ENGINE_IO_POLLING_OPEN);
G_STATIC_ASSERT ((int) STATE_CLOSING == (int) ENGINE_IO_POLLING_CLOSING);
G_STATIC_ASSERT ((int) STATE_CLOSED == (int) ENGINE_IO_POLLING_CLOSED);

/* Defined in engineio-socket-delivery.c (the bottom of the session's
 * files), filled in by engine_io_socket_class_init(). */
extern GParamSpec *engine_io_socket_properties[N_PROPS];
extern guint engine_io_socket_signals[N_SIGNALS];

/* The session's transport, as engine_io_socket_get_transport() (the
 * public getter, on top) returns it: for the files below. */
static inline EngineIOTransportType
engine_io_socket_transport (EngineIOSocket *self)
{
  return (EngineIOTransportType) g_atomic_int_get (&self->transport);
}

/* Payload bytes, for the byte counters of the metrics. */
static inline gsize
engine_io_socket_packet_size (EngineIOPacket *packet)
{
  return g_bytes_get_size (engine_io_packet_get_data (packet)) + 1;
}

/* What a packet in the outbound queue costs. */
static inline gsize
engine_io_socket_item_size (EngineIOPacket *packet)
{
  return engine_io_packet_get_footprint (packet) + SEND_ITEM_OVERHEAD;
}

/* Called with the lock held: what the polling rules read (input_over is
 * left FALSE: only a POST round asks for it). */
static inline EngineIOPollingView
engine_io_socket_polling_view_locked (EngineIOSocket *self)
{
  EngineIOPollingView view;

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  view.state = (EngineIOPollingState) self->state;
  view.closed_for_application = self->close_reason == ENGINE_IO_CLOSE_REASON_FORCED_CLOSE ||
                                self->close_reason == ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN;
  view.lingering = self->lingering;
  view.poll_waiting = self->active_get != NULL;
  view.post_active = self->active_post != NULL;
  view.upgrading = self->upgrading;
  view.polling = g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING;
  view.queued = self->outbound.length > 0;
  view.poll_in_flight = self->inflight_polls > 0;
  view.input_over = FALSE;
  return view;
}

/* Timers (session context): a GSource on the session's context, and its
 * end. Inline: every session file arms or stops one. */
static inline void
engine_io_socket_clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_source_unref (*source);
      *source = NULL;
    }
}

static inline GSource *
engine_io_socket_add_timeout (EngineIOSocket *self,
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

/* What a file below calls back up, where the call goes against the
 * layers (each session file calls only the files below it:
 * tests/check-file-cycles.py). Filled in once, by
 * engine_io_socket_class_init(), before any socket exists, as the
 * signal ids; read without a lock after. */
typedef struct
{
  /* The event source's dispatch (engineio-socket-events.c): the queue
   * (engineio-socket-queue.c) attaches it when it posts an event. */
  GSourceFunc dispatch_events;
} EngineIOSocketUpcalls;

extern EngineIOSocketUpcalls engine_io_socket_upcalls;  /* engineio-socket-queue.c */

/* engineio-socket-queue.c (see there for what each does) */
void engine_io_socket_send_item_free (SendItem *item);
void engine_io_socket_event_free (Event *event);
void engine_io_socket_schedule_drain_locked (EngineIOSocket *self);
gboolean engine_io_socket_post_event_locked (EngineIOSocket *self,
                                             Event          *event);
gboolean engine_io_socket_input_over_locked (EngineIOSocket *self,
                                             gboolean        paused);
void engine_io_socket_post_event (EngineIOSocket *self,
                                  Event          *event);
gboolean engine_io_socket_message_within_rate_locked (EngineIOSocket *self,
                                                      EngineIOPacket *packet);
void engine_io_socket_call_send_callbacks (EngineIOSocket *self,
                                           GPtrArray      *items,
                                           gboolean        flushed);
void engine_io_socket_update_input (EngineIOSocket *self);
GPtrArray *engine_io_socket_take_outbound_locked (EngineIOSocket  *self,
                                                  guint64          limit,
                                                  guint            max_items,
                                                  GPtrArray      **notify_out);
void engine_io_socket_attach_flush_items_locked (EngineIOSocket  *self,
                                                 EngineIORequest *req,
                                                 GPtrArray       *items);
GPtrArray *engine_io_socket_take_for_poll_locked (EngineIOSocket   *self,
                                                  EngineIORequest  *req,
                                                  guint             max_items,
                                                  GPtrArray       **notify_out);
EngineIORequest *engine_io_socket_kick_transport_locked (EngineIOSocket *self);
gboolean engine_io_socket_enqueue (EngineIOSocket       *self,
                                   EngineIOPacket       *packet,
                                   EngineIOSendCallback  callback,
                                   gpointer              user_data,
                                   GDestroyNotify        destroy,
                                   gboolean              kick,
                                   GError              **error);

/* engineio-socket-executor.c (see there for what each does) */
void engine_io_socket_run_machine (EngineIOSocket             *self,
                                   const EngineIOSessionInput *input,
                                   gint64                      now_us);
void engine_io_socket_handle_packet (EngineIOSocket *self,
                                     EngineIOPacket *packet,
                                     gint64          now_us);
/* engineio-socket-events.c (see there for what each does) */
gboolean engine_io_socket_drain_inbound_cb (gpointer data);

/* engineio-socket-ws-output.c (see there for what each does) */
gboolean engine_io_socket_ws_send_packet (EngineIOSocket *self,
                                          EngineIOPacket *packet);
void engine_io_socket_retire_ws (EngineIOSocket    *self,
                                 EngineIOWebSocket *ws,
                                 guint16            code,
                                 const char        *reason);
void engine_io_socket_ws_report_sent (EngineIOSocket *self);
void engine_io_socket_ws_send_packets (EngineIOSocket *self,
                                       GPtrArray      *packets,
                                       GPtrArray      *notify);
void engine_io_socket_ws_flush_outbound (EngineIOSocket *self);
void engine_io_socket_clear_probe (EngineIOSocket *self,
                                   guint16         code,
                                   const char     *reason);
EngineIORequest *engine_io_socket_release_poll_with_noop_locked (EngineIOSocket *self);

/* engineio-socket-websocket.c (see there for what each does) */
void engine_io_socket_handle_ws_attach (EngineIOSocket    *self,
                                        EngineIOWebSocket *ws,
                                        gboolean           reject);

/* engineio-socket-close.c (see there for what each does) */
void engine_io_socket_do_close (EngineIOSocket      *self,
                                EngineIOCloseReason  reason,
                                const char          *description);
void engine_io_socket_finish_close (EngineIOSocket *self);
void engine_io_socket_close_wait_over (EngineIOSocket *self);
void engine_io_socket_close_linger_taken (EngineIOSocket *self);

/* engineio-socket-delivery.c (see there for what each does) */
typedef struct
{
  EngineIOSocket *socket;          /* ref */
  GSource        *cancel_source;   /* ref: the cancellable's, while the task waits */
} ReceiveTaskData;                 /* a receive_async() task's data */
GTask *engine_io_socket_receive_take_task_locked (EngineIOSocket *self);
void engine_io_socket_receive_task_return (GTask          *task,
                                           EngineIOPacket *packet);
/* engine_io_socket_wants_signal(): SIGNAL_CACHE_VALID set, the other bits
 * say which signals had handlers when the message function was set. */
enum
{
  SIGNAL_CACHE_VALID         = 1 << 0,
  SIGNAL_CACHE_PACKET        = 1 << 1,
  SIGNAL_CACHE_PACKET_CREATE = 1 << 2,
  SIGNAL_CACHE_DRAIN         = 1 << 3,
};
gboolean engine_io_socket_wants_signal       (EngineIOSocket *self,
                                              guint           signal);
gboolean engine_io_socket_call_message_func  (EngineIOSocket *self,
                                              EngineIOPacket *packet);
void     engine_io_socket_replace_message_func (EngineIOSocket      *self,
                                                EngineIOMessageFunc  func,
                                                gpointer             user_data,
                                                GDestroyNotify       destroy);
void     engine_io_socket_clear_message_func (EngineIOSocket *self);
void engine_io_socket_receive_close (EngineIOSocket      *self,
                                     EngineIOCloseReason  reason);

G_END_DECLS
