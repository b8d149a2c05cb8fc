"""Replica in the NICE-SLAM layout: ``results/frame*.jpg``, ``results/depth*.png``, ``traj.txt``.

``traj.txt`` holds one camera-to-world pose per line as 16 row-major numbers (OpenCV axes). Depth is
16-bit in units of 1/6553.5 m. Intrinsics come from ``cam_params.json`` (in the scene folder or its
parent, as the Replica release ships it) or NICE-SLAM's defaults for the 1200x680 renders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose
from ..scene import Frame, Scene
from ._common import natural_key, require

NAME = "replica"
LAYOUT = "Replica (NICE-SLAM) results/frame*.jpg + results/depth*.png + traj.txt"
DEPTH_SCALE = 6553.5
_DEFAULT = Intrinsics(600.0, 600.0, 599.5, 339.5, 1200, 680)


def detect(root: Path) -> bool:
    return (root / "traj.txt").is_file() or (root / "results").is_dir()


def _intrinsics(root: Path, notes: list[str]) -> tuple[Intrinsics, float]:
    for p in (root / "cam_params.json", root.parent / "cam_params.json"):
        if p.is_file():
            try:
                c = json.loads(p.read_text())["camera"]
                return Intrinsics(float(c["fx"]), float(c["fy"]), float(c["cx"]), float(c["cy"]), int(c["w"]), int(c["h"])), float(c.get("scale", DEPTH_SCALE))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(f"'{p}' is not a Replica cam_params.json (needs camera.w/h/fx/fy/cx/cy): {exc}") from exc
    notes.append("no cam_params.json: using NICE-SLAM's Replica intrinsics (1200x680, f=600)")
    return _DEFAULT, DEPTH_SCALE


def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read a Replica sequence.

    Raises:
        DataError: missing results/ or traj.txt, a malformed trajectory, or image/pose count mismatch.
    """
    res = require(root / "results", "Replica", root, "expected results/frame*.jpg and results/depth*.png")
    traj = require(root / "traj.txt", "Replica", root, "expected one 16-number camera-to-world pose per line")
    rgbs = sorted((p for p in res.glob("frame*") if p.suffix.lower() in (".jpg", ".png")), key=natural_key)
    depths = sorted(res.glob("depth*.png"), key=natural_key)
    if not rgbs:
        raise DataError(f"Replica scene at '{root}' has no results/frame*.jpg images")
    try:
        poses = np.loadtxt(traj, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"'{traj}' is malformed ({exc}); expected 16 numbers per line") from exc
    if poses.shape[1] != 16:
        raise DataError(f"'{traj}' has {poses.shape[1]} numbers per line; expected 16 (a row-major 4x4 camera-to-world)")
    if not (len(rgbs) == len(depths) == len(poses)):
        raise DataError(f"Replica scene at '{root}': {len(rgbs)} images, {len(depths)} depth maps and {len(poses)} poses; counts must match")
    notes: list[str] = []
    intr, scale = _intrinsics(root, notes)
    frames = [Frame(r.stem, intr, check_pose(p.reshape(4, 4), f"{traj} line {i + 1}"), rgb_path=r, depth_path=d,
                    depth_scale=depth_scale or scale) for i, (r, d, p) in enumerate(zip(rgbs, depths, poses))]
    return Scene(root, NAME, frames, notes=notes)
