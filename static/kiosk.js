// Kiosk behaviour. Everything works without this file; it only adds comfort.
(function () {
  "use strict";
  var print = document.getElementById("print");
  if (print) print.addEventListener("click", function () { window.print(); });

  // On the cards screen of a kiosk, finish by itself when nobody touches it.
  var done = document.getElementById("done-form");
  if (done && done.dataset.idleSeconds) {
    var limit = parseInt(done.dataset.idleSeconds, 10) * 1000;
    var timer;
    var reset = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { done.submit(); }, limit);
    };
    ["pointerdown", "keydown", "scroll"].forEach(function (e) {
      document.addEventListener(e, reset, { passive: true });
    });
    reset();
  }

  // A half-filled kiosk form left alone for five minutes is cleared for the next person.
  var form = document.getElementById("register-form");
  if (form && form.dataset.kiosk) {
    var idle;
    var arm = function () {
      clearTimeout(idle);
      idle = setTimeout(function () { window.location.replace("/kiosk"); }, 5 * 60 * 1000);
    };
    ["pointerdown", "keydown", "input"].forEach(function (e) {
      document.addEventListener(e, arm, { passive: true });
    });
    arm();
  }

  // After a refused submission, move focus to the summary so screen readers announce it.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
