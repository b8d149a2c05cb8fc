"""TUM RGB-D: ``rgb.txt``, ``depth.txt``, ``groundtruth.txt``; depth PNGs in units of 1/5000 m.

Each list holds ``timestamp value...`` lines. Colour, depth and pose are associated by nearest
timestamp within ``max_dt`` seconds (TUM's ``associate.py`` uses 0.02 s). ``groundtruth.txt`` lines are
``t tx ty tz qx qy qz qw``: the camera-to-world pose of the colour camera's optical frame (OpenCV axes).

TUM ships no intrinsics file. We use, in order: a ``camera_intrinsic.json`` (Open3D format) in the
folder; the published calibration of the freiburg1/2/3 sensor named in the folder name; otherwise
Open3D's PrimeSense default (fx = fy = 525), noted in the scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose, quat_to_rotmat
from ..scene import Frame, Scene
from ._common import (
    find_intrinsic_json,
    image_size,
    read_open3d_intrinsic,
    require,
)

NAME = "tum"
LAYOUT = "TUM RGB-D rgb.txt + depth.txt + groundtruth.txt"
DEPTH_SCALE = 5000.0
# Published TUM calibrations of the colour camera, 640x480 ("File Formats" page of the TUM RGB-D benchmark):
# (fx, fy, cx, cy) and distortion d0..d4 (OpenCV k1 k2 p1 p2 k3). freiburg3 images ship undistorted (zeros).
_FREIBURG = {"freiburg1": (517.3, 516.5, 318.6, 255.3), "freiburg2": (520.9, 521.0, 325.1, 249.7), "freiburg3": (535.4, 539.2, 320.1, 247.6)}
FREIBURG_DISTORTION = {"freiburg1": (0.2624, -0.9531, -0.0054, 0.0026, 1.1633), "freiburg2": (0.2312, -0.7849, -0.0033, -0.0001, 0.9172),
                       "freiburg3": (0.0, 0.0, 0.0, 0.0, 0.0)}


def detect(root: Path) -> bool:
    return any((root / n).is_file() for n in ("rgb.txt", "depth.txt", "groundtruth.txt"))


def _read_list(path: Path, ncols: int) -> tuple[np.ndarray, list[list[str]]]:
    ts, rows = [], []
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        t = s.split()
        if len(t) < ncols:
            raise DataError(f"'{path}' line {ln} has {len(t)} fields, expected {ncols}: {line!r}")
        try:
            ts.append(float(t[0]))
        except ValueError as exc:
            raise DataError(f"'{path}' line {ln} does not start with a timestamp: {line!r}") from exc
        rows.append(t[1:])
    if not ts:
        raise DataError(f"'{path}' lists no entries")
    return np.asarray(ts), rows


def _nearest(query: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest ``ref`` timestamp for each query, and the gap in seconds (vectorised)."""
    order = np.argsort(ref)
    r = ref[order]
    hi = np.clip(np.searchsorted(r, query), 1, len(r) - 1) if len(r) > 1 else np.zeros(len(query), int)
    lo = np.maximum(hi - 1, 0)
    pick = np.where(np.abs(r[lo] - query) <= np.abs(r[hi] - query), lo, hi)
    return order[pick], np.abs(r[pick] - query)


def read(root: Path, depth_scale: float | None = None, max_dt: float = 0.02) -> Scene:
    """Read a TUM RGB-D sequence.

    Raises:
        DataError: a missing list file, or no colour frame with both a depth map and a pose within ``max_dt``.
    """
    for n in ("rgb.txt", "depth.txt", "groundtruth.txt"):
        require(root / n, "TUM", root, "a TUM sequence needs rgb.txt, depth.txt and groundtruth.txt")
    t_rgb, rgb_rows = _read_list(root / "rgb.txt", 2)
    t_d, d_rows = _read_list(root / "depth.txt", 2)
    t_gt, gt_rows = _read_list(root / "groundtruth.txt", 8)
    di, ddt = _nearest(t_rgb, t_d)
    gi, gdt = _nearest(t_rgb, t_gt)
    ok = (ddt <= max_dt) & (gdt <= max_dt)
    if not ok.any():
        raise DataError(f"TUM scene at '{root}': no colour frame has depth and a pose within {max_dt}s; check the timestamps")
    try:
        gt = np.asarray([r[:7] for r in gt_rows], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"'{root / 'groundtruth.txt'}' has a non-numeric pose ({exc}); expected 't tx ty tz qx qy qz qw' lines") from exc
    notes = []
    ij = find_intrinsic_json(root)
    if ij is not None:
        intr = read_open3d_intrinsic(ij)
    else:
        w, h = image_size(require(root / rgb_rows[0][0], "TUM", root))
        key = next((k for k in _FREIBURG if k in str(root.resolve())), None)
        fx, fy, cx, cy = _FREIBURG.get(key, (525.0, 525.0, 319.5, 239.5))
        intr = Intrinsics(fx, fy, cx, cy, w, h)
        notes.append(f"intrinsics from {'the published ' + key + ' calibration' if key else 'the PrimeSense default (525 px)'}; "
                     "add camera_intrinsic.json to override")
        dist = FREIBURG_DISTORTION.get(key, (0.0,) * 5)
        if any(dist):
            notes.append(f"{key} lens distortion (d0..d4 = k1 k2 p1 p2 k3 = {' '.join(f'{d:g}' for d in dist)}) ignored: the "
                         "images are used as a pinhole camera; undistort them for exact geometry")
    frames = []
    for k in np.flatnonzero(ok):
        c2w = np.eye(4)
        row = gt[gi[k]]
        c2w[:3, :3] = quat_to_rotmat(row[3:7], "xyzw")
        c2w[:3, 3] = row[:3]
        frames.append(Frame(f"{t_rgb[k]:.6f}", intr, check_pose(c2w, f"groundtruth.txt t={t_gt[gi[k]]}"),
                            rgb_path=root / rgb_rows[k][0], depth_path=root / d_rows[di[k]][0],
                            depth_scale=depth_scale or DEPTH_SCALE))
    skipped = [f"rgb t={t:.6f}: no depth/pose within {max_dt}s" for t in t_rgb[~ok]]
    return Scene(root, NAME, frames, skipped=skipped, notes=notes)
