/* engineio-http.c: the libmicrohttpd adapter
 *
 * With engineio-http-daemon.c (our own daemon), the only file that uses
 * libmicrohttpd (through engineio-http-internal.h and the public
 * <engineio/engineio-mhd.h>). It hosts the engine on the public host seam
 * (engineio-host.h), as any host does: each libmicrohttpd request is an
 * EngineIOHostRequest (EngineIOMhdRequest), its headers and query added,
 * its class functions (respond, suspend, resume, upgrade) answering,
 * holding and switching the connection. Beyond the public API it uses
 * engineio-host-private.h (the watcher's view of waiting polls; upgraded
 * sockets that stay with libmicrohttpd, whose descriptor the engine must
 * not close) and the server's private counters and settings (descriptor
 * budget, max-payload, connection-timeout, TLS certificate).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* POLLRDHUP */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <gio/gio.h>
#include <microhttpd.h>
#if HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "engineio-http-internal.h"
#include "engineio-peer-private.h"
#include "engineio-mhd.h"
#include "engineio-host-private.h"
#include "engineio-server-private.h"
#include "engineio-error.h"
#include "engineio-lock-private.h"


/* One libmicrohttpd request, as the engine's host request (the public
 * seam, engineio-host.h, as any host's; engineio-host-private.h for the
 * watcher's waiting polls and for upgraded sockets that stay with
 * libmicrohttpd). Everything but resume() runs on the connection's
 * libmicrohttpd thread (the serving thread). */
struct _EngineIOMhdRequest
{
  EngineIOHostRequest    parent_instance;
  EngineIOServer        *server;      /* unowned: outlives its requests */
  EngineIOHttpDaemon    *daemon;      /* unowned; NULL when mounted in an application's daemon */
  ConnWatch             *watch;       /* unowned: the connection's, on our own daemon */
  struct MHD_Connection *connection;
  struct MHD_Response   *pending;     /* owned: an answer given while the body was still
                                       * coming, queued once it is read */
  guint                  pending_status;
  guint64                body_read;   /* body bytes passed on or dropped */
  guint64                refused_at;  /* @body_read when the engine answered a body early */
  gboolean               handed;      /* given to the engine */
  gboolean               want_body;   /* the engine reads the body */
  gboolean               in_chunk;    /* within engine_io_host_request_add_body() */
  gboolean               dropping;    /* answered early: the rest of the body is dropped */
  gboolean               deferred;    /* not a POST: handed over at the final call */
  gboolean               responded;
  gboolean               upgrading;   /* upgrade() queued the 101 */
  gboolean               suspended;   /* suspend() called, its resumption not picked up yet */
  gboolean               poll;        /* suspended as a waiting poll */
  gboolean               watched;     /* its waiting poll is in @watch */
  int                    resumed;     /* (atomic) set by resume() */
};

#define ENGINE_IO_TYPE_MHD_REQUEST (engine_io_mhd_request_get_type ())
G_DECLARE_FINAL_TYPE (EngineIOMhdRequest, engine_io_mhd_request, ENGINE_IO, MHD_REQUEST, EngineIOHostRequest)
G_DEFINE_FINAL_TYPE (EngineIOMhdRequest, engine_io_mhd_request, ENGINE_IO_TYPE_HOST_REQUEST)

#define HOST(mr) ((EngineIOHostRequest *) (mr))

static gboolean connection_closed_by_peer (struct MHD_Connection *connection);

static void
mhd_respond (EngineIOHostRequest *request,
             guint                status,
             const char * const  *headers,
             GBytes              *body)
{
  EngineIOMhdRequest *mr = ENGINE_IO_MHD_REQUEST (request);
  struct MHD_Response *response;
  gsize size;
  gconstpointer data = g_bytes_get_data (body, &size);

  response = MHD_create_response_from_buffer_with_free_callback_cls (
      size, (void *) data, (MHD_ContentReaderFreeCallback) g_bytes_unref, g_bytes_ref (body));
  for (guint i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    MHD_add_response_header (response, headers[i], headers[i + 1]);

  /* A client that half-closed (its FIN came with or after the request):
   * answered, then closed. libmicrohttpd, which met the FIN while the
   * request was suspended, otherwise kept the connection until
   * connection-timeout (http-abuse poll-gone/half-close-reading). */
  if (connection_closed_by_peer (mr->connection))
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
  mr->responded = TRUE;
  /* libmicrohttpd takes a response at the request's head or once its body
   * is read, not in between: an answer to a body still coming (413 past
   * max-payload, a session that ended) waits for the body's end. */
  if (mr->in_chunk)
    {
      g_clear_pointer (&mr->pending, MHD_destroy_response);
      mr->pending = response;
      mr->pending_status = status;
      return;
    }
  if (MHD_queue_response (mr->connection, status, response) != MHD_YES)
    g_debug ("libmicrohttpd refused a response (status %u)", status);
  MHD_destroy_response (response);
}

/* Serving thread, under the session's lock. */
static void
watch_poll (EngineIOMhdRequest *mr)
{
  EngineIOHttpDaemon *daemon = mr->daemon;
  ConnWatch *watch = mr->watch;
  EngineIOHostPoll poll = { NULL, };

  if (!engine_io_host_request_get_waiting_poll (HOST (mr), &poll))
    return;
  mr->poll = TRUE;
  if (watch == NULL)
    {
      engine_io_host_poll_clear (&poll);
      return;
    }
  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  g_warn_if_fail (watch->poll.socket == NULL);
  engine_io_host_poll_clear (&watch->poll);
  watch->poll = poll;
  ENGINE_IO_UNLOCK (&daemon->lock);
  mr->watched = TRUE;
}

/* Serving thread, once the request is resumed (by anyone). */
static void
unwatch_poll (EngineIOMhdRequest *mr)
{
  EngineIOHttpDaemon *daemon = mr->daemon;
  ConnWatch *watch = mr->watch;
  EngineIOHostPoll poll;

  mr->watched = FALSE;
  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  poll = watch->poll;
  watch->poll = (EngineIOHostPoll) { NULL, };
  ENGINE_IO_UNLOCK (&daemon->lock);
  engine_io_host_poll_clear (&poll);
}

static void
mhd_suspend (EngineIOHostRequest *request)
{
  EngineIOMhdRequest *mr = ENGINE_IO_MHD_REQUEST (request);

  mr->suspended = TRUE;
  /* A waiting poll: checked for its client going when resumed, and on our
   * own daemon watched meanwhile. (A handshake waits for its admission
   * job, briefly.) */
  watch_poll (mr);
  MHD_suspend_connection (mr->connection);
}

void
engine_io_http_wake_worker (int wake_fd)
{
  guint64 one = 1;

  /* An eventfd's counter cannot overflow from this (it saturates long
   * after 2^63 writes); EAGAIN would mean it is already readable. */
  if (wake_fd >= 0 && write (wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
    g_warning ("http: cannot wake a worker: %s", g_strerror (errno));
}

/* Any thread. */
static void
mhd_resume (EngineIOHostRequest *request)
{
  EngineIOMhdRequest *mr = ENGINE_IO_MHD_REQUEST (request);
  /* Before the resume: the connection may be handled and gone after it. */
  int wake_fd = mr->watch != NULL ? mr->watch->wake_fd : -1;

  g_atomic_int_set (&mr->resumed, 1);
  MHD_resume_connection (mr->connection);
  engine_io_http_wake_worker (wake_fd);
}


/* A WebSocket that stays with libmicrohttpd: its descriptor is
 * libmicrohttpd's (attached with
 * engine_io_host_request_attach_descriptor(): the engine never closes it),
 * released with MHD_upgrade_action() once the engine lets it go. */
typedef struct
{
  struct MHD_UpgradeResponseHandle *urh;
  guint64                          *descriptors;  /* (atomic) */
  guint                             relay;        /* descriptors of a TLS relay (its socketpair),
                                                   * when no watch counts them */
  EngineIOHttpDaemon               *daemon;       /* owned (a reference): our own daemon, or
                                                   * NULL (an application's) */
  ConnWatch                        *watch;        /* unowned: its connection's; freed when
                                                   * libmicrohttpd closes the connection, which
                                                   * may come first (the client closed): only
                                                   * looked at under the daemon's lock, if still
                                                   * in its watches with @watch_id */
  guint64                           watch_id;
  int                               timeout_s;    /* our daemon's connection-timeout */
  int                               wake_fd;      /* its worker's, on our own daemon; or -1 */
} Upgraded;


static void
release_upgraded (gpointer data)
{
  Upgraded *upgraded = data;

  /* Over TLS, libmicrohttpd (0.9.75) keeps the connection, its relay's
   * socketpair and memory until it has passed everything on to the
   * client, or the client closes: a client that reads nothing and never
   * closes would hold them for ever. The watcher shuts the connection
   * down if it is still there after connection-timeout (the relay then
   * fails and libmicrohttpd closes it); the relay's descriptors stay
   * counted until then (notify_connection_cb()). */
  if (upgraded->watch != NULL)
    {
      ENGINE_IO_LOCK (&upgraded->daemon->lock, WATCHER);
      if (g_hash_table_contains (upgraded->daemon->watches, upgraded->watch) &&
          upgraded->watch->id == upgraded->watch_id)
        g_atomic_int_set (&upgraded->watch->deadline, now_s () + upgraded->timeout_s + 1);
      ENGINE_IO_UNLOCK (&upgraded->daemon->lock);
    }
  /* Never close() an upgraded socket: libmicrohttpd owns it. */
  MHD_upgrade_action (upgraded->urh, MHD_UPGRADE_ACTION_CLOSE);
  engine_io_http_wake_worker (upgraded->wake_fd);
  engine_io_counter_sub (upgraded->descriptors, upgraded->relay);
  /* The last reference, once the server stopped: libmicrohttpd closes
   * the socket now that the session is done with it. */
  if (upgraded->daemon != NULL)
    engine_io_http_daemon_unref (upgraded->daemon);
  g_free (upgraded);
}

/* A WebSocket that left libmicrohttpd: the GSocket of its duplicated
 * descriptor (handed over with engine_io_host_request_attach_connection(),
 * which closes it) is finalized; the descriptor was counted in the
 * server's descriptors. */
static void
release_detached (gpointer  data,
                  GObject  *where_the_socket_was)
{
  engine_io_counter_sub ((guint64 *) data, 1);
}

/* Whether a connection is served over TLS: libmicrohttpd then hands an
 * upgraded connection over as one end of a socketpair, and relays between
 * it and the TLS session for as long as the upgrade lasts. */
static gboolean
is_tls (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *cinfo;
  const union MHD_DaemonInfo *dinfo;

  cinfo = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_DAEMON);
  if (cinfo == NULL)
    return FALSE;
  dinfo = MHD_get_daemon_info (cinfo->daemon, MHD_DAEMON_INFO_FLAGS);
  return dinfo != NULL && (dinfo->flags & MHD_USE_TLS) != 0;
}

/* Whether an upgraded connection may leave libmicrohttpd at once: in a
 * daemon started with MHD_USE_TURBO (ours), libmicrohttpd closes a finished
 * connection's socket without shutdown(), so a duplicate of the socket
 * lives on while libmicrohttpd frees the connection and its memory pool
 * (about 10 KiB touched per idle WebSocket otherwise). Other daemons (an
 * application's, through the mount point) shut the socket down, so there
 * the connection stays with libmicrohttpd until the WebSocket ends. */
static gboolean
can_detach (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *cinfo;
  const union MHD_DaemonInfo *dinfo;

  cinfo = MHD_get_connection_info (connection, MHD_CONNECTION_INFO_DAEMON);
  if (cinfo == NULL)
    return FALSE;
  dinfo = MHD_get_daemon_info (cinfo->daemon, MHD_DAEMON_INFO_FLAGS);
  /* Over TLS the socket is libmicrohttpd's relay: it must stay. */
  return dinfo != NULL && (dinfo->flags & MHD_USE_TURBO) != 0 &&
         (dinfo->flags & MHD_USE_TLS) == 0;
}

/* libmicrohttpd's thread (the serving thread), once the 101 went out: the
 * socket is ours. */
static void
upgrade_handler (void                             *cls,
                 struct MHD_Connection            *connection,
                 void                             *req_cls,
                 const char                       *extra_in,
                 size_t                            extra_in_size,
                 MHD_socket                        sock,
                 struct MHD_UpgradeResponseHandle *urh)
{
  EngineIOMhdRequest *mr = cls;
  EngineIOCounters *counters = engine_io_server_get_counters (mr->server);
  gboolean detach = can_detach (connection);
  GSocket *socket = NULL;
  Upgraded *upgraded;
  int fd = -1;

  mr->upgrading = FALSE;
  /* The duplicate is one more descriptor until libmicrohttpd has closed
   * its own: only within the budget (the socket stays with libmicrohttpd
   * otherwise, where it is counted as a connection). */
  if (detach &&
      __atomic_add_fetch (&counters->descriptors, 1, __ATOMIC_RELAXED) >
        engine_io_server_get_descriptor_limit (mr->server))
    {
      engine_io_counter_sub (&counters->descriptors, 1);
      g_debug ("http: an upgraded socket stays with libmicrohttpd (descriptor budget)");
    }
  else if (detach)
    {
      g_autoptr(GError) error = NULL;

      do
        fd = fcntl (sock, F_DUPFD_CLOEXEC, 0);
      while (fd < 0 && errno == EINTR);
      if (fd < 0)
        g_debug ("http: cannot duplicate an upgraded socket (%s); it stays with libmicrohttpd",
                 g_strerror (errno));
      else if ((socket = g_socket_new_from_fd (fd, &error)) == NULL)
        {
          g_debug ("http: cannot wrap an upgraded socket (%s); it stays with libmicrohttpd",
                   error->message);
          close (fd);
        }
      if (socket == NULL)
        engine_io_counter_sub (&counters->descriptors, 1);
    }

  if (socket != NULL)
    {
      g_autoptr(GBytes) extra = NULL;
      int wake_fd = mr->watch != NULL ? mr->watch->wake_fd : -1;

      /* extra_in is copied before libmicrohttpd frees the connection. */
      if (extra_in_size > 0)
        extra = g_bytes_new (extra_in, extra_in_size);
      g_object_weak_ref (G_OBJECT (socket), release_detached, &counters->descriptors);
      engine_io_host_request_attach_connection (HOST (mr), socket, extra);
      MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
      /* libmicrohttpd finishes the close on its next run */
      engine_io_http_wake_worker (wake_fd);
      return;
    }

  upgraded = g_new0 (Upgraded, 1);
  upgraded->urh = urh;
  upgraded->descriptors = &counters->descriptors;
  upgraded->wake_fd = mr->watch != NULL ? mr->watch->wake_fd : -1;
  /* The session's cost in the budget counts the relay's socketpair
   * (config_set_descriptor_budget()). */
  upgraded->relay = is_tls (connection) ? 2 : 0;
  if (upgraded->relay > 0)
    {
      const union MHD_ConnectionInfo *cinfo =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      int one = 1;

      if (cinfo != NULL)
        setsockopt (cinfo->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  engine_io_counter_add (&counters->descriptors, upgraded->relay);
  if (mr->daemon != NULL)
    upgraded->daemon = engine_io_http_daemon_ref (mr->daemon);
  if (upgraded->relay > 0 && mr->watch != NULL && mr->daemon != NULL)
    {
      upgraded->watch = mr->watch;
      upgraded->watch_id = mr->watch->id;
      upgraded->timeout_s = mr->daemon->timeout_s;
      g_atomic_int_inc (&mr->daemon->live_relays);
      g_atomic_int_set (&mr->watch->relay, upgraded->relay);
      upgraded->relay = 0;  /* the watch's until the connection closes */
    }
  engine_io_host_request_attach_descriptor (HOST (mr), sock, extra_in, extra_in_size,
                                            release_upgraded, upgraded);
}

static gboolean
mhd_upgrade (EngineIOHostRequest *request,
             const char * const  *headers)
{
  EngineIOMhdRequest *mr = ENGINE_IO_MHD_REQUEST (request);
  struct MHD_Response *response = MHD_create_response_for_upgrade (upgrade_handler, mr);
  enum MHD_Result ret;

  if (response == NULL)
    return FALSE;
  for (guint i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    MHD_add_response_header (response, headers[i], headers[i + 1]);
  ret = MHD_queue_response (mr->connection, MHD_HTTP_SWITCHING_PROTOCOLS, response);
  MHD_destroy_response (response);
  if (ret != MHD_YES)
    return FALSE;
  mr->upgrading = TRUE;
  return TRUE;
}

static void
engine_io_mhd_request_finalize (GObject *object)
{
  EngineIOMhdRequest *mr = ENGINE_IO_MHD_REQUEST (object);

  g_clear_pointer (&mr->pending, MHD_destroy_response);
  G_OBJECT_CLASS (engine_io_mhd_request_parent_class)->finalize (object);
}

static void
engine_io_mhd_request_class_init (EngineIOMhdRequestClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  EngineIOHostRequestClass *host_class = ENGINE_IO_HOST_REQUEST_CLASS (klass);

  object_class->finalize = engine_io_mhd_request_finalize;
  host_class->respond = mhd_respond;
  host_class->suspend = mhd_suspend;
  host_class->resume = mhd_resume;
  host_class->upgrade = mhd_upgrade;
}

static void
engine_io_mhd_request_init (EngineIOMhdRequest *mr)
{
}

/* Serving thread: has the client closed @connection (now, without
 * waiting)? Checked before a resumed poll is answered: a response written
 * into a connection the client closed would be "sent" (the kernel takes
 * it) but never read. */
static gboolean
connection_closed_by_peer (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);

  return info != NULL && engine_io_fd_closed_by_peer (info->connect_fd);
}

/* Headers, as they came: engine_io_host_request_add_header() joins the
 * lists a proxy may have split over several headers (X-Forwarded-For,
 * Forwarded). */
static enum MHD_Result
collect_header (void                *cls,
                enum MHD_ValueKind   kind,
                const char          *key,
                const char          *value)
{
  if (key != NULL)
    engine_io_host_request_add_header (cls, key, value != NULL ? value : "");
  return MHD_YES;
}

static enum MHD_Result
collect_query (void                *cls,
               enum MHD_ValueKind   kind,
               const char          *key,
               size_t               key_size,
               const char          *value,
               size_t               value_size)
{
  if (key == NULL)
    return MHD_YES;
  /* libmicrohttpd decodes %00 into the value, which C strings cut short
   * (`sid=<sid>%00junk` would read as <sid>): refused (code 3), which the
   * seam does for an encoded NUL in a raw query. */
  if (memchr (key, '\0', key_size) != NULL ||
      (value != NULL && memchr (value, '\0', value_size) != NULL))
    engine_io_host_request_add_query_string (cls, "%00");
  else
    engine_io_host_request_add_query (cls, key, value != NULL ? value : "");
  return MHD_YES;
}

/* Request framing (RFC 9112 §6), which libmicrohttpd 0.9.75 checks only in
 * part. */
typedef struct
{
  guint       n_lengths;
  const char *length;          /* the first Content-Length */
  gboolean    lengths_differ;
  guint       n_encodings;
  gboolean    chunked;         /* the (only) Transfer-Encoding is chunked */
} Framing;

static enum MHD_Result
collect_framing (void                *cls,
                 enum MHD_ValueKind   kind,
                 const char          *key,
                 const char          *value)
{
  Framing *framing = cls;

  if (key == NULL)
    return MHD_YES;
  if (g_ascii_strcasecmp (key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
    {
      if (framing->n_lengths++ == 0)
        framing->length = value != NULL ? value : "";
      else if (g_strcmp0 (framing->length, value != NULL ? value : "") != 0)
        framing->lengths_differ = TRUE;
    }
  else if (g_ascii_strcasecmp (key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
    {
      framing->n_encodings++;
      framing->chunked = value != NULL && g_ascii_strcasecmp (value, "chunked") == 0;
    }
  return MHD_YES;
}

/* NULL if the request's body is framed in one way only; otherwise what
 * is wrong. libmicrohttpd frames the body by the first Content-Length
 * while the engine would read another, by Transfer-Encoding even with a
 * Content-Length, and waits for a body of unknown length (until the
 * connection times out) for a Transfer-Encoding other than chunked. (An
 * unparsable Content-Length is answered by libmicrohttpd itself.)
 * @length: the first Content-Length, or NULL. */
static const char *
framing_error (struct MHD_Connection  *connection,
               const char            **length)
{
  Framing framing = { 0, };

  MHD_get_connection_values (connection, MHD_HEADER_KIND, collect_framing, &framing);
  *length = framing.length;
  if (framing.n_encodings > 0 && framing.n_lengths > 0)
    return "Content-Length together with Transfer-Encoding";
  if (framing.n_encodings > 1 || (framing.n_encodings == 1 && !framing.chunked))
    return "a Transfer-Encoding other than chunked";
  if (framing.lengths_differ)
    return "Content-Length headers that differ";
  return NULL;
}

static char *
remote_address (struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  char host[NI_MAXHOST];
  socklen_t len;

  if (info == NULL || info->client_addr == NULL)
    return g_strdup ("");
  len = info->client_addr->sa_family == AF_INET6 ? sizeof (struct sockaddr_in6)
                                                 : sizeof (struct sockaddr_in);
  if (getnameinfo (info->client_addr, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
    return g_strdup ("");
  return g_strdup (host);
}

static EngineIOMhdRequest *
mhd_request_new (EngineIOServer        *server,
                 EngineIOHttpDaemon    *daemon,
                 struct MHD_Connection *connection,
                 const char            *url,
                 const char            *method)
{
  EngineIOMhdRequest *mr;
  g_autofree char *path = NULL;
  g_autofree char *address = remote_address (connection);
  const char *query_start;

  query_start = strchr (url, '?');  /* libmicrohttpd passes the path only; be safe */
  path = query_start ? g_strndup (url, query_start - url) : g_strdup (url);
  mr = g_object_new (ENGINE_IO_TYPE_MHD_REQUEST,
                     "method", method,
                     "path", path,
                     "remote-address", address,
                     NULL);
  mr->server = server;
  /* The server outlives the request: its daemon, or the application's
   * mounting it, is stopped first; or, when an upgraded connection that
   * stayed with libmicrohttpd outlives the close, with that connection's
   * release (engine_io_http_daemon_unref()), by its session, which holds
   * the server. */
  engine_io_host_request_borrow_server (HOST (mr));
  mr->connection = connection;
  if (daemon != NULL)
    {
      const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

      mr->watch = info != NULL ? info->socket_context : NULL;
      mr->daemon = daemon;
    }
  MHD_get_connection_values (connection, MHD_HEADER_KIND, collect_header, mr);
  MHD_get_connection_values_n (connection, MHD_GET_ARGUMENT_KIND, collect_query, mr);
  return mr;
}

static enum MHD_Result
respond_plain (struct MHD_Connection *connection,
               guint                  status,
               const char            *text,
               gboolean               close)
{
  struct MHD_Response *response =
    MHD_create_response_from_buffer (strlen (text), (void *) text, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret;

  MHD_add_response_header (response, "Content-Type", "text/plain; charset=UTF-8");
  if (close)
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
  ret = MHD_queue_response (connection, status, response);
  MHD_destroy_response (response);
  return ret;
}

/* What a POST body may go on past max-payload (chunked, so not refused
 * at its head) before its connection is closed instead of answered 413. */
#define MAX_DROPPED_BODY (1024 * 1024)

/* Serving thread: a chunk of a body the engine answered early (413 past
 * max-payload, 400 for a session that ended) is dropped, but not without
 * end: the connection is closed instead (the POST fails; the session goes
 * on). Returns FALSE to close. */
static gboolean
drop_chunk (EngineIOMhdRequest *mr)
{
  if (mr->pending_status == 413)
    {
      /* A chunked body over max-payload is read to its end for its 413,
       * up to MAX_DROPPED_BODY more. */
      if (mr->body_read - mr->refused_at > MAX_DROPPED_BODY)
        {
          g_debug ("http: closing a connection whose body goes on past max-payload");
          return FALSE;
        }
    }
  /* A POST for an ended session: no more than a POST may carry. */
  else if (mr->body_read > engine_io_server_get_max_payload (mr->server))
    {
      g_debug ("http: closing a POST for an ended session whose body goes on past max-payload");
      return FALSE;
    }
  return TRUE;
}

/* @daemon: NULL when mounted in an application's daemon. */
enum MHD_Result
engine_io_http_handle_request (EngineIOServer         *server,
                EngineIOHttpDaemon     *daemon,
                struct MHD_Connection  *connection,
                const char             *url,
                const char             *method,
                const char             *version,
                const char             *upload_data,
                size_t                 *upload_data_size,
                void                  **req_cls)
{
  EngineIOMhdRequest *mr = *req_cls;

  if (mr == NULL)
    {
      const char *framing;
      const char *length;

      mr = mhd_request_new (server, daemon, connection, url, method);
      *req_cls = mr;

      /* A body framed two ways (request smuggling) or in a way we cannot
       * read: 400, and the connection closes after it (RFC 9112 §6.1,
       * §6.3), whatever the path. */
      if ((framing = framing_error (connection, &length)) != NULL)
        {
          g_debug ("http: refused a request with %s", framing);
          mr->responded = TRUE;
          return respond_plain (connection, MHD_HTTP_BAD_REQUEST, "Bad request framing", TRUE);
        }
      if (length != NULL)
        {
          guint64 n;
          /* libmicrohttpd reads up to 2^64 - 1: beyond what the engine
           * counts, but too large all the same. */
          if (g_ascii_string_to_unsigned (length, 10, 0, G_MAXUINT64, &n, NULL))
            engine_io_host_request_set_content_length (HOST (mr), (gint64) MIN (n, (guint64) G_MAXINT64));
        }

      /* A POST is handed over now, at its headers: overlapping POSTs are
       * detected and an oversized Content-Length refused before its body
       * is read. Anything else at the final call: a response queued (or a
       * connection suspended) at the headers call makes libmicrohttpd
       * close the connection after it, losing keep-alive. */
      if (strcmp (method, MHD_HTTP_METHOD_POST) == 0)
        {
          mr->handed = TRUE;
          mr->want_body = engine_io_server_handle_host_request (server, HOST (mr));
        }
      else
        mr->deferred = TRUE;
      return MHD_YES;
    }

  if (*upload_data_size > 0)
    {
      mr->body_read += *upload_data_size;
      if (mr->want_body)
        {
          gboolean more;

          mr->in_chunk = TRUE;
          more = engine_io_host_request_add_body (HOST (mr), (const guint8 *) upload_data,
                                                  *upload_data_size);
          mr->in_chunk = FALSE;
          if (!more)
            {
              /* Answered early: the answer waits for the body's end. */
              mr->want_body = FALSE;
              mr->dropping = TRUE;
              mr->refused_at = mr->body_read;
              if (mr->pending_status != 413 && !drop_chunk (mr))
                {
                  *upload_data_size = 0;
                  return MHD_NO;
                }
            }
        }
      else if (mr->dropping && !drop_chunk (mr))
        {
          *upload_data_size = 0;
          return MHD_NO;
        }
      else if (!mr->dropping &&
               mr->body_read > engine_io_server_get_max_payload (mr->server))
        {
          /* A body the engine does not read (a request other than a
           * POST, handed over at its final call): dropped, but not
           * without end (it was read for as long as the client sent). */
          g_debug ("http: closing a connection whose %s request's body goes on past max-payload",
                   method);
          *upload_data_size = 0;
          return MHD_NO;
        }
      *upload_data_size = 0;
      return MHD_YES;
    }

  if (g_atomic_int_compare_and_exchange (&mr->resumed, 1, 0))
    {
      gboolean poll = mr->poll;

      mr->suspended = FALSE;
      mr->poll = FALSE;
      if (mr->watched)
        unwatch_poll (mr);
      /* A poll whose client closed the connection while it waited (our
       * watcher resumed it, or a message came before the watcher looked):
       * no response. The session ends (`transport close`), and whatever
       * would have been written stays unsent, reported so. */
      if (poll && connection_closed_by_peer (connection))
        engine_io_host_request_client_gone (HOST (mr));
      engine_io_host_request_resumed (HOST (mr));
      if (!mr->responded && !mr->suspended && !mr->upgrading)
        return MHD_NO;  /* libmicrohttpd closes the connection */
      return MHD_YES;
    }

  if (mr->deferred)
    {
      mr->deferred = FALSE;
      /* A poll whose client closed the connection before it was handled
       * (the FIN came with the request): answered now, it would carry
       * queued messages into the closed connection, and libmicrohttpd
       * would report them written. No answer, as for a waiting poll whose
       * client goes: its session ends (`transport close`) and what was
       * queued is reported not flushed. */
      if (strcmp (method, MHD_HTTP_METHOD_GET) == 0 &&
          MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "sid") != NULL &&
          connection_closed_by_peer (connection))
        {
          engine_io_host_request_client_gone (HOST (mr));
          mr->handed = TRUE;
          engine_io_server_handle_host_request (server, HOST (mr));
          return MHD_NO;  /* libmicrohttpd closes the connection */
        }
      mr->handed = TRUE;
      if (engine_io_server_handle_host_request (server, HOST (mr)))
        {
          /* Only POSTs read a body, and they are handed over at their
           * headers. */
          g_warn_if_reached ();
        }
      return MHD_YES;
    }

  if (mr->pending != NULL)
    {
      struct MHD_Response *response = g_steal_pointer (&mr->pending);

      mr->dropping = FALSE;
      if (MHD_queue_response (connection, mr->pending_status, response) != MHD_YES)
        g_debug ("libmicrohttpd refused a response (status %u)", mr->pending_status);
      MHD_destroy_response (response);
      return MHD_YES;
    }

  if (mr->want_body)
    {
      mr->want_body = FALSE;
      engine_io_host_request_end_body (HOST (mr));
      return MHD_YES;
    }

  return MHD_YES;
}

/**
 * engine_io_server_mhd_handler: (skip)
 * @server: the server to hand the request to
 * @connection: the connection, as libmicrohttpd gave it
 * @url: the path, as libmicrohttpd gave it
 * @method: the method
 * @version: the HTTP version
 * @upload_data: body bytes
 * @upload_data_size: (inout): body byte count
 * @req_cls: (inout): the per-request pointer
 *
 * Mounts the engine in an application's own libmicrohttpd daemon: call it
 * from your `MHD_AccessHandlerCallback` for requests whose path is the
 * server's #EngineIOServer:path, passing every argument through, and call
 * engine_io_server_mhd_completed() from your `MHD_OPTION_NOTIFY_COMPLETED`
 * callback for the same requests (recognise them by keeping your own
 * marker, or by routing on the path again). Your daemon must be started
 * with `MHD_ALLOW_SUSPEND_RESUME` (and `MHD_ALLOW_UPGRADE` for WebSocket),
 * and must not be stopped before engine_io_server_close() returned. The
 * engine resumes suspended polls from its own threads, so a daemon you run
 * yourself (no `MHD_USE_INTERNAL_POLLING_THREAD`) must be run again soon
 * after: prefer a daemon with libmicrohttpd's internal threads. With those
 * threads and `MHD_USE_EPOLL`, libmicrohttpd (0.9.75 to 1.0.1 at least)
 * can leave the requests of 128 connections unserved until the next
 * connection timeout when exactly 128 become ready at once (see the
 * README's "Threads and contexts"; the engine's own daemon runs
 * libmicrohttpd itself to avoid it): `MHD_USE_POLL_INTERNAL_THREAD` has
 * no such stall.
 *
 * The server starts on the first request (its properties are frozen
 * then). Requests for another path get 404. A request whose body is
 * framed two ways (two different `Content-Length`s, `Content-Length` with
 * `Transfer-Encoding`, a `Transfer-Encoding` other than chunked) gets 400
 * and its connection is closed.
 *
 * Unlike engine_io_server_listen()'s daemon, yours is not watched for
 * clients that close the connection of a waiting poll: such a session
 * ends (`transport close`) when the poll is next resumed, for a message
 * or a ping, instead of at once.
 *
 * Call on libmicrohttpd's threads, as libmicrohttpd calls you.
 *
 * Returns: what libmicrohttpd expects of an access handler
 */
enum MHD_Result
engine_io_server_mhd_handler (EngineIOServer         *server,
                              struct MHD_Connection  *connection,
                              const char             *url,
                              const char             *method,
                              const char             *version,
                              const char             *upload_data,
                              size_t                 *upload_data_size,
                              void                  **req_cls)
{
  return engine_io_http_handle_request (server, NULL, connection, url, method, version,
                         upload_data, upload_data_size, req_cls);
}

/**
 * engine_io_server_mhd_completed: (skip)
 * @server: the server the request was handed to
 * @connection: the connection
 * @req_cls: (inout): the per-request pointer engine_io_server_mhd_handler() set
 * @toe: how the request ended
 *
 * Releases what engine_io_server_mhd_handler() kept for a request; see
 * there. Call from your `MHD_OPTION_NOTIFY_COMPLETED` callback.
 */
void
engine_io_server_mhd_completed (EngineIOServer                   *server,
                                struct MHD_Connection            *connection,
                                void                            **req_cls,
                                enum MHD_RequestTerminationCode   toe)
{
  EngineIOMhdRequest *mr = *req_cls;

  if (mr == NULL)
    return;
  *req_cls = NULL;

  if (mr->suspended)
    {
      /* libmicrohttpd completes a resumed connection whose client left
       * without calling the handler again: the request ends unanswered. */
      mr->suspended = FALSE;
      if (mr->watched)
        unwatch_poll (mr);
      engine_io_host_request_finished_resumed (HOST (mr), toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    }
  else
    engine_io_host_request_finished (HOST (mr), toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  g_object_unref (mr);
}
