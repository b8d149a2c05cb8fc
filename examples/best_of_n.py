"""Best-of-N inpainting: sample N candidates, score each with the reward model, keep the best.

    python examples/best_of_n.py --tiny               # offline: tiny random models built into out/tiny-models/
    python examples/best_of_n.py                      # kd5678/prefpaint-v1.0 + kd5678/prefpaintReward (downloads once)
    python examples/best_of_n.py --select lcb         # trust-aware: the highest score - c * bound

The N candidates share one masked prompt image, which the reward model encodes once (N + 1 backbone passes).
Writes out/best_of_n/best_of_n.png (the pick), its sidecar .json (scores, bounds, seeds) and every candidate;
a second run replaces them.
"""

import argparse
from pathlib import Path

from prefpaint_sdk import DEFAULT_MODEL, DEFAULT_REWARD_MODEL, Inpainter

HERE = Path(__file__).parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--reward-model", default=DEFAULT_REWARD_MODEL)
parser.add_argument("--tiny", action="store_true", help="use tiny random models built offline into out/tiny-models/")
parser.add_argument("-n", "--candidates", type=int, default=4)
parser.add_argument("--select", choices=("reward", "lcb"), default="reward")
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", type=Path, default=Path("out") / "best_of_n")
args = parser.parse_args()

if args.tiny:
    from _tiny import tiny_pipeline, tiny_reward  # examples/_tiny.py: the offline demo's models

    args.model, args.reward_model, args.steps = tiny_pipeline(), tiny_reward(), min(args.steps, 4)

inpainter = Inpainter.from_pretrained(args.model, reward_model=args.reward_model, select=args.select)
result = inpainter(HERE / "data" / "astronaut.jpg", HERE / "data" / "astronaut_mask.png", seed=args.seed,
                   num_candidates=args.candidates, steps=args.steps)
for k, (seed, score) in enumerate(zip(result.seeds, result.scores)):
    bound = f", bound {result.bounds[k]:.3f}" if result.bounds else ""
    mark = "  <- picked" if k == result.best_index else ""
    print(f"candidate {k} (seed {seed}): score {score:.4f}{bound}{mark}")
written = result.save(args.out / "best_of_n.png", overwrite=True, save_all=True)  # one whole set, atomically
print(f"wrote {', '.join(map(str, written))}")
