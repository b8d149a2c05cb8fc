"""PPO as PrefPaint/DDPO train it: the clipped policy loss on rollouts with per-step log-probabilities.

One iteration:

1. every ``resync_every`` iterations, re-sync the old policy to the trained weights;
2. sample ``prompts_per_iter x samples_per_prompt`` trajectories per process from the old policy (DDIM with
   eta > 0, or flow matching's SDE steps), storing every stored step's latents and log-probability;
3. score the pasted-back samples, gather the rewards from all processes and turn them into advantages
   (:meth:`PPO.advantages`: standardised over the whole gathered batch, NaN rewards dropped, clipped to
   ±``adv_clip``), and take the trust weights gamma from the reward's bound;
4. for each trajectory train ``timesteps_per_traj`` random stored steps with the clipped loss
   (:func:`~prefpaint_sdk.align.loss.ppo_clip_loss`), plus the optional L1 and KL regularisers: each
   optimizer step accumulates the gradients of ``train_batch_size x grad_accum_steps`` trajectories x K steps.

GRPO (:mod:`.grpo`) is this with group-relative advantages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ...errors import ConfigError
from ...settings import setting
from ..loss import compute_advantages, gaussian_kl, mean_l1, ppo_clip_loss
from .base import AlgoConfig, Algorithm

__all__ = ["ALGORITHM", "PPO", "PPOConfig"]

log = logging.getLogger(__name__)

_ORDER_STREAM = 2  # the seed stream of the sample order and timestep choice (as before the algorithm split)


@dataclass
class PPOConfig(AlgoConfig):
    """PPO's own settings (the shared ones are :class:`~prefpaint_sdk.align.config.AlignConfig`'s)."""

    timesteps_per_traj: int = setting(5, "K: random stored steps trained per trajectory (paper: 5 of 50)")
    resync_every: int = setting(15, "M: re-sync the old (rollout) policy to the trained weights every M iterations (paper: 15)")
    clip_range: float = setting(1e-4, "PPO ratio clip eps (paper/DDPO: 1e-4, tuned for the 'mean' reduction)")
    logprob_reduction: str = setting("mean", "'mean' (release, DDPO) or 'sum' over latent elements; 'sum' needs a far larger clip_range")
    logprob_region: str = setting("auto", "which latent elements a step's log-probability counts: 'mask' (the hole's "
                                          "cells only) or 'full' (all); 'auto' = the family's (Engine.logprob_regions): full "
                                          "for the fill families (as before), mask for the latent-blend ones (full is "
                                          "refused: outside the hole the step's sample is blended away)")
    adv_clip: float = setting(10.0, "advantages are clipped to +-adv_clip (paper: 10)")
    kl_coef: float = setting(0.0, "weight of the closed-form KL of step means vs the frozen starting model (paper: 0, none)")
    l1_coef: float = setting(0.0, "weight of the L1 distance of step means vs the rollout policy (release logs it only: 0)")

    def validate(self, shared, sampler: str | None) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        for name in ("timesteps_per_traj", "resync_every"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        flow = sampler == "flow"
        if not flow:  # DDIM families (or not known yet: checked again with the family before loading)
            need(shared.eta > 0, f"eta={shared.eta} makes DDIM deterministic, so steps have no log-probability; use "
                                 "eta > 0 (paper: 1.0)")
        need(shared.sde_noise > 0, f"sde_noise={shared.sde_noise} makes the flow SDE deterministic, so steps have no "
                                   "log-probability; use sde_noise > 0 (Flow-GRPO: 0.7)")
        name, trained = ("sde_window", shared.sde_window) if (flow and 0 < shared.sde_window < shared.num_steps) \
            else ("num_steps", shared.num_steps)
        need(self.timesteps_per_traj <= trained,
             f"timesteps_per_traj={self.timesteps_per_traj} exceeds {name}={trained} (the stored steps); lower "
             f"timesteps_per_traj or raise {name}")
        need(self.logprob_reduction in ("mean", "sum"), f"logprob_reduction must be 'mean' or 'sum', got '{self.logprob_reduction}'")
        need(self.logprob_region in ("auto", "mask", "full"),
             f"logprob_region must be 'auto', 'mask' or 'full', got '{self.logprob_region}'")
        need(self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}")
        need(self.adv_clip > 0, f"adv_clip must be > 0, got {self.adv_clip}")
        need(self.kl_coef >= 0 and self.l1_coef >= 0, f"kl_coef={self.kl_coef} and l1_coef={self.l1_coef} must be >= 0")


# The algorithm's values of the named presets (the shared ones are in align/config.py PRESETS; a family's
# are its engine's training_presets).
_PRESETS = {
    "paper": dict(timesteps_per_traj=5, resync_every=15, clip_range=1e-4),
    "lora-24gb": dict(timesteps_per_traj=5, resync_every=15),
    "cpu-smoke": dict(timesteps_per_traj=4, resync_every=1, clip_range=0.1),
}


class PPO(Algorithm):
    """The clipped PPO loss of PrefPaint/DDPO on rollouts with log-probabilities (see the module docstring)."""

    name = "ppo"
    summary = "PrefPaint/DDPO: clipped policy loss, advantages standardised over the batch"
    config_cls = PPOConfig
    data_kind = "rollouts"
    presets = _PRESETS

    def needs_reference(self) -> bool:
        return self.config.kl_coef > 0

    def batch_summary(self, shared, num_processes: int) -> dict[str, int]:
        per_proc = shared.prompts_per_iter * shared.samples_per_prompt
        total = per_proc * num_processes
        return {
            "processes": num_processes,
            "samples_per_process": per_proc,
            "samples_per_iteration": total,
            "trained_timesteps_per_iteration": total * self.config.timesteps_per_traj * shared.inner_epochs,
            "unet_passes_per_sample_rollout": shared.num_steps,
            "optimizer_steps_per_iteration": shared.inner_epochs * per_proc // (shared.train_batch_size * shared.grad_accum_steps),
            "effective_batch_per_optimizer_step": shared.train_batch_size * shared.grad_accum_steps * num_processes,
        }

    def advantages(self, rewards: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``(advantages, valid, extra metrics)`` of the rewards gathered from every process: standardised
        over the whole batch (the release)."""
        adv, valid = compute_advantages(rewards, groups, "batch", self.config.adv_clip)
        return adv, valid, {}

    # ------------------------------------------------------------------------------------------
    def step(self, loop, it: int) -> dict[str, float]:
        shared, acc = loop.config, loop.accelerator
        if it % self.config.resync_every == 0:
            loop.old.sync()
        loop.policy.model.eval()
        items = loop.items_for_iteration(it)
        n_local = shared.prompts_per_iter * shared.samples_per_prompt
        window = loop.sde_window(it)
        with loop.old.active():
            ro, images, masks = loop.sample([i for i, _ in items], loop.sample_seeds(it), shared.samples_per_prompt,
                                            window=window, reduction=self.config.logprob_reduction,
                                            region=self.config.logprob_region)
        rb = loop.score(images, masks)

        # Advantages over the batch gathered from every process (the same on all of them), then our slice.
        dev = acc.device
        rewards = loop.gather(rb.scores.to(dev).float().contiguous())
        all_groups = loop.gather(torch.tensor([items[int(g)][1] for g in ro.groups], device=dev))
        adv_all, valid_all, extra = self.advantages(rewards, all_groups)
        sl = slice(acc.process_index * n_local, (acc.process_index + 1) * n_local)
        trust = loop.trust(rb)
        all_trust = loop.gather(trust.contiguous())
        train = self.update(loop, ro, adv_all[sl], valid_all[sl], trust, it)
        if acc.is_main_process and it == 0:
            log.info("%s: %d groups of %d per iteration; trained steps %s", self.name.upper(),
                     len(all_groups) // shared.samples_per_prompt, shared.samples_per_prompt, window)
        return {**loop.reward_metrics(rewards, all_trust), **extra, **train}

    def update(self, loop, ro, adv, valid, trust, it: int) -> dict[str, float]:
        """Train on the rollout ``ro`` of iteration ``it``; returns the averaged loss diagnostics."""
        shared, cfg = loop.config, self.config
        n, T = ro.log_probs.shape
        K = min(cfg.timesteps_per_traj, T)
        ctx_step = loop.engine.step_context(shared.num_steps, loop.accelerator.device)
        g = loop.generator(_ORDER_STREAM, it)
        loop.policy.model.train()
        sums = {"loss": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0, "l1": 0.0, "kl_ref": 0.0}
        micro = 0
        per_step = shared.train_batch_size * shared.grad_accum_steps
        for _ in range(shared.inner_epochs):
            order = torch.randperm(n, generator=g)
            steps_idx = torch.stack([torch.randperm(T, generator=g)[:K] for _ in range(n)])  # (n, K)
            for s0 in range(0, n, per_step):
                for m0 in range(s0, s0 + per_step, shared.train_batch_size):
                    b = order[m0:m0 + shared.train_batch_size]
                    last_micro = m0 + shared.train_batch_size >= s0 + per_step
                    for k in range(K):
                        with loop.grad_sync(last_micro and k == K - 1):
                            loss, diag = self.micro_loss(loop, ro, b, steps_idx[b, k], adv, valid, trust, ctx_step)
                            loop.backward(loss / (K * shared.grad_accum_steps))
                        for key, v in diag.items():
                            sums[key] += v
                        micro += 1
                loop.optimizer_step()
        loop.policy.model.eval()
        return {k: v / max(micro, 1) for k, v in sums.items()}

    def micro_loss(self, loop, ro, b, tidx, adv, valid, trust, step_ctx):
        """The loss of trajectories ``b`` at stored steps ``tidx`` (one per trajectory) and its diagnostics."""
        shared, cfg, policy, engine = loop.config, self.config, loop.policy, loop.engine
        dev = loop.accelerator.device
        kw = dict(context=step_ctx, guidance_scale=shared.guidance_scale, eta=shared.eta, sde_noise=shared.sde_noise,
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
            with torch.no_grad(), loop.reference() as ref_model:
                ref = engine.policy_step(ref_model, ro, b, tidx, **kw)
            kl = gaussian_kl(out.mean, ref.mean, out.std, cfg.logprob_reduction)
            loss = loss + cfg.kl_coef * kl.mean()
            kl_val = float(kl.detach().mean())
        diag = {"loss": float(pl.loss.detach()), "approx_kl": float(pl.approx_kl),
                "clip_fraction": float(pl.clip_fraction), "l1": float(l1.detach().mean()), "kl_ref": kl_val}
        return loss, diag


ALGORITHM = PPO
