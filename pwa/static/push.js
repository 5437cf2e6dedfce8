/* Web Push on the page: window.YihaoPush.
 *
 *   YihaoPush.start()   on every app start (after login): renews the subscription when
 *                       permission is granted; when it was never asked, shows a small,
 *                       dismissible banner whose button asks (browsers want a tap first).
 *   YihaoPush.enable()  from a tap: asks for permission, subscribes, registers.
 *   YihaoPush.stop()    unsubscribes this device (e.g. on logout).
 *   YihaoPush.state     'unsupported' | 'prompt' | 'denied' | 'subscribed' | 'error' | 'idle'
 *
 * Each call resolves to {state, detail}; the same goes out as a 'yihao:push-state' event
 * on window, so the app can tell the worker when push cannot reach this phone (then the
 * live stream and SMS are what carry notices).
 */
(function () {
  'use strict';

  var API = '/api/v1';
  var DEVICE_STORAGE = 'yihao.push.deviceId';
  var DISMISSED_STORAGE = 'yihao.push.bannerDismissedAt';
  var META_CACHE = 'yihao-push';
  var DEVICE_KEY = '/__yihao-push/device-id';
  var BANNER_ID = 'yihao-push-banner';
  var WEEK_MS = 7 * 24 * 3600 * 1000;

  var api = {state: 'idle', detail: ''};

  function report(state, detail) {
    api.state = state;
    api.detail = detail || '';
    try {
      window.dispatchEvent(new CustomEvent('yihao:push-state', {detail: {state: state, detail: api.detail}}));
    } catch (e) { /* very old browsers: the return value still says it */ }
    return {state: state, detail: api.detail};
  }

  function supported() {
    return window.isSecureContext !== false && 'serviceWorker' in navigator &&
      'PushManager' in window && 'Notification' in window;
  }

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  /* One id per installed app (per browser profile), kept across starts and logins. */
  function deviceId() {
    var id = '';
    try { id = localStorage.getItem(DEVICE_STORAGE) || ''; } catch (e) { /* private mode */ }
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
      id = randomId();
      try { localStorage.setItem(DEVICE_STORAGE, id); } catch (e) { /* kept for this run */ }
    }
    if (window.caches) {  // for the service worker's pushsubscriptionchange
      caches.open(META_CACHE).then(function (cache) {
        return cache.put(DEVICE_KEY, new Response(id));
      }).catch(function () {});
    }
    return id;
  }

  function b64ToBytes(text) {
    var padded = (text + '==='.slice((text.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/');
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function sameKey(subscription, key) {
    var current = subscription.options && subscription.options.applicationServerKey;
    if (!current) return true;  // the browser does not say: keep it
    var a = new Uint8Array(current);
    if (a.length !== key.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== key[i]) return false;
    return true;
  }

  function getJSON(path) {
    return fetch(API + path, {credentials: 'same-origin', headers: {'Accept': 'application/json'}})
      .then(function (r) {
        if (!r.ok) throw new Error(path + ' ' + r.status);
        return r.json();
      });
  }

  function send(method, path, body) {
    return getJSON('/me').then(function (me) {
      return fetch(API + path, {
        method: method, credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token || ''},
        body: JSON.stringify(body)
      });
    }).then(function (r) {
      if (!r.ok && r.status !== 404) throw new Error(method + ' ' + path + ' ' + r.status);
      return r;
    });
  }

  /* Subscribe (or reuse the browser's subscription) and tell the server: every start, so
   * a rotated endpoint, a new VAPID key or a cleared failure record is picked up. */
  function subscribe() {
    return Promise.all([navigator.serviceWorker.ready, getJSON('/push/vapid-public-key')])
      .then(function (got) {
        var reg = got[0];
        var key = b64ToBytes(got[1].public_key);
        return reg.pushManager.getSubscription().then(function (existing) {
          if (existing && sameKey(existing, key)) return existing;
          var dropped = existing ? existing.unsubscribe() : Promise.resolve(true);
          return dropped.then(function () {
            return reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
          });
        });
      })
      .then(function (subscription) {
        return send('POST', '/push/subscriptions', {
          device_id: deviceId(), subscription: subscription.toJSON(),
          user_agent: navigator.userAgent.slice(0, 300)
        });
      })
      .then(function () { hideBanner(); return report('subscribed'); });
  }

  function hideBanner() {
    var el = document.getElementById(BANNER_ID);
    if (el) el.parentNode.removeChild(el);
  }

  function dismissedRecently() {
    try {
      return Date.now() - Number(localStorage.getItem(DISMISSED_STORAGE) || 0) < WEEK_MS;
    } catch (e) { return false; }
  }

  /* A polite ask: a banner with a button, never a prompt out of nowhere. */
  function showBanner() {
    if (document.getElementById(BANNER_ID) || dismissedRecently() || !document.body) return;
    var el = document.createElement('div');
    el.id = BANNER_ID;
    el.setAttribute('role', 'region');
    el.setAttribute('aria-label', '通知');
    el.style.cssText = 'position:fixed;left:8px;right:8px;bottom:8px;z-index:1000;padding:12px;' +
      'background:#fff;border:1px solid #0b57d0;border-radius:8px;box-shadow:0 2px 8px rgba(0,0,0,.2);' +
      'font-size:15px;line-height:1.4';
    var text = document.createElement('p');
    text.style.margin = '0 0 8px';
    text.textContent = '开启通知后，新派工单、即将超时和督办提醒会及时送到这部手机。';
    var yes = document.createElement('button');
    yes.type = 'button';
    yes.textContent = '开启通知';
    yes.className = 'primary';
    yes.addEventListener('click', function () { api.enable(); });
    var later = document.createElement('button');
    later.type = 'button';
    later.textContent = '以后再说';
    later.style.marginLeft = '8px';
    later.addEventListener('click', function () {
      try { localStorage.setItem(DISMISSED_STORAGE, String(Date.now())); } catch (e) { /* fine */ }
      hideBanner();
    });
    el.appendChild(text);
    el.appendChild(yes);
    el.appendChild(later);
    document.body.appendChild(el);
  }

  api.start = function () {
    if (!supported()) return Promise.resolve(report('unsupported', '此浏览器不支持推送通知'));
    var permission = Notification.permission;
    if (permission === 'denied') return Promise.resolve(report('denied', '通知已被关闭，可在浏览器设置中开启'));
    if (permission === 'default') {
      showBanner();
      return Promise.resolve(report('prompt'));
    }
    return subscribe().catch(function (err) { return report('error', String(err && err.message || err)); });
  };

  /* Call from a tap: asks for permission, then subscribes. */
  api.enable = function () {
    if (!supported()) return Promise.resolve(report('unsupported', '此浏览器不支持推送通知'));
    var asked = Notification.requestPermission();
    return Promise.resolve(asked).then(function (permission) {
      if (permission !== 'granted') {
        hideBanner();
        return report(permission === 'denied' ? 'denied' : 'prompt');
      }
      return subscribe();
    }).catch(function (err) { return report('error', String(err && err.message || err)); });
  };

  /* This device stops getting pushes (logout, or the worker turned them off). */
  api.stop = function () {
    if (!supported()) return Promise.resolve(report('unsupported'));
    return navigator.serviceWorker.ready.then(function (reg) {
      return reg.pushManager.getSubscription();
    }).then(function (subscription) {
      var local = subscription ? subscription.unsubscribe() : Promise.resolve(true);
      return Promise.all([local, send('DELETE', '/push/subscriptions', {device_id: deviceId()})
        .catch(function () { /* logged out already: the server drops it on its next 410 */ })]);
    }).then(function () { return report('idle'); })
      .catch(function (err) { return report('error', String(err && err.message || err)); });
  };

  api.deviceId = deviceId;
  window.YihaoPush = api;
})();
