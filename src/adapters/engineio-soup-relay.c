/* engineio-soup-relay.c: a stolen libsoup connection as the session's socket
 *
 * After a WebSocket upgrade on the libsoup host (engineio-soup.c), the
 * connection leaves libsoup: a plain one as a socket of the session's own
 * (engine_io_soup_take_socket()), one that carries TLS through a relay
 * (engine_io_soup_relay_start()). Nothing here calls back into
 * engineio-soup.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "engineio-soup-private.h"

/* A stolen connection that carries TLS (or has no descriptor of its
 * own): the session gets one end of a socketpair, and the other end is
 * relayed to the stolen stream by g_io_stream_splice_async() in the
 * SoupServer's context. The splice reads one chunk at a time and reads
 * the next only once it is written: a side that does not take more stops
 * the reading of the other (back-pressure), and what is held is the
 * socketpair's buffers and one chunk each way. Either side ending ends
 * both (both streams are closed). The session giving its end back
 * (release_relay(), any thread, once its socket is gone) closes that end; should the relay still
 * be writing to a client that reads nothing then, it is closed
 * connection-timeout later. */
typedef struct
{
  gatomicrefcount  ref_count;  /* the splice's, and the session's until it releases */
  GMainContext    *context;    /* the SoupServer's */
  GIOStream       *client;     /* the stolen stream */
  GSocket         *client_socket; /* NULL: none */
  GIOStream       *local;      /* our end of the socketpair */
  GCancellable    *cancellable;
  GSource         *linger;
  guint            linger_ms;
  gboolean         done;       /* the splice finished */
} Relay;

/* Relays not freed yet (engine_io_soup_live_relays()). */
static guint live_relays;

guint
engine_io_soup_live_relays (void)
{
  return g_atomic_int_get (&live_relays);
}

static Relay *
relay_ref (Relay *relay)
{
  g_atomic_ref_count_inc (&relay->ref_count);
  return relay;
}

/* Both streams closed for good (the splice closed them, or could not). */
static void
relay_close (Relay *relay)
{
  g_cancellable_cancel (relay->cancellable);
  if (relay->client_socket != NULL)
    g_socket_close (relay->client_socket, NULL);
  g_io_stream_close (relay->local, NULL, NULL);
}

static void
relay_unref (gpointer data)
{
  Relay *relay = data;

  if (!g_atomic_ref_count_dec (&relay->ref_count))
    return;
  g_warn_if_fail (relay->linger == NULL);
  relay_close (relay);
  g_object_unref (relay->client);
  g_clear_object (&relay->client_socket);
  g_object_unref (relay->local);
  g_object_unref (relay->cancellable);
  g_main_context_unref (relay->context);
  g_free (relay);
  g_atomic_int_dec_and_test (&live_relays);
}

static void
relay_spliced_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Relay *relay = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_io_stream_splice_finish (result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_debug ("soup: a WebSocket relay ended: %s", error->message);
  relay->done = TRUE;
  if (relay->linger != NULL)
    {
      g_source_destroy (relay->linger);
      g_clear_pointer (&relay->linger, g_source_unref);
    }
  relay_close (relay);
  relay_unref (relay);  /* the splice's */
}

/* The linger's end (fired, or its source destroyed once the splice
 * finished): unless the splice finished, the descriptors are closed. */
static void
relay_linger_done (gpointer data)
{
  Relay *relay = data;

  if (!relay->done)
    relay_close (relay);
  relay_unref (relay);
}

static gboolean
relay_linger_cb (gpointer user_data)
{
  Relay *relay = user_data;

  g_clear_pointer (&relay->linger, g_source_unref);
  if (!relay->done)
    {
      g_debug ("soup: closing a WebSocket relay whose client did not take the end of its session");
      /* The splice's pending operations fail, and it finishes. */
      relay_close (relay);
    }
  return G_SOURCE_REMOVE;
}

/* The SoupServer's context: the session's end is closed. */
static gboolean
relay_released_cb (gpointer user_data)
{
  Relay *relay = user_data;

  if (!relay->done && relay->linger == NULL)
    {
      relay->linger = g_timeout_source_new (relay->linger_ms);
      g_source_set_name (relay->linger, "[engineio] soup relay linger");
      g_source_set_callback (relay->linger, relay_linger_cb, relay_ref (relay), relay_linger_done);
      g_source_attach (relay->linger, relay->context);
    }
  return G_SOURCE_REMOVE;
}


/* The session is done with its end (its GSocket, closed, is finalized;
 * any thread). */
static void
release_relay (gpointer  data,
               GObject  *where_the_socket_was)
{
  Relay *relay = data;

  g_main_context_invoke_full (relay->context, G_PRIORITY_DEFAULT, relay_released_cb,
                              relay, relay_unref);  /* the session's reference */
}

/* The session's end of a new relay for @stream (a socket of its own), or
 * NULL. @context: the SoupServer's; @timeout_s: connection-timeout. */
GSocket *
engine_io_soup_relay_start (GMainContext *context,
                            guint         timeout_s,
                            GIOStream    *stream,
                            GSocket      *gsocket)
{
  int fds[2];
  GSocket *session_socket;
  g_autoptr(GSocket) local_socket = NULL;
  Relay *relay;

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return NULL;
  session_socket = g_socket_new_from_fd (fds[0], NULL);
  if (session_socket == NULL)
    {
      close (fds[0]);
      close (fds[1]);
      return NULL;
    }
  local_socket = g_socket_new_from_fd (fds[1], NULL);
  if (local_socket == NULL)
    {
      g_object_unref (session_socket);  /* closes fds[0] */
      close (fds[1]);
      return NULL;
    }
  relay = g_new0 (Relay, 1);
  g_atomic_int_inc (&live_relays);
  g_atomic_ref_count_init (&relay->ref_count);  /* the session's */
  relay->context = g_main_context_ref (context);
  relay->client = g_object_ref (stream);
  relay->client_socket = gsocket != NULL ? g_object_ref (gsocket) : NULL;
  relay->local = G_IO_STREAM (g_socket_connection_factory_create_connection (local_socket));
  relay->cancellable = g_cancellable_new ();
  relay->linger_ms = MAX (1, MIN (timeout_s, 86400u)) * 1000u;
  /* The session's socket is the session's alone: it closes it and drops
   * it when its WebSocket ends. */
  g_object_weak_ref (G_OBJECT (session_socket), release_relay, relay);
  /* The splice's callbacks in the SoupServer's context. */
  g_main_context_push_thread_default (context);
  g_io_stream_splice_async (relay->client, relay->local,
                            G_IO_STREAM_SPLICE_CLOSE_STREAM1 | G_IO_STREAM_SPLICE_CLOSE_STREAM2,
                            G_PRIORITY_DEFAULT, relay->cancellable, relay_spliced_cb,
                            relay_ref (relay));
  g_main_context_pop_thread_default (context);
  return session_socket;
}

/* A stolen plain connection, as a socket that is the session's alone:
 * its descriptor duplicated, then libsoup's socket closed (no FIN: the
 * duplicate keeps the connection) and its stream dropped. NULL if the
 * descriptor cannot be duplicated. */
GSocket *
engine_io_soup_take_socket (GIOStream *stream,
                            GSocket   *gsocket)
{
  int fd = fcntl (g_socket_get_fd (gsocket), F_DUPFD_CLOEXEC, 0);
  GSocket *own;

  if (fd < 0)
    return NULL;
  own = g_socket_new_from_fd (fd, NULL);
  if (own == NULL)
    {
      close (fd);
      return NULL;
    }
  /* Closed before the stream goes: whatever the stream's close would do
   * (a graceful shutdown) finds it closed. */
  g_socket_close (gsocket, NULL);
  g_object_unref (stream);
  return own;
}
