/* wsutil.c: a raw WebSocket client and Engine.IO helpers for the tests
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "wsutil.h"

#define WS_WRITE_TIMEOUT_S 10
#define WS_HANDSHAKE_TIMEOUT_MS TEST_TIMEOUT_MS

struct _TestWs
{
  GSocket    *socket;
  GIOStream  *tls;       /* test_ws_use_tls(): the GTlsClientConnection on socket */
  GByteArray *in;        /* received, not yet parsed */
  GHashTable *headers;   /* of the 101 response */
  gboolean    eof;
};

/* test_ws_use_tls(): the CA every new connection trusts, or NULL for
 * plain TCP. */
static GTlsDatabase *tls_database;

void
test_ws_use_tls (const char *ca_file)
{
  g_autoptr(GError) error = NULL;

  g_clear_object (&tls_database);
  if (ca_file == NULL)
    return;
  tls_database = g_tls_file_database_new (ca_file, &error);
  g_assert_no_error (error);
}

gboolean
test_ws_is_tls (void)
{
  return tls_database != NULL;
}

/* ------------------------------------------------------------------ */
/* Frames                                                               */
/* ------------------------------------------------------------------ */

void
test_ws_frame_free (TestWsFrame *frame)
{
  if (frame == NULL)
    return;
  g_clear_pointer (&frame->payload, g_bytes_unref);
  g_free (frame);
}

char *
test_ws_frame_dup_text (TestWsFrame *frame)
{
  gsize size;
  const char *data = g_bytes_get_data (frame->payload, &size);
  char *text = g_malloc (size + 1);

  if (size > 0)
    memcpy (text, data, size);
  text[size] = '\0';
  return text;
}

/* ------------------------------------------------------------------ */
/* Connection                                                           */
/* ------------------------------------------------------------------ */

char *
test_ws_make_key (void)
{
  guint8 random[16];

  for (guint i = 0; i < sizeof random; i++)
    random[i] = (guint8) g_random_int_range (0, 256);
  return g_base64_encode (random, sizeof random);
}

char *
test_ws_accept_for (const char *key)
{
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize digest_len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, strlen (key));
  g_checksum_update (sha1, (const guchar *) guid, sizeof guid - 1);
  g_checksum_get_digest (sha1, digest, &digest_len);
  return g_base64_encode (digest, digest_len);
}

void
test_ws_free (TestWs *ws)
{
  if (ws == NULL)
    return;
  /* Over TLS, a close_notify and then the FIN, as a TLS client closes
   * (test_ws_drop() closes without it). */
  if (ws->tls != NULL)
    g_io_stream_close (ws->tls, NULL, NULL);
  g_clear_object (&ws->tls);
  if (ws->socket != NULL)
    {
      g_socket_close (ws->socket, NULL);
      g_object_unref (ws->socket);
    }
  g_byte_array_unref (ws->in);
  g_clear_pointer (&ws->headers, g_hash_table_unref);
  g_free (ws);
}

const char *
test_ws_response_header (TestWs     *ws,
                         const char *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);

  return ws->headers != NULL ? g_hash_table_lookup (ws->headers, lower) : NULL;
}

static GSocket *
open_socket (guint    port,
             gint     rcvbuf,
             GError **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, (guint16) port);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (socket == NULL)
    return NULL;
  if (rcvbuf > 0 && !g_socket_set_option (socket, SOL_SOCKET, SO_RCVBUF, rcvbuf, error))
    return NULL;
  g_socket_set_blocking (socket, TRUE);
  g_socket_set_timeout (socket, WS_WRITE_TIMEOUT_S);
  if (!g_socket_connect (socket, address, NULL, error))
    return NULL;
  return g_steal_pointer (&socket);
}

/* Over TLS: what the TLS connection has decrypted (records it holds come
 * first), else waits on the socket for more before @deadline. A read
 * returns at most one record's plaintext. */
static gssize
tls_receive (TestWs   *ws,
             guint8   *buffer,
             gsize     size,
             gint64    deadline,
             GError  **error)
{
  GPollableInputStream *in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (ws->tls));

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      gint64 remaining;
      gssize n = g_pollable_input_stream_read_nonblocking (in, buffer, size, NULL, &local_error);

      if (n >= 0)
        return n;
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return -1;
        }
      /* Nothing decrypted: the rest of a record (or the next) is still
       * to come from the socket. */
      remaining = deadline - g_get_monotonic_time ();
      if (remaining <= 0 ||
          !g_socket_condition_timed_wait (ws->socket, G_IO_IN, remaining, NULL, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timed out waiting for the server");
          return -1;
        }
    }
}

/* Reads more into ws->in before @deadline: the count, 0 at EOF, -1 on
 * error or timeout. */
static gssize
read_more (TestWs   *ws,
           gint64    deadline,
           GError  **error)
{
  guint8 buffer[65536];
  gint64 remaining = deadline - g_get_monotonic_time ();
  g_autoptr(GError) local_error = NULL;
  gssize n;

  if (ws->eof)
    return 0;
  if (ws->tls != NULL)
    n = tls_receive (ws, buffer, sizeof buffer, deadline, &local_error);
  else if (remaining <= 0 ||
           !g_socket_condition_timed_wait (ws->socket, G_IO_IN, remaining, NULL, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timed out waiting for the server");
      return -1;
    }
  else
    n = g_socket_receive (ws->socket, (char *) buffer, sizeof buffer, NULL, &local_error);
  if (n < 0)
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return -1;
        }
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
          g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
        {
          /* A reset is the end of the stream too. */
          ws->eof = TRUE;
          return 0;
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return -1;
    }
  if (n == 0)
    ws->eof = TRUE;
  else
    g_byte_array_append (ws->in, buffer, (guint) n);
  return n;
}

static gssize
find_head_end (GByteArray *array)
{
  for (guint i = 0; i + 3 < array->len; i++)
    if (memcmp (array->data + i, "\r\n\r\n", 4) == 0)
      return (gssize) i;
  return -1;
}

/* Parses the response head in ws->in (and, for non-101 answers, the body
 * by Content-Length). */
static TestResponse *
read_response (TestWs   *ws,
               GError  **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) WS_HANDSHAKE_TIMEOUT_MS * 1000;
  g_autoptr(TestResponse) response = g_new0 (TestResponse, 1);
  g_autofree char *head = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) status_parts = NULL;
  const char *length_header;
  gssize end;

  while ((end = find_head_end (ws->in)) < 0)
    {
      gssize n = read_more (ws, deadline, error);
      if (n < 0)
        return NULL;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "The server closed the connection before a complete response");
          return NULL;
        }
    }

  head = g_strndup ((const char *) ws->in->data, (gsize) end);
  g_byte_array_remove_range (ws->in, 0, (guint) end + 4);
  lines = g_strsplit (head, "\r\n", -1);
  status_parts = g_strsplit (lines[0], " ", 3);
  if (g_strv_length (status_parts) < 2 || !g_str_has_prefix (status_parts[0], "HTTP/1."))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Bad status line “%s”", lines[0]);
      return NULL;
    }
  response->status = (guint) g_ascii_strtoull (status_parts[1], NULL, 10);
  response->reason = g_strdup (status_parts[2] ? status_parts[2] : "");
  response->headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      const char *colon = strchr (lines[i], ':');
      g_autofree char *name = NULL;
      g_autofree char *value = NULL;
      const char *old;

      if (colon == NULL)
        continue;
      name = g_ascii_strdown (lines[i], colon - lines[i]);
      value = g_strstrip (g_strdup (colon + 1));
      old = g_hash_table_lookup (response->headers, name);
      if (old != NULL)
        {
          char *joined = g_strconcat (old, ", ", value, NULL);
          g_hash_table_insert (response->headers, g_steal_pointer (&name), joined);
        }
      else
        g_hash_table_insert (response->headers, g_steal_pointer (&name), g_steal_pointer (&value));
    }

  length_header = g_hash_table_lookup (response->headers, "content-length");
  if (response->status == 101 || length_header == NULL)
    response->body = g_bytes_new (NULL, 0);
  else
    {
      guint64 length = g_ascii_strtoull (length_header, NULL, 10);
      while (ws->in->len < length)
        {
          gssize n = read_more (ws, deadline, error);
          if (n < 0)
            return NULL;
          if (n == 0)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                           "The server closed the connection inside a response body");
              return NULL;
            }
        }
      response->body = g_bytes_new (ws->in->data, length);
      g_byte_array_remove_range (ws->in, 0, (guint) length);
    }

  return g_steal_pointer (&response);
}

static gboolean
send_all (TestWs      *ws,
          const void  *data,
          gsize        length,
          GError     **error)
{
  const char *p = data;

  if (ws->tls != NULL)
    /* One write: records of at most 16 KiB, each its own TLS record. */
    return g_output_stream_write_all (g_io_stream_get_output_stream (ws->tls), data, length,
                                      NULL, NULL, error);
  while (length > 0)
    {
      gssize n = g_socket_send_with_blocking (ws->socket, p, length, TRUE, NULL, error);
      if (n < 0)
        return FALSE;
      p += n;
      length -= (gsize) n;
    }
  return TRUE;
}

static TestWs *
finish_handshake (TestWs        *ws_in,
                  const char    *key,
                  TestResponse **out_response,
                  GError       **error)
{
  g_autoptr(TestWs) ws = ws_in;
  g_autoptr(TestResponse) response = read_response (ws, error);
  g_autofree char *expected = NULL;
  const char *accept;

  if (response == NULL)
    return NULL;

  if (response->status != 101)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "The server answered %u, not 101", response->status);
      if (out_response != NULL)
        *out_response = g_steal_pointer (&response);
      return NULL;
    }

  expected = test_ws_accept_for (key);
  accept = test_response_header (response, "Sec-WebSocket-Accept");
  if (g_strcmp0 (accept, expected) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "Sec-WebSocket-Accept is “%s”, expected “%s”", accept ? accept : "(none)", expected);
      if (out_response != NULL)
        *out_response = g_steal_pointer (&response);
      return NULL;
    }

  ws->headers = g_hash_table_ref (response->headers);
  if (out_response != NULL)
    *out_response = g_steal_pointer (&response);
  return g_steal_pointer (&ws);
}

static TestWs *
ws_new (guint    port,
        gint     rcvbuf,
        GError **error)
{
  GSocket *socket = open_socket (port, rcvbuf, error);
  TestWs *ws;

  if (socket == NULL)
    return NULL;
  ws = g_new0 (TestWs, 1);
  ws->socket = socket;
  ws->in = g_byte_array_new ();
  if (tls_database != NULL)
    {
      g_autoptr(GSocketConnection) base = g_socket_connection_factory_create_connection (socket);
      g_autoptr(GSocketConnectable) identity = g_network_address_new ("127.0.0.1", (guint16) port);

      ws->tls = g_tls_client_connection_new (G_IO_STREAM (base), identity, error);
      if (ws->tls == NULL)
        {
          test_ws_free (ws);
          return NULL;
        }
      g_tls_connection_set_database (G_TLS_CONNECTION (ws->tls), tls_database);
      /* A server that ends the TCP connection without close_notify ends
       * the stream, as over plain TCP. */
      g_tls_connection_set_require_close_notify (G_TLS_CONNECTION (ws->tls), FALSE);
      if (!g_tls_connection_handshake (G_TLS_CONNECTION (ws->tls), NULL, error))
        {
          test_ws_free (ws);
          return NULL;
        }
    }
  return ws;
}

static const char *
headers_get (const char * const *headers,
             const char         *name)
{
  for (guint i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    if (g_ascii_strcasecmp (headers[i], name) == 0)
      return headers[i + 1];
  return NULL;
}

TestWs *
test_ws_connect (guint                port,
                 const char          *target,
                 const char * const  *headers,
                 gint                 rcvbuf,
                 TestResponse       **response,
                 GError             **error)
{
  g_autofree char *key = test_ws_make_key ();
  g_autoptr(GString) request = g_string_new (NULL);
  const char *defaults[] = {
    "Upgrade", "websocket",
    "Connection", "Upgrade",
    "Sec-WebSocket-Version", "13",
    "Sec-WebSocket-Key", key,
    NULL,
  };
  TestWs *ws;

  if (response != NULL)
    *response = NULL;

  g_string_append_printf (request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", target, port);
  for (guint i = 0; defaults[i] != NULL; i += 2)
    if (headers_get (headers, defaults[i]) == NULL)
      g_string_append_printf (request, "%s: %s\r\n", defaults[i], defaults[i + 1]);
  for (guint i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    g_string_append_printf (request, "%s: %s\r\n", headers[i], headers[i + 1]);
  g_string_append (request, "\r\n");

  ws = ws_new (port, rcvbuf, error);
  if (ws == NULL)
    return NULL;
  if (!send_all (ws, request->str, request->len, error))
    {
      test_ws_free (ws);
      return NULL;
    }
  return finish_handshake (ws, headers_get (headers, "Sec-WebSocket-Key") != NULL
                               ? headers_get (headers, "Sec-WebSocket-Key") : key,
                           response, error);
}

TestWs *
test_ws_connect_raw_fd (int            fd,
                        const char    *request,
                        const char    *key,
                        TestResponse **response,
                        GError       **error)
{
  GSocket *socket = g_socket_new_from_fd (fd, error);
  TestWs *ws;

  if (response != NULL)
    *response = NULL;
  if (socket == NULL)
    return NULL;
  g_socket_set_blocking (socket, TRUE);
  g_socket_set_timeout (socket, WS_WRITE_TIMEOUT_S);
  ws = g_new0 (TestWs, 1);
  ws->socket = socket;
  ws->in = g_byte_array_new ();
  if (!send_all (ws, request, strlen (request), error))
    {
      test_ws_free (ws);
      return NULL;
    }
  return finish_handshake (ws, key, response, error);
}

TestWs *
test_ws_connect_raw (guint          port,
                     const char    *request,
                     const char    *key,
                     TestResponse **response,
                     GError       **error)
{
  TestWs *ws;

  if (response != NULL)
    *response = NULL;
  ws = ws_new (port, 0, error);
  if (ws == NULL)
    return NULL;
  if (!send_all (ws, request, strlen (request), error))
    {
      test_ws_free (ws);
      return NULL;
    }
  return finish_handshake (ws, key != NULL ? key : "", response, error);
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

gboolean
test_ws_send_raw (TestWs      *ws,
                  const void  *data,
                  gsize        length,
                  GError     **error)
{
  return send_all (ws, data, length, error);
}

gboolean
test_ws_send_frame (TestWs           *ws,
                    guint8            opcode,
                    TestWsSendFlags   flags,
                    const void       *data,
                    gsize             length,
                    GError          **error)
{
  g_autoptr(GByteArray) frame = g_byte_array_sized_new ((guint) length + 14);
  gboolean masked = !(flags & TEST_WS_SEND_UNMASKED);
  guint8 b0 = opcode & 0x0f;
  guint8 mask[4];
  const guint8 *bytes = data;

  if (!(flags & TEST_WS_SEND_NOT_FIN))
    b0 |= 0x80;
  if (flags & TEST_WS_SEND_RSV1)
    b0 |= 0x40;
  g_byte_array_append (frame, &b0, 1);

  if (length < 126)
    {
      guint8 b1 = (masked ? 0x80 : 0) | (guint8) length;
      g_byte_array_append (frame, &b1, 1);
    }
  else if (length <= 0xffff)
    {
      guint8 ext[3] = { (masked ? 0x80 : 0) | 126, (guint8) (length >> 8), (guint8) length };
      g_byte_array_append (frame, ext, 3);
    }
  else
    {
      guint8 ext[9];
      ext[0] = (masked ? 0x80 : 0) | 127;
      for (guint i = 0; i < 8; i++)
        ext[1 + i] = (guint8) ((guint64) length >> (56 - 8 * i));
      g_byte_array_append (frame, ext, 9);
    }

  if (masked)
    {
      guint32 r = g_random_int ();
      memcpy (mask, &r, 4);
      g_byte_array_append (frame, mask, 4);
      for (gsize i = 0; i < length; i++)
        {
          guint8 b = bytes[i] ^ mask[i % 4];
          g_byte_array_append (frame, &b, 1);
        }
    }
  else if (length > 0)
    g_byte_array_append (frame, bytes, (guint) length);

  return send_all (ws, frame->data, frame->len, error);
}

void
test_ws_append_header (GByteArray   *out,
                       guint8        first_byte,
                       const guint8 *mask,
                       guint64       length)
{
  guint8 head[14];
  gsize n = 0;
  guint8 mask_bit = mask != NULL ? 0x80 : 0;

  head[n++] = first_byte;
  if (length < 126)
    head[n++] = mask_bit | (guint8) length;
  else if (length <= 0xffff)
    {
      head[n++] = mask_bit | 126;
      head[n++] = (guint8) (length >> 8);
      head[n++] = (guint8) length;
    }
  else
    {
      head[n++] = mask_bit | 127;
      for (guint i = 0; i < 8; i++)
        head[n++] = (guint8) (length >> (56 - 8 * i));
    }
  if (mask != NULL)
    {
      memcpy (head + n, mask, 4);
      n += 4;
    }
  g_byte_array_append (out, head, (guint) n);
}

void
test_ws_append_frame (GByteArray *out,
                      guint8      first_byte,
                      gboolean    masked,
                      const void *data,
                      gsize       length)
{
  guint8 mask[4];
  const guint8 *bytes = data;
  guint start;

  if (masked)
    {
      guint32 r = g_random_int ();
      memcpy (mask, &r, 4);
    }
  test_ws_append_header (out, first_byte, masked ? mask : NULL, length);
  start = out->len;
  g_byte_array_set_size (out, start + (guint) length);
  for (gsize i = 0; i < length; i++)
    out->data[start + i] = masked ? bytes[i] ^ mask[i % 4] : bytes[i];
}

gboolean
test_ws_send_chopped (TestWs      *ws,
                      const void  *data,
                      gsize        length,
                      gsize        chop,
                      GError     **error)
{
  const guint8 *p = data;

  if (!g_socket_set_option (ws->socket, IPPROTO_TCP, TCP_NODELAY, 1, error))
    return FALSE;
  if (chop == 0)
    chop = length;
  while (length > 0)
    {
      gsize n = MIN (chop, length);

      if (!send_all (ws, p, n, error))
        return FALSE;
      p += n;
      length -= n;
    }
  return TRUE;
}

GSocket *
test_ws_get_socket (TestWs *ws)
{
  return ws->socket;
}

gboolean
test_ws_send_text (TestWs     *ws,
                   const char *text)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, text, strlen (text), &error);

  g_assert_no_error (error);
  return ok;
}

gboolean
test_ws_send_binary (TestWs     *ws,
                     const void *data,
                     gsize       length)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = test_ws_send_frame (ws, TEST_WS_BINARY, TEST_WS_SEND_DEFAULT, data, length, &error);

  g_assert_no_error (error);
  return ok;
}

gboolean
test_ws_send_close (TestWs  *ws,
                    guint16  code)
{
  g_autoptr(GError) error = NULL;
  guint8 payload[2] = { (guint8) (code >> 8), (guint8) code };
  gboolean ok = test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, &error);

  g_assert_no_error (error);
  return ok;
}

void
test_ws_drop (TestWs   *ws,
              gboolean  reset)
{
  if (ws->socket == NULL)
    return;
  if (reset)
    {
      struct linger linger = { .l_onoff = 1, .l_linger = 0 };
      setsockopt (g_socket_get_fd (ws->socket), SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    }
  g_clear_object (&ws->tls);
  g_socket_close (ws->socket, NULL);
  g_clear_object (&ws->socket);
  ws->eof = TRUE;
}

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

/* A complete frame at the start of ws->in, or NULL if more is needed. */
static TestWsFrame *
parse_frame (TestWs  *ws,
             GError **error)
{
  const guint8 *p = ws->in->data;
  gsize avail = ws->in->len;
  gsize header = 2;
  guint64 length;
  TestWsFrame *frame;
  guint8 mask[4] = { 0 };
  g_autofree guint8 *payload = NULL;

  if (avail < 2)
    return NULL;
  length = p[1] & 0x7f;
  if (length == 126)
    {
      if (avail < 4)
        return NULL;
      length = ((guint64) p[2] << 8) | p[3];
      header = 4;
    }
  else if (length == 127)
    {
      if (avail < 10)
        return NULL;
      length = 0;
      for (guint i = 0; i < 8; i++)
        length = (length << 8) | p[2 + i];
      header = 10;
    }
  if (p[1] & 0x80)
    {
      if (avail < header + 4)
        return NULL;
      memcpy (mask, p + header, 4);
      header += 4;
    }
  if (length > G_MAXUINT32)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Frame of %" G_GUINT64_FORMAT " bytes", length);
      return NULL;
    }
  if (avail < header + length)
    return NULL;

  frame = g_new0 (TestWsFrame, 1);
  frame->fin = (p[0] & 0x80) != 0;
  frame->rsv = (p[0] >> 4) & 0x07;
  frame->opcode = p[0] & 0x0f;
  frame->masked = (p[1] & 0x80) != 0;
  payload = g_malloc (length + 1);
  for (gsize i = 0; i < length; i++)
    payload[i] = p[header + i] ^ mask[i % 4];
  frame->payload = g_bytes_new_take (g_steal_pointer (&payload), length);
  frame->close_code = -1;
  if (frame->opcode == TEST_WS_CLOSE && length >= 2)
    {
      const guint8 *c = g_bytes_get_data (frame->payload, NULL);
      frame->close_code = (c[0] << 8) | c[1];
    }
  g_byte_array_remove_range (ws->in, 0, (guint) (header + length));
  if (ws->in->len == 0 && header + length > 64 * 1024)
    {
      /* A large frame's room is not kept: the memory tests measure the
       * server in this process. */
      g_byte_array_unref (ws->in);
      ws->in = g_byte_array_new ();
    }
  return frame;
}

TestWsFrame *
test_ws_read_frame (TestWs  *ws,
                    guint    timeout_ms,
                    GError **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      GError *parse_error = NULL;
      TestWsFrame *frame = parse_frame (ws, &parse_error);
      gssize n;

      if (parse_error != NULL)
        {
          g_propagate_error (error, parse_error);
          return NULL;
        }
      if (frame != NULL)
        return frame;
      if (ws->socket == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED, "Not connected");
          return NULL;
        }
      n = read_more (ws, deadline, error);
      if (n < 0)
        return NULL;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       ws->in->len > 0 ? "The server closed the connection inside a frame"
                                       : "The server closed the connection");
          return NULL;
        }
    }
}

char *
test_ws_read_text (TestWs *ws,
                   guint   timeout_ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, timeout_ms, &error);
  g_autofree char *text = NULL;

  if (frame == NULL)
    {
      g_test_fail_printf ("expected a text frame: %s", error->message);
      return NULL;
    }
  text = test_ws_frame_dup_text (frame);
  if (frame->opcode != TEST_WS_TEXT || !frame->fin || frame->masked || frame->rsv != 0)
    {
      g_test_fail_printf ("expected a final, unmasked text frame; got opcode %u fin %d masked %d rsv %u “%.80s”",
                          frame->opcode, frame->fin, frame->masked, frame->rsv, text);
      return NULL;
    }
  return g_steal_pointer (&text);
}

gboolean
test_ws_wait_readable (TestWs *ws,
                       guint   timeout_ms)
{
  if (ws->in->len > 0 || ws->socket == NULL || ws->eof)
    return TRUE;
  if (ws->tls != NULL &&
      g_pollable_input_stream_is_readable (G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (ws->tls))))
    return TRUE;
  return g_socket_condition_timed_wait (ws->socket, G_IO_IN, (gint64) timeout_ms * 1000, NULL, NULL);
}

gint
test_ws_read_close (TestWs    *ws,
                    guint      timeout_ms,
                    GPtrArray *skipped)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gint64 remaining = deadline - g_get_monotonic_time ();
      TestWsFrame *frame;

      frame = test_ws_read_frame (ws, remaining > 0 ? (guint) (remaining / 1000) : 0, &error);
      if (frame == NULL)
        return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ? -3 : -2;
      if (frame->opcode == TEST_WS_CLOSE)
        {
          gint code = frame->close_code;
          test_ws_frame_free (frame);
          return code;
        }
      if (skipped != NULL)
        g_ptr_array_add (skipped, frame);
      else
        test_ws_frame_free (frame);
    }
}

gboolean
test_ws_wait_eof (TestWs *ws,
                  guint   timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  g_byte_array_set_size (ws->in, 0);
  for (;;)
    {
      gssize n;

      if (ws->eof || ws->socket == NULL)
        return TRUE;
      n = read_more (ws, deadline, NULL);
      g_byte_array_set_size (ws->in, 0);
      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
    }
}

/* ------------------------------------------------------------------ */
/* Engine.IO                                                            */
/* ------------------------------------------------------------------ */

char *
test_eio_target (int         eio,
                 const char *transport,
                 const char *sid)
{
  if (sid != NULL)
    return g_strdup_printf ("/engine.io/?EIO=%d&transport=%s&sid=%s", eio, transport, sid);
  return g_strdup_printf ("/engine.io/?EIO=%d&transport=%s", eio, transport);
}

TestWs *
test_eio_ws_open_try (guint                port,
                      int                  eio,
                      const char * const  *headers,
                      gint                 rcvbuf,
                      guint                timeout_ms,
                      TestOpenPacket     **out_open,
                      GError             **error)
{
  g_autofree char *target = test_eio_target (eio, "websocket", NULL);
  g_autoptr(TestWs) ws = test_ws_connect (port, target, headers, rcvbuf, NULL, error);
  g_autoptr(TestWsFrame) frame = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autofree char *text = NULL;

  if (ws == NULL)
    return NULL;
  frame = test_ws_read_frame (ws, timeout_ms, error);
  if (frame == NULL)
    return NULL;
  text = test_ws_frame_dup_text (frame);
  if (frame->opcode != TEST_WS_TEXT || !frame->fin || frame->masked || frame->rsv != 0 ||
      text[0] != '0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "expected an open packet in a final, unmasked text frame; got opcode %u "
                   "fin %d masked %d rsv %u “%.200s”",
                   frame->opcode, frame->fin, frame->masked, frame->rsv, text);
      return NULL;
    }
  if ((open = test_open_packet_parse (text + 1, error)) == NULL)
    return NULL;
  if (out_open != NULL)
    *out_open = g_steal_pointer (&open);
  return g_steal_pointer (&ws);
}

TestWs *
test_eio_ws_open (guint port,
                  int   eio)
{
  g_autoptr(GError) error = NULL;
  TestWs *ws = test_eio_ws_open_try (port, eio, NULL, 0, TEST_TIMEOUT_MS, NULL, &error);

  if (ws == NULL)
    g_test_fail_printf ("WebSocket session: %s", error->message);
  return ws;
}

TestWs *
test_eio_ws_open_socket (guint        port,
                         GAsyncQueue *sockets,
                         gpointer    *socket)
{
  TestWs *ws = test_eio_ws_open (port, 4);

  if (ws == NULL)
    return NULL;
  *socket = g_async_queue_timeout_pop (sockets, (guint64) TEST_TIMEOUT_MS * 1000);
  if (*socket == NULL)
    {
      g_test_fail_printf ("the server's ::connection did not come");
      test_ws_free (ws);
      return NULL;
    }
  return ws;
}

char *
test_eio_ws_next (TestWs *ws,
                  guint   timeout_ms)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, timeout_ms, &error);
      g_autofree char *text = NULL;

      if (frame == NULL)
        return NULL;
      if (frame->opcode == TEST_WS_BINARY)
        {
          gsize len;
          const guint8 *data = g_bytes_get_data (frame->payload, &len);
          GString *out = g_string_new ("<bin:");

          for (gsize i = 0; i < len; i++)
            g_string_append_printf (out, "%02x", data[i]);
          g_string_append_c (out, '>');
          return g_string_free (out, FALSE);
        }
      if (frame->opcode != TEST_WS_TEXT)
        return NULL;
      text = test_ws_frame_dup_text (frame);
      if (text[0] == '2')
        {
          test_ws_send_text (ws, "3");
          continue;
        }
      if (text[0] != '4')
        return NULL;
      /* Whole, with any U+0000, and NUL-terminated. */
      return g_memdup2 (text + 1, g_bytes_get_size (frame->payload));
    }
}

GPtrArray *
test_eio_poll_packets_try (TestResponse  *response,
                           int            eio,
                           GError       **error)
{
  if (response->status != 200)
    {
      g_autofree char *text = test_response_text (response);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "poll answered %u: %.200s",
                   response->status, text);
      return NULL;
    }
  if (eio == 4)
    return test_payload_v4_split (response->body);
  return test_payload_v3_split (response->body, error);
}

GPtrArray *
test_eio_poll_packets (TestResponse *response,
                       int           eio)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *packets;

  if (response == NULL)
    {
      g_test_fail_printf ("no poll response");
      return NULL;
    }
  packets = test_eio_poll_packets_try (response, eio, &error);
  if (packets == NULL)
    g_test_fail_printf ("%s", error->message);
  return packets;
}

char *
test_eio_payload (int                 eio,
                  const char * const *packets)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; packets[i] != NULL; i++)
    {
      if (eio == 4)
        {
          if (i > 0)
            g_string_append_c (out, '\x1e');
          g_string_append (out, packets[i]);
        }
      else
        {
          g_autofree char *framed = test_v3_frame (packets[i]);
          g_string_append (out, framed);
        }
    }
  return g_string_free (out, FALSE);
}

GPtrArray *
test_eio_handshake_packets_try (TestResponse     *response,
                                int               eio,
                                TestOpenPacket  **out_open,
                                GError          **error)
{
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  const char *type;
  const char *first;

  if (response->status != 200)
    {
      g_autofree char *text = test_response_text (response);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "handshake answered %u: %.200s",
                   response->status, text);
      return NULL;
    }
  type = test_response_header (response, "Content-Type");
  if (eio == 4 && g_strcmp0 (type, "text/plain; charset=UTF-8") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "handshake: Content-Type “%s”, not text/plain; charset=UTF-8",
                   type != NULL ? type : "(none)");
      return NULL;
    }
  if ((packets = test_eio_poll_packets_try (response, eio, error)) == NULL)
    return NULL;
  first = packets->len > 0 ? g_ptr_array_index (packets, 0) : "";
  if (first[0] != '0')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "handshake: first packet is “%.200s”, not an open packet", first);
      return NULL;
    }
  if ((open = test_open_packet_parse (first + 1, error)) == NULL)
    return NULL;
  if (out_open != NULL)
    *out_open = g_steal_pointer (&open);
  return g_steal_pointer (&packets);
}

GPtrArray *
test_eio_polling_handshake_try (TestHttp         *http,
                                int               eio,
                                const char       *target,
                                guint             timeout_ms,
                                TestOpenPacket  **out_open,
                                GError          **error)
{
  g_autofree char *default_target = test_eio_target (eio, "polling", NULL);
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) local_error = NULL;
  GPtrArray *packets;

  if (target == NULL)
    target = default_target;
  response = test_http_request (http, "GET", target, NULL, NULL, -1, timeout_ms, error);
  if (response == NULL)
    return NULL;
  packets = test_eio_handshake_packets_try (response, eio, out_open, &local_error);
  if (packets == NULL)
    g_set_error (error, local_error->domain, local_error->code, "%s (GET %s)",
                 local_error->message, target);
  return packets;
}

GPtrArray *
test_eio_polling_handshake (TestHttp         *http,
                            int               eio,
                            const char       *target,
                            TestOpenPacket  **out_open)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *packets = test_eio_polling_handshake_try (http, eio, target, TEST_TIMEOUT_MS,
                                                       out_open, &error);

  if (packets == NULL)
    g_test_fail_printf ("%s", error->message);
  return packets;
}

TestOpenPacket *
test_eio_polling_open (TestHttp *http,
                       int       eio)
{
  TestOpenPacket *open = NULL;
  g_autoptr(GPtrArray) packets = test_eio_polling_handshake (http, eio, NULL, &open);

  return open;
}

char *
test_eio_polling_open_sid (TestHttp   *http,
                           int         eio,
                           const char *extra_query)
{
  g_autofree char *target = g_strdup_printf ("/engine.io/?EIO=%d&transport=polling%s",
                                             eio, extra_query != NULL ? extra_query : "");
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GPtrArray) packets = test_eio_polling_handshake (http, eio, target, &open);

  return packets != NULL ? g_strdup (open->sid) : NULL;
}

gboolean
test_eio_is_error (TestResponse *response,
                   guint         status,
                   gint          code)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *text = NULL;
  const char *type;
  JsonNode *root;
  JsonObject *object;

  if (response == NULL || response->status != status)
    return FALSE;
  type = test_response_header (response, "Content-Type");
  if (type == NULL || !g_str_has_prefix (type, "application/json"))
    return FALSE;
  text = test_response_text (response);
  if (!json_parser_load_from_data (parser, text, -1, NULL))
    return FALSE;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  object = json_node_get_object (root);
  return json_object_has_member (object, "code") &&
         json_object_get_int_member (object, "code") == code &&
         json_object_has_member (object, "message");
}

TestWs *
test_eio_probe (guint       port,
                int         eio,
                const char *sid)
{
  g_autofree char *target = test_eio_target (eio, "websocket", sid);
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWs) ws = test_ws_connect (port, target, NULL, 0, NULL, &error);
  g_autofree char *pong = NULL;

  if (ws == NULL)
    {
      g_test_fail_printf ("probe WebSocket for %s: %s", sid, error->message);
      return NULL;
    }
  if (!test_ws_send_text (ws, "2probe"))
    return NULL;
  pong = test_ws_read_text (ws, TEST_TIMEOUT_MS);
  if (g_strcmp0 (pong, "3probe") != 0)
    {
      g_test_fail_printf ("probe for %s answered “%s”, not “3probe”", sid, pong ? pong : "(nothing)");
      return NULL;
    }
  return g_steal_pointer (&ws);
}
