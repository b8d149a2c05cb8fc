"""PrefPaint SDK: preference-aligned inpainting, its reward model with a trust bound, and RL alignment.

>>> from prefpaint_sdk import Inpainter
>>> result = Inpainter.from_pretrained()("photo.png", "mask.png", seed=0)

Names are imported lazily, so ``import prefpaint_sdk`` stays cheap until a model class is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    # inpainting
    "Inpainter": "inpainter",
    "InpaintResult": "inpainter",
    "InputPair": "batch",
    "pair_inputs": "batch",
    "list_images": "batch",
    # manifest jobs across processes
    "read_job_manifest": "jobs",
    "run_inpaint_job": "jobs",
    "run_score_job": "jobs",
    "run_generate_dataset": "jobs",
    # reward model, trust bound, reward training
    "RewardModel": "reward",
    "RewardOutput": "reward",
    "TrustStats": "reward",
    "fit_trust": "reward",
    "trust_bound": "reward",
    "trust_weight": "reward",
    "load_official_v_inverse": "reward",
    "convert_official_checkpoint": "reward",
    "read_reward_data": "reward",
    "RewardTrainConfig": "reward",
    "load_reward_config": "reward",
    "train_reward": "reward",
    # evaluation: WinRate protocol, reports, mask sets
    "evaluate": "evaluation",
    "EvalReport": "evaluation",
    "EvalCase": "evaluation",
    "generate_mask_set": "evaluation",
    # images and masks
    "Box": "imaging",
    "load_image": "imaging",
    "load_mask": "imaging",
    "fit_mask_to_image": "imaging",
    "dilate_mask": "imaging",
    "feather_alpha": "imaging",
    "mask_bbox": "imaging",
    "context_box": "imaging",
    "working_size": "imaging",
    "composite": "imaging",
    "masked_image": "imaging",
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
    # models and devices
    "DEFAULT_MODEL": "hub",
    "BASE_MODEL": "hub",
    "DEFAULT_REWARD_MODEL": "hub",
    "resolve_model": "hub",
    "download_model": "hub",
    "is_offline": "hub",
    "cache_dir": "hub",
    "resolve_device": "devices",
    "resolve_dtype": "devices",
    # safe output files
    "check_output_path": "files",
    "atomic_path": "files",
    "atomic_write_json": "files",
    "save_image": "files",
    "sidecar_path": "files",
    "check_outputs": "files",
    "check_output_dir": "files",
    "staged_dir": "files",
    "output_set": "files",
    "write_set": "files",
    "image_writer": "files",
    "json_writer": "files",
    # limits and value checks
    "DEFAULT_MAX_PIXELS": "imaging",
    "set_max_pixels": "imaging",
    "get_max_pixels": "imaging",
    "check_image_file": "imaging",
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
    "require": "errors",
    # value checks shared by the SDK, the apps and the CLI
    "finite": "validation",
    "positive": "validation",
    "at_least": "validation",
    "check_seed": "validation",
    "bad_value": "validation",
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
    from .devices import resolve_device, resolve_dtype  # noqa: F401
    from .errors import (  # noqa: F401
        ConfigError, CorruptFileError, DataError, ImageTooLargeError, InvalidInputError, MissingDependencyError,
        ModelNotFoundError, OutputExistsError, PickleRefusedError, PrefPaintError, require,
    )
    from .validation import at_least, bad_value, check_seed, finite, positive  # noqa: F401
    from .files import (  # noqa: F401
        atomic_path, atomic_write_json, check_output_dir, check_output_path, check_outputs, image_writer, json_writer,
        output_set, save_image, sidecar_path, staged_dir, write_set,
    )
    from .hub import (  # noqa: F401
        BASE_MODEL, DEFAULT_MODEL, DEFAULT_REWARD_MODEL, cache_dir, download_model, is_offline, resolve_model,
    )
    from .imaging import (  # noqa: F401
        DEFAULT_MAX_PIXELS, Box, check_image_file, composite, context_box, dilate_mask, feather_alpha, fit_mask_to_image,
        get_max_pixels, load_image, load_mask, mask_bbox, masked_image, set_max_pixels, working_size,
    )
    from .batch import InputPair, list_images, pair_inputs  # noqa: F401
    from .evaluation import EvalCase, EvalReport, evaluate, generate_mask_set  # noqa: F401
    from .inpainter import Inpainter, InpaintResult  # noqa: F401
    from .jobs import read_job_manifest, run_generate_dataset, run_inpaint_job, run_score_job  # noqa: F401
    from .align import AlignConfig, Aligner, AlignResult, load_align_config  # noqa: F401
    from .masks import generate_mask, outpaint_square_mask, outpaint_strip_mask, stroke_mask, warp_hole_mask  # noqa: F401
    from .reward import (  # noqa: F401
        RewardModel, RewardOutput, RewardTrainConfig, TrustStats, convert_official_checkpoint, fit_trust,
        load_official_v_inverse, load_reward_config, read_reward_data, train_reward, trust_bound, trust_weight,
    )
