#!/usr/bin/python3
"""Compare socketio-echo with the npm socket.io 4.8 reference echo server.

Not run by CI: it takes minutes and wants two cores.

  tests/bench/compare-sio.py --build BUILD_DIR [--rounds 3] [--duration 5] [--idle 5000]

The sibling of compare.py for Socket.IO: the same pinning (servers on core 0,
engineio-bench on core 1), rounds interleaved with the server order
alternating, a fresh server per run, medians and ratios as a markdown table
on stdout, every command and per-run result in the log (--log). The
reference is tests/interop/reference-sio-echo.js on the socket.io 4.8 in
tests/interop/node_modules (npm ci --prefix tests/interop), which also holds
ws's optional native bufferutil. Every run is bounded in time. Standard
library only.
"""

import argparse
import datetime
import importlib.util
import json
import os
import platform
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))
INTEROP = os.path.join(SRCDIR, "tests", "interop")
REF_SIO_ECHO = os.path.join(INTEROP, "reference-sio-echo.js")

# med, fmt, ratio and raise_nofile are shared with compare.py (not a package: load it by path)
_spec = importlib.util.spec_from_file_location("compare", os.path.join(HERE, "compare.py"))
compare = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare)
med, fmt, ratio, raise_nofile = compare.med, compare.fmt, compare.ratio, compare.raise_nofile

# name, bench arguments, target ratio (ours pooled / node, msg/s or deliveries/s) or None
THROUGHPUT = [
    ("event echo 100 clients × 1 × 32 B",
     ["--mode", "sio-echo", "--conns", "100", "--inflight", "1", "--size", "32"], 2.0),
    ("event echo 1000 clients × 1 × 32 B",
     ["--mode", "sio-echo", "--conns", "1000", "--inflight", "1", "--size", "32"], 2.0),
    ("ack round trips 100 clients × 1 × 32 B",
     ["--mode", "sio-ack", "--conns", "100", "--inflight", "1", "--size", "32"], None),
    ("broadcast of a 32 B event to 1000 clients, 8 in flight (deliveries/s)",
     ["--mode", "sio-broadcast", "--conns", "1000", "--inflight", "8", "--size", "32"], 3.0),
]

ARGS = None
LOG = None


def log(line):
    LOG.write(line + "\n")
    LOG.flush()


def reference_versions():
    def version(pkg):
        with open(os.path.join(INTEROP, "node_modules", pkg, "package.json")) as f:
            return json.load(f)["version"]
    out = {}
    for pkg in ("socket.io", "engine.io", "ws", "bufferutil"):
        try:
            out[pkg] = version(pkg)
        except OSError:
            out[pkg] = "missing"
    native = subprocess.run(
        # what ws will load: the native addon (a prebuild), not fallback.js
        ["node", "-e", "const ws=require.resolve('ws');const m=require('module').createRequire(ws);"
                       "const p=m('node-gyp-build').path(require('path').dirname(m.resolve('bufferutil')));"
                       "m('bufferutil');console.log(require('path').basename(p))"],
        cwd=INTEROP, capture_output=True, text=True, timeout=30)
    out["bufferutil_native"] = native.stdout.strip() or ("no: " + native.stderr.strip()[:80])
    return out


class Server:
    """One Socket.IO echo server process pinned to the server CPU."""

    def __init__(self, kind, args):
        self.kind = kind
        if kind == "node":
            cmd = ["node", REF_SIO_ECHO]
        else:
            cmd = [os.path.join(ARGS.build, "src", "socketio", "socketio-echo")]
            if kind == "pooled":
                cmd += ["--loop-threads", "1"]
        cmd = ["taskset", "-c", ARGS.server_cpu] + cmd + ["--port", "0"] + args
        log("$ " + " ".join(cmd) + " &")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        self.url = line.split()[2]

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        """(user, system) CPU seconds of the whole process, all threads."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_cmd(url, args):
    return (["taskset", "-c", ARGS.bench_cpu, os.path.join(ARGS.build, "src", "tools", "engineio-bench"),
             "--url", url, "--json"] + args)


def finish(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        log("  TIMEOUT")
        return None
    for line in err.splitlines():
        if line.startswith("engineio-bench:") and "opening" not in line and "opened in" not in line:
            log("  " + line)
    try:
        result = json.loads(out)
    except ValueError:
        log(f"  no JSON (exit {p.returncode})")
        return None
    result["exit"] = p.returncode
    return result


def throughput_run(kind, args):
    """One bench run on a fresh server; also the server's CPU time per
    message (per delivery for broadcasts) over the measured window."""
    srv = Server(kind, [])
    try:
        cmd = bench_cmd(srv.url, args + ["--duration", str(ARGS.duration),
                                         "--warmup", str(ARGS.warmup), "--verbose"])
        log("$ " + " ".join(cmd))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cpu0 = cpu1 = None
        deadline = time.time() + 90
        while time.time() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], max(0.1, deadline - time.time()))
            line = p.stderr.readline() if ready else ""
            if not line:
                break
            if "opened" in line and " in " in line:
                time.sleep(ARGS.warmup)
                cpu0, t0 = srv.cpu_s(), time.time()
                time.sleep(ARGS.duration)
                cpu1, t1 = srv.cpu_s(), time.time()
                break
        result = finish(p, ARGS.duration + ARGS.warmup + 90)
        if result is None:
            return None
        if cpu0 is not None and result["msg_per_s"] > 0:
            msgs = result["msg_per_s"] * (t1 - t0)
            result["server_user_us"] = (cpu1[0] - cpu0[0]) * 1e6 / msgs
            result["server_sys_us"] = (cpu1[1] - cpu0[1]) * 1e6 / msgs
            result["server_cpu_pct"] = ((cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1])) * 100 / (t1 - t0)
        log(f"  exit {result['exit']}: {result['msg_per_s']:.0f} msg/s, p50 {result['latency_us']['p50']} us, "
            f"p99 {result['latency_us']['p99']} us, broadcasts/s {result.get('broadcasts_per_s', 0):.0f}, "
            f"errors {result['errors']['verify']}/{result['errors']['sessions_failed']}/"
            f"{result['errors']['protocol']}, bench cpu {result['max_thread_cpu_pct']}%, "
            f"server cpu {result.get('server_cpu_pct', -1):.0f}% = "
            f"{result.get('server_user_us', -1):.2f} us user + {result.get('server_sys_us', -1):.2f} us sys per message")
        return result
    finally:
        srv.stop()


def idle_run(kind, n, hold):
    """VmRSS growth per connected, idle Socket.IO client (joined to "/")."""
    srv = Server(kind, [])
    try:
        # warm up lazily initialised state (JIT, pools, first thread) first
        p = subprocess.Popen(bench_cmd(srv.url, ["--mode", "sio-connect", "--conns", "20", "--duration", "0.5"]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finish(p, 60)
        time.sleep(0.5)
        before = srv.status("VmRSS")
        cmd = bench_cmd(srv.url, ["--mode", "sio-connect", "--conns", str(n), "--duration", str(hold),
                                  "--open-timeout", "120", "--verbose"])
        log("$ " + " ".join(cmd))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 150
        opened = False
        while time.time() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], max(0.1, deadline - time.time()))
            if not ready:
                break
            line = p.stderr.readline()
            if not line:
                break
            if "opened in" in line:
                opened = True
                break
        time.sleep(min(2.0, hold / 3))
        during = srv.status("VmRSS")
        threads = srv.status("Threads")
        result = finish(p, hold + 60)
        if result is None or not opened:
            log("  idle run failed")
            return None
        result["rss_before_kib"] = before
        result["rss_during_kib"] = during
        result["server_threads"] = threads
        result["rss_per_session_b"] = (during - before) * 1024 / max(1, result["held"])
        log(f"  exit {result['exit']}: held {result['held']}/{n} in {result['open_time_s']:.2f} s, "
            f"VmRSS {before} -> {during} KiB = {result['rss_per_session_b']:.0f} B/client, "
            f"{threads} threads")
        return result
    finally:
        srv.stop()


def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="meson build dir with socketio-echo and engineio-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--idle", type=int, default=5000, help="idle clients for the RSS scenario (default 5000)")
    ap.add_argument("--no-threaded", action="store_true", help="skip the per-session-thread mode")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--bench-cpu", default="1")
    ap.add_argument("--only", default="", help="comma-separated scenario substrings to run (idle: the RSS one)")
    ap.add_argument("--log", default="/tmp/sio-compare.log")
    ARGS = ap.parse_args()
    LOG = open(ARGS.log, "w")

    if not os.path.exists(os.path.join(INTEROP, "node_modules", "socket.io", "package.json")):
        print("tests/interop/node_modules/socket.io missing: run npm ci --prefix tests/interop", file=sys.stderr)
        return 2
    nofile = raise_nofile()
    versions = reference_versions()
    kinds = ["pooled", "node"] + ([] if ARGS.no_threaded else ["threaded"])
    git = subprocess.run(["git", "-C", SRCDIR, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    header = (f"Date {datetime.datetime.now().isoformat(timespec='minutes')}; {platform.node()}: "
              f"{platform.system()} {platform.release()}, {os.cpu_count()} × {cpu}; node {node_v}, "
              f"socket.io {versions['socket.io']} (engine.io {versions['engine.io']}, ws {versions['ws']}, "
              f"bufferutil {versions['bufferutil']}, native: {versions['bufferutil_native']}); "
              f"engineio-glib {git}; servers on CPU {ARGS.server_cpu}, engineio-bench on CPU {ARGS.bench_cpu}; "
              f"{ARGS.rounds} rounds interleaved, {ARGS.duration:g} s measured after {ARGS.warmup:g} s warm-up; "
              f"RLIMIT_NOFILE {nofile}.")
    log(header)
    print(header, file=sys.stderr)

    only = [s for s in ARGS.only.split(",") if s]
    scenarios = [s for s in THROUGHPUT if not only or any(o in s[0] for o in only)]
    do_idle = not only or any(o in "idle" for o in only)
    results = {}        # (scenario, kind) -> [result, ...]
    for rnd in range(ARGS.rounds):
        order = kinds if rnd % 2 == 0 else list(reversed(kinds))
        for name, args, _ in scenarios:
            for kind in order:
                log(f"# round {rnd + 1}: {name} on {kind}")
                print(f"round {rnd + 1}: {name} on {kind}", file=sys.stderr)
                results.setdefault((name, kind), []).append(throughput_run(kind, args))
        if do_idle:
            for kind in order:
                log(f"# round {rnd + 1}: idle {ARGS.idle} on {kind}")
                print(f"round {rnd + 1}: idle {ARGS.idle} on {kind}", file=sys.stderr)
                results.setdefault(("idle", kind), []).append(idle_run(kind, ARGS.idle, 6))

    # ---- table
    def col(name, kind, key):
        rs = [r for r in results.get((name, kind), []) if r is not None]
        return med([key(r) for r in rs]) if rs else None

    def bad(name, kind):
        rs = results.get((name, kind), [])
        return sum(1 for r in rs if r is None or r["exit"] != 0)

    print()
    print(header)
    print()
    names = {"pooled": "ours pooled (--loop-threads 1)", "node": "node socket.io",
             "threaded": "ours per-session threads"}
    print("| scenario | " + " | ".join(names[k] for k in kinds) + " | pooled / node | target | met |")
    print("|---|" + "---|" * len(kinds) + "---|---|---|")
    for name, args, target in scenarios:
        cells = []
        for kind in kinds:
            v = col(name, kind, lambda r: r["msg_per_s"])
            p50 = col(name, kind, lambda r: r["latency_us"]["p50"])
            p99 = col(name, kind, lambda r: r["latency_us"]["p99"])
            cpu_b = col(name, kind, lambda r: r["max_thread_cpu_pct"])
            failed = bad(name, kind)
            su = col(name, kind, lambda r: r.get("server_user_us"))
            ss = col(name, kind, lambda r: r.get("server_sys_us"))
            sp = col(name, kind, lambda r: r.get("server_cpu_pct"))
            unit = "deliveries/s" if "broadcast" in args[1] else "msg/s"
            cells.append(f"{fmt(v)} {unit} (p50 {fmt(p50)} µs, p99 {fmt(p99)} µs; bench cpu {fmt(cpu_b)}%; "
                         f"server cpu {fmt(sp)}%: {fmt(su)} µs user + {fmt(ss)} µs sys per msg)"
                         + (f" **{failed} failed run(s)**" if failed else ""))
        r = ratio(col(name, "pooled", lambda r: r["msg_per_s"]), col(name, "node", lambda r: r["msg_per_s"]))
        met = "–" if target is None or r is None else ("yes" if r >= target else "**no**")
        print(f"| {name} | " + " | ".join(cells) + f" | {fmt(r)}× | {'≥ ' + fmt(target) + '×' if target else '–'} | {met} |")
    if do_idle:
        cells = []
        for kind in kinds:
            v = col("idle", kind, lambda r: r["rss_per_session_b"])
            held = col("idle", kind, lambda r: r["held"])
            ot = col("idle", kind, lambda r: r["open_time_s"])
            failed = bad("idle", kind)
            cells.append(f"{fmt(v)} B/client (held {fmt(held)}, opened in {fmt(ot)} s)"
                         + (f" **{failed} failed run(s)**" if failed else ""))
        r = ratio(col("idle", "pooled", lambda r: r["rss_per_session_b"]),
                  col("idle", "node", lambda r: r["rss_per_session_b"]))
        met = "–" if r is None else ("yes" if r <= 0.5 else "**no**")
        print(f"| {ARGS.idle} idle Socket.IO clients: VmRSS growth | " + " | ".join(cells)
              + f" | {fmt(r)}× | ≤ 0.5× | {met} |")
    print()
    print(f"Commands and per-run results: {ARGS.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
