"""What the reward model sees of an inpainting: one framing for best-of-N, evaluation and alignment.

The reward model was trained on 512 px inpaintings in which the hole is a sizeable part of the frame. It
therefore judges the **context box**: the crop of the image that the inpainting model saw and filled
(:attr:`InpaintResult.box <prefpaint_sdk.InpaintResult>`), not the whole picture, in which a small hole
in a large photo would shrink to a few pixels of the reward's 224 px input. The reward gets two images of
that box:

* the **view**: the candidate, cropped to the box;
* the **masked view**: the *input* (``source``), cropped to the box, with the hole set to the reward
  model's ``mask_fill`` (black, as the release): the "masked prompt image".

``box=None`` means the whole image: the aligner's samples are already the model's whole working frame.

Every path that scores an inpainting calls :func:`reward_views`: ``Inpainter`` (best-of-N),
:func:`~prefpaint_sdk.evaluation.evaluate` and the aligner's reward wrapper
(:func:`~prefpaint_sdk.align.as_reward_fn`), so one candidate gets one score whichever path scores it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import InvalidInputError
from ..imaging import Box, masked_image

__all__ = ["mask_fill_of", "reward_box", "reward_view", "reward_views"]


def mask_fill_of(reward_model) -> tuple[int, int, int]:
    """The hole colour of ``reward_model``'s masked prompt images (its ``mask_fill``; black without one)."""
    return tuple(int(c) for c in getattr(reward_model, "mask_fill", (0, 0, 0)))  # type: ignore[return-value]


def reward_box(size: tuple[int, int], box=None) -> Box:
    """The frame the reward sees, as a :class:`~prefpaint_sdk.utils.Box` inside an image of ``size`` (w, h).

    Args:
        size: the image's (width, height).
        box: the context box ``(x0, y0, x1, y1)`` (or a ``Box``) the model inpainted; ``None`` for the
            whole image.

    Raises:
        InvalidInputError: a box that is empty or reaches outside the image.
    """
    w, h = size
    if box is None:
        return Box(0, 0, w, h)
    b = box if isinstance(box, Box) else Box(*(int(v) for v in box))
    if not (0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h):
        raise InvalidInputError(f"reward box {b.as_tuple()} is empty or outside the {w}x{h} image")
    return b


def reward_views(candidates: Sequence[Image.Image], source: Image.Image, hole: np.ndarray, box=None,
                 mask_fill: Sequence[int] = (0, 0, 0)) -> tuple[list[Image.Image], Image.Image]:
    """What the reward model scores for candidates of one input: their views and the shared masked view.

    Args:
        candidates: inpaintings of ``source``, each at its size.
        source: the input image; its pixels outside the hole form the masked prompt image.
        hole: bool (H, W), True = the hole that was filled.
        box: the context box ``(x0, y0, x1, y1)`` the model inpainted, or ``None`` for the whole image.
        mask_fill: RGB colour of the hole in the masked view (use :func:`mask_fill_of` of the reward model).

    Returns:
        ``(views, masked_view)``: each candidate cropped to the box, and the masked input cropped to it.
        Pass them as ``reward_model.score(views, masked_images=[masked_view] * len(views))``.

    Raises:
        InvalidInputError: sizes that differ, or a box outside the image.

    Shape:
        hole: (H, W) for a ``source`` of W x H pixels; views and masked view: the box's size.
    """
    hole = np.asarray(hole, dtype=bool)
    w, h = source.size
    if hole.shape != (h, w):
        raise InvalidInputError(f"hole is {hole.shape[1]}x{hole.shape[0]} but the image is {w}x{h}")
    for i, c in enumerate(candidates):
        if c.size != source.size:
            raise InvalidInputError(f"candidate {i} is {c.width}x{c.height} but its input is {w}x{h}; "
                                    "score candidates at the input's size")
    b = reward_box(source.size, box)
    crop = b.as_tuple()
    views = [c if crop == (0, 0, w, h) else c.crop(crop) for c in candidates]
    masked = masked_image(source.crop(crop), hole[b.y0:b.y1, b.x0:b.x1], tuple(int(v) for v in mask_fill))
    return [v.convert("RGB") for v in views], masked


def reward_view(image: Image.Image, hole: np.ndarray, box=None, mask_fill: Sequence[int] = (0, 0, 0), *,
                source: Image.Image | None = None) -> tuple[Image.Image, Image.Image]:
    """One candidate's ``(view, masked_view)``: :func:`reward_views` for a single image.

    Args:
        image: the inpainted image.
        hole / box / mask_fill: as in :func:`reward_views`.
        source: the input whose known pixels make the masked view; ``image`` itself when ``None`` (exact
            when the known region was pasted back unchanged, as the aligner does).
    """
    views, masked = reward_views([image], image if source is None else source, hole, box, mask_fill)
    return views[0], masked
