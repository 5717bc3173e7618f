/* engineio-server-sessions.c: the session table: registration, lookups
 * and broadcasts
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"
#include "engineio-packet-private.h"
#include "engineio-error.h"

/* Sessions */

EngineIOSocket *
engine_io_server_find_socket (EngineIOServer *self,
                              const char     *sid)
{
  EngineIOSocket *socket;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  socket = g_hash_table_lookup (self->sockets, sid);
  if (socket != NULL)
    g_object_ref (socket);
  ENGINE_IO_UNLOCK (&self->lock);

  return socket;
}

/* The session closed (its owner's finished(), which engineio-server.c
 * gives every socket): the server forgets it, then frees its max-sessions
 * place (engine_io_server_close() waits for the count). */
void
engine_io_server_socket_finished (EngineIOServer *self,
                                  EngineIOSocket *socket)
{
  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (g_hash_table_lookup (self->sockets, engine_io_socket_get_id (socket)) == socket)
    g_hash_table_remove (self->sockets, engine_io_socket_get_id (socket));
  g_assert (self->live_sessions > 0);
  self->live_sessions--;
  g_cond_broadcast (&self->cond);
  ENGINE_IO_UNLOCK (&self->lock);
}

/**
 * engine_io_server_get_sockets:
 * @self: a server
 *
 * The open sessions, at the time of the call.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer container) (element-type EngineIOSocket): a new array
 *   holding a new reference to each socket; the array's free function drops
 *   them, so g_ptr_array_unref() frees everything. (Annotated `container`,
 *   not `full`: bindings would otherwise unref every element a second time.)
 */
GPtrArray *
engine_io_server_get_sockets (EngineIOServer *self)
{
  GPtrArray *sockets;
  GHashTableIter iter;
  gpointer value;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);

  ENGINE_IO_LOCK (&self->lock, SERVER);
  sockets = g_ptr_array_new_full (g_hash_table_size (self->sockets), g_object_unref);
  g_hash_table_iter_init (&iter, self->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  ENGINE_IO_UNLOCK (&self->lock);

  return sockets;
}

/**
 * engine_io_server_broadcast_packet:
 * @self: a server
 * @packet: a message packet (%ENGINE_IO_PACKET_MESSAGE, text or binary)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @packet to every open socket but @except: one packet shared by
 * all (it is not copied nor validated again per socket). Concurrent
 * broadcasts reach every socket in one order (a socket may still see a
 * direct send between two of them). Sockets that are closing, or whose
 * send queue refuses the packet (#EngineIOServer:backpressure), are
 * skipped without error. Never blocks on I/O.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_packet (EngineIOServer *self,
                                   EngineIOPacket *packet,
                                   EngineIOSocket *except)
{
  g_autoptr(GPtrArray) sockets = NULL;
  guint queued = 0;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (packet != NULL, 0);
  g_return_val_if_fail (engine_io_packet_get_packet_type (packet) == ENGINE_IO_PACKET_MESSAGE, 0);
  g_return_val_if_fail (except == NULL || ENGINE_IO_IS_SOCKET (except), 0);

  ENGINE_IO_LOCK (&self->broadcast_lock, BROADCAST);
  sockets = engine_io_server_get_sockets (self);
  for (guint i = 0; i < sockets->len; i++)
    {
      EngineIOSocket *socket = g_ptr_array_index (sockets, i);

      if (socket != except && engine_io_socket_send_packet (socket, packet, NULL))
        queued++;
    }
  ENGINE_IO_UNLOCK (&self->broadcast_lock);
  return queued;
}

/**
 * engine_io_server_broadcast_text:
 * @self: a server
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @except: (nullable): a socket not to send it to
 * @error: return location for a #GError
 *
 * Validates and copies @text once and queues it to every open socket but
 * @except; see engine_io_server_broadcast_packet(). From Python, @text is
 * a `bytes` (or use the overrides' `Server.broadcast()`).
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8.
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to (0 with @error set on
 *   failure)
 */
guint
engine_io_server_broadcast_text (EngineIOServer  *self,
                                 const char      *text,
                                 gssize           length,
                                 EngineIOSocket  *except,
                                 GError         **error)
{
  g_autoptr(EngineIOPacket) packet = NULL;
  gsize len, bad = 0;
  char *copy;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (text != NULL || length == 0, 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && !engine_io_utf8_validate (text, len, &bad))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Message is not valid UTF-8 (bad byte at offset %" G_GSIZE_FORMAT ")", bad);
      return 0;
    }
  copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, text, len);
  copy[len] = '\0';
  packet = engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, copy, len);
  return engine_io_server_broadcast_packet (self, packet, except);
}

/**
 * engine_io_server_broadcast_binary:
 * @self: a server
 * @data: the binary message (shared, not copied)
 * @except: (nullable): a socket not to send it to
 *
 * Queues @data to every open socket but @except; see
 * engine_io_server_broadcast_packet().
 *
 * Thread-safe: may be called from any thread and any handler.
 *
 * Returns: the number of sockets it was queued to
 */
guint
engine_io_server_broadcast_binary (EngineIOServer *self,
                                   GBytes         *data,
                                   EngineIOSocket *except)
{
  g_autoptr(EngineIOPacket) packet = NULL;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);
  g_return_val_if_fail (data != NULL, 0);

  packet = engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, data);
  return engine_io_server_broadcast_packet (self, packet, except);
}

/**
 * engine_io_server_get_socket_count:
 * @self: a server
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of open sessions
 */
guint
engine_io_server_get_socket_count (EngineIOServer *self)
{
  guint n;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), 0);

  ENGINE_IO_LOCK (&self->lock, SERVER);
  n = g_hash_table_size (self->sockets);
  ENGINE_IO_UNLOCK (&self->lock);

  return n;
}

/**
 * engine_io_server_lookup_socket:
 * @self: a server
 * @sid: a session id
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): the open session with id @sid, or
 *   %NULL
 */
EngineIOSocket *
engine_io_server_lookup_socket (EngineIOServer *self,
                                const char     *sid)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (self), NULL);
  g_return_val_if_fail (sid != NULL, NULL);

  return engine_io_server_find_socket (self, sid);
}

