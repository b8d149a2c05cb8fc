"""``prefpaint train align``: RL alignment of an inpainting model to a reward (parse, call the SDK, report)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import handle_errors, interrupt_exit_code, progress, say, setup
from ._options import COUNT, MODEL_NAME, POSITIVE, SEED, max_pixels_option, offline_option, requires


@requires(gold_weights="gold_reward", on_hacking="gold_reward")
def train_align(
    data: Path = typer.Option(..., "--data", help="Training prompts: DIR/images/ (+ optional DIR/masks/, paired by stem) or DIR/manifest.jsonl."),
    out: Path = typer.Option(..., "--out", help="Output folder: checkpoints/, logs/ (tensorboard), log.jsonl, eval/ grids, lora/, merged/."),
    model: Optional[str] = typer.Option(None, "--model", callback=MODEL_NAME, help="Pipeline to align: hub id or diffusers folder (default: the base SD-inpainting model, prefpaint_sdk.hub.BASE_MODEL)."),
    reward_model: List[str] = typer.Option([], "--reward-model", callback=MODEL_NAME, help="Shorthand for --reward prefpaint=ID: a PrefPaint reward model (hub id or folder); repeatable. These come first in the stack, before the --reward ones."),
    reward: List[str] = typer.Option([], "--reward", help="A reward of the stack as NAME or NAME=SOURCE (repeatable): prefpaint[=RM], clip=FOLDER, remote=http://HOST:PORT, brightness, seam, outside-change."),
    reward_weights: Optional[str] = typer.Option(None, "--reward-weights", help="One weight per reward of the stack, in order (--reward-model ones first), e.g. 1,0.5 (default: 1 each)."),
    reward_norm: Optional[str] = typer.Option(None, "--reward-norm", help="How the stack becomes one advantage: gdpo (default: each reward normalised within its group, weighted sum, whitened over the batch), sum (raw weighted sum) or rank (within-group win-rates). On --resume: the run's."),
    gold_reward: List[str] = typer.Option([], "--gold-reward", callback=MODEL_NAME, help="A second, held-out 'gold' reward scored at every evaluation and watched against the training reward: any reward spec (brightness, prefpaint=RM, a reward-model folder or hub id, remote=http://HOST:PORT); repeat it for an ensemble (see --gold-weights)."),
    gold_weights: Optional[str] = typer.Option(None, "--gold-weights", help="One weight per --gold-reward, e.g. 0.5,0.5; normalised to sum(|w|) = 1 (default: equal)."),
    on_hacking: Optional[str] = typer.Option(None, "--on-hacking", help="warn or stop when the held-out training reward rises while the gold reward falls for hacking_patience (default 3) consecutive evaluations; stop exports the best weights by gold reward."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper, lora-24gb, flux-fill-lora-80gb or cpu-smoke (any family; its FLUX Fill values differ, see docs/align.md)."),
    algo: Optional[str] = typer.Option(None, "--algo", help="The algorithm (a module of prefpaint_sdk/align/algorithms): ppo (PrefPaint/DDPO) or grpo (group-relative, KL to the reference); default: the family's (ppo for SD/SDXL, grpo for FLUX), or on --resume the run's. Its settings by name with --set (e.g. --set clip_range=1e-3). FLUX's SDE: --set sde_noise=A (noise level a) --set sde_window=K (stochastic, trained steps)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file overriding the preset (flat keys or an [align] table)."),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from the newest checkpoint in --out."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Held-out prompts (same layout as --data); default: the last eval_size items of --data."),
    iterations: Optional[int] = typer.Option(None, "--iterations", callback=COUNT, help="Override the number of RL iterations."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=POSITIVE, help="Override the learning rate."),
    steps: Optional[int] = typer.Option(None, "--steps", callback=COUNT, help="Override the sampling steps per rollout (DDIM, or FLUX's flow steps)."),
    finetune: Optional[str] = typer.Option(None, "--finetune", help="lora or full."),
    seed: Optional[int] = typer.Option(None, "--seed", callback=SEED, help="Override the seed."),
    set_: List[str] = typer.Option([], "--set", help="Any setting as NAME=VALUE (repeatable), e.g. --set clip_range=1e-3."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps (multi-GPU: launch with accelerate/torchrun)."),
    export: bool = typer.Option(True, "--export/--no-export", help="Write lora/ and merged/ to --out at the end."),
    offline: Optional[bool] = offline_option(),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Align an inpainting model to a reward by RL (PrefPaint/DDPO or GRPO, trust-weighted); Ctrl-C saves a checkpoint."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk.align.resolve import parse_settings
        from prefpaint_sdk.align.trainer import Aligner
        from prefpaint_sdk.reward.specs import reward_from_flags

        specs = [*reward_model, *reward]
        train_reward = specs[0] if len(specs) == 1 else specs
        flags = dict(iterations=iterations, learning_rate=lr, num_steps=steps, finetune=finetune, seed=seed,
                     on_hacking=on_hacking)
        Aligner.validate(reward=train_reward, data=data, output_dir=out, device=device, preset=preset, algo=algo,
                         gold_reward=gold_reward or None, reward_weights=reward_weights, reward_norm=reward_norm,
                         settings=set_)
        gold = reward_from_flags(gold_reward, gold_weights, "gold_reward", "gold_weights") if gold_reward else None
        from prefpaint_sdk.hub import BASE_MODEL

        with progress(quiet) as bar:
            task = bar.add_task("align", total=None)

            def report(it: int, total: int, metrics: dict) -> None:
                bar.update(task, completed=it, total=total,
                           description=f"align r={metrics.get('reward_mean', float('nan')):.4g}")

            # Everything is resolved and checked there, once, before the model loads (prefpaint_sdk.align.resolve).
            aligner = Aligner.from_pretrained(model or BASE_MODEL, train_reward, config, data, out, preset=preset, algo=algo,
                                              eval_data=eval_data, gold_reward=gold, resume=resume, offline=offline,
                                              device=device, progress=report, reward_weights=reward_weights,
                                              reward_norm=reward_norm,  # --set wins over the flags
                                              settings={**{k: v for k, v in flags.items() if v is not None},
                                                        **parse_settings(set_)})
            if aligner.family_values:
                say(f"preset {preset} for {aligner.engine.family}: "
                    + ", ".join(f"{k} {v}" for k, v in aligner.family_values.items())
                    + " (over the preset's own; --config, --set and flags still win)")
            say(f"algorithm: {aligner.algo}; batch: "
                + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in aligner.batch_summary().items()))
            bar.update(task, total=aligner.config.iterations, completed=aligner.iteration if resume else 0)
            result = aligner.train(resume=resume)
        evals = [e for e in result.evals if e["mean_reward"] == e["mean_reward"]]
        if len(evals) >= 2:
            first, last = evals[0], evals[-1]
            wr = f", win rate vs start {last['win_rate']:.2f}" if last.get("win_rate") is not None else ""
            say(f"held-out reward: {first['mean_reward']:.4f} (iteration {first['iteration']}) -> "
                          f"{last['mean_reward']:.4f} (iteration {last['iteration']}){wr}")
            if last.get("gold_mean") is not None:
                say(f"held-out gold reward: {first['gold_mean']:.4f} -> {last['gold_mean']:.4f}")
        if result.stopped_reason:
            say(f"stopped early: {result.stopped_reason}")
        if result.best is not None:
            say(f"best weights by gold reward: iteration {result.best['iteration']} ({out / 'eval' / 'best'})"
                + ("; the exports below hold them" if result.stopped_reason and export else ""))
        if result.interrupted:
            say(f"stopped at iteration {result.iterations_done}; checkpoint {result.checkpoint}; continue with --resume")
            raise typer.Exit(interrupt_exit_code())
        if export:
            for name, path in aligner.export(out).items():
                say(f"{'LoRA adapter' if name == 'lora' else 'merged pipeline'}: {path}")
        say(f"done: {result.iterations_done} iterations, log {out / 'log.jsonl'}")
