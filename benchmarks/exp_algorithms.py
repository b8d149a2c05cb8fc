"""PPO, GRPO, DiffusionNFT and online Diffusion-DPO at the same budget of denoiser passes: evidence for RESULTS.md.

Every algorithm trains the tiny random SD inpainting fixture (``prefpaint_sdk.testing``) with the cpu-smoke
preset (each algorithm's own preset values included) and the brightness-in-hole reward. The budget is a number
of denoiser passes (one sample through the UNet once, with or without grad; sampling, training, old-policy and
reference passes all count): each algorithm runs as many whole iterations as fit in it. Passes are counted by
a hook on the UNet during the training iterations only (evaluations are not counted), so every algorithm's
passes per iteration is measured, not assumed.

The figure of merit is the paired held-out gain (the run's own held-out pairs, masks and sampling seeds before
and after) in units of seed noise (the std of the starting model's held-out mean over 8 sets of sampling
seeds, tests/_helpers_align.py's protocol), per denoiser pass and per second of training.

    python benchmarks/exp_algorithms.py run --budget 1024 --seeds 0,1,2 --out benchmarks/results   # ~12 min here
    python benchmarks/exp_algorithms.py plot benchmarks/results/exp_algorithms.json   # needs matplotlib
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
ALGOS = ("ppo", "grpo", "nft", "dpo")


def _aligner(algo: str, seed: int, iterations: int, data: Path, out: Path):
    from prefpaint_sdk.align.config import load_config
    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    over = dict(algo=algo, seed=seed, iterations=iterations, eval_every=iterations, save_every=0, eval_size=8,
                log_with="none")
    if algo == "dpo":
        over["online"] = True
    cfg = load_config("cpu-smoke", overrides=over)
    return Aligner(tiny_inpaint_pipeline(PIPE_SEED), "brightness", cfg, data, out, device="cpu")


class PassCounter:
    """Counts the samples that go through the UNet while ``on`` (split by whether grad was enabled)."""

    def __init__(self, module):
        import torch

        self.on, self.grad, self.nograd = False, 0, 0

        def hook(_mod, args, kwargs):
            if self.on:
                x = args[0] if args else kwargs["sample"]
                if torch.is_grad_enabled():
                    self.grad += int(x.shape[0])
                else:
                    self.nograd += int(x.shape[0])

        self.handle = module.register_forward_pre_hook(hook, with_kwargs=True)


def _run_one(algo: str, seed: int, iterations: int, data: Path, tmp: Path, noise: dict) -> dict:
    al = _aligner(algo, seed, iterations, data, tmp / f"{algo}_s{seed}")
    counter = PassCounter(al.raw_model)
    step = al.algorithm.step
    train_s = [0.0]

    def counted(loop, it):
        counter.on = True
        t0 = time.perf_counter()
        try:
            return step(loop, it)
        finally:
            train_s[0] += time.perf_counter() - t0
            counter.on = False

    al.algorithm.step = counted
    if seed not in noise:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _helpers_align import heldout_seed_noise

        noise[seed] = heldout_seed_noise(al)
    res = al.train()
    gain = res.evals[-1]["mean_reward"] - res.evals[0]["mean_reward"]
    passes = counter.grad + counter.nograd
    return dict(algo=algo, seed=seed, iterations=iterations, passes=passes, grad_passes=counter.grad,
                passes_per_iteration=passes / iterations, train_s=train_s[0], gain=gain, seed_noise=noise[seed],
                gain_x_noise=gain / noise[seed], win_rate=res.evals[-1]["win_rate"],
                start=res.evals[0]["mean_reward"], end=res.evals[-1]["mean_reward"])


def run(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from _helpers_align import make_data

    tmp = Path(tempfile.mkdtemp(prefix="exp_algorithms_"))
    data = make_data(tmp / "data", n=24)
    # passes per iteration of each algorithm, measured on one iteration of training seed 0
    per_iter = {}
    for algo in args.algos:
        r = _run_one(algo, 0, 1, data, tmp / "calib", {0: 1.0})
        per_iter[algo] = r["passes"]
        print(f"{algo}: {r['passes']} denoiser passes per iteration ({r['grad_passes']} with grad)", flush=True)
    noise: dict = {}
    rows = []
    for seed in args.seeds:
        for algo in args.algos:
            iters = max(1, args.budget // per_iter[algo])
            r = _run_one(algo, seed, iters, data, tmp, noise)
            rows.append(r)
            print(json.dumps(r), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(budget=args.budget, seeds=args.seeds, torch=torch.__version__, threads=args.threads,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), per_iteration=per_iter)
    (out / "exp_algorithms.json").write_text(json.dumps(dict(meta=meta, runs=rows), indent=1))
    table(rows)


def table(rows) -> None:
    print("| algorithm | passes/iter | iterations | gain / seed noise (per seed) | mean | per 1k passes | per train-minute |")
    print("|---|---|---|---|---|---|---|")
    for algo in ALGOS:
        rs = [r for r in rows if r["algo"] == algo]
        if not rs:
            continue
        g = np.array([r["gain_x_noise"] for r in rs])
        p = np.mean([r["passes"] for r in rs])
        s = np.mean([r["train_s"] for r in rs])
        print(f"| {algo} | {rs[0]['passes_per_iteration']:.0f} | {rs[0]['iterations']} | "
              f"{', '.join(f'{x:+.1f}' for x in g)} | {g.mean():+.1f} | {g.mean() / p * 1000:+.2f} | "
              f"{g.mean() / s * 60:+.2f} |")


def plot(path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = json.loads(Path(path).read_text())
    rows = doc["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, algo in enumerate(ALGOS):
        rs = [r for r in rows if r["algo"] == algo]
        if not rs:
            continue
        g = [r["gain_x_noise"] for r in rs]
        axes[0].scatter([i] * len(g), g, color=f"C{i}")
        axes[0].bar(i, np.mean(g), color=f"C{i}", alpha=0.4)
        axes[1].scatter([r["train_s"] for r in rs], g, color=f"C{i}", label=algo)
    axes[0].set_xticks(range(len(ALGOS)), ALGOS)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_ylabel("held-out gain / seed noise")
    axes[0].set_title(f"same budget: {doc['meta']['budget']} denoiser passes")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set_xlabel("training seconds (1 CPU thread)")
    axes[1].set_ylabel("held-out gain / seed noise")
    axes[1].legend()
    fig.tight_layout()
    dest = Path(__file__).resolve().parent / "exp_algorithms.png"
    fig.savefig(dest, dpi=100)
    print(f"wrote {dest}")
    table(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--budget", type=int, default=1024, help="denoiser passes per run (training only)")
    r.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    r.add_argument("--algos", type=lambda s: s.split(","), default=list(ALGOS))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default="benchmarks/results")
    p = sub.add_parser("plot")
    p.add_argument("path")
    a = ap.parse_args()
    run(a) if a.cmd == "run" else plot(a.path)


if __name__ == "__main__":
    main()
