"""The PPO-style clipped policy loss of PrefPaint/DDPO, advantages, trust weights and regularisers.

Loss per trained step (the paper's Eq. and the release):

    ratio = exp(logp_new - logp_old)
    loss  = gamma * max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))

averaged over the samples with a finite reward. ``eps`` (the clip range) defaults to 1e-4. How it
interacts with the log-prob reduction: with the "mean" reduction (release, DDPO) ``logp`` is the mean
of ~16k per-element log-densities (64x64x4 latents), so a parameter change moves the ratio by roughly
1/16k of what the "sum" reduction would; 1e-4 was tuned for "mean". With "sum", the same policy change
gives a ratio ~n_elements times farther from 1 in log space, so almost every sample is clipped at
eps = 1e-4; use a clip range about n_elements times larger (e.g. 1.0 at 64x64x4) or keep "mean".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["GroupAdvantages", "PolicyLoss", "compute_advantages", "grpo_advantages", "ppo_clip_loss", "trust_weights", "gaussian_kl", "mean_l1"]


@dataclass
class PolicyLoss:
    """The loss and its diagnostics (all scalars, ``loss`` with grad).

    Attributes:
        loss: weighted mean clipped loss over valid samples.
        approx_kl: 0.5 * mean((logp_new - logp_old)^2), the DDPO estimate of KL(old || new).
        clip_fraction: share of valid samples whose ratio left [1 - eps, 1 + eps].
        ratio_mean: mean ratio over valid samples.
    """

    loss: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor
    ratio_mean: torch.Tensor


def compute_advantages(rewards: torch.Tensor, groups: torch.Tensor | None = None, mode: str = "batch",
                       clip: float = 10.0, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardise rewards into advantages, drop NaN rewards, clip to ±``clip``.

    Args:
        rewards: (N,) rewards, already gathered from all processes for ``mode="batch"``.
        groups: (N,) group ids (one per (image, mask)), needed for ``mode="group"``.
        mode: "batch": (r - mean) / (std + eps) over all finite rewards (the release);
            "group": the same within each group (a per-prompt baseline, as DDPO's per-prompt tracker).
        clip: advantages are clipped to [-clip, clip].
        eps: added to the std, 1e-7 as the release.

    Returns:
        ``(advantages, valid)``: advantages (N,) float32 with 0 where the reward is NaN, and the bool mask
        of finite rewards. The std is the population std (``unbiased=False``).

    Raises:
        ValueError: an unknown mode, or "group" without ``groups``.
    """
    r = rewards.detach().float()
    valid = torch.isfinite(r)
    adv = torch.zeros_like(r)
    if mode == "batch":
        if valid.any():
            v = r[valid]
            adv[valid] = (v - v.mean()) / (v.std(unbiased=False) + eps)
    elif mode == "group":
        if groups is None:
            raise ValueError("advantage mode 'group' needs the group id of every sample")
        g = torch.as_tensor(groups, device=r.device)
        for gid in torch.unique(g):
            sel = (g == gid) & valid
            if sel.any():
                v = r[sel]
                adv[sel] = (v - v.mean()) / (v.std(unbiased=False) + eps)
    else:
        raise ValueError(f"advantage mode must be 'batch' or 'group', got {mode!r}")
    return adv.clamp(-clip, clip), valid


@dataclass
class GroupAdvantages:
    """GRPO advantages of a gathered batch.

    Attributes:
        advantages: (N,) float32; 0 for NaN rewards and zero-std groups.
        valid: (N,) bool: a finite reward in a group whose std is not zero (the samples that train).
        zero_std_ratio: share of the groups (with a finite reward) whose rewards are all equal.
    """

    advantages: torch.Tensor
    valid: torch.Tensor
    zero_std_ratio: float


def grpo_advantages(rewards: torch.Tensor, groups: torch.Tensor, std: str = "group", clip: float = 10.0,
                    eps: float = 1e-7) -> GroupAdvantages:
    """Group-relative advantages (GRPO): ``(r - mean of its group) / (std + eps)``, clipped to ±``clip``.

    Args:
        rewards: (N,) rewards gathered from all processes; NaN rewards are left out of every statistic.
        groups: (N,) group ids (one group = the samples of one (image, mask)).
        std: "group": each group's own (population) std; "global": the std of all finite rewards of the batch.
        clip / eps: as :func:`compute_advantages`.

    A group whose finite rewards have std <= ``eps`` (all equal, or one sample) has no signal: its
    advantages are 0, its samples are not valid (they add nothing to the loss), and it counts in
    ``zero_std_ratio``.

    Raises:
        ValueError: an unknown ``std``.
    """
    if std not in ("group", "global"):
        raise ValueError(f"GRPO std must be 'group' or 'global', got {std!r}")
    r = rewards.detach().float()
    finite = torch.isfinite(r)
    g = torch.as_tensor(groups, device=r.device)
    adv = torch.zeros_like(r)
    valid = torch.zeros_like(finite)
    global_std = r[finite].std(unbiased=False) if finite.any() else torch.tensor(float("nan"))
    n_groups = n_zero = 0
    for gid in torch.unique(g):
        sel = (g == gid) & finite
        if not sel.any():
            continue
        n_groups += 1
        v = r[sel]
        s = v.std(unbiased=False)
        if float(s) <= eps:
            n_zero += 1
            continue
        denom = s if std == "group" else global_std
        adv[sel] = (v - v.mean()) / (denom + eps)
        valid[sel] = True
    return GroupAdvantages(advantages=adv.clamp(-clip, clip), valid=valid,
                           zero_std_ratio=n_zero / n_groups if n_groups else 0.0)


def trust_weights(bounds, k: float = 0.05, b: float = 0.7, lo: float = 1.0, hi: float = 2.21) -> torch.Tensor:
    """The paper's trust weight gamma = clamp(exp(-k * bound + b), lo, hi) from the reward's error bound.

    Defaults are the release's (k = 0.05, b = 0.7, clamp [1.0, 2.21]; the upper clamp is never reached
    since e^0.7 = 2.01).
    """
    bounds = torch.as_tensor(bounds, dtype=torch.float32)
    return torch.exp(-k * bounds + b).clamp(lo, hi)


def ppo_clip_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                  weights: torch.Tensor | None = None, clip_range: float = 1e-4,
                  valid: torch.Tensor | None = None) -> PolicyLoss:
    """The clipped surrogate loss, weighted per sample, averaged over valid samples.

    Args:
        log_prob: (N,) log-probabilities under the policy being trained (with grad).
        old_log_prob: (N,) log-probabilities under the old (rollout) policy.
        advantages: (N,) advantages. weights: (N,) trust weights gamma (default 1).
        clip_range: eps of the ratio clip.
        valid: (N,) bool; samples with a NaN reward are excluded (default: all valid).

    Returns:
        A :class:`PolicyLoss`.
    """
    adv = advantages.to(log_prob.dtype)
    w = torch.ones_like(adv) if weights is None else weights.to(log_prob.device, log_prob.dtype)
    v = torch.ones_like(adv, dtype=torch.bool) if valid is None else valid.to(log_prob.device)
    diff = log_prob - old_log_prob.to(log_prob.dtype)
    ratio = torch.exp(diff)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    per = torch.maximum(unclipped, clipped) * w
    vf = v.to(per.dtype)
    n = vf.sum().clamp(min=1.0)
    loss = (per * vf).sum() / n
    with torch.no_grad():
        approx_kl = 0.5 * ((diff.detach() ** 2) * vf).sum() / n
        clip_fraction = (((ratio.detach() - 1.0).abs() > clip_range).to(per.dtype) * vf).sum() / n
        ratio_mean = (ratio.detach() * vf).sum() / n
    return PolicyLoss(loss=loss, approx_kl=approx_kl, clip_fraction=clip_fraction, ratio_mean=ratio_mean)


def gaussian_kl(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Closed-form KL(N(mean, std^2) || N(ref_mean, std^2)) = |mean - ref_mean|^2 / (2 std^2), reduced per sample.

    Both step distributions share the DDIM std, so the KL depends on the means only.
    """
    from ..samplers.ddim import reduce_latent

    return reduce_latent((mean - ref_mean) ** 2 / (2 * std**2), reduction)


def mean_l1(mean: torch.Tensor, ref_mean: torch.Tensor) -> torch.Tensor:
    """The release's L1 distance between step means, per sample (mean over latent elements)."""
    dims = tuple(range(1, mean.ndim))
    return (mean - ref_mean).abs().mean(dim=dims)


