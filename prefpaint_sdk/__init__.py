"""PrefPaint SDK: preference-aligned inpainting, its reward model with a trust bound, and RL alignment.

>>> from prefpaint_sdk import Inpainter
>>> result = Inpainter.from_pretrained()("photo.png", "mask.png", seed=0)

Names are imported lazily, so ``import prefpaint_sdk`` stays cheap until a model class is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> submodule that defines it. What users call: the facades, configs and results, the errors they
# catch, image/mask loading and the mask generators. The plumbing app authors build on (output files, value
# checks, ``require``) is ``prefpaint_sdk.utils``; apps import only these two namespaces. Everything else stays
# importable from its module (``prefpaint_sdk.imaging``, ``.reward``, ``.hub``, ``.devices``, ``.jobs``, ...).
_EXPORTS = {
    # inpainting
    "Inpainter": "inpainter",
    "InpaintResult": "inpaint_result",
    # manifest jobs across processes
    "run_inpaint_job": "jobs",
    "run_score_job": "jobs",
    "run_generate_dataset": "jobs",
    # reward model, reward training (the trust bound: prefpaint_sdk.reward)
    "RewardModel": "reward",
    "RewardOutput": "reward",
    "convert_official_checkpoint": "reward",
    "RewardTrainConfig": "reward",
    "train_reward": "reward",
    # evaluation: WinRate protocol, reports
    "evaluate": "evaluation",
    "EvalReport": "evaluation",
    "EvalCase": "evaluation",
    # images and masks
    "load_image": "imaging",
    "load_mask": "imaging",
    "generate_mask": "masks",
    "warp_hole_mask": "masks",
    "outpaint_square_mask": "masks",
    "outpaint_strip_mask": "masks",
    "stroke_mask": "masks",
    # RL alignment
    "Aligner": "align",
    "AlignConfig": "align",
    "AlignResult": "align",
    "load_align_config": "align",
    # models
    "model_info": "engines",
    "ModelInfo": "engines",
    "DEFAULT_MODEL": "hub",
    "BASE_MODEL": "hub",
    "DEFAULT_REWARD_MODEL": "hub",
    "download_model": "hub",
    "cache_dir": "hub",
    # the pixel limit
    "set_max_pixels": "imaging",
    # errors
    "PrefPaintError": "errors",
    "InvalidInputError": "errors",
    "ModelNotFoundError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "OutputExistsError": "errors",
    "MissingDependencyError": "errors",
    "ImageTooLargeError": "errors",
    "PickleRefusedError": "errors",
    "CorruptFileError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefpaint_sdk' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from .errors import (  # noqa: F401
        ConfigError, CorruptFileError, DataError, ImageTooLargeError, InvalidInputError, MissingDependencyError,
        ModelNotFoundError, OutputExistsError, PickleRefusedError, PrefPaintError,
    )
    from .hub import BASE_MODEL, DEFAULT_MODEL, DEFAULT_REWARD_MODEL, cache_dir, download_model  # noqa: F401
    from .imaging import load_image, load_mask, set_max_pixels  # noqa: F401
    from .evaluation import EvalCase, EvalReport, evaluate  # noqa: F401
    from .inpaint_result import InpaintResult  # noqa: F401
    from .inpainter import Inpainter  # noqa: F401
    from .jobs import run_generate_dataset, run_inpaint_job, run_score_job  # noqa: F401
    from .align import AlignConfig, Aligner, AlignResult, load_align_config  # noqa: F401
    from .engines import ModelInfo, model_info  # noqa: F401
    from .masks import generate_mask, outpaint_square_mask, outpaint_strip_mask, stroke_mask, warp_hole_mask  # noqa: F401
    from .reward import (  # noqa: F401
        RewardModel, RewardOutput, RewardTrainConfig, convert_official_checkpoint, train_reward,
    )
