"""A reward model's files, checked before anything loads (issue 19): pickles refused, configs read, the
safetensors headers of its weights and trust matrix checked, an official ``V_inverse.pt`` read whole (it is
small). Every front end calls :func:`check_reward_model` before it loads its main model, so a bad reward
file is one line before the slow load, not after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError

__all__ = ["check_reward_model", "check_reward_folder"]

WEIGHTS_FILE = "model.safetensors"
TRUST_FILE = "trust.safetensors"


def reward_fix(folder: Path) -> str:
    """The fix for a bad file in a reward folder: re-convert a cached conversion, else re-save or re-train."""
    from .convert import converted_cache_dir

    try:
        cached = folder.resolve().is_relative_to(converted_cache_dir().resolve())
    except OSError:  # pragma: no cover
        cached = False
    if cached:
        return f"delete the cached conversion '{folder}' and it will be converted again"
    return "re-save the model with save_pretrained, or re-train or re-convert it into a new folder"


def check_reward_folder(folder: str | os.PathLike, model_id: str | None = None) -> dict:
    """Check a local reward-model folder without loading its tensors; returns its config.

    Raises:
        PickleRefusedError: the weights exist only as a pickle (``pytorch_model.bin``, ...).
        InvalidInputError: no ``config.json`` + ``model.safetensors``.
        CorruptFileError: an empty or truncated config, weights or trust file.
    """
    from ..errors import PickleRefusedError
    from ..state import check_tensor_file, pickle_weight_files, read_json

    folder = Path(folder)
    cfg_path, w_path = folder / "config.json", folder / WEIGHTS_FILE
    if not w_path.is_file() and (pickles := pickle_weight_files(folder, recursive=False)):
        raise PickleRefusedError.for_file(pickles[0], "reward weights")  # e.g. pytorch_model.bin: never unpickled
    if not (cfg_path.is_file() and w_path.is_file()):
        raise InvalidInputError(
            f"'{model_id or folder}' ({folder}) has no {cfg_path.name} + {WEIGHTS_FILE}, so it is not a PrefPaint reward "
            "model; convert the official checkpoint with 'prefpaint convert-reward'"
        )
    fix = reward_fix(folder)
    config = read_json(cfg_path, what="reward model config", fix=fix)
    check_tensor_file(w_path, what="reward weights", fix=fix)
    if (folder / TRUST_FILE).is_file():
        check_tensor_file(folder / TRUST_FILE, what="trust matrix", fix=fix)
    return config


def check_reward_model(model: str | os.PathLike | None = None, *, offline: bool | None = None,
                       revision: str | None = None, v_inverse: str | os.PathLike | None = None):
    """Resolve a reward model (folder, hub id or official ``.pt``, converted once into the cache) and check its
    files and an official ``v_inverse`` file, loading no model. Returns the ``ResolvedModel``.

    Raises:
        ModelNotFoundError: not local, not cached and not downloadable.
        PickleRefusedError, InvalidInputError, CorruptFileError, DataError: a bad file, named.
    """
    from .convert import resolve_reward_model

    if v_inverse is not None:
        check_v_inverse(v_inverse)
    resolved = resolve_reward_model(model, offline=offline, revision=revision)
    check_reward_folder(resolved.path, resolved.model_id)
    return resolved


def check_v_inverse(path: str | os.PathLike) -> None:
    """Read an official ``V_inverse.pt`` whole (pickles refused, shape and values checked): a 256x256 matrix."""
    from .trust import load_official_v_inverse

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"V_inverse file '{p}' does not exist or is not a file; check the path")
    load_official_v_inverse(p)
