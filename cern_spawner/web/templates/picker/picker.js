/* Live availability for the profile picker: polls the hub's JSON every few seconds while the page
   is visible and updates each card's text and disabled state. The form works without it. */
(function () {
  "use strict";
  var picker = document.getElementById("cern-picker");
  if (!picker) return;
  // A browser cannot point at an invalid field inside a closed <details> and would refuse the
  // submit silently: open the repository section when one of its fields is invalid.
  var binder = document.getElementById("cern-binder");
  if (binder) {
    binder.addEventListener("invalid", function () { binder.open = true; }, true);
  }
  if (!window.fetch) return;
  var form = picker.closest("form");
  var announce = document.getElementById("cern-picker-announce");
  var baseUrl = (window.jhdata && window.jhdata.base_url) || "/hub/";
  var url = baseUrl + "api/cern/availability";
  var INTERVAL_MS = 5000;

  function cards() {
    return Array.prototype.slice.call(picker.querySelectorAll(".cern-card"));
  }

  function radioOf(card) {
    return card.querySelector(".cern-radio");
  }

  function say(text) {
    // Cleared first so that the same sentence twice is announced twice.
    announce.textContent = "";
    window.setTimeout(function () { announce.textContent = text; }, 50);
  }

  function show(card, verdict) {
    var line = card.querySelector(".cern-availability");
    line.dataset.state = verdict.state;
    line.querySelector(".cern-availability-text").textContent = verdict.text;
    line.querySelector(".cern-availability-reason").textContent = verdict.disabled ? verdict.reason : "";
    var radio = radioOf(card);
    var wasChosen = radio.checked;
    // Over the user's GPU quota (rendered by the hub): stays disabled whatever the availability.
    var off = verdict.disabled || card.dataset.quotaOff === "1";
    radio.disabled = off;
    card.classList.toggle("is-disabled", off);
    card.querySelectorAll("select, input[type=text]").forEach(function (field) {
      field.disabled = off;
    });
    if (off && wasChosen) {
      // A disabled radio is not submitted, and no profile would start the default one silently.
      radio.checked = false;
      var title = card.querySelector(".cern-card-title").textContent;
      say(title + " cannot start now: " + (verdict.reason || verdict.text) + " Choose another profile.");
    }
  }

  function refresh() {
    if (document.hidden) return;
    fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-XSRFToken": (window.jhdata && window.jhdata.xsrf_token) || "" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) {
        cards().forEach(function (card) {
          var verdict = body.profiles[card.dataset.slug];
          if (verdict) show(card, verdict);
        });
      })
      .catch(function () {
        // Keep the last texts: a missed refresh is not worth alarming anyone.
      });
  }

  // Choosing an image (or typing one) chooses its profile too.
  picker.addEventListener("change", function (event) {
    var card = event.target.closest(".cern-card");
    if (card && !event.target.classList.contains("cern-radio") && !radioOf(card).disabled) {
      radioOf(card).checked = true;
    }
  });

  if (form) {
    form.addEventListener("submit", function (event) {
      if (picker.querySelector(".cern-radio:checked")) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      say("Choose a profile that can start now.");
      var first = picker.querySelector(".cern-radio:not(:disabled)");
      if (first) first.focus();
    }, true);
  }

  cards().forEach(function (card) {
    if (!card.querySelector(".cern-availability").dataset.state) {
      show(card, { state: "unknown", text: "Checking availability…", reason: "", disabled: false });
    }
  });
  refresh();
  window.setInterval(refresh, INTERVAL_MS);
  document.addEventListener("visibilitychange", refresh);
})();
