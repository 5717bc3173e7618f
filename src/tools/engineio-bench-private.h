/* engineio-bench-private.h: what the files of engineio-bench share (its
 * configuration, sessions and workers, and the helpers each file uses).
 * engineio-bench.c: the sessions' sockets, the event loop, options,
 * results and main(); engineio-bench-protocol.c: HTTP, WebSocket,
 * Socket.IO and polling as the sessions speak them;
 * engineio-bench-support.c: errors, buffers, the latency histogram, the
 * checked payloads and base64.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

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

extern Config cfg;
extern const char *const err_names[N_ERR];
extern const char *const verr_names[N_VERR];

/* Shared between threads. The window times are written before
 * g_traffic_start is published (release) and read after it (acquire). */
extern guint64 g_window_start;
extern guint64 g_window_end;
extern guint64 g_traffic_start;     /* (atomic) 0 until the open phase ends */
extern guint g_ready;             /* (atomic) workers done opening */
extern guint g_printed;           /* (atomic) error lines printed */
extern char   *g_filler;            /* size + 64 bytes of pattern */

/* engineio-bench-support.c */

void die (const char *format, ...) G_GNUC_PRINTF (1, 2) G_GNUC_NORETURN;
void report (const char *format, ...) G_GNUC_PRINTF (1, 2);

static inline guint64
now_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (guint64) ts.tv_sec * 1000000u + (guint64) ts.tv_nsec / 1000u;
}

double thread_cpu_s (int who);

typedef struct
{
  char   *data;
  size_t  len;
  size_t  cap;
} Buf;

void buf_reserve (Buf *b, size_t extra);
void buf_append (Buf *b, const void *data, size_t len);
void buf_printf (Buf *b, const char *format, ...) G_GNUC_PRINTF (2, 3);
void buf_free (Buf *b);

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

void hist_merge (Hist *into, const Hist *from);
guint64 hist_quantile (const Hist *h, double p);

extern const char hex_digits[17];

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

gboolean payload_seq (const char *p, size_t len, guint64 *seq);
VerrKind payload_check (const char *p, size_t len, guint64 seq);
void filler_init (void);

size_t b64_len (size_t n);
void b64_encode (char *out, const guint8 *in, size_t n);
void b64_init (void);
gssize b64_decode (guint8 *out, const char *in, size_t n);

/* ------------------------------------------------------ sessions */

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

extern Worker *workers;

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

/* engineio-bench.c */

void conn_fail (Conn *c, ErrKind kind, const char *format, ...) G_GNUC_PRINTF (3, 4);
gboolean sock_open (Conn *c, Sock *s);
gboolean sock_flush (Conn *c, Sock *s);
void sock_readable (Worker *w, Conn *c, Sock *s);

/* engineio-bench-protocol.c */

void ws_queue_message (Conn *c, guint64 seq, guint64 now);
void bc_progress (Worker *w, guint64 now);
gssize ws_input (Conn *c, char *data, size_t len, guint64 now);
void ws_start (Conn *c, guint64 now);
gboolean polling_send_get (Conn *c);
gboolean polling_send_post (Conn *c);
void polling_maybe_post (Conn *c, guint64 now);
gssize polling_input (Conn *c, Sock *s, char *data, size_t len, guint64 now);
