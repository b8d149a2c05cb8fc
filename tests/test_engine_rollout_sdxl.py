"""The DDIM rollout on SDXL inpainting reproduces diffusers' StableDiffusionXLInpaintPipeline exactly, and the
engine's rollout is the same code."""

import pytest
import torch
from _helpers_align import pipeline_images, rollout_inputs

from prefpaint_sdk.engines import engine_for_pipeline
from prefpaint_sdk.engines.ddim_rollout import encode_conditions, encode_prompts, make_scheduler, policy_step, rollout
from prefpaint_sdk.testing import tiny_inpaint_pipeline

STEPS = 3


@pytest.fixture(scope="module")
def engine():
    torch.set_num_threads(1)
    return engine_for_pipeline(tiny_inpaint_pipeline(0, family="sdxl"), training=True)  # DDIM, as the Aligner


def _inputs(seed, size=64):
    return rollout_inputs(seed, size)


def _pipeline(pipe, img, mask, seeds, **kw):
    return pipeline_images(pipe, img, mask, seeds, STEPS, strength=1.0, **kw)


@pytest.mark.parametrize("guidance", [1.0, 5.0])
def test_sdxl_rollout_reproduces_the_pipeline_exactly(engine, guidance):
    pipe = engine.pipeline
    img, mask = _inputs(0)
    seeds = [11, 12]
    ref = _pipeline(pipe, img, mask, seeds, prompt=["a cat"] * 2, negative_prompt=["blur"] * 2, guidance_scale=guidance)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    pos, neg = encode_prompts(pipe, "a cat", "blur", 2, guidance, "cpu", size=(64, 64))
    ro = engine.rollout(cond, [0, 0], [torch.Generator().manual_seed(s) for s in seeds], num_steps=STEPS,
                        guidance_scale=guidance, prompt_embeds=pos, negative_embeds=neg)
    assert torch.equal(ro.images, ref)
    assert ro.latents.shape == (2, STEPS, 4, 32, 32) and ro.log_probs.shape == (2, STEPS)


def test_sdxl_policy_step_re_evaluates_the_stored_steps(engine):
    pipe = engine.pipeline
    img, mask = _inputs(1)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    ro = rollout(pipe, cond, [0, 0], [torch.Generator().manual_seed(s) for s in (1, 2)], num_steps=STEPS)
    sched = make_scheduler(pipe, STEPS, "cpu")
    b, k = torch.tensor([0, 1]), torch.tensor([2, 0])
    out = policy_step(pipe.unet, sched, ro.latents[b, k], ro.timesteps[k], ro.next_latents[b, k], ro.mask_latents[b],
                      ro.masked_image_latents[b], ro.prompt_embeds[b], None)
    assert torch.allclose(out.log_prob, ro.log_probs[b, k], atol=1e-4)
