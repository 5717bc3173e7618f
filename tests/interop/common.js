// Shared pieces of the Node.js interop clients (client-v4.mjs, client-v3.js): argument parsing,
// test payloads, exact comparison, the global time limit, and the echo scenario itself, written
// against the event API both engine.io-client generations share (open / message / close / error
// / upgrade events, send(), close(), transport.name).
"use strict";

const path = require("path");

const DEFAULT_TIMEOUT_S = 60;

function die(msg) {
  process.stderr.write(`FAIL: ${msg}\n`);
  process.exit(1);
}

// Loads a package from this directory's node_modules, failing (not skipping) when it is absent.
function requireDep(name) {
  try {
    return require(path.join(__dirname, "node_modules", name));
  } catch (e) {
    if (e && e.code === "MODULE_NOT_FOUND") {
      die(`node_modules missing (${name}): run npm ci --prefix tests/interop`);
    }
    throw e;
  }
}

function parseArgs(argv, extra = {}) {
  const opts = {
    url: null,
    transports: ["polling", "websocket"],
    expectTransport: null,
    big: false,
    timeout: DEFAULT_TIMEOUT_S,
    heartbeats: 3,
    emptyBinary: true,
    verbose: false,
  };
  const flags = Object.assign({}, extra);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const need = () => {
      if (value !== undefined) return value;
      if (i + 1 >= argv.length) die(`${arg} needs a value`);
      return argv[++i];
    };
    switch (arg) {
      case "--url": opts.url = need(); break;
      case "--transports": {
        const v = need();
        const t = v.split(",").map((s) => s.trim()).filter(Boolean);
        if (!t.length || t.some((x) => x !== "polling" && x !== "websocket"))
          die(`--transports: expected polling and/or websocket, got ${v}`);
        opts.transports = t;
        break;
      }
      case "--expect-transport": {
        const v = need();
        if (v !== "polling" && v !== "websocket") die(`--expect-transport: bad value ${v}`);
        opts.expectTransport = v;
        break;
      }
      case "--big": opts.big = true; break;
      case "--no-empty-binary": opts.emptyBinary = false; break;
      case "--timeout": opts.timeout = Number(need()); break;
      case "--heartbeats": opts.heartbeats = parseInt(need(), 10); break;
      case "--verbose": case "-v": opts.verbose = true; break;
      default:
        // Client-specific options: `false` default = boolean flag, string default = valued.
        if (Object.prototype.hasOwnProperty.call(flags, arg)) {
          flags[arg] = typeof extra[arg] === "string" ? need() : true;
          break;
        }
        die(`unknown argument: ${argv[i]}`);
    }
  }
  if (!opts.url) die("--url URL is required");
  if (!(opts.timeout > 0)) die("--timeout must be positive");
  if (!opts.expectTransport) {
    // Default: where the socket must end up is the best transport it was allowed.
    opts.expectTransport = opts.transports.includes("websocket") ? "websocket" : "polling";
  }
  opts.flags = flags;
  return opts;
}

// ---- payloads -----------------------------------------------------------------------------

const EMOJI_TEXT = "héllo wörld 😀 €";
// Characters that framing and escaping get wrong: newlines (JSONP escapes them), a literal
// backslash-n, quotes, backslashes, tab, U+2028/U+2029 (line terminators in old JS string
// literals), "</script>", an astral character. No \r (browsers rewrite it in
// form posts) and no \x1e (the v4 polling record separator, which clients do not escape).
const SPECIAL_TEXT = 'line1\nline2\n\n"quoted" \\backslash\\ literal\\n \t tab ' +
  "\u2028 \u2029 </script> ' 𝄞 end\n";

// Text of at least `bytes` UTF-8 bytes made of whole code points, mixing 1-, 2-, 3- and 4-byte
// sequences (so a server that counts v3 lengths in bytes instead of UTF-16 units gets caught).
function mixedText(bytes) {
  const unit = "0123456789 abcdefghij é ü € ✓ 😀 𝄞 |"; // 4-byte chars are UTF-16 pairs
  const parts = [];
  let n = 0;
  let i = 0;
  while (n < bytes) {
    const piece = `#${i++}:` + unit;
    parts.push(piece);
    n += Buffer.byteLength(piece, "utf8");
  }
  return parts.join("");
}

// ASCII text of exactly `bytes` bytes with a position-dependent pattern.
function asciiText(bytes) {
  let s = "";
  let i = 0;
  while (s.length < bytes) s += `[${i++}]abcdefghijklmnopqrstuvwxyz`;
  return s.slice(0, bytes);
}

function allBytes() {
  const b = new Uint8Array(256);
  for (let i = 0; i < 256; i++) b[i] = i;
  return b;
}

function patternBytes(n) {
  const b = new Uint8Array(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

// Largest message used with --big. The server under test runs with maxPayload 1 000 000 bytes,
// counted on the whole POST body including framing (v4: "4" prefix; v3: "<len>:4" prefix, or
// base64 growth for binary, which is why --big is text only). 1 MiB does not fit under that, so
// "big" is 1 000 000 - 1000 bytes, leaving room for framing and a pong batched into the same POST.
const BIG_TEXT_BYTES = 1000000 - 1000;

// ---- comparison ---------------------------------------------------------------------------

function isBinary(x) {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) ||
    (typeof Buffer !== "undefined" && Buffer.isBuffer(x));
}

function toBuffer(x) {
  if (Buffer.isBuffer(x)) return x;
  if (x instanceof ArrayBuffer) return Buffer.from(x);
  if (ArrayBuffer.isView(x)) return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  throw new Error("not binary");
}

function describe(x) {
  if (typeof x === "string") {
    const head = x.length > 40 ? JSON.stringify(x.slice(0, 40)) + "…" : JSON.stringify(x);
    return `text(${x.length} UTF-16 units, ${Buffer.byteLength(x)} bytes) ${head}`;
  }
  if (isBinary(x)) {
    const b = toBuffer(x);
    const kind = Buffer.isBuffer(x) ? "Buffer" : x.constructor ? x.constructor.name : "binary";
    const head = b.subarray(0, 16).toString("hex");
    return `${kind}(${b.length} bytes) ${head}${b.length > 16 ? "…" : ""}`;
  }
  return `${typeof x} ${String(x)}`;
}

// Returns null when `got` is exactly the echo of `sent`, else the reason.
function compare(sent, got) {
  if (typeof sent === "string") {
    // engine.io-client (v3 and v4) decodes the empty message packet "4" as a message whose data
    // is undefined: that is the client's API, the wire carried "4".
    if (sent === "" && got === undefined) return null;
    if (typeof got !== "string") return `sent ${describe(sent)}, got back ${describe(got)}`;
    if (got === sent) return null;
    let i = 0;
    while (i < sent.length && i < got.length && sent[i] === got[i]) i++;
    return `text differs at UTF-16 index ${i}: sent ${describe(sent)}, got ${describe(got)}`;
  }
  if (!isBinary(got)) return `sent ${describe(sent)}, got back ${describe(got)}`;
  const a = toBuffer(sent);
  const b = toBuffer(got);
  if (a.equals(b)) return null;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `binary differs at byte ${i}: sent ${describe(sent)}, got ${describe(got)}`;
}

// ---- scenario -----------------------------------------------------------------------------

// Wraps a socket: an in-order queue of received messages, plus waiting helpers. `stop` is
// called with a reason on any unexpected close/error.
class Driver {
  constructor(socket, log) {
    this.socket = socket;
    this.log = log;
    this.inbox = [];
    this.waiter = null;
    this.closed = null;
    this.upgrades = [];
    this.errors = [];
    socket.on("message", (m) => {
      this.inbox.push(m);
      this._wake();
    });
    socket.on("upgrade", (t) => {
      const name = t && t.name ? t.name : String(t);
      this.upgrades.push(name);
      this.log(`upgraded to ${name}`);
      this._wake();
    });
    socket.on("error", (e) => {
      this.errors.push(e);
      this.log(`error event: ${e && e.message ? e.message : e}`);
    });
    socket.on("close", (reason, desc) => {
      if (!this.closed) this.closed = { reason, desc };
      this.log(`close event: ${reason}${desc ? " " + describeErr(desc) : ""}`);
      this._wake();
    });
  }

  _wake() {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  // Waits until pred() is true; fails if the socket closes first or after `ms`.
  async until(pred, what, ms = 20000, allowClosed = false) {
    const deadline = Date.now() + ms;
    for (;;) {
      if (pred()) return;
      if (this.closed && !allowClosed) {
        throw new Error(`socket closed (${this.closed.reason}` +
          `${this.closed.desc ? ": " + describeErr(this.closed.desc) : ""}) while waiting for ${what}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  async echo(label, payloads) {
    for (const p of payloads) this.socket.send(p);
    await this.until(() => this.inbox.length >= payloads.length,
      `${payloads.length} echo(es) of ${label} (got ${this.inbox.length})`);
    const got = this.inbox.splice(0, payloads.length);
    for (let i = 0; i < payloads.length; i++) {
      const why = compare(payloads[i], got[i]);
      if (why) {
        throw new Error(`${label}: echo #${i} wrong: ${why}` +
          (payloads.length > 1 ? " (order or content broken)" : ""));
      }
    }
    if (this.inbox.length) {
      throw new Error(`${label}: unexpected extra message ${describe(this.inbox[0])}`);
    }
    this.log(`ok: ${label} (${payloads.length} message(s))`);
  }
}

function describeErr(e) {
  if (!e) return "";
  if (e instanceof Error) return e.message;
  if (e.message) return e.message;
  if (e.description !== undefined) {
    const d = e.description;
    return `${e.message || ""} ${d && d.message ? d.message : d}`;
  }
  try { return JSON.stringify(e); } catch (_) { return String(e); }
}

// The data part of the scenario, identical for every Node client. `asBinary` turns the
// Uint8Array test data into what the client should be given (engine.io-client 3 wants an
// ArrayBuffer or Buffer: its has-binary2 check does not see typed arrays, and a Uint8Array in a
// polling payload gets mangled into the text framing). `skipBig` drops the ~1 MB message (for
// JSONP, whose urlencoded POST body grows past maxPayload).
async function runDataChecks(d, opts, { asBinary = (u8) => u8, skipBig = false } = {}) {
  await d.echo("emoji text", [EMOJI_TEXT]);
  await d.echo("empty text", [""]);
  await d.echo("special characters text", [SPECIAL_TEXT]);
  await d.echo("100 KiB mixed text", [mixedText(100 * 1024)]);
  // Just over the WebSocket's 8 KiB coalescing limit: sent from the packet's own data.
  await d.echo("20 KiB mixed text", [mixedText(20 * 1024)]);
  await d.echo("binary 0..255", [asBinary(allBytes())]);
  await d.echo("binary 8193 bytes", [asBinary(patternBytes(8193))]);
  await d.echo("binary 64 KiB", [asBinary(patternBytes(64 * 1024))]);
  if (opts.emptyBinary) await d.echo("empty binary", [asBinary(new Uint8Array(0))]);
  if (opts.big && !skipBig) {
    await d.echo(`big text (${BIG_TEXT_BYTES} bytes)`, [asciiText(BIG_TEXT_BYTES)]);
  }
  const burst = [];
  for (let i = 0; i < 200; i++) {
    if (i % 10 === 7) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, i);
      burst.push(asBinary(b));
    } else {
      burst.push(`burst ${String(i).padStart(3, "0")} ü`);
    }
  }
  await d.echo("burst of 200 numbered messages (1 in 10 binary)", burst);
}

// Global time limit: the whole run fails after opts.timeout seconds.
function armGlobalTimeout(opts, what) {
  const t = setTimeout(() => {
    die(`global timeout: ${what} did not finish within ${opts.timeout} s`);
  }, opts.timeout * 1000);
  return t;
}

module.exports = {
  die,
  requireDep,
  parseArgs,
  EMOJI_TEXT,
  SPECIAL_TEXT,
  mixedText,
  asciiText,
  allBytes,
  patternBytes,
  BIG_TEXT_BYTES,
  compare,
  describe,
  describeErr,
  toBuffer,
  isBinary,
  Driver,
  runDataChecks,
  armGlobalTimeout,
};
