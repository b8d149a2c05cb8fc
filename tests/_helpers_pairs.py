"""Rated datasets in the official PrefPaint layout for the DPO tests (and their hostile variants)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_rated(root: Path, n_prompts: int = 4, per_prompt: int = 3, size: int = 32, seed: int = 0) -> Path:
    """``labels.json`` ({"<imgid>_<k>": [score, rank]}), ``inpaint/``, ``masks_color/`` and ``masks/`` whose
    ranks follow a rule: the brighter the hole, the better (rank 1 = brightest), score 7 x brightness."""
    rng = np.random.default_rng(seed)
    for sub in ("inpaint", "masks_color", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    labels = {}
    for g in range(n_prompts):
        base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        hole = np.zeros((size, size), bool)
        hole[size // 4:3 * size // 4, size // 4 + g % 3:3 * size // 4] = True
        prompt = base.copy()
        prompt[hole] = 0
        Image.fromarray(prompt).save(root / "masks_color" / f"p{g}_mask_color.png")
        Image.fromarray(hole.astype(np.uint8) * 255).save(root / "masks" / f"p{g}_mask.png")
        levels = rng.uniform(0.1, 0.9, per_prompt)
        for k, b in enumerate(levels):
            img = base.copy()
            img[hole] = np.clip(255 * b + rng.normal(0, 10, (int(hole.sum()), 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "inpaint" / f"p{g}_{k}.png")
            labels[f"p{g}_{k}"] = [float(7 * b), int(1 + np.sum(levels > b))]
    (root / "labels.json").write_text(json.dumps(labels))
    return root


def write_hostile_rated(root: Path, kind: str) -> Path:
    """A rated dataset with one defect: "nan" (a NaN score), "single" (one inpainting per prompt), "tied" (all
    ranks equal), "missing" (a third of the inpaintings gone), "escape" (a pairs manifest naming '../')."""
    if kind == "escape":
        write_rated(root.parent / "outside", n_prompts=1)
        root.mkdir(parents=True, exist_ok=True)
        row = {"better": "../outside/inpaint/p0_0.png", "worse": "../outside/inpaint/p0_1.png",
               "mask": "../outside/masks/p0_mask.png"}
        (root / "manifest.jsonl").write_text(json.dumps(row) + "\n")
        return root
    write_rated(root, n_prompts=3, per_prompt=1 if kind == "single" else 3)
    labels = json.loads((root / "labels.json").read_text())
    if kind == "nan":
        labels["p1_2"] = [float("nan"), 3]
    elif kind == "tied":
        labels = {k: [v[0], 1] for k, v in labels.items()}
    elif kind == "missing":
        for g in range(3):
            (root / "inpaint" / f"p{g}_0.png").unlink()
    (root / "labels.json").write_text(json.dumps(labels))
    return root
