/* test-broadcast.c: engine_io_server_broadcast_text/_binary/_packet and
 * engine_io_socket_send_packet() against a real server over loopback, with
 * raw WebSocket clients (tests/wsutil.h), in both threading modes
 * (ENGINE_IO_TEST_LOOP_THREADS).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "wsutil.h"
#include "engineio/engineio.h"

#define N_CLIENTS 10
#define N_SENDERS 10
#define N_EACH    20

/* The shared loopback fixture, sockets kept: messages are recorded, not
 * queued for receive(). */
typedef TestLoopback Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  test_loopback_init (f);
  f->keep_sockets = TRUE;
  g_object_set (f->server, "ping-interval", 20000, "ping-timeout", 20000, NULL);
  test_loopback_listen (f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  test_loopback_clear (f);
  test_log_check ();
}

static TestWs *
open_session (Fixture         *f,
              EngineIOSocket **socket)
{
  return test_eio_ws_open_socket (f->port, f->sockets, (gpointer *) socket);
}

/* The next data message: text without its "4", or "<bin:HEX>"; pings are
 * answered. NULL on timeout or close. */
static char *
next_message (TestWs *ws)
{
  return test_eio_ws_next (ws, TEST_TIMEOUT_MS);
}

typedef struct
{
  EngineIOServer *server;
  guint           index;
  GCond          *cond;
  GMutex         *mutex;
  gboolean       *go;
  guint           queued;     /* sockets reached, summed */
} Sender;

static gpointer
sender_thread (gpointer data)
{
  Sender *s = data;

  g_mutex_lock (s->mutex);
  while (!*s->go)
    g_cond_wait (s->cond, s->mutex);
  g_mutex_unlock (s->mutex);
  for (guint j = 0; j < N_EACH; j++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *text = g_strdup_printf ("s%u-%u", s->index, j);

      s->queued += engine_io_server_broadcast_text (s->server, text, -1, NULL, &error);
      g_assert_no_error (error);
    }
  return NULL;
}

static void
test_one_order (Fixture       *f,
                gconstpointer  data)
{
  TestWs *clients[N_CLIENTS] = { NULL, };
  EngineIOSocket *sockets[N_CLIENTS] = { NULL, };
  Sender senders[N_SENDERS];
  GThread *threads[N_SENDERS];
  GMutex mutex;
  GCond cond;
  gboolean go = FALSE;
  g_autoptr(GPtrArray) first = NULL;

  g_test_summary ("10 threads broadcast 20 messages each at once to 10 WebSocket clients: every "
                  "client gets all 200 once, each sender's in its order, and all clients the "
                  "same order (a loop of sends per socket gives each client its own order)");
  for (guint i = 0; i < N_CLIENTS; i++)
    test_require ((clients[i] = open_session (f, &sockets[i])) != NULL);

  g_mutex_init (&mutex);
  g_cond_init (&cond);
  for (guint i = 0; i < N_SENDERS; i++)
    {
      senders[i] = (Sender) { f->server, i, &cond, &mutex, &go, 0 };
      threads[i] = g_thread_new ("sender", sender_thread, &senders[i]);
    }
  g_mutex_lock (&mutex);
  go = TRUE;
  g_cond_broadcast (&cond);
  g_mutex_unlock (&mutex);
  for (guint i = 0; i < N_SENDERS; i++)
    {
      g_thread_join (threads[i]);
      g_assert_cmpuint (senders[i].queued, ==, N_EACH * N_CLIENTS);
    }
  g_mutex_clear (&mutex);
  g_cond_clear (&cond);

  for (guint c = 0; c < N_CLIENTS; c++)
    {
      g_autoptr(GPtrArray) got = g_ptr_array_new_with_free_func (g_free);
      guint next[N_SENDERS] = { 0, };

      for (guint n = 0; n < N_SENDERS * N_EACH; n++)
        {
          char *message = next_message (clients[c]);
          guint s, j;

          if (message == NULL)
            {
              g_test_fail_printf ("client %u: message %u missing", c, n);
              break;
            }
          if (sscanf (message, "s%u-%u", &s, &j) != 2 || s >= N_SENDERS || j != next[s])
            g_test_fail_printf ("client %u: “%s” out of its sender's order", c, message);
          else
            next[s]++;
          g_ptr_array_add (got, message);
        }
      if (first == NULL)
        first = g_steal_pointer (&got);
      else
        for (guint n = 0; n < first->len && n < got->len; n++)
          if (strcmp (g_ptr_array_index (first, n), g_ptr_array_index (got, n)) != 0)
            {
              g_test_fail_printf ("client %u differs from client 0 at message %u: %s vs %s", c, n,
                                  (char *) g_ptr_array_index (got, n),
                                  (char *) g_ptr_array_index (first, n));
              break;
            }
    }
  for (guint i = 0; i < N_CLIENTS; i++)
    {
      test_ws_free (clients[i]);
      g_clear_object (&sockets[i]);
    }
}

static void
test_except_and_kinds (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(TestWs) a = NULL;
  g_autoptr(TestWs) b = NULL;
  g_autoptr(TestWs) c = NULL;
  g_autoptr(EngineIOSocket) sa = NULL;
  g_autoptr(EngineIOSocket) sb = NULL;
  g_autoptr(EngineIOSocket) sc = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bin = g_bytes_new_static ("\x00\x01\xff", 3);
  g_autoptr(EngineIOPacket) ping = engine_io_packet_new (ENGINE_IO_PACKET_PING);
  g_autoptr(EngineIOPacket) shared = engine_io_packet_new_text (ENGINE_IO_PACKET_MESSAGE, "p", -1);
  g_autofree char *m1 = NULL;
  g_autofree char *m2 = NULL;
  g_autofree char *m3 = NULL;
  g_autofree char *m4 = NULL;
  g_autofree char *m5 = NULL;

  g_test_summary ("Broadcast text (U+0000 included) and binary, skipping the excepted socket; "
                  "invalid UTF-8 and non-message packets are refused with INVALID_ARGUMENT; a "
                  "closed socket is skipped without error; one packet sent to one socket");
  test_require ((a = open_session (f, &sa)) != NULL);
  test_require ((b = open_session (f, &sb)) != NULL);
  test_require ((c = open_session (f, &sc)) != NULL);

  g_assert_cmpuint (engine_io_server_broadcast_text (f->server, "x\0y", 3, sb, &error), ==, 2);
  g_assert_no_error (error);
  g_assert_cmpuint (engine_io_server_broadcast_binary (f->server, bin, NULL), ==, 3);
  g_assert_cmpuint (engine_io_server_broadcast_text (f->server, "\xff", 1, NULL, &error), ==, 0);
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (engine_io_socket_send_packet (sa, ping, &error));
  g_assert_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (engine_io_socket_send_packet (sa, shared, &error));
  g_assert_no_error (error);

  m1 = next_message (a);
  g_assert_true (m1 != NULL && memcmp (m1, "x\0y", 3) == 0);
  m2 = next_message (a);
  g_assert_cmpstr (m2, ==, "<bin:0001ff>");
  m3 = next_message (a);
  g_assert_cmpstr (m3, ==, "p");
  m4 = next_message (b);
  g_assert_cmpstr (m4, ==, "<bin:0001ff>");   /* not the text: b was excepted */
  m5 = next_message (c);
  g_assert_true (m5 != NULL && memcmp (m5, "x\0y", 3) == 0);

  /* c closes: the next broadcast reaches a and b only, without an error. */
  engine_io_socket_close (sc);
  {
    gint64 end = g_get_monotonic_time () + (gint64) TEST_TIMEOUT_MS * 1000;
    guint n;

    while ((n = engine_io_server_get_socket_count (f->server)) > 2 && g_get_monotonic_time () < end)
      g_usleep (2000);
    g_assert_cmpuint (n, ==, 2);
  }
  g_assert_cmpuint (engine_io_server_broadcast_text (f->server, "after", -1, NULL, &error), ==, 2);
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_set_nonfatal_assertions ();
  test_log_init ();

#define ADD(path, func) \
  g_test_add ("/broadcast/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("one-order", test_one_order);
  ADD ("except-and-kinds", test_except_and_kinds);
#undef ADD
  return g_test_run ();
}
