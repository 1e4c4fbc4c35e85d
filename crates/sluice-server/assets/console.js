// Sluice console: progressive enhancement only. Every page works without this file.
// - counts down each <time data-expires-at> once a second;
// - listens to /ui/events and re-fetches each [data-fragment] region when access moves;
// - in the request form, offers only the durations of the chosen entitlement and checks the
//   ticket against its pattern as one types.
(function () {
  "use strict";

  function left(ms) {
    if (ms <= 0) return "ended";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return "in " + (h > 0 ? h + "h " + pad(m) + "m " : m + "m ") + pad(r) + "s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-expires-at]").forEach(function (t) {
      var ms = Date.parse(t.getAttribute("data-expires-at")) - now;
      t.textContent = left(ms);
      t.classList.toggle("soon", ms > 0 && ms < 5 * 60 * 1000);
    });
  }

  var inflight = {};
  function refresh() {
    document.querySelectorAll("[data-fragment]").forEach(function (region) {
      var url = region.getAttribute("data-fragment");
      if (inflight[url]) { inflight[url] = "again"; return; }
      inflight[url] = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/ui/sign-in"); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            // Keep what is being typed in a comment box.
            var focused = document.activeElement && region.contains(document.activeElement);
            if (!focused) { region.innerHTML = html; tick(); }
          }
        })
        .catch(function () {})
        .then(function () {
          var again = inflight[url] === "again";
          inflight[url] = false;
          if (again) refresh();
        });
    });
  }

  function listen() {
    if (!window.EventSource || !document.querySelector("[data-fragment]")) return;
    var es = new EventSource("/ui/events");
    es.addEventListener("access", refresh);
    // After a reconnect something may have been missed: fetch once.
    es.addEventListener("open", function () {
      if (es.opened) refresh();
      es.opened = true;
      document.documentElement.setAttribute("data-live", "on");
    });
  }

  function durations() {
    var ent = document.getElementById("entitlement");
    var dur = document.getElementById("duration");
    if (!ent || !dur) return;
    var sync = function () {
      var first = null;
      dur.querySelectorAll("optgroup").forEach(function (g) {
        var on = g.getAttribute("data-for") === ent.value;
        g.hidden = !on;
        g.disabled = !on;
        if (on && !first) first = g.querySelector("option");
      });
      var sel = dur.options[dur.selectedIndex];
      if (first && (!sel || sel.parentNode.disabled)) first.selected = true;
    };
    ent.addEventListener("change", sync);
    sync();
  }

  // The entitlement's ticket pattern, checked as one types (the server checks it again).
  function ticket() {
    var ent = document.getElementById("entitlement");
    var input = document.getElementById("ticket");
    var hint = document.getElementById("ticket-hint");
    if (!ent || !input || !hint) return;
    var check = function () {
      var opt = ent.options[ent.selectedIndex];
      var pattern = opt ? opt.getAttribute("data-ticket-pattern") : "";
      var re = null;
      try { re = pattern ? new RegExp(pattern) : null; } catch (e) { re = null; }
      var bad = re && input.value !== "" && !re.test(input.value);
      input.setCustomValidity(bad ? "must match " + pattern : "");
      hint.textContent = re ? (bad ? "Does not match " : "Must match ") + pattern : "";
    };
    ent.addEventListener("change", check);
    input.addEventListener("input", check);
    check();
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    durations();
    ticket();
    listen();
  });
})();
