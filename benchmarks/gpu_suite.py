"""One-command GPU suite (issue 14, part 3): inpainting, reward scoring and RL at real size, random weights.

    python benchmarks/gpu_suite.py                       # real size on the best device (cuda, then mps, cpu)
    python benchmarks/gpu_suite.py --size tiny --device cpu --json out.json   # CPU mode (a test runs it)

No hub is reachable where a GPU is lent, so every model is built in memory with random weights:

* ``real``: Stable Diffusion 1.x inpainting shapes (UNet 320/640/1280/1280, 2 layers per block, 9 input
  channels, cross-attention 768, 64x64 latents; VAE 128/256/512/512; CLIP text 768 x 12 layers) and a
  ViT-B/32-sized reward backbone. The UNet's first down block is plain and its others cross-attend (the
  toolkit's test builder), where SD 1.x cross-attends in the first three: the cost is close, not identical.
  For RL, ``prefpaint_sdk.testing.tiny_inpaint_pipeline(size="real", family=...)`` where this build has it
  (else SD falls back to the shapes above, and another family is recorded as "size not available").
* ``tiny``: the test-suite models, to keep the script from rotting.

Recorded (JSON with ``--json``; a markdown section with ``--write FILE``):

1. SD engine: DDIM step time at the working size; the ``Inpainter`` against the raw diffusers pipeline
   (classifier-free guidance on in both); 4 batched candidates against 4 single calls (target ≤ 0.5 on GPU).
2. Reward: scoring 16 candidates of one prompt at batch 16 against the official per-image loop (target ≥ 4×).
3. RL: one ``Aligner.step()`` against its floor, and peak memory, for SD full (preset ``paper``), SD LoRA
   (``lora-24gb``) and FLUX-Fill LoRA (``flux-fill-lora-80gb``), at the preset's batch sizes. Floor, measured
   in the same run on the same weights: the pipeline's own ``__call__`` sampling the same images, masks,
   steps and rollout batches, plus bare forward+backward passes of the denoiser replayed on the very inputs
   (and as many of them) the step's training passes got (captured by a forward hook), plus the same number
   of AdamW steps. Target ≤ 1.15. Peak memory: ``torch.cuda.max_memory_allocated`` (reset per mode) on a
   GPU; on the CPU the process's ``ru_maxrss`` so far (monotonic: the modes share one process). A family
   this build cannot align is recorded as "not alignable in this build", a size it cannot build as "size
   not available", and a preset it lacks is replaced by ``lora-24gb``'s settings (noted in the row).

Time budget at real size on one H200 (whole suite ≤ 8 min): building the models on the CPU ~1 min;
inpainting (20 steps, 3 repeats of 4 measures) ~1.5 min; reward ~0.5 min; RL per mode = 1 warm-up step +
``--repeats`` timed steps + as many floors, at the presets' 16 samples x 50 steps (``--rl-steps`` lowers the
steps): SD full ~1 min, SD LoRA ~1 min, FLUX Fill LoRA ~2.5 min. ``--parts`` runs a subset.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_reward import official_loop  # noqa: E402

from prefpaint_sdk import Inpainter, RewardModel  # noqa: E402
from prefpaint_sdk.imaging.geometry import masked_image  # noqa: E402
from prefpaint_sdk.testing import TINY_REWARD_CONFIG, tiny_inpaint_pipeline  # noqa: E402

REAL_SD = dict(unet_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, unet_sample_size=64,
               vae_channels=(128, 256, 512, 512), text_hidden=768, text_layers=12)


def _sync(dev: torch.device):
    if dev.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _timed(fn, repeats: int, sync, warm: bool = True) -> float:
    if warm:
        fn()
        sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def _peak_mb(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None


def inpaint_section(size: str, dev: torch.device, dtype: torch.dtype, steps: int, repeats: int) -> dict:
    pipe = tiny_inpaint_pipeline(0, size="tiny", **(REAL_SD if size == "real" else {}))
    pipe = pipe.to(dev, dtype)
    inp = Inpainter(pipe, model_id=f"random-{size}")
    res = inp.resolution
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (res, res, 3), dtype=np.uint8)
    hole = np.zeros((res, res), bool)
    hole[res // 4:3 * res // 4, res // 4:3 * res // 4] = True
    sync = _sync(dev)
    call = dict(prompt="a photo", negative_prompt="", steps=steps, crop_margin=-1, mask_blur=0)

    def ours(n=1, seed=0):
        return inp(img, hole, num_candidates=n, seed=seed, **call)

    def raw():
        pipe(prompt=["a photo"], negative_prompt=[""], image=[Image.fromarray(img)],
             mask_image=[Image.fromarray(hole.astype(np.uint8) * 255)], num_inference_steps=steps, guidance_scale=7.5,
             eta=1.0, height=res, width=res, generator=[torch.Generator(dev).manual_seed(0)])

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_ours = _timed(ours, repeats, sync)
    t_raw = _timed(raw, repeats, sync)
    t_batch = _timed(lambda: ours(4), repeats, sync)
    t_single = _timed(lambda: [ours(1, seed=k) for k in range(4)], repeats, sync)
    sample_s = ours().timings["sample_s"]
    return {"engine": "sd", "working_size": res, "steps": steps, "dtype": str(dtype).replace("torch.", ""),
            "step_s": sample_s / steps, "inpainter_s": t_ours, "raw_pipeline_s": t_raw,
            "inpainter_vs_raw": t_ours / t_raw, "batched4_s": t_batch, "single4_s": t_single,
            "batched4_vs_single4": t_batch / t_single, "peak_mb": _peak_mb(dev),
            "unet_params_m": sum(p.numel() for p in pipe.unet.parameters()) / 1e6}


def reward_section(size: str, dev: torch.device, repeats: int) -> dict:
    torch.manual_seed(0)
    model = (RewardModel() if size == "real" else RewardModel(**TINY_REWARD_CONFIG)).eval().to(dev)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    hole = np.zeros((512, 512), bool)
    hole[128:384, 160:352] = True
    masked = masked_image(image, hole)
    cands = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(16)]
    sync = _sync(dev)
    diff = float((model.score(cands, masked_images=masked, batch_size=16).scores.cpu()
                  - official_loop(model, cands, masked)).abs().max())
    t_ours = _timed(lambda: model.score(cands, masked_images=masked, batch_size=16), repeats, sync)
    t_loop = _timed(lambda: official_loop(model, cands, masked), repeats, sync)
    return {"images": 16, "batch": 16, "ours_s": t_ours, "official_loop_s": t_loop, "speedup": t_loop / t_ours,
            "max_score_diff": diff}


RL_MODES = (("sd-full", "sd", "paper"), ("sd-lora", "sd", "lora-24gb"), ("flux-fill-lora", "flux-fill", "flux-fill-lora-80gb"))


def _rl_pipeline(size: str, family: str):
    """The pipeline to align at ``size``; SD at real size falls back to REAL_SD where testing lacks "real"."""
    try:
        return tiny_inpaint_pipeline(0, size=size, family=family), None
    except ValueError:
        if family == "sd" and size == "real":
            return tiny_inpaint_pipeline(0, size="tiny", **REAL_SD), "REAL_SD shapes (testing has no size 'real')"
        raise


def _align_data(root: Path, resolution: int, n: int = 6) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    return root


class _Capture:
    """Records the denoiser's inputs of one training (grad-enabled) pass, and counts those passes."""

    def __init__(self):
        self.args, self.kwargs, self.count = None, None, 0

    def __call__(self, module, args, kwargs):
        if torch.is_grad_enabled():
            self.count += 1
            if self.args is None:
                det = lambda v: v.detach() if torch.is_tensor(v) else v  # noqa: E731
                self.args = tuple(det(a) for a in args)
                self.kwargs = {k: det(v) for k, v in kwargs.items()}


def _peak_reset(dev: torch.device) -> None:
    import gc

    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _peak(dev: torch.device) -> tuple[float, str]:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20, "cuda max_memory_allocated"
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process maxrss so far"


def rl_mode(name: str, family: str, preset: str, size: str, dev: torch.device, repeats: int, steps: int | None,
            tmp: Path) -> dict:
    """One RL iteration of ``name`` against its floor, and its peak memory (see the module docstring)."""
    from prefpaint_sdk import Aligner, load_align_config
    from prefpaint_sdk.align.config import PRESETS, batch_summary
    from prefpaint_sdk.errors import PrefPaintError

    row: dict = {"name": name, "family": family, "preset": preset, "status": "measured", "notes": []}
    from prefpaint_sdk.align.algorithms import get_algorithm

    if preset not in PRESETS:
        row["notes"].append(f"preset '{preset}' not in this build; lora-24gb's settings used")
        preset = "lora-24gb"
    shared = PRESETS[preset]
    # the shared values and the preset's values for its algorithm (the family's default: ppo, or what it names)
    settings = {**get_algorithm(shared.get("algo") or ("grpo" if family == "flux-fill" else "ppo")).preset_values(preset, family),
                **shared}
    over = dict(iterations=1000, eval_every=0, save_every=0, log_with="none")
    if steps is not None:  # fewer steps: what is counted in steps (K, a FLUX SDE window) must still fit
        over["num_steps"] = steps
        for key in ("timesteps_per_traj", "sde_window"):
            if key in settings or key == "timesteps_per_traj":
                over[key] = min(steps, settings.get(key, 5))
    if size == "tiny":  # the tiny models' own working size (64 px), not the preset's 512 px
        over["resolution"] = 0
    mp = settings.get("mixed_precision", "no")
    if dev.type == "cpu" and mp != "no":  # fp16 autocast needs a GPU; bf16 autocast ran 8x slower than fp32 on CPU
        over["mixed_precision"] = "no"
        row["notes"].append(f"{mp} -> fp32 on the CPU")
    cfg = load_align_config(None, overrides={**settings, **over})
    row.update(finetune=cfg.finetune, mixed_precision=cfg.mixed_precision, samples=cfg.prompts_per_iter * cfg.samples_per_prompt,
               rollout_batch=cfg.rollout_batch_size, train_batch=cfg.train_batch_size, steps=cfg.num_steps,
               K=cfg.algo_settings.get("timesteps_per_traj"))
    _peak_reset(dev)
    try:
        pipe, note = _rl_pipeline(size, family)
    except ValueError as exc:
        row.update(status="size not available", error=str(exc))
        return row
    if note:
        row["notes"].append(note)
    res = pipe.vae.config.sample_size if size == "tiny" else 512
    data = _align_data(tmp / f"data-{name}", res)
    try:
        al = Aligner(pipe, "brightness", cfg, data, tmp / f"run-{name}", device=str(dev), model_id=f"random-{size}-{family}")
    except PrefPaintError as exc:  # recorded, so one row cannot stop the suite on a lent GPU
        from prefpaint_sdk.engines import NotAlignableError

        status = "not alignable in this build" if isinstance(exc, NotAlignableError) else f"refused: {type(exc).__name__}"
        row.update(status=status, error=str(exc))
        return row
    sync = _sync(dev)
    module = al.engine.model
    row["trainable_params"] = sum(p.numel() for p in al.params.values())
    row["denoiser_params_m"] = sum(p.numel() for p in module.parameters()) / 1e6
    cap = _Capture()
    hook = module.register_forward_pre_hook(cap, with_kwargs=True)
    try:
        al.step()  # warm-up: AdamW's moments, kernels, allocator
        sync()
    finally:
        hook.remove()
    passes = cap.count
    summary = batch_summary(cfg)
    n_opt = summary["optimizer_steps_per_iteration"]
    items = [al.data.get(i) for i in range(cfg.prompts_per_iter)]
    imgs = [it.image for it in items for _ in range(cfg.samples_per_prompt)]
    masks = [Image.fromarray(it.mask.astype(np.uint8) * 255) for it in items for _ in range(cfg.samples_per_prompt)]
    params = list(al.params.values())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate)
    call = dict(height=al.resolution, width=al.resolution, num_inference_steps=cfg.num_steps,
                guidance_scale=cfg.guidance_scale, output_type="pt")
    if family == "sd":
        call["eta"] = cfg.eta

    def floor():
        with torch.inference_mode(), al.accelerator.autocast():
            for s0 in range(0, len(imgs), cfg.rollout_batch_size):
                n = len(imgs[s0:s0 + cfg.rollout_batch_size])
                pipe(prompt=[cfg.prompt] * n, image=imgs[s0:s0 + n], mask_image=masks[s0:s0 + n],
                     generator=[torch.Generator().manual_seed(s0 + k) for k in range(n)], **call)
        module.train()
        for i in range(passes):
            with al.accelerator.autocast():
                out = module(*cap.args, **cap.kwargs)
            (out[0] if isinstance(out, tuple) else out.sample).float().mean().backward()
            if (i + 1) % max(passes // n_opt, 1) == 0:
                opt.step()
                opt.zero_grad(set_to_none=True)
        module.eval()

    floor()  # warm-up: the floor's own AdamW moments
    t_iter = _timed(al.step, repeats, sync, warm=False)  # warmed up above
    t_floor = _timed(floor, repeats, sync, warm=False)
    peak, kind = _peak(dev)
    row.update(iteration_s=t_iter, floor_s=t_floor, ratio=t_iter / t_floor, train_passes=passes, optimizer_steps=n_opt,
               peak_mb=peak, peak_kind=kind)
    return row


def rl_section(size: str, dev: torch.device, repeats: int, steps: int | None) -> list[dict]:
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="gpu_suite_rl_"))
    rows = []
    try:
        for name, family, preset in RL_MODES:
            t0 = time.perf_counter()
            rows.append(rl_mode(name, family, preset, size, dev, repeats, steps, tmp))
            rows[-1]["wall_s"] = time.perf_counter() - t0
            print(f"rl {name}: {rows[-1]['status']} ({rows[-1]['wall_s']:.0f} s)", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _rl_lines(rows: list[dict]) -> list[str]:
    lines = ["", "RL: one `Aligner.step()` against its floor (the pipeline's own sampling of the same batches + bare "
             "forward/backward of the trained timesteps on the captured inputs + the same AdamW steps), at the "
             "preset's batch sizes.", "",
             "| mode | preset | finetune, precision | samples (rollout / train batch) | steps, K | iteration (s) | "
             "floor (s) | ratio | target | peak memory (MiB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in rows:
        head = (f"| {x['name']} | {x['preset']} | {x.get('finetune', '')}, {x.get('mixed_precision', '')} | "
                f"{x.get('samples', '')} ({x.get('rollout_batch', '')} / {x.get('train_batch', '')}) | "
                f"{x.get('steps', '')}, {x.get('K', '')} |")
        if x["status"] != "measured":
            lines.append(f"{head} {x['status']} | | | ≤ 1.15 | |")
        else:
            lines.append(f"{head} {x['iteration_s']:.3f} | {x['floor_s']:.3f} | {x['ratio']:.3f} | ≤ 1.15 | "
                         f"{x['peak_mb']:.0f} ({x['peak_kind']}) |")
    notes = [f"{x['name']}: {'; '.join(x['notes'])}" for x in rows if x["notes"]]
    if notes:
        lines += ["", "Notes: " + " — ".join(notes) + "."]
    return lines


def markdown(r: dict) -> str:
    gpu = r["device_name"]
    lines = [f"### gpu_suite.py --size {r['size']}: {r['date']}, {gpu}", "", f"torch {r['torch']}, median of {r['repeats']}, "
             f"whole suite {r['wall_s']:.0f} s.", ""]
    i, w = r.get("inpaint"), r.get("reward")
    if i or w:
        lines += ["| measure | ours (s) | baseline (s) | ratio | target |", "|---|---|---|---|---|"]
    if i:
        lines[2] += (f" Inpainting: {i['dtype']}, random weights ({i['unet_params_m']:.0f} M UNet parameters), "
                     f"{i['working_size']}² working size, {i['steps']} DDIM steps.")
        lines += [
            f"| SD DDIM step at {i['working_size']}² | {i['step_s']:.4f} | | | (info) |",
            f"| `Inpainter` vs raw pipeline, CFG on in both | {i['inpainter_s']:.3f} | {i['raw_pipeline_s']:.3f} | "
            f"{i['inpainter_vs_raw']:.3f} | ≤ 1.05 |",
            f"| 4 candidates batched vs 4 single calls | {i['batched4_s']:.3f} | {i['single4_s']:.3f} | "
            f"{i['batched4_vs_single4']:.3f} | ≤ 0.5 on GPU |"]
    if w:
        lines.append(f"| reward: 16 candidates at batch 16 vs the official per-image loop | {w['ours_s']:.3f} | "
                     f"{w['official_loop_s']:.3f} | {w['speedup']:.2f}× faster | ≥ 4× |")
    if i and i["peak_mb"] is not None:
        lines.append(f"\nPeak GPU memory while inpainting: {i['peak_mb']:.0f} MiB.")
    if r.get("rl"):
        lines += _rl_lines(r["rl"])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=["real", "tiny"], default="real")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps of inpainting (default: 20 real, 2 tiny)")
    ap.add_argument("--rl-steps", type=int, default=None, help="DDIM steps of the RL rollouts (default: the preset's "
                    "50 at real size, 1 tiny); K = min(the preset's K, this)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default: 3 real, 1 tiny; RL: 1)")
    ap.add_argument("--parts", default="inpaint,reward,rl", help="comma-separated subset of inpaint, reward, rl")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    ap.add_argument("--write", default=None, help="append a markdown section to this file (e.g. benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from prefpaint_sdk.devices import resolve_device, resolve_dtype

    diffusers_logging.set_verbosity_error()  # casting random components to fp16 warns once per model
    parts = set(args.parts.split(","))
    if not parts <= {"inpaint", "reward", "rl"}:
        ap.error(f"--parts takes inpaint, reward and rl, got {args.parts!r}")
    dev = resolve_device(args.device)
    dtype = resolve_dtype("auto", dev)
    steps = args.steps or (20 if args.size == "real" else 2)
    rl_steps = args.rl_steps or (None if args.size == "real" else 1)
    repeats = args.repeats or (3 if args.size == "real" else 1)
    t0 = time.perf_counter()
    r = {"size": args.size, "device": str(dev), "repeats": repeats, "torch": torch.__version__,
         "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
         "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda"
         else f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"}
    if "inpaint" in parts:
        r["inpaint"] = inpaint_section(args.size, dev, dtype, steps, repeats)
        print(f"inpaint done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    if "reward" in parts:
        r["reward"] = reward_section(args.size, dev, repeats)
        print(f"reward done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    if "rl" in parts:
        r["rl"] = rl_section(args.size, dev, args.repeats or 1, rl_steps)
    r["wall_s"] = time.perf_counter() - t0
    text = markdown(r)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2, allow_nan=False) + "\n")
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
