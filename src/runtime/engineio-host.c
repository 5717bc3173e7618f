/* engineio-host.c: the public host seam (EngineIOHostRequest)
 *
 * A web server of the application's (a C program's own, or a Python one
 * through GObject introspection, or the shipped libsoup host,
 * engineio-soup.c) hosts the engine by subclassing EngineIOHostRequest:
 * one object per HTTP request, whose class functions the engine calls to
 * answer, hold, resume and upgrade it. Both shipped hosts run on it: the
 * libsoup one (engineio-soup.c) on the public API alone, the libmicrohttpd
 * one (engineio-http.c: the own listener and the mount) with
 * engineio-host-private.h too (its watcher's view of waiting polls,
 * descriptors it keeps owning, connections libmicrohttpd completes
 * without calling its handler again, requests that borrow the server).
 * Underneath it is the private request interface
 * (engineio-request-private.h): the object's private part embeds an
 * EngineIORequest whose vtable forwards to the class functions.
 *
 * A body the engine answers before it is all read (413 past max-payload,
 * a session that ended): the host may close the connection once the
 * answer is written (the libsoup host), or drain the rest of the body, up
 * to a bound of its own, write the answer then and keep the connection
 * (the libmicrohttpd host: libmicrohttpd takes a response only once the
 * body is read).
 *
 * Threads: everything but the resume forwarder runs on the request's
 * serving thread (the host's). The resume forwarder runs on whichever
 * thread resumes the request, with no lock of the engine held.
 *
 * Lifetime: the host holds the object until it has called
 * engine_io_host_request_finished(). While the request is suspended the
 * engine holds a reference of its own (taken in the suspend forwarder,
 * dropped by the resume forwarder once the class's resume returned), so a
 * resumption on its way never finds the object gone; finished() is refused
 * while the request is suspended, so the class's resume is never called
 * after it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include <string.h>

#include "engineio-host.h"
#include "engineio-host-private.h"
#include "engineio-server-private.h"
#include "engineio-server-impl-private.h"
#include "engineio-socket-private.h"
#include "engineio-websocket-private.h"

/* Forwarded-for lists a proxy split over several headers are joined up to
 * this many bytes (as the shipped hosts do). */
#define MAX_JOINED_LIST 4096

typedef struct
{
  EngineIORequest      base;   /* the core's view */
  EngineIOHostRequest *owner;  /* unowned: the object this is part of */
} HostReq;

typedef struct
{
  HostReq          req;
  EngineIOServer  *server;          /* owned unless @server_borrowed; set by
                                     * engine_io_server_handle_host_request() */
  gboolean         server_borrowed; /* the host keeps @server alive (construct time) */
  char            *remote_address;  /* construct-only: what the host gave */
  GByteArray      *body;            /* the POST body being read (serving thread) */
  EngineIOSocket  *poll_socket;     /* owned: the session of a suspended poll (serving
                                     * thread; set in the suspend forwarder) */
  /* Serving thread. */
  gboolean         handed;          /* given to the engine */
  gboolean         want_body;       /* the engine reads a body */
  gboolean         suspended;       /* suspended, resumed() not called yet */
  gboolean         responded;       /* respond() was called */
  gboolean         upgrading;       /* upgrade() returned TRUE; not attached yet */
  gboolean         gone;            /* client_gone() was called */
  gboolean         finished;        /* finished() was called */
  /* (atomic) The resume forwarder ran for this suspension: resumed() may
   * be called (set before the class's resume() runs, on any thread). */
  gint             resume_due;
} EngineIOHostRequestPrivate;

G_DEFINE_TYPE_WITH_PRIVATE (EngineIOHostRequest, engine_io_host_request, G_TYPE_OBJECT)

enum
{
  PROP_0,
  PROP_METHOD,
  PROP_PATH,
  PROP_REMOTE_ADDRESS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

#define PRIV(self) ((EngineIOHostRequestPrivate *) engine_io_host_request_get_instance_private (self))

static EngineIOHostRequest *
owner_of (EngineIORequest *req)
{
  return ((HostReq *) req)->owner;
}

/* The NULL-terminated name, value, ... array the class functions take. */
static const char **
header_vector (GPtrArray *headers)
{
  guint n = headers != NULL ? headers->len : 0;
  const char **vector = g_new (const char *, n + 1);

  for (guint i = 0; i < n; i++)
    vector[i] = g_ptr_array_index (headers, i);
  vector[n] = NULL;
  return vector;
}

/* The private request interface, forwarded to the class */

static void
host_respond (EngineIORequest *req,
              guint            status,
              GPtrArray       *headers,
              GBytes          *body)
{
  EngineIOHostRequest *self = owner_of (req);
  EngineIOHostRequestPrivate *priv = PRIV (self);
  g_autofree const char **vector = header_vector (headers);
  g_autoptr(GBytes) empty = NULL;

  if (body == NULL)
    body = empty = g_bytes_new_static ("", 0);
  priv->responded = TRUE;
  ENGINE_IO_HOST_REQUEST_GET_CLASS (self)->respond (self, status, vector, body);
}

static void
host_suspend (EngineIORequest *req)
{
  EngineIOHostRequest *self = owner_of (req);
  EngineIOHostRequestPrivate *priv = PRIV (self);

  priv->suspended = TRUE;
  /* A waiting poll (this runs under its session's lock): its session, for
   * client_gone(). */
  if (req->kind == ENGINE_IO_REQUEST_POLL && req->socket != NULL && priv->poll_socket == NULL)
    priv->poll_socket = g_object_ref (req->socket);
  /* The resumption's reference, dropped by host_resume(). */
  g_object_ref (self);
  ENGINE_IO_HOST_REQUEST_GET_CLASS (self)->suspend (self);
}

/* Any thread, no lock of the engine held; once per suspension. */
static void
host_resume (EngineIORequest *req)
{
  EngineIOHostRequest *self = owner_of (req);

  /* Before the class's resume(): the host it wakes may call resumed() at
   * once. */
  g_atomic_int_set (&PRIV (self)->resume_due, TRUE);
  /* Never after finished(): that is refused while the request is
   * suspended, and a resumption is on its way only while it is. The
   * reference keeps @self alive for this call however soon the host,
   * woken by it, finishes and drops its own. */
  ENGINE_IO_HOST_REQUEST_GET_CLASS (self)->resume (self);
  g_object_unref (self);
}

static gboolean
host_upgrade (EngineIORequest *req,
              GPtrArray       *headers,
              EngineIOSocket  *socket)
{
  EngineIOHostRequest *self = owner_of (req);
  EngineIOHostRequestPrivate *priv = PRIV (self);
  g_autofree const char **vector = header_vector (headers);

  priv->upgrading = TRUE;
  if (ENGINE_IO_HOST_REQUEST_GET_CLASS (self)->upgrade (self, vector))
    return TRUE;
  priv->upgrading = FALSE;
  /* The host cannot take the connection over: refused (the core then
   * gives the session's upgrade up). */
  engine_io_core_respond_error (NULL, req, ENGINE_IO_CODE_BAD_REQUEST);
  return FALSE;
}

static const EngineIORequestVTable host_vtable = {
  .respond = host_respond,
  .suspend = host_suspend,
  .resume = host_resume,
  .upgrade = host_upgrade,
};

/* A class without upgrade(): the core refuses WebSocket requests and does
 * not offer the upgrade in handshakes. */
static const EngineIORequestVTable host_vtable_no_upgrade = {
  .respond = host_respond,
  .suspend = host_suspend,
  .resume = host_resume,
  .upgrade = NULL,
};

/* Default class functions */

/**
 * EngineIOHostRequestClass::respond:
 * @self: the request
 * @status: the HTTP status
 * @headers: (array zero-terminated=1) (element-type utf8): the response's
 *   headers: name, value, name, value, ...
 * @body: the response's body (possibly empty)
 *
 * Writes the response. Called on the serving thread, inside a call of the
 * host into the engine; at most once per request.
 */

/**
 * EngineIOHostRequestClass::suspend:
 * @self: the request
 *
 * Holds the request: no response now; the class's resume() follows (from
 * any thread). Called on the serving thread, inside a call of the host
 * into the engine.
 */

/**
 * EngineIOHostRequestClass::resume:
 * @self: the request
 *
 * The held request goes on: the host calls engine_io_host_request_resumed()
 * on its serving thread soon. Called from any thread, with no lock of the
 * engine held, once per suspend(); must not block.
 */

/**
 * EngineIOHostRequestClass::upgrade:
 * @self: the request
 * @headers: (array zero-terminated=1) (element-type utf8): the `101`
 *   response's headers: name, value, name, value, ...
 *
 * Answers `101 Switching Protocols` with @headers and, once it is written,
 * hands the connection over with engine_io_host_request_attach_connection().
 * Called on the serving thread, inside a call of the host into the engine.
 * The default returns %FALSE: a class that does not override it has no
 * WebSocket (not offered in handshakes, refused with 400).
 *
 * Returns: %TRUE if the connection will be handed over; %FALSE if it
 *   cannot be (the engine answers 400)
 */

static void
real_respond (EngineIOHostRequest *self,
              guint                status,
              const char * const  *headers,
              GBytes              *body)
{
  g_critical ("%s does not implement EngineIOHostRequest.respond()", G_OBJECT_TYPE_NAME (self));
}

static void
real_suspend (EngineIOHostRequest *self)
{
  g_critical ("%s does not implement EngineIOHostRequest.suspend()", G_OBJECT_TYPE_NAME (self));
}

static void
real_resume (EngineIOHostRequest *self)
{
  g_critical ("%s does not implement EngineIOHostRequest.resume()", G_OBJECT_TYPE_NAME (self));
}

static gboolean
real_upgrade (EngineIOHostRequest *self,
              const char * const  *headers)
{
  return FALSE;
}

/* GObject */

static void
engine_io_host_request_init (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv = PRIV (self);

  engine_io_request_init (&priv->req.base, &host_vtable);
  priv->req.owner = self;
  priv->req.base.query = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  priv->req.base.headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
}

static void
engine_io_host_request_constructed (GObject *object)
{
  EngineIOHostRequestPrivate *priv = PRIV (ENGINE_IO_HOST_REQUEST (object));

  G_OBJECT_CLASS (engine_io_host_request_parent_class)->constructed (object);
  if (priv->req.base.method == NULL)
    priv->req.base.method = g_strdup ("GET");
  if (priv->req.base.path == NULL)
    priv->req.base.path = g_strdup ("/");
  if (priv->remote_address == NULL)
    priv->remote_address = g_strdup ("");
  priv->req.base.remote_address = g_strdup (priv->remote_address);
}

static void
engine_io_host_request_finalize (GObject *object)
{
  EngineIOHostRequest *self = ENGINE_IO_HOST_REQUEST (object);
  EngineIOHostRequestPrivate *priv = PRIV (self);

  /* Dropped without finished(): the engine lets go of it now (it cannot
   * be suspended: a suspended request holds a reference). */
  if (priv->handed && !priv->finished)
    {
      g_warning ("An EngineIOHostRequest was finalized without engine_io_host_request_finished()");
      priv->finished = TRUE;
      engine_io_server_request_finished (priv->server, &priv->req.base, FALSE);
    }
  g_clear_object (&priv->poll_socket);
  if (priv->body != NULL)
    g_byte_array_unref (priv->body);
  engine_io_request_clear (&priv->req.base);
  if (priv->server_borrowed)
    priv->server = NULL;
  g_clear_object (&priv->server);
  g_free (priv->remote_address);

  G_OBJECT_CLASS (engine_io_host_request_parent_class)->finalize (object);
}

static void
engine_io_host_request_set_property (GObject      *object,
                                     guint         prop_id,
                                     const GValue *value,
                                     GParamSpec   *pspec)
{
  EngineIOHostRequestPrivate *priv = PRIV (ENGINE_IO_HOST_REQUEST (object));

  switch (prop_id)
    {
    case PROP_METHOD:
      g_free (priv->req.base.method);
      priv->req.base.method = g_value_get_string (value) != NULL
                                ? g_utf8_make_valid (g_value_get_string (value), -1) : NULL;
      break;
    case PROP_PATH:
      g_free (priv->req.base.path);
      priv->req.base.path = g_value_get_string (value) != NULL
                              ? g_utf8_make_valid (g_value_get_string (value), -1) : NULL;
      break;
    case PROP_REMOTE_ADDRESS:
      g_free (priv->remote_address);
      priv->remote_address = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_host_request_get_property (GObject    *object,
                                     guint       prop_id,
                                     GValue     *value,
                                     GParamSpec *pspec)
{
  EngineIOHostRequest *self = ENGINE_IO_HOST_REQUEST (object);

  switch (prop_id)
    {
    case PROP_METHOD:
      g_value_set_string (value, engine_io_host_request_get_method (self));
      break;
    case PROP_PATH:
      g_value_set_string (value, engine_io_host_request_get_path (self));
      break;
    case PROP_REMOTE_ADDRESS:
      g_value_set_string (value, engine_io_host_request_get_remote_address (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
engine_io_host_request_class_init (EngineIOHostRequestClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS;

  object_class->constructed = engine_io_host_request_constructed;
  object_class->finalize = engine_io_host_request_finalize;
  object_class->set_property = engine_io_host_request_set_property;
  object_class->get_property = engine_io_host_request_get_property;
  klass->respond = real_respond;
  klass->suspend = real_suspend;
  klass->resume = real_resume;
  klass->upgrade = real_upgrade;

  /**
   * EngineIOHostRequest:method:
   *
   * The request's method (`GET`, `POST`, `OPTIONS`, ...), as the client
   * sent it.
   */
  properties[PROP_METHOD] = g_param_spec_string ("method", NULL, NULL, "GET", flags);
  /**
   * EngineIOHostRequest:path:
   *
   * The request's path, percent-decoded, without the query (`/engine.io/`).
   * Requests for another path than the server's #EngineIOServer:path (or
   * #EngineIOServer:metrics-path) are answered 404.
   */
  properties[PROP_PATH] = g_param_spec_string ("path", NULL, NULL, "/", flags);
  /**
   * EngineIOHostRequest:remote-address:
   *
   * The client's numeric address (`127.0.0.1`, `::1`): what admission
   * hooks, #EngineIOServer:handshake-rate and #EngineIOSocket see (behind a
   * proxy in #EngineIOServer:trusted-proxies, the client it forwards).
   */
  properties[PROP_REMOTE_ADDRESS] = g_param_spec_string ("remote-address", NULL, NULL, "", flags);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

/* Serving thread, after an engine call: the engine neither answered nor
 * held the request (a bug): never leave the client hanging. */
static void
check_answered (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv = PRIV (self);
  g_autoptr(GBytes) body = NULL;

  if (priv->responded || priv->suspended || priv->upgrading || priv->want_body ||
      priv->req.base.switched)
    return;
  g_warning ("A request was neither answered nor suspended (answered 500)");
  body = g_bytes_new_static ("Internal error", strlen ("Internal error"));
  priv->req.base.kind = ENGINE_IO_REQUEST_DONE;
  {
    const char *headers[] = { "Content-Type", "text/plain; charset=UTF-8", NULL };

    priv->responded = TRUE;
    ENGINE_IO_HOST_REQUEST_GET_CLASS (self)->respond (self, 500, headers, body);
  }
}

/* Public API */

/**
 * engine_io_host_request_get_method:
 * @self: a host request
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): #EngineIOHostRequest:method
 */
const char *
engine_io_host_request_get_method (EngineIOHostRequest *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_HOST_REQUEST (self), NULL);
  return PRIV (self)->req.base.method;
}

/**
 * engine_io_host_request_get_path:
 * @self: a host request
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): #EngineIOHostRequest:path
 */
const char *
engine_io_host_request_get_path (EngineIOHostRequest *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_HOST_REQUEST (self), NULL);
  return PRIV (self)->req.base.path;
}

/**
 * engine_io_host_request_get_remote_address:
 * @self: a host request
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): #EngineIOHostRequest:remote-address, as the host gave it
 */
const char *
engine_io_host_request_get_remote_address (EngineIOHostRequest *self)
{
  g_return_val_if_fail (ENGINE_IO_IS_HOST_REQUEST (self), NULL);
  return PRIV (self)->remote_address;
}

/**
 * engine_io_host_request_add_query:
 * @self: a host request, not yet handed over
 * @name: a query parameter's name, decoded
 * @value: its value, decoded
 *
 * Adds a query parameter (`EIO`, `transport`, `sid`, ...), already
 * percent-decoded. A name given twice keeps the last value. Text that is
 * not UTF-8 is made valid (U+FFFD). A value that had an encoded NUL
 * (`%00`) cannot be passed here whole: give the raw query to
 * engine_io_host_request_add_query_string() instead, which refuses such
 * requests (400, code 3), as the shipped hosts do.
 *
 * Call on the serving thread, before engine_io_server_handle_host_request().
 */
void
engine_io_host_request_add_query (EngineIOHostRequest *self,
                                  const char          *name,
                                  const char          *value)
{
  EngineIOHostRequestPrivate *priv;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);
  priv = PRIV (self);
  g_return_if_fail (!priv->handed);

  g_hash_table_insert (priv->req.base.query, g_utf8_make_valid (name, -1),
                       g_utf8_make_valid (value, -1));
}

/**
 * engine_io_host_request_add_query_string:
 * @self: a host request, not yet handed over
 * @query: the request target's query, raw (after the `?`, still
 *   percent-encoded), possibly empty
 *
 * Adds the parameters of a raw query string: split at `&` and `=`, `+`
 * read as a space, percent-decoded. A parameter with an encoded NUL
 * (`sid=<sid>%00junk`) or a broken escape makes the request malformed: it
 * is answered 400 (code 3) when handed over. A name given twice keeps the
 * last value; text that is not UTF-8 is made valid.
 *
 * Call on the serving thread, before engine_io_server_handle_host_request().
 */
void
engine_io_host_request_add_query_string (EngineIOHostRequest *self,
                                         const char          *query)
{
  EngineIOHostRequestPrivate *priv;
  g_auto(GStrv) pairs = NULL;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  g_return_if_fail (query != NULL);
  priv = PRIV (self);
  g_return_if_fail (!priv->handed);

  if (query[0] == '\0')
    return;
  pairs = g_strsplit (query, "&", -1);
  for (guint i = 0; pairs[i] != NULL; i++)
    {
      char *eq;
      const char *raw_value;
      g_autoptr(GBytes) key = NULL;
      g_autoptr(GBytes) value = NULL;
      gsize key_size, value_size;
      const char *key_data, *value_data;

      if (pairs[i][0] == '\0')
        continue;
      g_strdelimit (pairs[i], "+", ' ');
      eq = strchr (pairs[i], '=');
      if (eq != NULL)
        *eq = '\0';
      raw_value = eq != NULL ? eq + 1 : "";
      key = g_uri_unescape_bytes (pairs[i], -1, NULL, NULL);
      value = g_uri_unescape_bytes (raw_value, -1, NULL, NULL);
      if (key == NULL || value == NULL)
        {
          priv->req.base.malformed = TRUE;
          continue;
        }
      key_data = g_bytes_get_data (key, &key_size);
      value_data = g_bytes_get_data (value, &value_size);
      if ((key_size > 0 && memchr (key_data, '\0', key_size) != NULL) ||
          (value_size > 0 && memchr (value_data, '\0', value_size) != NULL))
        {
          priv->req.base.malformed = TRUE;
          continue;
        }
      g_hash_table_insert (priv->req.base.query,
                           g_utf8_make_valid (key_size > 0 ? key_data : "", (gssize) key_size),
                           g_utf8_make_valid (value_size > 0 ? value_data : "", (gssize) value_size));
    }
}

/**
 * engine_io_host_request_add_header:
 * @self: a host request, not yet handed over
 * @name: a request header's name (any case)
 * @value: its value
 *
 * Adds a request header. Names are case-insensitive. A header given more
 * than once keeps its last value, except `X-Forwarded-For` and `Forwarded`,
 * whose values are joined into one list, in order (as a proxy may split
 * them; see #EngineIOServer:trusted-proxies). A value that is not UTF-8 is
 * made valid (U+FFFD).
 *
 * Call on the serving thread, before engine_io_server_handle_host_request().
 */
void
engine_io_host_request_add_header (EngineIOHostRequest *self,
                                   const char          *name,
                                   const char          *value)
{
  EngineIOHostRequestPrivate *priv;
  char *key;
  char *text;
  const char *previous;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  g_return_if_fail (name != NULL);
  g_return_if_fail (value != NULL);
  priv = PRIV (self);
  g_return_if_fail (!priv->handed);

  {
    g_autofree char *valid = g_utf8_make_valid (name, -1);

    key = g_ascii_strdown (valid, -1);
  }
  text = g_utf8_make_valid (value, -1);
  if ((strcmp (key, "x-forwarded-for") == 0 || strcmp (key, "forwarded") == 0) &&
      (previous = g_hash_table_lookup (priv->req.base.headers, key)) != NULL)
    {
      char *joined = g_strconcat (strlen (previous) + strlen (text) > MAX_JOINED_LIST ? "overflow" : previous,
                                  ", ", text, NULL);

      g_free (text);
      text = joined;
    }
  g_hash_table_insert (priv->req.base.headers, key, text);
}

/**
 * engine_io_host_request_set_content_length:
 * @self: a host request, not yet handed over
 * @length: the request body's length from its `Content-Length`, or -1 if
 *   it has none (chunked, or no body)
 *
 * A POST whose `Content-Length` is over #EngineIOServer:max-payload is
 * answered 413 when handed over, before its body is read.
 *
 * Call on the serving thread, before engine_io_server_handle_host_request().
 */
void
engine_io_host_request_set_content_length (EngineIOHostRequest *self,
                                           gint64               length)
{
  EngineIOHostRequestPrivate *priv;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  g_return_if_fail (!priv->handed);

  priv->req.base.content_length = length < 0 ? -1 : length;
}

/**
 * engine_io_server_start:
 * @server: a server
 * @error: return location for a #GError
 *
 * Starts @server without listening: for a host of its own (see
 * engine_io_server_handle_host_request()) that wants an invalid
 * configuration reported when it sets up, rather than on the first
 * request (which starts the server too, and is answered 404 if the
 * configuration is invalid). From then on the server's properties are
 * frozen, as after engine_io_server_listen(); its sessions' threads
 * (#EngineIOServer:loop-threads) are created. Does nothing if it has
 * started already. engine_io_server_attach_soup() calls it.
 *
 * Thread-safe: may be called from any thread, as often as wanted.
 *
 * Returns: %TRUE if the server is started; %FALSE with @error set if its
 *   configuration is invalid (%ENGINE_IO_ERROR_INVALID_ARGUMENT) or it
 *   was closed (%ENGINE_IO_ERROR_CLOSED)
 */
gboolean
engine_io_server_start (EngineIOServer  *server,
                        GError         **error)
{
  g_return_val_if_fail (ENGINE_IO_IS_SERVER (server), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return engine_io_server_ensure_started (server, error);
}

/**
 * engine_io_server_handle_host_request:
 * @server: the server to hand the request to
 * @request: a request of the host's, with its query and headers added
 *
 * Hands a request of the host's web server to the engine: any request
 * whose path is the server's #EngineIOServer:path (with or without its
 * trailing `/`) or its #EngineIOServer:metrics-path; others are answered
 * 404. Call it once the request's head is read, for POSTs too (a POST
 * begins at its head, so that an oversized `Content-Length` is refused
 * before its body is read).
 *
 * Within this call, the engine answers (the class's respond()), holds
 * (suspend()) or upgrades (upgrade()) the request, or asks for its body:
 * then this returns %TRUE, and the host passes the body on with
 * engine_io_host_request_add_body() and engine_io_host_request_end_body().
 * See the Hosting page of the documentation for the whole contract.
 *
 * The server starts on its first request (its properties are frozen
 * then), unless it already has. It keeps its own reference on @request
 * while it is suspended; the host keeps one until it has called
 * engine_io_host_request_finished().
 *
 * Call on the request's serving thread: the thread (or main context) of
 * the host that reads and writes its connection. The engine never runs
 * application code there, and never waits on another thread. Once per
 * request, and not after engine_io_host_request_finished().
 *
 * Returns: %TRUE if the engine reads the request's body
 */
gboolean
engine_io_server_handle_host_request (EngineIOServer      *server,
                                      EngineIOHostRequest *request)
{
  EngineIOHostRequestPrivate *priv;
  EngineIORequest *req;
  gboolean want_body;

  g_return_val_if_fail (ENGINE_IO_IS_SERVER (server), FALSE);
  g_return_val_if_fail (ENGINE_IO_IS_HOST_REQUEST (request), FALSE);
  priv = PRIV (request);
  g_return_val_if_fail (!priv->handed, FALSE);
  /* A request the host gave up on: as the engine's, it would be held or
   * answered with nobody to finish it. */
  g_return_val_if_fail (!priv->finished, FALSE);
  req = &priv->req.base;

  priv->handed = TRUE;
  priv->server = priv->server_borrowed ? server : g_object_ref (server);
  req->vtable = ENGINE_IO_HOST_REQUEST_GET_CLASS (request)->upgrade != real_upgrade
                  ? &host_vtable : &host_vtable_no_upgrade;

  /* A poll whose client closed the connection before it was handed over:
   * no answer; its session ends (`transport close`). */
  if (priv->gone)
    {
      if (strcmp (req->method, "GET") == 0)
        engine_io_server_request_gone_unanswered (server, req);
      return FALSE;
    }

  if (!engine_io_server_path_matches (server, req->path))
    {
      const char *headers[] = { "Content-Type", "text/plain; charset=UTF-8", NULL };
      g_autoptr(GBytes) body = g_bytes_new_static ("Not found", strlen ("Not found"));

      req->kind = ENGINE_IO_REQUEST_DONE;
      priv->responded = TRUE;
      ENGINE_IO_HOST_REQUEST_GET_CLASS (request)->respond (request, 404, headers, body);
      return FALSE;
    }

  want_body = engine_io_server_request_begin (server, req);
  if (want_body)
    {
      priv->want_body = TRUE;
      priv->body = g_byte_array_new ();
    }
  check_answered (request);
  return want_body;
}

/**
 * engine_io_host_request_add_body:
 * @self: a host request whose body the engine reads
 * @data: (array length=length) (element-type guint8): the next bytes of the body
 *   (de-chunked, as sent)
 * @length: how many
 *
 * Passes the next part of a request body on, after
 * engine_io_server_handle_host_request() returned %TRUE.
 *
 * The engine keeps at most #EngineIOServer:max-payload bytes of a body,
 * counted as they come. Past that, it answers the request (413, through
 * the class's respond()) within this call and returns %FALSE, and the
 * `connection-error` signal is emitted. The same happens (400, code 1, no
 * signal) if the request's session ended meanwhile. The rest of the body
 * is still on the connection: the host either stops reading it and closes
 * the connection once the response is written (the libsoup host), or reads
 * it to its end (up to a bound of its own) and drops it, writes the
 * response then and keeps the connection (the libmicrohttpd host, which
 * can queue a response only once the body is read).
 *
 * Call on the serving thread.
 *
 * Returns: %TRUE to go on reading; %FALSE if the request was answered
 */
gboolean
engine_io_host_request_add_body (EngineIOHostRequest *self,
                                 const guint8        *data,
                                 gsize                length)
{
  EngineIOHostRequestPrivate *priv;
  EngineIORequest *req;
  guint64 max_payload;

  g_return_val_if_fail (ENGINE_IO_IS_HOST_REQUEST (self), FALSE);
  g_return_val_if_fail (data != NULL || length == 0, FALSE);
  priv = PRIV (self);
  req = &priv->req.base;
  if (!priv->want_body)
    return FALSE;

  /* The session of a POST whose body is still coming has ended. */
  if (engine_io_server_request_detach_ended (priv->server, req))
    {
      priv->want_body = FALSE;
      g_clear_pointer (&priv->body, g_byte_array_unref);
      engine_io_server_request_orphaned (priv->server, req);
      check_answered (self);
      return FALSE;
    }

  max_payload = MIN (engine_io_server_get_max_payload (priv->server), (guint64) G_MAXUINT);
  if ((guint64) priv->body->len + length > max_payload)
    {
      priv->want_body = FALSE;
      g_clear_pointer (&priv->body, g_byte_array_unref);
      engine_io_server_request_too_large (priv->server, req);
      engine_io_server_report_connection_error (priv->server, req);
      check_answered (self);
      return FALSE;
    }
  if (length > 0)
    g_byte_array_append (priv->body, data, (guint) length);
  return TRUE;
}

/**
 * engine_io_host_request_end_body:
 * @self: a host request whose body the engine reads
 *
 * The request body is complete: the engine takes it and answers (or
 * holds) the request within this call. Does nothing if the request was
 * answered already (engine_io_host_request_add_body() returned %FALSE).
 *
 * Call on the serving thread.
 */
void
engine_io_host_request_end_body (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv;
  g_autoptr(GBytes) body = NULL;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  if (!priv->want_body)
    return;
  priv->want_body = FALSE;
  body = g_byte_array_free_to_bytes (g_steal_pointer (&priv->body));
  engine_io_server_request_body (priv->server, &priv->req.base, body);
  check_answered (self);
}

/**
 * engine_io_host_request_resumed:
 * @self: a suspended host request whose class's resume() was called
 *
 * Goes on with a request the engine held, after the class's resume() was
 * called: within this call the engine answers it, holds it again
 * (suspend()), or upgrades it. After engine_io_host_request_client_gone()
 * a waiting poll gets no answer: the host closes the connection. Refused
 * (a critical) before the class's resume() was called: the engine still
 * holds the request.
 *
 * Call on the serving thread (not from resume(), which may run on any
 * thread).
 */
void
engine_io_host_request_resumed (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv;
  EngineIORequest *req;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  req = &priv->req.base;
  g_return_if_fail (priv->suspended);
  if (!g_atomic_int_compare_and_exchange (&priv->resume_due, TRUE, FALSE))
    {
      /* The engine still holds the request (a session's waiting poll, an
       * admission): going on now would answer it behind their back, and
       * their resume() would come after finished(). */
      g_critical ("engine_io_host_request_resumed() before the class's resume() was called: "
                  "wait for resume()");
      return;
    }

  priv->suspended = FALSE;
  g_clear_object (&priv->poll_socket);
  /* A poll whose client closed the connection while it waited: no
   * response. The session ends (`transport close`), and whatever would
   * have been written stays unsent, reported so. */
  if (req->kind == ENGINE_IO_REQUEST_POLL && req->prepared_body == NULL &&
      (req->client_gone || priv->gone))
    {
      engine_io_server_request_client_gone (priv->server, req);
      return;
    }
  engine_io_server_request_resumed (priv->server, req);
  if (!priv->gone)
    check_answered (self);
}

/**
 * engine_io_host_request_client_gone:
 * @self: a host request, not yet finished
 *
 * The client closed the request's connection (the host saw EOF or an
 * error while the request waited). A waiting poll ends its session
 * (`transport close`) at once, as a client that leaves does, instead of
 * the session writing its next message into a dead connection.
 *
 * If the request is a waiting poll, the engine resumes it (the class's
 * resume() may be called within this call); the host then calls
 * engine_io_host_request_resumed() as for any resumption, and the engine
 * gives it no answer. Other held requests are resumed as they would have
 * been (a handshake once admitted or refused, a POST held by back-pressure
 * once its session's queues drain or the session ends): the host keeps
 * waiting for resume() and drops the answer. Afterwards, and when the request was not suspended, the
 * host closes the connection and calls engine_io_host_request_finished()
 * with %FALSE. Called before engine_io_server_handle_host_request(), the
 * request is answered nothing when handed over (a poll ends its session).
 *
 * Call on the serving thread.
 */
void
engine_io_host_request_client_gone (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv;
  g_autoptr(EngineIOSocket) socket = NULL;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  g_return_if_fail (!priv->finished);

  priv->gone = TRUE;
  if (!priv->suspended || priv->poll_socket == NULL)
    return;
  /* A waiting poll: resumed now if still suspended (the resume forwarder
   * may run here, or already ran on another thread). */
  socket = g_object_ref (priv->poll_socket);
  if (engine_io_socket_resume_gone_poll (socket, &priv->req.base, priv->req.base.serial))
    g_debug ("host: the client of a waiting poll closed its connection");
}

static void
release_socket (gpointer data)
{
  GSocket *socket = data;

  g_socket_close (socket, NULL);
  g_object_unref (socket);
}

/**
 * engine_io_host_request_attach_connection:
 * @self: a host request whose class's upgrade() returned %TRUE
 * @socket: (transfer full): the connection, switched to WebSocket (the
 *   `101` written)
 * @extra: (nullable): bytes the host read from the connection past the
 *   request's head (the first WebSocket frames), if any
 *
 * Hands the connection over to the engine once the upgrade's `101` is
 * written: the engine reads and writes it (non-blocking, in the session's
 * main context) and closes it when the WebSocket ends. The host must not
 * read, write or close it (nor its descriptor) any more; call
 * engine_io_host_request_finished() with %TRUE after this.
 *
 * Call on the serving thread.
 */
void
engine_io_host_request_attach_connection (EngineIOHostRequest *self,
                                          GSocket             *socket,
                                          GBytes              *extra)
{
  gsize extra_size = 0;
  gconstpointer extra_data = NULL;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  g_return_if_fail (G_IS_SOCKET (socket));
  if (extra != NULL)
    extra_data = g_bytes_get_data (extra, &extra_size);
  engine_io_host_request_attach_descriptor (self, g_socket_get_fd (socket), extra_data, extra_size,
                                            release_socket, socket);
}

/* Private (engineio-host-private.h) */

/* Serving thread: engine_io_host_request_attach_connection() for a
 * descriptor the host keeps owning (the libmicrohttpd host's upgraded
 * sockets that stay with libmicrohttpd, which closes them itself): the
 * engine reads and writes @fd and calls @release with @release_data when
 * the WebSocket ends (in the session's context; then, not before, the
 * host may close @fd). @extra is copied. If the request has no upgrade
 * under way, @release is called at once. */
void
engine_io_host_request_attach_descriptor (EngineIOHostRequest *self,
                                          int                  fd,
                                          gconstpointer        extra,
                                          gsize                extra_size,
                                          GDestroyNotify       release,
                                          gpointer             release_data)
{
  EngineIOHostRequestPrivate *priv;
  EngineIORequest *req;
  EngineIOWebSocket *ws;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  req = &priv->req.base;
  if (!priv->upgrading || priv->finished || req->kind != ENGINE_IO_REQUEST_UPGRADE ||
      req->socket == NULL)
    {
      g_critical ("engine_io_host_request_attach_connection() without an upgrade under way");
      release (release_data);
      return;
    }
  priv->upgrading = FALSE;

  ws = engine_io_websocket_new (fd, extra, extra_size,
                                engine_io_server_get_max_payload (priv->server),
                                release, release_data);
  if (req->ws_deflate)
    engine_io_websocket_set_deflate (ws, req->ws_deflate_threshold);
  req->kind = ENGINE_IO_REQUEST_DONE;  /* switched: nothing left to fail */
  req->switched = TRUE;
  engine_io_socket_attach_websocket (req->socket, ws, req->reject_ws);
}

/* Serving thread, within the class's suspend(): whether @self is a
 * waiting poll; if so, @poll is set (a reference on its session) for
 * engine_io_host_poll_client_gone(). */
gboolean
engine_io_host_request_get_waiting_poll (EngineIOHostRequest *self,
                                         EngineIOHostPoll    *poll)
{
  EngineIOHostRequestPrivate *priv = PRIV (self);

  if (!priv->suspended || priv->poll_socket == NULL)
    return FALSE;
  poll->socket = g_object_ref (priv->poll_socket);
  poll->req = &priv->req.base;
  poll->serial = priv->req.base.serial;
  return TRUE;
}

/* Any thread, with no lock of the engine held (nor one the session's lock
 * must come before): the client of the waiting poll @poll closed its
 * connection. Resumes the poll if it still waits (the class's resume()
 * may be called within this call), as engine_io_host_request_client_gone()
 * does: the host's engine_io_host_request_resumed() then gives it no
 * answer. Returns whether it was resumed. */
gboolean
engine_io_host_poll_client_gone (EngineIOHostPoll *poll)
{
  if (poll->socket == NULL)
    return FALSE;
  return engine_io_socket_resume_gone_poll (poll->socket, poll->req, poll->serial);
}

void
engine_io_host_poll_clear (EngineIOHostPoll *poll)
{
  g_clear_object (&poll->socket);
  poll->req = NULL;
  poll->serial = 0;
}

/**
 * engine_io_host_request_finished:
 * @self: a host request
 * @completed: %TRUE if its response was written whole (or its connection
 *   handed over with engine_io_host_request_attach_connection()); %FALSE if
 *   the connection failed or was closed first
 *
 * The request is over. A poll response that was not written is reported
 * so to the session (its messages were not delivered: the session closes,
 * `transport error`); an upgrade that never switched is given up (the
 * session stays on polling).
 *
 * Not while the request is suspended: call
 * engine_io_host_request_client_gone() and wait for the class's resume()
 * instead. After this the engine never calls the class's functions for
 * @self again, and the host may drop its reference.
 *
 * Call on the serving thread, once, for every request created (handed
 * over or not).
 */
void
engine_io_host_request_finished (EngineIOHostRequest *self,
                                 gboolean             completed)
{
  EngineIOHostRequestPrivate *priv;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  g_return_if_fail (!priv->finished);
  if (priv->suspended)
    {
      /* The engine still holds the request (and a reference on it): a
       * session or an admission will resume it. */
      g_critical ("engine_io_host_request_finished() on a suspended request: "
                  "call engine_io_host_request_client_gone() and wait for resume()");
      return;
    }

  priv->finished = TRUE;
  priv->upgrading = FALSE;
  priv->want_body = FALSE;
  g_clear_pointer (&priv->body, g_byte_array_unref);
  if (priv->handed)
    engine_io_server_request_finished (priv->server, &priv->req.base, completed);
}

/* Serving thread: engine_io_host_request_finished() for a request that
 * was resumed (the class's resume() was called) but that the host will
 * not go on with: its connection ended before the serving thread saw the
 * request again (libmicrohttpd completes a resumed connection whose client
 * left without calling its handler again). Nothing is answered; the
 * request is over as if its response had failed (@completed FALSE) or
 * had gone out. Refused (a critical) while the engine still holds the
 * request (resume() not called yet). */
void
engine_io_host_request_finished_resumed (EngineIOHostRequest *self,
                                         gboolean             completed)
{
  EngineIOHostRequestPrivate *priv;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  g_return_if_fail (!priv->finished);
  if (priv->suspended)
    {
      if (!g_atomic_int_compare_and_exchange (&priv->resume_due, TRUE, FALSE))
        {
          g_critical ("engine_io_host_request_finished() on a suspended request: "
                      "call engine_io_host_request_client_gone() and wait for resume()");
          return;
        }
      priv->suspended = FALSE;
      g_clear_object (&priv->poll_socket);
    }
  engine_io_host_request_finished (self, completed);
}

/* Serving thread, before engine_io_server_handle_host_request(): the
 * request does not hold the server it is handed to; the host keeps it
 * alive until the request is finished. For the libmicrohttpd host, whose
 * requests end when its daemon stops (in the server's shutdown, or before
 * engine_io_server_close() returns for the mount): a request must not keep
 * a server its application dropped running (a POST trickling a body to a
 * session that ended would, for as long as it trickles). */
void
engine_io_host_request_borrow_server (EngineIOHostRequest *self)
{
  EngineIOHostRequestPrivate *priv;

  g_return_if_fail (ENGINE_IO_IS_HOST_REQUEST (self));
  priv = PRIV (self);
  g_return_if_fail (!priv->handed);
  priv->server_borrowed = TRUE;
}
