/* engineio-soup.c: the libsoup 3 adapter
 *
 * The only file that includes <libsoup/soup.h>. A host of the engine on
 * its public host seam (engineio-host.h), as any application's web server
 * would be: each SoupServerMessage on the server's path is an
 * EngineIOSoupRequest, a private subclass of EngineIOHostRequest whose
 * class functions (respond, suspend, resume, upgrade) act on the message.
 * Everything here runs in the GMainContext the SoupServer dispatches in
 * (the serving thread), except the class's resume(), which may come from
 * any thread and is marshalled there.
 *
 * - A request on the path is seen at its headers (an early handler): a
 *   POST is handed to the engine there (an oversized Content-Length is
 *   refused before a byte of its body is read), and the body is never
 *   accumulated by libsoup: its chunks (got-chunk) go to
 *   engine_io_host_request_add_body(), and the bytes of a body nobody
 *   wants are counted and, past a bound (or past connection-timeout), the
 *   connection is taken from libsoup and closed (abort_connection()).
 * - Anything else is handed over at the normal handler (the body read).
 * - suspend pauses the SoupServerMessage; its socket is watched for its
 *   client closing it (engine_io_host_request_client_gone(): a waiting
 *   poll is then resumed and gets no answer, the connection is shut
 *   down).
 * - upgrade answers 101 with the engine's headers; once libsoup has
 *   written it (wrote-informational), the connection is stolen and handed
 *   over (engine_io_host_request_attach_connection()). Over TLS (or
 *   without a descriptor) the stolen stream is relayed to a socketpair
 *   whose other end the session gets (Relay).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* POLLRDHUP */
#endif
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "engineio-peer-private.h"
#include "engineio-soup-private.h"
#include "engineio-soup.h"
#include "engineio-error.h"
#include "engineio-host.h"

/* What a body nobody keeps (refused at its head, or grown past
 * max-payload) may go on for before its connection is closed instead of
 * answered (libsoup answers only once the body is read). */
#define MAX_DROPPED_BODY (1024 * 1024)
/* What is read from a stolen connection past the upgrade's head at once
 * (the bytes libsoup had buffered, and whatever else is there). */
#define MAX_EXTRA_IN (64 * 1024)

/* One engine attached to one SoupServer. */
typedef struct
{
  gatomicrefcount  ref_count;
  EngineIOServer  *server;        /* owned */
  char            *path;          /* the handler's path (no trailing '/') */
  char            *metrics_path;  /* owned; NULL: none of its own */
  /* The server's properties (frozen once it started). */
  guint64          max_payload;
  guint            connection_timeout;
} SoupAttach;

/* One SoupServerMessage, as the engine's host request. */
typedef struct
{
  EngineIOHostRequest  parent_instance;
  SoupAttach          *attach;       /* owned */
  SoupServerMessage   *msg;          /* owned */
  GMainContext        *context;      /* owned: where the SoupServer dispatches it */
  GSocket             *gsocket;      /* owned; NULL if libsoup gave none */
  GSource             *gone_watch;   /* a held request's socket, watched for its client going */
  GSource             *body_deadline; /* a body must be in by then */
  guint64              body_length;  /* body bytes read so far */
  guint64              dropped;      /* body bytes read and dropped */
  guint                status;       /* the engine's answer (0: none yet) */
  gboolean             handed;       /* given to the engine */
  gboolean             reading;      /* the engine reads the body */
  gboolean             deferred;     /* not a POST: handed over at the normal handler */
  gboolean             orphaned;     /* the body's session ended while it was read */
  gboolean             head_answered; /* answered when handed over at its head */
  gboolean             responded;
  gboolean             paused;       /* suspended by the engine, resumed() not called yet */
  gboolean             upgrading;    /* upgrade() returned TRUE: the 101 is on its way */
  gboolean             finished;     /* over for libsoup (written, aborted, or switched) */
  gboolean             stealing;     /* the connection is being taken */
  gboolean             wrote_body;   /* the response went out whole */
  gboolean             killed;       /* the connection was shut down or taken to be closed */
  gboolean             relayed;      /* a WebSocket goes through a relay (TLS) */
} EngineIOSoupRequest;

typedef struct
{
  EngineIOHostRequestClass parent_class;
} EngineIOSoupRequestClass;

static GType engine_io_soup_request_get_type (void) G_GNUC_CONST;
G_DEFINE_TYPE (EngineIOSoupRequest, engine_io_soup_request, ENGINE_IO_TYPE_HOST_REQUEST)

#define HOST(sr) ((EngineIOHostRequest *) (sr))

static GQuark
request_quark (void)
{
  static GQuark quark;

  if (quark == 0)
    quark = g_quark_from_static_string ("engineio-soup-request");
  return quark;
}

static SoupAttach *
attach_ref (SoupAttach *attach)
{
  g_atomic_ref_count_inc (&attach->ref_count);
  return attach;
}

static void
attach_unref (gpointer data)
{
  SoupAttach *attach = data;

  if (!g_atomic_ref_count_dec (&attach->ref_count))
    return;
  g_object_unref (attach->server);
  g_free (attach->path);
  g_free (attach->metrics_path);
  g_free (attach);
}

static void request_done (EngineIOSoupRequest *sr, gboolean completed);

/* Shuts the connection down: libsoup's next read or write fails and it
 * ends the message (aborted) and closes the connection. Only for a
 * connection whose client is gone or not sending: while bytes keep
 * coming, a shut-down socket still reads them (Linux), and libsoup goes
 * on reading (see abort_connection()). */
static void
kill_connection (EngineIOSoupRequest *sr)
{
  sr->killed = TRUE;
  if (sr->gsocket != NULL)
    g_socket_shutdown (sr->gsocket, TRUE, TRUE, NULL);
}

/* A connection taken from libsoup to be closed: its answer (if any) is
 * written and its sending side shut down, then it is closed once the
 * client closes its side too, or after LINGER_S (so that the close does
 * not reset the connection under the answer before a client that reads
 * it could). Nothing more is read meanwhile: a client still sending
 * only fills the socket's buffers. One source (the socket's, with the
 * socket's timeout as the linger) owns it: freed, and the connection
 * closed, when that source is, also when its context goes away first. */
#define LINGER_S 1

typedef struct
{
  GIOStream *stream;
  GSocket   *gsocket;   /* NULL: none (a stream given to libsoup) */
} Closer;

static void
closer_free (gpointer data)
{
  Closer *closer = data;

  g_io_stream_close (closer->stream, NULL, NULL);
  if (closer->gsocket != NULL)
    g_socket_close (closer->gsocket, NULL);  /* no-op if closed with the stream */
  g_object_unref (closer->stream);
  g_clear_object (&closer->gsocket);
  g_free (closer);
}

/* The client closed its side too (POLLHUP: its FIN after ours), reset
 * the connection (POLLERR), or the linger is over (the socket's timeout:
 * reported as G_IO_IN). */
static gboolean
closer_done_cb (GSocket      *gsocket,
                GIOCondition  condition,
                gpointer      user_data)
{
  return G_SOURCE_REMOVE;  /* closer_free() */
}

/* The answer libsoup would have written, with `Connection: close`. */
static GBytes *
serialize_answer (SoupServerMessage *msg)
{
  GString *out = g_string_new (NULL);
  SoupMessageHeadersIter iter;
  const char *name, *value;
  guint status = soup_server_message_get_status (msg);
  const char *reason = soup_server_message_get_reason_phrase (msg);
  g_autoptr(GBytes) body = soup_message_body_flatten (soup_server_message_get_response_body (msg));

  g_string_append_printf (out, "HTTP/1.1 %u %s\r\n", status,
                          reason != NULL ? reason : soup_status_get_phrase (status));
  soup_message_headers_iter_init (&iter, soup_server_message_get_response_headers (msg));
  while (soup_message_headers_iter_next (&iter, &name, &value))
    if (g_ascii_strcasecmp (name, "Content-Length") != 0 &&
        g_ascii_strcasecmp (name, "Connection") != 0 &&
        g_ascii_strcasecmp (name, "Transfer-Encoding") != 0)
      g_string_append_printf (out, "%s: %s\r\n", name, value);
  g_string_append_printf (out, "Connection: close\r\nContent-Length: %" G_GSIZE_FORMAT "\r\n\r\n",
                          g_bytes_get_size (body));
  g_string_append_len (out, g_bytes_get_data (body, NULL), (gssize) g_bytes_get_size (body));
  return g_string_free_to_bytes (out);
}

static void
write_answer (GIOStream *stream,
              GBytes    *answer)
{
  GOutputStream *output = g_io_stream_get_output_stream (stream);
  const guint8 *data;
  gsize size;

  if (!G_IS_POLLABLE_OUTPUT_STREAM (output) ||
      !g_pollable_output_stream_can_poll (G_POLLABLE_OUTPUT_STREAM (output)))
    return;
  data = g_bytes_get_data (answer, &size);
  /* Best effort: a few hundred bytes into an idle connection's send
   * buffer; what does not go at once is dropped. */
  while (size > 0)
    {
      gssize n = g_pollable_output_stream_write_nonblocking (G_POLLABLE_OUTPUT_STREAM (output),
                                                             data, size, NULL, NULL);

      if (n <= 0)
        break;
      data += n;
      size -= (gsize) n;
    }
}

/* Ends a request whose body is still coming (past its bounds, or too
 * slow), and closes its connection now: the connection is taken from
 * libsoup (which would go on reading a body whose client keeps sending,
 * even from a shut-down socket), the request ends (aborted), and the
 * answer the engine gave at its head (a 413 for a Content-Length past
 * max-payload), if any, is written before the close, as libmicrohttpd
 * does at the head; no answer otherwise (as there). May be called from
 * libsoup's got-chunk (libsoup stops reading a stolen message: it checks
 * that the message still has its I/O after every signal). */
static void
abort_connection (EngineIOSoupRequest *sr)
{
  g_autoptr(GBytes) answer = NULL;
  GIOStream *stream;
  Closer *closer;

  if (sr->finished)
    return;
  /* An HTTP/2 stream's connection cannot be taken (libsoup 3.2 aborts
   * the process): it is shut down, all its streams with it. */
  if (soup_server_message_get_http_version (sr->msg) >= SOUP_HTTP_2_0)
    {
      kill_connection (sr);
      return;
    }
  sr->killed = TRUE;
  g_object_ref (sr);
  if (sr->head_answered && soup_server_message_get_status (sr->msg) >= 400)
    answer = serialize_answer (sr->msg);
  sr->stealing = TRUE;
  stream = soup_server_message_steal_connection (sr->msg);
  sr->stealing = FALSE;
  /* libsoup reports nothing more for a stolen message. */
  request_done (sr, FALSE);
  if (stream == NULL)
    {
      /* No connection to take (never expected): shut it down. */
      kill_connection (sr);
      g_object_unref (sr);
      return;
    }

  closer = g_new0 (Closer, 1);
  closer->stream = stream;
  closer->gsocket = sr->gsocket != NULL ? g_object_ref (sr->gsocket) : NULL;
  if (answer != NULL)
    write_answer (stream, answer);
  if (answer != NULL && closer->gsocket != NULL &&
      g_socket_shutdown (closer->gsocket, FALSE, TRUE, NULL))
    {
      GSource *source;

      g_socket_set_timeout (closer->gsocket, LINGER_S);
      source = g_socket_create_source (closer->gsocket, G_IO_HUP | G_IO_ERR, NULL);
      g_source_set_callback (source, G_SOURCE_FUNC (closer_done_cb), closer, closer_free);
      g_source_set_name (source, "[engineio] soup closer");
      g_source_attach (source, sr->context);
      g_source_unref (source);
    }
  else
    closer_free (closer);  /* nothing to deliver: closed now */
  g_object_unref (sr);
}

/* Has the client closed the connection (FIN or RST), now, without
 * waiting? */
static gboolean
closed_by_peer (EngineIOSoupRequest *sr)
{
  return sr->gsocket != NULL && engine_io_fd_closed_by_peer (g_socket_get_fd (sr->gsocket));
}

static void
stop_body_deadline (EngineIOSoupRequest *sr)
{
  if (sr->body_deadline != NULL)
    {
      g_source_destroy (sr->body_deadline);
      g_clear_pointer (&sr->body_deadline, g_source_unref);
    }
}

static void
stop_gone_watch (EngineIOSoupRequest *sr)
{
  if (sr->gone_watch != NULL)
    {
      g_source_destroy (sr->gone_watch);
      g_clear_pointer (&sr->gone_watch, g_source_unref);
    }
}

/* The class functions (EngineIOHostRequestClass) */

static gboolean soup_leaks_idle_connections (void);

static void
soup_respond (EngineIOHostRequest *request,
              guint                status,
              const char * const  *headers,
              GBytes              *body)
{
  EngineIOSoupRequest *sr = (EngineIOSoupRequest *) request;
  SoupMessageHeaders *response_headers;

  sr->responded = TRUE;
  sr->status = status;
  /* Answered after libsoup was done with the message (a request held by
   * the engine when its connection went): nobody to write it to. */
  if (sr->finished)
    return;
  response_headers = soup_server_message_get_response_headers (sr->msg);
  for (gsize i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    soup_message_headers_append (response_headers, headers[i], headers[i + 1]);
  /* A client that half-closed (its FIN came with or after the request):
   * answered, then closed. libsoup before 3.3 would keep the connection
   * (its keep-alive successor, whose read fails, is never disconnected)
   * for as long as the SoupServer runs. (There every answer closes
   * already, soup_request_new(): no poll() of the socket per answer.) */
  if (!soup_leaks_idle_connections () && closed_by_peer (sr))
    soup_message_headers_replace (response_headers, "Connection", "close");
  if (g_bytes_get_size (body) > 0)
    soup_message_body_append_bytes (soup_server_message_get_response_body (sr->msg), body);
  soup_server_message_set_status (sr->msg, status, NULL);
}

static gboolean gone_watch_cb (GSocket      *gsocket,
                               GIOCondition  condition,
                               gpointer      user_data);

static void
watch_gone (EngineIOSoupRequest *sr,
            GIOCondition         condition)
{
  sr->gone_watch = g_socket_create_source (sr->gsocket, condition, NULL);
  g_source_set_callback (sr->gone_watch, G_SOURCE_FUNC (gone_watch_cb), sr, NULL);
  g_source_set_name (sr->gone_watch, "[engineio] soup poll watch");
  g_source_attach (sr->gone_watch, sr->context);
}

static gboolean
gone_watch_cb (GSocket      *gsocket,
               GIOCondition  condition,
               gpointer      user_data)
{
  EngineIOSoupRequest *sr = user_data;

  g_clear_pointer (&sr->gone_watch, g_source_unref);
  /* Readable but not closed (a pipelined request, which libsoup reads
   * only after this one): from now on watched for the client's end only
   * (a reset, a hang-up, or its FIN where poll() tells it apart:
   * POLLRDHUP; not for the bytes, which stay there), so that a client
   * that pipelined and then goes still ends its session at once. */
  if (!closed_by_peer (sr))
    {
      if (condition & G_IO_IN)
        watch_gone (sr, (GIOCondition) (G_IO_HUP | G_IO_ERR | ENGINE_IO_PEER_CLOSED_EVENTS));
      return G_SOURCE_REMOVE;
    }
  /* A waiting poll is resumed (soup_resume() may run here), and gets no
   * answer; other held requests go on as they would have. */
  engine_io_host_request_client_gone (HOST (sr));
  return G_SOURCE_REMOVE;
}

static void
soup_suspend (EngineIOHostRequest *request)
{
  EngineIOSoupRequest *sr = (EngineIOSoupRequest *) request;

  sr->paused = TRUE;
  /* Held again after libsoup was done with the message (see
   * request_done()): nothing to pause. */
  if (sr->finished)
    return;
  soup_server_message_pause (sr->msg);
  /* Watched for its client going (libsoup does not read a paused
   * message's connection): a waiting poll ends its session then. */
  if (sr->gsocket != NULL && sr->gone_watch == NULL)
    watch_gone (sr, G_IO_IN | G_IO_HUP | G_IO_ERR);
}

static gboolean resumed_cb (gpointer user_data);

/* Any thread, once per suspend(). Never runs the resumption here (the
 * caller may be inside an engine call on the serving thread): it is
 * queued in the SoupServer's context. */
static void
soup_resume (EngineIOHostRequest *request)
{
  EngineIOSoupRequest *sr = (EngineIOSoupRequest *) request;
  GSource *source;

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_name (source, "[engineio] soup resume");
  g_source_set_callback (source, resumed_cb, g_object_ref (sr), g_object_unref);
  g_source_attach (source, sr->context);
  g_source_unref (source);
}

static void
read_extra (GIOStream  *stream,
            GByteArray *extra)
{
  GInputStream *input = g_io_stream_get_input_stream (stream);
  guint8 buffer[4096];

  if (!G_IS_POLLABLE_INPUT_STREAM (input) ||
      !g_pollable_input_stream_can_poll (G_POLLABLE_INPUT_STREAM (input)))
    return;
  while (extra->len < MAX_EXTRA_IN)
    {
      gssize n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (input), buffer,
                                                           MIN (sizeof buffer, MAX_EXTRA_IN - extra->len),
                                                           NULL, NULL);
      if (n <= 0)
        break;
      g_byte_array_append (extra, buffer, (guint) n);
    }
}

/* The 101 is written: the connection becomes the session's. */
static void
wrote_informational_cb (SoupServerMessage *msg,
                        gpointer           user_data)
{
  EngineIOSoupRequest *sr = user_data;
  g_autoptr(GSocket) gsocket = NULL;
  g_autoptr(GByteArray) extra = NULL;
  g_autoptr(GBytes) extra_bytes = NULL;
  GIOStream *stream;
  GSocket *session_socket = NULL;

  if (sr->finished || soup_server_message_get_status (msg) != SOUP_STATUS_SWITCHING_PROTOCOLS ||
      !sr->upgrading)
    return;
  g_signal_handlers_disconnect_by_func (msg, wrote_informational_cb, sr);
  g_object_ref (sr);
  if (soup_server_message_get_socket (msg) != NULL)
    gsocket = g_object_ref (soup_server_message_get_socket (msg));
  sr->stealing = TRUE;
  stream = soup_server_message_steal_connection (msg);
  sr->stealing = FALSE;
  if (stream != NULL)
    {
      extra = g_byte_array_new ();
      read_extra (stream, extra);
      if (sr->relayed || gsocket == NULL)
        session_socket = engine_io_soup_relay_start (sr->context, sr->attach->connection_timeout, stream, gsocket);
      else
        session_socket = engine_io_soup_take_socket (stream, gsocket);
    }
  if (session_socket == NULL)
    {
      if (stream != NULL)
        g_io_stream_close (stream, NULL, NULL);
      g_clear_object (&stream);
      if (gsocket != NULL)
        g_socket_close (gsocket, NULL);
      sr->upgrading = FALSE;
      request_done (sr, FALSE);  /* the session's upgrade fails */
      g_object_unref (sr);
      return;
    }
  if (sr->relayed || gsocket == NULL)
    g_object_unref (stream);  /* the relay's now */
  /* (engine_io_soup_take_socket() dropped the stream.) */
  if (extra->len > 0)
    extra_bytes = g_bytes_new (extra->data, extra->len);
  sr->upgrading = FALSE;
  engine_io_host_request_attach_connection (HOST (sr), session_socket, extra_bytes);
  /* libsoup reports nothing more for a stolen message. */
  request_done (sr, TRUE);
  g_object_unref (sr);
}

static gboolean
soup_upgrade (EngineIOHostRequest *request,
              const char * const  *headers)
{
  EngineIOSoupRequest *sr = (EngineIOSoupRequest *) request;
  SoupMessageHeaders *response_headers = soup_server_message_get_response_headers (sr->msg);

  /* No upgrade within HTTP/2 (its connection cannot be taken; nghttp2
   * refuses Upgrade headers there anyway), nor once libsoup is done with
   * the message: the engine answers 400. */
  if (sr->finished || soup_server_message_get_http_version (sr->msg) >= SOUP_HTTP_2_0)
    return FALSE;
  /* Not the `Connection: close` of soup_request_new(). */
  soup_message_headers_remove (response_headers, "Connection");
  for (gsize i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
    soup_message_headers_append (response_headers, headers[i], headers[i + 1]);
  soup_server_message_set_status (sr->msg, SOUP_STATUS_SWITCHING_PROTOCOLS, NULL);
  sr->responded = TRUE;
  sr->status = SOUP_STATUS_SWITCHING_PROTOCOLS;
  sr->upgrading = TRUE;
  g_signal_connect (sr->msg, "wrote-informational", G_CALLBACK (wrote_informational_cb), sr);
  return TRUE;
}

/* Serving thread: a resumption comes in. */
static gboolean
resumed_cb (gpointer user_data)
{
  EngineIOSoupRequest *sr = user_data;

  stop_gone_watch (sr);
  sr->paused = FALSE;
  /* A client that closed the connection while the request was held: a
   * waiting poll gets no answer (its session ends, `transport close`,
   * and what would have been written stays unsent, reported so). */
  if (!sr->finished && closed_by_peer (sr))
    engine_io_host_request_client_gone (HOST (sr));
  engine_io_host_request_resumed (HOST (sr));

  if (sr->finished)
    {
      /* libsoup was done with the message while the engine held it
       * (request_done()): over now, unless held again. */
      if (!sr->paused)
        engine_io_host_request_finished (HOST (sr), FALSE);
      return G_SOURCE_REMOVE;
    }
  if (!sr->responded && !sr->paused)
    {
      /* No answer (the client is gone): the connection is shut down. */
      sr->responded = TRUE;
      kill_connection (sr);
      soup_server_message_set_status (sr->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
    }
  /* Unless the engine held it again. */
  if (!sr->paused)
    soup_server_message_unpause (sr->msg);
  return G_SOURCE_REMOVE;
}

/* Serving thread: the request is over for libsoup (written, aborted, or
 * switched). */
static void
request_done (EngineIOSoupRequest *sr,
              gboolean             completed)
{
  SoupServerMessage *msg = sr->msg;

  if (sr->finished)
    return;
  sr->finished = TRUE;
  stop_gone_watch (sr);
  stop_body_deadline (sr);
  g_signal_handlers_disconnect_by_data (msg, sr);
  if (sr->paused)
    {
      /* The engine holds the request (and a reference on it): it lets go
       * once resumed (resumed_cb() finishes it). */
      engine_io_host_request_client_gone (HOST (sr));
    }
  else
    engine_io_host_request_finished (HOST (sr), completed);
  /* The message's reference. */
  g_object_set_qdata (G_OBJECT (msg), request_quark (), NULL);
}

static void
wrote_body_cb (SoupServerMessage *msg,
               gpointer           user_data)
{
  EngineIOSoupRequest *sr = user_data;

  sr->wrote_body = TRUE;
}

static void
finished_cb (SoupServerMessage *msg,
             gpointer           user_data)
{
  EngineIOSoupRequest *sr = user_data;

  if (!sr->wrote_body || soup_server_message_get_status (msg) >= 400)
    g_debug ("soup: %s request ended with status %u%s",
             engine_io_host_request_get_method (HOST (sr)),
             soup_server_message_get_status (msg), sr->wrote_body ? "" : " (not written)");
  request_done (sr, sr->wrote_body && !sr->killed);
}

/* The connection went away without the message finishing (the
 * SoupServer disconnected it, say). */
static void
disconnected_cb (SoupServerMessage *msg,
                 gpointer           user_data)
{
  EngineIOSoupRequest *sr = user_data;

  if (!sr->stealing)
    request_done (sr, FALSE);
}

static void
got_chunk_cb (SoupServerMessage *msg,
              GBytes            *chunk,
              gpointer           user_data)
{
  EngineIOSoupRequest *sr = user_data;
  gsize size = g_bytes_get_size (chunk);

  if (sr->finished || sr->killed)
    return;

  if (sr->reading)
    {
      sr->body_length += size;
      if (engine_io_host_request_add_body (HOST (sr), g_bytes_get_data (chunk, NULL), size))
        return;
      /* Answered: past max-payload (413), or the session of the POST
       * ended (400, code 1). The rest of the body is dropped; the answer
       * goes out at its end (libsoup writes it only then). */
      sr->reading = FALSE;
      if (sr->status == SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE)
        return;
      sr->orphaned = TRUE;
      sr->dropped = sr->body_length - size;
    }

  sr->dropped += size;
  if (sr->orphaned)
    {
      /* No more than a POST may carry. */
      if (sr->dropped > sr->attach->max_payload)
        {
          g_debug ("soup: closing a POST for an ended session whose body goes on past max-payload");
          abort_connection (sr);
        }
    }
  else if (sr->dropped > MAX_DROPPED_BODY)
    {
      /* Past max-payload, or a body of a request answered at its head:
       * read to its end for the answer, but not without end. */
      g_debug ("soup: closing a connection whose unwanted body goes on past %d bytes",
               MAX_DROPPED_BODY);
      abort_connection (sr);
    }
}

/* Request objects */

static void
engine_io_soup_request_init (EngineIOSoupRequest *sr)
{
}

static void
engine_io_soup_request_finalize (GObject *object)
{
  EngineIOSoupRequest *sr = (EngineIOSoupRequest *) object;

  g_warn_if_fail (sr->gone_watch == NULL);
  g_warn_if_fail (sr->body_deadline == NULL);
  g_clear_object (&sr->msg);
  g_clear_object (&sr->gsocket);
  g_clear_pointer (&sr->context, g_main_context_unref);
  g_clear_pointer (&sr->attach, attach_unref);

  G_OBJECT_CLASS (engine_io_soup_request_parent_class)->finalize (object);
}

static void
engine_io_soup_request_class_init (EngineIOSoupRequestClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  EngineIOHostRequestClass *host_class = ENGINE_IO_HOST_REQUEST_CLASS (klass);

  object_class->finalize = engine_io_soup_request_finalize;
  host_class->respond = soup_respond;
  host_class->suspend = soup_suspend;
  host_class->resume = soup_resume;
  host_class->upgrade = soup_upgrade;
}

typedef struct
{
  EngineIOHostRequest *request;
  const char          *content_length;  /* the last one */
  gboolean             chunked;         /* a Transfer-Encoding */
} HeadScan;

static void
add_header (const char *name,
            const char *value,
            gpointer    user_data)
{
  HeadScan *scan = user_data;

  if (value == NULL)
    value = "";
  engine_io_host_request_add_header (scan->request, name, value);
  if (g_ascii_strcasecmp (name, "Content-Length") == 0)
    scan->content_length = value;
  else if (g_ascii_strcasecmp (name, "Transfer-Encoding") == 0)
    scan->chunked = TRUE;
}

/* Whether the running libsoup keeps idle keep-alive connections whose
 * clients went away (before 3.3: see soup_request_new()). */
static gboolean
soup_leaks_idle_connections (void)
{
  return soup_get_major_version () == 3 && soup_get_minor_version () < 3;
}

/* Its Content-Length (-1: none); whether it has a Transfer-Encoding. */
static EngineIOSoupRequest *
soup_request_new (SoupAttach        *attach,
                  SoupServerMessage *msg,
                  gint64            *content_length,
                  gboolean          *chunked)
{
  EngineIOSoupRequest *sr;
  GUri *uri = soup_server_message_get_uri (msg);
  gboolean tls = g_strcmp0 (g_uri_get_scheme (uri), "https") == 0;
  const char *host = soup_server_message_get_remote_host (msg);
  const char *path = g_uri_get_path (uri);
  const char *query = g_uri_get_query (uri);
  g_autofree char *own_path = NULL;
  const char *mark;
  GSocket *gsocket = soup_server_message_get_socket (msg);
  HeadScan scan = { NULL, NULL, FALSE };

  /* An HTTP/1.0 request without Host: libsoup (3.2) makes the whole
   * request-target the URI's path, query included. A request-target's
   * path has no '?' of its own: the query starts there. */
  if (query == NULL && (mark = strchr (path, '?')) != NULL)
    {
      path = own_path = g_strndup (path, (gsize) (mark - path));
      query = mark + 1;
    }
  sr = g_object_new (engine_io_soup_request_get_type (),
                     "method", soup_server_message_get_method (msg),
                     "path", path,
                     "remote-address", host != NULL ? host : "",
                     NULL);
  sr->attach = attach_ref (attach);
  sr->msg = g_object_ref (msg);
  /* The context dispatching libsoup's source for this message. */
  sr->context = g_main_current_source () != NULL
                  ? g_main_context_ref (g_source_get_context (g_main_current_source ()))
                  : g_main_context_ref_thread_default ();
  /* Without a socket (a stream given to soup_server_accept_iostream())
   * there is no descriptor to hand over either. */
  sr->gsocket = gsocket != NULL ? g_object_ref (gsocket) : NULL;
  /* Over TLS (or without a descriptor) a WebSocket is relayed. */
  sr->relayed = tls || gsocket == NULL;
  /* libsoup before 3.3 keeps, for as long as the SoupServer runs, every
   * idle keep-alive connection whose client goes away (upstream
   * d20c6601, "server: do not leak idle connections closed by the
   * client"): one descriptor per visit, for any client to take (open a
   * connection, send a poll, read the answer, leave; a thousand times).
   * There, each of the engine's answers closes its connection, over TLS
   * and plain HTTP alike (an upgrade's 101 replaces this header): no
   * keep-alive or pipelining to the engine's path on such a libsoup, a
   * TCP connection (and over TLS a handshake) per long-poll and POST. */
  if (soup_leaks_idle_connections ())
    soup_message_headers_replace (soup_server_message_get_response_headers (msg),
                                  "Connection", "close");

  scan.request = HOST (sr);
  soup_message_headers_foreach (soup_server_message_get_request_headers (msg), add_header, &scan);
  if (query != NULL)
    engine_io_host_request_add_query_string (HOST (sr), query);
  *content_length = -1;
  if (scan.content_length != NULL)
    {
      guint64 n;

      if (g_ascii_string_to_unsigned (scan.content_length, 10, 0, G_MAXUINT64, &n, NULL))
        *content_length = (gint64) MIN (n, (guint64) G_MAXINT64);
    }
  *chunked = scan.chunked;
  engine_io_host_request_set_content_length (HOST (sr), *content_length);

  /* The message's reference, until it is finished. */
  g_object_set_qdata_full (G_OBJECT (msg), request_quark (), sr, g_object_unref);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (got_chunk_cb), sr);
  g_signal_connect (msg, "wrote-body", G_CALLBACK (wrote_body_cb), sr);
  g_signal_connect (msg, "finished", G_CALLBACK (finished_cb), sr);
  g_signal_connect (msg, "disconnected", G_CALLBACK (disconnected_cb), sr);
  /* The body is ours to keep (or not): never accumulated by libsoup. */
  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  return sr;
}

/* Hands the request to the engine. */
static void
hand_over (EngineIOSoupRequest *sr)
{
  sr->handed = TRUE;
  sr->reading = engine_io_server_handle_host_request (sr->attach->server, HOST (sr));
}

static void
respond_plain (EngineIOSoupRequest *sr,
               guint                status,
               const char          *text)
{
  soup_server_message_set_response (sr->msg, "text/plain; charset=UTF-8", SOUP_MEMORY_STATIC,
                                    text, strlen (text));
  soup_server_message_set_status (sr->msg, status, NULL);
  sr->responded = TRUE;
}

/* A request body not in within connection-timeout of its head (a body
 * trickled in to hold the connection and up to max-payload of memory):
 * the connection is closed, as engineio-http.c's watcher does.
 * libsoup itself has no such timeout. */
static gboolean
body_deadline_cb (gpointer user_data)
{
  EngineIOSoupRequest *sr = user_data;

  g_clear_pointer (&sr->body_deadline, g_source_unref);
  if (!sr->finished && !sr->killed)
    {
      g_debug ("soup: closing a connection whose request body did not arrive in time");
      abort_connection (sr);
    }
  return G_SOURCE_REMOVE;
}

static void
got_body_cb (SoupServerMessage *msg,
             gpointer           user_data)
{
  stop_body_deadline (user_data);
}

/* The head is in (libsoup's got-headers). */
static void
early_handler (SoupServer        *soup_server,
               SoupServerMessage *msg,
               const char        *path,
               GHashTable        *query,
               gpointer           user_data)
{
  SoupAttach *attach = user_data;
  EngineIOSoupRequest *sr;
  gint64 content_length;
  gboolean chunked;

  if (g_object_get_qdata (G_OBJECT (msg), request_quark ()) != NULL)
    return;
  sr = soup_request_new (attach, msg, &content_length, &chunked);
  /* Every body (a GET may have one too) has connection-timeout. */
  if (content_length > 0 || chunked)
    {
      /* Not g_timeout_source_new_seconds(): that one may fire up to a
       * second early. */
      sr->body_deadline = g_timeout_source_new (MAX (1, MIN (attach->connection_timeout, 86400u)) * 1000u);
      g_source_set_name (sr->body_deadline, "[engineio] soup body deadline");
      g_source_set_callback (sr->body_deadline, body_deadline_cb, sr, NULL);
      g_source_attach (sr->body_deadline, sr->context);
      g_signal_connect (msg, "got-body", G_CALLBACK (got_body_cb), sr);
    }

  /* A POST is handed over now, at its head: overlapping POSTs are
   * detected and an oversized Content-Length refused before its body is
   * read (the engine answers other paths 404). Anything else once its
   * (empty) body is read. */
  if (strcmp (engine_io_host_request_get_method (HOST (sr)), "POST") == 0)
    {
      hand_over (sr);
      sr->head_answered = sr->responded;
    }
  else
    sr->deferred = TRUE;
}

/* Whether the request's query has a `sid` (libsoup's reading of it). */
static gboolean
has_sid (SoupServerMessage *msg)
{
  GUri *uri = soup_server_message_get_uri (msg);
  const char *query = g_uri_get_query (uri);
  g_autoptr(GHashTable) form = NULL;

  if (query == NULL && (query = strchr (g_uri_get_path (uri), '?')) != NULL)
    query++;
  if (query == NULL)
    return FALSE;
  form = soup_form_decode (query);
  return g_hash_table_contains (form, "sid");
}

/* The body is read (libsoup's got-body), and no status was set yet. */
static void
handler (SoupServer        *soup_server,
         SoupServerMessage *msg,
         const char        *path,
         GHashTable        *query,
         gpointer           user_data)
{
  EngineIOSoupRequest *sr = g_object_get_qdata (G_OBJECT (msg), request_quark ());

  if (sr == NULL)
    {
      /* No early handler ran (another early handler took the head). */
      early_handler (soup_server, msg, path, query, user_data);
      sr = g_object_get_qdata (G_OBJECT (msg), request_quark ());
      if (sr == NULL || sr->responded || sr->paused)
        return;
      if (sr->reading)
        {
          /* libsoup read the body before we saw the request. */
          g_autoptr(GBytes) whole = soup_message_body_flatten (soup_server_message_get_request_body (msg));
          gsize size;
          gconstpointer data = g_bytes_get_data (whole, &size);

          sr->reading = engine_io_host_request_add_body (HOST (sr), data, size);
        }
    }
  if (sr->killed)
    return;

  if (sr->deferred)
    {
      sr->deferred = FALSE;
      /* A poll whose client closed the connection before it was handled:
       * no answer, as for a waiting poll whose client goes. */
      if (strcmp (engine_io_host_request_get_method (HOST (sr)), "GET") == 0 &&
          closed_by_peer (sr) && has_sid (msg))
        {
          engine_io_host_request_client_gone (HOST (sr));
          hand_over (sr);
          sr->responded = TRUE;
          kill_connection (sr);
          soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
          return;
        }
      hand_over (sr);
      if (sr->reading)
        g_warn_if_reached ();  /* only POSTs read a body */
    }
  else if (sr->reading)
    {
      sr->reading = FALSE;
      engine_io_host_request_end_body (HOST (sr));
    }

  if (!sr->responded && !sr->paused && !sr->finished)
    {
      /* The engine neither answered nor held it: a bug, but never hang. */
      g_warning ("A request was neither answered nor suspended (answered 500)");
      respond_plain (sr, SOUP_STATUS_INTERNAL_SERVER_ERROR, "Internal error");
    }
}

/* Public API */

static char *
attach_key (EngineIOServer *server)
{
  return g_strdup_printf ("engineio-soup-attach-%p", (void *) server);
}

/* "/engine.io/" -> "/engine.io" (libsoup matches a handler's path and
 * everything below it). */
static char *
handler_path (const char *path)
{
  gsize len = strlen (path);

  while (len > 1 && path[len - 1] == '/')
    len--;
  return g_strndup (path, len);
}

/**
 * engine_io_server_attach_soup:
 * @server: an #EngineIOServer, not listening on its own
 * @soup_server: the libsoup 3 server to host it
 * @path: (nullable): where to mount it: %NULL or the server's
 *   #EngineIOServer:path (with or without its trailing `/`)
 * @error: return location for a #GError
 *
 * Hosts the engine in @soup_server, instead of (or besides) the
 * libmicrohttpd daemon of engine_io_server_listen(): a handler (and an
 * early handler) for @path, and for #EngineIOServer:metrics-path if set,
 * is added to @soup_server. Listening is the application's: call
 * soup_server_listen() or its variants as usual.
 *
 * The server starts here (if it had not): its properties are frozen
 * from now on, and an invalid configuration is reported in @error.
 * @soup_server keeps a reference on @server until
 * engine_io_server_detach_soup() or until @soup_server is finalized.
 *
 * Call it, and engine_io_server_detach_soup(), in the thread whose
 * thread-default #GMainContext @soup_server dispatches its requests in
 * (the context that was thread-default when it started listening). The
 * engine serves its requests in that context: they never run application
 * code (signals and hooks are emitted in #EngineIOServer:callback-context
 * as always) and never wait on another thread there, except when the
 * server is closed (see engine_io_server_close()), which waits for its
 * requests' responses to be written for up to 2 seconds: with a
 * SoupServer dispatching in the context that closes the server, prefer
 * engine_io_server_close_async().
 *
 * Polling requests wait (a long poll) by pausing their #SoupServerMessage;
 * a waiting poll whose client closes its connection ends its session
 * (`transport close`) at once. POST bodies are never accumulated by
 * libsoup: #EngineIOServer:max-payload is checked against Content-Length
 * at the request's head (413 before its body is read) and as chunks come.
 *
 * WebSocket: an upgrade is answered `101` and the connection is stolen
 * from @soup_server (soup_server_message_steal_connection()) once the
 * `101` is written. Over TLS (a #SoupServer with a #SoupServer:tls-certificate)
 * the stolen TLS stream is relayed to the session through a socketpair by
 * g_io_stream_splice_async() in @soup_server's context (which also does
 * the encryption); the relay ends with either side, and is closed
 * #EngineIOServer:connection-timeout after its session ended if its
 * client reads nothing.
 *
 * libsoup has no request or idle timeouts of its own: here
 * #EngineIOServer:connection-timeout bounds only the time a request body
 * (a POST's) may take after its head (the connection is closed
 * then); request heads and idle keep-alive connections are the
 * SoupServer's (unbounded), and so is the number of its connections (the
 * descriptor budget of #EngineIOServer:fd-reserve does not count them).
 *
 * Returns: %TRUE on success; %FALSE with @error set if the server could not
 *   start, is already attached to @soup_server, or @path is not its path
 */
gboolean
engine_io_server_attach_soup (EngineIOServer  *server,
                              SoupServer      *soup_server,
                              const char      *path,
                              GError         **error)
{
  g_autofree char *key = NULL;
  g_autofree char *server_path = NULL;
  g_autofree char *metrics_path = NULL;
  g_autofree char *wanted = NULL;
  g_autofree char *own = NULL;
  SoupAttach *attach;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (server), FALSE);
  g_return_val_if_fail (SOUP_IS_SERVER (soup_server), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  key = attach_key (server);
  if (g_object_get_data (G_OBJECT (soup_server), key) != NULL)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "The server is already attached to this SoupServer");
      return FALSE;
    }
  g_object_get (server, "path", &server_path, "metrics-path", &metrics_path, NULL);
  own = handler_path (server_path != NULL ? server_path : "/engine.io/");
  if (path != NULL)
    {
      wanted = handler_path (path);
      if (strcmp (wanted, own) != 0)
        {
          g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                       "“%s” is not the server's path (property “path” is “%s”)",
                       path, server_path);
          return FALSE;
        }
    }
  if (!engine_io_server_start (server, error))
    return FALSE;

  attach = g_new0 (SoupAttach, 1);
  g_atomic_ref_count_init (&attach->ref_count);
  attach->server = g_object_ref (server);
  g_object_get (server, "max-payload", &attach->max_payload,
                "connection-timeout", &attach->connection_timeout, NULL);
  attach->path = g_steal_pointer (&own);
  if (metrics_path != NULL && metrics_path[0] == '/' &&
      !g_str_has_prefix (metrics_path, attach->path))
    attach->metrics_path = g_steal_pointer (&metrics_path);

  soup_server_add_early_handler (soup_server, attach->path, early_handler,
                                 attach_ref (attach), attach_unref);
  soup_server_add_handler (soup_server, attach->path, handler, attach_ref (attach), attach_unref);
  if (attach->metrics_path != NULL)
    {
      soup_server_add_early_handler (soup_server, attach->metrics_path, early_handler,
                                     attach_ref (attach), attach_unref);
      soup_server_add_handler (soup_server, attach->metrics_path, handler,
                               attach_ref (attach), attach_unref);
    }
  /* The record's reference (attach's own). */
  g_object_set_data_full (G_OBJECT (soup_server), key, attach, attach_unref);
  return TRUE;
}

/**
 * engine_io_server_detach_soup:
 * @server: an #EngineIOServer attached to @soup_server
 * @soup_server: the libsoup 3 server hosting it
 *
 * Removes the handlers engine_io_server_attach_soup() added: new requests
 * on the path get what @soup_server answers for unknown paths (404).
 * Requests already begun go on to their end (a waiting poll is answered
 * by its session as usual), and WebSocket connections already upgraded
 * stay with their sessions: close the server (engine_io_server_close())
 * to end them. Does nothing if @server is not attached to @soup_server.
 *
 * Call in the thread whose thread-default context @soup_server dispatches
 * in.
 */
void
engine_io_server_detach_soup (EngineIOServer *server,
                              SoupServer     *soup_server)
{
  g_autofree char *key = NULL;
  SoupAttach *attach;

  g_return_if_fail (ENGINE_IO_IS_SERVER (server));
  g_return_if_fail (SOUP_IS_SERVER (soup_server));

  key = attach_key (server);
  attach = g_object_get_data (G_OBJECT (soup_server), key);
  if (attach == NULL)
    return;
  soup_server_remove_handler (soup_server, attach->path);
  if (attach->metrics_path != NULL)
    soup_server_remove_handler (soup_server, attach->metrics_path);
  g_object_set_data (G_OBJECT (soup_server), key, NULL);
}
