/* engineio-socket.c: one Engine.IO session: the public object
 *
 * The GObject (properties, signals, finalize), construction and start,
 * and the public API (accessors, user data, sending, close). The session
 * itself lives in the engineio-socket-*.c files (see
 * engineio-socket-internal.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-socket-internal.h"
#include "engineio-enum-types.h"
#include "engineio-marshal.h"

/**
 * EngineIOSocket:
 *
 * One Engine.IO session with a client.
 *
 * Sockets are created by the server when a client's handshake is accepted
 * and handed to the application in #EngineIOServer::connection. Every
 * socket has a main context (engine_io_socket_get_context()) that runs its
 * heartbeat timers, its transport's events and *all of its signals*, in
 * order; by default a thread of its own iterates it (see
 * #EngineIOServer:loop-threads).
 *
 * Sending (engine_io_socket_send_text(), engine_io_socket_send_binary()) and
 * closing are thread-safe and never block. Incoming messages arrive as
 * #EngineIOSocket::message, or, for thread-style code, through the blocking
 * engine_io_socket_receive(): a message for which no ::message handler is
 * connected when it is dispatched goes to the receive queue instead.
 *
 * What a client can make a session hold is bounded in real bytes: packets
 * queued for sending by #EngineIOServer:send-queue-high-water, messages
 * waiting in the receive queue by #EngineIOServer:receive-queue-high-water.
 * At either mark the session stops reading its client (back-pressure)
 * until the queue is under half of it.
 */

G_DEFINE_FINAL_TYPE (EngineIOSocket, engine_io_socket, G_TYPE_OBJECT)

/* GObject */

static void
engine_io_socket_finalize (GObject *object)
{
  EngineIOSocket *self = ENGINE_IO_SOCKET (object);
  EngineIOPacket *packet;

  g_warn_if_fail (self->loop == NULL || self->state == STATE_OPENING);
  if (self->loop != NULL)
    engine_io_loop_release (self->loop);

  while ((packet = g_queue_pop_head (&self->received)) != NULL)
    engine_io_packet_unref (packet);
  g_warn_if_fail (g_queue_is_empty (&self->recv_tasks));   /* each holds a ref */
  g_mutex_clear (&self->recv_lock);
  g_cond_clear (&self->recv_cond);

  g_warn_if_fail (self->message_func_depth == 0);
  engine_io_socket_clear_message_func (self);
  if (self->user_data_destroy != NULL)
    self->user_data_destroy (self->user_data);
  g_mutex_clear (&self->user_data_lock);
  g_clear_pointer (&self->post_body, engine_io_socket_post_body_free);

  g_byte_array_unref (self->frame);
  g_ptr_array_unref (self->dying_ws);
  g_queue_clear_full (&self->ws_unsent, (GDestroyNotify) engine_io_socket_send_item_free);
  g_ptr_array_unref (self->inflight);
  g_async_queue_unref (self->inbound);
  g_queue_clear (&self->outbound);  /* the close empties it (its items are freed there) */
  g_mutex_clear (&self->state_lock);
  g_main_context_unref (self->context);
  engine_io_config_unref (self->config);
  g_clear_object (&self->server);
  engine_io_handshake_unref (self->handshake);
  g_free (self->close_description);
  g_free (self->id);

  G_OBJECT_CLASS (engine_io_socket_parent_class)->finalize (object);
}

static void
engine_io_socket_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  EngineIOSocket *self = ENGINE_IO_SOCKET (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, self->id);
      break;
    case PROP_PROTOCOL_VERSION:
      g_value_set_enum (value, self->version);
      break;
    case PROP_TRANSPORT:
      g_value_set_enum (value, engine_io_socket_get_transport (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_socket_class_init (EngineIOSocketClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = engine_io_socket_finalize;
  object_class->get_property = engine_io_socket_get_property;

  /* The calls the session files below make back up (see
   * engineio-socket-internal.h). */
  engine_io_socket_upcalls.dispatch_events = engine_io_socket_drain_inbound_cb;

  /**
   * EngineIOSocket:id:
   *
   * The session id (`sid`). Immutable; readable from any thread.
   */
  engine_io_socket_properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EngineIOSocket:protocol-version:
   *
   * The protocol version the client speaks. Immutable; readable from any
   * thread.
   */
  engine_io_socket_properties[PROP_PROTOCOL_VERSION] =
    g_param_spec_enum ("protocol-version", NULL, NULL,
                       ENGINE_IO_TYPE_PROTOCOL_VERSION, ENGINE_IO_PROTOCOL_V4,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * EngineIOSocket:transport:
   *
   * The transport the session uses now; it changes once, from polling to
   * WebSocket, when the client upgrades. Readable from any thread; its
   * `notify::transport` is emitted in the socket's main context (its session
   * thread, or #EngineIOServer:callback-context).
   */
  engine_io_socket_properties[PROP_TRANSPORT] =
    g_param_spec_enum ("transport", NULL, NULL,
                       ENGINE_IO_TYPE_TRANSPORT_TYPE, ENGINE_IO_TRANSPORT_POLLING,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, engine_io_socket_properties);

  /**
   * EngineIOSocket::message:
   * @socket: the socket
   * @text: (nullable): the message, for a text message
   * @data: (nullable): the message, for a binary message
   *
   * Emitted once per client message, in order, in the socket's main
   * context (its session thread, or #EngineIOServer:callback-context; see
   * engine_io_socket_get_context()). Exactly one of @text and @data is set:
   * from Python, @text is a `str` for a text message and @data a
   * `GLib.Bytes` for a binary one. (A text containing
   * U+0000 is cut there in @text; #EngineIOSocket::packet has it whole,
   * with engine_io_packet_get_text_bytes(), from C and Python alike.)
   *
   * While a handler is connected, messages do not reach
   * engine_io_socket_receive().
   */
  engine_io_socket_signals[SIGNAL_MESSAGE] =
    g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, _engine_io_marshal_VOID__STRING_BOXED, G_TYPE_NONE, 2,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE,
                  G_TYPE_BYTES | G_SIGNAL_TYPE_STATIC_SCOPE);
  g_signal_set_va_marshaller (engine_io_socket_signals[SIGNAL_MESSAGE], G_TYPE_FROM_CLASS (klass),
                              _engine_io_marshal_VOID__STRING_BOXEDv);

  /**
   * EngineIOSocket::packet:
   * @socket: the socket
   * @packet: the packet
   *
   * Emitted for every packet received from the client (pings, pongs,
   * messages, close), before it is acted on, in the socket's main context
   * (its session thread, or #EngineIOServer:callback-context). @packet is
   * only borrowed: take a reference to keep it.
   */
  engine_io_socket_signals[SIGNAL_PACKET] =
    g_signal_new ("packet", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1,
                  ENGINE_IO_TYPE_PACKET | G_SIGNAL_TYPE_STATIC_SCOPE);

  /**
   * EngineIOSocket::heartbeat:
   * @socket: the socket
   *
   * Emitted when a heartbeat completes (v4: the client's pong arrived; v3:
   * the client's ping arrived), in the socket's main context (its session
   * thread, or #EngineIOServer:callback-context).
   */
  engine_io_socket_signals[SIGNAL_HEARTBEAT] =
    g_signal_new ("heartbeat", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EngineIOSocket::drain:
   * @socket: the socket
   *
   * Emitted in the socket's main context (its session thread, or
   * #EngineIOServer:callback-context) when everything queued for sending
   * has been handed to the transport (a poll response, once written, or
   * the WebSocket).
   */
  engine_io_socket_signals[SIGNAL_DRAIN] =
    g_signal_new ("drain", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * EngineIOSocket::close:
   * @socket: the socket
   * @reason: why the session ended
   * @description: (nullable): details, for logs
   *
   * Emitted once when the session ends, in the socket's main context (its
   * session thread, or #EngineIOServer:callback-context); no other signal
   * of this socket follows it. The server has already
   * forgotten the socket when this runs.
   */
  engine_io_socket_signals[SIGNAL_CLOSE] =
    g_signal_new ("close", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, _engine_io_marshal_VOID__ENUM_STRING, G_TYPE_NONE, 2,
                  ENGINE_IO_TYPE_CLOSE_REASON,
                  G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE);
  g_signal_set_va_marshaller (engine_io_socket_signals[SIGNAL_CLOSE], G_TYPE_FROM_CLASS (klass),
                              _engine_io_marshal_VOID__ENUM_STRINGv);

  /**
   * EngineIOSocket::upgrading:
   * @socket: the socket
   * @transport: the transport being probed (%ENGINE_IO_TRANSPORT_WEBSOCKET)
   *
   * Emitted when a polling session's client probed a new transport (its
   * `2probe` was answered `3probe`): the upgrade is under way and
   * #EngineIOSocket::upgrade follows if the client completes it (it may
   * not: the session then goes on polling). Node's `upgrading` event.
   * Emitted in the socket's main context (its session thread, or
   * #EngineIOServer:callback-context).
   */
  engine_io_socket_signals[SIGNAL_UPGRADING] =
    g_signal_new ("upgrading", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_TRANSPORT_TYPE);

  /**
   * EngineIOSocket::upgrade:
   * @socket: the socket
   * @transport: the new transport (%ENGINE_IO_TRANSPORT_WEBSOCKET)
   *
   * Emitted when the client completed an upgrade (its `5`): the session
   * now uses @transport (#EngineIOSocket:transport changed just before).
   * Node's `upgrade` event. Emitted in the socket's main context (its
   * session thread, or #EngineIOServer:callback-context).
   */
  engine_io_socket_signals[SIGNAL_UPGRADE] =
    g_signal_new ("upgrade", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_TRANSPORT_TYPE);

  /**
   * EngineIOSocket::packet-create:
   * @socket: the socket
   * @packet: the packet queued for the client (message, ping, close, v3
   *   pong; not the open packet, queued before #EngineIOServer::connection,
   *   nor the `6` noops answered during an upgrade)
   *
   * The outgoing tap (Node's `packetCreate`): emitted in the socket's main
   * context (its session thread, or #EngineIOServer:callback-context) for
   * each packet queued for the client, in queue order, after it was
   * queued (it may be on its way already, and a send from another thread
   * returns before its handler runs). Packets queued while a handler is
   * connected are reported; none after #EngineIOSocket::close (those
   * queued as the session closes may not be). A packet is held for the
   * handler until it is told of it, and counts against
   * #EngineIOServer:send-queue-high-water meanwhile (even once sent): a
   * slow handler makes #EngineIOServer:backpressure-policy apply to the
   * sends, rather than holding memory without bound.
   */
  engine_io_socket_signals[SIGNAL_PACKET_CREATE] =
    g_signal_new ("packet-create", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, ENGINE_IO_TYPE_PACKET);
}

static void
engine_io_socket_init (EngineIOSocket *self)
{
  g_mutex_init (&self->user_data_lock);
  g_mutex_init (&self->state_lock);
  g_queue_init (&self->outbound);
  self->inbound = g_async_queue_new ();
  g_mutex_init (&self->recv_lock);
  g_cond_init (&self->recv_cond);
  g_queue_init (&self->received);
  g_queue_init (&self->recv_tasks);
  self->state = STATE_OPENING;
  self->frame = g_byte_array_new ();
  self->dying_ws = g_ptr_array_new_with_free_func ((GDestroyNotify) engine_io_websocket_free);
  g_queue_init (&self->ws_unsent);
  self->inflight = g_ptr_array_new ();
  self->ws_close_code = 1000;
}

EngineIOSocket *
engine_io_socket_new (EngineIOServer            *server,
                      const EngineIOSocketOwner *owner,
                      EngineIOCounters          *counters,
                      EngineIOConfig    *config,
                      const char        *id,
                      EngineIOHandshake *handshake,
                      EngineIOLoop      *loop)
{
  EngineIOSocket *self = g_object_new (ENGINE_IO_TYPE_SOCKET, NULL);

  self->id = g_strdup (id);
  self->server = g_object_ref (server);
  self->owner = owner;
  self->config = engine_io_config_ref (config);
  self->handshake = engine_io_handshake_ref (handshake);
  self->version = engine_io_handshake_get_protocol_version (handshake);
  self->transport = engine_io_handshake_get_transport (handshake);
  self->loop = loop;
  self->context = g_main_context_ref (engine_io_loop_get_context (loop));
  self->counters = counters;
  engine_io_session_machine_init (&self->machine, self->version, &self->config->session_timings);

  return self;
}

/* @can_upgrade: the host of the handshake can switch a connection to
 * WebSocket (a host without upgrade() is not offered one). */
static char *
build_open_json (EngineIOSocket *self,
                 gboolean        can_upgrade)
{
  gboolean upgrade = engine_io_socket_get_transport (self) == ENGINE_IO_TRANSPORT_POLLING &&
                     self->config->allow_upgrades && can_upgrade &&
                     (self->config->transports & ENGINE_IO_TRANSPORTS_WEBSOCKET);

  /* The sid is URL-safe ([A-Za-z0-9._-], checked when generated): no JSON
   * escaping needed. */
  return g_strdup_printf ("{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,"
                          "\"pingTimeout\":%u,\"maxPayload\":%" G_GUINT64_FORMAT "}",
                          self->id, upgrade ? "\"websocket\"" : "",
                          self->config->ping_interval, self->config->ping_timeout,
                          self->config->max_payload);
}

void
engine_io_socket_start (EngineIOSocket  *self,
                        EngineIORequest *first_poll)
{
  g_autofree char *json = build_open_json (self, first_poll == NULL ||
                                                    first_poll->vtable->upgrade != NULL);
  EngineIORequest *resume = NULL;

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (first_poll != NULL)
    {
      first_poll->kind = ENGINE_IO_REQUEST_POLL;
      first_poll->socket = g_object_ref (self);
      first_poll->suspended = TRUE;
      self->active_get = first_poll;
    }
  ENGINE_IO_UNLOCK (&self->state_lock);

  engine_io_socket_enqueue (self, engine_io_packet_new_text (ENGINE_IO_PACKET_OPEN, json, -1),
                            NULL, NULL, NULL, FALSE, NULL);

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  g_atomic_int_set ((int *) &self->state, STATE_OPEN);
  ENGINE_IO_UNLOCK (&self->state_lock);
  engine_io_counter_add (engine_io_counter_open (self->counters, engine_io_socket_get_transport (self), self->version), 1);
  engine_io_counter_add (&self->counters->handshakes, 1);
  self->counted_open = TRUE;

  /* The heartbeat starts (v4: the first ping is due; v3: the expiry). */
  engine_io_socket_run_machine (self, &(EngineIOSessionInput) { .kind = ENGINE_IO_SESSION_INPUT_START },
                                g_get_monotonic_time ());

  /* Before the first poll is answered, so messages the application sends
   * from its handler travel with the open packet, as in the reference. */
  self->owner->connection (self->server, self);

  /* Only if the open packet is still queued: a send from the handler may
   * have answered the first poll already, and the client's next poll,
   * waiting now with nothing queued, must not be woken (it would get `1`
   * while the session stays open). */
  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  if (self->outbound.length > 0)
    resume = engine_io_socket_kick_transport_locked (self);
  ENGINE_IO_UNLOCK (&self->state_lock);
  if (resume != NULL)
    engine_io_core_request_resume (resume);
}

/* Public API */

/**
 * engine_io_socket_get_id:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the session id
 */
const char *
engine_io_socket_get_id (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->id;
}

/**
 * engine_io_socket_get_protocol_version:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the protocol version the client speaks
 */
EngineIOProtocolVersion
engine_io_socket_get_protocol_version (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), ENGINE_IO_PROTOCOL_V4);
  return self->version;
}

/**
 * engine_io_socket_get_transport:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the transport the session uses now
 */
EngineIOTransportType
engine_io_socket_get_transport (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), ENGINE_IO_TRANSPORT_POLLING);
  return g_atomic_int_get (&self->transport);
}

/**
 * engine_io_socket_get_handshake:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the request that opened the session
 */
EngineIOHandshake *
engine_io_socket_get_handshake (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->handshake;
}

/**
 * engine_io_socket_get_remote_address:
 * @self: a socket
 *
 * The client's address at the handshake, as text, without the port.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the remote address
 */
const char *
engine_io_socket_get_remote_address (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return engine_io_handshake_get_remote_address (self->handshake);
}

/**
 * engine_io_socket_get_server:
 * @self: a socket
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the server the session belongs to
 */
EngineIOServer *
engine_io_socket_get_server (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->server;
}

/**
 * engine_io_socket_get_context:
 * @self: a socket
 *
 * The main context that runs this socket's timers, transport and signals.
 * Attach your own sources to it to run code in order with the socket's
 * signals.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): the socket's main context
 */
GMainContext *
engine_io_socket_get_context (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);
  return self->context;
}

/**
 * engine_io_socket_is_closed:
 * @self: a socket
 *
 * Whether the session has ended or is ending: after engine_io_socket_close()
 * (or any other close) this is %TRUE at once, and sends fail. A socket that
 * is not closed may still close at any moment.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE once the session is closed
 */
gboolean
engine_io_socket_is_closed (EngineIOSocket *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), TRUE);
  return g_atomic_int_get ((int *) &self->state) >= STATE_CLOSING ||
         g_atomic_int_get (&self->close_requested);
}

/**
 * engine_io_socket_get_user_data: (skip)
 * @self: a socket
 *
 * The data set with engine_io_socket_set_user_data(), borrowed: nothing
 * keeps it alive once this returns. Safe only where no other thread can
 * replace or clear it meanwhile — typically in the socket's own main
 * context (its signal handlers), when only that context sets it. To read
 * another socket's data (a broadcast from one session's handler over
 * engine_io_server_get_sockets(), say), use engine_io_socket_dup_user_data()
 * or engine_io_socket_dup_user_object(): a concurrent
 * engine_io_socket_set_user_data() on the owner's thread frees the old data
 * as soon as it is replaced.
 *
 * Thread-safe: may be called from any thread, but the pointer it returns is
 * only safe to use under the rule above.
 *
 * Returns: (transfer none) (nullable): the data set with
 *   engine_io_socket_set_user_data()
 */
gpointer
engine_io_socket_get_user_data (EngineIOSocket *self)
{
  gpointer data;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  ENGINE_IO_LOCK (&self->user_data_lock, USER_DATA);
  data = self->user_data;
  ENGINE_IO_UNLOCK (&self->user_data_lock);

  return data;
}

/**
 * engine_io_socket_dup_user_data: (skip)
 * @self: a socket
 * @dup_func: (nullable): makes a copy of the data, or takes a reference on
 *   it (g_object_ref(), g_rc_box_acquire(), a reference-counting function of
 *   your own); %NULL returns the data as it is (borrowed, as
 *   engine_io_socket_get_user_data() does)
 * @user_data: passed to @dup_func
 *
 * Reads the socket's data safely from any thread, as g_object_dup_data()
 * does: @dup_func runs under the socket's user-data lock, so a concurrent
 * engine_io_socket_set_user_data() (which frees the old data outside that
 * lock) cannot free it before the copy or reference is taken. @dup_func
 * is not called when there is no data. It must not call back into this
 * socket's user-data functions.
 *
 * For data stored with engine_io_socket_set_user_object(), or from
 * bindings, engine_io_socket_dup_user_object() does the same.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable): what @dup_func returned (free it as
 *   it says), or %NULL if there is no data
 */
gpointer
engine_io_socket_dup_user_data (EngineIOSocket *self,
                                GDuplicateFunc  dup_func,
                                gpointer        user_data)
{
  gpointer data;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  ENGINE_IO_LOCK (&self->user_data_lock, USER_DATA);
  data = self->user_data;
  if (data != NULL && dup_func != NULL)
    data = dup_func (data, user_data);
  ENGINE_IO_UNLOCK (&self->user_data_lock);

  return data;
}

/* Replaces the data and frees the old one outside the lock. */
static void
socket_replace_user_data (EngineIOSocket *self,
                          gpointer        user_data,
                          GDestroyNotify  destroy,
                          gboolean        is_object)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  ENGINE_IO_LOCK (&self->user_data_lock, USER_DATA);
  old_data = self->user_data;
  old_destroy = self->user_data_destroy;
  self->user_data = user_data;
  self->user_data_destroy = destroy;
  self->user_data_is_object = is_object;
  ENGINE_IO_UNLOCK (&self->user_data_lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * engine_io_socket_set_user_data: (skip)
 * @self: a socket
 * @user_data: (nullable): data for the application
 * @destroy: (nullable): frees @user_data when it is replaced or the socket
 *   is finalized
 *
 * Attaches one pointer of application data to the socket (for more, use
 * g_object_set_data()); it replaces what engine_io_socket_set_user_object()
 * stored. Any previous data is freed with its destroy function, outside
 * the socket's lock, at once: another thread holding it from
 * engine_io_socket_get_user_data() is left with a dangling pointer. Data
 * that other threads read should be reference counted and read with
 * engine_io_socket_dup_user_data() (or be a #GObject, with
 * engine_io_socket_set_user_object()).
 *
 * Bindings use engine_io_socket_set_user_object().
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_set_user_data (EngineIOSocket *self,
                                gpointer        user_data,
                                GDestroyNotify  destroy)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));

  socket_replace_user_data (self, user_data, destroy, FALSE);
}

/**
 * engine_io_socket_set_user_object:
 * @self: a socket
 * @object: (nullable) (type GObject.Object): a #GObject, or %NULL to clear
 *
 * Stores a reference to @object as the socket's user data (the same slot
 * as engine_io_socket_set_user_data(), which it replaces); the reference
 * is dropped when the data is replaced or the socket is finalized. Read it
 * from any thread with engine_io_socket_dup_user_object(). From Python,
 * any `GObject.Object` (a subclass with your fields) will do.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_set_user_object (EngineIOSocket *self,
                                  gpointer        object)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));
  g_return_if_fail (object == NULL || G_IS_OBJECT (object));

  if (object != NULL)
    socket_replace_user_data (self, g_object_ref (object), g_object_unref, TRUE);
  else
    socket_replace_user_data (self, NULL, NULL, FALSE);
}

/**
 * engine_io_socket_dup_user_object:
 * @self: a socket
 *
 * A new reference to the object stored with
 * engine_io_socket_set_user_object(), taken under the socket's user-data
 * lock: safe from any thread while the owner replaces it.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer full) (nullable) (type GObject.Object): the object, or
 *   %NULL if none is stored (or the data was set with
 *   engine_io_socket_set_user_data())
 */
gpointer
engine_io_socket_dup_user_object (EngineIOSocket *self)
{
  gpointer object = NULL;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), NULL);

  ENGINE_IO_LOCK (&self->user_data_lock, USER_DATA);
  if (self->user_data_is_object && self->user_data != NULL)
    object = g_object_ref (self->user_data);
  ENGINE_IO_UNLOCK (&self->user_data_lock);

  return object;
}

/**
 * engine_io_socket_send_text_len_full:
 * @self: a socket
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data after @callback ran (or instead,
 *   if the send fails)
 * @error: return location for a #GError
 *
 * Queues a text message of @length bytes (copied). Never blocks. Messages
 * are delivered in the order they were sent from any one thread. Text
 * with U+0000 in it goes whole; receive such text with
 * #EngineIOSocket::packet and engine_io_packet_get_text_bytes() (or the
 * @length of engine_io_packet_get_text()). From Python, @text is a `bytes`
 * (`text.encode()`).
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8, with
 * %ENGINE_IO_ERROR_CLOSED if the session has ended, and with
 * %ENGINE_IO_ERROR_QUEUE_FULL when the queue is over
 * #EngineIOServer:send-queue-high-water and the back-pressure policy says
 * so (see #EngineIOBackpressurePolicy).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_len_full (EngineIOSocket        *self,
                                     const char            *text,
                                     gssize                 length,
                                     EngineIOSendCallback   callback,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy,
                                     GError               **error)
{
  gsize len;
  gsize bad = 0;
  char *copy;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (text != NULL || length == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  len = length < 0 ? strlen (text) : (gsize) length;
  if (len > 0 && !engine_io_utf8_validate (text, len, &bad))
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Message is not valid UTF-8 (bad byte at offset %" G_GSIZE_FORMAT ")", bad);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }

  copy = g_malloc (len + 1);
  if (len > 0)
    memcpy (copy, text, len);
  copy[len] = '\0';
  return engine_io_socket_enqueue (self, engine_io_packet_new_take_text (ENGINE_IO_PACKET_MESSAGE, copy, len),
                                   callback, user_data, destroy, TRUE, error);
}

/**
 * engine_io_socket_send_packet:
 * @self: a socket
 * @packet: a message packet (%ENGINE_IO_PACKET_MESSAGE, text or binary)
 * @error: return location for a #GError
 *
 * Queues @packet as it is: it is shared, not copied (one packet may be
 * queued to many sockets; see engine_io_server_broadcast_packet()). Fails
 * like engine_io_socket_send_text_len_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_packet (EngineIOSocket  *self,
                              EngineIOPacket  *packet,
                              GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (packet != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (engine_io_packet_get_packet_type (packet) != ENGINE_IO_PACKET_MESSAGE)
    {
      g_set_error (error, ENGINE_IO_ERROR, ENGINE_IO_ERROR_INVALID_ARGUMENT,
                   "Only message packets may be sent (not type %d)",
                   (int) engine_io_packet_get_packet_type (packet));
      return FALSE;
    }
  return engine_io_socket_enqueue (self, engine_io_packet_ref (packet), NULL, NULL, NULL, TRUE, error);
}

/**
 * engine_io_socket_send_text_len:
 * @self: a socket
 * @text: (array length=length) (element-type guint8): a UTF-8 message,
 *   which may contain U+0000
 * @length: the length of @text in bytes, or -1 if it is NUL-terminated
 * @error: return location for a #GError
 *
 * Queues a text message of @length bytes; see
 * engine_io_socket_send_text_len_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_len (EngineIOSocket  *self,
                                const char      *text,
                                gssize           length,
                                GError         **error)
{
  return engine_io_socket_send_text_len_full (self, text, length, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_send_text_full:
 * @self: a socket
 * @text: a UTF-8 message
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data after @callback ran (or instead,
 *   if the send fails)
 * @error: return location for a #GError
 *
 * Queues a text message (NUL-terminated: for text that contains U+0000,
 * use engine_io_socket_send_text_len_full()). Never blocks. Messages are
 * delivered in the order they were sent from any one thread.
 *
 * Fails with %ENGINE_IO_ERROR_INVALID_ARGUMENT if @text is not UTF-8, with
 * %ENGINE_IO_ERROR_CLOSED if the session has ended, and with
 * %ENGINE_IO_ERROR_QUEUE_FULL when the queue is over
 * #EngineIOServer:send-queue-high-water and the back-pressure policy says
 * so (see #EngineIOBackpressurePolicy).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text_full (EngineIOSocket        *self,
                                 const char            *text,
                                 EngineIOSendCallback   callback,
                                 gpointer               user_data,
                                 GDestroyNotify         destroy,
                                 GError               **error)
{
  g_return_val_if_fail (text != NULL, FALSE);

  return engine_io_socket_send_text_len_full (self, text, -1, callback, user_data, destroy, error);
}

/**
 * engine_io_socket_send_text:
 * @self: a socket
 * @text: a UTF-8 message
 * @error: return location for a #GError
 *
 * Queues a text message; see engine_io_socket_send_text_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_text (EngineIOSocket  *self,
                            const char      *text,
                            GError         **error)
{
  return engine_io_socket_send_text_full (self, text, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_send_binary_full:
 * @self: a socket
 * @data: the message
 * @callback: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   called in the socket's main context once the message has been handed
 *   to the transport, or the session closed before it could be
 * @user_data: data for @callback
 * @destroy: (nullable): frees @user_data
 * @error: return location for a #GError
 *
 * Queues a binary message (the bytes are referenced, not copied). Never
 * blocks. Errors as for engine_io_socket_send_text_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_binary_full (EngineIOSocket        *self,
                                   GBytes                *data,
                                   EngineIOSendCallback   callback,
                                   gpointer               user_data,
                                   GDestroyNotify         destroy,
                                   GError               **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), FALSE);
  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return engine_io_socket_enqueue (self, engine_io_packet_new_binary (ENGINE_IO_PACKET_MESSAGE, data),
                                   callback, user_data, destroy, TRUE, error);
}

/**
 * engine_io_socket_send_binary:
 * @self: a socket
 * @data: the message
 * @error: return location for a #GError
 *
 * Queues a binary message; see engine_io_socket_send_binary_full().
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if the message was queued
 */
gboolean
engine_io_socket_send_binary (EngineIOSocket  *self,
                              GBytes          *data,
                              GError         **error)
{
  return engine_io_socket_send_binary_full (self, data, NULL, NULL, NULL, error);
}

/**
 * engine_io_socket_close:
 * @self: a socket
 *
 * Ends the session (reason `forced close`). From the moment it returns,
 * sends fail with %ENGINE_IO_ERROR_CLOSED and messages the handlers have not
 * seen yet are not delivered. What was queued before is still handed to the
 * client (over polling on the waiting poll, or the next one within two
 * seconds), followed by a close packet, or over WebSocket by a close frame
 * (a poll response still being written is waited for, up to
 * #EngineIOServer:connection-timeout after those two seconds: its send
 * callbacks say whether it was written);
 * during an upgrade (the client's probe answered) it goes on the WebSocket
 * instead if the client completes the upgrade within those two seconds
 * rather than polling. Meanwhile a POST from the client (a heartbeat
 * answer that crossed the close, say) is answered `ok` and its packets are
 * dropped, as the reference does, so the client still polls for the last
 * packets. Returns at once; #EngineIOSocket::close follows in the socket's main
 * context once the transport is done. Does nothing if the session has
 * already ended.
 *
 * Thread-safe: may be called from any thread.
 */
void
engine_io_socket_close (EngineIOSocket *self)
{
  g_return_if_fail (ENGINE_IO_IS_SOCKET (self));

  engine_io_socket_close_with_reason (self, ENGINE_IO_CLOSE_REASON_FORCED_CLOSE, NULL);
}

/**
 * engine_io_socket_get_send_queue_length:
 * @self: a socket
 *
 * How many packets are queued and not yet handed to the transport.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: the number of queued packets
 */
guint
engine_io_socket_get_send_queue_length (EngineIOSocket *self)
{
  guint n;

  g_return_val_if_fail (ENGINE_IO_IS_SOCKET (self), 0);

  ENGINE_IO_LOCK (&self->state_lock, SESSION);
  n = self->outbound.length;
  ENGINE_IO_UNLOCK (&self->state_lock);
  return n;
}
