"""Does trust weighting do what the paper claims? A synthetic ablation on the tiny pipeline.

Construction (all programmatic, CPU, minutes):

* true reward r*(x): mean brightness inside the hole (what we want);
* embedding z(x): (hole brightness, hole contrast, hole redness) of the pasted-back image;
* "training distribution" of the learned reward: z of the starting model's samples, mean mu0 and
  covariance S0; out-of-distribution distance d(z) = ||z - mu0||_{S0^-1} (Mahalanobis, the role of
  ||z||_{V^-1} in the paper);
* learned reward r^(x) = r*(x) + err * d(z) * c(x), where c is the hole contrast, standardised: its error
  grows out of distribution and rewards drifting off in a direction the true reward does not care about;
* its bound is 7 * d(z), so gamma = clamp(exp(-0.05 * bound + 0.7), 1, 2.21) runs from ~2.0 in
  distribution to 1.0 beyond d = 2 (the paper's k, b and clamp).

We align with gamma (use_trust=True) and without (use_trust=False) over several seeds, and report the
true held-out reward reached and the iterations to reach a target (start + half the largest gain seen).

    python benchmarks/exp_trust_ablation.py --seeds 0 1 2 --iterations 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _features(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (images * w).sum(1)
    m = masks.float()
    area = m.sum((1, 2)).clamp(min=1)
    mean = (luma * m).sum((1, 2)) / area
    var = (((luma - mean.view(-1, 1, 1)) ** 2) * m).sum((1, 2)) / area
    red = ((images[:, 0] - images[:, 2]) * m).sum((1, 2)) / area
    return torch.stack([mean, var.sqrt(), red], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--eval-every", type=int, default=3)
    ap.add_argument("--err", type=float, default=3.0, help="error scale of the learned reward")
    ap.add_argument("--pipe-seed", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the raw results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from PIL import Image

    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.reward.constraints import brightness_in_mask
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    work = Path(tempfile.mkdtemp(prefix="trust_ablation_"))
    (work / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(work / "images" / f"{i:02d}.png")

    def cfg(seed, use_trust):
        return load_config("cpu-smoke", overrides=dict(seed=seed, use_trust=use_trust, iterations=args.iterations,
                                                       eval_every=0, save_every=0, log_with="none"))

    # The learned reward's "training data": the starting model's samples.
    probe = Aligner(tiny_inpaint_pipeline(args.pipe_seed), "brightness", cfg(0, True), work, work / "probe", device="cpu")
    items = [probe.data.get(i) for i in range(8)]
    _, imgs, masks = probe._sample(items, list(range(900, 900 + 32)), 4)
    z0 = _features(imgs, masks[:, 0])
    mu0, cov0 = z0.mean(0), torch.cov(z0.T) + 1e-8 * torch.eye(3)
    prec = torch.linalg.inv(cov0)
    c_mu, c_sd = z0[:, 1].mean(), z0[:, 1].std()

    def distance(z):
        d = z - mu0
        return torch.sqrt(torch.einsum("ni,ij,nj->n", d, prec, d))

    def learned(images, masks_, masked):
        z = _features(images, masks_)
        d = distance(z)
        err = args.err * d * (z[:, 1] - c_mu) / c_sd * float(z0[:, 0].std())
        return brightness_in_mask(images, masks_) + err, 7.0 * d

    held = [probe.eval_set.get(i, mask_seed=5000 + i) for i in range(12, 16)]
    held_seeds = list(range(7000, 7000 + 4 * 4))

    def true_eval(al):
        _, im, mk = al._sample(held, held_seeds, 4)
        return float(brightness_in_mask(im, mk[:, 0]).mean()), float(distance(_features(im, mk[:, 0])).mean())

    results = []
    for seed in args.seeds:
        for use_trust in (True, False):
            t0 = time.perf_counter()
            al = Aligner(tiny_inpaint_pipeline(args.pipe_seed), learned, cfg(seed, use_trust), work,
                         work / f"run_{seed}_{use_trust}", device="cpu")
            curve = [(0, *true_eval(al))]
            trust = []
            al.progress = lambda it, total, m, al=al, trust=trust, curve=curve: (  # bound now: called within this loop
                trust.append(m["trust_mean"]), curve.append((it, *true_eval(al))) if it % args.eval_every == 0 else None)
            al.train()
            results.append(dict(seed=seed, use_trust=use_trust, curve=curve, trust_mean=float(np.mean(trust)),
                                seconds=time.perf_counter() - t0))
            print(json.dumps(results[-1]), flush=True)

    start = np.mean([r["curve"][0][1] for r in results])
    best_gain = max(max(c[1] for c in r["curve"]) - r["curve"][0][1] for r in results)
    target = start + 0.5 * best_gain
    print(f"\n# trust ablation: tiny pipeline seed {args.pipe_seed}, {args.iterations} iterations, err={args.err}, "
          f"target true reward {target:.5f} (start {start:.5f} + half the best gain)")
    print("| gamma | seed | true reward start | true reward end | best | iterations to target | OOD distance end | mean gamma |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r["curve"]
        hit = next((it for it, v, _ in c if v >= target), None)
        print(f"| {'on' if r['use_trust'] else 'off'} | {r['seed']} | {c[0][1]:.5f} | {c[-1][1]:.5f} | "
              f"{max(v for _, v, _ in c):.5f} | {hit if hit is not None else 'not reached'} | {c[-1][2]:.2f} | "
              f"{r['trust_mean']:.3f} |")
    for flag in (True, False):
        ends = [r["curve"][-1][1] - r["curve"][0][1] for r in results if r["use_trust"] == flag]
        print(f"gamma {'on ' if flag else 'off'}: true-reward gain {np.mean(ends):+.5f} +- {np.std(ends):.5f} (mean +- sd over seeds)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
