"""One validation layer for user values, shared by the SDK, the apps and the CLI.

Every public entry point checks its numbers here before any model loads, so the CLI and a Python user get
the same one-line errors. Each error names its parameter as an :class:`~prefpaint_sdk.errors.Arg` (also
``InvalidInputError.param``): a Python caller reads ``steps``, the CLI the flag of the command that printed it.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import Arg, InvalidInputError

__all__ = ["finite", "positive", "non_negative", "at_least", "check_seed", "SEED_MAX", "bad_value", "validated_by"]

# One seed rule for every command: a non-negative integer below 2**32 (numpy's and CUDA's common range),
# and the last derived seed (seed + count - 1) must stay in range too.
SEED_MAX = 2**32 - 1


def validated_by(check):
    """Give a front door function its model-free checks as ``fn.validate`` (a class has a ``validate``
    staticmethod): the function calls ``check`` first, and the CLI calls ``fn.validate(...)`` before anything
    else, so every front door is checked the same way, before any model loads."""
    def mark(fn):
        fn.validate = check
        return fn
    return mark


def bad_value(param: str, *parts) -> InvalidInputError:
    """An ``InvalidInputError`` about ``param`` (the Python name; the CLI shows its flag).

    ``parts`` are text and :class:`Arg`; a first text that starts with ``param`` ("steps must be ≥ 1") names
    it as an Arg, so the CLI says "--steps must be ≥ 1".
    """
    if parts and isinstance(parts[0], str) and parts[0].startswith(param + " "):
        parts = (Arg(param), parts[0][len(param):], *parts[1:])
    return InvalidInputError(*parts, param=param)


def _number(param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise bad_value(param, f"{param} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise bad_value(param, f"{param} must be a finite number, got {value!r}")
    return value


def finite(param: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a finite number, optionally within [lo, hi]."""
    v = _number(param, value)
    if lo is not None and v < lo:
        raise bad_value(param, f"{param} must be ≥ {lo:g}, got {value!r}")
    if hi is not None and v > hi:
        raise bad_value(param, f"{param} must be ≤ {hi:g}, got {value!r}")
    return v


def positive(param: str, value: Any) -> float:
    """A size or scale: finite and > 0."""
    v = _number(param, value)
    if v <= 0:
        raise bad_value(param, f"{param} must be > 0, got {value!r}")
    return v


def non_negative(param: str, value: Any) -> float:
    v = _number(param, value)
    if v < 0:
        raise bad_value(param, f"{param} must be ≥ 0, got {value!r}")
    return v


def at_least(param: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """A count: an integer ≥ ``minimum`` (1 by default), optionally ≤ ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_value(param, f"{param} must be a whole number, got {value!r}")
    if value < minimum:
        raise bad_value(param, f"{param} must be ≥ {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise bad_value(param, f"{param} must be ≤ {maximum}, got {value}")
    return value


def check_seed(value: Any, count: int = 1, param: str = "seed") -> int | None:
    """The one seed rule: ``None`` (draw one) or an integer with 0 ≤ seed and seed + count - 1 ≤ 2**32 - 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_value(param, f"{param} must be a whole number, got {value!r}")
    if value < 0 or value + max(count, 1) - 1 > SEED_MAX:
        last = f" (and {param} + {count - 1} for {count} derived seeds)" if count > 1 else ""
        raise bad_value(param, f"{param} must be between 0 and {SEED_MAX}{last}, got {value}")
    return value
