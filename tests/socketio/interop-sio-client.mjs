#!/usr/bin/env node
// socket.io-client 4.8 (npm, from tests/interop/node_modules) against a Socket.IO echo server:
// our socketio-echo (SOCKETIO_ECHO=PATH) or the npm socket.io 4.8 reference
// (SIO_SERVER=reference); see sio-harness.mjs. TAP on stdout, exit 1 on any failure.
//
//   SIO_SERVER=reference node tests/socketio/interop-sio-client.mjs [--only polling|websocket|upgrade]
//
// For each transport setting (polling only, websocket only, polling then upgrade to websocket),
// through one Manager (one Engine.IO connection) per client:
//   * connect to `/` with an auth object: the `auth` event carries it back, and the engine ends
//     on the expected transport;
//   * `message` → `message-back` with the same arguments: strings (escapes, control characters,
//     U+2028, astral characters), numbers (integers, doubles, extremes, an integer past int64),
//     objects and deep nesting, null and booleans, no argument, many arguments, a lone UTF-16
//     surrogate;
//   * binary: a Buffer as the only argument, binaries nested in objects and arrays, several
//     attachments in one event, an empty one, all 256 byte values;
//   * 100 numbered events (1 in 5 binary) come back in order;
//   * `message-with-ack` answered with the same arguments, binary included, and with none;
//   * `/custom` on the same Engine.IO connection with its own auth;
//   * an undeclared namespace gets connect_error "Invalid namespace" and `/` keeps working;
//   * `broadcast` from one of 3 clients reaches all 3 (the sender included) exactly once;
//   * a 500 KB text argument and a 500 KB binary argument echo intact;
//   * disconnect() then connect(): a new session id, `auth` again, echo works;
//   * the Engine.IO connection closed under the client: it reconnects by itself, `auth` again.
//   * upgrade only: a session the server closes while the client's upgrade is under way (right
//     after an automatic reconnection) is seen closed by the client within 5 s, 20 rounds.
// Server→client acknowledgements are not part of socketio-echo's behaviour: not tested here.
//
// SPDX-License-Identifier: MIT

import {
  Tap, startServer, requireDep, assert, assertEqual, diff, sleep, once,
} from "./sio-harness.mjs";

const { Manager } = requireDep("socket.io-client");

const only = (() => {
  const i = process.argv.indexOf("--only");
  return i > 0 ? process.argv[i + 1] : null;
})();

// ---- a client with an in-order inbox of events ------------------------------------------------

class Client {
  constructor(srv, transports, { auth, nsp = "/", manager } = {}) {
    this.manager = manager || new Manager(srv.origin, {
      path: srv.path,
      transports,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      randomizationFactor: 0,
      timeout: 8000,
    });
    this.inbox = [];
    this.waiters = [];
    this.socket = this.manager.socket(nsp, auth === undefined ? {} : { auth });
    this.socket.onAny((event, ...args) => {
      this.inbox.push({ event, args });
      this._wake();
    });
    // A disconnect nobody asked for shows up in the inbox, so the check waiting for an event
    // says so; settle() recovers before the next check (the Manager reconnects by itself).
    this.connects = 0;
    this.settledConnects = 0;
    this.socket.on("connect", () => this.connects++);
    this.socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") return;
      this.inbox.push({ event: "(disconnect)", args: [reason] });
      this._wake();
    });
  }

  // Before a check: connected, and an inbox emptied of what an earlier failure left (after an
  // automatic reconnection, its `auth` event included), so one failure does not fail the rest.
  async settle() {
    if (!this.socket.connected && !this.socket.active) this.socket.connect();
    await this.connected();
    if (this.connects > this.settledConnects + 1) {
      const deadline = Date.now() + 8000;
      while (!this.inbox.some((e) => e.event === "auth") && Date.now() < deadline) await sleep(20);
    }
    this.settledConnects = this.connects - 1;
    this.inbox = [];
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  // Resolves with the args of the next event named `event`; other events before it fail.
  async next(event, ms = 8000) {
    const deadline = Date.now() + ms;
    while (!this.inbox.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" event within ${ms} ms`);
      await new Promise((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const e = this.inbox.shift();
    if (e.event !== event) {
      throw new Error(`expected event "${event}", got "${e.event}" ${JSON.stringify(e.args).slice(0, 200)}`);
    }
    return e.args;
  }

  async connected(ms = 8000) {
    if (this.socket.connected) return;
    const [err] = await Promise.race([
      once(this.socket, "connect").then(() => [null]),
      once(this.socket, "connect_error"),
      sleep(ms).then(() => [new Error(`not connected within ${ms} ms`)]),
    ]);
    if (err) throw new Error(`connect failed: ${err.message || err}`);
  }

  async echo(args, what) {
    this.socket.emit("message", ...args);
    const got = await this.next("message-back");
    assertEqual(args, got, `${what}: message-back`);
  }

  engine() {
    return this.manager.engine;
  }

  close() {
    this.socket.disconnect();
    this.manager._close ? this.manager._close() : this.manager.engine && this.manager.engine.close();
  }
}

async function waitTransport(client, name, ms = 8000) {
  const deadline = Date.now() + ms;
  while (client.engine().transport.name !== name) {
    if (Date.now() > deadline) {
      throw new Error(`transport is ${client.engine().transport.name}, not ${name}, after ${ms} ms`);
    }
    await sleep(20);
  }
}

// ---- payloads ---------------------------------------------------------------------------------

const STRINGS = [
  "",
  "plain",
  'with "quotes", \\backslashes\\ and / slashes',
  "line\nfeed\r\ncarriage\ttab",
  "controls \u0001 \u0008 \u001e \u001f \u007f end", // \x1e is the polling record separator
  "\u2028 \u2029 </script> <!-- -->",
  "héllo wörld € ✓ 😀 𝄞",
  "{\"looks\":\"like json\"}",
  "42[\"looks like a packet\"]",
];

const NUMBERS = [
  0, 1, -1, 42, 2147483647, -2147483648, 4294967296, 9007199254740991, -9007199254740991,
  0.5, -0.1, 3.141592653589793, 1e21, 1.5e-7, 1.7976931348623157e308, 5e-324,
  12345678901234567890, // past int64: JSON.parse gives the double 12345678901234567000
];

const NESTED = {
  a: 1,
  b: "two",
  c: [1, [2, [3, [4, [5, { deep: [true, false, null] }]]]]],
  d: { e: { f: { g: { h: { i: "bottom" } } } } },
  empty: {},
  emptyList: [],
  "key with spaces and é": "v",
  "": "empty key",
};

function bytes(n, seed = 1) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function allBytes() {
  const b = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) b[i] = i;
  return b;
}

function asciiText(n) {
  let s = "";
  let i = 0;
  while (s.length < n) s += `[${i++}]abcdefghijklmnopqrstuvwxyz`;
  return s.slice(0, n);
}

// ---- the scenario for one transport setting ---------------------------------------------------

async function runMode(tap, srv, mode, transports, endTransport) {
  const T = (name) => `[${mode}] ${name}`;
  const auth = { token: "abc-123", n: 7, nested: { list: [1, "two", null, true] }, text: "é😀" };
  const c = new Client(srv, transports, { auth });

  const okConnect = await tap.check(T("connect to / with auth: `auth` event echoes it"), async () => {
    await c.connected();
    assert(typeof c.socket.id === "string" && c.socket.id.length > 0, "no socket id");
    const got = await c.next("auth");
    assertEqual([auth], got, "auth");
  });
  if (!okConnect) {
    c.close();
    return;
  }
  c.settledConnects = c.connects - 1;
  // Every later check starts from a connected client with an empty inbox.
  const check = (name, fn, ms) => tap.check(name, async () => {
    await c.settle();
    await fn();
    c.settledConnects = c.connects - 1; // reconnections the check made on purpose are settled
  }, ms);

  await check(T(`transport is ${endTransport}`), async () => {
    await waitTransport(c, endTransport);
    if (mode === "upgrade") {
      // Still one Engine.IO session: the upgrade does not reconnect the Socket.IO socket.
      assert(c.socket.connected, "socket disconnected during the upgrade");
    }
  });

  await check(T("message: strings (escapes, control characters, U+2028, astral)"), async () => {
    for (const s of STRINGS) await c.echo([s], `string ${JSON.stringify(s)}`);
    await c.echo(STRINGS, "all strings as arguments of one event");
  });

  await check(T("message: numbers (integers, doubles, extremes, past int64)"), async () => {
    for (const n of NUMBERS) await c.echo([n], `number ${n}`);
    await c.echo(NUMBERS, "all numbers in one event");
  });

  await check(T("message: objects and nested arrays"), async () => {
    await c.echo([{ a: 1 }], "small object");
    await c.echo([NESTED], "nested object");
    await c.echo([[NESTED, [NESTED]], { list: [NESTED] }], "nested in arrays");
  });

  await check(T("message: null, booleans, no argument, many arguments"), async () => {
    await c.echo([null], "null");
    await c.echo([true, false], "booleans");
    await c.echo([], "no argument");
    const many = [];
    for (let i = 0; i < 40; i++) many.push(i % 3 === 0 ? `s${i}` : i % 3 === 1 ? i : { i });
    await c.echo(many, "40 arguments");
  });

  await check(T("message: a string holding U+0000 (JSON \\u0000)"), async () => {
    await c.echo(["nul \u0000 inside", "\u0000"], "U+0000");
  });

  await check(T("message: a lone UTF-16 surrogate survives (JSON \\ud800 escape)"), async () => {
    await c.echo(["lone \ud800 high", "lone \udfff low"], "lone surrogates");
  });

  await check(T("binary: a Buffer as the only argument"), async () => {
    await c.echo([Buffer.from([1, 2, 3])], "3 bytes");
    await c.echo([allBytes()], "bytes 0..255");
    await c.echo([Buffer.alloc(0)], "empty buffer");
  });

  await check(T("binary: nested in objects and arrays, mixed with JSON"), async () => {
    await c.echo([{ data: bytes(100, 2), meta: { inner: bytes(10, 3), name: "x" } }], "in objects");
    await c.echo([[bytes(5, 4), "text", [bytes(6, 5)]]], "in arrays");
    await c.echo(["before", bytes(7, 6), 3, { b: bytes(8, 7) }, null], "between JSON arguments");
    // The `_placeholder` key is the wire form of an attachment; a client object that looks like
    // one is not the case here, but an object with other keys around binaries is.
    await c.echo([{ _placeholder: false, num: "zero", bin: bytes(3, 8) }], "placeholder-like keys");
  });

  await check(T("binary: several attachments in one event"), async () => {
    const bins = [];
    for (let i = 0; i < 8; i++) bins.push(bytes(1 + i * 37, 10 + i));
    await c.echo(bins, "8 attachments as arguments");
    await c.echo([{ list: bins.slice(0, 4) }, bins.slice(4)], "8 attachments nested");
    await c.echo([allBytes(), allBytes()], "the same bytes twice");
  });

  await check(T("100 events (1 in 5 binary) come back in order"), async () => {
    const sent = [];
    for (let i = 0; i < 100; i++) {
      const args = i % 5 === 4 ? [i, Buffer.from([i, 255 - i])] : [i, `n${i}`];
      sent.push(args);
      c.socket.emit("message", ...args);
    }
    for (let i = 0; i < 100; i++) {
      const got = await c.next("message-back");
      assertEqual(sent[i], got, `event #${i}`);
    }
  }, 20000);

  await check(T("message-with-ack: acknowledged with the same arguments, binary included"), async () => {
    const args = [1, "2", { 3: [true] }, Buffer.from([9, 8, 7]), { nested: [bytes(20, 9)] }];
    const got = await new Promise((resolve, reject) => {
      c.socket.timeout(8000).emit("message-with-ack", ...args, (err, ...res) => {
        if (err) reject(new Error(`no ack: ${err.message}`));
        else resolve(res);
      });
    });
    assertEqual(args, got, "ack arguments");
    const none = await new Promise((resolve, reject) => {
      c.socket.timeout(8000).emit("message-with-ack", (err, ...res) => {
        if (err) reject(new Error(`no ack: ${err.message}`));
        else resolve(res);
      });
    });
    assertEqual([], none, "ack of an event without arguments");
    // Several acks in flight at once, each matched to its own id.
    const all = await Promise.all([0, 1, 2, 3, 4].map((i) => c.socket.timeout(8000)
      .emitWithAck("message-with-ack", `ack-${i}`)));
    assertEqual(["ack-0", "ack-1", "ack-2", "ack-3", "ack-4"], all, "concurrent acks");
    assert(c.inbox.length === 0, `unexpected event ${c.inbox[0] && c.inbox[0].event}`);
  });

  await check(T("/custom on the same connection: `auth` echoes its own auth"), async () => {
    const cauth = { room: "custom", k: [1, 2] };
    const cc = new Client(srv, transports, { auth: cauth, nsp: "/custom", manager: c.manager });
    try {
      await cc.connected();
      assertEqual([cauth], await cc.next("auth"), "/custom auth");
      assert(cc.socket.id !== c.socket.id, "/ and /custom got the same socket id");
      // `/` is unaffected.
      await c.echo(["after /custom"], "/ after /custom connected");
    } finally {
      // Leaving /custom connected would keep this Manager open when a later check disconnects
      // `/`, and change what that check tests.
      cc.socket.disconnect();
    }
    await c.echo(["after /custom left"], "/ after /custom disconnected");
  });

  await check(T("undeclared namespace: connect_error \"Invalid namespace\""), async () => {
    const bad = c.manager.socket("/no-such-namespace", { auth: { x: 1 } });
    const [err] = await Promise.race([
      once(bad, "connect_error"),
      once(bad, "connect").then(() => [null]),
    ]);
    bad.disconnect();
    assert(err, "connected to an undeclared namespace");
    assert(err.message === "Invalid namespace", `connect_error message ${JSON.stringify(err.message)}`);
    await c.echo(["still here"], "/ after the refused namespace");
  });

  await check(T("broadcast from one of 3 clients reaches all 3, sender included"), async () => {
    const others = [new Client(srv, transports, { auth: { i: 1 } }), new Client(srv, transports, { auth: { i: 2 } })];
    try {
      for (const o of others) {
        await o.connected();
        await o.next("auth");
      }
      const args = ["hello all", { n: 3 }, Buffer.from([0xca, 0xfe])];
      c.socket.emit("broadcast", ...args);
      for (const [i, cl] of [c, ...others].entries()) {
        assertEqual(args, await cl.next("broadcast-back"), `client ${i}`);
      }
      await sleep(200);
      for (const [i, cl] of [c, ...others].entries()) {
        assert(cl.inbox.length === 0, `client ${i} got an extra ${cl.inbox[0] && cl.inbox[0].event}`);
      }
    } finally {
      for (const o of others) o.close();
    }
  });

  await check(T("500 KB text and 500 KB binary arguments"), async () => {
    await c.echo([asciiText(500 * 1000)], "500 KB text");
    await c.echo([bytes(500 * 1000, 99)], "500 KB binary");
  }, 30000);

  await check(T("disconnect() then connect(): new session, `auth` again"), async () => {
    const oldId = c.socket.id;
    const closed = once(c.socket, "disconnect");
    c.socket.disconnect();
    const [reason] = await closed;
    assert(reason === "io client disconnect", `disconnect reason ${reason}`);
    c.socket.connect();
    await c.connected();
    assertEqual([auth], await c.next("auth"), "auth after reconnect");
    assert(c.socket.id !== oldId, "same socket id after a new connect");
    await c.echo(["after reconnect", Buffer.from([1])], "echo after reconnect");
  });

  await check(T("Engine.IO connection lost: the client reconnects by itself"), async () => {
    const oldEngine = c.engine().id;
    const gone = once(c.socket, "disconnect");
    c.engine().close(); // the Manager sees a closed transport and reconnects (no disconnect())
    await gone;
    await c.connected();
    c.inbox = c.inbox.filter((e) => e.event !== "(disconnect)");
    assertEqual([auth], await c.next("auth"), "auth after automatic reconnection");
    assert(c.engine().id !== oldEngine, "same Engine.IO sid after reconnection");
    await waitTransport(c, endTransport);
    await c.echo(["after automatic reconnection"], "echo after automatic reconnection");
  }, 15000);

  if (mode === "upgrade") {
    await check(T("a session the server closes while the client upgrades: the client sees it"), async () => {
      // After an automatic reconnection the client starts on polling and probes WebSocket; a
      // malformed packet sent at once (Engine.IO message "abc": unknown Socket.IO type, which
      // every server refuses by closing the session) is handled while the probe is under way.
      // The client must learn that the session is gone (here within 5 s; a hung client only
      // notices at the ping timeout). Repeated, as the window is narrow.
      for (let round = 0; round < 20; round++) {
        const m = new Manager(srv.origin, {
          path: srv.path, transports, reconnectionDelay: 50, reconnectionDelayMax: 50, randomizationFactor: 0,
        });
        const s = m.socket("/", { auth: { round } });
        try {
          let auths = 0;
          s.on("auth", () => auths++);
          const deadline = Date.now() + 5000;
          const until = async (pred, what) => {
            while (!pred()) {
              if (Date.now() > deadline) throw new Error(`round ${round}: ${what} within 5 s`);
              await sleep(5);
            }
          };
          await until(() => auths === 1 && m.engine.transport.name === "websocket", "no upgraded session");
          let gone = 0;
          s.on("disconnect", () => gone++);
          m.engine.write("abc");
          await until(() => gone === 1, "the first close not seen");
          await until(() => auths === 2, "no reconnection");
          const reconnected = m.engine.id;
          m.engine.write("abc");
          await until(() => gone === 2,
            `the close of session ${reconnected} (during its upgrade, transport ` +
            `${m.engine && m.engine.transport && m.engine.transport.name}) not seen`);
        } finally {
          s.disconnect();
          m._close();
        }
      }
    }, 60000);
  }

  c.close();
}

async function main() {
  const tap = new Tap();
  let srv;
  try {
    srv = await startServer(["--cors", "*"]);
  } catch (e) {
    process.stdout.write(`Bail out! ${e.message}\n`);
    process.exit(1);
  }
  tap.comment(`server ${srv.url}`);
  const modes = [
    ["polling", ["polling"], "polling"],
    ["websocket", ["websocket"], "websocket"],
    ["upgrade", ["polling", "websocket"], "websocket"],
  ];
  for (const [mode, transports, end] of modes) {
    if (only && only !== mode) continue;
    await runMode(tap, srv, mode, transports, end);
  }
  await tap.check("server exits 0 on SIGTERM", async () => {
    const r = await srv.stop();
    assert(r === 0, `exit status ${r}`);
  }, 15000);
  tap.finish();
}

main().catch((e) => {
  process.stdout.write(`Bail out! ${e.stack || e}\n`);
  process.exit(1);
});
