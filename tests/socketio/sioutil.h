/* sioutil.h: a raw Socket.IO v5 client over an Engine.IO WebSocket
 * (tests/wsutil.h), shared by the Socket.IO server tests.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <json-glib/json-glib.h>

#include "wsutil.h"

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
/* An Engine.IO v4 WebSocket session to 127.0.0.1:@port connected to the
 * Socket.IO namespace @nsp ("/" or another): the CONNECT was answered
 * with a sid, else the test failed. NULL when the session did not open. */
TestWs   *sio_client_connect (guint       port,
                              const char *nsp);
/* Sends the Socket.IO packets of the NULL-terminated list in one write
 * (one masked WebSocket frame each). */
gboolean  sio_send_batch (TestWs      *ws,
                          const char **packets);

/* @array as JSON text. */
char       *json_of_array (JsonArray *array);
/* @node as JSON text ("null" for NULL). */
char       *json_of_node (JsonNode  *node);
/* The string at @i of @args, or NULL (absent or not a string). */
const char *arg_string   (JsonArray *args,
                          guint      i);

G_END_DECLS
