// cueapi-lite dashboard: local times, and live updates of the regions marked data-live.
// Every page works without this script. A hidden tab sends no requests at all.
(function () {
  "use strict";
  var POLL_MS = 3000;
  var timer = null;
  var busy = false;
  var halted_ = false;
  var meta = document.querySelector('meta[name="live-version"]');
  var version = meta ? meta.getAttribute("content") : null;

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function utcText(d) {
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function relative(d) {
    var seconds = (d.getTime() - Date.now()) / 1000;
    var size = Math.abs(seconds);
    if (size < 45) { return seconds <= 0 ? "just now" : "in a few seconds"; }
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (size >= units[i][1] || units[i][0] === "min") {
        var amount = Math.round(size / units[i][1]);
        return seconds > 0 ? "in " + amount + " " + units[i][0] : amount + " " + units[i][0] + " ago";
      }
    }
    return "";
  }

  // <time datetime> in the browser's zone; the UTC instant stays on hover.
  function localize(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) { continue; }
      if (t.hasAttribute("data-relative")) {
        t.textContent = relative(d);
        t.title = d.toLocaleString() + " (" + utcText(d) + ")";
      } else {
        t.textContent = d.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
        });
        t.title = utcText(d);
      }
    }
  }

  function swap(fresh) {
    var regions = fresh.querySelectorAll("[data-live][id]");
    for (var i = 0; i < regions.length; i++) {
      var current = document.getElementById(regions[i].id);
      // Never pull a control out from under the keyboard.
      if (!current || current.contains(document.activeElement)) { continue; }
      current.replaceWith(document.importNode(regions[i], true));
    }
    localize(document);
  }

  function poll() {
    if (busy || halted_ || document.hidden || version === null) { return; }
    busy = true;
    fetch(location.href, {
      headers: { "X-Live-Version": version },
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual"
    }).then(function (response) {
      if (response.status === 204) { return null; }
      if (response.status !== 200) {  // the login ended (a redirect), or the page is gone
        halted("Live updates stopped: the login ended or this page is gone. Reload the page.");
        return null;
      }
      version = response.headers.get("X-Live-Version") || version;
      return response.text();
    }).then(function (html) {
      if (html) { swap(new DOMParser().parseFromString(html, "text/html")); }
    }).catch(function () { /* offline for a moment: try again next time */ })
      .then(function () { busy = false; });
  }

  function halted(message) {
    halted_ = true;
    stop();
    var main = document.getElementById("main");
    if (!main || document.getElementById("live-stopped")) { return; }
    var note = document.createElement("p");
    note.id = "live-stopped";
    note.className = "error";
    note.setAttribute("role", "status");
    note.textContent = message;
    main.insertBefore(note, main.firstChild);
  }

  function start() {
    if (timer === null && version !== null && !halted_) { timer = setInterval(poll, POLL_MS); }
  }

  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); } else { poll(); start(); }
  });
  setInterval(function () { if (!document.hidden) { localize(document); } }, 30000);
  localize(document);
  if (!document.hidden) { start(); }
})();
