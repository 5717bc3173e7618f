#!/usr/bin/python3
"""Engine.IO v4 interop client on Debian's python3-engineio (4.3.4) `engineio.Client`.

Run with /usr/bin/python3 (needs python3-engineio, python3-requests, python3-websocket):

  client_python.py --url http://127.0.0.1:PORT/engine.io/
      [--transports polling|websocket|polling,websocket] [--expect-transport polling|websocket]
      [--big] [--no-empty-binary] [--heartbeats N] [--burst-chunk N] [--timeout S] [--verbose]
      [--stock-post-encoding] [--stock-tls-threads]

Scenario (same as the Node clients): connect; exact echoes of emoji text, empty text, 100 KiB
mixed text, binary 0..255, 64 KiB binary, empty binary, ~1 MB text with --big, a burst of 200
numbered messages (1 in 10 binary) in order; then N server pings (heartbeats); the transport the
client ended on; close from the client. Prints `sid SID TRANSPORT` before closing and `ok` at
the end; exit 0 only if all passed.

Client facts this script works around (see README.md):
- python-engineio 4.3.4 refuses a polling response holding more than 16 packets
  (Payload.max_decode_packets) and drops the connection. On polling the burst is therefore sent
  in chunks (--burst-chunk, default 8), each chunk's echoes awaited before the next.
- Its 'message' handlers each run on a new thread, so arrival order is read from the packet
  stream (_receive_packet, called in order by the read loop), not from the event.
- Text that parses as JSON is handed over decoded (not an issue for the texts used here).
- Its polling POST body is a str, which http.client encodes as Latin-1: a character above U+00FF
  raises UnicodeEncodeError in the client's write thread (the client goes silent, the server ends
  the session with "ping timeout"), and é/ö reach the server as single Latin-1 bytes, invalid
  UTF-8. The script encodes POST bodies as UTF-8 itself (--stock-post-encoding turns that off).
- On polling, disconnect() can lose its close packet when the write loop is mid-POST (see the
  comment at the end); the script closes while the write loop is idle.
- Over wss its read loop thread (ws.recv) and write loop thread (ws.send) call into the same
  ssl.SSLSocket at the same time (websocket-client's two locks are one for reading, one for
  writing), and neither CPython nor OpenSSL makes one SSL object safe for that. Now and then the
  reader's SSL_read then fails with SSL_ERROR_SYSCALL and nothing queued, which CPython reports
  as a ragged EOF and turns into b'' while the TCP connection is open (no FIN, sometimes bytes
  waiting); websocket-client raises "Connection to remote host was lost." and the client drops
  a healthy connection (the server sees the TCP close and logs "transport error", or nothing if
  it is stopped first). The writer can also send a corrupted record (a Python TLS peer answered
  "bad record mac"). About 1 run in 15 of python-tls-upgrade under ASan. Upstream:
  python-engineio issue 461, python-socketio issues 1568 and 1577. The script lets one thread
  at a time into the TLS socket (LockedTLSSocket below; --stock-tls-threads turns that off).
"""

import argparse
import os
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse

DEFAULT_TIMEOUT_S = 60


def die(msg):
    sys.stderr.write('FAIL: %s\n' % msg)
    sys.stderr.flush()
    os._exit(1)


try:
    import engineio
    from engineio import packet as eio_packet
except ImportError as e:  # pragma: no cover
    die('python3-engineio is not importable (%s): run this with /usr/bin/python3 on Debian '
        'with python3-engineio installed' % e)
try:
    import requests  # noqa: F401  (the client's polling transport)
    import websocket  # the client's websocket transport (see lock_tls_websockets)
except ImportError as e:  # pragma: no cover
    die('%s: apt-get install python3-requests python3-websocket' % e)


EMOJI_TEXT = 'héllo wörld 😀 €'
SPECIAL_TEXT = ('line1\nline2\n\n"quoted" \\backslash\\ literal\\n \t tab '
                "\u2028 \u2029 </script> ' 𝄞 end\n")  # same as common.js
BIG_TEXT_BYTES = 1000000 - 1000  # under maxPayload 1 000 000 with framing (see common.js)


def mixed_text(nbytes):
    unit = '0123456789 abcdefghij é ü € ✓ 😀 𝄞 |'
    parts, n, i = [], 0, 0
    while n < nbytes:
        piece = '#%d:' % i + unit
        i += 1
        parts.append(piece)
        n += len(piece.encode('utf-8'))
    return ''.join(parts)


def ascii_text(nbytes):
    out, n, i = [], 0, 0
    while n < nbytes:
        s = '[%d]abcdefghijklmnopqrstuvwxyz' % i
        i += 1
        out.append(s)
        n += len(s)
    return ''.join(out)[:nbytes]


def pattern_bytes(n):
    # Same generator as common.js patternBytes (LCG, top byte).
    out = bytearray(n)
    x = 0x12345678
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = x >> 24
    return bytes(out)


def describe(x):
    if isinstance(x, str):
        head = repr(x[:40]) + ('…' if len(x) > 40 else '')
        return 'text(%d chars, %d bytes) %s' % (len(x), len(x.encode('utf-8', 'surrogatepass')), head)
    if isinstance(x, (bytes, bytearray)):
        return 'binary(%d bytes) %s%s' % (len(x), bytes(x[:16]).hex(), '…' if len(x) > 16 else '')
    return '%s %r' % (type(x).__name__, x)


def compare(sent, got):
    if isinstance(sent, str):
        if not isinstance(got, str):
            return 'sent %s, got back %s' % (describe(sent), describe(got))
    elif not isinstance(got, (bytes, bytearray)):
        return 'sent %s, got back %s' % (describe(sent), describe(got))
    if sent == got:
        return None
    i = 0
    while i < len(sent) and i < len(got) and sent[i] == got[i]:
        i += 1
    return 'differs at index %d: sent %s, got %s' % (i, describe(sent), describe(got))


class LockedTLSSocket:
    """Stands in for websocket-client's ssl.SSLSocket so that one thread at a time is in OpenSSL.

    The real socket is made non-blocking; recv and send each hold a lock only while inside
    OpenSSL and wait for the file descriptor (poll) outside it, so a reader waiting for data
    does not block a writer. The timeout the client sets (gettimeout/settimeout) is kept here and
    applied to those waits, as socket.timeout like a blocking socket's. Everything else
    (fileno, shutdown, close, ...) goes to the real socket.
    """

    def __init__(self, tls):
        self._tls = tls
        self._lock = threading.Lock()
        self._timeout = tls.gettimeout()
        tls.settimeout(0)

    def __getattr__(self, name):
        return getattr(self._tls, name)

    def gettimeout(self):
        return self._timeout

    def settimeout(self, timeout):
        self._timeout = timeout

    def _call(self, op):
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            with self._lock:
                try:
                    return op()
                except ssl.SSLWantReadError:
                    events = select.POLLIN
                except ssl.SSLWantWriteError:
                    events = select.POLLOUT
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout('timed out')
            poller = select.poll()
            poller.register(self._tls.fileno(), events)
            poller.poll(None if left is None else max(1, int(left * 1000)))

    def recv(self, bufsize, flags=0):
        return self._call(lambda: self._tls.recv(bufsize, flags))

    def send(self, data, flags=0):
        return self._call(lambda: self._tls.send(data, flags))


def lock_tls_websockets():
    """Make websocket.create_connection (as python-engineio calls it) hand out WebSockets whose
    TLS socket is a LockedTLSSocket. The handshake, before, runs on one thread and is left as is."""
    create_connection = websocket.create_connection

    def create_locked_connection(*args, **kwargs):
        ws = create_connection(*args, **kwargs)
        if isinstance(ws.sock, ssl.SSLSocket):
            ws.sock = LockedTLSSocket(ws.sock)
        return ws

    websocket.create_connection = create_locked_connection


class RecordingClient(engineio.Client):
    """engineio.Client that records messages and server pings in wire order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cond = threading.Condition()
        self.inbox = []
        self.pings = 0
        self.disconnected = False

    def _receive_packet(self, pkt):
        with self.cond:
            if pkt.packet_type == eio_packet.MESSAGE:
                self.inbox.append(pkt.data)
            elif pkt.packet_type == eio_packet.PING:
                self.pings += 1
            self.cond.notify_all()
        super()._receive_packet(pkt)

    utf8_posts = True

    def _send_request(self, method, url, headers=None, body=None, timeout=None):
        if self.utf8_posts and isinstance(body, str):
            body = body.encode('utf-8')
        return super()._send_request(method, url, headers=headers, body=body, timeout=timeout)

    def mark_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def until(self, pred, what, timeout=20.0, allow_closed=False):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                if self.disconnected and not allow_closed:
                    raise RuntimeError('disconnected while waiting for %s' % what)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError('timed out after %.0f s waiting for %s' % (timeout, what))
                self.cond.wait(min(left, 0.25))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--url', required=True)
    ap.add_argument('--transports', default='polling,websocket')
    ap.add_argument('--expect-transport', choices=['polling', 'websocket'])
    ap.add_argument('--big', action='store_true')
    ap.add_argument('--no-empty-binary', action='store_true')
    ap.add_argument('--heartbeats', type=int, default=3)
    ap.add_argument('--burst-chunk', type=int, default=0,
                    help='messages per burst chunk (default: 8 on polling, 200 on websocket)')
    ap.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT_S)
    ap.add_argument('--stock-post-encoding', action='store_true',
                    help='do not UTF-8-encode polling POST bodies (reproduces the client bug)')
    ap.add_argument('--stock-tls-threads', action='store_true',
                    help='let the read and write threads into the TLS socket at the same time, '
                    'as the client does (reproduces the client bug, about 1 run in 15 over wss)')
    ap.add_argument('--verbose', '-v', action='store_true')
    args = ap.parse_args()

    transports = [t.strip() for t in args.transports.split(',') if t.strip()]
    if not transports or any(t not in ('polling', 'websocket') for t in transports):
        die('--transports: expected polling and/or websocket, got %s' % args.transports)
    expect = args.expect_transport or ('websocket' if 'websocket' in transports else 'polling')

    t0 = time.monotonic()

    def log(msg):
        if args.verbose:
            sys.stderr.write('[client-python +%dms] %s\n' % ((time.monotonic() - t0) * 1000, msg))
            sys.stderr.flush()

    timer = threading.Timer(args.timeout, lambda: die(
        'global timeout: the python client scenario did not finish within %g s' % args.timeout))
    timer.daemon = True
    timer.start()

    u = urllib.parse.urlsplit(args.url)
    base = urllib.parse.urlunsplit((u.scheme, u.netloc, '/', u.query, ''))
    path = u.path or '/engine.io/'

    if not args.stock_tls_threads:
        lock_tls_websockets()
    client = RecordingClient(request_timeout=10)
    client.utf8_posts = not args.stock_post_encoding
    client.on('disconnect', client.mark_disconnected)
    try:
        client.connect(base, transports=transports, engineio_path=path)
    except Exception as e:  # engineio.exceptions.ConnectionError and friends
        die('connect failed: %s %s' % (e, getattr(e, 'args', '')))
    log('connected sid=%s transport=%s' % (client.sid, client.transport()))
    if transports == ['polling'] and client.transport() != 'polling':
        die('connected on %s, expected polling' % client.transport())

    def echo(label, payloads):
        for p in payloads:
            client.send(p)
        client.until(lambda: len(client.inbox) >= len(payloads),
                     '%d echo(es) of %s (got %d)' % (len(payloads), label, len(client.inbox)))
        with client.cond:
            got = client.inbox[:len(payloads)]
            del client.inbox[:len(payloads)]
            extra = list(client.inbox)
        for i, (s, g) in enumerate(zip(payloads, got)):
            why = compare(s, g)
            if why:
                raise RuntimeError('%s: echo #%d wrong: %s' % (label, i, why))
        if extra:
            raise RuntimeError('%s: unexpected extra message %s' % (label, describe(extra[0])))
        log('ok: %s (%d message(s))' % (label, len(payloads)))

    try:
        echo('emoji text', [EMOJI_TEXT])
        echo('empty text', [''])
        echo('special characters text', [SPECIAL_TEXT])
        echo('100 KiB mixed text', [mixed_text(100 * 1024)])
        echo('binary 0..255', [bytes(range(256))])
        echo('binary 64 KiB', [pattern_bytes(64 * 1024)])
        if not args.no_empty_binary:
            echo('empty binary', [b''])
        if args.big:
            echo('big text (%d bytes)' % BIG_TEXT_BYTES, [ascii_text(BIG_TEXT_BYTES)])
        burst = []
        for i in range(200):
            if i % 10 == 7:
                burst.append(i.to_bytes(4, 'big'))
            else:
                burst.append('burst %03d ü' % i)
        chunk = args.burst_chunk or (200 if client.transport() == 'websocket' else 8)
        for k in range(0, len(burst), chunk):
            echo('burst of 200 numbered messages, chunk %d-%d' % (k, min(k + chunk, 200) - 1),
                 burst[k:k + chunk])

        base_pings = client.pings
        client.until(lambda: client.pings >= base_pings + args.heartbeats,
                     '%d heartbeats (server pings) after the data checks' % args.heartbeats,
                     timeout=15.0)
        log('ok: %d heartbeats' % args.heartbeats)

        if client.transport() != expect:
            raise RuntimeError('client is on %s, expected %s' % (client.transport(), expect))
        if client.disconnected:
            raise RuntimeError('disconnected early')
    except RuntimeError as e:
        die(str(e))

    transport = client.transport()
    print('sid %s %s' % (client.sid, transport), flush=True)
    if transport == 'polling':
        # Client race (4.3.4): disconnect() queues the close packet and at once sets the state to
        # "disconnecting"; a write loop that is busy POSTing (say, a pong) then sees the state
        # change and exits without ever sending the close packet, and the server can only end
        # the session by ping timeout. Close while the write loop is idle: right after a ping
        # has been answered, well before the next one.
        base_pings = client.pings
        try:
            client.until(lambda: client.pings > base_pings, 'a ping before closing', timeout=5.0)
        except RuntimeError as e:
            die(str(e))
        deadline = time.monotonic() + 2.0
        while client.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.03)
    client.disconnect()
    log('disconnected (was on %s, %d pings)' % (transport, client.pings))
    timer.cancel()
    print('ok', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
