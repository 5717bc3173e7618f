/* test-memory-bounds.c: what one client can make a session hold is
 * bounded in real memory (issue #12, items 4 and 5).
 *
 * Each test floods one session with what costs the server memory per
 * byte the client sends (empty messages, 2-byte messages, v3 pings, tiny
 * binary packets in a large body, messages nobody takes off the receive
 * queue), from a client that never reads, and checks:
 *
 * - that the growth of this process's resident memory during the flood
 *   (the server runs in this process) stays under MEMORY_BOUND, derived
 *   from the marks below;
 * - that the session was paused (the server stopped reading: the client's
 *   sends stall, or its POST is held unanswered, while the session stays
 *   open) or closed with `transport error` (a send over
 *   send-queue-high-water with the default back-pressure policy).
 *
 * The marks are lowered to 1 MiB so the floods stay short. The growth is
 * the peak (VmHWM, reset before the flood through /proc/self/clear_refs;
 * else VmRSS sampled every few milliseconds). Under AddressSanitizer or
 * ThreadSanitizer the allocator keeps freed memory (quarantine, shadow),
 * so there only the session's fate is checked.
 *
 * Each case runs in a subprocess of its own (a fresh allocator).
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* send-queue-high-water and receive-queue-high-water of every server
 * here. */
#define MARK (1024 * 1024)
/* max-payload (the default): a POST body the server holds while reading
 * it. */
#define MAX_PAYLOAD 1000000
/* What a session may make the server hold, as the README states it: the
 * send queue up to its mark (plus one packet), packets read and not yet
 * handled up to the mark, what those turn into when handled (at most
 * their own size again), the receive queue up to its mark; one POST body;
 * plus slack for what is not the session's (allocator arenas of new
 * threads, libmicrohttpd's buffers, the kernel-side socket buffers are not
 * counted). The unfixed server went 100 MB and more past it on each of
 * these floods. */
#define MEMORY_SLACK (16 * 1024 * 1024)
#define MEMORY_BOUND (4 * MARK + MAX_PAYLOAD + MEMORY_SLACK)

/* A client whose sends made no progress for this long is paused. */
#define STALL_MS (test_scaled_ms (1500))

/* Diagnostics, as TAP comments on stderr: a case runs in a subprocess
 * (see in_subprocess()), whose test messages are not shown. */
static void note (const char *format, ...) G_GNUC_PRINTF (1, 2);

static void
note (const char *format,
      ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("# %s\n", text);
}

/* ------------------------------------------------------------------ */
/* Memory                                                               */
/* ------------------------------------------------------------------ */

static guint64
status_kb (const char *field)
{
  g_autofree char *status = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/self/status", &status, NULL, NULL))
    return 0;
  line = strstr (status, field);
  if (line == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen (field) + 1, NULL, 10);
}

typedef struct
{
  guint64  base_kb;
  gboolean hwm_reset;    /* VmHWM was reset: it is the peak since */
  GThread *sampler;      /* else: VmRSS every few ms */
  int      stop;         /* (atomic) */
  guint64  max_kb;       /* (atomic, sampler) */
} MemWatch;

static gpointer
sampler_thread (gpointer data)
{
  MemWatch *w = data;

  while (!g_atomic_int_get (&w->stop))
    {
      guint64 kb = status_kb ("VmRSS:");
      if (kb > w->max_kb)
        w->max_kb = kb;
      g_usleep (3000);
    }
  return NULL;
}

static void
mem_watch_start (MemWatch *w)
{
  FILE *f;

  memset (w, 0, sizeof *w);
  malloc_trim (0);
  f = fopen ("/proc/self/clear_refs", "w");
  if (f != NULL)
    {
      w->hwm_reset = fputs ("5", f) >= 0;
      w->hwm_reset = (fclose (f) == 0) && w->hwm_reset;
    }
  w->base_kb = status_kb ("VmRSS:");
  if (!w->hwm_reset)
    w->sampler = g_thread_new ("mem-sampler", sampler_thread, w);
}

/* The peak growth since mem_watch_start(), in KiB. */
static guint64
mem_watch_stop (MemWatch *w)
{
  guint64 peak;

  if (w->sampler != NULL)
    {
      g_atomic_int_set (&w->stop, 1);
      g_thread_join (g_steal_pointer (&w->sampler));
      peak = w->max_kb;
    }
  else
    peak = status_kb ("VmHWM:");
  return peak > w->base_kb ? peak - w->base_kb : 0;
}

static void
assert_growth_bounded (MemWatch   *w,
                       const char *what)
{
  guint64 growth_kb = mem_watch_stop (w);

  note ("%s: resident memory grew by %" G_GUINT64_FORMAT " KiB (bound %d KiB, %s)",
        what, growth_kb, MEMORY_BOUND / 1024, w->hwm_reset ? "VmHWM" : "sampled VmRSS");
  if (UNDER_SANITIZER)
    {
      note ("under a sanitizer: the memory bound is not checked");
      return;
    }
  if (growth_kb > MEMORY_BOUND / 1024)
    {
      note ("FAIL: %s: resident memory grew by %" G_GUINT64_FORMAT " KiB, over the bound of %d KiB",
            what, growth_kb, MEMORY_BOUND / 1024);
      g_test_fail ();
    }
}

/* ------------------------------------------------------------------ */
/* Servers                                                              */
/* ------------------------------------------------------------------ */

static void
set_marks (EngineIOServer *server)
{
  g_object_set (server,
                "allow-eio3", TRUE,
                "send-queue-high-water", (guint64) MARK,
                "receive-queue-high-water", (guint64) MARK,
                "max-payload", (guint64) MAX_PAYLOAD,
                NULL);
}

/* The echo server of the reliability suite, with the marks. */
static RelServer *
echo_server (void)
{
  RelServer *rs = rel_server_new ();

  set_marks (rs->lb.server);
  if (!rel_server_listen (rs))
    {
      rel_server_free (rs);
      return NULL;
    }
  return rs;
}

/* Either paused (the client stalled while the session is open) or closed
 * with `transport error` (the send queue went over its mark). */
static void
assert_paused_or_closed (RelServer  *rs,
                         const char *sid,
                         gboolean    stalled)
{
  gint reason = rel_server_reason (rs, sid);

  if (stalled && reason == -1)
    {
      note ("session %s paused: the server stopped reading it", sid);
      return;
    }
  reason = rel_server_wait_reason (rs, sid, REL_WAIT_MS);
  note ("session %s closed with reason %d", sid, reason);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
}

/* ------------------------------------------------------------------ */
/* A WebSocket client that never reads                                  */
/* ------------------------------------------------------------------ */

/* On a raw descriptor, not TestWs: the flood must not block the test when
 * the server stops reading (that is the point), and the connection is
 * reset at the end rather than closed politely. A small receive buffer
 * keeps what the kernel absorbs of the server's answers small (a small
 * send buffer would make loopback TCP wait for delayed ACKs). */
typedef struct
{
  int   fd;
  char *sid;
} RawWs;

static void
raw_ws_free (RawWs *ws)
{
  if (ws->fd >= 0)
    rel_tcp_reset (ws->fd);
  g_free (ws->sid);
  g_free (ws);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RawWs, raw_ws_free)

static gboolean
read_exact (int     fd,
            void   *buffer,
            gsize   length)
{
  guint8 *p = buffer;

  while (length > 0)
    {
      ssize_t n = recv (fd, p, length, 0);
      if (n <= 0)
        return FALSE;
      p += n;
      length -= (gsize) n;
    }
  return TRUE;
}

/* A direct WebSocket session of protocol @eio; reads the open packet for
 * the sid, then never reads again. */
static RawWs *
raw_ws_open (guint port,
             int   eio)
{
  g_autoptr(RawWs) ws = g_new0 (RawWs, 1);
  g_autofree char *request = NULL;
  g_autoptr(GString) head = g_string_new (NULL);
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *text = NULL;
  struct sockaddr_in addr = { 0, };
  struct timeval tv = { 5, 0 };
  int small = 16 * 1024;
  guint8 hdr[4];
  gsize length;

  ws->fd = socket (AF_INET, SOCK_STREAM, 0);
  if (ws->fd < 0)
    return NULL;
  setsockopt (ws->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  setsockopt (ws->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  addr.sin_family = AF_INET;
  addr.sin_port = htons ((guint16) port);
  addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (ws->fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    return NULL;

  request = g_strdup_printf ("GET /engine.io/?EIO=%d&transport=websocket HTTP/1.1\r\n"
                             "Host: 127.0.0.1:%u\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n", eio, port);
  if (!rel_tcp_send (ws->fd, request, strlen (request)))
    return NULL;

  /* The 101 response, a byte at a time: the open packet follows it. */
  while (!g_str_has_suffix (head->str, "\r\n\r\n"))
    {
      char c;
      if (head->len > 4096 || !read_exact (ws->fd, &c, 1))
        return NULL;
      g_string_append_c (head, c);
    }
  if (!g_str_has_prefix (head->str, "HTTP/1.1 101"))
    return NULL;

  /* The open packet: an unmasked text frame. */
  if (!read_exact (ws->fd, hdr, 2) || (hdr[0] & 0x0f) != 0x1)
    return NULL;
  length = hdr[1] & 0x7f;
  if (length == 126)
    {
      if (!read_exact (ws->fd, hdr + 2, 2))
        return NULL;
      length = ((gsize) hdr[2] << 8) | hdr[3];
    }
  else if (length == 127)
    return NULL;
  text = g_malloc0 (length + 1);
  if (!read_exact (ws->fd, text, length) || text[0] != '0')
    return NULL;
  open = test_open_packet_parse (text + 1, NULL);
  if (open == NULL)
    return NULL;
  ws->sid = g_strdup (open->sid);

  fcntl (ws->fd, F_SETFL, fcntl (ws->fd, F_GETFL) | O_NONBLOCK);
  return g_steal_pointer (&ws);
}

/* Appends a masked text frame (the mask is zero: any key is valid). */
static void
append_text_frame (GByteArray *out,
                   const char *text,
                   gsize       length)
{
  static const guint8 mask[4] = { 0, 0, 0, 0 };
  guint8 hdr[4];

  hdr[0] = 0x81;
  if (length < 126)
    {
      hdr[1] = 0x80 | (guint8) length;
      g_byte_array_append (out, hdr, 2);
    }
  else
    {
      g_assert (length <= G_MAXUINT16);
      hdr[1] = 0x80 | 126;
      hdr[2] = (guint8) (length >> 8);
      hdr[3] = (guint8) length;
      g_byte_array_append (out, hdr, 4);
    }
  g_byte_array_append (out, mask, 4);
  g_byte_array_append (out, (const guint8 *) text, (guint) length);
}

typedef enum
{
  FLOOD_DONE,     /* everything was sent */
  FLOOD_STALLED,  /* no progress for STALL_MS: the server stopped reading */
  FLOOD_CLOSED,   /* the server closed or reset the connection */
} FloodOutcome;

/* Sends @chunk @n_chunks times (without ever reading), from byte
 * *@progress of that stream on; *@progress is where it stopped. Stalled
 * when no byte went out for @stall_ms. */
static FloodOutcome
raw_ws_flood (RawWs        *ws,
              const guint8 *chunk,
              gsize         chunk_length,
              guint         n_chunks,
              guint64      *progress,
              guint         stall_ms)
{
  gint64 last_progress = g_get_monotonic_time ();
  guint64 total = (guint64) chunk_length * n_chunks;

  while (*progress < total)
    {
      gsize offset = (gsize) (*progress % chunk_length);
      ssize_t n = send (ws->fd, chunk + offset, chunk_length - offset, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (n > 0)
        {
          *progress += (guint64) n;
          last_progress = g_get_monotonic_time ();
          continue;
        }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        {
          struct pollfd pfd = { ws->fd, POLLOUT, 0 };

          if (g_get_monotonic_time () - last_progress > stall_ms * G_TIME_SPAN_MILLISECOND)
            return FLOOD_STALLED;
          poll (&pfd, 1, 50);
          continue;
        }
      return FLOOD_CLOSED;
    }
  return FLOOD_DONE;
}

static const char *
outcome_name (FloodOutcome outcome)
{
  switch (outcome)
    {
    case FLOOD_DONE: return "everything sent";
    case FLOOD_STALLED: return "stalled";
    case FLOOD_CLOSED: return "connection closed";
    default: return "?";
    }
}

/* A flood of @n_frames copies of @packet over a direct WebSocket of
 * protocol @eio, against the echo server. */
static void
websocket_flood (int         eio,
                 const char *packet,
                 guint       n_frames,
                 const char *what)
{
  g_autoptr(GByteArray) chunk = g_byte_array_new ();
  g_autoptr(RawWs) ws = NULL;
  RelServer *rs = echo_server ();
  MemWatch watch;
  FloodOutcome outcome;
  guint64 progress = 0;
  guint per_chunk;

  test_require (rs != NULL);
  ws = raw_ws_open (rs->lb.port, eio);
  test_require (ws != NULL);

  /* 64 KiB chunks of frames. */
  while (chunk->len < 64 * 1024)
    append_text_frame (chunk, packet, strlen (packet));
  per_chunk = chunk->len / (6 + (guint) strlen (packet));

  mem_watch_start (&watch);
  outcome = raw_ws_flood (ws, chunk->data, chunk->len, n_frames / per_chunk, &progress, STALL_MS);
  note ("%s: %s", what, outcome_name (outcome));
  assert_growth_bounded (&watch, what);
  assert_paused_or_closed (rs, ws->sid, outcome == FLOOD_STALLED);

  g_clear_pointer (&ws, raw_ws_free);
  rel_server_free (rs);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

static void
test_polling_empty_messages (void)
{
  g_autoptr(GString) body = g_string_sized_new (MAX_PAYLOAD);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  RelServer *rs = NULL;
  MemWatch watch;
  gboolean held = FALSE;
  guint n_posts = 0;

  g_test_summary ("A polling client that never polls POSTs empty messages (1 MB bodies of "
                  "500,000 `4`) to the echo server: the server's memory stays within the "
                  "bound derived from send-queue-high-water (each queued echo counts its real "
                  "size, not 1 byte), and the session holds the next POST (back-pressure) or "
                  "closes with `transport error`");

  rs = echo_server ();
  test_require (rs != NULL);
  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);

  g_string_append_c (body, '4');
  while (body->len + 2 <= MAX_PAYLOAD)
    g_string_append (body, "\x1e" "4");

  mem_watch_start (&watch);
  for (n_posts = 0; n_posts < 8; n_posts++)
    {
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) local = NULL;

      if (!test_http_send (poll->http, "POST", poll->target, NULL, body->str, body->len, &local))
        {
          note ("POST %u: %s", n_posts, local->message);
          break;
        }
      response = test_http_receive (poll->http, STALL_MS, &local);
      if (response == NULL)
        {
          /* No answer: held, if the session is still open. */
          note ("POST %u: %s", n_posts, local != NULL ? local->message : "no answer");
          held = g_error_matches (local, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
          break;
        }
      if (response->status != 200)
        {
          g_autofree char *text = test_response_text (response);
          note ("POST %u: %u %s", n_posts, response->status, text);
          break;
        }
    }
  note ("%u POSTs of %" G_GSIZE_FORMAT " bytes answered; the next one %s", n_posts,
        body->len, held ? "was held" : "was refused or never sent");
  assert_growth_bounded (&watch, "empty messages over polling");
  assert_paused_or_closed (rs, poll->sid, held);

  g_clear_pointer (&poll, rel_poll_free);
  rel_server_free (rs);
}

/* A client that takes its echoes with polls it never reads, each on a new
 * connection (with a small receive buffer): the session's queue moves into
 * poll responses that wait to be written. A response is held whole until
 * it is written, and the kernel takes up to 4 MiB of it (tcp_wmem), so
 * here the send mark is the default (8 MiB) and a poll carries 6 MB. */
#define SLOW_ROUNDS 16
#define SLOW_POSTS_PER_POLL 6
#define SLOW_MESSAGE 999000
#define SLOW_MARK (8 * 1024 * 1024)
#define SLOW_BOUND (4 * SLOW_MARK + MAX_PAYLOAD + MEMORY_SLACK)

static int
slow_poll (guint       port,
           const char *request)
{
  struct sockaddr_in address = { 0 };
  int size = 4096;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  address.sin_family = AF_INET;
  address.sin_port = htons ((guint16) port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
  g_assert_true (rel_tcp_send (fd, request, strlen (request)));
  return fd;
}

static void
test_polling_slow_readers (void)
{
  g_autoptr(GString) body = g_string_sized_new (SLOW_MESSAGE + 1);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *get = NULL;
  int fds[SLOW_ROUNDS];
  RelServer *rs = rel_server_new ();
  MemWatch watch;
  gboolean held = FALSE;
  gboolean stopped = FALSE;
  guint64 growth_kb;
  guint n_polls = 0;

  g_test_summary ("A polling client POSTs 1 MB messages to the echo server and takes the "
                  "echoes with GET polls, each on a new connection it never reads: while one "
                  "poll response is being written no other poll takes packets, so the "
                  "server's memory stays within the bound and the session holds the next "
                  "POST or closes with `transport error` (it held 6 MB more per poll)");

  g_object_set (rs->lb.server, "max-payload", (guint64) MAX_PAYLOAD, NULL);
  test_require (rel_server_listen (rs));
  poll = rel_poll_open (rs->lb.port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  g_string_append_c (body, '4');
  while (body->len < SLOW_MESSAGE)
    g_string_append_c (body, 'z');
  get = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);

  mem_watch_start (&watch);
  while (!stopped && n_polls < SLOW_ROUNDS)
    {
      for (guint i = 0; i < SLOW_POSTS_PER_POLL && !stopped; i++)
        {
          g_autoptr(TestResponse) response = NULL;
          g_autoptr(GError) local = NULL;

          if (!test_http_send (poll->http, "POST", poll->target, NULL, body->str, body->len, &local))
            {
              note ("POST: %s", local->message);
              stopped = TRUE;
              break;
            }
          response = test_http_receive (poll->http, STALL_MS, &local);
          if (response == NULL)
            {
              note ("POST: %s", local != NULL ? local->message : "no answer");
              held = g_error_matches (local, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
              stopped = TRUE;
            }
          else if (response->status != 200)
            {
              g_autofree char *text = test_response_text (response);
              note ("POST: %u %s", response->status, text);
              stopped = TRUE;
            }
        }
      if (!stopped)
        {
          g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (rs->lb.server, poll->sid);
          gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;

          /* The echoes all queued, so that the poll takes them all. */
          while (socket != NULL && engine_io_socket_get_send_queue_length (socket) < SLOW_POSTS_PER_POLL &&
                 !engine_io_socket_is_closed (socket) && g_get_monotonic_time () < deadline)
            g_usleep (1000);
          fds[n_polls++] = slow_poll (rs->lb.port, get);
        }
    }
  note ("%u polls left unread; the last POST %s", n_polls,
        held ? "was held" : stopped ? "was refused" : "was answered");
  growth_kb = mem_watch_stop (&watch);
  note ("resident memory grew by %" G_GUINT64_FORMAT " KiB (bound %d KiB)", growth_kb, SLOW_BOUND / 1024);
  if (!UNDER_SANITIZER)
    g_assert_cmpuint (growth_kb, <=, SLOW_BOUND / 1024);
  g_assert_true (stopped);
  /* The responses being written end (a closing session waits for its
   * last poll's), then the session's fate. */
  for (guint i = 0; i < n_polls; i++)
    rel_tcp_reset (fds[i]);
  assert_paused_or_closed (rs, poll->sid, held);

  g_clear_pointer (&poll, rel_poll_free);
  rel_server_free (rs);
}

static void
test_websocket_small_messages (void)
{
  g_test_summary ("A direct WebSocket client that never reads sends 2-byte messages to the echo "
                  "server: the server's memory stays within the bound derived from "
                  "send-queue-high-water, and the session stops being read or closes with "
                  "`transport error`");

  websocket_flood (4, "4x", 3000000, "2-byte messages over WebSocket");
}

static void
test_v3_ping_flood (void)
{
  g_test_summary ("A v3 WebSocket client that never reads sends pings (`2`): the pongs count "
                  "against send-queue-high-water like any packet, the server's memory stays "
                  "within the bound, and the session stops being read or closes with "
                  "`transport error`");

  websocket_flood (3, "2", 3000000, "v3 pings over WebSocket");
}

static void
test_v3_binary_slices (void)
{
  g_autoptr(GByteArray) body = g_byte_array_new ();
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = NULL;
  g_autofree char *filler = NULL;
  const char *headers[] = { "Content-Type", "application/octet-stream", NULL };
  static const guint8 tiny[] = { 0x04, 0x2a };  /* a binary message of one byte */
  RelServer *rs = NULL;
  MemWatch watch;
  guint n_posts;

  g_test_summary ("v3 XHR2 bodies of 1 MB each carry one 2-byte binary message (and a large "
                  "noop): the queued echoes must not keep the bodies alive (a small packet is "
                  "copied out of its body), so 64 of them stay within the memory bound");

  rs = echo_server ();
  test_require (rs != NULL);
  http = test_http_new (rs->lb.port);
  open = test_eio_polling_open (http, 3);
  test_require (open != NULL);
  target = test_eio_target (3, "polling", open->sid);

  /* The binary message, then a noop that fills the body (ignored by the
   * server, and freed once handled). */
  test_payload_v3_binary_append (body, TRUE, tiny, sizeof tiny);
  filler = g_malloc (MAX_PAYLOAD - 32 + 1);
  memset (filler, 'x', MAX_PAYLOAD - 32);
  filler[0] = '6';
  filler[MAX_PAYLOAD - 32] = '\0';
  test_payload_v3_binary_append (body, FALSE, filler, MAX_PAYLOAD - 32);
  g_assert_cmpuint (body->len, <=, MAX_PAYLOAD);

  mem_watch_start (&watch);
  for (n_posts = 0; n_posts < 64; n_posts++)
    {
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GError) error = NULL;

      response = test_http_request (http, "POST", target, headers, body->data, body->len,
                                    REL_WAIT_MS, &error);
      g_assert_no_error (error);
      test_require (response != NULL);
      g_assert_cmpuint (response->status, ==, 200);
    }
  /* The echoes are queued (the client never polls) and the session is open. */
  socket = engine_io_server_lookup_socket (rs->lb.server, open->sid);
  test_require (socket != NULL);
  g_assert_false (engine_io_socket_is_closed (socket));
  g_assert_cmpuint (engine_io_socket_get_send_queue_length (socket), >=, 1);
  assert_growth_bounded (&watch, "v3 binary packets in 1 MB bodies");

  g_clear_object (&socket);
  g_clear_pointer (&http, test_http_free);
  rel_server_free (rs);
}

/* The push-only server: no ::message handler, so messages go to the
 * receive queue. */
typedef struct
{
  EngineIOServer *server;
  guint           port;
  GMutex          lock;
  GCond           cond;
  EngineIOSocket *socket;   /* (lock) the session */
  gint            reason;   /* (lock) its close reason, -1 while open */
} PushServer;

static void
push_on_close (EngineIOSocket      *socket,
               EngineIOCloseReason  reason,
               const char          *description,
               gpointer             user_data)
{
  PushServer *ps = user_data;

  note ("push-only session closed: %s (%s)",
        engine_io_close_reason_to_string (reason), description ? description : "");
  g_mutex_lock (&ps->lock);
  ps->reason = reason;
  g_cond_broadcast (&ps->cond);
  g_mutex_unlock (&ps->lock);
}

static void
push_on_connection (EngineIOServer *server,
                    EngineIOSocket *socket,
                    gpointer        user_data)
{
  PushServer *ps = user_data;

  g_signal_connect (socket, "close", G_CALLBACK (push_on_close), ps);
  g_mutex_lock (&ps->lock);
  g_set_object (&ps->socket, socket);
  g_cond_broadcast (&ps->cond);
  g_mutex_unlock (&ps->lock);
}

static PushServer *
push_server_new (void)
{
  PushServer *ps = g_new0 (PushServer, 1);

  g_mutex_init (&ps->lock);
  g_cond_init (&ps->cond);
  ps->reason = -1;
  ps->server = test_server_new ();
  set_marks (ps->server);
  g_signal_connect (ps->server, "connection", G_CALLBACK (push_on_connection), ps);
  ps->port = test_server_listen (ps->server);
  return ps;
}

/* The session (once it exists). */
static EngineIOSocket *
push_server_wait_socket (PushServer *ps)
{
  gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  EngineIOSocket *socket;

  g_mutex_lock (&ps->lock);
  while (ps->socket == NULL && g_cond_wait_until (&ps->cond, &ps->lock, deadline))
    ;
  socket = ps->socket;
  g_mutex_unlock (&ps->lock);
  return socket;
}

static gint
push_server_reason (PushServer *ps)
{
  gint reason;

  g_mutex_lock (&ps->lock);
  reason = ps->reason;
  g_mutex_unlock (&ps->lock);
  return reason;
}

static void
push_server_free (PushServer *ps)
{
  engine_io_server_close (ps->server);
  g_clear_object (&ps->socket);
  g_clear_object (&ps->server);
  g_mutex_clear (&ps->lock);
  g_cond_clear (&ps->cond);
  g_free (ps);
}

typedef struct
{
  EngineIOSocket *socket;
  gint            expected;
  gint            received;   /* (atomic) */
  guint           out_of_order;
} Drainer;

static gpointer
drainer_thread (gpointer data)
{
  Drainer *d = data;

  while (g_atomic_int_get (&d->received) < d->expected)
    {
      g_autoptr(EngineIOPacket) packet = NULL;
      g_autoptr(GError) error = NULL;
      const char *text;

      packet = engine_io_socket_receive (d->socket, NULL, &error);
      if (packet == NULL)
        break;
      text = engine_io_packet_get_text (packet, NULL);
      if (text == NULL || g_ascii_strtoull (text, NULL, 10) != (guint64) g_atomic_int_get (&d->received))
        d->out_of_order++;
      g_atomic_int_inc (&d->received);
    }
  return NULL;
}

#define PUSH_MESSAGE_SIZE 1024
#define PUSH_MESSAGES 80000

static void
test_receive_queue (void)
{
  g_autoptr(GByteArray) frames = g_byte_array_new ();
  g_autoptr(RawWs) ws = NULL;
  PushServer *ps = NULL;
  Drainer drainer = { 0, };
  GThread *thread;
  MemWatch watch;
  FloodOutcome outcome;
  guint64 progress = 0;
  gint64 deadline;

  g_test_summary ("A push-only server (no ::message handler, nobody calls receive()) gets "
                  "80,000 messages of 1 KiB over WebSocket: the receive queue stops at "
                  "receive-queue-high-water (the server stops reading the client), and once "
                  "engine_io_socket_receive() takes messages the rest arrives, all of them, in "
                  "order, the server's memory within the bound throughout");

  ps = push_server_new ();
  test_require (ps->port != 0);
  ws = raw_ws_open (ps->port, 4);
  test_require (ws != NULL);
  test_require (push_server_wait_socket (ps) != NULL);

  for (guint i = 0; i < PUSH_MESSAGES; i++)
    {
      char text[PUSH_MESSAGE_SIZE];

      memset (text, 'm', sizeof text);
      g_snprintf (text, sizeof text, "4%08u", i);
      text[9] = ' ';
      append_text_frame (frames, text, sizeof text);
    }

  mem_watch_start (&watch);

  /* Nobody takes messages: the server must stop reading. */
  outcome = raw_ws_flood (ws, frames->data, frames->len, 1, &progress, STALL_MS);
  note ("flood without receive(): %s after %" G_GUINT64_FORMAT " of %u bytes",
        outcome_name (outcome), progress, frames->len);
  g_assert_cmpint (outcome, ==, FLOOD_STALLED);
  g_assert_cmpint (push_server_reason (ps), ==, -1);

  /* receive() takes them: the server reads again, and everything sent
   * arrives, in order. */
  drainer.socket = ps->socket;
  drainer.expected = PUSH_MESSAGES;
  thread = g_thread_new ("drainer", drainer_thread, &drainer);
  outcome = raw_ws_flood (ws, frames->data, frames->len, 1, &progress, 10 * STALL_MS);
  note ("flood with receive(): %s after %" G_GUINT64_FORMAT " bytes, %d received",
        outcome_name (outcome), progress, g_atomic_int_get (&drainer.received));
  g_assert_cmpint (outcome, ==, FLOOD_DONE);
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (g_atomic_int_get (&drainer.received) < PUSH_MESSAGES && g_get_monotonic_time () < deadline)
    g_usleep (10000);
  if (g_atomic_int_get (&drainer.received) < PUSH_MESSAGES)
    engine_io_server_close (ps->server);  /* receive() fails: the drainer ends */
  g_thread_join (thread);
  g_assert_cmpint (drainer.received, ==, PUSH_MESSAGES);
  g_assert_cmpuint (drainer.out_of_order, ==, 0);
  g_assert_cmpint (push_server_reason (ps), ==, -1);

  assert_growth_bounded (&watch, "receive queue");

  g_clear_pointer (&ws, raw_ws_free);
  push_server_free (ps);
}

/* The process's CPU time (user and system), in microseconds. */
static gint64
cpu_time_us (void)
{
  struct rusage usage;

  getrusage (RUSAGE_SELF, &usage);
  return ((gint64) usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * G_USEC_PER_SEC +
         usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

#define RESET_SESSIONS 4

/* A session the server stopped reading (its receive queue is at its
 * mark) whose client then resets: poll() reports the dead connection
 * (POLLERR, POLLHUP) whatever events are asked for, and the WebSocket,
 * which asked for none while it may not read, was dispatched again and
 * again: each such session kept a core busy (its own thread, or its
 * loop thread) until the application took its messages or the server
 * shut down. Measured before the fix: 0.97-1.0 s of CPU per second of
 * wall time with 4 such sessions (the thread per session case on 2
 * cores: 2 s per second). */
static void
test_receive_queue_reset (void)
{
  PushServer *ps = NULL;
  g_autoptr(GByteArray) frames = g_byte_array_new ();
  RawWs *ws[RESET_SESSIONS];
  gint64 wall0, cpu0, wall, cpu;

  g_test_summary ("Sessions the server stopped reading (receive queue at its mark) whose "
                  "clients reset cost no CPU while the application does not take their "
                  "messages: the process uses at most a fifth of a core meanwhile");

  ps = push_server_new ();
  test_require (ps->port != 0);
  for (guint i = 0; i < 16 * MARK / PUSH_MESSAGE_SIZE; i++)
    {
      char text[PUSH_MESSAGE_SIZE];

      memset (text, 'm', sizeof text);
      text[0] = '4';
      append_text_frame (frames, text, sizeof text);
    }
  for (guint i = 0; i < RESET_SESSIONS; i++)
    {
      guint64 progress = 0;
      FloodOutcome outcome;

      ws[i] = raw_ws_open (ps->port, 4);
      test_require (ws[i] != NULL);
      outcome = raw_ws_flood (ws[i], frames->data, frames->len, 1, &progress, STALL_MS);
      note ("session %u: %s after %" G_GUINT64_FORMAT " of %u bytes",
            i, outcome_name (outcome), progress, frames->len);
      g_assert_cmpint (outcome, ==, FLOOD_STALLED);
    }
  for (guint i = 0; i < RESET_SESSIONS; i++)
    raw_ws_free (ws[i]);  /* a reset */

  g_usleep (100 * 1000);  /* the resets arrive */
  wall0 = g_get_monotonic_time ();
  cpu0 = cpu_time_us ();
  g_usleep (1000 * 1000);
  wall = g_get_monotonic_time () - wall0;
  cpu = cpu_time_us () - cpu0;
  note ("%u reset sessions not read: %" G_GINT64_FORMAT " ms of CPU in %" G_GINT64_FORMAT " ms",
        RESET_SESSIONS, cpu / 1000, wall / 1000);
  g_assert_cmpint (cpu, <=, wall / 5);

  push_server_free (ps);
}

#define POST_MESSAGES 120000

static void
test_post_rounds (void)
{
  g_autoptr(GString) body = g_string_new (NULL);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  PushServer *ps = NULL;
  Drainer drainer = { 0, };
  GThread *thread;
  MemWatch watch;

  g_test_summary ("One POST of 120,000 messages to a push-only server whose application takes "
                  "them with receive(): the POST is read in rounds, held while the receive queue "
                  "is full, answered `ok` once every message is handed over; all arrive, in "
                  "order, within the memory bound");

  ps = push_server_new ();
  test_require (ps->port != 0);
  poll = rel_poll_open (ps->port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  test_require (push_server_wait_socket (ps) != NULL);

  for (guint i = 0; i < POST_MESSAGES; i++)
    g_string_append_printf (body, "%s4%u", i > 0 ? "\x1e" : "", i);
  g_assert_cmpuint (body->len, <=, MAX_PAYLOAD);

  mem_watch_start (&watch);
  drainer.socket = ps->socket;
  drainer.expected = POST_MESSAGES;
  thread = g_thread_new ("drainer", drainer_thread, &drainer);
  response = test_http_request (poll->http, "POST", poll->target, NULL, body->str, (gssize) body->len,
                                REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 200);
  g_thread_join (thread);
  g_assert_cmpint (drainer.received, ==, POST_MESSAGES);
  g_assert_cmpuint (drainer.out_of_order, ==, 0);
  g_assert_cmpint (push_server_reason (ps), ==, -1);
  assert_growth_bounded (&watch, "one POST of 120,000 messages");

  g_clear_pointer (&poll, rel_poll_free);
  push_server_free (ps);
}

static void
test_post_rounds_malformed (void)
{
  g_autoptr(GString) body = g_string_new (NULL);
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) packet = NULL;
  PushServer *ps = NULL;
  gint64 deadline;

  g_test_summary ("A POST of 120,000 messages (more than one round) whose last packet is "
                  "malformed: 400, the session closes with `parse error`, and not one of its "
                  "messages is delivered (the body is checked whole before the first round)");

  ps = push_server_new ();
  test_require (ps->port != 0);
  poll = rel_poll_open (ps->port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  test_require (push_server_wait_socket (ps) != NULL);

  for (guint i = 0; i < POST_MESSAGES; i++)
    g_string_append_printf (body, "4%u\x1e", i);
  g_string_append (body, "9bad");

  response = test_http_request (poll->http, "POST", poll->target, NULL, body->str, (gssize) body->len,
                                REL_WAIT_MS, &error);
  g_assert_no_error (error);
  test_require (response != NULL);
  g_assert_cmpuint (response->status, ==, 400);
  deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (push_server_reason (ps) == -1 && g_get_monotonic_time () < deadline)
    g_usleep (10000);
  g_assert_cmpint (push_server_reason (ps), ==, ENGINE_IO_CLOSE_REASON_PARSE_ERROR);
  packet = engine_io_socket_receive (ps->socket, NULL, &error);
  g_assert_null (packet);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);

  g_clear_pointer (&poll, rel_poll_free);
  push_server_free (ps);
}

#define IDLE_SESSIONS 20
/* What an idle WebSocket session may keep after it echoed a max-payload
 * message: its session and connection (tens of KiB) and what the
 * allocator keeps; with a thread per session also that thread's malloc
 * arena (glibc's malloc_trim() does not give back the top of a thread's
 * arena; with 20 sessions, about as many as glibc has arenas (8 per
 * core), each session's thread here may have one:
 * websocket-idle-many-after-200k counts past that). Measured: about 200 KiB
 * with loop threads, 700 KiB with a thread per session; before the fix
 * each also kept its encoding buffer at the message's size (1 MB): 1.2
 * and 1.7 MiB. */
#define IDLE_SESSION_BOUND_KB (test_loop_threads_from_env () == 0 ? 1024u : 512u)

/* Opens @n WebSocket sessions after a first one (what every server has:
 * its threads, buffers and the allocator's state), each echoing one
 * message of @size bytes, and checks that the resident memory (after
 * malloc_trim()) grew by at most @bound_kb per session while they idle,
 * and that each still echoes. The first session echoes @warm_up, or the
 * same message when it is NULL. */
static void
check_idle_sessions (guint       n,
                     gsize       size,
                     guint       bound_kb,
                     const char *warm_up)
{
  RelServer *rs;
  GPtrArray *clients = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_free);
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autofree char *message = g_strnfill (size - 1, 'M');
  guint64 base_kb = 0, now_kb;

  rs = echo_server ();
  g_assert_nonnull (rs);
  for (guint i = 0; i <= n; i++)
    {
      g_autoptr(GError) error = NULL;
      TestWs *ws = test_ws_connect (rs->lb.port, target, NULL, 0, NULL, &error);

      g_assert_no_error (error);
      g_ptr_array_add (clients, ws);
      g_free (test_ws_read_text (ws, REL_WAIT_MS));  /* the open packet */
      g_assert_true (rel_ws_echo (ws, i == 0 && warm_up != NULL ? warm_up : message + 1, REL_WAIT_MS, &error));
      g_assert_no_error (error);
      if (i == 0)
        {
          malloc_trim (0);
          base_kb = status_kb ("VmRSS:");
        }
    }
  malloc_trim (0);
  now_kb = status_kb ("VmRSS:");
  note ("%u idle WebSocket sessions after a %" G_GSIZE_FORMAT "-byte echo each: resident memory grew by %"
        G_GUINT64_FORMAT " KiB (bound %u KiB)", n, size, now_kb - MIN (now_kb, base_kb), n * bound_kb);
  for (guint i = 0; i < clients->len; i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_true (rel_ws_echo (g_ptr_array_index (clients, i), "still here", REL_WAIT_MS, &error));
      g_assert_no_error (error);
    }
  if (UNDER_SANITIZER)
    note ("under a sanitizer: the memory bound is not checked");
  else
    g_assert_cmpuint (now_kb, <=, base_kb + n * bound_kb);
  g_ptr_array_unref (clients);
  rel_server_free (rs);
}

static void
test_websocket_idle_after_large (void)
{
  g_test_summary ("WebSocket sessions that each had one max-payload message echoed and then "
                  "stay idle keep no buffer of that size: the resident memory (after "
                  "malloc_trim()) grows by at most 512 KiB per idle session (1 MiB with a thread per session)");
  check_idle_sessions (IDLE_SESSIONS, MAX_PAYLOAD, IDLE_SESSION_BOUND_KB, "warm-up");
}

/* Each case runs in a process of its own: memory a previous case freed
 * stays in the allocator's arenas, and a flood reusing it would not show
 * in the resident size. */
static void
in_subprocess (gconstpointer data)
{
  GTestFunc func = (GTestFunc) data;

  if (g_test_subprocess ())
    {
      func ();
      return;
    }
  g_test_trap_subprocess (NULL, 180 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_INHERIT_STDOUT | G_TEST_SUBPROCESS_INHERIT_STDERR);
  if (!g_test_trap_has_passed ())
    g_test_fail_printf ("the case failed (see its output above)");
}

#define IDLE_MANY_SESSIONS 100
#define IDLE_MANY_SIZE     200000
#define IDLE_MANY_BOUND_KB 150u

/* A thread per session kept its thread's spare read buffer, with the pages
 * its messages had touched, for the life of its one session: about 200 KB
 * resident per idle session after a 200 KB message. Measured here (the
 * clients' memory included): 309-312 KiB per session before the fix, 66-72
 * after; with loop threads 9-13.
 * More sessions than glibc has malloc arenas (8 per core), so that what
 * an arena keeps does not pass for what a session keeps. */
static void
test_websocket_idle_many (void)
{
  g_test_summary ("Many WebSocket sessions that each had one 200 KB message echoed and then "
                  "stay idle keep no read buffer: the resident memory (after malloc_trim()) "
                  "grows by at most 150 KiB per idle session, in both threading modes");
  check_idle_sessions (IDLE_MANY_SESSIONS, IDLE_MANY_SIZE, IDLE_MANY_BOUND_KB, NULL);
}

#define POOL_SESSIONS 24
#define POOL_ROUNDS   4
#define POOL_FLOOD    (4 * 1024 * 1024)

typedef struct
{
  guint      port;        /* the echo server */
  guint      flood_port;  /* a server that takes no message */
  RelErrors *errors;
  GMutex     lock;
  GPtrArray *kept;  /* TestWs*: left open for the server's shutdown */
} PoolAttack;

/* Leaves @ws open for the server's shutdown (any client thread). */
static void
pool_keep (PoolAttack *a,
           TestWs     *ws)
{
  g_mutex_lock (&a->lock);
  g_ptr_array_add (a->kept, ws);
  g_mutex_unlock (&a->lock);
}

/* A message no other session or round sends: a buffer lent to two
 * sessions at once, or given back while still read from, shows as an
 * echo that differs. */
static char *
pool_message (guint session,
              guint round,
              guint which,
              gsize size)
{
  GString *text = g_string_sized_new (size + 1);

  g_string_append_printf (text, "4s%u-r%u-m%u:", session, round, which);
  while (text->len < size)
    g_string_append_c (text, 'a' + (session * 7 + round * 3 + which + text->len) % 26);
  return g_string_free (text, FALSE);
}

/* Sends what goes until the peer stops reading (nothing goes for
 * 300 ms) or all of it went. */
static void
send_until_stalled (TestWs       *ws,
                    const guint8 *data,
                    gsize         length)
{
  GSocket *socket = test_ws_get_socket (ws);

  while (length > 0)
    {
      g_autoptr(GError) error = NULL;
      gssize n = g_socket_send_with_blocking (socket, (const char *) data, length, FALSE, NULL, &error);

      if (n > 0)
        {
          data += n;
          length -= (gsize) n;
          continue;
        }
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK) ||
          !g_socket_condition_timed_wait (socket, G_IO_OUT, 300 * 1000, NULL, NULL))
        return;
    }
}

static void
pool_session (guint    index,
              gpointer data)
{
  PoolAttack *a = data;
  g_autoptr(GError) error = NULL;
  g_autofree char *sid = NULL;
  TestWs *ws = rel_ws_open (index % 3 == 2 ? a->flood_port : a->port, &sid, &error);
  static const gsize sizes[] = { 60, 70 * 1024, 150 * 1024, 300 * 1024 };

  if (ws == NULL)
    {
      rel_errors_add (a->errors, "session %u: open: %s", index, error->message);
      return;
    }
  if (index % 3 == 2)
    {
      /* A flood of messages nobody takes: the session goes over its
       * receive queue's mark and the server stops reading it with frames
       * left in its read buffer; then half of these reset, the other half
       * stay for the shutdown. */
      g_autoptr(GByteArray) out = g_byte_array_new ();
      g_autofree char *small = pool_message (index, 0, 0, 3000);

      while (out->len < POOL_FLOOD)
        test_ws_append_frame (out, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_TEXT), TRUE, small, strlen (small));
      /* A partial frame last: a header claiming more than comes. */
      test_ws_append_header (out, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_TEXT), (const guint8 *) "abcd", 5000);
      send_until_stalled (ws, out->data, out->len);
      if (index % 2 == 0)
        {
          test_ws_drop (ws, TRUE);
          test_ws_free (ws);
          return;
        }
      pool_keep (a, ws);
      return;
    }
  for (guint round = 0; round < POOL_ROUNDS; round++)
    {
      g_autoptr(GByteArray) out = g_byte_array_new ();
      char *sent[G_N_ELEMENTS (sizes)];

      /* Pipelined: several frames in one read, small and large. */
      for (guint m = 0; m < G_N_ELEMENTS (sizes); m++)
        {
          sent[m] = pool_message (index, round, m, sizes[(m + index + round) % G_N_ELEMENTS (sizes)]);
          test_ws_append_frame (out, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_TEXT), TRUE, sent[m], strlen (sent[m]));
        }
      if (!test_ws_send_chopped (ws, out->data, out->len, round % 2 ? 1000 : 0, &error))
        rel_errors_add (a->errors, "session %u round %u: send: %s", index, round, error->message);
      for (guint m = 0; m < G_N_ELEMENTS (sizes) && error == NULL; m++)
        {
          g_autofree char *got = rel_ws_next (ws, REL_WAIT_MS, NULL, &error);

          if (got == NULL)
            rel_errors_add (a->errors, "session %u round %u message %u: %s", index, round, m, error->message);
          else if (strcmp (got, sent[m]) != 0)
            rel_errors_add (a->errors, "session %u round %u message %u: echo differs (%zu bytes, sent %zu: %.40s)",
                            index, round, m, strlen (got), strlen (sent[m]), got);
        }
      for (guint m = 0; m < G_N_ELEMENTS (sizes); m++)
        g_free (sent[m]);
      if (error != NULL)
        break;
    }
  if (index % 3 == 1)
    {
      /* Ends with a partial frame in flight, by a reset. */
      guint8 partial[] = { 0x81, 0xfe, 0x10, 0x00, 'a', 'b', 'c', 'd', 'x', 'y' };

      test_ws_send_raw (ws, partial, sizeof partial, NULL);
      test_ws_drop (ws, TRUE);
      test_ws_free (ws);
      return;
    }
  pool_keep (a, ws);
}

/* Sessions' threads borrow and give back read buffers at once (the
 * process-wide pool of a thread per session): pipelined messages of every
 * size, chopped and whole, come back intact; sessions reset with a
 * partial frame, floods that stop being read with frames left in the
 * buffer, and a shutdown with such sessions still open free what they
 * hold (ASan, TSan: no race, no double free, no leak). */
static void
test_websocket_read_buffer_pool (void)
{
  PoolAttack a = { 0 };
  RelServer *rs;
  PushServer *ps;

  g_test_summary ("Many WebSocket sessions at once, some pipelining messages of 60 B to "
                  "300 KiB, some flooding without reading, some reset mid-frame: every "
                  "echo is intact, and the server shuts down with the rest still open");

  rs = echo_server ();
  g_assert_nonnull (rs);
  a.port = rs->lb.port;
  ps = push_server_new ();
  test_require (ps->port != 0);
  a.flood_port = ps->port;
  a.errors = rel_errors_new ();
  g_mutex_init (&a.lock);
  a.kept = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_free);
  rel_parallel (8, POOL_SESSIONS, pool_session, &a);
  rel_errors_report (a.errors, 10);
  /* The servers go with sessions open, some of them not read. */
  rel_server_free (rs);
  push_server_free (ps);
  g_ptr_array_unref (a.kept);
  g_mutex_clear (&a.lock);
  rel_errors_free (a.errors);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();
  g_main_context_default ();

#define ADD(path, func) \
  g_test_add_data_func ("/reliability/memory/" path, (gconstpointer) (func), in_subprocess)
  ADD ("polling-empty-messages", test_polling_empty_messages);
  ADD ("polling-slow-readers", test_polling_slow_readers);
  ADD ("websocket-small-messages", test_websocket_small_messages);
  ADD ("v3-ping-flood", test_v3_ping_flood);
  ADD ("v3-binary-slices", test_v3_binary_slices);
  ADD ("receive-queue", test_receive_queue);
  ADD ("receive-queue-reset", test_receive_queue_reset);
  ADD ("post-rounds", test_post_rounds);
  ADD ("post-rounds-malformed", test_post_rounds_malformed);
  ADD ("websocket-idle-after-large", test_websocket_idle_after_large);
  ADD ("websocket-idle-many-after-200k", test_websocket_idle_many);
  ADD ("websocket-read-buffer-pool", test_websocket_read_buffer_pool);
#undef ADD

  return g_test_run ();
}
