"""Reward-model benchmarks: best-of-N scoring with a shared masked image vs the official one-at-a-time loop.

Side by side, in one process, on a ViT-B/32-sized RANDOM backbone (transformers' CLIPVisionConfig defaults:
hidden 768, 12 layers, patch 32, 224 px; built in memory, nothing downloaded) with the paper's head:

* ``ours``: ``RewardModel.score(candidates, masked_images=masked)``: the N candidates and the shared masked
  prompt image go through the backbone once each, batched (N + 1 images).
* ``official loop``: what the release does per candidate: preprocess and encode the inpainted image, then
  preprocess and encode the masked prompt image again, batch 1 (2N backbone passes).

Both paths start from PIL images (preprocessing included) and produce the same scores (checked).
Also recorded: full-size throughput in images/s (distinct masked images, batch 16).

Usage: ``python benchmarks/bench_reward.py [--n 4] [--repeats 5] [--device cpu] [--write FILE]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image

from prefpaint_sdk.imaging import masked_image
from prefpaint_sdk.reward import RewardModel
from prefpaint_sdk.reward.preprocess import preprocess_images


def official_loop(model: RewardModel, candidates, masked) -> torch.Tensor:
    """The release's scoring: one candidate at a time, both images encoded for each (2N passes)."""
    scores = []
    with torch.inference_mode():
        for cand in candidates:
            e_img = model.encode(preprocess_images([cand], model.image_size).to(model.device))
            e_msk = model.encode(preprocess_images([masked], model.image_size).to(model.device))
            scores.append(model.head(e_img, e_msk)[0])
    return torch.cat(scores).float().cpu()


def timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="candidates per (image, mask)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--throughput-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--write", default=None, help="append the table to this markdown file")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = RewardModel().eval().to(dev)  # ViT-B/32-sized, random
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    hole = np.zeros((512, 512), bool)
    hole[128:384, 160:352] = True
    masked = masked_image(image, hole)
    candidates = []
    for _ in range(args.n):
        a = np.array(image)
        a[hole] = rng.integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
        candidates.append(Image.fromarray(a))

    ours_scores = model.score(candidates, masked_images=masked, batch_size=max(args.n + 1, 16)).scores
    loop_scores = official_loop(model, candidates, masked)
    max_diff = float((ours_scores - loop_scores).abs().max())
    assert max_diff < 1e-3, f"scores differ by {max_diff}"

    t_ours = timed(lambda: model.score(candidates, masked_images=masked, batch_size=16), args.repeats, sync)
    t_loop = timed(lambda: official_loop(model, candidates, masked), args.repeats, sync)

    bs = args.throughput_batch
    pool = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(bs)]
    t_pairs = timed(lambda: model.score(pool, masks=hole, batch_size=bs), max(1, args.repeats // 2), sync)
    t_shared = timed(lambda: model.score(pool, masked_images=masked, batch_size=bs), max(1, args.repeats // 2), sync)

    speedup = t_loop / t_ours
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    machine = (f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, device {dev}{gpu}; torch {torch.__version__}, "
               f"threads {torch.get_num_threads()}, Python {sys.version.split()[0]}; load average at start {load0:.1f}.")
    rows = [
        (f"best-of-{args.n}, official loop (2N = {2 * args.n} passes, batch 1)", t_loop, 1.0),
        (f"best-of-{args.n}, ours (shared masked image, N+1 = {args.n + 1} images batched)", t_ours, speedup),
    ]
    lines = [
        f"### bench_reward.py: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        machine,
        "Backbone: random ViT-B/32-sized CLIP vision tower (hidden 768, 12 layers, patch 32, 224 px) + paper head, fp32.",
        (f"Inputs: 512x512 RGB, {args.n} candidates; median of {args.repeats} runs after a warm-up; "
         f"max score difference between the paths {max_diff:.1e}."),
        "",
        "| path | seconds | speed-up |",
        "|---|---|---|",
        *[f"| {name} | {t:.3f} | {r:.2f}x |" for name, t, r in rows],
        "",
        (f"Throughput, batch {bs}: {bs / t_pairs:.1f} images/s with distinct masked images (2 encodes each); "
         f"{bs / t_shared:.1f} images/s when all share one masked image."),
        f"Target: >= 1.8x on CPU for best-of-{args.n}: {'met' if speedup >= 1.8 else 'NOT met'} ({speedup:.2f}x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
