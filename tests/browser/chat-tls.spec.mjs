#!/usr/bin/env node
/* The demo chat over TLS in Chromium: engineio-chat with --tls-cert and
 * --tls-key (a certificate for 127.0.0.1 signed by a test CA made here with
 * openssl), two pages over https: one forced to polling, one upgrading to
 * wss; both log in and exchange messages.
 *
 *   node tests/browser/chat-tls.spec.mjs --chat BUILD/src/demo/engineio-chat
 *
 * Chromium trusts the server's key, and only that one, with
 * --ignore-certificate-errors-spki-list (its test-only way to accept a
 * certificate without a system CA store). Needs /usr/bin/chromium (or
 * CHROMIUM=path), openssl and playwright-core (`npm ci --prefix
 * tests/interop`); without them it fails, it does not skip.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceRoot = path.resolve(here, '..', '..');
const WAIT_MS = 15000;

let chatPath = null;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--chat') chatPath = process.argv[++i];
  else {
    console.error(`chat-tls.spec.mjs: unknown argument ${process.argv[i]}`);
    process.exit(2);
  }
}

function bail(message) {
  console.log(`Bail out! ${message}`);
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

if (!chatPath || !fs.existsSync(chatPath)) bail(`no engineio-chat at ${chatPath}: give --chat PATH`);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) bail(`Chromium is missing (${chromiumPath})`);
let chromium;
try {
  const require = createRequire(path.join(sourceRoot, 'tests', 'interop', 'package.json'));
  ({ chromium } = require('playwright-core'));
} catch (error) {
  bail(`playwright-core is missing: run \`npm ci --prefix tests/interop\` (${error.message.split('\n')[0]})`);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'engineio-chat-tls-'));
let server = null;
let context = null;
let step = 0;

async function cleanup() {
  if (context) await context.close().catch(() => {});
  context = null;
  if (server && server.exitCode === null) server.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}

async function check(description, body) {
  step++;
  try {
    await body();
    console.log(`ok ${step} - ${description}`);
  } catch (error) {
    console.log(`not ok ${step} - ${description}`);
    console.log(`# ${String(error.stack || error).split('\n').join('\n# ')}`);
    if (server && server.stderrText) console.log(`# server stderr:\n# ${server.stderrText.trim().split('\n').join('\n# ')}`);
    await cleanup();
    process.exit(1);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function openssl(...args) {
  execFileSync('openssl', args, { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCertificate() {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=engineio-glib test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  openssl('req', ...ec, '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(tmp, 'ext.cnf'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
          '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.pem');
  const cert = new crypto.X509Certificate(fs.readFileSync(path.join(tmp, 'server.pem')));
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(spki).digest('base64');
}

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(chatPath, ['--port', '0', '--tls-cert', path.join(tmp, 'server.pem'),
                              '--tls-key', path.join(tmp, 'server.key')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, G_DEBUG: 'fatal-criticals' },
    });
    server.stderrText = '';
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`engineio-chat did not start: ${server.stderrText}`)), 10000);
    server.stderr.on('data', (chunk) => { server.stderrText += chunk; });
    server.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^listening on (https:\/\/[^\s]+\/)\n/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`engineio-chat exited ${code}: ${server.stderrText}`)); });
  });
}

async function waitFor(page, description, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 50 });
  } catch (error) {
    const state = await page.evaluate(() => ({
      status: document.getElementById('status')?.dataset.state,
      transport: document.getElementById('transport')?.textContent,
    })).catch(() => null);
    throw new Error(`${page.label}: timed out waiting for ${description}; page state ${JSON.stringify(state)}`);
  }
}

async function openPage(url, label, query) {
  const page = await context.newPage();
  page.label = label;
  await page.goto(url + query);
  await waitFor(page, 'connected', () => document.getElementById('status').dataset.state === 'connected');
  return page;
}

async function logIn(page, name) {
  await page.fill('#name', name);
  await page.click('#login-button');
  await waitFor(page, 'the chat view', () => !document.getElementById('chat-view').hidden);
}

function hasMessage(page, author, text) {
  return waitFor(page, `message from ${author}: “${text}”`,
                 ([a, t]) => [...document.querySelectorAll('#messages li.message')].some(
                   (li) => li.querySelector('.author').textContent === a && li.querySelector('.text').textContent === t),
                 [author, text]);
}

async function main() {
  console.log('TAP version 13');
  let url, spkiHash, alice, bob;

  await check('a test CA signs a certificate for 127.0.0.1 (openssl)', async () => {
    spkiHash = makeCertificate();
  });
  await check('engineio-chat --tls-cert --tls-key serves https', async () => {
    url = await startServer();
    assert(url.startsWith('https://127.0.0.1:'), `unexpected URL ${url}`);
  });
  await check('Chromium starts, trusting the server key only', async () => {
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
             '--disable-backgrounding-occluded-windows',
             `--ignore-certificate-errors-spki-list=${spkiHash}`],
    });
  });
  await check('a page forced to polling connects over https', async () => {
    alice = await openPage(url, 'alice', '?transports=polling');
    await waitFor(alice, 'transport polling', () => document.getElementById('transport').textContent === 'polling');
    assert(await alice.evaluate(() => location.protocol) === 'https:', 'the page is not on https');
  });
  await check('a page with both transports upgrades to wss', async () => {
    bob = await openPage(url, 'bob', '');
    await waitFor(bob, 'transport websocket', () => document.getElementById('transport').textContent === 'websocket' &&
                  !document.getElementById('transport').hidden);
  });
  await check('both log in and messages go both ways', async () => {
    await logIn(alice, 'alice');
    await logIn(bob, 'bob');
    await alice.fill('#message', 'hello over https');
    await alice.click('#send-button');
    await hasMessage(bob, 'alice', 'hello over https');
    await bob.fill('#message', 'hi back over wss');
    await bob.click('#send-button');
    await hasMessage(alice, 'bob', 'hi back over wss');
  });
  await check('SIGTERM: engineio-chat exits 0', async () => {
    server.removeAllListeners('exit');
    const exited = new Promise((resolve) => server.once('exit', (code) => resolve(code)));
    await context.close();
    context = null;
    server.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15000))]);
    assert(code === 0, `engineio-chat exited ${code}`);
  });
  console.log(`1..${step}`);
  await cleanup();
}

main().catch(async (error) => {
  console.log(`Bail out! ${error}`);
  await cleanup();
  process.exit(1);
});
