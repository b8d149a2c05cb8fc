"""Inpaint the bundled sample with the PrefPaint model, from Python.

    python examples/inpaint.py                        # kd5678/prefpaint-v1.0 (downloads once)
    python examples/inpaint.py --model base           # the base SD-inpainting model, to compare
    python examples/inpaint.py --model ./my-pipeline  # any local diffusers inpainting folder

Writes out/inpaint.png, its sidecar out/inpaint.json, and every candidate.
"""

import argparse
from pathlib import Path

from prefpaint_sdk import DEFAULT_MODEL, Inpainter

HERE = Path(__file__).parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--out", type=Path, default=Path("out"))
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("-n", "--candidates", type=int, default=2)
args = parser.parse_args()

inpainter = Inpainter.from_pretrained(args.model)  # device and dtype "auto": cuda/fp16 when available
result = inpainter(
    HERE / "data" / "astronaut.jpg",
    HERE / "data" / "astronaut_mask.png",  # 3-channel 0/255 mask, white = fill
    seed=args.seed,
    num_candidates=args.candidates,        # candidate k uses seed + k
    steps=args.steps,
)
args.out.mkdir(parents=True, exist_ok=True)
written = result.save(args.out / "inpaint.png", overwrite=True, save_all=True)
print(f"seeds {result.seeds}, {result.timings['total_s']:.1f} s; wrote {', '.join(written)}")
