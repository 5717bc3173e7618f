#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""An Engine.IO echo server written in Python over the EngineIO GObject bindings.

Every message comes back to its sender, text as text and binary as binary.

It uses the Python overrides (gi/overrides/EngineIO.py): messages arrive as str or bytes
and socket.send() takes either.  Run it against a build tree (the overrides from the
source tree's src/python):

    GI_TYPELIB_PATH=BUILD/src LD_LIBRARY_PATH=BUILD/src PYTHONPATH=SRC/src/python \\
    /usr/bin/python3 echo.py --port 3000

or against an installed prefix (the typelib lives in LIBDIR/girepository-1.0; the overrides
are installed where /usr/bin/python3 finds them for /usr and /usr/local):

    GI_TYPELIB_PATH=PREFIX/lib/x86_64-linux-gnu/girepository-1.0 \\
    LD_LIBRARY_PATH=PREFIX/lib/x86_64-linux-gnu /usr/bin/python3 echo.py

--callback-context picks where the signal handlers run:

  main     every session runs in the default GLib.MainContext, iterated by this
           script's GLib.MainLoop: handlers run one at a time on the main thread
           (the simple choice for Python code, and the default here);
  threads  every session runs on a thread of the library (see --loop-threads);
           PyGObject takes the GIL for each handler, so handlers of different
           sessions interleave and shared state needs a lock.

Ctrl-C (SIGINT) or SIGTERM closes the server gracefully: clients get a close
packet (reason `server shutting down`) and the program exits with status 0.

Prints `listening on http://HOST:PORT/PATH` once it listens, and with --verbose
one line per event (`open SID v4 polling`, `upgrade SID websocket`,
`close SID transport close`), the same format as the C tool engineio-echo.
"""

import argparse
import signal
import sys
import threading

try:
    import gi
    gi.require_version('GLib', '2.0')
    gi.require_version('EngineIO', '1.0')
    from gi.repository import EngineIO, GLib
except (ImportError, ValueError) as e:
    sys.exit('echo.py: cannot load the EngineIO 1.0 typelib (%s); set GI_TYPELIB_PATH and '
             'LD_LIBRARY_PATH, and run with /usr/bin/python3 (it has PyGObject)' % e)
if not hasattr(EngineIO.Socket, 'send') or not hasattr(EngineIO.Server, 'on'):
    sys.exit('echo.py: the EngineIO Python overrides are not installed; from a source tree, '
             'set PYTHONPATH=SRC/src/python')


class EchoServer:
    def __init__(self, args):
        self.verbose = args.verbose
        self.print_lock = threading.Lock()  # handlers may run on many threads
        props = dict(
            path=args.path,
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            max_payload=args.max_payload,
            allow_eio3=args.eio3,
            loop_threads=args.loop_threads,
        )
        if args.cors:
            props['cors_origin'] = args.cors
        if args.callback_context == 'main':
            props['callback_context'] = GLib.MainContext.default()
        self.server = EngineIO.Server(**props)
        self.server.connect('connection', self.on_connection)

    def event(self, *words):
        if self.verbose:
            with self.print_lock:
                print(*words, flush=True)

    def on_connection(self, server, socket):
        self.event('open', socket.get_id(),
                   'v' + EngineIO.protocol_version_to_string(socket.get_protocol_version()),
                   EngineIO.transport_type_to_string(socket.get_transport()))
        socket.on('message', self.on_message)
        socket.on('close', self.on_close)
        socket.connect('notify::transport', self.on_transport)

    def on_message(self, socket, data):
        # data: a str (text message) or bytes (binary): send() sends it back as it came.
        try:
            socket.send(data)
        except GLib.Error as e:
            # ENGINE_IO_ERROR_CLOSED when the client left meanwhile, QUEUE_FULL under
            # back-pressure: nothing to do for an echo server.
            if not e.matches(EngineIO.error_quark(), EngineIO.Error.CLOSED):
                print('echo.py: echo to %s failed: %s' % (socket.get_id(), e.message),
                      file=sys.stderr, flush=True)

    def on_close(self, socket, reason, description):
        self.event('close', socket.get_id(), reason)

    def on_transport(self, socket, pspec):
        self.event('upgrade', socket.get_id(),
                   EngineIO.transport_type_to_string(socket.get_transport()))


def parse_args(argv):
    ap = argparse.ArgumentParser(description='Engine.IO echo server (Python, EngineIO bindings)')
    ap.add_argument('--host', '--address', dest='host', default='127.0.0.1',
                    help='numeric address to bind (default 127.0.0.1)')
    ap.add_argument('--port', type=int, default=3000, help='port (default 3000; 0 picks one)')
    ap.add_argument('--path', default='/engine.io/', help='engine path (default /engine.io/)')
    ap.add_argument('--eio3', action='store_true', help='also accept protocol v3 clients')
    ap.add_argument('--callback-context', choices=['main', 'threads'], default='main',
                    help='where handlers run: the main loop (default) or library threads')
    ap.add_argument('--loop-threads', type=int, default=0, metavar='N',
                    help='with --callback-context threads: N shared session threads '
                         '(default 0: one thread per session)')
    ap.add_argument('--ping-interval', type=int, default=25000, metavar='MS')
    ap.add_argument('--ping-timeout', type=int, default=20000, metavar='MS')
    ap.add_argument('--max-payload', type=int, default=1000000, metavar='BYTES')
    ap.add_argument('--cors', metavar='ORIGIN', help='allowed CORS origin(s): * or a list')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='print one line per open, upgrade and close')
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        ap.error('--port must be 0..65535')
    if args.ping_interval < 1 or args.ping_timeout < 1 or args.max_payload < 1:
        ap.error('--ping-interval, --ping-timeout and --max-payload must be positive')
    if not 0 <= args.loop_threads <= 1024:
        ap.error('--loop-threads must be 0..1024')
    return args


def main(argv=None):
    args = parse_args(argv)
    echo = EchoServer(args)
    try:
        echo.server.listen(args.host, args.port)
    except GLib.Error as e:
        print('echo.py: %s' % e.message, file=sys.stderr)
        return 1

    loop = GLib.MainLoop()

    def on_signal():
        loop.quit()
        return GLib.SOURCE_CONTINUE

    # GLib's Unix signal sources run in the main loop (Python's own SIGINT handling
    # would only run between bytecodes, not while the loop waits).
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, on_signal)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, on_signal)

    # Only now that a signal would be handled, tell the world where we are.
    host = '[%s]' % args.host if ':' in args.host else args.host
    print('listening on http://%s:%d%s' % (host, echo.server.get_port(), args.path), flush=True)
    loop.run()

    # Graceful: every session gets `server shutting down`. With --callback-context
    # main, close() iterates the default context while it waits, so the ::close
    # handlers still run here, on the main thread.
    echo.server.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
