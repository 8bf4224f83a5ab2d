// The checkout page's live status: a server-sent event stream, a polling
// fallback, the countdown, the redirect once paid, and a message to the
// embedding page. Same-origin only (the page's Content-Security-Policy).
(function () {
  "use strict";
  var root = document.documentElement;
  var id = root.getAttribute("data-id");
  var t = JSON.parse(document.getElementById("i18n").textContent);
  var state = document.getElementById("state");
  var countdown = document.getElementById("countdown");
  var FINAL = { paid: 1, paid_late: 1, mismatch: 1, expired: 1, cancelled: 1, failed: 1 };
  var last = root.getAttribute("data-status");
  var redirecting = false;

  function fill(text, p) {
    return text
      .replace("{paid}", (p.paid_amount || "") + " " + (p.paid_currency || ""))
      .replace("{expected}", p.amount + " " + p.currency);
  }

  function tell(status) {
    if (window.parent !== window) {
      window.parent.postMessage({ type: "bakong-poller.status", id: id, status: status }, "*");
    }
  }

  var paidAt = document.getElementById("paid-at");

  function when(p) {
    if ((p.status === "paid" || p.status === "paid_late") && p.paid_at) {
      var d = new Date(p.paid_at);
      paidAt.textContent = p.paid_amount + " " + p.paid_currency + " · " +
        d.toLocaleString(root.getAttribute("lang") === "km" ? "km-KH" : "en-GB");
    }
  }

  function render(p) {
    when(p);
    if (p.status !== last || !state.textContent) {
      last = p.status;
      root.setAttribute("data-status", p.status);
      state.textContent = fill(t[p.status] || p.status, p);
      tell(p.status);
    }
    var to = root.getAttribute("data-redirect");
    if (p.status === "paid" && to && !redirecting) {
      redirecting = true;
      state.textContent = t.paid + " " + t.returning;
      setTimeout(function () { window.location.assign(to); }, 3000);
    }
  }

  function tick() {
    if (last !== "pending") return;
    var left = Math.max(0, Math.floor((Date.parse(root.getAttribute("data-expires")) - Date.now()) / 1000));
    var m = Math.floor(left / 60), s = left % 60;
    countdown.textContent = t.expires_in + " " + m + ":" + (s < 10 ? "0" : "") + s;
  }
  setInterval(tick, 1000);
  tick();

  function poll() {
    fetch("/pay/" + id + "/status.json", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (p) { render(p); if (!FINAL[p.status]) setTimeout(poll, 2000); })
      .catch(function () { setTimeout(poll, 4000); });
  }

  // The embedding page learns the status at once, then each change.
  tell(last);
  if (FINAL[last]) {
    fetch("/pay/" + id + "/status.json", { cache: "no-store" })
      .then(function (r) { return r.json(); }).then(when).catch(function () {});
    return;
  }
  if (!window.EventSource) { poll(); return; }
  var es = new EventSource("/pay/" + id + "/events");
  var fails = 0;
  es.addEventListener("status", function (e) {
    fails = 0;
    var p = JSON.parse(e.data);
    render(p);
    if (FINAL[p.status]) es.close();
  });
  es.onerror = function () {
    // The browser reconnects by itself; after three failures in a row
    // (a proxy that buffers or cuts streams) the page polls instead.
    fails += 1;
    if (fails >= 3 || es.readyState === 2) { es.close(); poll(); }
  };
})();
