#!/usr/bin/env node
// No-loss test: numbered messages both ways between noloss-server (C, public API only) and
// real Engine.IO clients (npm engine.io-client 6, and 3 for v3), while transports upgrade and
// heartbeats run; then every session is ended in a way that also exercises close-before-flush.
//
//   node noloss.mjs --server BUILD/tests/soak/noloss-server [--loop-threads N]
//        [--sessions 500] [--seconds 60] [--ping-interval 3000] [--send-interval 250]
//        [--seed N] [--verbose]
//
// NOLOSS_SECONDS and NOLOSS_SESSIONS override the defaults. Mix of clients (by slot, of 20):
// 11 v4 polling->websocket upgrade, 3 v4 websocket only, 4 v4 polling only, 1 v3 upgrade,
// 1 v3 polling only or websocket only. Sessions are opened over the first few seconds; slots
// 5 and 15 (v4 upgrade and v4 polling) and 18 (v3 upgrade) of every 20 are "churners" whose
// sessions last 8-16 s and are replaced, so that handshakes and upgrades go on during the run. Each client sends numbered messages (`c<n>|filler`, every
// 5th binary) every send interval and checks the server's numbering (`s<n>|…`) is exactly
// 1, 2, 3… with exact content. At the end of a session the client stops, sends
// `!END <sent> <mode>`, and the server ends the session by mode (see noloss-server.c):
//   fin    !FIN <sent>, close                    -> client got everything, FIN count matches
//   burst  20 more numbered, !FIN <sent>, close  -> close with a full queue: all delivered
//   stall  !PAUSE; the client pauses its polling transport (no more polls); the server queues
//          10 more and closes                    -> exactly those 10 reported FALSE
// The server prints one report per session at ::close; this script compares both sides:
//   - the server received exactly 1..n from the client, n = what the client sent (all flushed);
//   - the client received exactly 1..m from the server, m = the messages the server's flush
//     callbacks reported TRUE; the rest (FALSE) were not received, and only stall has any;
//   - flush callbacks once per message, in order, TRUE prefix then FALSE; every session closed
//     with `forced close` after its END; transports as configured (upgrade sessions upgraded,
//     once); heartbeats ran (server-side count at least lifetime / interval - 2);
//   - no client error event, no unexpected close, no server warning on stderr, clean exit.
// Prints `noloss: OK (…)` or every discrepancy and `noloss: FAILED (…)`; exit status 0 only then.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const common = require("./common.cjs");
const { die, errorText } = common;

const STALL_EXTRA = 10; // noloss-server.c

// ---- options ----------------------------------------------------------------------------------

const opts = {
  server: null,
  loopThreads: 0,
  sessions: Number(process.env.NOLOSS_SESSIONS || 500),
  seconds: Number(process.env.NOLOSS_SECONDS || 60),
  pingInterval: 3000,
  sendInterval: 250,
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
      case "--server": opts.server = need(); break;
      case "--loop-threads": opts.loopThreads = Number(need()); break;
      case "--sessions": opts.sessions = Number(need()); break;
      case "--seconds": opts.seconds = Number(need()); break;
      case "--ping-interval": opts.pingInterval = Number(need()); break;
      case "--send-interval": opts.sendInterval = Number(need()); break;
      case "--seed": opts.seed = Number(need()); break;
      case "--verbose": case "-v": opts.verbose = true; break;
      default: die(`unknown argument ${argv[i]}`);
    }
  }
  if (!opts.server) die("--server PATH is required");
  if (!(opts.sessions > 0) || !(opts.seconds > 0)) die("--sessions and --seconds must be positive");
}

const t0 = Date.now();
const log = opts.verbose ? (m) => process.stderr.write(`[noloss +${Date.now() - t0}ms] ${m}\n`) : () => {};

// Small seeded PRNG (mulberry32), so that a failing run can be repeated with --seed.
let seedState = opts.seed >>> 0;
function random() {
  seedState = (seedState + 0x6d2b79f5) >>> 0;
  let t = seedState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

// ---- the server -------------------------------------------------------------------------------

const serverRecords = new Map(); // sid -> report
let serverBye = null;
let serverStderr = "";
let serverExit = null;

const server = spawn(opts.server, [
  "--loop-threads", String(opts.loopThreads),
  "--ping-interval", String(opts.pingInterval),
  "--ping-timeout", "10000",
  "--send-interval", String(opts.sendInterval),
], { stdio: ["ignore", "pipe", "pipe"] });
server.on("error", (e) => die(`cannot start ${opts.server}: ${e.message}`));
server.stderr.on("data", (d) => {
  serverStderr += d.toString();
  if (opts.verbose) process.stderr.write(`[server] ${d}`);
});
const serverExited = new Promise((resolve) => {
  server.on("exit", (code, signal) => {
    serverExit = { code, signal };
    resolve();
  });
});
const portPromise = new Promise((resolve, reject) => {
  const rl = readline.createInterface({ input: server.stdout });
  rl.on("line", (line) => {
    if (line.startsWith("port ")) resolve(Number(line.slice(5)));
    else if (line.startsWith("S ")) {
      let rec;
      try {
        rec = JSON.parse(line.slice(2));
      } catch (e) {
        problems.push(`server report that is not JSON: ${line}`);
        return;
      }
      if (serverRecords.has(rec.sid)) problems.push(`two server reports for ${rec.sid}`);
      serverRecords.set(rec.sid, rec);
      wake();
    } else if (line.startsWith("bye ")) serverBye = Number(line.slice(4));
    else problems.push(`unexpected server output: ${line}`);
  });
  server.on("exit", () => reject(new Error(`server exited before printing its port: ${serverStderr}`)));
});

// ---- waiting ----------------------------------------------------------------------------------

let waiter = null;
function wake() {
  if (waiter) {
    const w = waiter;
    waiter = null;
    w();
  }
}
async function until(pred, ms) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, Math.min(left, 200));
      waiter = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  return true;
}

// ---- clients ----------------------------------------------------------------------------------

const KINDS = {
  "v4-upgrade": { version: 4, transports: ["polling", "websocket"] },
  "v4-websocket": { version: 4, transports: ["websocket"] },
  "v4-polling": { version: 4, transports: ["polling"] },
  "v3-upgrade": { version: 3, transports: ["polling", "websocket"] },
  "v3-polling": { version: 3, transports: ["polling"] },
  "v3-websocket": { version: 3, transports: ["websocket"] },
};

function kindOfSlot(slot) {
  const r = slot % 20;
  if (r <= 10) return "v4-upgrade";
  if (r <= 13) return "v4-websocket";
  if (r <= 17) return "v4-polling";
  if (r === 18) return "v3-upgrade";
  return Math.floor(slot / 20) % 2 ? "v3-websocket" : "v3-polling";
}

const modeCounters = {};
function nextMode(kindName) {
  const modes = KINDS[kindName].transports.length === 1 && KINDS[kindName].transports[0] === "polling"
    ? ["stall", "burst", "fin"] : ["burst", "fin"];
  const c = modeCounters[kindName] = (modeCounters[kindName] || 0) + 1;
  return modes[c % modes.length];
}

const problems = []; // global discrepancies
const results = []; // finished client sessions
const live = new Set(); // started, not finished
let active = 0;
let opened = 0;
let globalEnd = false;
let url = null;

class Client {
  constructor(slot, kindName, lifeMs) {
    this.slot = slot;
    this.kindName = kindName;
    this.kind = KINDS[kindName];
    this.lifeMs = lifeMs; // null: until the global end
    this.state = "connecting";
    this.sid = null;
    this.sent = 0;
    this.acked = 0;
    this.recvNext = 1;
    this.finN = null;
    this.heartbeats = 0;
    this.upgrades = [];
    this.errors = [];
    this.mode = null;
    this.sendTimer = null;
    this.lifeTimer = null;
    this.endTimer = null;
    this.openedAt = null;
    this.endedAt = null;
    this.startTransport = null;
  }

  error(msg) {
    if (this.errors.length < 8) this.errors.push(msg);
    log(`${this.kindName} ${this.sid}: ${msg}`);
  }

  start() {
    active++;
    live.add(this);
    const s = this.socket = common.openSocket(url, this.kind);
    const connectTimer = setTimeout(() => {
      if (this.state === "connecting") {
        this.error("no open packet within 30 s");
        this.finish("failed");
      }
    }, 30000);
    s.on("open", () => {
      clearTimeout(connectTimer);
      if (this.state !== "connecting") return;
      this.state = "open";
      this.sid = s.id;
      this.openedAt = Date.now();
      this.startTransport = s.transport.name;
      opened++;
      if (this.startTransport !== this.kind.transports[0]) {
        this.error(`opened on ${this.startTransport}, expected ${this.kind.transports[0]}`);
      }
      if (globalEnd) {
        this.end();
        return;
      }
      this.sendNext();
      this.sendTimer = setInterval(() => this.sendNext(), opts.sendInterval);
      if (this.lifeMs !== null) this.lifeTimer = setTimeout(() => this.end(), this.lifeMs);
    });
    s.on("message", (m) => this.onMessage(m));
    s.on("upgrade", (t) => {
      this.upgrades.push(t && t.name ? t.name : String(t));
    });
    s.on(this.kind.version === 4 ? "ping" : "pong", () => {
      this.heartbeats++;
    });
    s.on("error", (e) => {
      if (this.state === "paused" || this.state === "done") return;
      this.error(`error event: ${errorText(e)}`);
    });
    s.on("close", (reason, desc) => this.onClose(reason, desc));
  }

  sendNext() {
    if (this.state !== "open") return;
    const n = this.sent + 1;
    this.socket.send(common.makeNumbered("c", n), {}, () => {
      this.acked++;
    });
    this.sent = n;
  }

  onMessage(m) {
    if (this.state === "paused" || this.state === "done" || this.state === "failed") {
      this.error(`message after the session was over for the client (${this.state}): ${common.preview(m)}`);
      return;
    }
    if (typeof m === "string" && m[0] === "!") {
      if (m.startsWith("!FIN ")) {
        const n = Number(m.slice(5));
        if (this.state !== "ending" || this.mode === "stall") this.error(`${m} in state ${this.state}`);
        if (this.finN !== null) this.error(`a second ${m}`);
        this.finN = n;
        if (n !== this.recvNext - 1) {
          this.error(`server says it sent ${n}, ${this.recvNext - 1} arrived`);
        }
      } else if (m === "!PAUSE") {
        if (this.state !== "ending" || this.mode !== "stall") {
          this.error(`!PAUSE in state ${this.state}, mode ${this.mode}`);
          return;
        }
        // No poll after the one that carried !PAUSE: whatever the server sends from now on
        // cannot reach us, and its flush callbacks must say so.
        this.state = "pausing";
        if (this.kind.version === 3) {
          // engine.io-client 3 pings on its own timer, and its transport throws "Transport not
          // open" when asked to send while pausing or paused: no more heartbeats from us.
          clearTimeout(this.socket.pingIntervalTimer);
          clearTimeout(this.socket.pingTimeoutTimer);
          // A ping queued before !PAUSE came, while a POST was in flight, is still in the
          // socket's write buffer: when that POST completes, the socket's drain handler (which
          // runs before the pause's) flushes it into the pausing transport, which throws.
          // Such a ping is all that can be queued here (the client sent nothing after !END);
          // it is dropped, as engine.io-client 6's transport does when not open.
          const transport = this.socket.transport;
          const send = transport.send.bind(transport);
          transport.send = (packets) => {
            if (transport.readyState === "open") send(packets);
          };
        }
        this.socket.transport.pause(() => {
          this.finish("paused");
          setTimeout(() => common.abortSocket(this.socket), 100);
        });
      } else {
        this.error(`unknown control message ${m}`);
      }
      return;
    }
    const r = common.parseNumbered("s", m);
    if (r.error) {
      this.error(`after #${this.recvNext - 1}: ${r.error}`);
      return;
    }
    if (r.n !== this.recvNext) {
      this.error(`got #${r.n} where #${this.recvNext} was expected (${r.n < this.recvNext ? "duplicate or reordered" : "gap"})`);
      if (r.n < this.recvNext) return;
    }
    this.recvNext = r.n + 1;
  }

  onClose(reason, desc) {
    if (this.state === "paused" || this.state === "done" || this.state === "failed") return;
    if (this.state === "ending" && this.finN !== null) {
      if (reason !== "transport close") this.error(`closed with ${reason}, expected transport close`);
      this.finish("closed");
      return;
    }
    this.error(`unexpected close in state ${this.state}: ${reason}${desc ? " (" + errorText(desc) + ")" : ""}`);
    this.finish("failed");
  }

  end() {
    if (this.state !== "open") return;
    clearInterval(this.sendTimer);
    clearTimeout(this.lifeTimer);
    this.mode = nextMode(this.kindName);
    this.state = "ending";
    this.endedAt = Date.now();
    this.socket.send(`!END ${this.sent} ${this.mode}`);
    this.endTimer = setTimeout(() => {
      if (this.state === "ending" || this.state === "pausing") {
        this.error(`session did not end within 30 s of !END (mode ${this.mode}, state ${this.state}, ` +
          `got ${this.recvNext - 1}, FIN ${this.finN})`);
        this.finish("failed");
      }
    }, 30000);
  }

  finish(how) {
    if (this.state === "done" || this.state === "paused" || this.state === "failed") return;
    this.state = how === "paused" ? "paused" : how === "failed" ? "failed" : "done";
    clearInterval(this.sendTimer);
    clearTimeout(this.lifeTimer);
    clearTimeout(this.endTimer);
    if (how === "failed") common.abortSocket(this.socket);
    else if (how === "closed") setTimeout(() => common.releaseSocket(this.socket), 3000);
    active--;
    live.delete(this);
    results.push(this);
    wake();
    if (this.lifeMs !== null && !globalEnd) startSlot(this.slot);
  }

  get finalTransport() {
    return this.socket && this.socket.transport ? this.socket.transport.name : null;
  }
}

const CHURN_MIN_MS = 8000;
const CHURN_MAX_MS = 16000;
let endAt = 0;

function startSlot(slot) {
  const kindName = kindOfSlot(slot);
  let lifeMs = null;
  if (slot % 10 === 5 || slot % 20 === 18) {
    const left = endAt - Date.now();
    if (left < 4000) return; // too close to the end: the slot stays empty
    lifeMs = CHURN_MIN_MS + random() * (CHURN_MAX_MS - CHURN_MIN_MS);
    if (lifeMs > left - 2000) lifeMs = null; // lives to the global end
  }
  new Client(slot, kindName, lifeMs).start();
}

// ---- checks -----------------------------------------------------------------------------------

function checkSession(c, srv, add) {
  const life = (c.endedAt || Date.now()) - (c.openedAt || Date.now());
  for (const e of c.errors) add(`client: ${e}`);
  if (!c.sid) return; // never opened: already reported
  if (!srv) {
    add("the server never reported this session");
    return;
  }
  if (srv.n_errors > 0) add(`server: ${srv.n_errors} error(s): ${srv.errors}`);
  if (!srv.ended) add("the server never got !END");
  if (srv.mode !== c.mode) add(`server mode ${srv.mode}, client mode ${c.mode}`);
  if (srv.recv !== c.sent) add(`client sent ${c.sent}, server received ${srv.recv}`);
  if (srv.end_n !== c.sent) add(`client sent ${c.sent}, !END said ${srv.end_n}`);
  if (c.acked !== c.sent) add(`client sent ${c.sent} but only ${c.acked} flush callbacks ran`);
  const recv = c.recvNext - 1;
  if (srv.flushed + srv.unflushed !== srv.sent) {
    add(`server sent ${srv.sent}: flushed ${srv.flushed} + unflushed ${srv.unflushed}`);
  }
  if (recv !== srv.flushed) {
    add(`server flushed ${srv.flushed} (TRUE), client received ${recv}` +
      ` (server sent ${srv.sent}, unflushed ${srv.unflushed})`);
  }
  if (c.mode === "stall") {
    if (srv.unflushed !== STALL_EXTRA) {
      add(`stall: ${srv.unflushed} flush callbacks said FALSE, expected exactly ${STALL_EXTRA}` +
        " (the messages queued after the client stopped polling)");
    }
  } else {
    if (srv.unflushed !== 0) add(`${c.mode}: ${srv.unflushed} messages reported undeliverable`);
    if (c.finN !== srv.sent) add(`!FIN said ${c.finN}, server sent ${srv.sent}`);
  }
  if (srv.reason !== "forced close") add(`server-side close reason ${srv.reason} (${srv.description})`);
  if (srv.version !== c.kind.version) add(`server saw protocol v${srv.version}`);
  if (srv.start !== c.kind.transports[0]) add(`server saw it start on ${srv.start}`);
  const multi = c.kind.transports.length > 1;
  if (multi) {
    // The upgrade normally takes milliseconds; allow short-lived sessions on a busy machine.
    if (life >= 5000 && !(srv.upgraded && srv.transport === "websocket")) {
      add(`upgrade session still on ${srv.transport} after ${life} ms`);
    }
    if (srv.upgraded !== c.upgrades.includes("websocket") || c.upgrades.length > 1) {
      add(`upgrades: server ${srv.upgraded}, client ${c.upgrades.join(",") || "none"}`);
    }
  } else {
    if (srv.upgraded || c.upgrades.length) add("upgraded although single-transport");
    if (srv.transport !== c.kind.transports[0]) add(`ended on ${srv.transport}`);
  }
  const want = Math.floor(life / opts.pingInterval) - 2;
  if (want > 0 && srv.heartbeats < want) {
    add(`${srv.heartbeats} heartbeats in ${life} ms (ping interval ${opts.pingInterval}, want >= ${want})`);
  }
  if (want > 0 && c.heartbeats < want) add(`client saw ${c.heartbeats} heartbeats in ${life} ms`);
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const port = await portPromise;
  url = `http://127.0.0.1:${port}/engine.io/`;
  const cpu0 = process.cpuUsage();
  const start = Date.now();
  endAt = start + opts.seconds * 1000;
  log(`server on port ${port}, seed ${opts.seed}`);

  // Open the sessions over the first few seconds (at most ~100 per second).
  const rampMs = Math.min(5000, opts.seconds * 100);
  for (let slot = 0; slot < opts.sessions; slot++) {
    setTimeout(() => startSlot(slot), (slot * rampMs) / opts.sessions);
  }

  let peak = { rssKiB: 0, threads: 0 };
  const sampler = setInterval(() => {
    const st = common.procStats(server.pid);
    if (st && st.rssKiB > peak.rssKiB) peak.rssKiB = st.rssKiB;
    if (st && st.threads > peak.threads) peak.threads = st.threads;
  }, 2000);

  await until(() => Date.now() >= endAt, opts.seconds * 1000 + 1000);
  globalEnd = true;
  log(`ending: ${active} active sessions`);
  // Every open session ends now; ones still connecting end as soon as they open.
  for (const c of [...live]) c.end();
  const clientsDone = await until(() => active === 0, 45000);
  if (!clientsDone) problems.push(`${active} client sessions did not finish`);
  const clientCpu = process.cpuUsage(cpu0);
  const elapsed = (Date.now() - start) / 1000;

  // The server reports a session at its ::close (stall: ~2.3 s after the pause).
  const sids = results.filter((c) => c.sid).map((c) => c.sid);
  await until(() => sids.every((sid) => serverRecords.has(sid)), 30000);
  clearInterval(sampler);
  const srvStats = common.procStats(server.pid);

  server.kill("SIGTERM");
  const exited = await Promise.race([serverExited.then(() => true),
    new Promise((r) => setTimeout(() => r(false), 20000))]);
  if (!exited) {
    problems.push("the server did not exit within 20 s of SIGTERM");
    server.kill("SIGKILL");
  } else if (serverExit.code !== 0) {
    problems.push(`the server exited with ${serverExit.code ?? serverExit.signal}`);
  }
  if (serverStderr.trim()) problems.push(`server stderr:\n${serverStderr.trim().split("\n").slice(0, 20).join("\n")}`);

  // Compare.
  const perSession = [];
  const known = new Set();
  const totals = { c2s: 0, s2c: 0, unflushed: 0, heartbeats: 0, upgrades: 0, byMode: {}, byKind: {} };
  for (const c of results) {
    const srv = c.sid ? serverRecords.get(c.sid) : null;
    if (c.sid) known.add(c.sid);
    const list = [];
    checkSession(c, srv, (m) => list.push(m));
    if (list.length) perSession.push(`${c.kindName} ${c.sid || "(no sid)"} mode=${c.mode}: ${list.join("; ")}`);
    totals.c2s += c.sent;
    if (srv) {
      totals.s2c += srv.flushed;
      totals.unflushed += srv.unflushed;
      totals.heartbeats += srv.heartbeats;
      totals.upgrades += srv.upgraded ? 1 : 0;
    }
    totals.byMode[c.mode] = (totals.byMode[c.mode] || 0) + 1;
    totals.byKind[c.kindName] = (totals.byKind[c.kindName] || 0) + 1;
  }
  for (const [sid, rec] of serverRecords) {
    if (!known.has(sid)) problems.push(`server session ${sid} (v${rec.version} ${rec.start}) that no client knows: ${JSON.stringify(rec)}`);
  }
  if (serverBye !== null && serverBye !== serverRecords.size) {
    problems.push(`server counted ${serverBye} sessions, reported ${serverRecords.size}`);
  }
  if (!totals.byMode.stall) problems.push("no session ended in stall mode (close before flush not exercised)");

  const cpuS = (clientCpu.user + clientCpu.system) / 1e6;
  const summary = `${results.length} sessions (${Object.entries(totals.byKind).map(([k, v]) => `${k} ${v}`).join(", ")}), ` +
    `${totals.c2s} client->server and ${totals.s2c} server->client messages, ` +
    `${totals.unflushed} reported undeliverable (stall), ${totals.upgrades} upgrades, ` +
    `${totals.heartbeats} heartbeats, modes ${JSON.stringify(totals.byMode)}, ` +
    `loop-threads ${opts.loopThreads}, ${elapsed.toFixed(1)} s, client CPU ${cpuS.toFixed(1)} s ` +
    `(${(100 * cpuS / elapsed).toFixed(0)}% of a core), server CPU ${srvStats ? srvStats.cpuSeconds.toFixed(1) : "?"} s, ` +
    `server peak RSS ${(peak.rssKiB / 1024).toFixed(1)} MiB, ${peak.threads} threads, seed ${opts.seed}`;
  if (problems.length || perSession.length) {
    for (const p of problems) process.stdout.write(`PROBLEM: ${p}\n`);
    for (const p of perSession.slice(0, 60)) process.stdout.write(`SESSION: ${p}\n`);
    if (perSession.length > 60) process.stdout.write(`… and ${perSession.length - 60} more sessions with problems\n`);
    process.stdout.write(`noloss: FAILED (${problems.length} global problems, ${perSession.length} sessions with ` +
      `discrepancies; ${summary})\n`);
    process.exit(1);
  }
  process.stdout.write(`noloss: OK (${summary})\n`);
  process.exit(0);
}

const hardLimit = setTimeout(() => {
  process.stdout.write(`noloss: FAILED (global time limit: ${active} sessions active)\n`);
  server.kill("SIGKILL");
  process.exit(1);
}, (opts.seconds + 150) * 1000);
hardLimit.unref();

process.on("uncaughtException", (e) => {
  process.stdout.write(`noloss: FAILED (uncaught exception: ${e && e.stack ? e.stack : e})\n`);
  server.kill("SIGKILL");
  process.exit(1);
});

main().catch((e) => {
  process.stdout.write(`noloss: FAILED (${e && e.stack ? e.stack : e})\n`);
  server.kill("SIGKILL");
  process.exit(1);
});
