"""The pixel limit: one process-wide cap on the pixels of any image the toolkit reads.

Files are checked from their headers alone (nothing is decoded), so a decompression bomb is refused in
microseconds; arrays, tensors and PIL images are checked before any conversion copies them. Pillow's own
bomb limit follows ours, and its error is caught and replaced by ours, so it never answers first.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import Arg, ConfigError, ImageTooLargeError, InvalidInputError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "check_image_file", "check_pixels", "get_max_pixels", "set_max_pixels"]


DEFAULT_MAX_PIXELS = 200_000_000
"""Default pixel limit: 200 megapixels (about 600 MB as RGB uint8).

A valid 12000x12000 photo (144 MP) passes; a decompression bomb that claims 100000x100000 (10 gigapixels)
is refused from its header before a byte of pixel data is decoded. Change it with :func:`set_max_pixels`,
the ``max_pixels=`` argument of the loaders, ``--max-pixels`` on the CLI, or the environment variable
``PREFPAINT_MAX_PIXELS``."""

MAX_PIXELS_ENV = "PREFPAINT_MAX_PIXELS"

_max_pixels: int | None = None  # set by set_max_pixels; None = the environment variable, else the default
_pil_lock = threading.Lock()


def _as_limit(value: Any, where: str) -> int:
    """``value`` as a pixel count: a whole number > 0 ("200_000_000" and "2e8" are accepted as text)."""
    n: Any = value
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            n = int(text)
        except ValueError:
            try:
                n = float(text)
            except ValueError:
                n = None
    if isinstance(n, float) and math.isfinite(n) and n.is_integer():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(Arg(where) if where.isidentifier() else where,
                          f" must be a whole number of pixels > 0, got {value!r}", param="max_pixels")
    return int(n)


def get_max_pixels() -> int:
    """The pixel limit in force: :func:`set_max_pixels`, else ``$PREFPAINT_MAX_PIXELS``, else the default.

    Raises:
        ConfigError: ``PREFPAINT_MAX_PIXELS`` is set but is not a whole number > 0.
    """
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if env:
        return _as_limit(env, f"environment variable {MAX_PIXELS_ENV}")
    return DEFAULT_MAX_PIXELS


def set_max_pixels(n: int | None) -> int:
    """Set the process-wide pixel limit; ``None`` restores ``$PREFPAINT_MAX_PIXELS`` or the default.

    Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) follows, so code that opens
    images with Pillow directly is held to the same limit. Returns the limit now in force.

    Raises:
        ConfigError: ``n`` is not a whole number > 0.
    """
    global _max_pixels
    _max_pixels = None if n is None else _as_limit(n, "max_pixels")
    _sync_pillow()
    return get_max_pixels()


def _limit(max_pixels: int | None) -> int:
    return get_max_pixels() if max_pixels is None else _as_limit(max_pixels, "max_pixels")


def _too_large(what: str, name: str, size: str, limit: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"{what} {name} is {size}, over the limit of {limit:,} pixels; if you trust the file, "
                              "raise ", Arg("max_pixels"), f" or {MAX_PIXELS_ENV}")


def check_pixels(width: int, height: int, *, what: str = "image", name: str = "", max_pixels: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when ``width * height`` passes the pixel limit."""
    limit = _limit(max_pixels)
    if int(width) * int(height) > limit:
        size = f"{width}x{height} ({int(width) * int(height):,} pixels)"
        raise _too_large(what, name or "", size, limit)


def _reopenable(p: Path | bytes):
    """What ``Image.open`` reads: a path, or a fresh in-memory file over an encoded image's bytes."""
    return io.BytesIO(p) if isinstance(p, (bytes, bytearray, memoryview)) else p


def _named(p: Path | bytes) -> str:
    """How a message names a source: the user's path in quotes, or the size of in-memory bytes (an upload)."""
    return f"'{p}'" if not isinstance(p, (bytes, bytearray, memoryview)) else f"({len(p):,} bytes)"


def _bomb_size(p: Path | bytes, exc: BaseException) -> str:
    """The size of a file Pillow refused as a bomb, read again from its header alone (nothing decoded)."""
    try:
        with _pil_lock:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(_reopenable(p)) as im:
                    w, h = im.size
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        return f"{w}x{h} ({w * h:,} pixels)"
    except Exception:  # noqa: BLE001 - fall back to Pillow's count
        m = re.search(r"\((\d+) pixels\)", str(exc))
        return f"{int(m.group(1)):,} pixels" if m else "too many pixels"


def _open_lazy(p: Path | bytes, what: str, limit: int) -> Image.Image:
    """``Image.open`` (header only) with Pillow's bomb check replaced by ours. The caller closes it.

    ``p`` is a path, or the bytes of an encoded image file (an upload), read in memory."""
    src = _reopenable(p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is not None and pil_limit < limit:  # a larger limit for this call, or a changed env
                with _pil_lock:
                    Image.MAX_IMAGE_PIXELS = limit
                    try:
                        im = Image.open(src)
                    finally:
                        Image.MAX_IMAGE_PIXELS = pil_limit
            else:
                im = Image.open(src)
    except Image.DecompressionBombError as exc:
        raise _too_large(what, _named(p), _bomb_size(p, exc), limit) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        detail = re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(exc))  # in-memory bytes: no repr
        raise InvalidInputError(
            f"{what} {_named(p)} is not a readable image ({exc.__class__.__name__}: {detail}); re-export it as PNG or JPEG"
        ) from None
    w, h = im.size
    if w * h > limit:
        im.close()
        raise _too_large(what, _named(p), f"{w}x{h} ({w * h:,} pixels)", limit)
    return im


def _check_path(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{what} '{p}' is a folder, not a file; pass an image file (or use batch mode with folders for both)")
    if not p.exists():
        raise InvalidInputError(f"{what} file '{p}' does not exist; check the path")
    return p


def check_image_file(path: str | os.PathLike | bytes, *, what: str = "image", max_pixels: int | None = None,
                     decode: bool = False) -> tuple[int, int]:
    """Read only the header of an image file and return its size ``(width, height)``.

    Cheap (no pixel data is decoded), so commands call it on every input before a model loads. ``path``
    may also be the bytes of an encoded image file (an HTTP upload): they are read in memory, never
    written to a file. With ``decode`` the pixels are decoded too (once the header passed the limit), so a
    truncated file is refused before a model loads: worth it for the one or two inputs of a single-image
    command.

    Raises:
        InvalidInputError: the file is missing, a folder, or not an image Pillow can identify (with ``decode``:
            or truncated/corrupt pixel data).
        ImageTooLargeError: its pixel count passes the limit (:func:`get_max_pixels` or ``max_pixels``).
    """
    p = bytes(path) if isinstance(path, (bytes, bytearray, memoryview)) else _check_path(path, what)
    im = _open_lazy(p, what, _limit(max_pixels))
    try:
        w, h = im.size
        if decode:
            try:
                im.load()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise InvalidInputError(f"{what} {_named(p)} is truncated or corrupt ({exc.__class__.__name__}: {exc}); "
                                        "re-export it as PNG or JPEG") from None
    finally:
        im.close()
    if w == 0 or h == 0:
        raise InvalidInputError(f"{what} {_named(p)} has zero size ({w}x{h})")
    return w, h


def _sync_pillow() -> None:
    """Pillow decides nothing before us: its own bomb limit follows ours (and _open_lazy catches it)."""
    try:
        Image.MAX_IMAGE_PIXELS = get_max_pixels()
    except ConfigError:  # a bad $PREFPAINT_MAX_PIXELS is reported when an image is loaded, not on import
        Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


_sync_pillow()

