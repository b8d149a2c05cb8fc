"""Cost of one alignment iteration against its floor, and peak memory LoRA vs full fine-tuning.

Floor: the same rollout sampling done by diffusers itself (``StableDiffusionInpaintPipeline.__call__`` with
the same images, masks, steps and batch) plus the same number of bare UNet forward+backward passes on
the same batch shapes (no log-probs, no PPO, no bookkeeping) and the same number of optimizer steps.
Target: iteration <= 1.15 x floor. Each mode runs in its own process so its peak RSS is its own.

    python benchmarks/bench_align.py                # table for LoRA and full, tiny model, CPU
    python benchmarks/bench_align.py --size mid --resolution 128 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from prefpaint_sdk.align.config import AlignConfig, batch_summary
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (args.resolution, args.resolution, 3), dtype=np.uint8)).save(tmp / "images" / f"{i}.png")
    cfg = AlignConfig().replace(
        finetune=args.mode, resolution=args.resolution, num_steps=args.steps, timesteps_per_traj=args.k,
        prompts_per_iter=2, samples_per_prompt=args.samples // 2, rollout_batch_size=args.samples,
        train_batch_size=args.samples, iterations=100, eval_every=0, save_every=0, log_with="none",
        learning_rate=1e-5, lora_rank=8, lora_alpha=8.0, resync_every=1,
        gradient_checkpointing=args.checkpointing)
    pipe = tiny_inpaint_pipeline(0, size=args.size)
    al = Aligner(pipe, "brightness", cfg, tmp, tmp / "out", device="cpu")
    summary = batch_summary(cfg)
    al.step()  # warm-up
    t_iter = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        al.step()
        t_iter.append(time.perf_counter() - t0)

    # ---- floor: diffusers' own sampling + bare fwd/bwd passes + optimizer steps ----
    items = [al.data.get(i) for i in range(cfg.prompts_per_iter)]
    unet = al.model
    params = list(al.params.values())
    opt = torch.optim.AdamW(params, lr=1e-5)
    h = args.resolution // pipe.vae_scale_factor
    pos, _ = al.engine.encode_prompts("", "", cfg.train_batch_size, 1.0, al.accelerator.device)
    n_fb = summary["trained_timesteps_per_iteration"] // cfg.train_batch_size
    n_opt = summary["optimizer_steps_per_iteration"]

    def floor_once():
        t0 = time.perf_counter()
        gens = [torch.Generator().manual_seed(s) for s in range(args.samples)]
        imgs = [it.image for it in items for _ in range(cfg.samples_per_prompt)]
        masks = [Image.fromarray(it.mask.astype(np.uint8) * 255) for it in items for _ in range(cfg.samples_per_prompt)]
        with torch.inference_mode():
            pipe(prompt=[""] * args.samples, image=imgs, mask_image=masks, height=args.resolution, width=args.resolution,
                 num_inference_steps=cfg.num_steps, guidance_scale=1.0, eta=1.0, generator=gens, output_type="pt")
        x = torch.randn(cfg.train_batch_size, 9, h, h)
        t = torch.randint(0, 1000, (cfg.train_batch_size,))
        for i in range(n_fb):
            unet(x, t, encoder_hidden_states=pos).sample.float().mean().backward()
            if (i + 1) % (n_fb // n_opt) == 0:
                opt.step()
                opt.zero_grad()
        return time.perf_counter() - t0

    floor_once()
    t_floor = [floor_once() for _ in range(args.repeats)]
    n_train = sum(p.numel() for p in params)
    return {
        "mode": args.mode, "size": args.size, "resolution": args.resolution, "samples": args.samples,
        "steps": args.steps, "K": args.k, "iteration_s": float(np.median(t_iter)), "floor_s": float(np.median(t_floor)),
        "ratio": float(np.median(t_iter) / np.median(t_floor)), "trainable_params": n_train,
        "unet_params": sum(p.numel() for p in pipe.unet.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="tiny", choices=["tiny", "mid"])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--mode", choices=["lora", "full"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(measure(args)))
        return
    rows = []
    for mode in ("lora", "full"):
        cmd = [sys.executable, __file__, "--mode", mode] + [a for a in sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    import diffusers
    import torch

    print(f"# bench_align: {platform.machine()} CPU, torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| mode | UNet size | px | samples x steps | K | iteration s | floor s | ratio | trainable params | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['size']} ({r['unet_params'] / 1e6:.2f}M) | {r['resolution']} | {r['samples']} x {r['steps']} | "
              f"{r['K']} | {r['iteration_s']:.2f} | {r['floor_s']:.2f} | {r['ratio']:.3f} | {r['trainable_params']:,} | "
              f"{r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
