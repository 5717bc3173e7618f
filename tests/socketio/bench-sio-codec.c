/* bench-sio-codec.c: decode and encode speed of the Socket.IO codec
 *
 * Prints µs per decode (feed_text of a complete packet, packet freed)
 * and per encode (socket_io_packet_encode of the decoded packet) for a
 * few typical messages. Not a test: run it by hand on a quiet machine
 * (build/tests/socketio/bench-sio-codec [ITERATIONS]).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "socketio-packet-private.h"

static const char * const messages[] = {
  "2[\"message\",\"hello, world!!!!!\"]",
  "2/chat,17[\"message\",{\"user\":\"alice\",\"room\":\"general\",\"text\":\"hello everyone\","
    "\"ts\":1733219000123,\"score\":0.75,\"tags\":[\"a\",\"b\"],\"ok\":true}]",
  "0/admin,{\"token\":\"eyJhbGciOiJIUzI1NiJ9.e30.abc\"}",
};

int
main (int    argc,
      char **argv)
{
  guint iterations = argc > 1 ? atoi (argv[1]) : 200000;
  guint m;

  for (m = 0; m < G_N_ELEMENTS (messages); m++)
    {
      const char *text = messages[m];
      gsize length = strlen (text);
      g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (SOCKET_IO_PROTOCOL_V5);
      g_autoptr(SocketIOPacket) kept = NULL;
      g_autoptr(GError) error = NULL;
      gint64 start;
      double decode_us, encode_us;
      guint i;

      if (!socket_io_decoder_feed_text (decoder, text, length, &kept, &error))
        g_error ("%s: %s", text, error->message);
      start = g_get_monotonic_time ();
      for (i = 0; i < iterations; i++)
        {
          SocketIOPacket *packet = NULL;

          socket_io_decoder_feed_text (decoder, text, length, &packet, NULL);
          socket_io_packet_unref (packet);
        }
      decode_us = (double) (g_get_monotonic_time () - start) / iterations;
      start = g_get_monotonic_time ();
      for (i = 0; i < iterations; i++)
        g_bytes_unref (socket_io_packet_encode (kept, NULL));
      encode_us = (double) (g_get_monotonic_time () - start) / iterations;
      g_print ("%3zu bytes: decode %.2f µs, encode %.2f µs  %.40s…\n", length, decode_us, encode_us, text);
    }
  return 0;
}
