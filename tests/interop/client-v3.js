#!/usr/bin/env node
// Engine.IO v3 interop client (npm engine.io-client 3.x, installed as `engine.io-client-v3`).
// The server must run with --eio3.
//
//   node client-v3.js --url http://127.0.0.1:PORT/engine.io/
//        [--transports polling|websocket|polling,websocket] [--expect-transport polling|websocket]
//        [--modes binary,b64,jsonp] [--big] [--no-empty-binary] [--heartbeats N]
//        [--timeout S] [--verbose]
//
// Runs the same echo scenario as client-v4.mjs once per mode, each on its own session:
//   binary  browser-like XHR2 polling: the client is given an XMLHttpRequest stand-in with
//           responseType/arraybuffer support (over node:http, keep-alive), so it uses binary
//           polling payloads (application/octet-stream both ways) as a browser does; binary
//           WebSocket frames carry the 0x04 type byte.
//   b64     forceBase64: true (same XHR2 stand-in): the handshake carries b64=1, binary goes as
//           "b4<base64>" text, on polling and on WebSocket.
//   jsonp   forceJSONP: true, polling only (skipped when polling is not among --transports).
//           The client's JSONP transport needs a DOM (<script> for GET, a hidden <form> posted
//           into an <iframe> for POST); a minimal DOM stand-in below performs those requests the
//           way a browser would (script body evaluated, form body urlencoded as `d=…`).
//   node    the client exactly as it runs in Node out of the box: its xmlhttprequest-ssl has no
//           XHR2, so polling silently sends b64=1 (Connection: close on every request); WebSocket
//           frames are binary.
// Heartbeats in v3 are client pings answered by server pongs: the check counts `pong` events.
// Prints `sid SID TRANSPORT` (the transport it ended on) for every session before closing it,
// and `ok` at the end; exit 0 only if every check passed.
"use strict";

const common = require("./common.js");
const { die, Driver, runDataChecks } = common;

const ALL_MODES = ["binary", "b64", "jsonp", "node"];
const opts = common.parseArgs(process.argv.slice(2), { "--modes": ALL_MODES.join(","), "--expect-deflate": "" });
// --expect-deflate yes|no: whether a WebSocket the socket ends on negotiated permessage-deflate
// (engine.io-client 3 offers it by default, threshold 1024)
const expectDeflate = opts.flags["--expect-deflate"];
if (expectDeflate !== "" && expectDeflate !== "yes" && expectDeflate !== "no") die(`--expect-deflate: yes or no, not ${expectDeflate}`);
const modes = opts.flags["--modes"].split(",").map((s) => s.trim()).filter(Boolean);
for (const m of modes) {
  if (!ALL_MODES.includes(m)) die(`--modes: unknown mode ${m} (known: ${ALL_MODES.join(",")})`);
}
common.requireDep("engine.io-client-v3"); // fails clearly when node_modules is missing

const t0 = Date.now();
const log = opts.verbose
  ? (m) => process.stderr.write(`[client-v3 +${Date.now() - t0}ms] ${m}\n`)
  : () => {};
const globalTimer = common.armGlobalTimeout(opts, "the v3 client scenario");

// ---- XHR2 stand-in and client loading -------------------------------------------------------

const http = require("http");
const path = require("path");
const Module = require("module");

const V3_DIR = path.join(__dirname, "node_modules", "engine.io-client-v3");
const keepAliveAgent = new http.Agent({ keepAlive: true });

// Just enough of a browser XMLHttpRequest (level 2) for engine.io-client 3's polling-xhr.js:
// responseType (its presence is the client's XHR2 test), readyState 2 before the body (the
// client switches responseType to "arraybuffer" there when Content-Type is octet-stream),
// response / responseText with the browser's rules, getResponseHeader, abort.
class Xhr2 {
  constructor() {
    this.readyState = 0;
    this.responseType = "";
    this.withCredentials = false;
    this.timeout = 0;
    this.status = 0;
    this.onreadystatechange = null;
    this._headers = {};
    this._resHeaders = {};
    this._body = null;
    this._req = null;
    this._aborted = false;
  }
  open(method, url) {
    this._method = method;
    this._url = url;
    this._setState(1);
  }
  setRequestHeader(k, v) { this._headers[k] = v; }
  getResponseHeader(name) {
    const v = this._resHeaders[name.toLowerCase()];
    return v === undefined ? null : Array.isArray(v) ? v.join(", ") : String(v);
  }
  get response() {
    if (this.readyState !== 4 || this._body === null) return this.responseType === "" ? "" : null;
    // A browser hands over an ArrayBuffer here, which the browser build of engine.io-parser 2
    // reads; under Node the client uses the parser's Node build, whose decodePayloadAsBinary
    // indexes a Buffer (an ArrayBuffer has no .length and decodes to nothing). Same bytes.
    if (this.responseType === "arraybuffer") return this._body;
    return this._body.toString("utf8");
  }
  get responseText() {
    if (this.responseType !== "" && this.responseType !== "text") {
      throw new Error("InvalidStateError: responseText needs responseType '' or 'text'");
    }
    return this._body === null ? "" : this._body.toString("utf8");
  }
  _setState(s) {
    this.readyState = s;
    if (this.onreadystatechange) this.onreadystatechange();
  }
  send(data) {
    let body = null;
    if (data !== null && data !== undefined) {
      if (typeof data === "string") body = Buffer.from(data, "utf8");
      else if (Buffer.isBuffer(data)) body = data;
      else if (data instanceof ArrayBuffer) body = Buffer.from(data);
      else if (ArrayBuffer.isView(data)) body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      else body = Buffer.from(String(data), "utf8");
    }
    const headers = Object.assign({}, this._headers);
    if (body !== null) headers["Content-Length"] = body.length;
    const req = http.request(this._url, { method: this._method, headers, agent: keepAliveAgent },
      (res) => {
        this.status = res.statusCode;
        this._resHeaders = res.headers;
        this._setState(2);
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          if (this._aborted) return;
          this._body = Buffer.concat(chunks);
          this._setState(3);
          this._setState(4);
        });
      });
    this._req = req;
    req.on("error", () => {
      if (this._aborted) return;
      this.status = 0;
      this._setState(4);
    });
    if (this.timeout) req.setTimeout(this.timeout, () => req.destroy(new Error("timeout")));
    req.end(body === null ? undefined : body);
  }
  abort() {
    this._aborted = true;
    if (this._req) this._req.destroy();
  }
}

// Loads a fresh copy of engine.io-client 3, with the XHR2 stand-in ("xhr2") or with its stock
// xmlhttprequest-ssl ("stock"). The client decides XHR2 support once, when polling.js loads.
let loadedFlavour = null;
let eio = null;
function loadClient(flavour) {
  if (loadedFlavour === flavour) return eio;
  for (const k of Object.keys(require.cache)) {
    if (k.startsWith(V3_DIR + path.sep)) delete require.cache[k];
  }
  if (flavour === "xhr2") {
    const p = path.join(V3_DIR, "lib", "transports", "xmlhttprequest.js");
    const m = new Module(p, module);
    m.filename = p;
    m.loaded = true;
    m.exports = Xhr2;
    require.cache[p] = m;
  }
  eio = require(V3_DIR);
  loadedFlavour = flavour;
  return eio;
}

// ---- minimal DOM for the JSONP transport ---------------------------------------------------

function installJsonpDom() {
  if (global.document) return;
  const vm = require("vm");

  function request(method, url, body, headers, done) {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => done(null, res, Buffer.concat(chunks)));
      res.on("error", (e) => done(e));
    });
    req.on("error", (e) => done(e));
    if (body !== null) req.end(body);
    else req.end();
  }

  function loadScript(el) {
    const src = el.src;
    log(`jsonp: GET ${src}`);
    request("GET", src, null, {}, (err, res, body) => {
      if (err || res.statusCode !== 200) {
        const why = err ? err.message : `HTTP ${res.statusCode} ${body.toString("utf8")}`;
        log(`jsonp: script load failed: ${why}`);
        if (el.onerror) el.onerror(new Error(why));
        return;
      }
      // Browsers run a classic script whatever its MIME type (engine.io 6 itself answers JSONP
      // with text/plain), except image/*, audio/*, video/*, text/csv, and anything but a
      // JavaScript type under X-Content-Type-Options: nosniff.
      const ctype = (res.headers["content-type"] || "").split(";")[0].trim().toLowerCase();
      const nosniff = /nosniff/i.test(res.headers["x-content-type-options"] || "");
      if (/^(image|audio|video)\//.test(ctype) || ctype === "text/csv" ||
          (nosniff && !/javascript|ecmascript/.test(ctype))) {
        const why = `a browser would refuse to run a JSONP response of type "${ctype}"` +
          (nosniff ? " with nosniff" : "");
        if (el.onerror) el.onerror(new Error(why));
        return;
      }
      // A browser runs the body as a classic script in the page's global scope.
      try {
        vm.runInThisContext(body.toString("utf8"), { filename: src });
      } catch (e) {
        log(`jsonp: script threw: ${e.message}`);
        if (el.onerror) el.onerror(e);
      }
    });
  }

  function submitForm(form) {
    const area = form.children.find((c) => c.tagName === "TEXTAREA" && c.name === "d");
    // Same serialisation as a browser's application/x-www-form-urlencoded form submission.
    const body = new URLSearchParams([["d", area ? area.value : ""]]).toString();
    const action = form.action;
    const target = form.target;
    log(`jsonp: POST ${action} (${body.length} bytes)`);
    request("POST", action, body, {
      "Content-Type": "application/x-www-form-urlencoded",
      "Content-Length": Buffer.byteLength(body),
    }, (err, res, resBody) => {
      if (err) {
        log(`jsonp: POST failed: ${err.message}`);
        return; // a browser's iframe would still load (an error page); the client has no hook
      }
      if (res.statusCode !== 200) log(`jsonp: POST answered ${res.statusCode} ${resBody}`);
      setImmediate(() => {
        const frame = form.children.find((c) => c.tagName === "IFRAME" && c.name === target);
        if (frame && frame.onload) frame.onload();
      });
    });
  }

  function makeElement(tag) {
    const el = {
      tagName: tag.toUpperCase(),
      children: [],
      parentNode: null,
      style: {},
      attributes: {},
      setAttribute(k, v) { this.attributes[k] = v; },
      appendChild(child) {
        child.parentNode = this;
        this.children.push(child);
        if (child.tagName === "SCRIPT" && child.src) loadScript(child);
        return child;
      },
      insertBefore(child) { return this.appendChild(child); },
      removeChild(child) {
        const i = this.children.indexOf(child);
        if (i < 0) throw new Error("NotFoundError: not a child");
        this.children.splice(i, 1);
        child.parentNode = null;
        return child;
      },
    };
    if (el.tagName === "FORM") el.submit = function () { submitForm(this); };
    return el;
  }

  const head = makeElement("head");
  const body = makeElement("body");
  global.document = {
    head,
    body,
    createElement(tag) {
      // Modern browsers reject the old IE `<iframe name=…>` form: the client falls back.
      if (/[<>\s]/.test(tag)) throw new Error("InvalidCharacterError");
      return makeElement(tag);
    },
    getElementsByTagName() { return []; },
  };
}

// ---- one session ---------------------------------------------------------------------------

async function runSession(mode) {
  const u = new URL(opts.url);
  let transports = opts.transports;
  if (mode === "jsonp") transports = ["polling"];
  const expectTransport = mode === "jsonp" ? "polling" : opts.expectTransport;
  const sopts = {
    path: u.pathname,
    transports,
    upgrade: transports.length > 1,
  };
  if (mode === "b64") sopts.forceBase64 = true;
  if (mode === "jsonp") {
    installJsonpDom();
    sopts.forceJSONP = true;
  }
  const client = loadClient(mode === "node" || mode === "jsonp" ? "stock" : "xhr2");
  const socket = client(`${u.protocol}//${u.host}`, sopts);
  const tag = (m) => log(`[${mode}] ${m}`);
  const d = new Driver(socket, tag);
  let pongs = 0;
  socket.on("pong", () => {
    pongs++;
    tag(`pong #${pongs} (transport ${socket.transport && socket.transport.name})`);
    d._wake();
  });
  let opened = false;
  socket.on("open", () => {
    opened = true;
    tag(`open sid=${socket.id} transport=${socket.transport.name}` +
      ` supportsBinary=${socket.transport.supportsBinary}` +
      ` query=${JSON.stringify(socket.transport.query)}`);
    d._wake();
  });
  await d.until(() => opened, `[${mode}] the open packet`, 10000);

  const first = socket.transport.name;
  if (first !== transports[0]) throw new Error(`opened on ${first}, expected ${transports[0]}`);
  if (first === "polling") {
    // The XHR2 flavour must really take the binary payload path, the others the base64 one.
    const b64 = socket.transport.query.b64;
    if (mode === "binary" && (b64 !== undefined || socket.transport.supportsBinary === false)) {
      throw new Error(`[binary] the client did not take the XHR2 binary path (b64=${b64})`);
    }
    if (mode !== "binary" && String(b64) !== "1") {
      throw new Error(`[${mode}] expected the handshake to carry b64=1, query: ` +
        JSON.stringify(socket.transport.query));
    }
  }
  if (mode === "jsonp" && socket.transport.query.j === undefined) {
    throw new Error("forceJSONP did not select the JSONP transport (no j= parameter)");
  }

  try {
    await runDataChecks(d, opts, {
      asBinary: (u8) => u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength),
      skipBig: mode === "jsonp",
    });
    const base = pongs;
    await d.until(() => pongs >= base + opts.heartbeats,
      `${opts.heartbeats} heartbeats (server pongs to client pings; saw ${pongs - base})`, 15000);
    tag(`ok: ${opts.heartbeats} heartbeats`);

    if (expectTransport === "websocket" && socket.transport.name !== "websocket") {
      await d.until(() => socket.transport.name === "websocket", "the upgrade to websocket", 10000);
    }
    if (socket.transport.name !== expectTransport) {
      throw new Error(`socket is on ${socket.transport.name}, expected ${expectTransport}`);
    }
    if (expectTransport === "websocket" && first === "polling" && !d.upgrades.includes("websocket")) {
      throw new Error("no upgrade event although the socket started on polling");
    }
    if (expectTransport === "polling" && d.upgrades.length) {
      throw new Error(`unexpected upgrade to ${d.upgrades.join(",")}`);
    }
    if (expectDeflate !== "" && socket.transport.name === "websocket") {
      // The extensions the server accepted (npm ws's WebSocket#extensions).
      const ext = (socket.transport.ws && socket.transport.ws.extensions) || "";
      tag(`Sec-WebSocket-Extensions: ${ext}`);
      if ((expectDeflate === "yes") !== ext.includes("permessage-deflate")) {
        throw new Error(`negotiated extensions "${ext}", expected permessage-deflate ${expectDeflate === "yes" ? "on" : "off"}`);
      }
    }
    if (d.closed) throw new Error(`socket closed early: ${d.closed.reason}`);
  } catch (e) {
    throw new Error(`[${mode}] ${e.message}`);
  }

  process.stdout.write(`sid ${socket.id} ${socket.transport.name}\n`);
  socket.close();
  await d.until(() => d.closed, `[${mode}] the close event`, 5000, true);
  if (d.closed.reason !== "forced close") {
    throw new Error(`[${mode}] close event reason ${d.closed.reason}, expected forced close`);
  }
  // Let the close packet (or WebSocket close frame) leave before the next session / exit.
  await new Promise((r) => setTimeout(r, 200));
  tag("session done");
}

async function main() {
  for (const mode of modes) {
    if (mode === "jsonp" && !opts.transports.includes("polling")) {
      log("jsonp skipped: polling not among --transports");
      continue;
    }
    await runSession(mode);
  }
}

main().then(
  () => {
    clearTimeout(globalTimer);
    process.stdout.write("ok\n");
    setTimeout(() => process.exit(0), 100);
  },
  (e) => die(e && e.message ? e.message : String(e)),
);
