"""The images of an edits answer: their background (the input's alpha kept outside the hole) and their file format
(PNG, WebP or JPEG with ``output_compression``).

PNG goes through :mod:`.png` (lossless, fast). WebP at compression 100 is lossless too; below it, and JPEG
always, are lossy (``output_compression`` is the encoder's quality, 0-100, as OpenAI's API takes it).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .png import png_bytes

__all__ = ["FORMATS", "MEDIA_TYPES", "encode", "with_background"]

FORMATS = ("png", "webp", "jpeg")
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


def encode(image: Image.Image, fmt: str, compression: int = 100) -> bytes:
    """``image`` as the bytes of a ``fmt`` file; ``compression`` (0-100) is WebP's and JPEG's quality."""
    if fmt == "png":
        return png_bytes(image)
    buf = io.BytesIO()
    if fmt == "webp":
        if compression >= 100:
            image.save(buf, format="WEBP", lossless=True, quality=100, method=1, exact=True)
        else:
            image.save(buf, format="WEBP", quality=compression, method=4)
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=compression)
    return buf.getvalue()


def with_background(result: Image.Image, loaded: Image.Image, original: np.ndarray | None,
                    hole: np.ndarray) -> Image.Image:
    """``result`` (RGB) with the input's alpha: the hole opaque, every pixel the edit left as it was loaded taken
    from the input file as it was (``original``, RGBA; its colour under partial alpha included), so pixels outside
    the feathered hole are byte-equal to the input. Without an alpha channel (``original`` is ``None``), opaque."""
    rgb = np.asarray(result.convert("RGB"))
    if original is None:
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    out = np.dstack([rgb, original[..., 3]])
    same = (rgb == np.asarray(loaded)).all(axis=-1) & ~hole
    out[same] = original[same]
    out[hole, 3] = 255
    return Image.fromarray(out, "RGBA")
