"""Array-in/array-out camera geometry in numpy: back-projection, projection, visibility, consistency.

All functions follow the internal convention (OpenCV camera, camera-to-world, metres, depth 0 = invalid)
and are vectorised over pixels.
"""

from __future__ import annotations

import numpy as np

from .cameras import Intrinsics

__all__ = ["backproject", "covisible_mask", "depth_consistency", "pixel_grid", "project"]


def pixel_grid(intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) pixel-centre coordinates, each HxW float64."""
    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    return u, v


def backproject(depth: np.ndarray, intr: Intrinsics, c2w: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """World points (N x 3) of the valid pixels (depth > 0, and ``mask`` when given), in row-major order."""
    u, v = pixel_grid(intr)
    ok = depth > 0 if mask is None else (depth > 0) & mask
    z = depth[ok].astype(np.float64)
    cam = np.stack([(u[ok] - intr.cx) / intr.fx * z, (v[ok] - intr.cy) / intr.fy * z, z], -1)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def project(points: np.ndarray, intr: Intrinsics, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into a camera: (u, v, z) arrays; z <= 0 means behind the camera."""
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
    return intr.fx * cam[:, 0] / safe + intr.cx, intr.fy * cam[:, 1] / safe + intr.cy, z


def _agrees(depth: np.ndarray, intr: Intrinsics, u: np.ndarray, v: np.ndarray, z: np.ndarray, rel_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """(comparable, consistent) for points at (u, v, z) against a depth map.

    Comparable: in front of the camera, inside the image, on valid depth. Consistent: z lies within the
    range of the 2x2 depth neighbourhood around (u, v), widened by ``rel_tol``. Using the neighbourhood's
    range rather than the nearest pixel keeps steep (grazing) surfaces consistent, where depth changes by
    more than ``rel_tol`` from one pixel to the next.
    """
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    inside = (z > 0) & (u0 >= 0) & (u0 + 1 < intr.width) & (v0 >= 0) & (v0 + 1 < intr.height)
    ui, vi = np.where(inside, u0, 0), np.where(inside, v0, 0)
    nb = np.stack([depth[vi, ui], depth[vi, ui + 1], depth[vi + 1, ui], depth[vi + 1, ui + 1]])
    valid_nb = nb > 0
    comparable = inside & valid_nb.any(0)
    lo = np.where(valid_nb, nb, np.inf).min(0)
    hi = np.where(valid_nb, nb, -np.inf).max(0)
    consistent = comparable & (z >= lo * (1 - rel_tol)) & (z <= hi * (1 + rel_tol))
    return comparable, consistent


def covisible_mask(depth: np.ndarray, intr: Intrinsics, c2w: np.ndarray, others: list[tuple[np.ndarray, Intrinsics, np.ndarray]],
                   rel_tol: float = 0.02) -> np.ndarray:
    """Pixels of a view whose surface point is seen by at least one other view (HxW bool).

    A point counts as seen when it projects inside the other view in front of it and its depth lies within
    the range of that view's 2x2 depth neighbourhood, widened by ``rel_tol``. The complement, on valid pixels, is the ground-truth
    disocclusion-plus-outside-frame mask of a novel view.
    """
    seen = np.zeros(depth.shape, bool)
    valid = depth > 0
    pts = backproject(depth, intr, c2w)
    flat = np.zeros(int(valid.sum()), bool)
    for d_o, k_o, c_o in others:
        u, v, z = project(pts, k_o, c_o)
        flat |= _agrees(d_o, k_o, u, v, z, rel_tol)[1]
    seen[valid] = flat
    return seen


def depth_consistency(depth_a: np.ndarray, intr_a: Intrinsics, c2w_a: np.ndarray, depth_b: np.ndarray, intr_b: Intrinsics,
                      c2w_b: np.ndarray, rel_tol: float = 0.05) -> tuple[int, int]:
    """Reproject view A's depth into view B: (consistent pixels, comparable pixels).

    Comparable pixels land inside B on valid depth; consistent ones also agree within ``rel_tol``. Points
    hidden in B count as inconsistent, so neighbouring frames of a correct scene score high (> 0.7) while
    a wrong axis convention or depth scale scores near 0.
    """
    pts = backproject(depth_a, intr_a, c2w_a)
    if len(pts) == 0:
        return 0, 0
    u, v, z = project(pts, intr_b, c2w_b)
    comparable, consistent = _agrees(depth_b, intr_b, u, v, z, rel_tol)
    return int(consistent.sum()), int(comparable.sum())
