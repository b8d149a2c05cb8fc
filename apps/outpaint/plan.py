"""The step plan of an image extension: which window the model sees at each step, and what it fills.

Pure geometry, no model and no pixels, so ``prefpaint extend --dry-run`` can print it at once and the
tests can check its properties on any size.

How the plan grows the image:

* The known region ``K`` starts as the original image, placed on the canvas. It stays a rectangle.
* ``K`` grows by *strips*: a strip of depth ``d`` along one side of ``K``, exactly as long as that side.
  A strip is tiled by windows (at most ``window`` px a side) that overlap their neighbour by at least
  ``overlap`` px, so each window sees what the previous one generated and no vertical seam appears
  between two windows that never saw each other.
* Each window reaches ``d`` px into the new strip and the rest of its depth into known pixels, so the
  new area of any step is at most ``d / depth <= step_frac`` of its window: the model always sees
  ``1 - step_frac`` (at least half) known context, and every new pixel borders known pixels.
* A large ratio therefore becomes more steps at full resolution, never one blurry upscaled shot.
* One axis is finished before the other, whichever order needs fewer model calls (the first axis's
  strips are only as long as the original side). Within an axis the two sides alternate, so both
  grow against equally deep context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from prefpaint_sdk import Box, InvalidInputError

from .size import ANCHORS, DEFAULT_MAX_SIZE, Padding, resolve_padding

__all__ = [
    "ANCHORS",
    "DEFAULT_MAX_SIZE",
    "MAX_STEP_FRAC",
    "ExtendPlan",
    "Padding",
    "PlanStep",
    "plan_extension",
    "resolve_padding",
]

MAX_STEP_FRAC = 0.5
"""A step may add at most this share of its window: the model must see at least half known pixels."""

_SIDES_OF_AXIS = {"x": ("left", "right"), "y": ("top", "bottom")}


@dataclass(frozen=True)
class PlanStep:
    """One model call: the ``window`` the model sees and the ``new`` box it fills, in canvas pixels.

    ``new`` lies inside ``window``; every other pixel of the window is already known when the step runs.
    ``side`` says which side of the known region the step grows.
    """

    index: int
    side: str
    window: Box
    new: Box

    @property
    def new_fraction(self) -> float:
        """New pixels over window pixels: the share the model has to invent."""
        return (self.new.width * self.new.height) / (self.window.width * self.window.height)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "side": self.side,
            "window": list(self.window.as_tuple()),
            "new": list(self.new.as_tuple()),
            "new_fraction": round(self.new_fraction, 4),
        }


@dataclass(frozen=True)
class ExtendPlan:
    """The whole extension: canvas size, where the original sits, and the ordered steps.

    Attributes:
        image_size: (width, height) of the original.
        canvas_size: (width, height) of the output, exactly.
        image_box: where the original sits on the canvas.
        window: largest window side in canvas px (the model's working size by default).
        step_frac: the cap on each step's new-area fraction.
        overlap: least overlap in px between neighbouring windows of one strip.
        steps: the model calls, in the order they run.
    """

    image_size: tuple[int, int]
    canvas_size: tuple[int, int]
    image_box: Box
    window: int
    step_frac: float
    overlap: int
    steps: tuple[PlanStep, ...]

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def max_new_fraction(self) -> float:
        return max((s.new_fraction for s in self.steps), default=0.0)

    @property
    def padding(self) -> Padding:
        W, H = self.canvas_size
        b = self.image_box
        return Padding(left=b.x0, top=b.y0, right=W - b.x1, bottom=H - b.y1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able plan, as written to the sidecar file."""
        return {
            "image_size": list(self.image_size),
            "canvas_size": list(self.canvas_size),
            "image_box": list(self.image_box.as_tuple()),
            "padding": {k: self.padding[k] for k in ("left", "top", "right", "bottom")},
            "window": self.window,
            "step_frac": self.step_frac,
            "overlap": self.overlap,
            "num_steps": self.num_steps,
            "max_new_fraction": round(self.max_new_fraction, 4),
            "steps": [s.to_dict() for s in self.steps],
        }


# --------------------------------------------------------------------------------------------------
# Steps


def _max_depth(known_depth: int, window: int, step_frac: float) -> int:
    """Deepest strip whose windows keep new/window <= step_frac.

    A window is ``min(window, known_depth + d)`` deep and reaches ``d`` into the strip, so its new share
    is at most ``d / depth``: ``d <= f * window`` when the window is full size, and
    ``d <= f * known / (1 - f)`` while the known region is still shallower than a window.
    """
    eps = 1e-9  # 0.3 * 512 is 153.6 in floats; never let rounding push a step past the cap
    by_window = math.floor(step_frac * window + eps)
    by_known = math.floor(step_frac * known_depth / (1.0 - step_frac) + eps) if step_frac < 1 else by_window
    return max(0, min(by_window, by_known))


def _tile(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``size`` covering ``length``, neighbours overlapping >= ``overlap``."""
    if size >= length:
        return [0]
    n = math.ceil((length - overlap) / (size - overlap))
    n = max(n, 2)
    span = length - size
    # Evenly spread, so all overlaps are alike; the gap ceil(span/(n-1)) <= size - overlap by choice of n.
    return [round(i * span / (n - 1)) for i in range(n)]


def _strip_steps(axis_order: tuple[str, ...], image_box: Box, pads: Padding, window: int, step_frac: float,
                 overlap: int) -> list[PlanStep]:
    kx0, ky0, kx1, ky1 = image_box.as_tuple()
    remaining = {s: pads[s] for s in ("left", "top", "right", "bottom")}
    steps: list[PlanStep] = []
    for axis in axis_order:
        sides = _SIDES_OF_AXIS[axis]
        while any(remaining[s] > 0 for s in sides):
            for side in sides:  # alternate: both sides grow against equally deep context
                if remaining[side] == 0:
                    continue
                known_depth = (kx1 - kx0) if axis == "x" else (ky1 - ky0)
                length = (ky1 - ky0) if axis == "x" else (kx1 - kx0)
                d_max = _max_depth(known_depth, window, step_frac)
                if d_max < 1:
                    need = math.ceil((1.0 - step_frac) / step_frac)
                    raise InvalidInputError(
                        f"the image is {known_depth} px along the {axis} axis, too small to extend with "
                        f"step_frac={step_frac:g} (each step needs at least {need} px of known context per new px "
                        "row); raise step_frac or upscale the image first"
                    )
                # Even strips: as many as the cap needs, but all about the same depth (no thin last strip).
                n_strips = math.ceil(remaining[side] / d_max)
                d = math.ceil(remaining[side] / n_strips)
                depth = min(window, known_depth + d)
                size = min(window, length)
                lo = ky0 if axis == "x" else kx0  # start of the strip along its length
                covered = 0  # strip length already filled by earlier windows of this strip
                for start in _tile(length, size, min(overlap, size - 1)):
                    a0, a1 = lo + start, lo + start + size
                    n0, n1 = lo + covered, a1
                    if side == "top":
                        win = Box(a0, ky0 - d, a1, ky0 - d + depth)
                        new = Box(n0, ky0 - d, n1, ky0)
                    elif side == "bottom":
                        win = Box(a0, ky1 + d - depth, a1, ky1 + d)
                        new = Box(n0, ky1, n1, ky1 + d)
                    elif side == "left":
                        win = Box(kx0 - d, a0, kx0 - d + depth, a1)
                        new = Box(kx0 - d, n0, kx0, n1)
                    else:  # right
                        win = Box(kx1 + d - depth, a0, kx1 + d, a1)
                        new = Box(kx1, n0, kx1 + d, n1)
                    steps.append(PlanStep(index=len(steps), side=side, window=win, new=new))
                    covered = start + size
                remaining[side] -= d
                if side == "top":
                    ky0 -= d
                elif side == "bottom":
                    ky1 += d
                elif side == "left":
                    kx0 -= d
                else:
                    kx1 += d
    return steps


def plan_extension(
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
    window: int = 512,
    step_frac: float = 0.3,
    overlap: int | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> ExtendPlan:
    """Plan an extension of an image of ``image_size``: canvas, placement and ordered steps.

    Args:
        image_size: (width, height) of the original.
        ratio / ratio_x / ratio_y / left / right / top / bottom / anchor / max_size: the output size,
            see :func:`resolve_padding`.
        window: largest window side in canvas px; use the model's working size (512 for Stable
            Diffusion) so the model sees pixels at their own resolution.
        step_frac: the most new area one step may add, as a share of its window, in (0, 0.5].
        overlap: least overlap between neighbouring windows of one strip, in px; default ``window // 4``.

    Returns:
        An :class:`ExtendPlan` whose steps cover the canvas outside the original exactly once.

    Raises:
        InvalidInputError: bad size arguments (see :func:`resolve_padding`), ``step_frac`` outside
            (0, 0.5], a window below 8 px, an overlap that is negative or not below the window, or an
            image too small to step with this ``step_frac``.
        ConfigError: size arguments of two kinds at once.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 8:
        raise InvalidInputError(f"window must be a whole number of pixels >= 8, got {window!r}")
    try:
        step_frac = float(step_frac)
    except (TypeError, ValueError):
        raise InvalidInputError(f"step_frac must be a number in (0, {MAX_STEP_FRAC}], got {step_frac!r}") from None
    if not (0.0 < step_frac <= MAX_STEP_FRAC):
        raise InvalidInputError(
            f"step_frac must lie in (0, {MAX_STEP_FRAC}] so each window keeps at least half known pixels, got {step_frac:g}"
        )
    if overlap is None:
        overlap = window // 4
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < window:
        raise InvalidInputError(f"overlap must be a whole number of pixels in [0, window={window}), got {overlap!r}")
    pads = resolve_padding(image_size, ratio=ratio, ratio_x=ratio_x, ratio_y=ratio_y, left=left, right=right,
                           top=top, bottom=bottom, anchor=anchor, max_size=max_size)
    w, h = int(image_size[0]), int(image_size[1])
    image_box = Box(pads.left, pads.top, pads.left + w, pads.top + h)
    canvas = (w + pads.left + pads.right, h + pads.top + pads.bottom)
    # Finish one axis first; the first axis's strips span only the original side, so they need fewer
    # windows. Try both orders and keep the cheaper (x first on a tie: the paper's horizontal case).
    candidates = [_strip_steps(order, image_box, pads, window, step_frac, overlap) for order in (("x", "y"), ("y", "x"))]
    steps = min(candidates, key=len)
    return ExtendPlan(image_size=(w, h), canvas_size=canvas, image_box=image_box, window=window,
                      step_frac=step_frac, overlap=overlap, steps=tuple(steps))
