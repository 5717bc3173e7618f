/* bench-codec.c: throughput of the sans-I/O codec
 *
 * Not a test: build and run it by hand, with an optimized build.
 *
 *   meson setup build-release -Dbuildtype=release -Dintrospection=disabled
 *   ninja -C build-release tests/bench-codec && build-release/tests/bench-codec
 *
 * For each case it encodes (packets to payload) and parses (payload to
 * packets) the same payload in a loop for --min-time seconds, --reps times,
 * and prints the median in MB/s (10^6 bytes of payload per second).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engineio-packet-private.h"

typedef enum
{
  CONTENT_ASCII,      /* JSON-like ASCII text */
  CONTENT_MULTIBYTE,  /* text with 2-, 3- and 4-byte characters */
  CONTENT_BINARY,     /* every byte value */
} Content;

typedef struct
{
  const char            *name;
  EngineIOPayloadFormat  format;
  Content                content;
  gsize                  message_size;
  guint                  n_messages;
} BenchCase;

static const BenchCase cases[] = {
  { "v4 payload, 1 KiB text messages", ENGINE_IO_PAYLOAD_V4, CONTENT_ASCII, 1024, 1000 },
  { "v4 payload, 64 KiB binary messages", ENGINE_IO_PAYLOAD_V4, CONTENT_BINARY, 65536, 16 },
  { "v4 payload, 1 KiB multi-byte text", ENGINE_IO_PAYLOAD_V4, CONTENT_MULTIBYTE, 1024, 1000 },
  { "v3 text payload, 1 KiB text messages", ENGINE_IO_PAYLOAD_V3_TEXT, CONTENT_ASCII, 1024, 1000 },
  { "v3 text payload, 1 KiB multi-byte text", ENGINE_IO_PAYLOAD_V3_TEXT, CONTENT_MULTIBYTE, 1024, 1000 },
  { "v3 binary payload, 1 KiB text messages", ENGINE_IO_PAYLOAD_V3_BINARY, CONTENT_ASCII, 1024, 1000 },
  { "v3 binary payload, 64 KiB binary messages", ENGINE_IO_PAYLOAD_V3_BINARY, CONTENT_BINARY, 65536, 16 },
};

static gint reps = 7;
static gdouble min_time = 0.2;

static EngineIOPacket *
make_message (Content content,
              gsize   size,
              guint   seed)
{
  g_autoptr(GString) text = g_string_sized_new (size + 4);
  gsize i;

  switch (content)
    {
    case CONTENT_ASCII:
      g_string_append_printf (text, "[\"chat\",{\"id\":%u,\"text\":\"", seed);
      for (i = 0; text->len < size - 3; i++)
        g_string_append_c (text, "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789.,"[(i * 7 + seed) % 66]);
      g_string_append (text, "\"}]");
      return engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, text->str, text->len);

    case CONTENT_MULTIBYTE:
      {
        static const char * const pieces[] = { "hello ", "héllo ", "€ ", "日本語 ", "😀 " };

        for (i = 0; text->len + 10 < size; i++)
          g_string_append (text, pieces[(i + seed) % G_N_ELEMENTS (pieces)]);
        while (text->len < size)
          g_string_append_c (text, '.');
        return engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, text->str, text->len);
      }

    case CONTENT_BINARY:
      {
        g_autoptr(GBytes) bytes = NULL;
        guint8 *data = g_malloc (size);

        for (i = 0; i < size; i++)
          data[i] = (guint8) (i * 31 + seed);
        bytes = g_bytes_new_take (data, size);
        return engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, bytes);
      }

    default:
      g_assert_not_reached ();
    }
}

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  gdouble x = *(const gdouble *) a;
  gdouble y = *(const gdouble *) b;

  return (x > y) - (x < y);
}

/* Median MB/s over the repetitions of @op on @payload_size bytes. */
static gdouble
measure (gsize   payload_size,
         void  (*op) (gpointer data),
         gpointer data)
{
  g_autofree gdouble *rates = g_new (gdouble, reps);
  gint r;

  /* Warm up caches and the allocator. */
  op (data);
  op (data);

  for (r = 0; r < reps; r++)
    {
      gint64 start = g_get_monotonic_time ();
      gint64 elapsed;
      guint64 iterations = 0;

      do
        {
          op (data);
          iterations++;
          elapsed = g_get_monotonic_time () - start;
        }
      while (elapsed < min_time * G_USEC_PER_SEC);

      rates[r] = (gdouble) payload_size * iterations / elapsed;  /* bytes/µs = MB/s */
    }

  qsort (rates, reps, sizeof (gdouble), compare_doubles);
  return reps % 2 ? rates[reps / 2] : (rates[reps / 2 - 1] + rates[reps / 2]) / 2;
}

typedef struct
{
  EngineIOPayloadFormat  format;
  GPtrArray             *packets;
  GBytes                *payload;
} OpData;

static void
op_encode (gpointer data)
{
  OpData *d = data;
  g_autoptr(GBytes) payload = engine_io_payload_encode (d->format, d->packets);

  g_assert_nonnull (payload);
}

static void
op_parse (gpointer data)
{
  OpData *d = data;
  g_autoptr(GPtrArray) packets = engine_io_payload_decode (d->format, d->payload, NULL);

  g_assert_nonnull (packets);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "reps", 'r', 0, G_OPTION_ARG_INT, &reps, "Repetitions per measurement (default 7)", "N" },
    { "min-time", 't', 0, G_OPTION_ARG_DOUBLE, &min_time, "Seconds per repetition (default 0.2)", "S" },
    { NULL }
  };
  guint i;

  context = g_option_context_new ("- benchmark the Engine.IO codec");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || reps < 1 || min_time <= 0)
    {
      g_printerr ("%s\n", error != NULL ? error->message : "--reps and --min-time must be positive");
      return 2;
    }

  g_print ("# engineio codec throughput, median of %d x %.2f s, MB/s = 10^6 payload bytes/s\n",
           reps, min_time);
  g_print ("%-44s %12s %12s %12s\n", "case", "payload", "parse MB/s", "encode MB/s");

  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const BenchCase *c = &cases[i];
      g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
      g_autoptr(GBytes) payload = NULL;
      g_autoptr(GPtrArray) check = NULL;
      OpData data;
      gdouble parse, encode;
      guint m;

      for (m = 0; m < c->n_messages; m++)
        g_ptr_array_add (packets, make_message (c->content, c->message_size, m));

      payload = engine_io_payload_encode (c->format, packets);
      check = engine_io_payload_decode (c->format, payload, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (check->len, ==, c->n_messages);

      data.format = c->format;
      data.packets = packets;
      data.payload = payload;

      parse = measure (g_bytes_get_size (payload), op_parse, &data);
      encode = measure (g_bytes_get_size (payload), op_encode, &data);

      g_print ("%-44s %12" G_GSIZE_FORMAT " %12.0f %12.0f\n",
               c->name, g_bytes_get_size (payload), parse, encode);
    }

  return 0;
}
