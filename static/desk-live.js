// The desk's live numbers: the headcount, the link to HQ and the latest scans, pushed by
// the node over a websocket (live.js) whenever they change. Without it the page shows the
// numbers as of its loading.
(function () {
  "use strict";
  var config = document.getElementById("desk-labels");
  var live = window.ShelterLive;
  if (!config || !live || !document.querySelector("[data-live-counts], [data-count]")) return;
  var L = JSON.parse(config.textContent);
  var state = window.shelterDesk = window.shelterDesk || {};  // read by the browser tests

  function format(text, values) {
    return text.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  }
  function setAll(selector, each) {
    document.querySelectorAll(selector).forEach(each);
  }
  function syncText(s) {
    var text = s.revoked ? L.words.sync_revoked : (s.connected ? L.words.sync_on
                                                                : L.words.sync_off);
    if (s.hq_url) text += " · " + format(L.words.sync_hq, { url: s.hq_url });  // which HQ now
    if (s.refused) text += " · " + format(L.words.sync_refused, { n: s.refused });
    if (s.problems) text += " · " + format(L.words.sync_problems, { n: s.problems });
    if (s.last_ok_at) {
      text += " · " + format(L.words.sync_last, { time: live.japanTime(s.last_ok_at) });
    }
    if (s.waiting) text += " · " + format(L.words.sync_waiting, { n: s.waiting });
    return text;
  }
  function backupText(b) {  // templates/desk/_counts.html: backup_line, its twin
    var w = L.words, text = "";
    if (b.missing) text = w.backup_error.missing + " · ";
    else if (b.error) text = (w.backup_error[b.error] || w.backup_error.failed) + " · ";
    text += b.last_ok_at ? format(w.backup_last, { time: live.japanTime(b.last_ok_at) })
                         : w.backup_none;
    if (b.stale) text += " · " + w.backup_stale;
    if (b.same_disk && !b.missing) text += " · " + w.backup_same_disk;
    return text;
  }
  function standbyText(b) {  // templates/desk/_counts.html: standby_line, its twin
    var w = L.standby, behind = format(w.behind, { n: b.behind });
    if (b.alone) return w.alone + (b.behind ? " · " + behind : "");
    if (!b.connected) return w.off;
    return b.behind ? behind : w.ok;
  }
  function showLive(s) {
    var h = s.headcount;
    setAll("[data-standby]", function (n) {
      if (!s.standby) return;
      n.textContent = standbyText(s.standby);
      n.className = "sync-line standby-line " + (s.standby.connected && !s.standby.alone
                                                 ? "sync-on" : "sync-off");
    });
    setAll("[data-count]", function (n) {
      if (h[n.dataset.count] !== undefined) n.textContent = h[n.dataset.count];
    });
    setAll("[data-need]", function (n) { n.textContent = h.by_need[n.dataset.need]; });
    setAll("[data-age]", function (n) { n.textContent = h.by_age[n.dataset.age]; });
    setAll("[data-crowding]", function (n) {
      n.textContent = L.crowding[h.crowding];
      n.parentNode.className = "count crowding crowding-" + h.crowding;
    });
    setAll("[data-as-of]", function (n) {
      n.textContent = live.japanTime(h.as_of, { seconds: true });
    });
    setAll("[data-sync]", function (n) {
      if (!s.sync) return;
      n.textContent = syncText(s.sync);
      n.className = "sync-line " + (s.sync.connected ? "sync-on" : "sync-off");
    });
    setAll("[data-backup]", function (n) {
      var b = s.backup;
      if (!b) return;
      n.textContent = backupText(b);
      n.className = "sync-line backup-line " + (b.missing || b.stale || b.error
                                                ? "sync-off backup-warn"
                                                : b.same_disk ? "sync-caution backup-caution"
                                                : "sync-on");
    });
    var recent = document.getElementById("recent");
    if (recent && s.recent) {
      recent.textContent = "";
      s.recent.forEach(function (r) {
        var li = document.createElement("li"), time = document.createElement("span");
        time.className = "time";
        time.textContent = live.japanTime(r.at);
        li.appendChild(time);
        li.appendChild(document.createTextNode(" " + r.display_name + " · " + L.done[r.action]));
        recent.appendChild(li);
      });
    }
    state.liveUpdates = (state.liveUpdates || 0) + 1;
  }

  var banner = document.getElementById("connection");  // "no connection to the node"
  live.connect(config.dataset.live, {
    online: function (up) { if (banner) banner.hidden = up; },
    message: function (s) { if (s.headcount) showLive(s); }
  });
})();

