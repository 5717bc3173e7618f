#!/usr/bin/python3
"""Interop harness: one echo server under test, one real Engine.IO client, checked end to end.

  run-interop.py --server CMD [ARG...] --client node|node-v3|python
                 [--transports polling|websocket|polling,websocket]
                 [--expect-transport polling|websocket] [--eio3] [--loop-threads N] [--big]
                 [--server-arg ARG]... [--client-arg ARG]... [--timeout S] [--tls]

The server command (e.g. `<builddir>/src/tools/engineio-echo`, or `node reference-echo.js`) is
started with `--port 0 --verbose --ping-interval 300 --ping-timeout 400` (plus --eio3,
--loop-threads N, --server-arg ...). Its first stdout line must be
`listening on http://HOST:PORT/PATH`; the client is pointed at that URL. Then:

  * the client must exit 0 and print `ok` (it prints `sid SID TRANSPORT` for each session);
  * the server's verbose lines must show exactly those sessions: one `open SID vN T` each (N = 3
    for node-v3, else 4), an `upgrade SID websocket` exactly when the client started on polling
    and ended on websocket, and `close SID transport close` (waited for briefly);
  * SIGTERM must make the server exit with status 0 within 10 s.

With --tls, a test CA and a certificate for 127.0.0.1/localhost signed by it are made with
`openssl` in a temporary directory; the server gets `--tls-cert FILE --tls-key FILE` and must
print `listening on https://...`; the client trusts the CA through NODE_EXTRA_CA_CERTS (node) or
SSL_CERT_FILE / REQUESTS_CA_BUNDLE (python), never by turning verification off.

Any failure prints `FAIL: reason` (with the server's output) and exits 1. Missing dependencies
are failures, not skips. Standard library only; run with /usr/bin/python3.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, 'node_modules')
CLOSE_WAIT_S = 5.0
SHUTDOWN_WAIT_S = 10.0
STARTUP_WAIT_S = 15.0

CLIENTS = {
    # name: (script, needs node_modules packages, protocol version)
    'node': ('client-v4.mjs', ['engine.io-client'], 4),
    'node-v3': ('client-v3.js', ['engine.io-client-v3'], 3),
    'python': ('client_python.py', [], 4),
}


class Failure(Exception):
    pass


class LineReader:
    """Collects a child's stdout lines (with arrival times) on a thread."""

    def __init__(self, stream, name):
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.name = name
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for raw in iter(stream.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """Waits until pred(lines) is true or timeout; returns the final pred value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                r = pred(self.lines)
                if r or self.eof:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return r
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.lines)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description='Engine.IO interop harness', allow_abbrev=False,
        epilog='Exit 0: all checks passed; 1: a check failed (reason printed).')
    ap.add_argument('--server', nargs='+', required=True, metavar='CMD',
                    help='server command and its own arguments (up to the next --option)')
    ap.add_argument('--server-arg', action='append', default=[], metavar='ARG',
                    help='extra argument for the server (repeatable; may start with -)')
    ap.add_argument('--client', required=True, choices=sorted(CLIENTS))
    ap.add_argument('--client-arg', action='append', default=[], metavar='ARG',
                    help='extra argument for the client (repeatable; may start with -)')
    ap.add_argument('--transports', default='polling,websocket')
    ap.add_argument('--expect-transport', choices=['polling', 'websocket'])
    ap.add_argument('--eio3', action='store_true', help='start the server with --eio3')
    ap.add_argument('--loop-threads', type=int, metavar='N')
    ap.add_argument('--big', action='store_true', help='client also echoes a ~1 MB text')
    ap.add_argument('--tls', action='store_true',
                    help='serve https/wss with a certificate of a test CA made with openssl')
    ap.add_argument('--timeout', type=float, default=60.0,
                    help='client time limit in seconds (default 60)')
    ap.add_argument('--node', default=os.environ.get('NODE', 'node'), help='node executable')
    ap.add_argument('--python', default='/usr/bin/python3',
                    help='python with python3-engineio (default /usr/bin/python3)')
    return ap.parse_args(argv)


def check_dependencies(args):
    script, packages, _ = CLIENTS[args.client]
    if not os.path.isfile(os.path.join(HERE, script)):
        raise Failure('client script missing: %s' % os.path.join(HERE, script))
    if args.client in ('node', 'node-v3'):
        if shutil.which(args.node) is None:
            raise Failure('node executable not found (%s): install Node.js >= 18' % args.node)
        for pkg in packages:
            if not os.path.isfile(os.path.join(NODE_MODULES, pkg, 'package.json')):
                raise Failure('node_modules missing (%s not in %s): run npm ci --prefix '
                              'tests/interop' % (pkg, NODE_MODULES))
    else:
        if not os.path.isfile(args.python) and shutil.which(args.python) is None:
            raise Failure('python not found: %s' % args.python)
        probe = subprocess.run(
            [args.python, '-c', 'import engineio, requests, websocket'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd='/', timeout=30)
        if probe.returncode != 0:
            raise Failure('%s cannot import engineio/requests/websocket: apt-get install '
                          'python3-engineio python3-requests python3-websocket\n%s'
                          % (args.python, probe.stdout.decode('utf-8', 'replace').strip()))
    # The reference server needs node_modules too: say so before it fails obscurely.
    if any(os.path.basename(a) == 'reference-echo.js' for a in args.server):
        if not os.path.isfile(os.path.join(NODE_MODULES, 'engine.io', 'package.json')):
            raise Failure('node_modules missing (engine.io): run npm ci --prefix tests/interop')


def client_command(args, url):
    script = os.path.join(HERE, CLIENTS[args.client][0])
    if args.client == 'python':
        cmd = [args.python, script]
    else:
        cmd = [args.node, script]
    cmd += ['--url', url, '--transports', args.transports, '--timeout', '%g' % args.timeout]
    if args.expect_transport:
        cmd += ['--expect-transport', args.expect_transport]
    if args.big:
        cmd.append('--big')
    cmd += args.client_arg
    return cmd


def make_test_ca(directory):
    """A CA and a server certificate (127.0.0.1, localhost) it signed; returns
    (ca.pem, server.pem, server.key)."""
    if shutil.which('openssl') is None:
        raise Failure('openssl not found: apt-get install openssl')
    p = lambda name: os.path.join(directory, name)

    def openssl(*argv):
        cp = subprocess.run(['openssl'] + list(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=directory, timeout=60)
        if cp.returncode != 0:
            raise Failure('openssl %s failed:\n%s' % (' '.join(argv),
                                                      cp.stdout.decode('utf-8', 'replace')))

    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    openssl('req', '-x509', *ec, '-days', '2', '-subj', '/CN=engineio-glib test CA',
            '-keyout', p('ca.key'), '-out', p('ca.pem'))
    openssl('req', *ec, '-subj', '/CN=localhost', '-keyout', p('server.key'),
            '-out', p('server.csr'))
    with open(p('ext.cnf'), 'w') as f:
        f.write('subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n'
                'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
    openssl('x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'),
            '-CAcreateserial', '-days', '2', '-extfile', p('ext.cnf'), '-out', p('server.pem'))
    return p('ca.pem'), p('server.pem'), p('server.key')


def client_env(args):
    env = dict(os.environ)
    if args.tls:
        env['NODE_EXTRA_CA_CERTS'] = args.tls_ca
        env['SSL_CERT_FILE'] = args.tls_ca
        env['REQUESTS_CA_BUNDLE'] = args.tls_ca
    return env


def server_command(args):
    cmd = list(args.server) + ['--port', '0', '--verbose',
                               '--ping-interval', '300', '--ping-timeout', '400']
    if args.eio3:
        cmd.append('--eio3')
    if args.loop_threads is not None:
        cmd += ['--loop-threads', str(args.loop_threads)]
    if args.tls:
        cmd += ['--tls-cert', args.tls_cert, '--tls-key', args.tls_key]
    cmd += args.server_arg
    return cmd


OPEN_RE = re.compile(r'^open (\S+) v([34]) (polling|websocket)$')
UPGRADE_RE = re.compile(r'^upgrade (\S+) (\S+)$')
CLOSE_RE = re.compile(r'^close (\S+) (.+)$')
SID_RE = re.compile(r'^sid (\S+) (polling|websocket)$')


def server_events(lines):
    opens, upgrades, closes, other = {}, {}, {}, []
    for line in lines[1:]:
        m = OPEN_RE.match(line)
        if m:
            opens.setdefault(m.group(1), []).append((int(m.group(2)), m.group(3)))
            continue
        m = UPGRADE_RE.match(line)
        if m:
            upgrades.setdefault(m.group(1), []).append(m.group(2))
            continue
        m = CLOSE_RE.match(line)
        if m:
            closes.setdefault(m.group(1), []).append(m.group(2))
            continue
        other.append(line)
    return opens, upgrades, closes, other


def run(args):
    check_dependencies(args)
    transports = [t for t in args.transports.split(',') if t]
    if not transports or any(t not in ('polling', 'websocket') for t in transports):
        raise Failure('--transports: expected polling and/or websocket, got %s' % args.transports)
    want_version = CLIENTS[args.client][2]
    if want_version == 3 and not args.eio3:
        raise Failure('--client node-v3 needs --eio3 (the server refuses EIO=3 without it)')

    scmd = server_command(args)
    print('server: %s' % ' '.join(scmd), flush=True)
    stderr_path = os.path.join(os.environ.get('TMPDIR', '/tmp'),
                               'run-interop-server-%d.stderr' % os.getpid())
    stderr_file = open(stderr_path, 'w+b')
    try:
        # Own process group, so that a wrapper's children are cleaned up with it on failure.
        server = subprocess.Popen(scmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=stderr_file, start_new_session=True)
    except OSError as e:
        raise Failure('cannot start server %r: %s' % (scmd[0], e))
    out = LineReader(server.stdout, 'server')

    def server_stderr():
        stderr_file.flush()
        stderr_file.seek(0)
        return stderr_file.read().decode('utf-8', 'replace')

    def dump_server():
        lines = out.snapshot()
        s = '--- server stdout (%d lines) ---\n%s\n' % (len(lines), '\n'.join(lines[-200:]))
        err = server_stderr()
        if err.strip():
            s += '--- server stderr (last 4000 chars) ---\n%s\n' % err[-4000:]
        return s

    try:
        try:
            return _run_with_server(args, server, out, transports, want_version)
        except Failure as e:
            raise Failure('%s\n%s' % (e, dump_server()))
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)  # leftovers of the server's group, if any
        except OSError:
            pass
        if server.poll() is None:
            server.kill()
        server.wait()
        stderr_file.close()
        try:
            os.unlink(stderr_path)
        except OSError:
            pass


def _run_with_server(args, server, out, transports, want_version):
    first = out.wait_for(lambda ls: ls[0] if ls else None, STARTUP_WAIT_S)
    if first is None:
        if server.poll() is not None:
            raise Failure('server exited with status %s before printing its listening line'
                          % server.returncode)
        raise Failure('server printed nothing within %g s' % STARTUP_WAIT_S)
    scheme = 'https' if args.tls else 'http'
    m = re.match(r'^listening on (%s://\S+)$' % scheme, first)
    if not m:
        raise Failure('server first line is not "listening on %s://HOST:PORT/PATH": %r'
                      % (scheme, first))
    url = m.group(1)
    if not re.match(r'^%s://[^/]+:[1-9][0-9]*/' % scheme, url):
        raise Failure('listening URL has no real port: %s' % url)

    ccmd = client_command(args, url)
    print('client: %s' % ' '.join(ccmd), flush=True)
    t0 = time.monotonic()
    try:
        cp = subprocess.run(ccmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=HERE, timeout=args.timeout + 15,
                            env=client_env(args))
    except subprocess.TimeoutExpired as e:
        raise Failure('client did not exit within %g s (its own limit is %g s)\n%s%s'
                      % (args.timeout + 15, args.timeout,
                         (e.stdout or b'').decode('utf-8', 'replace'),
                         (e.stderr or b'').decode('utf-8', 'replace')))
    elapsed = time.monotonic() - t0
    cout = cp.stdout.decode('utf-8', 'replace')
    cerr = cp.stderr.decode('utf-8', 'replace')
    client_report = '--- client stdout ---\n%s--- client stderr ---\n%s' % (cout, cerr)
    out_lines = [l for l in cout.splitlines() if l.strip()]
    if cp.returncode != 0:
        fail_lines = [l for l in cerr.splitlines() if l.startswith('FAIL')]
        raise Failure('client %s exited with status %d: %s\n%s'
                      % (args.client, cp.returncode,
                         fail_lines[-1] if fail_lines else '(no FAIL line)', client_report))
    if not out_lines or out_lines[-1] != 'ok':
        raise Failure('client exited 0 but did not print "ok" last\n%s' % client_report)
    sessions = []
    for l in out_lines:
        m = SID_RE.match(l)
        if m:
            sessions.append((m.group(1), m.group(2)))
    if not sessions:
        raise Failure('client printed no "sid SID TRANSPORT" line\n%s' % client_report)
    print('client ok in %.1f s: %d session(s)' % (elapsed, len(sessions)), flush=True)

    sids = [s for s, _ in sessions]

    def all_closed(lines):
        _, _, closes, _ = server_events(lines)
        return all(s in closes for s in sids)

    out.wait_for(all_closed, CLOSE_WAIT_S)
    lines = out.snapshot()
    opens, upgrades, closes, other = server_events(lines)

    problems = []
    for sid, final in sessions:
        o = opens.get(sid)
        if not o:
            problems.append('no "open %s ..." line on the server' % sid)
            continue
        if len(o) > 1:
            problems.append('%d open lines for %s' % (len(o), sid))
        version, started = o[0]
        if version != want_version:
            problems.append('session %s opened as v%d, expected v%d' % (sid, version, want_version))
        if started not in transports:
            problems.append('session %s opened on %s, not among %s' % (sid, started, transports))
        ups = upgrades.get(sid, [])
        if started == 'polling' and final == 'websocket':
            if ups != ['websocket']:
                problems.append('session %s went polling -> websocket but the server logged '
                                'upgrades %s (expected one "upgrade %s websocket")' % (sid, ups, sid))
        elif ups:
            problems.append('session %s: unexpected upgrade line(s) %s (started %s, ended %s)'
                            % (sid, ups, started, final))
        cl = closes.get(sid)
        if not cl:
            problems.append('no "close %s ..." line within %g s after the client finished'
                            % (sid, CLOSE_WAIT_S))
        elif cl != ['transport close']:
            problems.append('session %s closed with %s, expected exactly one "transport close"'
                            % (sid, cl))
    extra = sorted(set(opens) - set(sids))
    if extra:
        problems.append('server logged sessions the client did not report: %s' % extra)
    if args.expect_transport:
        for sid, final in sessions:
            # node-v3's JSONP session is polling by design; the client checks its own modes.
            if final != args.expect_transport and args.client != 'node-v3':
                problems.append('session %s ended on %s, expected %s'
                                % (sid, final, args.expect_transport))
    if problems:
        raise Failure('server log check failed:\n  ' + '\n  '.join(problems) + '\n' + client_report)
    print('server log ok: %d open / upgrade / close sequence(s)' % len(sessions), flush=True)

    # Graceful shutdown.
    if server.poll() is not None:
        raise Failure('server exited (status %s) before SIGTERM' % server.returncode)
    server.send_signal(signal.SIGTERM)
    try:
        rc = server.wait(timeout=SHUTDOWN_WAIT_S)
    except subprocess.TimeoutExpired:
        raise Failure('server did not exit within %g s of SIGTERM' % SHUTDOWN_WAIT_S)
    out.thread.join(2)
    if rc != 0:
        raise Failure('server exited with status %d after SIGTERM (expected 0)' % rc)
    late = server_events(out.snapshot())[2]
    for sid in sids:
        if late.get(sid, []) != ['transport close']:
            raise Failure('session %s got more close lines after SIGTERM: %s' % (sid, late.get(sid)))
    print('server exited 0 after SIGTERM', flush=True)
    return 0


def main(argv):
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return 1 if e.code else 0
    try:
        with tempfile.TemporaryDirectory(prefix='run-interop-tls-') as tls_dir:
            args.tls_ca = args.tls_cert = args.tls_key = None
            if args.tls:
                args.tls_ca, args.tls_cert, args.tls_key = make_test_ca(tls_dir)
            rc = run(args)
    except Failure as e:
        sys.stdout.flush()
        print('FAIL: %s' % e, flush=True)
        return 1
    print('PASS: client=%s transports=%s expect=%s%s%s%s%s' % (
        args.client, args.transports, args.expect_transport or 'default',
        ' eio3' if args.eio3 else '',
        ' loop-threads=%d' % args.loop_threads if args.loop_threads is not None else '',
        ' big' if args.big else '', ' tls' if args.tls else ''), flush=True)
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
