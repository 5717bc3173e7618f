#!/usr/bin/python3
"""Debian's python3-socketio (5.7.2) `socketio.Client` against a Socket.IO echo server.

Run with /usr/bin/python3 (needs python3-socketio, python3-engineio, python3-requests,
python3-websocket). The server under test, as for the Node tests (sio-harness.mjs):

  SIO_SERVER=reference   node tests/interop/reference-sio-echo.js (npm socket.io 4.8)
  SOCKETIO_ECHO=PATH     our socketio-echo tool (when SIO_SERVER is unset or "echo")
  SIO_LOOP_THREADS=N     adds `--loop-threads N`
  NODE=PATH              the node binary for the reference (default: node on PATH)

For polling and for websocket: connect to `/` with auth (the `auth` event carries it back, the
client is on the expected transport); `message` → `message-back` with strings (non-ASCII
included), numbers, nested objects, null, booleans, several arguments; binary arguments (top
level, nested, several attachments); `message-with-ack` acknowledged with the same arguments,
binary included; `/custom` with its own auth; an undeclared namespace refused with
connect_error {"message": "Invalid namespace"}; `broadcast` reaching two clients. TAP on stdout,
exit 1 on any failure; every wait has a timeout and the whole run a global one.

Client facts worked around (python-engineio 4.3.4 under python-socketio 5.7.2, see
tests/interop/client_python.py for the Engine.IO side):
- engineio.Client runs each 'message' handler on a new thread (binary attachments race their
  header) and encodes polling POST bodies as Latin-1: sio_python_client.py's client delivers in
  order and POSTs UTF-8.
- It refuses a polling response of more than 16 packets: the tests keep fewer in flight.
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(HERE, '..', 'interop')
WAIT_S = 10.0
REFERENCE = os.environ.get('SIO_SERVER', 'echo') == 'reference'
GLOBAL_TIMEOUT_S = 150.0


SERVERS = []  # started servers, killed however this process ends


def kill_servers():
    for proc in SERVERS:
        if proc.poll() is None:
            proc.kill()


def bail(msg):
    try:
        sys.stdout.write('Bail out! %s\n' % msg)
        sys.stdout.flush()
    finally:
        kill_servers()
        os._exit(1)


try:
    import engineio
    import socketio
    import requests  # noqa: F401  (polling transport)
    import websocket  # noqa: F401  (websocket transport)
except ImportError as e:  # pragma: no cover
    bail('%s: run with /usr/bin/python3 on Debian with python3-socketio, python3-engineio, '
         'python3-requests and python3-websocket installed' % e)


from sio_python_client import InOrderClient as Client  # noqa: E402


# ---- the server -----------------------------------------------------------------------------

def die_with_parent():
    """In the server's child process: SIGKILL when this test process dies (Linux prctl)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:  # noqa: BLE001  (best effort; kill_servers() covers normal exits)
        pass


class Server:
    def __init__(self, flags):
        which = os.environ.get('SIO_SERVER', 'echo')
        if which == 'reference':
            node = os.environ.get('NODE') or shutil.which('node') or shutil.which('nodejs')
            if not node:
                bail('node not found (SIO_SERVER=reference needs it)')
            cmd = [node, os.path.join(INTEROP, 'reference-sio-echo.js')]
        elif which == 'echo':
            if not os.environ.get('SOCKETIO_ECHO'):
                bail('set SOCKETIO_ECHO=PATH/socketio-echo, or SIO_SERVER=reference')
            cmd = [os.environ['SOCKETIO_ECHO']]
        else:
            bail('SIO_SERVER: "reference" or "echo", not %r' % which)
        if os.environ.get('SIO_LOOP_THREADS'):
            cmd += ['--loop-threads', os.environ['SIO_LOOP_THREADS']]
        cmd += ['--port', '0'] + flags
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent)
        SERVERS.append(self.proc)
        lines = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        try:
            line = lines.get(timeout=15)
        except queue.Empty:
            self.proc.kill()
            bail('server printed no listening line within 15 s')
        m = re.match(r'^listening on (http://(\[[^\]]+\]|[^:/]+):(\d+))(/\S*)$', line or '')
        if not m:
            self.proc.kill()
            bail('unexpected first line from the server: %r' % line)
        self.origin = m.group(1)
        self.path = m.group(4)

    def _read(self, lines):
        first = True
        for raw in iter(self.proc.stdout.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            if first:
                lines.put(line)
                first = False
            else:
                sys.stderr.write('[server] %s\n' % line)
        if first:
            lines.put(None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return 'timeout'


# ---- TAP --------------------------------------------------------------------------------------

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        print('TAP version 13', flush=True)

    def check(self, name, fn):
        self.n += 1
        try:
            fn()
        except Exception:  # noqa: BLE001  (any failure is a not ok)
            self.failed += 1
            print('not ok %d - %s' % (self.n, name), flush=True)
            for line in traceback.format_exc().splitlines():
                print('# ' + line, flush=True)
            return False
        print('ok %d - %s' % (self.n, name), flush=True)
        return True

    def finish(self):
        print('1..%d' % self.n)
        print('# %d passed, %d failed' % (self.n - self.failed, self.failed), flush=True)
        kill_servers()
        os._exit(1 if self.failed else 0)


# ---- helpers ----------------------------------------------------------------------------------

class Recorder:
    """Client plus a queue per (namespace, event) of the argument tuples received."""

    def __init__(self, namespaces=('/',)):
        self.sio = Client(reconnection=False)
        self.queues = {}
        self.lock = threading.Lock()
        for ns in namespaces:
            for ev in ('auth', 'message-back', 'broadcast-back', 'connect_error'):
                self.sio.on(ev, self._handler(ns, ev), namespace=ns)

    def _q(self, ns, ev):
        with self.lock:
            return self.queues.setdefault((ns, ev), queue.Queue())

    def _handler(self, ns, ev):
        def h(*args):
            self._q(ns, ev).put(args)
        return h

    def next(self, ev, ns='/', timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        q = self._q(ns, ev)
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
            if self.sio.eio.state != 'connected':
                raise AssertionError('connection lost (Engine.IO state %s) while waiting for %r on %s'
                                     % (self.sio.eio.state, ev, ns))
            if time.monotonic() > deadline:
                raise AssertionError('no %r event on %s within %.0f s' % (ev, ns, timeout))

    def pending(self, ev, ns='/'):
        return self._q(ns, ev).qsize()

    def connect(self, srv, transports, auth=None, namespaces=('/',), wait=True):
        self.args = (srv, transports, auth, namespaces)
        self.sio.connect(srv.origin, auth=auth, transports=transports,
                         namespaces=list(namespaces), socketio_path=srv.path.strip('/'),
                         wait=wait, wait_timeout=WAIT_S)

    def stop_loops(self):
        """Waits for the client's loops to end: the same client object connects again only
        once its previous loops are gone (else the old write loop drains the new queue: a
        client bug, not the server's)."""
        for task in (self.sio.eio.write_loop_task, self.sio.eio.read_loop_task):
            if task is not None:
                task.join(WAIT_S)
                if task.is_alive():
                    raise AssertionError('the client did not stop its loops within %.0f s' % WAIT_S)

    def ensure(self):
        """Before a check: if an earlier failure cost the connection to /, connect again and
        drop what is queued, so one failure does not fail every later check."""
        if '/' in self.sio.namespaces and self.sio.connected:
            for q in list(self.queues.values()):
                while not q.empty():
                    q.get_nowait()
            return
        srv, transports, auth, namespaces = self.args
        try:
            self.sio.disconnect()
        except Exception:  # noqa: BLE001
            pass
        self.stop_loops()
        with self.lock:
            self.queues = {}
        self.connect(srv, transports, auth=auth, namespaces=namespaces)
        self.next('auth')

    def echo(self, args, what):
        self.sio.emit('message', tuple(args))
        got = self.next('message-back')
        assert_equal(list(args), list(got), what)

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:  # noqa: BLE001
            pass


def assert_equal(want, got, what):
    if want != got or type(want) is not type(got):
        raise AssertionError('%s: want %r, got %r' % (what, short(want), short(got)))


def short(x):
    r = repr(x)
    return r if len(r) <= 200 else r[:200] + '…'


def pattern(n, seed):
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = x >> 24
    return bytes(out)


STRINGS = ['', 'plain', 'héllo wörld € ✓ 😀 𝄞', 'quotes " and \\ backslash\n newline\ttab',
           'controls \x01 \x1e \x1f', '\u2028 \u2029 </script>']
NUMBERS = [0, 1, -1, 2147483647, 9007199254740991, -9007199254740991, 0.5, -0.25,
           3.141592653589793, 1e21, 1.7976931348623157e308]
NESTED = {'a': 1, 'b': 'two', 'c': [1, [2, [3, {'deep': [True, False, None]}]]],
          'd': {'e': {'f': {'g': 'bottom'}}}, 'empty': {}, 'list': [], 'é': 'v'}


# ---- the scenario -----------------------------------------------------------------------------

def run_transport(tap, srv, transport):
    def T(name):
        return '[%s] %s' % (transport, name)

    auth = {'token': 'py-123', 'n': 5, 'nested': {'l': [1, 'x', None]}, 'text': 'é😀'}
    c = Recorder()

    def connect():
        c.connect(srv, [transport], auth=auth)
        assert_equal((auth,), c.next('auth'), 'auth')
        assert_equal(transport, c.sio.transport(), 'transport')
        sid = c.sio.get_sid('/')
        if not isinstance(sid, str) or not sid:
            raise AssertionError('no socket id from the CONNECT reply: %r' % (sid,))
    if not tap.check(T('connect to / with auth: `auth` event echoes it'), connect):
        c.close()
        return

    def check(name, fn):
        def run():
            c.ensure()
            fn()
        return tap.check(name, run)

    def strings():
        for s in STRINGS:
            c.echo([s], 'string %r' % s)
        c.echo(STRINGS, 'all strings in one event')
    check(T('message: strings (non-ASCII, escapes, control characters)'), strings)

    def numbers():
        for n in NUMBERS:
            c.echo([n], 'number %r' % n)
        c.echo(NUMBERS, 'all numbers in one event')
    check(T('message: numbers'), numbers)

    def objects():
        c.echo([NESTED], 'nested object')
        c.echo([None], 'null')
        c.echo([True, False], 'booleans')
        c.echo(['a', 1, {'k': [None]}, [NESTED]], 'several arguments')
    check(T('message: objects, nesting, null, booleans, several arguments'), objects)

    # U+0000: the reference echoes it; socketio-echo refuses it (GLib strings end at NUL:
    # README, "Socket.IO") by ending that session, as for any packet it cannot read.
    def nul():
        if REFERENCE:
            c.echo(['nul \x00 inside', '\x00'], 'U+0000')
            return
        c.sio.emit('message', ['nul \x00 inside', '\x00'])
        deadline = time.monotonic() + WAIT_S
        while c.sio.eio.state == 'connected' and time.monotonic() < deadline:
            time.sleep(0.02)
        if c.sio.eio.state == 'connected':
            raise AssertionError('U+0000: the session did not end within %.0f s' % WAIT_S)
    check(T('message: a string holding U+0000 (JSON \\u0000) %s'
            % ('is echoed' if REFERENCE else 'ends the session')), nul)

    def binary():
        c.echo([b'\x01\x02\x03'], 'bytes as the only argument')
        c.echo([bytes(range(256))], 'bytes 0..255')
        c.echo([{'data': pattern(100, 1), 'meta': {'inner': pattern(7, 2)}}], 'nested in objects')
        c.echo([[pattern(5, 3), 'text', [pattern(6, 4)]]], 'nested in arrays')
        c.echo([pattern(10, 5), 'x', pattern(20, 6), 3, pattern(30, 7)], 'several attachments')
        c.echo([pattern(64 * 1024, 8)], '64 KiB')
    check(T('binary arguments'), binary)

    def ack():
        got = c.sio.call('message-with-ack', (1, '2', {'3': [True]}), timeout=WAIT_S)
        assert_equal((1, '2', {'3': [True]}), got, 'ack with JSON arguments')
        got = c.sio.call('message-with-ack', (b'\x09\x08\x07', {'n': [pattern(16, 9)]}),
                         timeout=WAIT_S)
        assert_equal((b'\x09\x08\x07', {'n': [pattern(16, 9)]}), got, 'ack with binary arguments')
        got = c.sio.call('message-with-ack', 'single', timeout=WAIT_S)
        assert_equal('single', got, 'ack with one argument')
    check(T('message-with-ack: acknowledged with the same arguments'), ack)

    def custom():
        cauth = {'room': 'custom', 'k': [1, 2]}
        cc = Recorder(namespaces=('/custom',))
        try:
            cc.connect(srv, [transport], auth=cauth, namespaces=('/custom',))
            assert_equal((cauth,), cc.next('auth', ns='/custom'), '/custom auth')
        finally:
            cc.close()
        # / and /custom over one connection: both get the same auth (the client sends one).
        both = Recorder(namespaces=('/', '/custom'))
        try:
            both.connect(srv, [transport], auth={'both': True}, namespaces=('/', '/custom'))
            assert_equal(({'both': True},), both.next('auth', ns='/'), '/ auth')
            assert_equal(({'both': True},), both.next('auth', ns='/custom'), '/custom auth')
            if both.sio.get_sid('/') == both.sio.get_sid('/custom'):
                raise AssertionError('/ and /custom got the same socket id')
        finally:
            both.close()
    check(T('/custom: `auth` echoes its auth, alone and next to /'), custom)

    def invalid():
        bad = Recorder(namespaces=('/nope',))
        try:
            # wait=False: with wait=True the client sits out its whole wait_timeout after a
            # refusal before raising.
            bad.connect(srv, [transport], namespaces=('/nope',), wait=False)
            got = bad.next('connect_error', ns='/nope')
            assert_equal(({'message': 'Invalid namespace'},), got, 'connect_error data')
            if '/nope' in bad.sio.namespaces:
                raise AssertionError('the client counts /nope as connected')
        finally:
            bad.close()
        c.echo(['still here'], '/ after another client was refused')
    check(T('undeclared namespace: connect_error {"message": "Invalid namespace"}'), invalid)

    def broadcast():
        other = Recorder()
        try:
            other.connect(srv, [transport], auth={'other': 1})
            other.next('auth')
            args = ['to everyone', {'n': 2}, b'\xca\xfe']
            c.sio.emit('broadcast', tuple(args))
            assert_equal(args, list(c.next('broadcast-back')), 'sender')
            assert_equal(args, list(other.next('broadcast-back')), 'other client')
            time.sleep(0.2)
            if c.pending('broadcast-back') or other.pending('broadcast-back'):
                raise AssertionError('a broadcast arrived twice')
        finally:
            other.close()
    check(T('broadcast reaches the sender and another client'), broadcast)

    def disconnect():
        c.sio.disconnect()
        c.stop_loops()
        c.connect(srv, [transport], auth=auth)
        assert_equal((auth,), c.next('auth'), 'auth after reconnecting')
        c.echo(['after reconnecting', b'\x01'], 'echo after reconnecting')
    check(T('disconnect, connect again: auth and echo'), disconnect)
    c.close()


def main():
    watchdog = threading.Timer(GLOBAL_TIMEOUT_S,
                               lambda: bail('global timeout (%.0f s)' % GLOBAL_TIMEOUT_S))
    watchdog.daemon = True
    watchdog.start()
    tap = Tap()
    srv = Server(['--cors', '*'])
    print('# server %s%s' % (srv.origin, srv.path), flush=True)
    for transport in ('polling', 'websocket'):
        run_transport(tap, srv, transport)

    def shutdown():
        r = srv.stop()
        if r != 0:
            raise AssertionError('server exit status %r' % (r,))
    tap.check('server exits 0 on SIGTERM', shutdown)
    tap.finish()


if __name__ == '__main__':
    try:
        main()
    finally:
        kill_servers()
