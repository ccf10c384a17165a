/* HQ's large map: its dots follow the shelters' syncs live, over the dashboard's socket
   (/hq/live, with live.js's reconnection), as on the dashboard (hq.js) but without the
   dashboard's table. Without JavaScript the map is the same, as of its loading. */
(function () {
  "use strict";
  var state = document.getElementById("live-state");
  var live = window.ShelterLive;
  if (!state || !live || !window.WebSocket) return;
  window.shelterMap = { messages: 0 };

  function applyDot(id, d) {
    var dot = document.querySelector('svg.map circle[data-shelter="' + CSS.escape(id) + '"]');
    if (!dot) return;
    var cls = "dot crowd-" + d[0] + " status-" + d[1] + (d[2] ? " stale" : "");
    if (dot.getAttribute("class") !== cls) dot.setAttribute("class", cls);
  }

  live.connect(state.dataset.live, {
    online: function (up) { state.classList.toggle("offline", !up); },
    message: function (s) {
      Object.keys(s.dots || {}).forEach(function (id) { applyDot(id, s.dots[id]); });
      window.shelterMap.messages += 1;
    }
  });
})();
