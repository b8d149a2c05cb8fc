"""Issue 14 benchmark: ``prefpaint inpaint --manifest`` on 2 processes against 1, and the job machinery's overhead.

Run: .venv/bin/python benchmarks/bench_scale.py [--items 24] [--steps 10] [--repeats 3]

(a) Throughput: the same manifest through ``torchrun --nproc_per_node 2`` and ``--nproc_per_node 1``, one torch
    thread per process (OMP_NUM_THREADS=1), tiny random model. Two figures: the whole command's wall time
    (start-up and model load included), and the work phase (first item started to last item finished, from
    the per-item records). Target: ≥ 1.7x for 2 processes.
(b) Overhead: ``run_inpaint_job`` (manifest checks, shares, whole output sets with records, the merge) against
    the bare loop a user would write (call the Inpainter, ``result.save``), in one process on the same
    Inpainter and items, interleaved. Target: ≤ 1.05. A second, less noisy figure: the job's wall time over
    the summed per-item work time its records hold (item work = the Inpainter call and building the files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, machine  # noqa: E402

from prefpaint_sdk import Inpainter, run_inpaint_job  # noqa: E402
from prefpaint_sdk.testing import save_tiny_inpaint_pipeline  # noqa: E402


def _manifest(root: Path, n: int) -> Path:
    (root / "in").mkdir(parents=True)
    rng = np.random.default_rng(0)
    hole = np.zeros((96, 128), np.uint8)
    hole[24:72, 32:96] = 255
    Image.fromarray(hole).save(root / "in" / "mask.png")
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(root / "in" / f"i{i}.png")
        rows.append({"id": f"item{i:03d}", "image": f"in/i{i}.png", "mask": "in/mask.png", "seed": i})
    (root / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "jobs.jsonl"


def _launch(nproc: int, manifest: Path, out: Path, model: Path, steps: int, port: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
           "-m", "prefpaint_cli.main", "inpaint", "--manifest", str(manifest), "-o", str(out), "--model", str(model),
           "--steps", str(steps), "--device", "cpu", "--dtype", "float32", "--offline", "-q"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    wall0 = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    recs = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    start = min(r["finished_at"] - r["elapsed_s"] for r in recs)
    ranks = sorted({r["rank"] for r in recs})
    first = {k: min(r["finished_at"] - r["elapsed_s"] for r in recs if r["rank"] == k) for k in ranks}
    last = {k: max(r["finished_at"] for r in recs if r["rank"] == k) for k in ranks}
    return {"wall": wall, "work": max(r["finished_at"] for r in recs) - start,
            # Where the rest of the time goes: start-up before the first item, the item itself (CPU contention shows
            # here), the ranks' skew at the start and at the end, and the merge after the last item.
            "startup": start - wall0, "item": float(np.mean([r["elapsed_s"] for r in recs])),
            "start_skew": max(first.values()) - min(first.values()), "end_skew": max(last.values()) - min(last.values()),
            "after_last": wall0 + wall - max(last.values()), "share": [sum(r["rank"] == k for r in recs) for k in ranks],
            "load": (load + os.getloadavg()[0]) / 2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="a,b")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        model = save_tiny_inpaint_pipeline(tmp / "model", seed=0)
        manifest = _manifest(tmp / "data", args.items)
        print(f"machine: {machine()}; {args.items} items, tiny model, {args.steps} steps", flush=True)
        if "a" in args.only:
            runs: dict[int, list[dict]] = {1: [], 2: []}
            for rep in range(args.repeats):
                for n in (2, 1):
                    out = tmp / f"out-{n}-{rep}"
                    runs[n].append(_launch(n, manifest, out, model, args.steps, 29700 + 2 * rep + n))
                    shutil.rmtree(out)
            med = {n: {k: float(np.median([x[k] for x in v])) for k in ("wall", "work", "startup", "item", "start_skew",
                                                                         "end_skew", "after_last", "load")}
                   for n, v in runs.items()}
            print(f"load average (1 min) while measured: {min(x['load'] for v in runs.values() for x in v):.1f}-"
                  f"{max(x['load'] for v in runs.values() for x in v):.1f}; shares of 2 ranks: {runs[2][0]['share']}")
            print("| (a) 2 processes vs 1 | 1 process (s) | 2 processes (s) | speed-up | target |")
            print("|---|---|---|---|---|")
            print(f"| whole command (start-up and load included) | {med[1]['wall']:.2f} | {med[2]['wall']:.2f} | "
                  f"{med[1]['wall'] / med[2]['wall']:.2f}x | (info) |")
            print(f"| work phase (first item to last) | {med[1]['work']:.2f} | {med[2]['work']:.2f} | "
                  f"{med[1]['work'] / med[2]['work']:.2f}x | >= 1.7x |")
            print(f"| one item's own time (mean; CPU contention shows here) | {med[1]['item']:.3f} | {med[2]['item']:.3f} "
                  f"| {med[2]['item'] / med[1]['item']:.2f}x slower | (info) |")
            print(f"| start-up before the first item (imports, process group, load) | {med[1]['startup']:.2f} | "
                  f"{med[2]['startup']:.2f} | | (info) |")
            print(f"| ranks' skew at the first item / at the last | | {med[2]['start_skew']:.2f} / {med[2]['end_skew']:.2f} "
                  "| | (info) |")
            print(f"| after the last item (wait, merge, exit) | {med[1]['after_last']:.2f} | {med[2]['after_last']:.2f} | "
                  "| (info) |", flush=True)
        if "b" in args.only:
            inp = Inpainter.from_pretrained(model, device="cpu", dtype="float32")
            rows = [json.loads(x) for x in manifest.read_text().splitlines()]
            counter = {"n": 0}

            def bare():
                counter["n"] += 1
                out = tmp / f"bare-{counter['n']}"
                for r in rows:
                    res = inp(manifest.parent / r["image"], manifest.parent / r["mask"], seed=r["seed"], steps=args.steps)
                    res.save(out / f"{r['id']}.png")

            shares = []

            def job():
                counter["n"] += 1
                out = tmp / f"job-{counter['n']}"
                t0 = time.perf_counter()
                run_inpaint_job(manifest, out, inpainter=inp, defaults={"steps": args.steps})
                wall = time.perf_counter() - t0
                work = sum(json.loads(p.read_text())["elapsed_s"] for p in (out / "records").glob("*.json"))
                shares.append((wall - work) / work)

            t = compare({"job": job, "bare": bare}, repeats=args.repeats)
            print("| (b) overhead | ours (s) | bare loop (s) | ratio | target |")
            print("|---|---|---|---|---|")
            print(f"| run_inpaint_job vs Inpainter + result.save loop, {args.items} items | {t['job']:.3f} | "
                  f"{t['bare']:.3f} | {t['job'] / t['bare']:.3f} | <= 1.05 |")
            print(f"| machinery alone: run time outside the items' work (checks, records, publishing, merge) | "
                  f"| | {1 + float(np.median(shares)):.3f} | <= 1.05 |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
