#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Socket.IO demo chat in Python, over the SocketIO and EngineIO GObject bindings.

The same protocol as the C demo (socketio-chat, src/demo/socketio-chat.c), so the
same page (data/sio-chat/) works with either; data/sio-chat/README.md documents it:

  client -> server  login(name)  join(room)  leave()  message(text)  typing()  stop-typing()
  ack               {"ok": true, ...} or {"ok": false, "error": CODE, "message": M}
  server -> client  message {room,name,text,time,id}  joined/left {room,name,users}
                    typing/stop-typing {room,name}  rooms [{name,count}]
                    error {ok,error,message} (a refusal of an event sent without ack)

Every user is in one room at a time (a Socket.IO room of the same name; "#general"
after login). Bounds: names 1 to 32 characters, unique (casefolded); rooms "#" then 1
to 24 of [a-z0-9_-], at most --max-rooms at once (an empty room other than #general
goes away with its history); messages 1 to 1000 characters, the last --history per
room kept; --max-users logged in; 10 events per second per client, bursts of 20.

The page is served by socketio-chat in C. This server serves it itself with
--serve-page (Python's http.server on a second port, the Socket.IO server allowing
that origin by CORS; the page is opened with ?server=URL):

    GI_TYPELIB_PATH=BUILD/src:BUILD/src/socketio LD_LIBRARY_PATH=BUILD/src:BUILD/src/socketio \\
      /usr/bin/python3 sio-chat.py --port 3000 --serve-page --client-bundle PATH/socket.io.min.js
"""

import argparse
import functools
import http.server
import json
import os
import signal
import sys
import threading
import time
import unicodedata

MAX_NAME_CHARS = 32
MAX_ROOM_CHARS = 24
MAX_TEXT_CHARS = 1000
RATE_PER_SECOND = 10
RATE_BURST = 20
DEFAULT_HISTORY = 50
DEFAULT_ROOMS = 32
DEFAULT_USERS = 1000
GENERAL = '#general'
ROOM_CHARS = frozenset('abcdefghijklmnopqrstuvwxyz0123456789-_')


def _is_space(ch):
    # What g_unichar_isspace() calls space, so names trim as in the C server.
    return ch in '\t\n\v\f\r' or unicodedata.category(ch) in ('Zs', 'Zl', 'Zp')


def _strip(text):
    start, end = 0, len(text)
    while start < end and _is_space(text[start]):
        start += 1
    while end > start and _is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def normalize_name(raw):
    """The name trimmed, or None when it is not 1 to 32 characters without control
    or format characters."""
    if not isinstance(raw, str):
        return None
    name = _strip(raw)
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return None
    if any(unicodedata.category(ch) in ('Cc', 'Cf', 'Zl', 'Zp') for ch in name):
        return None
    return name


def normalize_room(raw):
    """"#" then 1 to 24 of [a-z0-9_-] (ASCII letters lowered, "#" added), or None."""
    if not isinstance(raw, str):
        return None
    lowered = ''.join(ch.lower() if 'A' <= ch <= 'Z' else ch for ch in raw)
    body = _strip(lowered)
    if body.startswith('#'):
        body = body[1:]
    if not 1 <= len(body) <= MAX_ROOM_CHARS or not set(body) <= ROOM_CHARS:
        return None
    return '#' + body


def refusal(code, message):
    return {'ok': False, 'error': code, 'message': message}


class Room:
    def __init__(self, name):
        self.name = name
        self.history = []      # message dicts, oldest first
        self.members = set()   # Conn
        self.next_id = 0

    def users(self):
        return sorted(c.name for c in self.members)


class Conn:
    def __init__(self, socket):
        self.socket = socket
        self.sid = socket.get_id()
        self.name = None
        self.key = None
        self.room = None
        self.tokens = float(RATE_BURST)
        self.refilled = time.monotonic()
        self.throttled = False

    def take_token(self):
        now = time.monotonic()
        self.tokens = min(float(RATE_BURST), self.tokens + (now - self.refilled) * RATE_PER_SECOND)
        self.refilled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        self.throttled = False
        return True


class SioChat:
    """The chat on a SocketIO.Namespace. self.lock guards every Conn and Room; the
    broadcasts a change causes and the ack of the event that caused it are sent with
    it held, so every client sees a room's events in one order."""

    def __init__(self, nsp, Json, GLib, history=DEFAULT_HISTORY, max_rooms=DEFAULT_ROOMS,
                 max_users=DEFAULT_USERS, verbose=False):
        self.nsp = nsp
        self.Json = Json
        self.GLib = GLib
        self.history = history
        self.max_rooms = max_rooms
        self.max_users = max_users
        self.verbose = verbose
        self.lock = threading.RLock()
        self.conns = {}    # sid -> Conn
        self.names = {}    # casefolded name -> Conn
        self.rooms = {GENERAL: Room(GENERAL)}
        nsp.connect('connection', self.on_connection)

    # JSON <-> Json.Array

    def _args(self, *values):
        return self.Json.from_string(json.dumps(list(values))).get_array()

    def _values(self, args):
        if args is None:
            return []
        return [json.loads(self.Json.to_string(node, False)) for node in args.get_elements()]

    # Sending (lock held)

    def _emit(self, op, event, payload):
        try:
            op.emit(event, self._args(payload), None)
        except self.GLib.Error as e:
            if self.verbose:
                print('broadcast of %s failed: %s' % (event, e.message), file=sys.stderr)

    def _room_emit(self, room, event, payload, except_conn=None):
        if except_conn is not None:
            op = except_conn.socket.to(room.name)
        else:
            op = self.nsp.to(room.name)
        self._emit(op, event, payload)

    def _rooms_list(self):
        return [{'name': r.name, 'count': len(r.members)}
                for r in sorted(self.rooms.values(), key=lambda r: r.name)]

    def _broadcast_rooms(self):
        self._emit(self.nsp.broadcast(), 'rooms', self._rooms_list())

    def _answer(self, conn, ack, answer):
        try:
            if ack is not None:
                ack.send(self._args(answer), None)
            elif not answer['ok']:
                conn.socket.emit('error', self._args(answer), None)
        except self.GLib.Error as e:
            if self.verbose:
                print('answer to %s failed: %s' % (conn.sid, e.message), file=sys.stderr)

    def _welcome(self, conn):
        return {'ok': True, 'name': conn.name, 'room': conn.room.name, 'users': conn.room.users(),
                'history': list(conn.room.history), 'rooms': self._rooms_list()}

    def _presence(self, room, name):
        return {'room': room.name, 'name': name, 'users': room.users()}

    def _leave_room(self, conn):
        room, conn.room = conn.room, None
        if room is None:
            return
        room.members.discard(conn)
        if conn.socket.is_connected():
            conn.socket.leave(room.name)
        self._room_emit(room, 'left', self._presence(room, conn.name))
        if not room.members and room.name != GENERAL:
            del self.rooms[room.name]

    def _enter_room(self, conn, name):
        room = self.rooms.get(name)
        if room is None:
            if len(self.rooms) >= self.max_rooms:
                return None
            room = self.rooms[name] = Room(name)
        room.members.add(conn)
        conn.room = room
        # Told before the joiner is in the Socket.IO room: not to the joiner.
        self._room_emit(room, 'joined', self._presence(room, conn.name), except_conn=conn)
        conn.socket.join(room.name)
        return room

    # Events

    def _login(self, conn, args, ack):
        name = normalize_name(args[0] if args else None)
        if conn.name is not None:
            return self._answer(conn, ack, refusal('already-logged-in', 'You are logged in already'))
        if name is None:
            return self._answer(conn, ack, refusal(
                'bad-name', 'A name is 1 to 32 characters, without control characters'))
        key = name.casefold()
        if key in self.names:
            return self._answer(conn, ack, refusal('name-taken', 'That name is taken'))
        if len(self.names) >= self.max_users:
            return self._answer(conn, ack, refusal('server-full', 'The chat is full, try again later'))
        conn.name, conn.key = name, key
        self.names[key] = conn
        self._enter_room(conn, GENERAL)
        self._answer(conn, ack, self._welcome(conn))
        self._broadcast_rooms()

    def _join(self, conn, args, ack, leave):
        name = GENERAL if leave else normalize_room(args[0] if args else None)
        old = conn.room
        if name is None:
            return self._answer(conn, ack, refusal(
                'bad-room', 'A room is # then 1 to 24 letters, digits, - or _'))
        if name == old.name:
            if leave:
                return self._answer(conn, ack, refusal('bad-room', 'You cannot leave #general'))
            return self._answer(conn, ack, self._welcome(conn))
        frees_one = len(old.members) == 1 and old.name != GENERAL
        if name not in self.rooms and len(self.rooms) >= self.max_rooms and not frees_one:
            return self._answer(conn, ack, refusal(
                'too-many-rooms', 'There are too many rooms: join one of them'))
        self._leave_room(conn)
        self._enter_room(conn, name)
        self._answer(conn, ack, self._welcome(conn))
        self._broadcast_rooms()

    def _message(self, conn, args, ack):
        raw = args[0] if args else None
        if not isinstance(raw, str):
            return self._answer(conn, ack, refusal('bad-message', 'A message is a string'))
        text = _strip(raw)
        if not text:
            return self._answer(conn, ack, refusal('bad-message', 'The message is empty'))
        if len(text) > MAX_TEXT_CHARS:
            return self._answer(conn, ack, refusal('too-long', 'A message is at most 1000 characters'))
        room = conn.room
        room.next_id += 1
        message = {'room': room.name, 'name': conn.name, 'text': text,
                   'time': int(time.time() * 1000), 'id': room.next_id}
        # To the others; the sender shows its own copy, delivered on the ack.
        self._room_emit(room, 'message', message, except_conn=conn)
        room.history.append(message)
        del room.history[:-self.history or len(room.history)]
        self._answer(conn, ack, {'ok': True, 'id': message['id'], 'time': message['time']})

    def on_event(self, socket, name, args, attachments, ack):
        with self.lock:
            conn = self.conns.get(socket.get_id())
            if conn is None:
                return
            if not conn.take_token():
                if ack is not None or not conn.throttled:
                    self._answer(conn, ack, refusal('rate-limited', 'Slow down: too many events'))
                conn.throttled = True
                return
            if name not in ('login', 'join', 'leave', 'message', 'typing', 'stop-typing'):
                return self._answer(conn, ack, refusal('unknown-event', 'Unknown event'))
            if attachments:
                return self._answer(conn, ack, refusal('bad-message', 'Binary arguments are not accepted'))
            values = self._values(args)
            if name == 'login':
                return self._login(conn, values, ack)
            if conn.name is None:
                return self._answer(conn, ack, refusal('not-logged-in', 'Log in first'))
            if name in ('join', 'leave'):
                return self._join(conn, values, ack, name == 'leave')
            if name == 'message':
                return self._message(conn, values, ack)
            self._room_emit(conn.room, name, {'room': conn.room.name, 'name': conn.name},
                            except_conn=conn)
            if ack is not None:
                self._answer(conn, ack, {'ok': True})

    def on_disconnect(self, socket, reason):
        if self.verbose:
            print('socket %s left: %s' % (socket.get_id(), reason), flush=True)
        with self.lock:
            conn = self.conns.pop(socket.get_id(), None)
            if conn is not None and conn.name is not None:
                self._leave_room(conn)
                del self.names[conn.key]
                self._broadcast_rooms()

    def on_connection(self, nsp, socket):
        if self.verbose:
            print('socket %s joined' % socket.get_id(), flush=True)
        with self.lock:
            self.conns[socket.get_id()] = Conn(socket)
        socket.connect('event', self.on_event)
        socket.connect('disconnect', self.on_disconnect)


def serve_page(host, static_dir, bundle, base_css, csp):
    """Serves the page (and the client bundle) on a free port, from a thread. base_css
    is the page's base stylesheet (data/chat/chat.css), served as /chat.css unless
    static_dir has its own. csp is a one-element list, the page's
    Content-Security-Policy, set once the Socket.IO server's port is known."""
    if os.path.isfile(os.path.join(static_dir, 'chat.css')):
        base_css = None

    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            path_only = path.split('?', 1)[0]
            if path_only == '/socket.io.min.js' and bundle:
                return bundle
            if path_only == '/chat.css' and base_css:
                return base_css
            return super().translate_path(path)

        def end_headers(self):
            self.send_header('Cache-Control', 'no-cache')
            self.send_header('X-Content-Type-Options', 'nosniff')
            self.send_header('Referrer-Policy', 'no-referrer')
            if csp[0]:
                self.send_header('Content-Security-Policy', csp[0])
            super().end_headers()

        def log_message(self, *args):
            pass

    Handler.extensions_map = dict(Handler.extensions_map, **{'.js': 'text/javascript'})
    httpd = http.server.ThreadingHTTPServer(
        (host, 0), functools.partial(Handler, directory=static_dir))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description='Socket.IO chat server (Python, SocketIO bindings)')
    ap.add_argument('--host', default='127.0.0.1', help='numeric address to bind')
    ap.add_argument('--port', type=int, default=3000, help='port (default 3000; 0 picks one)')
    ap.add_argument('--history', type=int, default=DEFAULT_HISTORY, metavar='N',
                    help='messages kept per room (default %d)' % DEFAULT_HISTORY)
    ap.add_argument('--max-rooms', type=int, default=DEFAULT_ROOMS, metavar='N',
                    help='rooms at once, #general included (default %d)' % DEFAULT_ROOMS)
    ap.add_argument('--max-users', type=int, default=DEFAULT_USERS, metavar='N',
                    help='users logged in at once (default %d)' % DEFAULT_USERS)
    ap.add_argument('--cors', metavar='ORIGIN', help='allowed CORS origin(s): * or a list')
    ap.add_argument('--serve-page', action='store_true',
                    help='serve data/sio-chat on a second port and allow it by CORS')
    ap.add_argument('--static-dir', default=os.path.join(here, '..', 'sio-chat'),
                    help='the page for --serve-page (default ../sio-chat next to this script)')
    ap.add_argument('--client-bundle', metavar='PATH',
                    help="socket.io-client's socket.io.min.js for --serve-page")
    ap.add_argument('-v', '--verbose', action='store_true', help='print joins and leaves')
    args = ap.parse_args(argv)
    if not 0 <= args.history <= 10000 or not 1 <= args.max_rooms <= 10000 or \
            not 1 <= args.max_users <= 1000000 or not 0 <= args.port <= 65535:
        ap.error('an option is out of range')

    try:
        import gi
        gi.require_version('GLib', '2.0')
        gi.require_version('Json', '1.0')
        gi.require_version('EngineIO', '1.0')
        gi.require_version('SocketIO', '1.0')
        from gi.repository import EngineIO, GLib, Json, SocketIO
    except (ImportError, ValueError) as e:
        print('sio-chat.py: cannot load the SocketIO 1.0 typelib (%s); set GI_TYPELIB_PATH and '
              'LD_LIBRARY_PATH, and run with /usr/bin/python3' % e, file=sys.stderr)
        return 1

    httpd = None
    page_url = None
    host = '[%s]' % args.host if ':' in args.host else args.host
    props = dict(path='/socket.io/', max_payload=64 * 1024,
                 callback_context=GLib.MainContext.default())
    if args.serve_page:
        if not os.path.isfile(os.path.join(args.static_dir, 'index.html')):
            ap.error('no index.html in %s (--static-dir)' % args.static_dir)
        csp = [None]
        httpd = serve_page(args.host, os.path.abspath(args.static_dir), args.client_bundle,
                           os.path.join(here, '..', 'chat', 'chat.css'), csp)
        page_url = 'http://%s:%d/' % (host, httpd.server_address[1])
        props['cors_origin'] = args.cors or page_url.rstrip('/')
    elif args.cors:
        props['cors_origin'] = args.cors
    engine = EngineIO.Server(**props)
    io = SocketIO.Server.new(engine)
    chat = SioChat(io.of('/'), Json, GLib, history=args.history, max_rooms=args.max_rooms,
                   max_users=args.max_users, verbose=args.verbose)
    try:
        engine.listen(args.host, args.port)
    except GLib.Error as e:
        print('sio-chat.py: %s' % e.message, file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C closes gracefully
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda: loop.quit() or True)
    server_url = 'http://%s:%d/' % (host, engine.get_port())
    if httpd is not None:
        # As socketio-chat's, plus the Socket.IO server's origin.
        where = '%s:%d' % (host, engine.get_port())
        csp[0] = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                  "connect-src 'self' http://%s ws://%s; object-src 'none'; base-uri 'none'; "
                  "form-action 'self'; frame-ancestors 'none'" % (where, where))
    if page_url:
        print('listening on %s?server=%s' % (page_url, server_url), flush=True)
    else:
        print('listening on %ssocket.io/' % server_url, flush=True)
    loop.run()
    engine.close()
    if httpd is not None:
        httpd.shutdown()
    del chat
    return 0


if __name__ == '__main__':
    sys.exit(main())
