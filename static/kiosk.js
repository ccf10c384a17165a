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

  // Full-width digits (a Japanese keyboard's default) read as ASCII, hyphen-likes as "-".
  var asciiDigits = function (text) {
    return text.replace(/[\uff10-\uff19]/g, function (d) {
      return String.fromCharCode(d.charCodeAt(0) - 0xfee0);
    }).replace(/[\u30fc\uff70\uff0d\u2010-\u2015\u2212]/g, "-");
  };

  // Seven digits of a postal code fill the address from Japan Post's data on this node,
  // unless the address holds something typed (only an empty one, or one we filled).
  var postal = document.getElementById("postal_code");
  var address = document.getElementById("address");
  var filled = document.getElementById("address_filled");
  if (postal && address && filled && postal.dataset.lookup && window.fetch) {
    var asked = "";
    var lookUp = function () {
      var digits = asciiDigits(postal.value).replace(/[^0-9]/g, "");
      if (digits.length !== 7 || digits === asked) return;
      asked = digits;
      fetch(postal.dataset.lookup + "?code=" + digits, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (found) {
          if (!found || !found.address || digits !== asked) return;
          if (address.value === "" || address.value === filled.value) {
            address.value = filled.value = found.address;
          }
        })
        .catch(function () { asked = ""; });
    };
    postal.addEventListener("input", lookUp);
    postal.addEventListener("change", lookUp);
  }

  // A member added starts with the first one's family name and kana: they follow the first
  // one's while nobody changes them, and a tap on one selects it, to type over.
  var followers = document.querySelectorAll("[data-copy-of]");
  Array.prototype.forEach.call(followers, function (input) {
    var leader = document.getElementById(input.dataset.copyOf);
    if (!leader) return;
    leader.addEventListener("input", function () {
      if (input.value === input.dataset.copied) input.value = input.dataset.copied = leader.value;
    });
    input.addEventListener("focus", function () {
      if (input.value && input.value === input.dataset.copied) input.select();
    });
  });

  // The allergies box shows while 'allergy' is ticked (static/shelter.css does it, without
  // this file); once it holds something it stays, so nothing typed is hidden.
  var allergyBoxes = document.querySelectorAll(".field.allergies[data-member]");
  Array.prototype.forEach.call(allergyBoxes, function (box) {
    var text = box.querySelector("input");
    if (!text) return;
    text.addEventListener("input", function () {
      box.classList.toggle("keep", text.value !== "" || text.hasAttribute("aria-invalid"));
    });
  });

  // After a refused submission, move focus to the summary so screen readers announce it.
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
