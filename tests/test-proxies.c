/* test-proxies.c: EngineIOServer:trusted-proxies against the real server
 * over loopback. Clients connect from 127.0.0.2 (the "proxy", trusted) and
 * 127.0.0.3 (a client reaching the server directly, untrusted) and send
 * X-Forwarded-For / Forwarded headers of their choosing; what the
 * admission hook, engine_io_socket_get_remote_address() and
 * handshake-rate see is checked.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define PROXY  "127.0.0.2"
#define DIRECT "127.0.0.3"

/* The shared loopback fixture. */
typedef TestLoopback Fixture;

static gboolean
admit (EngineIOServer    *server,
       EngineIOHandshake *handshake,
       gpointer           user_data)
{
  test_recorder_add (user_data, "admit %s", engine_io_handshake_get_remote_address (handshake));
  return TRUE;
}

/* Records "open <sid> <remote address>" besides what the fixture records. */
static void
on_connection (TestLoopback   *f,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  test_recorder_add (f->events, "open %s %s", engine_io_socket_get_id (socket),
                     engine_io_socket_get_remote_address (socket));
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->on_connection = on_connection;
  engine_io_server_set_admission_func (f->server, admit, f->events, NULL);
}

static gboolean
start (Fixture            *f,
       const char * const *trusted)
{
  g_object_set (f->server, "trusted-proxies", trusted, NULL);
  return test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

typedef struct
{
  guint  status;
  char  *body;
} RawResponse;

static void
raw_response_free (RawResponse *r)
{
  g_free (r->body);
  g_free (r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RawResponse, raw_response_free)

/* One request from @source (a loopback address) to 127.0.0.1:@port, with
 * @headers (raw header lines, each ending in \r\n). A polling request is
 * sent with `Connection: close` and read to EOF; a WebSocket upgrade up
 * to the end of the response head. NULL (the test failed) on error. */
static RawResponse *
request_from (guint       port,
              const char *source,
              const char *target,
              const char *headers,
              gboolean    upgrade)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GInetAddress) local_inet = g_inet_address_new_from_string (source);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (local_inet, 0);
  g_autoptr(GSocketConnection) conn = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) request = g_string_new (NULL);
  g_autoptr(GByteArray) in = g_byte_array_new ();
  GSocket *socket;
  RawResponse *r;
  const char *head_end;
  char *text;
  guint status;

  g_socket_client_set_local_address (client, local);
  g_socket_client_set_timeout (client, (TEST_TIMEOUT_MS + 999) / 1000);
  conn = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, &error);
  g_assert_no_error (error);
  test_require_val (conn != NULL, NULL);
  socket = g_socket_connection_get_socket (conn);

  g_string_append_printf (request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", target, port);
  if (upgrade)
    g_string_append (request,
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n");
  else
    g_string_append (request, "Connection: close\r\n");
  g_string_append (request, headers);
  g_string_append (request, "\r\n");
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)),
                             request->str, request->len, NULL, NULL, &error);
  g_assert_no_error (error);

  for (;;)
    {
      guint8 buf[4096];
      gssize n;

      if (!g_socket_condition_timed_wait (socket, G_IO_IN, (gint64) TEST_TIMEOUT_MS * 1000, NULL, &error))
        break;
      n = g_socket_receive (socket, (char *) buf, sizeof buf, NULL, &error);
      if (n <= 0)
        break;
      g_byte_array_append (in, buf, (guint) n);
      if (upgrade && g_strstr_len ((const char *) in->data, in->len, "\r\n\r\n") != NULL)
        break;
    }
  g_assert_no_error (error);
  g_byte_array_append (in, (const guint8 *) "", 1);
  text = (char *) in->data;
  test_require_val (sscanf (text, "HTTP/1.1 %u", &status) == 1, NULL);
  head_end = strstr (text, "\r\n\r\n");
  test_require_val (head_end != NULL, NULL);
  r = g_new0 (RawResponse, 1);
  r->status = status;
  r->body = g_strdup (head_end + 4);
  return r;
}

#define HANDSHAKE "/engine.io/?EIO=4&transport=polling"

/* A polling handshake from @source with @headers: asserts 200 and that
 * both the admission hook and the new socket saw @expected. */
static void
expect_client (Fixture    *f,
               const char *source,
               const char *headers,
               const char *expected)
{
  g_autoptr(RawResponse) r = request_from (f->port, source, HANDSHAKE, headers, FALSE);
  g_autofree char *admitted = g_strdup_printf ("admit %s", expected);
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *opened = NULL;
  g_autoptr(GError) error = NULL;

  test_require (r != NULL);
  g_assert_cmpuint (r->status, ==, 200);
  test_require (r->status == 200 && r->body[0] == '0');
  open = test_open_packet_parse (r->body + 1, &error);
  g_assert_no_error (error);
  test_require (open != NULL);
  opened = g_strdup_printf ("open %s %s", open->sid, expected);
  if (!test_recorder_wait (f->events, admitted, TEST_TIMEOUT_MS))
    g_test_fail_printf ("headers “%s” from %s: the hook did not see %s", headers, source, expected);
  if (!test_recorder_wait (f->events, opened, TEST_TIMEOUT_MS))
    g_test_fail_printf ("headers “%s” from %s: the socket does not have %s", headers, source, expected);
  test_recorder_clear (f->events);
}

static const char * const trusted_v4[] = { PROXY, "10.0.0.0/8", NULL };

static void
test_untrusted_peer (Fixture       *f,
                     gconstpointer  data)
{
  g_test_summary ("A client not in trusted-proxies cannot choose its address with "
                  "X-Forwarded-For or Forwarded; without the property nobody can");
  test_require (start (f, trusted_v4));
  expect_client (f, DIRECT, "X-Forwarded-For: 203.0.113.7\r\n", DIRECT);
  expect_client (f, DIRECT, "Forwarded: for=203.0.113.7\r\n", DIRECT);
  /* A proxy in the list is trusted only as the TCP peer, not when a
   * client names it. */
  expect_client (f, DIRECT, "X-Forwarded-For: 203.0.113.7, " PROXY "\r\n", DIRECT);
  expect_client (f, PROXY, "", PROXY);
}

static void
test_no_property (Fixture       *f,
                  gconstpointer  data)
{
  g_test_summary ("Without trusted-proxies (default) X-Forwarded-For is ignored");
  test_require (start (f, NULL));
  expect_client (f, PROXY, "X-Forwarded-For: 203.0.113.7\r\n", PROXY);
  expect_client (f, "127.0.0.1", "X-Forwarded-For: 203.0.113.7\r\n", "127.0.0.1");
}

static void
test_trusted_peer (Fixture       *f,
                   gconstpointer  data)
{
  g_test_summary ("From a trusted proxy, the right-most untrusted address of "
                  "X-Forwarded-For (or Forwarded: for=) is the client, for the hook and the socket");
  test_require (start (f, trusted_v4));
  expect_client (f, PROXY, "X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7");
  expect_client (f, PROXY, "X-Forwarded-For:   203.0.113.8  \r\n", "203.0.113.8");
  expect_client (f, PROXY, "X-Forwarded-For: 203.0.113.9:4711\r\n", "203.0.113.9");
  expect_client (f, PROXY, "Forwarded: for=192.0.2.60;proto=https;by=203.0.113.43\r\n", "192.0.2.60");
  expect_client (f, PROXY, "Forwarded: proto=https;For=\"192.0.2.61:80\"\r\n", "192.0.2.61");
  /* X-Forwarded-For is read first */
  expect_client (f, PROXY, "Forwarded: for=192.0.2.62\r\nX-Forwarded-For: 192.0.2.63\r\n", "192.0.2.63");
}

static void
test_chain (Fixture       *f,
            gconstpointer  data)
{
  g_test_summary ("A chain is walked from the right over trusted proxies only: what a "
                  "client put in front is not taken");
  test_require (start (f, trusted_v4));
  /* The client spoofed 198.51.100.1; 203.0.113.7 connected to 10.1.2.3, a
   * trusted proxy, which connected to us through PROXY. */
  expect_client (f, PROXY, "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.2.3\r\n", "203.0.113.7");
  expect_client (f, PROXY, "X-Forwarded-For: 198.51.100.1,203.0.113.7,10.1.2.3,10.9.9.9\r\n", "203.0.113.7");
  /* Every address trusted: the left-most */
  expect_client (f, PROXY, "X-Forwarded-For: 10.0.0.5, 10.0.0.6\r\n", "10.0.0.5");
  /* Several headers are one list, in order */
  expect_client (f, PROXY, "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.0.0.1\r\n", "203.0.113.1");
  expect_client (f, PROXY, "Forwarded: for=203.0.113.2, for=10.0.0.2\r\n", "203.0.113.2");
  expect_client (f, PROXY, "Forwarded: for=203.0.113.3\r\nForwarded: for=10.0.0.3;proto=http\r\n",
                 "203.0.113.3");
}

static void
test_ipv6 (Fixture       *f,
           gconstpointer  data)
{
  static const char * const trusted[] = { PROXY, "2001:db8:ffff::/48", NULL };

  g_test_summary ("IPv6 forms: bare, bracketed with a port, quoted in Forwarded, "
                  "IPv4-mapped; IPv6 networks in trusted-proxies");
  test_require (start (f, trusted));
  expect_client (f, PROXY, "X-Forwarded-For: 2001:db8::1\r\n", "2001:db8::1");
  expect_client (f, PROXY, "X-Forwarded-For: 2001:DB8:0:0::2\r\n", "2001:db8::2");
  expect_client (f, PROXY, "X-Forwarded-For: [2001:db8::3]:4711\r\n", "2001:db8::3");
  expect_client (f, PROXY, "X-Forwarded-For: [2001:db8::4]\r\n", "2001:db8::4");
  expect_client (f, PROXY, "Forwarded: for=\"[2001:db8::5]:4711\"\r\n", "2001:db8::5");
  expect_client (f, PROXY, "X-Forwarded-For: ::ffff:203.0.113.9\r\n", "203.0.113.9");
  expect_client (f, PROXY, "X-Forwarded-For: 2001:db8::6, 2001:db8:ffff:1::1\r\n", "2001:db8::6");
  expect_client (f, PROXY, "Forwarded: for=\"[2001:db8::7]\", for=\"[2001:db8:ffff::9]:443\"\r\n",
                 "2001:db8::7");
  /* 2001:db8:fffe:: is outside the /48 */
  expect_client (f, PROXY, "X-Forwarded-For: 2001:db8::8, 2001:db8:fffe::1\r\n", "2001:db8:fffe::1");
}

static void
test_garbage (Fixture       *f,
              gconstpointer  data)
{
  static const char * const cases[] = {
    "X-Forwarded-For: \r\n",
    "X-Forwarded-For: unknown\r\n",
    "X-Forwarded-For: ,\r\n",
    "X-Forwarded-For: 203.0.113.7,\r\n",
    "X-Forwarded-For: 203.0.113.7,,10.0.0.1\r\n",
    "X-Forwarded-For: 203.0.113.7 10.0.0.1\r\n",
    "X-Forwarded-For: 300.1.2.3\r\n",
    "X-Forwarded-For: 203.0.113.7/24\r\n",
    "X-Forwarded-For: example.com\r\n",
    "X-Forwarded-For: [2001:db8::1\r\n",
    "X-Forwarded-For: [2001:db8::1]x\r\n",
    "X-Forwarded-For: \"203.0.113.7\"\r\n",
    "X-Forwarded-For: 203.0.113.7, garbage, 10.0.0.1\r\n",
    "Forwarded: for=unknown\r\n",
    "Forwarded: for=_hidden\r\n",
    "Forwarded: proto=https\r\n",
    "Forwarded: for=\"[2001:db8::1]:80\r\n",
    "Forwarded: for=\r\n",
    "Forwarded: 203.0.113.7\r\n",
    "Forwarded: ;;;,,,\r\n",
  };
  g_autoptr(GString) long_entry = g_string_new ("X-Forwarded-For: ");
  g_autoptr(GString) long_chain = g_string_new ("X-Forwarded-For: 203.0.113.7");

  g_test_summary ("A malformed, unknown or obfuscated forwarded address, a too long entry "
                  "or chain: the TCP peer is the client, and nothing crashes");
  test_require (start (f, trusted_v4));
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    expect_client (f, PROXY, cases[i], PROXY);

  for (guint i = 0; i < 2000; i++)
    g_string_append_c (long_entry, '1');
  g_string_append (long_entry, "\r\n");
  expect_client (f, PROXY, long_entry->str, PROXY);
  /* 100 trusted hops after the client: more than the walk reads (32) */
  for (guint i = 0; i < 100; i++)
    g_string_append (long_chain, ", 10.0.0.1");
  g_string_append (long_chain, "\r\n");
  expect_client (f, PROXY, long_chain->str, PROXY);
  /* 50 headers of 10 entries, joined past what is kept (4 KiB): the
   * right end is read as ever, a walk past what is kept finds the peer */
  {
    g_autoptr(GString) many = g_string_new (NULL);

    for (guint i = 0; i < 50; i++)
      g_string_append (many, "X-Forwarded-For: 203.0.113.5, 203.0.113.5, 203.0.113.5, 203.0.113.5, "
                             "203.0.113.5, 203.0.113.5, 203.0.113.5, 203.0.113.5, 203.0.113.5, 203.0.113.5\r\n");
    g_string_append (many, "X-Forwarded-For: 198.51.100.1, 10.0.0.1\r\n");
    expect_client (f, PROXY, many->str, "198.51.100.1");
    g_string_truncate (many, 0);
    g_string_append (many, "X-Forwarded-For: 203.0.113.5\r\n");
    for (guint i = 0; i < 50; i++)
      g_string_append (many, "X-Forwarded-For: 10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1, "
                             "10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1\r\n");
    expect_client (f, PROXY, many->str, PROXY);
  }
  /* A chain within the bound is walked whole */
  expect_client (f, PROXY,
                 "X-Forwarded-For: 203.0.113.7, 10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1, "
                 "10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1, 10.0.0.1\r\n", "203.0.113.7");
}

static void
test_websocket (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(RawResponse) r = NULL;

  g_test_summary ("A direct WebSocket handshake from a trusted proxy gets the forwarded address");
  test_require (start (f, trusted_v4));
  r = request_from (f->port, PROXY, "/engine.io/?EIO=4&transport=websocket",
                    "X-Forwarded-For: 203.0.113.70\r\n", TRUE);
  test_require (r != NULL);
  g_assert_cmpuint (r->status, ==, 101);
  g_assert_true (test_recorder_wait (f->events, "admit 203.0.113.70", TEST_TIMEOUT_MS));
  g_assert_cmpint (test_recorder_index_prefix (f->events, "admit " PROXY), ==, -1);
}

static guint
handshake_status (Fixture    *f,
                  const char *source,
                  const char *headers)
{
  g_autoptr(RawResponse) r = request_from (f->port, source, HANDSHAKE, headers, FALSE);

  return r != NULL ? r->status : 0;
}

static void
test_handshake_rate (Fixture       *f,
                     gconstpointer  data)
{
  g_test_summary ("handshake-rate counts the forwarded client, not the proxy; a client "
                  "reaching the server directly is counted by its own address whatever it sends");
  /* One handshake per address, then none for 1000 s. */
  g_object_set (f->server, "handshake-rate", 0.001, "handshake-burst", 1, NULL);
  test_require (start (f, trusted_v4));

  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 203.0.113.1\r\n"), ==, 200);
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 203.0.113.1\r\n"), ==, 429);
  /* Another client behind the same proxy is not affected */
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 203.0.113.2\r\n"), ==, 200);
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 198.51.100.9, 203.0.113.3\r\n"), ==, 200);
  /* The client, not what it claimed in front of it */
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 198.51.100.10, 203.0.113.3\r\n"), ==, 429);
  /* An IPv6 client counts with its /64, as a direct one does */
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 2001:db8::1\r\n"), ==, 200);
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 2001:db8::2\r\n"), ==, 429);
  g_assert_cmpuint (handshake_status (f, PROXY, "X-Forwarded-For: 2001:db8:0:1::1\r\n"), ==, 200);
  /* The proxy's own handshakes (no header) count for the proxy */
  g_assert_cmpuint (handshake_status (f, PROXY, ""), ==, 200);
  g_assert_cmpuint (handshake_status (f, PROXY, ""), ==, 429);
  /* Untrusted: a new forwarded address each time does not help */
  g_assert_cmpuint (handshake_status (f, DIRECT, "X-Forwarded-For: 192.0.2.1\r\n"), ==, 200);
  g_assert_cmpuint (handshake_status (f, DIRECT, "X-Forwarded-For: 192.0.2.2\r\n"), ==, 429);
  g_assert_cmpuint (handshake_status (f, DIRECT, "Forwarded: for=192.0.2.3\r\n"), ==, 429);
}

static void
test_validation (void)
{
  static const char * const bad[][3] = {
    { "10.0.0.1", "10.0.0.0/33", NULL },
    { "proxy.example", NULL, NULL },
    { "::1/129", NULL, NULL },
    { "", NULL, NULL },
    { "10.0.0.1/8", NULL, NULL },  /* host bits set: GInetAddressMask refuses it */
  };
  static const char * const good[] = { "127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "0.0.0.0/0", NULL };

  g_test_summary ("An entry of trusted-proxies that is neither an address nor a network "
                  "fails listen() with an error naming it; the property reads back");
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(EngineIOServer) server = test_server_new ();
      g_autoptr(GError) error = NULL;
      const char *culprit = bad[i][1] != NULL ? bad[i][1] : bad[i][0];
      g_autofree char *quoted = g_strdup_printf ("“%s”", culprit);

      g_object_set (server, "trusted-proxies", bad[i], NULL);
      g_assert_false (engine_io_server_listen (server, "127.0.0.1", 0, &error));
      g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
      if (error != NULL && strstr (error->message, quoted) == NULL)
        g_test_fail_printf ("the error “%s” does not name %s", error->message, quoted);
      engine_io_server_close (server);
    }

  {
    g_autoptr(EngineIOServer) server = test_server_new ();
    g_auto(GStrv) back = NULL;

    g_object_get (server, "trusted-proxies", &back, NULL);
    g_assert_null (back);
    g_object_set (server, "trusted-proxies", good, NULL);
    g_object_get (server, "trusted-proxies", &back, NULL);
    g_assert_true (back != NULL && g_strv_equal ((const char * const *) back, good));
    g_assert_cmpuint (test_server_listen (server), !=, 0);
    engine_io_server_close (server);
  }
  test_log_check ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

  g_test_add_func ("/proxies/validation", test_validation);
  g_test_add ("/proxies/no-property", Fixture, NULL, fixture_setup, test_no_property, fixture_teardown);
  g_test_add ("/proxies/untrusted-peer", Fixture, NULL, fixture_setup, test_untrusted_peer, fixture_teardown);
  g_test_add ("/proxies/trusted-peer", Fixture, NULL, fixture_setup, test_trusted_peer, fixture_teardown);
  g_test_add ("/proxies/chain", Fixture, NULL, fixture_setup, test_chain, fixture_teardown);
  g_test_add ("/proxies/ipv6", Fixture, NULL, fixture_setup, test_ipv6, fixture_teardown);
  g_test_add ("/proxies/garbage", Fixture, NULL, fixture_setup, test_garbage, fixture_teardown);
  g_test_add ("/proxies/websocket", Fixture, NULL, fixture_setup, test_websocket, fixture_teardown);
  g_test_add ("/proxies/handshake-rate", Fixture, NULL, fixture_setup, test_handshake_rate, fixture_teardown);

  return g_test_run ();
}
