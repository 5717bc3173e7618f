/* sioutil.c: see sioutil.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "testutil.h"
#include "sioutil.h"

TestWs *
sio_ws_open (guint port,
             int   eio)
{
  return test_eio_ws_open (port, eio);
}

gboolean
sio_send (TestWs     *ws,
          const char *packet)
{
  g_autofree char *message = g_strconcat ("4", packet, NULL);

  return test_ws_send_text (ws, message);
}

char *
sio_next (TestWs *ws,
          guint   timeout_ms)
{
  return test_eio_ws_next (ws, timeout_ms);
}

void
expect_next (TestWs     *ws,
             const char *expected)
{
  g_autofree char *got = sio_next (ws, TEST_TIMEOUT_MS);

  if (g_strcmp0 (got, expected) != 0)
    g_test_fail_printf ("expected “%s”, got “%.200s”", expected, got ? got : "(nothing)");
}

void
sio_expect_quiet (TestWs *ws)
{
  g_autofree char *more = sio_next (ws, 300);

  if (more != NULL)
    g_test_fail_printf ("unexpected message: %s", more);
}

gboolean
sio_connect (TestWs      *ws,
             const char  *nsp,
             const char  *auth,
             char       **sid,
             char       **pid)
{
  g_autofree char *packet = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *prefix = NULL;
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;

  if (strcmp (nsp, "/") == 0)
    {
      packet = g_strdup_printf ("0%s", auth ? auth : "");
      prefix = g_strdup ("0");
    }
  else
    {
      packet = g_strdup_printf ("0%s,%s", nsp, auth ? auth : "");
      prefix = g_strdup_printf ("0%s,", nsp);
    }
  if (!sio_send (ws, packet))
    return FALSE;
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  if (reply == NULL || !g_str_has_prefix (reply, prefix) ||
      !json_parser_load_from_data (parser, reply + strlen (prefix), -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)) ||
      !json_object_has_member (json_node_get_object (json_parser_get_root (parser)), "sid"))
    {
      g_test_fail_printf ("CONNECT to %s answered “%.200s”", nsp, reply ? reply : "(nothing)");
      return FALSE;
    }
  object = json_node_get_object (json_parser_get_root (parser));
  if (sid != NULL)
    *sid = g_strdup (json_object_get_string_member_with_default (object, "sid", ""));
  if (pid != NULL)
    *pid = json_object_has_member (object, "pid")
      ? g_strdup (json_object_get_string_member_with_default (object, "pid", "")) : NULL;
  return TRUE;
}

void
sio_expect_prefix (TestWs     *ws,
                   const char *prefix)
{
  g_autofree char *got = sio_next (ws, TEST_TIMEOUT_MS);

  if (got == NULL || !g_str_has_prefix (got, prefix))
    g_test_fail_printf ("expected “%s…”, got “%.200s”", prefix, got ? got : "(nothing)");
}

gboolean
sio_wait_closed (TestWs *ws,
                 guint   timeout_ms)
{
  return test_ws_read_close (ws, timeout_ms, NULL) != -3;
}

/* Appends a masked (all-zero key) final text frame carrying the
 * Engine.IO message "4<packet>". */
static void
append_frame (GByteArray *out,
              const char *packet)
{
  gsize len = strlen (packet) + 1;
  guint8 header[8];
  gsize n = 0;
  static const guint8 zero_key[4] = { 0, 0, 0, 0 };

  header[n++] = 0x81;
  if (len < 126)
    header[n++] = 0x80 | (guint8) len;
  else
    {
      g_assert_cmpuint (len, <, 65536);
      header[n++] = 0x80 | 126;
      header[n++] = (guint8) (len >> 8);
      header[n++] = (guint8) (len & 0xff);
    }
  g_byte_array_append (out, header, (guint) n);
  g_byte_array_append (out, zero_key, 4);
  g_byte_array_append (out, (const guint8 *) "4", 1);
  g_byte_array_append (out, (const guint8 *) packet, (guint) (len - 1));
}

gboolean
sio_send_batch (TestWs      *ws,
                const char **packets)
{
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GError) error = NULL;
  gboolean ok;

  for (guint i = 0; packets[i] != NULL; i++)
    append_frame (out, packets[i]);
  ok = test_ws_send_raw (ws, out->data, out->len, &error);
  g_assert_no_error (error);
  return ok;
}

char *
json_of_array (JsonArray *array)
{
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_ARRAY);
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  json_node_set_array (node, array);
  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

char *
json_of_node (JsonNode *node)
{
  g_autoptr(JsonGenerator) gen = json_generator_new ();

  if (node == NULL)
    return g_strdup ("null");
  json_generator_set_root (gen, node);
  return json_generator_to_data (gen, NULL);
}

const char *
arg_string (JsonArray *args,
            guint      i)
{
  JsonNode *node;

  if (json_array_get_length (args) <= i)
    return NULL;
  node = json_array_get_element (args, i);
  return JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING
    ? json_node_get_string (node) : NULL;
}

/* ------------------------------------------------------------------ */
/* The server fixture                                                   */
/* ------------------------------------------------------------------ */

static const char *
socket_nsp (SocketIOSocket *socket)
{
  return socket_io_namespace_get_name (socket_io_socket_get_namespace (socket));
}

static void
loopback_on_event (SocketIOSocket *socket,
                   const char     *name,
                   JsonArray      *args,
                   GPtrArray      *attachments,
                   SocketIOAck    *ack,
                   gpointer        user_data)
{
  SioLoopback *loopback = user_data;
  g_autofree char *json = json_of_array (args);
  g_autofree char *binary = attachments != NULL && attachments->len > 0
    ? g_strdup_printf (" +%u", attachments->len) : NULL;

  test_recorder_add (loopback->rec, "event %s %s %s%s%s", socket_nsp (socket), name, json,
                     binary ? binary : "", ack != NULL ? " ack" : "");
}

static void
loopback_on_disconnect (SocketIOSocket *socket,
                        const char     *reason,
                        gpointer        user_data)
{
  SioLoopback *loopback = user_data;
  g_auto(GStrv) rooms = socket_io_socket_get_rooms (socket);

  test_recorder_add (loopback->rec, "disconnect %s %s rooms=%u", socket_nsp (socket), reason,
                     g_strv_length (rooms));
}

static void
loopback_on_connection (SocketIONamespace *nsp,
                        SocketIOSocket    *socket,
                        gpointer           user_data)
{
  SioLoopback *loopback = user_data;
  g_autofree char *auth = json_of_node (socket_io_socket_get_auth (socket));

  test_recorder_add (loopback->rec, "connect %s %s %s", socket_io_namespace_get_name (nsp),
                     socket_io_socket_get_id (socket), auth);
  g_signal_connect (socket, "event", G_CALLBACK (loopback_on_event), loopback);
  g_signal_connect (socket, "disconnect", G_CALLBACK (loopback_on_disconnect), loopback);
  if (loopback->on_connection != NULL)
    loopback->on_connection (loopback, socket, loopback->user_data);
}

static void
loopback_on_new_namespace (SocketIOServer    *server,
                           SocketIONamespace *nsp,
                           gpointer           user_data)
{
  SioLoopback *loopback = user_data;

  test_recorder_add (loopback->rec, "new-namespace %s", socket_io_namespace_get_name (nsp));
  g_signal_connect (nsp, "connection", G_CALLBACK (loopback_on_connection), loopback);
}

void
sio_loopback_init (SioLoopback *loopback,
                   ...)
{
  va_list args;
  const char *first_property_name;

  loopback->rec = test_recorder_new ();
  loopback->engine = test_server_new ();
  loopback->sio = socket_io_server_new (loopback->engine);
  /* Every property but :engine may be set after construction. */
  va_start (args, loopback);
  first_property_name = va_arg (args, const char *);
  if (first_property_name != NULL)
    g_object_set_valist (G_OBJECT (loopback->sio), first_property_name, args);
  va_end (args);
}

SocketIONamespace *
sio_loopback_of (SioLoopback *loopback,
                 const char  *name)
{
  SocketIONamespace *nsp = socket_io_server_of (loopback->sio, name);

  g_signal_connect (nsp, "connection", G_CALLBACK (loopback_on_connection), loopback);
  return nsp;
}

void
sio_loopback_watch_dynamic (SioLoopback *loopback)
{
  g_signal_connect (loopback->sio, "new-namespace", G_CALLBACK (loopback_on_new_namespace), loopback);
}

gboolean
sio_loopback_listen (SioLoopback *loopback)
{
  loopback->port = test_server_listen (loopback->engine);
  return loopback->port != 0;
}

void
sio_loopback_clear (SioLoopback *loopback)
{
  if (loopback->engine != NULL)
    engine_io_server_close (loopback->engine);
  g_clear_object (&loopback->sio);
  g_clear_object (&loopback->engine);
  g_clear_pointer (&loopback->rec, test_recorder_free);
}

gboolean
sio_accept_any_namespace (SocketIOServer *server,
                          const char     *name,
                          JsonNode       *auth,
                          gpointer        user_data)
{
  return TRUE;
}

TestWs *
sio_loopback_open (SioLoopback *loopback)
{
  return sio_ws_open (loopback->port, 4);
}

TestWs *
sio_loopback_client (SioLoopback *loopback,
                     const char  *nsp,
                     char       **sid)
{
  g_autoptr(TestWs) ws = sio_loopback_open (loopback);

  if (ws == NULL || !sio_connect (ws, nsp, NULL, sid, NULL))
    return NULL;
  return g_steal_pointer (&ws);
}
