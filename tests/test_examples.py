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


def test_extend_example_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "extend.py"), str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "photo_wide.png").size == (192, 64)
    assert (tmp_path / "photo_wide.json").exists()


def test_recon3d_example_runs(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "recon3d.py"), "--tiny", "--out", str(out), "--views", "2"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("mesh.ply", "mesh.glb", "points.ply", "transforms.json", "metrics.json"):
        assert (out / name).exists(), name
