"""Sampling for alignment: this process's data stream, batched rollouts through the engine, and scoring.

Plain functions over explicit arguments (no trainer object): rollouts run in chunks of ``rollout_batch_size``
through :meth:`Engine.rollout <prefpaint_sdk.engines.Engine.rollout>`, the known region is pasted back,
and the pasted-back images are scored by the reward with the masked prompt image.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from .config import AlignConfig
from .data import AlignDataset, AlignItem
from .evaluation import paste_back
from .rewards import RewardBatch
from .seeding import derive_seed

__all__ = ["PromptCache", "items_for_iteration", "sample", "score", "sde_window"]


class PromptCache:
    """The prompt (and negative-prompt) conditioning of a batch of ``n``, encoded once per ``n``."""

    def __init__(self, engine, cfg: AlignConfig, device, resolution: int):
        self.engine, self.cfg, self.device, self.resolution = engine, cfg, device, resolution
        self._cache: dict[int, tuple] = {}

    def __call__(self, n: int):
        if n not in self._cache:
            cfg, r = self.cfg, self.resolution
            self._cache[n] = self.engine.encode_prompts(cfg.prompt, cfg.negative_prompt, n, cfg.guidance_scale,
                                                        self.device, size=(r, r))
        return self._cache[n]


def items_for_iteration(data: AlignDataset, train_indices: list[int], cfg: AlignConfig, it: int,
                        process_index: int, num_processes: int) -> list[tuple[AlignItem, int]]:
    """This process's (item, group id) prompts of iteration ``it``: a seeded epoch-permutation stream."""
    per_iter = cfg.prompts_per_iter * num_processes
    n = len(train_indices)
    out = []
    for j in range(cfg.prompts_per_iter):
        g = it * per_iter + process_index * cfg.prompts_per_iter + j  # global data cursor
        epoch, pos = divmod(g, n)
        perm = np.random.default_rng(derive_seed(cfg.seed, 17, epoch)).permutation(n)
        idx = train_indices[int(perm[pos])]
        out.append((data.get(idx, mask_seed=derive_seed(cfg.seed, 29, idx, epoch)), process_index * cfg.prompts_per_iter + j))
    return out


def sde_window(engine, cfg: AlignConfig, it: int) -> list[int]:
    """The stochastic (stored, trained) steps of iteration ``it``: a window of ``sde_window`` steps for flow
    matching, at ``sde_window_start`` or at a start drawn from (seed, iteration), the same on every process."""
    start = cfg.sde_window_start
    if start < 0 and 0 < cfg.sde_window < cfg.num_steps:
        start = int(np.random.default_rng(derive_seed(cfg.seed, 41, it)).integers(0, cfg.num_steps - cfg.sde_window + 1))
    return engine.train_steps(cfg.num_steps, cfg.sde_window, max(start, 0))


def sample(engine, model, items: list[AlignItem], seeds: list[int], samples_per_item: int, *, cfg: AlignConfig,
           resolution: int, device, prompts: PromptCache, window: list[int] | None = None,
           autocast=nullcontext, reduction: str = "mean", region: str = "auto") -> tuple:
    """Roll out ``samples_per_item`` trajectories per item with ``model``'s current weights (``reduction``:
    how each step's log-probability reduces over latent elements, "mean" or "sum"; ``region``: which
    elements it counts, "auto" (the family's), "full" or "mask", see ``Engine.logprob_regions``).

    Returns the concatenated rollout, and per sample the pasted-back images and the masks (pixel size).
    """
    cond = engine.encode_conditions([it.image for it in items], [it.mask for it in items], resolution, resolution,
                                    device=device, dtype=engine.pipeline.vae.dtype)
    groups = [g for g in range(len(items)) for _ in range(samples_per_item)]
    region = engine.check_logprob_region(region)
    chunks = []
    for s in range(0, len(groups), cfg.rollout_batch_size):
        gi = groups[s:s + cfg.rollout_batch_size]
        gens = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds[s:s + cfg.rollout_batch_size]]
        pos, neg = prompts(len(gi))
        with autocast():
            chunks.append(engine.rollout(cond, gi, gens, num_steps=cfg.num_steps, eta=cfg.eta,
                                         guidance_scale=cfg.guidance_scale, prompt_embeds=pos, negative_embeds=neg,
                                         model=model, reduction=reduction, sde_noise=cfg.sde_noise,
                                         window=window, logprob_region=region))
    ro = engine.cat_rollouts(chunks)
    init01 = ((cond.init_image + 1) / 2).clamp(0, 1).to(ro.images.device)
    mask = (cond.mask_pixels >= 0.5).to(ro.images.device)
    g = ro.groups
    images = paste_back(ro.images.float(), init01[g], mask[g])
    return ro, images, mask[g]


def score(reward_fn, images, masks) -> RewardBatch:
    """Score pasted-back images; the masked prompt image is the input with the hole black."""
    masked = images * (~masks).to(images.dtype)  # pasted back, so outside the hole this is the input
    return reward_fn(images.cpu(), masks[:, 0].cpu(), masked.cpu())
