"""The files one inpainted item writes, and the checks of an input pair made before any model loads (pairing
the inputs is :mod:`prefpaint_sdk.data`'s; a folder batch runs as a job, :mod:`prefpaint_sdk.jobs`)."""

from __future__ import annotations

import os
from pathlib import Path

from .data import InputPair

__all__ = ["check_pair", "plan_item", "result_files"]


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


def plan_item(pair: InputPair, target: str | os.PathLike, *, num_candidates: int, save_all: bool, overwrite: bool,
              resize_mask: bool = False, mask_from_alpha: bool = False) -> None:
    """Check one item before any model loads: its whole output set (no member may exist without ``overwrite``)
    and its inputs, decoded (so even a truncated file is refused now). A folder batch is a job instead
    (:func:`~prefpaint_sdk.jobs.folder_job`), with the job runner's skip and resume rules.

    Raises:
        OutputExistsError, InvalidInputError, ImageTooLargeError: as above.
    """
    from .files import check_image_suffix, check_outputs
    from .imaging import check_alpha_mask, check_image_file, check_mask_size

    check_image_suffix(target)
    files = result_files(target, num_candidates, save_all)
    check_outputs(files, overwrite)
    size = check_image_file(pair.image, decode=True)
    if pair.mask.is_file():
        check_mask_size(check_image_file(pair.mask, what="mask", decode=True), size, resize=resize_mask)
        if mask_from_alpha:
            check_alpha_mask(pair.mask)
