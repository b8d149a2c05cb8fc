"""How a stack of rewards becomes one advantage per sample: ``gdpo``, ``sum`` and ``rank``. Pure functions.

Notation: ``S`` is (R, B), the raw scores of R rewards on B samples; ``w`` the R weights; ``g`` the B group
ids (a group = the samples of one (image, mask, prompt)); ``std`` is the population std. A statistic over
zero spread is 0, never a division by zero.

* ``gdpo`` (the default; GDPO, "group reward-decoupled normalisation"): each reward is normalised within
  its group, ``z_r = (s_r - mean_g s_r) / std_g s_r``; the weighted sum ``sum_r w_r z_r`` is whitened
  over the batch. Every reward then moves the advantage by its weight, whatever its scale.
* ``sum``: the raw weighted sum ``sum_r w_r s_r``, normalised within its group (GRPO on the sum, as
  flow_grpo does with several rewards). The reward with the largest scale dominates: kept to compare.
* ``rank``: each reward's within-group win-rate (Pref-GRPO): the share of the other samples of the group
  it beats, a tie counting one half, in [0, 1] (0.5 for a group of one); the weighted sum is whitened over
  the batch. Robust to outliers and to any monotone change of a reward's scale.

A sample with a non-finite score in any reward gets a NaN advantage (callers drop it), and is left out
of every statistic.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import Arg, ConfigError

__all__ = ["NORMS", "combine", "group_normalise", "whiten", "win_rates"]

NORMS = ("gdpo", "sum", "rank")


def _group_ids(groups, n: int) -> torch.Tensor:
    if groups is None:
        return torch.zeros(n, dtype=torch.long)
    g = torch.as_tensor(groups).reshape(-1)
    if g.numel() != n:
        raise ConfigError(f"{g.numel()} group ids for {n} samples; give one per sample")
    return g


def _standardise(v: torch.Tensor) -> torch.Tensor:
    s = v.std(unbiased=False) if v.numel() > 1 else v.new_zeros(())
    return (v - v.mean()) / s if float(s) > 0 else torch.zeros_like(v)


def group_normalise(scores: torch.Tensor, groups=None) -> torch.Tensor:
    """``(s - mean of its group) / std of its group`` over finite scores; 0 for a group without spread, NaN kept."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    g, ok = _group_ids(groups, s.numel()), torch.isfinite(s)
    out = torch.full_like(s, float("nan"))
    for gid in torch.unique(g):
        sel = (g == gid) & ok
        if sel.any():
            out[sel] = _standardise(s[sel])
    return out


def whiten(values: torch.Tensor) -> torch.Tensor:
    """``(a - mean) / std`` over the finite values of the batch; 0 when they have no spread, NaN kept."""
    a = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    ok = torch.isfinite(a)
    out = torch.full_like(a, float("nan"))
    if ok.any():
        out[ok] = _standardise(a[ok])
    return out


def win_rates(scores: torch.Tensor, groups=None) -> torch.Tensor:
    """Each sample's share of the other finite samples of its group that it beats (ties 1/2); 0.5 alone."""
    s = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    g, ok = _group_ids(groups, s.numel()), torch.isfinite(s)
    out = torch.full_like(s, float("nan"))
    for gid in torch.unique(g):
        sel = (g == gid) & ok
        v = s[sel]
        if v.numel() == 1:
            out[sel] = 0.5
        elif v.numel() > 1:
            beats = (v[:, None] > v[None, :]).double() + 0.5 * (v[:, None] == v[None, :]).double()
            out[sel] = (beats.sum(1) - 0.5) / (v.numel() - 1)  # minus the self-tie
    return out


def combine(scores: torch.Tensor, weights: Sequence[float], groups=None, norm: str = "gdpo") -> torch.Tensor:
    """One advantage per sample from (R, B) ``scores`` (see the module docstring); float64 (B,).

    Raises:
        ConfigError: an unknown ``norm``, or a weights count other than R.
    """
    if norm not in NORMS:
        raise ConfigError(Arg("norm"), f" must be one of {', '.join(NORMS)}, got '{norm}'")
    s = torch.as_tensor(scores, dtype=torch.float64)
    s = s.reshape(1, -1) if s.ndim == 1 else s
    w = torch.as_tensor(list(weights), dtype=torch.float64).reshape(-1)
    if w.numel() != s.shape[0]:
        raise ConfigError(f"{w.numel()} reward weights for {s.shape[0]} rewards; give one weight per reward")
    bad = ~torch.isfinite(s).all(0)
    s = torch.where(bad[None, :], torch.full_like(s, float("nan")), s)  # one bad reward drops the sample everywhere
    if norm == "sum":
        return group_normalise((w[:, None] * s).sum(0), groups)
    per = group_normalise if norm == "gdpo" else win_rates
    return whiten(sum(w[r] * per(s[r], groups) for r in range(s.shape[0])))
