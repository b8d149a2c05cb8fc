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
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ConfigError, InvalidInputError
from ..reward.framing import mask_fill_of, reward_view
from .audit import luma, masked_mean
from .loss import trust_weights

__all__ = ["BUILTIN_REWARDS", "RewardBatch", "RewardEnsemble", "as_reward_fn", "brightness_in_mask"]

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
    return masked_mean(luma(images), masks)


BUILTIN_REWARDS: dict[str, Callable] = {"brightness": brightness_in_mask}


@dataclass(frozen=True)
class RewardEnsemble:
    """A weighted sum of rewards: ``score = sum_i w_i * score_i`` with ``w`` normalised to ``sum_i |w_i| = 1``.

    The weights are normalised so that an ensemble stays on its members' scale ("0.7,0.3" and "7,3" are the
    same ensemble), and the trust formula's k and b keep their meaning. A negative weight is allowed (a
    penalty). Bounds: when every member gives one, the ensemble's bound is ``sum_i |w_i| * b_i``: each
    member's error e_i is within b_i, so the ensemble's error satisfies ``|sum_i w_i e_i| <= sum_i |w_i| b_i``
    (the triangle inequality); trust gamma is computed from that combined bound. When any member has no
    bound, neither has the ensemble (trust 1). A NaN score from any member makes the ensemble's score NaN.

    Args:
        members: rewards as :func:`as_reward_fn` accepts them (names, reward models, callables).
        weights: one finite weight per member, not all zero; default: equal weights.

    Raises:
        ConfigError: no members, a weights count that does not match, a non-finite weight, all weights zero.
    """

    members: tuple
    weights: tuple = ()

    def __post_init__(self):
        members = tuple(self.members)
        if not members:
            raise ConfigError("a reward ensemble needs at least one member")
        weights = tuple(float(w) for w in self.weights) if self.weights else (1.0,) * len(members)
        if len(weights) != len(members):
            raise ConfigError(f"{len(weights)} reward weights for {len(members)} rewards; give one weight per reward")
        bad = [w for w in weights if not math.isfinite(w)]
        if bad:
            raise ConfigError(f"reward weight {bad[0]} is not finite; give finite numbers such as 0.7,0.3")
        total = sum(abs(w) for w in weights)
        if total == 0:
            raise ConfigError(f"reward weights {list(weights)} are all zero; give at least one non-zero weight")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "weights", tuple(w / total for w in weights))


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
            a callable ``reward_fn(images, masks, masked_images) -> scores | (scores, bounds)``, or a
            :class:`RewardEnsemble` (a list or tuple of these is an equal-weight ensemble).
        trust_k / trust_b / trust_clamp: gamma = clamp(exp(-k * bound + b)) for bounds without trust.
        batch_size: batch size passed to ``.score``.

    Raises:
        ConfigError: an unknown built-in name or an object that is neither callable nor has ``.score``.
    """
    trust = dict(trust_k=trust_k, trust_b=trust_b, trust_clamp=trust_clamp, batch_size=batch_size)
    if isinstance(reward, (list, tuple)):
        reward = RewardEnsemble(tuple(reward))
    if isinstance(reward, RewardEnsemble):
        return _ensemble_fn(reward, trust)
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


def _ensemble_fn(ens: RewardEnsemble, trust: dict) -> Callable[..., RewardBatch]:
    """The scoring function of ``ens`` (see :class:`RewardEnsemble` for how bounds combine)."""
    fns = [as_reward_fn(m, **trust) for m in ens.members]

    def fn(images, masks, masked_images):
        parts = [f(images, masks, masked_images) for f in fns]
        scores = sum(w * p.scores.float() for w, p in zip(ens.weights, parts))
        if any(p.bounds is None for p in parts):
            return RewardBatch(scores)
        bounds = sum(abs(w) * p.bounds.float() for w, p in zip(ens.weights, parts))
        return RewardBatch(scores, bounds, trust_weights(bounds, trust["trust_k"], trust["trust_b"], *trust["trust_clamp"]))

    return fn
