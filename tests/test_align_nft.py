"""DiffusionNFT maths (prefpaint_sdk.align.algorithms.nft) and the hole-plus-ring loss mask: exact values."""

from __future__ import annotations

import math

import pytest
import torch

from prefpaint_sdk.align.algorithms.nft import implicit_predictions, nft_loss, optimality_probability
from prefpaint_sdk.align.masked_loss import masked_mean
from prefpaint_sdk.engines.forward_training import latent_loss_mask


def _case():
    x0 = torch.tensor([[0.0, 0.0]])
    old = torch.tensor([[1.0, 1.0]])
    theta = torch.tensor([[3.0, 1.0]], requires_grad=True)
    return x0, old, theta


def test_implicit_predictions_are_the_papers_mixtures():
    _, old, theta = _case()
    pos, neg = implicit_predictions(theta, old, 0.5)
    assert pos.tolist() == [[2.0, 1.0]] and neg.tolist() == [[0.0, 1.0]]  # 0.5*old + 0.5*theta, 1.5*old - 0.5*theta


def test_nft_loss_exact_value_and_gradient_plain():
    x0, old, theta = _case()
    # v+ = [2, 1], v- = [0, 1]: L+ = 2.5, L- = 0.5; c / beta * (0.75 * 2.5 + 0.25 * 0.5) = 10 * 2 = 20
    out = nft_loss(theta, old, x0, torch.tensor([0.75]), beta=0.5, clip=5.0, adaptive=False)
    assert out.loss.item() == pytest.approx(20.0)
    out.loss.backward()
    # d/dtheta = 10 * (0.75 * beta * v+ - 0.25 * beta * v-) = 10 * (0.75 * [1, .5] - 0.25 * [0, .5]) = [7.5, 2.5]
    assert theta.grad[0].tolist() == pytest.approx([7.5, 2.5])
    assert out.positive.item() == pytest.approx(2.5) and out.negative.item() == pytest.approx(0.5)
    assert out.separation.item() == pytest.approx(math.sqrt(2))  # rms([2, 0]) = 2 beta * rms(theta - old)
    assert out.old_deviate.item() == pytest.approx(math.sqrt(2))
    assert out.positive_norm.item() == pytest.approx(math.sqrt(2.5))
    assert out.negative_norm.item() == pytest.approx(math.sqrt(0.5))


def test_nft_loss_adaptive_weight_is_nvlabs_mean_abs_error():
    x0, old, theta = _case()
    # w+ = mean|[2, 1]| = 1.5, w- = mean|[0, 1]| = 0.5: 10 * (0.75 * 2.5 / 1.5 + 0.25 * 0.5 / 0.5) = 15
    out = nft_loss(theta, old, x0, torch.tensor([0.75]), beta=0.5, clip=5.0)
    assert out.loss.item() == pytest.approx(15.0)
    out.loss.backward()
    # the weights carry no gradient: 10 * (0.75 / 1.5 * [1, .5] - 0.25 / 0.5 * [0, .5]) = [5, 0]
    assert theta.grad[0].tolist() == pytest.approx([5.0, 0.0])


def test_nft_loss_masked_valid_and_weighted():
    x0, old, theta = (t.reshape(1, 1, 1, 2) for t in _case())
    mask = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)  # only the first element counts: L+ = 4, L- = 0
    out = nft_loss(theta, old, x0, torch.tensor([0.75]), beta=0.5, clip=5.0, mask=mask, adaptive=False)
    assert out.loss.item() == pytest.approx(30.0)
    two = nft_loss(torch.cat([theta, theta]), torch.cat([old, old]), torch.cat([x0, x0]), torch.tensor([0.75, 0.0]),
                   beta=0.5, clip=5.0, mask=mask, adaptive=False, valid=torch.tensor([True, False]),
                   weights=torch.tensor([2.0, 7.0]))
    assert two.loss.item() == pytest.approx(60.0)  # the invalid sample is out; the valid one weighs 2
    with pytest.raises(ValueError, match="beta must be > 0"):
        nft_loss(theta, old, x0, torch.tensor([0.5]), beta=0.0)
    with pytest.raises(ValueError, match="same shape"):
        nft_loss(theta, old[..., :1], x0, torch.tensor([0.5]))


def test_r_one_or_zero_pulls_toward_the_positive_or_the_negative_branch():
    x0, old, theta = _case()
    for r, branch in ((1.0, "positive"), (0.0, "negative")):
        out = nft_loss(theta, old, x0, torch.tensor([r]), beta=0.5, clip=5.0, adaptive=False)
        assert out.loss.item() == pytest.approx(10.0 * getattr(out, branch).item())


def test_optimality_probability_within_groups():
    rewards = torch.tensor([0.0, 4.0, 2.0, 2.0, float("nan")])
    groups = [0, 0, 1, 1, 1]
    r, valid = optimality_probability(rewards, groups)  # global std of the finite rewards: sqrt(2)
    a = 2.0 / (math.sqrt(2) + 1e-4)
    assert r.tolist() == pytest.approx([0.5 - a / 10, 0.5 + a / 10, 0.5, 0.5, 0.5])
    assert valid.tolist() == [True, True, True, True, False]
    r, _ = optimality_probability(torch.tensor([0.0, 1.0]), [0, 0], std="group")  # group std 0.5
    assert r.tolist() == pytest.approx([0.5 - 0.5 / 0.5001 / 10, 0.5 + 0.5 / 0.5001 / 10])
    r, _ = optimality_probability(torch.tensor([0.0, 1.0]), [0, 0], clip=0.5)  # |A| ~ 1 is clipped to 0.5
    assert r.tolist() == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="std must be"):
        optimality_probability(rewards, groups, std="batch")


def test_latent_loss_mask_is_the_hole_plus_a_ring_at_latent_size():
    m = torch.zeros(1, 1, 8, 8)
    m[0, 0, 3, 3] = 1.0
    hole = latent_loss_mask(m, (4, 4), ring=0)
    assert hole[0, 0].nonzero().tolist() == [[1, 1]]
    ring = latent_loss_mask(m, (4, 4), ring=2)  # pixels 1..5 -> latent cells 0..2
    assert ring[0, 0].nonzero().tolist() == [[i, j] for i in range(3) for j in range(3)]
    assert latent_loss_mask(m, (4, 4), ring=None) is None
    with pytest.raises(ValueError, match="ring must be >= 0"):
        latent_loss_mask(m, (4, 4), ring=-1)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert masked_mean(x**2, torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])).tolist() == [8.5]
    assert masked_mean(x, torch.zeros(1, 1, 2, 2)).tolist() == [0.0]  # an empty mask gives 0, not NaN


def test_forward_noising_matches_diffusers_and_a_perfect_prediction_implies_x0():
    """engines.forward_training: x_t is diffusers' own forward process (DDIM ``add_noise``; flow ``scale_noise``),
    and a prediction equal to the target implies exactly the clean sample (epsilon and flow)."""
    from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

    from prefpaint_sdk.engines.flow_rollout import FluxText
    from prefpaint_sdk.engines.forward_training import CleanBatch, forward_predict

    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    b, tidx = torch.tensor([1, 0]), torch.tensor([0, 2])
    seen = {}

    sched = DDIMScheduler(num_train_timesteps=1000)
    sched.set_timesteps(4)
    ts = sched.timesteps

    def unet(x, t, encoder_hidden_states=None, return_dict=False):
        seen["xt"], seen["t"] = x[:, :4], t
        return (noise[b],)

    inputs = dict(mask_latents=torch.zeros(2, 1, 4, 4), masked_latents=torch.zeros(2, 4, 4, 4), text=torch.zeros(2, 3, 8))
    batch = CleanBatch("eps", x0, inputs, None, ts, sched.alphas_cumprod[ts].float())
    d = forward_predict(unet, batch, b, tidx, noise[b])
    assert torch.allclose(seen["xt"], sched.add_noise(x0[b], noise[b], ts[tidx]), atol=1e-6)
    assert seen["t"].tolist() == ts[tidx].tolist()
    assert torch.allclose(d.x0_hat, x0[b], atol=1e-5) and torch.equal(d.target, noise[b])

    flow = FlowMatchEulerDiscreteScheduler()
    flow.set_timesteps(4)
    packed0, packed_noise = x0.reshape(2, 16, 4), noise.reshape(2, 16, 4)

    def transformer(hidden_states, timestep, **kw):
        seen["xt"], seen["t"] = hidden_states[..., :4], timestep
        return (packed_noise[b] - packed0[b],)

    text = FluxText(torch.zeros(2, 3, 8), torch.zeros(2, 8), torch.zeros(3, 3))
    inputs = dict(cond_latents=torch.zeros(2, 16, 2), text=text, latent_ids=torch.zeros(16, 3), guidance=None)
    batch = CleanBatch("flow", packed0, inputs, None, flow.timesteps, flow.sigmas[:-1].float())
    d = forward_predict(transformer, batch, b, tidx, packed_noise[b])
    expected = flow.scale_noise(packed0[b], flow.timesteps[tidx], packed_noise[b])
    assert torch.allclose(seen["xt"], expected, atol=1e-6)
    assert torch.allclose(seen["t"], flow.timesteps[tidx] / 1000)
    assert torch.allclose(d.x0_hat, packed0[b], atol=1e-5)


def test_group_adaptive_weight_keeps_the_advantages_zero_sum():
    """Two samples of one group whose prediction is the same (what a shared parameter makes; at high noise and
    shared noise the UNet's inputs nearly coincide) but whose targets differ: with the adaptive weight shared by
    the group, the gradient on the shared prediction points the same way wherever it sits (a pull toward the high-r
    target and away from the low-r one); with per-sample weights it depends on where it sits (a "fit or unfit
    everything" term), and here vanishes at the origin."""
    x0 = torch.tensor([[1.0], [3.0]])
    r = torch.tensor([0.8, 0.2])

    def grad(at, groups):
        delta = torch.tensor(at, requires_grad=True)
        pred = delta.expand(2, 1)
        nft_loss(pred, pred.detach(), x0, r, beta=1.0, weight_groups=groups).loss.backward()
        return float(delta.grad)

    shared = torch.tensor([0, 0])
    # d/d delta = c * sum_i (2 r_i - 1) * 2 (delta - x0_i) / w / B, with w the group's mean |error| = 2 at 0 and 1 at 2
    assert grad(0.0, shared) == pytest.approx(5.0 * 0.6 * 2 * ((0 - 1) - (0 - 3)) / 2.0 / 2)
    assert grad(0.0, shared) > 0 and grad(2.0, shared) > 0  # descent lowers delta: toward 1 (r = 0.8), away from 3
    assert grad(0.0, None) == pytest.approx(0.0, abs=1e-6)  # per sample: 0.6 (-1) / 1 - 0.6 (-3) / 3 = 0
    assert grad(2.0, None) != pytest.approx(grad(0.0, None))
