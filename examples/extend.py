"""Extend an image outward (widen the field of view) with PrefPaint, step by step.

This script runs anywhere, offline: it builds a tiny *random* inpainting model once into out/tiny-models/,
so its output is noise-like, but every step runs exactly as with the real model. It writes
out/extend/photo_wide.png and photo_wide.json (the plan, seeds and scores); a second run replaces them.

    python examples/extend.py                        # or: --out OTHER_FOLDER

With the real model (a GPU is advised; the weights download once from the Hugging Face hub):

    from prefpaint_sdk import Inpainter
    inpainter = Inpainter.from_pretrained()                       # kd5678/prefpaint-v1.0
    result = extend(inpainter, "photo.jpg", ratio_x=2.0, seed=0)  # twice as wide
    result.save("photo_wide.png")                                 # + photo_wide.json

or on the command line:

    prefpaint extend photo.jpg -o photo_wide.png --ratio-x 2 --seed 0
    prefpaint extend photo.jpg --ratio 2 --dry-run                # print the step plan only
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from prefpaint_apps.outpaint import extend, plan_extension

from prefpaint_sdk import Inpainter


def main(out_dir: Path) -> None:
    # A small synthetic "photo": a sky-to-ground gradient with a sun, 96x64 px.
    h, w = 64, 96
    y, x = np.mgrid[0:h, 0:w]
    sky = np.stack([120 + y, 160 + y // 2, 230 - y], -1)
    sky[(x - 60) ** 2 + (y - 20) ** 2 < 80] = (250, 220, 120)
    photo = Image.fromarray(sky.clip(0, 255).astype(np.uint8))

    # The plan alone needs no model: how many steps, and how much each must invent.
    plan = plan_extension(photo.size, ratio_x=2.0, window=64)
    print(f"plan: {plan.image_size} -> {plan.canvas_size} in {plan.num_steps} steps, "
          f"at most {plan.max_new_fraction:.0%} new pixels per window")

    from _tiny import tiny_pipeline  # examples/_tiny.py: only for this offline demo

    inpainter = Inpainter.from_pretrained(tiny_pipeline(), device="cpu")  # the real one: Inpainter.from_pretrained()

    result = extend(
        inpainter, photo,
        ratio_x=2.0,            # twice as wide, same height; or ratio=2.0 for both sides, or left=/right=/...
        anchor="center",        # where the original sits
        step_frac=0.3,          # each step invents at most 30% of what the model sees
        seed=0,                 # every step's seed derives from it: the run is reproducible
        steps=4,                # DDIM steps per call; use the default 50 with the real model
        progress=lambda done, total: print(f"  step {done}/{total}"),
    )
    image_path, json_path = result.save(out_dir / "photo_wide.png", overwrite=True)
    # The original sits unchanged (outside a thin feather band) at plan.image_box.
    print(f"wrote {image_path} {result.image.size} and {json_path} (plan, seeds, scores)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out") / "extend", help="output folder (default out/extend)")
    main(parser.parse_args().out)
