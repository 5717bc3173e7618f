#!/usr/bin/env node
/* The Socket.IO demo chat in real browsers: socketio-chat (C) or
 * data/python/sio-chat.py on free ports, Chromium pages driven by
 * playwright-core, the page talking through socket.io-client's bundle.
 *
 *   node tests/browser/sio-chat.spec.mjs --chat BUILD/src/demo/socketio-chat
 *   node tests/browser/sio-chat.spec.mjs --python data/python/sio-chat.py --bundle PATH/socket.io.min.js
 *   node tests/browser/sio-chat.spec.mjs --chat BUILD/src/demo/socketio-chat --cluster
 *
 * --cluster (meson test sio-chat-cluster): three socketio-chat nodes with
 * --redis on one real redis-server started here (a free loopback port),
 * one Chromium page on each node (polling, WebSocket, upgrade): logins,
 * messages, typing and room changes cross the nodes, rooms stay isolated,
 * and a node killed leaves the other two chatting. Needs redis-server.
 *
 * (meson test sio-chat and sio-chat-python run it; so does
 * tests/browser/run-sio-chat.sh.) ENGINE_IO_TEST_LOOP_THREADS=N runs the C
 * server with --loop-threads N (default 0, a thread per session). The Python server serves the page itself
 * on a second port (--serve-page) and needs GI_TYPELIB_PATH and
 * LD_LIBRARY_PATH set to the build's src/ and src/socketio/. Needs
 * /usr/bin/chromium (or CHROMIUM=path) and playwright-core (`npm ci
 * --prefix tests/interop`); without them it fails, it does not skip.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceRoot = path.resolve(here, '..', '..');

const WAIT_MS = 15000;

/* Arguments and prerequisites */

function usage(message) {
  console.error(`sio-chat.spec.mjs: ${message}\n` +
                'usage: node sio-chat.spec.mjs (--chat PATH | --python SCRIPT [--bundle PATH]) [--out-dir DIR]');
  process.exit(2);
}

const options = { chat: null, python: null, bundle: null, outDir: null, cluster: false };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--chat') options.chat = process.argv[++i];
  else if (arg === '--cluster') options.cluster = true;
  else if (arg === '--python') options.python = process.argv[++i];
  else if (arg === '--bundle') options.bundle = process.argv[++i];
  else if (arg === '--out-dir') options.outDir = process.argv[++i];
  else usage(`unknown argument ${arg}`);
}
if (!options.chat === !options.python) usage('one of --chat and --python is required');
if (options.cluster && !options.chat) usage('--cluster runs socketio-chat: it needs --chat');
options.outDir = options.outDir || process.cwd();
const serverName = options.chat ? 'socketio-chat' : 'sio-chat.py';

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
let chromium, io;
try {
  const require = createRequire(path.join(sourceRoot, 'tests', 'interop', 'package.json'));
  ({ chromium } = require('playwright-core'));
  ({ io } = require('socket.io-client'));
} catch (error) {
  bail('playwright-core or socket.io-client is missing: run `npm ci --prefix tests/interop` in the source tree ' +
       `(${error.message.split('\n')[0]})`);
}
const program = options.chat || options.python;
if (!fs.existsSync(program)) bail(`no ${serverName} at ${program}: build it first`);
if (options.bundle && !fs.existsSync(options.bundle)) {
  bail(`no socket.io-client bundle at ${options.bundle}: run \`npm ci --prefix tests/interop\``);
}

/* The server: prints "listening on URL" first, URL being the page's. */

function startServer(extra = []) {
  return new Promise((resolve, reject) => {
    const [command, args] = options.chat
      ? [options.chat, ['--port', '0', '--loop-threads', process.env.ENGINE_IO_TEST_LOOP_THREADS || '0', ...extra]]
      : [process.env.PYTHON || '/usr/bin/python3',
         [options.python, '--port', '0', '--serve-page', ...(options.bundle ? ['--client-bundle', options.bundle] : []),
          ...extra]];
    const proc = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, G_DEBUG: 'fatal-criticals', G_MESSAGES_DEBUG: process.env.CHAT_SERVER_DEBUG ? 'all' : '' },
    });
    const server = { proc, stderr: '', url: null, exited: null };
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`${serverName} did not start: ${server.stderr}`)), 10000);
    proc.stderr.on('data', (chunk) => { server.stderr += chunk; });
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^listening on (http:\/\/127\.0\.0\.1:\d+\/\S*)\n/.exec(stdout);
      if (match && !server.url) {
        server.url = match[1];
        clearTimeout(timer);
        resolve(server);
      }
    });
    server.done = new Promise((done) => proc.on('exit', (code, signal) => {
      server.exited = { code, signal };
      clearTimeout(timer);
      if (!server.url) reject(new Error(`${serverName} exited (${code ?? signal}): ${server.stderr}`));
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
let server = null;
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
    if (server && server.stderr) console.log(`# server stderr:\n# ${server.stderr.trim().split('\n').join('\n# ')}`);
    await cleanup();
    process.exit(1);
  }
}

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

let clusterServers = [];
let redis = null;

async function cleanup() {
  if (context) await context.close().catch(() => {});
  context = null;
  if (server) await stopServer(server, 'SIGKILL').catch(() => {});
  for (const node of clusterServers) await stopServer(node, 'SIGKILL').catch(() => {});
  clusterServers = [];
  if (redis && redis.exitCode === null) {
    redis.kill('SIGKILL');
    await new Promise((resolve) => redis.on('exit', resolve));
  }
  redis = null;
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
      room: document.getElementById('room-name')?.textContent,
      users: [...document.querySelectorAll('#users li')].map((li) => li.textContent),
      typing: document.getElementById('typing')?.textContent,
      loginError: document.getElementById('login-error')?.textContent,
      chatError: document.getElementById('chat-error')?.textContent,
      last: [...document.querySelectorAll('#messages li')].slice(-5).map((li) => li.textContent),
    })).catch(() => null);
    throw new Error(`${page.label}: timed out waiting for ${description}; page state ${JSON.stringify(state)}`);
  }
}

function statusIs(page, state) {
  return waitFor(page, `status ${state}`, (s) => document.getElementById('status').dataset.state === s, state);
}

function transportIs(page, transport) {
  return waitFor(page, `transport ${transport}`,
                 (t) => document.getElementById('transport').textContent === t && !document.getElementById('transport').hidden,
                 transport);
}

function roomIs(page, room) {
  return waitFor(page, `room ${room}`, (r) => document.getElementById('room-name').textContent === r, room);
}

function hasNotice(page, text) {
  return waitFor(page, `notice “${text}”`,
                 (t) => [...document.querySelectorAll('#messages li.notice')].some((li) => li.textContent === t),
                 text);
}

function hasMessage(page, author, text) {
  return waitFor(page, `message from ${author}: “${text}”`,
                 ([a, t]) => [...document.querySelectorAll('#messages li.message')].some(
                   (li) => li.querySelector('.author').textContent === a && li.querySelector('.text').textContent === t),
                 [author, text]);
}

/* Our own message @text, acknowledged by the server. */
function delivered(page, text) {
  return waitFor(page, `“${text}” delivered`,
                 (t) => [...document.querySelectorAll('#messages li.message.mine')].some(
                   (li) => li.querySelector('.text').textContent === t && li.dataset.state === 'delivered' &&
                           li.querySelector('.delivery').textContent === '✓ delivered'),
                 text);
}

async function messagesOf(page) {
  return page.evaluate(() => [...document.querySelectorAll('#messages li.message .text')].map((p) => p.textContent));
}

function usersAre(page, names) {
  return waitFor(page, `users ${JSON.stringify(names)}`,
                 (n) => JSON.stringify([...document.querySelectorAll('#users li')].map((li) => li.textContent)) ===
                        JSON.stringify(n),
                 names);
}

function typingIs(page, text) {
  return waitFor(page, `typing “${text}”`, (t) => document.getElementById('typing').textContent === t, text);
}

function pageUrl(query) {
  if (!query) return server.url;
  return server.url + (server.url.includes('?') ? '&' + query.slice(1) : query);
}

async function openPage(label, query) {
  const page = await context.newPage();
  page.label = label;
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.on('dialog', (dialog) => { page.errors.push(`dialog: ${dialog.message()}`); dialog.dismiss(); });
  await page.goto(pageUrl(query));
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

async function joinRoom(page, room) {
  await page.fill('#room-input', room);
  await page.click('#join-button');
  await roomIs(page, (room.startsWith('#') ? room : '#' + room).toLowerCase());
}

const XSS_MESSAGE = '<img src=x onerror=window.__xss=1>';

async function noInjection(page) {
  const result = await page.evaluate(() => ({
    xss: typeof window.__xss,
    images: document.querySelectorAll('#messages img, #users img, #rooms img, #typing img').length,
  }));
  assert(result.xss === 'undefined', `${page.label}: window.__xss is set: the page ran injected HTML`);
  assert(result.images === 0, `${page.label}: user text became ${result.images} <img> element(s)`);
}

/* The test */

async function main() {
  console.log('TAP version 13');
  let alice, bob, carol, dave;

  await check(`${serverName} starts on a free port and serves the page and socket.io.min.js`, async () => {
    server = await startServer();
    const origin = new URL(server.url).origin + '/';
    const page = await fetch(origin);
    assert(page.status === 200, `GET / answered ${page.status}`);
    assert((page.headers.get('content-type') || '').startsWith('text/html'), 'GET / is not text/html');
    const bundle = await fetch(origin + 'socket.io.min.js');
    assert(bundle.status === 200, `GET /socket.io.min.js answered ${bundle.status}: is the client bundle there?`);
    assert((bundle.headers.get('content-type') || '').startsWith('text/javascript'), 'the bundle is not JavaScript');
    assert((await bundle.text()).includes('io'), 'the bundle is empty');
    // The base stylesheet is data/chat/chat.css (served from the Engine.IO
    // chat's directory), sio-chat.css adds the rooms and delivery marks.
    for (const [name, rule] of [['chat.css', '.topbar'], ['sio-chat.css', '.rooms']]) {
      const css = await fetch(origin + name);
      assert(css.status === 200, `GET /${name} answered ${css.status}`);
      assert((css.headers.get('content-type') || '').startsWith('text/css'), `${name} is not text/css`);
      assert((await css.text()).includes(rule), `${name} has no ${rule} rule`);
    }
  });

  await setUp('start Chromium', async () => {
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sio-chat-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
             '--disable-backgrounding-occluded-windows'],
      viewport: { width: 1100, height: 720 },
    });
  });

  await check('a page forced to polling and a page upgrading to WebSocket connect', async () => {
    alice = await openPage('alice', '?transports=polling');
    bob = await openPage('bob', '');
    await statusIs(alice, 'connected');
    await statusIs(bob, 'connected');
    await transportIs(alice, 'polling');
    await transportIs(bob, 'websocket');
  });

  await check('the page applies both stylesheets (chat.css, then sio-chat.css)', async () => {
    const sheets = await alice.evaluate(() => Array.from(document.styleSheets,
      (sheet) => [new URL(sheet.href).pathname, sheet.cssRules.length]));
    assert(JSON.stringify(sheets.map(([href]) => href)) === '["/chat.css","/sio-chat.css"]',
           `stylesheets ${JSON.stringify(sheets)}`);
    assert(sheets.every(([, rules]) => rules > 0), `an empty stylesheet: ${JSON.stringify(sheets)}`);
    assert(await alice.evaluate(() => getComputedStyle(document.querySelector('.topbar')).display) === 'flex',
           'chat.css is not applied to the top bar');
  });

  await check('alice logs in (acknowledged) and is alone in #general', async () => {
    await logIn(alice, '  alice ');
    await roomIs(alice, '#general');
    await usersAre(alice, ['alice']);
    await hasNotice(alice, 'Welcome, alice');
  });

  await check('a taken name (case-insensitive) is refused on the login form', async () => {
    await bob.fill('#name', 'ALICE');
    await bob.click('#login-button');
    await waitFor(bob, 'the login error', () => document.getElementById('login-error').textContent === 'That name is taken');
    assert(await bob.evaluate(() => document.getElementById('chat-view').hidden), 'bob got in with a taken name');
  });

  await check('bob logs in; alice sees him join #general', async () => {
    await logIn(bob, 'bob');
    await usersAre(bob, ['alice', 'bob']);
    await hasNotice(alice, 'bob joined #general');
    await usersAre(alice, ['alice', 'bob']);
  });

  await check('typing reaches the others in the room, not the typist', async () => {
    await bob.fill('#message', 'hel');
    await typingIs(alice, 'bob is typing…');
    assert(await bob.evaluate(() => document.getElementById('typing').textContent) === '', 'bob sees himself typing');
    await bob.fill('#message', '');
    await typingIs(alice, '');
  });

  await check('a message reaches the room and is shown delivered when the server acks it', async () => {
    await say(alice, 'hello from alice');
    await delivered(alice, 'hello from alice');
    await hasMessage(bob, 'alice', 'hello from alice');
    await say(bob, 'hi alice');
    await delivered(bob, 'hi alice');
    await hasMessage(alice, 'bob', 'hi alice');
  });

  await check('a third user logs in and gets #general\'s history', async () => {
    carol = await openPage('carol', '');
    await logIn(carol, 'carol');
    await hasMessage(carol, 'alice', 'hello from alice');
    await hasMessage(carol, 'bob', 'hi alice');
    await usersAre(carol, ['alice', 'bob', 'carol']);
  });

  await check('alice creates #dev, bob joins it from the room list; joined and left notices', async () => {
    await joinRoom(alice, 'Dev');
    await usersAre(alice, ['alice']);
    await hasNotice(bob, 'alice left #general');
    await waitFor(bob, '#dev in the room list', () => document.querySelector('#rooms li[data-room="#dev"]') !== null);
    await bob.click('#rooms li[data-room="#dev"] button');
    await roomIs(bob, '#dev');
    await hasNotice(alice, 'bob joined #dev');
    await usersAre(alice, ['alice', 'bob']);
    await usersAre(carol, ['carol']);
    /* The room list counts the members. */
    await waitFor(carol, 'the room counts',
                  () => [...document.querySelectorAll('#rooms li')].map((li) => li.textContent).join(',') === '#dev2,#general1');
  });

  await check('rooms are isolated: #dev and #general do not see each other\'s messages or typing', async () => {
    await say(alice, 'only for dev');
    await delivered(alice, 'only for dev');
    await hasMessage(bob, 'alice', 'only for dev');
    await carol.fill('#message', 'x');
    await say(carol, 'only for general');
    await delivered(carol, 'only for general');
    /* The server acks after broadcasting, in order per client: once bob's and
     * alice's own next messages are delivered and seen by each other, a
     * message of the other room would have arrived. */
    await say(bob, 'dev again');
    await delivered(bob, 'dev again');
    await hasMessage(alice, 'bob', 'dev again');
    for (const page of [alice, bob]) {
      const texts = await messagesOf(page);
      assert(!texts.includes('only for general'), `${page.label} (in #dev) saw a #general message`);
      assert(!texts.includes('hello from alice'), `${page.label}: #general's history is still shown in #dev`);
    }
    const carolTexts = await messagesOf(carol);
    assert(!carolTexts.includes('only for dev') && !carolTexts.includes('dev again'),
           'carol (in #general) saw a #dev message');
    for (const page of [alice, bob]) {
      assert(await page.evaluate(() => document.getElementById('typing').textContent) === '',
             `${page.label} saw carol typing in another room`);
    }
  });

  await check('a late joiner of #dev gets its history, not #general\'s', async () => {
    dave = await openPage('dave', '?transports=websocket');
    await logIn(dave, 'dave');
    await hasMessage(dave, 'carol', 'only for general');
    await joinRoom(dave, '#dev');
    await hasMessage(dave, 'alice', 'only for dev');
    await hasMessage(dave, 'bob', 'dev again');
    const texts = await messagesOf(dave);
    assert(JSON.stringify(texts) === JSON.stringify(['only for dev', 'dev again']),
           `dave's #dev history: ${JSON.stringify(texts)}`);
    await hasNotice(alice, 'dave joined #dev');
    await usersAre(alice, ['alice', 'bob', 'dave']);
  });

  await check('user text is never HTML', async () => {
    await say(dave, XSS_MESSAGE);
    await delivered(dave, XSS_MESSAGE);
    await hasMessage(alice, 'dave', XSS_MESSAGE);
    for (const page of [alice, bob, dave]) await noInjection(page);
  });

  await check('leaving a room and closing a page: left notices and user lists follow', async () => {
    await bob.click('#leave-button');
    await roomIs(bob, '#general');
    await hasNotice(alice, 'bob left #dev');
    await usersAre(alice, ['alice', 'dave']);
    await hasNotice(carol, 'bob joined #general');
    await hasMessage(bob, 'carol', 'only for general');
    await dave.close();
    await hasNotice(alice, 'dave left #dev');
    await usersAre(alice, ['alice']);
  });

  await check('no script errors in the pages', async () => {
    for (const page of [alice, bob, carol]) {
      assert(page.errors.length === 0, `${page.label}: ${page.errors.join('; ')}`);
    }
    assert(dave.errors.length === 0, `dave: ${dave.errors.join('; ')}`);
  });

  await check(`${serverName} shuts down cleanly on SIGTERM`, async () => {
    if (options.outDir) {
      await alice.screenshot({ path: path.join(options.outDir, `sio-chat-${options.chat ? 'c' : 'python'}-screenshot.png`) })
        .catch(() => {});
    }
    await context.close();
    context = null;
    const exited = await stopServer(server, 'SIGTERM');
    assert(exited.code === 0, `exit ${JSON.stringify(exited)}; stderr: ${server.stderr}`);
    assert(!/CRITICAL|WARNING|Traceback/.test(server.stderr), `warnings: ${server.stderr}`);
  });

  /* The bounds, with socket.io-client in Node against a server started
   * with small ones. */
  const clients = [];
  const socketUrl = () => {
    const u = new URL(server.url);
    return u.searchParams.get('server') || u.origin;
  };
  async function client(name) {
    const c = io(socketUrl(), { transports: ['websocket'], reconnection: false, forceNew: true });
    clients.push(c);
    c.inbox = [];
    c.onAny((event, ...args) => c.inbox.push([event, ...args]));
    await new Promise((resolve, reject) => {
      c.once('connect', resolve);
      c.once('connect_error', reject);
    });
    if (name) {
      const answer = await ask(c, 'login', name);
      assert(answer.ok, `login ${name}: ${JSON.stringify(answer)}`);
    }
    return c;
  }
  const ask = (c, ...args) => c.timeout(WAIT_MS).emitWithAck(...args);
  function refused(answer, code) {
    assert(answer && answer.ok === false && answer.error === code,
           `expected ${code}, got ${JSON.stringify(answer)}`);
  }

  await check(`${serverName} restarts with --history 3 --max-rooms 3 --max-users 4`, async () => {
    server = await startServer(['--history', '3', '--max-rooms', '3', '--max-users', '4']);
  });

  await check('names: validated, unique, logged in once; nothing before a login', async () => {
    const c = await client(null);
    refused(await ask(c, 'message', 'hi'), 'not-logged-in');
    refused(await ask(c, 'join', '#x'), 'not-logged-in');
    refused(await ask(c, 'login', ''), 'bad-name');
    refused(await ask(c, 'login', '   '), 'bad-name');
    refused(await ask(c, 'login', 'x'.repeat(33)), 'bad-name');
    refused(await ask(c, 'login', 'a\u0007b'), 'bad-name');
    refused(await ask(c, 'login', 42), 'bad-name');
    refused(await ask(c, 'nope'), 'unknown-event');
    const ok = await ask(c, 'login', ' ' + 'é'.repeat(32) + ' ');
    assert(ok.ok && ok.name === 'é'.repeat(32), `32 characters: ${JSON.stringify(ok)}`);
    refused(await ask(c, 'login', 'other'), 'already-logged-in');
    const d = await client(null);
    refused(await ask(d, 'login', 'É'.repeat(32)), 'name-taken');
    c.close();
    d.close();
  });

  await check('messages: strings of 1 to 1000 characters, no binary; history keeps the last 3', async () => {
    const c = await client('writer');
    refused(await ask(c, 'message', ''), 'bad-message');
    refused(await ask(c, 'message', { text: 'hi' }), 'bad-message');
    refused(await ask(c, 'message', new Uint8Array([1, 2])), 'bad-message');
    refused(await ask(c, 'message', 'x'.repeat(1001)), 'too-long');
    const ok = await ask(c, 'message', '€'.repeat(1000));
    assert(ok.ok, `1000 characters refused: ${JSON.stringify(ok)}`);
    for (const text of ['m1', 'm2', 'm3', 'm4']) assert((await ask(c, 'message', text)).ok, `${text} refused`);
    const late = await client(null);
    const welcome = await ask(late, 'login', 'late');
    assert(JSON.stringify(welcome.history.map((m) => m.text)) === '["m2","m3","m4"]',
           `history: ${JSON.stringify(welcome.history.map((m) => m.text.slice(0, 10)))}`);
    c.close();
    late.close();
  });

  await check('rooms: names validated, at most 3 at once, an emptied room goes away with its history', async () => {
    const a = await client('ra');
    const b = await client('rb');
    refused(await ask(a, 'join', '#'), 'bad-room');
    refused(await ask(a, 'join', '#' + 'x'.repeat(25)), 'bad-room');
    refused(await ask(a, 'join', '#a b'), 'bad-room');
    refused(await ask(a, 'leave'), 'bad-room');
    assert((await ask(a, 'join', 'ONE')).room === '#one', 'ONE is not #one');
    assert((await ask(a, 'typing')).ok, 'typing in #one refused');
    assert((await ask(a, 'message', 'in one')).ok, 'message in #one refused');
    /* Both were sent to #one before a's ack: b (in #general) would have them
     * before the answer to its own next request. The page also filters by
     * room; this checks the server. */
    assert((await ask(b, 'stop-typing')).ok, 'stop-typing refused');
    const leaked = b.inbox.filter(([event, arg]) => ['message', 'typing'].includes(event) && arg && arg.room === '#one');
    assert(leaked.length === 0, `b, in #general, got #one's ${JSON.stringify(leaked)}`);
    assert(b.inbox.some(([event, arg]) => event === 'left' && arg.room === '#general' && arg.name === 'ra'),
           `b did not see ra leave #general: ${JSON.stringify(b.inbox)}`);
    assert((await ask(b, 'join', '#two')).ok, '#two refused');
    const c = await client('rc');
    refused(await ask(c, 'join', '#three'), 'too-many-rooms');
    assert((await ask(c, 'join', '#two')).ok, 'an existing room refused');
    assert((await ask(c, 'leave')).ok, 'leave refused');
    /* b is alone in #two: leaving it for a new room frees its place. */
    const three = await ask(b, 'join', '#three');
    assert(three.ok && JSON.stringify(three.rooms.map((r) => r.name)) === '["#general","#one","#three"]',
           `rooms: ${JSON.stringify(three.rooms)}`);
    assert((await ask(a, 'leave')).room === '#general', 'leave did not go to #general');
    const again = await ask(b, 'join', '#one');
    assert(again.ok && again.history.length === 0, `#one kept its history: ${JSON.stringify(again.history)}`);
    for (const x of [a, b, c]) x.close();
  });

  await check('users: at most 4 logged in; a place is freed by a disconnection', async () => {
    /* The users of the checks above closed their connections: the server
     * may not have seen every one go yet, so a server-full is retried. */
    async function logInWhenFree(c, name) {
      const deadline = Date.now() + WAIT_MS;
      let answer;
      do {
        answer = await ask(c, 'login', name);
      } while (!answer.ok && answer.error === 'server-full' && Date.now() < deadline &&
               await new Promise((r) => setTimeout(r, 100, true)));
      assert(answer.ok, `login ${name}: ${JSON.stringify(answer)}`);
    }
    const users = [];
    for (let i = 0; i < 4; i++) {
      users.push(await client(null));
      await logInWhenFree(users[i], 'u' + i);
    }
    const extra = await client(null);
    refused(await ask(extra, 'login', 'u4'), 'server-full');
    users[0].close();
    await logInWhenFree(extra, 'u4');
    for (const c of [...users, extra]) c.close();
  });

  await check('events: at most 10 per second with bursts of 20, then rate-limited', async () => {
    const c = await client('fast');
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 60 }, () => ask(c, 'typing')));
    const seconds = (Date.now() - t0) / 1000;
    const limited = answers.filter((a) => a.ok === false && a.error === 'rate-limited').length;
    const accepted = answers.filter((a) => a.ok === true).length;
    assert(accepted + limited === answers.length, `other answers: ${JSON.stringify(answers)}`);
    /* The burst (less the login's token), and no more than the refill allows meanwhile. */
    assert(accepted >= 19 && accepted <= 20 + Math.ceil(10 * seconds) + 1 && limited > 0,
           `${accepted} accepted, ${limited} rate-limited in ${seconds} s`);
    c.close();
  });

  await check(`${serverName} shuts down cleanly on SIGTERM after the bounds`, async () => {
    for (const c of clients) c.close();
    const exited = await stopServer(server, 'SIGTERM');
    assert(exited.code === 0, `exit ${JSON.stringify(exited)}; stderr: ${server.stderr}`);
    assert(!/CRITICAL|WARNING|Traceback/.test(server.stderr), `warnings: ${server.stderr}`);
  });

  console.log(`1..${step}`);
  await cleanup();
}

/* --cluster: three nodes on one Redis */

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// redis-server on a free loopback port, ready when its own stdout says so (a port that merely
// accepts could be another test process's Redis, started on the same free port first: ours then
// exits, and another port is tried).
async function startRedis() {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
                                        '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.on('error', () => {});
    const ready = await new Promise((resolve) => {
      let out = '';
      const timer = setTimeout(() => resolve(false), 10000);
      proc.stdout.on('data', (d) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) { clearTimeout(timer); resolve(true); }
      });
      proc.on('exit', () => { clearTimeout(timer); resolve(false); });
    });
    if (ready) return { proc, url: `redis://127.0.0.1:${port}` };
    proc.kill('SIGKILL');
  }
  throw new Error('redis-server did not start on a free port in 20 attempts');
}

async function openPageOn(node, label, query) {
  const page = await context.newPage();
  page.label = label;
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(String(error)));
  page.on('dialog', (dialog) => { page.errors.push(`dialog: ${dialog.message()}`); dialog.dismiss(); });
  await page.goto(node.url + (query || ''));
  return page;
}

async function mainCluster() {
  console.log('TAP version 13');
  let alice, bob, carol;

  await check('redis-server and three socketio-chat --redis nodes start on free ports', async () => {
    const r = await startRedis();
    redis = r.proc;
    for (let i = 0; i < 3; i++) clusterServers.push(await startServer(['--redis', r.url]));
    const ports = new Set(clusterServers.map((node) => new URL(node.url).port));
    assert(ports.size === 3, `ports ${[...ports]}`);
  });

  await setUp('start Chromium', async () => {
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sio-chat-cluster-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
             '--disable-backgrounding-occluded-windows'],
      viewport: { width: 1100, height: 720 },
    });
  });

  await check('one page on each node (polling, WebSocket, upgrade) logs in to #general', async () => {
    alice = await openPageOn(clusterServers[0], 'alice@node0', '?transports=polling');
    bob = await openPageOn(clusterServers[1], 'bob@node1', '?transports=websocket');
    carol = await openPageOn(clusterServers[2], 'carol@node2', '');
    await logIn(alice, 'alice');
    await transportIs(alice, 'polling');
    await logIn(bob, 'bob');
    await transportIs(bob, 'websocket');
    await hasNotice(alice, 'bob joined #general');
    await logIn(carol, 'carol');
    await transportIs(carol, 'websocket');
    await hasNotice(alice, 'carol joined #general');
    await hasNotice(bob, 'carol joined #general');
    /* A page's member list: its node's members when it logged in, then
     * the names of the joined notices from every node (a node knows only
     * its own members: socketio-chat.c). */
    await usersAre(alice, ['alice', 'bob', 'carol']);
    await usersAre(bob, ['bob', 'carol']);
    await usersAre(carol, ['carol']);
  });

  await check('a message from each node reaches the pages on the other two, once', async () => {
    await say(alice, 'from node 0');
    await delivered(alice, 'from node 0');
    await hasMessage(bob, 'alice', 'from node 0');
    await hasMessage(carol, 'alice', 'from node 0');
    await say(bob, 'from node 1');
    await delivered(bob, 'from node 1');
    await hasMessage(alice, 'bob', 'from node 1');
    await hasMessage(carol, 'bob', 'from node 1');
    await say(carol, 'from node 2');
    await delivered(carol, 'from node 2');
    await hasMessage(alice, 'carol', 'from node 2');
    await hasMessage(bob, 'carol', 'from node 2');
    for (const page of [alice, bob, carol]) {
      const texts = await messagesOf(page);
      for (const text of ['from node 0', 'from node 1', 'from node 2']) {
        const n = texts.filter((t) => t === text).length;
        assert(n === 1, `${page.label} shows “${text}” ${n} times`);
      }
    }
  });

  await check('typing on node 2 shows on nodes 0 and 1', async () => {
    await carol.fill('#message', 'typ');
    await typingIs(alice, 'carol is typing…');
    await typingIs(bob, 'carol is typing…');
    await carol.fill('#message', '');
    await typingIs(alice, '');
    await typingIs(bob, '');
  });

  await check('rooms across nodes: alice and carol in #dev, bob stays in #general; isolated', async () => {
    await joinRoom(alice, 'dev');
    await hasNotice(bob, 'alice left #general');
    await usersAre(carol, ['carol']);
    await usersAre(bob, ['bob', 'carol']);
    await joinRoom(carol, 'dev');
    await hasNotice(alice, 'carol joined #dev');
    await say(alice, 'dev only');
    await delivered(alice, 'dev only');
    await hasMessage(carol, 'alice', 'dev only');
    await say(bob, 'general only');
    await delivered(bob, 'general only');
    /* Acks come after the broadcast, in order: carol's next message seen by
     * alice means bob's would have arrived by now. */
    await say(carol, 'dev again');
    await delivered(carol, 'dev again');
    await hasMessage(alice, 'carol', 'dev again');
    for (const page of [alice, carol]) {
      assert(!(await messagesOf(page)).includes('general only'), `${page.label} (in #dev) saw a #general message`);
    }
    const bobTexts = await messagesOf(bob);
    assert(!bobTexts.includes('dev only') && !bobTexts.includes('dev again'), 'bob (in #general) saw a #dev message');
  });

  await check('node 1 killed: bob\'s page loses its server, alice and carol keep chatting', async () => {
    const killed = await stopServer(clusterServers[1], 'SIGKILL');
    assert(killed.signal === 'SIGKILL', `node 1 ended ${JSON.stringify(killed)}`);
    await waitFor(bob, 'the page to see its server gone',
                  () => document.getElementById('status').dataset.state !== 'connected');
    await say(carol, 'still here');
    await delivered(carol, 'still here');
    await hasMessage(alice, 'carol', 'still here');
  });

  await check('no page error; nodes 0 and 2 exit cleanly on SIGTERM', async () => {
    for (const page of [alice, bob, carol]) {
      assert(page.errors.length === 0, `${page.label}: ${page.errors.join('; ')}`);
      await noInjection(page);
    }
    for (const i of [0, 2]) {
      const exited = await stopServer(clusterServers[i], 'SIGTERM');
      assert(exited.code === 0, `node ${i}: exit ${JSON.stringify(exited)}; stderr: ${clusterServers[i].stderr}`);
      assert(!/CRITICAL|Traceback/.test(clusterServers[i].stderr), `node ${i}: ${clusterServers[i].stderr}`);
    }
  });

  console.log(`1..${step}`);
  await cleanup();
}

(options.cluster ? mainCluster() : main()).catch(async (error) => {
  console.log(`Bail out! ${error.stack || error}`);
  await cleanup();
  process.exit(1);
});
