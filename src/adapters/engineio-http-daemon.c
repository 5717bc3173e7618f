/* engineio-http-daemon.c: our own libmicrohttpd daemon
 *
 * engine_io_server_listen() (the public function is here: the server
 * never calls the adapter; it stops the daemon through the
 * EngineIOListenerClass it is given), engine_io_http_daemon_start() and
 * _stop(): the daemon listen() starts, with its options (connection
 * memory, descriptor budget, TLS from a GTlsCertificate), its worker
 * threads (each runs a libmicrohttpd daemon of its own on the shared
 * listening socket: see "Workers" below for why not libmicrohttpd's thread
 * pool), the watcher thread (deadlines of slow requests; waiting polls
 * whose client went away), and the bounds on a TLS client before its first
 * request.
 * Requests go to engineio-http.c (engine_io_http_handle_request());
 * nothing there calls back here.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* POLLRDHUP */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <gio/gio.h>
#if HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "engineio-http-internal.h"
#include "engineio-peer-private.h"
#include "engineio-mhd.h"
#include "engineio-error.h"
#include "engineio-lock-private.h"
#include "engineio-loop-private.h"

/* Our own daemon */

#define WATCH_INTERVAL_US (250 * G_TIME_SPAN_MILLISECOND)
/* Over TLS, a worker's longest wait (see worker_thread()): while upgraded
 * connections are relayed, and otherwise. */
#define TLS_RELAY_WAIT_MS 20
#define TLS_WORKER_WAIT_MS 250
#define NO_DEADLINE G_MAXINT

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

/* Workers
 *
 * libmicrohttpd's own epoll loop (MHD_epoll(), 0.9.75 to 1.0.1 at least)
 * takes at most 128 events per epoll_wait() and, when it got exactly 128,
 * calls epoll_wait() again with the same timeout before it handles any of
 * them: with nothing else ready, its thread sleeps (up to the next
 * connection timeout) holding 128 connections whose requests it has taken
 * off epoll and not read. Measured: every session of a 100-connection
 * polling benchmark stalled in about one run of 40 (tests/test-http-workers.py
 * makes it happen at will). So our daemons do not use libmicrohttpd's
 * threads: each worker thread runs a daemon of its own (an "external"
 * epoll daemon on the shared listening socket, as libmicrohttpd's pool
 * shares it) with MHD_run(), which never blocks, and waits itself for
 * that daemon's epoll descriptor, its next connection timeout, or its
 * eventfd: written after a resume or an upgraded socket's release from
 * another thread (engine_io_http_wake_worker()), which libmicrohttpd
 * leaves to the application to notice in this mode. */
struct _HttpWorker
{
  EngineIOHttpDaemon *owner;
  struct MHD_Daemon  *mhd;       /* owned */
  GThread            *thread;
  int                 epoll_fd;  /* libmicrohttpd's (MHD_DAEMON_INFO_EPOLL_FD) */
  int                 wake_fd;   /* owned: an eventfd */
  int                 quit;      /* (atomic) */
};

/* The worker whose thread this is, for the connections it accepts. */
static GPrivate current_worker;

static int
current_wake_fd (void)
{
  HttpWorker *worker = g_private_get (&current_worker);

  return worker != NULL ? worker->wake_fd : -1;
}

/* Its worker's thread. Also cleans up the connections libmicrohttpd has
 * closed. */
static unsigned int
worker_connections (HttpWorker *worker)
{
  const union MHD_DaemonInfo *info =
    MHD_get_daemon_info (worker->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

  return info != NULL ? info->num_connections : 0;
}

static gpointer
worker_thread (gpointer data)
{
  HttpWorker *worker = data;

  engine_io_mark_daemon_thread ();
  g_private_set (&current_worker, worker);
  while (!g_atomic_int_get (&worker->quit))
    {
      struct pollfd fds[2] = {
        { .fd = worker->epoll_fd, .events = POLLIN },
        { .fd = worker->wake_fd, .events = POLLIN },
      };
      MHD_UNSIGNED_LONG_LONG ms;
      int timeout = -1;

      /* 0 when it has connections ready that it has not handled yet */
      if (MHD_get_timeout (worker->mhd, &ms) == MHD_YES)
        timeout = (int) MIN (ms, (MHD_UNSIGNED_LONG_LONG) G_MAXINT);
      /* Over TLS, a relay that ends during the last of the runs below
       * resumes its connection for the cleanup that the next run does,
       * and nothing wakes us for it: while relays run, a short wait bounds
       * that (measured: ws-conformance-tls, 254 WebSockets over TLS, took
       * 95 s with 250 ms, 59 s with 20 ms, as with libmicrohttpd's own
       * threads). */
      if (worker->owner->tls_cert_pem != NULL)
        {
          int cap = g_atomic_int_get (&worker->owner->live_relays) > 0 ? TLS_RELAY_WAIT_MS
                                                                        : TLS_WORKER_WAIT_MS;
          if (timeout < 0 || timeout > cap)
            timeout = cap;
        }
      if (poll (fds, G_N_ELEMENTS (fds), timeout) < 0 && errno != EINTR)
        {
          g_warning ("http: poll() failed in a worker: %s", g_strerror (errno));
          g_usleep (10 * G_TIME_SPAN_MILLISECOND);  /* ENOMEM: not a busy loop */
        }
      if (fds[1].revents & POLLIN)
        {
          guint64 count;

          /* Before MHD_run(): a wake-up written during it is not lost. */
          if (read (worker->wake_fd, &count, sizeof count) < 0 && errno != EAGAIN)
            g_warning ("http: cannot read a worker's eventfd: %s", g_strerror (errno));
        }
      if (g_atomic_int_get (&worker->quit))
        break;
      /* libmicrohttpd's own loop sets a run up (takes the listening socket
       * back once below its connection limit; picks up resumes) at its
       * start, and waits after that: so, before we wait, another run when
       * this one closed connections, and over TLS, where the run that
       * finishes relaying an upgraded connection resumes it for its
       * cleanup from within libmicrohttpd. */
      for (guint runs = 1; ; runs++)
        {
          unsigned int before = worker_connections (worker);
          gboolean again;

          MHD_run (worker->mhd);
          again = worker_connections (worker) < before ||
                  (runs == 1 && worker->owner->tls_cert_pem != NULL);
          if (!again || runs == 4)
            break;
        }
    }
  return NULL;
}

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
      watch->wake_fd = current_wake_fd ();
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
      if (g_atomic_int_get (&watch->relay) > 0)
        g_atomic_int_add (&daemon->live_relays, -1);
      engine_io_counter_sub (&counters->descriptors, g_atomic_int_get (&watch->relay));
      /* Before libmicrohttpd closes the socket: the watcher never sees a
       * descriptor that could have been reused. */
      ENGINE_IO_LOCK (&daemon->lock, WATCHER);
      g_hash_table_remove (daemon->watches, watch);
      ENGINE_IO_UNLOCK (&daemon->lock);
      engine_io_host_poll_clear (&watch->poll);
      g_free (watch);
      *socket_context = NULL;
    }
}

/* With the daemon's lock: the waiting polls whose client closed the
 * connection, taken from their watches into @gone (EngineIOHostPoll). @fds and
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
    if (watch->poll.socket != NULL)
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
        watch = g_ptr_array_index (polled, i);
        g_array_append_val (gone, watch->poll);
        watch->poll = (EngineIOHostPoll) { NULL, };
      }
}

static gpointer
watcher_thread (gpointer data)
{
  EngineIOHttpDaemon *daemon = data;
  g_autoptr(GArray) fds = g_array_new (FALSE, FALSE, sizeof (struct pollfd));
  g_autoptr(GPtrArray) polled = g_ptr_array_new ();
  g_autoptr(GArray) gone = g_array_new (FALSE, FALSE, sizeof (EngineIOHostPoll));

  /* It drops references on sessions, whose last one may drop the server:
   * not a thread to stop the daemon from. */
  engine_io_mark_daemon_thread ();
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
              EngineIOHostPoll *entry = &g_array_index (gone, EngineIOHostPoll, i);

              if (engine_io_host_poll_client_gone (entry))
                g_debug ("http: the client of a waiting poll closed its connection");
              engine_io_host_poll_clear (entry);
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

  engine_io_mark_daemon_thread ();

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

  engine_io_mark_daemon_thread ();
  ret = engine_io_http_handle_request (server, daemon, connection, url, method, version,
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

/* The listening socket the workers' daemons share, as libmicrohttpd would
 * make it (SO_REUSEADDR; IPv6 only on an IPv6 address). -1 with errno. */
static int
open_listen_socket (const struct sockaddr *address,
                    socklen_t              length)
{
  int fd = socket (address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;

  if (fd < 0)
    return -1;
  if (setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      (address->sa_family == AF_INET6 &&
       setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) ||
      bind (fd, address, length) < 0 ||
      listen (fd, 1024) < 0)
    {
      int saved = errno;
      close (fd);
      errno = saved;
      return -1;
    }
  return fd;
}

static guint
listen_port (int   fd,
             guint requested)
{
  struct sockaddr_storage bound;
  socklen_t length = sizeof bound;

  if (getsockname (fd, (struct sockaddr *) &bound, &length) < 0)
    return requested;
  if (bound.ss_family == AF_INET)
    return ntohs (((struct sockaddr_in *) &bound)->sin_port);
  if (bound.ss_family == AF_INET6)
    return ntohs (((struct sockaddr_in6 *) &bound)->sin6_port);
  return requested;
}

static void engine_io_http_daemon_stop (gpointer data);
static void engine_io_http_daemon_free (EngineIOHttpDaemon *daemon);

static EngineIOHttpDaemon *
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
   * (see can_detach()). No MHD_USE_INTERNAL_POLLING_THREAD: our workers
   * run the daemons ("Workers" above). */
  unsigned int flags = MHD_USE_EPOLL | MHD_USE_TURBO |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
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

  daemon = g_new0 (EngineIOHttpDaemon, 1);
  daemon->refs = 1;
  daemon->free = engine_io_http_daemon_free;
  daemon->server = server;
  daemon->listen_fd = -1;
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
   * same, split between the workers. The daemon's own descriptors: the
   * listening socket, and per worker libmicrohttpd's two epoll descriptors
   * (connections, and upgraded TLS relays) and our eventfd. */
  daemon->descriptor_limit = engine_io_server_get_descriptor_limit (server);
  daemon->fixed_descriptors = 1 + 3 * (guint64) threads;
  connection_limit = (unsigned int) CLAMP (daemon->descriptor_limit, threads, G_MAXINT);
  engine_io_counter_add (&counters->descriptors, daemon->fixed_descriptors);
  g_mutex_init (&daemon->lock);
  g_cond_init (&daemon->cond);
  daemon->watches = g_hash_table_new (NULL, NULL);
  daemon->watcher = g_thread_new ("engineio-http-watch", watcher_thread, daemon);

  daemon->listen_fd = open_listen_socket ((struct sockaddr *) &native,
                                          (socklen_t) g_socket_address_get_native_size (sockaddr));
  if (daemon->listen_fd < 0)
    {
      int saved = errno;
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN,
                   "Cannot listen on %s port %u: %s", address, port, g_strerror (saved));
      engine_io_http_daemon_stop (daemon);
      return NULL;
    }
  daemon->port = listen_port (daemon->listen_fd, port);

  daemon->workers = g_new0 (HttpWorker, threads);
  for (guint i = 0; i < threads; i++)
    {
      HttpWorker *worker = &daemon->workers[i];
      const union MHD_DaemonInfo *info;
      /* libmicrohttpd's pool splits its limit the same way */
      unsigned int limit = connection_limit / threads + (i < connection_limit % threads ? 1 : 0);

      worker->owner = daemon;
      worker->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (worker->wake_fd < 0)
        {
          int saved = errno;
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN,
                       "Cannot listen on %s port %u: no eventfd for a worker: %s",
                       address, port, g_strerror (saved));
          engine_io_http_daemon_stop (daemon);
          return NULL;
        }
      daemon->n_workers = i + 1;
      /* The logger first, or libmicrohttpd prints what it says before it
       * on stderr. */
      worker->mhd = MHD_start_daemon (flags, 0, accept_policy_cb, daemon,
                                      access_cb, daemon,
                                      MHD_OPTION_EXTERNAL_LOGGER, log_cb, NULL,
                                      MHD_OPTION_LISTEN_SOCKET, daemon->listen_fd,
                                      MHD_OPTION_NOTIFY_COMPLETED, completed_cb, daemon,
                                      MHD_OPTION_NOTIFY_CONNECTION, notify_connection_cb, daemon,
                                      MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                      MHD_OPTION_CONNECTION_LIMIT, MAX (limit, 1u),
                                      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY,
                                      MHD_OPTION_ARRAY, tls_options,
                                      MHD_OPTION_END);
      info = worker->mhd != NULL ? MHD_get_daemon_info (worker->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
      if (info == NULL)
        {
          int saved = errno;
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN,
                       "Cannot listen on %s port %u: %s", address, port,
                       saved ? g_strerror (saved) : "libmicrohttpd could not start");
          engine_io_http_daemon_stop (daemon);
          return NULL;
        }
      worker->epoll_fd = info->epoll_fd;
      worker->thread = g_thread_try_new ("engineio-http", worker_thread, worker, error);
      if (worker->thread == NULL)
        {
          engine_io_http_daemon_stop (daemon);
          return NULL;
        }
    }
  return daemon;
}

/* With the last reference: the workers are gone (engine_io_http_daemon_stop()),
 * and so is every upgraded connection's Upgraded, so libmicrohttpd may close
 * the sockets it owns. */
static void
engine_io_http_daemon_free (EngineIOHttpDaemon *daemon)
{
  for (guint i = 0; i < daemon->n_workers; i++)
    {
      HttpWorker *worker = &daemon->workers[i];

      /* Its connections' CLOSED notifications still come, here (their
       * server lives: the server's own reference went at its stop, an
       * Upgraded's is dropped by its session, which holds the server). */
      if (worker->mhd != NULL)
        MHD_stop_daemon (worker->mhd);
      if (worker->wake_fd >= 0)
        close (worker->wake_fd);
    }
  g_free (daemon->workers);
  engine_io_counter_sub (&engine_io_server_get_counters (daemon->server)->descriptors,
                         daemon->fixed_descriptors);
  g_hash_table_unref (daemon->watches);
  g_cond_clear (&daemon->cond);
  g_mutex_clear (&daemon->lock);
  g_free (daemon->tls_cert_pem);
  tls_key_free (daemon->tls_key_pem);
  g_free (daemon);
}

/* Only once no connection is suspended (engine_io_server_close()). Stops
 * listening and the threads, and drops the server's reference: the daemon
 * is freed now, or when the last upgraded connection that stayed with
 * libmicrohttpd is released (a session whose context was blocked when the
 * server closed: libmicrohttpd would close its socket, a descriptor the
 * session still writes to, and free what its release uses). */
static void
engine_io_http_daemon_stop (gpointer data)
{
  EngineIOHttpDaemon *daemon = data;

  ENGINE_IO_LOCK (&daemon->lock, WATCHER);
  daemon->stopping = TRUE;
  g_cond_signal (&daemon->cond);
  ENGINE_IO_UNLOCK (&daemon->lock);
  g_thread_join (daemon->watcher);

  for (guint i = 0; i < daemon->n_workers; i++)
    {
      g_atomic_int_set (&daemon->workers[i].quit, 1);
      engine_io_http_wake_worker (daemon->workers[i].wake_fd);
    }
  for (guint i = 0; i < daemon->n_workers; i++)
    g_clear_pointer (&daemon->workers[i].thread, g_thread_join);
  /* The listening socket is ours: out of every worker's epoll set, then
   * closed (once), so the port is free when the server's close returns. */
  for (guint i = 0; i < daemon->n_workers; i++)
    if (daemon->workers[i].mhd != NULL)
      MHD_quiesce_daemon (daemon->workers[i].mhd);
  if (daemon->listen_fd >= 0)
    close (daemon->listen_fd);
  daemon->listen_fd = -1;
  /* An upgraded connection keeps the libmicrohttpd daemons (a session
   * whose context was blocked): their other connections (idle keep-alive
   * ones, requests that did not finish) are no longer served, and would
   * stay open until that session lets go, for ever if it never does.
   * Their clients see the end now: shutdown(), not close(), for
   * libmicrohttpd owns the descriptors (it closes them with the last
   * reference); the upgraded ones end too, the server is closing. */
  if (g_atomic_int_get (&daemon->refs) > 1)
    {
      GHashTableIter iter;
      ConnWatch *watch;

      ENGINE_IO_LOCK (&daemon->lock, WATCHER);
      g_hash_table_iter_init (&iter, daemon->watches);
      while (g_hash_table_iter_next (&iter, (gpointer *) &watch, NULL))
        shutdown (watch->fd, SHUT_RDWR);
      ENGINE_IO_UNLOCK (&daemon->lock);
    }
  engine_io_http_daemon_unref (daemon);
}

static const EngineIOListenerClass daemon_listener_class = {
  .stop = engine_io_http_daemon_stop,
};

/**
 * engine_io_server_listen:
 * @self: a server
 * @address: (nullable): a numeric IPv4 or IPv6 address to bind, or %NULL
 *   for 127.0.0.1
 * @port: the TCP port, or 0 to pick a free one (read it back with
 *   engine_io_server_get_port())
 * @error: return location for a #GError
 *
 * Starts the server on its own libmicrohttpd daemon (a pool of worker
 * threads using epoll, one per processor up to 16). First, unless #EngineIOServer:raise-fd-limit is
 * %FALSE, raises the process's soft `RLIMIT_NOFILE` to its hard limit;
 * the server's descriptor budget is taken from the limit then (see
 * #EngineIOServer:fd-reserve). Fails with %ENGINE_IO_ERROR_LISTEN if the address
 * cannot be bound, %ENGINE_IO_ERROR_INVALID_ARGUMENT for a bad address or
 * configuration, %ENGINE_IO_ERROR_CLOSED after engine_io_server_close().
 * A server listens at most once.
 *
 * Thread-safe: may be called from any thread, once.
 *
 * Returns: %TRUE on success
 */
gboolean
engine_io_server_listen (EngineIOServer  *self,
                         const char      *address,
                         guint            port,
                         GError         **error)
{
  EngineIOHttpDaemon *daemon;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (port <= 65535, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!engine_io_server_prepare_listen (self, error))
    return FALSE;
  daemon = engine_io_http_daemon_start (self, address ? address : "127.0.0.1", port, error);
  if (daemon == NULL)
    return FALSE;
  engine_io_server_set_listener (self, &daemon_listener_class, daemon, daemon->port);
  return TRUE;
}
