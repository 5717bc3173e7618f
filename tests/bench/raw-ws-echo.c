/* raw-ws-echo.c: the practical limit of this machine for a WebSocket echo
 *
 * A bare RFC 6455 echo server with hand-rolled framing and nothing else:
 * no Engine.IO, no UTF-8 validation, no limits, no timers, one thread,
 * one level-triggered epoll loop (or, with --thread-per-connection, a
 * thread per connection, each with its own epoll loop: the limit of that
 * threading shape, our thread-per-session mode's yardstick). tests/bench/compare.py measures it as
 * the "raw C echo" column (issue 13): what our server's WebSocket path is
 * compared with, beside Node's. Not a server to run on a network: it
 * trusts its clients (a test tool, built but not installed).
 *
 *   raw-ws-echo [--port N] [--thread-per-connection]
 *                             (port 0, the default, picks a free port)
 *
 * Prints `listening on http://127.0.0.1:PORT/` once ready. Every text or
 * binary frame is sent back as it came (same opcode and FIN bit), its
 * payload unmasked in place a machine word at a time and written with its
 * new header in one writev() without a copy; only what the kernel does
 * not take is copied into the connection's output buffer (while it is not
 * empty, input is not read). Pings get pongs; a close frame is echoed and
 * the connection closed.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE  /* accept4() */
#include <glib.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define MAX_HEAD   8192

typedef struct
{
  int      fd;
  gboolean upgraded;
  gboolean closing;
  gboolean want_out;
  GByteArray *in;    /* bytes read, not yet consumed */
  GByteArray *out;   /* bytes the kernel did not take yet */
} Conn;

/* The loop's epoll descriptor: the process's one, or with
 * --thread-per-connection the connection thread's own. */
static __thread int epfd;

static void
conn_free (Conn *c)
{
  epoll_ctl (epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close (c->fd);
  g_byte_array_unref (c->in);
  g_byte_array_unref (c->out);
  g_free (c);
}

static void
set_events (Conn *c)
{
  struct epoll_event ev = { .data.ptr = c };
  gboolean want_out = c->out->len > 0;

  if (want_out == c->want_out)
    return;
  c->want_out = want_out;
  /* Input waits while output does: the client's own back-pressure. */
  ev.events = want_out ? EPOLLOUT : EPOLLIN;
  epoll_ctl (epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes @iov (after what is buffered); keeps what the kernel refuses.
 * FALSE if the connection failed. */
static gboolean
send_iov (Conn         *c,
          struct iovec *iov,
          int           n)
{
  gsize total = 0;
  gssize w = 0;

  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (c->out->len == 0)
    {
      w = writev (c->fd, iov, n);
      if (w < 0)
        {
          if (errno != EAGAIN && errno != EINTR)
            return FALSE;
          w = 0;
        }
    }
  if ((gsize) w < total)
    {
      gsize skip = (gsize) w;

      for (int i = 0; i < n; i++)
        {
          if (skip >= iov[i].iov_len)
            {
              skip -= iov[i].iov_len;
              continue;
            }
          g_byte_array_append (c->out, (const guint8 *) iov[i].iov_base + skip, iov[i].iov_len - skip);
          skip = 0;
        }
    }
  return TRUE;
}

static gboolean
flush_out (Conn *c)
{
  while (c->out->len > 0)
    {
      gssize w = write (c->fd, c->out->data, c->out->len);

      if (w < 0)
        return errno == EAGAIN || errno == EINTR;
      g_byte_array_remove_range (c->out, 0, (guint) w);
    }
  return TRUE;
}

/* XOR with the 4-byte key, 8 bytes at a time. */
static void
unmask (guint8       *p,
        gsize         n,
        const guint8  key[4])
{
  guint32 k32;
  guint64 k64;
  gsize i = 0;

  memcpy (&k32, key, 4);
  k64 = (guint64) k32 << 32 | k32;
  for (; i + 8 <= n; i += 8)
    {
      guint64 v;

      memcpy (&v, p + i, 8);
      v ^= k64;
      memcpy (p + i, &v, 8);
    }
  for (; i < n; i++)
    p[i] ^= key[i & 3];
}

static gboolean
handshake (Conn *c)
{
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const char *head = (const char *) c->in->data;
  const char *end = g_strstr_len (head, c->in->len, "\r\n\r\n");
  const char *key, *key_end;
  g_autofree char *line_key = NULL;
  g_autofree char *accept = NULL;
  g_autofree char *response = NULL;
  guint8 digest[20];
  gsize digest_len = sizeof digest;
  GChecksum *sha1;
  struct iovec iov;
  gsize head_len;

  if (end == NULL)
    return c->in->len < MAX_HEAD;
  head_len = (gsize) (end - head) + 4;
  key = g_strstr_len (head, (gssize) head_len, "Sec-WebSocket-Key:");
  if (key == NULL)
    key = g_strstr_len (head, (gssize) head_len, "sec-websocket-key:");
  if (key == NULL)
    return FALSE;
  key += strlen ("Sec-WebSocket-Key:");
  while (*key == ' ')
    key++;
  key_end = strstr (key, "\r\n");
  line_key = g_strndup (key, (gsize) (key_end - key));

  sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  g_checksum_update (sha1, (const guchar *) line_key, (gssize) strlen (line_key));
  g_checksum_update (sha1, (const guchar *) guid, (gssize) strlen (guid));
  g_checksum_get_digest (sha1, digest, &digest_len);
  g_checksum_free (sha1);
  accept = g_base64_encode (digest, digest_len);
  response = g_strdup_printf ("HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
  g_byte_array_remove_range (c->in, 0, (guint) head_len);
  c->upgraded = TRUE;
  iov.iov_base = response;
  iov.iov_len = strlen (response);
  return send_iov (c, &iov, 1);
}

/* Echoes every whole frame in c->in; FALSE when the connection ends. */
static gboolean
frames (Conn *c)
{
  gsize off = 0;
  gboolean ok = TRUE;

  while (ok && !c->closing && c->in->len - off >= 2)
    {
      guint8 *h = c->in->data + off;
      guint8 opcode = h[0] & 0x0f;
      guint64 len = h[1] & 0x7f;
      gsize hl = 2;
      guint8 out_head[10];
      gsize ohl;
      struct iovec iov[2];

      if (len == 126)
        {
          if (c->in->len - off < 4)
            break;
          len = (guint64) h[2] << 8 | h[3];
          hl = 4;
        }
      else if (len == 127)
        {
          if (c->in->len - off < 10)
            break;
          len = 0;
          for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
          hl = 10;
        }
      if (!(h[1] & 0x80) || len > G_MAXUINT32)
        return FALSE;  /* clients mask; no 4 GiB frames here */
      if (c->in->len - off < hl + 4 + len)
        break;
      unmask (h + hl + 4, (gsize) len, h + hl);

      out_head[0] = (guint8) ((h[0] & 0x80) | (opcode == 9 ? 10 : opcode));
      if (len < 126)
        {
          out_head[1] = (guint8) len;
          ohl = 2;
        }
      else if (len < 65536)
        {
          out_head[1] = 126;
          out_head[2] = (guint8) (len >> 8);
          out_head[3] = (guint8) len;
          ohl = 4;
        }
      else
        {
          out_head[1] = 127;
          for (int i = 0; i < 8; i++)
            out_head[2 + i] = (guint8) (len >> (56 - 8 * i));
          ohl = 10;
        }
      iov[0].iov_base = out_head;
      iov[0].iov_len = ohl;
      iov[1].iov_base = h + hl + 4;
      iov[1].iov_len = (gsize) len;
      if (opcode != 10)  /* pongs are not answered */
        ok = send_iov (c, iov, 2);
      if (opcode == 8)
        c->closing = TRUE;
      off += hl + 4 + (gsize) len;
    }
  if (off > 0)
    g_byte_array_remove_range (c->in, 0, (guint) off);
  return ok;
}

static gboolean
readable (Conn *c)
{
  for (;;)
    {
      guint old = c->in->len;
      gssize n;

      g_byte_array_set_size (c->in, old + READ_CHUNK);
      n = read (c->fd, c->in->data + old, READ_CHUNK);
      g_byte_array_set_size (c->in, old + (guint) MAX (n, 0));
      if (n == 0)
        return FALSE;
      if (n < 0)
        return errno == EAGAIN || errno == EINTR;
      if (!c->upgraded && !handshake (c))
        return FALSE;
      if (c->upgraded && !frames (c))
        return FALSE;
      if (c->out->len > 0)
        return TRUE;  /* the client does not keep up: read again once it does */
      if (c->closing)
        return FALSE;
      if ((gsize) n < READ_CHUNK)
        return TRUE;
    }
}

/* One epoll event of @c; frees @c when its connection ends (FALSE). */
static gboolean
handle (Conn    *c,
        guint32  events)
{
  if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
    {
      conn_free (c);
      return FALSE;
    }
  if (c->want_out)
    {
      /* Output drained: what was read meanwhile is echoed. */
      if (!flush_out (c) ||
          (c->out->len == 0 && (c->closing || (c->upgraded && !frames (c)))) ||
          (c->closing && c->out->len == 0))
        {
          conn_free (c);
          return FALSE;
        }
    }
  else if (!readable (c))
    {
      if (c->closing && c->out->len > 0)
        set_events (c);  /* the close echo goes out first */
      else
        {
          conn_free (c);
          return FALSE;
        }
      return TRUE;
    }
  set_events (c);
  return TRUE;
}

static Conn *
conn_new (int fd)
{
  Conn *c = g_new0 (Conn, 1);
  struct epoll_event ev = { .events = EPOLLIN };
  int one = 1;

  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->fd = fd;
  c->in = g_byte_array_new ();
  c->out = g_byte_array_new ();
  ev.data.ptr = c;
  epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev);
  return c;
}

/* --thread-per-connection: the connection's thread, with its own loop. */
static gpointer
conn_thread (gpointer data)
{
  int fd = GPOINTER_TO_INT (data);
  Conn *c;

  epfd = epoll_create1 (EPOLL_CLOEXEC);
  c = conn_new (fd);
  for (;;)
    {
      struct epoll_event ev;
      int n = epoll_wait (epfd, &ev, 1, -1);

      if (n == 1 && !handle (c, ev.events))
        break;
    }
  close (epfd);
  return NULL;
}

int
main (int   argc,
      char *argv[])
{
  int port = 0;
  gboolean thread_per_connection = FALSE;
  GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &port, "Port on 127.0.0.1 (default 0: any free one)", "N" },
    { "thread-per-connection", 0, 0, G_OPTION_ARG_NONE, &thread_per_connection,
      "A thread per connection, each with its own epoll loop (default: one loop for all)", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("- a bare WebSocket echo (benchmark yardstick)");
  g_autoptr(GError) error = NULL;
  struct sockaddr_in addr = { .sin_family = AF_INET };
  socklen_t addr_len = sizeof addr;
  struct epoll_event ev;
  int lfd, one = 1;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "raw-ws-echo: %s\n", error->message);
      return 2;
    }
  if (port < 0 || port > 65535)
    {
      fprintf (stderr, "raw-ws-echo: --port must be 0 to 65535\n");
      return 2;
    }
  lfd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  setsockopt (lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  addr.sin_port = htons ((guint16) port);
  if (lfd < 0 || bind (lfd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (lfd, 4096) < 0 ||
      getsockname (lfd, (struct sockaddr *) &addr, &addr_len) < 0)
    {
      fprintf (stderr, "raw-ws-echo: cannot listen: %s\n", g_strerror (errno));
      return 1;
    }
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  ev.events = EPOLLIN;
  ev.data.ptr = NULL;
  epoll_ctl (epfd, EPOLL_CTL_ADD, lfd, &ev);
  printf ("listening on http://127.0.0.1:%u/\n", ntohs (addr.sin_port));
  fflush (stdout);

  for (;;)
    {
      struct epoll_event events[256];
      int n = epoll_wait (epfd, events, G_N_ELEMENTS (events), -1);

      for (int i = 0; i < n; i++)
        {
          Conn *c = events[i].data.ptr;

          if (c == NULL)
            {
              int fd;

              while ((fd = accept4 (lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
                {
                  GThread *thread;

                  if (!thread_per_connection)
                    {
                      conn_new (fd);
                      continue;
                    }
                  thread = g_thread_try_new ("raw-conn", conn_thread, GINT_TO_POINTER (fd), NULL);
                  if (thread == NULL)
                    close (fd);
                  else
                    g_thread_unref (thread);
                }
              continue;
            }
          handle (c, events[i].events);
        }
    }
  return 0;
}
