// The PrefPaint page: load an image, paint a mask (white = fill), run /v1/inpaint, compare and download.
// Plain script, no library and no other origin: the server serves every byte of this page.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { imageBlob: null, imageUrl: null, width: 0, height: 0, erasing: false, undo: [], drawing: false,
                last: null, key: "", defaultSteps: 50, polling: null };
const imageCanvas = $("image-canvas"), maskCanvas = $("mask-canvas");
const mctx = maskCanvas.getContext("2d");

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function headers() {
  return state.key ? { "Authorization": "Bearer " + state.key } : {};
}

// ---- the server ---------------------------------------------------------------------------------
fetch("/health").then((r) => r.json()).then((h) => {
  $("model").textContent = (h.model || "") + (h.reward_model ? " · reward model loaded" : " · no reward model");
  if (h.default_steps) state.defaultSteps = h.default_steps;
  $("steps").placeholder = String(state.defaultSteps);
  if (h.auth) {
    $("key-label").hidden = false;
    state.key = sessionStorage.getItem("prefpaint-key") || "";
    $("api-key").value = state.key;
  }
}).catch(() => setStatus("the server does not answer /health", true));
$("api-key").addEventListener("change", (e) => {
  state.key = e.target.value.trim();
  sessionStorage.setItem("prefpaint-key", state.key);
});

// ---- the image: choose, paste or drop -----------------------------------------------------------
function loadImage(blob) {
  if (!blob || !blob.type.startsWith("image/")) { setStatus("that is not an image file", true); return; }
  const url = URL.createObjectURL(blob);
  const img = new Image();
  img.onload = () => {
    if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
    state.imageBlob = blob; state.imageUrl = url;
    state.width = img.naturalWidth; state.height = img.naturalHeight;
    for (const c of [imageCanvas, maskCanvas]) { c.width = state.width; c.height = state.height; }
    imageCanvas.getContext("2d").drawImage(img, 0, 0);
    mctx.clearRect(0, 0, state.width, state.height);
    state.undo = [];
    $("stage").hidden = false;
    setStatus(`image ${state.width}×${state.height}: paint the area to fill`);
  };
  img.onerror = () => setStatus("the browser cannot read that image", true);
  img.src = url;
}
$("image-file").addEventListener("change", (e) => loadImage(e.target.files[0]));
document.addEventListener("paste", (e) => {
  for (const item of (e.clipboardData || {}).items || []) {
    if (item.type.startsWith("image/")) { loadImage(item.getAsFile()); e.preventDefault(); return; }
  }
});
const drop = $("drop");
for (const ev of ["dragenter", "dragover"]) {
  document.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
document.addEventListener("dragleave", () => drop.classList.remove("over"));
document.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) loadImage(e.dataTransfer.files[0]);
});

// ---- the mask: brush, eraser, undo, clear, upload -----------------------------------------------
function brushSize() { return Number($("brush").value); }
$("brush").addEventListener("input", () => { $("brush-value").textContent = brushSize() + " px"; });
function setTool(erasing) {
  state.erasing = erasing;
  $("paint").classList.toggle("on", !erasing); $("paint").setAttribute("aria-pressed", String(!erasing));
  $("eraser").classList.toggle("on", erasing); $("eraser").setAttribute("aria-pressed", String(erasing));
}
$("paint").addEventListener("click", () => setTool(false));
$("eraser").addEventListener("click", () => setTool(true));
function snapshot() {
  state.undo.push(mctx.getImageData(0, 0, maskCanvas.width, maskCanvas.height));
  if (state.undo.length > 30) state.undo.shift();
}
$("undo").addEventListener("click", () => { const s = state.undo.pop(); if (s) mctx.putImageData(s, 0, 0); });
$("clear").addEventListener("click", () => { snapshot(); mctx.clearRect(0, 0, maskCanvas.width, maskCanvas.height); });

function toCanvas(e) {
  const r = maskCanvas.getBoundingClientRect();
  return [(e.clientX - r.left) * maskCanvas.width / r.width, (e.clientY - r.top) * maskCanvas.height / r.height];
}
function strokeTo(p) {
  const scale = maskCanvas.width / maskCanvas.getBoundingClientRect().width;
  mctx.globalCompositeOperation = state.erasing ? "destination-out" : "source-over";
  mctx.strokeStyle = mctx.fillStyle = "rgb(255, 40, 40)";
  mctx.lineWidth = brushSize() * scale; mctx.lineCap = "round"; mctx.lineJoin = "round";
  mctx.beginPath();
  const from = state.last || p;
  mctx.moveTo(from[0], from[1]); mctx.lineTo(p[0] + 0.01, p[1]);
  mctx.stroke();
  state.last = p;
}
maskCanvas.addEventListener("pointerdown", (e) => {
  if (!state.imageBlob) return;
  snapshot(); state.drawing = true; state.last = null;
  maskCanvas.setPointerCapture(e.pointerId);
  strokeTo(toCanvas(e));
});
maskCanvas.addEventListener("pointermove", (e) => { if (state.drawing) strokeTo(toCanvas(e)); });
for (const ev of ["pointerup", "pointercancel"]) {
  maskCanvas.addEventListener(ev, () => { state.drawing = false; state.last = null; });
}

$("mask-file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file || !state.imageBlob) { setStatus("choose the image first, then its mask", true); return; }
  const img = new Image();
  img.onload = () => {
    const tmp = document.createElement("canvas");
    tmp.width = state.width; tmp.height = state.height;
    const t = tmp.getContext("2d");
    t.drawImage(img, 0, 0, state.width, state.height);
    const src = t.getImageData(0, 0, state.width, state.height);
    const out = mctx.createImageData(state.width, state.height);
    for (let i = 0; i < src.data.length; i += 4) {
      const luma = 0.299 * src.data[i] + 0.587 * src.data[i + 1] + 0.114 * src.data[i + 2];
      if (luma >= 128 && src.data[i + 3] >= 128) { out.data[i] = 255; out.data[i + 1] = 40; out.data[i + 2] = 40; out.data[i + 3] = 255; }
    }
    snapshot(); mctx.putImageData(out, 0, 0);
    URL.revokeObjectURL(img.src);
    setStatus("mask loaded (white = fill)");
  };
  img.src = URL.createObjectURL(file);
});

// The painted mask as a PNG where white = fill: every pixel the brush touched is a hole.
function maskBlob() {
  const w = maskCanvas.width, h = maskCanvas.height;
  const painted = mctx.getImageData(0, 0, w, h);
  const out = new ImageData(w, h);
  let any = false;
  for (let i = 0; i < painted.data.length; i += 4) {
    const v = painted.data[i + 3] > 0 ? 255 : 0;
    any = any || v > 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v; out.data[i + 3] = 255;
  }
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  c.getContext("2d").putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob((b) => resolve({ blob: b, any: any }), "image/png"));
}

// ---- run, progress, results ---------------------------------------------------------------------
async function errorText(r) {
  try { const j = await r.json(); return (j.error && j.error.message) || r.statusText; } catch (_) { return r.statusText; }
}

$("params").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!state.imageBlob) { setStatus("choose an image first", true); return; }
  const mask = await maskBlob();
  if (!mask.any) { setStatus("paint the area to fill first (or upload a mask)", true); return; }
  const form = new FormData();
  form.append("image", state.imageBlob, "image");
  form.append("mask", mask.blob, "mask.png");
  for (const name of ["n", "seed", "steps"]) { if ($(name).value !== "") form.append(name, $(name).value); }
  form.append("prompt", $("prompt").value);
  $("run").disabled = true; $("bar").value = 0; setStatus("sending");
  try {
    const r = await fetch("/v1/inpaint?wait=false", { method: "POST", body: form, headers: headers() });
    if (r.status !== 202) { throw new Error(await errorText(r)); }
    const job = await r.json();
    const result = await follow(job.id);
    showResults(result);
  } catch (err) {
    setStatus(String(err.message || err), true);
  } finally {
    $("run").disabled = false;
  }
});

async function follow(id) {
  for (;;) {
    const r = await fetch("/v1/jobs/" + encodeURIComponent(id), { headers: headers() });
    if (!r.ok) throw new Error(await errorText(r));
    const j = await r.json();
    if (j.status === "queued") {
      setStatus(`queued: position ${j.position}`);
    } else if (j.status === "running") {
      if (j.total) { $("bar").max = j.total; $("bar").value = j.step; }
      setStatus(j.total ? `denoising: step ${j.step} of ${j.total}` : "starting");
    } else if (j.status === "done") {
      $("bar").max = 1; $("bar").value = 1;
      return j.result;
    } else {
      throw new Error((j.error && j.error.message) || j.status);
    }
    await new Promise((ok) => setTimeout(ok, 150));
  }
}

function fmt(x) { return x === null || x === undefined ? "n/a" : Number(x).toFixed(4); }

function b64ToBlob(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: "image/png" });
}

function showResults(res) {
  const box = $("candidates");
  for (const a of box.querySelectorAll("a[href^='blob:'], img[src^='blob:']")) URL.revokeObjectURL(a.href || a.src);
  box.textContent = "";
  $("hint").hidden = true;
  const order = res.images.map((_, k) => k);
  if (res.scores) order.sort((a, b) => (b === res.chosen) - (a === res.chosen) || res.scores[b] - res.scores[a]);
  const steps = res.params.steps;
  for (const k of order) {
    const seed = res.seeds[k];
    const fig = document.createElement("figure");
    fig.className = "candidate" + (k === res.chosen ? " chosen" : "");
    fig.dataset.index = String(k); fig.dataset.seed = String(seed);
    const cmp = document.createElement("div"); cmp.className = "compare";
    const after = document.createElement("img"); after.className = "after"; after.alt = "candidate " + k;
    const url = URL.createObjectURL(b64ToBlob(res.images[k]));
    after.src = url;
    const before = document.createElement("img"); before.className = "before"; before.alt = "input";
    before.src = state.imageUrl;
    cmp.append(after, before);
    const slider = document.createElement("input");
    slider.type = "range"; slider.min = "0"; slider.max = "100"; slider.value = "0"; slider.className = "reveal";
    slider.title = "Slide to compare with the input";
    const clip = () => { before.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; };
    slider.addEventListener("input", clip); clip();
    const cap = document.createElement("figcaption");
    if (k === res.chosen) { const b = document.createElement("span"); b.className = "badge"; b.textContent = "chosen"; cap.append(b); }
    const facts = document.createElement("span"); facts.className = "facts";
    facts.textContent = `reward ${fmt(res.scores && res.scores[k])} · trust ${fmt(res.trust && res.trust[k])} · ` +
      `bound ${fmt(res.bounds && res.bounds[k])} · seed ${seed}`;
    cap.append(facts);
    const actions = document.createElement("div"); actions.className = "actions";
    const toggle = document.createElement("button"); toggle.type = "button"; toggle.textContent = "Show input";
    toggle.addEventListener("click", () => {
      const on = cmp.classList.toggle("showing-input");
      if (on) before.style.clipPath = "none"; else clip();
      toggle.textContent = on ? "Show result" : "Show input";
    });
    const name = `prefpaint-seed${seed}-steps${steps}`;
    const dl = document.createElement("a"); dl.className = "download"; dl.href = url; dl.download = name + ".png";
    dl.textContent = "Download";
    const params = Object.assign({}, res.params, { seed: seed, num_candidates: 1 });
    const sidecar = { seed: seed, score: res.scores ? res.scores[k] : null, bound: res.bounds ? res.bounds[k] : null,
                      trust: res.trust ? res.trust[k] : null, params: params, model: res.model, box: res.box };
    const js = document.createElement("a"); js.className = "params";
    js.href = URL.createObjectURL(new Blob([JSON.stringify(sidecar, null, 2)], { type: "application/json" }));
    js.download = name + ".json"; js.textContent = "Params (JSON)";
    actions.append(toggle, dl, js);
    fig.append(cmp, slider, cap, actions);
    box.append(fig);
  }
  const t = res.timings || {};
  setStatus(`done: ${res.images.length} candidates in ${(t.total_s || 0).toFixed(2)} s` +
            (res.scores ? "" : " (no reward model: no scores)"));
}
