#!/usr/bin/env node
// Reference echo server built on the npm `engine.io` 6 server.
//
// Same command line and stdout format as our `engineio-echo` tool, so that the interop clients
// (and later the benchmarks) can be pointed at either one:
//
//   reference-echo.js [--address A] [--port P] [--path /engine.io/] [--ping-interval MS]
//                     [--ping-timeout MS] [--max-payload BYTES] [--cors ORIGIN] [--eio3]
//                     [--loop-threads N] [--transports polling,websocket] [--verbose]
//
// First stdout line: `listening on http://ADDRESS:PORT/PATH` (the real port when --port 0).
// Every message is echoed to its sender (text as text, binary as binary).
// --verbose: one line per event: `open SID v4 polling`, `upgrade SID websocket`,
// `close SID REASON`. SIGTERM / SIGINT close every session (reason `server shutting down`) and
// exit 0.
"use strict";

const http = require("http");
const path = require("path");

function fail(msg) {
  process.stderr.write(`reference-echo: ${msg}\n`);
  process.exit(2);
}

let engineio;
try {
  engineio = require(path.join(__dirname, "node_modules", "engine.io"));
} catch (e) {
  fail("node_modules missing: run npm ci --prefix tests/interop (" + e.message + ")");
}

function parseArgs(argv) {
  const opts = {
    address: "127.0.0.1",
    port: 0,
    path: "/engine.io/",
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1000000,
    cors: null,
    eio3: false,
    loopThreads: 0,
    transports: ["polling", "websocket"],
    verbose: false,
    broadcast: null,
  };
  const withValue = new Set([
    "--address", "--port", "--path", "--ping-interval", "--ping-timeout", "--max-payload",
    "--cors", "--loop-threads", "--transports", "--broadcast",
  ]);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (withValue.has(arg) && value === undefined) {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`);
      value = argv[++i];
    }
    const int = () => {
      if (!/^\d+$/.test(value)) fail(`${arg}: not a non-negative integer: ${value}`);
      return parseInt(value, 10);
    };
    switch (arg) {
      case "--address": opts.address = value; break;
      case "--port": opts.port = int(); break;
      case "--path": opts.path = value; break;
      case "--ping-interval": opts.pingInterval = int(); break;
      case "--ping-timeout": opts.pingTimeout = int(); break;
      case "--max-payload": opts.maxPayload = int(); break;
      case "--cors": opts.cors = value; break;
      case "--eio3": opts.eio3 = true; break;
      case "--loop-threads": opts.loopThreads = int(); break; // accepted, meaningless here
      case "--transports": {
        const t = value.split(",").map((s) => s.trim()).filter(Boolean);
        if (!t.length || t.some((x) => x !== "polling" && x !== "websocket"))
          fail(`--transports: expected polling and/or websocket, got ${value}`);
        opts.transports = t;
        break;
      }
      case "--verbose": opts.verbose = true; break;
      case "--broadcast":
        // Every message to every session (engine.io has one way: its clients loop).
        if (value !== "api" && value !== "loop") fail(`--broadcast: expected api or loop, got ${value}`);
        opts.broadcast = value;
        break;
      case "--help":
      case "-h":
        process.stdout.write(
          "usage: reference-echo.js [--address A] [--port P] [--path /engine.io/] " +
          "[--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES] [--cors ORIGIN] " +
          "[--eio3] [--loop-threads N] [--transports polling,websocket] [--broadcast api|loop] [--verbose]\n");
        process.exit(0);
        break;
      default:
        fail(`unknown argument: ${argv[i]}`);
    }
  }
  if (!opts.path.startsWith("/")) opts.path = "/" + opts.path;
  if (!opts.path.endsWith("/")) opts.path += "/";
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function out(line) {
  // stdout is synchronous for files and pipes on Linux, so each line goes out at once.
  process.stdout.write(line + "\n");
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

const engineOpts = {
  // engine.io wants the path without the trailing slash; it matches both forms.
  path: opts.path.replace(/\/$/, ""),
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  allowEIO3: opts.eio3,
  transports: opts.transports,
};
if (opts.cors) engineOpts.cors = { origin: opts.cors, credentials: true };

const engine = engineio.attach(httpServer, engineOpts);

let shuttingDown = false;
const sockets = new Set();

engine.on("connection", (socket) => {
  sockets.add(socket);
  if (opts.verbose) out(`open ${socket.id} v${socket.protocol} ${socket.transport.name}`);
  socket.on("upgrade", (transport) => {
    if (opts.verbose) out(`upgrade ${socket.id} ${transport.name}`);
  });
  socket.on("message", (data) => {
    // Text arrives as string, binary as Buffer: send back the same kind. engine.io decodes the
    // empty message "4" as undefined data; send it back as the empty string (wire: "4" again).
    const back = data === undefined ? "" : data;
    if (opts.broadcast) {
      for (const id in engine.clients) engine.clients[id].send(back);
      return;
    }
    socket.send(back);
  });
  socket.on("close", (reason) => {
    sockets.delete(socket);
    // engine.io reports its own shutdown as "forced close"; our tool says "server shutting down".
    if (shuttingDown && reason === "forced close") reason = "server shutting down";
    if (opts.verbose) out(`close ${socket.id} ${reason}`);
  });
});

engine.on("connection_error", (err) => {
  if (opts.verbose) {
    process.stderr.write(
      `connection_error ${err.code} ${err.message} ${err.req && err.req.url}\n`);
  }
});

httpServer.on("error", (e) => fail(`cannot listen: ${e.message}`));
httpServer.listen(opts.port, opts.address, () => {
  const a = httpServer.address();
  const host = a.family === "IPv6" || a.family === 6 ? `[${a.address}]` : a.address;
  out(`listening on http://${host}:${a.port}${opts.path}`);
});

function shutdown(sig) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (opts.verbose) process.stderr.write(`reference-echo: ${sig}, shutting down\n`);
  engine.close(); // closes every session: 'close' handlers print their lines synchronously
  httpServer.close(() => process.exit(0));
  if (httpServer.closeAllConnections) httpServer.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
