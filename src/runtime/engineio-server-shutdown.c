/* engineio-server-shutdown.c: what engine_io_server_close() and
 * engine_io_server_close_async() do and what they wait for
 *
 * The public functions, with their checks, are in engineio-server.c (the
 * server's files below it call none of its functions, its type's
 * included).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"

/* Called with the lock held. Whether every session, handshake and poll is
 * gone. */
static gboolean
sessions_gone_locked (EngineIOServer *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  return self->live_sessions == 0 && self->pending_handshakes == 0 &&
         g_atomic_int_get (&self->suspended) == 0;
}

static gboolean
closed_locked (EngineIOServer *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  return self->closed;
}

/* Called with the lock held; waits until @done or @deadline. With
 * @iterate_external, runs #EngineIOServer:callback-context meanwhile
 * whenever this thread can acquire it (sessions deliver into it, and the
 * thread calling may be the one that iterates it). */
static gboolean
wait_locked (EngineIOServer  *self,
             gboolean       (*done) (EngineIOServer *self),
             gint64           deadline,
             gboolean         iterate_external)
{
  GMainContext *external = iterate_external ? self->callback_context : NULL;

  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);

  while (!done (self))
    {
      if (external != NULL && g_main_context_acquire (external))
        {
          ENGINE_IO_UNLOCK (&self->lock);
          g_main_context_iteration (external, FALSE);
          g_main_context_release (external);
          g_usleep (1000);
          ENGINE_IO_LOCK (&self->lock, SERVER);
          if (g_get_monotonic_time () > deadline)
            return done (self);
          continue;
        }
      /* In slices: another thread may stop iterating the context. */
      if (!g_cond_wait_until (&self->cond, &self->lock,
                              external != NULL ? MIN (deadline, g_get_monotonic_time () + 50 * 1000)
                                               : deadline) &&
          g_get_monotonic_time () >= deadline)
        return done (self);
    }
  return TRUE;
}

/* Whether this thread may wait for the sessions to end. Not on a session
 * thread (its own session, or its loop's other sessions, could not end),
 * not from inside a dispatch of one of our sources (a signal handler, a
 * hook, a send callback or a timer in #EngineIOServer:callback-context:
 * iterating the context from there would re-enter the session whose
 * source is on the stack), and not from a nested dispatch of that context
 * (one of ours may be further down the stack). Our sources are all named
 * "[engineio] …". */
static gboolean
may_wait_here (EngineIOServer *self)
{
  GSource *current;
  const char *name;

  if (engine_io_in_loop_thread () || engine_io_in_daemon_thread ())
    return FALSE;
  current = g_main_current_source ();
  name = current != NULL ? g_source_get_name (current) : NULL;
  if (name != NULL && g_str_has_prefix (name, "[engineio]"))
    return FALSE;
  if (self->callback_context != NULL && g_main_context_is_owner (self->callback_context) &&
      g_main_depth () > 1)
    return FALSE;
  return TRUE;
}

/* Starts the shutdown; FALSE if it had started already. Any thread. */
static gboolean
server_begin_close (EngineIOServer *self)
{
  g_autoptr(GPtrArray) sockets = NULL;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (self->closing || self->closed)
    {
      ENGINE_IO_UNLOCK (&self->lock);
      return FALSE;
    }
  self->closing = TRUE;
  g_atomic_int_set (&self->closed_flag, 1);
  ENGINE_IO_UNLOCK (&self->lock);

  engine_io_server_refuse_admissions (self);

  /* No MHD_quiesce_daemon(): with a worker pool on epoll, libmicrohttpd
   * 0.9.75 can abort in it ("Failed to remove listen FD from epoll set")
   * when a worker toggles the listen socket at the same time. New
   * handshakes during the close are answered 503 {"code":4,"message":
   * "Server shutting down"} until the daemon stops; requests for a
   * session go to it (a lingering session's last poll takes what was
   * queued), 400 once it is forgotten. */

  /* Each close is an event for the session's context: never re-entrant,
   * so this is safe from the sessions' own handlers. */
  sockets = engine_io_server_list_sockets (self);
  for (guint i = 0; i < sockets->len; i++)
    engine_io_socket_close_with_reason (g_ptr_array_index (sockets, i),
                                        ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN, NULL);
  return TRUE;
}

static void close_task_complete (GTask *task);

static gboolean
none_suspended_locked (EngineIOServer *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  return g_atomic_int_get (&self->suspended) == 0;
}

/* Answers the waiting polls and held POSTs of the sessions still open
 * (503, server shutting down); they are finished by their serving
 * threads, and their sessions end whenever their context runs again. */
static void
release_suspended_requests (EngineIOServer *self)
{
  g_autoptr(GPtrArray) sockets = engine_io_server_list_sockets (self);

  for (guint i = 0; i < sockets->len; i++)
    {
      g_autoptr(GPtrArray) taken = engine_io_socket_take_suspended (g_ptr_array_index (sockets, i));

      for (guint j = 0; j < taken->len; j++)
        {
          EngineIORequest *req = g_ptr_array_index (taken, j);

          if (req->prepared_body == NULL)
            engine_io_core_prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
          engine_io_core_request_resume (req);
        }
    }

  /* Handshakes whose job has not run (their session's context, a shared
   * loop thread, is blocked too) or is blocked in application code (the
   * admission hook, the id function, a WebSocket session's ::connection). */
  {
    g_autoptr(GPtrArray) handshakes = engine_io_server_take_handshake_requests (self);

    for (guint i = 0; i < handshakes->len; i++)
      {
        EngineIORequest *req = g_ptr_array_index (handshakes, i);

        engine_io_core_prepare_response (req, 503, ENGINE_IO_CODE_FORBIDDEN, "Server shutting down");
        engine_io_core_request_resume (req);
      }
  }
}

/* Waits for the sessions to end (up to 10 seconds), stops the daemon and
 * every thread of the pool, then marks the server closed and completes
 * the engine_io_server_close_async() calls. Only where may_wait_here()
 * (or on the shutdown thread, with @iterate_external FALSE). */
static void
server_finish_close (EngineIOServer *self,
                     gboolean        iterate_external)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  gpointer listener;
  const EngineIOListenerClass *listener_class;
  g_autoptr(GPtrArray) tasks = NULL;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  if (!wait_locked (self, sessions_gone_locked, deadline, iterate_external))
    {
      g_warning ("Server close: %u sessions, %u handshakes and %u polls still pending after 10 s",
                 self->live_sessions, self->pending_handshakes, g_atomic_int_get (&self->suspended));
      /* libmicrohttpd aborts the process when it is stopped with a
       * suspended connection: the polls and POSTs of sessions that did
       * not end (their context is blocked) are answered now, and from now
       * on a new poll of theirs (or a POST they would hold) is answered at
       * once instead of suspended (its client polls again after the 503
       * while the close waits for other requests; suspended, it aborted
       * the process at the stop).
       * Set before the sessions' locks are taken: a poll suspended before
       * is taken below, one after sees it. */
      g_atomic_int_set (&self->refuse_suspend, 1);
      ENGINE_IO_UNLOCK (&self->lock);
      release_suspended_requests (self);
      ENGINE_IO_LOCK (&self->lock, SERVER);
      deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
      if (!wait_locked (self, none_suspended_locked, deadline, iterate_external))
        g_warning ("Server close: %u requests still suspended", g_atomic_int_get (&self->suspended));
    }
  /* Let the last responses (the `1`s) be written; a request still
   * uploading its body is given a moment, not more. */
  deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  while (g_atomic_int_get (&self->active_requests) > 0)
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
      break;
  listener = g_steal_pointer (&self->listener);
  listener_class = self->listener_class;
  self->port = 0;
  ENGINE_IO_UNLOCK (&self->lock);

  if (listener != NULL)
    listener_class->stop (listener);

  if (self->pool != NULL)
    engine_io_loop_pool_shutdown (self->pool, 5 * G_USEC_PER_SEC);

  ENGINE_IO_LOCK (&self->lock, SERVER);
  self->closed = TRUE;
  tasks = g_steal_pointer (&self->close_tasks);
  self->close_tasks = g_ptr_array_new ();
  g_cond_broadcast (&self->cond);
  ENGINE_IO_UNLOCK (&self->lock);

  for (guint i = 0; i < tasks->len; i++)
    close_task_complete (g_ptr_array_index (tasks, i));
}

/* The shutdown, when its caller must not wait for it (see may_wait_here()).
 * Holds a reference on the server until the close is complete. */
static gpointer
shutdown_thread_func (gpointer data)
{
  EngineIOServer *self = data;

  server_finish_close (self, FALSE);
  g_object_unref (self);
  return NULL;
}

/* Called with the lock held: whether this caller is the one to finish the
 * close (exactly one does). */
static gboolean
claim_finish_locked (EngineIOServer *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->lock);
  if (self->closed || self->finishing)
    return FALSE;
  self->finishing = TRUE;
  return TRUE;
}

static void
server_finish_close_in_background (EngineIOServer *self)
{
  g_autoptr(GError) error = NULL;
  GThread *thread;
  gboolean claimed;

  ENGINE_IO_LOCK (&self->lock, SERVER);
  claimed = claim_finish_locked (self);
  ENGINE_IO_UNLOCK (&self->lock);
  if (!claimed)
    return;

  thread = g_thread_try_new ("eio-shutdown", shutdown_thread_func, g_object_ref (self), &error);
  if (thread == NULL)
    {
      /* The sessions still end (their close events are queued); the
       * daemon and the threads stop at the next close from where one may
       * wait, or at dispose. */
      g_warning ("Cannot start the shutdown thread: %s", error->message);
      ENGINE_IO_LOCK (&self->lock, SERVER);
      self->finishing = FALSE;
      ENGINE_IO_UNLOCK (&self->lock);
      g_object_unref (self);
      return;
    }
  g_thread_unref (thread);
}

/* engine_io_server_close(), which describes it. Any thread. */
void
engine_io_server_shutdown (EngineIOServer *self)
{
  gboolean claimed;

  server_begin_close (self);
  if (!may_wait_here (self))
    {
      server_finish_close_in_background (self);
      return;
    }

  ENGINE_IO_LOCK (&self->lock, SERVER);
  claimed = claim_finish_locked (self);
  if (!claimed)
    {
      /* Another call is finishing it: wait for that one (bounded by its
       * own deadlines; this one is a backstop). */
      gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

      if (!wait_locked (self, closed_locked, deadline, TRUE))
        g_warning ("Server close: still closing after 30 s");
    }
  ENGINE_IO_UNLOCK (&self->lock);

  if (claimed)
    server_finish_close (self, TRUE);
}

/* engine_io_server_close_async() */

typedef struct
{
  int           done;        /* (atomic) the task has returned */
  GCancellable *cancellable; /* (nullable) ref */
  gulong        handler;     /* on @cancellable, 0 if none */
} CloseTaskData;

static void
close_task_data_free (gpointer data)
{
  CloseTaskData *d = data;

  g_clear_object (&d->cancellable);
  g_free (d);
}

/* Any thread, once per task: the close is done. */
static void
close_task_complete (GTask *task)
{
  CloseTaskData *d = g_task_get_task_data (task);

  if (d->handler != 0)
    g_cancellable_disconnect (d->cancellable, d->handler);
  if (g_atomic_int_compare_and_exchange (&d->done, 0, 1))
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
close_task_cancelled_cb (GCancellable *cancellable,
                         gpointer      data)
{
  GTask *task = data;
  CloseTaskData *d = g_task_get_task_data (task);

  /* The shutdown goes on; only the wait ends. */
  if (g_atomic_int_compare_and_exchange (&d->done, 0, 1))
    g_task_return_error_if_cancelled (task);
}

/* Takes @task. */
static void
server_add_close_task (EngineIOServer *self,
                       GTask          *task)
{
  CloseTaskData *d = g_new0 (CloseTaskData, 1);
  gboolean closed;

  g_task_set_task_data (task, d, close_task_data_free);
  if (g_task_get_cancellable (task) != NULL)
    {
      d->cancellable = g_object_ref (g_task_get_cancellable (task));
      d->handler = g_cancellable_connect (d->cancellable, G_CALLBACK (close_task_cancelled_cb),
                                          g_object_ref (task), g_object_unref);
    }

  ENGINE_IO_LOCK (&self->lock, SERVER);
  closed = self->closed;
  if (!closed)
    g_ptr_array_add (self->close_tasks, task);
  ENGINE_IO_UNLOCK (&self->lock);

  if (closed)
    close_task_complete (task);
}

typedef struct
{
  EngineIOServer      *server;      /* ref */
  GCancellable        *cancellable; /* (nullable) ref */
  GAsyncReadyCallback  callback;
  gpointer             user_data;
} CloseAsyncCall;

static void
close_async_call_free (gpointer data)
{
  CloseAsyncCall *call = data;

  g_object_unref (call->server);
  g_clear_object (&call->cancellable);
  g_free (call);
}

/* In the global default main context: makes the task there, so that it
 * returns there. */
static gboolean
close_async_in_default_cb (gpointer data)
{
  CloseAsyncCall *call = data;
  GTask *task = g_task_new (call->server, call->cancellable, call->callback, call->user_data);

  g_task_set_source_tag (task, engine_io_server_shutdown_async);
  g_task_set_name (task, "[engineio] server close");
  server_add_close_task (call->server, task);
  return G_SOURCE_REMOVE;
}

/* engine_io_server_close_async(), which describes it. Any thread. The
 * task's source tag is this function. */
void
engine_io_server_shutdown_async (EngineIOServer      *self,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  if (engine_io_in_loop_thread ())
    {
      CloseAsyncCall *call = g_new0 (CloseAsyncCall, 1);

      call->server = g_object_ref (self);
      call->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;
      call->callback = callback;
      call->user_data = user_data;
      g_main_context_invoke_full (g_main_context_default (), G_PRIORITY_DEFAULT,
                                  close_async_in_default_cb, call, close_async_call_free);
    }
  else
    {
      GTask *task = g_task_new (self, cancellable, callback, user_data);

      g_task_set_source_tag (task, engine_io_server_shutdown_async);
      g_task_set_name (task, "[engineio] server close");
      server_add_close_task (self, task);
    }

  server_begin_close (self);
  server_finish_close_in_background (self);
}
