/* test-tls-attack.c: the server's own TLS listener (tls-certificate)
 * attacked from the internet: TLS handshakes that never complete, garbage
 * instead of a ClientHello, WebSockets over TLS (libmicrohttpd's relay,
 * three descriptors each) whose client stops reading or goes away, a
 * ClientHello announced at 1 MiB and never finished, clients
 * offering only TLS 1.0 or 1.1; and a trusted-proxies entry in the
 * IPv4-mapped form. Against a real server over loopback, in both threading
 * modes (ENGINE_IO_TEST_LOOP_THREADS). The test CA is made with openssl
 * (test_tls_ca_make()).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relutil.h"
#include "testutil.h"
#include "wsutil.h"
#include "engineio/engineio.h"
#include "engineio-loop-private.h"

typedef struct
{
  TestLoopback    lb;                /* every session watched ("close <sid> ..."),
                                      * without recording its messages */
  guint64         idle_descriptors;  /* what the server counts with no client */
} Fixture;

static guint64
server_descriptors (EngineIOServer *server)
{
  g_autoptr(EngineIOMetrics) metrics = engine_io_server_get_metrics (server);

  return engine_io_metrics_get_descriptors (metrics);
}

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  if (text != NULL && g_str_has_prefix (text, "flood "))
    {
      /* "flood N": N messages of 16 KiB */
      guint n = (guint) g_ascii_strtoull (text + 6, NULL, 10);
      g_autofree char *big = g_strnfill (16 * 1024, 'f');

      for (guint i = 0; i < n; i++)
        engine_io_socket_send_text (socket, big, NULL);
    }
  else if (text != NULL)
    engine_io_socket_send_text (socket, text, NULL);
}

static void
on_connection (TestLoopback   *loopback,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  g_signal_connect (socket, "message", G_CALLBACK (on_message), NULL);
}

/* @data: connection-timeout (s), or 0 for the default */
static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GTlsCertificate) certificate = NULL;
  g_autoptr(GError) error = NULL;

  test_loopback_init (&f->lb);
  f->lb.watch = TEST_WATCH_NO_MESSAGE;
  f->lb.on_connection = on_connection;
  certificate = test_tls_certificate_new (&error);
  g_assert_no_error (error);
  g_object_set (f->lb.server, "tls-certificate", certificate,
                "ping-interval", 500, "ping-timeout", 500, NULL);
  if (GPOINTER_TO_UINT (data) != 0)
    g_object_set (f->lb.server, "connection-timeout", GPOINTER_TO_UINT (data), NULL);
  test_loopback_listen (&f->lb);
  f->idle_descriptors = server_descriptors (f->lb.server);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (&f->lb);
  test_log_check ();
}

/* Waits until the server counts @expected descriptors; the last count. */
static guint64
wait_descriptors (EngineIOServer *server,
                  guint64         expected,
                  guint           timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  guint64 now;

  while ((now = server_descriptors (server)) != expected && g_get_monotonic_time () < deadline)
    g_usleep (20000);
  return now;
}

/* ------------------------------------------------------------------ */

static void
test_handshake_slowloris (Fixture       *f,
                          gconstpointer  data)
{
  int silent[8], dripping[8];
  /* A TLS handshake record header announcing 512 bytes, then one byte of a
   * ClientHello at a time. */
  const guint8 record[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };
  gint64 start = g_get_monotonic_time ();
  gint64 deadline;
  guint open;

  g_test_summary ("TLS handshakes that never complete (silent, or dripping a ClientHello a "
                  "byte at a time) are closed after connection-timeout, and the server "
                  "gives back their descriptors");
  test_require (f->lb.port != 0);
  for (guint i = 0; i < G_N_ELEMENTS (silent); i++)
    {
      silent[i] = rel_tcp_connect (f->lb.port);
      dripping[i] = rel_tcp_connect (f->lb.port);
      test_require (silent[i] >= 0 && dripping[i] >= 0);
      test_require (rel_tcp_send (dripping[i], record, 5));
    }
  /* connection-timeout 1 s: closed between 1 and 2.25 s (the watcher), or
   * a little later on a loaded machine. */
  deadline = start + (gint64) (3000 + TEST_TIMEOUT_MS) * 1000;
  do
    {
      open = 0;
      for (guint i = 0; i < G_N_ELEMENTS (silent); i++)
        {
          if (silent[i] >= 0 && rel_tcp_is_closed (silent[i]))
            {
              close (silent[i]);
              silent[i] = -1;
            }
          if (dripping[i] >= 0)
            {
              if (rel_tcp_is_closed (dripping[i]) || !rel_tcp_send (dripping[i], record + 5, 1))
                {
                  close (dripping[i]);
                  dripping[i] = -1;
                }
            }
          open += (silent[i] >= 0) + (dripping[i] >= 0);
        }
      if (open > 0)
        g_usleep (100 * 1000);
    }
  while (open > 0 && g_get_monotonic_time () < deadline);
  g_test_message ("all closed after %" G_GINT64_FORMAT " ms", (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpuint (open, ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (silent); i++)
    {
      if (silent[i] >= 0)
        close (silent[i]);
      if (dripping[i] >= 0)
        close (dripping[i]);
    }
  g_assert_cmpuint (wait_descriptors (f->lb.server, f->idle_descriptors, TEST_TIMEOUT_MS), ==,
                    f->idle_descriptors);
}

static void
test_garbage (Fixture       *f,
              gconstpointer  data)
{
  g_autofree guint8 *noise = g_malloc (64 * 1024);
  int plain, random;

  g_test_summary ("Plain HTTP and random bytes instead of a ClientHello: the connection is "
                  "closed at once, its descriptor given back");
  test_require (f->lb.port != 0);
  for (gsize i = 0; i < 64 * 1024; i++)
    noise[i] = (guint8) g_random_int ();
  noise[0] = 0x16;  /* a handshake record with a random length and body */
  plain = rel_tcp_connect (f->lb.port);
  random = rel_tcp_connect (f->lb.port);
  test_require (plain >= 0 && random >= 0);
  rel_tcp_send (plain, TEST_S ("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"));
  rel_tcp_send (random, noise, 64 * 1024);
  /* Well before connection-timeout (the default, 30 s). */
  g_assert_true (rel_tcp_wait_closed (plain, TEST_TIMEOUT_MS, NULL));
  g_assert_true (rel_tcp_wait_closed (random, TEST_TIMEOUT_MS, NULL));
  close (plain);
  close (random);
  g_assert_cmpuint (wait_descriptors (f->lb.server, f->idle_descriptors, TEST_TIMEOUT_MS), ==,
                    f->idle_descriptors);
}

/* The protocol `openssl s_client -@version` negotiates with the server
 * (security level 0: the client accepts anything), or NULL. */
static char *
negotiated_protocol (guint       port,
                     const char *version)
{
  g_autofree char *connect = g_strdup_printf ("127.0.0.1:%u", port);
  g_autofree char *flag = g_strdup_printf ("-%s", version);
  const char *argv[] = { "openssl", "s_client", "-connect", connect, flag,
                         "-cipher", "DEFAULT@SECLEVEL=0", NULL };
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  const char *line;

  /* stdin from /dev/null: it sends nothing and exits after the handshake */
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, &out, NULL, NULL, &error))
    {
      g_test_fail_printf ("openssl s_client: %s", error->message);
      return NULL;
    }
  /* "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384", or "New, (NONE), ..." */
  line = strstr (out, "\nNew, ");
  if (line == NULL || g_str_has_prefix (line, "\nNew, (NONE)"))
    return NULL;
  line += strlen ("\nNew, ");
  return g_strndup (line, strcspn (line, ","));
}

static void
test_old_versions (Fixture       *f,
                   gconstpointer  data)
{
  g_autofree char *v10 = NULL;
  g_autofree char *v11 = NULL;
  g_autofree char *v12 = NULL;
  g_autofree char *v13 = NULL;

  g_test_summary ("The TLS listener speaks TLS 1.2 and 1.3 only: a client offering only TLS "
                  "1.0 or 1.1 (deprecated, RFC 8996) gets no session");
  test_require (f->lb.port != 0);
  v12 = negotiated_protocol (f->lb.port, "tls1_2");
  v13 = negotiated_protocol (f->lb.port, "tls1_3");
  v10 = negotiated_protocol (f->lb.port, "tls1");
  v11 = negotiated_protocol (f->lb.port, "tls1_1");
  g_assert_cmpstr (v12, ==, "TLSv1.2");
  g_assert_cmpstr (v13, ==, "TLSv1.3");
  g_assert_null (v10);
  g_assert_null (v11);
  g_assert_cmpuint (wait_descriptors (f->lb.server, f->idle_descriptors, TEST_TIMEOUT_MS), ==,
                    f->idle_descriptors);
}

static void
test_huge_hello (Fixture       *f,
                 gconstpointer  data)
{
  enum { N = 64, BODY = 1024 * 1024 };
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autofree guint8 *zeros = g_malloc0 (16384);
  const guint8 header[4] = { 0x01, (guint8) (BODY >> 16), (guint8) (BODY >> 8), (guint8) BODY };
  guint before_kb, after_kb;
  int fds[N];
  guint open = 0;
  gint64 deadline;

  g_test_summary ("Connections that send most of a ClientHello announced at 1 MiB (in 16 KiB "
                  "records) and never finish it: each is closed once it has sent 128 KiB, "
                  "instead of GnuTLS buffering it all until connection-timeout");
  test_require (f->lb.port != 0);
  /* The handshake message header, then BODY - 1 bytes of it. */
  for (gsize sent = 0; sent < BODY + 3; )
    {
      gsize n = MIN (16384, BODY + 3 - sent);
      const guint8 record[5] = { 0x16, 0x03, 0x01, (guint8) (n >> 8), (guint8) n };

      g_byte_array_append (out, record, 5);
      if (sent == 0)
        {
          g_byte_array_append (out, header, 4);
          g_byte_array_append (out, zeros, n - 4);
        }
      else
        g_byte_array_append (out, zeros, n);
      sent += n;
    }
  before_kb = rel_held_kb ();
  deadline = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
  for (guint i = 0; i < N; i++)
    {
      fds[i] = rel_tcp_connect (f->lb.port);
      test_require (fds[i] >= 0);
      /* Fails part way once the server has closed. */
      rel_tcp_send (fds[i], out->data, out->len);
    }
  /* connection-timeout is the default 30 s. */
  for (guint i = 0; i < N; i++)
    {
      gint64 remaining = deadline - g_get_monotonic_time ();

      open += !rel_tcp_wait_closed (fds[i], (guint) CLAMP (remaining / 1000, 1, G_MAXINT), NULL);
    }
  /* What the server read of them is in its memory now (or was freed). */
  after_kb = rel_held_kb ();
  g_test_message ("%s %u kB before, %u kB after %u connections", REL_HELD_WHAT,
                  before_kb, after_kb, N);
  for (guint i = 0; i < N; i++)
    close (fds[i]);
  g_assert_cmpuint (open, ==, 0);
  /* 128 KiB each and GnuTLS's and libmicrohttpd's own: well under 1 MiB. */
  g_assert_cmpuint (after_kb, <, before_kb + N * 512);
  g_assert_cmpuint (wait_descriptors (f->lb.server, f->idle_descriptors, TEST_TIMEOUT_MS), ==,
                    f->idle_descriptors);
}

/* ------------------------------------------------------------------ */
/* WebSocket over TLS                                                   */

static gboolean
stream_write (GIOStream  *stream,
              const void *data,
              gsize       length)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_write_all (g_io_stream_get_output_stream (stream), data, length, NULL, NULL, &error);
  return error == NULL;
}

static gboolean
ws_write_text (GIOStream  *stream,
               const char *text)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();

  test_ws_append_frame (frame, TEST_WS_FIRST_BYTE (TRUE, 0, TEST_WS_TEXT), TRUE, text, strlen (text));
  return stream_write (stream, frame->data, frame->len);
}

/* A TLS connection trusting the test CA, over a socket whose receive
 * buffer is @rcvbuf bytes (set before connecting, so that the window is
 * small from the start; 0: the default). */
static GIOStream *
tls_connect_rcvbuf (guint    port,
                    int      rcvbuf,
                    GError **error)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                            G_SOCKET_PROTOCOL_TCP, error);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, (guint16) port);
  g_autoptr(GSocketConnection) base = NULL;
  g_autoptr(GTlsDatabase) database = NULL;
  g_autoptr(GSocketConnectable) identity = NULL;
  g_autoptr(GIOStream) tls = NULL;

  if (socket == NULL)
    return NULL;
  if (rcvbuf > 0 && !g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, rcvbuf, error))
    return NULL;
  g_socket_set_timeout (socket, (TEST_TIMEOUT_MS + 999) / 1000);
  if (!g_socket_connect (socket, address, NULL, error))
    return NULL;
  base = g_socket_connection_factory_create_connection (socket);
  database = g_tls_file_database_new (test_tls_ca_file (), error);
  if (database == NULL)
    return NULL;
  identity = g_network_address_new ("127.0.0.1", (guint16) port);
  tls = g_tls_client_connection_new (G_IO_STREAM (base), identity, error);
  if (tls == NULL)
    return NULL;
  g_tls_connection_set_database (G_TLS_CONNECTION (tls), database);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), NULL, error))
    return NULL;
  return g_steal_pointer (&tls);
}

/* A TLS connection whose socket has a receive buffer of @rcvbuf bytes (0:
 * the default), upgraded to an Engine.IO WebSocket; its sid in @out_sid. */
static GIOStream *
wss_open (guint    port,
          int      rcvbuf,
          char   **out_sid)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(GString) head = g_string_new (NULL);
  guint8 frame_head[4];
  g_autofree char *open = NULL;
  gsize length;

  stream = tls_connect_rcvbuf (port, rcvbuf, &error);
  g_assert_no_error (error);
  if (stream == NULL)
    return NULL;
  g_string_printf (head, "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                   port);
  if (!stream_write (stream, head->str, head->len))
    {
      g_test_message ("cannot write the upgrade request");
      return NULL;
    }
  g_string_truncate (head, 0);
  while (!g_str_has_suffix (head->str, "\r\n\r\n") && head->len < 4096)
    {
      char c;

      if (!g_input_stream_read_all (g_io_stream_get_input_stream (stream), &c, 1, NULL, NULL, &error))
        {
          g_test_message ("reading the 101: %s", error->message);
          return NULL;
        }
      g_string_append_c (head, c);
    }
  if (!g_str_has_prefix (head->str, "HTTP/1.1 101"))
    {
      g_test_message ("no 101: %s", head->str);
      return NULL;
    }
  /* The open packet: a short text frame. */
  if (!g_input_stream_read_all (g_io_stream_get_input_stream (stream), frame_head, 2, NULL, NULL, NULL))
    return NULL;
  length = frame_head[1] & 0x7f;
  if (length == 126)
    {
      if (!g_input_stream_read_all (g_io_stream_get_input_stream (stream), frame_head + 2, 2, NULL, NULL, NULL))
        return NULL;
      length = ((gsize) frame_head[2] << 8) | frame_head[3];
    }
  open = g_malloc0 (length + 1);
  if (!g_input_stream_read_all (g_io_stream_get_input_stream (stream), open, length, NULL, NULL, NULL) ||
      !g_str_has_prefix (open, "0{\"sid\":\""))
    return NULL;
  if (out_sid != NULL)
    *out_sid = g_strndup (open + 9, strcspn (open + 9, "\""));
  return g_steal_pointer (&stream);
}

static gboolean
wait_closed_sid (Fixture    *f,
                 const char *sid,
                 guint       timeout_ms)
{
  g_autofree char *prefix = g_strdup_printf ("close %s ", sid);

  return test_recorder_wait_count (f->lb.events, prefix, 1, timeout_ms);
}

/* What the server counts once the WebSocket of @during is gone: its
 * connection and the relay's socketpair, and with a thread per session
 * the session's context (a loop thread's stays with the server). */
static guint64
without_websocket (guint64 during)
{
  return during - 3 - (test_loop_threads_from_env () == 0 ? ENGINE_IO_CONTEXT_DESCRIPTORS : 0);
}

static void
test_wss_stalled_reader (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(GIOStream) stream = NULL;
  guint64 during, expected;

  g_test_summary ("A WebSocket over TLS whose client asks for much, then reads nothing and "
                  "never closes: once the session has ended, libmicrohttpd's relay still "
                  "holds output for it; the connection is closed after connection-timeout "
                  "and the server gives back its descriptors (the relay's counted until then)");
  test_require (f->lb.port != 0);
  stream = wss_open (f->lb.port, 4096, &sid);
  test_require (stream != NULL);
  during = server_descriptors (f->lb.server);
  g_assert_cmpuint (during, >=, f->idle_descriptors + 3);
  expected = without_websocket (during);
  test_require (ws_write_text (stream, "4flood 64"));
  /* It stalls (its client reads nothing), then misses its pings. */
  g_assert_true (wait_closed_sid (f, sid, REL_WAIT_MS));
  /* The client keeps its end, reading nothing: the relay cannot pass on
   * what it holds. connection-timeout is 1 s here. */
  g_assert_cmpuint (wait_descriptors (f->lb.server, expected, 3000 + TEST_TIMEOUT_MS), ==, expected);
}

static void
test_wss_silent (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *sid = NULL;
  g_autoptr(GIOStream) stream = NULL;
  guint64 during, expected;

  g_test_summary ("A WebSocket over TLS whose client goes silent (reads nothing, sends "
                  "nothing, keeps the connection): the session ends and the server gives back "
                  "the connection and the relay's descriptors");
  test_require (f->lb.port != 0);
  stream = wss_open (f->lb.port, 0, &sid);
  test_require (stream != NULL);
  during = server_descriptors (f->lb.server);
  g_assert_cmpuint (during, >=, f->idle_descriptors + 3);
  expected = without_websocket (during);
  g_assert_true (wait_closed_sid (f, sid, REL_WAIT_MS));
  g_assert_cmpuint (wait_descriptors (f->lb.server, expected, 3000 + TEST_TIMEOUT_MS), ==, expected);
}


static gpointer
abandon_thread (gpointer data)
{
  guint port = GPOINTER_TO_UINT (data) >> 2;
  guint how = GPOINTER_TO_UINT (data) & 3;
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) stream = tls_connect_rcvbuf (port, 0, &error);
  g_autofree char *head = NULL;
  char c;

  /* connection-timeout is 4 s: a slow machine (a sanitizer) may still
   * not finish the handshake in time, which the server may close. */
  if (stream == NULL)
    return g_strdup_printf ("connect: %s", error->message);
  head = g_strdup_printf ("GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                          port);
  /* 0: half the request; 1: the request, gone before the 101; 2: gone
   * after its first byte; 3: a close_notify after the open packet */
  if (!stream_write (stream, head, how == 0 ? strlen (head) / 2 : strlen (head)))
    return g_strdup ("cannot write the request");
  if (how >= 2)
    g_input_stream_read_all (g_io_stream_get_input_stream (stream), &c, 1, NULL, NULL, NULL);
  if (how == 3)
    {
      char buf[256];

      /* the rest of the 101 and the open packet, roughly */
      g_input_stream_read (g_io_stream_get_input_stream (stream), buf, sizeof buf, NULL, NULL);
      g_io_stream_close (stream, NULL, NULL);
    }
  return NULL;
}

static void
test_wss_abandoned (Fixture       *f,
                    gconstpointer  data)
{
  GThread *threads[16];
  guint failures = 0;
  guint64 limit = f->idle_descriptors +
    (test_loop_threads_from_env () > 0 ? test_loop_threads_from_env () * ENGINE_IO_CONTEXT_DESCRIPTORS : 0);
  guint64 now;

  g_test_summary ("Clients that go away in the middle of a WebSocket upgrade over TLS (half a "
                  "request, before or right after the 101, after the open packet): every "
                  "session they opened ends and the server gives back every descriptor");
  test_require (f->lb.port != 0);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("abandon", abandon_thread, GUINT_TO_POINTER ((f->lb.port << 2) | (i & 3)));
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autofree char *failure = g_thread_join (threads[i]);

      if (failure != NULL)
        {
          g_test_message ("client %u: %s", i, failure);
          failures++;
        }
    }
  g_assert_cmpuint (failures, <=, G_N_ELEMENTS (threads) / 2);
  /* The half request: connection-timeout (4 s); the others: their
   * session's heartbeat (1 s). */
  now = wait_descriptors (f->lb.server, f->idle_descriptors, 6000 + TEST_TIMEOUT_MS);
  if (now > f->idle_descriptors)
    now = wait_descriptors (f->lb.server, limit, 1000);
  g_assert_cmpuint (now, <=, limit);
  g_assert_cmpuint (engine_io_server_get_socket_count (f->lb.server), ==, 0);
}

/* ------------------------------------------------------------------ */
/* trusted-proxies                                                      */

static void
record_address (TestLoopback   *loopback,
                EngineIOSocket *socket,
                gpointer        user_data)
{
  test_recorder_add (loopback->events, "open %s", engine_io_socket_get_remote_address (socket));
}

/* A polling handshake (plain HTTP) from @source (a loopback address) with
 * @header; TRUE if it got its 200. */
static gboolean
handshake_from (guint       port,
                const char *source,
                const char *header)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (source);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *request = NULL;
  char response[16] = "";
  gsize got = 0;

  g_socket_client_set_local_address (client, local);
  g_socket_client_set_timeout (client, (TEST_TIMEOUT_MS + 999) / 1000);
  conn = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, &error);
  g_assert_no_error (error);
  if (conn == NULL)
    return FALSE;
  request = g_strdup_printf ("GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                             "Connection: close\r\n%s\r\n\r\n", port, header);
  if (!stream_write (G_IO_STREAM (conn), request, strlen (request)))
    return FALSE;
  g_input_stream_read_all (g_io_stream_get_input_stream (G_IO_STREAM (conn)), response,
                           sizeof response - 1, &got, NULL, NULL);
  return g_str_has_prefix (response, "HTTP/1.1 200");
}

static void
test_proxy_mapped (void)
{
  static const char * const trusted[] = { "::ffff:127.0.0.2", "::ffff:127.0.1.0/120", NULL };
  g_auto(TestLoopback) lb = { 0 };

  g_test_summary ("A trusted proxy listed as an IPv4-mapped IPv6 address or network (as "
                  "get_remote_address() gives peers on a dual-stack listener) is trusted when "
                  "it connects over IPv4; others still cannot choose their address");
  test_loopback_init (&lb);
  lb.on_connection = record_address;
  g_object_set (lb.server, "trusted-proxies", trusted, NULL);
  test_require (test_loopback_listen (&lb));

  g_assert_true (handshake_from (lb.port, "127.0.0.2", "X-Forwarded-For: 203.0.113.5"));
  g_assert_true (test_recorder_wait (lb.events, "open 203.0.113.5", TEST_TIMEOUT_MS));
  g_assert_true (handshake_from (lb.port, "127.0.1.9", "X-Forwarded-For: 203.0.113.6"));
  g_assert_true (test_recorder_wait (lb.events, "open 203.0.113.6", TEST_TIMEOUT_MS));
  g_assert_true (handshake_from (lb.port, "127.0.0.3", "X-Forwarded-For: 203.0.113.7"));
  g_assert_true (test_recorder_wait (lb.events, "open 127.0.0.3", TEST_TIMEOUT_MS));
  engine_io_server_close (lb.server);
  test_log_check ();
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

  if (!test_tls_ca_make ())
    {
      g_printerr ("test-tls-attack: cannot make the test CA with openssl\n");
      test_tls_ca_remove ();
      return 1;
    }
  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_printerr ("test-tls-attack: GIO has no TLS backend (install glib-networking)\n");
      test_tls_ca_remove ();
      return 1;
    }

  g_test_add ("/tls-attack/handshake-slowloris", Fixture, GUINT_TO_POINTER (1), fixture_setup,
              test_handshake_slowloris, fixture_teardown);
  g_test_add ("/tls-attack/garbage", Fixture, NULL, fixture_setup, test_garbage, fixture_teardown);
  g_test_add ("/tls-attack/huge-hello", Fixture, NULL, fixture_setup, test_huge_hello, fixture_teardown);
  g_test_add ("/tls-attack/old-versions", Fixture, NULL, fixture_setup, test_old_versions, fixture_teardown);
  g_test_add ("/tls-attack/wss-silent", Fixture, GUINT_TO_POINTER (1), fixture_setup, test_wss_silent, fixture_teardown);
  g_test_add ("/tls-attack/wss-stalled-reader", Fixture, GUINT_TO_POINTER (1), fixture_setup, test_wss_stalled_reader,
              fixture_teardown);

  /* connection-timeout 4 s: 16 TLS handshakes at once under ASan on a
   * loaded machine took over 1 s (14 of 16 closed before they finished). */
  g_test_add ("/tls-attack/wss-abandoned", Fixture, GUINT_TO_POINTER (4), fixture_setup, test_wss_abandoned,
              fixture_teardown);

  g_test_add_func ("/tls-attack/proxy-mapped", test_proxy_mapped);

  status = g_test_run ();
  test_tls_ca_remove ();
  return status;
}
