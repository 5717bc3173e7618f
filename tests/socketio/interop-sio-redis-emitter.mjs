#!/usr/bin/env node
// The emitter side of a mixed Socket.IO cluster on one real Redis (issue 17, deliverable 2).
// Nodes: a socketio-echo node (SOCKETIO_ECHO=PATH, `--redis`, SocketIORedisAdapter), an npm
// socket.io 4.8 node with @socket.io/redis-adapter 8.3 (tests/interop/reference-sio-echo.js
// --redis), and this process as a client-less Node node (the driver: socket.io Server with the
// npm adapter). Two socket.io-client 4.8 clients on each serving node. Emitters, serving no
// clients: ours (SIO_EMITTER_TOOL=PATH/sio-emitter-tool, SocketIORedisEmitter driven by JSON
// lines) and npm @socket.io/redis-emitter 5.1. TAP on stdout.
//
// Checks, for each emitter (ours, then npm's into the same nodes):
//   * emit() to the namespace reaches all four clients exactly once, the arguments intact
//     (text, then binaries nested at any depth: msgpack bin on the wire);
//   * to(room) reaches the room's members only (one client per node); to(a).to(b) both rooms;
//     except(room) everybody else;
//   * socketsJoin(room) puts every client of both nodes in the room (the driver's
//     fetchSockets() through REMOTE_FETCH sees them); socketsLeave(room) takes them out;
//   * serverSideEmit(name, ...args) reaches the driver's io.on(name) (ours only: npm's
//     emitter also has it, the Node side is what is tested);
//   * disconnectSockets() on a room disconnects its members on both nodes
//     ("io server disconnect"), the others stay.
// And serverSideEmit with acks between the adapters: from the driver (serverSideEmitWithAck: the
// C node and the Node node answer), from the C node (SocketIORedisAdapter's
// server_side_emit_async, through socketio-echo's `server-side-emit` event: the Node nodes
// answer) and from the Node node (the C node answers: SocketIORedisAdapter::server-side-event).
// Starts `redis-server` (Debian's) on a loopback port it picks; skips (1..0 # SKIP) without it.
//
// SPDX-License-Identifier: MIT

import { spawn } from "node:child_process";
import readline from "node:readline";
import { Tap, requireDep, assert, assertEqual, sleep } from "./sio-harness.mjs";
import {
  skipWithoutRedis, startRedis, startNode, connect as connectClient, until, expectOnce, emitAck,
  startDriver, stopDriver, stopNodes,
} from "./sio-redis-harness.mjs";

skipWithoutRedis();
for (const v of ["SOCKETIO_ECHO", "SIO_EMITTER_TOOL"]) {
  if (!process.env[v]) {
    process.stdout.write(`Bail out! set ${v}\n`);
    process.exit(1);
  }
}

const { createClient } = requireDep("redis");
const { Emitter } = requireDep("@socket.io/redis-emitter");

const EVENTS = ["news", "bin", "room"];

const connect = (node, label) => connectClient(node, label, EVENTS);

// Our emitter: one sio-emitter-tool process, one JSON command per line, `ok` or `error ...`.
function startTool(url) {
  const child = spawn(process.env.SIO_EMITTER_TOOL, [url], { stdio: ["pipe", "pipe", "inherit"] });
  process.on("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = [];
  lines.on("line", (l) => waiting.shift()?.(l));
  return {
    child,
    run(cmd) {
      return new Promise((resolve, reject) => {
        waiting.push((l) => (l === "ok" ? resolve() : reject(new Error(`sio-emitter-tool: ${l}`))));
        child.stdin.write(JSON.stringify(cmd) + "\n");
      });
    },
  };
}

// The two emitters behind one interface: ops on (to, except).
function cEmitter(tool) {
  const b = (to = [], except = []) => ({
    emit: (event, ...args) => {
      const bins = [];
      const prep = (v) => {
        if (Buffer.isBuffer(v)) {
          bins.push(v.toString("hex"));
          return { _placeholder: true, num: bins.length - 1 };
        }
        if (Array.isArray(v)) return v.map(prep);
        if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, prep(x)]));
        return v;
      };
      const jargs = args.map(prep);
      return tool.run({ op: "emit", to, except, event, args: jargs, bins });
    },
    socketsJoin: (room) => tool.run({ op: "join", to, except, rooms: [room] }),
    socketsLeave: (room) => tool.run({ op: "leave", to, except, rooms: [room] }),
    disconnectSockets: (close) => tool.run({ op: "disconnect", to, except, close: !!close }),
    serverSideEmit: (...args) => tool.run({ op: "ssemit", args }),
  });
  return b;
}

function npmEmitter(emitter) {
  return (to = [], except = []) => {
    let op = emitter;
    for (const r of to) op = op.to(r);
    for (const r of except) op = op.except(r);
    return {
      emit: async (event, ...args) => { op.emit(event, ...args); },
      socketsJoin: async (room) => { op.socketsJoin(room); },
      socketsLeave: async (room) => { op.socketsLeave(room); },
      disconnectSockets: async (close) => { op.disconnectSockets(close); },
      serverSideEmit: async (...args) => { emitter.serverSideEmit(...args); },
    };
  };
}

const tap = new Tap();
const redis = await startRedis();
tap.comment(`redis-server on ${redis.url}`);
const nodes = {
  c: await startNode("echo", redis.url),
  js: await startNode("reference", redis.url),
};
const cluster = await startDriver(redis.url, 3000);
const { driver, pub } = cluster;
const serverSide = [];
driver.on("ss-event", (...args) => serverSide.push(args));

const tool = startTool(redis.url);
const emitterClient = createClient({ url: redis.url });
await emitterClient.connect();
const emitters = { c: cEmitter(tool), npm: npmEmitter(new Emitter(emitterClient)) };

await tap.check("every node subscribed: PUBSUB NUMSUB of socket.io-request#/# is 3", async () => {
  let n = 0;
  await until(async () => {
    const r = await pub.pubSubNumSub("socket.io-request#/#");
    n = Number(r["socket.io-request#/#"] ?? 0);
    return n >= 3;
  }, 10000, () => `NUMSUB ${n}`);
}, 15000);

// serverSideEmit with acks between the adapters (C and Node): every node answers "ss-echo"
// with {node, args} (socketio-echo, reference-sio-echo.js, and this driver).
driver.on("ss-echo", (...args) => {
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
  if (cb) cb({ node: "driver", args });
});
const byNode = (answers) => [...answers].sort((x, y) => (x.node < y.node ? -1 : 1));

await tap.check("serverSideEmitWithAck from a Node node: the C node and the Node node answer", async () => {
  const answers = await driver.serverSideEmitWithAck("ss-echo", 5, { x: [1, "é"] });
  assertEqual(JSON.stringify([{ node: "c", args: [5, { x: [1, "é"] }] },
                              { node: "reference", args: [5, { x: [1, "é"] }] }]),
              JSON.stringify(byNode(answers)), "answers");
});

for (const from of ["c", "js"]) {
  await tap.check(`serverSideEmit with ack from the ${from} node: every other node answers once`, async () => {
    const client = await connect(nodes[from], `ss-${from}`);
    try {
      const [err, answers] = await new Promise((resolve) =>
        client.emit("server-side-emit", "ss-echo", 7, null, (...r) => resolve(r)));
      assertEqual(null, err, "error");
      const want = from === "c"
        ? [{ node: "driver", args: [7, null] }, { node: "reference", args: [7, null] }]
        : [{ node: "c", args: [7, null] }, { node: "driver", args: [7, null] }];
      assertEqual(JSON.stringify(want), JSON.stringify(byNode(answers)), "answers");
    } finally {
      client.close();
    }
  });
}

const fetchIds = async (room) =>
  (await driver.in(room).fetchSockets()).map((s) => s.id).sort();

for (const [name, make] of Object.entries(emitters)) {
  const clients = [];
  for (const node of Object.keys(nodes)) {
    for (const i of [1, 2]) clients.push(await connect(nodes[node], `${name}:${node}-${i}`));
  }
  const members = [clients[0], clients[2]];   // one per node
  const others = [clients[1], clients[3]];
  for (const c of members) await emitAck(c, "join", "r");
  for (const c of others) await emitAck(c, "join", "s");

  await tap.check(`${name} emitter: emit() reaches all four clients once, arguments intact`, async () => {
    const tag = `text-${name}`;
    const args = [{ n: 1, s: "é\u2028" }, [1.5, null, true], -7];
    await make().emit("news", tag, ...args);
    await expectOnce(clients, clients, "news", tag);
    for (const c of clients) {
      assertEqual(JSON.stringify([tag, ...args]), JSON.stringify(c.got.news.find((a) => a[0] === tag)),
        `${c.label}: arguments`);
    }
  });

  await tap.check(`${name} emitter: binaries at any depth reach all four clients intact`, async () => {
    const tag = `bin-${name}`;
    const bytes = Buffer.from([0, 1, 2, 255, 254, 128]);
    await make().emit("bin", tag, bytes, { nested: [bytes.subarray(2), Buffer.alloc(0)] });
    await expectOnce(clients, clients, "bin", tag);
    for (const c of clients) {
      const [, a, b] = c.got.bin.find((x) => x[0] === tag);
      assert(Buffer.from(a).equals(bytes), `${c.label}: first binary ${Buffer.from(a).toString("hex")}`);
      assert(Buffer.from(b.nested[0]).equals(bytes.subarray(2)), `${c.label}: nested binary`);
      assertEqual(0, Buffer.from(b.nested[1]).length, `${c.label}: empty binary`);
    }
  });

  await tap.check(`${name} emitter: to(room), to(a).to(b), except(room)`, async () => {
    await make(["r"]).emit("room", `r-${name}`);
    await expectOnce(clients, members, "room", `r-${name}`);
    await make(["r", "s"]).emit("room", `rs-${name}`);
    await expectOnce(clients, clients, "room", `rs-${name}`);
    await make([], ["r"]).emit("room", `not-r-${name}`);
    await expectOnce(clients, others, "room", `not-r-${name}`);
    await make(["r", "s"], ["s"]).emit("room", `rs-not-s-${name}`);
    await expectOnce(clients, members, "room", `rs-not-s-${name}`);
  });

  await tap.check(`${name} emitter: socketsJoin/socketsLeave on both nodes`, async () => {
    const room = `j-${name}`;
    const all = clients.map((c) => c.id).sort();
    await make().socketsJoin(room);
    let ids = [];
    await until(async () => (ids = await fetchIds(room)).length === 4, 5000, () => `${room}: ${ids}`);
    assertEqual(JSON.stringify(all), JSON.stringify(ids), "every client in the room");
    await make(["s"]).socketsLeave(room);
    await until(async () => (ids = await fetchIds(room)).length === 2, 5000, () => `${room}: ${ids}`);
    assertEqual(JSON.stringify(members.map((c) => c.id).sort()), JSON.stringify(ids), "the r members stay");
    await make([room]).emit("room", `after-leave-${name}`);
    await expectOnce(clients, members, "room", `after-leave-${name}`);
  });

  if (name === "c") {
    await tap.check("c emitter: serverSideEmit reaches a Node node's io.on(name)", async () => {
      await make().serverSideEmit("ss-event", "x", { n: 2 }, [3]);
      await until(() => serverSide.length >= 1, 5000, "the server-side event");
      await sleep(300);
      assertEqual(JSON.stringify([["x", { n: 2 }, [3]]]), JSON.stringify(serverSide), "arguments, once");
    });
  }

  await tap.check(`${name} emitter: disconnectSockets() on a room, both nodes`, async () => {
    await make(["r"]).disconnectSockets(false);
    await until(() => members.every((c) => c.disconnectReason !== null), 5000,
      () => `disconnect of ${members.filter((c) => c.disconnectReason === null).map((c) => c.label)}`);
    for (const c of members) assertEqual("io server disconnect", c.disconnectReason, `${c.label}: reason`);
    await make().emit("news", `after-disconnect-${name}`);
    await expectOnce(clients, others, "news", `after-disconnect-${name}`);
    for (const c of others) assert(c.connected, `${c.label} still connected`);
  });

  for (const c of clients) c.close();
}

tool.child.stdin.end();
await emitterClient.quit().catch(() => {});
await stopDriver(cluster);
await stopNodes(tap, nodes);
redis.child.kill("SIGTERM");
tap.finish();
