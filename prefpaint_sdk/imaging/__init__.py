"""Images and masks in, images out: the pixel limit, loading, conversion, crop boxes and compositing.

Every public entry point normalises its inputs here, once. Images become RGB ``PIL.Image``s and masks
become boolean ``numpy`` arrays (``True`` = fill). Accepted sources:

* a path (``str`` / ``os.PathLike``) to any format Pillow reads;
* a ``PIL.Image`` in any mode;
* a ``numpy`` array of shape HxW, HxWx1, HxWx3 or HxWx4, ``uint8``/``uint16``/``bool`` or float in [0, 1];
* a ``torch`` tensor of shape CxHxW or 1xCxHxW (C in 1, 3, 4), float in [0, 1] or ``uint8``.

Mask convention: white means fill; a pixel counts as white at >= 50% of its type's range. L, RGB,
RGBA, 1-bit, 16-bit and float masks are all accepted; colour masks are read by their luma.

The package has three rooms: :mod:`.limits` (the pixel limit and header checks), :mod:`.load` (sources to
images and masks) and :mod:`.geometry` (boxes, dilation, feathering and compositing, in exact row stripes
so memory follows the image's bytes). Import from ``prefpaint_sdk.imaging``.
"""

from __future__ import annotations

from .geometry import (
    Box,
    composite,
    composite_box,
    context_box,
    dilate_mask,
    feather_alpha,
    feather_bbox,
    mask_bbox,
    masked_image,
    working_size,
)
from .limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, check_image_file, check_pixels, get_max_pixels, set_max_pixels
from .load import (
    ImageLike,
    check_alpha_mask,
    check_mask_size,
    check_masked_image_size,
    fit_mask_to_image,
    load_image,
    load_mask,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "Box",
    "ImageLike",
    "check_image_file",
    "check_alpha_mask",
    "check_mask_size",
    "check_masked_image_size",
    "check_pixels",
    "composite",
    "composite_box",
    "context_box",
    "dilate_mask",
    "feather_alpha",
    "feather_bbox",
    "fit_mask_to_image",
    "get_max_pixels",
    "load_image",
    "load_mask",
    "mask_bbox",
    "masked_image",
    "set_max_pixels",
    "working_size",
]
