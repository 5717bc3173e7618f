/* engineio-peer.c: has the client closed its connection? (see the header)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* POLLRDHUP: as its callers (engineio-http.c, engineio-soup.c) */
#endif
#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "engineio-peer-private.h"

gboolean
engine_io_peer_closed (const struct pollfd *p)
{
  if (p->revents & ENGINE_IO_PEER_CLOSED_EVENTS)
    return TRUE;
#ifdef POLLRDHUP
  return FALSE;
#else
  if (!(p->revents & POLLIN))
    return FALSE;
  {
    char byte;
    ssize_t n;

    do
      n = recv (p->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
#endif
}

gboolean
engine_io_fd_closed_by_peer (int fd)
{
  struct pollfd p;
  int ret;

  p.fd = fd;
  p.events = POLLIN | ENGINE_IO_PEER_CLOSED_EVENTS;
  p.revents = 0;
  do
    ret = poll (&p, 1, 0);
  while (ret < 0 && errno == EINTR);
  return ret > 0 && engine_io_peer_closed (&p);
}
