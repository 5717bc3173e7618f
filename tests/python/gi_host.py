# SPDX-License-Identifier: MIT
"""A minimal HTTP/1.1 server in Python hosting EngineIO through EngineIO.HostRequest.

A socketserver.ThreadingTCPServer: one thread per connection, which is the serving thread of
its requests. It parses request heads minimally (bounded in size and time), reads bodies
framed by Content-Length or chunked, and drives each request through the host seam:

- respond(): the response is recorded and written once the engine call returns;
- suspend(): the thread waits (poll) on a pipe that resume() writes to, and on the connection
  for its client closing it (then client_gone());
- upgrade(): the 101 is written and the connection handed over with attach_connection()
  (the socket object is detached: the engine owns the descriptor from then on).

Used by tests/test-host.py; also runnable by hand:
    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src python3 tests/python/gi_host.py 3000
"""

import os
import select
import socket
import socketserver
import threading
import urllib.parse

import gi
gi.require_version('EngineIO', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import EngineIO, Gio, GLib  # noqa: E402

MAX_HEAD = 16 * 1024        # bytes of a request head
HEAD_TIMEOUT = 30.0         # seconds a request head (or an idle connection) may take
REASONS = {101: 'Switching Protocols', 200: 'OK', 204: 'No Content', 400: 'Bad Request',
           403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
           413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error',
           503: 'Service Unavailable'}


class PollingOnlyRequest(EngineIO.HostRequest):
    """One HTTP request; the engine calls these do_* from its calls (resume: any thread).
    Without do_upgrade: a host that cannot hand connections over (clients stay on polling)."""

    def __init__(self, **props):
        super().__init__(**props)
        self.response = None          # (status, [name, value, ...], bytes)
        self.suspended = False
        self.upgrade_headers = None
        self.wake_r, self.wake_w = os.pipe()

    def do_respond(self, status, headers, body):
        self.response = (status, list(headers), body.get_data() or b'')

    def do_suspend(self):
        self.suspended = True

    def do_resume(self):
        os.write(self.wake_w, b'r')   # never blocks: one byte per suspension

    def close_pipe(self):
        os.close(self.wake_r)
        os.close(self.wake_w)


class Request(PollingOnlyRequest):
    """A request whose connection can be switched to WebSocket."""

    def do_upgrade(self, headers):
        self.upgrade_headers = list(headers)
        return True


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.responses = []        # (method, path, status)
        self.client_gone = 0
        self.switched = 0
        self.waiting = 0           # requests suspended now

    def add(self, kind, *value):
        with self.lock:
            if kind == 'response':
                self.responses.append(value)
            elif kind == 'gone':
                self.client_gone += 1
            elif kind == 'switched':
                self.switched += 1
            elif kind == 'waiting':
                self.waiting += value[0]


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.sock = self.request
        self.buf = b''
        self.sock.settimeout(HEAD_TIMEOUT)

    def recv_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_head(self):
        while b'\r\n\r\n' not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ValueError('head too large')
            self.recv_more()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        if len(head) > MAX_HEAD:
            raise ValueError('head too large')
        lines = head.decode('latin-1').split('\r\n')
        method, target, version = lines[0].split(' ', 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(':')
            headers.append((name.strip(), value.strip()))
        return method, target, version, headers

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line(self):
        while b'\r\n' not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise ValueError('chunk line too long')
            self.recv_more()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def body_parts(self, length, chunked):
        """The body in parts as they come (not accumulated here)."""
        if chunked:
            while True:
                size = int(self.read_line().split(b';')[0], 16)
                if size == 0:
                    while self.read_line():
                        pass
                    return
                while size > 0:
                    if not self.buf:
                        self.recv_more()
                    part, self.buf = self.buf[:size], self.buf[size:]
                    size -= len(part)
                    yield part
                self.read_exact(2)
        else:
            while length > 0:
                if not self.buf:
                    self.recv_more()
                part, self.buf = self.buf[:length], self.buf[length:]
                length -= len(part)
                yield part

    def write_response(self, req, close):
        status, headers, body = req.response
        lines = ['HTTP/1.1 %d %s' % (status, REASONS.get(status, 'Status'))]
        for i in range(0, len(headers) - 1, 2):
            lines.append('%s: %s' % (headers[i], headers[i + 1]))
        lines.append('Content-Length: %d' % len(body))
        if close:
            lines.append('Connection: close')
        self.sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body)
        self.server.stats.add('response', req.get_method(), req.get_path(), status)

    def linger(self):
        """After answering a request whose body was left unread: the rest is read and dropped
        (bounded) before the close, so that the client reads the answer instead of a reset."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(2.0)
            dropped = 0
            while dropped < 4 * 1024 * 1024:
                data = self.sock.recv(65536)
                if not data:
                    break
                dropped += len(data)
        except OSError:
            pass

    def wait_resumed(self, req):
        """Waits for resume() (the pipe) while watching the connection for its client going."""
        poller = select.poll()
        poller.register(req.wake_r, select.POLLIN)
        poller.register(self.sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        while True:
            for fd, events in poller.poll():
                if fd == req.wake_r:
                    os.read(req.wake_r, 1)
                    return
                # The client closed the connection (or reset it): the engine resumes the
                # request (resume() writes to the pipe) and answers it nothing.
                poller.unregister(self.sock.fileno())
                self.gone = True
                self.server.stats.add('gone')
                req.client_gone()

    def handle(self):
        engine = self.server.engine
        while True:
            try:
                method, target, version, headers = self.read_head()
            except (EOFError, OSError, ValueError):
                return
            path, _, query = target.partition('?')
            req = self.server.request_class(method=method, path=urllib.parse.unquote(path),
                                            remote_address=self.client_address[0])
            self.gone = False
            try:
                if not self.serve(engine, req, headers, query, version):
                    return
            finally:
                req.close_pipe()

    def serve(self, engine, req, headers, query, version):
        """One request; returns whether the connection goes on (keep-alive)."""
        req.add_query_string(query)
        length = None
        chunked = False
        close = version != 'HTTP/1.1'
        for name, value in headers:
            req.add_header(name, value)
            lname = name.lower()
            if lname == 'content-length':
                length = int(value)
            elif lname == 'transfer-encoding':
                chunked = value.lower() == 'chunked'
            elif lname == 'connection' and value.lower() == 'close':
                close = True
        req.set_content_length(length if length is not None else -1)
        body_left = chunked or bool(length)
        if engine.handle_host_request(req):
            try:
                for part in self.body_parts(length or 0, chunked):
                    if not req.add_body(part):
                        break           # answered (413): the rest stays unread
                else:
                    req.end_body()
                    body_left = False
            except (EOFError, OSError, ValueError):
                req.client_gone()
                req.finished(False)
                return False
        elif body_left and length is not None and length <= MAX_HEAD:
            self.read_exact(length)     # a small body the engine did not want: dropped
            body_left = False

        while True:
            if req.response is not None:
                try:
                    self.write_response(req, close or body_left)
                except OSError:
                    req.finished(False)
                    return False
                req.finished(True)
                if body_left:
                    self.linger()
                return not (close or body_left)
            if req.upgrade_headers is not None:
                resp = ['HTTP/1.1 101 Switching Protocols']
                h = req.upgrade_headers
                resp += ['%s: %s' % (h[i], h[i + 1]) for i in range(0, len(h) - 1, 2)]
                try:
                    self.sock.sendall(('\r\n'.join(resp) + '\r\n\r\n').encode('latin-1'))
                except OSError:
                    req.finished(False)
                    return False
                extra = GLib.Bytes.new(self.buf) if self.buf else None
                self.buf = b''
                gsock = Gio.Socket.new_from_fd(self.sock.detach())
                req.attach_connection(gsock, extra)
                req.finished(True)
                self.server.stats.add('switched')
                return False
            if req.suspended:
                self.server.stats.add('waiting', 1)
                try:
                    self.wait_resumed(req)
                finally:
                    self.server.stats.add('waiting', -1)
                req.suspended = False
                req.resumed()
                continue
            # Nothing to write: a poll whose client went away.
            req.finished(False)
            return False


class HostServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine, request_class=Request, address=('127.0.0.1', 0)):
        self.engine = engine
        self.request_class = request_class
        self.stats = Stats()
        super().__init__(address, Handler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


if __name__ == '__main__':
    import sys
    engine = EngineIO.Server()

    def on_connection(server, sock):
        def on_message(s, text, data):
            if text is not None:
                s.send_text(text)
            else:
                s.send_binary(data)
        sock.connect('message', on_message)

    engine.connect('connection', on_connection)
    host = HostServer(engine, address=('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
    print('serving on http://127.0.0.1:%d/engine.io/' % host.port)
    host.serve_forever()
