/* test-descriptors.c: a server short of file descriptors
 *
 * Every test runs engineio-echo as a child process whose descriptor
 * limit (soft and hard) is low, so the server cannot raise it, and floods
 * it with handshakes from this process (whose own limit is raised). The
 * server must:
 *
 * - never die for lack of a descriptor (with a thread per session,
 *   GLib aborts when a session's main context cannot get its wakeup
 *   descriptor);
 * - refuse handshakes with HTTP 503 and `{"code":4,...}` before the
 *   descriptors run out, and keep answering;
 * - keep its existing sessions working (a polling and a WebSocket echo
 *   session run through the whole flood);
 * - not spin while refusing or idle (with shared loop threads,
 *   libmicrohttpd busy-waits on accept() when no descriptor is left and
 *   every connection has left it as a WebSocket);
 * - accept handshakes again once sessions have closed.
 *
 * Run with ENGINE_IO_TEST_LOOP_THREADS=0 (a thread per session) and =2.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "relutil.h"

/* The child's descriptor limit: what servers commonly get by default. */
#define CHILD_FD_LIMIT 1024

/* More handshakes than the child could hold sessions for, were it not
 * refusing: each session needs at least one descriptor. */
#define MAX_HANDSHAKES (CHILD_FD_LIMIT + 200)

/* The most server CPU time per wall-clock time allowed while it refuses
 * a handshake every REFUSE_INTERVAL_MS and holds an idle connection
 * (a refusal costs well under a millisecond; busy-waiting costs a whole
 * core). */
#define MAX_CPU_SHARE 0.25
#define CPU_WINDOW_MS 1500
#define REFUSE_INTERVAL_MS 100

/* Idle TCP connections opened at the bound. */
#define IDLE_CONNECTIONS 400

/* Whether this process could raise its own limit enough for the
 * clients (else the floods are skipped). */
static gboolean enough_fds;

/* ------------------------------------------------------------------ */
/* The server, in a child process                                      */
/* ------------------------------------------------------------------ */

typedef struct
{
  GSubprocess *process;
  int          pid;
  guint        port;
  struct rlimit limit;
} Child;

static void
child_setup (gpointer data)
{
  const struct rlimit *limit = data;

  /* Between fork() and exec(): async-signal-safe calls only. The server
   * does not outlive a test that crashed. */
  setrlimit (RLIMIT_NOFILE, limit);
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean child_alive (Child *child);

static void
child_free (Child *child)
{
  if (child->process != NULL)
    {
      g_subprocess_send_signal (child->process, SIGKILL);
      g_subprocess_wait (child->process, NULL, NULL);
      g_object_unref (child->process);
    }
  g_free (child);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Child, child_free)

/* SIGTERM: engineio-echo closes the server and exits, with 0 if nothing
 * went wrong (in the ASan build, LeakSanitizer checks it at exit). */
static void
child_stop (Child *child)
{
  gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;

  g_subprocess_send_signal (child->process, SIGTERM);
  while (child_alive (child) && g_get_monotonic_time () < deadline)
    g_usleep (20 * 1000);
  if (child_alive (child))
    {
      g_test_fail_printf ("engineio-echo did not exit within %u ms of SIGTERM", REL_WAIT_MS);
      return;
    }
  g_subprocess_wait (child->process, NULL, NULL);
  if (!g_subprocess_get_if_exited (child->process) || g_subprocess_get_exit_status (child->process) != 0)
    g_test_fail_printf ("engineio-echo ended with wait status %d", g_subprocess_get_status (child->process));
  g_clear_object (&child->process);
}

/* engineio-echo with RLIMIT_NOFILE @soft/@hard, loop-threads from the
 * environment, metrics on /metrics; NULL (test failed) if it does not
 * start. */
static Child *
child_start (rlim_t soft,
             rlim_t hard)
{
  g_autoptr(Child) child = g_new0 (Child, 1);
  g_autoptr(GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *threads = g_strdup_printf ("%u", test_loop_threads_from_env ());
  g_autofree char *line = NULL;
  const char *echo = g_getenv ("ENGINEIO_ECHO");
  const char *port_text;
  g_autofree char *digits = NULL;
  guint64 port;

  if (echo == NULL)
    {
      g_test_fail_printf ("ENGINEIO_ECHO is not set (the path of engineio-echo)");
      return NULL;
    }
  child->limit.rlim_cur = soft;
  child->limit.rlim_max = hard;
  g_subprocess_launcher_set_child_setup (launcher, child_setup, &child->limit, NULL);
  child->process = g_subprocess_launcher_spawn (launcher, &error, echo, "--port", "0",
                                                "--loop-threads", threads,
                                                "--metrics-path", "/metrics", NULL);
  if (child->process == NULL)
    {
      g_test_fail_printf ("cannot start %s: %s", echo, error->message);
      return NULL;
    }
  child->pid = atoi (g_subprocess_get_identifier (child->process));

  /* "listening on http://127.0.0.1:PORT/engine.io/" */
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (child->process));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  port_text = line != NULL ? strstr (line, "127.0.0.1:") : NULL;
  if (port_text != NULL)
    digits = g_strndup (port_text + 10, strspn (port_text + 10, "0123456789"));
  if (digits == NULL || !g_ascii_string_to_unsigned (digits, 10, 1, 65535, &port, NULL))
    {
      g_test_fail_printf ("engineio-echo did not start: “%s”", line ? line : "(no output)");
      return NULL;
    }
  child->port = (guint) port;
  return g_steal_pointer (&child);
}

/* The fields of /proc/<pid>/stat after the command name, or NULL once
 * the process has ended (gone, or a zombie). */
static GStrv
child_stat (Child *child)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", child->pid);
  g_autofree char *text = NULL;
  const char *end;
  GStrv fields;

  if (!g_file_get_contents (path, &text, NULL, NULL) || (end = strrchr (text, ')')) == NULL)
    return NULL;
  fields = g_strsplit (end + 2, " ", -1);
  /* fields[0] is the state (stat field 3) */
  if (fields[0] == NULL || fields[0][0] == 'Z' || fields[0][0] == 'X')
    {
      g_strfreev (fields);
      return NULL;
    }
  return fields;
}

static gboolean
child_alive (Child *child)
{
  g_auto(GStrv) fields = child_stat (child);

  return fields != NULL;
}

/* User + system CPU time of the child so far, in seconds; -1 if it ended. */
static double
child_cpu_seconds (Child *child)
{
  g_auto(GStrv) fields = child_stat (child);

  /* utime and stime are stat fields 14 and 15: here 11 and 12. */
  if (fields == NULL || g_strv_length (fields) < 13)
    return -1;
  return (g_ascii_strtod (fields[11], NULL) + g_ascii_strtod (fields[12], NULL)) /
         (double) sysconf (_SC_CLK_TCK);
}

static guint
child_count_fds (Child *child)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", child->pid);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  if (dir == NULL)
    return 0;
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* The soft descriptor limit of the child, from /proc/<pid>/limits; 0 if
 * unknown. */
static guint64
child_soft_fd_limit (Child *child)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/limits", child->pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return 0;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "Max open files"))
      return g_ascii_strtoull (lines[i] + strlen ("Max open files"), NULL, 10);
  return 0;
}

/* A counter of the child's /metrics; -1 if not there. The request is
 * retried while its connection is refused: right after the test closes
 * connections the server may still count them (it learns of each close on
 * its next run, and accepts before it handles the closes of the same
 * run), so a connection made at once can meet the descriptor budget. */
static gint64
child_metric (Child      *child,
              const char *name)
{
  g_autoptr(TestResponse) response = NULL;
  g_autofree char *text = NULL;
  g_autofree char *needle = g_strdup_printf ("\n%s ", name);
  gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;
  const char *found;

  for (;;)
    {
      g_autoptr(TestHttp) http = test_http_new (child->port);

      response = test_http_request (http, "GET", "/metrics", NULL, NULL, -1, REL_WAIT_MS, NULL);
      if (response != NULL || g_get_monotonic_time () >= deadline)
        break;
      g_usleep (20 * 1000);
    }
  if (response == NULL || response->status != 200)
    return -1;
  text = test_response_text (response);
  found = strstr (text, needle);
  if (found == NULL)
    return -1;
  return g_ascii_strtoll (found + strlen (needle), NULL, 10);
}

/* ------------------------------------------------------------------ */
/* Handshakes                                                           */
/* ------------------------------------------------------------------ */

typedef enum
{
  OUTCOME_OPENED,
  OUTCOME_REFUSED,  /* 503 {"code":4,...} */
  OUTCOME_FAILED,   /* anything else: no answer, a reset, another status */
} Outcome;

/* A polling handshake on a connection of its own, closed after it. The
 * session stays open; its sid goes to @sids. */
static Outcome
polling_handshake (guint       port,
                   guint       timeout_ms,
                   GPtrArray  *sids,
                   char      **detail)
{
  g_autoptr(TestHttp) http = test_http_new (port);
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(TestOpenPacket) open = NULL;
  g_autoptr(GError) error = NULL;

  response = test_http_request (http, "GET", "/engine.io/?EIO=4&transport=polling", NULL, NULL, -1,
                                timeout_ms, &error);
  if (response == NULL)
    {
      *detail = g_strdup_printf ("no answer: %s", error->message);
      return OUTCOME_FAILED;
    }
  if (test_eio_is_error (response, 503, 4))
    return OUTCOME_REFUSED;
  packets = test_eio_handshake_packets_try (response, 4, &open, &error);
  if (packets == NULL)
    {
      *detail = g_strdup (error->message);
      return OUTCOME_FAILED;
    }
  g_ptr_array_add (sids, g_strdup (open->sid));
  return OUTCOME_OPENED;
}

/* A direct WebSocket handshake; the open connection goes to @sockets. */
static Outcome
websocket_handshake (guint       port,
                     GPtrArray  *sockets,
                     char      **detail)
{
  g_autofree char *target = test_eio_target (4, "websocket", NULL);
  g_autoptr(TestResponse) response = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(TestWsFrame) frame = NULL;
  TestWs *ws;

  ws = test_ws_connect (port, target, NULL, 0, &response, &error);
  if (ws == NULL)
    {
      if (test_eio_is_error (response, 503, 4))
        return OUTCOME_REFUSED;
      *detail = response != NULL ? g_strdup_printf ("HTTP %u", response->status)
                                 : g_strdup_printf ("no answer: %s", error->message);
      return OUTCOME_FAILED;
    }
  frame = test_ws_read_frame (ws, REL_WAIT_MS, &error);
  if (frame == NULL || frame->opcode != TEST_WS_TEXT ||
      g_bytes_get_size (frame->payload) == 0 ||
      ((const char *) g_bytes_get_data (frame->payload, NULL))[0] != '0')
    {
      *detail = g_strdup_printf ("no open packet: %s", error ? error->message : "another frame");
      test_ws_free (ws);
      return OUTCOME_FAILED;
    }
  g_ptr_array_add (sockets, ws);
  return OUTCOME_OPENED;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

/* The healthy sessions: [0] polling (not in every test: its waiting
 * poll is a connection libmicrohttpd holds), [1] WebSocket. */
typedef struct
{
  Child      *child;
  RelHealthy *healthy[2];
  GPtrArray  *sids;      /* polling sessions opened by the flood */
  GPtrArray  *sockets;   /* TestWs: WebSocket sessions opened by the flood */
  int         close_failures;  /* (atomic) */
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gboolean with_polling = GPOINTER_TO_INT (data);

  f->sids = g_ptr_array_new_with_free_func (g_free);
  f->sockets = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_free);
  if (!enough_fds)
    {
      g_test_skip ("this process cannot open enough descriptors for the flood's clients");
      return;
    }
  f->child = child_start (CHILD_FD_LIMIT, CHILD_FD_LIMIT);
  if (f->child == NULL)
    return;
  for (guint i = 0; i < G_N_ELEMENTS (f->healthy); i++)
    {
      if (i == 0 && !with_polling)
        continue;
      f->healthy[i] = rel_healthy_start (f->child->port, i == 0 ? REL_HEALTHY_POLLING : REL_HEALTHY_WEBSOCKET,
                                         &error);
      g_assert_no_error (error);
      g_assert_true (rel_healthy_wait_more (f->healthy[i], 3, REL_WAIT_MS));
    }
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  for (guint i = 0; i < G_N_ELEMENTS (f->healthy); i++)
    if (f->healthy[i] != NULL)
      {
        g_autofree char *error = rel_healthy_stop (f->healthy[i], FALSE);
        if (error != NULL)
          g_test_fail_printf ("%s", error);
      }
  g_ptr_array_unref (f->sockets);
  g_ptr_array_unref (f->sids);
  if (f->child != NULL && child_alive (f->child))
    child_stop (f->child);
  g_clear_pointer (&f->child, child_free);
}

static void
assert_healthy (Fixture *f)
{
  for (guint i = 0; i < G_N_ELEMENTS (f->healthy); i++)
    if (f->healthy[i] != NULL && !rel_healthy_wait_more (f->healthy[i], 3, REL_WAIT_MS))
      {
        g_autofree char *error = rel_healthy_dup_error (f->healthy[i]);
        g_test_fail_printf ("healthy %s session did not keep working: %s",
                            i == 0 ? "polling" : "WebSocket", error ? error : "too slow");
      }
}

/* Handshakes until the first refusal; FALSE (test failed) if one failed
 * in another way, the server died, or none was refused. */
static gboolean
flood_until_refused (Fixture  *f,
                     gboolean  websocket)
{
  guint port = f->child->port;

  for (guint i = 0; i < MAX_HANDSHAKES; i++)
    {
      g_autofree char *detail = NULL;
      Outcome outcome = websocket ? websocket_handshake (port, f->sockets, &detail)
                                  : polling_handshake (port, REL_WAIT_MS, f->sids, &detail);

      if (outcome == OUTCOME_REFUSED)
        {
          guint fds = child_count_fds (f->child);

          g_test_message ("first refusal after %u handshakes; the server holds %u descriptors", i, fds);
          /* Refused before the descriptors ran out, with room to spare
           * for answering. */
          g_assert_cmpuint (fds, <, CHILD_FD_LIMIT - 16);
          return TRUE;
        }
      if (outcome == OUTCOME_FAILED)
        {
          double cpu = child_cpu_seconds (f->child);

          g_usleep (G_USEC_PER_SEC);
          g_test_message ("%s handshake %u: %s (server %s, %u descriptors, %.0f%% of a core "
                          "over the last second)",
                          websocket ? "WebSocket" : "polling", i, detail,
                          child_alive (f->child) ? "alive" : "DEAD", child_count_fds (f->child),
                          cpu >= 0 && child_alive (f->child) ? (child_cpu_seconds (f->child) - cpu) * 100 : 0.0);
          g_test_fail_printf ("%s handshake %u: %s", websocket ? "WebSocket" : "polling", i, detail);
          return FALSE;
        }
    }
  g_test_message ("%u handshakes accepted with a limit of %u descriptors, none refused",
                  MAX_HANDSHAKES, CHILD_FD_LIMIT);
  g_test_fail_printf ("%u handshakes accepted with a limit of %u descriptors, none refused",
                      MAX_HANDSHAKES, CHILD_FD_LIMIT);
  return FALSE;
}

/* Every kind of handshake is refused (503, code 4) now, and the server
 * lives and answers. */
static void
assert_refusing (Fixture *f)
{
  g_autoptr(GPtrArray) sids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) sockets = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_free);

  for (guint i = 0; i < 20; i++)
    {
      g_autofree char *detail = NULL;
      gboolean websocket = i % 2 == 1;
      Outcome outcome = websocket ? websocket_handshake (f->child->port, sockets, &detail)
                                  : polling_handshake (f->child->port, REL_WAIT_MS, sids, &detail);

      if (outcome != OUTCOME_REFUSED)
        {
          g_test_fail_printf ("%s handshake %u at the bound: %s", websocket ? "WebSocket" : "polling", i,
                              outcome == OUTCOME_OPENED ? "opened" : detail);
          return;
        }
    }
  g_assert_true (child_alive (f->child));
  g_assert_cmpint (child_metric (f->child, "engineio_handshakes_refused_total"), >=, 21);
}

/* While it refuses a handshake every REFUSE_INTERVAL_MS and an idle
 * connection waits, the server uses a small share of a core. */
static void
assert_not_spinning (Fixture *f)
{
  int idle = rel_tcp_connect (f->child->port);
  gint64 start, end;
  double cpu_start, cpu_end, share;
  guint refused = 0;

  g_assert_cmpint (idle, >=, 0);
  cpu_start = child_cpu_seconds (f->child);
  start = g_get_monotonic_time ();
  end = start + CPU_WINDOW_MS * 1000;
  while (g_get_monotonic_time () < end)
    {
      g_autoptr(GPtrArray) sids = g_ptr_array_new_with_free_func (g_free);
      g_autofree char *detail = NULL;

      if (polling_handshake (f->child->port, REFUSE_INTERVAL_MS * 5, sids, &detail) == OUTCOME_REFUSED)
        refused++;
      g_usleep (REFUSE_INTERVAL_MS * 1000);
    }
  cpu_end = child_cpu_seconds (f->child);
  end = g_get_monotonic_time ();
  close (idle);

  g_assert_cmpfloat (cpu_start, >=, 0);
  g_assert_cmpfloat (cpu_end, >=, 0);
  share = (cpu_end - cpu_start) / ((double) (end - start) / G_USEC_PER_SEC);
  g_test_message ("server CPU while refusing %u handshakes: %.0f%% of a core", refused, share * 100);
  g_assert_cmpuint (refused, >=, CPU_WINDOW_MS / REFUSE_INTERVAL_MS / 2);
  g_assert_cmpfloat (share, <, MAX_CPU_SHARE);
}

/* Idle connections opened beyond the server's descriptor budget are
 * closed as soon as they are accepted; the server stays within its
 * limit, alive, and does not spin. */
static void
assert_connections_bounded (Fixture *f)
{
  g_autoptr(GArray) fds = g_array_new (FALSE, FALSE, sizeof (int));
  gint64 limit = child_metric (f->child, "engineio_descriptor_limit");
  gint64 held = child_metric (f->child, "engineio_descriptors");
  gint64 deadline, start;
  guint expected, closed = 0, peak_fds = 0;
  double cpu_start, cpu_end;

  test_require (limit > 0 && held > 0 && held <= limit);
  /* The server cannot take more than limit - held of them, give or take
   * connections it has not counted yet. */
  test_require (limit - held + 16 < IDLE_CONNECTIONS);
  expected = IDLE_CONNECTIONS - (guint) (limit - held) - 16;

  cpu_start = child_cpu_seconds (f->child);
  start = g_get_monotonic_time ();
  for (guint i = 0; i < IDLE_CONNECTIONS; i++)
    {
      int fd = rel_tcp_connect (f->child->port);

      test_require (fd >= 0);
      g_array_append_val (fds, fd);
    }
  deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;
  while (closed < expected && g_get_monotonic_time () < deadline)
    {
      closed = 0;
      for (guint i = 0; i < fds->len; i++)
        {
          int *fd = &g_array_index (fds, int, i);
          if (*fd < 0 || rel_tcp_is_closed (*fd))
            {
              if (*fd >= 0)
                close (*fd);
              *fd = -1;
              closed++;
            }
        }
      peak_fds = MAX (peak_fds, child_count_fds (f->child));
      if (closed < expected)
        g_usleep (20 * 1000);
    }
  cpu_end = child_cpu_seconds (f->child);
  g_test_message ("%u of %u idle connections refused (budget %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                  " held before); the server held at most %u descriptors; %.0f%% of a core",
                  closed, IDLE_CONNECTIONS, limit, held, peak_fds,
                  (cpu_end - cpu_start) * 100 / ((double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC));
  g_assert_cmpuint (closed, >=, expected);
  g_assert_cmpuint (peak_fds, <, CHILD_FD_LIMIT - 16);
  g_assert_true (child_alive (f->child));
  assert_healthy (f);

  for (guint i = 0; i < fds->len; i++)
    if (g_array_index (fds, int, i) >= 0)
      close (g_array_index (fds, int, i));
  g_assert_cmpint (child_metric (f->child, "engineio_connections_refused_total"), >=, expected);
}

/* Once sessions close, a handshake of @websocket's kind opens a session
 * again (the server forgets closed sessions asynchronously: retried). */
static void
assert_accepting_again (Fixture  *f,
                        gboolean  websocket)
{
  gint64 deadline = g_get_monotonic_time () + REL_WAIT_MS * 1000;
  g_autoptr(GPtrArray) sids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) sockets = g_ptr_array_new_with_free_func ((GDestroyNotify) test_ws_free);
  g_autofree char *detail = NULL;
  Outcome outcome;

  do
    {
      g_clear_pointer (&detail, g_free);
      outcome = websocket ? websocket_handshake (f->child->port, sockets, &detail)
                          : polling_handshake (f->child->port, REL_WAIT_MS, sids, &detail);
      if (outcome != OUTCOME_REFUSED)
        break;
      g_usleep (50 * 1000);
    }
  while (g_get_monotonic_time () < deadline);
  if (outcome != OUTCOME_OPENED)
    g_test_fail_printf ("after the sessions closed, a %s handshake: %s",
                        websocket ? "WebSocket" : "polling",
                        outcome == OUTCOME_REFUSED ? "still refused" : detail);
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* rel_parallel(): POSTs a close packet for the polling session @index. */
static void
close_polling_session (guint    index,
                       gpointer data)
{
  Fixture *f = data;
  g_autoptr(TestHttp) http = test_http_new (f->child->port);
  g_autofree char *target = test_eio_target (4, "polling", g_ptr_array_index (f->sids, index));
  g_autoptr(TestResponse) response = test_http_request (http, "POST", target, NULL, TEST_S ("1"),
                                                        REL_WAIT_MS, NULL);

  if (response == NULL || response->status != 200)
    g_atomic_int_inc (&f->close_failures);
}

static void
test_polling_flood (Fixture       *f,
                    gconstpointer  data)
{

  g_test_summary ("Polling handshakes from one client, each on a connection it closes, against a "
                  "server limited to 1024 descriptors: refused with 503 {\"code\":4} before the "
                  "descriptors run out; the server lives, existing sessions keep working, the "
                  "server does not spin, and handshakes succeed again once sessions close");
  if (!enough_fds)
    return;  /* skipped */
  test_require (f->child != NULL);

  test_require (flood_until_refused (f, FALSE));
  assert_refusing (f);
  assert_healthy (f);
  assert_not_spinning (f);
  assert_healthy (f);

  /* The client closes its sessions (close packet). */
  rel_parallel (8, f->sids->len, close_polling_session, f);
  g_assert_cmpuint (g_atomic_int_get (&f->close_failures), ==, 0);
  assert_accepting_again (f, FALSE);
  assert_accepting_again (f, TRUE);
  assert_healthy (f);
  g_assert_true (child_alive (f->child));
}

static void
test_websocket_flood (Fixture       *f,
                      gconstpointer  data)
{
  gboolean refused;

  g_test_summary ("Direct WebSocket handshakes from one client, all kept open, against a server "
                  "limited to 1024 descriptors: refused with 503 {\"code\":4} before the "
                  "descriptors run out; the server lives, existing sessions keep working, the "
                  "server does not spin (libmicrohttpd, which upgraded WebSockets have left, "
                  "busy-waited on accept() at EMFILE); idle connections beyond the budget are "
                  "closed at once; handshakes succeed again once sessions close");
  if (!enough_fds)
    return;  /* skipped */
  test_require (f->child != NULL);

  refused = flood_until_refused (f, TRUE);
  if (refused)
    {
      assert_refusing (f);
      assert_healthy (f);
    }
  test_require (child_alive (f->child));
  /* Also when the flood went wrong: that is where it would spin. */
  assert_not_spinning (f);
  test_require (refused);
  assert_healthy (f);
  assert_connections_bounded (f);

  /* The client goes away. */
  g_ptr_array_set_size (f->sockets, 0);
  assert_accepting_again (f, TRUE);
  assert_accepting_again (f, FALSE);
  assert_healthy (f);
  g_assert_true (child_alive (f->child));
}

static void
test_rlimit_raised (void)
{
  g_autoptr(Child) child = NULL;

  g_test_summary ("The server raises its soft descriptor limit to the hard limit when it starts "
                  "listening");

  child = child_start (256, CHILD_FD_LIMIT);
  test_require (child != NULL);
  g_assert_cmpuint (child_soft_fd_limit (child), ==, CHILD_FD_LIMIT);
}

int
main (int   argc,
      char *argv[])
{
  struct rlimit limit;

  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

  /* The client side holds a socket per WebSocket session of the flood. */
  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
  enough_fds = getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= 2 * MAX_HANDSHAKES;

#define ADD(path, func, with_polling) \
  g_test_add ("/reliability/descriptors/" path, Fixture, GINT_TO_POINTER (with_polling), \
              fixture_setup, func, fixture_teardown)
  ADD ("polling-flood", test_polling_flood, TRUE);
  ADD ("websocket-flood", test_websocket_flood, FALSE);
#undef ADD
  g_test_add_func ("/reliability/descriptors/rlimit-raised", test_rlimit_raised);

  return g_test_run ();
}
