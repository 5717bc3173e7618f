/* test-churn.c: 10,000 sessions opened and closed in every way a session
 * can end, against one server; afterwards the server has forgotten them
 * all and the process is back to its threads and descriptors (memory:
 * LeakSanitizer, in the ASan build, at exit).
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "relutil.h"

#define N_SESSIONS 10000
#define N_CLIENT_THREADS 100
/* Short heartbeats, so abandoned sessions die soon. The pong deadline is
 * longer: a polling client here only polls while it waits for something,
 * so a ping can wait for its next poll; and the machine may be loaded. */
#define PING_INTERVAL_MS 200
#define PING_TIMEOUT_MS 1000

typedef enum
{
  VIA_POLLING,
  VIA_WEBSOCKET,
  VIA_UPGRADE,
  N_VIAS
} Via;

typedef enum
{
  END_CLIENT_CLOSE,   /* the client says goodbye: close packet (or close frame) */
  END_SERVER_CLOSE,   /* the application closes the session */
  END_RESET,          /* the client's connection ends with an RST mid-session */
  END_ABANDON,        /* the client goes silent: the heartbeat ends it */
  N_ENDS
} End;

static const char *const via_names[] = { "polling", "websocket", "upgrade" };
static const char *const end_names[] = { "client-close", "server-close", "reset", "abandon" };

#define REASON_BIT(r) (1u << (r))

typedef struct
{
  char  *sid;
  guint  expected;  /* REASON_BIT()s */
} Outcome;

typedef struct
{
  RelServer *rs;
  RelErrors *errors;
  Outcome    outcomes[N_SESSIONS];
  int        per_kind[N_VIAS * N_ENDS];  /* (atomic) completed scenarios */
} Churn;

static gboolean
run_polling_end (Churn    *c,
                 RelPoll  *poll,
                 End       end,
                 guint     index,
                 guint    *expected,
                 GError  **error)
{
  switch (end)
    {
    case END_CLIENT_CLOSE:
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
      return rel_poll_post (poll, "1", error);

    case END_SERVER_CLOSE:
      {
        g_autofree char *last = NULL;
        *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
        if (!rel_poll_post (poll, "4close-me", error))
          return FALSE;
        last = rel_poll_next (poll, REL_WAIT_MS, error);
        if (last == NULL)
          return FALSE;
        if (strcmp (last, "1") != 0)
          {
            g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "expected the close packet, got “%.100s”", last);
            return FALSE;
          }
        return TRUE;
      }

    case END_RESET:
      /* Mid-poll: a GET waits in the server (suspended) when the RST comes.
       * The server's watcher of waiting polls (or the next ping, resuming
       * the poll, whichever looks first) sees the connection gone: transport
       * close. If the RST comes before the GET was read, there is no poll
       * to see it: the pong does not come (ping timeout); if it comes
       * between that look and the write of the answer, the write fails
       * (transport error). */
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE) |
                  REASON_BIT (ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR) |
                  REASON_BIT (ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
      if (!rel_poll_send_get (poll, error))
        return FALSE;
      if (index % 2 == 0)
        g_usleep (2 * 1000);  /* half of them once the GET has surely arrived */
      test_http_drop (poll->http, TRUE);
      return TRUE;

    case END_ABANDON:
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
      test_http_drop (poll->http, FALSE);
      return TRUE;

    default:
      g_assert_not_reached ();
    }
}

static gboolean
run_ws_end (Churn    *c,
            TestWs   *ws,
            End       end,
            guint     index,
            guint    *expected,
            GError  **error)
{
  gint code;

  switch (end)
    {
    case END_CLIENT_CLOSE:
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
      if (index % 2 == 0)
        {
          /* The Engine.IO close packet: the server closes the WebSocket. */
          if (!rel_ws_send (ws, "1", error))
            return FALSE;
          code = rel_ws_wait_server_close (ws, REL_WAIT_MS);
        }
      else
        {
          /* A WebSocket close frame: the server answers it. */
          guint8 payload[2] = { 0x03, 0xe8 };
          if (!test_ws_send_frame (ws, TEST_WS_CLOSE, TEST_WS_SEND_DEFAULT, payload, 2, error))
            return FALSE;
          code = test_ws_read_close (ws, REL_WAIT_MS, NULL);
          if (code >= -1 && !test_ws_wait_eof (ws, REL_WAIT_MS))
            code = -3;
        }
      break;

    case END_SERVER_CLOSE:
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_FORCED_CLOSE);
      if (!rel_ws_send (ws, "4close-me", error))
        return FALSE;
      code = rel_ws_wait_server_close (ws, REL_WAIT_MS);
      break;

    case END_RESET:
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR);
      test_ws_drop (ws, TRUE);
      return TRUE;

    case END_ABANDON:
      /* Stays connected, never answers a ping: the server closes. */
      *expected = REASON_BIT (ENGINE_IO_CLOSE_REASON_PING_TIMEOUT);
      code = rel_ws_wait_server_close (ws, REL_WAIT_MS);
      break;

    default:
      g_assert_not_reached ();
    }

  if (code < -1)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "no close from the server (%d)", code);
      return FALSE;
    }
  return TRUE;
}

static void
run_session (guint    index,
             gpointer data)
{
  Churn *c = data;
  Via via = index % N_VIAS;
  End end = (index / N_VIAS) % N_ENDS;
  g_autoptr(GError) error = NULL;
  g_autoptr(RelPoll) poll = NULL;
  g_autoptr(TestWs) ws = NULL;
  g_autofree char *sid = NULL;
  guint expected = 0;
  gboolean ok = FALSE;

  if (via == VIA_WEBSOCKET)
    ws = rel_ws_open (c->rs->lb.port, &sid, &error);
  else
    {
      poll = rel_poll_open (c->rs->lb.port, &error);
      if (poll != NULL)
        sid = g_strdup (poll->sid);
    }
  if (sid == NULL)
    goto out;

  if (via == VIA_POLLING)
    ok = rel_poll_echo (poll, "a", REL_WAIT_MS, &error) &&
         rel_poll_echo (poll, "b", REL_WAIT_MS, &error) &&
         run_polling_end (c, poll, end, index, &expected, &error);
  else
    {
      if (via == VIA_UPGRADE)
        {
          ok = rel_poll_echo (poll, "a", REL_WAIT_MS, &error);
          if (ok)
            ws = rel_ws_upgrade (c->rs->lb.port, sid, &error);
          /* The polling connection is done with: close it. */
          g_clear_pointer (&poll, rel_poll_free);
          if (ws == NULL)
            goto out;
        }
      ok = rel_ws_echo (ws, "b", REL_WAIT_MS, &error) &&
           rel_ws_echo (ws, "c", REL_WAIT_MS, &error) &&
           run_ws_end (c, ws, end, index, &expected, &error);
    }

out:
  c->outcomes[index].sid = g_steal_pointer (&sid);
  c->outcomes[index].expected = expected;
  if (!ok)
    {
      /* What the server thought of it, to tell whose fault it was. */
      gint reason = c->outcomes[index].sid != NULL
                    ? rel_server_wait_reason (c->rs, c->outcomes[index].sid, 2000) : -1;
      rel_errors_add (c->errors, "session %u (%s, %s, sid %s, closed by the server: %s): %s",
                      index, via_names[via], end_names[end],
                      c->outcomes[index].sid ? c->outcomes[index].sid : "none",
                      reason < 0 ? "not (yet)" : engine_io_close_reason_to_string (reason),
                      error ? error->message : "failed");
    }
  else
    g_atomic_int_inc (&c->per_kind[via * N_ENDS + end]);
}

static void
test_churn (void)
{
  g_autofree Churn *c = g_new0 (Churn, 1);
  g_autoptr(GError) error = NULL;
  RelResources pre, base, after, final;
  guint loop_threads = test_loop_threads_from_env ();
  guint mismatches = 0;
  gint64 start, churned, settled;
  guint port;

  g_test_summary ("10,000 sessions (polling, direct WebSocket, upgraded; ending by client "
                  "close, application close, RST mid-session, abandonment to the ping "
                  "timeout), 100 at a time: each closes exactly once with its reason, the "
                  "server forgets them all, and threads and descriptors return to where they "
                  "were (plus the fixed loop threads while the server runs; nothing after it "
                  "is closed)");

  rel_resources_settled (&pre);

  c->rs = rel_server_new ();
  c->errors = rel_errors_new ();
  g_object_set (c->rs->lb.server,
                "ping-interval", PING_INTERVAL_MS,
                "ping-timeout", PING_TIMEOUT_MS,
                NULL);
  g_assert_true (rel_server_listen (c->rs));
  port = c->rs->lb.port;
  rel_resources_settled (&base);

  start = g_get_monotonic_time ();
  rel_parallel (N_CLIENT_THREADS, N_SESSIONS, run_session, c);
  churned = g_get_monotonic_time ();

  /* Every session ends: the abandoned ones a heartbeat later. */
  if (!rel_server_wait_settled (c->rs, 0, 120 * 1000, &error))
    g_test_fail_printf ("the server did not forget its sessions: %s", error->message);
  settled = g_get_monotonic_time ();

  g_test_message ("%u sessions in %.1f s, all closed %.1f s later; %u client errors",
                  N_SESSIONS, (churned - start) / 1e6, (settled - churned) / 1e6,
                  rel_errors_count (c->errors));
  for (guint v = 0; v < N_VIAS; v++)
    for (guint e = 0; e < N_ENDS; e++)
      g_test_message ("  %s / %s: %d completed", via_names[v], end_names[e],
                      g_atomic_int_get (&c->per_kind[v * N_ENDS + e]));
  rel_errors_report (c->errors, 20);
  g_assert_cmpuint (rel_errors_count (c->errors), ==, 0);

  /* Each session closed once, for its reason. */
  g_assert_cmpuint (rel_server_handshakes (c->rs), ==, N_SESSIONS);
  g_assert_cmpuint (rel_server_total_closes (c->rs), ==, N_SESSIONS);
  g_assert_cmpuint (rel_server_repeated (c->rs), ==, 0);
  g_assert_cmpuint (rel_server_connections (c->rs), ==, N_SESSIONS);
  for (guint i = 0; i < N_SESSIONS; i++)
    {
      Outcome *o = &c->outcomes[i];
      gint reason = rel_server_reason (c->rs, o->sid);
      if (reason < 0 || (o->expected & REASON_BIT (reason)) == 0)
        {
          if (++mismatches <= 20)
            g_test_fail_printf ("session %u (%s, %s, %s) closed with “%s”", i,
                                via_names[i % N_VIAS], end_names[(i / N_VIAS) % N_ENDS], o->sid,
                                reason < 0 ? "(no close)" : engine_io_close_reason_to_string (reason));
        }
    }
  g_assert_cmpuint (mismatches, ==, 0);
  for (guint r = 0; r < REL_N_REASONS; r++)
    if (rel_server_closes (c->rs, r) > 0)
      g_test_message ("  closes “%s”: %u", engine_io_close_reason_to_string (r), rel_server_closes (c->rs, r));
  g_assert_cmpuint (engine_io_server_get_socket_count (c->rs->lb.server), ==, 0);
  g_assert_cmpuint (rel_server_open_gauge (c->rs), ==, 0);

  /* Threads and descriptors: back to the level after listen(), plus what
   * the pool of shared loops (loop-threads = N) keeps from the first
   * sessions until the server closes: N threads and the N eventfds of
   * their main contexts. With a thread per session (N = 0), nothing. */
  if (!rel_resources_wait_at_most (base.threads + loop_threads, base.fds + loop_threads,
                                   REL_WAIT_MS, &after))
    {
      rel_resources_dump_fds ();
      g_test_fail_printf ("after the churn: %u threads (allowed %u), %u descriptors (allowed %u)",
                          after.threads, base.threads + loop_threads, after.fds,
                          base.fds + loop_threads);
    }
  g_test_message ("threads %u -> %u, descriptors %u -> %u, RSS %u -> %u KiB (+%d KiB)",
                  base.threads, after.threads, base.fds, after.fds, base.rss_kb, after.rss_kb,
                  (int) after.rss_kb - (int) base.rss_kb);

  /* The server still works. */
  {
    g_autoptr(RelPoll) poll = rel_poll_open (port, &error);
    g_assert_no_error (error);
    g_assert_true (rel_poll_echo (poll, "after", REL_WAIT_MS, &error));
    g_assert_no_error (error);
    g_assert_true (rel_poll_post (poll, "1", &error));
    g_assert_no_error (error);
    g_assert_cmpint (rel_server_wait_reason (c->rs, poll->sid, REL_WAIT_MS), ==,
                     ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE);
  }

  for (guint i = 0; i < N_SESSIONS; i++)
    g_free (c->outcomes[i].sid);
  rel_errors_free (c->errors);
  g_clear_pointer (&c->rs, rel_server_free);

  /* Closed and unreferenced: nothing of the server is left. */
  if (!rel_resources_wait_at_most (pre.threads, pre.fds, REL_WAIT_MS, &final))
    rel_resources_dump_fds (),
    g_test_fail_printf ("after the server closed: %u threads (before it: %u), %u descriptors "
                        "(before it: %u)", final.threads, pre.threads, final.fds, pre.fds);
  g_assert_true (test_port_refuses (port));
  test_log_check ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  test_log_init ();
  /* GLib makes its global default main context (an eventfd) the first
   * time a client needs it; make it now, before any baseline. */
  g_main_context_default ();

  g_test_add_func ("/reliability/churn", test_churn);

  return g_test_run ();
}
