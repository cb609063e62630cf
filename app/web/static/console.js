// Sentinel-NPS console: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Queue rows: a click anywhere on a row opens the alert (the subject link stays the
  // keyboard and screen-reader path).
  document.querySelectorAll("tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (event) {
      if (event.target.closest("a, button, input, select, textarea, label")) return;
      if (window.getSelection && String(window.getSelection())) return;
      window.location.assign(row.getAttribute("data-href"));
    });
  });

  // Filters apply as soon as a choice changes (the Apply button remains for no-script use).
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.addEventListener("change", function (event) {
      if (event.target.matches("select")) form.requestSubmit ? form.requestSubmit() : form.submit();
    });
  });

  // Search: the similarity threshold only matters for similarity searches.
  var threshold = document.getElementById("threshold");
  if (threshold) {
    var sync = function () {
      var mode = document.querySelector("input[name=mode]:checked");
      threshold.disabled = !mode || mode.value !== "similarity";
    };
    document.querySelectorAll("input[name=mode]").forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  }

  // Action buttons: prevent a double submit while the page reloads.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) window.setTimeout(function () { button.disabled = true; }, 0);
    });
  });
})();
