"""Two CPU processes (torchrun + Accelerator(cpu=True), gloo): gathered reward statistics equal one process's.

``accelerate launch --cpu --num_processes 2`` started only one process on this machine (DESIGN.md), so the
test launches with torchrun and checks that two processes really ran.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers_align import make_data
from _serve_helpers import free_port

# The slow tier (multi-process runs under torchrun); scripts/test.sh --quick leaves it out.
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


def _run(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=HERE)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_two_processes_match_one(tmp_path):
    data = make_data(tmp_path / "data", n=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    env.pop("ACCELERATE_USE_CPU", None)
    script = str(HERE / "_align_dist_script.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    _run(torchrun + [script, str(data), str(tmp_path / "two"), "2"], env)
    _run([sys.executable, script, str(data), str(tmp_path / "one"), "4"], env)

    r0 = json.loads((tmp_path / "two" / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "two" / "rank1.json").read_text())
    single = json.loads((tmp_path / "one" / "rank0.json").read_text())
    assert r0["num_processes"] == r1["num_processes"] == 2 and single["num_processes"] == 1
    # Iteration 1 samples the same 8 trajectories (same prompts, seeds and UNet batches) either way, so the
    # statistics of the gathered rewards are the single process's.
    h2, h1 = r0["history"][0], single["history"][0]
    assert h2["reward_mean"] == pytest.approx(h1["reward_mean"], rel=1e-6, abs=1e-7)
    assert h2["reward_std"] == pytest.approx(h1["reward_std"], rel=1e-5, abs=1e-7)
    assert r0["history"][0]["reward_mean"] == r1["history"][0]["reward_mean"]  # every rank sees the gathered stats
    assert len(r0["history"]) == 2
    # DDP kept the replicas identical after the updates
    assert r0["param_sum"] == pytest.approx(r1["param_sum"], rel=1e-9)
    assert r0["param_sq"] == pytest.approx(r1["param_sq"], rel=1e-9)


def test_two_processes_share_one_reward_conversion_from_an_empty_cache(tmp_path):
    """An Aligner with a RewardModel (an official .pt) on 2 torchrun processes, starting from an empty
    converted-reward cache: both ask for the conversion at once; the file lock makes one convert and the
    other reuse it, and training runs."""
    import torch
    from reward_reference import make_official_state_dict

    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    data = make_data(tmp_path / "data", n=4)
    model = save_tiny_inpaint_pipeline(tmp_path / "base", seed=0)
    pt = tmp_path / "prefpaintReward.pt"
    torch.save(make_official_state_dict(seed=2), pt)
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE), "PREFPAINT_CACHE": str(cache)}
    env.pop("ACCELERATE_USE_CPU", None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    _run(torchrun + [str(HERE / "_align_dist_script.py"), str(data), str(tmp_path / "run"), "1", str(model), str(pt)], env)

    recs = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["num_processes"] for r in recs] == [2, 2]
    h = recs[0]["history"][0]
    assert h["reward_nan"] == 0 and h["reward_mean"] == recs[1]["history"][0]["reward_mean"]  # scored by the model
    entries = sorted(p.name for p in (cache / "converted").iterdir() if not p.name.startswith("."))
    assert len(entries) == 1 and entries[0].startswith("file-")  # converted once, no leftovers
    assert sorted(p.name for p in (cache / "converted" / entries[0]).iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in (cache / "converted").iterdir() if ".old-" in p.name or p.name.startswith(".file-") and p.is_dir()]


def test_two_processes_gather_the_grpo_group_statistics_of_one(tmp_path):
    """FLUX Fill GRPO (tiny, one iteration, 4 groups of 4): two processes of 2 groups each gather the rewards
    and group ids, so the advantages, the zero-std ratio and the reward statistics are those of one process
    running the same 16 trajectories, and each rank trains on its own slice of them."""
    data = make_data(tmp_path / "data", n=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    env.pop("ACCELERATE_USE_CPU", None)
    script = str(HERE / "_align_dist_script.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    _run(torchrun + [script, str(data), str(tmp_path / "two"), "2", "flux-grpo"], env)
    _run([sys.executable, script, str(data), str(tmp_path / "one"), "4", "flux-grpo"], env)

    r0, r1 = (json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1))
    single = json.loads((tmp_path / "one" / "rank0.json").read_text())
    assert r0["num_processes"] == r1["num_processes"] == 2 and single["num_processes"] == 1
    assert r0["algo"] == single["algo"] == "grpo"
    h0, h1, hs = r0["history"][0], r1["history"][0], single["history"][0]
    for key in ("reward_mean", "reward_std", "zero_std_ratio"):
        assert h0[key] == h1[key], key  # every rank sees the gathered statistics
        assert h0[key] == pytest.approx(hs[key], rel=1e-5, abs=1e-7), key
    # rank r trains on samples [8r, 8r + 8) of the gathered batch: together exactly the single process's advantages
    adv_two = r0["advantages"][0] + r1["advantages"][0]
    adv_one = single["advantages"][0]
    assert len(adv_two) == len(adv_one) == 16
    assert adv_two == pytest.approx(adv_one, rel=1e-4, abs=1e-5)
    assert max(abs(a) for a in adv_one) > 0.1  # real group-relative advantages, not all zero
    for g in range(4):  # each group's advantages sum to zero (group mean removed)
        assert sum(adv_one[4 * g:4 * g + 4]) == pytest.approx(0.0, abs=1e-4)
    assert r0["param_sum"] == pytest.approx(r1["param_sum"], rel=1e-9)  # DDP kept the replicas identical
