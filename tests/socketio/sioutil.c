/* sioutil.c: see sioutil.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "testutil.h"
#include "sioutil.h"

TestWs *
sio_ws_open (guint port,
             int   eio)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *target = test_eio_target (eio, "websocket", NULL);
  TestWs *ws = test_ws_connect (port, target, NULL, 0, NULL, &error);
  g_autofree char *open = NULL;

  g_assert_no_error (error);
  if (ws == NULL)
    return NULL;
  open = test_ws_read_text (ws, TEST_TIMEOUT_MS);
  if (open == NULL || open[0] != '0')
    {
      g_test_fail_printf ("expected an open packet, got “%s”", open ? open : "(nothing)");
      test_ws_free (ws);
      return NULL;
    }
  return ws;
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
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(TestWsFrame) frame = test_ws_read_frame (ws, timeout_ms, &error);
      g_autofree char *text = NULL;

      if (frame == NULL)
        return NULL;
      if (frame->opcode == TEST_WS_BINARY)
        {
          gsize len;
          const guint8 *data = g_bytes_get_data (frame->payload, &len);
          GString *out = g_string_new ("<bin:");

          for (gsize i = 0; i < len; i++)
            g_string_append_printf (out, "%02x", data[i]);
          g_string_append_c (out, '>');
          return g_string_free (out, FALSE);
        }
      if (frame->opcode != TEST_WS_TEXT)
        return NULL;
      text = test_ws_frame_dup_text (frame);
      if (text[0] == '2')
        {
          test_ws_send_text (ws, "3");
          continue;
        }
      if (text[0] != '4')
        return NULL;
      return g_strdup (text + 1);
    }
}

void
expect_next (TestWs     *ws,
             const char *expected)
{
  g_autofree char *got = sio_next (ws, TEST_TIMEOUT_MS);

  if (g_strcmp0 (got, expected) != 0)
    g_test_fail_printf ("expected “%s”, got “%.200s”", expected, got ? got : "(nothing)");
}
