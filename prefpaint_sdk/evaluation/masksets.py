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
        try:
            d = np.load(src, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read depth map '{src}': {exc}") from exc
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
                      overwrite: bool = False, progress=None) -> list[dict]:
    """Write one generated mask per image into ``out_dir`` as ``<stem>.png`` (white = fill), plus ``masks.json``.

    Args:
        images: an image file, a folder of images, or a list of image paths.
        kind: mask kind (see the module docstring).
        out_dir: destination folder (usable as a data folder's ``masks/``).
        seed: the set's seed; each mask depends on it and on the image's stem only.
        depth_dir: folder of depth maps paired by stem, for ``warp`` (the proxy for images without one).
        overwrite: replace existing masks.
        progress: called as ``progress(done, total)`` after each mask.

    Returns:
        One record per mask: ``image``, ``mask``, ``kind``, ``coverage`` (fill share), ``depth``
        (``"proxy"``, a path, or ``None``).

    Raises:
        InvalidInputError: no images, or an unknown kind. OutputExistsError: a mask exists and not
            ``overwrite`` (checked before anything is written).
    """
    from PIL import Image

    from ..batch import list_images
    from ..files import atomic_write_json, check_output_path, save_image

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
    out = Path(out_dir)
    depths = {}
    if depth_dir is not None:
        dd = Path(depth_dir)
        if not dd.is_dir():
            raise InvalidInputError(f"depth folder '{dd}' does not exist; pass a folder of depth maps named like the images")
        depths = {q.stem: q for q in sorted(dd.iterdir()) if q.suffix.lower() in (".npy", ".png", ".tif", ".tiff", ".exr")}
    targets = [out / f"{p.stem}.png" for p in paths]
    for t in targets + [out / "masks.json"]:
        check_output_path(t, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (p, t) in enumerate(zip(paths, targets)):
        with Image.open(p) as im:
            size = im.size
        depth = depths.get(p.stem)
        mask, drawn = mask_for(kind, size, p.stem, seed, depth)
        save_image(Image.fromarray(mask.astype(np.uint8) * 255, "L"), t, overwrite=overwrite)
        records.append(dict(image=str(p), mask=t.name, kind=drawn, coverage=float(mask.mean()),
                            depth=(str(depth) if depth is not None else ("proxy" if drawn == "warp" else None))))
        if progress is not None:
            progress(i + 1, len(paths))
    atomic_write_json(out / "masks.json", dict(kind=kind, seed=seed, masks=records), overwrite=overwrite)
    return records
