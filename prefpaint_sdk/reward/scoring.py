"""Scoring files with a reward stack: inputs checked before any model loads, one image or a folder.

What ``prefpaint score --reward ...`` calls, and what a Python user calls for the same result:

* :func:`check_stack_inputs`: from the specs alone, refuse what cannot be scored (``outside-change``
  without the original, ``clip`` without a prompt);
* :func:`stack_batch`: one image, its mask and its original (``--original``) or masked image
  (``--masked-image``, whose outside is the original) as the protocol's tensors;
* :func:`score_files`: every reward's score of one image; :func:`score_folder`: of every pair of a folder,
  failures isolated per item, with the stack's advantage over the folder (one group);
* :func:`write_stack_csv`: one column per reward.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Iterator, Sequence

from ..errors import Arg, ConfigError, InvalidInputError
from .specs import RewardSpec, parse_spec

__all__ = ["check_stack_inputs", "record", "score_files", "score_folder", "stack_batch", "write_stack_csv"]


def check_stack_inputs(specs: Sequence[str | RewardSpec], *, original: bool, prompt: bool, folder: bool = False) -> None:
    """Refuse, from the specs alone, a stack the inputs cannot feed.

    Args:
        original: the original (or a masked image, whose outside is the original) is given.
        prompt: a prompt is given.
        folder: folder mode (no per-image original).

    Raises:
        ConfigError: ``outside-change`` without the original, ``clip`` without a prompt.
    """
    names = {parse_spec(s).name for s in specs}
    if "outside-change" in names and (folder or not original):
        where = "in folder mode there is no original per image" if folder else "none was given"
        raise ConfigError(f"the outside-change reward compares against the original outside the hole, and {where}; "
                          "pass ", Arg("original", "IMAGE"), " or ", Arg("masked_image", "IMAGE"), " for one image, or drop outside-change")
    if "clip" in names and not prompt:
        raise ConfigError("the clip reward scores an image against its prompt; pass ", Arg("prompt", "TEXT"), " (it may be \"\")")


def stack_batch(image, mask, *, original=None, masked_image=None, max_pixels: int | None = None):
    """``(images, masks, masked_images)`` tensors (batch of 1) for one image file (path, PIL, array).

    ``masked_images`` is, in order of preference: ``masked_image`` as given; ``original`` with the hole
    blanked black; ``image`` with the hole blanked black (its outside then is the inpainting's own).

    Raises:
        InvalidInputError: unreadable inputs, or an original / masked image of another size than the image.
    """
    import torch

    from ..imaging import fit_mask_to_image, load_image, load_mask
    from ..imaging import masked_image as blank
    from .base import images_to_tensor

    im = load_image(image, max_pixels=max_pixels)
    hole = fit_mask_to_image(load_mask(mask, max_pixels=max_pixels), im.size)
    if masked_image is not None:
        masked, what = load_image(masked_image, max_pixels=max_pixels), "masked image"
    elif original is not None:
        masked, what = load_image(original, max_pixels=max_pixels), "original"
        if masked.size == im.size:
            masked = blank(masked, hole)
    else:
        masked, what = blank(im, hole), "image"
    if masked.size != im.size:
        raise InvalidInputError(f"{what} is {masked.width}x{masked.height} but image is {im.width}x{im.height}; "
                                "they must match")
    return images_to_tensor([im]), torch.from_numpy(hole)[None], images_to_tensor([masked])


def record(scores: dict) -> dict[str, dict[str, float | None]]:
    """Sample 0 of ``label -> RewardScores`` as JSON-able ``label -> {score, bound, trust}``."""
    def one(t):
        v = None if t is None else float(t[0])
        return v if v is None or math.isfinite(v) else None  # JSON has no NaN: an unscorable image is null

    return {k: {"score": one(v.scores), "bound": one(v.bounds), "trust": one(v.trust)} for k, v in scores.items()}


def score_files(stack, image, mask, *, original=None, masked_image=None, prompt: str | None = None,
                max_pixels: int | None = None) -> dict[str, dict[str, float | None]]:
    """Every reward's ``{score, bound, trust}`` for one image (see :func:`stack_batch` for the inputs)."""
    images, masks, masked = stack_batch(image, mask, original=original, masked_image=masked_image, max_pixels=max_pixels)
    return record(stack.score(images, masks, masked, prompts=None if prompt is None else [prompt]))


def score_folder(stack, pairs, *, prompt: str | None = None, max_pixels: int | None = None
                 ) -> Iterator[tuple[object, dict | Exception]]:
    """Yield ``(pair, {"rewards": record, "advantage": a})`` per pair (see :func:`record`), or
    ``(pair, exception)`` for one that could not be scored. Everything is yielded at the end: ``a`` is the
    stack's normalisation over the folder's scored images (one group).
    """
    import torch

    from ..batch import check_pair
    from .normalize import combine

    done: list[tuple[object, dict | Exception]] = []
    for pair in pairs:
        try:
            check_pair(pair, max_pixels=max_pixels)
            done.append((pair, {"rewards": score_files(stack, pair.image, pair.mask, prompt=prompt, max_pixels=max_pixels)}))
        except InvalidInputError as exc:  # this item's files; a server or model failure stops the run
            done.append((pair, exc))
    good = [rec for _, rec in done if isinstance(rec, dict)]
    if good:
        s = torch.tensor([[_nan(rec["rewards"][lab]["score"]) for rec in good] for lab in stack.labels], dtype=torch.float64)
        for rec, a in zip(good, combine(s, stack.weights, None, stack.norm).tolist()):
            rec["advantage"] = a if math.isfinite(a) else None
    yield from done


def _nan(v):
    return float("nan") if v is None else v


def write_stack_csv(path: str | os.PathLike, rows: list[dict], labels: Sequence[str], overwrite: bool = False) -> None:
    """Rows of ``image``, ``mask``, one score column per reward, ``advantage``; atomic."""
    from ..files import atomic_write_bytes

    if any(lab in ("image", "mask", "advantage") for lab in labels):
        raise ConfigError(f"reward labels {list(labels)} clash with the CSV's own columns")
    fields = ["image", "mask", *labels, "advantage"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({"image": r["image"], "mask": r["mask"], "advantage": r.get("advantage"),
                         **{lab: r["rewards"][lab]["score"] for lab in labels}})
    atomic_write_bytes(path, buf.getvalue().encode(), overwrite=overwrite)
