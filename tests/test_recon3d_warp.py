"""Warping and hole masks against exact ground truth renders (open3d ray casting)."""

from __future__ import annotations

import numpy as np
import pytest
from _recon3d_fakes import iou, psnr, scene
from prefpaint_apps.recon3d import WarpSource, clean_holes, covisible_mask, forward_warp
from prefpaint_apps.recon3d.cameras import slerp_pose
from prefpaint_apps.recon3d.warp import WarpResult

from prefpaint_sdk import InvalidInputError


def _sources(sc, idx):
    return [WarpSource(sc.frames[i].rgb, sc.frames[i].depth, sc.frames[i].intrinsics, sc.frames[i].c2w) for i in idx]


def _targets(sc):
    f = sc.frames
    forward = slerp_pose(f[0].c2w, f[2].c2w, 0.5)
    forward[:3, 3] += 0.4 * forward[:3, 2]  # step toward the scene: magnification > 1, needs footprints
    sideways = f[1].c2w.copy()
    sideways[:3, 3] += 0.35 * sideways[:3, 0]
    return {"neighbour": ([0], f[1].c2w), "between-forward": ([0, 2], forward), "sideways": ([1], sideways)}


@pytest.mark.parametrize("case", ["neighbour", "between-forward", "sideways"])
def test_warp_matches_ground_truth(case):
    sc = scene(3, 320, 240)
    idx, c2w = _targets(sc)[case]
    k = sc.frames[0].intrinsics
    gt_rgb, gt_d = sc.render(k, c2w)
    cleaned = clean_holes(forward_warp(_sources(sc, idx), k, c2w), dilate=0)
    seen = covisible_mask(gt_d, k, c2w, [(sc.frames[i].depth, k, sc.frames[i].c2w) for i in idx])
    gt_holes = ~seen
    assert 0.02 < gt_holes.mean() < 0.6, "the case must actually disocclude something"
    vis = seen & ~cleaned.holes
    p = psnr(cleaned.rgb, gt_rgb, vis)
    j = iou(cleaned.holes, gt_holes)
    rel = np.abs(cleaned.depth[vis] - gt_d[vis]) / gt_d[vis]
    print(f"{case}: PSNR {p:.2f} dB, hole IoU {j:.3f}, depth rel err median {np.median(rel):.4f}, holes {gt_holes.mean():.3f}")
    assert p >= 30.0
    assert j >= 0.9
    assert np.median(rel) < 0.01
    assert vis.sum() >= 0.97 * seen.sum()  # nearly every visible pixel is recovered, not masked away


def test_identity_warp_is_exact():
    sc = scene(3, 320, 240)
    f = sc.frames[0]
    w = forward_warp(_sources(sc, [0]), f.intrinsics, f.c2w)
    # A background pixel in a one-pixel-wide gap between two nearer surfaces is indistinguishable from a
    # crack leak and is emptied (then refilled as a speck); this scene has a handful of them.
    assert (~w.valid).sum() <= 5
    v = w.valid
    assert np.abs(w.rgb[v].astype(int) - f.rgb[v].astype(int)).max() <= 1
    np.testing.assert_allclose(w.depth[v], f.depth[v], rtol=1e-5)


def test_odd_target_size_and_invalid_depth_pixels():
    sc = scene(3, 320, 240)
    f = sc.frames[0]
    k = f.intrinsics.scaled(161, 121)
    src = _sources(sc, [0])[0]
    src.depth = src.depth.copy()
    src.depth[:, :40] = 0  # missing readings must become holes, never points at the camera
    w = forward_warp([src], k, f.c2w)
    assert w.rgb.shape == (121, 161, 3) and w.depth.shape == (121, 161) and w.valid.shape == (121, 161)
    assert not w.valid[:, :15].any() and w.valid[:, 30:].mean() > 0.95
    assert (w.depth[w.valid] > 0.5).all()


def test_clean_holes_fills_specks_and_dilates():
    valid = np.ones((60, 80), bool)
    valid[10, 10] = False  # a speck
    valid[30:50, 30:60] = False  # a real hole
    rgb = np.full((60, 80, 3), 100, np.uint8)
    rgb[~valid] = 0
    depth = np.where(valid, 2.0, 0.0).astype(np.float32)
    c = clean_holes(WarpResult(rgb, depth, valid), dilate=2)
    assert c.specks_filled == 1 and not c.holes[10, 10] and tuple(c.rgb[10, 10]) == (100, 100, 100) and c.depth[10, 10] == 2.0
    assert c.holes[30:50, 30:60].all() and c.holes.sum() == 20 * 30
    assert c.inpaint_mask.sum() > c.holes.sum() and c.inpaint_mask[28, 40] and not c.inpaint_mask[26, 40]


def test_warp_errors():
    sc = scene(3, 320, 240)
    f = sc.frames[0]
    with pytest.raises(InvalidInputError, match="at least one source"):
        forward_warp([], f.intrinsics, f.c2w)
    bad = WarpSource(f.rgb[:100], f.depth, f.intrinsics, f.c2w)
    with pytest.raises(InvalidInputError, match=r"warp source 0: rgb \(100, 320, 3\)"):
        forward_warp([bad], f.intrinsics, f.c2w)
