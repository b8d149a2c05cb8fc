"""DiffusionNFT (Zheng et al. 2025, "DiffusionNFT: Online Diffusion Reinforcement with Forward Process"):
its maths, as pure functions.

What it follows: the paper's Algorithm 1 and NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py`` (read at
9a84a8a). With the old (sampling) prediction ``v_old`` (no grad) and the trained one ``v_theta``:

    v+ = (1 - beta) v_old + beta v_theta          (the implicit positive policy)
    v- = (1 + beta) v_old - beta v_theta          (the implicit negative policy)
    A  = (R - mean of its prompt group) / (std + 1e-4), clipped to +-c       (c = 5; std of the whole batch)
    r  = A / (2c) + 1/2  in [0, 1]                                          (the optimality probability)
    L  = c / beta * mean_i [ r_i ||x0(v+) - x0||^2 / w+_i + (1 - r_i) ||x0(v-) - x0||^2 / w-_i ]

on clean samples ``x0`` noised forward, ``x_t = (1 - t) x0 + t eps``; ``x0(v) = x_t - t v`` is the clean
sample that a prediction implies and ``w = mean |x0(v) - x0|`` (no grad, at least 1e-5) is NVlabs' adaptive
weight. The ``c / beta`` factor is the code's (it keeps the gradient's scale as beta changes).

What differs:

* **Any parameterisation.** Every family's prediction maps to a clean-sample estimate by an affine map
  ``x0 = a x_t + b * prediction`` (flow matching: ``a = 1, b = -t``; epsilon-prediction (SD, SDXL):
  ``a = 1 / sqrt(abar), b = -sqrt(1 - abar) / sqrt(abar)``). The mixing weights of ``v+`` and ``v-`` sum
  to one, so mixing predictions and then mapping equals mapping and then mixing: the functions below take
  the clean-sample estimates, and the engine maps its own prediction. For SD/SDXL this is the whole
  epsilon adaptation: the loss is NVlabs' x0-space loss, unchanged, with SD's forward process.
* **Masked.** The means run over the hole plus a ring (:mod:`..masked_loss`), the full image optionally.
* **The norms** of the implicit predictions are returned for logging (NVlabs/DiffusionNFT#46: ``v+`` and
  ``v-`` collapse onto each other when ``v_theta`` stays at ``v_old``; watch ``separation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..masked_loss import masked_mean

__all__ = ["NFTLoss", "implicit_predictions", "nft_loss", "optimality_probability"]


def optimality_probability(rewards: torch.Tensor, groups, *, clip: float = 5.0, std: str = "global",
                           eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimality probability ``r`` in [0, 1] of each sample, from its reward within its group.

    Args:
        rewards: (N,) rewards gathered from every process; NaN or infinite ones are left out of every statistic.
        groups: (N,) group ids (the samples of one (image, mask)).
        clip: ``c``, the advantage clip; ``r = clamp(A, -c, c) / (2c) + 1/2``.
        std: "global": divide by the std of all finite rewards of the batch (NVlabs' default);
            "group": by each group's own std.
        eps: added to the std (NVlabs: 1e-4).

    Returns:
        ``(r, valid)``: r (N,) float32 (0.5 where the reward is not finite) and the bool mask of finite rewards.

    Raises:
        ValueError: an unknown ``std`` or a clip <= 0.
    """
    if std not in ("global", "group"):
        raise ValueError(f"std must be 'global' or 'group', got {std!r}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    r = rewards.detach().float()
    valid = torch.isfinite(r)
    g = torch.as_tensor(groups, device=r.device)
    adv = torch.zeros_like(r)
    global_std = r[valid].std(unbiased=False) if valid.any() else r.new_tensor(0.0)
    for gid in torch.unique(g):
        sel = (g == gid) & valid
        if sel.any():
            v = r[sel]
            s = global_std if std == "global" else v.std(unbiased=False)
            adv[sel] = (v - v.mean()) / (s + eps)
    return adv.clamp(-clip, clip) / (2 * clip) + 0.5, valid


def implicit_predictions(pred_theta: torch.Tensor, pred_old: torch.Tensor, beta: float):
    """``(v+, v-)``: ``(1 - beta) v_old + beta v_theta`` and ``(1 + beta) v_old - beta v_theta``."""
    old = pred_old.detach()
    return (1 - beta) * old + beta * pred_theta, (1 + beta) * old - beta * pred_theta


@dataclass
class NFTLoss:
    """The NFT loss and its diagnostics (scalars; ``loss`` with grad).

    Attributes:
        loss: ``c / beta * mean(r L+ / w+ + (1 - r) L- / w-)`` over valid samples.
        positive / negative: the mean unweighted squared errors of ``x0(v+)`` and ``x0(v-)``.
        separation: RMS of ``x0(v+) - x0(v-)`` (= 2 beta RMS of ``x0(v_theta) - x0(v_old)``); near 0 the two
            branches coincide and ``r`` stops mattering (the collapse of NVlabs/DiffusionNFT#46).
        old_deviate: RMS of ``x0(v_theta) - x0(v_old)``.
        positive_norm / negative_norm: RMS of ``x0(v+)`` and ``x0(v-)`` (they blow up when training diverges).
    """

    loss: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    separation: torch.Tensor
    old_deviate: torch.Tensor
    positive_norm: torch.Tensor
    negative_norm: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("loss", "positive", "negative", "separation",
                                                               "old_deviate", "positive_norm", "negative_norm")}


def nft_loss(x0_theta: torch.Tensor, x0_old: torch.Tensor, x0: torch.Tensor, r: torch.Tensor, *, beta: float = 1.0,
             clip: float = 5.0, mask: torch.Tensor | None = None, valid: torch.Tensor | None = None,
             weights: torch.Tensor | None = None, adaptive: bool = True, min_weight: float = 1e-5) -> NFTLoss:
    """The DiffusionNFT loss on clean-sample estimates (see the module docstring).

    Args:
        x0_theta: (B, ...) the clean sample implied by the trained prediction (with grad).
        x0_old: (B, ...) the same under the old policy (no grad needed).
        x0: (B, ...) the clean samples that were noised.
        r: (B,) optimality probabilities (:func:`optimality_probability`).
        beta: the mixing strength, > 0 (NVlabs: 1.0, or 0.1 for some rewards).
        clip: ``c`` of :func:`optimality_probability`; scales the loss as NVlabs' code does.
        mask: loss weight broadcastable to ``x0`` (:func:`..masked_loss.latent_loss_mask`); ``None``: full image.
        valid: (B,) bool, samples that train (default all). weights: (B,) per-sample weights (trust; default 1).
        adaptive: divide each branch by its mean absolute error (NVlabs); ``False``: plain squared errors.
        min_weight: the adaptive weight's floor (NVlabs: 1e-5).

    Raises:
        ValueError: beta <= 0, or shapes that differ.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if x0_theta.shape != x0_old.shape or x0_theta.shape != x0.shape:
        raise ValueError(f"x0_theta {tuple(x0_theta.shape)}, x0_old {tuple(x0_old.shape)} and x0 {tuple(x0.shape)} "
                         "must have the same shape")
    x0 = x0.detach().to(x0_theta.dtype)
    pos, neg = implicit_predictions(x0_theta, x0_old.to(x0_theta.dtype), beta)

    def branch(pred):
        err = pred - x0
        sq = masked_mean(err**2, mask)
        if not adaptive:
            return sq, sq
        with torch.no_grad():
            w = masked_mean(err.detach().abs().double(), mask).clamp(min=min_weight).to(sq.dtype)
        return sq / w, sq

    lp, sq_p = branch(pos)
    ln, sq_n = branch(neg)
    rr = r.to(lp.device, lp.dtype)
    per = clip / beta * (rr * lp + (1 - rr) * ln)
    v = torch.ones_like(per, dtype=torch.bool) if valid is None else valid.to(per.device)
    w = torch.ones_like(per) if weights is None else weights.to(per.device, per.dtype)
    vf = v.to(per.dtype)
    n = vf.sum().clamp(min=1.0)
    loss = (per * w * vf).sum() / n
    with torch.no_grad():
        def rms(t):
            return (masked_mean(t.detach() ** 2, mask) * vf).sum().div(n).sqrt()

        stats = dict(positive=(sq_p.detach() * vf).sum() / n, negative=(sq_n.detach() * vf).sum() / n,
                     separation=rms(pos - neg), old_deviate=rms(x0_theta - x0_old.to(x0_theta.dtype)),
                     positive_norm=rms(pos), negative_norm=rms(neg))
    return NFTLoss(loss=loss, **stats)
