/* socketio-server.c: a Socket.IO (protocol v5) server on an EngineIOServer
 *
 * Built on the public Engine.IO API only. One SioClient per Engine.IO
 * session holds the packet decoder and the session's sockets (one per
 * namespace joined); it lives in the session's main context: every packet
 * is decoded and dispatched there, and every signal of a SocketIOSocket is
 * emitted there.
 *
 * This file: the object and its properties, the namespaces it makes
 * (dynamic ones too), and each Engine.IO session's client: its packets
 * and its CONNECTs. socketio-server-internal.h lists the other files of
 * the server and its locks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-server-internal.h"

#include <string.h>

/**
 * SocketIOServer:
 *
 * A Socket.IO server on an #EngineIOServer: every Engine.IO session is a
 * Socket.IO client that joins namespaces. Its namespaces are created with
 * socket_io_server_of() (any thread).
 */
G_DEFINE_FINAL_TYPE (SocketIOServer, socket_io_server, G_TYPE_OBJECT)

enum { SERVER_PROP_0, SERVER_PROP_ENGINE, SERVER_PROP_CONNECT_TIMEOUT,
       SERVER_PROP_MAX_NAMESPACES, SERVER_PROP_MAX_PENDING_ACKS, SERVER_PROP_MAX_DYNAMIC,
       SERVER_PROP_RECOVERY, SERVER_PROP_MAX_DISCONNECTION, SERVER_PROP_SKIP_MIDDLEWARES,
       SERVER_PROP_MAX_REC_SESSIONS, SERVER_PROP_MAX_REC_PACKETS, SERVER_PROP_MAX_REC_BYTES,
       SERVER_N_PROPS };
static GParamSpec *server_props[SERVER_N_PROPS];

enum { SERVER_SIGNAL_NEW_NAMESPACE, SERVER_N_SIGNALS };
static guint server_signals[SERVER_N_SIGNALS];

/* ------------------------------------------------------------------ */
/* Receiving                                                            */
/* ------------------------------------------------------------------ */

/* Session context: an undeclared namespace, created if a pattern matches
 * it or the namespace function accepts it. */
static SocketIONamespace *server_of_locked (SocketIOServer *self,
                                            const char     *name);

static void namespace_configured (SocketIOServer    *self,
                                  SocketIONamespace *nsp);

/* Any thread: creates the dynamic namespace @name if a pattern or the
 * namespace function accepts it, and emits ::new-namespace for it on this
 * thread. CONNECTs to it that other clients send meanwhile are parked
 * (namespace_park()) and go on, each in its session context, once the
 * handlers have returned. */
static SocketIONamespace *
server_dynamic_namespace (SocketIOServer *self,
                          const char     *name,
                          JsonNode       *auth)
{
  g_autoptr(GPtrArray) patterns = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
  SocketIONamespaceFunc func;
  gpointer func_data;
  gboolean accept = FALSE;
  SocketIONamespace *nsp;
  gboolean created;

  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->patterns->len; i++)
    g_ptr_array_add (patterns, g_regex_ref (g_ptr_array_index (self->patterns, i)));
  func = self->namespace_func;
  func_data = self->namespace_data;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < patterns->len && !accept; i++)
    accept = g_regex_match (g_ptr_array_index (patterns, i), name, 0, NULL);
  if (!accept && func != NULL)
    accept = func (self, name, auth, func_data);
  if (!accept)
    return NULL;

  g_mutex_lock (&self->lock);
  nsp = g_hash_table_lookup (self->namespaces, name);
  created = nsp == NULL;
  if (created && g_hash_table_size (self->namespaces) >= (guint) g_atomic_int_get (&self->max_dynamic))
    {
      g_mutex_unlock (&self->lock);
      g_debug ("namespace %s refused: max-namespaces reached", name);
      return NULL;
    }
  if (created)
    {
      nsp = server_of_locked (self, name);
      nsp->configuring = TRUE;
    }
  g_object_ref (nsp);
  g_mutex_unlock (&self->lock);
  if (created)
    {
      g_signal_emit (self, server_signals[SERVER_SIGNAL_NEW_NAMESPACE], 0, nsp);
      namespace_configured (self, nsp);
    }
  return nsp;
}

static void client_connect (SioClient  *c,
                            const char *name,
                            JsonNode   *auth);
static void client_dispatch (SioClient      *c,
                             SocketIOPacket *packet);

/* Session context, once the namespace's ::new-namespace handlers have
 * returned: the parked CONNECT starts again. */
static gboolean
unpark_in_context (gpointer data)
{
  SioConnectAttempt *attempt = data;
  g_autoptr(JsonNode) auth = NULL;
  g_autofree char *name = NULL;
  SioClient *c = attempt->c;
  GQueue early = G_QUEUE_INIT;
  SocketIOPacket *packet;

  if (c == NULL || c->closed || g_hash_table_lookup (c->pending, attempt->name) != attempt)
    return G_SOURCE_REMOVE;
  socket_io_client_ref (c);
  name = g_strdup (attempt->name);
  auth = attempt->auth != NULL ? json_node_ref (attempt->auth) : NULL;
  early = attempt->early;
  g_queue_init (&attempt->early);
  g_hash_table_remove (c->pending, name);     /* forgets @attempt's client */
  client_connect (c, name, auth);
  /* What came after the CONNECT, as if it came now: for its socket's
   * `connection` (the middlewares let it in at once), or it closes the
   * client as during any pending CONNECT. */
  while ((packet = g_queue_pop_head (&early)) != NULL)
    {
      if (!c->closed)
        client_dispatch (c, packet);
      socket_io_packet_unref (packet);
    }
  socket_io_client_unref (c);
  return G_SOURCE_REMOVE;
}

/* Any thread (the one that ran the ::new-namespace handlers): queues the
 * parked @data to its session context, unless its session ended. */
static void
attempt_unpark (gpointer data)
{
  SioConnectAttempt *attempt = data;
  SioClient *c = NULL;
  GSource *source;

  g_mutex_lock (&attempt->lock);
  if (attempt->c != NULL)
    c = socket_io_client_ref (attempt->c);
  g_mutex_unlock (&attempt->lock);
  if (c == NULL)
    return;
  /* A source, not g_main_context_invoke(): on the handlers' own thread
   * that would run this CONNECT inside the one that created the
   * namespace. */
  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, unpark_in_context, socket_io_connect_attempt_ref (attempt),
                         (GDestroyNotify) socket_io_connect_attempt_unref);
  g_source_set_static_name (source, "[socketio] unpark CONNECT");
  g_source_attach (source, c->context);
  g_source_unref (source);
  socket_io_client_unref (c);
}

/* The thread that ran @nsp's ::new-namespace handlers, once they have
 * returned: the CONNECTs parked meanwhile go on. */
static void
namespace_configured (SocketIOServer    *self,
                      SocketIONamespace *nsp)
{
  GQueue parked;
  SioConnectAttempt *attempt;

  g_mutex_lock (&self->lock);
  nsp->configuring = FALSE;
  parked = nsp->parked;
  g_queue_init (&nsp->parked);
  for (GList *l = parked.head; l != NULL; l = l->next)
    ((SioConnectAttempt *) l->data)->park_link = NULL;
  g_mutex_unlock (&self->lock);
  while ((attempt = g_queue_pop_head (&parked)) != NULL)
    {
      attempt_unpark (attempt);
      socket_io_connect_attempt_unref (attempt);
    }
}

/* Session context: if @nsp's ::new-namespace handlers (run for another
 * client, on any thread, this one included when they iterate the
 * context) have not returned yet, @nsp has none of the middlewares they
 * add, and a client let in now would skip them. Its CONNECT is then
 * parked: a pending attempt (so that the client may send nothing else to
 * @nsp meanwhile, and its session's end forgets it) that starts again
 * once they return. Nothing waits: no thread is held, however long the
 * handlers take. */
static gboolean
namespace_park (SocketIONamespace *nsp,
                SioClient         *c,
                const char        *name,
                JsonNode          *auth)
{
  SocketIOServer *server = c->server;
  SioConnectAttempt *attempt;

  g_mutex_lock (&server->lock);
  if (!nsp->configuring)
    {
      g_mutex_unlock (&server->lock);
      return FALSE;
    }
  attempt = g_new0 (SioConnectAttempt, 1);
  g_atomic_ref_count_init (&attempt->ref_count);
  g_mutex_init (&attempt->lock);
  attempt->c = socket_io_client_ref (c);
  attempt->nsp = g_object_ref (nsp);
  attempt->name = g_strdup (name);
  attempt->auth = auth != NULL ? json_node_ref (auth) : NULL;
  attempt->parked = TRUE;
  g_queue_push_tail (&nsp->parked, socket_io_connect_attempt_ref (attempt));
  attempt->park_link = nsp->parked.tail;
  g_mutex_unlock (&server->lock);
  g_debug ("%s: CONNECT to %s parked until its ::new-namespace handlers return",
           engine_io_socket_get_id (c->eio), name);
  g_hash_table_insert (c->pending, g_strdup (name), attempt);   /* takes the ref */
  return TRUE;
}

static void
client_connect (SioClient  *c,
                const char *name,
                JsonNode   *auth)
{
  g_autoptr(SocketIONamespace) nsp = socket_io_server_lookup_namespace (c->server, name);
  g_autoptr(SocketIOSession) session = NULL;
  gboolean recovery_locked = FALSE;
  SioConnectAttempt *attempt;

  if (nsp == NULL)
    nsp = server_dynamic_namespace (c->server, name, auth);
  if (nsp == NULL)
    {
      g_autoptr(JsonNode) data = socket_io_error_object ("Invalid namespace", NULL);

      socket_io_client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
      return;
    }
  if (g_hash_table_size (c->sockets) + g_hash_table_size (c->pending) >=
      (guint) g_atomic_int_get (&c->server->max_namespaces))
    {
      g_autoptr(JsonNode) data = socket_io_error_object ("Too many namespaces", NULL);

      socket_io_client_send_simple (c, SOCKET_IO_PACKET_CONNECT_ERROR, name, data);
      socket_io_client_fail (c, "forced server close");
      return;
    }
  if (namespace_park (nsp, c, name, auth))
    return;

  /* Connection state recovery: the auth names the private session id and
   * the last offset the client got. Held for writing from the restore to
   * the socket's rejoining its rooms when the middlewares are skipped, so
   * that no broadcast falls in between. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V5 && socket_io_server_recovery_on (c->server) &&
      auth != NULL && JSON_NODE_HOLDS_OBJECT (auth))
    {
      JsonObject *object = json_node_get_object (auth);
      JsonNode *pid = json_object_get_member (object, "pid");
      JsonNode *offset = json_object_get_member (object, "offset");

      if (pid != NULL && offset != NULL &&
          json_node_get_value_type (pid) == G_TYPE_STRING &&
          json_node_get_value_type (offset) == G_TYPE_STRING)
        {
          g_rw_lock_writer_lock (&nsp->recovery_lock);
          recovery_locked = TRUE;
          session = socket_io_adapter_restore_session (socket_io_namespace_get_adapter (nsp),
                                                       json_node_get_string (pid),
                                                       json_node_get_string (offset));
          if (session == NULL)
            {
              g_rw_lock_writer_unlock (&nsp->recovery_lock);
              recovery_locked = FALSE;
            }
        }
    }

  attempt = g_new0 (SioConnectAttempt, 1);
  g_atomic_ref_count_init (&attempt->ref_count);
  g_mutex_init (&attempt->lock);
  attempt->c = socket_io_client_ref (c);
  attempt->nsp = g_object_ref (nsp);
  attempt->name = g_strdup (name);
  attempt->socket = socket_io_socket_new (nsp, c, auth, session);
  if (session != NULL)
    attempt->socket->recovery_offset =
      g_strdup (json_object_get_string_member (json_node_get_object (auth), "offset"));
  g_hash_table_insert (c->pending, g_strdup (name), attempt);   /* takes the ref */
  if (session != NULL && g_atomic_int_get (&c->server->skip_middlewares))
    socket_io_connect_finish (attempt, recovery_locked);
  else
    {
      if (recovery_locked)
        g_rw_lock_writer_unlock (&nsp->recovery_lock);
      socket_io_connect_run (attempt);
    }
}

static void
client_dispatch (SioClient      *c,
                 SocketIOPacket *packet)
{
  const char *name = socket_io_packet_get_namespace (packet);
  SocketIOPacketType type = socket_io_packet_get_packet_type (packet);
  g_autofree char *path = NULL;
  g_autoptr(JsonNode) query_auth = NULL;
  SocketIOSocket *socket;
  SioConnectAttempt *parked;
  const char *query;

  /* v4 clients put their query in the namespace ("/nsp?token=1"): it is
   * their auth, as the reference makes it (string values; a later value
   * of a name replaces an earlier one). At most the first
   * SIO_MAX_QUERY_PARAMS parameters are read, as the reference's
   * querystring.parse() (maxKeys): GLib's and json-glib's hash tables
   * take n^2 time on names of one g_str_hash() (unseeded). A malformed
   * query gives an empty auth. */
  if (c->protocol == SOCKET_IO_PROTOCOL_V4 && (query = strchr (name, '?')) != NULL)
    {
      JsonObject *object = json_object_new ();
      g_autoptr(GError) malformed = NULL;
      GUriParamsIter iter;
      char *key, *value;
      guint n = 0;

      path = g_strndup (name, (gsize) (query - name));
      name = path;
      g_uri_params_iter_init (&iter, query + 1, -1, "&", G_URI_PARAMS_NONE);
      while (n < SIO_MAX_QUERY_PARAMS && g_uri_params_iter_next (&iter, &key, &value, &malformed))
        {
          json_object_set_string_member (object, key, value);
          g_free (key);
          g_free (value);
          n++;
        }
      if (malformed != NULL)
        {
          json_object_unref (object);
          object = json_object_new ();
        }
      query_auth = json_node_init_object (json_node_alloc (), object);
      json_object_unref (object);
      json_node_seal (query_auth);
    }
  socket = g_hash_table_lookup (c->sockets, name);

  /* A namespace whose CONNECT is still in the middlewares: nothing may
   * come for it meanwhile (the reference closes too). */
  if (socket == NULL && type == SOCKET_IO_PACKET_CONNECT && !g_hash_table_contains (c->pending, name))
    client_connect (c, name, query_auth != NULL ? query_auth : socket_io_packet_get_data (packet));
  else if (socket != NULL && type != SOCKET_IO_PACKET_CONNECT &&
           type != SOCKET_IO_PACKET_CONNECT_ERROR)
    {
      g_autoptr(SocketIOSocket) hold = g_object_ref (socket);

      /* Queued also while earlier ones wait (`connection` or a handler
       * they reach iterates the context): none overtakes them. */
      if (!hold->announced || !g_queue_is_empty (&hold->early_packets))
        {
          /* Pipelined after its CONNECT: for after `connection`. */
          if (g_queue_get_length (&hold->early_packets) >= SIO_MAX_EARLY_PACKETS)
            {
              g_debug ("%s: more than %d packets before `connection`",
                       engine_io_socket_get_id (c->eio), SIO_MAX_EARLY_PACKETS);
              socket_io_client_fail (c, "forced server close");
              return;
            }
          g_queue_push_tail (&hold->early_packets, socket_io_packet_ref (packet));
        }
      else
        socket_io_socket_on_packet (hold, packet);
    }
  else if (socket == NULL && type != SOCKET_IO_PACKET_CONNECT &&
           type != SOCKET_IO_PACKET_CONNECT_ERROR &&
           (parked = g_hash_table_lookup (c->pending, name)) != NULL && parked->parked)
    {
      /* After a parked CONNECT (namespace_park()): kept for when it goes
       * on, within the same bound as for a namespace that is ready. */
      if (g_queue_get_length (&parked->early) >= SIO_MAX_EARLY_PACKETS)
        {
          g_debug ("%s: more than %d packets after a parked CONNECT",
                   engine_io_socket_get_id (c->eio), SIO_MAX_EARLY_PACKETS);
          socket_io_client_fail (c, "forced server close");
          return;
        }
      g_queue_push_tail (&parked->early, socket_io_packet_ref (packet));
    }
  else
    {
      g_debug ("%s: packet type %d in an invalid state", engine_io_socket_get_id (c->eio), type);
      socket_io_client_fail (c, "forced server close");
    }
}

static void
on_eio_packet (EngineIOSocket *eio,
               EngineIOPacket *epacket,
               gpointer        data)
{
  SioClient *c = data;
  g_autoptr(SocketIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (c->closed || engine_io_packet_get_packet_type (epacket) != ENGINE_IO_PACKET_MESSAGE)
    return;
  if (engine_io_packet_is_binary (epacket))
    ok = socket_io_decoder_feed_binary (c->decoder, engine_io_packet_get_data (epacket),
                                        &packet, &error);
  else
    {
      gsize length = 0;
      const char *text = engine_io_packet_get_text (epacket, &length);

      ok = socket_io_decoder_feed_text (c->decoder, text, length, &packet, &error);
    }
  if (!ok)
    {
      g_debug ("%s: %s", engine_io_socket_get_id (eio), error->message);
      socket_io_client_fail (c, "parse error");
      return;
    }
  if (packet != NULL)
    client_dispatch (c, packet);
}

/* Connected so that messages are not also kept for engine_io_socket_receive(). */
static void
on_eio_message (EngineIOSocket *eio,
                const char     *text,
                GBytes         *bytes,
                gpointer        data)
{
}

static const char *
close_reason_string (EngineIOCloseReason reason)
{
  switch (reason)
    {
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_CLOSE:
      return "transport close";
    case ENGINE_IO_CLOSE_REASON_TRANSPORT_ERROR:
      return "transport error";
    case ENGINE_IO_CLOSE_REASON_PING_TIMEOUT:
      return "ping timeout";
    case ENGINE_IO_CLOSE_REASON_PARSE_ERROR:
      return "parse error";
    case ENGINE_IO_CLOSE_REASON_FORCED_CLOSE:
      return "forced server close";
    case ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN:
      return "server shutting down";
    case ENGINE_IO_CLOSE_REASON_RATE_LIMITED:
    default:
      return "forced server close";
    }
}

static void
on_eio_close (EngineIOSocket      *eio,
              EngineIOCloseReason  reason,
              const char          *description,
              gpointer             data)
{
  SioClient *c = socket_io_client_ref (data);
  const char *text = c->close_reason != NULL ? c->close_reason : close_reason_string (reason);
  g_autoptr(GPtrArray) sockets = NULL;

  c->closed = TRUE;
  socket_io_client_cancel_connect_timer (c);
  sockets = socket_io_client_dup_sockets (c);
  for (guint i = 0; i < sockets->len; i++)
    socket_io_socket_close (g_ptr_array_index (sockets, i), text);
  g_hash_table_remove_all (c->pending);
  socket_io_decoder_reset (c->decoder);
  g_signal_handlers_disconnect_by_data (eio, c);
  socket_io_client_unref (c);
}

static void
client_closure_notify (gpointer  data,
                       GClosure *closure)
{
  socket_io_client_unref (data);
}

static void
on_engine_connection (EngineIOServer *engine,
                      EngineIOSocket *eio,
                      gpointer        data)
{
  SocketIOServer *self = data;
  SioClient *c;
  guint timeout;

  c = g_new0 (SioClient, 1);
  c->protocol = engine_io_socket_get_protocol_version (eio) == ENGINE_IO_PROTOCOL_V3
    ? SOCKET_IO_PROTOCOL_V4 : SOCKET_IO_PROTOCOL_V5;
  g_atomic_ref_count_init (&c->ref_count);
  c->server = g_object_ref (self);
  c->eio = g_object_ref (eio);
  c->context = g_main_context_ref (engine_io_socket_get_context (eio));
  g_mutex_init (&c->send_lock);
  c->decoder = socket_io_decoder_new (c->protocol);
  c->sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  c->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, socket_io_connect_attempt_abandon);

  /* Signals, not the socket's message function (engine_io_socket_set_message_func()),
   * for now: without the GObject signal lock on the message path, CI's
   * ThreadSanitizer (GLib instrumented, json-glib not) reports json-glib's
   * own synchronisation (its types' g_once, its objects' atomic reference
   * counts) as races; with an instrumented json-glib this can change. */
  g_signal_connect_data (eio, "packet", G_CALLBACK (on_eio_packet), socket_io_client_ref (c),
                         client_closure_notify, 0);
  g_signal_connect_data (eio, "message", G_CALLBACK (on_eio_message), socket_io_client_ref (c),
                         client_closure_notify, 0);
  g_signal_connect_data (eio, "close", G_CALLBACK (on_eio_close), socket_io_client_ref (c),
                         client_closure_notify, 0);

  if (c->protocol == SOCKET_IO_PROTOCOL_V4)
    {
      /* Protocol v4: the client is in the main namespace from the start. */
      client_connect (c, "/", NULL);
      socket_io_client_unref (c);
      return;
    }
  timeout = g_atomic_int_get (&self->connect_timeout);
  if (timeout > 0)
    {
      c->connect_timer = g_timeout_source_new (timeout);
      g_source_set_callback (c->connect_timer, socket_io_client_on_connect_timeout, c, NULL);
      g_source_attach (c->connect_timer, c->context);
    }
  socket_io_client_unref (c);
}

/* ------------------------------------------------------------------ */
/* SocketIOServer                                                       */
/* ------------------------------------------------------------------ */

static void
socket_io_server_constructed (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  G_OBJECT_CLASS (socket_io_server_parent_class)->constructed (object);
  g_return_if_fail (self->engine != NULL);
  self->connection_id = g_signal_connect (self->engine, "connection",
                                          G_CALLBACK (on_engine_connection), self);
  /* The main namespace always exists. */
  g_object_unref (socket_io_server_of (self, "/"));
}

static void
socket_io_server_dispose (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  if (self->connection_id != 0)
    {
      g_signal_handler_disconnect (self->engine, self->connection_id);
      self->connection_id = 0;
    }
  G_OBJECT_CLASS (socket_io_server_parent_class)->dispose (object);
}

static void
socket_io_server_finalize (GObject *object)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  g_hash_table_unref (self->namespaces);
  g_ptr_array_unref (self->patterns);
  if (self->namespace_destroy != NULL)
    self->namespace_destroy (self->namespace_data);
  g_clear_object (&self->engine);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (socket_io_server_parent_class)->finalize (object);
}

static void
socket_io_server_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  switch (prop_id)
    {
    case SERVER_PROP_ENGINE:
      g_value_set_object (value, self->engine);
      break;
    case SERVER_PROP_CONNECT_TIMEOUT:
      g_value_set_uint (value, g_atomic_int_get (&self->connect_timeout));
      break;
    case SERVER_PROP_MAX_NAMESPACES:
      g_value_set_uint (value, g_atomic_int_get (&self->max_namespaces));
      break;
    case SERVER_PROP_MAX_PENDING_ACKS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_pending_acks));
      break;
    case SERVER_PROP_MAX_DYNAMIC:
      g_value_set_uint (value, g_atomic_int_get (&self->max_dynamic));
      break;
    case SERVER_PROP_RECOVERY:
      g_value_set_boolean (value, g_atomic_int_get (&self->recovery));
      break;
    case SERVER_PROP_MAX_DISCONNECTION:
      g_value_set_uint (value, g_atomic_int_get (&self->max_disconnection));
      break;
    case SERVER_PROP_SKIP_MIDDLEWARES:
      g_value_set_boolean (value, g_atomic_int_get (&self->skip_middlewares));
      break;
    case SERVER_PROP_MAX_REC_SESSIONS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_sessions));
      break;
    case SERVER_PROP_MAX_REC_PACKETS:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_packets));
      break;
    case SERVER_PROP_MAX_REC_BYTES:
      g_value_set_uint (value, g_atomic_int_get (&self->max_rec_bytes));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_server_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  SocketIOServer *self = SOCKET_IO_SERVER (object);

  switch (prop_id)
    {
    case SERVER_PROP_ENGINE:
      self->engine = g_value_dup_object (value);
      break;
    case SERVER_PROP_CONNECT_TIMEOUT:
      g_atomic_int_set (&self->connect_timeout, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_NAMESPACES:
      g_atomic_int_set (&self->max_namespaces, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_PENDING_ACKS:
      g_atomic_int_set (&self->max_pending_acks, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_DYNAMIC:
      g_atomic_int_set (&self->max_dynamic, g_value_get_uint (value));
      break;
    case SERVER_PROP_RECOVERY:
      g_atomic_int_set (&self->recovery, g_value_get_boolean (value));
      break;
    case SERVER_PROP_MAX_DISCONNECTION:
      g_atomic_int_set (&self->max_disconnection, g_value_get_uint (value));
      break;
    case SERVER_PROP_SKIP_MIDDLEWARES:
      g_atomic_int_set (&self->skip_middlewares, g_value_get_boolean (value));
      break;
    case SERVER_PROP_MAX_REC_SESSIONS:
      g_atomic_int_set (&self->max_rec_sessions, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_REC_PACKETS:
      g_atomic_int_set (&self->max_rec_packets, g_value_get_uint (value));
      break;
    case SERVER_PROP_MAX_REC_BYTES:
      g_atomic_int_set (&self->max_rec_bytes, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
socket_io_server_class_init (SocketIOServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = socket_io_server_constructed;
  object_class->dispose = socket_io_server_dispose;
  object_class->finalize = socket_io_server_finalize;
  object_class->get_property = socket_io_server_get_property;
  object_class->set_property = socket_io_server_set_property;

  /**
   * SocketIOServer:engine:
   *
   * The Engine.IO server this server listens on (construct-only).
   */
  server_props[SERVER_PROP_ENGINE] =
    g_param_spec_object ("engine", NULL, NULL, ENGINE_IO_TYPE_SERVER,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:connect-timeout:
   *
   * Milliseconds a new Engine.IO session may take to join a namespace
   * before it is closed (the reference's `connectTimeout`); 0: no limit.
   * Read when a session opens. Default 45000.
   */
  server_props[SERVER_PROP_CONNECT_TIMEOUT] =
    g_param_spec_uint ("connect-timeout", NULL, NULL, 0, G_MAXINT, SOCKET_IO_DEFAULT_CONNECT_TIMEOUT,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-namespaces-per-client:
   *
   * How many namespaces one Engine.IO session may join at once. A CONNECT
   * past it is answered with CONNECT_ERROR `Too many namespaces` and the
   * session is closed. Default 64.
   */
  server_props[SERVER_PROP_MAX_NAMESPACES] =
    g_param_spec_uint ("max-namespaces-per-client", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_NAMESPACES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-pending-acks:
   *
   * How many socket_io_socket_emit_with_ack() calls may wait for their
   * ack on one socket; past it the call fails at once with
   * %G_IO_ERROR_NO_SPACE. Default 1024.
   */
  server_props[SERVER_PROP_MAX_PENDING_ACKS] =
    g_param_spec_uint ("max-pending-acks", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_PENDING_ACKS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-namespaces:
   *
   * How many namespaces may exist before dynamic ones are refused (a
   * client asking for one more gets `Invalid namespace`): clients create
   * dynamic namespaces, and namespaces are never removed. Declared ones
   * (socket_io_server_of()) are not refused. Default 1024.
   */
  server_props[SERVER_PROP_MAX_DYNAMIC] =
    g_param_spec_uint ("max-namespaces", NULL, NULL, 1, G_MAXINT, SOCKET_IO_DEFAULT_MAX_DYNAMIC_NAMESPACES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:connection-state-recovery:
   *
   * Connection state recovery (the reference's `connectionStateRecovery`):
   * the CONNECT reply carries a private session id (`pid`); every EVENT
   * sent without ack id and not volatile (broadcasts, and
   * socket_io_socket_emit(), which then goes through the adapter to the
   * socket's own room) gets an offset appended as its last argument (the
   * client sees it as one more argument); a socket that leaves for
   * `transport close`, `transport error`, `ping timeout`, `forced server
   * close` or `server shutting down` is persisted by its adapter, and
   * a client that comes back within
   * #SocketIOServer:max-disconnection-duration with its `pid` and last
   * `offset` in the CONNECT auth gets the same socket id, rooms and data
   * and, after the CONNECT reply, the events it missed
   * (socket_io_socket_get_recovered() is then %TRUE). Protocol v5 only.
   * Set it before engine_io_server_listen(). Default %FALSE.
   */
  server_props[SERVER_PROP_RECOVERY] =
    g_param_spec_boolean ("connection-state-recovery", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-disconnection-duration:
   *
   * Milliseconds a persisted session, and a packet kept for it, stays
   * recoverable (the reference's `maxDisconnectionDuration`). Expired
   * ones are dropped lazily (on the namespace's next broadcast,
   * disconnection or recovery). Default 120000.
   */
  server_props[SERVER_PROP_MAX_DISCONNECTION] =
    g_param_spec_uint ("max-disconnection-duration", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_DISCONNECTION_DURATION,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:skip-middlewares:
   *
   * Whether a recovered socket skips the namespace's middlewares (the
   * reference's `skipMiddlewares`). When they run, the session is
   * restored again once they let the socket in (so what was broadcast
   * meanwhile is sent too); a socket they refuse leaves its session
   * recoverable. Default %TRUE.
   */
  server_props[SERVER_PROP_SKIP_MIDDLEWARES] =
    g_param_spec_boolean ("skip-middlewares", NULL, NULL, TRUE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-sessions:
   *
   * How many persisted sessions the in-memory adapter of one namespace
   * keeps; past it the oldest is dropped (its client then gets a new
   * socket). Default 10000.
   */
  server_props[SERVER_PROP_MAX_REC_SESSIONS] =
    g_param_spec_uint ("max-recovery-sessions", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_SESSIONS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-packets:
   *
   * How many sent packets the in-memory adapter of one namespace keeps
   * for recovery; past it (or past #SocketIOServer:max-recovery-bytes)
   * the oldest is dropped, and a session whose last offset was dropped
   * is not recovered (a new socket instead). Default 10000.
   */
  server_props[SERVER_PROP_MAX_REC_PACKETS] =
    g_param_spec_uint ("max-recovery-packets", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_PACKETS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  /**
   * SocketIOServer:max-recovery-bytes:
   *
   * How many bytes (packets, attachments, room names and bookkeeping)
   * the kept packets of one namespace may take. Default 16 MiB.
   */
  server_props[SERVER_PROP_MAX_REC_BYTES] =
    g_param_spec_uint ("max-recovery-bytes", NULL, NULL, 0, G_MAXINT,
                       SOCKET_IO_DEFAULT_MAX_RECOVERY_BYTES,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, SERVER_N_PROPS, server_props);

  /**
   * SocketIOServer::new-namespace:
   * @server: the server
   * @nsp: the namespace just created
   *
   * Emitted when a dynamic namespace (socket_io_server_add_namespace_pattern(),
   * socket_io_server_set_namespace_func()) is created for a client, in
   * that client's session context, before the client joins it: connect
   * the namespace's #SocketIONamespace::connection and add its middlewares
   * here. The CONNECTs of other clients to the same namespace meanwhile
   * (from any thread, this one included if a handler iterates the main
   * context) go on once the handlers have returned, so none skips the
   * middlewares added here; they hold no thread while they wait, however
   * long the handlers take (a client whose session ends meanwhile is
   * forgotten).
   */
  server_signals[SERVER_SIGNAL_NEW_NAMESPACE] =
    g_signal_new ("new-namespace", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, SOCKET_IO_TYPE_NAMESPACE);
}

static void
socket_io_server_init (SocketIOServer *self)
{
  g_mutex_init (&self->lock);
  self->namespaces = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->patterns = g_ptr_array_new_with_free_func ((GDestroyNotify) g_regex_unref);
}

/**
 * socket_io_server_set_namespace_func:
 * @self: a server
 * @func: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   decides on undeclared namespaces, or %NULL
 * @user_data: data for @func
 * @destroy: (nullable): frees @user_data when replaced or when the server
 *   is finalized
 *
 * Dynamic namespaces: a CONNECT to an undeclared namespace that no
 * pattern matches asks @func. Set it before engine_io_server_listen();
 * any thread.
 */
void
socket_io_server_set_namespace_func (SocketIOServer        *self,
                                     SocketIONamespaceFunc  func,
                                     gpointer               user_data,
                                     GDestroyNotify         destroy)
{
  GDestroyNotify old_destroy;
  gpointer old_data;

  g_return_if_fail (SOCKET_IO_IS_SERVER (self));
  g_mutex_lock (&self->lock);
  old_destroy = self->namespace_destroy;
  old_data = self->namespace_data;
  self->namespace_func = func;
  self->namespace_data = user_data;
  self->namespace_destroy = destroy;
  g_mutex_unlock (&self->lock);
  if (old_destroy != NULL)
    old_destroy (old_data);
}

/**
 * socket_io_server_add_namespace_pattern:
 * @self: a server
 * @pattern: a Perl-compatible regular expression (anchor it: `^/room-\\d+$`)
 * @error: return location for a #GRegexError
 *
 * Dynamic namespaces: a CONNECT to an undeclared namespace whose name
 * @pattern matches creates it (see #SocketIOServer::new-namespace). Any
 * thread.
 *
 * Returns: %TRUE if @pattern compiled
 */
gboolean
socket_io_server_add_namespace_pattern (SocketIOServer  *self,
                                        const char      *pattern,
                                        GError         **error)
{
  GRegex *regex;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), FALSE);
  g_return_val_if_fail (pattern != NULL, FALSE);
  regex = g_regex_new (pattern, G_REGEX_OPTIMIZE, 0, error);
  if (regex == NULL)
    return FALSE;
  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->patterns, regex);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/**
 * socket_io_server_new:
 * @engine: the Engine.IO server to serve Socket.IO on
 *
 * Creates a Socket.IO server on @engine: every Engine.IO session @engine
 * opens from now on is a Socket.IO client: protocol v5 over Engine.IO v4,
 * and protocol v4 (socket.io 2.x clients) over Engine.IO v3 when @engine
 * accepts those (#EngineIOServer:allow-eio3, the reference's
 * `allowEIO3`). The namespace "/" exists from the start.
 *
 * Drop the last reference to the returned server only after
 * engine_io_server_close() (its "connection" handler runs on session
 * threads). Call before engine_io_server_listen().
 *
 * Any thread.
 *
 * Returns: (transfer full): a new server
 */
SocketIOServer *
socket_io_server_new (EngineIOServer *engine)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (engine), NULL);
  return g_object_new (SOCKET_IO_TYPE_SERVER, "engine", engine, NULL);
}

/**
 * socket_io_server_get_engine:
 * @self: a server
 *
 * Any thread.
 *
 * Returns: (transfer none): the Engine.IO server
 */
EngineIOServer *
socket_io_server_get_engine (SocketIOServer *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  return self->engine;
}

/* With the lock held. Returns: (transfer none) */
static SocketIONamespace *
server_of_locked (SocketIOServer *self,
                  const char     *name)
{
  SocketIONamespace *nsp = g_hash_table_lookup (self->namespaces, name);

  if (nsp == NULL)
    {
      nsp = g_object_new (SOCKET_IO_TYPE_NAMESPACE, NULL);
      nsp->name = g_strdup (name);
      nsp->server = self;
      nsp->adapter = socket_io_adapter_new (nsp);
      g_hash_table_insert (self->namespaces, g_strdup (name), nsp);
    }
  return nsp;
}

/**
 * socket_io_server_of:
 * @self: a server
 * @name: the namespace, starting with "/"
 *
 * Returns the namespace @name, creating (declaring) it if needed. Clients
 * may only join declared namespaces; others get CONNECT_ERROR `Invalid
 * namespace`.
 *
 * Any thread.
 *
 * Returns: (transfer full): the namespace
 */
SocketIONamespace *
socket_io_server_of (SocketIOServer *self,
                     const char     *name)
{
  SocketIONamespace *nsp;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  g_return_val_if_fail (name != NULL && name[0] == '/' && strchr (name, ',') == NULL, NULL);

  g_mutex_lock (&self->lock);
  nsp = g_object_ref (server_of_locked (self, name));
  g_mutex_unlock (&self->lock);
  return nsp;
}

/**
 * socket_io_server_lookup_namespace:
 * @self: a server
 * @name: a namespace name
 *
 * Any thread.
 *
 * Returns: (transfer full) (nullable): the namespace @name if it was
 *   declared with socket_io_server_of(), else %NULL
 */
SocketIONamespace *
socket_io_server_lookup_namespace (SocketIOServer *self,
                                   const char     *name)
{
  SocketIONamespace *nsp;

  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), NULL);
  g_mutex_lock (&self->lock);
  nsp = g_hash_table_lookup (self->namespaces, name);
  if (nsp != NULL)
    g_object_ref (nsp);
  g_mutex_unlock (&self->lock);
  return nsp;
}

/**
 * socket_io_server_get_connect_timeout:
 * @self: a server
 *
 * Any thread.
 *
 * Returns: #SocketIOServer:connect-timeout
 */
guint
socket_io_server_get_connect_timeout (SocketIOServer *self)
{
  g_return_val_if_fail (SOCKET_IO_IS_SERVER (self), 0);
  return g_atomic_int_get (&self->connect_timeout);
}

/**
 * socket_io_server_set_connect_timeout:
 * @self: a server
 * @timeout_ms: milliseconds, 0 for none
 *
 * Sets #SocketIOServer:connect-timeout (for sessions opened afterwards).
 * Any thread.
 */
void
socket_io_server_set_connect_timeout (SocketIOServer *self,
                                      guint           timeout_ms)
{
  g_return_if_fail (SOCKET_IO_IS_SERVER (self));
  g_object_set (self, "connect-timeout", timeout_ms, NULL);
}
