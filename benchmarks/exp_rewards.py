"""Does a reward stack defend against reward hacking? Evidence for RESULTS.md (issue 22 §4).

The hacking setup of ``exp_learning.py hacking``, with its reward definitions and images (box holes near a
corner instead of its outpainting masks, so that ``outside-change`` has pixels to score): the policy is trained on an
exploitable **proxy** = hole brightness + w x hole saturation; the **gold** reward (what we want) is hole
brightness on the held-out pairs. Three arms, on the tiny SD (PPO) and FLUX Fill (GRPO) fixtures, seeds 0-2:

* ``proxy``: the proxy alone (one reward: exactly the pre-stack path);
* ``gdpo``: the stack proxy + ``outside-change`` + ``seam``, weights 1, normalised by GDPO (the default);
* ``sum``: the same stack, raw weighted sum (``--reward-norm sum``).

Each arm with **gold early stopping**: every run is trained with ``on_hacking='warn'`` and the gold judge,
and the guard's stop is replayed on its evaluation rows with the same :class:`HackingMonitor` (patience 3,
``hacking_min_drop`` = 2 x the gold's seed noise). The guard changes nothing in a run before it stops, and
runs are deterministic, so the replay gives the iteration a ``stop`` run would have ended at and the gold
mean of the best weights it would have kept, without training every arm twice.

    python benchmarks/exp_rewards.py --out benchmarks/results            # run, write JSON and the plot
    python benchmarks/exp_rewards.py plot benchmarks/results             # the plot again
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from exp_learning import _hole_features  # the hacking experiment's reward features

PIPE_SEED = 2
ARMS = {"proxy": None, "gdpo": "gdpo", "sum": "sum"}
FAMILY_ALGO = {"sd": "ppo", "flux-fill": "grpo"}


def _data(root: Path, n: int = 16, size: int = 64) -> Path:
    """exp_learning's 16 random images, with box holes near a corner: ``outside-change`` scores the pixels
    beyond 9 px of the hole, and at the 32 px working size a centred or outpainting hole leaves none (NaN)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i:02d}.png")
        m = np.zeros((size, size), np.uint8)
        s, y, x = int(rng.integers(16, 25)), int(rng.integers(2, 8)), int(rng.integers(2, 8))
        m[y:y + s, x:x + s] = 255
        Image.fromarray(m, "L").save(root / "masks" / f"{i:02d}.png")
    return root


def _config(args, family: str, seed: int):
    from prefpaint_sdk.align.config import load_config

    over = dict(seed=seed, iterations=args.iterations, eval_every=args.eval_every, save_every=0, log_with="none",
                eval_size=4, eval_samples=2, on_hacking="warn", prompts_per_iter=args.prompts,
                samples_per_prompt=4, rollout_batch_size=4 * args.prompts, train_batch_size=4 * args.prompts)
    if family == "flux-fill":
        over.update(num_steps=2)
    return load_config("cpu-smoke", overrides=over, family=family)


def _rewards(w: float):
    def gold(images, masks, masked=None):
        return _hole_features(images, masks)[:, 0]

    def proxy(images, masks, masked=None):
        f = _hole_features(images, masks)
        return f[:, 0] + w * f[:, 1]

    return gold, proxy


def _gold_noise(al, gold) -> float:
    """Std of the starting model's held-out gold mean over 4 sets of sampling seeds."""
    items = [al.eval_set.get(i, mask_seed=1000 + i) for i in al.eval_indices]
    means = []
    for rep in range(4):
        seeds = [10_000 * (rep + 1) + k for k in range(len(items) * 2)]
        _, images, masks = al._sample(items, seeds, 2)
        means.append(float(gold(images, masks[:, 0]).mean()))
    return float(np.std(means))


def _replay_stop(evals: list[dict], min_drop: float, patience: int = 3) -> dict:
    """Where ``on_hacking='stop'`` would have ended the run, and the best-by-gold evaluation it would have kept."""
    from prefpaint_sdk.align.guards import HackingMonitor

    mon = HackingMonitor(patience, min_drop)
    best = None
    for e in evals:
        mon.update(e["proxy_mean"], e["gold_mean"])
        if best is None or e["gold_mean"] > best["gold_mean"]:
            best = e
        if mon.hacking:
            return {"stopped_at": e["iteration"], "best_iteration": best["iteration"], "gold_kept": best["gold_mean"]}
    last = evals[-1]
    return {"stopped_at": None, "best_iteration": last["iteration"], "gold_kept": last["gold_mean"]}


def run(args) -> dict:
    import torch

    from prefpaint_sdk.align.trainer import Aligner
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="exp_rewards_"))
    data = _data(work / "data")
    gold, proxy = _rewards(args.w)
    out = {"w": args.w, "iterations": args.iterations, "eval_every": args.eval_every, "prompts": args.prompts,
           "families": {}}
    t_all = time.perf_counter()
    for family in args.families:
        probe = Aligner(tiny_inpaint_pipeline(PIPE_SEED, family=family), proxy, _config(args, family, 0), data,
                        work / f"{family}_probe", device="cpu", gold_reward=gold)
        noise = _gold_noise(probe, gold)
        runs = []
        for seed in args.seeds:
            for arm, norm in ARMS.items():
                reward = proxy if norm is None else [proxy, "outside-change", "seam"]
                al = Aligner(tiny_inpaint_pipeline(PIPE_SEED, family=family), reward, _config(args, family, seed), data,
                             work / f"{family}_{arm}_{seed}", device="cpu", gold_reward=gold, reward_norm=norm)
                t0 = time.perf_counter()
                res = al.train()
                # the exploitable proxy's own held-out mean (the stack's proxy_mean averages it with the constraints)
                evals = [{"iteration": e["iteration"], "proxy_mean": e["proxy_mean"], "gold_mean": e["gold_mean"],
                          "proxy_term": e.get("reward/proxy", e["proxy_mean"]), "seam": e.get("reward/seam"),
                          "diff_saturation": e.get("diff_saturation")} for e in res.evals]
                shares = {k: float(np.mean([h[k] for h in res.history])) for k in res.history[-1] if k.endswith("/share")}
                r = dict(seed=seed, arm=arm, algo=al.algo, evals=evals, wall_s=time.perf_counter() - t0, shares=shares,
                         **_replay_stop(evals, 2 * noise))
                runs.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "evals"}), flush=True)
        out["families"][family] = {"gold_seed_noise": noise, "algo": FAMILY_ALGO[family], "runs": runs}
    out["wall_s"] = time.perf_counter() - t_all
    return out


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # benchmarks only; the toolkit does not depend on it
        raise SystemExit("plotting needs matplotlib: pip install matplotlib") from exc
    fams = list(result["families"])
    fig, axes = plt.subplots(len(fams), 2, figsize=(11, 3.8 * len(fams)), squeeze=False)
    colours = {"proxy": "tab:red", "gdpo": "tab:blue", "sum": "tab:green"}
    for row, fam in enumerate(fams):
        fr = result["families"][fam]
        for r in fr["runs"]:
            it = [e["iteration"] for e in r["evals"]]
            g0, p0 = r["evals"][0]["gold_mean"], r["evals"][0]["proxy_term"]
            kw = dict(color=colours[r["arm"]], alpha=0.75, lw=1.2, label=r["arm"] if r["seed"] == 0 else None)
            axes[row][0].plot(it, [e["proxy_term"] - p0 for e in r["evals"]], **kw)
            axes[row][1].plot(it, [(e["gold_mean"] - g0) / fr["gold_seed_noise"] for e in r["evals"]], **kw)
            if r["stopped_at"] is not None:
                axes[row][1].scatter([r["stopped_at"]], [(r["evals"][it.index(r["stopped_at"])]["gold_mean"] - g0)
                                                         / fr["gold_seed_noise"]], color=colours[r["arm"]], marker="x")
        axes[row][0].set_title(f"{fam} ({fr['algo']}): proxy = brightness + {result['w']:g} x saturation, change")
        axes[row][1].set_title(f"{fam}: gold = brightness, change / seed noise (x: guard stop)")
        axes[row][1].axhline(0, color="grey", lw=0.6)
        for ax in axes[row]:
            ax.set_xlabel("iteration")
        axes[row][1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="run", choices=["run", "plot"])
    ap.add_argument("folder", nargs="?", type=Path, help="plot: the folder holding exp_rewards.json")
    ap.add_argument("--families", nargs="+", default=["sd", "flux-fill"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=16)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per iteration (4 samples each)")
    ap.add_argument("--w", type=float, default=2.0, help="weight of saturation in the proxy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args()
    folder = args.folder or args.out
    if args.what == "run":
        result = run(args)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exp_rewards.json").write_text(json.dumps(result, indent=1))
        print(f"wrote {folder / 'exp_rewards.json'} in {result['wall_s']:.0f} s")
    plot(json.loads((folder / "exp_rewards.json").read_text()), folder.parent / "exp_rewards.png")


if __name__ == "__main__":
    main()
