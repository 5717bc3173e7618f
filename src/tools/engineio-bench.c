/* engineio-bench: a load generator for any Engine.IO v4 server, in the
 * spirit of redis-benchmark.
 *
 * Modes:
 *   ws       WebSocket sessions (no polling first), echo traffic
 *   polling  long-polling sessions: one pending GET and at most one POST
 *            in flight per session, echo traffic
 *   connect  open idle sessions and hold them, answering pings
 *   sio-echo, sio-ack, sio-broadcast, sio-connect
 *            the same over Socket.IO v5 (WebSocket only): each session
 *            joins "/" (40 → 40{"sid"…}), skips the "auth" event, then
 *            42["message",P] → 42["message-back",P];
 *            42N["message-with-ack",P] → 43N[P]; or one extra session
 *            emits 42["broadcast",P] and every session counts the
 *            42["broadcast-back",P] it gets (the next broadcast goes out
 *            when every live session has the oldest one in flight)
 *
 * GLib is used for option parsing only. The hot path is a raw epoll loop
 * over non-blocking sockets: one loop per thread (-t), each thread owning
 * its share of the sessions. Every echo is verified: the payload is derived
 * from a per-session sequence number (16 hex digits, then a filler pattern
 * whose offset depends on the number), so length, content and order are
 * all checked; any mismatch is an error and makes the exit status 1.
 *
 * This file: the sessions' sockets, the event loop, options, results and
 * main(); the protocols in engineio-bench-protocol.c, the helpers in
 * engineio-bench-support.c (engineio-bench-private.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "engineio-bench-private.h"

const char *const err_names[N_ERR] = {
  "connect", "handshake", "open_timeout", "closed", "protocol",
};
const char *const verr_names[N_VERR] = {
  "none", "length", "content", "order", "type", "unexpected", "lost",
};

Config cfg;

/* Shared between threads. The window times are written before
 * g_traffic_start is published (release) and read after it (acquire). */
guint64 g_window_start;
guint64 g_window_end;
guint64 g_traffic_start;     /* (atomic) 0 until the open phase ends */
guint   g_ready;             /* (atomic) workers done opening */
guint   g_printed;           /* (atomic) error lines printed */
char   *g_filler;            /* size + 64 bytes of pattern */

/* ------------------------------------------------------ sessions, loop */

Worker *workers;

static inline guint64
ev_data (Conn *c,
         Sock *s)
{
  guint64 local = (guint64) (c - c->w->conns);

  return local << 32 | (guint64) s->role << 31 | (s->gen & 0x7fffffffu);
}

static void
sock_events (Sock    *s,
             gboolean out)
{
  Conn *c = G_STRUCT_MEMBER_P (s, -(glong) (s->role * sizeof (Sock)));
  struct epoll_event ev = { 0 };

  if (s->fd < 0 || s->want_out == out)
    return;
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
  ev.data.u64 = ev_data (c, s);
  if (epoll_ctl (c->w->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
    die ("epoll_ctl: %s", strerror (errno));
  s->want_out = out;
}

static void
sock_close (Sock *s)
{
  if (s->fd >= 0)
    close (s->fd);
  s->fd = -1;
  s->gen++;
  s->state = SOCK_CLOSED;
  s->want_out = FALSE;
  s->reused = FALSE;
  s->in_flight = FALSE;
  s->close_after = FALSE;
  s->head_len = 0;
  s->need = 0;
  buf_free (&s->rbuf);
  buf_free (&s->wbuf);
}

void
conn_fail (Conn       *c,
           ErrKind     kind,
           const char *format,
           ...)
{
  Worker *w = c->w;
  va_list args;
  char what[256];

  if (c->state == CONN_DEAD)
    return;
  if (c->state == CONN_OPENING)
    {
      w->opening--;
      w->resolved++;
    }
  else if (c->state == CONN_OPEN)
    w->alive--;
  /* Sessions the bench itself closes at the end are not failures */
  if (!w->stopping)
    {
      w->st.errs[kind]++;
      va_start (args, format);
      vsnprintf (what, sizeof what, format, args);
      va_end (args);
      report ("session %u: %s: %s", c->index, err_names[kind], what);
    }
  c->state = CONN_DEAD;
  sock_close (&c->s[0]);
  sock_close (&c->s[1]);
  buf_free (&c->frag);
  free (c->t_send);
  c->t_send = NULL;
}

gboolean
sock_open (Conn *c,
           Sock *s)
{
  struct epoll_event ev = { 0 };
  int one = 1;
  int fd;

  fd = socket (cfg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      conn_fail (c, ERR_CONNECT, "socket: %s", strerror (errno));
      return FALSE;
    }
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfg.n_sources > 0)
    {
      const struct sockaddr_storage *src = &cfg.sources[c->index % cfg.n_sources];

      /* Pick the port at connect () time, from the full 4-tuple space */
      setsockopt (fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      if (bind (fd, (const struct sockaddr *) src,
                src->ss_family == AF_INET ? sizeof (struct sockaddr_in)
                                          : sizeof (struct sockaddr_in6)) < 0)
        {
          close (fd);
          conn_fail (c, ERR_CONNECT, "bind: %s", strerror (errno));
          return FALSE;
        }
    }
  if (connect (fd, (const struct sockaddr *) &cfg.addr, cfg.addrlen) < 0 &&
      errno != EINPROGRESS)
    {
      int e = errno;

      close (fd);
      conn_fail (c, ERR_CONNECT, "connect: %s", strerror (e));
      return FALSE;
    }
  s->fd = fd;
  s->gen++;
  s->state = SOCK_CONNECTING;
  s->want_out = TRUE;
  s->reused = FALSE;
  s->head_len = 0;
  s->need = 0;
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = ev_data (c, s);
  if (epoll_ctl (c->w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    die ("epoll_ctl: %s", strerror (errno));
  return TRUE;
}

/* Writes what is queued; returns FALSE if the session died. */
gboolean
sock_flush (Conn *c,
            Sock *s)
{
  size_t off = 0;

  if (s->state != SOCK_OPEN)
    return TRUE;
  while (off < s->wbuf.len)
    {
      ssize_t n = send (s->fd, s->wbuf.data + off, s->wbuf.len - off, MSG_NOSIGNAL);

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          conn_fail (c, c->state == CONN_OPEN ? ERR_CLOSED : ERR_HANDSHAKE,
                     "send: %s", strerror (errno));
          return FALSE;
        }
      off += (size_t) n;
    }
  if (off == s->wbuf.len)
    {
      s->wbuf.len = 0;
      if (s->wbuf.cap > 64 * 1024)
        buf_free (&s->wbuf);
      sock_events (s, FALSE);
    }
  else
    {
      memmove (s->wbuf.data, s->wbuf.data + off, s->wbuf.len - off);
      s->wbuf.len -= off;
      sock_events (s, TRUE);
    }
  return TRUE;
}

/* --------------------------------------------------------- event loop */

static void
conn_start (Conn    *c,
            guint64  now)
{
  Worker *w = c->w;

  c->state = CONN_OPENING;
  c->open_start = now;
  w->opening++;
  if (cfg.polling)
    polling_send_get (c);
  else
    ws_start (c, now);
}

static void
worker_open_more (Worker  *w,
                  guint64  now)
{
  while (w->opening < cfg.open_window && w->next_to_open < w->n_conns &&
         now < w->open_deadline)
    conn_start (&w->conns[w->next_to_open++], now);
}

static void
conn_start_traffic (Conn    *c,
                    guint64  now)
{
  c->t_send = calloc (cfg.inflight, sizeof (guint64));
  if (c->t_send == NULL)
    die ("out of memory");
  if (IS_BROADCAST)
    {
      if (c->sender)
        bc_progress (c->w, now);
    }
  else if (!cfg.polling)
    {
      for (guint i = 0; i < cfg.inflight; i++)
        ws_queue_message (c, c->next_seq++, now);
      sock_flush (c, &c->s[0]);
    }
  else
    {
      c->next_seq = cfg.inflight;
      polling_maybe_post (c, now);
      if (c->state == CONN_OPEN)
        sock_flush (c, &c->s[1]);
    }
}

static void
sock_eof (Conn       *c,
          Sock       *s,
          const char *why)
{
  if (c->w->stopping)
    {
      conn_fail (c, ERR_CLOSED, "%s", why);
      return;
    }
  if (!cfg.polling)
    {
      conn_fail (c, c->state == CONN_OPEN ? ERR_CLOSED : ERR_HANDSHAKE, "%s", why);
      return;
    }
  if (!s->in_flight)
    {
      /* an idle keep-alive connection expired: reconnect on next use */
      sock_close (s);
      return;
    }
  if (s->reused && s->rbuf.len == 0 && !s->retried)
    {
      /* the server closed it as we reused it: send the request again */
      sock_close (s);
      s->retried = TRUE;
      if (s->role == 0)
        polling_send_get (c);
      else
        polling_send_post (c);
      return;
    }
  conn_fail (c, c->state == CONN_OPEN ? ERR_CLOSED : ERR_HANDSHAKE,
             "%s with a request in flight", why);
}

void
sock_readable (Worker *w,
               Conn   *c,
               Sock   *s)
{
  char *data;
  size_t have;
  ssize_t n;
  gssize used;
  guint64 now;

  if (s->rbuf.len == 0)
    {
      data = w->scratch;
      n = recv (s->fd, data, READ_CHUNK, 0);
      have = n > 0 ? (size_t) n : 0;
    }
  else
    {
      buf_reserve (&s->rbuf, MAX (s->need > s->rbuf.len ? s->need - s->rbuf.len : 0, 64 * 1024));
      n = recv (s->fd, s->rbuf.data + s->rbuf.len, s->rbuf.cap - s->rbuf.len, 0);
      data = s->rbuf.data;
      have = s->rbuf.len + (n > 0 ? (size_t) n : 0);
    }
  if (n < 0)
    {
      if (errno == EAGAIN || errno == EINTR)
        return;
      sock_eof (c, s, strerror (errno));
      return;
    }
  if (n == 0)
    {
      sock_eof (c, s, "connection closed");
      return;
    }
  now = now_us ();
  if (cfg.polling)
    used = polling_input (c, s, data, have, now);
  else
    used = ws_input (c, data, have, now);
  if (used < 0)
    return;
  if (data == w->scratch)
    {
      if ((size_t) used < have)
        buf_append (&s->rbuf, data + used, have - (size_t) used);
    }
  else
    {
      if ((size_t) used < have)
        memmove (s->rbuf.data, s->rbuf.data + used, have - (size_t) used);
      s->rbuf.len = have - (size_t) used;
      if (s->rbuf.len == 0)
        buf_free (&s->rbuf);
    }
  if (cfg.polling)
    {
      if (s->close_after && !s->in_flight)
        sock_close (s);
      if (c->want_get)
        {
          c->want_get = FALSE;
          if (!polling_send_get (c))
            return;
        }
      polling_maybe_post (c, now);
      if (c->state == CONN_DEAD)
        return;
    }
  if (sock_flush (c, &c->s[0]))
    sock_flush (c, &c->s[1]);
}

static void
sock_event (Worker   *w,
            Conn     *c,
            Sock     *s,
            guint32   events)
{
  if (s->state == SOCK_CONNECTING)
    {
      int err = 0;
      socklen_t len = sizeof err;

      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return;
      getsockopt (s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0)
        {
          conn_fail (c, ERR_CONNECT, "connect: %s", strerror (err));
          return;
        }
      s->state = SOCK_OPEN;
      sock_flush (c, s);
      return;
    }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    {
      sock_readable (w, c, s);
      if (s->state != SOCK_OPEN)
        return;
    }
  if (events & EPOLLOUT)
    sock_flush (c, s);
}

static void
worker_stop (Worker  *w,
             guint64  now)
{
  guint64 limit = (guint64) (cfg.echo_timeout * 1e6);

  w->stopping = TRUE;
  if (cfg.hold_lost > 0 && !IS_BROADCAST)
    for (guint i = 0; i < w->n_conns; i++)
      {
        Conn *c = &w->conns[i];

        if (c->state == CONN_OPEN && c->recv_seq < c->sent_seq &&
            now - c->t_send[c->recv_seq % cfg.inflight] > limit)
          {
            /* for debugging a server: its connections as they are */
            report ("echoes lost: holding the connections for %.1f s", cfg.hold_lost);
            g_usleep ((gulong) (cfg.hold_lost * 1e6));
            break;
          }
      }
  for (guint i = 0; i < w->n_conns; i++)
    {
      Conn *c = &w->conns[i];

      if (c->state == CONN_OPEN)
        w->st.held++;
      if (IS_BROADCAST)
        {
          if (c->state == CONN_OPEN && c->recv_seq < w->bc_sent &&
              now - w->bc_t[c->recv_seq % cfg.inflight] > limit)
            {
              w->st.verrs[VERR_LOST] += w->bc_sent - c->recv_seq;
              report ("session %u: broadcast %" G_GUINT64_FORMAT " not received after %.1f s",
                      c->index, c->recv_seq, (now - w->bc_t[c->recv_seq % cfg.inflight]) / 1e6);
            }
        }
      /* echoes are in order, so the oldest unanswered one tells */
      else if (c->state == CONN_OPEN && c->recv_seq < c->sent_seq &&
          now - c->t_send[c->recv_seq % cfg.inflight] > limit)
        {
          w->st.verrs[VERR_LOST] += c->sent_seq - c->recv_seq;
          report ("session %u: echo %" G_GUINT64_FORMAT " not back after %.1f s",
                  c->index, c->recv_seq, (now - c->t_send[c->recv_seq % cfg.inflight]) / 1e6);
        }
      if (c->state == CONN_OPENING)
        conn_fail (c, ERR_OPEN_TIMEOUT, "still opening at the end");
      else
        conn_fail (c, ERR_CLOSED, "end of run");
    }
}

static void *
worker_main (void *data)
{
  Worker *w = data;
  struct epoll_event events[512];
  double cpu_start = 0;

  w->scratch = malloc (READ_CHUNK);
  if (w->scratch == NULL)
    die ("out of memory");
  for (;;)
    {
      guint64 now = now_us ();
      guint64 ts = __atomic_load_n (&g_traffic_start, __ATOMIC_ACQUIRE);
      int timeout = 20;
      int n;

      if (!w->ready)
        {
          worker_open_more (w, now);
          if (now >= w->open_deadline)
            for (guint i = 0; i < w->n_conns; i++)
              {
                if (w->conns[i].state == CONN_OPENING)
                  conn_fail (&w->conns[i], ERR_OPEN_TIMEOUT, "not open after %.1f s",
                             cfg.open_timeout);
                else if (w->conns[i].state == CONN_NEW)
                  {
                    w->conns[i].state = CONN_DEAD;
                    w->st.errs[ERR_OPEN_TIMEOUT]++;
                    w->resolved++;
                  }
              }
          if (w->resolved == w->n_conns)
            {
              w->ready = TRUE;
              __atomic_add_fetch (&g_ready, 1, __ATOMIC_RELEASE);
            }
          else
            timeout = (int) MIN (20, (w->open_deadline - now) / 1000 + 1);
        }
      if (ts != 0 && !w->traffic && now >= ts)
        {
          w->traffic = TRUE;
          if (!cfg.idle)
            for (guint i = 0; i < w->n_conns; i++)
              if (w->conns[i].state == CONN_OPEN)
                conn_start_traffic (&w->conns[i], now);
        }
      if (w->traffic && !w->in_window && now >= g_window_start)
        {
          w->in_window = TRUE;
          cpu_start = thread_cpu_s (RUSAGE_THREAD);
        }
      if (w->traffic && now >= g_window_end)
        break;
      if (w->traffic)
        timeout = (int) MIN (20, ((w->in_window ? g_window_end : g_window_start) - now) / 1000 + 1);

      n = epoll_wait (w->epfd, events, G_N_ELEMENTS (events), timeout);
      if (n < 0 && errno != EINTR)
        die ("epoll_wait: %s", strerror (errno));
      for (int i = 0; i < n; i++)
        {
          guint64 d = events[i].data.u64;
          Conn *c = &w->conns[d >> 32];
          Sock *s = &c->s[(d >> 31) & 1];

          if (s->fd < 0 || (s->gen & 0x7fffffffu) != (d & 0x7fffffffu))
            continue;
          sock_event (w, c, s, events[i].events);
        }
      if (IS_BROADCAST && w->traffic)
        bc_progress (w, now_us ());
    }
  w->st.cpu_window_s = thread_cpu_s (RUSAGE_THREAD) - cpu_start;
  worker_stop (w, now_us ());
  close (w->epfd);
  free (w->scratch);
  buf_free (&w->tmp);
  return NULL;
}

/* ------------------------------------------------------------ options */

static gboolean
parse_url (const char  *url,
           GError     **error)
{
  g_autofree char *host = NULL;
  g_autofree char *port = NULL;
  const char *p, *slash, *colon;
  struct addrinfo hints = { 0 }, *res = NULL;
  int rc;

  if (!g_str_has_prefix (url, "http://"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "Only http:// URLs are supported: “%s”", url);
      return FALSE;
    }
  p = url + 7;
  slash = strchr (p, '/');
  if (slash == NULL)
    slash = p + strlen (p);
  if (*p == '[')
    {
      const char *close_bracket = memchr (p, ']', (size_t) (slash - p));

      if (close_bracket == NULL)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "Bad URL “%s”", url);
          return FALSE;
        }
      host = g_strndup (p + 1, (size_t) (close_bracket - p - 1));
      colon = close_bracket + 1 < slash && close_bracket[1] == ':' ? close_bracket + 1 : NULL;
    }
  else
    {
      colon = memchr (p, ':', (size_t) (slash - p));
      host = g_strndup (p, (size_t) ((colon ? colon : slash) - p));
    }
  port = colon ? g_strndup (colon + 1, (size_t) (slash - colon - 1)) : g_strdup ("80");
  cfg.host_header = g_strndup (p, (size_t) (slash - p));
  cfg.path = g_strdup (*slash ? slash : "/engine.io/");
  if (strchr (cfg.path, '?') != NULL)
    *strchr (cfg.path, '?') = '\0';

  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo (host, port, &hints, &res);
  if (rc != 0)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "Cannot resolve “%s”: %s", host, gai_strerror (rc));
      return FALSE;
    }
  memcpy (&cfg.addr, res->ai_addr, res->ai_addrlen);
  cfg.addrlen = res->ai_addrlen;
  freeaddrinfo (res);
  return TRUE;
}

static gboolean
parse_sources (const char  *text,
               GError     **error)
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);

  cfg.n_sources = g_strv_length (parts);
  cfg.sources = g_new0 (struct sockaddr_storage, cfg.n_sources);
  for (guint i = 0; i < cfg.n_sources; i++)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) &cfg.sources[i];
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &cfg.sources[i];

      g_strstrip (parts[i]);
      if (inet_pton (AF_INET, parts[i], &sin->sin_addr) == 1)
        sin->sin_family = AF_INET;
      else if (inet_pton (AF_INET6, parts[i], &sin6->sin6_addr) == 1)
        sin6->sin6_family = AF_INET6;
      else
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "Bad source address “%s”", parts[i]);
          return FALSE;
        }
      if (cfg.sources[i].ss_family != cfg.addr.ss_family)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "Source address “%s” is not of the server's address family", parts[i]);
          return FALSE;
        }
    }
  return TRUE;
}

static void
raise_fd_limit (void)
{
  struct rlimit rl;
  guint64 need = (guint64) cfg.conns * (cfg.polling ? 2 : 1) + 64;

  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur < rl.rlim_max)
    {
      rl.rlim_cur = rl.rlim_max;
      setrlimit (RLIMIT_NOFILE, &rl);
    }
  if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
    fprintf (stderr, "engineio-bench: warning: %" G_GUINT64_FORMAT " descriptors needed, "
             "the limit is %lu (raise ulimit -n)\n", need, (unsigned long) rl.rlim_cur);
}

/* ------------------------------------------------------------ results */

static const char *
mode_name (void)
{
  switch (cfg.mode)
    {
    case MODE_WS:
      return cfg.raw ? "ws-raw" : "ws";
    case MODE_POLLING:
      return "polling";
    case MODE_SIO_ECHO:
      return "sio-echo";
    case MODE_SIO_ACK:
      return "sio-ack";
    case MODE_BROADCAST:
      return "broadcast";
    case MODE_SIO_BROADCAST:
      return "sio-broadcast";
    case MODE_SIO_CONNECT:
      return "sio-connect";
    case MODE_CONNECT:
    default:
      return "connect";
    }
}

int
main (int   argc,
      char *argv[])
{
  /* String options start NULL (GOption does not free a default it
   * replaces); the defaults are filled in after parsing. */
  g_autofree char *url = NULL;
  g_autofree char *mode = NULL;
  g_autofree char *transport = NULL;
  g_autofree char *sources = NULL;
  int conns = 100, inflight = 1, size = 32, threads = 1, open_window = 128;
  double duration = 10, warmup = 1, open_timeout = 60, fail_threshold = 0, echo_timeout = 2, hold_lost = 0;
  gboolean binary = FALSE, json = FALSE, verbose = FALSE, version = FALSE, raw = FALSE;
  GOptionEntry entries[] = {
    { "url", 'u', 0, G_OPTION_ARG_STRING, &url, "Server (default http://127.0.0.1:3000/engine.io/)", "URL" },
    { "mode", 'm', 0, G_OPTION_ARG_STRING, &mode, "ws, polling, connect, broadcast, sio-echo, sio-ack, sio-broadcast or sio-connect (default ws)", "MODE" },
    { "transport", 0, 0, G_OPTION_ARG_STRING, &transport, "connect mode: websocket (default) or polling", "T" },
    { "conns", 'c', 0, G_OPTION_ARG_INT, &conns, "Sessions (default 100)", "N" },
    { "inflight", 'P', 0, G_OPTION_ARG_INT, &inflight, "Messages in flight per session (default 1)", "N" },
    { "size", 'd', 0, G_OPTION_ARG_INT, &size, "Payload bytes (default 32)", "BYTES" },
    { "duration", 'D', 0, G_OPTION_ARG_DOUBLE, &duration, "Measured seconds; connect: seconds held (default 10)", "S" },
    { "warmup", 'w', 0, G_OPTION_ARG_DOUBLE, &warmup, "Seconds of traffic not counted (default 1)", "S" },
    { "binary", 'b', 0, G_OPTION_ARG_NONE, &binary, "Send binary messages (default text)", NULL },
    { "raw", 0, 0, G_OPTION_ARG_NONE, &raw, "ws or connect mode against a bare WebSocket echo server (no Engine.IO: messages are the payload, the upgrade opens the session)", NULL },
    { "json", 'j', 0, G_OPTION_ARG_NONE, &json, "Print the result as JSON on stdout", NULL },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "Threads, each with its own epoll loop (default 1)", "N" },
    { "source-addresses", 's', 0, G_OPTION_ARG_STRING, &sources, "Bind client sockets round-robin to these local addresses", "A,B,…" },
    { "open-window", 0, 0, G_OPTION_ARG_INT, &open_window, "Sessions opening at once per thread (default 128)", "N" },
    { "open-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &open_timeout, "Seconds allowed for opening every session (default 60)", "S" },
    { "fail-threshold", 0, 0, G_OPTION_ARG_DOUBLE, &fail_threshold, "Failed sessions tolerated, percent (default 0)", "PCT" },
    { "echo-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &echo_timeout, "An echo not back after this many seconds at the end is lost (default 2)", "S" },
    { "hold-lost", 0, 0, G_OPTION_ARG_DOUBLE, &hold_lost, "When echoes are lost at the end, keep the connections open this many seconds before closing them (to look at the server meanwhile; default 0)", "S" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print phases on stderr", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- load generator for Engine.IO v4 servers");
  g_autoptr(GError) error = NULL;
  Stats total = { 0 };
  guint64 t0, t_ready, t_end;
  double cpu0, cpu_ready, cpu_win0, cpu_win1, window_s, open_s;
  double max_thread_cpu = 0;
  guint64 session_failures = 0, verify_errors = 0;
  gboolean failed;
  gboolean stalled;
  FILE *human;

  /* Localized GOption messages, and arguments decoded from the locale's
   * charset (UTF-8 ones fail to convert in the C locale). */
  setlocale (LC_ALL, "");

  g_option_context_add_main_entries (options, entries, NULL);
  g_option_context_set_summary (options,
    "Opens sessions to an Engine.IO v4 server and measures echo throughput and latency\n"
    "(ws, polling) or how many idle sessions it holds (connect). Every echo is checked.\n"
    "broadcast: one extra session sends, the server sends each message to every session\n"
    "(engineio-echo --broadcast api|loop), the --conns receivers count deliveries (one thread).\n"
    "sio-* modes speak Socket.IO v5 over WebSocket to a socketio-echo-like server:\n"
    "event echo (sio-echo), acknowledgements (sio-ack), broadcast deliveries to --conns\n"
    "receivers from one extra sender (sio-broadcast, one thread), idle sessions (sio-connect).\n"
    "Exit status: 0 ok, 1 verification errors or failed sessions above --fail-threshold,\n"
    "2 bad usage or setup.");
  if (!g_option_context_parse (options, &argc, &argv, &error))
    die ("%s", error->message);
  if (version)
    return tool_print_version ("engineio-bench", ENGINEIO_GLIB_VERSION);
  if (!tool_check_no_arguments ("engineio-bench", argc, argv))
    return TOOL_EXIT_USAGE;
  if (url == NULL)
    url = g_strdup ("http://127.0.0.1:3000/engine.io/");
  if (mode == NULL)
    mode = g_strdup ("ws");
  if (transport == NULL)
    transport = g_strdup ("websocket");

  if (g_str_equal (mode, "ws") || g_str_equal (mode, "websocket"))
    cfg.mode = MODE_WS;
  else if (g_str_equal (mode, "polling"))
    cfg.mode = MODE_POLLING;
  else if (g_str_equal (mode, "connect"))
    cfg.mode = MODE_CONNECT;
  else if (g_str_equal (mode, "broadcast"))
    cfg.mode = MODE_BROADCAST;
  else if (g_str_equal (mode, "sio-echo"))
    cfg.mode = MODE_SIO_ECHO;
  else if (g_str_equal (mode, "sio-ack"))
    cfg.mode = MODE_SIO_ACK;
  else if (g_str_equal (mode, "sio-broadcast"))
    cfg.mode = MODE_SIO_BROADCAST;
  else if (g_str_equal (mode, "sio-connect"))
    cfg.mode = MODE_SIO_CONNECT;
  else
    die ("Unknown mode “%s” (ws, polling, connect, broadcast, sio-echo, sio-ack, sio-broadcast, sio-connect)", mode);
  cfg.sio = cfg.mode >= MODE_SIO_ECHO;
  cfg.idle = cfg.mode == MODE_CONNECT || cfg.mode == MODE_SIO_CONNECT;
  if (cfg.sio)
    {
      /* Socket.IO modes run over WebSocket only; payloads are JSON strings
       * (the text alphabet needs no escaping) */
      if (!g_str_equal (transport, "websocket") && !g_str_equal (transport, "ws"))
        die ("Socket.IO modes use WebSocket only");
      if (binary)
        die ("Socket.IO modes send text only");
    }
  else if (cfg.mode == MODE_CONNECT)
    {
      if (g_str_equal (transport, "polling"))
        cfg.polling = TRUE;
      else if (!g_str_equal (transport, "websocket") && !g_str_equal (transport, "ws"))
        die ("Unknown transport “%s” (websocket, polling)", transport);
    }
  else
    cfg.polling = cfg.mode == MODE_POLLING;
  if (raw && cfg.mode != MODE_WS && !(cfg.mode == MODE_CONNECT && !cfg.polling))
    die ("--raw is for ws mode, and connect mode over WebSocket, only");
  if (!tool_check_range ("engineio-bench", "conns", conns, 1, G_MAXINT64) ||
      !tool_check_range ("engineio-bench", "inflight", inflight, 1, G_MAXINT64) ||
      !tool_check_range ("engineio-bench", "size", size, 0, 64 * 1024 * 1024) ||
      !tool_check_range ("engineio-bench", "threads", threads, 1, G_MAXINT64) ||
      !tool_check_range ("engineio-bench", "open-window", open_window, 1, G_MAXINT64) ||
      !tool_check_range_double ("engineio-bench", "warmup", warmup, 0, 3600) ||
      !tool_check_range_double ("engineio-bench", "fail-threshold", fail_threshold, 0, 100) ||
      !tool_check_range_double ("engineio-bench", "echo-timeout", echo_timeout, 0, 3600) ||
      !tool_check_range_double ("engineio-bench", "hold-lost", hold_lost, 0, 3600))
    return TOOL_EXIT_USAGE;
  /* Zero excluded. */
  if (!(duration > 0) || duration > 86400)
    die ("--duration must be more than 0, at most 86400");
  if (!(open_timeout > 0) || open_timeout > 3600)
    die ("--open-timeout must be more than 0, at most 3600");
  cfg.url = url;
  cfg.conns = (guint) conns;
  cfg.inflight = (guint) inflight;
  cfg.size = (guint) size;
  cfg.receivers = (guint) conns;
  if (IS_BROADCAST)
    {
      /* one extra session emits; the completion count lives in one loop */
      cfg.conns++;
      threads = 1;
    }
  cfg.threads = (guint) MIN ((guint) threads, cfg.conns);
  cfg.open_window = (guint) open_window;
  cfg.duration = duration;
  cfg.warmup = cfg.idle ? 0 : warmup;
  cfg.open_timeout = open_timeout;
  cfg.fail_threshold = fail_threshold;
  cfg.echo_timeout = echo_timeout;
  cfg.hold_lost = hold_lost;
  cfg.binary = binary;
  cfg.raw = raw;
  cfg.json = json;
  cfg.verbose = verbose;
  if (!parse_url (url, &error) || (sources != NULL && !parse_sources (sources, &error)))
    die ("%s", error->message);

  signal (SIGPIPE, SIG_IGN);
  raise_fd_limit ();
  filler_init ();
  b64_init ();
  human = json ? stderr : stdout;

  /* sessions, split evenly; global numbers are contiguous per worker */
  workers = calloc (cfg.threads, sizeof (Worker));
  t0 = now_us ();
  cpu0 = thread_cpu_s (RUSAGE_SELF);
  for (guint i = 0, first = 0; i < cfg.threads; i++)
    {
      Worker *w = &workers[i];

      w->id = i;
      w->n_conns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads);
      w->first_index = first;
      first += w->n_conns;
      w->conns = calloc (w->n_conns, sizeof (Conn));
      if (w->conns == NULL)
        die ("out of memory");
      for (guint j = 0; j < w->n_conns; j++)
        {
          Conn *c = &w->conns[j];

          c->w = w;
          c->index = w->first_index + j;
          c->s[0].fd = c->s[1].fd = -1;
          c->s[1].role = 1;
          if (IS_BROADCAST && c->index == cfg.conns - 1)
            {
              c->sender = TRUE;
              w->sender = c;
            }
        }
      w->bc_count = calloc (cfg.inflight, sizeof (guint32));
      w->bc_t = calloc (cfg.inflight, sizeof (guint64));
      if (w->bc_count == NULL || w->bc_t == NULL)
        die ("out of memory");
      w->rng = 0x9e3779b9u ^ (guint32) (t0 * 2654435761u) ^ (i + 1) * 0x85ebca6bu;
      if (w->rng == 0)
        w->rng = 1;
      w->open_deadline = t0 + (guint64) (cfg.open_timeout * 1e6);
      w->epfd = epoll_create1 (EPOLL_CLOEXEC);
      if (w->epfd < 0)
        die ("epoll_create1: %s", strerror (errno));
    }
  for (guint i = 0; i < cfg.threads; i++)
    if (pthread_create (&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
      die ("pthread_create failed");

  if (verbose)
    fprintf (stderr, "engineio-bench: opening %u sessions\n", cfg.conns);
  while (__atomic_load_n (&g_ready, __ATOMIC_ACQUIRE) < cfg.threads)
    g_usleep (1000);
  t_ready = now_us ();
  cpu_ready = thread_cpu_s (RUSAGE_SELF);
  open_s = (t_ready - t0) / 1e6;

  g_window_start = t_ready + (guint64) (cfg.warmup * 1e6);
  g_window_end = g_window_start + (guint64) (cfg.duration * 1e6);
  __atomic_store_n (&g_traffic_start, t_ready, __ATOMIC_RELEASE);
  if (verbose)
    fprintf (stderr, "engineio-bench: opened in %.3f s; %s for %.1f s after %.1f s warm-up\n",
             open_s, cfg.idle ? "holding" : "traffic", cfg.duration, cfg.warmup);

  while (now_us () < g_window_start)
    g_usleep (MIN (20000, MAX (100, g_window_start - now_us ())));
  cpu_win0 = thread_cpu_s (RUSAGE_SELF);
  while (now_us () < g_window_end)
    g_usleep (MIN (20000, MAX (100, g_window_end - now_us ())));
  cpu_win1 = thread_cpu_s (RUSAGE_SELF);
  for (guint i = 0; i < cfg.threads; i++)
    pthread_join (workers[i].thread, NULL);
  t_end = now_us ();
  window_s = cfg.duration;

  for (guint i = 0; i < cfg.threads; i++)
    {
      Stats *st = &workers[i].st;

      hist_merge (&total.lat, &st->lat);
      hist_merge (&total.open, &st->open);
      total.messages += st->messages;
      total.messages_all += st->messages_all;
      total.broadcasts += st->broadcasts;
      total.pings += st->pings;
      total.opened += st->opened;
      total.held += st->held;
      for (int k = 0; k < N_ERR; k++)
        total.errs[k] += st->errs[k];
      for (int k = 0; k < N_VERR; k++)
        total.verrs[k] += st->verrs[k];
      max_thread_cpu = MAX (max_thread_cpu, st->cpu_window_s / window_s * 100);
    }
  session_failures = total.errs[ERR_CONNECT] + total.errs[ERR_HANDSHAKE] +
                     total.errs[ERR_OPEN_TIMEOUT] + total.errs[ERR_CLOSED];
  for (int k = 1; k < N_VERR; k++)
    verify_errors += total.verrs[k];
  /* A traffic mode that completed nothing measured nothing: a server that
   * never answers (or never broadcasts) is a failure even when each
   * message sent was too recent at the end to count as lost. */
  stalled = !cfg.idle && total.messages == 0;
  failed = verify_errors > 0 || total.errs[ERR_PROTOCOL] > 0 || stalled ||
           session_failures * 100.0 > cfg.fail_threshold * cfg.conns;
  if (stalled)
    report ("no message completed in the measured window");

  fprintf (human, "engineio-bench %s %s: %u sessions%s, %u in flight, %u B %s, %u thread%s\n",
           mode_name (), cfg.url, cfg.conns,
           cfg.polling && cfg.mode == MODE_CONNECT ? " (polling)" :
           IS_BROADCAST ? " (receivers + 1 sender)" : "",
           cfg.inflight, cfg.size, cfg.binary ? "binary" : "text", cfg.threads,
           cfg.threads == 1 ? "" : "s");
  fprintf (human, "  opened %" G_GUINT64_FORMAT "/%u in %.3f s (open p50 %" G_GUINT64_FORMAT
           " us, p99 %" G_GUINT64_FORMAT " us, max %" G_GUINT64_FORMAT " us), cpu %.0f%%\n",
           total.opened, cfg.conns, open_s, hist_quantile (&total.open, 0.5),
           hist_quantile (&total.open, 0.99), total.open.max,
           open_s > 0 ? (cpu_ready - cpu0) / open_s * 100 : 0.0);
  if (cfg.idle)
    fprintf (human, "  held %" G_GUINT64_FORMAT "/%u after %.1f s, %" G_GUINT64_FORMAT " pings answered\n",
             total.held, cfg.conns, cfg.duration, total.pings);
  else
    {
      if (IS_BROADCAST)
        fprintf (human, "  %.0f deliveries/s (%" G_GUINT64_FORMAT " deliveries of %" G_GUINT64_FORMAT
                 " broadcasts to %u receivers in %.1f s after %.1f s warm-up; latency below: emit "
                 "to last delivery)\n", total.messages / window_s, total.messages, total.broadcasts,
                 cfg.receivers, window_s, cfg.warmup);
      else
        fprintf (human, "  %.0f msg/s (%" G_GUINT64_FORMAT " echoes in %.1f s after %.1f s warm-up)\n",
                 total.messages / window_s, total.messages, window_s, cfg.warmup);
      fprintf (human, "  latency us: p50 %" G_GUINT64_FORMAT " p90 %" G_GUINT64_FORMAT
               " p99 %" G_GUINT64_FORMAT " max %" G_GUINT64_FORMAT "\n",
               hist_quantile (&total.lat, 0.5), hist_quantile (&total.lat, 0.9),
               hist_quantile (&total.lat, 0.99), total.lat.max);
    }
  fprintf (human, "  errors: verify %" G_GUINT64_FORMAT " (length %" G_GUINT64_FORMAT
           ", content %" G_GUINT64_FORMAT ", order %" G_GUINT64_FORMAT ", type %" G_GUINT64_FORMAT
           ", unexpected %" G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT "); sessions failed %" G_GUINT64_FORMAT
           " (connect %" G_GUINT64_FORMAT ", handshake %" G_GUINT64_FORMAT ", open timeout %"
           G_GUINT64_FORMAT ", closed %" G_GUINT64_FORMAT "); protocol %" G_GUINT64_FORMAT "\n",
           verify_errors, total.verrs[VERR_LENGTH], total.verrs[VERR_CONTENT],
           total.verrs[VERR_ORDER], total.verrs[VERR_TYPE], total.verrs[VERR_UNEXPECTED], total.verrs[VERR_LOST],
           session_failures, total.errs[ERR_CONNECT], total.errs[ERR_HANDSHAKE],
           total.errs[ERR_OPEN_TIMEOUT], total.errs[ERR_CLOSED], total.errs[ERR_PROTOCOL]);
  fprintf (human, "  bench cpu: %.1f%% of one core over the window (busiest thread %.1f%%)\n",
           (cpu_win1 - cpu_win0) / window_s * 100, max_thread_cpu);

  if (json)
    {
      printf ("{\"mode\":\"%s\",\"url\":\"%s\",\"transport\":\"%s\",\"conns\":%u,\"inflight\":%u,"
              "\"size\":%u,\"binary\":%s,\"threads\":%u,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
              "\"opened\":%" G_GUINT64_FORMAT ",\"open_time_s\":%.6f,"
              "\"open_latency_us\":{\"p50\":%" G_GUINT64_FORMAT ",\"p99\":%" G_GUINT64_FORMAT
              ",\"max\":%" G_GUINT64_FORMAT "},"
              "\"held\":%" G_GUINT64_FORMAT ",\"pings\":%" G_GUINT64_FORMAT ","
              "\"messages\":%" G_GUINT64_FORMAT ",\"msg_per_s\":%.1f,"
              "\"latency_us\":{\"p50\":%" G_GUINT64_FORMAT ",\"p90\":%" G_GUINT64_FORMAT
              ",\"p99\":%" G_GUINT64_FORMAT ",\"max\":%" G_GUINT64_FORMAT "},"
              "\"errors\":{\"verify\":%" G_GUINT64_FORMAT,
              mode_name (), cfg.url, cfg.polling ? "polling" : "websocket", cfg.conns,
              cfg.inflight, cfg.size, cfg.binary ? "true" : "false", cfg.threads, cfg.duration,
              cfg.warmup, total.opened, open_s, hist_quantile (&total.open, 0.5),
              hist_quantile (&total.open, 0.99), total.open.max, total.held, total.pings,
              total.messages, total.messages / window_s, hist_quantile (&total.lat, 0.5),
              hist_quantile (&total.lat, 0.9), hist_quantile (&total.lat, 0.99), total.lat.max,
              verify_errors);
      for (int k = 1; k < N_VERR; k++)
        printf (",\"%s\":%" G_GUINT64_FORMAT, verr_names[k], total.verrs[k]);
      printf (",\"sessions_failed\":%" G_GUINT64_FORMAT, session_failures);
      for (int k = 0; k < N_ERR; k++)
        printf (",\"%s\":%" G_GUINT64_FORMAT, err_names[k], total.errs[k]);
      printf ("},\"receivers\":%u,\"broadcasts\":%" G_GUINT64_FORMAT ",\"broadcasts_per_s\":%.1f,"
              "\"deliveries_per_s\":%.1f",
              cfg.receivers, total.broadcasts, total.broadcasts / window_s,
              IS_BROADCAST ? total.messages / window_s : 0.0);
      printf (",\"cpu_pct\":%.1f,\"max_thread_cpu_pct\":%.1f,\"open_cpu_pct\":%.1f,"
              "\"wall_s\":%.3f,\"ok\":%s}\n",
              (cpu_win1 - cpu_win0) / window_s * 100, max_thread_cpu,
              open_s > 0 ? (cpu_ready - cpu0) / open_s * 100 : 0.0, (t_end - t0) / 1e6,
              failed ? "false" : "true");
    }
  fflush (stdout);
  return failed ? 1 : 0;
}

