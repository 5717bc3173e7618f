/* engineio-socket-ws-output.c: what a session hands its WebSocket
 *
 * Session context: moving packets into the WebSocket (the outbound
 * queue's flush, one packet), the send callbacks of what send() has
 * taken, giving up a WebSocket (a probe) with its close handshake in the
 * background, and a waiting poll released with a noop. Below the close
 * (engineio-socket-close.c), which flushes the WebSocket and drops the
 * probe, and the WebSocket transport (engineio-socket-websocket.c: its
 * callbacks, the upgrade): it calls neither, nor the executor.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* Bytes the WebSocket may hold before we stop moving packets into it: the rest
 * stays in the outbound queue, where the high-water mark sees it. */
#define WS_BUFFER_TARGET (256 * 1024)
/* The encoding buffer (@frame) serves packets up to
 * ENGINE_IO_WEBSOCKET_COALESCE_MAX bytes (and keeps its room between
 * frames); larger ones are sent from their own data (engine_io_socket_ws_send_packet()). */


/* Given-up WebSockets (probes, second WebSockets) finishing their close
 * handshake, per session, at most; a new one drops the oldest. */
#define MAX_DYING_WS 8

/* Hands @packet to the WebSocket: FALSE if it did not take it. */
gboolean
engine_io_socket_ws_send_packet (EngineIOSocket *self,
                                 EngineIOPacket *packet)
{
  GBytes *data = engine_io_packet_get_data (packet);
  gboolean binary = FALSE;

  if (g_bytes_get_size (data) > ENGINE_IO_WEBSOCKET_COALESCE_MAX)
    {
      /* A packet the WebSocket would not copy into its coalescing buffer:
       * sent from its own data, not copied (the WebSocket writes the type
       * byte, if any, then the data, with one sendmsg()). Encoding it into
       * self->frame first would copy it twice (there, then into a GBytes),
       * and keep a buffer that large in the session. */
      EngineIOPacketType type = engine_io_packet_get_packet_type (packet);

      binary = engine_io_packet_is_binary (packet);
      if (binary && self->version == ENGINE_IO_PROTOCOL_V4)
        return engine_io_websocket_send_bytes (self->ws, TRUE, data);
      return engine_io_websocket_send_prefixed (self->ws, binary,
                                                binary ? (guint8) type : (guint8) ('0' + type), data);
    }
  g_byte_array_set_size (self->frame, 0);
  engine_io_packet_encode_append (packet, self->version, self->frame, &binary);
  return engine_io_websocket_send (self->ws, binary, self->frame->data, self->frame->len);
}

/* Tells the send callbacks of @items (taken) on the session's context:
 * @flushed, whether their messages were sent. */
static void
post_flushed (EngineIOSocket *self,
              GPtrArray      *items,
              gboolean        flushed)
{
  Event *event = g_new0 (Event, 1);

  event->kind = EVENT_FLUSHED;
  event->items = items;
  event->flushed = flushed;
  engine_io_socket_post_event (self, event);
}

/* Send items whose message is in the WebSocket are told TRUE only once
 * send() has taken all of it (the kernel has it), not when it is handed
 * to the WebSocket: a connection that fails or stalls with output still in our
 * buffers would otherwise have said delivered for messages its client
 * never gets. Posts EVENT_FLUSHED for those sent since (session
 * context). */
void
engine_io_socket_ws_report_sent (EngineIOSocket *self)
{
  GPtrArray *done = NULL;
  guint64 sent;

  if (self->ws == NULL || self->ws_probe || g_queue_is_empty (&self->ws_unsent))
    return;
  sent = engine_io_websocket_get_sent_count (self->ws);
  while (!g_queue_is_empty (&self->ws_unsent) &&
         ((SendItem *) g_queue_peek_head (&self->ws_unsent))->ws_seq <= sent)
    {
      if (done == NULL)
        done = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_socket_send_item_free);
      g_ptr_array_add (done, g_queue_pop_head (&self->ws_unsent));
    }
  if (done != NULL)
    post_flushed (self, done, TRUE);
}

/* Hands @packets to the WebSocket; @notify (may be NULL, taken) are the
 * send items among them (ws_seq: their place in @packets): they wait in
 * ws_unsent for their message to be sent, or are told FALSE at once if
 * the WebSocket did not take it. */
void
engine_io_socket_ws_send_packets (EngineIOSocket *self,
                                  GPtrArray      *packets,
                                  GPtrArray      *notify)
{
  guint64 base = engine_io_websocket_get_queued_count (self->ws);
  guint n_ok = 0;

  while (n_ok < packets->len && engine_io_socket_ws_send_packet (self, g_ptr_array_index (packets, n_ok)))
    n_ok++;  /* a WebSocket that refused one refuses the rest */

  if (notify != NULL)
    {
      GPtrArray *refused = NULL;
      gsize n = 0;
      gpointer *items = g_ptr_array_steal (notify, &n);

      for (gsize i = 0; i < n; i++)
        {
          SendItem *item = items[i];

          if (item->ws_seq <= n_ok)
            {
              item->ws_seq += base;
              g_queue_push_tail (&self->ws_unsent, item);
            }
          else
            {
              if (refused == NULL)
                refused = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_socket_send_item_free);
              g_ptr_array_add (refused, item);
            }
        }
      g_free (items);
      g_ptr_array_unref (notify);
      if (refused != NULL)
        post_flushed (self, refused, FALSE);
    }
}

/* Moves queued packets into the WebSocket while it is not too full; the
 * rest waits in the outbound queue (where the high-water mark sees it)
 * until the WebSocket drains. */
void
engine_io_socket_ws_flush_outbound (EngineIOSocket *self)
{
  while (self->ws != NULL && !self->ws_probe && engine_io_websocket_can_send (self->ws) &&
         engine_io_websocket_get_buffered (self->ws) < WS_BUFFER_TARGET)
    {
      g_autoptr(GPtrArray) packets = NULL;
      GPtrArray *notify = NULL;

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      if (self->outbound.length == 0)
        {
          ENGINE_IO_UNLOCK (&self->state_lock);
          break;
        }
      packets = engine_io_socket_take_outbound_locked (self, WS_BUFFER_TARGET, 0, &notify);
      ENGINE_IO_UNLOCK (&self->state_lock);

      engine_io_socket_ws_send_packets (self, packets, notify);
      engine_io_websocket_flush (self->ws);
    }
  engine_io_socket_ws_report_sent (self);
}

/* Closes @ws (a probe we give up) in the background; it is freed when its
 * close completes, or when the session ends, whichever comes first. */
void
engine_io_socket_retire_ws (EngineIOSocket    *self,
                            EngineIOWebSocket *ws,
                            guint16            code,
                            const char        *reason)
{
  /* Too many: the oldest goes without finishing its close handshake.
   * (Not @ws: it may be dispatching, a probe given up from its own
   * message. The dying ones never call back into the session but to
   * leave dying_ws, so none of them is on the stack here.) */
  if (self->dying_ws->len >= MAX_DYING_WS)
    g_ptr_array_remove_index (self->dying_ws, 0);
  engine_io_websocket_close (ws, code, reason);
  if (engine_io_websocket_is_closed (ws))
    engine_io_websocket_free (ws);
  else
    g_ptr_array_add (self->dying_ws, ws);
}

/* The session machine's GIVE_UP_PROBE (its upgrade timer is stopped
 * already): drops the upgrade probe (if any is still ours), with a close
 * frame with @code (0: none, the probe is closed already, or the session
 * finishes), and lets polling go on; another probe may come. */
void
engine_io_socket_clear_probe (EngineIOSocket *self,
                              guint16         code,
                              const char     *reason)
{
  if (self->ws != NULL && self->ws_probe)
    {
      if (code != 0)
        engine_io_socket_retire_ws (self, g_steal_pointer (&self->ws), code, reason);
      else
        g_clear_pointer (&self->ws, engine_io_websocket_free);
    }
  if (self->ws == NULL)
    {
      self->ws_probe = FALSE;
      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      self->upgrading = FALSE;
      self->ws_claimed = FALSE;
      ENGINE_IO_UNLOCK (&self->state_lock);
    }
}


EngineIORequest *
engine_io_socket_release_poll_with_noop_locked (EngineIOSocket *self)
{
  EngineIORequest *req = self->active_get;

  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);

  if (req != NULL && req->suspended)
    {
      req->suspended = FALSE;
      req->answer_noop = TRUE;
      return req;
    }
  return NULL;
}
