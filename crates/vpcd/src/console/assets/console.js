// vpcd console: keeps the connection and task tables current by polling
// the console's state.json twice a second, and switches region on change.
// No framework, no build step; served from the binary.
"use strict";
(function () {
  var POLL_MS = 500;
  var body = document.body;
  var region = body.getAttribute("data-region");

  var select = document.getElementById("region-select");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }

  function setText(row, field, text) {
    var cell = row.querySelector('[data-field="' + field + '"]');
    if (cell && cell.textContent !== text) { cell.textContent = text; }
    return cell;
  }

  function apply(state) {
    state.conns.forEach(function (c) {
      var row = document.querySelector('tr[data-conn="' + c.id + '"]');
      if (!row) { return; }
      setText(row, "status", c.status);
      setText(row, "netStatus", c.netStatus);
      var h = setText(row, "health", c.health);
      if (h) { h.className = "health " + c.health; }
      setText(row, "task", c.task);
    });
    state.tasks.forEach(function (t) {
      var row = document.querySelector('tr[data-task="' + t.id + '"]');
      if (!row) { return; }
      setText(row, "status", t.status);
      setText(row, "finished", t.finished || "");
      if (t.error) { setText(row, "error", t.error); }
      if (t.status !== "running") {
        var p = row.querySelector('[data-field="progress"] progress');
        if (p && !p.hasAttribute("value")) { p.setAttribute("max", "1"); p.setAttribute("value", "1"); }
      }
    });
  }

  function poll() {
    fetch("/console/state.json?region=" + encodeURIComponent(region), {
      credentials: "same-origin", cache: "no-store"
    }).then(function (r) {
      if (r.status === 401) { window.location.assign("/console/login"); return null; }
      return r.ok ? r.json() : null;
    }).then(function (s) {
      if (s) { apply(s); }
    }).catch(function () { /* the next poll tries again */ })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  if (region && (document.getElementById("conns") || document.getElementById("tasks"))) {
    window.setTimeout(poll, POLL_MS);
  }
})();
