/* socketio-packet.c: the Socket.IO packet codec (sans-I/O)
 *
 * What is accepted, and how it compares with the reference decoder
 * (socket.io-parser 4.2, and 3.4 for protocol v4), which reads the header
 * with JavaScript's Number() and so takes whitespace, "0x1", "1e0" or ""
 * for numbers. This decoder accepts a subset of what the reference
 * accepts, and decodes it to the same packet:
 *
 * - type: one digit 0-6 (the reference reads "" and " " as 0, CONNECT);
 * - attachments: one or more ASCII digits then "-", at most the decoder's
 *   max-attachments (reference: 10), at least 1 (as the reference);
 * - namespace: from a "/" right after the header to the next "," or the
 *   end (the "," is dropped), else "/"; may hold a "?query" (v4 clients);
 * - ack id: ASCII digits, at most 2^53 - 1, only on EVENT and ACK (the
 *   reference takes whitespace as a digit, so "2 []" is id 0 there: a
 *   payload that starts with whitespace is refused here);
 * - payload: one strict JSON value (what JSON.parse() takes, less \u0000
 *   and lone surrogate escapes), bounded in depth and memory; per type: CONNECT an object or nothing (v4:
 *   nothing), DISCONNECT nothing, EVENT a non-empty array whose first
 *   element is a (finite) number or a string other than the reserved event
 *   names (the reference also takes 1e400, infinity, which it re-encodes as
 *   null),
 *   ACK an array, CONNECT_ERROR an object, a string or nothing;
 * - EVENT and ACK need a payload and ACK an id (the protocol says so; the
 *   reference decoder lets them through and the server then drops them);
 *   reserved event names are refused in v4 too (socket.io 2.x emitted
 *   them to the application's handlers);
 * - binary packets: every object with "_placeholder": true must be exactly
 *   {"_placeholder":true,"num":N}, N an integer below the announced count,
 *   and each attachment is referred to exactly once (the reference lets
 *   unused and repeated numbers through; its encoder never writes them);
 *   the next N Engine.IO messages must be binary, a text message meanwhile
 *   is an error (as in the reference), and so is a binary message when no
 *   packet waits for one; their total size is bounded.
 *
 * JSON (socketio-json.c): json-glib's JsonParser builds the payload tree;
 * ours is only a non-allocating validator run before it, because
 * json-glib 1.6.6 is unsafe on untrusted text (measured: 80,000 nested
 * "[" overflow an 8 MiB stack and crash it; it has no memory bound,
 * truncates strings at \u0000, wraps integers beyond int64, and accepts
 * comments, 'quotes', 0x10, 01 and trailing data), and the writer, because
 * json-glib 1.6.6's JsonGenerator writes invalid JSON (1e21 as 1e+21.0,
 * infinity as inf.0, U+001F raw). The encoding is the reference's packet,
 * not its bytes: numbers in 15-17 digits, members in insertion order.
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-packet-private.h"
#include "socketio-json-private.h"

#include <math.h>
#include <string.h>

struct _SocketIOPacket
{
  gatomicrefcount     ref_count;
  SocketIOPacketType  type;          /* CONNECT .. CONNECT_ERROR */
  char               *nsp;           /* never NULL; starts with "/" */
  gint64              id;            /* SOCKET_IO_NO_ACK_ID or 0 .. MAX_ACK_ID */
  JsonNode           *data;          /* nullable; sealed */
  GPtrArray          *attachments;   /* GBytes; never NULL; placeholder N is [N] */
};

/* One per Engine.IO connection, used by one thread at a time (the
 * connection's context); not thread-safe. */
struct _SocketIODecoder
{
  SocketIOProtocol  protocol;
  guint             max_attachments;
  gsize             max_attachment_bytes;
  guint             max_depth;
  gsize             max_tree_bytes;
  SocketIOPacket   *pending;         /* owned; waiting for attachments */
  guint             expected;        /* attachments @pending needs */
  gsize             pending_bytes;   /* bytes of @pending's attachments */
};

static const char * const reserved_events[] = {
  "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

/**
 * socket_io_event_name_is_reserved:
 * @name: an event name
 *
 * Whether @name is one of the names socket.io-parser refuses as an event
 * name (connect, connect_error, disconnect, disconnecting, newListener,
 * removeListener).
 */
gboolean
socket_io_event_name_is_reserved (const char *name)
{
  guint i;

  for (i = 0; i < G_N_ELEMENTS (reserved_events); i++)
    if (strcmp (name, reserved_events[i]) == 0)
      return TRUE;
  return FALSE;
}

static SocketIOPacket *
packet_alloc (SocketIOPacketType  type,
              char               *nsp,
              gint64              id,
              JsonNode           *data)
{
  SocketIOPacket *packet = g_new0 (SocketIOPacket, 1);

  g_atomic_ref_count_init (&packet->ref_count);
  packet->type = type;
  packet->nsp = nsp;
  packet->id = id;
  packet->data = data;
  packet->attachments = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  return packet;
}

SocketIOPacket *
socket_io_packet_ref (SocketIOPacket *packet)
{
  g_return_val_if_fail (packet != NULL, NULL);

  g_atomic_ref_count_inc (&packet->ref_count);
  return packet;
}

void
socket_io_packet_unref (SocketIOPacket *packet)
{
  g_return_if_fail (packet != NULL);

  if (!g_atomic_ref_count_dec (&packet->ref_count))
    return;
  g_free (packet->nsp);
  g_clear_pointer (&packet->data, json_node_unref);
  g_ptr_array_unref (packet->attachments);
  g_free (packet);
}

/* The payload rules shared by the decoder and the constructor. */
static const char *
check_payload (SocketIOPacketType  type,
               JsonNode           *data,
               SocketIOProtocol    protocol)
{
  switch (type)
    {
    case SOCKET_IO_PACKET_CONNECT:
      if (data == NULL)
        return NULL;
      if (protocol == SOCKET_IO_PROTOCOL_V4)
        return "A v4 CONNECT carries no payload";
      return JSON_NODE_HOLDS_OBJECT (data) ? NULL : "CONNECT payload is not an object";
    case SOCKET_IO_PACKET_DISCONNECT:
      return data == NULL ? NULL : "DISCONNECT carries no payload";
    case SOCKET_IO_PACKET_EVENT:
      {
        JsonArray *args;
        JsonNode *name;

        if (data == NULL)
          return "EVENT without payload";
        if (!JSON_NODE_HOLDS_ARRAY (data))
          return "EVENT payload is not an array";
        args = json_node_get_array (data);
        if (json_array_get_length (args) == 0)
          return "EVENT payload is an empty array";
        name = json_array_get_element (args, 0);
        if (JSON_NODE_HOLDS_VALUE (name))
          {
            GType t = json_node_get_value_type (name);

            if (t == G_TYPE_INT64)
              return NULL;
            /* 1e400 reads as infinity, which JSON.stringify() writes as
             * null: a name that would not survive re-encoding. */
            if (t == G_TYPE_DOUBLE)
              return isfinite (json_node_get_double (name)) ? NULL : "Event name is not a finite number";
            if (t == G_TYPE_STRING && json_node_get_string (name) != NULL)
              return socket_io_event_name_is_reserved (json_node_get_string (name))
                ? "Reserved event name" : NULL;
          }
        return "Event name is neither a string nor a number";
      }
    case SOCKET_IO_PACKET_ACK:
      if (data == NULL)
        return "ACK without payload";
      return JSON_NODE_HOLDS_ARRAY (data) ? NULL : "ACK payload is not an array";
    case SOCKET_IO_PACKET_CONNECT_ERROR:
      if (data == NULL || JSON_NODE_HOLDS_OBJECT (data) ||
          (JSON_NODE_HOLDS_VALUE (data) && json_node_get_value_type (data) == G_TYPE_STRING))
        return NULL;
      return "CONNECT_ERROR payload is neither an object nor a string";
    case SOCKET_IO_PACKET_BINARY_EVENT:
    case SOCKET_IO_PACKET_BINARY_ACK:
    default:
      g_assert_not_reached ();
    }
  return NULL;
}

/* --- construction from the application --- */

typedef struct {
  GPtrArray *attachments;
  guint8    *used;
  GError   **error;
} CheckTree;

static gboolean
check_tree (CheckTree *c,
            JsonNode  *node,
            guint      depth)
{
  if (depth > SOCKET_IO_JSON_MAX_DEPTH)
    {
      g_set_error (c->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                   "Payload nested deeper than %u levels", SOCKET_IO_JSON_MAX_DEPTH);
      return FALSE;
    }
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_NULL:
      return TRUE;
    case JSON_NODE_VALUE:
      if (json_node_get_value_type (node) == G_TYPE_STRING &&
          json_node_get_string (node) != NULL &&
          !g_utf8_validate (json_node_get_string (node), -1, NULL))
        {
          g_set_error_literal (c->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                               "Payload string is not valid UTF-8");
          return FALSE;
        }
      return TRUE;
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint i;

        for (i = 0; i < json_array_get_length (array); i++)
          if (!check_tree (c, json_array_get_element (array, i), depth + 1))
            return FALSE;
        return TRUE;
      }
    case JSON_NODE_OBJECT:
      {
        JsonObject *object = json_node_get_object (node);
        JsonNode *flag = json_object_get_member (object, "_placeholder");
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;
        gint64 num;

        if (c->attachments->len > 0 && flag != NULL && JSON_NODE_HOLDS_VALUE (flag) &&
            json_node_get_value_type (flag) == G_TYPE_BOOLEAN && json_node_get_boolean (flag))
          {
            if (!socket_io_json_is_placeholder (node, &num) || num >= c->attachments->len)
              {
                g_set_error_literal (c->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                                     "Placeholder does not name one of the attachments");
                return FALSE;
              }
            c->used[num] = 1;
            return TRUE;
          }
        json_object_iter_init (&iter, object);
        while (json_object_iter_next (&iter, &name, &member))
          {
            if (!g_utf8_validate (name, -1, NULL))
              {
                g_set_error_literal (c->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                                     "Member name is not valid UTF-8");
                return FALSE;
              }
            if (!check_tree (c, member, depth + 1))
              return FALSE;
          }
        return TRUE;
      }
    }
  return TRUE;
}

/**
 * socket_io_packet_new:
 * @type: the packet type (BINARY_EVENT and BINARY_ACK are taken as EVENT
 *   and ACK: attachments make a packet binary)
 * @nsp: (nullable): the namespace, starting with "/" and without ","
 *   (%NULL: "/")
 * @data: (nullable): the payload; a ref is taken and the node is sealed
 *   (json_node_seal()): do not change it afterwards. JSON null is no payload.
 * @id: the ack id, or %SOCKET_IO_NO_ACK_ID
 * @attachments: (nullable) (element-type GBytes): binaries; @data refers
 *   to attachments[N] with socket_io_placeholder_new (N) (in any order,
 *   repeated or not, but each at least once)
 * @error: return location for a %SOCKET_IO_ERROR_INVALID error
 *
 * Builds a packet to encode, checking it against the protocol's rules
 * (the decoder's, for v5): the application gets a GError where
 * socket.io's emit() throws.
 *
 * Returns: (transfer full) (nullable): the packet, or %NULL with @error set
 */
SocketIOPacket *
socket_io_packet_new (SocketIOPacketType   type,
                      const char          *nsp,
                      JsonNode            *data,
                      gint64               id,
                      GPtrArray           *attachments,
                      GError             **error)
{
  g_autoptr(SocketIOPacket) packet = NULL;
  const char *problem;

  g_return_val_if_fail (type <= SOCKET_IO_PACKET_BINARY_ACK, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (type == SOCKET_IO_PACKET_BINARY_EVENT)
    type = SOCKET_IO_PACKET_EVENT;
  else if (type == SOCKET_IO_PACKET_BINARY_ACK)
    type = SOCKET_IO_PACKET_ACK;
  if (nsp == NULL)
    nsp = "/";
  if (nsp[0] != '/' || strchr (nsp, ',') != NULL || !g_utf8_validate (nsp, -1, NULL))
    {
      g_set_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                   "Invalid namespace “%s” (want valid UTF-8 starting with “/”, without “,”)", nsp);
      return NULL;
    }
  if (data != NULL && JSON_NODE_HOLDS_NULL (data))
    data = NULL;

  if (id != SOCKET_IO_NO_ACK_ID &&
      (id < 0 || id > SOCKET_IO_MAX_ACK_ID ||
       (type != SOCKET_IO_PACKET_EVENT && type != SOCKET_IO_PACKET_ACK)))
    {
      g_set_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                   "Invalid ack id %" G_GINT64_FORMAT " for this packet type", id);
      return NULL;
    }
  if (type == SOCKET_IO_PACKET_ACK && id == SOCKET_IO_NO_ACK_ID)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID, "ACK without an id");
      return NULL;
    }
  problem = check_payload (type, data, SOCKET_IO_PROTOCOL_V5);
  if (problem != NULL)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID, problem);
      return NULL;
    }
  if (attachments != NULL && attachments->len > 0 &&
      type != SOCKET_IO_PACKET_EVENT && type != SOCKET_IO_PACKET_ACK)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                           "Only EVENT and ACK packets carry attachments");
      return NULL;
    }

  packet = packet_alloc (type, g_strdup (nsp), id, NULL);
  if (attachments != NULL)
    {
      guint i;

      for (i = 0; i < attachments->len; i++)
        {
          g_return_val_if_fail (attachments->pdata[i] != NULL, NULL);
          g_ptr_array_add (packet->attachments, g_bytes_ref (attachments->pdata[i]));
        }
    }
  if (data != NULL)
    {
      g_autofree guint8 *used = g_malloc0 (packet->attachments->len + 1);
      CheckTree c = { packet->attachments, used, error };
      guint i;

      if (!check_tree (&c, data, 1))
        return NULL;
      for (i = 0; i < packet->attachments->len; i++)
        if (!used[i])
          {
            g_set_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                         "No placeholder refers to attachment %u", i);
            return NULL;
          }
      json_node_seal (data);
      packet->data = json_node_ref (data);
    }
  else if (packet->attachments->len > 0)
    {
      g_set_error_literal (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_INVALID,
                           "No placeholder refers to attachment 0");
      return NULL;
    }
  return g_steal_pointer (&packet);
}

/**
 * socket_io_placeholder_new:
 * @num: an attachment index
 *
 * Returns: (transfer full): a new {"_placeholder":true,"num":@num} node,
 *   standing for attachment @num of the packet it is put in
 */
JsonNode *
socket_io_placeholder_new (guint num)
{
  JsonObject *object = json_object_new ();
  JsonNode *node = json_node_new (JSON_NODE_OBJECT);

  json_object_set_boolean_member (object, "_placeholder", TRUE);
  json_object_set_int_member (object, "num", num);
  json_node_take_object (node, object);
  return node;
}

SocketIOPacketType
socket_io_packet_get_packet_type (SocketIOPacket *packet)
{
  return packet->type;
}

/* Returns: (transfer none): the namespace ("/" by default) */
const char *
socket_io_packet_get_namespace (SocketIOPacket *packet)
{
  return packet->nsp;
}

/* Returns: the ack id, or SOCKET_IO_NO_ACK_ID */
gint64
socket_io_packet_get_id (SocketIOPacket *packet)
{
  return packet->id;
}

/* Returns: (transfer none) (nullable): the sealed payload */
JsonNode *
socket_io_packet_get_data (SocketIOPacket *packet)
{
  return packet->data;
}

/* Returns: (transfer none) (element-type GBytes): the attachments, in
 * placeholder order; do not modify */
GPtrArray *
socket_io_packet_get_attachments (SocketIOPacket *packet)
{
  return packet->attachments;
}

/* Returns: (transfer none) (nullable): an EVENT's name if it is a string */
const char *
socket_io_packet_get_event_name (SocketIOPacket *packet)
{
  JsonNode *name;

  if (packet->type != SOCKET_IO_PACKET_EVENT || packet->data == NULL)
    return NULL;
  name = json_array_get_element (json_node_get_array (packet->data), 0);
  if (json_node_get_value_type (name) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (name);
}

/* --- encoding --- */

/**
 * socket_io_packet_encode:
 * @packet: a packet
 * @attachments: (out) (transfer container) (element-type GBytes) (optional):
 *   the binary messages to send after the text, in order (empty for a
 *   packet without attachments)
 *
 * Encodes @packet as socket.io-parser's Encoder does: the same header,
 * placeholders numbered in the order written, a payload that any JSON
 * parser reads as the same values (not JSON.stringify()'s bytes: see
 * socketio-json.c). The result is immutable: encode a
 * broadcast once and send the same GBytes to every recipient. Thread-safe.
 *
 * Returns: (transfer full): the text message, without Engine.IO's "4"
 */
GBytes *
socket_io_packet_encode (SocketIOPacket  *packet,
                         GPtrArray      **attachments)
{
  g_autoptr(GPtrArray) out = NULL;
  g_autoptr(GString) payload = NULL;
  GString *text;
  gboolean binary;

  g_return_val_if_fail (packet != NULL, NULL);

  out = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  binary = packet->attachments->len > 0;

  if (packet->data != NULL)
    {
      payload = g_string_new (NULL);
      socket_io_json_write (payload, packet->data, packet->attachments, out);
    }

  text = g_string_sized_new ((payload ? payload->len : 0) + strlen (packet->nsp) + 32);
  if (binary)
    g_string_append_printf (text, "%d%u-",
                            packet->type == SOCKET_IO_PACKET_EVENT ? SOCKET_IO_PACKET_BINARY_EVENT
                                                                   : SOCKET_IO_PACKET_BINARY_ACK,
                            out->len);
  else
    g_string_append_c (text, '0' + packet->type);
  if (strcmp (packet->nsp, "/") != 0)
    {
      g_string_append (text, packet->nsp);
      g_string_append_c (text, ',');
    }
  if (packet->id != SOCKET_IO_NO_ACK_ID)
    g_string_append_printf (text, "%" G_GINT64_FORMAT, packet->id);
  if (payload != NULL)
    g_string_append_len (text, payload->str, payload->len);

  if (attachments != NULL)
    *attachments = g_steal_pointer (&out);
  return g_string_free_to_bytes (text);
}

/* --- equality --- */

static gboolean
node_equal (JsonNode  *a,
            GPtrArray *a_attachments,
            JsonNode  *b,
            GPtrArray *b_attachments)
{
  gint64 na, nb;

  if (a == NULL || b == NULL)
    return a == b;
  if (a_attachments != NULL && a_attachments->len > 0 &&
      socket_io_json_is_placeholder (a, &na) && na < a_attachments->len)
    return b_attachments != NULL && socket_io_json_is_placeholder (b, &nb) && nb < b_attachments->len &&
           g_bytes_equal (a_attachments->pdata[na], b_attachments->pdata[nb]);
  if (json_node_get_node_type (a) != json_node_get_node_type (b))
    return FALSE;
  switch (json_node_get_node_type (a))
    {
    case JSON_NODE_NULL:
      return TRUE;
    case JSON_NODE_VALUE:
      {
        GType ta = json_node_get_value_type (a), tb = json_node_get_value_type (b);

        if ((ta == G_TYPE_INT64 || ta == G_TYPE_DOUBLE) && (tb == G_TYPE_INT64 || tb == G_TYPE_DOUBLE))
          {
            if (ta == G_TYPE_INT64 && tb == G_TYPE_INT64)
              return json_node_get_int (a) == json_node_get_int (b);
            return json_node_get_double (a) == json_node_get_double (b);
          }
        if (ta != tb)
          return FALSE;
        if (ta == G_TYPE_BOOLEAN)
          return json_node_get_boolean (a) == json_node_get_boolean (b);
        if (ta == G_TYPE_STRING)
          return g_strcmp0 (json_node_get_string (a), json_node_get_string (b)) == 0;
        return FALSE;
      }
    case JSON_NODE_ARRAY:
      {
        JsonArray *x = json_node_get_array (a), *y = json_node_get_array (b);
        guint i;

        if (json_array_get_length (x) != json_array_get_length (y))
          return FALSE;
        for (i = 0; i < json_array_get_length (x); i++)
          if (!node_equal (json_array_get_element (x, i), a_attachments,
                           json_array_get_element (y, i), b_attachments))
            return FALSE;
        return TRUE;
      }
    case JSON_NODE_OBJECT:
      {
        JsonObject *x = json_node_get_object (a), *y = json_node_get_object (b);
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;

        if (json_object_get_size (x) != json_object_get_size (y))
          return FALSE;
        json_object_iter_init (&iter, x);
        while (json_object_iter_next (&iter, &name, &member))
          if (!json_object_has_member (y, name) ||
              !node_equal (member, a_attachments, json_object_get_member (y, name), b_attachments))
            return FALSE;
        return TRUE;
      }
    }
  return FALSE;
}

/**
 * socket_io_json_node_equal:
 *
 * Whether two JSON values are equal as JavaScript sees them: numbers by
 * value (int 1 equals double 1.0), object members in any order.
 */
gboolean
socket_io_json_node_equal (JsonNode *a,
                           JsonNode *b)
{
  return node_equal (a, NULL, b, NULL);
}

/**
 * socket_io_packet_equal:
 *
 * Whether two packets are the same packet: same type, namespace, ack id,
 * equal payloads in which placeholders are compared by the bytes of the
 * attachments they stand for (so numbering does not matter).
 */
gboolean
socket_io_packet_equal (SocketIOPacket *a,
                        SocketIOPacket *b)
{
  return a->type == b->type && strcmp (a->nsp, b->nsp) == 0 && a->id == b->id &&
         a->attachments->len == b->attachments->len &&
         node_equal (a->data, a->attachments, b->data, b->attachments);
}

/* --- decoding --- */

SocketIODecoder *
socket_io_decoder_new (SocketIOProtocol protocol)
{
  SocketIODecoder *self;

  g_return_val_if_fail (protocol == SOCKET_IO_PROTOCOL_V4 || protocol == SOCKET_IO_PROTOCOL_V5, NULL);

  self = g_new0 (SocketIODecoder, 1);
  self->protocol = protocol;
  self->max_attachments = SOCKET_IO_DEFAULT_MAX_ATTACHMENTS;
  self->max_attachment_bytes = SOCKET_IO_DEFAULT_MAX_ATTACHMENT_BYTES;
  self->max_depth = SOCKET_IO_DEFAULT_MAX_DEPTH;
  self->max_tree_bytes = SOCKET_IO_DEFAULT_MAX_TREE_BYTES;
  return self;
}

void
socket_io_decoder_free (SocketIODecoder *self)
{
  if (self == NULL)
    return;
  socket_io_decoder_reset (self);
  g_free (self);
}

/* At most @max_attachments binary messages per packet (socket.io-parser's
 * maxAttachments, default 10). */
void
socket_io_decoder_set_max_attachments (SocketIODecoder *self,
                                       guint            max_attachments)
{
  self->max_attachments = max_attachments;
}

/* At most @max_bytes in the attachments of one packet (their sum). */
void
socket_io_decoder_set_max_attachment_bytes (SocketIODecoder *self,
                                            gsize            max_bytes)
{
  self->max_attachment_bytes = max_bytes;
}

/* At most @max_depth nested arrays and objects in a payload (1 to
 * SOCKET_IO_JSON_MAX_DEPTH: json-glib's parser recurses). */
void
socket_io_decoder_set_max_depth (SocketIODecoder *self,
                                 guint            max_depth)
{
  g_return_if_fail (max_depth >= 1 && max_depth <= SOCKET_IO_JSON_MAX_DEPTH);
  self->max_depth = max_depth;
}

/* At most @max_bytes (estimated, see socketio-json-private.h) for the
 * payload tree of one packet. */
void
socket_io_decoder_set_max_tree_bytes (SocketIODecoder *self,
                                      gsize            max_bytes)
{
  self->max_tree_bytes = max_bytes;
}

/* Attachments the pending binary packet still waits for (0: none pending). */
guint
socket_io_decoder_get_missing_attachments (SocketIODecoder *self)
{
  return self->pending ? self->expected - self->pending->attachments->len : 0;
}

/* Bytes of attachments held for the pending packet. */
gsize
socket_io_decoder_get_pending_bytes (SocketIODecoder *self)
{
  return self->pending_bytes;
}

/* Drops the pending packet, if any. */
void
socket_io_decoder_reset (SocketIODecoder *self)
{
  g_clear_pointer (&self->pending, socket_io_packet_unref);
  self->expected = 0;
  self->pending_bytes = 0;
}

G_GNUC_PRINTF (3, 4)
static gboolean
parse_error (GError     **error,
             gsize        offset,
             const char  *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE,
               "%s at byte offset %" G_GSIZE_FORMAT, message, offset);
  return FALSE;
}

static gboolean
decode_text (SocketIODecoder  *self,
             const char       *text,
             gsize             length,
             SocketIOPacket  **packet,
             GError          **error)
{
  SocketIOPacketType type;
  guint n_attachments = 0;
  gboolean binary;
  g_autofree char *nsp = NULL;
  gint64 id = SOCKET_IO_NO_ACK_ID;
  g_autoptr(JsonNode) data = NULL;
  const char *end, *problem;
  gsize i = 1, payload_at;

  if (!g_utf8_validate_len (text, length, &end))
    return parse_error (error, end - text, "Invalid UTF-8 or NUL in a text message");
  if (length == 0)
    return parse_error (error, 0, "Empty packet");
  if (text[0] < '0' || text[0] > '6')
    return parse_error (error, 0, "Unknown packet type “%c”", g_ascii_isprint (text[0]) ? text[0] : '?');
  type = text[0] - '0';
  binary = type == SOCKET_IO_PACKET_BINARY_EVENT || type == SOCKET_IO_PACKET_BINARY_ACK;

  if (binary)
    {
      guint64 n = 0;

      if (i >= length || !g_ascii_isdigit (text[i]))
        return parse_error (error, i, "Missing attachment count");
      for (; i < length && g_ascii_isdigit (text[i]); i++)
        {
          n = n * 10 + (text[i] - '0');
          if (n > self->max_attachments)
            return parse_error (error, i, "More than %u attachments", self->max_attachments);
        }
      if (i >= length || text[i] != '-')
        return parse_error (error, i, "Attachment count not followed by “-”");
      if (n == 0)
        return parse_error (error, i, "Binary packet without attachments");
      n_attachments = n;
      i++;
      type = type == SOCKET_IO_PACKET_BINARY_EVENT ? SOCKET_IO_PACKET_EVENT : SOCKET_IO_PACKET_ACK;
    }

  if (i < length && text[i] == '/')
    {
      const char *comma = memchr (text + i, ',', length - i);
      gsize stop = comma ? (gsize) (comma - text) : length;

      nsp = g_strndup (text + i, stop - i);
      i = comma ? stop + 1 : stop;
    }
  else
    nsp = g_strdup ("/");

  if (i < length && g_ascii_isdigit (text[i]))
    {
      gsize start = i;

      if (type != SOCKET_IO_PACKET_EVENT && type != SOCKET_IO_PACKET_ACK)
        return parse_error (error, i, "Ack id on a packet of type %d", type);
      id = 0;
      for (; i < length && g_ascii_isdigit (text[i]); i++)
        {
          id = id * 10 + (text[i] - '0');
          if (id > SOCKET_IO_MAX_ACK_ID)
            return parse_error (error, start, "Ack id over 2^53 - 1");
        }
    }
  if (type == SOCKET_IO_PACKET_ACK && id == SOCKET_IO_NO_ACK_ID)
    return parse_error (error, i, "ACK without an id");

  payload_at = i;
  if (i < length)
    {
      SocketIOJsonLimits limits = { self->max_depth, self->max_tree_bytes, n_attachments };

      if (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')
        return parse_error (error, i, "Payload starts with whitespace");
      data = socket_io_json_parse (text + i, length - i, i, &limits, error);
      if (data == NULL)
        return FALSE;
      if (JSON_NODE_HOLDS_NULL (data))
        return parse_error (error, i, "Payload is null");
    }
  else if (n_attachments > 0)
    return parse_error (error, i, "Attachments announced without a payload");

  problem = check_payload (type, data, self->protocol);
  if (problem != NULL)
    return parse_error (error, payload_at, "%s", problem);

  *packet = packet_alloc (type, g_steal_pointer (&nsp), id, g_steal_pointer (&data));
  self->expected = n_attachments;
  return TRUE;
}

/**
 * socket_io_decoder_feed_text:
 * @self: a decoder
 * @text: an Engine.IO text message, without its "4"
 * @length: bytes of @text
 * @packet: (out) (transfer full) (nullable): the packet when complete;
 *   %NULL when it waits for attachments (feed the next binary messages)
 * @error: return location for a %SOCKET_IO_ERROR_PARSE error
 *
 * Decodes one text message. On error the decoder drops any pending packet
 * (the connection should be closed: the reference server closes it).
 *
 * Returns: %TRUE on success
 */
gboolean
socket_io_decoder_feed_text (SocketIODecoder  *self,
                             const char       *text,
                             gsize             length,
                             SocketIOPacket  **packet,
                             GError          **error)
{
  SocketIOPacket *decoded = NULL;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (text != NULL || length == 0, FALSE);
  g_return_val_if_fail (packet != NULL, FALSE);

  *packet = NULL;
  if (self->pending != NULL)
    {
      guint missing = socket_io_decoder_get_missing_attachments (self);

      socket_io_decoder_reset (self);
      return parse_error (error, 0, "Text message while %u attachment%s still expected",
                          missing, missing == 1 ? " is" : "s are");
    }
  if (!decode_text (self, text ? text : "", length, &decoded, error))
    {
      socket_io_decoder_reset (self);
      return FALSE;
    }
  if (self->expected > 0)
    self->pending = decoded;
  else
    *packet = decoded;
  return TRUE;
}

/**
 * socket_io_decoder_feed_binary:
 * @self: a decoder
 * @data: an Engine.IO binary message (a ref is taken)
 * @packet: (out) (transfer full) (nullable): the packet when this was its
 *   last attachment, else %NULL
 * @error: return location for a %SOCKET_IO_ERROR_PARSE error
 *
 * Adds an attachment to the pending binary packet. A binary message with
 * no packet pending, or attachments over the byte bound, is an error (and
 * drops the pending packet).
 *
 * Returns: %TRUE on success
 */
gboolean
socket_io_decoder_feed_binary (SocketIODecoder  *self,
                               GBytes           *data,
                               SocketIOPacket  **packet,
                               GError          **error)
{
  gsize size;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (data != NULL, FALSE);
  g_return_val_if_fail (packet != NULL, FALSE);

  *packet = NULL;
  if (self->pending == NULL)
    return parse_error (error, 0, "Binary message while no packet expects attachments");
  size = g_bytes_get_size (data);
  if (size > self->max_attachment_bytes - self->pending_bytes)
    {
      socket_io_decoder_reset (self);
      return parse_error (error, 0, "Attachments of one packet over %" G_GSIZE_FORMAT " bytes",
                          self->max_attachment_bytes);
    }
  self->pending_bytes += size;
  g_ptr_array_add (self->pending->attachments, g_bytes_ref (data));
  if (self->pending->attachments->len == self->expected)
    {
      *packet = g_steal_pointer (&self->pending);
      self->expected = 0;
      self->pending_bytes = 0;
    }
  return TRUE;
}
