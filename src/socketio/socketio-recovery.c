/* socketio-recovery.c: connection state recovery
 *
 * SocketIOSession (a persisted socket), and the in-memory adapter's
 * persisted sessions and kept packets.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/* ------------------------------------------------------------------ */
/* SocketIOSession                                                      */
/* ------------------------------------------------------------------ */

G_DEFINE_BOXED_TYPE (SocketIOSession, socket_io_session, socket_io_session_ref, socket_io_session_unref)

/**
 * socket_io_session_new:
 * @sid: the socket id
 * @pid: the private session id
 * @rooms: (array zero-terminated=1): the rooms of the socket
 * @data: (nullable): the socket's data (sealed by this call)
 *
 * Creates a session to persist or to restore (for adapters). Any thread.
 *
 * Returns: (transfer full): a new session, without missed packets
 */
SocketIOSession *
socket_io_session_new (const char         *sid,
                       const char         *pid,
                       const char * const *rooms,
                       JsonNode           *data)
{
  SocketIOSession *self;

  g_return_val_if_fail (sid != NULL && pid != NULL && rooms != NULL, NULL);
  self = g_new0 (SocketIOSession, 1);
  g_atomic_ref_count_init (&self->ref_count);
  self->sid = g_strdup (sid);
  self->pid = g_strdup (pid);
  self->rooms = g_strdupv ((char **) rooms);
  if (data != NULL)
    {
      self->data = json_node_ref (data);
      json_node_seal (self->data);
    }
  self->missed = g_ptr_array_new ();
  return self;
}

/**
 * socket_io_session_ref:
 * @self: a session
 *
 * Any thread.
 *
 * Returns: (transfer full): @self
 */
SocketIOSession *
socket_io_session_ref (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

/**
 * socket_io_session_unref:
 * @self: (transfer full): a session
 *
 * Any thread.
 */
void
socket_io_session_unref (SocketIOSession *self)
{
  g_return_if_fail (self != NULL);
  if (!g_atomic_ref_count_dec (&self->ref_count))
    return;
  for (guint i = 0; i < self->missed->len; i += 2)
    {
      g_bytes_unref (g_ptr_array_index (self->missed, i));
      if (g_ptr_array_index (self->missed, i + 1) != NULL)
        g_ptr_array_unref (g_ptr_array_index (self->missed, i + 1));
    }
  g_ptr_array_unref (self->missed);
  g_clear_pointer (&self->data, json_node_unref);
  g_strfreev (self->rooms);
  g_free (self->pid);
  g_free (self->sid);
  g_free (self);
}

/**
 * socket_io_session_get_sid:
 * @self: a session
 *
 * Returns: the socket id
 */
const char *
socket_io_session_get_sid (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->sid;
}

/**
 * socket_io_session_get_pid:
 * @self: a session
 *
 * Returns: the private session id
 */
const char *
socket_io_session_get_pid (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->pid;
}

/**
 * socket_io_session_get_rooms:
 * @self: a session
 *
 * Returns: (transfer none) (array zero-terminated=1): the socket's rooms
 */
const char * const *
socket_io_session_get_rooms (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return (const char * const *) self->rooms;
}

/**
 * socket_io_session_get_data:
 * @self: a session
 *
 * Returns: (transfer none) (nullable): the socket's data (sealed)
 */
JsonNode *
socket_io_session_get_data (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->data;
}

/**
 * socket_io_session_add_missed_packet:
 * @self: a session being restored
 * @text: an encoded packet (its offset included)
 * @attachments: (nullable) (element-type GBytes): its binary messages
 *
 * Adds a packet the client missed, to be sent after the CONNECT reply,
 * in the order added. Only by the thread building the session.
 */
void
socket_io_session_add_missed_packet (SocketIOSession *self,
                                     GBytes          *text,
                                     GPtrArray       *attachments)
{
  g_return_if_fail (self != NULL);
  g_return_if_fail (text != NULL);
  g_ptr_array_add (self->missed, g_bytes_ref (text));
  g_ptr_array_add (self->missed, attachments != NULL && attachments->len > 0
                   ? g_ptr_array_ref (attachments) : NULL);
}

/**
 * socket_io_session_get_n_missed_packets:
 * @self: a session
 *
 * Returns: how many packets were added with socket_io_session_add_missed_packet()
 */
guint
socket_io_session_get_n_missed_packets (SocketIOSession *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->missed->len / 2;
}

/**
 * socket_io_session_get_missed_packet:
 * @self: a session
 * @index: a packet index, below socket_io_session_get_n_missed_packets()
 * @attachments: (out) (optional) (nullable) (transfer none) (element-type GBytes):
 *   its binary messages, or %NULL
 *
 * Returns: (transfer none): the encoded packet
 */
GBytes *
socket_io_session_get_missed_packet (SocketIOSession  *self,
                                     guint             index,
                                     GPtrArray       **attachments)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (index < self->missed->len / 2, NULL);
  if (attachments != NULL)
    *attachments = g_ptr_array_index (self->missed, 2 * index + 1);
  return g_ptr_array_index (self->missed, 2 * index);
}

/* ------------------------------------------------------------------ */
/* The in-memory adapter's persisted sessions and kept packets         */
/* ------------------------------------------------------------------ */

void
socket_io_stored_session_free (SioStoredSession *stored)
{
  socket_io_session_unref (stored->session);
  g_free (stored);
}

void
socket_io_stored_packet_free (SioStoredPacket *packet)
{
  g_bytes_unref (packet->text);
  g_clear_pointer (&packet->attachments, g_ptr_array_unref);
  g_strfreev (packet->rooms);
  g_strfreev (packet->except);
  g_free (packet);
}

/* With the lock held. */
void
socket_io_adapter_drop_session (SocketIOAdapterPrivate *priv,
                                SioStoredSession       *stored)
{
  g_hash_table_remove (priv->sessions, stored->session->pid);
  g_queue_delete_link (&priv->session_queue, stored->link);
  socket_io_stored_session_free (stored);
}

static void
adapter_drop_oldest_packet (SocketIOAdapterPrivate *priv)
{
  SioStoredPacket *packet = g_queue_pop_head (&priv->packets);

  priv->packet_bytes -= packet->size;
  socket_io_stored_packet_free (packet);
}

/* With the lock held: drops what expired (lazily: on the namespace's
 * broadcasts, disconnections and recoveries). */
void
socket_io_adapter_purge (SocketIOAdapterPrivate *priv)
{
  SocketIOServer *server = priv->nsp != NULL ? priv->nsp->server : NULL;
  gint64 now = g_get_monotonic_time ();
  gint64 max;
  SioStoredSession *stored;
  SioStoredPacket *packet;

  if (server == NULL)
    return;
  max = (gint64) g_atomic_int_get (&server->max_disconnection) * 1000;
  while ((stored = g_queue_peek_head (&priv->session_queue)) != NULL && stored->at + max < now)
    socket_io_adapter_drop_session (priv, stored);
  while ((packet = g_queue_peek_head (&priv->packets)) != NULL && packet->at + max < now)
    adapter_drop_oldest_packet (priv);
}

static gsize
strv_size (char **strv)
{
  gsize size = sizeof (char *);

  for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
    size += sizeof (char *) + strlen (strv[i]) + 1 + 16;
  return size;
}

/* The EVENT @text (`2[...]`, `51-/nsp,[...]`) with the string @offset
 * appended to its arguments, or NULL for a packet that gets no offset
 * (not an EVENT, or with an ack id). */
static GBytes *
text_with_offset (GBytes     *text,
                  const char *offset)
{
  gsize len, i = 1;
  const char *p = g_bytes_get_data (text, &len);
  GString *out;

  if (len < 2 || (p[0] != '2' && p[0] != '5') || p[len - 1] != ']')
    return NULL;
  if (p[0] == '5')
    {
      while (i < len && g_ascii_isdigit (p[i]))
        i++;
      if (i >= len || p[i] != '-')
        return NULL;
      i++;
    }
  if (i < len && p[i] == '/')
    {
      while (i < len && p[i] != ',')
        i++;
      if (i >= len)
        return NULL;
      i++;
    }
  if (i >= len || p[i] != '[')
    return NULL;    /* an ack id */
  out = g_string_sized_new (len + strlen (offset) + 4);
  g_string_append_len (out, p, (gssize) len - 1);
  g_string_append (out, ",\"");
  g_string_append (out, offset);
  g_string_append (out, "\"]");
  return g_string_free_to_bytes (out);
}

/* With the lock held: numbers, keeps and returns the packet to send
 * (@text with its offset), or NULL to send @text as it is. */
GBytes *
socket_io_adapter_keep_packet (SocketIOAdapterPrivate *priv,
                               GBytes                 *text,
                               GPtrArray              *attachments,
                               const char * const     *rooms,
                               const char * const     *except)
{
  SocketIOServer *server = priv->nsp->server;
  char offset[24];
  GBytes *out;
  SioStoredPacket *packet;
  guint max_packets = g_atomic_int_get (&server->max_rec_packets);
  gsize max_bytes = g_atomic_int_get (&server->max_rec_bytes);

  g_snprintf (offset, sizeof offset, "%" G_GUINT64_FORMAT, priv->next_offset);
  out = text_with_offset (text, offset);
  if (out == NULL)
    return NULL;
  packet = g_new0 (SioStoredPacket, 1);
  packet->offset = priv->next_offset++;
  packet->at = g_get_monotonic_time ();
  packet->text = g_bytes_ref (out);
  packet->rooms = g_strdupv ((char **) rooms);
  packet->except = g_strdupv ((char **) except);
  packet->size = sizeof *packet + 64 + g_bytes_get_size (out) + strv_size (packet->rooms) +
    strv_size (packet->except);
  if (attachments != NULL && attachments->len > 0)
    {
      packet->attachments = g_ptr_array_ref (attachments);
      for (guint i = 0; i < attachments->len; i++)
        packet->size += 64 + g_bytes_get_size (g_ptr_array_index (attachments, i));
    }
  g_queue_push_tail (&priv->packets, packet);
  priv->packet_bytes += packet->size;
  /* The oldest go first: a session whose offset went is not recovered. */
  while (priv->packets.length > 0 &&
         (priv->packets.length > max_packets || priv->packet_bytes > max_bytes))
    adapter_drop_oldest_packet (priv);
  return out;
}

gboolean
socket_io_strv_intersects (char              **a,
                           const char * const *b)
{
  for (guint i = 0; a != NULL && a[i] != NULL; i++)
    if (b != NULL && g_strv_contains (b, a[i]))
      return TRUE;
  return FALSE;
}
