"""Masked means: where a denoising loss counts.

Inpainting keeps the outside of the hole (the pipelines blend or paste it back), so a loss over the whole
latent spends most of its signal on pixels nobody sees. NFT and DPO therefore average their squared errors
over the hole dilated by a ring of pixels by default (the engine's
:func:`~prefpaint_sdk.engines.forward_training.latent_loss_mask`, in the model's latent layout).
"""

from __future__ import annotations

import torch

__all__ = ["masked_mean"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample mean of ``x`` (B, ...) over every dim but the first, weighted by ``mask`` (broadcast to
    ``x``; ``None``: a plain mean). A sample whose mask is empty gets 0."""
    dims = tuple(range(1, x.ndim))
    if mask is None:
        return x.mean(dim=dims)
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum(dim=dims) / m.sum(dim=dims).clamp(min=1.0)
