"""Masked PSNR and SSIM: hand-computed values, only the hole counts, kornia agreement."""

import math

import numpy as np
import pytest
import torch

from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.evaluation import masked_psnr, masked_ssim
from prefpaint_sdk.evaluation.metrics import PSNR_CAP


def _pair():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    hole = np.zeros((24, 20), bool)
    hole[6:18, 5:15] = True
    return gt, hole


def test_masked_psnr_by_hand():
    gt, hole = _pair()
    pred = gt.copy()
    pred[hole] = np.clip(gt[hole].astype(int) + 51, 0, 255)  # 51/255 = 0.2 where not clipped
    err = (pred.astype(np.float64) - gt) / 255
    expected = 10 * math.log10(1 / np.mean(err[hole] ** 2))
    assert masked_psnr(pred, gt, hole) == pytest.approx(expected, abs=1e-9)
    # Pixels outside the hole do not count.
    pred2 = pred.copy()
    pred2[~hole] = 0
    assert masked_psnr(pred2, gt, hole) == pytest.approx(expected, abs=1e-9)
    assert masked_psnr(gt, gt, hole) == PSNR_CAP
    assert masked_psnr(gt, gt, np.zeros_like(hole)) is None


def test_masked_ssim():
    gt, hole = _pair()
    assert masked_ssim(gt, gt, hole) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(gt.astype(int) + np.random.default_rng(1).integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
    full = np.ones(hole.shape, bool)
    from kornia.metrics import ssim

    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    # With the whole image as the hole it is kornia's mean SSIM.
    assert masked_ssim(noisy, gt, full) == pytest.approx(float(ssim(t(noisy), t(gt), 11).mean()), abs=1e-6)
    s = masked_ssim(noisy, gt, hole)
    assert 0 < s < 1
    assert masked_ssim(np.where(hole[..., None], noisy, 0).astype(np.uint8), gt, hole) != s  # context matters at edges


def test_metric_size_errors():
    gt, hole = _pair()
    with pytest.raises(InvalidInputError, match="prediction is 10x10 but ground truth is 20x24"):
        masked_psnr(np.zeros((10, 10, 3), np.uint8), gt, hole)
    with pytest.raises(InvalidInputError, match="mask is 5x5 but the image is 20x24"):
        masked_ssim(gt, gt, np.ones((5, 5), bool))
