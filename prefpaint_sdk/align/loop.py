"""What the shared loop gives an algorithm: the methods of :class:`~.algorithms.base.TrainLoop`.

:class:`LoopServices` is mixed into :class:`~.trainer.Aligner`, which owns the state they use (config,
accelerator, engine, policy, old policy, data, reward, grad-spike guard); :mod:`.trainer` is the loop itself
(iterations, evaluation, checkpoints, exports). The grad-spike guard and the per-iteration optimizer
counters are here because every algorithm's optimizer step goes through :meth:`LoopServices.optimizer_step`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from contextlib import contextmanager, nullcontext
from typing import Any

import torch

from ..errors import ConfigError
from . import sampling
from .algorithms.base import StepOutcome
from .rewards import RewardBatch
from .seeding import derive_seed

__all__ = ["GradSpikeGuard", "LoopServices"]

log = logging.getLogger(__name__)

_SAMPLE_STREAM = 1  # the seed stream of the training samples (as before the algorithm split)


class GradSpikeGuard:
    """Skip an optimizer step whose gradient norm is non-finite, or above ``factor`` x the median of the last
    ``window`` accepted norms (``factor`` 0: only non-finite norms are skipped). Its history is checkpointed,
    so a resumed run decides as an uninterrupted one.

    Skipped norms never enter the history, so a lasting change of scale would otherwise be skipped forever:
    after ``window`` consecutive finite spikes the norm is taken as the new level (the history restarts from
    it, with a warning) instead of stalling training.
    """

    def __init__(self, factor: float, window: int = 20):
        self.factor = float(factor)
        self.norms: deque[float] = deque(maxlen=window)
        self.skipped = 0
        self.streak = 0  # consecutive finite norms skipped as spikes

    def accept(self, norm: float) -> bool:
        """Whether to apply the step with this gradient norm (and remember it when applied)."""
        if not math.isfinite(norm):
            self.skipped += 1
            return False
        if self.factor > 0 and self.norms:
            median = sorted(self.norms)[(len(self.norms) - 1) // 2]
            if norm > self.factor * median:
                self.streak += 1
                if self.streak < self.norms.maxlen:
                    self.skipped += 1
                    return False
                log.warning("grad norm %.3g has exceeded %g x the median %.3g for %d steps in a row: taking it as "
                            "the new level", norm, self.factor, median, self.streak)
                self.norms.clear()
        self.streak = 0
        self.norms.append(norm)
        return True

    def state(self) -> dict[str, Any]:
        return {"norms": list(self.norms), "skipped": self.skipped, "streak": self.streak}

    def load(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.norms.clear()
        self.norms.extend(float(v) for v in state.get("norms", []))
        self.skipped = int(state.get("skipped", 0))
        self.streak = int(state.get("streak", 0))


class LoopServices:
    """The :class:`~.algorithms.base.TrainLoop` methods over the Aligner's state (see that protocol)."""

    # --- seeds and data -------------------------------------------------------------------------
    def generator(self, stream: int, it: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.config.seed, stream, it, self.accelerator.process_index))

    def items_for_iteration(self, it: int) -> list:
        acc = self.accelerator
        return sampling.items_for_iteration(self.data, self.train_indices, self.config, it, acc.process_index,
                                            acc.num_processes)

    def sample_seeds(self, it: int) -> list[int]:
        cfg = self.config
        n_local = cfg.prompts_per_iter * cfg.samples_per_prompt
        base = self.accelerator.process_index * n_local
        return [derive_seed(cfg.seed, _SAMPLE_STREAM, it, base + k) for k in range(n_local)]

    def sde_window(self, it: int) -> list[int]:
        return sampling.sde_window(self.engine, self.config, it)

    # --- samples and rewards --------------------------------------------------------------------
    def sample(self, items, seeds: list[int], samples_per_item: int, window: list[int] | None = None,
               reduction: str = "mean", region: str = "auto") -> tuple:
        out = sampling.sample(self.engine, self.raw_model, items, seeds, samples_per_item, cfg=self.config,
                              resolution=self.resolution, device=self.accelerator.device, prompts=self._prompts,
                              window=window, autocast=self.accelerator.autocast, reduction=reduction, region=region)
        self._sampled_groups = out[0].groups  # the groups of what score() is given next (a stack normalises in them)
        return out

    # the name of the era before the algorithm seam, kept for evaluation and users' scripts
    _sample = sample

    def score(self, images, masks, groups=None) -> RewardBatch:
        # The one seam of every algorithm's reward: a stack is normalised here (align/reward_stack.py), in the
        # groups of the batch just sampled unless given.
        last = getattr(self, "_sampled_groups", None)
        if groups is None and last is not None and len(last) == images.shape[0]:
            groups = last
        masked = images * (~masks).to(images.dtype)  # pasted back, so outside the hole this is the input
        return self.train_reward.train(images.cpu(), masks[:, 0].cpu(), masked.cpu(), groups=groups,
                                       accelerator=self.accelerator)

    _score = score

    def trust(self, rewards: RewardBatch) -> torch.Tensor:
        n = len(rewards.scores)
        t = rewards.trust if (self.config.use_trust and rewards.trust is not None) else torch.ones(n)
        return t.to(self.accelerator.device).float()

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.gather(tensor)

    def reward_metrics(self, rewards: torch.Tensor, trust: torch.Tensor) -> dict[str, float]:
        finite = rewards[torch.isfinite(rewards)]
        out = {
            "reward_mean": float(finite.mean()) if finite.numel() else float("nan"),
            "reward_std": float(finite.std(unbiased=False)) if finite.numel() else float("nan"),
            "reward_nan": float((~torch.isfinite(rewards)).sum()),
            "trust_mean": float(trust.mean()),
            "trust_min": float(trust.min()),
        }
        summary = dict(self.train_reward.last_summary)  # every reward's mean, std and share (reward_stack.py)
        if not self.train_reward.passthrough:  # ``rewards`` are the stack's advantages: report its proxy instead
            out["reward_mean"] = summary.pop("proxy_mean", float("nan"))
            out["reward_std"] = summary.pop("proxy_std", float("nan"))
        else:
            summary.pop("proxy_mean", None), summary.pop("proxy_std", None)
        return {**out, **summary}

    # --- gradients and the optimizer ------------------------------------------------------------
    def grad_sync(self, sync: bool):
        acc = self.accelerator
        # Sharded (fsdp) gradients are reduce-scattered at every backward: accumulation holds shards, not whole grads.
        return nullcontext() if (sync or acc.num_processes == 1 or getattr(self, "sharded", False)) else acc.no_sync(self.model)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def optimizer_step(self) -> StepOutcome:
        cfg = self.config
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        if getattr(self, "sharded", False):  # the norm of the whole model, from every process's shard (align/fsdp.py)
            from .fsdp import clip_grad_norm

            norm = clip_grad_norm(self.params.values(), max_norm)
        else:
            norm = self.accelerator.clip_grad_norm_(list(self.params.values()), max_norm)
        norm = float(norm) if norm is not None else float("nan")
        self._step_norms.append(norm)
        applied = self.guard.accept(norm)
        if applied:
            self.optimizer.step()
            if getattr(self, "sharded", False):  # new values in the shards: no forward may reuse gathered ones
                self.raw_model.reshard()
        else:  # a spike or a NaN: drop these gradients, keep the weights and the optimizer state
            self._step_skipped += 1
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepOutcome(norm=norm, applied=applied)

    def _reset_step_counters(self) -> None:
        self._step_norms: list[float] = []
        self._step_skipped = 0

    def _step_metrics(self) -> dict[str, float]:
        """The iteration's optimizer figures, logged for every algorithm."""
        norms = self._step_norms
        finite = [v for v in norms if math.isfinite(v)]
        return {"grad_norm": sum(finite) / len(finite) if finite else float("nan"),
                "grad_norm_max": max(norms) if norms else float("nan"),
                "optimizer_steps": len(norms) - self._step_skipped, "skipped_updates": self._step_skipped}

    @contextmanager
    def reference(self):
        if self.ref_model is not None:
            yield self.ref_model
            return
        if not getattr(self.raw_model, "peft_config", None):
            raise ConfigError(f"algorithm '{self.config.algo}' asked for the reference model but said it needs none "
                              "(Algorithm.needs_reference); full fine-tuning keeps a copy only when it does")
        self.raw_model.disable_adapters()
        try:
            yield self.raw_model
        finally:
            self.raw_model.enable_adapters()
