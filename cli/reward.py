"""Reward-model commands: ``prefpaint score``, ``prefpaint convert-reward`` and ``prefpaint train reward``."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from . import _jobs
from ._common import console, echo_json, handle_errors, progress, say, setup, warn
from ._options import COUNT, MODEL_NAME, POSITIVE, max_pixels_option, offline_option

_HELP_RM = "Reward model: hub id, folder (save_pretrained) or official .pt. Default: kd5678/prefpaintReward."


def score(
    image: Path | None = typer.Argument(None, help="Inpainted image, or a folder of them (folder mode writes a CSV).", show_default=False),
    mask: Path | None = typer.Argument(None, help="Its mask (white = hole), or a folder of masks paired by file stem, or one mask for all.", show_default=False),
    manifest: Path | None = typer.Option(None, "--manifest", help="A jobs.jsonl (rows: id, image, mask): one record per row and OUT/results.jsonl (-o OUT). Runs on N processes under torchrun or accelerate launch; a rerun finishes what is left."),
    reward_model: str | None = typer.Option(None, "--reward-model", callback=MODEL_NAME, help=_HELP_RM),
    # the reward stack (issue 22): any reward by spec, one score per reward
    reward: list[str] = typer.Option([], "--reward", metavar="SPEC", help="A reward by spec NAME or NAME=SOURCE: prefpaint[=RM], clip=FOLDER_OR_HUB_ID, remote=http://HOST:PORT, seam, outside-change, brightness. Repeat it: one score per reward (--reward-model RM joins as prefpaint=RM)."),
    reward_weights: str | None = typer.Option(None, "--reward-weights", help="One weight per --reward, e.g. 1,0.5: the folder's advantage column (default 1 each)."),
    reward_norm: str = typer.Option("gdpo", "--reward-norm", help="How the folder's advantage combines the rewards: gdpo (normalise each, weighted sum, whiten), sum (raw weighted sum, normalised) or rank (win-rates)."),
    original: Path | None = typer.Option(None, "--original", help="The original image (before inpainting): outside-change compares against it."),
    prompt: str | None = typer.Option(None, "--prompt", help="The prompt the image was made for (the clip reward scores against it)."),
    masked_image: Path | None = typer.Option(None, "--masked-image", help="The masked prompt image (the input with the hole blanked); derived from IMAGE and MASK when omitted."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per image (keys image, score, bound, trust; with --reward: image, rewards {NAME: {score, bound, trust}})."),
    output: Path | None = typer.Option(None, "-o", "--output", help="CSV file in folder mode (default: <folder>_scores.csv; the job's records/ and results.jsonl go in the folder named as the CSV without its suffix); the output folder with --manifest."),
    normalize: bool = typer.Option(False, "--normalize", help="Report (s - 0.4064) / 2.3021, the release's normalised score."),
    batch_size: int = typer.Option(16, "--batch-size", callback=COUNT, help="Images per backbone pass."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    v_inverse: Path | None = typer.Option(None, "--v-inverse", help="Use this official V_inverse.pt as the trust matrix."),
    offline: bool | None = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo every image (a folder, or --manifest) and replace files that the job did not write (a CSV included). Without it, a rerun skips the images it scored before."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Score inpainted IMAGE (where MASK is white) with the PrefPaint reward (score, error bound, trust), or with every --reward."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk.reward import validate_score

        mode = "manifest" if _jobs.check_manifest_mode(manifest, image, mask, output) else \
            "folder" if image.is_dir() else "image"
        validate_score(image, mask, mode=mode, reward_model=reward_model, reward=reward, reward_weights=reward_weights,
                       reward_norm=reward_norm, original=original, masked_image=masked_image, prompt=prompt,
                       normalize=normalize, v_inverse=v_inverse, output=output, overwrite=overwrite,
                       batch_size=batch_size)
        job = dict(reward_model=reward_model, reward=reward, reward_weights=reward_weights, reward_norm=reward_norm,
                   prompt=prompt, normalize=normalize, overwrite=overwrite, device=device, offline=offline,
                   v_inverse=v_inverse, max_pixels=max_pixels, batch_size=batch_size)
        if mode == "manifest":
            _run_job(manifest, output, None, job, quiet, json_out, bool(reward), "items")
            return
        if mode == "folder":  # a folder score is the job of its images (ids their stems), its CSV the summary
            from prefpaint_sdk.jobs import folder_job
            from prefpaint_sdk.reward import score_folder_outputs

            items, warnings = folder_job(image, mask)
            for w in warnings:
                warn(w)
            csv_path, out = score_folder_outputs(image, output)
            _run_job(items, out, csv_path, job, quiet, json_out, bool(reward), "images")
            return
        if reward:
            from prefpaint_sdk.reward.scoring import score_files, score_specs
            from prefpaint_sdk.reward.specs import load_stack

            with console.status("loading rewards", spinner="dots") if not quiet else nullcontext():
                stack = load_stack(score_specs(reward_model, reward), reward_weights, reward_norm, device=device,
                                   offline=offline, batch_size=batch_size)
            rec = score_files(stack, image, mask, original=original, masked_image=masked_image, prompt=prompt,
                              max_pixels=max_pixels)
            _report_stack(dict(image=str(image), rewards=rec), json_out)
            return
        rm = _load(reward_model, device, offline, v_inverse, quiet)
        kw = {"masked_images": masked_image} if masked_image is not None else {"masks": mask}
        rec = rm.score(image, normalize=normalize, **kw).to_records()[0]
        _report(dict(image=str(image), **rec), json_out)


def _run_job(manifest, out: Path, csv_path: Path | None, job: dict, quiet: bool, json_out: bool, stack: bool,
             noun: str) -> None:
    """The score job (a manifest's, or a folder's with its CSV), its report; with --json one object per scored
    image at the end (a stack's with its advantage over the folder)."""
    from prefpaint_sdk import run_score_job

    def done(summary) -> None:
        if json_out:
            for row in summary.rows or []:
                keep = ("image", "mask", "rewards", "advantage") if stack else ("image", "mask", "score", "bound", "trust")
                _report({k: row.get(k) for k in keep if k in row}, True)
        if csv_path is not None and not quiet:
            say(f"wrote {len(summary.rows or [])} scores to {csv_path}")

    _jobs.run("scoring", quiet or json_out, lambda **more: run_score_job(manifest, out, csv=csv_path, **job, **more),
              cpu=job["device"] == "cpu", noun=noun, done=done)


def _report_stack(rec: dict, as_json: bool) -> None:
    if as_json:
        echo_json(rec)  # strict JSON: a NaN score is an error, never printed
        return
    parts = []
    for label, r in rec["rewards"].items():
        if r["score"] is None:  # NaN: nothing to score (an empty hole, no boundary)
            parts.append(f"{label} n/a")
            continue
        extra = f" (bound {r['bound']:.4f}, trust {r['trust']:.4f})" if r.get("bound") is not None and r.get("trust") is not None else ""
        parts.append(f"{label} {r['score']:.4f}{extra}")
    if rec.get("advantage") is not None:
        parts.append(f"advantage {rec['advantage']:.4f}")
    typer.echo(f"{rec['image']}: " + ", ".join(parts))


def _load(reward_model, device, offline, v_inverse, quiet):
    from prefpaint_sdk.reward import RewardModel

    with console.status("loading reward model", spinner="dots") if not quiet else nullcontext():
        return RewardModel.from_pretrained(reward_model, device=device, offline=offline, v_inverse=v_inverse)


def _report(rec: dict, as_json: bool) -> None:
    if as_json:
        echo_json(rec)  # strict JSON: a NaN score is an error, never printed
        return
    parts = [f"score {rec['score']:.4f}"]
    if rec.get("bound") is not None:
        parts += [f"bound {rec['bound']:.4f}", f"trust {rec['trust']:.4f}"]
    else:
        parts.append("bound n/a (no trust matrix)")
    typer.echo(f"{rec['image']}: " + ", ".join(parts))


def convert_reward(
    checkpoint: Path = typer.Argument(..., help="The official prefpaintReward.pt (read with weights_only=True)."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write the converted reward model to."),
    v_inverse: Path | None = typer.Option(None, "--v-inverse", help="The official V_inverse.pt trust matrix, stored with the model."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Convert the official PrefPaint reward checkpoint into a safetensors RewardModel folder."""
    setup(quiet=quiet, debug=debug)
    with handle_errors(debug):
        from prefpaint_sdk.reward.convert import convert_official_checkpoint

        convert_official_checkpoint.validate(checkpoint, output, v_inverse=v_inverse, overwrite=overwrite)
        model = convert_official_checkpoint(checkpoint, output, v_inverse=v_inverse, overwrite=overwrite)
        if not quiet:
            vc = model.vision_config
            trust = "with trust matrix" if model.trust is not None else "no trust matrix (pass --v-inverse to add one)"
            say(f"wrote {output}: CLIP ViT {vc['num_hidden_layers']} layers x {vc['hidden_size']}, "
                f"patch {vc['patch_size']}, {vc['image_size']} px; {trust}")


def train_reward(
    data: Path = typer.Option(..., "--data", help="Dataset: the official layout (labels .json, inpaint/, masks_color/, masks/) or a manifest.jsonl/.csv."),
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoints/, logs/, model/, metrics.json."),
    config: Path | None = typer.Option(None, "--config", help="TOML file overriding the preset (flat keys or a [reward] table)."),
    preset: str = typer.Option("paper", "--preset", help="paper, bradley-terry or cpu-smoke."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    epochs: int | None = typer.Option(None, "--epochs", callback=COUNT, help="Override the number of epochs."),
    lr: float | None = typer.Option(None, "--lr", callback=POSITIVE, help="Override the learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", callback=COUNT, help="Override the per-process batch size."),
    loss: str | None = typer.Option(None, "--loss", help="regression or bradley-terry."),
    init_reward: str | None = typer.Option(None, "--init-reward", callback=MODEL_NAME, help="Fine-tune this reward model (folder, hub id or .pt)."),
    offline: bool | None = offline_option(),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Train a PrefPaint reward model (regression or Bradley–Terry) with accelerate; fits the trust matrix at the end."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk.reward.train import train_reward as run

        cfg = run.validate(data, out, config, preset=preset, overrides={
            "epochs": epochs, "lr": lr, "batch_size": batch_size, "loss": loss, "init_reward": init_reward})
        with progress(quiet) as bar:
            tasks: dict[str, int] = {}

            def report(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task("epochs" if phase == "epoch" else "steps", total=total)
                bar.update(tasks[phase], completed=done, total=total)

            result = run(data, out, cfg, resume=resume, progress=report)
        if result.model_dir is None:
            say(f"stopped after epoch {result.epochs_done}; continue with --resume")
            return
        if not quiet and result.test:
            say("test: " + ", ".join(f"{k} {v:.4g}" for k, v in result.test.items()))
        say(f"reward model written to {result.model_dir}")
