#!/usr/bin/env python3
"""engineio-bench against engineio-echo, briefly: every mode the benchmarks
use measures something and verifies it (TAP on stdout).

Usage: test-bench-smoke.py ENGINEIO_ECHO ENGINEIO_BENCH RAW_WS_ECHO

Each check starts engineio-echo on 127.0.0.1 (a free port), runs
engineio-bench for a second with --json and asserts its exit status, that
messages were counted and that no verification error or failed session was
reported. The broadcast checks run `engineio-echo --broadcast api` (the
engine's broadcast) and `--broadcast loop` (a loop over the sessions); and
the benchmark must fail (exit 1, nothing delivered) against a plain echo
server, which does not broadcast, so a broadcast mode that counted nothing
or checked nothing would show here. `--raw` runs against raw-ws-echo (the
bare WebSocket echo compare.py measures as the machine's limit), and must
fail against engineio-echo, which is not one.
"""
import json
import subprocess
import sys

ECHO, BENCH, RAW = sys.argv[1], sys.argv[2], sys.argv[3]
results = []


def start_echo(args, raw=False):
    cmd = [RAW, '--port', '0'] + args if raw else [ECHO, '--address', '127.0.0.1', '--port', '0'] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith('listening on '):
        p.kill()
        raise RuntimeError(f'{cmd[0]} did not start: {line!r} {p.stderr.read()!r}')
    return p, line.split()[2]


def bench(url, args):
    cmd = [BENCH, '--url', url, '--duration', '1', '--warmup', '0.2', '--json',
           '--echo-timeout', '3'] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        result = json.loads(p.stdout)
    except ValueError:
        result = None
    return p.returncode, result, p.stderr


def check(name, echo_args, bench_args, expect_ok=True, raw=False):
    echo, url = start_echo(echo_args, raw)
    try:
        code, result, err = bench(url, bench_args)
    finally:
        echo.terminate()
        echo.wait(10)
    problems = []
    if result is None:
        problems.append(f'no JSON (exit {code}): {err[-300:]!r}')
    elif expect_ok:
        if code != 0:
            problems.append(f'exit {code}')
        if result['messages'] <= 0:
            problems.append('no message counted')
        if result['errors']['verify'] or result['errors']['sessions_failed']:
            problems.append(f"errors {result['errors']}")
    else:
        if code != 1:
            problems.append(f'exit {code}, expected 1')
        if result['messages'] != 0 or result.get('ok'):
            problems.append(f"deliveries counted or ok: {result['messages']}, {result['ok']}")
    results.append((name, problems))


check('ws echo', [], ['--mode', 'ws', '--conns', '10'])
check('polling echo', [], ['--mode', 'polling', '--conns', '10'])
check('broadcast through the engine (api), 8 in flight', ['--broadcast', 'api'],
      ['--mode', 'broadcast', '--conns', '50', '--inflight', '8'])
check('broadcast through a loop over the sessions', ['--broadcast', 'loop'],
      ['--mode', 'broadcast', '--conns', '50', '--inflight', '8'])
check('broadcast binary through the engine', ['--broadcast', 'api'],
      ['--mode', 'broadcast', '--conns', '20', '--binary'])
check('broadcast against a server that only echoes: nothing delivered, exit 1', [],
      ['--mode', 'broadcast', '--conns', '5'], expect_ok=False)

check('raw ws echo, 32 B text', [], ['--mode', 'ws', '--raw', '--conns', '10'], raw=True)
check('raw ws echo, 64 KiB text', [], ['--mode', 'ws', '--raw', '--conns', '4', '--size', '65536'], raw=True)
check('raw ws echo, a thread per connection, 32 B text', ['--thread-per-connection'],
      ['--mode', 'ws', '--raw', '--conns', '10'], raw=True)
check('raw ws echo, a thread per connection, 64 KiB binary', ['--thread-per-connection'],
      ['--mode', 'ws', '--raw', '--conns', '4', '--size', '65536', '--binary'], raw=True)
check('raw ws echo, 64 KiB binary, 4 in flight', [],
      ['--mode', 'ws', '--raw', '--conns', '4', '--size', '65536', '--binary', '--inflight', '4'], raw=True)
check('--raw against engineio-echo: no session opens, exit 1', [], ['--mode', 'ws', '--raw', '--conns', '2'],
      expect_ok=False)

print(f'1..{len(results)}')
for i, (name, problems) in enumerate(results, 1):
    if problems:
        print(f'not ok {i} {name}')
        for p in problems:
            print(f'# {p}')
    else:
        print(f'ok {i} {name}')
sys.exit(1 if any(p for _, p in results) else 0)
