"""Fakes for the evaluation tests: inpainters and a reward model whose outputs are known functions of the seed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image


class FakeInpainter:
    """Fills the hole with one grey level drawn from the seed (uniform 0..149) plus ``offset``.

    Candidate k uses seed + k, as the real Inpainter does, so a candidate is reproducible alone.
    ``fail_after`` raises RuntimeError on that call number (an interruption).
    """

    def __init__(self, offset: int = 0, name: str = "fake", fail_after: int | None = None):
        self.offset, self.model_id, self.fail_after = offset, name, fail_after
        self.calls: list[tuple[int, int]] = []

    def level(self, seed: int) -> int:
        return int(np.random.default_rng(seed).integers(0, 150)) + self.offset

    def __call__(self, image, mask, prompt="", num_candidates=1, seed=0, steps=50, **kwargs):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls.append((seed, num_candidates))
        img = image if isinstance(image, Image.Image) else Image.open(image).convert("RGB")
        hole = np.asarray(mask, dtype=bool)
        cands = []
        for k in range(num_candidates):
            a = np.array(img)
            a[hole] = min(255, max(0, self.level(seed + k)))
            cands.append(Image.fromarray(a))
        return SimpleNamespace(candidates=cands, seeds=[seed + k for k in range(num_candidates)])


class FakeScorer:
    """Reward = mean brightness of the image (the context is shared, so it ranks the hole's fill); bound 0.1."""

    model_id = "fake-reward"
    mask_fill = (0, 0, 0)

    def __init__(self, bounds: bool = True):
        self.bounds = bounds
        self.calls = 0

    def score(self, images, masks=None, masked_images=None, batch_size=16):
        self.calls += 1
        s = np.array([np.asarray(im, dtype=np.float64).mean() / 255.0 for im in images])
        return SimpleNamespace(scores=s, bounds=np.full(len(s), 0.1) if self.bounds else None)


def write_data(root: Path, n: int = 6, size: int = 32, masks: bool = True, seed: int = 0) -> Path:
    """A data folder in the toolkit convention: images/ (random colour fields) and masks/ (a square hole)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    for i in range(n):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / "images" / f"img{i:02d}.png")
        if masks:
            m = np.zeros((size, size), np.uint8)
            m[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
            Image.fromarray(m).save(root / "masks" / f"img{i:02d}.png")
    return root
