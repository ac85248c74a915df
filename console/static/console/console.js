// Operator console: refresh queue depth and running builds in place by polling the console's JSON endpoint.
// No library; pauses while the tab is hidden; keeps the last figures (and says so) when a poll fails.
(function () {
  "use strict";
  var root = document.getElementById("console");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-live-url");
  var every = Number(root.getAttribute("data-poll-seconds") || 5) * 1000;
  var status = document.getElementById("live-status");

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
      link.textContent = build.short_id;
      id.appendChild(link);
    } else {
      id.textContent = build.short_id;
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

  function poll() {
    if (document.hidden) { window.setTimeout(poll, every); return; }
    fetch(url + "?limit=" + (document.getElementById("queue-chart") ? 50 : 200),
          { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        render(data);
        root.setAttribute("data-refreshed", data.generated_at);
        if (status) { status.textContent = "Live: updated " + new Date(data.generated_at).toLocaleTimeString(); }
      })
      .catch(function (error) {
        if (status) { status.textContent = "Live: refresh failed (" + error.message + "), retrying"; }
      })
      .finally(function () { window.setTimeout(poll, every); });
  }

  window.setTimeout(poll, every);
})();
