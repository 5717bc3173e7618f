#!/usr/bin/python3
"""Cross-node Socket.IO broadcast: three C nodes against three Node nodes.

Not run by CI: it takes minutes and wants the machine to itself.

  tests/bench/compare-cluster.py --build BUILD_DIR [--rounds 3] [--duration 5] [--conns 1000]

For each kind, one redis-server, three nodes joined through it and nginx in
front with the sticky recipe of the Deployment page (`hash $remote_addr
consistent`, upgrade headers): ours are `socketio-echo --loop-threads 1
--redis URL`, Node's are `tests/interop/reference-sio-echo.js --redis URL`
(npm socket.io 4.8 with @socket.io/redis-adapter 8.3, from
tests/interop/node_modules). engineio-bench --mode sio-broadcast opens
--conns receivers plus one sender through nginx from 20 loopback source
addresses (so the hash spreads them over the nodes); the sender emits
`broadcast` with --inflight in flight, its node broadcasts to the namespace
and the adapter carries it to the other two. Reported: deliveries per
second, latency from the emit to the last delivery (p50, p99), and the CPU
of the three nodes (user + system per delivery). Nodes on CPU
--server-cpu, nginx, redis and the bench on --bench-cpu. Rounds are
interleaved; medians. Standard library only; every command goes to --log.
"""

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))
REF = os.path.join(SRCDIR, "tests", "interop", "reference-sio-echo.js")
LOG = None
ARGS = None


def log(line):
    LOG.write(line + "\n")
    LOG.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def spawn(cmd, cpu, **kw):
    cmd = ["taskset", "-c", cpu] + cmd
    log("$ " + " ".join(cmd) + " &")
    return subprocess.Popen(cmd, **kw)


def start_node(kind, redis_url):
    if kind == "ours":
        cmd = [os.path.join(ARGS.build, "src", "socketio", "socketio-echo"), "--loop-threads", "1"]
    else:
        cmd = ["node", REF]
    cmd += ["--address", "127.0.0.1", "--port", "0", "--redis", redis_url]
    p = spawn(cmd, ARGS.server_cpu, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready, _, _ = select.select([p.stdout], [], [], 20)
    line = p.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        p.kill()
        raise RuntimeError(f"{kind} node did not start: {line!r}")
    port = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
    return p, port


NGINX_CONF = """{user}worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
  }}
  upstream socketio_nodes {{
    hash $remote_addr consistent;
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location /socket.io/ {{
      proxy_pass http://socketio_nodes;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


def cluster_run(kind):
    """One round on @kind: returns the bench's JSON plus the nodes' CPU."""
    tmp = tempfile.mkdtemp(prefix="compare-cluster-")
    procs = []
    try:
        redis_port = free_port()
        redis = spawn(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no"], ARGS.bench_cpu, stdout=subprocess.DEVNULL)
        procs.append(redis)
        wait_port(redis_port)
        url = f"redis://127.0.0.1:{redis_port}"
        nodes = [start_node(kind, url) for _ in range(3)]
        procs += [p for p, _ in nodes]
        nginx_port = free_port()
        user = f"user {os.environ.get('USER', 'root')};\n" if os.getuid() == 0 else ""
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(user=user, dir=tmp, port=nginx_port,
                                      servers="\n".join(f"    server 127.0.0.1:{port};" for _, port in nodes)))
        nginx = spawn(["nginx", "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp,
                       "-g", "daemon off; error_log stderr;"], ARGS.bench_cpu,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nginx)
        wait_port(nginx_port)
        time.sleep(0.5)  # the nodes' adapters subscribe

        sources = ",".join(f"127.0.0.{i}" for i in range(2, 22))
        cmd = ["taskset", "-c", ARGS.bench_cpu, os.path.join(ARGS.build, "src", "tools", "engineio-bench"),
               "--url", f"http://127.0.0.1:{nginx_port}/socket.io/", "--mode", "sio-broadcast",
               "--conns", str(ARGS.conns), "--inflight", str(ARGS.inflight), "--size", "32",
               "--duration", str(ARGS.duration), "--warmup", str(ARGS.warmup),
               "--source-addresses", sources, "--json", "--verbose"]
        log("$ " + " ".join(cmd))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cpu0 = cpu1 = None
        deadline = time.time() + 120
        while time.time() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], max(0.1, deadline - time.time()))
            line = p.stderr.readline() if ready else ""
            if not line:
                break
            if "opened" in line and " in " in line:
                time.sleep(ARGS.warmup)
                cpu0, t0 = sum(cpu_s(n.pid) for n, _ in nodes), time.time()
                time.sleep(ARGS.duration)
                cpu1, t1 = sum(cpu_s(n.pid) for n, _ in nodes), time.time()
                break
        out, err = p.communicate(timeout=ARGS.duration + ARGS.warmup + 120)
        for line in err.splitlines():
            if line.startswith("engineio-bench:") and "open" not in line:
                log("  " + line)
        result = json.loads(out) if out.strip() else None
        if result is None:
            log(f"  no JSON (exit {p.returncode})")
            return None
        result["exit"] = p.returncode
        if cpu0 is not None and result["deliveries_per_s"] > 0:
            result["nodes_cpu_us"] = (cpu1 - cpu0) * 1e6 / (result["deliveries_per_s"] * (t1 - t0))
        log(f"  {kind}: exit {p.returncode}, {result['deliveries_per_s']:.0f} deliveries/s, "
            f"p50 {result['latency_us']['p50']} us, p99 {result['latency_us']['p99']} us, "
            f"errors {result['errors']}, nodes cpu {result.get('nodes_cpu_us', -1):.2f} us/delivery")
        return result
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--bench-cpu", default="1")
    ap.add_argument("--log", default="/tmp/compare-cluster.log")
    ARGS = ap.parse_args()
    LOG = open(ARGS.log, "w")
    for tool in ("redis-server", "nginx", "node"):
        if shutil.which(tool) is None:
            sys.exit(f"compare-cluster: {tool} is missing (.ci/install-deps.sh installs it)")

    kinds = ["ours", "node"]
    results = {k: [] for k in kinds}
    for rnd in range(ARGS.rounds):
        for kind in (kinds if rnd % 2 == 0 else list(reversed(kinds))):
            print(f"round {rnd + 1}: {kind}", file=sys.stderr)
            log(f"# round {rnd + 1}: {kind}")
            results[kind].append(cluster_run(kind))

    def med(kind, key):
        values = [key(r) for r in results[kind] if r is not None and r["exit"] == 0]
        return statistics.median(values) if values else None

    print(f"| {ARGS.conns} receivers on 3 nodes, 32 B, {ARGS.inflight} in flight | deliveries/s | p50 | p99 "
          "| nodes' CPU per delivery | failed runs |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        failed = sum(1 for r in results[kind] if r is None or r["exit"] != 0)
        d = med(kind, lambda r: r["deliveries_per_s"])
        p50 = med(kind, lambda r: r["latency_us"]["p50"])
        p99 = med(kind, lambda r: r["latency_us"]["p99"])
        c = med(kind, lambda r: r.get("nodes_cpu_us", 0))
        name = "ours (socketio-echo --loop-threads 1)" if kind == "ours" else "node socket.io + redis-adapter"
        fmt = lambda v, u="": "–" if v is None else f"{v:,.0f}{u}" if v >= 100 else f"{v:.2f}{u}"
        print(f"| {name} | {fmt(d)} | {fmt(p50, ' µs')} | {fmt(p99, ' µs')} | {fmt(c, ' µs')} | {failed} |")
    a, b = med("ours", lambda r: r["deliveries_per_s"]), med("node", lambda r: r["deliveries_per_s"])
    if a and b:
        print(f"\nours / node: {a / b:.2f}× deliveries/s")
    print(f"\nCommands and per-run results: {ARGS.log}")


if __name__ == "__main__":
    main()
