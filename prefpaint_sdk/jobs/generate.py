"""The paper's data recipe as a job: K inpaintings per (prompt image, mask), in the official reward-data layout.

For every image of a folder and every mask kind, the prompt ``<stem>-<kind>`` gets

* ``masks/<imgid>_mask.png``: the generated mask (white = hole; :func:`~prefpaint_sdk.evaluation.mask_for`,
  fixed by the run's seed and the image's name, so a rerun draws the same masks);
* ``masks_color/<imgid>_mask_color.png``: the masked prompt image (the hole black, as the release);
* ``inpaint/<imgid>_<k>.png`` for k < K: the inpaintings, candidate k with seed ``base + k``;

written with its record (``records/<imgid>.json``: the seeds, the mask kind drawn, the model) as one output
set. ``results.jsonl`` gathers the records. Ratings (``prefpaint rate DATA``) then add the labels JSON that
``prefpaint train reward --data DATA`` reads. Runs on N processes like every manifest job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..devices import resolve_device
from ..errors import DataError, InvalidInputError
from ..files import image_writer
from ..validation import at_least, validated_by
from .manifest import ID_PATTERN, JobItem
from .progress import ProgressFn
from .runner import JobContext, JobSummary, run_items
from .tasks import fetch_first, model_key

__all__ = ["DEFAULT_KINDS", "run_generate_dataset"]

DEFAULT_KINDS = ("warp", "outpaint-square", "outpaint-strip")


def _prompt_ids(images: list[Path], kinds: list[str]) -> list[tuple[str, Path, str]]:
    out, seen = [], {}
    for img in images:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", img.stem).lstrip(".") or "image"
        for kind in kinds:
            imgid = f"{stem}-{kind}"
            if imgid in seen:
                raise DataError(f"images '{seen[imgid]}' and '{img}' both give the prompt id '{imgid}'; rename one")
            if not ID_PATTERN.fullmatch(imgid):
                raise DataError(f"image '{img}' gives the prompt id '{imgid}', which is not a plain file name")
            seen[imgid] = img
            out.append((imgid, img, kind))
    return out


def validate_generation(images: str | os.PathLike, *, per_image: int = 3,
                        masks: str | list[str] | tuple[str, ...] = DEFAULT_KINDS, steps: int = 50) -> list[str]:
    """Every check of :func:`run_generate_dataset` that needs no model and reads no image: the counts, the mask
    kinds (a list, or one comma-separated text), and ``images`` is a folder. Returns the mask kinds.

    Raises:
        InvalidInputError: naming the parameter and the value.
    """
    from ..evaluation.masksets import normalize_kind

    at_least("per_image", per_image, 1, 64)
    at_least("steps", steps, 1)
    kinds = [str(k).strip() for k in (masks.split(",") if isinstance(masks, str) else masks) if str(k).strip()]
    if not kinds:
        raise InvalidInputError("masks must name at least one kind, e.g. warp,outpaint-square,outpaint-strip")
    for k in kinds:
        normalize_kind(k)
    if not Path(images).is_dir():
        raise InvalidInputError(f"images '{images}' is not a folder; pass a folder of prompt images")
    return kinds


@validated_by(validate_generation)
def run_generate_dataset(images: str | os.PathLike, out: str | os.PathLike, *, per_image: int = 3,
                         masks: str | list[str] | tuple[str, ...] = DEFAULT_KINDS, model: str | os.PathLike | None = None,
                         seed: int = 0, steps: int = 50, defaults: dict[str, Any] | None = None, overwrite: bool = False,
                         device: str = "auto", dtype: str = "auto", offline: bool | None = None,
                         max_pixels: int | None = None, inpainter=None, progress: ProgressFn | None = None,
                         ctx: JobContext | None = None) -> JobSummary:
    """Write the dataset of ``images`` (a folder) into ``out`` (see the module docstring).

    Raises:
        InvalidInputError: ``images`` is not a folder of images, a mask kind is unknown, a count is < 1.
        DataError: two images give the same prompt id, or no image is usable (bombs, unreadable files).
    """
    from ..data import list_images
    from ..evaluation.masksets import case_seed, mask_for
    from ..hub import DEFAULT_MODEL
    from ..imaging import check_image_file, load_image, masked_image
    from ..inpainter import Inpainter

    kinds = validate_generation(images, per_image=per_image, masks=masks, steps=steps)
    per_image, steps = int(per_image), int(steps)
    folder = Path(images)
    files = list_images(folder)
    if not files:
        raise InvalidInputError(f"images folder '{folder}' holds no images")
    prompts = _prompt_ids(files, kinds)
    bad: dict[Path, str] = {}
    for f in files:
        try:
            check_image_file(f, max_pixels=max_pixels)
        except InvalidInputError as exc:
            bad[f] = " ".join(str(exc).split())
    if len(bad) == len(files):
        raise DataError(f"no image in '{folder}' is usable ({len(bad)} failed); the first: {next(iter(bad.values()))}")
    out = Path(out)
    items = [JobItem(id=imgid, image=img, mask=out / "masks" / f"{imgid}_mask.png", line=i + 1,
                     params={"kind": kind}, refs=(img.name, kind)) for i, (imgid, img, kind) in enumerate(prompts)]
    defaults = dict(defaults or {})
    settings = {"model": model_key(model or (inpainter.model_id if inpainter is not None else DEFAULT_MODEL)),
                "seed": seed, "per_image": per_image, "steps": steps, **defaults}
    ctx = ctx or JobContext.detect(cpu=device == "cpu")
    if inpainter is None:
        resolve_device(ctx.device_for(device))  # a device this machine lacks: before any model is fetched
    loaded = {"inpainter": inpainter}

    def load() -> None:
        if loaded["inpainter"] is None:
            fetch_first(ctx, offline, model or DEFAULT_MODEL)
            dev = ctx.device_for(device)
            loaded["inpainter"] = Inpainter.from_pretrained(model or DEFAULT_MODEL, device=dev, dtype=dtype,
                                                            offline=offline, steps=steps)

    def work(it: JobItem):
        if it.image in bad:
            raise DataError(bad[it.image])
        kind = it.params["kind"]
        image = load_image(it.image, max_pixels=max_pixels)
        hole, drawn = mask_for(kind, image.size, it.image.stem, seed=seed)
        base = case_seed(seed, it.id, "sample")
        result = loaded["inpainter"](image, hole, num_candidates=per_image, seed=base, steps=steps, **defaults)
        from PIL import Image

        writers = {}
        for k, cand in enumerate(result.candidates):
            p = out / "inpaint" / f"{it.id}_{k}.png"
            writers[p] = image_writer(cand, p)
        mask_path = out / "masks" / f"{it.id}_mask.png"
        writers[mask_path] = image_writer(Image.fromarray(hole.astype("uint8") * 255), mask_path)
        color = out / "masks_color" / f"{it.id}_mask_color.png"
        writers[color] = image_writer(masked_image(image, hole), color)
        return writers, {"kind": kind, "drawn": drawn, "seeds": result.seeds, "model": result.model_id,
                         "steps": steps, "hole_fraction": round(float(hole.mean()), 4)}

    def outputs(it: JobItem) -> list[Path]:
        return [*(out / "inpaint" / f"{it.id}_{k}.png" for k in range(per_image)), it.mask,
                out / "masks_color" / f"{it.id}_mask_color.png"]

    # it.mask is the mask the item writes; its one input is the prompt image.
    return run_items(items, out, work, ctx=ctx, overwrite=overwrite, progress=progress, settings=settings, load=load,
                     outputs=outputs, inputs=lambda it: {"image": it.image})
