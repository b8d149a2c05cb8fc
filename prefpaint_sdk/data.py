"""The one reader of the toolkit's data convention; every command that reads images and masks reads them here.

The convention:

* **a folder** ``DIR/images/*`` with optional ``DIR/masks/*`` paired by file stem (``images/cat.jpg`` with
  ``masks/cat.png``); a consumer may read more folders paired the same way (evaluation: ``targets/``,
  ``depth/``). The item's id is the image's stem;
* **or a manifest** ``DIR/manifest.jsonl``: one JSON object per line with ``image`` and optionally ``mask``
  (paths relative to the manifest's folder), an ``id`` (or, as evaluation has always read it, ``name``), and
  the columns a consumer reads (``prompt``, ``target``, ``score``, ...). The id defaults to the image's stem.

Command inputs use the same pairing: an image folder with a mask folder by stem, or with one mask
(:func:`pair_inputs`). Images are the files directly inside a folder whose suffix is in
:data:`IMAGE_SUFFIXES`, hidden files skipped, sorted by name. Two images (or two masks) of one folder with the
same stem are refused: which one pairs would depend on the order of a directory listing.

Path rules for manifests: a path is relative to the manifest's folder, or absolute. A consumer whose files
must stay beside its manifest (the rated-pairs manifests of reward training) passes ``inside=True``: then
``../`` and absolute paths are refused.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, InvalidInputError

__all__ = ["DataItem", "IMAGE_SUFFIXES", "InputPair", "find_image", "images_by_stem", "list_images",
           "manifest_path", "pair_inputs", "read_data", "read_rows"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MANIFEST = "manifest.jsonl"


def list_images(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (hidden files and folders skipped)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in suffixes and not p.name.startswith(".") and p.is_file())


def images_by_stem(folder: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
                   error: type[Exception] = DataError) -> dict[str, Path]:
    """``{stem: path}`` of :func:`list_images` (``{}`` when ``folder`` is not a folder).

    Raises:
        DataError (or ``error``): two files of the folder share a stem (``a.png`` and ``a.jpg``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    out: dict[str, Path] = {}
    for p in list_images(folder, suffixes):
        if p.stem in out:
            raise error(f"'{out[p.stem].name}' and '{p.name}' in '{folder}' have the same stem '{p.stem}'; "
                        "pairing by stem needs one file per stem: rename or remove one")
        out[p.stem] = p
    return out


def find_image(folder: str | os.PathLike, stem: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path | None:
    """The file ``folder/<stem><suffix>`` for the first suffix of ``suffixes`` that exists, else None."""
    for ext in suffixes:
        p = Path(folder) / (stem + ext)
        if p.is_file():
            return p
    return None


# ------------------------------------------------------------------------------------------------ pairs
@dataclass(frozen=True)
class InputPair:
    image: Path
    mask: Path
    name: str  # the file stem, used to name outputs


def pair_inputs(image: str | os.PathLike, mask: str | os.PathLike) -> tuple[list[InputPair], list[str]]:
    """Pair an image and a mask, or an image folder with a mask folder (by stem) or with one mask file.

    Returns:
        The pairs, and a list of warnings (images without a mask, masks without an image).

    Raises:
        InvalidInputError: a path is missing, the mask is a folder while the image is a file, a folder
            holds no images, two images (or masks) share a stem, or no image in the folder has a mask.
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
    images = images_by_stem(image, error=InvalidInputError)
    if not images:
        raise InvalidInputError(f"image folder '{image}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    if mask.is_file():
        return [InputPair(p, mask, stem) for stem, p in images.items()], []
    masks = images_by_stem(mask, error=InvalidInputError)
    pairs, warnings = [], []
    for stem, p in images.items():
        m = masks.pop(stem, None)
        if m is None:
            warnings.append(f"no mask named '{stem}.*' in '{mask}' for image '{p.name}'; skipped")
        else:
            pairs.append(InputPair(p, m, stem))
    warnings += [f"mask '{m.name}' has no image of the same name in '{image}'; ignored" for m in masks.values()]
    if not pairs:
        raise InvalidInputError(f"no image in '{image}' has a mask of the same file stem in '{mask}'")
    return pairs, warnings


# ------------------------------------------------------------------------------------------------ manifests
def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def read_rows(path: str | os.PathLike, *, where: Callable[[int], str] | None = None,
              constants: bool = False) -> list[tuple[int, dict]]:
    """The rows of a manifest: ``(line number, object)`` for every non-blank line of a ``.jsonl`` file (for a
    ``.csv`` file, every row after the header, numbered from 1).

    Args:
        path: the manifest.
        where: how a message names line ``n`` (default ``"<path>:<n>"``).
        constants: accept JSON's non-standard ``NaN`` and ``Infinity`` (the consumer then refuses them by
            column, naming it); by default they refuse the line.

    Raises:
        InvalidInputError: the manifest is missing or not a file.
        DataError: the file cannot be read or is not UTF-8, or a line is not a JSON object.
    """
    path = Path(path)
    where = where or (lambda n: f"{path}:{n}")
    if not path.is_file():
        raise InvalidInputError(f"manifest '{path}' does not exist or is not a file; pass a .jsonl file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"manifest '{path}' is not UTF-8 text; write one JSON object per line") from None
    except OSError as exc:
        raise DataError(f"cannot read manifest '{path}': {exc}") from exc
    if path.suffix.lower() == ".csv":
        return list(enumerate(csv.DictReader(text.splitlines()), 1))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line) if constants else json.loads(line, parse_constant=_no_constant)
        except ValueError as exc:
            raise DataError(f"{where(n)} is not valid JSON ({exc}); write one object per line") from None
        if not isinstance(rec, dict):
            raise DataError(f"{where(n)} is not a JSON object; write one object per line")
        rows.append((n, rec))
    return rows


def manifest_path(base: str | os.PathLike, value: Any, where: str, *, inside: bool = False) -> Path | None:
    """The file a manifest cell names: ``base / value`` (``None`` for an empty cell).

    Raises:
        DataError: ``value`` is not text, or (``inside``) it leaves ``base``: ``../`` or an absolute path.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DataError(f"{where} names {value!r}, not a path; write paths as text")
    base = Path(base)
    p = base / value
    # a manifest that must name files beside it or below it: '../' or an absolute path could read anything
    if inside and not p.resolve().is_relative_to(base.resolve()):
        raise DataError(f"{where} names '{value}', outside the manifest's folder '{base}'; paths must be "
                        "relative and stay inside it (no '../', no absolute paths)")
    return p


# ------------------------------------------------------------------------------------------------ data folders
@dataclass(frozen=True)
class DataItem:
    """One item of a data folder.

    Attributes:
        id: the manifest row's ``id`` (or ``name``), else the image's stem.
        image: the image file.
        mask: its mask file, or None (the consumer generates one, or refuses).
        line: the manifest line (0 in the folder layout).
        files: the consumer's other files by column (``{"target": path or None, ...}``).
        row: the manifest row as written (``{}`` in the folder layout): the consumer's own columns.
    """

    id: str
    image: Path
    mask: Path | None = None
    line: int = 0
    files: Mapping[str, Path | None] = field(default_factory=dict)
    row: Mapping[str, Any] = field(default_factory=dict)


def read_data(root: str | os.PathLike, *, folders: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
              inside: bool = False) -> list[DataItem]:
    """The items of a data folder (see the module docstring), checked for existence, not decoded.

    Args:
        root: the data folder.
        folders: the consumer's other files, ``{column: (folder name, suffixes)}``, paired by stem in the
            folder layout and read from ``column`` in a manifest (evaluation: ``{"target": ("targets",
            IMAGE_SUFFIXES), "depth": ("depth", ...)}``).
        inside: manifest paths must stay inside ``root`` (:func:`manifest_path`).

    Returns:
        The items, sorted by stem (folder layout) or in manifest order.

    Raises:
        DataError: a missing folder, neither ``images/`` nor ``manifest.jsonl``, no images, two files of a
            folder with one stem, a manifest line that is not a JSON object with ``image``, or a file the
            manifest names that does not exist.
    """
    root = Path(root)
    folders = dict(folders or {})
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist; pass a folder with images/ (and masks/) or {MANIFEST}")
    manifest = root / MANIFEST
    items: list[DataItem] = []
    if manifest.is_file():
        for n, rec in read_rows(manifest):
            where = f"{manifest}:{n}"
            if not rec.get("image"):
                raise DataError(f"{where} has no 'image' key; each line needs {{\"image\": path, \"mask\": path}}")
            paths = {}
            for key in ("image", "mask", *folders):
                p = manifest_path(root, rec.get(key), where, inside=inside)
                if p is not None and not p.is_file():
                    raise DataError(f"{where} names {key} '{p}', which does not exist; fix the path")
                paths[key] = p
            rid = rec.get("id", rec.get("name"))
            items.append(DataItem(id=str(rid) if rid not in (None, "") else paths["image"].stem, image=paths["image"],
                                  mask=paths["mask"], line=n, files={k: paths[k] for k in folders}, row=rec))
    else:
        img_dir = root / "images"
        if not img_dir.is_dir():
            raise DataError(f"'{root}' has neither images/ nor {MANIFEST}; put the images in '{img_dir}'")
        masks = images_by_stem(root / "masks")
        extra = {key: images_by_stem(root / name, suffixes) for key, (name, suffixes) in folders.items()}
        for stem, p in images_by_stem(img_dir).items():
            items.append(DataItem(id=stem, image=p, mask=masks.get(stem),
                                  files={key: found.get(stem) for key, found in extra.items()}))
    if not items:
        raise DataError(f"no images found in '{root}'; put them in '{root / 'images'}' or list them in {MANIFEST}")
    return items
