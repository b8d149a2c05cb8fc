"""The TSDF voxel size, bounded by the scene's extent so that fusion memory is predictable.

open3d's TSDF volumes allocate blocks of 16³ voxels along the truncation band of every ray, so their memory
grows with the number of voxels across the scene: a 160x120 scene fused at ``--voxel-size 1e-6`` peaked at
5.5 GB. The voxel is therefore at least the scene's extent (the longest side of the box that holds every
camera and every point seen within ``depth_trunc``) over :data:`MAX_VOXELS_PER_AXIS`: a given size below that
is refused, and the default is raised to it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from prefpaint_sdk import DataError
from prefpaint_sdk.utils import Arg, bad_value

from .geometry import backproject
from .scene import Frame

__all__ = ["MAX_VOXELS_PER_AXIS", "check_voxel_size", "default_voxel_size", "scene_extent"]

MAX_VOXELS_PER_AXIS = 1024
"""The most TSDF voxels along the scene's longest side (the default, median depth / 150, is far below it)."""

_SAMPLED_FRAMES = 20  # frames read to measure the extent (evenly spaced), as for the depth statistics
_OUTLIERS = 0.5  # percent of a frame's points left out at each end of each axis


def scene_extent(frames: Sequence[Frame], depth_trunc: float | None = None) -> float | None:
    """The longest side, in metres, of the box holding every camera centre and the points its depth sees
    (all but the outer 0.5% per axis and frame).

    Reads the depth of up to 20 evenly spaced frames; points beyond ``depth_trunc`` are left out, as fusion
    leaves them out (``None``: the reconstruction's default, 1.05 x the 99th percentile of the depths). A
    frame whose depth is missing (to be estimated by a depth model) or unreadable adds only its camera.

    Returns:
        the extent, or None when no frame has depth yet (the reconstruction checks again once it has).
    """
    centres = np.stack([np.asarray(f.c2w, dtype=np.float64)[:3, 3] for f in frames])
    lo, hi = centres.min(0), centres.max(0)
    depths = []
    for f in list(frames)[:: max(1, len(frames) // _SAMPLED_FRAMES)]:
        try:
            depth = f.load_depth()
        except DataError:  # an unreadable frame is reported (and skipped) by the reconstruction itself
            depth = None
        depths.append((f, depth))
    valid = [d[np.isfinite(d) & (d > 0)] for _, d in depths if d is not None]
    valid = np.concatenate(valid) if valid else np.zeros(0)
    if not valid.size:
        return None
    trunc = depth_trunc if depth_trunc is not None else 1.05 * float(np.quantile(valid, 0.99))
    for f, depth in depths:
        if depth is None:
            continue
        pts = backproject(np.where(np.isfinite(depth) & (depth <= trunc), depth, 0), f.intrinsics, f.c2w)
        if len(pts):  # a few stray far points (monocular depth, sensor noise) do not make the scene wide
            lo = np.minimum(lo, np.percentile(pts, _OUTLIERS, axis=0))
            hi = np.maximum(hi, np.percentile(pts, 100 - _OUTLIERS, axis=0))
    side = float(np.max(hi - lo))
    return side if np.isfinite(side) and side > 0 else None


def check_voxel_size(voxel_size: float, extent: float | None) -> float:
    """Refuse a voxel that puts more than :data:`MAX_VOXELS_PER_AXIS` voxels across ``extent`` metres.

    Returns:
        ``voxel_size``.

    Raises:
        InvalidInputError: names the voxel, the extent, the bound and the smallest voxel allowed
            (``.param`` is ``voxel_size``).
    """
    if extent is None or extent <= 0:
        return voxel_size
    if extent / voxel_size > MAX_VOXELS_PER_AXIS:
        least = extent / MAX_VOXELS_PER_AXIS
        raise bad_value("voxel_size", Arg("voxel_size", voxel_size), f" puts {extent / voxel_size:.3g} voxels "
                                      f"across the scene's extent of {extent:.3g} m; at most {MAX_VOXELS_PER_AXIS} per "
                                      "axis keep fusion memory predictable: pass ", Arg("voxel_size", _round_up(least)),
                                      " or larger")
    return voxel_size


def default_voxel_size(median_depth: float, extent: float | None) -> float:
    """Median depth / 150 (at least 5 mm), raised to the extent's bound when the scene is wide."""
    voxel = float(max(0.005, round(median_depth / 150, 3)))
    if extent is not None and extent > 0:
        voxel = max(voxel, _round_up(extent / MAX_VOXELS_PER_AXIS))
    return voxel


def _round_up(value: float) -> float:
    """``value`` rounded up to 3 significant digits (so the advised size passes the check)."""
    digits = 2 - int(np.floor(np.log10(value)))
    return float(np.ceil(value * 10**digits) / 10**digits)
