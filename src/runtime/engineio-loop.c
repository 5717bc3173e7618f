/* engineio-loop.c: which thread iterates a session's main context
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <glib-unix.h>

#include "engineio-loop-private.h"
#include "engineio-lock-private.h"

struct _EngineIOLoop
{
  EngineIOLoopPool *pool;      /* unowned; outlives every loop */
  GMainContext     *context;   /* owned */
  int               quit;      /* (atomic) set once; the thread then ends */
  guint             users;     /* under pool->lock */
  gboolean          dedicated; /* one session only; quits at users == 0 */
};

struct _EngineIOLoopPool
{
  GMutex         lock;         /* (rank 6 of engineio-lock-private.h) a leaf: no
                                * lock of ours is taken with it held */
  GCond          cond;
  guint          n_threads;    /* configured: 0 = one per session */
  guint          live_threads; /* under lock */
  gint           refs;         /* atomic: the owner's, and one per live thread */
  GPtrArray     *shared;       /* under lock; EngineIOLoop*, pooled mode */
  EngineIOLoop  *external;     /* owned; external mode */
  guint          next;         /* under lock */
  gboolean       shut_down;    /* under lock */
  guint64       *descriptors;  /* (atomic) the server's count, or NULL; cleared
                                * (under lock) when the owner lets go */
};

/* Set in every loop thread we run, so blocking API can refuse to deadlock:
 * 1 in a pooled loop thread, 2 in a session's own thread. */
static GPrivate in_loop_thread;

/* Set in the threads of the libmicrohttpd daemons we start (by
 * engineio-http-daemon.c: libmicrohttpd's, by their first accept or
 * request, and its watcher): such a daemon cannot be stopped (its threads
 * joined) from them. Here, with the loop threads, so that the server asks
 * without calling the adapter. */
static GPrivate in_daemon_thread;

static void
loop_quit (EngineIOLoop *loop)
{
  g_atomic_int_set (&loop->quit, 1);
  g_main_context_wakeup (loop->context);
}

static void
loop_free (EngineIOLoop *loop)
{
  g_main_context_unref (loop->context);
  if (loop != loop->pool->external && loop->pool->descriptors != NULL)
    __atomic_fetch_sub (loop->pool->descriptors, ENGINE_IO_CONTEXT_DESCRIPTORS, __ATOMIC_RELAXED);
  g_free (loop);
}

static void
pool_unref (EngineIOLoopPool *pool)
{
  if (!g_atomic_int_dec_and_test (&pool->refs))
    return;
  if (pool->external != NULL)
    loop_free (pool->external);
  g_ptr_array_unref (pool->shared);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->cond);
  g_free (pool);
}

/* Whether a GMainContext can get its wakeup descriptors now: GLib aborts
 * the process when it cannot (g_error()). The server's descriptor budget
 * keeps this from happening; this catches an application that went over
 * its reserve. */
static gboolean
can_make_context (GError **error)
{
#ifdef __linux__
  int fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);

  if (fd >= 0)
    {
      close (fd);
      return TRUE;
    }
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
               "No descriptor for a main context: %s", g_strerror (errno));
  return FALSE;
#else
  int fds[2];

  if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
    return FALSE;
  close (fds[0]);
  close (fds[1]);
  return TRUE;
#endif
}

static gpointer
loop_thread_func (gpointer data)
{
  EngineIOLoop *loop = data;
  EngineIOLoopPool *pool = loop->pool;

  g_private_set (&in_loop_thread, GINT_TO_POINTER (loop->dedicated ? 2 : 1));
  g_main_context_push_thread_default (loop->context);
  /* What g_main_loop_run() does, but a quit that comes before the thread
   * starts iterating is not lost (g_main_loop_run() resets its flag). */
  while (!g_atomic_int_get (&loop->quit))
    g_main_context_iteration (loop->context, TRUE);

  /* A shared loop the pool's shutdown quit while sessions still use it (a
   * handler that blocked past the server's close wait): it goes on until
   * they have let go, so that they end (their close, their timers, their
   * WebSocket's release) instead of staying half-closed for ever. The
   * last engine_io_loop_release() wakes it. */
  while (!loop->dedicated)
    {
      guint users;

      ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);
      users = loop->users;
      ENGINE_IO_UNLOCK (&pool->lock);
      if (users == 0)
        break;
      g_main_context_iteration (loop->context, TRUE);
    }

  /* Dispatch what is still ready (sources attached before the last user
   * left), so they drop the references they hold. Users guarantee that
   * nothing new is attached once they released the loop. */
  while (g_main_context_iteration (loop->context, FALSE))
    ;
  g_main_context_pop_thread_default (loop->context);

  /* Under the pool lock: loop_quit() runs under it too, so it is done
   * touching the loop before we free it. */
  ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);
  loop_free (loop);
  pool->live_threads--;
  g_cond_broadcast (&pool->cond);
  ENGINE_IO_UNLOCK (&pool->lock);
  /* A thread that outlived its server's shutdown wait (a handler that
   * blocks) holds the pool: it is freed by the last of them. */
  pool_unref (pool);

  return NULL;
}

/* Called with pool->lock held. */
static EngineIOLoop *
loop_start (EngineIOLoopPool *pool,
            gboolean          dedicated,
            guint             index)
{
  EngineIOLoop *loop = g_new0 (EngineIOLoop, 1);
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  GThread *thread;

  if (!can_make_context (&error))
    {
      g_warning ("Cannot start a session thread: %s", error->message);
      g_free (loop);
      return NULL;
    }
  loop->pool = pool;
  loop->context = g_main_context_new ();
  loop->dedicated = dedicated;
  if (pool->descriptors != NULL)
    __atomic_fetch_add (pool->descriptors, ENGINE_IO_CONTEXT_DESCRIPTORS, __ATOMIC_RELAXED);

  name = dedicated ? g_strdup ("eio-session") : g_strdup_printf ("eio-loop-%u", index);
  thread = g_thread_try_new (name, loop_thread_func, loop, &error);
  if (thread == NULL)
    {
      g_warning ("Cannot start a session thread: %s", error->message);
      loop_free (loop);
      return NULL;
    }
  g_thread_unref (thread);  /* never joined: the thread ends by itself */
  pool->live_threads++;
  g_atomic_int_inc (&pool->refs);  /* the thread's, dropped as it ends */

  return loop;
}

EngineIOLoopPool *
engine_io_loop_pool_new (guint         n_threads,
                         GMainContext *external,
                         guint64      *descriptors)
{
  EngineIOLoopPool *pool = g_new0 (EngineIOLoopPool, 1);

  pool->refs = 1;
  g_mutex_init (&pool->lock);
  g_cond_init (&pool->cond);
  pool->n_threads = n_threads;
  pool->descriptors = descriptors;
  pool->shared = g_ptr_array_new ();

  if (external != NULL)
    {
      pool->external = g_new0 (EngineIOLoop, 1);
      pool->external->pool = pool;
      pool->external->context = g_main_context_ref (external);
    }

  return pool;
}

/* Called after shutdown. Threads that did not end in time (their
 * handler still blocks) keep the pool until they end; the server's
 * descriptor count, which goes with the server, is no longer touched. */
void
engine_io_loop_pool_free (EngineIOLoopPool *pool)
{
  if (pool == NULL)
    return;

  ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);
  pool->shut_down = TRUE;
  pool->descriptors = NULL;
  if (pool->live_threads > 0)
    g_debug ("%u session threads still running: they free the loop pool as they end",
             pool->live_threads);
  ENGINE_IO_UNLOCK (&pool->lock);
  pool_unref (pool);
}

/* Any thread. Returns NULL when no thread could be started or the pool is
 * shut down. */
EngineIOLoop *
engine_io_loop_pool_acquire (EngineIOLoopPool *pool)
{
  EngineIOLoop *loop = NULL;

  ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);

  if (pool->shut_down)
    ;
  else if (pool->external != NULL)
    loop = pool->external;
  else if (pool->n_threads == 0)
    loop = loop_start (pool, TRUE, 0);
  else
    {
      if (pool->shared->len < pool->n_threads)
        {
          EngineIOLoop *fresh = loop_start (pool, FALSE, pool->shared->len);
          if (fresh != NULL)
            g_ptr_array_add (pool->shared, fresh);
        }
      if (pool->shared->len > 0)
        {
          /* least loaded, ties broken round-robin */
          guint best = pool->next++ % pool->shared->len;
          for (guint i = 0; i < pool->shared->len; i++)
            {
              EngineIOLoop *candidate = g_ptr_array_index (pool->shared, i);
              EngineIOLoop *current = g_ptr_array_index (pool->shared, best);
              if (candidate->users < current->users)
                best = i;
            }
          loop = g_ptr_array_index (pool->shared, best);
        }
    }

  if (loop != NULL)
    loop->users++;

  ENGINE_IO_UNLOCK (&pool->lock);

  return loop;
}

/* Any thread, including the loop's own. After this the caller must not
 * attach anything to the loop's context. */
void
engine_io_loop_release (EngineIOLoop *loop)
{
  EngineIOLoopPool *pool = loop->pool;

  ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);
  g_assert (loop->users > 0);
  loop->users--;
  /* The thread frees the loop: a dedicated one now; a shared one once the
   * pool shut down (loop_thread_func() waits for its last user then). */
  if (loop->users == 0 && (loop->dedicated || g_atomic_int_get (&loop->quit)))
    loop_quit (loop);
  ENGINE_IO_UNLOCK (&pool->lock);
}

GMainContext *
engine_io_loop_get_context (EngineIOLoop *loop)
{
  return loop->context;
}


void
engine_io_mark_daemon_thread (void)
{
  if (g_private_get (&in_daemon_thread) == NULL)
    g_private_set (&in_daemon_thread, GINT_TO_POINTER (1));
}

gboolean
engine_io_in_daemon_thread (void)
{
  return g_private_get (&in_daemon_thread) != NULL;
}

gboolean
engine_io_in_loop_thread (void)
{
  return g_private_get (&in_loop_thread) != NULL;
}

/* Whether the calling thread is a session's own (no loop threads
 * configured): it serves that one session for the session's life, so
 * whatever it keeps for itself, each session keeps. */
gboolean
engine_io_in_session_thread (void)
{
  return GPOINTER_TO_INT (g_private_get (&in_loop_thread)) == 2;
}



/* Not from a loop thread. Quits the shared loops and waits (up to
 * @timeout_us) until every thread of the pool has ended. */
void
engine_io_loop_pool_shutdown (EngineIOLoopPool *pool,
                              gint64            timeout_us)
{
  gint64 deadline = g_get_monotonic_time () + timeout_us;

  ENGINE_IO_LOCK (&pool->lock, LOOP_POOL);
  pool->shut_down = TRUE;
  for (guint i = 0; i < pool->shared->len; i++)
    {
      EngineIOLoop *loop = g_ptr_array_index (pool->shared, i);
      loop_quit (loop);
    }
  g_ptr_array_set_size (pool->shared, 0);  /* threads free their loops */

  while (pool->live_threads > 0)
    if (!g_cond_wait_until (&pool->cond, &pool->lock, deadline))
      {
        g_warning ("%u session threads did not end in time", pool->live_threads);
        break;
      }
  ENGINE_IO_UNLOCK (&pool->lock);
}
