#!/usr/bin/env node
// A refused handshake as npm engine.io-client 6 sees it (tests/test-hooks.c).
//
//   node client-refused.mjs URL
//
// Connects over polling (NodeXHR) to a server whose admission hook refuses
// every handshake; prints one JSON line {"type","status","body"} with the
// client's error event (the HTTP status and the response body the
// application chose) and exits 0, or exits 1 if the session opened, 2 on
// timeout.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const common = require("./common.js");
const eio = common.requireDep("engine.io-client");

const u = new URL(process.argv[2]);
const socket = new eio.Socket(`${u.protocol}//${u.host}`, {
  path: u.pathname,
  transports: [eio.NodeXHR],
  reconnection: false,
});
const timer = setTimeout(() => {
  process.stdout.write("timeout\n");
  process.exit(2);
}, 10000);
socket.on("open", () => {
  process.stdout.write("opened\n");
  process.exit(1);
});
socket.on("error", (err) => {
  const context = err && err.context;
  process.stdout.write(JSON.stringify({
    type: err && err.type,
    status: err && err.description,
    body: context && context.responseText,
  }) + "\n");
  clearTimeout(timer);
  process.exit(0);
});
