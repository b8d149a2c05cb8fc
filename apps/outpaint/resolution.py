"""The model's working size without loading it, so ``--dry-run`` plans the windows a real run will use."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["DEFAULT_RESOLUTION", "guess_resolution"]

DEFAULT_RESOLUTION = 512
"""Stable Diffusion inpainting's working size, the default model's."""


def guess_resolution(model: str | os.PathLike | None) -> int:
    """Working size in px of a diffusers inpainting folder, read from its configs (no torch import).

    It is ``unet.sample_size * 2 ** (len(vae.block_out_channels) - 1)``, what ``Inpainter.resolution``
    reports once loaded. Hub ids and anything unreadable give :data:`DEFAULT_RESOLUTION` (512), which is
    right for every Stable Diffusion 1.x/2.x inpainting model at its trained size.
    """
    if model is None:
        return DEFAULT_RESOLUTION
    folder = Path(model)
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        sample = unet["sample_size"]
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return DEFAULT_RESOLUTION
