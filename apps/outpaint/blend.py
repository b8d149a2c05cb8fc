"""Pixel work around one extension step: prefilling the new area, seam bands, and per-step seeds.

Arrays here are a window's pixels as ``uint8`` HxWx3 and boolean HxW masks (``True`` = new / fill).
"""

from __future__ import annotations

import numpy as np

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import Arg, feather_alpha

__all__ = ["PREFILL_MODES", "derive_seed", "prefill", "reach", "seam_band"]

PREFILL_MODES = ("replicate", "blur", "grey")
"""How the new area is filled before the model sees it.

* ``replicate``: each new pixel takes the colour of the nearest known pixel (edge streaks).
* ``blur``: replicate, then a wide Gaussian blur of the new area, so only the broad colours continue.
* ``grey``: mid-grey, the value Stable Diffusion's inpainting UNet itself puts in a hole.

Stable Diffusion inpainting at ``strength=1`` blanks the hole in its masked-image input and starts
from pure noise, so there the prefill only matters at lower ``strength`` (the first step of the
denoiser then starts from the prefill) and for the seam pass.
"""


def prefill(window: np.ndarray, new: np.ndarray, mode: str = "replicate") -> np.ndarray:
    """Return a copy of ``window`` with the ``new`` pixels prefilled; known pixels are untouched.

    Args:
        window: HxWx3 ``uint8`` pixels.
        new: HxW bool, ``True`` where pixels are to be generated.
        mode: one of :data:`PREFILL_MODES`.

    Returns:
        The prefilled HxWx3 ``uint8`` copy.

    Raises:
        InvalidInputError: unknown ``mode``, or no known pixel to replicate from.
    """
    if mode not in PREFILL_MODES:
        raise InvalidInputError(Arg("prefill"), f" must be one of {', '.join(PREFILL_MODES)}; got '{mode}'")
    out = window.copy()
    if not new.any():
        return out
    if mode == "grey":
        out[new] = 128
        return out
    if new.all():
        raise InvalidInputError("the window has no known pixel to prefill from; this is a planning bug, please report it")
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    # Index of the nearest known pixel for every pixel (known pixels point at themselves). The plan's
    # new areas are boxes or L-shapes along the known region's edge, so the nearest known pixel of a new
    # pixel lies within the new area's bounding box plus one pixel, and the transform runs on that crop.
    y0, x0, y1, x1 = _grown_bbox(new, 1)
    dist, (iy, ix) = distance_transform_edt(new[y0:y1, x0:x1], return_distances=True, return_indices=True)
    out = window.copy()
    out[y0:y1, x0:x1] = window[y0:y1, x0:x1][iy, ix]
    if mode == "blur":
        # Blur about a quarter of the new area's depth (its farthest pixel from known ones; a strip's
        # thickness): keeps the broad colour, drops the streaks.
        depth = max(1, round(float(dist.max())))
        sigma = float(np.clip(depth / 4.0, 2.0, 32.0))
        blurred = np.stack([gaussian_filter(out[..., c].astype(np.float32), sigma, mode="nearest") for c in range(3)], -1)
        out[new] = np.clip(np.round(blurred[new]), 0, 255).astype(np.uint8)
    out[~new] = window[~new]
    return out


def seam_band(new: np.ndarray, inside: int, outside: int) -> np.ndarray:
    """The band across the seam between ``new`` and the known pixels of a window.

    Args:
        new: HxW bool, the pixels the step generated.
        inside: band half-width on the new side, px.
        outside: band half-width on the known side, px.

    Returns:
        HxW bool: new pixels within ``inside`` px of a known pixel, and known pixels within ``outside``
        px of a new one. The window's own edges are not seams.
    """
    from scipy.ndimage import distance_transform_edt

    if not new.any() or new.all():
        return np.zeros_like(new)
    to_known = distance_transform_edt(new)  # for new pixels: distance to the nearest known pixel
    to_new = distance_transform_edt(~new)  # for known pixels: distance to the nearest new pixel
    return (new & (to_known <= inside)) | (~new & (to_new <= outside))


def reach(mask: np.ndarray, band: int) -> np.ndarray:
    """Pixels a call with this mask and feather ``band`` may change: where the SDK's feather weight is > 0.

    That is the mask and every pixel less than ``band + 1`` px (Euclidean) from it.
    """
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    # Weights are 0 beyond band + 1 px, so the mask's box grown by that much holds every touched pixel.
    y0, x0, y1, x1 = _grown_bbox(mask, int(band) + 1)
    out[y0:y1, x0:x1] = feather_alpha(mask[y0:y1, x0:x1], band) > 0
    return out


def _grown_bbox(mask: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the mask's True pixels, grown by ``margin`` and clipped to the array."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (max(0, ys[0] - margin), max(0, xs[0] - margin), min(h, ys[-1] + 1 + margin), min(w, xs[-1] + 1 + margin))


def derive_seed(base_seed: int, index: int, purpose: int = 0) -> int:
    """A seed for step ``index`` that depends only on the user's seed: reproducible and decorrelated.

    ``purpose`` separates streams (0: the step, 1: its seam pass). The result is below 2**31, so the
    inpainter's ``seed + k`` per candidate stays a valid 64-bit seed.
    """
    state = np.random.SeedSequence([int(base_seed), int(index), int(purpose)]).generate_state(1, dtype=np.uint32)
    return int(state[0]) & 0x7FFFFFFF
