"""Batch work: pairing inputs (an image folder with a mask folder by file stem, or with one mask), the files
one inpainted item writes, and the plan of a batch (what to run, what to skip) made before any model loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Arg, Hint, InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "InputPair", "check_pair", "list_images", "pair_inputs", "plan_batch", "read_manifest",
           "result_files"]

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


def result_files(target: str | os.PathLike, num_candidates: int, save_all: bool) -> list[Path]:
    """Every file one inpainted item writes (:meth:`InpaintResult.save`): the image, its sidecar and, with
    ``save_all``, every candidate as ``<stem>_cand<k><suffix>``."""
    from .files import sidecar_path

    target = Path(target)
    files = [target, sidecar_path(target)]
    if save_all:
        files += [candidate_path(target, k) for k in range(num_candidates)]
    return files


def candidate_path(target: str | os.PathLike, k: int) -> Path:
    """Where candidate ``k`` of the item written to ``target`` goes."""
    target = Path(target)
    return target.with_name(f"{target.stem}_cand{k}{target.suffix or '.png'}")


def plan_batch(pairs, targets, *, num_candidates: int, save_all: bool, overwrite: bool, batch: bool,
               resize_mask: bool = False, mask_from_alpha: bool = False, on_failure=None) -> tuple[list, int, int]:
    """The (pair, target) items to run, made from cheap checks before any model loads.

    Single mode (``batch`` false): any existing member of the item's set is an error (without ``overwrite``),
    and the inputs are decoded, so even a truncated file is refused now. Batch mode: an item whose whole set
    exists is skipped (a rerun completes what an interruption left); a partial set is an error naming the
    file, unless ``overwrite``; an input that fails its header checks (``mask_from_alpha``: a mask without alpha) is reported through
    ``on_failure(image_path, exc)`` and left out, and the batch goes on.

    Returns:
        ``(todo, failures, skipped)``.

    Raises:
        OutputExistsError, InvalidInputError, ImageTooLargeError: as above.
    """
    from .errors import OutputExistsError
    from .files import check_image_suffix, check_outputs
    from .imaging import check_alpha_mask, check_image_file, check_mask_size

    todo, failures, skipped = [], 0, 0
    for pair, target in zip(pairs, targets):
        check_image_suffix(target)
        files = result_files(target, num_candidates, save_all)
        check_outputs(files, overwrite=True)  # every check but existence: names, folders, writable parents
        existing = [f for f in files if f.exists() and not f.is_dir()]
        if batch and not overwrite and existing:
            if len(existing) == len(files):
                skipped += 1
                continue
            missing = [f for f in files if f not in existing]
            raise OutputExistsError(
                f"output '{existing[0]}' exists but '{missing[0]}' of the same item does not (an interrupted or "
                "changed run?); remove its files", Hint(", or pass ", Arg("overwrite", True), " to redo the item"))
        check_outputs(files, overwrite)
        try:
            size = check_image_file(pair.image, decode=not batch)
            if pair.mask.is_file():
                check_mask_size(check_image_file(pair.mask, what="mask", decode=not batch), size, resize=resize_mask)
                if mask_from_alpha:
                    check_alpha_mask(pair.mask)
        except Exception as exc:  # noqa: BLE001 - batch mode reports and goes on
            if not batch:
                raise
            failures += 1
            if on_failure is not None:
                on_failure(pair.image, exc)
            continue
        todo.append((pair, target))
    return todo, failures, skipped
