"""The one reward protocol, and the tensor/PIL conversions every reward shares.

A **reward** is any callable::

    reward(images, masks, masked_images, *, prompts=None) -> RewardScores

* ``images``: (B, 3, H, W) float tensor in [0, 1], the inpainted images;
* ``masks``: (B, H, W) bool tensor, True = the hole;
* ``masked_images``: (B, 3, H, W) float tensor in [0, 1], the input with the hole blanked. Its pixels
  outside the hole are the **original**: rewards that compare against the original (``outside-change``)
  read them from here;
* ``prompts``: one text per image, or ``None`` (rewards that need text refuse ``None``).

It returns one score per image (higher is better; NaN for an image it cannot score, which the caller
drops) and, where the reward has one, an error bound per score and its own trust weight. A reward may
set ``needs_original = True`` (it is meaningless when ``masked_images`` was derived from the inpainted
image itself) and ``needs_prompts = True``; callers check both before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError

__all__ = ["RewardScores", "hole_of", "images_to_tensor", "to_1d", "to_pil"]


@dataclass
class RewardScores:
    """One reward's answer for B images.

    Attributes:
        scores: (B,) float32, higher is better; NaN where an image could not be scored.
        bounds: (B,) error bounds of the scores, or ``None`` for a reward without one.
        trust: (B,) the reward's own trust weights (the PrefPaint model's), or ``None``.
    """

    scores: torch.Tensor
    bounds: torch.Tensor | None = None
    trust: torch.Tensor | None = None


def to_1d(x: Any, n: int, what: str, who: str = "the reward") -> torch.Tensor:
    """``x`` as a (n,) float32 CPU tensor; refuses any other count."""
    t = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)).reshape(-1)
    if t.numel() != n:
        raise InvalidInputError(f"{who} returned {t.numel()} {what} for {n} images; return one per image")
    return t


def hole_of(mask, size) -> np.ndarray:
    """One sample's mask as a bool (H, W) hole: True where it is set (>= 0.5 for float masks)."""
    m = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask).reshape(tuple(size))
    return m >= 0.5 if np.issubdtype(m.dtype, np.floating) else m.astype(bool)


def to_pil(images: torch.Tensor) -> list:
    """(B, 3, H, W) floats in [0, 1] -> B RGB PIL images (rounded to 8 bits, as a saved PNG would be)."""
    from PIL import Image

    arr = (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a, "RGB") for a in arr]


def images_to_tensor(images) -> torch.Tensor:
    """RGB PIL images of one size -> (B, 3, H, W) float32 in [0, 1]."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
