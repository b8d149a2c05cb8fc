"""The "pretrained" tiny FLUX Fill fixture (prefpaint_sdk.testing.pretrained) is a denoiser, not a random
transformer: its velocity loss on held-out fields is far below the random model's (slow tier: it trains the
transformer once per run, ~50 s on one core), and it is fed as ``FluxFillPipeline`` feeds its transformer.

Development figures (seed 2, 200 steps): velocity loss 1.43 against 2.44 for the random transformer with the
same VAE shift and scale (a Gaussian x0 with no conditioning would allow ~1.6 on average over t).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk.engines.flow_rollout import encode_conditions
from prefpaint_sdk.testing import tiny_inpaint_pipeline
from prefpaint_sdk.testing.pretrained import _flux_data, box_masks, flow_matching_loss, smooth_fields

pytestmark = pytest.mark.slow


def test_pretrained_tiny_flux_fill_denoises(pretrained_tiny_flux):
    torch.set_num_threads(1)
    pre = pretrained_tiny_flux()
    rand = tiny_inpaint_pipeline(2, family="flux-fill")
    rand.vae.register_to_config(shift_factor=pre.vae.config.shift_factor,  # the same latents for both
                                scaling_factor=pre.vae.config.scaling_factor)
    loss_pre, loss_rand = flow_matching_loss(pre), flow_matching_loss(rand)
    print(f"velocity loss {loss_pre:.3f} (random {loss_rand:.3f})")
    assert loss_pre < 0.7 * loss_rand
    x0 = _flux_data(pre, 64, 3)[0]
    assert abs(float(x0.mean())) < 0.2 and 0.7 < float(x0.std()) < 1.4  # the data's latents: ~N(0, 1) overall


def test_training_inputs_are_the_pipelines(pretrained_tiny_flux):
    """The packed mask and masked-image latents the fixture trained on are the rollout's (FluxFillPipeline's)."""
    pipe = pretrained_tiny_flux()
    img, mask = smooth_fields(2, seed=5), box_masks(2, seed=6)
    pil = [Image.fromarray((img[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for i in range(2)]
    masks = [Image.fromarray((mask[i, 0].numpy() * 255).astype(np.uint8)) for i in range(2)]
    cond = encode_conditions(pipe, pil, masks, 32, 32)
    _, masked, _, packed_mask = _flux_data(pipe, 2, 5)
    assert torch.equal(cond.packed_mask, packed_mask)
    shift, scale = pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor
    ref = pipe._pack_latents((torch.cat([d.mean for d in cond.masked_dists]) - shift) * scale, 2, 4, 16, 16)
    # the rollout's images went through 8-bit PNG pixels; the fixture's did not
    assert float((ref - masked).abs().max()) < 0.05 * float(masked.abs().max())
