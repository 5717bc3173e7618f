/* engineio-peer-private.h: has the client closed its connection?
 *
 * Shared by the hosts (engineio-http.c, engineio-soup.c): a request
 * waiting on a connection (a suspended poll) has nothing more to read but
 * pipelined requests, so a FIN or a reset can be told from data without
 * reading any.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>
#include <poll.h>

G_BEGIN_DECLS

#ifdef POLLRDHUP
#define ENGINE_IO_PEER_CLOSED_EVENTS (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)
#else
#define ENGINE_IO_PEER_CLOSED_EVENTS (POLLHUP | POLLERR | POLLNVAL)
#endif

/* Whether poll() (asked for POLLIN | ENGINE_IO_PEER_CLOSED_EVENTS) saw the
 * peer close its side (FIN) or the connection fail (RST). Without
 * POLLRDHUP a readable descriptor is looked at closer: an end of stream
 * reads 0. Any thread. */
gboolean engine_io_peer_closed       (const struct pollfd *p);
/* The same for @fd now, without waiting. Any thread. */
gboolean engine_io_fd_closed_by_peer (int                  fd);

G_END_DECLS
