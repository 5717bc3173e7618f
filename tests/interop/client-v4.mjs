#!/usr/bin/env node
// Engine.IO v4 interop client (npm engine.io-client 6.x).
//
//   node client-v4.mjs --url http://127.0.0.1:PORT/engine.io/
//        [--transports polling|websocket|polling,websocket] [--expect-transport polling|websocket]
//        [--polling-impl xhr|fetch] [--big] [--no-empty-binary] [--heartbeats N]
//        [--timeout S] [--verbose] [--expect-deflate yes|no]
//
// Connects, checks exact echoes (emoji text, empty text, 100 KiB mixed text, binary 0..255,
// 64 KiB binary, empty binary, optional ~1 MB text, a burst of 200 numbered messages in order),
// waits for N server pings (heartbeats, the server should run with a short ping interval), checks
// the transport the socket ended on, closes from the client and prints `ok`. Exit 0 only then.
// Before closing it prints `sid SID TRANSPORT` (the transport it ended on) for run-interop.py.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const common = require("./common.js");
const { die, Driver, runDataChecks } = common;

const opts = common.parseArgs(process.argv.slice(2), { "--polling-impl": "xhr", "--expect-deflate": "" });
// --expect-deflate yes|no: whether the WebSocket the socket ends on negotiated permessage-deflate
// (engine.io-client always offers it: its perMessageDeflate option defaults to { threshold: 1024 }).
const expectDeflate = opts.flags["--expect-deflate"];
if (expectDeflate !== "" && expectDeflate !== "yes" && expectDeflate !== "no") die(`--expect-deflate: yes or no, not ${expectDeflate}`);
// xhr: the Node default (xmlhttprequest-ssl over node:http); fetch: Node's built-in fetch.
const pollingImpl = opts.flags["--polling-impl"];
if (pollingImpl !== "xhr" && pollingImpl !== "fetch") die(`--polling-impl: xhr or fetch, not ${pollingImpl}`);

const eio = common.requireDep("engine.io-client");
const log = opts.verbose
  ? (m) => process.stderr.write(`[client-v4 +${Date.now() - t0}ms] ${m}\n`)
  : () => {};
const t0 = Date.now();
const globalTimer = common.armGlobalTimeout(opts, "the v4 client scenario");

async function main() {
  const u = new URL(opts.url);
  const impls = [];
  for (const t of opts.transports) {
    if (t === "websocket") impls.push(eio.NodeWebSocket);
    else impls.push(pollingImpl === "fetch" ? eio.Fetch : eio.NodeXHR);
  }
  const socket = new eio.Socket(`${u.protocol}//${u.host}`, {
    path: u.pathname,
    transports: impls, // implementations, so that the polling flavour can be chosen
    upgrade: opts.transports.length > 1,
  });
  const d = new Driver(socket, log);
  let pings = 0;
  socket.on("ping", () => {
    pings++;
    log(`ping #${pings} (transport ${socket.transport && socket.transport.name})`);
    d._wake();
  });
  let opened = false;
  socket.on("open", () => {
    opened = true;
    log(`open sid=${socket.id} transport=${socket.transport.name}`);
    d._wake();
  });
  await d.until(() => opened, "the open packet", 10000);

  if (socket.transport.name !== opts.transports[0]) {
    throw new Error(`opened on ${socket.transport.name}, expected ${opts.transports[0]}`);
  }

  await runDataChecks(d, opts);

  const base = pings;
  await d.until(() => pings >= base + opts.heartbeats,
    `${opts.heartbeats} heartbeats (server pings) after the data checks (saw ${pings - base})`,
    15000);
  log(`ok: ${opts.heartbeats} heartbeats`);

  if (opts.expectTransport === "websocket" && socket.transport.name !== "websocket") {
    await d.until(() => socket.transport.name === "websocket", "the upgrade to websocket", 10000);
  }
  if (socket.transport.name !== opts.expectTransport) {
    throw new Error(`socket is on ${socket.transport.name}, expected ${opts.expectTransport}` +
      ` (upgrades seen: ${d.upgrades.join(",") || "none"})`);
  }
  if (opts.expectTransport === "websocket" && opts.transports[0] === "polling" &&
      !d.upgrades.includes("websocket")) {
    throw new Error("no upgrade event although the socket started on polling");
  }
  if (opts.expectTransport === "polling" && d.upgrades.length) {
    throw new Error(`unexpected upgrade to ${d.upgrades.join(",")}`);
  }
  if (expectDeflate !== "" && socket.transport.name === "websocket") {
    // The extensions the server accepted (npm ws's WebSocket#extensions).
    const ext = (socket.transport.ws && socket.transport.ws.extensions) || "";
    log(`Sec-WebSocket-Extensions: ${ext}`);
    if ((expectDeflate === "yes") !== ext.includes("permessage-deflate")) {
      throw new Error(`negotiated extensions "${ext}", expected permessage-deflate ${expectDeflate === "yes" ? "on" : "off"}`);
    }
  }
  if (d.inbox.length) throw new Error(`unexpected message ${common.describe(d.inbox[0])}`);
  if (d.closed) throw new Error(`socket closed early: ${d.closed.reason}`);

  // For the harness: this session's id and the transport it ended on.
  process.stdout.write(`sid ${socket.id} ${socket.transport.name}\n`);
  socket.close();
  await d.until(() => d.closed, "the close event", 5000, true);
  if (d.closed.reason !== "forced close") {
    throw new Error(`close event reason ${d.closed.reason}, expected forced close`);
  }
  log(`transport=${socket.transport ? socket.transport.name : "?"} pings=${pings}`);
}

main().then(
  () => {
    clearTimeout(globalTimer);
    process.stdout.write("ok\n");
    // Give the close packet (polling: a POST of "1"; websocket: the close frame) time to leave.
    setTimeout(() => process.exit(0), 300);
  },
  (e) => die(e && e.message ? e.message : String(e)),
);
