"""Job manifests: one JSON object per line, every row validated cheaply before any model loads.

A row of ``jobs.jsonl``::

    {"id": "cat-01", "image": "photos/cat.png", "mask": "masks/cat.png", "prompt": "", "seed": 7, "n": 2,
     "steps": 30, "guidance_scale": 7.5}

Paths are relative to the manifest's folder. ``id`` names the item's outputs (``OUT/<id>.png``), so it must
be a plain file name: letters, digits, ``.``, ``_`` and ``-``, not starting with a dot (``../x`` or
``a/b`` would write outside the output folder and are refused). Parameters may sit at the top level or in a
``"params"`` object; an unknown key is an error, so a typo never silently falls back to a default.

A folder batch (an image folder with a mask folder paired by stem, or with one mask) is the manifest
:func:`folder_job` makes: one row per image, its id the image's stem.

Structural problems (not JSON, a missing key, a bad id, a duplicate id, NaN or a value out of range) refuse
the whole manifest before any work. A file that cannot be used (missing, not an image, past the pixel
limit: a decompression bomb) only fails its own item: it is recorded and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import manifest_path, pair_inputs, read_rows
from ..errors import DataError, InvalidInputError
from ..validation import at_least, check_seed, finite, non_negative

__all__ = ["ID_PATTERN", "INPAINT_PARAMS", "JobItem", "check_item_files", "folder_job", "read_job_manifest"]

ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}")
"""An item id: a plain file name (no separators, no leading dot, at most 200 characters). Use ``fullmatch``:
``$`` would also match before a final newline."""

# name -> (kind, rule): the per-row parameters of an inpaint job (the Inpainter's keyword arguments).
INPAINT_PARAMS: dict[str, str] = {
    "negative_prompt": "text", "steps": "count", "guidance_scale": "finite", "eta": "unit", "strength": "unit",
    "mask_dilate": "non_negative_int", "mask_blur": "non_negative_int", "crop_margin": "int",
    "invert_mask": "bool", "mask_from_alpha": "bool", "resize_mask": "bool",
}
_ALIASES = {"guidance": "guidance_scale", "num_candidates": "n"}
_KINDS = {"inpaint": ("image", "mask"), "score": ("image", "mask")}


@dataclass(frozen=True)
class JobItem:
    """One validated manifest row."""

    id: str
    image: Path
    mask: Path
    line: int
    prompt: str | None = None  # None: the command's default
    seed: int | None = None
    n: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    refs: tuple[str, ...] = ()  # the paths as the row wrote them (relative to the manifest)

    def fingerprint(self, defaults: dict[str, Any] | None = None) -> str:
        """A digest of what the row asks for (with the command's ``defaults``): a finished output made from
        another row or other settings is never reused."""
        # The row's own paths (relative to the manifest), so a rerun from another folder or of a moved dataset
        # still finds its work.
        files = list(self.refs) if self.refs else [str(self.image), str(self.mask)]
        facts = {"files": files, "prompt": self.prompt, "seed": self.seed,
                 "n": self.n, "params": self.params, "defaults": defaults or {}}
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _where(path: Path, line: int) -> str:
    return f"{path}:{line}"


def _shown_id(rid: str) -> str:
    """The id quoted for one line of text: a control or unprintable character is shown escaped (``\\n``)."""
    if rid.isprintable():
        return f"'{rid}'"
    return "'" + "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in rid) + "'"


def _id_problem(rid: str) -> str:
    if not rid.isprintable():
        return "is not a plain file name (it holds a control or unprintable character)"
    if "/" in rid or "\\" in rid or os.sep in rid:
        return "is not a plain file name (it holds a path separator)"
    return "is not a plain file name"


def _check_param(where: str, name: str, value: Any) -> Any:
    rule = INPAINT_PARAMS[name]
    try:
        if rule == "text":
            if not isinstance(value, str):
                raise InvalidInputError(f"{name} must be text, got {value!r}")
            return value
        if rule == "bool":
            if not isinstance(value, bool):
                raise InvalidInputError(f"{name} must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(f"{name} must be a number, got {value!r}")
        if rule == "count":
            return at_least(name, value, 1)
        if rule == "non_negative_int":
            non_negative(name, value)
            return at_least(name, value, 0)
        if rule == "int":
            return at_least(name, value, -(2**31))
        if rule == "unit":
            return finite(name, value, 0.0, 1.0)
        return finite(name, value)
    except InvalidInputError as exc:
        raise DataError(f"{where}: {exc}") from None


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    rows = read_rows(path)  # NaN and Infinity are refused here, with the line, not later in a sampler
    if not rows:
        raise DataError(f"manifest '{path}' holds no rows; write one JSON object per line")
    return rows


def read_job_manifest(path: str | os.PathLike, kind: str = "inpaint") -> list[JobItem]:
    """Read and validate a job manifest (see the module docstring); files are not opened here.

    Args:
        path: the ``.jsonl`` manifest.
        kind: ``"inpaint"`` (rows may carry ``prompt``, ``seed``, ``n`` and sampler parameters) or
            ``"score"`` (rows have ``id``, ``image`` and ``mask`` only).

    Raises:
        InvalidInputError: the manifest is missing.
        DataError: a row is not a JSON object, lacks a key, has a bad or duplicate id, an unknown key, or a
            value that is NaN, infinite or out of range (the message names the file and line).
    """
    if kind not in _KINDS:
        raise InvalidInputError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    path = Path(path)
    base = path.parent
    items: list[JobItem] = []
    seen: dict[str, int] = {}
    for n, rec in _read_rows(path):
        where = _where(path, n)
        rid = rec.get("id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            rid = str(rid)
        if not isinstance(rid, str) or not rid:
            raise DataError(f"{where} has no 'id'; every row needs a unique id (a plain file name)")
        if not ID_PATTERN.fullmatch(rid) or rid in (".", ".."):
            raise DataError(f"{where}: id {_shown_id(rid)} {_id_problem(rid)}; use letters, digits, '.', '_' and "
                            "'-' (no '/', no leading dot, at most 200 characters)")
        if rid in seen:
            raise DataError(f"{where}: id '{rid}' is already used on line {seen[rid]}; every id must be unique")
        seen[rid] = n
        files = {}
        for key in _KINDS[kind]:
            value = rec.get(key)
            if not isinstance(value, str) or not value:
                raise DataError(f"{where} (id '{rid}') has no '{key}' path; every row needs 'image' and 'mask'")
            files[key] = manifest_path(base, value, where)
        if not isinstance(rec.get("params") or {}, dict):  # before dict(): a list or text would raise raw
            raise DataError(f"{where} (id '{rid}'): 'params' must be an object")
        params = dict(rec.get("params") or {})
        for key, value in rec.items():
            if key in ("id", "params", *files):
                continue
            params[key] = value
        params = {_ALIASES.get(k, k): v for k, v in params.items()}
        prompt, seed, count = None, None, None
        if kind == "inpaint":
            prompt = params.pop("prompt", None)
            if prompt is not None and not isinstance(prompt, str):
                raise DataError(f"{where} (id '{rid}'): prompt must be text, got {prompt!r}")
            count = params.pop("n", None)
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64):
                raise DataError(f"{where} (id '{rid}'): n must be a whole number from 1 to 64, got {count!r}")
            seed = params.pop("seed", None)
            try:
                check_seed(seed, count or 1)
            except InvalidInputError as exc:
                raise DataError(f"{where} (id '{rid}'): {exc}") from None
            unknown = sorted(set(params) - set(INPAINT_PARAMS))
            if unknown:
                raise DataError(f"{where} (id '{rid}'): unknown key '{unknown[0]}'; known: id, image, mask, prompt, "
                                f"seed, n, {', '.join(sorted(INPAINT_PARAMS))}")
            params = {k: _check_param(f"{where} (id '{rid}')", k, v) for k, v in sorted(params.items())}
        elif params:
            raise DataError(f"{where} (id '{rid}'): unknown key '{sorted(params)[0]}'; a score row has id, image and "
                            "mask")
        items.append(JobItem(id=rid, image=files["image"], mask=files["mask"], line=n, prompt=prompt, seed=seed,
                             n=count, params=params, refs=(rec["image"], rec["mask"])))
    return items


def check_item_files(item: JobItem, *, max_pixels: int | None = None) -> None:
    """The item's image and mask are readable images within the pixel limit (headers only, nothing decoded).

    Raises:
        InvalidInputError / ImageTooLargeError: a file is missing, not an image, or a decompression bomb.
    """
    from ..imaging import check_image_file

    check_image_file(item.image, what="image", max_pixels=max_pixels)
    check_image_file(item.mask, what="mask", max_pixels=max_pixels)


def folder_job(images: str | os.PathLike, masks: str | os.PathLike) -> tuple[list[JobItem], list[str]]:
    """The manifest of a folder batch: one row per image of ``images`` paired with its mask by stem
    (:func:`~prefpaint_sdk.data.pair_inputs`), or with the one mask file ``masks``; the id is the image's stem.

    A stem that is not a plain file name (:data:`ID_PATTERN`) has every other character replaced by ``_``.

    Returns:
        The rows, and the pairing's warnings (images without a mask, masks without an image).

    Raises:
        InvalidInputError: ``images`` is not a folder, or the pairing fails (:func:`pair_inputs`).
        DataError: two images give the same id.
    """
    if not Path(images).is_dir():
        raise InvalidInputError(f"images '{images}' is not a folder; a folder batch pairs a folder of images")
    pairs, warnings = pair_inputs(images, masks)
    items, seen = [], {}
    for n, pair in enumerate(pairs, 1):
        rid = pair.name
        if not ID_PATTERN.fullmatch(rid):
            rid = re.sub(r"[^A-Za-z0-9._-]", "_", rid).lstrip(".")[:200] or "image"
        if rid in seen:
            raise DataError(f"images '{seen[rid].name}' and '{pair.image.name}' in '{images}' both give the id "
                            f"'{rid}', which names their outputs; rename one")
        seen[rid] = pair.image
        items.append(JobItem(id=rid, image=pair.image, mask=pair.mask, line=n,
                             refs=(pair.image.name, pair.mask.name)))
    return items, warnings
