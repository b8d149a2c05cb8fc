"""The GPU suite's CPU mode (``--size tiny``) runs in the test suite, so the script cannot rot before a GPU is lent."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_gpu_suite_tiny_on_cpu_writes_json_and_markdown(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_suite

    out, md = tmp_path / "suite.json", tmp_path / "RESULTS.md"
    assert gpu_suite.main(["--size", "tiny", "--device", "cpu", "--json", str(out), "--write", str(md)]) == 0
    r = json.loads(out.read_text())
    assert r["size"] == "tiny" and r["device"] == "cpu"
    for key in ("step_s", "inpainter_vs_raw", "batched4_vs_single4"):
        assert math.isfinite(r["inpaint"][key]) and r["inpaint"][key] > 0
    assert r["reward"]["max_score_diff"] < 1e-3 and r["reward"]["speedup"] > 0
    assert "| reward: 16 candidates at batch 16" in md.read_text()
    for name in ("gpu_suite", "bench_reward", "_timing"):
        sys.modules.pop(name, None)
