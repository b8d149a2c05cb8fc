"""Learning actually happens: with the brightness-in-mask reward, a short cpu-smoke run raises the held-out
reward beyond seed noise, for every one of several training seeds.

The gain is paired (the same held-out images, masks and sampling seeds before and after training). The
seed noise is how much the starting model's held-out mean reward moves when only the sampling seeds change.
"""

import numpy as np
import pytest
import torch
from _helpers_align import heldout_seed_noise, make_data

from prefpaint_sdk.align.config import load_config
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline

# The slow tier (learning tests: RL must beat seed noise on the tiny models); scripts/test.sh --quick leaves it out.
pytestmark = pytest.mark.slow

PIPE_SEED = 2
TRAIN_SEEDS = (0, 1, 2)


def _cfg(seed):
    return load_config("cpu-smoke", overrides=dict(seed=seed, iterations=12, eval_every=12, save_every=0,
                                                   log_with="none"))


def test_short_run_raises_heldout_reward_beyond_seed_noise(tmp_path):
    torch.set_num_threads(1)
    data = make_data(tmp_path / "data", n=12)

    # Seed noise of the starting model's held-out mean reward (eval items and masks fixed, sampling seeds vary).
    al = Aligner(tiny_inpaint_pipeline(PIPE_SEED), "brightness", _cfg(0), data, tmp_path / "noise", device="cpu")
    items = [al.eval_set.get(i, mask_seed=1000 + i) for i in al.eval_indices]
    means = []
    for rep in range(4):
        seeds = [10_000 * (rep + 1) + k for k in range(len(items) * 2)]
        _, images, masks = al._sample(items, seeds, 2)
        means.append(float(al._score(images, masks).scores.mean()))
    seed_noise = float(np.std(means))

    gains = []
    for seed in TRAIN_SEEDS:
        al = Aligner(tiny_inpaint_pipeline(PIPE_SEED), "brightness", _cfg(seed), data, tmp_path / f"s{seed}", device="cpu")
        res = al.train()
        start, end = res.evals[0]["mean_reward"], res.evals[-1]["mean_reward"]
        gains.append(end - start)
        assert res.evals[-1]["win_rate"] >= 0.5, (seed, res.evals)  # paired: at least half the samples improved
    print(f"held-out reward gains {np.round(gains, 5).tolist()}, seed noise {seed_noise:.5f}")
    assert min(gains) > seed_noise, (gains, seed_noise)  # every training seed gains more than seed noise
    assert np.mean(gains) > 3 * seed_noise, (gains, seed_noise)


def test_sdxl_run_raises_heldout_reward_beyond_seed_noise(tmp_path):
    """SDXL learns too (PPO through the same DDIM rollout, cpu-smoke values): 24 iterations of training seed 0
    on the tiny SDXL fixture raise the held-out reward beyond 2x seed noise, and most held-out samples improve.

    The held-out set is 8 pairs x 2 samples and the seed noise is measured on the run's own held-out pairs
    and masks over 8 sets of sampling seeds: with 4 pairs and 4 sets (the SD test above) the noise estimate
    itself swung 2x between sets of seeds (benchmarks/RESULTS.md, "SDXL learning"). Before the latent DDIM
    fix (``clip_sample=False``, :data:`prefpaint_sdk.engines.sd.LATENT_DDIM_DEFAULTS`) this run did not learn.
    The 3-seed figures are in RESULTS.md; one seed is run here to keep the suite's time.
    """
    torch.set_num_threads(1)
    cfg = load_config("cpu-smoke", overrides=dict(seed=0, iterations=24, eval_every=24, save_every=0, eval_size=8,
                                                  log_with="none"), family="sdxl")
    al = Aligner(tiny_inpaint_pipeline(PIPE_SEED, family="sdxl"), "brightness", cfg, make_data(tmp_path / "data", n=24),
                 tmp_path / "run", device="cpu")
    assert al.algo == "ppo" and al.engine.pipeline.scheduler.config.clip_sample is False
    seed_noise = heldout_seed_noise(al)

    res = al.train()
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    print(f"SDXL held-out reward gain {gain:.5f} = {gain / seed_noise:.1f}x seed noise {seed_noise:.5f}; "
          f"win rate {res.evals[-1]['win_rate']}")
    assert gain > 2 * seed_noise, (gain, seed_noise, res.evals)
    assert res.evals[-1]["win_rate"] >= 0.75, res.evals
