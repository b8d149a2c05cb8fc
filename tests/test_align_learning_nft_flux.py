"""DiffusionNFT learns on the tiny FLUX Fill fixture (slow tier), with a reward the code was not tuned on.

NFT's settings were checked on the brightness of the hole (and its negation); this test trains on the *redness*
of the hole (mean of R - (G + B) / 2 inside it), a rule defined only here, and measures the held-out gain in
units of the run's own seed noise (tests/_helpers_align.py). Development run (training seed 0, 40 iterations of
cpu-smoke with FLUX Fill's values): +6.8x seed noise, win rate 1.0, in ~45-150 s on one core.

On the random tiny SD fixture NFT does not learn: its update points away from the reward there
(benchmarks/RESULTS.md, "Why NFT and online DPO do not learn on the tiny SD fixture"); on a pretrained tiny SD
it does (tests/test_align_learning_pretrained_sd.py).
"""

from __future__ import annotations

import pytest
import torch
from _helpers_align import heldout_seed_noise, make_data

from prefpaint_sdk.align.config import load_config
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline

pytestmark = pytest.mark.slow


def redness(images: torch.Tensor, masks: torch.Tensor, masked_images=None) -> torch.Tensor:
    """Mean of ``R - (G + B) / 2`` in the hole: a rule no setting was chosen on."""
    red = images[:, 0] - 0.5 * (images[:, 1] + images[:, 2])
    m = masks.bool().to(red.dtype)
    return (red * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)


def test_nft_on_flux_fill_raises_heldout_redness_beyond_seed_noise(tmp_path):
    torch.set_num_threads(1)
    cfg = load_config("cpu-smoke", overrides=dict(algo="nft", seed=0, iterations=40, eval_every=40, save_every=0,
                                                  eval_size=8, log_with="none"), family="flux-fill")
    al = Aligner(tiny_inpaint_pipeline(2, family="flux-fill"), redness, cfg, make_data(tmp_path / "data", n=24),
                 tmp_path / "run", device="cpu")
    assert al.algo == "nft" and al.config.algo_config.timesteps_per_traj == 2  # FLUX Fill's cpu-smoke values
    seed_noise = heldout_seed_noise(al)
    res = al.train()
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    print(f"NFT / FLUX Fill held-out redness gain {gain:.5f} = {gain / seed_noise:.1f}x seed noise "
          f"{seed_noise:.5f}; win rate {res.evals[-1]['win_rate']}")
    assert gain > 3 * seed_noise, (gain, seed_noise, res.evals)
    assert res.evals[-1]["win_rate"] >= 0.75, res.evals
