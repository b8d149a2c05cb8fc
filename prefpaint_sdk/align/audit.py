"""Bias audit of inpaintings: does the hole drift away from its surroundings in brightness or colour?

A reward can be hacked by a hole that is simply brighter or more saturated than the image around it. So at
every evaluation the hole's mean brightness, saturation and colourfulness are compared with those of its
context: a ring of pixels around the hole (the hole dilated by ``width`` pixels, a square structuring
element, minus the hole). All figures are on images in [0, 1]:

* brightness: Rec. 601 luma ``0.299 R + 0.587 G + 0.114 B`` (the built-in "brightness" reward's);
* saturation: HSV saturation ``(max - min) / max`` per pixel (0 for black);
* colourfulness: Hasler & Suesstrunk (2003), ``M = sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)`` with
  ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over the region's pixels (population standard deviations).
  The paper works on 0..255 values; on [0, 1] images M is 255 times smaller.

A region with no pixels (an empty hole, a hole that fills the image) gives NaN; batch means skip NaN.
"""

from __future__ import annotations

import math

import torch

__all__ = ["AUDIT_MEASURES", "audit_batch", "colourfulness", "context_ring", "luma", "masked_mean", "region_means", "saturation"]

_LUMA = (0.299, 0.587, 0.114)


def luma(images: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of (B, 3, H, W) images in [0, 1] -> (B, H, W)."""
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1)


def saturation(images: torch.Tensor) -> torch.Tensor:
    """HSV saturation ``(max - min) / max`` of (B, 3, H, W) images -> (B, H, W); 0 where max is 0."""
    hi, lo = images.amax(1), images.amin(1)
    return torch.where(hi > 0, (hi - lo) / hi.clamp(min=torch.finfo(images.dtype).tiny), torch.zeros_like(hi))


def context_ring(masks: torch.Tensor, width: int) -> torch.Tensor:
    """The ring of pixels within ``width`` (Chebyshev distance) of the hole, the hole excluded.

    Args:
        masks: (B, H, W) bool, True = the hole.
        width: ring width in pixels, >= 1.

    Returns:
        (B, H, W) bool: the hole dilated by a (2 width + 1)^2 square, minus the hole.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {tuple(masks.shape)}")
    m = masks.float().unsqueeze(1)
    dilated = torch.nn.functional.max_pool2d(m, 2 * width + 1, stride=1, padding=width)[:, 0] > 0
    return dilated & ~masks.bool()


def masked_mean(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-image mean of (B, H, W) ``values`` over the (B, H, W) bool ``region``; NaN where it is empty."""
    r = region.to(values.dtype)
    n = r.sum((1, 2))
    return torch.where(n > 0, (values * r).sum((1, 2)) / n.clamp(min=1), torch.full_like(n, float("nan")))


def colourfulness(images: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Hasler-Suesstrunk colourfulness of each image's ``region`` -> (B,); NaN where the region is empty."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    mu_rg, mu_yb = masked_mean(rg, region), masked_mean(yb, region)
    var_rg = masked_mean((rg - mu_rg.view(-1, 1, 1)) ** 2, region)
    var_yb = masked_mean((yb - mu_yb.view(-1, 1, 1)) ** 2, region)
    return torch.sqrt(var_rg + var_yb) + 0.3 * torch.sqrt(mu_rg ** 2 + mu_yb ** 2)


def region_means(images: torch.Tensor, region: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean brightness, saturation and colourfulness of each image's ``region`` -> three (B,) tensors."""
    return {"brightness": masked_mean(luma(images), region),
            "saturation": masked_mean(saturation(images), region),
            "colourfulness": colourfulness(images, region)}


AUDIT_MEASURES = ("brightness", "saturation", "colourfulness")


def _nanmean(x: torch.Tensor) -> float:
    finite = x[torch.isfinite(x)]
    return float(finite.mean()) if finite.numel() else math.nan


def audit_batch(images: torch.Tensor, masks: torch.Tensor, width: int) -> dict[str, float]:
    """The hole against its context ring, averaged over the batch.

    Args:
        images: (B, 3, H, W) float in [0, 1]. masks: (B, H, W) or (B, 1, H, W) bool, True = the hole.
        width: context ring width in pixels.

    Returns:
        ``{"hole_<m>", "context_<m>", "diff_<m>"}`` for each measure m of :data:`AUDIT_MEASURES`; the
        difference is hole minus context per image, then averaged (images with an empty region skipped).
    """
    if masks.ndim == 4:
        masks = masks[:, 0]
    images = images.float()
    masks = masks.bool().to(images.device)
    hole = region_means(images, masks)
    ctx = region_means(images, context_ring(masks, width))
    out: dict[str, float] = {}
    for m in AUDIT_MEASURES:
        out[f"hole_{m}"] = _nanmean(hole[m])
        out[f"context_{m}"] = _nanmean(ctx[m])
        out[f"diff_{m}"] = _nanmean(hole[m] - ctx[m])
    return out
