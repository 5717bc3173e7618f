/* engineio-echo: an Engine.IO echo server, for tests, benchmarks and
 * anyone checking a client's conformance.
 *
 * Uses only the public API.
 *
 * SPDX-License-Identifier: MIT
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <engineio/engineio.h>
#if ENGINE_IO_HAVE_SOUP
#include <engineio/engineio-soup.h>
#endif

#include "tool-cli.h"

#define NAME "engineio-echo"

static gboolean verbose;
static GMutex print_lock;

/* --broadcast: every message goes to every session instead of back to its
 * sender, through the engine's broadcast (ECHO_BROADCAST_API) or through
 * the loop an application would write by hand (ECHO_BROADCAST_LOOP); a
 * benchmark compares the two (engineio-bench --mode broadcast). */
typedef enum {
  ECHO_BACK,
  ECHO_BROADCAST_API,
  ECHO_BROADCAST_LOOP,
} EchoMode;

static EchoMode echo_mode = ECHO_BACK;
static EngineIOServer *echo_server;  /* the server, for --broadcast */

static void
event_line (const char *format,
            ...) G_GNUC_PRINTF (1, 2);

/* One line per event, whole lines only even from many session threads. */
static void
event_line (const char *format,
            ...)
{
  va_list args;

  if (!verbose)
    return;
  g_mutex_lock (&print_lock);
  va_start (args, format);
  vprintf (format, args);
  va_end (args);
  putchar ('\n');
  fflush (stdout);
  g_mutex_unlock (&print_lock);
}

/* The socket's message function: the whole message, as a packet. */
static void
on_message (EngineIOSocket *socket,
            EngineIOPacket *packet,
            gpointer        user_data)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_MESSAGE)
    return;
  if (echo_mode == ECHO_BROADCAST_API)
    {
      /* Encoded once, shared by every recipient. */
      engine_io_server_broadcast_packet (echo_server, packet, NULL);
      return;
    }
  if (echo_mode == ECHO_BROADCAST_LOOP)
    {
      g_autoptr(GPtrArray) sockets = engine_io_server_get_sockets (echo_server);

      for (guint i = 0; i < sockets->len; i++)
        {
          EngineIOSocket *to = g_ptr_array_index (sockets, i);

          if (engine_io_packet_is_binary (packet))
            engine_io_socket_send_binary (to, engine_io_packet_get_data (packet), NULL);
          else
            {
              gsize length = 0;
              const char *text = engine_io_packet_get_text (packet, &length);

              engine_io_socket_send_text_len (to, text, (gssize) length, NULL);
            }
        }
      return;
    }
  /* The message itself goes back: packets are immutable, so the received
   * one is sent as it is, neither copied nor validated again (as Node's
   * socket.send(data) does with what it received). */
  ok = engine_io_socket_send_packet (socket, packet, &error);
  if (!ok)
    g_debug ("echo to %s failed: %s", engine_io_socket_get_id (socket), error->message);
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          gpointer             user_data)
{
  event_line ("close %s %s", engine_io_socket_get_id (socket),
              engine_io_close_reason_to_string (reason));
}

static void
on_transport (EngineIOSocket *socket,
              GParamSpec     *pspec,
              gpointer        user_data)
{
  event_line ("upgrade %s %s", engine_io_socket_get_id (socket),
              engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)));
}

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               gpointer        user_data)
{
  event_line ("open %s v%s %s", engine_io_socket_get_id (socket),
              engine_io_protocol_version_to_string (engine_io_socket_get_protocol_version (socket)),
              engine_io_transport_type_to_string (engine_io_socket_get_transport (socket)));
  /* Not ::message: a message function costs no signal per message. */
  engine_io_socket_set_message_func (socket, on_message, NULL, NULL);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), NULL);
  g_signal_connect (socket, "notify::transport", G_CALLBACK (on_transport), NULL);
}

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_CONTINUE;
}

static gboolean
parse_transports (const char          *text,
                  EngineIOTransports  *out,
                  GError             **error)
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);

  *out = ENGINE_IO_TRANSPORTS_NONE;
  for (guint i = 0; parts[i] != NULL; i++)
    {
      EngineIOTransportType type;
      g_strstrip (parts[i]);
      if (!engine_io_transport_type_from_string (parts[i], &type))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       "Unknown transport “%s” (polling, websocket)", parts[i]);
          return FALSE;
        }
      *out |= type == ENGINE_IO_TRANSPORT_POLLING ? ENGINE_IO_TRANSPORTS_POLLING
                                                  : ENGINE_IO_TRANSPORTS_WEBSOCKET;
    }
  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  /* String options start NULL: GOption does not free a default it
   * replaces. The defaults are filled in after parsing. */
  g_autofree char *address = NULL;
  g_autofree char *path = NULL;
  g_autofree char *cors = NULL;
  g_autofree char *metrics_path = NULL;
  g_autofree char *transports_text = NULL;
  g_autofree char *origins_text = NULL;
  g_autofree char *policy_text = NULL;
  g_autofree char *broadcast_text = NULL;
  g_auto(GStrv) allowed_origins = NULL;
  g_autofree char *proxies_text = NULL;
  g_auto(GStrv) trusted_proxies = NULL;
  g_autofree char *tls_cert = NULL;
  g_autofree char *tls_key = NULL;
  g_autofree char *host = NULL;
  guint bound_port;
#if ENGINE_IO_HAVE_SOUP
  g_autoptr(SoupServer) soup_server = NULL;
#endif
  g_autoptr(GTlsCertificate) certificate = NULL;
  int tls_status;
  int connection_timeout = 30;
  double handshake_rate = 0;
  int handshake_burst = 0;
  double message_rate = 0;
  int message_burst = 0;
  EngineIORateLimitPolicy message_policy;
  int port = 3000;
  int ping_interval = 25000;
  int ping_timeout = 20000;
  gint64 max_payload = 1000000;
  int loop_threads = 0;
  gboolean eio3 = FALSE;
  gboolean per_message_deflate = FALSE;
  gboolean version = FALSE;
  EngineIOTransports transports;
  GOptionEntry entries[] = {
    { "address", 0, 0, G_OPTION_ARG_STRING, &address, "Address to bind (default 127.0.0.1)", "ADDR" },
    { "port", 0, 0, G_OPTION_ARG_INT, &port, "Port (default 3000; 0 picks a free one)", "PORT" },
    { "path", 0, 0, G_OPTION_ARG_STRING, &path, "Engine path (default /engine.io/)", "PATH" },
    { "ping-interval", 0, 0, G_OPTION_ARG_INT, &ping_interval, "Heartbeat interval in ms (default 25000)", "MS" },
    { "ping-timeout", 0, 0, G_OPTION_ARG_INT, &ping_timeout, "Heartbeat timeout in ms (default 20000)", "MS" },
    { "max-payload", 0, 0, G_OPTION_ARG_INT64, &max_payload, "Largest payload in bytes (default 1000000)", "BYTES" },
    { "cors", 0, 0, G_OPTION_ARG_STRING, &cors, "Allowed CORS origin(s): * or a comma-separated list", "ORIGIN" },
    { "eio3", 0, 0, G_OPTION_ARG_NONE, &eio3, "Also accept protocol v3 clients", NULL },
    { "per-message-deflate", 0, 0, G_OPTION_ARG_NONE, &per_message_deflate, "Accept WebSocket permessage-deflate offers (RFC 7692)", NULL },
    { "transports", 0, 0, G_OPTION_ARG_STRING, &transports_text, "Enabled transports (default polling,websocket)", "LIST" },
    { "loop-threads", 0, 0, G_OPTION_ARG_INT, &loop_threads, "Shared session threads (default 0: one per session)", "N" },
    { "metrics-path", 0, 0, G_OPTION_ARG_STRING, &metrics_path, "Serve Prometheus metrics at this path (e.g. /metrics)", "PATH" },
    { "connection-timeout", 0, 0, G_OPTION_ARG_INT, &connection_timeout, "Seconds an idle connection is kept (default 30)", "S" },
    { "handshake-rate", 0, 0, G_OPTION_ARG_DOUBLE, &handshake_rate, "Handshakes per second per address (default 0: unlimited)", "RATE" },
    { "handshake-burst", 0, 0, G_OPTION_ARG_INT, &handshake_burst, "Handshakes an address may make at once (default 0: one second's worth)", "N" },
    { "message-rate", 0, 0, G_OPTION_ARG_DOUBLE, &message_rate, "Messages per second per session (default 0: unlimited)", "RATE" },
    { "message-burst", 0, 0, G_OPTION_ARG_INT, &message_burst, "Messages a client may send at once (default 0: one second's worth)", "N" },
    { "message-rate-policy", 0, 0, G_OPTION_ARG_STRING, &policy_text, "Past the message rate: close (default) or drop", "POLICY" },
    { "allowed-origins", 0, 0, G_OPTION_ARG_STRING, &origins_text, "Origins browsers may connect from, comma-separated (default: any)", "LIST" },
    { "trusted-proxies", 0, 0, G_OPTION_ARG_STRING, &proxies_text, "Reverse proxies whose X-Forwarded-For is believed: addresses or networks, comma-separated", "LIST" },
    { "tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert, "Serve HTTPS/WSS with this PEM certificate (chain)", "FILE" },
    { "tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key, "The PEM private key of --tls-cert", "FILE" },
    { "host", 0, 0, G_OPTION_ARG_STRING, &host, "The HTTP server: mhd (libmicrohttpd, default) or soup (a libsoup 3 SoupServer)", "HOST" },
    { "broadcast", 0, 0, G_OPTION_ARG_STRING, &broadcast_text, "Send every message to every session instead of echoing it: api (the engine's broadcast) or loop (a loop over the sessions)", "HOW" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print one line per open, upgrade and close", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) options = g_option_context_new ("- Engine.IO echo server");
  g_autoptr(GError) error = NULL;
  g_autoptr(EngineIOServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  guint sigint, sigterm;

  /* Localized GOption messages, and arguments decoded from the locale's
   * charset (UTF-8 ones fail to convert in the C locale). */
  setlocale (LC_ALL, "");

  g_option_context_set_summary (options,
    "Echoes every message back to its sender, text as text and binary as binary.");
  g_option_context_add_main_entries (options, entries, NULL);
  if (!g_option_context_parse (options, &argc, &argv, &error))
    {
      g_printerr (NAME ": %s\n", error->message);
      return TOOL_EXIT_USAGE;
    }
  if (version)
    return tool_print_version (NAME, ENGINE_IO_VERSION_S);
  if (!tool_check_no_arguments (NAME, argc, argv))
    return TOOL_EXIT_USAGE;
  if (address == NULL)
    address = g_strdup ("127.0.0.1");
  if (path == NULL)
    path = g_strdup ("/engine.io/");
  if (transports_text == NULL)
    transports_text = g_strdup ("polling,websocket");
  if (!parse_transports (transports_text, &transports, &error))
    {
      g_printerr ("engineio-echo: %s\n", error->message);
      return 2;
    }
  if (policy_text == NULL || strcmp (policy_text, "close") == 0)
    message_policy = ENGINE_IO_RATE_LIMIT_CLOSE;
  else if (g_strcmp0 (policy_text, "drop") == 0)
    message_policy = ENGINE_IO_RATE_LIMIT_DROP;
  else
    {
      g_printerr ("engineio-echo: unknown --message-rate-policy “%s” (close, drop)\n", policy_text);
      return 2;
    }
  if (broadcast_text == NULL)
    echo_mode = ECHO_BACK;
  else if (strcmp (broadcast_text, "api") == 0)
    echo_mode = ECHO_BROADCAST_API;
  else if (strcmp (broadcast_text, "loop") == 0)
    echo_mode = ECHO_BROADCAST_LOOP;
  else
    {
      g_printerr (NAME ": unknown --broadcast “%s” (api, loop)\n", broadcast_text);
      return TOOL_EXIT_USAGE;
    }
  if (origins_text != NULL)
    {
      g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
      g_auto(GStrv) parts = g_strsplit (origins_text, ",", -1);

      for (guint i = 0; parts[i] != NULL; i++)
        if (g_strstrip (parts[i])[0] != '\0')
          g_strv_builder_add (builder, parts[i]);
      allowed_origins = g_strv_builder_end (builder);
    }
  if (proxies_text != NULL)
    {
      g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();
      g_auto(GStrv) parts = g_strsplit (proxies_text, ",", -1);

      for (guint i = 0; parts[i] != NULL; i++)
        if (g_strstrip (parts[i])[0] != '\0')
          g_strv_builder_add (builder, parts[i]);
      trusted_proxies = g_strv_builder_end (builder);
    }
  if (host == NULL)
    host = g_strdup ("mhd");
  if (strcmp (host, "mhd") != 0 && strcmp (host, "soup") != 0)
    {
      g_printerr (NAME ": unknown --host “%s” (mhd, soup)\n", host);
      return TOOL_EXIT_USAGE;
    }
#if !ENGINE_IO_HAVE_SOUP
  if (strcmp (host, "soup") == 0)
    {
      g_printerr (NAME ": --host soup: this build has no libsoup host (meson option soup)\n");
      return TOOL_EXIT_USAGE;
    }
#endif
  tls_status = tool_load_tls (NAME, tls_cert, tls_key, &certificate);
  if (tls_status != 0)
    return tls_status;
  /* The ranges of the server's properties. */
  if (!tool_check_range (NAME, "port", port, 0, 65535) ||
      !tool_check_range (NAME, "ping-interval", ping_interval, 1, G_MAXINT / 2) ||
      !tool_check_range (NAME, "ping-timeout", ping_timeout, 1, G_MAXINT / 2) ||
      !tool_check_range (NAME, "max-payload", max_payload, 1, G_MAXUINT32) ||
      !tool_check_range (NAME, "loop-threads", loop_threads, 0, 1024) ||
      !tool_check_range (NAME, "connection-timeout", connection_timeout, 1, 86400) ||
      !tool_check_range_double (NAME, "handshake-rate", handshake_rate, 0, 1e6) ||
      !tool_check_range (NAME, "handshake-burst", handshake_burst, 0, 1000000) ||
      !tool_check_range_double (NAME, "message-rate", message_rate, 0, 1e9) ||
      !tool_check_range (NAME, "message-burst", message_burst, 0, G_MAXINT64))
    return TOOL_EXIT_USAGE;

  server = g_object_new (ENGINE_IO_TYPE_SERVER,
                         "path", path,
                         "ping-interval", (guint) ping_interval,
                         "ping-timeout", (guint) ping_timeout,
                         "max-payload", (guint64) max_payload,
                         "cors-origin", cors,
                         "allow-eio3", eio3,
                         "per-message-deflate", per_message_deflate,
                         "transports", transports,
                         "loop-threads", (guint) loop_threads,
                         "metrics-path", metrics_path,
                         "connection-timeout", (guint) connection_timeout,
                         "handshake-rate", handshake_rate,
                         "handshake-burst", (guint) handshake_burst,
                         "message-rate", message_rate,
                         "message-burst", (guint) message_burst,
                         "message-rate-policy", message_policy,
                         "allowed-origins", allowed_origins,
                         "trusted-proxies", trusted_proxies,
                         "tls-certificate", certificate,
                         NULL);
  echo_server = server;
  g_signal_connect (server, "connection", G_CALLBACK (on_connection), NULL);

#if ENGINE_IO_HAVE_SOUP
  if (strcmp (host, "soup") == 0)
    {
      g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (address);
      g_autoptr(GSocketAddress) sockaddr = NULL;
      GSList *listeners;

      if (inet == NULL)
        {
          g_printerr ("engineio-echo: “%s” is not a numeric IPv4 or IPv6 address\n", address);
          return 1;
        }
      sockaddr = g_inet_socket_address_new (inet, (guint16) port);
      /* Over TLS the soup host relays its WebSockets (engineio-soup.c). */
      soup_server = soup_server_new ("server-header", NULL, "tls-certificate", certificate, NULL);
      if (!engine_io_server_attach_soup (server, soup_server, NULL, &error) ||
          !soup_server_listen (soup_server, sockaddr,
                                  certificate != NULL ? SOUP_SERVER_LISTEN_HTTPS : 0, &error))
        {
          g_printerr ("engineio-echo: %s\n", error->message);
          return 1;
        }
      listeners = soup_server_get_listeners (soup_server);
      bound_port = (guint) port;
      if (listeners != NULL)
        {
          g_autoptr(GSocketAddress) local = g_socket_get_local_address (listeners->data, NULL);

          if (local != NULL)
            bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
        }
      g_slist_free (listeners);
    }
  else
#endif
    {
      if (!engine_io_server_listen (server, address, (guint) port, &error))
        {
          g_printerr ("engineio-echo: %s\n", error->message);
          return 1;
        }
      bound_port = engine_io_server_get_port (server);
    }

  printf ("listening on %s://%s%s%s:%u%s\n", certificate != NULL ? "https" : "http",
          strchr (address, ':') ? "[" : "", address, strchr (address, ':') ? "]" : "",
          bound_port, path);
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  sigint = g_unix_signal_add (SIGINT, on_signal, loop);
  sigterm = g_unix_signal_add (SIGTERM, on_signal, loop);
  g_main_loop_run (loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);

#if ENGINE_IO_HAVE_SOUP
  if (soup_server != NULL)
    {
      /* The engine's requests end with their connections. */
      engine_io_server_detach_soup (server, soup_server);
      soup_server_disconnect (soup_server);
    }
#endif
  engine_io_server_close (server);
  return 0;
}
