/* engineio-glib Socket.IO chat: the page's logic.
 *
 * Talks the event protocol of data/sio-chat/README.md over socket.io-client
 * (the global `io`, from socket.io.min.js). Every request (login, join,
 * leave, message) waits for the server's acknowledgement; a message of
 * ours shows "sending…" until the server acknowledges it, then
 * "delivered". User text is only ever put in the page with textContent,
 * never parsed as HTML.
 *
 * socket.io-client reconnects by itself; after a reconnection this page
 * logs in again with the same name and goes back to its room.
 *
 * `?transports=polling` or `?transports=websocket` (or both, comma
 * separated) restricts the transports, for tests. `?server=URL` talks to a
 * Socket.IO server at another origin (the Python server, whose page is
 * served separately); socketio-chat's Content-Security-Policy forbids it.
 */
'use strict';

(function () {
  const MAX_TEXT_CHARS = 1000;
  const ACK_TIMEOUT_MS = 10000;
  const TYPING_IDLE_MS = 2000;      /* send stop-typing after this long without a key */
  const TYPING_EXPIRE_MS = 6000;    /* forget someone's typing if no stop-typing came */
  const NAME_TAKEN_RETRY_MS = 3000; /* after a reconnect, our old session may linger */

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    transport: $('transport'),
    roomName: $('room-name'),
    loginView: $('login-view'),
    loginForm: $('login-form'),
    name: $('name'),
    loginButton: $('login-button'),
    loginError: $('login-error'),
    chatView: $('chat-view'),
    rooms: $('rooms'),
    roomForm: $('room-form'),
    roomInput: $('room-input'),
    joinButton: $('join-button'),
    leaveButton: $('leave-button'),
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
  const server = /^https?:\/\/[^/?#]+\/?$/.test(params.get('server') || '') ? params.get('server') : undefined;

  let socket = null;
  let myName = null;            /* the name we are (or were) logged in with */
  let loggedIn = false;
  let currentRoom = null;
  let users = [];
  const typingTimers = new Map();   /* name -> timeout id */
  let typingSent = false;
  let typingIdleTimer = null;
  let errorTimer = null;
  let seen = new Set();         /* room + id of the messages shown */

  /* Connection */

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
    if (typeof window.io !== 'function') {
      setStatus('offline', 'Client library missing');
      showLoginError('socket.io.min.js did not load: see socketio-chat --help (--client-bundle).');
      return;
    }
    setStatus('connecting', 'Connecting…');
    socket = window.io(server, { transports: transports });
    socket.on('connect', () => {
      setStatus('connected', 'Connected');
      const engine = socket.io.engine;
      showTransport(engine.transport.name);
      engine.on('upgrade', (transport) => showTransport(transport.name));
      updateControls();
      if (myName) login(myName, currentRoom);
    });
    socket.on('disconnect', (reason) => {
      const wasLoggedIn = loggedIn;
      loggedIn = false;
      showTransport(null);
      clearAllTyping();
      stopTyping(false);
      setStatus('reconnecting', 'Reconnecting…');
      if (wasLoggedIn) notice('Connection lost (' + reason + '). Reconnecting…');
      updateControls();
      if (reason === 'io server disconnect') socket.connect();
    });
    socket.on('connect_error', () => setStatus('reconnecting', 'Offline — retrying…'));
    socket.on('message', (m) => {
      if (!m || m.room !== currentRoom) return;
      clearTyping(m.name);
      addMessage(m, null);
    });
    /* A notice carries the room's members, or (from a cluster of
     * servers, where each knows only its own) just the name. */
    socket.on('joined', (p) => {
      if (!p || p.room !== currentRoom) return;
      setUsers(Array.isArray(p.users) ? p.users
               : users.includes(p.name) ? users : users.concat([p.name]).sort());
      notice(p.name + ' joined ' + p.room);
    });
    socket.on('left', (p) => {
      if (!p || p.room !== currentRoom) return;
      setUsers(Array.isArray(p.users) ? p.users : users.filter((name) => name !== p.name));
      clearTyping(p.name);
      notice(p.name + ' left ' + p.room);
    });
    socket.on('typing', (p) => { if (p && p.room === currentRoom) setTyping(p.name); });
    socket.on('stop-typing', (p) => { if (p && p.room === currentRoom) clearTyping(p.name); });
    socket.on('rooms', (list) => renderRooms(list));
    socket.on('error', (e) => showChatError(String((e && e.message) || 'Error')));
  }

  /* Requests: resolve with the server's answer, {ok:false} on a timeout. */
  function request(event, ...args) {
    return new Promise((resolve) => {
      if (!socket || !socket.connected) {
        resolve({ ok: false, error: 'offline', message: 'Not connected' });
        return;
      }
      socket.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err, answer) => {
        if (err || !answer || typeof answer !== 'object') {
          resolve({ ok: false, error: 'timeout', message: 'The server did not answer' });
        } else {
          resolve(answer);
        }
      });
    });
  }

  /* Logging in */

  async function login(name, room) {
    const answer = await request('login', name);
    if (!answer.ok) {
      if (answer.error === 'name-taken' && myName !== null) {
        /* Re-login after a reconnection: our previous session may not have
         * timed out on the server yet. Try again shortly. */
        setTimeout(() => { if (socket.connected && !loggedIn) login(myName, currentRoom); },
                   NAME_TAKEN_RETRY_MS);
        return;
      }
      myName = null;
      showChat(false);
      showLoginError(answer.message || answer.error);
      ui.name.focus();
      return;
    }
    const again = myName !== null;
    myName = answer.name;
    loggedIn = true;
    showChat(true);
    showLoginError(null);
    enterRoom(answer);
    notice((again ? 'Back in as ' : 'Welcome, ') + answer.name);
    if (room && room !== answer.room) await join(room);
    updateControls();
    ui.message.focus();
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
    login(name, null);
  });

  /* Rooms */

  async function join(room) {
    const answer = await request('join', room);
    if (!answer.ok) {
      showChatError(answer.message || answer.error);
      return false;
    }
    enterRoom(answer);
    return true;
  }

  async function leave() {
    const answer = await request('leave');
    if (!answer.ok) {
      showChatError(answer.message || answer.error);
      return;
    }
    enterRoom(answer);
  }

  /* A login or join answer: the room, its users, its history. */
  function enterRoom(answer) {
    const changed = answer.room !== currentRoom;
    currentRoom = answer.room;
    ui.roomName.hidden = false;
    ui.roomName.textContent = currentRoom;
    ui.leaveButton.hidden = currentRoom === '#general';
    clearAllTyping();
    stopTyping(true);
    if (changed) {
      ui.messages.replaceChildren();
      seen = new Set();
      notice('You are in ' + currentRoom);
    }
    setUsers(answer.users);
    for (const entry of answer.history || []) addMessage(entry, null);
    if (Array.isArray(answer.rooms)) renderRooms(answer.rooms);
  }

  ui.roomForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const room = ui.roomInput.value.trim();
    if (!room) return;
    if (await join(room)) ui.roomInput.value = '';
  });

  ui.leaveButton.addEventListener('click', () => leave());

  function renderRooms(list) {
    if (!Array.isArray(list)) return;
    const items = list.map((r) => {
      const li = document.createElement('li');
      li.dataset.room = r.name;
      if (r.name === currentRoom) li.classList.add('current');
      const button = document.createElement('button');
      button.type = 'button';
      const name = document.createElement('span');
      name.className = 'room';
      name.textContent = r.name;
      const count = document.createElement('span');
      count.className = 'room-count';
      count.textContent = String(r.count);
      button.append(name, count);
      button.addEventListener('click', () => { if (r.name !== currentRoom) join(r.name); });
      li.append(button);
      return li;
    });
    ui.rooms.replaceChildren(...items);
  }

  /* Messages */

  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = ui.message.value.trim();
    if (!text || !loggedIn) return;
    if ([...text].length > MAX_TEXT_CHARS) {
      showChatError('A message is at most ' + MAX_TEXT_CHARS + ' characters.');
      return;
    }
    ui.message.value = '';
    stopTyping(false);  /* the server's message clears it for the others */
    const li = addMessage({ room: currentRoom, name: myName, text: text, time: Date.now() }, 'sending');
    const room = currentRoom;
    request('message', text).then((answer) => {
      if (answer.ok) {
        seen.add(room + '\u0000' + answer.id);
        setDelivery(li, 'delivered', '✓ delivered');
      } else {
        setDelivery(li, 'failed', '✗ not delivered: ' + (answer.message || answer.error));
      }
    });
  });

  function setDelivery(li, state, text) {
    li.dataset.state = state;
    li.querySelector('.delivery').textContent = text;
  }

  /* Rendering: textContent only */

  function showLoginError(text) {
    ui.loginError.hidden = !text;
    ui.loginError.textContent = text || '';
  }

  function showChat(show) {
    ui.loginView.hidden = show;
    ui.chatView.hidden = !show;
  }

  function updateControls() {
    const connected = socket !== null && socket.connected;
    ui.loginButton.disabled = !connected;
    ui.sendButton.disabled = !(connected && loggedIn);
    ui.joinButton.disabled = !(connected && loggedIn);
  }

  function showChatError(text) {
    ui.chatError.textContent = text;
    ui.chatError.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { ui.chatError.hidden = true; }, 5000);
  }

  function setUsers(list) {
    users = Array.isArray(list) ? list.slice() : [];
    ui.usersCount.textContent = '(' + users.length + ')';
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

  /* @state: null for a message from the server, 'sending' for ours. */
  function addMessage(entry, state) {
    if (state === null) {
      const key = entry.room + '\u0000' + entry.id;
      if (seen.has(key)) return null;
      seen.add(key);
    }
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
    if (state !== null) {
      li.dataset.state = state;
      const delivery = document.createElement('span');
      delivery.className = 'delivery';
      delivery.textContent = 'sending…';
      meta.append(delivery);
    }
    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = entry.text;
    li.append(meta, text);
    append(li);
    return li;
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
    if (typingSent && notify && socket && socket.connected) socket.emit('stop-typing');
    typingSent = false;
  }

  ui.message.addEventListener('input', () => {
    if (!loggedIn) return;
    if (ui.message.value === '') {
      stopTyping(true);
      return;
    }
    if (!typingSent && socket.connected) {
      socket.emit('typing');
      typingSent = true;
    }
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
  });

  ui.message.addEventListener('blur', () => stopTyping(true));

  /* Typing: theirs */

  function setTyping(name) {
    if (name === myName) return;
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

  function renderTyping() {
    const names = [...typingTimers.keys()];
    let text = '';
    if (names.length === 1) text = names[0] + ' is typing…';
    else if (names.length === 2) text = names[0] + ' and ' + names[1] + ' are typing…';
    else if (names.length > 2) text = names.length + ' people are typing…';
    ui.typing.textContent = text;
  }

  updateControls();
  connect();
})();
