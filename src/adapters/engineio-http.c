/* engineio-http.c: the libmicrohttpd adapter
 *
 * The only file (with engineio-websocket.c for upgraded sockets) that
 * includes <microhttpd.h>. It turns libmicrohttpd's access-handler calls
 * into the protocol core's request interface (engineio-request-private.h):
 * headers and query in, respond/suspend/resume out.
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

#include "engineio-peer-private.h"
#include "engineio-http-private.h"
#include "engineio-mhd.h"
#include "engineio-server-private.h"
#include "engineio-socket-private.h"
#include "engineio-websocket-private.h"
#include "engineio-error.h"
#include "engineio-lock-private.h"

typedef struct _ConnWatch ConnWatch;

typedef struct
{
  EngineIORequest        base;        /* first: the core's view */
  EngineIOServer        *server;      /* unowned: outlives its requests */
  EngineIOHttpDaemon    *daemon;      /* unowned; NULL when mounted in an application's daemon */
  ConnWatch             *watch;       /* unowned: the connection's, on our own daemon */
  struct MHD_Connection *connection;
  GByteArray            *body;        /* POST body being read */
  gboolean               want_body;
  gboolean               deferred;    /* not a POST: begin at the final call */
  gboolean               too_large;
  gboolean               orphaned;    /* a POST whose session ended while its body was read */
  guint64                dropped;     /* body bytes read and dropped after too_large
                                       * (or in all, once orphaned) */
  gboolean               responded;
  int                    resumed;     /* (atomic) set by resume() */
} HttpRequest;

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
  EngineIORequest *poll;        /* (daemon lock) the waiting poll suspended on it, or NULL;
                                 * never dereferenced here: the session checks it */
  gsize            poll_serial; /* (daemon lock) its serial */
  EngineIOSocket  *poll_socket; /* (daemon lock) (owned) its session */
  guint            relay;       /* (atomic) descriptors of its TLS relay (a socketpair) once
                                 * upgraded, counted until libmicrohttpd closes it */
  gsize            tls_read;    /* over TLS, bytes read before its first request head (its
                                 * connection's libmicrohttpd thread only) */
  gboolean         request_seen;/* its first request head is in (the same thread) */
};

struct _EngineIOHttpDaemon
{
  struct MHD_Daemon *daemon;
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

/* Request interface */

static gboolean connection_closed_by_peer (struct MHD_Connection *connection);

static void
http_respond (EngineIORequest *req,
              guint            status,
              GPtrArray       *headers,
              GBytes          *body)
{
  HttpRequest *hr = (HttpRequest *) req;
  struct MHD_Response *response;
  gsize size;
  gconstpointer data = g_bytes_get_data (body, &size);

  response = MHD_create_response_from_buffer_with_free_callback_cls (
      size, (void *) data, (MHD_ContentReaderFreeCallback) g_bytes_unref, g_bytes_ref (body));
  if (headers != NULL)
    for (guint i = 0; i + 1 < headers->len; i += 2)
      MHD_add_response_header (response, g_ptr_array_index (headers, i),
                               g_ptr_array_index (headers, i + 1));

  /* A client that half-closed (its FIN came with or after the request):
   * answered, then closed. libmicrohttpd, which met the FIN while the
   * request was suspended, otherwise kept the connection until
   * connection-timeout (http-abuse poll-gone/half-close-reading). */
  if (connection_closed_by_peer (hr->connection))
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONNECTION, "close");
  hr->responded = TRUE;
  if (MHD_queue_response (hr->connection, status, response) != MHD_YES)
    g_debug ("libmicrohttpd refused a response (status %u)", status);
  MHD_destroy_response (response);
}

/* Serving thread, under the session's lock. */
static void
watch_poll (HttpRequest *hr)
{
  EngineIOHttpDaemon *daemon = hr->daemon;
  ConnWatch *watch = hr->watch;

  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  g_warn_if_fail (watch->poll_socket == NULL);
  watch->poll = &hr->base;
  watch->poll_serial = hr->base.serial;
  if (watch->poll_socket == NULL)
    watch->poll_socket = g_object_ref (hr->base.socket);
  ENGINE_IO_UNLOCK (&daemon->lock);
}

/* Serving thread, once the request is resumed (by anyone). */
static void
unwatch_poll (HttpRequest *hr)
{
  EngineIOHttpDaemon *daemon = hr->daemon;
  ConnWatch *watch = hr->watch;
  EngineIOSocket *socket;

  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  watch->poll = NULL;
  socket = g_steal_pointer (&watch->poll_socket);
  ENGINE_IO_UNLOCK (&daemon->lock);
  g_clear_object (&socket);
}

static void
http_suspend (EngineIORequest *req)
{
  HttpRequest *hr = (HttpRequest *) req;

  /* A waiting poll, on our own daemon: watched for its client going. (A
   * handshake waits for its admission job, briefly.) */
  if (hr->watch != NULL && req->kind == ENGINE_IO_REQUEST_POLL && req->socket != NULL)
    watch_poll (hr);
  MHD_suspend_connection (hr->connection);
}

static void
http_resume (EngineIORequest *req)
{
  HttpRequest *hr = (HttpRequest *) req;

  g_atomic_int_set (&hr->resumed, 1);
  MHD_resume_connection (hr->connection);
}

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

/* A WebSocket that stays with libmicrohttpd. */
typedef struct
{
  struct MHD_UpgradeResponseHandle *urh;
  guint64                          *descriptors;  /* (atomic) */
  guint                             relay;        /* descriptors of a TLS relay (its socketpair),
                                                   * when no watch counts them */
  EngineIOHttpDaemon               *daemon;       /* unowned: our own daemon, over TLS */
  ConnWatch                        *watch;        /* unowned: its connection's; freed when
                                                   * libmicrohttpd closes the connection, which
                                                   * may come first (the client closed): only
                                                   * looked at under the daemon's lock, if still
                                                   * in its watches with @watch_id */
  guint64                           watch_id;
  int                               timeout_s;    /* our daemon's connection-timeout */
} Upgraded;

static int now_s (void);

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
  engine_io_counter_sub (upgraded->descriptors, upgraded->relay);
  g_free (upgraded);
}

/* A WebSocket that left libmicrohttpd: its descriptor, counted in the
 * server's descriptors. */
typedef struct
{
  int      fd;
  guint64 *descriptors;  /* (atomic) */
} Detached;

static void
release_detached (gpointer data)
{
  Detached *detached = data;

  close (detached->fd);
  engine_io_counter_sub (detached->descriptors, 1);
  g_free (detached);
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

/* libmicrohttpd's thread, once the 101 went out: the socket is ours. */
static void
upgrade_handler (void                             *cls,
                 struct MHD_Connection            *connection,
                 void                             *req_cls,
                 const char                       *extra_in,
                 size_t                            extra_in_size,
                 MHD_socket                        sock,
                 struct MHD_UpgradeResponseHandle *urh)
{
  HttpRequest *hr = cls;
  EngineIOCounters *counters = engine_io_server_get_counters (hr->server);
  EngineIOWebSocket *ws;
  gboolean detach = can_detach (connection);
  int fd = -1;

  /* The duplicate is one more descriptor until libmicrohttpd has closed
   * its own: only within the budget (the socket stays with libmicrohttpd
   * otherwise, where it is counted as a connection). */
  if (detach &&
      __atomic_add_fetch (&counters->descriptors, 1, __ATOMIC_RELAXED) >
        engine_io_server_get_descriptor_limit (hr->server))
    {
      engine_io_counter_sub (&counters->descriptors, 1);
      g_debug ("http: an upgraded socket stays with libmicrohttpd (descriptor budget)");
    }
  else if (detach)
    {
      do
        fd = fcntl (sock, F_DUPFD_CLOEXEC, 0);
      while (fd < 0 && errno == EINTR);
      if (fd < 0)
        {
          engine_io_counter_sub (&counters->descriptors, 1);
          g_debug ("http: cannot duplicate an upgraded socket (%s); it stays with libmicrohttpd",
                   g_strerror (errno));
        }
    }

  if (fd >= 0)
    {
      Detached *detached = g_new (Detached, 1);

      detached->fd = fd;
      detached->descriptors = &counters->descriptors;
      /* extra_in is copied before libmicrohttpd frees the connection. */
      ws = engine_io_websocket_new (fd, extra_in, extra_in_size,
                                    engine_io_server_get_max_payload (hr->server),
                                    release_detached, detached);
      MHD_upgrade_action (urh, MHD_UPGRADE_ACTION_CLOSE);
    }
  else
    {
      Upgraded *upgraded = g_new0 (Upgraded, 1);

      upgraded->urh = urh;
      upgraded->descriptors = &counters->descriptors;
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
      if (upgraded->relay > 0 && hr->watch != NULL)
        {
          upgraded->daemon = hr->daemon;
          upgraded->watch = hr->watch;
          upgraded->watch_id = hr->watch->id;
          upgraded->timeout_s = hr->daemon->timeout_s;
          g_atomic_int_set (&hr->watch->relay, upgraded->relay);
          upgraded->relay = 0;  /* the watch's until the connection closes */
        }
      ws = engine_io_websocket_new (sock, extra_in, extra_in_size,
                                    engine_io_server_get_max_payload (hr->server),
                                    release_upgraded, upgraded);
    }
  if (hr->base.ws_deflate)
    engine_io_websocket_set_deflate (ws, hr->base.ws_deflate_threshold);
  hr->base.kind = ENGINE_IO_REQUEST_DONE;  /* switched: nothing left to fail */
  hr->base.switched = TRUE;
  engine_io_socket_attach_websocket (hr->base.socket, ws, hr->base.reject_ws);
}

static gboolean
http_upgrade (EngineIORequest *req,
              GPtrArray       *headers,
              EngineIOSocket  *socket)
{
  HttpRequest *hr = (HttpRequest *) req;
  struct MHD_Response *response = MHD_create_response_for_upgrade (upgrade_handler, hr);
  enum MHD_Result ret;

  if (response == NULL)
    return FALSE;
  for (guint i = 0; i + 1 < headers->len; i += 2)
    MHD_add_response_header (response, g_ptr_array_index (headers, i),
                             g_ptr_array_index (headers, i + 1));
  hr->responded = TRUE;
  ret = MHD_queue_response (hr->connection, MHD_HTTP_SWITCHING_PROTOCOLS, response);
  MHD_destroy_response (response);
  return ret == MHD_YES;
}

static const EngineIORequestVTable http_vtable = {
  .respond = http_respond,
  .suspend = http_suspend,
  .resume = http_resume,
  .upgrade = http_upgrade,
};

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

#define MAX_JOINED_LIST 4096

static enum MHD_Result
collect_header (void                *cls,
                enum MHD_ValueKind   kind,
                const char          *key,
                const char          *value)
{
  GHashTable *table = cls;
  char *name;
  char *text;
  const char *previous;

  if (key == NULL)
    return MHD_YES;
  name = g_ascii_strdown (key, -1);
  text = value != NULL ? g_utf8_make_valid (value, -1) : g_strdup ("");
  /* Lists a proxy may have split over several headers: one list, in
   * order (trusted-proxies reads them from the right). Past
   * MAX_JOINED_LIST bytes, what came before the last header is replaced by
   * an entry that is no address (which leaves the TCP peer as the client,
   * should the walk get there): the joins stay linear in the head's size. */
  if ((strcmp (name, "x-forwarded-for") == 0 || strcmp (name, "forwarded") == 0) &&
      (previous = g_hash_table_lookup (table, name)) != NULL)
    {
      char *joined = g_strconcat (strlen (previous) + strlen (text) > MAX_JOINED_LIST ? "overflow" : previous,
                                  ", ", text, NULL);

      g_free (text);
      text = joined;
    }
  g_hash_table_insert (table, name, text);
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
  HttpRequest *hr = cls;

  if (key == NULL)
    return MHD_YES;
  /* libmicrohttpd decodes %00 into the value, which C strings cut short
   * (`sid=<sid>%00junk` would read as <sid>): refused (code 3). */
  if (memchr (key, '\0', key_size) != NULL ||
      (value != NULL && memchr (value, '\0', value_size) != NULL))
    hr->base.malformed = TRUE;
  g_hash_table_insert (hr->base.query, g_utf8_make_valid (key, -1),
                       value != NULL ? g_utf8_make_valid (value, -1) : g_strdup (""));
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
 * unparsable Content-Length is answered by libmicrohttpd itself.) */
static const char *
framing_error (struct MHD_Connection *connection)
{
  Framing framing = { 0, };

  MHD_get_connection_values (connection, MHD_HEADER_KIND, collect_framing, &framing);
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

static HttpRequest *
http_request_new (EngineIOServer        *server,
                  EngineIOHttpDaemon    *daemon,
                  struct MHD_Connection *connection,
                  const char            *url,
                  const char            *method)
{
  HttpRequest *hr = g_new0 (HttpRequest, 1);
  const char *length;
  const char *query_start;

  engine_io_request_init (&hr->base, &http_vtable);
  hr->server = server;
  hr->connection = connection;
  if (daemon != NULL)
    {
      const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

      hr->watch = info != NULL ? info->socket_context : NULL;
      hr->daemon = hr->watch != NULL ? daemon : NULL;
    }
  hr->base.method = g_strdup (method);
  query_start = strchr (url, '?');  /* libmicrohttpd passes the path only; be safe */
  hr->base.path = query_start ? g_strndup (url, query_start - url) : g_strdup (url);
  hr->base.headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  hr->base.query = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  MHD_get_connection_values (connection, MHD_HEADER_KIND, collect_header, hr->base.headers);
  MHD_get_connection_values_n (connection, MHD_GET_ARGUMENT_KIND, collect_query, hr);
  hr->base.remote_address = remote_address (connection);

  length = g_hash_table_lookup (hr->base.headers, "content-length");
  if (length != NULL)
    {
      guint64 n;
      /* libmicrohttpd reads up to 2^64 - 1: beyond what the core counts,
       * but too large all the same. */
      if (g_ascii_string_to_unsigned (length, 10, 0, G_MAXUINT64, &n, NULL))
        hr->base.content_length = (gint64) MIN (n, (guint64) G_MAXINT64);
    }

  return hr;
}

static void
http_request_free (HttpRequest *hr)
{
  if (hr->body != NULL)
    g_byte_array_unref (hr->body);
  engine_io_request_clear (&hr->base);
  g_free (hr);
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

/* @daemon: NULL when mounted in an application's daemon. */
static enum MHD_Result
handle_request (EngineIOServer         *server,
                EngineIOHttpDaemon     *daemon,
                struct MHD_Connection  *connection,
                const char             *url,
                const char             *method,
                const char             *version,
                const char             *upload_data,
                size_t                 *upload_data_size,
                void                  **req_cls)
{
  HttpRequest *hr = *req_cls;

  if (hr == NULL)
    {
      const char *framing;

      hr = http_request_new (server, daemon, connection, url, method);
      *req_cls = hr;

      /* A body framed two ways (request smuggling) or in a way we cannot
       * read: 400, and the connection closes after it (RFC 9112 §6.1,
       * §6.3), whatever the path. */
      if ((framing = framing_error (connection)) != NULL)
        {
          g_debug ("http: refused a request with %s", framing);
          hr->responded = TRUE;
          return respond_plain (connection, MHD_HTTP_BAD_REQUEST, "Bad request framing", TRUE);
        }

      if (!engine_io_server_path_matches (server, hr->base.path))
        {
          hr->responded = TRUE;
          return respond_plain (connection, MHD_HTTP_NOT_FOUND, "Not found", FALSE);
        }

      /* A POST begins now, at its headers: overlapping POSTs are detected
       * and an oversized Content-Length refused before its body is read.
       * Anything else begins at the final call: a response queued (or a
       * connection suspended) at the headers call makes libmicrohttpd
       * close the connection after it, losing keep-alive. */
      if (strcmp (method, MHD_HTTP_METHOD_POST) == 0)
        {
          hr->want_body = engine_io_server_request_begin (server, &hr->base);
          if (hr->want_body)
            hr->body = g_byte_array_new ();
        }
      else
        hr->deferred = TRUE;
      return MHD_YES;
    }

  if (*upload_data_size > 0)
    {
      /* The session of a POST whose body is still coming has ended: the
       * request lets go of it, the rest of the body is dropped, and the
       * answer (400 code 1) comes at its end. */
      if (hr->want_body && !hr->too_large &&
          engine_io_server_request_detach_ended (server, &hr->base))
        {
          hr->want_body = FALSE;
          hr->orphaned = TRUE;
          hr->dropped = hr->body->len;
          g_clear_pointer (&hr->body, g_byte_array_unref);
        }
      if (hr->orphaned)
        {
          /* No more than a POST may carry. */
          hr->dropped += *upload_data_size;
          if (hr->dropped > engine_io_server_get_max_payload (server))
            {
              g_debug ("http: closing a POST for an ended session whose body goes on past max-payload");
              *upload_data_size = 0;
              return MHD_NO;
            }
        }
      else if (hr->want_body && !hr->too_large)
        {
          if ((guint64) hr->body->len + *upload_data_size > engine_io_server_get_max_payload (server))
            {
              hr->too_large = TRUE;
              g_byte_array_set_size (hr->body, 0);
            }
          else
            g_byte_array_append (hr->body, (const guint8 *) upload_data, *upload_data_size);
        }
      else if (hr->too_large)
        {
          /* A chunked body over max-payload is read to its end for its
           * 413 (libmicrohttpd takes a response only then), but not
           * without end: past MAX_DROPPED_BODY more, the connection is
           * closed instead (the POST fails; the session goes on). */
          hr->dropped += *upload_data_size;
          if (hr->dropped > MAX_DROPPED_BODY)
            {
              g_debug ("http: closing a connection whose body goes on past max-payload");
              *upload_data_size = 0;
              return MHD_NO;
            }
        }
      *upload_data_size = 0;
      return MHD_YES;
    }

  if (g_atomic_int_compare_and_exchange (&hr->resumed, 1, 0))
    {
      if (hr->watch != NULL)
        unwatch_poll (hr);
      /* A poll whose client closed the connection while it waited (our
       * watcher resumed it, or a message came before the watcher looked):
       * no response. The session ends (`transport close`), and whatever
       * would have been written stays unsent, reported so. */
      if (hr->base.kind == ENGINE_IO_REQUEST_POLL && hr->base.prepared_body == NULL &&
          (hr->base.client_gone || connection_closed_by_peer (connection)))
        {
          engine_io_server_request_client_gone (server, &hr->base);
          hr->responded = TRUE;
          return MHD_NO;  /* libmicrohttpd closes the connection */
        }
      engine_io_server_request_resumed (server, &hr->base);
      return MHD_YES;
    }

  if (hr->deferred)
    {
      hr->deferred = FALSE;
      /* A poll whose client closed the connection before it was handled
       * (the FIN came with the request): answered now, it would carry
       * queued messages into the closed connection, and libmicrohttpd
       * would report them written. No answer, as for a waiting poll whose
       * client goes: its session ends (`transport close`) and what was
       * queued is reported not flushed. */
      if (strcmp (method, MHD_HTTP_METHOD_GET) == 0 &&
          g_hash_table_contains (hr->base.query, "sid") &&
          connection_closed_by_peer (connection))
        {
          engine_io_server_request_gone_unanswered (server, &hr->base);
          hr->responded = TRUE;
          return MHD_NO;  /* libmicrohttpd closes the connection */
        }
      if (engine_io_server_request_begin (server, &hr->base))
        {
          /* Only POSTs read a body, and they began at their headers. */
          g_warn_if_reached ();
        }
      return MHD_YES;
    }

  if (hr->orphaned)
    {
      hr->orphaned = FALSE;
      engine_io_server_request_orphaned (server, &hr->base);
      return MHD_YES;
    }

  if (hr->want_body)
    {
      hr->want_body = FALSE;
      if (hr->too_large)
        engine_io_server_request_too_large (server, &hr->base);
      else
        {
          g_autoptr(GBytes) body = g_byte_array_free_to_bytes (g_steal_pointer (&hr->body));
          engine_io_server_request_body (server, &hr->base, body);
        }
      return MHD_YES;
    }

  if (!hr->responded && hr->base.kind == ENGINE_IO_REQUEST_NEW)
    {
      /* The core neither answered nor suspended: a bug, but never hang. */
      /* The path is the client's: only in debug output. */
      g_warning ("A request was neither answered nor suspended (answered 500)");
      g_debug ("... it was %s %s", hr->base.method, hr->base.path);
      hr->responded = TRUE;
      return respond_plain (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error", FALSE);
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
 * and must not be stopped before engine_io_server_close() returned.
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
  return handle_request (server, NULL, connection, url, method, version,
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
  HttpRequest *hr = *req_cls;

  if (hr == NULL)
    return;
  *req_cls = NULL;

  engine_io_server_request_finished (server, &hr->base, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
  http_request_free (hr);
}

/* Our own daemon */

#define WATCH_INTERVAL_US (250 * G_TIME_SPAN_MILLISECOND)
#define NO_DEADLINE G_MAXINT

static int
now_s (void)
{
  return (int) (g_get_monotonic_time () / G_TIME_SPAN_SECOND);
}

/* The deadline "connection-timeout" from now, in whole seconds: a late
 * connection is closed between the timeout and a second and a quarter
 * after it, never before. */
static int
deadline_in (EngineIOHttpDaemon *daemon)
{
  return now_s () + daemon->timeout_s + 1;
}

static void
set_deadline (struct MHD_Connection *connection,
              int                    deadline)
{
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  ConnWatch *watch = info != NULL ? info->socket_context : NULL;

  if (watch != NULL)
    g_atomic_int_set (&watch->deadline, deadline);
}

#if HAVE_GNUTLS
/* GnuTLS's reads on a connection of our own TLS listener: at most
 * TLS_MAX_BEFORE_REQUEST bytes before its first request head is in, then
 * a reset (GnuTLS fails, libmicrohttpd closes the connection). */
static ssize_t
tls_pull (gnutls_transport_ptr_t  ptr,
          void                   *data,
          size_t                  size)
{
  ConnWatch *watch = ptr;
  ssize_t n;

  if (!watch->request_seen)
    {
      if (watch->tls_read >= TLS_MAX_BEFORE_REQUEST)
        {
          errno = ECONNRESET;
          return -1;
        }
      size = MIN (size, TLS_MAX_BEFORE_REQUEST - watch->tls_read);
    }
  n = recv (watch->fd, data, size, 0);
  if (n > 0 && !watch->request_seen)
    watch->tls_read += (gsize) n;
  return n;
}

static int
tls_pull_timeout (gnutls_transport_ptr_t ptr,
                  unsigned int           ms)
{
  ConnWatch *watch = ptr;
  struct pollfd p = { .fd = watch->fd, .events = POLLIN };
  int ret;

  do
    ret = poll (&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int) MIN (ms, (unsigned int) G_MAXINT));
  while (ret < 0 && errno == EINTR);
  return ret;
}
#endif

static void
notify_connection_cb (void                              *cls,
                      struct MHD_Connection             *connection,
                      void                             **socket_context,
                      enum MHD_ConnectionNotificationCode toe)
{
  EngineIOHttpDaemon *daemon = cls;
  EngineIOCounters *counters = engine_io_server_get_counters (daemon->server);
  ConnWatch *watch;

  /* libmicrohttpd reports the end of every connection it reported the
   * start of. */
  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    engine_io_counter_add (&counters->descriptors, 1);
  else if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
    engine_io_counter_sub (&counters->descriptors, 1);

  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    {
      const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);

      if (info == NULL)
        return;
      watch = g_new0 (ConnWatch, 1);
      watch->fd = info->connect_fd;
#if HAVE_GNUTLS
      if (daemon->tls_cert_pem != NULL)
        {
          const union MHD_ConnectionInfo *tls =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);

          /* Reads go through tls_pull() (the watch lives until after the
           * last read); writes stay GnuTLS's own, on the socket. */
          if (tls != NULL && tls->tls_session != NULL)
            {
              gnutls_transport_set_ptr2 (tls->tls_session, watch,
                                         (gnutls_transport_ptr_t) (intptr_t) watch->fd);
              gnutls_transport_set_pull_function (tls->tls_session, tls_pull);
              gnutls_transport_set_pull_timeout_function (tls->tls_session, tls_pull_timeout);
            }
        }
#endif
      watch->deadline = deadline_in (daemon);
      ENGINE_IO_LOCK (&daemon->lock, WATCHER);
      watch->id = ++daemon->next_watch_id;
      g_hash_table_add (daemon->watches, watch);
      ENGINE_IO_UNLOCK (&daemon->lock);
      *socket_context = watch;
    }
  else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && (watch = *socket_context) != NULL)
    {
      engine_io_counter_sub (&counters->descriptors, g_atomic_int_get (&watch->relay));
      /* Before libmicrohttpd closes the socket: the watcher never sees a
       * descriptor that could have been reused. */
      ENGINE_IO_LOCK (&daemon->lock, WATCHER);
      g_hash_table_remove (daemon->watches, watch);
      ENGINE_IO_UNLOCK (&daemon->lock);
      g_clear_object (&watch->poll_socket);
      g_free (watch);
      *socket_context = NULL;
    }
}

typedef struct
{
  EngineIOSocket  *socket;  /* owned */
  EngineIORequest *req;     /* not dereferenced: the session checks it */
  gsize            serial;
} GonePoll;

/* With the daemon's lock: the waiting polls whose client closed the
 * connection, taken from their watches into @gone (GonePoll). @fds and
 * @polled are scratch space. */
static void
find_gone_polls_locked (EngineIOHttpDaemon *daemon,
                        GArray             *fds,
                        GPtrArray          *polled,
                        GArray             *gone)
{
  GHashTableIter iter;
  ConnWatch *watch;
  int ret;

  ENGINE_IO_LOCK_ASSERT_HELD (&daemon->lock);

  g_array_set_size (fds, 0);
  g_ptr_array_set_size (polled, 0);
  g_hash_table_iter_init (&iter, daemon->watches);
  while (g_hash_table_iter_next (&iter, (gpointer *) &watch, NULL))
    if (watch->poll != NULL)
      {
        struct pollfd p = { .fd = watch->fd, .events = POLLIN | ENGINE_IO_PEER_CLOSED_EVENTS };
        g_array_append_val (fds, p);
        g_ptr_array_add (polled, watch);
      }
  if (fds->len == 0)
    return;

  /* Under the lock: no descriptor here is closed (and reused) meanwhile. */
  do
    ret = poll ((struct pollfd *) fds->data, fds->len, 0);
  while (ret < 0 && errno == EINTR);
  if (ret <= 0)
    return;

  for (guint i = 0; i < fds->len; i++)
    if (engine_io_peer_closed (&g_array_index (fds, struct pollfd, i)))
      {
        GonePoll entry;

        watch = g_ptr_array_index (polled, i);
        entry.socket = g_steal_pointer (&watch->poll_socket);
        entry.req = watch->poll;
        entry.serial = watch->poll_serial;
        watch->poll = NULL;
        if (entry.socket != NULL)
          g_array_append_val (gone, entry);
      }
}

/* Set in the threads of the daemons we start (libmicrohttpd's, by their
 * first accept or request, and the watcher): the daemon cannot be stopped
 * (its threads joined) from them. The watcher drops references on
 * sessions, whose last one may drop the server. */
static GPrivate in_daemon_thread;

static void
mark_daemon_thread (void)
{
  if (g_private_get (&in_daemon_thread) == NULL)
    g_private_set (&in_daemon_thread, GINT_TO_POINTER (1));
}

gboolean
engine_io_http_in_daemon_thread (void)
{
  return g_private_get (&in_daemon_thread) != NULL;
}

static gpointer
watcher_thread (gpointer data)
{
  EngineIOHttpDaemon *daemon = data;
  g_autoptr(GArray) fds = g_array_new (FALSE, FALSE, sizeof (struct pollfd));
  g_autoptr(GPtrArray) polled = g_ptr_array_new ();
  g_autoptr(GArray) gone = g_array_new (FALSE, FALSE, sizeof (GonePoll));

  mark_daemon_thread ();
  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  while (!daemon->stopping)
    {
      int now = now_s ();
      GHashTableIter iter;
      ConnWatch *watch;

      g_hash_table_iter_init (&iter, daemon->watches);
      while (g_hash_table_iter_next (&iter, (gpointer *) &watch, NULL))
        {
          int deadline = g_atomic_int_get (&watch->deadline);

          /* Only if no request phase moved it meanwhile. */
          if (deadline <= now &&
              g_atomic_int_compare_and_exchange (&watch->deadline, deadline, NO_DEADLINE))
            {
              /* libmicrohttpd sees the end of the stream and closes it. */
              g_debug ("http: closing a connection whose request did not arrive in time");
              shutdown (watch->fd, SHUT_RDWR);
            }
        }

      find_gone_polls_locked (daemon, fds, polled, gone);
      if (gone->len > 0)
        {
          /* Outside our lock: the session's lock comes first. */
          ENGINE_IO_UNLOCK (&daemon->lock);
          for (guint i = 0; i < gone->len; i++)
            {
              GonePoll *entry = &g_array_index (gone, GonePoll, i);

              if (engine_io_socket_resume_gone_poll (entry->socket, entry->req, entry->serial))
                g_debug ("http: the client of a waiting poll closed its connection");
              g_object_unref (entry->socket);
            }
          g_array_set_size (gone, 0);
          ENGINE_IO_LOCK (&daemon->lock, WATCHER);
          if (daemon->stopping)
            break;
        }
      g_cond_wait_until (&daemon->cond, &daemon->lock, g_get_monotonic_time () + WATCH_INTERVAL_US);
    }
  ENGINE_IO_UNLOCK (&daemon->lock);
  return NULL;
}

/* libmicrohttpd's thread, after accept(): when the server holds its whole
 * descriptor budget, the connection is closed at once. Cheap, and
 * libmicrohttpd itself then never meets EMFILE: at EMFILE, a worker
 * thread that has no connection (WebSockets leave it) busy-waits on the
 * listening socket. */
static enum MHD_Result
accept_policy_cb (void                  *cls,
                  const struct sockaddr *addr,
                  socklen_t              addrlen)
{
  EngineIOHttpDaemon *daemon = cls;
  EngineIOCounters *counters = engine_io_server_get_counters (daemon->server);

  mark_daemon_thread ();

  if (__atomic_load_n (&counters->descriptors, __ATOMIC_RELAXED) + 1 <= daemon->descriptor_limit)
    return MHD_YES;
  engine_io_counter_add (&counters->connections_refused, 1);
  g_debug ("http: connection refused at the descriptor budget");
  return MHD_NO;
}

static enum MHD_Result
access_cb (void                  *cls,
           struct MHD_Connection *connection,
           const char            *url,
           const char            *method,
           const char            *version,
           const char            *upload_data,
           size_t                *upload_data_size,
           void                 **req_cls)
{
  EngineIOHttpDaemon *daemon = cls;
  EngineIOServer *server = daemon->server;
  gboolean head = *req_cls == NULL;
  gboolean body_chunk = *upload_data_size > 0;
  enum MHD_Result ret;

  mark_daemon_thread ();
  ret = handle_request (server, daemon, connection, url, method, version,
                        upload_data, upload_data_size, req_cls);
  if (head)
    {
      const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

      /* Past the TLS handshake (TLS_MAX_BEFORE_REQUEST). */
      if (info != NULL && info->socket_context != NULL)
        ((ConnWatch *) info->socket_context)->request_seen = TRUE;
      /* The head is in: a body has its own deadline, anything else (a
       * waiting poll, an upgrade) none. */
      set_deadline (connection,
                    strcmp (method, MHD_HTTP_METHOD_POST) == 0 ? deadline_in (daemon) : NO_DEADLINE);
    }
  else if (!body_chunk)
    set_deadline (connection, NO_DEADLINE);  /* the body is complete */
  return ret;
}

static void
completed_cb (void                            *cls,
              struct MHD_Connection           *connection,
              void                           **req_cls,
              enum MHD_RequestTerminationCode  toe)
{
  EngineIOHttpDaemon *daemon = cls;

  engine_io_server_mhd_completed (daemon->server, connection, req_cls, toe);
  /* Keep-alive: the next request head has its deadline. */
  set_deadline (connection, deadline_in (daemon));
}

static void
log_cb (void       *cls,
        const char *fm,
        va_list     ap)
{
  int saved_errno = errno;  /* the caller may report it after logging */
  g_autofree char *message = g_strdup_vprintf (fm, ap);

  g_strchomp (message);
  g_debug ("libmicrohttpd: %s", message);
  errno = saved_errno;
}

static void
tls_key_free (char *key_pem)
{
  if (key_pem != NULL)
    {
      explicit_bzero (key_pem, strlen (key_pem));
      g_free (key_pem);
    }
}

/* The PEM libmicrohttpd takes: the certificate and its issuers (the chain
 * a client needs), and the private key. */
static gboolean
tls_pem_from_certificate (GTlsCertificate  *certificate,
                          char            **cert_pem,
                          char            **key_pem,
                          GError          **error)
{
  g_autoptr(GString) chain = g_string_new (NULL);
  char *key = NULL;

  if (!MHD_is_feature_supported (MHD_FEATURE_TLS))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN,
                   "This libmicrohttpd was built without TLS (GnuTLS): "
                   "it cannot serve property “tls-certificate”");
      return FALSE;
    }
  g_object_get (certificate, "private-key-pem", &key, NULL);
  if (key == NULL || key[0] == '\0')
    {
      tls_key_free (key);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "The TLS certificate (property “tls-certificate”) has no private key in PEM");
      return FALSE;
    }
  for (GTlsCertificate *c = certificate; c != NULL; c = g_tls_certificate_get_issuer (c))
    {
      g_autofree char *pem = NULL;

      g_object_get (c, "certificate-pem", &pem, NULL);
      if (pem == NULL)
        break;
      g_string_append (chain, pem);
      if (chain->len > 0 && chain->str[chain->len - 1] != '\n')
        g_string_append_c (chain, '\n');
    }
  if (chain->len == 0)
    {
      tls_key_free (key);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "The TLS certificate (property “tls-certificate”) has no PEM form");
      return FALSE;
    }
  *cert_pem = g_string_free (g_steal_pointer (&chain), FALSE);
  *key_pem = key;
  return TRUE;
}

EngineIOHttpDaemon *
engine_io_http_daemon_start (EngineIOServer  *server,
                             const char      *address,
                             guint            port,
                             GError         **error)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (address);
  g_autoptr(GSocketAddress) sockaddr = NULL;
  struct sockaddr_storage native;
  /* MHD_USE_TURBO: opportunistic reads and writes, and no shutdown() when
   * a connection closes, which lets upgraded sockets leave libmicrohttpd
   * (see can_detach()). */
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
  const union MHD_DaemonInfo *info;
  EngineIOHttpDaemon *daemon;
  EngineIOCounters *counters = engine_io_server_get_counters (server);
  unsigned int connection_limit;
  unsigned int threads = MAX (1, MIN (g_get_num_processors (), 16));
  /* Idle connections (a request head or body that stalls, a keep-alive
   * connection between requests) are closed after "connection-timeout"
   * seconds. libmicrohttpd never times out a suspended connection (a
   * waiting poll: its session's heartbeat resumes it) nor an upgraded one
   * (it counts as suspended; the heartbeat watches it). */
  unsigned int timeout = engine_io_server_get_connection_timeout (server);
  GTlsCertificate *certificate = engine_io_server_get_tls_certificate (server);
  g_autofree char *cert_pem = NULL;
  char *key_pem = NULL;
  struct MHD_OptionItem tls_options[4] = {
    { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
    { MHD_OPTION_END, 0, NULL },
  };

  if (certificate != NULL && !tls_pem_from_certificate (certificate, &cert_pem, &key_pem, error))
    return NULL;
  if (inet == NULL)
    {
      tls_key_free (key_pem);
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "“%s” is not a numeric IPv4 or IPv6 address", address);
      return NULL;
    }
  sockaddr = g_inet_socket_address_new (inet, port);
  if (!g_socket_address_to_native (sockaddr, &native, sizeof native, error))
    {
      tls_key_free (key_pem);
      return NULL;
    }
  if (g_inet_address_get_family (inet) == G_SOCKET_FAMILY_IPV6)
    flags |= MHD_USE_IPv6;

  daemon = g_new0 (EngineIOHttpDaemon, 1);
  daemon->server = server;
  if (cert_pem != NULL)
    {
      flags |= MHD_USE_TLS;
      /* Upgraded sockets cannot leave libmicrohttpd (can_detach()). */
      flags &= ~MHD_USE_TURBO;
      /* Before 1.0 its relay of an upgraded TLS connection has an 8-byte
       * buffer (the response head took the connection's memory pool). */
      if (g_str_has_prefix (MHD_get_version (), "0."))
        g_debug ("http: libmicrohttpd %s relays WebSockets over TLS slowly "
                 "(8-byte buffer, fixed in 1.0)", MHD_get_version ());
      daemon->tls_cert_pem = g_steal_pointer (&cert_pem);
      daemon->tls_key_pem = key_pem;
      tls_options[0] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_CERT, 0, daemon->tls_cert_pem };
      tls_options[1] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_MEM_KEY, 0, daemon->tls_key_pem };
      /* libmicrohttpd 0.9.75 uses GnuTLS's "NORMAL", which still accepts
       * TLS 1.0 and 1.1 (deprecated, RFC 8996): TLS 1.2 and 1.3 only. */
      tls_options[2] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_PRIORITIES, 0, (void *) TLS_PRIORITIES };
    }
  daemon->timeout_s = (int) timeout;
  /* The server's budget bounds the connections (accept_policy_cb(), with
   * everything else the server holds); libmicrohttpd's own limit is the
   * same, split between its threads. Its own descriptors: the listening
   * socket, and an epoll descriptor and a wakeup eventfd per thread. */
  daemon->descriptor_limit = engine_io_server_get_descriptor_limit (server);
  daemon->fixed_descriptors = 2 + 2 * (guint64) threads;
  connection_limit = (unsigned int) CLAMP (daemon->descriptor_limit, threads, G_MAXINT);
  engine_io_counter_add (&counters->descriptors, daemon->fixed_descriptors);
  g_mutex_init (&daemon->lock);
  g_cond_init (&daemon->cond);
  daemon->watches = g_hash_table_new (NULL, NULL);
  daemon->watcher = g_thread_new ("engineio-http-watch", watcher_thread, daemon);
  /* The logger first, or libmicrohttpd prints what it says before it
   * on stderr. */
  daemon->daemon = MHD_start_daemon (flags, (uint16_t) port, accept_policy_cb, daemon,
                                     access_cb, daemon,
                                     MHD_OPTION_EXTERNAL_LOGGER, log_cb, NULL,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &native,
                                     MHD_OPTION_THREAD_POOL_SIZE, threads,
                                     MHD_OPTION_NOTIFY_COMPLETED, completed_cb, daemon,
                                     MHD_OPTION_NOTIFY_CONNECTION, notify_connection_cb, daemon,
                                     MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                     MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY,
                                     MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                                     MHD_OPTION_ARRAY, tls_options,
                                     MHD_OPTION_END);
  if (daemon->daemon == NULL)
    {
      int saved = errno;
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN,
                   "Cannot listen on %s port %u: %s", address, port,
                   saved ? g_strerror (saved) : "libmicrohttpd could not start");
      daemon->daemon = NULL;
      engine_io_http_daemon_stop (daemon);
      return NULL;
    }

  info = MHD_get_daemon_info (daemon->daemon, MHD_DAEMON_INFO_BIND_PORT);
  daemon->port = info != NULL ? info->port : port;
  return daemon;
}

guint
engine_io_http_daemon_get_port (EngineIOHttpDaemon *daemon)
{
  return daemon->port;
}

void
engine_io_http_daemon_stop (EngineIOHttpDaemon *daemon)
{
  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  daemon->stopping = TRUE;
  g_cond_signal (&daemon->cond);
  ENGINE_IO_UNLOCK (&daemon->lock);
  g_thread_join (daemon->watcher);

  /* Its connections' CLOSED notifications still come, during the stop. */
  if (daemon->daemon != NULL)
    MHD_stop_daemon (daemon->daemon);
  engine_io_counter_sub (&engine_io_server_get_counters (daemon->server)->descriptors,
                         daemon->fixed_descriptors);
  g_hash_table_unref (daemon->watches);
  g_cond_clear (&daemon->cond);
  g_mutex_clear (&daemon->lock);
  g_free (daemon->tls_cert_pem);
  tls_key_free (daemon->tls_key_pem);
  g_free (daemon);
}
