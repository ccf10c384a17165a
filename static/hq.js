/* HQ dashboard: totals, shelter rows and map dots follow the shelters' syncs live, over a
   websocket that reconnects with back-off (live.js). Without JavaScript the page is the
   same, as of its loading. On every page with the shelters table (the dashboard, a
   municipality's page) it also says when the table scrolls sideways. */
(function () {
  "use strict";
  /* A table wider than the screen (a tablet) scrolls sideways: say so while it does. */
  var scroller = document.querySelector(".table-scroll");
  var hint = document.getElementById("shelters-scroll-hint");
  function fit() {
    var over = scroller.scrollWidth > scroller.clientWidth + 1;
    scroller.classList.toggle("overflowing", over);
    hint.hidden = !over;
  }
  if (scroller && hint) {
    fit();
    window.addEventListener("resize", fit);
  }

  var state = document.getElementById("live-state");
  var labelsEl = document.getElementById("hq-labels");
  var live = window.ShelterLive;
  if (!state || !labelsEl || !live || !window.WebSocket) return;
  var L = JSON.parse(labelsEl.textContent);
  var shelterUrl = labelsEl.dataset.shelterUrl;
  var table = document.querySelector("#shelters tbody");
  var template = document.getElementById("row-template");
  window.shelterHq = { messages: 0 };

  function text(el, value) { if (el && el.textContent !== String(value)) el.textContent = value; }


  function applyTotals(t) {
    Object.keys(t).forEach(function (key) {
      if (typeof t[key] === "number") {
        text(document.querySelector('[data-total="' + key + '"]'), t[key]);
      }
    });
    if (t.occupancy !== null && t.occupancy !== undefined) {
      text(document.querySelector('[data-total="occupancy_percent"]'), Math.round(t.occupancy * 100));
    }
    var tile = document.querySelector('[data-tile="stale"]');
    if (tile) tile.classList.toggle("warn", t.shelters_stale > 0);
  }

  function rowFor(id, r) {
    var tr = table.querySelector('tr[data-shelter="' + CSS.escape(id) + '"]');
    if (!tr && template) {
      var empty = table.querySelector("tr.empty");
      if (empty) empty.remove();
      tr = template.content.firstElementChild.cloneNode(true);
      tr.dataset.shelter = id;
      tr.querySelector("a").href = shelterUrl.replace("SHELTER", encodeURIComponent(id));
      table.insertBefore(tr, table.firstChild);
    }
    return tr;
  }

  function applyRow(id, r) {
    var tr = rowFor(id, r);
    if (!tr) return;
    tr.classList.toggle("stale", !!r.stale);
    ["name", "municipality", "present", "out", "registered", "at_home", "in_car",
     "open_requests"].forEach(function (f) {
      text(tr.querySelector('[data-field="' + f + '"]'), r[f]);
    });
    text(tr.querySelector('[data-field="capacity"]'), r.capacity || "—");
    text(tr.querySelector('[data-field="status"]'), L.status[r.status] || r.status);
    var crowd = tr.querySelector('[data-field="crowding"]');
    if (crowd) {
      crowd.innerHTML = "";
      var badge = document.createElement("span");
      badge.className = "badge crowd-" + r.crowding;
      badge.textContent = L.crowding[r.crowding] || r.crowding;
      crowd.appendChild(badge);
    }
    var low = tr.querySelector('[data-field="low_stock"]');
    if (low) {
      low.innerHTML = "";
      (r.low_stock || []).forEach(function (item) {
        var badge = document.createElement("span");
        badge.className = "badge low";
        badge.textContent = L.items[item] || item;
        low.appendChild(badge);
        low.appendChild(document.createTextNode(" "));
      });
      if (!(r.low_stock || []).length) low.textContent = "—";
    }
    var synced = tr.querySelector('[data-field="last_synced_at"]');
    if (synced) {  /* as the page draws it: the day, then the time (a line each if narrow) */
      synced.textContent = r.last_synced_at ? "" : L.never;
      if (r.last_synced_at) {
        live.japanTime(r.last_synced_at, { date: true }).split(" ").forEach(function (part, i) {
          var span = document.createElement("span");
          span.textContent = part;
          if (i) synced.appendChild(document.createTextNode(" "));
          synced.appendChild(span);
        });
      }
      if (r.stale) {
        var strong = document.createElement("strong");
        strong.textContent = L.stale;
        synced.appendChild(document.createTextNode(" "));
        synced.appendChild(strong);
      }
    }
  }

  live.connect(state.dataset.live, {
    online: function (up) { state.classList.toggle("offline", !up); },
    message: function (s) {
      if (s.totals) applyTotals(s.totals);
      var projection = document.getElementById("projection");
      if (s.projection && projection) projection.outerHTML = s.projection;  // rendered by HQ, escaped
      Object.keys(s.rows || {}).forEach(function (id) { applyRow(id, s.rows[id]); });
      Object.keys(s.dots || {}).forEach(function (id) { live.applyDot(id, s.dots[id]); });
      if (scroller && hint) fit();
      window.shelterHq.messages += 1;
    }
  });
})();
