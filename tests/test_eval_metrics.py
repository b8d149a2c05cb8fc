"""Masked PSNR and SSIM: hand-computed values (SSIM by an independent scipy implementation), only the hole counts."""

import math

import numpy as np
import pytest

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


def _ssim_map_by_hand(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map in float64 with scipy: an 11-tap Gaussian window (sigma 1.5), mirrored borders
    (torch's 'reflect'), C1 = 0.01^2, C2 = 0.03^2 for images in [0, 1]; (H, W, C)."""
    from scipy.ndimage import correlate1d

    taps = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(x):
        return correlate1d(correlate1d(x, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror")

    a, b = a.astype(np.float64) / 255, b.astype(np.float64) / 255
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def test_masked_ssim():
    gt, hole = _pair()
    assert masked_ssim(gt, gt, hole) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(gt.astype(int) + np.random.default_rng(1).integers(-40, 40, gt.shape), 0, 255).astype(np.uint8)
    smap = _ssim_map_by_hand(noisy, gt)
    # The mean of the SSIM map over the hole's pixels and channels, and over all pixels for a full mask.
    s = masked_ssim(noisy, gt, hole)
    assert s == pytest.approx(smap[hole].mean(), abs=1e-5)
    assert masked_ssim(noisy, gt, np.ones(hole.shape, bool)) == pytest.approx(smap.mean(), abs=1e-5)
    assert masked_ssim(np.where(hole[..., None], noisy, 0).astype(np.uint8), gt, hole) != s  # context matters at edges


def test_metric_size_errors():
    gt, hole = _pair()
    with pytest.raises(InvalidInputError, match="prediction is 10x10 but ground truth is 20x24"):
        masked_psnr(np.zeros((10, 10, 3), np.uint8), gt, hole)
    with pytest.raises(InvalidInputError, match="mask is 5x5 but the image is 20x24"):
        masked_ssim(gt, gt, np.ones((5, 5), bool))
