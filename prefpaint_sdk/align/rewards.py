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
from typing import Callable

import torch

from ..errors import Arg, ConfigError, InvalidInputError
from ..reward.base import RewardScores, to_1d
from ..reward.constraints import BUILTIN_REWARDS
from ..reward.stack import RewardEnsemble
from .loss import trust_weights

__all__ = ["RewardBatch", "as_reward_fn"]

log = logging.getLogger(__name__)


@dataclass
class RewardBatch:
    """Rewards of B samples: ``scores`` (B,) float32, and optional ``bounds`` / ``trust`` (B,); ``parts``: a
    stack's own scores per reward (label -> (B,)), where ``scores`` combine them (:mod:`.reward_stack`)."""

    scores: torch.Tensor
    bounds: torch.Tensor | None = None
    trust: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] | None = None


def as_reward_fn(reward, *, trust_k: float = 0.05, trust_b: float = 0.7, trust_clamp=(1.0, 2.21),
                 batch_size: int = 16) -> Callable[..., RewardBatch]:
    """Wrap ``reward`` as ``fn(images, masks, masked_images) -> RewardBatch``.

    Args:
        reward: a built-in name (see :data:`~prefpaint_sdk.reward.constraints.BUILTIN_REWARDS`), an object with ``.score`` (RewardModel-like),
            a callable ``reward_fn(images, masks, masked_images) -> scores | (scores, bounds)``, or a
            class:`~prefpaint_sdk.reward.stack.RewardEnsemble` (a list or tuple of these is an equal-weight ensemble).
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
            raise ConfigError(f"unknown built-in reward '{reward}'; use one of {sorted(BUILTIN_REWARDS)} or pass ",
                              Arg("reward_model", "ID"))
        reward = BUILTIN_REWARDS[reward]

    def gamma(bounds):
        return trust_weights(bounds, trust_k, trust_b, *trust_clamp)

    if hasattr(reward, "score") and callable(reward.score):
        from ..reward.prefpaint import PrefPaintReward

        reward = PrefPaintReward(reward, batch_size)  # the one framing of every scoring path
    if callable(reward):
        user = reward

        def fn(images, masks, masked_images):
            n = images.shape[0]
            out = user(images, masks, masked_images)
            if isinstance(out, RewardScores):  # a protocol reward (prefpaint_sdk.reward.base); its own trust wins
                scores = to_1d(out.scores, n, "scores")
                bounds = None if out.bounds is None else to_1d(out.bounds, n, "bounds")
                trust = to_1d(out.trust, n, "trust weights") if out.trust is not None else (
                    gamma(bounds) if bounds is not None else None)
                return RewardBatch(scores, bounds, trust)
            if isinstance(out, tuple):
                if len(out) != 2:
                    raise InvalidInputError(f"reward_fn returned a tuple of {len(out)}; return scores or (scores, bounds)")
                scores, bounds = to_1d(out[0], n, "scores"), to_1d(out[1], n, "bounds")
                return RewardBatch(scores, bounds, gamma(bounds))
            return RewardBatch(to_1d(out, n, "scores"))

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
