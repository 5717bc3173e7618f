#!/usr/bin/env node
// Connection state recovery with socket.io-client 4.8 (npm, from tests/interop/node_modules)
// against an echo server started with --connection-state-recovery: our socketio-echo
// (SOCKETIO_ECHO=PATH) or the npm socket.io 4.8 reference (SIO_SERVER=reference, whose
// `connectionStateRecovery` option the flag turns on); see sio-harness.mjs. TAP on stdout,
// exit 1 on any failure.
//
// For websocket only and for polling only:
//   * the CONNECT reply gives the client a private session id (socket._pid), and every event
//     the server emits without ack carries an offset as one more, last, string argument (the
//     client passes it on to the listener and keeps it as _lastOffset);
//   * the Engine.IO connection closed under the client (socket.io.engine.close(), the client
//     says "forced close", the server sees a transport close): while it is
//     away another client broadcasts twice; it reconnects by itself with `socket.recovered`
//     true, the same socket id, and gets both missed broadcasts, in order, before the
//     `auth` event of the new connection;
//   * disconnect() then connect() (a client namespace disconnect): not recovered, a new id.
//
// SPDX-License-Identifier: MIT

import { Tap, startServer, requireDep, assert, assertEqual, sleep, once } from "./sio-harness.mjs";

const { Manager } = requireDep("socket.io-client");

class Client {
  constructor(srv, transports, reconnectionDelay) {
    this.manager = new Manager(srv.origin, {
      path: srv.path,
      transports,
      reconnectionDelay,
      reconnectionDelayMax: reconnectionDelay,
      randomizationFactor: 0,
      timeout: 8000,
    });
    this.inbox = [];
    this.socket = this.manager.socket("/", { auth: { token: "t" } });
    this.socket.onAny((event, ...args) => this.inbox.push({ event, args }));
  }

  async connected(ms = 8000) {
    if (this.socket.connected) return;
    const [err] = await Promise.race([
      once(this.socket, "connect").then(() => [null]),
      once(this.socket, "connect_error"),
      sleep(ms).then(() => [new Error(`not connected within ${ms} ms`)]),
    ]);
    if (err) throw err;
  }

  // The events received so far named `event`, waiting until there are `n`.
  async events(event, n, ms = 8000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.inbox.filter((e) => e.event === event);
      if (got.length >= n) return got;
      if (Date.now() > deadline) {
        throw new Error(`${got.length} "${event}" events within ${ms} ms, wanted ${n}: ` +
          JSON.stringify(this.inbox).slice(0, 400));
      }
      await sleep(10);
    }
  }

  close() {
    this.socket.disconnect();
    this.manager.engine?.close();
  }
}

function offsetOf(args, what) {
  const last = args[args.length - 1];
  assert(typeof last === "string" && last.length > 0, `${what}: no offset as last argument: ${JSON.stringify(args)}`);
  return last;
}

const tap = new Tap();
const srv = await startServer(["--connection-state-recovery"]);
tap.comment(`server: ${srv.url}`);

for (const transports of [["websocket"], ["polling"]]) {
  const label = transports.join("+");
  let a;
  let b;
  await tap.check(`${label}: pid in the CONNECT reply, offsets on emitted events`, async () => {
    a = new Client(srv, transports, 1000);
    b = new Client(srv, transports, 100);
    await a.connected();
    await b.connected();
    assert(a.socket.recovered === false, "a first connection is not recovered");
    assert(typeof a.socket._pid === "string" && a.socket._pid.length > 0, `no pid: ${a.socket._pid}`);
    const [auth] = await a.events("auth", 1);
    assertEqual({ token: "t" }, auth.args[0], "auth");
    offsetOf(auth.args, "auth (socket.emit)");
    b.socket.emit("broadcast", "first");
    const [first] = await a.events("broadcast-back", 1);
    assertEqual("first", first.args[0], "broadcast");
    const offset = offsetOf(first.args, "broadcast");
    assertEqual(offset, a.socket._lastOffset, "client's last offset");
  }, 20000);

  await tap.check(`${label}: engine closed under the client, recovered with the missed broadcasts`, async () => {
    await a.connected();
    const id = a.socket.id;
    a.inbox = [];
    const gone = once(a.socket, "disconnect");
    a.socket.io.engine.close();
    const [reason] = await gone;
    assertEqual("forced close", reason, "client-side disconnect reason");
    const before = b.inbox.filter((e) => e.event === "broadcast-back").length;
    b.socket.emit("broadcast", "missed-1");
    b.socket.emit("broadcast", "missed-2");
    // B gets its own broadcasts: the server sent them (A reconnects after 1 s).
    await b.events("broadcast-back", before + 2);
    await a.connected(10000);
    assert(a.socket.recovered === true, "socket.recovered after reconnection");
    assertEqual(id, a.socket.id, "socket id after recovery");
    await a.events("auth", 1);
    const seen = a.inbox.filter((e) => e.event === "broadcast-back" || e.event === "auth")
      .map((e) => (e.event === "auth" ? "auth" : e.args[0]));
    assertEqual(["missed-1", "missed-2", "auth"], seen, "events after recovery");
  }, 25000);

  // A fresh client: the reference keeps a restored session until it expires (a client that
  // was recovered once could recover it again); socketio-echo restores a session once.
  let c;
  await tap.check(`${label}: disconnect() then connect() is not a recovery`, async () => {
    c = new Client(srv, transports, 100);
    await c.connected();
    const before = c.inbox.filter((e) => e.event === "broadcast-back").length;
    b.socket.emit("broadcast", "for-c");
    await c.events("broadcast-back", before + 1);
    assert(typeof c.socket._lastOffset === "string", "c has an offset");
    const id = c.socket.id;
    c.socket.disconnect();
    b.socket.emit("broadcast", "while-away");
    await sleep(100);
    c.socket.connect();
    await c.connected();
    assert(c.socket.recovered === false, "recovered after a client namespace disconnect");
    assert(c.socket.id !== id, "same id after a client namespace disconnect");
  }, 20000);

  a?.close();
  b?.close();
  c?.close();
}

const status = await srv.stop();
await tap.check("server exits cleanly on SIGTERM", () => assertEqual(0, status, "exit status"));
tap.finish();
