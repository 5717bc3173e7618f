#!/usr/bin/env node
// A mixed Socket.IO cluster on one real Redis (issue 17): two socketio-echo nodes
// (SOCKETIO_ECHO=PATH, `--redis redis://127.0.0.1:PORT`, SocketIORedisAdapter) and one npm
// socket.io 4.8 node with @socket.io/redis-adapter 8.3 (tests/interop/reference-sio-echo.js
// --redis), plus this process as a fourth, client-less Node node (socket.io Server with the npm
// adapter) that drives cluster-wide operations. TAP on stdout.
//
// Starts `redis-server` (Debian's) on a loopback port it picks (bind a socket to port 0, close
// it: redis cannot bind port 0), without persistence. No redis-server on PATH: `1..0 # SKIP`.
// Checks, with two socket.io-client 4.8 clients on each server node (six):
//   * every node is subscribed (PUBSUB NUMSUB of the request channel counts 4);
//   * `broadcast` sent to each node reaches all six clients exactly once (text; then binary);
//   * rooms: one client per node joins a room; `to-room` from each node reaches those three
//     exactly once and nobody else;
//   * remote join: `all-join` on a C node (socketsJoin through the adapter) and on the Node
//     node puts every client of every node in the room;
//   * io.emit() from the client-less Node node reaches all six exactly once;
//   * io.fetchSockets() on the client-less node lists the six sockets with their rooms
//     (REMOTE_FETCH answered by the C nodes);
//   * `fetch` on a C node (socket_io_redis_adapter_fetch_sockets_async(): REMOTE_FETCH answered
//     by the Node nodes and the other C node) and on the Node node lists the six sockets, and
//     the room's three;
//   * io.timeout().emitWithAck() and io.in(room).timeout().emitWithAck() there collect the acks
//     of every addressed client of every node (BROADCAST answered by the C nodes);
//   * adapter.allRooms() there includes the C nodes' rooms (ALL_ROOMS answered);
//   * io.in(room).disconnectSockets() disconnects the room's clients on every node;
//   * Redis killed: a broadcast reaches its own node's clients only; Redis restarted on the same
//     port: every node resubscribes (NUMSUB 4 again) and broadcasts from each node reach every
//     remaining client exactly once. (The C nodes' count of lost publications is not visible
//     from here: socket_io_redis_adapter_get_publish_failures() is not printed by the tool.)
// serverSideEmit (with acks, both directions) is tested in interop-sio-redis-emitter.mjs.
//
// SPDX-License-Identifier: MIT

import { Tap, assert, assertEqual, sleep } from "./sio-harness.mjs";
import {
  skipWithoutRedis, startRedis, startNode, connect as connectClient, until, count, expectOnce, emitAck,
  startDriver, stopDriver, stopNodes,
} from "./sio-redis-harness.mjs";

skipWithoutRedis();
if (!process.env.SOCKETIO_ECHO) {
  process.stdout.write("Bail out! set SOCKETIO_ECHO=PATH/socketio-echo\n");
  process.exit(1);
}

// A client that records what the cluster sends it back; what the cluster asks with an ack is
// answered with the client's label and a binary.
const connect = (node, label) =>
  connectClient(node, label, ["broadcast-back", "room-back", "cluster"], (socket) =>
    socket.on("ack-me", (x, cb) => cb({ label, x, bin: Buffer.from([label.length, 0, 255]) })));

const tap = new Tap();
const redis = await startRedis();
tap.comment(`redis-server on ${redis.url}`);
const nodes = {
  c1: await startNode("echo", redis.url),
  c2: await startNode("echo", redis.url),
  js: await startNode("reference", redis.url),
};
const cluster = await startDriver(redis.url, 3000);
const { driver, pub } = cluster;

const clients = [];
for (const [name, node] of Object.entries(nodes)) {
  for (const i of [1, 2]) clients.push(await connect(node, `${name}-${i}`));
}
const onNode = (name) => clients.filter((c) => c.label.startsWith(name + "-"));

await tap.check("every node subscribed: PUBSUB NUMSUB of socket.io-request#/# is 4", async () => {
  let n = 0;
  const end = Date.now() + 10000;
  while (Date.now() < end) {
    const r = await pub.pubSubNumSub("socket.io-request#/#");
    n = Number(r["socket.io-request#/#"] ?? 0);
    if (n >= 4) break;
    await sleep(50);
  }
  assertEqual(4, n, `NUMSUB ${n}`);
}, 15000);

for (const from of Object.keys(nodes)) {
  await tap.check(`broadcast from ${from} reaches all six clients exactly once`, async () => {
    const tag = `text-${from}`;
    onNode(from)[0].emit("broadcast", tag, { n: 1, s: "é\u2028" }, [1.5, null, true]);
    await expectOnce(clients, clients, "broadcast-back", tag);
    for (const c of clients) {
      const args = c.got["broadcast-back"].find((a) => a[0] === tag);
      assertEqual(JSON.stringify(args), JSON.stringify([tag, { n: 1, s: "é\u2028" }, [1.5, null, true]]),
        `${c.label}: arguments`);
    }
  });
  await tap.check(`binary broadcast from ${from} reaches all six clients intact`, async () => {
    const tag = `bin-${from}`;
    const bytes = Buffer.from([0, 1, 2, 255, 254, 128]);
    onNode(from)[1].emit("broadcast", tag, bytes, { nested: [bytes.subarray(2)] });
    await expectOnce(clients, clients, "broadcast-back", tag);
    for (const c of clients) {
      const args = c.got["broadcast-back"].find((a) => a[0] === tag);
      assert(Buffer.from(args[1]).equals(bytes), `${c.label}: attachment 0`);
      assert(Buffer.from(args[2].nested[0]).equals(bytes.subarray(2)), `${c.label}: nested attachment`);
    }
  });
}

const members = [onNode("c1")[0], onNode("c2")[0], onNode("js")[0]];
await tap.check("join: one client per node joins room r1", async () => {
  for (const m of members) await emitAck(m, "join", "r1");
});
for (const from of Object.keys(nodes)) {
  await tap.check(`to-room r1 from ${from} (a non-member) reaches the three members exactly once`, async () => {
    const tag = `room-${from}`;
    emitAck(onNode(from)[1], "to-room", "r1", tag);
    await expectOnce(clients, members, "room-back", tag);
  });
}

for (const from of ["c1", "js"]) {
  await tap.check(`all-join r-${from} on ${from}: every client of every node joins`, async () => {
    const room = `r-${from}`;
    await emitAck(onNode(from)[0], "all-join", room);
    // The join is applied on the other nodes when they hear the request: retry until a
    // broadcast to the room reaches everybody, then check one more for exactly once.
    let k = 0;
    const end = Date.now() + 5000;
    for (;;) {
      const tag = `${room}-${k++}`;
      emitAck(onNode("c2")[1], "to-room", room, tag);
      await sleep(200);
      if (clients.every((c) => count(c, "room-back", tag) >= 1)) break;
      if (Date.now() > end) throw new Error(`not everybody in ${room}: ` +
        clients.filter((c) => count(c, "room-back", tag) === 0).map((c) => c.label).join(","));
    }
    const tag = `${room}-final`;
    emitAck(onNode("js")[1], "to-room", room, tag);
    await expectOnce(clients, clients, "room-back", tag);
  });
}

await tap.check("io.emit() from a client-less Node node reaches all six exactly once", async () => {
  driver.emit("cluster", "from-driver", Buffer.from("xyz"));
  await expectOnce(clients, clients, "cluster", "from-driver");
});

await tap.check("io.fetchSockets() lists the six sockets of the three nodes with their rooms", async () => {
  const sockets = await driver.fetchSockets();
  const ids = sockets.map((s) => s.id).sort();
  assertEqual(JSON.stringify(ids), JSON.stringify(clients.map((c) => c.id).sort()), "socket ids");
  for (const m of members) {
    const s = sockets.find((x) => x.id === m.id);
    assert(s.rooms.has("r1") && s.rooms.has(m.id), `${m.label}: rooms ${[...s.rooms]}`);
  }
  const inRoom = await driver.in("r1").fetchSockets();
  assertEqual(JSON.stringify(inRoom.map((s) => s.id).sort()),
    JSON.stringify(members.map((m) => m.id).sort()), "sockets in r1");
});

for (const from of ["c1", "js"]) {
  await tap.check(`fetch on ${from}: fetchSockets across the cluster lists the six, and r1's three`, async () => {
    const ask = (...a) => new Promise((resolve) => onNode(from)[1].emit("fetch", ...a, (...r) => resolve(r)));
    const [err, ids] = await ask(null);
    assertEqual(null, err, "error");
    assertEqual(clients.map((c) => c.id).sort(), [...ids].sort(), "all sockets");
    const [err2, inRoom] = await ask("r1");
    assertEqual(null, err2, "error");
    assertEqual(members.map((c) => c.id).sort(), [...inRoom].sort(), "sockets in r1");
  }, 15000);
}

await tap.check("io.timeout().emitWithAck() from the client-less node collects the acks of all six clients", async () => {
  // The C nodes answer the BROADCAST request with their client count, then one BROADCAST_ACK
  // per ack (a binary inside comes back as a Buffer).
  const responses = await driver.timeout(5000).emitWithAck("ack-me", "q");
  const labels = responses.map((r) => r.label).sort();
  assertEqual(clients.map((c) => c.label).sort(), labels, "acks from");
  for (const r of responses) {
    assertEqual("q", r.x, `${r.label}: argument`);
    assert(Buffer.isBuffer(r.bin) && r.bin.equals(Buffer.from([r.label.length, 0, 255])),
      `${r.label}: binary in the ack: ${JSON.stringify(r.bin)}`);
  }
}, 10000);

await tap.check("io.in('r1').timeout().emitWithAck() collects the acks of the room's three members", async () => {
  const responses = await driver.in("r1").timeout(5000).emitWithAck("ack-me", "r");
  assertEqual(members.map((c) => c.label).sort(), responses.map((r) => r.label).sort(), "acks from");
}, 10000);

await tap.check("adapter.allRooms() on the client-less node includes the rooms of the C nodes' sockets", async () => {
  const rooms = await driver.of("/").adapter.allRooms();
  for (const room of ["r1", "r-c1", "r-js"]) assert(rooms.has(room), `missing ${room}`);
  for (const c of clients) assert(rooms.has(c.id), `missing ${c.label}'s own room ${c.id}`);
});

await tap.check("io.in('r1').disconnectSockets() disconnects the room's clients on every node", async () => {
  driver.in("r1").disconnectSockets();
  await until(() => members.every((m) => m.disconnectReason !== null), 5000, "members disconnected");
  for (const m of members) assertEqual(m.disconnectReason, "io server disconnect", `${m.label}: reason`);
  await sleep(300);
  for (const c of clients) if (!members.includes(c)) assert(c.connected, `${c.label} still connected`);
});

await tap.check("Redis restarts: every node reconnects and resubscribes, broadcasts resume", async () => {
  const exited = new Promise((resolve) => redis.child.on("exit", resolve));
  redis.child.kill("SIGKILL");
  await exited;
  // A broadcast while Redis is down reaches the sender's own node only (local delivery goes on).
  const left = clients.filter((c) => !members.includes(c));
  const c1 = left.find((c) => c.label.startsWith("c1-"));
  c1.emit("broadcast", "during-outage");
  await expectOnce(left, [c1], "broadcast-back", "during-outage");
  const again = await startRedis(redis.port);
  redis.child = again.child;
  let n = 0;
  const end = Date.now() + 20000;
  while (n < 4) {
    if (Date.now() > end) throw new Error(`NUMSUB ${n} 20 s after the restart`);
    await sleep(100);
    try {
      const r = await pub.pubSubNumSub("socket.io-request#/#");
      n = Number(r["socket.io-request#/#"] ?? 0);
    } catch (_) { /* the driver's client is reconnecting too */ }
  }
  // NUMSUB counts the subscribers; a node's publisher reconnects on its own backoff (up to
  // 5 s): retry from each node until a broadcast crosses, then one more must arrive exactly once.
  for (const from of left) {
    const end = Date.now() + 15000;
    for (let k = 0; ; k++) {
      const tag = `after-restart-${from.label}-${k}`;
      from.emit("broadcast", tag);
      await sleep(200);
      if (left.every((c) => count(c, "broadcast-back", tag) >= 1)) break;
      if (Date.now() > end) throw new Error(`no broadcast from ${from.label} crossed within 15 s`);
    }
    const tag = `after-restart-${from.label}`;
    from.emit("broadcast", tag);
    await expectOnce(left, left, "broadcast-back", tag);
  }
}, 60000);

for (const c of clients) c.close();
await stopDriver(cluster);
await stopNodes(tap, nodes);
redis.child.kill("SIGTERM");
tap.finish();
