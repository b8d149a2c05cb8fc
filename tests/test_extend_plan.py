"""The extension step plan, with no model: coverage, bounds, context, sizes, and every bad size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from prefpaint_apps.outpaint import (
    DEFAULT_MAX_SIZE,
    ExtendPlan,
    Padding,
    plan_extension,
    resolve_padding,
)

from prefpaint_sdk import ConfigError, InvalidInputError

# The side of ``new`` that must touch known pixels, as (row/column just outside new) per grown side.


def _touching_line(step):
    n = step.new
    if step.side == "top":
        return (slice(n.y1, n.y1 + 1), slice(n.x0, n.x1))
    if step.side == "bottom":
        return (slice(n.y0 - 1, n.y0), slice(n.x0, n.x1))
    if step.side == "left":
        return (slice(n.y0, n.y1), slice(n.x1, n.x1 + 1))
    return (slice(n.y0, n.y1), slice(n.x0 - 1, n.x0))


def _check_new_area_borders_known(step, win_known: np.ndarray, new_mask: np.ndarray, step_frac: float) -> None:
    """Any new area (box or L-shape): each connected piece touches known pixels (4-adjacent), and no new
    pixel lies deeper than the cap allows (``step_frac`` of the window's longer side) from known pixels."""
    from scipy.ndimage import binary_dilation, distance_transform_cdt, label

    beside_known = new_mask & binary_dilation(win_known, structure=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool))
    labels, n = label(new_mask)
    for k in range(1, n + 1):
        assert beside_known[labels == k].any(), f"step {step.index}: a new piece borders no known pixel"
    depth = distance_transform_cdt(~win_known, metric="chessboard")[new_mask].max()
    assert depth <= step_frac * max(step.window.width, step.window.height) + 1e-9, f"step {step.index} reaches too deep"


def check_plan(plan: ExtendPlan) -> np.ndarray:
    """Assert every plan property while replaying it on a known-pixel mask; return the final mask."""
    W, H = plan.canvas_size
    w, h = plan.image_size
    b = plan.image_box
    assert (b.width, b.height) == (w, h)
    assert 0 <= b.x0 and b.x1 <= W and 0 <= b.y0 and b.y1 <= H
    known = np.zeros((H, W), bool)
    known[b.y0:b.y1, b.x0:b.x1] = True
    filled = 0
    for i, s in enumerate(plan.steps):
        win, new = s.window, s.new
        assert s.index == i
        # the window lies on the canvas, is at most `window` px a side (never an upscaled big shot)
        assert 0 <= win.x0 < win.x1 <= W and 0 <= win.y0 < win.y1 <= H
        assert win.width <= plan.window and win.height <= plan.window
        assert s.parts[0] == new
        win_known = known[win.y0:win.y1, win.x0:win.x1]
        new_mask = np.zeros_like(win_known)
        for part in s.parts:
            # every new box is non-empty and inside its window
            assert win.x0 <= part.x0 < part.x1 <= win.x1 and win.y0 <= part.y0 < part.y1 <= win.y1
            new_mask[part.y0 - win.y0:part.y1 - win.y0, part.x0 - win.x0:part.x1 - win.x0] = True
        # the parts are disjoint and new_area / new_fraction count them all
        assert new_mask.sum() == s.new_area == sum(p.width * p.height for p in s.parts)
        # the new area stays within the cap, so the model sees >= half known pixels
        assert s.new_fraction <= plan.step_frac + 1e-12
        # new pixels are not known yet; every other window pixel is known (real context, no prefill)
        assert not (win_known & new_mask).any(), f"step {i} refills known pixels"
        assert win_known[~new_mask].all(), f"step {i} sees unknown pixels outside its new box"
        assert win_known.mean() >= 1 - plan.step_frac - 1e-12
        if not s.extra:
            # a strip step: every new pixel row/column borders known pixels along its whole length
            assert known[_touching_line(s)].all(), f"step {i} does not border known pixels"
        else:
            # a corner step (L-shape): names the sides it grows, each piece borders known pixels
            assert "-" in s.side and set(s.side.split("-")) <= {"top", "bottom", "left", "right"}
        _check_new_area_borders_known(s, win_known, new_mask, plan.step_frac)
        known[win.y0:win.y1, win.x0:win.x1] |= new_mask
        filled += s.new_area
    # full coverage, each pixel exactly once (disjoint steps + all covered)
    assert known.all()
    assert filled == W * H - w * h
    return known


@pytest.mark.parametrize(
    "size, kwargs",
    [
        ((512, 512), dict(ratio=2.0)),
        ((512, 512), dict(ratio=2.0, step_frac=0.5)),
        ((37, 91), dict(ratio=2.3, window=64)),  # odd sizes, tiny window
        ((91, 37), dict(ratio=1.01, window=64)),  # a ratio that adds a pixel or so
        ((1001, 333), dict(ratio=1.5, window=512, overlap=0)),
        ((300, 200), dict(ratio_x=3.0)),  # horizontal only
        ((300, 200), dict(ratio_y=2.5, window=128)),  # vertical only
        ((300, 200), dict(ratio_x=1.7, ratio_y=1.3, anchor="left", window=128)),
        ((300, 200), dict(ratio=2, anchor="bottom", window=128, step_frac=0.1)),
        ((64, 48), dict(left=7, right=0, top=129, bottom=3, window=64)),  # explicit, asymmetric pads
        ((5, 5), dict(ratio=9, window=64)),  # a tiny image grows geometrically
        ((64, 64), dict(ratio=40.0, window=256)),  # a very large ratio
        ((2048, 1536), dict(ratio=1.25)),  # larger than the window: strips of several windows
    ],
)
def test_plan_properties(size, kwargs):
    plan = plan_extension(size, **kwargs)
    assert plan.num_steps >= 1
    check_plan(plan)


def test_canvas_size_is_exact_for_ratios_and_pixels():
    assert plan_extension((101, 77), ratio=2.0).canvas_size == (202, 154)
    assert plan_extension((101, 77), ratio=1.5).canvas_size == (round(101 * 1.5), round(77 * 1.5))
    assert plan_extension((101, 77), ratio_x=3).canvas_size == (303, 77)
    assert plan_extension((101, 77), ratio_y=3).canvas_size == (101, 231)
    assert plan_extension((101, 77), left=1, bottom=2).canvas_size == (102, 79)
    # no size at all means ratio 2
    assert plan_extension((101, 77)).canvas_size == (202, 154)


@pytest.mark.parametrize(
    "anchor, box",
    [
        ("center", (50, 40, 150, 120)),  # odd totals (101, 81): the extra pixel goes right / bottom
        ("left", (0, 40, 100, 120)),
        ("right", (101, 40, 201, 120)),
        ("top", (50, 0, 150, 80)),
        ("bottom", (50, 81, 150, 161)),
    ],
)
def test_anchor_places_the_original(anchor, box):
    plan = plan_extension((100, 80), ratio=2.01, anchor=anchor)
    assert plan.canvas_size == (201, 161)
    assert plan.image_box.as_tuple() == box


def test_horizontal_only_never_touches_top_or_bottom():
    plan = plan_extension((300, 200), ratio_x=2.5, window=128)
    assert {s.side for s in plan.steps} == {"left", "right"}
    # every step fills pixels beside the image, never above or below it
    assert all(0 <= s.new.y0 < s.new.y1 <= 200 for s in plan.steps)
    assert plan.padding == Padding(left=225, top=0, right=225, bottom=0)


def test_vertical_only():
    plan = plan_extension((300, 200), ratio_y=2, window=128)
    assert {s.side for s in plan.steps} == {"top", "bottom"}


def test_large_ratio_means_more_steps_not_bigger_windows():
    counts = []
    for ratio in (1.5, 2, 4, 8, 16):
        plan = plan_extension((256, 256), ratio=ratio, window=256)
        assert max(max(s.window.width, s.window.height) for s in plan.steps) <= 256
        assert plan.max_new_fraction <= 0.3
        counts.append(plan.num_steps)
    assert counts == sorted(counts) and counts[-1] > 10 * counts[0]


def test_very_large_ratio_is_planned_quickly_and_validly():
    plan = plan_extension((100, 100), ratio=100, max_size=20_000, window=512)
    assert plan.canvas_size == (10_000, 10_000)
    assert plan.max_new_fraction <= 0.3 + 1e-12
    area = sum(s.new.width * s.new.height for s in plan.steps)
    assert area == 10_000 ** 2 - 100 ** 2


def test_step_frac_caps_the_new_share_and_sets_the_step_count():
    fracs = [plan_extension((512, 512), ratio=2, step_frac=f).max_new_fraction for f in (0.1, 0.2, 0.3, 0.5)]
    assert all(m <= f + 1e-12 for m, f in zip(fracs, (0.1, 0.2, 0.3, 0.5)))
    steps = [plan_extension((512, 512), ratio=2, step_frac=f).num_steps for f in (0.1, 0.2, 0.3, 0.5)]
    assert steps == sorted(steps, reverse=True)


def test_windows_of_a_strip_overlap_by_at_least_overlap():
    plan = plan_extension((2000, 300), ratio_y=1.5, window=512, overlap=100)
    by_strip: dict[tuple, list] = {}
    for s in plan.steps:
        by_strip.setdefault((s.side, s.new.y0, s.new.y1), []).append(s.window)
    for wins in by_strip.values():
        for a, b in itertools.pairwise(wins):
            assert a.x1 - b.x0 >= 100


def test_plan_to_dict_is_json_ready():
    import json

    d = plan_extension((64, 48), ratio=2, window=64).to_dict()
    text = json.dumps(d)
    assert d["canvas_size"] == [128, 96]
    assert d["num_steps"] == len(d["steps"]) and "new_fraction" in d["steps"][0]
    assert json.loads(text)["padding"] == {"left": 32, "top": 24, "right": 32, "bottom": 24}


def test_max_depth_keeps_rounding_under_the_cap():
    # 0.3 * 512 = 153.6 and float rounding must never let a step reach 154 / 512 > 0.3
    plan = plan_extension((512, 512), left=154, step_frac=0.3)
    assert plan.max_new_fraction <= 0.3
    assert plan.num_steps == 2


# --------------------------------------------------------------------------------------------------
# Bad sizes


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(ratio=0.5), InvalidInputError, r"ratio must be >= 1 .*got 0\.5"),
        (dict(ratio=-2), InvalidInputError, r"ratio must be >= 1 .*got -2"),
        (dict(ratio_x=0.9), InvalidInputError, r"ratio_x must be >= 1 .*got 0\.9"),
        (dict(ratio_y=0), InvalidInputError, r"ratio_y must be >= 1 .*got 0"),
        (dict(ratio=float("nan")), InvalidInputError, r"ratio must be a finite number"),
        (dict(ratio=float("inf")), InvalidInputError, r"ratio must be a finite number"),
        (dict(ratio="wide"), InvalidInputError, r"ratio must be a number >= 1, got 'wide'"),
        (dict(ratio=1.0), InvalidInputError, r"ratio=1 adds no pixels to a 100x80 image"),
        (dict(ratio_x=1.001), InvalidInputError, r"adds no pixels"),
        (dict(left=-5), InvalidInputError, r"left must be >= 0 pixels .*got -5"),
        (dict(top=0, bottom=0), InvalidInputError, r"zero on every side"),
        (dict(left=0, right=0, top=0, bottom=0), InvalidInputError, r"zero on every side"),
        (dict(left=1.5), InvalidInputError, r"left must be a whole number of pixels >= 0, got 1\.5"),
        (dict(ratio=2, ratio_x=3), ConfigError, r"ratio=2 conflicts with ratio_x=3"),
        (dict(ratio=2, left=10), ConfigError, r"ratio=2 conflicts with left=10"),
        (dict(ratio_y=2, top=10), ConfigError, r"ratio_y=2 conflicts with top=10"),
        (dict(left=10, anchor="left"), ConfigError, r"anchor='left' applies to ratios only"),
        (dict(ratio=2, anchor="middle"), InvalidInputError, r"anchor must be one of center, left, right, top, bottom; got 'middle'"),
        (dict(ratio=200), InvalidInputError, r"canvas would be 20000x16000 px, beyond max_size=16384"),
        (dict(left=16384), InvalidInputError, r"canvas would be 16484x80 px, beyond max_size=16384"),
        (dict(ratio=3, max_size=256), InvalidInputError, r"canvas would be 300x240 px, beyond max_size=256"),
        (dict(ratio=2, max_size=0), InvalidInputError, r"max_size must be a positive whole number"),
        (dict(ratio=2, step_frac=0), InvalidInputError, r"step_frac must lie in \(0, 0\.5\].*got 0"),
        (dict(ratio=2, step_frac=0.6), InvalidInputError, r"step_frac must lie in \(0, 0\.5\].*got 0\.6"),
        (dict(ratio=2, window=4), InvalidInputError, r"window must be a whole number of pixels >= 8, got 4"),
        (dict(ratio=2, window=64, overlap=64), InvalidInputError, r"overlap must be a whole number of pixels in \[0, window=64\), got 64"),
        (dict(ratio=2, overlap=-1), InvalidInputError, r"overlap must be .* got -1"),
    ],
)
def test_bad_sizes_are_refused_with_the_value_and_the_fix(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        plan_extension((100, 80), **kwargs)


def test_errors_are_invalid_input_for_the_cli_exit_code():
    # ConfigError is an InvalidInputError: the CLI maps both to exit code 2
    assert issubclass(ConfigError, InvalidInputError)
    assert InvalidInputError.exit_code == 2


def test_image_too_small_for_the_step_frac():
    with pytest.raises(InvalidInputError, match=r"image is 2 px along the x axis, too small .*step_frac=0\.3"):
        plan_extension((2, 50), ratio_x=3)
    # a larger step_frac works on the same image
    check_plan(plan_extension((2, 50), ratio_x=3, step_frac=0.5))


def test_default_max_size_is_16k():
    assert DEFAULT_MAX_SIZE == 16384
    assert resolve_padding((8192, 10), ratio_x=2).total == 8192
    with pytest.raises(InvalidInputError, match="beyond max_size=16384"):
        resolve_padding((8193, 10), ratio_x=2)


# --------------------------------------------------------------------------------------------------
# Corner windows (ring plan): both axes grow, one window fills a corner and both strips beside it


def _naive_sliding_window(image_size, ratio, window=512):
    """(calls, max new fraction) of a fixed 50%-overlap raster sliding window, as in the benchmark."""
    w, h = image_size
    W, H = round(w * ratio), round(h * ratio)
    known = np.zeros((H, W), bool)
    x0, y0 = (W - w) // 2, (H - h) // 2
    known[y0:y0 + h, x0:x0 + w] = True

    def starts(n):
        if n <= window:
            return [0]
        s = list(range(0, n - window + 1, window // 2))
        return s if s[-1] == n - window else [*s, n - window]

    calls, worst = 0, 0.0
    for y in starts(H):
        for x in starts(W):
            win = known[y:y + min(window, H), x:x + min(window, W)]
            if not win.all():
                calls, worst = calls + 1, max(worst, 1.0 - win.mean())
                win[:] = True
    return calls, worst


def test_ratio_1_5_both_axes_uses_corner_windows_and_beats_naive():
    plan = plan_extension((512, 512), ratio=1.5, window=512, step_frac=0.5)
    check_plan(plan)
    naive_calls, naive_max = _naive_sliding_window((512, 512), 1.5)
    assert (naive_calls, round(naive_max, 4)) == (4, 0.4375)
    assert plan.num_steps <= naive_calls and plan.max_new_fraction <= naive_max + 1e-12
    # four corner windows, each filling an L-shape: the corner plus the two strips beside it
    assert plan.num_steps == 4
    assert [s.side for s in plan.steps] == ["top-left", "top-right", "bottom-left", "bottom-right"]
    assert all(len(s.parts) == 2 for s in plan.steps)
    first = plan.steps[0]
    assert first.window.as_tuple() == (0, 0, 512, 512)
    assert [p.as_tuple() for p in first.parts] == [(0, 0, 512, 128), (0, 128, 128, 512)]
    assert first.new_area == 512 * 128 + 128 * 384


@pytest.mark.parametrize(
    "size, kwargs",
    [
        ((512, 512), dict(ratio=1.5, step_frac=0.5)),
        ((512, 512), dict(ratio=1.5, step_frac=0.45)),
        ((64, 64), dict(ratio=1.5, window=64, step_frac=0.5)),
        ((40, 30), dict(ratio=2.0, window=64)),  # whole rings in one window each
        ((48, 40), dict(ratio=1.25, window=64)),
        ((33, 21), dict(left=5, right=11, top=3, bottom=0, window=64)),  # uneven sides, one side not growing
        ((600, 400), dict(ratio_x=1.4, ratio_y=1.6, window=512, step_frac=0.5)),
        ((500, 700), dict(ratio=1.3, anchor="top", window=512, step_frac=0.5)),
    ],
)
def test_corner_plans_keep_every_invariant(size, kwargs):
    plan = plan_extension(size, **kwargs)
    check_plan(plan)
    assert plan == plan_extension(size, **kwargs)  # deterministic


def test_corner_windows_are_used_only_when_they_save_calls():
    # ratio 2 at step_frac 0.5: the strip plan's 8 calls stay (a ring plan would need 12)
    plan = plan_extension((512, 512), ratio=2.0, step_frac=0.5)
    assert plan.num_steps == 8 and all(not s.extra for s in plan.steps)
    # one axis only: never a corner
    assert all(not s.extra for s in plan_extension((300, 200), ratio_x=1.5, window=128).steps)
    # with both axes, a ring plan is never longer than the strip plan it replaced
    for ratio in (1.2, 1.5, 2, 3):
        for frac in (0.2, 0.3, 0.5):
            check_plan(plan_extension((200, 150), ratio=ratio, window=128, step_frac=frac))


def test_corner_step_to_dict_lists_every_part():
    import json

    plan = plan_extension((512, 512), ratio=1.5, step_frac=0.5)
    d = json.loads(json.dumps(plan.to_dict()))
    first = d["steps"][0]
    assert first["side"] == "top-left" and first["new"] == [0, 0, 512, 128]
    assert first["new_extra"] == [[0, 128, 128, 512]]
    assert first["new_px"] == 114688 and first["new_fraction"] == 0.4375
    assert d["max_new_fraction"] == 0.4375
    # strip steps keep the old layout (no new_extra)
    assert "new_extra" not in plan_extension((512, 512), ratio=2.0, step_frac=0.5).to_dict()["steps"][0]
