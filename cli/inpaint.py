"""``prefpaint inpaint IMAGE MASK``: one image, or a folder of them, with the aligned model."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from . import _jobs
from ._common import (
    COUNT,
    EXIT_FAILED,
    MODEL_NAME,
    NON_NEGATIVE,
    SEED,
    console,
    failed,
    handle_errors,
    max_pixels_option,
    note,
    offline_option,
    progress,
    requires,
    say,
    say_error,
    setup,
    warn,
)

_HELP_MODEL = ("Hub id, alias (prefpaint, base, sdxl-inpaint, flux-fill, qwen-image, flux2-klein, z-image) or local "
               "diffusers folder of any family (SD, SDXL, FLUX Fill, Qwen-Image, FLUX.2 klein, Z-Image). "
               "Default: kd5678/prefpaint-v1.0.")


@requires(select="reward_model")
def inpaint(
    image: Optional[Path] = typer.Argument(None, help="Image file, or a folder of images (batch mode).", show_default=False),
    mask: Optional[Path] = typer.Argument(None, help="Mask file (white = fill), or a folder of masks paired by file stem.", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (single) or folder (batch, --manifest). Default: <image>_inpainted.png / <folder>_inpainted/."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="A jobs.jsonl (rows: id, image, mask, optional prompt, seed, n and sampler parameters): writes OUT/<id>.png + .json per row and OUT/results.jsonl. Runs on N processes under torchrun or accelerate launch; a rerun finishes what is left."),
    prompt: str = typer.Option("", help="Text prompt. PrefPaint is used with an empty prompt."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Negative prompt."),
    steps: Optional[int] = typer.Option(None, callback=COUNT, help="Sampling steps. Default: the model family's (SD 50, SDXL 30, FLUX Fill 50)."),
    guidance: Optional[float] = typer.Option(None, help="Guidance scale. Default: the family's (SD 7.5, SDXL 8, FLUX Fill 30). For SD/SDXL it is classifier-free guidance (no effect when prompt equals negative prompt); for FLUX Fill, its distilled guidance."),
    seed: Optional[int] = typer.Option(None, callback=SEED, help="Base seed; candidate k uses seed+k. Random (and recorded) when omitted."),
    num_candidates: int = typer.Option(1, "-n", "--num-candidates", callback=COUNT, help="Candidates per image; the best by reward is kept when a reward model is given."),
    save_all: bool = typer.Option(False, "--save-all", help="Also write every candidate as <out>_cand<k>.png."),
    model: Optional[str] = typer.Option(None, callback=MODEL_NAME, help=_HELP_MODEL),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", callback=MODEL_NAME, help="Reward model (hub id or folder) to score and pick candidates."),
    select: str = typer.Option("reward", help="Pick by 'reward' or trust-aware 'lcb' (score - c*bound)."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    offload: str = typer.Option("none", help="CPU offload for models larger than the GPU: none, model (each model moves to the GPU while it runs) or sequential (layer by layer: least memory, slowest)."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="Encode and decode in tiles (large images on small GPUs)."),
    scheduler: str = typer.Option("auto", "--scheduler", help="native (the model's shipped scheduler and its pipeline's defaults, as diffusers), ddim (the alignment sampler, η 1; SD/SDXL) or auto (ddim for SD/SDXL, native otherwise)."),
    mask_dilate: int = typer.Option(0, "--mask-dilate", callback=NON_NEGATIVE, help="Grow the hole by this many pixels."),
    mask_blur: int = typer.Option(8, "--mask-blur", callback=NON_NEGATIVE, help="Feathered seam width in pixels outside the hole."),
    crop_margin: int = typer.Option(128, "--crop-margin", help="Context pixels around the hole; negative = no cropping (whole image)."),
    invert_mask: bool = typer.Option(False, "--invert-mask", help="Black means fill."),
    mask_from_alpha: bool = typer.Option(False, "--mask-from-alpha", help="Fill where the mask image is transparent."),
    resize_mask: bool = typer.Option(False, "--resize-mask", help="Resize a mask whose size differs from the image's."),
    offline: Optional[bool] = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs. Without it, batch mode skips items whose outputs all exist."),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Inpaint IMAGE where MASK is white, with the preference-aligned PrefPaint model (or any SD, SDXL or FLUX Fill
    inpainting model given with --model), or every row of --manifest."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk import DEFAULT_MODEL, Inpainter, pair_inputs
        from prefpaint_sdk.batch import plan_batch

        Inpainter.validate(offload=offload, select=select, scheduler=scheduler, num_candidates=num_candidates, seed=seed,
                           steps=steps, guidance_scale=guidance, mask_dilate=mask_dilate, mask_blur=mask_blur,
                           crop_margin=crop_margin)
        if _jobs.check_manifest_mode(manifest, image, mask, output):
            _run_manifest(manifest, output, quiet, device, dict(
                model=model, save_all=save_all, overwrite=overwrite, dtype=dtype, reward_model=reward_model,
                select=select, offline=offline, max_pixels=max_pixels, defaults=dict(
                    prompt=prompt, num_candidates=num_candidates, negative_prompt=negative_prompt, steps=steps, guidance_scale=guidance, seed=seed,
                    mask_dilate=mask_dilate, mask_blur=mask_blur, crop_margin=crop_margin, invert_mask=invert_mask,
                    mask_from_alpha=mask_from_alpha, resize_mask=resize_mask)))
            return
        pairs, warnings = pair_inputs(image, mask)
        for w in warnings:
            warn(w)
        batch = image.is_dir()
        if batch:
            out_dir = output or image.with_name(image.name + "_inpainted")
            if out_dir.exists() and not out_dir.is_dir():
                raise _bad(f"output '{out_dir}' is a file; in batch mode -o names a folder")
            targets = [out_dir / f"{p.name}.png" for p in pairs]
        else:
            targets = [output or image.with_name(f"{image.stem}_inpainted.png")]
        # Everything cheap first, before the (slow) model load: the whole output set of every item, and
        # each input's pixel count (a bomb in batch mode is reported and skipped; the run goes on).
        todo, failures, skipped = plan_batch(pairs, targets, num_candidates=num_candidates, save_all=save_all,
                                             overwrite=overwrite, batch=batch, resize_mask=resize_mask,
                                             mask_from_alpha=mask_from_alpha, on_failure=failed)
        if skipped:
            note(f"skipped {skipped} of {len(pairs)} images whose outputs already exist (--overwrite redoes them)")
        if not todo:
            if failures:  # not "all outputs exist": the folder may not even exist
                exist = f"; the other {skipped} already have their outputs in '{targets[0].parent}'" if skipped else ""
                raise _bad(f"no image is left to inpaint: {failures} of {len(pairs)} failed their checks (above){exist}")
            if not quiet:
                say(f"nothing to do: all {len(pairs)} outputs exist in '{targets[0].parent}' (--overwrite redoes them)")
            raise typer.Exit(0)

        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            inpainter = Inpainter.from_pretrained(
                model or DEFAULT_MODEL, device=device, dtype=dtype, reward_model=reward_model, offline=offline,
                select=select, offload=offload, vae_tiling=vae_tiling, steps=steps, scheduler=scheduler,
            )
        call = dict(
            prompt=prompt, negative_prompt=negative_prompt, num_candidates=num_candidates, seed=seed, steps=steps,
            guidance_scale=guidance, mask_dilate=mask_dilate, mask_blur=mask_blur, crop_margin=crop_margin,
            invert_mask=invert_mask, mask_from_alpha=mask_from_alpha, resize_mask=resize_mask,
        )
        with progress(quiet) as bar:
            files_task = bar.add_task("images", total=len(todo)) if batch else None
            steps_task = bar.add_task("denoising", total=None)
            for pair, target in todo:
                bar.reset(steps_task, description=f"{pair.name}")
                try:
                    result = inpainter(
                        pair.image, pair.mask, progress=lambda i, n: bar.update(steps_task, completed=i, total=n), **call
                    )
                    written = result.save(target, overwrite=overwrite, save_all=save_all)
                    line = f"{pair.image} -> {written[0]} (seed {result.seed}"
                    if result.scores is not None:
                        line += f", score {result.scores[result.best_index]:.4f}"
                    if not quiet:
                        say(line + ")")
                except Exception as exc:  # noqa: BLE001 - batch mode reports and goes on
                    if not batch:
                        raise
                    failures += 1
                    failed(pair.image, exc)
                if files_task is not None:
                    bar.advance(files_task)
        if failures:
            say_error(f"{failures} of {len(pairs)} images failed", prefix="")
            raise typer.Exit(EXIT_FAILED)


def _run_manifest(manifest: Path, output: Path, quiet: bool, device: str, kw: dict) -> None:
    from prefpaint_sdk import run_inpaint_job

    _jobs.run("images", quiet, lambda **more: run_inpaint_job(manifest, output, device=device, **kw, **more),
              cpu=device == "cpu")


def _bad(msg: str):
    from prefpaint_sdk import InvalidInputError

    return InvalidInputError(msg)
