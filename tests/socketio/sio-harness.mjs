// Shared by the Node Socket.IO tests (interop-sio-client.mjs, protocol-conformance.mjs): which
// echo server to run, starting it on a free port, and a small TAP runner.
//
// The server under test:
//   SIO_SERVER=reference   node tests/interop/reference-sio-echo.js (npm socket.io 4.8)
//   SOCKETIO_ECHO=PATH     our socketio-echo tool (used when SIO_SERVER is unset or "echo")
//   SIO_LOOP_THREADS=N     adds `--loop-threads N` (the reference accepts and ignores it)
// Neither set: the test fails (never skips). The server is started with `--port 0` plus the
// test's own flags; its first stdout line must be `listening on http://HOST:PORT/PATH`.
//
// SPDX-License-Identifier: MIT

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const INTEROP_DIR = path.join(HERE, "..", "interop");
const STARTUP_MS = 15000;
const SHUTDOWN_MS = 10000;

// require() resolving from tests/interop/node_modules, failing clearly when it is absent.
const interopRequire = createRequire(path.join(INTEROP_DIR, "package.json"));
export function requireDep(name) {
  try {
    return interopRequire(name);
  } catch (e) {
    if (e && e.code === "MODULE_NOT_FOUND") {
      process.stdout.write(`Bail out! node_modules missing (${name}): run npm ci --prefix tests/interop\n`);
      process.exit(1);
    }
    throw e;
  }
}

export function serverCommand() {
  const which = process.env.SIO_SERVER || "echo";
  let cmd;
  let args;
  if (which === "reference") {
    cmd = process.execPath;
    args = [path.join(INTEROP_DIR, "reference-sio-echo.js")];
  } else if (which === "echo") {
    if (!process.env.SOCKETIO_ECHO) {
      throw new Error("set SOCKETIO_ECHO=PATH/socketio-echo, or SIO_SERVER=reference");
    }
    cmd = process.env.SOCKETIO_ECHO;
    args = [];
  } else {
    throw new Error(`SIO_SERVER: "reference" or "echo", not "${which}"`);
  }
  if (process.env.SIO_LOOP_THREADS) args.push("--loop-threads", process.env.SIO_LOOP_THREADS);
  return { cmd, args, label: which === "reference" ? "reference (npm socket.io)" : cmd };
}

// Starts the server with `--port 0` and `flags`. Resolves with
//   { url: "http://HOST:PORT/socket.io/", origin: "http://HOST:PORT", path, host, port, stop() }
// stop() sends SIGTERM and resolves with the exit status (or "signal SIG" / "timeout").
export function startServer(flags = []) {
  const { cmd, args, label } = serverCommand();
  const all = [...args, "--port", "0", ...flags];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, all, { stdio: ["ignore", "pipe", "pipe"] });
    // However this process ends (a failure, a bail-out, a closed stdout), the server goes too.
    process.on("exit", () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    let buf = "";
    let started = false;
    const exited = new Promise((res) => {
      child.on("exit", (code, sig) => res(sig ? `signal ${sig}` : code));
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`server (${label}) printed no listening line within ${STARTUP_MS} ms`));
    }, STARTUP_MS);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${cmd}: ${e.message}`));
    });
    child.stderr.on("data", (d) => {
      for (const l of d.toString().split("\n")) if (l) process.stderr.write(`[server] ${l}\n`);
    });
    child.stdout.on("data", (d) => {
      if (started) {
        for (const l of d.toString().split("\n")) if (l) process.stderr.write(`[server] ${l}\n`);
        return;
      }
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      started = true;
      clearTimeout(timer);
      const m = /^listening on (http:\/\/(\[[^\]]+\]|[^:/]+):(\d+))(\/\S*)$/.exec(line);
      if (!m) {
        child.kill("SIGKILL");
        reject(new Error(`unexpected first line from the server: ${JSON.stringify(line)}`));
        return;
      }
      resolve({
        url: m[1] + m[4],
        origin: m[1],
        host: m[2],
        port: Number(m[3]),
        path: m[4],
        child,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          const t = new Promise((res) => setTimeout(() => res("timeout"), SHUTDOWN_MS).unref());
          const r = await Promise.race([exited, t]);
          if (r === "timeout") child.kill("SIGKILL");
          return r;
        },
      });
    });
    child.on("exit", (code, sig) => {
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`server exited (${sig || code}) before printing its listening line`));
      }
    });
  });
}

// TAP output: `ok N - name` / `not ok N - name` with the reason as a `#` comment, a per-check
// timeout, and the plan at the end. finish() exits 1 if anything failed.
export class Tap {
  constructor() {
    this.n = 0;
    this.failed = 0;
    process.stdout.write("TAP version 13\n");
  }

  comment(text) {
    for (const l of String(text).split("\n")) process.stdout.write(`# ${l}\n`);
  }

  async check(name, fn, timeoutMs = 10000) {
    const id = ++this.n;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(fn), timeout]);
      process.stdout.write(`ok ${id} - ${name}\n`);
      return true;
    } catch (e) {
      this.failed++;
      process.stdout.write(`not ok ${id} - ${name}\n`);
      this.comment(e && e.stack ? e.stack : String(e));
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  finish() {
    process.stdout.write(`1..${this.n}\n`);
    this.comment(`${this.n - this.failed} passed, ${this.failed} failed`);
    // Open sockets of failed checks must not keep the process alive.
    process.exit(this.failed ? 1 : 0);
  }
}

// ---- values -----------------------------------------------------------------------------------

export function isBinary(x) {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x);
}

export function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new Error("not binary");
}

function show(x) {
  if (isBinary(x)) {
    const b = toBuffer(x);
    return `<binary ${b.length} bytes ${b.subarray(0, 12).toString("hex")}${b.length > 12 ? "…" : ""}>`;
  }
  if (typeof x === "string" && x.length > 60) return JSON.stringify(x.slice(0, 60)) + `…(${x.length})`;
  try {
    const s = JSON.stringify(x);
    return s && s.length > 120 ? s.slice(0, 120) + "…" : String(s);
  } catch (_) {
    return String(x);
  }
}

// Null when `got` equals `want` (binary of any kind compared by bytes; plain objects by own
// keys in any order; arrays element by element), else where and how they differ.
export function diff(want, got, where = "$") {
  if (isBinary(want) || isBinary(got)) {
    if (!isBinary(want) || !isBinary(got)) return `${where}: want ${show(want)}, got ${show(got)}`;
    return toBuffer(want).equals(toBuffer(got)) ? null : `${where}: want ${show(want)}, got ${show(got)}`;
  }
  if (Array.isArray(want) || Array.isArray(got)) {
    if (!Array.isArray(want) || !Array.isArray(got)) return `${where}: want ${show(want)}, got ${show(got)}`;
    if (want.length !== got.length) return `${where}: want ${want.length} elements, got ${got.length}: ${show(got)}`;
    for (let i = 0; i < want.length; i++) {
      const d = diff(want[i], got[i], `${where}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (want !== null && typeof want === "object") {
    if (got === null || typeof got !== "object") return `${where}: want ${show(want)}, got ${show(got)}`;
    const wk = Object.keys(want).sort();
    const gk = Object.keys(got).sort();
    if (wk.join("\0") !== gk.join("\0")) return `${where}: want keys ${show(wk)}, got ${show(gk)}`;
    for (const k of wk) {
      const d = diff(want[k], got[k], `${where}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return Object.is(want, got) || want === got ? null : `${where}: want ${show(want)}, got ${show(got)}`;
}

export function assertEqual(want, got, what) {
  const d = diff(want, got);
  if (d) throw new Error(`${what}: ${d}`);
}

export function assert(cond, what) {
  if (!cond) throw new Error(what);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves with the arguments of the next `event` on `emitter` (socket.io-client style .once).
export function once(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}
