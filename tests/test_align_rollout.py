"""The rollout reproduces diffusers' pipeline exactly; the step log-prob equals torch.distributions'."""

import pytest
import torch
from _helpers_align import pipeline_images, rollout_inputs

from prefpaint_sdk.engines.ddim_rollout import encode_conditions, encode_prompts, make_scheduler, policy_step, rollout
from prefpaint_sdk.samplers.ddim import ddim_step_with_logprob
from prefpaint_sdk.testing import tiny_inpaint_pipeline

STEPS = 4


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return tiny_inpaint_pipeline(0)


def _inputs(seed, size=64):
    return rollout_inputs(seed, size)


def _pipeline(pipe, img, mask, seeds, **kw):
    return pipeline_images(pipe, img, mask, seeds, STEPS, **kw)


def test_rollout_reproduces_pipeline_exactly(pipe):
    img, mask = _inputs(0)
    seeds = [11, 12, 13]
    ref = _pipeline(pipe, img, mask, seeds, prompt=[""] * 3, guidance_scale=1.0)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    ro = rollout(pipe, cond, [0, 0, 0], [torch.Generator().manual_seed(s) for s in seeds], num_steps=STEPS)
    assert torch.equal(ro.images, ref)
    assert ro.latents.shape == (3, STEPS, 4, 32, 32) and ro.log_probs.shape == (3, STEPS)
    # the trajectory is chained: x_{t-1} of step i is x_t of step i+1
    assert torch.equal(ro.next_latents[:, :-1], ro.latents[:, 1:])


def test_rollout_reproduces_pipeline_with_guidance(pipe):
    img, mask = _inputs(1)
    seeds = [3, 4]
    ref = _pipeline(pipe, img, mask, seeds, prompt=["a cat"] * 2, negative_prompt=["blur"] * 2, guidance_scale=5.0)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    pos, neg = encode_prompts(pipe, "a cat", "blur", 2, 5.0, "cpu")
    ro = rollout(pipe, cond, [0, 0], [torch.Generator().manual_seed(s) for s in seeds], num_steps=STEPS,
                 guidance_scale=5.0, prompt_embeds=pos, negative_embeds=neg)
    assert torch.equal(ro.images, ref)


def test_groups_share_one_encoding_and_match_separate_calls(pipe):
    (img0, m0), (img1, m1) = _inputs(2), _inputs(3)
    ref0 = _pipeline(pipe, img0, m0, [5, 6], prompt=[""] * 2)
    ref1 = _pipeline(pipe, img1, m1, [7, 8], prompt=[""] * 2)
    calls = []
    orig = pipe.vae.encode
    pipe.vae.encode = lambda x, *a, **k: (calls.append(x.shape[0]), orig(x, *a, **k))[1]
    try:
        cond = encode_conditions(pipe, [img0, img1], [m0, m1], 64, 64)
    finally:
        pipe.vae.encode = orig
    assert calls == [1, 1]  # one encoder pass per (image, mask) group, not per sample
    gens = [torch.Generator().manual_seed(s) for s in (5, 6, 7, 8)]
    # The UNet batch differs from the two pipeline calls (4 vs 2), so compare to float tolerance.
    ro = rollout(pipe, cond, [0, 0, 1, 1], gens, num_steps=STEPS)
    assert torch.allclose(ro.images[:2], ref0, atol=1e-5)
    assert torch.allclose(ro.images[2:], ref1, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_step_logprob_equals_torch_normal(pipe, reduction):
    sched = make_scheduler(pipe, STEPS, "cpu")
    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8)
    eps = torch.randn(3, 4, 8, 8)
    for t in sched.timesteps:
        out = ddim_step_with_logprob(sched, eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(1),
                                     reduction=reduction)
        elem = torch.distributions.Normal(out.mean, out.std.expand_as(out.mean)).log_prob(out.prev_sample)
        ref = elem.mean((1, 2, 3)) if reduction == "mean" else elem.sum((1, 2, 3))
        assert torch.allclose(out.log_prob, ref, rtol=1e-5, atol=1e-5)
        # and the sample is diffusers' own DDIM step with the same generator state
        theirs = sched.step(eps, t, x, eta=1.0, generator=torch.Generator().manual_seed(1)).prev_sample
        assert torch.equal(out.prev_sample, theirs)


def test_per_sample_timesteps_equal_separate_steps(pipe):
    sched = make_scheduler(pipe, STEPS, "cpu")
    torch.manual_seed(1)
    x, eps, prev = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    ts = sched.timesteps[[0, 2, 3]]
    joint = ddim_step_with_logprob(sched, eps, ts, x, prev_sample=prev)
    for i in range(3):
        one = ddim_step_with_logprob(sched, eps[i:i + 1], ts[i], x[i:i + 1], prev_sample=prev[i:i + 1])
        assert torch.allclose(joint.mean[i], one.mean[0], atol=1e-6)
        assert torch.allclose(joint.log_prob[i], one.log_prob[0], atol=1e-5)


def test_policy_step_recovers_stored_logprobs(pipe):
    img, mask = _inputs(4)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    ro = rollout(pipe, cond, [0, 0], [torch.Generator().manual_seed(s) for s in (1, 2)], num_steps=STEPS)
    sched = make_scheduler(pipe, STEPS, "cpu")
    b = torch.tensor([0, 1])
    k = torch.tensor([1, 3])
    with torch.no_grad():
        out = policy_step(pipe.unet, sched, ro.latents[b, k], ro.timesteps[k], ro.next_latents[b, k],
                          ro.mask_latents[b], ro.masked_image_latents[b], ro.prompt_embeds[b])
    assert torch.allclose(out.log_prob, ro.log_probs[b, k], atol=1e-5)
    assert torch.allclose(out.mean, ro.means[b, k], atol=1e-5)


def test_errors(pipe):
    sched = make_scheduler(pipe, STEPS, "cpu")
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="eta > 0"):
        ddim_step_with_logprob(sched, x, sched.timesteps[0], x, eta=0.0)
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        ddim_step_with_logprob(sched, x, sched.timesteps[0], x, reduction="max")
    img, mask = _inputs(0)
    cond = encode_conditions(pipe, [img], [mask], 64, 64)
    with pytest.raises(ValueError, match="one generator per sample"):
        rollout(pipe, cond, [0, 0], [torch.Generator()], num_steps=2)
