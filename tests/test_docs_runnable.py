"""The docs' runnable code: every ```python block marked ``<!-- runnable -->`` on the line above it runs, as the
examples do (tests/test_examples.py): all in one interpreter (imports paid once), each as a script of its own
(``runpy``, ``__name__ == "__main__"``) from an empty working folder, offline, on the tiny models it builds. A
block proves its own claims with ``assert``; a failing one names its page and line here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARK = "<!-- runnable -->"

_DRIVER = r"""
import json, os, runpy, sys, traceback
report = {}
for name, path in json.loads(sys.argv[1]).items():
    os.makedirs(name, exist_ok=True)
    os.chdir(name)                                   # each block in a folder of its own
    try:
        runpy.run_path(path, run_name="__main__")
        report[name] = None
    except BaseException:
        report[name] = traceback.format_exc()
    os.chdir("..")
print("@@report " + json.dumps(report))
"""


def runnable_blocks(docs: Path = DOCS) -> dict[str, str]:
    """{"page.md:line": code} of every python block right below a runnable mark."""
    blocks = {}
    for md in sorted(docs.rglob("*.md")):
        text = md.read_text()
        for m in re.finditer(rf"^{re.escape(MARK)}\n```python\n(.*?)^```$", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 1
            blocks[f"{md.relative_to(docs).as_posix()}:{line}"] = m.group(1)
    return blocks


def test_every_mark_is_above_a_python_block():
    marks = sum(md.read_text().count(MARK) for md in DOCS.rglob("*.md"))
    blocks = runnable_blocks()
    assert marks == len(blocks)  # a mark above anything else would silently run nothing
    pages = {name.split(":")[0] for name in blocks}
    assert {"inpaint.md", "contributing/add-family.md", "contributing/add-app.md"} <= pages


def test_a_block_is_found_with_its_page_and_line(tmp_path):
    (tmp_path / "p.md").write_text(f"# P\n\n{MARK}\n```python\nx = 1\n```\n\n```python\nnot run\n```\n")
    assert runnable_blocks(tmp_path) == {"p.md:3": "x = 1\n"}


@pytest.mark.slow  # like the examples: one interpreter building tiny models (about 10 CPU-seconds, 15-40 s here)
def test_runnable_blocks_run(tmp_path):
    blocks = runnable_blocks()
    scripts = {}
    for i, code in enumerate(blocks.values()):
        script = tmp_path / f"block{i}.py"
        script.write_text(code)
        scripts[f"block{i}"] = str(script)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(scripts)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("@@report ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(lines[-1].removeprefix("@@report "))
    failed = {name: report[f"block{i}"] for i, name in enumerate(blocks) if report[f"block{i}"]}
    assert failed == {}, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    # the blocks' own outputs, in each block's folder: the inpaint page's output set, the dummy family's model
    # folder and its inpainting
    folder = {name.split(":")[0]: work / f"block{i}" for i, name in enumerate(blocks)}
    assert {"out.png", "out.json", "out_cand0.png", "out_cand1.png"} <= {p.name for p in folder["inpaint.md"].iterdir()}
    family = folder["contributing/add-family.md"]
    assert (family / "tiny-dummy" / "model_index.json").is_file() and (family / "dummy.png").is_file()
    assert json.loads((family / "dummy.json").read_text())["params"]["family"] == "dummy"
    assert {p.name for p in folder["contributing/add-app.md"].iterdir()} == {"in.png", "mirrored.png", "mirrored.json"}


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
