/* redisutil.c: see redisutil.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"
#include "redisutil.h"
#include "socketio/socketio-redis.h"

static void
test_no_redis (void)
{
  g_test_skip ("redis-server not installed (.ci/install-deps.sh installs it)");
}

gboolean
redis_available (const char *skip_path)
{
  g_autofree char *redis = g_find_program_in_path ("redis-server");

  if (redis == NULL)
    g_test_add_func (skip_path, test_no_redis);
  return redis != NULL;
}

GSocket *
redis_loopback_socket (gboolean  listening,
                       guint    *port)
{
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
                                  G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;

  g_assert_nonnull (socket);
  g_assert_true (g_socket_bind (socket, any, FALSE, NULL));
  if (listening)
    g_assert_true (g_socket_listen (socket, NULL));
  bound = g_socket_get_local_address (socket, NULL);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return socket;
}

guint
redis_free_port (void)
{
  guint port = 0;
  g_autoptr(GSocket) socket G_GNUC_UNUSED = redis_loopback_socket (FALSE, &port);

  return port;
}

/* The process id of the Redis answering on 127.0.0.1:@port (its INFO's
 * process_id), or 0 when nothing answers there. */
static GPid
redis_pid_on_port (guint port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GString) reply = g_string_new (NULL);
  static const char command[] = "INFO server\r\n";
  const char *line;
  char buffer[1024];

  g_socket_client_set_enable_proxy (client, FALSE);
  g_socket_client_set_timeout (client, 5);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, NULL);
  if (connection == NULL
      || !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                     command, sizeof command - 1, NULL, NULL, NULL))
    return 0;
  /* process_id is in the first lines of the Server section. */
  while ((line = strstr (reply->str, "process_id:")) == NULL || strchr (line, '\r') == NULL)
    {
      gssize n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                      buffer, sizeof buffer, NULL, NULL);

      if (n <= 0 || reply->len > 64 * 1024)
        return 0;
      g_string_append_len (reply, buffer, n);
    }
  return (GPid) g_ascii_strtoll (line + strlen ("process_id:"), NULL, 10);
}

GPid
redis_try_start (guint              port,
                 const char *const *extra_args)
{
  g_autofree char *port_str = g_strdup_printf ("%u", port);
  const char *base[] = { "redis-server", "--port", port_str, "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--daemonize", "no" };
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  GPid pid = 0;
  gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (guint i = 0; i < G_N_ELEMENTS (base); i++)
    g_ptr_array_add (argv, (gpointer) base[i]);
  for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra_args[i]);
  g_ptr_array_add (argv, NULL);
  g_spawn_async (NULL, (char **) argv->pdata, NULL,
                 G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL,
                 NULL, NULL, &pid, &error);
  g_assert_no_error (error);
  while (redis_pid_on_port (port) != pid)
    {
      if (waitpid (pid, NULL, WNOHANG) == pid)
        {
          g_spawn_close_pid (pid);
          return 0;
        }
      if (g_get_monotonic_time () > end)
        {
          g_test_fail_printf ("redis-server (pid %d) not answering on %u within 10 s", (int) pid, port);
          break;
        }
      g_usleep (20 * 1000);
    }
  return pid;
}

GPid
redis_start (guint *port)
{
  return redis_start_full (port, NULL);
}

GPid
redis_start_full (guint             *port,
                  const char *const *extra_args)
{
  GPid pid = 0;

  if (*port != 0)
    {
      pid = redis_try_start (*port, extra_args);
      if (pid == 0)
        g_test_fail_printf ("redis-server could not bind 127.0.0.1:%u: another process took it", *port);
      return pid;
    }
  /* A free port can be taken by another test process between our
   * probe and redis-server's bind (CI saw two tests share one Redis, each
   * adapter receiving the other's publications): another port then. */
  for (guint attempt = 0; attempt < 20 && pid == 0; attempt++)
    {
      *port = redis_free_port ();
      pid = redis_try_start (*port, extra_args);
      if (pid == 0)
        g_test_message ("redis-server lost port %u to another process; trying another", *port);
    }
  if (pid == 0)
    g_test_fail_printf ("redis-server could not bind a free loopback port in 20 attempts");
  return pid;
}

void
redis_stop (GPid pid)
{
  if (pid <= 0)
    return;
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  g_spawn_close_pid (pid);
}

/* Writes @length bytes of @command to a new connection to the Redis on
 * @port and returns the first read of the reply (at most 63 bytes). */
static char *
redis_round_trip (guint       port,
                  const void *command,
                  gsize       length)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  char *reply = g_malloc0 (64);
  gssize n;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", (guint16) port, NULL, &error);
  g_assert_no_error (error);
  if (connection == NULL)
    return reply;
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                            command, length, NULL, NULL, &error));
  g_assert_no_error (error);
  n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                           reply, 63, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, >, 0);
  return reply;
}

void
redis_command (guint       port,
               const char *command)
{
  g_autofree char *reply = redis_round_trip (port, command, strlen (command));

  g_assert_cmpstr (reply, ==, "+OK\r\n");
}

gint64
redis_publish (guint       port,
               const char *channel,
               const void *payload,
               gsize       length)
{
  g_autoptr(GString) command = g_string_new (NULL);
  g_autofree char *reply = NULL;

  g_string_append_printf (command, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                          strlen (channel), channel, length);
  g_string_append_len (command, payload, length);
  g_string_append (command, "\r\n");
  reply = redis_round_trip (port, command->str, command->len);
  g_assert_cmpint (reply[0], ==, ':');
  return g_ascii_strtoll (reply + 1, NULL, 10);
}

gboolean
redis_wait_connected (SocketIOAdapter *adapter,
                      gboolean         want,
                      guint            timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) test_scaled_ms (timeout_ms) * 1000;

  while (!!socket_io_redis_adapter_is_connected (SOCKET_IO_REDIS_ADAPTER (adapter)) != !!want)
    {
      if (g_get_monotonic_time () > end)
        return FALSE;
      g_usleep (10 * 1000);
    }
  return TRUE;
}

void
redis_run_json_threads (const char  *name,
                        GThreadFunc  func,
                        gpointer     data,
                        guint        n_threads)
{
  g_autoptr(GPtrArray) threads = g_ptr_array_new ();

  g_type_ensure (JSON_TYPE_BUILDER);
  g_type_ensure (JSON_TYPE_GENERATOR);
  g_type_ensure (JSON_TYPE_PARSER);
  for (guint i = 0; i < n_threads; i++)
    g_ptr_array_add (threads, g_thread_new (name, func, data));
  for (guint i = 0; i < n_threads; i++)
    {
      g_autofree char *failure = g_thread_join (g_ptr_array_index (threads, i));

      g_assert_null (failure);
    }
}
