#!/usr/bin/env python3
"""The HTTP workers never sleep on requests they have already seen.

Usage: test-http-workers.py ENGINEIO_ECHO  (TAP on stdout)

A regression test for a stall found under load (polling 100 conns x 32 B in
tests/bench/compare.py, about one run in 40): libmicrohttpd's epoll loop
(MHD_epoll(), 0.9.75 and later) takes at most 128 events per epoll_wait()
and, when it got exactly 128, calls epoll_wait() again with the same
timeout before handling any of them. When nothing else is ready, a worker
then sleeps until its next connection timeout (up to connection-timeout, 30 s
by default) with 128 requests read off epoll and not handled: every
connection among them stalls. The engine now runs libmicrohttpd's loop
itself (engineio-http-daemon.c), so that second wait never blocks.

How the test makes exactly 128 requests ready at once on one worker: it
holds keep-alive connections to engineio-echo, finds which worker's epoll
set holds each (/proc/PID/fdinfo of the epoll descriptors, the socket
inodes in /proc/PID/net/tcp), stops the server (SIGSTOP, every thread
stopped), sends one request on 128 connections of one worker, lets the
server go on (SIGCONT), and expects all 128 answers within 10 s. Before
the fix none came (the worker slept for the 30 s connection timeout).
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

BATCH = 128          # libmicrohttpd's MAX_EVENTS


def tap(ok, name, diag=None):
    print(("ok" if ok else "not ok") + " 1 - " + name)
    if diag:
        for line in diag.splitlines():
            print("# " + line)


def read_response(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        buf += data
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed in a body")
        body += data
    return lines[0]


def epoll_sets(pid, port):
    """{epoll fd: set of client ports whose server-side socket it holds}"""
    inode_port = {}
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                inode_port[fields[9]] = int(fields[2].split(":")[1], 16)
    sets = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                targets = [int(t) for t in re.findall(r"tfd:\s+(\d+)", f.read())]
        except OSError:
            continue
        ports = set()
        for target in targets:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{target}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", link)
            if m and m.group(1) in inode_port:
                ports.add(inode_port[m.group(1)])
        if ports:
            sets[fd] = ports
    return sets


def all_stopped(pid):
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("T", "t"):
            return False
    return True


def main():
    echo = sys.argv[1]
    print("1..1")
    server = subprocess.Popen([echo, "--port", "0", "--loop-threads", "1"],
                              stdout=subprocess.PIPE, text=True)
    socks = []
    try:
        ready, _, _ = select.select([server.stdout], [], [], 30)
        line = server.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            tap(False, "engineio-echo started", repr(line))
            return 1
        hostport = line.split()[2].split("//")[1].split("/")[0]
        host, port = hostport.rsplit(":", 1)
        port = int(port)
        request = (f"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                   f"Host: {hostport}\r\n\r\n").encode()

        # Keep-alive connections, each past one request, until one worker
        # holds BATCH of them (the workers take connections as they come).
        chosen = None
        while chosen is None and len(socks) < 16 * BATCH:
            for _ in range(BATCH):
                s = socket.create_connection((host, port), timeout=30)
                s.sendall(request)
                status = read_response(s)
                if b" 200 " not in status:
                    tap(False, "handshake answered 200", status.decode(errors="replace"))
                    return 1
                socks.append(s)
            # A connection is back in its worker's epoll set once
            # libmicrohttpd has read up to EAGAIN after the response: give
            # the workers up to 3 s (a sanitizer build is slow).
            for _ in range(30):
                time.sleep(0.1)
                ports = max(epoll_sets(server.pid, port).values(), key=len, default=set())
                if len(ports) >= BATCH:
                    chosen = [s for s in socks if s.getsockname()[1] in ports][:BATCH]
                    break
        if chosen is None or len(chosen) < BATCH:
            tap(False, f"a worker holding {BATCH} connections",
                f"{len(socks)} connections; epoll sets: " +
                str({k: len(v) for k, v in epoll_sets(server.pid, port).items()}))
            return 1

        os.kill(server.pid, signal.SIGSTOP)
        deadline = time.time() + 10
        while not all_stopped(server.pid) and time.time() < deadline:
            time.sleep(0.01)
        for s in chosen:
            s.sendall(request)
        time.sleep(0.2)
        os.kill(server.pid, signal.SIGCONT)

        pending = set(chosen)
        deadline = time.time() + 10
        while pending and time.time() < deadline:
            readable, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.time()))
            for s in readable:
                read_response(s)
                pending.discard(s)
        tap(not pending,
            f"{BATCH} requests made ready at once on one worker are all answered within 10 s",
            f"{BATCH - len(pending)} of {BATCH} answered" if pending else None)
        return 0 if not pending else 1
    finally:
        for s in socks:
            s.close()
        try:
            os.kill(server.pid, signal.SIGCONT)
        except OSError:
            pass
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
