/* socketio-redis-emitter.h: emits into a Socket.IO cluster through Redis,
 * from a process that serves no clients (npm @socket.io/redis-emitter 5.x)
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

/* Built when the library was configured with hiredis and msgpack-c (the
 * `redis` feature); included by <socketio/socketio-redis.h>, not by
 * <socketio/socketio.h>. */
#include <socketio/socketio.h>

G_BEGIN_DECLS

#define SOCKET_IO_TYPE_REDIS_EMITTER (socket_io_redis_emitter_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIORedisEmitter, socket_io_redis_emitter, SOCKET_IO, REDIS_EMITTER, GObject)

SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_new                (const char            *url,
                                                                  const char            *key,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_connect            (SocketIORedisEmitter  *self,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
void                  socket_io_redis_emitter_set_timeout        (SocketIORedisEmitter  *self,
                                                                  guint                  timeout_ms);
SOCKET_IO_AVAILABLE_IN_ALL
guint                 socket_io_redis_emitter_get_timeout        (SocketIORedisEmitter  *self);
SOCKET_IO_AVAILABLE_IN_ALL
const char           *socket_io_redis_emitter_get_namespace      (SocketIORedisEmitter  *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_of                 (SocketIORedisEmitter  *self,
                                                                  const char            *nsp);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_to                 (SocketIORedisEmitter  *self,
                                                                  const char            *room);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_in                 (SocketIORedisEmitter  *self,
                                                                  const char            *room);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_except             (SocketIORedisEmitter  *self,
                                                                  const char            *room);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_volatile           (SocketIORedisEmitter  *self);
SOCKET_IO_AVAILABLE_IN_ALL
SocketIORedisEmitter *socket_io_redis_emitter_compress           (SocketIORedisEmitter  *self,
                                                                  gboolean               compress);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_emit               (SocketIORedisEmitter  *self,
                                                                  const char            *name,
                                                                  JsonArray             *args,
                                                                  GPtrArray             *attachments,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_sockets_join       (SocketIORedisEmitter  *self,
                                                                  const char * const    *rooms,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_sockets_leave      (SocketIORedisEmitter  *self,
                                                                  const char * const    *rooms,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_disconnect_sockets (SocketIORedisEmitter  *self,
                                                                  gboolean               close_transport,
                                                                  GError               **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean              socket_io_redis_emitter_server_side_emit   (SocketIORedisEmitter  *self,
                                                                  JsonArray             *args,
                                                                  GError               **error);

G_END_DECLS
