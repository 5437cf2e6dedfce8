/* Yihao's service worker: the app shell from the cache (the app starts offline and fast),
 * photos from the cache, and the offline queue drained by Background Sync where it exists.
 * The queue itself lives in IndexedDB: replacing this worker or its caches loses nothing. */
'use strict';
var VERSION = {{ version|tojson }};
var SHELL_CACHE = 'yihao-shell-' + VERSION;
var PHOTO_CACHE = 'yihao-photos';
var SHELL = {{ shell_urls|tojson }};
var SCOPE = new URL(self.registration.scope).pathname;

importScripts({{ store|tojson }}, {{ queue|tojson }});
{% if push_sw %}
try {
  importScripts({{ push_sw|tojson }});  // push handlers, from the notifications part of the app
} catch (err) {
  console.warn('push handlers not loaded', err);
}
{% endif %}

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(SHELL_CACHE).then(function (cache) {
    return cache.addAll(SHELL.map(function (url) { return new Request(url, {cache: 'reload'}); }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) {
      return key.indexOf('yihao-shell-') === 0 && key !== SHELL_CACHE;
    }).map(function (key) { return caches.delete(key); }));
  }).then(function () { return self.clients.claim(); }));
});

function fromShell(request) {
  return caches.open(SHELL_CACHE).then(function (cache) {
    return cache.match(request, {ignoreSearch: request.mode === 'navigate'}).then(function (hit) {
      return hit || fetch(request).then(function (resp) {
        if (resp.ok && request.mode !== 'navigate') cache.put(request, resp.clone());
        return resp;
      });
    });
  });
}

/* Photos never change: from the cache when there, else from the network (and kept). */
function photo(request) {
  return caches.open(PHOTO_CACHE).then(function (cache) {
    return cache.match(request).then(function (hit) {
      return hit || fetch(request).then(function (resp) {
        if (resp.ok) cache.put(request, resp.clone());
        return resp;
      });
    });
  });
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') return;  // writes go straight out; the queue handles failure
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && url.pathname === SCOPE) {
    event.respondWith(caches.open(SHELL_CACHE).then(function (cache) {
      return cache.match(SCOPE).then(function (hit) { return hit || fetch(request); });
    }));
    return;
  }
  if (url.pathname.indexOf(SCOPE) === 0 && url.pathname !== SCOPE + 'sw.js') {
    event.respondWith(fromShell(request));
    return;
  }
  if (/^\/api\/v1\/photos\/[^/]+(\/thumb)?$/.test(url.pathname)) {
    event.respondWith(photo(request));
  }
});

self.addEventListener('sync', function (event) {
  if (event.tag === 'yihao-queue') {
    event.waitUntil(self.YihaoQueue.flush().then(function (result) {
      // Still offline: reject so the browser schedules the sync again.
      if (result && result.offline) throw new Error('still offline');
    }));
  }
});

self.addEventListener('message', function (event) {
  var data = event.data || {};
  if (data.type === 'flush') event.waitUntil(self.YihaoQueue.flush());
  if (data.type === 'logout') event.waitUntil(caches.delete(PHOTO_CACHE));
});
