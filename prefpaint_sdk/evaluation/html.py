"""The self-contained ``report.html``: summary table and one grid per case, sortable by score difference.

No external resource (fonts, scripts, styles) is referenced, so it opens offline. Images are relative
links to the files beside it, or embedded JPEG thumbnails (``embed=True``). Cases are ordered biggest win
first at the largest S; a few lines of inline script re-sort them (biggest losses first, by name, at any
S) without a server.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from urllib.parse import quote

from ..files import atomic_write_bytes

__all__ = ["write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:0 0 .2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#eee}
.controls{margin:1em 0;position:sticky;top:0;background:#fafafa;padding:.4em 0;border-bottom:1px solid #ddd}
.case{background:#fff;border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em 1em}
.case h3{margin:.2em 0}.meta{color:#555;font-size:.9em}
.grid{display:flex;flex-wrap:wrap;gap:.6em}figure{margin:0;text-align:center;font-size:.8em}
figure img{width:160px;height:auto;display:block;border:2px solid transparent;image-rendering:auto}
figure.baseline img{border-color:#888}figure.best img{border-color:#1a7f37}
.win{color:#1a7f37;font-weight:bold}.loss{color:#c62828;font-weight:bold}.tie{color:#777;font-weight:bold}
.badge{display:inline-block;background:#1a7f37;color:#fff;border-radius:3px;padding:0 .3em;margin:0 .1em}
"""

_JS = """
(function(){
  var box=document.getElementById('cases'), sel=document.getElementById('sortS');
  function sort(order){
    var s=sel.value, cases=Array.prototype.slice.call(box.querySelectorAll('section.case'));
    cases.sort(function(a,b){
      if(order==='name'){return a.dataset.name<b.dataset.name?-1:(a.dataset.name>b.dataset.name?1:0);}
      var da=parseFloat(a.getAttribute('data-diff-'+s)), db=parseFloat(b.getAttribute('data-diff-'+s));
      return order==='asc'?da-db:db-da;
    });
    cases.forEach(function(c){box.appendChild(c);});
  }
  Array.prototype.forEach.call(document.querySelectorAll('button[data-order]'),function(b){
    b.addEventListener('click',function(){sort(b.getAttribute('data-order'));});
  });
})();
"""


def _fmt(x, spec=".4f") -> str:
    return "n/a" if x is None else format(x, spec)


class _Images:
    """Turns a report-relative image path into an ``src`` attribute: a relative URL, or a data URI."""

    def __init__(self, report, html_path: Path, embed: bool, thumb: int = 256):
        self.report, self.base, self.embed, self.thumb = report, html_path.parent, embed, thumb

    def src(self, rel: str) -> str:
        path = self.report._image_path(rel)
        if self.embed:
            from PIL import Image

            with Image.open(path) as im:
                im = im.convert("RGB")
                im.thumbnail((self.thumb, self.thumb))
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=85)
            return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        return quote(Path(os.path.relpath(path.resolve(), self.base.resolve())).as_posix())


def _figure(images: _Images, rel: str, caption: str, cls: str = "") -> str:
    return (f'<figure class="{cls}"><img src="{html.escape(images.src(rel), quote=True)}" alt="{html.escape(caption)}" '
            f'loading="lazy"><figcaption>{caption}</figcaption></figure>')


def _summary_table(report) -> str:
    head = ("<tr><th>S</th><th>WinRate</th><th>CI</th><th>wins / ties / losses</th><th>mean reward</th>"
            "<th>mean bound</th><th>reward variance</th><th>within-case variance</th><th>masked PSNR</th>"
            "<th>masked SSIM</th>" + "".join(f"<th>{html.escape(lab)}</th>" for lab in report.reward_labels()) + "</tr>")

    def more(r):  # a reward stack: each reward's mean score in its own column
        return "".join(f"<td>{_fmt(v)}</td>" for v in r.get("rewards", {}).values())

    body = []
    for r in report.rows():
        body.append(f"<tr><td>{r['S']}</td><td>{r['win_rate'] * 100:.1f}%</td>"
                    f"<td>[{r['ci_low'] * 100:.1f}%, {r['ci_high'] * 100:.1f}%]</td>"
                    f"<td>{r['wins']} / {r['ties']} / {r['losses']}</td><td>{_fmt(r['mean_reward'])}</td>"
                    f"<td>{_fmt(r['mean_bound'])}</td><td>{_fmt(r['reward_var'])}</td><td>{_fmt(r['within_var'])}</td>"
                    f"<td>{_fmt(r['psnr'], '.2f')}</td><td>{_fmt(r['ssim'], '.3f')}</td>{more(r)}</tr>")
    b = report.baseline_row()
    body.append(f"<tr><td>baseline</td><td></td><td></td><td></td><td>{_fmt(b['mean_reward'])}</td>"
                f"<td>{_fmt(b['mean_bound'])}</td><td>{_fmt(b['reward_var'])}</td><td></td>"
                f"<td>{_fmt(b['psnr'], '.2f')}</td><td>{_fmt(b['ssim'], '.3f')}</td>{more(b)}</tr>")
    return f'<table id="summary">{head}{"".join(body)}</table>'


def _case_section(report, case: dict, images: _Images) -> str:
    smax = report.samples[-1]
    diffs = {s: report.score_diff(case, s) for s in report.samples}
    attrs = " ".join(f'data-diff-{s}="{d:.6g}"' for s, d in diffs.items())
    name = html.escape(case["name"])
    picks = {}
    for s in report.samples:
        picks.setdefault(report.pick(case, s), []).append(s)
    tol = report.tie_tolerance
    verdicts = []
    for s, d in diffs.items():
        cls = "win" if d > tol else ("loss" if d < -tol else "tie")
        verdicts.append(f'S={s}: <span class="{cls}">{cls} ({d:+.4f})</span>')
    figs = [_figure(images, case["files"]["input"], "input"),
            _figure(images, case["files"]["overlay"], f"mask ({case['mask_kind']}, {case['coverage'] * 100:.0f}%)")]
    if "target" in case["files"]:
        figs.append(_figure(images, case["files"]["target"], "ground truth"))
    b = case["baseline"]
    figs.append(_figure(images, b["file"], f"baseline (seed {b['seed']})<br>score {_fmt(b['score'])}<br>"
                        f"bound {_fmt(b['bound'])}", "baseline"))
    m = case["model"]
    for k in range(smax):
        badges = "".join(f'<span class="badge">best of {s}</span>' for s in picks.get(k, []))
        figs.append(_figure(images, m["files"][k], f"model k={k} (seed {m['seeds'][k]})<br>score {_fmt(m['scores'][k])}"
                            f"<br>bound {_fmt(m['bounds'][k])}<br>{badges}", "best" if k in picks else ""))
    return (f'<section class="case" id="case-{name}" data-name="{name}" {attrs}><h3>{name}</h3>'
            f'<div class="meta">{" · ".join(verdicts)}</div><div class="grid">{"".join(figs)}</div></section>')


def write_html(report, path: Path, *, embed: bool = False) -> Path:
    """Write ``report`` as one HTML page at ``path`` (atomically). See the module docstring."""
    images = _Images(report, path, embed)
    smax = report.samples[-1]
    cases = sorted(report.cases, key=lambda c: -report.score_diff(c, smax))
    cfg = report.config
    options = "".join(f'<option value="{s}"{" selected" if s == smax else ""}>{s}</option>' for s in report.samples)
    failures = ""
    if report.failures:
        items = "".join(f"<li>{html.escape(f['name'])}: {html.escape(f['error'])}</li>" for f in report.failures)
        failures = f"<h2>Skipped cases ({len(report.failures)})</h2><ul>{items}</ul>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>PrefPaint evaluation: {html.escape(str(cfg.get('model')))}</title>
<style>{_CSS}</style></head><body>
<h1>PrefPaint evaluation</h1>
<p>Model <b>{html.escape(str(cfg.get('model')))}</b> against baseline <b>{html.escape(str(cfg.get('baseline')))}</b>,
scored by <b>{html.escape(str(cfg.get('reward_model')))}</b>; {len(report.cases)} cases, {cfg.get('steps') or 'family default'} steps,
seed {cfg.get('seed')}, masks {html.escape(str(cfg.get('masks')))}. The model wins a case when its best-of-S reward
beats the baseline's single sample; a tie counts as half a win; {int(report.confidence * 100)}% confidence
interval by {html.escape(report.ci)}.</p>
{_summary_table(report)}
<div class="controls">Sort by score difference at S =
<select id="sortS">{options}</select>
<button data-order="desc">biggest wins first</button>
<button data-order="asc">biggest losses first</button>
<button data-order="name">by name</button></div>
<div id="cases">
{"".join(_case_section(report, c, images) for c in cases)}
</div>
{failures}
<script>{_JS}</script>
</body></html>
"""
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
