// moesif-collector live view. Plain JavaScript, no build step, no outside resources.
// Event data is untrusted: everything is written with textContent, DOM nodes and setAttribute, never parsed as
// HTML. The view's state (tab, chart window, filters, page, sort) lives in the URL, so a view can be shared.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var initial = new URLSearchParams(window.location.search);
  var interval = parseInt(initial.get("refresh") || document.body.dataset.refreshMs || "1000", 10);
  if (!(interval >= 100)) { interval = 1000; }

  // Filters sent with every request; the text ones are typed, the exact ones come from clicks (chips).
  var TEXT_FILTERS = ["path", "status", "user", "company", "from", "to"];
  var EXACT_FILTERS = ["verb", "route", "user_id", "company_id"];
  var CHIP_LABELS = { verb: "verb", route: "route", user_id: "user", company_id: "company" };
  var VIEWS = ["calls", "routes", "users", "companies", "config"];
  var WINDOWS = ["15m", "1h", "6h", "24h"];
  var WINDOW_WORDS = { "15m": "15 minutes", "1h": "hour", "6h": "6 hours", "24h": "24 hours" };
  var STATE_KEYS = TEXT_FILTERS.concat(EXACT_FILTERS, ["view", "window", "before_id", "offset", "sort", "dir"]);

  var state = readState(initial);
  var selectedId = null;
  var timer = null;
  var generation = 0;
  var detailGeneration = 0;
  var signatures = {};
  var lastSeries = null;
  var lastTotal = 0;
  var callsPage = { first: null, last: null, more: false };

  // -- state and URL ---------------------------------------------------------------------------------------------

  function readState(params) {
    var s = {};
    STATE_KEYS.forEach(function (k) { s[k] = params.get(k) || ""; });
    if (VIEWS.indexOf(s.view) < 0) { s.view = "calls"; }
    if (WINDOWS.indexOf(s.window) < 0) { s.window = "1h"; }
    return s;
  }

  function query(obj) {
    var q = new URLSearchParams();
    Object.keys(obj).forEach(function (k) { if (obj[k]) { q.set(k, obj[k]); } });
    return q.toString();
  }

  function filterParams() {
    var f = {};
    TEXT_FILTERS.concat(EXACT_FILTERS).forEach(function (k) { f[k] = state[k]; });
    return f;
  }

  function urlState() {
    var s = {};
    STATE_KEYS.forEach(function (k) { s[k] = state[k]; });
    if (s.view === "calls") { s.view = ""; }
    if (s.window === "1h") { s.window = ""; }
    if (initial.get("refresh")) { s.refresh = initial.get("refresh"); }
    return s;
  }

  // Change the state; push a history entry for clicks (Back undoes them), replace it while typing.
  function setState(patch, push) {
    var filtersChanged = TEXT_FILTERS.concat(EXACT_FILTERS).some(function (k) {
      return k in patch && patch[k] !== state[k];
    });
    Object.keys(patch).forEach(function (k) { state[k] = patch[k]; });
    if (filtersChanged) {  // the other tabs' counts were for the old filters: shown again when visited
      ["routes", "users", "companies"].forEach(function (v) { $("tab-count-" + v).textContent = ""; });
    }
    var q = query(urlState());
    var url = q ? "?" + q : window.location.pathname;
    if (push) { window.history.pushState(null, "", url); } else { window.history.replaceState(null, "", url); }
    syncControls();
    refresh();
  }

  function syncControls() {
    ["path", "user", "company", "from", "to"].forEach(function (k) {
      var input = $("filter-" + k);
      if (input.value.trim() !== state[k] && document.activeElement !== input) { input.value = state[k]; }
    });
    $("filter-status").value = state.status;
    renderChips();
    VIEWS.forEach(function (v) {
      $("view-" + v).hidden = v !== state.view;
      var tab = $("tab-" + v);
      tab.classList.toggle("active", v === state.view);
      tab.setAttribute("aria-selected", v === state.view ? "true" : "false");
    });
    Array.prototype.forEach.call(document.querySelectorAll("#chart-window button"), function (b) {
      b.classList.toggle("active", b.dataset.window === state.window);
    });
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable th[data-sort]"), function (th) {
      var on = th.dataset.sort === currentSort();
      th.classList.toggle("sorted", on);
      th.dataset.dir = on ? currentDir() : "";
    });
  }

  function currentSort() {
    if (state.sort) { return state.sort; }
    return state.view === "routes" ? "calls" : "last_seen";
  }

  function currentDir() {
    return state.dir || (currentSort() === "id" || currentSort() === "route" || currentSort() === "verb" ? "asc" : "desc");
  }

  function renderChips() {
    var box = $("filter-chips");
    clear(box);
    EXACT_FILTERS.forEach(function (k) {
      if (!state[k]) { return; }
      var chip = el("span", "chip");
      chip.dataset.param = k;
      chip.appendChild(el("span", "chip-label", CHIP_LABELS[k]));
      chip.appendChild(document.createTextNode(" " + state[k] + " "));
      var remove = el("button", "chip-remove", "\u00d7");
      remove.type = "button";
      remove.setAttribute("aria-label", "remove the " + CHIP_LABELS[k] + " filter");
      remove.addEventListener("click", function () {
        var patch = { before_id: "", offset: "" };
        patch[k] = "";
        if (k === "route") { patch.verb = ""; }
        setState(patch, true);
      });
      chip.appendChild(remove);
      box.appendChild(chip);
    });
  }

  // -- small DOM helpers -----------------------------------------------------------------------------------------

  function text(value) {
    return (value === null || value === undefined) ? "" : String(value);
  }

  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (content !== undefined) { node.textContent = text(content); }
    return node;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function td(tr, col, value) {
    var cell = el("td", "", value);
    cell.dataset.col = col;
    tr.appendChild(cell);
    return cell;
  }

  function fmtDuration(ms) {
    return (typeof ms === "number") ? ms.toFixed(1) + " ms" : "";
  }

  function fmtPercent(share) {
    return (share * 100).toFixed(1) + "%";
  }

  function fmtCount(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : "";
  }

  function parseUtc(t) {
    return t ? Date.parse(t.replace(" ", "T") + (/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? "" : "Z")) : NaN;
  }

  function fmtTime(t) {
    return t ? String(t).replace("T", " ").slice(0, 19) : "";
  }

  function fmtAgo(t) {
    var ms = parseUtc(t);
    if (isNaN(ms)) { return fmtTime(t); }
    var s = Math.round((Date.now() - ms) / 1000);
    if (s < 0) { return fmtTime(t); }
    if (s < 60) { return s + " s ago"; }
    if (s < 3600) { return Math.floor(s / 60) + " min ago"; }
    if (s < 86400) { return Math.floor(s / 3600) + " h ago"; }
    return Math.floor(s / 86400) + " d ago";
  }

  function hhmm(ms, withSeconds) {
    var d = new Date(ms);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + (withSeconds ? ":" + pad(d.getUTCSeconds()) : "");
  }

  // Rebuild a table body only when its data changed, so a still table keeps its hover and text selection.
  function changed(key, data) {
    var signature = JSON.stringify(data);
    if (signatures[key] === signature) { return false; }
    signatures[key] = signature;
    return true;
  }

  function fill(body, rows) {
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    clear(body);
    body.appendChild(frag);
  }

  // "key: value" pairs of a metadata object, one line each; nested values as compact JSON.
  function metadataCell(tr, metadata) {
    var cell = td(tr, "metadata");
    if (!metadata || typeof metadata !== "object") { return cell; }
    var keys = Object.keys(metadata);
    keys.slice(0, 6).forEach(function (k) {
      var v = metadata[k];
      var line = el("div", "kv");
      line.appendChild(el("span", "k", k));
      line.appendChild(el("span", "v", (v !== null && typeof v === "object") ? JSON.stringify(v) : text(v)));
      cell.appendChild(line);
    });
    if (keys.length > 6) { cell.appendChild(el("div", "more", "+" + (keys.length - 6) + " more")); }
    cell.setAttribute("title", JSON.stringify(metadata, null, 2));
    return cell;
  }

  function timeCell(tr, col, t) {
    var cell = td(tr, col, t ? fmtAgo(t) : "\u2013");
    if (t) { cell.setAttribute("title", fmtTime(t) + " UTC"); }
    return cell;
  }

  // -- calls -----------------------------------------------------------------------------------------------------

  function renderCalls(data) {
    var calls = data.calls;
    callsPage.first = calls.length ? calls[0].id : null;
    callsPage.last = calls.length ? calls[calls.length - 1].id : null;
    callsPage.more = data.more;
    $("page-older").hidden = !data.more;
    $("page-newer").hidden = !state.before_id;
    $("page-newest").hidden = !state.before_id;
    var info = calls.length === 0 ? "" : (state.before_id ? "older calls, " : "newest ") + fmtCount(calls.length) +
      " of " + fmtCount(lastTotal) + " matching";
    $("page-info").textContent = info;
    if (!changed("calls", calls)) { return; }
    fill($("calls-body"), calls.map(function (c) {
      var tr = document.createElement("tr");
      var cls = (typeof c.status === "number") ? "s" + String(c.status).charAt(0) + "xx" : "snone";
      tr.className = "call-row " + cls;
      tr.id = "call-" + c.id;
      tr.dataset.id = String(c.id);
      if (String(c.id) === selectedId) { tr.classList.add("selected"); }
      td(tr, "time", c.time);
      td(tr, "verb", c.verb);
      td(tr, "path", c.path);
      td(tr, "status", c.status);
      td(tr, "duration", fmtDuration(c.duration_ms));
      td(tr, "user", c.user_id);
      td(tr, "company", c.company_id);
      return tr;
    }));
    $("calls-empty").hidden = calls.length > 0;
    $("calls-empty").textContent = anyFilter() ? "No calls match these filters." :
      "No calls yet. Point a middleware's BASE_URI at this server.";
  }

  function anyFilter() {
    return TEXT_FILTERS.concat(EXACT_FILTERS).some(function (k) { return !!state[k]; });
  }

  function renderStats(s) {
    lastTotal = s.calls;
    if (!changed("stats", s)) { return; }
    $("stat-calls").textContent = fmtCount(s.calls);
    $("stat-cpm").textContent = s.calls_per_minute.toFixed(1);
    $("stat-last-minute").textContent = fmtCount(s.calls_last_minute);
    $("stat-error-rate").textContent = fmtPercent(s.error_rate);
    $("stat-p50").textContent = fmtDuration(s.p50_ms) || "\u2013";
    $("stat-p95").textContent = fmtDuration(s.p95_ms) || "\u2013";
    $("tab-count-calls").textContent = fmtCount(s.calls);
  }

  // -- routes ----------------------------------------------------------------------------------------------------

  function renderRoutes(data) {
    $("tab-count-routes").textContent = fmtCount(data.routes.length);
    if (!changed("routes", data.routes)) { return; }
    fill($("routes-body"), data.routes.map(function (r) {
      var tr = el("tr", "route-row");
      tr.dataset.verb = text(r.verb);
      tr.dataset.route = text(r.route);
      if (r.errors > 0 && r.error_rate >= 0.05) { tr.classList.add("erroring"); }
      td(tr, "verb", r.verb);
      td(tr, "path", r.route);
      td(tr, "calls", fmtCount(r.calls));
      td(tr, "error_rate", fmtPercent(r.error_rate)).setAttribute("title", r.errors + " with status \u2265 400");
      td(tr, "p50", fmtDuration(r.p50_ms));
      td(tr, "p95", fmtDuration(r.p95_ms));
      td(tr, "avg", fmtDuration(r.avg_ms));
      return tr;
    }));
  }

  // -- users and companies ---------------------------------------------------------------------------------------

  function renderPeople(kind, data) {
    var items = data[kind];
    $("tab-count-" + kind).textContent = fmtCount(data.total);
    var offset = data.offset;
    $(kind + "-info").textContent = data.total ? (offset + 1) + "\u2013" + (offset + items.length) + " of " +
      fmtCount(data.total) : "";
    document.querySelector('.prev[data-for="' + kind + '"]').hidden = offset === 0;
    document.querySelector('.next[data-for="' + kind + '"]').hidden = offset + items.length >= data.total;
    $(kind + "-empty").hidden = items.length > 0;
    $(kind + "-empty").textContent = anyFilter() ? "None with calls matching these filters." :
      (kind === "users" ? "No users yet: send profiles with update_user, or calls with a user id." :
        "No companies yet: send profiles with update_company, or calls with a company id.");
    if (!changed(kind, items)) { return; }
    fill($(kind + "-body"), items.map(function (p) {
      var tr = el("tr", "person-row");
      tr.dataset.id = text(p.id);
      var profile = p.profile || {};
      var idCell = td(tr, "id", p.id);
      if (!p.profile) { idCell.appendChild(el("span", "badge", "no profile")); }
      if (kind === "users") {
        td(tr, "company", profile.company_id);
      } else {
        td(tr, "domain", profile.company_domain);
      }
      metadataCell(tr, profile.metadata);
      if (kind === "companies") {
        var subs = td(tr, "subscriptions");
        (p.subscriptions || []).forEach(function (s) {
          var pill = el("div", "sub");
          pill.appendChild(el("span", "sub-id", s.subscription_id));
          pill.appendChild(el("span", "sub-status " + (s.status === "active" ? "active" : ""), s.status));
          var plan = s.metadata && (s.metadata.plan || s.metadata.plan_name);
          if (plan) { pill.appendChild(el("span", "sub-plan", plan)); }
          if (s.current_period_end) { pill.appendChild(el("span", "sub-until", "until " + fmtTime(s.current_period_end))); }
          subs.appendChild(pill);
        });
        td(tr, "users", fmtCount(p.users));
      }
      timeCell(tr, "first_seen", p.first_seen);
      timeCell(tr, "last_seen", p.last_seen);
      td(tr, "calls", fmtCount(p.calls));
      var errors = td(tr, "errors", fmtCount(p.errors));
      if (p.errors > 0) { errors.classList.add("has-errors"); }
      return tr;
    }));
  }

  // -- config ----------------------------------------------------------------------------------------------------

  function table(headers, rows) {
    var t = el("table", "mini");
    var head = document.createElement("thead");
    var htr = document.createElement("tr");
    headers.forEach(function (h) { htr.appendChild(el("th", "", h)); });
    head.appendChild(htr);
    t.appendChild(head);
    var body = document.createElement("tbody");
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c) { tr.appendChild(el("td", "", c)); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  function conditions(entry) {
    var list = (entry && entry.conditions) || [];
    return list.map(function (c) { return text(c.path) + " ~ " + text(c.value); }).join(" and ") || "every call";
  }

  function section(box, title, node) {
    box.appendChild(el("h3", "", title));
    box.appendChild(node);
  }

  function rateRows(map) {
    return Object.keys(map || {}).map(function (k) { return [k, text(map[k]) + "%"]; });
  }

  function renderConfig(data) {
    if (!changed("config", data)) { return; }
    var config = data.config.value || {};
    $("config-file").textContent = data.config.path;
    $("config-error").hidden = !data.config.error;
    $("config-error").textContent = text(data.config.error);
    $("config-raw").textContent = JSON.stringify(data.config.value, null, 2);
    var box = $("config-body");
    clear(box);
    var rate = el("p", "big-rate");
    rate.appendChild(el("span", "value", (config.sample_rate === undefined ? 100 : config.sample_rate) + "%"));
    rate.appendChild(el("span", "label", " of calls are sent (sample_rate)"));
    box.appendChild(rate);
    var users = rateRows(config.user_sample_rate);
    var companies = rateRows(config.company_sample_rate);
    var regex = (config.regex_config || []).map(function (e) { return [conditions(e), text(e.sample_rate) + "%"]; });
    if (regex.length) { section(box, "by request (regex_config, first match wins)", table(["conditions", "rate"], regex)); }
    if (users.length) { section(box, "by user", table(["user", "rate"], users)); }
    if (companies.length) { section(box, "by company", table(["company", "rate"], companies)); }
    if (!regex.length && !users.length && !companies.length) {
      box.appendChild(el("p", "muted", "No per-request, per-user or per-company rates."));
    }

    var rules = Array.isArray(data.rules.value) ? data.rules.value : [];
    $("rules-file").textContent = data.rules.path;
    $("rules-error").hidden = !data.rules.error;
    $("rules-error").textContent = text(data.rules.error);
    $("rules-raw").textContent = JSON.stringify(data.rules.value, null, 2);
    var rbox = $("rules-body");
    clear(rbox);
    if (!rules.length) {
      rbox.appendChild(el("p", "muted", "No governance rules: every call reaches the app."));
      return;
    }
    var cohorts = function (kind, id) {
      var map = config[kind + "_rules"] || {};
      return Object.keys(map).filter(function (entity) {
        return (map[entity] || []).some(function (m) { return m && m.rules === id; });
      }).length;
    };
    rbox.appendChild(table(["id", "name", "type", "action", "applies to", "when", "answer"], rules.map(function (r) {
      var response = r.response || {};
      var who = r.type === "user" || r.type === "company" ?
        (r.applied_to === "not_matching" ? "all but " : "") + cohorts(r.type, r._id) + " " + r.type + "(s)" +
        (r.applied_to_unidentified ? ", and unidentified" : "") : "every call";
      var when = (r.regex_config || []).map(conditions).join(" or ") || "always";
      return [r._id, r.name, r.type, r.block ? "block" : "add headers", who, when,
        r.block ? text(response.status) : Object.keys(response.headers || {}).join(", ")];
    })));
  }

  // -- the chart -------------------------------------------------------------------------------------------------

  function svg(tag, attrs, parent, className) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (className) { node.setAttribute("class", className); }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  // The top of an axis with 4 gridlines at round values (1, 2, 2.5 or 5 times a power of ten apart).
  function niceMax(v) {
    if (!(v > 0)) { return 4; }
    var tick = v / 4;
    var p = Math.pow(10, Math.floor(Math.log10(tick)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= tick) { return 4 * steps[i] * p; } }
    return 40 * p;
  }

  function fmtAxis(v) {
    return v >= 1000 ? (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k" : String(Math.round(v * 10) / 10);
  }

  function drawChart(series) {
    lastSeries = series;
    var box = $("chart");
    var width = Math.max(box.clientWidth, 320);
    var height = 230;
    var m = { left: 48, right: 56, top: 24, bottom: 26 };
    var w = width - m.left - m.right;
    var h = height - m.top - m.bottom;
    var buckets = series.buckets;
    var n = buckets.length;
    var maxRate = niceMax(Math.max.apply(null, buckets.map(function (b) { return b.calls_per_minute; })));
    var maxP95 = niceMax(Math.max.apply(null, buckets.map(function (b) { return b.p95_ms || 0; })));
    var slot = w / n;
    var barW = Math.max(1, slot * 0.72);
    var y = function (v) { return m.top + h - (v / maxRate) * h; };
    var yp = function (v) { return m.top + h - (v / maxP95) * h; };
    var root = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img" });
    root.setAttribute("aria-label", "calls per minute, 4xx, 5xx and p95 latency over the last " +
      WINDOW_WORDS[series.window]);
    var grid = svg("g", {}, root, "grid");
    for (var i = 0; i <= 4; i++) {
      var gy = m.top + h - (i / 4) * h;
      svg("line", { x1: m.left, x2: m.left + w, y1: gy, y2: gy }, grid);
      svg("text", { x: m.left - 6, y: gy + 4, "text-anchor": "end" }, grid, "axis").textContent = fmtAxis(maxRate * i / 4);
      svg("text", { x: m.left + w + 6, y: gy + 4 }, grid, "axis p95-axis").textContent = fmtAxis(maxP95 * i / 4) + " ms";
    }
    svg("text", { x: 4, y: 10 }, grid, "axis").textContent = "calls/min";
    svg("text", { x: m.left + w + 6, y: 10 }, grid, "axis p95-axis").textContent = "p95";
    var start = parseUtc(series.start);
    var step = series.step_seconds * 1000;
    var labelEvery = Math.ceil(n / Math.max(2, Math.floor(w / 90)));
    for (var j = 0; j < n; j += labelEvery) {
      svg("text", { x: m.left + j * slot, y: height - 8 }, grid, "axis").textContent = hhmm(start + j * step, step < 60000);
    }
    svg("text", { x: m.left + w, y: height - 8, "text-anchor": "end" }, grid, "axis").textContent = "UTC";

    // The selected time range (the from/to filters), when it overlaps the window.
    var from = parseUtc(state.from);
    var to = parseUtc(state.to);
    if (!isNaN(from) || !isNaN(to)) {
      var a = Math.max(isNaN(from) ? start : from, start);
      var b = Math.min(isNaN(to) ? start + n * step : to, start + n * step);
      if (b > a) {
        svg("rect", { x: m.left + (a - start) / step * slot, y: m.top, width: Math.max(2, (b - a) / step * slot), height: h },
          root, "selection");
      }
    }

    var bars = svg("g", {}, root, "bars");
    var points = [];
    buckets.forEach(function (bk, k) {
      var x = m.left + k * slot + (slot - barW) / 2;
      var ok = bk.calls_per_minute - bk.s4xx_per_minute - bk.s5xx_per_minute;
      var top = y(0);
      [[ok, "bar-ok"], [bk.s4xx_per_minute, "bar-4xx"], [bk.s5xx_per_minute, "bar-5xx"]].forEach(function (part) {
        if (part[0] <= 0) { return; }
        var hh = y(0) - y(part[0]);
        var r = svg("rect", { x: x, y: top - hh, width: barW, height: Math.max(hh, 1) }, bars, "bar " + part[1]);
        r.dataset.start = bk.start;
        top -= hh;
      });
      if (bk.p95_ms !== null) { points.push([m.left + k * slot + slot / 2, yp(bk.p95_ms), k]); }
    });
    var line = svg("g", {}, root, "p95");
    line.id = "chart-p95";
    if (points.length > 1) {
      var d = points.map(function (p, idx) {
        var gap = idx > 0 && p[2] - points[idx - 1][2] > 1;
        return (idx === 0 || gap ? "M" : "L") + p[0].toFixed(1) + " " + p[1].toFixed(1);
      }).join(" ");
      svg("path", { d: d }, line, "p95-line");
    }
    points.forEach(function (p) { svg("circle", { cx: p[0], cy: p[1], r: 2.5 }, line, "p95-point"); });

    // Hover targets: one per bucket, full height; a click filters the calls to that bucket.
    var hits = svg("g", {}, root, "hits");
    buckets.forEach(function (bk, k) {
      var hit = svg("rect", { x: m.left + k * slot, y: m.top, width: slot, height: h }, hits, "hit");
      hit.dataset.index = String(k);
      var t = svg("title", {}, hit);
      t.textContent = describeBucket(bk, start + k * step, step);
    });
    if (series.calls === 0) {
      var note = svg("text", { x: m.left + w / 2, y: m.top + h / 2, "text-anchor": "middle" }, root, "empty-note");
      note.textContent = lastTotal ? "No calls in the last " + WINDOW_WORDS[series.window] +
        " (request times); the " + fmtCount(lastTotal) + " stored are older: try a longer window." :
        "No calls in the last " + WINDOW_WORDS[series.window] + ".";
    }
    clear(box);
    box.appendChild(root);
    box.dataset.points = String(points.length);
    box.dataset.calls = String(series.calls);
  }

  function describeBucket(bk, begin, step) {
    var words = hhmm(begin, step < 60000) + "\u2013" + hhmm(begin + step, step < 60000) + " UTC: " +
      fmtCount(bk.calls) + " call" + (bk.calls === 1 ? "" : "s");
    if (bk.calls) {
      words += " (" + bk.calls_per_minute.toFixed(1) + "/min), 4xx " + bk.s4xx + ", 5xx " + bk.s5xx;
      if (bk.p95_ms !== null) { words += ", p95 " + fmtDuration(bk.p95_ms); }
    }
    return words;
  }

  // -- polling ---------------------------------------------------------------------------------------------------

  function setStatus(s, message) {
    var node = $("live-status");
    node.dataset.state = s;
    node.textContent = message;
  }

  function getJSON(url) {
    return fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" }).then(function (r) {
      if (!r.ok) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          throw new Error(body.message || url + ": HTTP " + r.status);
        });
      }
      return r.json();
    });
  }

  function withFilters(path, extra) {
    var q = query(Object.assign(filterParams(), extra || {}));
    return path + (q ? "?" + q : "");
  }

  function viewRequest() {
    var sort = { sort: state.sort, dir: state.dir };
    if (state.view === "calls") { return withFilters("/api/calls", { limit: "100", before_id: state.before_id }); }
    if (state.view === "routes") { return withFilters("/api/routes", sort); }
    if (state.view === "users" || state.view === "companies") {
      return withFilters("/api/" + state.view, Object.assign({ offset: state.offset }, sort));
    }
    return "/api/config";
  }

  function refresh() {
    clearTimeout(timer);
    var mine = ++generation;
    var view = state.view;
    Promise.all([
      getJSON(withFilters("/api/stats", { routes: "0" })),
      getJSON(withFilters("/api/timeseries", { window: state.window })),
      getJSON(viewRequest())
    ]).then(function (res) {
      if (mine !== generation) { return; }
      renderStats(res[0]);
      drawChart(res[1]);
      if (view === "calls") { renderCalls(res[2]); }
      if (view === "routes") { renderRoutes(res[2]); }
      if (view === "users" || view === "companies") { renderPeople(view, res[2]); }
      if (view === "config") { renderConfig(res[2]); }
      document.body.dataset.refreshCount = String((parseInt(document.body.dataset.refreshCount || "0", 10)) + 1);
      setStatus("live", "live \u00b7 updated " + new Date().toLocaleTimeString());
    }).catch(function (err) {
      if (mine !== generation) { return; }
      setStatus("error", "cannot load: " + err.message);
    }).then(function () {
      if (mine === generation) { schedule(); }
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (!$("pause-toggle").checked) { timer = setTimeout(refresh, interval); }
  }

  // -- the detail panel ------------------------------------------------------------------------------------------

  function headerRows(tbody, headers) {
    clear(tbody);
    Object.keys(headers).forEach(function (name) {
      var tr = document.createElement("tr");
      td(tr, "name", name);
      td(tr, "value", headers[name]);
      tbody.appendChild(tr);
    });
  }

  function metaRow(dl, name, value) {
    var dt = el("dt", "", name);
    var dd = el("dd", "", value);
    dd.dataset.field = name;
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function showDetail(id) {
    selectedId = String(id);
    Array.prototype.forEach.call(document.querySelectorAll("tr.call-row"), function (tr) {
      tr.classList.toggle("selected", tr.dataset.id === selectedId);
    });
    var mine = ++detailGeneration;
    getJSON("/api/calls/" + encodeURIComponent(selectedId)).then(function (d) {
      if (mine !== detailGeneration) { return; }
      var panel = $("event-detail");
      $("detail-title").textContent = text(d.verb) + " " + text(d.path) + " \u2192 " + text(d.status);
      var dl = $("detail-meta");
      clear(dl);
      metaRow(dl, "id", d.id);
      metaRow(dl, "uri", d.uri);
      metaRow(dl, "route", d.route);
      metaRow(dl, "time", d.time);
      metaRow(dl, "received", d.received_at);
      metaRow(dl, "duration", fmtDuration(d.duration_ms));
      metaRow(dl, "user", d.user_id);
      metaRow(dl, "company", d.company_id);
      metaRow(dl, "direction", d.direction);
      headerRows($("detail-request-headers"), d.request.headers);
      headerRows($("detail-response-headers"), d.response.headers);
      $("detail-request-body").textContent = d.request.body.text;
      $("detail-request-body").dataset.kind = d.request.body.kind;
      $("detail-request-body-note").textContent = d.request.body.note;
      $("detail-response-body").textContent = d.response.body.text;
      $("detail-response-body").dataset.kind = d.response.body.kind;
      $("detail-response-body-note").textContent = d.response.body.note;
      $("detail-raw").textContent = JSON.stringify(d.event, null, 2);
      panel.dataset.eventId = String(d.id);
      panel.hidden = false;
    }).catch(function (err) {
      setStatus("error", "cannot load call " + selectedId + ": " + err.message);
    });
  }

  function closeDetail() {
    selectedId = null;
    $("event-detail").hidden = true;
    $("event-detail").dataset.eventId = "";
    Array.prototype.forEach.call(document.querySelectorAll("tr.call-row.selected"), function (tr) {
      tr.classList.remove("selected");
    });
  }

  // -- wiring ----------------------------------------------------------------------------------------------------

  function typedFilters() {
    return {
      path: $("filter-path").value.trim(),
      status: $("filter-status").value,
      user: $("filter-user").value.trim(),
      company: $("filter-company").value.trim(),
      from: $("filter-from").value.trim(),
      to: $("filter-to").value.trim(),
      before_id: "",
      offset: ""
    };
  }

  var debounce = null;
  function onFilterInput() {
    clearTimeout(debounce);
    debounce = setTimeout(function () { setState(typedFilters(), false); }, 150);
  }

  $("filter-form").addEventListener("submit", function (e) { e.preventDefault(); setState(typedFilters(), true); });
  ["path", "user", "company"].forEach(function (k) { $("filter-" + k).addEventListener("input", onFilterInput); });
  ["from", "to"].forEach(function (k) {
    $("filter-" + k).addEventListener("change", function () { setState(typedFilters(), true); });
  });
  $("filter-status").addEventListener("change", function () { setState(typedFilters(), true); });
  $("filter-clear").addEventListener("click", function () {
    var patch = { before_id: "", offset: "" };
    TEXT_FILTERS.concat(EXACT_FILTERS).forEach(function (k) { patch[k] = ""; });
    ["path", "user", "company", "from", "to"].forEach(function (k) { $("filter-" + k).value = ""; });
    setState(patch, true);
  });
  $("pause-toggle").addEventListener("change", function () {
    if ($("pause-toggle").checked) {
      clearTimeout(timer);
      setStatus("paused", "paused");
    } else {
      refresh();
    }
  });
  $("tabs").addEventListener("click", function (e) {
    var tab = e.target.closest("button[data-view]");
    if (tab && tab.dataset.view !== state.view) { setState({ view: tab.dataset.view, sort: "", dir: "", offset: "" }, true); }
  });
  $("chart-window").addEventListener("click", function (e) {
    var b = e.target.closest("button[data-window]");
    if (b) { setState({ window: b.dataset.window }, true); }
  });
  $("chart").addEventListener("mouseover", function (e) {
    var hit = e.target.closest("rect.hit");
    if (hit && lastSeries) {
      var k = parseInt(hit.dataset.index, 10);
      var step = lastSeries.step_seconds * 1000;
      $("chart-readout").textContent = describeBucket(lastSeries.buckets[k], parseUtc(lastSeries.start) + k * step, step);
    }
  });
  $("chart").addEventListener("mouseleave", function () { $("chart-readout").textContent = ""; });
  $("chart").addEventListener("click", function (e) {
    var hit = e.target.closest("rect.hit");
    if (!hit || !lastSeries) { return; }
    var k = parseInt(hit.dataset.index, 10);
    var begin = lastSeries.buckets[k].start;
    var end = k + 1 < lastSeries.buckets.length ? lastSeries.buckets[k + 1].start : lastSeries.end;
    setState({ from: begin, to: end, view: "calls", before_id: "" }, true);
  });
  $("calls-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.call-row");
    if (tr) { showDetail(tr.dataset.id); }
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("routes-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.route-row");
    if (tr) { setState({ route: tr.dataset.route, verb: tr.dataset.verb, view: "calls", before_id: "", sort: "", dir: "" }, true); }
  });
  $("users-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.person-row");
    if (tr) { setState({ user_id: tr.dataset.id, view: "calls", before_id: "", sort: "", dir: "", offset: "" }, true); }
  });
  $("companies-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.person-row");
    if (tr) { setState({ company_id: tr.dataset.id, view: "calls", before_id: "", sort: "", dir: "", offset: "" }, true); }
  });
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable thead"), function (head) {
    head.addEventListener("click", function (e) {
      var th = e.target.closest("th[data-sort]");
      if (!th) { return; }
      var same = th.dataset.sort === currentSort();
      var dir = same ? (currentDir() === "desc" ? "asc" : "desc") :
        (["id", "route", "verb"].indexOf(th.dataset.sort) >= 0 ? "asc" : "desc");
      setState({ sort: th.dataset.sort, dir: dir, offset: "" }, true);
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".pager .prev, .pager .next"), function (b) {
    b.addEventListener("click", function () {
      var offset = parseInt(state.offset || "0", 10) + (b.classList.contains("next") ? 100 : -100);
      setState({ offset: offset > 0 ? String(offset) : "" }, true);
    });
  });
  $("page-older").addEventListener("click", function () {
    if (callsPage.last !== null) { setState({ before_id: String(callsPage.last) }, true); }
  });
  $("page-newest").addEventListener("click", function () { setState({ before_id: "" }, true); });
  $("page-newer").addEventListener("click", function () {
    if (callsPage.first === null) { setState({ before_id: "" }, true); return; }
    // The 100 calls just newer than this page: if they are the newest, go back to the live first page.
    getJSON(withFilters("/api/calls", { limit: "100", after_id: String(callsPage.first), order: "asc" })).then(function (d) {
      var ids = d.calls.map(function (c) { return c.id; });
      setState({ before_id: d.more && ids.length ? String(Math.max.apply(null, ids) + 1) : "" }, true);
    }).catch(function (err) { setStatus("error", err.message); });
  });
  window.addEventListener("popstate", function () {
    state = readState(new URLSearchParams(window.location.search));
    syncControls();
    refresh();
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (lastSeries) { drawChart(lastSeries); } }, 100);
  });

  syncControls();
  refresh();
})();
