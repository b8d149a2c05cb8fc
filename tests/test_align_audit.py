"""The bias audit (align/audit.py): exact values on hand-computed images."""

from __future__ import annotations

import math

import pytest
import torch

from prefpaint_sdk.align.audit import audit_batch, colourfulness, context_ring, luma, region_means, saturation


def _image(hole_px, ring_px):
    """A 4x4 image whose centre 2x2 (the hole) and 12 surrounding pixels take the given colours in order."""
    img = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 1:3, 1:3] = True
    hole = [(r, c) for r in range(4) for c in range(4) if mask[0, r, c]]
    ring = [(r, c) for r in range(4) for c in range(4) if not mask[0, r, c]]
    for (r, c), px in zip(hole, hole_px):
        img[0, :, r, c] = torch.tensor(px)
    for (r, c), px in zip(ring, ring_px):
        img[0, :, r, c] = torch.tensor(px)
    return img, mask


# hole: two (0.5, 0.25, 0) and two (0.25, 0.25, 0.5); context: six red (1, 0, 0) and six green (0, 1, 0)
HOLE = [(0.5, 0.25, 0.0), (0.25, 0.25, 0.5)] * 2
RING = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)] * 6


def test_context_ring_is_the_dilated_hole_minus_the_hole():
    m = torch.zeros(2, 6, 6, dtype=torch.bool)
    m[0, 2, 2] = True
    m[1, 0, 0] = True
    r1, r2 = context_ring(m, 1), context_ring(m, 2)
    assert r1[0].sum() == 8 and not r1[0, 2, 2] and r1[0, 1:4, 1:4].sum() == 8
    assert r2[0].sum() == 24 and r2[0, 0:5, 0:5].sum() == 24
    assert r1[1].sum() == 3 and r1[1, :2, :2].sum() == 3  # clipped at the border
    with pytest.raises(ValueError, match="masks must be"):
        context_ring(m[0], 1)


def test_pixel_measures_exact():
    img = torch.tensor([[0.5, 0.25, 0.0], [0.25, 0.25, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]).T.reshape(1, 3, 1, 4)
    assert luma(img)[0, 0].tolist() == pytest.approx([0.29625, 0.2785, 0.0, 1.0])
    assert saturation(img)[0, 0].tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])  # black: 0, not NaN


def test_hole_against_context_exact():
    img, mask = _image(HOLE, RING)
    # hole: rg = (0.25, 0), yb = (0.375, -0.25) -> mu (0.125, 0.0625), sigma (0.125, 0.3125)
    m_hole = math.sqrt(0.125**2 + 0.3125**2) + 0.3 * math.sqrt(0.125**2 + 0.0625**2)
    # context: rg = +-1 -> mu 0, sigma 1; yb = 0.5 for both -> mu 0.5, sigma 0
    m_ctx = 1.0 + 0.3 * 0.5
    a = audit_batch(img, mask, width=1)
    expected = {
        "hole_brightness": (0.29625 + 0.2785) / 2, "context_brightness": (0.299 + 0.587) / 2,
        "hole_saturation": 0.75, "context_saturation": 1.0,
        "hole_colourfulness": m_hole, "context_colourfulness": m_ctx,
    }
    for k, v in expected.items():
        assert a[k] == pytest.approx(v, abs=1e-6), k
    for m in ("brightness", "saturation", "colourfulness"):
        assert a[f"diff_{m}"] == pytest.approx(expected[f"hole_{m}"] - expected[f"context_{m}"], abs=1e-6)
    # a (B, 1, H, W) mask gives the same figures
    assert audit_batch(img, mask[:, None], width=1) == a


def test_empty_regions_are_nan_and_skipped_in_the_batch_mean():
    img, mask = _image(HOLE, RING)
    imgs = torch.cat([img, img])
    masks = torch.cat([mask, torch.zeros_like(mask)])  # the second image has no hole (and so no ring)
    per = region_means(imgs, masks)
    assert math.isnan(per["brightness"][1]) and math.isnan(colourfulness(imgs, masks)[1])
    assert audit_batch(imgs, masks, 1) == pytest.approx(audit_batch(img, mask, 1))
    full = torch.ones_like(mask)  # a hole that is the whole image has no context
    a = audit_batch(img, full, 1)
    assert math.isnan(a["context_brightness"]) and math.isnan(a["diff_brightness"])
    assert a["hole_brightness"] == pytest.approx(float(luma(img).mean()))
