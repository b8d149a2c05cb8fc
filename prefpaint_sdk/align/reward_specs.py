"""Rewards named by text (CLI flags, configs): built-in names, reward-model folders, hub ids, weighted ensembles.

Resolution runs in two phases so that a bad name fails before any model loads:
:func:`resolve_reward` checks every name and finds each reward model's local folder (cheap: no weights
are read), and :func:`load_reward` then builds the reward (loading the reward models) for
:func:`~prefpaint_sdk.align.rewards.as_reward_fn`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from .rewards import BUILTIN_REWARDS, RewardEnsemble

__all__ = ["load_reward", "parse_weights", "resolve_reward", "reward_from_flags"]


def parse_weights(text: str | None, n: int, flag: str = "--reward-weights") -> tuple[float, ...] | None:
    """``"0.7,0.3"`` -> ``(0.7, 0.3)``, checked against the ``n`` rewards it weights (``None`` stays ``None``).

    Raises:
        ConfigError: not numbers, a count other than ``n``, a non-finite weight or all weights zero.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        weights = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{flag} '{text}' is not a comma-separated list of numbers; write e.g. {flag} 0.7,0.3") from None
    if len(weights) != n:
        raise ConfigError(f"{flag} '{text}' gives {len(weights)} weights for {n} rewards; give one weight per reward")
    if not all(math.isfinite(w) for w in weights):
        raise ConfigError(f"{flag} '{text}' holds a non-finite weight; give finite numbers such as 0.7,0.3")
    if not any(weights):
        raise ConfigError(f"{flag} '{text}' weights are all zero; give at least one non-zero weight")
    return weights


def _resolve_one(spec: Any, *, offline: bool | None, flag: str) -> Any:
    """A built-in name stays a name; a reward-model folder, hub id or .pt becomes its local folder (a Path)."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec  # a Python reward object or callable: as_reward_fn checks it
    text = os.fspath(spec)
    if text in BUILTIN_REWARDS:
        return text
    local = Path(text).expanduser()
    if not local.exists() and "/" not in text:
        raise ConfigError(f"{flag} '{text}' is neither a built-in reward ({', '.join(sorted(BUILTIN_REWARDS))}), an existing "
                          "folder, nor a hub id of the form owner/name")
    from ..reward.checks import check_reward_model

    return check_reward_model(text, offline=offline).path  # headers and pickles too: before the pipeline loads


def resolve_reward(reward: Any, *, offline: bool | None = None, flag: str = "--reward-model") -> Any:
    """Check every reward name in ``reward`` and find each reward model's folder, reading no weights.

    ``reward`` is a name/folder/hub id, a :class:`~prefpaint_sdk.align.rewards.RewardEnsemble` or list of
    them, or a Python reward (returned as is). Names become built-in names or local folders (``Path``), in
    the same structure, for :func:`load_reward`.

    Raises:
        ConfigError: an unknown name. InvalidInputError: a file that is not an official ``.pt``.
        ModelNotFoundError: a hub id that is not cached (offline) or cannot be downloaded.
    """
    if isinstance(reward, (list, tuple)):
        reward = RewardEnsemble(tuple(reward))
    if isinstance(reward, RewardEnsemble):
        return RewardEnsemble(tuple(_resolve_one(m, offline=offline, flag=flag) for m in reward.members), reward.weights)
    return _resolve_one(reward, offline=offline, flag=flag)


def load_reward(reward: Any, *, device: str = "auto", offline: bool | None = None, flag: str = "--reward-model") -> Any:
    """``reward`` with every reward model loaded (names are resolved first, as :func:`resolve_reward` does),
    ready for :func:`~prefpaint_sdk.align.rewards.as_reward_fn`.

    Raises:
        ConfigError: an unknown name. ModelNotFoundError, InvalidInputError, PickleRefusedError: a reward
        model that cannot be loaded.
    """
    reward = resolve_reward(reward, offline=offline, flag=flag)

    def load(r):
        if not isinstance(r, Path):
            return r
        from ..reward import RewardModel

        return RewardModel.from_pretrained(r, device=device, offline=offline)

    if isinstance(reward, RewardEnsemble):
        return RewardEnsemble(tuple(load(m) for m in reward.members), reward.weights)
    return load(reward)


def reward_from_flags(specs: Sequence[str], weights: str | None, flag: str, weights_flag: str) -> Any:
    """The reward a CLI's repeatable flag and its weights flag name: one spec as itself, else an ensemble.

    Raises:
        ConfigError: bad weights (see :func:`parse_weights`).
    """
    w = parse_weights(weights, len(specs), weights_flag)
    if len(specs) == 1 and w is None:
        return specs[0]
    return RewardEnsemble(tuple(specs), w or ())
