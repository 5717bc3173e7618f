#!/usr/bin/env python3
"""RSS per idle WebSocket session with permessage-deflate on vs off.

Starts engineio-echo (with or without --per-message-deflate), opens N raw
WebSocket sessions that all offer permessage-deflate, has each exchange one
4 KiB text message (compressed both ways when negotiated), then holds them
idle and reads the server's VmRSS. Prints KiB per session for each setting.

  tests/bench/deflate-idle.py --echo build/src/tools/engineio-echo [--conns 2000] [--loop-threads 2]
"""
import argparse, base64, os, re, socket, struct, subprocess, sys, time, zlib


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


def read_frame(s):
    h = read_exact(s, 2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(s, 8))[0]
    return h[0], read_exact(s, n)


def frame(op, payload, rsv1):
    mask = os.urandom(4)
    h = bytes([0x80 | (0x40 if rsv1 else 0) | op])
    n = len(payload)
    h += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 \
        else bytes([0x80 | 127]) + struct.pack(">Q", n)
    return h + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def session(port, text):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    deflate = b"permessage-deflate" in head
    read_frame(s)  # open packet
    if deflate:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        z = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(frame(1, z[:-4], True))
    else:
        s.sendall(frame(1, text, False))
    b0, payload = read_frame(s)
    if b0 & 0x40:
        payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert payload == text, "bad echo"
    return s, deflate


def run(echo, n, threads, on):
    port = 30000 + os.getpid() % 20000
    args = [echo, "--port", str(port), "--loop-threads", str(threads), "--ping-interval", "600000",
            "--ping-timeout", "600000"] + (["--per-message-deflate"] if on else [])
    srv = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        text = ("4" + "engine socket deflate é → frame " * 130)[:4096].encode()
        warm = [session(port, text)[0] for _ in range(20)]
        for s in warm:
            s.close()
        time.sleep(1.0)
        before = rss_kib(srv.pid)
        socks = []
        negotiated = 0
        for _ in range(n):
            s, d = session(port, text)
            socks.append(s)
            negotiated += d
        time.sleep(2.0)
        during = rss_kib(srv.pid)
        for s in socks:
            s.close()
        return before, during, negotiated
    finally:
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--echo", required=True)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--loop-threads", type=int, default=2)
    a = ap.parse_args()
    for on in (False, True):
        before, during, neg = run(a.echo, a.conns, a.loop_threads, on)
        print(f"per-message-deflate {'on ' if on else 'off'}: loop-threads {a.loop_threads}, "
              f"{a.conns} sessions ({neg} negotiated), RSS {before} -> {during} KiB, "
              f"{(during - before) * 1024 / a.conns:.0f} B per idle session")


if __name__ == "__main__":
    main()
