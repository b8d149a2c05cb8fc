"""Where a denoising loss counts: the hole plus a ring of context, at the latent resolution.

Inpainting keeps the outside of the hole (the pipelines blend or paste it back), so a loss over the whole
latent spends most of its signal on pixels nobody sees. NFT and DPO therefore average their squared errors
over the hole dilated by ``ring`` pixels by default (``ring=None``: the whole image).
"""

from __future__ import annotations

import torch

__all__ = ["latent_loss_mask", "masked_mean"]


def latent_loss_mask(mask: torch.Tensor, latent_hw: tuple[int, int], ring: int | None = 16) -> torch.Tensor | None:
    """The loss weight (B, 1, h, w) in {0, 1} of pixel masks (B, 1, H, W) (white = hole, >= 0.5).

    The hole is dilated by ``ring`` pixels (a square window), then a latent cell counts when any pixel of
    it does (max-pooling down to ``latent_hw``). ``ring=None`` returns ``None``: no mask, the full image.

    Raises:
        ValueError: a negative ring, or a mask that is not (B, 1, H, W).
    """
    if ring is None:
        return None
    if ring < 0:
        raise ValueError(f"ring must be >= 0 pixels (or None for the full image), got {ring}")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
    m = (mask >= 0.5).float()
    if ring:
        m = torch.nn.functional.max_pool2d(m, 2 * ring + 1, stride=1, padding=ring)
    return torch.nn.functional.adaptive_max_pool2d(m, latent_hw)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean of ``x`` (B, ...) over every dim but the first, weighted by ``mask`` (broadcast to
    ``x``; ``None``: a plain mean). A sample whose mask is empty gets 0."""
    dims = tuple(range(1, x.ndim))
    if mask is None:
        return x.mean(dim=dims)
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum(dim=dims) / m.sum(dim=dims).clamp(min=1.0)
