"""Offline preference pairs for Diffusion-DPO, served as alignment prompts.

The pairs come from :func:`prefpaint_sdk.reward.data.read_preference_pairs`, the reader ``train reward``
uses: a rated dataset (the official layout: ``labels.json``, ``inpaint/``, ``masks_color/``, ``masks/``;
or a scored manifest) paired within each prompt by rank, or a pairs manifest (``{"better", "worse",
"mask"}`` rows). Each prompt group is one item of the shared loop's prompt set (``len``, ``get``), so the
loop splits prompts into training and held-out ones and evaluates on the held-out prompts as for every
algorithm; :meth:`PairDataset.pairs_of` gives a prompt's pairs. Images are centre-cropped to a square and
resized to the working size as :class:`~prefpaint_sdk.align.data.AlignDataset` does, masks with a covering
resize.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from ..imaging import load_image, load_mask
from ..reward.data import read_preference_pairs
from .data import AlignItem, _center_square, _covering_resize

__all__ = ["PairDataset"]


class PairDataset:
    """Preference pairs grouped by prompt (see the module docstring).

    Args:
        path: a rated dataset folder, a scored manifest or a pairs manifest.
        resolution: the working size (``None`` until the model is known).
        mode / min_margin: which pairs (:meth:`~prefpaint_sdk.reward.data.RewardData.preference_pairs`).

    Raises:
        DataError: unreadable data, or no pair at all (one clear line; before any model loads).
    """

    def __init__(self, path: str | os.PathLike, resolution: int | None = None, *, mode: str = "all",
                 min_margin: float = 0.0):
        self.data, pairs = read_preference_pairs(path, mode=mode, min_margin=min_margin)
        self.resolution = int(resolution) if resolution is not None else None
        by_group: dict[str, list[tuple[int, int]]] = {}
        for b, w in pairs:
            by_group.setdefault(self.data.samples[b].group, []).append((b, w))
        self.groups = sorted(by_group)
        self._pairs = [by_group[g] for g in self.groups]
        self._index = {g: i for i, g in enumerate(self.groups)}

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def num_pairs(self) -> int:
        return sum(len(p) for p in self._pairs)

    def index_of(self, name: str) -> int:
        """The prompt index of an item's ``name`` (its group)."""
        return self._index[name]

    def pairs_of(self, index: int) -> list[tuple[int, int]]:
        """(better, worse) sample indices of prompt ``index``."""
        return self._pairs[index]

    def _square(self, image: Image.Image) -> Image.Image:
        r = self.resolution
        box = _center_square(image.size)
        return image.crop(box).resize((r, r), Image.LANCZOS) if image.size != (r, r) or box != (0, 0, r, r) else image

    def get(self, index: int, mask_seed: int | None = None) -> AlignItem:
        """Prompt ``index`` at working size: its masked prompt image (or its first winner) and its mask."""
        first = self.data.samples[self._pairs[index][0][0]]
        image = load_image(first.masked if first.masked is not None else first.image)
        m = load_mask(first.mask)
        box = _center_square(m.shape[::-1])
        return AlignItem(image=self._square(image), mask=_covering_resize(m[box[1]:box[3], box[0]:box[2]], self.resolution),
                         name=self.groups[index])

    def image(self, sample: int) -> np.ndarray:
        """Inpainting ``sample`` at working size, (3, r, r) float32 in [0, 1]."""
        im = self._square(load_image(self.data.samples[sample].image))
        return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
