/* sioutil.h: a raw Socket.IO v5 client over an Engine.IO WebSocket
 * (tests/wsutil.h), and SioLoopback, the server fixture, shared by the
 * Socket.IO server tests.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <json-glib/json-glib.h>

#include "wsutil.h"
#include "socketio/socketio.h"

G_BEGIN_DECLS

/* An Engine.IO (protocol @eio) WebSocket session to 127.0.0.1:@port
 * whose open packet was read; NULL (and the test failed) otherwise. */
TestWs   *sio_ws_open (guint       port,
                       int         eio);
/* Sends one Socket.IO packet (text, without Engine.IO's "4"). */
gboolean  sio_send    (TestWs     *ws,
                       const char *packet);
/* The next Socket.IO message: text without Engine.IO's "4" (pings are
 * answered on the way), or for a binary message "<bin:HEX>". NULL on
 * timeout or close. */
char     *sio_next    (TestWs     *ws,
                       guint       timeout_ms);
/* Fails the test unless the next message (within TEST_TIMEOUT_MS) is
 * @expected. */
void      expect_next (TestWs     *ws,
                       const char *expected);
/* Fails the test if a message comes on @ws within a short quiet period
 * (300 ms: a duplicate would come right after the first copy). */
void      sio_expect_quiet (TestWs *ws);
/* Sends the Socket.IO packets of the NULL-terminated list in one write
 * (one masked WebSocket frame each). */
gboolean  sio_send_batch (TestWs      *ws,
                          const char **packets);

/* Sends a CONNECT to @nsp ("/" or another) with @auth (JSON text, or
 * NULL) and reads the reply: TRUE if it is a CONNECT with a sid (stored
 * in @sid, and the "pid" member, NULL when absent, in @pid, if given);
 * otherwise FALSE and the test failed. */
gboolean  sio_connect (TestWs      *ws,
                       const char  *nsp,
                       const char  *auth,
                       char       **sid,
                       char       **pid);
/* Fails the test unless the next message (within TEST_TIMEOUT_MS)
 * starts with @prefix. */
void      sio_expect_prefix (TestWs     *ws,
                             const char *prefix);
/* Whether the connection is closed within @timeout_ms (frames on the
 * way are dropped). */
gboolean  sio_wait_closed (TestWs *ws,
                           guint   timeout_ms);

/* ------------------------------------------------------------------ */
/* The server fixture of the Socket.IO suites                           */
/* ------------------------------------------------------------------ */

typedef struct _SioLoopback SioLoopback;

/* Called from a watched namespace's ::connection (in the socket's
 * context), after the connection was recorded and the recorder's
 * handlers connected: the suite's own handlers. */
typedef void (*SioLoopbackSocketFunc) (SioLoopback    *loopback,
                                       SocketIOSocket *socket,
                                       gpointer        user_data);

/* An EngineIOServer (test_server_new ()) on 127.0.0.1 port 0 with a
 * SocketIOServer on it, and one recorder of what happens on the
 * namespaces watched (sio_loopback_of (), sio_loopback_watch_dynamic ()):
 *   "new-namespace <nsp>"          a dynamic namespace created
 *   "connect <nsp> <sid> <auth>"   ::connection; auth as JSON ("null")
 *   "event <nsp> <name> <args>"    ::event; args as JSON, then " +<n>"
 *                                  with n > 0 binary attachments, then
 *                                  " ack" when the client wants one
 *   "disconnect <nsp> <reason> rooms=<n>"
 *                                  ::disconnect; n: the rooms the socket
 *                                  is still in (0: it left them first) */
struct _SioLoopback
{
  EngineIOServer        *engine;   /* set its properties before listening */
  SocketIOServer        *sio;
  guint                  port;     /* set by sio_loopback_listen () */
  TestRecorder          *rec;

  /* Set before listening; read in the sessions' contexts. */
  SioLoopbackSocketFunc  on_connection;  /* optional */
  gpointer               user_data;
};

/* The engine, the SocketIOServer on it (then given the NULL-terminated
 * list of properties, if any) and the recorder. */
void               sio_loopback_init  (SioLoopback *loopback,
                                       ...) G_GNUC_NULL_TERMINATED;
/* socket_io_server_of () (a new reference), its sockets recorded. */
SocketIONamespace *sio_loopback_of    (SioLoopback *loopback,
                                       const char  *name);
/* Records the dynamic namespaces created from now on, and their sockets. */
void               sio_loopback_watch_dynamic (SioLoopback *loopback);
/* test_server_listen (); FALSE (and the test failed) if it could not. */
gboolean           sio_loopback_listen (SioLoopback *loopback);
/* Closes the engine (if not done) and frees everything; each member may
 * have been cleared by the test. */
void               sio_loopback_clear (SioLoopback *loopback);
/* An Engine.IO v4 WebSocket session to the server, no CONNECT sent yet;
 * NULL (and the test failed) if it did not open. */
TestWs            *sio_loopback_open  (SioLoopback *loopback);
/* sio_loopback_open () and sio_connect () to @nsp without auth (the sid
 * in @sid if given); NULL (and the test failed) otherwise. */
TestWs            *sio_loopback_client (SioLoopback *loopback,
                                        const char  *nsp,
                                        char       **sid);
/* A SocketIONamespaceFunc that accepts every name: with
 * socket_io_server_set_namespace_func (), any namespace is created on
 * its first CONNECT. */
gboolean           sio_accept_any_namespace (SocketIOServer *server,
                                             const char     *name,
                                             JsonNode       *auth,
                                             gpointer        user_data);
/* Waits up to TEST_TIMEOUT_MS for the recorded @format (printf-style);
 * fails the test (listing what was recorded) otherwise. */
#define sio_loopback_expect(loopback, ...) \
  test_recorder_expect ((loopback)->rec, TEST_TIMEOUT_MS, __VA_ARGS__)
/* Waits for "event <nsp> <name> <args>" (see above). */
#define sio_loopback_expect_event(loopback, nsp, name, args) \
  sio_loopback_expect ((loopback), "event %s %s %s", (nsp), (name), (args))

/* @array as JSON text. */
char       *json_of_array (JsonArray *array);
/* @node as JSON text ("null" for NULL). */
char       *json_of_node (JsonNode  *node);
/* The string at @i of @args, or NULL (absent or not a string). */
const char *arg_string   (JsonArray *args,
                          guint      i);

G_END_DECLS
