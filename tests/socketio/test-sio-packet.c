/* test-sio-packet.c: the Socket.IO packet codec
 *
 * Vectors from the protocol's README (socketio/socket.io-protocol, v5 and
 * the v4 branch) and its test suite, cases rewritten from socket.io-parser's
 * own tests (test/parser.js, test/buffer.js), malformed input, the bounds,
 * the writer (valid JSON that reads back to the same values), and round-trip
 * property tests.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "socketio-json-private.h"
#include "socketio-packet-private.h"

#define V4 SOCKET_IO_PROTOCOL_V4
#define V5 SOCKET_IO_PROTOCOL_V5

/* Decodes @text then the @n_bins binary messages @bins (NUL-terminated
 * strings, for brevity). Returns the packet, or NULL with @error set. */
static SocketIOPacket *
decode_full (SocketIODecoder  *decoder,
             const char       *text,
             const char      **bins,
             guint             n_bins,
             GError          **error)
{
  SocketIOPacket *packet = NULL;
  guint i;

  if (!socket_io_decoder_feed_text (decoder, text, strlen (text), &packet, error))
    return NULL;
  for (i = 0; i < n_bins; i++)
    {
      g_autoptr(GBytes) bytes = g_bytes_new (bins[i], strlen (bins[i]));

      g_assert_null (packet);
      if (!socket_io_decoder_feed_binary (decoder, bytes, &packet, error))
        return NULL;
    }
  return packet;
}

static SocketIOPacket *
decode (SocketIOProtocol  protocol,
        const char       *text,
        const char      **bins,
        guint             n_bins,
        GError          **error)
{
  g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (protocol);

  return decode_full (decoder, text, bins, n_bins, error);
}

static char *
encode_text (SocketIOPacket *packet,
             GPtrArray     **attachments)
{
  g_autoptr(GBytes) bytes = socket_io_packet_encode (packet, attachments);
  gsize size;
  const char *data = g_bytes_get_data (bytes, &size);

  g_assert_cmpuint (strlen (data ? data : ""), ==, size);  /* text has no NUL */
  return g_strndup (data, size);
}

/* Decodes and re-encodes: the same text and attachments come back. */
static SocketIOPacket *
assert_round_trip (SocketIOProtocol  protocol,
                   const char       *text,
                   const char      **bins,
                   guint             n_bins)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = decode (protocol, text, bins, n_bins, &error);
  g_autoptr(GPtrArray) attachments = NULL;
  g_autofree char *again = NULL;
  guint i;

  g_assert_no_error (error);
  g_assert_nonnull (packet);
  again = encode_text (packet, &attachments);
  g_assert_cmpstr (again, ==, text);
  g_assert_cmpuint (attachments->len, ==, n_bins);
  for (i = 0; i < n_bins; i++)
    {
      g_autoptr(GBytes) want = g_bytes_new (bins[i], strlen (bins[i]));

      g_assert_true (g_bytes_equal (attachments->pdata[i], want));
    }
  return g_steal_pointer (&packet);
}

static void
check_round_trip (SocketIOProtocol  protocol,
                  const char       *text,
                  const char      **bins,
                  guint             n_bins)
{
  socket_io_packet_unref (assert_round_trip (protocol, text, bins, n_bins));
}

static void
assert_decodes_to (SocketIOProtocol  protocol,
                   const char       *text,
                   const char       *canonical)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = decode (protocol, text, NULL, 0, &error);
  g_autofree char *again = NULL;

  if (error != NULL)
    g_error ("“%.200s” does not decode: %s", text, error->message);
  again = encode_text (packet, NULL);
  g_assert_cmpstr (again, ==, canonical);
}

/* The error names the problem (@what) and the offset. */
static void
assert_parse_error (SocketIOProtocol  protocol,
                    const char       *text,
                    const char      **bins,
                    guint             n_bins,
                    const char       *what,
                    gssize            offset)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = decode (protocol, text, bins, n_bins, &error);

  if (packet != NULL)
    g_error ("“%s” decoded, want an error about “%s”", text, what);
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  if (strstr (error->message, what) == NULL)
    g_error ("“%s”: error “%s” does not mention “%s”", text, error->message, what);
  if (offset >= 0)
    {
      g_autofree char *suffix = g_strdup_printf (" at byte offset %" G_GSSIZE_FORMAT, offset);

      if (!g_str_has_suffix (error->message, suffix))
        g_error ("“%s”: error “%s” is not at offset %" G_GSSIZE_FORMAT, text, error->message, offset);
    }
}

static JsonNode *
json (const char *text)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;

  json_parser_load_from_data (parser, text, -1, &error);
  g_assert_no_error (error);
  return json_node_ref (json_parser_get_root (parser));
}

/* --- vectors --- */

static void
test_spec_v5 (void)
{
  const char *bin4[] = { "\x01\x02\x03\x04" };
  const char *bin2[] = { "\x01\x02", "\x03\x04" };
  g_autoptr(SocketIOPacket) p = NULL;
  JsonNode *data;

  g_test_summary ("The encoded examples of the v5 protocol README decode and encode back byte for byte");

  p = assert_round_trip (V5, "0", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_CONNECT);
  g_assert_cmpstr (socket_io_packet_get_namespace (p), ==, "/");
  g_assert_null (socket_io_packet_get_data (p));
  g_assert_cmpint (socket_io_packet_get_id (p), ==, SOCKET_IO_NO_ACK_ID);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", NULL, 0);
  g_assert_cmpstr (socket_io_packet_get_namespace (p), ==, "/admin");
  data = socket_io_packet_get_data (p);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (data));
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (data), "sid"), ==, "oSO0OpakMV_3jnilAAAA");
  g_assert_true (json_node_is_immutable (data));
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "4{\"message\":\"Not authorized\"}", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_CONNECT_ERROR);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "2[\"foo\"]", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_EVENT);
  g_assert_cmpstr (socket_io_packet_get_event_name (p), ==, "foo");
  g_clear_pointer (&p, socket_io_packet_unref);

  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "2/admin,[\"bar\"]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "51-[\"baz\",{\"_placeholder\":true,\"num\":0}]", bin4, 1);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_EVENT);
  g_assert_cmpuint (socket_io_packet_get_attachments (p)->len, ==, 1);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "52-/admin,[\"baz\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", bin2, 2);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "212[\"foo\"]", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_id (p), ==, 12);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "3/admin,13[\"bar\"]", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_ACK);
  g_assert_cmpint (socket_io_packet_get_id (p), ==, 13);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "61-15[\"bar\",{\"_placeholder\":true,\"num\":0}]", bin4, 1);
  g_assert_cmpint (socket_io_packet_get_packet_type (p), ==, SOCKET_IO_PACKET_ACK);
  g_assert_cmpint (socket_io_packet_get_id (p), ==, 15);
  g_clear_pointer (&p, socket_io_packet_unref);

  p = assert_round_trip (V5, "1", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "1/admin,", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  /* Sample session */
  p = assert_round_trip (V5, "0/admin,{\"sid\":\"-G5j-67EZFp-q59rADQM\"}", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "2/admin,1[\"tellme\"]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "61-/admin,1[{\"_placeholder\":true,\"num\":0}]", bin4, 1);
}

static void
test_spec_v4 (void)
{
  const char *bin[] = { "\x01\x02\x03" };
  g_autoptr(SocketIOPacket) p = NULL;

  g_test_summary ("The encoded examples of the v4 protocol README (socket.io 2.x) decode and encode back");

  p = assert_round_trip (V4, "0", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "0/admin,", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "1/admin,", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "2[\"hello\",1]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "2/admin,456[\"project:delete\",123]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "3/admin,456[]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "4/admin,\"Not authorized\"", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "51-[\"hello\",{\"_placeholder\":true,\"num\":0}]", bin, 1);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "51-/admin,456[\"project:delete\",{\"_placeholder\":true,\"num\":0}]", bin, 1);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V4, "61-/admin,456[{\"_placeholder\":true,\"num\":0}]", bin, 1);
  g_clear_pointer (&p, socket_io_packet_unref);

  /* The query of a 2.x client's CONNECT stays in the namespace (the
   * server splits it). */
  p = assert_round_trip (V4, "0/admin?token=1234&uid=abcd,", NULL, 0);
  g_assert_cmpstr (socket_io_packet_get_namespace (p), ==, "/admin?token=1234&uid=abcd");
  g_clear_pointer (&p, socket_io_packet_unref);

  /* v4 differences */
  assert_parse_error (V4, "0/admin,{\"token\":\"1\"}", NULL, 0, "v4 CONNECT carries no payload", 8);
  assert_parse_error (V4, "50-[\"a\"]", NULL, 0, "without attachments", 2);
  assert_parse_error (V5, "50-[\"a\"]", NULL, 0, "without attachments", 2);
}

static void
test_test_suite (void)
{
  const char *bins[] = { "\x01\x02\x03", "\x04\x05\x06" };
  g_autoptr(SocketIOPacket) p = NULL;

  g_test_summary ("The Socket.IO messages of the official test suite (test-suite/test-suite.js)");

  p = assert_round_trip (V5, "0{\"token\":\"123\"}", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "0/custom,{\"token\":\"abc\"}", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "2[\"message\",1,\"2\",{\"3\":[true]}]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "2456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", NULL, 0);
  g_assert_cmpint (socket_io_packet_get_id (p), ==, 456);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "3456[1,\"2\",{\"3\":[false]}]", NULL, 0);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "52-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", bins, 2);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "52-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", bins, 2);
  g_clear_pointer (&p, socket_io_packet_unref);
  p = assert_round_trip (V5, "62-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", bins, 2);
  g_clear_pointer (&p, socket_io_packet_unref);

  /* No "," after the namespace: the namespace runs to the end. */
  assert_decodes_to (V5, "0/random", "0/random,");
  assert_decodes_to (V5, "1/custom", "1/custom,");

  /* The three malformed messages ("4abc", "42{}", "42abc[...]"). */
  assert_parse_error (V5, "abc", NULL, 0, "Unknown packet type", 0);
  assert_parse_error (V5, "2{}", NULL, 0, "EVENT payload is not an array", 1);
  assert_parse_error (V5, "2abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", NULL, 0, "Unexpected character", 1);
}

static void
test_reference_cases (void)
{
  const char *world[] = { "world" };

  g_test_summary ("Cases of socket.io-parser's own tests (test/parser.js, test/buffer.js), rewritten");

  /* Encodings (the reference encodes, then decodes to the same packet). */
  check_round_trip (V5, "0/woot,{\"token\":\"123\"}", NULL, 0);
  check_round_trip (V5, "1/woot,", NULL, 0);
  check_round_trip (V5, "2[\"a\",1,{}]", NULL, 0);
  check_round_trip (V5, "2[1,\"a\",{}]", NULL, 0);
  check_round_trip (V5, "2/test,1[\"a\",1,{}]", NULL, 0);
  check_round_trip (V5, "3123[\"a\",1,{}]", NULL, 0);
  check_round_trip (V5, "4\"Unauthorized\"", NULL, 0);
  check_round_trip (V5, "4{\"message\":\"Unauthorized\"}", NULL, 0);
  {
    const char *abc[] = { "abc" };
    const char *xxx[] = { "xxx" };

    check_round_trip (V5, "51-/cool,23[\"a\",{\"_placeholder\":true,\"num\":0}]", abc, 1);
    check_round_trip (V5, "51-/cool,23[\"a\",{\"b\":[\"c\",{\"_placeholder\":true,\"num\":0}]}]", abc, 1);
    check_round_trip (V5, "61-/back,127[\"a\",{\"_placeholder\":true,\"num\":0},{}]", xxx, 1);
  }

  /* "throw an error upon parsing error": invalid payloads */
  assert_parse_error (V5, "442[\"some\",\"data\"", NULL, 0, "Ack id on a packet of type 4", 1);
  assert_parse_error (V5, "242[\"some\",\"data\"", NULL, 0, "Unterminated JSON array", 17);
  assert_parse_error (V5, "0/admin,\"invalid\"", NULL, 0, "CONNECT payload is not an object", 8);
  assert_parse_error (V5, "0[]", NULL, 0, "CONNECT payload is not an object", 1);
  assert_parse_error (V5, "1/admin,{}", NULL, 0, "DISCONNECT carries no payload", 8);
  assert_parse_error (V5, "2/admin,\"invalid", NULL, 0, "Unterminated JSON string", 8);
  assert_parse_error (V5, "2/admin,{}", NULL, 0, "EVENT payload is not an array", 8);
  assert_parse_error (V5, "2[{\"toString\":\"foo\"}]", NULL, 0, "neither a string nor a number", 1);
  assert_parse_error (V5, "2[true,\"foo\"]", NULL, 0, "neither a string nor a number", 1);
  assert_parse_error (V5, "2[null,\"bar\"]", NULL, 0, "neither a string nor a number", 1);
  assert_parse_error (V5, "2[\"connect\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V5, "2[\"disconnect\",\"123\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V4, "2[\"disconnect\",\"123\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V5, "2[\"connect_error\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V5, "2[\"disconnecting\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V5, "2[\"newListener\"]", NULL, 0, "Reserved event name", 1);
  assert_parse_error (V5, "2[\"removeListener\"]", NULL, 0, "Reserved event name", 1);
  check_round_trip (V5, "2[\"Connect\"]", NULL, 0);

  /* Illegal attachments */
  assert_parse_error (V5, "5", NULL, 0, "Missing attachment count", 1);
  assert_parse_error (V5, "51", NULL, 0, "not followed by “-”", 2);
  assert_parse_error (V5, "5a-", NULL, 0, "Missing attachment count", 1);
  assert_parse_error (V5, "51.23-", NULL, 0, "not followed by “-”", 2);
  assert_parse_error (V5, "999", NULL, 0, "Unknown packet type “9”", 0);

  /* maxAttachments */
  {
    g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
    g_autoptr(GError) error = NULL;
    SocketIOPacket *packet = NULL;
    const char *text = "53-[\"hello\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":2}]";

    socket_io_decoder_set_max_attachments (decoder, 2);
    g_assert_false (socket_io_decoder_feed_text (decoder, text, strlen (text), &packet, &error));
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
    g_assert_cmpstr (error->message, ==, "More than 2 attachments at byte offset 1");
  }
  /* The default is the reference's 10: 10 passes, 11 does not. */
  {
    GString *s = g_string_new ("510-[\"x\"");
    GString *t = g_string_new ("511-[\"x\"");
    g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
    g_autoptr(GError) error = NULL;
    SocketIOPacket *packet = NULL;
    guint i;

    for (i = 0; i < 11; i++)
      {
        if (i < 10)
          g_string_append_printf (s, ",{\"_placeholder\":true,\"num\":%u}", i);
        g_string_append_printf (t, ",{\"_placeholder\":true,\"num\":%u}", i);
      }
    g_string_append_c (s, ']');
    g_string_append_c (t, ']');
    g_assert_true (socket_io_decoder_feed_text (decoder, s->str, s->len, &packet, &error));
    g_assert_no_error (error);
    g_assert_null (packet);
    g_assert_cmpuint (socket_io_decoder_get_missing_attachments (decoder), ==, 10);
    socket_io_decoder_reset (decoder);
    g_assert_cmpuint (socket_io_decoder_get_missing_attachments (decoder), ==, 0);
    g_assert_false (socket_io_decoder_feed_text (decoder, t->str, t->len, &packet, &error));
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
    g_string_free (s, TRUE);
    g_string_free (t, TRUE);
  }

  /* Buffers: bad "num" (string, out of bounds), binary without header,
   * text while attachments are expected. */
  assert_parse_error (V5, "51-[\"hello\",{\"_placeholder\":true,\"num\":\"splice\"}]", world, 1,
                      "Malformed binary placeholder", 3);
  assert_parse_error (V5, "51-[\"hello\",{\"_placeholder\":true,\"num\":1}]", world, 1,
                      "Placeholder 1 out of range (1 attachments)", 3);
  {
    g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
    g_autoptr(GBytes) bytes = g_bytes_new_static ("world", 5);
    g_autoptr(GError) error = NULL;
    SocketIOPacket *packet = NULL;
    const char *header = "51-[\"hello\",{\"_placeholder\":true,\"num\":0}]";

    g_assert_false (socket_io_decoder_feed_binary (decoder, bytes, &packet, &error));
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
    g_assert_cmpstr (error->message, ==, "Binary message while no packet expects attachments at byte offset 0");
    g_clear_error (&error);

    g_assert_true (socket_io_decoder_feed_text (decoder, header, strlen (header), &packet, &error));
    g_assert_no_error (error);
    g_assert_null (packet);
    g_assert_false (socket_io_decoder_feed_text (decoder, "2[\"hello\"]", 10, &packet, &error));
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
    g_assert_cmpstr (error->message, ==, "Text message while 1 attachment is still expected at byte offset 0");
    g_clear_error (&error);

    /* "should resume decoding after calling destroy()": reset, then a
     * text packet decodes. */
    g_assert_true (socket_io_decoder_feed_text (decoder, header, strlen (header), &packet, &error));
    socket_io_decoder_reset (decoder);
    g_assert_true (socket_io_decoder_feed_text (decoder, "2[\"hello\"]", 10, &packet, &error));
    g_assert_no_error (error);
    g_assert_nonnull (packet);
    socket_io_packet_unref (packet);
  }
}

static void
test_malformed (void)
{
  g_autofree char *deep_ok = NULL, *deep_bad = NULL;
  GString *s;
  guint i;

  g_test_summary ("Malformed packets are PARSE errors naming the problem and its offset");

  assert_parse_error (V5, "", NULL, 0, "Empty packet", 0);
  assert_parse_error (V5, " ", NULL, 0, "Unknown packet type “ ”", 0);
  assert_parse_error (V5, "7", NULL, 0, "Unknown packet type “7”", 0);
  assert_parse_error (V5, "2[\"a\xff\"]", NULL, 0, "Invalid UTF-8", 4);
  {
    g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
    g_autoptr(GError) error = NULL;
    SocketIOPacket *packet = NULL;

    g_assert_false (socket_io_decoder_feed_text (decoder, "2/a\0b,[\"x\"]", 11, &packet, &error));
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
    g_assert_cmpstr (error->message, ==, "Invalid UTF-8 or NUL in a text message at byte offset 3");
  }

  /* Header */
  assert_parse_error (V5, "2 [\"a\"]", NULL, 0, "Payload starts with whitespace", 1);
  assert_parse_error (V5, "2/a, [\"a\"]", NULL, 0, "Payload starts with whitespace", 4);
  assert_parse_error (V5, "21 [\"a\"]", NULL, 0, "Payload starts with whitespace", 2);
  assert_parse_error (V5, "29007199254740992[\"a\"]", NULL, 0, "Ack id over 2^53 - 1", 1);
  assert_parse_error (V5, "2999999999999999999999999999[\"a\"]", NULL, 0, "Ack id over 2^53 - 1", 1);
  assert_parse_error (V5, "599999999999999999999-[\"a\"]", NULL, 0, "More than 10 attachments", 2);
  assert_parse_error (V5, "0/a,1", NULL, 0, "Ack id on a packet of type 0", 4);
  assert_parse_error (V5, "11", NULL, 0, "Ack id on a packet of type 1", 1);
  assert_parse_error (V5, "3[\"a\"]", NULL, 0, "ACK without an id", 1);
  assert_parse_error (V5, "31", NULL, 0, "ACK without payload", 2);
  assert_parse_error (V5, "2", NULL, 0, "EVENT without payload", 1);
  assert_parse_error (V5, "2/admin[\"a\"]", NULL, 0, "EVENT without payload", 12);
  assert_parse_error (V5, "212", NULL, 0, "EVENT without payload", 3);
  assert_parse_error (V5, "2[]", NULL, 0, "EVENT payload is an empty array", 1);
  assert_parse_error (V5, "2[1e400]", NULL, 0, "Event name is not a finite number", 1);
  assert_parse_error (V5, "2[-1e999,\"x\"]", NULL, 0, "Event name is not a finite number", 1);
  assert_parse_error (V5, "2null", NULL, 0, "Payload is null", 1);
  assert_parse_error (V5, "4null", NULL, 0, "Payload is null", 1);
  assert_parse_error (V5, "4[]", NULL, 0, "neither an object nor a string", 1);
  assert_parse_error (V5, "51-", NULL, 0, "Attachments announced without a payload", 3);
  {
    g_autoptr(SocketIOPacket) p = NULL;

    p = assert_round_trip (V5, "29007199254740991[\"a\"]", NULL, 0);
    g_assert_cmpint (socket_io_packet_get_id (p), ==, SOCKET_IO_MAX_ACK_ID);
    g_clear_pointer (&p, socket_io_packet_unref);
    p = assert_round_trip (V5, "30[]", NULL, 0);
    g_assert_cmpint (socket_io_packet_get_id (p), ==, 0);
    g_clear_pointer (&p, socket_io_packet_unref);
    p = assert_round_trip (V5, "4", NULL, 0);
    g_clear_pointer (&p, socket_io_packet_unref);
    p = assert_round_trip (V5, "2[1.5]", NULL, 0);
    g_assert_null (socket_io_packet_get_event_name (p));
  }
  /* Leading zeros, as Number() reads them; "2/," is the main namespace. */
  assert_decodes_to (V5, "2007[\"a\"]", "27[\"a\"]");
  assert_parse_error (V5, "500-[\"a\"]", NULL, 0, "without attachments", 3);
  {
    const char *x[] = { "x" };
    g_autoptr(SocketIOPacket) p = decode (V5, "501-[\"a\",{\"_placeholder\":true,\"num\":0}]", x, 1, NULL);
    g_autofree char *t = encode_text (p, NULL);

    g_assert_cmpstr (t, ==, "51-[\"a\",{\"_placeholder\":true,\"num\":0}]");
  }
  assert_decodes_to (V5, "2/,[\"a\"]", "2[\"a\"]");
  assert_decodes_to (V5, "2[\"a\"] \n", "2[\"a\"]");

  /* JSON: only RFC 8259 */
  assert_parse_error (V5, "2[\"a\",]", NULL, 0, "Unexpected character in JSON", 6);
  assert_parse_error (V5, "2[\"a\"]x", NULL, 0, "Unexpected data after the JSON value", 6);
  assert_parse_error (V5, "2[\"a\"][]", NULL, 0, "Unexpected data after the JSON value", 6);
  assert_parse_error (V5, "2['a']", NULL, 0, "Unexpected character in JSON", 2);
  assert_parse_error (V5, "2[\"a\",/*c*/1]", NULL, 0, "Unexpected character in JSON", 6);
  assert_parse_error (V5, "2[\"a\",01]", NULL, 0, "Expected “,” or “]”", 7);
  assert_parse_error (V5, "2[\"a\",1.]", NULL, 0, "Malformed JSON number", 8);
  assert_parse_error (V5, "2[\"a\",-]", NULL, 0, "Malformed JSON number", 7);
  assert_parse_error (V5, "2[\"a\",+1]", NULL, 0, "Unexpected character in JSON", 6);
  assert_parse_error (V5, "2[\"a\",1e]", NULL, 0, "Malformed JSON number", 8);
  assert_parse_error (V5, "2[\"a\",0x10]", NULL, 0, "Expected “,” or “]”", 7);
  assert_parse_error (V5, "2[\"a\",NaN]", NULL, 0, "Unexpected character in JSON", 6);
  /* ... which json-glib's JsonParser takes: the validator runs first. */
  assert_parse_error (V5, "2[\"a\",.5]", NULL, 0, "Unexpected character in JSON", 6);
  assert_parse_error (V5, "2\xef\xbb\xbf[\"a\"]", NULL, 0, "Unexpected character in JSON", 1);
  assert_parse_error (V5, "2[\"a\",\"\\u004G\"]", NULL, 0, "Malformed \\u escape", 7);
  assert_parse_error (V5, "2[\"a\",\"\\U0041\"]", NULL, 0, "Invalid escape", 7);
  assert_parse_error (V5, "2[\"a\"]//c", NULL, 0, "Unexpected data after the JSON value", 6);
  assert_parse_error (V5, "2[\"a\",tru]", NULL, 0, "Invalid JSON literal", 6);
  assert_parse_error (V5, "2[\"a\",{a:1}]", NULL, 0, "Expected a member name", 7);
  assert_parse_error (V5, "2[\"a\",{\"a\" 1}]", NULL, 0, "Expected “:”", 11);
  assert_parse_error (V5, "2[\"a\",{\"a\":1", NULL, 0, "Unterminated JSON object", 12);
  assert_parse_error (V5, "2[\"a\",\"\t\"]", NULL, 0, "Unescaped control character U+0009", 7);
  assert_parse_error (V5, "2[\"a\",\"\\x\"]", NULL, 0, "Invalid escape", 7);
  assert_parse_error (V5, "2[\"a\",\"\\u12\"]", NULL, 0, "Malformed \\u escape", 7);
  assert_parse_error (V5, "2[\"a\",\"\\ud800\"]", NULL, 0, "Lone surrogate \\uD800", 7);
  assert_parse_error (V5, "2[\"a\",\"\\udc00\\ud800\"]", NULL, 0, "Lone surrogate \\uDC00", 7);
  assert_parse_error (V5, "2[\"a\",\"\\ud800\\u0041\"]", NULL, 0, "Lone surrogate \\uD800", 7);
  assert_parse_error (V5, "2[\"a\",\"x\\u0000\"]", NULL, 0, "U+0000 in a JSON string is not supported", 8);
  assert_parse_error (V5, "2[\"a\",\"", NULL, 0, "Unterminated JSON string", 6);
  assert_parse_error (V5, "2[\"a\",\"\\", NULL, 0, "Unterminated JSON string", 6);
  assert_parse_error (V5, "2[\"a\",", NULL, 0, "Unexpected end of JSON", 6);

  /* Escapes decode (and encode the way JSON.stringify() does). */
  assert_decodes_to (V5, "2[\"\\u0041\\/\\ud83d\\ude00\\u00e9\\u001f\\b\"]", "2[\"A/\xf0\x9f\x98\x80\xc3\xa9\\u001f\\b\"]");

  /* Depth: 128 levels pass, 129 do not. */
  s = g_string_new ("2[\"a\",");
  for (i = 1; i < 128; i++)
    g_string_append_c (s, '[');
  for (i = 1; i < 128; i++)
    g_string_append_c (s, ']');
  g_string_append_c (s, ']');
  deep_ok = g_string_free (s, FALSE);
  assert_decodes_to (V5, deep_ok, deep_ok);
  s = g_string_new ("2[\"a\",");
  for (i = 0; i < 64; i++)
    g_string_append (s, "{\"k\":[");
  deep_bad = g_string_free (s, FALSE);
  assert_parse_error (V5, deep_bad, NULL, 0, "JSON nested deeper than 128 levels", -1);
  /* A million levels: an error, not a stack overflow. */
  {
    g_autofree char *million = g_malloc (1000003);

    million[0] = '2';
    memset (million + 1, '[', 1000001);
    million[1000002] = '\0';
    assert_parse_error (V5, million, NULL, 0, "JSON nested deeper than 128 levels", 129);
  }
}

static void
test_placeholders (void)
{
  const char *ab[] = { "A", "B" };
  const char *a[] = { "A" };
  const char *placeholder = "{\"_placeholder\":true,\"num\":0}";
  g_autofree char *text = NULL;
  g_autoptr(SocketIOPacket) p = NULL;
  g_autoptr(GPtrArray) attachments = NULL;
  g_autofree char *again = NULL;

  g_test_summary ("Placeholders: any nesting, any order on input, renumbered in order on output; "
                  "duplicates, unused attachments and malformed placeholders are errors");

  /* Out of order on input: decoded as sent, encoded in write order (as
   * the reference's encoder numbers them). */
  p = decode (V5, "52-[\"e\",{\"x\":{\"_placeholder\":true,\"num\":1}},[{\"_placeholder\":true,\"num\":0}]]", ab, 2, NULL);
  g_assert_nonnull (p);
  again = encode_text (p, &attachments);
  g_assert_cmpstr (again, ==, "52-[\"e\",{\"x\":{\"_placeholder\":true,\"num\":0}},[{\"_placeholder\":true,\"num\":1}]]");
  g_assert_cmpuint (attachments->len, ==, 2);
  g_assert_cmpmem (g_bytes_get_data (attachments->pdata[0], NULL), 1, "B", 1);
  g_assert_cmpmem (g_bytes_get_data (attachments->pdata[1], NULL), 1, "A", 1);
  {
    g_autoptr(SocketIOPacket) q = decode (V5, "52-[\"e\",{\"x\":{\"_placeholder\":true,\"num\":0}},[{\"_placeholder\":true,\"num\":1}]]",
                                          (const char *[]) { "B", "A" }, 2, NULL);
    g_assert_true (socket_io_packet_equal (p, q));
  }

  /* Deep and in object members, inside the event name's array position 1+. */
  check_round_trip (V5, "51-[\"e\",{\"a\":{\"b\":[[[{\"_placeholder\":true,\"num\":0}]]]}}]", a, 1);

  /* Placeholder errors are found on the tree: at the payload's offset. */
  assert_parse_error (V5, "52-[\"e\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]", ab, 2,
                      "Placeholder 0 used twice", 3);
  assert_parse_error (V5, "52-[\"e\",{\"_placeholder\":true,\"num\":0}]", ab, 2,
                      "Attachment 1 announced but no placeholder refers to it", 3);
  assert_parse_error (V5, "51-[\"e\",{\"_placeholder\":true,\"num\":-1}]", a, 1, "Placeholder -1 out of range", 3);
  assert_parse_error (V5, "51-[\"e\",{\"_placeholder\":true,\"num\":0.0}]", a, 1, "Malformed binary placeholder", 3);
  assert_parse_error (V5, "51-[\"e\",{\"_placeholder\":true}]", a, 1, "Malformed binary placeholder", 3);
  assert_parse_error (V5, "51-[\"e\",{\"_placeholder\":true,\"num\":0,\"x\":1}]", a, 1, "Malformed binary placeholder", 3);
  assert_parse_error (V5, "51-[{\"_placeholder\":true,\"num\":0}]", a, 1, "neither a string nor a number", 3);
  /* _placeholder other than true is data, as in the reference. */
  check_round_trip (V5, "51-[\"e\",{\"_placeholder\":1,\"num\":0},{\"_placeholder\":true,\"num\":0}]", a, 1);
  /* Without attachments, placeholder-shaped objects are plain data. */
  text = g_strdup_printf ("2[\"e\",%s]", placeholder);
  check_round_trip (V5, text, NULL, 0);
  assert_parse_error (V5, "50-[\"e\",{\"_placeholder\":true,\"num\":5}]", NULL, 0, "without attachments", 2);
}

static void
test_limits (void)
{
  g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) six = g_bytes_new_static ("123456", 6);
  g_autoptr(GBytes) four = g_bytes_new_static ("1234", 4);
  SocketIOPacket *packet = NULL;
  const char *header = "52-[\"e\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
  GString *big;
  guint i;

  g_test_summary ("The attachment byte bound, the tree memory bound, and pending state");

  socket_io_decoder_set_max_attachment_bytes (decoder, 10);
  g_assert_true (socket_io_decoder_feed_text (decoder, header, strlen (header), &packet, &error));
  g_assert_cmpuint (socket_io_decoder_get_missing_attachments (decoder), ==, 2);
  g_assert_true (socket_io_decoder_feed_binary (decoder, six, &packet, &error));
  g_assert_null (packet);
  g_assert_cmpuint (socket_io_decoder_get_pending_bytes (decoder), ==, 6);
  g_assert_false (socket_io_decoder_feed_binary (decoder, six, &packet, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  g_assert_cmpstr (error->message, ==, "Attachments of one packet over 10 bytes at byte offset 0");
  g_clear_error (&error);
  g_assert_cmpuint (socket_io_decoder_get_missing_attachments (decoder), ==, 0);
  g_assert_cmpuint (socket_io_decoder_get_pending_bytes (decoder), ==, 0);
  /* Exactly at the bound is fine. */
  g_assert_true (socket_io_decoder_feed_text (decoder, header, strlen (header), &packet, &error));
  g_assert_true (socket_io_decoder_feed_binary (decoder, six, &packet, &error));
  g_assert_true (socket_io_decoder_feed_binary (decoder, four, &packet, &error));
  g_assert_no_error (error);
  g_assert_nonnull (packet);
  g_assert_cmpuint (socket_io_decoder_get_pending_bytes (decoder), ==, 0);
  g_clear_pointer (&packet, socket_io_packet_unref);

  /* 100,000 empty arrays (300 kB of text) estimate to ~13 MB of tree:
   * refused under a 1 MB bound, decoded under the default. */
  big = g_string_new ("2[\"e\"");
  for (i = 0; i < 100000; i++)
    g_string_append (big, ",[]");
  g_string_append_c (big, ']');
  socket_io_decoder_set_max_tree_bytes (decoder, 1024 * 1024);
  g_assert_false (socket_io_decoder_feed_text (decoder, big->str, big->len, &packet, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  g_assert_true (g_str_has_prefix (error->message, "Decoded JSON would take more than 1048576 bytes at byte offset "));
  g_clear_error (&error);
  socket_io_decoder_set_max_tree_bytes (decoder, SOCKET_IO_DEFAULT_MAX_TREE_BYTES);
  g_assert_true (socket_io_decoder_feed_text (decoder, big->str, big->len, &packet, &error));
  g_assert_no_error (error);
  g_clear_pointer (&packet, socket_io_packet_unref);
  /* Long strings count too. */
  g_string_assign (big, "2[\"");
  for (i = 0; i < 200000; i++)
    g_string_append_c (big, 'x');
  g_string_append (big, "\"]");
  socket_io_decoder_set_max_tree_bytes (decoder, 100000);
  g_assert_false (socket_io_decoder_feed_text (decoder, big->str, big->len, &packet, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  g_clear_error (&error);
  /* ... escaped ones too (a string of escaped quotes). */
  g_string_assign (big, "2[\"e\",\"");
  for (i = 0; i < 100000; i++)
    g_string_append (big, "\\\"");
  g_string_append (big, "\"]");
  g_assert_false (socket_io_decoder_feed_text (decoder, big->str, big->len, &packet, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
  g_assert_true (g_str_has_prefix (error->message, "Decoded JSON would take more than 100000 bytes at byte offset "));
  g_clear_error (&error);
  socket_io_decoder_set_max_tree_bytes (decoder, 200000);
  g_assert_true (socket_io_decoder_feed_text (decoder, big->str, big->len, &packet, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (json_array_get_string_element (json_node_get_array (socket_io_packet_get_data (packet)), 1)), ==, 100000);
  g_clear_pointer (&packet, socket_io_packet_unref);
  g_string_free (big, TRUE);

  socket_io_decoder_set_max_depth (decoder, 1);
  g_assert_true (socket_io_decoder_feed_text (decoder, "2[\"e\",1]", 8, &packet, &error));
  g_clear_pointer (&packet, socket_io_packet_unref);
  g_assert_false (socket_io_decoder_feed_text (decoder, "2[\"e\",[]]", 9, &packet, &error));
  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
}

/* --- encoder --- */

static char *
encode_data (SocketIOPacketType  type,
             const char         *nsp,
             JsonNode           *data,
             gint64              id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = socket_io_packet_new (type, nsp, data, id, NULL, &error);

  g_assert_no_error (error);
  return encode_text (packet, NULL);
}

static void
assert_number (double      value,
               const char *want)
{
  g_autoptr(GString) out = g_string_new (NULL);

  socket_io_json_write_double (out, value);
  if (strcmp (out->str, want) != 0)
    g_error ("%.17g written as %s, want %s", value, out->str, want);
}

/* @value is written as valid JSON that reads back (through the decoder:
 * check_text() and JsonParser) as the same double. */
static void
assert_number_round_trips (double value)
{
  g_autoptr(GString) out = g_string_new ("2[\"n\",");
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  JsonNode *back;

  socket_io_json_write_double (out, value);
  g_string_append_c (out, ']');
  packet = decode (V5, out->str, NULL, 0, &error);
  if (packet == NULL)
    g_error ("%.17g written as %s, which does not decode: %s", value, out->str, error->message);
  back = json_array_get_element (json_node_get_array (socket_io_packet_get_data (packet)), 1);
  if (json_node_get_double (back) != value)
    g_error ("%.17g written as %s, which reads back as %.17g", value, out->str, json_node_get_double (back));
}

static void
test_encode_numbers (void)
{
  guint i;
  int k, d;

  g_test_summary ("Doubles are written as valid JSON that reads back as the same double (json-glib 1.6's "
                  "JsonGenerator writes 1e21 as 1e+21.0 and infinity as inf.0), in the fewest of 15-17 digits");

  /* Where the fewest of 15, 16, 17 digits are what JavaScript writes. */
  assert_number (0.1, "0.1");
  assert_number (-0.0, "0");
  assert_number (1.0, "1");
  assert_number (-1.5, "-1.5");
  assert_number (100.0, "100");
  assert_number (12345.678, "12345.678");
  assert_number (0.1 + 0.2, "0.30000000000000004");
  assert_number (1.0 / 3.0, "0.3333333333333333");
  assert_number (1.7976931348623157e308, "1.7976931348623157e+308");
  assert_number (0.000123, "0.000123");
  assert_number (9007199254740992.0, "9007199254740992");
  /* Where JavaScript writes it otherwise: same value. */
  assert_number (1e21, "1e+21");
  assert_number (1e20, "1e+20");                  /* JS: 100000000000000000000 */
  assert_number (1e-7, "1e-07");                  /* JS: 1e-7 */
  assert_number (5e-324, "4.94065645841247e-324");   /* JS: 5e-324 */
  assert_number (INFINITY, "null");
  assert_number (-INFINITY, "null");
  assert_number (NAN, "null");

  /* Every D×10^K (JsonGenerator writes 919 of them as invalid JSON), the
   * extremes, and random bit patterns. */
  for (k = -324; k <= 308; k++)
    for (d = 1; d <= 9; d++)
      {
        char buf[32];
        double value;

        g_snprintf (buf, sizeof buf, "%de%d", d, k);
        value = g_ascii_strtod (buf, NULL);
        if (isfinite (value))
          {
            assert_number_round_trips (value);
            assert_number_round_trips (-value);
          }
      }
  assert_number_round_trips (5e-324);
  assert_number_round_trips (2.2250738585072014e-308);
  assert_number_round_trips (2.2250738585072009e-308);
  assert_number_round_trips (1.7976931348623157e308);
  assert_number_round_trips (6.142758149716505e-238);
  for (i = 0; i < 20000; i++)
    {
      guint64 bits = ((guint64) g_test_rand_int () << 32) | (guint32) g_test_rand_int ();
      double value;

      memcpy (&value, &bits, sizeof value);
      if (isfinite (value))
        assert_number_round_trips (value);
    }

  /* Through the decoder: integers beyond ±2^53 become the double
   * JSON.parse() gives (json-glib alone wraps them: 1e20 as -1). */
  assert_decodes_to (V5, "2[\"n\",9007199254740993,12345678901234567890,100000000000000000000,1e400,-0,-0.0,1E2,0.5e-10]",
                     "2[\"n\",9007199254740992,1.2345678901234567e+19,1e+20,null,0,0,100,5e-11]");
  assert_decodes_to (V5, "2[\"n\",9007199254740992,-9007199254740992,-99999999999999999999,1.0,2.50]",
                     "2[\"n\",9007199254740992,-9007199254740992,-1e+20,1,2.5]");
}

static void
test_encode_strings (void)
{
  g_autoptr(JsonNode) data = json_node_new (JSON_NODE_ARRAY);
  g_autoptr(JsonArray) array = json_array_new ();
  g_autoptr(JsonObject) object = json_object_new ();
  g_autofree char *text = NULL;

  g_test_summary ("Strings and member names are escaped as JSON.stringify() escapes them (json-glib 1.6 leaves "
                  "U+001F raw), members in insertion order");

  json_array_add_string_element (array, "e");
  json_array_add_string_element (array, "\x01\b\f\n\r\t\"\\/\x1f\x7f \xe2\x80\xa8 \xc3\xa9 \xf0\x9f\x98\x80 <>&'");
  json_object_set_int_member (object, "z\n", 1);
  json_object_set_int_member (object, "a", 2);
  json_object_set_int_member (object, "10", 3);
  json_object_set_int_member (object, "01", 4);
  json_object_set_int_member (object, "4294967295", 5);
  json_object_set_int_member (object, "4294967294", 6);
  json_object_set_int_member (object, "2", 7);
  json_array_add_object_element (array, g_steal_pointer (&object));
  json_array_add_null_element (array);
  json_array_add_boolean_element (array, FALSE);
  json_array_add_int_element (array, G_MININT64);
  json_array_add_double_element (array, 2.5);
  json_node_take_array (data, g_steal_pointer (&array));
  text = encode_data (SOCKET_IO_PACKET_EVENT, "/a", data, 7);
  g_assert_cmpstr (text, ==,
                   "2/a,7[\"e\",\"\\u0001\\b\\f\\n\\r\\t\\\"\\\\/\\u001f\x7f \xe2\x80\xa8 \xc3\xa9 \xf0\x9f\x98\x80 <>&'\","
                   "{\"z\\n\":1,\"a\":2,\"10\":3,\"01\":4,\"4294967295\":5,\"4294967294\":6,\"2\":7},null,false,-9223372036854775808,2.5]");

  /* A repeated member keeps its first place and its last value (JS). */
  assert_decodes_to (V5, "2[\"e\",{\"k\":1,\"j\":2,\"k\":3}]", "2[\"e\",{\"k\":3,\"j\":2}]");
}

static void
test_encode_binary (void)
{
  g_autoptr(GBytes) a = g_bytes_new_static ("A", 1);
  g_autoptr(GBytes) b = g_bytes_new_static ("B", 1);
  g_autoptr(GPtrArray) attachments = g_ptr_array_new ();
  g_autoptr(GPtrArray) out = NULL;
  g_autoptr(JsonNode) data = NULL;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonArray) array = json_array_new ();
  g_autoptr(JsonObject) object = json_object_new ();
  g_autofree char *text = NULL;

  g_test_summary ("Binary packets: placeholders numbered in write order, an attachment used twice is sent twice; "
                  "the text and attachments are immutable and shareable");

  g_ptr_array_add (attachments, a);
  g_ptr_array_add (attachments, b);
  json_array_add_string_element (array, "up");
  json_object_set_member (object, "x", socket_io_placeholder_new (1));
  json_array_add_object_element (array, g_steal_pointer (&object));
  json_array_add_element (array, socket_io_placeholder_new (0));
  json_array_add_element (array, socket_io_placeholder_new (1));
  data = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (data, g_steal_pointer (&array));

  packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, "/", data, 3, attachments, &error);
  g_assert_no_error (error);
  g_assert_true (json_node_is_immutable (data));
  text = encode_text (packet, &out);
  g_assert_cmpstr (text, ==, "53-3[\"up\",{\"x\":{\"_placeholder\":true,\"num\":0}},"
                             "{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":2}]");
  g_assert_cmpuint (out->len, ==, 3);
  g_assert_true (out->pdata[0] == b);
  g_assert_true (out->pdata[1] == a);
  g_assert_true (out->pdata[2] == b);

  /* BINARY_ACK */
  {
    g_autoptr(SocketIOPacket) ack = NULL;
    g_autoptr(JsonNode) args = json ("[{\"_placeholder\":true,\"num\":0}]");
    g_autofree char *t = NULL;

    ack = socket_io_packet_new (SOCKET_IO_PACKET_BINARY_ACK, "/admin", args, 1, attachments->len ? (GPtrArray *) attachments : NULL, &error);
    g_assert_null (ack);
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
    g_assert_cmpstr (error->message, ==, "No placeholder refers to attachment 1");
    g_clear_error (&error);
    g_ptr_array_set_size (attachments, 1);
    ack = socket_io_packet_new (SOCKET_IO_PACKET_BINARY_ACK, "/admin", args, 1, attachments, &error);
    g_assert_no_error (error);
    t = encode_text (ack, NULL);
    g_assert_cmpstr (t, ==, "61-/admin,1[{\"_placeholder\":true,\"num\":0}]");
  }
}

static void
test_encode_invalid (void)
{
  struct {
    SocketIOPacketType type;
    const char *nsp;
    const char *data;
    gint64 id;
    guint n_attachments;
    const char *message;
  } cases[] = {
    { SOCKET_IO_PACKET_EVENT, "/", "[\"disconnect\"]", -1, 0, "Reserved event name" },
    { SOCKET_IO_PACKET_EVENT, "/", "[]", -1, 0, "EVENT payload is an empty array" },
    { SOCKET_IO_PACKET_EVENT, "/", "[true]", -1, 0, "Event name is neither a string nor a number" },
    { SOCKET_IO_PACKET_EVENT, "/", NULL, -1, 0, "EVENT without payload" },
    { SOCKET_IO_PACKET_EVENT, "admin", "[\"e\"]", -1, 0, "Invalid namespace “admin”" },
    { SOCKET_IO_PACKET_EVENT, "/a,b", "[\"e\"]", -1, 0, "Invalid namespace “/a,b”" },
    { SOCKET_IO_PACKET_EVENT, "/", "[\"e\"]", SOCKET_IO_MAX_ACK_ID + 1, 0, "Invalid ack id 9007199254740992" },
    { SOCKET_IO_PACKET_CONNECT, "/", "{}", 1, 0, "Invalid ack id 1 for this packet type" },
    { SOCKET_IO_PACKET_ACK, "/", "[]", -1, 0, "ACK without an id" },
    { SOCKET_IO_PACKET_ACK, "/", "{}", 1, 0, "ACK payload is not an array" },
    { SOCKET_IO_PACKET_CONNECT, "/", "[]", -1, 0, "CONNECT payload is not an object" },
    { SOCKET_IO_PACKET_CONNECT, "/", "{}", -1, 1, "Only EVENT and ACK packets carry attachments" },
    { SOCKET_IO_PACKET_DISCONNECT, "/", "{}", -1, 0, "DISCONNECT carries no payload" },
    { SOCKET_IO_PACKET_CONNECT_ERROR, "/", "1", -1, 0, "CONNECT_ERROR payload is neither an object nor a string" },
    { SOCKET_IO_PACKET_EVENT, "/", "[\"e\"]", -1, 1, "No placeholder refers to attachment 0" },
    { SOCKET_IO_PACKET_EVENT, "/", NULL, -1, 1, "EVENT without payload" },
    { SOCKET_IO_PACKET_EVENT, "/", "[\"e\",{\"_placeholder\":true,\"num\":1}]", -1, 1, "Placeholder does not name one of the attachments" },
    { SOCKET_IO_PACKET_EVENT, "/", "[\"e\",{\"_placeholder\":true,\"num\":0,\"x\":0}]", -1, 1, "Placeholder does not name one of the attachments" },
  };
  guint i;

  g_test_summary ("Packets that break the protocol's rules are not built (SOCKET_IO_ERROR_INVALID)");

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(JsonNode) data = cases[i].data ? json (cases[i].data) : NULL;
      g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr(GError) error = NULL;
      g_autoptr(SocketIOPacket) packet = NULL;

      if (cases[i].n_attachments)
        g_ptr_array_add (attachments, g_bytes_new_static ("x", 1));
      packet = socket_io_packet_new (cases[i].type, cases[i].nsp, data, cases[i].id, attachments, &error);
      g_assert_null (packet);
      g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
      if (!g_str_has_prefix (error->message, cases[i].message))
        g_error ("case %u: “%s”, want “%s”", i, error->message, cases[i].message);
    }

  /* Strings that are not UTF-8, and trees too deep to write. */
  {
    g_autoptr(JsonNode) data = json ("[\"e\"]");
    g_autoptr(GError) error = NULL;
    g_autoptr(SocketIOPacket) packet = NULL;
    JsonNode *deep = json_node_new (JSON_NODE_ARRAY);
    JsonNode *inner = deep;

    json_node_take_array (deep, json_array_new ());
    json_array_add_string_element (json_node_get_array (data), "\xff");
    packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, "/", data, -1, NULL, &error);
    g_assert_null (packet);
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
    g_clear_error (&error);

    for (i = 0; i < SOCKET_IO_JSON_MAX_DEPTH + 1; i++)
      {
        JsonNode *child = json_node_new (JSON_NODE_ARRAY);

        json_node_take_array (child, json_array_new ());
        json_array_add_element (json_node_get_array (inner), child);
        inner = child;
      }
    g_clear_pointer (&data, json_node_unref);
    data = json ("[\"e\"]");
    json_array_add_element (json_node_get_array (data), deep);
    packet = socket_io_packet_new (SOCKET_IO_PACKET_EVENT, "/", data, -1, NULL, &error);
    g_assert_null (packet);
    g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID);
  }

  /* JSON null is no payload; BINARY_EVENT without attachments is EVENT. */
  {
    g_autoptr(JsonNode) null = json_node_new (JSON_NODE_NULL);
    g_autoptr(JsonNode) args = json ("[\"e\"]");
    g_autofree char *a = encode_data (SOCKET_IO_PACKET_CONNECT_ERROR, "/", null, -1);
    g_autofree char *b = encode_data (SOCKET_IO_PACKET_BINARY_EVENT, NULL, args, -1);

    g_assert_cmpstr (a, ==, "4");
    g_assert_cmpstr (b, ==, "2[\"e\"]");
  }
}

static void
test_decoder_sequence (void)
{
  g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
  const char *ab[] = { "A", "B" };
  const char *c[] = { "C" };
  guint round;

  g_test_summary ("One decoder, many packets: plain and binary interleaved, state clean after each");

  for (round = 0; round < 3; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(SocketIOPacket) p1 = decode_full (decoder, "0/a,{\"t\":1}", NULL, 0, &error);
      g_autoptr(SocketIOPacket) p2 = NULL;
      g_autoptr(SocketIOPacket) p3 = NULL;
      g_autoptr(SocketIOPacket) p4 = NULL;

      g_assert_no_error (error);
      g_assert_cmpint (socket_io_packet_get_packet_type (p1), ==, SOCKET_IO_PACKET_CONNECT);
      p2 = decode_full (decoder, "52-/a,5[\"e\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", ab, 2, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (socket_io_packet_get_attachments (p2)->len, ==, 2);
      g_assert_cmpuint (socket_io_decoder_get_missing_attachments (decoder), ==, 0);
      g_assert_cmpuint (socket_io_decoder_get_pending_bytes (decoder), ==, 0);
      p3 = decode_full (decoder, "2/a,[\"f\"]", NULL, 0, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (socket_io_packet_get_attachments (p3)->len, ==, 0);
      p4 = decode_full (decoder, "61-/a,9[{\"_placeholder\":true,\"num\":0}]", c, 1, &error);
      g_assert_no_error (error);
      g_assert_cmpint (socket_io_packet_get_packet_type (p4), ==, SOCKET_IO_PACKET_ACK);
      g_assert_cmpint (socket_io_packet_get_id (p4), ==, 9);
      g_assert_cmpmem (g_bytes_get_data (socket_io_packet_get_attachments (p4)->pdata[0], NULL), 1, "C", 1);
      /* The packets do not share state with the decoder. */
      g_assert_cmpuint (socket_io_packet_get_attachments (p2)->len, ==, 2);
    }
}

/* --- property tests --- */

static JsonNode *
random_value (guint      depth,
              guint     *n_placeholders,
              GPtrArray *attachments)
{
  JsonNode *node;
  guint kind = g_test_rand_int_range (0, depth > 4 ? 6 : 9);
  guint i, n;

  switch (kind)
    {
    case 0:
      return json_node_new (JSON_NODE_NULL);
    case 1:
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_boolean (node, g_test_rand_bit ());
      return node;
    case 2:
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_int (node, g_test_rand_int_range (-1000000, 1000000) *
                               (gint64) g_test_rand_int_range (1, 1 << 20));
      return node;
    case 3:
      {
        double d;

        do
          {
            guint64 bits = ((guint64) g_test_rand_int () << 32) | (guint32) g_test_rand_int ();

            memcpy (&d, &bits, sizeof d);
          }
        while (!isfinite (d));
        node = json_node_new (JSON_NODE_VALUE);
        json_node_set_double (node, g_test_rand_bit () ? d : g_test_rand_double_range (-1e6, 1e6));
        return node;
      }
    case 4:
    case 5:
      {
        GString *s = g_string_new (NULL);
        static const gunichar alphabet[] = { 'a', 'Z', '0', ' ', '"', '\\', '/', '\n', 0x01, 0x1f, 0x7f,
                                             0xe9, 0x2028, 0xfeff, 0x1f600, 0x10ffff, '{', '[', ',' };

        n = g_test_rand_int_range (0, 12);
        for (i = 0; i < n; i++)
          g_string_append_unichar (s, alphabet[g_test_rand_int_range (0, G_N_ELEMENTS (alphabet))]);
        node = json_node_new (JSON_NODE_VALUE);
        json_node_set_string (node, s->str);
        g_string_free (s, TRUE);
        return node;
      }
    case 6:
      {
        JsonArray *array = json_array_new ();

        n = g_test_rand_int_range (0, 5);
        for (i = 0; i < n; i++)
          json_array_add_element (array, random_value (depth + 1, n_placeholders, attachments));
        node = json_node_new (JSON_NODE_ARRAY);
        json_node_take_array (node, array);
        return node;
      }
    case 7:
      {
        JsonObject *object = json_object_new ();

        n = g_test_rand_int_range (0, 5);
        for (i = 0; i < n; i++)
          {
            g_autofree char *key = g_strdup_printf ("k%c\"%u", 'a' + g_test_rand_int_range (0, 26), i);

            json_object_set_member (object, key, random_value (depth + 1, n_placeholders, attachments));
          }
        node = json_node_new (JSON_NODE_OBJECT);
        json_node_take_object (node, object);
        return node;
      }
    default:
      {
        guint8 buf[8];

        n = g_test_rand_int_range (0, sizeof buf);
        for (i = 0; i < n; i++)
          buf[i] = g_test_rand_int ();
        g_ptr_array_add (attachments, g_bytes_new (buf, n));
        return socket_io_placeholder_new (attachments->len - 1);
      }
    }
}

static void
test_round_trip_property (void)
{
  guint round;

  g_test_summary ("Random packets: encode, decode, equal packet; the encoding is a fixed point");

  for (round = 0; round < 3000; round++)
    {
      g_autoptr(GPtrArray) attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
      g_autoptr(JsonNode) data = NULL;
      g_autoptr(SocketIOPacket) packet = NULL;
      g_autoptr(SocketIOPacket) decoded = NULL;
      g_autoptr(GPtrArray) sent = NULL;
      g_autoptr(GPtrArray) sent_again = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
      g_autofree char *text = NULL;
      g_autofree char *again = NULL;
      g_autofree char *nsp = NULL;
      SocketIOPacketType type = g_test_rand_int_range (0, 5);
      gint64 id = SOCKET_IO_NO_ACK_ID;
      guint n_placeholders = 0, i;

      if (g_test_rand_bit ())
        nsp = g_strdup_printf ("/n%u?x=%c", round, "a/{[1"[round % 5]);
      switch (type)
        {
        case SOCKET_IO_PACKET_EVENT:
        case SOCKET_IO_PACKET_ACK:
          {
            JsonArray *args = json_array_new ();
            guint n = g_test_rand_int_range (0, 5);

            if (type == SOCKET_IO_PACKET_EVENT)
              json_array_add_string_element (args, round % 7 ? "ev" : "connect!");
            for (i = 0; i < n; i++)
              json_array_add_element (args, random_value (1, &n_placeholders, attachments));
            data = json_node_new (JSON_NODE_ARRAY);
            json_node_take_array (data, args);
            if (type == SOCKET_IO_PACKET_ACK || g_test_rand_bit ())
              id = round % 3 ? g_test_rand_int_range (0, G_MAXINT32) : SOCKET_IO_MAX_ACK_ID - round;
          }
          break;
        case SOCKET_IO_PACKET_CONNECT:
          if (g_test_rand_bit ())
            data = json ("{\"token\":\"abc\",\"n\":[1,2.5,null]}");
          break;
        case SOCKET_IO_PACKET_CONNECT_ERROR:
          data = json (g_test_rand_bit () ? "{\"message\":\"no\",\"data\":{\"x\":1}}" : "\"no\"");
          break;
        default:
          break;
        }

      packet = socket_io_packet_new (type, nsp, data, id, attachments, &error);
      g_assert_no_error (error);
      text = encode_text (packet, &sent);

      if (!socket_io_decoder_feed_text (decoder, text, strlen (text), &decoded, &error))
        g_error ("%s does not decode: %s", text, error->message);
      for (i = 0; i < sent->len; i++)
        {
          g_assert_null (decoded);
          g_assert_true (socket_io_decoder_feed_binary (decoder, sent->pdata[i], &decoded, &error));
          g_assert_no_error (error);
        }
      g_assert_nonnull (decoded);
      if (!socket_io_packet_equal (packet, decoded))
        g_error ("%s decodes to a different packet", text);
      again = encode_text (decoded, &sent_again);
      g_assert_cmpstr (again, ==, text);
      g_assert_cmpuint (sent_again->len, ==, sent->len);
      for (i = 0; i < sent->len; i++)
        g_assert_true (g_bytes_equal (sent->pdata[i], sent_again->pdata[i]));
    }
}

static void
test_truncations (void)
{
  const char *texts[] = {
    "52-/admin,789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    "2/admin,456[\"project:delete\",123,{\"a\":[1.5e3,\"\\u00e9\\n\",true,false,null]}]",
    "0/admin,{\"token\":\"123\"}",
  };
  guint t;

  g_test_summary ("Every prefix and every one-byte change of valid packets decodes or fails cleanly");

  for (t = 0; t < G_N_ELEMENTS (texts); t++)
    {
      gsize len = strlen (texts[t]), cut;

      for (cut = 0; cut <= len; cut++)
        {
          static const char bytes[] = { '0', '9', '-', ',', '/', '[', ']', '{', '}', '"', '\\', ' ', 'x', '\x80' };
          guint b;

          for (b = 0; b <= G_N_ELEMENTS (bytes); b++)
            {
              g_autofree char *copy = g_strndup (texts[t], len);
              g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (V5);
              g_autoptr(GError) error = NULL;
              SocketIOPacket *packet = NULL;
              gsize n = cut;

              if (b < G_N_ELEMENTS (bytes))
                {
                  if (cut == len)
                    continue;
                  copy[cut] = bytes[b];
                  n = len;
                }
              if (socket_io_decoder_feed_text (decoder, copy, n, &packet, &error))
                {
                  g_assert_no_error (error);
                  g_clear_pointer (&packet, socket_io_packet_unref);
                }
              else
                {
                  const char *at = g_strrstr (error->message, " at byte offset ");

                  g_assert_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE);
                  g_assert_nonnull (at);
                  g_assert_cmpuint (g_ascii_strtoull (at + 16, NULL, 10), <=, n);
                  g_assert_null (packet);
                }
            }
        }
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/sio-packet/spec/v5", test_spec_v5);
  g_test_add_func ("/sio-packet/spec/v4", test_spec_v4);
  g_test_add_func ("/sio-packet/spec/test-suite", test_test_suite);
  g_test_add_func ("/sio-packet/reference-cases", test_reference_cases);
  g_test_add_func ("/sio-packet/malformed", test_malformed);
  g_test_add_func ("/sio-packet/placeholders", test_placeholders);
  g_test_add_func ("/sio-packet/limits", test_limits);
  g_test_add_func ("/sio-packet/decoder-sequence", test_decoder_sequence);
  g_test_add_func ("/sio-packet/encode/numbers", test_encode_numbers);
  g_test_add_func ("/sio-packet/encode/strings", test_encode_strings);
  g_test_add_func ("/sio-packet/encode/binary", test_encode_binary);
  g_test_add_func ("/sio-packet/encode/invalid", test_encode_invalid);
  g_test_add_func ("/sio-packet/round-trip", test_round_trip_property);
  g_test_add_func ("/sio-packet/truncations", test_truncations);

  return g_test_run ();
}
