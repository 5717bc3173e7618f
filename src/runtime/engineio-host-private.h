/* engineio-host-private.h: what the shipped libmicrohttpd host needs of
 * the host seam beyond its public API (engineio-host.h)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-host.h"
#include "engineio-socket-private.h"

G_BEGIN_DECLS

/* A waiting poll, for a host that watches the connections of waiting
 * polls from a thread of its own (the libmicrohttpd host's watcher), where
 * engine_io_host_request_client_gone() (serving thread only) cannot be
 * called. */
typedef struct
{
  EngineIOSocket *socket;  /* owned: the poll's session */
  gpointer        req;     /* never dereferenced: the session checks it */
  gsize           serial;  /* the request's, against reuse of its address */
} EngineIOHostPoll;

gboolean engine_io_host_request_get_waiting_poll  (EngineIOHostRequest *self,
                                                   EngineIOHostPoll    *poll);
gboolean engine_io_host_poll_client_gone          (EngineIOHostPoll    *poll);
void     engine_io_host_poll_clear                (EngineIOHostPoll    *poll);

void     engine_io_host_request_attach_descriptor (EngineIOHostRequest *self,
                                                   int                  fd,
                                                   gconstpointer        extra,
                                                   gsize                extra_size,
                                                   GDestroyNotify       release,
                                                   gpointer             release_data);
void     engine_io_host_request_finished_resumed  (EngineIOHostRequest *self,
                                                   gboolean             completed);
void     engine_io_host_request_borrow_server     (EngineIOHostRequest *self);

G_END_DECLS
