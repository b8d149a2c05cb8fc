"""DiffusionNFT (Zheng et al. 2025, "DiffusionNFT: Online Diffusion Reinforcement with Forward Process"):
its maths, as pure functions.

What it follows: the paper's Algorithm 1 and NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py`` (read at
9a84a8a). With the old (sampling) prediction ``v_old`` (no grad) and the trained one ``v_theta``:

    v+ = (1 - beta) v_old + beta v_theta          (the implicit positive policy)
    v- = (1 + beta) v_old - beta v_theta          (the implicit negative policy)
    A  = (R - mean of its prompt group) / (std + 1e-4), clipped to +-c       (c = 5; std of the whole batch)
    r  = A / (2c) + 1/2  in [0, 1]                                          (the optimality probability)
    L  = c / beta * mean_i [ r_i ||x0(v+) - x0||^2 / w+_i + (1 - r_i) ||x0(v-) - x0||^2 / w-_i ]

on clean samples ``x0`` noised forward, ``x_t = (1 - t) x0 + t eps``; ``x0(v) = x_t - t v`` is the clean
sample that a prediction implies and ``w = mean |x0(v) - x0|`` (no grad, at least 1e-5) is NVlabs' adaptive
weight. The ``c / beta`` factor is the code's (it keeps the gradient's scale as beta changes).

What differs:

* **Any parameterisation.** Every family's prediction maps to a clean-sample estimate by an affine map
  ``x0 = a x_t + b * prediction`` (flow matching: ``a = 1, b = -t``; epsilon-prediction:
  ``a = 1 / sqrt(abar), b = -sqrt(1 - abar) / sqrt(abar)``). The mixing weights of ``v+`` and ``v-`` sum
  to one, so mixing predictions and then mapping equals mapping and then mixing: the functions below take
  the clean-sample estimates, and the engine maps its own prediction. For epsilon-prediction this is the
  whole adaptation: the loss is NVlabs' x0-space loss, unchanged, with the family's forward process.
* **Masked.** The means run over the hole plus a ring (:mod:`..masked_loss`), the full image optionally.
* **Shared noise** (``shared_noise``, default on; NVlabs draws per sample): the samples of one prompt are
  trained at the same time and noise. On the tiny fixtures, fitting any own sample moved the held-out reward
  one way and un-fitting it the other, more than the reward's ranking did; with a common noisy input that
  shared part cancels between a group's positive and negative weights. ``x0`` is the sampler's own final
  latent, not a re-encoding of the decoded image.
* **The adaptive weight** is NVlabs' per sample by default; ``adaptive_scope="group"`` shares it within a
  prompt's samples. Per sample, the weights break the zero sum of a group's advantages: where the group's
  predictions coincide (high noise, shared noise) the gradient keeps a term that depends on where the
  prediction sits, not on the rewards. Shared, that term cancels; on the tiny DDIM fixture it changed nothing
  measurable (benchmarks/RESULTS.md, "Algorithms at the same budget").
* **The old policy** is NVlabs' EMA (decay ``min(old_decay_rate x iteration, old_decay_max)``) kept in
  ``loop.old``; samples come from it, and ``v_old`` is its prediction.
* **The norms** of the implicit predictions are returned for logging (NVlabs/DiffusionNFT#46: ``v+`` and
  ``v-`` collapse onto each other when ``v_theta`` stays at ``v_old``; watch ``separation``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from ...settings import setting
from ..masked_loss import masked_mean
from .base import AlgoConfig, Algorithm

__all__ = ["ALGORITHM", "NFT", "NFTConfig", "NFTLoss", "implicit_predictions", "nft_loss", "optimality_probability"]


def optimality_probability(rewards: torch.Tensor, groups, *, clip: float = 5.0, std: str = "global",
                           eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimality probability ``r`` in [0, 1] of each sample, from its reward within its group.

    Args:
        rewards: (N,) rewards gathered from every process; NaN or infinite ones are left out of every statistic.
        groups: (N,) group ids (the samples of one (image, mask)).
        clip: ``c``, the advantage clip; ``r = clamp(A, -c, c) / (2c) + 1/2``.
        std: "global": divide by the std of all finite rewards of the batch (NVlabs' default);
            "group": by each group's own std.
        eps: added to the std (NVlabs: 1e-4).

    Returns:
        ``(r, valid)``: r (N,) float32 (0.5 where the reward is not finite) and the bool mask of finite rewards.

    Raises:
        ValueError: an unknown ``std`` or a clip <= 0.
    """
    if std not in ("global", "group"):
        raise ValueError(f"std must be 'global' or 'group', got {std!r}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    r = rewards.detach().float()
    valid = torch.isfinite(r)
    g = torch.as_tensor(groups, device=r.device)
    adv = torch.zeros_like(r)
    global_std = r[valid].std(unbiased=False) if valid.any() else r.new_tensor(0.0)
    for gid in torch.unique(g):
        sel = (g == gid) & valid
        if sel.any():
            v = r[sel]
            s = global_std if std == "global" else v.std(unbiased=False)
            adv[sel] = (v - v.mean()) / (s + eps)
    return adv.clamp(-clip, clip) / (2 * clip) + 0.5, valid


def implicit_predictions(pred_theta: torch.Tensor, pred_old: torch.Tensor, beta: float):
    """``(v+, v-)``: ``(1 - beta) v_old + beta v_theta`` and ``(1 + beta) v_old - beta v_theta``."""
    old = pred_old.detach()
    return (1 - beta) * old + beta * pred_theta, (1 + beta) * old - beta * pred_theta


@dataclass
class NFTLoss:
    """The NFT loss and its diagnostics (scalars; ``loss`` with grad).

    Attributes:
        loss: ``c / beta * mean(r L+ / w+ + (1 - r) L- / w-)`` over valid samples.
        positive / negative: the mean unweighted squared errors of ``x0(v+)`` and ``x0(v-)``.
        separation: RMS of ``x0(v+) - x0(v-)`` (= 2 beta RMS of ``x0(v_theta) - x0(v_old)``); near 0 the two
            branches coincide and ``r`` stops mattering (the collapse of NVlabs/DiffusionNFT#46).
        old_deviate: RMS of ``x0(v_theta) - x0(v_old)``.
        positive_norm / negative_norm: RMS of ``x0(v+)`` and ``x0(v-)`` (they blow up when training diverges).
    """

    loss: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    separation: torch.Tensor
    old_deviate: torch.Tensor
    positive_norm: torch.Tensor
    negative_norm: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("loss", "positive", "negative", "separation",
                                                               "old_deviate", "positive_norm", "negative_norm")}


def nft_loss(x0_theta: torch.Tensor, x0_old: torch.Tensor, x0: torch.Tensor, r: torch.Tensor, *, beta: float = 1.0,
             clip: float = 5.0, mask: torch.Tensor | None = None, valid: torch.Tensor | None = None,
             weights: torch.Tensor | None = None, adaptive: bool = True, min_weight: float = 1e-5,
             weight_groups: torch.Tensor | None = None) -> NFTLoss:
    """The DiffusionNFT loss on clean-sample estimates (see the module docstring).

    Args:
        x0_theta: (B, ...) the clean sample implied by the trained prediction (with grad).
        x0_old: (B, ...) the same under the old policy (no grad needed).
        x0: (B, ...) the clean samples that were noised.
        r: (B,) optimality probabilities (:func:`optimality_probability`).
        beta: the mixing strength, > 0 (NVlabs: 1.0, or 0.1 for some rewards).
        clip: ``c`` of :func:`optimality_probability`; scales the loss as NVlabs' code does.
        mask: loss weight broadcastable to ``x0`` (:func:`..masked_loss.latent_loss_mask`); ``None``: full image.
        valid: (B,) bool, samples that train (default all). weights: (B,) per-sample weights (trust; default 1).
        adaptive: divide each branch by its mean absolute error (NVlabs); ``False``: plain squared errors.
        min_weight: the adaptive weight's floor (NVlabs: 1e-5).
        weight_groups: (B,) group ids: each branch's adaptive weight is the mean over the samples of the same
            group in this batch (``None``: per sample, NVlabs). Shared, the weights keep the advantages' zero sum
            within a group, so the part of the gradient common to a group's samples cancels.

    Raises:
        ValueError: beta <= 0, or shapes that differ.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if x0_theta.shape != x0_old.shape or x0_theta.shape != x0.shape:
        raise ValueError(f"x0_theta {tuple(x0_theta.shape)}, x0_old {tuple(x0_old.shape)} and x0 {tuple(x0.shape)} "
                         "must have the same shape")
    x0 = x0.detach().to(x0_theta.dtype)
    pos, neg = implicit_predictions(x0_theta, x0_old.to(x0_theta.dtype), beta)

    def branch(pred):
        err = pred - x0
        sq = masked_mean(err**2, mask)
        if not adaptive:
            return sq, sq
        with torch.no_grad():
            w = masked_mean(err.detach().abs().double(), mask)
            if weight_groups is not None:
                gid = torch.as_tensor(weight_groups, device=w.device)
                same = (gid[:, None] == gid[None, :]).to(w.dtype)
                w = same @ w / same.sum(1)
            w = w.clamp(min=min_weight).to(sq.dtype)
        return sq / w, sq

    lp, sq_p = branch(pos)
    ln, sq_n = branch(neg)
    rr = r.to(lp.device, lp.dtype)
    per = clip / beta * (rr * lp + (1 - rr) * ln)
    v = torch.ones_like(per, dtype=torch.bool) if valid is None else valid.to(per.device)
    w = torch.ones_like(per) if weights is None else weights.to(per.device, per.dtype)
    vf = v.to(per.dtype)
    n = vf.sum().clamp(min=1.0)
    loss = (per * w * vf).sum() / n
    with torch.no_grad():
        def rms(t):
            return (masked_mean(t.detach() ** 2, mask) * vf).sum().div(n).sqrt()

        stats = dict(positive=(sq_p.detach() * vf).sum() / n, negative=(sq_n.detach() * vf).sum() / n,
                     separation=rms(pos - neg), old_deviate=rms(x0_theta - x0_old.to(x0_theta.dtype)),
                     positive_norm=rms(pos), negative_norm=rms(neg))
    return NFTLoss(loss=loss, **stats)


# ================================================================================================
# The algorithm over the shared loop
# ================================================================================================
_ORDER_STREAM = 101  # sample order, training times and forward noise


@dataclass
class NFTConfig(AlgoConfig):
    """DiffusionNFT's own settings (the shared ones are :class:`~prefpaint_sdk.align.config.AlignConfig`'s)."""

    nft_beta: float = setting(1.0, "beta: how far the implicit policies v+/v- sit from the old one (NVlabs: 1.0; 0.1 for OCR)")
    adv_clip: float = setting(5.0, "c: advantages are clipped to +-c before r = A / 2c + 1/2 (NVlabs: 5)")
    nft_std: str = setting("global", "divide advantages by the std of the whole gathered batch ('global', NVlabs) or of each group ('group')")
    timesteps_per_traj: int = setting(4, "forward-noised times trained per sample, each drawn from the sampler's schedule")
    adaptive_weight: bool = setting(True, "divide each branch's error by its mean absolute error (NVlabs' adaptive weight)")
    adaptive_scope: str = setting("sample", "the adaptive weight per 'sample' (NVlabs) or shared by a prompt's samples "
                                            "in a micro-batch ('group': keeps the advantages' zero sum, so what the "
                                            "samples share cancels; no measured gain on the tiny DDIM fixture)")
    loss_ring: int = setting(16, "the loss counts in the hole plus this many pixels around it; -1 = the whole image")
    old_decay_rate: float = setting(0.001, "the old policy is an EMA of the trained one, decay = min(rate x iteration, "
                                           "old_decay_max) (NVlabs decay_type 1: 0.001)")
    old_decay_max: float = setting(0.5, "the EMA decay's ceiling (NVlabs decay_type 1: 0.5)")
    shared_noise: bool = setting(True, "train the samples of a prompt at the same times and noise (a variance "
                                       "reduction; NVlabs draws them per sample: False)")
    kl_coef: float = setting(0.0, "weight of the squared distance of the prediction to the frozen starting model's "
                                  "(NVlabs: 1e-4; 0 = none)")

    def validate(self, shared, sampler: str | None) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        need(self.nft_beta > 0, f"nft_beta must be > 0, got {self.nft_beta}")
        need(self.adv_clip > 0, f"adv_clip must be > 0, got {self.adv_clip}")
        need(self.nft_std in ("global", "group"), f"nft_std must be 'global' or 'group', got '{self.nft_std}'")
        need(self.adaptive_scope in ("group", "sample"),
             f"adaptive_scope must be 'group' or 'sample', got '{self.adaptive_scope}'")
        need(int(self.timesteps_per_traj) >= 1, f"timesteps_per_traj must be >= 1, got {self.timesteps_per_traj}")
        need(self.loss_ring >= -1, f"loss_ring must be >= 0 pixels, or -1 for the whole image; got {self.loss_ring}")
        need(self.old_decay_rate >= 0 and 0 <= self.old_decay_max < 1,
             f"old_decay_rate={self.old_decay_rate} must be >= 0 and old_decay_max={self.old_decay_max} in [0, 1)")
        need(self.kl_coef >= 0, f"kl_coef must be >= 0, got {self.kl_coef}")
        if sampler != "flow":  # DDIM samples need eta > 0 only for log-probs, which NFT does not use
            need(shared.eta >= 0, f"eta must be >= 0, got {shared.eta}")


class NFT(Algorithm):
    """DiffusionNFT over the shared loop.

    One iteration: sample ``prompts_per_iter x samples_per_prompt`` clean samples per process with the old
    policy and the family's own sampler (DDIM with ``eta`` for a DDIM family; the ODE, i.e. the pipeline's
    Euler sampler, for a flow family: no SDE step and no log-probability), score them, map the gathered rewards to
    optimality probabilities within each group, then train ``timesteps_per_traj`` forward-noised times per
    sample with :func:`nft_loss`, weighted by the trust weight. The old policy then moves toward the trained
    one as NVlabs' EMA (``loop.old``, checkpointed). Guidance: training is unguided (no CFG pass); samples use
    ``guidance_scale`` (1 = none, the default, as NVlabs samples).
    """

    name = "nft"
    summary = "DiffusionNFT: forward-process loss on clean samples, implicit positive/negative policies"
    config_cls = NFTConfig
    data_kind = "samples"
    presets = {"cpu-smoke": dict(timesteps_per_traj=4)}

    def needs_reference(self) -> bool:
        return self.config.kl_coef > 0

    def batch_summary(self, shared, num_processes: int) -> dict[str, int]:
        per_proc = shared.prompts_per_iter * shared.samples_per_prompt
        return {
            "processes": num_processes,
            "samples_per_process": per_proc,
            "samples_per_iteration": per_proc * num_processes,
            "trained_times_per_iteration": per_proc * num_processes * self.config.timesteps_per_traj * shared.inner_epochs,
            "denoiser_passes_per_sample": shared.num_steps,
            "optimizer_steps_per_iteration": shared.inner_epochs * per_proc // (shared.train_batch_size * shared.grad_accum_steps),
            "effective_batch_per_optimizer_step": shared.train_batch_size * shared.grad_accum_steps * num_processes,
        }

    def step(self, loop, it: int) -> dict[str, float]:
        shared, cfg, acc = loop.config, self.config, loop.accelerator
        dev = acc.device
        loop.policy.model.eval()
        items = loop.items_for_iteration(it)
        prompts = [i for i, _ in items]
        with loop.old.active():  # no SDE window: the family's deterministic (or DDIM eta) sampler
            ro, images, masks = loop.sample(prompts, loop.sample_seeds(it), shared.samples_per_prompt, window=[])
        rb = loop.score(images, masks)
        rewards = loop.gather(rb.scores.to(dev).float().contiguous())
        all_groups = loop.gather(torch.tensor([items[int(g)][1] for g in ro.groups], device=dev))
        r_all, valid_all = optimality_probability(rewards, all_groups, clip=cfg.adv_clip, std=cfg.nft_std)
        n = len(ro.groups)
        sl = slice(acc.process_index * n, (acc.process_index + 1) * n)
        r, valid = r_all[sl], valid_all[sl]
        trust = loop.trust(rb)
        all_trust = loop.gather(trust.contiguous())

        engine = loop.engine
        cond = engine.encode_conditions([p.image for p in prompts], [p.mask for p in prompts], loop.resolution,
                                        loop.resolution, device=dev)
        text, _ = engine.encode_prompts(shared.prompt, shared.negative_prompt, n, 1.0, dev,
                                        size=(loop.resolution, loop.resolution))
        batch = engine.clean_batch(cond, ro.groups, images, text, num_steps=shared.num_steps,
                                   ring=None if cfg.loss_ring < 0 else cfg.loss_ring, guidance_scale=shared.guidance_scale,
                                   latents=getattr(ro, "final_latents", None))
        metrics = self._update(loop, batch, ro.groups.cpu(), r, valid, trust, it)
        self._move_old(loop, it)
        return {**loop.reward_metrics(rewards, all_trust), "r_mean": float(r_all[valid_all].mean()) if valid_all.any()
                else float("nan"), **metrics}

    def _update(self, loop, batch, groups, r, valid, trust, it: int) -> dict[str, float]:
        shared, cfg = loop.config, self.config
        policy, engine = loop.policy, loop.engine
        n, K = len(batch), cfg.timesteps_per_traj
        g = loop.generator(_ORDER_STREAM, it)
        per_step = shared.train_batch_size * shared.grad_accum_steps
        sums: dict[str, float] = {}
        micro = 0
        policy.model.train()
        for _ in range(shared.inner_epochs):
            # one time and one noise per (group, k) when shared_noise: the samples of a prompt are then compared
            # at the same noisy input, so what every sample's loss has in common cancels between the positive
            # and negative weights of the group instead of adding noise to the gradient
            n_draw = int(groups.max()) + 1 if cfg.shared_noise else n
            draw = groups if cfg.shared_noise else torch.arange(n)
            times = torch.randint(0, len(batch.timesteps), (K, n_draw), generator=g)
            noises = torch.randn((K, n_draw, *batch.x0.shape[1:]), generator=g)
            order = torch.randperm(n, generator=g)
            for s0 in range(0, n, per_step):
                for m0 in range(s0, s0 + per_step, shared.train_batch_size):
                    b = order[m0:m0 + shared.train_batch_size]
                    last = m0 + shared.train_batch_size >= s0 + per_step
                    for k in range(K):
                        tidx, noise = times[k, draw[b]], noises[k, draw[b]]
                        with loop.grad_sync(last and k == K - 1):
                            loss, diag = self._micro_loss(loop, engine, batch, b, tidx, noise, r, valid, trust, groups[b])
                            loop.backward(loss / (K * shared.grad_accum_steps))
                        for key, v in diag.items():
                            sums[key] = sums.get(key, 0.0) + v
                        micro += 1
                loop.optimizer_step()
        policy.model.eval()
        return {f"nft_{k}" if k != "loss" else k: v / max(micro, 1) for k, v in sums.items()}

    def _micro_loss(self, loop, engine, batch, b, tidx, noise, r, valid, trust, groups):
        cfg, policy = self.config, loop.policy
        with torch.no_grad(), loop.old.active():
            old = engine.forward_predict(policy.raw, batch, b, tidx, noise)
        cur = engine.forward_predict(policy.model, batch, b, tidx, noise)
        bd = b.to(batch.x0.device)
        mask = batch.loss_mask[bd] if batch.loss_mask is not None else None
        dev = cur.x0_hat.device
        out = nft_loss(cur.x0_hat, old.x0_hat, batch.x0[bd], r[b.to(r.device)].to(dev), beta=cfg.nft_beta,
                       clip=cfg.adv_clip, mask=mask, valid=valid[b.to(valid.device)].to(dev),
                       weights=trust[b.to(trust.device)].to(dev), adaptive=cfg.adaptive_weight,
                       weight_groups=groups if cfg.adaptive_scope == "group" else None)
        loss, diag = out.loss, out.metrics()
        if cfg.kl_coef > 0:
            with torch.no_grad(), loop.reference() as ref:
                ref_pred = engine.forward_predict(ref, batch, b, tidx, noise).pred
            kl = masked_mean((cur.pred - ref_pred) ** 2, mask).mean()
            loss = loss + cfg.kl_coef * kl
            diag["kl_ref"] = float(kl.detach())
        return loss, diag

    def _move_old(self, loop, it: int) -> None:
        """NVlabs' old-policy EMA: old <- decay * old + (1 - decay) * trained, decay = min(rate * it, max)."""
        decay = min(self.config.old_decay_rate * it, self.config.old_decay_max)
        with torch.no_grad():
            for name, p in loop.old.params.items():
                loop.old.tensors[name].mul_(decay).add_(p.detach(), alpha=1 - decay)


ALGORITHM = NFT
