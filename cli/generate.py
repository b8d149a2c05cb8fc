"""``prefpaint generate-dataset IMAGES -o DATA``: the paper's data recipe (K inpaintings per image and mask kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _jobs
from ._common import handle_errors, say, setup
from ._options import COUNT, MODEL_NAME, SEED, max_pixels_option, offline_option


def generate_dataset(
    images: Path = typer.Argument(..., help="Folder of prompt images."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset folder (official layout: inpaint/, masks/, masks_color/, plus records/ and results.jsonl)."),
    per_image: int = typer.Option(3, "--per-image", callback=COUNT, help="Inpaintings per (image, mask) (the paper: 3)."),
    masks: str = typer.Option("warp,outpaint-square,outpaint-strip", "--masks", help="Comma-separated mask kinds, one prompt per image and kind: warp (tilted-plane depth proxy), outpaint-square, outpaint-strip, strokes, outpaint, random."),
    model: Optional[str] = typer.Option(None, callback=MODEL_NAME, help="Inpainting model (hub id, alias or folder). Default: kd5678/prefpaint-v1.0."),
    seed: int = typer.Option(0, callback=SEED, help="Run seed: fixes every mask and every sample seed (recorded per prompt)."),
    steps: int = typer.Option(50, callback=COUNT, help="DDIM steps."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    offline: Optional[bool] = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every prompt (without it, a rerun finishes what is left)."),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Inpaint every image of IMAGES under generated masks, PER_IMAGE times each, into a dataset to rate
    ('prefpaint rate DATA') and train a reward on. Runs on N processes under torchrun or accelerate launch."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk import run_generate_dataset

        kinds = run_generate_dataset.validate(images, per_image=per_image, masks=masks, steps=steps)
        _jobs.run("prompts", quiet, lambda **more: run_generate_dataset(
            images, output, per_image=per_image, masks=kinds, model=model, seed=seed, steps=steps,
            overwrite=overwrite, device=device, dtype=dtype, offline=offline, max_pixels=max_pixels, **more),
            cpu=device == "cpu")
        if not quiet:
            say(f"next: prefpaint rate {output}  (then --import the raters' exports, then train reward --data {output})")
