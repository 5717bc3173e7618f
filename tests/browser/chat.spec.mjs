#!/usr/bin/env node
/* The demo chat in real browsers: engineio-chat on a free port, Chromium
 * pages driven by playwright-core.
 *
 *   node tests/browser/chat.spec.mjs --chat BUILD/src/demo/engineio-chat [--out-dir DIR]
 *
 * (meson test --suite browser runs it; tests/browser/run-chat.sh too.)
 * Needs /usr/bin/chromium (`apt-get install -y chromium`, or CHROMIUM=path)
 * and playwright-core (`npm ci --prefix tests/interop`); without them it
 * fails, it does not skip.
 *
 * Writes a screenshot to OUT_DIR/chat-screenshot.png (and a phone-sized
 * one next to it); with ENGINEIO_SAVE_SCREENSHOT=1 also to
 * data/screenshot.png in the source tree, the one the README shows.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceRoot = path.resolve(here, '..', '..');

const WAIT_MS = 15000;
const RECONNECT_WAIT_MS = 45000;

/* Arguments and prerequisites */

function usage(message) {
  console.error(`chat.spec.mjs: ${message}\nusage: node chat.spec.mjs --chat PATH [--out-dir DIR]`);
  process.exit(2);
}

const options = { chat: null, outDir: null };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--chat') options.chat = process.argv[++i];
  else if (arg === '--out-dir') options.outDir = process.argv[++i];
  else usage(`unknown argument ${arg}`);
}
if (!options.chat) usage('--chat is required');
options.outDir = options.outDir || process.cwd();

function bail(message) {
  console.log(`Bail out! ${message}`);
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(chromiumPath)) {
  bail(`Chromium is missing (${chromiumPath}): install it with \`sudo apt-get install -y chromium\`, ` +
       'or point CHROMIUM at a Chromium binary');
}
let chromium;
try {
  const require = createRequire(path.join(sourceRoot, 'tests', 'interop', 'package.json'));
  ({ chromium } = require('playwright-core'));
} catch (error) {
  bail('playwright-core is missing: run `npm ci --prefix tests/interop` in the source tree ' +
       `(${error.message.split('\n')[0]})`);
}
if (!fs.existsSync(options.chat)) bail(`no engineio-chat at ${options.chat}: build it first`);

/* The server */

function startServer(port) {
  return new Promise((resolve, reject) => {
    const proc = spawn(options.chat, ['--port', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, G_DEBUG: 'fatal-criticals', G_MESSAGES_DEBUG: process.env.CHAT_SERVER_DEBUG ? 'all' : '' },
    });
    const server = { proc, stderr: '', url: null, port: null, exited: null };
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`engineio-chat did not start: ${server.stderr}`)), 10000);
    proc.stderr.on('data', (chunk) => { server.stderr += chunk; });
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^listening on (http:\/\/[^\s]+:(\d+)\/)\n/.exec(stdout);
      if (match && !server.url) {
        server.url = match[1];
        server.port = Number(match[2]);
        clearTimeout(timer);
        resolve(server);
      }
    });
    server.done = new Promise((done) => proc.on('exit', (code, signal) => {
      server.exited = { code, signal };
      clearTimeout(timer);
      if (!server.url) reject(new Error(`engineio-chat exited (${code ?? signal}): ${server.stderr}`));
      done(server.exited);
    }));
  });
}

async function stopServer(server, signal) {
  if (server.exited) return server.exited;
  server.proc.kill(signal);
  return server.done;
}

/* A tiny TAP reporter */

let step = 0;
const servers = [];
let context = null;
let userDataDir = null;

async function check(description, body) {
  step++;
  try {
    await body();
    console.log(`ok ${step} - ${description}`);
  } catch (error) {
    console.log(`not ok ${step} - ${description}`);
    console.log(`# ${String(error.stack || error).split('\n').join('\n# ')}`);
    for (const server of servers) {
      if (server.stderr) console.log(`# server stderr:\n# ${server.stderr.trim().split('\n').join('\n# ')}`);
    }
    await cleanup();
    process.exit(1);
  }
}

/* A step that is not itself a test: it is not counted; when it fails the
 * run bails out (and fails). */
async function setUp(description, body) {
  try {
    await body();
  } catch (error) {
    console.log(`Bail out! ${description}: ${String(error).split('\n')[0]}`);
    console.log(`# ${String(error.stack || error).split('\n').join('\n# ')}`);
    await cleanup();
    process.exit(1);
  }
}

async function cleanup() {
  if (context) await context.close().catch(() => {});
  context = null;
  for (const server of servers) await stopServer(server, 'SIGKILL').catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function waitFor(page, description, fn, arg, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (error) {
    const state = await page.evaluate(() => ({
      status: document.getElementById('status')?.textContent,
      transport: document.getElementById('transport')?.textContent,
      count: document.getElementById('count')?.textContent,
      typing: document.getElementById('typing')?.textContent,
      last: [...document.querySelectorAll('#messages li')].slice(-4).map((li) => li.textContent),
    })).catch(() => null);
    throw new Error(`${page.label}: timed out waiting for ${description}; page state ${JSON.stringify(state)}`);
  }
}

const pageState = {
  status: () => document.getElementById('status').dataset.state,
  transport: () => document.getElementById('transport').textContent,
};

function statusIs(page, state, timeout) {
  return waitFor(page, `status ${state}`, (s) => document.getElementById('status').dataset.state === s,
                 state, timeout);
}

function transportIs(page, transport, timeout) {
  return waitFor(page, `transport ${transport}`,
                 (t) => document.getElementById('transport').textContent === t && !document.getElementById('transport').hidden,
                 transport, timeout);
}

function countIs(page, count, timeout) {
  const text = `${count} ${count === 1 ? 'person' : 'people'} online`;
  return waitFor(page, `count “${text}”`, (t) => document.getElementById('count').textContent === t, text, timeout);
}

function hasNotice(page, text, timeout) {
  return waitFor(page, `notice “${text}”`,
                 (t) => [...document.querySelectorAll('#messages li.notice')].some((li) => li.textContent === t),
                 text, timeout);
}

function hasMessage(page, author, text, timeout) {
  return waitFor(page, `message from ${author}: “${text}”`,
                 ([a, t]) => [...document.querySelectorAll('#messages li.message')].some(
                   (li) => li.querySelector('.author').textContent === a && li.querySelector('.text').textContent === t),
                 [author, text], timeout);
}

function usersAre(page, names, { anyOrder = false } = {}) {
  return waitFor(page, `users ${JSON.stringify(names)}`,
                 ([n, any]) => {
                   const shown = [...document.querySelectorAll('#users li')].map((li) => li.textContent);
                   if (any) shown.sort();
                   return JSON.stringify(shown) === JSON.stringify(n);
                 },
                 [anyOrder ? [...names].sort() : names, anyOrder]);
}

async function openPage(label, query) {
  const page = await context.newPage();
  page.label = label;
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.on('dialog', (dialog) => { page.errors.push(`dialog: ${dialog.message()}`); dialog.dismiss(); });
  await page.goto(servers[0].url + query);
  return page;
}

async function logIn(page, name) {
  await statusIs(page, 'connected');
  await page.fill('#name', name);
  await page.click('#login-button');
  await waitFor(page, 'the chat view', () => !document.getElementById('chat-view').hidden);
}

async function say(page, text) {
  await page.fill('#message', text);
  await page.click('#send-button');
}

/* The test */

const XSS_MESSAGE = '<img src=x onerror=window.__xss=1>';
const XSS_NAME = '<img src=x onerror=__xss=1>';   /* names are at most 32 characters */

async function noInjection(page) {
  const result = await page.evaluate(() => ({
    xss: typeof window.__xss,
    images: document.querySelectorAll('#messages img, #users img, #typing img, #status img').length,
  }));
  assert(result.xss === 'undefined', `${page.label}: window.__xss is set: the page ran injected HTML`);
  assert(result.images === 0, `${page.label}: user text became ${result.images} <img> element(s)`);
}

async function main() {
  console.log('TAP version 13');
  let alice, bob, carol;

  await check('engineio-chat starts on a free port and serves the page', async () => {
    servers.push(await startServer(0));
    const page = await fetch(servers[0].url);
    assert(page.status === 200, `GET / answered ${page.status}`);
    assert((page.headers.get('content-type') || '').startsWith('text/html'), 'GET / is not text/html');
    const bundle = await fetch(servers[0].url + 'engine.io.min.js');
    assert(bundle.status === 200, `GET /engine.io.min.js answered ${bundle.status}: is the client bundle there?`);
    assert((bundle.headers.get('content-type') || '').startsWith('text/javascript'), 'the bundle is not JavaScript');
    const missing = await fetch(servers[0].url + 'nope.html');
    assert(missing.status === 404, `GET /nope.html answered ${missing.status}`);
  });

  /* Set-up, not a check: a failure here bails out. */
  await setUp('start Chromium', async () => {
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'engineio-chat-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             /* Several pages at once: none of them may be throttled as a background tab. */
             '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
             '--disable-backgrounding-occluded-windows'],
      viewport: { width: 1100, height: 720 },
    });
  });

  await check('a page forced to polling connects and stays on polling', async () => {
    alice = await openPage('alice', '?transports=polling');
    await statusIs(alice, 'connected');
    await transportIs(alice, 'polling');
  });

  await check('a page with both transports upgrades to WebSocket', async () => {
    bob = await openPage('bob', '');
    await statusIs(bob, 'connected');
    await transportIs(bob, 'websocket');
    /* Meanwhile the polling page did not upgrade. */
    assert(await alice.evaluate(pageState.transport) === 'polling', 'the polling-only page left polling');
  });

  await check('alice logs in and is alone', async () => {
    await logIn(alice, '  alice ');
    await countIs(alice, 1);
    await usersAre(alice, ['alice']);
    await hasNotice(alice, 'Welcome, alice · 1 person online');
  });

  await check('a taken name is refused on the login form', async () => {
    await statusIs(bob, 'connected');
    await bob.fill('#name', 'alice');
    await bob.click('#login-button');
    await waitFor(bob, 'the login error', () => !document.getElementById('login-error').hidden &&
                  /taken/.test(document.getElementById('login-error').textContent));
    assert(await bob.evaluate(() => document.getElementById('chat-view').hidden), 'bob entered the chat');
  });

  await check('bob logs in; each sees the other', async () => {
    await logIn(bob, 'bob');
    await countIs(bob, 2);
    await usersAre(bob, ['alice', 'bob']);
    await hasNotice(alice, 'bob joined · 2 people online');
    await countIs(alice, 2);
    await usersAre(alice, ['alice', 'bob']);
  });

  await check('messages go both ways', async () => {
    await say(alice, 'hello from alice');
    await hasMessage(bob, 'alice', 'hello from alice');
    await hasMessage(alice, 'alice', 'hello from alice');
    await say(bob, 'hi alice, bob here');
    await hasMessage(alice, 'bob', 'hi alice, bob here');
    await hasMessage(bob, 'bob', 'hi alice, bob here');
  });

  await check('the typing indicator shows and clears', async () => {
    await alice.focus('#message');
    await alice.keyboard.type('typing some');
    await waitFor(bob, 'alice typing', () => document.getElementById('typing').textContent === 'alice is typing…');
    assert(await alice.evaluate(() => document.getElementById('typing').textContent) === '',
           'alice sees her own typing');
    await alice.fill('#message', '');
    await alice.dispatchEvent('#message', 'input');
    await waitFor(bob, 'alice stopped typing', () => document.getElementById('typing').textContent === '');
    /* Sending a message clears it too. */
    await bob.focus('#message');
    await bob.keyboard.type('on my way');
    await waitFor(alice, 'bob typing', () => document.getElementById('typing').textContent === 'bob is typing…');
    await bob.keyboard.press('Enter');
    await hasMessage(alice, 'bob', 'on my way');
    await waitFor(alice, 'bob stopped typing', () => document.getElementById('typing').textContent === '');
  });

  await check('screenshot', async () => {
    await bob.focus('#message');
    await bob.keyboard.type('Sure, one sec');
    await waitFor(alice, 'bob typing', () => document.getElementById('typing').textContent === 'bob is typing…');
    await alice.fill('#message', 'Looks good on my side');
    fs.mkdirSync(options.outDir, { recursive: true });
    const file = path.join(options.outDir, 'chat-screenshot.png');
    await alice.screenshot({ path: file });
    console.log(`# wrote ${file}`);
    if (process.env.ENGINEIO_SAVE_SCREENSHOT === '1') {
      const saved = path.join(sourceRoot, 'data', 'screenshot.png');
      fs.copyFileSync(file, saved);
      console.log(`# saved ${saved}`);
    }
    await alice.fill('#message', '');
    await bob.fill('#message', '');
    await bob.dispatchEvent('#message', 'input');
    await waitFor(alice, 'bob stopped typing', () => document.getElementById('typing').textContent === '');
  });

  await check('HTML in a message is shown as text', async () => {
    await say(alice, XSS_MESSAGE);
    await hasMessage(bob, 'alice', XSS_MESSAGE);
    await hasMessage(alice, 'alice', XSS_MESSAGE);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await noInjection(alice);
    await noInjection(bob);
  });

  await check('a newcomer (WebSocket only) with an HTML name gets the history; the others see it join', async () => {
    carol = await openPage('newcomer', '?transports=websocket');
    await statusIs(carol, 'connected');
    await transportIs(carol, 'websocket');
    await logIn(carol, XSS_NAME);
    await hasMessage(carol, 'alice', 'hello from alice');
    await hasMessage(carol, 'bob', 'hi alice, bob here');
    await hasMessage(carol, 'alice', XSS_MESSAGE);
    const order = await carol.evaluate(() => [...document.querySelectorAll('#messages li.message .text')]
      .map((p) => p.textContent));
    assert(JSON.stringify(order) === JSON.stringify(['hello from alice', 'hi alice, bob here', 'on my way', XSS_MESSAGE]),
           `the newcomer's history is ${JSON.stringify(order)}`);
    await countIs(carol, 3);
    await usersAre(carol, ['alice', 'bob', XSS_NAME]);
    await hasNotice(alice, `${XSS_NAME} joined · 3 people online`);
    await hasNotice(bob, `${XSS_NAME} joined · 3 people online`);
    await usersAre(alice, ['alice', 'bob', XSS_NAME]);
    await say(carol, 'hi all');
    await hasMessage(alice, XSS_NAME, 'hi all');
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const page of [alice, bob, carol]) await noInjection(page);
  });

  await check('on a phone-sized screen the chat is one column that fits: no sideways scrolling, ' +
              'composer and new messages on screen and readable', async () => {
    const LONG = 'a link that does not break by itself: https://example.org/' + 'x'.repeat(120);
    await carol.setViewportSize({ width: 390, height: 760 });
    await waitFor(carol, 'the phone layout', () => window.innerWidth === 390 &&
                  getComputedStyle(document.querySelector('.chat-view')).gridTemplateColumns.split(' ').length === 1);
    /* Read to the end, as a user would; then a long message arrives. */
    await carol.evaluate(() => { const m = document.getElementById('messages'); m.scrollTop = m.scrollHeight; });
    await say(alice, LONG);
    await hasMessage(carol, 'alice', LONG);
    const layout = await carol.evaluate((long) => {
      const box = (element) => {
        const r = element.getBoundingClientRect();
        return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height };
      };
      const onTop = (element) => {
        const r = element.getBoundingClientRect();
        return element.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
      };
      const list = document.getElementById('messages');
      const texts = [...list.querySelectorAll('li.message .text')];
      const last = texts.find((t) => t.textContent === long);
      return {
        width: window.innerWidth,
        height: window.innerHeight,
        pageScrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
        listScrollWidth: list.scrollWidth,
        listClientWidth: list.clientWidth,
        list: box(list),
        users: box(document.querySelector('.users-panel')),
        conversation: box(document.querySelector('.conversation')),
        input: box(document.getElementById('message')),
        send: box(document.getElementById('send-button')),
        inputOnTop: onTop(document.getElementById('message')),
        sendOnTop: onTop(document.getElementById('send-button')),
        last: last ? box(last) : null,
        lastOnTop: last ? onTop(last) : false,
        smallestFont: Math.min(...texts.map((t) => parseFloat(getComputedStyle(t).fontSize))),
        widest: Math.max(...texts.map((t) => t.getBoundingClientRect().right)),
      };
    }, LONG);
    const inside = (b, area) => b.left >= area.left - 0.5 && b.right <= area.right + 0.5 &&
                                b.top >= area.top - 0.5 && b.bottom <= area.bottom + 0.5;
    const screen = { left: 0, top: 0, right: layout.width, bottom: layout.height };
    const report = JSON.stringify(layout);
    assert(layout.pageScrollWidth <= layout.width, `the page scrolls sideways: ${report}`);
    assert(layout.listScrollWidth <= layout.listClientWidth, `the messages scroll sideways: ${report}`);
    /* One column: the users above the conversation, which takes the whole width. */
    assert(layout.users.bottom <= layout.conversation.top + 0.5, `the users are not above the conversation: ${report}`);
    assert(layout.conversation.width >= layout.width - 0.5, `the conversation is not full width: ${report}`);
    /* The composer: on screen, uncovered, and wide enough to type in. */
    assert(inside(layout.input, screen) && inside(layout.send, screen), `the composer is off screen: ${report}`);
    assert(layout.inputOnTop && layout.sendOnTop, `the composer is covered: ${report}`);
    assert(layout.input.width >= 150, `the message field is ${layout.input.width} px wide: ${report}`);
    /* The messages: room to read them, text not shrunk, the new one wrapped inside the list and in view. */
    assert(layout.list.height >= 300, `the messages have ${layout.list.height} px of height: ${report}`);
    assert(layout.smallestFont >= 14, `message text is ${layout.smallestFont} px: ${report}`);
    assert(layout.widest <= layout.list.right + 0.5, `a message sticks out of the list: ${report}`);
    assert(layout.last !== null && inside(layout.last, layout.list) && inside(layout.last, screen) && layout.lastOnTop,
           `the new message is not in view: ${report}`);
    assert(layout.last.height > 40, `the long message did not wrap: ${report}`);
    await carol.screenshot({ path: path.join(options.outDir, 'chat-screenshot-phone.png') });
  });

  await check('a page closes; the others see it leave with the right count', async () => {
    await carol.close();
    await hasNotice(alice, `${XSS_NAME} left · 2 people online`);
    await hasNotice(bob, `${XSS_NAME} left · 2 people online`);
    await countIs(alice, 2);
    await countIs(bob, 2);
    await usersAre(bob, ['alice', 'bob']);
  });

  await check('the server is killed: the pages notice and back off', async () => {
    const exited = await stopServer(servers[0], 'SIGKILL');
    assert(exited.signal === 'SIGKILL', `the server exited with ${JSON.stringify(exited)}`);
    await statusIs(alice, 'reconnecting');
    await statusIs(bob, 'reconnecting');
    /* Give the backoff a few rounds against a closed port. */
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert(await alice.evaluate(pageState.status) === 'reconnecting', 'alice is not reconnecting');
  });

  await check('the server restarts on the same port: the pages reconnect and log in again by themselves', async () => {
    servers.push(await startServer(servers[0].port));
    assert(servers[1].port === servers[0].port, 'the port changed');
    await statusIs(alice, 'connected', RECONNECT_WAIT_MS);
    await statusIs(bob, 'connected', RECONNECT_WAIT_MS);
    await countIs(alice, 2, RECONNECT_WAIT_MS);
    await countIs(bob, 2, RECONNECT_WAIT_MS);
    /* Who logged in again first is up to the backoff. */
    await usersAre(alice, ['alice', 'bob'], { anyOrder: true });
    await usersAre(bob, ['alice', 'bob'], { anyOrder: true });
    await transportIs(alice, 'polling');
    await transportIs(bob, 'websocket');
    await say(bob, 'still here after the restart');
    await hasMessage(alice, 'bob', 'still here after the restart');
    /* The old conversation is still on screen. */
    await hasMessage(alice, 'alice', 'hello from alice');
  });

  await check('no script errors in the pages', async () => {
    for (const page of [alice, bob]) {
      assert(page.errors.length === 0, `${page.label}: ${page.errors.join('; ')}`);
    }
  });

  await check('engineio-chat shuts down cleanly on SIGTERM', async () => {
    await context.close();
    context = null;
    const exited = await stopServer(servers[1], 'SIGTERM');
    assert(exited.code === 0, `exit ${JSON.stringify(exited)}; stderr: ${servers[1].stderr}`);
    assert(!/CRITICAL|WARNING/.test(servers[1].stderr), `warnings: ${servers[1].stderr}`);
  });

  console.log(`1..${step}`);
  await cleanup();
}

main().catch(async (error) => {
  console.log(`Bail out! ${error.stack || error}`);
  await cleanup();
  process.exit(1);
});
