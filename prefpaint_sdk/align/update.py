"""The policy update of one alignment iteration, and the grad-spike guard.

For each trajectory train K of its stored steps with the clipped PPO loss (PPO and GRPO differ only in
their advantages, :mod:`.loss`) plus the optional L1 and KL regularisers: each optimizer step accumulates
the gradients of ``train_batch_size x grad_accum_steps`` trajectories x K steps. The family-specific part,
re-evaluating a stored step under the trained model, is :meth:`Engine.policy_step`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from .config import AlignConfig
from .loss import gaussian_kl, mean_l1, ppo_clip_loss
from .seeding import derive_seed

__all__ = ["GradSpikeGuard", "Policy", "micro_loss", "update_policy"]

log = logging.getLogger(__name__)


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


@dataclass
class Policy:
    """What the update trains: the (accelerate-prepared) ``model`` and its unwrapped ``raw`` module, the
    trainable ``params``, the optimizer and LR scheduler, and the frozen ``ref`` model of full fine-tuning
    (``None`` for LoRA, whose reference is the model with its adapters disabled)."""

    model: Any
    raw: Any
    params: dict[str, torch.nn.Parameter]
    optimizer: Any
    lr_scheduler: Any
    ref: Any = None


def update_policy(engine, policy: Policy, accelerator, cfg: AlignConfig, ro, adv, valid, trust, it: int,
                  guard: GradSpikeGuard) -> dict[str, float]:
    """Train on the rollout ``ro`` of iteration ``it``; returns the averaged loss diagnostics."""
    acc = accelerator
    n, T = ro.log_probs.shape
    K = min(cfg.timesteps_per_traj, T)
    ctx_step = engine.step_context(cfg.num_steps, acc.device)
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, 2, it, acc.process_index))
    policy.model.train()
    sums: dict[str, float] = {"loss": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0, "l1": 0.0, "kl_ref": 0.0}
    norms: list[float] = []
    counts = {"micro": 0, "steps": 0, "skipped": 0}
    params = list(policy.params.values())
    per_step = cfg.train_batch_size * cfg.grad_accum_steps
    for _ in range(cfg.inner_epochs):
        order = torch.randperm(n, generator=g)
        steps_idx = torch.stack([torch.randperm(T, generator=g)[:K] for _ in range(n)])  # (n, K)
        for s0 in range(0, n, per_step):
            for m0 in range(s0, s0 + per_step, cfg.train_batch_size):
                b = order[m0:m0 + cfg.train_batch_size]
                last_micro = m0 + cfg.train_batch_size >= s0 + per_step
                for k in range(K):
                    sync = last_micro and k == K - 1
                    ctx = nullcontext() if (sync or acc.num_processes == 1) else acc.no_sync(policy.model)
                    with ctx:
                        loss, diag = micro_loss(engine, policy, cfg, ro, b, steps_idx[b, k], adv, valid, trust,
                                                ctx_step, acc.device)
                        acc.backward(loss / (K * cfg.grad_accum_steps))
                    for key, v in diag.items():
                        sums[key] += v
                    counts["micro"] += 1
            norm = acc.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
            norm = float(norm) if norm is not None else float("nan")
            norms.append(norm)
            if guard.accept(norm):
                policy.optimizer.step()
            else:  # a spike or a NaN: drop these gradients, keep the weights and the optimizer state
                counts["skipped"] += 1
            policy.lr_scheduler.step()
            policy.optimizer.zero_grad(set_to_none=True)
            counts["steps"] += 1
    policy.model.eval()
    out = {k: v / max(counts["micro"], 1) for k, v in sums.items()}
    finite = [v for v in norms if math.isfinite(v)]
    out["grad_norm"] = sum(finite) / len(finite) if finite else float("nan")
    out["grad_norm_max"] = max(norms) if norms else float("nan")
    out["optimizer_steps"] = counts["steps"] - counts["skipped"]
    out["skipped_updates"] = counts["skipped"]
    return out


def micro_loss(engine, policy: Policy, cfg: AlignConfig, ro, b, tidx, adv, valid, trust, step_ctx, dev):
    """The loss of trajectories ``b`` at stored steps ``tidx`` (one per trajectory) and its diagnostics."""
    kw = dict(context=step_ctx, guidance_scale=cfg.guidance_scale, eta=cfg.eta, sde_noise=cfg.sde_noise,
              reduction=cfg.logprob_reduction)
    out = engine.policy_step(policy.model, ro, b, tidx, **kw)
    bl, tl = b.to(ro.log_probs.device), tidx.to(ro.log_probs.device)
    old_lp = ro.log_probs[bl, tl].to(dev)
    bd = b.to(dev)
    pl = ppo_clip_loss(out.log_prob, old_lp, adv[bd], trust[bd], cfg.clip_range, valid[bd])
    loss = pl.loss
    old_mean = ro.means[bl.to(ro.means.device), tl.to(ro.means.device)].float()
    l1 = mean_l1(out.mean, old_mean)
    if cfg.l1_coef > 0:
        loss = loss + cfg.l1_coef * l1.mean()
    kl_val = 0.0
    if cfg.kl_coef > 0:
        with torch.no_grad():
            if policy.ref is not None:
                ref = engine.policy_step(policy.ref, ro, b, tidx, **kw)
            else:
                policy.raw.disable_adapters()
                try:
                    ref = engine.policy_step(policy.raw, ro, b, tidx, **kw)
                finally:
                    policy.raw.enable_adapters()
        kl = gaussian_kl(out.mean, ref.mean, out.std, cfg.logprob_reduction)
        loss = loss + cfg.kl_coef * kl.mean()
        kl_val = float(kl.detach().mean())
    diag = {"loss": float(pl.loss.detach()), "approx_kl": float(pl.approx_kl), "clip_fraction": float(pl.clip_fraction),
            "l1": float(l1.detach().mean()), "kl_ref": kl_val}
    return loss, diag
