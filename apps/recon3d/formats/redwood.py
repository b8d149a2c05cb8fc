"""Open3D / Redwood RGB-D: ``color/`` (or ``image/``, ``rgb/``), ``depth/`` (16-bit mm), a ``.log``
trajectory and a ``PinholeCameraIntrinsic`` JSON.

The ``.log`` holds blocks of one metadata line (``id id frame``) and four pose lines. The poses are
camera-to-world with OpenCV axes, which is how Open3D's ``read_pinhole_camera_trajectory`` and TSDF
integration read them (it inverts them into extrinsics). Block k belongs to the k-th image in natural
order. Without an intrinsic JSON, Open3D's PrimeSense default (640x480, f=525) is used and noted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose
from ..scene import Frame, Scene
from ._common import (
    find_intrinsic_json,
    list_images,
    read_open3d_intrinsic,
)

NAME = "redwood"
LAYOUT = "Open3D/Redwood color/ + depth/ + *.log + camera_intrinsic.json"
DEPTH_SCALE = 1000.0
_COLOR_DIRS = ("color", "image", "rgb")


def _color_dir(root: Path) -> Path | None:
    return next((root / d for d in _COLOR_DIRS if (root / d).is_dir()), None)


def detect(root: Path) -> bool:
    return any(root.glob("*.log")) or (_color_dir(root) is not None and (root / "depth").is_dir())


def read_log(path: Path) -> list[np.ndarray]:
    """Parse an Open3D/Redwood ``.log`` trajectory into camera-to-world 4x4 matrices.

    Raises:
        DataError: a line count that is not a multiple of 5, or non-numeric entries.
    """
    lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    if not lines or len(lines) % 5:
        raise DataError(f"'{path}' has {len(lines)} non-empty lines; a .log trajectory is blocks of 1 index line + 4 pose lines")
    try:
        m = np.array([[float(v) for v in ln.split()] for i, ln in enumerate(lines) if i % 5], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"'{path}' has a non-numeric pose line ({exc})") from exc
    if m.shape[1:] != (4,):
        raise DataError(f"'{path}': pose lines must hold 4 numbers each")
    return list(m.reshape(-1, 4, 4))



def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read an Open3D/Redwood RGB-D folder.

    Raises:
        DataError: missing colour/depth folders or .log, or image/depth/pose count mismatch.
    """
    cdir = _color_dir(root)
    if cdir is None:
        raise DataError(f"Open3D/Redwood scene at '{root}' is missing 'color/' (also looked for image/, rgb/)")
    if not (root / "depth").is_dir():
        raise DataError(f"Open3D/Redwood scene at '{root}' is missing 'depth/' (16-bit PNG depth in millimetres)")
    logs = sorted(root.glob("*.log"))
    if not logs:
        raise DataError(f"Open3D/Redwood scene at '{root}' is missing a '*.log' trajectory (camera-to-world poses)")
    poses = read_log(logs[0])
    colors, depths = list_images(cdir), list_images(root / "depth")
    if not colors:
        raise DataError(f"Open3D/Redwood scene at '{root}': '{cdir.name}/' holds no images")
    if not (len(colors) == len(depths) == len(poses)):
        raise DataError(f"Open3D/Redwood scene at '{root}': {len(colors)} colour images, {len(depths)} depth maps and "
                        f"{len(poses)} poses in {logs[0].name}; counts must match")
    notes = []
    ij = find_intrinsic_json(root)
    if ij is None:
        js = [p for p in root.glob("*.json") if "intrinsic" in p.read_text()[:2000]]
        ij = js[0] if js else None
    if ij is not None:
        intr = read_open3d_intrinsic(ij)
    else:
        intr = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
        notes.append("no intrinsic JSON: using Open3D's PrimeSense default (640x480, f=525)")
    frames = [Frame(c.stem, intr, check_pose(p, f"{logs[0]} block {i}"), rgb_path=c, depth_path=d, depth_scale=depth_scale or DEPTH_SCALE)
              for i, (c, d, p) in enumerate(zip(colors, depths, poses))]
    return Scene(root, NAME, frames, notes=notes)
