/* socketio-json.c: JSON as socket.io-parser reads and writes it
 *
 * Which JSON code is ours, and why (json-glib 1.6.6, Debian 12, measured):
 *
 * Reader: json-glib's JsonParser builds the tree, behind check_text(), a
 * non-allocating, iterative RFC 8259 validator of the untrusted text.
 * check_text() exists because JsonParser alone is unsafe on it:
 * - it recurses without a nesting limit: 80,000 nested "[" overflow an
 *   8 MiB stack (a segfault), so depth is bounded here before it runs;
 * - it cannot bound memory: the tree is charged here, before it exists;
 * - it truncates strings at a \u0000 escape (JsonNode strings are
 *   NUL-terminated), and JSON.parse() gives a lone UTF-16 unit for a lone
 *   surrogate escape, which UTF-8 cannot hold: both are refused here;
 * - it accepts what JSON.parse() refuses: comments, 'single quotes', hex
 *   (0x10), leading zeros (01), "1." and ".5", raw control characters in
 *   strings, unknown escapes ("\x" gives "x"), malformed \u escapes
 *   ("\u004G"), a byte order mark, and data after the value ("[1][]"
 *   parses as [1]); all are refused here;
 * - it wraps integer literals beyond int64 silently
 *   (100000000000000000000 reads as -1): integers JavaScript cannot hold
 *   exactly (beyond ±2^53) are handed to it as "N.0", so they become the
 *   correctly rounded double JSON.parse() gives;
 * - its JsonObject keys members on g_str_hash(), unseeded DJB
 *   (h = 33 * h + c): "Ez" and "FY" hash alike, and so do the 2^k names
 *   made of k such blocks. Building an object of n names of one hash
 *   takes n^2 / 2 string compares: 24,000 of them (one 840 KB message)
 *   took 7 s of CPU, where distinct names take 0.04 s. So check_text()
 *   hashes every member name as json-glib will store it (decoded, UTF-8)
 *   and refuses an object with more than MAX_NAMES_PER_HASH names of one
 *   hash (duplicates count: JSON.stringify() never writes them; names
 *   collide by chance with probability about n^2 / 2^33), or names of
 *   distinct hashes that crowd one bucket of the tables GLib would build
 *   (60,000 of those, found offline once, took 3.8 s for 900 KB).
 * Errors check_text() finds carry the byte offset of the problem; JsonParser
 * then never fails on the text (it is stricter), and if it does its message
 * is passed on at the payload's offset. Placeholders are checked on the
 * tree (their errors are at the payload's offset).
 *
 * Writer: ours, because JsonGenerator writes invalid JSON for values a
 * packet may hold: doubles whose "%.17g" has an exponent and no "." get
 * ".0" appended (1e21 is written 1e+21.0; 919 of the 5,653 doubles DeK,
 * D in 1..9, are), infinities and NaN are written inf.0 and nan.0, and
 * U+001F is written unescaped. The writer is small: strings escaped as
 * JSON.stringify() escapes them, numbers by GLib (g_ascii_formatd(), the
 * fewest of 15, 16 or 17 significant digits that read back as the same
 * double; non-finite ones as null, as JSON.stringify()), members in
 * insertion order. Its output is valid JSON that any parser reads back to
 * the same values; it is not byte for byte JSON.stringify()'s (that
 * writes 1e20 as 100000000000000000000, and array-index member names
 * first).
 *
 * SPDX-License-Identifier: MIT
 */
#include "socketio-json-private.h"
#include "socketio-error-private.h"

#include <math.h>
#include <string.h>

#define MAX_SAFE_INTEGER G_GINT64_CONSTANT (9007199254740992)  /* 2^53 */

/* Member names of one g_str_hash() value allowed in one object, and of
 * one bucket of the tables json-glib builds (see buckets_crowded()). */
#define MAX_NAMES_PER_HASH 16
#define MAX_NAMES_PER_BUCKET 32

typedef struct {
  const char               *text;
  gsize                     length;
  gsize                     pos;
  gsize                     base;
  const SocketIOJsonLimits *limits;
  gsize                     charged;
  GArray                   *unsafe_ints;   /* gsize: ends of integer literals
                                            * beyond ±2^53, or NULL */
  GError                  **error;
  /* g_str_hash() of the member names of the open objects: in
   * @names_inline until it is full, then on the heap. */
  guint32                  *names;
  guint                     n_names;
  guint                     names_size;
  guint32                   names_inline[128];
} Check;

G_GNUC_PRINTF (3, 4)
static gboolean
fail (Check      *c,
      gsize       at,
      const char *format,
      ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (c->error, SOCKET_IO_ERROR, SOCKET_IO_ERROR_PARSE,
               "%s at byte offset %" G_GSIZE_FORMAT, message, c->base + at);
  return FALSE;
}

static gboolean
charge (Check *c,
        gsize  bytes)
{
  if (bytes > c->limits->max_tree_bytes - MIN (c->charged, c->limits->max_tree_bytes))
    return fail (c, c->pos, "Decoded JSON would take more than %" G_GSIZE_FORMAT " bytes",
                 c->limits->max_tree_bytes);
  c->charged += bytes;
  return TRUE;
}

static inline void
skip_ws (Check *c)
{
  while (c->pos < c->length &&
         (c->text[c->pos] == ' ' || c->text[c->pos] == '\t' ||
          c->text[c->pos] == '\n' || c->text[c->pos] == '\r'))
    c->pos++;
}

static inline int
peek (Check *c)
{
  return c->pos < c->length ? (guchar) c->text[c->pos] : -1;
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

/* g_str_hash() (GLib 2.x: h = 33 * h + c over the bytes as signed
 * chars, from 5381), one byte at a time. */
#define STR_HASH_INIT 5381u

static inline guint32
str_hash_byte (guint32 h,
               guchar  byte)
{
  return (h << 5) + h + (guint32) (signed char) byte;
}

static inline guint32
str_hash_unichar (guint32   h,
                  gunichar  ch)
{
  char utf8[6];
  int n = g_unichar_to_utf8 (ch, utf8);

  for (int k = 0; k < n; k++)
    h = str_hash_byte (h, (guchar) utf8[k]);
  return h;
}

/* At the opening quote: checks the string and charges what JsonParser
 * will allocate for it (its decoded bytes and a NUL, plus @extra). With
 * @hash, also gives g_str_hash() of the decoded string (as json-glib
 * stores it: UTF-8). */
static gboolean
check_string (Check   *c,
              gsize    extra,
              guint32 *hash)
{
  gsize open = c->pos;
  gsize i = open + 1;
  gsize decoded = 0;
  guint32 h = STR_HASH_INIT;

  while (i < c->length)
    {
      guchar ch = c->text[i];

      if (ch == '"')
        {
          c->pos = i + 1;
          if (hash != NULL)
            *hash = h;
          return charge (c, decoded + 1 + extra);
        }
      if (ch < 0x20)
        return fail (c, i, "Unescaped control character U+%04X in a JSON string", ch);
      if (ch != '\\')
        {
          h = str_hash_byte (h, ch);
          decoded++;
          i++;
          continue;
        }
      if (i + 1 >= c->length)
        break;
      switch (c->text[i + 1])
        {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
          {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";

            h = str_hash_byte (h, to[strchr (from, c->text[i + 1]) - from]);
          }
          decoded++;
          i += 2;
          break;
        case 'u':
          {
            int unit = i + 6 <= c->length ? hex4 (c->text + i + 2) : -1;

            if (unit < 0)
              return fail (c, i, "Malformed \\u escape in a JSON string");
            if (unit >= 0xDC00 && unit <= 0xDFFF)
              return fail (c, i, "Lone surrogate \\u%04X in a JSON string", (guint) unit);
            if (unit >= 0xD800 && unit <= 0xDBFF)
              {
                int low = -1;

                if (i + 12 <= c->length && c->text[i + 6] == '\\' && c->text[i + 7] == 'u')
                  low = hex4 (c->text + i + 8);
                if (low < 0xDC00 || low > 0xDFFF)
                  return fail (c, i, "Lone surrogate \\u%04X in a JSON string", (guint) unit);
                h = str_hash_unichar (h, 0x10000 + (((gunichar) unit - 0xD800) << 10) + ((gunichar) low - 0xDC00));
                decoded += 4;
                i += 12;
              }
            else
              {
                if (unit == 0)
                  return fail (c, i, "U+0000 in a JSON string is not supported");
                h = str_hash_unichar (h, (gunichar) unit);
                decoded += unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
                i += 6;
              }
          }
          break;
        default:
          return fail (c, i, "Invalid escape in a JSON string");
        }
    }
  return fail (c, open, "Unterminated JSON string");
}

static gboolean
check_number (Check *c)
{
  gsize start = c->pos;
  gsize i = start;
  gboolean integral = TRUE;
  gsize digits;

  if (c->text[i] == '-')
    i++;
  if (i >= c->length || !g_ascii_isdigit (c->text[i]))
    return fail (c, i, "Malformed JSON number");
  if (c->text[i] == '0')
    i++;
  else
    while (i < c->length && g_ascii_isdigit (c->text[i]))
      i++;
  digits = i - start - (c->text[start] == '-');
  if (i < c->length && c->text[i] == '.')
    {
      integral = FALSE;
      i++;
      if (i >= c->length || !g_ascii_isdigit (c->text[i]))
        return fail (c, i, "Malformed JSON number");
      while (i < c->length && g_ascii_isdigit (c->text[i]))
        i++;
    }
  if (i < c->length && (c->text[i] == 'e' || c->text[i] == 'E'))
    {
      integral = FALSE;
      i++;
      if (i < c->length && (c->text[i] == '+' || c->text[i] == '-'))
        i++;
      if (i >= c->length || !g_ascii_isdigit (c->text[i]))
        return fail (c, i, "Malformed JSON number");
      while (i < c->length && g_ascii_isdigit (c->text[i]))
        i++;
    }
  c->pos = i;
  if (integral && digits >= 16)
    {
      gboolean unsafe = digits > 16;

      if (!unsafe)
        {
          gint64 value = 0;
          gsize k;

          for (k = i - 16; k < i; k++)
            value = value * 10 + (c->text[k] - '0');
          unsafe = value > MAX_SAFE_INTEGER;
        }
      if (unsafe)
        {
          if (c->unsafe_ints == NULL)
            c->unsafe_ints = g_array_new (FALSE, FALSE, sizeof (gsize));
          g_array_append_val (c->unsafe_ints, i);
        }
    }
  return charge (c, SOCKET_IO_JSON_VALUE_COST);
}

static gboolean
check_literal (Check      *c,
               const char *word)
{
  gsize n = strlen (word);

  if (c->length - c->pos < n || memcmp (c->text + c->pos, word, n) != 0)
    return fail (c, c->pos, "Invalid JSON literal");
  c->pos += n;
  return charge (c, SOCKET_IO_JSON_VALUE_COST);
}

static void
add_name_hash (Check   *c,
               guint32  hash)
{
  if (c->names == NULL)
    {
      c->names = c->names_inline;
      c->names_size = G_N_ELEMENTS (c->names_inline);
    }
  if (c->n_names == c->names_size)
    {
      c->names_size *= 2;
      if (c->names == c->names_inline)
        {
          c->names = g_new (guint32, c->names_size);
          memcpy (c->names, c->names_inline, sizeof c->names_inline);
        }
      else
        c->names = g_renew (guint32, c->names, c->names_size);
    }
  c->names[c->n_names++] = hash;
}

static void
check_clear_names (Check *c)
{
  if (c->names != c->names_inline)
    g_free (c->names);
  c->names = NULL;
}

static int
compare_guint32 (gconstpointer a,
                 gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;

  return x < y ? -1 : x > y;
}

/* GLib 2.x's GHashTable: a table of 2^shift slots starts the probe of a
 * hash at (hash * 11) % glib_primes[shift] (the largest prime below
 * 2^shift), and holds fewer entries than slots. */
static const guint32 glib_primes[] = {
  1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
  131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393,
  67108859, 134217689, 268435399, 536870909, 1073741789, 2147483647,
};

/* Whether names of distinct hashes crowd one bucket of a table json-glib
 * would build for these @n names (@hashes in insertion order): for each
 * table size from 32 slots on, the first min(n, size) names (those a
 * table of that size holds) may put at most MAX_NAMES_PER_BUCKET in one
 * bucket; random names put about 5. */
static gboolean
buckets_crowded (const guint32 *hashes,
                 guint          n)
{
  g_autofree guint8 *counts = NULL;
  gsize largest = 32;
  gboolean crowded = FALSE;

  while (largest < 2 * (gsize) n && largest < (1u << 31))
    largest *= 2;
  counts = g_malloc0 (largest);
  for (guint shift = 5; shift < G_N_ELEMENTS (glib_primes) && !crowded; shift++)
    {
      guint32 size = 1u << shift, prime = glib_primes[shift];
      guint m = MIN (n, size);

      for (guint i = 0; i < m && !crowded; i++)
        {
          guint32 b = (guint32) (hashes[i] * 11u) % prime;

          crowded = ++counts[b] > MAX_NAMES_PER_BUCKET;
        }
      for (guint i = 0; i < m; i++)
        counts[(guint32) (hashes[i] * 11u) % prime] = 0;
      if (size >= 2 * (gsize) n)
        break;
    }
  return crowded;
}

/* At the "}" of an object whose member names' hashes are
 * @c->names[@first ..]: refuses more than MAX_NAMES_PER_HASH of
 * one hash, or names that crowd a bucket of json-glib's table (counting
 * and sorting: no hash table an attacker could flood), then forgets
 * them. */
static gboolean
check_name_hashes (Check *c,
                   guint  first)
{
  guint32 *hashes = c->names + first;
  guint n = c->n_names - first;
  guint run = 1;

  if (n > MAX_NAMES_PER_HASH && buckets_crowded (hashes, n))
    return fail (c, c->pos, "JSON object with more than %u member names in one hash bucket",
                 MAX_NAMES_PER_BUCKET);
  if (n > MAX_NAMES_PER_HASH)
    {
      qsort (hashes, n, sizeof (guint32), compare_guint32);
      for (guint k = 1; k < n; k++)
        {
          run = hashes[k] == hashes[k - 1] ? run + 1 : 1;
          if (run > MAX_NAMES_PER_HASH)
            return fail (c, c->pos, "JSON object with more than %u member names of one hash",
                         MAX_NAMES_PER_HASH);
        }
    }
  c->n_names = first;
  return TRUE;
}

/* Exactly one JSON value, whitespace around it allowed. Iterative: the
 * open containers are @stack[0 .. depth - 1] ('[' or '{'); the names of
 * the open object at depth d have their hashes in @c->names from
 * @names_from[d] on. */
static gboolean
check_text (Check *c)
{
  char stack[SOCKET_IO_JSON_MAX_DEPTH];
  guint names_from[SOCKET_IO_JSON_MAX_DEPTH];
  guint depth = 0;
  guint32 name_hash;
  int ch;

value:
  skip_ws (c);
  ch = peek (c);
  switch (ch)
    {
    case '[':
    case '{':
      if (depth + 1 > c->limits->max_depth)
        return fail (c, c->pos, "JSON nested deeper than %u levels", c->limits->max_depth);
      if (!charge (c, ch == '[' ? SOCKET_IO_JSON_ARRAY_COST : SOCKET_IO_JSON_OBJECT_COST))
        return FALSE;
      if (ch == '{')
        {
          names_from[depth] = c->n_names;
        }
      stack[depth++] = ch;
      c->pos++;
      skip_ws (c);
      if (peek (c) == (ch == '[' ? ']' : '}'))
        {
          c->pos++;
          depth--;
          goto next;
        }
      if (ch == '{')
        goto member;
      if (!charge (c, SOCKET_IO_JSON_ELEMENT_COST))
        return FALSE;
      goto value;
    case '"':
      if (!check_string (c, SOCKET_IO_JSON_VALUE_COST + SOCKET_IO_JSON_STRING_COST, NULL))
        return FALSE;
      goto next;
    case 't':
    case 'f':
    case 'n':
      if (!check_literal (c, ch == 't' ? "true" : ch == 'f' ? "false" : "null"))
        return FALSE;
      goto next;
    case -1:
      return fail (c, c->pos, "Unexpected end of JSON");
    default:
      if (ch != '-' && !g_ascii_isdigit (ch))
        return fail (c, c->pos, "Unexpected character in JSON");
      if (!check_number (c))
        return FALSE;
      goto next;
    }

member:
  skip_ws (c);
  if (peek (c) != '"')
    return fail (c, c->pos, peek (c) < 0 ? "Unterminated JSON object" : "Expected a member name in a JSON object");
  if (!check_string (c, SOCKET_IO_JSON_MEMBER_COST, &name_hash))
    return FALSE;
  add_name_hash (c, name_hash);
  skip_ws (c);
  if (peek (c) != ':')
    return fail (c, c->pos, "Expected “:” in a JSON object");
  c->pos++;
  goto value;

next:
  if (depth == 0)
    {
      skip_ws (c);
      if (c->pos != c->length)
        return fail (c, c->pos, "Unexpected data after the JSON value");
      return TRUE;
    }
  skip_ws (c);
  ch = peek (c);
  if (ch == ',')
    {
      c->pos++;
      if (stack[depth - 1] == '{')
        goto member;
      if (!charge (c, SOCKET_IO_JSON_ELEMENT_COST))
        return FALSE;
      goto value;
    }
  if (ch == (stack[depth - 1] == '[' ? ']' : '}'))
    {
      if (ch == '}' && !check_name_hashes (c, names_from[depth - 1]))
        return FALSE;
      c->pos++;
      depth--;
      goto next;
    }
  if (stack[depth - 1] == '[')
    return fail (c, c->pos, ch < 0 ? "Unterminated JSON array" : "Expected “,” or “]” in a JSON array");
  return fail (c, c->pos, ch < 0 ? "Unterminated JSON object" : "Expected “,” or “}” in a JSON object");
}

/* Placeholders in a packet with attachments: every object with
 * "_placeholder": true is exactly {"_placeholder": true, "num": N},
 * 0 <= N < n_attachments, each N once (@seen). Errors are at the
 * payload's offset (the tree does not know offsets). */
static gboolean
check_placeholders (Check    *c,
                    JsonNode *node,
                    guint8   *seen)
{
  switch (json_node_get_node_type (node))
    {
    case JSON_NODE_ARRAY:
      {
        JsonArray *array = json_node_get_array (node);
        guint i, len = json_array_get_length (array);

        for (i = 0; i < len; i++)
          if (!check_placeholders (c, json_array_get_element (array, i), seen))
            return FALSE;
        return TRUE;
      }
    case JSON_NODE_OBJECT:
      {
        JsonObject *object = json_node_get_object (node);
        JsonNode *flag = json_object_get_member (object, "_placeholder");
        JsonObjectIter iter;
        JsonNode *member, *num;
        gint64 n;

        if (flag == NULL || json_node_get_value_type (flag) != G_TYPE_BOOLEAN ||
            !json_node_get_boolean (flag))
          {
            json_object_iter_init (&iter, object);
            while (json_object_iter_next (&iter, NULL, &member))
              if (!check_placeholders (c, member, seen))
                return FALSE;
            return TRUE;
          }
        num = json_object_get_member (object, "num");
        if (json_object_get_size (object) != 2 || num == NULL ||
            json_node_get_value_type (num) != G_TYPE_INT64)
          return fail (c, 0, "Malformed binary placeholder (want {\"_placeholder\":true,\"num\":N})");
        n = json_node_get_int (num);
        if (n < 0 || n >= c->limits->n_attachments)
          return fail (c, 0, "Placeholder %" G_GINT64_FORMAT " out of range (%u attachments)",
                       n, c->limits->n_attachments);
        if (seen[n])
          return fail (c, 0, "Placeholder %" G_GINT64_FORMAT " used twice", n);
        seen[n] = 1;
        return TRUE;
      }
    default:
      return TRUE;
    }
}

/* One JsonParser per thread, reused: creating one per message costs about
 * as much as parsing a short event (measured with bench-sio-codec). It
 * keeps nothing between messages (the root is stolen). */
static GPrivate thread_parser = G_PRIVATE_INIT (g_object_unref);

static JsonParser *
get_thread_parser (void)
{
  JsonParser *parser = g_private_get (&thread_parser);

  if (parser == NULL)
    {
      parser = json_parser_new_immutable ();
      g_private_set (&thread_parser, parser);
    }
  return parser;
}

/**
 * socket_io_json_parse:
 * @text: valid UTF-8 (not checked here)
 * @length: bytes of @text
 * @base_offset: offset of @text in the message, for error messages
 * @limits: bounds, and the attachment count for placeholders
 * @error: return location for a %SOCKET_IO_ERROR_PARSE error
 *
 * Parses exactly one JSON value (whitespace around it allowed), as
 * JSON.parse() does, within @limits. Integer literals within ±2^53
 * become int64 nodes, other numbers doubles. With @limits->n_attachments
 * > 0, every object with "_placeholder": true must be a placeholder
 * {"_placeholder":true,"num":N} with N in range, each N exactly once.
 *
 * Any thread may call it (each uses its own JsonParser).
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
  Check c = { text, length, 0, base_offset, limits, 0, NULL, error };
  JsonParser *parser;
  g_autoptr(GString) rewritten = NULL;
  g_autoptr(GError) internal = NULL;
  g_autoptr(JsonNode) root = NULL;

  g_return_val_if_fail (limits->max_depth <= SOCKET_IO_JSON_MAX_DEPTH, NULL);

  if (!check_text (&c))
    {
      g_clear_pointer (&c.unsafe_ints, g_array_unref);
      check_clear_names (&c);
      return NULL;
    }
  check_clear_names (&c);
  if (c.unsafe_ints != NULL)
    {
      gsize from = 0;
      guint i;

      rewritten = g_string_sized_new (length + 2 * c.unsafe_ints->len);
      for (i = 0; i < c.unsafe_ints->len; i++)
        {
          gsize end = g_array_index (c.unsafe_ints, gsize, i);

          g_string_append_len (rewritten, text + from, end - from);
          g_string_append (rewritten, ".0");
          from = end;
        }
      g_string_append_len (rewritten, text + from, length - from);
      g_array_unref (c.unsafe_ints);
      text = rewritten->str;
      length = rewritten->len;
    }

  parser = get_thread_parser ();
  if (!json_parser_load_from_data (parser, text, length, &internal))
    {
      fail (&c, 0, "%s", internal->message);
      return NULL;
    }
  root = json_parser_steal_root (parser);
  if (root == NULL)
    {
      fail (&c, 0, "Unexpected end of JSON");
      return NULL;
    }

  if (limits->n_attachments > 0)
    {
      g_autofree guint8 *seen = g_malloc0 (limits->n_attachments);
      guint i;

      if (!check_placeholders (&c, root, seen))
        return NULL;
      for (i = 0; i < limits->n_attachments; i++)
        if (!seen[i])
          {
            fail (&c, 0, "Attachment %u announced but no placeholder refers to it", i);
            return NULL;
          }
    }
  return g_steal_pointer (&root);
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

/* A finite double with the fewest of 15, 16 or 17 significant digits that
 * read back as @value (17 always do), by GLib; -0 as 0 and non-finite
 * values as null, as JSON.stringify(). */
void
socket_io_json_write_double (GString *out,
                             double   value)
{
  static const char * const formats[] = { "%.15g", "%.16g", "%.17g" };
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  guint i;

  if (!isfinite (value))
    {
      g_string_append (out, "null");
      return;
    }
  if (value == 0)
    {
      g_string_append_c (out, '0');
      return;
    }
  for (i = 0; i < G_N_ELEMENTS (formats) - 1; i++)
    if (g_ascii_strtod (g_ascii_formatd (buf, sizeof buf, formats[i], value), NULL) == value)
      break;
  g_string_append (out, g_ascii_formatd (buf, sizeof buf, formats[i], value));
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
        g_string_append_c (out, '{');
        json_object_iter_init_ordered (&iter, json_node_get_object (node));
        while (json_object_iter_next_ordered (&iter, &name, &member))
          {
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
 * Appends @node as JSON (see the top of this file). Does not check @node
 * (the packet constructor did): depth is bounded by
 * %SOCKET_IO_JSON_MAX_DEPTH there.
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
