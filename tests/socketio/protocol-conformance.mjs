#!/usr/bin/env node
// Raw Socket.IO v5 / Engine.IO v4 conformance checks, byte for byte on the wire, against a
// Socket.IO echo server: our socketio-echo (SOCKETIO_ECHO=PATH) or the npm socket.io 4.8
// reference (SIO_SERVER=reference); see sio-harness.mjs. Written here from the protocol's facts
// (socketio/socket.io-protocol and engine.io-protocol), with Node's fetch for HTTP long-polling
// and npm `ws` for WebSocket. TAP on stdout, exit 1 on any failure.
//
//   SIO_SERVER=reference node tests/socketio/protocol-conformance.mjs
//
// A high-level client tolerates encodings a server gets wrong (it re-parses JSON, it does not
// look at frame types); these checks do not. Two servers are started:
//   calm: --ping-interval 20000 --ping-timeout 20000 (encoding checks, no heartbeat in the way);
//   fast: --ping-interval 300 --ping-timeout 200 --connect-timeout 1000 (the official test
//         suite's timings: heartbeat and connect-timeout checks).
// Both with --max-payload 1000000. The raw clients answer every server ping ("2") with a pong
// ("3") unless a check says otherwise, and leave pings out of what they return.
//
// Exact bytes are asserted wherever the reply is determined by what was sent (the server echoes
// JSON that JSON.stringify writes the same way: ASCII, integers, no spaces). Where a JSON writer
// may legitimately differ (non-ASCII written raw or escaped), the packet header is compared as
// bytes and the JSON as a value.
//
// SPDX-License-Identifier: MIT

import {
  Tap, startServer, requireDep, assert, assertEqual, sleep,
} from "./sio-harness.mjs";

const WebSocket = requireDep("ws");

const RS = "\x1e"; // Engine.IO v4 polling record separator
const PH = (n) => `{"_placeholder":true,"num":${n}}`;
const WAIT_MS = 5000;
const CALM = { pingInterval: 20000, pingTimeout: 20000 };
const FAST = { pingInterval: 300, pingTimeout: 200, connectTimeout: 1000 };
// Slack for a loaded 2-core machine on every upper time bound.
const SLACK_MS = 3000;

// ---- raw WebSocket client ---------------------------------------------------------------------

class RawWs {
  constructor(srv, { pong = true } = {}) {
    this.srv = srv;
    this.pong = pong;
    this.frames = [];
    this.pings = 0;
    this.pingTimes = [];
    this.closed = null;
    this.waiters = [];
    this.t0 = Date.now();
  }

  static async open(srv, opts = {}) {
    const c = new RawWs(srv, opts);
    // Lower time bounds are measured from before the request: no server timer starts earlier.
    c.t0 = Date.now();
    const url = `${srv.origin.replace(/^http/, "ws")}${srv.path}?EIO=4&transport=websocket`;
    c.ws = new WebSocket(url);
    c.ws.on("message", (data, isBinary) => {
      if (!isBinary && data.toString() === "2") {
        c.pings++;
        c.pingTimes.push(Date.now());
        if (c.pong) c.ws.send("3");
      } else {
        c.frames.push(isBinary ? { binary: Buffer.from(data) } : { text: data.toString() });
      }
      c._wake();
    });
    c.ws.on("close", (code) => {
      c.closed = { code, at: Date.now() };
      c._wake();
    });
    c.ws.on("error", (e) => {
      c.error = e;
      c._wake();
    });
    await new Promise((resolve, reject) => {
      c.ws.once("open", resolve);
      c.ws.once("error", reject);
    });
    const hs = await c.nextText();
    assert(hs.startsWith("0"), `Engine.IO handshake expected, got ${JSON.stringify(hs)}`);
    c.handshake = JSON.parse(hs.slice(1));
    return c;
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async _until(pred, what, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = pred();
      if (r) return r;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  async next(ms = WAIT_MS) {
    await this._until(() => this.frames.length || this.closed, "a frame", ms);
    if (!this.frames.length) throw new Error(`connection closed (${this.closed.code}) while waiting for a frame`);
    return this.frames.shift();
  }

  async nextText(ms = WAIT_MS) {
    const f = await this.next(ms);
    if (f.text === undefined) throw new Error(`text frame expected, got binary ${f.binary.toString("hex")}`);
    return f.text;
  }

  async expectText(want, what = "frame") {
    const got = await this.nextText();
    if (got !== want) throw new Error(`${what}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }

  async expectBinary(want, what = "binary frame") {
    const f = await this.next();
    if (f.binary === undefined) throw new Error(`${what}: binary frame expected, got text ${JSON.stringify(f.text)}`);
    if (!f.binary.equals(Buffer.from(want))) {
      throw new Error(`${what}: want ${Buffer.from(want).toString("hex")}, got ${f.binary.toString("hex")}`);
    }
  }

  // Waits for the server to close the connection; fails on any data frame before that.
  async expectClose(ms = WAIT_MS) {
    await this._until(() => this.frames.length || this.closed, "the server to close", ms);
    if (this.frames.length && !this.closed) {
      const f = this.frames[0];
      throw new Error(`expected the session to close, got ${f.text !== undefined ? JSON.stringify(f.text) : "binary"}`);
    }
    return this.closed;
  }

  send(x) {
    this.ws.send(x);
  }

  // CONNECT to `nsp` (text after "40"), expect the CONNECT reply and the `auth` event;
  // returns the Socket.IO sid.
  async connect(nsp = "", auth = "") {
    this.send(`40${nsp}${auth}`);
    const prefix = nsp ? `40${nsp.endsWith(",") ? nsp : nsp + ","}` : "40";
    const reply = await this.nextText();
    assert(reply.startsWith(prefix), `CONNECT reply: want ${prefix}{"sid":...}, got ${JSON.stringify(reply)}`);
    const body = JSON.parse(reply.slice(prefix.length));
    assertEqual(["sid"], Object.keys(body), "CONNECT reply keys");
    assert(typeof body.sid === "string" && body.sid.length > 0, "CONNECT reply sid is not a string");
    const ev = prefix.replace(/^40/, "42");
    const authEv = await this.nextText();
    assert(authEv.startsWith(`${ev}["auth",`), `auth event: got ${JSON.stringify(authEv)}`);
    return { sid: body.sid, auth: JSON.parse(authEv.slice(ev.length))[1], authText: authEv };
  }

  close() {
    try {
      this.ws.terminate();
    } catch (_) { /* already closed */ }
  }
}

// ---- raw HTTP long-polling client -------------------------------------------------------------

class RawPolling {
  constructor(srv) {
    this.srv = srv;
    this.base = `${srv.url}?EIO=4&transport=polling`;
    this.records = [];
    this.pings = 0;
  }

  static async open(srv) {
    const c = new RawPolling(srv);
    c.t0 = Date.now(); // before the request: see RawWs.open
    const r = await fetch(c.base, { signal: AbortSignal.timeout(WAIT_MS) });
    assert(r.status === 200, `handshake status ${r.status}`);
    c.handshakeResponse = r;
    const text = await r.text();
    assert(text.startsWith("0"), `Engine.IO handshake expected, got ${JSON.stringify(text)}`);
    c.handshake = JSON.parse(text.slice(1));
    c.sid = c.handshake.sid;
    return c;
  }

  async post(body) {
    const r = await fetch(`${this.base}&sid=${encodeURIComponent(this.sid)}`, {
      method: "POST",
      body,
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      signal: AbortSignal.timeout(WAIT_MS),
    });
    return { status: r.status, text: await r.text() };
  }

  async postOk(body) {
    const r = await this.post(body);
    assert(r.status === 200, `POST ${JSON.stringify(body.slice(0, 60))}: status ${r.status} ${r.text}`);
  }

  // One GET; returns { status, text, records } (pings answered and left out of records).
  async poll(ms = WAIT_MS) {
    const r = await fetch(`${this.base}&sid=${encodeURIComponent(this.sid)}`, {
      signal: AbortSignal.timeout(ms),
    });
    const text = await r.text();
    if (r.status !== 200) return { status: r.status, text, records: [] };
    const records = [];
    let pinged = false;
    for (const rec of text.split(RS)) {
      if (rec === "2") {
        this.pings++;
        pinged = true;
      } else {
        records.push(rec);
      }
    }
    if (pinged) await this.postOk("3");
    return { status: 200, text, records };
  }

  // The next `n` non-ping records, over as many GETs as it takes.
  async nextRecords(n, ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    while (this.records.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} record(s), have ${JSON.stringify(this.records)}`);
      const r = await this.poll(left);
      if (r.status !== 200) throw new Error(`GET status ${r.status} ${r.text} while waiting for records`);
      this.records.push(...r.records);
    }
    return this.records.splice(0, n);
  }

  async expectRecords(want, what) {
    const got = await this.nextRecords(want.length);
    assertEqual(want, got, what);
  }

  // The session must end: a GET answers with a payload holding the close packet "1" (possibly
  // after a noop "6"), or with an HTTP error; after that, a GET with this sid fails.
  async expectSessionGone(ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`session still open after ${ms} ms`);
      let r;
      try {
        r = await this.poll(left);
      } catch (e) {
        if (e.name === "TimeoutError") throw new Error(`session still open after ${ms} ms`);
        throw e;
      }
      if (r.status !== 200) break;
      const data = r.records.filter((x) => x !== "6");
      if (data.includes("1")) break;
      if (data.length) throw new Error(`expected the session to close, got ${JSON.stringify(data)}`);
    }
    const after = await this.poll(WAIT_MS);
    assert(after.status >= 400, `GET after the close: status ${after.status} ${JSON.stringify(after.text)}`);
  }
}

// ---- the checks -------------------------------------------------------------------------------

function checkHandshake(hs, cfg, upgrades, what) {
  assertEqual(["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"],
    Object.keys(hs).sort(), `${what}: handshake keys`);
  assert(typeof hs.sid === "string" && hs.sid.length > 0, `${what}: sid`);
  assertEqual(upgrades, hs.upgrades, `${what}: upgrades`);
  assert(hs.pingInterval === cfg.pingInterval, `${what}: pingInterval ${hs.pingInterval}`);
  assert(hs.pingTimeout === cfg.pingTimeout, `${what}: pingTimeout ${hs.pingTimeout}`);
  assert(hs.maxPayload === 1000000, `${what}: maxPayload ${hs.maxPayload}`);
}

async function withWs(srv, fn, opts) {
  const c = await RawWs.open(srv, opts);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function handshakeChecks(tap, calm) {
  await tap.check("Engine.IO polling handshake through /socket.io/", async () => {
    const c = await RawPolling.open(calm);
    checkHandshake(c.handshake, CALM, ["websocket"], "polling");
    const ct = c.handshakeResponse.headers.get("content-type") || "";
    assert(/^text\/plain/.test(ct), `Content-Type ${ct}`);
  });

  await tap.check("Engine.IO WebSocket handshake through /socket.io/", async () => {
    await withWs(calm, async (c) => checkHandshake(c.handshake, CALM, [], "websocket"));
  });
}

async function connectChecks(tap, calm) {
  await tap.check("CONNECT / without auth: 40{\"sid\"} then 42[\"auth\",{}]", async () => {
    await withWs(calm, async (c) => {
      const r = await c.connect();
      assert(r.authText === '42["auth",{}]', `auth event ${JSON.stringify(r.authText)}`);
      assert(r.sid !== c.handshake.sid, "the Socket.IO sid is the Engine.IO sid");
    });
  });

  await tap.check("CONNECT / with auth: the auth object comes back in `auth`", async () => {
    await withWs(calm, async (c) => {
      const r = await c.connect("", '{"token":"123"}');
      assert(r.authText === '42["auth",{"token":"123"}]', `auth event ${JSON.stringify(r.authText)}`);
    });
    await withWs(calm, async (c) => {
      const auth = { a: "é😀", n: [1, 2.5, null, true, false], o: { deep: { er: [] } }, s: 'q"\\' };
      const r = await c.connect("", JSON.stringify(auth));
      assertEqual(auth, r.auth, "non-ASCII auth (as a JSON value)");
    });
  });

  await tap.check("CONNECT /custom (with and without the comma, with auth)", async () => {
    await withWs(calm, async (c) => {
      const r = await c.connect("/custom,");
      assert(r.authText === '42/custom,["auth",{}]', `auth event ${JSON.stringify(r.authText)}`);
    });
    await withWs(calm, async (c) => {
      const r = await c.connect("/custom");
      assert(r.authText === '42/custom,["auth",{}]', `auth event ${JSON.stringify(r.authText)}`);
    });
    await withWs(calm, async (c) => {
      const r = await c.connect("/custom,", '{"token":"abc"}');
      assert(r.authText === '42/custom,["auth",{"token":"abc"}]', `auth event ${JSON.stringify(r.authText)}`);
    });
  });

  await tap.check("/ and /custom on one connection get distinct sids", async () => {
    await withWs(calm, async (c) => {
      const a = await c.connect();
      const b = await c.connect("/custom,");
      assert(a.sid !== b.sid, "same sid for / and /custom");
      c.send('42["message","still /"]');
      await c.expectText('42["message-back","still /"]');
    });
  });

  await tap.check("undeclared namespace: 44/random,{\"message\":\"Invalid namespace\"}, session stays", async () => {
    await withWs(calm, async (c) => {
      c.send("40/random");
      await c.expectText('44/random,{"message":"Invalid namespace"}', "CONNECT_ERROR");
      c.send('40/other,{"token":"x"}');
      await c.expectText('44/other,{"message":"Invalid namespace"}', "CONNECT_ERROR with auth");
      const r = await c.connect();
      assert(r.authText === '42["auth",{}]', "CONNECT / after a refusal");
    });
  });

  await tap.check("CONNECT over polling: reply and auth in polling records", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk('40{"token":"p"}');
    const [reply, auth] = await c.nextRecords(2);
    assert(/^40\{"sid":"[^"]+"\}$/.test(reply), `CONNECT reply ${JSON.stringify(reply)}`);
    assert(auth === '42["auth",{"token":"p"}]', `auth event ${JSON.stringify(auth)}`);
    await c.postOk("40/nope,");
    await c.expectRecords(['44/nope,{"message":"Invalid namespace"}'], "CONNECT_ERROR over polling");
  });

  await tap.check("DISCONNECT (41) keeps the Engine.IO session; CONNECT again gets a new sid", async () => {
    await withWs(calm, async (c) => {
      const first = await c.connect();
      c.send("41");
      // A reply to a later packet proves 41 was handled (no reply of its own).
      await c.connect("/custom,");
      const again = await c.connect();
      assert(again.sid !== first.sid, "same sid after DISCONNECT and CONNECT");
      c.send("41/custom,");
      c.send('42["message","to /"]');
      await c.expectText('42["message-back","to /"]', "event on / after leaving /custom");
    });
  });
}

async function eventChecks(tap, calm) {
  await tap.check("EVENT over WebSocket: 42[...] echoed byte for byte", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send('42["message",1,"2",{"3":[true]}]');
      await c.expectText('42["message-back",1,"2",{"3":[true]}]');
      c.send('42["message"]');
      await c.expectText('42["message-back"]', "event without arguments");
      c.send('42["message",null,[],{},-5,"a\\"b\\\\c\\nd"]');
      await c.expectText('42["message-back",null,[],{},-5,"a\\"b\\\\c\\nd"]', "escapes");
    });
  });

  await tap.check("ACK over WebSocket: 42<id>[...] answered 43<id>[...]", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      await c.expectText('43456[1,"2",{"3":[false]}]');
      c.send('4212["message-with-ack"]');
      await c.expectText("4312[]", "ack without arguments");
      c.send('420["message-with-ack","zero"]');
      await c.expectText('430["zero"]', "ack id 0");
    });
  });

  await tap.check("EVENT and ACK on /custom carry the namespace", async () => {
    await withWs(calm, async (c) => {
      await c.connect("/custom,");
      c.send('42/custom,["message","x"]');
      await c.expectText('42/custom,["message-back","x"]');
      c.send('42/custom,7["message-with-ack","y"]');
      await c.expectText('43/custom,7["y"]');
    });
  });

  await tap.check("BINARY_EVENT over WebSocket: text frame 45n-, then n binary frames", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send(`452-["message",${PH(0)},${PH(1)}]`);
      c.send(Buffer.from([1, 2, 3]));
      c.send(Buffer.from([4, 5, 6]));
      await c.expectText(`452-["message-back",${PH(0)},${PH(1)}]`);
      await c.expectBinary([1, 2, 3], "attachment 0");
      await c.expectBinary([4, 5, 6], "attachment 1");
      c.send(`451-["message",{"a":[${PH(0)}]}]`);
      c.send(Buffer.from([7]));
      await c.expectText(`451-["message-back",{"a":[${PH(0)}]}]`, "nested placeholder");
      await c.expectBinary([7]);
      c.send(`451-["message",${PH(0)}]`);
      c.send(Buffer.alloc(0));
      await c.expectText(`451-["message-back",${PH(0)}]`, "empty attachment");
      await c.expectBinary([], "empty attachment");
    });
  });

  await tap.check("BINARY_ACK over WebSocket: 46n-<id>[...]", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send(`452-789["message-with-ack",${PH(0)},${PH(1)}]`);
      c.send(Buffer.from([1, 2, 3]));
      c.send(Buffer.from([4, 5, 6]));
      await c.expectText(`462-789[${PH(0)},${PH(1)}]`);
      await c.expectBinary([1, 2, 3]);
      await c.expectBinary([4, 5, 6]);
    });
  });

  await tap.check("BINARY_EVENT and BINARY_ACK on /custom: 45n-/custom,", async () => {
    await withWs(calm, async (c) => {
      await c.connect("/custom,");
      c.send(`451-/custom,["message",${PH(0)}]`);
      c.send(Buffer.from([0xff, 0x00]));
      await c.expectText(`451-/custom,["message-back",${PH(0)}]`);
      await c.expectBinary([0xff, 0x00]);
      c.send(`451-/custom,5["message-with-ack",${PH(0)}]`);
      c.send(Buffer.from([0x80]));
      await c.expectText(`461-/custom,5[${PH(0)}]`);
      await c.expectBinary([0x80]);
    });
  });

  await tap.check("EVENT and ACK over polling: records echoed byte for byte", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    await c.postOk('42["message",1,"2",{"3":[true]}]');
    await c.expectRecords(['42["message-back",1,"2",{"3":[true]}]'], "event");
    await c.postOk('42456["message-with-ack",1,"2",{"3":[false]}]');
    await c.expectRecords(['43456[1,"2",{"3":[false]}]'], "ack");
  });

  await tap.check("polling: several packets in one POST, answered in order", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    await c.postOk(['42["message","a"]', '42["message","b"]', '4213["message-with-ack","c"]'].join(RS));
    await c.expectRecords(['42["message-back","a"]', '42["message-back","b"]', '4313["c"]'], "three packets");
  });

  await tap.check("polling: \\u001e (the record separator) stays escaped inside JSON", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    await c.postOk('42["message","a\\u001eb\\u0001c\\u001f"]');
    await c.expectRecords(['42["message-back","a\\u001eb\\u0001c\\u001f"]'], "control characters");
  });

  await tap.check("\\u0000 inside a JSON string is echoed, escaped", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send('42["message","a\\u0000b"]');
      await c.expectText('42["message-back","a\\u0000b"]');
    });
  });

  await tap.check("a lone UTF-16 surrogate (\\ud800) is echoed, escaped", async () => {
    await withWs(calm, async (c) => {
      await c.connect();
      c.send('42["message","a\\ud800b\\udfff"]');
      await c.expectText('42["message-back","a\\ud800b\\udfff"]');
    });
  });

  await tap.check("BINARY_EVENT and BINARY_ACK over polling: base64 `b` records", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    await c.postOk([`451-["message",${PH(0)}]`, "bAQID"].join(RS));
    await c.expectRecords([`451-["message-back",${PH(0)}]`, "bAQID"], "binary event");
    await c.postOk([`452-9["message-with-ack",${PH(0)},{"k":${PH(1)}}]`, "b/wD+", "bBAUG"].join(RS));
    await c.expectRecords([`462-9[${PH(0)},{"k":${PH(1)}}]`, "b/wD+", "bBAUG"], "binary ack");
    await c.postOk([`451-["message",${PH(0)}]`, "b"].join(RS));
    await c.expectRecords([`451-["message-back",${PH(0)}]`, "b"], "empty attachment");
  });

  await tap.check("binary from polling, header and attachments in separate POSTs", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    await c.postOk(`452-["message",${PH(1)},${PH(0)}]`);
    await c.postOk("bAQ==");
    await c.postOk("bAgM=");
    const got = await c.nextRecords(3);
    // Placeholders renumbered in the order they appear (what socket.io does), or kept with their
    // attachments in the original order: the same event either way.
    const renumbered = [`452-["message-back",${PH(0)},${PH(1)}]`, "bAgM=", "bAQ=="];
    const kept = [`452-["message-back",${PH(1)},${PH(0)}]`, "bAQ==", "bAgM="];
    assert(JSON.stringify(got) === JSON.stringify(renumbered) || JSON.stringify(got) === JSON.stringify(kept),
      `got ${JSON.stringify(got)}, want ${JSON.stringify(renumbered)} (or ${JSON.stringify(kept)})`);
  });

  await tap.check("broadcast: every socket of the namespace, sender included, text and binary", async () => {
    const a = await RawWs.open(calm);
    const b = await RawWs.open(calm);
    try {
      await a.connect();
      await b.connect();
      a.send('42["broadcast","x",{"y":1}]');
      await a.expectText('42["broadcast-back","x",{"y":1}]', "sender");
      await b.expectText('42["broadcast-back","x",{"y":1}]', "other");
      b.send(`451-["broadcast",${PH(0)}]`);
      b.send(Buffer.from([9, 9]));
      for (const [who, c] of [["other", a], ["sender", b]]) {
        await c.expectText(`451-["broadcast-back",${PH(0)}]`, who);
        await c.expectBinary([9, 9], who);
      }
    } finally {
      a.close();
      b.close();
    }
  });
}

// Each: after a good CONNECT (unless `first`), the server must close the connection.
const MALFORMED = [
  ["unknown packet type 4abc", ["4abc"]],
  ["empty Socket.IO packet (Engine.IO message \"4\")", ["4"]],
  ["EVENT payload not an array 42{}", ["42{}"]],
  ["EVENT payload not JSON 42[\"message\"", ['42["message"']],
  ["EVENT with an empty array 42[]", ["42[]"]],
  ["invalid ack id 42abc[...]", ['42abc["message-with-ack",1]']],
  ["reserved event name 42[\"connect\"]", ['42["connect"]']],
  ["CONNECT payload not an object 40\"abc\"", ['40"abc"'], true],
  ["CONNECT payload an array 40[1]", ["40[1]"], true],
  ["CONNECT to a namespace already connected", ["40"]],
  ["EVENT to a namespace not connected", ['42/custom,["message",1]']],
  ["DISCONNECT of a namespace not connected", ["41/custom,"]],
  ["CONNECT_ERROR sent by the client", ['44{"message":"x"}']],
  ["binary frame without a BINARY_EVENT header", [Buffer.from([1, 2])]],
  ["placeholder num beyond the attachments", [`451-["message",${PH(5)}]`, Buffer.from([7])]],
  ["placeholder num not an integer", [`451-["message",{"_placeholder":true,"num":"0"}]`, Buffer.from([7])]],
];

async function malformedChecks(tap, calm) {
  // A bystander session on the same server must not notice anything.
  const bystander = await RawWs.open(calm);
  await bystander.connect();
  for (const [name, sends, first] of MALFORMED) {
    await tap.check(`malformed: ${name} closes the session`, async () => {
      await withWs(calm, async (c) => {
        if (!first) await c.connect();
        for (const s of sends) c.send(s);
        await c.expectClose();
      });
    });
  }
  await tap.check("malformed over polling (4abc): the session ends", async () => {
    const c = await RawPolling.open(calm);
    await c.postOk("40");
    await c.nextRecords(2);
    const r = await c.post("4abc");
    assert(r.status === 200 || r.status === 400, `POST status ${r.status}`);
    await c.expectSessionGone();
  });
  await tap.check("a bystander session is unaffected by all of the above", async () => {
    bystander.send('42["message","bystander"]');
    await bystander.expectText('42["message-back","bystander"]');
  });
  bystander.close();
}

async function timingChecks(tap, fast) {
  await tap.check("fast server handshake advertises pingInterval 300, pingTimeout 200", async () => {
    await withWs(fast, async (c) => checkHandshake(c.handshake, FAST, [], "websocket"));
  });

  await tap.check("heartbeat over WebSocket: pings every ~300 ms, answered, session stays", async () => {
    await withWs(fast, async (c) => {
      await c.connect();
      await c._until(() => c.pings >= 3, "3 pings", 3 * (FAST.pingInterval + SLACK_MS));
      const t = c.pingTimes;
      // Pings never come early: ping k at least k intervals after the request (the gap between
      // two arrivals can be shorter when the first was delayed on its way, so not that).
      for (let k = 0; k < 3; k++) {
        const after = t[k] - c.t0;
        assert(after >= (k + 1) * FAST.pingInterval - 50, `ping ${k + 1} after only ${after} ms`);
      }
      c.send('42["message","alive"]');
      await c.expectText('42["message-back","alive"]');
    });
  });

  await tap.check("heartbeat over WebSocket: no pong closes the session (ping timeout)", async () => {
    await withWs(fast, async (c) => {
      await c.connect();
      const closed = await c.expectClose(FAST.pingInterval + FAST.pingTimeout + SLACK_MS);
      const after = closed.at - c.t0;
      assert(after >= FAST.pingInterval + FAST.pingTimeout - 100, `closed after only ${after} ms`);
      assert(c.pings >= 1, "closed without a ping");
    }, { pong: false });
  });

  await tap.check("heartbeat over polling: a GET returns \"2\", POST \"3\", three times", async () => {
    const c = await RawPolling.open(fast);
    await c.postOk("40");
    await c.nextRecords(2);
    for (let i = 0; i < 3; i++) {
      const r = await c.poll(FAST.pingInterval + SLACK_MS);
      assert(r.status === 200 && r.text === "2", `poll ${i}: ${r.status} ${JSON.stringify(r.text)}`);
    }
    await c.postOk('42["message","alive"]');
    await c.expectRecords(['42["message-back","alive"]'], "echo after the heartbeats");
  });

  await tap.check("heartbeat over polling: no pong ends the session", async () => {
    const c = await RawPolling.open(fast);
    const r = await fetch(`${c.base}&sid=${c.sid}`, { signal: AbortSignal.timeout(FAST.pingInterval + SLACK_MS) });
    assert(r.status === 200 && (await r.text()) === "2", "the first poll is not a ping");
    // Not answered: within pingTimeout (+ slack) the session is gone.
    await c.expectSessionGone(FAST.pingTimeout + SLACK_MS);
  });

  await tap.check("connect timeout (1000 ms) closes a WebSocket session that sends no CONNECT", async () => {
    await withWs(fast, async (c) => {
      const closed = await c.expectClose(FAST.connectTimeout + SLACK_MS);
      const after = closed.at - c.t0;
      assert(after >= FAST.connectTimeout - 100, `closed after only ${after} ms`);
      assert(c.pings >= 1, "no heartbeat was exchanged (so this may be a ping timeout)");
    });
  });

  await tap.check("connect timeout closes a polling session that sends no CONNECT", async () => {
    const c = await RawPolling.open(fast);
    await c.expectSessionGone(FAST.connectTimeout + SLACK_MS);
    const after = Date.now() - c.t0;
    assert(after >= FAST.connectTimeout - 100, `closed after only ${after} ms`);
  });

  await tap.check("connect timeout: a session that only got CONNECT_ERROR is closed too", async () => {
    await withWs(fast, async (c) => {
      c.send("40/random");
      await c.expectText('44/random,{"message":"Invalid namespace"}');
      const closed = await c.expectClose(FAST.connectTimeout + SLACK_MS);
      assert(closed.at - c.t0 >= FAST.connectTimeout - 100, `closed after only ${closed.at - c.t0} ms`);
    });
  });

  await tap.check("connect timeout does not close a session that connected", async () => {
    await withWs(fast, async (c) => {
      await c.connect();
      // The server's own pings are the clock: wait until well past the connect timeout.
      await c._until(() => c.closed || (c.pingTimes.length && c.pingTimes[c.pingTimes.length - 1] - c.t0 >=
        FAST.connectTimeout + 500), "pings past the connect timeout", FAST.connectTimeout + 500 + SLACK_MS * 2);
      assert(!c.closed, `closed (${c.closed && c.closed.code}) after CONNECT`);
      c.send('42["message","late"]');
      await c.expectText('42["message-back","late"]');
    });
  });
}

async function main() {
  const tap = new Tap();
  let calm;
  let fast;
  try {
    calm = await startServer(["--ping-interval", String(CALM.pingInterval), "--ping-timeout",
      String(CALM.pingTimeout), "--max-payload", "1000000"]);
    fast = await startServer(["--ping-interval", String(FAST.pingInterval), "--ping-timeout",
      String(FAST.pingTimeout), "--connect-timeout", String(FAST.connectTimeout), "--max-payload", "1000000"]);
  } catch (e) {
    process.stdout.write(`Bail out! ${e.message}\n`);
    if (calm) await calm.stop();
    process.exit(1);
  }
  tap.comment(`calm server ${calm.url}, fast server ${fast.url}`);
  await handshakeChecks(tap, calm);
  await connectChecks(tap, calm);
  await eventChecks(tap, calm);
  await malformedChecks(tap, calm);
  await timingChecks(tap, fast);
  await tap.check("both servers exit 0 on SIGTERM", async () => {
    const [a, b] = await Promise.all([calm.stop(), fast.stop()]);
    assert(a === 0 && b === 0, `exit status ${a}, ${b}`);
  }, 15000);
  tap.finish();
}

main().catch((e) => {
  process.stdout.write(`Bail out! ${e.stack || e}\n`);
  process.exit(1);
});
