// Filters of the gallery page: class name, number of valid labels, top-1 probability.
(function () {
  "use strict";
  var byId = function (id) { return document.getElementById(id); };
  var text = byId("f-class"), nvalid = byId("f-nvalid"), lo = byId("f-lo"), hi = byId("f-hi");
  var loOut = byId("f-lo-v"), hiOut = byId("f-hi-v"), count = byId("f-count");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  var sections = Array.prototype.slice.call(document.querySelectorAll(".gsec"));

  function matches(card, words, wanted, pmin, pmax) {
    var names = card.getAttribute("data-names");
    for (var i = 0; i < words.length; i++) {
      if (names.indexOf(words[i]) < 0) return false;
    }
    if (wanted !== "any") {
      var n = card.getAttribute("data-nvalid");
      if (n === "") return false;
      if (wanted === "4+" ? Number(n) < 4 : n !== wanted) return false;
    }
    var p = Number(card.getAttribute("data-conf")) * 100;
    return p >= pmin - 1e-9 && p <= pmax + 1e-9;
  }

  function apply() {
    var words = text.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = nvalid.disabled ? "any" : nvalid.value;
    var a = Number(lo.value), b = Number(hi.value);
    var pmin = Math.min(a, b), pmax = Math.max(a, b);
    loOut.textContent = pmin + "%";
    hiOut.textContent = pmax + "%";
    var shown = 0;
    cards.forEach(function (card) {
      var ok = matches(card, words, wanted, pmin, pmax);
      card.hidden = !ok;
      if (ok) shown++;
    });
    sections.forEach(function (section) {
      var all = section.querySelectorAll(".card").length;
      var visible = section.querySelectorAll(".card:not([hidden])").length;
      section.querySelector(".shown").textContent = visible;
      var none = section.querySelector(".none-match");
      if (none) none.hidden = !(all > 0 && visible === 0);
    });
    count.textContent = "Showing " + shown + " of " + cards.length + " images";
    count.setAttribute("data-shown", String(shown));
  }

  [text, nvalid, lo, hi].forEach(function (el) { el.addEventListener("input", apply); });
  byId("f-reset").addEventListener("click", function () {
    text.value = ""; nvalid.value = "any"; lo.value = "0"; hi.value = "100"; apply();
  });
  apply();
})();
