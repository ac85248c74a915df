// Operator console, refreshed in place. The dashboard re-fetches its panels (server-rendered HTML: every tile,
// chart and table, for the chosen range and customer); other pages poll the JSON endpoint for queue depth and
// running builds. No library; waits while the tab is hidden; the operator can pause and resume; keeps the last
// figures (and says so) when a poll fails.
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-live-url");
  var every = Number(root.getAttribute("data-poll-seconds") || 5) * 1000;
  var status = document.getElementById("live-status");
  var panels = document.getElementById("console-panels");
  var toggle = document.getElementById("live-toggle");
  var paused = false;
  if (toggle) {
    toggle.addEventListener("click", function () {
      paused = !paused;
      toggle.textContent = paused ? "Resume live refresh" : "Pause live refresh";
      toggle.setAttribute("aria-pressed", paused ? "true" : "false");
      root.setAttribute("data-paused", paused ? "true" : "false");
      if (status) { status.textContent = paused ? "Live: paused" : "Live: resumed, refreshing every " + every / 1000 + " s"; }
    });
  }

  function td(text, className) {
    var cell = document.createElement("td");
    if (className) { cell.className = className; }
    cell.textContent = text;
    return cell;
  }

  function runningRow(build) {
    var row = document.createElement("tr");
    if (build.stale) { row.className = "stale"; }
    var id = document.createElement("td");
    if (build.url) {
      var link = document.createElement("a");
      link.href = build.url;
      link.textContent = build.label;
      id.appendChild(link);
    } else {
      id.textContent = build.label;
    }
    row.appendChild(id);
    row.appendChild(td(build.customer));
    row.appendChild(td(String(build.priority), "num"));
    row.appendChild(td(build.worker));
    row.appendChild(td(build.stage || "-"));
    var progressCell = document.createElement("td");
    var bar = document.createElement("progress");
    bar.max = 100;
    bar.value = build.progress;
    progressCell.appendChild(bar);
    var pct = document.createElement("span");
    pct.className = "num";
    pct.textContent = " " + build.progress + "%";
    progressCell.appendChild(pct);
    row.appendChild(progressCell);
    var age = td(build.heartbeat_age, "num");
    if (build.stale) {
      var badge = document.createElement("span");
      badge.className = "badge badge-stale";
      badge.textContent = "stale";
      age.appendChild(document.createTextNode(" "));
      age.appendChild(badge);
    }
    row.appendChild(age);
    return row;
  }

  function render(data) {
    if (!data.queue) { return; }
    root.querySelectorAll("[data-live]").forEach(function (node) {
      var path = node.getAttribute("data-live").split(".");
      var value = data;
      path.forEach(function (key) { value = value == null ? null : value[key]; });
      if (value != null) { node.textContent = Number(value).toLocaleString("en-US"); }
    });
    var chart = document.getElementById("queue-chart");
    if (chart) { chart.innerHTML = data.queue.chart; }  // server-rendered SVG, every label escaped there
    var body = document.getElementById("running-rows");
    if (body) {
      var rows = document.createDocumentFragment();
      data.running.forEach(function (build) { rows.appendChild(runningRow(build)); });
      if (!data.running.length) {
        var empty = document.createElement("tr");
        empty.className = "empty";
        var cell = td("No build is running.");
        cell.colSpan = 7;
        empty.appendChild(cell);
        rows.appendChild(empty);
      }
      body.replaceChildren(rows);
    }
  }

  function refreshed(at) {
    root.setAttribute("data-refreshed", at);
    if (status) { status.textContent = "Live: updated " + new Date(at).toLocaleTimeString(); }
  }

  function failed(error) {
    if (status) { status.textContent = "Live: refresh failed (" + error.message + "), retrying"; }
  }

  function pollPanels() {
    // The panels' HTML is the server's own template (escaped there), fetched from this same page.
    return fetch(panels.getAttribute("data-partial-url"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        if (response.redirected) { throw new Error("signed out"); }  // the login page, not the panels
        return response.text();
      })
      .then(function (html) {
        panels.innerHTML = html;
        refreshed(new Date().toISOString());
      });
  }

  function poll() {
    if (document.hidden || paused) { window.setTimeout(poll, every); return; }
    if (panels) {
      pollPanels().catch(failed).finally(function () { window.setTimeout(poll, every); });
      return;
    }
    fetch(url + "?limit=" + (document.getElementById("queue-chart") ? 50 : 200),
          { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        render(data);
        refreshed(data.generated_at);
      })
      .catch(failed)
      .finally(function () { window.setTimeout(poll, every); });
  }

  window.setTimeout(poll, every);
})();
