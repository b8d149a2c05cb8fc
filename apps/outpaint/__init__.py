"""Image extension (iterative outpainting) on the public ``prefpaint_sdk`` API.

>>> from prefpaint_sdk import Inpainter
>>> from prefpaint_apps.outpaint import extend
>>> result = extend(Inpainter.from_pretrained(), "photo.png", ratio=2.0, seed=0)
>>> result.save("wide.png")          # wide.png + wide.json (plan, seeds, scores)

* :mod:`.size`: the canvas: pixels per side from ratios or pixel counts (``resolve_padding``).
* :mod:`.plan`: the step plan, pure geometry (``plan_extension``), used by ``--dry-run`` (the model's working
  size comes from ``prefpaint_sdk.model_info``, read from its config files).
* :mod:`.blend`: prefill, seam bands and per-step seeds.
* :mod:`.run`: :func:`extend` and :class:`ExtendResult`.
* :mod:`.checks`: :func:`validate` (first in every front door: the user's values, before anything loads) and
  :func:`prepare_extension` (the image and the plan, before the model loads).
"""

from __future__ import annotations

from .blend import PREFILL_MODES, derive_seed
from .checks import prepare_extension, validate
from .plan import (
    ANCHORS,
    DEFAULT_MAX_SIZE,
    MAX_STEP_FRAC,
    ExtendPlan,
    Padding,
    PlanStep,
    plan_extension,
    resolve_padding,
)
from .run import ExtendResult, StepRecord, check_run_options, extend

__all__ = [
    "ANCHORS",
    "DEFAULT_MAX_SIZE",
    "MAX_STEP_FRAC",
    "PREFILL_MODES",
    "ExtendPlan",
    "ExtendResult",
    "Padding",
    "PlanStep",
    "StepRecord",
    "check_run_options",
    "derive_seed",
    "extend",
    "plan_extension",
    "prepare_extension",
    "resolve_padding",
    "validate",
]
