"""Seeded mask generators: warping holes, outpainting squares and strips, random brush strokes.

Every generator returns a bool HxW array (True = fill, the toolkit's convention) and is deterministic
for a given seed or ``numpy.random.Generator`` state. The kinds follow the PrefPaint data:

* warping holes: pixels left empty when the image is re-rendered from a moved camera using its depth
  map (disocclusions and the uncovered border). The camera moves on the paper's 3x3 grid, yaw in
  {-0.3, 0, 0.3} and pitch in {-0.15, 0, 0.15} radians, orbiting the scene's median depth;
* outpainting: a kept square covering 15-25% of the image, or a kept full-height strip 35-40% of the
  width; everything else is filled;
* random brush strokes, the usual free-form inpainting masks.

This module imports only :mod:`prefpaint_sdk.imaging` from the SDK, so evaluation and the apps can use it.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
from PIL import Image, ImageDraw

from .errors import InvalidInputError
from .imaging import check_pixels

__all__ = [
    "MASK_KINDS",
    "WARP_GRID",
    "warp_hole_mask",
    "outpaint_square_mask",
    "outpaint_strip_mask",
    "stroke_mask",
    "generate_mask",
]

RngLike = Union[np.random.Generator, int, None]

WARP_GRID = [(y, p) for y in (-0.3, 0.0, 0.3) for p in (-0.15, 0.0, 0.15)]
"""The paper's camera moves as (yaw, pitch) radians; (0, 0) leaves no hole and is skipped when drawing."""

MASK_KINDS = ("warp", "outpaint_square", "outpaint_strip", "stroke")


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_size(h: int, w: int) -> None:
    if int(h) < 4 or int(w) < 4:
        raise InvalidInputError(f"mask size {w}x{h} is too small; use at least 4x4 pixels")
    check_pixels(int(w), int(h), what="mask", name="to generate")  # the pixel limit, before allocating


def warp_hole_mask(depth: np.ndarray, yaw: float, pitch: float, *, fov_deg: float = 60.0,
                   pivot: float | None = None) -> np.ndarray:
    """Holes left by forward-warping an image with its depth map to a camera turned by (yaw, pitch).

    The camera orbits a pivot on the optical axis (the median depth by default), so the move has
    parallax and opens disocclusions behind depth edges as well as an uncovered border. Each source
    pixel splats onto the 2x2 target pixels around its projection (closing sub-pixel stretching
    cracks); target pixels that receive nothing are holes.

    Args:
        depth: HxW positive depths (any unit; only ratios matter).
        yaw / pitch: camera rotation in radians about the vertical / horizontal axis.
        fov_deg: horizontal field of view of the pinhole camera.
        pivot: orbit centre depth (default: median depth).

    Returns:
        bool HxW, True where the warped view has no source pixel.

    Raises:
        InvalidInputError: depth is not 2-D, or has non-positive / non-finite values.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise InvalidInputError(f"depth must be an HxW array, got shape {d.shape}")
    _check_size(*d.shape)
    if not np.all(np.isfinite(d)) or d.min() <= 0:
        raise InvalidInputError("depth must be finite and > 0 everywhere; fill invalid pixels before warping")
    h, w = d.shape
    f = 0.5 * w / math.tan(math.radians(fov_deg) / 2)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([(u - cx) / f * d, (v - cy) / f * d, d], -1).reshape(-1, 3)
    zp = float(np.median(d)) if pivot is None else float(pivot)
    cyaw, syaw, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    ry = np.array([[cyaw, 0, syaw], [0, 1, 0], [-syaw, 0, cyaw]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    c = np.array([0.0, 0.0, zp])
    q = (pts - c) @ (ry @ rx).T + c
    front = q[:, 2] > 1e-6
    q = q[front]
    pu = f * q[:, 0] / q[:, 2] + cx
    pv = f * q[:, 1] / q[:, 2] + cy
    hit = np.zeros((h, w), dtype=bool)
    u0, v0 = np.floor(pu).astype(np.int64), np.floor(pv).astype(np.int64)
    for du in (0, 1):
        for dv in (0, 1):
            uu, vv = u0 + du, v0 + dv
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            hit[vv[ok], uu[ok]] = True
    return ~hit


def outpaint_square_mask(h: int, w: int, rng: RngLike = None, *, kept: tuple[float, float] = (0.15, 0.25),
                         center: bool = True) -> np.ndarray:
    """Outpainting mask that keeps one square covering a fraction in ``kept`` of the image.

    Args:
        h / w: mask size. rng: seed or generator. kept: range of the kept area fraction (15-25%).
        center: centre the square (the release's example); otherwise place it uniformly at random.

    Returns:
        bool HxW, True (fill) outside the square.
    """
    _check_size(h, w)
    g = _rng(rng)
    frac = g.uniform(*kept)
    side = int(round(math.sqrt(frac * h * w)))
    side = max(1, min(side, h, w))
    if center:
        y0, x0 = (h - side) // 2, (w - side) // 2
    else:
        y0, x0 = int(g.integers(0, h - side + 1)), int(g.integers(0, w - side + 1))
    m = np.ones((h, w), dtype=bool)
    m[y0:y0 + side, x0:x0 + side] = False
    return m


def outpaint_strip_mask(h: int, w: int, rng: RngLike = None, *, kept: tuple[float, float] = (0.35, 0.40),
                        position: str = "center") -> np.ndarray:
    """Outpainting mask that keeps one full-height vertical strip of ``kept`` of the width (35-40%).

    Args:
        position: "center", "left", "right" or "random" placement of the kept strip.

    Returns:
        bool HxW, True (fill) outside the strip.
    """
    _check_size(h, w)
    g = _rng(rng)
    sw = max(1, min(w, int(round(g.uniform(*kept) * w))))
    if position == "center":
        x0 = (w - sw) // 2
    elif position == "left":
        x0 = 0
    elif position == "right":
        x0 = w - sw
    elif position == "random":
        x0 = int(g.integers(0, w - sw + 1))
    else:
        raise InvalidInputError(f"strip position '{position}' is unknown; use center, left, right or random")
    m = np.ones((h, w), dtype=bool)
    m[:, x0:x0 + sw] = False
    return m


def stroke_mask(h: int, w: int, rng: RngLike = None, *, strokes: tuple[int, int] = (1, 4),
                vertices: tuple[int, int] = (4, 10), width_frac: tuple[float, float] = (0.04, 0.10),
                max_coverage: float = 0.6) -> np.ndarray:
    """Free-form brush strokes: random-walk polylines with round joints.

    Args:
        strokes: range of the number of strokes. vertices: range of vertices per stroke.
        width_frac: brush width as a fraction of the shorter side.
        max_coverage: strokes stop being added once this share of the image is covered.

    Returns:
        bool HxW, True on the strokes (never empty).
    """
    _check_size(h, w)
    g = _rng(rng)
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    short = min(h, w)
    for _ in range(int(g.integers(strokes[0], strokes[1] + 1))):
        width = max(1, int(round(g.uniform(*width_frac) * short)))
        x, y = g.uniform(0, w), g.uniform(0, h)
        pts = [(x, y)]
        angle = g.uniform(0, 2 * math.pi)
        for _ in range(int(g.integers(vertices[0], vertices[1] + 1))):
            angle += g.uniform(-math.pi / 3, math.pi / 3)
            length = g.uniform(0.05, 0.2) * short
            x = float(np.clip(x + length * math.cos(angle), 0, w - 1))
            y = float(np.clip(y + length * math.sin(angle), 0, h - 1))
            pts.append((x, y))
        draw.line(pts, fill=255, width=width)
        r = width / 2
        for px, py in pts:
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
        if (np.asarray(im) > 0).mean() >= max_coverage:
            break
    return np.asarray(im) > 0


def generate_mask(kind: str, image_size, seed: int | None = None, depth: np.ndarray | None = None) -> np.ndarray:
    """One mask of ``kind`` for an image of ``image_size``, deterministic for ``seed``.

    Args:
        kind: "warp" (needs ``depth``; a random non-identity move of the 3x3 grid), "outpaint_square",
            "outpaint_strip", "stroke", or "random" (any of them; "warp" only when ``depth`` is given).
        image_size: (width, height) or an int for a square.
        seed: the seed; the same seed gives the same mask.
        depth: HxW depth map for "warp".

    Returns:
        bool HxW mask, True = fill.

    Raises:
        InvalidInputError: an unknown kind, or "warp" without a depth map of the image's size.
    """
    w, h = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    _check_size(h, w)
    g = np.random.default_rng(seed)
    if kind == "random":
        kinds = [k for k in MASK_KINDS if k != "warp" or depth is not None]
        kind = kinds[int(g.integers(0, len(kinds)))]
    if kind == "warp":
        if depth is None:
            raise InvalidInputError("mask kind 'warp' needs a depth map; pass depth=HxW array or use another kind")
        if np.shape(depth) != (h, w):
            raise InvalidInputError(f"depth is {np.shape(depth)[1]}x{np.shape(depth)[0]} but the image is {w}x{h}; resize the depth map")
        moves = [m for m in WARP_GRID if m != (0.0, 0.0)]
        yaw, pitch = moves[int(g.integers(0, len(moves)))]
        return warp_hole_mask(depth, yaw, pitch)
    if kind == "outpaint_square":
        return outpaint_square_mask(h, w, g)
    if kind == "outpaint_strip":
        return outpaint_strip_mask(h, w, g)
    if kind == "stroke":
        return stroke_mask(h, w, g)
    raise InvalidInputError(f"mask kind '{kind}' is unknown; use one of {', '.join(MASK_KINDS)} or random")
