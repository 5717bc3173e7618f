/* engineio-session-polling.c: what a polling request of a session gets
 *
 * Pure functions of a snapshot (GLib only); the rules' table is in
 * engineio-session-polling-private.h, the runtime that carries the
 * verdicts out in src/runtime/engineio-socket-polling.c (and
 * engineio-socket-queue.c for waking a poll).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-session-polling-private.h"

/* Closed by the application or a shutdown, a poll still to take the last
 * packets: a POST is read and answered `ok`, its packets dropped. A
 * session closed for its client's error, a timeout or the client's own
 * close is gone for that client, as in the reference (its socket is
 * removed at once): a client that goes on POSTing to it while a poll
 * response waits to be written must not have its bodies read and
 * acknowledged. */
static gboolean
closing_takes_posts (const EngineIOPollingView *view)
{
  return view->state == ENGINE_IO_POLLING_CLOSING && view->closed_for_application;
}

EngineIOPollVerdict
engine_io_polling_decide_poll (const EngineIOPollingView *view)
{
  /* The last poll of a closed session: what was queued, then `1`. */
  if (view->state == ENGINE_IO_POLLING_CLOSING && view->lingering && !view->poll_waiting)
    return ENGINE_IO_POLL_LAST;
  if (view->state != ENGINE_IO_POLLING_OPEN)
    return ENGINE_IO_POLL_UNKNOWN_SID;
  /* PROTOCOL.md, Long-polling: a second concurrent GET gets 400, the
   * first `1`, and the session is closed. */
  if (view->poll_waiting)
    return ENGINE_IO_POLL_OVERLAP;
  /* PROTOCOL.md, Upgrade 2: any GET that arrives before the upgrade ends
   * is answered `6`; what is queued waits for the WebSocket. */
  if (view->upgrading)
    return ENGINE_IO_POLL_NOOP;
  /* Not while another poll response is being written: it would reorder. */
  if (view->queued && !view->poll_in_flight)
    return ENGINE_IO_POLL_PACKETS;
  /* Nothing to send: wait without holding a worker. */
  return ENGINE_IO_POLL_SUSPEND;
}

EngineIOPollVerdict
engine_io_polling_decide_resumed (const EngineIOPollingView *view,
                                  gboolean                   answer_noop)
{
  if (answer_noop)
    return ENGINE_IO_POLL_NOOP;
  /* Closing: this is the last poll, it takes everything, and the session
   * ends with its response. */
  if (view->state == ENGINE_IO_POLLING_CLOSING)
    return ENGINE_IO_POLL_LAST;
  return ENGINE_IO_POLL_PACKETS;
}

gboolean
engine_io_polling_wakes_poll (const EngineIOPollingView *view,
                              gboolean                   poll_suspended)
{
  /* Not while another poll response is being written, but to close; not
   * during an upgrade (the poll was, or will be, answered `6`). */
  return view->poll_waiting && poll_suspended && !view->upgrading &&
         (!view->poll_in_flight || view->state != ENGINE_IO_POLLING_OPEN);
}

gboolean
engine_io_polling_written_kicks (const EngineIOPollingView *view)
{
  return !view->poll_in_flight && view->state == ENGINE_IO_POLLING_OPEN && view->queued;
}

EngineIOPostVerdict
engine_io_polling_decide_post (const EngineIOPollingView *view)
{
  if (view->state != ENGINE_IO_POLLING_OPEN && !closing_takes_posts (view))
    return ENGINE_IO_POST_UNKNOWN_SID;
  /* PROTOCOL.md, Long-polling: a second concurrent POST gets 400 and the
   * session is closed. */
  if (view->post_active)
    return ENGINE_IO_POST_OVERLAP;
  return ENGINE_IO_POST_ACCEPT;
}

EngineIOPostRoundVerdict
engine_io_polling_decide_post_round (const EngineIOPollingView *view)
{
  /* As the reference's transport, which answers `ok` until the socket is
   * gone: a 400 here made the client fail its transport and never take
   * the last packets (a heartbeat answer crossing the application's close
   * lost them). */
  if (closing_takes_posts (view))
    return ENGINE_IO_POST_ROUND_OK;
  if (view->state != ENGINE_IO_POLLING_OPEN)
    return ENGINE_IO_POST_ROUND_UNKNOWN_SID;
  /* Back-pressure: the rest of the body waits. */
  if (view->input_over)
    return ENGINE_IO_POST_ROUND_HOLD;
  return ENGINE_IO_POST_ROUND_READ;
}

gboolean
engine_io_polling_gone_closes (const EngineIOPollingView *view,
                               gboolean                   answer_noop)
{
  /* As the reference when a waiting poll's connection closes, unless the
   * session is moving to a WebSocket (or has moved). */
  return view->state == ENGINE_IO_POLLING_OPEN && !view->upgrading && !answer_noop && view->polling;
}

EngineIOCloseVerdict
engine_io_polling_decide_close (const EngineIOPollingView *view,
                                gboolean                   shutdown,
                                gboolean                   client_closed,
                                gboolean                   poll_released,
                                gboolean                   poll_suspended,
                                gboolean                   websocket)
{
  /* A poll already released to answer `6` (an upgrade) carries nothing
   * more: it is not waiting. */
  gboolean waiting = view->poll_waiting && !view->upgrading && !poll_released;

  if (waiting && client_closed && poll_suspended)
    return ENGINE_IO_CLOSE_POLL_NOOP;
  if (waiting)
    return ENGINE_IO_CLOSE_POLL_LAST;
  /* An application close waits for the next poll to say `1` (the
   * reference's shouldClose), a shutdown only if there is something left
   * to deliver (or a poll response still being written, taken while the
   * session was open: ending now would report what it carries as not
   * delivered while it is on its way, and its client would never hear
   * `1`). */
  if (!websocket && view->polling && view->closed_for_application &&
      (!shutdown || view->queued || view->poll_in_flight))
    return ENGINE_IO_CLOSE_LINGER;
  return ENGINE_IO_CLOSE_NOW;
}

const char *
engine_io_close_verdict_to_string (EngineIOCloseVerdict verdict)
{
  switch (verdict)
    {
    case ENGINE_IO_CLOSE_POLL_NOOP: return "poll-noop";
    case ENGINE_IO_CLOSE_POLL_LAST: return "poll-last";
    case ENGINE_IO_CLOSE_LINGER: return "linger";
    case ENGINE_IO_CLOSE_NOW: return "now";
    default: return "?";
    }
}

const char *
engine_io_poll_verdict_to_string (EngineIOPollVerdict verdict)
{
  switch (verdict)
    {
    case ENGINE_IO_POLL_LAST: return "last";
    case ENGINE_IO_POLL_UNKNOWN_SID: return "unknown-sid";
    case ENGINE_IO_POLL_OVERLAP: return "overlap";
    case ENGINE_IO_POLL_NOOP: return "noop";
    case ENGINE_IO_POLL_PACKETS: return "packets";
    case ENGINE_IO_POLL_SUSPEND: return "suspend";
    default: return "?";
    }
}

const char *
engine_io_post_verdict_to_string (EngineIOPostVerdict verdict)
{
  switch (verdict)
    {
    case ENGINE_IO_POST_UNKNOWN_SID: return "unknown-sid";
    case ENGINE_IO_POST_OVERLAP: return "overlap";
    case ENGINE_IO_POST_ACCEPT: return "accept";
    default: return "?";
    }
}

const char *
engine_io_post_round_verdict_to_string (EngineIOPostRoundVerdict verdict)
{
  switch (verdict)
    {
    case ENGINE_IO_POST_ROUND_OK: return "ok";
    case ENGINE_IO_POST_ROUND_UNKNOWN_SID: return "unknown-sid";
    case ENGINE_IO_POST_ROUND_HOLD: return "hold";
    case ENGINE_IO_POST_ROUND_READ: return "read";
    default: return "?";
    }
}
