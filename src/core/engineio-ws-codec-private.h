/* engineio-ws-codec-private.h: a sans-I/O RFC 6455 frame codec
 *
 * Server role: the decoder takes the client's bytes (masked frames) and
 * gives events (a complete data message, a ping, a pong, a close, or an
 * error with the close code to answer with); the encoder writes server
 * frame headers (unmasked) into a small caller buffer, so the caller sends
 * header and payload with one writev()/sendmsg() without copying the
 * payload.
 *
 * No sockets, no main context, no clock, no threads: a decoder is plain
 * state that one thread at a time drives. Nothing is allocated by an idle
 * decoder; a data message being received (or received in fragments) holds
 * a buffer that grows only as frame headers announce payload, bounded by
 * max_message, and is freed when the message has been delivered.
 *
 * Limits are enforced at the header: a data frame that would take its
 * message past max_message fails with 1009 before any payload byte is
 * read; control frames of more than 125 bytes or fragmented, reserved bits
 * (RSV1 is allowed only on the first frame of a data message, and only once
 * engine_io_ws_decoder_set_compressed() allowed it: permessage-deflate),
 * reserved opcodes, unmasked frames, a
 * continuation with nothing to continue and a new data frame inside a
 * fragmented message fail with 1002. Text (and close reasons) are validated
 * as UTF-8 as they arrive: an invalid sequence fails with 1007 on the feed
 * that brings its first bad byte; a message ending mid-character fails at
 * its last frame; a compressed message (RSV1) is not validated here (its
 * bytes are deflate data: the caller inflates, then validates). Close frames: a 1-byte payload or an invalid status code
 * (RFC 6455, 7.4) fail with 1002.
 *
 * SPDX-License-Identifier: MIT
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  ENGINE_IO_WS_OP_CONTINUATION = 0x0,
  ENGINE_IO_WS_OP_TEXT         = 0x1,
  ENGINE_IO_WS_OP_BINARY       = 0x2,
  ENGINE_IO_WS_OP_CLOSE        = 0x8,
  ENGINE_IO_WS_OP_PING         = 0x9,
  ENGINE_IO_WS_OP_PONG         = 0xA,
} EngineIOWsOpcode;

typedef enum
{
  ENGINE_IO_WS_EVENT_NONE = 0,  /* more input needed */
  ENGINE_IO_WS_EVENT_MESSAGE,   /* a complete data message (@binary, @compressed, @data, @size) */
  ENGINE_IO_WS_EVENT_PING,      /* @data, @size: the payload to echo in a pong */
  ENGINE_IO_WS_EVENT_PONG,
  ENGINE_IO_WS_EVENT_CLOSE,     /* @code (1005: none), @data/@size: the reason (UTF-8) */
  ENGINE_IO_WS_EVENT_ERROR,     /* @code: the close code to send (1002, 1007, 1009); @error_message */
} EngineIOWsEventType;

typedef struct
{
  EngineIOWsEventType  type;
  gboolean             binary;
  gboolean             compressed;     /* RSV1 was set: @data is deflate data (RFC 7692) */
  /* Valid until the next call on the decoder (it may point into the
   * caller's input buffer). */
  const guint8        *data;
  gsize                size;
  guint16              code;
  const char          *error_message;  /* static */
} EngineIOWsEvent;

typedef enum
{
  ENGINE_IO_WS_DEC_HEADER = 0,
  ENGINE_IO_WS_DEC_PAYLOAD,
  ENGINE_IO_WS_DEC_CLOSED,   /* a close frame was decoded: nothing more is read */
  ENGINE_IO_WS_DEC_FAILED,   /* an error was reported: nothing more is read */
} EngineIOWsDecoderState;

/* About 180 bytes, no allocation while idle. Zero-initialize, then
 * engine_io_ws_decoder_init(). */
typedef struct
{
  guint64                max_message;
  EngineIOWsDecoderState state;

  /* The frame being read. */
  guint8                 hdr[14];
  guint8                 hdr_len;
  guint8                 hdr_need;     /* 0: not known yet */
  guint8                 opcode;       /* of the frame */
  gboolean               fin;
  guint8                 mask[4];
  guint64                frame_len;
  guint64                frame_off;    /* payload bytes of the frame read */

  /* The data message being read (possibly in fragments). */
  gboolean               in_message;
  guint8                 msg_opcode;   /* TEXT or BINARY */
  guint32                utf8_state;
  guint8                *msg;          /* owned; NULL while nothing is buffered */
  gsize                  msg_len;
  gsize                  msg_cap;
  gboolean               msg_direct;   /* the current frame is delivered from the input */

  /* The control frame being read (at most 125 bytes). */
  guint8                 ctrl[125];
  guint8                 ctrl_len;

  /* permessage-deflate (bytes: they fit where padding was). */
  guint8                 msg_compressed; /* the message's first frame had RSV1 */
  guint8                 frame_rsv1;     /* the frame being read has RSV1 */
  guint8                 rsv1_allowed;   /* permessage-deflate was negotiated */

  gboolean               release_msg;  /* free @msg at the next call: it was delivered */

  /* Optional per-fragment cost (engine_io_ws_decoder_set_fragment_cost()). */
  guint32                frag_overhead;
  guint64                frag_allowance;
  guint64                msg_cost;
} EngineIOWsDecoder;

void     engine_io_ws_decoder_init     (EngineIOWsDecoder *dec,
                                        guint64            max_message);
void     engine_io_ws_decoder_clear    (EngineIOWsDecoder *dec);
/* Counts each data frame with a payload at its payload plus @overhead
 * against max_message plus @allowance, failing with 1009 past it (at the
 * header): bounds the frames a message may take (0: off, the default). */
void     engine_io_ws_decoder_set_fragment_cost (EngineIOWsDecoder *dec,
                                                 guint32            overhead,
                                                 guint64            allowance);
/* Allows RSV1 on the first frame of a data message (permessage-deflate
 * negotiated): such a message is delivered with @compressed set, not
 * UTF-8-validated, and may take max_message plus max_message / 64 plus 64
 * bytes (incompressible data grows a little). RSV1 on a continuation or
 * control frame stays a 1002 error. */
void     engine_io_ws_decoder_set_compressed (EngineIOWsDecoder *dec,
                                              gboolean           allowed);
/* Frees the buffer of a message just delivered (otherwise freed at the
 * next call): call it once done with a MESSAGE event's data, so that an
 * idle connection holds nothing. */
void     engine_io_ws_decoder_release  (EngineIOWsDecoder *dec);
/* Instead of engine_io_ws_decoder_release(): hands the caller the buffer
 * of the MESSAGE event just delivered (of @size bytes), with a NUL byte
 * after the message, to free with g_free(). NULL when that message was
 * not delivered from the decoder's own buffer (it was read in place from
 * the input); then release it as usual. */
guint8  *engine_io_ws_decoder_steal_message (EngineIOWsDecoder *dec,
                                             gsize              size);

/* Decodes from @data (which it may modify: payloads are unmasked in
 * place) until one event or the end of @data. Returns how many bytes it
 * consumed; @event->type is ENGINE_IO_WS_EVENT_NONE if it needs more.
 * Call again with the rest after an event. After a CLOSE or an ERROR
 * event, consumes nothing more. */
gsize    engine_io_ws_decoder_feed     (EngineIOWsDecoder *dec,
                                        guint8            *data,
                                        gsize              len,
                                        EngineIOWsEvent   *event);

/* Reading straight into the message: when the decoder is inside a data
 * frame's payload, returns where the next payload bytes go in the message
 * buffer and sets @n to how many of them the frame still has (0 and NULL
 * otherwise, or when fewer than @min_size bytes remain). Write (recv())
 * up to @n bytes there, then call engine_io_ws_decoder_payload_written()
 * with how many were written; it unmasks and validates them in place. */
guint8  *engine_io_ws_decoder_payload_space   (EngineIOWsDecoder *dec,
                                               gsize              min_size,
                                               gsize             *n);
void     engine_io_ws_decoder_payload_written (EngineIOWsDecoder *dec,
                                               gsize              n,
                                               EngineIOWsEvent   *event);

/* Whether the decoder is between frames (nothing partly read). */
gboolean engine_io_ws_decoder_at_frame_boundary (EngineIOWsDecoder *dec);
/* Bytes the decoder holds (its message buffer). */
gsize    engine_io_ws_decoder_get_buffered (EngineIOWsDecoder *dec);

/* Encoder: server frames, unmasked. */
#define ENGINE_IO_WS_MAX_HEADER 10
/* OR it into the first header byte: a compressed message (RFC 7692). */
#define ENGINE_IO_WS_RSV1 0x40
#define ENGINE_IO_WS_MAX_CLOSE_FRAME (2 + 125)

/* Writes the header of a frame of @opcode carrying @payload_len bytes
 * into @buf; returns its length (2, 4 or 10). */
gsize    engine_io_ws_encode_header    (guint8            *buf,
                                        EngineIOWsOpcode   opcode,
                                        gboolean           fin,
                                        guint64            payload_len);
/* Writes a whole close frame into @buf (ENGINE_IO_WS_MAX_CLOSE_FRAME
 * bytes): @code 0 for none (then no reason), @reason (nullable) cut to
 * 123 bytes on a character boundary. Returns its length. */
gsize    engine_io_ws_encode_close     (guint8            *buf,
                                        guint16            code,
                                        const char        *reason);

/* Building blocks, exposed for tests and benchmarks. */
void     engine_io_ws_unmask           (guint8            *data,
                                        gsize              len,
                                        const guint8       mask[4],
                                        guint64            offset);
/* Runs the UTF-8 DFA over @data from @state (0: between characters);
 * returns the new state: 0 accept, ENGINE_IO_WS_UTF8_REJECT invalid,
 * anything else mid-character. */
#define ENGINE_IO_WS_UTF8_ACCEPT 0
#define ENGINE_IO_WS_UTF8_REJECT 12
guint32  engine_io_ws_utf8_run         (guint32            state,
                                        const guint8      *data,
                                        gsize              len);
gboolean engine_io_ws_close_code_valid (guint16            code);

G_END_DECLS
