/* relutil.h: shared helpers of the reliability tests (churn, faults)
 *
 * - RelServer: the shared TestLoopback fixture with an echo server whose
 *   sessions' close reasons are looked up by sid in its recorder, and a
 *   wait (on the recorder's events and the server's metrics, not on
 *   sleeps) until the server has forgotten every session but a given
 *   number;
 * - RelResources: threads, descriptors and RSS of this process;
 * - RelErrors: failures collected on client threads, reported from the
 *   main thread (GTest's failure reporting is not thread-safe);
 * - Engine.IO clients that return errors instead of failing the test, so
 *   they can run on many threads: polling (RelPoll) and WebSocket
 *   (TestWs, from wsutil.h), both answering the server's pings;
 * - RelHealthy: a session doing echo round trips on a thread of its own,
 *   to show that the server stays responsive during a fault;
 * - raw TCP connections for what no client sends (half requests, slow
 *   bytes, resets).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "wsutil.h"

G_BEGIN_DECLS

/* A wait for something that should happen soon on an idle machine: long,
 * because the machine is shared and the sanitizers are slow. */
#define REL_WAIT_MS (test_scaled_ms (20000))

/* ------------------------------------------------------------------ */
/* Server                                                               */
/* ------------------------------------------------------------------ */

#define REL_N_REASONS 16

/* The shared server fixture (TestLoopback: the server, its port, a client
 * of it and the recorder every session is watched by, with
 * TEST_WATCH_CLOSE_ONLY: "connection" and "close" events only), whose
 * sessions echo every message and close themselves (forced close) on the
 * text message "close-me". Close reasons
 * come from the recorder's "close <sid> <reason>" events, each read once
 * into an index (a session's first close gives its reason; 10,000
 * sessions are looked up without scanning the events each time). */
typedef struct
{
  TestLoopback    lb;

  GMutex          lock;
  guint           n_read;       /* (lock) events of lb.events indexed */
  GHashTable     *reasons;      /* (lock) sid -> GINT_TO_POINTER (reason + 1) */
  guint           closes[REL_N_REASONS];  /* (lock) */
  guint           n_closes;     /* (lock) */
  guint           n_connections;/* (lock) */
  guint           n_repeated;   /* (lock) a second "close" for a sid */
} RelServer;

/* The fixture with test_server_new() (loop-threads from the environment).
 * Set properties on ->lb.server, then rel_server_listen(). */
RelServer  *rel_server_new            (void);
gboolean    rel_server_listen         (RelServer   *rs);
/* test_loopback_clear() (engine_io_server_close() if not done) and frees
 * everything. */
void        rel_server_free           (RelServer   *rs);

/* The reason @sid closed with, waiting up to @timeout_ms; -1 if it did not
 * close in time. */
gint        rel_server_wait_reason    (RelServer   *rs,
                                       const char  *sid,
                                       guint        timeout_ms);
/* The reason @sid closed with, or -1 (no wait). */
gint        rel_server_reason         (RelServer   *rs,
                                       const char  *sid);
/* Counts of what was recorded so far: closes with @reason, all closes, a
 * second close of a sid, ::connection. */
guint       rel_server_closes         (RelServer   *rs,
                                       EngineIOCloseReason reason);
guint       rel_server_total_closes   (RelServer   *rs);
guint       rel_server_repeated       (RelServer   *rs);
guint       rel_server_connections    (RelServer   *rs);
/* Sessions open, by the server's metrics gauge (every transport and
 * version). */
guint64     rel_server_open_gauge     (RelServer   *rs);
guint64     rel_server_handshakes     (RelServer   *rs);
/* Waits until the server has forgotten every session but @n_open: every
 * session it opened (metrics handshakes) has emitted ::close except
 * @n_open, its table holds @n_open and the open-sessions gauge says
 * @n_open. Woken by the recorder's events; FALSE on timeout (with a description of what
 * was left in @error). */
gboolean    rel_server_wait_settled   (RelServer   *rs,
                                       guint        n_open,
                                       guint        timeout_ms,
                                       GError     **error);

/* ------------------------------------------------------------------ */
/* Resources                                                            */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint threads;
  guint fds;
  guint rss_kb;
} RelResources;

void        rel_resources_now         (RelResources *out);
/* The memory this process holds, in KiB: its RSS; under AddressSanitizer,
 * whose quarantine keeps freed memory resident, the heap still allocated.
 * REL_HELD_WHAT names which. */
guint       rel_held_kb               (void);
extern const char *const REL_HELD_WHAT;
/* Threads and descriptors once they have stopped changing for a while. */
void        rel_resources_settled     (RelResources *out);
/* Waits until threads <= @threads and fds <= @fds (a bounded wait on a
 * condition: there is no event for "a thread has ended"); fills @out with
 * the last values seen and returns whether both held. */
gboolean    rel_resources_wait_at_most (guint         threads,
                                        guint         fds,
                                        guint         timeout_ms,
                                        RelResources *out);

/* Prints this process's descriptors (what they point to) as TAP
 * comments, to tell which one was left behind. */
void        rel_resources_dump_fds    (void);

/* ------------------------------------------------------------------ */
/* Errors from client threads                                           */
/* ------------------------------------------------------------------ */

typedef struct _RelErrors RelErrors;

RelErrors  *rel_errors_new            (void);
void        rel_errors_free           (RelErrors   *errors);
void        rel_errors_add            (RelErrors   *errors,
                                       const char  *format,
                                       ...) G_GNUC_PRINTF (2, 3);
guint       rel_errors_count          (RelErrors   *errors);
/* Main thread: prints the first @max errors and fails the test if there
 * was any. */
void        rel_errors_report         (RelErrors   *errors,
                                       guint        max);

/* Runs @func (index, data) for every index in [0, @n_items) on @n_threads
 * threads, each taking the next index; returns when all are done. */
void        rel_parallel              (guint        n_threads,
                                       guint        n_items,
                                       void       (*func) (guint index, gpointer data),
                                       gpointer     data);

/* ------------------------------------------------------------------ */
/* Engine.IO clients (any thread; errors, never test failures)          */
/* ------------------------------------------------------------------ */

typedef struct
{
  TestHttp *http;
  char     *sid;
  char     *target;  /* the polling URL with the sid */
  GQueue    inbox;   /* char*: received messages not yet taken */
} RelPoll;

/* A v4 polling handshake on a new connection. */
RelPoll    *rel_poll_open             (guint        port,
                                       GError     **error);
void        rel_poll_free             (RelPoll     *poll);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RelPoll, rel_poll_free)
/* POSTs one packet (e.g. "4hello", "3", "1"); expects 200 "ok". */
gboolean    rel_poll_post             (RelPoll     *poll,
                                       const char  *packet,
                                       GError     **error);
/* The next packet that is not a ping or a noop, polling as needed (a ping
 * is answered with a pong at once). */
char       *rel_poll_next             (RelPoll     *poll,
                                       guint        timeout_ms,
                                       GError     **error);
/* POST "4<text>", then polls until "4<text>" comes back. */
gboolean    rel_poll_echo             (RelPoll     *poll,
                                       const char  *text,
                                       guint        timeout_ms,
                                       GError     **error);
/* Sends a GET poll without reading its answer. */
gboolean    rel_poll_send_get         (RelPoll     *poll,
                                       GError     **error);

/* A direct WebSocket session (transport=websocket); @out_sid gets its
 * sid. */
TestWs     *rel_ws_open               (guint        port,
                                       char       **out_sid,
                                       GError     **error);
/* Upgrades polling session @sid: probe, `3probe`, then `5`. */
TestWs     *rel_ws_upgrade            (guint        port,
                                       const char  *sid,
                                       GError     **error);
gboolean    rel_ws_send               (TestWs      *ws,
                                       const char  *packet,
                                       GError     **error);
/* The next text packet that is not a ping (pings are answered). A close
 * frame is answered and gives NULL with G_IO_ERROR_CONNECTION_CLOSED and
 * its code in @out_close_code (if given; -1 when no close frame came). */
char       *rel_ws_next               (TestWs      *ws,
                                       guint        timeout_ms,
                                       gint        *out_close_code,
                                       GError     **error);
gboolean    rel_ws_echo               (TestWs      *ws,
                                       const char  *text,
                                       guint        timeout_ms,
                                       GError     **error);
/* Reads (without answering pings) until the server's close frame, answers
 * it, and waits for the end of the connection; the close code, or -1 (no
 * code), -2 (EOF without a close frame), -3 (timeout). */
gint        rel_ws_wait_server_close  (TestWs      *ws,
                                       guint        timeout_ms);

/* ------------------------------------------------------------------ */
/* A healthy session on its own thread                                  */
/* ------------------------------------------------------------------ */

typedef enum
{
  REL_HEALTHY_POLLING,
  REL_HEALTHY_WEBSOCKET,
} RelHealthyKind;

typedef struct _RelHealthy RelHealthy;

/* Opens a session and does echo round trips on a new thread (one every
 * few ms) until stopped. FALSE in @error if the session cannot open. */
RelHealthy *rel_healthy_start         (guint           port,
                                       RelHealthyKind  kind,
                                       GError        **error);
const char *rel_healthy_sid           (RelHealthy     *healthy);
guint       rel_healthy_round_trips   (RelHealthy     *healthy);
/* Waits until @n more round trips than now have completed; FALSE on
 * timeout or if the session failed. */
gboolean    rel_healthy_wait_more     (RelHealthy     *healthy,
                                       guint           n,
                                       guint           timeout_ms);
/* The error that stopped the session, or NULL (caller frees). */
char       *rel_healthy_dup_error     (RelHealthy     *healthy);
/* The slowest round trip so far, in ms. */
guint       rel_healthy_max_ms        (RelHealthy     *healthy);
/* Stops the thread; with @close, then closes the session cleanly (client
 * close packet). Returns the first error the session met, if any (caller
 * frees), then frees @healthy. */
char       *rel_healthy_stop          (RelHealthy     *healthy,
                                       gboolean        close);

/* ------------------------------------------------------------------ */
/* Raw TCP                                                              */
/* ------------------------------------------------------------------ */

/* A blocking TCP connection to 127.0.0.1:@port; -1 on error. */
int         rel_tcp_connect           (guint        port);
gboolean    rel_tcp_send              (int          fd,
                                       const void  *data,
                                       gsize        length);
/* Closes with an RST (SO_LINGER 0). */
void        rel_tcp_reset             (int          fd);
/* Reads and drops what comes until EOF or a reset; TRUE if the server
 * closed within @timeout_ms. Appends what was read to @received if
 * given. */
gboolean    rel_tcp_wait_closed       (int          fd,
                                       guint        timeout_ms,
                                       GByteArray  *received);
/* Whether the peer has closed (EOF or reset) by now, without waiting;
 * data that arrived is dropped. */
gboolean    rel_tcp_is_closed         (int          fd);
/* The status code of the first response line in @received, or 0. */
guint       rel_http_status_of        (GByteArray  *received);

G_END_DECLS
