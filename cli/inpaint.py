"""``prefpaint inpaint IMAGE MASK``: one image, or a folder of them, with the aligned model."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from ._common import EXIT_FAILED, console, handle_errors, progress, setup

_HELP_MODEL = "Hub id, alias (prefpaint, base) or local diffusers folder. Default: kd5678/prefpaint-v1.0."


def inpaint(
    image: Path = typer.Argument(..., help="Image file, or a folder of images (batch mode)."),
    mask: Path = typer.Argument(..., help="Mask file (white = fill), or a folder of masks paired by file stem."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file (single) or folder (batch). Default: <image>_inpainted.png / <folder>_inpainted/."),
    prompt: str = typer.Option("", help="Text prompt. PrefPaint is used with an empty prompt."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Negative prompt."),
    steps: int = typer.Option(50, help="DDIM steps."),
    guidance: float = typer.Option(7.5, help="Classifier-free guidance scale (no effect when prompt equals negative prompt)."),
    seed: Optional[int] = typer.Option(None, help="Base seed; candidate k uses seed+k. Random (and recorded) when omitted."),
    num_candidates: int = typer.Option(1, "-n", "--num-candidates", help="Candidates per image; the best by reward is kept when a reward model is given."),
    save_all: bool = typer.Option(False, "--save-all", help="Also write every candidate as <out>_cand<k>.png."),
    model: Optional[str] = typer.Option(None, help=_HELP_MODEL),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", help="Reward model (hub id or folder) to score and pick candidates."),
    select: str = typer.Option("reward", help="Pick by 'reward' or trust-aware 'lcb' (score - c*bound)."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    mask_dilate: int = typer.Option(0, "--mask-dilate", help="Grow the hole by this many pixels."),
    mask_blur: int = typer.Option(8, "--mask-blur", help="Feathered seam width in pixels outside the hole."),
    crop_margin: int = typer.Option(128, "--crop-margin", help="Context pixels around the hole; negative = no cropping (whole image)."),
    invert_mask: bool = typer.Option(False, "--invert-mask", help="Black means fill."),
    mask_from_alpha: bool = typer.Option(False, "--mask-from-alpha", help="Fill where the mask image is transparent."),
    resize_mask: bool = typer.Option(False, "--resize-mask", help="Resize a mask whose size differs from the image's."),
    offline: bool = typer.Option(False, "--offline", help="Never touch the network (also HF_HUB_OFFLINE=1)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Inpaint IMAGE where MASK is white, with the preference-aligned PrefPaint model."""
    setup(quiet=quiet, debug=debug, offline=offline)
    with handle_errors(debug):
        from prefpaint_sdk import DEFAULT_MODEL, Inpainter, check_output_path, pair_inputs, sidecar_path

        pairs, warnings = pair_inputs(image, mask)
        for w in warnings:
            console.print(f"[yellow]warning:[/yellow] {w}")
        batch = image.is_dir()
        if batch:
            out_dir = output or image.with_name(image.name + "_inpainted")
            if out_dir.exists() and not out_dir.is_dir():
                raise _bad(f"output '{out_dir}' is a file; in batch mode -o names a folder")
            targets = [out_dir / f"{p.name}.png" for p in pairs]
        else:
            targets = [output or image.with_name(f"{image.stem}_inpainted.png")]
            # Refuse before the (slow) model load, not after.
            check_output_path(targets[0], overwrite)
            check_output_path(sidecar_path(targets[0]), overwrite)

        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            inpainter = Inpainter.from_pretrained(
                model or DEFAULT_MODEL, device=device, dtype=dtype, reward_model=reward_model, offline=offline,
                select=select,
            )
        call = dict(
            prompt=prompt, negative_prompt=negative_prompt, num_candidates=num_candidates, seed=seed, steps=steps,
            guidance_scale=guidance, mask_dilate=mask_dilate, mask_blur=mask_blur, crop_margin=crop_margin,
            invert_mask=invert_mask, mask_from_alpha=mask_from_alpha, resize_mask=resize_mask,
        )
        failures = 0
        with progress(quiet) as bar:
            files_task = bar.add_task("images", total=len(pairs)) if batch else None
            steps_task = bar.add_task("denoising", total=None)
            for pair, target in zip(pairs, targets):
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
                        console.print(line + ")")
                except Exception as exc:  # noqa: BLE001 - batch mode reports and goes on
                    if not batch:
                        raise
                    failures += 1
                    from ._common import error_line

                    console.print(f"[red]failed:[/red] {pair.image}: {error_line(exc)}")
                if files_task is not None:
                    bar.advance(files_task)
        if failures:
            console.print(f"[red]{failures} of {len(pairs)} images failed[/red]")
            raise typer.Exit(EXIT_FAILED)


def _bad(msg: str):
    from prefpaint_sdk import InvalidInputError

    return InvalidInputError(msg)
