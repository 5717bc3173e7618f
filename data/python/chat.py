#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The demo chat server's logic in Python, over the EngineIO GObject bindings.

It speaks the same JSON protocol as the C demo (engineio-chat), one JSON object
per Engine.IO text message:

  client -> server  {"type":"login","name":N}  {"type":"message","text":T}
                    {"type":"typing"}  {"type":"stop-typing"}
  server -> client  {"type":"welcome","name":N,"users":[...],"count":C,
                     "history":[{"name":N,"text":T,"time":MS}, ...]}
                    {"type":"joined","name":N,"count":C}  {"type":"left","name":N,"count":C}
                    {"type":"message","name":N,"text":T,"time":MS}
                    {"type":"typing","name":N}  {"type":"stop-typing","name":N}
                    {"type":"error","code":CODE,"message":M}

Rules (the same as the C room, src/demo/chat-room.c):
  * every frame costs a token of a per-connection bucket: 10 per second, bursts of 20;
    a frame without a token is dropped, and the client is told once per throttled
    stretch (`rate-limited`);
  * a frame is at most 2000 characters (`too-long`), is JSON (`bad-json`), is an object
    with a string "type" (`bad-message`); binary frames are `bad-message`;
  * types other than login, message, typing, stop-typing are `unknown-type`; anything
    but login before logging in is `not-logged-in`;
  * a name is trimmed, then 1 to 32 characters without control characters
    (`bad-name`), and unique (`name-taken`); logging in twice is `bad-message`;
  * a message needs a non-blank string "text" (`bad-message`); it goes to everyone,
    sender included, with the server's time in ms, and into the history (the last
    --history messages), which newcomers get in their welcome;
  * typing and stop-typing go to everyone else; joined goes to everyone else, left to
    everyone who remains, both with the new user count.

ChatRoom and ChatSession know nothing about Engine.IO (tests drive them directly);
ChatServer wires them to an EngineIO.Server.

It uses the Python overrides (gi/overrides/EngineIO.py, installed with the typelib; from a
source tree, put SRC/src/python on PYTHONPATH):

    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src PYTHONPATH=SRC/src/python \\
    /usr/bin/python3 chat.py --port 3000
"""

import argparse
import json
import signal
import sys
import threading
import time
import unicodedata

MAX_FRAME_CHARS = 2000   # code points in one inbound frame
MAX_NAME_CHARS = 32      # code points in a name, after trimming
RATE_PER_SECOND = 10     # token bucket refill, frames per second
RATE_BURST = 20          # token bucket size
DEFAULT_HISTORY = 50

KNOWN_TYPES = ('login', 'message', 'typing', 'stop-typing')


def _is_space(ch):
    # What g_unichar_isspace() calls space, so names trim as in the C room (Python's
    # str.strip() would also strip the control characters U+001C..U+001F).
    return ch in '\t\n\v\f\r' or unicodedata.category(ch) in ('Zs', 'Zl', 'Zp')


def normalize_name(raw):
    """The trimmed name if `raw` is a valid name, else None."""
    if not isinstance(raw, str):
        return None
    start, end = 0, len(raw)
    while start < end and _is_space(raw[start]):
        start += 1
    while end > start and _is_space(raw[end - 1]):
        end -= 1
    name = raw[start:end]
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return None
    if any(unicodedata.category(ch) in ('Cc', 'Zl', 'Zp') for ch in name):
        return None
    # Lone surrogates (from JSON "\ud800" escapes) are not text.
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        return None
    return name


def _frame(**members):
    return json.dumps(members, ensure_ascii=False, separators=(',', ':'))


class ChatSession:
    """One client connection. Created by ChatRoom.new_session()."""

    def __init__(self, room, send):
        self.room = room
        self.send = send          # send(json_text); called with the room's lock held
        self.name = None          # (lock) set at login
        self.tokens = float(RATE_BURST)
        self.refilled_at = room.monotonic()
        self.throttled = False

    def receive(self, text):
        """Handles one text frame from the client (anything: it comes from the network)."""
        with self.room.lock:
            if self._take_token():
                self._handle_frame(text)

    def receive_binary(self):
        """Handles a binary frame from the client: the protocol has none."""
        with self.room.lock:
            if self._take_token():
                self._error('bad-message', 'Frames are JSON text, not binary')

    def close(self):
        """The connection ended: leaves the room (the others are told)."""
        room = self.room
        with room.lock:
            if self.name is not None and room.names.get(self.name) is self:
                del room.names[self.name]
                room.members.remove(self)
                room._broadcast(_frame(type='left', name=self.name, count=len(room.members)))
            self.name = None

    # Everything below runs with the room's lock held.

    def _error(self, code, message):
        self.send(_frame(type='error', code=code, message=message))

    def _take_token(self):
        now = self.room.monotonic()
        if now > self.refilled_at:
            self.tokens = min(float(RATE_BURST),
                              self.tokens + (now - self.refilled_at) * RATE_PER_SECOND)
            self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.throttled = False
            return True
        if not self.throttled:  # once per throttled stretch, not once per dropped frame
            self.throttled = True
            self._error('rate-limited', 'Slow down: at most %d messages per second (bursts of '
                        '%d); messages are dropped until then' % (RATE_PER_SECOND, RATE_BURST))
        return False

    def _handle_frame(self, text):
        if not isinstance(text, str):
            self._error('bad-json', 'A frame must be UTF-8 JSON')
            return
        if len(text) > MAX_FRAME_CHARS:
            self._error('too-long', 'A frame is at most %d characters' % MAX_FRAME_CHARS)
            return
        try:
            obj = json.loads(text)
        except ValueError:  # json.JSONDecodeError, and RecursionError-free for 2000 chars
            self._error('bad-json', 'A frame must be one JSON object')
            return
        if not isinstance(obj, dict):
            self._error('bad-message', 'A frame must be a JSON object')
            return
        kind = obj.get('type')
        if not isinstance(kind, str):
            self._error('bad-message', 'A frame needs a string “type”')
            return
        if kind == 'login':
            self._handle_login(obj)
            return
        if kind not in KNOWN_TYPES:
            self._error('unknown-type', 'Unknown type: expected login, message, typing or '
                        'stop-typing')
            return
        if self.name is None:
            self._error('not-logged-in', 'Log in first')
            return
        if kind == 'message':
            self._handle_message(obj)
        else:
            self.room._broadcast(_frame(type=kind, name=self.name), except_=self)

    def _handle_login(self, obj):
        room = self.room
        raw = obj.get('name')
        if self.name is not None:
            self._error('bad-message', 'Already logged in')
            return
        if not isinstance(raw, str):
            self._error('bad-message', 'A login needs a string “name”')
            return
        name = normalize_name(raw)
        if name is None:
            self._error('bad-name', 'A name is 1 to %d characters, without control characters'
                        % MAX_NAME_CHARS)
            return
        if name in room.names:
            self._error('name-taken', 'The name “%s” is taken' % name)
            return
        self.name = name
        room.names[name] = self
        room.members.append(self)
        self.send(_frame(type='welcome', name=name,
                         users=[m.name for m in room.members],
                         count=len(room.members),
                         history=[dict(e) for e in room.history]))
        room._broadcast(_frame(type='joined', name=name, count=len(room.members)),
                        except_=self)

    def _handle_message(self, obj):
        room = self.room
        text = obj.get('text')
        if not isinstance(text, str):
            self._error('bad-message', 'A message needs a string “text”')
            return
        if all(_is_space(ch) for ch in text):
            self._error('bad-message', 'A message cannot be empty')
            return
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
            self._error('bad-message', 'A message must be valid Unicode text')
            return
        entry = {'name': self.name, 'text': text, 'time': int(room.real() * 1000)}
        if room.history_length > 0:
            room.history.append(entry)
            del room.history[:-room.history_length]
        room._broadcast(_frame(type='message', **entry))


class ChatRoom:
    """The room: members, names, history. Thread-safe (one lock for everything)."""

    def __init__(self, history_length=DEFAULT_HISTORY, monotonic=time.monotonic,
                 real=time.time):
        self.history_length = history_length
        self.monotonic = monotonic    # seconds, for the rate limit
        self.real = real              # seconds since the epoch, for message times
        self.lock = threading.RLock()
        self.members = []             # logged-in sessions, in login order
        self.names = {}               # name -> session
        self.history = []             # last history_length message entries, oldest first

    def new_session(self, send):
        """A new connection, not logged in. `send(json_text)` delivers a frame to the
        client: it is called with the room's lock held, must not block and must not
        call back into the room."""
        return ChatSession(self, send)

    @property
    def count(self):
        with self.lock:
            return len(self.members)

    def users(self):
        with self.lock:
            return [m.name for m in self.members]

    def _broadcast(self, frame, except_=None):
        for member in self.members:
            if member is not except_:
                member.send(frame)


class ChatServer:
    """Wires a ChatRoom to an EngineIO.Server: one ChatSession per socket."""

    def __init__(self, server, room, verbose=False):
        from gi.repository import EngineIO, GLib  # only the server part needs the bindings
        self._EngineIO, self._GLib = EngineIO, GLib
        self.server = server
        self.room = room
        self.verbose = verbose
        # Socket id -> session. Kept here rather than in closures connected to the socket,
        # so no reference cycle runs through the C object (Python's GC cannot see those).
        self.sessions = {}
        server.connect('connection', self.on_connection)

    def on_connection(self, server, socket):
        sid = socket.get_id()
        self.sessions[sid] = self.room.new_session(lambda frame: self._send(socket, frame))
        socket.on('message', self.on_message)
        socket.on('close', self.on_close)
        if self.verbose:
            print('open', sid, flush=True)

    def _send(self, socket, frame):
        try:
            socket.send(frame)  # a str: a text message; never blocks
        except self._GLib.Error as e:
            # CLOSED: the client is leaving (its ::close follows); QUEUE_FULL: the
            # back-pressure policy drops frames for a client that does not read.
            if self.verbose:
                print('send to', socket.get_id(), 'failed:', e.message, flush=True)

    def on_message(self, socket, data):
        session = self.sessions.get(socket.get_id())
        if session is None:
            return
        if isinstance(data, str):
            session.receive(data)
        else:
            session.receive_binary()

    def on_close(self, socket, reason, description):
        session = self.sessions.pop(socket.get_id(), None)
        if session is not None:
            session.close()
        if self.verbose:
            print('close', socket.get_id(), reason, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description='Engine.IO chat server (Python, EngineIO bindings)')
    ap.add_argument('--host', default='127.0.0.1', help='numeric address to bind')
    ap.add_argument('--port', type=int, default=3000, help='port (default 3000; 0 picks one)')
    ap.add_argument('--history', type=int, default=DEFAULT_HISTORY, metavar='N',
                    help='messages replayed to newcomers (default %d)' % DEFAULT_HISTORY)
    ap.add_argument('--eio3', action='store_true', help='also accept protocol v3 clients')
    ap.add_argument('--cors', metavar='ORIGIN', help='allowed CORS origin(s): * or a list')
    ap.add_argument('--callback-context', choices=['main', 'threads'], default='main',
                    help='where handlers run: the main loop (default) or library threads')
    ap.add_argument('-v', '--verbose', action='store_true', help='print opens and closes')
    args = ap.parse_args(argv)
    if args.history < 0:
        ap.error('--history must be 0 or more')

    try:
        import gi
        gi.require_version('GLib', '2.0')
        gi.require_version('EngineIO', '1.0')
        from gi.repository import EngineIO, GLib
    except (ImportError, ValueError) as e:
        print('chat.py: cannot load the EngineIO 1.0 typelib (%s); set GI_TYPELIB_PATH and '
              'LD_LIBRARY_PATH, and run with /usr/bin/python3' % e, file=sys.stderr)
        return 1
    if not hasattr(EngineIO.Socket, 'on'):
        print('chat.py: the EngineIO Python overrides are not installed; from a source tree, '
              'set PYTHONPATH=SRC/src/python', file=sys.stderr)
        return 1

    props = dict(allow_eio3=args.eio3)
    if args.cors:
        props['cors_origin'] = args.cors
    if args.callback_context == 'main':
        props['callback_context'] = GLib.MainContext.default()
    server = EngineIO.Server(**props)
    ChatServer(server, ChatRoom(history_length=args.history), verbose=args.verbose)
    try:
        server.listen(args.host, args.port)
    except GLib.Error as e:
        print('chat.py: %s' % e.message, file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C closes gracefully
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda: loop.quit() or True)
    host = '[%s]' % args.host if ':' in args.host else args.host
    print('listening on http://%s:%d/engine.io/' % (host, server.get_port()), flush=True)
    loop.run()
    server.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
