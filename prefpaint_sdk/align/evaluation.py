"""Held-out evaluation during alignment: mean reward and WinRate against the starting model, the gold
reward and the bias audit on the same samples (see :mod:`.guards` and :mod:`.audit`).

Both models sample the same held-out (image, mask) pairs with the same seeds, so the comparison is
paired: a sample wins when its reward beats the starting model's sample of the same seed, and ties count
half a win (the paper's WinRate at S = 1, by the one definition in :mod:`prefpaint_sdk.reward.winrate`
that ``prefpaint eval`` uses too). Pairs the reward could not score (NaN) are left out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..reward.winrate import win_rate
from .audit import audit_batch
from .seeding import derive_seed

__all__ = ["EvalResult", "evaluate_heldout", "heldout_prompts", "image_grid", "log_eval_grid", "paste_back", "score_images",
           "win_rate"]

log = logging.getLogger(__name__)

_EVAL_SEED = 1_000_003  # evaluation seeds never collide with training seeds


@dataclass
class EvalResult:
    """Rewards of the held-out samples (NaN kept) and the summary figures.

    ``rewards``/``mean_reward``/``win_rate`` are the training (proxy) reward's; ``gold_rewards``/``gold_mean``
    the gold reward's on the same samples (``None`` without one); ``audit`` the bias audit of
    :func:`~prefpaint_sdk.align.audit.audit_batch` (hole vs context ring); ``images`` the scored samples.
    """

    rewards: list[float]
    mean_reward: float
    win_rate: float | None
    gold_rewards: list[float] | None = None
    gold_mean: float | None = None
    audit: dict[str, float] = field(default_factory=dict)
    images: torch.Tensor | None = field(default=None, repr=False)
    parts: dict[str, float] = field(default_factory=dict)  # a stack's held-out mean per reward

    def metrics(self) -> dict[str, float]:
        """The figures for the trackers: ``eval/...`` rewards and ``audit/...`` bias figures."""
        out = {"eval/mean_reward": self.mean_reward}
        if self.win_rate is not None:
            out["eval/win_rate"] = self.win_rate
        if self.gold_mean is not None:
            out["eval/gold_mean"] = self.gold_mean
        out.update({f"audit/{k}": v for k, v in self.audit.items()})
        out.update({f"eval/reward/{k}": v for k, v in self.parts.items()})
        return out


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


def heldout_prompts(eval_set, indices, seed: int, samples: int) -> tuple[list, list[int]]:  # noqa: ANN001
    """The held-out items (masks drawn from ``seed``) and the fixed sampling seeds of every evaluation."""
    items = [eval_set.get(i, mask_seed=derive_seed(seed, 31, i)) for i in indices]
    seeds = [derive_seed(_EVAL_SEED, i, k) for i in range(len(items)) for k in range(samples)]
    return items, seeds


def score_images(reward_fn, images: torch.Tensor, masks: torch.Tensor):  # noqa: ANN001 - an as_reward_fn function
    """Score pasted-back (N, 3, H, W) images with (N, 1, H, W) masks as the trainer does: the masked prompt
    image is the input with the hole black."""
    masked = images * (~masks).to(images.dtype)  # pasted back, so outside the hole this is the input
    return reward_fn(images.cpu(), masks[:, 0].cpu(), masked.cpu())


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@torch.no_grad()
def evaluate_heldout(sample: Callable, reward_fn: Callable, items: list, seeds: list[int], samples_per_item: int, *,
                     baseline: list[float] | None = None, gold_fn: Callable | None = None,
                     ring_width: int = 8) -> EvalResult:
    """Sample the held-out items with fixed seeds; proxy and gold rewards, WinRate vs ``baseline``, bias audit.

    Args:
        sample: ``sample(items, seeds, samples_per_item) -> (rollout, images, masks)`` with the current
            weights (the Aligner's ``_sample``); images pasted back, masks (N, 1, H, W) bool.
        reward_fn: the training (proxy) reward, an :func:`~prefpaint_sdk.align.rewards.as_reward_fn` function.
        items / seeds / samples_per_item: from :func:`heldout_prompts`.
        baseline: the starting model's proxy rewards on the same seeds (WinRate is ``None`` without).
        gold_fn: the gold reward (an ``as_reward_fn`` function), scored on the same samples.
        ring_width: the bias audit's context ring width in pixels.
    """
    _, images, masks = sample(items, seeds, samples_per_item)
    rb = score_images(reward_fn, images, masks)
    rewards = [float(r) for r in rb.scores]
    parts = {k: _mean([float(x) for x in v]) for k, v in (getattr(rb, "parts", None) or {}).items()}
    wr = win_rate(rewards, baseline, skip_nonfinite=True) if baseline is not None else None
    gold = None if gold_fn is None else [float(r) for r in score_images(gold_fn, images, masks).scores]
    return EvalResult(rewards=rewards, mean_reward=_mean(rewards), win_rate=wr, gold_rewards=gold,
                      gold_mean=None if gold is None else _mean(gold),
                      audit=audit_batch(images.float().clamp(0, 1), masks, ring_width), images=images, parts=parts)


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
