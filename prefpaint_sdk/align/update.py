"""The policy update of one :class:`~.trainer.Aligner` iteration.

For each trajectory train K random timesteps with the clipped PPO loss (plus the optional L1 and KL
regularisers of :mod:`.loss`): each optimizer step accumulates the gradients of
``train_batch_size x grad_accum_steps`` trajectories x K timesteps.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .loss import gaussian_kl, mean_l1, ppo_clip_loss
from .rollouts import Rollout, make_scheduler, policy_step
from .seeding import derive_seed

__all__ = ["update_policy", "micro_loss"]


def update_policy(self, ro: Rollout, adv, valid, trust, it: int) -> dict[str, float]:  # noqa: ANN001 - self is the Aligner
    """Train on the rollout ``ro`` of iteration ``it``; returns the averaged loss diagnostics."""
    cfg, acc = self.config, self.accelerator
    n, T = ro.log_probs.shape
    K = cfg.timesteps_per_traj
    sched = make_scheduler(self.pipe, cfg.num_steps, acc.device)
    g = torch.Generator().manual_seed(derive_seed(cfg.seed, 2, it, acc.process_index))
    self.unet.train()
    sums: dict[str, float] = {"loss": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0, "l1": 0.0, "kl_ref": 0.0, "grad_norm": 0.0}
    counts = {"micro": 0, "steps": 0}
    params = list(self.params.values())
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
                    ctx = nullcontext() if (sync or acc.num_processes == 1) else acc.no_sync(self.unet)
                    with ctx:
                        loss, diag = micro_loss(self, ro, b, steps_idx[b, k], adv, valid, trust, sched)
                        acc.backward(loss / (K * cfg.grad_accum_steps))
                    for key, v in diag.items():
                        sums[key] += v
                    counts["micro"] += 1
            norm = acc.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
            sums["grad_norm"] += float(norm) if norm is not None else float("nan")
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            counts["steps"] += 1
    self.unet.eval()
    out = {k: v / max(counts["micro"], 1) for k, v in sums.items() if k != "grad_norm"}
    out["grad_norm"] = sums["grad_norm"] / max(counts["steps"], 1)
    out["optimizer_steps"] = counts["steps"]
    return out


def micro_loss(self, ro: Rollout, b, tidx, adv, valid, trust, sched):  # noqa: ANN001 - self is the Aligner
    """The loss of trajectories ``b`` at timesteps ``tidx`` (one per trajectory) and its diagnostics."""
    cfg = self.config
    dev = self.accelerator.device
    b = b.to(ro.latents.device)
    tidx = tidx.to(ro.latents.device)
    x_t = ro.latents[b, tidx]
    x_prev = ro.next_latents[b, tidx]
    t = ro.timesteps.to(ro.latents.device)[tidx]
    neg = ro.negative_embeds[b] if ro.negative_embeds is not None else None
    args = (x_t, t, x_prev, ro.mask_latents[b], ro.masked_image_latents[b], ro.prompt_embeds[b], neg)
    kw = dict(guidance_scale=cfg.guidance_scale, eta=cfg.eta, reduction=cfg.logprob_reduction)
    out = policy_step(self.unet, sched, *args, **kw)
    old_lp = ro.log_probs[b, tidx].to(dev)
    pl = ppo_clip_loss(out.log_prob, old_lp, adv[b.to(dev)], trust[b.to(dev)], cfg.clip_range, valid[b.to(dev)])
    loss = pl.loss
    old_mean = ro.means[b, tidx].float()
    l1 = mean_l1(out.mean, old_mean)
    if cfg.l1_coef > 0:
        loss = loss + cfg.l1_coef * l1.mean()
    kl_val = 0.0
    if cfg.kl_coef > 0:
        with torch.no_grad():
            if self.ref_unet is not None:
                ref = policy_step(self.ref_unet, sched, *args, **kw)
            else:
                self.raw_unet.disable_adapters()
                try:
                    ref = policy_step(self.raw_unet, sched, *args, **kw)
                finally:
                    self.raw_unet.enable_adapters()
        kl = gaussian_kl(out.mean, ref.mean, out.std, cfg.logprob_reduction)
        loss = loss + cfg.kl_coef * kl.mean()
        kl_val = float(kl.mean())
    diag = {"loss": float(pl.loss.detach()), "approx_kl": float(pl.approx_kl), "clip_fraction": float(pl.clip_fraction),
            "l1": float(l1.detach().mean()), "kl_ref": kl_val}
    return loss, diag
