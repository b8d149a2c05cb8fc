"""Built-in rewards that need no model: cheap checks of what an inpainting must not do, and ``brightness``.

Each is a function ``f(images, masks, masked_images) -> (B,) scores`` on the tensors of
:mod:`prefpaint_sdk.reward.base`. Higher is better: the constraints score 0 for a perfect inpainting and
go negative as it gets worse, so they stack with other rewards under positive weights.

* ``brightness``: mean Rec. 601 luma inside the hole, in [0, 1]. A reward with a known optimum (a white
  hole) for smoke runs and learning tests.
* ``outside-change``: minus the mean absolute change (per channel, in [0, 1]) **outside** the hole and beyond
  the feather band, against the original (the outside of ``masked_images``). Compositing leaves those
  pixels byte-identical, so anything but 0 means the model (or a missing paste-back) changed the known
  image. It needs the real original: a masked image derived from the inpainting itself always scores 0.
* ``seam``: minus the discontinuity across the hole's boundary, over every pair of 4-neighbour pixels with
  one inside and one outside: the mean colour jump ``|I_in - I_out|`` plus the mean change of slope
  ``|(I_in2 - I_in) - (I_out - I_out2)|``, where ``I_in2`` / ``I_out2`` are the next pixels on along the
  same line (pairs whose line leaves the image are left out of the slope term). A smooth continuation
  scores near 0; a pasted patch with a visible edge scores lower.

An image whose region is empty (no hole; a hole that fills the image) scores NaN, which callers drop.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["BUILTIN_REWARDS", "OUTSIDE_BAND", "brightness_in_mask", "outside_change", "seam"]

# The inpainter's default feather (mask_dilate 0 + mask_blur 8) and one pixel of margin: beyond it,
# compositing leaves the original's pixels exactly as they were.
OUTSIDE_BAND = 9

_LUMA = (0.299, 0.587, 0.114)  # the weights of align.audit's brightness measure


def _masked_mean(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    r = region.to(values.dtype)
    n = r.sum((1, 2))
    return torch.where(n > 0, (values * r).sum((1, 2)) / n.clamp(min=1), torch.full_like(n, float("nan")))


def brightness_in_mask(images: torch.Tensor, masks: torch.Tensor, masked_images: torch.Tensor | None = None) -> torch.Tensor:
    """``brightness``: mean luma (Rec. 601) inside the hole, in [0, 1]; NaN for an empty hole."""
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return _masked_mean((images * w).sum(1), masks.bool())


def outside_change(images: torch.Tensor, masks: torch.Tensor, masked_images: torch.Tensor,
                   band: int = OUTSIDE_BAND) -> torch.Tensor:
    """``outside-change``: minus the mean |image - original| outside the hole grown by ``band`` pixels.

    The band is Euclidean, as the compositing feather's (:func:`~prefpaint_sdk.imaging.feather_alpha`).
    """
    from ..imaging import feather_alpha

    holes = masks.bool().cpu().numpy()
    far = np.stack([feather_alpha(h, float(band)) == 0 for h in holes]) if band > 0 else ~holes
    region = torch.from_numpy(far).to(images.device)
    diff = (images - masked_images.to(images.device, images.dtype)).abs().mean(1)
    return -_masked_mean(diff, region)


def _pair_terms(x: torch.Tensor, h: torch.Tensor):
    """Colour and slope terms of the boundary pairs along the last axis of ``x`` (B, C, H, W) / ``h`` (B, H, W)."""
    cross = h[..., 1:] != h[..., :-1]  # pairs (j, j+1) with one pixel in the hole
    jump = (x[..., 1:] - x[..., :-1]).abs().mean(1)
    c_sum, c_n = (jump * cross).sum((1, 2)), cross.sum((1, 2))
    # slope before the pair (j-1 -> j) against slope after it (j+1 -> j+2); pairs j = 1 .. W-3
    if x.shape[-1] >= 4:
        before = x[..., 1:-2] - x[..., :-3]
        after = x[..., 3:] - x[..., 2:-1]
        bend = (after - before).abs().mean(1)
        inner = cross[..., 1:-1]
        s_sum, s_n = (bend * inner).sum((1, 2)), inner.sum((1, 2))
    else:
        s_sum = s_n = torch.zeros_like(c_sum)
    return c_sum, c_n, s_sum, s_n


def seam(images: torch.Tensor, masks: torch.Tensor, masked_images: torch.Tensor | None = None) -> torch.Tensor:
    """``seam``: minus (mean colour jump + mean slope change) across the hole's boundary; NaN without one."""
    x, h = images, masks.bool()
    cw, nw, sw, mw = _pair_terms(x, h)                                    # across columns
    ch, nh, sh, mh = _pair_terms(x.transpose(-1, -2), h.transpose(-1, -2))  # across rows
    n, m = (nw + nh).float(), (mw + mh).float()
    colour = (cw + ch) / n.clamp(min=1)
    slope = torch.where(m > 0, (sw + sh) / m.clamp(min=1), torch.zeros_like(colour))
    return torch.where(n > 0, -(colour + slope), torch.full_like(colour, float("nan")))


outside_change.needs_original = True  # type: ignore[attr-defined]

BUILTIN_REWARDS: dict[str, Callable] = {"brightness": brightness_in_mask, "outside-change": outside_change, "seam": seam}
