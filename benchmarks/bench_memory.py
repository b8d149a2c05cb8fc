"""Issue 10 §3: peak memory of inpainting a large image, before and after, each in its own subprocess.

Run: .venv/bin/python benchmarks/bench_memory.py [--size 12000] [--before-ref REF] [--candidates 1]

The parent writes the inputs once (a size x size RGB PNG and a full white mask PNG) and a tiny random
inpainting pipeline folder, then runs one child per code version. Each child imports ``prefpaint_sdk``
from its code folder, runs ``Inpainter(...)(image_path, mask_path)`` on the tiny model and saves the result
(as ``prefpaint inpaint`` does), and reports its peak resident set (``VmHWM``) and its resident set once
the model was loaded (the floor: Python, torch, diffusers and the model, before any image is read).

``--before-ref`` checks out a git ref into a temporary worktree (removed afterwards) and measures it
beside the working tree: the old code path, measured by the same script on the same inputs. Children run
one at a time, so the figures do not compete for memory.

The image bytes set the scale: a size² RGB image is 3·size² bytes as uint8 (432 MB at 12000²), and Pillow
holds RGB in 4 bytes per pixel (576 MB). The result is one more such image.
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

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0

import prefpaint_sdk
from prefpaint_sdk import Inpainter
if hasattr(prefpaint_sdk, "set_max_pixels"):
    prefpaint_sdk.set_max_pixels(None)
inp = Inpainter.from_pretrained(sys.argv[2], device="cpu", dtype="float32")
floor = status("VmRSS")
t0 = time.perf_counter()
res = inp(sys.argv[3], sys.argv[4], seed=0, steps=2, num_candidates=int(sys.argv[6]))
t1 = time.perf_counter()
res.image.save(sys.argv[5], compress_level=1)
t2 = time.perf_counter()
print(json.dumps(dict(code=prefpaint_sdk.__file__, floor=floor, peak=status("VmHWM"), call_s=t1 - t0,
                      save_s=t2 - t1, size=list(res.image.size))))
"""


def _inputs(folder: Path, size: int) -> tuple[Path, Path]:
    """A size² RGB PNG (smooth gradient plus texture: real content, quick to encode) and a full white mask."""
    import numpy as np
    from PIL import Image

    img_path, mask_path = folder / f"image_{size}.png", folder / f"mask_{size}.png"
    if not img_path.exists():
        y = np.arange(size, dtype=np.uint32)[:, None]
        x = np.arange(size, dtype=np.uint32)[None, :]
        rgb = np.empty((size, size, 3), np.uint8)
        rgb[..., 0] = (x * 255 // max(size - 1, 1)).astype(np.uint8)
        rgb[..., 1] = (y * 255 // max(size - 1, 1)).astype(np.uint8)
        rgb[..., 2] = ((x * 7 + y * 13) % 256).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(img_path, compress_level=1)
        del rgb
    if not mask_path.exists():
        Image.new("L", (size, size), 255).save(mask_path, compress_level=1)
    return img_path, mask_path


def _measure(code: Path, model: Path, img: Path, mask: Path, out: Path, candidates: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), HF_HUB_OFFLINE="1", PYTHONNOUSERSITE="1")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(code), str(model), str(img), str(mask), str(out),
                           str(candidates)], env=env, capture_output=True, text=True, cwd=str(code))
    if proc.returncode != 0:
        raise SystemExit(f"child for {code} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t0
    if not str(row["code"]).startswith(str(code)):
        raise SystemExit(f"child imported {row['code']}, not the code under {code}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=12000)
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--before-ref", default=None, help="git ref of the old code, measured in a temporary worktree")
    ap.add_argument("--only", choices=["before", "after", "both"], default="both")
    ap.add_argument("--work", default=None, help="folder for inputs and the tiny model (kept; default: temporary)")
    args = ap.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    model = work / "tiny-inpaint"
    if not (model / "model_index.json").exists():
        save_tiny_inpaint_pipeline(model, seed=0)
    img, mask = _inputs(work, args.size)
    image_mb = args.size * args.size * 3 / 1e6

    runs: list[tuple[str, Path]] = []
    worktree = None
    try:
        if args.before_ref and args.only in ("before", "both"):
            worktree = Path(tempfile.mkdtemp(prefix="bench_memory_before_")) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before_ref],
                           check=True, capture_output=True)
            runs.append((f"before ({args.before_ref})", worktree))
        if args.only in ("after", "both"):
            runs.append(("after (working tree)", ROOT))
        rows = []
        for name, code in runs:
            r = _measure(code, model, img, mask, work / "out.png", args.candidates)
            rows.append((name, r))
            print(f"  done: {name}: peak {r['peak'] / 2**30:.2f} GiB", file=sys.stderr, flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)
            shutil.rmtree(worktree.parent, ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    import platform

    import PIL
    import torch

    print(f"\n{args.size}x{args.size} RGB PNG ({image_mb:.0f} MB as uint8), full white mask, tiny model, 2 DDIM steps,"
          f" {args.candidates} candidate(s), result saved as PNG")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"torch {torch.__version__}, Pillow {PIL.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| code | peak RSS (GiB) | RSS after model load (GiB) | peak − floor (GiB) | (peak − floor) / image bytes | call (s) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        growth = r["peak"] - r["floor"]
        print(f"| {name} | {r['peak'] / 2**30:.2f} | {r['floor'] / 2**30:.2f} | {growth / 2**30:.2f} | "
              f"{growth / (image_mb * 1e6):.1f}x | {r['call_s']:.1f} |")
    if len(rows) == 2:
        print(f"\nratio after/before peak: {rows[1][1]['peak'] / rows[0][1]['peak']:.3f}")


if __name__ == "__main__":
    main()
