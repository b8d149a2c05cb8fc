"""The examples a user copies must run (offline, on the tiny model)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_inpaint_example_runs(tiny_pipeline_dir, tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "inpaint.py"), "--model", str(tiny_pipeline_dir), "--out", str(tmp_path),
         "--steps", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "inpaint.png").exists() and (tmp_path / "inpaint_cand1.png").exists()
