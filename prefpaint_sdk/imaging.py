"""Images and masks in, images out: loading, validation, conversion, crop boxes and compositing.

Every public entry point normalises its inputs here, once. Images become RGB ``PIL.Image``s and masks
become boolean ``numpy`` arrays (``True`` = fill). Accepted sources:

* a path (``str`` / ``os.PathLike``) to any format Pillow reads;
* a ``PIL.Image`` in any mode;
* a ``numpy`` array of shape HxW, HxWx1, HxWx3 or HxWx4, ``uint8``/``uint16``/``bool`` or float in [0, 1];
* a ``torch`` tensor of shape CxHxW or 1xCxHxW (C in 1, 3, 4), float in [0, 1] or ``uint8``.

Mask convention: white means fill; a pixel counts as white at >= 50% of its type's range. L, RGB,
RGBA, 1-bit, 16-bit and float masks are all accepted; colour masks are read by their luma.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ConfigError, ImageTooLargeError, InvalidInputError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "Box",
    "ImageLike",
    "check_image_file",
    "check_pixels",
    "composite",
    "composite_box",
    "context_box",
    "dilate_mask",
    "feather_alpha",
    "feather_bbox",
    "fit_mask_to_image",
    "get_max_pixels",
    "load_image",
    "load_mask",
    "mask_bbox",
    "masked_image",
    "set_max_pixels",
    "working_size",
]

log = logging.getLogger(__name__)

ImageLike = str | os.PathLike | Image.Image | np.ndarray | Any
"""Anything :func:`load_image` accepts (``Any`` stands for ``torch.Tensor``, imported lazily)."""

# --------------------------------------------------------------------------------------------------
# The pixel limit

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
        err = ConfigError(f"{where} must be a whole number of pixels > 0, got {value!r}")
        err.param = "max_pixels"  # type: ignore[attr-defined]
        raise err
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
    err = ImageTooLargeError(
        f"{what} {name} is {size}, over the limit of {limit:,} pixels; if you trust the file, "
        f"raise max_pixels (--max-pixels) or {MAX_PIXELS_ENV}"
    )
    err.param = "max_pixels"  # type: ignore[attr-defined]
    return err


def check_pixels(width: int, height: int, *, what: str = "image", name: str = "", max_pixels: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when ``width * height`` passes the pixel limit."""
    limit = _limit(max_pixels)
    if int(width) * int(height) > limit:
        size = f"{width}x{height} ({int(width) * int(height):,} pixels)"
        raise _too_large(what, name or "", size, limit)


def _bomb_size(p: Path, exc: BaseException) -> str:
    """The size of a file Pillow refused as a bomb, read again from its header alone (nothing decoded)."""
    try:
        with _pil_lock:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(p) as im:
                    w, h = im.size
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        return f"{w}x{h} ({w * h:,} pixels)"
    except Exception:  # noqa: BLE001 - fall back to Pillow's count
        m = re.search(r"\((\d+) pixels\)", str(exc))
        return f"{int(m.group(1)):,} pixels" if m else "too many pixels"


def _open_lazy(p: Path, what: str, limit: int) -> Image.Image:
    """``Image.open`` (header only) with Pillow's bomb check replaced by ours. The caller closes it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil_limit = Image.MAX_IMAGE_PIXELS
            if pil_limit is not None and pil_limit < limit:  # a larger limit for this call, or a changed env
                with _pil_lock:
                    Image.MAX_IMAGE_PIXELS = limit
                    try:
                        im = Image.open(p)
                    finally:
                        Image.MAX_IMAGE_PIXELS = pil_limit
            else:
                im = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise _too_large(what, f"'{p}'", _bomb_size(p, exc), limit) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInputError(
            f"{what} '{p}' is not a readable image ({exc.__class__.__name__}: {exc}); re-export it as PNG or JPEG"
        ) from None
    w, h = im.size
    if w * h > limit:
        im.close()
        raise _too_large(what, f"'{p}'", f"{w}x{h} ({w * h:,} pixels)", limit)
    return im


def _check_path(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"{what} '{p}' is a folder, not a file; pass an image file (or use batch mode with folders for both)")
    if not p.exists():
        raise InvalidInputError(f"{what} file '{p}' does not exist; check the path")
    return p


def check_image_file(path: str | os.PathLike, *, what: str = "image", max_pixels: int | None = None) -> tuple[int, int]:
    """Read only the header of an image file and return its size ``(width, height)``.

    Cheap (no pixel data is decoded), so commands call it on every input before a model loads.

    Raises:
        InvalidInputError: the file is missing, a folder, or not an image Pillow can identify.
        ImageTooLargeError: its pixel count passes the limit (:func:`get_max_pixels` or ``max_pixels``).
    """
    p = _check_path(path, what)
    im = _open_lazy(p, what, _limit(max_pixels))
    try:
        w, h = im.size
    finally:
        im.close()
    if w == 0 or h == 0:
        raise InvalidInputError(f"{what} '{p}' has zero size ({w}x{h})")
    return w, h


def _sync_pillow() -> None:
    """Pillow decides nothing before us: its own bomb limit follows ours (and _open_lazy catches it)."""
    try:
        Image.MAX_IMAGE_PIXELS = get_max_pixels()
    except ConfigError:  # a bad $PREFPAINT_MAX_PIXELS is reported when an image is loaded, not on import
        Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


_sync_pillow()


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
# Loading


def _describe(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    return type(src).__name__


def _open_path(path: str | os.PathLike, what: str, limit: int) -> Image.Image:
    p = _check_path(path, what)
    im = _open_lazy(p, what, limit)
    try:
        im.load()
        if im.mode == "P":
            out = im.convert("RGBA")
        elif getattr(im, "fp", None) is not None:  # multi-frame formats keep their file open: detach
            out = im.copy()
        else:  # load() decoded into im and closed the file: no copy of the pixels
            return im
        im.close()
        return out
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        im.close()
        raise InvalidInputError(
            f"{what} '{p}' is not a readable image ({exc.__class__.__name__}: {exc}); re-export it as PNG or JPEG"
        ) from None


def _tensor_to_array(t: Any, what: str) -> np.ndarray:
    t = t.detach().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise InvalidInputError(f"{what} tensor has batch size {t.shape[0]}; pass one image (1xCxHxW or CxHxW)")
        t = t[0]
    if t.ndim == 3:
        if t.shape[0] not in (1, 3, 4):
            raise InvalidInputError(f"{what} tensor has shape {tuple(t.shape)}; expected CxHxW with C in 1, 3 or 4")
        t = t.permute(1, 2, 0)
    elif t.ndim != 2:
        raise InvalidInputError(f"{what} tensor has shape {tuple(t.shape)}; expected HxW, CxHxW or 1xCxHxW")
    if t.is_floating_point():
        t = t.float()
    return t.numpy()


def _float_to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    """``round(clip(a, 0, 1) * 255)`` as uint8 after checking finiteness and range, in row stripes (no
    full-size float temporaries)."""
    out = np.empty(a.shape, np.uint8)
    rows = _stripe_rows(int(np.prod(a.shape[1:])), 4 * a.itemsize)
    lo, hi = math.inf, -math.inf
    for y0 in range(0, a.shape[0], rows):
        part = a[y0:y0 + rows]
        if not np.isfinite(part).all():
            raise InvalidInputError(f"{what} array contains NaN or infinite values")
        lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
        out[y0:y0 + rows] = np.round(np.clip(part, 0, 1) * 255)
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InvalidInputError(f"float {what} values must lie in [0, 1], got [{lo:g}, {hi:g}]; divide by 255 or pass uint8")
    return out


def _array_to_pil(a: np.ndarray, what: str) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidInputError(f"{what} array has shape {a.shape}; expected HxW, HxWx1, HxWx3 or HxWx4")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidInputError(f"{what} is empty (shape {a.shape}); it needs at least one pixel")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_to_uint8(a, what)
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise InvalidInputError(f"{what} array has dtype {a.dtype}; use uint8, uint16, bool or float in [0, 1]")
    mode = "L" if a.ndim == 2 else ("RGB" if a.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(a), mode=mode)


def _hw_of(shape: tuple[int, ...], channels_first: bool) -> tuple[int, int] | None:
    """(height, width) of an array (HxW[xC]) or tensor ([1x][C]xHxW) shape, or None for other ranks."""
    if channels_first:
        return (int(shape[-2]), int(shape[-1])) if len(shape) in (2, 3, 4) else None
    return (int(shape[0]), int(shape[1])) if len(shape) in (2, 3) else None


def _to_pil(src: Any, what: str, max_pixels: int | None = None) -> Image.Image:
    limit = _limit(max_pixels)
    is_torch = type(src).__module__.startswith("torch")
    if isinstance(src, np.ndarray) or is_torch:
        # check the size before any conversion copies the pixels
        hw = _hw_of(tuple(src.shape), channels_first=is_torch)
        if hw is not None:
            check_pixels(hw[1], hw[0], what=what, name=f"{type(src).__name__} of shape {tuple(src.shape)}", max_pixels=limit)
    if isinstance(src, Image.Image):
        im = src
        check_pixels(im.width, im.height, what=what, name="PIL image", max_pixels=limit)
    elif isinstance(src, (str, os.PathLike)):
        im = _open_path(src, what, limit)
    elif isinstance(src, np.ndarray):
        im = _array_to_pil(src, what)
    elif is_torch:
        im = _array_to_pil(_tensor_to_array(src, what), what)
    else:
        raise InvalidInputError(
            f"{what} of type {type(src).__name__} is not supported; pass a path, PIL image, numpy array or torch tensor"
        )
    if im.width == 0 or im.height == 0:
        raise InvalidInputError(f"{what} {_describe(src)} has zero size ({im.width}x{im.height})")
    return im


_SUPPORTED_IMAGE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "I;16", "I;16B", "I;16L", "I", "F", "CMYK", "YCbCr"}


def load_image(src: ImageLike, *, max_pixels: int | None = None) -> Image.Image:
    """Load any supported image source as an RGB ``PIL.Image``.

    Transparent pixels are composited over black (their colour is undefined, and inpainting replaces
    them when they are masked). A file's size is checked from its header, before its pixels are decoded.

    Args:
        src: a path, PIL image, numpy array or torch tensor.
        max_pixels: the pixel limit for this call; ``None`` uses :func:`get_max_pixels`.

    Raises:
        InvalidInputError: missing, truncated or unreadable file, zero size, unsupported type, shape or mode.
        ImageTooLargeError: more pixels than the limit (decompression bombs included).
    """
    im = _to_pil(src, "image", max_pixels)
    if im.mode not in _SUPPORTED_IMAGE_MODES:
        raise InvalidInputError(f"image {_describe(src)} has unsupported mode '{im.mode}'; convert it to RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im)  # integer maths: floor(v / 257) clipped to [0, 255], no float copy
        im = Image.fromarray(np.clip(a // 257, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        im = _array_to_pil(np.asarray(im), "image")
    if im.mode in ("RGBA", "LA", "PA", "P"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, im)
    if im.mode == "RGB" and im is not src:
        return im  # decoded or converted here: ours to return without another copy of the pixels
    return im.convert("RGB")  # a copy: the caller's PIL image is never shared or modified


def load_mask(
    src: ImageLike, *, invert: bool = False, from_alpha: bool = False, max_pixels: int | None = None
) -> np.ndarray:
    """Load a mask as a boolean HxW array where ``True`` means *fill*.

    Args:
        src: any image source. Colour masks are read by their luma, so the official 3-channel 0/255 RGB
            mask works as it ships.
        invert: swap fill and keep (for masks where black means fill).
        from_alpha: read the alpha channel instead: *transparent* pixels (alpha < 50%) are filled. Use it
            for an RGBA image whose holes were erased to transparency.
        max_pixels: the pixel limit for this call; ``None`` uses :func:`get_max_pixels`.

    Raises:
        InvalidInputError: as :func:`load_image`, or ``from_alpha`` on a source without alpha.
        ImageTooLargeError: as :func:`load_image`.
    """
    im = _to_pil(src, "mask", max_pixels)
    if from_alpha:
        if im.mode == "P":
            im = im.convert("RGBA")
        if im.mode not in ("RGBA", "LA", "PA"):
            raise InvalidInputError(f"mask {_describe(src)} has mode '{im.mode}' with no alpha channel; drop --mask-from-alpha")
        mask = np.asarray(im.getchannel("A")) < 128
    else:
        if im.mode == "1":
            mask = np.asarray(im, dtype=bool)
        elif im.mode in ("I;16", "I;16B", "I;16L"):
            mask = np.asarray(im).astype(np.int64) >= 32768
        elif im.mode == "I":
            a = np.asarray(im)
            mask = a >= (32768 if a.max() > 255 else 128)
        elif im.mode == "F":
            mask = np.asarray(im) >= 0.5
        elif im.mode == "L":
            mask = np.asarray(im) >= 128
        elif im.mode in ("RGB", "RGBA", "LA"):  # the same luma as via RGB, one conversion fewer
            mask = np.asarray(im.convert("L")) >= 128
        elif im.mode in ("P", "PA", "CMYK", "YCbCr"):
            mask = np.asarray(im.convert("RGB").convert("L")) >= 128
        else:
            raise InvalidInputError(f"mask {_describe(src)} has unsupported mode '{im.mode}'; save it as an L or RGB image")
    mask = np.ascontiguousarray(mask, dtype=bool)
    return ~mask if invert else mask


def fit_mask_to_image(mask: np.ndarray, size: tuple[int, int], *, resize: bool = False, tolerance: float = 0.01) -> np.ndarray:
    """Return ``mask`` at ``size`` = (width, height), resizing only when that is safe or asked for.

    A mask of another size is resized (nearest neighbour) when ``resize`` is true, or automatically, with
    a warning, when its aspect ratio matches the image's within ``tolerance``.

    Raises:
        InvalidInputError: the sizes differ, the aspect ratios differ, and ``resize`` is false.
    """
    h, w = mask.shape
    W, H = size
    if (w, h) == (W, H):
        return mask
    aspect_gap = abs((w / h) / (W / H) - 1.0)
    if not resize and aspect_gap > tolerance:
        raise InvalidInputError(
            f"mask is {w}x{h} but image is {W}x{H}; pass --resize-mask (resize_mask=True) to resize it"
        )
    if not resize:
        log.warning("mask is %dx%d but image is %dx%d (same aspect ratio); resizing the mask", w, h, W, H)
    im = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((W, H), Image.NEAREST)
    return np.asarray(im) >= 128


# --------------------------------------------------------------------------------------------------
# Mask geometry


# Full-resolution maths in row stripes: a distance transform or a float blend of a whole 12000x12000 image
# costs gigabytes (scipy's EDT holds an int32 index pair and a float64 distance per pixel), while the
# answers only depend on pixels within the feather band. Each stripe is computed on the rows and columns
# within reach of it, so every value equals the whole-image computation exactly.

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
