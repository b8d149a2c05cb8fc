"""The GPU suite's CPU mode (``--size tiny``) runs in the test suite, so the script cannot rot before a GPU is lent."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

# The slow tier (the whole GPU suite, in its CPU mode); scripts/test.sh --quick leaves it out.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


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
    # RL: SD full and LoRA measured at their presets' batch sizes against a floor measured in the same run;
    # FLUX Fill is either measured or, in a build that cannot align it, recorded as such (not a crash).
    from prefpaint_sdk.align.config import PRESETS

    rl = {x["name"]: x for x in r["rl"]}
    assert list(rl) == ["sd-full", "sd-lora", "flux-fill-lora"]
    for name, preset in (("sd-full", "paper"), ("sd-lora", "lora-24gb")):
        x = rl[name]
        assert x["status"] == "measured" and x["finetune"] == PRESETS[preset]["finetune"]
        assert x["samples"] == PRESETS[preset]["prompts_per_iter"] * PRESETS[preset]["samples_per_prompt"]
        assert (x["rollout_batch"], x["train_batch"]) == (PRESETS[preset]["rollout_batch_size"], PRESETS[preset]["train_batch_size"])
        # as many bare training passes as the step made: samples x K / train batch
        assert x["train_passes"] == x["samples"] * x["K"] // x["train_batch"]
        assert 0.2 < x["ratio"] < 5 and x["peak_mb"] > 0 and x["trainable_params"] > 0
    assert rl["sd-lora"]["trainable_params"] < rl["sd-full"]["trainable_params"] / 5
    assert rl["flux-fill-lora"]["status"] in ("measured", "not alignable in this build")
    text = md.read_text()
    assert "| reward: 16 candidates at batch 16" in text and "| sd-full | paper | full" in text
    for name in ("gpu_suite", "bench_reward", "_timing"):
        sys.modules.pop(name, None)
