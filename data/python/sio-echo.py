#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""socketio-echo in Python, over the SocketIO GI overrides (python-socketio's style).

Behaves like the C tool socketio-echo (and the official protocol test suite's reference
server): on connection to / and to /custom it emits `auth` with the handshake's auth (an
empty object without one); it answers `message` by emitting `message-back` with the same
arguments, acknowledges `message-with-ack` with the same arguments, and answers `broadcast`
by broadcasting `broadcast-back` with the same arguments to the whole namespace (sender
included). Binary arguments come and go as bytes, at any depth.

Against a build tree (not installed), the overrides come from the source tree:

    GI_TYPELIB_PATH=BUILD/src:BUILD/src/socketio LD_LIBRARY_PATH=BUILD/src:BUILD/src/socketio \\
      PYTHONPATH=src/socketio/python /usr/bin/python3 data/python/sio-echo.py --port 3000

(installed, `meson install` puts SocketIO.py into a gi/overrides dir on /usr/bin/python3's
path). Handlers run in each client's Engine.IO session context: with --callback-context
main (the default) all on the main thread, one at a time; with `threads` on the library's
session threads (--loop-threads), at the same time for different clients.

Prints `listening on http://HOST:PORT/PATH` once it listens and, with --verbose,
`connect NSP SID` and `disconnect NSP SID REASON` lines as socketio-echo -v does. SIGINT or
SIGTERM closes the server and exits with status 0.
"""

import argparse
import signal
import sys
import threading

try:
    import gi
    gi.require_version('GLib', '2.0')
    gi.require_version('EngineIO', '1.0')
    gi.require_version('SocketIO', '1.0')
    from gi.repository import EngineIO, GLib, SocketIO
except (ImportError, ValueError) as e:
    sys.exit('sio-echo.py: cannot load the SocketIO 1.0 typelib (%s); set GI_TYPELIB_PATH and '
             'LD_LIBRARY_PATH, and run with /usr/bin/python3 (it has PyGObject)' % e)

if not hasattr(SocketIO, 'pack_args'):
    sys.exit('sio-echo.py: the SocketIO Python overrides are not installed; put '
             'src/socketio/python on PYTHONPATH')

print_lock = threading.Lock()  # handlers may run on several threads


def make_server(args):
    props = dict(path=args.path, ping_interval=args.ping_interval,
                 ping_timeout=args.ping_timeout, max_payload=args.max_payload,
                 loop_threads=args.loop_threads)
    if args.cors:
        props['cors_origin'] = args.cors
    if args.callback_context == 'main':
        props['callback_context'] = GLib.MainContext.default()
    engine = EngineIO.Server(**props)
    sio = SocketIO.Server(engine, connect_timeout=args.connect_timeout)

    def line(*words):
        if args.verbose:
            with print_lock:
                print(*words, flush=True)

    for nsp in ('/', '/custom'):
        @sio.on('connect', namespace=nsp)
        def connect(socket, environ, auth):
            line('connect', socket.namespace, socket.sid)
            socket.emit('auth', auth if auth is not None else {})  # sent once connected

        @sio.on('disconnect', namespace=nsp)
        def disconnect(socket, reason):
            line('disconnect', socket.namespace, socket.sid, reason)

        @sio.on('message', namespace=nsp)
        def message(socket, *values):
            socket.emit('message-back', *values)

        @sio.on('message-with-ack', namespace=nsp)
        def message_with_ack(socket, *values):
            return values  # a tuple: each value is one argument of the ack

        @sio.on('broadcast', namespace=nsp)
        def broadcast(socket, *values):
            sio.emit('broadcast-back', *values, namespace=socket.namespace)

    return engine, sio


def parse_args(argv):
    ap = argparse.ArgumentParser(description='Socket.IO echo server (Python, SocketIO overrides)')
    ap.add_argument('--address', '--host', dest='address', default='127.0.0.1',
                    help='numeric address to bind (default 127.0.0.1)')
    ap.add_argument('--port', type=int, default=3000, help='port (default 3000; 0 picks one)')
    ap.add_argument('--path', default='/socket.io/', help='engine path (default /socket.io/)')
    ap.add_argument('--ping-interval', type=int, default=25000, metavar='MS')
    ap.add_argument('--ping-timeout', type=int, default=20000, metavar='MS')
    ap.add_argument('--max-payload', type=int, default=1000000, metavar='BYTES')
    ap.add_argument('--cors', metavar='ORIGIN', help='allowed CORS origin(s): * or a list')
    ap.add_argument('--loop-threads', type=int, default=0, metavar='N',
                    help='shared session threads (default 0: one per session)')
    ap.add_argument('--connect-timeout', type=int, default=45000, metavar='MS',
                    help='milliseconds a client may take to join a namespace (0: no limit)')
    ap.add_argument('--callback-context', choices=['main', 'threads'], default='main',
                    help='where handlers run: the main loop (default) or library threads')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='print one line per connect and disconnect')
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535 or args.ping_interval < 1 or args.ping_timeout < 1 \
            or args.max_payload < 1 or args.loop_threads < 0 or args.connect_timeout < 0:
        ap.error('an option is out of range')
    return args


def main(argv):
    args = parse_args(argv)
    engine, sio = make_server(args)
    try:
        engine.listen(args.address, args.port)
    except GLib.Error as e:
        print('sio-echo.py: %s' % e.message, file=sys.stderr)
        return 1
    host = '[%s]' % args.address if ':' in args.address else args.address
    print('listening on http://%s:%d%s' % (host, engine.get_port(), args.path), flush=True)

    loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda *a: loop.quit() or True)
    loop.run()
    engine.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
