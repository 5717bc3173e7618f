#!/usr/bin/env node
// crosscheck-parser.mjs TOOL: our Socket.IO codec (sio-codec-tool) against
// npm socket.io-parser 4 (protocol v5) and socket.io-parser 3 (protocol v4),
// from tests/interop/node_modules.
//
// 1. A corpus of packets (the protocol's examples, the reference's test
//    cases, edge cases): both decoders must agree. Where we accept, the
//    reference must accept, and both re-encodings (our encoder, its
//    Encoder) must be the same packet: the header byte for byte, the
//    payloads equal as JavaScript values once parsed (numbers as the
//    doubles JSON.parse() gives, members in any order, each placeholder
//    as the bytes of its attachment). Our writer is not JSON.stringify()
//    (numbers in 15-17 digits, insertion order: socketio-json.c), so
//    byte identity is only counted. Where only we refuse, the case must
//    say why (a documented divergence: we are stricter).
// 2. Random packets encoded by the reference Encoder: we decode them and
//    encode them back to the same packet.
// 3. Random mutations of the corpus: whatever we accept, the reference
//    accepts and decodes to the same packet.
// 4. Random payloads through our encoder (read by json-glib, not by our
//    reader) against the reference Encoder: the same packet.
//
// Exits non-zero on any disagreement, printing each one.
//
// SPDX-License-Identifier: MIT

import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";

const require = createRequire(new URL("../interop/package.json", import.meta.url));
const parsers = {
  5: require("socket.io-parser"),
  4: require("socket.io-parser-v3"),
};

const tool = process.argv[2];
if (!tool) {
  console.error("usage: crosscheck-parser.mjs PATH/TO/sio-codec-tool");
  process.exit(2);
}

// --- deterministic PRNG (mulberry32) ---
let seed = 0x5eed1e55;
function rand() {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (n) => Math.floor(rand() * n);
const pick = (a) => a[randInt(a.length)];

const hex = (s) => Buffer.from(s, "utf8").toString("hex");
const bufHex = (b) => Buffer.from(b).toString("hex");

// --- the reference ---
function refDecode(protocol, text, bins) {
  const lib = parsers[protocol];
  const decoder = new lib.Decoder();
  const out = [];
  decoder.on("decoded", (p) => out.push(p));
  try {
    decoder.add(text);
    for (const b of bins) decoder.add(Buffer.from(b, "hex"));
  } catch (e) {
    return { error: e.message };
  }
  if (out.length === 1 && protocol === 4 && out[0].type === 4 &&
      typeof out[0].data === "string" && out[0].data.startsWith("parser error")) {
    return { error: out[0].data };
  }
  if (out.length > 1) return { error: "several packets" };
  if (out.length === 0) return { pending: true };
  return { packet: out[0] };
}

function refEncode(protocol, packet) {
  const lib = parsers[protocol];
  const encoder = new lib.Encoder();
  let parts;
  if (protocol === 5) {
    parts = encoder.encode(packet);
  } else {
    encoder.encode(packet, (p) => { parts = p; });
  }
  return { text: parts[0], bins: parts.slice(1).map(bufHex) };
}

// Logical type: a binary packet is an EVENT or an ACK.
const logical = (t) => (t === 5 ? 2 : t === 6 ? 3 : t);

// --- our tool ---
function runTool(commands) {
  const input = commands.map((c) => JSON.stringify(c)).join("\n") + "\n";
  const r = spawnSync(tool, [], { input, maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    console.error(r.stderr.toString());
    throw new Error(`sio-codec-tool exited with ${r.status}`);
  }
  const lines = r.stdout.toString().trim().split("\n");
  if (lines.length !== commands.length) throw new Error("sio-codec-tool answered " + lines.length + " of " + commands.length);
  return lines.map((l) => JSON.parse(l));
}

// An encoded packet as a value: its header (type, attachment count,
// namespace, ack id: byte for byte) and its payload parsed, placeholders
// replaced by the hex of their attachment.
function packetValue(text, bins) {
  const header = text.match(/^[0-6](?:\d+-)?(?:\/[^,]*,)?\d*/)[0];
  const resolve = (v) => {
    if (Array.isArray(v)) return v.map(resolve);
    if (v !== null && typeof v === "object") {
      if (v._placeholder === true && typeof v.num === "number") return { $binary: bins[v.num] };
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
    }
    return v;
  };
  const payload = text.slice(header.length);
  return { header, payload: payload === "" ? undefined : resolve(JSON.parse(payload)), n: bins.length };
}
let byteIdentical = 0, compared = 0;
function sameEncoding(textA, binsA, textB, binsB) {
  compared++;
  if (textA === textB && JSON.stringify(binsA) === JSON.stringify(binsB)) {
    byteIdentical++;
    return true;
  }
  try {
    return isDeepStrictEqual(packetValue(textA, binsA), packetValue(textB, binsB));
  } catch (e) {
    return false;   // not JSON
  }
}

let failures = 0;
function fail(message) {
  failures++;
  if (failures <= 50) console.log("FAIL: " + message);
}

// Compares our decode answer with the reference's; returns "same",
// "both-reject", "we-reject" or "ref-reject" (the last is always a failure).
function compare(protocol, text, bins, ours, ref, label) {
  if (!ours.ok && ref.error !== undefined) return "both-reject";
  if (!ours.ok && ref.pending) return "both-reject";  // we refuse at once what it waits on
  if (!ours.ok) return "we-reject";
  if (ref.error !== undefined) {
    fail(`${label}: we accept ${JSON.stringify(text)} (v${protocol}), the reference refuses it: ${ref.error}`);
    return "ref-reject";
  }
  if (ours.complete !== !ref.pending) {
    fail(`${label}: ${JSON.stringify(text)}: complete ${ours.complete}, reference pending ${!!ref.pending}`);
    return "ref-reject";
  }
  if (!ours.complete) return "same";
  const p = ref.packet;
  const enc = refEncode(protocol, p);
  const ourText = Buffer.from(ours.text, "hex").toString("utf8");
  const problems = [];
  if (ours.type !== logical(p.type)) problems.push(`type ${ours.type} vs ${p.type}`);
  if (ours.nsp !== p.nsp) problems.push(`nsp ${JSON.stringify(ours.nsp)} vs ${JSON.stringify(p.nsp)}`);
  if ((ours.id ?? undefined) !== (p.id ?? undefined)) problems.push(`id ${ours.id} vs ${p.id}`);
  if (!sameEncoding(ourText, ours.bins, enc.text, enc.bins)) {
    problems.push(`encoded ${JSON.stringify(ourText)} ${ours.bins} vs ${JSON.stringify(enc.text)} ${enc.bins}`);
  }
  if (problems.length) {
    fail(`${label}: ${JSON.stringify(text)} (v${protocol}): ${problems.join("; ")}`);
    return "ref-reject";
  }
  return "same";
}

// --- 1. corpus ---
// [protocol, text, bins (hex), expectation, why]
//   "same": both accept, same packet; "reject": both refuse;
//   "we-reject": only we refuse (documented in socketio-packet.c).
const P0 = '{"_placeholder":true,"num":0}';
const P1 = '{"_placeholder":true,"num":1}';
const corpus = [
  // The v5 README
  [5, "0", [], "same"],
  [5, '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}', [], "same"],
  [5, '4{"message":"Not authorized"}', [], "same"],
  [5, '2["foo"]', [], "same"],
  [5, '2/admin,["bar"]', [], "same"],
  [5, `51-["baz",${P0}]`, ["01020304"], "same"],
  [5, `52-/admin,["baz",${P0},${P1}]`, ["0102", "0304"], "same"],
  [5, '212["foo"]', [], "same"],
  [5, '3/admin,13["bar"]', [], "same"],
  [5, `61-15["bar",${P0}]`, ["01020304"], "same"],
  [5, "1", [], "same"],
  [5, "1/admin,", [], "same"],
  [5, `61-/admin,1[${P0}]`, ["ff"], "same"],
  // The test suite
  [5, '0{"token":"123"}', [], "same"],
  [5, "0/custom,", [], "same"],
  [5, "0/random", [], "same"],
  [5, "1/custom", [], "same"],
  [5, '2["message",1,"2",{"3":[true]}]', [], "same"],
  [5, '2456["message-with-ack",1,"2",{"3":[false]}]', [], "same"],
  [5, `52-789["message-with-ack",${P0},${P1}]`, ["010203", "040506"], "same"],
  [5, "abc", [], "reject"],
  [5, "2{}", [], "reject"],
  [5, '2abc["message-with-ack",1,"2",{"3":[false]}]', [], "reject"],
  // socket.io-parser's tests
  [5, '0/woot,{"token":"123"}', [], "same"],
  [5, '2[1,"a",{}]', [], "same"],
  [5, '4"Unauthorized"', [], "same"],
  [5, `51-/cool,23["a",{"b":["c",${P0}]}]`, ["616263"], "same"],
  [5, '442["some","data"', [], "reject"],
  [5, '0/admin,"invalid"', [], "reject"],
  [5, "0[]", [], "reject"],
  [5, "1/admin,{}", [], "reject"],
  [5, '2/admin,"invalid', [], "reject"],
  [5, "2/admin,{}", [], "reject"],
  [5, '2[{"toString":"foo"}]', [], "reject"],
  [5, '2[true,"foo"]', [], "reject"],
  [5, '2[null,"bar"]', [], "reject"],
  [5, '2["connect"]', [], "reject"],
  [5, '2["disconnect","123"]', [], "reject"],
  [5, "5", [], "reject"],
  [5, "51", [], "reject"],
  [5, "5a-", [], "reject"],
  [5, "51.23-", [], "reject"],
  [5, "999", [], "reject"],
  [5, '511-["a"]', [], "reject"],
  [5, '51-["hello",{"_placeholder":true,"num":"splice"}]', ["00"], "reject"],
  [5, '51-["hello",{"_placeholder":true,"num":1}]', ["00"], "reject"],
  // Edge cases both accept
  [5, '2007["a"]', [], "same"],
  [5, '500-["a"]', [], "reject"],
  [5, '50-["a",{"_placeholder":true,"num":3}]', [], "reject"],
  [5, `501-["a",${P0}]`, ["00"], "same"],
  [5, '2/,["a"]', [], "same"],
  [5, '2["a"] \n', [], "same"],
  [5, '29007199254740991["a"]', [], "same"],
  [5, '2["n",9007199254740993,12345678901234567890,1e400,-0,-0.0,1E2,0.5e-10,1e21,1e-7]', [], "same"],
  [5, '2["s","\\u0041\\/\\ud83d\\ude00\\u00e9\\u001f\\b\\u2028 \u2028 é 😀"]', [], "same"],
  [5, '2["e",{"k":1,"j":2,"k":3}]', [], "same"],
  [5, '2["e",{"_placeholder":true,"num":0}]', [], "same"],
  [5, `52-["e",{"x":${P1}},[${P0}]]`, ["41", "42"], "same"],
  [5, `51-["e",{"_placeholder":1,"num":0},${P0}]`, ["41"], "same"],
  [5, '0/a?b=c&d,{"x":[]}', [], "same"],
  [5, '4', [], "same"],
  [5, '4/x,{"message":"m","data":{"a":1}}', [], "same"],
  [5, '30[]', [], "same"],
  [5, '2[1.5]', [], "same"],
  [5, '2[-0]', [], "same"],
  [5, '2["\u00e9v\u00e9nement",{"é":"ü"}]', [], "same"],
  [5, "2[\"a\",[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", [], "same"],
  // Both refuse
  [5, "7", [], "reject"],
  [5, "2null", [], "reject"],
  [5, "2[]", [], "reject"],
  [5, "4[]", [], "reject"],
  [5, "4null", [], "reject"],
  [5, '2["a",]', [], "reject"],
  [5, '2["a"]x', [], "reject"],
  [5, "2['a']", [], "reject"],
  [5, '2["a",01]', [], "reject"],
  [5, '2["a",0x10]', [], "reject"],
  [5, '2["a",NaN]', [], "reject"],
  [5, '2["a","\t"]', [], "reject"],

  // Only we refuse (stricter; socketio-packet.c says why)
  [5, "", [], "we-reject", "empty message: Number('') is 0, CONNECT to /"],
  [5, " ", [], "we-reject", "Number(' ') is 0: CONNECT"],
  [5, '2 ["a"]', [], "we-reject", "whitespace read as ack id 0"],
  [5, '21 ["a"]', [], "we-reject", "whitespace inside the ack id"],
  [5, '29007199254740992["a"]', [], "we-reject", "ack id over 2^53 - 1"],
  [5, '2', [], "we-reject", "EVENT without payload"],
  [5, '2/admin["a"]', [], "we-reject", "EVENT without payload (namespace runs to the end)"],
  [5, '3["a"]', [], "we-reject", "ACK without id"],
  [5, '31', [], "we-reject", "ACK without payload"],
  [5, '0/a,1', [], "we-reject", "ack id on CONNECT"],
  [5, '11', [], "we-reject", "ack id on DISCONNECT"],
  [5, '5-["a"]', [], "reject"],
  [5, '5 1-["a",' + P0 + ']', ["00"], "we-reject", "space in the attachment count"],
  [5, '50x1-["a",' + P0 + ']', ["00"], "we-reject", "hex attachment count"],
  [5, '2["a","\\ud800"]', [], "we-reject", "lone surrogate escape (JsonNode strings are UTF-8)"],
  [5, "2[1e400]", [], "we-reject", "event name infinity (re-encoded as null by the reference)"],
  [5, '2["a","x\\u0000"]', [], "we-reject", "U+0000 escape (JsonNode strings are NUL-terminated)"],
  [5, `52-["e",${P0},${P0}]`, ["41", "42"], "we-reject", "placeholder used twice"],
  [5, `51-["e",{"_placeholder":true,"num":0,"x":1}]`, ["41"], "we-reject", "placeholder with extra members"],
  [5, `51-["e",{"_placeholder":true,"num":0.0}]`, ["41"], "we-reject", "placeholder number written as a float"],
  [5, `52-["e",${P0}]`, ["41", "42"], "we-reject", "attachment without placeholder (the reference drops it)"],
  [5, '2["a",' + "[".repeat(200) + "]".repeat(200) + "]", [], "we-reject", "deeper than 128"],
  // Protocol v4 (socket.io-parser 3.4)
  [4, "0", [], "same"],
  [4, "0/admin,", [], "same"],
  [4, "0/admin?token=1234&uid=abcd,", [], "same"],
  [4, "1/admin,", [], "same"],
  [4, '2["hello",1]', [], "same"],
  [4, '2/admin,456["project:delete",123]', [], "same"],
  [4, "3/admin,456[]", [], "same"],
  [4, '4/admin,"Not authorized"', [], "same"],
  [4, `51-["hello",${P0}]`, ["010203"], "same"],
  [4, `51-/admin,456["project:delete",${P0}]`, ["010203"], "same"],
  [4, `61-/admin,456[${P0}]`, ["030201"], "same"],
  [4, '50-["a"]', [], "reject"],
  [4, "2[]", [], "reject"],
  [4, "abc", [], "reject"],
  [4, '2["disconnect"]', [], "we-reject", "reserved event names refused in v4 too"],
  [4, '0/admin,{"token":"1"}', [], "we-reject", "v4 CONNECT carries no payload"],
];

{
  const commands = corpus.map(([protocol, text, bins]) => ({ op: "decode", protocol, text: hex(text), bins }));
  const answers = runTool(commands);
  const counts = {};
  corpus.forEach(([protocol, text, bins, expected, why], i) => {
    const ref = refDecode(protocol, text, bins);
    let got = compare(protocol, text, bins, answers[i], ref, "corpus");
    if (got === "both-reject") got = "reject";
    counts[got] = (counts[got] || 0) + 1;
    if (got !== expected) {
      fail(`corpus: ${JSON.stringify(text.slice(0, 80))} (v${protocol}): ${got}, want ${expected}` +
           (answers[i].ok ? "" : ` (ours: ${answers[i].error})`) +
           (ref.error ? ` (reference: ${ref.error})` : ""));
    }
  });
  console.log(`corpus: ${corpus.length} cases ${JSON.stringify(counts)}`);
}

// --- random values ---
const alphabet = ["a", "Z", "0", " ", '"', "\\", "/", "\n", "\u0001", "\u001f", "\u007f", "é", "\u2028",
                  "\ufeff", "😀", "\u{10ffff}", "{", "[", ",", "<", "'"];
function randomString() {
  let s = "";
  const n = randInt(10);
  for (let i = 0; i < n; i++) s += pick(alphabet);
  return s;
}
function randomNumber(safe) {
  switch (randInt(safe ? 5 : 8)) {
    case 0: return randInt(1000);
    case 1: return -randInt(1e9);
    case 2: return rand() * 1000 - 500;
    case 3: return (rand() - 0.5) * Math.pow(10, randInt(40) - 20);
    case 4: return Math.round(rand() * 2 ** 53) * (rand() < 0.5 ? -1 : 1);
    case 5: return (rand() - 0.5) * Math.pow(10, randInt(600) - 300);
    case 6: return 2 ** (randInt(1100) - 1074);
    default: { const b = new DataView(new ArrayBuffer(8)); b.setUint32(0, randInt(2 ** 32)); b.setUint32(4, randInt(2 ** 32)); const d = b.getFloat64(0); return Number.isFinite(d) ? d : 0; }
  }
}
function randomValue(depth, binary, safe) {
  switch (randInt(depth > 3 ? 5 : 8)) {
    case 0: return null;
    case 1: return rand() < 0.5;
    case 2: return randomNumber(safe);
    case 3: case 4: return randomString();
    case 5: {
      const a = [];
      const n = randInt(4);
      for (let i = 0; i < n; i++) a.push(randomValue(depth + 1, binary, safe));
      return a;
    }
    case 6: {
      const o = {};
      const n = randInt(4);
      for (let i = 0; i < n; i++) o["k" + randomString()] = randomValue(depth + 1, binary, safe);
      return o;
    }
    default:
      if (!binary) return randomString();
      return Buffer.from(Array.from({ length: randInt(6) }, () => randInt(256)));
  }
}
function randomPacket(protocol, binary, safe) {
  const type = pick([0, 1, 2, 2, 2, 3, 3, 4]);
  const nsp = rand() < 0.5 ? "/" : pick(["/admin", "/a/b", "/x?y=z", "/é", "/[1]"]);
  const packet = { type, nsp };
  switch (type) {
    case 0:
      if (protocol === 5 && rand() < 0.5) packet.data = { token: randomString(), n: randomValue(1, false, safe) };
      break;
    case 2: case 3: {
      const args = [];
      if (type === 2) args.push(rand() < 0.9 ? "ev" + randomString() : randInt(100));
      const n = randInt(4);
      for (let i = 0; i < n; i++) args.push(randomValue(1, binary, safe));
      packet.data = args;
      if (type === 3 || rand() < 0.5) packet.id = randInt(rand() < 0.2 ? 2 ** 53 : 1000);
      break;
    }
    case 4:
      packet.data = rand() < 0.5 ? { message: randomString(), data: randomValue(1, false, safe) } : randomString();
      break;
  }
  return packet;
}
const hasBinary = (v) => Buffer.isBuffer(v) || (Array.isArray(v) ? v.some(hasBinary) :
  v !== null && typeof v === "object" && Object.values(v).some(hasBinary));

// --- 2. reference-encoded random packets ---
{
  const cases = [];
  for (let i = 0; i < 3000; i++) {
    const protocol = i % 4 === 0 ? 4 : 5;
    const packet = randomPacket(protocol, true, false);
    if (protocol === 4 && hasBinary(packet.data)) packet.type = packet.type === 2 ? 5 : 6;
    const enc = refEncode(protocol, packet);
    cases.push({ protocol, text: enc.text, bins: enc.bins });
  }
  const answers = runTool(cases.map((c) => ({ op: "decode", protocol: c.protocol, text: hex(c.text), bins: c.bins })));
  const counts = {};
  cases.forEach((c, i) => {
    const ref = refDecode(c.protocol, c.text, c.bins);
    const got = compare(c.protocol, c.text, c.bins, answers[i], ref, "reference-encoded");
    counts[got] = (counts[got] || 0) + 1;
    if (got !== "same") {
      fail(`reference-encoded: ${JSON.stringify(c.text.slice(0, 200))} (v${c.protocol}): ${got}` +
           (answers[i].ok ? "" : ` (ours: ${answers[i].error})`));
    } else if (answers[i].complete &&
               !sameEncoding(Buffer.from(answers[i].text, "hex").toString("utf8"), answers[i].bins, c.text, c.bins)) {
      fail(`reference-encoded: ${JSON.stringify(c.text)} re-encoded as ${Buffer.from(answers[i].text, "hex").toString("utf8")}`);
    }
  });
  console.log(`reference-encoded random packets: ${cases.length} ${JSON.stringify(counts)}`);
}

// --- 3. mutations ---
{
  const seeds = corpus.filter((c) => c[3] === "same");
  const pieces = ["0", "1", "5", "9", "-", ",", "/", "[", "]", "{", "}", '"', "\\", " ", "\t", "a", "e", ".", "+",
                  "\\u", "\\ud800", "null", "true", P0, "é", "\u0000", "_placeholder", ":", "2", "99999999999999999999"];
  const cases = [];
  for (let i = 0; i < 6000; i++) {
    const [protocol, text, bins] = pick(seeds);
    let t = text;
    const edits = 1 + randInt(3);
    for (let e = 0; e < edits; e++) {
      const at = randInt(t.length + 1);
      switch (randInt(3)) {
        case 0: t = t.slice(0, at) + pick(pieces) + t.slice(at); break;
        case 1: t = t.slice(0, at) + t.slice(at + 1 + randInt(3)); break;
        default: t = t.slice(0, at) + pick(pieces) + t.slice(at + 1); break;
      }
    }
    // What a UTF-8 transport delivers (a cut surrogate pair becomes U+FFFD).
    t = Buffer.from(t, "utf8").toString("utf8");
    let b = bins.slice();
    if (rand() < 0.1) b = b.slice(0, randInt(b.length + 1));
    if (rand() < 0.1) b.push("ee");
    cases.push({ protocol, text: t, bins: b });
  }
  const answers = runTool(cases.map((c) => ({ op: "decode", protocol: c.protocol, text: hex(c.text), bins: c.bins })));
  const counts = {};
  const why = {};
  cases.forEach((c, i) => {
    const ref = refDecode(c.protocol, c.text, c.bins);
    const got = compare(c.protocol, c.text, c.bins, answers[i], ref, "mutation");
    counts[got] = (counts[got] || 0) + 1;
    if (got === "we-reject") {
      const reason = answers[i].error.replace(/ at byte offset \d+$/, "").replace(/\d+/g, "N").replace(/“.*”/, "“…”");
      why[reason] = (why[reason] || 0) + 1;
    }
  });
  console.log(`mutations: ${cases.length} ${JSON.stringify(counts)}`);
  console.log("  where only we refuse (stricter on purpose, see socketio-packet.c):");
  for (const [reason, n] of Object.entries(why).sort((a, b) => b[1] - a[1])) console.log(`    ${n} × ${reason}`);
}

// --- 4. our encoder (payload read by json-glib) against the reference Encoder ---
{
  const cases = [];
  for (let i = 0; i < 2000; i++) {
    const packet = randomPacket(5, true, true);
    const enc = refEncode(5, packet);
    // The reference's own placeholder form of the payload, and its buffers.
    let data = null;
    if (packet.data !== undefined) {
      const head = enc.text.match(/^[0-6](\d+-)?/)[0] + (packet.nsp !== "/" ? packet.nsp + "," : "") +
        (packet.id !== undefined ? String(packet.id) : "");
      data = hex(enc.text.slice(head.length));
    }
    cases.push({ packet, enc, command: { op: "encode", type: logical(packet.type), nsp: packet.nsp,
                                         id: packet.id ?? null, data, bins: enc.bins } });
  }
  const answers = runTool(cases.map((c) => c.command));
  let same = 0;
  cases.forEach((c, i) => {
    const a = answers[i];
    if (!a.ok) {
      fail(`encode: ${c.enc.text}: ours refused: ${a.error}`);
      return;
    }
    const text = Buffer.from(a.text, "hex").toString("utf8");
    if (!sameEncoding(text, a.bins, c.enc.text, c.enc.bins)) {
      fail(`encode: ours ${JSON.stringify(text)} ${a.bins}, reference ${JSON.stringify(c.enc.text)} ${c.enc.bins}`);
      return;
    }
    same++;
  });
  console.log(`encoder: ${cases.length} payloads, ${same} the same packet`);
}

console.log(`encodings compared: ${compared}, byte-identical to the reference's: ${byteIdentical}`);
if (failures) {
  console.log(`${failures} disagreement(s)`);
  process.exit(1);
}
console.log("all agree");
