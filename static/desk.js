// The desk: scans from the camera, a handheld scanner or the keyboard. Without this file
// the desk still works as plain forms; this adds sound, the full-screen colour flash and
// answers without a page load. Each scan goes to the API a script would use
// (POST /api/v1/scans); the node then draws its answer with the template of the plain
// form's page (templates/desk/_result.html, via POST /desk/result) and this file puts it
// in place. With it: desk-live.js (the live headcount), desk-camera.js (the camera).
// A household code (SHH1...) is first shown as the family it lists (POST
// /desk/household-preview, which reads and changes nothing); only the tap on its button
// admits them. A card of a household of two or more offers "all N of this household".
(function () {
  "use strict";
  var config = document.getElementById("desk-labels");
  if (!config) return;
  var L = JSON.parse(config.textContent);
  var state = window.shelterDesk = window.shelterDesk || {};  // read by the browser tests
  state.results = 0;
  state.lastResultAt = null;
  function fill(node, children) {
    node.textContent = "";
    children.forEach(function (child) { node.appendChild(child); });
  }

  // --- sound: a high double beep for success, a low buzz for a refusal ------------------
  function makeSound() {
    var audio = null;
    function unlock() {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!audio && Context) audio = new Context();
      if (audio && audio.state === "suspended") audio.resume();
    }
    ["pointerdown", "keydown"].forEach(function (e) {
      document.addEventListener(e, unlock, { passive: true });
    });
    return function beep(ok) {
      if (!audio) return;
      var tones = ok ? [[880, 0, 0.12], [1320, 0.15, 0.12]] : [[180, 0, 0.6]];
      tones.forEach(function (t) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.type = ok ? "sine" : "square";
        osc.frequency.value = t[0];
        gain.gain.value = 0.25;
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(audio.currentTime + t[1]); osc.stop(audio.currentTime + t[1] + t[2]);
      });
    };
  }

  // --- the result panel: the node's answer, a full-screen flash for a moment -------------
  function makePanel() {
    var panel = document.getElementById("result"), timer = null;
    if (!panel) {  // pages without one (headcount, household) get one for scans
      panel = document.createElement("section");
      panel.id = "result";
      panel.setAttribute("aria-live", "assertive");
      panel.tabIndex = -1;
      panel.hidden = true;
      document.body.appendChild(panel);
    }
    panel.addEventListener("click", function () { panel.classList.remove("flash"); });
    function flash(className, nodes) {
      panel.hidden = false;
      panel.className = className;
      panel.classList.add("flash");
      fill(panel, nodes);
      state.results += 1;
      state.lastResultAt = performance.now();
      state.lastKind = (/kind-(\S+)/.exec(className) || [])[1];
      clearTimeout(timer);
      // A family to confirm, or a card this node cannot verify, stays in front until the
      // tap (or a tap beside the button).
      if (state.lastKind !== "household" && state.lastKind !== "unverified") {
        timer = setTimeout(function () { panel.classList.remove("flash"); }, 2500);
      }
    }
    return {
      answer: function (html) {  // the <section id="result"> the node rendered
        var t = document.createElement("template");
        t.innerHTML = html;
        var fresh = t.content.querySelector("#result");
        if (fresh) flash(fresh.className, Array.prototype.slice.call(fresh.childNodes));
        return !!fresh;
      },
      message: function (text, kind) {  // when the node drew no answer: plain words
        var p = document.createElement("p");
        p.className = "headline";
        p.textContent = text;
        flash("result kind-" + (kind || "error"), [p]);
      }
    };
  }

  // --- sending a scan: the API, then the node draws its answer ----------------------------
  function makeSender(panel, beep) {
    var inFlight = {};
    function post(url, options) {
      options.method = "POST";
      options.credentials = "same-origin";
      return fetch(url, options);
    }
    function draw(answer) {  // the <section id="result"> of the plain page, for this answer
      var body = new FormData();
      body.set("csrf", config.dataset.csrf);
      body.set("answer", JSON.stringify(answer));
      return post(config.dataset.result, { body: body }).then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      }).then(function (html) {
        if (!panel.answer(html)) return Promise.reject("no panel");
      });
    }
    function inWords(answer, ok) {  // should the node not draw it: who, and what happened
      if (!ok) {
        panel.message((answer.error && answer.error.message) || L.words.unreadable);
        return;
      }
      var done = answer.outcome === "done";
      panel.message(answer.display_name + " · " +
                    (done ? L.done[answer.action] : L.outcome[answer.outcome]),
                    done ? answer.action : "same");
    }
    function refused(text) { panel.message(text); beep(false); return null; }
    function preview(code) {  // a household code: the family, and the button that admits
      if (inFlight[code]) return Promise.resolve(null);
      inFlight[code] = true;
      var body = new FormData();
      body.set("csrf", config.dataset.csrf);
      body.set("code", code);
      return post(previewUrl, { body: body }).then(function (response) {
        return response.text().then(function (html) {
          // A refusal (misread, cut off, fields to correct) comes as a red panel too.
          if (panel.answer(html)) {
            beep(response.ok);
            return response.ok;
          }
          var message = null;  // else the node's words, if it answered JSON
          try { message = JSON.parse(html).error.message; } catch (e) { /* not JSON */ }
          return refused(message || L.words.unreadable);
        }, function () { return refused(L.words.unreadable); });
      }, function () {
        return refused(L.words.offline);
      }).finally(function () { delete inFlight[code]; });
    }
    function send(fields) {  // {code, action, destination, destination_detail, household}
      var code = (fields.code || "").trim();
      if (!code || inFlight[code]) return Promise.resolve(null);
      inFlight[code] = true;
      var body = { code: code, action: fields.action || "auto",
                   destination: fields.destination || "",
                   destination_detail: fields.destination_detail || "" };
      if (fields.household) body.household = true;
      return post(config.dataset.scanApi, {
        headers: { "Content-Type": "application/json", "X-CSRF-Token": config.dataset.csrf },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(function (answer) {
          if (!answer || typeof answer !== "object") return refused(L.words.unreadable);
          return draw(answer).catch(function () { inWords(answer, response.ok); })
            .then(function () {
              beep(response.ok);
              return response.ok ? answer : null;
            });
        }, function () { return refused(L.words.unreadable); });
      }, function () {
        return refused(L.words.offline);  // nothing reached the node: nothing changed
      }).finally(function () { delete inFlight[code]; });
    }
    send.preview = preview;
    return send;
  }

  // What desk.js and the node take for a household code (household_code.looks_like).
  function householdCode(code) {
    var head = (code || "").slice(0, 8).normalize("NFKC").trim().toUpperCase();
    return head.slice(0, 3) === "SHH" && /^[0-9]$/.test(head.charAt(3));
  }
  // POST /desk/household-preview, beside the plain form's /desk/scan.
  var previewUrl = new URL("household-preview",
                           new URL(config.dataset.scanUrl, location.href)).href;

  // --- the desk's form: the chosen mode; a page with a scan target takes the code there --
  function makeScan(send) {
    var form = document.getElementById("scan-form");
    var target = document.querySelector("[data-scan-target]");  // the hand-out form
    function chosen() {
      var checked = form && form.querySelector("input[name=action]:checked");
      return checked ? checked.value : "auto";
    }
    function automatic() {  // after a check-out: the next card is "check in or out" again
      var auto = form && form.querySelector("input[name=action][value=auto]");
      if (auto && !auto.checked) {
        auto.checked = true;
        form.dispatchEvent(new Event("change"));
      }
    }
    function after(answer, whole) {
      if (answer && (answer.action === "check_out" || whole)) automatic();
      return answer;
    }
    function scan(code) {
      if (target) {
        target.value = code.trim();
        if (target.form.requestSubmit) target.form.requestSubmit();
        else target.form.submit();
        return;
      }
      if (householdCode(code)) {
        send.preview(code.trim());
        return;
      }
      var out = chosen() === "check_out";
      state.lastCode = code.trim();  // for "all N of this household"
      send({ code: code, action: chosen(),
             destination: out ? form.elements.destination.value : "",
             destination_detail: out ? form.elements.destination_detail.value : ""
      }).then(function (answer) { after(answer, false); });
    }
    // The panel's own buttons: admit the family a household code lists; all N of the
    // household of the card just scanned.
    document.addEventListener("submit", function (e) {
      var f = e.target;
      if (!f.closest || !f.closest("#result")) return;
      if (f.classList.contains("household-confirm")) {
        e.preventDefault();
        send({ code: f.elements.code.value, action: f.elements.action.value })
          .then(function (answer) { after(answer, true); });
      } else if (f.classList.contains("household-all-form")) {
        e.preventDefault();
        var button = e.submitter || f.querySelector("button[name=action]");
        send({ code: f.elements.code.value || state.lastCode, action: button.value,
               household: true,
               destination: f.elements.destination ? f.elements.destination.value : "",
               destination_detail: f.elements.destination_detail ?
                 f.elements.destination_detail.value : "" })
          .then(function (answer) { after(answer, true); });
      }
    });
    if (form) {
      var input = document.getElementById("code");
      var dest = document.getElementById("destination");
      var fine = window.matchMedia("(pointer: fine)").matches;
      var syncMode = function () { dest.hidden = chosen() !== "check_out"; };
      form.addEventListener("change", syncMode);
      syncMode();
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var code = input.value;
        input.value = "";
        scan(code);
        if (fine) input.focus();
      });
      if (fine) input.focus();
    }
    return scan;
  }

  // --- the buttons beside each member on the household page ------------------------------
  function memberButtons(send) {
    var scanUrl = new URL(config.dataset.scanUrl, location.href).href;
    document.querySelectorAll("form.member-actions").forEach(function (f) {
      // (f.action would be the buttons named "action")
      if (new URL(f.getAttribute("action") || "", location.href).href !== scanUrl) return;
      f.addEventListener("submit", function (e) {
        e.preventDefault();
        send({ code: f.elements.code.value, action: e.submitter ? e.submitter.value : "auto",
               destination: f.elements.destination ? f.elements.destination.value : "" })
          .then(function (ok) { if (ok) setTimeout(function () { location.reload(); }, 1500); });
      });
    });
  }

  // --- a handheld scanner types fast and ends with Enter: caught on any desk page --------
  function handheldScanner(scan) {
    var typed = "", lastKey = 0;
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
        return;
      }
      // When the key was pressed, not when this runs: a busy tablet handles a scanner's
      // keys late and all at once, and the pause before them is not the scanner's.
      var now = e.timeStamp || performance.now();
      // A household code is hundreds of keys long: a Bluetooth scanner may stall within
      // it, so once one has begun a longer pause is allowed before it counts as ended.
      var pause = /^SHH/i.test(typed) ? 1500 : 100;
      if (now - lastKey > pause) typed = "";
      lastKey = now;
      if (e.key === "Enter") {
        if (typed.length >= 7) {
          e.preventDefault();
          scan(typed);
        }
        typed = "";
      } else if (e.key.length === 1) {
        typed += e.key;
      }
    });
  }

  var send = makeSender(makePanel(), makeSound());
  var scan = makeScan(send);
  memberButtons(send);
  handheldScanner(scan);
  // desk-camera.js reads cards from the camera.
  document.addEventListener("shelter:card", function (e) { scan(e.detail); });
})();
