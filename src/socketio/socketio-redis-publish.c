/* socketio-redis-publish.c: the Redis adapter's publications
 *
 * Handing work to the Redis thread (socket_io_redis_run_on_thread()) and
 * PUBLISHing there, bounded by REDIS_MAX_PENDING_BYTES; failures counted.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-adapter-internal.h"

#include <string.h>

/* Queues @func to the adapter's thread, in order, from any thread (the
 * Redis thread included: then it runs on a later iteration). */
void
socket_io_redis_run_on_thread (SocketIORedisAdapter *self,
                               gint                  priority,
                               GSourceFunc           func,
                               gpointer              data,
                               GDestroyNotify        notify)
{
  GSource *source = g_idle_source_new ();

  g_source_set_priority (source, priority);
  g_source_set_callback (source, func, data, notify);
  g_source_attach (source, self->context);
  g_source_unref (source);
}

/* ------------------------------------------------------------------ */
/* Publishing (any thread -> Redis thread)                              */
/* ------------------------------------------------------------------ */

typedef struct
{
  SocketIORedisAdapter *self;
  char                 *channel;
  GBytes               *payload;  /* until hiredis has copied it */
  gssize                cost;     /* counted in pending_bytes */
} RedisPublish;

/* A GBytes of exactly @size bytes from a buffer that may have more room
 * (msgpack's and GString's grow by doubling): what is counted is what is
 * held. */
GBytes *
socket_io_redis_bytes_take_exact (char  *data,
                                  gsize  size)
{
  if (size == 0)
    {
      g_free (data);
      return g_bytes_new (NULL, 0);
    }
  return g_bytes_new_take (g_realloc (data, size), size);
}

static void
publish_free (gpointer data)
{
  RedisPublish *job = data;

  g_free (job->channel);
  g_clear_pointer (&job->payload, g_bytes_unref);
  g_free (job);
}

void
socket_io_redis_count_failure (SocketIORedisAdapter *self,
                               const char           *channel,
                               const char           *why)
{
  __atomic_add_fetch (&self->publish_failures, 1, __ATOMIC_RELAXED);
  /* One warning per run of failures, then debug lines. */
  if (g_atomic_int_compare_and_exchange (&self->failing, 0, 1))
    g_warning ("Redis adapter %s: could not publish on %s (%s); counting the losses "
               "(socket_io_redis_adapter_get_publish_failures())", self->uid, channel, why);
  else
    g_debug ("Redis adapter %s: could not publish on %s (%s)", self->uid, channel, why);
}

static void
on_published (redisAsyncContext *ac,
              void              *r,
              void              *privdata)
{
  RedisPublish *job = privdata;
  redisReply *reply = r;

  g_atomic_pointer_add (&job->self->pending_bytes, -job->cost);
  if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
    socket_io_redis_count_failure (job->self, job->channel,
                                   reply != NULL ? reply->str : "connection lost");
  else
    g_atomic_int_set (&job->self->failing, 0);
  publish_free (job);
}

/* Redis thread. */
static gboolean
publish_on_thread (gpointer data)
{
  RedisPublish *shell = data;
  RedisPublish *job = g_memdup2 (shell, sizeof *shell);
  SocketIORedisAdapter *self = job->self;
  gsize size;
  const void *bytes = g_bytes_get_data (job->payload, &size);

  /* The shell is freed by the source; hiredis's callback frees the job. */
  shell->channel = NULL;
  shell->payload = NULL;
  if (self->pub.ac == NULL || !self->pub.ready ||
      redisAsyncCommand (self->pub.ac, on_published, job, "PUBLISH %s %b",
                         job->channel, bytes, size) != REDIS_OK)
    {
      g_atomic_pointer_add (&self->pending_bytes, -job->cost);
      socket_io_redis_count_failure (self, job->channel, "not connected");
      publish_free (job);
      return G_SOURCE_REMOVE;
    }
  /* hiredis has the command, payload included, in its output buffer:
   * one copy is held while it waits, not two. */
  g_clear_pointer (&job->payload, g_bytes_unref);
  return G_SOURCE_REMOVE;
}

/* Any thread; takes @payload. */
void
socket_io_redis_publish (SocketIORedisAdapter *self,
                         const char           *channel,
                         GBytes               *payload)
{
  RedisPublish *job;
  gssize size = (gssize) (g_bytes_get_size (payload) + strlen (channel) + REDIS_PUBLISH_OVERHEAD);

  if (!g_atomic_int_get (&self->connected))
    {
      socket_io_redis_count_failure (self, channel, "not connected");
      g_bytes_unref (payload);
      return;
    }
  if (g_atomic_pointer_add (&self->pending_bytes, size) + size > REDIS_MAX_PENDING_BYTES)
    {
      g_atomic_pointer_add (&self->pending_bytes, -size);
      socket_io_redis_count_failure (self, channel, "too many bytes waiting for Redis");
      g_bytes_unref (payload);
      return;
    }
  job = g_new0 (RedisPublish, 1);
  job->self = self;
  job->channel = g_strdup (channel);
  job->payload = payload;
  job->cost = size;
  /* The job is freed without running if the thread stops first. */
  socket_io_redis_run_on_thread (self, G_PRIORITY_DEFAULT, publish_on_thread, job, publish_free);
}

void
socket_io_redis_publish_json (SocketIORedisAdapter *self,
                              const char           *channel,
                              JsonBuilder          *builder)
{
  g_autoptr(JsonNode) root = json_builder_get_root (builder);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  gsize length;
  char *text;

  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, &length);
  socket_io_redis_publish (self, channel, socket_io_redis_bytes_take_exact (text, length));
}
