#!/usr/bin/python3
"""Compare engineio-echo with the npm engine.io 6 reference echo server
(and, over WebSocket, with tests/raw-ws-echo: a bare WebSocket echo with
hand-rolled framing and no Engine.IO, the practical limit of the machine;
and with the same echo run with a thread per connection, the limit of the
thread-per-session shape).

Not run by CI: it takes minutes, wants two cores and installs npm packages.

  tests/bench/compare.py --build BUILD_DIR [--rounds 3] [--duration 5] [--big-idle] [--gslice-malloc]
                         [--baseline OTHER_BUILD_DIR]

--baseline adds the engineio-echo of another build (an older commit, built
alike) to every round, pooled and (unless --no-threaded) with a thread per
session, and prints this build's figures over the baseline's: a change's
cost measured in one run on the same machine.

Installs engine.io@6 with its optional native bufferutil into a scratch
prefix (the reference's fast configuration), then runs every scenario on
every server in the same run, rounds interleaved, each server pinned to
core 0 and engineio-bench to core 1. Prints medians and ratios as a
markdown table on stdout; every command run goes to the log (--log).
Every run is bounded in time. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))
REF_ECHO = os.path.join(SRCDIR, "tests", "interop", "reference-echo.js")

# name, bench arguments, target ratio (ours pooled / node msg/s) or None,
# optionally the servers' extra arguments
THROUGHPUT = [
    ("ws 100 conns × 1 × 32 B", ["--mode", "ws", "--conns", "100", "--inflight", "1", "--size", "32"], 2.5),
    ("ws 1000 conns × 1 × 32 B", ["--mode", "ws", "--conns", "1000", "--inflight", "1", "--size", "32"], 2.5),
    ("ws 10 conns × 1 × 64 KiB text", ["--mode", "ws", "--conns", "10", "--inflight", "1", "--size", "65536"], 3.0),
    ("ws 10 conns × 1 × 64 KiB binary", ["--mode", "ws", "--conns", "10", "--inflight", "1", "--size", "65536", "--binary"], None),
    ("polling 100 conns × 1 × 32 B", ["--mode", "polling", "--conns", "100", "--inflight", "1", "--size", "32"], 3.0),
    # One sender, 8 messages in flight; the server sends each message to
    # 1000 WebSocket sessions (deliveries/s). Ours through the engine's broadcast, then through the
    # loop over get_sockets() an application writes by hand; Node's server
    # loops over engine.clients either way.
    ("broadcast to 1000 × 32 B, engine broadcast",
     ["--mode", "broadcast", "--conns", "1000", "--inflight", "8", "--size", "32"], None, ["--broadcast", "api"]),
    ("broadcast to 1000 × 32 B, hand loop",
     ["--mode", "broadcast", "--conns", "1000", "--inflight", "8", "--size", "32"], None, ["--broadcast", "loop"]),
    ("broadcast to 1000 × 16 KiB, engine broadcast",
     ["--mode", "broadcast", "--conns", "1000", "--inflight", "8", "--size", "16384"], None, ["--broadcast", "api"]),
    ("broadcast to 1000 × 16 KiB, hand loop",
     ["--mode", "broadcast", "--conns", "1000", "--inflight", "8", "--size", "16384"], None, ["--broadcast", "loop"]),
]

LOG = None


def log(line):
    LOG.write(line + "\n")
    LOG.flush()


def raise_nofile():
    """Raise our soft fd limit (children inherit it); as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1048576, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            return want
        except (ValueError, OSError):
            pass
    return soft


def install_reference(prefix):
    """npm engine.io 6 + bufferutil in @prefix, with a copy of reference-echo.js."""
    marker = os.path.join(prefix, "node_modules", "bufferutil", "package.json")
    if not os.path.exists(marker) or not os.path.exists(
            os.path.join(prefix, "node_modules", "engine.io", "package.json")):
        os.makedirs(prefix, exist_ok=True)
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--prefix", prefix,
               "engine.io@6", "bufferutil@4"]
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True, timeout=600, stdout=LOG, stderr=LOG)
    shutil.copy(REF_ECHO, os.path.join(prefix, "reference-echo.js"))
    # ws only uses bufferutil when it loads; check that the native build does
    def version(pkg):
        with open(os.path.join(prefix, "node_modules", pkg, "package.json")) as f:
            return json.load(f)["version"]
    out = [version("engine.io"), version("ws"), version("bufferutil")]
    native = subprocess.run(
        # what ws will load: the native addon (a prebuild), not fallback.js
        ["node", "-e", "const ws=require.resolve('ws');const m=require('module').createRequire(ws);"
                       "const p=m('node-gyp-build').path(require('path').dirname(m.resolve('bufferutil')));"
                       "m('bufferutil');console.log(require('path').basename(p))"],
        cwd=prefix, capture_output=True, text=True, timeout=30)
    return {"engine.io": out[0], "ws": out[1], "bufferutil": out[2],
            "bufferutil_native": native.stdout.strip() or ("no: " + native.stderr.strip()[:80])}


class Server:
    """One echo server process pinned to core 0."""

    def __init__(self, kind, args):
        self.kind = kind
        if kind == "node":
            cmd = ["node", os.path.join(ARGS.ref_prefix, "reference-echo.js")]
        elif kind in ("raw", "raw-threaded"):
            cmd = [os.path.join(ARGS.build, "tests", "raw-ws-echo")]
            if kind == "raw-threaded":
                cmd += ["--thread-per-connection"]
        else:
            build = ARGS.baseline if kind.endswith("-base") else ARGS.build
            cmd = [os.path.join(build, "src", "tools", "engineio-echo")]
            if kind.startswith("pooled"):
                cmd += ["--loop-threads", "1"]
        env = None
        if kind.endswith("-malloc"):
            env = dict(os.environ, G_SLICE="always-malloc")
        cmd = ["taskset", "-c", ARGS.server_cpu] + cmd + ["--port", "0"] + args
        log("$ " + ("G_SLICE=always-malloc " if env else "") + " ".join(cmd) + " &")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"{kind} server did not start: {line!r}")
        self.url = line.split()[2]

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def threads(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
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


def run_bench(url, args, timeout):
    cmd = bench_cmd(url, args)
    log("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log("  TIMEOUT")
        return None
    for line in p.stderr.splitlines():
        if line.startswith("engineio-bench:"):
            log("  " + line)
    try:
        result = json.loads(p.stdout)
    except ValueError:
        log(f"  no JSON (exit {p.returncode})")
        return None
    result["exit"] = p.returncode
    log(f"  exit {p.returncode}: {result['msg_per_s']:.0f} msg/s, p50 {result['latency_us']['p50']} us, "
        f"p99 {result['latency_us']['p99']} us, held {result['held']}, errors {result['errors']['verify']}"
        f"/{result['errors']['sessions_failed']}, bench cpu {result['max_thread_cpu_pct']}%")
    return result


def throughput_run(kind, args, server_args=()):
    """One bench run; also the server's CPU time per message over the
    measured window (sampled when the warm-up ends and when it is over), so
    the comparison holds even when the load generator is the bottleneck."""
    srv = Server(kind, list(server_args))
    if kind.startswith("raw"):
        args = args + ["--raw"]
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
        try:
            out, err = p.communicate(timeout=ARGS.duration + ARGS.warmup + 90)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            log("  TIMEOUT")
            return None
        for line in err.splitlines():
            if line.startswith("engineio-bench:") and "open" not in line:
                log("  " + line)
        try:
            result = json.loads(out)
        except ValueError:
            log(f"  no JSON (exit {p.returncode})")
            return None
        result["exit"] = p.returncode
        if cpu0 is not None and result["msg_per_s"] > 0:
            msgs = result["msg_per_s"] * (t1 - t0)
            result["server_user_us"] = (cpu1[0] - cpu0[0]) * 1e6 / msgs
            result["server_sys_us"] = (cpu1[1] - cpu0[1]) * 1e6 / msgs
            result["server_cpu_pct"] = ((cpu1[0] + cpu1[1]) - (cpu0[0] + cpu0[1])) * 100 / (t1 - t0)
        log(f"  exit {p.returncode}: {result['msg_per_s']:.0f} msg/s, p50 {result['latency_us']['p50']} us, "
            f"p99 {result['latency_us']['p99']} us, errors {result['errors']['verify']}"
            f"/{result['errors']['sessions_failed']}, bench cpu {result['max_thread_cpu_pct']}%, "
            f"server cpu {result.get('server_cpu_pct', -1):.0f}% = "
            f"{result.get('server_user_us', -1):.2f} us user + {result.get('server_sys_us', -1):.2f} us sys per message")
        return result
    finally:
        srv.stop()


def idle_run(kind, n, hold, extra_bench=(), server_args=()):
    """RSS growth per idle WebSocket session: VmRSS before and while holding @n."""
    srv = Server(kind, list(server_args))
    try:
        # warm up lazily initialised state (JIT, pools, first thread) first
        run_bench(srv.url, ["--mode", "connect", "--conns", "20", "--duration", "0.5"] + list(extra_bench), 60)
        time.sleep(0.5)
        before = srv.rss_kib()
        cmd = bench_cmd(srv.url, ["--mode", "connect", "--conns", str(n), "--duration", str(hold),
                                  "--open-timeout", "120", "--verbose"] + list(extra_bench))
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
        during = srv.rss_kib()
        threads = srv.threads()
        try:
            out, err = p.communicate(timeout=hold + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        for line in err.splitlines():
            if line.startswith("engineio-bench:") and "opening" not in line and "opened in" not in line:
                log("  " + line)
        result = json.loads(out) if out.strip() else None
        if result is None or not opened:
            log("  idle run failed")
            return None
        result["exit"] = p.returncode
        result["rss_before_kib"] = before
        result["rss_during_kib"] = during
        result["server_threads"] = threads
        result["rss_per_session_b"] = (during - before) * 1024 / max(1, result["held"])
        log(f"  exit {p.returncode}: held {result['held']}/{n} in {result['open_time_s']:.2f} s, "
            f"VmRSS {before} -> {during} KiB = {result['rss_per_session_b']:.0f} B/session, "
            f"{threads} threads")
        return result
    finally:
        srv.stop()


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="meson build dir with engineio-echo and engineio-bench")
    ap.add_argument("--ref-prefix", default="/tmp/eio-ref", help="scratch npm prefix (default /tmp/eio-ref)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--idle", type=int, default=5000, help="idle sessions for the RSS scenario")
    ap.add_argument("--no-threaded", action="store_true", help="skip the per-session-thread mode")
    ap.add_argument("--no-raw", action="store_true",
                    help="skip the bare WebSocket echo (tests/raw-ws-echo, the machine's limit)")
    ap.add_argument("--big-idle", action="store_true",
                    help="also hold up to --big-idle-count sessions in pooled mode (slow, memory)")
    ap.add_argument("--big-idle-count", type=int, default=100000)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--bench-cpu", default="1")
    ap.add_argument("--gslice-malloc", action="store_true",
                    help="also run ours with G_SLICE=always-malloc (GLib before 2.76 keeps GSlice "
                         "caches per thread; 2.76 and later always use malloc)")
    ap.add_argument("--only", default="", help="comma-separated scenario substrings to run")
    ap.add_argument("--log", default="/tmp/eio-compare.log")
    ap.add_argument("--baseline", default=None,
                    help="another build dir (an older commit): its engineio-echo runs beside ours")
    ARGS = ap.parse_args()
    LOG = open(ARGS.log, "w")

    nofile = raise_nofile()
    versions = install_reference(ARGS.ref_prefix)
    kinds = (["pooled", "node"] + ([] if ARGS.no_threaded else ["threaded"]) + ([] if ARGS.no_raw else ["raw"])
             + ([] if ARGS.no_raw or ARGS.no_threaded else ["raw-threaded"])
             + (["pooled-malloc"] + ([] if ARGS.no_threaded else ["threaded-malloc"]) if ARGS.gslice_malloc else [])
             + (["pooled-base"] + ([] if ARGS.no_threaded else ["threaded-base"]) if ARGS.baseline else []))
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
              f"engine.io {versions['engine.io']} (ws {versions['ws']}, bufferutil {versions['bufferutil']}, "
              f"native: {versions['bufferutil_native']}); engineio-glib {git}; "
              f"servers on CPU {ARGS.server_cpu}, engineio-bench on CPU {ARGS.bench_cpu}; "
              f"{ARGS.rounds} rounds interleaved, {ARGS.duration:g} s measured after {ARGS.warmup:g} s warm-up; "
              f"RLIMIT_NOFILE {nofile}.")
    log(header)
    print(header, file=sys.stderr)

    only = [s for s in ARGS.only.split(",") if s]
    scenarios = [s for s in THROUGHPUT if not only or any(o in s[0] for o in only)]
    do_idle = not only or any(o in "idle" for o in only)
    results = {}        # (scenario, kind) -> [result, ...]
    for rnd in range(ARGS.rounds):
        for name, args, _, *server_args in scenarios:
            # alternate which server goes first; the raw echo only echoes
            # over WebSocket
            here = [k for k in kinds if not k.startswith("raw") or (args[:2] == ["--mode", "ws"] and not server_args)]
            order = here if rnd % 2 == 0 else list(reversed(here))
            for kind in order:
                log(f"# round {rnd + 1}: {name} on {kind}")
                print(f"round {rnd + 1}: {name} on {kind}", file=sys.stderr)
                results.setdefault((name, kind), []).append(
                    throughput_run(kind, args, server_args[0] if server_args else ()))
        if do_idle:
            # the raw echoes hold bare upgraded WebSockets (bench --raw): what
            # the process shape alone costs a connection
            order = kinds if rnd % 2 == 0 else list(reversed(kinds))
            for kind in order:
                log(f"# round {rnd + 1}: idle {ARGS.idle} on {kind}")
                print(f"round {rnd + 1}: idle {ARGS.idle} on {kind}", file=sys.stderr)
                results.setdefault(("idle", kind), []).append(
                    idle_run(kind, ARGS.idle, 6, ["--raw"] if kind.startswith("raw") else []))

    big = None
    if ARGS.big_idle:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = min(ARGS.big_idle_count, soft - 100)
        srcs = ",".join(f"127.0.0.{i}" for i in range(1, 2 + n // 25000))
        log(f"# big idle: {n} sessions (RLIMIT_NOFILE {soft})")
        print(f"big idle: {n} sessions", file=sys.stderr)
        big = idle_run("pooled", n, 10, ["--source-addresses", srcs, "--open-window", "256"],
                       ["--ping-interval", "25000"])

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
    cols = (["ours pooled (--loop-threads 1)", "node engine.io"]
            + ([] if ARGS.no_threaded else ["ours per-session threads"])
            + ([] if ARGS.no_raw else ["raw C WebSocket echo"])
            + ([] if ARGS.no_raw or ARGS.no_threaded else ["raw C echo, thread per connection"])
            + (["ours pooled, G_SLICE=always-malloc"]
               + ([] if ARGS.no_threaded else ["ours per-session threads, G_SLICE=always-malloc"])
               if ARGS.gslice_malloc else [])
            + (["baseline pooled"] + ([] if ARGS.no_threaded else ["baseline per-session threads"])
               if ARGS.baseline else []))
    print("| scenario | " + " | ".join(cols) + " | pooled / node | target | met |"
          + ("" if ARGS.no_raw else " pooled / raw |"))
    print("|---|" + "---|" * len(cols) + "---|---|---|" + ("" if ARGS.no_raw else "---|"))
    for name, args, target, *_ in scenarios:
        cells = []
        for kind in kinds:
            if (name, kind) not in results:
                cells.append("–")
                continue
            v = col(name, kind, lambda r: r["msg_per_s"])
            p50 = col(name, kind, lambda r: r["latency_us"]["p50"])
            p99 = col(name, kind, lambda r: r["latency_us"]["p99"])
            cpu_b = col(name, kind, lambda r: r["max_thread_cpu_pct"])
            failed = bad(name, kind)
            su = col(name, kind, lambda r: r.get("server_user_us"))
            ss = col(name, kind, lambda r: r.get("server_sys_us"))
            sp = col(name, kind, lambda r: r.get("server_cpu_pct"))
            cells.append(f"{fmt(v)} msg/s (p50 {fmt(p50)} µs, p99 {fmt(p99)} µs; bench cpu {fmt(cpu_b)}%; "
                         f"server cpu {fmt(sp)}%: {fmt(su)} µs user + {fmt(ss)} µs sys per msg)"
                         + (f" **{failed} failed run(s)**" if failed else ""))
        r = ratio(col(name, "pooled", lambda r: r["msg_per_s"]), col(name, "node", lambda r: r["msg_per_s"]))
        met = "–" if target is None or r is None else ("yes" if r >= target else "**no**")
        rr = ratio(col(name, "pooled", lambda r: r["msg_per_s"]), col(name, "raw", lambda r: r["msg_per_s"]))
        raw = "" if ARGS.no_raw else (" – |" if rr is None else f" {fmt(rr)}× |")
        print(f"| {name} | " + " | ".join(cells) + f" | {fmt(r)}× | {'≥ ' + fmt(target) + '×' if target else '–'} | {met} |"
              + raw)
    if do_idle:
        cells = []
        for kind in kinds:
            if ("idle", kind) not in results:
                cells.append("–")
                continue
            v = col("idle", kind, lambda r: r["rss_per_session_b"])
            held = col("idle", kind, lambda r: r["held"])
            ot = col("idle", kind, lambda r: r["open_time_s"])
            failed = bad("idle", kind)
            cells.append(f"{fmt(v)} B/session (held {fmt(held)}, opened in {fmt(ot)} s)"
                         + (f" **{failed} failed run(s)**" if failed else ""))
        r = ratio(col("idle", "pooled", lambda r: r["rss_per_session_b"]),
                  col("idle", "node", lambda r: r["rss_per_session_b"]))
        met = "–" if r is None else ("yes" if r <= 0.5 else "**no**")
        rr = ratio(col("idle", "pooled", lambda r: r["rss_per_session_b"]),
                   col("idle", "raw", lambda r: r["rss_per_session_b"]))
        print(f"| {ARGS.idle} idle ws sessions: VmRSS growth | " + " | ".join(cells)
              + f" | {fmt(r)}× | ≤ 0.5× | {met} |"
              + ("" if ARGS.no_raw else (" – |" if rr is None else f" {fmt(rr)}× |")))
    if ARGS.baseline:
        # this build over the baseline, each mode; and each one's ratio to
        # node in the same rounds
        print()
        print(f"This build ({git}) against the baseline {ARGS.baseline}: msg/s (idle: bytes per session), medians.")
        print()
        modes = [("pooled", "pooled-base")] + ([] if ARGS.no_threaded else [("threaded", "threaded-base")])
        print("| scenario | " + " | ".join(f"{m} / baseline | {m} / node | baseline {m} / node" for m, _ in modes)
              + " |")
        print("|---|" + "---|---|---|" * len(modes))
        rows = [(name, lambda r: r["msg_per_s"]) for name, *_ in scenarios]
        if do_idle:
            rows.append(("idle", lambda r: r["rss_per_session_b"]))
        for name, key in rows:
            cells = []
            for ours, base in modes:
                a, b, n = col(name, ours, key), col(name, base, key), col(name, "node", key)
                cells += [fmt(ratio(a, b)) + "×", fmt(ratio(a, n)) + "×", fmt(ratio(b, n)) + "×"]
            print(f"| {name if name != 'idle' else f'{ARGS.idle} idle ws sessions: VmRSS growth'} | "
                  + " | ".join(cells) + " |")
    if big is not None:
        print()
        print(f"Pooled mode, one process: held {big['held']:,} of {big['conns']:,} idle WebSocket sessions "
              f"(opened in {big['open_time_s']:.1f} s, open p99 {big['open_latency_us']['p99']} µs), "
              f"VmRSS {big['rss_before_kib']:,} → {big['rss_during_kib']:,} KiB "
              f"({big['rss_per_session_b']:,.0f} B/session), {big['server_threads']} threads, "
              f"errors {big['errors']}.")
    print()
    print(f"Commands and per-run results: {ARGS.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
