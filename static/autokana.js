// Furigana from the IME ("autoKana"), for the kiosk form and /prepare. A Japanese name is
// typed by composing its reading in kana and converting it (やまだ → 山田): the reading,
// remembered before the conversion, fills the name's furigana box (m0-family_name →
// m0-family_name_kana). Only a box that is empty, or still holds what was filled in for the
// person (by this, or the kiosk form's copy of the first person's family name), is filled:
// what someone typed there is never overwritten. Typing with no IME, or an IME writing no
// kana (English on a phone keyboard, Chinese, Korean), fills nothing. Without this file the
// boxes are typed as always.
(function () {
  "use strict";
  // Hiragana, katakana, ー, ・, iteration marks and spaces: a reading, before conversion.
  var KANA = /^[\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fb-\u30fe \u3000]+$/;
  var isKana = function (text) { return !!text && KANA.test(text); };
  // The boxes say ふりがな: hiragana (the server stores katakana whichever it gets).
  var hiragana = function (text) {
    return text.replace(/[\u30a1-\u30f6\u30fd\u30fe]/g, function (k) {
      return String.fromCharCode(k.charCodeAt(0) - 0x60);
    });
  };

  function attach(name, kana) {
    var parts = [];     // what each composition committed, in order, with its reading
    var reading = "";   // the composing text while it is kana only
    var inserted = false;  // this composition is not at the end of the name: no reading
    var filled = null;  // what this last put in the kana box

    var ours = function () {
      var value = kana.value;
      return value === "" || value === filled ||
        (kana.dataset.copied !== undefined && value === kana.dataset.copied);
    };
    var put = function (value) {
      kana.value = filled = value;
      // As if typed: the kiosk form's copies of the first person's kana follow it.
      kana.dispatchEvent(new Event("input", { bubbles: true }));
    };
    var remember = function (event) {
      if (isKana(event.data)) reading = event.data;
    };

    name.addEventListener("compositionstart", function () {
      reading = "";
      // The parts still in front of the cursor; what else is there was typed another way
      // (its reading is itself if it is kana, unknown otherwise).
      var start = name.selectionStart, end = name.selectionEnd;
      var head = name.value.slice(0, start);
      inserted = name.value.slice(end) !== "";
      var kept = [], known = "";
      for (var i = 0; i < parts.length && head.indexOf(known + parts[i].text) === 0; i++) {
        known += parts[i].text;
        kept.push(parts[i]);
      }
      var rest = head.slice(known.length);
      if (rest) kept.push({ text: rest, reading: isKana(rest) ? rest : null });
      parts = kept;
    });
    name.addEventListener("compositionupdate", remember);
    name.addEventListener("input", function (event) {
      if (event.isComposing) {
        remember(event);
      } else if (name.value === "") {  // the name cleared: so is what was filled for it
        parts = [];
        if (kana.value !== "" && ours()) put("");
      }
    });
    name.addEventListener("compositionend", function (event) {
      var text = event.data || "";
      if (!text) return;  // given up: nothing was written
      parts.push({ text: text, reading: reading || (isKana(text) ? text : null) });
      reading = "";
      var readings = parts.map(function (part) { return part.reading; });
      if (inserted || readings.indexOf(null) >= 0 || !ours()) return;
      var value = hiragana(readings.join(""));
      if (kana.maxLength > 0) value = value.slice(0, kana.maxLength);
      if (value !== kana.value) put(value);
    });
  }

  var names = document.querySelectorAll("input[id$='_name']");
  Array.prototype.forEach.call(names, function (name) {
    var kana = document.getElementById(name.id + "_kana");
    if (kana && kana.tagName === "INPUT") attach(name, kana);
  });
})();
