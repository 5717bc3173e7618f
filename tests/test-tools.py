#!/usr/bin/env python3
"""The command lines of the tools and demos (issue 15, item 7).

Usage: test-tools.py --version VERSION TOOL...  (TAP on stdout)

For each TOOL (a built engineio-echo, socketio-echo, engineio-bench,
engineio-chat or socketio-chat, recognised by its file name):
--version prints "NAME VERSION" and exits 0; --help exits 0 and lists
--version; a stray argument exits 2 naming it; each out-of-range option
exits 2 naming the option and its range, before anything starts (nothing on
stdout, where the servers print their "listening on" line). Every run is in
C.UTF-8 with a non-ASCII argument somewhere, which GOption only decodes
when the tool has called setlocale (LC_ALL, "").

Every server run also gets --port 0 (a free port) and a timeout, so a check
that went missing shows as a failure rather than a server left on port 3000.
"""
import argparse
import os
import subprocess
import sys

# name: [(arguments, the message that names the option)]
OUT_OF_RANGE = {
    'engineio-echo': [
        (['--port', '65536'], '--port must be 0..65535'),
        (['--port', '-1'], '--port must be 0..65535'),
        (['--ping-interval', '0'], '--ping-interval must be 1..1073741823'),
        (['--ping-interval', '1073741824'], '--ping-interval must be 1..1073741823'),
        (['--ping-timeout', '0'], '--ping-timeout must be 1..1073741823'),
        (['--max-payload', '0'], '--max-payload must be 1..4294967295'),
        (['--max-payload', '4294967296'], '--max-payload must be 1..4294967295'),
        (['--loop-threads', '-1'], '--loop-threads must be 0..1024'),
        (['--loop-threads', '1025'], '--loop-threads must be 0..1024'),
        (['--connection-timeout', '0'], '--connection-timeout must be 1..86400'),
        (['--connection-timeout', '86401'], '--connection-timeout must be 1..86400'),
        (['--handshake-rate', '-1'], '--handshake-rate must be 0..1000000'),
        (['--handshake-rate', 'nan'], '--handshake-rate must be 0..1000000'),
        (['--handshake-burst', '1000001'], '--handshake-burst must be 0..1000000'),
        (['--message-rate', '1e10'], '--message-rate must be 0..1000000000'),
        (['--message-burst', '-1'], '--message-burst must be at least 0'),
    ],
    'socketio-echo': [
        (['--port', '65536'], '--port must be 0..65535'),
        (['--ping-interval', '0'], '--ping-interval must be 1..1073741823'),
        (['--ping-timeout', '1073741824'], '--ping-timeout must be 1..1073741823'),
        (['--max-payload', '0'], '--max-payload must be 1..4294967295'),
        (['--loop-threads', '1025'], '--loop-threads must be 0..1024'),
        (['--connect-timeout', '-1'], '--connect-timeout must be at least 0'),
        (['--max-disconnection-duration', '-1'], '--max-disconnection-duration must be at least 0'),
    ],
    'engineio-bench': [
        (['--conns', '0'], '--conns must be at least 1'),
        (['--inflight', '0'], '--inflight must be at least 1'),
        (['--size', '-1'], '--size must be 0..67108864'),
        (['--size', '67108865'], '--size must be 0..67108864'),
        (['--threads', '0'], '--threads must be at least 1'),
        (['--open-window', '0'], '--open-window must be at least 1'),
        (['--warmup', '3601'], '--warmup must be 0..3600'),
        (['--fail-threshold', '101'], '--fail-threshold must be 0..100'),
        (['--echo-timeout', '-1'], '--echo-timeout must be 0..3600'),
        (['--duration', '0'], '--duration must be more than 0, at most 86400'),
        (['--open-timeout', '3601'], '--open-timeout must be more than 0, at most 3600'),
        (['--mode', 'polling', '--raw'], '--raw is for ws mode, and connect mode over WebSocket, only'),
    ],
    'engineio-chat': [
        (['--port', '65536'], '--port must be 0..65535'),
        (['--history', '-1'], '--history must be 0..100000'),
        (['--history', '100001'], '--history must be 0..100000'),
        (['--loop-threads', '1025'], '--loop-threads must be 0..1024'),
    ],
    'socketio-chat': [
        (['--port', '65536'], '--port must be 0..65535'),
        (['--history', '10001'], '--history must be 0..10000'),
        (['--max-rooms', '0'], '--max-rooms must be 1..10000'),
        (['--max-users', '1000001'], '--max-users must be 1..1000000'),
        (['--loop-threads', '-1'], '--loop-threads must be 0..1024'),
    ],
}

# A UTF-8 option value each tool reports back in an error, if it has one:
# GOption converts string option values from the locale's charset, which
# fails for non-ASCII bytes in the C locale setlocale() has not left.
UTF8_VALUE = {
    'engineio-echo': (['--transports', 'é'], 'Unknown transport “é” (polling, websocket)'),
    'engineio-bench': (['--mode', 'é'], 'Unknown mode “é” (ws, polling, connect, broadcast, sio-echo, '
                                        'sio-ack, sio-broadcast, sio-connect)'),
}

SERVERS = {'engineio-echo', 'socketio-echo', 'engineio-chat', 'socketio-chat'}

failures = []
checks = 0


def run(tool, args):
    env = dict(os.environ, LC_ALL='C.UTF-8', LANGUAGE='')
    try:
        p = subprocess.run([tool] + args, env=env, capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b'').decode('utf-8', 'replace'), (e.stderr or b'').decode('utf-8', 'replace')
    return p.returncode, p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace')


def check(what, tool, args, code, stdout=None, stderr=None, stdout_contains=None):
    global checks
    checks += 1
    rc, out, err = run(tool, args)
    problems = []
    if rc is None:
        problems.append('still running after 20 s (it started?)')
    elif rc != code:
        problems.append('exit %s, expected %d' % (rc, code))
    if stdout is not None and out != stdout:
        problems.append('stdout %r, expected %r' % (out, stdout))
    if stdout_contains is not None and stdout_contains not in out:
        problems.append('stdout lacks %r' % stdout_contains)
    if stderr is not None and err != stderr:
        problems.append('stderr %r, expected %r' % (err, stderr))
    line = '%s %s: %s' % (os.path.basename(tool), ' '.join(args), what)
    if problems:
        failures.append(line)
        print('not ok - %s: %s' % (line, '; '.join(problems)))
    else:
        print('ok - %s' % line)


def main():
    global checks
    ap = argparse.ArgumentParser()
    ap.add_argument('--version', required=True)
    ap.add_argument('tools', nargs='+')
    opts = ap.parse_args()

    for tool in opts.tools:
        name = os.path.basename(tool)
        if name not in OUT_OF_RANGE:
            sys.exit('test-tools: unknown tool %s' % tool)
        port = ['--port', '0'] if name in SERVERS else []
        check('--version', tool, ['--version'], 0,
              stdout='%s %s\n' % (name, opts.version), stderr='')
        check('--help', tool, ['--help'], 0, stdout_contains='--version')
        for stray in (['x'], ['é'], ['--', '--port']):
            check('stray argument', tool, port + stray, 2, stdout='',
                  stderr='%s: unexpected argument “%s” (see --help)\n' % (name, stray[-1]))
        check('unknown option', tool, ['--no-such-option'], 2, stdout='',
              stderr='%s: Unknown option --no-such-option\n' % name)
        for args, message in OUT_OF_RANGE[name]:
            # --port 0 first: the option under test, when it is --port, wins.
            check('out of range', tool, port + args, 2, stdout='',
                  stderr='%s: %s\n' % (name, message))
        if name == 'engineio-echo':
            # TLS files: both or neither (usage), and a file that does not load (exit 1).
            for args in (['--tls-cert', '/nonexistent.pem'], ['--tls-key', '/nonexistent.key']):
                check('TLS option alone', tool, port + args, 2, stdout='',
                      stderr='%s: --tls-cert and --tls-key go together\n' % name)
            rc, out, err = run(tool, port + ['--tls-cert', '/nonexistent.pem', '--tls-key', '/nonexistent.key'])
            checks += 1
            line = '%s: an unreadable TLS certificate exits 1 naming it' % name
            if rc == 1 and out == '' and '/nonexistent.pem' in err:
                print('ok - %s' % line)
            else:
                failures.append(line)
                print('not ok - %s: exit %s, stdout %r, stderr %r' % (line, rc, out, err))
        if name in UTF8_VALUE:
            args, message = UTF8_VALUE[name]
            check('UTF-8 value', tool, port + args, 2, stdout='',
                  stderr='%s: %s\n' % (name, message))

    print('1..%d' % checks)
    if failures:
        print('# %d failed' % len(failures))
        sys.exit(1)


if __name__ == '__main__':
    main()
