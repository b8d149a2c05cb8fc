"""Score a folder of inpaintings with the PrefPaint reward model: score, error bound and trust per image.

    python examples/score_folder.py --tiny                         # offline: generated images, a tiny random model
    python examples/score_folder.py IMAGES/ MASK.png               # one mask for every image
    python examples/score_folder.py IMAGES/ MASKS/ --csv scores.csv  # masks paired by file stem

The bound grows for images unlike the reward model's training data; the trust weight shrinks with it.
Writes out/score_folder/scores.csv (--tiny also writes its generated images and mask there); a second run
replaces it. (The same as ``prefpaint score IMAGES/ MASKS/ -o scores.csv``.)
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from prefpaint_sdk import DEFAULT_REWARD_MODEL, RewardModel
from prefpaint_sdk.utils import atomic_path, pair_inputs

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("images", nargs="?", type=Path)
parser.add_argument("masks", nargs="?", type=Path)
parser.add_argument("--reward-model", default=DEFAULT_REWARD_MODEL)
parser.add_argument("--tiny", action="store_true", help="generate a few images and use a tiny random model, offline")
parser.add_argument("--out", type=Path, default=Path("out") / "score_folder")
parser.add_argument("--csv", type=Path, help="where to write the scores (default: OUT/scores.csv)")
args = parser.parse_args()

if args.tiny:
    from _tiny import tiny_reward  # examples/_tiny.py: the offline demo's model

    args.reward_model = tiny_reward()
    args.images, args.masks = args.out / "images", args.out / "mask.png"
    args.images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(args.images / f"img{i}.png")
    hole = np.zeros((96, 96), np.uint8)
    hole[24:72, 24:72] = 255
    Image.fromarray(hole).save(args.masks)
elif args.images is None or args.masks is None:
    parser.error("pass IMAGES and MASKS, or --tiny")

args.csv = args.csv or args.out / "scores.csv"
pairs, warnings = pair_inputs(args.images, args.masks)
for w in warnings:
    print("warning:", w)
model = RewardModel.from_pretrained(args.reward_model)
out = model.score([p.image for p in pairs], masks=[p.mask for p in pairs])  # batched
args.csv.parent.mkdir(parents=True, exist_ok=True)
with atomic_path(args.csv, overwrite=True) as tmp, open(tmp, "w", newline="") as f:  # whole file or none
    writer = csv.DictWriter(f, fieldnames=["image", "score", "bound", "trust"])
    writer.writeheader()
    for pair, rec in zip(pairs, out.to_records()):
        writer.writerow({"image": pair.image.name, **rec})
        bound = "n/a" if rec["bound"] is None else f"{rec['bound']:.3f}"
        trust = "n/a" if rec["trust"] is None else f"{rec['trust']:.3f}"
        print(f"{pair.image.name:>20}  score {rec['score']:+.4f}  bound {bound}  trust {trust}")
print(f"wrote {args.csv}")
