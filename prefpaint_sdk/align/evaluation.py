"""Held-out evaluation during alignment: mean reward and WinRate against the starting model.

Both models sample the same held-out (image, mask) pairs with the same seeds, so the comparison is
paired: a sample wins when its reward beats the starting model's sample of the same seed (the paper's
WinRate at S = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["EvalResult", "win_rate", "image_grid", "paste_back"]


@dataclass
class EvalResult:
    """Rewards of the held-out samples (NaN kept) and the summary figures."""

    rewards: list[float]
    mean_reward: float
    win_rate: float | None


def paste_back(generated: torch.Tensor, init01: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the known region: ``init * (1 - mask) + generated * mask`` (binary mask, so known pixels are exact)."""
    m = mask.to(generated.dtype)
    return init01.to(generated.dtype) * (1 - m) + generated * m


def win_rate(rewards: list[float], baseline: list[float]) -> float | None:
    """Share of paired samples whose reward beats the baseline's (pairs with a NaN are skipped)."""
    a, b = np.asarray(rewards, np.float64), np.asarray(baseline, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return None
    return float((a[ok] > b[ok]).mean())


def image_grid(images: torch.Tensor, ncol: int) -> torch.Tensor:
    """Tile (N, 3, H, W) images into one (3, rows*H, ncol*W) image."""
    n, c, h, w = images.shape
    rows = (n + ncol - 1) // ncol
    grid = torch.zeros(c, rows * h, ncol * w, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = images[i].cpu()
    return grid
