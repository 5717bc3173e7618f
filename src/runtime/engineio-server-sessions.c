/* engineio-server-sessions.c: the session table: lookups, the open
 * sessions, broadcasts
 *
 * What the public functions on the sessions do (engineio-server.c has
 * them, with their checks: the server's files below it call none of its
 * functions, its type's included).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"
#include "engineio-packet-private.h"

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

/* Any thread: the open sessions, each with a new ref (the array's free
 * function drops them). */
GPtrArray *
engine_io_server_list_sockets (EngineIOServer *self)
{
  GPtrArray *sockets;
  GHashTableIter iter;
  gpointer value;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  sockets = g_ptr_array_new_full (g_hash_table_size (self->sockets), g_object_unref);
  g_hash_table_iter_init (&iter, self->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  ENGINE_IO_UNLOCK (&self->lock);

  return sockets;
}

/* Any thread. */
guint
engine_io_server_count_sockets (EngineIOServer *self)
{
  guint n;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  n = g_hash_table_size (self->sockets);
  ENGINE_IO_UNLOCK (&self->lock);

  return n;
}

/* Any thread: queues @packet (a message) to every open socket but
 * @except, in one order for concurrent broadcasts (engine_io_server_broadcast_packet()). */
guint
engine_io_server_broadcast (EngineIOServer *self,
                            EngineIOPacket *packet,
                            EngineIOSocket *except)
{
  g_autoptr(GPtrArray) sockets = NULL;
  guint queued = 0;

  ENGINE_IO_LOCK (&self->broadcast_lock, BROADCAST);
  sockets = engine_io_server_list_sockets (self);
  for (guint i = 0; i < sockets->len; i++)
    {
      EngineIOSocket *socket = g_ptr_array_index (sockets, i);

      if (socket != except && engine_io_socket_send_packet (socket, packet, NULL))
        queued++;
    }
  ENGINE_IO_UNLOCK (&self->broadcast_lock);
  return queued;
}
