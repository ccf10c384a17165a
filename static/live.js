/* What every live screen (the desk, the headcount, HQ's dashboard) shares: a websocket to
   this page's own node that comes back by itself, and the time as Japan reads a clock.
   A plain script: it defines window.ShelterLive and does nothing else. */
(function () {
  "use strict";
  var FIRST_DELAY = 1000, LONGEST_DELAY = 15000, JITTER = 500;

  // Always the page's own host and scheme (wss on https): the node serves every screen.
  function socketUrl(route) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = new URL(route, location.href);
    return scheme + location.host + url.pathname + url.search;  // ?lang= for the page's language
  }

  /* Open a socket to `route` and keep it open: after a drop, try again after 1 s, then 2, 4...
     up to 15 s (plus a little randomness, so a room of tablets does not knock at once).
     handlers: message(data) for each JSON message (keepalives are swallowed), online(bool)
     when the link comes or goes, opened() once each time it is up. Returns {send, close}. */
  function connect(route, handlers) {
    var ws = null, delay = FIRST_DELAY, closed = false, timer = null;
    function open() {
      ws = new WebSocket(socketUrl(route));
      ws.onopen = function () {
        delay = FIRST_DELAY;
        if (handlers.online) handlers.online(true);
        if (handlers.opened) handlers.opened();
      };
      ws.onmessage = function (m) {
        var data;
        try { data = JSON.parse(m.data); } catch (e) { return; }
        if (data && !data.keepalive && handlers.message) handlers.message(data);
      };
      ws.onclose = function () {
        ws = null;
        if (closed) return;
        if (handlers.online) handlers.online(false);
        timer = setTimeout(open, delay + Math.random() * JITTER);
        delay = Math.min(delay * 2, LONGEST_DELAY);
      };
    }
    open();
    return {
      send: function (data) {
        if (!ws || ws.readyState !== WebSocket.OPEN) return false;
        ws.send(data);
        return true;
      },
      isOpen: function () { return !!ws && ws.readyState === WebSocket.OPEN; },
      close: function () {
        closed = true;
        clearTimeout(timer);
        if (ws) ws.close();
      }
    };
  }

  /* A stored time (ISO 8601 with its offset) as the shelter's clock shows it: Japan time,
     whatever zone the tablet is set to. "HH:MM"; {seconds: true} "HH:MM:SS"; {date: true}
     "YYYY-MM-DD HH:MM"; "" for no time. The pages' `jst` filter is its twin on the node
     (shelter/render/times.py). */
  var tokyo;  // the formatter, made once; null where Intl cannot do Asia/Tokyo
  function tokyoParts(moment) {
    if (tokyo === undefined) {
      try {
        tokyo = new Intl.DateTimeFormat("en-US", {
          timeZone: "Asia/Tokyo", hourCycle: "h23", year: "numeric", month: "2-digit",
          day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      } catch (e) { tokyo = null; }
    }
    if (!tokyo || !tokyo.formatToParts) return null;
    var parts = {};
    tokyo.formatToParts(moment).forEach(function (p) { parts[p.type] = p.value; });
    if (!(parts.year && parts.month && parts.day && parts.hour && parts.minute && parts.second)) {
      return null;
    }
    if (parts.hour === "24") parts.hour = "00";  // older engines' midnight
    return parts;
  }
  function offsetParts(moment) {  // Japan has kept UTC+9, with no summer time, since 1951
    var s = new Date(moment.getTime() + 9 * 3600 * 1000).toISOString();
    return { year: s.slice(0, 4), month: s.slice(5, 7), day: s.slice(8, 10),
             hour: s.slice(11, 13), minute: s.slice(14, 16), second: s.slice(17, 19) };
  }
  function japanTime(iso, options) {
    options = options || {};
    var moment = new Date(iso || NaN);
    if (isNaN(moment.getTime())) return "";
    var p = tokyoParts(moment) || offsetParts(moment);
    var clock = p.hour + ":" + p.minute + (options.seconds ? ":" + p.second : "");
    return options.date ? p.year + "-" + p.month + "-" + p.day + " " + clock : clock;
  }

  /* A map dot (server-drawn SVG, render/mapping.py) takes the state a live message gives
     it: [crowding, status, stale]. The dashboard (hq.js) and the large map (hq-map.js). */
  function applyDot(id, d) {
    var dot = document.querySelector('svg.map circle[data-shelter="' + CSS.escape(id) + '"]');
    if (!dot) return;
    var cls = "dot crowd-" + d[0] + " status-" + d[1] + (d[2] ? " stale" : "");
    if (dot.getAttribute("class") !== cls) dot.setAttribute("class", cls);
  }

  window.ShelterLive = { connect: connect, socketUrl: socketUrl, japanTime: japanTime,
                         applyDot: applyDot };
})();
