"""DiffusionNFT and Diffusion-DPO learn (slow tier): held-out reward gains beyond seed noise, measured as the
other learning tests do (tests/_helpers_align.py: the run's own held-out pairs and masks, 8 sets of seeds).

Offline DPO never sees the reward: it learns from a rated dataset in the official layout whose ranks come
from a rule (the brightness of the hole), built here; the brightness reward only scores the held-out samples.
"""

from __future__ import annotations

import pytest
import torch
from _helpers_align import heldout_seed_noise
from _helpers_pairs import write_rated

from prefpaint_sdk.align.config import load_config
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline

PIPE_SEED = 2


@pytest.mark.slow
def test_offline_dpo_from_ratings_raises_the_heldout_reward_beyond_seed_noise(tmp_path):
    """12 iterations of cpu-smoke, 24 prompts x 3 rated inpaintings (ranked by hole brightness): in the
    development runs the held-out brightness rose by ~10x seed noise and every held-out sample got brighter."""
    torch.set_num_threads(1)
    rated = write_rated(tmp_path / "rated", n_prompts=24, per_prompt=3, size=64, seed=5)
    cfg = load_config("cpu-smoke", overrides=dict(algo="dpo", seed=0, iterations=12, eval_every=12, save_every=0,
                                                  eval_size=8, log_with="none"))
    al = Aligner(tiny_inpaint_pipeline(PIPE_SEED), "brightness", cfg, rated, tmp_path / "run", device="cpu")
    seed_noise = heldout_seed_noise(al)
    res = al.train()
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    held = al.algorithm.eval_metrics(al)
    print(f"offline DPO held-out gain {gain:.5f} = {gain / seed_noise:.1f}x seed noise {seed_noise:.5f}; "
          f"win rate {res.evals[-1]['win_rate']}; held-out pairs {held}")
    assert gain > 3 * seed_noise, (gain, seed_noise, res.evals)
    assert res.evals[-1]["win_rate"] >= 0.75, res.evals
    assert held["dpo_accuracy"] > 0.5 and held["dpo_margin"] > 0  # the implicit reward ranks held-out pairs
