/* engineio-close-reason.c: the wording of a session's close reason
 *
 * On its own (not in engineio-socket.c) so that what only needs the words,
 * as the metrics do, does not depend on the session object.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket.h"

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
