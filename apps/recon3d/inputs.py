"""Input frames for the pipeline: loaded on demand with a small cache, unreadable frames skipped and
counted, depth-scale sanity, and the neighbouring-frame reprojection check (``--check``)."""

from __future__ import annotations

import itertools
import logging

import numpy as np

from prefpaint_sdk import DataError
from prefpaint_sdk.utils import Arg

from .geometry import depth_consistency
from .quiet import quiet_libraries
from .scene import MAX_PLAUSIBLE_DEPTH_M, MIN_PLAUSIBLE_DEPTH_M, Frame, Scene, UnreadableFrameError

__all__ = ["FrameCache", "check_scene", "median_depth"]

log = logging.getLogger(__name__)


def median_depth(d: np.ndarray) -> float:
    v = d[d > 0]
    return float(np.median(v)) if v.size else 0.0


def _plausible(frame: Frame, d: np.ndarray) -> None:
    """Catch wrong depth scales early (mm read as m, m read as mm)."""
    med = median_depth(d)
    if d.any() and not MIN_PLAUSIBLE_DEPTH_M <= med <= MAX_PLAUSIBLE_DEPTH_M:
        raise DataError(
            f"frame '{frame.name}': median depth is {med:.4f} m, outside the plausible {MIN_PLAUSIBLE_DEPTH_M}-{MAX_PLAUSIBLE_DEPTH_M} m; "
            f"the depth scale ({frame.depth_scale:g} raw units per metre) is probably wrong: pass ", Arg("depth_scale")
        )


class FrameCache:
    """Input frames loaded on demand, with a small cache; unreadable frames are skipped and counted."""

    def __init__(self, frames: list[Frame], cache: int = 8):
        self.frames = frames
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.order: list[int] = []
        self.size = cache
        self.unreadable: dict[int, str] = {}

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        if i in self.unreadable:
            return None
        if i not in self.cache:
            f = self.frames[i]
            try:
                rgb, d = f.load_rgb(), f.load_depth()
            except UnreadableFrameError as exc:
                self.unreadable[i] = str(exc)
                log.warning("skipping frame %s: %s", f.name, exc)
                return None
            if d is None:
                raise DataError(
                    f"frame '{f.name}' has no depth map; recon3d needs depth for every input view of a multi-view scene "
                    "(nerfstudio depth_file_path, COLMAP depths/, ...). Single images get monocular depth"
                )
            _plausible(f, d)
            self.cache[i] = (rgb, d)
            self.order.append(i)
            if len(self.order) > self.size:
                self.cache.pop(self.order.pop(0), None)
        return self.cache[i]


@quiet_libraries  # scipy and Open3D warnings: debug records, not output
def check_scene(scene: Scene, max_pairs: int = 20, rel_tol: float = 0.05) -> dict:
    """Reproject neighbouring frames into each other and report the share of depth-consistent pixels.

    A correct scene scores high (neighbouring frames agree); a wrong axis convention, pose direction
    (world-to-camera read as camera-to-world) or depth scale scores near zero.

    Returns:
        {"pairs": n, "consistent_share": float or None, "per_pair": [...], "skipped_frames": n}
    """
    if not scene.has_depth:  # nothing to reproject before monocular depth is estimated
        return {"pairs": 0, "consistent_share": None, "per_pair": [], "skipped_frames": 0}
    inputs = FrameCache(scene.frames, cache=4)
    idx = list(range(len(scene.frames)))
    pairs = list(itertools.pairwise(idx))
    if len(pairs) > max_pairs:
        pairs = [pairs[i] for i in np.unique(np.round(np.linspace(0, len(pairs) - 1, max_pairs)).astype(int))]
    good = total = 0
    per = []
    for a, b in pairs:
        fa, fb = inputs.get(a), inputs.get(b)
        if fa is None or fb is None:
            continue
        ka, kb = scene.frames[a], scene.frames[b]
        g1, t1 = depth_consistency(fa[1], ka.intrinsics, ka.c2w, fb[1], kb.intrinsics, kb.c2w, rel_tol)
        g2, t2 = depth_consistency(fb[1], kb.intrinsics, kb.c2w, fa[1], ka.intrinsics, ka.c2w, rel_tol)
        per.append({"a": scene.frames[a].name, "b": scene.frames[b].name, "consistent_share": (g1 + g2) / max(t1 + t2, 1),
                    "overlap_pixels": t1 + t2})
        good, total = good + g1 + g2, total + t1 + t2
    return {"pairs": len(per), "consistent_share": good / total if total else None, "per_pair": per,
            "skipped_frames": len(inputs.unreadable)}
