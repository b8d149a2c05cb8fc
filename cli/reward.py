"""Reward-model commands: ``prefpaint score``, ``prefpaint convert-reward`` and ``prefpaint train reward``."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from . import _jobs
from ._common import (
    COUNT,
    EXIT_FAILED,
    MODEL_NAME,
    POSITIVE,
    console,
    echo_json,
    failed,
    handle_errors,
    max_pixels_option,
    offline_option,
    progress,
    say,
    say_error,
    setup,
    warn,
)

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
    output: Path | None = typer.Option(None, "-o", "--output", help="CSV file in folder mode (default: <folder>_scores.csv); the output folder with --manifest."),
    normalize: bool = typer.Option(False, "--normalize", help="Report (s - 0.4064) / 2.3021, the release's normalised score."),
    batch_size: int = typer.Option(16, "--batch-size", callback=COUNT, help="Images per backbone pass."),
    device: str = typer.Option("auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    v_inverse: Path | None = typer.Option(None, "--v-inverse", help="Use this official V_inverse.pt as the trust matrix."),
    offline: bool | None = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CSV; with --manifest, redo every item and replace files that the job did not write."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Score inpainted IMAGE (where MASK is white) with the PrefPaint reward (score, error bound, trust), or with every --reward."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk import InvalidInputError
        from prefpaint_sdk.imaging import check_image_file, check_masked_image_size
        from prefpaint_sdk.utils import check_output_path, pair_inputs

        if _jobs.check_manifest_mode(manifest, image, mask, output):
            if masked_image is not None:
                raise InvalidInputError("--masked-image is for one image; with --manifest each row names its mask")
            if reward:
                raise InvalidInputError("--reward is for one image or a folder; with --manifest use --reward-model")
            from prefpaint_sdk import run_score_job

            _jobs.run("scoring", quiet or json_out, lambda **more: run_score_job(
                manifest, output, reward_model=reward_model, normalize=normalize, overwrite=overwrite, device=device,
                offline=offline, v_inverse=v_inverse, max_pixels=max_pixels, **more), cpu=device == "cpu")
            return
        pairs, warnings = pair_inputs(image, mask)
        for w in warnings:
            warn(w)
        folder = image.is_dir()
        if reward:
            specs = ([f"prefpaint={reward_model}"] if reward_model else []) + list(reward)
            _score_stack(specs, image, mask, pairs, folder, reward_weights, reward_norm, original, masked_image, prompt,
                         output, overwrite, device, offline, batch_size, json_out, quiet, normalize, v_inverse, max_pixels)
            return
        for flag, value in (("--original", original), ("--prompt", prompt), ("--reward-weights", reward_weights)):
            if value is not None:
                raise InvalidInputError(f"{flag} is for a reward stack; add --reward NAME (e.g. --reward seam)")
        if folder and masked_image is not None:
            raise InvalidInputError("--masked-image is for one image; in folder mode the masked images are derived from the masks")
        for path, what in ((masked_image, "masked image"), (v_inverse, "V_inverse file")):
            if path is not None and not path.is_file():
                raise InvalidInputError(f"{what} '{path}' does not exist or is not a file; check the path")
        if not folder and output is not None:  # it would be silently ignored
            raise InvalidInputError("-o/--output names the CSV of folder mode (or the folder of --manifest); one "
                                    "image's score is printed (add --json for a JSON line)")
        csv_path = (output or image.with_name(image.name + "_scores.csv")) if folder else None
        if csv_path is not None:
            check_output_path(csv_path, overwrite)
        else:
            # One image: refuse a bomb before the model loads (folder mode reports and skips it per item).
            sizes = [check_image_file(path, decode=True)
                     for path in (image, masked_image if masked_image is not None else mask)]
            if masked_image is not None:
                check_masked_image_size(sizes[1], sizes[0])
            else:  # the mask-size rule from the headers, before the model loads
                from prefpaint_sdk.imaging import check_mask_size

                check_mask_size(sizes[1], sizes[0])
        rm = _load(reward_model, device, offline, v_inverse, quiet)
        if not folder:
            kw = {"masked_images": masked_image} if masked_image is not None else {"masks": mask}
            rec = rm.score(image, normalize=normalize, **kw).to_records()[0]
            _report(dict(image=str(image), **rec), json_out)
            return
        from prefpaint_sdk.reward.folder import score_pairs, write_scores_csv

        rows, failures = [], 0
        with progress(quiet or json_out) as bar:
            task = bar.add_task("scoring", total=len(pairs))
            for pair, rec in score_pairs(rm, pairs, normalize=normalize, batch_size=batch_size):
                if isinstance(rec, Exception):
                    failures += 1
                    failed(pair.image, rec)
                else:
                    row = dict(image=str(pair.image), mask=str(pair.mask), **rec)
                    rows.append(row)
                    if json_out:
                        _report(row, True)
                bar.advance(task)
        write_scores_csv(csv_path, rows, overwrite)
        if not quiet:
            say(f"wrote {len(rows)} scores to {csv_path}")
        if failures:
            say_error(f"{failures} of {len(pairs)} images failed", prefix="")
            raise typer.Exit(EXIT_FAILED)


def _score_stack(specs, image, mask, pairs, folder, weights, norm, original, masked_image, prompt, output, overwrite,
                 device, offline, batch_size, json_out, quiet, normalize, v_inverse, max_pixels):
    """``score --reward ...``: every check first, then the stack loads and each reward gets its own column."""
    from prefpaint_sdk import InvalidInputError
    from prefpaint_sdk.imaging import check_image_file
    from prefpaint_sdk.reward.scoring import check_stack_inputs
    from prefpaint_sdk.reward.specs import load_stack, stack_specs
    from prefpaint_sdk.utils import check_output_path

    for flag, value in (("--normalize", normalize or None), ("--v-inverse", v_inverse)):
        if value is not None:
            raise InvalidInputError(f"{flag} is for the PrefPaint-only score; drop it, or drop --reward")
    if original is not None and masked_image is not None:
        raise InvalidInputError("give one of --original and --masked-image (the masked image's outside is the original)")
    if folder and (original is not None or masked_image is not None):
        flag = "--original" if original is not None else "--masked-image"
        raise InvalidInputError(f"{flag} is for one image; in folder mode the masked images are derived from the masks")
    stack_specs(specs, weights, norm)  # names, weights and norm, before any file or model
    check_stack_inputs(specs, original=original is not None or masked_image is not None, prompt=prompt is not None,
                       folder=folder)
    for path, what in ((original, "original"), (masked_image, "masked image")):
        if path is not None and not path.is_file():
            raise InvalidInputError(f"{what} '{path}' does not exist or is not a file; check the path")
    csv_path = (output or image.with_name(image.name + "_scores.csv")) if folder else None
    if csv_path is not None:
        check_output_path(csv_path, overwrite)
    else:
        for path in (image, mask, original, masked_image):
            if path is not None:
                check_image_file(path, decode=True)
    with console.status("loading rewards", spinner="dots") if not quiet else nullcontext():
        stack = load_stack(specs, weights, norm, device=device, offline=offline, batch_size=batch_size)
    if not folder:
        from prefpaint_sdk.reward.scoring import score_files

        rec = score_files(stack, image, mask, original=original, masked_image=masked_image, prompt=prompt,
                          max_pixels=max_pixels)
        _report_stack(dict(image=str(image), rewards=rec), json_out)
        return
    from prefpaint_sdk.reward.scoring import score_folder, write_stack_csv

    rows, failures = [], 0
    with progress(quiet or json_out) as bar:
        task = bar.add_task("scoring", total=len(pairs))
        for pair, rec in score_folder(stack, pairs, prompt=prompt, max_pixels=max_pixels):
            bar.advance(task)
            if isinstance(rec, Exception):
                failures += 1
                failed(pair.image, rec)
                continue
            rows.append(dict(image=str(pair.image), mask=str(pair.mask), **rec))
            if json_out:
                _report_stack(rows[-1], True)
    write_stack_csv(csv_path, rows, stack.labels, overwrite)
    if not quiet:
        say(f"wrote {len(rows)} scores ({', '.join(stack.labels)}) to {csv_path}")
    if failures:
        say_error(f"{failures} of {len(pairs)} images failed", prefix="")
        raise typer.Exit(EXIT_FAILED)


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
