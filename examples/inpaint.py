"""Inpaint the bundled sample with the PrefPaint model, from Python.

    python examples/inpaint.py                        # kd5678/prefpaint-v1.0 (downloads once)
    python examples/inpaint.py --tiny                 # offline: a tiny random model (checks the plumbing, not quality)
    python examples/inpaint.py --model base           # the base SD-inpainting model, to compare
    python examples/inpaint.py --model ./my-pipeline  # any local diffusers inpainting folder

Writes out/inpaint/inpaint.png, its sidecar inpaint.json and every candidate; a second run replaces them.
"""

import argparse
from pathlib import Path

from prefpaint_sdk import DEFAULT_MODEL, Inpainter

HERE = Path(__file__).parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--tiny", action="store_true", help="use a tiny random model built offline into out/tiny-models/")
parser.add_argument("--out", type=Path, default=Path("out") / "inpaint")
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("-n", "--candidates", type=int, default=2)
args = parser.parse_args()

if args.tiny:
    from _tiny import tiny_pipeline  # examples/_tiny.py: the offline demo's models

    args.model, args.steps = tiny_pipeline(), min(args.steps, 4)

inpainter = Inpainter.from_pretrained(args.model)  # device and dtype "auto": cuda/fp16 when available
result = inpainter(
    HERE / "data" / "astronaut.jpg",
    HERE / "data" / "astronaut_mask.png",  # 3-channel 0/255 mask, white = fill
    seed=args.seed,
    num_candidates=args.candidates,        # candidate k uses seed + k
    steps=args.steps,
)
written = result.save(args.out / "inpaint.png", overwrite=True, save_all=True)  # one whole set, atomically
print(f"seeds {result.seeds}, {result.timings['total_s']:.1f} s; wrote {', '.join(map(str, written))}")
