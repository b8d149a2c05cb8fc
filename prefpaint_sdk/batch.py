"""Pairing inputs for batch work: an image folder with a mask folder (by file stem) or with one mask."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "InputPair", "check_pair", "list_images", "pair_inputs", "read_manifest"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class InputPair:
    image: Path
    mask: Path
    name: str  # the file stem, used to name outputs


def check_pair(pair: InputPair, *, max_pixels: int | None = None) -> tuple[int, int]:
    """Check an input pair from the files' headers alone (no pixels decoded); return the image's (w, h).

    Batch commands call it on every item before any model work, report a failing item and go on.

    Raises:
        ImageTooLargeError: the image or the mask passes the pixel limit (a decompression bomb included).
        InvalidInputError: a file is missing, a folder, or not an image.
    """
    from .imaging import check_image_file

    size = check_image_file(pair.image, what="image", max_pixels=max_pixels)
    check_image_file(pair.mask, what="mask", max_pixels=max_pixels)
    return size


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def pair_inputs(image: str | os.PathLike, mask: str | os.PathLike) -> tuple[list[InputPair], list[str]]:
    """Pair an image and a mask, or an image folder with a mask folder (by stem) or with one mask file.

    Returns:
        The pairs, and a list of warnings (images without a mask, masks without an image).

    Raises:
        InvalidInputError: a path is missing, the mask is a folder while the image is a file, a folder
            holds no images, or no image in the folder has a mask.
    """
    image, mask = Path(image), Path(mask)
    for p, what in ((image, "image"), (mask, "mask")):
        if not p.exists():
            raise InvalidInputError(f"{what} path '{p}' does not exist; check the path")
    if image.is_file():
        if mask.is_dir():
            raise InvalidInputError(
                f"mask '{mask}' is a folder but image '{image}' is a file; pass one mask file, or an image folder"
            )
        return [InputPair(image, mask, image.stem)], []
    images = list_images(image)
    if not images:
        raise InvalidInputError(f"image folder '{image}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if mask.is_file():
        return [InputPair(p, mask, p.stem) for p in images], []
    masks = {p.stem: p for p in list_images(mask)}
    pairs, warnings = [], []
    for p in images:
        m = masks.pop(p.stem, None)
        if m is None:
            warnings.append(f"no mask named '{p.stem}.*' in '{mask}' for image '{p.name}'; skipped")
        else:
            pairs.append(InputPair(p, m, p.stem))
    warnings += [f"mask '{m.name}' has no image of the same name in '{image}'; ignored" for m in masks.values()]
    if not pairs:
        raise InvalidInputError(f"no image in '{image}' has a mask of the same file stem in '{mask}'")
    return pairs, warnings


def read_manifest(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """The records of a ``manifest.jsonl``: ``(line number, object)`` for every non-blank line.

    Each object must have an ``image`` key (paths are relative to the manifest's folder).

    Raises:
        DataError: a line is not a JSON object with an ``image`` key (the message names the line).
    """
    import json

    from .errors import DataError

    path = Path(path)
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n} is not JSON ({exc}); write one object per line") from exc
        if not isinstance(rec, dict) or not rec.get("image"):
            raise DataError(f"{path}:{n} has no 'image' key; each line needs {{\"image\": path, \"mask\": path}}")
        records.append((n, rec))
    return records
