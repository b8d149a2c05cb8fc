"""Compare two inpainting models by the PrefPaint WinRate protocol and write a visual report.

    python examples/evaluate.py --tiny                          # offline: tiny random models built into out/tiny-models/
    python examples/evaluate.py --data DIR                      # PrefPaint vs base SD-inpainting on your data (downloads once)
    python examples/evaluate.py --data DIR --model my-finetune --baseline kd5678/prefpaint-v1.0

For each (image, mask) the model draws max(S) samples and the baseline one; the reward model scores them
all; the model wins a case when its best-of-S reward beats the baseline's (a tie counts half). Running it
again on the same --out resumes from the cache. Writes out/eval/: results.json/.csv, report.html and
contact_sheet.png.
(The same as ``prefpaint eval --data DIR -o OUT``.)
"""

import argparse
from pathlib import Path

from prefpaint_sdk import BASE_MODEL, DEFAULT_MODEL, DEFAULT_REWARD_MODEL, EvalCase, Inpainter, RewardModel, evaluate

HERE = Path(__file__).parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", type=Path, help="data folder: images/ (+ masks/) or manifest.jsonl")
parser.add_argument("--model", default=DEFAULT_MODEL)
parser.add_argument("--baseline", default=BASE_MODEL)
parser.add_argument("--reward-model", default=DEFAULT_REWARD_MODEL)
parser.add_argument("--tiny", action="store_true", help="use tiny random models built offline into out/tiny-models/")
parser.add_argument("--samples", type=int, nargs="+", default=[1, 3, 10])
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", type=Path, default=Path("out") / "eval")
args = parser.parse_args()

if args.tiny:
    from _tiny import tiny_pipeline, tiny_reward  # examples/_tiny.py: the offline demo's models

    # Built once and reused, so a second run on the same --out resumes from the cache.
    args.model, args.baseline, args.reward_model = tiny_pipeline("inpaint", 0), tiny_pipeline("baseline", 1), tiny_reward()
    args.steps = min(args.steps, 4)
    args.samples = [s for s in args.samples if s <= 3] or [1]

if args.data is not None:
    cases = args.data
else:
    # The bundled astronaut with its own mask, and twice more with generated masks (mask=None).
    image = HERE / "data" / "astronaut.jpg"
    cases = [EvalCase("astronaut", image, HERE / "data" / "astronaut_mask.png"),
             EvalCase("astronaut_a", image), EvalCase("astronaut_b", image)]

model = Inpainter.from_pretrained(args.model)
baseline = Inpainter.from_pretrained(args.baseline)
reward_model = RewardModel.from_pretrained(args.reward_model)
report = evaluate(model, baseline, reward_model, cases, samples=args.samples, out_dir=args.out, steps=args.steps,
                  seed=args.seed, progress=lambda done, total, name: print(f"[{done}/{total}] {name}"))
print(report.summary())
print(f"open {args.out / 'report.html'} (and see {args.out / 'contact_sheet.png'})")
