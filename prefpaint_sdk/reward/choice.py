"""Best-of-N with a reward stack: score the candidates of one input by every reward, and pick one.

What ``Inpainter`` (``prefpaint inpaint -n N --reward ...``), ``prefpaint serve`` and a Python user call to
choose among candidates. The N candidates of one input are one group:

* every reward scores every candidate, framed as every scoring path frames it (the context box,
  :func:`~prefpaint_sdk.reward.framing.reward_views`; the mask cropped to it; the masked view's outside is
  the input, so ``outside-change`` compares against the original);
* with ``select="lcb"``, a reward that has error bounds (the PrefPaint model's trust bound) enters as its
  lower confidence bound ``score - lcb_c * bound``;
* one reward alone: its (LCB) score decides, so a stack of only ``prefpaint`` picks exactly as the PrefPaint
  rule does; several: the stack's ``norm`` (gdpo, sum, rank; :mod:`.normalize`) combines them over the group.

A candidate with a non-finite score in any reward is never picked; if none has finite scores everywhere,
the choice is refused (:class:`~prefpaint_sdk.errors.InvalidInputError` naming the rewards).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidInputError

__all__ = ["choose_by_rewards", "score_candidates", "stack_key", "to_list"]


def to_list(t) -> list[float | None] | None:
    """A (B,) tensor as JSON-able floats, NaN/inf as ``None`` (strict JSON); ``None`` stays ``None``."""
    if t is None:
        return None
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(t, dtype=np.float64).ravel()]


def _nan(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def stack_key(rewards: dict[str, dict[str, Any]], weights: Sequence[float], norm: str, select: str = "reward",
              lcb_c: float = 1.0) -> np.ndarray:
    """The key each candidate is ranked by (higher is better; NaN: never picked).

    Args:
        rewards: label -> ``{"scores": [...], "bounds": [...] or None}`` (as in :attr:`InpaintResult.rewards`).
        weights / norm: the stack's.
        select: ``"lcb"`` uses ``score - lcb_c * bound`` for every reward that has bounds.
    """
    import torch

    from .normalize import combine

    rows = []
    for rec in rewards.values():
        s = _nan(rec["scores"])
        if select == "lcb" and rec.get("bounds") is not None:
            s = s - lcb_c * _nan(rec["bounds"])
        rows.append(s)
    if len(rows) == 1:
        return rows[0]
    return combine(torch.from_numpy(np.stack(rows)), weights, None, norm).numpy()


def choose_by_rewards(rewards: dict[str, dict[str, Any]], weights: Sequence[float], norm: str, select: str = "reward",
                      lcb_c: float = 1.0) -> int:
    """The index of the candidate to keep (see :func:`stack_key`).

    Raises:
        InvalidInputError: no candidate has a finite score under every reward.
    """
    key = stack_key(rewards, weights, norm, select, lcb_c)
    if not np.isfinite(key).any():
        raise InvalidInputError(f"none of the {key.size} candidates has a finite score under every reward "
                                f"({', '.join(rewards)}); a reward cannot score this mask (e.g. seam without a "
                                "boundary): drop that --reward")
    return int(np.nanargmax(np.where(np.isfinite(key), key, np.nan)))


def score_candidates(stack, candidates, source, hole: np.ndarray, box=None, prompt: str | None = None
                     ) -> dict[str, dict[str, list | None]]:
    """Every reward's scores of the candidates of one input: label -> ``{"scores", "bounds", "trust"}``.

    Args:
        stack: a :class:`~prefpaint_sdk.reward.stack.RewardStack`.
        candidates: PIL images at ``source``'s size.
        source: the input; its pixels outside the hole are the original.
        hole: bool (H, W), True = the hole that was filled.
        box: the context box the model inpainted, or ``None`` for the whole image.
        prompt: the prompt the candidates were made for (rewards that need one).
    """
    import torch

    from .base import images_to_tensor
    from .framing import reward_box, reward_views

    views, masked = reward_views(candidates, source, hole, box)
    b = reward_box(source.size, box)
    n = len(views)
    masks = torch.from_numpy(np.ascontiguousarray(np.asarray(hole, dtype=bool)[b.y0:b.y1, b.x0:b.x1]))[None].expand(n, -1, -1)
    out = stack.score(images_to_tensor(views), masks, images_to_tensor([masked] * n), prompts=[prompt or ""] * n)
    return {label: {"scores": to_list(rs.scores), "bounds": to_list(rs.bounds), "trust": to_list(rs.trust)}
            for label, rs in out.items()}


def check_stack(specs, weights=None, norm: str = "gdpo", *, offline: bool | None = None, param: str = "reward"):
    """Every check of a stack that reads no weights, before a pipeline loads: names, weights, norm, each model's
    files, each remote server listening. Returns ``(specs, weights)`` for
    :func:`~prefpaint_sdk.reward.specs.load_stack`.

    Args:
        specs: one spec (text) or several; weights: text ``"1,0.5"``, numbers, or ``None`` (1 each).

    Raises:
        ConfigError: an unknown name, weights that do not match the rewards, an unknown norm; and whatever
        :func:`~prefpaint_sdk.reward.specs.resolve_reward` raises (a missing model, an unreachable server).
    """
    from .specs import resolve_reward, stack_specs

    specs = [specs] if isinstance(specs, str) else list(specs)
    if weights is not None and not isinstance(weights, str):
        weights = ",".join(repr(float(w)) if isinstance(w, (int, float)) else str(w) for w in weights)
    parsed, w = stack_specs(specs, weights, norm, param=param)
    for p in parsed:
        resolve_reward(p, offline=offline, param=param)
    return parsed, w
