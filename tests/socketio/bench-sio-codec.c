/* bench-sio-codec.c: decode and encode speed of the Socket.IO codec
 *
 * Prints µs of CPU time (this thread's, so that other processes on a busy
 * machine count less) per decode (feed_text of a complete packet, packet
 * freed) and per encode (socket_io_packet_encode of the decoded packet)
 * for a few typical messages, the best of 5 runs. Not a test: run it by
 * hand (build/tests/socketio/bench-sio-codec [ITERATIONS]).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "socketio-packet-private.h"

static const char * const messages[] = {
  "2[\"message\",\"hello, world!!!!!\"]",
  ("2/chat,17[\"message\",{\"user\":\"alice\",\"room\":\"general\",\"text\":\"hello everyone\","
   "\"ts\":1733219000123,\"score\":0.75,\"tags\":[\"a\",\"b\"],\"ok\":true}]"),
  "0/admin,{\"token\":\"eyJhbGciOiJIUzI1NiJ9.e30.abc\"}",
};

static double
cpu_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int
main (int    argc,
      char **argv)
{
  guint iterations = argc > 1 ? atoi (argv[1]) : 100000;
  guint m;

  for (m = 0; m < G_N_ELEMENTS (messages); m++)
    {
      const char *text = messages[m];
      gsize length = strlen (text);
      g_autoptr(SocketIODecoder) decoder = socket_io_decoder_new (SOCKET_IO_PROTOCOL_V5);
      g_autoptr(SocketIOPacket) kept = NULL;
      g_autoptr(GError) error = NULL;
      double start, decode_us = G_MAXDOUBLE, encode_us = G_MAXDOUBLE;
      guint i, run;

      if (!socket_io_decoder_feed_text (decoder, text, length, &kept, &error))
        g_error ("%s: %s", text, error->message);
      for (run = 0; run < 5; run++)
        {
          start = cpu_us ();
          for (i = 0; i < iterations; i++)
            {
              SocketIOPacket *packet = NULL;

              socket_io_decoder_feed_text (decoder, text, length, &packet, NULL);
              socket_io_packet_unref (packet);
            }
          decode_us = MIN (decode_us, (cpu_us () - start) / iterations);
          start = cpu_us ();
          for (i = 0; i < iterations; i++)
            g_bytes_unref (socket_io_packet_encode (kept, NULL));
          encode_us = MIN (encode_us, (cpu_us () - start) / iterations);
        }
      g_print ("%3zu bytes: decode %.2f µs, encode %.2f µs  %.40s…\n", length, decode_us, encode_us, text);
    }
  return 0;
}
