/* test-lock-order.c: the lock-order check of -Dlock_checks=true builds
 * (src/runtime/engineio-lock-private.h) fires on an inverted nesting, a
 * lock taken twice, two locks of one rank, a release of a lock not held
 * and a `_locked` function called without its lock; and stays quiet on
 * the documented order and across threads. Built only with lock_checks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <glib.h>

#include "engineio-lock-private.h"

#if !ENGINE_IO_LOCK_CHECKS
#error "test-lock-order needs -Dlock_checks=true"
#endif

static void
test_documented_order (void)
{
  GMutex broadcast, server, session, watcher, recv, pool, rate, errors, user_data;

  g_test_summary ("Every lock taken in rank order, all nested, then released "
                  "out of order, passes the check");

  g_mutex_init (&broadcast);
  g_mutex_init (&server);
  g_mutex_init (&session);
  g_mutex_init (&watcher);
  g_mutex_init (&recv);
  g_mutex_init (&pool);
  g_mutex_init (&rate);
  g_mutex_init (&errors);
  g_mutex_init (&user_data);

  ENGINE_IO_LOCK (&broadcast, BROADCAST);
  ENGINE_IO_LOCK (&server, SERVER);
  ENGINE_IO_UNLOCK (&server);
  ENGINE_IO_LOCK (&session, SESSION);
  ENGINE_IO_LOCK_ASSERT_HELD (&session);
  ENGINE_IO_LOCK (&watcher, WATCHER);
  ENGINE_IO_LOCK (&recv, RECV);
  ENGINE_IO_LOCK (&pool, LOOP_POOL);
  ENGINE_IO_LOCK (&rate, RATE);
  ENGINE_IO_LOCK (&errors, ERRORS);
  ENGINE_IO_LOCK (&user_data, USER_DATA);
  /* Not last in, first out: a session releases its lock before recv_lock. */
  ENGINE_IO_UNLOCK (&session);
  ENGINE_IO_UNLOCK (&user_data);
  ENGINE_IO_UNLOCK (&errors);
  ENGINE_IO_UNLOCK (&rate);
  ENGINE_IO_UNLOCK (&pool);
  ENGINE_IO_UNLOCK (&recv);
  ENGINE_IO_UNLOCK (&watcher);
  ENGINE_IO_UNLOCK (&broadcast);

  /* All released: the server lock again, then a session's. */
  ENGINE_IO_LOCK (&server, SERVER);
  ENGINE_IO_LOCK (&session, SESSION);
  ENGINE_IO_UNLOCK (&session);
  ENGINE_IO_UNLOCK (&server);

  g_mutex_clear (&broadcast);
  g_mutex_clear (&server);
  g_mutex_clear (&session);
  g_mutex_clear (&watcher);
  g_mutex_clear (&recv);
  g_mutex_clear (&pool);
  g_mutex_clear (&rate);
  g_mutex_clear (&errors);
  g_mutex_clear (&user_data);
}

static void
test_inverted (void)
{
  g_test_summary ("The server lock taken while a session's lock is held "
                  "(the inverse of the documented order) aborts, naming both");

  if (g_test_subprocess ())
    {
      GMutex server_lock, state_lock;

      g_mutex_init (&server_lock);
      g_mutex_init (&state_lock);
      ENGINE_IO_LOCK (&state_lock, SESSION);
      ENGINE_IO_LOCK (&server_lock, SERVER);
      ENGINE_IO_UNLOCK (&server_lock);
      ENGINE_IO_UNLOCK (&state_lock);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: &server_lock (server lock, rank 2) taken "
                             "while holding &state_lock (session state lock, rank 3)*");
}

static void
test_inverted_leaf (void)
{
  g_test_summary ("A session's lock taken while its recv_lock is held aborts");

  if (g_test_subprocess ())
    {
      GMutex state_lock, recv_lock;

      g_mutex_init (&state_lock);
      g_mutex_init (&recv_lock);
      ENGINE_IO_LOCK (&recv_lock, RECV);
      ENGINE_IO_LOCK (&state_lock, SESSION);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: &state_lock (session state lock, rank 3) taken "
                             "while holding &recv_lock (session receive lock, rank 5)*");
}

static void
test_same_rank (void)
{
  g_test_summary ("Two sessions' locks held at once abort (no order between them)");

  if (g_test_subprocess ())
    {
      GMutex one, two;

      g_mutex_init (&one);
      g_mutex_init (&two);
      ENGINE_IO_LOCK (&one, SESSION);
      ENGINE_IO_LOCK (&two, SESSION);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: &two (session state lock, rank 3) taken "
                             "while holding &one (session state lock, rank 3)*");
}

static void
test_taken_twice (void)
{
  g_test_summary ("A lock taken again by its holder aborts instead of deadlocking");

  if (g_test_subprocess ())
    {
      GMutex lock;

      g_mutex_init (&lock);
      ENGINE_IO_LOCK (&lock, SERVER);
      ENGINE_IO_LOCK (&lock, SERVER);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: &lock (server lock, rank 2) taken again*");
}

static void
test_release_not_held (void)
{
  g_test_summary ("Releasing a lock this thread does not hold aborts");

  if (g_test_subprocess ())
    {
      GMutex lock;

      g_mutex_init (&lock);
      ENGINE_IO_UNLOCK (&lock);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: &lock released by a thread that does not hold it*");
}

static void
test_assert_held (void)
{
  g_test_summary ("A `_locked` function's assertion aborts when its lock is not held");

  if (g_test_subprocess ())
    {
      GMutex state_lock;

      g_mutex_init (&state_lock);
      ENGINE_IO_LOCK_ASSERT_HELD (&state_lock);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*lock order: test_assert_held() needs &state_lock held*");
}

typedef struct
{
  GMutex *session;
  GMutex *server;
} Pair;

static gpointer
take_server_then_session (gpointer data)
{
  Pair *pair = data;

  ENGINE_IO_LOCK (pair->server, SERVER);
  ENGINE_IO_LOCK (pair->session, SESSION);
  ENGINE_IO_UNLOCK (pair->session);
  ENGINE_IO_UNLOCK (pair->server);
  return NULL;
}

static void
test_per_thread (void)
{
  GMutex session, server, recv;
  Pair pair = { &session, &server };
  GThread *thread;

  g_test_summary ("The record is per thread: a lock another thread holds "
                  "does not count against this one's");

  g_mutex_init (&session);
  g_mutex_init (&server);
  g_mutex_init (&recv);

  /* This thread holds a recv_lock (rank 5) while another takes the server
   * lock and a session's (2, 3): no inversion, no abort. */
  ENGINE_IO_LOCK (&recv, RECV);
  thread = g_thread_new ("lock-order", take_server_then_session, &pair);
  g_thread_join (thread);
  ENGINE_IO_UNLOCK (&recv);

  g_mutex_clear (&session);
  g_mutex_clear (&server);
  g_mutex_clear (&recv);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/lock-order/documented-order", test_documented_order);
  g_test_add_func ("/lock-order/inverted", test_inverted);
  g_test_add_func ("/lock-order/inverted-leaf", test_inverted_leaf);
  g_test_add_func ("/lock-order/same-rank", test_same_rank);
  g_test_add_func ("/lock-order/taken-twice", test_taken_twice);
  g_test_add_func ("/lock-order/release-not-held", test_release_not_held);
  g_test_add_func ("/lock-order/assert-held", test_assert_held);
  g_test_add_func ("/lock-order/per-thread", test_per_thread);

  return g_test_run ();
}
