"""Several rewards at once: a weighted ensemble of scores, and a stack normalised into advantages.

* :class:`RewardEnsemble`: one score per sample, ``sum_i w_i * score_i`` (weights normalised), with the
  bounds combined; what best-of-N, evaluation and a gold judge need.
* :class:`RewardStack`: every reward's own scores **and** one advantage per sample, normalised by
  ``gdpo``, ``sum`` or ``rank`` (:mod:`.normalize`); what an RL trainer needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import Arg, ConfigError
from .base import RewardScores, to_1d

__all__ = ["RewardEnsemble", "RewardStack", "StackOutput", "as_reward"]


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
        members: rewards (specs, reward models, callables).
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


class _Adapted:
    """A function or a ``.score`` model behind the protocol: its answer made a :class:`RewardScores`."""

    def __init__(self, fn, name: str):
        self.fn, self.name = fn, name
        self.needs_original = bool(getattr(fn, "needs_original", False))
        self.needs_prompts = bool(getattr(fn, "needs_prompts", False))

    def __call__(self, images, masks, masked_images, *, prompts=None) -> RewardScores:
        n = images.shape[0]
        # protocol rewards (they declare needs_prompts) take prompts; plain functions take the three tensors
        protocol = hasattr(self.fn, "needs_prompts")
        out = self.fn(images, masks, masked_images, prompts=prompts) if protocol else self.fn(images, masks, masked_images)
        who = f"reward '{self.name}'"
        if isinstance(out, RewardScores):
            return RewardScores(to_1d(out.scores, n, "scores", who), None if out.bounds is None else to_1d(out.bounds, n, "bounds", who),
                                None if out.trust is None else to_1d(out.trust, n, "trust weights", who))
        if isinstance(out, tuple):
            if len(out) != 2:
                raise ConfigError(f"{who} returned a tuple of {len(out)}; return scores or (scores, bounds)")
            return RewardScores(to_1d(out[0], n, "scores", who), to_1d(out[1], n, "bounds", who))
        return RewardScores(to_1d(out, n, "scores", who))


def as_reward(reward: Any, name: str = "reward", batch_size: int = 16):
    """Any reward as a protocol reward (:mod:`prefpaint_sdk.reward.base`): a built-in name, a
    :class:`~prefpaint_sdk.reward.RewardModel` (or an object with its ``.score``), or a callable returning
    scores, ``(scores, bounds)`` or :class:`RewardScores`.

    Raises:
        ConfigError: an unknown built-in name, or an object that is neither callable nor has ``.score``.
    """
    from .constraints import BUILTIN_REWARDS

    if isinstance(reward, str):
        if reward not in BUILTIN_REWARDS:
            raise ConfigError(f"unknown built-in reward '{reward}'; use one of {', '.join(BUILTIN_REWARDS)}")
        return _Adapted(BUILTIN_REWARDS[reward], reward)
    if hasattr(reward, "score") and callable(reward.score):
        from .prefpaint import PrefPaintReward

        return _Adapted(PrefPaintReward(reward, batch_size), name)
    if callable(reward):
        return _Adapted(reward, name)
    raise ConfigError(f"reward {reward!r} is neither a built-in name, a callable, nor an object with .score(...)")


@dataclass
class StackOutput:
    """What a :class:`RewardStack` returns for B samples.

    Attributes:
        rewards: label -> that reward's :class:`RewardScores` (raw scores, bounds where it has them).
        scores: (R, B) float64 raw scores, in the stack's order.
        advantages: (B,) float64, normalised by the stack's ``norm``; NaN where any reward is NaN.
        weights: the R weights.
    """

    rewards: dict[str, RewardScores]
    scores: Any
    advantages: Any
    weights: tuple[float, ...] = field(default=())

    def summary(self) -> dict[str, dict[str, float]]:
        """Per reward: ``mean`` and ``std`` of its finite raw scores and ``share``, its part of the advantage:
        ``mean |w_r * z_r|`` over the sum of them, with ``z_r`` its group-free standardised scores."""
        import torch

        from .normalize import whiten

        out, parts = {}, []
        for (label, rs), w in zip(self.rewards.items(), self.weights):
            s = rs.scores.double()
            ok = s[torch.isfinite(s)]
            z = whiten(s)
            parts.append(float((w * z[torch.isfinite(z)]).abs().mean()) if ok.numel() else 0.0)
            out[label] = {"mean": float(ok.mean()) if ok.numel() else float("nan"),
                          "std": float(ok.std(unbiased=False)) if ok.numel() else float("nan")}
        total = sum(parts)
        for (label, _), p in zip(self.rewards.items(), parts):
            out[label]["share"] = p / total if total > 0 else 0.0
        return out


class RewardStack:
    """Several rewards, each scored on its own, weighted and normalised into one advantage per sample.

    Call::

        out = stack(images, masks, masked_images, *, groups=None, prompts=None)  # -> StackOutput

    with the tensors of the reward protocol (:mod:`prefpaint_sdk.reward.base`): ``images`` (B, 3, H, W)
    floats in [0, 1], ``masks`` (B, H, W) bool (True = hole), ``masked_images`` (B, 3, H, W) whose outside
    is the original; ``groups`` (B,) group ids (the samples of one prompt; ``None``: one group); ``prompts``
    one text per image for rewards that need it. ``out.rewards[label].scores`` are each reward's raw
    scores (their ``bounds`` / ``trust`` where the reward has a trust bound), ``out.advantages`` the
    normalised combination (:func:`~prefpaint_sdk.reward.normalize.combine`), ``out.summary()`` the
    per-reward mean, std and share of the advantage for the logs. :meth:`score` gives the raw scores alone.

    Args:
        rewards: protocol rewards, or anything :func:`as_reward` accepts.
        labels: a name per reward (default ``reward0``...); repeated labels get ``#2``, ``#3``.
        weights: one finite weight per reward, not all zero (default 1 each). Not normalised: every norm
            is invariant to a common scale of the weights.
        norm: ``gdpo`` (default), ``sum`` or ``rank``.
        batch_size: images per pass for rewards that take it.

    Raises:
        ConfigError: no reward, a weights count other than the rewards', a non-finite or all-zero weight,
        an unknown norm.
    """

    def __init__(self, rewards: Sequence, labels: Sequence[str] | None = None, weights: Sequence[float] | None = None,
                 norm: str = "gdpo", batch_size: int = 16):
        from .normalize import NORMS

        rewards = list(rewards)
        if not rewards:
            raise ConfigError("a reward stack needs at least one reward")
        w = tuple(float(x) for x in weights) if weights is not None else (1.0,) * len(rewards)
        if len(w) != len(rewards):
            raise ConfigError(f"{len(w)} reward weights for {len(rewards)} rewards; give one weight per reward")
        if not all(math.isfinite(x) for x in w) or not any(w):
            raise ConfigError(f"reward weights {list(w)} must be finite and not all zero")
        if norm not in NORMS:
            raise ConfigError(Arg("norm"), f" must be one of {', '.join(NORMS)}, got '{norm}'")
        labels = list(labels) if labels is not None else [f"reward{i}" for i in range(len(rewards))]
        seen: dict[str, int] = {}
        self.labels = []
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
            self.labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
        self.rewards = [as_reward(r, lab, batch_size) for r, lab in zip(rewards, self.labels)]
        self.weights, self.norm = w, norm

    @property
    def needs_original(self) -> bool:
        """Whether a reward of the stack compares against the original (``outside-change``)."""
        return any(getattr(r, "needs_original", False) for r in self.rewards)

    @property
    def needs_prompts(self) -> bool:
        """Whether a reward of the stack needs one prompt per image (``clip``)."""
        return any(getattr(r, "needs_prompts", False) for r in self.rewards)

    def score(self, images, masks, masked_images, *, prompts=None) -> dict[str, RewardScores]:
        """Every reward's own scores: label -> :class:`RewardScores`."""
        return {lab: r(images, masks, masked_images, prompts=prompts) for lab, r in zip(self.labels, self.rewards)}

    def facts(self) -> dict[str, Any]:
        """The stack as JSON-able facts: its reward labels, weights and norm."""
        return {"rewards": list(self.labels), "weights": list(self.weights), "norm": self.norm}

    def score_image(self, image, mask, *, masked_image=None, prompt: str | None = None) -> dict[str, Any]:
        """One image's answer (what ``prefpaint serve``'s ``/v1/score`` sends for a stack): every reward's
        ``{score, bound, trust}`` under ``rewards``, and one top-level ``score``: the reward's own when the
        stack has one reward (with its ``bound`` and ``trust``), else the weighted raw sum ``sum_r w_r s_r``
        (one image is no group to normalise over; ``None`` when a reward could not score it).

        Args:
            image / mask: the inpainting and its hole (path, PIL, array; white or True = hole).
            masked_image: the input with the hole blanked (its outside is the original), else derived.
            prompt: for rewards that need one (``clip``).
        """
        from .scoring import score_files

        rewards = score_files(self, image, mask, masked_image=masked_image, prompt=prompt)
        if len(rewards) == 1:
            top = dict(next(iter(rewards.values())))
        else:
            vals = [rewards[lab]["score"] for lab in self.labels]
            top = {"score": None if any(v is None for v in vals) else sum(w * v for w, v in zip(self.weights, vals)),
                   "bound": None, "trust": None}
        return {**top, "rewards": rewards}

    def __call__(self, images, masks, masked_images, *, groups=None, prompts=None) -> StackOutput:
        import torch

        from .normalize import combine

        per = self.score(images, masks, masked_images, prompts=prompts)
        scores = torch.stack([rs.scores.double() for rs in per.values()])
        return StackOutput(per, scores, combine(scores, self.weights, groups, self.norm), self.weights)
