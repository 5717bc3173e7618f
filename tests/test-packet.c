/* test-packet.c: the sans-I/O codec (src/core/: packet, payload, utf, enums)
 *
 * Vectors for every framing rule of PROTOCOL.md in both protocol versions,
 * every malformed input we could think of (each must fail with
 * ENGINE_IO_ERROR_PARSE and name its byte offset), zero-copy checks, and a
 * seeded random round-trip test per format.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-packet-private.h"

/* A string literal and its length, embedded NULs included. Careful: C hex
 * escapes swallow every following hex digit, so "\x1e" "4b", not "\x1e4b". */
#define S(literal) (literal), (sizeof (literal) - 1)

#define LOG_DOMAIN "EngineIO"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

static EngineIOPacket *
binary_packet (EngineIOPacketType  type,
               const void         *data,
               gsize               length)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, length);

  return engine_io_packet_new_binary (type, bytes);
}

static void
assert_text_packet (EngineIOPacket     *packet,
                    EngineIOPacketType  type,
                    const char         *text,
                    gsize               length)
{
  const char *got;
  gsize got_length = 12345;

  g_assert_nonnull (packet);
  g_assert_cmpint (engine_io_packet_get_packet_type (packet), ==, type);
  g_assert_false (engine_io_packet_is_binary (packet));
  got = engine_io_packet_get_text (packet, &got_length);
  g_assert_nonnull (got);
  g_assert_cmpmem (got, got_length, text, length);
  g_assert_cmpint (got[got_length], ==, '\0');
}

static void
assert_binary_packet (EngineIOPacket     *packet,
                      EngineIOPacketType  type,
                      const void         *data,
                      gsize               length)
{
  gsize got_length = 12345;
  GBytes *bytes;
  const void *got;

  g_assert_nonnull (packet);
  g_assert_cmpint (engine_io_packet_get_packet_type (packet), ==, type);
  g_assert_true (engine_io_packet_is_binary (packet));
  g_assert_null (engine_io_packet_get_text (packet, &got_length));
  g_assert_cmpuint (got_length, ==, 0);
  bytes = engine_io_packet_get_data (packet);
  got = g_bytes_get_data (bytes, &got_length);
  g_assert_cmpmem (got, got_length, data, length);
}

static void
assert_bytes (GBytes     *bytes,
              const void *expected,
              gsize       length)
{
  gsize size;
  const void *data;

  g_assert_nonnull (bytes);
  data = g_bytes_get_data (bytes, &size);
  g_assert_cmpmem (data, size, expected, length);
}

/* The message must name the problem and end with the byte offset. */
static void
assert_parse_error (GError     *error,
                    gsize       offset,
                    const char *problem)
{
  g_autofree char *suffix = g_strdup_printf ("at byte offset %" G_GSIZE_FORMAT, offset);

  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE);
  if (!g_str_has_suffix (error->message, suffix) || strstr (error->message, problem) == NULL)
    g_error ("Error “%s” does not mention “%s” and end with “%s”", error->message, problem, suffix);
}

static GPtrArray *
decode_payload (EngineIOPayloadFormat   format,
                const char             *data,
                gsize                   length,
                GError                **error)
{
  g_autoptr(GBytes) payload = g_bytes_new (data, length);

  return engine_io_payload_decode (format, payload, error);
}

static EngineIOPacket *
decode_frame (const char               *data,
              gsize                     length,
              gboolean                  is_binary,
              EngineIOProtocolVersion   version,
              GError                  **error)
{
  g_autoptr(GBytes) frame = g_bytes_new (data, length);

  return engine_io_packet_decode (frame, is_binary, version, error);
}

static GPtrArray *
packet_array (EngineIOPacket *first,
              ...)
{
  GPtrArray *array = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
  EngineIOPacket *packet;
  va_list args;

  va_start (args, first);
  for (packet = first; packet != NULL; packet = va_arg (args, EngineIOPacket *))
    g_ptr_array_add (array, packet);
  va_end (args);

  return array;
}

static void
assert_payload_encodes (EngineIOPayloadFormat  format,
                        GPtrArray             *packets,
                        const void            *expected,
                        gsize                  length)
{
  g_autoptr(GBytes) payload = engine_io_payload_encode (format, packets);
  g_autoptr(GByteArray) appended = g_byte_array_new ();

  assert_bytes (payload, expected, length);

  /* The _append variant appends after what is there. */
  g_byte_array_append (appended, (const guint8 *) "XY", 2);
  engine_io_payload_encode_append (format, (EngineIOPacket * const *) packets->pdata,
                                   packets->len, appended);
  g_assert_cmpuint (appended->len, ==, length + 2);
  g_assert_cmpmem (appended->data, 2, "XY", 2);
  g_assert_cmpmem (appended->data + 2, length, expected, length);
}

/* ------------------------------------------------------------------ */
/* Enumerations                                                         */
/* ------------------------------------------------------------------ */

static void
test_enums (void)
{
  static const char * const names[] = { "open", "close", "ping", "pong", "message", "upgrade", "noop" };
  EngineIOPacketType type;
  EngineIOProtocolVersion version;
  EngineIOTransportType transport;
  guint i;

  g_test_summary ("Packet types, protocol versions and transports convert to and from "
                  "their wire names; anything else is rejected.");

  for (i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_cmpstr (engine_io_packet_type_to_string (i), ==, names[i]);
      g_assert_true (engine_io_packet_type_from_string (names[i], &type));
      g_assert_cmpint (type, ==, i);
    }
  g_assert_true (engine_io_packet_type_from_string ("noop", NULL));
  g_assert_false (engine_io_packet_type_from_string ("Message", &type));
  g_assert_false (engine_io_packet_type_from_string ("", &type));
  g_assert_false (engine_io_packet_type_from_string ("4", &type));
  g_assert_false (engine_io_packet_type_from_string ("message ", &type));

  g_assert_cmpstr (engine_io_protocol_version_to_string (ENGINE_IO_PROTOCOL_V3), ==, "3");
  g_assert_cmpstr (engine_io_protocol_version_to_string (ENGINE_IO_PROTOCOL_V4), ==, "4");
  g_assert_true (engine_io_protocol_version_from_string ("3", &version));
  g_assert_cmpint (version, ==, ENGINE_IO_PROTOCOL_V3);
  g_assert_true (engine_io_protocol_version_from_string ("4", &version));
  g_assert_cmpint (version, ==, ENGINE_IO_PROTOCOL_V4);
  g_assert_true (engine_io_protocol_version_from_string ("4", NULL));
  for (i = 0; i < 9; i++)
    {
      static const char * const bad[] = { "", "2", "5", "04", "4 ", " 4", "3.0", "v4", "44" };

      version = 42;
      g_assert_false (engine_io_protocol_version_from_string (bad[i], &version));
      g_assert_cmpint (version, ==, 42);
    }

  g_assert_cmpstr (engine_io_transport_type_to_string (ENGINE_IO_TRANSPORT_POLLING), ==, "polling");
  g_assert_cmpstr (engine_io_transport_type_to_string (ENGINE_IO_TRANSPORT_WEBSOCKET), ==, "websocket");
  g_assert_true (engine_io_transport_type_from_string ("polling", &transport));
  g_assert_cmpint (transport, ==, ENGINE_IO_TRANSPORT_POLLING);
  g_assert_true (engine_io_transport_type_from_string ("websocket", &transport));
  g_assert_cmpint (transport, ==, ENGINE_IO_TRANSPORT_WEBSOCKET);
  g_assert_false (engine_io_transport_type_from_string ("WebSocket", &transport));
  g_assert_false (engine_io_transport_type_from_string ("flashsocket", &transport));
  g_assert_false (engine_io_transport_type_from_string ("", &transport));
}

/* ------------------------------------------------------------------ */
/* Packets                                                              */
/* ------------------------------------------------------------------ */

/* engine_io_packet_decode_valid_text_owned(): a message's text is a
 * slice of the owner (no copy), NUL-terminated; what cannot be a slice is
 * decoded as by engine_io_packet_decode_valid_text(). */
static void
test_packet_text_owned (void)
{
  static const char msg[] = "4hello, world";  /* and its NUL */
  g_autoptr(GBytes) owner = g_bytes_new (msg, sizeof msg);
  const char *base = g_bytes_get_data (owner, NULL);
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(EngineIOPacket) copied = NULL;
  g_autoptr(EngineIOPacket) b64 = NULL;
  g_autoptr(GBytes) no_nul = g_bytes_new (msg, sizeof msg - 1);
  g_autoptr(GError) error = NULL;
  const char *text;
  gsize len = 0;

  packet = engine_io_packet_decode_valid_text_owned (owner, base, sizeof msg - 1,
                                                     ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  g_assert_cmpint (engine_io_packet_get_packet_type (packet), ==, ENGINE_IO_PACKET_MESSAGE);
  text = engine_io_packet_get_text (packet, &len);
  g_assert_true (text == base + 1);  /* not copied */
  g_assert_cmpuint (len, ==, sizeof msg - 2);
  g_assert_cmpstr (text, ==, "hello, world");

  /* No NUL after the data in the owner: copied, still NUL-terminated. */
  copied = engine_io_packet_decode_valid_text_owned (no_nul, g_bytes_get_data (no_nul, NULL),
                                                     sizeof msg - 1, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  text = engine_io_packet_get_text (copied, &len);
  g_assert_true (text != (const char *) g_bytes_get_data (no_nul, NULL) + 1);
  g_assert_cmpstr (text, ==, "hello, world");

  /* v3 base64 binary, and a bad type: as without an owner. */
  {
    static const char b[] = "b4AQI=";
    g_autoptr(GBytes) bo = g_bytes_new (b, sizeof b);
    g_autoptr(EngineIOPacket) bad = NULL;
    gsize n = 0;

    b64 = engine_io_packet_decode_valid_text_owned (bo, g_bytes_get_data (bo, NULL), sizeof b - 1,
                                                    ENGINE_IO_PROTOCOL_V3, &error);
    g_assert_no_error (error);
    g_assert_true (engine_io_packet_is_binary (b64));
    g_assert_cmpmem (g_bytes_get_data (engine_io_packet_get_data (b64), &n), 2, "\x01\x02", 2);
    bad = engine_io_packet_decode_valid_text_owned (owner, "9x", 2, ENGINE_IO_PROTOCOL_V4, &error);
    g_assert_null (bad);
    g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE);
  }
}

static void
test_packet_basics (void)
{
  g_autoptr(EngineIOPacket) empty = NULL;
  g_autoptr(EngineIOPacket) text = NULL;
  g_autoptr(EngineIOPacket) text2 = NULL;
  g_autoptr(EngineIOPacket) nul = NULL;
  g_autoptr(EngineIOPacket) binary = NULL;
  g_autoptr(EngineIOPacket) binary2 = NULL;
  g_autoptr(EngineIOPacket) copy = NULL;
  g_autoptr(EngineIOPacket) taken = NULL;
  g_autoptr(GBytes) bytes = g_bytes_new ("\x00\x01\xff", 3);
  gsize length;

  g_test_summary ("Packets: constructors, accessors, NUL-terminated text, "
                  "equality, references and the boxed type.");

  empty = engine_io_packet_new (ENGINE_IO_PACKET_PING);
  assert_text_packet (empty, ENGINE_IO_PACKET_PING, "", 0);
  g_assert_cmpuint (g_bytes_get_size (engine_io_packet_get_data (empty)), ==, 0);

  text = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "héllo", -1);
  assert_text_packet (text, ENGINE_IO_PACKET_MESSAGE, S ("héllo"));
  assert_bytes (engine_io_packet_get_data (text), S ("héllo"));
  text2 = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "héllo world", 6);
  g_assert_true (engine_io_packet_equal (text, text2));
  g_assert_true (engine_io_packet_equal (text, text));

  nul = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "a\0b", 3);
  assert_text_packet (nul, ENGINE_IO_PACKET_MESSAGE, S ("a\0b"));
  g_assert_false (engine_io_packet_equal (text, nul));

  binary = engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, bytes);
  assert_binary_packet (binary, ENGINE_IO_PACKET_MESSAGE, "\x00\x01\xff", 3);
  g_assert_true (engine_io_packet_get_data (binary) == bytes);  /* shared, not copied */
  g_assert_null (engine_io_packet_get_text (binary, NULL));

  /* Same bytes, but binary vs text, or another type: not equal. */
  binary2 = binary_packet (ENGINE_IO_PACKET_MESSAGE, "héllo", strlen ("héllo"));
  g_assert_false (engine_io_packet_equal (text, binary2));
  g_clear_pointer (&binary2, engine_io_packet_unref);
  binary2 = binary_packet (ENGINE_IO_PACKET_PING, "\x00\x01\xff", 3);
  g_assert_false (engine_io_packet_equal (binary, binary2));
  g_clear_pointer (&binary2, engine_io_packet_unref);
  binary2 = binary_packet (ENGINE_IO_PACKET_MESSAGE, "\x00\x01\xff", 3);
  g_assert_true (engine_io_packet_equal (binary, binary2));

  g_clear_pointer (&text2, engine_io_packet_unref);
  text2 = engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, "héllo", -1);
  g_assert_false (engine_io_packet_equal (text, text2));

  /* NULL with length 0 is the empty text. */
  g_clear_pointer (&text2, engine_io_packet_unref);
  text2 = engine_io_packet_new_text (ENGINE_IO_PACKET_NOOP, NULL, 0);
  assert_text_packet (text2, ENGINE_IO_PACKET_NOOP, "", 0);

  /* Boxed type: copy is a ref. */
  g_assert_true (G_TYPE_IS_BOXED (ENGINE_IO_TYPE_PACKET));
  copy = g_boxed_copy (ENGINE_IO_TYPE_PACKET, text);
  g_assert_true (copy == text);
  g_boxed_free (ENGINE_IO_TYPE_PACKET, engine_io_packet_ref (copy));

  /* Private constructor takes the buffer. */
  taken = engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, g_strdup ("taken"), 5);
  assert_text_packet (taken, ENGINE_IO_PACKET_MESSAGE, S ("taken"));
  g_clear_pointer (&taken, engine_io_packet_unref);
  taken = engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, g_strdup (""), 0);
  assert_text_packet (taken, ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_assert_nonnull (engine_io_packet_get_text (taken, &length));
  g_assert_cmpuint (length, ==, 0);
}

static void
test_packet_invalid_text (void)
{
  static const struct { const char *text; gssize length; } bad[] = {
    { "\xff", -1 },
    { "a\xc3", -1 },
    { "\xc0\x80", -1 },
    { "\xed\xa0\x80", -1 },
    { "ok\0\xfe", 4 },
  };
  guint i;

  g_test_summary ("engine_io_packet_new_text() refuses invalid UTF-8 as a programmer "
                  "error (g_return_val_if_fail), never a crash.");

  if (!g_test_undefined ())
    return;

  for (i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      EngineIOPacket *packet;

      g_test_expect_message (LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*engine_io_utf8_validate*");
      packet = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, bad[i].text, bad[i].length);
      g_test_assert_expected_messages ();
      g_assert_null (packet);
    }

  g_test_expect_message (LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*PACKET_TYPE_IS_VALID*");
  g_assert_null (engine_io_packet_new (7));
  g_test_assert_expected_messages ();
}

/* ------------------------------------------------------------------ */
/* UTF-8 and UTF-16 helpers                                             */
/* ------------------------------------------------------------------ */

static void
test_utf8_validate (void)
{
  static const struct { const char *data; gsize length; gboolean valid; gsize bad; } cases[] = {
    { S (""), TRUE, 0 },
    { S ("a"), TRUE, 1 },
    { S ("\0"), TRUE, 1 },
    { S ("héllo €😀 \xf4\x8f\xbf\xbf \xef\xbf\xbf"), TRUE, 0 },
    { S ("\x80"), FALSE, 0 },
    { S ("a\xbf"), FALSE, 1 },
    { S ("ab\xc0\x80"), FALSE, 2 },                 /* overlong NUL */
    { S ("\xc1\xbf"), FALSE, 0 },                   /* overlong */
    { S ("\xe0\x80\xaf"), FALSE, 0 },               /* overlong '/' */
    { S ("\xf0\x80\x80\xaf"), FALSE, 0 },           /* overlong '/' */
    { S ("x\xed\xa0\x80y"), FALSE, 1 },             /* U+D800 */
    { S ("x\xed\xbf\xbf"), FALSE, 1 },              /* U+DFFF */
    { S ("\xf4\x90\x80\x80"), FALSE, 0 },           /* U+110000 */
    { S ("\xf8\x88\x80\x80\x80"), FALSE, 0 },       /* 5-byte form */
    { S ("\xfe"), FALSE, 0 },
    { S ("\xff"), FALSE, 0 },
    { S ("é\xe2\x82"), FALSE, 2 },                  /* truncated at the end */
    { S ("é\xe2\x82" "a"), FALSE, 2 },              /* truncated before ASCII */
    { S ("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82"), FALSE, 12 },
    { S ("0123456789abcdef0123456789abcdef0123456789abcdef\xff"), FALSE, 48 },
    { S ("0123456789abcdef0123456789abcdef012345\xc3\xa9" "6789abcdef\x80"), FALSE, 50 },
    { S ("0123456\xc3"), FALSE, 7 },
    { S ("01234567\0\0\0\0\0\0\0\0é"), TRUE, 0 },
  };
  guint i;

  g_test_summary ("The fast UTF-8 validator agrees with RFC 3629 (NUL allowed) and "
                  "reports the offset of the first bad sequence.");

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      gsize bad = 9999;
      gboolean valid = engine_io_utf8_validate (cases[i].data, cases[i].length, &bad);

      g_test_message ("case %u", i);
      g_assert_cmpint (valid, ==, cases[i].valid);
      if (valid)
        g_assert_cmpuint (bad, ==, cases[i].length);
      else
        g_assert_cmpuint (bad, ==, cases[i].bad);
      g_assert_cmpint (engine_io_utf8_validate (cases[i].data, cases[i].length, NULL), ==, valid);
    }
}

static void
test_utf16_length (void)
{
  static const struct { const char *data; gsize length; gsize units; } cases[] = {
    { S (""), 0 },
    { S ("4"), 1 },
    { S ("4é€😀"), 5 },
    { S ("😀😀😀😀"), 8 },
    { S ("abcdefgh😀ijklmnop"), 18 },
    { S ("abcdefg😀hijklmnop"), 18 },
    { S ("ééééééééé"), 9 },
    { S ("\0\0\0\0\0\0\0\0\0"), 9 },
    { S ("\xf4\x8f\xbf\xbf\xef\xbf\xbf"), 3 },
  };
  guint i;

  g_test_summary ("UTF-16 length counts characters above U+FFFF twice, like "
                  "JavaScript's String.length.");

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpuint (engine_io_utf16_length (cases[i].data, cases[i].length), ==, cases[i].units);
}

/* ------------------------------------------------------------------ */
/* Single packets (WebSocket frames)                                    */
/* ------------------------------------------------------------------ */

static void
assert_frame_encodes (EngineIOPacket          *packet,
                      EngineIOProtocolVersion  version,
                      gboolean                 expect_binary,
                      const void              *expected,
                      gsize                    length)
{
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GByteArray) appended = g_byte_array_new ();
  gboolean is_binary = !expect_binary;

  frame = engine_io_packet_encode (packet, version, &is_binary);
  assert_bytes (frame, expected, length);
  g_assert_cmpint (is_binary, ==, expect_binary);

  g_byte_array_append (appended, (const guint8 *) "Z", 1);
  is_binary = !expect_binary;
  engine_io_packet_encode_append (packet, version, appended, &is_binary);
  g_assert_cmpint (is_binary, ==, expect_binary);
  g_assert_cmpuint (appended->len, ==, length + 1);
  g_assert_cmpmem (appended->data + 1, length, expected, length);
}

static void
test_frame_encode (void)
{
  g_autoptr(EngineIOPacket) hello = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "hello", -1);
  g_autoptr(EngineIOPacket) emoji = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "é€😀", -1);
  g_autoptr(EngineIOPacket) empty = engine_io_packet_new (ENGINE_IO_PACKET_MESSAGE);
  g_autoptr(EngineIOPacket) probe = engine_io_packet_new_text (ENGINE_IO_PACKET_PONG, "probe", -1);
  g_autoptr(EngineIOPacket) rs = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "a\x1e" "b", -1);
  g_autoptr(EngineIOPacket) binary = binary_packet (ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  g_autoptr(EngineIOPacket) empty_binary = binary_packet (ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_autoptr(EngineIOPacket) binary_ping = binary_packet (ENGINE_IO_PACKET_PING, "\xff", 1);
  g_autoptr(GBytes) shared = NULL;
  guint v;

  g_test_summary ("WebSocket frame form: text is the type digit and text; binary is raw "
                  "in v4 and carries a type byte in v3.");

  for (v = 3; v <= 4; v++)
    {
      assert_frame_encodes (hello, v, FALSE, S ("4hello"));
      assert_frame_encodes (emoji, v, FALSE, S ("4é€😀"));
      assert_frame_encodes (empty, v, FALSE, S ("4"));
      assert_frame_encodes (probe, v, FALSE, S ("3probe"));
      assert_frame_encodes (rs, v, FALSE, S ("4a\x1e" "b"));
    }

  assert_frame_encodes (binary, ENGINE_IO_PROTOCOL_V4, TRUE, S ("\x01\x02\x03"));
  assert_frame_encodes (binary, ENGINE_IO_PROTOCOL_V3, TRUE, S ("\x04\x01\x02\x03"));
  assert_frame_encodes (empty_binary, ENGINE_IO_PROTOCOL_V4, TRUE, "", 0);
  assert_frame_encodes (empty_binary, ENGINE_IO_PROTOCOL_V3, TRUE, S ("\x04"));
  assert_frame_encodes (binary_ping, ENGINE_IO_PROTOCOL_V3, TRUE, S ("\x02\xff"));

  /* v4 binary frames share the packet's data. */
  shared = engine_io_packet_encode (binary, ENGINE_IO_PROTOCOL_V4, NULL);
  g_assert_true (shared == engine_io_packet_get_data (binary));

  /* v4 cannot carry a binary packet of another type than message. */
  if (g_test_undefined ())
    {
      GBytes *none;

      g_test_expect_message (LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*ENGINE_IO_PACKET_MESSAGE*");
      none = engine_io_packet_encode (binary_ping, ENGINE_IO_PROTOCOL_V4, NULL);
      g_test_assert_expected_messages ();
      g_assert_null (none);
    }
}

static void
test_frame_decode (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(GBytes) frame = NULL;
  const guint8 *frame_data;
  guint v;

  g_test_summary ("Decoding WebSocket frames of both versions: text, empty message, "
                  "multi-byte text, base64 in text frames, raw and typed binary frames "
                  "(zero-copy).");

  for (v = 3; v <= 4; v++)
    {
      packet = decode_frame (S ("4hello"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_MESSAGE, S ("hello"));
      g_clear_pointer (&packet, engine_io_packet_unref);

      packet = decode_frame (S ("4"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_MESSAGE, "", 0);
      g_clear_pointer (&packet, engine_io_packet_unref);

      packet = decode_frame (S ("2probe"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_PING, S ("probe"));
      g_clear_pointer (&packet, engine_io_packet_unref);

      packet = decode_frame (S ("4é€😀\0x"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_MESSAGE, S ("é€😀\0x"));
      g_clear_pointer (&packet, engine_io_packet_unref);

      /* In a WebSocket frame the record separator is plain data. */
      packet = decode_frame (S ("4a\x1e" "b"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_MESSAGE, S ("a\x1e" "b"));
      g_clear_pointer (&packet, engine_io_packet_unref);

      packet = decode_frame (S ("6"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_NOOP, "", 0);
      g_clear_pointer (&packet, engine_io_packet_unref);

      packet = decode_frame (S ("0{\"sid\":\"x\"}"), FALSE, v, &error);
      g_assert_no_error (error);
      assert_text_packet (packet, ENGINE_IO_PACKET_OPEN, S ("{\"sid\":\"x\"}"));
      g_clear_pointer (&packet, engine_io_packet_unref);
    }

  /* Base64 binary in text frames. */
  packet = decode_frame (S ("bAQID"), FALSE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("b"), FALSE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("b/w=="), FALSE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\xff", 1);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("b4AQID"), FALSE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("b2+/8="), FALSE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_PING, "\xfb\xff", 2);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("b4"), FALSE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&packet, engine_io_packet_unref);

  /* v4 has no type digit after "b": "b4AQI" is the base64 "4AQI". */
  packet = decode_frame (S ("b4AQI"), FALSE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\xe0\x04\x08", 3);
  g_clear_pointer (&packet, engine_io_packet_unref);

  /* Binary frames: v4 raw (any length) and zero-copy. */
  frame = g_bytes_new (S ("\x04\x00\xff"));
  frame_data = g_bytes_get_data (frame, NULL);
  packet = engine_io_packet_decode (frame, TRUE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\x04\x00\xff", 3);
  g_assert_true (g_bytes_get_data (engine_io_packet_get_data (packet), NULL) == frame_data);
  g_clear_pointer (&packet, engine_io_packet_unref);

  /* v3: a type byte, then a zero-copy slice. */
  packet = engine_io_packet_decode (frame, TRUE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\x00\xff", 2);
  g_assert_true ((const guint8 *) g_bytes_get_data (engine_io_packet_get_data (packet), NULL) == frame_data + 1);
  g_clear_pointer (&packet, engine_io_packet_unref);
  g_clear_pointer (&frame, g_bytes_unref);

  packet = decode_frame ("", 0, TRUE, ENGINE_IO_PROTOCOL_V4, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("\x04"), TRUE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&packet, engine_io_packet_unref);

  packet = decode_frame (S ("\x02probe"), TRUE, ENGINE_IO_PROTOCOL_V3, &error);
  g_assert_no_error (error);
  assert_binary_packet (packet, ENGINE_IO_PACKET_PING, S ("probe"));
  g_clear_pointer (&packet, engine_io_packet_unref);

  /* Without an owner the private decoder copies. */
  {
    static const guint8 raw[] = { 4, 1, 2 };

    packet = engine_io_packet_decode_data (raw, sizeof raw, TRUE, ENGINE_IO_PROTOCOL_V3, NULL, &error);
    g_assert_no_error (error);
    assert_binary_packet (packet, ENGINE_IO_PACKET_MESSAGE, "\x01\x02", 2);
    g_assert_true ((const guint8 *) g_bytes_get_data (engine_io_packet_get_data (packet), NULL) != raw + 1);
    g_clear_pointer (&packet, engine_io_packet_unref);
  }
}

typedef struct
{
  const char *data;
  gsize       length;
  gsize       offset;
  const char *problem;
} ErrorCase;

static void
test_frame_errors (void)
{
  /* Text frames, both versions. */
  static const ErrorCase text_cases[] = {
    { S (""), 0, "Empty packet" },
    { S ("7"), 0, "Unknown packet type “7”" },
    { S ("x4"), 0, "Unknown packet type “x”" },
    { S (" 4"), 0, "Unknown packet type" },
    { S ("\xff"), 0, "Unknown packet type 0xff" },
    { S ("\x04hello"), 0, "Unknown packet type 0x04" },
    { S ("4\xc0\x80"), 1, "Invalid UTF-8" },            /* overlong */
    { S ("4ab\xed\xa0\x80"), 3, "Invalid UTF-8" },      /* surrogate */
    { S ("4\xe2\x82"), 1, "Invalid UTF-8" },            /* truncated */
    { S ("4é\xe2\x82" "a"), 3, "Invalid UTF-8" },
    { S ("4\xf4\x90\x80\x80"), 1, "Invalid UTF-8" },    /* > U+10FFFF */
    { S ("4\x80"), 1, "Invalid UTF-8" },                /* lone continuation */
    { S ("4abcdefghijklmnopqrstuvwxyz0123456789\xff"), 37, "Invalid UTF-8" },
  };
  static const ErrorCase v4_cases[] = {
    { S ("bAAA"), 1, "Invalid base64 length 3" },
    { S ("bAAAAA"), 1, "Invalid base64 length 5" },
    { S ("bAA=A"), 3, "Misplaced base64 padding" },
    { S ("bA==="), 2, "Misplaced base64 padding" },
    { S ("b===="), 1, "Misplaced base64 padding" },
    { S ("bAA*A"), 3, "Invalid base64 character" },
    { S ("b AAA"), 1, "Invalid base64 character" },
    { S ("bAAAAAAA\nAAA="), 8, "Invalid base64 character" },
    { S ("b" "AAAAAAAA" "AAAA" "-AA="), 13, "Invalid base64 character" },   /* URL-safe alphabet */
    { S ("bAAAA\xc3\xa9"), 1, "Invalid base64 length 6" },
    { S ("bAAAAAA\xc3\xa9"), 7, "Invalid base64 character" },
  };
  static const ErrorCase v3_cases[] = {
    { S ("b"), 1, "Missing packet type after “b”" },
    { S ("b7AAAA"), 1, "Unknown packet type “7”" },
    { S ("bbAAAA"), 1, "Unknown packet type “b”" },
    { S ("b4AAA"), 2, "Invalid base64 length 3" },
    { S ("b4AA=A"), 4, "Misplaced base64 padding" },
    { S ("b4A!AA"), 3, "Invalid base64 character" },
  };
  static const ErrorCase v3_binary_cases[] = {
    { S (""), 0, "Empty packet" },
    { S ("\x07\x01"), 0, "Unknown packet type 0x07" },
    { S ("4hello"), 0, "Unknown packet type 0x34" },
    { S ("\xff"), 0, "Unknown packet type 0xff" },
  };
  guint i, v;

  g_test_summary ("Malformed WebSocket frames fail with ENGINE_IO_ERROR_PARSE naming the "
                  "problem and its byte offset.");

  for (v = 3; v <= 4; v++)
    for (i = 0; i < G_N_ELEMENTS (text_cases); i++)
      {
        g_autoptr(GError) error = NULL;
        EngineIOPacket *packet = decode_frame (text_cases[i].data, text_cases[i].length, FALSE, v, &error);

        g_assert_null (packet);
        assert_parse_error (error, text_cases[i].offset, text_cases[i].problem);
      }

  for (i = 0; i < G_N_ELEMENTS (v4_cases); i++)
    {
      g_autoptr(GError) error = NULL;
      EngineIOPacket *packet = decode_frame (v4_cases[i].data, v4_cases[i].length, FALSE,
                                             ENGINE_IO_PROTOCOL_V4, &error);

      g_assert_null (packet);
      assert_parse_error (error, v4_cases[i].offset, v4_cases[i].problem);
    }

  for (i = 0; i < G_N_ELEMENTS (v3_cases); i++)
    {
      g_autoptr(GError) error = NULL;
      EngineIOPacket *packet = decode_frame (v3_cases[i].data, v3_cases[i].length, FALSE,
                                             ENGINE_IO_PROTOCOL_V3, &error);

      g_assert_null (packet);
      assert_parse_error (error, v3_cases[i].offset, v3_cases[i].problem);
    }

  for (i = 0; i < G_N_ELEMENTS (v3_binary_cases); i++)
    {
      g_autoptr(GError) error = NULL;
      EngineIOPacket *packet = decode_frame (v3_binary_cases[i].data, v3_binary_cases[i].length, TRUE,
                                             ENGINE_IO_PROTOCOL_V3, &error);

      g_assert_null (packet);
      assert_parse_error (error, v3_binary_cases[i].offset, v3_binary_cases[i].problem);
    }
}

/* ------------------------------------------------------------------ */
/* Payloads                                                             */
/* ------------------------------------------------------------------ */

static void
assert_payload_errors (EngineIOPayloadFormat  format,
                       const ErrorCase       *cases,
                       gsize                  n_cases)
{
  gsize i;

  for (i = 0; i < n_cases; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) packets = NULL;

      g_test_message ("case %" G_GSIZE_FORMAT, i);
      packets = decode_payload (format, cases[i].data, cases[i].length, &error);
      g_assert_null (packets);
      assert_parse_error (error, cases[i].offset, cases[i].problem);

      /* Same through the private raw-buffer entry point, without owner. */
      g_clear_error (&error);
      packets = engine_io_payload_decode_data (format, (const guint8 *) cases[i].data,
                                               cases[i].length, NULL, &error);
      g_assert_null (packets);
      assert_parse_error (error, cases[i].offset, cases[i].problem);
    }
}

static void
test_payload_v4 (void)
{
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) decoded = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("v4 payloads: packets joined by 0x1e, binary as b+base64 without a "
                  "type digit, multi-byte text unchanged.");

  packets = packet_array (engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "hello", -1),
                          engine_io_packet_new (ENGINE_IO_PACKET_PING),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "é€😀", -1),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, "", 0),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, "\xff", 1),
                          engine_io_packet_new (ENGINE_IO_PACKET_MESSAGE),
                          NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V4, packets,
                          S ("4hello\x1e" "2\x1e" "bAQID\x1e" "4é€😀\x1e" "b\x1e" "b/w==\x1e" "4"));

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V4,
                            S ("4hello\x1e" "2\x1e" "bAQID\x1e" "4é€😀\x1e" "b\x1e" "b/w==\x1e" "4"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 7);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, S ("hello"));
  assert_text_packet (decoded->pdata[1], ENGINE_IO_PACKET_PING, "", 0);
  assert_binary_packet (decoded->pdata[2], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  assert_text_packet (decoded->pdata[3], ENGINE_IO_PACKET_MESSAGE, S ("é€😀"));
  assert_binary_packet (decoded->pdata[4], ENGINE_IO_PACKET_MESSAGE, "", 0);
  assert_binary_packet (decoded->pdata[5], ENGINE_IO_PACKET_MESSAGE, "\xff", 1);
  assert_text_packet (decoded->pdata[6], ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&decoded, g_ptr_array_unref);

  /* One packet, no separator; the empty message. */
  decoded = decode_payload (ENGINE_IO_PAYLOAD_V4, S ("4"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 1);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, "", 0);
  g_clear_pointer (&decoded, g_ptr_array_unref);

  /* An empty list encodes to an empty body (which does not decode). */
  g_clear_pointer (&packets, g_ptr_array_unref);
  packets = packet_array (NULL, NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V4, packets, "", 0);

  /* v4 has binary messages only: anything else is a programmer error. */
  if (g_test_undefined ())
    {
      GBytes *none;

      g_clear_pointer (&packets, g_ptr_array_unref);
      packets = packet_array (engine_io_packet_new (ENGINE_IO_PACKET_MESSAGE),
                              binary_packet (ENGINE_IO_PACKET_PING, "x", 1), NULL);
      g_test_expect_message (LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*ENGINE_IO_PACKET_MESSAGE*");
      none = engine_io_payload_encode (ENGINE_IO_PAYLOAD_V4, packets);
      g_test_assert_expected_messages ();
      g_assert_null (none);
    }
}

static void
test_payload_v4_errors (void)
{
  static const ErrorCase cases[] = {
    { S (""), 0, "Empty payload" },
    { S ("\x1e"), 0, "Empty packet" },
    { S ("4a\x1e\x1e" "4b"), 3, "Empty packet" },
    { S ("4a\x1e"), 3, "Empty packet" },
    { S ("\x1e" "4a"), 0, "Empty packet" },
    { S ("4a\x1e" "7b"), 3, "Unknown packet type “7”" },
    { S ("4a\x1e" "\x80"), 3, "Unknown packet type 0x80" },
    { S ("hello"), 0, "Unknown packet type “h”" },
    { S ("4a\x1e" "4\xc3"), 4, "Invalid UTF-8" },
    { S ("4\xc0\x80"), 1, "Invalid UTF-8" },
    { S ("4ab\xed\xa0\x80"), 3, "Invalid UTF-8" },
    { S ("4\xe2\x82"), 1, "Invalid UTF-8" },
    { S ("4\xf4\x90\x80\x80"), 1, "Invalid UTF-8" },
    { S ("4\xf8\x88\x80\x80\x80"), 1, "Invalid UTF-8" },
    { S ("4ok\x1e" "4\xfe"), 5, "Invalid UTF-8" },
    { S ("bAAA"), 1, "Invalid base64 length" },
    { S ("bAA=A"), 3, "Misplaced base64 padding" },
    { S ("bA==="), 2, "Misplaced base64 padding" },
    { S ("bAA*A"), 3, "Invalid base64 character" },
    { S ("bQQ==\x1e" "bAB"), 7, "Invalid base64 length 2" },
    { S ("bAAAA\n"), 1, "Invalid base64 length 5" },
    { S ("4x\x1e" "b4AQID"), 4, "Invalid base64 length 5" },   /* no type digit in v4 */
    { S ("4x\x1e" "bAQ\0="), 6, "Invalid base64 character" },
  };

  g_test_summary ("Malformed v4 payloads: empty payload, empty parts, unknown types, "
                  "invalid UTF-8, invalid base64, each with its byte offset.");

  assert_payload_errors (ENGINE_IO_PAYLOAD_V4, cases, G_N_ELEMENTS (cases));
}

static void
test_payload_v3_text (void)
{
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) decoded = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("v3 text payloads: <len>:<packet> with len in UTF-16 code units "
                  "(an astral character counts 2), binary as b<type><base64>, 0: for no packets.");

  packets = packet_array (engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "é€😀", -1), NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V3_TEXT, packets, S ("5:4é€😀"));
  g_clear_pointer (&packets, g_ptr_array_unref);

  packets = packet_array (engine_io_packet_new_text (ENGINE_IO_PACKET_PING, "probe", -1),
                          engine_io_packet_new (ENGINE_IO_PACKET_MESSAGE),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3),
                          binary_packet (ENGINE_IO_PACKET_PING, "", 0),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "😀😀😀😀😀", -1),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "a:1\x1e" "2", -1),
                          NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V3_TEXT, packets,
                          S ("6:2probe" "1:4" "6:b4AQID" "2:b2" "11:4😀😀😀😀😀" "6:4a:1\x1e" "2"));

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_TEXT,
                            S ("6:2probe" "1:4" "6:b4AQID" "2:b2" "11:4😀😀😀😀😀" "6:4a:1\x1e" "2"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, packets->len);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_PING, S ("probe"));
  assert_text_packet (decoded->pdata[1], ENGINE_IO_PACKET_MESSAGE, "", 0);
  assert_binary_packet (decoded->pdata[2], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  assert_binary_packet (decoded->pdata[3], ENGINE_IO_PACKET_PING, "", 0);
  assert_text_packet (decoded->pdata[4], ENGINE_IO_PACKET_MESSAGE, S ("😀😀😀😀😀"));
  assert_text_packet (decoded->pdata[5], ENGINE_IO_PACKET_MESSAGE, S ("a:1\x1e" "2"));
  g_clear_pointer (&decoded, g_ptr_array_unref);

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_TEXT, S ("5:4é€😀"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 1);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, S ("é€😀"));
  g_clear_pointer (&decoded, g_ptr_array_unref);

  /* An empty list is "0:", and zero-length packets are skipped. */
  g_clear_pointer (&packets, g_ptr_array_unref);
  packets = packet_array (NULL, NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V3_TEXT, packets, S ("0:"));

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_TEXT, S ("0:"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 0);
  g_clear_pointer (&decoded, g_ptr_array_unref);

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_TEXT, S ("0:1:4" "0:" "02:4é"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 2);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, "", 0);
  assert_text_packet (decoded->pdata[1], ENGINE_IO_PACKET_MESSAGE, S ("é"));
  g_clear_pointer (&decoded, g_ptr_array_unref);
}

static void
test_payload_v3_text_errors (void)
{
  static const ErrorCase cases[] = {
    { S (""), 0, "Empty payload" },
    { S ("a:4"), 0, "Invalid character in packet length" },
    { S ("-1:4"), 0, "Invalid character in packet length" },
    { S (" 1:4"), 0, "Invalid character in packet length" },
    { S ("4"), 1, "Missing “:”" },
    { S ("12"), 2, "Missing “:”" },
    { S ("1:4" "3"), 4, "Missing “:”" },
    { S (":4"), 0, "Missing packet length" },
    { S ("1:4:4"), 3, "Missing packet length" },
    { S ("1234567890:4"), 9, "longer than 9 digits" },
    { S ("0000000001:4"), 9, "longer than 9 digits" },
    { S ("999999999:4"), 0, "Length 999999999 past the end of the payload" },
    { S ("5:4ab"), 0, "Length 5 past the end of the payload" },
    { S ("1:4" "999:4"), 3, "Length 999 past the end of the payload" },
    { S ("3:4é"), 0, "Length 3 past the end of the payload" },
    { S ("2:4😀"), 3, "Length 2 splits a surrogate pair" },
    { S ("4:4😀😀"), 7, "Length 4 splits a surrogate pair" },
    { S ("10:4abcdefgh😀"), 12, "Length 10 splits a surrogate pair" },
    { S ("3:4\xff\xfe"), 3, "Invalid UTF-8" },
    { S ("2:4\xc3"), 3, "Invalid UTF-8" },
    { S ("3:4\xc0\x80"), 3, "Invalid UTF-8" },
    { S ("4:4\xed\xa0\x80"), 3, "Invalid UTF-8" },
    { S ("1:4" "1:\x80"), 5, "Invalid UTF-8" },
    { S ("2:9a"), 2, "Unknown packet type “9”" },
    { S ("1:4" "1:x"), 5, "Unknown packet type “x”" },
    { S ("1:b"), 3, "Missing packet type after “b”" },
    { S ("2:b9"), 3, "Unknown packet type “9”" },
    { S ("5:b4AAA"), 4, "Invalid base64 length 3" },
    { S ("6:b4AA=A"), 6, "Misplaced base64 padding" },
    { S ("6:b4A!AA"), 5, "Invalid base64 character" },
    { S ("1:4x"), 3, "Invalid character in packet length" },
  };

  g_test_summary ("Malformed v3 text payloads: bad, missing or over-long lengths, lengths "
                  "past the end or splitting a surrogate pair, invalid UTF-8, bad packets.");

  assert_payload_errors (ENGINE_IO_PAYLOAD_V3_TEXT, cases, G_N_ELEMENTS (cases));
}

static void
test_payload_v3_binary (void)
{
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) decoded = NULL;
  g_autoptr(GError) error = NULL;
  static const char expected[] =
    "\x00\x06\xff" "4hello"
    "\x01\x04\xff" "\x04\x01\x02\x03"
    "\x00\x01\x00\xff" "4é€😀"
    "\x01\x01\xff" "\x02"
    "\x00\x01\xff" "4"
    "\x00\x01\x00\xff" "4abcdefghi";

  g_test_summary ("v3 binary (XHR2) payloads: 0/1 marker, byte length as decimal digit "
                  "bytes, 0xFF, then the packet with its type digit or type byte.");

  packets = packet_array (engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "hello", -1),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "é€😀", -1),
                          binary_packet (ENGINE_IO_PACKET_PING, "", 0),
                          engine_io_packet_new (ENGINE_IO_PACKET_MESSAGE),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "abcdefghi", -1),
                          NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V3_BINARY, packets, expected, sizeof expected - 1);

  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_BINARY, expected, sizeof expected - 1, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, packets->len);
  assert_text_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, S ("hello"));
  assert_binary_packet (decoded->pdata[1], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  assert_text_packet (decoded->pdata[2], ENGINE_IO_PACKET_MESSAGE, S ("é€😀"));
  assert_binary_packet (decoded->pdata[3], ENGINE_IO_PACKET_PING, "", 0);
  assert_text_packet (decoded->pdata[4], ENGINE_IO_PACKET_MESSAGE, "", 0);
  assert_text_packet (decoded->pdata[5], ENGINE_IO_PACKET_MESSAGE, S ("abcdefghi"));
  g_clear_pointer (&decoded, g_ptr_array_unref);

  /* A string packet may carry base64 binary (b64=1 style) too. */
  decoded = decode_payload (ENGINE_IO_PAYLOAD_V3_BINARY, S ("\x00\x06\xff" "b4AQID"), &error);
  g_assert_no_error (error);
  g_assert_cmpuint (decoded->len, ==, 1);
  assert_binary_packet (decoded->pdata[0], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  g_clear_pointer (&decoded, g_ptr_array_unref);

  /* An empty list is an empty body. */
  g_clear_pointer (&packets, g_ptr_array_unref);
  packets = packet_array (NULL, NULL);
  assert_payload_encodes (ENGINE_IO_PAYLOAD_V3_BINARY, packets, "", 0);
}

static void
test_payload_v3_binary_errors (void)
{
  static const ErrorCase cases[] = {
    { S (""), 0, "Empty payload" },
    { S ("\x02"), 0, "Invalid packet marker 0x02" },
    { S ("4hello"), 0, "Invalid packet marker 0x34" },
    { S ("\x00"), 1, "Truncated packet length" },
    { S ("\x00\x01"), 2, "Truncated packet length" },
    { S ("\x00\xff"), 1, "Missing packet length" },
    { S ("\x00\x0a\xff" "4"), 1, "Invalid length digit 0x0a" },
    { S ("\x00\x01\x31\xff" "4"), 2, "Invalid length digit 0x31" },
    { S ("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x00\xff" "4"), 10, "longer than 9 digits" },
    { S ("\x01\x09\x09\x09\x09\x09\x09\x09\x09\x09\xff" "\x04"), 1,
      "Length 999999999 past the end of the payload" },
    { S ("\x00\x05\xff" "4a"), 1, "Length 5 past the end of the payload" },
    { S ("\x00\x01\xff" "4" "\x01\x01\xff"), 5, "Length 1 past the end of the payload" },
    { S ("\x00\x00\xff"), 3, "Empty packet" },
    { S ("\x01\x00\xff" "\x04"), 3, "Empty packet" },
    { S ("\x01\x01\xff" "\x09"), 3, "Unknown packet type 0x09" },
    { S ("\x01\x02\xff" "4a"), 3, "Unknown packet type 0x34" },
    { S ("\x00\x01\xff" "9"), 3, "Unknown packet type “9”" },
    { S ("\x00\x01\xff" "\x04"), 3, "Unknown packet type 0x04" },
    { S ("\x00\x02\xff" "4\xff"), 4, "Invalid UTF-8" },
    { S ("\x00\x03\xff" "4\xc0\x80"), 4, "Invalid UTF-8" },
    { S ("\x00\x04\xff" "4\xed\xa0\x80"), 4, "Invalid UTF-8" },
    { S ("\x00\x03\xff" "4\xe2\x82" "\x00\x01\xff" "4"), 4, "Invalid UTF-8" },
    { S ("\x00\x03\xff" "b4A"), 5, "Invalid base64 length 1" },
    { S ("\x00\x06\xff" "b4AQ=D"), 7, "Misplaced base64 padding" },
  };

  g_test_summary ("Malformed v3 binary payloads: bad markers, bad, missing, truncated or "
                  "over-long lengths, lengths past the end, bad packets.");

  assert_payload_errors (ENGINE_IO_PAYLOAD_V3_BINARY, cases, G_N_ELEMENTS (cases));
}

static void
test_payload_zero_copy (void)
{
  static const char raw[] = "\x00\x02\xff" "4a" "\x01\x04\xff" "\x04\x01\x02\x03" "\x01\x01\xff" "\x04";
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) big = g_byte_array_new ();
  const guint8 *base;
  gsize size;
  GBytes *data;
  guint8 large[40];

  g_test_summary ("Binary packets of a v3 binary payload point inside the payload's buffer when "
                  "they are at least half of it; smaller ones are copies (a small packet must "
                  "not keep a large body alive), and so is everything without an owner.");

  /* The small packets of `raw`, then a 40-byte one: more than half. */
  g_byte_array_append (big, (const guint8 *) raw, sizeof raw - 1);
  for (guint i = 0; i < sizeof large; i++)
    large[i] = (guint8) i;
  g_byte_array_append (big, (const guint8 *) "\x01\x04\x01\xff\x04", 5);
  g_byte_array_append (big, large, sizeof large);
  payload = g_byte_array_free_to_bytes (g_steal_pointer (&big));

  base = g_bytes_get_data (payload, &size);
  packets = engine_io_payload_decode (ENGINE_IO_PAYLOAD_V3_BINARY, payload, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (packets->len, ==, 4);

  /* 3 bytes of 62: copied, and counts only itself. */
  data = engine_io_packet_get_data (packets->pdata[1]);
  g_assert_cmpuint (g_bytes_get_size (data), ==, 3);
  g_assert_true ((const guint8 *) g_bytes_get_data (data, NULL) != base + 9);
  assert_binary_packet (packets->pdata[1], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
  g_assert_cmpuint (engine_io_packet_get_footprint (packets->pdata[1]), <, 200);
  assert_binary_packet (packets->pdata[2], ENGINE_IO_PACKET_MESSAGE, "", 0);

  /* 40 bytes of 62: a slice, whose footprint counts the rest of the
   * payload it keeps alive. */
  data = engine_io_packet_get_data (packets->pdata[3]);
  g_assert_cmpuint (g_bytes_get_size (data), ==, sizeof large);
  g_assert_true ((const guint8 *) g_bytes_get_data (data, NULL) == base + size - sizeof large);
  g_assert_cmpuint (engine_io_packet_get_footprint (packets->pdata[3]), >=, size);

  /* The packet keeps the payload's memory alive. */
  {
    g_autoptr(EngineIOPacket) keep = engine_io_packet_ref (packets->pdata[3]);

    g_clear_pointer (&packets, g_ptr_array_unref);
    g_clear_pointer (&payload, g_bytes_unref);
    assert_binary_packet (keep, ENGINE_IO_PACKET_MESSAGE, (const char *) large, sizeof large);
  }

  packets = engine_io_payload_decode_data (ENGINE_IO_PAYLOAD_V3_BINARY, (const guint8 *) raw,
                                           sizeof raw - 1, NULL, &error);
  g_assert_no_error (error);
  data = engine_io_packet_get_data (packets->pdata[1]);
  g_assert_true ((const guint8 *) g_bytes_get_data (data, NULL) != (const guint8 *) raw + 9);
  assert_binary_packet (packets->pdata[1], ENGINE_IO_PACKET_MESSAGE, "\x01\x02\x03", 3);
}

/* 100 KiB messages in every format. */
static void
test_large (void)
{
  const gsize size = 100 * 1024;
  g_autofree char *ascii = g_malloc (size + 1);
  g_autoptr(GString) emoji = g_string_new (NULL);
  g_autofree guint8 *blob = g_malloc (size);
  g_autoptr(GPtrArray) packets = NULL;
  EngineIOPayloadFormat format;
  gsize i;

  g_test_summary ("100 KiB text (ASCII and astral) and binary messages round-trip in every "
                  "format, with the right v3 length prefixes.");

  for (i = 0; i < size; i++)
    {
      ascii[i] = 'a' + i % 26;
      blob[i] = (guint8) (i * 7 + i / 256);
    }
  ascii[size] = '\0';
  for (i = 0; i < size / 4; i++)
    g_string_append (emoji, "😀");
  g_assert_cmpuint (emoji->len, ==, size);

  packets = packet_array (engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, ascii, size),
                          engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, emoji->str, emoji->len),
                          binary_packet (ENGINE_IO_PACKET_MESSAGE, blob, size),
                          NULL);

  /* The v3 length prefixes: UTF-16 units for text, bytes for binary. */
  {
    g_autoptr(GBytes) v3 = engine_io_payload_encode (ENGINE_IO_PAYLOAD_V3_TEXT, packets);
    const char *data = g_bytes_get_data (v3, NULL);
    gsize offset;

    g_assert_true (g_str_has_prefix (data, "102401:4abc"));
    offset = strlen ("102401:") + 1 + size;
    g_assert_true (strncmp (data + offset, "51201:4😀", strlen ("51201:4😀")) == 0);
    offset += strlen ("51201:") + 1 + size;
    /* "b4" + base64 of 102400 bytes = 2 + 136536 */
    g_assert_true (strncmp (data + offset, "136538:b4", 9) == 0);
  }

  for (format = ENGINE_IO_PAYLOAD_V4; format <= ENGINE_IO_PAYLOAD_V3_BINARY; format++)
    {
      g_autoptr(GBytes) payload = engine_io_payload_encode (format, packets);
      g_autoptr(GPtrArray) decoded = NULL;
      g_autoptr(GError) error = NULL;

      decoded = engine_io_payload_decode (format, payload, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (decoded->len, ==, 3);
      for (i = 0; i < 3; i++)
        g_assert_true (engine_io_packet_equal (decoded->pdata[i], packets->pdata[i]));
    }

  for (i = 0; i < packets->len; i++)
    {
      EngineIOProtocolVersion version;

      for (version = ENGINE_IO_PROTOCOL_V3; version <= ENGINE_IO_PROTOCOL_V4; version++)
        {
          gboolean is_binary;
          g_autoptr(GBytes) frame = engine_io_packet_encode (packets->pdata[i], version, &is_binary);
          g_autoptr(EngineIOPacket) decoded = NULL;
          g_autoptr(GError) error = NULL;

          decoded = engine_io_packet_decode (frame, is_binary, version, &error);
          g_assert_no_error (error);
          g_assert_true (engine_io_packet_equal (decoded, packets->pdata[i]));
        }
    }

  /* 102401 as digit bytes */
  {
    g_autoptr(GBytes) v3 = engine_io_payload_encode (ENGINE_IO_PAYLOAD_V3_BINARY, packets);

    g_assert_cmpmem (g_bytes_get_data (v3, NULL), 9, "\x00\x01\x00\x02\x04\x00\x01\xff" "4", 9);
  }
}

/* ------------------------------------------------------------------ */
/* Random round trips                                                   */
/* ------------------------------------------------------------------ */

#define ROUND_TRIP_PACKETS 4000

static void
append_random_char (GRand    *rand,
                    GString  *text,
                    gboolean  allow_rs)
{
  gunichar c;
  char buf[6];
  int kind = g_rand_int_range (rand, 0, 10);

  if (kind < 4)
    {
      c = g_rand_int_range (rand, 0, 0x80);   /* ASCII, controls and NUL included */
      if (c == 0x1e && !allow_rs)
        c = 'x';
    }
  else if (kind < 6)
    c = g_rand_int_range (rand, 0x80, 0x800);
  else if (kind < 8)
    {
      do
        c = g_rand_int_range (rand, 0x800, 0x10000);
      while (c >= 0xd800 && c <= 0xdfff);
    }
  else
    c = g_rand_int_range (rand, 0x10000, 0x110000);

  g_string_append_len (text, buf, g_unichar_to_utf8 (c, buf));
}

static EngineIOPacket *
random_packet (GRand    *rand,
               gboolean  binary_any_type,
               gboolean  allow_rs)
{
  EngineIOPacketType type = g_rand_int_range (rand, 0, 7);
  gint32 length;
  gint32 i;

  /* Mostly short, sometimes empty, now and then a few KiB. */
  switch (g_rand_int_range (rand, 0, 8))
    {
    case 0:
      length = 0;
      break;
    case 1:
      length = g_rand_int_range (rand, 256, 4096);
      break;
    default:
      length = g_rand_int_range (rand, 1, 40);
      break;
    }

  if (g_rand_int_range (rand, 0, 3) == 0)
    {
      g_autofree guint8 *data = g_malloc (MAX (length, 1));

      for (i = 0; i < length; i++)
        data[i] = (guint8) g_rand_int_range (rand, 0, 256);
      if (!binary_any_type)
        type = ENGINE_IO_PACKET_MESSAGE;
      return binary_packet (type, data, length);
    }
  else
    {
      g_autoptr(GString) text = g_string_new (NULL);

      for (i = 0; i < length; i++)
        append_random_char (rand, text, allow_rs);
      return engine_io_packet_new_text (type, text->str, text->len);
    }
}

static void
test_round_trip_frames (gconstpointer data)
{
  EngineIOProtocolVersion version = GPOINTER_TO_INT (data);
  g_autoptr(GRand) rand = g_rand_new_with_seed (0x5eed0000 + version);
  guint i;

  g_test_summary ("Random packets (all types, multi-byte and astral text, binary with every "
                  "byte value, empty ones) survive encode and decode as WebSocket frames.");

  for (i = 0; i < ROUND_TRIP_PACKETS; i++)
    {
      g_autoptr(EngineIOPacket) packet = random_packet (rand, version == ENGINE_IO_PROTOCOL_V3, TRUE);
      g_autoptr(EngineIOPacket) decoded = NULL;
      g_autoptr(GBytes) frame = NULL;
      g_autoptr(GError) error = NULL;
      gboolean is_binary;

      frame = engine_io_packet_encode (packet, version, &is_binary);
      g_assert_cmpint (is_binary, ==, engine_io_packet_is_binary (packet));
      decoded = engine_io_packet_decode (frame, is_binary, version, &error);
      g_assert_no_error (error);
      g_assert_true (engine_io_packet_equal (packet, decoded));
    }
}

static void
test_round_trip_payloads (gconstpointer data)
{
  EngineIOPayloadFormat format = GPOINTER_TO_INT (data);
  g_autoptr(GRand) rand = g_rand_new_with_seed (0x5eed1000 + format);
  guint total = 0;

  g_test_summary ("Random lists of random packets survive encode and decode as a payload.");

  while (total < ROUND_TRIP_PACKETS)
    {
      g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
      g_autoptr(GPtrArray) decoded = NULL;
      g_autoptr(GBytes) payload = NULL;
      g_autoptr(GError) error = NULL;
      guint n = g_rand_int_range (rand, 1, 20);
      guint i;

      for (i = 0; i < n; i++)
        g_ptr_array_add (packets, random_packet (rand, format != ENGINE_IO_PAYLOAD_V4,
                                                 format != ENGINE_IO_PAYLOAD_V4));

      payload = engine_io_payload_encode (format, packets);
      decoded = engine_io_payload_decode (format, payload, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (decoded->len, ==, n);
      for (i = 0; i < n; i++)
        g_assert_true (engine_io_packet_equal (packets->pdata[i], decoded->pdata[i]));

      total += n;
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/codec/enums", test_enums);
  g_test_add_func ("/codec/packet/basics", test_packet_basics);
  g_test_add_func ("/codec/packet/text-owned", test_packet_text_owned);
  g_test_add_func ("/codec/packet/invalid-text", test_packet_invalid_text);
  g_test_add_func ("/codec/utf8/validate", test_utf8_validate);
  g_test_add_func ("/codec/utf8/utf16-length", test_utf16_length);
  g_test_add_func ("/codec/frame/encode", test_frame_encode);
  g_test_add_func ("/codec/frame/decode", test_frame_decode);
  g_test_add_func ("/codec/frame/errors", test_frame_errors);
  g_test_add_func ("/codec/payload/v4", test_payload_v4);
  g_test_add_func ("/codec/payload/v4/errors", test_payload_v4_errors);
  g_test_add_func ("/codec/payload/v3-text", test_payload_v3_text);
  g_test_add_func ("/codec/payload/v3-text/errors", test_payload_v3_text_errors);
  g_test_add_func ("/codec/payload/v3-binary", test_payload_v3_binary);
  g_test_add_func ("/codec/payload/v3-binary/errors", test_payload_v3_binary_errors);
  g_test_add_func ("/codec/payload/zero-copy", test_payload_zero_copy);
  g_test_add_func ("/codec/large", test_large);
  g_test_add_data_func ("/codec/round-trip/frame-v3", GINT_TO_POINTER (ENGINE_IO_PROTOCOL_V3),
                        test_round_trip_frames);
  g_test_add_data_func ("/codec/round-trip/frame-v4", GINT_TO_POINTER (ENGINE_IO_PROTOCOL_V4),
                        test_round_trip_frames);
  g_test_add_data_func ("/codec/round-trip/payload-v4", GINT_TO_POINTER (ENGINE_IO_PAYLOAD_V4),
                        test_round_trip_payloads);
  g_test_add_data_func ("/codec/round-trip/payload-v3-text", GINT_TO_POINTER (ENGINE_IO_PAYLOAD_V3_TEXT),
                        test_round_trip_payloads);
  g_test_add_data_func ("/codec/round-trip/payload-v3-binary", GINT_TO_POINTER (ENGINE_IO_PAYLOAD_V3_BINARY),
                        test_round_trip_payloads);

  return g_test_run ();
}
