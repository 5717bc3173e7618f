/* engineio-socket-websocket.c: a session's WebSocket transport
 *
 * The WebSocket transport (session context): its callbacks, the I/O of
 * the upgrade from polling with its probe (its decisions are the session
 * machine's: the probe's events are its inputs, the executor carries out
 * its actions); and the serving-thread entry points of an upgrade. Moving
 * packets into the WebSocket and giving one up are in
 * engineio-socket-ws-output.c, below the close.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"

/* WebSocket (session context) */

static void ws_message_cb (EngineIOWebSocket *ws, gboolean binary, const guint8 *data, gsize size, GBytes *owner, gpointer user_data);
static void ws_drained_cb (EngineIOWebSocket *ws, gpointer user_data);
static void ws_closed_cb  (EngineIOWebSocket *ws, gboolean clean, guint16 code, gpointer user_data);
static void ws_stalled_cb (EngineIOWebSocket *ws, gpointer user_data);

static const EngineIOWebSocketCallbacks ws_callbacks = {
  .message = ws_message_cb,
  .drained = ws_drained_cb,
  .closed = ws_closed_cb,
  .stalled = ws_stalled_cb,
};

/* How long WebSocket output may wait with none of it written before the
 * connection closes with 1008: a heartbeat's worth, after which a client
 * that reads would have answered a ping. */
static guint
ws_stall_timeout (EngineIOSocket *self)
{
  return self->config->ping_interval + self->config->ping_timeout;
}

/* The probe's inputs: the session machine decides (the upgrade's rows of
 * its table, src/core/engineio-session-machine.c), the executor carries
 * its actions out. */
static void
feed_probe (EngineIOSocket         *self,
            EngineIOSessionInputKind kind,
            EngineIOPacket         *packet,
            gboolean                stalled)
{
  EngineIOSessionInput input = { .kind = kind, .packet = packet, .stalled = stalled };

  engine_io_socket_run_machine (self, &input, g_get_monotonic_time ());
}

static void
ws_message_cb (EngineIOWebSocket *ws,
               gboolean           binary,
               const guint8      *data,
               gsize              size,
               GBytes            *owner,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;

  /* A probe may be kept through a close (see engine_io_socket_do_close()). */
  if (ws != self->ws || (self->state != STATE_OPEN && !(self->ws_probe && self->state == STATE_CLOSING)))
    return;

  /* The WebSocket codec validated text frames' UTF-8 (closing with 1007 otherwise). */
  /* A large message comes with the buffer it was assembled in (@owner):
   * its packet is a slice of it, not a copy. */
  if (binary)
    {
      g_autoptr(GBytes) frame = owner != NULL ? g_bytes_new_from_bytes (owner, 0, size)
                                              : g_bytes_new (data, size);
      packet = engine_io_packet_decode (frame, TRUE, self->version, &error);
    }
  else if (owner != NULL)
    packet = engine_io_packet_decode_valid_text_owned (owner, (const char *) data, size,
                                                       self->version, &error);
  else
    packet = engine_io_packet_decode_valid_text ((const char *) data, size, self->version, &error);

  if (packet == NULL)
    {
      if (self->ws_probe)
        feed_probe (self, ENGINE_IO_SESSION_INPUT_PROBE_PACKET, NULL, FALSE);  /* a bad packet */
      else
        {
          self->ws_close_code = 1002;
          engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
        }
      return;
    }

  if (self->ws_probe)
    {
      feed_probe (self, ENGINE_IO_SESSION_INPUT_PROBE_PACKET, packet, FALSE);
      return;
    }

  if (self->config->message_rate > 0)
    {
      gboolean within;

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      within = engine_io_socket_message_within_rate_locked (self, packet);
      ENGINE_IO_UNLOCK (&self->state_lock);
      if (!within)
        {
          if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_CLOSE)
            {
              self->ws_close_code = 1008;  /* policy violation */
              engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_RATE_LIMITED, RATE_LIMITED_DESCRIPTION);
            }
          return;
        }
    }

  /* Handled here while the handlers are quick; slow handlers (or a client
   * sending faster than they run) turn this into a backlog handled by the
   * event source in bounded batches, so other sources of the context get
   * their turn. Once there is a backlog, everything goes through it, in
   * order, and reading pauses while it is long. */
  {
    gint64 now = g_get_monotonic_time ();
    Event *event;

    if (now - self->inline_window > INLINE_WINDOW_US)
      {
        self->inline_window = now;
        self->inline_spent = 0;
      }
    if (self->inline_spent > EVENT_BATCH_US || g_async_queue_length (self->inbound) > 0)
      {
        event = g_new0 (Event, 1);
        event->kind = EVENT_PACKET;
        event->packet = g_steal_pointer (&packet);
        engine_io_socket_post_event (self, event);
        engine_io_socket_update_input (self);
        return;
      }

    /* Sends from the handlers are written at the end of this dispatch. */
    ENGINE_IO_LOCK (&self->state_lock, SESSION);
    self->flush_inline = TRUE;
    ENGINE_IO_UNLOCK (&self->state_lock);

    /* A handler that iterates the context may see the session end and
     * the server drop it meanwhile: we still need it when it returns. */
    g_object_ref (self);
    engine_io_socket_handle_packet (self, packet, now);

    ENGINE_IO_LOCK (&self->state_lock, SESSION);
    self->flush_inline = FALSE;
    ENGINE_IO_UNLOCK (&self->state_lock);
    self->inline_spent += g_get_monotonic_time () - now;
    engine_io_socket_ws_flush_outbound (self);
    engine_io_socket_update_input (self);
    g_object_unref (self);
  }
}

static void
ws_drained_cb (EngineIOWebSocket *ws,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws == self->ws && !self->ws_probe)
    engine_io_socket_ws_flush_outbound (self);
}

static void
ws_closed_cb (EngineIOWebSocket *ws,
              gboolean           clean,
              guint16            code,
              gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws != self->ws)
    {
      /* A probe we gave up: removing it frees it. */
      g_ptr_array_remove_fast (self->dying_ws, ws);
      return;
    }

  if (self->ws_probe)
    {
      g_debug ("socket %s: upgrade probe closed", self->id);
      feed_probe (self, ENGINE_IO_SESSION_INPUT_PROBE_LOST, NULL, FALSE);
      return;
    }

  engine_io_socket_ws_report_sent (self);  /* the rest: FALSE, when the session finishes */
  g_clear_pointer (&self->ws, engine_io_websocket_free);
  if (self->state == STATE_OPEN)
    engine_io_socket_do_close (self, clean ? ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE
                                           : ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                               clean ? "the client closed the WebSocket" : "the WebSocket connection failed");
  else if (self->state == STATE_CLOSING)
    engine_io_socket_close_wait_over (self);
}

/* The WebSocket's output waited a heartbeat with nothing written: its
 * client does not read. The adapter stopped reading it and is closing it
 * with 1008; the session (or the probe) ends with it. */
static void
ws_stalled_cb (EngineIOWebSocket *ws,
               gpointer           user_data)
{
  EngineIOSocket *self = user_data;

  if (ws != self->ws)
    return;  /* a given-up WebSocket: it is closing already */
  if (self->ws_probe)
    {
      feed_probe (self, ENGINE_IO_SESSION_INPUT_PROBE_LOST, NULL, TRUE);
      return;
    }
  self->ws_close_code = 1008;
  engine_io_socket_do_close (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                             "the client does not read: no WebSocket output written for a heartbeat");
}

/* @reject: the session has a WebSocket (or a probe) already; like the
 * reference, the second one was answered 101 and is closed at once
 * (with a close frame without a status code), the first one goes on. */
void
engine_io_socket_handle_ws_attach (EngineIOSocket    *self,
                                   EngineIOWebSocket *ws,
                                   gboolean           reject)
{
  if (self->state != STATE_OPEN)
    {
      engine_io_websocket_free (ws);
      return;
    }
  if (reject || self->ws != NULL)
    {
      g_debug ("socket %s: a second WebSocket, closed", self->id);
      engine_io_websocket_start (ws, self->context, &ws_callbacks, self, ws_stall_timeout (self));
      engine_io_socket_retire_ws (self, ws, 0, NULL);
      return;
    }

  self->ws = ws;
  self->ws_probe = engine_io_socket_transport (self) == ENGINE_IO_TRANSPORT_POLLING;
  engine_io_websocket_start (ws, self->context, &ws_callbacks, self, ws_stall_timeout (self));

  if (self->ws_probe)
    feed_probe (self, ENGINE_IO_SESSION_INPUT_PROBE_ATTACHED, NULL, FALSE);  /* its deadline */
  else
    engine_io_socket_ws_flush_outbound (self);  /* a direct WebSocket session: the open packet first */
}

/* Upgrade entry points (the serving thread, the adapter) */

/* Whether a WebSocket request for this session is answered 101: for the
 * upgrade of a polling session (which claims it), and, like the
 * reference, for a second WebSocket while one is upgrading or after the
 * upgrade (*@out_reject is then TRUE: that one is closed at once). */
gboolean
engine_io_socket_begin_upgrade (EngineIOSocket *self,
                                gboolean       *out_reject)
{
  gboolean ok;

  *out_reject = FALSE;
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  ok = self->state == STATE_OPEN;
  if (ok && !self->ws_claimed &&
      g_atomic_int_get (&self->transport) == ENGINE_IO_TRANSPORT_POLLING)
    self->ws_claimed = TRUE;
  else
    *out_reject = ok;
  ENGINE_IO_UNLOCK (&self->state_lock);

  return ok;
}

void
engine_io_socket_attach_websocket (EngineIOSocket    *self,
                                   EngineIOWebSocket *ws,
                                   gboolean           reject)
{
  Event *event = g_new0 (Event, 1);

  event->kind = EVENT_WS_ATTACH;
  event->ws = ws;
  event->reject_ws = reject;
  engine_io_socket_post_event (self, event);  /* a closed session frees @ws with the event */
}

void
engine_io_socket_upgrade_failed (EngineIOSocket *self)
{
  gboolean direct = engine_io_socket_transport (self) == ENGINE_IO_TRANSPORT_WEBSOCKET;

  if (direct)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                        "the WebSocket upgrade did not complete");
  else
    {
      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      self->ws_claimed = FALSE;
      ENGINE_IO_UNLOCK (&self->state_lock);
    }
}
