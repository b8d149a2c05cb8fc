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
* When both axes grow, the planner also tries *rings*: ``K`` grows on all its growing sides at once by
  a layer, and the layer is tiled by a grid of windows, so a window at a corner fills the corner and
  both strips beside it in one call (an L-shaped new area, ``PlanStep.parts``). Each window's new share
  is checked against ``step_frac``; the layer depth is the deepest that passes. The ring plan is used
  only when it needs strictly fewer model calls than the strip plan (e.g. ratio 1.5 on a window-sized
  image: 4 corner windows instead of 6 strip windows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import Arg, Box

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
    """One model call: the ``window`` the model sees and the new area it fills, in canvas pixels.

    The new area is ``new`` plus the boxes in ``extra`` (empty for a strip step; a corner step of a ring
    plan fills an L-shape, two or more disjoint boxes). :attr:`parts` gives all of them. The new area
    lies inside ``window``; every other pixel of the window is already known when the step runs.
    ``side`` says which side(s) of the known region the step grows: ``top``, ``left``, ... or, for a
    step that grows several at once, their names joined by ``-`` (``top-left``).
    """

    index: int
    side: str
    window: Box
    new: Box
    extra: tuple[Box, ...] = ()

    @property
    def parts(self) -> tuple[Box, ...]:
        """The disjoint boxes whose union is the step's new area (``new`` first)."""
        return (self.new, *self.extra)

    @property
    def new_area(self) -> int:
        """New pixels of the step, all parts together."""
        return sum(b.width * b.height for b in self.parts)

    @property
    def new_fraction(self) -> float:
        """New pixels over window pixels: the share the model has to invent."""
        return self.new_area / (self.window.width * self.window.height)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "index": self.index,
            "side": self.side,
            "window": list(self.window.as_tuple()),
            "new": list(self.new.as_tuple()),
        }
        if self.extra:
            d["new_extra"] = [list(b.as_tuple()) for b in self.extra]
        d["new_px"] = self.new_area
        d["new_fraction"] = round(self.new_fraction, 4)
        return d


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


# --------------------------------------------------------------------------------------------------
# Rings: all growing sides at once, corner windows fill L-shapes


def _side_label(box: Box, known: Box) -> list[str]:
    """The sides of ``known`` that a new ``box`` (outside ``known``) lies beside."""
    return [name for name, hit in (("top", box.y0 < known.y0), ("bottom", box.y1 > known.y1),
                                   ("left", box.x0 < known.x0), ("right", box.x1 > known.x1)) if hit]


def _cells_to_boxes(mask: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> list[Box]:
    """Disjoint boxes covering the True cells of a compressed grid (cell (i, j) spans ys[i]:ys[i+1], xs[j]:xs[j+1]).

    Runs of cells along a row become one box, and a box grows down while the next row has the same run.
    """
    boxes: list[Box] = []
    open_runs: dict[tuple[int, int], int] = {}  # (x0, x1) -> y0 of the box being grown
    for i in range(mask.shape[0] + 1):
        runs: set[tuple[int, int]] = set()
        if i < mask.shape[0]:
            row = mask[i]
            j = 0
            while j < row.size:
                if row[j]:
                    k = j
                    while k + 1 < row.size and row[k + 1]:
                        k += 1
                    runs.add((int(xs[j]), int(xs[k + 1])))
                    j = k + 1
                else:
                    j += 1
        for run in [r for r in open_runs if r not in runs]:
            boxes.append(Box(run[0], open_runs.pop(run), run[1], int(ys[i])))
        for run in runs:
            open_runs.setdefault(run, int(ys[i]))
    return sorted(boxes, key=lambda b: (b.y0, b.x0))


def _ring_layer(known: Box, depth: dict[str, int], window: int, step_frac: float, overlap: int,
                first_index: int, build: bool = True) -> list[PlanStep] | None:
    """Steps that grow ``known`` by ``depth`` per side at once, or ``None`` if a window breaks the cap."""
    outer = Box(known.x0 - depth["left"], known.y0 - depth["top"], known.x1 + depth["right"],
                known.y1 + depth["bottom"])
    sx, sy = min(window, outer.width), min(window, outer.height)
    starts_x = [outer.x0 + a for a in _tile(outer.width, sx, min(overlap, sx - 1))]
    starts_y = [outer.y0 + a for a in _tile(outer.height, sy, min(overlap, sy - 1))]
    # A compressed grid: every window and known edge is a cell boundary, so cells are wholly known,
    # new or filled by an earlier window of this layer.
    xs = np.array(sorted({outer.x0, outer.x1, known.x0, known.x1, *starts_x, *(a + sx for a in starts_x)}))
    ys = np.array(sorted({outer.y0, outer.y1, known.y0, known.y1, *starts_y, *(a + sy for a in starts_y)}))
    cx = (xs[:-1] + xs[1:]) / 2
    cy = (ys[:-1] + ys[1:]) / 2
    unknown = ~(((cx > known.x0) & (cx < known.x1))[None, :] & ((cy > known.y0) & (cy < known.y1))[:, None])
    area = np.diff(ys)[:, None].astype(np.int64) * np.diff(xs)[None, :]
    limit = step_frac * sx * sy + 1e-9
    cols = [(x0, *np.searchsorted(xs, [x0, x0 + sx]).tolist()) for x0 in starts_x]
    rows = [(y0, *np.searchsorted(ys, [y0, y0 + sy]).tolist()) for y0 in starts_y]
    steps: list[PlanStep] = []
    for y0, i0, i1 in rows:  # raster order: each window after the first sees what its neighbours filled
        inner_y = known.y0 <= y0 and y0 + sy <= known.y1
        for x0, j0, j1 in cols:
            if inner_y and known.x0 <= x0 and x0 + sx <= known.x1:
                continue  # wholly known
            cells = unknown[i0:i1, j0:j1]
            if not cells.any():
                continue
            if int(area[i0:i1, j0:j1][cells].sum()) > limit:
                return None
            if not build:
                steps.append(None)  # type: ignore[arg-type]  # a trial: only feasibility and count matter
                cells[:] = False
                continue
            boxes = _cells_to_boxes(cells, xs[j0:j1 + 1], ys[i0:i1 + 1])
            sides = sorted({n for b in boxes for n in _side_label(b, known)},
                           key=("top", "bottom", "left", "right").index)
            steps.append(PlanStep(index=first_index + len(steps), side="-".join(sides),
                                  window=Box(x0, y0, x0 + sx, y0 + sy), new=boxes[0], extra=tuple(boxes[1:])))
            cells[:] = False  # filled: known to the next windows
    return steps


def _ring_steps(image_box: Box, pads: Padding, window: int, step_frac: float, overlap: int,
                max_steps: int) -> list[PlanStep] | None:
    """The ring plan, or ``None`` when it cannot be made or needs more than ``max_steps`` calls.

    Each layer takes the fewest layers' worth of depth (even split of what each side still needs) that
    keeps every window within the cap, found by bisection over the number of layers left.
    """
    remaining = {s: pads[s] for s in ("left", "top", "right", "bottom")}
    known = image_box
    steps: list[PlanStep] = []
    canvas_area = (image_box.width + pads.left + pads.right) * (image_box.height + pads.top + pads.bottom)
    while any(remaining.values()):
        # No step adds more than step_frac of a full window: a bound on the calls still to come.
        if len(steps) + math.ceil((canvas_area - known.width * known.height) / (step_frac * window * window) - 1e-9) > max_steps:
            return None
        caps = {"x": _max_depth(known.width, window, step_frac), "y": _max_depth(known.height, window, step_frac)}
        if min(caps.values()) < 1:
            return None
        # A corner window adds more than a strip window of the same depth, so the strip cap bounds the depth.
        lo = max(math.ceil(remaining[s] / caps["x" if s in ("left", "right") else "y"]) for s in remaining)
        hi = max(remaining.values())

        def layer(n: int, build: bool = False, known: Box = known, remaining: dict[str, int] = remaining,
                  first: int = len(steps)) -> list[PlanStep] | None:
            depth = {s: math.ceil(r / n) for s, r in remaining.items()}
            return _ring_layer(known, depth, window, step_frac, overlap, first, build)

        n = lo
        if layer(lo) is None:
            if layer(hi) is None:
                return None
            while hi - lo > 1:  # invariant: lo fails, hi works
                mid = (lo + hi) // 2
                if layer(mid) is None:
                    lo = mid
                else:
                    hi = mid
            n = hi
        steps.extend(layer(n, build=True) or [])
        if len(steps) > max_steps:
            return None
        depth = {s: math.ceil(r / n) for s, r in remaining.items()}
        known = Box(known.x0 - depth["left"], known.y0 - depth["top"], known.x1 + depth["right"],
                    known.y1 + depth["bottom"])
        remaining = {s: r - depth[s] for s, r in remaining.items()}
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
        raise InvalidInputError(Arg("window"), f" must be a whole number of pixels >= 8, got {window!r}")
    try:
        step_frac = float(step_frac)
    except (TypeError, ValueError):
        raise InvalidInputError(Arg("step_frac"), f" must be a number in (0, {MAX_STEP_FRAC}], got {step_frac!r}") from None
    if not (0.0 < step_frac <= MAX_STEP_FRAC):
        raise InvalidInputError(
            Arg("step_frac"), f" must lie in (0, {MAX_STEP_FRAC}] so each window keeps at least half known pixels, got {step_frac:g}"
        )
    if overlap is None:
        overlap = window // 4
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < window:
        raise InvalidInputError(Arg("overlap"), f" must be a whole number of pixels in [0, window={window}), got {overlap!r}")
    pads = resolve_padding(image_size, ratio=ratio, ratio_x=ratio_x, ratio_y=ratio_y, left=left, right=right,
                           top=top, bottom=bottom, anchor=anchor, max_size=max_size)
    w, h = int(image_size[0]), int(image_size[1])
    image_box = Box(pads.left, pads.top, pads.left + w, pads.top + h)
    canvas = (w + pads.left + pads.right, h + pads.top + pads.bottom)
    # Finish one axis first; the first axis's strips span only the original side, so they need fewer
    # windows. Try both orders and keep the cheaper (x first on a tie: the paper's horizontal case).
    candidates = [_strip_steps(order, image_box, pads, window, step_frac, overlap) for order in (("x", "y"), ("y", "x"))]
    steps = min(candidates, key=len)
    grows_x = pads.left > 0 or pads.right > 0
    grows_y = pads.top > 0 or pads.bottom > 0
    if grows_x and grows_y and len(steps) > 1:
        # Corner windows can fill two sides in one call; use them only when that saves calls.
        ring = _ring_steps(image_box, pads, window, step_frac, overlap, max_steps=len(steps) - 1)
        if ring is not None and len(ring) < len(steps):
            steps = ring
    return ExtendPlan(image_size=(w, h), canvas_size=canvas, image_box=image_box, window=window,
                      step_frac=step_frac, overlap=overlap, steps=tuple(steps))
