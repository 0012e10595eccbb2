/* Follows the hub's progress stream (Server-Sent Events) for this server: each message once, in
   order, with the time since the page opened; on success the page reloads into the server. */
(function () {
  "use strict";
  var root = document.getElementById("cern-pending");
  if (!root || !window.EventSource) return;
  var opened = Date.now();
  var log = document.getElementById("cern-log");
  var current = document.getElementById("cern-current");
  var bar = document.getElementById("cern-progress");
  var elapsedNow = document.getElementById("cern-elapsed");
  var seen = {};
  var finished = false;

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    var h = Math.floor(m / 60);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h ? h + ":" + pad(m % 60) + ":" + pad(s % 60) : m + ":" + pad(s % 60);
  }

  var ticker = window.setInterval(function () { elapsedNow.textContent = clock(Date.now() - opened); }, 1000);

  // The hub's events say what happens in plain words ("message"); the cluster's own text, if any,
  // comes as "details" and is shown folded. Events of another spawner (a raw Kubernetes event
  // only) fall back to the event's text.
  function describe(evt) {
    var raw = evt.raw_event;
    if (!evt.phase && raw && raw.message) return { text: raw.message, warning: raw.type === "Warning" };
    return { text: evt.message || "", warning: false, details: evt.details || "" };
  }

  // Plain words only: the first line of the reason, without JupyterHub's "Spawn failed:" prefix.
  function reasonOf(message) {
    var text = (message || "").replace(/^Spawn failed:\s*/, "").split("\n")[0].trim();
    if (!text || text === "Spawn failed") return "The server stopped before it was ready.";
    if (text === "Spawn cancelled") return "The start was cancelled.";
    return text;
  }

  function append(text, className, details) {
    var item = document.createElement("li");
    if (className) item.className = className;
    var time = document.createElement("time");
    time.textContent = clock(Date.now() - opened);
    var body = document.createElement("span");
    body.textContent = text;
    item.appendChild(time);
    item.appendChild(body);
    if (details) {
      // textContent only: the cluster's text is never markup here.
      var fold = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = "Details";
      var pre = document.createElement("pre");
      pre.textContent = details;
      fold.appendChild(summary);
      fold.appendChild(pre);
      item.appendChild(fold);
    }
    log.appendChild(item);
    return item;
  }

  function fail(message) {
    finished = true;
    window.clearInterval(ticker);
    var reason = reasonOf(message);
    append(reason, "is-failed");
    current.textContent = "";
    document.getElementById("cern-failed-reason").textContent = reason;
    document.getElementById("cern-failed").hidden = false;
    document.getElementById("cern-cancel").hidden = true;
  }

  var source = new EventSource(root.dataset.progressUrl);
  var lastPhase = null;
  var lastItem = null;
  source.onmessage = function (message) {
    var evt;
    try { evt = JSON.parse(message.data); } catch (e) { return; }
    // The bar never goes back (the stream starts over after a reconnect).
    if (evt.progress !== undefined) bar.value = Math.max(bar.value, evt.progress);
    if (evt.failed) {
      source.close();
      fail(evt.message);
      return;
    }
    if (evt.ready) {
      finished = true;
      source.close();
      current.textContent = "Your server is ready. Opening it…";
      window.location.reload();
      return;
    }
    var what = describe(evt);
    if (!what.text) return;
    current.textContent = what.text;
    if (evt.phase) {
      // One line per phase; a phase's later words (the minutes of a boot) update the headline,
      // and new details from the cluster replace the line's disclosure.
      if (evt.phase === lastPhase && lastItem) {
        var fold = lastItem.querySelector("details pre");
        if (what.details && fold) fold.textContent = what.details;
        else if (what.details) { lastItem.remove(); lastItem = append(what.text, "", what.details); }
        return;
      }
      if (seen["phase:" + evt.phase]) return;
      seen["phase:" + evt.phase] = true;
      lastPhase = evt.phase;
      lastItem = append(what.text, "", what.details);
      return;
    }
    // Messages without a progress value are "still waiting" reminders: shown as the current line
    // only. The stream starts over after a reconnect, so each message is logged once.
    if (evt.progress === undefined || seen[what.text]) return;
    seen[what.text] = true;
    append(what.text, what.warning ? "is-warning" : "");
  };
  source.onerror = function () {
    if (!finished) current.textContent = "Lost the connection to the hub; reconnecting…";
  };

  var cancel = document.getElementById("cern-cancel");
  var cancelStatus = document.getElementById("cern-cancel-status");
  cancel.addEventListener("click", function () {
    cancel.disabled = true;
    cancelStatus.textContent = "Cancelling…";
    fetch(root.dataset.stopUrl, {
      method: "DELETE",
      credentials: "same-origin",
      headers: { "X-XSRFToken": (window.jhdata && window.jhdata.xsrf_token) || "" },
    }).then(function (response) {
      if (!response.ok && response.status !== 202) throw new Error("HTTP " + response.status);
      cancelStatus.textContent = "Cancelled.";
      window.setTimeout(function () { window.location.href = root.dataset.spawnUrl; }, 1000);
    }).catch(function (error) {
      cancelStatus.textContent = "Could not cancel (" + error.message + "). Try again.";
      cancel.disabled = false;
    });
  });
})();
