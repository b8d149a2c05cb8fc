"""Learning actually happens: with the brightness-in-mask reward, a short cpu-smoke run raises the held-out
reward beyond seed noise, for every one of several training seeds.

The gain is paired (the same held-out images, masks and sampling seeds before and after training). The
seed noise is how much the starting model's held-out mean reward moves when only the sampling seeds change.
"""

import numpy as np
import pytest
import torch
from _helpers_align import make_data

from prefpaint_sdk.align.config import load_config
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline

PIPE_SEED = 2
TRAIN_SEEDS = (0, 1, 2)


def _cfg(seed):
    return load_config("cpu-smoke", overrides=dict(seed=seed, iterations=12, eval_every=12, save_every=0,
                                                   log_with="none"))


@pytest.mark.slow
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
