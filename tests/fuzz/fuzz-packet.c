/* fuzz-packet.c: libFuzzer target for single packets (WebSocket frames)
 *
 * The first input byte picks the frame kind: bit 0 set is protocol v4
 * (else v3), bit 1 set is a binary frame (else text). The rest is the frame.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  EngineIOProtocolVersion version;
  gboolean is_binary;
  g_autoptr(GBytes) owner = NULL;
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(EngineIOPacket) again = NULL;
  g_autoptr(GBytes) frame = NULL;
  g_autoptr(GByteArray) appended = NULL;
  g_autoptr(GError) error = NULL;
  gboolean frame_is_binary;
  gboolean appended_is_binary;

  if (size == 0)
    return 0;

  version = (data[0] & 1) ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
  is_binary = (data[0] & 2) != 0;
  data++;
  size--;

  owner = g_bytes_new_static (data, size);
  packet = engine_io_packet_decode_data (data, size, is_binary, version, owner, &error);
  if (packet == NULL)
    {
      fuzz_check_error (error, size);
      return 0;
    }

  /* Text packets: get_text is NUL-terminated valid UTF-8. */
  if (!engine_io_packet_is_binary (packet))
    {
      gsize length;
      const char *text = engine_io_packet_get_text (packet, &length);

      FUZZ_CHECK (text != NULL && text[length] == '\0');
      FUZZ_CHECK (engine_io_utf8_validate (text, length, NULL));
    }

  frame = engine_io_packet_encode (packet, version, &frame_is_binary);
  FUZZ_CHECK (frame != NULL);
  again = engine_io_packet_decode (frame, frame_is_binary, version, &error);
  if (again == NULL)
    g_error ("Re-encoded frame does not decode: %s", error->message);
  FUZZ_CHECK (engine_io_packet_equal (packet, again));

  appended = g_byte_array_new ();
  engine_io_packet_encode_append (packet, version, appended, &appended_is_binary);
  FUZZ_CHECK (appended_is_binary == frame_is_binary);
  FUZZ_CHECK (appended->len == g_bytes_get_size (frame));
  FUZZ_CHECK (appended->len == 0 || memcmp (appended->data, g_bytes_get_data (frame, NULL), appended->len) == 0);

  return 0;
}
