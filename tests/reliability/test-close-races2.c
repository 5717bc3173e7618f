/* test-close-races2.c: a server the application dropped, released by the
 * daemon's watcher thread (adversarial review of the dispose-time close).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"
#include <string.h>

#include "relutil.h"

/* The watcher's message right after it resumed a gone poll, before it
 * drops its reference on the session. */
#define WATCHER_RESUMED "http: the client of a waiting poll closed its connection"

static int watcher_delays;  /* (atomic) */

/* Logs like the default writer; a slow log sink at the watcher's message
 * (e.g. a blocking journal): the session ends meanwhile, so the watcher's
 * reference on it is the last one. A warning or critical fails the test
 * (fatal since g_test_init()). */
static GLogWriterOutput
slow_writer (GLogLevelFlags   log_level,
             const GLogField *fields,
             gsize            n_fields,
             gpointer         user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (strcmp (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0 &&
        strstr (fields[i].value, WATCHER_RESUMED) != NULL)
      {
        g_atomic_int_inc (&watcher_delays);
        g_usleep (test_scaled_ms (1000) * G_TIME_SPAN_MILLISECOND);
      }
  return g_log_writer_default (log_level, fields, n_fields, user_data);
}

/* The application drops its server while a session's poll waits; the
 * client closes that poll's connection. The watcher thread finds it,
 * resumes it and, the session having ended meanwhile, drops the last
 * reference on the session, whose server then goes: the close must not
 * run (and join the watcher) on the watcher thread itself. */
static void
test_drop_server_watcher_releases (void)
{
  g_autoptr(EngineIOServer) server = test_server_new ();
  g_autoptr(GError) error = NULL;
  RelPoll *poll;
  GWeakRef weak;
  guint port;
  guint threads = test_count_threads ();

  g_test_summary ("The application drops its server (no close) while a poll waits; the "
                  "client closes the poll's connection and the daemon's watcher thread "
                  "drops the last reference: the server is shut down and freed (it "
                  "joined the watcher from the watcher: GLib aborts the process)");
  port = test_server_listen (server);
  test_require (port != 0);
  poll = rel_poll_open (port, &error);
  g_assert_no_error (error);
  test_require (poll != NULL);
  g_assert_true (rel_poll_send_get (poll, &error));
  g_assert_no_error (error);
  /* The poll is suspended and watched (it waits: nothing is queued). */
  g_usleep (test_scaled_ms (300) * G_TIME_SPAN_MILLISECOND);

  g_weak_ref_init (&weak, server);
  g_clear_object (&server);  /* the session holds it */
  rel_poll_free (poll);      /* FIN on the waiting poll's connection */

  {
    gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    EngineIOServer *alive;

    while ((alive = g_weak_ref_get (&weak)) != NULL && g_get_monotonic_time () < deadline)
      {
        g_object_unref (alive);
        g_usleep (10 * 1000);
      }
    g_assert_null (alive);
    g_clear_object (&alive);
  }
  g_assert_cmpint (g_atomic_int_get (&watcher_delays), >=, 1);
  {
    gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * G_TIME_SPAN_MILLISECOND;

    while (!test_port_refuses (port) && g_get_monotonic_time () < deadline)
      g_usleep (10 * 1000);
    g_assert_true (test_port_refuses (port));
  }
  g_assert_cmpuint (test_wait_count_at_most (test_count_threads, threads, REL_WAIT_MS), <=, threads);
  g_weak_ref_clear (&weak);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (slow_writer, NULL, NULL);

  g_test_add_func ("/reliability/close-races2/drop-server/watcher-releases",
                   test_drop_server_watcher_releases);

  return g_test_run ();
}
