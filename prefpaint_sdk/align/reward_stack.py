"""The training reward of a run: the one seam through which every algorithm gets the number it trains on.

A run's reward is one reward (a spec, a model, a callable) or a **stack** of them (``--reward A --reward B
--reward-weights 1,0.5 --reward-norm gdpo|sum|rank``). :class:`TrainReward` turns either into what the
algorithms already consume, a :class:`~.rewards.RewardBatch` per sampled batch, so PPO, GRPO, DiffusionNFT
and online DPO all take their advantages (or, for DPO, their ranking) from it through
:meth:`TrainLoop.score <prefpaint_sdk.align.loop.LoopServices.score>`:

* **one reward** under ``gdpo`` or ``sum``: its raw scores and trust weights, exactly as before stacks
  existed (bit-identical: ``tests/test_align_refactor_hash.py``). With one reward there is nothing to
  balance, and each algorithm normalises it as it always has (PPO over the batch, GRPO and NFT by group or
  batch, DPO by its order within the group); for GRPO's group std that is what both norms would give too;
* **a stack** (or one reward under ``rank``): every reward scored on its own, the scores of the whole
  gathered batch combined by :func:`~prefpaint_sdk.reward.normalize.combine` (groups: the samples of one
  (image, mask) prompt), and that **advantage** handed to the algorithm as its reward. It is whitened over
  the batch (and under ``gdpo`` zero-mean in every group), so PPO's batch standardisation and NFT's global
  std leave it as it is; GRPO with ``adv_std='group'`` re-scales each group by its own std (``adv_std=
  'global'`` keeps GDPO's batch scale); DPO pairs by its order within the group;
* **a** :class:`~prefpaint_sdk.reward.stack.RewardEnsemble` (the pre-stack API, and the runs it recorded):
  the raw weighted sum of its members, as before.

**Trust.** A reward with a trust bound (the PrefPaint model, a remote server that answers bounds) gives
gamma per sample; a reward without one (constraints, CLIP) gives none. A sample's loss weight is the
``|w|``-weighted mean of the gammas of the rewards that have one (ones when none has); so the bound of the
PrefPaint model weighs the samples it is unsure about, whatever else the stack holds. The weight applies to
the sample's whole advantage, constraint terms included: the algorithms weigh samples, not terms.

**Logs** (every iteration): per reward ``reward/<label>/mean``, ``/std`` and ``/share`` (its part of the
advantage under the run's norm, :meth:`TrainReward._summary`); ``reward_mean`` is then the mean of
the stack's **proxy**, the weighted mean of the raw scores (``sum_r w_r s_r / sum_r |w_r|``), which is also
what evaluation reports as the held-out training reward and what the hacking guard watches.

**The run record** (``align_config.json``) holds :meth:`TrainReward.record`: the specs, weights and norm.
The stack keeps no state across iterations, so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import torch

from ..errors import Arg, ConfigError
from ..reward.normalize import NORMS, combine
from ..reward.stack import RewardEnsemble, RewardStack
from .rewards import RewardBatch, as_reward_fn

__all__ = ["TrainReward", "check_stack_args", "resume_stack", "spec_texts", "stack_labels"]

log = logging.getLogger(__name__)

_GROUP_STRIDE = 1 << 20  # group ids of different processes never meet once gathered


def stack_labels(specs: Sequence[Any]) -> list[str]:
    """A label per reward for logs and records: the spec's name (``prefpaint``, ``seam``...), else ``reward<i>``."""
    from ..reward.specs import RewardSpec, parse_spec

    out = []
    for i, s in enumerate(specs):
        if isinstance(s, (str, os.PathLike, RewardSpec)):
            try:
                out.append(parse_spec(s).name)
                continue
            except ConfigError:
                pass
        name = str(getattr(s, "__name__", ""))
        out.append(name if name.isidentifier() else f"reward{i}")  # a lambda's "<lambda>" is no metric name
    seen: dict[str, int] = {}
    for i, lab in enumerate(out):  # the same name twice: prefpaint, prefpaint#2
        seen[lab] = seen.get(lab, 0) + 1
        out[i] = lab if seen[lab] == 1 else f"{lab}#{seen[lab]}"
    return out


def check_stack_args(reward: Any, weights: Any, norm: str | None) -> tuple[Any, tuple[float, ...] | None, str | None]:
    """Check a stack's weights and norm against its rewards before anything loads. Returns ``(reward, weights,
    norm)`` with the weights parsed (``"1,0.5"`` -> ``(1.0, 0.5)``).

    Raises:
        ConfigError: an unknown norm, weights for a single reward or an ensemble, a count other than the rewards'.
    """
    from ..reward.specs import parse_weights

    if norm is not None and norm not in NORMS:
        raise ConfigError(Arg("reward_norm"), f" must be one of {', '.join(NORMS)}, got '{norm}'")
    if weights is None:
        return reward, None, norm
    if isinstance(reward, RewardEnsemble):
        raise ConfigError("reward weights were given twice: in the RewardEnsemble and as reward_weights; give one")
    n = len(reward) if isinstance(reward, (list, tuple)) else 1
    if isinstance(weights, str):
        return reward, parse_weights(weights, n), norm
    w = tuple(float(x) for x in weights)
    if len(w) != n:
        raise ConfigError(Arg("reward_weights"), f" gives {len(w)} weights for {n} rewards; give one weight per reward")
    return reward, parse_weights(",".join(repr(x) for x in w), n), norm


def spec_texts(specs: Sequence[Any]) -> list[str] | None:
    """The rewards as the text a user would write (``prefpaint=RM``, ``seam``), or ``None`` when any of them is a
    Python object (nothing textual to record)."""
    from ..reward.specs import RewardSpec

    out = []
    for s in specs:
        if isinstance(s, RewardSpec):
            out.append(s.name if s.source is None else f"{s.name}={s.source}")
        elif isinstance(s, (str, os.PathLike)):
            out.append(os.fspath(s))
        else:
            return None
    return out


def resume_stack(output_dir, reward: Any, weights: tuple[float, ...] | None, norm: str | None):
    """On resume: the stack as the run record has it, and a refusal of another one. Model-free.

    A record without a stack (written before stacks) keeps the raw weighted sum it trained on: several rewards
    become a :class:`~prefpaint_sdk.reward.stack.RewardEnsemble` unless a norm is asked for. A record with one
    gives its norm and weights where none are given; other rewards, weights or norm are refused.

    Returns:
        ``(reward, weights, norm)`` to build the run's :class:`TrainReward` from.

    Raises:
        ConfigError: the stack differs from the record's. CorruptFileError: a damaged record.
    """
    from pathlib import Path

    from ..state import read_json
    from .checkpoint import RECORD

    path = Path(output_dir) / RECORD
    if not path.is_file() or isinstance(reward, RewardEnsemble):
        return reward, weights, norm
    rec = read_json(path, what="run record", fix="delete it, or start a new run with --overwrite").get("reward")
    members = list(reward) if isinstance(reward, (list, tuple)) else [reward]
    if not isinstance(rec, dict):
        if len(members) > 1 and norm is None:  # the run trained on the raw weighted sum; so does its resumption
            return RewardEnsemble(tuple(members), weights or ()), None, None
        return reward, weights, norm
    labels = stack_labels(members)
    want = (rec.get("labels"), [float(x) for x in rec.get("weights") or []], rec.get("norm"))
    got = (labels, list(weights) if weights is not None else want[1], norm or want[2])
    if got != want:
        raise ConfigError(f"the run in '{output_dir}' was trained on the reward stack {want[0]} with weights {want[1]} "
                          f"and --reward-norm {want[2]}; resuming it with {got[0]}, weights {got[1]} and norm {got[2]} "
                          "would change what it trains on; give the same stack, or start a new run with --overwrite")
    return reward, tuple(want[1]), want[2]


class TrainReward:
    """A run's training reward, one reward or a stack (see the module docstring).

    Args:
        reward: a reward (a built-in name, a model with ``.score``, a callable, a protocol reward), a list of
            them (a stack), a :class:`~prefpaint_sdk.reward.stack.RewardStack`, or a ``RewardEnsemble`` (the raw
            weighted sum, as before stacks).
        weights: one weight per reward of a stack (default 1 each).
        norm: ``gdpo`` (default), ``sum`` or ``rank``.
        labels: a label per reward (default: from ``specs``, else ``reward<i>``).
        specs: the rewards as text, for the run record.
        prompt: the text given to rewards that need one (CLIP); trust_k / trust_b / trust_clamp: the trust formula.

    Raises:
        ConfigError: weights that do not match the rewards, an unknown norm.
    """

    def __init__(self, reward: Any, *, weights: Sequence[float] | None = None, norm: str | None = None,
                 labels: Sequence[str] | None = None, specs: Sequence[str] | None = None, prompt: str = "",
                 trust_k: float = 0.05, trust_b: float = 0.7, trust_clamp=(1.0, 2.21), batch_size: int = 16):
        trust = dict(trust_k=trust_k, trust_b=trust_b, trust_clamp=trust_clamp, batch_size=batch_size)
        self.prompt = prompt
        self.last_summary: dict[str, float] = {}
        self._warned: set[str] = set()
        if isinstance(reward, RewardStack):
            reward, labels, weights, norm = reward.rewards, labels or reward.labels, weights or reward.weights, norm or reward.norm
        if isinstance(reward, RewardEnsemble):  # the pre-stack path: one raw weighted sum
            if weights is not None or norm is not None:
                raise ConfigError("a RewardEnsemble is a raw weighted sum; pass a list of rewards to stack them with "
                                  "reward_weights / reward_norm")
            self.members, self.weights, self.norm, self.labels = [reward], (1.0,), None, ["reward"]
            self.fns = [as_reward_fn(reward, **trust)]
            self.specs = None
            return
        members = list(reward) if isinstance(reward, (list, tuple)) else [reward]
        if not members:
            raise ConfigError("give at least one reward")
        reward, w, norm = check_stack_args(members, weights, norm)
        self.members, self.norm = members, norm or "gdpo"
        self.weights = w or (1.0,) * len(members)
        self.specs = list(specs) if specs is not None else spec_texts(members)
        self.labels = list(labels) if labels is not None else stack_labels(specs if specs is not None else members)
        self.fns = [as_reward_fn(self._with_prompt(m), **trust) for m in members]

    def _with_prompt(self, member):
        if not getattr(member, "needs_prompts", False):
            return member
        if not self.prompt:
            raise ConfigError(f"reward {member!r} needs a prompt per image; set the run's prompt (--set prompt=TEXT)")

        def call(images, masks, masked):
            return member(images, masks, masked, prompts=[self.prompt] * images.shape[0])

        return call

    # ------------------------------------------------------------------------------------------
    @property
    def passthrough(self) -> bool:
        """Whether the algorithm gets the reward's own scores (one reward, or an ensemble; not under ``rank``)."""
        return len(self.fns) == 1 and self.norm != "rank"

    def record(self) -> dict[str, Any] | None:
        """What the run record keeps of the stack: specs (when given as text), weights and norm; ``None`` for an
        ensemble or a stack of Python objects (nothing textual to keep)."""
        if self.norm is None:
            return None
        return {"specs": self.specs, "labels": self.labels, "weights": list(self.weights), "norm": self.norm}

    def _parts(self, images, masks, masked) -> list[RewardBatch]:
        return [f(images, masks, masked) for f in self.fns]

    def _trust(self, parts: list[RewardBatch]) -> torch.Tensor | None:
        has = [(abs(w), p.trust.float()) for w, p in zip(self.weights, parts) if p.trust is not None]
        if not has:
            return None
        total = sum(w for w, _ in has)
        if total == 0:
            return None
        return sum(w * t for w, t in has) / total

    def _proxy(self, scores: torch.Tensor) -> torch.Tensor:
        """(B,) the weighted mean of the raw (B, R) scores: ``sum_r w_r s_r / sum_r |w_r|``."""
        w = torch.tensor(self.weights, dtype=torch.float64)
        return (scores.double() * w).sum(1) / w.abs().sum()

    # ------------------------------------------------------------------------------------------
    def evaluation(self, images, masks, masked) -> RewardBatch:
        """Held-out scoring: the reward's own scores (one reward), else the stack's proxy with each reward's
        scores in ``parts``."""
        parts = self._parts(images, masks, masked)
        if len(parts) == 1:
            return parts[0]
        scores = torch.stack([p.scores.double() for p in parts], 1)
        return RewardBatch(self._proxy(scores).float(), None, None,
                           parts={lab: p.scores for lab, p in zip(self.labels, parts)})

    __call__ = evaluation  # the form of an as_reward_fn function, for callers that score a batch

    def train(self, images, masks, masked, *, groups=None, accelerator=None) -> RewardBatch:
        """One training batch (this process's B samples): what the algorithm trains on, see the module docstring.

        Args:
            groups: (B,) the group (prompt) of each sample, as this process numbers them; ``None``: one group.
            accelerator: gathers every process's scores so that the normalisation spans the whole batch.
        """
        parts = self._parts(images, masks, masked)
        n = images.shape[0]
        local = torch.stack([p.scores.double() for p in parts], 1)  # (B, R)
        g = torch.zeros(n, dtype=torch.long) if groups is None else torch.as_tensor(groups).reshape(-1).long().cpu()
        rank, every = 0, local
        if accelerator is not None and accelerator.num_processes > 1:
            rank = accelerator.process_index
            dev = accelerator.device
            every = accelerator.gather(local.to(dev)).cpu()
            g = accelerator.gather((g + rank * _GROUP_STRIDE).to(dev)).cpu()
        for r, lab in enumerate(self.labels):
            if len(self.labels) > 1 and not torch.isfinite(every[:, r]).any() and lab not in self._warned:
                self._warned.add(lab)  # once: it drops every sample of every batch like this one
                log.warning("reward '%s' scored no sample of this batch (all NaN), so no sample has an advantage and "
                            "nothing is learnt; check that it can score these images and masks", lab)
        adv = combine(every.T, self.weights, g, self.norm) if not self.passthrough else every[:, 0]
        self.last_summary = self._summary(every, g)
        if self.passthrough:
            return parts[0]
        mine = adv[rank * n:(rank + 1) * n].float()
        return RewardBatch(mine, None, self._trust(parts), parts={lab: p.scores for lab, p in zip(self.labels, parts)})

    def _summary(self, every: torch.Tensor, groups: torch.Tensor) -> dict[str, float]:
        """The iteration's figures: the proxy's mean and std, and per reward its mean, std and **share**.

        A reward's share is ``mean |t_r|`` over the sum of them, with ``t_r`` its term of the advantage before
        the batch-wide scaling: ``w_r`` times its group-normalised scores (``gdpo``), its scores minus their
        group mean (``sum``: the raw sum is then divided by one std per group), or its win-rates minus 1/2
        (``rank``). Samples that any reward could not score are left out, as the advantage leaves them out.
        """
        from ..reward.normalize import group_normalise, win_rates

        proxy = self._proxy(every)
        ok = torch.isfinite(proxy)
        summary = {"proxy_mean": float(proxy[ok].mean()) if ok.any() else float("nan"),
                   "proxy_std": float(proxy[ok].std(unbiased=False)) if ok.any() else float("nan")}
        terms = []
        for r, w in enumerate(self.weights):
            s = every[:, r].double()
            if self.norm == "rank":
                t = win_rates(torch.where(ok, s, torch.nan), groups) - 0.5
            elif self.norm == "sum" or self.norm is None:
                t = torch.where(ok, s, torch.nan)
                t = t - _group_means(t, groups)
            else:
                t = group_normalise(torch.where(ok, s, torch.nan), groups)
            terms.append(float((w * t[ok]).abs().mean()) if ok.any() else 0.0)
        total = sum(terms)
        for r, lab in enumerate(self.labels):
            s = every[:, r][torch.isfinite(every[:, r])]
            summary[f"reward/{lab}/mean"] = float(s.mean()) if s.numel() else float("nan")
            summary[f"reward/{lab}/std"] = float(s.std(unbiased=False)) if s.numel() else float("nan")
            summary[f"reward/{lab}/share"] = terms[r] / total if total > 0 else 0.0
        return summary


def _group_means(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Each value's group mean over the finite values of its group (NaN where none)."""
    out = torch.full_like(values, float("nan"))
    ok = torch.isfinite(values)
    for gid in torch.unique(groups):
        sel = (groups == gid) & ok
        if sel.any():
            out[groups == gid] = values[sel].mean()
    return out
