// What the Node tests on a real Redis share (interop-sio-redis.mjs,
// interop-sio-redis-emitter.mjs, interop-sio-nginx.mjs, interop-sio-chat-redis.mjs): finding
// and starting Debian's redis-server on a loopback port it picks, socketio-echo / npm socket.io
// nodes on it (sio-harness.mjs's startServer), and socket.io-client clients that record what
// they receive.
//
// SPDX-License-Identifier: MIT

import { spawn, execFileSync } from "node:child_process";
import net from "node:net";
import { startServer, requireDep, assertEqual, sleep } from "./sio-harness.mjs";

// The path of `cmd` (also looked for in /usr/sbin and /sbin, where Debian puts nginx), or null.
export function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd} || true`],
      { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).toString().trim() || null;
  } catch (_) {
    return null;
  }
}

export const REDIS_SERVER = process.env.REDIS_SERVER || which("redis-server");

// Without redis-server: the whole TAP run is skipped (`1..0 # SKIP`), the process exits.
export function skipWithoutRedis() {
  if (!REDIS_SERVER) {
    process.stdout.write("TAP version 13\n1..0 # SKIP redis-server not installed\n");
    process.exit(0);
  }
}

// A loopback port free when called: a server bound to 127.0.0.1 port 0, then closed
// (redis-server and nginx cannot bind port 0).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// redis-server on 127.0.0.1:`port` (a free one if not given) without persistence, ready to
// accept connections (its own stdout says so: a port that merely accepts could be another test
// process's Redis); SIGKILLed when this process exits. A free port can be taken by another
// process before redis-server binds it: then another one (only when `port` was not given).
export async function startRedis(port) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startRedisOn(port ?? await freePort());
    } catch (e) {
      if (port !== undefined || attempt >= 19) throw e;
    }
  }
}

async function startRedisOn(port) {
  const child = spawn(REDIS_SERVER, [
    "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--daemonize", "no",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  process.on("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error("redis-server not ready within 10 s"));
    }, 10000);
    child.stdout.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}): ${buf.slice(-500)}`));
    });
  });
  return { port, url: `redis://127.0.0.1:${port}`, child };
}

// A node on `redisUrl`: `kind` is SIO_SERVER ("echo": socketio-echo, "reference": npm
// socket.io); startServer reads it at each call.
export async function startNode(kind, redisUrl) {
  process.env.SIO_SERVER = kind;
  return startServer(["--redis", redisUrl]);
}

// Stops the nodes startNode() started (the values of `nodes`), one by one, saying how each ended.
export async function stopNodes(tap, nodes) {
  for (const node of Object.values(nodes)) {
    const r = await node.stop();
    tap.comment(`node stopped: ${r}`);
  }
}

// A socket.io-client on `node` (WebSocket only, no reconnection) that records the arguments of
// each event of `events` in `socket.got[event]` and its disconnect reason; `setup(socket)`, if
// given, adds handlers before it connects.
export function connect(node, label, events, setup) {
  const { io: ioClient } = requireDep("socket.io-client");

  return new Promise((resolve, reject) => {
    const socket = ioClient(node.origin, {
      path: node.path, transports: ["websocket"], forceNew: true, reconnection: false,
    });
    socket.label = label;
    socket.got = Object.fromEntries(events.map((e) => [e, []]));
    for (const ev of events) socket.on(ev, (...args) => socket.got[ev].push(args));
    if (setup) setup(socket);
    socket.disconnectReason = null;
    socket.on("disconnect", (reason) => { socket.disconnectReason = reason; });
    const timer = setTimeout(() => reject(new Error(`${label}: no connect within 10 s`)), 10000);
    socket.on("connect", () => { clearTimeout(timer); resolve(socket); });
    socket.on("connect_error", (e) => { clearTimeout(timer); reject(e); });
  });
}

// Waits until `pred()` (may be async) holds, polling, failing after `ms`; `what` (a string or
// a function giving one) says what was waited for.
export async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(20);
  }
}

// How many times `socket` got `ev` with first argument `tag`.
export const count = (socket, ev, tag) => socket.got[ev].filter((a) => a[0] === tag).length;

// Every socket of `want` gets `ev` with `tag` once, and no socket outside it (of `all`) gets
// it; a duplicate would come within the quiet period after the last expected arrival.
export async function expectOnce(all, want, ev, tag) {
  await until(() => want.every((s) => count(s, ev, tag) >= 1), 5000,
    () => `${ev} ${tag} at ${want.filter((s) => count(s, ev, tag) === 0)
      .map((s) => `${s.label}${s.connected ? "" : ` (disconnected: ${s.disconnectReason})`}`).join(",")}`);
  await sleep(300);
  for (const s of all) {
    const n = count(s, ev, tag);
    const expected = want.includes(s) ? 1 : 0;
    assertEqual(expected, n, `${s.label}: ${ev} ${tag} received ${n} times`);
  }
}

// Emits `ev` from `socket` and resolves when the server acknowledges it.
export const emitAck = (socket, ev, ...args) =>
  new Promise((resolve) => socket.emit(ev, ...args, () => resolve()));

// This process as a client-less Node node on `redisUrl`: a socket.io Server (`driver`) with
// the npm adapter, whose publisher `pub` also answers PUBSUB queries. Errors of the Redis
// clients are ignored (they reconnect on their own, e.g. through a Redis restart).
export async function startDriver(redisUrl, requestsTimeout) {
  const { Server } = requireDep("socket.io");
  const { createClient } = requireDep("redis");
  const { createAdapter } = requireDep("@socket.io/redis-adapter");
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", () => {});
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const driver = new Server();
  driver.adapter(createAdapter(pub, sub, { requestsTimeout }));
  return { driver, pub, sub };
}

// Closes what startDriver() opened.
export async function stopDriver({ driver, pub, sub }) {
  driver.of("/").adapter.close();
  await Promise.all([pub.quit(), sub.quit()]).catch(() => {});
}
