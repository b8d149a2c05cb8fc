"""What a model *is*, for the evaluation cache: a key that changes when the weights change.

The cache of :func:`~prefpaint_sdk.evaluation.evaluate` may reuse a case's samples only for the same
models. A name is not enough: retraining ``runs/x/merged`` keeps the name and changes the model. So the
key (:func:`model_key`) is

* ``hub-id@commit`` for a model loaded from the hub (a commit is immutable);
* ``folder#sha256:<digest>`` for a local folder: a SHA-256 over the bytes of its weight and config files
  (``*.safetensors``, ``*.json``, ``*.txt``), each named by its path inside the folder. Hashing every
  byte, not trusting size and mtime, catches a retrained file of the same size. The digest of each file is
  memoised per (path, size, mtime_ns), in memory and in the evaluation folder's ``cache/fingerprints.json``,
  so a resumed evaluation re-reads only files that changed;
* ``<in-memory>#sha256:<digest>`` for a model built in memory (an ``Inpainter`` over a pipeline object,
  a ``RewardModel`` not loaded from a folder): a SHA-256 over its tensors (names, dtypes, shapes, bytes);
* the object's name for anything else (a plain callable has no weights to fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["folder_fingerprint", "model_key", "module_fingerprint"]

log = logging.getLogger(__name__)

_HASHED_SUFFIXES = (".safetensors", ".json", ".txt")
_CHUNK = 8 << 20
_MEMO: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path, memo: dict[str, Any]) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    rec = memo.get(key[0])
    if key in _MEMO:
        digest = _MEMO[key]
    elif isinstance(rec, dict) and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns \
            and isinstance(rec.get("sha256"), str):
        digest = rec["sha256"]
    else:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
    _MEMO[key] = digest
    memo[key[0]] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    return digest


def folder_fingerprint(folder: str | os.PathLike, memo: dict[str, Any] | None = None) -> str:
    """SHA-256 (hex) over a model folder's weight and config files, by relative path and content.

    Args:
        folder: a model folder (diffusers pipeline, reward model, ...).
        memo: an optional ``{absolute path: {"size", "mtime_ns", "sha256"}}`` dict, read and updated, that
            spares re-reading unchanged files across processes.

    Returns:
        The hex digest; hidden files and other suffixes (pickled ``.bin``, images, READMEs) are left out.
    """
    root = Path(folder)
    memo = {} if memo is None else memo
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in _HASHED_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + _file_digest(p, memo).encode() + b"\n")
    return h.hexdigest()


def module_fingerprint(modules: dict[str, Any]) -> str:
    """SHA-256 (hex) over torch modules' tensors: name, dtype, shape and bytes of every parameter and buffer."""
    import torch

    h = hashlib.sha256()
    for name in sorted(modules):
        mod = modules[name]
        for key, t in sorted(mod.state_dict().items()):
            t = t.detach()
            h.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)}\n".encode())
            if t.numel():
                h.update(t.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def _torch_modules(obj) -> dict[str, Any]:
    """The torch modules that make up ``obj``: a pipeline's components, or ``obj`` itself."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return {}
    pipe = getattr(obj, "pipeline", None)
    if pipe is not None and hasattr(pipe, "components"):
        return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}
    if isinstance(obj, torch.nn.Module):
        return {"model": obj}
    return {}


def model_key(obj, memo: dict[str, Any] | None = None) -> str:
    """The cache key of a model: what it *is* (see the module docstring).

    Args:
        obj: an ``Inpainter``, ``RewardModel`` or any model-like object.
        memo: the per-file digest memo (see :func:`folder_fingerprint`).
    """
    ident = getattr(obj, "model_id", None) or getattr(obj, "name", None)
    ident = str(ident) if ident else None
    revision = getattr(obj, "revision", None)
    if ident and isinstance(revision, str) and revision:
        return f"{ident}@{revision}"
    if ident and Path(ident).is_dir():
        return f"{ident}#sha256:{folder_fingerprint(ident, memo)}"
    modules = _torch_modules(obj)
    if modules:
        return f"{ident or '<in-memory>'}#sha256:{module_fingerprint(modules)}"
    return ident or type(obj).__name__


def read_memo(path: Path) -> dict[str, Any]:
    """The digest memo stored at ``path``; an empty one when it is missing or unreadable (it is only a cache)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable fingerprint cache %s (%s); the weights are hashed again", path, exc)
        return {}
    return data if isinstance(data, dict) else {}
