/* test-ws-abuse.c: WebSocket clients that make the server answer without
 * reading the answers, and the WebSocket corner cases of issue #12.
 *
 * - ping-flood: direct WebSocket clients send RFC 6455 pings (empty and
 *   125-byte ones) and Engine.IO pongs (`3`) as fast as TCP takes them and
 *   never read. The server's memory (this process's RSS: the server runs
 *   here) must stay within a bound, the server must stop reading them
 *   (their sends block), close them, and a healthy WebSocket session on
 *   the same server keeps echoing with a bounded round trip meanwhile.
 * - the close handshake: a 1-byte close payload is answered 1002; a server
 *   shutting down says 1001;
 * - upgrades: a `2probe` sent in the same segment as the upgrade request is
 *   answered at once; a probe given up (upgrade timeout, session closed)
 *   gets a close frame; a second WebSocket for a session that has one is
 *   answered 101 and closed, as the reference does, and the first goes on.
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"

/* ping-interval + ping-timeout: also how long WebSocket output may wait
 * unwritten before the server closes the connection with 1008. */
#define PING_INTERVAL_MS 500
#define PING_TIMEOUT_MS 500
/* stalled-reader's (see fixture_setup()): its stall timeout is 2 s. */
#define STALLED_PING_TIMEOUT_MS 1500

/* What the flooding clients may make the server hold: the README says
 * about 1.3 MiB per connection (1 MiB of output, a read buffer); the rest
 * is room for the allocator and the healthy session. Measured: about
 * +2 MiB for the three. Before the fix this was passed within a second. */
#define FLOOD_RSS_BOUND_KB (16 * 1024)
/* How long the flood lasts at most. */
#define FLOOD_MS 4000
/* The slowest echo round trip of the healthy session allowed during the
 * flood (a loaded 2-core machine; before the fix: seconds). */
#define HEALTHY_MAX_MS (test_scaled_ms (1500))

typedef struct
{
  RelServer *rs;
  guint      port;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  /* A fragmented message cannot carry the client's heartbeat answer
   * (data frames do not interleave): the fragment tests get a heartbeat
   * longer than they take. */
  gboolean fragments = g_str_has_prefix (g_test_get_path (), "/reliability/ws-abuse/fragments/");
  /* stalled-reader tests the stall (ping-interval + ping-timeout without
   * a byte written), not the heartbeat: its client answers every ping, but
   * a loaded machine may hold its thread (or the session's) longer than
   * 500 ms, and a late answer ends the session with `ping timeout` first
   * (seen in CI: close code 1000). A longer ping-timeout leaves the stall
   * the only deadline that can pass. */
  gboolean stalled = g_str_equal (g_test_get_path (), "/reliability/ws-abuse/stalled-reader");

  f->rs = rel_server_new ();
  g_object_set (f->rs->lb.server,
                "ping-interval", fragments ? 20000 : PING_INTERVAL_MS,
                "ping-timeout", fragments ? 20000 : stalled ? STALLED_PING_TIMEOUT_MS : PING_TIMEOUT_MS,
                "upgrade-timeout", GPOINTER_TO_UINT (data) != 0 ? GPOINTER_TO_UINT (data) : 10000,
                /* Room for stalled-reader's echoes: the WebSocket's own
                 * bounds are what is tested here. */
                "send-queue-high-water", (guint64) 64 * 1024 * 1024,
                NULL);
  g_assert_true (rel_server_listen (f->rs));
  f->port = f->rs->lb.port;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->rs, rel_server_free);
  test_log_check ();
}

/* A masked client frame (payload of at most 125 bytes). */
static void
append_frame (GByteArray *out,
              guint8      opcode,
              const void *payload,
              gsize       length)
{
  static const guint8 mask[4] = { 0x5a, 0xa5, 0x3c, 0xc3 };
  guint8 head[2] = { 0x80 | opcode, 0x80 | (guint8) length };

  g_assert_cmpuint (length, <=, 125);
  g_byte_array_append (out, head, 2);
  g_byte_array_append (out, mask, 4);
  for (gsize i = 0; i < length; i++)
    {
      guint8 b = ((const guint8 *) payload)[i] ^ mask[i % 4];
      g_byte_array_append (out, &b, 1);
    }
}

/* ------------------------------------------------------------------ */
/* A client that floods pings and never reads                          */
/* ------------------------------------------------------------------ */

typedef struct
{
  guint       port;
  gsize       ping_size;     /* payload of each ping: 0 or 125 */
  int         fd;
  char       *sid;
  GThread    *thread;
  GByteArray *chunk;         /* whole frames, sent over and over */

  /* Written by the thread, read after it ended. */
  guint64     bytes_sent;
  gint64      longest_block_us;  /* the longest time no byte was taken */
  gboolean    closed;        /* the server closed the connection (EPIPE, RST) */
  int         stop;          /* (atomic) */
} Flooder;

/* Connects with a small receive buffer, sends the opening handshake and
 * reads the 101 and the open packet (the last thing ever read). */
static gboolean
flooder_connect (Flooder *fl)
{
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons ((guint16) fl->port),
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  int rcvbuf = 4096;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *head = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
                                           target, fl->port, key);
  g_autoptr(GByteArray) in = g_byte_array_new ();
  gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;
  const guint8 *frame = NULL;
  g_autofree char *json = NULL;
  g_autoptr(TestOpenPacket) open = NULL;

  fl->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_cmpint (fl->fd, >=, 0);
  setsockopt (fl->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (connect (fl->fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    return FALSE;
  if (!rel_tcp_send (fl->fd, head, strlen (head)))
    return FALSE;

  /* The head, then the first frame (the open packet, < 126 bytes). */
  for (;;)
    {
      guint8 buffer[4096];
      struct pollfd pfd = { .fd = fl->fd, .events = POLLIN };
      const guint8 *end = in->len > 0 ? (const guint8 *) g_strstr_len ((const char *) in->data, in->len,
                                                                       "\r\n\r\n")
                                      : NULL;
      ssize_t n;

      if (end != NULL)
        {
          frame = end + 4;
          if (in->len >= (gsize) (frame - in->data) + 2 &&
              in->len >= (gsize) (frame - in->data) + 2 + (frame[1] & 0x7f))
            break;
        }
      if (g_get_monotonic_time () > deadline ||
          poll (&pfd, 1, 100) < 0)
        return FALSE;
      if (!(pfd.revents & POLLIN))
        continue;
      n = recv (fl->fd, buffer, sizeof buffer, 0);
      if (n <= 0)
        return FALSE;
      g_byte_array_append (in, buffer, (guint) n);
    }
  if (memcmp (in->data, "HTTP/1.1 101", 12) != 0 || frame[0] != 0x81 || frame[2] != '0')
    return FALSE;
  json = g_strndup ((const char *) frame + 3, (frame[1] & 0x7f) - 1);
  open = test_open_packet_parse (json, NULL);
  if (open == NULL)
    return FALSE;
  fl->sid = g_strdup (open->sid);
  return TRUE;
}

static gpointer
flooder_thread (gpointer data)
{
  Flooder *fl = data;
  gsize offset = 0;
  gint64 last_progress = g_get_monotonic_time ();

  while (!g_atomic_int_get (&fl->stop))
    {
      struct pollfd pfd = { .fd = fl->fd, .events = POLLOUT };
      ssize_t n;

      if (poll (&pfd, 1, 20) < 0 && errno != EINTR)
        break;
      if (pfd.revents & (POLLERR | POLLHUP))
        {
          fl->closed = TRUE;
          break;
        }
      n = send (fl->fd, fl->chunk->data + offset, fl->chunk->len - offset,
                MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        {
          gint64 now = g_get_monotonic_time ();
          fl->longest_block_us = MAX (fl->longest_block_us, now - last_progress);
          last_progress = now;
          fl->bytes_sent += (guint64) n;
          offset = (offset + (gsize) n) % fl->chunk->len;
        }
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        {
          fl->closed = TRUE;  /* EPIPE, ECONNRESET */
          break;
        }
    }
  fl->longest_block_us = MAX (fl->longest_block_us, g_get_monotonic_time () - last_progress);
  return NULL;
}

static Flooder *
flooder_start (guint port,
               gsize ping_size)
{
  Flooder *fl = g_new0 (Flooder, 1);
  guint8 payload[125];

  fl->port = port;
  fl->ping_size = ping_size;
  memset (payload, 'p', sizeof payload);
  /* Pings, and now and then an Engine.IO pong (`3`) that no ping asked
   * for: neither may keep a client that never reads alive. */
  fl->chunk = g_byte_array_new ();
  while (fl->chunk->len < 64 * 1024)
    {
      for (guint i = 0; i < 256; i++)
        append_frame (fl->chunk, TEST_WS_PING, payload, ping_size);
      append_frame (fl->chunk, TEST_WS_TEXT, "3", 1);
    }
  g_assert_true (flooder_connect (fl));
  fl->thread = g_thread_new ("flooder", flooder_thread, fl);
  return fl;
}

static void
flooder_stop (Flooder *fl)
{
  g_atomic_int_set (&fl->stop, 1);
  g_clear_pointer (&fl->thread, g_thread_join);
}

static void
flooder_free (Flooder *fl)
{
  flooder_stop (fl);
  if (fl->fd >= 0)
    close (fl->fd);
  g_byte_array_unref (fl->chunk);
  g_free (fl->sid);
  g_free (fl);
}

static void
test_ping_flood (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  /* Three: with two loop threads (pooled mode, least loaded first), the
   * healthy session shares its thread with one of them. */
  Flooder *flooders[3];
  RelHealthy *healthy;
  g_autofree char *healthy_error = NULL;
  guint base_kb, peak_kb = 0;
  guint healthy_before;
  gint64 start;
  gboolean over = FALSE;

  g_test_summary ("WebSocket clients that send pings (empty and 125-byte ones) and unsolicited "
                  "Engine.IO pongs without ever reading: the server's memory stays within the "
                  "documented bound, it stops reading them (their sends block), closes them "
                  "(“ping timeout”, or “transport error” and close code 1008 once their output "
                  "has waited ping-interval + ping-timeout), and a healthy WebSocket session "
                  "keeps echoing meanwhile");

  healthy = rel_healthy_start (f->port, REL_HEALTHY_WEBSOCKET, &error);
  g_assert_no_error (error);
  g_assert_true (rel_healthy_wait_more (healthy, 3, REL_WAIT_MS));
  healthy_before = rel_healthy_round_trips (healthy);

  base_kb = rel_held_kb ();
  flooders[0] = flooder_start (f->port, 0);
  flooders[1] = flooder_start (f->port, 125);
  flooders[2] = flooder_start (f->port, 0);

  /* Watch the memory until both are closed or the flood time is over;
   * stop at once if the bound is passed (before the fix this grows by
   * hundreds of MiB a second). */
  start = g_get_monotonic_time ();
  while (g_get_monotonic_time () - start < FLOOD_MS * 1000)
    {
      guint kb = rel_held_kb ();

      peak_kb = MAX (peak_kb, kb);
      if (kb > base_kb + FLOOD_RSS_BOUND_KB)
        {
          over = TRUE;
          break;
        }
      {
        guint closed = 0;

        for (guint i = 0; i < G_N_ELEMENTS (flooders); i++)
          closed += rel_server_reason (f->rs, flooders[i]->sid) >= 0;
        if (closed == G_N_ELEMENTS (flooders))
          break;
      }
      g_usleep (20 * 1000);
    }
  if (over)
    for (guint i = 0; i < G_N_ELEMENTS (flooders); i++)
      flooder_stop (flooders[i]);

  g_test_message ("%s %u KiB before the flood, peak %u KiB (+%u KiB, bound %u KiB)",
                  REL_HELD_WHAT, base_kb, peak_kb, peak_kb - MIN (peak_kb, base_kb), FLOOD_RSS_BOUND_KB);
  g_assert_cmpuint (peak_kb, <=, base_kb + FLOOD_RSS_BOUND_KB);

  /* The flooders' sessions end, without their help. */
  for (guint i = 0; i < G_N_ELEMENTS (flooders); i++)
    {
      gint reason = rel_server_wait_reason (f->rs, flooders[i]->sid, REL_WAIT_MS);

      flooder_stop (flooders[i]);
      g_test_message ("flooder %u (%" G_GSIZE_FORMAT "-byte pings): %" G_GUINT64_FORMAT
                      " bytes taken, blocked for up to %" G_GINT64_FORMAT " ms, session closed "
                      "with “%s”", i, flooders[i]->ping_size, flooders[i]->bytes_sent,
                      flooders[i]->longest_block_us / 1000,
                      reason < 0 ? "(nothing)" : engine_io_close_reason_to_string (reason));
      /* “ping timeout” when its `3` was not read in time (reading had
       * stopped), “transport error” when its output stalled first. */
      g_assert_true (reason == ENGINE_IO_CLOSE_REASON_PING_TIMEOUT ||
                     reason == ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
      /* The server stopped reading it before closing it: its sends
       * blocked for longer than any scheduling hiccup. */
      g_assert_cmpint (flooders[i]->longest_block_us, >=, 300 * 1000);
      /* And the connection ends (we read it all, to the end). */
      g_assert_true (rel_tcp_wait_closed (flooders[i]->fd, REL_WAIT_MS, NULL));
    }

  /* The healthy session kept echoing, with bounded round trips. */
  g_assert_true (rel_healthy_wait_more (healthy, 3, REL_WAIT_MS));
  g_test_message ("healthy session: %u round trips during the test, slowest %u ms",
                  rel_healthy_round_trips (healthy) - healthy_before, rel_healthy_max_ms (healthy));
  g_assert_cmpuint (rel_healthy_max_ms (healthy), <=, HEALTHY_MAX_MS);
  healthy_error = rel_healthy_stop (healthy, TRUE);
  g_assert_null (healthy_error);

  for (guint i = 0; i < G_N_ELEMENTS (flooders); i++)
    flooder_free (flooders[i]);
}

static void
test_stalled_reader (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWsFrame) open = NULL;
  g_autofree char *message = NULL;
  g_autofree char *sid = NULL;
  gint code, reason;

  g_test_summary ("A client that sends messages (echoed back) and answers pings blindly "
                  "with `3`, but does not read: once its output has waited ping-interval + "
                  "ping-timeout without a byte written, the server closes it with 1008 (sent "
                  "ahead of the queued messages, seen by a client that reads again) and "
                  "“transport error”");

  {
    g_autofree char *target = test_eio_target (4, "websocket", NULL);
    ws = test_ws_connect (f->port, target, NULL, 4096, NULL, &error);
    g_assert_no_error (error);
  }
  open = test_ws_read_frame (ws, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  {
    g_autofree char *text = test_ws_frame_dup_text (open);
    g_autoptr(TestOpenPacket) packet = test_open_packet_parse (text + 1, &error);
    g_assert_no_error (error);
    sid = g_strdup (packet->sid);
  }

  /* 12 MB of echoes: more than the kernel's buffers (a 4 MiB send
   * buffer at most) and ours can hold, well under send-queue-high-water;
   * and pongs without reading the pings, from the start and then for
   * longer than the stall timeout (and well under the 3 s the close frame
   * is given). */
  message = g_strnfill (10 * 1024, 'x');
  message[0] = '4';
  for (guint i = 0; i < 1200; i++)
    {
      g_assert_true (test_ws_send_text (ws, message));
      if (i % 10 == 0)
        g_assert_true (test_ws_send_text (ws, "3"));
    }
  /* Until the session starts closing: the stall deadline counts from the
   * last byte written, which on a loaded machine may come well after our
   * last send returned (the server still reading and echoing what the
   * kernel holds). Before, the client answered for a fixed 2.5 s and then
   * read, its reading let output through, and the next unanswered ping
   * ended the session with `ping timeout` (CI, ASan: close code 1000).
   * ::close comes only when the close handshake is over (3 s later at
   * most: we must read before that to see the close frame), so what is
   * watched is engine_io_socket_is_closed(), true when closing begins. */
  {
    g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (f->rs->lb.server, sid);
    gint64 give_up = g_get_monotonic_time () + (gint64) REL_WAIT_MS * 1000;
    guint answers = 0;

    g_assert_nonnull (socket);
    while (!engine_io_socket_is_closed (socket) && g_get_monotonic_time () < give_up)
      {
        g_assert_true (test_ws_send_text (ws, "3"));
        answers++;
        g_usleep (100 * 1000);
      }
    g_test_message ("%u heartbeat answers sent before the session started closing", answers);
  }

  /* Reading again: the echoes that were written, then the close. */
  code = test_ws_read_close (ws, REL_WAIT_MS, NULL);
  reason = rel_server_wait_reason (f->rs, sid, REL_WAIT_MS);
  g_test_message ("close code %d, reason %d", code, reason);
  g_assert_cmpint (code, ==, 1008);
  g_assert_cmpint (reason, ==, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
}

/* ------------------------------------------------------------------ */
/* Fragmented messages                                                  */
/* ------------------------------------------------------------------ */

/* What a message in tiny fragments may make the server hold: its bound is
 * max-payload (1 MB here) plus an eighth plus 64 KiB; the rest is room for
 * the allocator.
 * Before the fix: about 96 bytes per 1-byte fragment (+46 MiB for the
 * 500,000 sent here, ~100 MB for a max-payload message). */
#define FRAGMENT_RSS_BOUND_KB (8 * 1024)
#define TINY_FRAGMENTS 500000

static void
test_tiny_fragments (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWs) sane = NULL;
  g_autoptr(TestWsFrame) open = NULL;
  g_autoptr(GByteArray) batch = g_byte_array_new ();
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autofree char *sid = NULL;
  g_autofree char *piece = NULL;
  guint base_kb, peak_kb = 0;
  guint sent = 0;
  gint code;

  g_test_summary ("A message sent in 1-byte continuation frames holds no more than a message "
                  "of max-payload: the server counts each fragment at its payload plus 96 bytes "
                  "(a bound on the frames one message may take) and closes with 1009 once the message "
                  "passes max-payload by an eighth and 64 KiB; its memory stays within bound. A message of "
                  "max-payload in 1000-byte fragments, with a ping between them, is still "
                  "echoed whole");

  ws = test_ws_connect (f->port, target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  open = test_ws_read_frame (ws, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  {
    g_autofree char *text = test_ws_frame_dup_text (open);
    g_autoptr(TestOpenPacket) packet = test_open_packet_parse (text + 1, &error);
    g_assert_no_error (error);
    sid = g_strdup (packet->sid);
  }

  base_kb = rel_held_kb ();
  g_assert_true (test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_NOT_FIN, "4", 1, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < 1000; i++)
    {
      static const guint8 mask[4] = { 0x12, 0x34, 0x56, 0x78 };
      guint8 head[2] = { TEST_WS_CONTINUATION, 0x80 | 1 };
      guint8 byte = 'x' ^ mask[0];

      g_byte_array_append (batch, head, 2);
      g_byte_array_append (batch, mask, 4);
      g_byte_array_append (batch, &byte, 1);
    }
  /* In batches, until the server says something (its close) or the
   * memory passes the bound. */
  while (sent < TINY_FRAGMENTS)
    {
      guint kb;

      if (!test_ws_send_raw (ws, batch->data, batch->len, NULL))
        break;  /* the server closed the connection */
      sent += 1000;
      kb = rel_held_kb ();
      peak_kb = MAX (peak_kb, kb);
      if (kb > base_kb + FRAGMENT_RSS_BOUND_KB || test_ws_wait_readable (ws, 0))
        break;
    }
  /* What was sent is in the server's hands: watch its memory until its
   * answer comes. */
  {
    gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;

    do
      peak_kb = MAX (peak_kb, rel_held_kb ());
    while (peak_kb <= base_kb + FRAGMENT_RSS_BOUND_KB && !test_ws_wait_readable (ws, 20) &&
           g_get_monotonic_time () < deadline);
  }
  g_test_message ("%u 1-byte fragments sent; %s %u KiB before, peak %u KiB (+%u KiB, bound %u KiB)",
                  sent, REL_HELD_WHAT, base_kb, peak_kb, peak_kb - MIN (peak_kb, base_kb),
                  FRAGMENT_RSS_BOUND_KB);
  g_assert_cmpuint (peak_kb, <=, base_kb + FRAGMENT_RSS_BOUND_KB);
  code = test_ws_read_close (ws, REL_WAIT_MS, NULL);
  g_assert_cmpint (code, ==, 1009);
  g_assert_cmpint (rel_server_wait_reason (f->rs, sid, REL_WAIT_MS), ==,
                   ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);

  /* Sane fragmentation: 1000 fragments of 1000 bytes (the message is
   * max-payload, less the packet type), a ping among them. */
  sane = test_ws_connect (f->port, target, NULL, 0, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&open, test_ws_frame_free);
  open = test_ws_read_frame (sane, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  piece = g_strnfill (1000, 'y');
  g_assert_true (test_ws_send_frame (sane, TEST_WS_TEXT, TEST_WS_SEND_NOT_FIN, "4", 1, &error));
  for (guint i = 0; i < 1000; i++)
    {
      gsize length = i == 999 ? 999 : 1000;

      g_assert_true (test_ws_send_frame (sane, TEST_WS_CONTINUATION,
                                         i == 999 ? TEST_WS_SEND_DEFAULT : TEST_WS_SEND_NOT_FIN,
                                         piece, length, &error));
      if (i == 500)
        g_assert_true (test_ws_send_frame (sane, TEST_WS_PING, TEST_WS_SEND_DEFAULT, "p", 1, &error));
    }
  g_assert_no_error (error);
  for (;;)
    {
      g_autoptr(TestWsFrame) frame = test_ws_read_frame (sane, REL_WAIT_MS, &error);

      g_assert_no_error (error);
      if (frame->opcode == TEST_WS_TEXT)
        {
          gsize length = 0;
          const char *text = g_bytes_get_data (frame->payload, &length);

          if (length > 0 && text[0] == '2')
            continue;  /* a heartbeat ping */
          g_assert_cmpuint (length, ==, 1000000);
          g_assert_cmpint (text[0], ==, '4');
          g_assert_cmpint (text[length - 1], ==, 'y');
          break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Send callbacks                                                       */
/* ------------------------------------------------------------------ */

typedef struct
{
  int flushed;      /* (atomic) callbacks that said TRUE */
  int not_flushed;  /* (atomic) ... FALSE */
} FlushCount;

static void
count_flush_cb (EngineIOSocket *socket,
                gboolean        flushed,
                gpointer        user_data)
{
  FlushCount *count = user_data;

  g_atomic_int_inc (flushed ? &count->flushed : &count->not_flushed);
}

#define HONEST_MESSAGES 400
#define HONEST_SIZE 10000

static void
test_flush_callbacks_stalled (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(TestWsFrame) open = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autofree char *sid = NULL;
  g_autofree char *text = g_strnfill (HONEST_SIZE, 'h');
  FlushCount count = { 0, 0 };
  guint received = 0;
  gint64 deadline;

  g_test_summary ("Over WebSocket a send callback says TRUE only for a message the socket "
                  "took whole: a client that does not read is closed while messages are still "
                  "in the server's buffers; those are reported FALSE, and no more "
                  "messages are reported delivered than the client then reads");

  ws = test_ws_connect (f->port, target, NULL, 4096, NULL, &error);
  g_assert_no_error (error);
  open = test_ws_read_frame (ws, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  {
    g_autofree char *json = test_ws_frame_dup_text (open);
    g_autoptr(TestOpenPacket) packet = test_open_packet_parse (json + 1, &error);
    g_assert_no_error (error);
    sid = g_strdup (packet->sid);
  }
  socket = engine_io_server_lookup_socket (f->rs->lb.server, sid);
  g_assert_nonnull (socket);

  /* 4 MB, more than the kernel's buffers take on loopback for a client
   * that does not read (and under send-queue-high-water). */
  for (guint i = 0; i < HONEST_MESSAGES; i++)
    {
      g_assert_true (engine_io_socket_send_text_full (socket, text, count_flush_cb, &count, NULL, &error));
      g_assert_no_error (error);
    }
  /* The close (“ping timeout”: the client does not answer pings either;
   * or the stall close, “transport error”), its close frame's deadline,
   * then every callback. */
  {
    gint reason = rel_server_wait_reason (f->rs, sid, REL_WAIT_MS);

    g_assert_true (reason == ENGINE_IO_CLOSE_REASON_PING_TIMEOUT ||
                   reason == ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
  }
  deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;
  while (g_atomic_int_get (&count.flushed) + g_atomic_int_get (&count.not_flushed) < HONEST_MESSAGES &&
         g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);

  /* Now read what reached the client. */
  for (;;)
    {
      g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, REL_WAIT_MS, NULL);

      if (frame == NULL || frame->opcode == TEST_WS_CLOSE)
        break;
      if (frame->opcode == TEST_WS_TEXT && g_bytes_get_size (frame->payload) == HONEST_SIZE + 1)
        received++;
    }
  g_test_message ("%u messages sent with a callback: %d said TRUE, %d FALSE; the client read %u",
                  HONEST_MESSAGES, g_atomic_int_get (&count.flushed),
                  g_atomic_int_get (&count.not_flushed), received);
  g_assert_cmpint (g_atomic_int_get (&count.flushed) + g_atomic_int_get (&count.not_flushed), ==,
                   HONEST_MESSAGES);
  g_assert_cmpuint ((guint) g_atomic_int_get (&count.flushed), <=, received);
  /* The stall left messages behind (else this case tests nothing). */
  g_assert_cmpint (g_atomic_int_get (&count.not_flushed), >, 0);
}

/* ------------------------------------------------------------------ */
/* Close handshake                                                      */
/* ------------------------------------------------------------------ */

static void
test_close_one_byte (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  const guint8 one = 0x03;

  g_test_summary ("A close frame with a 1-byte payload (no room for a status code) is a "
                  "protocol error: the server answers with close code 1002 (RFC 6455, 5.5.1 "
                  "and 7.4.1), not an empty close");

  ws = rel_ws_open (f->port, &sid, &error);
  g_assert_no_error (error);
  g_assert_true (test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, &one, 1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (test_ws_read_close (ws, REL_WAIT_MS, NULL), ==, 1002);
  g_assert_true (test_ws_wait_eof (ws, REL_WAIT_MS));
  g_assert_cmpint (rel_server_wait_reason (f->rs, sid, REL_WAIT_MS), >=, 0);
}

static gpointer
close_server_thread (gpointer data)
{
  engine_io_server_close (data);
  return NULL;
}

static void
test_shutdown_1001 (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  GThread *closer;

  g_test_summary ("A server shutting down closes its WebSockets with 1001 (going away, RFC "
                  "6455, 7.4.1), not 1000");

  ws = rel_ws_open (f->port, &sid, &error);
  g_assert_no_error (error);
  g_assert_true (rel_ws_echo (ws, "hello", REL_WAIT_MS, &error));
  closer = g_thread_new ("closer", close_server_thread, f->rs->lb.server);
  g_assert_cmpint (rel_ws_wait_server_close (ws, REL_WAIT_MS), ==, 1001);
  g_thread_join (closer);
  g_assert_cmpint (rel_server_wait_reason (f->rs, sid, REL_WAIT_MS), ==,
                   ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN);
}

/* ------------------------------------------------------------------ */
/* Upgrades                                                             */
/* ------------------------------------------------------------------ */

static void
test_pipelined_probe (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  g_autoptr(GString) request = g_string_new (NULL);
  g_autofree char *target = NULL;
  g_autofree char *key = test_ws_make_key ();
  g_autofree char *pong = NULL;

  g_test_summary ("A `2probe` frame sent in the same segment as the upgrade request (bytes "
                  "libmicrohttpd read past the request) is answered at once, not when the "
                  "client next writes");

  poll = rel_poll_open (f->port, &error);
  g_assert_no_error (error);
  target = test_eio_target (4, "websocket", poll->sid);
  append_frame (frame, TEST_WS_TEXT, "2probe", 6);
  g_string_append_printf (request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n",
                          target, f->port, key);
  /* The masked frame has no NUL byte (checked): it travels in the string. */
  g_assert_null (memchr (frame->data, 0, frame->len));
  g_string_append_len (request, (const char *) frame->data, frame->len);

  ws = test_ws_connect_raw (f->port, request->str, key, NULL, &error);
  g_assert_no_error (error);
  /* Well within upgrade-timeout (10 s): before the fix nothing came. */
  pong = test_ws_read_text (ws, 3000);
  g_assert_cmpstr (pong, ==, "3probe");
  g_assert_true (rel_ws_send (ws, "5", &error));
  g_assert_true (rel_ws_echo (ws, "upgraded", REL_WAIT_MS, &error));
  g_assert_no_error (error);
}

static void
test_probe_timeout_close_frame (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;

  g_test_summary ("A probe WebSocket that never sends `5` gets a close frame at the upgrade "
                  "timeout (not a bare TCP close); polling goes on");

  poll = rel_poll_open (f->port, &error);
  g_assert_no_error (error);
  ws = test_eio_probe (f->port, 4, poll->sid);
  g_assert_nonnull (ws);
  /* -2 would be EOF without a close frame. */
  g_assert_cmpint (rel_ws_wait_server_close (ws, REL_WAIT_MS), >=, -1);
  g_assert_true (rel_poll_echo (poll, "still polling", REL_WAIT_MS, &error));
  g_assert_no_error (error);
}

static void
test_probe_session_end_close_frame (Fixture       *f,
                                    gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;

  g_test_summary ("A probe WebSocket whose session ends (the client's close packet over "
                  "polling) gets a close frame, not a bare TCP close");

  poll = rel_poll_open (f->port, &error);
  g_assert_no_error (error);
  sid = g_strdup (poll->sid);
  ws = test_eio_probe (f->port, 4, poll->sid);
  g_assert_nonnull (ws);
  g_assert_true (rel_poll_post (poll, "1", &error));
  g_assert_no_error (error);
  g_assert_cmpint (rel_server_wait_reason (f->rs, sid, REL_WAIT_MS), ==,
                   ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
  g_assert_cmpint (rel_ws_wait_server_close (ws, REL_WAIT_MS), >=, -1);
}

static void
test_second_websocket (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) probe = NULL;
  g_autofree char *target = NULL;

  g_test_summary ("A second WebSocket for a session that is upgrading or has upgraded is "
                  "answered 101 and then closed with a close frame without a status code, as "
                  "the reference does (not HTTP 400); the first WebSocket goes on");

  poll = rel_poll_open (f->port, &error);
  g_assert_no_error (error);
  target = test_eio_target (4, "websocket", poll->sid);
  probe = test_eio_probe (f->port, 4, poll->sid);
  g_assert_nonnull (probe);

  for (guint round = 0; round < 2; round++)
    {
      g_autoptr(TestWs) second = test_ws_connect (f->port, target, NULL, 0, NULL, &error);

      g_assert_no_error (error);
      g_assert_nonnull (second);
      g_assert_cmpint (rel_ws_wait_server_close (second, REL_WAIT_MS), ==, -1);

      if (round == 0)
        {
          /* While upgrading: the probe still completes the upgrade. */
          g_assert_true (rel_ws_send (probe, "5", &error));
          g_assert_no_error (error);
        }
      g_assert_true (rel_ws_echo (probe, "first", REL_WAIT_MS, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), <, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();
  g_main_context_default ();

#define ADD(path, func, upgrade_timeout) \
  g_test_add ("/reliability/ws-abuse/" path, Fixture, GUINT_TO_POINTER (upgrade_timeout), \
              fixture_setup, func, fixture_teardown)
  ADD ("ping-flood", test_ping_flood, 0);
  ADD ("stalled-reader", test_stalled_reader, 0);
  ADD ("fragments/tiny", test_tiny_fragments, 0);
  ADD ("flush-callbacks/stalled", test_flush_callbacks_stalled, 0);
  ADD ("close/one-byte-payload", test_close_one_byte, 0);
  ADD ("close/shutdown-1001", test_shutdown_1001, 0);
  ADD ("upgrade/pipelined-probe", test_pipelined_probe, 0);
  ADD ("upgrade/probe-timeout-close-frame", test_probe_timeout_close_frame, 500);
  ADD ("upgrade/probe-session-end-close-frame", test_probe_session_end_close_frame, 0);
  ADD ("upgrade/second-websocket", test_second_websocket, 0);
#undef ADD

  return g_test_run ();
}
