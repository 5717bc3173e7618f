/* testutil.c: shared helpers of the integration tests
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <glib/gstdio.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  GLogLevelFlags level;
  char          *substring;
} ExpectedLog;

static GMutex     log_lock;
static GPtrArray *log_expected;    /* ExpectedLog* */
static GPtrArray *log_unexpected;  /* char* */

static void
expected_log_free (gpointer data)
{
  ExpectedLog *expected = data;

  g_free (expected->substring);
  g_free (expected);
}

static const char *
field_string (const GLogField *fields,
              gsize            n_fields,
              const char      *key)
{
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, key) == 0)
      {
        if (fields[i].length < 0)
          return fields[i].value;
        return NULL;  /* not a string */
      }
  return NULL;
}

static GLogWriterOutput
test_log_writer (GLogLevelFlags   log_level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  GLogLevelFlags level = log_level & G_LOG_LEVEL_MASK;
  const char *message;
  const char *domain;
  g_autofree char *line = NULL;
  gboolean expected = FALSE;

  if ((level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL)) == 0)
    return g_log_writer_default (log_level & ~G_LOG_FLAG_FATAL, fields, n_fields, user_data);

  message = field_string (fields, n_fields, "MESSAGE");
  domain = field_string (fields, n_fields, "GLIB_DOMAIN");
  line = g_strdup_printf ("%s-%s: %s", domain ? domain : "**",
                          level == G_LOG_LEVEL_WARNING ? "WARNING" : "CRITICAL",
                          message ? message : "(no message)");

  g_mutex_lock (&log_lock);
  for (guint i = 0; log_expected != NULL && i < log_expected->len; i++)
    {
      ExpectedLog *e = g_ptr_array_index (log_expected, i);
      if ((e->level & level) != 0 && message != NULL && strstr (message, e->substring) != NULL)
        {
          g_ptr_array_remove_index (log_expected, i);
          expected = TRUE;
          break;
        }
    }
  if (!expected)
    {
      guint index;
      if (log_unexpected == NULL)
        log_unexpected = g_ptr_array_new_with_free_func (g_free);
      /* Repeats are counted, not printed again. */
      if (g_ptr_array_find_with_equal_func (log_unexpected, line, g_str_equal, &index))
        {
          g_ptr_array_add (log_unexpected, g_strdup (line));
          g_mutex_unlock (&log_lock);
          return G_LOG_WRITER_HANDLED;
        }
      g_ptr_array_add (log_unexpected, g_strdup (line));
    }
  g_mutex_unlock (&log_lock);

  /* TAP: diagnostics are comments. */
  g_printerr ("# %s%s\n", expected ? "(expected) " : "", line);
  return G_LOG_WRITER_HANDLED;
}

static gboolean
test_fatal_handler (const char     *log_domain,
                    GLogLevelFlags  log_level,
                    const char     *message,
                    gpointer        user_data)
{
  /* Old-API messages (g_return_if_fail's criticals) come through the
   * writer first; here we only decide not to abort for them. */
  return (log_level & G_LOG_LEVEL_ERROR) != 0;
}

static void
test_default_handler (const char     *log_domain,
                      GLogLevelFlags  log_level,
                      const char     *message,
                      gpointer        user_data)
{
  /* Straight to the structured writer: the test framework's own handler
   * would print the message a second time. */
  g_log_default_handler (log_domain, log_level, message, NULL);
}

void
test_log_init (void)
{
  g_log_set_always_fatal (G_LOG_FATAL_MASK);
  g_log_set_fatal_mask ("EngineIO", G_LOG_FATAL_MASK);
  g_log_set_fatal_mask ("GLib", G_LOG_FATAL_MASK);
  g_log_set_fatal_mask ("GLib-GObject", G_LOG_FATAL_MASK);
  g_log_set_fatal_mask ("GLib-GIO", G_LOG_FATAL_MASK);
  g_test_log_set_fatal_handler (test_fatal_handler, NULL);
  g_log_set_writer_func (test_log_writer, NULL, NULL);
  g_log_set_default_handler (test_default_handler, NULL);
}

void
test_log_expect (GLogLevelFlags  level,
                 const char     *substring)
{
  ExpectedLog *e = g_new0 (ExpectedLog, 1);

  e->level = level;
  e->substring = g_strdup (substring);
  g_mutex_lock (&log_lock);
  if (log_expected == NULL)
    log_expected = g_ptr_array_new_with_free_func (expected_log_free);
  g_ptr_array_add (log_expected, e);
  g_mutex_unlock (&log_lock);
}

gboolean
test_log_wait_expected (guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;

  for (;;)
    {
      gboolean done;

      g_mutex_lock (&log_lock);
      done = log_expected == NULL || log_expected->len == 0;
      g_mutex_unlock (&log_lock);
      if (done)
        return TRUE;
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      g_usleep (5 * 1000);
    }
}

void
test_log_check (void)
{
  g_autoptr(GPtrArray) unexpected = NULL;
  g_autoptr(GPtrArray) missing = NULL;

  g_mutex_lock (&log_lock);
  unexpected = g_steal_pointer (&log_unexpected);
  missing = g_steal_pointer (&log_expected);
  g_mutex_unlock (&log_lock);

  for (guint i = 0; unexpected != NULL && i < unexpected->len; i++)
    {
      const char *line = g_ptr_array_index (unexpected, i);
      guint first, count = 0;

      g_ptr_array_find_with_equal_func (unexpected, line, g_str_equal, &first);
      if (first != i)
        continue;
      for (guint j = i; j < unexpected->len; j++)
        count += g_str_equal (line, g_ptr_array_index (unexpected, j));
      g_test_fail_printf ("unexpected log message (%u times): %s", count, line);
    }
  for (guint i = 0; missing != NULL && i < missing->len; i++)
    g_test_fail_printf ("expected log message never came: %s",
                        ((ExpectedLog *) g_ptr_array_index (missing, i))->substring);
}

/* ------------------------------------------------------------------ */
/* HTTP client                                                          */
/* ------------------------------------------------------------------ */

struct _TestHttp
{
  guint              port;
  GSocketClient     *client;
  GSocketConnection *connection;
  GByteArray        *in;         /* received, not yet parsed */
  GQueue             methods;    /* char*: requests sent, not yet answered */
  guint              requests;   /* sent on this connection */
};

void
test_response_free (TestResponse *response)
{
  if (response == NULL)
    return;
  g_free (response->reason);
  g_clear_pointer (&response->headers, g_hash_table_unref);
  g_clear_pointer (&response->body, g_bytes_unref);
  g_free (response);
}

const char *
test_response_header (TestResponse *response,
                      const char   *name)
{
  g_autofree char *lower = g_ascii_strdown (name, -1);

  return g_hash_table_lookup (response->headers, lower);
}

char *
test_response_text (TestResponse *response)
{
  gsize size;
  const char *data = g_bytes_get_data (response->body, &size);
  char *text = g_malloc (size + 1);

  if (size > 0)
    memcpy (text, data, size);
  text[size] = '\0';
  return text;
}

gboolean
test_response_body_equal (TestResponse *response,
                          const void   *data,
                          gsize         length)
{
  gsize size;
  const void *body = g_bytes_get_data (response->body, &size);

  return size == length && (length == 0 || memcmp (body, data, length) == 0);
}

TestHttp *
test_http_new (guint port)
{
  TestHttp *http = g_new0 (TestHttp, 1);

  http->port = port;
  http->client = g_socket_client_new ();
  /* No proxy lookup: it may load GIO modules and start threads. */
  g_socket_client_set_enable_proxy (http->client, FALSE);
  http->in = g_byte_array_new ();
  g_queue_init (&http->methods);
  return http;
}

void
test_http_disconnect (TestHttp *http)
{
  if (http->connection != NULL)
    {
      g_io_stream_close (G_IO_STREAM (http->connection), NULL, NULL);
      g_clear_object (&http->connection);
    }
  g_byte_array_set_size (http->in, 0);
  g_queue_clear_full (&http->methods, g_free);
  http->requests = 0;
}

void
test_http_drop (TestHttp *http,
                gboolean  reset)
{
  if (reset && http->connection != NULL)
    {
      struct linger linger = { .l_onoff = 1, .l_linger = 0 };
      setsockopt (g_socket_get_fd (g_socket_connection_get_socket (http->connection)),
                  SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
    }
  test_http_disconnect (http);
}

void
test_http_free (TestHttp *http)
{
  if (http == NULL)
    return;
  test_http_disconnect (http);
  g_byte_array_unref (http->in);
  g_object_unref (http->client);
  g_free (http);
}

gboolean
test_http_is_connected (TestHttp *http)
{
  return http->connection != NULL;
}

static gboolean
ensure_connected (TestHttp  *http,
                  GError   **error)
{
  g_autoptr(GInetAddress) loopback = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  if (http->connection != NULL)
    return TRUE;

  loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  address = g_inet_socket_address_new (loopback, (guint16) http->port);
  http->connection = g_socket_client_connect (http->client, G_SOCKET_CONNECTABLE (address),
                                              NULL, error);
  if (http->connection == NULL)
    return FALSE;
  g_socket_set_blocking (g_socket_connection_get_socket (http->connection), TRUE);
  http->requests = 0;
  g_byte_array_set_size (http->in, 0);
  return TRUE;
}

static gboolean
send_all (TestHttp    *http,
          const void  *data,
          gsize        length,
          GError     **error)
{
  GSocket *socket = g_socket_connection_get_socket (http->connection);
  const char *p = data;

  while (length > 0)
    {
      gssize n = g_socket_send (socket, p, length, NULL, error);
      if (n < 0)
        return FALSE;
      p += n;
      length -= (gsize) n;
    }
  return TRUE;
}

gboolean
test_http_send_raw (TestHttp    *http,
                    const void  *data,
                    gsize        length,
                    GError     **error)
{
  if (!ensure_connected (http, error))
    return FALSE;
  if (!send_all (http, data, length, error))
    return FALSE;
  g_queue_push_tail (&http->methods, g_strdup ("RAW"));
  http->requests++;
  return TRUE;
}

gboolean
test_http_send (TestHttp           *http,
                const char         *method,
                const char         *target,
                const char * const *headers,
                const void         *body,
                gssize              body_len,
                GError            **error)
{
  g_autoptr(GString) head = g_string_new (NULL);
  gboolean has_length = FALSE;

  if (!ensure_connected (http, error))
    return FALSE;

  g_string_append_printf (head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", method, target, http->port);
  for (guint i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    {
      g_string_append_printf (head, "%s: %s\r\n", headers[i], headers[i + 1]);
      if (g_ascii_strcasecmp (headers[i], "Content-Length") == 0 ||
          g_ascii_strcasecmp (headers[i], "Transfer-Encoding") == 0)
        has_length = TRUE;
    }
  if (body_len >= 0 && !has_length)
    g_string_append_printf (head, "Content-Length: %" G_GSSIZE_FORMAT "\r\n", body_len);
  g_string_append (head, "\r\n");

  if (!send_all (http, head->str, head->len, error))
    return FALSE;
  if (body_len > 0 && !send_all (http, body, (gsize) body_len, error))
    return FALSE;

  g_queue_push_tail (&http->methods, g_strdup (method));
  http->requests++;
  return TRUE;
}

/* Reads more bytes into http->in before @deadline (monotonic µs). Returns
 * the count read: 0 at EOF, -1 on error or timeout. */
static gssize
read_more (TestHttp  *http,
           gint64     deadline,
           GError   **error)
{
  GSocket *socket = g_socket_connection_get_socket (http->connection);
  char buffer[65536];
  gint64 remaining = deadline - g_get_monotonic_time ();
  gssize n;

  if (remaining <= 0 ||
      !g_socket_condition_timed_wait (socket, G_IO_IN, remaining, NULL, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "No response from the server in time");
      return -1;
    }
  n = g_socket_receive (socket, buffer, sizeof buffer, NULL, error);
  if (n > 0)
    g_byte_array_append (http->in, (const guint8 *) buffer, (guint) n);
  return n;
}

static gssize
find_bytes (GByteArray *array,
            gsize       from,
            const char *needle)
{
  gsize n = strlen (needle);

  for (gsize i = from; i + n <= array->len; i++)
    if (memcmp (array->data + i, needle, n) == 0)
      return (gssize) i;
  return -1;
}

/* Makes sure http->in holds at least @want bytes. */
static gboolean
fill (TestHttp  *http,
      gsize      want,
      gint64     deadline,
      GError   **error)
{
  while (http->in->len < want)
    {
      gssize n = read_more (http, deadline, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "The server closed the connection in the middle of a response");
          return FALSE;
        }
    }
  return TRUE;
}

static GBytes *
consume (TestHttp *http,
         gsize     length)
{
  GBytes *bytes = g_bytes_new (http->in->data, length);

  g_byte_array_remove_range (http->in, 0, (guint) length);
  return bytes;
}

static gboolean
read_chunked (TestHttp    *http,
              GByteArray  *body,
              gint64       deadline,
              GError     **error)
{
  for (;;)
    {
      gssize eol;
      guint64 size;
      g_autofree char *line = NULL;
      char *semicolon;

      while ((eol = find_bytes (http->in, 0, "\r\n")) < 0)
        if (!fill (http, http->in->len + 1, deadline, error))
          return FALSE;
      line = g_strndup ((const char *) http->in->data, (gsize) eol);
      g_byte_array_remove_range (http->in, 0, (guint) eol + 2);
      semicolon = strchr (line, ';');
      if (semicolon != NULL)
        *semicolon = '\0';
      g_strstrip (line);
      if (!g_ascii_string_to_unsigned (line, 16, 0, G_MAXUINT32, &size, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Bad chunk size “%s”", line);
          return FALSE;
        }
      if (size == 0)
        {
          /* Trailers, up to an empty line. */
          for (;;)
            {
              while ((eol = find_bytes (http->in, 0, "\r\n")) < 0)
                if (!fill (http, http->in->len + 1, deadline, error))
                  return FALSE;
              g_byte_array_remove_range (http->in, 0, (guint) eol + 2);
              if (eol == 0)
                return TRUE;
            }
        }
      if (!fill (http, size + 2, deadline, error))
        return FALSE;
      g_byte_array_append (body, http->in->data, (guint) size);
      g_byte_array_remove_range (http->in, 0, (guint) size + 2);
    }
}

static TestResponse *
receive_once (TestHttp  *http,
              guint      timeout_ms,
              gboolean  *out_nothing,
              GError   **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_autoptr(TestResponse) response = g_new0 (TestResponse, 1);
  g_autofree char *method = NULL;
  g_autofree char *head = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) status_parts = NULL;
  const char *length_header;
  const char *encoding;
  const char *connection_header;
  gboolean close_after = FALSE;
  gssize end;

  *out_nothing = FALSE;
  if (http->connection == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "Not connected");
      return NULL;
    }

  method = g_queue_pop_head (&http->methods);

  while ((end = find_bytes (http->in, 0, "\r\n\r\n")) < 0)
    {
      gssize n = read_more (http, deadline, error);
      if (n < 0)
        {
          /* A request that reached a keep-alive connection the server had
           * just closed is answered by a reset rather than an EOF. */
          *out_nothing = http->in->len == 0 && error != NULL &&
                         g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
          test_http_disconnect (http);
          return NULL;
        }
      if (n == 0)
        {
          *out_nothing = http->in->len == 0;
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "The server closed the connection before a complete response");
          test_http_disconnect (http);
          return NULL;
        }
    }

  head = g_strndup ((const char *) http->in->data, (gsize) end);
  g_byte_array_remove_range (http->in, 0, (guint) end + 4);
  lines = g_strsplit (head, "\r\n", -1);
  status_parts = g_strsplit (lines[0], " ", 3);
  if (g_strv_length (status_parts) < 2 || !g_str_has_prefix (status_parts[0], "HTTP/1."))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Bad status line “%s”", lines[0]);
      test_http_disconnect (http);
      return NULL;
    }
  response->status = (guint) g_ascii_strtoull (status_parts[1], NULL, 10);
  response->reason = g_strdup (status_parts[2] ? status_parts[2] : "");
  if (strcmp (status_parts[0], "HTTP/1.0") == 0)
    close_after = TRUE;

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
  encoding = g_hash_table_lookup (response->headers, "transfer-encoding");
  connection_header = g_hash_table_lookup (response->headers, "connection");
  if (connection_header != NULL && g_ascii_strcasecmp (connection_header, "close") == 0)
    close_after = TRUE;

  if ((method != NULL && strcmp (method, "HEAD") == 0) ||
      response->status == 204 || response->status == 304 || response->status < 200)
    response->body = g_bytes_new (NULL, 0);
  else if (encoding != NULL && g_ascii_strcasecmp (encoding, "chunked") == 0)
    {
      g_autoptr(GByteArray) body = g_byte_array_new ();
      if (!read_chunked (http, body, deadline, error))
        {
          test_http_disconnect (http);
          return NULL;
        }
      response->body = g_byte_array_free_to_bytes (g_steal_pointer (&body));
    }
  else if (length_header != NULL)
    {
      guint64 length;
      if (!g_ascii_string_to_unsigned (length_header, 10, 0, G_MAXUINT32, &length, NULL))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "Bad Content-Length “%s”", length_header);
          test_http_disconnect (http);
          return NULL;
        }
      if (!fill (http, length, deadline, error))
        {
          test_http_disconnect (http);
          return NULL;
        }
      response->body = consume (http, length);
    }
  else
    {
      /* Until the server closes. */
      for (;;)
        {
          gssize n = read_more (http, deadline, error);
          if (n < 0)
            {
              test_http_disconnect (http);
              return NULL;
            }
          if (n == 0)
            break;
        }
      response->body = consume (http, http->in->len);
      close_after = TRUE;
    }

  if (close_after)
    test_http_disconnect (http);

  return g_steal_pointer (&response);
}

TestResponse *
test_http_receive (TestHttp  *http,
                   guint      timeout_ms,
                   GError   **error)
{
  gboolean nothing;

  return receive_once (http, timeout_ms, &nothing, error);
}

gboolean
test_http_read_exact (TestHttp  *http,
                      void      *buffer,
                      gsize      length,
                      guint      timeout_ms,
                      GError   **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  if (http->connection == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED, "Not connected");
      return FALSE;
    }
  if (!fill (http, length, deadline, error))
    return FALSE;
  memcpy (buffer, http->in->data, length);
  g_byte_array_remove_range (http->in, 0, (guint) length);
  return TRUE;
}

gboolean
test_http_wait_readable (TestHttp *http,
                         guint     timeout_ms)
{
  if (http->connection == NULL)
    return TRUE;
  if (http->in->len > 0)
    return TRUE;
  return g_socket_condition_timed_wait (g_socket_connection_get_socket (http->connection),
                                        G_IO_IN, (gint64) timeout_ms * 1000, NULL, NULL);
}

TestResponse *
test_http_request (TestHttp           *http,
                   const char         *method,
                   const char         *target,
                   const char * const *headers,
                   const void         *body,
                   gssize              body_len,
                   guint               timeout_ms,
                   GError            **error)
{
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local_error = NULL;
      gboolean reused = http->connection != NULL && http->requests > 0;
      gboolean nothing = FALSE;
      TestResponse *response = NULL;

      if (test_http_send (http, method, target, headers, body, body_len, &local_error))
        response = receive_once (http, timeout_ms, &nothing, &local_error);
      else
        {
          nothing = TRUE;
          test_http_disconnect (http);
        }

      if (response != NULL)
        return response;
      if (reused && nothing && attempt == 0)
        {
          /* The server closed an idle keep-alive connection. */
          test_http_disconnect (http);
          continue;
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
}

TestResponse *
test_http_get (TestHttp   *http,
               const char *target)
{
  g_autoptr(GError) error = NULL;
  TestResponse *response = test_http_request (http, "GET", target, NULL, NULL, -1,
                                              TEST_TIMEOUT_MS, &error);

  g_assert_no_error (error);
  return response;
}

TestResponse *
test_http_post (TestHttp   *http,
                const char *target,
                const void *body,
                gsize       body_len)
{
  g_autoptr(GError) error = NULL;
  static const char *const headers[] = { "Content-Type", "text/plain;charset=UTF-8", NULL };
  TestResponse *response = test_http_request (http, "POST", target, headers, body, (gssize) body_len,
                                              TEST_TIMEOUT_MS, &error);

  g_assert_no_error (error);
  return response;
}

gboolean
test_port_refuses (guint port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, (guint16) port);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_set_timeout (client, 5);
  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, &error);
  if (connection != NULL)
    g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
  return connection == NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
}

/* ------------------------------------------------------------------ */
/* Servers                                                              */
/* ------------------------------------------------------------------ */

double
test_time_scale (void)
{
  static gsize once = 0;
  static double scale = 1.0;

  if (g_once_init_enter (&once))
    {
      const char *value = g_getenv ("ENGINE_IO_TEST_TIME_SCALE");

      if (value != NULL && *value != '\0')
        {
          char *end = NULL;
          double parsed = g_ascii_strtod (value, &end);

          if (end == value || *end != '\0' || !(parsed >= 1.0 && parsed <= 100.0))
            g_error ("ENGINE_IO_TEST_TIME_SCALE=%s is not a number from 1 to 100", value);
          scale = parsed;
        }
      g_once_init_leave (&once, 1);
    }
  return scale;
}

guint
test_scaled_ms (guint ms)
{
  double scaled = ms * test_time_scale ();
  guint whole = (guint) scaled;

  return whole < scaled ? whole + 1 : whole;
}

guint
test_loop_threads_from_env (void)
{
  const char *value = g_getenv ("ENGINE_IO_TEST_LOOP_THREADS");
  guint64 n = 0;

  if (value != NULL && *value != '\0' &&
      !g_ascii_string_to_unsigned (value, 10, 0, 1024, &n, NULL))
    g_error ("ENGINE_IO_TEST_LOOP_THREADS=%s is not a number from 0 to 1024", value);
  return (guint) n;
}

EngineIOServer *
test_server_new (void)
{
  return g_object_new (ENGINE_IO_TYPE_SERVER,
                       "loop-threads", test_loop_threads_from_env (),
                       NULL);
}

guint
test_server_listen (EngineIOServer *server)
{
  g_autoptr(GError) error = NULL;
  guint port;

  if (!engine_io_server_listen (server, "127.0.0.1", 0, &error))
    {
      g_test_fail_printf ("engine_io_server_listen() failed: %s", error->message);
      return 0;
    }
  port = engine_io_server_get_port (server);
  g_assert_cmpuint (port, >, 0);
  return port;
}

/* ------------------------------------------------------------------ */
/* Wire formats                                                         */
/* ------------------------------------------------------------------ */

void
test_open_packet_free (TestOpenPacket *open)
{
  if (open == NULL)
    return;
  g_free (open->sid);
  g_strfreev (open->upgrades);
  g_free (open->json);
  g_free (open);
}

TestOpenPacket *
test_open_packet_parse (const char  *json,
                        GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(TestOpenPacket) open = g_new0 (TestOpenPacket, 1);
  JsonNode *root;
  JsonObject *object;
  JsonArray *upgrades;
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

  if (!json_parser_load_from_data (parser, json, -1, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Open packet is not a JSON object");
      return NULL;
    }
  object = json_node_get_object (root);

#define REQUIRE_MEMBER(name, type)                                                         \
  if (!json_object_has_member (object, name) ||                                            \
      json_node_get_value_type (json_object_get_member (object, name)) != type)            \
    {                                                                                      \
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,                             \
                   "Open packet has no “%s” of the right type: %s", name, json);          \
      return NULL;                                                                         \
    }
  REQUIRE_MEMBER ("sid", G_TYPE_STRING);
  REQUIRE_MEMBER ("pingInterval", G_TYPE_INT64);
  REQUIRE_MEMBER ("pingTimeout", G_TYPE_INT64);
#undef REQUIRE_MEMBER
  if (!json_object_has_member (object, "upgrades") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "upgrades")))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "Open packet has no “upgrades” array: %s", json);
      return NULL;
    }

  open->sid = g_strdup (json_object_get_string_member (object, "sid"));
  open->ping_interval = json_object_get_int_member (object, "pingInterval");
  open->ping_timeout = json_object_get_int_member (object, "pingTimeout");
  open->max_payload = -1;
  if (json_object_has_member (object, "maxPayload") &&
      json_node_get_value_type (json_object_get_member (object, "maxPayload")) == G_TYPE_INT64)
    open->max_payload = json_object_get_int_member (object, "maxPayload");
  upgrades = json_object_get_array_member (object, "upgrades");
  for (guint i = 0; i < json_array_get_length (upgrades); i++)
    {
      JsonNode *node = json_array_get_element (upgrades, i);
      if (json_node_get_value_type (node) != G_TYPE_STRING)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "Open packet has a non-string upgrade: %s", json);
          return NULL;
        }
      g_strv_builder_add (builder, json_node_get_string (node));
    }
  open->upgrades = g_strv_builder_end (builder);
  open->json = g_strdup (json);

  return g_steal_pointer (&open);
}

gboolean
test_sid_is_url_safe (const char *sid)
{
  if (sid == NULL || *sid == '\0')
    return FALSE;
  for (const char *p = sid; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  return TRUE;
}

GPtrArray *
test_payload_v4_split (GBytes *body)
{
  GPtrArray *packets = g_ptr_array_new_with_free_func (g_free);
  gsize size;
  const char *data = g_bytes_get_data (body, &size);
  const char *start = data;

  if (size == 0)
    return packets;
  for (const char *p = data; p <= data + size; p++)
    if (p == data + size || *p == '\x1e')
      {
        g_ptr_array_add (packets, g_strndup (start, p - start));
        start = p + 1;
      }
  return packets;
}

glong
test_utf16_length (const char *utf8)
{
  glong units = 0;

  for (const char *p = utf8; *p; p = g_utf8_next_char (p))
    units += g_utf8_get_char (p) > 0xFFFF ? 2 : 1;
  return units;
}

char *
test_v3_frame (const char *packet)
{
  return g_strdup_printf ("%ld:%s", test_utf16_length (packet), packet);
}

GPtrArray *
test_payload_v3_split (GBytes  *body,
                       GError **error)
{
  g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func (g_free);
  gsize size;
  const char *data = g_bytes_get_data (body, &size);
  const char *p = data;
  const char *end = data + size;

  if (!g_utf8_validate (data, (gssize) size, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "v3 payload is not UTF-8");
      return NULL;
    }
  while (p < end)
    {
      guint64 units = 0;
      guint64 counted = 0;
      const char *start;

      if (!g_ascii_isdigit (*p))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "v3 payload: no length at offset %" G_GSIZE_FORMAT, (gsize) (p - data));
          return NULL;
        }
      while (p < end && g_ascii_isdigit (*p))
        units = units * 10 + (guint64) (*p++ - '0');
      if (p >= end || *p != ':')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "v3 payload: no “:” at offset %" G_GSIZE_FORMAT, (gsize) (p - data));
          return NULL;
        }
      p++;
      start = p;
      while (counted < units && p < end)
        {
          counted += g_utf8_get_char (p) > 0xFFFF ? 2 : 1;
          p = g_utf8_next_char (p);
        }
      if (counted != units)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "v3 payload: length %" G_GUINT64_FORMAT " does not match the text", units);
          return NULL;
        }
      g_ptr_array_add (packets, g_strndup (start, p - start));
    }
  return g_steal_pointer (&packets);
}

static void
v3_packet_free (gpointer data)
{
  TestV3Packet *packet = data;

  g_bytes_unref (packet->data);
  g_free (packet);
}

GPtrArray *
test_payload_v3_binary_split (GBytes  *body,
                              GError **error)
{
  g_autoptr(GPtrArray) packets = g_ptr_array_new_with_free_func (v3_packet_free);
  gsize size;
  const guint8 *data = g_bytes_get_data (body, &size);
  gsize pos = 0;

  while (pos < size)
    {
      TestV3Packet *packet;
      guint8 marker = data[pos++];
      guint64 length = 0;
      guint digits = 0;

      if (marker > 1)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "v3 binary payload: bad marker %u at offset %" G_GSIZE_FORMAT, marker, pos - 1);
          return NULL;
        }
      while (pos < size && data[pos] != 0xFF)
        {
          if (data[pos] > 9 || ++digits > 10)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "v3 binary payload: bad length digit at offset %" G_GSIZE_FORMAT, pos);
              return NULL;
            }
          length = length * 10 + data[pos++];
        }
      if (pos >= size || digits == 0 || length > size - pos - 1)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "v3 binary payload: truncated at offset %" G_GSIZE_FORMAT, pos);
          return NULL;
        }
      pos++;  /* 0xFF */
      packet = g_new0 (TestV3Packet, 1);
      packet->is_binary = marker == 1;
      packet->data = g_bytes_new (data + pos, length);
      g_ptr_array_add (packets, packet);
      pos += length;
    }
  return g_steal_pointer (&packets);
}

void
test_payload_v3_binary_append (GByteArray *out,
                               gboolean    is_binary,
                               const void *packet,
                               gsize       length)
{
  char digits[32];
  guint8 byte = is_binary ? 1 : 0;

  g_byte_array_append (out, &byte, 1);
  g_snprintf (digits, sizeof digits, "%" G_GSIZE_FORMAT, length);
  for (const char *d = digits; *d; d++)
    {
      byte = (guint8) (*d - '0');
      g_byte_array_append (out, &byte, 1);
    }
  byte = 0xFF;
  g_byte_array_append (out, &byte, 1);
  g_byte_array_append (out, packet, (guint) length);
}

char *
test_js_unescape (const char *escaped,
                  gsize       length)
{
  g_autoptr(GString) out = g_string_sized_new (length);
  const char *p = escaped;
  const char *end = escaped + length;

  while (p < end)
    {
      if (*p == '"')
        return NULL;  /* an unescaped quote would end the literal */
      if (*p != '\\')
        {
          g_string_append_c (out, *p++);
          continue;
        }
      if (++p >= end)
        return NULL;
      switch (*p)
        {
        case 'n': g_string_append_c (out, '\n'); p++; break;
        case 'r': g_string_append_c (out, '\r'); p++; break;
        case 't': g_string_append_c (out, '\t'); p++; break;
        case 'b': g_string_append_c (out, '\b'); p++; break;
        case 'f': g_string_append_c (out, '\f'); p++; break;
        case 'v': g_string_append_c (out, '\v'); p++; break;
        case '0': g_string_append_c (out, '\0'); p++; break;
        case 'u':
          {
            gunichar c = 0;
            if (end - p < 5)
              return NULL;
            for (int i = 1; i <= 4; i++)
              {
                if (!g_ascii_isxdigit (p[i]))
                  return NULL;
                c = c * 16 + (gunichar) g_ascii_xdigit_value (p[i]);
              }
            p += 5;
            if (c >= 0xD800 && c <= 0xDBFF)
              {
                gunichar low = 0;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                  return NULL;
                for (int i = 2; i <= 5; i++)
                  {
                    if (!g_ascii_isxdigit (p[i]))
                      return NULL;
                    low = low * 16 + (gunichar) g_ascii_xdigit_value (p[i]);
                  }
                if (low < 0xDC00 || low > 0xDFFF)
                  return NULL;
                c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
              }
            g_string_append_unichar (out, c);
          }
          break;
        default:
          /* \" \\ \/ and any other character stand for themselves */
          g_string_append_c (out, *p++);
          break;
        }
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* ------------------------------------------------------------------ */
/* Recorder                                                             */
/* ------------------------------------------------------------------ */

struct _TestRecorder
{
  GMutex     lock;
  GCond      cond;
  GPtrArray *events;  /* char* */
};

TestRecorder *
test_recorder_new (void)
{
  TestRecorder *recorder = g_new0 (TestRecorder, 1);

  g_mutex_init (&recorder->lock);
  g_cond_init (&recorder->cond);
  recorder->events = g_ptr_array_new_with_free_func (g_free);
  return recorder;
}

void
test_recorder_free (TestRecorder *recorder)
{
  if (recorder == NULL)
    return;
  g_ptr_array_unref (recorder->events);
  g_mutex_clear (&recorder->lock);
  g_cond_clear (&recorder->cond);
  g_free (recorder);
}

void
test_recorder_add (TestRecorder *recorder,
                   const char   *format,
                   ...)
{
  va_list args;
  char *event;

  va_start (args, format);
  event = g_strdup_vprintf (format, args);
  va_end (args);

  g_mutex_lock (&recorder->lock);
  g_ptr_array_add (recorder->events, event);
  g_cond_broadcast (&recorder->cond);
  g_mutex_unlock (&recorder->lock);
}

static guint
count_locked (TestRecorder *recorder,
              const char   *prefix,
              gboolean      exact)
{
  guint n = 0;

  for (guint i = 0; i < recorder->events->len; i++)
    {
      const char *event = g_ptr_array_index (recorder->events, i);
      if (exact ? strcmp (event, prefix) == 0 : g_str_has_prefix (event, prefix))
        n++;
    }
  return n;
}

static gboolean
wait_count (TestRecorder *recorder,
            const char   *what,
            gboolean      exact,
            guint         n,
            guint         timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean ok;

  g_mutex_lock (&recorder->lock);
  while (!(ok = count_locked (recorder, what, exact) >= n))
    if (!g_cond_wait_until (&recorder->cond, &recorder->lock, deadline))
      {
        ok = count_locked (recorder, what, exact) >= n;
        break;
      }
  g_mutex_unlock (&recorder->lock);
  return ok;
}

gboolean
test_recorder_wait (TestRecorder *recorder,
                    const char   *event,
                    guint         timeout_ms)
{
  return wait_count (recorder, event, TRUE, 1, timeout_ms);
}

gboolean
test_recorder_wait_count (TestRecorder *recorder,
                          const char   *prefix,
                          guint         n,
                          guint         timeout_ms)
{
  return wait_count (recorder, prefix, FALSE, n, timeout_ms);
}

guint
test_recorder_count (TestRecorder *recorder,
                     const char   *prefix)
{
  guint n;

  g_mutex_lock (&recorder->lock);
  n = count_locked (recorder, prefix, FALSE);
  g_mutex_unlock (&recorder->lock);
  return n;
}

static gint
index_of (TestRecorder *recorder,
          const char   *what,
          gboolean      exact)
{
  gint index = -1;

  g_mutex_lock (&recorder->lock);
  for (guint i = 0; i < recorder->events->len; i++)
    {
      const char *event = g_ptr_array_index (recorder->events, i);
      if (exact ? strcmp (event, what) == 0 : g_str_has_prefix (event, what))
        {
          index = (gint) i;
          break;
        }
    }
  g_mutex_unlock (&recorder->lock);
  return index;
}

gint
test_recorder_index (TestRecorder *recorder,
                     const char   *event)
{
  return index_of (recorder, event, TRUE);
}

gint
test_recorder_index_prefix (TestRecorder *recorder,
                            const char   *prefix)
{
  return index_of (recorder, prefix, FALSE);
}

GStrv
test_recorder_dup (TestRecorder *recorder)
{
  GStrv copy;

  g_mutex_lock (&recorder->lock);
  copy = g_new0 (char *, recorder->events->len + 1);
  for (guint i = 0; i < recorder->events->len; i++)
    copy[i] = g_strdup (g_ptr_array_index (recorder->events, i));
  g_mutex_unlock (&recorder->lock);
  return copy;
}

GStrv
test_recorder_wait_since (TestRecorder *recorder,
                          guint         from,
                          guint         timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  GStrv copy;
  guint n;

  g_mutex_lock (&recorder->lock);
  while (recorder->events->len <= from)
    if (!g_cond_wait_until (&recorder->cond, &recorder->lock, deadline))
      break;
  n = recorder->events->len > from ? recorder->events->len - from : 0;
  copy = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    copy[i] = g_strdup (g_ptr_array_index (recorder->events, from + i));
  g_mutex_unlock (&recorder->lock);
  return copy;
}

void
test_recorder_clear (TestRecorder *recorder)
{
  g_mutex_lock (&recorder->lock);
  g_ptr_array_set_size (recorder->events, 0);
  g_mutex_unlock (&recorder->lock);
}

gboolean
test_recorder_expect_at (TestRecorder *recorder,
                         const char   *file,
                         int           line,
                         guint         timeout_ms,
                         const char   *format,
                         ...)
{
  va_list args;
  g_autofree char *event = NULL;
  g_auto(GStrv) all = NULL;
  g_autofree char *joined = NULL;

  va_start (args, format);
  event = g_strdup_vprintf (format, args);
  va_end (args);

  if (test_recorder_wait (recorder, event, timeout_ms))
    return TRUE;
  all = test_recorder_dup (recorder);
  joined = g_strjoinv ("\n#   ", all);
  g_test_fail_printf ("%s:%d: event “%s” did not come within %u ms; recorded:\n#   %s",
                      file, line, event, timeout_ms, joined);
  return FALSE;
}

char *
test_hex_of (GBytes *bytes)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  GString *out = g_string_sized_new (2 * size + 1);

  for (gsize i = 0; i < size; i++)
    g_string_append_printf (out, "%02x", data[i]);
  return g_string_free (out, FALSE);
}

typedef struct
{
  TestRecorder   *recorder;
  TestWatchFlags  flags;
} TestWatch;

static void
watch_release (gpointer  data,
               GClosure *closure)
{
  g_rc_box_release (data);
}

static void
watch_on_message (EngineIOSocket *socket,
                  const char     *text,
                  GBytes         *data,
                  TestWatch      *watch)
{
  const char *sid = engine_io_socket_get_id (socket);

  if (watch->flags & TEST_WATCH_UNRECORDED)
    ;
  else if (text != NULL)
    test_recorder_add (watch->recorder, "message %s %s", sid, text);
  else
    {
      g_autofree char *hex = test_hex_of (data);
      test_recorder_add (watch->recorder, "binary %s %s", sid, hex);
    }

  if (watch->flags & TEST_WATCH_ECHO)
    {
      if (text != NULL)
        engine_io_socket_send_text (socket, text, NULL);
      else
        engine_io_socket_send_binary (socket, data, NULL);
    }
}

static void
watch_on_packet (EngineIOSocket *socket,
                 EngineIOPacket *packet,
                 TestWatch      *watch)
{
  gsize length = 0;
  const char *text = engine_io_packet_is_binary (packet) ? "(binary)"
                                                          : engine_io_packet_get_text (packet, &length);

  test_recorder_add (watch->recorder, "packet %s %d%s", engine_io_socket_get_id (socket),
                     (int) engine_io_packet_get_packet_type (packet), text ? text : "");
}

static void
watch_on_close (EngineIOSocket      *socket,
                EngineIOCloseReason  reason,
                const char          *description,
                TestWatch           *watch)
{
  test_recorder_add (watch->recorder, "close %s %s", engine_io_socket_get_id (socket),
                     engine_io_close_reason_to_string (reason));
}

static void
watch_on_heartbeat (EngineIOSocket *socket,
                    TestWatch      *watch)
{
  test_recorder_add (watch->recorder, "heartbeat %s", engine_io_socket_get_id (socket));
}

static void
watch_on_drain (EngineIOSocket *socket,
                TestWatch      *watch)
{
  test_recorder_add (watch->recorder, "drain %s", engine_io_socket_get_id (socket));
}

static void
watch_on_notify_transport (EngineIOSocket *socket,
                           GParamSpec     *pspec,
                           TestWatch      *watch)
{
  test_recorder_add (watch->recorder, "transport %s %s", engine_io_socket_get_id (socket),
                     engine_io_socket_get_transport (socket) == ENGINE_IO_TRANSPORT_WEBSOCKET
                       ? "websocket" : "polling");
}

static void
watch_connect (EngineIOSocket *socket,
               const char     *signal,
               GCallback       handler,
               TestWatch      *watch)
{
  g_signal_connect_data (socket, signal, handler, g_rc_box_acquire (watch), watch_release, 0);
}

void
test_recorder_watch (TestRecorder   *recorder,
                     EngineIOSocket *socket,
                     TestWatchFlags  flags)
{
  TestWatch *watch = g_rc_box_new0 (TestWatch);

  watch->recorder = recorder;
  watch->flags = flags;
  if (!(flags & (TEST_WATCH_NO_MESSAGE | TEST_WATCH_CLOSE_ONLY)))
    watch_connect (socket, "message", G_CALLBACK (watch_on_message), watch);
  if (flags & TEST_WATCH_PACKETS)
    watch_connect (socket, "packet", G_CALLBACK (watch_on_packet), watch);
  watch_connect (socket, "close", G_CALLBACK (watch_on_close), watch);
  if (!(flags & TEST_WATCH_CLOSE_ONLY))
    {
      watch_connect (socket, "heartbeat", G_CALLBACK (watch_on_heartbeat), watch);
      if (!(flags & TEST_WATCH_NO_DRAIN))
        watch_connect (socket, "drain", G_CALLBACK (watch_on_drain), watch);
    }
  if (flags & TEST_WATCH_TRANSPORT)
    watch_connect (socket, "notify::transport", G_CALLBACK (watch_on_notify_transport), watch);
  g_rc_box_release (watch);
}

/* ------------------------------------------------------------------ */
/* Loopback fixture                                                     */
/* ------------------------------------------------------------------ */

static void
loopback_on_connection (EngineIOServer *server,
                        EngineIOSocket *socket,
                        TestLoopback   *loopback)
{
  test_recorder_watch (loopback->events, socket, loopback->watch);
  if (loopback->on_connection != NULL)
    loopback->on_connection (loopback, socket, loopback->user_data);
  if (loopback->keep_sockets)
    g_async_queue_push (loopback->sockets, g_object_ref (socket));
  test_recorder_add (loopback->events, "connection %s %s", engine_io_socket_get_id (socket),
                     engine_io_socket_get_transport (socket) == ENGINE_IO_TRANSPORT_WEBSOCKET
                       ? "websocket" : "polling");
}

void
test_loopback_watch_server (TestLoopback   *loopback,
                            EngineIOServer *server)
{
  g_signal_connect (server, "connection", G_CALLBACK (loopback_on_connection), loopback);
}

void
test_loopback_init (TestLoopback *loopback)
{
  loopback->events = test_recorder_new ();
  loopback->sockets = g_async_queue_new_full (g_object_unref);
  loopback->server = test_server_new ();
  test_loopback_watch_server (loopback, loopback->server);
}

gboolean
test_loopback_listen (TestLoopback *loopback)
{
  loopback->port = test_server_listen (loopback->server);
  loopback->http = test_http_new (loopback->port);
  return loopback->port != 0;
}

void
test_loopback_clear (TestLoopback *loopback)
{
  g_clear_pointer (&loopback->http, test_http_free);
  if (loopback->server != NULL)
    {
      engine_io_server_close (loopback->server);
      g_clear_object (&loopback->server);
    }
  g_clear_pointer (&loopback->sockets, g_async_queue_unref);
  g_clear_pointer (&loopback->events, test_recorder_free);
}

/* ------------------------------------------------------------------ */
/* A ::message handler that blocks                                      */
/* ------------------------------------------------------------------ */

#define BLOCKER_MAX_US (20 * G_USEC_PER_SEC)

void
test_blocker_init (TestBlocker *blocker)
{
  memset (blocker, 0, sizeof *blocker);
  g_mutex_init (&blocker->lock);
  g_cond_init (&blocker->cond);
}

static void
blocker_set (TestBlocker *blocker,
             gboolean    *flag)
{
  g_mutex_lock (&blocker->lock);
  *flag = TRUE;
  g_cond_broadcast (&blocker->cond);
  g_mutex_unlock (&blocker->lock);
}

void
test_blocker_block (TestBlocker *blocker)
{
  gint64 deadline = g_get_monotonic_time () + BLOCKER_MAX_US;

  g_mutex_lock (&blocker->lock);
  blocker->entered = TRUE;
  g_cond_broadcast (&blocker->cond);
  while (!blocker->release && g_cond_wait_until (&blocker->cond, &blocker->lock, deadline))
    ;
  blocker->returned = TRUE;
  g_cond_broadcast (&blocker->cond);
  g_mutex_unlock (&blocker->lock);
}

gboolean
test_blocker_admission (EngineIOServer    *server,
                        EngineIOHandshake *handshake,
                        gpointer           blocker)
{
  test_blocker_block (blocker);
  return TRUE;
}

char *
test_blocker_id (EngineIOServer    *server,
                 EngineIOHandshake *handshake,
                 gpointer           blocker)
{
  test_blocker_block (blocker);
  return g_strdup ("blocked-id");
}

void
test_blocker_on_connection (EngineIOServer *server,
                            EngineIOSocket *socket,
                            gpointer        blocker)
{
  test_blocker_connect (blocker, socket);
  test_blocker_block (blocker);
}

static void
blocker_on_message (EngineIOSocket *socket,
                    const char     *text,
                    GBytes         *data,
                    TestBlocker    *blocker)
{
  test_blocker_block (blocker);
}

static void
blocker_on_finalized (gpointer  data,
                      GObject  *where_the_socket_was)
{
  TestBlocker *blocker = data;

  blocker_set (blocker, &blocker->finalized);
}

void
test_blocker_connect (TestBlocker    *blocker,
                      EngineIOSocket *socket)
{
  g_signal_connect (socket, "message", G_CALLBACK (blocker_on_message), blocker);
  g_object_weak_ref (G_OBJECT (socket), blocker_on_finalized, blocker);
}

static gboolean
blocker_wait (TestBlocker *blocker,
              gboolean    *flag,
              guint        timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean value;

  g_mutex_lock (&blocker->lock);
  while (!*flag && g_cond_wait_until (&blocker->cond, &blocker->lock, deadline))
    ;
  value = *flag;
  g_mutex_unlock (&blocker->lock);
  return value;
}

gboolean
test_blocker_wait_entered (TestBlocker *blocker,
                           guint        timeout_ms)
{
  return blocker_wait (blocker, &blocker->entered, timeout_ms);
}

gboolean
test_blocker_wait_returned (TestBlocker *blocker,
                            guint        timeout_ms)
{
  return blocker_wait (blocker, &blocker->returned, timeout_ms);
}

gboolean
test_blocker_wait_finalized (TestBlocker *blocker,
                             guint        timeout_ms)
{
  return blocker_wait (blocker, &blocker->finalized, timeout_ms);
}

void
test_blocker_release (TestBlocker *blocker)
{
  blocker_set (blocker, &blocker->release);
}

void
test_blocker_clear (TestBlocker *blocker)
{
  g_mutex_clear (&blocker->lock);
  g_cond_clear (&blocker->cond);
}

/* ------------------------------------------------------------------ */
/* Resources                                                            */
/* ------------------------------------------------------------------ */

static guint
count_dir_entries (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

guint
test_count_threads (void)
{
  return count_dir_entries ("/proc/self/task");
}

guint
test_count_fds (void)
{
  /* Minus the descriptor of the directory being read. */
  guint n = count_dir_entries ("/proc/self/fd");
  return n > 0 ? n - 1 : 0;
}

guint
test_wait_count_at_most (guint (*count) (void),
                         guint   limit,
                         guint   timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  guint n;

  while ((n = count ()) > limit && g_get_monotonic_time () < deadline)
    g_usleep (10 * 1000);
  return n;
}

guint
test_settled_count (guint (*count) (void),
                    guint   stable_ms,
                    guint   timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gint64 stable_since = g_get_monotonic_time ();
  guint last = count ();

  while (g_get_monotonic_time () < deadline)
    {
      guint n;
      g_usleep (10 * 1000);
      n = count ();
      if (n != last)
        {
          last = n;
          stable_since = g_get_monotonic_time ();
        }
      else if (g_get_monotonic_time () - stable_since >= (gint64) stable_ms * 1000)
        break;
    }
  return last;
}

/* ------------------------------------------------------------------ */
/* TLS: a test CA made with openssl                                      */
/* ------------------------------------------------------------------ */

static char *tmp_dir;
static char *ca_file;
static char *cert_file;
static char *key_file;

static gboolean
run_openssl (const char * const *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  int status = -1;

  g_ptr_array_add (argv, (char *) "openssl");
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);
  if (!g_spawn_sync (tmp_dir, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                     NULL, NULL, &out, NULL, &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    {
      g_printerr ("openssl %s: %s\n", args[0], error->message);
      return FALSE;
    }
  return TRUE;
}

gboolean
test_tls_ca_make (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ext = NULL;
  g_autofree char *ca_key = NULL;
  g_autofree char *csr = NULL;

  tmp_dir = g_dir_make_tmp ("engineio-tls-XXXXXX", &error);
  g_assert_no_error (error);
  ca_file = g_build_filename (tmp_dir, "ca.pem", NULL);
  ca_key = g_build_filename (tmp_dir, "ca.key", NULL);
  cert_file = g_build_filename (tmp_dir, "server.pem", NULL);
  key_file = g_build_filename (tmp_dir, "server.key", NULL);
  csr = g_build_filename (tmp_dir, "server.csr", NULL);
  ext = g_build_filename (tmp_dir, "ext.cnf", NULL);
  g_file_set_contents (ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n", -1, &error);
  g_assert_no_error (error);
  {
    const char *a[] = { "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=engineio-glib test CA", "-keyout", ca_key, "-out", ca_file, NULL };
    const char *b[] = { "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=localhost", "-keyout", key_file, "-out", csr, NULL };
    const char *c[] = { "x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial",
                        "-days", "2", "-extfile", ext, "-out", cert_file, NULL };

    return run_openssl (a) && run_openssl (b) && run_openssl (c);
  }
}

void
test_tls_ca_remove (void)
{
  g_autoptr(GDir) dir = tmp_dir != NULL ? g_dir_open (tmp_dir, 0, NULL) : NULL;
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (tmp_dir, name, NULL);
      g_remove (path);
    }
  if (tmp_dir != NULL)
    g_rmdir (tmp_dir);
  g_clear_pointer (&tmp_dir, g_free);
  g_clear_pointer (&ca_file, g_free);
  g_clear_pointer (&cert_file, g_free);
  g_clear_pointer (&key_file, g_free);
}


const char *
test_tls_ca_file (void)
{
  return ca_file;
}

const char *
test_tls_cert_file (void)
{
  return cert_file;
}

GTlsCertificate *
test_tls_certificate_new (GError **error)
{
  return g_tls_certificate_new_from_files (cert_file, key_file, error);
}

static void
on_client_event (GSocketClient      *client,
                 GSocketClientEvent  event,
                 GSocketConnectable *connectable,
                 GIOStream          *connection,
                 gpointer            user_data)
{
  if (event == G_SOCKET_CLIENT_TLS_HANDSHAKING)
    g_tls_connection_set_database (G_TLS_CONNECTION (connection), user_data);
}

GIOStream *
test_tls_connect (guint      port,
                  gboolean   trust_ca,
                  GError   **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GTlsDatabase) database = NULL;

  g_socket_client_set_tls (client, TRUE);
  g_socket_client_set_timeout (client, (TEST_TIMEOUT_MS + 999) / 1000);
  /* No proxy lookup, as test_http_new(): with libproxy's GIO module
   * installed, its lookup thread throws a C++ exception, which ASan's
   * interceptor cannot handle in a C program (CHECK failed: real___cxa_throw). */
  g_socket_client_set_enable_proxy (client, FALSE);
  if (trust_ca)
    {
      database = g_tls_file_database_new (ca_file, error);
      if (database == NULL)
        return NULL;
      g_signal_connect (client, "event", G_CALLBACK (on_client_event), database);
    }
  return G_IO_STREAM (g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, error));
}
