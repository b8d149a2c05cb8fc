"""A single image: one RGB file (or a folder holding exactly one image), no depth, no pose.

Depth comes later from a monocular model (``depth.py``); the camera is synthetic: identity pose and a
centred pinhole with the given horizontal field of view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics
from ..scene import Frame, Scene, read_rgb
from ._common import IMAGE_EXTS, list_images

NAME = "single"
LAYOUT = "a single image file (or a folder with exactly one image)"


def _image(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() in IMAGE_EXTS:
        return root
    imgs = list_images(root) if root.is_dir() else []
    return imgs[0] if len(imgs) == 1 else None


def detect(root: Path) -> bool:
    return _image(root) is not None


def read(root: Path, fov: float = 60.0) -> Scene:
    """Read the single image and give it a synthetic camera.

    Raises:
        DataError: no image, or several images in the folder.
    """
    path = _image(root)
    if path is None:
        n = len(list_images(root)) if root.is_dir() else 0
        raise DataError(f"'{root}' is not a single image: found {n} images; pass one image file, or a scene folder")
    rgb = read_rgb(path)
    h, w = rgb.shape[:2]
    return Scene(root, NAME, [Frame(path.stem, Intrinsics.from_fov(w, h, fov), np.eye(4), rgb_path=path, rgb=rgb)],
                 notes=[f"synthetic camera: horizontal fov {fov} deg; depth from a monocular model"])
