// The review page of python -m imagenet_multilabel.propose: static, no server. The
// decisions live in localStorage under the proposals' hash; export writes the label file
// (file name -> class indices, [] = no label fits) that labels=file reads as it is.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("proposals").textContent);
  const STORE = "imagenet-multilabel-review:" + D.hash;
  const byFile = new Map(D.images.map((im, i) => [im.f, i]));
  const $ = (id) => document.getElementById(id);

  function load() {
    try {
      const s = JSON.parse(localStorage.getItem(STORE) || "null");
      if (s && typeof s.decisions === "object") return s;
    } catch (e) { /* a broken entry: start again */ }
    return { decisions: {}, at: null };
  }
  const state = load();
  function save() {
    try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) { /* private mode */ }
  }

  let list = D.images.map((_, i) => i); // the images the filters let through
  let pos = 0; // position in list
  let selection = new Set(); // the current image's toggles, kept on "next"

  const name = (c) => D.names[String(c)] || String(c);
  const pct = (x) => (100 * x).toFixed(x < 0.1 ? 1 : 0) + "%";

  function reviewedCount() { return Object.keys(state.decisions).length; }

  function show(keyTime) {
    const shownEl = $("shown");
    if (!list.length) {
      $("photos").innerHTML = '<div class="missing">no image matches the filters</div>';
      $("candidates").innerHTML = "";
      $("file").textContent = "";
      $("state").textContent = "";
      shownEl.textContent = "0 shown";
      updateProgress();
      return;
    }
    pos = Math.max(0, Math.min(pos, list.length - 1));
    const im = D.images[list[pos]];
    const done = Object.prototype.hasOwnProperty.call(state.decisions, im.f);
    selection = new Set(done ? state.decisions[im.f] : [im.o]);
    state.at = im.f;
    save();
    const tiles = $("photos");
    tiles.replaceChildren(...im.p.map((p) => {
      if (!p) {
        const d = document.createElement("div");
        d.className = "missing";
        d.textContent = "photo not found";
        return d;
      }
      const img = document.createElement("img");
      img.src = "photos/" + p;
      img.alt = im.f;
      return img;
    }));
    $("file").textContent = im.f + " — original label: " + name(im.o);
    const st = $("state");
    st.textContent = done ? "reviewed" + (state.decisions[im.f].length ? "" : ": no label fits")
      : "not reviewed yet";
    st.className = "state" + (done ? " done" : "");
    drawCandidates(im);
    shownEl.textContent = "image " + (pos + 1) + " of " + list.length + " shown";
    updateProgress();
    document.body.dataset.file = im.f;
    if (keyTime !== undefined) {
      // a key's time: until the next image's photos are decoded and the frame is drawn
      const imgs = Array.from(tiles.querySelectorAll("img"));
      Promise.all(imgs.map((i) => i.decode().catch(() => null))).then(() =>
        requestAnimationFrame(() => {
          window.reviewKeyMs = performance.now() - keyTime;
          document.body.dataset.keyMs = String(window.reviewKeyMs);
        }));
    }
  }

  function drawCandidates(im) {
    const ol = $("candidates");
    ol.replaceChildren(...im.c.map((c, k) => {
      const [cls, support, mean, max] = c;
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.cls = String(cls);
      b.className = selection.has(cls) ? "on" : "";
      const ex = im.e[String(cls)];
      // no example photo of the class: its name, large, instead of an empty box
      if (!ex) b.classList.add("noexample");
      b.innerHTML =
        '<span class="key">' + (k < 9 ? k + 1 : "") + "</span>" +
        (ex ? '<img alt="" src="exemplars/' + ex + '">' : "") +
        '<span><span class="name"></span>' + (cls === im.o ? '<span class="orig">original</span>' : "") +
        '<span class="meta">' + support + "/" + D.models + " models · mean " + pct(mean) +
        " · max " + pct(max) + " · " + (D.wnids[String(cls)] || "") + "</span></span>";
      b.querySelector(".name").textContent = name(cls);
      b.addEventListener("click", () => toggle(k));
      li.appendChild(b);
      return li;
    }));
    $("none").className = "none" + (selection.size === 0 ? " on" : "");
  }

  function updateProgress() {
    $("progress").textContent = reviewedCount() + " / " + D.images.length + " reviewed";
  }

  function toggle(k) {
    if (!list.length) return;
    const im = D.images[list[pos]];
    if (k >= im.c.length) return;
    const cls = im.c[k][0];
    if (selection.has(cls)) selection.delete(cls); else selection.add(cls);
    drawCandidates(im);
  }

  function keep(classes) {
    const im = D.images[list[pos]];
    state.decisions[im.f] = Array.from(classes).sort((a, b) => a - b);
    save();
  }

  function next(keyTime) {
    if (!list.length) return;
    keep(selection);
    if (pos < list.length - 1) pos += 1;
    show(keyTime);
  }
  function noLabel(keyTime) {
    if (!list.length) return;
    selection = new Set();
    next(keyTime);
  }
  function previous(keyTime) {
    if (pos > 0) pos -= 1;
    show(keyTime);
  }
  function nextUnreviewed(keyTime) {
    for (let step = 1; step <= list.length; step++) {
      const p = (pos + step) % list.length;
      if (!(D.images[list[p]].f in state.decisions)) { pos = p; break; }
    }
    show(keyTime);
  }

  // ---- filters
  function fillFilters() {
    const classes = new Set();
    const counts = new Set();
    for (const im of D.images) {
      classes.add(im.o);
      im.c.forEach((c) => classes.add(c[0]));
      counts.add(im.c.length);
    }
    const sel = $("f-class");
    [...classes].sort((a, b) => name(a).localeCompare(name(b))).forEach((c) => {
      const o = document.createElement("option");
      o.value = String(c);
      o.textContent = name(c);
      sel.appendChild(o);
    });
    const cs = $("f-count");
    [...counts].sort((a, b) => a - b).forEach((n) => {
      const o = document.createElement("option");
      o.value = String(n);
      o.textContent = n + " candidate" + (n === 1 ? "" : "s");
      cs.appendChild(o);
    });
  }
  function applyFilters() {
    const cls = $("f-class").value;
    const count = $("f-count").value;
    const rev = $("f-reviewed").value;
    const at = list.length ? D.images[list[pos]].f : state.at;
    list = [];
    D.images.forEach((im, i) => {
      if (cls !== "" && im.o !== +cls && !im.c.some((c) => c[0] === +cls)) return;
      if (count !== "" && im.c.length !== +count) return;
      const done = im.f in state.decisions;
      if ((rev === "yes" && !done) || (rev === "no" && done)) return;
      list.push(i);
    });
    const keepAt = list.indexOf(byFile.get(at));
    pos = keepAt >= 0 ? keepAt : 0;
    show();
  }

  // ---- export / import
  function labelFile() {
    const out = {};
    for (const im of D.images) {
      if (im.f in state.decisions) out[im.f] = state.decisions[im.f];
    }
    out._origin = {
      kind: "reviewed", reviewers: 1, proposals: D.hash, dataset: D.dataset,
      reviewed: Object.keys(out).length, images: D.images.length,
    };
    if ((state.reviewer || "").trim()) out._origin.reviewer = state.reviewer.trim();
    return out;
  }
  // two reviewers' exports never share a name: the reviewer's name (when given) and the
  // time of the export are in it
  function exportName(when) {
    const pad = (n) => String(n).padStart(2, "0");
    const time = when.getFullYear() + pad(when.getMonth() + 1) + pad(when.getDate()) + "-" +
      pad(when.getHours()) + pad(when.getMinutes()) + pad(when.getSeconds());
    const who = (state.reviewer || "").trim().replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
    return ["labels", D.dataset, D.hash, who, time].filter(Boolean).join("_") + ".json";
  }
  window.reviewExportName = exportName; // for tests
  function exportLabels() {
    const blob = new Blob([JSON.stringify(labelFile(), null, 1)], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = exportName(new Date());
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  function importLabels(text) {
    let data;
    try { data = JSON.parse(text); } catch (e) { return "not a JSON file"; }
    if (!data || typeof data !== "object" || Array.isArray(data)) return "not a label file";
    const origin = data._origin || {};
    if (origin.kind === "model-made") {
      return "it is a model-made set: only a reviewer's export continues a review";
    }
    if (origin.reviewers > 1) return "it merges " + origin.reviewers + " reviewers: import one reviewer's export";
    if (origin.proposals && origin.proposals !== D.hash) {
      return "it reviews other proposals (" + origin.proposals + ", these are " + D.hash + ")";
    }
    const found = {};
    for (const [f, v] of Object.entries(data)) {
      if (f === "_origin") continue;
      if (!byFile.has(f)) return "it names an image these proposals do not hold: " + f;
      const list = Array.isArray(v) ? v : [v];
      if (!list.every((c) => Number.isInteger(c) && c >= 0 && c < 1000)) {
        return "the labels of " + f + " are not class indices 0..999";
      }
      found[f] = [...new Set(list)].sort((a, b) => a - b);
    }
    Object.assign(state.decisions, found);
    save();
    applyFilters();
    return null;
  }

  // ---- events
  document.addEventListener("keydown", (e) => {
    if (e.target && (e.target.tagName === "SELECT" || e.target.tagName === "INPUT")) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = performance.now();
    if (e.key >= "1" && e.key <= "9") toggle(+e.key - 1);
    else if (e.key === "0" || e.key === "x") noLabel(t);
    else if (e.key === "Enter" || e.key === "ArrowRight" || e.key === "n") next(t);
    else if (e.key === "ArrowLeft" || e.key === "p") previous(t);
    else if (e.key === "u") nextUnreviewed(t);
    else if (e.key === "e") exportLabels();
    else return;
    e.preventDefault();
  });
  $("next").addEventListener("click", () => next());
  $("prev").addEventListener("click", () => previous());
  $("none").addEventListener("click", () => noLabel());
  $("export").addEventListener("click", exportLabels);
  $("import").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (!file) return;
    file.text().then((text) => {
      const err = importLabels(text);
      document.body.dataset.importError = err || "";
      if (err) alert("Cannot import " + file.name + ": " + err);
      e.target.value = "";
    });
  });
  $("reviewer").value = state.reviewer || "";
  $("reviewer").addEventListener("input", (e) => { state.reviewer = e.target.value; save(); });
  ["f-class", "f-count", "f-reviewed"].forEach((id) => $(id).addEventListener("change", applyFilters));

  fillFilters();
  const start = byFile.get(state.at);
  pos = start === undefined ? 0 : start;
  show();
  window.reviewLabels = labelFile; // for tests and the console
})();
