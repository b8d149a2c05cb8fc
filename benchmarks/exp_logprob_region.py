"""``logprob_region = full | mask`` on a fill family, side by side: evidence for RESULTS.md (issue 21 §3).

A fill family (SD inpainting, FLUX Fill) defaults to ``full``: every latent element's log-probability counts,
as PrefPaint/DDPO trained. ``mask`` counts only the latent cells any hole pixel lies in (what the pasted-back
result depends on). This runs the same cpu-smoke training (tiny random fixture, the built-in brightness-in-hole
reward, the family's default algorithm) with each region and the same seeds, and reports the paired held-out
gain in units of seed noise (tests/_helpers_align.py's protocol: the std of the starting model's held-out mean
over 8 sets of sampling seeds) and the seconds per iteration.

    python benchmarks/exp_logprob_region.py --family sd --seeds 0,1,2      # ~5 min on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIPE_SEED = 2


def run(family: str, algo: str, region: str, seed: int, iterations: int) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _helpers_align import heldout_seed_noise, make_data

    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    torch.set_num_threads(1)
    over = dict(seed=seed, iterations=iterations, eval_every=iterations, save_every=0, eval_samples=4,
                log_with="none", logprob_region=region)
    if algo:
        over["algo"] = algo
    cfg = load_config("cpu-smoke", overrides=over, family=family)
    with tempfile.TemporaryDirectory() as tmp:
        al = Aligner(tiny_inpaint_pipeline(PIPE_SEED, family=family), "brightness", cfg,
                     make_data(Path(tmp) / "data", n=12), Path(tmp) / "run", device="cpu")
        noise = heldout_seed_noise(al)
        t0 = time.perf_counter()
        res = al.train()
        secs = time.perf_counter() - t0
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    return dict(family=family, algo=al.algo, region=region, seed=seed, iterations=iterations, gain=gain,
                seed_noise=noise, ratio=gain / noise, win_rate=res.evals[-1]["win_rate"],
                s_per_iter=secs / iterations)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="sd")
    p.add_argument("--algo", default="", help="'' = the family's default")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--iterations", type=int, default=12)
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    a = p.parse_args()
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        for region in ("full", "mask"):
            r = run(a.family, a.algo, region, seed, a.iterations)
            rows.append(r)
            print(f"{r['family']} {r['algo']} seed {seed} {region:4s}: gain {r['gain']:.5f} = {r['ratio']:.1f}x seed "
                  f"noise {r['seed_noise']:.5f}, win {r['win_rate']}, {r['s_per_iter']:.2f} s/iter", flush=True)
    print("\n| region | gain / seed noise per seed | mean | win rates | s per iteration (mean) |")
    print("|---|---|---|---|---|")
    for region in ("full", "mask"):
        rs = [r for r in rows if r["region"] == region]
        ratios = ", ".join(f"{r['ratio']:.1f}x" for r in rs)
        wins = ", ".join(str(r["win_rate"]) for r in rs)
        print(f"| {region} | {ratios} | {np.mean([r['ratio'] for r in rs]):.1f}x | {wins} "
              f"| {np.mean([r['s_per_iter'] for r in rs]):.2f} |")
    full = np.mean([r["ratio"] for r in rows if r["region"] == "full"])
    mask = np.mean([r["ratio"] for r in rows if r["region"] == "mask"])
    print(f"\nmask / full, mean gain in seed noise: {mask / full:.2f}")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
