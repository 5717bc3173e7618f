#!/usr/bin/python3
# make-seeds.py: writes the hand-made seed corpora of fuzz-request,
# fuzz-websocket, fuzz-ws-codec and fuzz-session (tests/fuzz/corpus/<target>/seed-*), one meaningful
# exchange each. Run it after changing a seed or the input formats; the
# files are committed. Regression inputs (crash-*, regress-*) are left alone.
#
# SPDX-License-Identifier: MIT
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n~~\n"
WS_HEADERS = (b"Upgrade: websocket\nConnection: Upgrade\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n")


def req(*records):
    return SEP.join(r if isinstance(r, bytes) else r.encode() for r in records)


def http(line, headers=b"", body=None):
    out = line.encode() + b"\n" + headers
    if body is not None:
        out += b"\n" + body
    return out


def with_flags(line, flags):
    return line + " " + flags if flags else line


def poll(eio=4, extra="", flags=""):
    return http(with_flags("GET /engine.io/?EIO=%d&transport=polling&sid=@S%s" % (eio, extra), flags))


def post(body, eio=4, extra="", headers=b"", flags=""):
    return http(with_flags("POST /engine.io/?EIO=%d&transport=polling&sid=@S%s" % (eio, extra), flags),
                headers, body)


def handshake(eio=4, extra=""):
    return http("GET /engine.io/?EIO=%d&transport=polling%s" % (eio, extra))


def upgrade(eio=4, flags=""):
    return http(with_flags("GET /engine.io/?EIO=%d&transport=websocket&sid=@S" % eio, flags), WS_HEADERS)


def ws(kind, payload=b"", n=0):
    return ("WS %d %s\n" % (n, kind)).encode() + payload


def frame(opcode, payload, fin=True, mask=b"\0\0\0\0", rsv=0):
    """A client frame, as a raw byte string (for 'WS N r' and raw streams)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


REQUEST_SEEDS = {
    # v4 polling: handshake, poll, POST two messages (echoed), the echo
    # poll, a heartbeat (ping due, pong), a close packet.
    "v4-polling": req(handshake(), poll(), post(b"4hello\x1e4world"), poll(),
                      "TICK", poll(), post(b"3"), post(b"1"), poll()),
    # v4 upgrade with a poll waiting: probe, noop, upgrade, messages, close.
    "v4-upgrade": req(handshake(), poll(), upgrade(), ws("t", b"2probe"), ws("t", b"5"),
                      ws("t", b"4over websocket"), ws("b", b"\x01\x02\x03"), ws("p", b"hb"),
                      poll(), ws("c", b"\x03\xe8bye")),
    # Direct WebSocket session (v4), fragmented message, ping, client close.
    "v4-websocket": req(http("GET /engine.io/?EIO=4&transport=websocket", WS_HEADERS),
                        ws("tn", b"4frag"), ws("k", b"mented"), ws("p", b"x"),
                        ws("t", b"2"), ws("c", b"\x03\xe8")),
    # v3 text payloads with UTF-16 lengths, a v3 ping (pong answered).
    "v3-text": req("CFG 3eg", handshake(3), post(b"6:4hello2:4\xc3\xa9", 3), poll(3),
                   post(b"1:2", 3), poll(3), post(b"3:4\xf0\x9f\x98\x80", 3), poll(3)),
    # v3 binary (XHR2) payloads both ways.
    "v3-binary": req("CFG 3eg", handshake(3), poll(3),
                     post(b"\x00\x06\xff4hello\x01\x04\xff\x04\x00\x01\x02", 3,
                          headers=b"Content-Type: application/octet-stream\n"),
                     poll(3)),
    # v3 b64=1: binary goes base64 in text payloads.
    "v3-b64": req("CFG 3eg", handshake(3, "&b64=1"), poll(3, "&b64=1"),
                  post(b"6:b4AAEC", 3, "&b64=1"), poll(3, "&b64=1")),
    # v3 JSONP: form-encoded POST with escaped newlines, wrapped responses.
    "v3-jsonp": req("CFG 3eg", handshake(3, "&j=0"), poll(3, "&j=0"),
                    post(b"d=9%3A4a%5C%5Cnb%5Cn%22c%22", 3, "&j=0",
                         b"Content-Type: application/x-www-form-urlencoded\n"),
                    poll(3, "&j=0"), post(b"x=1", 3, "&j=0")),
    # v3 upgrade and the v3 heartbeat over WebSocket.
    "v3-upgrade": req("CFG 3e", handshake(3), upgrade(3), ws("t", b"2probe"), ws("t", b"5"),
                      ws("t", b"2"), ws("t", b"4msg"), ws("b", b"\x04\x00\xff"), "TICK"),
    # Error answers: unknown transport, bad version, unknown sid, bad
    # handshake method, bad method with sid, a WebSocket handshake without
    # an Upgrade, another path.
    "errors": req(http("GET /engine.io/?EIO=4&transport=flashsocket"),
                  http("GET /engine.io/?EIO=5&transport=polling"),
                  http("GET /engine.io/?transport=polling"),
                  http("GET /engine.io/?EIO=4&transport=polling&sid=nosuch"),
                  http("POST /engine.io/?EIO=4&transport=polling", b"", b"4x"),
                  http("GET /engine.io/?EIO=4&transport=websocket"),
                  http("GET /other/?EIO=4&transport=polling"),
                  handshake(), http("PUT /engine.io/?EIO=4&transport=polling&sid=@S"),
                  http("GET /engine.io/?EIO=4&transport=polling&sid=@S",
                       b"Origin: https://a.example\x01\n"),
                  post(b"4x\x1e"), poll()),
    # CORS: preflight and responses for a listed origin, with credentials.
    "cors": req("CFG oCe", http("OPTIONS /engine.io/?EIO=4&transport=polling",
                                b"Origin: https://a.example\nAccess-Control-Request-Headers: content-type\n"),
                http("GET /engine.io/?EIO=4&transport=polling", b"Origin: https://b.example\n"),
                http("GET /engine.io/?EIO=4&transport=polling&sid=@S", b"Origin: https://evil.example\n")),
    "cors-any-cookie": req("CFG *ke", http("GET /engine.io/?EIO=4&transport=polling",
                                           b"Origin: https://x.example\n"),
                           upgrade()),
    # Metrics endpoint: GET, HEAD, POST.
    "metrics": req("CFG Me", handshake(), http("GET /metrics"), http("HEAD /metrics"),
                   http("POST /metrics", b"", b"x")),
    # Limits: max-payload 64 (413 by length and by body), max-sessions 2.
    "limits": req("CFG mse", handshake(), post(b"4" + b"x" * 100),
                  post(b"4short", headers=b"Content-Length: 99999\n"),
                  handshake(), handshake(), handshake()),
    # Admission hook: refused, then a bad version seen by the hook.
    "admission": req("CFG Ae", http("GET /engine.io/?EIO=4&transport=polling", b"X-Deny: 1\n"),
                     http("GET /engine.io/?EIO=5&transport=polling"), handshake(), poll()),
    # Overlapping polls (the second comes before the context runs).
    "overlap": req(handshake(), poll(flags="w"), poll(), poll()),
    # Clients that go away: a poll never delivered, a body cut short, a
    # resumed poll whose client left.
    "client-gone": req(handshake(), poll(flags="a"), post(b"4abc"), post(b"4x", flags="g"),
                       poll(), post(b"4y"), poll(flags="a"), poll()),
    # Upgrades that fail: no upgrade support, queueing the 101 fails, the
    # switch never happens; then a good one.
    "upgrade-fails": req(handshake(), upgrade(flags="n"), upgrade(flags="r"), upgrade(flags="x"),
                         upgrade(), ws("t", b"2probe"), ws("t", b"5"), ws("x")),
    # Direct WebSocket handshake whose switch fails (the session closes).
    "websocket-fails": req(http("GET /engine.io/?EIO=4&transport=websocket x", WS_HEADERS),
                           http("GET /engine.io/?EIO=4&transport=websocket r", WS_HEADERS)),
    # Heartbeat timeouts: v4 ping then pong deadline; v3 expiry.
    "timeouts": req(handshake(), poll(), "TICK", poll(), "TICK", poll()),
    # The upgrade probe times out (its timer fires), polling goes on.
    "probe-timeout": req(handshake(), poll(), upgrade(), ws("t", b"2probe"), "TICK", "TICK",
                         poll(), ws("t", b"5")),
    # The application: sends, floods past a small high-water mark, closes
    # (the close lingers until the next poll).
    "app": req("CFG hgeD", handshake(), "APP s", "APP b", poll(), "APP f", poll(),
               "APP c", poll()),
    "app-drop": req("CFG hdge", handshake(), "APP f", poll(), post(b"4flood"), poll()),
    "app-keep": req("CFG hqNe", handshake(), "APP f", poll(), post(b"4x\x1e4bye"), poll()),
    # Rate limits and origins (where the server has them).
    "rates": req("CFG HrOe", handshake(), handshake(), handshake(),
                 http("GET /engine.io/?EIO=4&transport=polling", b"Origin: https://z.example\n"),
                 post(b"4a\x1e4b\x1e4c\x1e4d\x1e4e"), poll()),
    # A close packet during an upgrade; a bye that closes from the handler.
    "bye": req("CFG eb", handshake(), upgrade(), ws("t", b"2probe"), poll(), ws("t", b"5"),
               ws("t", b"4bye"), ws("t", b"4late")),
    "app-close": req("CFG e", handshake(), "APP s", "APP c", post(b"4ignored"), poll(), poll()),
    # Regression: an empty JSONP POST body (no data pointer) made
    # jsonp_post_payload() call g_uri_parse_params (NULL) and the session
    # close dereference an unset GError.
    "regress-jsonp-empty-post": req("CFG 3e", handshake(3, "&j=0"), poll(3, "&j=0"),
                                    post(b"", 3, "&j=0",
                                         b"Content-Type: application/x-www-form-urlencoded\n"),
                                    poll(3, "&j=0")),
    # Regression: a preflight's Access-Control-Request-Headers was
    # reflected with its control characters.
    "regress-cors-request-headers": req("CFG oCe", http(
        "OPTIONS /engine.io/?EIO=4&transport=polling",
        b"Origin: https://a.example\nAccess-Control-Request-Headers: content-type\x01x\n")),
    # Regression: a frame-level error after our close frame (during a
    # failed probe) made protocol_error() send a second close frame.
    "regress-second-close": req(handshake(), upgrade(), ws("t", b"2prmbe"), ws("t1"), ws("t", b"x")),
    # Regression: the WebSocket failed right after `5`, while the poll
    # answering `6` had not been resumed yet: the session never ended.
    "regress-close-during-noop-poll": req(
        "CFG 3eg", handshake(3), poll(3), upgrade(3),
        ws("r", frame(1, b"2probe") + frame(1, b"5") + frame(1, b"2p\x81"))),
}


def wsin(mode, options, stream):
    return bytes([mode, options]) + stream


def fr(b0, payload, flags=0):
    """A framed-mode record of fuzz-websocket."""
    n = len(payload)
    if n >= 255:
        return bytes([b0, flags, 255]) + struct.pack(">H", n) + payload
    return bytes([b0, flags, n]) + payload


DIRECT_ECHO = 0x08
UPGRADE = 0x02
RAW = 0x10
WEBSOCKET_SEEDS = {
    # Echoed text and binary messages, a ping, the client closes.
    "echo": wsin(DIRECT_ECHO, 1, fr(0x81, b"4hello") + fr(0x82, b"\x04\x00\x01\xff")
                 + fr(0x89, b"ping", 0x20) + fr(0x81, b"4\xc3\xa9t\xc3\xa9")),
    # A fragmented message with a ping between its fragments.
    "fragmented": wsin(DIRECT_ECHO, 1, fr(0x01, b"4frag") + fr(0x89, b"") + fr(0x00, b"men")
                       + fr(0x80, b"ted")),
    # Non-zero mask key, 16- and 64-bit length encodings, split writes.
    "masks-lengths": wsin(DIRECT_ECHO, 0, fr(0x81, b"4masked", 0x40) + fr(0x81, b"4" + b"a" * 200, 0x10)
                          + fr(0x81, b"4wide", 0x04) + fr(0x81, b"4wider", 0x08)),
    # Protocol errors: unmasked frame (1002).
    "unmasked": wsin(DIRECT_ECHO, 1, fr(0x81, b"4hi", 0x80)),
    # Invalid UTF-8 in a text frame (1007).
    "bad-utf8": wsin(DIRECT_ECHO, 1, fr(0x81, b"4\xed\xa0\x80")),
    # A message over max-payload 64 (1009).
    "too-big": wsin(DIRECT_ECHO | 0x04, 1, fr(0x82, b"\x04" + b"z" * 100)),
    # Close frames: a reason, a bad code, a one-byte payload.
    "close-reason": wsin(DIRECT_ECHO, 2, fr(0x88, b"\x0f\xa0going away")),
    "close-bad-code": wsin(DIRECT_ECHO, 2, fr(0x88, b"\x03\xed")),
    "close-one-byte": wsin(DIRECT_ECHO, 2, fr(0x88, b"\x03")),
    # A control frame over 125 bytes, RSV1, an unknown opcode, a lone
    # continuation.
    "big-ping": wsin(DIRECT_ECHO, 1, fr(0x89, b"p" * 130)),
    "rsv": wsin(DIRECT_ECHO, 1, fr(0xc1, b"4x")),
    "opcode-3": wsin(DIRECT_ECHO, 1, fr(0x83, b"")),
    "lone-continuation": wsin(DIRECT_ECHO, 1, fr(0x80, b"4x")),
    # A declared length longer than what follows (the rest of the stream
    # becomes payload).
    "length-lie": wsin(DIRECT_ECHO, 2, fr(0x81, b"4x", 0x0c) + fr(0x81, b"4y")),
    # Engine.IO level: a v4 client ping (transport error), a bad packet
    # (parse error, 1002), a close packet, bye from the handler.
    "v4-ping": wsin(DIRECT_ECHO, 0, fr(0x81, b"2")),
    "bad-packet": wsin(DIRECT_ECHO, 0, fr(0x81, b"9nope")),
    "close-packet": wsin(DIRECT_ECHO, 0, fr(0x81, b"1")),
    "bye": wsin(DIRECT_ECHO | 0x80, 0, fr(0x81, b"4bye") + fr(0x81, b"4after")),
    # v3 direct: ping answered with pong, binary message.
    "v3": wsin(DIRECT_ECHO | 0x01, 1, fr(0x81, b"2") + fr(0x82, b"\x04\x01\x02") + fr(0x81, b"4v3")),
    # Upgrade from polling: the stream does the probe itself, with a poll
    # waiting and the greeting queued.
    "upgrade": wsin(DIRECT_ECHO | UPGRADE, 0x14, fr(0x81, b"2probe", 0x20) + fr(0x81, b"5", 0x20)
                    + fr(0x81, b"4upgraded")),
    # Upgrade done by the harness; then the heartbeat times out.
    "upgrade-timeout": wsin(DIRECT_ECHO | UPGRADE | 0x40, 3, fr(0x81, b"4x")),
    # A probe that sends something else than 2probe (1002, polling goes on).
    "bad-probe": wsin(DIRECT_ECHO | UPGRADE, 0x04, fr(0x81, b"4early")),
    # Raw stream: a frame header split across chunks.
    "raw-split": wsin(DIRECT_ECHO | RAW, 1, bytes([1]) + frame(1, b"4split")[:1]
                      + bytes([7]) + frame(1, b"4split")[1:8]
                      + bytes([4]) + frame(1, b"4split")[8:]),
    # The first frames arrive with the upgrade request (extra bytes).
    "extra-in": wsin(DIRECT_ECHO | 0x20, 1, bytes([len(frame(1, b"4first"))]) + frame(1, b"4first")
                     + fr(0x81, b"4second")),
    # A small high-water mark and a flood from the handler (closes).
    "flood": wsin(DIRECT_ECHO, 0x08, fr(0x81, b"4flood")),
    # No ::message handler: messages go to the receive queue.
    "receive-queue": wsin(0x00, 0x21, fr(0x81, b"4queued") + fr(0x82, b"\x04\x00")),
    # Regression: the WebSocket failed right after `5`, while the poll
    # answering `6` had not been resumed yet: the session never ended.
    "regress-close-during-noop-poll": wsin(0x0f, 0x16, fr(0x81, b"2probe") + fr(0x81, b"5")
                                           + fr(0x81, b"2p\x16\x81be")),
}


def cfr(b0, payload, mask=b"\x37\xfa\x21\x3d"):
    """A client frame with a non-zero mask key (fuzz-ws-codec)."""
    return frame(b0 & 0x0f, payload, fin=bool(b0 & 0x80), mask=mask, rsv=b0 & 0x70)


def codec(options, *frames):
    return bytes([options]) + b"".join(frames)


# fuzz-ws-codec: options byte (bits 0-1 the limit: 64, 1000, 64 KiB, 1 MiB;
# bits 2-4 how the second decoding feeds the stream), then client frames.
WS_CODEC_SEEDS = {
    "lengths": codec(0x02, cfr(0x81, b""), cfr(0x81, b"a" * 125), cfr(0x82, b"b" * 126),
                     cfr(0x82, b"c" * 127), cfr(0x81, b"d" * 65535)),
    "length-64k": codec(0x03 | (7 << 2), cfr(0x82, bytes(range(256)) * 256)),
    "fragments-ping": codec(0x01 | (1 << 2), cfr(0x01, b"He"), cfr(0x89, b"p" * 125), cfr(0x00, b"l"),
                            cfr(0x8a, b"pong"), cfr(0x80, b"lo")),
    "utf8-split": codec(0x01, cfr(0x01, b"\xce"), cfr(0x00, b"\xba\xe1\xbd"), cfr(0x00, b"\xb9\xf0\x9f"),
                        cfr(0x80, b"\x98\x80")),
    "utf8-fail-fast": codec(0x01, cfr(0x01, b"\xce\xba"), cfr(0x00, b"\xed\xa0\x80"), cfr(0x80, b"x")),
    "utf8-kuhn": codec(0x01, cfr(0x81, b"\xc0\xaf"), cfr(0x81, b"\xf4\x90\x80\x80")),
    "utf8-truncated": codec(0x01, cfr(0x81, b"ab\xe2\x82")),
    "too-big": codec(0x00, cfr(0x02, b"z" * 40), cfr(0x80, b"z" * 40)),
    "too-big-header": codec(0x00, cfr(0x82, b"z" * 65)[:8]),
    "rsv": codec(0x01, cfr(0xc1, b"x")),
    "opcode-3": codec(0x01, cfr(0x83, b"")),
    "opcode-b": codec(0x01, cfr(0x8b, b"")),
    "big-ping": codec(0x01, cfr(0x89, b"p" * 126)),
    "fragmented-ping": codec(0x01, cfr(0x09, b"p")),
    "lone-continuation": codec(0x01, cfr(0x80, b"x")),
    "nested-message": codec(0x01, cfr(0x01, b"x"), cfr(0x81, b"y")),
    "unmasked": codec(0x01, bytes([0x81, 0x02]) + b"hi"),
    "close-reason": codec(0x01, cfr(0x88, b"\x0f\xa0going away")),
    "close-empty": codec(0x01, cfr(0x88, b""), cfr(0x81, b"after")),
    "close-one-byte": codec(0x01, cfr(0x88, b"\x03")),
    "close-bad-code": codec(0x01, cfr(0x88, b"\x03\xed")),
    "close-bad-reason": codec(0x01, cfr(0x88, b"\x03\xe8\xed\xa0\x80")),
    "direct-read": codec(0x03 | (6 << 2), cfr(0x01, b"q" * 300), cfr(0x89, b""), cfr(0x80, b"r" * 3000)),
}


# fuzz-session: a header (bit 0 of the first byte v4, the rest the grace
# in ms; pingInterval and pingTimeout in ms; the start time; the upgrade
# timeout in ms; the close's linger in ms and its write bound in 4 ms
# steps), then inputs: an op byte (low nibble the input, high nibble the
# time before it in 0.7 ms steps) and its arguments.
def sess(v4, grace, interval, timeout, *ops, upgrade=30, linger=3, write=10):
    return bytes([(1 if v4 else 0) | (grace << 1), interval, timeout, 1, upgrade, linger, write]) + b"".join(ops)


S_START, S_DUE, S_STALE, S_ATTACH = b"\x00", b"\x07", b"\x0a", b"\x0c"
S_CLOSE = b"\x0b\x00"         # the runtime's close, waiting for nothing, probe closed with 1000
S_CLOSE_LINGER = b"\x0b\x01"  # ... with a linger (an answered probe is kept)
S_CLOSE_POLL = b"\x0b\x02"    # ... waiting for the resumed poll's write
S_CLOSE_WS = b"\x0b\x03"      # ... waiting for the WebSocket's close
S_CLOSE_POLL_SHUTDOWN = b"\x0b\x12"  # ... the resumed poll's, a shutdown's close
S_CLOSE_LINGER_SHUTDOWN = b"\x0b\x11"
# The close's other inputs (op 15, then its byte mod 8: 0-3 only time passes).
S_SHUTDOWN, S_SHUTDOWN_WS = b"\x0f\x04", b"\x0f\x0c"
S_LINGER_TAKEN, S_WAIT_OVER, S_FINISHED = b"\x0f\x05", b"\x0f\x06", b"\x0f\x07"
# The linger's timer due (only it armed): a last poll came, or polls being written, or neither.
S_LINGER_POLLED, S_LINGER_WRITING, S_LINGER_IDLE = b"\x07\x01", b"\x07\x02", b"\x07\x00"
S_PROBE_PING, S_PROBE_UPGRADE, S_PROBE_BAD = b"\x0d\x00", b"\x0d\x01", b"\x0d\x02"
S_PROBE_CLOSED, S_PROBE_STALLED = b"\x0e\x00", b"\x0e\x01"


def sprobe(ptype, data=b""):
    """Any packet on the upgrade's probe (text, up to 15 bytes)."""
    return bytes([0x0d, 3, ptype | (len(data) << 3)]) + data


def spkt(ptype, data=b"", binary=False, close_requested=False, dt=0):
    """A packet from the client (type 0-6), text or binary, up to 15 bytes."""
    return (bytes([(6 if close_requested else 1) | (dt << 4), ptype | (len(data) << 3) | (0x80 if binary else 0)])
            + data)


def swait(ms):
    """Time passes (a multiple of 8 ms, at most 248)."""
    return bytes([0x0f, ms & 0xf8])


SESSION_SEEDS = {
    "v4-heartbeat": sess(True, 5, 25, 20, S_START, S_DUE, spkt(3, dt=3), S_DUE, spkt(3, dt=15),
                         spkt(4, b"hi"), spkt(3), S_DUE, S_DUE),
    "v4-unsolicited-pong": sess(True, 0, 10, 5, S_START, spkt(3), spkt(3, b"probe"), S_DUE, spkt(3), spkt(3),
                                S_STALE, S_DUE),
    "v4-client-ping": sess(True, 1, 10, 5, S_START, S_DUE, spkt(2, b"probe")),
    "v3-ping-pong": sess(False, 3, 25, 20, S_START, spkt(2, b"probe", dt=2), spkt(2, b"\x00\x01\xff", binary=True),
                         spkt(2), spkt(4, b"msg"), spkt(6), spkt(5), spkt(0), swait(200), S_DUE),
    "v3-client-pong": sess(False, 0, 10, 5, S_START, spkt(2), spkt(3)),
    "close-packet-v4": sess(True, 0, 10, 5, S_START, spkt(4, b"a"), spkt(1), spkt(4, b"b"), S_DUE),
    "close-packet-v3": sess(False, 0, 10, 5, S_START, spkt(1, binary=True), S_CLOSE),
    "close-requested": sess(True, 2, 10, 5, S_START, S_DUE, spkt(3, close_requested=True),
                            spkt(4, b"x", close_requested=True), S_CLOSE, spkt(3), S_DUE),
    "before-start": sess(False, 0, 0, 0, spkt(4, b"early"), S_DUE, S_STALE, S_CLOSE, S_START),
    "upgrade-v4": sess(True, 0, 10, 5, S_START, S_ATTACH, spkt(4, b"p"), S_PROBE_PING, S_DUE,
                       S_PROBE_UPGRADE, S_ATTACH, S_DUE),
    "upgrade-v3": sess(False, 0, 10, 5, S_START, S_ATTACH, S_PROBE_PING, S_PROBE_PING, S_PROBE_UPGRADE, S_CLOSE),
    "upgrade-give-up": sess(True, 1, 50, 50, S_START, S_ATTACH, S_PROBE_UPGRADE, S_ATTACH, sprobe(4, b"m"),
                            S_ATTACH, S_PROBE_BAD, S_ATTACH, S_PROBE_PING, S_PROBE_CLOSED, S_ATTACH,
                            S_PROBE_STALLED, S_ATTACH, S_DUE, S_DUE, upgrade=5),
    "upgrade-kept": sess(True, 0, 10, 5, S_START, S_ATTACH, S_PROBE_PING, S_CLOSE_LINGER, sprobe(2, b"probe"),
                         S_PROBE_UPGRADE),
    "upgrade-kept-done": sess(False, 0, 10, 5, S_START, S_ATTACH, S_PROBE_PING, S_CLOSE_LINGER, S_PROBE_UPGRADE,
                              S_CLOSE),
    "upgrade-close-probing": sess(True, 0, 10, 5, S_START, S_ATTACH, S_CLOSE_LINGER, S_PROBE_PING, S_DUE),
    # The close's timing.
    "close-linger-last-poll": sess(True, 0, 10, 20, S_START, S_CLOSE_LINGER, S_LINGER_POLLED, S_WAIT_OVER,
                                   S_WAIT_OVER, S_FINISHED),
    "close-linger-no-poll": sess(False, 0, 10, 20, S_START, S_CLOSE_LINGER, S_LINGER_IDLE, S_WAIT_OVER, S_FINISHED),
    "close-linger-writing": sess(True, 1, 10, 20, S_START, S_CLOSE_LINGER, S_LINGER_WRITING, S_DUE, S_FINISHED),
    "close-linger-short": sess(False, 0, 10, 1, S_START, S_CLOSE_LINGER_SHUTDOWN, S_SHUTDOWN, S_LINGER_POLLED,
                               S_DUE, S_FINISHED),
    "close-poll-shutdown": sess(True, 0, 10, 5, S_START, S_CLOSE_POLL_SHUTDOWN, S_SHUTDOWN, S_DUE, S_FINISHED),
    "close-shutdown-closing": sess(False, 0, 10, 5, S_START, S_CLOSE_POLL, swait(8), S_SHUTDOWN, S_SHUTDOWN,
                                   S_WAIT_OVER, S_FINISHED),
    "close-websocket": sess(True, 0, 10, 5, S_START, S_CLOSE_WS, S_SHUTDOWN_WS, S_WAIT_OVER, S_FINISHED,
                            S_SHUTDOWN),
    "close-kept-taken": sess(True, 0, 10, 20, S_START, S_ATTACH, S_PROBE_PING, S_CLOSE_LINGER, S_PROBE_UPGRADE,
                             S_LINGER_TAKEN, S_WAIT_OVER, S_FINISHED),
}


def write(target, seeds):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith("seed-"):
            os.unlink(os.path.join(directory, name))
    for name, data in seeds.items():
        with open(os.path.join(directory, "seed-" + name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (target, len(seeds)), file=sys.stderr)


write("fuzz-request", REQUEST_SEEDS)
write("fuzz-websocket", WEBSOCKET_SEEDS)
write("fuzz-ws-codec", WS_CODEC_SEEDS)
write("fuzz-session", SESSION_SEEDS)
