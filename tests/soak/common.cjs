// Pieces shared by the no-loss test (noloss.mjs) and the soak client (soak-client.mjs): loading
// the real clients from tests/interop/node_modules, the numbered-message format (identical to
// noloss-server.c), and creating / aborting client sockets of every kind.
"use strict";

const path = require("path");
const http = require("http");
const net = require("net");
const fs = require("fs");

const MODULES = path.join(__dirname, "..", "interop", "node_modules");

function die(msg) {
  process.stderr.write(`FAIL: ${msg}\n`);
  process.exit(1);
}

function requireDep(name) {
  try {
    return require(path.join(MODULES, name));
  } catch (e) {
    if (e && e.code === "MODULE_NOT_FOUND") {
      die(`node_modules missing (${name}): run npm ci --prefix tests/interop`);
    }
    throw e;
  }
}

// ---- numbered messages (same format as noloss-server.c) ---------------------------------------

const FILLER_UNITS = "abcdefghijklmnopqrstuvwxyz".split("").concat(["é", "€", "😀"]);

function makeText(tag, n) {
  let s = `${tag}${n}|`;
  const len = n % 23;
  for (let i = 0; i < len; i++) s += FILLER_UNITS[(n + i) % FILLER_UNITS.length];
  return s;
}

function makeBinary(n) {
  const len = 4 + (n % 41);
  const b = Buffer.alloc(len);
  b.writeUInt32BE(n >>> 0, 0);
  for (let i = 4; i < len; i++) b[i] = (n * 31 + (i - 4)) & 0xff;
  return b;
}

function isBinaryNumber(n) {
  return n % 5 === 0;
}

function makeNumbered(tag, n) {
  return isBinaryNumber(n) ? makeBinary(n) : makeText(tag, n);
}

function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return null;
}

function preview(x) {
  if (typeof x === "string") return JSON.stringify(x.length > 50 ? x.slice(0, 50) + "…" : x);
  const b = toBuffer(x);
  if (b) return `binary(${b.length}) ${b.subarray(0, 12).toString("hex")}`;
  return `${typeof x} ${String(x)}`;
}

// Parses a numbered message from the peer tagged `tag`; returns {n} or {error}.
function parseNumbered(tag, msg) {
  if (typeof msg === "string") {
    const bar = msg.indexOf("|");
    if (msg[0] !== tag || bar < 2) return { error: `malformed message ${preview(msg)}` };
    const n = Number(msg.slice(1, bar));
    if (!Number.isSafeInteger(n) || n < 1) return { error: `bad number in ${preview(msg)}` };
    if (isBinaryNumber(n) || msg !== makeText(tag, n)) {
      return { error: `#${n} content differs: ${preview(msg)}` };
    }
    return { n };
  }
  const b = toBuffer(msg);
  if (!b) return { error: `unexpected message ${preview(msg)}` };
  if (b.length < 4) return { error: `binary message of ${b.length} bytes` };
  const n = b.readUInt32BE(0);
  if (!isBinaryNumber(n) || !b.equals(makeBinary(n))) {
    return { error: `binary #${n} content differs: ${preview(b)}` };
  }
  return { n };
}

// ---- client sockets ---------------------------------------------------------------------------

let eio4 = null;
let eio3 = null;

// kind: {version: 3|4, transports: ["polling","websocket"] | ["websocket"] | ["polling"]}.
// Every socket gets its own keep-alive agent (HTTP requests and the WebSocket handshake go
// through it), so that an abrupt end can tear down exactly its connections.
function openSocket(url, kind) {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => {
    if (!agent._soakDead) return create(options, callback);
    // After an abrupt end, no new connection: the request fails at once.
    const s = new net.Socket();
    process.nextTick(() => s.destroy(new Error("connection refused by the test: socket aborted")));
    return s;
  };
  let socket;
  if (kind.version === 4) {
    if (!eio4) eio4 = requireDep("engine.io-client");
    const impls = kind.transports.map((t) => (t === "websocket" ? eio4.NodeWebSocket : eio4.NodeXHR));
    socket = new eio4.Socket(`${u.protocol}//${u.host}`, {
      path: u.pathname,
      transports: impls,
      upgrade: kind.transports.length > 1,
      agent,
    });
  } else {
    if (!eio3) eio3 = requireDep("engine.io-client-v3");
    socket = eio3(`${u.protocol}//${u.host}`, {
      path: u.pathname,
      transports: kind.transports,
      upgrade: kind.transports.length > 1,
      agent,
    });
  }
  socket._soakAgent = agent;
  return socket;
}

// Ends a socket without a close packet: its HTTP connections (a waiting poll included) are
// destroyed, no new one can be made, and its WebSocket is terminated (no close frame). The
// client then closes itself with a transport error; the caller should ignore that. An upgrade
// probe in flight is closed by the client when the socket closes (or the server drops it at
// its upgrade timeout).
function abortSocket(socket) {
  const agent = socket._soakAgent;
  agent._soakDead = true;
  const t = socket.transport;
  if (t && t.ws && typeof t.ws.terminate === "function") t.ws.terminate();
  agent.destroy();
}

// The socket's agent holds idle keep-alive connections: free them once the socket is over.
function releaseSocket(socket) {
  if (socket && socket._soakAgent) {
    socket._soakAgent._soakDead = true;
    socket._soakAgent.destroy();
  }
}

// ---- process figures --------------------------------------------------------------------------

const CLK_TCK = 100;

// {rssKiB, cpuSeconds} of a process, from /proc; null if it is gone.
function procStats(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    const threads = Number(fields[17]);
    return { rssKiB: m ? Number(m[1]) : 0, cpuSeconds: ticks / CLK_TCK, threads };
  } catch (e) {
    return null;
  }
}

function errorText(e) {
  if (!e) return String(e);
  if (e instanceof Error) return e.message;
  if (typeof e === "string") return e;
  if (e.description !== undefined) {
    const d = e.description;
    return `${e.message || ""} ${d && d.message ? d.message : d}`;
  }
  try { return JSON.stringify(e); } catch (_) { return String(e); }
}

module.exports = {
  die,
  requireDep,
  makeText,
  makeBinary,
  makeNumbered,
  isBinaryNumber,
  parseNumbered,
  preview,
  toBuffer,
  openSocket,
  abortSocket,
  releaseSocket,
  procStats,
  errorText,
};
