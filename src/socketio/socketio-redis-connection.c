/* socketio-redis-connection.c: the Redis adapter's thread and connections
 *
 * The thread running the adapter's GMainContext, hiredis's two async
 * connections (publishing, subscribed), their reconnection with backoff,
 * and the subscription's messages handed to socketio-redis-requests.c.
 * Redis thread only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-redis-adapter-internal.h"

#include <string.h>

static void conn_start (RedisConn *conn);

/* ------------------------------------------------------------------ */
/* Connections (Redis thread)                                           */
/* ------------------------------------------------------------------ */

static void
update_connected (SocketIORedisAdapter *self)
{
  g_atomic_int_set (&self->connected, self->pub.ready && self->sub.ready);
}

static void
on_subscription (redisAsyncContext *ac,
                 void              *r,
                 void              *privdata)
{
  SocketIORedisAdapter *self = privdata;
  redisReply *reply = r;
  const char *kind;

  if (self->stopping)
    return;   /* disposed on this thread: its namespace is gone */
  if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING)
    return;
  kind = reply->element[0]->str;
  if (strcmp (kind, "pmessage") == 0 && reply->elements == 4 &&
      reply->element[2]->type == REDIS_REPLY_STRING && reply->element[3]->type == REDIS_REPLY_STRING)
    socket_io_redis_on_broadcast_message (self, reply->element[2]->str, reply->element[3]->str, reply->element[3]->len);
  else if (strcmp (kind, "message") == 0 &&
           reply->element[1]->type == REDIS_REPLY_STRING && reply->element[2]->type == REDIS_REPLY_STRING)
    {
      const char *channel = reply->element[1]->str;

      if (strcmp (channel, self->request_channel) == 0)
        socket_io_redis_on_request (self, reply->element[2]->str, reply->element[2]->len);
      else if (strcmp (channel, self->response_channel) == 0 ||
               strcmp (channel, self->specific_channel) == 0)
        socket_io_redis_on_response (self, reply->element[2]->str, reply->element[2]->len);
    }
  else if (strcmp (kind, "subscribe") == 0 || strcmp (kind, "psubscribe") == 0)
    {
      RedisConn *conn = &self->sub;

      /* Ready once the last of the four subscriptions is confirmed. */
      if (reply->element[2]->type == REDIS_REPLY_INTEGER && reply->element[2]->integer == 4)
        {
          conn->ready = TRUE;
          conn->backoff_ms = 0;
          update_connected (self);
          g_info ("Redis adapter %s: subscribed to %s*", self->uid, self->channel);
        }
    }
}

static void
on_select (redisAsyncContext *ac,
           void              *r,
           void              *privdata)
{
  RedisConn *conn = privdata;
  redisReply *reply = r;

  if (reply != NULL && reply->type != REDIS_REPLY_ERROR)
    {
      conn->ready = TRUE;
      conn->backoff_ms = 0;
      update_connected (conn->self);
    }
  else if (reply != NULL && conn->ac != NULL)
    {
      g_warning ("Redis adapter %s: SELECT %d: %s", conn->self->uid, conn->self->db, reply->str);
      redisAsyncDisconnect (conn->ac);
    }
}

static gboolean
on_reconnect_timer (gpointer data)
{
  RedisConn *conn = data;

  g_clear_pointer (&conn->timer, g_source_unref);
  conn_start (conn);
  return G_SOURCE_REMOVE;
}

static void
conn_lost (RedisConn *conn)
{
  SocketIORedisAdapter *self = conn->self;

  conn->ac = NULL;
  conn->ready = FALSE;
  update_connected (self);
  if (self->stopping || conn->timer != NULL)
    return;
  conn->backoff_ms = conn->backoff_ms == 0 ? REDIS_BACKOFF_MIN_MS
                                           : MIN (conn->backoff_ms * 2, REDIS_BACKOFF_MAX_MS);
  conn->timer = g_timeout_source_new (g_random_int_range (conn->backoff_ms / 2, conn->backoff_ms + 1));
  g_source_set_callback (conn->timer, on_reconnect_timer, conn, NULL);
  g_source_attach (conn->timer, self->context);
}

static void
on_connect (const redisAsyncContext *ac,
            int                      status)
{
  RedisConn *conn = ac->data;
  SocketIORedisAdapter *self = conn->self;

  if (status != REDIS_OK)
    {
      g_debug ("Redis adapter %s: cannot connect to %s:%d: %s", self->uid, self->host, self->port,
               ac->errstr);
      conn_lost (conn);   /* hiredis frees @ac after this */
      return;
    }
  if (conn->subscriber)
    {
      g_autofree char *pattern = g_strconcat (self->channel, "*", NULL);

      redisAsyncCommand (conn->ac, on_subscription, self, "PSUBSCRIBE %s", pattern);
      redisAsyncCommand (conn->ac, on_subscription, self, "SUBSCRIBE %s %s %s",
                         self->request_channel, self->response_channel, self->specific_channel);
    }
  else if (self->db != 0)
    redisAsyncCommand (conn->ac, on_select, conn, "SELECT %d", self->db);
  else
    {
      conn->ready = TRUE;
      conn->backoff_ms = 0;
      update_connected (self);
    }
}

static void
on_disconnect (const redisAsyncContext *ac,
               int                      status)
{
  RedisConn *conn = ac->data;

  if (!conn->self->stopping)
    g_warning ("Redis adapter %s: lost %s connection to %s:%d (%s); reconnecting",
               conn->self->uid, conn->subscriber ? "subscriber" : "publisher",
               conn->self->host, conn->self->port, status == REDIS_OK ? "closed" : ac->errstr);
  conn_lost (conn);   /* hiredis frees @ac after this */
}

/* hiredis's cleanup hook, wrapped: the GLib adapter's own cleanup, then
 * the source goes (its dispatch must not go on to read a freed context:
 * after a failed write it would handle a read too). */
static void
conn_source_cleanup (void *data)
{
  RedisSource *source = data;
  RedisConn *conn = source->ac->data;

  redis_source_cleanup (data);
  source->poll_fd.revents = 0;
  g_source_destroy ((GSource *) source);
  if (conn != NULL && conn->source == (GSource *) source)
    conn->source = NULL;
  g_source_unref ((GSource *) source);
}

static void
conn_start (RedisConn *conn)
{
  SocketIORedisAdapter *self = conn->self;
  redisAsyncContext *ac = redisAsyncConnect (self->host, self->port);

  if (ac == NULL || ac->err)
    {
      g_debug ("Redis adapter %s: cannot connect to %s:%d: %s", self->uid, self->host, self->port,
               ac != NULL ? ac->errstr : "out of memory");
      if (ac != NULL)
        redisAsyncFree (ac);
      conn_lost (conn);
      return;
    }
  ac->data = conn;
  conn->ac = ac;
  conn->source = redis_source_new (ac);
  ac->ev.cleanup = conn_source_cleanup;
  g_source_attach (conn->source, self->context);
  redisAsyncSetConnectCallback (ac, on_connect);
  redisAsyncSetDisconnectCallback (ac, on_disconnect);
}

gpointer
socket_io_redis_thread (gpointer data)
{
  SocketIORedisAdapter *self = data;

  g_main_context_push_thread_default (self->context);
  conn_start (&self->pub);
  conn_start (&self->sub);
  g_main_loop_run (self->loop);
  self->stopping = TRUE;
  for (RedisConn *conn = &self->pub; conn <= &self->sub; conn++)
    {
      if (conn->timer != NULL)
        {
          g_source_destroy (conn->timer);
          g_clear_pointer (&conn->timer, g_source_unref);
        }
      if (conn->ac != NULL)
        redisAsyncFree (conn->ac);   /* callbacks get NULL replies: counted */
      conn->ac = NULL;
    }
  /* Requests still waiting: answered with an error, on this thread. */
  g_hash_table_remove_all (self->requests);
  g_main_context_pop_thread_default (self->context);
  if (self->disposed_on_thread)
    g_object_unref (self);   /* the last ref: finalized here */
  return NULL;
}

/* ------------------------------------------------------------------ */
/* GObject                                                              */
/* ------------------------------------------------------------------ */

gboolean
socket_io_redis_quit_loop (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}
