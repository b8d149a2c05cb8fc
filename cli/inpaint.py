"""``prefpaint inpaint IMAGE MASK``: one image, or a folder of them, with the aligned model."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from . import _jobs
from ._common import console, handle_errors, progress, say, setup, warn
from ._options import COUNT, MODEL_NAME, NON_NEGATIVE, SEED, max_pixels_option, offline_option, requires

_HELP_MODEL = ("Hub id, alias (prefpaint, base, sdxl-inpaint, flux-fill, qwen-image, qwen-image-edit, flux2-klein, z-image) or local "
               "diffusers folder of any family (SD, SDXL, FLUX Fill, Qwen-Image, FLUX.2 klein, Z-Image). "
               "Default: kd5678/prefpaint-v1.0.")


@requires(reward_weights="reward", reward_norm="reward")
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
    # best-of-N by a reward stack (issue 22)
    reward: list[str] = typer.Option([], "--reward", metavar="SPEC", help="Pick among the -n candidates by a reward stack: repeat NAME or NAME=SOURCE (prefpaint[=RM], clip=FOLDER, remote=http://HOST:PORT, seam, outside-change, brightness). --reward-model RM joins it as prefpaint=RM. Every reward's scores go into the sidecar JSON."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="One weight per reward of the stack, e.g. 1,0.5 (default 1 each)."),
    reward_norm: str = typer.Option("gdpo", "--reward-norm", help="How several rewards rank the candidates: gdpo (normalise each over the N, weighted sum), sum (raw weighted sum) or rank (win-rates)."),
    select: str = typer.Option("reward", help="Pick by 'reward' or trust-aware 'lcb' (score - c*bound; in a stack, for the rewards that have a bound)."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    offload: str = typer.Option("none", help="CPU offload for models larger than the GPU: none, model (each model moves to the GPU while it runs) or sequential (layer by layer: least memory, slowest)."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="Encode and decode in tiles (large images on small GPUs)."),
    scheduler: str = typer.Option("auto", "--scheduler", help="native (the model's shipped scheduler and its pipeline's defaults, as diffusers), ddim (the alignment sampler, η 1; SD/SDXL) or auto (ddim for PrefPaint and models aligned with DDIM, native for base models)."),
    mask_dilate: int = typer.Option(0, "--mask-dilate", callback=NON_NEGATIVE, help="Grow the hole by this many pixels."),
    mask_blur: int = typer.Option(8, "--mask-blur", callback=NON_NEGATIVE, help="Feathered seam width in pixels outside the hole."),
    crop_margin: int = typer.Option(128, "--crop-margin", help="Context pixels around the hole; negative = no cropping (whole image)."),
    invert_mask: bool = typer.Option(False, "--invert-mask", help="Black means fill."),
    mask_from_alpha: bool = typer.Option(False, "--mask-from-alpha", help="Fill where the mask image is transparent."),
    resize_mask: bool = typer.Option(False, "--resize-mask", help="Resize a mask whose size differs from the image's."),
    offline: Optional[bool] = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs. Without it, a folder or --manifest run skips the items it finished before."),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Inpaint IMAGE where MASK is white, with the preference-aligned PrefPaint model (or any SD, SDXL or FLUX Fill
    inpainting model given with --model), or every row of --manifest."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk import DEFAULT_MODEL, Inpainter
        from prefpaint_sdk.batch import plan_item
        from prefpaint_sdk.utils import pair_inputs

        Inpainter.validate(offload=offload, select=select, scheduler=scheduler, num_candidates=num_candidates, seed=seed,
                           steps=steps, guidance_scale=guidance, mask_dilate=mask_dilate, mask_blur=mask_blur,
                           crop_margin=crop_margin)
        if select != "reward" and not reward_model and not reward:
            raise _bad("--select has no effect without --reward-model or --reward; add one or drop --select")
        stack = None
        if reward:  # every reward checked (names, weights, files, servers) before any image or model is read
            from prefpaint_sdk.reward.choice import check_stack

            specs = ([f"prefpaint={reward_model}"] if reward_model else []) + list(reward)
            stack = check_stack(specs, reward_weights, reward_norm, offline=offline)
        job = dict(model=model, save_all=save_all, overwrite=overwrite, dtype=dtype, reward_model=reward_model,
                   select=select, offline=offline, max_pixels=max_pixels, defaults=dict(
                       prompt=prompt, num_candidates=num_candidates, negative_prompt=negative_prompt, steps=steps,
                       guidance_scale=guidance, seed=seed, mask_dilate=mask_dilate, mask_blur=mask_blur,
                       crop_margin=crop_margin, invert_mask=invert_mask, mask_from_alpha=mask_from_alpha,
                       resize_mask=resize_mask),
                   inpainter_kw=dict(offload=offload, vae_tiling=vae_tiling, scheduler=scheduler))
        if stack:  # the stack replaces --reward-model (which joined it as prefpaint=RM); only then is it recorded
            job["reward_model"] = None
            job["inpainter_kw"].update(reward=[s.name if s.source is None else f"{s.name}={s.source}" for s in stack[0]],
                                       reward_weights=stack[1], reward_norm=reward_norm)
        if _jobs.check_manifest_mode(manifest, image, mask, output):
            _run_job(manifest, output, quiet, device, job, "items")
            return
        if image.is_dir():  # a folder batch is the manifest of its images, ids their stems
            from prefpaint_sdk.jobs import folder_job

            items, warnings = folder_job(image, mask)
            for w in warnings:
                warn(w)
            _run_job(items, output or image.with_name(image.name + "_inpainted"), quiet, device, job, "images")
            return
        pairs, _ = pair_inputs(image, mask)
        target = output or image.with_name(f"{image.stem}_inpainted.png")
        # Everything cheap first, before the (slow) model load: the whole output set and the inputs, decoded.
        plan_item(pairs[0], target, num_candidates=num_candidates, save_all=save_all, overwrite=overwrite,
                  resize_mask=resize_mask, mask_from_alpha=mask_from_alpha)
        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            inpainter = Inpainter.from_pretrained(
                model or DEFAULT_MODEL, device=device, dtype=dtype, reward_model=job["reward_model"], offline=offline,
                select=select, steps=steps, **job["inpainter_kw"],
            )
        with progress(quiet) as bar:
            steps_task = bar.add_task(f"{pairs[0].name}", total=None)
            result = inpainter(pairs[0].image, pairs[0].mask, **job["defaults"],
                               progress=lambda i, n: bar.update(steps_task, completed=i, total=n))
        written = result.save(target, overwrite=overwrite, save_all=save_all)
        line = f"{image} -> {written[0]} (seed {result.seed}"
        if result.rewards and len(result.rewards) > 1:
            line += ", " + ", ".join(f"{k} {_num(v['scores'][result.best_index])}" for k, v in result.rewards.items())
        elif result.scores is not None:
            line += f", score {_num(result.scores[result.best_index])}"
        if not quiet:
            say(line + ")")


def _run_job(manifest, output: Path, quiet: bool, device: str, kw: dict, noun: str) -> None:
    from prefpaint_sdk import run_inpaint_job

    _jobs.run("images", quiet, lambda **more: run_inpaint_job(manifest, output, device=device, **kw, **more),
              cpu=device == "cpu", noun=noun)


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _bad(msg: str):
    from prefpaint_sdk import InvalidInputError

    return InvalidInputError(msg)
