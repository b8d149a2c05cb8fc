"""The canvas of an image extension: how many pixels each side gets, from ratios or pixel counts."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from prefpaint_sdk import ConfigError, InvalidInputError
from prefpaint_sdk.utils import Arg

__all__ = ["ANCHORS", "DEFAULT_MAX_SIZE", "Padding", "resolve_padding"]

ANCHORS = ("center", "left", "right", "top", "bottom")
"""Where the original sits on the canvas when the size comes from a ratio."""

DEFAULT_MAX_SIZE = 16384
"""Largest canvas side accepted by default (px); beyond it the canvas alone needs gigabytes."""


@dataclass(frozen=True)
class Padding:
    """How many pixels to add on each side of the image."""

    left: int = 0
    top: int = 0
    right: int = 0
    bottom: int = 0

    def __getitem__(self, side: str) -> int:
        return int(getattr(self, side))

    @property
    def total(self) -> int:
        return self.left + self.top + self.right + self.bottom


def _check_ratio(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(Arg(name), f" must be a number >= 1, got {value!r}") from None
    if not math.isfinite(value):
        raise InvalidInputError(Arg(name), f" must be a finite number >= 1, got {value}")
    if value < 1.0:
        raise InvalidInputError(
            Arg(name), f" must be >= 1 (the canvas is {name} times the image), got {value:g}; "
            "extension only adds pixels, so crop the image instead to make it smaller"
        )
    return value


def _check_pad(name: str, value: int) -> int:
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise InvalidInputError(Arg(name), f" must be a whole number of pixels >= 0, got {value!r}")
    value = int(value)
    if value < 0:
        raise InvalidInputError(Arg(name), f" must be >= 0 pixels (extension only adds pixels), got {value}")
    return value


def _split(total: int, anchor_low: bool, anchor_high: bool) -> tuple[int, int]:
    """Split ``total`` new px into (before, after); anchoring the image at one edge puts all on the other."""
    if anchor_low:
        return 0, total
    if anchor_high:
        return total, 0
    before = total // 2  # centred; an odd pixel goes after (right / bottom)
    return before, total - before


def resolve_padding(
    image_size: tuple[int, int],
    *,
    ratio: float | None = None,
    ratio_x: float | None = None,
    ratio_y: float | None = None,
    left: int | None = None,
    right: int | None = None,
    top: int | None = None,
    bottom: int | None = None,
    anchor: str = "center",
    max_size: int = DEFAULT_MAX_SIZE,
) -> Padding:
    """Turn the size arguments into pixels to add per side, and validate them.

    Give either ``ratio`` (both sides scaled: an R·W × R·H canvas), or ``ratio_x`` / ``ratio_y`` (one side
    each; the other stays 1), or pixel counts ``left`` / ``right`` / ``top`` / ``bottom``. With none of
    them, ``ratio`` is 2. ``anchor`` places the original for the ratio forms: ``left`` keeps it at the
    left edge (all new width goes right), ``top`` at the top, and so on; ``center`` splits evenly.

    Args:
        image_size: (width, height) of the original.
        max_size: the largest canvas side accepted, in px.

    Returns:
        The :class:`Padding`.

    Raises:
        InvalidInputError: a ratio below 1, a negative or all-zero extension, an unknown anchor, or a
            canvas side beyond ``max_size``.
        ConfigError: size arguments of two kinds at once.
    """
    w, h = int(image_size[0]), int(image_size[1])
    if w < 1 or h < 1:
        raise InvalidInputError(f"image size must be positive, got {w}x{h}")
    if anchor not in ANCHORS:
        raise InvalidInputError(Arg("anchor"), f" must be one of {', '.join(ANCHORS)}; got '{anchor}'")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise InvalidInputError(Arg("max_size"), f" must be a positive whole number of pixels, got {max_size!r}")
    pads = {"left": left, "right": right, "top": top, "bottom": bottom}
    given_pads = {k: v for k, v in pads.items() if v is not None}
    given_axes = {k: v for k, v in (("ratio_x", ratio_x), ("ratio_y", ratio_y)) if v is not None}

    if ratio is not None and given_axes:
        names = ", ".join(f"{k}={v:g}" for k, v in given_axes.items())
        raise ConfigError(f"ratio={ratio:g} conflicts with {names}; give either ratio (both sides) or ratio_x/ratio_y")
    if given_pads and (ratio is not None or given_axes):
        kind = f"ratio={ratio:g}" if ratio is not None else ", ".join(f"{k}={v:g}" for k, v in given_axes.items())
        names = ", ".join(f"{k}={v}" for k, v in given_pads.items())
        raise ConfigError(f"{kind} conflicts with {names}; give the size either as ratios or as pixels per side")

    if given_pads:
        if anchor != "center":
            raise ConfigError(f"anchor='{anchor}' applies to ratios only; with pixels per side the pixels place the image")
        p = {k: _check_pad(k, v) for k, v in given_pads.items()}
        result = Padding(**{k: p.get(k, 0) for k in ("left", "top", "right", "bottom")})
        if result.total == 0:
            raise InvalidInputError(
                "the extension is zero on every side (left=right=top=bottom=0); give a positive number of pixels for at least one side"
            )
    else:
        if ratio is None and not given_axes:
            ratio = 2.0
        if ratio is not None:
            rx = ry = _check_ratio("ratio", ratio)
        else:
            rx = _check_ratio("ratio_x", ratio_x) if ratio_x is not None else 1.0
            ry = _check_ratio("ratio_y", ratio_y) if ratio_y is not None else 1.0
        # An anchor on the axis that is not extended (say --anchor top with --ratio-x) changes nothing there.
        new_w, new_h = round(w * rx), round(h * ry)
        if max(new_w, new_h) > max_size:
            raise InvalidInputError(
                f"the canvas would be {new_w}x{new_h} px, beyond max_size={max_size} px per side; "
                "lower the ratio, or raise ", Arg("max_size"), " if you have the memory"
            )
        left_, right_ = _split(new_w - w, anchor == "left", anchor == "right")
        top_, bottom_ = _split(new_h - h, anchor == "top", anchor == "bottom")
        result = Padding(left=left_, top=top_, right=right_, bottom=bottom_)
        if result.total == 0:
            what = f"ratio={ratio:g}" if ratio is not None else f"ratio_x={rx:g}, ratio_y={ry:g}"
            raise InvalidInputError(
                f"{what} adds no pixels to a {w}x{h} image (the canvas stays {new_w}x{new_h}); "
                "use a ratio above 1 that adds at least one pixel"
            )
    canvas_w, canvas_h = w + result.left + result.right, h + result.top + result.bottom
    if max(canvas_w, canvas_h) > max_size:
        raise InvalidInputError(
            f"the canvas would be {canvas_w}x{canvas_h} px, beyond max_size={max_size} px per side; "
            "add fewer pixels, or raise ", Arg("max_size"), " if you have the memory"
        )
    return result
