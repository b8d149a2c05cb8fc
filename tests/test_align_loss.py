"""Exact values of the PPO loss, advantages, trust weights and regularisers."""

import math

import pytest
import torch

from prefpaint_sdk.align.loss import compute_advantages, gaussian_kl, mean_l1, ppo_clip_loss, trust_weights


def test_ratio_one_advantage_minus_one_gives_one():
    lp = torch.tensor([-1.3, 0.2, 5.0], requires_grad=True)
    out = ppo_clip_loss(lp, lp.detach().clone(), torch.full((3,), -1.0))
    assert out.loss.item() == pytest.approx(1.0, abs=0)
    assert out.ratio_mean.item() == 1.0 and out.clip_fraction.item() == 0.0 and out.approx_kl.item() == 0.0


def test_weights_scale_exactly():
    lp = torch.zeros(4)
    adv = torch.tensor([-1.0, 2.0, 0.5, -3.0])
    w = torch.tensor([2.0, 1.0, 1.5, 1.0])
    plain = ppo_clip_loss(lp, lp, adv)
    weighted = ppo_clip_loss(lp, lp, adv, weights=w)
    assert plain.loss.item() == pytest.approx(-(adv.sum().item()) / 4)
    assert weighted.loss.item() == pytest.approx(-(adv * w).sum().item() / 4)
    assert ppo_clip_loss(lp, lp, adv, weights=torch.full((4,), 2.0)).loss.item() == pytest.approx(2 * plain.loss.item())


def test_clipping_values_and_gradient():
    eps = 1e-4
    old = torch.zeros(2)
    new = torch.tensor([math.log(1.5), math.log(0.5)], requires_grad=True)
    adv = torch.tensor([1.0, 1.0])
    out = ppo_clip_loss(new, old, adv, clip_range=eps)
    # A > 0: sample 0 (ratio 1.5) takes the clipped value -(1+eps); sample 1 (ratio 0.5) the unclipped -0.5.
    assert out.loss.item() == pytest.approx((-(1 + eps) - 0.5) / 2, rel=1e-6)
    assert out.clip_fraction.item() == 1.0
    out.loss.backward()
    assert new.grad[0].item() == 0.0  # clipped: no gradient
    assert new.grad[1].item() == pytest.approx(-0.5 / 2, rel=1e-6)  # d(-ratio)/dlogp / N


def test_negative_advantage_clip_side():
    new = torch.tensor([math.log(1.5)])
    out = ppo_clip_loss(new, torch.zeros(1), torch.tensor([-2.0]), clip_range=0.2)
    assert out.loss.item() == pytest.approx(2.0 * 1.5, rel=1e-6)  # max(3.0, 2.4)


def test_invalid_samples_are_excluded():
    lp = torch.zeros(3)
    adv = torch.tensor([-1.0, -1.0, 100.0])
    valid = torch.tensor([True, True, False])
    assert ppo_clip_loss(lp, lp, adv, valid=valid).loss.item() == pytest.approx(1.0)


def test_advantages_batch_standardised_nan_dropped():
    r = torch.tensor([1.0, 2.0, float("nan"), 3.0])
    adv, valid = compute_advantages(r)
    assert valid.tolist() == [True, True, False, True]
    std = torch.tensor([1.0, 2.0, 3.0]).std(unbiased=False)
    assert adv[0].item() == pytest.approx(-1 / (std.item() + 1e-7), rel=1e-6)
    assert adv[2].item() == 0.0 and adv[1].item() == pytest.approx(0.0, abs=1e-7)


def test_advantages_clipped():
    r = torch.tensor([0.0] * 200 + [1000.0])
    adv, _ = compute_advantages(r, clip=10.0)
    assert adv.max().item() == 10.0


def test_advantages_per_group():
    r = torch.tensor([1.0, 3.0, 10.0, 30.0])
    g = torch.tensor([0, 0, 1, 1])
    adv, _ = compute_advantages(r, g, mode="group")
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, -1.0, 1.0]), atol=1e-5)
    with pytest.raises(ValueError, match="group id"):
        compute_advantages(r, None, mode="group")
    with pytest.raises(ValueError, match="'batch' or 'group'"):
        compute_advantages(r, mode="median")


def test_trust_weight_formula():
    g = trust_weights(torch.tensor([0.0, 10.0, 100.0]))
    assert g[0].item() == pytest.approx(math.exp(0.7))
    assert g[1].item() == pytest.approx(math.exp(-0.5 + 0.7))
    assert g[2].item() == 1.0  # clamped at the lower bound


def test_gaussian_kl_matches_torch_distributions():
    mu, ref, std = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3), torch.full((2, 1, 1, 1), 0.3)
    ours = gaussian_kl(mu, ref, std, "sum")
    d = torch.distributions
    theirs = d.kl_divergence(d.Normal(mu, std.expand_as(mu)), d.Normal(ref, std.expand_as(mu))).sum((1, 2, 3))
    assert torch.allclose(ours, theirs, rtol=1e-5)
    assert torch.allclose(gaussian_kl(mu, ref, std, "mean"), theirs / 36, rtol=1e-5)
    assert torch.allclose(mean_l1(mu, ref), (mu - ref).abs().mean((1, 2, 3)))
