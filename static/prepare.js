// /prepare: keep the household code on this phone. Everything works without this file (the
// form, the code, "save the image"); it adds what only the browser can do: keep the latest
// code in localStorage, and (where service workers run: https, localhost) have
// static/prepare-sw.js keep the page, so the code opens again with no network at all.
(function () {
  "use strict";
  var KEY = "shelter.householdCode";
  var storage = null;
  try {
    storage = window.localStorage;
    storage.getItem(KEY);
  } catch (e) {
    storage = null; // private mode, or storage refused: the image is the way to keep it
  }
  var byId = function (id) { return document.getElementById(id); };
  var loadedOffline = !navigator.onLine;
  // The server did not answer (see the kept code below): what needs it is refused at once.
  var serverAway = false;

  function kept() {
    if (!storage) return null;
    try {
      var value = JSON.parse(storage.getItem(KEY) || "null");
      var png = value && typeof value.png === "string" &&
        value.png.indexOf("data:image/png;base64,") === 0;
      return png && typeof value.code === "string" && Array.isArray(value.names) ? value : null;
    } catch (e) {
      return null;
    }
  }

  // The page keeps itself where the browser allows it.
  var canKeepPage = !!(storage && window.isSecureContext && "serviceWorker" in navigator);
  var worker = canKeepPage
    ? navigator.serviceWorker.register("/prepare/sw.js", { scope: "/prepare" })
    : Promise.reject(new Error("no service worker here"));
  worker.catch(function () {});

  var printButtons = [byId("print"), byId("kept-print")];
  printButtons.forEach(function (button) {
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  // The answer page: keep the new code (it replaces the one kept before).
  var made = byId("made");
  if (made && storage) {
    var names = [];
    made.querySelectorAll(".names li").forEach(function (li) { names.push(li.textContent); });
    try {
      storage.setItem(KEY, JSON.stringify({
        code: byId("code").value, png: byId("qr").src, names: names,
        made: made.dataset.made, day: made.dataset.day
      }));
      worker.then(function () { byId("kept-note").hidden = false; }, function () {});
    } catch (e) {
      // storage full or refused: the page already says "save the image"
    }
  }

  // The form page: the code this phone kept, with what can be done with it.
  // Not on the form that changes it: there the form is what the person came for.
  var section = byId("kept");
  var editing = !!document.querySelector("input[name=household_id]");
  var code = section && !editing && kept();
  var message = byId("kept-message");
  if (code) {
    byId("kept-qr").src = code.png;
    byId("kept-qr").alt = section.querySelector("h2").textContent + ": " + code.names.join(", ");
    var list = byId("kept-names");
    code.names.forEach(function (name) {
      var li = document.createElement("li");
      li.textContent = name;
      list.appendChild(li);
    });
    var time = byId("kept-made");
    time.textContent = code.day || "";
    time.setAttribute("datetime", code.made || "");
    byId("kept-code").value = code.code;
    byId("kept-save").href = code.png;
    byId("kept-save").setAttribute("download", "household-code-" +
                                   (code.day || "").replace(/[^0-9]+/g, "") + ".png");
    section.hidden = false;
    document.body.classList.add("has-code");
    if (!navigator.onLine) byId("kept-offline").hidden = false;
    else {
      // navigator.onLine says only that some network is there (a shelter's Wi-Fi with no
      // server behind it, a page this phone kept): ask the server itself. A HEAD passes
      // the service worker by, so only the network can answer it.
      fetch(location.pathname, { method: "HEAD", cache: "no-store" }).catch(function () {
        serverAway = true;
        byId("kept-offline").hidden = false;
      });
    }
    byId("kept-show").addEventListener("click", function () {
      var big = section.classList.toggle("big");
      this.setAttribute("aria-pressed", big ? "true" : "false");
    });
    var small = function () {
      if (section.classList.contains("big")) byId("kept-show").click();
    };
    byId("kept-sheet").addEventListener("click", small);
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") small();
    });
    byId("kept-delete").addEventListener("click", function () {
      if (!window.confirm(section.dataset.confirm)) return;
      storage.removeItem(KEY);
      section.hidden = true;
      document.body.classList.remove("has-code");
    });
  }
  window.addEventListener("online", function () {
    serverAway = false;
    if (code) byId("kept-offline").hidden = true;
  });
  window.addEventListener("offline", function () {
    if (code) byId("kept-offline").hidden = false;
  });

  // Making or changing a code needs the server. A page this phone kept may carry an old
  // form token: take a fresh one from the page before sending.
  function refused(form) {
    var note = byId("offline-note");
    if (form.id === "kept-edit") {
      message.textContent = note.textContent;
      return;
    }
    note.hidden = false;
    if (note.scrollIntoView) note.scrollIntoView({ block: "center" });
  }
  document.querySelectorAll("form.needs-network").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.dataset.fresh) return;
      if (!navigator.onLine || serverAway) {
        event.preventDefault();
        refused(form);
        return;
      }
      var controlled = "serviceWorker" in navigator && navigator.serviceWorker.controller;
      if (!loadedOffline && !controlled) return;
      event.preventDefault();
      var submitter = event.submitter;
      fetch("/prepare", { cache: "no-store", credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var page = new DOMParser().parseFromString(html, "text/html");
          var token = page.querySelector("input[name=csrf]");
          if (token) {
            form.querySelectorAll("input[name=csrf]").forEach(function (input) {
              input.value = token.value;
            });
          }
          form.dataset.fresh = "1";
          if (form.requestSubmit) form.requestSubmit(submitter || undefined);
          else form.submit();
        }, function () { refused(form); });
    });
  });

  // After a refused sending, move focus to the summary so screen readers announce it.
  var summary = byId("error-summary");
  if (summary) summary.focus();
})();
