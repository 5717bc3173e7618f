#!/usr/bin/env node
/* permessage-deflate with Chromium (which always offers it): engineio-echo
 * with and without --per-message-deflate on free ports; a page opens a raw
 * Engine.IO v4 WebSocket (the browser's own WebSocket), checks the
 * negotiated extension and echoes text and binary messages of 1 B to
 * 256 KiB (sent compressed by Chromium, echoed compressed from 1024 bytes
 * by the server).
 *
 *   node tests/browser/ws-deflate.spec.mjs --echo BUILD/src/tools/engineio-echo
 *
 * Needs /usr/bin/chromium (or CHROMIUM=path) and playwright-core
 * (`npm ci --prefix tests/interop`); without them it fails, it does not skip.
 * TAP output.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceRoot = path.resolve(here, '..', '..');
const EXPECTED = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';

let echoPath = null;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--echo') echoPath = process.argv[++i];
  else { console.error(`unknown argument ${process.argv[i]}`); process.exit(2); }
}
if (!echoPath) { console.error('--echo is required'); process.exit(2); }

function bail(message) {
  console.log(`Bail out! ${message}`);
  process.exit(1);
}

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) bail(`Chromium is missing (${chromiumPath})`);
let chromium;
try {
  const require = createRequire(path.join(sourceRoot, 'tests', 'interop', 'package.json'));
  ({ chromium } = require('playwright-core'));
} catch (e) {
  bail(`playwright-core is missing: npm ci --prefix tests/interop (${e.message})`);
}

// engineio-echo on a port it binds itself (`--port 0`), read back from its listening line.
async function startEcho(deflate) {
  const args = ['--port', '0', '--max-payload', '4000000', '--ping-interval', '60000'];
  if (deflate) args.push('--per-message-deflate');
  const proc = spawn(echoPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(null), 10000);
    proc.stdout.on('data', (d) => {
      out += d.toString();
      const m = /^listening on http:\/\/[^:]+:(\d+)\//m.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', () => { clearTimeout(timer); resolve(null); });
  });
  if (port !== null) return { proc, port };
  proc.kill();
  bail('engineio-echo printed no listening line within 10 s');
}

/* Runs in the page. */
async function scenario({ url, sizes }) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const queue = [];
  let waiter = null;
  let closed = null;
  ws.onmessage = (e) => { queue.push(e.data); if (waiter) waiter(); };
  ws.onclose = (e) => { closed = `closed ${e.code}`; if (waiter) waiter(); };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('WebSocket error'));
  });
  const next = async () => {
    const deadline = Date.now() + 15000;
    while (!queue.length) {
      if (closed) throw new Error(closed);
      if (Date.now() > deadline) throw new Error('timeout');
      await new Promise((r) => { waiter = r; setTimeout(r, 200); });
    }
    return queue.shift();
  };
  const open = await next();
  if (typeof open !== 'string' || open[0] !== '0') throw new Error(`no open packet: ${open}`);
  let base = '';
  while (base.length < sizes[sizes.length - 1]) base += `héllo wörld ${base.length} → `;
  const failures = [];
  for (const n of sizes) {
    const text = '4' + base.slice(0, n - 1);
    ws.send(text);
    const echo = await next();
    if (echo !== text) failures.push(`text ${n}`);
    const bin = new Uint8Array(n);
    for (let i = 0; i < n; i++) bin[i] = (i % 251 < 200) ? 97 + (i % 7) : (i * 7919) & 255;
    ws.send(bin);
    const becho = await next();
    if (!(becho instanceof ArrayBuffer) || becho.byteLength !== n ||
        !new Uint8Array(becho).every((b, i) => b === bin[i])) failures.push(`binary ${n}`);
  }
  const extensions = ws.extensions;
  ws.close();
  return { extensions, failures };
}

let n = 0;
let failed = 0;
function report(ok, name, detail) {
  n++;
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} ${n} ${name}${ok || !detail ? '' : `\n# ${detail}`}`);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'engineio-ws-deflate-chromium-'));
const servers = [];
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await context.newPage();
  const sizes = [1, 1023, 1024, 65536, 262144];
  for (const deflate of [true, false]) {
    const srv = await startEcho(deflate);
    servers.push(srv);
    const url = `ws://127.0.0.1:${srv.port}/engine.io/?EIO=4&transport=websocket`;
    let result;
    try {
      result = await page.evaluate(scenario, { url, sizes });
    } catch (e) {
      report(false, `per-message-deflate ${deflate ? 'on' : 'off'}: the page's scenario`, e.message);
      continue;
    }
    const want = deflate ? EXPECTED : '';
    report(result.extensions === want,
           `per-message-deflate ${deflate ? 'on' : 'off'}: Chromium's offer is ${deflate ? 'accepted' : 'declined'}`,
           `extensions "${result.extensions}", expected "${want}"`);
    report(result.failures.length === 0,
           `per-message-deflate ${deflate ? 'on' : 'off'}: text and binary of 1 B to 256 KiB echoed intact`,
           result.failures.join(', '));
  }
} finally {
  if (context) await context.close();
  for (const s of servers) s.proc.kill();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
