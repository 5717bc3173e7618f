/* testutil.h: shared helpers of the integration tests
 *
 * A small synchronous HTTP/1.1 client (keep-alive, per-call timeouts, raw
 * requests for malformed input), in-process servers on 127.0.0.1 port 0,
 * Engine.IO payload and open-packet parsing written independently of the
 * library's codec, a thread-safe event recorder for signals that run on
 * session threads, a log writer that turns warnings and criticals into
 * test failures instead of aborts, and thread and descriptor counting.
 *
 * Every wait is bounded: the functions take a timeout in milliseconds and
 * report failure instead of hanging.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "engineio-server.h"
#include "engineio-socket.h"
#include "engineio-packet.h"
#include "engineio-error.h"

G_BEGIN_DECLS

/* How much slower than a normal build this one runs: the environment
 * variable ENGINE_IO_TEST_TIME_SCALE (a number from 1 to 100, default 1;
 * tests/run-all.sh sets it to 2 for the ASan stage and to 3 for the
 * ThreadSanitizer stage, whose meson timeouts are scaled likewise). Upper bounds on how long something may
 * take are multiplied by it; lower bounds (what the protocol says must not
 * happen sooner) never are. Read once; any thread. */
double   test_time_scale (void);
/* @ms times test_time_scale(), rounded up. */
guint    test_scaled_ms  (guint ms);

/* The default bound of one wait: long enough for a loaded machine, short
 * enough that a hang fails the test well within meson's timeout. */
#define TEST_TIMEOUT_MS (test_scaled_ms (5000))

/* A string literal and its length, embedded NULs included. */
#define TEST_S(literal) (literal), (sizeof (literal) - 1)

/* Fails the current test and returns from the calling function when @expr
 * is false (the suite runs with non-fatal assertions, so a failed test
 * does not stop the ones after it). */
#define test_require(expr)                                                     \
  G_STMT_START {                                                               \
    if (G_UNLIKELY (!(expr)))                                                  \
      {                                                                        \
        g_test_fail_printf ("%s:%d: requirement failed: %s",                   \
                            __FILE__, __LINE__, #expr);                        \
        return;                                                                \
      }                                                                        \
  } G_STMT_END

#define test_require_val(expr, val)                                            \
  G_STMT_START {                                                               \
    if (G_UNLIKELY (!(expr)))                                                  \
      {                                                                        \
        g_test_fail_printf ("%s:%d: requirement failed: %s",                   \
                            __FILE__, __LINE__, #expr);                        \
        return (val);                                                          \
      }                                                                        \
  } G_STMT_END

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

/* Call once after g_test_init(): warnings and criticals (from any thread,
 * structured or not) no longer abort the program; they are printed and
 * remembered, and test_log_check() fails the current test for each one
 * that was not announced with test_log_expect(). */
void     test_log_init    (void);
void     test_log_expect  (GLogLevelFlags  level,
                           const char     *substring);
/* Waits up to @timeout_ms (not scaled) until every message announced with
 * test_log_expect() has come; FALSE if one has not. */
gboolean test_log_wait_expected (guint timeout_ms);
/* Fails the current test for every unexpected warning or critical logged,
 * and for every expected one that never came; then forgets both. */
void     test_log_check   (void);

/* ------------------------------------------------------------------ */
/* HTTP client                                                          */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint       status;
  char       *reason;
  GHashTable *headers;  /* lowercase name -> value; repeated headers joined by ", " */
  GBytes     *body;
} TestResponse;

void          test_response_free       (TestResponse *response);
const char   *test_response_header     (TestResponse *response,
                                        const char   *name);
/* The body as a NUL-terminated string (a copy; NULs inside are kept). */
char         *test_response_text       (TestResponse *response);
gboolean      test_response_body_equal (TestResponse *response,
                                        const void   *data,
                                        gsize         length);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestResponse, test_response_free)

/* One keep-alive connection to 127.0.0.1:port, opened on first use and
 * again after the server closed it. Not thread-safe: one thread at a time. */
typedef struct _TestHttp TestHttp;

TestHttp     *test_http_new            (guint          port);
void          test_http_free           (TestHttp      *http);
void          test_http_disconnect     (TestHttp      *http);
/* Closes the connection without a goodbye: with @reset by an RST
 * (SO_LINGER 0), otherwise like test_http_disconnect(). */
void          test_http_drop           (TestHttp      *http,
                                        gboolean       reset);
gboolean      test_http_is_connected   (TestHttp      *http);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestHttp, test_http_free)

/* Sends one request. @headers: NULL-terminated name, value pairs, or NULL.
 * @body_len < 0: no body and no Content-Length; otherwise Content-Length
 * is added unless @headers has Content-Length or Transfer-Encoding. */
gboolean      test_http_send           (TestHttp           *http,
                                        const char         *method,
                                        const char         *target,
                                        const char * const *headers,
                                        const void         *body,
                                        gssize              body_len,
                                        GError            **error);
/* Sends bytes as they are, for malformed requests; the response is read
 * with test_http_receive(). */
gboolean      test_http_send_raw       (TestHttp      *http,
                                        const void    *data,
                                        gsize          length,
                                        GError       **error);
/* Reads the response to the oldest request sent and not yet answered. */
TestResponse *test_http_receive        (TestHttp      *http,
                                        guint          timeout_ms,
                                        GError       **error);
/* Reads exactly @length raw bytes (after a 101 Switching Protocols, say);
 * FALSE with @error on timeout or EOF. */
gboolean      test_http_read_exact     (TestHttp      *http,
                                        void          *buffer,
                                        gsize          length,
                                        guint          timeout_ms,
                                        GError       **error);
/* Whether the server has sent something (or closed) within @timeout_ms:
 * a response to a waiting request has started. */
gboolean      test_http_wait_readable  (TestHttp      *http,
                                        guint          timeout_ms);
/* send + receive; a request on a reused connection that the server had
 * closed meanwhile is sent again once on a new one. */
TestResponse *test_http_request        (TestHttp           *http,
                                        const char         *method,
                                        const char         *target,
                                        const char * const *headers,
                                        const void         *body,
                                        gssize              body_len,
                                        guint               timeout_ms,
                                        GError            **error);

/* Convenience: GET / POST on a fresh-or-kept connection, asserting that a
 * response came within TEST_TIMEOUT_MS (returns NULL otherwise). */
TestResponse *test_http_get            (TestHttp      *http,
                                        const char    *target);
TestResponse *test_http_post           (TestHttp      *http,
                                        const char    *target,
                                        const void    *body,
                                        gsize          body_len);

/* Whether a TCP connection to 127.0.0.1:@port is refused. */
gboolean      test_port_refuses        (guint          port);

/* ------------------------------------------------------------------ */
/* Servers                                                              */
/* ------------------------------------------------------------------ */

/* ENGINE_IO_TEST_LOOP_THREADS, default 0. */
guint           test_loop_threads_from_env (void);
/* A new server whose "loop-threads" comes from the environment. */
EngineIOServer *test_server_new            (void);
/* engine_io_server_listen (server, "127.0.0.1", 0); returns the port, or
 * 0 (and the test failed) on error. */
guint           test_server_listen         (EngineIOServer *server);

/* ------------------------------------------------------------------ */
/* Engine.IO wire formats, parsed independently of the library          */
/* ------------------------------------------------------------------ */

typedef struct
{
  char    *sid;
  GStrv    upgrades;
  gint64   ping_interval;
  gint64   ping_timeout;
  gint64   max_payload;     /* -1 when absent */
  char    *json;            /* the raw JSON text */
} TestOpenPacket;

/* @text is the open packet without its type digit, i.e. the JSON. */
TestOpenPacket *test_open_packet_parse (const char     *json,
                                        GError        **error);
void            test_open_packet_free  (TestOpenPacket *open);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestOpenPacket, test_open_packet_free)

/* Whether @sid is made only of URL-safe characters (A-Z a-z 0-9 - _ .). */
gboolean   test_sid_is_url_safe     (const char *sid);

/* v4: the packets of a polling body (split at \x1e), as strings. */
GPtrArray *test_payload_v4_split    (GBytes     *body);
/* v3 text payload: `<len>:<packet>`..., len in UTF-16 code units. */
GPtrArray *test_payload_v3_split    (GBytes     *body,
                                     GError    **error);
/* UTF-16 code units of @utf8 as JavaScript counts them. */
glong      test_utf16_length        (const char *utf8);
/* `<len>:<packet>` for one v3 text packet. */
char      *test_v3_frame            (const char *packet);

typedef struct
{
  gboolean  is_binary;
  GBytes   *data;   /* the packet: type digit + text, or type byte + bytes */
} TestV3Packet;

/* v3 XHR2 binary payload: per packet 0|1, length digits, 0xFF, packet. */
GPtrArray *test_payload_v3_binary_split (GBytes     *body,
                                         GError    **error);
/* Appends one packet to a v3 binary payload being built. */
void       test_payload_v3_binary_append (GByteArray   *out,
                                          gboolean      is_binary,
                                          const void   *packet,
                                          gsize         length);

/* Undoes JavaScript string-literal escaping (the body of "..."); NULL if
 * the escaping is malformed. */
char      *test_js_unescape         (const char *escaped,
                                     gsize       length);

/* ------------------------------------------------------------------ */
/* Recording what happens on other threads                              */
/* ------------------------------------------------------------------ */

/* A thread-safe, append-only list of event strings with bounded waits. */
typedef struct _TestRecorder TestRecorder;

TestRecorder *test_recorder_new         (void);
void          test_recorder_free        (TestRecorder *recorder);
void          test_recorder_add         (TestRecorder *recorder,
                                         const char   *format,
                                         ...) G_GNUC_PRINTF (2, 3);
/* Waits until @event was recorded (at any time); FALSE on timeout. */
gboolean      test_recorder_wait        (TestRecorder *recorder,
                                         const char   *event,
                                         guint         timeout_ms);
/* Waits until at least @n events start with @prefix; FALSE on timeout. */
gboolean      test_recorder_wait_count  (TestRecorder *recorder,
                                         const char   *prefix,
                                         guint         n,
                                         guint         timeout_ms);
guint         test_recorder_count       (TestRecorder *recorder,
                                         const char   *prefix);
/* Position of the first event equal to @event, or -1. */
gint          test_recorder_index       (TestRecorder *recorder,
                                         const char   *event);
/* Position of the first event starting with @prefix, or -1. */
gint          test_recorder_index_prefix (TestRecorder *recorder,
                                          const char   *prefix);
/* A copy of every event so far. */
GStrv         test_recorder_dup         (TestRecorder *recorder);
void          test_recorder_clear       (TestRecorder *recorder);
/* Waits up to @timeout_ms until more than @from events were recorded;
 * copies of the events from position @from on (empty on timeout). For a
 * reader that keeps its own view of the events and reads each once. */
GStrv         test_recorder_wait_since  (TestRecorder *recorder,
                                         guint         from,
                                         guint         timeout_ms);

/* Waits up to @timeout_ms for the event @format (printf-style); on
 * timeout fails the test, naming @file:@line and listing every event
 * recorded. Use test_recorder_expect(). */
gboolean      test_recorder_expect_at   (TestRecorder *recorder,
                                         const char   *file,
                                         int           line,
                                         guint         timeout_ms,
                                         const char   *format,
                                         ...) G_GNUC_PRINTF (5, 6);
#define test_recorder_expect(recorder, timeout_ms, ...) \
  test_recorder_expect_at ((recorder), __FILE__, __LINE__, (timeout_ms), __VA_ARGS__)

/* The bytes of @bytes as lowercase hex digits ("" when empty). */
char         *test_hex_of               (GBytes       *bytes);

/* The one recorder of a session's signals the loopback suites share.
 * test_recorder_watch() connects to @socket's signals (call it from the
 * server's ::connection handler) and records, with the sid:
 *   "message <sid> <text>", "binary <sid> <hex>"  (::message)
 *   "close <sid> <reason>"  (engine_io_close_reason_to_string ())
 *   "heartbeat <sid>", "drain <sid>" (unless TEST_WATCH_NO_DRAIN)
 *   "packet <sid> <type><text>"  (::packet, with TEST_WATCH_PACKETS;
 *                                 "(binary)" for a binary packet)
 *   "transport <sid> websocket|polling"  (notify::transport, with
 *                                          TEST_WATCH_TRANSPORT) */
typedef enum
{
  TEST_WATCH_DEFAULT    = 0,
  TEST_WATCH_ECHO       = 1 << 0,  /* ::message sends each message back */
  TEST_WATCH_NO_MESSAGE = 1 << 1,  /* no ::message handler: messages go to receive() */
  TEST_WATCH_PACKETS    = 1 << 2,
  TEST_WATCH_TRANSPORT  = 1 << 3,
  TEST_WATCH_NO_DRAIN   = 1 << 4,  /* no ::drain handler (a test of when ::drain
                                    * handlers are looked for) */
  TEST_WATCH_UNRECORDED = 1 << 5,  /* ::message is not recorded (with
                                    * TEST_WATCH_ECHO: an echo server of
                                    * messages of many MiB) */
  /* Only "close" (and, with their flags, "packet" and "transport"): no
   * ::message handler, no "heartbeat" or "drain" events. For sessions
   * that take millions of packets (a v3 client's every ping is a
   * heartbeat), whose events would fill the memory a test measures. */
  TEST_WATCH_CLOSE_ONLY = 1 << 6,
} TestWatchFlags;

void          test_recorder_watch       (TestRecorder   *recorder,
                                         EngineIOSocket *socket,
                                         TestWatchFlags  flags);

/* ------------------------------------------------------------------ */
/* The server fixture of the loopback suites                            */
/* ------------------------------------------------------------------ */

typedef struct _TestLoopback TestLoopback;

/* Called from ::connection (on the session's thread) before the
 * connection is recorded. */
typedef void (*TestLoopbackConnectionFunc) (TestLoopback   *loopback,
                                            EngineIOSocket *socket,
                                            gpointer        user_data);

struct _TestLoopback
{
  EngineIOServer *server;   /* test_server_new (); set properties before listening */
  guint           port;     /* set by test_loopback_listen () */
  TestHttp        *http;    /* a client of @port, set by test_loopback_listen () */
  TestRecorder    *events;  /* every session watched (test_recorder_watch ()), and
                             * "connection <sid> polling|websocket" for each ::connection */

  GAsyncQueue     *sockets; /* with @keep_sockets: EngineIOSocket refs, as opened
                             * (see test_eio_ws_open_socket ()) */

  /* Set before listening; read on session threads. */
  TestWatchFlags              watch;
  gboolean                    keep_sockets;
  TestLoopbackConnectionFunc  on_connection;  /* optional */
  gpointer                    user_data;
};

/* The server, its ::connection handler and the recorder. */
void      test_loopback_init   (TestLoopback *loopback);
/* Records and watches the sessions of another @server (a second server
 * of the same test) as those of @loopback's. */
void      test_loopback_watch_server (TestLoopback   *loopback,
                                      EngineIOServer *server);
/* test_server_listen () and a client of its port; FALSE (and the test
 * failed) if the server could not listen. */
gboolean  test_loopback_listen (TestLoopback *loopback);
/* Frees the client, closes (if not done) and frees the server, then the
 * recorder; each member may have been cleared by the test. */
void      test_loopback_clear  (TestLoopback *loopback);
/* g_auto(TestLoopback) lb = { 0 }: cleared at the end of its scope (a
 * test that returns early included). */
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (TestLoopback, test_loopback_clear)

/* ------------------------------------------------------------------ */
/* A ::message handler that blocks                                      */
/* ------------------------------------------------------------------ */

/* test_blocker_connect() (from a ::connection handler) makes each message
 * of @socket block its session's thread until test_blocker_release(), or
 * 20 s at most. Also records when the session's socket is finalized. */
typedef struct
{
  GMutex   lock;
  GCond    cond;
  gboolean entered;    /* (lock) a handler blocks or blocked */
  gboolean release;    /* (lock) */
  gboolean returned;   /* (lock) the handler is done with the blocker */
  gboolean finalized;  /* (lock) a connected socket was finalized */
} TestBlocker;

void     test_blocker_init          (TestBlocker    *blocker);
void     test_blocker_connect       (TestBlocker    *blocker,
                                     EngineIOSocket *socket);
/* Blocks the calling thread (a handler) as a connected message does. */
void     test_blocker_block         (TestBlocker    *blocker);
/* Handshake code that blocks (@blocker as user data): an admission hook
 * that then admits, an id function that then returns "blocked-id", and a
 * ::connection handler that connects the socket (test_blocker_connect()). */
gboolean test_blocker_admission     (EngineIOServer    *server,
                                     EngineIOHandshake *handshake,
                                     gpointer           blocker);
char    *test_blocker_id            (EngineIOServer    *server,
                                     EngineIOHandshake *handshake,
                                     gpointer           blocker);
void     test_blocker_on_connection (EngineIOServer    *server,
                                     EngineIOSocket    *socket,
                                     gpointer           blocker);
/* Each waits up to @timeout_ms (not scaled) for its flag; its value. */
gboolean test_blocker_wait_entered  (TestBlocker    *blocker,
                                     guint           timeout_ms);
gboolean test_blocker_wait_returned (TestBlocker    *blocker,
                                     guint           timeout_ms);
gboolean test_blocker_wait_finalized (TestBlocker   *blocker,
                                     guint           timeout_ms);
void     test_blocker_release       (TestBlocker    *blocker);
/* Only once the handler returned (or never ran). */
void     test_blocker_clear         (TestBlocker    *blocker);

/* ------------------------------------------------------------------ */
/* Resources of this process                                            */
/* ------------------------------------------------------------------ */

guint    test_count_threads        (void);
guint    test_count_fds            (void);
/* Waits until @count() <= @limit; returns the last value seen. */
guint    test_wait_count_at_most   (guint      (*count) (void),
                                    guint        limit,
                                    guint        timeout_ms);
/* Waits until @count() has not changed for @stable_ms; returns it. */
guint    test_settled_count        (guint      (*count) (void),
                                    guint        stable_ms,
                                    guint        timeout_ms);

/* ------------------------------------------------------------------ */
/* TLS                                                                  */
/* ------------------------------------------------------------------ */

/* Makes, in a temporary directory, a test CA with `openssl` and a
 * certificate for 127.0.0.1 and localhost that it signed; FALSE (with a
 * message on stderr) when openssl fails. test_tls_ca_remove() deletes them. */
gboolean         test_tls_ca_make         (void);
void             test_tls_ca_remove       (void);
/* The CA's certificate (PEM). */
const char      *test_tls_ca_file         (void);
/* The server certificate (PEM, without its key). */
const char      *test_tls_cert_file       (void);
/* The server certificate with its key. */
GTlsCertificate *test_tls_certificate_new (GError **error);
/* A TLS connection to 127.0.0.1:@port that trusts only the test CA (or,
 * with @trust_ca FALSE, only the system's). NULL with @error. */
GIOStream       *test_tls_connect         (guint      port,
                                           gboolean   trust_ca,
                                           GError   **error);

G_END_DECLS
