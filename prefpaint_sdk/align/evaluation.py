"""Held-out evaluation during alignment: mean reward and WinRate against the starting model.

Both models sample the same held-out (image, mask) pairs with the same seeds, so the comparison is
paired: a sample wins when its reward beats the starting model's sample of the same seed, and ties count
half a win (the paper's WinRate at S = 1, by the one definition in :mod:`prefpaint_sdk.reward.winrate`
that ``prefpaint eval`` uses too). Pairs the reward could not score (NaN) are left out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..reward.winrate import win_rate
from .seeding import derive_seed
from .tracking import log_metrics

__all__ = ["EvalResult", "win_rate", "image_grid", "paste_back", "evaluate_heldout", "log_eval_grid"]

log = logging.getLogger(__name__)

_EVAL_SEED = 1_000_003  # evaluation seeds never collide with training seeds


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


def image_grid(images: torch.Tensor, ncol: int) -> torch.Tensor:
    """Tile (N, 3, H, W) images into one (3, rows*H, ncol*W) image."""
    n, c, h, w = images.shape
    rows = (n + ncol - 1) // ncol
    grid = torch.zeros(c, rows * h, ncol * w, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = images[i].cpu()
    return grid


@torch.no_grad()
def evaluate_heldout(self, tag: str | None = None) -> EvalResult:  # noqa: ANN001 - self is the Aligner
    """Sample the held-out pairs with fixed seeds; mean reward and WinRate against the starting model.

    Runs on the main process (others wait); logs the metrics and an image grid.
    """
    cfg, acc = self.config, self.accelerator
    result = EvalResult(rewards=[], mean_reward=float("nan"), win_rate=None)
    if acc.is_main_process and self.eval_indices:
        items = [self.eval_set.get(i, mask_seed=derive_seed(cfg.seed, 31, i)) for i in self.eval_indices]
        seeds = [derive_seed(_EVAL_SEED, i, k) for i in range(len(items)) for k in range(cfg.eval_samples)]
        self.unet.eval()
        _, images, masks = self._sample(items, seeds, cfg.eval_samples)
        rb = self._score(images, masks)
        rewards = [float(r) for r in rb.scores]
        finite = [r for r in rewards if math.isfinite(r)]
        mean = float(np.mean(finite)) if finite else float("nan")
        wr = win_rate(rewards, self.baseline, skip_nonfinite=True) if self.baseline is not None else None
        result = EvalResult(rewards=rewards, mean_reward=mean, win_rate=wr)
        metrics = {"eval/mean_reward": mean}
        if wr is not None:
            metrics["eval/win_rate"] = wr
        log_metrics(self, metrics, eval_tag=tag)
        log_eval_grid(self, images, cfg.eval_samples)
    acc.wait_for_everyone()
    return result


def log_eval_grid(self, images: torch.Tensor, ncol: int) -> None:  # noqa: ANN001 - self is the Aligner
    """Save the evaluation samples as ``eval/iter_NNNNNN.png`` (and to TensorBoard when it is the tracker)."""
    from PIL import Image

    grid = image_grid(images.float().clamp(0, 1), ncol=max(ncol, 1) if ncol > 1 else min(8, len(images)))
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = self.output_dir / "eval" / f"iter_{self.iteration:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    if self.config.log_with == "tensorboard":
        try:
            tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
            tracker.add_image("eval/samples", grid, self.iteration)
        except Exception as exc:
            log.debug("could not log the image grid: %s", exc)
