/* wsutil.h: a raw WebSocket client and Engine.IO helpers for the tests
 *
 * The client speaks RFC 6455 by hand on a blocking GSocket, so the tests
 * can also send what a real client never would: unmasked frames, reserved
 * opcodes, fragments, control frames of any size. Every read has a
 * deadline; a write blocked for 10 s fails.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "testutil.h"

G_BEGIN_DECLS

typedef enum
{
  TEST_WS_CONTINUATION = 0x0,
  TEST_WS_TEXT         = 0x1,
  TEST_WS_BINARY       = 0x2,
  TEST_WS_CLOSE        = 0x8,
  TEST_WS_PING         = 0x9,
  TEST_WS_PONG         = 0xa,
} TestWsOpcode;

typedef enum
{
  TEST_WS_SEND_DEFAULT  = 0,
  TEST_WS_SEND_UNMASKED = 1 << 0,  /* no mask: a protocol violation from a client */
  TEST_WS_SEND_NOT_FIN  = 1 << 1,  /* a fragment that more frames continue */
  TEST_WS_SEND_RSV1     = 1 << 2,  /* the "compressed" bit, never negotiated */
} TestWsSendFlags;

typedef struct
{
  guint8    opcode;
  gboolean  fin;
  gboolean  masked;       /* a server must never mask */
  guint8    rsv;          /* RSV1..3 as bits 2..0 */
  GBytes   *payload;      /* unmasked */
  gint      close_code;   /* TEST_WS_CLOSE: the status code, -1 if the frame has none */
} TestWsFrame;

void         test_ws_frame_free (TestWsFrame *frame);
/* The payload as a NUL-terminated copy. */
char        *test_ws_frame_dup_text (TestWsFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestWsFrame, test_ws_frame_free)

typedef struct _TestWs TestWs;

/* From now on every connection of this client speaks TLS over its TCP
 * connection (a GTlsClientConnection that trusts only the CA in
 * @ca_file, checking the server's certificate for 127.0.0.1), or plain
 * TCP again with NULL. Each write of the client is then one or more TLS
 * records of its own (at most 16 KiB of payload each); each read returns
 * at most one record's payload. Off unless a test asks. */
void         test_ws_use_tls       (const char          *ca_file);
gboolean     test_ws_is_tls        (void);

/* Opens a TCP connection to 127.0.0.1:@port and sends a WebSocket opening
 * handshake for @target (path and query) with a random key, plus
 * @headers (NULL-terminated name, value pairs; one named like a default
 * header replaces it). For requests with headers missing, use
 * test_ws_connect_raw().
 *
 * @rcvbuf > 0 sets SO_RCVBUF before connecting (a slow reader).
 *
 * On a 101 with the right Sec-WebSocket-Accept, returns the client. On
 * any other answer returns NULL, sets @error, and stores the response in
 * @response if given. */
TestWs      *test_ws_connect       (guint                port,
                                    const char          *target,
                                    const char * const  *headers,
                                    gint                 rcvbuf,
                                    TestResponse       **response,
                                    GError             **error);
/* Like test_ws_connect() but sends @request as it is (the whole head,
 * ending in an empty line); the response is checked against @key when it
 * is a 101. */
TestWs      *test_ws_connect_raw   (guint                port,
                                    const char          *request,
                                    const char          *key,
                                    TestResponse       **response,
                                    GError             **error);
/* Like test_ws_connect_raw() on a TCP connection already open (plain
 * only), which the client then owns. */
TestWs      *test_ws_connect_raw_fd (int                 fd,
                                    const char          *request,
                                    const char          *key,
                                    TestResponse       **response,
                                    GError             **error);
void         test_ws_free          (TestWs              *ws);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestWs, test_ws_free)

/* A header of the 101 response (lowercase name), or NULL. */
const char  *test_ws_response_header (TestWs            *ws,
                                      const char        *name);
/* A fresh Sec-WebSocket-Key (16 random bytes, base64). */
char        *test_ws_make_key      (void);
/* The Sec-WebSocket-Accept a server must answer to @key, computed here. */
char        *test_ws_accept_for    (const char          *key);

gboolean     test_ws_send_frame    (TestWs              *ws,
                                    guint8               opcode,
                                    TestWsSendFlags      flags,
                                    const void          *data,
                                    gsize                length,
                                    GError             **error);
/* Masked, final text / binary frames; a failure fails the test. */
gboolean     test_ws_send_text     (TestWs              *ws,
                                    const char          *text);
gboolean     test_ws_send_binary   (TestWs              *ws,
                                    const void          *data,
                                    gsize                length);
/* A close frame with @code (and no reason). */
gboolean     test_ws_send_close    (TestWs              *ws,
                                    guint16              code);
/* The first byte of a frame: FIN, RSV1..3 (@rsv as bits 2..0) and the
 * opcode, any values, valid or not. */
#define TEST_WS_FIRST_BYTE(fin, rsv, opcode) \
  ((guint8) (((fin) ? 0x80 : 0) | (((rsv) & 0x07) << 4) | ((opcode) & 0x0f)))

/* Appends a frame header claiming @length payload bytes (the shortest
 * length encoding), masked with the 4 bytes at @mask, or unmasked if
 * @mask is NULL. For headers whose payload is never sent. */
void         test_ws_append_header (GByteArray          *out,
                                    guint8               first_byte,
                                    const guint8        *mask,
                                    guint64              length);
/* Appends a whole frame: @first_byte (see TEST_WS_FIRST_BYTE()), then
 * @data masked with a random key (or unmasked if !@masked). Frames are
 * built in a buffer so that a test can send several at once, or in
 * chops (test_ws_send_chopped()). */
void         test_ws_append_frame  (GByteArray          *out,
                                    guint8               first_byte,
                                    gboolean             masked,
                                    const void          *data,
                                    gsize                length);
/* Sends @data in writes of at most @chop bytes (0: one write), with
 * TCP_NODELAY set so that each write leaves as its own segment (over
 * TLS: as its own TLS record, in its own segment). */
gboolean     test_ws_send_chopped  (TestWs              *ws,
                                    const void          *data,
                                    gsize                length,
                                    gsize                chop,
                                    GError             **error);
/* The connection's TCP socket (for socket options; over TLS, the one
 * under the TLS connection). */
GSocket     *test_ws_get_socket    (TestWs              *ws);
/* Sends bytes as they are. */
gboolean     test_ws_send_raw      (TestWs              *ws,
                                    const void          *data,
                                    gsize                length,
                                    GError             **error);

/* The next frame within @timeout_ms. NULL with G_IO_ERROR_TIMED_OUT,
 * G_IO_ERROR_CONNECTION_CLOSED (EOF, or a reset), or
 * G_IO_ERROR_INVALID_DATA (a frame no server may send). */
TestWsFrame *test_ws_read_frame    (TestWs              *ws,
                                    guint                timeout_ms,
                                    GError             **error);
/* The next frame, which must be a final text frame; its text, or NULL
 * (and the test failed). */
char        *test_ws_read_text     (TestWs              *ws,
                                    guint                timeout_ms);
/* Whether a frame (or EOF) is readable within @timeout_ms. */
gboolean     test_ws_wait_readable (TestWs              *ws,
                                    guint                timeout_ms);
/* Reads until a close frame; returns its code (-1: no code in it), or
 * -2 on EOF without a close frame, -3 on timeout. Data frames read on
 * the way are appended to @skipped (TestWsFrame*) if given, and freed
 * otherwise. */
gint         test_ws_read_close    (TestWs              *ws,
                                    guint                timeout_ms,
                                    GPtrArray           *skipped);
/* Reads and drops everything until EOF; FALSE on timeout. */
gboolean     test_ws_wait_eof      (TestWs              *ws,
                                    guint                timeout_ms);
/* Closes the TCP connection without a close frame: with @reset, by an
 * RST (SO_LINGER 0); otherwise by an orderly FIN. */
void         test_ws_drop          (TestWs              *ws,
                                    gboolean             reset);

/* ------------------------------------------------------------------ */
/* Engine.IO over polling and WebSocket                                 */
/* ------------------------------------------------------------------ */

/* "/engine.io/?EIO=<eio>&transport=<transport>[&sid=<sid>]" */
char           *test_eio_target          (int                 eio,
                                          const char         *transport,
                                          const char         *sid);
/* The WebSocket session open every client shares: a direct Engine.IO
 * (protocol @eio) WebSocket to 127.0.0.1:@port (@headers, @rcvbuf as
 * test_ws_connect()) whose first frame, within @timeout_ms, is an open
 * packet in a final, unmasked text frame (parsed into @out_open if given).
 * NULL with @error otherwise. Never fails the test: any thread. */
TestWs         *test_eio_ws_open_try     (guint               port,
                                          int                 eio,
                                          const char * const *headers,
                                          gint                rcvbuf,
                                          guint               timeout_ms,
                                          TestOpenPacket    **out_open,
                                          GError            **error);
/* An Engine.IO (protocol @eio) WebSocket session to 127.0.0.1:@port whose
 * open packet was read; NULL (and the test failed) otherwise. */
TestWs         *test_eio_ws_open         (guint               port,
                                          int                 eio);
/* test_eio_ws_open() (v4), and the server's socket for it, popped from
 * @sockets (EngineIOSocket refs the test's ::connection handler pushes)
 * into @socket; NULL (and the test failed) otherwise. */
TestWs         *test_eio_ws_open_socket  (guint               port,
                                          GAsyncQueue        *sockets,
                                          gpointer           *socket);
/* The next Engine.IO message of @ws: text without its "4" (whole, U+0000
 * included, NUL-terminated) or, for a binary message, "<bin:HEX>"; pings
 * are answered on the way. NULL on timeout or close. */
char           *test_eio_ws_next         (TestWs             *ws,
                                          guint               timeout_ms);
/* The polling handshake every client shares: GET @target (NULL: the
 * default one of protocol @eio) within @timeout_ms. Returns the packets
 * of the answer, the open packet first (parsed into @out_open if given),
 * or NULL with @error unless the answer is a 200 (for v4 with Content-Type
 * text/plain; charset=UTF-8) whose payload starts with an open packet.
 * Never fails the test: any thread. */
GPtrArray      *test_eio_polling_handshake_try (TestHttp        *http,
                                                int              eio,
                                                const char      *target,
                                                guint            timeout_ms,
                                                TestOpenPacket **out_open,
                                                GError         **error);
/* The checks of test_eio_polling_handshake_try() on a response already
 * received (a caller that tells a refusal apart first, say). */
GPtrArray      *test_eio_handshake_packets_try (TestResponse    *response,
                                                int              eio,
                                                TestOpenPacket **out_open,
                                                GError         **error);
/* The same within TEST_TIMEOUT_MS; NULL (and the test failed) otherwise. */
GPtrArray      *test_eio_polling_handshake     (TestHttp        *http,
                                                int              eio,
                                                const char      *target,
                                                TestOpenPacket **out_open);
/* A default polling handshake; the open packet, or NULL (test failed). */
TestOpenPacket *test_eio_polling_open    (TestHttp           *http,
                                          int                 eio);
/* A handshake on /engine.io/?EIO=@eio&transport=polling@extra_query; the
 * sid, or NULL (test failed). */
char           *test_eio_polling_open_sid (TestHttp          *http,
                                           int                eio,
                                           const char        *extra_query);
/* The packets of a polling GET response (v4: split at \x1e; v3: text
 * payload), as strings; NULL with @error if it is not a 200 payload.
 * Never fails the test: any thread. */
GPtrArray      *test_eio_poll_packets_try (TestResponse      *response,
                                           int                eio,
                                           GError           **error);
/* The packets of a polling GET response (v4: split at \x1e; v3: text
 * payload), as strings; NULL (test failed) if it is not a 200 payload, or @response is NULL. */
GPtrArray      *test_eio_poll_packets    (TestResponse       *response,
                                          int                 eio);
/* A polling payload of text packets (v4: joined by \x1e; v3: len:packet). */
char           *test_eio_payload         (int                 eio,
                                          const char * const *packets);
/* Whether @response has @status and an application/json body
 * {"code":@code,"message":…}. */
gboolean        test_eio_is_error        (TestResponse       *response,
                                          guint               status,
                                          gint                code);
/* Opens a WebSocket for @sid and does the probe (`2probe` -> `3probe`);
 * NULL (test failed) on any other outcome. */
TestWs         *test_eio_probe           (guint               port,
                                          int                 eio,
                                          const char         *sid);

G_END_DECLS
