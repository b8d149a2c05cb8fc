"""Sampling for an :class:`~.trainer.Aligner`: this process's data stream, batched rollouts and scoring.

Rollouts (see :mod:`.rollouts`) run in chunks of ``rollout_batch_size``, the known region is pasted back,
and the pasted-back images are scored by the reward with the masked prompt image.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import AlignItem
from .evaluation import paste_back
from .rewards import RewardBatch
from .rollouts import Rollout, cat_rollouts, encode_conditions, encode_prompts
from .seeding import derive_seed

__all__ = ["prompt_embeds", "items_for_iteration", "sample", "score"]


def prompt_embeds(self, n: int):  # noqa: ANN001 - self is the Aligner
    """The (cached) prompt and negative-prompt embeddings for a batch of ``n``."""
    if n not in self._prompt_cache:
        cfg = self.config
        self._prompt_cache[n] = encode_prompts(self.pipe, cfg.prompt, cfg.negative_prompt, n, cfg.guidance_scale,
                                               self.accelerator.device, size=(self.resolution, self.resolution))
    return self._prompt_cache[n]


def items_for_iteration(self, it: int) -> list[tuple[AlignItem, int]]:  # noqa: ANN001 - self is the Aligner
    """This process's (item, group id) prompts of iteration ``it``: a seeded epoch-permutation stream."""
    cfg, acc = self.config, self.accelerator
    per_iter = cfg.prompts_per_iter * acc.num_processes
    n = len(self.train_indices)
    out = []
    for j in range(cfg.prompts_per_iter):
        g = it * per_iter + acc.process_index * cfg.prompts_per_iter + j  # global data cursor
        epoch, pos = divmod(g, n)
        perm = np.random.default_rng(derive_seed(cfg.seed, 17, epoch)).permutation(n)
        idx = self.train_indices[int(perm[pos])]
        out.append((self.data.get(idx, mask_seed=derive_seed(cfg.seed, 29, idx, epoch)), acc.process_index * cfg.prompts_per_iter + j))
    return out


def sample(self, items: list[AlignItem], seeds: list[int], samples_per_item: int) -> tuple[Rollout, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Roll out ``samples_per_item`` trajectories per item with the current UNet weights.

    Returns the concatenated rollout, and per sample the pasted-back images and the masks (pixel size).
    """
    cfg, acc = self.config, self.accelerator
    cond = encode_conditions(self.pipe, [it.image for it in items], [it.mask for it in items],
                             self.resolution, self.resolution, device=acc.device, dtype=self.pipe.vae.dtype)
    groups = [g for g in range(len(items)) for _ in range(samples_per_item)]
    chunks = []
    for s in range(0, len(groups), cfg.rollout_batch_size):
        gi = groups[s:s + cfg.rollout_batch_size]
        gens = [torch.Generator(device="cpu").manual_seed(sd) for sd in seeds[s:s + cfg.rollout_batch_size]]
        pos, neg = prompt_embeds(self, len(gi))
        with acc.autocast():
            chunks.append(self.engine.rollout(cond, gi, gens, num_steps=cfg.num_steps, eta=cfg.eta,
                                              guidance_scale=cfg.guidance_scale, prompt_embeds=pos,
                                              negative_embeds=neg, unet=self.raw_unet,
                                              reduction=cfg.logprob_reduction))
    ro = cat_rollouts(chunks)
    init01 = ((cond.init_image + 1) / 2).clamp(0, 1).to(ro.images.device)
    mask = (cond.mask_pixels >= 0.5).to(ro.images.device)
    g = ro.groups
    images = paste_back(ro.images.float(), init01[g], mask[g])
    return ro, images, mask[g]


def score(self, images, masks) -> RewardBatch:  # noqa: ANN001 - self is the Aligner
    """Score pasted-back images; the masked prompt image is the input with the hole black."""
    masked = images * (~masks).to(images.dtype)  # pasted back, so outside the hole this is the input
    return self.reward_fn(images.cpu(), masks[:, 0].cpu(), masked.cpu())
