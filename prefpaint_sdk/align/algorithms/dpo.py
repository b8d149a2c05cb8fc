"""Diffusion-DPO (Wallace et al. 2024, "Diffusion Model Alignment Using Direct Preference Optimization"):
its maths, as pure functions.

What it follows: the paper's Eq. 14,

    L = -log sigmoid( -beta T w(lambda_t) [ (||eps_w - eps_theta(x_w,t)||^2 - ||eps_w - eps_ref(x_w,t)||^2)
                                           - (||eps_l - eps_theta(x_l,t)||^2 - ||eps_l - eps_ref(x_l,t)||^2) ] )

as SalesforceAIResearch/DiffusionDPO ``train.py`` (read at its HEAD) computes it: the squared errors are
means over latent elements, ``T w(lambda_t)`` is folded into one constant, and the inside term is
``-0.5 * beta * (model_diff - ref_diff)`` with ``model_diff = err_w - err_l`` (beta = 2000-5000 in the paper).
The winner and the loser of a pair share the timestep and the noise. The implicit-reward accuracy is the
share of pairs whose inside term is > 0, as in that code (at the start, policy = reference, it is 0).

What differs:

* **Any parameterisation.** The errors are the family's own training target against its prediction:
  noise for epsilon-prediction (as the paper), velocity ``eps - x0`` for flow matching (the "velocity
  form"). The functions below take those per-sample errors.
* **Masked.** The means run over the hole plus a ring (:mod:`..masked_loss`) by default.
* **A per-pair weight** multiplies each pair's loss: online, the mean of the two samples' trust weights
  (0 for a slot whose group had no two different rewards); offline, 1 (human ratings carry no bound).
* **The reference** is ``loop.old``: the starting model, never re-synced offline (as the paper); online it
  is re-synced to the trained weights every ``ref_refresh_every`` iterations (0: never).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigError
from ...settings import setting
from ..masked_loss import masked_mean
from .base import AlgoConfig, Algorithm

__all__ = ["ALGORITHM", "DPO", "DPOConfig", "DPOLoss", "dpo_loss", "squared_error"]


def squared_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the mean of ``(pred - target)^2`` over each sample's (masked) elements."""
    return masked_mean((pred.float() - target.float()) ** 2, mask)


@dataclass
class DPOLoss:
    """The Diffusion-DPO loss and its diagnostics (scalars; ``loss`` with grad).

    Attributes:
        loss: weighted mean of ``-log sigmoid(inside)`` over pairs.
        accuracy: share of pairs with ``inside > 0`` (the implicit reward prefers the winner).
        margin: mean inside term (the implicit reward margin, winner minus loser).
        err_w / err_l: the policy's mean squared errors on winners and losers (both rising together is the
            known failure: the margin grows while the winner gets worse).
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    margin: torch.Tensor
    err_w: torch.Tensor
    err_l: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("loss", "accuracy", "margin", "err_w", "err_l")}


def dpo_loss(err_w: torch.Tensor, err_l: torch.Tensor, ref_err_w: torch.Tensor, ref_err_l: torch.Tensor, *,
             beta: float = 5000.0, weights: torch.Tensor | None = None) -> DPOLoss:
    """Diffusion-DPO on per-pair squared errors (see the module docstring).

    Args:
        err_w / err_l: (P,) the trained model's squared errors (:func:`squared_error`) on the winners and losers.
        ref_err_w / ref_err_l: (P,) the reference model's, on the same noisy inputs.
        beta: the KL strength, > 0.
        weights: (P,) per-pair weights (default 1); the loss is their weighted sum over the number of pairs.

    Raises:
        ValueError: beta <= 0, or shapes that differ.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not (err_w.shape == err_l.shape == ref_err_w.shape == ref_err_l.shape) or err_w.ndim != 1:
        raise ValueError(f"the four errors must be (P,) of one shape, got {tuple(err_w.shape)}, {tuple(err_l.shape)}, "
                         f"{tuple(ref_err_w.shape)}, {tuple(ref_err_l.shape)}")
    ref_diff = (ref_err_w - ref_err_l).detach().to(err_w.dtype)
    inside = -0.5 * beta * ((err_w - err_l) - ref_diff)
    w = torch.ones_like(inside) if weights is None else weights.to(inside.device, inside.dtype)
    loss = (-torch.nn.functional.logsigmoid(inside) * w).mean()
    with torch.no_grad():
        return DPOLoss(loss=loss, accuracy=(inside > 0).float().mean(), margin=inside.mean(), err_w=err_w.mean(),
                       err_l=err_l.mean())


# ================================================================================================
# The algorithm over the shared loop
# ================================================================================================
_DRAW_STREAM = 111  # which pairs, the order, the times and the noise
_EVAL_STREAM = 112  # the held-out pairs' times and noise (the same at every evaluation)
_EVAL_PAIRS = 32


@dataclass
class DPOConfig(AlgoConfig):
    """Diffusion-DPO's own settings (the shared ones are :class:`~prefpaint_sdk.align.config.AlignConfig`'s)."""

    dpo_beta: float = setting(5000.0, "beta: the KL strength (SalesforceAIResearch/DiffusionDPO: 5000, 2000-5000)")
    online: bool = setting(False, "False: pairs from a rated dataset or a pairs manifest (--data); True: the policy's "
                                  "own samples, ranked by the reward")
    pair_mode: str = setting("all", "'all': every two inpaintings of a prompt ranked differently; 'best-worst': one "
                                    "pair per prompt")
    min_margin: float = setting(0.0, "keep only pairs whose scores (or rewards, online) differ by at least this much")
    timesteps_per_pair: int = setting(1, "forward-noised times trained per pair (winner and loser share time and noise)")
    loss_ring: int = setting(16, "the loss counts in the hole plus this many pixels around it; -1 = the whole image")
    ref_refresh_every: int = setting(0, "re-sync the reference to the trained weights every N iterations "
                                        "(online DPO); 0 = never, the starting model (offline, as the paper)")

    def validate(self, shared, sampler: str | None) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        need(self.dpo_beta > 0, f"dpo_beta must be > 0, got {self.dpo_beta}")
        need(self.pair_mode in ("all", "best-worst"), f"pair_mode must be 'all' or 'best-worst', got '{self.pair_mode}'")
        need(self.min_margin >= 0, f"min_margin must be >= 0, got {self.min_margin}")
        need(int(self.timesteps_per_pair) >= 1, f"timesteps_per_pair must be >= 1, got {self.timesteps_per_pair}")
        need(self.loss_ring >= -1, f"loss_ring must be >= 0 pixels, or -1 for the whole image; got {self.loss_ring}")
        need(self.ref_refresh_every >= 0, f"ref_refresh_every must be >= 0, got {self.ref_refresh_every}")
        if self.online:
            need(shared.samples_per_prompt >= 2, f"online DPO ranks the samples of a prompt: samples_per_prompt="
                                                 f"{shared.samples_per_prompt} must be >= 2")


def _config_of(shared) -> DPOConfig:
    return shared.algo_config if shared.algo == "dpo" else DPOConfig()


class DPO(Algorithm):
    """Diffusion-DPO over the shared loop, offline from ratings or online from the policy's samples.

    One iteration: draw ``prompts_per_iter`` prompts per process and ``samples_per_prompt`` pairs of each
    (a pair counts as a sample in the batch arithmetic; offline: from the rated dataset, without replacement
    when the prompt has enough pairs; online: sample ``samples_per_prompt`` inpaintings per prompt with the
    current policy, score them, and pair them by reward within the prompt as ``pair_mode``), then train
    ``timesteps_per_pair`` forward-noised times per pair with :func:`dpo_loss` against the reference.
    """

    name = "dpo"
    summary = "Diffusion-DPO: preference pairs from ratings (offline) or ranked samples (online), no reward model in the loss"
    config_cls = DPOConfig
    data_kind = "pairs"
    presets = {"cpu-smoke": dict(timesteps_per_pair=2)}

    @classmethod
    def open_data(cls, data, shared, seed: int, resolution: int | None):
        cfg = _config_of(shared)
        if cfg.online:
            return super().open_data(data, shared, seed, resolution)
        from ..pair_data import PairDataset

        if isinstance(data, PairDataset):
            if data.resolution is None:
                data.resolution = resolution
            return data
        return PairDataset(data, resolution, mode=cfg.pair_mode, min_margin=cfg.min_margin)

    def batch_summary(self, shared, num_processes: int) -> dict[str, int]:
        pairs = shared.prompts_per_iter * shared.samples_per_prompt
        sampled = shared.prompts_per_iter * shared.samples_per_prompt if self.config.online else 0
        return {
            "processes": num_processes,
            "pairs_per_process": pairs,
            "pairs_per_iteration": pairs * num_processes,
            "samples_per_iteration": sampled * num_processes,
            "trained_times_per_iteration": pairs * num_processes * self.config.timesteps_per_pair * shared.inner_epochs,
            "optimizer_steps_per_iteration": shared.inner_epochs * pairs // (shared.train_batch_size * shared.grad_accum_steps),
            "effective_batch_per_optimizer_step": shared.train_batch_size * shared.grad_accum_steps * num_processes,
        }

    # ------------------------------------------------------------------------------------------
    def step(self, loop, it: int) -> dict[str, float]:
        cfg = self.config
        if cfg.ref_refresh_every and it > 0 and it % cfg.ref_refresh_every == 0:
            loop.old.sync()
        g = loop.generator(_DRAW_STREAM, it)
        items = loop.items_for_iteration(it)
        prompts = [i for i, _ in items]
        latents = None
        if cfg.online:
            win, lose, groups, weights, extra, latents = self._online_pairs(loop, prompts, it, g)
        else:
            win, lose, groups = self._offline_pairs(loop, prompts, g)
            weights, extra = torch.ones(len(win)), {}
        batch = self._clean(loop, prompts, win, lose, groups, latents)
        return {**extra, **self._update(loop, batch, weights, g)}

    def _offline_pairs(self, loop, prompts, g):
        data, k = loop.data, loop.config.samples_per_prompt
        win, lose, groups = [], [], []
        for gi, item in enumerate(prompts):
            pairs = data.pairs_of(data.index_of(item.name))
            pick = torch.randperm(len(pairs), generator=g)[:k].tolist() if len(pairs) >= k else \
                torch.randint(0, len(pairs), (k,), generator=g).tolist()
            for j in pick:
                b, w = pairs[j]
                win.append(torch.from_numpy(data.image(b)))
                lose.append(torch.from_numpy(data.image(w)))
                groups.append(gi)
        return torch.stack(win), torch.stack(lose), groups

    def _online_pairs(self, loop, prompts, it, g):
        shared, cfg, acc = loop.config, self.config, loop.accelerator
        loop.policy.model.eval()
        ro, images, masks = loop.sample(prompts, loop.sample_seeds(it), shared.samples_per_prompt, window=[])
        rb = loop.score(images, masks)
        scores, trust = rb.scores.float().cpu(), loop.trust(rb).float().cpu()
        sample_groups = ro.groups.cpu()
        win, lose, groups, weights, lat_w, lat_l = [], [], [], [], [], []
        final = getattr(ro, "final_latents", None)
        for gi in range(len(prompts)):
            idx = [i for i in (sample_groups == gi).nonzero().flatten().tolist() if torch.isfinite(scores[i])]
            cand = [(a, b) if scores[a] > scores[b] else (b, a) for x, a in enumerate(idx) for b in idx[x + 1:]
                    if scores[a] != scores[b] and abs(float(scores[a] - scores[b])) >= cfg.min_margin]
            if cfg.pair_mode == "best-worst" and cand:
                best, worst = max(idx, key=lambda i: scores[i]), min(idx, key=lambda i: scores[i])
                cand = [(best, worst)]
            k = shared.samples_per_prompt
            pick = (torch.randperm(len(cand), generator=g)[:k].tolist() if len(cand) >= k
                    else torch.randint(0, max(len(cand), 1), (k,), generator=g).tolist())
            for j in pick:
                b, w = cand[j] if cand else (idx[0] if idx else 0, idx[0] if idx else 0)
                win.append(images[b].float().cpu())
                lose.append(images[w].float().cpu())
                if final is not None:  # the samples' own latents (encode(decode(z)) is not z)
                    lat_w.append(final[b])
                    lat_l.append(final[w])
                groups.append(gi)
                weights.append(float((trust[b] + trust[w]) / 2) if cand else 0.0)  # no pair: the slot trains nothing
        dev = acc.device
        rewards = loop.gather(rb.scores.to(dev).float().contiguous())
        extra = {**loop.reward_metrics(rewards, loop.gather(loop.trust(rb).contiguous())),
                 "pairs_empty": float(sum(w == 0 for w in weights))}
        latents = torch.cat([torch.stack(lat_w), torch.stack(lat_l)]) if lat_w else None
        return torch.stack(win), torch.stack(lose), groups, torch.tensor(weights), extra, latents

    def _clean(self, loop, prompts, win, lose, groups, latents=None):
        shared, engine, dev = loop.config, loop.engine, loop.accelerator.device
        ring = None if self.config.loss_ring < 0 else self.config.loss_ring
        cond = engine.encode_conditions([p.image for p in prompts], [p.mask for p in prompts], loop.resolution,
                                        loop.resolution, device=dev)
        n = 2 * len(groups)
        text, _ = engine.encode_prompts(shared.prompt, shared.negative_prompt, n, 1.0, dev,
                                        size=(loop.resolution, loop.resolution))
        return engine.clean_batch(cond, groups + groups, torch.cat([win, lose]), text, num_steps=shared.num_steps,
                                  ring=ring, guidance_scale=shared.guidance_scale, latents=latents)

    def _pair_loss(self, loop, model, batch, b, tidx, noise, weights):
        """The DPO loss of pairs ``b`` (winners ``b``, losers ``b + P``) at times ``tidx`` with ``noise``."""
        engine, policy, P = loop.engine, loop.policy, len(batch) // 2
        both = torch.cat([b, b + P])
        t2, n2 = torch.cat([tidx, tidx]), torch.cat([noise, noise])
        mask = batch.loss_mask[both.to(batch.x0.device)] if batch.loss_mask is not None else None
        with torch.no_grad(), loop.old.active():
            ref = engine.forward_predict(policy.raw, batch, both, t2, n2)
        ref_err = squared_error(ref.pred, ref.target, mask)
        cur = engine.forward_predict(model, batch, both, t2, n2)
        err = squared_error(cur.pred, cur.target, mask)
        m = len(b)
        return dpo_loss(err[:m], err[m:], ref_err[:m], ref_err[m:], beta=self.config.dpo_beta,
                        weights=weights[b].to(err.device))

    def _update(self, loop, batch, weights, g) -> dict[str, float]:
        shared, cfg, policy = loop.config, self.config, loop.policy
        P, K = len(batch) // 2, cfg.timesteps_per_pair
        per_step = shared.train_batch_size * shared.grad_accum_steps
        sums: dict[str, float] = {}
        micro = 0
        policy.model.train()
        for _ in range(shared.inner_epochs):
            order = torch.randperm(P, generator=g)
            for s0 in range(0, P, per_step):
                for m0 in range(s0, s0 + per_step, shared.train_batch_size):
                    b = order[m0:m0 + shared.train_batch_size]
                    last = m0 + shared.train_batch_size >= s0 + per_step
                    for k in range(K):
                        tidx = torch.randint(0, len(batch.timesteps), (len(b),), generator=g)
                        noise = torch.randn(batch.x0[b.to(batch.x0.device)].shape, generator=g)
                        with loop.grad_sync(last and k == K - 1):
                            out = self._pair_loss(loop, policy.model, batch, b, tidx, noise, weights)
                            loop.backward(out.loss / (K * shared.grad_accum_steps))
                        for key, v in out.metrics().items():
                            sums[key] = sums.get(key, 0.0) + v
                        micro += 1
                loop.optimizer_step()
        policy.model.eval()
        return {(k if k == "loss" else f"dpo_{k}"): v / max(micro, 1) for k, v in sums.items()}

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def eval_metrics(self, loop) -> dict[str, float]:
        """Implicit-reward accuracy and margin on held-out pairs (offline), at fixed times and noise."""
        if self.config.online:
            return {}
        data = loop.data
        held = sorted(set(range(len(data))) - set(loop.train_indices))
        chosen = [(i, p) for i in held for p in data.pairs_of(i)][:_EVAL_PAIRS]
        if not chosen:
            return {}
        prompts = [data.get(i) for i in dict.fromkeys(i for i, _ in chosen)]
        where = {p.name: k for k, p in enumerate(prompts)}
        groups = [where[data.groups[i]] for i, _ in chosen]
        win = torch.stack([torch.from_numpy(data.image(b)) for _, (b, _) in chosen])
        lose = torch.stack([torch.from_numpy(data.image(w)) for _, (_, w) in chosen])
        batch = self._clean(loop, prompts, win, lose, groups)
        g = loop.generator(_EVAL_STREAM, 0)
        b = torch.arange(len(chosen))
        tidx = torch.randint(0, len(batch.timesteps), (len(b),), generator=g)
        noise = torch.randn(batch.x0[b.to(batch.x0.device)].shape, generator=g)
        loop.policy.model.eval()
        out = self._pair_loss(loop, loop.policy.raw, batch, b, tidx, noise, torch.ones(len(b)))
        return {"dpo_accuracy": float(out.accuracy), "dpo_margin": float(out.margin), "dpo_pairs": float(len(b))}


ALGORITHM = DPO
