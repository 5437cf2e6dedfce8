/* Web Push in the service worker (imported by the app's sw.js with importScripts).
 *
 * - push: always shows a notification (browsers require it, and a silent push would be a
 *   notice nobody sees); the payload is decrypted by the browser and carries title, body,
 *   tag (one per ticket: a newer notice about the same ticket replaces the older), url.
 * - notificationclick: focuses an open window of the app and opens the ticket there, or
 *   opens a new one.
 * - pushsubscriptionchange: the browser rotated or dropped the subscription; subscribe again
 *   and tell the server, with the device id push.js saved (the worker cannot read
 *   localStorage, so it is kept in the Cache API as well).
 */
'use strict';

(function () {
  var API = '/api/v1';
  var META_CACHE = 'yihao-push';
  var DEVICE_KEY = '/__yihao-push/device-id';

  function b64ToBytes(text) {
    var padded = (text + '==='.slice((text.length + 3) % 4)).replace(/-/g, '+').replace(/_/g, '/');
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function readPayload(event) {
    if (!event.data) return {};
    try {
      return event.data.json() || {};
    } catch (e) {
      return {body: event.data.text()};
    }
  }

  self.addEventListener('push', function (event) {
    var msg = readPayload(event);
    var scope = self.registration.scope;
    var title = msg.title || '一号：您有新的工单提醒';
    var options = {
      body: msg.body || '请打开一号查看。',
      tag: msg.tag || 'yihao',
      renotify: true,  // a newer notice about the same ticket still alerts
      requireInteraction: Boolean(msg.urgent),  // life-and-safety stays until seen
      vibrate: msg.urgent ? [400, 150, 400, 150, 400] : [200],
      lang: 'zh-Hans',
      timestamp: Date.now(),
      icon: scope + 'icons/192.png',
      badge: scope + 'icons/192.png',
      data: {url: msg.url || scope, notifications: msg.notifications || [],
             tickets: msg.tickets || [], kind: msg.kind || ''}
    };
    var shown = self.registration.showNotification(title, options);
    // Open windows refresh their lists at once (the live stream brings the same notice too).
    var told = self.clients.matchAll({type: 'window', includeUncontrolled: true})
      .then(function (list) {
        list.forEach(function (client) { client.postMessage({type: 'yihao-push', notice: msg}); });
      });
    event.waitUntil(Promise.all([shown, told.catch(function () {})]));
  });

  self.addEventListener('notificationclick', function (event) {
    event.notification.close();
    var data = event.notification.data || {};
    var target = new URL(data.url || self.registration.scope, self.registration.scope).href;
    event.waitUntil(self.clients.matchAll({type: 'window', includeUncontrolled: true})
      .then(function (list) {
        var scope = self.registration.scope;
        for (var i = 0; i < list.length; i++) {
          var client = list[i];
          if (client.url.indexOf(scope) !== 0) continue;
          return client.focus().then(function (focused) {
            var win = focused || client;
            if (win.navigate && win.url !== target) {
              return win.navigate(target).catch(function () {
                win.postMessage({type: 'yihao-open', url: target});
              });
            }
            win.postMessage({type: 'yihao-open', url: target});
            return null;
          });
        }
        return self.clients.openWindow(target);
      }));
  });

  function savedDeviceId() {
    return caches.open(META_CACHE).then(function (cache) {
      return cache.match(DEVICE_KEY);
    }).then(function (hit) { return hit ? hit.text() : ''; });
  }

  function resubscribe(event) {
    var reg = self.registration;
    var keyPromise = fetch(API + '/push/vapid-public-key', {credentials: 'same-origin'})
      .then(function (r) { if (!r.ok) throw new Error('key ' + r.status); return r.json(); });
    return Promise.all([keyPromise, savedDeviceId(),
                        fetch(API + '/me', {credentials: 'same-origin'})
                          .then(function (r) { return r.ok ? r.json() : {}; })])
      .then(function (got) {
        var key = got[0].public_key;
        var device = got[1];
        var csrf = got[2].csrf_token || '';
        if (!device || !csrf) return null;  // logged out: the next app start subscribes
        var existing = event && event.newSubscription;
        var sub = existing ? Promise.resolve(existing) : reg.pushManager.subscribe(
          {userVisibleOnly: true, applicationServerKey: b64ToBytes(key)});
        return sub.then(function (subscription) {
          return fetch(API + '/push/subscriptions', {
            method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({device_id: device, subscription: subscription.toJSON(),
                                  user_agent: self.navigator.userAgent})
          });
        });
      });
  }

  self.addEventListener('pushsubscriptionchange', function (event) {
    event.waitUntil(resubscribe(event).catch(function (err) {
      console.warn('push: could not renew the subscription', err);
    }));
  });
})();
