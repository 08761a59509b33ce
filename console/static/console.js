// Progressive enhancement only: every page works without this script.
(function () {
  "use strict";
  function words(seconds) {
    var s = Math.abs(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h === 0 && m === 0) return s + " s";
    if (h === 0) return m + " min";
    return h + " h " + String(m).padStart(2, "0") + " min";
  }
  // REQ FAULT-5: the countdowns to the arrival and repair limits keep running.
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var left = Math.round(Number(el.dataset.due) - now);
      el.textContent = left >= 0 ? words(left) + " " + el.dataset.left
                                 : el.dataset.late + " " + words(left);
      if (left < 0) {
        var clock = el.closest(".clock");
        if (clock) clock.classList.add("breached");
        var row = el.closest("tr");
        if (row) row.classList.add("breached");
      }
    });
  }
  // The check-in form can take the device's position.
  function locate() {
    document.querySelectorAll("[data-locate]").forEach(function (button) {
      if (!navigator.geolocation) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.geolocation.getCurrentPosition(function (p) {
          var form = button.closest("form");
          form.querySelector("[name=longitude]").value = p.coords.longitude.toFixed(6);
          form.querySelector("[name=latitude]").value = p.coords.latitude.toFixed(6);
        });
      });
    });
  }
  // REQ MON-1: the fleet's tiles follow the status changes as they are committed.
  function live() {
    var marker = document.querySelector("[data-live]");
    if (!marker || !window.EventSource) return;
    var source = new EventSource(marker.dataset.live);
    source.addEventListener("status", function (e) {
      var change = JSON.parse(e.data);
      document.querySelectorAll("[data-connector]").forEach(function (tile) {
        if (tile.dataset.connector !== change.connector) return;
        tile.className = "connector s" + change.cec + " changed";
        tile.querySelector(".status").textContent = change.text;
        var fault = tile.querySelector(".fault");
        if (change.fault) {
          if (!fault) {
            fault = document.createElement("span");
            fault.className = "fault";
            tile.querySelector(".status").after(" ", fault);
          }
          fault.textContent = change.fault;
        } else if (fault) {
          fault.remove();
        }
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    locate();
    live();
  });
})();
