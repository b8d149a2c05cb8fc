"""Frames and scenes in the internal convention (OpenCV camera, camera-to-world, metres).

A :class:`Frame` points at its files (or holds arrays) and loads them on demand, so a scene of
thousands of frames costs little memory until it is used. Depth is float32 metres with **0 meaning
invalid** (missing sensor readings are never points at zero distance).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from .cameras import Intrinsics

__all__ = ["MAX_PLAUSIBLE_DEPTH_M", "MIN_PLAUSIBLE_DEPTH_M", "Frame", "Scene", "UnreadableFrameError", "read_depth", "read_rgb"]

# A median depth outside this range almost always means a wrong depth scale (mm read as m, or m as mm).
MAX_PLAUSIBLE_DEPTH_M = 500.0
MIN_PLAUSIBLE_DEPTH_M = 0.01


class UnreadableFrameError(DataError):
    """A frame's image or depth file is missing or cannot be decoded (the pipeline skips and counts these)."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB.

    Raises:
        DataError: missing or unreadable file.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as exc:
        raise UnreadableFrameError(f"image '{p}' does not exist") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableFrameError(f"image '{p}' is unreadable ({exc})") from exc


def read_depth(path: str | Path, depth_scale: float) -> np.ndarray:
    """Read a depth map as float32 metres, 0 = invalid.

    Args:
        path: 16-bit PNG/TIFF (raw units), ``.npy`` (float, raw units), or COLMAP dense ``.bin``.
        depth_scale: raw units per metre (TUM 5000, Replica 6553.5, ScanNet/Redwood 1000, 1 for metres).

    Raises:
        DataError: missing, unreadable, or not a single-channel map.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise UnreadableFrameError(f"depth map '{p}' does not exist")
    try:
        if p.suffix == ".npy":
            raw = _load_npy(p)
        elif p.suffix == ".bin":
            raw = _read_colmap_dense(p)
        else:
            with Image.open(p) as im:
                raw = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableFrameError(f"depth map '{p}' is unreadable ({exc})") from exc
    raw = np.squeeze(raw)
    if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise UnreadableFrameError(f"depth map '{p}' holds {raw.dtype} values, not real numbers; save float or "
                                   "16-bit depth")
    if raw.ndim != 2:
        raise DataError(f"depth map '{p}' has shape {raw.shape}; expected a single-channel HxW map (16-bit PNG or float .npy)")
    depth = raw.astype(np.float32) / np.float32(depth_scale)
    # Invalid readings: 0 (sensor dropout), negative (stereo failure), nan/inf.
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def _load_npy(p: Path) -> np.ndarray:
    """``np.load`` without pickles, whose refusal of a file without the ``.npy`` header (text, a pickle) is our
    own line: numpy's advice to load it unsafely never reaches the user (as ``prefpaint_sdk.files.load_npy``)."""
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):  # read_depth names the file around this
            raise ValueError("not a NumPy array file: no .npy header (text, or a pickle, which is never loaded); "
                             "save it with numpy.save") from None
        raise
    except EOFError as exc:  # an empty or cut file
        raise ValueError(f"truncated .npy file: {exc}") from None


def _read_colmap_dense(path: Path) -> np.ndarray:
    """COLMAP ``stereo/depth_maps/*.bin``: ASCII "w&h&c&" header, then float32 in column-major order."""
    with open(path, "rb") as f:
        header = b""
        while header.count(b"&") < 3:
            ch = f.read(1)
            if not ch:
                raise ValueError("truncated COLMAP dense header")
            header += ch
        w, h, c = (int(v) for v in header.split(b"&")[:3])
        data = np.fromfile(f, np.float32)
    if data.size != w * h * c:
        raise ValueError(f"COLMAP dense map holds {data.size} values, header says {w}x{h}x{c}")
    return np.transpose(data.reshape((w, h, c), order="F"), (1, 0, 2)).squeeze()


@dataclass
class Frame:
    """One posed view: an RGB image, optional depth, intrinsics and a camera-to-world pose.

    Either the ``*_path`` fields or the array fields are set. ``rgb_resize`` makes :meth:`load_rgb`
    resample the colour image to the intrinsics' size (ScanNet ships colour at 1296x968 and depth at
    640x480; we work at depth resolution with the depth intrinsics). ``sparse_depth`` holds sparse
    (u, v, z) measurements for frames without a depth map (COLMAP's points), used to give a monocular
    prediction metric scale.
    """

    name: str
    intrinsics: Intrinsics
    c2w: np.ndarray
    rgb_path: Path | None = None
    depth_path: Path | None = None
    depth_scale: float = 1000.0
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    rgb_resize: bool = False
    sparse_depth: np.ndarray | None = None  # (N, 3) rows of (u, v, z): e.g. COLMAP's observed sparse points

    @property
    def has_depth(self) -> bool:
        return self.depth is not None or self.depth_path is not None

    def load_rgb(self) -> np.ndarray:
        """HxWx3 uint8 at the intrinsics' size.

        Raises:
            DataError: unreadable file, or a size that does not match the intrinsics.
        """
        img = self.rgb if self.rgb is not None else read_rgb(self.rgb_path)
        w, h = self.intrinsics.size
        if img.shape[:2] != (h, w):
            if not self.rgb_resize:
                raise DataError(
                    f"frame '{self.name}': image is {img.shape[1]}x{img.shape[0]} but the camera intrinsics are {w}x{h}; "
                    "check the intrinsics file belongs to these images"
                )
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))
        return img

    def load_depth(self) -> np.ndarray | None:
        """HxW float32 metres (0 = invalid) at the intrinsics' size, or None when the frame has no depth.

        Raises:
            DataError: unreadable file, or a size that does not match the image/intrinsics.
        """
        if self.depth is not None:
            d = self.depth.astype(np.float32)
        elif self.depth_path is not None:
            d = read_depth(self.depth_path, self.depth_scale)
        else:
            return None
        w, h = self.intrinsics.size
        if d.shape != (h, w):
            raise DataError(
                f"frame '{self.name}': depth map {self.depth_path or '(array)'} is {d.shape[1]}x{d.shape[0]} but the image "
                f"and camera are {w}x{h}; image and depth must be registered at the same size"
            )
        return d

    def with_arrays(self, rgb: np.ndarray, depth: np.ndarray | None) -> Frame:
        """A copy holding the given arrays in memory (used for completed novel views)."""
        return replace(self, rgb=rgb, depth=depth, rgb_path=None, depth_path=None, rgb_resize=False, sparse_depth=None)


@dataclass
class Scene:
    """A loaded scene: frames in the internal convention plus where they came from.

    Attributes:
        root: the folder (or image file) the scene was read from.
        format: the format name (see :data:`prefpaint_apps.recon3d.FORMATS`).
        frames: frames sorted in capture order.
        skipped: frames dropped while loading (e.g. invalid poses), with the reason.
        notes: human-readable remarks made while loading (assumed intrinsics, ignored distortion).
    """

    root: Path
    format: str
    frames: list[Frame]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_depth(self) -> bool:
        return all(f.has_depth for f in self.frames)

    def subsample(self, max_frames: int | None) -> Scene:
        """Keep at most ``max_frames`` frames, evenly spaced over the sequence (first and last kept)."""
        if max_frames is None or len(self.frames) <= max_frames:
            return self
        if max_frames < 1:
            raise DataError(f"max_frames={max_frames} must be at least 1")
        idx = np.unique(np.round(np.linspace(0, len(self.frames) - 1, max_frames)).astype(int))
        return replace(self, frames=[self.frames[i] for i in idx])
