/* HQ's large map: its dots follow the shelters' syncs live, over the dashboard's socket
   (/hq/live, with live.js's reconnection), as on the dashboard (hq.js) but without the
   dashboard's table. Without JavaScript the map is the same, as of its loading. */
(function () {
  "use strict";
  var state = document.getElementById("live-state");
  var live = window.ShelterLive;
  if (!state || !live || !window.WebSocket) return;
  window.shelterMap = { messages: 0 };

  live.connect(state.dataset.live, {
    online: function (up) { state.classList.toggle("offline", !up); },
    message: function (s) {
      Object.keys(s.dots || {}).forEach(function (id) { live.applyDot(id, s.dots[id]); });
      window.shelterMap.messages += 1;
    }
  });
})();
