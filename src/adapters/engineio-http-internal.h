/* engineio-http-internal.h: the libmicrohttpd adapter's state, shared by
 * engineio-http.c (requests: the host seam's class functions, routing to
 * the engine) and engineio-http-daemon.c (our own daemon: its start and
 * stop, the watcher thread, TLS, connection deadlines), which calls into
 * engineio-http.c and never the other way round.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <microhttpd.h>

#include "engineio-host-private.h"
#include "engineio-server-private.h"

G_BEGIN_DECLS

typedef struct _EngineIOHttpDaemon EngineIOHttpDaemon;
typedef struct _ConnWatch ConnWatch;
typedef struct _HttpWorker HttpWorker;

/* A connection of our own daemon, watched for slow requests, and while a
 * poll waits on it (suspended: libmicrohttpd does not look at it then),
 * for its client closing it. */
struct _ConnWatch
{
  guint64          id;          /* unique per daemon (an upgraded WebSocket finds its
                                 * connection's watch by it: the address may be reused) */
  MHD_socket       fd;
  int              deadline;    /* (atomic) monotonic second by which the current phase must
                                 * end; G_MAXINT: none. Set per request without the daemon's lock. */
  EngineIOHostPoll poll;        /* (daemon lock) the waiting poll suspended on it (its
                                 * socket NULL if none): its session (owned) checks it */
  guint            relay;       /* (atomic) descriptors of its TLS relay (a socketpair) once
                                 * upgraded, counted until libmicrohttpd closes it */
  gsize            tls_read;    /* over TLS, bytes read before its first request head (its
                                 * connection's libmicrohttpd thread only) */
  gboolean         request_seen;/* its first request head is in (the same thread) */
  int              wake_fd;     /* its worker's eventfd: written after anything done to the
                                 * connection from another thread (a resume, an upgraded
                                 * socket's release), so the worker runs libmicrohttpd */
};

/* After MHD_resume_connection() or MHD_upgrade_action() from a thread
 * other than the connection's worker: the worker runs libmicrohttpd again
 * (our daemons run without libmicrohttpd's own threads; see
 * engineio-http-daemon.c). Read @wake_fd before the call: the connection
 * and its watch may be gone once it returns. Any thread. */
void engine_io_http_wake_worker (int wake_fd);

struct _EngineIOHttpDaemon
{
  HttpWorker        *workers;   /* owned: one libmicrohttpd daemon and thread each */
  guint              n_workers;
  int                listen_fd; /* owned: shared by the workers' daemons */
  int                live_relays; /* (atomic) upgraded TLS connections libmicrohttpd relays */
  int                refs;      /* (atomic) the server's (until engine_io_http_daemon_stop()),
                                 * and one per upgraded connection that stays with
                                 * libmicrohttpd (its Upgraded): the workers' libmicrohttpd
                                 * daemons, which own those sockets, and the eventfds are freed
                                 * with the last (engine_io_http_daemon_unref()) */
  void             (*free) (EngineIOHttpDaemon *daemon); /* engineio-http-daemon.c's: that
                                 * file calls this one, not the other way round */
  EngineIOServer    *server;    /* unowned: owns us */
  guint              port;

  /* libmicrohttpd's connection timeout is for inactivity: a client that
   * sends a byte now and then (slowloris) would hold a connection for
   * ever. So a request head must be complete within the timeout of the
   * connection's start (or of its previous response), and a POST body
   * within the timeout of its head; a watcher thread shuts down the
   * connections that are late, and libmicrohttpd then closes them.
   *
   * The same thread looks at the connections of waiting polls (which
   * libmicrohttpd does not watch while they are suspended) for their
   * client closing them, and resumes those to close them: their session
   * ends at once (`transport close`) instead of writing its next message
   * into a dead connection. Lock order (rank 4 of
   * engineio-lock-private.h): a session's state_lock, then @lock (a poll
   * is registered while suspended under its session's lock), never the
   * other way round: the watcher releases @lock before it resumes a poll
   * whose client went away. No lock of ours is taken with @lock held. */
  int                timeout_s;
  guint64            descriptor_limit;   /* the server's budget */
  guint64            fixed_descriptors;  /* libmicrohttpd's own, counted while it runs */
  GMutex             lock;
  GCond              cond;
  GHashTable        *watches;   /* (lock) set of ConnWatch* */
  guint64            next_watch_id; /* (lock) */
  gboolean           stopping;  /* (lock) */
  GThread           *watcher;
  char              *tls_cert_pem;  /* the chain, or NULL without TLS */
  char              *tls_key_pem;   /* wiped when freed */
};

/* Memory per connection, for its request head and response headers (the
 * longest request head accepted is a little less). Above 32 KiB,
 * libmicrohttpd maps each connection's pool on its own instead of taking it
 * from malloc(), so a pool freed at an upgrade or a close goes back to the
 * system instead of fragmenting the heap between long-lived session
 * objects. */
#define CONNECTION_MEMORY (36 * 1024)

/* The GnuTLS priorities of our own TLS listener. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* What a client of our own TLS listener may send before its first request
 * head is in: its TLS handshake (a ClientHello is a few hundred bytes to a
 * few KiB; no client certificate is asked for) and that head (less than
 * CONNECTION_MEMORY). GnuTLS buffers an incomplete handshake message of
 * any announced length, up to 16 MiB, until it is complete: without this
 * bound a connection that never completes its handshake held a megabyte
 * or more for connection-timeout. */
#define TLS_MAX_BEFORE_REQUEST (128 * 1024)

/* A reference for an upgraded connection that stays with libmicrohttpd:
 * until it is released, the daemon's libmicrohttpd daemons (which own its
 * socket, and over TLS relay it) and their eventfds are not freed, even
 * once the server stopped listening. Any thread. */
static inline EngineIOHttpDaemon *
engine_io_http_daemon_ref (EngineIOHttpDaemon *daemon)
{
  g_atomic_int_inc (&daemon->refs);
  return daemon;
}

/* Drops a reference; with the last, stops the libmicrohttpd daemons and
 * frees @daemon. Any thread but a worker's (engine_io_http_daemon_stop()
 * has joined them before the last can go). */
static inline void
engine_io_http_daemon_unref (EngineIOHttpDaemon *daemon)
{
  if (g_atomic_int_dec_and_test (&daemon->refs))
    daemon->free (daemon);
}

static inline int
now_s (void)
{
  return (int) (g_get_monotonic_time () / G_TIME_SPAN_SECOND);
}

enum MHD_Result engine_io_http_handle_request (EngineIOServer         *server,
                                               EngineIOHttpDaemon     *daemon,
                                               struct MHD_Connection  *connection,
                                               const char             *url,
                                               const char             *method,
                                               const char             *version,
                                               const char             *upload_data,
                                               size_t                 *upload_data_size,
                                               void                  **req_cls);

G_END_DECLS
