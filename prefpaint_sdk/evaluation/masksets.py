"""Reproducible mask sets for evaluation and training, built on :mod:`prefpaint_sdk.masks`.

Each image's mask depends only on (kind, seed, image name, image size, depth), never on the order of the
files, so adding images to a set leaves the other masks unchanged, and ``prefpaint eval`` generating
masks on the fly gives exactly the masks ``prefpaint masks generate`` writes for the same seed.

Kinds (CLI spellings; the underscore spellings of :data:`prefpaint_sdk.masks.MASK_KINDS` work too), with
the paper's statistics as the defaults of :mod:`prefpaint_sdk.masks`:

* ``warp``: holes of the image re-rendered from a camera moved on the paper's 3x3 yaw/pitch grid. Needs a
  depth map; without one a **depth proxy** is used: a ground plane tilted away from the camera (bottom row
  at depth 1, top row at depth 5). It reproduces the border and stretching holes of a camera move but no
  object disocclusions, so pass real depth (``--depth DIR``, e.g. from Depth Anything, converted to depth,
  larger = farther) for the paper's warp masks. Fill share: a few % to about 30%;
* ``outpaint-square``: keeps a centred square of 15-25% of the image (fills 75-85%);
* ``outpaint-strip``: keeps a centred full-height strip of 35-40% of the width (fills 60-65%);
* ``outpaint``: one of the two above, chosen per image by the seed;
* ``strokes``: 1-4 free-form brush strokes (fills up to about 60%);
* ``random``: any of the above (warp only with real depth).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import DataError, InvalidInputError
from ..masks import generate_mask

__all__ = ["MASK_CHOICES", "normalize_kind", "case_seed", "proxy_depth", "load_depth", "mask_for", "generate_mask_set"]

log = logging.getLogger(__name__)

MASK_CHOICES = ("warp", "outpaint", "outpaint-square", "outpaint-strip", "strokes", "random")

_ALIASES = {
    "warp": "warp", "outpaint": "outpaint", "outpaint-square": "outpaint_square", "outpaint_square": "outpaint_square",
    "outpaint-strip": "outpaint_strip", "outpaint_strip": "outpaint_strip", "strokes": "stroke", "stroke": "stroke",
    "random": "random",
}


def normalize_kind(kind: str) -> str:
    """Map a CLI spelling (``outpaint-square``, ``strokes``) to the generator's name (``outpaint_square``, ``stroke``).

    Raises:
        InvalidInputError: an unknown kind.
    """
    k = _ALIASES.get(str(kind).strip().lower())
    if k is None:
        raise InvalidInputError(f"mask kind '{kind}' is unknown; use one of {', '.join(MASK_CHOICES)}")
    return k


def case_seed(seed: int, name: str, salt: str = "") -> int:
    """A seed for one case, from the run's seed and the case name (stable across runs and platforms).

    Python's ``hash`` is salted per process, so a SHA-256 of the text is used instead. The value leaves
    room for 1000 consecutive sample seeds below 2**31.
    """
    digest = hashlib.sha256(f"{int(seed)}/{salt}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1000)


def proxy_depth(h: int, w: int) -> np.ndarray:
    """The documented depth proxy for warp masks without a depth map: a tilted ground plane.

    Depth grows from 1 at the bottom row to 5 at the top row, with inverse depth linear in the row, as a
    flat ground seen by a level camera. Returns an HxW float64 array.
    """
    inv = np.linspace(0.2, 1.0, int(h))[:, None]  # inverse depth: top row 0.2 (depth 5), bottom row 1.0 (depth 1)
    return np.broadcast_to(1.0 / inv, (int(h), int(w))).astype(np.float64).copy()


def load_depth(src, size: tuple[int, int]) -> np.ndarray:
    """Read a depth map (``.npy`` or a 16-bit / float / 8-bit image, larger = farther) at ``size`` = (w, h).

    Invalid pixels (zero, negative, NaN, inf) are set to the farthest valid depth, since the warp needs
    positive depth everywhere.

    Raises:
        DataError: unreadable file, no valid pixels, or a size that differs from the image's.
    """
    if isinstance(src, np.ndarray):
        d = src.astype(np.float64)
    elif str(src).lower().endswith(".npy"):
        from ..files import load_npy

        raw = np.asarray(load_npy(src, "depth map"))
        if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
            raise DataError(f"depth map '{src}' holds {raw.dtype} values, not real numbers; save float depth "
                            "(larger = farther)")
        d = raw.astype(np.float64)
    else:
        from PIL import Image

        try:
            with Image.open(src) as im:
                d = np.asarray(im, dtype=np.float64)
        except OSError as exc:
            raise DataError(f"cannot read depth map '{src}': {exc}") from exc
    d = np.squeeze(d)
    if d.ndim == 3:
        d = d[..., 0]
    if d.ndim != 2 or d.shape != (size[1], size[0]):
        shown = f"{d.shape[1]}x{d.shape[0]}" if d.ndim == 2 else f"of shape {d.shape}"
        where = "array" if isinstance(src, np.ndarray) else src
        raise DataError(f"depth map '{where}' is {shown} but its image is {size[0]}x{size[1]}; resize the depth map to the image")
    ok = np.isfinite(d) & (d > 0)
    if not ok.any():
        raise DataError(f"depth map '{src}' has no positive finite pixel; save depth (larger = farther), not an empty map")
    return np.where(ok, d, d[ok].max())


def mask_for(kind: str, size: tuple[int, int], name: str, seed: int = 0, depth=None) -> tuple[np.ndarray, str]:
    """The generated mask of one image.

    Args:
        kind: see the module docstring (CLI or generator spelling).
        size: the image's (width, height).
        name: the case name (usually the file stem); with ``seed`` it fixes the mask.
        seed: the run's seed.
        depth: a depth map (path or HxW array) for ``warp``; the tilted-plane proxy when ``None``.

    Returns:
        (bool HxW mask, True = fill; the concrete kind drawn, e.g. ``outpaint_strip`` for ``outpaint``).

    Raises:
        InvalidInputError: an unknown kind. DataError: an unreadable depth map.
    """
    k = normalize_kind(kind)
    s = case_seed(seed, name, "mask")
    g = np.random.default_rng(s)
    if k == "outpaint":
        k = ("outpaint_square", "outpaint_strip")[int(g.integers(0, 2))]
    elif k == "random":
        kinds = ["outpaint_square", "outpaint_strip", "stroke"] + (["warp"] if depth is not None else [])
        k = kinds[int(g.integers(0, len(kinds)))]
    d = None
    if k == "warp":
        d = load_depth(depth, size) if depth is not None else proxy_depth(size[1], size[0])
    return generate_mask(k, size, seed=int(g.integers(0, 2**31)), depth=d), k


def generate_mask_set(images, kind: str, out_dir: str | os.PathLike, *, seed: int = 0, depth_dir=None,
                      overwrite: bool = False, progress=None, on_error=None) -> list[dict]:
    """Write one generated mask per image into ``out_dir`` as ``<stem>.png`` (white = fill), plus ``masks.json``.

    The folder is built in a stage beside ``out_dir`` and renamed into place when every mask and
    ``masks.json`` are written (:func:`prefpaint_sdk.files.staged_dir`): an error or Ctrl-C leaves no
    folder (or the old one untouched), and ``overwrite`` replaces the old folder whole, so no stale mask
    survives. An image that cannot be read, or that passes the pixel limit, is reported and skipped; the
    others go on (it is listed under ``skipped`` in ``masks.json``). Only each image's header is read:
    a mask depends on the image's size, not its pixels.

    Args:
        images: an image file, a folder of images, or a list of image paths.
        kind: mask kind (see the module docstring).
        out_dir: destination folder (usable as a data folder's ``masks/``).
        seed: the set's seed; each mask depends on it and on the image's stem only.
        depth_dir: folder of depth maps paired by stem, for ``warp`` (the proxy for images without one).
        overwrite: replace an existing, non-empty ``out_dir`` whole.
        progress: called as ``progress(done, total)`` after each image.
        on_error: called as ``on_error(image_path, exc)`` for each skipped image; by default the error is
            logged.

    Returns:
        One record per mask written: ``image``, ``mask``, ``kind``, ``coverage`` (fill share), ``depth``
        (``"proxy"``, a path, or ``None``).

    Raises:
        InvalidInputError: no images, an unknown kind, two images with the same stem, or an output folder
            that cannot be written. OutputExistsError: ``out_dir`` is a non-empty folder and not
            ``overwrite`` (both checked before anything is written). DataError: a depth map that does not
            fit its image, or no image could be read.
    """
    from PIL import Image

    from ..data import list_images
    from ..files import check_output_dir, staged_dir, strict_json_dumps
    from ..imaging import check_image_file

    normalize_kind(kind)
    if isinstance(images, (str, os.PathLike)):
        p = Path(images)
        if not p.exists():
            raise InvalidInputError(f"image path '{p}' does not exist; check the path")
        paths = list_images(p) if p.is_dir() else [p]
    else:
        paths = [Path(x) for x in images]
    if not paths:
        raise InvalidInputError(f"no images found in '{images}'")
    by_stem: dict[str, Path] = {}
    for p in paths:
        if p.stem in by_stem:
            raise InvalidInputError(
                f"images '{by_stem[p.stem]}' and '{p}' would both get the mask '{p.stem}.png'; rename one of them"
            )
        by_stem[p.stem] = p
    out = check_output_dir(out_dir, overwrite)
    depths = {}
    if depth_dir is not None:
        dd = Path(depth_dir)
        if not dd.is_dir():
            raise InvalidInputError(f"depth folder '{dd}' does not exist; pass a folder of depth maps named like the images")
        depths = {q.stem: q for q in sorted(dd.iterdir()) if q.suffix.lower() in (".npy", ".png", ".tif", ".tiff", ".exr")}
    # Headers first, before anything is written: one image given alone fails loudly; in a folder a bad one is
    # reported and skipped, unless none is readable (then one error line, not one per image).
    sizes: dict[Path, tuple[int, int]] = {}
    skipped: list[dict] = []
    errors: list[tuple[Path, InvalidInputError]] = []
    for p in paths:
        try:
            sizes[p] = check_image_file(p)
        except InvalidInputError as exc:
            if len(paths) == 1:
                raise
            errors.append((p, exc))
            skipped.append({"image": str(p), "error": str(exc)})
    if not sizes:
        raise DataError(f"none of the {len(paths)} images could be read (first: {skipped[0]['error']}); no masks written")
    for p, exc in errors:
        if on_error is not None:
            on_error(p, exc)
        else:
            log.error("skipped: %s", exc)
    records: list[dict] = []
    with staged_dir(out, overwrite) as stage:
        for i, p in enumerate(paths):
            if p in sizes:
                depth = depths.get(p.stem)
                mask, drawn = mask_for(kind, sizes[p], p.stem, seed, depth)
                name = f"{p.stem}.png"
                Image.fromarray(mask.astype(np.uint8) * 255, "L").save(stage / name, format="PNG")
                records.append({"image": str(p), "mask": name, "kind": drawn, "coverage": float(mask.mean()),
                                "depth": (str(depth) if depth is not None else ("proxy" if drawn == "warp" else None))})
            if progress is not None:
                progress(i + 1, len(paths))
        meta = {"kind": kind, "seed": seed, "masks": records}
        if skipped:
            meta["skipped"] = skipped
        (stage / "masks.json").write_text(strict_json_dumps(meta, where=out / "masks.json") + "\n")
    return records
