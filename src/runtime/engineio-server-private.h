/* engineio-server-private.h: configuration snapshot and protocol core entry points
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "engineio-server.h"
#include "engineio-request-private.h"
#include "engineio-loop-private.h"
#include "engineio-metrics-private.h"
#include "engineio-session-machine-private.h"

G_BEGIN_DECLS

/* What the server's properties said when it started. Immutable and
 * reference counted, so workers and sessions read it without locks. */
typedef struct
{
  gatomicrefcount             ref_count;
  guint                       ping_interval;     /* ms */
  guint                       ping_timeout;      /* ms */
  guint                       upgrade_timeout;   /* ms */
  guint64                     max_payload;       /* bytes */
  char                       *path;              /* always ends with '/' */
  EngineIOTransports          transports;
  gboolean                    allow_upgrades;
  gboolean                    allow_eio3;
  gboolean                    http_compression;  /* poll responses, by Accept-Encoding */
  guint                       http_compression_threshold; /* bytes */
  gboolean                    per_message_deflate; /* WebSocket permessage-deflate offers accepted */
  guint                       per_message_deflate_threshold; /* bytes */
  char                      **cors_origins;      /* NULL: no CORS; {"*"}: any */
  gboolean                    cors_credentials;
  char                       *cookie_name;       /* NULL: no cookie */
  char                       *cookie_path;
  gboolean                    cookie_http_only;
  char                       *cookie_same_site;  /* NULL: none */
  guint                       max_sessions;      /* 0: unlimited */
  guint64                     send_queue_high_water; /* bytes */
  guint64                     receive_queue_high_water; /* bytes */
  EngineIOBackpressurePolicy  backpressure;
  char                       *metrics_path;      /* NULL: no metrics endpoint */
  guint                       connection_timeout; /* s, libmicrohttpd's inactivity timeout */
  double                      handshake_rate;    /* per s per address; 0: unlimited */
  double                      handshake_capacity; /* the bucket's size (handshake-burst) */
  double                      message_rate;      /* per s per socket; 0: unlimited */
  double                      message_capacity;  /* the bucket's size (message-burst) */
  EngineIORateLimitPolicy     message_policy;
  char                      **allowed_origins;   /* NULL: any origin */
  GPtrArray                  *trusted_proxies;   /* GInetAddressMask (owned); NULL: none */
  /* The descriptor budget (see #EngineIOServer:fd-reserve). */
  guint64                     descriptor_limit;  /* the most the server holds (counters.descriptors) */
  guint64                     session_descriptors; /* of which sessions may reserve this many */
  guint                       session_cost;      /* descriptors one session reserves */
  guint                       ping_interval_grace; /* ms, added to the client's deadlines */
  guint                       max_pending_admissions; /* handshakes awaiting the async hook */
  guint                       admission_timeout;  /* ms */
  /* What every session's machine times (engine_io_session_machine_init()
   * borrows it: sessions hold a reference to the snapshot). */
  EngineIOSessionTimings      session_timings;
} EngineIOConfig;

/* How long a closing polling session waits for the client's next poll to
 * hand it what was queued (the reference waits for the drain); a server
 * shutdown's bound on a closing session's poll response's write, too.
 * The session machine times both (its close-linger). */
#define ENGINE_IO_SOCKET_CLOSE_LINGER_MS 2000

EngineIOConfig *engine_io_config_ref   (EngineIOConfig *config);
void            engine_io_config_unref (EngineIOConfig *config);

/* Protocol core entry points, for adapters; all on the serving thread. */
gboolean engine_io_server_request_begin     (EngineIOServer  *self,
                                             EngineIORequest *req);
void     engine_io_server_request_body      (EngineIOServer  *self,
                                             EngineIORequest *req,
                                             GBytes          *body);
void     engine_io_server_request_too_large (EngineIOServer  *self,
                                             EngineIORequest *req);
/* A POST still reading its body (a chunk came) whose session has ended
 * meanwhile: the request lets go of the session (TRUE). The adapter then
 * reads the rest of the body without keeping it (at most max-payload in
 * all) and answers with engine_io_server_request_orphaned() at its end. */
gboolean engine_io_server_request_detach_ended (EngineIOServer  *self,
                                                EngineIORequest *req);
void     engine_io_server_request_orphaned  (EngineIOServer  *self,
                                             EngineIORequest *req);
void     engine_io_server_request_resumed   (EngineIOServer  *self,
                                             EngineIORequest *req);
/* A resumed request whose client closed the connection before it was
 * answered (the adapter checks, the first thing after a resumption):
 * instead of engine_io_server_request_resumed(); the adapter then closes
 * the connection without a response. */
void     engine_io_server_request_client_gone (EngineIOServer  *self,
                                               EngineIORequest *req);
/* A poll (a GET with a sid) whose client closed the connection before it
 * was begun: the adapter answers nothing and closes the connection; the
 * polling session it was for ends (`transport close`). */
void     engine_io_server_request_gone_unanswered (EngineIOServer  *self,
                                                   EngineIORequest *req);
void     engine_io_server_request_finished  (EngineIOServer  *self,
                                             EngineIORequest *req,
                                             gboolean         completed);
guint64  engine_io_server_get_max_payload   (EngineIOServer  *self);
guint    engine_io_server_get_connection_timeout (EngineIOServer *self);
GTlsCertificate *engine_io_server_get_tls_certificate (EngineIOServer *self);
/* Any thread, once started: the most descriptors the server may hold. */
guint64  engine_io_server_get_descriptor_limit (EngineIOServer *self);
/* Any thread: addresses the handshake rate limit remembers (for tests). */
guint    engine_io_server_get_rate_table_size (EngineIOServer *self);
gboolean engine_io_server_path_matches      (EngineIOServer  *self,
                                             const char      *path);

/* Responses the core and the sessions share. */
void     engine_io_core_respond             (EngineIOConfig  *config,
                                             EngineIORequest *req,
                                             guint            status,
                                             const char      *content_type,
                                             GBytes          *body);
void     engine_io_core_respond_error       (EngineIOConfig  *config,
                                             EngineIORequest *req,
                                             int              code);
/* @status with the JSON body {"code":@code,"message":@message}. */
void     engine_io_core_respond_status_json (EngineIOConfig  *config,
                                             EngineIORequest *req,
                                             guint            status,
                                             int              code,
                                             const char      *message);
void     engine_io_core_respond_packets     (EngineIOConfig  *config,
                                             EngineIORequest *req,
                                             EngineIOProtocolVersion version,
                                             EngineIOPacket * const *packets,
                                             gsize            n_packets);
void     engine_io_core_request_suspend     (EngineIOServer  *self,
                                             EngineIORequest *req);
/* Whether a request must be answered now instead of suspended: the
 * server's close has answered the suspended ones and goes on to stop the
 * daemon (see server_finish_close()). Any thread. */
gboolean engine_io_core_refuses_suspend     (EngineIOServer  *self);
void     engine_io_core_request_resume      (EngineIORequest *req);

/* The daemon engine_io_server_listen() started (the libmicrohttpd
 * adapter's, engineio-http-daemon.c, which has the public function): the
 * server stops it without calling the adapter's files. */
typedef struct
{
  /* Only once no connection is suspended (engine_io_server_close()).
   * Frees @listener. */
  void (*stop) (gpointer listener);
} EngineIOListenerClass;

/* engine_io_server_listen(), the server's side: before the adapter starts
 * its daemon (the descriptor limit, the start, "listens at most once"),
 * and after (the server owns @listener, listens on @port). */
gboolean engine_io_server_prepare_listen    (EngineIOServer  *self,
                                             GError         **error);
void     engine_io_server_set_listener      (EngineIOServer              *self,
                                             const EngineIOListenerClass *listener_class,
                                             gpointer                     listener,
                                             guint                        port);

/* Any thread: the live counters (engineio-metrics-private.h). */
EngineIOCounters *engine_io_server_get_counters (EngineIOServer *self);

/* Error codes of the protocol (the JSON `code`). */
enum
{
  ENGINE_IO_CODE_UNKNOWN_TRANSPORT = 0,
  ENGINE_IO_CODE_UNKNOWN_SID = 1,
  ENGINE_IO_CODE_BAD_HANDSHAKE_METHOD = 2,
  ENGINE_IO_CODE_BAD_REQUEST = 3,
  ENGINE_IO_CODE_FORBIDDEN = 4,
  ENGINE_IO_CODE_UNSUPPORTED_PROTOCOL_VERSION = 5,
};

G_END_DECLS
