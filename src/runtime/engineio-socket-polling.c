/* engineio-socket-polling.c: a session's polling transport
 *
 * The serving-thread entry points of the polling transport: polls,
 * POSTs (read a round of packets at a time, JSONP included), a poll whose
 * client went away, the end of a request, and a shutdown taking what is
 * suspended.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"
#include "engineio-jsonp-private.h"

/* Serving-thread entry points */

void
engine_io_socket_handle_poll (EngineIOSocket  *self,
                              EngineIORequest *req)
{
  g_autoptr(GPtrArray) packets = NULL;
  EngineIOPollingView view;
  EngineIOPollVerdict verdict;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  view = engine_io_socket_polling_view_locked (self);
  verdict = engine_io_polling_decide_poll (&view);

  if (verdict == ENGINE_IO_POLL_LAST)
    {
      /* The last poll of a closed session: what was queued, then `1`;
       * the session ends with this response. */
      GPtrArray *items = NULL;
      self->lingering = FALSE;
      req->kind = ENGINE_IO_REQUEST_POLL;
      req->socket = g_object_ref (self);
      req->carried_packets = TRUE;
      req->finishes_close = TRUE;
      packets = engine_io_socket_take_for_poll_locked (self, req, 0, &items);
      engine_io_socket_attach_flush_items_locked (self, req, items);
      ENGINE_IO_UNLOCK (&self->state_lock);
      g_ptr_array_add (packets, engine_io_packet_new (ENGINE_IO_PACKET_CLOSE));
      engine_io_counter_add (&self->counters->packets_out, 1);
      engine_io_counter_add (&self->counters->bytes_out,
                             engine_io_socket_packet_size (g_ptr_array_index (packets, packets->len - 1)));
      engine_io_core_respond_packets (self->config, req, self->version,
                                      (EngineIOPacket * const *) packets->pdata, packets->len);
      return;
    }

  if (verdict == ENGINE_IO_POLL_UNKNOWN_SID)
    {
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
      return;
    }

  if (verdict == ENGINE_IO_POLL_OVERLAP)
    {
      /* A second concurrent GET: 400 for it, `1` for the first, closed. */
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                          ENGINE_IO_POLLING_OVERLAPPING_GETS_DESCRIPTION);
      return;
    }

  req->kind = ENGINE_IO_REQUEST_POLL;
  req->socket = g_object_ref (self);

  if (verdict == ENGINE_IO_POLL_NOOP)
    {
      /* An upgrade is under way: what is queued waits for the WebSocket. */
      EngineIOPacket *noop = engine_io_packet_new (ENGINE_IO_PACKET_NOOP);
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_packets (self->config, req, self->version, &noop, 1);
      engine_io_packet_unref (noop);
      return;
    }

  if (verdict == ENGINE_IO_POLL_PACKETS)
    {
      GPtrArray *items = NULL;
      packets = engine_io_socket_take_for_poll_locked (self, req, POLL_MAX_PACKETS, &items);
      engine_io_socket_attach_flush_items_locked (self, req, items);
      ENGINE_IO_UNLOCK (&self->state_lock);
      req->carried_packets = TRUE;
      engine_io_core_respond_packets (self->config, req, self->version,
                                      (EngineIOPacket * const *) packets->pdata, packets->len);
      return;
    }

  /* SUSPEND. Nothing to send: wait without holding a worker. */
  g_assert (verdict == ENGINE_IO_POLL_SUSPEND);
  if (engine_io_core_refuses_suspend (self->server))
    {
      /* The server's close answered the suspended requests and will stop
       * the daemon: nothing would resume this one (the session's context
       * is blocked), and libmicrohttpd aborts when it is stopped with a
       * suspended connection. Answered as those were. */
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_status_json (self->config, req, 503, ENGINE_IO_CODE_FORBIDDEN,
                                          "Server shutting down");
      return;
    }
  self->active_get = req;
  req->suspended = TRUE;
  engine_io_core_request_suspend (self->server, req);
  ENGINE_IO_UNLOCK (&self->state_lock);
}

void
engine_io_socket_handle_poll_resumed (EngineIOSocket  *self,
                                      EngineIORequest *req)
{
  g_autoptr(GPtrArray) packets = NULL;
  GPtrArray *items = NULL;
  EngineIOPollingView view;
  EngineIOPollVerdict verdict;
  gboolean closing;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (self->active_get == req)
    self->active_get = NULL;
  view = engine_io_socket_polling_view_locked (self);
  verdict = engine_io_polling_decide_resumed (&view, req->answer_noop);
  if (verdict == ENGINE_IO_POLL_NOOP)
    {
      EngineIOPacket *noop = engine_io_packet_new (ENGINE_IO_PACKET_NOOP);
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_packets (self->config, req, self->version, &noop, 1);
      engine_io_packet_unref (noop);
      return;
    }
  closing = verdict == ENGINE_IO_POLL_LAST;
  /* Closing: this is the last poll, it takes everything, and the session
   * ends with its response. */
  packets = engine_io_socket_take_for_poll_locked (self, req, closing ? 0 : POLL_MAX_PACKETS, &items);
  engine_io_socket_attach_flush_items_locked (self, req, items);
  req->finishes_close = closing;
  ENGINE_IO_UNLOCK (&self->state_lock);

  if (packets->len == 0)
    {
      /* Resumed with nothing queued: only a close can do that, and it
       * queues the close packet; answer `1` anyway to be safe. */
      g_ptr_array_add (packets, engine_io_packet_new (ENGINE_IO_PACKET_CLOSE));
    }

  req->carried_packets = TRUE;
  engine_io_core_respond_packets (self->config, req, self->version,
                                  (EngineIOPacket * const *) packets->pdata, packets->len);
}

gboolean
engine_io_socket_begin_post (EngineIOSocket  *self,
                             EngineIORequest *req)
{
  EngineIOPollingView view;
  EngineIOPostVerdict verdict;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  view = engine_io_socket_polling_view_locked (self);
  verdict = engine_io_polling_decide_post (&view);

  /* (Closed by the application or a shutdown, a poll still to take the
   * last packets: the POST is accepted, read and answered `ok`, its
   * packets dropped: post_continue().) */
  if (verdict == ENGINE_IO_POST_UNKNOWN_SID)
    {
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
      return FALSE;
    }

  if (verdict == ENGINE_IO_POST_OVERLAP)
    {
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                          ENGINE_IO_POLLING_OVERLAPPING_POSTS_DESCRIPTION);
      return FALSE;
    }

  self->active_post = req;
  req->kind = ENGINE_IO_REQUEST_POST;
  req->socket = g_object_ref (self);
  ENGINE_IO_UNLOCK (&self->state_lock);

  return TRUE;
}

static EngineIOPayloadFormat
post_format (EngineIOSocket  *self,
             EngineIORequest *req)
{
  const char *type;

  if (self->version == ENGINE_IO_PROTOCOL_V4)
    return ENGINE_IO_PAYLOAD_V4;
  type = g_hash_table_lookup (req->headers, "content-type");
  if (type != NULL && g_str_has_prefix (type, "application/octet-stream"))
    return ENGINE_IO_PAYLOAD_V3_BINARY;
  return ENGINE_IO_PAYLOAD_V3_TEXT;
}

/* Packets (by their footprint) one round of a POST reads out of its body
 * before handing them to the session and looking at its bound again. */
#define POST_ROUND_BYTES (64 * 1024)

/* A POST's body being read: allocated when the body is whole (one per POST,
 * not one per session: idle sessions do not carry it). The reader points
 * into the payload: they live and go together. */
struct _EngineIOPostBody
{
  GBytes                *payload;
  EngineIOPayloadReader  reader;
  gboolean               validated;  /* the whole body is known to decode */
};

void
engine_io_socket_post_body_free (EngineIOPostBody *body)
{
  if (body == NULL)
    return;
  g_bytes_unref (body->payload);
  g_free (body);
}

/* Called with the lock held: the active POST is done with its body (the
 * caller frees what this returns, after the lock). */
static EngineIOPostBody *
post_done_locked (EngineIOSocket *self)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  self->active_post = NULL;
  return g_steal_pointer (&self->post_body);
}

/* Serving thread of the active POST: reads its body a round of packets at
 * a time and hands them to the session. While the session is over its
 * bound (engine_io_socket_input_over_locked()) the POST is held, suspended and unanswered,
 * until the session context resumes it (engine_io_socket_update_input()); then this goes
 * on where it stopped. The body is checked whole before its first packet
 * is handed over: a malformed body delivers nothing. */
static void
post_continue (EngineIOSocket  *self,
               EngineIORequest *req)
{
  for (;;)
    {
      g_autoptr(GPtrArray) packets = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(EngineIOPostBody) done_payload = NULL;
      gsize round = 0;
      gboolean rate_limited = FALSE;
      gboolean done;
      EngineIOPollingView view;
      EngineIOPostRoundVerdict verdict;

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      view = engine_io_socket_polling_view_locked (self);
      view.input_over = view.state == ENGINE_IO_POLLING_OPEN &&
                        engine_io_socket_input_over_locked (self, self->input_paused);
      verdict = engine_io_polling_decide_post_round (&view);
      if (verdict == ENGINE_IO_POST_ROUND_OK)
        {
          /* Closed for the application, a poll still to take the last
           * packets: the POST succeeds and its packets are dropped, as
           * the reference's (its transport answers `ok` until the socket
           * is gone). A 400 here made the client fail its transport and
           * never take those last packets: a heartbeat answer crossing
           * the application's close lost them. */
          done_payload = post_done_locked (self);
          ENGINE_IO_UNLOCK (&self->state_lock);
          {
            static const char ok[] = "ok";
            g_autoptr(GBytes) ok_bytes = g_bytes_new_static (ok, 2);
            engine_io_core_respond (self->config, req, 200, "text/html", ok_bytes);
          }
          return;
        }
      if (verdict == ENGINE_IO_POST_ROUND_UNKNOWN_SID)
        {
          done_payload = post_done_locked (self);
          ENGINE_IO_UNLOCK (&self->state_lock);
          engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_UNKNOWN_SID);
          return;
        }
      if (verdict == ENGINE_IO_POST_ROUND_HOLD && engine_io_core_refuses_suspend (self->server))
        {
          /* Held, nothing would resume it: answered now, as a poll is
           * (engine_io_socket_handle_poll()). */
          done_payload = post_done_locked (self);
          ENGINE_IO_UNLOCK (&self->state_lock);
          engine_io_core_respond_status_json (self->config, req, 503, ENGINE_IO_CODE_FORBIDDEN,
                                              "Server shutting down");
          return;
        }
      if (verdict == ENGINE_IO_POST_ROUND_HOLD)
        {
          /* Back-pressure: the rest of the body waits. */
          self->input_paused = TRUE;
          self->held_post = req;
          req->suspended = TRUE;
          engine_io_core_request_suspend (self->server, req);
          ENGINE_IO_UNLOCK (&self->state_lock);
          return;
        }
      ENGINE_IO_UNLOCK (&self->state_lock);

      packets = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_packet_unref);
      while (!self->post_body->reader.done && round < POST_ROUND_BYTES)
        {
          EngineIOPacket *packet = engine_io_payload_reader_next (&self->post_body->reader, &error);

          if (packet == NULL)
            break;
          round += engine_io_packet_get_footprint (packet) + EVENT_OVERHEAD;
          g_ptr_array_add (packets, packet);
        }
      if (error == NULL && !self->post_body->validated && !self->post_body->reader.done)
        engine_io_payload_reader_validate_rest (&self->post_body->reader, &error);
      self->post_body->validated = TRUE;

      if (error != NULL)
        {
          ENGINE_IO_LOCK (&self->state_lock, SESSION);
          done_payload = post_done_locked (self);
          ENGINE_IO_UNLOCK (&self->state_lock);
          engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
          engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
          return;
        }

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      for (guint i = 0; i < packets->len; i++)
        {
          Event *event;

          if (!engine_io_socket_message_within_rate_locked (self, g_ptr_array_index (packets, i)))
            {
              if (self->config->message_policy == ENGINE_IO_RATE_LIMIT_DROP)
                continue;
              rate_limited = TRUE;  /* the rest of the payload goes too */
              break;
            }
          event = g_new0 (Event, 1);
          event->kind = EVENT_PACKET;
          event->packet = engine_io_packet_ref (g_ptr_array_index (packets, i));
          engine_io_socket_post_event_locked (self, event);
        }
      done = rate_limited || self->post_body->reader.done;
      if (done)
        done_payload = post_done_locked (self);
      ENGINE_IO_UNLOCK (&self->state_lock);

      if (!done)
        continue;

      /* The POST itself succeeded; the session ends (a waiting poll gets `1`). */
      if (rate_limited)
        engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_RATE_LIMITED, RATE_LIMITED_DESCRIPTION);

      {
        static const char ok[] = "ok";
        g_autoptr(GBytes) ok_bytes = g_bytes_new_static (ok, 2);
        engine_io_core_respond (self->config, req, 200, "text/html", ok_bytes);
      }
      return;
    }
}

void
engine_io_socket_handle_post (EngineIOSocket  *self,
                              EngineIORequest *req,
                              GBytes          *body)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(EngineIOPostBody) post_body = NULL;
  gboolean ok = FALSE;

  if (self->version == ENGINE_IO_PROTOCOL_V3 && g_hash_table_contains (req->query, "j"))
    payload = engine_io_jsonp_decode_post (body, &error);
  else
    payload = g_bytes_ref (body);

  if (payload != NULL)
    {
      gsize length;
      const guint8 *data = g_bytes_get_data (payload, &length);

      post_body = g_new0 (EngineIOPostBody, 1);
      ok = engine_io_payload_reader_init (&post_body->reader, post_format (self, req),
                                          data, length, payload, &error);
      post_body->payload = g_steal_pointer (&payload);
    }

  if (!ok)
    {
      g_autoptr(EngineIOPostBody) done_payload = NULL;

      ENGINE_IO_LOCK (&self->state_lock, SESSION);
      done_payload = post_done_locked (self);
      ENGINE_IO_UNLOCK (&self->state_lock);
      engine_io_core_respond_error (self->config, req, ENGINE_IO_CODE_BAD_REQUEST);
      engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_PARSE_ERROR, error->message);
      return;
    }

  /* Only this POST's serving thread touches it until post_done_locked()
   * takes it out. */
  g_clear_pointer (&self->post_body, engine_io_socket_post_body_free);
  self->post_body = g_steal_pointer (&post_body);
  post_continue (self, req);
}

void
engine_io_socket_handle_post_resumed (EngineIOSocket  *self,
                                      EngineIORequest *req)
{
  post_continue (self, req);
}

/* A POST answered without its body being taken (413): the session may
 * take the client's next POST at once. */
void
engine_io_socket_end_post (EngineIOSocket  *self,
                           EngineIORequest *req)
{
  g_autoptr(EngineIOPostBody) post_payload = NULL;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (self->active_post == req)
    {
      if (self->held_post == req)
        self->held_post = NULL;
      post_payload = post_done_locked (self);
    }
  ENGINE_IO_UNLOCK (&self->state_lock);
}

gboolean
engine_io_socket_is_finished (EngineIOSocket *self)
{
  return g_atomic_int_get ((int *) &self->state) == STATE_CLOSED;
}

/* Called with the lock held: @req, the waiting poll, ends without a
 * response of ours. If the session was waiting for it to close, it will
 * not come: finish now. */
static void
detach_poll_locked (EngineIOSocket  *self,
                    EngineIORequest *req)
{
  ENGINE_IO_LOCK_ASSERT_HELD (&self->state_lock);
  if (self->active_get != req)
    return;
  self->active_get = NULL;
  if (self->state == STATE_CLOSING && !self->lingering)
    {
      Event *event = g_new0 (Event, 1);
      event->kind = EVENT_FINISH_CLOSE;
      engine_io_socket_post_event_locked (self, event);
    }
}

#define POLL_GONE_DESCRIPTION "the client closed the connection of its waiting poll"

/* Any thread (the adapter's watcher): the client of @req, a waiting poll
 * of this session, closed its connection. Resumes @req if it is still
 * suspended, for the adapter to close it (serial: @req is the request the
 * watcher saw, not a later one at the same address). */
gboolean
engine_io_socket_resume_gone_poll (EngineIOSocket  *self,
                                   EngineIORequest *req,
                                   gsize            serial)
{
  gboolean resume = FALSE;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  /* While it is our active_get, @req is alive (it is detached, under this
   * lock, before it is freed). */
  if (self->active_get == req && req->serial == serial && req->suspended)
    {
      req->suspended = FALSE;
      req->client_gone = TRUE;
      resume = TRUE;
    }
  ENGINE_IO_UNLOCK (&self->state_lock);

  if (resume)
    engine_io_core_request_resume (req);
  return resume;
}

/* Serving thread: @req, resumed, found its client gone before it could
 * answer; no response will be written. The session closes with
 * `transport close` (as the reference does when a waiting poll's
 * connection closes), unless it is moving to a WebSocket; what was queued
 * stays queued and is reported not flushed. */
void
engine_io_socket_poll_client_gone (EngineIOSocket  *self,
                                   EngineIORequest *req)
{
  EngineIOPollingView view;
  gboolean close;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  detach_poll_locked (self, req);
  view = engine_io_socket_polling_view_locked (self);
  close = engine_io_polling_gone_closes (&view, req->answer_noop);
  ENGINE_IO_UNLOCK (&self->state_lock);

  g_debug ("socket %s: %s", self->id, POLL_GONE_DESCRIPTION);
  if (close)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

void
engine_io_socket_poll_gone_unanswered (EngineIOSocket *self)
{
  EngineIOPollingView view;
  gboolean close;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  view = engine_io_socket_polling_view_locked (self);
  close = engine_io_polling_gone_closes (&view, FALSE);
  ENGINE_IO_UNLOCK (&self->state_lock);

  g_debug ("socket %s: a poll came from a client that had closed its connection", self->id);
  if (close)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

void
engine_io_socket_request_finished (EngineIOSocket  *self,
                                   EngineIORequest *req,
                                   gboolean         completed)
{
  g_autoptr(EngineIOPostBody) post_payload = NULL;
  EngineIORequest *resume = NULL;
  gboolean vanished = FALSE;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (req->kind == ENGINE_IO_REQUEST_POST && self->active_post == req)
    {
      /* A POST that never completed its body, or whose connection failed
       * while it was held. */
      if (self->held_post == req)
        self->held_post = NULL;
      post_payload = post_done_locked (self);
    }
  if (req->inflight)
    {
      /* Written (or failed): a poll that waits meanwhile takes what is
       * queued now. */
      EngineIOPollingView view;

      req->inflight = FALSE;
      self->inflight_polls -= MIN (self->inflight_polls, 1);
      view = engine_io_socket_polling_view_locked (self);
      if (engine_io_polling_written_kicks (&view))
        resume = engine_io_socket_kick_transport_locked (self);
    }
  if (req->flush_items != NULL)
    {
      /* Delivered only if the whole response was written. (The session
       * is not closed: engine_io_socket_finish_close() takes the items first.) */
      Event *event = g_new0 (Event, 1);

      g_ptr_array_remove_fast (self->inflight, req);
      event->kind = EVENT_FLUSHED;
      event->items = g_steal_pointer (&req->flush_items);
      event->flushed = completed;
      engine_io_socket_post_event_locked (self, event);
    }
  if (req->finishes_close)
    {
      Event *event = g_new0 (Event, 1);

      req->finishes_close = FALSE;
      event->kind = EVENT_FINISH_CLOSE;
      engine_io_socket_post_event_locked (self, event);
    }
  if (self->active_get == req)
    {
      /* A poll that ended without carrying anything: its client went
       * away while it waited (libmicrohttpd saw it first). */
      EngineIOPollingView view = engine_io_socket_polling_view_locked (self);

      vanished = !completed && engine_io_polling_gone_closes (&view, FALSE);
      detach_poll_locked (self, req);
    }
  ENGINE_IO_UNLOCK (&self->state_lock);

  if (resume != NULL)
    engine_io_core_request_resume (resume);
  if (req->carried_packets && !completed)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR,
                                        "the connection failed while sending a poll response");
  else if (vanished)
    engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE,
                                        POLL_GONE_DESCRIPTION);
}

GPtrArray *
engine_io_socket_take_suspended (EngineIOSocket *self)
{
  GPtrArray *taken = g_ptr_array_new ();

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  /* Whoever resumes a request clears its suspended flag under this lock
   * first: cleared here, no one else resumes these. The poll stays our
   * active_get (and the POST our active_post) until it is finished. */
  if (self->active_get != NULL && self->active_get->suspended)
    {
      self->active_get->suspended = FALSE;
      g_ptr_array_add (taken, self->active_get);
    }
  if (self->held_post != NULL)
    {
      EngineIORequest *post = g_steal_pointer (&self->held_post);

      post->suspended = FALSE;
      g_ptr_array_add (taken, post);
    }
  ENGINE_IO_UNLOCK (&self->state_lock);
  return taken;
}
