/* The grid worker's app: tasks, a ticket, check-in, photos, reply, patrol reports, the queue.
 *
 * Every tap that changes something becomes a queue item (with its UUID) written to IndexedDB
 * first; only then does the screen say "saved". Screens draw from the copy on the phone at
 * once and refresh from the server behind it, so a slow network never blocks the worker.
 */
(function () {
  'use strict';
  var S = window.YihaoStore, Q = window.YihaoQueue, P = window.YihaoPhoto, M = window.YihaoMap;
  var I = window.YihaoI18n, t = I.t;
  var API = window.YIHAO.api;
  var OPEN = 'accepted,assigned,in_progress,on_site';
  var GRIDS_MAX_AGE_MS = 24 * 3600 * 1000;
  var view = document.getElementById('view');
  var state = {
    user: null, needLogin: false, online: navigator.onLine, stats: {length: 0, attention: 0, items: []},
    position: null, reg: null, lastReported: '', drawn: '',
  };

  /* ------------------------------------------------------------------ small helpers */

  function h(value) {
    return String(value == null ? '' : value).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }

  var timeFormat = new Intl.DateTimeFormat(I.locale, {timeZone: 'Asia/Shanghai', month: '2-digit',
    day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false});

  function fmtTime(iso) { return iso ? timeFormat.format(new Date(iso)) : '—'; }

  function duration(ms) {
    var min = Math.max(1, Math.round(Math.abs(ms) / 60000));
    if (min < 60) return t('time.minutes', {n: min});
    var hours = Math.floor(min / 60);
    if (hours < 48) return t('time.hours', {n: hours});
    return t('time.days', {n: Math.floor(hours / 24)});
  }

  function toast(message, kind) {
    var el = document.getElementById('toast');
    el.textContent = message;
    el.className = 'toast ' + (kind || '');
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { el.hidden = true; }, kind === 'bad' ? 8000 : 4000);
  }

  function banner(message, kind) {
    var el = document.getElementById('banner');
    if (!message) { el.hidden = true; return; }
    el.innerHTML = message;
    el.className = 'banner ' + (kind || '');
    el.hidden = false;
  }

  async function api(path, opts) {
    opts = opts || {};
    var headers = Object.assign({'Accept': 'application/json'}, opts.headers || {});
    var resp = await fetch(API + path, {method: opts.method || 'GET', headers: headers,
      body: opts.body, credentials: 'same-origin', cache: 'no-store'});
    var data = null;
    if ((resp.headers.get('Content-Type') || '').indexOf('application/json') === 0) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    if (data === null && resp.ok) throw new Error('not our server');  // a portal's page
    setOnline(true);
    return {status: resp.status, data: data};
  }

  /* The browser's "offline" is certain, its "online" is not (a captive portal, a dead cell):
   * so we go online only on a reply from our server, and never while the browser says
   * offline — else "saved, sending" would be shown to a worker whose phone is offline. */
  function setOnline(online) {
    if (online && navigator.onLine === false) online = false;
    if (state.online !== online) { state.online = online; drawNet(); }
  }

  async function cached(key) { var v = await S.get('cache', key); return v ? v.data : null; }
  function keep(key, data) { return S.put('cache', {at: Date.now(), data: data}, key); }

  function myPosition(options) {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error(t('gps.unsupported'))); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        state.position = {lng: pos.coords.longitude, lat: pos.coords.latitude,
                          accuracy: pos.coords.accuracy, at: pos.timestamp || Date.now()};
        resolve(state.position);
      }, function (err) {
        reject(new Error(err.code === 1 ? t('gps.denied') : t('gps.failed')));
      }, Object.assign({enableHighAccuracy: true, timeout: 20000, maximumAge: 0}, options || {}));
    });
  }

  /* The ticket as it will be once this phone's queued actions arrive. */
  function pendingFor(number) {
    return state.stats.items.filter(function (i) { return i.group === number; });
  }

  function effectiveStatus(ticket) {
    var status = ticket.status;
    var refused = false;  // nothing from a refused item on is assumed to have happened
    pendingFor(ticket.number).forEach(function (item) {
      if (refused || item.state === 'attention') { refused = true; return; }
      if (item.kind === 'sign') status = 'in_progress';
      else if (item.kind === 'check-in') status = 'on_site';
      else if (item.kind === 'reply') status = 'replied';
      else if (item.kind === 'return') status = 'returned';
    });
    return status;
  }

  /* Which deadline matters now: signing while unsigned, else handling. */
  function deadline(ticket, status) {
    var unsigned = status === 'accepted' || status === 'assigned';
    var due = unsigned && ticket.response_due ? ticket.response_due : ticket.handling_due;
    if (!due || status === 'replied' || status === 'closed' || status === 'returned') return null;
    var left = new Date(due).getTime() - Date.now();
    var serverState = unsigned ? ticket.response_state : ticket.handling_state;
    var start = ticket.accepted_at ? new Date(ticket.accepted_at).getTime() : null;
    var soon = serverState === 'due_soon'
      || (start && left < 0.2 * (new Date(due).getTime() - start));
    var cls = left < 0 ? 'overdue' : (soon ? 'due-soon' : 'ok');
    var label = unsigned ? t('due.sign') : t('due.handle');
    var text = left < 0 ? t('due.overdue', {d: duration(left)}) : t('due.left', {d: duration(left)});
    return {due: due, left: left, cls: cls, label: label, text: text};
  }

  function dueHtml(d) {
    if (!d) return '';
    var mark = d.cls === 'overdue' ? t('due.mark_overdue') : d.cls === 'due-soon' ? t('due.mark_soon') : '';
    return '<p class="due ' + d.cls + '">' + (mark ? '<b class="mark">' + h(mark) + '</b> ' : '') +
      h(d.label) + ' ' + h(fmtTime(d.due)) + ' · ' + h(d.text) + '</p>';
  }

  function statusChip(status) {
    return '<span class="chip status-' + h(status) + '">' + h(t('status.' + status)) + '</span>';
  }

  /* ------------------------------------------------------------------ start-up */

  async function boot() {
    I.apply(document);
    registerServiceWorker();
    wire();
    state.user = (await S.get('kv', 'user')) || null;
    S.put('kv', window.YIHAO.version, 'version');  // the service worker reports it too
    await refreshStats();
    route();
    checkSession();
    setInterval(tick, 15000);
  }

  async function checkSession() {
    try {
      var r = await api('/me');
      if (r.status === 200) {
        var changed = !state.user || state.user.username !== r.data.user.username;
        await S.put('kv', r.data.user, 'user');
        await S.put('kv', r.data.csrf_token, 'csrf');
        state.user = r.data.user;
        state.needLogin = false;
        if (changed) route();
        afterLogin();
      } else if (r.status === 401) {
        state.needLogin = true;
        route();
      }
    } catch (e) {
      setOnline(false);  // offline start: the cached user and data carry on
    }
  }

  function afterLogin() {
    banner('');
    kick();
    askPersistence(false);
    if (window.YihaoPush && window.YihaoPush.start) { try { window.YihaoPush.start(); } catch (e) { /* optional */ } }
    if (window.YihaoLive && window.YihaoLive.start) {
      try { state.live = window.YihaoLive.start(onNotice); } catch (e) { /* optional */ }
    }
  }

  /* A notice while the app is open (new assignment, urge, …): say it, refresh what is shown. */
  function onNotice(notice) {
    toast((notice && (notice.title || notice.body)) || t('notice.new'));
    var r = currentRoute();
    var typing = document.activeElement && view.contains(document.activeElement)
      && /^(TEXTAREA|INPUT|SELECT)$/.test(document.activeElement.tagName);
    if (!typing && (r.name === 'tasks' || r.name === 'ticket')) route();
  }

  function pushLine() {
    var push = window.YihaoPush;
    if (!push) return '';
    var st = push.state || 'idle';
    var label = I.has('push.' + st) ? t('push.' + st) : st;
    return '<p class="note ' + (st === 'subscribed' ? 'good' : 'warn') + '">' + h(label) + '</p>' +
      (st === 'prompt' || st === 'idle' || st === 'error'
        ? '<button class="big" data-action="push">' + h(t('push.enable')) + '</button>' : '');
  }

  function registerServiceWorker() {
    if (!('serviceWorker' in navigator)) return;
    navigator.serviceWorker.register(window.YIHAO.sw, {scope: window.YIHAO.scope})
      .then(function (reg) { state.reg = reg; })
      .catch(function () { /* the app still works online without it */ });
  }

  function wire() {
    window.addEventListener('hashchange', route);
    window.addEventListener('online', function () { setOnline(true); kick(true); });
    window.addEventListener('offline', function () { setOnline(false); });
    window.addEventListener('yihao:push-state', function () {
      if (currentRoute().name === 'me') route();
    });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') { kick(true); }
    });
    Q.onChange(function (message) {
      refreshStats().then(function () {
        if (message && message.type === 'sent') onSent(message);
        if (message && message.type === 'attention') {
          toast(t('queue.needs_attention_toast'), 'bad');
        }
        var r = currentRoute();
        var typing = document.activeElement && view.contains(document.activeElement)
          && /^(TEXTAREA|INPUT|SELECT)$/.test(document.activeElement.tagName);
        if (typing || !message || message.type === 'changed' && r.name !== 'queue') return;
        if (r.name === 'queue' || r.name === 'me' || r.name === 'ticket' || r.name === 'tasks') route();
      });
    });
    document.getElementById('net').addEventListener('click', function () { location.hash = '#/queue'; });
    document.getElementById('toast').addEventListener('click', function () { this.hidden = true; });
    view.addEventListener('click', onClick);
    view.addEventListener('submit', onSubmit);
    view.addEventListener('input', onInput);
    view.addEventListener('change', onChangeEvent);
  }

  function onSent(message) {
    var item = message.item, data = message.data || {};
    setOnline(true);
    if (item.kind === 'accept' && data.number) toast(t('report.sent', {number: data.number}), 'good');
    else if (item.kind === 'reply') toast(t('reply.sent'), 'good');
    else if (item.kind === 'check-in') {
      var warning = findWarning(data);
      if (warning) banner(h(t('checkin.warning')) + ' ' + h(warning), 'warn');
      else toast(t('checkin.sent'), 'good');
    } else if (item.kind === 'sign') toast(t('sign.sent'), 'good');
  }

  function findWarning(data) {
    if (!data) return '';
    var ev = data.event && data.event.data;
    if (ev && ev.verdict === 'warning' && ev.messages && ev.messages.length) return ev.messages.join('；');
    var w = data.warning || data.warnings || (data.check_in && data.check_in.warning) ||
      (data.event && data.event.data && (data.event.data.warning || data.event.data.warnings));
    if (Array.isArray(w)) w = w.map(function (x) { return x.message || x; }).join('；');
    if (w && typeof w === 'object') w = w.message || JSON.stringify(w);
    return w || '';
  }

  async function refreshStats() {
    state.stats = await Q.stats();
    drawNet();
    return state.stats;
  }

  function drawNet() {
    var net = document.getElementById('net');
    var s = state.stats;
    var parts = [state.online ? t('net.online') : t('net.offline')];
    if (s.length) parts.push(t('net.pending', {n: s.length}));
    net.textContent = parts.join(' · ');
    net.className = 'net ' + (state.online ? 'on' : 'off') + (s.attention ? ' attention' : '');
    var count = document.getElementById('qcount');
    count.hidden = !s.length;
    count.textContent = s.attention ? s.attention + '!' : s.length;
    count.className = 'count' + (s.attention ? ' bad' : '');
  }

  /* Send what is due: on start, on coming online or to the foreground, after each tap, and
   * every 15 s while something waits (Background Sync is a bonus where it exists). */
  function kick(now) {
    if (!state.user) return Promise.resolve();
    return Q.flush({now: !!now}).then(function (result) {
      if (result && result.auth) {
        state.needLogin = true;
        banner(h(t('login.expired')) + ' <a href="#/login">' + h(t('login.again')) + '</a>', 'warn');
      }
      if (result && result.offline) setOnline(false);
      else if (result && (result.sent || result.attention)) setOnline(true);  // the server replied
      return refreshStats();
    }).then(function (s) {
      var summary = s.length + '/' + s.attention;
      var force = summary !== state.lastReported;
      return Q.reportDevice(force).then(function (r) { if (r) state.lastReported = summary; });
    }).catch(function () { /* offline: the next tick tries again */ });
  }

  function tick() {
    if (document.visibilityState !== 'visible' || !state.user) return;
    var s = state.stats;
    if (s.length && s.nextAt !== null && s.nextAt <= Date.now()) kick();
    else if (!s.length) Q.reportDevice(false).catch(function () {});
  }

  function requestBackgroundSync() {
    if (state.reg && state.reg.sync && state.reg.sync.register) {
      state.reg.sync.register('yihao-queue').catch(function () { /* not granted */ });
    }
  }

  async function askPersistence(userAsked) {
    if (!navigator.storage || !navigator.storage.persist) return null;
    var persisted = await navigator.storage.persisted();
    if (!persisted) {
      try { persisted = await navigator.storage.persist(); } catch (e) { persisted = false; }
    }
    await S.put('kv', persisted, 'persisted');
    if (userAsked) toast(persisted ? t('storage.granted') : t('storage.refused'), persisted ? 'good' : 'bad');
    return persisted;
  }

  /* ------------------------------------------------------------------ routing */

  function currentRoute() {
    var hash = location.hash.replace(/^#\/?/, '');
    var parts = hash.split('/').map(decodeURIComponent);
    if (!hash) return {name: 'tasks'};
    if (parts[0] === 't' && parts[1] && parts[2] === 'reply') return {name: 'reply', number: parts[1]};
    if (parts[0] === 't' && parts[1]) return {name: 'ticket', number: parts[1]};
    if (['report', 'queue', 'me', 'login'].indexOf(parts[0]) >= 0) return {name: parts[0]};
    return {name: 'tasks'};
  }

  var routeToken = 0;
  function route() {
    var r = currentRoute();
    var token = ++routeToken;
    var loggedIn = state.user && !state.needLogin;
    document.getElementById('tabs').hidden = !state.user;
    document.querySelectorAll('.tabs a').forEach(function (a) {
      var on = a.dataset.tab === r.name || (a.dataset.tab === 'tasks' && (r.name === 'ticket' || r.name === 'reply'));
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    if (!state.user || r.name === 'login' || (state.needLogin && !state.stats.length && r.name !== 'queue')) {
      return drawLogin();
    }
    var screens = {tasks: drawTasks, ticket: drawTicket, reply: drawReply, report: drawReport,
                   queue: drawQueue, me: drawMe};
    return screens[r.name](r, function () { return token === routeToken; }, loggedIn);
  }

  function paint(html) {
    view.innerHTML = html;
  }

  /* ------------------------------------------------------------------ login */

  async function drawLogin() {
    // Already showing: never repaint it under the worker's fingers (it would wipe the fields).
    if (view.querySelector('form[data-form="login"]')) return;
    var pending = state.stats.length;
    paint('<section class="card login"><h1>' + h(t('login.title')) + '</h1>' +
      (pending ? '<p class="note warn">' + h(t('login.pending', {n: pending})) + '</p>' : '') +
      '<form data-form="login" autocomplete="on">' +
      '<label>' + h(t('login.username')) + '<input name="username" autocomplete="username" required autocapitalize="none" value="' +
      h(state.user ? state.user.username : '') + '"></label>' +
      '<label>' + h(t('login.password')) + '<input name="password" type="password" autocomplete="current-password" required></label>' +
      '<p class="error" role="alert" hidden></p>' +
      '<button class="primary big" type="submit">' + h(t('login.submit')) + '</button></form></section>');
  }

  async function submitLogin(form) {
    var err = form.querySelector('.error');
    err.hidden = true;
    try {
      var r = await api('/session', {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({username: form.username.value.trim(), password: form.password.value,
                              remember: true})});
      if (r.status !== 200) {
        err.textContent = r.data && r.data.code === 'login_failed' ? t('login.failed') : t('login.error');
        err.hidden = false;
        return;
      }
      await S.put('kv', r.data.user, 'user');
      await S.put('kv', r.data.csrf_token, 'csrf');
      state.user = r.data.user;
      state.needLogin = false;
      location.hash = '#/';
      route();
      afterLogin();
    } catch (e) {
      err.textContent = t('login.offline');
      err.hidden = false;
    }
  }

  /* ------------------------------------------------------------------ tasks */

  async function drawTasks(r, current) {
    var list = await cached('list');
    if (!current()) return;
    if (list) paintTasks(list.items, list.at);
    else paint('<p class="loading">' + h(t('app.loading')) + '</p>');
    try {
      var items = [], cursor = null;
      for (var page = 0; page < 10; page++) {
        var res = await api('/tickets?assignee=me&status=' + OPEN + '&limit=100' +
                            (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
        if (res.status === 401) { state.needLogin = true; return route(); }
        if (res.status !== 200) throw new Error(res.data && res.data.message);
        items = items.concat(res.data.items);
        cursor = res.data.next_cursor;
        if (!cursor) break;
      }
      var fresh = {items: items, at: new Date().toISOString()};
      await keep('list', fresh);
      items.forEach(function (ticket) { warmTicket(ticket.number); });
      loadGrids();  // the maps of the grids, for the ticket screens offline
      if (current()) paintTasks(fresh.items, fresh.at);
    } catch (e) {
      if (e instanceof TypeError) setOnline(false);  // a network error, not a server one
      if (current() && !list) paintTasks([], null);
    }
  }

  /* Keep every open ticket's details on the phone, so each opens offline too. One fetch
   * per ticket at a time: the list is drawn from the cache and again from the network, and
   * two copies fetched side by side cost the worker's data twice over. */
  var warming = {};
  function warmTicket(number) {
    if (!warming[number]) {
      warming[number] = fetchDetails(number).finally(function () { delete warming[number]; });
    }
    return warming[number];
  }

  async function fetchDetails(number) {
    var have = await S.get('cache', 'ticket:' + number);
    if (have && Date.now() - have.at < 10 * 60 * 1000) return;
    try {
      var res = await api('/tickets/' + encodeURIComponent(number));
      if (res.status === 200) await keep('ticket:' + number, res.data);
      var ev = await api('/tickets/' + encodeURIComponent(number) + '/events');
      if (ev.status === 200) await keep('events:' + number, ev.data.items);
    } catch (e) { /* offline */ }
  }

  function paintTasks(items, at) {
    var rows = items.map(function (ticket) {
      var status = effectiveStatus(ticket);
      return {ticket: ticket, status: status, d: deadline(ticket, status)};
    }).filter(function (row) { return row.status !== 'returned'; });
    rows.sort(function (a, b) {
      var da = a.d ? new Date(a.d.due).getTime() : Infinity, db = b.d ? new Date(b.d.due).getTime() : Infinity;
      return da - db;
    });
    var overdue = rows.filter(function (x) { return x.d && x.d.cls === 'overdue'; }).length;
    var soon = rows.filter(function (x) { return x.d && x.d.cls === 'due-soon'; }).length;
    var html = '<h1 class="screen-title">' + h(t('tasks.title')) + '</h1>' +
      '<p class="summary">' + h(t('tasks.summary', {n: rows.length})) +
      (overdue ? ' · <b class="overdue">' + h(t('tasks.overdue', {n: overdue})) + '</b>' : '') +
      (soon ? ' · <b class="due-soon">' + h(t('tasks.soon', {n: soon})) + '</b>' : '') + '</p>';
    if (!rows.length) html += '<p class="empty">' + h(t('tasks.empty')) + '</p>';
    html += '<ul class="tasks">' + rows.map(function (row) {
      var ticket = row.ticket, pending = pendingFor(ticket.number).length;
      return '<li><a class="task ' + (row.d ? row.d.cls : '') + ' urgency-' + h(ticket.urgency) +
        '" href="#/t/' + encodeURIComponent(ticket.number) + '">' + dueHtml(row.d) +
        '<h2>' + h(ticket.title) + '</h2>' +
        '<p class="where">' + h(ticket.address || ticket.grid_name || '') + '</p>' +
        '<p class="meta">' + statusChip(row.status) +
        (ticket.urgency !== 'normal' ? ' <span class="chip urgent">' + h(t('urgency.' + ticket.urgency)) + '</span>' : '') +
        (pending ? ' <span class="chip pending">' + h(t('ticket.pending', {n: pending})) + '</span>' : '') +
        ' <span class="number">' + h(ticket.number) + '</span></p></a></li>';
    }).join('') + '</ul>';
    if (at) html += '<p class="stamp">' + h(t('tasks.updated', {at: fmtTime(at)})) + '</p>';
    paint(html);
  }

  /* ------------------------------------------------------------------ one ticket */

  async function loadGrids() {
    var have = await S.get('cache', 'grids');
    if (have && Date.now() - have.at < GRIDS_MAX_AGE_MS) return have.data;
    try {
      var res = await api('/grids');
      if (res.status === 200) { await keep('grids', res.data); return res.data; }
    } catch (e) { /* offline: an older copy is still a map */ }
    return have ? have.data : null;
  }

  async function drawTicket(r, current) {
    var number = r.number;
    // The full copy, else the line of my task list (kept first, so there even when the
    // phone lost the network before the details were fetched): enough to find it and act.
    var ticket = await cached('ticket:' + number) || await fromList(number);
    var events = await cached('events:' + number);
    var grids = await loadGrids();
    if (!current()) return;
    if (ticket) paintTicket(ticket, events, grids);
    else paint('<p class="loading">' + h(t('app.loading')) + '</p>');
    if (!state.position || Date.now() - state.position.at > 60000) {
      myPosition({enableHighAccuracy: false, timeout: 10000, maximumAge: 60000}).then(function () {
        if (current() && ticket) paintTicket(ticket, events, grids);
      }).catch(function () { /* no position: no distance */ });
    }
    try {
      var res = await api('/tickets/' + encodeURIComponent(number));
      if (res.status === 404) {
        if (current()) paint('<section class="card"><p>' + h(t('ticket.gone')) + '</p><a class="button" href="#/">' + h(t('nav.back')) + '</a></section>');
        return;
      }
      if (res.status !== 200) return;
      ticket = res.data;
      await keep('ticket:' + number, ticket);
      var ev = await api('/tickets/' + encodeURIComponent(number) + '/events');
      if (ev.status === 200) { events = ev.data.items; await keep('events:' + number, events); }
      if (current()) paintTicket(ticket, events, grids);
    } catch (e) {
      if (e instanceof TypeError) setOnline(false);
      if (current() && !ticket) paint('<section class="card"><p>' + h(t('ticket.offline_missing')) + '</p></section>');
    }
  }

  async function fromList(number) {
    var list = await cached('list');
    return (list && list.items || []).filter(function (t) { return t.number === number; })[0] || null;
  }

  function paintTicket(ticket, events, grids) {
    var status = effectiveStatus(ticket);
    var d = deadline(ticket, status);
    var pending = pendingFor(ticket.number);
    var attention = pending.filter(function (i) { return i.state === 'attention'; });
    var n = encodeURIComponent(ticket.number);
    var actions = [];
    // A refused item blocks this ticket's line: the worker decides about it first (its card).
    var can = function (states) { return !attention.length && states.indexOf(status) >= 0; };
    if (can(['accepted', 'assigned'])) {
      actions.push('<button class="primary big" data-action="sign">' + h(t('action.sign')) + '</button>');
    }
    if (can(['in_progress'])) {
      actions.push('<button class="primary big" data-action="check-in">' + h(t('action.check_in')) + '</button>');
    }
    if (can(['in_progress', 'on_site'])) {
      actions.push('<a class="button big' + (status === 'on_site' ? ' primary' : '') + '" href="#/t/' + n + '/reply">' +
        h(t('action.reply')) + '</a>');
    }
    if (can(['on_site'])) {
      actions.push('<button class="big" data-action="check-in">' + h(t('action.check_in_again')) + '</button>');
    }
    if (can(['accepted', 'assigned', 'in_progress'])) {
      actions.push('<button class="big quiet" data-action="show-return">' + h(t('action.return')) + '</button>');
    }
    var html = '<article class="ticket" data-number="' + h(ticket.number) + '" data-version="' + h(ticket.version) + '">' +
      '<p class="crumbs"><a href="#/">‹ ' + h(t('nav.tasks')) + '</a></p>' +
      '<h1>' + h(ticket.title) + '</h1>' +
      '<p class="meta">' + statusChip(status) +
      (ticket.urgency !== 'normal' ? ' <span class="chip urgent">' + h(t('urgency.' + ticket.urgency)) + '</span>' : '') +
      ' <span class="number">' + h(ticket.number) + '</span></p>' + dueHtml(d);
    if (pending.length) {
      html += '<p class="note ' + (attention.length ? 'bad' : 'warn') + '"><a href="#/queue">' +
        h(attention.length ? t('ticket.attention', {n: attention.length}) : t('ticket.pending_long', {n: pending.length})) +
        '</a></p>';
    }
    attention.forEach(function (item) { html += attentionCard(item, true); });
    if (status === 'replied') html += '<p class="note good">' + h(t('ticket.replied_wait')) + '</p>';
    if (status === 'returned') html += '<p class="note">' + h(t('ticket.returned_wait')) + '</p>';
    html += '<div class="actions">' + actions.join('') + '</div>' +
      '<form class="card sheet" data-form="return" hidden><label>' + h(t('return.reason')) +
      '<textarea name="reason" rows="3" minlength="2" maxlength="500" required></textarea></label>' +
      '<button class="primary big" type="submit">' + h(t('return.submit')) + '</button></form>';
    var partial = !('content' in ticket);  // a line of the task list: the details never came
    html += '<section class="card"><h2>' + h(t('ticket.what')) + '</h2><p class="content">' + h(partial ? t('ticket.details_later') : (ticket.content || '')) + '</p>' +
      '<p class="small">' + h(t('type.' + ticket.type)) + ' · ' + h(t('source.' + ticket.source)) + ' · ' +
      h(t('ticket.accepted_at', {at: fmtTime(ticket.accepted_at)})) + '</p></section>';
    html += '<section class="card"><h2>' + h(t('ticket.where')) + '</h2><p>' + h(ticket.address || '—') + '</p>';
    if (ticket.location && state.position) {
      var metres = M.distance(state.position, ticket.location);
      var dir = t(M.directionKey(M.bearing(state.position, ticket.location)));
      html += '<p class="distance"><b>' + h(metres < 1000 ? t('map.metres', {n: Math.round(metres)}) : t('map.km', {n: (metres / 1000).toFixed(1)})) +
        '</b> · ' + h(t('map.direction', {dir: dir})) + '</p>';
    } else if (ticket.location) {
      html += '<p class="small">' + h(t('map.no_position')) + '</p>';
    }
    var feature = grids && ticket.grid ? (grids.features || []).filter(function (f) {
      return f.properties && f.properties.code === ticket.grid; })[0] : null;
    var map = M.svg(feature, ticket.location, state.position, {title: t('map.title'), north: t('map.north')});
    if (map) html += '<figure class="map">' + map + '<figcaption>' + h(ticket.grid_name || '') + ' · ' +
      h(t('map.legend')) + '</figcaption></figure>';
    html += '</section>';
    var rep = ticket.reporter || {};
    html += '<section class="card"><h2>' + h(t('ticket.who')) + '</h2><p>' +
      (partial ? h(t('ticket.details_later')) : rep.anonymous ? h(t('reporter.anonymous')) : h(rep.name || '—') + ' · ' + h(rep.phone || '—')) + '</p>' +
      (rep.masked ? '<p class="small">' + h(t('reporter.masked')) + '</p>' : '') + '</section>';
    if (events && events.length) {
      html += '<section class="card"><h2>' + h(t('ticket.history')) + '</h2><ol class="events">' +
        events.slice().reverse().map(function (e) {
          var extra = e.data && (e.data.reason || e.data.note || e.data.result) || '';
          return '<li><b>' + h(I.has('event.' + e.kind) ? t('event.' + e.kind) : e.kind) + '</b> <span class="small">' + h(fmtTime(e.at)) + ' · ' + h(e.actor || '') +
            '</span>' + (extra ? '<br><span class="small">' + h(extra) + '</span>' : '') + '</li>';
        }).join('') + '</ol></section>';
    }
    html += '</article>';
    var open = openReturnForm(ticket.number);
    paint(html);
    if (open) restoreReturnForm(open);
  }

  /* The screen is drawn again whenever fresher data, the GPS position or a notice arrives;
   * a return reason half typed must survive that (it once vanished under the worker's thumb). */
  function openReturnForm(number) {
    var el = ticketEl();
    var form = el && el.dataset.number === number && el.querySelector('form[data-form="return"]');
    if (!form || form.hidden) return null;
    var field = form.reason;
    return {reason: field.value, focused: document.activeElement === field,
            start: field.selectionStart, end: field.selectionEnd};
  }

  function restoreReturnForm(open) {
    var form = view.querySelector('form[data-form="return"]');
    if (!form) return;  // the action is no longer offered (the ticket moved on)
    form.hidden = false;
    form.reason.value = open.reason;
    if (open.focused) {
      form.reason.focus();
      try { form.reason.setSelectionRange(open.start, open.end); } catch (e) { /* not a text field */ }
    }
  }

  function ticketEl() { return view.querySelector('article.ticket'); }

  async function doSign() {
    var el = ticketEl();
    await save([{group: el.dataset.number, kind: 'sign', path: '/tickets/' + el.dataset.number + '/sign',
                 body: {base_version: Number(el.dataset.version)}, title: el.querySelector('h1').textContent}]);
  }

  async function doCheckIn(button) {
    var el = ticketEl();
    var number = el.dataset.number, title = el.querySelector('h1').textContent;
    button.disabled = true;
    button.textContent = t('gps.locating');
    var pos;
    try {
      pos = await myPosition();
    } catch (e) {
      button.disabled = false;
      button.textContent = t('action.check_in');
      toast(e.message, 'bad');
      return;
    }
    await save([{group: number, kind: 'check-in', path: '/tickets/' + number + '/check-in', title: title,
                 body: {lng: pos.lng, lat: pos.lat, crs: 'wgs84', accuracy_m: Math.round(pos.accuracy * 10) / 10,
                        fix_age_s: Math.max(0, Math.round((Date.now() - pos.at) / 100) / 10),
                        base_version: Number(el.dataset.version)}}]);
  }

  async function doReturn(form) {
    var el = ticketEl();
    var reason = form.reason.value.trim();
    if (reason.length < 2) { toast(t('return.too_short'), 'bad'); return; }
    await save([{group: el.dataset.number, kind: 'return', path: '/tickets/' + el.dataset.number + '/return',
                 body: {reason: reason, base_version: Number(el.dataset.version)},
                 title: el.querySelector('h1').textContent}]);
  }

  /* Write to the queue (durably), say so, then try to send. */
  async function save(items, opts) {
    var user = state.user && state.user.username;
    items.forEach(function (item) { item.user = user; });
    try {
      await Q.enqueue(items, opts);
    } catch (e) {
      toast(t('save.failed'), 'bad');
      throw e;
    }
    await refreshStats();
    toast(state.online ? t('save.saved_sending') : t('save.saved_offline'), 'good');
    requestBackgroundSync();
    route();
    kick();
  }

  /* ------------------------------------------------------------------ reply with photos */

  var draftTimer = null;
  function draftKey() { var r = currentRoute(); return r.name === 'report' ? 'report' : r.number; }

  async function readDraft(key, fallback) {
    return Object.assign({}, fallback, (await S.get('drafts', key)) || {});
  }

  /* Save what is on the form now (on every keystroke, debounced, and before the camera opens). */
  async function saveDraftNow() {
    clearTimeout(draftTimer);
    var form = view.querySelector('form[data-draft]');
    if (!form) return;
    var key = form.dataset.draft;
    var draft = (await S.get('drafts', key)) || {photos: []};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.type === 'file') return;
      if (field.type === 'radio') { if (field.checked) draft[field.name] = field.value; }
      else draft[field.name] = field.value;
    });
    await S.put('drafts', draft, key);
    var stamp = form.querySelector('.draft-state');
    if (stamp) stamp.textContent = t('draft.saved', {at: fmtTime(new Date().toISOString())});
  }

  function photoThumbs(ids) {
    return ids.map(function (id) {
      return '<li data-photo="' + h(id) + '"><img alt="" data-blob="' + h(id) + '">' +
        '<button type="button" class="remove" data-action="remove-photo" data-id="' + h(id) + '" aria-label="' +
        h(t('photo.remove')) + '">×</button></li>';
    }).join('');
  }

  async function fillThumbs() {
    var imgs = view.querySelectorAll('img[data-blob]');
    for (var i = 0; i < imgs.length; i++) {
      var rec = await S.get('blobs', imgs[i].dataset.blob);
      if (rec) {
        imgs[i].src = URL.createObjectURL(rec.blob);
        imgs[i].title = rec.width + '×' + rec.height + ' · ' + Math.round(rec.blob.size / 1024) + ' KB';
        imgs[i].dataset.size = rec.blob.size;
        imgs[i].dataset.width = rec.width;
        imgs[i].dataset.height = rec.height;
      }
    }
  }

  function photoButtons() {
    return '<div class="photo-buttons">' +
      '<label class="button big" data-action="before-camera">' + h(t('photo.take')) +
      '<input type="file" accept="image/*" capture="environment" name="camera" class="visually-hidden"></label>' +
      '<label class="button big" data-action="before-camera">' + h(t('photo.choose')) +
      '<input type="file" accept="image/*" multiple name="gallery" class="visually-hidden"></label></div>' +
      '<p class="small photo-status" aria-live="polite"></p>';
  }

  async function drawReply(r, current) {
    var ticket = await cached('ticket:' + r.number);
    var draft = await readDraft(r.number, {result: '', resolution: 'resolved', photos: []});
    if (!current()) return;
    var resolutions = ['resolved', 'partially', 'unresolved', 'explained'];
    paint('<p class="crumbs"><a href="#/t/' + encodeURIComponent(r.number) + '">‹ ' + h(t('nav.ticket')) + '</a></p>' +
      '<h1 class="screen-title">' + h(t('reply.title')) + '</h1>' +
      '<p class="small">' + h(ticket ? ticket.title : r.number) + '</p>' +
      '<form class="card" data-form="reply" data-draft="' + h(r.number) + '" data-version="' + h(ticket ? ticket.version : '') + '">' +
      '<fieldset class="choices"><legend>' + h(t('reply.resolution')) + '</legend>' +
      resolutions.map(function (v) {
        return '<label class="choice"><input type="radio" name="resolution" value="' + v + '"' +
          (draft.resolution === v ? ' checked' : '') + '> ' + h(t('resolution.' + v)) + '</label>';
      }).join('') + '</fieldset>' +
      '<label>' + h(t('reply.result')) + '<textarea name="result" rows="5" maxlength="5000" placeholder="' +
      h(t('reply.placeholder')) + '">' + h(draft.result) + '</textarea></label>' +
      '<h2>' + h(t('photo.title')) + '</h2><ul class="photos">' + photoThumbs(draft.photos) + '</ul>' + photoButtons() +
      '<p class="small draft-state"></p>' +
      '<button class="primary big" type="submit">' + h(t('reply.submit')) + '</button></form>');
    fillThumbs();
  }

  async function addPhotos(input) {
    var files = Array.prototype.slice.call(input.files || []);
    input.value = '';
    if (!files.length) return;
    var form = input.form, key = form.dataset.draft, status = form.querySelector('.photo-status');
    await saveDraftNow();
    for (var i = 0; i < files.length; i++) {
      status.textContent = t('photo.processing', {i: i + 1, n: files.length});
      try {
        var photo = await P.prepare(files[i]);
        var id = Q.uuid();
        var draft = (await S.get('drafts', key)) || {photos: []};
        draft.photos = (draft.photos || []).concat([id]);
        await S.run(['blobs', 'drafts'], 'readwrite', function (tx) {
          tx.objectStore('blobs').put({blob: photo.blob, name: photo.name, width: photo.width, height: photo.height,
                                       originalWidth: photo.originalWidth, originalHeight: photo.originalHeight,
                                       at: photo.takenAt, draft: key}, id);
          tx.objectStore('drafts').put(draft, key);
        });
        var list = form.querySelector('ul.photos');
        list.insertAdjacentHTML('beforeend', photoThumbs([id]));
      } catch (e) {
        toast(t('photo.failed'), 'bad');
      }
    }
    status.textContent = t('photo.ready', {n: form.querySelectorAll('ul.photos li').length});
    fillThumbs();
  }

  async function removePhoto(id) {
    var key = draftKey();
    var draft = (await S.get('drafts', key)) || {photos: []};
    draft.photos = (draft.photos || []).filter(function (p) { return p !== id; });
    await S.run(['blobs', 'drafts'], 'readwrite', function (tx) {
      tx.objectStore('blobs').delete(id);
      tx.objectStore('drafts').put(draft, key);
    });
    var li = view.querySelector('li[data-photo="' + id + '"]');
    if (li) li.remove();
  }

  async function submitReply(form) {
    await saveDraftNow();
    var number = form.dataset.draft;
    var draft = await readDraft(number, {photos: []});
    var result = (draft.result || '').trim();
    if (result.length < 2) { toast(t('reply.too_short'), 'bad'); form.result.focus(); return; }
    var title = (await cached('ticket:' + number) || {}).title || number;
    var items = (draft.photos || []).map(function (id) {
      return {id: id, group: number, kind: 'photo', path: '/tickets/' + number + '/photos', title: title};
    });
    var body = {result: result, resolution: draft.resolution || 'resolved', photo_refs: draft.photos || []};
    if (form.dataset.version) body.base_version = Number(form.dataset.version);
    items.push({group: number, kind: 'reply', path: '/tickets/' + number + '/reply', title: title, body: body});
    location.hash = '#/t/' + encodeURIComponent(number);
    await save(items, {draftKey: number});
  }

  /* ------------------------------------------------------------------ patrol report */

  async function drawReport(r, current) {
    var draft = await readDraft('report', {title: '', content: '', type: 'help', urgency: 'normal',
                                           address: '', photos: []});
    if (!current()) return;
    var types = ['help', 'complaint', 'report', 'suggestion', 'consultation'];
    paint('<h1 class="screen-title">' + h(t('report.title')) + '</h1>' +
      '<form class="card" data-form="report" data-draft="report">' +
      '<p class="position note">' + h(t('report.locating')) + '</p>' +
      '<button type="button" class="big" data-action="locate">' + h(t('report.locate_again')) + '</button>' +
      '<label>' + h(t('report.what')) + '<input name="title" maxlength="200" required value="' + h(draft.title) + '" placeholder="' +
      h(t('report.what_placeholder')) + '"></label>' +
      '<label>' + h(t('report.detail')) + '<textarea name="content" rows="4" maxlength="10000" placeholder="' +
      h(t('report.detail_placeholder')) + '">' + h(draft.content) + '</textarea></label>' +
      '<label>' + h(t('report.address')) + '<input name="address" maxlength="300" value="' + h(draft.address) + '"></label>' +
      '<label>' + h(t('report.type')) + '<select name="type">' + types.map(function (v) {
        return '<option value="' + v + '"' + (draft.type === v ? ' selected' : '') + '>' + h(t('type.' + v)) + '</option>';
      }).join('') + '</select></label>' +
      '<label>' + h(t('report.urgency')) + '<select name="urgency">' + ['normal', 'urgent', 'emergency'].map(function (v) {
        return '<option value="' + v + '"' + (draft.urgency === v ? ' selected' : '') + '>' + h(t('urgency.' + v)) + '</option>';
      }).join('') + '</select></label>' +
      '<h2>' + h(t('photo.title')) + '</h2><ul class="photos">' + photoThumbs(draft.photos || []) + '</ul>' + photoButtons() +
      '<p class="small draft-state"></p>' +
      '<button class="primary big" type="submit">' + h(t('report.submit')) + '</button></form>');
    fillThumbs();
    locateForReport();
  }

  async function locateForReport() {
    var el = view.querySelector('.position');
    if (!el) return;
    try {
      var pos = await myPosition({timeout: 20000, maximumAge: 30000});
      el.textContent = t('report.position', {acc: Math.round(pos.accuracy)});
      el.className = 'position note good';
    } catch (e) {
      el.textContent = e.message + ' ' + t('report.need_address');
      el.className = 'position note bad';
    }
  }

  async function submitReport(form) {
    await saveDraftNow();
    var draft = await readDraft('report', {photos: []});
    var title = (draft.title || '').trim(), content = (draft.content || '').trim() || title;
    var address = (draft.address || '').trim();
    if (!title) { toast(t('report.need_title'), 'bad'); form.title.focus(); return; }
    var pos = state.position && Date.now() - state.position.at < 10 * 60 * 1000 ? state.position : null;
    if (!pos && !address) { toast(t('report.need_address'), 'bad'); form.address.focus(); return; }
    var group = 'new:' + Q.uuid();
    var body = {source: 'patrol', type: draft.type || 'help', title: title, content: content,
                urgency: draft.urgency || 'normal', external_id: group.slice(4)};
    if (pos) body.location = {lng: pos.lng, lat: pos.lat, crs: 'wgs84'};
    if (address) body.address = address;
    var items = [{group: group, kind: 'accept', path: '/tickets', title: title, body: body}];
    (draft.photos || []).forEach(function (id) {
      items.push({id: id, group: group, kind: 'photo', path: '/tickets/{number}/photos', title: title});
    });
    location.hash = '#/queue';
    await save(items, {draftKey: 'report'});
  }

  /* ------------------------------------------------------------------ queue and attention */

  function errorText(error) {
    if (!error) return '';
    var known = error.code && I.has('error.' + error.code) ? t('error.' + error.code) : '';
    var server = error.message || '';
    return known ? known + (server && !/^[\x00-\x7f]*$/.test(server) ? '（' + server + '）' : '') : server || error.code;
  }

  function conflictText(error) {
    var cur = error && error.details && error.details.current;
    if (!cur) return '';
    return t('conflict.now', {status: cur.status_label || cur.status, who: cur.assignee_name || cur.unit_name || '—'});
  }

  function itemText(item) {
    var b = item.body || {};
    return b.result || b.reason || b.content || '';
  }

  function attentionCard(item, compact) {
    var e = item.lastError || {};
    var text = itemText(item);
    var html = '<div class="attention-card card" data-item="' + h(item.id) + '">' +
      '<p><b>' + h(t('kind.' + item.kind)) + '</b> · ' + h(item.title || item.group) + '</p>' +
      '<p class="bad">' + h(errorText(e)) + '</p>' +
      (conflictText(e) ? '<p>' + h(conflictText(e)) + '</p>' : '') +
      (text ? '<details' + (compact ? '' : ' open') + '><summary>' + h(t('attention.kept')) + '</summary><p class="kept">' + h(text) + '</p>' +
        '<button type="button" class="small-button" data-action="copy" data-id="' + h(item.id) + '">' + h(t('attention.copy')) + '</button></details>' : '');
    if (item.kind === 'check-in' && e.code === 'checkin_refused') {
      html += '<label>' + h(t('checkin.reason')) + '<textarea name="reason" rows="2" maxlength="2000"></textarea></label>' +
        '<button type="button" class="primary big" data-action="retry-reason" data-id="' + h(item.id) + '">' + h(t('checkin.retry_reason')) + '</button>';
    }
    html += '<div class="row"><button type="button" class="big" data-action="retry" data-id="' + h(item.id) + '">' + h(t('attention.retry')) + '</button>' +
      '<button type="button" class="big quiet danger" data-action="discard" data-id="' + h(item.id) + '">' + h(t('attention.discard')) + '</button></div></div>';
    return html;
  }

  async function drawQueue(r, current) {
    var s = await refreshStats();
    var persisted = await S.get('kv', 'persisted');
    var lastSync = await S.get('kv', 'lastSyncAt');
    if (!current()) return;
    var attention = s.items.filter(function (i) { return i.state === 'attention'; });
    var pending = s.items.filter(function (i) { return i.state !== 'attention'; });
    var html = '<h1 class="screen-title">' + h(t('queue.title')) + '</h1>' +
      '<p class="summary">' + h(s.length ? t('queue.summary', {n: s.length}) : t('queue.empty')) +
      (lastSync ? ' · ' + h(t('queue.last_sync', {at: fmtTime(lastSync)})) : '') + '</p>' +
      '<p class="note ' + (persisted ? 'good' : 'warn') + '">' + h(persisted ? t('storage.persisted') : t('storage.not_persisted')) + '</p>' +
      (state.needLogin ? '<p class="note bad"><a href="#/login">' + h(t('login.expired')) + ' ' + h(t('login.again')) + '</a></p>' : '') +
      '<button class="primary big" data-action="sync">' + h(t('queue.send_now')) + '</button>';
    if (attention.length) {
      html += '<h2 class="bad">' + h(t('queue.attention', {n: attention.length})) + '</h2>' +
        '<p class="small">' + h(t('queue.attention_help')) + '</p>' + attention.map(function (i) { return attentionCard(i); }).join('');
    }
    if (pending.length) {
      html += '<h2>' + h(t('queue.waiting', {n: pending.length})) + '</h2><ul class="queue">' + pending.map(function (i) {
        var e = i.lastError;
        var blocked = attention.some(function (a) { return a.group === i.group && a.seq < i.seq; });
        return '<li class="card"><p><b>' + h(t('kind.' + i.kind)) + '</b> · ' + h(i.title || i.group) + '</p>' +
          '<p class="small">' + h(t('queue.saved_at', {at: fmtTime(i.createdAt)})) +
          (i.attempts ? ' · ' + h(t('queue.attempts', {n: i.attempts})) : '') +
          (blocked ? ' · ' + h(t('queue.blocked')) : '') + '</p>' +
          (e ? '<p class="small warn">' + h(errorText(e) || t('error.network')) + '</p>' : '') + '</li>';
      }).join('') + '</ul>';
    }
    paint(html);
  }

  async function drawMe(r, current) {
    var s = await refreshStats();
    var persisted = await S.get('kv', 'persisted');
    var device = await Q.deviceId();
    if (!current()) return;
    var u = state.user || {};
    paint('<h1 class="screen-title">' + h(t('me.title')) + '</h1><section class="card">' +
      '<p><b>' + h(u.display_name) + '</b>（' + h(u.username) + '）</p><p>' + h(u.unit_name) + '</p></section>' +
      '<section class="card"><h2>' + h(t('me.storage')) + '</h2><p class="note ' + (persisted ? 'good' : 'warn') + '">' +
      h(persisted ? t('storage.persisted') : t('storage.not_persisted')) + '</p>' +
      (persisted ? '' : '<button class="big" data-action="persist">' + h(t('storage.ask')) + '</button>') +
      '<p class="small">' + h(t('me.device', {id: device.slice(0, 8), v: window.YIHAO.version})) + '</p>' +
      (window.isSecureContext && 'serviceWorker' in navigator ? '' : '<p class="note bad">' + h(t('me.insecure')) + '</p>') +
      '</section>' +
      (window.YihaoPush ? '<section class="card"><h2>' + h(t('push.title')) + '</h2>' + pushLine() + '</section>' : '') +
      '<section class="card"><h2>' + h(t('me.logout')) + '</h2>' +
      (s.length ? '<p class="note warn">' + h(t('me.logout_blocked', {n: s.length})) + '</p>' : '') +
      '<button class="big danger" data-action="logout"' + (s.length ? ' disabled aria-disabled="true"' : '') + '>' +
      h(t('me.logout')) + '</button></section>');
  }

  async function logout() {
    var s = await refreshStats();
    if (s.length) { toast(t('me.logout_blocked', {n: s.length}), 'bad'); return; }
    try {
      if (window.YihaoPush && window.YihaoPush.stop) await window.YihaoPush.stop();
    } catch (e) { /* the server forgets a dead subscription by itself */ }
    if (state.live && state.live.stop) state.live.stop();
    try {
      await fetch(API + '/session', {method: 'DELETE', credentials: 'same-origin'});
    } catch (e) {
      toast(t('me.logout_offline'), 'bad');
      return;
    }
    await S.run(['kv', 'cache', 'drafts', 'blobs'], 'readwrite', function (tx) {
      tx.objectStore('kv').delete('user');
      tx.objectStore('kv').delete('csrf');
      tx.objectStore('cache').clear();
      tx.objectStore('drafts').clear();
      tx.objectStore('blobs').clear();
    });
    if (navigator.serviceWorker && navigator.serviceWorker.controller) {
      navigator.serviceWorker.controller.postMessage({type: 'logout'});
    }
    state.user = null;
    location.hash = '#/login';
    route();
  }

  /* ------------------------------------------------------------------ events */

  function onClick(event) {
    var target = event.target.closest('[data-action]');
    if (!target) return;
    var action = target.dataset.action, id = target.dataset.id;
    if (action === 'before-camera') { saveDraftNow(); return; }  // the draft is on disk before the camera
    event.preventDefault();
    if (action === 'sign') doSign();
    else if (action === 'check-in') doCheckIn(target);
    else if (action === 'show-return') {
      var form = view.querySelector('form[data-form="return"]');
      form.hidden = !form.hidden;
      if (!form.hidden) form.reason.focus();
    } else if (action === 'remove-photo') removePhoto(id);
    else if (action === 'locate') locateForReport();
    else if (action === 'sync') { toast(t('queue.sending')); kick(true); }
    else if (action === 'retry') Q.retry(id).then(kick);
    else if (action === 'retry-reason') {
      var card = target.closest('.attention-card');
      var reason = card.querySelector('textarea[name="reason"]').value.trim();
      if (!reason) { toast(t('checkin.reason_needed'), 'bad'); return; }
      S.get('queue', id).then(function (item) {
        return Q.retry(id, {body: Object.assign({}, item.body, {reason: reason})});
      }).then(kick);
    } else if (action === 'discard') {
      if (window.confirm(t('attention.discard_confirm'))) Q.discard(id);
    } else if (action === 'copy') {
      S.get('queue', id).then(function (item) {
        var text = itemText(item);
        if (navigator.clipboard) navigator.clipboard.writeText(text).then(function () { toast(t('attention.copied'), 'good'); });
      });
    } else if (action === 'persist') askPersistence(true).then(route);
    else if (action === 'push') Promise.resolve(window.YihaoPush.enable()).then(route, route);
    else if (action === 'logout') logout();
  }

  function onSubmit(event) {
    var form = event.target;
    event.preventDefault();
    var kind = form.dataset.form;
    if (kind === 'login') submitLogin(form);
    else if (kind === 'return') doReturn(form);
    else if (kind === 'reply') submitReply(form);
    else if (kind === 'report') submitReport(form);
  }

  function onInput(event) {
    if (!event.target.form || !event.target.form.dataset.draft) return;
    clearTimeout(draftTimer);
    draftTimer = setTimeout(saveDraftNow, 250);
  }

  function onChangeEvent(event) {
    var el = event.target;
    if (el.type === 'file') addPhotos(el);
    else if (el.form && el.form.dataset.draft) saveDraftNow();
  }

  window.YihaoApp = {state: state, kick: kick, route: route};
  boot();
})();
