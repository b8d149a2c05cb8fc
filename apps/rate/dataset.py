"""A dataset to rate, in the official PrefPaint layout: ``inpaint/<imgid>_<k>.png``, ``masks_color/`` and ``masks/``."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from prefpaint_sdk import DataError
from prefpaint_sdk.utils import find_image, list_images

__all__ = ["RateDataset", "scan_dataset"]


@dataclass(frozen=True)
class RatePrompt:
    imgid: str
    masked: Path | None  # masks_color/<imgid>_mask_color.*
    mask: Path  # masks/<imgid>_mask.*
    candidates: tuple[tuple[str, Path], ...]  # (key "<imgid>_<k>", inpaint/<key>.*), by k


@dataclass(frozen=True)
class RateDataset:
    root: Path
    prompts: tuple[RatePrompt, ...]

    @property
    def keys(self) -> list[str]:
        return [key for p in self.prompts for key, _ in p.candidates]

    @property
    def group_of(self) -> dict[str, str]:
        return {key: p.imgid for p in self.prompts for key, _ in p.candidates}

    @property
    def dataset_id(self) -> str:
        """A digest of the folder name and the keys: ratings exported from another dataset are told apart."""
        return hashlib.sha256(("\n".join([self.root.name, *self.keys])).encode()).hexdigest()[:12]


def scan_dataset(root: str | os.PathLike) -> RateDataset:
    """The prompts of ``root`` and their K inpaintings, sorted by id and k.

    Raises:
        DataError: ``root`` is not the official layout, or an inpainting's prompt has no mask.
    """
    root = Path(root)
    if not (root / "inpaint").is_dir():
        raise DataError(f"'{root}' has no inpaint/ folder; rate a dataset in the official layout (inpaint/<imgid>_<k>.png, "
                        "masks/<imgid>_mask.png, masks_color/), as 'prefpaint generate-dataset' writes it")
    groups: dict[str, list[tuple[int, str, Path]]] = {}
    for p in list_images(root / "inpaint"):
        if "_" not in p.stem:
            continue
        imgid, k = p.stem.rsplit("_", 1)
        if not k.isdigit():
            continue
        groups.setdefault(imgid, []).append((int(k), p.stem, p))
    if not groups:
        raise DataError(f"'{root / 'inpaint'}' holds no inpaintings named <imgid>_<k>.png")
    prompts = []
    for imgid in sorted(groups):
        mask = find_image(root / "masks", f"{imgid}_mask")
        if mask is None:
            raise DataError(f"inpaintings of '{imgid}' have no mask '{root / 'masks' / (imgid + '_mask.png')}'")
        cands = tuple((key, path) for _, key, path in sorted(groups[imgid]))
        prompts.append(RatePrompt(imgid, find_image(root / "masks_color", f"{imgid}_mask_color"), mask, cands))
    return RateDataset(root, tuple(prompts))
