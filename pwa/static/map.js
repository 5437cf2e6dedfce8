/* The grid drawn as inline SVG from the API's GeoJSON: no map tiles, so it works on an
 * intranet and offline. Distance and direction are computed on the phone. */
(function (root) {
  'use strict';
  var R = 6371008.8;
  var DIRECTIONS = ['map.n', 'map.ne', 'map.e', 'map.se', 'map.s', 'map.sw', 'map.w', 'map.nw'];

  function rad(d) { return d * Math.PI / 180; }

  function distance(a, b) {
    var dLat = rad(b.lat - a.lat), dLng = rad(b.lng - a.lng);
    var h = Math.sin(dLat / 2) * Math.sin(dLat / 2)
      + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLng / 2) * Math.sin(dLng / 2);
    return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  function bearing(a, b) {
    var y = Math.sin(rad(b.lng - a.lng)) * Math.cos(rad(b.lat));
    var x = Math.cos(rad(a.lat)) * Math.sin(rad(b.lat))
      - Math.sin(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.cos(rad(b.lng - a.lng));
    return (Math.atan2(y, x) * 180 / Math.PI + 360) % 360;
  }

  function directionKey(deg) { return DIRECTIONS[Math.round(deg / 45) % 8]; }

  function rings(geometry) {
    if (!geometry) return [];
    if (geometry.type === 'Polygon') return geometry.coordinates;
    if (geometry.type === 'MultiPolygon') {
      return geometry.coordinates.reduce(function (acc, poly) { return acc.concat(poly); }, []);
    }
    return [];
  }

  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); }

  function niceLength(m) {
    var steps = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000];
    for (var i = steps.length - 1; i >= 0; i--) if (steps[i] <= m) return steps[i];
    return steps[0];
  }

  /* An SVG string: the grid polygon, the ticket's point, and where I am (when known). */
  function svg(feature, ticketPoint, me, labels) {
    labels = labels || {};
    var W = 320, H = 220, PAD = 18;
    var points = [];
    var polys = rings(feature && feature.geometry);
    polys.forEach(function (ring) { ring.forEach(function (c) { points.push(c); }); });
    if (ticketPoint) points.push([ticketPoint.lng, ticketPoint.lat]);
    // Far away, the worker would shrink the grid to a dot: then "me" is an arrow at the edge.
    var anchor = ticketPoint || (points.length ? {lng: points[0][0], lat: points[0][1]} : null);
    var meFar = me && anchor && distance(me, anchor) > 1500;
    if (me && !meFar) points.push([me.lng, me.lat]);
    if (!points.length) return '';
    var lat0 = points.reduce(function (s, p) { return s + p[1]; }, 0) / points.length;
    var k = Math.cos(rad(lat0));
    var xs = points.map(function (p) { return p[0] * k; }), ys = points.map(function (p) { return p[1]; });
    var minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs);
    var minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    var span = Math.max(maxX - minX, maxY - minY, 0.0005);
    var scale = Math.min((W - 2 * PAD) / Math.max(maxX - minX, span * 0.2),
                         (H - 2 * PAD) / Math.max(maxY - minY, span * 0.2));
    var cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    function project(lng, lat) {
      return [(W / 2 + (lng * k - cx) * scale).toFixed(1), (H / 2 - (lat - cy) * scale).toFixed(1)];
    }
    var parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ' + W + ' ' + H +
      '" role="img" aria-label="' + esc(labels.title || '') + '" class="gridmap">',
      '<rect width="100%" height="100%" fill="#f3f6fa"/>'];
    if (polys.length) {
      var d = polys.map(function (ring) {
        return 'M' + ring.map(function (c) { return project(c[0], c[1]).join(','); }).join('L') + 'Z';
      }).join('');
      parts.push('<path d="' + d + '" fill="#d7e6fb" stroke="#0b57d0" stroke-width="2.5" fill-rule="evenodd"/>');
    }
    // scale bar: metres per SVG unit from degrees of latitude
    var metresPerUnit = (Math.PI / 180) * R / scale;
    var bar = niceLength(metresPerUnit * 90);
    var barPx = bar / metresPerUnit;
    parts.push('<g font-size="12" fill="#1a1a1a"><path d="M12 ' + (H - 12) + 'h' + barPx.toFixed(1) +
      '" stroke="#1a1a1a" stroke-width="3"/><text x="12" y="' + (H - 18) + '">' +
      (bar >= 1000 ? (bar / 1000) + ' km' : bar + ' m') + '</text></g>');
    parts.push('<g transform="translate(' + (W - 22) + ',26)"><path d="M0 -14L6 4L0 0L-6 4Z" fill="#1a1a1a"/>' +
      '<text y="16" text-anchor="middle" font-size="12" font-weight="700">' + esc(labels.north || 'N') + '</text></g>');
    if (me && !meFar) {
      var m = project(me.lng, me.lat);
      parts.push('<circle cx="' + m[0] + '" cy="' + m[1] + '" r="8" fill="#1a73e8" stroke="#fff" stroke-width="3"/>');
    } else if (me) {
      // an arrow on the frame, pointing from the map's centre towards the worker
      var deg = bearing(anchor, me), a = rad(deg);
      var dx = Math.sin(a), dy = -Math.cos(a);
      var reach = Math.min((W / 2 - 16) / Math.max(Math.abs(dx), 1e-6), (H / 2 - 16) / Math.max(Math.abs(dy), 1e-6));
      var ax = W / 2 + dx * reach, ay = H / 2 + dy * reach;
      parts.push('<g transform="translate(' + ax.toFixed(1) + ',' + ay.toFixed(1) + ') rotate(' + deg.toFixed(0) +
        ')"><path d="M0 -12L9 8L0 3L-9 8Z" fill="#1a73e8" stroke="#fff" stroke-width="2"/></g>');
    }
    if (ticketPoint) {
      var t = project(ticketPoint.lng, ticketPoint.lat);
      parts.push('<g transform="translate(' + t[0] + ',' + t[1] + ')"><path d="M0 0C-4 -8 -10 -12 -10 -19A10 10 0 1 1 10 -19C10 -12 4 -8 0 0Z" fill="#d63027" stroke="#fff" stroke-width="2"/><circle cy="-19" r="4" fill="#fff"/></g>');
    }
    parts.push('</svg>');
    return parts.join('');
  }

  root.YihaoMap = {svg: svg, distance: distance, bearing: bearing, directionKey: directionKey};
})(typeof self !== 'undefined' ? self : this);
