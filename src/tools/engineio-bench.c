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
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "tool-cli.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* RFC 6455 section 1.3's sample key and its accept value. Every session
 * sends the same key so the accept value can be checked without SHA-1;
 * servers do not track keys. */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define MAX_FRAME      (256u * 1024 * 1024)
#define MAX_HEAD       (64u * 1024)
#define READ_CHUNK     (256u * 1024)
#define MAX_PRINTED    10

typedef enum
{
  MODE_WS,
  MODE_POLLING,
  MODE_CONNECT,
  MODE_BROADCAST,       /* Engine.IO: one sender, the server sends each message to every session */
  MODE_SIO_ECHO,        /* Socket.IO: 42["message",…] → 42["message-back",…] */
  MODE_SIO_ACK,         /* Socket.IO: 42N["message-with-ack",…] → 43N[…] */
  MODE_SIO_BROADCAST,   /* Socket.IO: one sender, every session counts deliveries */
  MODE_SIO_CONNECT,     /* Socket.IO: idle sessions joined to "/" */
} BenchMode;

/* One sender; every session counts the deliveries of what it sends. */
#define IS_BROADCAST (cfg.mode == MODE_BROADCAST || cfg.mode == MODE_SIO_BROADCAST)

/* Session-level failures: they count against --fail-threshold. */
typedef enum
{
  ERR_CONNECT,          /* socket (), bind (), connect () failed */
  ERR_HANDSHAKE,        /* bad HTTP answer, no 101, no usable open packet */
  ERR_OPEN_TIMEOUT,     /* not open when --open-timeout expired */
  ERR_CLOSED,           /* the server closed an open session */
  ERR_PROTOCOL,         /* malformed frame or response, unexpected packet */
  N_ERR
} ErrKind;

/* Echo verification failures: any of them makes the exit status 1. */
typedef enum
{
  VERR_NONE,
  VERR_LENGTH,
  VERR_CONTENT,
  VERR_ORDER,
  VERR_TYPE,            /* text came back as binary or the reverse */
  VERR_UNEXPECTED,      /* an echo with nothing in flight */
  VERR_LOST,            /* no echo within --echo-timeout, seen at the end */
  N_VERR
} VerrKind;

static const char *const err_names[N_ERR] = {
  "connect", "handshake", "open_timeout", "closed", "protocol",
};
static const char *const verr_names[N_VERR] = {
  "none", "length", "content", "order", "type", "unexpected", "lost",
};

typedef struct
{
  BenchMode     mode;
  gboolean      polling;        /* sessions use long-polling */
  gboolean      sio;            /* Socket.IO v5 on top: join "/" first */
  gboolean      idle;           /* connect modes: no traffic */
  char         *url;
  char         *host_header;
  char         *path;
  struct sockaddr_storage addr;
  socklen_t     addrlen;
  struct sockaddr_storage *sources;
  guint         n_sources;
  guint         conns;          /* sessions opened (sio-broadcast: receivers + 1) */
  guint         receivers;      /* --conns */
  guint         inflight;
  guint         size;
  guint         threads;
  guint         open_window;
  double        duration;
  double        warmup;
  double        open_timeout;
  double        fail_threshold;
  double        echo_timeout;
  double        hold_lost;      /* --hold-lost */
  gboolean      binary;
  gboolean      raw;            /* ws mode against a bare WebSocket echo: no Engine.IO */
  gboolean      json;
  gboolean      verbose;
} Config;

static Config cfg;

/* Shared between threads. The window times are written before
 * g_traffic_start is published (release) and read after it (acquire). */
static guint64 g_window_start;
static guint64 g_window_end;
static guint64 g_traffic_start;     /* (atomic) 0 until the open phase ends */
static guint   g_ready;             /* (atomic) workers done opening */
static guint   g_printed;           /* (atomic) error lines printed */
static char   *g_filler;            /* size + 64 bytes of pattern */

/* ---------------------------------------------------------------- util */

static void die (const char *format, ...) G_GNUC_PRINTF (1, 2) G_GNUC_NORETURN;

static void
die (const char *format,
     ...)
{
  va_list args;

  va_start (args, format);
  fputs ("engineio-bench: ", stderr);
  vfprintf (stderr, format, args);
  fputc ('\n', stderr);
  va_end (args);
  exit (2);
}

static void report (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* The first few failures are printed; the rest are only counted. */
static void
report (const char *format,
        ...)
{
  va_list args;
  char line[512];

  if (__atomic_fetch_add (&g_printed, 1, __ATOMIC_RELAXED) >= MAX_PRINTED)
    return;
  va_start (args, format);
  vsnprintf (line, sizeof line, format, args);
  va_end (args);
  fprintf (stderr, "engineio-bench: %s\n", line);
}

static inline guint64
now_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000u + (guint64) ts.tv_nsec / 1000u;
}

static double
thread_cpu_s (int who)
{
  struct rusage ru;

  getrusage (who, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

typedef struct
{
  char   *data;
  size_t  len;
  size_t  cap;
} Buf;

static void
buf_reserve (Buf    *b,
             size_t  extra)
{
  size_t need = b->len + extra;
  size_t cap;

  if (need <= b->cap)
    return;
  cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  b->data = realloc (b->data, cap);
  if (b->data == NULL)
    die ("out of memory");
  b->cap = cap;
}

static void
buf_append (Buf        *b,
            const void *data,
            size_t      len)
{
  buf_reserve (b, len);
  memcpy (b->data + b->len, data, len);
  b->len += len;
}

static void buf_printf (Buf *b, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
buf_printf (Buf        *b,
            const char *format,
            ...)
{
  va_list args;
  int n;

  buf_reserve (b, 512);
  va_start (args, format);
  n = vsnprintf (b->data + b->len, b->cap - b->len, format, args);
  va_end (args);
  if (n < 0)
    die ("formatting failed");
  if ((size_t) n >= b->cap - b->len)
    {
      buf_reserve (b, (size_t) n + 1);
      va_start (args, format);
      vsnprintf (b->data + b->len, b->cap - b->len, format, args);
      va_end (args);
    }
  b->len += (size_t) n;
}

static void
buf_free (Buf *b)
{
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* ----------------------------------------------------------- histogram */

/* Log-linear (HDR-style) buckets: exact below 128 µs, then 64 buckets per
 * power of two, so every value is within 1/64 of its bucket's bounds. */
#define HIST_SUB_BITS  7
#define HIST_HALF      (1u << (HIST_SUB_BITS - 1))
#define HIST_MAX_SHIFT 32
#define HIST_BUCKETS   ((HIST_MAX_SHIFT + 2) * HIST_HALF)

typedef struct
{
  guint64 counts[HIST_BUCKETS];
  guint64 total;
  guint64 max;
} Hist;

static inline void
hist_record (Hist    *h,
             guint64  v)
{
  guint idx;

  if (v > h->max)
    h->max = v;
  h->total++;
  if (v < (1u << HIST_SUB_BITS))
    idx = (guint) v;
  else
    {
      int shift = (63 - __builtin_clzll (v)) - HIST_SUB_BITS + 1;

      if (shift > HIST_MAX_SHIFT)
        {
          shift = HIST_MAX_SHIFT;
          v = ((guint64) (2 * HIST_HALF) << shift) - 1;
        }
      idx = (guint) shift * HIST_HALF + (guint) (v >> shift);
    }
  h->counts[idx]++;
}

static void
hist_merge (Hist       *into,
            const Hist *from)
{
  for (guint i = 0; i < HIST_BUCKETS; i++)
    into->counts[i] += from->counts[i];
  into->total += from->total;
  if (from->max > into->max)
    into->max = from->max;
}

/* The upper bound of the bucket holding the @p quantile, capped at max. */
static guint64
hist_quantile (const Hist *h,
               double      p)
{
  guint64 target, seen = 0;

  if (h->total == 0)
    return 0;
  target = (guint64) (p * h->total + 0.999999);
  if (target < 1)
    target = 1;
  for (guint i = 0; i < HIST_BUCKETS; i++)
    {
      seen += h->counts[i];
      if (seen >= target)
        {
          guint64 upper;

          if (i < 2 * HIST_HALF)
            upper = i;
          else
            {
              guint shift = i / HIST_HALF - 1;
              guint64 m = i - shift * HIST_HALF;

              upper = ((m + 1) << shift) - 1;
            }
          return MIN (upper, h->max);
        }
    }
  return h->max;
}

/* ------------------------------------------------------------- payload */

static const char hex_digits[] = "0123456789abcdef";

/* Payload for @seq: the low hex digits of @seq (16 of them when size ≥ 16)
 * then the filler pattern from offset seq % 64. */
static inline void
payload_write (char    *dst,
               guint64  seq,
               size_t   size)
{
  size_t h = MIN (16, size);

  for (size_t i = h; i > 0; i--)
    {
      dst[i - 1] = hex_digits[seq & 15];
      seq >>= 4;
    }
  memcpy (dst + h, g_filler + (seq & 63), size - h);
}

static gboolean
payload_seq (const char *p,
             size_t      len,
             guint64    *seq)
{
  guint64 v = 0;

  if (len < 16)
    return FALSE;
  for (int i = 0; i < 16; i++)
    {
      const char *d = memchr (hex_digits, p[i], 16);

      if (d == NULL || p[i] == '\0')
        return FALSE;
      v = v << 4 | (guint64) (d - hex_digits);
    }
  *seq = v;
  return TRUE;
}

static VerrKind
payload_check (const char *p,
               size_t      len,
               guint64     seq)
{
  size_t h = MIN (16, cfg.size);
  guint64 s = seq;

  if (len != cfg.size)
    return VERR_LENGTH;
  for (size_t i = h; i > 0; i--)
    {
      if (p[i - 1] != hex_digits[s & 15])
        {
          guint64 got;

          if (payload_seq (p, len, &got) && got != seq)
            return VERR_ORDER;
          return VERR_CONTENT;
        }
      s >>= 4;
    }
  /* payload_write shifted seq by 4·h bits before taking the filler offset */
  if (memcmp (p + h, g_filler + (s & 63), len - h) != 0)
    return VERR_CONTENT;
  return VERR_NONE;
}

static void
filler_init (void)
{
  static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  size_t n = cfg.size + 64;

  g_filler = malloc (n + 1);
  if (g_filler == NULL)
    die ("out of memory");
  for (size_t i = 0; i < n; i++)
    {
      if (cfg.binary)
        g_filler[i] = (char) ((i * 131 + (i >> 8) * 17 + 7) & 0xff);
      else
        g_filler[i] = alphabet[(i * 7 + i / 62) % 62];
    }
}

/* -------------------------------------------------------------- base64 */

static const char b64_chars[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
b64_len (size_t n)
{
  return (n + 2) / 3 * 4;
}

static void
b64_encode (char          *out,
            const guint8  *in,
            size_t         n)
{
  size_t i = 0;

  for (; i + 3 <= n; i += 3)
    {
      guint32 v = (guint32) in[i] << 16 | (guint32) in[i + 1] << 8 | in[i + 2];

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = b64_chars[(v >> 6) & 63];
      *out++ = b64_chars[v & 63];
    }
  if (n - i == 1)
    {
      guint32 v = (guint32) in[i] << 16;

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = '=';
      *out++ = '=';
    }
  else if (n - i == 2)
    {
      guint32 v = (guint32) in[i] << 16 | (guint32) in[i + 1] << 8;

      *out++ = b64_chars[v >> 18];
      *out++ = b64_chars[(v >> 12) & 63];
      *out++ = b64_chars[(v >> 6) & 63];
      *out++ = '=';
    }
}

static signed char b64_rev[256];

static void
b64_init (void)
{
  memset (b64_rev, -1, sizeof b64_rev);
  for (int i = 0; i < 64; i++)
    b64_rev[(guint8) b64_chars[i]] = (signed char) i;
}

/* Returns the decoded length, or -1 on bad input. */
static gssize
b64_decode (guint8     *out,
            const char *in,
            size_t      n)
{
  guint32 acc = 0;
  int bits = 0;
  size_t o = 0;

  while (n > 0 && in[n - 1] == '=')
    n--;
  for (size_t i = 0; i < n; i++)
    {
      int v = b64_rev[(guint8) in[i]];

      if (v < 0)
        return -1;
      acc = acc << 6 | (guint32) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (guint8) (acc >> bits);
        }
    }
  return (gssize) o;
}

/* ------------------------------------------------------ sessions, loop */

typedef struct _Worker Worker;
typedef struct _Conn Conn;

typedef enum
{
  SOCK_CLOSED,
  SOCK_CONNECTING,
  SOCK_OPEN,
} SockState;

typedef struct
{
  int       fd;
  guint32   gen;              /* bumped on close: stale epoll events are ignored */
  guint8    role;             /* 0: WebSocket or polling GET; 1: polling POST */
  guint8    state;            /* SockState */
  guint8    want_out;         /* EPOLLOUT registered */
  guint8    reused;           /* has answered a request: keep-alive reuse */
  guint8    in_flight;        /* polling: a request awaits its response */
  guint8    retried;          /* polling: resent once after a keep-alive race */
  guint32   head_len;         /* polling: parsed response head, 0 if not yet */
  gint64    body_len;         /* polling: Content-Length, -1 chunked */
  int       status;
  gboolean  close_after;      /* polling: Connection: close */
  size_t    need;             /* bytes wanted before parsing again */
  Buf       rbuf;
  Buf       wbuf;
} Sock;

typedef enum
{
  CONN_NEW,
  CONN_OPENING,
  CONN_OPEN,
  CONN_DEAD,
} ConnState;

struct _Conn
{
  Sock      s[2];
  Worker   *w;
  guint32   index;            /* global session number */
  guint8    state;            /* ConnState */
  guint8    upgraded;         /* ws: 101 seen */
  guint8    frag_op;          /* ws: opcode of a fragmented message, 0 if none */
  guint8    post_inflight;
  guint8    want_get;         /* polling: send the next GET after this read */
  guint8    sender;           /* sio-broadcast: the session that emits */
  guint32   pending_pongs;
  guint32   post_pongs;
  guint32   post_count;
  guint64   open_start;
  guint64   next_seq;         /* messages generated */
  guint64   sent_seq;         /* messages written */
  guint64   recv_seq;         /* echoes received */
  guint64   post_first_seq;
  guint64  *t_send;           /* ring of cfg.inflight send times */
  Buf       frag;
  char      sid[64];
};

typedef struct
{
  Hist     lat;
  Hist     open;
  guint64  messages;          /* echoes completed inside the window */
  guint64  messages_all;
  guint64  broadcasts;        /* sio-broadcast: broadcasts completed inside the window */
  guint64  pings;
  guint64  errs[N_ERR];
  guint64  verrs[N_VERR];
  guint64  opened;
  guint64  held;
  double   cpu_window_s;
} Stats;

struct _Worker
{
  guint      id;
  pthread_t  thread;
  int        epfd;
  Conn      *conns;
  guint      n_conns;
  guint      first_index;
  guint      next_to_open;
  guint      opening;
  guint      resolved;
  gboolean   ready;
  gboolean   traffic;
  gboolean   in_window;
  gboolean   stopping;
  guint64    open_deadline;
  guint32    rng;
  guint      alive;           /* sessions open (sio-broadcast completion) */
  Conn      *sender;          /* sio-broadcast */
  guint32   *bc_count;        /* sio-broadcast: deliveries per slot (ring of inflight) */
  guint64    bc_sent;         /* sio-broadcast: broadcasts emitted */
  guint64    bc_done;         /* sio-broadcast: broadcasts every live session got */
  guint64   *bc_t;            /* sio-broadcast: send times (ring of inflight) */
  Buf        tmp;
  char      *scratch;
  Stats      st;
};

static Worker *workers;

static inline guint32
worker_rand (Worker *w)
{
  guint32 x = w->rng;

  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return w->rng = x;
}

static inline gboolean
in_window (guint64 t)
{
  return t >= g_window_start && t < g_window_end;
}

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

static void conn_fail (Conn *c, ErrKind kind, const char *format, ...) G_GNUC_PRINTF (3, 4);

static void
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

static gboolean
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
static gboolean
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

/* --------------------------------------------------------------- HTTP */

/* Parses a response head into @s. Returns the head length, 0 if it is not
 * complete yet, -1 if it is malformed. */
static gssize
http_parse_head (Sock       *s,
                 const char *p,
                 size_t      len,
                 gboolean   *accept_ok)
{
  const char *end = memmem (p, len, "\r\n\r\n", 4);
  const char *line;

  if (end == NULL)
    return len > MAX_HEAD ? -1 : 0;
  if (len < 12 || memcmp (p, "HTTP/1.", 7) != 0)
    return -1;
  s->status = atoi (p + 9);
  s->body_len = -2;
  s->close_after = memcmp (p, "HTTP/1.0", 8) == 0;
  if (accept_ok != NULL)
    *accept_ok = FALSE;
  line = memchr (p, '\n', (size_t) (end - p)) + 1;
  while (line < end + 2)
    {
      const char *eol = memchr (line, '\r', (size_t) (end + 2 - line));
      const char *colon = memchr (line, ':', (size_t) (eol - line));
      const char *v;
      size_t nlen, vlen;

      if (colon == NULL)
        return -1;
      nlen = (size_t) (colon - line);
      v = colon + 1;
      while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
      vlen = (size_t) (eol - v);
      if (nlen == 14 && strncasecmp (line, "content-length", 14) == 0)
        s->body_len = strtoll (v, NULL, 10);
      else if (nlen == 17 && strncasecmp (line, "transfer-encoding", 17) == 0 &&
               vlen >= 7 && strncasecmp (v, "chunked", 7) == 0)
        s->body_len = -1;
      else if (nlen == 10 && strncasecmp (line, "connection", 10) == 0)
        s->close_after = vlen >= 5 && strncasecmp (v, "close", 5) == 0;
      else if (accept_ok != NULL && nlen == 20 &&
               strncasecmp (line, "sec-websocket-accept", 20) == 0)
        *accept_ok = vlen == strlen (WS_ACCEPT) && memcmp (v, WS_ACCEPT, vlen) == 0;
      line = eol + 2;
    }
  return end + 4 - p;
}

/* Decodes a chunked body at @p into @out. Returns the encoded length,
 * 0 if incomplete, -1 if malformed. */
static gssize
http_dechunk (const char *p,
              size_t      len,
              Buf        *out)
{
  size_t off = 0;

  out->len = 0;
  for (;;)
    {
      const char *eol = memmem (p + off, len - off, "\r\n", 2);
      char *num_end;
      unsigned long long n;

      if (eol == NULL)
        return 0;
      n = strtoull (p + off, &num_end, 16);
      if (num_end == p + off)
        return -1;
      off = (size_t) (eol - p) + 2;
      if (n == 0)
        {
          /* no trailers expected: just the final CRLF */
          if (len - off < 2)
            return 0;
          return memcmp (p + off, "\r\n", 2) == 0 ? (gssize) (off + 2) : -1;
        }
      if (n > MAX_FRAME)
        return -1;
      if (len - off < n + 2)
        return 0;
      buf_append (out, p + off, n);
      off += n + 2;
    }
}

/* ----------------------------------------------------------- messages */

static void ws_queue_message (Conn *c, guint64 seq, guint64 now);
static void bc_emit (Worker *w, guint64 now);
static void polling_maybe_post (Conn *c, guint64 now);

static void
verify_failed (Conn       *c,
               VerrKind    kind,
               guint64     seq,
               const char *p,
               size_t      len)
{
  guint64 got = 0;

  c->w->st.verrs[kind]++;
  if (kind == VERR_ORDER && payload_seq (p, len, &got))
    report ("session %u: echo %" G_GUINT64_FORMAT ": order: got message %" G_GUINT64_FORMAT,
            c->index, seq, got);
  else
    report ("session %u: echo %" G_GUINT64_FORMAT ": %s (%zu bytes, %zu expected)",
            c->index, seq, verr_names[kind], len, (size_t) cfg.size);
}

/* Returns the sequence number the echo was taken for, G_MAXUINT64 if
 * nothing was in flight. */
static guint64
on_echo (Conn       *c,
         const char *p,
         size_t      len,
         gboolean    binary,
         guint64     now)
{
  Worker *w = c->w;
  VerrKind kind;
  guint64 seq;

  if (cfg.idle || c->recv_seq >= c->sent_seq)
    {
      w->st.verrs[VERR_UNEXPECTED]++;
      report ("session %u: a message with nothing in flight (%zu bytes)", c->index, len);
      return G_MAXUINT64;
    }
  seq = c->recv_seq++;
  if (binary != cfg.binary)
    kind = VERR_TYPE;
  else
    kind = payload_check (p, len, seq);
  if (kind != VERR_NONE)
    {
      guint64 got;

      verify_failed (c, kind, seq, p, len);
      /* A later message came back: the ones skipped are missing. Resync on
       * it rather than report every following echo as out of order. */
      if (kind == VERR_ORDER && payload_seq (p, len, &got) && got > seq &&
          got < c->sent_seq && payload_check (p, len, got) == VERR_NONE)
        {
          seq = got;
          c->recv_seq = got + 1;
        }
    }
  w->st.messages_all++;
  if (in_window (now))
    {
      w->st.messages++;
      hist_record (&w->st.lat, now - c->t_send[seq % cfg.inflight]);
    }
  if (w->stopping || now >= g_window_end)
    return seq;
  if (!cfg.polling)
    ws_queue_message (c, c->next_seq++, now);
  else
    c->next_seq++;          /* posted by polling_maybe_post () */
  return seq;
}

static void
conn_opened (Conn    *c,
             guint64  now)
{
  Worker *w = c->w;

  c->state = CONN_OPEN;
  w->opening--;
  w->resolved++;
  w->st.opened++;
  w->alive++;
  hist_record (&w->st.open, now - c->open_start);
}

/* Copies the sid out of an open packet's JSON; FALSE if there is none. */
static gboolean
parse_open (Conn       *c,
            const char *p,
            size_t      len)
{
  const char *key = memmem (p, len, "\"sid\":\"", 7);
  const char *v, *q;

  if (len < 2 || p[0] != '0' || key == NULL)
    return FALSE;
  v = key + 7;
  q = memchr (v, '"', (size_t) (p + len - v));
  if (q == NULL || q == v || (size_t) (q - v) >= sizeof c->sid)
    return FALSE;
  memcpy (c->sid, v, (size_t) (q - v));
  c->sid[q - v] = '\0';
  return TRUE;
}

/* ---------------------------------------------------------- WebSocket */

static guint8 *
ws_frame_begin (Conn     *c,
                int       opcode,
                size_t    plen,
                guint32  *key)
{
  Buf *b = &c->s[0].wbuf;
  guint8 *h;
  size_t hl;

  buf_reserve (b, plen + 14);
  h = (guint8 *) b->data + b->len;
  h[0] = (guint8) (0x80 | opcode);
  if (plen < 126)
    {
      h[1] = (guint8) (0x80 | plen);
      hl = 2;
    }
  else if (plen < 65536)
    {
      h[1] = 0x80 | 126;
      h[2] = (guint8) (plen >> 8);
      h[3] = (guint8) plen;
      hl = 4;
    }
  else
    {
      h[1] = 0x80 | 127;
      for (int i = 0; i < 8; i++)
        h[2 + i] = (guint8) ((guint64) plen >> (56 - 8 * i));
      hl = 10;
    }
  *key = worker_rand (c->w);
  memcpy (h + hl, key, 4);
  hl += 4;
  b->len += hl + plen;
  return h + hl;
}

static void
ws_mask (guint8  *p,
         size_t   n,
         guint32  key)
{
  guint64 k8 = (guint64) key << 32 | key;
  size_t i = 0;

  for (; i + 8 <= n; i += 8)
    {
      guint64 v;

      memcpy (&v, p + i, 8);
      v ^= k8;
      memcpy (p + i, &v, 8);
    }
  for (; i < n; i++)
    p[i] ^= ((const guint8 *) &key)[i & 3];
}

static void
ws_queue_raw (Conn       *c,
              int         opcode,
              const char *data,
              size_t      len)
{
  guint32 key;
  guint8 *p = ws_frame_begin (c, opcode, len, &key);

  memcpy (p, data, len);
  ws_mask (p, len, key);
}

static void
ws_queue_message (Conn    *c,
                  guint64  seq,
                  guint64  now)
{
  guint32 key;
  guint8 *p;

  if (cfg.sio)
    {
      char head[80];
      int hl;

      if (cfg.mode == MODE_SIO_ACK)
        hl = snprintf (head, sizeof head, "42%" G_GUINT64_FORMAT "[\"message-with-ack\",\"", seq);
      else if (cfg.mode == MODE_SIO_BROADCAST)
        hl = snprintf (head, sizeof head, "42[\"broadcast\",\"");
      else
        hl = snprintf (head, sizeof head, "42[\"message\",\"");
      p = ws_frame_begin (c, 1, (size_t) hl + cfg.size + 2, &key);
      memcpy (p, head, (size_t) hl);
      payload_write ((char *) p + hl, seq, cfg.size);
      memcpy (p + hl + cfg.size, "\"]", 2);
      ws_mask (p, (size_t) hl + cfg.size + 2, key);
    }
  else if (cfg.binary)
    {
      p = ws_frame_begin (c, 2, cfg.size, &key);
      payload_write ((char *) p, seq, cfg.size);
      ws_mask (p, cfg.size, key);
    }
  else if (cfg.raw)
    {
      p = ws_frame_begin (c, 1, cfg.size, &key);
      payload_write ((char *) p, seq, cfg.size);
      ws_mask (p, cfg.size, key);
    }
  else
    {
      p = ws_frame_begin (c, 1, cfg.size + 1, &key);
      p[0] = '4';
      payload_write ((char *) p + 1, seq, cfg.size);
      ws_mask (p, cfg.size + 1, key);
    }
  c->t_send[seq % cfg.inflight] = now;
  c->sent_seq = seq + 1;
}

/* ------------------------------------------------------------ Socket.IO */

static gboolean
has_prefix (const char *p,
            size_t      len,
            const char *prefix,
            size_t      plen)
{
  return len >= plen && memcmp (p, prefix, plen) == 0;
}

/* The payload inside `…"<payload>"]`: strips the closing `"]`; if it is
 * missing the length check of the caller reports it. */
static size_t
sio_string_len (const char *p,
                size_t      len)
{
  if (len >= 2 && p[len - 2] == '"' && p[len - 1] == ']')
    return len - 2;
  return len;
}

/* sio-broadcast: broadcasts every live session has received are complete;
 * the sender then emits the next ones. Single-threaded (one worker). */
static void
bc_progress (Worker  *w,
             guint64  now)
{
  while (w->bc_done < w->bc_sent && w->bc_count[w->bc_done % cfg.inflight] >= w->alive)
    {
      if (in_window (now))
        {
          w->st.broadcasts++;
          hist_record (&w->st.lat, now - w->bc_t[w->bc_done % cfg.inflight]);
        }
      w->bc_done++;
    }
  if (w->stopping || now >= g_window_end || w->sender == NULL || w->sender->state != CONN_OPEN)
    return;
  if (w->bc_sent < w->bc_done + cfg.inflight)
    {
      while (w->bc_sent < w->bc_done + cfg.inflight)
        bc_emit (w, now);
      sock_flush (w->sender, &w->sender->s[0]);
    }
}

static void
bc_emit (Worker  *w,
         guint64  now)
{
  guint64 seq = w->bc_sent++;

  w->bc_count[seq % cfg.inflight] = 0;
  w->bc_t[seq % cfg.inflight] = now;
  ws_queue_message (w->sender, seq, now);
}

static void
on_broadcast_back (Conn       *c,
                   const char *p,
                   size_t      len,
                   guint64     now)
{
  Worker *w = c->w;
  guint64 seq = c->recv_seq;
  VerrKind kind;

  if (seq >= w->bc_sent)
    {
      w->st.verrs[VERR_UNEXPECTED]++;
      report ("session %u: a broadcast with none in flight (%zu bytes)", c->index, len);
      return;
    }
  c->recv_seq++;
  kind = payload_check (p, len, seq);
  if (kind != VERR_NONE)
    verify_failed (c, kind, seq, p, len);
  w->bc_count[seq % cfg.inflight]++;
  /* deliveries to the --conns receivers; the sender's own copy only
   * completes the broadcast */
  if (!c->sender)
    {
      w->st.messages_all++;
      if (in_window (now))
        w->st.messages++;
    }
}

/* One Socket.IO packet (the Engine.IO message's data). */
static void
sio_on_packet (Conn       *c,
               const char *p,
               size_t      len,
               guint64     now)
{
  static const char message_back[] = "2[\"message-back\",\"";
  static const char broadcast_back[] = "2[\"broadcast-back\",\"";
  static const char auth[] = "2[\"auth\",";

  if (len == 0)
    {
      c->w->st.errs[ERR_PROTOCOL]++;
      report ("session %u: empty Socket.IO packet", c->index);
      return;
    }
  switch (p[0])
    {
    case '2':
      if (cfg.mode == MODE_SIO_ECHO && has_prefix (p, len, message_back, sizeof message_back - 1))
        {
          p += sizeof message_back - 1;
          len -= sizeof message_back - 1;
          on_echo (c, p, sio_string_len (p, len), FALSE, now);
        }
      else if (cfg.mode == MODE_SIO_BROADCAST &&
               has_prefix (p, len, broadcast_back, sizeof broadcast_back - 1))
        {
          p += sizeof broadcast_back - 1;
          len -= sizeof broadcast_back - 1;
          on_broadcast_back (c, p, sio_string_len (p, len), now);
        }
      else if (has_prefix (p, len, auth, sizeof auth - 1))
        ;   /* emitted on connection: skipped */
      else
        {
          c->w->st.errs[ERR_PROTOCOL]++;
          report ("session %u: unexpected event 4%.*s", c->index, (int) MIN (len, 60), p);
        }
      break;
    case '3':
      if (cfg.mode == MODE_SIO_ACK)
        {
          guint64 id = 0, seq;
          size_t i = 1;

          while (i < len && i < 21 && p[i] >= '0' && p[i] <= '9')
            id = id * 10 + (guint64) (p[i++] - '0');
          if (i == 1 || !has_prefix (p + i, len - i, "[\"", 2))
            {
              c->w->st.errs[ERR_PROTOCOL]++;
              report ("session %u: bad ack 4%.*s", c->index, (int) MIN (len, 60), p);
              break;
            }
          i += 2;
          seq = on_echo (c, p + i, sio_string_len (p + i, len - i), FALSE, now);
          if (seq != G_MAXUINT64 && seq != id)
            {
              c->w->st.verrs[VERR_CONTENT]++;
              report ("session %u: ack id %" G_GUINT64_FORMAT " for message %" G_GUINT64_FORMAT,
                      c->index, id, seq);
            }
        }
      else
        {
          c->w->st.errs[ERR_PROTOCOL]++;
          report ("session %u: unexpected ack 4%.*s", c->index, (int) MIN (len, 60), p);
        }
      break;
    case '0':
      if (c->state == CONN_OPENING && has_prefix (p, len, "0{", 2) &&
          memmem (p, len, "\"sid\":\"", 7) != NULL)
        conn_opened (c, now);
      else
        conn_fail (c, c->state == CONN_OPENING ? ERR_HANDSHAKE : ERR_PROTOCOL,
                   "unexpected CONNECT 4%.*s", (int) MIN (len, 80), p);
      break;
    case '4':
      conn_fail (c, c->state == CONN_OPENING ? ERR_HANDSHAKE : ERR_CLOSED,
                 "CONNECT_ERROR 4%.*s", (int) MIN (len, 80), p);
      break;
    case '1':
      conn_fail (c, ERR_CLOSED, "Socket.IO DISCONNECT 4%.*s", (int) MIN (len, 80), p);
      break;
    default:
      c->w->st.errs[ERR_PROTOCOL]++;
      report ("session %u: unexpected Socket.IO packet 4%.*s", c->index, (int) MIN (len, 40), p);
      break;
    }
}

static void
ws_on_message (Conn       *c,
               int         opcode,
               const char *p,
               size_t      len,
               guint64     now)
{
  if (cfg.raw)
    {
      on_echo (c, p, len, opcode == 2, now);
      return;
    }
  if (opcode == 2)
    {
      if (cfg.mode == MODE_BROADCAST)
        on_broadcast_back (c, p, len, now);
      else
        on_echo (c, p, len, TRUE, now);
      return;
    }
  if (len == 0)
    {
      c->w->st.errs[ERR_PROTOCOL]++;
      report ("session %u: empty text frame", c->index);
      return;
    }
  switch (p[0])
    {
    case '4':
      if (cfg.sio)
        sio_on_packet (c, p + 1, len - 1, now);
      else if (cfg.mode == MODE_BROADCAST)
        on_broadcast_back (c, p + 1, len - 1, now);
      else
        on_echo (c, p + 1, len - 1, FALSE, now);
      break;
    case '2':
      c->w->st.pings++;
      ws_queue_raw (c, 1, "3", 1);
      break;
    case '6':
      break;
    case '0':
      if (cfg.sio && c->state == CONN_OPENING && c->sid[0] == '\0' && parse_open (c, p, len))
        ws_queue_raw (c, 1, "40", 2);   /* join "/"; open once it answers */
      else if (!cfg.sio && c->state == CONN_OPENING && parse_open (c, p, len))
        conn_opened (c, now);
      else
        conn_fail (c, c->state == CONN_OPENING ? ERR_HANDSHAKE : ERR_PROTOCOL,
                   "unexpected open packet %.*s", (int) MIN (len, 80), p);
      break;
    case '1':
      conn_fail (c, ERR_CLOSED, "server sent a close packet");
      break;
    default:
      c->w->st.errs[ERR_PROTOCOL]++;
      report ("session %u: unexpected packet %.*s", c->index, (int) MIN (len, 40), p);
      break;
    }
}

/* Consumes whole frames; returns the bytes consumed or -1 if the session
 * died. */
static gssize
ws_input (Conn    *c,
          char    *data,
          size_t   len,
          guint64  now)
{
  Sock *s = &c->s[0];
  size_t off = 0;

  if (!c->upgraded)
    {
      gboolean accept_ok;
      gssize head = http_parse_head (s, data, len, &accept_ok);

      if (head == 0)
        return 0;
      if (head < 0 || s->status != 101 || !accept_ok)
        {
          conn_fail (c, ERR_HANDSHAKE, "no WebSocket upgrade: %.*s", (int) MIN (len, 60), data);
          return -1;
        }
      c->upgraded = TRUE;
      off = (size_t) head;
      if (cfg.raw)
        conn_opened (c, now);  /* no open packet: the upgrade is the open */
    }
  while (len - off >= 2)
    {
      guint8 *h = (guint8 *) data + off;
      int opcode = h[0] & 0x0f;
      gboolean fin = (h[0] & 0x80) != 0;
      gboolean masked = (h[1] & 0x80) != 0;
      guint64 plen = h[1] & 0x7f;
      size_t hl = 2;
      char *p;

      if (plen == 126)
        {
          if (len - off < 4)
            break;
          plen = (guint64) h[2] << 8 | h[3];
          hl = 4;
        }
      else if (plen == 127)
        {
          if (len - off < 10)
            break;
          plen = 0;
          for (int i = 0; i < 8; i++)
            plen = plen << 8 | h[2 + i];
          hl = 10;
        }
      if (masked)
        hl += 4;
      if (plen > MAX_FRAME)
        {
          conn_fail (c, ERR_PROTOCOL, "frame of %" G_GUINT64_FORMAT " bytes", plen);
          return -1;
        }
      if (len - off < hl + plen)
        {
          s->need = hl + (size_t) plen;
          break;
        }
      p = data + off + hl;
      if (masked)
        {
          guint32 key;

          memcpy (&key, p - 4, 4);
          ws_mask ((guint8 *) p, (size_t) plen, key);
        }
      off += hl + (size_t) plen;
      s->need = 0;
      switch (opcode)
        {
        case 0:
          if (c->frag_op == 0)
            {
              conn_fail (c, ERR_PROTOCOL, "continuation without a start");
              return -1;
            }
          buf_append (&c->frag, p, (size_t) plen);
          if (fin)
            {
              int op = c->frag_op;

              c->frag_op = 0;
              ws_on_message (c, op, c->frag.data, c->frag.len, now);
              c->frag.len = 0;
            }
          break;
        case 1:
        case 2:
          if (fin)
            ws_on_message (c, opcode, p, (size_t) plen, now);
          else
            {
              c->frag_op = (guint8) opcode;
              c->frag.len = 0;
              buf_append (&c->frag, p, (size_t) plen);
            }
          break;
        case 8:
          conn_fail (c, c->state == CONN_OPEN ? ERR_CLOSED : ERR_HANDSHAKE,
                     "close frame (code %d)",
                     plen >= 2 ? ((guint8) p[0] << 8 | (guint8) p[1]) : 0);
          return -1;
        case 9:
          ws_queue_raw (c, 10, p, (size_t) plen);
          break;
        case 10:
          break;
        default:
          conn_fail (c, ERR_PROTOCOL, "opcode %d", opcode);
          return -1;
        }
      if (c->state == CONN_DEAD)
        return -1;
    }
  return (gssize) off;
}

static void
ws_start (Conn    *c,
          guint64  now)
{
  if (!sock_open (c, &c->s[0]))
    return;
  buf_printf (&c->s[0].wbuf,
              "GET %s%s HTTP/1.1\r\n"
              "Host: %s\r\n"
              "Upgrade: websocket\r\n"
              "Connection: Upgrade\r\n"
              "Sec-WebSocket-Key: " WS_KEY "\r\n"
              "Sec-WebSocket-Version: 13\r\n"
              "\r\n", cfg.path, cfg.raw ? "" : "?EIO=4&transport=websocket", cfg.host_header);
}

/* ------------------------------------------------------------ polling */

static gboolean
polling_request (Conn *c,
                 Sock *s)
{
  if (s->state == SOCK_CLOSED && !sock_open (c, s))
    return FALSE;
  s->in_flight = TRUE;
  s->head_len = 0;
  return TRUE;
}

static gboolean
polling_send_get (Conn *c)
{
  Sock *s = &c->s[0];

  if (!polling_request (c, s))
    return FALSE;
  if (c->sid[0] == '\0')
    buf_printf (&s->wbuf, "GET %s?EIO=4&transport=polling HTTP/1.1\r\nHost: %s\r\n\r\n",
                cfg.path, cfg.host_header);
  else
    buf_printf (&s->wbuf, "GET %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                cfg.path, c->sid, cfg.host_header);
  return TRUE;
}

/* Writes the POST described by post_first_seq, post_count, post_pongs. */
static gboolean
polling_send_post (Conn *c)
{
  Sock *s = &c->s[1];
  size_t msg_len = cfg.binary ? 1 + b64_len (cfg.size) : 1 + cfg.size;
  size_t n_packets = c->post_pongs + c->post_count;
  size_t body = c->post_pongs + c->post_count * msg_len + (n_packets - 1);
  char *p;

  if (!polling_request (c, s))
    return FALSE;
  buf_printf (&s->wbuf,
              "POST %s?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n"
              "Host: %s\r\n"
              "Content-Type: text/plain;charset=UTF-8\r\n"
              "Content-Length: %zu\r\n\r\n", cfg.path, c->sid, cfg.host_header, body);
  buf_reserve (&s->wbuf, body + 1);
  p = s->wbuf.data + s->wbuf.len;
  for (guint32 i = 0; i < c->post_pongs; i++)
    {
      *p++ = '3';
      *p++ = '\x1e';
    }
  for (guint32 i = 0; i < c->post_count; i++)
    {
      guint64 seq = c->post_first_seq + i;

      if (cfg.binary)
        {
          Buf *tmp = &c->w->tmp;

          tmp->len = 0;
          buf_reserve (tmp, cfg.size);
          payload_write (tmp->data, seq, cfg.size);
          *p++ = 'b';
          b64_encode (p, (const guint8 *) tmp->data, cfg.size);
          p += b64_len (cfg.size);
        }
      else
        {
          *p++ = '4';
          payload_write (p, seq, cfg.size);
          p += cfg.size;
        }
      *p++ = '\x1e';
    }
  s->wbuf.len += body;   /* drops the last separator */
  return TRUE;
}

static void
polling_maybe_post (Conn    *c,
                    guint64  now)
{
  if (c->post_inflight || c->state != CONN_OPEN)
    return;
  if (c->pending_pongs == 0 && c->next_seq == c->sent_seq)
    return;
  c->post_pongs = c->pending_pongs;
  c->pending_pongs = 0;
  c->post_first_seq = c->sent_seq;
  c->post_count = (guint32) (c->next_seq - c->sent_seq);
  for (guint64 seq = c->sent_seq; seq < c->next_seq; seq++)
    c->t_send[seq % cfg.inflight] = now;
  c->sent_seq = c->next_seq;
  c->post_inflight = TRUE;
  c->s[1].retried = FALSE;
  polling_send_post (c);
}

static void
polling_packets (Conn       *c,
                 const char *body,
                 size_t      len,
                 guint64     now)
{
  const char *p = body, *end = body + len;

  while (p <= end && c->state != CONN_DEAD)
    {
      const char *sep = memchr (p, '\x1e', (size_t) (end - p));
      size_t n = (size_t) ((sep ? sep : end) - p);

      if (n == 0)
        {
          c->w->st.errs[ERR_PROTOCOL]++;
          report ("session %u: empty packet in a payload", c->index);
        }
      else
        switch (p[0])
          {
          case '4':
            on_echo (c, p + 1, n - 1, FALSE, now);
            break;
          case 'b':
            {
              Buf *tmp = &c->w->tmp;
              gssize d;

              tmp->len = 0;
              buf_reserve (tmp, n);
              d = b64_decode ((guint8 *) tmp->data, p + 1, n - 1);
              if (d < 0)
                {
                  c->w->st.verrs[VERR_CONTENT]++;
                  report ("session %u: bad base64", c->index);
                  c->recv_seq++;
                }
              else
                on_echo (c, tmp->data, (size_t) d, TRUE, now);
            }
            break;
          case '2':
            c->w->st.pings++;
            c->pending_pongs++;
            break;
          case '6':
            break;
          case '1':
            conn_fail (c, ERR_CLOSED, "server sent a close packet");
            break;
          default:
            c->w->st.errs[ERR_PROTOCOL]++;
            report ("session %u: unexpected packet %.*s", c->index, (int) MIN (n, 40), p);
            break;
          }
      if (sep == NULL)
        break;
      p = sep + 1;
    }
}

/* One response on @s is complete: act on it. */
static void
polling_response (Conn       *c,
                  Sock       *s,
                  const char *body,
                  size_t      len,
                  guint64     now)
{
  s->in_flight = FALSE;
  s->reused = TRUE;
  if (s->role == 1)
    {
      if (s->status != 200 || len != 2 || memcmp (body, "ok", 2) != 0)
        {
          conn_fail (c, ERR_PROTOCOL, "POST answered %d %.*s", s->status, (int) MIN (len, 60), body);
          return;
        }
      c->post_inflight = FALSE;
    }
  else if (c->state == CONN_OPENING)
    {
      const char *sep = memchr (body, '\x1e', len);
      size_t n = sep ? (size_t) (sep - body) : len;

      if (s->status != 200 || !parse_open (c, body, n))
        {
          conn_fail (c, ERR_HANDSHAKE, "handshake answered %d %.*s", s->status,
                     (int) MIN (len, 60), body);
          return;
        }
      conn_opened (c, now);
      if (sep != NULL)
        polling_packets (c, sep + 1, len - n - 1, now);
    }
  else
    {
      if (s->status != 200)
        {
          conn_fail (c, c->w->stopping ? ERR_PROTOCOL : ERR_CLOSED, "GET answered %d %.*s",
                     s->status, (int) MIN (len, 60), body);
          return;
        }
      polling_packets (c, body, len, now);
    }
  /* sock_readable () sends the next requests once the read buffer is
   * no longer in use */
  if (c->state != CONN_DEAD && s->role == 0 && !c->w->stopping)
    c->want_get = TRUE;
}

static gssize
polling_input (Conn    *c,
               Sock    *s,
               char    *data,
               size_t   len,
               guint64  now)
{
  size_t total;
  const char *body;
  size_t body_len;

  if (!s->in_flight)
    {
      conn_fail (c, ERR_PROTOCOL, "data with no request in flight");
      return -1;
    }
  if (s->head_len == 0)
    {
      gssize head = http_parse_head (s, data, len, NULL);

      if (head == 0)
        return 0;
      if (head < 0 || s->body_len == -2)
        {
          conn_fail (c, ERR_PROTOCOL, "bad HTTP response: %.*s", (int) MIN (len, 60), data);
          return -1;
        }
      s->head_len = (guint32) head;
    }
  if (s->body_len >= 0)
    {
      total = s->head_len + (size_t) s->body_len;
      if (len < total)
        {
          s->need = total;
          return 0;
        }
      body = data + s->head_len;
      body_len = (size_t) s->body_len;
    }
  else
    {
      gssize n = http_dechunk (data + s->head_len, len - s->head_len, &c->w->tmp);

      if (n < 0)
        {
          conn_fail (c, ERR_PROTOCOL, "bad chunked body");
          return -1;
        }
      if (n == 0)
        return 0;
      total = s->head_len + (size_t) n;
      /* copy: polling_packets reuses tmp for base64 */
      body_len = c->w->tmp.len;
      body = malloc (body_len + 1);
      if (body == NULL)
        die ("out of memory");
      memcpy ((char *) body, c->w->tmp.data, body_len);
    }
  s->need = 0;
  s->head_len = 0;
  polling_response (c, s, body, body_len, now);
  if (s->body_len < 0)
    free ((char *) body);
  if (c->state == CONN_DEAD)
    return -1;
  if (len > total)
    {
      conn_fail (c, ERR_PROTOCOL, "data after a response");
      return -1;
    }
  return (gssize) total;
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

static void
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
