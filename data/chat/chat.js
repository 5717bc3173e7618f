/* engineio-glib chat: the page's logic.
 *
 * Talks the JSON protocol of data/chat/README.md over engine.io-client
 * (the global `eio`, from engine.io.min.js). User text is only ever put in
 * the page with textContent, never parsed as HTML.
 *
 * engine.io-client does not reconnect by itself: when the socket closes,
 * this page opens a new one after an exponential backoff, and logs in
 * again with the same name.
 *
 * `?transports=polling` or `?transports=websocket` (or both, comma
 * separated) restricts the transports, for tests.
 */
'use strict';

(function () {
  const MAX_FRAME_CHARS = 2000;
  const TYPING_IDLE_MS = 2000;      /* send stop-typing after this long without a key */
  const TYPING_EXPIRE_MS = 6000;    /* forget someone's typing if no stop-typing came */
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const NAME_TAKEN_RETRY_MS = 3000; /* after a reconnect, our old session may linger */

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    transport: $('transport'),
    count: $('count'),
    loginView: $('login-view'),
    loginForm: $('login-form'),
    name: $('name'),
    loginButton: $('login-button'),
    loginError: $('login-error'),
    chatView: $('chat-view'),
    users: $('users'),
    usersCount: $('users-count'),
    messages: $('messages'),
    typing: $('typing'),
    chatError: $('chat-error'),
    composer: $('composer'),
    message: $('message'),
    sendButton: $('send-button'),
  };

  const params = new URLSearchParams(location.search);
  const transports = (params.get('transports') || 'polling,websocket')
    .split(',').map((t) => t.trim()).filter((t) => t === 'polling' || t === 'websocket');

  let socket = null;
  let connected = false;
  let attempt = 0;              /* reconnection attempts since the last open */
  let reconnectTimer = null;
  let countdownTimer = null;
  let myName = null;            /* the name we are (or were) logged in with */
  let pendingName = null;       /* a login sent, not yet answered */
  let loggedIn = false;
  let users = [];
  const typingTimers = new Map();   /* name -> timeout id */
  let typingSent = false;
  let typingIdleTimer = null;
  let errorTimer = null;
  const seen = new Set();       /* messages shown, so a replayed history is not shown twice */

  /* Connection state */

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text;
  }

  function showTransport(name) {
    ui.transport.hidden = !name;
    ui.transport.textContent = name || '';
    ui.transport.dataset.transport = name || '';
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    clearInterval(countdownTimer);
    if (typeof window.eio !== 'function') {
      setStatus('offline', 'Client library missing');
      showLoginError('engine.io.min.js did not load: see engineio-chat --help (--client-bundle).');
      return;
    }
    setStatus(attempt === 0 ? 'connecting' : 'reconnecting', attempt === 0 ? 'Connecting…' : 'Reconnecting…');

    const s = window.eio({ path: '/engine.io', transports: transports });
    socket = s;
    s.on('open', () => {
      if (s !== socket) return;
      connected = true;
      attempt = 0;
      setStatus('connected', 'Connected');
      showTransport(s.transport.name);
      updateControls();
      const name = myName || pendingName;
      if (name) login(name);
    });
    s.on('upgrade', (transport) => {
      if (s === socket) showTransport(transport.name);
    });
    s.on('message', (data) => {
      if (s === socket) onFrame(data);
    });
    s.on('close', (reason) => {
      if (s !== socket) return;
      onClosed(reason);
    });
  }

  function onClosed(reason) {
    const wasLoggedIn = loggedIn;
    connected = false;
    loggedIn = false;
    socket = null;
    showTransport(null);
    clearAllTyping();
    stopTyping(false);
    if (wasLoggedIn) notice('Connection lost (' + reason + '). Reconnecting…');
    updateControls();
    scheduleReconnect();
  }

  function scheduleReconnect() {
    /* 0.5 s, 1 s, 2 s, 4 s, 8 s, 10 s, 10 s…, each ±25 % so clients spread out. */
    const base = Math.min(BACKOFF_FIRST_MS * Math.pow(2, attempt), BACKOFF_MAX_MS);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    const due = Date.now() + delay;
    attempt++;
    const tick = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setStatus('reconnecting', 'Offline — retrying in ' + left + ' s');
    };
    tick();
    clearInterval(countdownTimer);
    countdownTimer = setInterval(tick, 1000);
    reconnectTimer = setTimeout(connect, delay);
  }

  /* A network change is a good moment to try at once. */
  window.addEventListener('online', () => {
    if (!socket && reconnectTimer) {
      attempt = 0;
      connect();
    }
  });

  function send(frame) {
    if (!socket || !connected) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /* Logging in */

  function login(name) {
    pendingName = name;
    send({ type: 'login', name: name });
  }

  ui.loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.name.value.trim();
    if ([...name].length < 1 || [...name].length > 32) {
      showLoginError('A name is 1 to 32 characters.');
      return;
    }
    showLoginError(null);
    myName = null;
    login(name);
  });

  function showLoginError(text) {
    ui.loginError.hidden = !text;
    ui.loginError.textContent = text || '';
  }

  function showChat(show) {
    ui.loginView.hidden = show;
    ui.chatView.hidden = !show;
    ui.count.hidden = !show;
  }

  function updateControls() {
    ui.loginButton.disabled = !connected;
    ui.sendButton.disabled = !(connected && loggedIn);
  }

  /* Frames from the server */

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame !== 'object') return;

    switch (frame.type) {
      case 'welcome': onWelcome(frame); break;
      case 'joined':
        addUser(frame.name);
        setCount(frame.count);
        notice(frame.name + ' joined · ' + plural(frame.count));
        break;
      case 'left':
        removeUser(frame.name);
        setCount(frame.count);
        clearTyping(frame.name);
        notice(frame.name + ' left · ' + plural(frame.count));
        break;
      case 'message':
        clearTyping(frame.name);
        addMessage(frame);
        break;
      case 'typing': setTyping(frame.name); break;
      case 'stop-typing': clearTyping(frame.name); break;
      case 'error': onError(frame); break;
      default: break;
    }
  }

  function onWelcome(frame) {
    const again = myName !== null;
    myName = frame.name;
    pendingName = null;
    loggedIn = true;
    users = Array.isArray(frame.users) ? frame.users.slice() : [];
    renderUsers();
    setCount(frame.count);
    showChat(true);
    showLoginError(null);
    updateControls();
    for (const entry of frame.history || []) addMessage(entry);
    notice((again ? 'Back in as ' : 'Welcome, ') + frame.name + ' · ' + plural(frame.count));
    ui.message.focus();
  }

  function onError(frame) {
    const message = String(frame.message || frame.code);
    if (!loggedIn && pendingName !== null) {
      if (frame.code === 'name-taken' && myName !== null) {
        /* Re-login after a reconnect: our previous session may not have
         * timed out on the server yet. Try again shortly. */
        setTimeout(() => { if (connected && !loggedIn) login(myName); }, NAME_TAKEN_RETRY_MS);
        return;
      }
      if (frame.code === 'name-taken' || frame.code === 'bad-name' || frame.code === 'bad-message') {
        pendingName = null;
        myName = null;
        showChat(false);
        showLoginError(message);
        ui.name.focus();
        return;
      }
    }
    showChatError(message);
  }

  function showChatError(text) {
    ui.chatError.textContent = text;
    ui.chatError.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { ui.chatError.hidden = true; }, 5000);
  }

  /* Rendering: textContent only */

  function plural(count) {
    return count + (count === 1 ? ' person' : ' people') + ' online';
  }

  function setCount(count) {
    ui.count.textContent = plural(count);
    ui.usersCount.textContent = '(' + count + ')';
  }

  function addUser(name) {
    if (!users.includes(name)) users.push(name);
    renderUsers();
  }

  function removeUser(name) {
    users = users.filter((u) => u !== name);
    renderUsers();
  }

  function renderUsers() {
    const items = users.map((name) => {
      const li = document.createElement('li');
      const span = document.createElement('span');
      span.className = 'name';
      span.textContent = name;
      li.title = name;
      li.append(span);
      if (name === myName) li.classList.add('me');
      return li;
    });
    ui.users.replaceChildren(...items);
  }

  function nearBottom() {
    const m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function append(li) {
    const stick = nearBottom();
    ui.messages.appendChild(li);
    if (stick) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function addMessage(entry) {
    const key = entry.time + '\u0000' + entry.name + '\u0000' + entry.text;
    if (seen.has(key)) return;
    seen.add(key);

    const li = document.createElement('li');
    li.className = 'message' + (entry.name === myName ? ' mine' : '');
    const meta = document.createElement('div');
    meta.className = 'meta';
    const author = document.createElement('span');
    author.className = 'author';
    author.textContent = entry.name;
    const time = document.createElement('time');
    const date = new Date(entry.time);
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(author, time);
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = entry.text;
    li.append(meta, text);
    append(li);
  }

  function notice(text) {
    const li = document.createElement('li');
    li.className = 'notice';
    li.textContent = text;
    append(li);
  }

  /* Typing: ours */

  function stopTyping(notify) {
    clearTimeout(typingIdleTimer);
    typingIdleTimer = null;
    if (typingSent && notify) send({ type: 'stop-typing' });
    typingSent = false;
  }

  ui.message.addEventListener('input', () => {
    if (!loggedIn) return;
    if (ui.message.value === '') {
      stopTyping(true);
      return;
    }
    if (!typingSent) typingSent = send({ type: 'typing' });
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
  });

  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.message.value;
    if (!loggedIn || text.trim() === '') return;
    const frame = { type: 'message', text: text };
    if ([...JSON.stringify(frame)].length > MAX_FRAME_CHARS) {
      showChatError('That message is too long.');
      return;
    }
    if (send(frame)) {
      ui.message.value = '';
      stopTyping(true);
    }
  });

  /* Typing: theirs */

  function renderTyping() {
    const names = [...typingTimers.keys()];
    let text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length === 2) text = names[0] + ' and ' + names[1] + ' are typing…';
    else if (names.length > 2) text = 'Several people are typing…';
    ui.typing.textContent = text;
  }

  function setTyping(name) {
    clearTimeout(typingTimers.get(name));
    typingTimers.set(name, setTimeout(() => clearTyping(name), TYPING_EXPIRE_MS));
    renderTyping();
  }

  function clearTyping(name) {
    if (!typingTimers.has(name)) return;
    clearTimeout(typingTimers.get(name));
    typingTimers.delete(name);
    renderTyping();
  }

  function clearAllTyping() {
    for (const timer of typingTimers.values()) clearTimeout(timer);
    typingTimers.clear();
    renderTyping();
  }

  updateControls();
  connect();
})();
