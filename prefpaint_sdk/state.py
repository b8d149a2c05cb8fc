"""One reader for the toolkit's own state files: checkpoints, resume state, cached conversions, model configs.

Every file the toolkit wrote and later reads back (``state.json``, ``optimizer.safetensors``, a reward
folder's ``config.json`` and ``model.safetensors``, ``latest.json``, ...) goes through this module, so a file
that is missing, empty, truncated, of the wrong type or a pickle gives one line naming the file and the fix:

* :class:`~prefpaint_sdk.errors.CorruptFileError`: missing, empty, truncated, not JSON/safetensors, wrong
  type, missing keys;
* :class:`~prefpaint_sdk.errors.PickleRefusedError`: a pickle (``torch.save``) where safetensors belong;
  the toolkit never unpickles, and never advises ``weights_only=False``;
* :class:`~prefpaint_sdk.errors.DataError`: weights that hold NaN or inf.

It builds only on ``errors`` and ``files`` (the atomic writers), so every layer above may use it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import Arg, CorruptFileError, DataError, Hint, PickleRefusedError, PrefPaintError

__all__ = [
    "PICKLE_SUFFIXES",
    "check_finite",
    "corrupt",
    "is_pickle_file",
    "pickle_weight_files",
    "read_json",
    "read_tensors",
    "check_tensor_file",
    "refuse_pickle_folder",
    "refuse_pickle_pipeline",
    "check_pipeline_folder",
    "find_run",
    "remove_run_files",
    "remove_unstarted_run",
    "state_errors",
    "json_safe",
    "write_json_state",
]

# Suffixes of torch/pickle weight files that a model folder may hold instead of safetensors.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

_TYPE_NAMES = {dict: "a JSON object", list: "a JSON array", str: "a string", int: "an integer", float: "a number",
               bool: "true/false", type(None): "null"}


def corrupt(path: str | os.PathLike, what: str, problem: str, fix: str | tuple) -> CorruptFileError:
    """The one-line error for a bad state file: ``"{what} '{path}' {problem}; {fix}"`` (``fix``: text, or
    message parts that name a parameter, ``("start over with ", Arg("overwrite", True))``)."""
    return CorruptFileError(f"{what} '{path}' {problem}; ", *(fix if isinstance(fix, tuple) else (fix,)))


def _kind(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _matches(value: Any, expected: type | tuple[type, ...]) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a count
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _expected(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def is_pickle_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts like a pickle: ``torch.save``'s zip archive, or a raw pickle (protocol ≥ 2)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_json(path: str | os.PathLike, *, what: str, fix: str, expect: type = dict,
              keys: Mapping[str, type | tuple[type, ...]] | None = None) -> Any:
    """Read a JSON state file the toolkit wrote, checking its top-level type and required keys.

    Args:
        path: the file.
        what: how errors name it ("resume state", "checkpoint pointer", ...).
        fix: what the user can do ("delete it, or resume from an earlier checkpoint").
        expect: the top-level type (``dict`` by default, ``list``).
        keys: for a dict, required keys and their types (a type or a tuple of types).

    Raises:
        CorruptFileError: missing, empty, not JSON (e.g. truncated), wrong type, missing or mistyped keys.
    """
    p = Path(path)
    if not p.is_file():
        raise corrupt(p, what, "is missing" if not p.exists() else "is not a file", fix)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise corrupt(p, what, f"cannot be read ({exc.strerror or exc})", fix) from exc
    if not raw.strip():
        raise corrupt(p, what, "is empty", fix)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = "is truncated or not valid JSON"
        if isinstance(exc, json.JSONDecodeError):
            problem += f" (line {exc.lineno}, column {exc.colno})"
        raise corrupt(p, what, problem, fix) from None
    if not _matches(data, expect):
        raise corrupt(p, what, f"holds {_kind(data)}, not {_expected(expect)}", fix)
    for key, typ in (keys or {}).items():
        if key not in data:
            raise corrupt(p, what, f"lacks the key '{key}'", fix)
        if not _matches(data[key], typ):
            raise corrupt(p, what, f"has '{key}' as {_kind(data[key])}, not {_expected(typ)}", fix)
    return data


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by ``None`` (strict JSON has no NaN; readers map it back)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    return obj


def write_json_state(path: str | os.PathLike, obj: Any) -> Path:
    """Write a JSON state file atomically (strict JSON: NaN/inf become ``null``, see :func:`json_safe`)."""
    from .files import atomic_write_json

    return atomic_write_json(path, json_safe(obj))


def read_tensors(path: str | os.PathLike, *, what: str, fix: str, keys: Iterable[str] | None = None,
                 finite: bool = False, device: str = "cpu") -> dict:
    """Read a ``.safetensors`` state file (never a pickle).

    Args:
        keys: tensor names that must be present.
        finite: refuse NaN/inf values (weights) with a :class:`DataError` naming the file and the tensor.

    Raises:
        CorruptFileError: missing, empty, truncated or not safetensors, missing tensors.
        PickleRefusedError: the file is a pickle (``torch.save``) rather than safetensors.
        DataError: ``finite`` and a floating tensor holds NaN or inf.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    check_tensor_file(p, what=what, fix=fix, keys=keys)  # existence, pickles, header, names: one set of checks
    try:
        tensors = load_file(str(p), device=device)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise corrupt(p, what, f"is truncated or not a safetensors file ({_first_line(exc)})", fix) from None
    if finite:
        check_finite(tensors, p, what)
    return tensors


def check_tensor_file(path: str | os.PathLike, *, what: str, fix: str, keys: Iterable[str] | None = None) -> list[str]:
    """Check a ``.safetensors`` file without loading its tensors (header, size, names): cheap, before a model loads.

    Returns the tensor names. Raises like :func:`read_tensors` (NaN is only found by reading, there).
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise corrupt(p, what, "is missing" if not p.exists() else "is not a file", fix)
    if p.stat().st_size == 0:
        raise corrupt(p, what, "is empty", fix)
    if is_pickle_file(p):
        raise PickleRefusedError.for_file(p, what)
    try:
        with safe_open(str(p), "pt") as fh:
            names = list(fh.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise corrupt(p, what, f"is truncated or not a safetensors file ({_first_line(exc)})", fix) from None
    missing = sorted(set(keys or ()) - set(names))
    if missing:
        shown = ", ".join(f"'{k}'" for k in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise corrupt(p, what, f"lacks the tensor(s) {shown}", fix)
    return names


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def check_finite(tensors: Mapping[str, Any], path: str | os.PathLike, what: str,
                 fix: str = "retrain or re-convert them, or use an earlier checkpoint") -> None:
    """Raise a :class:`DataError` naming ``path`` and the first tensor that holds NaN or inf."""
    import torch

    for name, t in tensors.items():
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise DataError(f"{what} '{path}' holds {bad} NaN/inf value(s) in '{name}'; these weights are unusable: "
                            f"{fix}")


@contextmanager
def state_errors(path: str | os.PathLike, what: str, fix: str) -> Iterator[None]:
    """Turn low-level failures while applying a state file (wrong shapes, types, keys) into one line.

    Use around code that consumes data already read from ``path`` (``optimizer.load_state_dict(...)``,
    ``torch.set_rng_state(...)``); toolkit errors pass through unchanged.
    """
    try:
        yield
    except PrefPaintError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        detail = f"{exc.__class__.__name__}: {detail}" if detail else exc.__class__.__name__
        raise corrupt(path, what, f"does not hold what this run expects ({detail[:160]})", fix) from None


def pickle_weight_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Pickle-format weight files (``*.bin``, ``*.pt``, ``*.ckpt``, ...) in ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        return []
    files = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in files if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)


def refuse_pickle_folder(folder: str | os.PathLike, what: str, recursive: bool = True) -> None:
    """Refuse a model folder whose weights exist only as pickles (no ``.safetensors`` beside them).

    For each folder holding a pickle weight file, there must be a ``.safetensors`` file in the same folder;
    otherwise loading would need to unpickle, which the toolkit never does.

    Raises:
        PickleRefusedError: naming the first such pickle file.
    """
    for p in pickle_weight_files(folder, recursive):
        if not any(p.parent.glob("*.safetensors")):
            raise PickleRefusedError.for_file(p, what)


# The components of a diffusers inpainting pipeline that the toolkit loads weights for.
PIPELINE_WEIGHT_FOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "transformer")


def refuse_pickle_pipeline(folder: str | os.PathLike, what: str = "pipeline weights") -> None:
    """Refuse a diffusers pipeline folder whose loaded components hold only pickle weights.

    Only the component folders that are loaded are checked (a ``safety_checker/pytorch_model.bin`` that is
    never loaded does not matter).

    Raises:
        PickleRefusedError: naming the first pickle weight file without a safetensors file beside it.
    """
    root = Path(folder)
    for name in PIPELINE_WEIGHT_FOLDERS:
        refuse_pickle_folder(root / name, what, recursive=False)


def check_pipeline_folder(folder: str | os.PathLike) -> None:
    """Check a local diffusers pipeline folder before any weights load (cheap: JSON and safetensors headers).

    A folder that exists but is damaged is bad input (exit 2, naming the file), not a missing model.

    Raises:
        CorruptFileError: ``model_index.json`` is empty, truncated or not an object; a loaded component's
            ``.safetensors`` file is empty, truncated or not safetensors.
        PickleRefusedError: a loaded component holds only pickle weights.
    """
    root = Path(folder)
    fix = "re-save the pipeline with save_pretrained, or download it again"
    read_json(root / "model_index.json", what="pipeline index", fix=fix)
    refuse_pickle_pipeline(root)
    for name in PIPELINE_WEIGHT_FOLDERS:
        for weights in sorted((root / name).glob("*.safetensors")) if (root / name).is_dir() else ():
            check_tensor_file(weights, what=f"{name} weights", fix=fix)


def find_run(out: str | os.PathLike, run_files: Iterable[str], what: str, *, resume: bool = False,
             overwrite: bool = False) -> list[str]:
    """The one rule for a training run's output folder: which of ``run_files`` an earlier run left in ``out``.

    Cheap and model-free, so trainers call it before loading anything.

    Raises:
        OutputExistsError: the folder holds a run and neither ``resume`` nor ``overwrite`` is given.
        InvalidInputError: ``out`` is a file, or both ``resume`` and ``overwrite`` are given.
    """
    from .errors import InvalidInputError, OutputExistsError

    out = Path(out)
    if resume and overwrite:
        raise InvalidInputError(Arg("resume", True), " and ", Arg("overwrite", True), " contradict each other; pass one of them")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output '{out}' is a file; pass a folder for the {what}")
    found = [name for name in run_files if (out / name).exists()]
    if found and not (resume or overwrite):
        raise OutputExistsError(f"'{out}' already holds {'an' if what[0] in 'aeiou' else 'a'} {what} ({', '.join(found)})",
                                Hint("; pass ", Arg("resume", True), " to continue it"), "; or choose a new output folder",
                                Hint("; or pass ", Arg("overwrite", True), " to replace it"))
    return found


def remove_run_files(out: str | os.PathLike, names: Iterable[str]) -> None:
    """Delete a run's files and folders ``names`` in ``out`` (what :func:`find_run` found, for ``overwrite``).

    Every process of a multi-process launch may call it: a file another one removed first is no error."""
    out = Path(out)
    for name in names:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def remove_unstarted_run(out: str | os.PathLike, run_files: Iterable[str], existed: bool) -> None:
    """The rule for a new training run that fails before its first epoch (iteration) ends: it leaves no run
    behind. Removes its ``run_files``, and ``out`` itself when the run made the folder (``existed`` is False)
    and nothing else was put in it. Not for a resumed run: its files are the earlier run's."""
    out = Path(out)
    remove_run_files(out, [name for name in run_files if (out / name).exists()])
    if not existed:
        try:
            out.rmdir()
        except OSError:  # something else was put there meanwhile: leave it
            pass
