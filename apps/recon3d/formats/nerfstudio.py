"""nerfstudio / instant-ngp ``transforms.json``.

Convention: ``transform_matrix`` is camera-to-world with OpenGL axes (y up, z backward); pixel centres
sit at +0.5 (the principal point is measured from the image corner), as in nerfstudio and COLMAP. We
convert both to the internal OpenCV convention. Intrinsics are read from the top level or per frame
(``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h``, or instant-ngp's ``camera_angle_x``). Optional
``depth_file_path`` per frame; raw depth is multiplied by ``depth_unit_scale_factor`` (nerfstudio's
default 1e-3, i.e. millimetres) to get metres.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose, opengl_to_opencv
from ..scene import Frame, Scene
from ._common import IMAGE_EXTS, image_size, require

NAME = "nerfstudio"
LAYOUT = "transforms.json (nerfstudio / instant-ngp)"


def detect(root: Path) -> bool:
    return (root / "transforms.json").is_file()


def _resolve(root: Path, rel: str) -> Path:
    p = (root / rel).resolve()
    if not p.suffix:  # Blender-synthetic style paths omit the extension
        for ext in IMAGE_EXTS:
            if p.with_suffix(ext).exists():
                return p.with_suffix(ext)
    return p


def _intrinsics(meta: dict, frame: dict, first_image: Path) -> Intrinsics:
    def get(k):
        return frame.get(k, meta.get(k))

    w, h = get("w"), get("h")
    if w is None or h is None:
        w, h = image_size(first_image)
    w, h = int(w), int(h)
    fx, fy = get("fl_x"), get("fl_y")
    if fx is None:
        ax = get("camera_angle_x")
        if ax is None:
            raise DataError("transforms.json has neither fl_x nor camera_angle_x; add the focal length in pixels as fl_x")
        fx = 0.5 * w / math.tan(float(ax) / 2)
    if fy is None:
        ay = get("camera_angle_y")
        fy = 0.5 * h / math.tan(float(ay) / 2) if ay is not None else fx
    cx = float(get("cx")) if get("cx") is not None else w / 2
    cy = float(get("cy")) if get("cy") is not None else h / 2
    # Corner-origin principal point (pixel centres at +0.5) → OpenCV centre-origin.
    return Intrinsics(float(fx), float(fy), cx - 0.5, cy - 0.5, w, h)


def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read a transforms.json scene.

    Raises:
        DataError: unreadable JSON, no frames, missing keys or files.
    """
    path = require(root / "transforms.json", "nerfstudio", root)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"'{path}' is not valid JSON ({exc})") from exc
    frames_meta = meta.get("frames")
    if not frames_meta:
        raise DataError(f"'{path}' lists no frames; expected a non-empty 'frames' array")
    factor = float(meta.get("depth_unit_scale_factor", 1e-3))
    scale = depth_scale if depth_scale is not None else 1.0 / factor
    frames: list[Frame] = []
    for i, fm in enumerate(frames_meta):
        if "file_path" not in fm or "transform_matrix" not in fm:
            raise DataError(f"'{path}' frame {i} lacks 'file_path' or 'transform_matrix'")
        rgb = _resolve(root, fm["file_path"])
        intr = _intrinsics(meta, fm, rgb)
        c2w = opengl_to_opencv(check_pose(np.asarray(fm["transform_matrix"], dtype=np.float64), f"{path} frame {i}"))
        depth = _resolve(root, fm["depth_file_path"]) if fm.get("depth_file_path") else None
        frames.append(Frame(Path(fm["file_path"]).stem, intr, c2w, rgb_path=rgb, depth_path=depth, depth_scale=scale))
    return Scene(root, NAME, frames)
