/* test-http-rules.c: the protocol core's pure HTTP rules
 * (src/core/engineio-http-rules.c), without sockets
 *
 * Origins as browsers serialize them (allowed-origins), the RFC 6455
 * opening handshake the server answers, session ids (the id function's
 * rules), and header names and values (CORS reflection and the
 * response-headers hook). The loopback side is in test-server.c,
 * test-hooks.c and test-websocket.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include <glib.h>

#include "engineio-http-rules-private.h"

static void
test_origin_serialized (void)
{
  static const char *const good[] = {
    "null", "https://example.com", "http://localhost:8080", "ws://a.b", "wss://a.b:8443",
    "http://[::1]", "http://[::1]:3000", "chrome-extension://abcdef",
  };
  static const char *const bad[] = {
    "", "example.com", "https://", "https://Example.com", "HTTPS://example.com",
    "https://example.com/", "https://example.com/path", "https://example.com?x",
    "https://example.com#x", "https://user@example.com", "http://example.com:80",
    "https://example.com:443", "ws://example.com:80", "wss://example.com:443",
    "http://example.com:0", "http://example.com:08080", "http://example.com:65536",
    "http://example.com:", "http://[]", "http://[::1", "http://[::G]", "http://[::A]",
    "http://a b", "1http://a", "http://127.0.0.1:80800",
  };

  g_test_summary ("allowed-origins entries must be origins as browsers send them: `null` or "
                  "scheme://host[:port] in lowercase, without path, query, fragment, user "
                  "information or the scheme's default port");

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_test_message ("good: %s", good[i]);
      g_assert_true (engine_io_origin_is_serialized (good[i]));
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_test_message ("bad: %s", bad[i]);
      g_assert_false (engine_io_origin_is_serialized (bad[i]));
    }
}

/* A request of @method with @headers (name, value, ..., NULL). */
static gboolean
is_upgrade (const char *method,
            ...)
{
  EngineIORequest req;
  const char *name;
  va_list args;
  gboolean result;

  memset (&req, 0, sizeof req);
  req.method = (char *) method;
  req.headers = g_hash_table_new (g_str_hash, g_str_equal);
  va_start (args, method);
  while ((name = va_arg (args, const char *)) != NULL)
    g_hash_table_insert (req.headers, (char *) name, va_arg (args, char *));
  va_end (args);
  result = engine_io_request_is_websocket_upgrade (&req);
  g_hash_table_unref (req.headers);
  return result;
}

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="  /* RFC 6455's sample: 16 bytes */

static void
test_websocket_upgrade (void)
{
  g_test_summary ("An RFC 6455 opening handshake: GET, Upgrade: websocket and Connection: "
                  "upgrade (tokens, any case), version 13, a key of 16 bytes in base64");

  g_assert_true (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                             "sec-websocket-key", KEY, "sec-websocket-version", "13", NULL));
  g_assert_true (is_upgrade ("GET", "upgrade", "WebSocket", "connection", "keep-alive, Upgrade",
                             "sec-websocket-key", KEY, "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("POST", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-key", KEY, "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("GET", "connection", "Upgrade",
                              "sec-websocket-key", KEY, "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "keep-alive",
                              "sec-websocket-key", KEY, "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-key", KEY, NULL));
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-key", KEY, "sec-websocket-version", "8", NULL));
  /* 24 characters, but 18 bytes; and a key of 12 bytes */
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAAA",
                              "sec-websocket-version", "13", NULL));
  g_assert_false (is_upgrade ("GET", "upgrade", "websocket", "connection", "Upgrade",
                              "sec-websocket-key", "AAAAAAAAAAAAAAAA",
                              "sec-websocket-version", "13", NULL));
}

static void
test_sid (void)
{
  char longest[130];

  g_test_summary ("Session ids: 1 to 128 of A-Z a-z 0-9 - _ .");

  g_assert_false (engine_io_sid_is_valid (NULL));
  g_assert_false (engine_io_sid_is_valid (""));
  g_assert_true (engine_io_sid_is_valid ("a"));
  g_assert_true (engine_io_sid_is_valid ("AZaz09-_."));
  g_assert_true (engine_io_sid_is_valid ("Xk3_-pQ8vLmN2bR7tYw9zA0c"));
  g_assert_false (engine_io_sid_is_valid ("a b"));
  g_assert_false (engine_io_sid_is_valid ("a/b"));
  g_assert_false (engine_io_sid_is_valid ("a+b"));
  g_assert_false (engine_io_sid_is_valid ("a=b"));
  g_assert_false (engine_io_sid_is_valid ("\xc3\xa9"));

  memset (longest, 'a', 128);
  longest[128] = '\0';
  g_assert_true (engine_io_sid_is_valid (longest));
  longest[128] = 'a';
  longest[129] = '\0';
  g_assert_false (engine_io_sid_is_valid (longest));
}

static void
test_headers (void)
{
  g_test_summary ("Header values without control characters (a tab aside) are clean; names "
                  "are HTTP tokens; framing, coding and upgrade headers are the server's");

  g_assert_true (engine_io_header_is_clean (NULL));
  g_assert_true (engine_io_header_is_clean (""));
  g_assert_true (engine_io_header_is_clean ("text/plain; charset=UTF-8"));
  g_assert_true (engine_io_header_is_clean ("a\tb"));
  g_assert_true (engine_io_header_is_clean ("\xc3\xa9"));
  g_assert_false (engine_io_header_is_clean ("a\r\nSet-Cookie: x"));
  g_assert_false (engine_io_header_is_clean ("a\nb"));
  g_assert_false (engine_io_header_is_clean ("a\x7f"));
  g_assert_false (engine_io_header_is_clean ("\x01"));

  g_assert_true (engine_io_header_name_is_token ("X-Custom"));
  g_assert_true (engine_io_header_name_is_token ("!#$%&'*+-.^_`|~09azAZ"));
  g_assert_false (engine_io_header_name_is_token (NULL));
  g_assert_false (engine_io_header_name_is_token (""));
  g_assert_false (engine_io_header_name_is_token ("a b"));
  g_assert_false (engine_io_header_name_is_token ("a:b"));
  g_assert_false (engine_io_header_name_is_token ("a\r\n"));
  g_assert_false (engine_io_header_name_is_token ("(x)"));

  g_assert_true (engine_io_header_is_reserved ("Content-Length"));
  g_assert_true (engine_io_header_is_reserved ("transfer-encoding"));
  g_assert_true (engine_io_header_is_reserved ("CONTENT-ENCODING"));
  g_assert_true (engine_io_header_is_reserved ("Connection"));
  g_assert_true (engine_io_header_is_reserved ("Upgrade"));
  g_assert_true (engine_io_header_is_reserved ("Sec-WebSocket-Accept"));
  g_assert_true (engine_io_header_is_reserved ("sec-websocket-extensions"));
  g_assert_false (engine_io_header_is_reserved ("Set-Cookie"));
  g_assert_false (engine_io_header_is_reserved ("Content-Type"));
  g_assert_false (engine_io_header_is_reserved ("X-Powered-By"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/http-rules/origin-serialized", test_origin_serialized);
  g_test_add_func ("/http-rules/websocket-upgrade", test_websocket_upgrade);
  g_test_add_func ("/http-rules/sid", test_sid);
  g_test_add_func ("/http-rules/headers", test_headers);

  return g_test_run ();
}
