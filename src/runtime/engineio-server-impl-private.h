/* engineio-server-impl-private.h: the seams between the server's files
 *
 * The server is one object spread over files that each own one part of it
 * (the public object, its GObject boilerplate and the public functions
 * that check its type in engineio-server.c, which the session table, the
 * admission and the shutdown files do not call):
 *
 *   engineio-server-config.c     the configuration snapshot, the descriptor
 *                                budget, starting
 *   engineio-trusted-proxies.c   trusted-proxies: masks and forwarded addresses
 *   engineio-server-responses.c  responses, the headers hook, suspension
 *   engineio-server-handshake.c  a handshake's checks and its rate limit
 *   engineio-server-admission.c  handshake jobs, session ids and
 *                                asynchronous admission
 *   engineio-server-requests.c   the protocol core's request entry points
 *   engineio-server-sessions.c   the session table (and broadcasts)
 *   engineio-server-shutdown.c   what close and close_async do, their
 *                                accounting
 *
 * with the pure rules in src/core/ (engineio-http-rules.c, engineio-jsonp.c).
 * Only those files include this header.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-server-private.h"
#include "engineio-handshake-private.h"
#include "engineio-loop-private.h"
#include "engineio-metrics-private.h"
#include "engineio-rate-table-private.h"
#include "engineio-lock-private.h"
#include "engineio-socket-private.h"

G_BEGIN_DECLS

/* Shared by the files above; each field says what guards it. */
struct _EngineIOServer
{
  GObject                     parent_instance;

  /* Property values; written only before the server starts. */
  guint                       ping_interval;
  guint                       ping_timeout;
  guint                       upgrade_timeout;
  guint64                     max_payload;
  char                       *path;
  EngineIOTransports          transports;
  gboolean                    allow_upgrades;
  gboolean                    allow_eio3;
  gboolean                    http_compression;
  guint                       http_compression_threshold;
  gboolean                    per_message_deflate;
  guint                       per_message_deflate_threshold;
  char                       *cors_origin;
  gboolean                    cors_credentials;
  char                       *cookie;
  char                       *cookie_path;
  gboolean                    cookie_http_only;
  char                       *cookie_same_site;
  guint                       max_sessions;
  guint                       loop_threads;
  guint64                     send_queue_high_water;
  guint64                     receive_queue_high_water;
  EngineIOBackpressurePolicy  backpressure;
  GMainContext               *callback_context;   /* owned, nullable */
  char                       *metrics_path;
  guint                       connection_timeout;
  double                      handshake_rate;
  guint                       handshake_burst;
  double                      message_rate;
  guint                       message_burst;
  EngineIORateLimitPolicy     message_policy;
  GStrv                       allowed_origins;
  GStrv                       trusted_proxies;
  GTlsCertificate            *tls_certificate;    /* owned, nullable */
  gboolean                    raise_fd_limit;
  guint                       fd_reserve;
  EngineIOCounters            counters;           /* (atomic) each word */

  /* The server's locks, in the order of engineio-lock-private.h (a
   * thread takes a lock only while the ones it holds rank lower):
   * @broadcast_lock (1), @lock (2), then any session's state_lock (3),
   * the HTTP watcher's lock (4), ..., @rate_lock (7), @errors_lock (8).
   * @lock and a session's lock never nest today; were they to, the
   * server's comes first. @rate_lock and @errors_lock are leaves: no lock
   * is taken with them held. */
  GMutex                      rate_lock;          /* (rank 7, a leaf) guards the one below */
  EngineIORateTable           rate_table;         /* (rate_lock) handshake buckets by rate_key() */

  GMutex                      lock;               /* (rank 2) the fields marked (lock) */
  GMutex                      broadcast_lock;     /* (rank 1) held by a broadcast from its snapshot
                                                   * of the sockets to its last enqueue, so that
                                                   * concurrent broadcasts reach every socket
                                                   * in one order; taken before @lock and the
                                                   * sockets' locks, never after */
  GCond                       cond;               /* live_sessions / suspended changed */
  EngineIOConfig             *config;             /* (atomic) set once at start under @lock, then immutable */
  EngineIOLoopPool           *pool;               /* (lock) set once at start */
  GHashTable                 *sockets;            /* (lock) sid -> EngineIOSocket (ref) */
  guint                       live_sessions;      /* (lock) created and not finished */
  guint                       pending_handshakes; /* (lock) admitted, socket not yet made */
  int                         suspended;          /* (atomic) suspended requests; @cond at 0 */
  int                         refuse_suspend;     /* (atomic) set once the close answered what
                                                   * was suspended, the sessions' wait over:
                                                   * nothing is suspended any more */
  int                         active_requests;    /* (atomic) begun, not yet completed; @cond at 0 */
  gboolean                    closing;            /* (lock) */
  gboolean                    closed;             /* (lock) */
  gboolean                    finishing;          /* (lock) a thread runs server_finish_close() */
  int                         closed_flag;        /* (atomic) closing or closed */
  EngineIOAdmissionFunc       admission_func;     /* (lock) */
  gpointer                    admission_data;
  GDestroyNotify              admission_destroy;
  GPtrArray                  *close_tasks;        /* (lock) GTask*: close_async() calls waiting for @closed */
  EngineIOIdFunc              id_func;            /* (lock) */
  gpointer                    id_data;
  GDestroyNotify              id_destroy;
  /* What the server gives each socket it creates (engine_io_socket_new()):
   * made by engineio-server.c, which emits ::connection, so that the files
   * below it call none of its functions. Set at init, immutable. */
  const EngineIOSocketOwner  *socket_owner;

  gpointer                    listener;           /* (lock) owned: engine_io_server_listen()'s daemon */
  const EngineIOListenerClass *listener_class;    /* (lock) how to stop @listener */
  guint                       port;

  /* Hooks */
  EngineIOAdmissionAsyncFunc  admission_async_func;  /* (lock) */
  gpointer                    admission_async_data;
  GDestroyNotify              admission_async_destroy;
  guint                       max_pending_admissions;
  guint                       admission_timeout;     /* ms */
  guint                       ping_interval_grace;   /* ms */
  guint                       pending_admissions;    /* (lock) handshakes counted against max-pending-admissions */
  GHashTable                 *admissions;            /* (lock) EngineIOAdmission (ref) awaiting an answer */
  GQueue                      handshake_jobs;        /* (lock) HandshakeJob* (by their @link) whose
                                                      * request is suspended and not used by the job
                                                      * (intrusive: listing a job allocates nothing) */
  GMutex                      errors_lock;           /* (rank 8, a leaf) guards the two below */
  GQueue                      error_reports;         /* (errors_lock) ErrorReport, for ::connection-error */
  gboolean                    error_source_pending;  /* (errors_lock) a delivery source is attached */
  EngineIOHeadersFunc         headers_func;          /* (lock) written; (atomic) for the quick check */
  gpointer                    headers_data;
  GDestroyNotify              headers_destroy;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC (EngineIOConfig, engine_io_config_unref)

/* The most addresses the handshake rate limit remembers
 * (engineio-server-handshake.c). */
#define RATE_MAX_ADDRESSES 16384

/* engineio-server.c */
void              engine_io_server_report_connection_error (EngineIOServer  *self,
                                                            EngineIORequest *req);

/* engineio-server-config.c */
gboolean          engine_io_server_is_started      (EngineIOServer  *self);
gboolean          engine_io_server_ensure_started  (EngineIOServer  *self,
                                                    GError         **error);
EngineIOConfig   *engine_io_server_ref_config      (EngineIOServer  *self);
void              engine_io_raise_fd_limit         (void);
gboolean          engine_io_server_descriptors_allow_session (EngineIOServer *self,
                                                              EngineIOConfig *config);

/* engineio-trusted-proxies.c */
GInetAddressMask *engine_io_trusted_proxy_mask_new   (const char      *entry);
char             *engine_io_forwarded_client_address (EngineIOConfig  *config,
                                                      EngineIORequest *req);

/* engineio-server-responses.c */
void              engine_io_core_respond_full      (EngineIOConfig  *config,
                                                    EngineIORequest *req,
                                                    guint            status,
                                                    const char      *content_type,
                                                    GBytes          *body,
                                                    gboolean         preflight);
void              engine_io_core_respond_full_with_headers (EngineIOConfig     *config,
                                                            EngineIORequest    *req,
                                                            guint               status,
                                                            const char         *content_type,
                                                            GBytes             *body,
                                                            gboolean            preflight,
                                                            const char * const *extra);
GBytes           *engine_io_core_error_json        (int              code,
                                                    const char      *message);
void              engine_io_core_note_refusal      (EngineIORequest *req,
                                                    guint            status,
                                                    int              code,
                                                    const char      *message);
void              engine_io_core_prepare_response  (EngineIORequest *req,
                                                    guint            status,
                                                    int              code,
                                                    const char      *message);
void              engine_io_core_request_unsuspend (EngineIOServer  *self,
                                                    EngineIORequest *req);
gboolean          engine_io_core_upgrade_request   (EngineIOConfig  *config,
                                                    EngineIORequest *req,
                                                    EngineIOSocket  *socket);
GHashTable       *engine_io_copy_string_table      (GHashTable      *table);

/* engineio-server-handshake.c */
void              engine_io_server_handle_handshake (EngineIOServer        *self,
                                                     EngineIOConfig        *config,
                                                     EngineIORequest       *req,
                                                     EngineIOTransportType  transport);

/* engineio-server-admission.c: a handshake on its way to a session, from
 * engine_io_server_handle_handshake() to the session's context. */

typedef struct
{
  EngineIOServer    *server;     /* ref */
  EngineIORequest   *req;        /* suspended; owned by its adapter */
  EngineIOHandshake *handshake;  /* ref */
  EngineIOLoop      *loop;       /* one use, passed on to the socket */
  gboolean           version_ok; /* else refuse with code 5 once admitted */
  gboolean           counted;    /* in the server's pending_admissions */
  gboolean           detached;   /* owned by an EngineIOAdmission, not by its source */
  gboolean           taken;      /* (server lock) the close answered @req (the job's
                                  * context blocked): the job must not use it */
  gboolean           listed;     /* (server lock) @link is in the server's handshake_jobs */
  GList              link;       /* (server lock) data: the job */
} HandshakeJob;


gboolean          engine_io_handshake_job_cb       (gpointer         data);
void              engine_io_handshake_job_free     (gpointer         data);
void              engine_io_server_refuse_admissions (EngineIOServer *self);
/* Any thread (the close, once its wait for the sessions is over): takes
 * the requests of the handshakes whose job has not run (its context
 * blocked) or runs application code (the admission hook, the id function,
 * a WebSocket session's ::connection: it may block), EngineIORequest* to
 * answer and resume. */
GPtrArray        *engine_io_server_take_handshake_requests (EngineIOServer *self);
/* With the server lock: @job's request is exposed to the close (listed in
 * handshake_jobs), or no longer; each a no-op if it is so already. */
void              engine_io_server_list_job_locked   (EngineIOServer *self,
                                                      HandshakeJob   *job);
void              engine_io_server_unlist_job_locked (EngineIOServer *self,
                                                      HandshakeJob   *job);

/* engineio-server-sessions.c */
EngineIOSocket   *engine_io_server_find_socket     (EngineIOServer  *self,
                                                    const char      *sid);
/* The socket owner's finished() (engineio-server.c makes the owner). */
void              engine_io_server_socket_finished (EngineIOServer  *self,
                                                    EngineIOSocket  *socket);
GPtrArray        *engine_io_server_list_sockets    (EngineIOServer  *self);
guint             engine_io_server_count_sockets   (EngineIOServer  *self);
guint             engine_io_server_broadcast       (EngineIOServer  *self,
                                                    EngineIOPacket  *packet,
                                                    EngineIOSocket  *except);

/* engineio-server-shutdown.c: engine_io_server_close() and
 * engine_io_server_close_async(), the server checked. */
void              engine_io_server_shutdown        (EngineIOServer      *self);
void              engine_io_server_shutdown_async  (EngineIOServer      *self,
                                                    GCancellable        *cancellable,
                                                    GAsyncReadyCallback  callback,
                                                    gpointer             user_data);

G_END_DECLS
