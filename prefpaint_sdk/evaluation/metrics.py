"""Masked PSNR and SSIM against ground truth: only the hole's pixels count.

* **masked PSNR** = ``10 log10(1 / MSE)`` over the hole's pixels (all three channels, values in [0, 1]);
  identical holes give :data:`PSNR_CAP` (100 dB) rather than infinity, so results stay valid JSON;
* **masked SSIM** = the mean, over the hole's pixels and channels, of kornia's SSIM map (Gaussian window
  11, sigma 1.5, the usual constants), computed on the whole image so windows at the hole's edge see the
  true context.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidInputError

__all__ = ["PSNR_CAP", "masked_psnr", "masked_ssim"]

PSNR_CAP = 100.0


def _arrays(pred, target, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ..imaging import load_image

    a = np.asarray(load_image(pred), dtype=np.float64) / 255.0
    b = np.asarray(load_image(target), dtype=np.float64) / 255.0
    m = np.asarray(mask, dtype=bool)
    if a.shape != b.shape:
        raise InvalidInputError(f"prediction is {a.shape[1]}x{a.shape[0]} but ground truth is {b.shape[1]}x{b.shape[0]}; "
                                "give ground truth at the input's size")
    if m.shape != a.shape[:2]:
        raise InvalidInputError(f"mask is {m.shape[1]}x{m.shape[0]} but the image is {a.shape[1]}x{a.shape[0]}")
    return a, b, m


def masked_psnr(pred, target, mask) -> float | None:
    """PSNR in dB over the pixels where ``mask`` is True; ``None`` for an empty mask.

    Args:
        pred / target: images (any :func:`~prefpaint_sdk.imaging.load_image` source), same size.
        mask: bool HxW, True = hole.

    Raises:
        InvalidInputError: sizes differ.
    """
    a, b, m = _arrays(pred, target, mask)
    if not m.any():
        return None
    mse = float(((a[m] - b[m]) ** 2).mean())
    return PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


def masked_ssim(pred, target, mask, window_size: int = 11) -> float | None:
    """Mean SSIM over the pixels where ``mask`` is True; ``None`` for an empty mask.

    Raises:
        InvalidInputError: sizes differ.
    """
    import torch
    from kornia.metrics import ssim

    a, b, m = _arrays(pred, target, mask)
    if not m.any():
        return None
    ta = torch.from_numpy(a).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(b).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        smap = ssim(ta, tb, window_size, max_val=1.0, padding="same")[0]  # (3, H, W)
    return float(smap[:, torch.from_numpy(m)].mean())
