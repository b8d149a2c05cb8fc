"""One-command GPU suite (issue 14, part 3), PARTIAL: inpainting and reward scoring at real size, random weights.

    python benchmarks/gpu_suite.py                       # real size on the best device (cuda, then mps, cpu)
    python benchmarks/gpu_suite.py --size tiny --device cpu --json out.json   # CPU mode (a test runs it)

No hub is reachable where a GPU is lent, so every model is built in memory with random weights:

* ``real``: Stable Diffusion 1.x inpainting shapes (UNet 320/640/1280/1280, 2 layers per block, 9 input
  channels, cross-attention 768, 64x64 latents; VAE 128/256/512/512; CLIP text 768 x 12 layers) and a
  ViT-B/32-sized reward backbone. The UNet's first down block is plain and its others cross-attend (the
  toolkit's test builder), where SD 1.x cross-attends in the first three: the cost is close, not identical.
* ``tiny``: the test-suite models, to keep the script from rotting.

Recorded (JSON with ``--json``; a markdown section with ``--write FILE``):

1. SD engine: DDIM step time at the working size; the ``Inpainter`` against the raw diffusers pipeline
   (classifier-free guidance on in both); 4 batched candidates against 4 single calls (target ≤ 0.5 on GPU).
2. Reward: scoring 16 candidates of one prompt at batch 16 against the official per-image loop (target ≥ 4×).

Not yet in the suite: one RL iteration against its floor and peak memory for SD full / SD LoRA / FLUX-Fill
LoRA (``bench_align.py`` measures the first two on CPU only; no FLUX engine is in this tree).
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

from prefpaint_sdk import Inpainter, RewardModel, masked_image  # noqa: E402
from prefpaint_sdk.testing import TINY_REWARD_CONFIG, tiny_inpaint_pipeline  # noqa: E402

REAL_SD = dict(unet_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, unet_sample_size=64,
               vae_channels=(128, 256, 512, 512), text_hidden=768, text_layers=12)


def _sync(dev: torch.device):
    if dev.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _timed(fn, repeats: int, sync) -> float:
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


def markdown(r: dict) -> str:
    i, w = r["inpaint"], r["reward"]
    gpu = r["device_name"]
    lines = [
        f"### gpu_suite.py --size {r['size']}: {r['date']}, {gpu}", "",
        f"torch {r['torch']}, {i['dtype']}, random weights ({i['unet_params_m']:.0f} M UNet parameters), "
        f"{i['working_size']}² working size, {i['steps']} DDIM steps, median of {r['repeats']}.", "",
        "| measure | ours (s) | baseline (s) | ratio | target |", "|---|---|---|---|---|",
        f"| SD DDIM step at {i['working_size']}² | {i['step_s']:.4f} | | | (info) |",
        f"| `Inpainter` vs raw pipeline, CFG on in both | {i['inpainter_s']:.3f} | {i['raw_pipeline_s']:.3f} | "
        f"{i['inpainter_vs_raw']:.3f} | ≤ 1.05 |",
        f"| 4 candidates batched vs 4 single calls | {i['batched4_s']:.3f} | {i['single4_s']:.3f} | "
        f"{i['batched4_vs_single4']:.3f} | ≤ 0.5 on GPU |",
        f"| reward: 16 candidates at batch 16 vs the official per-image loop | {w['ours_s']:.3f} | "
        f"{w['official_loop_s']:.3f} | {w['speedup']:.2f}× faster | ≥ 4× |",
    ]
    if i["peak_mb"] is not None:
        lines.append(f"\nPeak GPU memory while inpainting: {i['peak_mb']:.0f} MiB.")
    lines.append("\nNot measured by this suite yet: RL iteration vs floor and peak memory (SD full, SD LoRA, FLUX-Fill LoRA).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=["real", "tiny"], default="real")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default: 20 real, 2 tiny)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default: 3 real, 1 tiny)")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    ap.add_argument("--write", default=None, help="append a markdown section to this file (e.g. benchmarks/RESULTS.md)")
    args = ap.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    from prefpaint_sdk.devices import resolve_device, resolve_dtype

    diffusers_logging.set_verbosity_error()  # casting random components to fp16 warns once per model
    dev = resolve_device(args.device)
    dtype = resolve_dtype("auto", dev)
    steps = args.steps or (20 if args.size == "real" else 2)
    repeats = args.repeats or (3 if args.size == "real" else 1)
    t0 = time.perf_counter()
    r = {"size": args.size, "device": str(dev), "repeats": repeats, "torch": torch.__version__,
         "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
         "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda"
         else f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"}
    r["inpaint"] = inpaint_section(args.size, dev, dtype, steps, repeats)
    print(f"inpaint done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    r["reward"] = reward_section(args.size, dev, repeats)
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
