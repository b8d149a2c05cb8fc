"""Tiny random models for the examples' ``--tiny`` mode, built once, offline, into ``out/tiny-models/``.

They are the real models' classes, saved and loaded through the same ``from_pretrained`` path, so every step
runs as it would with the real weights; only the pictures are noise. Each folder is built whole or not at all
(staged beside it, then renamed) and reused by every later run and every example. Delete ``out/`` to start over.
"""

from __future__ import annotations

from pathlib import Path

from prefpaint_sdk.utils import staged_dir

TINY_MODELS = Path("out") / "tiny-models"


def tiny_pipeline(name: str = "inpaint", seed: int = 0) -> str:
    """A tiny diffusers inpainting pipeline folder (``out/tiny-models/<name>``); a ``--model`` for any example."""
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    return _build(TINY_MODELS / name, lambda stage: save_tiny_inpaint_pipeline(stage, seed=seed))


def tiny_reward(name: str = "reward", seed: int = 0) -> str:
    """A tiny reward-model folder with a trust matrix (``out/tiny-models/<name>``); a ``--reward-model``."""
    from prefpaint_sdk.testing import save_tiny_reward_model

    return _build(TINY_MODELS / name, lambda stage: save_tiny_reward_model(stage, seed=seed))


def _build(folder: Path, save) -> str:
    if not folder.is_dir():
        with staged_dir(folder) as stage:
            save(stage)
        print(f"built a tiny random model in {folder}/")
    return str(folder)
