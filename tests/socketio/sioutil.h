/* sioutil.h: a raw Socket.IO v5 client over an Engine.IO WebSocket
 * (tests/wsutil.h), shared by the Socket.IO server tests.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

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

G_END_DECLS
