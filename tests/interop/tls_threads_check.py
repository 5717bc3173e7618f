#!/usr/bin/python3
"""Check client_python.py's LockedTLSSocket: two threads on one TLS socket, no false EOFs.

  tls_threads_check.py [--seconds S] [--stock]

python-engineio 4.3.4 reads a wss connection on one thread and writes it on another, both in
the same ssl.SSLSocket at once; now and then the reader then gets b'' (a ragged EOF) from a
connection that is open, and the client drops it (see client_python.py's docstring). This
reproduces that without engineio, websocket-client or our server: a Python TLS server that
streams small records and never closes (its connection used by one thread only), and a client
whose reader thread is in recv() while its writer thread is in send(), through
client_python.LockedTLSSocket, on connections of up to 0.5 s for --seconds (default 5). Exit 0
only if no connection saw EOF or an error while the server was up and every connection moved
data both ways. --stock leaves the lock out, as the client does: it fails (seconds in, on about
half of the connections here).
Needs /usr/bin/python3 with python3-engineio (client_python imports it) and openssl.
"""

import argparse
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import client_python  # noqa: E402


def make_cert(d):
    if shutil.which('openssl') is None:
        sys.exit('FAIL: openssl not found: apt-get install openssl')
    cert, key = os.path.join(d, 'c.pem'), os.path.join(d, 'k.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
                    '-days', '1', '-subj', '/CN=localhost'],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def server_connection(tls, stop):
    # One thread per connection: reads whatever comes, writes a 50-byte record every pass.
    tls.setblocking(False)
    msg = b'x' * 50
    try:
        while not stop.is_set():
            select.select([tls], [], [], 0.0005)
            try:
                while tls.recv(65536):
                    pass
                return  # the client closed
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            try:
                tls.send(msg)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
    except OSError:
        pass
    finally:
        tls.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=5.0)
    ap.add_argument('--stock', action='store_true',
                    help='no lock, as python-engineio does (expected to fail)')
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix='tls-threads-check-')
    try:
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(*make_cert(tmp))
    finally:
        shutil.rmtree(tmp)
    lsock = socket.socket()
    lsock.bind(('127.0.0.1', 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    stop_server = threading.Event()

    def serve():
        while True:
            try:
                c, _ = lsock.accept()
                tls = sctx.wrap_socket(c, server_side=True)
            except OSError:
                if stop_server.is_set():
                    return
                continue
            threading.Thread(target=server_connection, args=(tls, stop_server),
                             daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()

    cctx = ssl.create_default_context()
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    failures, conns, reads, sends = [], 0, 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        raw = socket.create_connection(('127.0.0.1', port))
        tls = cctx.wrap_socket(raw, server_hostname='localhost')
        tls.settimeout(7)  # as the client sets it: pingInterval + pingTimeout
        sock = tls if args.stock else client_python.LockedTLSSocket(tls)
        conns += 1
        stop = threading.Event()
        result, counts = [], {'reads': 0, 'sends': 0}

        def reader():
            while not stop.is_set():
                try:
                    d = sock.recv(16384)
                except Exception as e:
                    if not stop.is_set():
                        result.append('recv raised %r after %d reads' % (e, counts['reads']))
                    return
                if not d:
                    if not stop.is_set():
                        result.append('recv returned b"" (EOF) from an open connection after '
                                      '%d reads' % counts['reads'])
                    return
                counts['reads'] += 1

        def writer():
            while not stop.is_set():
                try:
                    sock.send(b'y' * 20)
                except Exception as e:
                    if not stop.is_set():
                        result.append('send raised %r after %d sends' % (e, counts['sends']))
                    return
                counts['sends'] += 1
                if counts['sends'] % 50 == 0:
                    time.sleep(0.0001)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        t_end = time.monotonic() + min(0.5, max(0.05, end - time.monotonic()))
        while time.monotonic() < t_end and not result:
            time.sleep(0.01)
        stop.set()
        try:
            raw.shutdown(socket.SHUT_RDWR)  # wakes the reader
        except OSError:
            pass
        for t in threads:
            t.join(10)
            if t.is_alive():
                print('FAIL: connection %d: a client thread is stuck' % conns, flush=True)
                os._exit(1)
        tls.close()
        if not result and (counts['reads'] == 0 or counts['sends'] == 0):
            result.append('no data moved (%d reads, %d sends)' % (counts['reads'], counts['sends']))
        if result:
            failures.append('connection %d: %s' % (conns, '; '.join(result)))
        reads += counts['reads']
        sends += counts['sends']
    stop_server.set()
    lsock.close()

    mode = 'stock (no lock)' if args.stock else 'LockedTLSSocket'
    for f in failures[:10]:
        print(f)
    print('%s: %d of %d connections failed (%d recv and %d send calls in all)'
          % (mode, len(failures), conns, reads, sends), flush=True)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
