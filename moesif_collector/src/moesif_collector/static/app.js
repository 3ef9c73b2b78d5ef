// moesif-collector live view. Plain JavaScript, no build step, no outside resources.
// Event data is untrusted: everything is written with textContent and DOM nodes, never parsed as HTML.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(window.location.search);
  var interval = parseInt(params.get("refresh") || document.body.dataset.refreshMs || "1000", 10);
  if (!(interval >= 100)) { interval = 1000; }
  var selectedId = null;
  var timer = null;
  var generation = 0;
  var detailGeneration = 0;

  function filters() {
    return {
      path: $("filter-path").value.trim(),
      status: $("filter-status").value,
      user: $("filter-user").value.trim()
    };
  }

  function query(obj) {
    var q = new URLSearchParams();
    Object.keys(obj).forEach(function (k) { if (obj[k]) { q.set(k, obj[k]); } });
    return q.toString();
  }

  function fmtDuration(ms) {
    return (typeof ms === "number") ? ms.toFixed(1) + " ms" : "";
  }

  function text(value) {
    return (value === null || value === undefined) ? "" : String(value);
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
  }

  function td(tr, col, value) {
    var cell = document.createElement("td");
    cell.dataset.col = col;
    cell.textContent = text(value);
    tr.appendChild(cell);
  }

  var lastCalls = null;
  var lastStats = null;

  function renderCalls(calls) {
    // Rebuild only when something changed, so a still table keeps its hover and text selection.
    var signature = JSON.stringify(calls);
    if (signature === lastCalls) { return; }
    lastCalls = signature;
    var body = $("calls-body");
    var frag = document.createDocumentFragment();
    calls.forEach(function (c) {
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
      frag.appendChild(tr);
    });
    clear(body);
    body.appendChild(frag);
    $("calls-empty").hidden = calls.length > 0;
  }

  function renderStats(s) {
    var signature = JSON.stringify(s);
    if (signature === lastStats) { return; }
    lastStats = signature;
    $("stat-calls").textContent = text(s.calls);
    $("stat-cpm").textContent = s.calls_per_minute.toFixed(1);
    $("stat-last-minute").textContent = text(s.calls_last_minute);
    $("stat-error-rate").textContent = (s.error_rate * 100).toFixed(1) + "%";
    $("stat-p50").textContent = fmtDuration(s.p50_ms) || "\u2013";
    $("stat-p95").textContent = fmtDuration(s.p95_ms) || "\u2013";
    var body = $("routes-body");
    var frag = document.createDocumentFragment();
    s.routes.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.className = "route-row";
      td(tr, "verb", r.verb);
      td(tr, "path", r.path);
      td(tr, "calls", r.calls);
      td(tr, "errors", r.errors);
      td(tr, "avg", fmtDuration(r.avg_ms));
      frag.appendChild(tr);
    });
    clear(body);
    body.appendChild(frag);
  }

  function setStatus(state, message) {
    var el = $("live-status");
    el.dataset.state = state;
    el.textContent = message;
  }

  function getJSON(url) {
    return fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": HTTP " + r.status); }
      return r.json();
    });
  }

  function refresh() {
    clearTimeout(timer);
    var mine = ++generation;
    var q = query(filters());
    var callsUrl = "/api/calls?" + query({ limit: "100" }) + (q ? "&" + q : "");
    Promise.all([getJSON(callsUrl), getJSON("/api/stats" + (q ? "?" + q : ""))]).then(function (res) {
      if (mine !== generation) { return; }
      renderCalls(res[0].calls);
      renderStats(res[1]);
      document.body.dataset.refreshCount = String((parseInt(document.body.dataset.refreshCount || "0", 10)) + 1);
      setStatus("live", "live \u00b7 updated " + new Date().toLocaleTimeString());
    }).catch(function (err) {
      if (mine !== generation) { return; }
      setStatus("error", "cannot reach the collector: " + err.message);
    }).then(function () {
      if (mine === generation) { schedule(); }
    });
  }

  function schedule() {
    clearTimeout(timer);
    if (!$("pause-toggle").checked) { timer = setTimeout(refresh, interval); }
  }

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
    var dt = document.createElement("dt");
    dt.textContent = name;
    var dd = document.createElement("dd");
    dd.textContent = text(value);
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

  function onFilterChange() {
    var q = query(filters());
    window.history.replaceState(null, "", q ? "?" + q : window.location.pathname);
    refresh();
  }

  var debounce = null;
  function onFilterInput() {
    clearTimeout(debounce);
    debounce = setTimeout(onFilterChange, 150);
  }

  $("filter-form").addEventListener("submit", function (e) { e.preventDefault(); onFilterChange(); });
  $("filter-path").addEventListener("input", onFilterInput);
  $("filter-user").addEventListener("input", onFilterInput);
  $("filter-status").addEventListener("change", onFilterChange);
  $("filter-clear").addEventListener("click", function () {
    $("filter-path").value = "";
    $("filter-user").value = "";
    $("filter-status").value = "";
    onFilterChange();
  });
  $("pause-toggle").addEventListener("change", function () {
    if ($("pause-toggle").checked) {
      clearTimeout(timer);
      setStatus("paused", "paused");
    } else {
      refresh();
    }
  });
  $("calls-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.call-row");
    if (tr) { showDetail(tr.dataset.id); }
  });
  $("detail-close").addEventListener("click", function () {
    selectedId = null;
    $("event-detail").hidden = true;
    $("event-detail").dataset.eventId = "";
    Array.prototype.forEach.call(document.querySelectorAll("tr.call-row.selected"), function (tr) {
      tr.classList.remove("selected");
    });
  });

  refresh();
})();
