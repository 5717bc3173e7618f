/* engineio-bench-protocol.c: HTTP, WebSocket, Socket.IO and long-polling
 * as the sessions of engineio-bench speak them.
 *
 * SPDX-License-Identifier: MIT
 */
#include "engineio-bench-private.h"

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

static void bc_emit (Worker *w, guint64 now);

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

void
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
void
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
gssize
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

void
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

gboolean
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
gboolean
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

void
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

gssize
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

