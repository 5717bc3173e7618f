#!/usr/bin/env node
// The client side of the soak (run by soak.sh, which starts engineio-echo and gives us its pid
// and its --verbose log): SESSIONS real engine.io-client sockets (6 for v4, 3 for v3; polling,
// WebSocket, and polling upgrading to WebSocket) that churn for SECONDS: each session lives a
// random 1-20 s, exchanging echo round trips (content and order checked), then closes cleanly
// (waits for its echoes, socket.close()) or abruptly (its connections torn down, no close
// packet), and is replaced at once. Samples the server's RSS; prints a summary and a last line
// `client: OK (…)` or `client: FAILED (…)` (exit 0 only then).
//
//   node soak-client.mjs --url URL --server-pid PID --server-log FILE [--metrics-url URL]
//        [--sessions 2000] [--seconds 300] [--message-interval 5000] [--ping-interval 2500]
//        [--ping-timeout 20000] [--abrupt 0.3] [--rss-interval 3] [--seed N] [--verbose]
//
// Errors (any one fails the run): an `error` event or a close the client did not ask for on a
// session that was not aborted; an echo that differs from what was sent next; an echo missing
// 20 s after it was sent; a session not open within 20 s; a cleanly closed session whose
// server-side close reason (from the log) is not `transport close`, or an aborted one closed for
// anything but transport close / transport error / ping timeout; a server session no client
// opened; server sessions still open once the clients are gone and the heartbeat deadline has
// passed (also checked through the metrics endpoint).
//
// Memory: the server's RSS (VmRSS) is sampled every --rss-interval seconds. Warm-up
// W = max(20 % of the run, min(60 s, half the run)) (60 s for a 300 s run). Baseline B = the
// highest sample in [W, W + BW) with BW = min(60 s, a quarter of the run) (the level of the
// steady state, fluctuations included: the number of live server sessions varies with the
// churn). The run fails if any sample after W, up to the end of the run, exceeds 1.10 × B.
import { createRequire } from "node:module";
import fs from "node:fs";
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";

const require = createRequire(import.meta.url);
const common = require("./common.cjs");
const { die, errorText, preview } = common;

const opts = {
  url: null,
  serverPid: 0,
  serverLog: null,
  metricsUrl: null,
  sessions: 2000,
  seconds: 300,
  messageInterval: 5000,
  pingInterval: 2500,
  pingTimeout: 20000,
  abrupt: 0.3,
  rssInterval: 3,
  seed: Date.now() % 1000000,
  verbose: false,
};
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const need = () => {
      if (i + 1 >= argv.length) die(`${argv[i]} needs a value`);
      return argv[++i];
    };
    switch (argv[i]) {
      case "--url": opts.url = need(); break;
      case "--server-pid": opts.serverPid = Number(need()); break;
      case "--server-log": opts.serverLog = need(); break;
      case "--metrics-url": opts.metricsUrl = need(); break;
      case "--sessions": opts.sessions = Number(need()); break;
      case "--seconds": opts.seconds = Number(need()); break;
      case "--message-interval": opts.messageInterval = Number(need()); break;
      case "--ping-interval": opts.pingInterval = Number(need()); break;
      case "--ping-timeout": opts.pingTimeout = Number(need()); break;
      case "--abrupt": opts.abrupt = Number(need()); break;
      case "--rss-interval": opts.rssInterval = Number(need()); break;
      case "--seed": opts.seed = Number(need()); break;
      case "--verbose": case "-v": opts.verbose = true; break;
      default: die(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.url || !opts.serverPid || !opts.serverLog) die("--url, --server-pid and --server-log are required");
  if (!(opts.sessions > 0) || !(opts.seconds > 0)) die("--sessions and --seconds must be positive");
}

const t0 = Date.now();
const elapsed = () => (Date.now() - t0) / 1000;
const log = (m) => process.stdout.write(`[soak +${elapsed().toFixed(0)}s] ${m}\n`);
const debug = opts.verbose ? log : () => {};

let seedState = opts.seed >>> 0;
function random() {
  seedState = (seedState + 0x6d2b79f5) >>> 0;
  let t = seedState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// ---- errors -----------------------------------------------------------------------------------

const errors = [];
let nErrors = 0;
function error(msg) {
  nErrors++;
  if (errors.length < 40) errors.push(`+${elapsed().toFixed(1)}s ${msg}`);
  debug(`ERROR ${msg}`);
}

// ---- payloads ---------------------------------------------------------------------------------

const UNITS = "abcdefghijklmnopqrstuvwxyz0123456789 ".split("").concat(["é", "ß", "€", "✓", "😀", "𝄞", "\n", "\""]);
function randomText(len) {
  let s = "";
  for (let i = 0; i < len; i++) s += UNITS[Math.floor(random() * UNITS.length)];
  return s;
}
function randomPayload() {
  const r = random();
  if (r < 0.15) {
    const b = Buffer.alloc(1 + Math.floor(random() * 512));
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(random() * 256);
    return b;
  }
  if (r < 0.17) return randomText(4000 + Math.floor(random() * 4000));
  return randomText(1 + Math.floor(random() * 300));
}
function sameEcho(sent, got) {
  if (typeof sent === "string") return typeof got === "string" && got === sent;
  const b = common.toBuffer(got);
  return b !== null && b.equals(sent);
}

// ---- sessions ---------------------------------------------------------------------------------

const KINDS = [
  ["v4-upgrade", { version: 4, transports: ["polling", "websocket"] }, 0.45],
  ["v4-websocket", { version: 4, transports: ["websocket"] }, 0.2],
  ["v4-polling", { version: 4, transports: ["polling"] }, 0.2],
  ["v3-upgrade", { version: 3, transports: ["polling", "websocket"] }, 0.05],
  ["v3-websocket", { version: 3, transports: ["websocket"] }, 0.05],
  ["v3-polling", { version: 3, transports: ["polling"] }, 0.05],
];
function randomKind() {
  let r = random();
  for (const k of KINDS) {
    if (r < k[2]) return k;
    r -= k[2];
  }
  return KINDS[0];
}

const stats = {
  opened: 0, clean: 0, abrupt: 0, messages: 0, echoes: 0, bytes: 0, upgrades: 0, heartbeats: 0,
  byKind: {},
};
const live = new Set();
const finished = new Map(); // sid -> {clean, kind}: waiting for the server's close line
let ending = false;

class Session {
  constructor() {
    const [name, kind] = randomKind();
    this.kindName = name;
    this.kind = kind;
    this.lifeMs = 1000 + random() * 19000;
    this.abrupt = random() < opts.abrupt;
    this.state = "connecting";
    this.pending = []; // [payload, sentAt]
    this.timers = [];
  }

  start() {
    live.add(this);
    stats.byKind[this.kindName] = (stats.byKind[this.kindName] || 0) + 1;
    const s = this.socket = common.openSocket(opts.url, this.kind);
    this.openTimer = setTimeout(() => {
      if (this.state === "connecting") {
        error(`${this.kindName}: no open packet within 20 s`);
        this.finish(false);
      }
    }, 20000);
    s.on("open", () => {
      clearTimeout(this.openTimer);
      if (this.state !== "connecting") return;
      this.state = "open";
      this.sid = s.id;
      stats.opened++;
      if (ending) {
        this.end();
        return;
      }
      const first = random() * opts.messageInterval;
      this.msgTimer = setTimeout(() => this.tick(), first);
      this.lifeTimer = setTimeout(() => this.end(), this.lifeMs);
    });
    s.on("message", (m) => this.onMessage(m));
    s.on("upgrade", () => stats.upgrades++);
    s.on(this.kind.version === 4 ? "ping" : "pong", () => stats.heartbeats++);
    s.on("error", (e) => {
      if (this.state === "aborted" || this.state === "done") return;
      error(`${this.kindName} ${this.sid}: error event in state ${this.state}: ${errorText(e)}`);
    });
    s.on("close", (reason, desc) => {
      if (this.state === "aborted" || this.state === "done") return;
      if (this.state === "closing" && reason === "forced close") {
        this.finish(true);
        return;
      }
      error(`${this.kindName} ${this.sid}: unexpected close in state ${this.state}: ${reason}` +
        `${desc ? " (" + errorText(desc) + ")" : ""}`);
      this.finish(false);
    });
  }

  tick() {
    if (this.state !== "open") return;
    const p = randomPayload();
    this.pending.push([p, Date.now()]);
    this.socket.send(p);
    stats.messages++;
    stats.bytes += typeof p === "string" ? Buffer.byteLength(p) : p.length;
    this.msgTimer = setTimeout(() => this.tick(), opts.messageInterval * (0.5 + random()));
  }

  onMessage(m) {
    if (this.state === "aborted" || this.state === "done") return;
    const head = this.pending.shift();
    if (!head) {
      error(`${this.kindName} ${this.sid}: message nobody asked for: ${preview(m)}`);
      return;
    }
    if (!sameEcho(head[0], m)) {
      error(`${this.kindName} ${this.sid}: echo differs: sent ${preview(head[0])}, got ${preview(m)}`);
      return;
    }
    stats.echoes++;
    if (this.state === "draining" && this.pending.length === 0) this.close();
  }

  end() {
    if (this.state !== "open") return;
    clearTimeout(this.msgTimer);
    clearTimeout(this.lifeTimer);
    if (this.abrupt && !ending) {
      this.state = "aborted";
      common.abortSocket(this.socket);
      this.finish(false, true);
      return;
    }
    this.state = "draining";
    if (this.pending.length === 0) this.close();
    else {
      this.drainTimer = setTimeout(() => {
        if (this.state === "draining") {
          error(`${this.kindName} ${this.sid}: ${this.pending.length} echo(es) missing 20 s after the end of life`);
          this.close();
        }
      }, 20000);
    }
  }

  close() {
    clearTimeout(this.drainTimer);
    this.state = "closing";
    this.closeTimer = setTimeout(() => {
      if (this.state === "closing") {
        error(`${this.kindName} ${this.sid}: no close event 20 s after socket.close()`);
        this.finish(false);
      }
    }, 20000);
    this.socket.close();
  }

  finish(clean, aborted = false) {
    if (this.state === "done") return;
    const wasFailed = !clean && !aborted;
    this.state = aborted ? "aborted" : "done";
    for (const t of [this.openTimer, this.msgTimer, this.lifeTimer, this.drainTimer, this.closeTimer]) clearTimeout(t);
    live.delete(this);
    if (clean) stats.clean++;
    if (aborted) stats.abrupt++;
    if (wasFailed) common.abortSocket(this.socket);
    else setTimeout(() => common.releaseSocket(this.socket), 3000);
    if (this.sid) {
      const srv = serverSessions.get(this.sid);
      const rec = { clean, aborted, failed: wasFailed, kind: this.kindName };
      if (srv && srv.closed) checkServerClose(this.sid, rec, srv);
      else finished.set(this.sid, rec);
    }
    if (!ending) new Session().start();
  }
}

// ---- the server's log -------------------------------------------------------------------------

const serverSessions = new Map(); // sid -> {closed, reason}: open on the server, or closed but the client not done
const serverCloses = {};
let serverOpens = 0;
let serverUpgrades = 0;
let logOffset = 0;
let logRest = "";

function checkServerClose(sid, rec, srv) {
  const reason = srv.reason;
  if (rec.failed) {
    // Already an error on the client side; the server's view is just detail.
  } else if (rec.clean) {
    if (reason !== "transport close") error(`${rec.kind} ${sid}: closed cleanly by the client, server says ${reason}`);
  } else if (!["transport close", "transport error", "ping timeout"].includes(reason)) {
    error(`${rec.kind} ${sid}: aborted by the client, server says ${reason}`);
  }
  serverSessions.delete(sid);
  finished.delete(sid);
}

function readServerLog() {
  let fd;
  try {
    fd = fs.openSync(opts.serverLog, "r");
  } catch (e) {
    error(`cannot read the server log: ${e.message}`);
    return;
  }
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, logOffset);
      if (n <= 0) break;
      logOffset += n;
      const text = logRest + buf.toString("utf8", 0, n);
      const lines = text.split("\n");
      logRest = lines.pop();
      for (const line of lines) serverLine(line);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function serverLine(line) {
  const f = line.split(" ");
  if (f[0] === "open") {
    serverOpens++;
    serverSessions.set(f[1], { closed: false });
  } else if (f[0] === "upgrade") {
    serverUpgrades++;
  } else if (f[0] === "close") {
    const reason = f.slice(2).join(" ");
    serverCloses[reason] = (serverCloses[reason] || 0) + 1;
    const srv = serverSessions.get(f[1]);
    if (!srv) {
      error(`server closed ${f[1]} which it never opened (log)`);
      return;
    }
    srv.closed = true;
    srv.reason = reason;
    const rec = finished.get(f[1]);
    if (rec) checkServerClose(f[1], rec, srv);
  } else if (line.startsWith("listening on ")) {
    // the first line
  } else if (line.trim()) {
    error(`unexpected line in the server's output: ${line}`);
  }
}

// ---- memory and CPU ---------------------------------------------------------------------------

const rss = []; // [t seconds, KiB]
const warmup = Math.max(0.2 * opts.seconds, Math.min(60, 0.5 * opts.seconds));
let serverGone = false;
function sample() {
  const st = common.procStats(opts.serverPid);
  if (!st) {
    if (!serverGone) error("the server process is gone");
    serverGone = true;
    return;
  }
  rss.push([elapsed(), st.rssKiB, st.threads, st.cpuSeconds]);
}

function httpGet(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = "";
      res.on("data", (d) => { body += d; });
      res.on("end", () => resolve({ status: res.statusCode, body }));
    }).on("error", reject);
  });
}

// ---- main -------------------------------------------------------------------------------------

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function main() {
  const cpu0 = process.cpuUsage();
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  // Stalls of the client's event loop (CPU starvation on a shared machine, GC): a client that
  // does not run cannot answer heartbeats, so errors right after a long stall may be ours.
  const stalls = [];
  let lastTick = Date.now();
  const stallTimer = setInterval(() => {
    const now = Date.now();
    if (now - lastTick > 2000) stalls.push([elapsed(), (now - lastTick) / 1000]);
    lastTick = now;
  }, 100);
  log(`${opts.sessions} sessions for ${opts.seconds} s against ${opts.url} (server pid ${opts.serverPid}), ` +
    `warm-up ${warmup.toFixed(0)} s, seed ${opts.seed}`);

  // Ramp up over 10 s (or a tenth of a short run).
  const rampMs = Math.min(10000, opts.seconds * 100);
  for (let i = 0; i < opts.sessions; i++) {
    setTimeout(() => {
      if (!ending) new Session().start();
    }, (i * rampMs) / opts.sessions);
  }

  sample();
  const sampler = setInterval(sample, opts.rssInterval * 1000);
  const sweeper = setInterval(() => {
    readServerLog();
    const now = Date.now();
    for (const s of live) {
      if (s.pending.length && now - s.pending[0][1] > 20000 && s.state !== "aborted") {
        error(`${s.kindName} ${s.sid}: echo missing 20 s after it was sent (${s.pending.length} pending, state ${s.state})`);
        s.pending.length = 0;
      }
    }
  }, 2000);
  const reporter = setInterval(() => {
    const last = rss[rss.length - 1];
    log(`${live.size} live, ${stats.opened} opened, ${stats.echoes}/${stats.messages} echoes, ` +
      `server RSS ${last ? (last[1] / 1024).toFixed(1) : "?"} MiB, ${last ? last[2] : "?"} threads, ${nErrors} errors`);
  }, 30000);

  await sleep(opts.seconds * 1000);
  ending = true;
  clearInterval(reporter);
  const cpuRun = process.cpuUsage(cpu0);
  const runSeconds = elapsed();
  log(`time is up: closing the ${live.size} live sessions`);
  for (const s of [...live]) s.end();
  const deadline = Date.now() + 45000;
  while (live.size && Date.now() < deadline) await sleep(200);
  if (live.size) error(`${live.size} sessions did not close within 45 s of the end`);
  for (const s of [...live]) s.finish(false);
  clearInterval(sampler);
  clearInterval(sweeper);

  // Aborted polling sessions end on the server at its heartbeat deadline.
  const serverDeadline = Date.now() + opts.pingInterval + opts.pingTimeout + 15000;
  for (;;) {
    readServerLog();
    const open = [...serverSessions.values()].filter((s) => !s.closed).length;
    if (open === 0 && finished.size === 0) break;
    if (Date.now() > serverDeadline) {
      if (open) error(`${open} sessions still open on the server ${((opts.pingInterval + opts.pingTimeout) / 1000 + 15).toFixed(0)} s after the clients ended`);
      for (const [sid, srv] of serverSessions) {
        if (srv.closed && !finished.has(sid)) error(`server session ${sid} that no client opened (closed: ${srv.reason})`);
      }
      if (finished.size) error(`${finished.size} client sessions the server never reported closed, e.g. ${[...finished.keys()][0]}`);
      break;
    }
    await sleep(500);
  }
  let metricsOpen = null;
  if (opts.metricsUrl) {
    try {
      const r = await httpGet(opts.metricsUrl);
      metricsOpen = 0;
      for (const line of r.body.split("\n")) {
        const m = /^engineio_sessions_open\{[^}]*\} (\d+)/.exec(line);
        if (m) metricsOpen += Number(m[1]);
      }
      if (r.status !== 200) error(`metrics: HTTP ${r.status}`);
      if (metricsOpen !== 0) error(`metrics: ${metricsOpen} sessions open on the server after the run`);
    } catch (e) {
      error(`metrics: ${e.message}`);
    }
  }
  const finalStats = common.procStats(opts.serverPid);
  loopDelay.disable();

  // Memory verdict.
  const after = rss.filter(([t]) => t >= warmup && t <= runSeconds);
  const baseSpan = Math.min(60, opts.seconds / 4);
  const baseWindow = after.filter(([t]) => t < warmup + baseSpan).map(([, k]) => k);
  const all = rss.filter(([t]) => t <= runSeconds).map(([, k]) => k);
  let memory = "not enough samples";
  let memoryOk = false;
  if (baseWindow.length >= 3) {
    const base = Math.max(...baseWindow);
    const maxAfter = Math.max(...after.map(([, k]) => k));
    const growth = (maxAfter / base - 1) * 100;
    memoryOk = maxAfter <= 1.1 * base;
    memory = `RSS min ${(Math.min(...all) / 1024).toFixed(1)} / max ${(Math.max(...all) / 1024).toFixed(1)} MiB over ` +
      `${all.length} samples; after the ${warmup.toFixed(0)} s warm-up: baseline ${(base / 1024).toFixed(1)} MiB ` +
      `(highest of ${baseWindow.length} samples in ${warmup.toFixed(0)}-${(warmup + baseSpan).toFixed(0)} s), max ${(maxAfter / 1024).toFixed(1)} MiB (${growth >= 0 ? "+" : ""}${growth.toFixed(1)}%, limit +10%), ` +
      `last ${(after[after.length - 1][1] / 1024).toFixed(1)} MiB; ` +
      `after all sessions closed ${finalStats ? (finalStats.rssKiB / 1024).toFixed(1) : "?"} MiB`;
    if (!memoryOk) error(`server RSS grew ${growth.toFixed(1)}% over its post-warm-up baseline (limit 10%)`);
  } else {
    error(`only ${baseWindow.length} RSS samples in the baseline window: run longer`);
  }
  // The series, at most 50 points (each the highest of its stretch), for the log.
  {
    const step = Math.max(1, Math.ceil(rss.length / 50));
    const pts = [];
    for (let i = 0; i < rss.length; i += step) {
      const chunk = rss.slice(i, i + step);
      const top = chunk.reduce((a, b) => (b[1] > a[1] ? b : a));
      pts.push(`${top[0].toFixed(0)}:${(top[1] / 1024).toFixed(0)}`);
    }
    log(`server RSS (s:MiB): ${pts.join(" ")}`);
  }
  const threads = rss.length ? Math.max(...rss.map((r) => r[2])) : 0;
  const cpuS = (cpuRun.user + cpuRun.system) / 1e6;
  const srvCpu = rss.length ? rss[rss.length - 1][3] : NaN;
  const clientCpu = `client CPU ${cpuS.toFixed(1)} s = ${(100 * cpuS / runSeconds).toFixed(0)}% of one core, event-loop delay ` +
    `p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms, max ${(loopDelay.max / 1e6).toFixed(0)} ms`;

  log(`sessions: ${stats.opened} opened (${Object.entries(stats.byKind).map(([k, v]) => `${k} ${v}`).join(", ")}), ` +
    `${stats.clean} closed cleanly, ${stats.abrupt} aborted, ${stats.upgrades} upgrades, ${stats.heartbeats} heartbeats`);
  log(`messages: ${stats.messages} sent, ${stats.echoes} echoes checked, ${(stats.bytes / 1e6).toFixed(1)} MB`);
  log(`server: ${serverOpens} opens, ${serverUpgrades} upgrades, closes ${JSON.stringify(serverCloses)}, ` +
    `open sessions after the run (metrics) ${metricsOpen ?? "not checked"}, up to ${threads} threads, ` +
    `CPU ${srvCpu.toFixed(1)} s (${(100 * srvCpu / runSeconds).toFixed(0)}% of one core)`);
  log(`memory: ${memory}`);
  clearInterval(stallTimer);
  log(`${clientCpu}; event-loop stalls over 2 s: ${stalls.length}` +
    (stalls.length ? ` (longest ${Math.max(...stalls.map((x) => x[1])).toFixed(1)} s; at ` +
      stalls.slice(0, 10).map(([t, d]) => `+${t.toFixed(0)}s ${d.toFixed(1)}s`).join(", ") + ")" : ""));
  if (cpuS / runSeconds > 0.9 || loopDelay.percentile(99) > 1e9 || stalls.length) {
    log("WARNING: the client was short of CPU (saturated, or stalled): heartbeat errors just after a " +
      "stall may come from the client side");
  }
  if (serverOpens !== stats.opened) {
    error(`the server opened ${serverOpens} sessions, the clients ${stats.opened}`);
  }
  for (const e of errors) process.stdout.write(`ERROR: ${e}\n`);
  if (nErrors > errors.length) process.stdout.write(`… and ${nErrors - errors.length} more errors\n`);

  const summary = `${opts.seconds} s, ${stats.opened} sessions, ${stats.echoes} echoes, ` +
    `${memory.split(";")[1] ? memory.split(";")[1].trim() : memory}, ${nErrors} errors, ` +
    `client CPU ${(100 * cpuS / runSeconds).toFixed(0)}%`;
  process.stdout.write(`client: ${nErrors ? "FAILED" : "OK"} (${summary})\n`);
  process.exit(nErrors ? 1 : 0);
}

process.on("uncaughtException", (e) => {
  process.stdout.write(`client: FAILED (uncaught exception: ${e && e.stack ? e.stack : e})\n`);
  process.exit(1);
});

main().catch((e) => {
  process.stdout.write(`client: FAILED (${e && e.stack ? e.stack : e})\n`);
  process.exit(1);
});
