"""Any reward, one interface: the ``RewardModel`` (duck-typed), a user callable, or a built-in name.

The trainer calls ``reward(images, masks, masked_images)`` with

* ``images``: (B, 3, H, W) float tensor in [0, 1], the generated images with the known region pasted
  back (so only the hole is the model's work);
* ``masks``: (B, H, W) bool tensor, True = the hole;
* ``masked_images``: (B, 3, H, W) float tensor, the input with the hole blanked black (the release's
  "masked prompt image"),

and gets back a :class:`RewardBatch`. A user callable may return ``scores`` or ``(scores, bounds)``,
as tensors, arrays or lists; bounds become trust weights gamma with the paper's formula. An object with
a ``.score`` method (the toolkit's ``RewardModel``) is called with PIL images framed by
:func:`prefpaint_sdk.reward.framing.reward_view` (the hole refilled in the model's ``mask_fill``), and its output's
``.trust`` is used as gamma when present (else its ``.bounds``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, InvalidInputError
from ..reward.framing import mask_fill_of, reward_view
from .loss import trust_weights

__all__ = ["RewardBatch", "as_reward_fn", "brightness_in_mask", "BUILTIN_REWARDS"]

log = logging.getLogger(__name__)


@dataclass
class RewardBatch:
    """Rewards of B samples: ``scores`` (B,) float32, and optional ``bounds`` / ``trust`` (B,)."""

    scores: torch.Tensor
    bounds: torch.Tensor | None = None
    trust: torch.Tensor | None = None


def brightness_in_mask(images: torch.Tensor, masks: torch.Tensor, masked_images: torch.Tensor | None = None) -> torch.Tensor:
    """Built-in programmatic reward "brightness": mean luma (Rec. 601) inside the hole, in [0, 1].

    A reward with a known optimum (a white hole) that needs no trained model: the smoke preset and the
    learning tests use it to show that alignment raises a reward. An empty hole scores NaN (dropped).
    """
    w = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    luma = (images * w).sum(1)
    m = masks.to(luma.dtype)
    area = m.sum((1, 2))
    return torch.where(area > 0, (luma * m).sum((1, 2)) / area.clamp(min=1), torch.full_like(area, float("nan")))


BUILTIN_REWARDS: dict[str, Callable] = {"brightness": brightness_in_mask}


def _to_1d(x: Any, n: int, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32)).reshape(-1)
    if t.numel() != n:
        raise InvalidInputError(f"the reward returned {t.numel()} {what} for {n} images; return one per image")
    return t


def _hole(mask, size) -> np.ndarray:
    """One sample's mask as a bool (H, W) hole: True where it is set (>= 0.5 for float masks)."""
    m = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask).reshape(tuple(size))
    return m >= 0.5 if np.issubdtype(m.dtype, np.floating) else m.astype(bool)


def _to_pil(images: torch.Tensor):
    from PIL import Image

    arr = (images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a, "RGB") for a in arr]


def as_reward_fn(reward, *, trust_k: float = 0.05, trust_b: float = 0.7, trust_clamp=(1.0, 2.21),
                 batch_size: int = 16) -> Callable[..., RewardBatch]:
    """Wrap ``reward`` as ``fn(images, masks, masked_images) -> RewardBatch``.

    Args:
        reward: a built-in name (see :data:`BUILTIN_REWARDS`), an object with ``.score`` (RewardModel-like),
            or a callable ``reward_fn(images, masks, masked_images) -> scores | (scores, bounds)``.
        trust_k / trust_b / trust_clamp: gamma = clamp(exp(-k * bound + b)) for bounds without trust.
        batch_size: batch size passed to ``.score``.

    Raises:
        ConfigError: an unknown built-in name or an object that is neither callable nor has ``.score``.
    """
    if isinstance(reward, str):
        if reward not in BUILTIN_REWARDS:
            raise ConfigError(f"unknown built-in reward '{reward}'; use one of {sorted(BUILTIN_REWARDS)} or pass --reward-model ID")
        reward = BUILTIN_REWARDS[reward]

    def gamma(bounds):
        return trust_weights(bounds, trust_k, trust_b, *trust_clamp)

    if hasattr(reward, "score") and callable(reward.score):
        model = reward

        def fn(images, masks, masked_images):
            n = images.shape[0]
            # One framing for every scoring path (prefpaint_sdk.reward.framing): the samples are the model's
            # whole working frame, and the masked view is the input with the hole in the model's mask_fill.
            fill = mask_fill_of(model)
            views = [reward_view(im, _hole(m, images.shape[-2:]), None, fill, source=src)
                     for im, m, src in zip(_to_pil(images), masks, _to_pil(masked_images))]
            out = model.score([v for v, _ in views], masked_images=[mv for _, mv in views], batch_size=batch_size)
            scores = _to_1d(out.scores, n, "scores")
            bounds = getattr(out, "bounds", None)
            bounds = None if bounds is None else _to_1d(bounds, n, "bounds")
            trust = getattr(out, "trust", None)
            trust = _to_1d(trust, n, "trust weights") if trust is not None else (gamma(bounds) if bounds is not None else None)
            return RewardBatch(scores, bounds, trust)

        return fn
    if callable(reward):
        user = reward

        def fn(images, masks, masked_images):
            n = images.shape[0]
            out = user(images, masks, masked_images)
            if isinstance(out, tuple):
                if len(out) != 2:
                    raise InvalidInputError(f"reward_fn returned a tuple of {len(out)}; return scores or (scores, bounds)")
                scores, bounds = _to_1d(out[0], n, "scores"), _to_1d(out[1], n, "bounds")
                return RewardBatch(scores, bounds, gamma(bounds))
            return RewardBatch(_to_1d(out, n, "scores"))

        return fn
    raise ConfigError(f"reward {reward!r} is neither a built-in name, a callable, nor an object with .score(...)")
