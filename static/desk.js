// The desk: scans from the camera, a handheld scanner or the keyboard; live headcount.
// Without this file the desk still works as plain forms; this adds the camera, sound,
// the full-screen colour flash and live updates.
(function () {
  "use strict";
  var config = document.getElementById("desk-labels");
  if (!config) return;
  var L = JSON.parse(config.textContent);
  var api = config.dataset.scanApi, csrf = config.dataset.csrf;
  var wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  function socketUrl(route) {  // always this page's own host and scheme
    return wsBase + new URL(route, location.href).pathname;
  }
  var state = window.shelterDesk = { results: 0, lastResultAt: null, firstFrameAt: null,
                                     framesSent: 0 };

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  }
  function japanTime(iso, seconds) {  // the shelter's clock, whatever the tablet's zone
    var options = { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Tokyo" };
    if (seconds) options.second = "2-digit";
    try { return new Date(iso).toLocaleTimeString("ja-JP", options); }
    catch (e) { return iso.slice(11, seconds ? 19 : 16); }
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // --- sound: a high double beep for success, a low buzz for a refusal -----------------
  var audio = null;
  function unlockAudio() {
    if (!audio && (window.AudioContext || window.webkitAudioContext)) {
      audio = new (window.AudioContext || window.webkitAudioContext)();
    }
    if (audio && audio.state === "suspended") audio.resume();
  }
  ["pointerdown", "keydown"].forEach(function (e) {
    document.addEventListener(e, unlockAudio, { passive: true });
  });
  function beep(ok) {
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
  }

  // --- showing a result: the panel turns into a full-screen flash for a moment --------
  var panel = document.getElementById("result");
  if (!panel) {
    panel = el("section", "result kind-idle");
    panel.id = "result";
    panel.setAttribute("aria-live", "assertive");
    panel.tabIndex = -1;
    panel.hidden = true;
    document.body.appendChild(panel);
  }
  var flashTimer = null;
  function show(kind, headline, body) {
    panel.hidden = false;
    panel.textContent = "";
    panel.className = "result kind-" + kind + " flash";
    panel.appendChild(el("p", "headline", headline));
    (body || []).forEach(function (node) { panel.appendChild(node); });
    state.results += 1;
    state.lastResultAt = performance.now();
    state.lastKind = kind;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { panel.classList.remove("flash"); }, 2500);
  }
  panel.addEventListener("click", function () { panel.classList.remove("flash"); });

  function showResult(r) {
    var kind = r.outcome === "done" ? r.action : "same";
    var headline = r.outcome === "done" ? L.done[r.action] : L.outcome[r.outcome];
    var body = [];
    var who = el("p", "who", r.display_name);
    if (r.age !== null && r.age !== undefined) {
      who.appendChild(el("span", "age", " (" + format(L.words.age, { n: r.age }) + ")"));
    }
    body.push(who);
    var status = L.status[r.presence.status] || r.presence.status;
    if (r.presence.destination) {
      status += " → " + (L.destinations[r.presence.destination] || "") + " " +
        (r.presence.destination_detail || "");
    }
    body.push(el("p", "status", status));
    if (r.flags.length) {
      var flags = el("ul", "flags");
      r.flags.forEach(function (f) { flags.appendChild(el("li", "flag flag-" + f, L.flags[f])); });
      body.push(flags);
    }
    if (r.provisional) {
      body.push(el("p", "note", format(L.words.provisional, { shelter: r.registered_shelter })));
    }
    if (!r.card_verified) body.push(el("p", "note", L.words.unverified));
    if (r.household.length > 1) {
      var line = el("p", "household-line", L.words.household + ": ");
      r.household.forEach(function (m) {
        line.appendChild(el("span", "member status-" + m.status,
                            m.display_name + " · " + (L.status[m.status] || m.status)));
      });
      body.push(line);
    }
    show(kind, headline, body);
    beep(true);
  }

  function showError(message) {
    show("error", message);
    beep(false);
  }

  // --- sending a scan: the same API a script would use --------------------------------
  var inFlight = {};
  function submitScan(code, action, destination, detail) {
    code = (code || "").trim();
    if (!code || inFlight[code]) return Promise.resolve(null);
    inFlight[code] = true;
    return fetch(api, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ code: code, action: action || "auto",
                             destination: destination || "", destination_detail: detail || "" })
    }).then(function (response) {
      return response.json().then(function (data) {
        if (response.ok) showResult(data);
        else showError((data.error && data.error.message) || L.words.unreadable);
        return data;
      }, function () { showError(L.words.unreadable); });
    }, function () {
      showError(L.words.offline);
    }).finally(function () { delete inFlight[code]; });
  }

  var form = document.getElementById("scan-form");
  var codeInput = document.getElementById("code");
  function chosenAction() {
    var checked = form && form.querySelector("input[name=action]:checked");
    return checked ? checked.value : "auto";
  }
  function destination() {
    return [form ? form.elements.destination.value : "",
            form ? form.elements.destination_detail.value : ""];
  }
  // A page with a scan target (the hand-out form) takes the code into that field and
  // submits its form; only desk pages turn a scan into check-in or out.
  var scanTarget = document.querySelector("[data-scan-target]");
  function scanWithMode(code) {
    if (scanTarget) {
      scanTarget.value = code.trim();
      if (scanTarget.form.requestSubmit) scanTarget.form.requestSubmit();
      else scanTarget.form.submit();
      return Promise.resolve(null);
    }
    var d = chosenAction() === "check_out" ? destination() : ["", ""];
    return submitScan(code, chosenAction(), d[0], d[1]);
  }
  if (form) {
    var dest = document.getElementById("destination");
    var syncMode = function () { dest.hidden = chosenAction() !== "check_out"; };
    form.addEventListener("change", syncMode);
    syncMode();
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var code = codeInput.value;
      codeInput.value = "";
      scanWithMode(code);
      if (window.matchMedia("(pointer: fine)").matches) codeInput.focus();
    });
    if (window.matchMedia("(pointer: fine)").matches) codeInput.focus();
  }

  // Buttons beside each member on the household page.
  document.querySelectorAll("form.member-actions").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var action = e.submitter ? e.submitter.value : "auto";
      submitScan(f.elements.code.value, action, f.elements.destination &&
                 f.elements.destination.value, "").then(function (data) {
        if (data && !data.error) setTimeout(function () { location.reload(); }, 1500);
      });
    });
  });

  // --- a handheld scanner types fast and ends with Enter: caught on any desk page ------
  var typed = "", lastKey = 0;
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) {
      return;
    }
    var now = performance.now();
    if (now - lastKey > 100) typed = "";
    lastKey = now;
    if (e.key === "Enter") {
      if (typed.length >= 7) {
        e.preventDefault();
        scanWithMode(typed);
      }
      typed = "";
    } else if (e.key.length === 1) {
      typed += e.key;
    }
  });

  // --- live numbers over a websocket, reconnecting with back-off ----------------------
  var connection = document.getElementById("connection");
  function applyState(s) {
    var h = s.headcount;
    document.querySelectorAll("[data-count]").forEach(function (node) {
      var v = h[node.dataset.count];
      if (v !== undefined) node.textContent = v;
    });
    document.querySelectorAll("[data-need]").forEach(function (node) {
      node.textContent = h.by_need[node.dataset.need];
    });
    document.querySelectorAll("[data-age]").forEach(function (node) {
      node.textContent = h.by_age[node.dataset.age];
    });
    document.querySelectorAll("[data-crowding]").forEach(function (node) {
      node.textContent = L.crowding[h.crowding];
      node.parentNode.className = "count crowding crowding-" + h.crowding;
    });
    document.querySelectorAll("[data-as-of]").forEach(function (node) {
      node.textContent = japanTime(h.as_of, true);
    });
    var syncLine = document.querySelector("[data-sync]");
    if (syncLine && s.sync) {
      var text = s.sync.revoked ? L.words.sync_revoked
        : (s.sync.connected ? L.words.sync_on : L.words.sync_off);
      if (s.sync.refused) text += " · " + format(L.words.sync_refused, { n: s.sync.refused });
      if (s.sync.problems) text += " · " + format(L.words.sync_problems, { n: s.sync.problems });
      if (s.sync.last_ok_at) {
        text += " · " + format(L.words.sync_last, { time: japanTime(s.sync.last_ok_at, false) });
      }
      if (s.sync.waiting) text += " · " + format(L.words.sync_waiting, { n: s.sync.waiting });
      syncLine.textContent = text;
      syncLine.className = "sync-line " + (s.sync.connected ? "sync-on" : "sync-off");
    }
    var recent = document.getElementById("recent");
    if (recent && s.recent) {
      recent.textContent = "";
      s.recent.forEach(function (r) {
        var li = el("li");
        li.appendChild(el("span", "time", japanTime(r.at, false)));
        li.appendChild(document.createTextNode(" " + r.display_name + " · " + L.done[r.action]));
        recent.appendChild(li);
      });
    }
    state.liveUpdates = (state.liveUpdates || 0) + 1;
  }
  function connectLive(delay) {
    if (!document.querySelector("[data-live-counts], [data-count]")) return;
    var ws = new WebSocket(socketUrl(config.dataset.live));
    ws.onopen = function () { delay = 1000; if (connection) connection.hidden = true; };
    ws.onmessage = function (m) {
      var s = JSON.parse(m.data);
      if (s.headcount) applyState(s);  // else a keepalive
    };
    ws.onclose = function () {
      if (connection) connection.hidden = false;
      setTimeout(function () { connectLive(Math.min(delay * 2, 15000)); },
                 delay + Math.random() * 500);
    };
  }
  connectLive(1000);

  // --- camera: frames go to the node, which reads the QR with zxing-cpp ----------------
  var toggle = document.getElementById("camera-toggle");
  var video = document.getElementById("camera-video");
  var camStatus = document.getElementById("camera-status");
  if (toggle && video && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    toggle.hidden = false;
    var stream = null, camWs = null, waiting = false, lastCode = "", lastCodeAt = 0;
    var canvas = document.createElement("canvas");
    var sendFrame = function () {
      if (!stream || !camWs || camWs.readyState !== 1 || waiting) return;
      if (video.readyState < 2 || !video.videoWidth) { setTimeout(sendFrame, 100); return; }
      var scale = Math.min(1, 800 / Math.max(video.videoWidth, video.videoHeight));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      waiting = true;
      canvas.toBlob(function (blob) {
        if (!blob || !camWs || camWs.readyState !== 1) { waiting = false; return; }
        if (state.firstFrameAt === null) state.firstFrameAt = performance.now();
        state.framesSent += 1;
        camWs.send(blob);
      }, "image/jpeg", 0.75);
    };
    var stopCamera = function () {
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      stream = null;
      if (camWs) camWs.close();
      camWs = null;
      video.hidden = true;
      toggle.setAttribute("aria-pressed", "false");
      camStatus.textContent = L.words.camera_off;
      try { localStorage.setItem("shelter.camera", "off"); } catch (e) { /* private mode */ }
    };
    var startCamera = function () {
      navigator.mediaDevices.getUserMedia({
        audio: false, video: { facingMode: "environment", width: { ideal: 1280 },
                               height: { ideal: 720 } }
      }).then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        video.play();
        toggle.setAttribute("aria-pressed", "true");
        camStatus.textContent = L.words.camera_on;
        try { localStorage.setItem("shelter.camera", "on"); } catch (e) { /* private mode */ }
        camWs = new WebSocket(socketUrl(config.dataset.camera));
        camWs.onopen = function () { waiting = false; sendFrame(); };
        camWs.onmessage = function (m) {
          waiting = false;
          var answer = JSON.parse(m.data);
          var code = answer.codes && answer.codes[0];
          var now = performance.now();
          // A card held in view counts once: it is read again only after it has been
          // out of sight for a few seconds (else "auto" would check its holder out).
          var fresh = code && (code !== lastCode || now - lastCodeAt > 3000);
          if (code) { if (fresh) scanWithMode(code); lastCode = code; lastCodeAt = now; }
          setTimeout(sendFrame, fresh ? 600 : 80);
        };
        camWs.onclose = function () { if (stream) setTimeout(function () {
          if (stream) { stopCamera(); startCamera(); } }, 2000); };
      }, function () {
        camStatus.textContent = L.words.camera_denied;
      });
    };
    toggle.addEventListener("click", function () { if (stream) stopCamera(); else startCamera(); });
    var remembered = null;
    try { remembered = localStorage.getItem("shelter.camera"); } catch (e) { /* private mode */ }
    if (remembered === "on") startCamera();
  }
})();
