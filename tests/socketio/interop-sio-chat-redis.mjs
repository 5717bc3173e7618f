#!/usr/bin/env node
// socketio-chat --redis (issue 17, deliverable 3): two chat servers (SOCKETIO_CHAT=PATH) on one
// real Redis, a socket.io-client 4.8 client on each. Checks that a message, the joined/left
// notices and typing cross between clients connected to different nodes, exactly once, in
// #general and in a room created on both; that the `rooms` list stays per node; and that a
// bad --redis URL is refused. Starts `redis-server` (Debian's) on a loopback port it picks;
// skips (1..0 # SKIP) without it. TAP on stdout.
//
// SPDX-License-Identifier: MIT

import { spawn } from "node:child_process";
import { Tap, requireDep, assert, assertEqual, sleep } from "./sio-harness.mjs";
import { skipWithoutRedis, startRedis, until } from "./sio-redis-harness.mjs";

skipWithoutRedis();
const CHAT = process.env.SOCKETIO_CHAT;
if (!CHAT) {
  process.stdout.write("Bail out! set SOCKETIO_CHAT=PATH/socketio-chat\n");
  process.exit(1);
}

const { io: ioClient } = requireDep("socket.io-client");

function killOnExit(child) {
  process.on("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
}

// A chat node: `listening on URL` on its first line.
function startChat(args) {
  const extra = process.env.SIO_LOOP_THREADS ? ["--loop-threads", process.env.SIO_LOOP_THREADS] : [];
  const child = spawn(CHAT, ["--port", "0", ...extra, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  killOnExit(child);
  let err = "";
  child.stderr.on("data", (d) => {
    err += d.toString();
    for (const l of d.toString().split("\n")) if (l) process.stderr.write(`[chat] ${l}\n`);
  });
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("socketio-chat: no listening line within 10 s")), 10000);
    child.stdout.on("data", (d) => {
      buf += d.toString();
      const m = /^listening on (http:\/\/\S+?)\/?\n/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve({ origin: m[1], child });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`socketio-chat exited (${code}): ${err.slice(-500)}`), { code, err }));
    });
  });
}

const EVENTS = ["message", "joined", "left", "typing", "rooms"];

function connect(node, label) {
  return new Promise((resolve, reject) => {
    const socket = ioClient(node.origin, { transports: ["websocket"], forceNew: true, reconnection: false });
    socket.label = label;
    socket.got = Object.fromEntries(EVENTS.map((e) => [e, []]));
    for (const ev of EVENTS) socket.on(ev, (x) => socket.got[ev].push(x));
    const timer = setTimeout(() => reject(new Error(`${label}: no connect within 10 s`)), 10000);
    socket.on("connect", () => { clearTimeout(timer); resolve(socket); });
    socket.on("connect_error", (e) => { clearTimeout(timer); reject(e); });
  });
}

const call = (socket, ev, ...args) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${socket.label}: no ack for ${ev}`)), 5000);
    socket.emit(ev, ...args, (reply) => {
      clearTimeout(timer);
      if (reply && reply.ok) resolve(reply);
      else reject(new Error(`${socket.label}: ${ev} refused: ${JSON.stringify(reply)}`));
    });
  });

const tap = new Tap();
const redis = await startRedis();
tap.comment(`redis-server on ${redis.url}`);

await tap.check("a bad --redis URL is refused at start", async () => {
  let e = null;
  try {
    const n = await startChat(["--redis", "http://127.0.0.1/"]);
    n.child.kill("SIGKILL");
  } catch (x) {
    e = x;
  }
  assert(e !== null, "the chat started");
  assert(/--redis/.test(e.err ?? ""), `stderr names the option: ${e.message}`);
});

const a = await startChat(["--redis", redis.url]);
const b = await startChat(["--redis", redis.url]);
const ann = await connect(a, "ann@a");
const bob = await connect(b, "bob@b");
// Both adapters subscribed before anything is sent: a message from a node to itself proves
// nothing, so wait until a probe message from ann reaches bob (retried: subscriptions are
// asynchronous), then check exactly-once on fresh messages.
await call(ann, "login", "ann");
await call(bob, "login", "bob");

await tap.check("a message in #general crosses from node A to node B and back", async () => {
  const end = Date.now() + 10000;
  for (let k = 0; ; k++) {
    await call(ann, "message", `probe-${k}`);
    await sleep(200);
    if (bob.got.message.some((m) => m.text === `probe-${k}`)) break;
    if (Date.now() > end) throw new Error("no message crossed within 10 s");
  }
  await call(ann, "message", "hello from A");
  await call(bob, "message", "hello from B");
  await until(() => bob.got.message.some((m) => m.text === "hello from A") &&
                    ann.got.message.some((m) => m.text === "hello from B"), 5000, "both messages");
  await sleep(300);
  const fromA = bob.got.message.filter((m) => m.text === "hello from A");
  assertEqual(1, fromA.length, "bob got ann's message once");
  assertEqual("ann", fromA[0].name, "sender's name");
  assertEqual("#general", fromA[0].room, "room");
  assertEqual(1, ann.got.message.filter((m) => m.text === "hello from B").length, "ann got bob's once");
  assertEqual(0, ann.got.message.filter((m) => m.text === "hello from A").length, "no echo to the sender");
});

await tap.check("joined, typing and messages in a room joined on both nodes; left when one leaves", async () => {
  await call(ann, "join", "#dev");
  await call(bob, "join", "#dev");
  await until(() => ann.got.joined.some((j) => j.room === "#dev" && j.name === "bob"), 5000,
    "ann to hear bob join #dev");
  await call(bob, "typing");
  await until(() => ann.got.typing.some((t) => t.room === "#dev" && t.name === "bob"), 5000, "typing");
  await call(ann, "message", "in dev");
  await until(() => bob.got.message.some((m) => m.text === "in dev"), 5000, "the #dev message");
  const m = bob.got.message.find((x) => x.text === "in dev");
  assertEqual("#dev", m.room, "room");
  await call(ann, "leave");
  await until(() => bob.got.left.some((l) => l.room === "#dev" && l.name === "ann"), 5000, "left");
  // ann is back in #general alone on her node; bob's #dev message does not reach her.
  await call(bob, "message", "dev only");
  await call(ann, "message", "general only");
  await sleep(500);
  assertEqual(0, ann.got.message.filter((x) => x.text === "dev only").length, "ann is not in #dev");
  assertEqual(0, bob.got.message.filter((x) => x.text === "general only").length, "bob is not in #general");
});

await tap.check("the rooms list stays per node (one list per change, this node's)", async () => {
  const last = bob.got.rooms.at(-1) ?? [];
  const dev = last.find((r) => r.name === "#dev");
  assert(dev !== undefined, `bob's list has #dev: ${JSON.stringify(last)}`);
  assertEqual(1, dev.count, "bob's node counts its own member of #dev");
});

ann.close();
bob.close();
await tap.check("both chat nodes exit cleanly on SIGTERM (status 0: no leak under ASan)", async () => {
  for (const n of [a, b]) {
    const exited = new Promise((resolve) => n.child.on("exit", (code, sig) => resolve(sig ?? code)));
    n.child.kill("SIGTERM");
    assertEqual(0, await exited, "exit status");
  }
}, 20000);
redis.child.kill("SIGTERM");
tap.finish();
