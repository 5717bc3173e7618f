# SPDX-License-Identifier: MIT
"""PyGObject overrides for SocketIO-1.0: a Socket.IO server that feels like python-socketio.

    import gi
    gi.require_version('EngineIO', '1.0')
    gi.require_version('SocketIO', '1.0')
    from gi.repository import EngineIO, SocketIO

    engine = EngineIO.Server(path='/socket.io/')
    sio = SocketIO.Server(engine)

    @sio.on('connect')
    def connect(socket, environ, auth):
        if not auth or auth.get('token') != 'secret':
            raise SocketIO.ConnectionRefusedError('unauthorized', {'retry': False})
        socket.join('members')

    @sio.on('message')
    def message(socket, *args):
        socket.emit('message-back', *args)
        return 'got it'                       # the ack, if the client asked for one

    @sio.on('disconnect')
    def disconnect(socket, reason):
        print(socket.sid, 'left:', reason)

    engine.listen('127.0.0.1', 3000)
    GLib.MainLoop().run()

Values.  Handlers receive, and emit/ack take, Python values: dict (str keys), list (a tuple
is sent as a list), str, int, float, bool, None and bytes (also bytearray and memoryview,
received as bytes), nested in any way.  Bytes travel as Socket.IO binary attachments: they
are replaced by `{"_placeholder": true, "num": N}` in the JSON and sent after it, and the
placeholders of a received event are turned back into bytes in place, at any depth
(pack_args() and unpack_args() do it, see their docstrings).

Threads.  Every handler (connect, disconnect, events, the callbacks of emits waiting for an
ack) runs in the context of the client's Engine.IO session: a thread of the library (one
per session, or a pool with EngineIO.Server:loop-threads), or the context given as
EngineIO.Server:callback-context (GLib.MainContext.default() runs every handler on the
thread iterating it, one at a time).  With session threads, handlers of different clients
run at the same time (PyGObject takes the GIL for each): state shared between clients
needs a lock.  emit, join, leave and disconnect may be called from any thread.  An emit
with a callback made outside a handler runs its callback in the caller's thread-default
GLib.MainContext, which must be iterated (GLib.MainLoop) until then.

The methods of the C API stay available under their own names where this module does not
replace them; Server.emit, Namespace.emit, Socket.emit, Socket.disconnect,
BroadcastOperator.emit and RedisEmitter.emit (with its sockets_join, sockets_leave,
disconnect_sockets and server_side_emit) are replaced by the Python forms below (GObject's signal emission
is still GObject.Object.emit(obj, ...)).
"""

import inspect
import json
import logging
import math
import threading

from gi.repository import GLib, Json

from ..module import get_introspection_module
from ..overrides import override

SocketIO = get_introspection_module('SocketIO')

__all__ = []

log = logging.getLogger('SocketIO')

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_REJECTED = 'Connection rejected by server'


# ------------------------------------------------------------------------------------------
# Python values <-> JSON (Json.Node / Json.Array) plus binary attachments


def _prepare(value, attachments):
    """A JSON-ready copy of value, bytes replaced by placeholders appended to attachments."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        if '\0' in value:
            # A Json.Node holds a NUL-terminated string: it cannot carry U+0000.
            raise ValueError('Socket.IO values cannot contain U+0000 in strings '
                             '(json-glib strings are NUL-terminated)')
        return value
    if isinstance(value, int):  # bool is handled above
        if _INT64_MIN <= value <= _INT64_MAX:
            return int(value)
        return float(value)  # as JavaScript would read it
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError('Socket.IO values cannot be NaN or infinite (JSON has no such number)')
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        attachments.append(GLib.Bytes.new(bytes(value)))
        return {'_placeholder': True, 'num': len(attachments) - 1}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError('Socket.IO object keys must be str, not %s' % type(k).__name__)
            if '\0' in k:
                raise ValueError('Socket.IO values cannot contain U+0000 in strings')
            out[k] = _prepare(v, attachments)
        return out
    if isinstance(value, (list, tuple)):
        return [_prepare(v, attachments) for v in value]
    raise TypeError('cannot send a %s over Socket.IO (dict, list, tuple, str, int, float, bool, '
                    'None and bytes can be sent)' % type(value).__name__)


def _parse(prepared):
    text = json.dumps(prepared, ensure_ascii=False, allow_nan=False, separators=(',', ':'))
    return Json.from_string(text)


def to_node(value):
    """Converts one Python value to a Json.Node (no bytes: a lone value has no attachments).

    Used for the `data` of a connection refusal. Raises TypeError or ValueError for a value
    JSON cannot carry.
    """
    attachments = []
    prepared = _prepare(value, attachments)
    if attachments:
        raise TypeError('bytes cannot be sent here (no attachments)')
    return _parse(prepared)


def pack_args(values):
    """Converts a sequence of Python values to (Json.Array, attachments).

    attachments is a list of GLib.Bytes (empty when no value holds bytes): each bytes,
    bytearray or memoryview found at any depth is appended to it and replaced in the JSON
    by `{"_placeholder": true, "num": N}`, N its index, as socket.io-parser does. Tuples
    become arrays, ints beyond 64 bits become floats (as JavaScript reads them). Raises
    TypeError (a type JSON cannot carry, a dict key that is not a str) or ValueError (NaN,
    infinities, U+0000 in a string).
    """
    attachments = []
    prepared = [_prepare(v, attachments) for v in values]
    return _parse(prepared).get_array(), attachments


def _bytes_of(gbytes):
    data = gbytes.get_data()
    return bytes(data) if data else b''


def _from_node(node, attachments):
    t = node.get_node_type()
    if t == Json.NodeType.VALUE:
        return node.get_value()  # int (JSON integer), float, bool or str
    if t == Json.NodeType.OBJECT:
        obj = node.get_object()
        if attachments is not None and obj.get_size() == 2 and obj.has_member('_placeholder') \
                and obj.has_member('num'):
            flag = obj.get_member('_placeholder')
            num = obj.get_member('num')
            if flag.get_node_type() == Json.NodeType.VALUE and flag.get_value() is True \
                    and num.get_node_type() == Json.NodeType.VALUE:
                n = num.get_value()
                if type(n) is int and 0 <= n < len(attachments):
                    return _bytes_of(attachments[n])
        return {k: _from_node(obj.get_member(k), attachments) for k in obj.get_members()}
    if t == Json.NodeType.ARRAY:
        return [_from_node(n, attachments) for n in node.get_array().get_elements()]
    return None  # Json.NodeType.NULL


def from_node(node, attachments=None):
    """Converts a Json.Node (or None) to a Python value.

    Objects become dicts (members in order), arrays lists, numbers int (JSON integers) or
    float. With attachments (a sequence of GLib.Bytes), each placeholder
    `{"_placeholder": true, "num": N}` becomes bytes(attachments[N]), at any depth.
    """
    if node is None:
        return None
    return _from_node(node, list(attachments) if attachments is not None else None)


def unpack_args(args, attachments=None):
    """Converts a Json.Array (an event's or ack's arguments) and its attachments (GLib.Bytes)
    to a list of Python values, placeholders turned into bytes in place (see from_node)."""
    if args is None:
        return []
    atts = list(attachments) if attachments is not None else None
    return [_from_node(n, atts) for n in args.get_elements()]


def _ack_values(ret):
    """What a handler returned, as the arguments of its ack (python-socketio's rule)."""
    if ret is None:
        return ()
    if isinstance(ret, tuple):
        return ret
    return (ret,)


def _arity(func):
    """How many positional arguments func takes (a large number for *args)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 99
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def _sid(target):
    """A socket id (or room name) from a Socket or a str."""
    if isinstance(target, SocketIO.Socket):
        return target.get_id()
    return target


def _targets(to):
    if to is None:
        return []
    if isinstance(to, (str, SocketIO.Socket)):
        return [_sid(to)]
    return [_sid(t) for t in to]


def _ack_callback(callback, error_callback, finish):
    """A GAsyncReadyCallback calling callback(*values) or error_callback(GLib.Error)."""
    def done(source, result, *unused):
        try:
            values = finish(source, result)
        except GLib.Error as e:
            if error_callback is not None:
                _call_logged(error_callback, e)
            else:
                log.debug('no ack: %s', e.message)
            return
        _call_logged(callback, *values)
    return done


def _call_logged(func, *args):
    try:
        func(*args)
    except Exception:
        log.exception('exception in Socket.IO callback %r', func)


def _timeout_ms(timeout):
    if timeout is None:
        return 0
    return max(1, int(timeout * 1000))


class ConnectionRefusedError(Exception):
    """Raise it from a `connect` handler to refuse the client (python-socketio's exception).

    The client gets CONNECT_ERROR with `message` str(args[0]) (default
    'Connection rejected by server') and `data` args[1] (one more argument) or the list of
    args[1:] (several). Any exception with an `error_args` dict ({'message': ..., 'data':
    ...}), such as socketio.exceptions.ConnectionRefusedError, is understood too.
    """

    def __init__(self, *args):
        super().__init__(*args)
        if len(args) == 0:
            self.error_args = {'message': _REJECTED}
        else:
            self.error_args = {'message': str(args[0])}
            if len(args) == 2:
                self.error_args['data'] = args[1]
            elif len(args) > 2:
                self.error_args['data'] = list(args[1:])


__all__ += ['ConnectionRefusedError', 'pack_args', 'unpack_args', 'to_node', 'from_node']


# ------------------------------------------------------------------------------------------
# Socket


class Socket(SocketIO.Socket):
    """A client in a namespace. Handlers receive it as their first argument.

    socket.sid is its id (also the name of its own room); emit, join, leave and disconnect
    may be called from any thread. In a `connect` handler the socket has not joined yet:
    what it emits and joins there is applied once it has (after the CONNECT reply).
    """

    @property
    def sid(self):
        return self.get_id()

    @property
    def namespace(self):
        """The namespace's name ('/' for the main one)."""
        return self.get_namespace().get_name()

    @property
    def auth(self):
        """The CONNECT packet's auth payload as a Python value (None without one)."""
        return from_node(self.get_auth())

    @property
    def rooms(self):
        """The rooms the socket is in (its own, named by its id, included)."""
        return list(self.get_rooms())

    def _pending(self):
        return self.__dict__.get('_sio_pending')

    def emit(self, event, *args, callback=None, timeout=None, error_callback=None):
        """Sends event with args (Python values) to this client.

        With callback, asks the client for an ack: callback(*values) runs with the ack's
        values, in the calling thread's thread-default GLib.MainContext (the session's own
        when called from a handler; otherwise that context must be iterated). timeout
        (seconds, default none) bounds the wait; on timeout, disconnection or refusal
        error_callback(GLib.Error) runs instead, if given. Raises GLib.Error when the packet
        cannot be queued (G_IO_ERROR_NOT_CONNECTED, a full queue...) and TypeError or
        ValueError for values JSON cannot carry. Any thread.
        """
        jargs, atts = pack_args(args)
        pending = self._pending()
        if pending is not None:
            pending.append(lambda: self.emit(event, *args, callback=callback, timeout=timeout,
                                             error_callback=error_callback))
            return
        if callback is None:
            SocketIO.Socket.emit(self, event, jargs, atts or None)
            return

        def finish(source, result):
            values, ack_atts = SocketIO.Socket.emit_with_ack_finish(source, result)
            return unpack_args(values, ack_atts)

        SocketIO.Socket.emit_with_ack(self, event, jargs, atts or None, _timeout_ms(timeout),
                                      None, _ack_callback(callback, error_callback, finish))

    def send(self, data, callback=None, **kwargs):
        """emit('message', data): python-socketio's send()."""
        self.emit('message', data, callback=callback, **kwargs)

    def join(self, room):
        """Adds the socket to room. Any thread."""
        pending = self._pending()
        if pending is not None:
            pending.append(lambda: self.join(room))
            return
        SocketIO.Socket.join(self, room)

    def leave(self, room):
        """Removes the socket from room. Any thread."""
        pending = self._pending()
        if pending is not None:
            pending.append(lambda: self.leave(room))
            return
        SocketIO.Socket.leave(self, room)

    def disconnect(self, close_transport=False):
        """Disconnects the client from this namespace (reason `server namespace disconnect`
        on both sides); with close_transport, closes its whole Engine.IO session too.

        Any thread: in the socket's own context (its handlers) it happens at once, elsewhere
        later, in that context (the C function may only run there), and the disconnect
        handler runs there too."""
        if self.get_context().is_owner():
            SocketIO.Socket.disconnect(self, close_transport)
        else:
            op = self.get_namespace().broadcast()
            op.to(self.get_id())
            op.disconnect_sockets(close_transport)


Socket = override(Socket)
__all__.append('Socket')


# ------------------------------------------------------------------------------------------
# BroadcastOperator and Namespace


class BroadcastOperator(SocketIO.BroadcastOperator):
    """A selection of sockets: namespace.to(room), socket.to(room), .to(r2), .except_(r3)."""

    def skip(self, sid_or_room):
        """Excludes a socket (a Socket or its id) or a room; returns self."""
        return self.except_(_sid(sid_or_room))

    def emit(self, event, *args, callback=None, timeout=None):
        """Sends event with args (Python values) to every selected socket; returns how many.

        With callback, asks every one for an ack and calls callback(responses, missing) once
        all answered or timed out (timeout in seconds, default none): responses is a list
        with the values (a list) of each ack received, missing how many did not answer.
        The callback runs in the calling thread's thread-default GLib.MainContext. Bytes in
        the acks arrive as bytes, at any depth, as in socket.emit's callback. Any thread.
        """
        jargs, atts = pack_args(args)
        if callback is None:
            ok, recipients = SocketIO.BroadcastOperator.emit(self, event, jargs, atts or None)
            return recipients

        def done(source, result, *unused):
            try:
                responses, attachments, missing = source.emit_with_ack_finish_full(result)
            except GLib.Error as e:
                log.warning('broadcast with ack failed: %s', e.message)
                return
            _call_logged(callback, [unpack_args(a, atts) for a, atts in zip(responses, attachments)],
                         missing)

        SocketIO.BroadcastOperator.emit_with_ack(self, event, jargs, atts or None,
                                                 _timeout_ms(timeout), None, done)
        return None


BroadcastOperator = override(BroadcastOperator)
__all__.append('BroadcastOperator')


class Namespace(SocketIO.Namespace):
    """A namespace (server.of('/chat')). Its `emit` broadcasts to all its sockets."""

    @property
    def name(self):
        return self.get_name()

    def emit(self, event, *args, callback=None, timeout=None):
        """Broadcasts event to every socket of the namespace (see BroadcastOperator.emit)."""
        return self.broadcast().emit(event, *args, callback=callback, timeout=timeout)


Namespace = override(Namespace)
__all__.append('Namespace')


# ------------------------------------------------------------------------------------------
# RedisEmitter (built with the `redis` feature only)


if hasattr(SocketIO, 'RedisEmitter'):
    def _rooms(rooms):
        return [rooms] if isinstance(rooms, str) else list(rooms)

    class RedisEmitter(SocketIO.RedisEmitter):
        """Emits into a Socket.IO cluster through Redis, as npm @socket.io/redis-emitter.

            emitter = SocketIO.RedisEmitter.new('redis://127.0.0.1:6379', None)
            emitter.of('/chat').to('lobby').emit('news', {'n': 1}, b'\x00\x01')

        of(), to(), in_(), except_(), volatile() and compress() return a new emitter (the
        C methods). emit, sockets_join, sockets_leave, disconnect_sockets and
        server_side_emit block the calling thread until Redis answered (at most the timeout
        per step, set_timeout(), default 5 s) and raise GLib.Error on failure
        (Gio.IOErrorEnum.TIMED_OUT past the timeout). Any thread.
        """

        def emit(self, event, *args):
            """Sends event with args (Python values; bytes at any depth travel as binaries)
            to every socket this emitter addresses, on every node."""
            jargs, atts = pack_args(args)
            return SocketIO.RedisEmitter.emit(self, event, jargs, atts or None)

        def send(self, data):
            """emit('message', data)."""
            return self.emit('message', data)

        def sockets_join(self, rooms):
            """The addressed sockets join rooms (a str or a list of str) on every node."""
            return SocketIO.RedisEmitter.sockets_join(self, _rooms(rooms))

        def sockets_leave(self, rooms):
            """The addressed sockets leave rooms (a str or a list of str) on every node."""
            return SocketIO.RedisEmitter.sockets_leave(self, _rooms(rooms))

        def disconnect_sockets(self, close=False):
            """Disconnects the addressed sockets on every node."""
            return SocketIO.RedisEmitter.disconnect_sockets(self, close)

        def server_side_emit(self, event, *args):
            """Sends event with args (JSON values, no bytes) to the servers of the cluster."""
            jargs, atts = pack_args((event,) + args)
            if atts:
                raise TypeError('a server-side emit cannot carry bytes')
            return SocketIO.RedisEmitter.server_side_emit(self, jargs)

    RedisEmitter = override(RedisEmitter)
    __all__.append('RedisEmitter')


if hasattr(SocketIO, 'RedisAdapter'):
    class RedisAdapter(SocketIO.RedisAdapter):
        """The Redis adapter, with serverSideEmit in Python values.

            adapter = SocketIO.RedisAdapter.new(sio.of('/'), 'redis://127.0.0.1:6379', None)
            sio.of('/').set_adapter(adapter)
            adapter.on_server_side('ping', lambda *args: {'pong': args})
            adapter.server_side_emit('hello', 1, 'two')
            adapter.server_side_emit('ping', 1, callback=lambda answers: print(answers))
        """

        def on_server_side(self, event, handler):
            """Calls handler(*values) for each server-side event named event from another node.

            Its return value (JSON values, not None) answers a sender that asked for an ack;
            None answers nothing. Runs on the adapter's own thread: it must not block.
            Returns the signal handler id.
            """
            def on_event(adapter, name, args):
                try:
                    ret = handler(*unpack_args(args))
                    return to_node(ret) if ret is not None else None
                except Exception:
                    log.exception('exception in the server-side handler of %r', name)
                    return None
            return self.connect('server-side-event::' + event, on_event)

        def server_side_emit(self, event, *args, callback=None, error_callback=None):
            """Sends event with args (JSON values, no bytes) to the other servers.

            With callback, callback(answers) runs with the list of the other nodes' answers
            (in the calling thread's thread-default GLib.MainContext, which must be
            iterated); error_callback(GLib.Error) instead on timeout (the requests timeout)
            or when Redis is not connected. Without callback, never waits. Any thread.
            """
            jargs, atts = pack_args((event,) + args)
            if atts:
                raise TypeError('a server-side emit cannot carry bytes')
            if callback is None:
                return SocketIO.RedisAdapter.server_side_emit(self, jargs)

            def finish(source, result):
                answers = SocketIO.RedisAdapter.server_side_emit_finish(source, result)
                return (unpack_args(answers),)

            SocketIO.RedisAdapter.server_side_emit_async(self, jargs, None,
                                                         _ack_callback(callback, error_callback,
                                                                       finish))
            return True

    RedisAdapter = override(RedisAdapter)
    __all__.append('RedisAdapter')


# ------------------------------------------------------------------------------------------
# Server


_STATE_LOCK = threading.Lock()


class _ServerState:
    def __init__(self):
        self.lock = threading.Lock()  # guards handlers' keys and connecting
        self.handlers = {}            # namespace name -> {event: handler}
        self.connecting = {}          # (namespace name, sid) -> Socket, during 'connect'


class Server(SocketIO.Server):
    """A Socket.IO server on an EngineIO.Server, with python-socketio's programming model.

    sio = SocketIO.Server(engine, connect_timeout=45000, ...) (the GObject properties as
    keywords). Register handlers with @sio.on(event, namespace='/'), sio.on(event, handler)
    or @sio.event; send with sio.emit(...), socket.emit(...), sio.to(room).emit(...).

    Handlers (all run in the client's session context: a library thread, or the
    EngineIO.Server's callback-context; see the module docstring):

    - 'connect': handler(socket, environ, auth) (or (socket, environ), or (socket),
      chosen by how many positional parameters it has): environ is the client's
      EngineIO.Handshake, auth the CONNECT packet's auth as a Python value (None without
      one). Return False or raise ConnectionRefusedError(message, data) to refuse: the
      client gets CONNECT_ERROR with that message and data. What it emits and joins is
      applied once the client has joined (after the CONNECT reply).
    - 'disconnect': handler(socket, reason) (or (socket)); reason is Socket.IO's
      ('client namespace disconnect', 'server namespace disconnect', 'transport close',
      'ping timeout', 'transport error', 'parse error', 'forced server close',
      'server shutting down').
    - any other event: handler(socket, *args), args as Python values with bytes in place.
      When the client asked for an ack, what the handler returns is sent as the ack (None:
      no values, a tuple: several, anything else: one).
    - '*': handler(event, socket, *args), for events without a handler of their own.

    An exception raised by a handler is logged (logger 'SocketIO') and, for an event with
    an ack, no ack is sent.
    """

    def __init__(self, engine=None, **kwargs):
        if engine is not None:
            kwargs['engine'] = engine
        super().__init__(**kwargs)
        self._sio()

    def _sio(self):
        """The Python state, made on first use (SocketIO.Server.new() skips __init__)."""
        state = self.__dict__.get('_sio_state')
        if state is None:
            with _STATE_LOCK:
                state = self.__dict__.get('_sio_state')
                if state is None:
                    state = _ServerState()
                    self._sio_state = state
        return state

    # -- registration ----------------------------------------------------------------------

    def _setup_namespace(self, name):
        state = self._sio()
        with state.lock:
            if name in state.handlers:
                return state.handlers[name]
            handlers = {}
            state.handlers[name] = handlers
        nsp = self.of(name)
        nsp.use_async(self._sio_middleware, name)
        nsp.connect('connection', self._sio_on_connection, name)
        return handlers

    def on(self, event, handler=None, namespace=None):
        """Registers handler for event in namespace (default '/'); without handler, returns
        a decorator. See the class docstring for the handlers' arguments and threads."""
        name = namespace or '/'

        def register(func):
            self._setup_namespace(name)[event] = func
            return func

        if handler is None:
            return register
        return register(handler)

    def event(self, *args, namespace=None):
        """Decorator registering a function for the event named like it: @sio.event or
        @sio.event(namespace='/chat')."""
        if len(args) == 1 and callable(args[0]):
            return self.on(args[0].__name__, args[0], namespace=namespace)

        def register(func):
            return self.on(func.__name__, func, namespace=namespace)
        return register

    # -- sending ---------------------------------------------------------------------------

    def _socket(self, sid, namespace):
        """The Socket for sid (a Socket or an id) in namespace, also during its connect."""
        if isinstance(sid, SocketIO.Socket):
            return sid
        name = namespace or '/'
        with self._sio().lock:
            socket = self._sio().connecting.get((name, sid))
        if socket is not None:
            return socket
        nsp = self.lookup_namespace(name)
        return nsp.lookup_socket(sid) if nsp is not None else None

    def emit(self, event, *args, to=None, room=None, skip_sid=None, namespace=None,
             callback=None, timeout=None, error_callback=None):
        """Sends event with args (Python values).

        to (or room): a room, a socket id, a Socket, or a list of them; default everyone in
        the namespace (default '/'). skip_sid: a socket id, Socket, room, or a list of them
        to leave out. With callback, `to` must name one socket: callback(*values) runs with
        its ack (see Socket.emit, also for timeout and error_callback); for the acks of a
        broadcast use sio.to(room).emit(..., callback=...). Returns how many sockets a
        broadcast reached (None for one socket). Any thread.
        """
        name = namespace or '/'
        targets = _targets(to if to is not None else room)
        if len(targets) == 1 and not skip_sid:
            socket = self._socket(targets[0], name)
            if socket is not None:
                socket.emit(event, *args, callback=callback, timeout=timeout,
                            error_callback=error_callback)
                return None
        if callback is not None:
            raise ValueError('an emit with a callback needs to= one connected socket '
                             '(use sio.to(room).emit(..., callback=) for a broadcast)')
        return self.to(targets, namespace=name, skip_sid=skip_sid).emit(event, *args)

    def send(self, data, to=None, room=None, skip_sid=None, namespace=None, callback=None,
             **kwargs):
        """emit('message', data, ...): python-socketio's send()."""
        return self.emit('message', data, to=to, room=room, skip_sid=skip_sid,
                         namespace=namespace, callback=callback, **kwargs)

    def to(self, room=None, namespace=None, skip_sid=None):
        """A BroadcastOperator for room(s) (default: the whole namespace) minus skip_sid."""
        op = self.of(namespace or '/').broadcast()
        for r in _targets(room):
            op.to(r)
        for s in _targets(skip_sid):
            op.except_(s)
        return op

    # -- rooms and sessions ----------------------------------------------------------------

    def enter_room(self, sid, room, namespace=None):
        """Adds socket sid (an id or a Socket) to room. Any thread."""
        socket = self._socket(sid, namespace)
        if socket is not None:
            socket.join(room)

    def leave_room(self, sid, room, namespace=None):
        """Removes socket sid from room. Any thread."""
        socket = self._socket(sid, namespace)
        if socket is not None:
            socket.leave(room)

    def rooms(self, sid, namespace=None):
        """The rooms of socket sid (an empty list when it is not connected)."""
        socket = self._socket(sid, namespace)
        return socket.rooms if socket is not None else []

    def disconnect(self, sid, namespace=None, close_transport=False):
        """Disconnects socket sid from its namespace (see Socket.disconnect). Any thread."""
        socket = self._socket(sid, namespace)
        if socket is not None:
            socket.disconnect(close_transport)

    def get_socket(self, sid, namespace=None):
        """The connected Socket with id sid in namespace, or None."""
        nsp = self.lookup_namespace(namespace or '/')
        return nsp.lookup_socket(sid) if nsp is not None else None

    # -- signal handlers (session contexts) --------------------------------------------------

    def _sio_middleware(self, nsp, socket, call, name):
        handler = self._sio().handlers[name].get('connect')
        if handler is None:
            call.next()
            return
        key = (name, socket.get_id())
        socket._sio_pending = []
        with self._sio().lock:
            self._sio().connecting[key] = socket
        try:
            n = _arity(handler)
            if n >= 3:
                ret = handler(socket, socket.get_handshake(), from_node(socket.get_auth()))
            elif n == 2:
                ret = handler(socket, socket.get_handshake())
            else:
                ret = handler(socket)
        except Exception as e:
            error_args = getattr(e, 'error_args', None)
            if not isinstance(error_args, dict):
                log.exception('exception in the connect handler of %s', name)
                error_args = {'message': _REJECTED}
            self._sio_refuse(socket, call, error_args)
            return
        finally:
            with self._sio().lock:
                self._sio().connecting.pop(key, None)
        if ret is False:
            self._sio_refuse(socket, call, {'message': _REJECTED})
            return
        call.next()

    @staticmethod
    def _sio_refuse(socket, call, error_args):
        socket.__dict__.pop('_sio_pending', None)
        data = None
        if 'data' in error_args:
            try:
                data = to_node(error_args['data'])
            except (TypeError, ValueError):
                log.exception('cannot send the data of a connection refusal')
        call.refuse(str(error_args.get('message', _REJECTED)), data)

    def _sio_on_connection(self, nsp, socket, name):
        socket.connect('event', self._sio_on_event, name)
        socket.connect('disconnect', self._sio_on_disconnect, name)
        pending = socket.__dict__.pop('_sio_pending', None)
        for action in pending or ():
            try:
                action()
            except Exception:
                log.exception('emit or join from the connect handler of %s failed', name)

    def _sio_on_event(self, socket, event, args, attachments, ack, name):
        handlers = self._sio().handlers[name]
        handler = handlers.get(event)
        catch_all = False
        if handler is None or event in ('connect', 'disconnect'):
            handler = handlers.get('*')
            catch_all = True
            if handler is None:
                return
        try:
            values = unpack_args(args, attachments)
            if catch_all:
                ret = handler(event, socket, *values)
            else:
                ret = handler(socket, *values)
        except Exception:
            log.exception('exception in the handler of event %r in %s', event, name)
            return
        if ack is not None:
            try:
                jargs, atts = pack_args(_ack_values(ret))
                ack.send(jargs, atts or None)
            except (GLib.Error, TypeError, ValueError) as e:
                log.warning('cannot send the ack of %r to %s: %s', event, socket.get_id(), e)

    def _sio_on_disconnect(self, socket, reason, name):
        handler = self._sio().handlers[name].get('disconnect')
        if handler is None:
            return
        try:
            if _arity(handler) >= 2:
                handler(socket, reason)
            else:
                handler(socket)
        except Exception:
            log.exception('exception in the disconnect handler of %s', name)


Server = override(Server)
__all__.append('Server')
