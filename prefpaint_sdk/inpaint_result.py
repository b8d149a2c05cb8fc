"""What one inpainting call returns (:class:`InpaintResult`), and the one rule that picks among its candidates
(:func:`choose_candidate`): by score, by the trust-aware lower bound, or by a reward stack. The server, the
jobs and :meth:`InpaintResult.choose` all pick through it, so no front end keeps a copy of the rule."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .validation import bad_value

log = logging.getLogger(__name__)

__all__ = ["InpaintResult", "choose_candidate", "score_and_choose", "check_select", "SELECTS"]

SELECTS = ("reward", "lcb")


def choose_candidate(scores, bounds=None, select: str = "reward", lcb_c: float = 1.0, *, rewards=None,
                     weights=None, norm: str = "gdpo") -> int:
    """The candidate to keep: the highest score (``"reward"``), or the highest lower confidence bound
    ``score - lcb_c * bound`` (``"lcb"``, trust-aware; by score when there are no bounds). A score that is
    ``None`` or not finite is never picked.

    With ``rewards`` (label -> ``{"scores", "bounds"}``, as :attr:`InpaintResult.rewards`), the candidates
    are ranked by the reward stack instead (``weights``, ``norm``; see
    :func:`prefpaint_sdk.reward.choice.choose_by_rewards`): one reward alone by its (LCB) score, several by
    the stack's normalised combination; ``scores`` and ``bounds`` are then not used.

    Raises:
        InvalidInputError: ``select`` is neither, there are no scores, or none is finite.
    """
    check_select(select)
    if rewards:
        from .reward.choice import choose_by_rewards  # noqa: PLC0415 - only with a reward stack

        return choose_by_rewards(rewards, weights or (1.0,) * len(rewards), norm, select, lcb_c)
    if not len(scores):
        raise bad_value("scores", "there are no candidates' scores to choose among")
    keys = np.asarray([np.nan if s is None else s for s in scores], dtype=np.float64)
    if select == "lcb" and bounds is not None:
        keys = keys - lcb_c * np.asarray([np.nan if b is None else b for b in bounds], dtype=np.float64)
    if not np.isfinite(keys).any():
        raise bad_value("scores", f"none of the {keys.size} candidates' scores is finite; nothing to choose by")
    return int(np.argmax(np.where(np.isfinite(keys), keys, -np.inf)))


@dataclass
class InpaintResult:
    """What one inpainting call produced, with everything needed to reproduce it.

    Attributes:
        image: the chosen candidate, composited, exactly the input's size.
        candidates: every candidate, composited, in seed order.
        seeds: the seed of each candidate (candidate k used ``seeds[0] + k``).
        scores: reward of each candidate when a reward model is attached, else ``None``. With a reward stack
            of several rewards, the key the stack ranked them by (its normalised combination over the N
            candidates; ``None`` for a candidate some reward could not score).
        bounds: the reward model's error bound for each candidate, when available.
        trust: the reward model's trust weight of each candidate (from its bound), when available.
        rewards: with a reward stack, every reward's own scores: label -> ``{"scores", "bounds", "trust"}``
            (lists, ``None`` where missing); ``params["reward_stack"]`` holds its labels, weights and norm.
        best_index: index of ``image`` in ``candidates``.
        box: the context box (x0, y0, x1, y1) the model saw, in input pixels; ``None`` for an empty mask.
        params: the parameters of the call, after defaults.
        timings: seconds spent per phase.
        model_id / revision: which weights made it.
    """

    image: Image.Image
    candidates: list[Image.Image]
    seeds: list[int]
    scores: list[float] | None = None
    bounds: list[float] | None = None
    trust: list[float] | None = None
    rewards: dict[str, dict[str, Any]] | None = None
    best_index: int = 0
    box: tuple[int, int, int, int] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    model_id: str | None = None
    revision: str | None = None

    @property
    def seed(self) -> int:
        """The seed that reproduces :attr:`image` alone."""
        return self.seeds[self.best_index]

    def choose(self, select: str = "reward", lcb_c: float = 1.0) -> int:
        """The index of the candidate ``select`` picks: see :func:`choose_candidate` (:attr:`best_index`
        without scores)."""
        if not self.scores:
            return self.best_index
        if self.rewards:
            st = self.params.get("reward_stack") or {}
            return choose_candidate(None, select=select, lcb_c=lcb_c, rewards=self.rewards, weights=st.get("weights"),
                                    norm=st.get("norm", "gdpo"))
        return choose_candidate(self.scores, self.bounds, select, lcb_c)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, save_all: bool = False) -> list[str]:
        """Write the image, a sidecar ``.json`` with every fact of :meth:`to_dict`, and optionally all
        candidates (``<stem>_cand<k><suffix>``), as one output set: the whole set is checked first, every
        member is written under a temporary name, and only then are all renamed into place, so the set
        appears whole or not at all (an error or Ctrl-C leaves existing files untouched and no new ones).
        Files get the umask's modes. Returns the paths written.

        Raises:
            OutputExistsError: a member exists and ``overwrite`` is false (checked before writing any).
            InvalidInputError: an unknown image suffix, a folder where a file must go, an unwritable
                folder, two members with one name (``out.json`` would be its own sidecar), or a fact that
                is NaN/Infinity (strict JSON); every message names the user's path.
        """
        from .batch import result_files
        from .files import write_set

        write_set(self.writers(path, save_all=save_all), overwrite)
        return [str(t) for t in result_files(path, len(self.candidates), save_all)]

    def writers(self, path: str | os.PathLike, *, save_all: bool = False) -> dict:
        """The output set of :meth:`save` as ``{destination: writer}`` (image, candidates, sidecar), for
        callers that write it together with files of their own (manifest jobs)."""
        from pathlib import Path

        from .batch import result_files
        from .files import image_writer, json_writer

        path = Path(path)
        files = result_files(path, len(self.candidates), save_all)
        side, cand_paths = files[1], files[2:]
        facts = self.to_dict()
        if save_all:
            facts["candidate_files"] = [p.name for p in cand_paths]
        writers = {path: image_writer(self.image, path)}
        if save_all:
            writers.update((p, image_writer(im, p)) for im, p in zip(self.candidates, cand_paths))
        writers[side] = json_writer(facts, side)
        return writers

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able facts (everything but the pixels), as written to the CLI's sidecar file."""
        d = asdict(self)
        for key in ("image", "candidates"):
            d.pop(key)
        d["seed"] = self.seed
        d["size"] = list(self.image.size)
        return d


def check_select(select: str) -> str:
    """``select`` if it is a way to pick a candidate ('reward' or 'lcb'), else an ``InvalidInputError``."""
    if select not in SELECTS:
        raise bad_value("select", f"select must be 'reward' or 'lcb', got '{str(select)[:40]}'")
    return select


def score_and_choose(reward_model, candidates, image, hole, box=None, prompt: str = "", *, select: str = "reward",
                     lcb_c: float = 1.0, params=None, per_reward=None):
    """Best-of-N: score ``candidates`` with ``reward_model`` (a reward model or a reward stack) and pick one by
    :func:`choose_candidate`; returns ``(scores, bounds, trust, best)``, ``(None, None, None, 0)`` without a
    reward model. With a stack, every reward's own scores go into ``per_reward`` (label -> scores, bounds,
    trust) and the stack's settings into ``params``.

    The reward sees the context box the model inpainted, framed by the one function every scoring path uses
    (:func:`prefpaint_sdk.reward.framing.reward_views`).
    """
    if reward_model is None:
        return None, None, None, 0
    if hasattr(reward_model, "labels") and hasattr(reward_model, "norm"):  # a RewardStack
        return _score_stack(reward_model, candidates, image, hole, box, prompt, select, lcb_c,
                            {} if params is None else params, {} if per_reward is None else per_reward)
    from .reward.framing import mask_fill_of, reward_views  # noqa: PLC0415 - only with a reward model

    candidates, masked = reward_views(candidates, image, hole, box, mask_fill_of(reward_model))
    # The candidates share one masked prompt image: RewardModel.score encodes identical masked images
    # once, so N candidates cost N + 1 backbone passes, not 2N.
    out = reward_model.score(candidates, masked_images=[masked] * len(candidates))
    scores = [float(s) for s in out.scores]
    bounds = [float(b) for b in out.bounds] if getattr(out, "bounds", None) is not None else None
    trust = [float(t) for t in out.trust] if getattr(out, "trust", None) is not None else None
    if select == "lcb" and bounds is None and len(candidates) > 1:
        log.warning("select='lcb' but the reward model has no trust matrix; selecting by score")
    return scores, bounds, trust, choose_candidate(scores, bounds, select, lcb_c)


def _score_stack(stack, candidates, image, hole, box, prompt, select, lcb_c, params, per_reward):
    """Best-of-N by a reward stack (:mod:`prefpaint_sdk.reward.choice`): every reward's scores, and the key
    the pick is made by (one reward: its own scores, bounds and trust, so the LCB rule applies as before)."""
    from .reward.choice import score_candidates, stack_key, to_list  # noqa: PLC0415

    rewards = score_candidates(stack, candidates, image, hole, box, prompt)
    per_reward.update(rewards)
    params["reward_stack"] = dict(labels=list(stack.labels), weights=list(stack.weights), norm=stack.norm)
    best = choose_candidate(None, select=select, lcb_c=lcb_c, rewards=rewards, weights=stack.weights,
                            norm=stack.norm)
    if len(rewards) == 1:
        only = next(iter(rewards.values()))
        return only["scores"], only["bounds"], only["trust"], best
    return to_list(stack_key(rewards, stack.weights, stack.norm)), None, None, best
