"""Does alignment learn, for every family, and what does reward hacking look like? Evidence for RESULTS.md.

Two experiments, both on random-weight pipelines of ``prefpaint_sdk.testing`` (no weights exist here):

* ``curves``: the held-out reward against the iteration, with the brightness-in-hole reward, for SD (PPO),
  SDXL (PPO or GRPO) and FLUX Fill (GRPO). The held-out set, its masks and its sampling seeds are fixed, so the
  curve is paired. Seed noise is how much the starting model's held-out mean moves when only the sampling
  seeds change (4 seed sets); the figure of merit is (end - start) / seed noise (target >= 10).
* ``hacking``: proxy = brightness + w * saturation (what the policy is trained on), gold = brightness (what we
  want, on held-out data). Runs with and without the trust weight (its bound grows with the Mahalanobis distance
  of the hole's (brightness, saturation, colourfulness) from the starting model's samples, i.e. V fitted on
  the proxy's in-distribution embeddings) and with and without the guard (``on_hacking=stop``).

Each run writes one JSON file; ``plot`` draws the PNGs next to RESULTS.md.

    python benchmarks/exp_learning.py curves --family sd --iterations 100 --out benchmarks/results
    python benchmarks/exp_learning.py hacking --iterations 60 --out benchmarks/results
    python benchmarks/exp_learning.py plot benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

PIPE_SEED = 2


def _data(root: Path, n: int = 16, size: int = 64) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i:02d}.png")
    return root


def _config(args, seed: int, **extra):
    from prefpaint_sdk.align.config import load_config

    over = dict(seed=seed, iterations=args.iterations, eval_every=args.eval_every, save_every=0, log_with="none",
                eval_size=4, eval_samples=2, **extra)
    if args.algo:
        over["algo"] = args.algo
    for kv in args.set or []:
        k, v = kv.split("=", 1)
        try:
            over[k] = json.loads(v)
        except ValueError:  # a bare string
            over[k] = v
    return load_config(args.preset, overrides=over, family=args.family)  # the preset as the CLI resolves it


def _pipeline(args):
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    return tiny_inpaint_pipeline(PIPE_SEED, size=args.size, family=args.family)


def _seed_noise(al, reward_fn=None) -> float:
    """Std of the starting model's held-out mean reward over 4 sets of sampling seeds."""
    items = [al.eval_set.get(i, mask_seed=1000 + i) for i in al.eval_indices]
    means = []
    for rep in range(4):
        seeds = [10_000 * (rep + 1) + k for k in range(len(items) * 2)]
        _, images, masks = al._sample(items, seeds, 2)
        scores = al._score(images, masks).scores if reward_fn is None else reward_fn(images, masks[:, 0])
        means.append(float(np.nanmean(np.asarray(scores, dtype=float))))
    return float(np.std(means))


def curves(args) -> dict:
    import torch

    from prefpaint_sdk.align.trainer import Aligner

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="exp_learning_"))
    data = _data(work / "data")
    al = Aligner(_pipeline(args), "brightness", _config(args, 0), data, work / "noise", device="cpu")
    noise = _seed_noise(al)
    runs = []
    for seed in args.seeds:
        al = Aligner(_pipeline(args), "brightness", _config(args, seed), data, work / f"s{seed}", device="cpu")
        t0 = time.perf_counter()
        res = al.train()
        wall = time.perf_counter() - t0
        curve = [(e["iteration"], e["mean_reward"]) for e in res.evals]
        per_iter = [h["s_per_iter"] for h in res.history]
        gain = curve[-1][1] - curve[0][1]
        runs.append(dict(seed=seed, curve=curve, gain=gain, gain_over_noise=gain / noise if noise > 0 else float("inf"),
                         s_per_iter_median=float(np.median(per_iter)), wall_s=wall,
                         algo=al.algo))
        print(json.dumps(runs[-1]), flush=True)
    return dict(experiment="curves", family=args.family, size=args.size, preset=args.preset, seed_noise=noise,
                iterations=args.iterations, runs=runs)


# --- reward hacking -----------------------------------------------------------------------------------
def _hole_features(images, masks):
    """(brightness, saturation, colourfulness) of each image's hole; images (N, 3, H, W) in [0, 1]."""
    import torch

    m = masks.float()
    area = m.sum((1, 2)).clamp(min=1)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (images * w).sum(1)
    mx, mn = images.max(1).values, images.min(1).values
    sat = (mx - mn) / mx.clamp(min=1e-6)
    rg = images[:, 0] - images[:, 1]
    yb = 0.5 * (images[:, 0] + images[:, 1]) - images[:, 2]

    def mean(x):
        return (x * m).sum((1, 2)) / area

    def std(x):
        return (((x - mean(x).view(-1, 1, 1)) ** 2 * m).sum((1, 2)) / area).sqrt()

    colour = (std(rg) ** 2 + std(yb) ** 2).sqrt() + 0.3 * (mean(rg) ** 2 + mean(yb) ** 2).sqrt()
    return torch.stack([mean(luma), mean(sat), colour], 1)


def hacking(args) -> dict:
    import torch

    from prefpaint_sdk.align.trainer import Aligner

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="exp_hacking_"))
    data = _data(work / "data")

    def gold(images, masks, masked=None):
        return _hole_features(images, masks)[:, 0]

    def plain_proxy(images, masks, masked=None):
        f = _hole_features(images, masks)
        return f[:, 0] + args.w * f[:, 1]

    probe = Aligner(_pipeline(args), plain_proxy, _config(args, 0), data, work / "probe", device="cpu")
    items = [probe.data.get(i) for i in range(8)]
    _, imgs, masks = probe._sample(items, list(range(900, 900 + 32)), 4)
    z0 = _hole_features(imgs, masks[:, 0])
    mu0, prec = z0.mean(0), torch.linalg.inv(torch.cov(z0.T) + 1e-6 * torch.eye(3))

    def proxy_with_bound(images, masks, masked=None):
        f = _hole_features(images, masks)
        d = f - mu0
        dist = torch.sqrt(torch.einsum("ni,ij,nj->n", d, prec, d))
        return f[:, 0] + args.w * f[:, 1], 7.0 * dist  # the bound grows off the proxy's training distribution

    noise_gold = _seed_noise(probe, gold)
    runs = []
    for use_trust in (True, False):
        for guard in ("none", "stop"):
            extra = dict(use_trust=use_trust)
            kw = {}
            if guard == "stop":
                extra["on_hacking"] = "stop"
            kw["gold_reward"] = gold
            cfg = _config(args, args.seeds[0], **extra)
            al = Aligner(_pipeline(args), proxy_with_bound, cfg, data, work / f"t{use_trust}_{guard}", device="cpu", **kw)
            t0 = time.perf_counter()
            res = al.train()
            runs.append(dict(use_trust=use_trust, guard=guard, evals=res.evals, wall_s=time.perf_counter() - t0,
                             stopped_reason=getattr(res, "stopped_reason", None), iterations_done=res.iterations_done))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "evals"}), flush=True)
    return dict(experiment="hacking", family=args.family, size=args.size, w=args.w, gold_seed_noise=noise_gold, seed=args.seeds[0],
                iterations=args.iterations, runs=runs)


# --- plots --------------------------------------------------------------------------------------------
def plot(folder: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # benchmarks only; the toolkit does not depend on it
        raise SystemExit("plotting needs matplotlib: pip install matplotlib") from exc
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    curves_ = [r for r in results if r["experiment"] == "curves"]
    if curves_:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in curves_:
            for run in r["runs"]:
                it, v = zip(*run["curve"])
                base = v[0]
                ax.plot(it, [(x - base) / r["seed_noise"] for x in v],
                        label=f"{r['family']} {run['algo']} seed {run['seed']}" + (f" ({r['note']})" if r.get("note") else ""))
        ax.axhline(10, ls="--", c="grey", lw=0.8)
        ax.set_xlabel("iteration")
        ax.set_ylabel("held-out reward gain / seed noise")
        ax.set_title("Learning curves, brightness-in-hole reward (random-weight pipelines)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder.parent / "exp_learning_curves.png", dpi=110)
    hack = [r for r in results if r["experiment"] == "hacking"]
    for r in hack:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for run in r["runs"]:
            label = f"trust {'on' if run['use_trust'] else 'off'}, guard {'stop' if run['guard'] == 'stop' else 'warn'}"
            it = [e["iteration"] for e in run["evals"]]
            axes[0].plot(it, [e["mean_reward"] for e in run["evals"]], label=label)
            axes[1].plot(it, [e.get("gold_mean", float("nan")) for e in run["evals"]], label=label)
        axes[0].set_title(f"proxy = brightness + {r['w']} x saturation")
        axes[1].set_title("gold = brightness (held-out)")
        for ax in axes:
            ax.set_xlabel("iteration")
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder.parent / f"exp_learning_hacking_s{r.get('seed', 0)}.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=["curves", "hacking", "plot"])
    ap.add_argument("folder", nargs="?", type=Path, help="plot: the folder of result JSON files")
    ap.add_argument("--family", default="sd", choices=["sd", "sdxl", "flux-fill"])
    ap.add_argument("--algo", default=None, help="ppo or grpo (default: the family's)")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--preset", default="cpu-smoke")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--w", type=float, default=1.0, help="hacking: weight of saturation in the proxy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", help="config override name=value (JSON values)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    if args.experiment == "plot":
        plot(args.folder or args.out)
        return
    result = curves(args) if args.experiment == "curves" else hacking(args)
    args.out.mkdir(parents=True, exist_ok=True)
    algo = result["runs"][0].get("algo", args.algo or "default")
    name = f"{args.experiment}_{args.family}_{algo}_s{'-'.join(map(str, args.seeds))}.json"
    (args.out / name).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
