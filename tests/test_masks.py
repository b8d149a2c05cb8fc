"""Seeded mask generators: determinism, coverage statistics, shapes, errors."""

import numpy as np
import pytest

from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.masks import (
    MASK_KINDS,
    WARP_GRID,
    generate_mask,
    outpaint_square_mask,
    outpaint_strip_mask,
    stroke_mask,
    warp_hole_mask,
)


def _depth(h=64, w=80):
    d = np.full((h, w), 10.0)
    d[h // 4:3 * h // 4, w // 4:3 * w // 4] = 4.0  # a box in front of a wall: disocclusions at its edges
    return d


@pytest.mark.parametrize("kind", ["outpaint_square", "outpaint_strip", "stroke", "warp"])
def test_deterministic_for_a_seed(kind):
    d = _depth(48, 48)
    a = generate_mask(kind, 48, seed=7, depth=d)
    b = generate_mask(kind, 48, seed=7, depth=d)
    assert a.dtype == bool and a.shape == (48, 48)
    assert np.array_equal(a, b)


def test_different_seeds_differ():
    masks = [generate_mask("stroke", 64, seed=s) for s in range(5)]
    assert len({m.tobytes() for m in masks}) == 5


def test_outpaint_square_keeps_15_to_25_percent():
    kept = [1 - outpaint_square_mask(96, 128, s).mean() for s in range(40)]
    assert min(kept) >= 0.15 - 0.01 and max(kept) <= 0.25 + 0.01
    assert np.std(kept) > 0.01  # the fraction is drawn, not fixed


def test_outpaint_square_is_a_square_hole_complement():
    m = outpaint_square_mask(64, 64, 3, center=False)
    ys, xs = np.nonzero(~m)
    assert (ys.max() - ys.min()) == (xs.max() - xs.min())
    assert (~m).sum() == (ys.max() - ys.min() + 1) ** 2


def test_outpaint_strip_keeps_35_to_40_percent_full_height():
    for s in range(30):
        m = outpaint_strip_mask(50, 200, s, position="random")
        kept_cols = (~m).all(axis=0)
        assert (~m).any(axis=0).sum() == kept_cols.sum()  # kept columns are kept over the full height
        assert 0.35 - 0.005 <= kept_cols.mean() <= 0.40 + 0.005


def test_strip_positions_and_bad_position():
    assert not outpaint_strip_mask(10, 100, 0, position="left")[:, 0].any()
    assert not outpaint_strip_mask(10, 100, 0, position="right")[:, -1].any()
    with pytest.raises(InvalidInputError, match="position 'top'"):
        outpaint_strip_mask(10, 100, 0, position="top")


def test_stroke_coverage_in_range():
    cov = [stroke_mask(64, 64, s).mean() for s in range(40)]
    assert min(cov) > 0.0
    assert max(cov) <= 0.75
    assert 0.03 < np.mean(cov) < 0.5


def test_warp_identity_has_no_holes_and_moves_do():
    d = _depth()
    assert not warp_hole_mask(d, 0.0, 0.0).any()
    for yaw, pitch in WARP_GRID:
        if (yaw, pitch) != (0.0, 0.0):
            cov = warp_hole_mask(d, yaw, pitch).mean()
            assert 0.01 < cov < 0.6


def test_warp_disocclusion_behind_depth_edge():
    # A flat wall gives only border holes; a foreground box adds holes beside it (disocclusion).
    flat = np.full((64, 64), 10.0)
    box = _depth(64, 64)
    hf = warp_hole_mask(flat, 0.3, 0.0)
    hb = warp_hole_mask(box, 0.3, 0.0)
    inner = (slice(8, 56), slice(8, 56))
    assert hb[inner].sum() > hf[inner].sum()


def test_warp_errors():
    with pytest.raises(InvalidInputError, match="HxW"):
        warp_hole_mask(np.ones((4, 4, 3)), 0.1, 0.0)
    with pytest.raises(InvalidInputError, match="> 0"):
        warp_hole_mask(np.zeros((8, 8)), 0.1, 0.0)
    with pytest.raises(InvalidInputError, match="needs a depth map"):
        generate_mask("warp", 32, seed=0)
    with pytest.raises(InvalidInputError, match="resize the depth"):
        generate_mask("warp", (32, 16), seed=0, depth=np.ones((32, 32)))
    with pytest.raises(InvalidInputError, match="unknown"):
        generate_mask("blob", 32, seed=0)
    with pytest.raises(InvalidInputError, match="too small"):
        outpaint_square_mask(2, 2, 0)


def test_odd_sizes_and_random_kind():
    for kind in MASK_KINDS[1:] + ("random",):
        m = generate_mask(kind, (33, 17), seed=1)
        assert m.shape == (17, 33) and m.any()


def test_masks_imports_only_imaging():
    import ast
    import inspect

    import prefpaint_sdk.masks as mod

    tree = ast.parse(inspect.getsource(mod))
    rel = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert sorted(rel) == ["errors", "imaging"]  # and errors, the layer every module may use
