"""Scene formats: detection and reading into the internal convention.

Each format module exposes ``NAME``, ``LAYOUT`` (what a user should see in error messages),
``detect(root) -> bool`` and ``read(root, ...) -> Scene``. Writers are testing helpers, in
:mod:`prefpaint_apps.recon3d.testing`.
"""

from __future__ import annotations

from pathlib import Path

from prefpaint_sdk import DataError, InvalidInputError
from prefpaint_sdk.utils import Arg, positive

from ..scene import Scene
from . import colmap, nerfstudio, redwood, replica, scannet, single, tum

__all__ = ["FORMATS", "detect_format", "load_scene"]

# Detection order matters: the most specific signatures first, the single image last.
FORMATS = {m.NAME: m for m in (nerfstudio, colmap, tum, replica, scannet, redwood, single)}


def _layouts() -> str:
    return "; ".join(f"{name}: {m.LAYOUT}" for name, m in FORMATS.items())


def detect_format(root: str | Path) -> str:
    """Name of the format whose signature files are in ``root``.

    Raises:
        DataError: the path does not exist, or no layout matches (the message lists those looked for).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"scene '{root}' does not exist")
    for name, mod in FORMATS.items():
        if (root.is_dir() or name == "single") and mod.detect(root):
            return name
    what = "is empty" if root.is_dir() and not any(root.iterdir()) else "matches no supported layout"
    raise DataError(f"scene folder '{root}' {what}. Looked for: {_layouts()}. Pass ", Arg("format"), " to force one")


def load_scene(root: str | Path, format: str = "auto", *, depth_scale: float | None = None, fov: float = 60.0,
               max_frames: int | None = None) -> Scene:
    """Load a scene folder in the internal convention (OpenCV camera, camera-to-world, metres).

    Args:
        root: the scene folder, or an image file for the single-image format.
        format: "auto" or one of :data:`FORMATS`.
        depth_scale: raw depth units per metre, overriding the format's default (TUM 5000, ...).
        fov: horizontal field of view in degrees for the single-image format's synthetic camera.
        max_frames: keep at most this many frames, evenly spaced.

    Returns:
        The :class:`Scene`; frames load their pixels lazily.

    Raises:
        DataError: unknown or unrecognised layout, missing pieces (named), malformed files.
        InvalidInputError: an unknown ``format`` name or a non-positive ``depth_scale``.
    """
    root = Path(root)
    if format == "auto":
        format = detect_format(root)
    elif format not in FORMATS:
        raise InvalidInputError(f"unknown scene format '{format}'; choose one of: auto, {', '.join(FORMATS)}")
    elif not root.exists():
        raise DataError(f"scene '{root}' does not exist")
    if depth_scale is not None:
        positive("depth_scale", depth_scale)  # raw depth units per metre, e.g. 1000 for mm
    mod = FORMATS[format]
    scene = mod.read(root, fov=fov) if format == "single" else mod.read(root, depth_scale=depth_scale)
    if not scene.frames:
        raise DataError(f"{format} scene at '{root}' holds no usable frames ({len(scene.skipped)} skipped)")
    return scene.subsample(max_frames)
