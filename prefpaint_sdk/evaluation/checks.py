"""The checks of :func:`~prefpaint_sdk.evaluation.evaluate` that need no model: :func:`validate_evaluation`, its
first call and ``evaluate.validate`` (``prefpaint eval`` calls it first too)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import Arg, InvalidInputError
from ..files import check_output_dir, check_outputs
from ..reward.winrate import check_tie_tolerance, win_stats
from ..validation import finite
from .masksets import normalize_kind

__all__ = ["validate_evaluation"]

_GT_MODES = ("auto", "input", "none")
CONFIG_FILE = "eval_config.json"


def _check_samples(samples) -> tuple[int, ...]:
    s = (samples,) if isinstance(samples, int) else tuple(samples)
    if not s or any(not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < 1 for x in s):
        raise InvalidInputError(Arg("samples"), f" must be integers >= 1, got {samples!r}; e.g. samples=(1, 3, 10)")
    return tuple(sorted({int(x) for x in s}))


def validate_evaluation(pairs, samples: int | Sequence[int] = (1, 3, 10), *, out_dir=None, masks: str = "auto",
                        steps: int | None = None, ground_truth: str = "auto", tie_tolerance: float = 0.0,
                        ci: str = "wilson", confidence: float = 0.95, reward_model=None,
                        reward_weights: Sequence[float] | str | None = None,
                        inpaint_kwargs: dict[str, Any] | None = None, world_size: int = 1) -> None:
    """Every check of :func:`~prefpaint_sdk.evaluation.evaluate` that needs no model and reads no image, with its arguments' meanings:
    the numbers and names, the statistics settings (checked now, not after hours of sampling), weights only
    with a stack, settings JSON can record, the data path, and the output folder (a resumable cache: an
    existing one is fine; ``world_size`` processes need one).

    Raises:
        InvalidInputError: naming the parameter and the value.
    """
    smax = _check_samples(samples)[-1]
    if smax > 1000:
        raise InvalidInputError(f"samples up to {smax} per case is more than the 1000 the seed layout allows")
    if masks not in ("auto", "given"):
        normalize_kind(masks)
    if ground_truth not in _GT_MODES:
        raise InvalidInputError(Arg("ground_truth"), f" must be one of {', '.join(_GT_MODES)}, got '{ground_truth}'")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise InvalidInputError(Arg("steps"), f" must be an integer >= 1, got {steps!r}")
    win_stats([1.0], [0.0], tie_tolerance=check_tie_tolerance(tie_tolerance), ci=ci, confidence=confidence, n_boot=10)
    if reward_weights is not None and not isinstance(reward_model, (list, tuple)):
        raise InvalidInputError(Arg("reward_weights"), " weigh a reward stack of several specs; give the stack or drop ",
                                Arg("reward_weights"))
    _jsonable(dict(inpaint_kwargs or {}))  # settings that cannot be recorded are refused before the models load
    if isinstance(pairs, (str, os.PathLike)) and not Path(pairs).exists():
        raise InvalidInputError(Arg("pairs"), f" '{pairs}' does not exist; pass a data folder (images/, masks/) or a "
                                "manifest.jsonl")
    if out_dir is not None:
        _check_out_dir(Path(out_dir))
    elif world_size > 1:
        raise InvalidInputError(f"evaluating on {world_size} processes needs an output folder that every process "
                                "sees (out_dir, -o)")


def _jsonable(obj):
    for key, value in obj.items():
        if isinstance(value, float):
            finite(key, value)
    try:
        return json.loads(json.dumps(obj, default=str, allow_nan=False))
    except ValueError as exc:
        raise InvalidInputError(Arg("inpaint_kwargs"), f" must be finite values that JSON can record ({exc}); got {obj!r}") from None


def _check_out_dir(out: Path) -> None:
    """The output folder can hold the evaluation: not a file, and creatable and writable (before models load)."""
    check_output_dir(out, overwrite=True)  # a resumable cache: existing is fine, a file or a bad name is not
    check_outputs([out / CONFIG_FILE], overwrite=True)
