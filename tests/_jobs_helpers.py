"""Shared helpers of the manifest-job tests: a small manifest of images and one mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_manifest(root: Path, n: int = 6, *, extra_rows: list[dict] | None = None, size=(64, 48)) -> Path:
    """``root/jobs.jsonl`` with ``n`` rows ``item00..`` (random images, one shared mask, seeds 0..n-1)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "in").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    hole = np.zeros((h, w), np.uint8)
    hole[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
    Image.fromarray(hole).save(root / "in" / "mask.png")
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "in" / f"i{i}.png")
        rows.append({"id": f"item{i:02d}", "image": f"in/i{i}.png", "mask": "in/mask.png", "seed": i})
    rows += extra_rows or []
    path = root / "jobs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
