"""Shared set-up of the single-run experiment scripts (exp_nft_direction.py, exp_blend_direction.py)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def _value(text: str):
    """A ``--set`` value: JSON where it parses (numbers, lists, true), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def experiment_setup(settings: list[str], prefix: str) -> tuple[dict, Path]:
    """One torch thread (the figures are CPU seconds of one core), ``tests/`` importable (its data helpers),
    the ``--set NAME=VALUE`` overrides parsed, and a fresh temporary folder. Returns (overrides, folder)."""
    import torch

    torch.set_num_threads(1)
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in settings)}
    return overrides, Path(tempfile.mkdtemp(prefix=prefix))
