"""Hole masks of warped views: classical speck filling and a slightly dilated mask for the inpainter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .warp import WarpResult

__all__ = ["CleanedView", "clean_holes"]


@dataclass
class CleanedView:
    """A warped view after cleanup.

    Attributes:
        rgb: HxWx3 uint8 with specks filled (holes still hold zeros).
        depth: HxW float32 metres, 0 in holes.
        holes: HxW bool, the disocclusions plus the area outside the source frames (specks removed).
        inpaint_mask: HxW bool, ``holes`` dilated by a few pixels so the inpainter sees clean borders.
        specks_filled: number of pixels filled classically.
    """

    rgb: np.ndarray
    depth: np.ndarray
    holes: np.ndarray
    inpaint_mask: np.ndarray
    specks_filled: int


def clean_holes(warped: WarpResult, speck_area: int | None = None, dilate: int = 2) -> CleanedView:
    """Fill small hole specks from their nearest valid pixel and build the inpainting mask.

    Args:
        warped: the output of :func:`forward_warp`.
        speck_area: hole components of at most this many pixels are filled classically (cracks and
            single missing pixels); default 0.02% of the image, at least 4.
        dilate: pixels to grow the remaining holes by for the inpainting mask.

    Returns:
        A :class:`CleanedView`.
    """
    from scipy import ndimage

    holes = ~warped.valid
    h, w = holes.shape
    area = max(4, int(2e-4 * h * w)) if speck_area is None else speck_area
    rgb, depth = warped.rgb.copy(), warped.depth.copy()
    labels, n = ndimage.label(holes, structure=np.ones((3, 3), bool))
    specks = np.zeros_like(holes)
    if n and holes.sum() < holes.size:
        sizes = np.bincount(labels.ravel())
        small = sizes <= area
        small[0] = False
        specks = small[labels]
        if specks.any():
            # nearest valid pixel for every hole pixel, in one exact Euclidean distance transform
            _, (iy, ix) = ndimage.distance_transform_edt(holes, return_indices=True)
            rgb[specks] = rgb[iy[specks], ix[specks]]
            depth[specks] = depth[iy[specks], ix[specks]]
    remaining = holes & ~specks
    mask = ndimage.binary_dilation(remaining, iterations=dilate) if dilate > 0 and remaining.any() else remaining.copy()
    return CleanedView(rgb, depth, remaining, mask, int(specks.sum()))
