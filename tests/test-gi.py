#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The EngineIO GObject-introspection bindings, from Python, against real clients.

Run by `meson test --suite python` (tests/meson.build sets GI_TYPELIB_PATH and
LD_LIBRARY_PATH to the build's src/ dir). By hand:

    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src /usr/bin/python3 -m pytest tests/test-gi.py

A Python server driven by GLib.MainLoop serves npm engine.io-client 6 (tests/python/gi-client.mjs,
node_modules from `npm ci --prefix tests/interop`) and Debian's python3-engineio client, in both
threading modes (a thread per session, loop_threads=0, and a pool, loop_threads=2) and both
callback-delivery modes (session threads, and callback_context = the default main context).

Nothing here skips: a missing typelib, node or client library is a failure.
"""

import base64
import gc
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get('ENGINEIO_SOURCE_ROOT', os.path.dirname(HERE))
# The overrides (gi/overrides/EngineIO.py) from the source tree, as installed ones would be:
# before gi is imported, since gi.overrides extends its __path__ (pkgutil.extend_path) with
# every gi/overrides dir on sys.path when it is first imported.
OVERRIDES = os.environ.get('ENGINEIO_OVERRIDES_DIR', os.path.join(SOURCE_ROOT, 'src', 'python'))
assert 'gi' not in sys.modules
sys.path.insert(0, OVERRIDES)

# A typelib that does not load must fail the run (a collection error), never skip it.
import gi
gi.require_version('GLib', '2.0')
gi.require_version('GObject', '2.0')
gi.require_version('EngineIO', '1.0')
from gi.repository import EngineIO, GLib, GObject  # noqa: E402

import engineio  # noqa: E402  (python3-engineio: the client)

GI_CLIENT = os.path.join(HERE, 'python', 'gi-client.mjs')
ECHO_PY = os.path.join(SOURCE_ROOT, 'data', 'python', 'echo.py')
CHAT_PY = os.path.join(SOURCE_ROOT, 'data', 'python', 'chat.py')
NODE = os.environ.get('NODE') or shutil.which('node')
NODE_MODULES = os.path.join(HERE, 'interop', 'node_modules', 'engine.io-client')

# Heartbeats short enough that the suite would notice a stuck session thread, long enough
# that a busy machine does not time out healthy clients.
PING_INTERVAL = 1000
PING_TIMEOUT = 2000

# (loop_threads, delivery): delivery 'threads' = signals on session threads (the default),
# 'context' = callback_context is the default GLib.MainContext, iterated by GLib.MainLoop.
MODES = [
    pytest.param((0, 'threads'), id='threads-perSession'),
    pytest.param((2, 'threads'), id='threads-pool2'),
    pytest.param((0, 'context'), id='context-perSession'),
    pytest.param((2, 'context'), id='context-pool2'),
]

ERR = EngineIO.error_quark()


def require_node():
    assert NODE, 'node not found (set NODE or install nodejs): the GI tests need it'
    assert os.path.isdir(NODE_MODULES), \
        'engine.io-client missing: run npm ci --prefix tests/interop'


def run_loop_until(pred, timeout=10.0, what='condition'):
    """Runs a GLib.MainLoop on the default context until pred() is true."""
    loop = GLib.MainLoop()
    deadline = time.monotonic() + timeout
    state = {'timed_out': False}

    def check():
        if pred():
            loop.quit()
            return GLib.SOURCE_REMOVE
        if time.monotonic() > deadline:
            state['timed_out'] = True
            loop.quit()
            return GLib.SOURCE_REMOVE
        return GLib.SOURCE_CONTINUE

    if pred():
        return
    GLib.timeout_add(5, check)
    loop.run()
    assert not state['timed_out'], 'timed out after %.1f s waiting for %s' % (timeout, what)


def spin(seconds):
    """Runs the main loop for a while (context-mode handlers run meanwhile)."""
    end = time.monotonic() + seconds
    run_loop_until(lambda: time.monotonic() >= end, seconds + 5, 'spin')


def is_main_thread():
    return threading.current_thread() is threading.main_thread()


class Recorder:
    """Events from signal handlers, which may run on any thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = []

    def add(self, *event):
        with self.lock:
            self.events.append(event)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if e[0] == kind]

    def count(self, kind):
        return len(self.of(kind))


class EchoApp:
    """A Python echo server recording which thread each handler ran on."""

    def __init__(self, mode, **props):
        loop_threads, delivery = mode
        self.delivery = delivery
        self.rec = Recorder()
        self.hook = None  # optional extra message handler: hook(app, socket, text, data)
        kw = dict(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
                  loop_threads=loop_threads)
        kw.update(props)
        if delivery == 'context':
            kw['callback_context'] = GLib.MainContext.default()
        self.server = EngineIO.Server(**kw)
        self.server.connect('connection', self.on_connection)
        self.server.listen('127.0.0.1', 0)
        self.port = self.server.get_port()
        self.url = 'http://127.0.0.1:%d/engine.io/' % self.port
        self.closed = False

    def on_connection(self, server, socket):
        self.rec.add('connection', socket.get_id(), socket.get_transport(), is_main_thread())
        socket.connect('message', self.on_message)
        socket.connect('close', self.on_close)

    def on_message(self, socket, text, data):
        self.rec.add('message', socket.get_id(), text, None if data is None else data.get_data(),
                     is_main_thread())
        if self.hook is not None and self.hook(self, socket, text, data):
            return
        try:
            if text is not None:
                socket.send_text(text)
            else:
                socket.send_binary(data)
        except GLib.Error as e:
            self.rec.add('send-error', socket.get_id(), e.domain, e.code)

    def on_close(self, socket, reason, description):
        self.rec.add('close', socket.get_id(), reason, description, is_main_thread())

    def check_threads(self):
        """Every handler ran where the delivery mode says."""
        expect_main = self.delivery == 'context'
        with self.rec.lock:
            where = [e[-1] for e in self.rec.events if e[0] in ('connection', 'message', 'close')]
        assert where, 'no handler ran'
        assert all(w == expect_main for w in where), \
            'handlers ran on the %s thread in %s mode' % (
                'wrong' if expect_main else 'main', self.delivery)

    def close(self):
        if not self.closed:
            self.closed = True
            start = time.monotonic()
            self.server.close()
            assert time.monotonic() - start < 8, 'server.close() took too long'


@pytest.fixture(params=MODES)
def app(request):
    a = EchoApp(request.param)
    yield a
    a.close()
    assert a.server.get_socket_count() == 0


class NodeClient:
    """tests/python/gi-client.mjs in a subprocess; its JSON event lines collected."""

    def __init__(self, url, *args, timeout=20):
        require_node()
        self.proc = subprocess.Popen([NODE, GI_CLIENT, '--url', url, '--timeout', str(timeout)]
                                     + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.timeout = timeout

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def finished(self):
        return self.proc.poll() is not None and not self.reader.is_alive()

    def wait(self, ok=True):
        run_loop_until(self.finished, self.timeout + 5, 'the node client to exit')
        stderr = self.proc.stderr.read()
        if ok:
            assert self.proc.returncode == 0, 'node client failed (%s): %s\n%s' % (
                self.proc.returncode, self.events[-3:], stderr)
        return self

    def of(self, ev):
        return [e for e in self.events if e['ev'] == ev]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def send_args(*messages):
    items = []
    for m in messages:
        if isinstance(m, str):
            items.append({'text': m})
        else:
            items.append({'binary': base64.b64encode(m).decode()})
    return ['--send', json.dumps(items)]


class PyClient:
    """A python3-engineio client on a thread of its own."""

    def __init__(self, url, messages=(), expect=0, transports=None, headers=None, close=True):
        self.received = []
        self.error = None
        self.connected_sid = None
        self.got_all = threading.Event()
        self.disconnected = threading.Event()
        self.client = engineio.Client(handle_sigint=False)
        self.client.on('message', self._on_message)
        self.client.on('disconnect', self.disconnected.set)
        self.args = (url, list(messages), expect, transports, headers or {}, close)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_message(self, data):
        self.received.append(data)
        if len(self.received) >= self.args[2]:
            self.got_all.set()

    def _run(self):
        url, messages, expect, transports, headers, close = self.args
        try:
            self.client.connect(url.replace('/engine.io/', ''), headers=headers,
                                transports=transports)
            self.connected_sid = self.client.sid
            for m in messages:
                self.client.send(m)
            if expect:
                assert self.got_all.wait(15), 'got %d of %d echoes' % (len(self.received),
                                                                        expect)
            if close:
                self.transport_at_close = self.client.transport()
                self.client.disconnect()
        except Exception as e:  # reported by wait()
            self.error = e
            try:
                self.client.disconnect()
            except Exception:
                pass

    def wait(self, ok=True):
        run_loop_until(lambda: not self.thread.is_alive(), 25, 'the python client')
        if ok:
            assert self.error is None, 'python client failed: %r' % (self.error,)
        return self


def assert_closed_by_clients(rec, clients):
    """Each PyClient's session ended with `transport close` (its close packet, or its WebSocket
    closing). Over polling, python3-engineio 4.3's disconnect() queues the close packet and sets
    its state to 'disconnecting' at once, and its write loop checks that state before it takes
    the next packet: under load the packet is never POSTed, and the client leaves its last ping
    unanswered. The server then rightly ends the session with `ping timeout` (CI saw it once in
    test_soup_host)."""
    closes = {e[1]: e[2] for e in rec.of('close')}
    for c in clients:
        reason = closes.get(c.connected_sid)
        allowed = {EngineIO.CloseReason.TRANSPORT_CLOSE}
        if getattr(c, 'transport_at_close', None) == 'polling':
            allowed.add(EngineIO.CloseReason.PING_TIMEOUT)
        assert reason in allowed, 'session %s (%s at its close) ended with %r' % (
            c.connected_sid, getattr(c, 'transport_at_close', None), reason)


def http(method, url, body=None, headers=None):
    """(status, headers, body bytes) of one plain HTTP request (no redirects, no raise)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def http_in_thread(method, url, body=None, headers=None):
    """http() on a thread while the main loop runs (context-mode sessions need it)."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault('r', http(method, url, body, headers)),
                         daemon=True)
    t.start()
    run_loop_until(lambda: not t.is_alive(), 15, '%s %s' % (method, url))
    return box['r']


def handshake(url, query=''):
    status, headers, body = http_in_thread('GET', url + '?EIO=4&transport=polling' + query)
    assert status == 200, (status, body)
    assert body[:1] == b'0', body
    return json.loads(body[1:].decode())


# --------------------------------------------------------------------------------------------
# The API as Python sees it (no network)


def test_typelib_and_types():
    assert EngineIO._version == '1.0'
    assert issubclass(EngineIO.Server, GObject.Object)
    assert issubclass(EngineIO.Socket, GObject.Object)
    for cls in (EngineIO.Server, EngineIO.Socket):  # signals exist once the class is initialized
        GObject.TypeClass.ref(cls.__gtype__)
    assert set(GObject.signal_list_names(EngineIO.Server)) >= {'connection'}
    assert set(GObject.signal_list_names(EngineIO.Socket)) >= {
        'message', 'packet', 'heartbeat', 'drain', 'close'}
    # ::message is (str or None, GLib.Bytes or None); ::close carries the enum.
    q = GObject.signal_query('message', EngineIO.Socket)
    assert [t.name for t in q.param_types] == ['gchararray', 'GBytes']
    q = GObject.signal_query('close', EngineIO.Socket)
    assert q.param_types[0] == EngineIO.CloseReason.__gtype__


def test_server_properties():
    server = EngineIO.Server(ping_interval=1234, ping_timeout=567, max_payload=4096,
                             allow_eio3=True, loop_threads=3, path='/x/',
                             transports=EngineIO.Transports.WEBSOCKET)
    assert server.props.ping_interval == 1234
    assert server.props.ping_timeout == 567
    assert server.props.max_payload == 4096
    assert server.props.allow_eio3 is True
    assert server.props.loop_threads == 3
    assert server.props.path == '/x/'
    assert server.props.transports == EngineIO.Transports.WEBSOCKET
    assert server.props.callback_context is None
    assert server.props.port == 0 and server.get_port() == 0
    assert server.get_socket_count() == 0
    assert server.get_sockets() == []
    assert server.lookup_socket('nope') is None
    ctx = GLib.MainContext.default()
    s2 = EngineIO.Server(callback_context=ctx)
    assert s2.props.callback_context == ctx
    # The defaults are the reference server's.
    d = EngineIO.Server.new()
    assert (d.props.ping_interval, d.props.ping_timeout, d.props.max_payload) == \
        (25000, 20000, 1000000)
    assert d.props.backpressure_policy == EngineIO.BackpressurePolicy.CLOSE


def test_limit_properties():
    """The limits (connection-timeout, handshake/message rates, allowed-origins) from Python."""
    d = EngineIO.Server.new()
    assert d.props.connection_timeout == 30
    assert (d.props.handshake_rate, d.props.handshake_burst) == (0.0, 0)
    assert (d.props.message_rate, d.props.message_burst) == (0.0, 0)
    assert d.props.message_rate_policy == EngineIO.RateLimitPolicy.CLOSE
    # Unset (NULL: any origin) reads back as [] (PyGObject maps a NULL strv so); setting
    # None unsets it, while setting [] allows only requests without Origin.
    assert d.props.allowed_origins == []
    assert {EngineIO.RateLimitPolicy.CLOSE, EngineIO.RateLimitPolicy.DROP} == \
        set(EngineIO.RateLimitPolicy.__enum_values__.values())
    assert EngineIO.close_reason_to_string(EngineIO.CloseReason.RATE_LIMITED) == \
        'rate limit exceeded'
    m = d.get_metrics()
    assert (m.get_messages_dropped(), m.get_handshakes_rate_limited()) == (0, 0)

    server = EngineIO.Server(connection_timeout=5, handshake_rate=0.5, handshake_burst=4,
                             message_rate=2.5, message_burst=10,
                             message_rate_policy=EngineIO.RateLimitPolicy.DROP,
                             allowed_origins=['https://good.example'])
    assert server.props.connection_timeout == 5
    assert (server.props.handshake_rate, server.props.handshake_burst) == (0.5, 4)
    assert (server.props.message_rate, server.props.message_burst) == (2.5, 10)
    assert server.props.message_rate_policy == EngineIO.RateLimitPolicy.DROP
    assert server.props.allowed_origins == ['https://good.example']
    server.listen('127.0.0.1', 0)
    try:
        base = 'http://127.0.0.1:%d/engine.io/?EIO=4&transport=polling' % server.get_port()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(
                base, headers={'Origin': 'https://evil.example'}), timeout=10)
        assert info.value.code == 403
        assert json.loads(info.value.read()) == {'code': 4, 'message': 'Origin not allowed'}
        with urllib.request.urlopen(urllib.request.Request(
                base, headers={'Origin': 'https://good.example'}), timeout=10) as r:
            assert r.status == 200
    finally:
        server.close()

    bad = EngineIO.Server(allowed_origins=['https://good.example/'])
    with pytest.raises(GLib.Error) as info:
        bad.listen('127.0.0.1', 0)
    assert info.value.matches(ERR, EngineIO.Error.INVALID_ARGUMENT)
    assert 'allowed-origins' in info.value.message


def test_packet_api():
    T = EngineIO.PacketType
    p = EngineIO.Packet.new_text(T.MESSAGE, 'héllo', -1)
    assert p.get_packet_type() == T.MESSAGE
    assert not p.is_binary()
    text, length = p.get_text()  # the length out-parameter makes this a tuple (noted)
    assert (text, length) == ('héllo', 6)
    assert p.get_data().get_data() == 'héllo'.encode()
    b = EngineIO.Packet.new_binary(T.MESSAGE, GLib.Bytes.new(b'\x00\x01\xff'))
    assert b.is_binary() and b.get_text() == (None, 0)
    assert b.get_data().get_data() == b'\x00\x01\xff'
    assert p.equal(EngineIO.Packet.new_text(T.MESSAGE, 'héllo', -1))
    assert not p.equal(b)
    ping = EngineIO.Packet.new(T.PING)
    assert ping.get_text() == ('', 0)

    frame, is_binary = p.encode(EngineIO.ProtocolVersion.V4)
    assert (frame.get_data(), is_binary) == ('4héllo'.encode(), False)
    frame, is_binary = b.encode(EngineIO.ProtocolVersion.V4)
    assert (frame.get_data(), is_binary) == (b'\x00\x01\xff', True)
    frame, is_binary = b.encode(EngineIO.ProtocolVersion.V3)
    assert (frame.get_data(), is_binary) == (b'\x04\x00\x01\xff', True)

    d = EngineIO.Packet.decode(GLib.Bytes.new(b'4hi'), False, EngineIO.ProtocolVersion.V4)
    assert d.get_packet_type() == T.MESSAGE and d.get_text()[0] == 'hi'

    # Payloads: a list in, a list out (no double free of the elements, see
    # engine_io_payload_decode's transfer annotation).
    payload = EngineIO.payload_encode(EngineIO.PayloadFormat.V4, [p, b, ping])
    assert payload.get_data() == '4héllo\x1ebAAH/\x1e2'.encode()
    for _ in range(50):
        packets = EngineIO.payload_decode(EngineIO.PayloadFormat.V4, payload)
        assert [x.get_packet_type() for x in packets] == [T.MESSAGE, T.MESSAGE, T.PING]
        assert packets[1].get_data().get_data() == b'\x00\x01\xff'
        del packets
    v3 = EngineIO.payload_encode(EngineIO.PayloadFormat.V3_TEXT,
                                 [EngineIO.Packet.new_text(T.MESSAGE, 'é€😀', -1)])
    assert v3.get_data() == '5:4é€😀'.encode()

    assert EngineIO.packet_type_to_string(T.NOOP) == 'noop'
    assert EngineIO.packet_type_from_string('pong') == (True, T.PONG)
    assert EngineIO.packet_type_from_string('PONG')[0] is False
    assert EngineIO.protocol_version_from_string('3') == (True, EngineIO.ProtocolVersion.V3)
    assert EngineIO.protocol_version_from_string('04')[0] is False
    assert EngineIO.protocol_version_to_string(EngineIO.ProtocolVersion.V4) == '4'
    assert EngineIO.transport_type_to_string(EngineIO.TransportType.WEBSOCKET) == 'websocket'
    assert EngineIO.transport_type_from_string('polling') == (True,
                                                              EngineIO.TransportType.POLLING)
    assert EngineIO.close_reason_to_string(EngineIO.CloseReason.SERVER_SHUTTING_DOWN) == \
        'server shutting down'


def test_errors_are_glib_errors():
    with pytest.raises(GLib.Error) as info:
        EngineIO.Packet.decode(GLib.Bytes.new(b'9x'), False, EngineIO.ProtocolVersion.V4)
    e = info.value
    assert e.domain == 'engine-io-error-quark'
    assert e.code == EngineIO.Error.PARSE
    assert e.matches(ERR, EngineIO.Error.PARSE)
    assert 'offset 0' in e.message
    with pytest.raises(GLib.Error) as info:
        EngineIO.payload_decode(EngineIO.PayloadFormat.V4, GLib.Bytes.new(b'4a\x1e\x1e4b'))
    assert info.value.matches(ERR, EngineIO.Error.PARSE)

    a = EngineIO.Server()
    a.listen('127.0.0.1', 0)
    try:
        b = EngineIO.Server()
        with pytest.raises(GLib.Error) as info:
            b.listen('127.0.0.1', a.get_port())
        assert info.value.matches(ERR, EngineIO.Error.LISTEN)
        c = EngineIO.Server()
        with pytest.raises(GLib.Error) as info:
            c.listen('not an address', 0)
        assert info.value.matches(ERR, EngineIO.Error.INVALID_ARGUMENT)
    finally:
        a.close()
    with pytest.raises(GLib.Error) as info:
        a.listen('127.0.0.1', 0)
    assert info.value.matches(ERR, EngineIO.Error.CLOSED)
    a.close()  # idempotent


# --------------------------------------------------------------------------------------------
# Real clients, in every threading and delivery mode


@pytest.mark.parametrize('transports', ['polling', 'polling,websocket'])
def test_node_echo(app, transports):
    messages = ['hello', 'héllo wörld 😀 €', '', b'\x00\x01\x02\xff', b'']
    c = NodeClient(app.url, '--transports', transports, *send_args(*messages),
                   '--expect', str(len(messages)), '--close').wait()
    assert len(c.of('open')) == 1
    got = [m.get('text', base64.b64decode(m.get('binary', ''))) for m in c.of('message')]
    assert got == messages, 'echoes differ: %r' % got
    kinds = ['text' if 'text' in m else 'binary' for m in c.of('message')]
    assert kinds == ['text', 'text', 'text', 'binary', 'binary']

    sid = c.of('open')[0]['sid']
    run_loop_until(lambda: app.rec.count('close') == 1, 10, '::close')
    # What Python saw: text as str, binary as GLib.Bytes (recorded as its bytes).
    msgs = [(e[2], e[3]) for e in app.rec.of('message')]
    assert msgs == [('hello', None), ('héllo wörld 😀 €', None), ('', None),
                    (None, b'\x00\x01\x02\xff'), (None, b'')]
    (close,) = app.rec.of('close')
    assert close[1] == sid and close[2] == EngineIO.CloseReason.TRANSPORT_CLOSE
    app.check_threads()


def test_python_client_echo(app):
    # python3-engineio 4.3 POSTs polling payloads as Latin-1 (a str body to requests), which
    # is not UTF-8 and rightly fails with `parse error`: non-ASCII text only over WebSocket.
    ascii_messages = ['hi from python', b'\x00bin\xff', '']
    clients = [PyClient(app.url, ascii_messages, expect=3, transports=['polling']),
               PyClient(app.url, ['ünïcödé 😀', b'\x00', 'x'], expect=3, transports=['websocket']),
               PyClient(app.url, ascii_messages, expect=3)]
    for c in clients:
        c.wait()
        assert c.received == c.args[1]
    run_loop_until(lambda: app.rec.count('close') == 3, 10, 'three ::close')
    assert_closed_by_clients(app.rec, clients)
    assert {e[1] for e in app.rec.of('connection')} == {c.connected_sid for c in clients}
    app.check_threads()


def test_admission_and_id_hooks(app):
    seen = []
    counter = [0]
    lock = threading.Lock()

    def admit(server, hs):
        assert server is app.server
        seen.append((hs.get_query_param('token'), hs.get_header('X-Token'),
                     hs.get_remote_address(), hs.get_protocol_version(), hs.get_transport(),
                     hs.get_method(), hs.get_path(), dict(hs.get_query()), is_main_thread()))
        return 'good' in (hs.get_query_param('token'), hs.get_header('x-token'))

    def make_id(server, hs):
        with lock:
            counter[0] += 1
            return 'py-%d-%s' % (counter[0], hs.get_query_param('token') or 'hdr')

    app.server.set_admission_func(admit)
    app.server.set_id_func(make_id)

    # Refused: HTTP 403, JSON code 4, and no session.
    status, headers, body = http_in_thread('GET', app.url + '?EIO=4&transport=polling&token=bad')
    assert status == 403
    assert headers['Content-Type'].startswith('application/json')
    assert json.loads(body) == {'code': 4, 'message': 'Forbidden'}
    assert app.rec.count('connection') == 0

    # Accepted, with the id from the Python id function.
    c = NodeClient(app.url, '--query', 'token=good', *send_args('x'), '--expect', '1',
                   '--close').wait()
    assert c.of('open')[0]['sid'].startswith('py-') and c.of('open')[0]['sid'].endswith('-good')
    # The python client is refused, then admitted through a header.
    refused = PyClient(app.url, headers={'X-Token': 'nope'}).wait(ok=False)
    assert isinstance(refused.error, engineio.exceptions.ConnectionError)
    ok = PyClient(app.url, ['y'], expect=1, headers={'X-Token': 'good'}).wait()
    assert ok.connected_sid.endswith('-hdr')

    token, header, addr, version, transport, method, path, query, main = seen[0]
    assert (token, header, addr) == ('bad', None, '127.0.0.1')
    assert version == EngineIO.ProtocolVersion.V4
    assert transport == EngineIO.TransportType.POLLING
    assert (method, path) == ('GET', '/engine.io/')
    assert query['EIO'] == '4' and query['token'] == 'bad'
    # The hooks run where the session's signals run.
    assert all(s[-1] == (app.delivery == 'context') for s in seen)
    assert len(seen) == 4
    run_loop_until(lambda: app.rec.count('close') == 2, 10, 'two ::close')

    # Hooks can be removed again.
    app.server.set_admission_func(None)
    app.server.set_id_func(None)
    assert handshake(app.url)['sid'].startswith('py-') is False


def test_close_reasons(mode_app_short_ping):
    app = mode_app_short_ping

    def hook(app_, socket, text, data):
        if text == 'close me':
            socket.close()
            return True
        return False
    app.hook = hook

    # forced close: the application closes the socket from its ::message handler.
    c = NodeClient(app.url, '--transports', 'websocket', *send_args('before', 'close me')).wait()
    assert [m.get('text') for m in c.of('message')] == ['before']
    assert len(c.of('close')) == 1

    # ping timeout: a polling client that handshakes and then never answers.
    sid_ping = handshake(app.url)['sid']
    # parse error: a malformed payload.
    sid_parse = handshake(app.url)['sid']
    http_in_thread('POST', app.url + '?EIO=4&transport=polling&sid=' + sid_parse,
                   body=b'9garbage', headers={'Content-Type': 'text/plain;charset=UTF-8'})

    run_loop_until(lambda: app.rec.count('close') == 3, 10, 'three ::close')
    reasons = {e[1]: e[2] for e in app.rec.of('close')}
    assert reasons[c.of('open')[0]['sid']] == EngineIO.CloseReason.FORCED_CLOSE
    assert reasons[sid_ping] == EngineIO.CloseReason.PING_TIMEOUT
    assert reasons[sid_parse] == EngineIO.CloseReason.PARSE_ERROR

    # server shutting down
    sid_down = handshake(app.url)['sid']
    run_loop_until(lambda: app.rec.count('connection') == 4, 5, 'the fourth session')
    app.close()
    if app.delivery == 'context':  # close() itself ran the context while it waited
        assert app.rec.count('close') == 4
    run_loop_until(lambda: app.rec.count('close') == 4, 5, 'the fourth ::close')
    reasons = {e[1]: e[2] for e in app.rec.of('close')}
    assert reasons[sid_down] == EngineIO.CloseReason.SERVER_SHUTTING_DOWN
    app.check_threads()


@pytest.mark.parametrize('mode', [(0, 'threads'), (0, 'context')], ids=['threads', 'context'])
@pytest.mark.parametrize('transports', ['polling', 'websocket'])
def test_send_after_close(mode, transports):
    """A handler that calls socket.close() and then sends: close() documents that what was
    queued *before* it still goes out, followed by the close packet, so the later send must
    not reach the client (it should fail with ENGINE_IO_ERROR_CLOSED, as a send on an ended
    session does; the reference server drops it)."""
    app = EchoApp(mode)
    late = []

    def hook(app_, socket, text, data):
        if text == 'close me':
            socket.send_text('queued before close')
            socket.close()
            try:
                socket.send_text('too late')
                late.append('accepted')
            except GLib.Error as e:
                late.append((e.domain, e.code))
            return True
        return False
    app.hook = hook
    try:
        c = NodeClient(app.url, '--transports', transports, *send_args('close me')).wait()
        run_loop_until(lambda: app.rec.count('close') == 1, 10, '::close')
    finally:
        app.close()
    assert app.rec.of('close')[0][2] == EngineIO.CloseReason.FORCED_CLOSE
    assert [m.get('text') for m in c.of('message')] == ['queued before close'], \
        'a message sent after close() reached the client (send returned %s)' % late
    assert late == [('engine-io-error-quark', int(EngineIO.Error.CLOSED))]


@pytest.fixture(params=MODES)
def mode_app_short_ping(request):
    a = EchoApp(request.param, ping_interval=200, ping_timeout=200)
    yield a
    a.close()


def test_shutdown_while_handlers_run(app):
    """server.close() from the main thread while clients keep sending and Python handlers
    (10 ms each) send and call back into the library: no deadlock, close() returns promptly,
    every session ends with `server shutting down`, no ::message after it. In context mode
    the handlers must also leave the application's main loop responsive."""
    n, per = 4, 60
    running = [0]
    lock = threading.Lock()
    closed_sockets = []

    def hook(app_, socket, text, data):
        with lock:
            running[0] += 1
        try:
            server = socket.get_server()
            assert server is app_.server
            server.get_socket_count()
            server.lookup_socket(socket.get_id())
            for s in server.get_sockets():
                s.get_id()
            socket.get_send_queue_length()
            socket.get_handshake().get_query()
            time.sleep(0.01)  # a slow handler (the GIL is released meanwhile)
            socket.send_text('reply ' + text)
        except GLib.Error as e:
            app_.rec.add('send-error', socket.get_id(), e.domain, e.code)
            closed_sockets.append(socket)
        finally:
            with lock:
                running[0] -= 1
        return True
    app.hook = hook

    c = NodeClient(app.url, '--count', str(n), '--transports', 'websocket', '--interval', '10',
                   *send_args(*['m%d' % i for i in range(per)]))
    ticks = []
    tick_id = GLib.timeout_add(20, lambda: ticks.append(time.monotonic()) or True)
    run_loop_until(lambda: app.rec.count('connection') == n and app.rec.count('message') >= n,
                   15, 'every session to get messages')
    spin(0.3)
    GLib.source_remove(tick_id)
    if app.delivery == 'context':
        gaps = [b - a for a, b in zip(ticks, ticks[1:])] or [99]
        assert max(gaps) < 1.0, (
            'the main loop was starved for %.1f s by ::message handlers (a session dispatches '
            'its inbound queue until it is empty, and the client sends faster than the '
            'handler runs)' % max(gaps))
    else:
        run_loop_until(lambda: running[0] > 0, 5, 'a handler running during close()')
    assert not c.finished()  # the clients are still sending

    before = app.rec.count('message')
    start = time.monotonic()
    app.close()
    took = time.monotonic() - start
    after = app.rec.count('message')
    assert took < 1.5 and after - before <= 2 * n, (
        'server.close() took %.1f s while clients kept sending; %d ::message were emitted '
        'after it started' % (took, after - before))
    assert app.rec.count('close') == n, 'close() returned before every ::close'
    assert {e[2] for e in app.rec.of('close')} == {EngineIO.CloseReason.SERVER_SHUTTING_DOWN}
    spin(0.2)
    assert app.rec.count('message') == after, '::message after the server closed'
    assert all(e[3] == EngineIO.Error.CLOSED for e in app.rec.of('send-error'))
    assert app.server.get_socket_count() == 0
    c.wait()
    assert len(c.of('close')) == n
    app.check_threads()


def test_hundred_sessions(app):
    n = 100
    ready = threading.Event()
    peak = [0]

    def on_connection(server, socket):
        count = server.get_socket_count()
        peak[0] = max(peak[0], count)
        if count == n and not ready.is_set():
            ready.set()
            for s in server.get_sockets():  # a list of EngineIO.Socket
                s.send_text('all connected')
    app.server.connect_after('connection', on_connection)

    c = NodeClient(app.url, '--count', str(n), '--transports', 'websocket',
                   *send_args('t', b'b'), '--expect', '3', '--close', timeout=40).wait()
    assert len(c.of('open')) == n and len(c.of('close')) == n
    per_socket = {}
    for m in c.of('message'):
        per_socket.setdefault(m['i'], []).append(m.get('text', m.get('binary')))
    assert all(sorted(v, key=str) == sorted(['t', base64.b64encode(b'b').decode(),
                                             'all connected'], key=str)
               for v in per_socket.values()), per_socket
    assert peak[0] == n
    run_loop_until(lambda: app.rec.count('close') == n, 15, 'every ::close')
    assert app.rec.count('message') == 2 * n
    app.check_threads()


def test_python_thread_receive(app):
    """engine_io_socket_receive() from a Python thread, for sockets without ::message."""
    if app.delivery == 'context':
        # receive() must not be called from the socket's own context (the main thread here),
        # but any other thread may block on it.
        pass
    got = []

    def reader(socket):
        try:
            while True:
                packet = socket.receive(None)
                got.append(packet.get_text()[0] if not packet.is_binary()
                           else packet.get_data().get_data())
                if packet.is_binary():
                    socket.send_binary(packet.get_data())
                else:
                    socket.send_text(packet.get_text()[0])
        except GLib.Error as e:
            got.append(('end', e.code))

    def on_connection(server, socket):
        threading.Thread(target=reader, args=(socket,), daemon=True).start()

    # Replace the echo handler: no ::message handler, so messages go to the receive queue.
    app.server.disconnect_by_func(app.on_connection)
    app.server.connect('connection', on_connection)
    c = NodeClient(app.url, *send_args('q1', b'\x01', 'q2'), '--expect', '3', '--close').wait()
    assert [m.get('text') or base64.b64decode(m['binary']) for m in c.of('message')] == \
        ['q1', b'\x01', 'q2']
    run_loop_until(lambda: got and got[-1] == ('end', EngineIO.Error.CLOSED), 10, 'reader end')
    assert got[:3] == ['q1', b'\x01', 'q2']


def poll_session(app):
    """A raw v4 polling session: (sid, url with the sid)."""
    sid = handshake(app.url)['sid']
    return sid, app.url + '?EIO=4&transport=polling&sid=' + sid


def test_text_with_nul(app):
    """Text with U+0000 from Python: ::packet's get_text_bytes() has it whole (::message's
    str stops at it), send_text_len() sends it whole (issue 12)."""
    seen = []

    def on_packet(socket, packet):
        if packet.get_packet_type() != EngineIO.PacketType.MESSAGE or packet.is_binary():
            return
        raw = packet.get_text_bytes().get_data()
        seen.append(raw.decode())
        socket.send_text_len(raw)                     # bytes in, the whole text out
        socket.send_text_len('é\x00ok'.encode())

    def on_connection(server, socket):
        socket.connect('packet', on_packet)
        socket.connect('message', lambda *a: None)    # nothing waits in the receive queue

    app.server.disconnect_by_func(app.on_connection)
    app.server.connect('connection', on_connection)
    sid, url = poll_session(app)
    status, _, body = http_in_thread('POST', url, '4a\x00b'.encode())
    assert (status, body) == (200, b'ok')
    # The handler's two sends may be answered by one poll or two (a poll
    # waiting when the first is queued is answered at once).
    packets = []
    while len(packets) < 2:
        status, _, body = http_in_thread('GET', url)
        assert status == 200
        packets += body.decode().split('\x1e')
    assert packets == ['4a\x00b', '4é\x00ok'], packets
    assert seen == ['a\x00b']

    # No network: the packet API.
    p = EngineIO.Packet.decode(GLib.Bytes.new('4x\x00y'.encode()), False,
                               EngineIO.ProtocolVersion.V4)
    assert p.get_text_bytes().get_data() == b'x\x00y'
    assert p.get_text()[1] == 3
    assert EngineIO.Packet.new_binary(EngineIO.PacketType.MESSAGE,
                                      GLib.Bytes.new(b'\x00')).get_text_bytes() is None
    with pytest.raises(GLib.Error) as info:
        for s_ in app.server.get_sockets():
            s_.send_text_len(b'\xff\xfe')
    assert info.value.matches(ERR, EngineIO.Error.INVALID_ARGUMENT)


def test_message_func(app):
    """Socket.set_message_func() from Python: messages go to the function (not ::message,
    not the receive queue), in the socket's context; the function and what it holds are
    released after ::close."""
    import weakref

    class Held:
        pass

    seen = []
    refs = []

    def on_connection(server, socket):
        held = Held()
        refs.append(weakref.ref(held))

        def on_message(sock, packet, *args):
            assert held is not None
            text = packet.get_text()[0]
            seen.append((sock.get_id(), text, is_main_thread()))
            sock.send_text('re:' + text)
        socket.set_message_func(on_message)
        socket.connect('message', lambda *a: seen.append('signal'))
        socket.connect('close', app.on_close)

    app.server.disconnect_by_func(app.on_connection)
    app.server.connect('connection', on_connection)
    sid, url = poll_session(app)
    for text in ('a', 'b'):
        status, _, body = http_in_thread('POST', url, ('4' + text).encode())
        assert (status, body) == (200, b'ok')
    packets = []
    while len(packets) < 2:
        status, _, body = http_in_thread('GET', url)
        assert status == 200
        packets += body.decode().split('\x1e')
    assert packets == ['4re:a', '4re:b'], packets
    expect_main = app.delivery == 'context'
    assert seen == [(sid, 'a', expect_main), (sid, 'b', expect_main)], seen
    assert app.server.get_sockets()[0].try_receive() is None
    assert len(refs) == 1 and refs[0]() is not None

    status, _, body = http_in_thread('POST', url, b'1')
    assert status == 200
    run_loop_until(lambda: app.rec.count('close') == 1, 10, 'the close')
    gc.collect()
    run_loop_until(lambda: refs[0]() is None, 5, 'the message function released')


@pytest.mark.parametrize('where', ['socket', 'server', 'outside'])
def test_overrides_on_message_keeps_nothing(app, where):
    """Socket.on('message') and Server.on('message') hand every message to their handlers
    (all of them, in order, a raising one not stopping the others) and keep none for
    receive(): kept, they would fill the receive queue to its mark and stop the session's
    reading (8 MiB by default).  'outside': Socket.on() called outside the socket's context
    (here the test's thread, after the handshake)."""
    seen = []

    def first(socket, data):
        seen.append(('first', data))
        if data == 'raise':
            raise RuntimeError('a handler that raises (expected in this test)')

    def second(socket, data):
        seen.append(('second', data, is_main_thread()))

    def on_connection(server, socket):
        if where == 'socket':
            socket.on('message', first)
            # Cleared by the application in between: on() sets the function again.
            socket.set_message_func(None)
            socket.on('message', second)
        socket.connect('close', app.on_close)

    app.server.disconnect_by_func(app.on_connection)
    if where == 'server':
        app.server.on('message', first)
        app.server.on('message', second)
    app.server.connect('connection', on_connection)
    sid, url = poll_session(app)
    if where == 'outside':
        socket = app.server.get_sockets()[0]
        assert not socket.get_context().is_owner()
        socket.on('message', first)
        socket.on('message', second)
    for text in ('a', 'raise', 'b\x00c'):
        status, _, body = http_in_thread('POST', url, ('4' + text).encode())
        assert (status, body) == (200, b'ok')
    status, _, body = http_in_thread('POST', url, b'b' + base64.b64encode(b'\x00\xff'))
    assert (status, body) == (200, b'ok')
    expect_main = app.delivery == 'context'
    expected = []
    for data in ('a', 'raise', 'b\x00c', b'\x00\xff'):
        expected += [('first', data), ('second', data, expect_main)]
    run_loop_until(lambda: len(seen) == len(expected), 10, 'the messages')
    assert seen == expected, seen
    assert app.server.get_sockets()[0].try_receive() is None


def test_overrides_loaded():
    """The overrides in src/python are the ones in use (a stale or missing one fails)."""
    assert EngineIO.Server.__module__ == 'gi.overrides.EngineIO'
    assert EngineIO.Socket.__module__ == 'gi.overrides.EngineIO'
    assert EngineIO.Packet.__module__ == 'gi.overrides.EngineIO'


def test_overrides_packet():
    """Packet.text / Packet.value; bytes where the C API takes GLib.Bytes (no network)."""
    T = EngineIO.PacketType
    p = EngineIO.Packet.decode(GLib.Bytes.new('4x\x00é'.encode()), False,
                               EngineIO.ProtocolVersion.V4)
    assert p.text == 'x\x00é' and p.value == 'x\x00é'
    b = EngineIO.Packet.new_binary(T.MESSAGE, b'\x00\x01\xff')
    assert isinstance(b, EngineIO.Packet)
    assert b.text is None and b.value == b'\x00\x01\xff'
    assert EngineIO.Packet.new_binary(T.MESSAGE, bytearray(b'ab')).value == b'ab'
    assert EngineIO.Packet.new_binary(T.MESSAGE, memoryview(b'')).value == b''
    assert EngineIO.Packet.new_binary(T.MESSAGE, GLib.Bytes.new(b'z')).value == b'z'
    with pytest.raises(TypeError):
        EngineIO.Packet.new_binary(T.MESSAGE, 'not bytes')


def test_overrides_listen_keywords():
    server = EngineIO.Server()
    port = server.listen(address='127.0.0.1')
    try:
        assert isinstance(port, int) and port == server.get_port() and port > 0
        other = EngineIO.Server()
        with pytest.raises(GLib.Error) as info:
            other.listen(port=port, address='127.0.0.1')
        assert info.value.matches(ERR, EngineIO.Error.LISTEN)
        with pytest.raises(ValueError):
            server.on('no-such-event', lambda *a: None)
    finally:
        server.close()


def test_overrides_broadcast_no_sockets():
    server = EngineIO.Server()
    assert server.broadcast('text \x00 é') == 0
    assert server.broadcast(b'\x00\xff') == 0
    assert server.broadcast(bytearray(b'x'), except_socket=None) == 0
    with pytest.raises(TypeError):
        server.broadcast(42)


@pytest.mark.parametrize('mode', MODES)
def test_overrides_echo(mode):
    """An echo written with the overrides only: str and bytes in, str and bytes out, U+0000
    and non-ASCII text whole, send callbacks, close reasons as strings; against npm
    engine.io-client over polling and WebSocket."""
    loop_threads, delivery = mode
    kw = dict(ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, loop_threads=loop_threads)
    if delivery == 'context':
        kw['callback_context'] = GLib.MainContext.default()
    server = EngineIO.Server(**kw)
    rec = Recorder()

    # 'message' first: the socket's message function is set before the 'drain' handler
    # is connected, which sets it again (with a message function, the socket looks for
    # ::drain handlers when the function is set).
    @server.on('message')
    def message(socket, data):
        rec.add('message', type(data).__name__, data)
        # The reply to the last message waits for the writes of the echoes.
        if data == 'done?':
            socket.send('done', callback=lambda s, sent: rec.add('sent', sent))
            rec.add('broadcast', server.broadcast('to-others', except_socket=socket))
        else:
            socket.send(data)

    @server.on('connection')
    def connection(socket):
        rec.add('connection', socket.get_id())
        socket.on('drain', lambda s: rec.add('drain', s.get_id()))

    server.on('close', lambda socket, reason, description: rec.add('close', reason))
    port = server.listen(address='127.0.0.1', port=0)
    url = 'http://127.0.0.1:%d/engine.io/' % port
    messages = ['hello', 'a\x00b', 'héllo 😀', '', b'\x00\x01\xff', b'', 'done?']
    try:
        for transports in ('polling', 'websocket'):
            c = NodeClient(url, '--transports', transports, *send_args(*messages),
                           '--expect', str(len(messages)), '--close').wait()
            got = [m.get('text', base64.b64decode(m.get('binary', ''))) for m in c.of('message')]
            assert got == messages[:-1] + ['done'], 'echoes differ: %r' % got
        run_loop_until(lambda: rec.count('close') == 2, 10, 'two close handlers')
        seen = [(e[1], e[2]) for e in rec.of('message')]
        assert seen == [(type(m).__name__, m) for m in messages] * 2
        assert [e[1] for e in rec.of('sent')] == [True, True]
        assert [e[1] for e in rec.of('broadcast')] == [0, 0]   # one client at a time
        assert [e[1] for e in rec.of('close')] == ['transport close'] * 2
        # Both sessions had their sends drained.
        assert len({e[1] for e in rec.of('drain')}) == 2, rec.of('drain')
    finally:
        server.close()


class SessionState(GObject.Object):
    """Per-session data a Python application keeps on the socket."""

    def __init__(self, name):
        super().__init__()
        self.name = name


def test_user_object(app):
    """set_user_object()/dup_user_object(): per-socket data from Python, read from any thread
    (issue 12, item 9)."""
    states = {}

    def on_connection(server, socket):
        state = SessionState('user-%d' % len(states))
        states[socket.get_id()] = state
        socket.set_user_object(state)

    app.server.disconnect_by_func(app.on_connection)
    app.server.connect('connection', on_connection)
    sids = [poll_session(app)[0] for _ in range(2)]
    run_loop_until(lambda: len(states) == 2, 10, 'two sessions')

    read = {}

    def reader():  # another thread than the one that set them
        for socket in app.server.get_sockets():
            read[socket.get_id()] = socket.dup_user_object()

    t = threading.Thread(target=reader)
    t.start()
    t.join()
    assert set(read) == set(sids)
    for sid in sids:
        assert read[sid] is states[sid]
        assert read[sid].name == states[sid].name
    socket = app.server.lookup_socket(sids[0])
    socket.set_user_object(None)
    assert socket.dup_user_object() is None


def test_close_from_handler(app):
    """server.close() from a ::message handler returns at once (it used to crash, freeze for
    10 s or be refused); close_async() calls back on the main thread once every session closed
    (issue 12, item 8)."""
    done = []

    def closed(server, result):
        done.append((server.close_finish(result), is_main_thread(), app.rec.count('close'),
                     time.monotonic()))

    def hook(app_, socket, text, data):
        if text != '/shutdown':
            return False
        start = time.monotonic()
        socket.get_server().close()
        app_.rec.add('close-call', time.monotonic() - start)
        socket.get_server().close_async(None, closed)
        return True
    app.hook = hook

    sids = [poll_session(app)[0] for _ in range(2)]
    start = time.monotonic()
    status, _, body = http_in_thread('POST', app.url + '?EIO=4&transport=polling&sid=' + sids[0],
                                     b'4/shutdown')
    assert (status, body) == (200, b'ok')
    run_loop_until(lambda: done, 8, 'the close_async callback')
    ok, on_main, closes, at = done[0]
    assert ok and on_main
    assert closes == 2, 'the callback ran before every ::close'
    assert at - start < 5
    assert app.rec.of('close-call')[0][1] < 1.0, 'close() from a handler blocked'
    assert {e[2] for e in app.rec.of('close')} == {EngineIO.CloseReason.SERVER_SHUTTING_DOWN}
    assert app.server.get_socket_count() == 0
    app.check_threads()


# --------------------------------------------------------------------------------------------
# data/python/echo.py


def script_env():
    """The environment of data/python scripts: the overrides from the source tree."""
    return dict(os.environ, PYTHONUNBUFFERED='1', PYTHONDONTWRITEBYTECODE='1',
                PYTHONPATH=os.pathsep.join(filter(None, [OVERRIDES, os.environ.get('PYTHONPATH')])))


def start_script(path, *args):
    proc = subprocess.Popen([sys.executable, path, '--port', '0'] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=script_env())
    line = proc.stdout.readline()
    if not line.startswith('listening on http://'):
        proc.kill()
        raise AssertionError('%s did not start: %r %s' % (path, line, proc.stderr.read()))
    return proc, line.split()[-1]


def stop_script(proc, signum=signal.SIGINT):
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=12)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError('script did not exit after signal %d' % signum)
    assert proc.returncode == 0, (proc.returncode, err)
    return out, err


@pytest.mark.parametrize('cb', ['main', 'threads'])
def test_echo_py(cb):
    proc, url = start_script(ECHO_PY, '--verbose', '--callback-context', cb,
                             '--loop-threads', '2')
    try:
        assert url.endswith('/engine.io/')
        messages = ['echo.py says hi', b'\x00\xff', '😀']
        c = NodeClient(url, *send_args(*messages), '--expect', '3', '--close').wait()
        got = [m.get('text', None) if 'text' in m else base64.b64decode(m['binary'])
               for m in c.of('message')]
        assert got == messages
        p = PyClient(url, ['from python'], expect=1).wait()
        assert p.received == ['from python']
        # A client still connected when Ctrl-C arrives is closed gracefully.
        held = NodeClient(url, '--transports', 'websocket')
        run_loop_until(lambda: held.of('open'), 10, 'the held client to open')
    except BaseException:
        proc.kill()
        raise
    out, err = stop_script(proc, signal.SIGINT)
    held.wait()
    assert held.of('close'), held.events
    sid = c.of('open')[0]['sid']
    assert 'open %s v4 polling' % sid in out
    assert 'upgrade %s websocket' % sid in out
    assert 'close %s transport close' % sid in out
    assert 'close %s server shutting down' % held.of('open')[0]['sid'] in out, out


def test_echo_py_sigterm_and_errors():
    proc, url = start_script(ECHO_PY, '--eio3')
    out, err = stop_script(proc, signal.SIGTERM)
    # A busy port is an error message and status 1, not a traceback.
    blocker = EngineIO.Server()
    blocker.listen('127.0.0.1', 0)
    try:
        r = subprocess.run([sys.executable, ECHO_PY, '--port', str(blocker.get_port())],
                           capture_output=True, text=True, timeout=20, env=script_env())
    finally:
        blocker.close()
    assert r.returncode == 1 and 'Address already in use' in r.stderr, r
    assert 'Traceback' not in r.stderr


# --------------------------------------------------------------------------------------------
# data/python/chat.py


def load_chat():
    spec = importlib.util.spec_from_file_location('engineio_chat_example', CHAT_PY)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True
    spec.loader.exec_module(module)
    return module


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ChatHarness:
    def __init__(self, history=3):
        self.chat = load_chat()
        self.clock = FakeClock()
        self.room = self.chat.ChatRoom(history_length=history, monotonic=self.clock,
                                       real=lambda: 1700000000.123)
        self.inbox = {}
        self.sessions = {}

    def connect(self, who):
        self.inbox[who] = []
        self.sessions[who] = self.room.new_session(
            lambda frame, who=who: self.inbox[who].append(json.loads(frame)))
        return self.sessions[who]

    def send(self, who, obj):
        self.sessions[who].receive(obj if isinstance(obj, str) else json.dumps(obj))

    def take(self, who):
        frames, self.inbox[who] = self.inbox[who], []
        return frames

    def login(self, who, name=None):
        self.connect(who)
        self.send(who, {'type': 'login', 'name': name or who})
        return self.take(who)


def test_chat_logic():
    h = ChatHarness(history=3)
    (welcome,) = h.login('alice', '  alice \t')
    assert welcome == {'type': 'welcome', 'name': 'alice', 'users': ['alice'], 'count': 1,
                       'history': []}
    (welcome,) = h.login('bob')
    assert welcome['users'] == ['alice', 'bob'] and welcome['count'] == 2
    assert h.take('alice') == [{'type': 'joined', 'name': 'bob', 'count': 2}]

    for i in range(4):
        h.send('alice', {'type': 'message', 'text': 'msg %d' % i})
    msg = {'type': 'message', 'name': 'alice', 'text': 'msg 3', 'time': 1700000000123}
    assert h.take('alice')[-1] == msg and h.take('bob')[-1] == msg  # sender included

    (welcome,) = h.login('carol')
    assert [e['text'] for e in welcome['history']] == ['msg 1', 'msg 2', 'msg 3']
    assert welcome['history'][0] == {'name': 'alice', 'text': 'msg 1', 'time': 1700000000123}
    h.take('alice'), h.take('bob')

    h.send('bob', {'type': 'typing'})
    h.send('bob', {'type': 'stop-typing'})
    assert h.take('bob') == []
    assert h.take('alice') == [{'type': 'typing', 'name': 'bob'},
                               {'type': 'stop-typing', 'name': 'bob'}]
    assert len(h.take('carol')) == 2

    h.sessions['bob'].close()
    assert h.take('alice') == [{'type': 'left', 'name': 'bob', 'count': 2}]
    assert h.room.users() == ['alice', 'carol'] and h.room.count == 2
    # A name is free again once its user left.
    assert h.login('bob2', 'bob')[0]['type'] == 'welcome'


@pytest.mark.parametrize('frame,code', [
    ('not json', 'bad-json'),
    ('[1,2]', 'bad-message'),
    ('{"type": 4}', 'bad-message'),
    ('{"text": "x"}', 'bad-message'),
    ('{"type": "dance"}', 'unknown-type'),
    ('{"type": "message", "text": "hi"}', 'not-logged-in'),
    ('{"type": "typing"}', 'not-logged-in'),
    ('{"type": "login"}', 'bad-message'),
    ('{"type": "login", "name": "   "}', 'bad-name'),
    ('{"type": "login", "name": ""}', 'bad-name'),
    ('{"type": "login", "name": "%s"}' % ('x' * 33), 'bad-name'),
    ('{"type": "login", "name": "a\\u0007b"}', 'bad-name'),
    ('{"type": "login", "name": "taken"}', 'name-taken'),
    ('{"type": "login", "name": " taken "}', 'name-taken'),
    ('{"type": "message", "text": "%s"}' % ('y' * 2000), 'too-long'),
])
def test_chat_errors(frame, code):
    h = ChatHarness()
    h.login('taken')
    h.connect('x')
    h.send('x', frame)
    (err,) = h.take('x')
    assert err['type'] == 'error' and err['code'] == code, err
    assert isinstance(err['message'], str) and err['message']
    assert h.take('taken') == []  # errors go to the sender only


def test_chat_limits():
    h = ChatHarness()
    h.login('a')
    # 32 characters (after trimming) is fine, emoji count as one character each.
    assert h.login('b', ' ' + '😀' * 32 + ' ')[0]['name'] == '😀' * 32
    h.take('a')
    # A frame of exactly 2000 characters is accepted; text must not be blank.
    body = '{"type":"message","text":"%s"}'
    h.send('a', body % ('z' * (2000 - len(body % ''))))
    assert h.take('a')[0]['type'] == 'message'
    h.send('a', body % '  ')
    assert h.take('a')[0]['code'] == 'bad-message'
    h.send('a', {'type': 'login', 'name': 'again'})
    assert h.take('a')[0]['code'] == 'bad-message'
    h.sessions['a'].receive_binary()
    assert h.take('a')[0]['code'] == 'bad-message'


def test_chat_rate_limit():
    h = ChatHarness()
    h.login('spam')            # 1 token
    h.login('reader')
    h.take('spam')
    for i in range(25):        # 19 tokens left: 19 pass, 6 dropped, one error
        h.send('spam', {'type': 'message', 'text': str(i)})
    frames = h.take('spam')
    errors = [f for f in frames if f['type'] == 'error']
    assert [f['code'] for f in errors] == ['rate-limited']
    assert len([f for f in frames if f['type'] == 'message']) == 19
    assert len(h.take('reader')) == 19
    h.clock.now += 0.1         # 10 per second: one more token
    h.send('spam', {'type': 'message', 'text': 'ok again'})
    h.send('spam', {'type': 'message', 'text': 'dropped'})
    frames = h.take('spam')
    assert [f.get('text') or f['code'] for f in frames] == ['ok again', 'rate-limited']
    h.clock.now += 100         # the bucket refills to the burst (20), not more
    for i in range(21):
        h.send('spam', {'type': 'typing'})
    assert [f['code'] for f in h.take('spam')] == ['rate-limited']
    assert len(h.take('reader')) == 21  # 'ok again' + 20 typing


def test_chat_threads_are_safe():
    h = ChatHarness(history=50)
    names = ['u%d' % i for i in range(8)]
    for n in names:
        h.login(n)
    h.clock.now += 1000
    # Lots of tokens would be needed: lift the clock as we go.

    def talk(n):
        for i in range(15):
            h.sessions[n].receive(json.dumps({'type': 'message', 'text': '%s-%d' % (n, i)}))
    threads = [threading.Thread(target=talk, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Everyone saw every message, in the same order.
    orders = [[f['text'] for f in h.inbox[n] if f['type'] == 'message'] for n in names]
    assert len(orders[0]) == 8 * 15
    assert all(o == orders[0] for o in orders)
    assert [e['text'] for e in h.room.history] == orders[0][-50:]


@pytest.mark.parametrize('cb', ['main', 'threads'])
def test_chat_py_end_to_end(cb):
    proc, url = start_script(CHAT_PY, '--history', '2', '--callback-context', cb)
    try:
        inbox = {}

        def client(key, name):
            c = engineio.Client(handle_sigint=False)
            inbox[key] = []
            # python3-engineio decodes JSON text messages itself (a dict arrives).
            c.on('message', lambda data: inbox[key].append(
                data if isinstance(data, dict) else json.loads(data)))
            c.connect(url.replace('/engine.io/', ''), transports=['websocket'])
            c.send(json.dumps({'type': 'login', 'name': name}))
            return c

        def wait_for(key, pred, what):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if any(pred(f) for f in list(inbox[key])):
                    return
                time.sleep(0.01)
            raise AssertionError('%s never got %s: %r' % (key, what, inbox[key]))

        alice = client('alice', 'alice')
        wait_for('alice', lambda f: f['type'] == 'welcome', 'welcome')
        for t in ('one', 'two', 'three'):
            alice.send(json.dumps({'type': 'message', 'text': t}))
        wait_for('alice', lambda f: f.get('text') == 'three', 'her messages')
        bob = client('bob', 'bob')
        wait_for('bob', lambda f: f['type'] == 'welcome', 'welcome')
        welcome = [f for f in inbox['bob'] if f['type'] == 'welcome'][0]
        assert welcome['users'] == ['alice', 'bob'] and welcome['count'] == 2
        assert [e['text'] for e in welcome['history']] == ['two', 'three']
        wait_for('alice', lambda f: f == {'type': 'joined', 'name': 'bob', 'count': 2}, 'joined')
        bob.send(json.dumps({'type': 'typing'}))
        wait_for('alice', lambda f: f == {'type': 'typing', 'name': 'bob'}, 'typing')
        bob.send('{"type":"message","text":"hi alice"}')
        wait_for('alice', lambda f: f.get('text') == 'hi alice' and f['name'] == 'bob', 'message')
        bob.send('{"type":"login","name":"alice"}')
        wait_for('bob', lambda f: f.get('code') == 'bad-message', 'already logged in')
        eve = client('eve', ' alice ')  # the name is taken
        wait_for('eve', lambda f: f.get('code') == 'name-taken', 'name-taken')
        eve.send(b'binary')
        wait_for('eve', lambda f: f.get('code') == 'bad-message', 'bad-message for binary')
        eve.disconnect()
        bob.disconnect()
        wait_for('alice', lambda f: f == {'type': 'left', 'name': 'bob', 'count': 1}, 'left')
        assert not any(f.get('name') == ' alice ' for f in inbox['alice'])
        alice.disconnect()
    except BaseException:
        proc.kill()
        raise
    stop_script(proc, signal.SIGINT)



# --------------------------------------------------------------------------------------------
# The libsoup 3 host: a Soup.Server from Python with the engine attached (server.attach_soup)


def test_soup_host():
    gi.require_version('Soup', '3.0')
    from gi.repository import Soup
    assert hasattr(EngineIO.Server, 'attach_soup'), 'the typelib has no attach_soup (built without libsoup?)'
    rec = Recorder()
    server = EngineIO.Server(loop_threads=0, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)

    def on_message(socket, text, data):
        rec.add('message', socket.get_id(), text)
        socket.send_text(text)

    def on_connection(_server, socket):
        rec.add('connection', socket.get_id())
        socket.connect('message', on_message)
        socket.connect('close', lambda s, reason, description: rec.add('close', s.get_id(), reason))

    server.connect('connection', on_connection)
    soup = Soup.Server()
    assert server.attach_soup(soup, None)
    soup.listen_local(0, Soup.ServerListenOptions.IPV4_ONLY)
    port = soup.get_uris()[0].get_port()
    url = 'http://127.0.0.1:%d/engine.io/' % port
    try:
        # The SoupServer dispatches in the default main context, which runs while we wait.
        clients = [PyClient(url, ['hi from soup', 'two'], expect=2, transports=['polling']),
                   PyClient(url, ['upgraded'], expect=1)]
        for c in clients:
            c.wait()
            assert c.received == c.args[1]
        run_loop_until(lambda: rec.count('close') == 2, 10, 'two ::close')
        assert_closed_by_clients(rec, clients)
        assert {e[1] for e in rec.of('connection')} == {c.connected_sid for c in clients}
        server.detach_soup(soup)
        status, _headers, _body = http_in_thread('GET', url + '?EIO=4&transport=polling')
        assert status == 404
    finally:
        soup.disconnect()
        server.close()


if __name__ == '__main__':
    sys.exit(pytest.main([__file__] + sys.argv[1:]))
