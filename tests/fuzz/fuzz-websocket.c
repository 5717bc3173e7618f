/* fuzz-websocket: fuzzed WebSocket byte streams into a session
 *
 * Opens a session through the request interface (fuzz-engine.h): a
 * direct WebSocket handshake, or a polling handshake and an upgrade of it
 * (a probe), switched to a socketpair. Writes the fuzz input into the
 * client end, in chunks at fuzzed boundaries with the session's context
 * run between them, reads and checks what the server writes back (frame
 * syntax, close codes, Engine.IO packets, `3probe` first on a probe),
 * ends the session one of four ways and checks that nothing is left.
 *
 * Input: MODE OPTIONS STREAM...
 *
 *   MODE     0x01 protocol v3 (else v4)
 *            0x02 upgrade a polling session (else a direct WebSocket)
 *            0x04 max-payload 64 (else 1000000)
 *            0x08 the application echoes messages
 *            0x10 raw stream (else framed)
 *            0x20 the first chunk arrives with the 101 (libmicrohttpd's extra bytes)
 *            0x40 with 0x02: the harness sends `2probe` and `5` first
 *            0x80 the application closes the socket on "bye"
 *   OPTIONS  0x03 the end: 0 the application closes, 1 the client sends a
 *                 close frame, 2 the client shuts its side, 3 the
 *                 heartbeat times out
 *            0x04 a poll is waiting during the upgrade
 *            0x08 send-queue-high-water 256
 *            0x10 the application sends two messages on connection
 *            0x20 no ::message handler (the receive queue)
 *            0x40 message-rate 1/s, burst 3 (where the server has it)
 *            0x80 a ::drain handler
 *
 *   framed STREAM: frames B0 FLAGS LEN [LEN2 LEN3 if LEN == 255] PAYLOAD
 *            B0       FIN | RSV | opcode, as sent
 *            FLAGS    0x80 unmasked, 0x40 non-zero mask key, 0x20 a chunk
 *                     boundary after this frame, 0x10 split this frame in
 *                     two writes, 0x0c length encoding (0 minimal, 1 16-bit,
 *                     2 64-bit, 3 declares 100 bytes more than follow)
 *   raw STREAM: chunks LEN BYTES, written as they are
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-engine.h"

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static GHashTable *
string_table (const char *first,
              ...)
{
  GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  va_list args;

  va_start (args, first);
  for (const char *key = first; key != NULL; key = va_arg (args, const char *))
    g_hash_table_insert (table, g_strdup (key), g_strdup (va_arg (args, const char *)));
  va_end (args);
  return table;
}

static GHashTable *
upgrade_headers (void)
{
  return string_table ("upgrade", "websocket", "connection", "Upgrade",
                       "sec-websocket-key", WS_KEY, "sec-websocket-version", "13", NULL);
}

static FuzzWsClient *
open_session (FuzzEngine *e,
              gboolean    v3,
              gboolean    upgrade,
              gboolean    poll_waiting,
              GBytes     *extra)
{
  const char *eio = v3 ? "3" : "4";

  if (upgrade)
    {
      const char *sid;

      engine_request (e, "GET", "/engine.io/", string_table ("EIO", eio, "transport", "polling", NULL),
                      string_table (NULL), NULL, NULL, 0);
      engine_drain (e);
      sid = engine_sid (e, 0);
      FUZZ_CHECK (sid[0] != '\0');
      if (poll_waiting)
        engine_request (e, "GET", "/engine.io/",
                        string_table ("EIO", eio, "transport", "polling", "sid", sid, NULL),
                        string_table (NULL), NULL, NULL, 0);
      engine_request (e, "GET", "/engine.io/",
                      string_table ("EIO", eio, "transport", "websocket", "sid", sid, NULL),
                      upgrade_headers (), NULL, extra, 0);
    }
  else
    engine_request (e, "GET", "/engine.io/", string_table ("EIO", eio, "transport", "websocket", NULL),
                    upgrade_headers (), NULL, extra, 0);
  engine_drain (e);
  FUZZ_CHECK (e->clients->len == 1);
  return g_ptr_array_index (e->clients, 0);
}

static void
send_frame (FuzzWsClient *c,
            guint8        opcode,
            const char   *payload,
            gsize         len)
{
  g_autoptr(GByteArray) frame = g_byte_array_new ();

  client_frame (frame, 0x80 | opcode, TRUE, 0x11223344, (const guint8 *) payload, len, 0);
  if (opcode == 0x8)
    client_note_close_sent (c, (const guint8 *) payload, len);
  client_write (c, frame->data, frame->len);
  engine_drain (c->engine);
}

static void
write_framed (FuzzWsClient *c,
              const guint8 *s,
              gsize         size)
{
  g_autoptr(GByteArray) pending = g_byte_array_new ();
  gsize pos = 0;

  while (size - pos >= 3 && c->fd >= 0)
    {
      guint8 b0 = s[pos], flags = s[pos + 1];
      gsize len = s[pos + 2];
      g_autoptr(GByteArray) frame = g_byte_array_new ();

      pos += 3;
      if (len == 0xff && size - pos >= 2)
        {
          len = ((gsize) s[pos] << 8) | s[pos + 1];
          pos += 2;
        }
      len = MIN (len, size - pos);

      client_frame (frame, b0, !(flags & 0x80), (flags & 0x40) ? 0x37fa213d : 0,
                    s + pos, len, (flags >> 2) & 3);
      if ((b0 & 0x0f) == 0x8 && !(flags & 0x80))
        client_note_close_sent (c, s + pos, len);
      pos += len;

      if (flags & 0x10)
        {
          /* Half a frame, the context runs, the other half. */
          g_byte_array_append (pending, frame->data, frame->len / 2);
          client_write (c, pending->data, pending->len);
          g_byte_array_set_size (pending, 0);
          engine_drain (c->engine);
          client_write (c, frame->data + frame->len / 2, frame->len - frame->len / 2);
          engine_drain (c->engine);
          continue;
        }
      g_byte_array_append (pending, frame->data, frame->len);
      if (flags & 0x20)
        {
          client_write (c, pending->data, pending->len);
          g_byte_array_set_size (pending, 0);
          engine_drain (c->engine);
        }
    }
  client_write (c, pending->data, pending->len);
  engine_drain (c->engine);
}

static void
write_raw (FuzzWsClient *c,
           const guint8 *s,
           gsize         size)
{
  gsize pos = 0;

  c->wrote_raw = TRUE;
  while (pos < size && c->fd >= 0)
    {
      gsize len = MIN ((gsize) s[pos], size - pos - 1);

      client_write (c, s + pos + 1, len);
      engine_drain (c->engine);
      pos += 1 + len;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  guint8 mode, options;
  guint32 cfg = 0;
  const guint8 *stream;
  gsize stream_size;
  g_autoptr(GBytes) extra = NULL;
  FuzzEngine *e;
  FuzzWsClient *c;

  if (size < 2)
    return 0;
  mode = data[0];
  options = data[1];
  stream = data + 2;
  stream_size = size - 2;

  if (mode & 0x01) cfg |= CFG_EIO3;
  if (mode & 0x04) cfg |= CFG_SMALL_PAYLOAD;
  if (mode & 0x08) cfg |= CFG_APP_ECHO;
  if (mode & 0x80) cfg |= CFG_APP_BYE;
  if (options & 0x08) cfg |= CFG_SMALL_HIGH_WATER;
  if (options & 0x10) cfg |= CFG_APP_GREET;
  if (options & 0x20) cfg |= CFG_NO_MESSAGE;
  if (options & 0x40) cfg |= CFG_MESSAGE_RATE;
  if (options & 0x80) cfg |= CFG_DRAIN_HANDLER;

  /* The first chunk may come with the upgrade request itself. */
  if ((mode & 0x20) && stream_size > 0)
    {
      gsize len = MIN ((gsize) stream[0], stream_size - 1);
      extra = g_bytes_new (stream + 1, len);
      stream += 1 + len;
      stream_size -= 1 + len;
    }

  e = engine_new (cfg);
  e->ws_raw = extra != NULL;  /* raw bytes with the upgrade request */
  c = open_session (e, mode & 0x01, mode & 0x02, options & 0x04, extra);

  if ((mode & 0x42) == 0x42 && extra == NULL)
    {
      send_frame (c, 0x1, "2probe", 6);
      FUZZ_CHECK (c->n_messages == 1);  /* 3probe */
      send_frame (c, 0x1, "5", 1);
    }

  if (mode & 0x10)
    write_raw (c, stream, stream_size);
  else
    write_framed (c, stream, stream_size);

  switch (options & 0x03)
    {
    case 0:
      {
        g_autoptr(EngineIOSocket) socket = engine_io_server_lookup_socket (e->server, engine_sid (e, 0));
        if (socket != NULL)
          engine_io_socket_close (socket);
        engine_drain (e);
        if (c->got_close && c->fd >= 0 && !c->sent_close)
          send_frame (c, 0x8, "\x03\xe8", 2);
      }
      break;
    case 1:
      if (c->fd >= 0 && !c->sent_close)
        send_frame (c, 0x8, "\x03\xe8" "bye", 5);
      break;
    case 2:
      if (c->fd >= 0)
        {
          shutdown (c->fd, SHUT_WR);
          c->write_shut = TRUE;
        }
      engine_drain (e);
      break;
    case 3:
      engine_tick (e);   /* v4: ping sent; v3: expiry */
      engine_tick (e);   /* v4: pong deadline */
      break;
    }

  engine_free (e);
  return 0;
}
