// animesis paint: the label map lives in a Uint8Array of class ids (and a second one of character
// ids for region mixing). The canvases only show those arrays; nothing is ever read back from a
// canvas, so every painted pixel is exactly one class of the palette.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const UNDO_DEPTH = 60;
  const DEBOUNCE_MS = 60;
  const VARIATIONS_AFTER_MS = 300; // strokes in quick succession do not wait behind four more pictures

  const S = {
    model: null, H: 0, W: 0,
    label: null, owner: null, ownerTouched: false,
    layer: "label", tool: "brush", classBrush: 0, ownerBrush: 0, size: 4,
    mode: "one", character: 0, blendB: 0, blendT: 0.5, seed: 0,
    undo: [], redo: [], last: null,
    timer: null, varTimer: null, paintCtl: null, varCtl: null, pictureUrl: null, seq: 0, shown: null,
  };

  // --- bytes --------------------------------------------------------------------------------------

  function toBase64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  function fromBase64(text) {
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  // --- server -------------------------------------------------------------------------------------

  async function api(path, options = {}) {
    const r = await fetch(path, options);
    if (!r.ok) {
      let message = `${path}: HTTP ${r.status}`;
      try { message = (await r.json()).error || message; } catch (_) { /* not JSON */ }
      throw new Error(message);
    }
    return r;
  }

  const postJson = (path, body, signal) => api(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });

  // --- messages -----------------------------------------------------------------------------------

  let errorSource = null;
  function showError(message, source) {
    errorSource = source;
    $("error-text").textContent = message;
    $("error").hidden = false;
  }
  function clearError(source) {
    if (source === undefined || source === errorSource) $("error").hidden = true;
  }
  const setStatus = (text) => { $("status").textContent = text; };

  // --- drawing the arrays -------------------------------------------------------------------------

  function lut(colors) {
    const t = new Uint8Array(256 * 4).fill(255);
    colors.forEach((c, i) => { t.set([c[0], c[1], c[2], 255], i * 4); });
    return t;
  }

  function draw(canvas, values, table) {
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(S.W, S.H);
    const px = img.data;
    for (let i = 0; i < values.length; i++) {
      const k = values[i] * 4;
      px[i * 4] = table[k]; px[i * 4 + 1] = table[k + 1]; px[i * 4 + 2] = table[k + 2]; px[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  let classLut = null, ownerLut = null;
  function render() {
    if (!S.label) return;
    draw($("label-canvas"), S.label, classLut);
    if (S.layer === "owner") draw($("owner-canvas"), S.owner, ownerLut);
  }

  // --- editing ------------------------------------------------------------------------------------

  const active = () => (S.layer === "owner" ? S.owner : S.label);
  const brushValue = () => (S.layer === "owner" ? S.ownerBrush : S.classBrush);

  function pushUndo() {
    S.undo.push({ label: S.label.slice(), owner: S.owner.slice() });
    if (S.undo.length > UNDO_DEPTH) S.undo.shift();
    S.redo = [];
    updateHistory();
  }

  function restore(from, to) {
    if (!from.length) return;
    to.push({ label: S.label, owner: S.owner });
    const snap = from.pop();
    S.label = snap.label; S.owner = snap.owner;
    updateHistory(); render(); schedule();
  }

  function updateHistory() {
    $("undo").disabled = !S.undo.length;
    $("redo").disabled = !S.redo.length;
  }

  function stampOffsets(size) {
    const c = (size - 1) / 2, r2 = (size / 2) ** 2, o = Math.floor(c), out = [];
    for (let j = 0; j < size; j++) {
      for (let i = 0; i < size; i++) {
        if ((i - c) ** 2 + (j - c) ** 2 <= r2) out.push([i - o, j - o]);
      }
    }
    return out;
  }

  function stamp(arr, x, y, value) {
    for (const [dx, dy] of stampOffsets(S.size)) {
      const px = x + dx, py = y + dy;
      if (px >= 0 && py >= 0 && px < S.W && py < S.H) arr[py * S.W + px] = value;
    }
  }

  function line(arr, a, b, value) {
    const steps = Math.max(Math.abs(b.x - a.x), Math.abs(b.y - a.y), 1);
    for (let s = 1; s <= steps; s++) {
      stamp(arr, Math.round(a.x + ((b.x - a.x) * s) / steps), Math.round(a.y + ((b.y - a.y) * s) / steps), value);
    }
  }

  function fill(arr, x, y, value) {
    const W = S.W, H = S.H, start = y * W + x, old = arr[start];
    if (old === value) return;
    const stack = new Int32Array(W * H);
    let n = 0;
    stack[n++] = start; arr[start] = value;
    while (n) {
      const i = stack[--n], cx = i % W;
      const next = [cx > 0 ? i - 1 : -1, cx < W - 1 ? i + 1 : -1, i >= W ? i - W : -1, i < W * (H - 1) ? i + W : -1];
      for (const j of next) {
        if (j >= 0 && arr[j] === old) { arr[j] = value; stack[n++] = j; }
      }
    }
  }

  function cell(e) {
    const r = $("canvas-wrap").getBoundingClientRect();
    const x = Math.floor(((e.clientX - r.left) / r.width) * S.W);
    const y = Math.floor(((e.clientY - r.top) / r.height) * S.H);
    return { x: Math.min(S.W - 1, Math.max(0, x)), y: Math.min(S.H - 1, Math.max(0, y)) };
  }

  function edited() {
    if (S.layer === "owner") { S.ownerTouched = true; setMode("regions"); }
    schedule();
  }

  function bindCanvas() {
    const wrap = $("canvas-wrap");
    wrap.addEventListener("pointerdown", (e) => {
      if (e.button !== 0 || !S.label) return;
      const p = cell(e);
      pushUndo();
      if (S.tool === "fill") { fill(active(), p.x, p.y, brushValue()); render(); edited(); return; }
      wrap.setPointerCapture(e.pointerId);
      stamp(active(), p.x, p.y, brushValue());
      S.last = p;
      render();
    });
    wrap.addEventListener("pointermove", (e) => {
      if (!S.last) return;
      const p = cell(e);
      line(active(), S.last, p, brushValue());
      S.last = p;
      render();
    });
    const end = () => { if (S.last) { S.last = null; edited(); } };
    wrap.addEventListener("pointerup", end);
    wrap.addEventListener("pointercancel", end);
  }

  // --- painting -----------------------------------------------------------------------------------

  function request() {
    const body = { label: toBase64(S.label), seed: S.seed };
    if (S.mode === "regions") body.owner = toBase64(S.owner);
    else if (S.mode === "blend") body.blend = [S.character, S.blendB, S.blendT];
    else body.character = S.character;
    return body;
  }

  function schedule() {
    clearTimeout(S.timer);
    clearTimeout(S.varTimer);
    S.timer = setTimeout(paintNow, DEBOUNCE_MS);
  }

  async function paintNow() {
    if (S.paintCtl) S.paintCtl.abort();
    if (S.varCtl) S.varCtl.abort();
    const ctl = new AbortController();
    S.paintCtl = ctl;
    const body = request();
    const t0 = performance.now();
    document.body.dataset.busy = "1";
    setStatus("painting…");
    try {
      const blob = await (await postJson("/api/paint", body, ctl.signal)).blob();
      if (ctl !== S.paintCtl) return;
      await showPicture(blob, body);
      setStatus(`painted in ${Math.round(performance.now() - t0)} ms`);
      clearError("paint");
      if (S.model.z) S.varTimer = setTimeout(() => variations(body), VARIATIONS_AFTER_MS);
    } catch (e) {
      if (e.name === "AbortError") return;
      showError(e.message, "paint");
      setStatus("");
    } finally {
      if (ctl === S.paintCtl) document.body.dataset.busy = "0";
    }
  }

  function showPicture(blob, body) {
    const url = URL.createObjectURL(blob);
    const img = $("picture");
    return new Promise((resolve) => {
      img.onload = () => {
        if (S.pictureUrl) URL.revokeObjectURL(S.pictureUrl);
        S.pictureUrl = url;
        S.shown = body;
        S.seq += 1;
        img.dataset.seq = String(S.seq);
        resolve();
      };
      img.src = url;
    });
  }

  async function variations(body) {
    const ctl = new AbortController();
    S.varCtl = ctl;
    try {
      const r = await (await postJson("/api/variations", { ...body, n: 4 }, ctl.signal)).json();
      if (ctl !== S.varCtl) return;
      const strip = $("variations");
      strip.replaceChildren(...r.images.map((png, i) => {
        const img = document.createElement("img");
        img.src = `data:image/png;base64,${png}`;
        img.alt = `seed ${r.seeds[i]}`;
        img.title = `seed ${r.seeds[i]}`;
        img.dataset.seed = String(r.seeds[i]);
        img.addEventListener("click", () => { setSeed(r.seeds[i]); schedule(); });
        return img;
      }));
    } catch (e) {
      if (e.name !== "AbortError") showError(e.message, "paint");
    }
  }

  // --- controls -----------------------------------------------------------------------------------

  function swatch(color) {
    const s = document.createElement("span");
    s.className = "swatch";
    s.style.background = `rgb(${color[0]}, ${color[1]}, ${color[2]})`;
    return s;
  }

  function brushButton(name, color, onPick, dataset) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "brush";
    b.setAttribute("aria-pressed", "false");
    Object.assign(b.dataset, dataset);
    b.append(swatch(color), document.createTextNode(name));
    b.addEventListener("click", onPick);
    return b;
  }

  function press(group, value, key) {
    for (const b of $(group).children) b.setAttribute("aria-pressed", String(b.dataset[key] === String(value)));
  }

  function setClassBrush(id) { S.classBrush = id; press("class-brushes", id, "class"); }
  function setOwnerBrush(id) { S.ownerBrush = id; press("owner-brushes", id, "character"); }

  function setCharacter(id) {
    S.character = id;
    press("character-picker", id, "character");
    if (!S.ownerTouched && S.owner) S.owner.fill(id); // an unpainted owner layer follows the picker
  }

  function setLayer(layer) {
    S.layer = layer;
    document.querySelector(`input[name="layer"][value="${layer}"]`).checked = true;
    $("class-brushes").hidden = layer !== "label";
    $("owner-brushes").hidden = layer !== "owner";
    $("owner-canvas").hidden = layer !== "owner";
    render();
  }

  function setMode(mode) {
    S.mode = mode;
    document.querySelector(`input[name="mode"][value="${mode}"]`).checked = true;
    $("blend-controls").hidden = mode !== "blend";
    $("regions-hint").hidden = mode !== "regions";
  }

  function setSeed(seed) { S.seed = seed; $("seed").value = String(seed); }

  function setSize(size) {
    S.size = Math.max(1, Math.min(32, size));
    $("brush-size").value = String(S.size);
    $("brush-size-value").textContent = String(S.size);
  }

  function setBlendB(id) {
    S.blendB = id;
    $("blend-b").value = String(id);
    $("blend-b-swatch").style.background = `rgb(${S.model.characters[id].swatch.join(", ")})`;
  }

  function buildControls(m) {
    $("class-brushes").replaceChildren(...m.classes.map((c) =>
      brushButton(c.name, c.color, () => setClassBrush(c.id), { class: String(c.id) })));
    $("owner-brushes").replaceChildren(...m.characters.map((c) =>
      brushButton(c.name, c.swatch, () => setOwnerBrush(c.id), { character: String(c.id) })));
    $("character-picker").replaceChildren(...m.characters.map((c) =>
      brushButton(c.name, c.swatch, () => { setCharacter(c.id); schedule(); }, { character: String(c.id) })));
    $("blend-b").replaceChildren(...m.characters.map((c) => new Option(c.name, String(c.id))));
    $("variations-block").hidden = !m.z;
    $("seed-row").hidden = !m.z;
    $("model-line").textContent =
      `${m.size[0]}×${m.size[1]} · ${m.classes.length} classes · ${m.characters.length} characters · ${m.device} · ${m.engine}`;
  }

  function bindControls() {
    document.querySelectorAll('input[name="layer"]').forEach((r) =>
      r.addEventListener("change", () => setLayer(r.value)));
    document.querySelectorAll('input[name="tool"]').forEach((r) =>
      r.addEventListener("change", () => { S.tool = r.value; }));
    document.querySelectorAll('input[name="mode"]').forEach((r) =>
      r.addEventListener("change", () => { setMode(r.value); schedule(); }));
    $("eraser").addEventListener("click", () => {
      if (S.layer === "owner") setOwnerBrush(S.character); else setClassBrush(S.model.background);
    });
    $("brush-size").addEventListener("input", () => setSize(Number($("brush-size").value)));
    $("undo").addEventListener("click", () => restore(S.undo, S.redo));
    $("redo").addEventListener("click", () => restore(S.redo, S.undo));
    $("clear").addEventListener("click", () => {
      pushUndo();
      if (S.layer === "owner") { S.owner.fill(S.character); S.ownerTouched = false; }
      else S.label.fill(S.model.background);
      render(); schedule();
    });
    $("blend-b").addEventListener("change", () => { setBlendB(Number($("blend-b").value)); schedule(); });
    $("blend-t").addEventListener("input", () => {
      S.blendT = Number($("blend-t").value);
      $("blend-t-value").textContent = S.blendT.toFixed(2);
      schedule();
    });
    $("seed").addEventListener("change", () => {
      const v = Math.floor(Number($("seed").value));
      setSeed(Number.isFinite(v) ? Math.min(4294967295, Math.max(0, v)) : 0);
      schedule();
    });
    $("dice").addEventListener("click", () => { setSeed(Math.floor(Math.random() * 4294967296)); schedule(); });
    $("load-example").addEventListener("click", () => loadExample($("example").value));
    $("open-file").addEventListener("change", openFile);
    $("save").addEventListener("click", saveLabel);
    $("error-close").addEventListener("click", () => clearError());
    document.addEventListener("keydown", onKey);
  }

  function onKey(e) {
    if (e.target.closest("input, select, textarea")) return;
    const k = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && k === "z") { e.preventDefault(); e.shiftKey ? restore(S.redo, S.undo) : restore(S.undo, S.redo); }
    else if ((e.ctrlKey || e.metaKey) && k === "y") { e.preventDefault(); restore(S.redo, S.undo); }
    else if (e.ctrlKey || e.metaKey || e.altKey) return;
    else if (k === "[") setSize(S.size - 1);
    else if (k === "]") setSize(S.size + 1);
    else if (k === "b" || k === "f") {
      S.tool = k === "b" ? "brush" : "fill";
      document.querySelector(`input[name="tool"][value="${S.tool}"]`).checked = true;
    } else if (k === "e") $("eraser").click();
  }

  // --- maps in and out ----------------------------------------------------------------------------

  function setLabel(bytes) {
    if (S.label) pushUndo();
    S.label = bytes;
    render(); schedule();
  }

  async function loadExample(name) {
    try {
      if (!name) { setLabel(new Uint8Array(S.H * S.W).fill(S.model.background)); return; }
      const r = await (await api(`/api/examples/${encodeURIComponent(name)}`)).json();
      setLabel(fromBase64(r.label));
      clearError("map");
    } catch (e) { showError(e.message, "map"); }
  }

  async function openFile() {
    const file = $("open-file").files[0];
    $("open-file").value = "";
    if (!file) return;
    try {
      const r = await (await api(`/api/label?name=${encodeURIComponent(file.name)}`, {
        method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file,
      })).json();
      setLabel(fromBase64(r.label));
      clearError("map");
    } catch (e) { showError(e.message, "map"); }
  }

  async function saveLabel() {
    try {
      const blob = await (await postJson("/api/encode", { label: toBase64(S.label) })).blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "label.png";
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (e) { showError(e.message, "map"); }
  }

  // --- start --------------------------------------------------------------------------------------

  async function start() {
    bindControls();
    bindCanvas();
    try {
      const m = (S.model = await (await api("/api/model")).json());
      [S.H, S.W] = m.size;
      for (const id of ["label-canvas", "owner-canvas"]) { $(id).width = S.W; $(id).height = S.H; }
      classLut = lut(m.classes.map((c) => c.color));
      ownerLut = lut(m.characters.map((c) => c.swatch));
      buildControls(m);
      S.owner = new Uint8Array(S.H * S.W);
      const hair = m.classes.find((c) => c.name === "hair");
      setClassBrush(hair ? hair.id : 0);
      setOwnerBrush(Math.min(1, m.characters.length - 1));
      setCharacter(0);
      setBlendB(Math.min(1, m.characters.length - 1));
      setSize(Math.max(1, Math.round(S.W / 32)));
      setLayer("label");
      setMode("one");
      updateHistory();
      const ex = (await (await api("/api/examples")).json()).examples;
      $("example").replaceChildren(...(ex.length ? ex.map((e) => new Option(e.title, e.name)) : [new Option("Blank", "")]));
      await loadExample(ex.length ? ex[0].name : "");
      S.undo = []; updateHistory();
    } catch (e) {
      showError(e.message, "start");
    }
  }

  // Read-only view of the page's state, for scripted checks of what was painted.
  window.animesisApp = {
    snapshot: () => ({
      label: S.label ? toBase64(S.label) : null,
      owner: S.owner ? toBase64(S.owner) : null,
      shown: S.shown,
      seq: S.seq,
      mode: S.mode,
    }),
  };

  document.addEventListener("DOMContentLoaded", start);
})();
