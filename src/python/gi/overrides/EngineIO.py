# SPDX-License-Identifier: MIT
"""PyGObject overrides for EngineIO-1.0: Python values instead of GLib ones.

    import gi
    gi.require_version('EngineIO', '1.0')
    from gi.repository import EngineIO, GLib

    server = EngineIO.Server(ping_interval=25000)

    @server.on('connection')
    def connection(socket):
        socket.send('welcome')

    @server.on('message')
    def message(socket, data):            # data: str (text) or bytes (binary)
        socket.send(data)                 # str goes as text, bytes as binary

    @server.on('close')
    def close(socket, reason, description):
        print(socket.get_id(), 'left:', reason)

    port = server.listen(port=3000)       # address=None: every address
    GLib.MainLoop().run()

What this module adds to the C API (which stays available under its own names):

- Server.listen(address=None, port=0) takes keywords and returns the port it listens on
  (useful with port=0); it raises GLib.Error as before.
- Server.on(event, handler=None) and Socket.on(event, handler=None), also as decorators:
  'connection' (server only: handler(socket)), 'message' (handler(socket, data), data a str
  for a text message, with any U+0000 in it, or bytes for a binary one), 'close'
  (handler(socket, reason, description), reason a str such as 'transport close') and
  'drain' (handler(socket)).  A server's 'message', 'close' and 'drain' handlers are
  connected to every socket it opens from then on.  'message' handlers get the messages
  through the socket's message function (set_message_func(), no signal per message) when
  on() is called in the socket's context (as from a 'connection' handler), else through
  ::packet; either way no message is also kept for receive().  The application's own
  set_message_func() replaces them until the next on('message') or on('drain') (which
  sets the function again so that the socket sees the new ::drain handler).
- Socket.send(data, callback=None): a str is sent as a text message (U+0000 included), bytes
  (or bytearray, memoryview) as a binary one; callback(socket, sent) tells whether the
  message was written to the client (see engine_io_socket_send_text_full()).
- Server.broadcast(data, except_socket=None): the same to every open socket, as one shared
  packet, concurrent broadcasts in one order (engine_io_server_broadcast_text()).
- bytes, bytearray and memoryview are accepted wherever the C API takes a GLib.Bytes:
  Socket.send_binary(), Socket.send_binary_full(), Packet.new_binary().
- Packet.text (str, or None for a binary packet: the whole text, U+0000 included, unlike
  get_text() whose C length out-argument makes it a (str, length) tuple) and Packet.value
  (the text as str, or the binary payload as bytes).

Threads.  Handlers run in the context of the socket's Engine.IO session: a thread of the
library (one per session, or a pool with the loop-threads property), or the context given
as the callback-context property (GLib.MainContext.default() runs every handler on the
thread iterating it).  Socket.send() may be called from any thread.
"""

import sys

from gi.repository import GLib

from ..module import get_introspection_module
from ..overrides import override

EngineIO = get_introspection_module('EngineIO')

__all__ = []

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _to_glib_bytes(data):
    """data as a GLib.Bytes (a GLib.Bytes is returned as it is)."""
    if isinstance(data, GLib.Bytes):
        return data
    if isinstance(data, _BYTES_LIKE):
        return GLib.Bytes.new(bytes(data))
    raise TypeError('expected bytes, bytearray, memoryview or GLib.Bytes, not %s'
                    % type(data).__name__)


def _packet_value(packet):
    """A received packet's payload: str for text, bytes for binary."""
    if packet.is_binary():
        return packet.get_data().get_data() or b''
    return _packet_text(packet)


def _packet_text(packet):
    data = packet.get_text_bytes()
    if data is None:
        return None
    return (data.get_data() or b'').decode('utf-8', 'surrogateescape')


_SOCKET_EVENTS = ('message', 'close', 'drain')


class _MessageHandlers:
    """A socket's on('message') handlers, called in order by its message function
    (engine_io_socket_set_message_func()); one that raises does not stop the others."""

    def __init__(self):
        self.handlers = []

    def __call__(self, socket, packet, *user_data):
        data = _packet_value(packet)
        for handler in list(self.handlers):
            try:
                handler(socket, data)
            except Exception:
                sys.excepthook(*sys.exc_info())


def _ignore_message(socket, text, data):
    pass


def _refresh_message_func(socket):
    """With a message function set, the socket looks for ::drain (and ::packet,
    ::packet-create) handlers when the function is set: set it again, in the socket's
    context, so that a handler just connected is seen."""
    handlers = getattr(socket, '_engineio_message_handlers', None)
    if handlers is None:
        return
    context = socket.get_context()
    if context.is_owner():
        socket.set_message_func(handlers)
    else:
        def again():
            if not socket.is_closed():
                socket.set_message_func(handlers)
            return GLib.SOURCE_REMOVE
        context.invoke_full(GLib.PRIORITY_DEFAULT, again)


def _connect_socket_handler(socket, event, handler):
    if event == 'message':
        # The socket's message function: a message is then neither emitted as ::message
        # nor kept for receive() (kept, messages would fill the receive queue up to its
        # mark, and the session would stop reading).  It is set in the socket's context
        # (a Server.on() handler and a 'connection' handler run there).
        if socket.get_context().is_owner():
            handlers = getattr(socket, '_engineio_message_handlers', None)
            if handlers is None:
                handlers = socket._engineio_message_handlers = _MessageHandlers()
            handlers.handlers.append(handler)
            # Each time: the application's own set_message_func() may have replaced it.
            socket.set_message_func(handlers)
            return
        handlers = getattr(socket, '_engineio_message_handlers', None)
        if handlers is not None:
            # Set already (the list is read by the function in the socket's context).
            handlers.handlers.append(handler)
            return
        # Elsewhere: ::packet, with ::message connected so that nothing is kept either.
        def on_packet(sock, packet):
            if packet.get_packet_type() == EngineIO.PacketType.MESSAGE:
                handler(sock, _packet_value(packet))
        socket.connect('message', _ignore_message)
        socket.connect('packet', on_packet)
        return
    if event == 'close':
        def on_close(sock, reason, description):
            handler(sock, EngineIO.close_reason_to_string(reason), description)
        return socket.connect('close', on_close)
    if event == 'drain':
        socket.connect('drain', lambda sock: handler(sock))
        _refresh_message_func(socket)
        return
    raise ValueError('unknown socket event %r (expected one of %s)'
                     % (event, ', '.join(_SOCKET_EVENTS)))


def _decorator_or_call(connect, event, handler):
    if handler is None:
        def decorator(func):
            connect(event, func)
            return func
        return decorator
    connect(event, handler)
    return handler


class Server(EngineIO.Server):
    def listen(self, address=None, port=0):
        """Listens on address (None: every address) and port (0: one the system picks).

        Returns the port.  Raises GLib.Error (EngineIO.Error.LISTEN) if it cannot listen.
        """
        EngineIO.Server.listen(self, address, port)
        return self.get_port()

    def broadcast(self, data, except_socket=None):
        """Sends data (str: text, bytes: binary) to every open socket but except_socket, as
        one shared packet; concurrent broadcasts reach every socket in one order.  Returns
        the number of sockets it was queued to.  Any thread."""
        if isinstance(data, str):
            return EngineIO.Server.broadcast_text(self, data.encode('utf-8', 'surrogatepass'),
                                                  except_socket)
        return EngineIO.Server.broadcast_binary(self, _to_glib_bytes(data), except_socket)

    def on(self, event, handler=None):
        """Connects handler to event: 'connection', or 'message', 'close' and 'drain' of
        every socket this server opens from now on.  Without handler, a decorator."""
        return _decorator_or_call(self._on, event, handler)

    def _on(self, event, handler):
        if event == 'connection':
            self.connect('connection', lambda server, socket: handler(socket))
        elif event in _SOCKET_EVENTS:
            # Connected in the session's context before its first message is read.
            self.connect('connection',
                         lambda server, socket: _connect_socket_handler(socket, event, handler))
        else:
            raise ValueError('unknown server event %r (expected connection, %s)'
                             % (event, ', '.join(_SOCKET_EVENTS)))


Server = override(Server)
__all__.append('Server')


class Socket(EngineIO.Socket):
    def send(self, data, callback=None):
        """Sends data: a str as a text message, bytes (bytearray, memoryview, GLib.Bytes)
        as a binary one.  callback(socket, sent), if given, runs in the socket's context
        once the message was written to the client (sent True) or will not be (False).
        Raises GLib.Error (EngineIO.Error.CLOSED, QUEUE_FULL) if it cannot be queued.
        Any thread."""
        if isinstance(data, str):
            raw = data.encode('utf-8', 'surrogatepass')
            if callback is None:
                return EngineIO.Socket.send_text_len(self, raw)
            return EngineIO.Socket.send_text_len_full(
                self, raw, lambda socket, sent, *unused: callback(socket, sent))
        payload = _to_glib_bytes(data)
        if callback is None:
            return EngineIO.Socket.send_binary(self, payload)
        return EngineIO.Socket.send_binary_full(
            self, payload, lambda socket, sent, *unused: callback(socket, sent))

    def send_binary(self, data):
        return EngineIO.Socket.send_binary(self, _to_glib_bytes(data))

    def send_binary_full(self, data, callback, *user_data):
        return EngineIO.Socket.send_binary_full(self, _to_glib_bytes(data), callback, *user_data)

    def on(self, event, handler=None):
        """Connects handler to this socket's 'message', 'close' or 'drain' (see the module
        docstring).  Without handler, a decorator."""
        return _decorator_or_call(lambda e, h: _connect_socket_handler(self, e, h), event, handler)


Socket = override(Socket)
__all__.append('Socket')


class Packet(EngineIO.Packet):
    @staticmethod
    def new_binary(packet_type, data):
        return EngineIO.Packet.new_binary(packet_type, _to_glib_bytes(data))

    @property
    def text(self):
        """The text (str, U+0000 included), or None for a binary packet."""
        return _packet_text(self)

    @property
    def value(self):
        """The payload: str for a text packet, bytes for a binary one."""
        return _packet_value(self)


Packet = override(Packet)
__all__.append('Packet')
