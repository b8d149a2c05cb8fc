"""The examples a user copies run offline on tiny models, write only into the folder they name, and run twice.

All of them run in one interpreter (imports are paid once), each twice in a row, from an empty working folder
and with an empty ``TMPDIR``: afterwards the working folder holds only ``out/``, nothing is left in ``TMPDIR``,
no hidden stage survives, and the second run gives the same files with the same pictures.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The slow tier: every example runs twice in a subprocess (about 17 CPU-seconds, near the quick tier's limit).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# example -> its arguments (fast settings on the tiny models)
RUNS = {
    "inpaint.py": ["--tiny", "--steps", "2", "-n", "2"],
    "best_of_n.py": ["--tiny", "--steps", "2", "-n", "2"],
    "score_folder.py": ["--tiny"],
    "evaluate.py": ["--tiny", "--steps", "2", "--samples", "1", "2"],
    "extend.py": [],
    "recon3d.py": ["--tiny", "--views", "2"],
}

_DRIVER = r"""
import hashlib, json, os, runpy, sys, traceback
from pathlib import Path

def tree():
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(".").rglob("*")) if p.is_file()}

sys.path.insert(0, os.path.dirname(json.loads(sys.argv[1]) and next(iter(json.loads(sys.argv[1])))))  # as `python x.py`
report = {}
for script, args in json.loads(sys.argv[1]).items():
    runs = []
    for _ in range(2):
        sys.argv = [script, *args]
        error = None
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = f"SystemExit({exc.code!r})"
        except BaseException:
            error = traceback.format_exc()
        runs.append({"error": error, "files": tree()})
    report[Path(script).name] = runs
print("@@report " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """{example: [first run, second run]}, each {"error", "files": {path: sha256}}; plus the work and temp folders."""
    work, tmp = tmp_path_factory.mktemp("examples-cwd"), tmp_path_factory.mktemp("examples-tmpdir")
    runs = {str(EXAMPLES / name): args for name, args in RUNS.items()}
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(runs)], cwd=work, env=env, capture_output=True,
                       text=True, timeout=600, check=False)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("@@report ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("@@report ")), work, tmp


def test_every_example_is_run():
    assert set(RUNS) == {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}


@pytest.mark.parametrize("name", list(RUNS))
def test_example_runs_twice_with_the_same_result(examples, name):
    report, _, _ = examples
    first, second = report[name]
    assert first["error"] is None, first["error"]
    assert second["error"] is None, f"the second run failed:\n{second['error']}"
    assert set(first["files"]) <= set(second["files"])
    pngs = {p for p in first["files"] if p.endswith(".png")}
    assert {p: second["files"][p] for p in pngs} == {p: first["files"][p] for p in pngs}


def test_examples_write_only_into_out_and_leak_nothing(examples):
    report, work, tmp = examples
    assert sorted(os.listdir(work)) == ["out"]
    # No temporary folder left behind (torch itself makes an empty torchinductor_<user> cache folder).
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert list((work / "out").rglob(".*")) == []  # no stage or temporary file survived a rename


def test_example_outputs(examples):
    _, work, _ = examples
    out = work / "out"
    assert Image.open(out / "inpaint" / "inpaint.png").size == (512, 512)
    assert json.loads((out / "inpaint" / "inpaint.json").read_text())["seeds"] == [0, 1]
    assert (out / "inpaint" / "inpaint_cand1.png").is_file()

    best = json.loads((out / "best_of_n" / "best_of_n.json").read_text())
    assert best["seeds"] == [0, 1] and len(best["scores"]) == 2
    # The pick is the candidate with the highest reward, saved beside it.
    k = int(np.argmax(best["scores"]))
    assert best["best_index"] == k
    pick, cand = (np.asarray(Image.open(out / "best_of_n" / f)) for f in ("best_of_n.png", best["candidate_files"][k]))
    assert np.array_equal(pick, cand)

    rows = list(csv.DictReader((out / "score_folder" / "scores.csv").open()))
    assert [r["image"] for r in rows] == [f"img{i}.png" for i in range(4)]
    assert all(float(r["bound"]) > 0 for r in rows) and len({r["score"] for r in rows}) == 4  # four different images

    assert (out / "eval" / "report.html").is_file()
    results = json.loads((out / "eval" / "results.json").read_text())
    assert json.dumps(results).count("astronaut") >= 3  # the three cases

    assert Image.open(out / "extend" / "photo_wide.png").size == (192, 64)
    assert "plan" in json.loads((out / "extend" / "photo_wide.json").read_text())

    for name in ("mesh.ply", "mesh.glb", "points.ply", "transforms.json", "metrics.json"):
        assert (out / "recon3d" / name).is_file(), name
