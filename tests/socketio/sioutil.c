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

TestWs *
sio_client_connect (guint       port,
                    const char *nsp)
{
  TestWs *ws = sio_ws_open (port, 4);
  g_autofree char *reply = NULL;
  g_autofree char *connect = NULL;
  g_autofree char *prefix = NULL;

  if (ws == NULL)
    return NULL;
  connect = strcmp (nsp, "/") == 0 ? g_strdup ("0") : g_strdup_printf ("0%s,", nsp);
  prefix = g_strdup_printf ("%s{\"sid\":", connect);
  sio_send (ws, connect);
  reply = sio_next (ws, TEST_TIMEOUT_MS);
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, prefix));
  return ws;
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
