/* socketio-json.c: JSON as socket.io-parser reads and writes it
 *
 * Reader: RFC 8259, nothing more (no comments, hex, NaN, single quotes,
 * trailing commas: JSON.parse() refuses them too), recursive descent with
 * a depth bound checked before each descent, and every allocation charged
 * to an estimated byte budget before it is made. The input must be valid
 * UTF-8 (the packet decoder checks the whole message first).
 *
 * Numbers follow JavaScript: an integer literal whose value is within
 * ±2^53 becomes an int64 node, every other number a double (so values
 * JavaScript cannot hold exactly are rounded as JSON.parse() rounds them).
 * Strings are UTF-8: a \u escape of a lone surrogate (JSON.parse() gives a
 * lone UTF-16 unit) or of U+0000 (JsonNode strings are NUL-terminated) is
 * refused rather than altered.
 *
 * Writer: JSON.stringify()'s output. Strings escape ", \, and C0 controls
 * (\b \f \n \r \t, else \u00xx), nothing else; doubles are written as
 * Number.prototype.toString() does (shortest round-trip digits, exponent
 * outside [1e-7, 1e21)), non-finite ones as null; object members in
 * the order of a JavaScript object built from them: array-index names
 * ("0", "1", ... below 2^32 - 1) ascending first, then the others in
 * insertion order (so {"b":0,"1":0} is written {"1":0,"b":0}, as Node
 * does).
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-json-private.h"
#include "socketio-error-private.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SAFE_INTEGER G_GINT64_CONSTANT (9007199254740992)  /* 2^53 */

typedef struct {
  const char               *text;
  gsize                     length;
  gsize                     pos;
  gsize                     base;
  const SocketIOJsonLimits *limits;
  gsize                     charged;
  guint8                   *seen;          /* n_attachments flags, or NULL */
  GError                  **error;
} Reader;

G_GNUC_PRINTF (3, 4)
static gboolean
fail (Reader     *r,
      gsize       at,
      const char *format,
      ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (r->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE,
               "%s at byte offset %" G_GSIZE_FORMAT, message, r->base + at);
  return FALSE;
}

static gboolean
charge (Reader *r,
        gsize   bytes)
{
  if (bytes > r->limits->max_tree_bytes - MIN (r->charged, r->limits->max_tree_bytes))
    return fail (r, r->pos, "Decoded JSON would take more than %" G_GSIZE_FORMAT " bytes",
                 r->limits->max_tree_bytes);
  r->charged += bytes;
  return TRUE;
}

static inline gboolean
is_ws (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void
skip_ws (Reader *r)
{
  while (r->pos < r->length && is_ws (r->text[r->pos]))
    r->pos++;
}

static inline int
peek (Reader *r)
{
  return r->pos < r->length ? (guchar) r->text[r->pos] : -1;
}

static int
hex4 (const char *p)
{
  int value = 0;
  int i;

  for (i = 0; i < 4; i++)
    {
      int d = g_ascii_xdigit_value (p[i]);

      if (d < 0)
        return -1;
      value = value * 16 + d;
    }
  return value;
}

/* At the opening quote. Returns a new string, or NULL with the error set. */
static char *
read_string (Reader *r)
{
  gsize start = r->pos + 1;
  gsize i = start;
  GString *s;

  /* Fast path: no escape. */
  while (i < r->length)
    {
      guchar c = r->text[i];

      if (c == '"')
        {
          if (!charge (r, i - start + 1))
            return NULL;
          r->pos = i + 1;
          return g_strndup (r->text + start, i - start);
        }
      if (c == '\\')
        break;
      if (c < 0x20)
        {
          fail (r, i, "Unescaped control character U+%04X in a JSON string", c);
          return NULL;
        }
      i++;
    }
  if (i >= r->length)
    {
      fail (r, r->pos, "Unterminated JSON string");
      return NULL;
    }

  /* With escapes: build it (never longer than its input), then charge
   * what it takes. */
  s = g_string_sized_new (i - start + 16);
  g_string_append_len (s, r->text + start, i - start);
  while (i < r->length)
    {
      guchar c = r->text[i];

      if (c == '"')
        {
          if (!charge (r, s->len + 1))
            goto error;
          r->pos = i + 1;
          return g_string_free (s, FALSE);
        }
      if (c < 0x20)
        {
          fail (r, i, "Unescaped control character U+%04X in a JSON string", c);
          goto error;
        }
      if (c != '\\')
        {
          g_string_append_c (s, c);
          i++;
          continue;
        }
      if (i + 1 >= r->length)
        break;
      switch (r->text[i + 1])
        {
        case '"': g_string_append_c (s, '"'); i += 2; break;
        case '\\': g_string_append_c (s, '\\'); i += 2; break;
        case '/': g_string_append_c (s, '/'); i += 2; break;
        case 'b': g_string_append_c (s, '\b'); i += 2; break;
        case 'f': g_string_append_c (s, '\f'); i += 2; break;
        case 'n': g_string_append_c (s, '\n'); i += 2; break;
        case 'r': g_string_append_c (s, '\r'); i += 2; break;
        case 't': g_string_append_c (s, '\t'); i += 2; break;
        case 'u':
          {
            int unit = i + 6 <= r->length ? hex4 (r->text + i + 2) : -1;
            gunichar cp;

            if (unit < 0)
              {
                fail (r, i, "Malformed \\u escape in a JSON string");
                goto error;
              }
            if (unit >= 0xDC00 && unit <= 0xDFFF)
              {
                fail (r, i, "Lone surrogate \\u%04X in a JSON string", (guint) unit);
                goto error;
              }
            if (unit >= 0xD800 && unit <= 0xDBFF)
              {
                int low = -1;

                if (i + 12 <= r->length && r->text[i + 6] == '\\' && r->text[i + 7] == 'u')
                  low = hex4 (r->text + i + 8);
                if (low < 0xDC00 || low > 0xDFFF)
                  {
                    fail (r, i, "Lone surrogate \\u%04X in a JSON string", (guint) unit);
                    goto error;
                  }
                cp = 0x10000 + (((gunichar) unit - 0xD800) << 10) + ((gunichar) low - 0xDC00);
                i += 12;
              }
            else
              {
                if (unit == 0)
                  {
                    fail (r, i, "U+0000 in a JSON string is not supported");
                    goto error;
                  }
                cp = (gunichar) unit;
                i += 6;
              }
            g_string_append_unichar (s, cp);
          }
          break;
        default:
          fail (r, i, "Invalid escape in a JSON string");
          goto error;
        }
    }
  fail (r, r->pos, "Unterminated JSON string");

error:
  g_string_free (s, TRUE);
  return NULL;
}

static JsonNode *
read_number (Reader *r)
{
  gsize start = r->pos;
  gsize i = start;
  gboolean integral = TRUE;
  JsonNode *node;

  if (i < r->length && r->text[i] == '-')
    i++;
  if (i >= r->length || !g_ascii_isdigit (r->text[i]))
    {
      fail (r, i, "Malformed JSON number");
      return NULL;
    }
  if (r->text[i] == '0')
    i++;
  else
    while (i < r->length && g_ascii_isdigit (r->text[i]))
      i++;
  if (i < r->length && r->text[i] == '.')
    {
      integral = FALSE;
      i++;
      if (i >= r->length || !g_ascii_isdigit (r->text[i]))
        {
          fail (r, i, "Malformed JSON number");
          return NULL;
        }
      while (i < r->length && g_ascii_isdigit (r->text[i]))
        i++;
    }
  if (i < r->length && (r->text[i] == 'e' || r->text[i] == 'E'))
    {
      integral = FALSE;
      i++;
      if (i < r->length && (r->text[i] == '+' || r->text[i] == '-'))
        i++;
      if (i >= r->length || !g_ascii_isdigit (r->text[i]))
        {
          fail (r, i, "Malformed JSON number");
          return NULL;
        }
      while (i < r->length && g_ascii_isdigit (r->text[i]))
        i++;
    }
  if (!charge (r, SOCKET_IO_JSON_VALUE_COST))
    return NULL;
  r->pos = i;

  node = json_node_new (JSON_NODE_VALUE);
  /* At most 16 digits: no overflow. */
  if (integral && i - start - (r->text[start] == '-') <= 16)
    {
      gint64 value = 0;
      gsize k;

      for (k = start + (r->text[start] == '-'); k < i; k++)
        value = value * 10 + (r->text[k] - '0');
      if (value <= MAX_SAFE_INTEGER)
        {
          json_node_set_int (node, r->text[start] == '-' ? -value : value);
          return node;
        }
    }

  {
    char small[64];
    g_autofree char *big = NULL;
    char *copy = small;

    if (i - start >= sizeof small)
      copy = big = g_malloc (i - start + 1);
    memcpy (copy, r->text + start, i - start);
    copy[i - start] = '\0';
    /* Correctly rounded (glibc's strtod), as JSON.parse(); ±inf on overflow. */
    json_node_set_double (node, g_ascii_strtod (copy, NULL));
  }
  return node;
}

static JsonNode *read_value (Reader *r, guint depth);

/* An object with "_placeholder": true in a packet that has attachments:
 * exactly {"_placeholder": true, "num": N}, 0 <= N < n_attachments, each
 * N once (checked here, at the object's offset). */
static gboolean
check_placeholder (Reader     *r,
                   JsonObject *object,
                   gsize       at)
{
  JsonNode *flag = json_object_get_member (object, "_placeholder");
  JsonNode *num;
  gint64 n;

  if (flag == NULL || json_node_get_value_type (flag) != G_TYPE_BOOLEAN ||
      !json_node_get_boolean (flag))
    return TRUE;  /* not a placeholder: data */

  num = json_object_get_member (object, "num");
  if (json_object_get_size (object) != 2 || num == NULL ||
      json_node_get_value_type (num) != G_TYPE_INT64)
    return fail (r, at, "Malformed binary placeholder (want {\"_placeholder\":true,\"num\":N})");
  n = json_node_get_int (num);
  if (n < 0 || n >= r->limits->n_attachments)
    return fail (r, at, "Placeholder %" G_GINT64_FORMAT " out of range (%u attachments)",
                 n, r->limits->n_attachments);
  if (r->seen[n])
    return fail (r, at, "Placeholder %" G_GINT64_FORMAT " used twice", n);
  r->seen[n] = 1;
  return TRUE;
}

static JsonNode *
read_object (Reader *r,
             guint   depth)
{
  gsize open = r->pos;
  g_autoptr(JsonObject) object = NULL;
  JsonNode *node;

  if (!charge (r, SOCKET_IO_JSON_OBJECT_COST))
    return NULL;
  object = json_object_new ();
  r->pos++;
  skip_ws (r);
  if (peek (r) == '}')
    r->pos++;
  else
    for (;;)
      {
        g_autofree char *key = NULL;
        JsonNode *value;

        skip_ws (r);
        if (peek (r) != '"')
          {
            fail (r, r->pos, peek (r) < 0 ? "Unterminated JSON object" : "Expected a member name in a JSON object");
            return NULL;
          }
        key = read_string (r);
        if (key == NULL)
          return NULL;
        skip_ws (r);
        if (peek (r) != ':')
          {
            fail (r, r->pos, "Expected “:” in a JSON object");
            return NULL;
          }
        r->pos++;
        if (!charge (r, SOCKET_IO_JSON_MEMBER_COST))
          return NULL;
        value = read_value (r, depth);
        if (value == NULL)
          return NULL;
        /* A repeated name keeps its first position and takes the last
         * value, as in JavaScript objects. */
        json_object_set_member (object, key, value);
        skip_ws (r);
        if (peek (r) == ',')
          {
            r->pos++;
            continue;
          }
        if (peek (r) == '}')
          {
            r->pos++;
            break;
          }
        fail (r, r->pos, peek (r) < 0 ? "Unterminated JSON object" : "Expected “,” or “}” in a JSON object");
        return NULL;
      }

  if (r->seen != NULL && !check_placeholder (r, object, open))
    return NULL;
  node = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (node, g_steal_pointer (&object));
  return node;
}

static JsonNode *
read_array (Reader *r,
            guint   depth)
{
  g_autoptr(JsonArray) array = NULL;
  JsonNode *node;

  if (!charge (r, SOCKET_IO_JSON_ARRAY_COST))
    return NULL;
  array = json_array_new ();
  r->pos++;
  skip_ws (r);
  if (peek (r) == ']')
    r->pos++;
  else
    for (;;)
      {
        JsonNode *value;

        if (!charge (r, SOCKET_IO_JSON_ELEMENT_COST))
          return NULL;
        value = read_value (r, depth);
        if (value == NULL)
          return NULL;
        json_array_add_element (array, value);
        skip_ws (r);
        if (peek (r) == ',')
          {
            r->pos++;
            continue;
          }
        if (peek (r) == ']')
          {
            r->pos++;
            break;
          }
        fail (r, r->pos, peek (r) < 0 ? "Unterminated JSON array" : "Expected “,” or “]” in a JSON array");
        return NULL;
      }

  node = json_node_new (JSON_NODE_ARRAY);
  json_node_take_array (node, g_steal_pointer (&array));
  return node;
}

static gboolean
read_literal (Reader     *r,
              const char *word)
{
  gsize n = strlen (word);

  if (r->length - r->pos < n || memcmp (r->text + r->pos, word, n) != 0)
    return fail (r, r->pos, "Invalid JSON literal");
  r->pos += n;
  return charge (r, SOCKET_IO_JSON_VALUE_COST);
}

/* @depth: levels of the enclosing containers. */
static JsonNode *
read_value (Reader *r,
            guint   depth)
{
  JsonNode *node;
  int c;

  skip_ws (r);
  c = peek (r);
  switch (c)
    {
    case '{':
    case '[':
      if (depth + 1 > r->limits->max_depth)
        {
          fail (r, r->pos, "JSON nested deeper than %u levels", r->limits->max_depth);
          return NULL;
        }
      return c == '{' ? read_object (r, depth + 1) : read_array (r, depth + 1);
    case '"':
      {
        char *str = read_string (r);

        if (str == NULL || !charge (r, SOCKET_IO_JSON_VALUE_COST + SOCKET_IO_JSON_STRING_COST))
          {
            g_free (str);
            return NULL;
          }
        node = json_node_new (JSON_NODE_VALUE);
        json_node_set_string (node, str);
        g_free (str);
        return node;
      }
    case 't':
    case 'f':
      if (!read_literal (r, c == 't' ? "true" : "false"))
        return NULL;
      node = json_node_new (JSON_NODE_VALUE);
      json_node_set_boolean (node, c == 't');
      return node;
    case 'n':
      if (!read_literal (r, "null"))
        return NULL;
      return json_node_new (JSON_NODE_NULL);
    case -1:
      fail (r, r->pos, "Unexpected end of JSON");
      return NULL;
    default:
      if (c == '-' || g_ascii_isdigit (c))
        return read_number (r);
      fail (r, r->pos, "Unexpected character in JSON");
      return NULL;
    }
}

/**
 * socket_io_json_parse:
 * @text: valid UTF-8 (not checked here)
 * @length: bytes of @text
 * @base_offset: offset of @text in the message, for error messages
 * @limits: bounds, and the attachment count for placeholders
 * @error: return location for a %SOCKET_IO_ERROR_PARSE error
 *
 * Parses exactly one JSON value (whitespace around it allowed). With
 * @limits->n_attachments > 0, every object with "_placeholder": true must
 * be a placeholder {"_placeholder":true,"num":N} with N in range, each N
 * exactly once.
 *
 * Returns: (transfer full): a sealed tree, or %NULL with @error set
 */
JsonNode *
socket_io_json_parse (const char               *text,
                      gsize                     length,
                      gsize                     base_offset,
                      const SocketIOJsonLimits *limits,
                      GError                  **error)
{
  g_autofree guint8 *seen = NULL;
  Reader r = { text, length, 0, base_offset, limits, 0, NULL, error };
  JsonNode *root;

  if (limits->n_attachments > 0)
    r.seen = seen = g_malloc0 (limits->n_attachments);
  root = read_value (&r, 0);
  if (root == NULL)
    return NULL;
  skip_ws (&r);
  if (r.pos != length)
    {
      json_node_unref (root);
      fail (&r, r.pos, "Unexpected data after the JSON value");
      return NULL;
    }
  if (seen != NULL)
    {
      guint i;

      for (i = 0; i < limits->n_attachments; i++)
        if (!seen[i])
          {
            json_node_unref (root);
            fail (&r, 0, "Attachment %u announced but no placeholder refers to it", i);
            return NULL;
          }
    }
  json_node_seal (root);
  return root;
}

/**
 * socket_io_json_is_placeholder:
 * @node: (nullable): a node
 * @num: (out) (optional): the placeholder's number
 *
 * Whether @node is exactly {"_placeholder": true, "num": N} with an
 * integer N >= 0 (what the reader and the writer treat as an attachment
 * reference in a packet that has attachments).
 */
gboolean
socket_io_json_is_placeholder (JsonNode *node,
                               gint64   *num)
{
  JsonObject *object;
  JsonNode *flag, *n;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return FALSE;
  object = json_node_get_object (node);
  if (json_object_get_size (object) != 2)
    return FALSE;
  flag = json_object_get_member (object, "_placeholder");
  n = json_object_get_member (object, "num");
  if (flag == NULL || n == NULL ||
      json_node_get_value_type (flag) != G_TYPE_BOOLEAN || !json_node_get_boolean (flag) ||
      json_node_get_value_type (n) != G_TYPE_INT64 || json_node_get_int (n) < 0)
    return FALSE;
  if (num != NULL)
    *num = json_node_get_int (n);
  return TRUE;
}

/* --- writer --- */

void
socket_io_json_write_string (GString    *out,
                             const char *str)
{
  const char *run = str;
  const char *p;

  g_string_append_c (out, '"');
  for (p = str; *p != '\0'; p++)
    {
      guchar c = *p;
      const char *escape = NULL;
      char buf[8];

      if (c >= 0x20 && c != '"' && c != '\\')
        continue;
      switch (c)
        {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        default:
          g_snprintf (buf, sizeof buf, "\\u%04x", c);
          escape = buf;
        }
      g_string_append_len (out, run, p - run);
      g_string_append (out, escape);
      run = p + 1;
    }
  g_string_append_len (out, run, p - run);
  g_string_append_c (out, '"');
}

/* Reads back "0.DIGITSe(EXPONENT)" (the value is 0.DIGITS × 10^EXPONENT). */
static double
read_digits (const char *digits,
             int         k,
             int         exponent)
{
  char buf[48];

  g_snprintf (buf, sizeof buf, "0.%.*se%d", k, digits, exponent);
  return g_ascii_strtod (buf, NULL);
}

/* Number.prototype.toString(): the fewest digits that read back as
 * @value, the closest such if several (ECMA-262 Number::toString),
 * placed as JavaScript places them. For each length, the correctly
 * rounded digits, or failing that their neighbour on the other side of
 * @value (the nearest may miss the round-trip interval where a neighbour
 * hits it). */
void
socket_io_json_write_double (GString *out,
                             double   value)
{
  char buf[40];
  char digits[24];
  int k = 0, n = 0, precision;

  if (!isfinite (value))
    {
      g_string_append (out, "null");
      return;
    }
  if (value == 0)
    {
      g_string_append_c (out, '0');   /* -0 too */
      return;
    }
  if (value < 0)
    {
      g_string_append_c (out, '-');
      value = -value;
    }

  for (precision = 1; precision <= 17; precision++)
    {
      const char *p;
      double back;
      int i;

      g_snprintf (buf, sizeof buf, "%.*e", precision - 1, value);
      k = 0;
      for (p = buf; *p != 'e'; p++)
        if (g_ascii_isdigit (*p))
          digits[k++] = *p;
      n = atoi (p + 1) + 1;          /* value = 0.DIGITS × 10^n */
      back = read_digits (digits, k, n);
      if (back == value || precision == 17)
        break;

      /* The neighbour: one unit in the last digit towards @value. */
      if (back < value)
        {
          for (i = k - 1; i >= 0 && digits[i] == '9'; i--)
            digits[i] = '0';
          if (i < 0)
            continue;                /* 99..9 + 1: a shorter number, tried already */
          digits[i]++;
        }
      else
        {
          for (i = k - 1; i >= 0 && digits[i] == '0'; i--)
            digits[i] = '9';
          if (i < 0 || (i == 0 && digits[0] == '1'))
            continue;                /* 10..0 - 1: a shorter number, tried already */
          digits[i]--;
        }
      if (read_digits (digits, k, n) == value)
        break;
    }
  while (k > 1 && digits[k - 1] == '0')
    k--;
  digits[k] = '\0';

  if (k <= n && n <= 21)
    {
      g_string_append_len (out, digits, k);
      for (; n > k; n--)
        g_string_append_c (out, '0');
    }
  else if (0 < n && n <= 21)
    {
      g_string_append_len (out, digits, n);
      g_string_append_c (out, '.');
      g_string_append (out, digits + n);
    }
  else if (-6 < n && n <= 0)
    {
      g_string_append (out, "0.");
      for (; n < 0; n++)
        g_string_append_c (out, '0');
      g_string_append (out, digits);
    }
  else
    {
      g_string_append_c (out, digits[0]);
      if (k > 1)
        {
          g_string_append_c (out, '.');
          g_string_append (out, digits + 1);
        }
      g_string_append_printf (out, "e%c%d", n - 1 >= 0 ? '+' : '-', ABS (n - 1));
    }
}

/* An array index as JavaScript objects order them: "0" or a decimal
 * without leading zero below 2^32 - 1. */
static gboolean
is_array_index (const char *name,
                guint32    *index)
{
  guint64 v = 0;
  const char *p;

  if (name[0] == '\0' || (name[0] == '0' && name[1] != '\0'))
    return FALSE;
  for (p = name; *p != '\0'; p++)
    {
      if (!g_ascii_isdigit (*p) || p - name >= 10)
        return FALSE;
      v = v * 10 + (*p - '0');
    }
  if (v >= G_MAXUINT32)
    return FALSE;
  *index = v;
  return TRUE;
}

typedef struct {
  guint32     index;
  const char *name;
  JsonNode   *member;
} IndexMember;

static int
compare_index (gconstpointer a,
               gconstpointer b)
{
  guint32 x = ((const IndexMember *) a)->index, y = ((const IndexMember *) b)->index;

  return x < y ? -1 : x > y;
}

static void
write_node (GString   *out,
            JsonNode  *node,
            GPtrArray *attachments,
            GPtrArray *out_attachments)
{
  if (node == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_NULL:
      g_string_append (out, "null");
      break;
    case JSON_NODE_VALUE:
      switch (json_node_get_value_type (node))
        {
        case G_TYPE_INT64:
          g_string_append_printf (out, "%" G_GINT64_FORMAT, json_node_get_int (node));
          break;
        case G_TYPE_DOUBLE:
          socket_io_json_write_double (out, json_node_get_double (node));
          break;
        case G_TYPE_BOOLEAN:
          g_string_append (out, json_node_get_boolean (node) ? "true" : "false");
          break;
        case G_TYPE_STRING:
          if (json_node_get_string (node) != NULL)
            socket_io_json_write_string (out, json_node_get_string (node));
          else
            g_string_append (out, "null");
          break;
        default:
          g_string_append (out, "null");
        }
      break;
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint i, n = json_array_get_length (array);

        g_string_append_c (out, '[');
        for (i = 0; i < n; i++)
          {
            if (i > 0)
              g_string_append_c (out, ',');
            write_node (out, json_array_get_element (array, i), attachments, out_attachments);
          }
        g_string_append_c (out, ']');
      }
      break;
    case JSON_NODE_OBJECT:
      {
        JsonObjectIter iter;
        const char *name;
        JsonNode *member;
        gboolean first = TRUE;
        GArray *indexed = NULL;
        gint64 num;

        if (attachments != NULL && attachments->len > 0 &&
            socket_io_json_is_placeholder (node, &num) && num < attachments->len)
          {
            /* Numbered in the order written, as socket.io-parser's
             * deconstructPacket() numbers buffers. */
            g_string_append_printf (out, "{\"_placeholder\":true,\"num\":%u}", out_attachments->len);
            g_ptr_array_add (out_attachments, g_bytes_ref (attachments->pdata[num]));
            break;
          }
        /* JavaScript's order: array-index names ascending, then the
         * others in insertion order. */
        g_string_append_c (out, '{');
        json_object_iter_init_ordered (&iter, json_node_get_object (node));
        while (json_object_iter_next_ordered (&iter, &name, &member))
          {
            IndexMember im = { 0, name, member };

            if (is_array_index (name, &im.index))
              {
                if (indexed == NULL)
                  indexed = g_array_new (FALSE, FALSE, sizeof (IndexMember));
                g_array_append_val (indexed, im);
              }
          }
        if (indexed != NULL)
          {
            guint i;

            g_array_sort (indexed, compare_index);
            for (i = 0; i < indexed->len; i++)
              {
                IndexMember *im = &g_array_index (indexed, IndexMember, i);

                if (!first)
                  g_string_append_c (out, ',');
                first = FALSE;
                socket_io_json_write_string (out, im->name);
                g_string_append_c (out, ':');
                write_node (out, im->member, attachments, out_attachments);
              }
            g_array_unref (indexed);
          }
        json_object_iter_init_ordered (&iter, json_node_get_object (node));
        while (json_object_iter_next_ordered (&iter, &name, &member))
          {
            guint32 index;

            if (is_array_index (name, &index))
              continue;
            if (!first)
              g_string_append_c (out, ',');
            first = FALSE;
            socket_io_json_write_string (out, name);
            g_string_append_c (out, ':');
            write_node (out, member, attachments, out_attachments);
          }
        g_string_append_c (out, '}');
      }
      break;
    }
}

/**
 * socket_io_json_write:
 * @out: where to append
 * @node: (nullable): the value (%NULL writes null)
 * @attachments: (nullable) (element-type GBytes): the packet's attachments
 * @out_attachments: (element-type GBytes): with @attachments non-empty,
 *   receives a ref of the attachment of each placeholder written, in the
 *   order written; placeholders are renumbered 0, 1, 2... in that order
 *
 * Appends @node as JSON.stringify() writes it. Does not check @node
 * (the packet constructor did): depth is bounded by
 * %SOCKET_IO_JSON_MAX_WRITE_DEPTH there.
 */
void
socket_io_json_write (GString   *out,
                      JsonNode  *node,
                      GPtrArray *attachments,
                      GPtrArray *out_attachments)
{
  g_return_if_fail (attachments == NULL || attachments->len == 0 || out_attachments != NULL);

  write_node (out, node, attachments, out_attachments);
}
