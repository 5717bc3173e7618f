/* relutil.c: shared helpers of the reliability tests
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "relutil.h"

/* ------------------------------------------------------------------ */
/* Server                                                               */
/* ------------------------------------------------------------------ */

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            gpointer        user_data)
{
  if (text != NULL && strcmp (text, "close-me") == 0)
    engine_io_socket_close (socket);
  else if (text != NULL)
    engine_io_socket_send_text (socket, text, NULL);
  else
    engine_io_socket_send_binary (socket, data, NULL);
}

static void
on_connection (TestLoopback   *loopback,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  g_signal_connect (socket, "message", G_CALLBACK (on_message), NULL);
}

RelServer *
rel_server_new (void)
{
  RelServer *rs = g_new0 (RelServer, 1);

  g_mutex_init (&rs->lock);
  rs->reasons = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  test_loopback_init (&rs->lb);
  /* Only connections and closes are recorded: the floods (3 million v3
   * pings, each a heartbeat, in test-memory-bounds) would keep every
   * message, heartbeat or drain in the memory they measure. */
  rs->lb.watch = TEST_WATCH_CLOSE_ONLY;
  rs->lb.on_connection = on_connection;
  return rs;
}

gboolean
rel_server_listen (RelServer *rs)
{
  return test_loopback_listen (&rs->lb);
}

void
rel_server_free (RelServer *rs)
{
  if (rs == NULL)
    return;
  test_loopback_clear (&rs->lb);
  g_hash_table_unref (rs->reasons);
  g_mutex_clear (&rs->lock);
  g_free (rs);
}

/* The reason of engine_io_close_reason_to_string() @name, or -1. */
static gint
reason_of_string (const char *name)
{
  for (gint r = 0; r < REL_N_REASONS; r++)
    if (strcmp (engine_io_close_reason_to_string ((EngineIOCloseReason) r), name) == 0)
      return r;
  return -1;
}

/* (lock) One event of the recorder into the index. */
static void
index_event (RelServer  *rs,
             const char *event)
{
  const char *sid, *space;
  g_autofree char *key = NULL;
  gint reason;

  if (g_str_has_prefix (event, "connection "))
    {
      rs->n_connections++;
      return;
    }
  if (!g_str_has_prefix (event, "close "))
    return;
  sid = event + strlen ("close ");
  space = strchr (sid, ' ');
  if (space == NULL)
    return;
  key = g_strndup (sid, (gsize) (space - sid));
  reason = reason_of_string (space + 1);
  if (g_hash_table_contains (rs->reasons, key))
    rs->n_repeated++;
  else
    g_hash_table_insert (rs->reasons, g_steal_pointer (&key), GINT_TO_POINTER (reason + 1));
  if (reason >= 0)
    rs->closes[reason]++;
  rs->n_closes++;
}

/* Indexes the events recorded since the last call, waiting up to
 * @timeout_ms for one if there is none. Any thread. */
static void
sync_events (RelServer *rs,
             guint      timeout_ms)
{
  guint from;
  g_auto(GStrv) events = NULL;

  g_mutex_lock (&rs->lock);
  from = rs->n_read;
  g_mutex_unlock (&rs->lock);
  events = test_recorder_wait_since (rs->lb.events, from, timeout_ms);
  g_mutex_lock (&rs->lock);
  /* Another thread may have indexed some of them meanwhile. */
  for (guint i = 0; events[i] != NULL; i++)
    if (from + i == rs->n_read)
      {
        index_event (rs, events[i]);
        rs->n_read++;
      }
  g_mutex_unlock (&rs->lock);
}

static gint
lookup_reason (RelServer  *rs,
               const char *sid)
{
  gpointer value;

  g_mutex_lock (&rs->lock);
  value = g_hash_table_lookup (rs->reasons, sid);
  g_mutex_unlock (&rs->lock);
  return value != NULL ? GPOINTER_TO_INT (value) - 1 : -1;
}

gint
rel_server_wait_reason (RelServer  *rs,
                        const char *sid,
                        guint       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      gint64 remaining;
      gint reason;

      sync_events (rs, 0);
      reason = lookup_reason (rs, sid);
      remaining = deadline - g_get_monotonic_time ();
      if (reason >= 0 || remaining <= 0)
        return reason;
      sync_events (rs, (guint) (remaining / 1000) + 1);
    }
}

gint
rel_server_reason (RelServer  *rs,
                   const char *sid)
{
  sync_events (rs, 0);
  return lookup_reason (rs, sid);
}

/* A count of the index, read after indexing what was recorded. */
static guint
indexed_count (RelServer *rs,
               guint     *count)
{
  guint n;

  sync_events (rs, 0);
  g_mutex_lock (&rs->lock);
  n = *count;
  g_mutex_unlock (&rs->lock);
  return n;
}

guint
rel_server_closes (RelServer           *rs,
                   EngineIOCloseReason  reason)
{
  return (guint) reason < REL_N_REASONS ? indexed_count (rs, &rs->closes[reason]) : 0;
}

guint
rel_server_total_closes (RelServer *rs)
{
  return indexed_count (rs, &rs->n_closes);
}

guint
rel_server_repeated (RelServer *rs)
{
  return indexed_count (rs, &rs->n_repeated);
}

guint
rel_server_connections (RelServer *rs)
{
  return indexed_count (rs, &rs->n_connections);
}

guint64
rel_server_open_gauge (RelServer *rs)
{
  g_autoptr(EngineIOMetrics) metrics = engine_io_server_get_metrics (rs->lb.server);
  guint64 n = 0;

  for (int t = ENGINE_IO_TRANSPORT_POLLING; t <= ENGINE_IO_TRANSPORT_WEBSOCKET; t++)
    for (int v = ENGINE_IO_PROTOCOL_V3; v <= ENGINE_IO_PROTOCOL_V4; v++)
      n += engine_io_metrics_get_open_sessions (metrics, t, v);
  return n;
}

guint64
rel_server_handshakes (RelServer *rs)
{
  g_autoptr(EngineIOMetrics) metrics = engine_io_server_get_metrics (rs->lb.server);

  return engine_io_metrics_get_handshakes (metrics);
}

gboolean
rel_server_wait_settled (RelServer  *rs,
                         guint       n_open,
                         guint       timeout_ms,
                         GError    **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      guint64 handshakes = rel_server_handshakes (rs);
      guint64 gauge = rel_server_open_gauge (rs);
      guint table = engine_io_server_get_socket_count (rs->lb.server);
      guint closes = rel_server_total_closes (rs);
      gint64 now = g_get_monotonic_time ();

      if (handshakes == (guint64) closes + n_open && gauge == n_open && table == n_open)
        return TRUE;
      if (now >= deadline)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "after %u ms: %" G_GUINT64_FORMAT " handshakes, %u closes, "
                       "%u sessions in the table, open-sessions gauge %" G_GUINT64_FORMAT
                       " (expected %u open)", timeout_ms, handshakes, closes, table, gauge,
                       n_open);
          return FALSE;
        }
      /* Woken by the next event (a ::close among them); the gauge and the
       * table change just before it, the handshake counter without a
       * signal: look again at least every 50 ms. */
      sync_events (rs, (guint) MIN (50, (deadline - now) / 1000 + 1));
    }
}

/* ------------------------------------------------------------------ */
/* Resources                                                            */
/* ------------------------------------------------------------------ */

static guint
rss_kb (void)
{
  g_autofree char *statm = NULL;
  unsigned long size = 0, resident = 0;

  if (!g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    return 0;
  if (sscanf (statm, "%lu %lu", &size, &resident) != 2)
    return 0;
  return (guint) (resident * (unsigned long) sysconf (_SC_PAGESIZE) / 1024);
}

void
rel_resources_now (RelResources *out)
{
  out->threads = test_count_threads ();
  out->fds = test_count_fds ();
  out->rss_kb = rss_kb ();
}

void
rel_resources_settled (RelResources *out)
{
  out->threads = test_settled_count (test_count_threads, 200, REL_WAIT_MS);
  out->fds = test_settled_count (test_count_fds, 100, REL_WAIT_MS);
  out->rss_kb = rss_kb ();
}

gboolean
rel_resources_wait_at_most (guint         threads,
                            guint         fds,
                            guint         timeout_ms,
                            RelResources *out)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      rel_resources_now (out);
      if (out->threads <= threads && out->fds <= fds)
        return TRUE;
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      g_usleep (10 * 1000);
    }
}

/* The /proc/net/tcp line of the socket with @inode (local and remote
 * address, state), or NULL. */
static char *
tcp_line_for_inode (const char *inode)
{
  g_autofree char *table = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/net/tcp", &table, NULL, NULL))
    return NULL;
  lines = g_strsplit (table, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " ", -1);
      GPtrArray *words = g_ptr_array_new ();
      char *result = NULL;

      for (guint j = 0; fields[j] != NULL; j++)
        if (fields[j][0] != '\0')
          g_ptr_array_add (words, fields[j]);
      /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
      if (words->len > 9 && strcmp (g_ptr_array_index (words, 9), inode) == 0)
        result = g_strdup_printf ("local %s remote %s state %s", (char *) g_ptr_array_index (words, 1),
                                  (char *) g_ptr_array_index (words, 2),
                                  (char *) g_ptr_array_index (words, 3));
      g_ptr_array_unref (words);
      if (result != NULL)
        return result;
    }
  return NULL;
}

void
rel_resources_dump_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);
      g_autofree char *tcp = NULL;

      if (target != NULL && g_str_has_prefix (target, "socket:["))
        {
          g_autofree char *inode = g_strndup (target + 8, strlen (target) - 9);
          tcp = tcp_line_for_inode (inode);
        }
      g_printerr ("# fd %s -> %s%s%s\n", name, target ? target : "?", tcp ? " " : "", tcp ? tcp : "");
    }
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */
/* ------------------------------------------------------------------ */

struct _RelErrors
{
  GMutex     lock;
  GPtrArray *messages;  /* char* */
};

RelErrors *
rel_errors_new (void)
{
  RelErrors *errors = g_new0 (RelErrors, 1);

  g_mutex_init (&errors->lock);
  errors->messages = g_ptr_array_new_with_free_func (g_free);
  return errors;
}

void
rel_errors_free (RelErrors *errors)
{
  if (errors == NULL)
    return;
  g_ptr_array_unref (errors->messages);
  g_mutex_clear (&errors->lock);
  g_free (errors);
}

void
rel_errors_add (RelErrors  *errors,
                const char *format,
                ...)
{
  va_list args;
  char *message;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_mutex_lock (&errors->lock);
  g_ptr_array_add (errors->messages, message);
  g_mutex_unlock (&errors->lock);
}

guint
rel_errors_count (RelErrors *errors)
{
  guint n;

  g_mutex_lock (&errors->lock);
  n = errors->messages->len;
  g_mutex_unlock (&errors->lock);
  return n;
}

void
rel_errors_report (RelErrors *errors,
                   guint      max)
{
  g_mutex_lock (&errors->lock);
  for (guint i = 0; i < errors->messages->len && i < max; i++)
    g_test_message ("error: %s", (const char *) g_ptr_array_index (errors->messages, i));
  if (errors->messages->len > 0)
    g_test_fail_printf ("%u errors, the first: %s", errors->messages->len,
                        (const char *) g_ptr_array_index (errors->messages, 0));
  g_mutex_unlock (&errors->lock);
}

typedef struct
{
  int       next;  /* (atomic) */
  guint     n_items;
  void    (*func) (guint index, gpointer data);
  gpointer  data;
} Parallel;

static gpointer
parallel_thread (gpointer data)
{
  Parallel *p = data;

  for (;;)
    {
      guint index = (guint) g_atomic_int_add (&p->next, 1);
      if (index >= p->n_items)
        break;
      p->func (index, p->data);
    }
  return NULL;
}

void
rel_parallel (guint    n_threads,
              guint    n_items,
              void   (*func) (guint index, gpointer data),
              gpointer data)
{
  Parallel p = { 0, n_items, func, data };
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();

  for (guint i = 0; i < n_threads; i++)
    g_ptr_array_add (threads, g_thread_new ("rel-client", parallel_thread, &p));
  for (guint i = 0; i < threads->len; i++)
    g_thread_join (g_ptr_array_index (threads, i));
}

/* ------------------------------------------------------------------ */
/* Polling client                                                       */
/* ------------------------------------------------------------------ */

void
rel_poll_free (RelPoll *poll)
{
  if (poll == NULL)
    return;
  test_http_free (poll->http);
  g_free (poll->sid);
  g_free (poll->target);
  g_queue_clear_full (&poll->inbox, g_free);
  g_free (poll);
}

#if defined(__SANITIZE_ADDRESS__)
# define WITH_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define WITH_ASAN 1
# endif
#endif

#ifdef WITH_ASAN
size_t __sanitizer_get_current_allocated_bytes (void);
const char *const REL_HELD_WHAT = "allocated heap";

guint
rel_held_kb (void)
{
  return (guint) (__sanitizer_get_current_allocated_bytes () / 1024);
}
#else
const char *const REL_HELD_WHAT = "RSS";

guint
rel_held_kb (void)
{
  RelResources now;

  rel_resources_now (&now);
  return now.rss_kb;
}
#endif

static gboolean
response_ok (TestResponse  *response,
             const char    *what,
             GError       **error)
{
  if (response->status != 200)
    {
      g_autofree char *text = test_response_text (response);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s answered %u: %.200s",
                   what, response->status, text);
      return FALSE;
    }
  return TRUE;
}

/* The pong for a ping. 400 "Session ID unknown" is fine: the session
 * closed after the ping was sent (the application closed it); the next
 * poll brings the close packet. */
static gboolean
poll_pong (RelPoll  *poll,
           GError  **error)
{
  g_autoptr(TestResponse) pong = NULL;

  pong = test_http_request (poll->http, "POST", poll->target, NULL, "3", 1, REL_WAIT_MS, error);
  return pong != NULL && (test_eio_is_error (pong, 400, 1) || response_ok (pong, "pong POST", error));
}

RelPoll *
rel_poll_open (guint    port,
               GError **error)
{
  g_autoptr(RelPoll) poll = g_new0 (RelPoll, 1);
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;

  poll->http = test_http_new (port);
  g_queue_init (&poll->inbox);
  packets = test_eio_polling_handshake_try (poll->http, 4, NULL, REL_WAIT_MS, &open, error);
  if (packets == NULL)
    return NULL;
  poll->sid = g_strdup (open->sid);
  poll->target = test_eio_target (4, "polling", poll->sid);
  /* The handshake's response can carry more than the open packet: with a
   * short ping interval on a loaded machine (ASan), the first ping may be
   * queued before the response is taken. It is answered here, as
   * rel_poll_next() answers pings, and is not a message. */
  for (guint i = 1; i < packets->len; i++)
    {
      const char *packet = g_ptr_array_index (packets, i);

      if (strcmp (packet, "2") == 0)
        {
          if (!poll_pong (poll, error))
            return NULL;
        }
      else if (strcmp (packet, "6") != 0)
        g_queue_push_tail (&poll->inbox, g_strdup (packet));
    }
  return g_steal_pointer (&poll);
}

gboolean
rel_poll_post (RelPoll     *poll,
               const char  *packet,
               GError     **error)
{
  g_autoptr(TestResponse) response = NULL;

  response = test_http_request (poll->http, "POST", poll->target, NULL, packet,
                                (gssize) strlen (packet), REL_WAIT_MS, error);
  if (response == NULL || !response_ok (response, "POST", error))
    return FALSE;
  if (!test_response_body_equal (response, TEST_S ("ok")))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "POST was not answered “ok”");
      return FALSE;
    }
  return TRUE;
}

char *
rel_poll_next (RelPoll  *poll,
               guint     timeout_ms,
               GError  **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (g_queue_is_empty (&poll->inbox))
    {
      g_autoptr(TestResponse) response = NULL;
      g_autoptr(GPtrArray) packets = NULL;
      gint64 remaining = deadline - g_get_monotonic_time ();
      gboolean ping = FALSE;
      gboolean closing = FALSE;

      if (remaining <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "no packet within %u ms", timeout_ms);
          return NULL;
        }
      response = test_http_request (poll->http, "GET", poll->target, NULL, NULL, -1,
                                    (guint) (remaining / 1000) + 1, error);
      if (response == NULL || !response_ok (response, "poll", error))
        return NULL;
      packets = test_payload_v4_split (response->body);
      for (guint i = 0; i < packets->len; i++)
        {
          const char *packet = g_ptr_array_index (packets, i);
          if (strcmp (packet, "2") == 0)
            ping = TRUE;
          else if (strcmp (packet, "6") != 0)
            g_queue_push_tail (&poll->inbox, g_strdup (packet));
          closing |= strcmp (packet, "1") == 0;
        }
      /* A ping followed by the close packet needs no pong. */
      if (ping && !closing)
        {
          if (!poll_pong (poll, error))
            return NULL;
        }
    }
  return g_queue_pop_head (&poll->inbox);
}

gboolean
rel_poll_echo (RelPoll     *poll,
               const char  *text,
               guint        timeout_ms,
               GError     **error)
{
  g_autofree char *message = g_strconcat ("4", text, NULL);
  g_autofree char *got = NULL;

  if (!rel_poll_post (poll, message, error))
    return FALSE;
  got = rel_poll_next (poll, timeout_ms, error);
  if (got == NULL)
    return FALSE;
  if (strcmp (got, message) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "echo of “%s” came back as “%.200s”",
                   message, got);
      return FALSE;
    }
  return TRUE;
}

gboolean
rel_poll_send_get (RelPoll  *poll,
                   GError  **error)
{
  return test_http_send (poll->http, "GET", poll->target, NULL, NULL, -1, error);
}

/* ------------------------------------------------------------------ */
/* WebSocket client                                                     */
/* ------------------------------------------------------------------ */

TestWs *
rel_ws_open (guint    port,
             char   **out_sid,
             GError **error)
{
  g_autoptr(TestOpenPacket) open = NULL;
  TestWs *ws = test_eio_ws_open_try (port, 4, NULL, 0, REL_WAIT_MS, &open, error);

  if (ws != NULL)
    *out_sid = g_strdup (open->sid);
  return ws;
}

gboolean
rel_ws_send (TestWs      *ws,
             const char  *packet,
             GError     **error)
{
  return test_ws_send_frame (ws, TEST_WS_TEXT, TEST_WS_SEND_DEFAULT, packet, strlen (packet), error);
}

char *
rel_ws_next (TestWs   *ws,
             guint     timeout_ms,
             gint     *out_close_code,
             GError  **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  if (out_close_code != NULL)
    *out_close_code = -1;
  for (;;)
    {
      gint64 remaining = deadline - g_get_monotonic_time ();
      g_autoptr(TestWsFrame) frame = NULL;
      g_autofree char *text = NULL;

      frame = test_ws_read_frame (ws, remaining > 0 ? (guint) (remaining / 1000) : 0, error);
      if (frame == NULL)
        return NULL;
      if (frame->opcode == TEST_WS_CLOSE)
        {
          /* Answer it, as a client does (the server may be gone). */
          guint8 payload[2] = { 0x03, 0xe8 };
          test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, NULL);
          if (out_close_code != NULL)
            *out_close_code = frame->close_code;
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                       "the server sent a close frame (%d)", frame->close_code);
          return NULL;
        }
      if (frame->opcode != TEST_WS_TEXT)
        continue;
      text = test_ws_frame_dup_text (frame);
      if (strcmp (text, "2") == 0)
        {
          if (!rel_ws_send (ws, "3", error))
            return NULL;
          continue;
        }
      return g_steal_pointer (&text);
    }
}

gboolean
rel_ws_echo (TestWs      *ws,
             const char  *text,
             guint        timeout_ms,
             GError     **error)
{
  g_autofree char *message = g_strconcat ("4", text, NULL);
  g_autofree char *got = NULL;

  if (!rel_ws_send (ws, message, error))
    return FALSE;
  got = rel_ws_next (ws, timeout_ms, NULL, error);
  if (got == NULL)
    return FALSE;
  if (strcmp (got, message) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "echo of “%s” came back as “%.200s”",
                   message, got);
      return FALSE;
    }
  return TRUE;
}

TestWs *
rel_ws_upgrade (guint       port,
                const char *sid,
                GError    **error)
{
  g_autofree char *target = test_eio_target (4, "websocket", sid);
  g_autoptr(TestWs) ws = test_ws_connect (port, target, NULL, 0, NULL, error);
  g_autofree char *pong = NULL;

  if (ws == NULL || !rel_ws_send (ws, "2probe", error))
    return NULL;
  pong = rel_ws_next (ws, REL_WAIT_MS, NULL, error);
  if (pong == NULL)
    return NULL;
  if (strcmp (pong, "3probe") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "probe answered “%.200s”", pong);
      return NULL;
    }
  if (!rel_ws_send (ws, "5", error))
    return NULL;
  return g_steal_pointer (&ws);
}

gint
rel_ws_wait_server_close (TestWs *ws,
                          guint   timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gint code = test_ws_read_close (ws, timeout_ms, NULL);
  gint64 remaining;

  if (code < -1)
    return code;
  /* Answer the close (the server may have given up on us already). */
  {
    guint8 payload[2] = { 0x03, 0xe8 };  /* 1000 */
    test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, NULL);
  }
  remaining = deadline - g_get_monotonic_time ();
  if (!test_ws_wait_eof (ws, remaining > 0 ? (guint) (remaining / 1000) : 0))
    return -3;
  return code;
}

/* ------------------------------------------------------------------ */
/* Healthy session                                                      */
/* ------------------------------------------------------------------ */

struct _RelHealthy
{
  RelHealthyKind  kind;
  RelPoll        *poll;
  TestWs         *ws;
  char           *sid;
  GThread        *thread;

  GMutex          lock;
  GCond           cond;
  guint           round_trips;  /* (lock) */
  guint           max_ms;       /* (lock) */
  char           *error;        /* (lock) */
  gboolean        stop;         /* (lock) */
};

static gpointer
healthy_thread (gpointer data)
{
  RelHealthy *h = data;

  for (guint n = 0; ; n++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *text = g_strdup_printf ("healthy-%u", n);
      gint64 start = g_get_monotonic_time ();
      gboolean ok;
      guint ms;

      if (h->kind == REL_HEALTHY_POLLING)
        ok = rel_poll_echo (h->poll, text, REL_WAIT_MS, &error);
      else
        ok = rel_ws_echo (h->ws, text, REL_WAIT_MS, &error);
      ms = (guint) ((g_get_monotonic_time () - start) / 1000);

      g_mutex_lock (&h->lock);
      if (!ok)
        {
          h->error = g_strdup_printf ("healthy %s session %s, round trip %u: %s",
                                      h->kind == REL_HEALTHY_POLLING ? "polling" : "WebSocket",
                                      h->sid, n, error->message);
          g_cond_broadcast (&h->cond);
          g_mutex_unlock (&h->lock);
          break;
        }
      h->round_trips++;
      h->max_ms = MAX (h->max_ms, ms);
      g_cond_broadcast (&h->cond);
      /* A pause, so the healthy session does not take a core by itself. */
      if (!h->stop)
        g_cond_wait_until (&h->cond, &h->lock, g_get_monotonic_time () + 10 * 1000);
      if (h->stop)
        {
          g_mutex_unlock (&h->lock);
          break;
        }
      g_mutex_unlock (&h->lock);
    }
  return NULL;
}

RelHealthy *
rel_healthy_start (guint            port,
                   RelHealthyKind   kind,
                   GError         **error)
{
  RelHealthy *h = g_new0 (RelHealthy, 1);

  h->kind = kind;
  g_mutex_init (&h->lock);
  g_cond_init (&h->cond);
  if (kind == REL_HEALTHY_POLLING)
    {
      h->poll = rel_poll_open (port, error);
      if (h->poll != NULL)
        h->sid = g_strdup (h->poll->sid);
    }
  else
    h->ws = rel_ws_open (port, &h->sid, error);
  if (h->sid == NULL)
    {
      g_free (rel_healthy_stop (h, FALSE));
      return NULL;
    }
  h->thread = g_thread_new ("rel-healthy", healthy_thread, h);
  return h;
}

const char *
rel_healthy_sid (RelHealthy *h)
{
  return h->sid;
}

guint
rel_healthy_round_trips (RelHealthy *h)
{
  guint n;

  g_mutex_lock (&h->lock);
  n = h->round_trips;
  g_mutex_unlock (&h->lock);
  return n;
}

char *
rel_healthy_dup_error (RelHealthy *h)
{
  char *error;

  g_mutex_lock (&h->lock);
  error = g_strdup (h->error);
  g_mutex_unlock (&h->lock);
  return error;
}

guint
rel_healthy_max_ms (RelHealthy *h)
{
  guint n;

  g_mutex_lock (&h->lock);
  n = h->max_ms;
  g_mutex_unlock (&h->lock);
  return n;
}

gboolean
rel_healthy_wait_more (RelHealthy *h,
                       guint       n,
                       guint       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  gboolean ok;
  guint target;

  g_mutex_lock (&h->lock);
  target = h->round_trips + n;
  while (h->round_trips < target && h->error == NULL)
    if (!g_cond_wait_until (&h->cond, &h->lock, deadline))
      break;
  ok = h->round_trips >= target && h->error == NULL;
  g_mutex_unlock (&h->lock);
  return ok;
}

char *
rel_healthy_stop (RelHealthy *h,
                  gboolean    close)
{
  char *error;

  if (h->thread != NULL)
    {
      g_mutex_lock (&h->lock);
      h->stop = TRUE;
      g_cond_broadcast (&h->cond);
      g_mutex_unlock (&h->lock);
      g_thread_join (h->thread);
    }
  error = g_steal_pointer (&h->error);

  if (close && error == NULL)
    {
      g_autoptr(GError) local_error = NULL;

      if (h->poll != NULL && !rel_poll_post (h->poll, "1", &local_error))
        error = g_strdup_printf ("healthy session %s: close: %s", h->sid, local_error->message);
      if (h->ws != NULL)
        {
          gint code;
          if (!rel_ws_send (h->ws, "1", &local_error))
            error = g_strdup_printf ("healthy session %s: close: %s", h->sid, local_error->message);
          else if ((code = rel_ws_wait_server_close (h->ws, REL_WAIT_MS)) < -1)
            error = g_strdup_printf ("healthy session %s: no close frame after the close packet (%d)",
                                     h->sid, code);
        }
    }

  g_clear_pointer (&h->poll, rel_poll_free);
  g_clear_pointer (&h->ws, test_ws_free);
  g_free (h->sid);
  g_mutex_clear (&h->lock);
  g_cond_clear (&h->cond);
  g_free (h);
  return error;
}

/* ------------------------------------------------------------------ */
/* Raw TCP                                                              */
/* ------------------------------------------------------------------ */

int
rel_tcp_connect (guint port)
{
  struct sockaddr_in address = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -1;
  address.sin_family = AF_INET;
  address.sin_port = htons ((guint16) port);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (connect (fd, (struct sockaddr *) &address, sizeof address) != 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

gboolean
rel_tcp_send (int         fd,
              const void *data,
              gsize       length)
{
  const char *p = data;

  while (length > 0)
    {
      ssize_t n = send (fd, p, length, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      p += n;
      length -= (gsize) n;
    }
  return TRUE;
}

void
rel_tcp_reset (int fd)
{
  struct linger linger = { .l_onoff = 1, .l_linger = 0 };

  setsockopt (fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  close (fd);
}

gboolean
rel_tcp_wait_closed (int         fd,
                     guint       timeout_ms,
                     GByteArray *received)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  char buffer[16384];

  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      gint64 remaining = deadline - g_get_monotonic_time ();
      ssize_t n;
      int r;

      if (remaining <= 0)
        return FALSE;
      r = poll (&pfd, 1, (int) MAX (1, remaining / 1000));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return FALSE;
      n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0)
        return TRUE;
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EINTR)
            continue;
          return TRUE;  /* a reset */
        }
      if (received != NULL)
        g_byte_array_append (received, (const guint8 *) buffer, (guint) n);
    }
}

gboolean
rel_tcp_is_closed (int fd)
{
  char buffer[16384];

  for (;;)
    {
      ssize_t n = recv (fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0)
        return TRUE;
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return errno != EAGAIN && errno != EWOULDBLOCK;
        }
    }
}

guint
rel_http_status_of (GByteArray *received)
{
  char line[64] = { 0 };
  guint status = 0;

  memcpy (line, received->data, MIN (received->len, sizeof line - 1));
  if (sscanf (line, "HTTP/1.%*d %u", &status) != 1)
    return 0;
  return status;
}
