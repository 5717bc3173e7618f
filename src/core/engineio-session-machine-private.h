/* engineio-session-machine-private.h: an Engine.IO session as a state machine
 *
 * Inputs in, actions out. No threads, no GMainContext, no clock (the time
 * is an argument), no sockets, no libmicrohttpd, no WebSocket I/O, no
 * signals: the caller (the runtime's EngineIOSocket, the executor) carries
 * the actions out. Not thread-safe: the caller serializes the calls (today
 * they all come from the session context).
 *
 * The machine (issue 14) holds the heartbeat (both protocol versions), the
 * rules for a packet the client sent, at its delivery in the session
 * context, and the upgrade from polling to WebSocket (its probe: `2probe`,
 * `3probe`, the poll released with a noop, `5`, giving the probe up, its
 * deadline; a probe kept through a close), and the close's timing: the
 * linger of a closing polling session waiting for its last poll, the
 * bound on the write of a closing session's last poll response, a
 * server shutdown's shorter bound, and when the close finishes. What a
 * polling request gets is the sibling engineio-session-polling-private.h
 * (pure rules the serving thread asks; it decides whether a close
 * lingers). The send queue is still the runtime's, and so is the I/O:
 * the WebSocket object, the 101 (engine_io_socket_begin_upgrade(), on
 * the serving thread), the locked flags the serving threads read (the
 * linger's included: the last poll claims it there), the counters and
 * the signals.
 *
 * States and transitions: the table at the top of
 * engineio-session-machine.c.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

#include "engineio-packet.h"

G_BEGIN_DECLS

typedef enum
{
  ENGINE_IO_SESSION_NEW,      /* created: not started yet; nothing happens */
  ENGINE_IO_SESSION_OPEN,     /* started: heartbeat running, packets handled */
  ENGINE_IO_SESSION_CLOSED,   /* closing or closed (for any reason, either side):
                               * no heartbeat timer armed; what happens is the
                               * close's timing (EngineIOSessionClosing) and a probe
                               * kept through the close (UPGRADE_KEPT) */
} EngineIOSessionState;

/* The upgrade to WebSocket, a sub-state of OPEN (and, for a probe kept
 * through a close, of CLOSED). */
typedef enum
{
  ENGINE_IO_SESSION_UPGRADE_NONE,       /* polling (or a direct WebSocket): no probe */
  ENGINE_IO_SESSION_UPGRADE_PROBING,    /* a probe is attached, its `2probe` not come yet;
                                         * the upgrade timer is armed */
  ENGINE_IO_SESSION_UPGRADE_UPGRADING,  /* `3probe` sent, polls answered with a noop; the
                                         * client's `5` completes it; timer armed */
  ENGINE_IO_SESSION_UPGRADE_KEPT,       /* UPGRADING when the session closed with a linger:
                                         * only `5` is expected (it completes the upgrade
                                         * while closing); timer still armed */
  ENGINE_IO_SESSION_UPGRADE_DONE,       /* upgraded: the WebSocket is the transport */
} EngineIOSessionUpgrade;

/* The close's timing, a sub-state of CLOSED (the runtime's close: the
 * CLOSE input). */
typedef enum
{
  ENGINE_IO_SESSION_CLOSING_NONE,       /* no CLOSE input yet */
  ENGINE_IO_SESSION_CLOSING_LINGER,     /* waiting for a last poll (or the `5` of a probe
                                         * kept): the linger timer is armed */
  ENGINE_IO_SESSION_CLOSING_WRITE,      /* waiting for a poll response's write to end:
                                         * the close-write timer (its bound) is armed */
  ENGINE_IO_SESSION_CLOSING_WEBSOCKET,  /* waiting for the WebSocket's close (it has its own
                                         * timeout): no timer */
  ENGINE_IO_SESSION_CLOSING_DONE,       /* FINISH_CLOSE came out: nothing more */
} EngineIOSessionClosing;

/* What the runtime's close waits for (the CLOSE input's .wait). */
typedef enum
{
  ENGINE_IO_SESSION_WAIT_NOTHING,    /* it finishes now */
  ENGINE_IO_SESSION_WAIT_LINGER,     /* the client's next poll (the polling rules' LINGER);
                                      * an answered probe is kept for its `5` */
  ENGINE_IO_SESSION_WAIT_POLL,       /* the waiting poll, resumed with the queue and `1`:
                                      * the end of its write */
  ENGINE_IO_SESSION_WAIT_WEBSOCKET,  /* the WebSocket transport's close */
} EngineIOSessionCloseWait;

typedef enum
{
  ENGINE_IO_SESSION_TIMER_PING,       /* v4: send the next ping */
  ENGINE_IO_SESSION_TIMER_HEARTBEAT,  /* v4: the pong's deadline; v3: the session's expiry */
  ENGINE_IO_SESSION_TIMER_UPGRADE,    /* the probe's deadline (upgrade timeout) */
  ENGINE_IO_SESSION_TIMER_LINGER,     /* closing: the end of the wait for a last poll */
  ENGINE_IO_SESSION_TIMER_CLOSE_WRITE,/* closing: the bound on a poll response's write */
  ENGINE_IO_SESSION_N_TIMERS,
} EngineIOSessionTimer;

/* Why the machine closes a session (the runtime maps these onto
 * EngineIOCloseReason, which lives in a GIO header the core cannot see). */
typedef enum
{
  ENGINE_IO_SESSION_CLOSE_PING_TIMEOUT,     /* the heartbeat was not answered in time */
  ENGINE_IO_SESSION_CLOSE_TRANSPORT_ERROR,  /* a heartbeat in the wrong direction */
  ENGINE_IO_SESSION_CLOSE_TRANSPORT_CLOSE,  /* the client sent a close packet */
} EngineIOSessionCloseReason;

#define ENGINE_IO_SESSION_V4_PING_DESCRIPTION "invalid heartbeat direction: a v4 client sent a ping"
#define ENGINE_IO_SESSION_V3_PONG_DESCRIPTION "invalid heartbeat direction: a v3 client sent a pong"

/* Why a probe is given up (GIVE_UP_PROBE's description; polling goes on). */
#define ENGINE_IO_SESSION_PROBE_UNEXPECTED "unexpected packet during upgrade"
#define ENGINE_IO_SESSION_PROBE_BAD "bad packet during upgrade"
#define ENGINE_IO_SESSION_PROBE_TIMEOUT "upgrade timeout"

typedef enum
{
  ENGINE_IO_SESSION_INPUT_START,    /* the session is open (the open packet is queued) */
  ENGINE_IO_SESSION_INPUT_PACKET,   /* .packet (borrowed): a packet from the client, at its
                                     * delivery in the session context; .close_requested */
  ENGINE_IO_SESSION_INPUT_TIMER,    /* .timer: an armed timer's deadline came. The
                                     * linger's carries what the runtime saw when it
                                     * claimed its linger flag, under its lock:
                                     * .polled, .writing */
  ENGINE_IO_SESSION_INPUT_CLOSE,    /* the session closes (any reason, either side): the
                                     * runtime's close began (once). .wait: what it
                                     * waits for (LINGER: an answered probe is kept for
                                     * its `5`); .shutdown: a server shutdown's close;
                                     * .probe_code: the close frame for a probe given up
                                     * (0: none). Answered with TIMER_STOPs, at most one
                                     * GIVE_UP_PROBE, then a closing timer's TIMER_START
                                     * or FINISH_CLOSE (engineio-socket-close.c carries
                                     * them out) */
  ENGINE_IO_SESSION_INPUT_SHUTDOWN, /* a server shutdown reached the session closing
                                     * already; .websocket: the WebSocket transport is
                                     * still there (a probe kept through the close is
                                     * not: the close does not wait for it) */
  ENGINE_IO_SESSION_INPUT_LINGER_TAKEN, /* the `5` of a probe kept took the close from the
                                         * linger (the runtime claimed its linger flag
                                         * before a last poll did): the WebSocket carries
                                         * the rest and its close ends the session */
  ENGINE_IO_SESSION_INPUT_WAIT_OVER,    /* what the close waited for is over: its last poll's
                                         * response was written (or failed), the waiting
                                         * poll went away, the WebSocket closed */
  ENGINE_IO_SESSION_INPUT_FINISHED,     /* the runtime's close finished
                                         * (engine_io_socket_finish_close()): a probe kept is
                                         * given up, no timer stays armed */
  ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED, /* a WebSocket came for a polling session: it is
                                           * the upgrade's probe */
  ENGINE_IO_SESSION_INPUT_PROBE_PACKET,   /* .packet (borrowed): a packet read on the probe;
                                           * NULL: a frame that did not decode */
  ENGINE_IO_SESSION_INPUT_PROBE_LOST,     /* the probe's connection closed; .stalled: its
                                           * output stalled (the adapter closes it, 1008) */
} EngineIOSessionInputKind;

typedef struct
{
  EngineIOSessionInputKind  kind;
  EngineIOPacket           *packet;           /* PACKET (borrowed for the call) */
  gboolean                  close_requested;  /* PACKET: a close was asked for (from any
                                               * thread) and has not begun: the packet is
                                               * dropped, as what the handlers have not
                                               * seen yet */
  EngineIOSessionTimer      timer;            /* TIMER */
  gboolean                  polled;           /* TIMER linger: a last poll came (it is
                                               * being answered) */
  gboolean                  writing;          /* TIMER linger: poll responses taken before
                                               * are still being written */
  EngineIOSessionCloseWait  wait;             /* CLOSE */
  gboolean                  shutdown;         /* CLOSE */
  guint16                   probe_code;       /* CLOSE */
  gboolean                  websocket;        /* SHUTDOWN */
  gboolean                  stalled;          /* PROBE_LOST */
} EngineIOSessionInput;

typedef enum
{
  ENGINE_IO_SESSION_ACTION_TIMER_START,  /* .timer, .deadline_us (monotonic): arm it, or move
                                          * its deadline if it is armed */
  ENGINE_IO_SESSION_ACTION_TIMER_STOP,   /* .timer: disarm it (it is armed) */
  ENGINE_IO_SESSION_ACTION_RECEIVED,     /* .packet (borrowed): the session takes it: count
                                          * it, emit ::packet. Runs user code: if the
                                          * runtime's close began meanwhile (a handler that
                                          * iterated the context), the executor carries out
                                          * none of the actions left */
  ENGINE_IO_SESSION_ACTION_SEND,         /* .packet (owned: the executor takes it, else
                                          * engine_io_session_actions_clear() drops it):
                                          * queue it for the client */
  ENGINE_IO_SESSION_ACTION_HEARTBEAT,    /* ::heartbeat; .rtt_us >= 0: a v4 round trip to
                                          * record first (-1: none, v3) */
  ENGINE_IO_SESSION_ACTION_DELIVER,      /* .packet (borrowed): a message for the application
                                          * (::message or the receive queue) */
  ENGINE_IO_SESSION_ACTION_CLOSE,        /* .reason, .description (static or NULL),
                                          * .client_closed: close the session. Always the
                                          * last action; the machine is CLOSED already
                                          * (the upgrade is settled by the CLOSE input the
                                          * runtime's close feeds) */
  ENGINE_IO_SESSION_ACTION_SEND_ON_PROBE,     /* .packet (owned, as SEND's): write it on the
                                               * probe (`3probe`) */
  ENGINE_IO_SESSION_ACTION_RELEASE_POLL_NOOP, /* polls get a noop from now on (the locked
                                               * upgrading flag); the waiting one is
                                               * answered with one */
  ENGINE_IO_SESSION_ACTION_EMIT_UPGRADING,    /* ::upgrading (runs user code; last) */
  ENGINE_IO_SESSION_ACTION_COMPLETE_UPGRADE,  /* .closing: the probe is the transport now:
                                               * open: a waiting poll gets a noop, counters,
                                               * ::upgrade, what was queued goes out on it;
                                               * closing: what was queued, then its close
                                               * frame (unless the last poll took the session
                                               * first). Last */
  ENGINE_IO_SESSION_ACTION_GIVE_UP_PROBE,     /* .code (0: none, the probe is gone),
                                               * .description (static or NULL): close the
                                               * probe; polling goes on */
  ENGINE_IO_SESSION_ACTION_MARK_FINISHES_CLOSE, /* the poll responses being written (the
                                                 * linger's .writing) finish the close when
                                                 * their request ends: carried out under the
                                                 * lock the linger flag was claimed under */
  ENGINE_IO_SESSION_ACTION_FINISH_CLOSE,      /* end the session
                                               * (engine_io_socket_finish_close(), which feeds
                                               * FINISHED). Once, last; no closing timer is
                                               * armed */
} EngineIOSessionActionKind;

typedef struct
{
  EngineIOSessionActionKind   kind;
  EngineIOSessionTimer        timer;          /* TIMER_START, TIMER_STOP */
  EngineIOSessionCloseReason  reason;         /* CLOSE */
  gboolean                    client_closed;  /* CLOSE: the client sent a close packet */
  gboolean                    closing;        /* COMPLETE_UPGRADE: on a probe kept through
                                               * a close */
  guint16                     code;           /* GIVE_UP_PROBE */
  gint64                      deadline_us;    /* TIMER_START */
  gint64                      rtt_us;         /* HEARTBEAT */
  EngineIOPacket             *packet;         /* RECEIVED, SEND, DELIVER, SEND_ON_PROBE */
  const char                 *description;    /* CLOSE, GIVE_UP_PROBE */
} EngineIOSessionAction;

/* The most actions one input produces: a v3 ping (RECEIVED, TIMER_START,
 * SEND, HEARTBEAT) and a v4 pong (RECEIVED, TIMER_STOP, TIMER_START,
 * HEARTBEAT); a close is RECEIVED, at most one TIMER_STOP (one heartbeat
 * timer is armed while open; the upgrade timer is the CLOSE input's),
 * CLOSE. The upgrade's: `2probe` is SEND_ON_PROBE, RELEASE_POLL_NOOP,
 * EMIT_UPGRADING; `5` and a probe given up are TIMER_STOP upgrade and one
 * more; the CLOSE input is at most two TIMER_STOPs (a heartbeat timer,
 * the upgrade's), GIVE_UP_PROBE, then a closing timer's TIMER_START or
 * FINISH_CLOSE; FINISHED is at most three TIMER_STOPs and GIVE_UP_PROBE.
 * Checked when an action is added, and by fuzz-session. No more: the
 * array is on the session thread's stack. */
#define ENGINE_IO_SESSION_MAX_ACTIONS 4

/* Caller-owned, on the stack: nothing is allocated to hand actions out. */
typedef struct
{
  guint                 len;
  guint                 n_send;   /* SEND and SEND_ON_PROBE actions among them (their
                                 * packets are owned) */
  EngineIOSessionAction actions[ENGINE_IO_SESSION_MAX_ACTIONS];
} EngineIOSessionActions;

/* The durations a session's machine times, in ms. Shared: the server
 * keeps one for all its sessions (in its configuration snapshot) and each
 * machine points at it; it must outlive them and not change while they use it. */
typedef struct
{
  guint ping_interval_ms;    /* the handshake's pingInterval */
  guint ping_timeout_ms;     /* and pingTimeout */
  guint ping_grace_ms;       /* added to the client's deadlines */
  guint upgrade_timeout_ms;  /* a probe's deadline (from its attach to the client's `5`) */
  guint close_linger_ms;     /* how long a closing polling session waits for its last
                              * poll (at most ping_timeout_ms), and how long a server
                              * shutdown gives a closing session's poll response to be
                              * written */
  guint close_write_ms;      /* how long a closing session's poll response may take to
                              * be written, from the linger's end (libmicrohttpd's
                              * timeout is for inactivity: a client reading a little,
                              * often, would hold the session) */
} EngineIOSessionTimings;

/* Embedded in its owner (no allocation), one per session: kept small (the
 * enums are stored in bytes; idle memory per session is a benchmark figure).
 * The fields are the machine's: read them through the getters. */
typedef struct
{
  const EngineIOSessionTimings *timings;      /* borrowed (see EngineIOSessionTimings) */
  gint64                  ping_sent_us;        /* v4: when the outstanding ping went out */
  guint8                  state;               /* EngineIOSessionState */
  guint8                  version;             /* EngineIOProtocolVersion */
  guint8                  upgrade;             /* EngineIOSessionUpgrade */
  guint8                  closing;             /* EngineIOSessionClosing */
  guint8                  armed;               /* bit per EngineIOSessionTimer */
  guint8                  shutdown;            /* a server shutdown reached the close */
  guint8                  ping_outstanding;    /* v4: a ping went out, its pong has not come */
} EngineIOSessionMachine;

G_STATIC_ASSERT (ENGINE_IO_SESSION_N_TIMERS <= 8);

/* engine_io_session_machine_init:
 * @machine: the machine to set up (NEW)
 * @version: the session's protocol version
 * @timings: (not nullable): the durations it times; borrowed: it must
 *   outlive @machine, unchanged
 */
void engine_io_session_machine_init   (EngineIOSessionMachine       *machine,
                                       EngineIOProtocolVersion       version,
                                       const EngineIOSessionTimings *timings);

/* engine_io_session_machine_handle:
 * @machine: a machine
 * @input: what happened
 * @now_us: the monotonic time, in microseconds
 * @out: (out caller-allocates): the actions, in the order to carry them
 *   out (its previous contents are overwritten; release it with
 *   engine_io_session_actions_clear())
 *
 * Feeds @input to @machine. The actions for a packet are computed when it
 * is fed; the executor runs them in order.
 */
void engine_io_session_machine_handle (EngineIOSessionMachine      *machine,
                                       const EngineIOSessionInput  *input,
                                       gint64                       now_us,
                                       EngineIOSessionActions      *out);

/* engine_io_session_actions_clear:
 * @actions: actions from engine_io_session_machine_handle()
 *
 * Drops the packets of SEND actions the executor did not take (set to
 * %NULL), and empties @actions.
 */
void engine_io_session_actions_clear  (EngineIOSessionActions      *actions);

static inline EngineIOSessionState
engine_io_session_machine_get_state (const EngineIOSessionMachine *machine)
{
  return machine->state;
}

/* Whether @timer is armed (started, not stopped, not fired). */
static inline gboolean
engine_io_session_machine_timer_armed (const EngineIOSessionMachine *machine,
                                       EngineIOSessionTimer          timer)
{
  return (machine->armed & (1u << timer)) != 0;
}

static inline EngineIOSessionUpgrade
engine_io_session_machine_get_upgrade (const EngineIOSessionMachine *machine)
{
  return machine->upgrade;
}

static inline EngineIOSessionClosing
engine_io_session_machine_get_closing (const EngineIOSessionMachine *machine)
{
  return machine->closing;
}

/* v4: whether a ping is waiting for its pong. */
static inline gboolean
engine_io_session_machine_ping_outstanding (const EngineIOSessionMachine *machine)
{
  return machine->ping_outstanding;
}

const char *engine_io_session_action_kind_to_string (EngineIOSessionActionKind kind);
const char *engine_io_session_timer_to_string       (EngineIOSessionTimer      timer);
const char *engine_io_session_upgrade_to_string     (EngineIOSessionUpgrade    upgrade);
const char *engine_io_session_closing_to_string     (EngineIOSessionClosing    closing);

G_END_DECLS
