// The desk's camera: a few small JPEG frames a second go to the node over a websocket
// (live.js), the node reads any QR code in them (zxing-cpp; iPad Safari and Chromium on
// Linux have no BarcodeDetector) and answers its text. Each card newly in view becomes a
// "shelter:card" event, which desk.js scans like a typed code. On the kiosk's household
// code page (#camera-config, data-fill: the code's input) the code is put in that input
// and its form sent, as a handheld scanner's Enter would.
(function () {
  "use strict";
  var config = document.getElementById("desk-labels") ||
    document.getElementById("camera-config");
  var toggle = document.getElementById("camera-toggle");
  var video = document.getElementById("camera-video");
  var status = document.getElementById("camera-status");
  var live = window.ShelterLive;
  if (!config || !live || !toggle || !video || !navigator.mediaDevices ||
      !navigator.mediaDevices.getUserMedia) return;
  var words = JSON.parse(config.textContent).words;
  var state = window.shelterDesk = window.shelterDesk || {};  // read by the browser tests
  state.firstFrameAt = null;
  state.framesSent = 0;
  var stream = null, socket = null, waiting = false, lastCode = "", lastCodeAt = 0;
  var canvas = document.createElement("canvas");

  function remember(on) {
    try { localStorage.setItem("shelter.camera", on ? "on" : "off"); } catch (e) { /* private */ }
  }

  function sendFrame() {
    if (!stream || !socket || !socket.isOpen() || waiting) return;
    if (video.readyState < 2 || !video.videoWidth) { setTimeout(sendFrame, 100); return; }
    var scale = Math.min(1, 800 / Math.max(video.videoWidth, video.videoHeight));
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    waiting = true;
    canvas.toBlob(function (blob) {
      if (!blob || !socket || !socket.isOpen()) { waiting = false; return; }
      if (state.firstFrameAt === null) state.firstFrameAt = performance.now();
      state.framesSent += 1;
      socket.send(blob);
    }, "image/jpeg", 0.75);
  }

  function answered(answer) {
    waiting = false;
    var code = answer.codes && answer.codes[0];
    var now = performance.now();
    // A card held in view counts once: it is read again only after it has been out of
    // sight for a few seconds (else "auto" would check its holder straight out again).
    var fresh = code && (code !== lastCode || now - lastCodeAt > 3000);
    if (code) {
      if (fresh) found(code);
      lastCode = code;
      lastCodeAt = now;
    }
    setTimeout(sendFrame, fresh ? 600 : 80);
  }

  function found(code) {
    var fill = config.dataset.fill && document.getElementById(config.dataset.fill);
    if (!fill) {
      document.dispatchEvent(new CustomEvent("shelter:card", { detail: code }));
      return;
    }
    fill.value = code;
    if (fill.form.requestSubmit) fill.form.requestSubmit();
    else fill.form.submit();
  }

  function stop() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    if (socket) socket.close();
    socket = null;
    video.hidden = true;
    toggle.setAttribute("aria-pressed", "false");
    status.textContent = words.camera_off;
    remember(false);
  }

  function start() {
    navigator.mediaDevices.getUserMedia({
      audio: false, video: { facingMode: "environment", width: { ideal: 1280 },
                             height: { ideal: 720 } }
    }).then(function (s) {
      stream = s;
      video.srcObject = s;
      video.hidden = false;
      video.play();
      toggle.setAttribute("aria-pressed", "true");
      status.textContent = words.camera_on;
      remember(true);
      // A dropped socket comes back by itself; the camera stays on meanwhile.
      socket = live.connect(config.dataset.camera, {
        opened: function () { waiting = false; sendFrame(); },
        message: answered
      });
    }, function () {
      status.textContent = words.camera_denied;
    });
  }

  toggle.hidden = false;
  toggle.addEventListener("click", function () { if (stream) stop(); else start(); });
  var remembered = null;
  try { remembered = localStorage.getItem("shelter.camera"); } catch (e) { /* private mode */ }
  if (remembered === "on") start();
})();
