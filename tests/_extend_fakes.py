"""A fake inpainter with the SDK's call signature, for the extend tests and benchmark (no model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from prefpaint_sdk import load_image, load_mask
from prefpaint_sdk.imaging import composite
from prefpaint_sdk.utils import feather_alpha

FILL = (255, 0, 255)  # magenta: never in the test images, so generated pixels are easy to find
SEAM_FILL = (0, 255, 0)  # what a low-strength (seam pass) call paints


@dataclass
class FakeResult:
    image: Image.Image
    candidates: list
    seeds: list
    scores: list | None = None
    best_index: int = 0
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    model_id: str | None = "fake"


class FakeInpainter:
    """Fills the mask with a known colour and feathers it like the SDK; records every call."""

    model_id = "fake/inpainter"
    revision = None

    def __init__(self, resolution: int = 64, scores: bool = False, noise: bool = False):
        self.resolution = resolution
        self.calls: list[dict] = []
        self.with_scores = scores
        self.noise = noise  # fill with seeded noise instead of a flat colour (for determinism checks)

    def __call__(self, image, mask, prompt="", negative_prompt="", num_candidates=1, seed=None, steps=50,
                 guidance_scale=7.5, eta=1.0, mask_dilate=0, mask_blur=8, crop_margin=128, keep_unmasked=True,
                 strength=1.0, progress=None):
        img = load_image(image)
        hole = load_mask(mask)
        self.calls.append(dict(size=img.size, mask=hole.copy(), image=np.asarray(img).copy(), seed=seed,
                               num_candidates=num_candidates, mask_blur=mask_blur, strength=strength,
                               crop_margin=crop_margin, prompt=prompt, steps=steps))
        alpha = feather_alpha(hole, mask_blur)
        candidates = []
        for k in range(num_candidates):
            if self.noise:
                rng = np.random.default_rng(seed + k)
                gen = rng.integers(0, 256, (img.height, img.width, 3), dtype=np.uint8)
            else:
                gen = np.empty((img.height, img.width, 3), np.uint8)
                gen[:] = FILL if strength >= 1.0 else SEAM_FILL
            candidates.append(composite(img, Image.fromarray(gen, "RGB"), alpha))
        scores = [float((seed + k) % 7) for k in range(num_candidates)] if self.with_scores else None
        best = int(np.argmax(scores)) if scores else 0
        return FakeResult(image=candidates[best], candidates=candidates, seeds=[seed + k for k in range(num_candidates)],
                          scores=scores, best_index=best)
