/* The offline queue: every action the worker taps, kept until our server has said yes.
 *
 * Rules (docs/pwa.md): an item leaves the queue only on a 2xx from our server that names the
 * item's UUID (the Idempotency-Key it is sent with, echoed back); a timeout, a network error,
 * a 5xx, a 408/425/429 and any answer that is not ours (a captive portal's 200-with-HTML) mean
 * "retry later, with backoff"; our own 4xx parks the item in the "needs attention" list for
 * the worker to decide; nothing ever expires by age. Items of one ticket go in tap order (the
 * first one of a ticket blocks the rest of that ticket, never the other tickets).
 *
 * Shared by the page and the service worker: a Web Lock makes sure only one of them drains
 * the queue at a time (and the server's idempotency makes a double send harmless anyway).
 */
(function (root) {
  'use strict';
  var S = root.YihaoStore;
  var API = '/api/v1';
  var LOCK = 'yihao-queue';
  var BASE_BACKOFF_MS = 5000;
  var MAX_BACKOFF_MS = 5 * 60 * 1000;
  var REPORT_EVERY_MS = 2 * 60 * 1000;
  var RETRY_STATUSES = [408, 425, 429];
  /* Our 4xx codes that say "a race, try again" rather than "this cannot be done". */
  var RETRY_CODES = ['concurrent_update', 'request_in_progress'];
  var channel = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel('yihao-queue') : null;
  var listeners = [];
  var running = null;

  function uuid() {
    if (root.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function announce(message) {
    listeners.forEach(function (fn) { try { fn(message); } catch (e) { /* a listener's bug */ } });
    if (channel) { try { channel.postMessage(message); } catch (e) { /* closed */ } }
  }

  function onChange(fn) { listeners.push(fn); }
  if (channel) channel.onmessage = function (e) { listeners.forEach(function (fn) { fn(e.data); }); };

  /* Write items (one ticket's check-in, photos, reply …) in one durable transaction.
   * Resolves only once they are on disk: that is when the screen may say "saved". */
  function enqueue(items, opts) {
    opts = opts || {};
    var now = new Date().toISOString();
    return S.run(['queue', 'kv', 'drafts'], 'readwrite', function (tx, out) {
      var kv = tx.objectStore('kv');
      kv.get('seq').onsuccess = function (e) {
        var seq = e.target.result || 0;
        var store = tx.objectStore('queue');
        out.value = items.map(function (item) {
          seq += 1;
          var full = {
            id: item.id || uuid(), seq: seq, group: item.group, kind: item.kind,
            method: item.method || 'POST', path: item.path, body: item.body || null,
            title: item.title || '', user: item.user || null, createdAt: now,
            attempts: 0, nextAt: 0, state: 'pending', lastError: null,
          };
          store.add(full);
          return full;
        });
        kv.put(seq, 'seq');
        if (opts.draftKey) tx.objectStore('drafts').delete(opts.draftKey);
      };
    }).then(function (saved) {
      announce({type: 'changed'});
      return saved;
    });
  }

  function backoff(attempts) {
    var ms = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * Math.pow(2, Math.max(0, attempts - 1)));
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }

  function update(item) { return S.put('queue', item); }

  function retryLater(item, error, opts) {
    opts = opts || {};
    if (!opts.free) item.attempts += 1;
    item.nextAt = opts.now ? 0 : Date.now() + (opts.afterMs || backoff(item.attempts));
    item.lastError = error;
    item.state = 'pending';
    return update(item);
  }

  function markAttention(item, error) {
    item.attempts += 1;
    item.state = 'attention';
    item.lastError = error;
    return update(item).then(function () { announce({type: 'attention', item: item}); });
  }

  async function csrf() { return (await S.get('kv', 'csrf')) || ''; }

  async function refreshCsrf() {
    var resp = await fetch(API + '/me', {credentials: 'same-origin', cache: 'no-store',
                                         headers: {'Accept': 'application/json'}});
    if (!resp.ok) return false;
    var data = await resp.json();
    if (!data.csrf_token) return false;
    await S.put('kv', data.csrf_token, 'csrf');
    return true;
  }

  async function buildRequest(item) {
    var path = item.path;
    if (path.indexOf('{number}') >= 0) {
      var number = await S.get('kv', 'created:' + item.group);
      if (!number) throw new Error('the report this belongs to is not on the server yet');
      path = path.replace('{number}', encodeURIComponent(number));
    }
    var headers = {'Idempotency-Key': item.id, 'Accept': 'application/json',
                   'X-CSRF-Token': await csrf()};
    var body;
    if (item.kind === 'photo') {
      var photo = await S.get('blobs', item.id);
      if (!photo) throw new Error('the photo is no longer on this phone');
      body = new FormData();
      body.append('file', photo.blob, photo.name || 'photo.jpg');
    } else {
      var payload = Object.assign({}, item.body || {});
      if (payload.photo_refs) {
        var ids = [];
        for (var i = 0; i < payload.photo_refs.length; i++) {
          var id = await S.get('kv', 'photo:' + payload.photo_refs[i]);
          if (id) ids.push(id);
        }
        delete payload.photo_refs;
        payload.photos = ids;
      }
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(payload);
    }
    return {url: API + path, method: item.method, headers: headers, body: body};
  }

  /* Remove the item (and its photo), remember what the server gave it, in one transaction. */
  function complete(item, data) {
    return S.run(['queue', 'blobs', 'kv', 'cache'], 'readwrite', function (tx) {
      tx.objectStore('queue').delete(item.id);
      var kv = tx.objectStore('kv');
      if (item.kind === 'photo') {
        tx.objectStore('blobs').delete(item.id);
        if (data && data.id) kv.put(data.id, 'photo:' + item.id);
      }
      if (item.kind === 'accept' && data && data.number) kv.put(data.number, 'created:' + item.group);
      if (data && data.number && data.status) {
        tx.objectStore('cache').put({at: Date.now(), data: data}, 'ticket:' + data.number);
      }
      kv.put(new Date().toISOString(), 'lastSyncAt');
    }).then(function () {
      announce({type: 'sent', item: {id: item.id, kind: item.kind, group: item.group,
                                     title: item.title}, data: data});
    });
  }

  async function sendOne(item) {
    var request;
    try {
      request = await buildRequest(item);
    } catch (err) {
      await markAttention(item, {status: 0, code: 'local_error', message: String(err.message || err)});
      return 'attention';
    }
    var controller = typeof AbortController !== 'undefined' ? new AbortController() : null;
    var timer = controller && setTimeout(function () { controller.abort(); },
                                         item.kind === 'photo' ? 120000 : 30000);
    var resp;
    try {
      resp = await fetch(request.url, {method: request.method, headers: request.headers,
                                       body: request.body, credentials: 'same-origin',
                                       cache: 'no-store', signal: controller && controller.signal});
    } catch (err) {
      await retryLater(item, {status: 0, code: 'network', message: String(err.message || err)});
      return 'offline';
    } finally {
      if (timer) clearTimeout(timer);
    }
    var type = resp.headers.get('Content-Type') || '';
    var data = null;
    if (type.indexOf('application/json') === 0) {
      try { data = await resp.json(); } catch (e) { data = null; }
    }
    // Ours only if it names this item's key and speaks our JSON (never a portal's page).
    var ours = data !== null && resp.headers.get('Idempotency-Key') === item.id;
    var status = resp.status;
    if (status >= 200 && status < 300) {
      if (!ours) {
        await retryLater(item, {status: status, code: 'not_our_server',
                                message: 'the answer did not come from the Yihao server'});
        return 'retry';
      }
      await complete(item, data);
      return 'done';
    }
    var error = {status: status, code: data && data.code || 'http_' + status,
                 message: data && data.message || resp.statusText || '',
                 details: data && data.details || null};
    if (ours && status === 401) {
      await retryLater(item, error, {free: true, now: true});
      return 'auth';
    }
    if (ours && status === 403 && data.code === 'csrf_failed') {
      var fresh = false;
      try { fresh = await refreshCsrf(); } catch (e) { fresh = false; }
      await retryLater(item, error, fresh ? {free: true, now: true} : {});
      return fresh ? 'again' : 'retry';
    }
    if (!ours || status >= 500 || RETRY_STATUSES.indexOf(status) >= 0
        || RETRY_CODES.indexOf(error.code) >= 0) {
      var after = Number(resp.headers.get('Retry-After'));
      await retryLater(item, error, after > 0 ? {afterMs: Math.min(after, 600) * 1000} : {});
      return 'retry';
    }
    await markAttention(item, error);
    return 'attention';
  }

  /* The first item of each ticket (group), in tap order. */
  function heads(items) {
    var seen = {};
    return items.filter(function (item) {
      if (seen[item.group]) return false;
      seen[item.group] = true;
      return true;
    });
  }

  async function drain(opts) {
    var now = !!(opts && opts.now);
    var result = {sent: 0, offline: false, auth: false, attention: 0};
    var user = await S.get('kv', 'user');
    var blocked = {};
    var csrfRetries = 0;
    for (var round = 0; round < 500; round++) {
      var progress = false;
      var items = await S.queue();
      var todo = heads(items).filter(function (item) {
        return !blocked[item.group] && item.state === 'pending' && (now || item.nextAt <= Date.now())
          && (!item.user || !user || item.user === user.username);
      });
      now = false;  // a retry within this pass waits for its backoff
      for (var i = 0; i < todo.length; i++) {
        var outcome = await sendOne(todo[i]);
        if (outcome === 'done') { result.sent += 1; progress = true; continue; }
        if (outcome === 'again' && csrfRetries++ < 3) { progress = true; continue; }
        blocked[todo[i].group] = true;
        if (outcome === 'attention') result.attention += 1;
        if (outcome === 'auth') { result.auth = true; break; }
        if (outcome === 'offline') { result.offline = true; break; }
      }
      if (!progress || result.auth || result.offline) break;
    }
    announce({type: 'changed', result: result});
    return result;
  }

  /* Send what can be sent now; ``{now: true}`` (back online, back in the foreground, the
   * worker's "send now") skips the backoff waits. Page and service worker share a lock; a busy
   * lock means the other one is draining right now, which is as good. */
  function flush(opts) {
    if (running) return running;
    var work = function (lock) { return lock === null ? {busy: true} : drain(opts); };
    var locks = root.navigator && root.navigator.locks;
    running = (locks && locks.request
      ? locks.request(LOCK, {ifAvailable: true}, work)
      : Promise.resolve().then(function () { return drain(opts); }))
      .finally(function () { running = null; });
    return running;
  }

  async function stats() {
    var items = await S.queue();
    var attention = items.filter(function (i) { return i.state === 'attention'; });
    var nextAt = items.filter(function (i) { return i.state === 'pending'; })
      .reduce(function (m, i) { return Math.min(m, i.nextAt); }, Infinity);
    return {length: items.length, attention: attention.length,
            oldest: items.length ? items.reduce(function (m, i) {
              return i.createdAt < m ? i.createdAt : m; }, items[0].createdAt) : null,
            nextAt: nextAt === Infinity ? null : nextAt, items: items};
  }

  /* Put a parked item back in line (the worker fixed what the server refused). */
  async function retry(id, changes) {
    var item = await S.get('queue', id);
    if (!item) return null;
    if (changes && changes.body) {
      // A changed body is a new request: a new key, in the same place in line.
      return S.run(['queue'], 'readwrite', function (tx, out) {
        var store = tx.objectStore('queue');
        store.delete(item.id);
        var fresh = Object.assign({}, item, {id: uuid(), body: changes.body, state: 'pending',
                                             nextAt: 0, attempts: 0, lastError: null});
        store.add(fresh);
        out.value = fresh;
      }).then(function (fresh) { announce({type: 'changed'}); return fresh; });
    }
    item.state = 'pending'; item.nextAt = 0; item.lastError = null;
    await update(item);
    announce({type: 'changed'});
    return item;
  }

  /* The worker's explicit decision to drop an item (the screen asks twice). */
  function discard(id) {
    return S.run(['queue', 'blobs'], 'readwrite', function (tx) {
      tx.objectStore('queue').delete(id);
      tx.objectStore('blobs').delete(id);
    }).then(function () { announce({type: 'changed'}); });
  }

  async function deviceId() {
    var id = await S.get('kv', 'device');
    if (!id) { id = uuid(); await S.put('kv', id, 'device'); }
    return id;
  }

  /* Tell the server how this phone's queue is doing (supervisors see stuck phones). */
  async function reportDevice(force) {
    var last = (await S.get('kv', 'lastReportAt')) || 0;
    if (!force && Date.now() - last < REPORT_EVERY_MS) return null;
    var s = await stats();
    var body = {
      device_id: await deviceId(), queue_length: s.length, oldest_item_at: s.oldest,
      attention: s.items.filter(function (i) { return i.state === 'attention'; }).map(function (i) {
        return {ticket: i.group.indexOf('new:') === 0 ? null : i.group, action: i.kind,
                code: i.lastError && String(i.lastError.code || '').slice(0, 64),
                status: i.lastError && i.lastError.status || null, at: i.createdAt};
      }),
      last_sync_at: (await S.get('kv', 'lastSyncAt')) || null,
      app_version: (root.YIHAO && root.YIHAO.version) || (await S.get('kv', 'version')) || null,
      user_agent: String(root.navigator && navigator.userAgent || '').slice(0, 300),
    };
    if (root.navigator && navigator.storage) {
      try {
        if (navigator.storage.persisted) body.persisted = await navigator.storage.persisted();
        if (navigator.storage.estimate) {
          var est = await navigator.storage.estimate();
          body.storage_usage = est.usage; body.storage_quota = est.quota;
        }
      } catch (e) { /* not allowed here */ }
    }
    var resp = await fetch(API + '/devices/report', {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: {'Content-Type': 'application/json', 'Accept': 'application/json',
                'X-CSRF-Token': await csrf()},
      body: JSON.stringify(body),
    });
    if (resp.status === 403) { await refreshCsrf().catch(function () {}); return null; }
    if (resp.ok) await S.put('kv', Date.now(), 'lastReportAt');
    return resp.ok ? resp.json() : null;
  }

  root.YihaoQueue = {uuid: uuid, enqueue: enqueue, flush: flush, stats: stats, retry: retry,
                     discard: discard, onChange: onChange, reportDevice: reportDevice,
                     refreshCsrf: refreshCsrf, deviceId: deviceId, announce: announce};
})(typeof self !== 'undefined' ? self : this);
