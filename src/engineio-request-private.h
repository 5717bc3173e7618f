/* engineio-request-private.h: the protocol core's view of an HTTP request
 *
 * The protocol core (engineio-server*.c, engineio-socket.c) never includes
 * <microhttpd.h>: it sees requests through this small interface. An adapter
 * (engineio-http.c for libmicrohttpd; the request fuzzer for tests) embeds
 * EngineIORequest as the first member of its own struct, fills the
 * immutable fields, and calls the engine_io_server_request_*() entry points
 * (engineio-server-private.h) on the thread that serves the request.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>
#include "engineio-packet.h"

G_BEGIN_DECLS

typedef struct _EngineIORequest        EngineIORequest;
typedef struct _EngineIORequestVTable  EngineIORequestVTable;
typedef struct _EngineIOSocket         EngineIOSocket;

typedef enum
{
  ENGINE_IO_REQUEST_NEW,        /* not yet seen by the core */
  ENGINE_IO_REQUEST_HANDSHAKE,  /* suspended until the admission job answers */
  ENGINE_IO_REQUEST_POLL,       /* a GET attached to a session */
  ENGINE_IO_REQUEST_POST,       /* a POST reading its body */
  ENGINE_IO_REQUEST_UPGRADE,    /* a WebSocket upgrade */
  ENGINE_IO_REQUEST_DONE,       /* a response was given */
} EngineIORequestKind;

struct _EngineIORequestVTable
{
  /* On the serving thread, inside a core entry point. @headers holds
   * name/value pairs (char*), may be NULL; the body is referenced. */
  void     (*respond) (EngineIORequest *req,
                       guint            status,
                       GPtrArray       *headers,
                       GBytes          *body);
  /* On the serving thread, inside a core entry point. */
  void     (*suspend) (EngineIORequest *req);
  /* Any thread: the adapter will call engine_io_server_request_resumed()
   * on its serving thread soon. Called at most once per suspend. */
  void     (*resume)  (EngineIORequest *req);
  /* On the serving thread, inside a core entry point: answer 101 with
   * @headers and, once the connection is switched, call
   * engine_io_socket_attach_websocket (@socket, fd, extra bytes, ...).
   * NULL when the adapter cannot upgrade. */
  gboolean (*upgrade) (EngineIORequest *req,
                       GPtrArray       *headers,
                       EngineIOSocket  *socket);
};

struct _EngineIORequest
{
  const EngineIORequestVTable *vtable;

  /* Filled by the adapter before the core sees the request; immutable. */
  char                *method;          /* owned */
  char                *path;            /* owned, without the query */
  GHashTable          *query;           /* owned: char* -> char*, decoded */
  GHashTable          *headers;         /* owned: lowercase name -> value (UTF-8) */
  char                *remote_address;  /* owned, numeric host; the core replaces it
                                         * once, in request_begin, behind a trusted proxy */
  gint64               content_length;  /* -1 when not given; G_MAXINT64 when larger */
  gboolean             malformed;       /* the adapter found a NUL in the query: the
                                         * core answers 400 (code 3, "Bad request") */
  gsize                serial;          /* unique per request object (init): tells a
                                         * request from a later one at the same address */

  /* Core state; the serving thread and, where said, the session lock. */
  EngineIORequestKind  kind;
  gboolean             begun;           /* counted in the server's active requests */
  EngineIOSocket      *socket;          /* (owned) the session this request serves */
  gboolean             suspended;       /* (socket lock) waiting for resume */
  gboolean             suspend_counted; /* in the server's suspended count (serving thread) */
  gboolean             carried_packets; /* the response held queued packets */
  gboolean             answer_noop;     /* (socket lock) resumed for an upgrade: answer `6` */
  gboolean             switched;        /* the connection became a WebSocket: nothing
                                         * left for the session when it finishes */
  gboolean             client_gone;     /* (socket lock) resumed because its client
                                         * closed the connection while it waited */
  GPtrArray           *flush_items;     /* (socket lock) the send items this poll
                                         * response carries: their callbacks learn at
                                         * the end of the request whether it was written */
  gboolean             inflight;        /* (socket lock) a poll response carrying packets,
                                         * not yet reported written (see
                                         * engine_io_socket_take_for_poll_locked()) */
  gboolean             finishes_close;  /* (socket lock) the last poll of a closing session
                                         * (or one being written when its linger ended): the
                                         * session ends when this response is done */
  gboolean             ws_deflate;      /* the upgrade accepted permessage-deflate */
  guint                ws_deflate_threshold; /* ... sending messages of this many bytes
                                         * or more compressed */
  gboolean             reject_ws;       /* an upgrade answered 101 only to close the
                                         * WebSocket: its session has one already */
  /* A response prepared by whoever resumed the request (admission job,
   * session close), given on resumption. */
  guint                prepared_status;
  GBytes              *prepared_body;
  char                *prepared_type;
  int                  prepared_code;     /* the Engine.IO code of a prepared refusal */
  char                *prepared_message;  /* owned; its message (NULL: not a refusal) */
  char                *set_cookie;      /* owned; handshake responses */
  gpointer             job;             /* (owned) a pending handshake job */
  /* The refusal given (an error status with an Engine.IO code), for
   * #EngineIOServer::connection-error; serving thread, or whoever
   * prepared the response before resuming the request. */
  guint                error_status;    /* 0: not refused */
  int                  error_code;
  char                *error_message;   /* owned */
  gboolean             error_reported;
  gpointer             server;          /* (unowned) EngineIOServer, set by request_begin */
  gboolean             is_handshake;    /* the request opens a session (if admitted) */
};

void engine_io_request_init  (EngineIORequest             *req,
                              const EngineIORequestVTable *vtable);
void engine_io_request_clear (EngineIORequest             *req);

G_END_DECLS
