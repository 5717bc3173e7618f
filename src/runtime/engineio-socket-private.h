/* engineio-socket-private.h: the session, as the protocol core drives it
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-socket.h"
#include "engineio-server-private.h"

G_BEGIN_DECLS

/* What the session needs from its server, given at creation: the session
 * files call no server file (tests/check-file-cycles.py). Both run in the
 * session's context, once per session. */
typedef struct
{
  /* engine_io_socket_start(): emits the server's ::connection. */
  void (*connection) (EngineIOServer *server,
                      EngineIOSocket *socket);
  /* The session has closed: the server forgets it (its max-sessions place
   * included) before ::close runs. */
  void (*finished)   (EngineIOServer *server,
                      EngineIOSocket *socket);
} EngineIOSocketOwner;

/* Session context, from the handshake job. Takes over @loop's use. The
 * socket attaches @handshake_request as its first poll (if any).
 * @counters: the server's (outlives the socket, which holds @server). */
EngineIOSocket *engine_io_socket_new                 (EngineIOServer            *server,
                                                      const EngineIOSocketOwner *owner,
                                                      EngineIOCounters          *counters,
                                                      EngineIOConfig    *config,
                                                      const char        *id,
                                                      EngineIOHandshake *handshake,
                                                      EngineIOLoop      *loop);
/* Session context: queues the open packet, emits ::connection, starts the
 * heartbeat and answers @first_poll (suspended) with what is queued. */
void            engine_io_socket_start               (EngineIOSocket    *self,
                                                      EngineIORequest   *first_poll);

/* Serving thread. */
void            engine_io_socket_handle_poll         (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
void            engine_io_socket_handle_poll_resumed (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
gboolean        engine_io_socket_begin_post          (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
void            engine_io_socket_handle_post         (EngineIOSocket    *self,
                                                      EngineIORequest   *req,
                                                      GBytes            *body);
/* A POST the session held (suspended) while it was over its memory bound:
 * reads the rest of its body, or holds it again. */
void            engine_io_socket_handle_post_resumed (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
void            engine_io_socket_end_post            (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
/* Any thread: the session has ended (socket_finish_close() ran); a
 * request still bound to it only holds a socket that is gone. */
gboolean        engine_io_socket_is_finished         (EngineIOSocket    *self);
void            engine_io_socket_poll_client_gone    (EngineIOSocket    *self,
                                                      EngineIORequest   *req);
/* Serving thread: a poll for this session came from a client that had
 * already closed its connection; it is not answered. Closes a polling
 * session (`transport close`). */
void            engine_io_socket_poll_gone_unanswered (EngineIOSocket   *self);
void            engine_io_socket_request_finished    (EngineIOSocket    *self,
                                                      EngineIORequest   *req,
                                                      gboolean           completed);

/* Any thread: the client of @req (a waiting poll of this session, seen
 * with @serial) closed its connection; resumes it if still suspended
 * (then the adapter closes it and calls
 * engine_io_server_request_client_gone()). */
gboolean        engine_io_socket_resume_gone_poll    (EngineIOSocket    *self,
                                                      EngineIORequest   *req,
                                                      gsize              serial);

/* Any thread (a server close that waited too long): takes the session's
 * waiting poll and held POST, if suspended, out of its hands (nobody else
 * resumes them then) and returns them (0 to 2) for the caller to answer
 * and resume. */
GPtrArray      *engine_io_socket_take_suspended      (EngineIOSocket    *self);

/* Serving thread: is a WebSocket request for this session answered 101?
 * *@out_reject: yes, but only to be closed at once (the session has a
 * WebSocket, or a probe, already; the reference does the same). */
gboolean        engine_io_socket_begin_upgrade       (EngineIOSocket    *self,
                                                      gboolean          *out_reject);

/* Any thread (the adapter's, once the connection switched). Takes @ws.
 * @reject: the request's reject_ws (the WebSocket is closed at once). */
typedef struct _EngineIOWebSocket EngineIOWebSocket;
void            engine_io_socket_attach_websocket    (EngineIOSocket    *self,
                                                      EngineIOWebSocket *ws,
                                                      gboolean           reject);
/* Any thread: the 101 for this session's WebSocket was never completed. */
void            engine_io_socket_upgrade_failed      (EngineIOSocket    *self);

/* Any thread. */
void            engine_io_socket_close_with_reason   (EngineIOSocket      *self,
                                                      EngineIOCloseReason  reason,
                                                      const char          *description);

G_END_DECLS
