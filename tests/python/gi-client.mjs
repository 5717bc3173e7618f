#!/usr/bin/env node
// A scripted engine.io-client 6.x for tests/test-gi.py: opens one or more sockets, sends the
// given messages, and reports every event as one JSON line on stdout.
//
//   node gi-client.mjs --url http://127.0.0.1:PORT/engine.io/ [--transports polling,websocket]
//        [--count N] [--send JSON] [--interval MS] [--expect N] [--close] [--query k=v]...
//        [--timeout S]
//
// --send is a JSON list of messages, each {"text": "..."} or {"binary": "<base64>"}; every
// socket sends them, in order, once open (all at once, or one per --interval ms). A socket is done when it has received --expect
// messages (then it closes itself if --close is given) and, unless it closed itself, when the
// server closed it. Lines printed:
//   {"ev":"open","i":0,"sid":"...","transport":"polling"}
//   {"ev":"message","i":0,"text":"..."}   or   {"ev":"message","i":0,"binary":"<base64>"}
//   {"ev":"close","i":0,"reason":"transport close","description":"..."}
//   {"ev":"error","i":0,"message":"..."}  (open failed, e.g. HTTP 403 from the admission hook)
//   {"ev":"done"}                         (every socket done; exit status 0)
// On timeout it prints {"ev":"timeout"} and exits 1.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "interop", "package.json"));
let eio;
try {
  eio = require("engine.io-client");
} catch (e) {
  process.stderr.write("engine.io-client missing: run npm ci --prefix tests/interop\n");
  process.exit(2);
}

const opts = { url: null, transports: ["polling", "websocket"], count: 1, send: [], expect: 0,
               close: false, query: {}, timeout: 20, interval: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => argv[++i];
  if (a === "--url") opts.url = v();
  else if (a === "--transports") opts.transports = v().split(",");
  else if (a === "--count") opts.count = parseInt(v(), 10);
  else if (a === "--send") opts.send = JSON.parse(v());
  else if (a === "--expect") opts.expect = parseInt(v(), 10);
  else if (a === "--close") opts.close = true;
  else if (a === "--interval") opts.interval = parseInt(v(), 10);
  else if (a === "--query") { const [k, val] = v().split("="); opts.query[k] = val; }
  else if (a === "--timeout") opts.timeout = parseFloat(v());
  else { process.stderr.write(`unknown argument ${a}\n`); process.exit(2); }
}
if (!opts.url) { process.stderr.write("--url is required\n"); process.exit(2); }

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const u = new URL(opts.url);
let pending = opts.count;
// engine.io-client emits "close" before its transport sends the close packet (a POST when
// polling): give that a moment before exiting, or the server sees a ping timeout instead.
const finish = () => {
  if (--pending === 0) {
    out({ ev: "done" });
    setTimeout(() => process.exit(0), 300);
  }
};

setTimeout(() => { out({ ev: "timeout" }); process.exit(1); }, opts.timeout * 1000).unref();

for (let i = 0; i < opts.count; i++) {
  const socket = new eio.Socket(`${u.protocol}//${u.host}`, {
    path: u.pathname,
    transports: opts.transports,
    upgrade: opts.transports.length > 1,
    query: opts.query,
    reconnection: false,
  });
  let received = 0;
  let finished = false;
  const done = () => { if (!finished) { finished = true; finish(); } };
  socket.binaryType = "nodebuffer";
  socket.on("open", () => {
    out({ ev: "open", i, sid: socket.id, transport: socket.transport.name });
    const sendOne = (m) => {
      if ("text" in m) socket.send(m.text);
      else socket.send(Buffer.from(m.binary, "base64"));
    };
    if (opts.interval > 0) {
      let k = 0;
      const timer = setInterval(() => {
        if (k >= opts.send.length || socket.readyState !== "open") clearInterval(timer);
        else sendOne(opts.send[k++]);
      }, opts.interval);
    } else {
      opts.send.forEach(sendOne);
    }
    if (opts.expect === 0 && opts.close) { socket.close(); }
  });
  socket.on("message", (data) => {
    received++;
    // engine.io-parser gives `undefined` for the empty text message `4`.
    if (data === undefined) out({ ev: "message", i, text: "" });
    else if (typeof data === "string") out({ ev: "message", i, text: data });
    else out({ ev: "message", i, binary: Buffer.from(data).toString("base64") });
    if (received === opts.expect && opts.close) socket.close();
  });
  socket.on("error", (err) => {
    out({ ev: "error", i, message: String(err && err.message || err),
          status: err && err.description && err.description.status || null });
    done();
  });
  socket.on("close", (reason, description) => {
    out({ ev: "close", i, reason, description: description ? String(description.message || description) : null });
    done();
  });
}
