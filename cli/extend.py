"""``prefpaint extend IMAGE -o OUT``: widen the field of view step by step (iterative outpainting).

Parse, call :func:`prefpaint_apps.outpaint.extend`, report. The SDK, the app and torch are imported
inside the command body; ``--dry-run`` plans without importing torch or loading a model.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from ._common import console, handle_errors, progress, say, setup
from ._options import COUNT, MODEL_NAME, POSITIVE, SEED, max_pixels_option, offline_option, requires

_HELP_MODEL = "Hub id, alias (prefpaint, base) or local diffusers folder. Default: kd5678/prefpaint-v1.0."


@requires(seam_strength="seam_pass")
def extend(
    image: Path = typer.Argument(..., help="Image to extend."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output image (a .json sidecar is written beside it). Needed unless --dry-run."),
    ratio: float | None = typer.Option(None, "--ratio", callback=POSITIVE, help="Scale both sides: the canvas is R·W × R·H. Default 2 when no other size is given."),
    ratio_x: float | None = typer.Option(None, "--ratio-x", callback=POSITIVE, help="Scale the width only (with --ratio-y for the height)."),
    ratio_y: float | None = typer.Option(None, "--ratio-y", callback=POSITIVE, help="Scale the height only."),
    left: int | None = typer.Option(None, "--left", help="Pixels to add on the left (instead of ratios)."),
    right: int | None = typer.Option(None, "--right", help="Pixels to add on the right."),
    top: int | None = typer.Option(None, "--top", help="Pixels to add on top."),
    bottom: int | None = typer.Option(None, "--bottom", help="Pixels to add at the bottom."),
    anchor: str = typer.Option("center", "--anchor", help="Where the original sits (ratio forms): center, left, right, top, bottom."),
    step_frac: float = typer.Option(0.3, "--step-frac", help="Most new area one step adds, as a share of its window, in (0, 0.5]."),
    window: int | None = typer.Option(None, "--window", callback=COUNT, help="Largest window side in px. Default: the model's working size (its config files: 512 for SD, 1024 for SDXL, FLUX and Qwen-Image)."),
    overlap: int | None = typer.Option(None, "--overlap", help="Least overlap between neighbouring windows, px. Default: window/4."),
    feather: int | None = typer.Option(None, "--feather", help="Width of the blended seam on the known side, px. Default: window/32 (16 at 512)."),
    prefill: str = typer.Option("replicate", "--prefill", help="How new pixels start: replicate, blur or grey (matters with --strength < 1)."),
    seam_pass: bool = typer.Option(False, "--seam-pass/--no-seam-pass", help="Re-render a thin band across each seam at low strength (one more model call per step)."),
    seam_strength: float | None = typer.Option(None, "--seam-strength", help="Denoising strength of the seam pass, in (0, 1). Default: 0.3. Needs --seam-pass.", show_default=False),
    strength: float = typer.Option(1.0, "--strength", help="Denoising strength of each step; below 1 the prefill shapes the result."),
    num_candidates: int = typer.Option(1, "-n", "--num-candidates", callback=COUNT, help="Candidates per step; the best by reward is kept when --reward-model is given."),
    prompt: str = typer.Option("", "--prompt", help="Text prompt. PrefPaint is used with an empty prompt."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Negative prompt."),
    seed: int | None = typer.Option(None, "--seed", callback=SEED, help="Base seed; each step's seed derives from it. Random (and recorded) when omitted."),
    steps: int | None = typer.Option(None, "--steps", callback=COUNT, help="Sampling steps per model call. Default: the model family's (SD 50, SDXL 30, FLUX Fill 50)."),
    guidance: float | None = typer.Option(None, "--guidance", help="Guidance scale. Default: the model family's (SD 7.5, SDXL 8, FLUX Fill 30)."),
    model: str | None = typer.Option(None, "--model", callback=MODEL_NAME, help=_HELP_MODEL),
    reward_model: str | None = typer.Option(None, "--reward-model", callback=MODEL_NAME, help="Reward model (hub id or folder) to score and pick candidates."),
    device: str = typer.Option("auto", "--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    max_size: int = typer.Option(16384, "--max-size", callback=COUNT, help="Largest output side accepted, px."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the step plan (boxes, new area per step) and exit; loads no model."),
    offline: bool | None = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Extend IMAGE outward step by step; the original pixels stay as they are."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_apps.outpaint import extend as run_extend
        from prefpaint_apps.outpaint import prepare_extension, validate

        from prefpaint_sdk import DEFAULT_MODEL

        size = dict(ratio=ratio, ratio_x=ratio_x, ratio_y=ratio_y, left=left, right=right, top=top, bottom=bottom,
                    anchor=anchor, max_size=max_size)
        stepping = dict(step_frac=step_frac, overlap=overlap)
        options = dict(feather=feather, prefill=prefill, seam_pass=seam_pass, seam_strength=seam_strength,
                       strength=strength, num_candidates=num_candidates, steps=steps, seed=seed)
        validate(output=output, overwrite=overwrite, save=True, dry_run=dry_run, window=window, **options)
        img, plan, window = prepare_extension(image, model=model, offline=offline, device=device, dry_run=dry_run,
                                              window=window, size=size, stepping=stepping, **options)
        if dry_run:
            _print_plan(plan)
            return

        from prefpaint_sdk import Inpainter

        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            inpainter = Inpainter.from_pretrained(model or DEFAULT_MODEL, device=device, dtype=dtype,
                                                  reward_model=reward_model, offline=offline, steps=steps)
        with progress(quiet) as bar:
            task = bar.add_task("extending", total=None)
            result = run_extend(
                inpainter, img, **size, **stepping, window=window, feather=feather, prefill=prefill,
                seam_pass=seam_pass, seam_strength=seam_strength, strength=strength, num_candidates=num_candidates,
                prompt=prompt, negative_prompt=negative_prompt, seed=seed, steps=steps, guidance_scale=guidance,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        written, sidecar = result.save(output, overwrite=overwrite, extra={"input": str(image)})
        if not quiet:
            w, h = result.image.size
            say(f"{image} -> {written} ({w}x{h}, {result.plan.num_steps} steps, "
                f"{result.model_calls} model calls, seed {result.seed}); plan and seeds in {sidecar}")


def _print_plan(plan) -> None:
    """The plan as a table on stdout (so it can be piped), with a one-line summary."""
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False, markup=False, soft_wrap=True)
    (w, h), (W, H) = plan.image_size, plan.canvas_size
    p = plan.padding
    out.print(f"extend {w}x{h} -> {W}x{H} (left {p.left}, top {p.top}, right {p.right}, bottom {p.bottom}); "
              f"window {plan.window}, step_frac {plan.step_frac:g}, overlap {plan.overlap}")
    table = Table("step", "side", "window x0,y0,x1,y1", "new boxes x0,y0,x1,y1", "new px", "new share")
    for s in plan.steps:
        table.add_row(str(s.index), s.side, ",".join(map(str, s.window.as_tuple())),
                      " + ".join(",".join(map(str, b.as_tuple())) for b in s.parts), str(s.new_area), f"{s.new_fraction:.3f}")
    out.print(table)
    out.print(f"{plan.num_steps} steps (model calls, without seam passes); max new share {plan.max_new_fraction:.3f}")
