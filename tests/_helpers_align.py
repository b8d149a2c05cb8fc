"""Shared fixtures for the alignment tests: a tiny data folder and a fast config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_data(root: Path, n: int = 8, size: int = 64, with_masks: bool = False, seed: int = 0) -> Path:
    """``root/images/NN.png`` random images (and ``root/masks/NN.png`` boxes when asked)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    if with_masks:
        (root / "masks").mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i:02d}.png")
        if with_masks:
            m = np.zeros((size, size), np.uint8)
            m[size // 4:size // 2 + i % 4, size // 5:3 * size // 4] = 255
            Image.fromarray(m, "L").save(root / "masks" / f"{i:02d}.png")
    return root


FAST = dict(
    resolution=32, num_steps=3, timesteps_per_traj=2, prompts_per_iter=2, samples_per_prompt=2,
    rollout_batch_size=4, train_batch_size=2, grad_accum_steps=1, inner_epochs=1, resync_every=1,
    iterations=2, eval_every=0, save_every=0, log_with="none", learning_rate=1e-2, clip_range=1e-2,
    finetune="lora", lora_rank=4, lora_alpha=4.0, mixed_precision="no",
)


def fast_config(**overrides):
    from prefpaint_sdk.align.config import AlignConfig

    return AlignConfig().replace(**{**FAST, **overrides})


def rollout_inputs(seed: int, size: int = 64):
    """A random image and a box mask (bool) that differ by ``seed``: the rollout equivalence tests' inputs."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    mask = np.zeros((size, size), bool)
    mask[8 + seed:40, 12:50 - seed] = True
    return img, mask


def pipeline_images(pipe, img, mask, seeds, steps: int, **kw):
    """The diffusers pipeline's own output (``pt``, 64 px, DDIM eta 1) for one generator per seed."""
    import torch

    gens = [torch.Generator().manual_seed(s) for s in seeds]
    n = len(seeds)
    m = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    with torch.inference_mode():
        return pipe(image=[img] * n, mask_image=[m] * n, height=64, width=64, num_inference_steps=steps, eta=1.0,
                    generator=gens, output_type="pt", **kw).images


def heldout_seed_noise(aligner, sets: int = 8) -> float:
    """The seed noise of a run's held-out mean reward: the std, over ``sets`` sets of sampling seeds, of the
    starting model's mean reward on the run's own held-out pairs and masks (what its evaluations score)."""
    import numpy as np

    from prefpaint_sdk.align.evaluation import heldout_prompts

    cfg = aligner.config
    items, _ = heldout_prompts(aligner.eval_set, aligner.eval_indices, cfg.seed, cfg.eval_samples)
    means = []
    for rep in range(sets):
        seeds = [10_000 * (rep + 1) + k for k in range(len(items) * cfg.eval_samples)]
        _, images, masks = aligner._sample(items, seeds, cfg.eval_samples)
        means.append(float(aligner._score(images, masks).scores.mean()))
    return float(np.std(means))
