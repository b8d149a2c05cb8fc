"""Training prompts for alignment: (image, mask) pairs from a folder, with masks generated when absent.

The toolkit's data convention, read by :func:`prefpaint_sdk.data.read_data`:

* ``DIR/images/*`` and optionally ``DIR/masks/*`` paired by file stem (``images/cat.jpg`` with
  ``masks/cat.png``); images without a mask (or all, when ``masks/`` is absent) get a seeded generated
  mask; or
* ``DIR/manifest.jsonl`` with one ``{"image": path, "mask": path}`` object per line (paths relative to
  DIR; ``mask`` may be omitted or null).

Images are centre-cropped to a square and resized to the working size; masks take the same crop and a
covering resize (every pixel a hole touches stays a hole).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import read_data
from ..errors import Arg, DataError, InvalidInputError
from ..imaging import check_image_file, load_image, load_mask
from ..masks import generate_mask

__all__ = ["AlignItem", "AlignDataset"]

log = logging.getLogger(__name__)


@dataclass
class AlignItem:
    """One training prompt at working size: ``image`` (RGB PIL), ``mask`` (bool HxW, True = fill), ``name``."""

    image: Image.Image
    mask: np.ndarray
    name: str


class AlignDataset:
    """(image, mask) prompts from a folder (see the module docstring for the layout).

    Args:
        root: the data folder.
        resolution: working size in pixels (square); ``None`` until the model is known (the ``Aligner`` sets it),
            so the data can be checked before any model loads.
        mask_kinds: kinds generated for images without a mask (see :mod:`prefpaint_sdk.masks`).
        seed: seeds the generated masks.
        max_bad_fraction: the share of images that may be unusable; above it the dataset is refused.

    Every image and mask is decoded whole when the dataset is built (cheap next to training, and it finds a
    truncated file that passes a header check): an unreadable one, one over the pixel limit, or a mask of
    another size than its image is skipped with a warning (the rest go on) and counted against
    ``max_bad_fraction``.

    Raises:
        DataError: no usable images, more unusable ones than ``max_bad_fraction`` allows, a manifest line
            without ``image``, or a missing file.
    """

    def __init__(self, root, resolution: int | None, mask_kinds=("outpaint_square", "outpaint_strip", "stroke"), seed: int = 0,
                 max_bad_fraction: float = 0.1):
        self.root = Path(root)
        self.resolution = int(resolution) if resolution is not None else None
        self.mask_kinds = list(mask_kinds)
        self.seed = int(seed)
        found = self._scan()
        self.entries, self.sizes = self._usable(found, max_bad_fraction)
        self.skipped = len(found) - len(self.entries)

    @staticmethod
    def _usable(found, max_bad_fraction: float = 0.1):
        """The entries whose files decode, and each image's size; the others are skipped, up to the limit."""
        entries, sizes, skipped = [], {}, []
        for img, mask, name in found:
            try:
                size = check_image_file(img, decode=True)
                if mask is not None and (mask_size := check_image_file(mask, what="mask", decode=True)) != size:
                    raise DataError(f"mask '{mask}' is {'x'.join(map(str, mask_size))} but its image "
                                    f"'{img}' is {size[0]}x{size[1]}; resize it")
            except InvalidInputError as exc:
                skipped.append(exc)
                continue
            entries.append((img, mask, name))
            sizes[img] = size
        if not entries:  # one line, not one per file
            raise DataError(f"none of the {len(found)} images can be used (first: {skipped[0]}); fix or replace them")
        if len(skipped) > max_bad_fraction * len(found):
            raise DataError(f"{len(skipped)} of {len(found)} images cannot be used ({len(skipped) / len(found):.0%}), more "
                            f"than the limit of {max_bad_fraction:.0%} (max_bad_fraction); first: {skipped[0]}. Fix or "
                            "remove them, or raise the limit (", Arg("max_bad_fraction", 0.5), ")")
        for exc in skipped:
            log.warning("skipped: %s", exc)
        if skipped:
            log.warning("skipped %d of %d images that cannot be used (limit %.0f%%, max_bad_fraction)", len(skipped),
                        len(found), 100 * max_bad_fraction)
        return entries, sizes

    def _scan(self) -> list[tuple[Path, Path | None, str]]:
        return [(it.image, it.mask, it.id) for it in read_data(self.root)]

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int, mask_seed: int | None = None) -> AlignItem:
        """Item ``index`` at working size; a generated mask uses ``mask_seed`` (default: from the index)."""
        img_path, mask_path, name = self.entries[index]
        image = load_image(img_path)
        box = _center_square(image.size)
        r = self.resolution
        image = image.crop(box).resize((r, r), Image.LANCZOS) if image.size != (r, r) or box != (0, 0, r, r) else image
        if mask_path is not None:
            m = load_mask(mask_path)
            m = _covering_resize(m[box[1]:box[3], box[0]:box[2]], r)
        else:
            seed = mask_seed if mask_seed is not None else self.seed * 1_000_003 + index
            g = np.random.default_rng(seed)
            kind = self.mask_kinds[int(g.integers(0, len(self.mask_kinds)))]
            m = generate_mask(kind, r, seed=int(g.integers(0, 2**31)))
        if not m.any():
            log.warning("mask of '%s' is empty after resizing; it will score NaN and be dropped", name)
        return AlignItem(image=image, mask=m, name=name)


def _center_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size
    s = min(w, h)
    x0, y0 = (w - s) // 2, (h - s) // 2
    return (x0, y0, x0 + s, y0 + s)


def _covering_resize(mask: np.ndarray, r: int) -> np.ndarray:
    im = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    if im.size == (r, r):
        return mask.copy()
    return np.asarray(im.resize((r, r), Image.BILINEAR)) > 0
