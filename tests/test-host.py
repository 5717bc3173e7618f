#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The public host seam (EngineIO.HostRequest) from Python, against real clients.

tests/python/gi_host.py is a web server written in Python (socketserver, a thread per
connection) that hosts the engine through GObject introspection. Here it serves npm
engine.io-client 6 (tests/python/gi-client.mjs) and python3-engineio's client over polling,
WebSocket and polling with an upgrade, in both threading modes; and bad input: a body over
max-payload (413, the session goes on), a client that leaves during a held poll (the
session ends with `transport close`), a host without upgrade() (no WebSocket offered).

Run by `meson test --suite python host` (tests/meson.build sets GI_TYPELIB_PATH and
LD_LIBRARY_PATH to the build's src/ dir). By hand:

    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src /usr/bin/python3 -m pytest tests/test-host.py
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'python'))

import gi  # noqa: E402
gi.require_version('GLib', '2.0')
gi.require_version('EngineIO', '1.0')
from gi.repository import EngineIO, GLib  # noqa: E402

import engineio  # noqa: E402  (python3-engineio: the client)

import gi_host  # noqa: E402

GI_CLIENT = os.path.join(HERE, 'python', 'gi-client.mjs')
NODE = os.environ.get('NODE') or shutil.which('node')
NODE_MODULES = os.path.join(HERE, 'interop', 'node_modules', 'engine.io-client')

THREADS = [pytest.param(0, id='perSession'), pytest.param(2, id='pool2')]


def wait_until(pred, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, 'timed out after %.1f s waiting for %s' % (timeout,
                                                                                       what)
        time.sleep(0.01)


class Echo:
    """An engine hosted by gi_host.HostServer, echoing every message."""

    def __init__(self, loop_threads, request_class=gi_host.Request, **props):
        kw = dict(ping_interval=1000, ping_timeout=2000, loop_threads=loop_threads)
        kw.update(props)
        self.engine = EngineIO.Server(**kw)
        self.lock = threading.Lock()
        self.closes = []
        self.sockets = []
        self.engine.connect('connection', self.on_connection)
        self.host = gi_host.HostServer(self.engine, request_class).start()
        self.url = 'http://127.0.0.1:%d/engine.io/' % self.host.port

    def on_connection(self, server, sock):
        with self.lock:
            self.sockets.append(sock.get_id())
        sock.connect('message', self.on_message)
        sock.connect('close', self.on_close)

    def on_message(self, sock, text, data):
        try:
            if text is not None:
                sock.send_text(text)
            else:
                sock.send_binary(data)
        except GLib.Error:
            pass

    def on_close(self, sock, reason, description):
        with self.lock:
            self.closes.append((sock.get_id(), reason, description))

    def close(self):
        start = time.monotonic()
        self.engine.close()
        assert time.monotonic() - start < 8, 'engine.close() took too long'
        self.host.stop()
        assert self.engine.get_socket_count() == 0


@pytest.fixture(params=THREADS)
def echo(request):
    e = Echo(request.param)
    yield e
    e.close()


def node(url, *args, timeout=20):
    assert NODE, 'node not found (set NODE or install nodejs)'
    assert os.path.isdir(NODE_MODULES), 'engine.io-client missing: run npm ci --prefix tests/interop'
    proc = subprocess.run([NODE, GI_CLIENT, '--url', url, '--timeout', str(timeout)] + list(args),
                          capture_output=True, text=True, timeout=timeout + 10)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, 'node client failed (%s): %s\n%s' % (proc.returncode, events[-3:],
                                                                    proc.stderr)
    return events


MESSAGES = [{'text': 'hello'}, {'text': 'é ✓ \U0001F600'}, {'binary': 'AAEC/w=='},
            {'text': 'x' * 100000}]


def check_echoes(events, transport):
    opens = [e for e in events if e['ev'] == 'open']
    assert len(opens) == 1 and opens[0]['transport'] == transport, events[:3]
    got = [{k: v for k, v in e.items() if k in ('text', 'binary')}
           for e in events if e['ev'] == 'message']
    assert got == MESSAGES


# --------------------------------------------------------------------------------------------
# Real clients


def test_node_polling(echo):
    events = node(echo.url, '--transports', 'polling', '--send', json.dumps(MESSAGES),
                  '--expect', str(len(MESSAGES)), '--close')
    check_echoes(events, 'polling')
    assert echo.host.stats.switched == 0


def test_node_websocket(echo):
    events = node(echo.url, '--transports', 'websocket', '--send', json.dumps(MESSAGES),
                  '--expect', str(len(MESSAGES)), '--close')
    check_echoes(events, 'websocket')
    assert echo.host.stats.switched == 1


def test_node_upgrade(echo):
    # Sent one every 50 ms: some before the upgrade, some after.
    sent = MESSAGES[:3] * 6 + [{'text': 'z' * 50000}]
    events = node(echo.url, '--transports', 'polling,websocket', '--send',
                  json.dumps(sent), '--interval', '50', '--expect', str(len(sent)), '--close')
    opens = [e for e in events if e['ev'] == 'open']
    assert opens[0]['transport'] == 'polling'
    got = [{k: v for k, v in e.items() if k in ('text', 'binary')}
           for e in events if e['ev'] == 'message']
    assert got == sent
    assert echo.host.stats.switched == 1
    assert echo.engine.get_metrics().get_upgrades() == 1


@pytest.mark.parametrize('transports,expect', [
    (['polling'], 'polling'),
    (['websocket'], 'websocket'),
    (['polling', 'websocket'], 'websocket'),
])
def test_python_client(echo, transports, expect):
    received = []
    got = threading.Event()
    client = engineio.Client(handle_sigint=False)

    def on_message(data):
        received.append(data)
        if len(received) == 3:
            got.set()

    client.on('message', on_message)
    client.connect(echo.url.replace('/engine.io/', ''), transports=transports)
    try:
        assert client.transport() == expect
        for m in ('one', b'\x00\x01two', 'three'):
            client.send(m)
        assert got.wait(10), received
        assert received == ['one', b'\x00\x01two', 'three']
    finally:
        client.disconnect()
    wait_until(lambda: len(echo.closes) == 1, what='the session to close')


# --------------------------------------------------------------------------------------------
# A host without upgrade()


@pytest.mark.parametrize('loop_threads', [0, 2])
def test_polling_only_host(loop_threads):
    e = Echo(loop_threads, gi_host.PollingOnlyRequest)
    try:
        # The handshake offers no upgrade ...
        status, headers, body = raw_request(e.host.port, 'GET',
                                            '/engine.io/?EIO=4&transport=polling')
        assert status == 200
        assert json.loads(body[1:])['upgrades'] == []
        # ... clients offered websocket stay on polling ...
        events = node(e.url, '--transports', 'polling,websocket', '--send',
                      json.dumps(MESSAGES), '--expect', str(len(MESSAGES)), '--close')
        check_echoes(events, 'polling')
        client = engineio.Client(handle_sigint=False)
        client.connect(e.url.replace('/engine.io/', ''), transports=['polling', 'websocket'])
        assert client.transport() == 'polling'
        client.disconnect()
        # ... and a WebSocket handshake is refused.
        status, headers, body = raw_request(
            e.host.port, 'GET', '/engine.io/?EIO=4&transport=websocket',
            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
                     'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='})
        assert status == 400, body
        assert e.host.stats.switched == 0
    finally:
        e.close()


# --------------------------------------------------------------------------------------------
# Bad input through the host


def read_response(sock, buf=b''):
    while b'\r\n\r\n' not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError('connection closed before a response: %r' % buf)
        buf += data
    head, rest = buf.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split(' ')[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(':')
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get('content-length', '0'))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError('connection closed in a response body')
        rest += data
    return status, headers, rest[:length], rest[length:]


def raw_request(port, method, target, body=None, headers=None, sock=None, chunked=False):
    """(status, headers, body) of one request on a new connection (or @sock, kept open)."""
    own = sock is None
    if own:
        sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        lines = ['%s %s HTTP/1.1' % (method, target), 'Host: 127.0.0.1:%d' % port]
        for k, v in (headers or {}).items():
            lines.append('%s: %s' % (k, v))
        payload = b''
        if body is not None:
            if chunked:
                lines.append('Transfer-Encoding: chunked')
                for i in range(0, len(body), 4096):
                    part = body[i:i + 4096]
                    payload += b'%x\r\n' % len(part) + part + b'\r\n'
                payload += b'0\r\n\r\n'
            else:
                lines.append('Content-Length: %d' % len(body))
                payload = body
        sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + payload)
        status, h, b, _ = read_response(sock)
        return status, h, b
    finally:
        if own:
            sock.close()


def open_session(port):
    status, headers, body = raw_request(port, 'GET', '/engine.io/?EIO=4&transport=polling')
    assert status == 200 and body[:1] == b'0', (status, body)
    return json.loads(body[1:])['sid']


@pytest.mark.parametrize('loop_threads', [0, 2])
@pytest.mark.parametrize('chunked', [False, True], ids=['content-length', 'chunked'])
def test_body_over_max_payload(loop_threads, chunked):
    e = Echo(loop_threads, max_payload=1000, ping_interval=20000, ping_timeout=20000)
    try:
        sid = open_session(e.host.port)
        target = '/engine.io/?EIO=4&transport=polling&sid=' + sid
        # Over max-payload: 413 (at the head with a Content-Length; as the chunks come
        # otherwise, and then the connection is closed after it: the rest of the body is
        # not read).
        status, headers, body = raw_request(e.host.port, 'POST', target, body=b'4' + b'x' * 5000,
                                            chunked=chunked)
        assert status == 413, body
        assert body.startswith(b'Payload too large')
        if chunked:
            assert headers.get('connection') == 'close'
        # Exactly max-payload is taken, and the session is unharmed: the echo comes back.
        status, headers, body = raw_request(e.host.port, 'POST', target,
                                            body=b'4' + b'y' * 999, chunked=chunked)
        assert (status, body) == (200, b'ok')
        status, headers, body = raw_request(e.host.port, 'GET', target)
        assert (status, body) == (200, b'4' + b'y' * 999)
        assert e.closes == []
        assert e.engine.get_socket_count() == 1
    finally:
        e.close()


@pytest.mark.parametrize('loop_threads', [0, 2])
def test_client_leaves_held_poll(loop_threads):
    e = Echo(loop_threads, ping_interval=20000, ping_timeout=20000)
    try:
        sid = open_session(e.host.port)
        sock = socket.create_connection(('127.0.0.1', e.host.port), timeout=10)
        sock.sendall(('GET /engine.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\n'
                      'Host: x\r\n\r\n' % sid).encode())
        # The poll is held (nothing to send for 20 s) ...
        wait_until(lambda: e.host.stats.waiting == 1, what='the poll to be held')
        assert e.closes == []
        # ... its client leaves: the session ends at once, `transport close`.
        start = time.monotonic()
        sock.close()
        wait_until(lambda: len(e.closes) == 1, 5, 'the session to close')
        assert time.monotonic() - start < 3
        assert e.closes[0][0] == sid
        assert e.closes[0][1] == EngineIO.CloseReason.TRANSPORT_CLOSE, e.closes
        assert e.host.stats.client_gone == 1
    finally:
        e.close()


def test_not_found_and_malformed():
    e = Echo(0)
    try:
        # A host with upgrade() offers it.
        status, headers, body = raw_request(e.host.port, 'GET',
                                            '/engine.io/?EIO=4&transport=polling')
        assert json.loads(body[1:])['upgrades'] == ['websocket']
        status, headers, body = raw_request(e.host.port, 'GET', '/elsewhere/?EIO=4&transport=polling')
        assert status == 404
        # An encoded NUL in the query: refused (400, code 3), as the shipped hosts do.
        sid = open_session(e.host.port)
        status, headers, body = raw_request(
            e.host.port, 'GET', '/engine.io/?EIO=4&transport=polling&sid=%s%%00junk' % sid)
        assert status == 400
        assert json.loads(body)['code'] == 3
        # CORS preflight and a second request on one keep-alive connection.
        sock = socket.create_connection(('127.0.0.1', e.host.port), timeout=10)
        try:
            status, headers, body = raw_request(e.host.port, 'OPTIONS', '/engine.io/', sock=sock)
            assert status == 204
            status, headers, body = raw_request(e.host.port, 'GET',
                                                '/engine.io/?EIO=4&transport=polling', sock=sock)
            assert status == 200 and body[:1] == b'0'
        finally:
            sock.close()
    finally:
        e.close()


# --------------------------------------------------------------------------------------------
# The documented example (data/python/host-echo.py, shown in data/docs/hosting.md)


def test_host_echo_example():
    example = os.path.join(os.path.dirname(HERE), 'data', 'python', 'host-echo.py')
    proc = subprocess.Popen([sys.executable, example, '0'], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('listening on '), line
        url = 'http://127.0.0.1:%d/engine.io/' % int(line.split()[-1])
        for transports, transport in (('polling', 'polling'), ('websocket', 'websocket'),
                                      ('polling,websocket', 'polling')):
            events = node(url, '--transports', transports, '--send', json.dumps(MESSAGES),
                          '--expect', str(len(MESSAGES)), '--close', '--interval', '20')
            check_echoes(events, transport)
        client = engineio.Client(handle_sigint=False)
        client.connect(url.replace('/engine.io/', ''), transports=['polling', 'websocket'])
        assert client.transport() == 'websocket'
        client.disconnect()
    finally:
        proc.kill()
        proc.wait()


class RefusingRequest(gi_host.PollingOnlyRequest):
    """A host whose upgrade() cannot take the connection over (returns False)."""

    upgrades_refused = 0

    def do_upgrade(self, headers):
        RefusingRequest.upgrades_refused += 1
        return False


@pytest.mark.parametrize('loop_threads', [0, 2])
def test_upgrade_refused_by_host(loop_threads):
    e = Echo(loop_threads, RefusingRequest)
    try:
        # Offered (the class has upgrade()), but refused when tried: 400, and clients that
        # tried stay on polling with their session unharmed.
        events = node(e.url, '--transports', 'polling,websocket', '--send',
                      json.dumps(MESSAGES[:3] * 3), '--interval', '50',
                      '--expect', '9', '--close')
        got = [{k: v for k, v in ev.items() if k in ('text', 'binary')}
               for ev in events if ev['ev'] == 'message']
        assert got == MESSAGES[:3] * 3
        assert RefusingRequest.upgrades_refused >= 1
        status, headers, body = raw_request(
            e.host.port, 'GET', '/engine.io/?EIO=4&transport=websocket',
            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
                     'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='})
        assert status == 400, body
        assert e.host.stats.switched == 0
        wait_until(lambda: len(e.closes) == 2, what='both sessions to close')
        assert e.closes[0][1] == EngineIO.CloseReason.TRANSPORT_CLOSE, e.closes
    finally:
        e.close()


# --------------------------------------------------------------------------------------------
# A host whose class functions raise


class RaisingRequest(gi_host.Request):
    """do_upgrade() always raises; do_respond() raises for the next POST, do_suspend() for the
    next suspension, when told to. PyGObject prints the exception and returns a zeroed value
    (FALSE for upgrade())."""

    lock = threading.Lock()
    raise_respond = False
    raise_suspend = False

    def do_upgrade(self, headers):
        raise RuntimeError('upgrade() raised')

    def do_respond(self, status, headers, body):
        with RaisingRequest.lock:
            fire = RaisingRequest.raise_respond and self.get_method() == 'POST'
            if fire:
                RaisingRequest.raise_respond = False
        if fire:
            raise RuntimeError('respond() raised')
        super().do_respond(status, headers, body)

    def do_suspend(self):
        with RaisingRequest.lock:
            fire = RaisingRequest.raise_suspend
            RaisingRequest.raise_suspend = False
        if fire:
            # The host never learns it is held: it finishes it (refused: a critical) and
            # drops it. The engine's resume() comes later; the pipe is closed then, not
            # before (the descriptor must not be another connection's by then).
            self.held_unknown = True
            raise RuntimeError('suspend() raised')
        super().do_suspend()

    def do_resume(self):
        super().do_resume()
        if getattr(self, 'held_unknown', False):
            os.close(self.wake_r)
            os.close(self.wake_w)

    def close_pipe(self):
        if not getattr(self, 'held_unknown', False):
            super().close_pipe()


def echoes(port, sid, text):
    target = '/engine.io/?EIO=4&transport=polling&sid=' + sid
    status, _, body = raw_request(port, 'POST', target, body=b'4' + text.encode())
    if (status, body) != (200, b'ok'):
        return False
    for _ in range(3):  # pings (every second here) may come first
        status, _, body = raw_request(port, 'GET', target)
        if status != 200:
            return False
        packets = [p for p in body.split(b'\x1e') if p != b'2']
        if packets:
            return packets == [b'4' + text.encode()]
    return False


@pytest.mark.parametrize('loop_threads', [0, 2])
def test_vfuncs_raise(loop_threads):
    e = Echo(loop_threads, RaisingRequest, ping_interval=1000, ping_timeout=20000)
    try:
        port = e.host.port
        bystander = open_session(port)
        sid = open_session(port)
        # upgrade() raising is a refusal: 400, the session stays on polling.
        status, headers, body = raw_request(
            port, 'GET', '/engine.io/?EIO=4&transport=websocket&sid=' + sid,
            headers={'Upgrade': 'websocket', 'Connection': 'Upgrade', 'Sec-WebSocket-Version': '13',
                     'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ=='})
        assert status == 400, body
        assert echoes(port, sid, 'after upgrade')
        # respond() raising: the host has nothing to write and closes the connection; the
        # message was taken, the session goes on.
        RaisingRequest.raise_respond = True
        with pytest.raises((EOFError, ConnectionError)):
            raw_request(port, 'POST', '/engine.io/?EIO=4&transport=polling&sid=' + sid,
                        body=b'4lost answer')
        status, _, body = raw_request(port, 'GET', '/engine.io/?EIO=4&transport=polling&sid=' + sid)
        assert status == 200 and b'4lost answer' in body.split(b'\x1e'), (status, body)
        assert echoes(port, sid, 'after respond')
        # suspend() raising: the host finishes a request the engine holds (refused) and closes
        # the connection; the session's next ping resumes it, nobody answers it, and the
        # session ends; nothing hangs, other sessions go on.
        RaisingRequest.raise_suspend = True
        with pytest.raises((EOFError, ConnectionError)):
            raw_request(port, 'GET', '/engine.io/?EIO=4&transport=polling&sid=' + sid)
        # PyGObject printed the exception with PyErr_Print(), which keeps it (and through its
        # traceback the request) in sys.last_traceback: the engine lets go of a request the
        # host abandoned only when it is finalized, so drop that reference.
        sys.last_type = sys.last_value = sys.last_traceback = None
        if hasattr(sys, 'last_exc'):
            sys.last_exc = None
        wait_until(lambda: any(c[0] == sid for c in e.closes), 10, 'the session to close')
        assert echoes(port, bystander, 'unaffected')
        assert [c[0] for c in e.closes] == [sid]
    finally:
        e.close()
