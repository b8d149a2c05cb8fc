"""Mask geometry and compositing: boxes, dilation, feathering, blending, all in exact row stripes.

Full-resolution maths here never makes a float copy of a whole image: a distance transform or a float
blend of a 12000x12000 image costs gigabytes (scipy's EDT holds an int32 index pair and a float64 distance
per pixel), while each answer only depends on pixels within the feather band. Each stripe is computed on
the rows and columns within reach of it, so every value equals the whole-image computation exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import InvalidInputError

__all__ = [
    "Box",
    "composite",
    "composite_box",
    "context_box",
    "dilate_mask",
    "feather_alpha",
    "feather_bbox",
    "mask_bbox",
    "masked_image",
    "working_size",
]


@dataclass(frozen=True)
class Box:
    """A pixel box ``[x0, x1) x [y0, y1)`` in image coordinates."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, the order ``PIL.Image.crop`` takes."""
        return (self.x0, self.y0, self.x1, self.y1)



# --------------------------------------------------------------------------------------------------
# Mask geometry

_STRIPE_BYTES = 48 * 2**20  # working memory budget of one stripe


def _stripe_rows(width: int, bytes_per_pixel: int, extra_rows: int = 0) -> int:
    return max(16, _STRIPE_BYTES // max(1, width * bytes_per_pixel) - extra_rows)


def _expand(bb: Box, by: int, height: int, width: int) -> Box:
    return Box(max(0, bb.x0 - by), max(0, bb.y0 - by), min(width, bb.x1 + by), min(height, bb.y1 + by))


def _distance_stripes(mask: np.ndarray, reach: float, region: Box):
    """Yield ``(y0, y1, d)``: float32 (array, or a scalar for a uniform stripe) Euclidean distance to the nearest ``True`` pixel of ``mask`` for
    rows ``y0:y1`` and columns ``region.x0:region.x1``, for stripes covering ``region``.

    ``d`` equals ``distance_transform_edt(~mask)`` exactly wherever that is <= ``reach``; elsewhere it is
    > ``reach`` (possibly ``inf``), which is all a dilation or a feather band needs.
    """
    from scipy.ndimage import distance_transform_edt

    H, W = mask.shape
    r = int(math.ceil(reach)) + 1
    cx0, cx1 = max(0, region.x0 - r), min(W, region.x1 + r)
    rows = _stripe_rows(cx1 - cx0, 24, 2 * r)
    for y0 in range(region.y0, region.y1, rows):
        y1 = min(region.y1, y0 + rows)
        ey0, ey1 = max(0, y0 - r), min(H, y1 + r)
        sub = mask[ey0:ey1, cx0:cx1]
        inner = (slice(y0 - ey0, y1 - ey0), slice(region.x0 - cx0, region.x1 - cx0))
        if sub[inner].all():  # all on the mask (a scalar broadcasts: no stripe-sized array)
            d = np.float32(0.0)
        elif not sub.any():  # nothing within reach
            d = np.float32(np.inf)
        else:
            d = distance_transform_edt(~sub)[inner].astype(np.float32)
        yield y0, y1, d


def _feather_reach(band: float) -> int:
    """How far (in whole pixels, along an axis) a feather band of ``band`` px reaches beyond the mask."""
    return max(0, int(math.ceil(band + 1.0)) - 1)


def _alpha_from_distance(d: np.ndarray, band: float) -> np.ndarray:
    return np.clip(1.0 - d / (band + 1.0), 0.0, 1.0)


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the fill region by ``pixels`` (Euclidean distance); 0 returns the mask unchanged.

    Computed in row stripes around the mask: memory is the output plus a stripe, not a full-image
    distance transform.
    """
    if pixels < 0:
        raise InvalidInputError(f"mask dilation must be >= 0 pixels, got {pixels}")
    bb = mask_bbox(mask)
    if pixels == 0 or bb is None:
        return mask
    H, W = mask.shape
    out = mask.copy()
    region = _expand(bb, int(math.floor(pixels)), H, W)
    for y0, y1, d in _distance_stripes(mask, pixels, region):
        out[y0:y1, region.x0:region.x1] = d <= pixels
    return out


def feather_alpha(mask: np.ndarray, band: float, box: Box | None = None) -> np.ndarray:
    """Blend weights for compositing: 1 on the mask, a linear ramp to 0 over ``band`` px outside it.

    Pixels farther than ``band`` from the mask get exactly 0, so compositing leaves them byte-identical.
    With ``box``, only that part of the image is computed (the same values as cropping the full result).
    """
    if band < 0:
        raise InvalidInputError(f"mask blur must be >= 0 pixels, got {band}")
    H, W = mask.shape
    return _alpha(mask, band, box or Box(0, 0, W, H), feather_bbox(mask, band))


def _alpha(mask: np.ndarray, band: float, box: Box, reach: Box | None) -> np.ndarray:
    """``feather_alpha(mask, band)[box]``, given ``reach = feather_bbox(mask, band)``."""
    alpha = mask[box.y0:box.y1, box.x0:box.x1].astype(np.float32)
    if band == 0 or reach is None:
        return alpha
    region = Box(max(box.x0, reach.x0), max(box.y0, reach.y0), min(box.x1, reach.x1), min(box.y1, reach.y1))
    if region.width <= 0 or region.height <= 0:
        return alpha
    for y0, y1, d in _distance_stripes(mask, band + 1.0, region):
        alpha[y0 - box.y0:y1 - box.y0, region.x0 - box.x0:region.x1 - box.x0] = _alpha_from_distance(d, band)
    return alpha


def feather_bbox(mask: np.ndarray, band: float) -> Box | None:
    """The tight box around ``feather_alpha(mask, band) > 0`` without computing it; ``None`` for an empty mask."""
    bb = mask_bbox(mask)
    if bb is None:
        return None
    if band <= 0:
        return bb
    return _expand(bb, _feather_reach(band), *mask.shape)


def mask_bbox(mask: np.ndarray) -> Box | None:
    """The tight box around the fill region, or ``None`` for an empty mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return None
    return Box(int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


def context_box(mask: np.ndarray | None, margin: int, min_side: int = 0, *, bbox: Box | None = None,
                shape: tuple[int, int] | None = None) -> Box:
    """A box around the mask with ``margin`` px of context, made square when the image allows.

    The side is ``max(bbox side + 2*margin, min_side)``, clipped to the image, and the box is shifted
    (never shrunk) to stay inside the image. A square box reaches the model at its trained aspect.
    Instead of ``mask``, pass the mask's ``bbox`` and the image ``shape`` (H, W) when you already know them.
    """
    if mask is not None:
        H, W = mask.shape
        bb = mask_bbox(mask)
    else:
        if shape is None:
            raise InvalidInputError("context_box needs a mask, or a bbox and the image shape")
        H, W = shape
        bb = bbox
    if bb is None:
        return Box(0, 0, W, H)
    side = max(bb.width, bb.height) + 2 * max(margin, 0)
    side = max(side, min_side)
    bw, bh = min(side, W), min(side, H)
    bw, bh = max(bw, bb.width), max(bh, bb.height)

    def place(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
        start = (lo + hi) // 2 - size // 2
        start = min(max(start, 0), limit - size)
        return start, start + size

    x0, x1 = place(bb.x0, bb.x1, bw, W)
    y0, y1 = place(bb.y0, bb.y1, bh, H)
    return Box(x0, y0, x1, y1)


def working_size(width: int, height: int, resolution: int, multiple: int = 8) -> tuple[int, int]:
    """Size (w, h) at which the model sees a ``width`` x ``height`` box: long side = ``resolution``.

    Both sides are multiples of ``multiple``; the aspect ratio is kept to within rounding.
    """
    scale = resolution / max(width, height)
    w = max(multiple, round(width * scale / multiple) * multiple)
    h = max(multiple, round(height * scale / multiple) * multiple)
    return w, h


# --------------------------------------------------------------------------------------------------
# Compositing


def _blend_stripe(o: np.ndarray, g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``round(o * (1 - a) + g * a)`` as uint8 in float32 maths, with ``a == 0`` keeping ``o`` exactly."""
    af = a[..., None]
    out = o.astype(np.float32) * (1.0 - af) + g.astype(np.float32) * af
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    keep = a == 0
    out[keep] = o[keep]
    return out


def composite(original: Image.Image, generated: Image.Image, alpha: np.ndarray) -> Image.Image:
    """``original * (1 - alpha) + generated * alpha``, rounded to uint8; alpha == 0 keeps bytes exactly.

    Works in row stripes, so memory is the output plus one stripe of float maths.
    """
    if original.size != generated.size or alpha.shape != (original.height, original.width):
        raise InvalidInputError(
            f"composite needs equal sizes: original {original.size}, generated {generated.size}, alpha {alpha.shape[::-1]}"
        )
    original, generated = original.convert("RGB") if original.mode != "RGB" else original, (
        generated.convert("RGB") if generated.mode != "RGB" else generated)
    W, H = original.size
    out = np.empty((H, W, 3), np.uint8)
    rows = _stripe_rows(W, 48)
    for y0 in range(0, H, rows):
        y1 = min(H, y0 + rows)
        o = np.asarray(original.crop((0, y0, W, y1)))
        g = np.asarray(generated.crop((0, y0, W, y1)))
        out[y0:y1] = _blend_stripe(o, g, alpha[y0:y1])
    return Image.fromarray(out, "RGB")


def composite_box(original: Image.Image, generated: Image.Image, box: Box, mask: np.ndarray | None,
                  band: float = 0.0) -> Image.Image:
    """``original`` with ``generated`` (box-sized) blended over ``box`` by ``feather_alpha(mask, band)``.

    Equal, byte for byte, to ``out = original.copy(); out.paste(composite(crop, generated, alpha[box]), box)``,
    but computed in row stripes: no float copy of the image and no full-size alpha. ``mask=None`` pastes
    ``generated`` over the whole box. When ``box`` covers all of ``original``, ``generated`` itself is
    blended in place and returned (so memory is one output image): pass a copy if you still need it.

    Args:
        original: the RGB image; never modified.
        generated: RGB, exactly ``box``'s size.
        box: where ``generated`` goes, in ``original``'s pixels.
        mask: HxW fill mask of the whole original (alpha 1 on it, a ramp over ``band`` px outside).
        band: feather width in pixels.

    Raises:
        InvalidInputError: ``generated`` is not ``box``'s size, or ``mask`` is not ``original``'s.
    """
    if generated.size != (box.width, box.height):
        raise InvalidInputError(
            f"composite_box needs a {box.width}x{box.height} image, got {generated.size[0]}x{generated.size[1]}"
        )
    if mask is not None and mask.shape != (original.height, original.width):
        raise InvalidInputError(f"composite_box: mask is {mask.shape[1]}x{mask.shape[0]}, image {original.size}")
    if band < 0:
        raise InvalidInputError(f"mask blur must be >= 0 pixels, got {band}")
    if generated.mode != "RGB":
        generated = generated.convert("RGB")
    if original.mode != "RGB":
        original = original.convert("RGB")
    whole = box == Box(0, 0, original.width, original.height)
    if mask is None:
        if whole:
            return generated
        out = original.copy()
        out.paste(generated, (box.x0, box.y0))
        return out
    out = generated if whole else original.copy()
    reach = feather_bbox(mask, band)  # alpha is 0 outside it
    # Where alpha is 0 the result is the original's bytes: already so in a copy of the original; pasted
    # back when blending into `generated` in place. Elsewhere blend, one stripe of rows at a time.
    if whole:
        cols = box
    elif reach is None:
        return out
    else:
        cols = Box(max(box.x0, reach.x0), box.y0, min(box.x1, reach.x1), box.y1)
        if cols.width <= 0:
            return out
    rows = _stripe_rows(cols.width, 64)
    for y0 in range(box.y0, box.y1, rows):
        y1 = min(box.y1, y0 + rows)
        stripe = Box(cols.x0, y0, cols.x1, y1)
        in_gen = (cols.x0 - box.x0, y0 - box.y0, cols.x1 - box.x0, y1 - box.y0)
        if reach is None or y1 <= reach.y0 or y0 >= reach.y1:
            if whole:
                out.paste(original.crop(stripe.as_tuple()), (stripe.x0, stripe.y0))
            continue
        a = _alpha(mask, band, stripe, reach)
        if a.min() == 1.0:  # all hole: the generated bytes
            if not whole:
                out.paste(generated.crop(in_gen), (stripe.x0, stripe.y0))
            continue
        o = np.asarray(original.crop(stripe.as_tuple()))
        g = np.asarray(generated.crop(in_gen))
        out.paste(Image.fromarray(_blend_stripe(o, g, a), "RGB"), (stripe.x0, stripe.y0))
    return out


def masked_image(image: Image.Image, mask: np.ndarray, fill: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """The "masked prompt image": ``image`` with the hole set to ``fill`` (black by default, as the release)."""
    a = np.array(image.convert("RGB"))
    a[mask] = fill
    return Image.fromarray(a, "RGB")
