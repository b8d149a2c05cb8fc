"""CLIP image preprocessing: resize the short side (bicubic), centre-crop, scale to [0, 1], normalise.

Two paths give the backbone its ``pixel_values``:

* :func:`preprocess_images` (PIL in, the default everywhere): Pillow's bicubic resize on uint8 pixels,
  exactly the steps of transformers' ``CLIPImageProcessor`` (its PIL backend, ``CLIPImageProcessorPil``)
  and of OpenAI CLIP's own transform. A test checks it equals transformers' output on the same pixels.
* :func:`preprocess_tensor` (float tensors in [0, 1], differentiable): torch's antialiased bicubic
  resize. It is close to, not bit-equal with, Pillow's; use it only where gradients must flow to pixels.

The crop offset is ``(size_after_resize - 224) // 2``, as transformers computes it. OpenAI's torchvision
``CenterCrop`` rounds half to even instead, so for some odd differences (e.g. 79 px) it crops one pixel
further; we follow transformers, which the issue fixes as the reference. :func:`open_clip_pixels` follows
torchvision instead, for the rewards whose published code uses it (HPSv2, ImageReward).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["CLIP_MEAN", "CLIP_STD", "open_clip_pixels", "preprocess_image", "preprocess_images", "preprocess_tensor",
           "resize_size"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def resize_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after resizing the short side to ``size``; the long side is truncated as CLIP does."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def preprocess_image(image: Image.Image, size: int = 224) -> np.ndarray:
    """One RGB PIL image → float32 array (3, size, size), CLIP-normalised."""
    image = image.convert("RGB")
    w, h = resize_size(image.width, image.height, size)
    if (w, h) != image.size:
        image = image.resize((w, h), Image.BICUBIC)
    a = np.asarray(image)
    top, left = (h - size) // 2, (w - size) // 2
    a = a[top:top + size, left:left + size].astype(np.float32) * np.float32(1 / 255)
    a = (a - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def open_clip_pixels(pil, size: int = 224) -> np.ndarray:
    """open_clip's (and ImageReward's) eval transform on one image: Resize(size, bicubic) on the short side,
    CenterCrop(size) with torchvision's offsets (rounded, not floored), CLIP mean/std; (3, size, size) float32."""
    pil = pil.convert("RGB")
    w, h = resize_size(pil.width, pil.height, size)
    if (w, h) != pil.size:
        pil = pil.resize((w, h), Image.BICUBIC)
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))  # torchvision's CenterCrop offsets
    a = np.asarray(pil)[top:top + size, left:left + size].astype(np.float32) / np.float32(255)
    a = (a - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def preprocess_images(images: Sequence[Image.Image], size: int = 224):
    """RGB PIL images → a float32 ``torch`` tensor (B, 3, size, size) ready for the CLIP backbone."""
    import torch

    return torch.from_numpy(np.stack([preprocess_image(im, size) for im in images]))


def preprocess_tensor(images, size: int = 224):
    """Float images (B, 3, H, W) in [0, 1] → CLIP ``pixel_values``, differentiable (antialiased bicubic).

    Shape:
        images: (B, 3, H, W) or (3, H, W); output (B, 3, size, size), on the input's device and dtype.
    """
    import torch
    import torch.nn.functional as F

    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"image tensor has shape {tuple(images.shape)}; expected (B, 3, H, W) in [0, 1]")
    h, w = images.shape[-2:]
    nw, nh = resize_size(int(w), int(h), size)
    x = images
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size].clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
