"""The flow-matching SDE rollout of FLUX.1 Fill (engines/flow_rollout.py) against diffusers' FluxFillPipeline:
with noise level 0 it reproduces the pipeline; its log-probabilities are torch's Normal; re-evaluating the
stored steps with the same weights gives the stored log-probabilities (ratio 1); the window is the only
stochastic part."""

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk.engines import engine_for_pipeline
from prefpaint_sdk.engines.flow_rollout import make_scheduler
from prefpaint_sdk.samplers.flow_sde import flow_sde_step
from prefpaint_sdk.testing import tiny_inpaint_pipeline

STEPS = 4
SEEDS = [11, 12]


@pytest.fixture(scope="module")
def engine():
    torch.set_num_threads(1)
    pipe = tiny_inpaint_pipeline(0, family="flux-fill")
    pipe.text_encoder_2.eval()  # built from a config, T5 is in train mode (dropout); loaded models are in eval
    return engine_for_pipeline(pipe)


def _inputs(seed=0, size=64):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), bool)
    mask[8 + seed:40, 12:50 - seed] = True
    return img, mask


def _gens():
    return [torch.Generator().manual_seed(s) for s in SEEDS]


def _rollout(engine, img, mask, **kw):
    cond = engine.encode_conditions([img], [mask], 64, 64)
    pos, neg = engine.encode_prompts("a cat", "", len(SEEDS), 30.0, "cpu")
    assert neg is None
    return engine.rollout(cond, [0] * len(SEEDS), _gens(), num_steps=STEPS, guidance_scale=30.0, prompt_embeds=pos,
                          **kw)


def _pipeline(pipe, img, mask, **kw):
    m = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    n = len(SEEDS)
    with torch.inference_mode():
        return pipe(image=[img] * n, mask_image=[m] * n, prompt=["a cat"] * n, height=64, width=64,
                    num_inference_steps=STEPS, guidance_scale=30.0, generator=_gens(), **kw).images


def test_noise_level_zero_reproduces_the_pipeline(engine):
    img, mask = _inputs(0)
    ref = _pipeline(engine.pipeline, img, mask, output_type="pt")
    ro = _rollout(engine, img, mask, sde_noise=0.0)
    # The masked image is VAE-encoded once per group here, in a batch of all samples by the pipeline: the
    # encoder's float rounding differs by ~1e-6, nothing else does.
    assert ro.images.shape == ref.shape == (2, 3, 64, 64)
    assert torch.allclose(ro.images, ref, atol=2e-5, rtol=0)
    assert ro.log_probs.shape == (2, 0)  # nothing stochastic, nothing stored


def test_sde_mean_at_noise_zero_is_the_euler_step(engine):
    sched = make_scheduler(engine.pipeline, STEPS, 64, 64, "cpu")
    x, v = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    for i in range(STEPS):
        s, s1 = sched.sigmas[i], sched.sigmas[i + 1]
        out = flow_sde_step(v, s, s1, x, 1e-12, float(sched.sigmas[1]), generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out.mean, x + (s1 - s) * v, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_step_log_prob_is_torch_normal(engine, reduction):
    sched = make_scheduler(engine.pipeline, STEPS, 64, 64, "cpu")
    torch.manual_seed(0)
    x, v = torch.randn(3, 16, 8), torch.randn(3, 16, 8)
    for i in range(STEPS):  # i = 0 has sigma = 1 (Flow-GRPO's sigma_max in 1 - sigma)
        out = flow_sde_step(v, sched.sigmas[i], sched.sigmas[i + 1], x, 0.7, float(sched.sigmas[1]),
                            generator=[torch.Generator().manual_seed(k) for k in range(3)], reduction=reduction)
        elem = torch.distributions.Normal(out.mean, out.std.expand_as(out.mean)).log_prob(out.prev_sample)
        ref = elem.mean(dim=(1, 2)) if reduction == "mean" else elem.sum(dim=(1, 2))
        assert torch.allclose(out.log_prob, ref, rtol=1e-5, atol=1e-4 if reduction == "sum" else 1e-6)
        sigma, sigma1 = float(sched.sigmas[i]), float(sched.sigmas[i + 1])
        std_dev = 0.7 * np.sqrt(sigma / (1 - (float(sched.sigmas[1]) if sigma == 1 else sigma)))
        assert torch.allclose(out.std.flatten(), torch.full((3,), std_dev * np.sqrt(sigma - sigma1), dtype=torch.float32))


def test_policy_step_on_the_same_weights_gives_ratio_one(engine):
    img, mask = _inputs(1)
    ro = _rollout(engine, img, mask, sde_noise=0.7, window=[0, 1, 2, 3])
    assert ro.log_probs.shape == (2, STEPS) and torch.isfinite(ro.log_probs).all()
    for b, k in ((torch.tensor([0, 1]), torch.tensor([3, 0])), (torch.tensor([1, 0]), torch.tensor([1, 2]))):
        out = engine.policy_step(engine.model, ro, b, k, sde_noise=0.7)
        ratio = torch.exp(out.log_prob - ro.log_probs[b, k])
        assert torch.allclose(ratio, torch.ones(2), atol=1e-5), ratio
        assert torch.allclose(out.mean, ro.means[b, k], atol=1e-5)


def test_window_is_the_only_stochastic_part(engine):
    img, mask = _inputs(2)
    steps_seen = []

    def keep(pipe, i, t, kw):
        steps_seen.append(kw["latents"].clone())
        return kw

    _pipeline(engine.pipeline, img, mask, output_type="latent", callback_on_step_end=keep)
    ro = _rollout(engine, img, mask, sde_noise=0.7, window=[1, 2])
    assert ro.steps.tolist() == [1, 2] and ro.latents.shape[1] == 2
    # Step 0 is the ODE step: the window's first x equals the pipeline's latents after step 0.
    assert torch.allclose(ro.latents[:, 0], steps_seen[0], atol=2e-5)
    # Inside the window the steps are stochastic: x_next is not the ODE step, and differs per seed.
    assert not torch.allclose(ro.next_latents[:, 0], steps_seen[1], atol=1e-3)
    # After the window (step 3) the rollout is deterministic: the same generators give the same images.
    again = _rollout(engine, img, mask, sde_noise=0.7, window=[1, 2])
    assert torch.equal(again.images, ro.images)
    assert engine.train_steps(STEPS, 2, 5) == [2, 3] and engine.train_steps(STEPS, 0, 0) == [0, 1, 2, 3]
