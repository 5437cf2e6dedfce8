/* IndexedDB for the phone app: the offline queue, photo blobs, drafts, cached tickets.
 *
 * Shared by the page and the service worker (a classic script: importScripts works).
 * Writes use durability "strict": the transaction completes only once the data is on disk,
 * so "saved" on the screen survives the browser being killed a moment later.
 * Stores are only ever added by later versions, never dropped: an app update keeps the queue.
 */
(function (root) {
  'use strict';
  var DB_NAME = 'yihao';
  var DB_VERSION = 1;
  var opening = null;

  function open() {
    if (opening) return opening;
    opening = new Promise(function (resolve, reject) {
      var req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = function () {
        var db = req.result;
        if (!db.objectStoreNames.contains('queue')) {
          db.createObjectStore('queue', {keyPath: 'id'}).createIndex('seq', 'seq', {unique: true});
        }
        ['blobs', 'kv', 'drafts', 'cache'].forEach(function (name) {
          if (!db.objectStoreNames.contains(name)) db.createObjectStore(name);
        });
      };
      req.onsuccess = function () {
        var db = req.result;
        // A newer version of the app (another tab, the new service worker) wants to upgrade.
        db.onversionchange = function () { db.close(); opening = null; };
        resolve(db);
      };
      req.onerror = function () { opening = null; reject(req.error); };
      req.onblocked = function () { /* waits until older tabs close their connection */ };
    });
    return opening;
  }

  /* Run body(tx, out) in one transaction; resolves with out.value once it has completed. */
  function run(stores, mode, body) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = mode === 'readwrite'
          ? db.transaction(stores, mode, {durability: 'strict'})
          : db.transaction(stores, mode);
        var out = {value: undefined};
        tx.oncomplete = function () { resolve(out.value); };
        tx.onerror = function () { reject(tx.error); };
        tx.onabort = function () { reject(tx.error || new Error('transaction aborted')); };
        try {
          body(tx, out);
        } catch (err) {
          try { tx.abort(); } catch (e) { /* already finished */ }
          reject(err);
        }
      });
    });
  }

  function get(store, key) {
    return run([store], 'readonly', function (tx, out) {
      tx.objectStore(store).get(key).onsuccess = function (e) { out.value = e.target.result; };
    });
  }

  function put(store, value, key) {
    return run([store], 'readwrite', function (tx) {
      if (key === undefined) tx.objectStore(store).put(value);
      else tx.objectStore(store).put(value, key);
    });
  }

  function del(store, key) {
    return run([store], 'readwrite', function (tx) { tx.objectStore(store).delete(key); });
  }

  function all(store) {
    return run([store], 'readonly', function (tx, out) {
      tx.objectStore(store).getAll().onsuccess = function (e) { out.value = e.target.result; };
    });
  }

  function clear(store) {
    return run([store], 'readwrite', function (tx) { tx.objectStore(store).clear(); });
  }

  /* The queue in tap order (seq), which is the order items are sent in per ticket. */
  function queue() {
    return run(['queue'], 'readonly', function (tx, out) {
      tx.objectStore('queue').index('seq').getAll().onsuccess = function (e) {
        out.value = e.target.result;
      };
    });
  }

  root.YihaoStore = {open: open, run: run, get: get, put: put, del: del, all: all,
                     clear: clear, queue: queue};
})(typeof self !== 'undefined' ? self : this);
