/* socketio-client.c: a client (one Engine.IO session) and shared helpers
 *
 * SioClient's references and sends, failing a client, its connect
 * timeout; a CONNECT attempt's references; the payload and id helpers
 * the other files use.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

char *
socket_io_generate_id (void)
{
  guint8 raw[15];
  char *id;

  for (guint i = 0; i < sizeof raw; i++)
    raw[i] = (guint8) g_random_int_range (0, 256);
  id = g_base64_encode (raw, sizeof raw);
  for (char *p = id; *p != '\0'; p++)
    {
      if (*p == '+')
        *p = '-';
      else if (*p == '/')
        *p = '_';
    }
  return id;
}

/* [name, args...] (the elements of @args are shared, and sealed with the
 * packet). */
JsonNode *
socket_io_event_payload (const char *name,
                         JsonArray  *args)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  json_array_add_string_element (array, name);
  if (args != NULL)
    for (guint i = 0; i < json_array_get_length (args); i++)
      json_array_add_element (array, json_node_ref (json_array_get_element (args, i)));
  json_node_take_array (node, array);
  return node;
}

JsonNode *
socket_io_args_payload (JsonArray *args)
{
  JsonArray *array = json_array_new ();
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  if (args != NULL)
    for (guint i = 0; i < json_array_get_length (args); i++)
      json_array_add_element (array, json_node_ref (json_array_get_element (args, i)));
  json_node_take_array (node, array);
  return node;
}

/* The elements of @array from @first on, as a new array. */
JsonArray *
socket_io_array_tail (JsonNode *node,
                      guint     first)
{
  JsonArray *out = json_array_new ();

  if (node != NULL && JSON_NODE_HOLDS_ARRAY (node))
    {
      JsonArray *array = json_node_get_array (node);

      for (guint i = first; i < json_array_get_length (array); i++)
        json_array_add_element (out, json_node_ref (json_array_get_element (array, i)));
    }
  return out;
}

JsonNode *
socket_io_error_object (const char *message,
                        JsonNode   *data)
{
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_string_member (object, "message", message);
  if (data != NULL)
    json_object_set_member (object, "data", json_node_ref (data));
  json_node_take_object (node, object);
  return node;
}

/* ------------------------------------------------------------------ */
/* SioClient                                                            */
/* ------------------------------------------------------------------ */

SioClient *
socket_io_client_ref (SioClient *c)
{
  g_atomic_ref_count_inc (&c->ref_count);
  return c;
}

void
socket_io_client_unref (SioClient *c)
{
  if (!g_atomic_ref_count_dec (&c->ref_count))
    return;
  g_assert (c->connect_timer == NULL);
  g_hash_table_unref (c->sockets);
  g_hash_table_unref (c->pending);
  socket_io_decoder_free (c->decoder);
  g_mutex_clear (&c->send_lock);
  g_main_context_unref (c->context);
  g_object_unref (c->eio);
  g_object_unref (c->server);
  g_free (c);
}

/* Any thread. Sends one encoded packet: its text, then its attachments,
 * with nothing in between. A packet cut in the middle (the engine refused
 * an attachment) would corrupt the stream: the session is closed then. */
gboolean
socket_io_client_send_encoded (SioClient  *c,
                               GBytes     *text,
                               GPtrArray  *attachments,
                               GError    **error)
{
  gsize length;
  const char *data = g_bytes_get_data (text, &length);
  gboolean ok;

  g_mutex_lock (&c->send_lock);
  ok = engine_io_socket_send_text_len (c->eio, data, (gssize) length, error);
  if (ok && attachments != NULL)
    for (guint i = 0; i < attachments->len; i++)
      if (!engine_io_socket_send_binary (c->eio, g_ptr_array_index (attachments, i), error))
        {
          engine_io_socket_close (c->eio);
          ok = FALSE;
          break;
        }
  g_mutex_unlock (&c->send_lock);
  return ok;
}

gboolean
socket_io_client_send_packet (SioClient       *c,
                              SocketIOPacket  *packet,
                              GError         **error)
{
  g_autoptr(GPtrArray) attachments = NULL;
  g_autoptr(GBytes) text = socket_io_packet_encode (packet, &attachments);

  return socket_io_client_send_encoded (c, text, attachments, error);
}

void
socket_io_client_send_simple (SioClient          *c,
                              SocketIOPacketType  type,
                              const char         *nsp,
                              JsonNode           *data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SocketIOPacket) packet = socket_io_packet_new (type, nsp, data, SOCKET_IO_NO_ACK_ID,
                                                           NULL, &error);

  if (packet == NULL || !socket_io_client_send_packet (c, packet, &error))
    g_debug ("send to %s failed: %s", engine_io_socket_get_id (c->eio), error->message);
}

/* Session context. Closes the Engine.IO session; its sockets will
 * disconnect with @reason. */
void
socket_io_client_fail (SioClient  *c,
                       const char *reason)
{
  if (c->closed)
    return;
  c->closed = TRUE;
  if (c->close_reason == NULL)
    c->close_reason = reason;
  engine_io_socket_close (c->eio);
}

void
socket_io_client_cancel_connect_timer (SioClient *c)
{
  if (c->connect_timer != NULL)
    {
      g_source_destroy (c->connect_timer);
      g_source_unref (c->connect_timer);
      c->connect_timer = NULL;
    }
}

/* Session context. Copies the sockets, since closing one removes it. */
GPtrArray *
socket_io_client_dup_sockets (SioClient *c)
{
  GPtrArray *sockets = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, c->sockets);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (sockets, g_object_ref (value));
  return sockets;
}

gboolean
socket_io_client_on_connect_timeout (gpointer data)
{
  SioClient *c = data;

  if (g_hash_table_size (c->sockets) == 0 && g_hash_table_size (c->pending) == 0)
    {
      g_debug ("%s joined no namespace in time", engine_io_socket_get_id (c->eio));
      socket_io_client_fail (c, "forced server close");
    }
  g_source_unref (c->connect_timer);
  c->connect_timer = NULL;
  return G_SOURCE_REMOVE;
}

SioConnectAttempt *
socket_io_connect_attempt_ref (SioConnectAttempt *attempt)
{
  g_atomic_ref_count_inc (&attempt->ref_count);
  return attempt;
}

void
socket_io_connect_attempt_unref (SioConnectAttempt *attempt)
{
  if (!g_atomic_ref_count_dec (&attempt->ref_count))
    return;
  g_clear_object (&attempt->socket);
  g_clear_pointer (&attempt->c, socket_io_client_unref);
  g_object_unref (attempt->nsp);
  g_free (attempt->name);
  g_clear_pointer (&attempt->auth, json_node_unref);
  g_queue_clear_full (&attempt->early, (GDestroyNotify) socket_io_packet_unref);
  g_mutex_clear (&attempt->lock);
  g_free (attempt);
}

/* Session context: the session ended; forget the client and socket. */
void
socket_io_connect_attempt_abandon (gpointer data)
{
  SioConnectAttempt *attempt = data;
  SioClient *c;
  SocketIOSocket *socket;
  gboolean was_parked = FALSE;

  g_mutex_lock (&attempt->lock);
  c = g_steal_pointer (&attempt->c);
  socket = g_steal_pointer (&attempt->socket);
  g_mutex_unlock (&attempt->lock);
  /* A parked CONNECT (no socket yet) leaves its namespace's list at once,
   * with its auth: a slow ::new-namespace handler keeps only those of
   * clients still there (bounded by their sessions' max-namespaces). */
  if (socket == NULL && c != NULL)
    {
      g_mutex_lock (&c->server->lock);
      if (attempt->park_link != NULL)
        {
          g_queue_delete_link (&attempt->nsp->parked, attempt->park_link);
          attempt->park_link = NULL;
          was_parked = TRUE;
        }
      g_mutex_unlock (&c->server->lock);
      g_clear_pointer (&attempt->auth, json_node_unref);
      g_queue_clear_full (&attempt->early, (GDestroyNotify) socket_io_packet_unref);
    }
  g_clear_object (&socket);
  g_clear_pointer (&c, socket_io_client_unref);
  if (was_parked)
    socket_io_connect_attempt_unref (attempt);    /* the list's ref; not the last: ours follows */
  socket_io_connect_attempt_unref (attempt);
}
