/* The map screen and the review's small map (Leaflet, served from the xstatic-leaflet package).
 *
 * No base layer unless the server is configured with one (YIHAO_MAP_TILES, an intranet tile
 * server): the grids, the county outline and the tickets are drawn on a plain background, so
 * nothing is fetched from the internet. Data comes from the JSON API; a drawn or edited grid
 * is saved with PUT /api/v1/grids/<code>, which validates it like a file import and answers
 * 422 with the validation report's message when it is refused.
 */
(function () {
  "use strict";

  var COLOURS = { none: "#6b8f71", light: "#2e7d32", busy: "#b26a00", heavy: "#b3261e" };
  var FILLS = { none: 0.08, light: 0.25, busy: 0.35, heavy: 0.45 };

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error(url + " → " + resp.status); }
        return resp.json();
      });
  }

  function baseMap(el, cfg) {
    var map = L.map(el, { zoomSnap: 0.5, attributionControl: !!(cfg && cfg.tiles) });
    if (cfg && cfg.tiles) {
      L.tileLayer(cfg.tiles, { maxZoom: 19, attribution: cfg.attribution || "" }).addTo(map);
    }
    map.setView([41.8, 123.4], 9);
    return map;
  }

  /* ------------------------------------------------------------ the review's small map */

  // Labels of points metres apart must not cover each other: each kind to its own side.
  var DIRECTIONS = { report: "left", checkin: "right", photo: "bottom" };
  var OFFSETS = { report: [-8, 0], checkin: [8, 0], photo: [0, 8] };

  function reviewMap(el) {
    var data = JSON.parse(el.getAttribute("data-review"));
    var map = baseMap(el, null);
    var group = L.featureGroup().addTo(map);
    var styles = {
      report: { color: "#0b57d0", fillColor: "#0b57d0" },
      checkin: { color: "#146c2e", fillColor: "#146c2e" },
      photo: { color: "#8a5a00", fillColor: "#f0a202" }
    };
    data.points.forEach(function (p) {
      var style = styles[p.kind] || styles.report;
      L.circleMarker([p.lat, p.lng], Object.assign({ radius: 8, weight: 3, fillOpacity: 0.8 }, style))
        .bindTooltip(p.label, { permanent: true, direction: DIRECTIONS[p.kind] || "right",
                                offset: OFFSETS[p.kind] || [8, 0] })
        .addTo(group);
      if (p.kind === "checkin" && p.accuracy) {
        L.circle([p.lat, p.lng], { radius: p.accuracy, color: "#146c2e", weight: 1, fillOpacity: 0.08 })
          .addTo(group);
      }
    });
    var fit = function () {
      if (group.getLayers().length) { map.fitBounds(group.getBounds().pad(0.6), { maxZoom: 18 }); }
    };
    fit();
    if (data.grid) {
      var grids = el.getAttribute("data-grids");
      getJSON(grids + "?bbox=" + group.getBounds().pad(2).toBBoxString()).then(function (fc) {
        fc.features.forEach(function (f) {
          if (f.properties.code === data.grid && f.geometry) {
            L.geoJSON(f, { style: { color: "#555", weight: 2, dashArray: "5 4", fillOpacity: 0.05 },
                           interactive: false }).addTo(map).bringToBack();
          }
        });
      }).catch(function () { /* the points alone still tell the story */ });
    }
    window.yihaoReviewMap = map;
  }

  /* ------------------------------------------------------------ the map screen */

  function mapScreen(el) {
    var cfg = JSON.parse(el.getAttribute("data-config"));
    var map = baseMap(el, cfg);
    var statusEl = document.getElementById("map-status");
    var loads = {};
    var truncated = false;
    var selected = null;
    var fitted = false;

    function say(text) { if (statusEl) { statusEl.textContent = text; } }

    var boundaryLayer = L.geoJSON(null, {
      interactive: false,
      style: { color: "#444", weight: 2, dashArray: "8 6", fill: false }
    }).addTo(map);

    function loadOf(code) { return loads[code] || { open: 0, overdue: 0, level: "none" }; }

    function gridStyle(feature) {
      var load = loadOf(feature.properties.code);
      var isSelected = selected && selected.feature === feature;
      return { color: isSelected ? "#0b57d0" : COLOURS[load.level], weight: isSelected ? 4 : 2,
               fillColor: COLOURS[load.level], fillOpacity: FILLS[load.level] };
    }

    var labelLayer = L.layerGroup();
    var gridLayer = L.geoJSON(null, {
      style: gridStyle,
      onEachFeature: function (feature, layer) {
        var p = feature.properties;
        var load = loadOf(p.code);
        layer.bindTooltip(p.name + "（" + p.code + "）· 在办 " + load.open +
                          (load.overdue ? " · 超时 " + load.overdue : ""), { sticky: true });
        if (load.open) {  // the count in words too, not only as a colour
          L.marker(layer.getBounds().getCenter(), {
            interactive: false, keyboard: false,
            icon: L.divIcon({ className: "grid-count load-" + load.level, html: String(load.open),
                              iconSize: [30, 30], iconAnchor: [15, 15] })
          }).addTo(labelLayer);
        }
        layer.on("click", function () { select(feature, layer); });
      }
    }).addTo(map);
    labelLayer.addTo(map);

    var ticketLayer = L.layerGroup().addTo(map);

    function select(feature, layer) {
      selected = { feature: feature, layer: layer };
      gridLayer.setStyle(gridStyle);
      var p = feature.properties;
      var load = loadOf(p.code);
      var box = document.getElementById("selected");
      if (box) {
        box.hidden = false;
        document.getElementById("selected-text").textContent =
          p.name + "（" + p.code + "）· " + (p.unit_name || p.unit) + " · 第 " + p.version +
          " 版 · 值班网格员 " + (p.on_duty || "无") + " · 在办 " + load.open + " 件" +
          (load.overdue ? "，超时 " + load.overdue + " 件" : "");
      }
      var edit = document.getElementById("edit-start");
      if (edit && !draft) { edit.disabled = false; }
    }

    function bboxParam() {
      return truncated ? "?bbox=" + map.getBounds().toBBoxString() : "";
    }

    function loadGrids() {
      return Promise.all([getJSON(cfg.urls.grids + bboxParam()), getJSON(cfg.urls.load)])
        .then(function (res) {
          var fc = res[0];
          loads = res[1].grids;
          truncated = !!fc.truncated;
          gridLayer.clearLayers();
          labelLayer.clearLayers();
          fc.features = fc.features.filter(function (f) { return f.geometry; });
          gridLayer.addData(fc);
          if (selected) {
            var code = selected.feature.properties.code;
            selected = null;
            gridLayer.eachLayer(function (layer) {
              if (layer.feature.properties.code === code) { select(layer.feature, layer); }
            });
          }
          return fc.features.length;
        });
    }

    function loadTickets() {
      return getJSON(cfg.urls.tickets + "?limit=1000").then(function (fc) {
        ticketLayer.clearLayers();
        fc.features.forEach(function (f) {
          var p = f.properties;
          var c = f.geometry.coordinates;
          var late = p.overdue;
          L.circleMarker([c[1], c[0]], { radius: 6, weight: 2, color: late ? "#b3261e" : "#0b57d0",
                                         fillColor: late ? "#f28b82" : "#8ab4f8", fillOpacity: 0.9 })
            .bindTooltip(p.number + " " + p.title + (late ? "（已超时）" : ""))
            .on("click", function () { window.location = cfg.urls.ticket.replace("__NUMBER__", p.number); })
            .addTo(ticketLayer);
        });
        return fc.features.length;
      });
    }

    function fit() {
      if (fitted) { return; }
      var bounds = boundaryLayer.getBounds();
      if (gridLayer.getLayers().length) {
        bounds = gridLayer.getBounds();
      }
      if (bounds.isValid()) { map.fitBounds(bounds.pad(0.05)); fitted = true; }
    }

    function refresh() {
      return Promise.all([loadGrids(), loadTickets()]).then(function (n) {
        say("网格 " + n[0] + " 个，在办工单 " + n[1] + " 件" + (truncated ? "（网格较多，只显示当前视野）" : ""));
      });
    }

    getJSON(cfg.urls.boundary).then(function (fc) { boundaryLayer.addData(fc); })
      .catch(function () { /* the package may lack this region: grids alone then */ })
      .then(refresh)
      .then(fit)
      .catch(function (err) { say("加载失败，请刷新页面（" + err.message + "）"); });

    map.on("moveend", function () { if (truncated && !draft) { loadGrids(); } });

    document.querySelectorAll("input[data-layer]").forEach(function (box) {
      box.addEventListener("change", function () {
        var name = box.getAttribute("data-layer");
        var layers = { grids: [gridLayer, labelLayer], tickets: [ticketLayer], boundary: [boundaryLayer] }[name];
        layers.forEach(function (layer) {
          if (box.checked) { layer.addTo(map); } else { map.removeLayer(layer); }
        });
      });
    });

    /* -------------------------------------------------------- drawing and editing */

    var draft = null;
    var form = document.getElementById("draw-form");
    var message = document.getElementById("draw-message");
    var buttons = {
      start: document.getElementById("draw-start"), edit: document.getElementById("edit-start"),
      undo: document.getElementById("draw-undo"), save: document.getElementById("draw-save"),
      cancel: document.getElementById("draw-cancel")
    };

    function show(text, ok) {
      if (!message) { return; }
      message.hidden = !text;
      message.textContent = text || "";
      message.className = "message " + (ok ? "notice" : "error");
    }

    function setButtons() {
      if (!form) { return; }
      var n = draft ? draft.latlngs.length : 0;
      buttons.start.disabled = !!draft;
      buttons.edit.disabled = !!draft || !selected;
      buttons.undo.disabled = !draft || draft.mode !== "new" || n === 0;
      buttons.save.disabled = !draft || n < 3;
      buttons.cancel.disabled = !draft;
      el.classList.toggle("drawing", !!(draft && draft.mode === "new"));
    }

    function vertexIcon() {
      return L.divIcon({ className: "vertex", iconSize: [22, 22], iconAnchor: [11, 11] });
    }

    function redraw() {
      if (draft.poly) { map.removeLayer(draft.poly); }
      draft.markers.forEach(function (m) { map.removeLayer(m); });
      draft.markers = [];
      draft.poly = L.polygon(draft.latlngs, { color: "#0b57d0", weight: 3, dashArray: "6 4",
                                              fillOpacity: 0.15, interactive: false }).addTo(map);
      draft.latlngs.forEach(function (ll, i) {
        var marker = L.marker(ll, { icon: vertexIcon(), draggable: true, keyboard: true,
                                    title: "顶点 " + (i + 1), autoPan: true }).addTo(map);
        marker.on("drag", function (e) {
          draft.latlngs[i] = e.target.getLatLng();
          draft.poly.setLatLngs(draft.latlngs);
        });
        draft.markers.push(marker);
      });
      setButtons();
    }

    function onMapClick(e) {
      if (!draft || draft.mode !== "new") { return; }
      draft.latlngs.push(e.latlng);
      redraw();
      say("已点 " + draft.latlngs.length + " 个顶点" + (draft.latlngs.length < 3 ? "，至少需要 3 个" : "，可以保存，也可继续点击或拖动顶点"));
    }
    map.on("click", onMapClick);

    function stop() {
      if (draft) {
        if (draft.poly) { map.removeLayer(draft.poly); }
        draft.markers.forEach(function (m) { map.removeLayer(m); });
        if (draft.hidden) { draft.hidden.setStyle({ opacity: 1, fillOpacity: FILLS[loadOf(draft.code).level] }); }
      }
      draft = null;
      setButtons();
    }

    function fields() {
      var data = new FormData(form);
      return { code: (data.get("code") || "").trim(), name: (data.get("name") || "").trim(),
               unit: data.get("unit") || "" };
    }

    if (form) {
      buttons.start.addEventListener("click", function () {
        var f = fields();
        if (!f.code || !f.name || !f.unit) {
          show("请先填写网格编码、名称并选择所属村（社区）", false);
          return;
        }
        show("", true);
        draft = { mode: "new", latlngs: [], markers: [], poly: null, code: f.code };
        setButtons();
        say("请在地图上依次点击网格的顶点");
      });
      buttons.edit.addEventListener("click", function () {
        if (!selected) { return; }
        var geom = selected.feature.geometry;
        var ring = geom.type === "Polygon" ? geom.coordinates[0] : geom.coordinates[0][0];
        if (geom.type === "MultiPolygon" && geom.coordinates.length > 1) {
          show("这个网格由多块组成，请用导入文件修改", false);
          return;
        }
        var p = selected.feature.properties;
        form.elements.code.value = p.code;
        form.elements.name.value = p.name;
        form.elements.unit.value = p.unit;
        var latlngs = ring.slice(0, ring.length - 1).map(function (c) { return L.latLng(c[1], c[0]); });
        draft = { mode: "edit", latlngs: latlngs, markers: [], poly: null, code: p.code,
                  hidden: selected.layer };
        selected.layer.setStyle({ opacity: 0.2, fillOpacity: 0.02 });
        show("", true);
        redraw();
        say("拖动顶点修改网格，然后保存");
      });
      buttons.undo.addEventListener("click", function () {
        if (draft && draft.latlngs.length) { draft.latlngs.pop(); redraw(); }
      });
      buttons.cancel.addEventListener("click", function () { stop(); show("", true); say("已取消"); });
      buttons.save.addEventListener("click", function () {
        var f = fields();
        if (!f.code || !f.name || !f.unit) {
          show("请填写网格编码、名称并选择所属村（社区）", false);
          return;
        }
        var ring = draft.latlngs.map(function (ll) { return [ll.lng, ll.lat]; });
        ring.push(ring[0]);
        buttons.save.disabled = true;
        fetch(cfg.urls.draw.replace("__CODE__", encodeURIComponent(f.code)), {
          method: "PUT", credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json",
                     "X-CSRF-Token": csrfToken() },
          body: JSON.stringify({ name: f.name, unit: f.unit,
                                 geometry: { type: "Polygon", coordinates: [ring] } })
        }).then(function (resp) {
          return resp.json().catch(function () { return {}; }).then(function (body) {
            return { status: resp.status, body: body };
          });
        }).then(function (r) {
          if (r.status === 200 || r.status === 201) {
            var p = r.body.properties || {};
            var warn = (p.warnings || []).length ? "。提示：" + p.warnings.join("；") : "";
            show((r.status === 201 ? "已新建网格 " : "已保存网格 ") + p.code + "（第 " + p.version + " 版）" + warn, true);
            stop();
            refresh();
          } else {
            show(r.body.message || ("保存失败（" + r.status + "）"), false);
            setButtons();
          }
        }).catch(function () {
          show("网络中断，未保存，请稍后再试", false);
          setButtons();
        });
      });
    }

    window.yihaoMap = map;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var screen = document.getElementById("map");
    if (screen) { mapScreen(screen); }
    var review = document.getElementById("review-map");
    if (review) { reviewMap(review); }
  });
}());
