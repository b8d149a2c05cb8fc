"""The "pretrained" tiny SD fixture (prefpaint_sdk.testing.pretrained) is a denoiser, not a random UNet:
its epsilon loss on held-out fields is far below the random model's, and its samples are far closer to the
data (slow tier: it trains the UNet once per session, ~1 min on one core).

Development figures (seed 2, 200 steps): loss 0.18 against 1.12 for the random UNet (same VAE scaling);
4-step samples inside the hole: squared error to the true latents 3.4 against 21, roughness 4.2 against 40,
variance 2.3 against 20 (the data: roughness 0.35, variance 1.0). A brief training: far from the data still,
but a denoiser whose forward process and sampler agree roughly.
"""

from __future__ import annotations

import pytest
import torch

from prefpaint_sdk.testing import tiny_inpaint_pipeline
from prefpaint_sdk.testing.pretrained import denoising_loss, sample_stats

pytestmark = pytest.mark.slow


def test_pretrained_tiny_sd_denoises_and_samples_closer_to_the_data(pretrained_tiny_sd):
    torch.set_num_threads(1)
    pre = pretrained_tiny_sd()
    rand = tiny_inpaint_pipeline(2)
    rand.vae.register_to_config(scaling_factor=pre.vae.config.scaling_factor)  # the same latents for both
    loss_pre, loss_rand = denoising_loss(pre), denoising_loss(rand)
    s_pre, s_rand = sample_stats(pre), sample_stats(rand)
    print(f"epsilon loss {loss_pre:.3f} (random {loss_rand:.3f}); samples {s_pre}; random {s_rand}")
    assert loss_pre < 0.3 * loss_rand
    assert s_pre["error"] < 0.3 * s_rand["error"]
    assert s_pre["roughness"] < 0.3 * s_rand["roughness"]
    assert 0.7 < s_pre["data_variance"] < 1.4  # the scaling factor makes the data's latents unit-variance


def test_the_cached_fixture_loads_the_same_weights(pretrained_tiny_sd):
    a, b = pretrained_tiny_sd(), pretrained_tiny_sd()
    a.unet.requires_grad_(True)
    with torch.no_grad():
        next(a.unet.parameters()).add_(1.0)  # a test that trains its copy leaves the next one untouched
    sa, sb = a.unet.state_dict(), b.unet.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)
    c = pretrained_tiny_sd()
    assert all(torch.equal(c.unet.state_dict()[k], sb[k]) for k in sb)
