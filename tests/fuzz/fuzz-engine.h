/* fuzz-engine.h: the protocol core without sockets, for fuzz-request and
 * fuzz-websocket
 *
 * A FuzzEngine is one EngineIOServer whose sessions all run on a private
 * GMainContext (callback-context) that the harness iterates itself, on the
 * fuzzing thread: no thread of the library runs, so an input replays the
 * same way every time. HTTP requests go in through the request interface
 * (engineio-request-private.h), as engineio-http.c drives it for
 * libmicrohttpd:
 *
 *   begin -> [body | too_large] -> respond or suspend ... resume ->
 *   resumed -> respond -> finished
 *
 * and the adapter side (respond / suspend / resume / upgrade) checks the
 * rules of that interface and of the protocol on every response:
 *
 * - respond, suspend and upgrade only for the request inside a core entry
 *   point, at most one answer per request, resume only while suspended,
 *   once;
 * - the status is one the server may give, Content-Type is present (but on
 *   204), header values hold no control characters, JSON error bodies
 *   parse to {"code":N,"message":"..."}, poll bodies decode as payloads of
 *   the session's protocol version (JSONP unwrapped: no unescaped quote),
 *   an open packet's JSON names the session;
 * - the 101 carries the right Sec-WebSocket-Accept.
 *
 * An upgrade that is accepted is switched to one end of a socketpair, the
 * way libmicrohttpd hands over the upgraded socket: the server end goes to
 * engine_io_websocket_new() and engine_io_socket_attach_websocket(), the
 * other end is a FuzzWsClient that writes client frames and reads and
 * checks everything the server sends (frame syntax, no masking, no
 * fragmentation, close codes, every message an Engine.IO packet, the first
 * message an open packet or `3probe`).
 *
 * Time does not pass during an input (the heartbeat is 25 s); the harness
 * makes a session's next timer due at once instead (engine_tick()), which
 * reaches ping, pong deadline, v3 expiry, upgrade timeout and close linger.
 *
 * engine_free() closes every session the way a shutdown does, answers
 * lingering sessions, ends the WebSockets, and then checks that nothing is
 * left: no session in the server, no request the core still holds, no
 * socket object alive, no descriptor open, the server finalized.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include "fuzz-common.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "engineio-server-private.h"
#include "engineio-socket-private.h"
#include "engineio-websocket-private.h"

#define FUZZ_FAIL(...) \
  G_STMT_START { \
    g_printerr ("%s:%d: check failed: ", __FILE__, __LINE__); \
    g_printerr (__VA_ARGS__); \
    g_printerr ("\n"); \
    abort (); \
  } G_STMT_END

/* Server configuration and application behaviour. */
enum
{
  CFG_EIO3             = 1 << 0,   /* allow-eio3 */
  CFG_CORS_LIST        = 1 << 1,   /* cors-origin: two origins */
  CFG_CORS_ANY         = 1 << 2,   /* cors-origin: * */
  CFG_CORS_CREDENTIALS = 1 << 3,
  CFG_COOKIE           = 1 << 4,   /* cookie io */
  CFG_SMALL_PAYLOAD    = 1 << 5,   /* max-payload 64 */
  CFG_MAX_SESSIONS     = 1 << 6,   /* max-sessions 2 */
  CFG_NO_UPGRADES      = 1 << 7,
  CFG_POLLING_ONLY     = 1 << 8,
  CFG_WEBSOCKET_ONLY   = 1 << 9,
  CFG_METRICS          = 1 << 10,  /* metrics-path /metrics */
  CFG_ADMISSION        = 1 << 11,  /* refuses handshakes with an x-deny header */
  CFG_APP_ECHO         = 1 << 12,  /* the application echoes every message */
  CFG_APP_GREET        = 1 << 13,  /* and sends two messages on connection */
  CFG_APP_BYE          = 1 << 14,  /* and closes the socket on "bye" */
  CFG_SMALL_HIGH_WATER = 1 << 15,  /* send-queue-high-water 1024 (real bytes: the open packet and two greetings fit) */
  CFG_DROP_NEWEST      = 1 << 16,  /* backpressure drop-newest */
  CFG_KEEP_QUEUING     = 1 << 17,  /* backpressure keep-queuing */
  CFG_DRAIN_HANDLER    = 1 << 18,  /* a ::drain handler is connected */
  CFG_NO_MESSAGE       = 1 << 19,  /* no ::message handler: the receive queue */
  CFG_RANDOM_SIDS      = 1 << 20,  /* the default id generator */
  CFG_ORIGINS          = 1 << 21,  /* allowed-origins, where the server has it */
  CFG_MESSAGE_RATE     = 1 << 22,  /* message-rate 1, burst 3, where available */
  CFG_HANDSHAKE_RATE   = 1 << 23,  /* handshake-rate 1, burst 2, where available */
  CFG_RATE_DROP        = 1 << 24,  /* message-rate-policy drop */
};

#define FUZZ_ORIGIN_A "https://a.example"
#define FUZZ_ORIGIN_B "https://b.example"

typedef struct _FuzzEngine   FuzzEngine;
typedef struct _FuzzRequest  FuzzRequest;
typedef struct _FuzzWsClient FuzzWsClient;

/* Request flags (the adapter's and the client's behaviour). */
enum
{
  REQ_NO_DRAIN      = 1 << 0,  /* the next request comes before the context runs */
  REQ_CLIENT_GONE   = 1 << 1,  /* the response is never delivered (completed = FALSE) */
  REQ_NO_UPGRADE    = 1 << 2,  /* an adapter that cannot upgrade (vtable upgrade NULL) */
  REQ_UPGRADE_FAILS = 1 << 3,  /* queueing the 101 fails (upgrade() returns FALSE) */
  REQ_SWITCH_FAILS  = 1 << 4,  /* the 101 was queued, the connection never switched */
  REQ_BODY_CUT      = 1 << 5,  /* the client goes away while sending the body */
};

struct _FuzzRequest
{
  EngineIORequest  base;           /* first: the core's view */
  FuzzEngine      *engine;
  guint            flags;
  GBytes          *body;           /* POST body as the client sends it */
  GBytes          *extra_in;       /* bytes after a 101 (first WebSocket frames) */
  gboolean         suspended;      /* suspend() seen, not yet resumed */
  gboolean         resume_pending; /* resume() seen, resumed() not yet called */
  gboolean         responded;
  gboolean         upgraded;       /* upgrade() returned TRUE */
  gboolean         upgrade_failed; /* upgrade() returned FALSE */
  guint            status;
};

struct _FuzzWsClient
{
  FuzzEngine              *engine;
  gconstpointer            ws;            /* the server's EngineIOWebSocket: only compared */
  int                      fd;            /* -1 once closed */
  EngineIOProtocolVersion  version;
  gboolean                 probe;         /* an upgrade of a polling session */
  GByteArray              *in;            /* server bytes not yet parsed */
  GByteArray              *message;       /* a fragmented message being assembled */
  gboolean                 in_message;
  guint8                   message_opcode;
  gboolean                 got_close;     /* the server's close frame */
  gboolean                 sent_close;
  gboolean                 write_shut;
  guint                    n_messages;
  gboolean                 saw_open;
  guint16                  codes_sent[8]; /* close codes we sent: the server may echo them */
  guint                    n_codes_sent;
  gboolean                 wrote_raw;     /* unparsed bytes: its close codes are unknown */
};

struct _FuzzEngine
{
  guint32          cfg;
  gboolean         ws_raw;        /* raw bytes went with an upgrade request */
  GMainContext    *ctx;
  EngineIOServer  *server;
  GPtrArray       *requests;      /* FuzzRequest*, begun and not finished */
  GPtrArray       *clients;       /* FuzzWsClient* */
  GPtrArray       *sids;          /* every session id handed out, in order */
  FuzzRequest     *current;       /* inside a core entry point */
  guint            next_sid;
  int              live_sockets;  /* EngineIOSocket objects not finalized */
  int              server_fds;    /* server ends of socketpairs not released */
  guint64          max_payload;
};

static void engine_drain (FuzzEngine *e);

/* FUZZ_TRACE=1 in the environment prints what happens (to write seeds and
 * to read a crash). */
static int trace_enabled = -1;

static gboolean
tracing (void)
{
  if (trace_enabled < 0)
    trace_enabled = g_getenv ("FUZZ_TRACE") != NULL;
  return trace_enabled;
}

static void
trace_bytes (const char   *what,
             const guint8 *data,
             gsize         size)
{
  GString *s;

  if (!tracing ())
    return;
  s = g_string_new (NULL);
  for (gsize i = 0; i < MIN (size, 300); i++)
    {
      if (data[i] >= 0x20 && data[i] < 0x7f && data[i] != '\\')
        g_string_append_c (s, (char) data[i]);
      else
        g_string_append_printf (s, "\\x%02x", data[i]);
    }
  g_printerr ("%s [%" G_GSIZE_FORMAT "] %s%s\n", what, size, s->str, size > 300 ? "..." : "");
  g_string_free (s, TRUE);
}

#define TRACE(...) G_STMT_START { if (tracing ()) g_printerr (__VA_ARGS__); } G_STMT_END

/* Small helpers */

static gboolean
text_is_clean (const char *s,
               gboolean    name)
{
  for (const guchar *p = (const guchar *) s; *p; p++)
    {
      if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
        return FALSE;
      if (name && (*p == ':' || *p == ' ' || *p == '\t'))
        return FALSE;
    }
  return !name || s[0] != '\0';
}

/* RFC 6455 4.2.2, computed here independently of the library. */
static char *
expected_accept (const char *key)
{
  g_autoptr(GChecksum) sha1 = g_checksum_new (G_CHECKSUM_SHA1);
  guint8 digest[20];
  gsize len = sizeof digest;

  g_checksum_update (sha1, (const guchar *) key, strlen (key));
  g_checksum_update (sha1, (const guchar *) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
  g_checksum_get_digest (sha1, digest, &len);
  return g_base64_encode (digest, len);
}

static JsonObject *
parse_json_object (const char *data,
                   gssize      len,
                   JsonParser *parser)
{
  g_autoptr(GError) error = NULL;
  JsonNode *root;

  if (!json_parser_load_from_data (parser, data, len, &error))
    FUZZ_FAIL ("body is not JSON (%s): %.*s", error->message, (int) MIN (len, 200), data);
  root = json_parser_get_root (parser);
  FUZZ_CHECK (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  return json_node_get_object (root);
}

static void
check_error_json (GBytes *body,
                  guint   status)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize size;
  const char *data = g_bytes_get_data (body, &size);
  JsonObject *object = parse_json_object (data, (gssize) size, parser);
  JsonNode *code = json_object_get_member (object, "code");
  JsonNode *message = json_object_get_member (object, "message");
  gint64 n;

  FUZZ_CHECK (status >= 400);
  FUZZ_CHECK (code != NULL && JSON_NODE_HOLDS_VALUE (code) &&
              json_node_get_value_type (code) == G_TYPE_INT64);
  FUZZ_CHECK (message != NULL && JSON_NODE_HOLDS_VALUE (message) &&
              json_node_get_value_type (message) == G_TYPE_STRING);
  FUZZ_CHECK (json_node_get_string (message)[0] != '\0');
  n = json_node_get_int (code);
  FUZZ_CHECK (n >= 0 && n <= 5);
  if (status == 403)
    FUZZ_CHECK (n == 4);
}

/* The open packet's JSON (handshake). */
static void
check_open_packet (EngineIOPacket *packet,
                   const char     *sid)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  gsize len = 0;
  const char *text = engine_io_packet_get_text (packet, &len);
  JsonObject *object;

  FUZZ_CHECK (text != NULL);
  object = parse_json_object (text, (gssize) len, parser);
  FUZZ_CHECK (json_object_has_member (object, "sid"));
  FUZZ_CHECK (g_strcmp0 (json_object_get_string_member (object, "sid"), sid) == 0);
  FUZZ_CHECK (json_object_get_int_member (object, "pingInterval") > 0);
  FUZZ_CHECK (json_object_get_int_member (object, "pingTimeout") > 0);
  FUZZ_CHECK (JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "upgrades")));
}

/* ___eio[N]("..."); -> the payload. Any unescaped quote or raw control
 * character would break out of the string: fail. */
static GBytes *
jsonp_unwrap (GBytes *body)
{
  gsize size;
  const char *data = g_bytes_get_data (body, &size);
  const char *p = data, *end = data + size;
  GString *out = g_string_new (NULL);

  FUZZ_CHECK (size >= 12 && strncmp (p, "___eio[", 7) == 0);
  p += 7;
  while (p < end && g_ascii_isdigit (*p))
    p++;
  FUZZ_CHECK (end - p >= 5 && strncmp (p, "](\"", 3) == 0);
  p += 3;
  FUZZ_CHECK (strncmp (end - 3, "\");", 3) == 0);
  end -= 3;
  while (p < end)
    {
      guchar c = (guchar) *p;

      FUZZ_CHECK (c >= 0x20 && c != '"');
      if (c != '\\')
        {
          g_string_append_c (out, (char) c);
          p++;
          continue;
        }
      FUZZ_CHECK (p + 1 < end);
      if (p[1] == '"' || p[1] == '\\')
        {
          g_string_append_c (out, p[1]);
          p += 2;
        }
      else if (p[1] == 'u')
        {
          char hex[5] = { 0 };
          guint64 cp;

          FUZZ_CHECK (end - p >= 6);
          memcpy (hex, p + 2, 4);
          FUZZ_CHECK (g_ascii_string_to_unsigned (hex, 16, 0, 0xffff, &cp, NULL));
          FUZZ_CHECK (cp < 0x20 || cp == 0x2028 || cp == 0x2029);
          g_string_append_unichar (out, (gunichar) cp);
          p += 6;
        }
      else
        FUZZ_FAIL ("unknown JSONP escape \\%c", p[1]);
    }
  return g_string_free_to_bytes (out);
}

/* A 200 poll response: a payload of the session's version. */
static void
check_poll_body (FuzzRequest *fr,
                 const char  *type,
                 GBytes      *body)
{
  EngineIOSocket *socket = fr->base.socket;
  EngineIOProtocolVersion version = engine_io_socket_get_protocol_version (socket);
  EngineIOPayloadFormat format;
  g_autoptr(GBytes) payload = NULL;
  g_autoptr(GPtrArray) packets = NULL;
  g_autoptr(GError) error = NULL;

  if (version == ENGINE_IO_PROTOCOL_V4)
    {
      FUZZ_CHECK (g_str_has_prefix (type, "text/plain"));
      format = ENGINE_IO_PAYLOAD_V4;
      payload = g_bytes_ref (body);
    }
  else if (g_hash_table_contains (fr->base.query, "j"))
    {
      FUZZ_CHECK (g_str_has_prefix (type, "text/javascript"));
      format = ENGINE_IO_PAYLOAD_V3_TEXT;
      payload = jsonp_unwrap (body);
    }
  else if (g_str_has_prefix (type, "application/octet-stream"))
    {
      format = ENGINE_IO_PAYLOAD_V3_BINARY;
      payload = g_bytes_ref (body);
    }
  else
    {
      FUZZ_CHECK (g_str_has_prefix (type, "text/plain"));
      format = ENGINE_IO_PAYLOAD_V3_TEXT;
      payload = g_bytes_ref (body);
    }

  packets = engine_io_payload_decode (format, payload, &error);
  if (packets == NULL)
    FUZZ_FAIL ("poll response does not decode: %s", error->message);
  FUZZ_CHECK (packets->len >= 1);
  for (guint i = 0; i < packets->len; i++)
    {
      EngineIOPacket *packet = g_ptr_array_index (packets, i);
      EngineIOPacketType t = engine_io_packet_get_packet_type (packet);

      FUZZ_CHECK (t != ENGINE_IO_PACKET_UPGRADE);
      if (t == ENGINE_IO_PACKET_OPEN)
        {
          FUZZ_CHECK (i == 0);
          check_open_packet (packet, engine_io_socket_get_id (socket));
        }
    }
}

/* Request interface, adapter side */

static void
fuzz_respond (EngineIORequest *req,
              guint            status,
              GPtrArray       *headers,
              GBytes          *body)
{
  FuzzRequest *fr = (FuzzRequest *) req;
  FuzzEngine *e = fr->engine;
  const char *type = NULL;
  const char *allow_origin = NULL;
  const char *cookie = NULL;
  gsize size = g_bytes_get_size (body);

  FUZZ_CHECK (e->current == fr);
  FUZZ_CHECK (!fr->responded && !fr->suspended && !fr->resume_pending);
  fr->responded = TRUE;
  fr->status = status;
  if (tracing ())
    {
      g_autofree char *label = g_strdup_printf ("  <- %u", status);
      trace_bytes (label, g_bytes_get_data (body, NULL), size);
    }

  FUZZ_CHECK (headers != NULL && headers->len % 2 == 0);
  for (guint i = 0; i < headers->len; i += 2)
    {
      const char *name = g_ptr_array_index (headers, i);
      const char *value = g_ptr_array_index (headers, i + 1);

      if (!text_is_clean (name, TRUE) || !text_is_clean (value, FALSE))
        FUZZ_FAIL ("bad response header %s", name);
      if (g_ascii_strcasecmp (name, "Content-Type") == 0)
        {
          FUZZ_CHECK (type == NULL);
          type = value;
        }
      else if (g_ascii_strcasecmp (name, "Access-Control-Allow-Origin") == 0)
        allow_origin = value;
      else if (g_ascii_strcasecmp (name, "Set-Cookie") == 0)
        cookie = value;
    }

  switch (status)
    {
    case 200: case 204: case 400: case 403: case 405: case 413: case 429: case 503:
      break;
    default:
      FUZZ_FAIL ("unexpected status %u for %s %s", status, req->method, req->path);
    }

  if (status == 204)
    {
      FUZZ_CHECK (size == 0);
      FUZZ_CHECK (strcmp (req->method, "OPTIONS") == 0);
    }
  else
    FUZZ_CHECK (type != NULL);

  if (type != NULL && g_str_has_prefix (type, "application/json"))
    check_error_json (body, status);
  else if (status == 200 && type != NULL && g_str_has_prefix (type, "text/html"))
    {
      FUZZ_CHECK (strcmp (req->method, "POST") == 0);
      FUZZ_CHECK (size == 2 && memcmp (g_bytes_get_data (body, NULL), "ok", 2) == 0);
    }
  else if (status == 200 && type != NULL && strstr (type, "version=0.0.4") != NULL)
    FUZZ_CHECK (e->cfg & CFG_METRICS);  /* Prometheus text */
  else if (status == 200)
    {
      FUZZ_CHECK (req->socket != NULL);
      FUZZ_CHECK (strcmp (req->method, "GET") == 0);
      check_poll_body (fr, type, body);
    }
  else if (status >= 400)
    FUZZ_CHECK (type != NULL && (g_str_has_prefix (type, "application/json") ||
                                 g_str_has_prefix (type, "text/plain")));

  if (allow_origin != NULL)
    {
      const char *origin = g_hash_table_lookup (req->headers, "origin");
      FUZZ_CHECK (e->cfg & (CFG_CORS_ANY | CFG_CORS_LIST));
      FUZZ_CHECK (strcmp (allow_origin, "*") == 0 ||
                  (origin != NULL && strcmp (allow_origin, origin) == 0));
    }
  if (cookie != NULL)
    {
      FUZZ_CHECK (e->cfg & CFG_COOKIE);
      FUZZ_CHECK (g_str_has_prefix (cookie, "io="));
    }
}

static void
fuzz_suspend (EngineIORequest *req)
{
  FuzzRequest *fr = (FuzzRequest *) req;

  FUZZ_CHECK (fr->engine->current == fr);
  FUZZ_CHECK (!fr->responded && !fr->suspended);
  fr->suspended = TRUE;
  TRACE ("  <- (suspended)\n");
}

static void
fuzz_resume (EngineIORequest *req)
{
  FuzzRequest *fr = (FuzzRequest *) req;

  /* Any time, but only once per suspend. */
  FUZZ_CHECK (fr->suspended && !fr->resume_pending);
  fr->resume_pending = TRUE;
}

static gboolean
fuzz_upgrade (EngineIORequest *req,
              GPtrArray       *headers,
              EngineIOSocket  *socket)
{
  FuzzRequest *fr = (FuzzRequest *) req;
  const char *key = g_hash_table_lookup (req->headers, "sec-websocket-key");
  g_autofree char *accept = NULL;
  gboolean saw_accept = FALSE, saw_upgrade = FALSE;

  FUZZ_CHECK (fr->engine->current == fr);
  FUZZ_CHECK (!fr->responded && !fr->suspended);
  FUZZ_CHECK (socket != NULL && req->socket == socket);
  FUZZ_CHECK (key != NULL);
  accept = expected_accept (key);
  for (guint i = 0; i + 1 < headers->len; i += 2)
    {
      const char *name = g_ptr_array_index (headers, i);
      const char *value = g_ptr_array_index (headers, i + 1);

      FUZZ_CHECK (text_is_clean (name, TRUE) && text_is_clean (value, FALSE));
      if (g_ascii_strcasecmp (name, "Sec-WebSocket-Accept") == 0)
        {
          FUZZ_CHECK (strcmp (value, accept) == 0);
          saw_accept = TRUE;
        }
      else if (g_ascii_strcasecmp (name, "Upgrade") == 0)
        saw_upgrade = g_ascii_strcasecmp (value, "websocket") == 0;
      FUZZ_CHECK (g_ascii_strcasecmp (name, "Sec-WebSocket-Extensions") != 0);
    }
  FUZZ_CHECK (saw_accept && saw_upgrade);

  if (fr->flags & REQ_UPGRADE_FAILS)
    {
      fr->upgrade_failed = TRUE;
      return FALSE;
    }
  fr->responded = TRUE;
  fr->upgraded = TRUE;
  fr->status = 101;
  TRACE ("  <- 101\n");
  return TRUE;
}

static const EngineIORequestVTable fuzz_vtable = {
  .respond = fuzz_respond,
  .suspend = fuzz_suspend,
  .resume = fuzz_resume,
  .upgrade = fuzz_upgrade,
};

static const EngineIORequestVTable fuzz_vtable_no_upgrade = {
  .respond = fuzz_respond,
  .suspend = fuzz_suspend,
  .resume = fuzz_resume,
  .upgrade = NULL,
};

/* WebSocket client (the peer of an upgraded connection) */

static gboolean
close_code_allowed (FuzzWsClient *c,
                    guint16       code)
{
  switch (code)
    {
    case 1000: case 1001: case 1002: case 1007: case 1008: case 1009: case 1011:
      return TRUE;  /* 1001: the server shutting down */
    default:
      for (guint i = 0; i < c->n_codes_sent; i++)
        if (c->codes_sent[i] == code)
          return TRUE;  /* the adapter echoes the client's code */
      /* A client that wrote raw bytes may have sent any valid code in a
       * close frame, which the server echoes: the ones a peer may send
       * (RFC 6455 7.4), never 1005, 1006, 1015 or the unassigned ones. */
      return (c->wrote_raw || c->engine->ws_raw) && ((code >= 3000 && code <= 4999) ||
                              code == 1003 || code == 1010);
    }
}

static void
client_check_message (FuzzWsClient *c,
                      gboolean      binary,
                      const guint8 *data,
                      gsize         size)
{
  g_autoptr(GBytes) frame = g_bytes_new (data, size);
  g_autoptr(EngineIOPacket) packet = NULL;
  g_autoptr(GError) error = NULL;
  EngineIOPacketType type;

  trace_bytes (binary ? "  ws <- binary" : "  ws <- text", data, size);
  if (!binary)
    FUZZ_CHECK (engine_io_utf8_validate ((const char *) data, size, NULL));
  packet = engine_io_packet_decode (frame, binary, c->version, &error);
  if (packet == NULL)
    FUZZ_FAIL ("server WebSocket message is no Engine.IO packet: %s", error->message);
  type = engine_io_packet_get_packet_type (packet);
  FUZZ_CHECK (type != ENGINE_IO_PACKET_UPGRADE && type != ENGINE_IO_PACKET_NOOP);

  if (c->n_messages == 0)
    {
      if (c->probe)
        {
          /* Nothing goes out on a probe before the upgrade but `3probe`. */
          const char *text = engine_io_packet_get_text (packet, NULL);
          FUZZ_CHECK (type == ENGINE_IO_PACKET_PONG && g_strcmp0 (text, "probe") == 0);
        }
      else
        FUZZ_CHECK (type == ENGINE_IO_PACKET_OPEN);
    }
  else if (type == ENGINE_IO_PACKET_OPEN)
    {
      /* An upgraded session whose handshake response never reached its
       * client still has the open packet queued: it goes out once, after
       * the upgrade. */
      FUZZ_CHECK (c->probe && !c->saw_open);
    }
  if (type == ENGINE_IO_PACKET_OPEN)
    c->saw_open = TRUE;
  c->n_messages++;
}

/* Parses the complete frames in c->in. */
static void
client_parse (FuzzWsClient *c)
{
  gsize pos = 0;
  const guint8 *d = c->in->data;
  gsize n = c->in->len;

  while (n - pos >= 2)
    {
      guint8 b0 = d[pos], b1 = d[pos + 1];
      gboolean fin = (b0 & 0x80) != 0;
      guint8 opcode = b0 & 0x0f;
      guint64 len = b1 & 0x7f;
      gsize header = 2;
      const guint8 *payload;

      FUZZ_CHECK ((b0 & 0x70) == 0);   /* no RSV bits: no extension was agreed */
      FUZZ_CHECK ((b1 & 0x80) == 0);   /* a server never masks */
      if (len == 126)
        {
          if (n - pos < 4)
            break;
          len = ((guint64) d[pos + 2] << 8) | d[pos + 3];
          FUZZ_CHECK (len >= 126);
          header = 4;
        }
      else if (len == 127)
        {
          if (n - pos < 10)
            break;
          len = 0;
          for (int i = 0; i < 8; i++)
            len = (len << 8) | d[pos + 2 + i];
          FUZZ_CHECK (len > 0xffff && len < ((guint64) 1 << 63));
          header = 10;
        }
      if (n - pos - header < len)
        break;
      payload = d + pos + header;

      /* Nothing after the close frame. */
      if (c->got_close)
        {
          trace_enabled = 1;
          trace_bytes ("after the close frame", d + pos, n - pos);
          FUZZ_FAIL ("the server sent a frame after its close frame");
        }

      switch (opcode)
        {
        case 0x0:
          FUZZ_CHECK (c->in_message);
          g_byte_array_append (c->message, payload, len);
          if (fin)
            {
              client_check_message (c, c->message_opcode == 0x2, c->message->data, c->message->len);
              g_byte_array_set_size (c->message, 0);
              c->in_message = FALSE;
            }
          break;
        case 0x1:
        case 0x2:
          FUZZ_CHECK (!c->in_message);
          if (fin)
            client_check_message (c, opcode == 0x2, payload, len);
          else
            {
              c->in_message = TRUE;
              c->message_opcode = opcode;
              g_byte_array_append (c->message, payload, len);
            }
          break;
        case 0x8:
          FUZZ_CHECK (fin && len <= 125 && len != 1);
          if (len >= 2)
            {
              guint16 code = (guint16) ((payload[0] << 8) | payload[1]);
              if (!close_code_allowed (c, code))
                FUZZ_FAIL ("server close code %u", code);
            }
          trace_bytes ("  ws <- close", payload, len);
          c->got_close = TRUE;
          break;
        case 0xA:
          FUZZ_CHECK (fin && len <= 125);  /* a pong for our ping */
          break;
        default:
          FUZZ_FAIL ("server frame with opcode %u", opcode);
        }
      pos += header + len;
    }
  g_byte_array_remove_range (c->in, 0, pos);
}

static void
client_close_fd (FuzzWsClient *c)
{
  if (c->fd >= 0)
    {
      close (c->fd);
      c->fd = -1;
    }
}

/* Reads what the server wrote; TRUE if anything came. */
static gboolean
client_read (FuzzWsClient *c)
{
  guint8 buf[16384];
  gboolean any = FALSE;

  while (c->fd >= 0)
    {
      ssize_t r = recv (c->fd, buf, sizeof buf, MSG_DONTWAIT);

      if (r > 0)
        {
          g_byte_array_append (c->in, buf, (guint) r);
          any = TRUE;
          continue;
        }
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      /* EOF or reset: the server is done with the connection. */
      TRACE ("  ws <- EOF\n");
      client_close_fd (c);
      any = TRUE;
    }
  if (any)
    client_parse (c);
  return any;
}

/* Writes all of @data, letting the server read when the socket is full;
 * gives up when the server stopped reading or closed. */
static void
client_write (FuzzWsClient *c,
              const guint8 *data,
              gsize         size)
{
  guint stuck = 0;

  trace_bytes ("  ws ->", data, size);
  while (size > 0 && c->fd >= 0 && !c->write_shut)
    {
      ssize_t r = send (c->fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (r > 0)
        {
          data += r;
          size -= (gsize) r;
          stuck = 0;
          continue;
        }
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && stuck++ < 4)
        {
          engine_drain (c->engine);
          continue;
        }
      break;  /* EPIPE, or a server that no longer reads */
    }
}

/* Appends a client frame: @b0 is FIN | RSV | opcode as given. @len_mode:
 * 0 minimal length encoding, 1 16-bit, 2 64-bit, 3 declares 100 bytes more
 * than follow. */
static void
client_frame (GByteArray   *out,
              guint8        b0,
              gboolean      masked,
              guint32       key,
              const guint8 *payload,
              gsize         len,
              int           len_mode)
{
  guint8 header[14];
  gsize h = 0;
  guint64 declared = len_mode == 3 ? len + 100 : len;
  guint8 mask[4] = { key >> 24, key >> 16, key >> 8, key };

  header[h++] = b0;
  if (len_mode == 2 || declared > 0xffff)
    {
      header[h++] = (masked ? 0x80 : 0) | 127;
      for (int i = 7; i >= 0; i--)
        header[h++] = (guint8) (declared >> (8 * i));
    }
  else if (len_mode == 1 || declared >= 126)
    {
      header[h++] = (masked ? 0x80 : 0) | 126;
      header[h++] = (guint8) (declared >> 8);
      header[h++] = (guint8) declared;
    }
  else
    header[h++] = (masked ? 0x80 : 0) | (guint8) declared;
  if (masked)
    {
      memcpy (header + h, mask, 4);
      h += 4;
    }
  g_byte_array_append (out, header, (guint) h);
  for (gsize i = 0; i < len; i++)
    {
      guint8 b = payload[i] ^ (masked ? mask[i % 4] : 0);
      g_byte_array_append (out, &b, 1);
    }
}

static void
client_note_close_sent (FuzzWsClient *c,
                        const guint8 *payload,
                        gsize         len)
{
  c->sent_close = TRUE;
  if (len >= 2 && c->n_codes_sent < G_N_ELEMENTS (c->codes_sent))
    c->codes_sent[c->n_codes_sent++] = (guint16) ((payload[0] << 8) | payload[1]);
}

static void
client_free (FuzzWsClient *c)
{
  client_close_fd (c);
  g_byte_array_unref (c->in);
  g_byte_array_unref (c->message);
  g_free (c);
}

/* The server end of a socketpair, given back by the WebSocket. */
typedef struct
{
  int         fd;
  FuzzEngine *engine;
} ServerEnd;

static void
release_server_end (gpointer data)
{
  ServerEnd *end = data;

  close (end->fd);
  end->engine->server_fds--;
  g_free (end);
}

/* libmicrohttpd's part after a 101: hand the socket over. */
static FuzzWsClient *
switch_to_websocket (FuzzEngine  *e,
                     FuzzRequest *fr)
{
  EngineIOSocket *socket = fr->base.socket;
  FuzzWsClient *c;
  EngineIOWebSocket *ws;
  int sv[2];
  ServerEnd *end;
  gsize extra_size = 0;
  gconstpointer extra = fr->extra_in != NULL ? g_bytes_get_data (fr->extra_in, &extra_size) : NULL;

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    FUZZ_FAIL ("socketpair: %s", g_strerror (errno));
  fcntl (sv[1], F_SETFL, fcntl (sv[1], F_GETFL) | O_NONBLOCK);

  end = g_new0 (ServerEnd, 1);
  end->fd = sv[0];
  end->engine = e;
  e->server_fds++;

  c = g_new0 (FuzzWsClient, 1);
  c->engine = e;
  c->fd = sv[1];
  c->version = engine_io_socket_get_protocol_version (socket);
  c->probe = engine_io_socket_get_transport (socket) == ENGINE_IO_TRANSPORT_POLLING;
  c->in = g_byte_array_new ();
  c->message = g_byte_array_new ();
  g_ptr_array_add (e->clients, c);

  ws = engine_io_websocket_new (sv[0], extra, extra_size, engine_io_server_get_max_payload (e->server),
                                release_server_end, end);
  c->ws = ws;
  fr->base.kind = ENGINE_IO_REQUEST_DONE;  /* switched: nothing left to fail */
  engine_io_socket_attach_websocket (socket, ws, fr->base.reject_ws);
  return c;
}

/* Requests */

static void
request_free (FuzzRequest *fr)
{
  engine_io_request_clear (&fr->base);
  g_clear_pointer (&fr->body, g_bytes_unref);
  g_clear_pointer (&fr->extra_in, g_bytes_unref);
  g_free (fr);
}

static void
request_finish (FuzzEngine  *e,
                FuzzRequest *fr,
                gboolean     completed)
{
  e->current = fr;
  engine_io_server_request_finished (e->server, &fr->base, completed);
  e->current = NULL;
  FUZZ_CHECK (!fr->base.begun && !fr->base.suspend_counted);
  g_ptr_array_remove (e->requests, fr);
  request_free (fr);
}

/* After a core entry point: switch, complete, or wait for resume. */
static void
request_settle (FuzzEngine  *e,
                FuzzRequest *fr)
{
  if (fr->upgraded)
    {
      if (fr->flags & REQ_SWITCH_FAILS)
        {
          request_finish (e, fr, FALSE);
          return;
        }
      switch_to_websocket (e, fr);
      request_finish (e, fr, TRUE);
      return;
    }
  if (fr->responded)
    {
      request_finish (e, fr, !(fr->flags & REQ_CLIENT_GONE));
      return;
    }
  if (fr->suspended)
    return;
  if (fr->upgrade_failed)
    {
      /* No response could be queued: libmicrohttpd drops the connection. */
      request_finish (e, fr, FALSE);
      return;
    }
  FUZZ_FAIL ("%s %s was neither answered nor suspended", fr->base.method, fr->base.path);
}

/* Runs the resumed requests; TRUE if there was any. */
static gboolean
engine_handle_resumes (FuzzEngine *e)
{
  gboolean any = FALSE;
  gboolean again = TRUE;

  while (again)
    {
      again = FALSE;
      for (guint i = 0; i < e->requests->len; i++)
        {
          FuzzRequest *fr = g_ptr_array_index (e->requests, i);

          if (!fr->resume_pending)
            continue;
          any = again = TRUE;
          fr->resume_pending = FALSE;
          fr->suspended = FALSE;
          if (fr->flags & REQ_CLIENT_GONE)
            {
              /* libmicrohttpd completes a resumed connection whose client
               * has gone without calling the handler again. */
              request_finish (e, fr, FALSE);
              break;
            }
          e->current = fr;
          engine_io_server_request_resumed (e->server, &fr->base);
          e->current = NULL;
          FUZZ_CHECK (!fr->suspended);
          request_settle (e, fr);
          break;  /* the array may have changed */
        }
    }
  return any;
}

static gboolean
engine_read_clients (FuzzEngine *e)
{
  gboolean any = FALSE;

  for (guint i = 0; i < e->clients->len; i++)
    any |= client_read (g_ptr_array_index (e->clients, i));
  return any;
}

/* Runs everything that is ready: the context, resumed requests, reads. */
static void
engine_drain (FuzzEngine *e)
{
  guint spins = 0;

  for (;;)
    {
      gboolean progress = FALSE;

      while (g_main_context_iteration (e->ctx, FALSE))
        {
          progress = TRUE;
          if (++spins > 200000)
            FUZZ_FAIL ("the session context never becomes idle");
        }
      progress |= engine_handle_resumes (e);
      progress |= engine_read_clients (e);
      if (!progress)
        break;
      if (++spins > 200000)
        FUZZ_FAIL ("the session context never becomes idle");
    }
}

static void
make_due (FuzzEngine    *e,
          gconstpointer  owner)
{
  /* Only compares @owner with the timers' data: a stale pointer at worst
   * finds nothing. */
  GSource *timer = g_main_context_find_source_by_funcs_user_data (e->ctx, &g_timeout_funcs,
                                                                  (gpointer) owner);
  if (timer != NULL)
    g_source_set_ready_time (timer, 0);
}

/* Makes the next timer of every open session (heartbeat, upgrade, linger)
 * and every WebSocket (close handshake) due now: time passes. */
static void
engine_tick (FuzzEngine *e)
{
  g_autoptr(GPtrArray) sockets = engine_io_server_get_sockets (e->server);

  for (guint i = 0; i < sockets->len; i++)
    make_due (e, g_ptr_array_index (sockets, i));
  for (guint i = 0; i < e->clients->len; i++)
    make_due (e, ((FuzzWsClient *) g_ptr_array_index (e->clients, i))->ws);
  engine_drain (e);
}

/* One HTTP request, from its headers to wherever it gets without the
 * context running (a response, or suspended). Takes @query and @headers. */
static FuzzRequest *
engine_request (FuzzEngine  *e,
                const char  *method,
                const char  *path,
                GHashTable  *query,
                GHashTable  *headers,
                GBytes      *body,
                GBytes      *extra_in,
                guint        flags)
{
  FuzzRequest *fr = g_new0 (FuzzRequest, 1);
  const char *length;
  gboolean want_body;

  engine_io_request_init (&fr->base, (flags & REQ_NO_UPGRADE) ? &fuzz_vtable_no_upgrade : &fuzz_vtable);
  fr->engine = e;
  fr->flags = flags;
  fr->base.method = g_strdup (method);
  fr->base.path = g_strdup (path);
  fr->base.query = query;
  fr->base.headers = headers;
  fr->base.remote_address = g_strdup ("127.0.0.1");
  fr->body = body != NULL ? g_bytes_ref (body) : g_bytes_new_static ("", 0);
  fr->extra_in = extra_in != NULL ? g_bytes_ref (extra_in) : NULL;

  length = g_hash_table_lookup (headers, "content-length");
  if (length != NULL)
    {
      guint64 n;
      if (g_ascii_string_to_unsigned (length, 10, 0, G_MAXINT64, &n, NULL))
        {
          fr->base.content_length = (gint64) n;
          /* The client sends what it declared: less means it went away. */
          if (n < g_bytes_get_size (fr->body))
            {
              GBytes *cut = g_bytes_new_from_bytes (fr->body, 0, n);
              g_bytes_unref (fr->body);
              fr->body = cut;
            }
          else if (n > g_bytes_get_size (fr->body))
            fr->flags |= REQ_BODY_CUT;
        }
    }

  if (!engine_io_server_path_matches (e->server, fr->base.path))
    {
      /* The adapter answers 404 itself; the core never sees it. */
      request_free (fr);
      return NULL;
    }

  if (tracing ())
    {
      GHashTableIter iter;
      gpointer k, v;
      g_autoptr(GString) line = g_string_new (NULL);

      g_string_append_printf (line, "%s %s ?", method, path);
      g_hash_table_iter_init (&iter, query);
      while (g_hash_table_iter_next (&iter, &k, &v))
        g_string_append_printf (line, " %s=%s", (char *) k, (char *) v);
      g_printerr ("%s\n", line->str);
      if (g_bytes_get_size (fr->body) > 0)
        trace_bytes ("  body", g_bytes_get_data (fr->body, NULL), g_bytes_get_size (fr->body));
    }

  g_ptr_array_add (e->requests, fr);
  e->current = fr;
  want_body = engine_io_server_request_begin (e->server, &fr->base);
  e->current = NULL;

  if (want_body)
    {
      FUZZ_CHECK (strcmp (method, "POST") == 0);
      FUZZ_CHECK (!fr->responded && !fr->suspended);
      FUZZ_CHECK (fr->base.kind == ENGINE_IO_REQUEST_POST && fr->base.socket != NULL);
      if (fr->flags & REQ_BODY_CUT)
        {
          request_finish (e, fr, FALSE);
          return NULL;
        }
      e->current = fr;
      if (g_bytes_get_size (fr->body) > engine_io_server_get_max_payload (e->server))
        engine_io_server_request_too_large (e->server, &fr->base);
      else
        engine_io_server_request_body (e->server, &fr->base, fr->body);
      e->current = NULL;
      /* Answered, or held while its session is over its memory bound
       * (resumed once the session drains). */
      FUZZ_CHECK (fr->responded || fr->suspended);
    }

  request_settle (e, fr);
  return fr;
}

/* The application */

typedef struct
{
  int closes;
} SocketRecord;

static void
on_socket_finalized (gpointer  data,
                     GObject  *where)
{
  FuzzEngine *e = data;
  e->live_sockets--;
}

static void
on_message (EngineIOSocket *socket,
            const char     *text,
            GBytes         *data,
            FuzzEngine     *e)
{
  SocketRecord *record = g_object_get_data (G_OBJECT (socket), "fuzz-record");

  FUZZ_CHECK (record->closes == 0);
  FUZZ_CHECK ((text == NULL) != (data == NULL));
  if (text != NULL)
    trace_bytes ("  app: message", (const guint8 *) text, strlen (text));
  else
    trace_bytes ("  app: binary message", g_bytes_get_data (data, NULL), g_bytes_get_size (data));

  if (text != NULL && strcmp (text, "bye") == 0 && (e->cfg & CFG_APP_BYE))
    {
      engine_io_socket_close (socket);
      return;
    }
  if (text != NULL && strcmp (text, "flood") == 0)
    {
      static const char block[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
      for (int i = 0; i < 64; i++)
        engine_io_socket_send_text (socket, block, NULL);
      return;
    }
  if (e->cfg & CFG_APP_ECHO)
    {
      if (text != NULL)
        engine_io_socket_send_text (socket, text, NULL);
      else
        engine_io_socket_send_binary (socket, data, NULL);
    }
}

static void
on_close (EngineIOSocket      *socket,
          EngineIOCloseReason  reason,
          const char          *description,
          FuzzEngine          *e)
{
  SocketRecord *record = g_object_get_data (G_OBJECT (socket), "fuzz-record");

  TRACE ("  session %s closed: %s (%s)\n", engine_io_socket_get_id (socket),
         engine_io_close_reason_to_string (reason), description ? description : "");
  FUZZ_CHECK (++record->closes == 1);
  FUZZ_CHECK (engine_io_server_lookup_socket (e->server, engine_io_socket_get_id (socket)) == NULL);
  FUZZ_CHECK (strcmp (engine_io_close_reason_to_string (reason), "unknown") != 0);
  /* Sending after the close fails cleanly. */
  FUZZ_CHECK (!engine_io_socket_send_text (socket, "late", NULL));
}

static void
on_drain (EngineIOSocket *socket,
          FuzzEngine     *e)
{
  SocketRecord *record = g_object_get_data (G_OBJECT (socket), "fuzz-record");
  FUZZ_CHECK (record->closes == 0);
}

static void
on_connection (EngineIOServer *server,
               EngineIOSocket *socket,
               FuzzEngine     *e)
{
  SocketRecord *record = g_new0 (SocketRecord, 1);

  FUZZ_CHECK (g_main_context_is_owner (e->ctx));
  e->live_sockets++;
  g_object_weak_ref (G_OBJECT (socket), on_socket_finalized, e);
  g_object_set_data_full (G_OBJECT (socket), "fuzz-record", record, g_free);
  g_ptr_array_add (e->sids, g_strdup (engine_io_socket_get_id (socket)));
  TRACE ("  session %s opened\n", engine_io_socket_get_id (socket));

  if (!(e->cfg & CFG_NO_MESSAGE))
    g_signal_connect (socket, "message", G_CALLBACK (on_message), e);
  g_signal_connect (socket, "close", G_CALLBACK (on_close), e);
  if (e->cfg & CFG_DRAIN_HANDLER)
    g_signal_connect (socket, "drain", G_CALLBACK (on_drain), e);

  if (e->cfg & CFG_APP_GREET)
    {
      static const guint8 bytes[] = { 0, 1, 2, 0xff };
      g_autoptr(GBytes) data = g_bytes_new_static (bytes, sizeof bytes);
      engine_io_socket_send_text (socket, "hello \"you\" \xe2\x80\xa8", NULL);
      engine_io_socket_send_binary (socket, data, NULL);
    }
}

static gboolean
admission (EngineIOServer    *server,
           EngineIOHandshake *handshake,
           gpointer           data)
{
  return engine_io_handshake_get_header (handshake, "x-deny") == NULL;
}

static char *
next_id (EngineIOServer    *server,
         EngineIOHandshake *handshake,
         gpointer           data)
{
  FuzzEngine *e = data;
  return g_strdup_printf ("sid%u", ++e->next_sid);
}

/* Sets @name if this build of the server has it (properties other work
 * adds may come and go). */
static void
set_if_present (GObject    *object,
                const char *name,
                ...)
{
  va_list args;

  if (g_object_class_find_property (G_OBJECT_GET_CLASS (object), name) == NULL)
    return;
  va_start (args, name);
  g_object_set_valist (object, name, args);
  va_end (args);
}

static FuzzEngine *
engine_new (guint32 cfg)
{
  FuzzEngine *e = g_new0 (FuzzEngine, 1);
  EngineIOTransports transports = ENGINE_IO_TRANSPORTS_POLLING | ENGINE_IO_TRANSPORTS_WEBSOCKET;
  GObject *object;

  if (cfg & CFG_POLLING_ONLY)
    transports = ENGINE_IO_TRANSPORTS_POLLING;
  else if (cfg & CFG_WEBSOCKET_ONLY)
    transports = ENGINE_IO_TRANSPORTS_WEBSOCKET;

  e->cfg = cfg;
  e->ctx = g_main_context_new ();
  e->requests = g_ptr_array_new ();
  e->clients = g_ptr_array_new_with_free_func ((GDestroyNotify) client_free);
  e->sids = g_ptr_array_new_with_free_func (g_free);
  e->max_payload = (cfg & CFG_SMALL_PAYLOAD) ? 64 : 1000000;
  e->server = g_object_new (ENGINE_IO_TYPE_SERVER,
                            "callback-context", e->ctx,
                            "allow-eio3", (cfg & CFG_EIO3) != 0,
                            "max-payload", e->max_payload,
                            "transports", transports,
                            "allow-upgrades", !(cfg & CFG_NO_UPGRADES),
                            "max-sessions", (cfg & CFG_MAX_SESSIONS) ? 2u : 0u,
                            NULL);
  object = G_OBJECT (e->server);
  if (cfg & CFG_CORS_ANY)
    g_object_set (object, "cors-origin", "*", NULL);
  else if (cfg & CFG_CORS_LIST)
    g_object_set (object, "cors-origin", FUZZ_ORIGIN_A ", " FUZZ_ORIGIN_B,
                  "cors-credentials", (cfg & CFG_CORS_CREDENTIALS) != 0, NULL);
  if (cfg & CFG_COOKIE)
    g_object_set (object, "cookie", "io", NULL);
  if (cfg & CFG_METRICS)
    g_object_set (object, "metrics-path", "/metrics", NULL);
  if (cfg & CFG_SMALL_HIGH_WATER)
    g_object_set (object, "send-queue-high-water", (guint64) 1024,
                  "backpressure-policy", (cfg & CFG_DROP_NEWEST) ? ENGINE_IO_BACKPRESSURE_DROP_NEWEST
                                         : (cfg & CFG_KEEP_QUEUING) ? ENGINE_IO_BACKPRESSURE_KEEP_QUEUING
                                         : ENGINE_IO_BACKPRESSURE_CLOSE, NULL);
  if (cfg & CFG_ORIGINS)
    {
      const char *origins[] = { FUZZ_ORIGIN_A, NULL };
      set_if_present (object, "allowed-origins", origins, NULL);
    }
  if (cfg & CFG_MESSAGE_RATE)
    {
      set_if_present (object, "message-rate", 1.0, NULL);
      set_if_present (object, "message-burst", 3u, NULL);
      if (cfg & CFG_RATE_DROP)
        set_if_present (object, "message-rate-policy", ENGINE_IO_RATE_LIMIT_DROP, NULL);
    }
  if (cfg & CFG_HANDSHAKE_RATE)
    {
      set_if_present (object, "handshake-rate", 1.0, NULL);
      set_if_present (object, "handshake-burst", 2u, NULL);
    }
  if (cfg & CFG_ADMISSION)
    engine_io_server_set_admission_func (e->server, admission, NULL, NULL);
  if (!(cfg & CFG_RANDOM_SIDS))
    engine_io_server_set_id_func (e->server, next_id, e, NULL);
  g_signal_connect (e->server, "connection", G_CALLBACK (on_connection), e);
  return e;
}

static gboolean
engine_idle (FuzzEngine *e)
{
  return engine_io_server_get_socket_count (e->server) == 0 && e->requests->len == 0;
}

/* Ends every session and checks that nothing is left behind. */
static void
engine_free (FuzzEngine *e)
{
  GObject *server_alive;

  for (guint round = 0; ; round++)
    {
      g_autoptr(GPtrArray) sockets = NULL;

      engine_drain (e);
      if (engine_idle (e))
        break;
      if (round == 6)
        {
          for (guint i = 0; i < e->requests->len; i++)
            {
              FuzzRequest *fr = g_ptr_array_index (e->requests, i);
              g_printerr ("left: %s %s kind %d suspended %d\n", fr->base.method, fr->base.path,
                          fr->base.kind, fr->suspended);
            }
          FUZZ_FAIL ("%u sessions and %u requests left after closing everything",
                     engine_io_server_get_socket_count (e->server), e->requests->len);
        }

      /* As a shutdown does; then the clients go away; then time passes
       * (close linger, WebSocket close handshakes). */
      sockets = engine_io_server_get_sockets (e->server);
      for (guint i = 0; i < sockets->len; i++)
        engine_io_socket_close_with_reason (g_ptr_array_index (sockets, i),
                                            ENGINE_IO_CLOSE_REASON_SERVER_SHUTTING_DOWN, NULL);
      if (round >= 1)
        for (guint i = 0; i < e->clients->len; i++)
          client_close_fd (g_ptr_array_index (e->clients, i));
      if (round >= 2)
        engine_tick (e);
    }

  for (guint i = 0; i < e->clients->len; i++)
    client_close_fd (g_ptr_array_index (e->clients, i));
  engine_drain (e);

  FUZZ_CHECK (e->live_sockets == 0);
  FUZZ_CHECK (e->server_fds == 0);

  server_alive = G_OBJECT (e->server);
  g_object_add_weak_pointer (server_alive, (gpointer *) &server_alive);
  engine_io_server_close (e->server);
  g_object_unref (e->server);
  FUZZ_CHECK (server_alive == NULL);
  while (g_main_context_iteration (e->ctx, FALSE))
    ;
  g_main_context_unref (e->ctx);

  g_ptr_array_unref (e->requests);
  g_ptr_array_unref (e->clients);
  g_ptr_array_unref (e->sids);
  g_free (e);
}

G_GNUC_UNUSED static const char *
engine_sid (FuzzEngine *e,
            guint       back)
{
  if (e->sids->len <= back)
    return "";
  return g_ptr_array_index (e->sids, e->sids->len - 1 - back);
}

G_GNUC_UNUSED static FuzzWsClient *
engine_client (FuzzEngine *e,
               guint       index)
{
  if (e->clients->len == 0)
    return NULL;
  return g_ptr_array_index (e->clients, index % e->clients->len);
}
