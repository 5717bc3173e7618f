#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An Engine.IO echo hosted by a web server of the application's own (EngineIO.HostRequest).

The web server is Python's socketserver (a thread per connection, which is the serving thread
of its requests); the engine only answers the requests it is handed. Long polls wait on a pipe
that resume() writes to, and watch their connection for the client leaving; WebSocket
upgrades hand the connection over to the engine. See the API reference's "Hosting" page.

    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src /usr/bin/python3 host-echo.py [PORT]

For brevity: bodies with a Content-Length only (no chunked), heads read unbuffered (so nothing
past a head is read before an upgrade), no head-size or idle limits (a real host needs them).
"""

import os
import select
import socketserver
import sys
import urllib.parse

import gi
gi.require_version('EngineIO', '1.0')
gi.require_version('Gio', '2.0')
from gi.repository import EngineIO, Gio  # noqa: E402

ENGINE = EngineIO.Server()


class Request(EngineIO.HostRequest):
    def __init__(self, **props):
        super().__init__(**props)
        self.response = self.upgrade_headers = None
        self.suspended = False
        self.wake_r, self.wake_w = os.pipe()

    def do_respond(self, status, headers, body):  # serving thread, inside an engine call
        self.response = (status, headers, body.get_data() or b'')

    def do_suspend(self):                         # serving thread: hold the response
        self.suspended = True

    def do_resume(self):                          # any thread: wake the serving thread
        os.write(self.wake_w, b'.')

    def do_upgrade(self, headers):                # serving thread: switch to WebSocket
        self.upgrade_headers = headers
        return True


def head(status, headers):
    lines = ['HTTP/1.1 %d %s' % (status, 'Switching Protocols' if status == 101 else 'Status')]
    lines += ['%s: %s' % (headers[i], headers[i + 1]) for i in range(0, len(headers), 2)]
    return ('\r\n'.join(lines) + '\r\n').encode('latin-1')


class Handler(socketserver.StreamRequestHandler):
    rbufsize = 0   # unbuffered: nothing past a request head is read

    def handle(self):
        while self.serve_one():
            pass

    def serve_one(self):
        line = self.rfile.readline(8192)
        if not line:
            return False
        method, target, _ = line.decode('latin-1').split(' ', 2)
        path, _, query = target.partition('?')
        req = Request(method=method, path=urllib.parse.unquote(path),
                      remote_address=self.client_address[0])
        try:
            return self.serve(req, query)
        finally:
            os.close(req.wake_r)
            os.close(req.wake_w)

    def serve(self, req, query):
        req.add_query_string(query)
        length = 0
        while (line := self.rfile.readline(8192)) not in (b'\r\n', b'\n', b''):
            name, _, value = line.decode('latin-1').partition(':')
            req.add_header(name.strip(), value.strip())
            if name.strip().lower() == 'content-length':
                length = int(value)
        req.set_content_length(length)
        keep = True
        if ENGINE.handle_host_request(req):
            if req.add_body(self.rfile.read(length)):
                req.end_body()
        elif length > 0:
            keep = False                           # a body left unread: close after the answer
        while True:
            if req.response is not None:           # answered: write it
                status, headers, body = req.response
                try:
                    self.wfile.write(head(status, headers) + (b'' if keep else b'Connection: close\r\n') +
                                     b'Content-Length: %d\r\n\r\n' % len(body) + body)
                except OSError:
                    req.finished(False)
                    return False
                req.finished(True)
                return keep
            if req.upgrade_headers is not None:     # 101, then the connection is the engine's
                self.wfile.write(head(101, req.upgrade_headers) + b'\r\n')
                req.attach_connection(Gio.Socket.new_from_fd(self.connection.detach()), None)
                req.finished(True)
                return False
            if not req.suspended:                  # a poll whose client left: no answer
                req.finished(False)
                return False
            self.wait(req)
            req.suspended = False
            req.resumed()

    def wait(self, req):
        poller = select.poll()
        poller.register(req.wake_r, select.POLLIN)
        poller.register(self.connection, select.POLLRDHUP)
        while True:
            if req.wake_r in dict(poller.poll()):
                os.read(req.wake_r, 1)
                return
            poller.unregister(self.connection)     # the client closed the connection
            req.client_gone()


def on_message(socket, text, data):
    if text is not None:
        socket.send_text(text)
    else:
        socket.send_binary(data)


ENGINE.connect('connection', lambda server, socket: socket.connect('message', on_message))

if __name__ == '__main__':
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(
            ('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 3000), Handler) as httpd:
        print('listening on %d' % httpd.server_address[1], flush=True)
        httpd.serve_forever()
