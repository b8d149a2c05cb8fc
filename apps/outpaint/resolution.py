"""The model's working size without loading it, so ``--dry-run`` plans the windows a real run will use."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["DEFAULT_RESOLUTION", "guess_resolution"]

DEFAULT_RESOLUTION = 512
"""Stable Diffusion inpainting's working size, the default model's."""

_ALIAS_RESOLUTION = {"sdxl-inpaint": 1024, "flux-fill": 1024,
                     "diffusers/stable-diffusion-xl-1.0-inpainting-0.1": 1024, "black-forest-labs/FLUX.1-Fill-dev": 1024}


def guess_resolution(model: str | os.PathLike | None) -> int:
    """Working size in px of a diffusers inpainting folder, read from its configs (no torch import).

    It is what ``Inpainter.resolution`` reports once loaded: ``unet.sample_size * 2 ** (len(vae.block_out_channels)
    - 1)`` for SD and SDXL, the VAE's ``sample_size`` for FLUX Fill (a folder with a ``transformer/``). The
    aliases ``sdxl-inpaint`` and ``flux-fill`` give 1024. Other hub ids and anything unreadable give
    :data:`DEFAULT_RESOLUTION` (512), which is right for every Stable Diffusion 1.x/2.x inpainting model.
    """
    if model is None:
        return DEFAULT_RESOLUTION
    if str(model) in _ALIAS_RESOLUTION:
        return _ALIAS_RESOLUTION[str(model)]
    folder = Path(model)
    try:
        if (folder / "transformer" / "config.json").is_file():
            return int(json.loads((folder / "vae" / "config.json").read_text())["sample_size"])
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
        sample = unet["sample_size"]
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * 2 ** (len(vae["block_out_channels"]) - 1)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return DEFAULT_RESOLUTION
