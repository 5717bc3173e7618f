/* fuzz-common.h: shared checks of the codec fuzz targets
 *
 * Every target decodes the input straight from libFuzzer's buffer (so ASan
 * sees any read past it), then checks the invariants that must hold for
 * every input:
 *
 * - a failure is an ENGINE_IO_ERROR_PARSE error whose message ends with
 *   "at byte offset N", N no larger than the input;
 * - whatever decodes re-encodes, and the re-encoded form decodes to equal
 *   packets;
 * - no g_return_if_fail() or other warning fires (they are made fatal).
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engineio-packet-private.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
  G_STMT_START { \
    if (G_UNLIKELY (!(cond))) \
      { \
        g_printerr ("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        abort (); \
      } \
  } G_STMT_END

/* A fatal GLib log ends in G_BREAKPOINT(): SIGTRAP, which libFuzzer does
 * not catch (no crash input would be saved). Make it an abort. */
static void
trap_to_abort (int sig)
{
  abort ();
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  /* GLib 2.74's slice allocator recycles memory behind ASan's back: a
   * use-after-free of a slice-allocated block (GList, GHashTable, GString
   * headers...) would go unseen, or show up later as a crash elsewhere.
   * It reads G_SLICE once, before we get here (GLib's constructors
   * allocate): start again with it set. */
  if (g_strcmp0 (getenv ("G_SLICE"), "always-malloc") != 0)
    {
      setenv ("G_SLICE", "always-malloc", 1);
      execv ("/proc/self/exe", *argv);
      g_printerr ("cannot re-execute with G_SLICE=always-malloc; set it yourself\n");
      abort ();
    }

  /* A critical or warning on hostile input is a bug: crash on it. */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  signal (SIGTRAP, trap_to_abort);
  return 0;
}

static inline void
fuzz_check_error (GError *error,
                  gsize   input_size)
{
  const char *marker;
  guint64 offset;
  char *end;

  FUZZ_CHECK (error != NULL);
  FUZZ_CHECK (g_error_matches (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_PARSE));
  marker = g_strrstr (error->message, " at byte offset ");
  FUZZ_CHECK (marker != NULL);
  offset = g_ascii_strtoull (marker + strlen (" at byte offset "), &end, 10);
  FUZZ_CHECK (*end == '\0');
  FUZZ_CHECK (offset <= input_size);
}

static inline void
fuzz_check_same (GPtrArray *a,
                 GPtrArray *b)
{
  guint i;

  FUZZ_CHECK (a->len == b->len);
  for (i = 0; i < a->len; i++)
    FUZZ_CHECK (engine_io_packet_equal (a->pdata[i], b->pdata[i]));
}

/* Decode a payload; if it decodes, re-encode, decode again and compare.
 * Also checks each packet through the single-frame codec. */
static inline void
fuzz_payload (EngineIOPayloadFormat  format,
              const uint8_t         *data,
              size_t                 size)
{
  g_autoptr(GBytes) owner = g_bytes_new_static (data, size);
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GPtrArray) again = NULL;
  g_autoptr(GBytes) encoded = NULL;
  g_autoptr(GError) error = NULL;
  EngineIOProtocolVersion version;
  guint i;

  packets = engine_io_payload_decode_data (format, data, size, owner, &error);
  if (packets == NULL)
    {
      fuzz_check_error (error, size);
      return;
    }
  FUZZ_CHECK (error == NULL);

  encoded = engine_io_payload_encode (format, packets);
  FUZZ_CHECK (encoded != NULL);
  again = engine_io_payload_decode (format, encoded, &error);
  if (again == NULL)
    g_error ("Re-encoded payload does not decode: %s", error->message);
  fuzz_check_same (packets, again);

  version = format == ENGINE_IO_PAYLOAD_V4 ? ENGINE_IO_PROTOCOL_V4 : ENGINE_IO_PROTOCOL_V3;
  for (i = 0; i < packets->len; i++)
    {
      g_autoptr(GBytes) frame = NULL;
      g_autoptr(EngineIOPacket) decoded = NULL;
      gboolean is_binary;

      frame = engine_io_packet_encode (packets->pdata[i], version, &is_binary);
      decoded = engine_io_packet_decode (frame, is_binary, version, &error);
      if (decoded == NULL)
        g_error ("Re-encoded frame does not decode: %s", error->message);
      FUZZ_CHECK (engine_io_packet_equal (decoded, packets->pdata[i]));
    }
}
