"""Issue 2 benchmarks: Inpainter overhead, batched candidates, crop-to-mask on a large image.

Run: .venv/bin/python benchmarks/bench_inpaint.py [--repeats 3]
Each row times our code and the thing a user would otherwise run, side by side in one process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, machine  # noqa: E402

from prefpaint_sdk import Inpainter  # noqa: E402
from prefpaint_sdk.testing import tiny_inpaint_pipeline  # noqa: E402


def _inputs(size: int, hole: tuple[int, int, int, int], seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    m = np.zeros((size, size), bool)
    y0, y1, x0, x1 = hole
    m[y0:y1, x0:x1] = True
    return img, m


def _direct(pipe, img, m, seeds, steps, prompt="", negative_prompt="", guidance=7.5):
    n = len(seeds)
    return pipe(
        prompt=[prompt] * n, negative_prompt=[negative_prompt] * n, image=[Image.fromarray(img)] * n,
        mask_image=[Image.fromarray(m.astype(np.uint8) * 255)] * n, num_inference_steps=steps,
        guidance_scale=guidance, eta=1.0, height=img.shape[0], width=img.shape[1],
        generator=[torch.Generator().manual_seed(s) for s in seeds],
    ).images


def _show(row) -> None:
    name, ours, base, target = row
    print(f"  done: {name}: {ours:.3f} s vs {base:.3f} s, ratio {ours / base:.3f}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", default="a,b,c", help="comma-separated subset of a, b, c ((c) takes minutes on CPU)")
    args = ap.parse_args()
    rows = []

    # Mid-size random model: UNet (64, 128, 256), 8x VAE, 512 px working size: real proportions.
    mid = Inpainter(tiny_inpaint_pipeline(size="mid"), model_id="random-mid")
    pipe = mid.pipeline
    img, m = _inputs(512, (128, 384, 128, 384))
    steps = args.steps

    only = set(args.only.split(","))
    overhead_ms = float("nan")

    # (a) overhead: CFG on in both (prompt differs from negative prompt), whole image, same seed.
    t = {} if "a" not in only else compare({
        "inpainter": lambda: mid(img, m, prompt="a photo", seed=0, steps=steps, crop_margin=-1),
        "diffusers": lambda: _direct(pipe, img, m, [0], steps, prompt="a photo"),
    }, repeats=args.repeats)
    if t:
        rows.append(("(a) Inpainter vs diffusers, 512², 10 steps, CFG on", t["inpainter"], t["diffusers"], "<= 1.05"))
        overhead_ms = (t["inpainter"] - t["diffusers"]) * 1000
        _show(rows[-1])

    # (a') the default empty prompt: equal prompts make CFG a no-op, so the Inpainter skips it.
    t = {} if "a" not in only else compare({
        "inpainter": lambda: mid(img, m, seed=0, steps=steps, crop_margin=-1),
        "diffusers": lambda: _direct(pipe, img, m, [0], steps),
    }, repeats=args.repeats)
    if t:
        rows.append(("(a') same, empty prompt (CFG skipped by us)", t["inpainter"], t["diffusers"], "(info)"))
        _show(rows[-1])

    # (b) 4 candidates in one batched call vs 4 single calls.
    t = {} if "b" not in only else compare({
        "batched": lambda: mid(img, m, prompt="a photo", seed=0, steps=steps, num_candidates=4, crop_margin=-1),
        "4 singles": lambda: [mid(img, m, prompt="a photo", seed=s, steps=steps, crop_margin=-1) for s in range(4)],
    }, repeats=max(1, args.repeats - 1))
    if t:
        rows.append(("(b) 4 candidates batched vs 4 single calls", t["batched"], t["4 singles"], "<= 0.8"))
        _show(rows[-1])

    # (c) 2048² image, 256² hole: crop-to-mask vs a full-resolution diffusers call. Tiny UNet with an
    # 8x VAE (the 2x tiny VAE would put self-attention on 512² tokens at full resolution).
    if "c" not in only:
        return _table(rows, overhead_ms)
    tiny8 = Inpainter(tiny_inpaint_pipeline(vae_channels=(32, 32, 32, 32)), model_id="random-tiny-8x")
    big, bm = _inputs(2048, (896, 1152, 896, 1152))
    t = compare({
        "crop": lambda: tiny8(big, bm, seed=0, steps=steps, prompt="a photo"),
        "full-res diffusers": lambda: _direct(tiny8.pipeline, big, bm, [0], steps, prompt="a photo"),
    }, repeats=1, warmup=0)
    rows.append(("(c) 2048² + 256² hole: crop vs full-res diffusers", t["crop"], t["full-res diffusers"], "<= 0.1"))

    _table(rows, overhead_ms)


def _table(rows, overhead_ms) -> None:
    print(f"machine: {machine()}")
    print("| benchmark | ours (s) | baseline (s) | ratio | target |\n|---|---|---|---|---|")
    for name, ours, base, target in rows:
        print(f"| {name} | {ours:.3f} | {base:.3f} | {ours / base:.3f} | {target} |")
    print(f"\n(a) absolute Inpainter overhead: {overhead_ms:+.1f} ms per call")


if __name__ == "__main__":
    main()
