"""The visual report: results files, report.html (parses, links only existing files, every case), contact sheet."""

import csv
import io
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from _helpers_eval import FakeInpainter, FakeScorer, write_data
from PIL import Image

from prefpaint_sdk.evaluation import EvalReport, evaluate


class _Page(HTMLParser):
    """Collects what the tests check: image sources, links, scripts, case sections and their order."""

    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.sections, self.script_srcs, self.stack = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in ("img", "meta", "br", "link", "input"):
            self.stack.append(tag)
        if tag == "img":
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag == "script" and "src" in a:
            self.script_srcs.append(a["src"])
        if tag == "section":
            self.sections.append(a)

    def handle_endtag(self, tag):
        if tag in ("img", "meta", "br", "link", "input"):
            return
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    data = write_data(tmp / "data", n=7, masks=False)
    return evaluate(FakeInpainter(8, "A & <b>"), FakeInpainter(0, "B"), FakeScorer(), data, samples=(1, 2, 4),
                    out_dir=tmp / "out", steps=1, masks="strokes")


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == [], page.stack  # every element closed
    return page


def test_outputs_are_written(report):
    out = report.out_dir
    for name in ("results.json", "results.csv", "report.html", "contact_sheet.png", "eval_config.json"):
        assert (out / name).is_file(), name
    for c in report.cases:
        folder = out / "images" / c["name"]
        assert sorted(p.name for p in folder.glob("model_*.png")) == sorted(
            f"model_k{k}_seed{c['seed'] + k}.png" for k in range(4))
        assert (folder / f"baseline_seed{c['seed']}.png").is_file()


def test_html_parses_links_existing_files_and_shows_every_case(report):
    html_path = report.out_dir / "report.html"
    page = _parse(html_path)
    assert page.script_srcs == [] and page.hrefs == []  # nothing external: opens offline
    text = html_path.read_text()
    assert "http://" not in text and "https://" not in text
    for src in page.srcs:
        assert not src.startswith(("data:", "/", "//")), src
        assert (html_path.parent / unquote(src)).is_file(), src
    names = [s["data-name"] for s in page.sections]
    assert sorted(names) == sorted(c["name"] for c in report.cases)
    # input, overlay, baseline and the 4 samples per case
    assert len(page.srcs) == len(report.cases) * (3 + 4)
    # Biggest wins first at the largest S, and each S has its sort key.
    diffs = [float(s["data-diff-4"]) for s in page.sections]
    assert diffs == sorted(diffs, reverse=True)
    assert all({"data-diff-1", "data-diff-2", "data-diff-4"} <= set(s) for s in page.sections)
    assert 'data-order="asc"' in text and "A &amp; &lt;b&gt;" in text and "<b>A & <b>" not in text


def test_summary_table_shows_the_figures(report):
    text = (report.out_dir / "report.html").read_text()
    for r in report.rows():
        assert f"{r['win_rate'] * 100:.1f}%" in text
        assert f"{r['wins']} / {r['ties']} / {r['losses']}" in text


def test_html_elsewhere_and_embedded(report, tmp_path):
    elsewhere = report.to_html(tmp_path / "sub" / "r.html")
    for src in _parse(elsewhere).srcs:
        assert (elsewhere.parent / unquote(src)).is_file(), src
    embedded = report.to_html(tmp_path / "embedded.html", embed=True)
    srcs = _parse(embedded).srcs
    assert srcs and all(s.startswith("data:image/jpeg;base64,") for s in srcs)


def test_results_files_agree_with_the_report(report):
    loaded = EvalReport.load(report.out_dir)
    assert loaded.rows() == report.rows() and loaded.cases == report.cases
    rows = list(csv.DictReader(io.StringIO((report.out_dir / "results.csv").read_text())))
    assert len(rows) == len(report.cases) * 3
    for r in report.rows():
        mine = [x for x in rows if int(x["S"]) == r["S"]]
        assert sum(x["outcome"] == "win" for x in mine) == r["wins"]
        assert sum(x["outcome"] == "tie" for x in mine) == r["ties"]
    text = report.summary()
    assert "WinRate" in text and "ties count half" in text and len(text.splitlines()) == 2 + 3 + 1


def test_contact_sheet(report, tmp_path):
    im = Image.open(report.out_dir / "contact_sheet.png")
    a = np.asarray(im.convert("L"), dtype=np.float64)
    assert im.width >= 3 * 160 and a.std() > 10  # tiles drawn, not a blank page
    small = report.contact_sheet(tmp_path / "s.png", per_side=1, tile=64)
    assert Image.open(small).height < im.height


@pytest.mark.slow  # a real browser
def test_report_renders_in_a_headless_browser(report, tmp_path, chromium):
    shot = tmp_path / "shot.png"
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900",
                        f"--screenshot={shot}", (report.out_dir / "report.html").resolve().as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.is_file(), r.stderr[-2000:]
    a = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert a.std() > 5  # not a blank page
