"""Helpers shared by the scene-format readers and writers: file checks, listing, natural sort, I/O."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
INTRINSIC_JSON_NAMES = ("camera_intrinsic.json", "intrinsic.json", "intrinsics.json")


def natural_key(p: Path | str) -> list:
    """Sort key so that frame2 < frame10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(p).name)]


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` in natural order (empty when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")), key=natural_key)


def require(path: Path, fmt: str, root: Path, hint: str = "") -> Path:
    """Return ``path`` or raise a :class:`DataError` naming the missing piece of the layout."""
    if not path.exists():
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        raise DataError(f"{fmt} scene at '{root}' is missing '{rel}'{'; ' + hint if hint else ''}")
    return path


def read_open3d_intrinsic(path: Path) -> Intrinsics:
    """An Open3D ``PinholeCameraIntrinsic`` JSON: width, height and a column-major 3x3 ``intrinsic_matrix``.

    Raises:
        DataError: unreadable JSON or missing keys.
    """
    try:
        data = json.loads(Path(path).read_text())
        m = np.asarray(data["intrinsic_matrix"], dtype=np.float64).reshape(3, 3, order="F")
        return Intrinsics(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), int(data["width"]), int(data["height"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            f"intrinsic file '{path}' is not an Open3D PinholeCameraIntrinsic JSON "
            f"(needs width, height, intrinsic_matrix): {exc}"
        ) from exc


def find_intrinsic_json(*folders: Path) -> Path | None:
    for folder in folders:
        for name in INTRINSIC_JSON_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image without decoding it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"image '{path}' is unreadable ({exc})") from exc


def read_matrix_txt(path: Path, what: str) -> np.ndarray:
    """A whitespace-separated 4x4 matrix file (ScanNet pose/intrinsic)."""
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{what} '{path}' is unreadable ({exc})") from exc
    if m.shape != (4, 4):
        raise DataError(f"{what} '{path}' holds shape {m.shape}; expected a 4x4 matrix")
    return m
