"""ScanNet as exported by SensReader: ``color/``, ``depth/``, ``pose/``, ``intrinsic/``; depth in mm.

Poses are camera-to-world 4x4 text files (OpenCV axes); frames whose pose holds ``-inf`` (tracking
lost) are skipped and counted. Colour (1296x968) and depth (640x480) come at different sizes: we work
at depth resolution with ``intrinsic_depth.txt`` and resample colour to it (documented, not an error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose
from ..scene import Frame, Scene
from ._common import image_size, list_images, read_matrix_txt, require

NAME = "scannet"
LAYOUT = "ScanNet SensReader color/ + depth/ + pose/ + intrinsic/"
DEPTH_SCALE = 1000.0


def detect(root: Path) -> bool:
    return (root / "pose").is_dir() or (root / "intrinsic").is_dir()


def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read a ScanNet export.

    Raises:
        DataError: a missing folder or intrinsic file, or no frame with colour, depth and a valid pose.
    """
    for d in ("color", "depth", "pose", "intrinsic"):
        require(root / d, "ScanNet", root, "SensReader exports color/, depth/, pose/ and intrinsic/")
    kd = read_matrix_txt(require(root / "intrinsic/intrinsic_depth.txt", "ScanNet", root), "ScanNet intrinsic")
    colors = {p.stem: p for p in list_images(root / "color")}
    depths = {p.stem: p for p in list_images(root / "depth")}
    stems = sorted(set(colors) & set(depths), key=lambda s: int(s) if s.isdigit() else s)
    if not stems:
        raise DataError(f"ScanNet scene at '{root}': no frame has both color/<n>.jpg and depth/<n>.png")
    dw, dh = image_size(depths[stems[0]])
    intr = Intrinsics(float(kd[0, 0]), float(kd[1, 1]), float(kd[0, 2]), float(kd[1, 2]), dw, dh)
    frames, skipped = [], []
    for s in stems:
        pose_path = root / "pose" / f"{s}.txt"
        if not pose_path.is_file():
            skipped.append(f"{s}: no pose/{s}.txt")
            continue
        m = read_matrix_txt(pose_path, "ScanNet pose")
        if not np.all(np.isfinite(m)):
            skipped.append(f"{s}: invalid pose (inf/nan: tracking lost)")
            continue
        frames.append(Frame(s, intr, check_pose(m, str(pose_path)), rgb_path=colors[s], depth_path=depths[s],
                            depth_scale=depth_scale or DEPTH_SCALE, rgb_resize=True))
    if not frames:
        raise DataError(f"ScanNet scene at '{root}': all {len(stems)} frames lack a valid pose")
    return Scene(root, NAME, frames, skipped=skipped)
