/* engineio-session-machine-private.h: an Engine.IO session as a state machine
 *
 * Inputs in, actions out. No threads, no GMainContext, no clock (the time
 * is an argument), no sockets, no libmicrohttpd, no WebSocket I/O, no
 * signals: the caller (the runtime's EngineIOSocket, the executor) carries
 * the actions out. Not thread-safe: the caller serializes the calls (today
 * they all come from the session context).
 *
 * This is the first slice of the machine (issue 14): the heartbeat (both
 * protocol versions) and the rules for a packet the client sent, at its
 * delivery in the session context. What a polling request gets is the
 * sibling engineio-session-polling-private.h (pure rules the serving
 * thread asks). The send queue, the upgrade and the close's linger are
 * still the runtime's.
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
                               * no timer armed, nothing more happens */
} EngineIOSessionState;

typedef enum
{
  ENGINE_IO_SESSION_TIMER_PING,       /* v4: send the next ping */
  ENGINE_IO_SESSION_TIMER_HEARTBEAT,  /* v4: the pong's deadline; v3: the session's expiry */
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

typedef enum
{
  ENGINE_IO_SESSION_INPUT_START,    /* the session is open (the open packet is queued) */
  ENGINE_IO_SESSION_INPUT_PACKET,   /* .packet (borrowed): a packet from the client, at its
                                     * delivery in the session context; .close_requested */
  ENGINE_IO_SESSION_INPUT_TIMER,    /* .timer: an armed timer's deadline came */
  ENGINE_IO_SESSION_INPUT_CLOSE,    /* the session closes (any reason, either side): the
                                     * runtime's close began. Answered with TIMER_STOPs
                                     * only (engineio-socket-close.c relies on it) */
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
                                          * last action; the machine is CLOSED already */
} EngineIOSessionActionKind;

typedef struct
{
  EngineIOSessionActionKind   kind;
  EngineIOSessionTimer        timer;          /* TIMER_START, TIMER_STOP */
  EngineIOSessionCloseReason  reason;         /* CLOSE */
  gboolean                    client_closed;  /* CLOSE: the client sent a close packet */
  gint64                      deadline_us;    /* TIMER_START */
  gint64                      rtt_us;         /* HEARTBEAT */
  EngineIOPacket             *packet;         /* RECEIVED, SEND, DELIVER */
  const char                 *description;    /* CLOSE */
} EngineIOSessionAction;

/* The most actions one input produces: a v3 ping (RECEIVED, TIMER_START,
 * SEND, HEARTBEAT) and a v4 pong (RECEIVED, TIMER_STOP, TIMER_START,
 * HEARTBEAT); a close is RECEIVED, at most one TIMER_STOP (one timer is
 * armed while open), CLOSE. Checked when an action is added, and by
 * fuzz-session. No more: the array is on the session thread's stack. */
#define ENGINE_IO_SESSION_MAX_ACTIONS 4

/* Caller-owned, on the stack: nothing is allocated to hand actions out. */
typedef struct
{
  guint                 len;
  guint                 n_send;   /* SEND actions among them (their packets are owned) */
  EngineIOSessionAction actions[ENGINE_IO_SESSION_MAX_ACTIONS];
} EngineIOSessionActions;

/* Embedded in its owner (no allocation). The fields are the machine's:
 * read them through the getters. */
typedef struct
{
  EngineIOSessionState    state;
  EngineIOProtocolVersion version;
  guint                   ping_interval_ms;
  guint                   ping_timeout_ms;
  guint                   ping_grace_ms;       /* added to the client's deadlines */
  guint                   armed;               /* bit per EngineIOSessionTimer */
  gboolean                ping_outstanding;    /* v4: a ping went out, its pong has not come */
  gint64                  ping_sent_us;        /* v4: when it went out */
} EngineIOSessionMachine;

/* engine_io_session_machine_init:
 * @machine: the machine to set up (NEW)
 * @version: the session's protocol version
 * @ping_interval_ms, @ping_timeout_ms: the handshake's pingInterval and pingTimeout
 * @ping_grace_ms: what the server adds to the client's deadlines
 */
void engine_io_session_machine_init   (EngineIOSessionMachine  *machine,
                                       EngineIOProtocolVersion  version,
                                       guint                    ping_interval_ms,
                                       guint                    ping_timeout_ms,
                                       guint                    ping_grace_ms);

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

/* v4: whether a ping is waiting for its pong. */
static inline gboolean
engine_io_session_machine_ping_outstanding (const EngineIOSessionMachine *machine)
{
  return machine->ping_outstanding;
}

const char *engine_io_session_action_kind_to_string (EngineIOSessionActionKind kind);
const char *engine_io_session_timer_to_string       (EngineIOSessionTimer      timer);

G_END_DECLS
