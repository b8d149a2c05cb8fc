"""The rating page: one self-contained HTML file in DATA (no network, no server; it works from file://).

It shows each prompt image with its K inpaintings, the hole outlined on each, and collects the paper's three
criteria (structural rationality, local texture, overall feeling) on 0–7. The inpaintings are referenced by
relative path (``inpaint/...``), so the page must stay in DATA; the outlines are drawn here, in Python, and
embedded as PNG data URIs (a canvas could not read pixels of file:// images). Progress is kept in the
browser's localStorage; "Export" downloads the ratings JSON that ``prefpaint rate DATA --import`` reads.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from prefpaint_sdk import OutputExistsError, load_mask
from prefpaint_sdk.utils import Arg, Hint, check_output_path, write_set

from .dataset import RateDataset, scan_dataset

__all__ = ["PAGE_MARKER", "PAGE_NAME", "is_rating_page", "outline_png", "write_rating_page"]

PAGE_NAME = "rate.html"
# In every page this module writes, near the top: how it knows its own page (the only rate.html it replaces).
PAGE_MARKER = '<meta name="generator" content="prefpaint rate">'
_OUTLINE_RGBA = (255, 0, 255, 255)  # magenta: visible on photos and on grey alike


def outline_png(mask_path: str | os.PathLike) -> str:
    """The hole's outline as a transparent PNG data URI at the mask's size (line width ~ size / 200)."""
    hole = load_mask(mask_path)
    h, w = hole.shape
    inner = hole.copy()
    inner[1:, :] &= hole[:-1, :]
    inner[:-1, :] &= hole[1:, :]
    inner[:, 1:] &= hole[:, :-1]
    inner[:, :-1] &= hole[:, 1:]
    edge = hole & ~inner
    for _ in range(max(0, round(max(h, w) / 200) - 1)):  # thicken outwards so the line survives downscaling
        grown = edge.copy()
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[edge] = _OUTLINE_RGBA
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _items(ds: RateDataset) -> list[dict]:
    rel = lambda p: p.relative_to(ds.root).as_posix()  # noqa: E731
    return [{"imgid": p.imgid, "masked": rel(p.masked) if p.masked else None, "outline": outline_png(p.mask),
             "candidates": [{"key": key, "src": rel(path)} for key, path in p.candidates]} for p in ds.prompts]


def is_rating_page(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a page :func:`write_rating_page` wrote (it holds the marker near its top)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return PAGE_MARKER.encode() in head


def write_rating_page(data: str | os.PathLike, *, overwrite: bool = False, title: str | None = None) -> Path:
    """Write ``DATA/rate.html`` for the dataset in ``data`` (official layout); returns its path.

    It replaces a page it wrote itself (rewriting keeps every rater's progress: that lives in the browser,
    keyed by the dataset); any other file of that name is refused unless ``overwrite``.

    Raises:
        DataError: ``data`` is not the official layout (see :func:`~prefpaint_apps.rate.scan_dataset`).
        OutputExistsError: a ``rate.html`` this function did not write exists and ``overwrite`` is false.
    """
    from .checks import validate

    validate(data)
    ds = scan_dataset(data)
    dest = Path(data) / PAGE_NAME
    own = [dest] if is_rating_page(dest) else []
    if dest.is_file() and not own and not overwrite:
        raise OutputExistsError(f"'{dest}' exists and is not a page that 'prefpaint rate' wrote; move it away",
                                Hint(", or pass ", Arg("overwrite", True), " to replace it"))
    check_output_path(dest, overwrite=True)  # a folder in the way, an unwritable place
    payload = {"dataset": ds.dataset_id, "name": ds.root.name, "items": _items(ds)}
    # JSON inside <script>: "</" must not close the element, whatever a file name holds.
    data_js = json.dumps(payload).replace("</", "<\\/").replace("<!--", "<\\!--")
    page = _TEMPLATE.replace("__TITLE__", html.escape(title or f"Rate {ds.root.name}")).replace("__DATA__", data_js)
    write_set({dest: lambda tmp: tmp.write_text(page, encoding="utf-8")}, overwrite=overwrite, own=own)
    return dest


_TEMPLATE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="prefpaint rate">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f4f4;color:#222}
 header{display:flex;gap:1em;align-items:center;flex-wrap:wrap;padding:.6em 1em;background:#222;color:#eee}
 header input{width:9em} header .grow{flex:1} #progress{font-variant-numeric:tabular-nums}
 main{padding:1em;display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
 figure{margin:0;background:#fff;padding:.5em;border-radius:6px;box-shadow:0 1px 3px #0003}
 figcaption{font-weight:600;margin-bottom:.3em}
 .stack{position:relative;width:256px;height:256px;background:#ddd}
 .stack img{position:absolute;inset:0;width:100%;height:100%;object-fit:contain;image-rendering:auto}
 .crit{display:flex;align-items:center;gap:2px;margin-top:4px}
 .crit span.label{width:6.5em;font-size:12px}
 .crit button{width:24px;height:24px;border:1px solid #aaa;background:#fafafa;border-radius:3px;cursor:pointer;padding:0}
 .crit button.on{background:#2a6;color:#fff;border-color:#2a6}
 .crit.cursor{outline:2px solid #e80;border-radius:3px}
 .done figcaption::after{content:" ✓";color:#2a6}
 footer{padding:0 1em 1em;color:#555;font-size:12px}
 kbd{border:1px solid #aaa;border-radius:3px;padding:0 3px;background:#fff}
 #export-text{width:100%;height:6em;display:none}
</style></head>
<body>
<header>
 <strong id="name"></strong>
 <span>prompt <span id="pos"></span></span>
 <span id="progress"></span>
 <span class="grow"></span>
 <label>rater <input id="rater" placeholder="your name" autocomplete="off"></label>
 <button id="prev">◀ prev</button><button id="next">next ▶</button>
 <button id="export">Export ratings</button>
</header>
<main id="main"></main>
<footer>
 Rate each inpainting on three criteria, 0 (worst) to 7 (best): <b>structure</b> (structural rationality),
 <b>texture</b> (local texture), <b>overall</b> (overall feeling). The hole is outlined in magenta.
 Keys: <kbd>0</kbd>–<kbd>7</kbd> rate the highlighted row and move on; <kbd>↑</kbd>/<kbd>↓</kbd> move;
 <kbd>←</kbd>/<kbd>→</kbd> or <kbd>p</kbd>/<kbd>n</kbd> previous/next prompt; <kbd>e</kbd> export.
 Progress is saved in this browser.
 <textarea id="export-text" readonly></textarea>
</footer>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const CRITERIA = [["structure", "structure"], ["texture", "texture"], ["overall", "overall"]];
const STORE = "prefpaint-rate:" + DATA.dataset;
let state = {rater: "", ratings: {}, index: 0, cursor: 0};
try { Object.assign(state, JSON.parse(localStorage.getItem(STORE) || "{}")); } catch (e) {}
function save() { try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (e) {} }
const total = DATA.items.reduce((n, it) => n + it.candidates.length, 0);
function complete(key) { const r = state.ratings[key]; return !!r && CRITERIA.every(([c]) => Number.isInteger(r[c])); }
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  for (const k of kids) e.appendChild(k);
  return e;
}
function cells() { const it = DATA.items[state.index]; return it.candidates.flatMap(c => CRITERIA.map(([k]) => [c.key, k])); }
function render() {
  state.index = Math.max(0, Math.min(state.index, DATA.items.length - 1));
  const it = DATA.items[state.index], main = document.getElementById("main");
  main.replaceChildren();
  if (it.masked) {
    main.appendChild(el("figure", {id: "prompt"}, el("figcaption", {text: "prompt " + it.imgid}),
      el("div", {class: "stack"}, el("img", {src: it.masked, alt: "prompt image"}), el("img", {src: it.outline, alt: ""}))));
  }
  const cs = cells();
  state.cursor = Math.max(0, Math.min(state.cursor, cs.length - 1));
  it.candidates.forEach((c, ci) => {
    const fig = el("figure", {class: "cand" + (complete(c.key) ? " done" : ""), "data-key": c.key},
      el("figcaption", {text: c.key}),
      el("div", {class: "stack"}, el("img", {src: c.src, alt: c.key}), el("img", {class: "outline", src: it.outline, alt: ""})));
    CRITERIA.forEach(([crit, label], k) => {
      const row = el("div", {class: "crit" + (ci * CRITERIA.length + k === state.cursor ? " cursor" : ""), "data-crit": crit},
        el("span", {class: "label", text: label}));
      for (let v = 0; v <= 7; v++) {
        const b = el("button", {type: "button", "data-value": String(v), text: String(v)});
        if ((state.ratings[c.key] || {})[crit] === v) b.classList.add("on");
        b.addEventListener("click", () => { state.cursor = ci * CRITERIA.length + k; rate(v, false); });
        row.appendChild(b);
      }
      fig.appendChild(row);
    });
    main.appendChild(fig);
  });
  const done = Object.keys(state.ratings).filter(complete).length;
  document.getElementById("pos").textContent = (state.index + 1) + " / " + DATA.items.length;
  document.getElementById("progress").textContent = done + " / " + total + " rated";
  document.getElementById("name").textContent = DATA.name;
  document.getElementById("rater").value = state.rater || "";
}
function rate(v, advance) {
  const [key, crit] = cells()[state.cursor];
  state.ratings[key] = Object.assign({}, state.ratings[key], {[crit]: v});
  if (advance !== false) {
    if (state.cursor < cells().length - 1) state.cursor++;
    else if (state.index < DATA.items.length - 1) { state.index++; state.cursor = 0; }
  }
  save(); render();
}
function go(d) { state.index += d; state.cursor = 0; save(); render(); }
function exportRatings() {
  const ratings = {};
  for (const [k, r] of Object.entries(state.ratings)) if (complete(k)) ratings[k] = r;
  const out = {format: "prefpaint-ratings", version: 1, dataset: DATA.dataset, name: DATA.name,
               rater: state.rater || "anonymous", exported: new Date().toISOString(), ratings: ratings};
  const text = JSON.stringify(out, null, 1);
  const ta = document.getElementById("export-text");
  ta.value = text; ta.style.display = "block";
  const a = el("a", {href: URL.createObjectURL(new Blob([text], {type: "application/json"})),
                     download: "ratings-" + (state.rater || "anonymous").replace(/[^A-Za-z0-9._-]/g, "_") + ".json"});
  document.body.appendChild(a); a.click(); a.remove();
}
document.getElementById("prev").addEventListener("click", () => go(-1));
document.getElementById("next").addEventListener("click", () => go(1));
document.getElementById("export").addEventListener("click", exportRatings);
document.getElementById("rater").addEventListener("input", e => { state.rater = e.target.value; save(); });
document.addEventListener("keydown", e => {
  if (e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^[0-7]$/.test(e.key)) rate(Number(e.key));
  else if (e.key === "ArrowDown") { state.cursor = Math.min(state.cursor + 1, cells().length - 1); render(); }
  else if (e.key === "ArrowUp") { state.cursor = Math.max(state.cursor - 1, 0); render(); }
  else if (e.key === "ArrowRight" || e.key === "n") go(1);
  else if (e.key === "ArrowLeft" || e.key === "p") go(-1);
  else if (e.key === "e") exportRatings();
  else return;
  e.preventDefault();
});
render();
</script>
</body></html>
"""
