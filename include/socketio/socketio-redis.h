/* socketio-redis.h: a Redis adapter compatible with @socket.io/redis-adapter 8.x
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

/* Built when the library was configured with hiredis and msgpack-c (the
 * `redis` feature); not included by <socketio/socketio.h>. */
#include <socketio/socketio.h>
#include <socketio/socketio-redis-emitter.h>

G_BEGIN_DECLS

#define SOCKET_IO_TYPE_REDIS_ADAPTER (socket_io_redis_adapter_get_type ())
SOCKET_IO_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (SocketIORedisAdapter, socket_io_redis_adapter, SOCKET_IO, REDIS_ADAPTER, SocketIOAdapter)

SOCKET_IO_AVAILABLE_IN_ALL
SocketIOAdapter *socket_io_redis_adapter_new                  (SocketIONamespace    *nsp,
                                                               const char           *url,
                                                               const char           *key,
                                                               GError              **error);
SOCKET_IO_AVAILABLE_IN_ALL
const char      *socket_io_redis_adapter_get_uid              (SocketIORedisAdapter *self);
SOCKET_IO_AVAILABLE_IN_ALL
guint64          socket_io_redis_adapter_get_publish_failures (SocketIORedisAdapter *self);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean         socket_io_redis_adapter_is_connected         (SocketIORedisAdapter *self);
SOCKET_IO_AVAILABLE_IN_ALL
void             socket_io_redis_adapter_server_count_async   (SocketIORedisAdapter *self,
                                                               GCancellable         *cancellable,
                                                               GAsyncReadyCallback   callback,
                                                               gpointer              user_data);
SOCKET_IO_AVAILABLE_IN_ALL
guint            socket_io_redis_adapter_server_count_finish  (SocketIORedisAdapter *self,
                                                               GAsyncResult         *result,
                                                               GError              **error);
SOCKET_IO_AVAILABLE_IN_ALL
void             socket_io_redis_adapter_fetch_sockets_async  (SocketIORedisAdapter *self,
                                                               const char * const   *rooms,
                                                               const char * const   *except,
                                                               GCancellable         *cancellable,
                                                               GAsyncReadyCallback   callback,
                                                               gpointer              user_data);
SOCKET_IO_AVAILABLE_IN_ALL
JsonArray       *socket_io_redis_adapter_fetch_sockets_finish (SocketIORedisAdapter *self,
                                                               GAsyncResult         *result,
                                                               GError              **error);
SOCKET_IO_AVAILABLE_IN_ALL
gboolean         socket_io_redis_adapter_server_side_emit     (SocketIORedisAdapter *self,
                                                               JsonArray            *args,
                                                               GError              **error);
SOCKET_IO_AVAILABLE_IN_ALL
void             socket_io_redis_adapter_server_side_emit_async (SocketIORedisAdapter *self,
                                                                 JsonArray            *args,
                                                                 GCancellable         *cancellable,
                                                                 GAsyncReadyCallback   callback,
                                                                 gpointer              user_data);
SOCKET_IO_AVAILABLE_IN_ALL
JsonArray       *socket_io_redis_adapter_server_side_emit_finish (SocketIORedisAdapter *self,
                                                                  GAsyncResult         *result,
                                                                  GError              **error);
SOCKET_IO_AVAILABLE_IN_ALL
void             socket_io_redis_adapter_set_requests_timeout (SocketIORedisAdapter *self,
                                                               guint                 timeout_ms);

G_END_DECLS
