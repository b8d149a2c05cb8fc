"""``prefpaint eval``: the WinRate protocol on a data folder, with a resumable cache and a visual report.

Launch the same command line under ``torchrun --nproc_per_node N`` or ``accelerate launch`` to share the
cases among N processes; rank 0 shows the one progress bar and the report, the other ranks stay quiet.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import EXIT_FAILED, failed, handle_errors, progress, say, say_error, setup
from ._jobs import job_context, quiet_rank
from ._options import COUNT, MODEL_NAME, NON_NEGATIVE, SEED, max_pixels_option, offline_option

_MASKS = "auto, given, warp, outpaint, outpaint-square, outpaint-strip, strokes or random"


def eval_cmd(
    data: Path = typer.Option(..., "--data", help="Data folder: images/ (+ masks/, targets/, depth/ paired by stem) or manifest.jsonl."),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder; running the same command again resumes from its cache."),
    model: Optional[str] = typer.Option(None, "--model", callback=MODEL_NAME, help="Model A: hub id, alias or diffusers folder. Default: kd5678/prefpaint-v1.0."),
    baseline: Optional[str] = typer.Option(None, "--baseline", callback=MODEL_NAME, help="Model B, one sample per case. Default: the base SD-inpainting model."),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", callback=MODEL_NAME, help="Judge: hub id, folder or official .pt. Default: kd5678/prefpaintReward."),
    # the reward stack as judge (issue 22)
    reward: Optional[List[str]] = typer.Option(None, "--reward", metavar="SPEC", help="Judge with a reward stack: repeat NAME or NAME=SOURCE (prefpaint[=RM], clip=FOLDER, remote=http://HOST:PORT, seam, outside-change, brightness); --reward-model RM joins it as prefpaint=RM. A sample's score is the weighted sum of the rewards' raw scores; every reward gets its own column."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="One weight per reward of the stack, e.g. 1,0.5 (default 1 each)."),
    samples: Optional[List[int]] = typer.Option(None, "--samples", callback=COUNT, help="Best-of-S to report; repeat it (--samples 1 --samples 3). Default: 1, 3, 10."),
    masks: str = typer.Option("auto", "--masks", help=f"Masks: {_MASKS}. auto = given masks, generated 'random' ones where missing."),
    steps: Optional[int] = typer.Option(None, "--steps", callback=COUNT, help="Denoising steps for both models. Default: each model family's (SD 50, SDXL 30, FLUX Fill 50, ...)."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Seed of the run; each case's seeds derive from it and the case name."),
    prompt: str = typer.Option("", "--prompt", help="Text prompt for both models (PrefPaint uses none)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance scale for both models. Default: each model family's (SD 7.5, SDXL 8, FLUX Fill 30), so models of different families compare at their own settings."),
    ground_truth: str = typer.Option("auto", "--gt", help="Ground truth for masked PSNR/SSIM: auto (targets/, or the input where masks are generated), input, none."),
    independent_seeds: bool = typer.Option(False, "--independent-seeds", help="Draw the baseline's seed independently instead of sharing sample 0's."),
    ci: str = typer.Option("wilson", "--ci", help="Confidence interval: wilson or bootstrap."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the interval."),
    tie_tolerance: float = typer.Option(0.0, "--tie-tolerance", callback=NON_NEGATIVE, help="Reward differences within this are ties (half a win)."),
    embed_images: bool = typer.Option(False, "--embed-images", help="Embed thumbnails in report.html (one portable file)."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("auto", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    offline: Optional[bool] = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard a cached evaluation made with other settings."),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Compare MODEL with BASELINE: best-of-S WinRate judged by the reward model, with a visual report."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk import BASE_MODEL, DEFAULT_MODEL
        from prefpaint_sdk.evaluation import evaluate
        from prefpaint_sdk.jobs import run_eval_job

        judge = (([f"prefpaint={reward_model}"] if reward_model else []) + list(reward)) if reward else reward_model
        inpaint_kwargs = {} if guidance is None else dict(guidance_scale=guidance)
        samples = tuple(samples or (1, 3, 10))
        evaluate.validate(data, samples, out_dir=output, masks=masks, steps=steps, ground_truth=ground_truth,
                          tie_tolerance=tie_tolerance, ci=ci, confidence=confidence, reward_model=judge,
                          reward_weights=reward_weights, inpaint_kwargs=inpaint_kwargs)

        with progress(quiet_rank(quiet)) as bar, job_context(cpu=device == "cpu") as ctx:
            task = bar.add_task("cases", total=None)

            def on_case(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=name or "cases")

            report = run_eval_job(
                model or DEFAULT_MODEL, baseline or BASE_MODEL, judge, data, reward_weights=reward_weights, samples=samples,
                out_dir=output, masks=masks, seed=seed, steps=steps, prompt=prompt, ground_truth=ground_truth,
                common_seeds=not independent_seeds, tie_tolerance=tie_tolerance, ci=ci, confidence=confidence,
                inpaint_kwargs=inpaint_kwargs, device=device, dtype=dtype, offline=offline,
                overwrite=overwrite, progress=on_case, ctx=ctx,
            )
        if not ctx.is_main:
            return
        if embed_images:
            report.to_html(output / "report.html", embed=True)
        typer.echo(report.summary())
        if not quiet:
            say(f"wrote {output / 'results.json'}, results.csv, report.html and contact_sheet.png")
        if report.failures:
            for f in report.failures:
                failed(f["name"], str(f["error"]))
            say_error(f"{len(report.failures)} of {len(report.failures) + len(report.cases)} cases failed", prefix="")
            raise typer.Exit(EXIT_FAILED)
