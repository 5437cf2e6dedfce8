/* The live stream while the app is open: window.YihaoLive.
 *
 *   var live = YihaoLive.start(function (notice) { ... });   // notice: the inbox JSON
 *   live.stop();
 *
 * Web Push does not reach every phone (blocked push services, refused permission), so the
 * open app listens to /api/v1/events/stream as well. The server ends each response after
 * ~25 s and the browser reconnects by itself, resuming after the last event id; when the
 * connection fails outright (offline, logged out, a proxy in the way), this file reconnects
 * with a growing delay. A notice is handed on once, however often it is received.
 */
(function () {
  'use strict';

  var STREAM = '/api/v1/events/stream';
  var MAX_DELAY_MS = 60000;
  var current = null;  // one stream per page: starting again replaces it

  function start(onNotice, options) {
    if (current) current.stop();
    options = options || {};
    var url = options.url || STREAM;
    var seen = {};
    var lastId = null;
    var source = null;
    var timer = null;
    var delay = 1000;
    var stopped = false;

    function deliver(event) {
      var notice;
      try { notice = JSON.parse(event.data); } catch (e) { return; }
      var key = String(notice && notice.id != null ? notice.id : event.lastEventId);
      if (seen[key]) return;
      seen[key] = true;
      if (typeof onNotice === 'function') {
        try { onNotice(notice); } catch (e) { console.error('live notice handler failed', e); }
      }
    }

    function open() {
      if (stopped) return;
      var target = lastId != null ? url + (url.indexOf('?') < 0 ? '?' : '&') + 'after=' + encodeURIComponent(lastId) : url;
      source = new EventSource(target, {withCredentials: true});
      source.addEventListener('ready', function (event) {
        delay = 1000;
        if (event.lastEventId) lastId = event.lastEventId;
      });
      source.addEventListener('notice', function (event) {
        if (event.lastEventId) lastId = event.lastEventId;
        deliver(event);
      });
      source.addEventListener('bye', function (event) {
        if (event.lastEventId) lastId = event.lastEventId;
      });
      source.onerror = function () {
        // CONNECTING: the browser is reconnecting by itself (the normal end of a response).
        if (!source || source.readyState !== EventSource.CLOSED) return;
        source = null;
        schedule();
      };
    }

    function schedule() {
      if (stopped || timer) return;
      timer = setTimeout(function () { timer = null; open(); }, delay);
      delay = Math.min(MAX_DELAY_MS, delay * 2);
    }

    function onOnline() {
      if (source || stopped) return;
      if (timer) { clearTimeout(timer); timer = null; }
      delay = 1000;
      open();
    }

    if (!('EventSource' in window)) {
      return {stop: function () {}, supported: false};
    }
    window.addEventListener('online', onOnline);
    open();
    current = {
      supported: true,
      stop: function () {
        stopped = true;
        if (timer) clearTimeout(timer);
        if (source) source.close();
        source = null;
        window.removeEventListener('online', onOnline);
      },
      get lastEventId() { return lastId; }
    };
    return current;
  }

  window.YihaoLive = {start: start};
})();
