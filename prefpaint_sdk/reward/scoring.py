"""Scoring files with a reward stack: inputs checked before any model loads, one image or a folder.

What ``prefpaint score`` calls, and what a Python user calls for the same result:

* :func:`validate_score`: every check of a score that needs no model, first (the PrefPaint score or a stack,
  one image, a folder or a manifest);
* :func:`check_stack_inputs`: from the specs alone, refuse what cannot be scored (``outside-change``
  without the original, ``clip`` without a prompt);
* :func:`stack_batch`: one image, its mask and its original (``--original``) or masked image
  (``--masked-image``, whose outside is the original) as the protocol's tensors;
* :func:`score_files`: every reward's score of one image; :func:`score_folder`: of every pair of a folder,
  failures isolated per item, with the stack's advantage over the folder (one group);
* :func:`write_stack_csv`: one column per reward (:func:`stack_csv_bytes` with :func:`with_advantage`: a folder
  score's CSV, from its job's results).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import Arg, ConfigError, InvalidInputError
from .specs import RewardSpec, parse_spec, stack_specs

__all__ = ["check_stack_inputs", "record", "score_files", "score_folder", "score_specs", "stack_batch", "stack_csv_bytes",
           "validate_score", "with_advantage", "write_stack_csv"]

MODES = ("image", "folder", "manifest")


def score_specs(reward_model=None, reward: Sequence[str | RewardSpec] = ()) -> list[str | RewardSpec]:
    """The stack a score with ``reward`` means: ``reward_model`` joins it as ``prefpaint=RM`` (first)."""
    return ([f"prefpaint={reward_model}"] if reward_model else []) + list(reward)


def validate_score(image=None, mask=None, *, mode: str = "image", reward_model=None,
                   reward: Sequence[str | RewardSpec] = (), reward_weights: str | None = None, reward_norm: str = "gdpo",
                   original=None, masked_image=None, prompt: str | None = None, normalize: bool = False,
                   v_inverse=None, output=None, overwrite: bool = False, batch_size: int = 16) -> None:
    """Every check of a score that needs no model, before anything loads: the options that go together, the
    stack's specs, and (``mode="image"``) the files, decoded, with the mask-size rule.

    Args:
        mode: ``"image"`` (one image), ``"folder"`` (``image`` a folder: a CSV at ``output``, see
            :func:`~prefpaint_sdk.reward.folder.score_folder_outputs`) or ``"manifest"`` (a job's rows).
        reward: a stack's specs (empty: the PrefPaint score alone); ``reward_model`` joins it as ``prefpaint=RM``.
        output: the folder score's CSV (``mode="folder"`` only).

    Raises:
        InvalidInputError, ConfigError: naming the parameter and the value.
    """
    from ..files import check_output_path
    from ..imaging import check_image_file, check_mask_size, check_masked_image_size
    from ..validation import at_least

    if mode not in MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    at_least("batch_size", batch_size, 1)
    one = mode == "image"
    if reward:
        for name, value in (("normalize", normalize or None), ("v_inverse", v_inverse)):
            if value is not None:
                raise InvalidInputError(Arg(name), " is for the PrefPaint-only score; drop it, or drop ", Arg("reward"))
        if original is not None and masked_image is not None:
            raise InvalidInputError("give one of ", Arg("original"), " and ", Arg("masked_image"),
                                    " (the masked image's outside is the original)")
        specs = score_specs(reward_model, reward)
        stack_specs(specs, reward_weights, reward_norm)  # names, weights and norm, before any file or model
        check_stack_inputs(specs, original=original is not None or masked_image is not None, prompt=prompt is not None,
                           folder=not one)
    else:
        for name, value in (("original", original), ("prompt", prompt), ("reward_weights", reward_weights)):
            if value is not None:
                raise InvalidInputError(Arg(name), " is for a reward stack; add ", Arg("reward", ["NAME"]), " (e.g. ",
                                        Arg("reward", ["seam"]), ")")
    for name, value in (("masked_image", masked_image), ("original", original)):
        if value is not None and not one:
            raise InvalidInputError(Arg(name), f" is for one image; in {mode} mode the masked images are derived "
                                    "from the masks")
    for path, what in ((masked_image, "masked image"), (original, "original"), (v_inverse, "V_inverse file")):
        if path is not None and not Path(path).is_file():
            raise InvalidInputError(f"{what} '{path}' does not exist or is not a file; check the path")
    if mode == "folder":
        from .folder import score_folder_outputs

        check_output_path(score_folder_outputs(image, output)[0], overwrite=True)  # whose it is: the job decides
        return
    if output is not None and one:  # it would be silently ignored
        raise InvalidInputError(Arg("output"), " names the CSV of folder mode (or a manifest's output folder); one "
                                "image's score is printed")
    if not one:
        return
    # One image: refuse a bomb before the model loads (a folder or a manifest fails the item alone).
    if reward:
        for path in (image, mask, original, masked_image):
            if path is not None:
                check_image_file(path, decode=True)
        return
    sizes = [check_image_file(path, decode=True) for path in (image, masked_image if masked_image is not None else mask)]
    if masked_image is not None:
        check_masked_image_size(sizes[1], sizes[0])
    else:  # the mask-size rule from the headers, before the model loads
        check_mask_size(sizes[1], sizes[0])


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
    from ..batch import check_pair

    done: list[tuple[object, dict | Exception]] = []
    for pair in pairs:
        try:
            check_pair(pair, max_pixels=max_pixels)
            done.append((pair, {"rewards": score_files(stack, pair.image, pair.mask, prompt=prompt, max_pixels=max_pixels)}))
        except InvalidInputError as exc:  # this item's files; a server or model failure stops the run
            done.append((pair, exc))
    good = [rec for _, rec in done if isinstance(rec, dict)]
    for rec, with_a in zip(good, with_advantage(good, stack.labels, stack.weights, stack.norm)):
        rec["advantage"] = with_a["advantage"]
    yield from done


def with_advantage(rows: list[dict], labels: Sequence[str], weights: Sequence[float], norm: str) -> list[dict]:
    """The scored rows (``{"rewards": record, ...}``; a job's failed rows are left out), each copied with its
    ``"advantage"``: the stack's normalisation over all of them (one group); None where it is not finite."""
    import torch

    from .normalize import combine

    good = [dict(r) for r in rows if r.get("status", "ok") == "ok"]
    if good:
        s = torch.tensor([[_nan(r["rewards"][lab]["score"]) for r in good] for lab in labels], dtype=torch.float64)
        for r, a in zip(good, combine(s, weights, None, norm).tolist()):
            r["advantage"] = a if math.isfinite(a) else None
    return good


def _nan(v):
    return float("nan") if v is None else v


def write_stack_csv(path: str | os.PathLike, rows: list[dict], labels: Sequence[str], overwrite: bool = False) -> None:
    """Rows of ``image``, ``mask``, one score column per reward, ``advantage``; atomic."""
    from ..files import atomic_write_bytes

    atomic_write_bytes(path, stack_csv_bytes(rows, labels), overwrite=overwrite)


def stack_csv_bytes(rows: list[dict], labels: Sequence[str]) -> bytes:
    """The CSV of :func:`write_stack_csv` as bytes."""
    if any(lab in ("image", "mask", "advantage") for lab in labels):
        raise ConfigError(f"reward labels {list(labels)} clash with the CSV's own columns")
    fields = ["image", "mask", *labels, "advantage"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({"image": r["image"], "mask": r["mask"], "advantage": r.get("advantage"),
                         **{lab: r["rewards"][lab]["score"] for lab in labels}})
    return buf.getvalue().encode()
