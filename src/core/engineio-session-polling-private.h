/* engineio-session-polling-private.h: what a polling request of a session gets
 *
 * The rules of the polling transport as pure functions: the runtime takes
 * a snapshot of the session (EngineIOPollingView) under its lock, asks
 * the rule, and carries out the verdict under that same lock (taking
 * packets, suspending, resuming) and after it (responding, closing).
 * GLib only: no locks, no clock, no libmicrohttpd, no allocation.
 *
 * The session state machine (engineio-session-machine-private.h) runs in
 * the session context; these rules run on the thread serving the request
 * (libmicrohttpd workers answer polls without a thread hop), which is why
 * they are a sibling of the machine and keep no state of their own.
 *
 * The rules, in the order they are checked (each function below has its
 * table):
 *
 *  GET poll          closing, lingering, no poll waiting   LAST: queue + `1`, ends the session
 *                    not open                              400 unknown sid
 *                    a poll waiting                        OVERLAP: 400, session closed
 *                    upgrading                             NOOP: `6`
 *                    queued, no poll response in flight    PACKETS (up to POLL_MAX_PACKETS)
 *                    otherwise                             SUSPEND (waits, no worker held)
 *  resumed poll      released for an upgrade               NOOP: `6`
 *                    closing                               LAST: queue (nothing, `1`)
 *                    otherwise                             PACKETS
 *  wake a poll       suspended, not upgrading, and         resume it
 *  (packets queued)  no response in flight or not open
 *  POST begins       not open, unless closed by the        400 unknown sid
 *                    application or a shutdown
 *                    a POST active                         OVERLAP: 400, session closed
 *                    otherwise                             ACCEPT
 *  POST round        closed by the application/shutdown    OK: `ok`, packets dropped
 *                    not open                              400 unknown sid
 *                    over the input bound                  HOLD (suspended, not read)
 *                    otherwise                             READ a round
 *  poll written      open, queued, no other response       wake the waiting poll
 *                    in flight
 *  poll's client     open, polling, not upgrading, the     close `transport close`
 *  gone              poll not released for an upgrade
 *  the session       a poll waiting (not upgrading, not    POLL_NOOP: `6` for it, the
 *  closes            released) and the client sent `1`     session ends now
 *                    a poll waiting (idem)                 POLL_LAST: the queue and `1` on it
 *                    polling (no WebSocket), closed by     LINGER: the next poll (or a
 *                    the application, or by a shutdown     probe kept) takes the queue
 *                    with packets queued or in flight      and `1`
 *                    otherwise                             NOW (a WebSocket's close is
 *                                                          the caller's)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The session's lifecycle as the polling rules see it (the runtime's
 * SocketState, value for value). */
typedef enum
{
  ENGINE_IO_POLLING_OPENING,  /* created, not announced to the application yet */
  ENGINE_IO_POLLING_OPEN,
  ENGINE_IO_POLLING_CLOSING,  /* closed; a poll may still take the last packets */
  ENGINE_IO_POLLING_CLOSED,
} EngineIOPollingState;

/* A snapshot of what the rules read, taken under the session's lock. */
typedef struct
{
  EngineIOPollingState state;
  gboolean closed_for_application; /* CLOSING for the application's close or a server
                                    * shutdown (forced close, server shutting down):
                                    * the client did nothing wrong */
  gboolean lingering;        /* closing, waiting for one last poll */
  gboolean poll_waiting;     /* a GET is the session's active poll */
  gboolean post_active;      /* a POST is reading its body */
  gboolean upgrading;        /* the probe was answered: polls get a noop */
  gboolean polling;          /* the session's transport is polling (not upgraded) */
  gboolean queued;           /* packets wait in the send queue */
  gboolean poll_in_flight;   /* a poll response carrying packets is being written */
  gboolean input_over;       /* POST round: the session is over its input bound */
} EngineIOPollingView;

#define ENGINE_IO_POLLING_OVERLAPPING_GETS_DESCRIPTION "overlapping polls from the client"
#define ENGINE_IO_POLLING_OVERLAPPING_POSTS_DESCRIPTION "overlapping POST requests from the client"

typedef enum
{
  ENGINE_IO_POLL_LAST,         /* the last poll of a closing session: every queued packet,
                                * then `1`; the session ends with its response (GET: the
                                * lingering ends) */
  ENGINE_IO_POLL_UNKNOWN_SID,  /* 400 unknown sid */
  ENGINE_IO_POLL_OVERLAP,      /* 400 for it; the session closes (transport error,
                                * OVERLAPPING_GETS), which answers the waiting poll `1` */
  ENGINE_IO_POLL_NOOP,         /* `6`: an upgrade is under way */
  ENGINE_IO_POLL_PACKETS,      /* the queued packets, up to POLL_MAX_PACKETS */
  ENGINE_IO_POLL_SUSPEND,      /* becomes the active poll, suspended until woken */
} EngineIOPollVerdict;

typedef enum
{
  ENGINE_IO_POST_UNKNOWN_SID,  /* 400 unknown sid */
  ENGINE_IO_POST_OVERLAP,      /* 400 for it; the session closes (transport error,
                                * OVERLAPPING_POSTS) */
  ENGINE_IO_POST_ACCEPT,       /* becomes the active POST: its body is read */
} EngineIOPostVerdict;

typedef enum
{
  ENGINE_IO_POST_ROUND_OK,          /* `ok`, the rest of the body dropped, the POST ends */
  ENGINE_IO_POST_ROUND_UNKNOWN_SID, /* 400 unknown sid, the POST ends */
  ENGINE_IO_POST_ROUND_HOLD,        /* back-pressure: suspended, unanswered, until the
                                     * session has room */
  ENGINE_IO_POST_ROUND_READ,        /* read the next round of packets */
} EngineIOPostRoundVerdict;

/* A GET poll arrives. */
EngineIOPollVerdict      engine_io_polling_decide_poll       (const EngineIOPollingView *view);

/* A suspended poll was resumed (woken, closing, or released for an
 * upgrade: @answer_noop). */
EngineIOPollVerdict      engine_io_polling_decide_resumed    (const EngineIOPollingView *view,
                                                              gboolean                   answer_noop);

/* Packets were queued (or the session closes) while a poll waits
 * (@poll_suspended: it is still suspended): whether to resume it. */
gboolean                 engine_io_polling_wakes_poll        (const EngineIOPollingView *view,
                                                              gboolean                   poll_suspended);

/* A poll response carrying packets was written (or failed): whether the
 * waiting poll, if any, is to take what is queued now (then
 * engine_io_polling_wakes_poll() says if it is woken). */
gboolean                 engine_io_polling_written_kicks     (const EngineIOPollingView *view);

/* A POST arrives. */
EngineIOPostVerdict      engine_io_polling_decide_post       (const EngineIOPollingView *view);

/* The active POST is about to read its next round of packets. */
EngineIOPostRoundVerdict engine_io_polling_decide_post_round (const EngineIOPollingView *view);

/* The client of a poll went away without its response (@answer_noop: the
 * poll had been released for an upgrade): whether the session closes
 * (transport close). */
gboolean                 engine_io_polling_gone_closes       (const EngineIOPollingView *view,
                                                              gboolean                   answer_noop);

typedef enum
{
  ENGINE_IO_CLOSE_POLL_NOOP,   /* the client sent a close packet while its GET waits: the
                                * GET gets a noop (as the reference), the session ends now;
                                * what was queued is not delivered */
  ENGINE_IO_CLOSE_POLL_LAST,   /* the waiting poll carries what is queued, then `1` (the
                                * close packet is queued, the poll woken) */
  ENGINE_IO_CLOSE_LINGER,      /* no poll waiting: the next poll (or the `5` of a probe kept
                                * through the close) takes what is queued and `1`, for a
                                * while */
  ENGINE_IO_CLOSE_NOW,         /* nothing to wait for on polling */
} EngineIOCloseVerdict;

/* The session begins to close (@view taken with the state CLOSING and the
 * close's reason set: closed_for_application says whether it is the
 * application's close or a shutdown's). @shutdown: the close is a server
 * shutdown's; @client_closed: the client sent a close packet;
 * @poll_released: the waiting poll was released for an upgrade (it
 * answers `6`); @poll_suspended: the waiting poll is still suspended;
 * @websocket: a WebSocket (not a probe) carries the session. */
EngineIOCloseVerdict     engine_io_polling_decide_close      (const EngineIOPollingView *view,
                                                              gboolean                   shutdown,
                                                              gboolean                   client_closed,
                                                              gboolean                   poll_released,
                                                              gboolean                   poll_suspended,
                                                              gboolean                   websocket);

const char *engine_io_poll_verdict_to_string       (EngineIOPollVerdict      verdict);
const char *engine_io_close_verdict_to_string      (EngineIOCloseVerdict     verdict);
const char *engine_io_post_verdict_to_string       (EngineIOPostVerdict      verdict);
const char *engine_io_post_round_verdict_to_string (EngineIOPostRoundVerdict verdict);

G_END_DECLS
