/* engineio-enums.c: packet type, protocol version and transport names
 *
 * Bytes in, packets out: no threads, no sockets, no main context. Every
 * decoder treats its input as hostile: it never reads out of bounds, never
 * trusts a length before checking it against the bytes that are left, and
 * reports every failure as an %ENGINE_IO_ERROR_PARSE error naming the
 * problem and its byte offset in the frame or payload.
 *
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "engineio-codec-internal.h"

static const char * const packet_type_names[] = {
  "open", "close", "ping", "pong", "message", "upgrade", "noop",
};

/* ------------------------------------------------------------------ */
/* Enumerations                                                         */
/* ------------------------------------------------------------------ */

/**
 * engine_io_packet_type_to_string:
 * @type: a packet type
 *
 * The name of @type as the reference implementation spells it: `open`,
 * `close`, `ping`, `pong`, `message`, `upgrade` or `noop`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_packet_type_to_string (EngineIOPacketType type)
{
  g_return_val_if_fail (PACKET_TYPE_IS_VALID (type), NULL);

  return packet_type_names[type];
}

/**
 * engine_io_packet_type_from_string:
 * @str: a packet type name, as engine_io_packet_type_to_string() returns
 * @out_type: (out) (optional): the packet type
 *
 * Parses a packet type name. The match is exact (case-sensitive).
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str names a packet type
 */
gboolean
engine_io_packet_type_from_string (const char         *str,
                                   EngineIOPacketType *out_type)
{
  guint i;

  g_return_val_if_fail (str != NULL, FALSE);

  for (i = 0; i < G_N_ELEMENTS (packet_type_names); i++)
    {
      if (strcmp (str, packet_type_names[i]) == 0)
        {
          if (out_type != NULL)
            *out_type = (EngineIOPacketType) i;
          return TRUE;
        }
    }

  return FALSE;
}

/**
 * engine_io_protocol_version_to_string:
 * @version: a protocol version
 *
 * The value of the `EIO` query parameter for @version: `"3"` or `"4"`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_protocol_version_to_string (EngineIOProtocolVersion version)
{
  g_return_val_if_fail (VERSION_IS_VALID (version), NULL);

  return version == ENGINE_IO_PROTOCOL_V3 ? "3" : "4";
}

/**
 * engine_io_protocol_version_from_string:
 * @str: the value of an `EIO` query parameter
 * @out_version: (out) (optional): the protocol version
 *
 * Parses an `EIO` value. Only exactly `"3"` and `"4"` are accepted:
 * `"04"`, `"4 "`, `"5"` or the empty string are not, and the caller must
 * answer them with "Unsupported protocol version" rather than guess.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str is a supported protocol version
 */
gboolean
engine_io_protocol_version_from_string (const char              *str,
                                        EngineIOProtocolVersion *out_version)
{
  EngineIOProtocolVersion version;

  g_return_val_if_fail (str != NULL, FALSE);

  if (strcmp (str, "3") == 0)
    version = ENGINE_IO_PROTOCOL_V3;
  else if (strcmp (str, "4") == 0)
    version = ENGINE_IO_PROTOCOL_V4;
  else
    return FALSE;

  if (out_version != NULL)
    *out_version = version;
  return TRUE;
}

/**
 * engine_io_transport_type_to_string:
 * @transport: a transport
 *
 * The value of the `transport` query parameter for @transport: `polling`
 * or `websocket`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: (transfer none): a static string
 */
const char *
engine_io_transport_type_to_string (EngineIOTransportType transport)
{
  switch (transport)
    {
    case ENGINE_IO_TRANSPORT_POLLING:
      return "polling";
    case ENGINE_IO_TRANSPORT_WEBSOCKET:
      return "websocket";
    default:
      g_return_val_if_reached (NULL);
    }
}

/**
 * engine_io_transport_type_from_string:
 * @str: the value of a `transport` query parameter
 * @out_transport: (out) (optional): the transport
 *
 * Parses a transport name: exactly `polling` or `websocket`.
 *
 * Thread-safe: may be called from any thread.
 *
 * Returns: %TRUE if @str names a transport
 */
gboolean
engine_io_transport_type_from_string (const char            *str,
                                      EngineIOTransportType *out_transport)
{
  EngineIOTransportType transport;

  g_return_val_if_fail (str != NULL, FALSE);

  if (strcmp (str, "polling") == 0)
    transport = ENGINE_IO_TRANSPORT_POLLING;
  else if (strcmp (str, "websocket") == 0)
    transport = ENGINE_IO_TRANSPORT_WEBSOCKET;
  else
    return FALSE;

  if (out_transport != NULL)
    *out_transport = transport;
  return TRUE;
}
