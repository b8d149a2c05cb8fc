"""Loading: any image source to an RGB ``PIL.Image``, any mask source to a boolean array, within the pixel limit."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import Arg, Hint, InvalidInputError
from .geometry import _stripe_rows
from .limits import _check_path, _limit, _open_lazy, check_pixels

__all__ = ["ImageLike", "check_mask_size", "check_masked_image_size", "fit_mask_to_image", "load_image", "load_mask"]

log = logging.getLogger(__name__)

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | Any
"""Anything :func:`load_image` accepts (``Any`` stands for ``torch.Tensor``, imported lazily). ``bytes`` are
the contents of an encoded image file (an upload), decoded in memory."""

_BYTES = (bytes, bytearray, memoryview)


def _describe(src: Any) -> str:
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    if isinstance(src, _BYTES):
        return f"({len(src):,} bytes)"
    return type(src).__name__


def _open_path(path: str | os.PathLike | bytes, what: str, limit: int) -> Image.Image:
    p = bytes(path) if isinstance(path, _BYTES) else _check_path(path, what)
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
            f"{what} {_describe(p)} is not a readable image ({exc.__class__.__name__}: {exc}); re-export it as PNG or JPEG"
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
    elif isinstance(src, (str, os.PathLike, *_BYTES)):
        im = _open_path(src, what, limit)
    elif isinstance(src, np.ndarray):
        im = _array_to_pil(src, what)
    elif is_torch:
        im = _array_to_pil(_tensor_to_array(src, what), what)
    else:
        raise InvalidInputError(
            f"{what} of type {type(src).__name__} is not supported; pass a path, the bytes of an image file, a PIL image, "
        "a numpy array or a torch tensor"
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
        if im.mode not in _ALPHA_MODES:
            raise InvalidInputError(f"mask {_describe(src)} has mode '{im.mode}' with no alpha channel", Hint("; drop ", Arg("mask_from_alpha")))
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


_ALPHA_MODES = ("RGBA", "LA", "PA")


def check_alpha_mask(path: str | os.PathLike) -> None:
    """The ``from_alpha`` rule of :func:`load_mask` from a file's header alone (before a model loads): the
    mask must have an alpha channel (a palette image is read as RGBA, as :func:`load_mask` reads it).

    Raises:
        InvalidInputError: the mask has no alpha channel.
    """
    with Image.open(path) as im:
        mode = im.mode
    if mode not in (*_ALPHA_MODES, "P"):
        raise InvalidInputError(f"mask {_describe(path)} has mode '{mode}' with no alpha channel", Hint("; drop ", Arg("mask_from_alpha")))


def check_mask_size(mask_size: tuple[int, int], size: tuple[int, int], *, resize: bool = False,
                    tolerance: float = 0.01) -> bool:
    """The one mask-size rule, from sizes alone (so commands apply it to file headers before a model loads).

    Returns whether the mask must be resized: its (width, height) differs from the image's and either
    ``resize`` is true or the aspect ratios agree within ``tolerance``.

    Raises:
        InvalidInputError: the sizes differ, the aspect ratios differ, and ``resize`` is false.
    """
    (w, h), (W, H) = mask_size, size
    if (w, h) == (W, H):
        return False
    if not resize and abs((w / h) / (W / H) - 1.0) > tolerance:
        raise InvalidInputError(
            f"mask is {w}x{h} but image is {W}x{H}", Hint("; pass ", Arg("resize_mask", True), " to resize it")
        )
    return True


def check_masked_image_size(masked_size: tuple[int, int], size: tuple[int, int]) -> None:
    """A masked prompt image is the input with its hole blanked, so it has the image's size exactly.

    Raises:
        InvalidInputError: the sizes differ (both are named).
    """
    (w, h), (W, H) = masked_size, size
    if (w, h) != (W, H):
        raise InvalidInputError(f"masked image is {w}x{h} but image is {W}x{H}; the masked image is the input image "
                                "with the hole blanked, so pass one of the image's size")


def fit_mask_to_image(mask: np.ndarray, size: tuple[int, int], *, resize: bool = False, tolerance: float = 0.01) -> np.ndarray:
    """Return ``mask`` at ``size`` = (width, height), resizing only when that is safe or asked for.

    A mask of another size is resized (nearest neighbour) when ``resize`` is true, or automatically, with
    a warning, when its aspect ratio matches the image's within ``tolerance``.

    Raises:
        InvalidInputError: the sizes differ, the aspect ratios differ, and ``resize`` is false.
    """
    h, w = mask.shape
    W, H = size
    if not check_mask_size((w, h), (W, H), resize=resize, tolerance=tolerance):
        return mask
    if not resize:
        log.warning("mask is %dx%d but image is %dx%d (same aspect ratio); resizing the mask", w, h, W, H)
    im = Image.fromarray(mask.astype(np.uint8) * 255, "L").resize((W, H), Image.NEAREST)
    return np.asarray(im) >= 128

