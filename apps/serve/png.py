"""A fast lossless PNG writer for the server's answers.

Every answer of ``prefpaint serve`` carries its images as PNG, and on a small model encoding them was the
largest cost the server adds to a call (``benchmarks/bench_serve.py``): Pillow picks a filter per row by
trying all five, which took 50-110 ms for a 512x512 RGB image on a loaded 2-core machine even at
``compress_level=1``. Here every row gets the "Sub" filter (one vectorised numpy subtraction) and the
filtered bytes are deflated with zlib's Huffman-only strategy (no match search: the filter already turned a
photo's smooth areas into small values). Same image, a quarter of the time, and a slightly smaller file
(figures in ``benchmarks/RESULTS.md``). Any PNG reader decodes it; tests compare the pixels with Pillow's
reading of it. Modes other than 8-bit L, RGB and RGBA go through Pillow.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

__all__ = ["png_bytes"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}  # PIL mode -> (PNG colour type, channels)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def png_bytes(image) -> bytes:
    """``image`` (a PIL image) as the bytes of a lossless PNG file."""
    kind = _COLOUR_TYPE.get(image.mode)
    if kind is None or image.width == 0 or image.height == 0:
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    colour_type, c = kind
    w, h = image.size
    rows = np.asarray(image).reshape(h, w * c)
    # Each row: the filter byte 1 ("Sub"), then its first pixel, then each byte minus the byte one pixel
    # to its left (mod 256: uint8 arithmetic wraps, as the PNG specification's filter does).
    raw = np.empty((h, w * c + 1), np.uint8)
    raw[:, 0] = 1
    raw[:, 1:1 + c] = rows[:, :c]
    np.subtract(rows[:, c:], rows[:, :-c], out=raw[:, 1 + c:])
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    idat = z.compress(raw) + z.flush()
    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
