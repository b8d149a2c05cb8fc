"""Evaluation cases: (image, mask) pairs read from the toolkit's data convention, or given directly.

The toolkit's data convention (:func:`prefpaint_sdk.data.read_data`, the reader alignment training uses too):

* ``DIR/images/*`` with optional ``DIR/masks/*`` paired by file stem (``images/cat.jpg`` with
  ``masks/cat.png``); images without a mask get a generated one. Two more optional folders, paired by
  stem too, serve evaluation: ``DIR/targets/`` (ground truth of the hole, for masked PSNR/SSIM) and
  ``DIR/depth/`` (depth maps for warp masks: ``.npy`` arrays or 16-bit/float images, larger = farther);
* or ``DIR/manifest.jsonl``: one ``{"image": path, "mask": path, "target": path, "depth": path}`` object
  per line, paths relative to DIR; every key but ``image`` may be omitted or null. An ``id`` (or ``name``)
  key overrides the case name (default: the image's stem).

Evaluation keeps images at their own size (the :class:`~prefpaint_sdk.Inpainter` crops and resizes
itself), unlike the training reader, which centre-crops to the working size.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..data import IMAGE_SUFFIXES, read_data
from ..errors import DataError, InvalidInputError

__all__ = ["EvalCase", "read_eval_data", "as_cases"]

_DEPTH_SUFFIXES = IMAGE_SUFFIXES + (".npy",)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class EvalCase:
    """One evaluation case.

    Attributes:
        name: unique, file-name-safe id; names the case's output folder and seeds it.
        image: the input (path, PIL image, array or tensor).
        mask: its mask (white = fill), or ``None`` to generate one.
        target: ground truth of the hole for masked PSNR/SSIM, or ``None``.
        depth: depth map (path or HxW array) for generated warp masks, or ``None``.
    """

    name: str
    image: Any
    mask: Any = None
    target: Any = None
    depth: Any = None


def read_eval_data(root: str | os.PathLike) -> list[EvalCase]:
    """Read the cases of a data folder (see the module docstring for the layout).

    Args:
        root: the data folder.

    Returns:
        Cases sorted by name (images/ layout) or in manifest order.

    Raises:
        DataError: a missing folder, no images, a malformed manifest line, a file the manifest names that
            does not exist, or two cases with the same name.
    """
    items = read_data(root, folders={"target": ("targets", IMAGE_SUFFIXES), "depth": ("depth", _DEPTH_SUFFIXES)})
    cases = [EvalCase(name=it.id, image=it.image, mask=it.mask, target=it.files["target"], depth=it.files["depth"])
             for it in items]
    _check_names(cases, str(root))
    return cases


def as_cases(pairs: str | os.PathLike | Iterable) -> list[EvalCase]:
    """Normalise what :func:`~prefpaint_sdk.evaluation.evaluate` accepts into a list of :class:`EvalCase`.

    Args:
        pairs: a data folder (read with :func:`read_eval_data`), or an iterable of :class:`EvalCase`,
            ``(image, mask)`` / ``(image, mask, target)`` tuples, or dicts with keys ``image``, ``mask``,
            ``target``, ``depth``, ``name``. Unnamed items are named by their image path's stem, or
            ``case0000``, ``case0001``, ... for in-memory images.

    Returns:
        The cases, with unique file-name-safe names.

    Raises:
        InvalidInputError: an item of another shape, or no items.
        DataError: duplicate names.
    """
    if isinstance(pairs, (str, os.PathLike)):
        return read_eval_data(pairs)
    cases = []
    for i, item in enumerate(pairs):
        if isinstance(item, EvalCase):
            case = item
        elif isinstance(item, dict):
            if "image" not in item:
                raise InvalidInputError(f"case {i} has no 'image' key; pass dicts with image (and mask, target, depth)")
            case = EvalCase(name=item.get("name") or "", image=item["image"], mask=item.get("mask"),
                            target=item.get("target"), depth=item.get("depth"))
        elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 3:
            case = EvalCase("", *item)
        else:
            raise InvalidInputError(f"case {i} is a {type(item).__name__}; pass (image, mask) tuples, dicts or EvalCase")
        if not case.name:
            case.name = Path(case.image).stem if isinstance(case.image, (str, os.PathLike)) else f"case{i:04d}"
        cases.append(case)
    if not cases:
        raise InvalidInputError("evaluate() got no cases; pass a data folder or a list of (image, mask) pairs")
    _check_names(cases, "the cases")
    return cases


def _check_names(cases: list[EvalCase], where: str) -> None:
    seen: dict[str, str] = {}
    for c in cases:
        safe = _SAFE_NAME.sub("_", str(c.name)).strip("._") or "case"
        if safe in seen:
            raise DataError(f"two cases in {where} are both named '{safe}' ('{seen[safe]}' and '{c.name}'); "
                            "give them distinct file stems or manifest names")
        seen[safe] = str(c.name)
        c.name = safe
