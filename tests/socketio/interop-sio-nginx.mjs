#!/usr/bin/env node
// Three socketio-echo nodes behind nginx, sharing rooms and broadcasts through one real Redis
// (issue 17, deliverables 4 and 5): the recipe of data/docs/deployment.md, "Several nodes", tested.
// TAP on stdout.
//
// Starts, on loopback ports it picks: Debian's `redis-server` (no persistence), three C nodes
// (SOCKETIO_ECHO=PATH `--port 0 --redis redis://127.0.0.1:PORT -v`; the connect lines of -v
// tell which node a socket is on) and `nginx` as its own foreground process (a config in a
// temporary directory that also holds its pid and temp paths; access_log off; error_log to
// stderr), with three listeners in front of the same nodes:
//   * sticky by client address: `hash $remote_addr consistent` (the recipe);
//   * sticky by a cookie nginx sets itself (`lb`, a fresh $request_id when absent);
//   * round robin (no stickiness), to show that polling needs the recipe.
// socket.io-client 4.8 clients connect from 127.0.0.2..13 (an http.Agent with localAddress, for
// polling and WebSocket alike) so the address hash spreads them; a third start on polling and
// upgrade, a third are WebSocket only, a third stay on long polling (every request of their
// session must reach the same node). A client-less Node node (npm socket.io 4.8 with
// @socket.io/redis-adapter 8.3) asks for acks across the cluster. Checks:
//   * the clients are spread over at least two nodes; the polling clients upgraded through nginx;
//   * `broadcast` sent on each node reaches every client exactly once; `to-room` reaches the
//     room's members on every node exactly once and nobody else;
//   * io.timeout().emitWithAck() from the Node node collects one ack from every client (the
//     C nodes answer the BROADCAST request through Redis);
//   * `fetch` on each C node (REMOTE_FETCH) lists every socket of the cluster, and a room's;
//   * remote join (`all-join`), leave (`all-leave`) and disconnect (`disconnect-room`) asked on
//     one node apply to the sockets of every node;
//   * round robin: a polling-only client cannot keep a session (the handshake and the next
//     request land on different nodes); the cookie listener keeps polling clients on one node,
//     spreads them, and they upgrade;
//   * a node killed (SIGKILL): its clients reconnect through nginx to the other nodes and
//     broadcast again; every client that stayed gets each later broadcast exactly once and none
//     of them was disconnected;
//   * Redis killed and restarted on the same port: a broadcast during the outage reaches its own
//     node's clients only and is counted in the node's publish failures (`publish-failures`);
//     after the restart, broadcasts from every node cross again (bounded wait), exactly once.
// No redis-server or nginx on PATH: `1..0 # SKIP`.
//
// SPDX-License-Identifier: MIT

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Tap, requireDep, assert, assertEqual, sleep } from "./sio-harness.mjs";
import { which, REDIS_SERVER, freePort, startRedis, startDriver, stopDriver } from "./sio-redis-harness.mjs";

const NGINX = process.env.NGINX || which("nginx");
if (!REDIS_SERVER || !NGINX) {
  process.stdout.write(`TAP version 13\n1..0 # SKIP ${REDIS_SERVER ? "nginx" : "redis-server"} not installed\n`);
  process.exit(0);
}
if (!process.env.SOCKETIO_ECHO) {
  process.stdout.write("Bail out! set SOCKETIO_ECHO=PATH/socketio-echo\n");
  process.exit(1);
}

const { io: ioClient } = requireDep("socket.io-client");

// The nginx recipe's timeouts are above the nodes' ping interval + timeout.
const PING_INTERVAL = 5000;
const PING_TIMEOUT = 4000;

const children = [];
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

// Resolves when `child`'s `stream` has printed a line matching `re` (with the match).
function waitLine(child, stream, re, ms, what) {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`${what}: not ready within ${ms} ms: ${buf.slice(-500)}`)), ms);
    const onData = (d) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        child[stream].off("data", onData);
        resolve(m);
      }
    };
    child[stream].on("data", onData);
    child.on("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${sig || code}): ${buf.slice(-500)}`));
    });
  });
}

// A C node; `node.ids` collects the ids of the sockets that connected to it (its -v lines).
async function startNode(name, redisUrl) {
  const args = ["--port", "0", "--redis", redisUrl, "-v", "--cookie", "io",
    "--ping-interval", String(PING_INTERVAL), "--ping-timeout", String(PING_TIMEOUT)];
  if (process.env.SIO_LOOP_THREADS) args.push("--loop-threads", process.env.SIO_LOOP_THREADS);
  const child = spawn(process.env.SOCKETIO_ECHO, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stderr.on("data", (d) => {
    for (const l of d.toString().split("\n")) if (l) process.stderr.write(`[${name}] ${l}\n`);
  });
  const m = await waitLine(child, "stdout", /^listening on http:\/\/127\.0\.0\.1:(\d+)\//m, 15000, name);
  const node = { name, port: Number(m[1]), child, ids: new Set() };
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const c = /^connect \/ (\S+)$/.exec(line);
      if (c) node.ids.add(c[1]);
    }
  });
  return node;
}

// nginx in the foreground, everything it writes inside `dir`. The `sticky` server block is the
// recipe of data/docs/deployment.md, "Several nodes" (its upstream's servers are the nodes' ports).
function nginxConfig(dir, nodes, ports) {
  const servers = nodes.map((n) => `    server 127.0.0.1:${n.port};`).join("\n");
  // Run as root (CI), the workers would switch to `nobody`, which cannot write in the 0700
  // temporary directory: they stay the test's user.
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};\n` : "";
  return `${user}worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  # --- the recipe (data/docs/deployment.md, "Several nodes") ---
  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
  }

  upstream socketio_nodes {
    hash $remote_addr consistent;
${servers}
  }

  server {
    listen 127.0.0.1:${ports.sticky};

    location /socket.io/ {
      proxy_pass http://socketio_nodes;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # above the nodes' ping interval + ping timeout (25 s + 20 s by default)
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
    }
  }
  # --- end of the recipe ---

  # Sticky by a cookie nginx sets (clients behind one address still spread).
  map $cookie_lb $lb_key {
    ''      $request_id;
    default $cookie_lb;
  }
  upstream socketio_nodes_cookie {
    hash $lb_key consistent;
${servers}
  }
  server {
    listen 127.0.0.1:${ports.cookie};
    location /socket.io/ {
      add_header Set-Cookie "lb=$lb_key; Path=/; HttpOnly; SameSite=Lax" always;
      proxy_pass http://socketio_nodes_cookie;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 60s;
      proxy_send_timeout 60s;
    }
  }

  # No stickiness: round robin (what the recipe is for).
  upstream socketio_nodes_rr {
${servers}
  }
  server {
    listen 127.0.0.1:${ports.rr};
    location /socket.io/ {
      proxy_pass http://socketio_nodes_rr;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 60s;
    }
  }
}
`;
}

async function startNginx(nodes) {
  for (let attempt = 0; ; attempt++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-nginx-"));
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
    const ports = { sticky: await freePort(), cookie: await freePort(), rr: await freePort() };
    fs.writeFileSync(path.join(dir, "nginx.conf"), nginxConfig(dir, nodes, ports));
    const child = spawn(NGINX, ["-e", "stderr", "-c", path.join(dir, "nginx.conf"), "-p", dir,
      "-g", `daemon off; pid ${dir}/nginx.pid; error_log stderr notice;`],
    { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let err = "";
    child.stderr.on("data", (d) => {
      err += d.toString();
      for (const l of d.toString().split("\n")) if (l && !/\[notice\]/.test(l)) process.stderr.write(`[nginx] ${l}\n`);
    });
    // Ready once every listener answers (the ports were free a moment ago: retry if taken).
    const ready = async () => {
      for (const p of Object.values(ports)) {
        await new Promise((resolve, reject) => {
          const s = net.connect(p, "127.0.0.1", () => { s.end(); resolve(); });
          s.on("error", reject);
        });
      }
    };
    const end = Date.now() + 10000;
    for (;;) {
      if (child.exitCode !== null) break;
      try {
        await ready();
        return { dir, ports, child, origin: (k) => `http://127.0.0.1:${ports[k]}` };
      } catch (_) {
        if (Date.now() > end) throw new Error(`nginx not listening within 10 s: ${err.slice(-500)}`);
        await sleep(50);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
    if (attempt >= 3 || !/Address already in use/.test(err)) throw new Error(`nginx exited: ${err.slice(-800)}`);
  }
}

const tap = new Tap();
const redis = await startRedis();
const nodes = [];
for (const name of ["n1", "n2", "n3"]) nodes.push(await startNode(name, redis.url));
const nginx = await startNginx(nodes);
tap.comment(`redis-server ${redis.url}; nodes ${nodes.map((n) => `${n.name}:${n.port}`).join(" ")}; ` +
  `nginx ${JSON.stringify(nginx.ports)} (${nginx.dir})`);

const nodeOf = (socket) => nodes.find((n) => n.ids.has(socket.id))?.name;

// A client through nginx listener `via` from source address `addr`.
function makeClient(label, addr, transports, { via = "sticky", reconnection = true, cookies = false } = {}) {
  const agent = new http.Agent({ localAddress: addr, keepAlive: true });
  const socket = ioClient(nginx.origin(via), {
    path: "/socket.io/", transports, forceNew: true, agent, localAddress: addr,
    reconnection, reconnectionDelay: 200, reconnectionDelayMax: 1000, timeout: 5000,
    withCredentials: cookies,
  });
  socket.label = label;
  socket.addr = addr;
  socket.agent = agent;
  socket.got = { "broadcast-back": [], "room-back": [] };
  for (const ev of Object.keys(socket.got)) socket.on(ev, (...args) => socket.got[ev].push(args));
  socket.on("ack-me", (x, cb) => cb({ label, x }));
  socket.connects = 0;
  socket.disconnects = [];
  socket.on("connect", () => { socket.connects++; });
  socket.on("disconnect", (reason) => { socket.disconnects.push(reason); });
  return socket;
}

function connected(socket, ms = 10000) {
  return new Promise((resolve, reject) => {
    if (socket.connected) { resolve(socket); return; }
    const timer = setTimeout(() => reject(new Error(`${socket.label}: no connect within ${ms} ms`)), ms);
    socket.once("connect", () => { clearTimeout(timer); resolve(socket); });
    if (!socket.io.opts.reconnection) {
      socket.once("connect_error", (e) => { clearTimeout(timer); reject(new Error(`${socket.label}: ${e.message}`)); });
    }
  });
}

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(25);
  }
}

const count = (socket, ev, tag) => socket.got[ev].filter((a) => a[0] === tag).length;

// Every socket of `want` gets `ev` `tag` once and no other socket of `all` gets it; a duplicate
// would come within the quiet period after the last expected arrival.
async function expectOnce(all, want, ev, tag) {
  await until(() => want.every((s) => count(s, ev, tag) >= 1), 5000,
    () => `${ev} ${tag} at ${want.filter((s) => count(s, ev, tag) === 0)
      .map((s) => `${s.label}${s.connected ? "" : " (disconnected)"}`).join(",")}`);
  await sleep(300);
  for (const s of all) {
    const n = count(s, ev, tag);
    assertEqual(want.includes(s) ? 1 : 0, n, `${s.label}: ${ev} ${tag} received ${n} times`);
  }
}

const ask = (socket, ev, ...args) => new Promise((resolve, reject) => {
  socket.timeout(5000).emit(ev, ...args, (err, ...r) => (err ? reject(new Error(`${socket.label}: ${ev}: ${err.message}`)) : resolve(r)));
});

// ---- the clients ------------------------------------------------------------------------------

const clients = [];
const KINDS = [["poll", ["polling", "websocket"]], ["ws", ["websocket"]], ["pollonly", ["polling"]]];
for (let i = 0; i < 12; i++) {
  const [kind, transports] = KINDS[i % 3];
  clients.push(makeClient(`c${i}-${kind}`, `127.0.0.${i + 2}`, transports));
}
await Promise.all(clients.map((c) => connected(c)));
const onNode = (name, set = clients) => set.filter((c) => nodeOf(c) === name);
const spread = () => nodes.map((n) => `${n.name}: ${onNode(n.name).map((c) => c.label).join(",")}`).join("; ");

await tap.check("the address hash spreads the clients over at least two nodes", async () => {
  await until(() => clients.every((c) => nodeOf(c)), 5000, "every socket's node");
  tap.comment(spread());
  const used = nodes.filter((n) => onNode(n.name).length > 0);
  assert(used.length >= 2, `clients on ${used.length} node(s): ${spread()}`);
});

await tap.check("the polling clients upgrade to WebSocket through nginx", async () => {
  const polling = clients.filter((c) => c.label.endsWith("-poll"));
  await until(() => polling.every((c) => c.io.engine.transport.name === "websocket"), 10000,
    () => `upgrade of ${polling.filter((c) => c.io.engine.transport.name !== "websocket").map((c) => c.label)}`);
});

const used = () => nodes.filter((n) => onNode(n.name).length > 0);

await tap.check("broadcast sent on each node reaches every client exactly once", async () => {
  for (const n of used()) {
    const tag = `b-${n.name}`;
    onNode(n.name)[0].emit("broadcast", tag, { from: n.name });
    await expectOnce(clients, clients, "broadcast-back", tag);
  }
});

// Room r1: the first client of each node and one more; to-room sent by a non-member on each node.
const members = [];
for (const n of used()) members.push(onNode(n.name)[0]);
members.push(clients.find((c) => !members.includes(c)));
await tap.check("to-room reaches the room's members on every node exactly once, nobody else", async () => {
  for (const m of members) await ask(m, "join", "r1");
  for (const n of used()) {
    const sender = onNode(n.name).find((c) => !members.includes(c)) || onNode(n.name)[0];
    const tag = `r1-${n.name}`;
    await ask(sender, "to-room", "r1", tag);
    await expectOnce(clients, members, "room-back", tag);
  }
});

const cluster = await startDriver(redis.url, 5000);
const { driver, pub } = cluster;

await tap.check("every node and the Node node subscribed: PUBSUB NUMSUB of socket.io-request#/# is 4", async () => {
  await until(async () => {
    const r = await pub.pubSubNumSub("socket.io-request#/#");
    return Number(r["socket.io-request#/#"] ?? 0) === 4;
  }, 10000, "NUMSUB 4");
}, 15000);

await tap.check("io.timeout().emitWithAck() from a Node node collects one ack from every client of every node", async () => {
  const responses = await driver.timeout(5000).emitWithAck("ack-me", "q");
  assertEqual(clients.map((c) => c.label).sort(), responses.map((r) => r.label).sort(), "acks from");
  const inRoom = await driver.in("r1").timeout(5000).emitWithAck("ack-me", "r");
  assertEqual(members.map((c) => c.label).sort(), inRoom.map((r) => r.label).sort(), "acks from r1");
}, 15000);

await tap.check("fetch on each node lists every socket of the cluster, and r1's", async () => {
  for (const n of used()) {
    const [err, ids] = await ask(onNode(n.name)[0], "fetch", null);
    assertEqual(null, err, `${n.name}: error`);
    assertEqual(clients.map((c) => c.id).sort(), [...ids].sort(), `${n.name}: all sockets`);
    const [err2, inRoom] = await ask(onNode(n.name)[0], "fetch", "r1");
    assertEqual(null, err2, `${n.name}: error`);
    assertEqual(members.map((c) => c.id).sort(), [...inRoom].sort(), `${n.name}: sockets in r1`);
  }
}, 20000);

await tap.check("remote join and leave asked on one node apply on every node", async () => {
  const [a, b] = used();
  await ask(onNode(a.name)[0], "all-join", "everyone");
  await until(async () => {
    const [, ids] = await ask(onNode(b.name)[0], "fetch", "everyone");
    return ids.length === clients.length;
  }, 5000, "every socket in 'everyone'");
  await ask(onNode(b.name)[0], "to-room", "everyone", "e1");
  await expectOnce(clients, clients, "room-back", "e1");
  await ask(onNode(b.name)[0], "all-leave", "everyone");
  await until(async () => {
    const [, ids] = await ask(onNode(a.name)[0], "fetch", "everyone");
    return ids.length === 0;
  }, 5000, "nobody left in 'everyone'");
  await ask(onNode(a.name)[0], "to-room", "everyone", "e2");
  onNode(a.name)[0].emit("broadcast", "after-e2");
  await expectOnce(clients, clients, "broadcast-back", "after-e2");
  for (const c of clients) assertEqual(0, count(c, "room-back", "e2"), `${c.label}: e2 after leaving`);
}, 20000);

await tap.check("remote disconnect asked on one node disconnects the room's sockets on every node", async () => {
  // One more client per node (the address of a client already there: same hash, same node).
  const doomed = used().map((n) => makeClient(`doomed-${n.name}`, onNode(n.name)[0].addr, ["websocket"]));
  await Promise.all(doomed.map((d) => connected(d)));
  await until(() => doomed.every((d) => nodeOf(d)), 5000, "the doomed clients' nodes");
  for (const d of doomed) await ask(d, "join", "doomed");
  assertEqual(used().map((n) => n.name), doomed.map(nodeOf), "one doomed client per node");
  await ask(clients[0], "disconnect-room", "doomed");
  await until(() => doomed.every((d) => d.disconnects.length > 0), 5000, "the doomed disconnected");
  for (const d of doomed) assertEqual(["io server disconnect"], d.disconnects, `${d.label}: reason`);
  for (const c of clients) assert(c.connected && c.disconnects.length === 0, `${c.label} still connected`);
  for (const d of doomed) d.close();
}, 20000);

await tap.check("round robin (no stickiness): a polling client cannot keep a session", async () => {
  const c = makeClient("rr-poll", "127.0.0.20", ["polling"], { via: "rr", reconnection: false });
  const r = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve("nothing within 8 s"), 8000);
    c.on("connect_error", (e) => { clearTimeout(timer); resolve(`connect_error: ${e.message}`); });
    c.on("disconnect", (reason) => { clearTimeout(timer); resolve(`disconnect: ${reason}`); });
  });
  tap.comment(`round robin: ${r}; connects ${c.connects}`);
  c.close();
  assert(/connect_error|disconnect/.test(r), `the session survived round robin: ${r}`);
}, 15000);

await tap.check("nginx's own cookie keeps polling clients on one node, spreads them, and they upgrade", async () => {
  const cc = [];
  for (let i = 0; i < 10; i++) {
    cc.push(makeClient(`cookie-${i}`, "127.0.0.30", ["polling", "websocket"], { via: "cookie", reconnection: false, cookies: true }));
  }
  try {
    await Promise.all(cc.map((c) => connected(c)));
    await until(() => cc.every((c) => nodeOf(c)), 5000, "the cookie clients' nodes");
    await until(() => cc.every((c) => c.io.engine.transport.name === "websocket"), 10000, "upgrade");
    const on = new Set(cc.map(nodeOf));
    tap.comment(`cookie clients (one source address) on ${[...on].join(",")}`);
    assert(on.size >= 2, `ten cookie clients all on ${[...on]}`);
    const all = [...clients, ...cc];
    cc[0].emit("broadcast", "cookie-b");
    await expectOnce(all, all, "broadcast-back", "cookie-b");
    for (const c of cc) assertEqual([], c.disconnects, `${c.label} disconnects`);
    // The nodes' own `cookie` option (--cookie io) comes through nginx too: the client's jar
    // (engine.io-client's Node cookie jar, withCredentials) holds io = its session id.
    for (const c of cc) {
      const jar = new Map(c.io.engine._cookieJar?.cookies ?? []);
      assertEqual(c.io.engine.id, jar.get("io")?.value, `${c.label}: the io cookie`);
      assert(jar.get("lb")?.value, `${c.label}: nginx's lb cookie`);
    }
  } finally {
    for (const c of cc) c.close();
  }
}, 30000);

await tap.check("a node killed: its clients reconnect through nginx to another node; who stayed gets each broadcast once", async () => {
  // The node with the most clients goes.
  const victim = used().sort((a, b) => onNode(b.name).length - onNode(a.name).length)[0];
  const moved = onNode(victim.name);
  const stayed = clients.filter((c) => !moved.includes(c));
  assert(stayed.length > 0, "somebody stays");
  tap.comment(`killing ${victim.name} (${moved.map((c) => c.label)})`);
  const before = new Map(moved.map((c) => [c, c.connects]));
  victim.child.kill("SIGKILL");
  await until(() => moved.every((c) => c.connected && c.connects > before.get(c) && nodeOf(c)), 15000,
    () => `reconnection of ${moved.filter((c) => !(c.connected && nodeOf(c))).map((c) => c.label)}`);
  for (const c of moved) assert(nodeOf(c) !== victim.name, `${c.label} back on ${nodeOf(c)}`);
  tap.comment(`after: ${spread()}`);
  for (const c of [moved[0], stayed[0]]) {
    const tag = `after-kill-${c.label}`;
    c.emit("broadcast", tag);
    await expectOnce(clients, clients, "broadcast-back", tag);
  }
  for (const c of stayed) assertEqual([], c.disconnects, `${c.label} (stayed) disconnects`);
  // Everything any client received so far, counted: never twice.
  for (const c of clients) {
    for (const ev of Object.keys(c.got)) {
      const tags = c.got[ev].map((a) => a[0]);
      assertEqual(tags.length, new Set(tags).size, `${c.label}: a duplicate ${ev}: ${tags}`);
    }
  }
  nodes.splice(nodes.indexOf(victim), 1);
}, 30000);

await stopDriver(cluster);

await tap.check("Redis restarted: the outage's broadcast is counted as lost, broadcasts cross again", async () => {
  const [a] = used();
  const disconnectsBefore = new Map(clients.map((c) => [c, c.disconnects.length]));
  const failures = async (c) => (await ask(c, "publish-failures"))[0];
  const lostBefore = await failures(onNode(a.name)[0]);
  const exited = new Promise((resolve) => redis.child.on("exit", resolve));
  redis.child.kill("SIGKILL");
  await exited;
  // During the outage: the sender's own node only, and one more failure counted.
  const sender = onNode(a.name)[0];
  sender.emit("broadcast", "during-outage");
  await expectOnce(clients, onNode(a.name), "broadcast-back", "during-outage");
  const lostAfter = await failures(sender);
  assert(lostAfter > lostBefore, `publish failures ${lostBefore} -> ${lostAfter}`);
  tap.comment(`publish failures on ${a.name}: ${lostBefore} -> ${lostAfter}`);
  const again = await startRedis(redis.port);
  redis.child = again.child;
  const t0 = Date.now();
  // Each node resubscribes and its publisher reconnects on its own backoff (at most 5 s):
  // retry from each node until a broadcast crosses, then one more must arrive exactly once.
  for (const n of used()) {
    const from = onNode(n.name)[0];
    const end = Date.now() + 15000;
    for (let k = 0; ; k++) {
      const tag = `after-restart-${n.name}-${k}`;
      from.emit("broadcast", tag);
      await sleep(200);
      if (clients.every((c) => count(c, "broadcast-back", tag) >= 1)) break;
      if (Date.now() > end) throw new Error(`no broadcast from ${n.name} crossed within 15 s`);
    }
    const tag = `after-restart-${n.name}`;
    from.emit("broadcast", tag);
    await expectOnce(clients, clients, "broadcast-back", tag);
  }
  tap.comment(`broadcasts crossed again ${Date.now() - t0} ms after the restart`);
  for (const c of clients) {
    assertEqual(disconnectsBefore.get(c), c.disconnects.length, `${c.label}: disconnected during the Redis restart: ${c.disconnects}`);
  }
}, 45000);

for (const c of clients) c.close();
await tap.check("the remaining nodes exit with status 0 on SIGTERM (under ASan: no error, no leak)", async () => {
  const status = await Promise.all(nodes.map((n) => new Promise((resolve) => {
    n.child.on("exit", (code, sig) => resolve(sig ? `signal ${sig}` : code));
    n.child.kill("SIGTERM");
  })));
  assertEqual(nodes.map(() => 0), status, "exit status");
}, 15000);
nginx.child.kill("SIGQUIT");
redis.child.kill("SIGTERM");
await Promise.all([...nodes.map((n) => n.child), nginx.child, redis.child].map((c) =>
  c.exitCode !== null || c.signalCode !== null ? null
    : Promise.race([new Promise((r) => c.on("exit", r)), sleep(5000)])));
fs.rmSync(nginx.dir, { recursive: true, force: true });
tap.finish();
