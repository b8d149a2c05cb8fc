"""The numbers of one inpainting call, checked before any image is read or any sampling starts, and the
denoising steps they leave (``steps x strength``): shared by :meth:`Inpainter.validate` and the call itself."""

from __future__ import annotations

import numpy as np

from .validation import at_least, bad_value, check_seed, finite, non_negative

__all__ = ["check_call_numbers", "effective_steps"]


def effective_steps(steps: int, strength: float) -> int:
    """The denoising steps a call runs: img2img-style ``strength`` skips the first ``steps x (1 - strength)``."""
    return max(1, min(int(steps * strength), steps))


def check_call_numbers(num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin):
    """Every number of a call, checked before any image is read or any sampling: the checked values."""
    num_candidates = at_least("num_candidates", num_candidates, 1)
    steps = at_least("steps", steps, 1)
    guidance_scale = finite("guidance_scale", guidance_scale, 0.0)
    eta = None if eta is None else finite("eta", eta, 0.0, 1.0)
    mask_dilate = non_negative("mask_dilate", mask_dilate)
    mask_blur = non_negative("mask_blur", mask_blur)
    strength = finite("strength", strength)
    if not 0.0 < strength <= 1.0:
        raise bad_value("strength", f"strength must lie in (0, 1], got {strength!r}")
    if int(steps * strength) < 1:
        raise bad_value(
            "steps",
            f"steps x strength = {steps} x {strength} leaves no denoising step; raise steps to at least "
            f"{int(np.ceil(1 / strength))}",
        )
    seed = check_seed(seed, count=num_candidates)
    if crop_margin is not None:
        crop_margin = at_least("crop_margin", crop_margin, minimum=-(2**62))
    return num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin
