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


# camera_model values that are a pinhole once distortion is zero (nerfstudio's CAMERA_MODEL_TO_TYPE keys)
_PINHOLE_MODELS = {"OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"}
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _distortion(meta: dict, frame: dict) -> dict[str, float]:
    """The non-zero distortion coefficients of a frame (per-frame keys override the top level)."""
    out = {}
    for k in DISTORTION_KEYS:
        v = frame.get(k, meta.get(k))
        if v is not None and float(v) != 0.0:
            out[k] = float(v)
    return out


def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read a transforms.json scene.

    Every camera is read as a pinhole: a ``camera_model`` other than a pinhole-type one (fisheye,
    equirectangular, ...) and non-zero distortion (``k1``-``k4``, ``p1``, ``p2``) are ignored and said so in
    the scene notes, as the COLMAP reader does; undistort the images first for exact geometry.

    Raises:
        DataError: unreadable JSON, no frames, missing or malformed keys, missing files.
    """
    path = require(root / "transforms.json", "nerfstudio", root)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"'{path}' is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise DataError(f"'{path}' holds a JSON {type(meta).__name__}; expected an object with a 'frames' array")
    frames_meta = meta.get("frames")
    if not frames_meta or not isinstance(frames_meta, list):
        raise DataError(f"'{path}' lists no frames; expected a non-empty 'frames' array")
    try:
        factor = float(meta.get("depth_unit_scale_factor", 1e-3))
    except (TypeError, ValueError) as exc:
        raise DataError(f"'{path}': depth_unit_scale_factor {meta.get('depth_unit_scale_factor')!r} is not a number") from exc
    if not (np.isfinite(factor) and factor > 0):
        raise DataError(f"'{path}': depth_unit_scale_factor must be a positive number (metres per raw unit), got {factor!r}")
    scale = depth_scale if depth_scale is not None else 1.0 / factor
    notes: list[str] = []
    model = meta.get("camera_model", "OPENCV")
    if model not in _PINHOLE_MODELS:
        notes.append(f"{path}: camera_model {model} is read as a pinhole (its projection is ignored); "
                     "undistort the images to a pinhole camera for exact geometry")
    frames: list[Frame] = []
    distorted: list[tuple[int, dict]] = []
    for i, fm in enumerate(frames_meta):
        if not isinstance(fm, dict) or "file_path" not in fm or "transform_matrix" not in fm:
            raise DataError(f"'{path}' frame {i} lacks 'file_path' or 'transform_matrix'")
        try:
            rgb = _resolve(root, str(fm["file_path"]))
            intr = _intrinsics(meta, fm, rgb)
            dist = _distortion(meta, fm)
            m = np.asarray(fm["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"'{path}' frame {i} has a malformed value ({exc})") from exc
        if m.shape == (3, 4):  # nerfstudio also accepts the top 3 rows
            m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
        c2w = opengl_to_opencv(check_pose(m, f"{path} frame {i}"))
        if dist:
            distorted.append((i, dist))
        depth = _resolve(root, fm["depth_file_path"]) if fm.get("depth_file_path") else None
        frames.append(Frame(Path(fm["file_path"]).stem, intr, c2w, rgb_path=rgb, depth_path=depth, depth_scale=scale))
    if distorted:
        first_i, first = distorted[0]
        coeffs = ", ".join(f"{k}={v:g}" for k, v in first.items())
        notes.append(f"{path}: lens distortion ({coeffs}{' on frame ' + str(first_i) if len(distorted) < len(frames) else ''}; "
                     f"{len(distorted)} of {len(frames)} frames) ignored; undistort the images for exact geometry")
    return Scene(root, NAME, frames, notes=notes)
