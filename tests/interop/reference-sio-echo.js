#!/usr/bin/env node
// Reference Socket.IO echo server built on the npm `socket.io` 4.8 server.
//
// Same command line and stdout format as our `socketio-echo` tool, so that the Socket.IO tests in
// tests/socketio/ can be pointed at either one (SIO_SERVER=reference selects this one):
//
//   reference-sio-echo.js [--address A] [--port P] [--path /socket.io/] [--ping-interval MS]
//                         [--ping-timeout MS] [--max-payload BYTES] [--cors ORIGIN]
//                         [--loop-threads N] [--connect-timeout MS] [--verbose]
//                         [--redis redis://HOST:PORT[/DB]]
//
// First stdout line: `listening on http://ADDRESS:PORT/PATH` (the real port when --port 0).
// Behaviour: the configuration of the official socket.io-protocol test suite's reference server
// (socketio/socket.io-protocol, Readme "Test suite"), plus `broadcast`:
//   * namespaces `/` and `/custom`; any other namespace gets CONNECT_ERROR
//     {"message":"Invalid namespace"} (socket.io's own answer for an undeclared namespace);
//   * on connection: emit `auth` with the client's CONNECT payload (socket.handshake.auth, `{}`
//     when the client sent none);
//   * event `message`: emit `message-back` with the same arguments (binary included);
//   * event `message-with-ack`: acknowledge with the same arguments;
//   * event `broadcast`: emit `broadcast-back` with the same arguments to every socket of the
//     namespace, the sender included;
//   * event `join` ROOM: join ROOM; `to-room` ROOM ARGS...: emit `room-back` ARGS... to ROOM;
//     `all-join` ROOM: every socket of the namespace joins ROOM (io.socketsJoin); each
//     acknowledged (no arguments) when the client asks; `fetch` [ROOM]: acknowledged with
//     (null, ids of nsp.in(ROOM).fetchSockets()) or (error message, []).
// --redis URL: join a cluster with npm @socket.io/redis-adapter 8 (classic) on the npm `redis`
// client (the redis-adapter README's pub/sub client pair).
// The handlers are the same on `/` and `/custom`.
// --verbose: one line per event on stdout: `connect SID NSP TRANSPORT`,
// `disconnect SID NSP REASON`. --loop-threads is accepted and ignored (Node has one loop).
// SIGTERM / SIGINT close every session and exit 0.
"use strict";

const http = require("http");
const path = require("path");

function fail(msg) {
  process.stderr.write(`reference-sio-echo: ${msg}\n`);
  process.exit(2);
}

let Server;
try {
  ({ Server } = require(path.join(__dirname, "node_modules", "socket.io")));
} catch (e) {
  fail("node_modules missing: run npm ci --prefix tests/interop (" + e.message + ")");
}

function parseArgs(argv) {
  const opts = {
    address: "127.0.0.1",
    port: 0,
    path: "/socket.io/",
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1000000,
    cors: null,
    loopThreads: 0,
    connectTimeout: 45000,
    recovery: false,
    maxDisconnectionDuration: 120000,
    verbose: false,
    redis: null,
  };
  const withValue = new Set([
    "--address", "--port", "--path", "--ping-interval", "--ping-timeout", "--max-payload",
    "--cors", "--loop-threads", "--connect-timeout", "--max-disconnection-duration",
    "--redis",
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
      case "--loop-threads": opts.loopThreads = int(); break; // accepted, meaningless here
      case "--connect-timeout": opts.connectTimeout = int(); break;
      case "--connection-state-recovery": opts.recovery = true; break;
      case "--max-disconnection-duration": opts.maxDisconnectionDuration = int(); break;
      case "--verbose": opts.verbose = true; break;
      case "--redis": opts.redis = value; break;
      case "--help":
      case "-h":
        process.stdout.write(
          "usage: reference-sio-echo.js [--address A] [--port P] [--path /socket.io/] " +
          "[--ping-interval MS] [--ping-timeout MS] [--max-payload BYTES] [--cors ORIGIN] " +
          "[--loop-threads N] [--connect-timeout MS] [--connection-state-recovery] " +
          "[--max-disconnection-duration MS] [--verbose]\n");
        process.exit(0);
        break;
      default:
        fail(`unknown argument: ${argv[i]}`);
    }
  }
  if (!opts.path.startsWith("/")) opts.path = "/" + opts.path;
  if (!opts.path.endsWith("/")) opts.path += "/";
  if (opts.connectTimeout < 1) fail("--connect-timeout must be positive");
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function out(line) {
  process.stdout.write(line + "\n");
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404, { "Content-Type": "text/plain" });
  res.end("not found\n");
});

const serverOpts = {
  // socket.io wants the path without the trailing slash; it matches both forms.
  path: opts.path.replace(/\/$/, ""),
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  connectTimeout: opts.connectTimeout,
  // No client bundle: socketio-echo does not serve /socket.io/socket.io.js either.
  serveClient: false,
};
if (opts.recovery) {
  serverOpts.connectionStateRecovery = { maxDisconnectionDuration: opts.maxDisconnectionDuration };
}
// --cors: `*` or a comma-separated list of origins, as engineio-echo's option.
if (opts.cors) {
  serverOpts.cors = opts.cors === "*"
    ? { origin: "*" }
    : { origin: opts.cors.split(",").map((s) => s.trim()).filter(Boolean), credentials: true };
}

const io = new Server(httpServer, serverOpts);

function onConnection(socket) {
  const nsp = socket.nsp;
  if (opts.verbose) out(`connect ${socket.id} ${nsp.name} ${socket.conn.transport.name}`);
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args) => {
    socket.emit("message-back", ...args);
  });
  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
  socket.on("broadcast", (...args) => {
    // A trailing function is an ack the client asked for: not part of the broadcast.
    if (typeof args[args.length - 1] === "function") args.pop();
    nsp.emit("broadcast-back", ...args);
  });
  const acked = (fn) => (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    Promise.resolve(fn(...args)).then(() => { if (ack) ack(); });
  };
  socket.on("join", acked((room) => socket.join(room)));
  socket.on("to-room", acked((room, ...rest) => nsp.to(room).emit("room-back", ...rest)));
  socket.on("all-join", acked((room) => nsp.socketsJoin(room)));
  socket.on("fetch", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (!ack) return;
    const op = args[0] !== undefined && args[0] !== null ? nsp.in(args[0]) : nsp;
    op.fetchSockets().then((s) => ack(null, s.map((x) => x.id)), (e) => ack(e.message, []));
  });
  // With --redis: serverSideEmit with ack to the other servers; acks (error or null, answers).
  socket.on("server-side-emit", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (!ack) return;
    if (!opts.redis) { ack("not in a cluster (--redis)", []); return; }
    nsp.serverSideEmitWithAck(...args).then((r) => ack(null, r), (e) => ack(e.message, []));
  });
  socket.on("disconnect", (reason) => {
    if (opts.verbose) out(`disconnect ${socket.id} ${nsp.name} ${reason}`);
  });
}

// A server-side "ss-echo" from another node of a cluster: answered with {node, args}.
function onServerSideEcho(...args) {
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
  if (cb) cb({ node: "reference", args });
}

async function setUpRedis() {
  if (!opts.redis) return;
  const { createClient } = require(path.join(__dirname, "node_modules", "redis"));
  const { createAdapter } = require(path.join(__dirname, "node_modules", "@socket.io", "redis-adapter"));
  const pubClient = createClient({ url: opts.redis });
  const subClient = pubClient.duplicate();
  pubClient.on("error", (e) => process.stderr.write(`reference-sio-echo: redis: ${e.message}\n`));
  subClient.on("error", (e) => process.stderr.write(`reference-sio-echo: redis: ${e.message}\n`));
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient));
}

httpServer.on("error", (e) => fail(`cannot listen: ${e.message}`));
setUpRedis().catch((e) => fail(`--redis: ${e.message}`)).then(() => {
io.on("connection", onConnection);
io.of("/custom").on("connection", onConnection);
io.on("ss-echo", onServerSideEcho);
io.of("/custom").on("ss-echo", onServerSideEcho);
httpServer.listen(opts.port, opts.address, () => {
  const a = httpServer.address();
  const host = a.family === "IPv6" || a.family === 6 ? `[${a.address}]` : a.address;
  out(`listening on http://${host}:${a.port}${opts.path}`);
});
});

let shuttingDown = false;
function shutdown(sig) {
  if (shuttingDown) return;
  shuttingDown = true;
  if (opts.verbose) process.stderr.write(`reference-sio-echo: ${sig}, shutting down\n`);
  io.close(() => process.exit(0));
  if (httpServer.closeAllConnections) httpServer.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
