/* test-thread-failure.c: the process out of threads where the server
 * needs one. pthread_create() is interposed here (the executable's
 * definition comes first for every library) and fails while
 * fail_threads is set, as it does when the process or the system is out
 * of threads or memory for their stacks.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "relutil.h"

static gint fail_threads;  /* atomic */

typedef int (*PthreadCreate) (pthread_t *, const pthread_attr_t *, void *(*) (void *), void *);

int
pthread_create (pthread_t            *thread,
                const pthread_attr_t *attr,
                void               *(*start) (void *),
                void                 *arg)
{
  static PthreadCreate real = NULL;
  PthreadCreate next = g_atomic_pointer_get (&real);

  if (g_atomic_int_get (&fail_threads))
    return EAGAIN;
  if (next == NULL)
    {
      next = (PthreadCreate) dlsym (RTLD_NEXT, "pthread_create");
      g_atomic_pointer_set (&real, next);
    }
  return next (thread, attr, start, arg);
}

/* The application drops its server while a session is open; the session
 * ends, and with it the last reference, on a thread that may not wait for
 * the daemon (the session's, or libmicrohttpd's). The shutdown then needs
 * a thread of its own, and none can be made. */
static void
test_drop_server_no_shutdown_thread (void)
{
  EngineIOServer *server = test_server_new ();
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(GError) error = NULL;
  guint port;

  g_test_summary ("The application drops its server while a session is open, and the "
                  "process cannot start the shutdown thread when that session ends: the "
                  "server is kept (a warning says so) and answers new clients 503, instead of "
                  "being freed under its running daemon (a use after free at the next request)");
  port = test_server_listen (server);
  test_require (port != 0);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);

  g_clear_object (&server);  /* the session holds it */

  test_log_expect (G_LOG_LEVEL_WARNING, "Cannot start the shutdown thread");
  test_log_expect (G_LOG_LEVEL_WARNING, "could not be shut down here");
  g_atomic_int_set (&fail_threads, 1);
  g_assert_true (rel_poll_post (poll, "1", &error));
  g_assert_no_error (error);
  g_assert_true (test_log_wait_expected (REL_WAIT_MS));
  g_atomic_int_set (&fail_threads, 0);

  /* The server is still there, shutting down: a new client is told so
   * (it was freed under its daemon: the next request read freed memory). */
  {
    g_autoptr(TestHttp) http = test_http_new (port);
    g_autoptr(TestResponse) response = test_http_request (http, "GET",
                                                          "/engine.io/?EIO=4&transport=polling",
                                                          NULL, NULL, -1, REL_WAIT_MS, &error);

    g_assert_no_error (error);
    test_require (response != NULL);
    g_assert_cmpuint (response->status, ==, 503);
  }
  test_log_check ();
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();

  g_test_add_func ("/reliability/thread-failure/drop-server/no-shutdown-thread",
                   test_drop_server_no_shutdown_thread);

  return g_test_run ();
}
