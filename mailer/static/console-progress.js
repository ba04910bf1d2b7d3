// Live progress of an edition: polls the JSON endpoint every second until the
// edition is finished, and updates the bar and counters in place.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var url = box.getAttribute("data-url");
  var bar = box.querySelector(".bar");
  var fill = box.querySelector(".bar .fill");
  var live = box.querySelector("[data-role=live]");
  // The status the page was rendered with: its buttons belong to it.
  var lastStatus = box.querySelector('[data-field="status"]').textContent.trim();

  function show(p) {
    box.querySelectorAll("[data-field]").forEach(function (el) {
      var key = el.getAttribute("data-field");
      if (!(key in p)) { return; }
      var value = p[key];
      el.textContent = (value === null || value === undefined) ? "—" : String(value);
      if (key === "status") { el.className = "status " + value; }
    });
    fill.style.width = p.percent + "%";
    bar.setAttribute("aria-valuenow", String(p.percent));
    box.setAttribute("data-status", p.status);
    if (lastStatus !== p.status) {
      // The available buttons depend on the status: fetch them again when it changes.
      refreshActions();
    }
    lastStatus = p.status;
  }

  function refreshActions() {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("#progress .actions");
        var current = box.querySelector(".actions");
        if (fresh && current) { current.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function (e) { console.log("actions refresh failed: " + e); });
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        show(p);
        if (p.final) { live.textContent = "Finished."; return; }
        live.textContent = "Updated " + new Date().toLocaleTimeString() + ".";
        window.setTimeout(tick, 1000);
      })
      .catch(function () {
        live.textContent = "Connection lost; retrying…";
        window.setTimeout(tick, 3000);
      });
  }
  window.setTimeout(tick, 1000);
}());
