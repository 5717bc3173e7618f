/* fuzz-request: sequences of HTTP requests (and WebSocket frames on the
 * connections they upgrade) through the protocol core, without sockets
 * but the socketpairs of upgraded connections. See fuzz-engine.h for the
 * harness and the invariants checked, and README.md for the input format:
 *
 *   records separated by "\n~~\n"; an optional first record
 *   "CFG <letters>" configures the server; then each record is
 *
 *     METHOD TARGET [FLAGS]\n Header: value\n ... \n\n BODY     an HTTP request
 *     WS N KIND\n PAYLOAD                                        a client frame on upgraded connection N
 *     TICK                                                       every session's next timer fires
 *     APP ACTION                                                 the application sends or closes
 *
 *   "@S" anywhere is replaced by the id of the newest session, "@P" by the
 *   one before it.
 *
 * SPDX-License-Identifier: MIT
 */
#include "fuzz-engine.h"

#define SEPARATOR "\n~~\n"
#define MAX_RECORDS 64

static guint32
parse_config (const char *letters)
{
  guint32 cfg = 0;

  for (const char *p = letters; *p; p++)
    switch (*p)
      {
      case '3': cfg |= CFG_EIO3; break;
      case 'o': cfg |= CFG_CORS_LIST; break;
      case '*': cfg |= CFG_CORS_ANY; break;
      case 'C': cfg |= CFG_CORS_CREDENTIALS; break;
      case 'k': cfg |= CFG_COOKIE; break;
      case 'm': cfg |= CFG_SMALL_PAYLOAD; break;
      case 's': cfg |= CFG_MAX_SESSIONS; break;
      case 'u': cfg |= CFG_NO_UPGRADES; break;
      case 'p': cfg |= CFG_POLLING_ONLY; break;
      case 'w': cfg |= CFG_WEBSOCKET_ONLY; break;
      case 'M': cfg |= CFG_METRICS; break;
      case 'A': cfg |= CFG_ADMISSION; break;
      case 'e': cfg |= CFG_APP_ECHO; break;
      case 'g': cfg |= CFG_APP_GREET; break;
      case 'b': cfg |= CFG_APP_BYE; break;
      case 'h': cfg |= CFG_SMALL_HIGH_WATER; break;
      case 'd': cfg |= CFG_DROP_NEWEST; break;
      case 'q': cfg |= CFG_KEEP_QUEUING; break;
      case 'D': cfg |= CFG_DRAIN_HANDLER; break;
      case 'N': cfg |= CFG_NO_MESSAGE; break;
      case 'R': cfg |= CFG_RANDOM_SIDS; break;
      case 'O': cfg |= CFG_ORIGINS; break;
      case 'r': cfg |= CFG_MESSAGE_RATE; break;
      case 'H': cfg |= CFG_HANDSHAKE_RATE; break;
      case 'x': cfg |= CFG_RATE_DROP; break;
      default: break;
      }
  return cfg;
}

static const guint8 *
find_bytes (const guint8 *data,
            gsize         size,
            const char   *needle)
{
  gsize n = strlen (needle);

  for (gsize i = 0; i + n <= size; i++)
    if (memcmp (data + i, needle, n) == 0)
      return data + i;
  return NULL;
}

/* "@S" -> the newest session id, "@P" -> the one before. */
static GByteArray *
substitute (FuzzEngine   *e,
            const guint8 *data,
            gsize         size)
{
  GByteArray *out = g_byte_array_sized_new ((guint) size);

  for (gsize i = 0; i < size; i++)
    {
      if (data[i] == '@' && i + 1 < size && (data[i + 1] == 'S' || data[i + 1] == 'P'))
        {
          const char *sid = engine_sid (e, data[i + 1] == 'S' ? 0 : 1);
          g_byte_array_append (out, (const guint8 *) sid, (guint) strlen (sid));
          i++;
        }
      else
        g_byte_array_append (out, data + i, 1);
    }
  return out;
}

/* libmicrohttpd's unescaping: %XX, and '+' in arguments; the C string it
 * hands over ends at a decoded NUL. */
static char *
unescape (const char *s,
          gsize       len,
          gboolean    plus)
{
  GString *out = g_string_sized_new (len);
  char *result;

  for (gsize i = 0; i < len; i++)
    {
      if (s[i] == '%' && i + 2 < len && g_ascii_isxdigit (s[i + 1]) && g_ascii_isxdigit (s[i + 2]))
        {
          g_string_append_c (out, (char) (g_ascii_xdigit_value (s[i + 1]) * 16 + g_ascii_xdigit_value (s[i + 2])));
          i += 2;
        }
      else if (plus && s[i] == '+')
        g_string_append_c (out, ' ');
      else
        g_string_append_c (out, s[i]);
    }
  result = g_utf8_make_valid (out->str, -1);
  g_string_free (out, TRUE);
  return result;
}

static GHashTable *
parse_query (const char *query)
{
  GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) pairs = NULL;

  if (query == NULL || *query == '\0')
    return table;
  pairs = g_strsplit (query, "&", 32);
  for (guint i = 0; pairs[i] != NULL; i++)
    {
      const char *eq = strchr (pairs[i], '=');
      char *key, *value;

      if (pairs[i][0] == '\0')
        continue;
      if (eq != NULL)
        {
          key = unescape (pairs[i], (gsize) (eq - pairs[i]), TRUE);
          value = unescape (eq + 1, strlen (eq + 1), TRUE);
        }
      else
        {
          key = unescape (pairs[i], strlen (pairs[i]), TRUE);
          value = g_strdup ("");
        }
      g_hash_table_insert (table, key, value);
    }
  return table;
}

/* One line of @data from @pos; advances @pos past the newline. */
static char *
next_line (const guint8 *data,
           gsize         size,
           gsize        *pos)
{
  gsize start = *pos, end = start;
  char *line;

  if (data == NULL || start >= size)
    return g_strdup ("");
  while (end < size && data[end] != '\n')
    end++;
  *pos = end < size ? end + 1 : end;
  line = g_strndup ((const char *) data + start, end - start);  /* ends at a NUL byte too */
  g_strchomp (line);  /* a trailing \r */
  return line;
}

static void
http_record (FuzzEngine   *e,
             char        **tokens,
             const guint8 *data,
             gsize         size,
             gsize         pos)
{
  const char *method = tokens[0];
  const char *target = tokens[1] != NULL ? tokens[1] : "/";
  const char *flag_letters = tokens[1] != NULL && tokens[2] != NULL ? tokens[2] : "";
  const char *question = strchr (target, '?');
  g_autofree char *path = NULL;
  g_autoptr(GBytes) body = NULL;
  GHashTable *headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTable *query;
  guint flags = 0;

  if (method[0] == '\0')
    {
      g_hash_table_unref (headers);
      return;
    }

  for (const char *p = flag_letters; *p; p++)
    switch (*p)
      {
      case 'w': flags |= REQ_NO_DRAIN; break;
      case 'a': flags |= REQ_CLIENT_GONE; break;
      case 'n': flags |= REQ_NO_UPGRADE; break;
      case 'r': flags |= REQ_UPGRADE_FAILS; break;
      case 'x': flags |= REQ_SWITCH_FAILS; break;
      case 'g': flags |= REQ_BODY_CUT; break;
      default: break;
      }

  path = unescape (target, question ? (gsize) (question - target) : strlen (target), FALSE);
  query = parse_query (question ? question + 1 : NULL);

  /* Headers until an empty line; the rest is the body. */
  while (pos < size)
    {
      g_autofree char *line = next_line (data, size, &pos);
      const char *colon;

      if (line[0] == '\0')
        break;
      colon = strchr (line, ':');
      if (colon == NULL || colon == line)
        continue;
      {
        g_autofree char *name = g_strndup (line, (gsize) (colon - line));
        g_autofree char *value = g_strdup (colon + 1);
        g_strstrip (name);
        g_strstrip (value);
        if (name[0] == '\0')
          continue;
        g_hash_table_insert (headers, g_ascii_strdown (name, -1), g_utf8_make_valid (value, -1));
      }
    }
  body = g_bytes_new (data + pos, size - pos);

  engine_request (e, method, path, query, headers, body, NULL, flags);
  if (!(flags & REQ_NO_DRAIN))
    engine_drain (e);
}

static void
ws_record (FuzzEngine   *e,
           char        **tokens,
           const guint8 *payload,
           gsize         size)
{
  FuzzWsClient *c;
  const char *kind;
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  guint8 opcode;
  gboolean fin = TRUE, masked = TRUE, split = FALSE;
  guint32 key = 0;
  int len_mode = 0;
  guint8 rsv = 0;

  if (tokens[1] == NULL || tokens[2] == NULL || tokens[2][0] == '\0')
    return;
  c = engine_client (e, (guint) g_ascii_strtoull (tokens[1], NULL, 10));
  if (c == NULL || c->fd < 0)
    return;
  kind = tokens[2];

  switch (kind[0])
    {
    case 't': opcode = 0x1; break;
    case 'b': opcode = 0x2; break;
    case 'c': opcode = 0x8; break;
    case 'p': opcode = 0x9; break;
    case 'o': opcode = 0xA; break;
    case 'k': opcode = 0x0; break;
    case 'r':
      client_write (c, payload, size);
      engine_drain (e);
      return;
    case 'e':
      shutdown (c->fd, SHUT_WR);
      c->write_shut = TRUE;
      engine_drain (e);
      return;
    case 'x':
      client_close_fd (c);
      engine_drain (e);
      return;
    default:
      opcode = (guint8) (kind[0] & 0x0f);
      break;
    }
  for (const char *p = kind + 1; *p; p++)
    switch (*p)
      {
      case 'n': fin = FALSE; break;
      case 'u': masked = FALSE; break;
      case 'm': key = 0x37fa213d; break;
      case '1': len_mode = 1; break;
      case '8': len_mode = 2; break;
      case 'l': len_mode = 3; break;
      case 's': split = TRUE; break;
      case 'R': rsv = 0x40; break;
      default: break;
      }

  client_frame (frame, (fin ? 0x80 : 0) | rsv | opcode, masked, key, payload, size, len_mode);
  if (opcode == 0x8)
    client_note_close_sent (c, payload, size);
  if (split && frame->len > 1)
    {
      client_write (c, frame->data, frame->len / 2);
      engine_drain (e);
      client_write (c, frame->data + frame->len / 2, frame->len - frame->len / 2);
    }
  else
    client_write (c, frame->data, frame->len);
  engine_drain (e);
}

static void
app_record (FuzzEngine *e,
            const char *action)
{
  g_autoptr(GPtrArray) sockets = engine_io_server_get_sockets (e->server);
  g_autoptr(EngineIOSocket) newest = NULL;
  static const guint8 bytes[] = { 0xde, 0xad, 0x00, 0xbe, 0xef };

  if (action == NULL)
    return;
  newest = engine_io_server_lookup_socket (e->server, engine_sid (e, 0));

  switch (action[0])
    {
    case 's':
      for (guint i = 0; i < sockets->len; i++)
        engine_io_socket_send_text (g_ptr_array_index (sockets, i), "srv \xc3\xa9\n\"", NULL);
      break;
    case 'b':
      for (guint i = 0; i < sockets->len; i++)
        {
          g_autoptr(GBytes) data = g_bytes_new_static (bytes, sizeof bytes);
          engine_io_socket_send_binary (g_ptr_array_index (sockets, i), data, NULL);
        }
      break;
    case 'f':
      if (newest != NULL)
        for (int i = 0; i < 40; i++)
          engine_io_socket_send_text (newest, "flood flood flood flood flood flood", NULL);
      break;
    case 'c':
      if (newest != NULL)
        engine_io_socket_close (newest);
      break;
    case 'C':
      for (guint i = 0; i < sockets->len; i++)
        engine_io_socket_close (g_ptr_array_index (sockets, i));
      break;
    default:
      break;
    }
  engine_drain (e);
}

static void
run_record (FuzzEngine   *e,
            const guint8 *raw,
            gsize         raw_size)
{
  g_autoptr(GByteArray) buf = substitute (e, raw, raw_size);
  gsize pos = 0;
  g_autofree char *line = next_line (buf->data, buf->len, &pos);
  g_auto(GStrv) tokens = g_strsplit (line, " ", 4);

  if (tokens[0] == NULL)
    return;
  if (strcmp (tokens[0], "WS") == 0 || strcmp (tokens[0], "TICK") == 0 || strcmp (tokens[0], "APP") == 0)
    TRACE ("%s\n", line);
  if (strcmp (tokens[0], "WS") == 0)
    ws_record (e, tokens, buf->data + pos, buf->len - pos);
  else if (strcmp (tokens[0], "TICK") == 0)
    engine_tick (e);
  else if (strcmp (tokens[0], "APP") == 0)
    app_record (e, tokens[1]);
  else if (strcmp (tokens[0], "CFG") == 0)
    ;  /* only the first record configures */
  else
    http_record (e, tokens, buf->data, buf->len, pos);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  guint32 cfg = CFG_EIO3 | CFG_APP_ECHO | CFG_APP_BYE;
  FuzzEngine *e;
  const guint8 *p = data, *end = data + size;
  guint n = 0;

  if (size >= 4 && memcmp (data, "CFG", 3) == 0)
    {
      const guint8 *stop = find_bytes (data, size, SEPARATOR);
      g_autofree char *letters = g_strndup ((const char *) data + 3, (stop ? stop : end) - (data + 3));
      cfg = parse_config (letters);
      p = stop ? stop + strlen (SEPARATOR) : end;
    }

  e = engine_new (cfg);
  while (p < end && n++ < MAX_RECORDS)
    {
      const guint8 *stop = find_bytes (p, (gsize) (end - p), SEPARATOR);
      gsize len = stop ? (gsize) (stop - p) : (gsize) (end - p);

      run_record (e, p, len);
      p = stop ? stop + strlen (SEPARATOR) : end;
    }
  engine_free (e);
  return 0;
}
