/* test-http-abuse.c: the libmicrohttpd request path against clients that
 * go away in the middle of a waiting poll, and requests no honest client
 * sends (issue 12): bodies framed two ways, encoded NULs in the query, a
 * chunked body over max-payload; and the configuration and listen errors
 * of the same layer.
 *
 * The heartbeat is long (20 s + 20 s) so that a session closing within a
 * few seconds was closed by what the test did, not by the heartbeat.
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "relutil.h"

#define PING_INTERVAL_MS 20000
#define PING_TIMEOUT_MS 20000
#define MAX_PAYLOAD 1000
/* Seconds: long, so that a connection closed within a few seconds was
 * closed on purpose, not for being idle. */
#define CONNECTION_TIMEOUT_S 30
/* What "promptly" means here: far below the heartbeat (40 s) and the
 * connection timeout, generous for a loaded machine. */
#define PROMPT_MS (test_scaled_ms (8000))

typedef struct
{
  RelServer    *rs;
  guint         port;
  TestRecorder *recorder;  /* send callbacks; freed after the server */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->rs = rel_server_new ();
  g_object_set (f->rs->lb.server,
                "ping-interval", PING_INTERVAL_MS,
                "ping-timeout", PING_TIMEOUT_MS,
                "max-payload", (guint64) MAX_PAYLOAD,
                "connection-timeout", CONNECTION_TIMEOUT_S,
                NULL);
  g_assert_true (rel_server_listen (f->rs));
  f->port = f->rs->lb.port;
  f->recorder = test_recorder_new ();
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_assert_cmpuint (rel_server_repeated (f->rs), ==, 0);
  g_clear_pointer (&f->rs, rel_server_free);
  g_clear_pointer (&f->recorder, test_recorder_free);
  test_log_check ();
}

static RelPoll *
open_polling (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  RelPoll *poll = rel_poll_open (f->port, &error);

  g_assert_no_error (error);
  g_assert_true (rel_poll_echo (poll, "hello", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  return poll;
}

static char *
reason_name (gint reason)
{
  return g_strdup (reason < 0 ? "(no close)" : engine_io_close_reason_to_string (reason));
}

/* ------------------------------------------------------------------ */
/* A waiting poll whose client goes away                                */
/* ------------------------------------------------------------------ */

static void
flush_cb (EngineIOSocket *socket,
          gboolean        flushed,
          gpointer        user_data)
{
  test_recorder_add (user_data, "flushed=%d", flushed ? 1 : 0);
}

/* Sends GET polls on @poll's connection until one waits (the server has
 * nothing to answer it with), answering pings on the way. */
static void
start_waiting_poll (RelPoll *poll)
{
  g_autoptr(GError) error = NULL;

  /* Anything queued (a ping) is taken now, so the next poll waits. */
  g_assert_true (rel_poll_send_get (poll, &error));
  g_assert_no_error (error);
  while (test_http_wait_readable (poll->http, 200))
    {
      g_autoptr(TestResponse) response = test_http_receive (poll->http, REL_WAIT_MS, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (response->status, ==, 200);
      g_assert_true (rel_poll_send_get (poll, &error));
      g_assert_no_error (error);
    }
}

static void
test_poll_gone_idle (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *name = NULL;
  gint64 start;
  gint reason;

  g_test_summary ("A client closes the connection of its waiting GET poll (FIN) and sends "
                  "nothing more: the session closes with “transport close” within seconds, "
                  "as the reference does, not after the heartbeat (40 s here)");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  start_waiting_poll (poll);
  start = g_get_monotonic_time ();
  test_http_disconnect (poll->http);

  reason = rel_server_wait_reason (f->rs, sid, PROMPT_MS);
  name = reason_name (reason);
  g_test_message ("closed with “%s” after %.2f s", name, (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpstr (name, ==, "transport close");
}

static void
test_poll_gone_send (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  TestRecorder *recorder = f->recorder;
  g_autoptr(GError) error = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *name = NULL;
  gboolean sent;
  gint64 start;
  gint reason;

  g_test_summary ("A client closes the connection of its waiting GET poll (FIN) and the "
                  "server sends a message right after: the message is not written into the "
                  "dead connection and reported flushed; its send callback says FALSE (or the "
                  "send fails, the session being closed already), and the session closes with "
                  "“transport close” within seconds");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  socket = engine_io_server_lookup_socket (f->rs->lb.server, sid);
  g_assert_nonnull (socket);
  start_waiting_poll (poll);
  start = g_get_monotonic_time ();
  test_http_disconnect (poll->http);

  sent = engine_io_socket_send_text_full (socket, "into the void", flush_cb,
                                          recorder, NULL, &error);
  if (sent)
    {
      g_assert_no_error (error);
      g_assert_true (test_recorder_wait_count (recorder, "flushed=", 1, PROMPT_MS));
      g_assert_cmpint (test_recorder_index (recorder, "flushed=0"), ==, 0);
    }
  else
    {
      /* The server saw the client go before the send: not sent, and said so. */
      g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_CLOSED);
      g_test_message ("the session was closed before the send");
    }

  reason = rel_server_wait_reason (f->rs, sid, PROMPT_MS);
  name = reason_name (reason);
  g_test_message ("closed with “%s” after %.2f s", name, (g_get_monotonic_time () - start) / 1e6);
  g_assert_cmpstr (name, ==, "transport close");
  /* One callback per send, never a second one. */
  g_assert_cmpuint (test_recorder_count (recorder, "flushed="), ==, sent ? 1 : 0);
}

static void
test_poll_delivered (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  TestRecorder *recorder = f->recorder;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestResponse) response = NULL;

  g_test_summary ("The other side of the flush callback: a message sent while a poll waits "
                  "on a live connection is written, read by the client, and its send callback "
                  "says TRUE; the session stays open");

  poll = open_polling (f);
  socket = engine_io_server_lookup_socket (f->rs->lb.server, poll->sid);
  g_assert_nonnull (socket);
  start_waiting_poll (poll);
  g_assert_true (engine_io_socket_send_text_full (socket, "delivered", flush_cb, recorder, NULL, &error));
  g_assert_no_error (error);
  response = test_http_receive (poll->http, REL_WAIT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (response->status, ==, 200);
  g_assert_true (test_response_body_equal (response, TEST_S ("4delivered")));
  g_assert_true (test_recorder_wait (recorder, "flushed=1", REL_WAIT_MS));
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), ==, -1);
  g_assert_true (rel_poll_echo (poll, "still open", REL_WAIT_MS, &error));
  g_assert_no_error (error);
}

static void
test_poll_gone_before_answer (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(EngineIOSocket) socket = NULL;
  TestRecorder *recorder = f->recorder;
  g_autoptr(GError) error = NULL;
  g_autofree char *sid = NULL;
  g_autofree char *request = NULL;
  g_autofree char *name = NULL;
  gint reason;
  int one = 1;
  int fd;

  g_test_summary ("A message is queued, and a client sends a GET poll and closes the "
                  "connection with it (FIN): the poll is not answered into the closed "
                  "connection with the message reported flushed; the send callback says "
                  "FALSE and the session closes with “transport close”, as for a waiting "
                  "poll whose client goes");

  poll = open_polling (f);
  sid = g_strdup (poll->sid);
  socket = engine_io_server_lookup_socket (f->rs->lb.server, sid);
  g_assert_nonnull (socket);
  /* No poll waits: the message stays queued for the next one. */
  g_assert_true (engine_io_socket_send_text_full (socket, "never read", flush_cb, recorder,
                                                  NULL, &error));
  g_assert_no_error (error);

  /* The request and the FIN in one segment (corked), so the server sees
   * both before it handles the request. */
  fd = rel_tcp_connect (f->port);
  g_assert_cmpint (fd, >=, 0);
  setsockopt (fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
  request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", poll->target);
  g_assert_true (rel_tcp_send (fd, request, strlen (request)));
  shutdown (fd, SHUT_WR);
  close (fd);

  g_assert_true (test_recorder_wait_count (recorder, "flushed=", 1, PROMPT_MS));
  g_assert_cmpint (test_recorder_index (recorder, "flushed=0"), ==, 0);
  reason = rel_server_wait_reason (f->rs, sid, PROMPT_MS);
  name = reason_name (reason);
  g_assert_cmpstr (name, ==, "transport close");
  g_assert_cmpuint (test_recorder_count (recorder, "flushed="), ==, 1);
}

/* What a client that half-closed and read on got (@got), against the send
 * callback: a send reported flushed that the client did not get is never
 * allowed; one not flushed leaves the session closed (the client must
 * learn it), whether or not the bytes got there. */
static void
check_delivery (Fixture    *f,
                const char *sid,
                const char *text,
                gboolean    sent,
                gboolean    delivered,
                GByteArray *got)
{
  gboolean flushed;

  if (sent)
    g_assert_true (test_recorder_wait_count (f->recorder, "flushed=", 1, PROMPT_MS));
  flushed = sent && test_recorder_index (f->recorder, "flushed=1") >= 0;
  g_test_message ("%s: the client %s it (answered %u); reported %s", text,
                  delivered ? "got" : "did not get", rel_http_status_of (got),
                  flushed ? "flushed" : "not flushed");
  if (!delivered)
    g_assert_false (flushed);
  if (!flushed)
    {
      g_autofree char *name = reason_name (rel_server_wait_reason (f->rs, sid, PROMPT_MS));

      g_assert_cmpstr (name, ==, "transport close");
    }
  test_recorder_clear (f->recorder);
}

static void
check_half_closed_delivery (Fixture    *f,
                            const char *sid,
                            const char *text,
                            gboolean    sent,
                            GByteArray *got)
{
  g_autofree char *payload = g_strdup_printf ("4%s", text);

  g_byte_array_append (got, (guint8 *) "", 1);
  check_delivery (f, sid, text, sent, strstr ((char *) got->data, payload) != NULL, got);
}

static void
test_poll_half_close_reading (Fixture       *f,
                              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  int one = 1;

  g_test_summary ("A legal client half-closes (shutdown(SHUT_WR)) after a whole request and "
                  "reads on: a waiting poll then a send, a poll arriving with its FIN while "
                  "a message is queued, a POST with its FIN. No send is reported flushed that "
                  "the client did not get, and none is lost without its session ending");

  /* A waiting poll, the FIN, then a send. */
  {
    g_autoptr(RelPoll) rp = open_polling (f);
    g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (f->rs->lb.server, rp->sid);
    g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", rp->target);
    g_autoptr(GByteArray) got = g_byte_array_new ();
    struct pollfd p;
    gboolean sent;
    int fd = rel_tcp_connect (f->port);

    g_assert_nonnull (socket);
    g_assert_cmpint (fd, >=, 0);
    g_assert_true (rel_tcp_send (fd, request, strlen (request)));
    p = (struct pollfd) { .fd = fd, .events = POLLIN };
    g_assert_cmpint (poll (&p, 1, (int) test_scaled_ms (200)), ==, 0);  /* it waits */
    shutdown (fd, SHUT_WR);
    sent = engine_io_socket_send_text_full (socket, "late", flush_cb, f->recorder, NULL, NULL);
    g_assert_true (rel_tcp_wait_closed (fd, PROMPT_MS, got));
    close (fd);
    check_half_closed_delivery (f, rp->sid, "late", sent, got);
  }
  /* A message queued, then a poll with its FIN in one segment. */
  {
    g_autoptr(RelPoll) rp = open_polling (f);
    g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (f->rs->lb.server, rp->sid);
    g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", rp->target);
    g_autoptr(GByteArray) got = g_byte_array_new ();
    int fd = rel_tcp_connect (f->port);

    g_assert_nonnull (socket);
    g_assert_cmpint (fd, >=, 0);
    g_assert_true (engine_io_socket_send_text_full (socket, "queued", flush_cb, f->recorder, NULL, &error));
    g_assert_no_error (error);
    setsockopt (fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    g_assert_true (rel_tcp_send (fd, request, strlen (request)));
    shutdown (fd, SHUT_WR);
    g_assert_true (rel_tcp_wait_closed (fd, PROMPT_MS, got));
    close (fd);
    check_half_closed_delivery (f, rp->sid, "queued", TRUE, got);
  }
  /* A large message being written when the FIN comes (the client reads
   * slowly, its receive buffer small): it is reported flushed only if
   * the client gets all of it. */
  {
    g_autoptr(RelPoll) rp = open_polling (f);
    g_autoptr(EngineIOSocket) session = engine_io_server_lookup_socket (f->rs->lb.server, rp->sid);
    g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", rp->target);
    g_autofree char *big = g_strnfill (4 * 1024 * 1024, 'b');
    g_autoptr(GByteArray) got = g_byte_array_new ();
    g_autofree char *payload = NULL;
    struct pollfd p;
    int rcvbuf = 4096;
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons ((guint16) f->port),
                                   .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };

    g_assert_nonnull (session);
    setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    g_assert_cmpint (connect (fd, (struct sockaddr *) &address, sizeof address), ==, 0);
    g_assert_true (engine_io_socket_send_text_full (session, big, flush_cb, f->recorder, NULL, &error));
    g_assert_no_error (error);
    g_assert_true (rel_tcp_send (fd, request, strlen (request)));
    p = (struct pollfd) { .fd = fd, .events = POLLIN };
    g_assert_cmpint (poll (&p, 1, (int) PROMPT_MS), ==, 1);  /* the answer has begun */
    shutdown (fd, SHUT_WR);
    g_usleep (100 * 1000);  /* the server meets the FIN while it writes */
    g_assert_true (rel_tcp_wait_closed (fd, PROMPT_MS, got));
    close (fd);
    g_byte_array_append (got, (guint8 *) "", 1);
    payload = g_strconcat ("4", big, NULL);
    check_delivery (f, rp->sid, "big", TRUE, g_str_has_suffix ((char *) got->data, payload), got);
  }
  /* A POST with its FIN: its message is echoed (RelServer), to be polled
   * after, or the session ends. */
  {
    g_autoptr(RelPoll) rp = open_polling (f);
    g_autofree char *request = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                "Content-Length: 7\r\n\r\n4posted", rp->target);
    g_autoptr(GByteArray) got = g_byte_array_new ();
    int fd = rel_tcp_connect (f->port);
    gboolean closed;

    g_assert_cmpint (fd, >=, 0);
    setsockopt (fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    g_assert_true (rel_tcp_send (fd, request, strlen (request)));
    shutdown (fd, SHUT_WR);
    /* Answered, then closed (libmicrohttpd, which met the FIN while the
     * request was suspended, kept the connection until connection-timeout
     * in about 6 runs of 10 before the answer said `Connection: close`). */
    closed = rel_tcp_wait_closed (fd, PROMPT_MS, got);
    close (fd);
    g_byte_array_append (got, (guint8 *) "", 1);
    g_test_message ("POST with its FIN: answered %u, %s", rel_http_status_of (got),
                    closed ? "closed" : "left open");
    g_assert_cmpuint (rel_http_status_of (got), ==, 200);
    g_assert_true (g_str_has_suffix ((char *) got->data, "\r\n\r\nok"));
    g_assert_true (closed);
    if (rel_server_reason (f->rs, rp->sid) < 0)
      {
        g_autofree char *next = rel_poll_next (rp, REL_WAIT_MS, &error);

        g_assert_no_error (error);
        g_assert_cmpstr (next, ==, "4posted");
      }
  }
}

/* ------------------------------------------------------------------ */
/* A chunked POST over max-payload                                      */
/* ------------------------------------------------------------------ */

static void
test_chunked_too_large (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestHttp) http = NULL;
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) body = g_string_new ("4");
  g_autofree char *chunked = NULL;
  const char *headers[] = { "Transfer-Encoding", "chunked", NULL };

  g_test_summary ("A chunked POST (no Content-Length) over max-payload is answered 413 and "
                  "the session goes on: the client's next POST is taken (200 ok), not "
                  "refused as overlapping the refused one (which closed the session)");

  poll = open_polling (f);
  while (body->len <= MAX_PAYLOAD * 2)
    g_string_append_c (body, 'x');
  chunked = g_strdup_printf ("%zx\r\n%s\r\n0\r\n\r\n", body->len, body->str);
  http = test_http_new (f->port);
  response = test_http_request (http, "POST", poll->target, headers, chunked, strlen (chunked),
                                REL_WAIT_MS, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (response->status, ==, 413);

  /* POSTs the message, expects 200 ok and its echo. */
  g_assert_true (rel_poll_echo (poll, "after the 413", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), ==, -1);
}

#define ENDLESS_TOTAL (32 * 1024 * 1024)

static void
test_chunked_endless (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GString) chunk = g_string_new (NULL);
  g_autofree char *head = NULL;
  struct timeval timeout = { .tv_sec = 5 };
  gsize sent = 0;
  int fd;

  g_test_summary ("A chunked POST that goes on and on past max-payload: the server does not "
                  "read and drop it for as long as the client sends (it swallowed 66 GB in "
                  "30 s before); it closes the connection a little past max-payload, and the "
                  "session goes on");

  poll = open_polling (f);
  fd = rel_tcp_connect (f->port);
  g_assert_cmpint (fd, >=, 0);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  head = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                          poll->target);
  g_assert_true (rel_tcp_send (fd, head, strlen (head)));
  g_string_append (chunk, "10000\r\n4");
  while (chunk->len < 7 + 0x10000)
    g_string_append_c (chunk, 'x');
  g_string_append (chunk, "\r\n");
  while (sent < ENDLESS_TOTAL && rel_tcp_send (fd, chunk->str, chunk->len))
    sent += chunk->len;
  g_test_message ("the server took %" G_GSIZE_FORMAT " bytes of the body", sent);
  g_assert_cmpuint (sent, <, ENDLESS_TOTAL);
  rel_tcp_reset (fd);

  {
    g_autoptr(GError) error = NULL;

    g_assert_true (rel_poll_echo (poll, "after the endless body", REL_WAIT_MS, &error));
    g_assert_no_error (error);
  }
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), ==, -1);
}

/* ------------------------------------------------------------------ */
/* Request framing (RFC 9112 §6)                                        */
/* ------------------------------------------------------------------ */

typedef struct
{
  const char *name;
  const char *headers;  /* framing headers, each ending in \r\n */
  const char *body;
  guint       status;   /* expected */
} FramingCase;

static const FramingCase framing_cases[] = {
  { "two-lengths", "Content-Length: 6\r\nContent-Length: 2\r\n", "4hello", 400 },
  { "length-and-chunked", "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
    "6\r\n4hello\r\n0\r\n\r\n", 400 },
  { "encoding-not-chunked", "Transfer-Encoding: gzip\r\n", "4hello", 400 },
  { "encoding-chunked-then-gzip", "Transfer-Encoding: chunked, gzip\r\n", "4hello", 400 },
  /* Between 2^63 and 2^64 - 1: libmicrohttpd reads it, the engine refuses
   * it before any body (max-payload). */
  { "length-over-2^63", "Content-Length: 9223372036854775809\r\n", "4hello", 413 },
};

static void
test_framing (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("POSTs whose body is framed two ways (request smuggling) or in a way the "
                  "server cannot read: each is answered at once (400; 413 for a length over "
                  "2^63) and its connection closed, and the session it named is unaffected "
                  "(no message delivered, still open)");

  poll = open_polling (f);
  for (guint i = 0; i < G_N_ELEMENTS (framing_cases); i++)
    {
      const FramingCase *c = &framing_cases[i];
      g_autoptr(GByteArray) received = g_byte_array_new ();
      g_autofree char *request = g_strdup_printf ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n%s",
                                                  poll->target, f->port, c->headers, c->body);
      gint64 start = g_get_monotonic_time ();
      gboolean closed;
      int fd = rel_tcp_connect (f->port);

      g_assert_cmpint (fd, >=, 0);
      g_assert_true (rel_tcp_send (fd, request, strlen (request)));
      closed = rel_tcp_wait_closed (fd, PROMPT_MS, received);
      close (fd);
      g_test_message ("%s: status %u, %s after %.2f s", c->name, rel_http_status_of (received),
                      closed ? "closed" : "still open", (g_get_monotonic_time () - start) / 1e6);
      if (rel_http_status_of (received) != c->status)
        g_test_fail_printf ("%s: answered %u, expected %u", c->name,
                            rel_http_status_of (received), c->status);
      if (!closed)
        g_test_fail_printf ("%s: the connection was not closed after the answer", c->name);
    }

  /* Nothing reached the session: its next poll carries no "hello". */
  g_assert_true (rel_poll_echo (poll, "after the framing errors", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), ==, -1);
}

/* ------------------------------------------------------------------ */
/* Encoded NULs in the query                                            */
/* ------------------------------------------------------------------ */

static void
assert_bad_request (TestResponse *response,
                    const char   *what)
{
  g_autofree char *text = NULL;

  if (response == NULL)
    {
      g_test_fail_printf ("%s: no answer", what);
      return;
    }
  text = test_response_text (response);
  g_test_message ("%s: %u %s", what, response->status, text);
  if (response->status != 400 || strstr (text, "\"code\":3") == NULL)
    g_test_fail_printf ("%s: answered %u “%s”, expected 400 with code 3", what,
                        response->status, text);
}

static void
test_query_nul (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  const char *handshakes[] = {
    "/engine.io/?EIO=4%00x&transport=polling",
    "/engine.io/?EIO=4&transport=polling%00junk",
    "/engine.io/?EIO=4&transport=polling&j%00=0",
  };

  g_test_summary ("Query values (and names) with an encoded NUL, which would be read cut "
                  "short (`sid=<sid>%00junk` as <sid>, `EIO=4%00x` as 4): refused with 400, "
                  "code 3 (Bad request); the session whose sid was used is unaffected");

  poll = open_polling (f);
  for (guint i = 0; i < G_N_ELEMENTS (handshakes); i++)
    {
      g_autoptr(TestHttp) http = test_http_new (f->port);
      g_autoptr(TestResponse) response = test_http_request (http, "GET", handshakes[i], NULL, NULL,
                                                            -1, PROMPT_MS, NULL);
      assert_bad_request (response, handshakes[i]);
    }

  {
    g_autoptr(TestHttp) http = test_http_new (f->port);
    g_autofree char *target = g_strdup_printf ("%s%%00junk", poll->target);
    g_autoptr(TestResponse) get = test_http_request (http, "GET", target, NULL, NULL, -1,
                                                     PROMPT_MS, NULL);
    g_autoptr(TestResponse) post = NULL;

    assert_bad_request (get, "GET with sid=<sid>%00junk");
    post = test_http_request (http, "POST", target, NULL, TEST_S ("4smuggled"), PROMPT_MS, NULL);
    assert_bad_request (post, "POST with sid=<sid>%00junk");
  }

  g_assert_true (rel_poll_echo (poll, "after the NULs", REL_WAIT_MS, &error));
  g_assert_no_error (error);
  g_assert_cmpint (rel_server_reason (f->rs, poll->sid), ==, -1);
}

/* ------------------------------------------------------------------ */
/* Configuration and listen errors                                      */
/* ------------------------------------------------------------------ */

static void
test_metrics_path_is_path (void)
{
  const char *paths[] = { "/engine.io/", "/engine.io" };

  g_test_summary ("metrics-path equal to path (with or without its trailing slash) would "
                  "take the engine's path over: listen() refuses it with "
                  "ENGINE_IO_ERROR_INVALID_ARGUMENT");

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr(EngineIOServer) server = test_server_new ();
      g_autoptr(GError) error = NULL;

      g_object_set (server, "path", "/engine.io/", "metrics-path", paths[i], NULL);
      g_assert_false (engine_io_server_listen (server, "127.0.0.1", 0, &error));
      g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
      g_test_message ("metrics-path %s: %s", paths[i], error->message);
      engine_io_server_close (server);
    }

  /* Another path still works. */
  {
    g_autoptr(EngineIOServer) server = test_server_new ();

    g_object_set (server, "metrics-path", "/metrics", NULL);
    g_assert_cmpuint (test_server_listen (server), !=, 0);
    engine_io_server_close (server);
  }
}

static void
test_listen_error_errno (void)
{
  g_autoptr(EngineIOServer) first = test_server_new ();
  g_autoptr(EngineIOServer) second = test_server_new ();
  g_autoptr(GError) error = NULL;
  gboolean debug = g_log_get_debug_enabled ();
  guint port;

  g_test_summary ("Listening on a port in use fails with the reason (“Address already in "
                  "use”), also when debug messages are on (G_MESSAGES_DEBUG=all): the "
                  "libmicrohttpd log writer must not change errno before it is read");

  port = test_server_listen (first);
  g_assert_cmpuint (port, !=, 0);
  g_log_set_debug_enabled (TRUE);
  g_assert_false (engine_io_server_listen (second, "127.0.0.1", port, &error));
  g_log_set_debug_enabled (debug);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_LISTEN);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, g_strerror (EADDRINUSE)));
  engine_io_server_close (second);
  engine_io_server_close (first);
}

/* The first line @process writes on its stdout ("listening on URL"), or
 * NULL. The pipe stays open: what the process writes later fills it
 * rather than killing it with SIGPIPE. */
static char *
read_first_line (GSubprocess *process)
{
  g_autoptr(GDataInputStream) in =
    g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  g_autoptr(GError) error = NULL;
  char *line;

  g_filter_input_stream_set_close_base_stream (G_FILTER_INPUT_STREAM (in), FALSE);
  line = g_data_input_stream_read_line_utf8 (in, NULL, NULL, &error);
  g_assert_no_error (error);
  return line;
}

typedef struct
{
  gboolean  done;
  GBytes   *output;   /* owned */
  GError   *error;    /* owned */
} Communication;

static void
communicate_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Communication *comm = user_data;

  g_subprocess_communicate_finish (G_SUBPROCESS (source), result,
                                   &comm->output, NULL, &comm->error);
  comm->done = TRUE;
}

/* Reads everything @process writes on its stdout pipe until EOF, and
 * waits for it to end, for up to @timeout_ms; then kills it. Whether it
 * ended in time (g_subprocess_get_if_exited() tells how); @output: what
 * it wrote, as text. */
static gboolean
read_until_exit (GSubprocess  *process,
                 guint         timeout_ms,
                 char        **output)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  Communication comm = { FALSE, NULL, NULL };
  gboolean in_time;

  g_main_context_push_thread_default (context);
  g_subprocess_communicate_async (process, NULL, NULL, communicate_cb, &comm);
  while (!comm.done && g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (context, FALSE);
      if (!comm.done)
        g_usleep (10 * 1000);
    }
  in_time = comm.done;
  if (!comm.done)
    {
      g_subprocess_force_exit (process);
      while (!comm.done)
        g_main_context_iteration (context, TRUE);
    }
  g_main_context_pop_thread_default (context);
  g_assert_no_error (comm.error);
  g_clear_error (&comm.error);
  *output = comm.output != NULL
    ? g_strndup (g_bytes_get_data (comm.output, NULL), g_bytes_get_size (comm.output))
    : g_strdup ("");
  g_clear_pointer (&comm.output, g_bytes_unref);
  return in_time;
}

static void
wait_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  gboolean *done = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *done = TRUE;
}

/* Waits up to @timeout_ms for @process to exit; whether it did. */
static gboolean
wait_exit (GSubprocess *process,
           guint        timeout_ms)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean done = FALSE;

  g_main_context_push_thread_default (context);
  g_subprocess_wait_async (process, NULL, wait_cb, &done);
  while (!done && g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (context, FALSE);
      if (!done)
        g_usleep (10 * 1000);
    }
  if (!done)
    {
      g_subprocess_force_exit (process);
      while (!done)
        g_main_context_iteration (context, TRUE);
    }
  g_main_context_pop_thread_default (context);
  return g_get_monotonic_time () < deadline && g_subprocess_get_if_exited (process);
}

static void
test_chat_second_instance (void)
{
  const char *chat = g_getenv ("ENGINEIO_CHAT");
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) first = NULL;
  g_autoptr(GSubprocess) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *port = NULL;
  g_autofree char *output = NULL;
  g_autofree char *expected = NULL;
  g_auto(GStrv) lines = NULL;
  const char *error_line = NULL;
  const char *colon;
  gboolean ended;

  g_test_summary ("A second engineio-chat on the port of a running one fails to start with "
                  "a clear error instead of sharing the port (SO_REUSEPORT) and taking half "
                  "the connections: it exits with a non-zero status (not by a signal) and "
                  "says “engineio-chat: … Address already in use”, whatever it logs before "
                  "(a warning when the client bundle is missing, debug messages)");

  if (chat == NULL || !g_file_test (chat, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("ENGINEIO_CHAT is not set (the demo is not built)");
      return;
    }

  first = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                            &error, chat, "--port", "0", NULL);
  g_assert_no_error (error);
  line = read_first_line (first);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "listening on http://127.0.0.1:"));
  colon = strrchr (line, ':');
  port = g_strndup (colon + 1, strspn (colon + 1, "0123456789"));
  g_test_message ("first instance: %s", line);

  /* Its logs (stderr) with its stdout, and its debug messages on: the
   * error line comes after other lines here too, not only where the
   * client bundle is missing (a warning first). All of it is read to the
   * end: a reader that stopped early killed it with SIGPIPE. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  second = g_subprocess_launcher_spawn (launcher, &error, chat, "--port", port, NULL);
  g_assert_no_error (error);
  ended = read_until_exit (second, PROMPT_MS, &output);
  g_test_message ("second instance said: %s", output);
  if (!ended)
    g_test_fail_printf ("a second instance on port %s kept running", port);
  else if (!g_subprocess_get_if_exited (second))
    g_test_fail_printf ("a second instance on port %s was killed by signal %d",
                        port, g_subprocess_get_term_sig (second));
  else
    {
      g_assert_cmpint (g_subprocess_get_exit_status (second), !=, 0);
      /* Its error line: "engineio-chat: Cannot listen on …: <strerror>"
       * (a debug line of libmicrohttpd's says the reason too). */
      expected = g_strconcat (": ", g_strerror (EADDRINUSE), NULL);
      lines = g_strsplit (output, "\n", -1);
      for (guint i = 0; lines[i] != NULL && error_line == NULL; i++)
        if (g_str_has_prefix (lines[i], "engineio-chat: ") &&
            g_str_has_suffix (lines[i], expected))
          error_line = lines[i];
      if (error_line == NULL)
        g_test_fail_printf ("no “engineio-chat: …%s” line in its output", expected);
    }

  g_subprocess_send_signal (first, SIGTERM);
  if (!wait_exit (first, PROMPT_MS))
    g_test_message ("the first instance had to be killed");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  /* Debug messages (turned on by one case) go to stderr, not into the
   * TAP stream on stdout. */
  g_log_writer_default_set_use_stderr (TRUE);
  test_log_init ();
  g_main_context_default ();

#define ADD(path, func) \
  g_test_add ("/reliability/http-abuse/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("poll-gone/idle", test_poll_gone_idle);
  ADD ("poll-gone/send", test_poll_gone_send);
  ADD ("poll-gone/control-delivered", test_poll_delivered);
  ADD ("poll-gone/before-answer", test_poll_gone_before_answer);
  ADD ("poll-gone/half-close-reading", test_poll_half_close_reading);
  ADD ("post/chunked-too-large", test_chunked_too_large);
  ADD ("post/chunked-endless", test_chunked_endless);
  ADD ("framing", test_framing);
  ADD ("query-nul", test_query_nul);
#undef ADD
  g_test_add_func ("/reliability/http-abuse/config/metrics-path-is-path", test_metrics_path_is_path);
  g_test_add_func ("/reliability/http-abuse/listen/error-errno", test_listen_error_errno);
  g_test_add_func ("/reliability/http-abuse/chat/second-instance", test_chat_second_instance);

  return g_test_run ();
}
