"""Where weights come from: default ids, local folder vs hub id, offline mode, download.

A model reference is either a local folder (used as is) or a Hugging Face hub id (resolved through the
hub cache). Offline mode (``offline=True``, ``--offline`` or ``HF_HUB_OFFLINE=1``) never touches the
network; a missing model then raises :class:`ModelNotFoundError` naming the id, the cache folder and
the fix.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import Arg, InvalidInputError, ModelNotFoundError

__all__ = [
    "DEFAULT_MODEL",
    "BASE_MODEL",
    "DEFAULT_REWARD_MODEL",
    "FLUX_FILL_MODEL",
    "SDXL_INPAINT_MODEL",
    "MODEL_ALIASES",
    "ResolvedModel",
    "check_model_name",
    "is_offline",
    "cache_dir",
    "resolve_model",
    "download_model",
    "is_cached",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "kd5678/prefpaint-v1.0"
"""The published PrefPaint aligned weights: a full diffusers ``StableDiffusionInpaintPipeline``."""

BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
"""The base SD-inpainting model PrefPaint was aligned from (community mirror of Runway's deleted repo)."""

DEFAULT_REWARD_MODEL = "kd5678/prefpaintReward"
"""The official PrefPaint reward model (a torch state dict; converted on first use)."""

FLUX_FILL_MODEL = "black-forest-labs/FLUX.1-Fill-dev"
"""FLUX.1 Fill [dev] in diffusers layout (``FluxFillPipeline``; a gated repo: accept its licence and log in)."""

SDXL_INPAINT_MODEL = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"
"""SDXL inpainting (``StableDiffusionXLInpaintPipeline``, 9-channel UNet)."""

MODEL_ALIASES = {
    "prefpaint": DEFAULT_MODEL,
    "base": BASE_MODEL,
    "flux-fill": FLUX_FILL_MODEL,
    "sdxl-inpaint": SDXL_INPAINT_MODEL,
    # latent-blend inpainting on base models (engines qwen-image, flux2-klein, z-image)
    "qwen-image": "Qwen/Qwen-Image",
    "qwen-image-edit": "Qwen/Qwen-Image-Edit",
    "flux2-klein": "black-forest-labs/FLUX.2-klein-4B",
    "z-image": "Tongyi-MAI/Z-Image-Turbo",
    # Runway deleted its hub repositories in 2024; old scripts still name them.
    "runwayml/stable-diffusion-inpainting": BASE_MODEL,
}

# Weights we never fetch: pickled formats (unsafe to load) and other frameworks; the safety checker is
# not loaded by the toolkit (documented in docs/inpaint.md), so its 1.2 GB are skipped too.
# FLUX.1 Fill's repository also holds its weights as single files at the top (for other tools; 23 GB + 0.3 GB),
# beside the diffusers folders the toolkit loads: those are skipped as well.
_IGNORE = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "safety_checker/*",
           "flux1-fill-dev.safetensors", "ae.safetensors"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference turned into a local folder, with what is needed to reproduce it."""

    model_id: str  # what the user asked for, after alias mapping
    path: Path  # a local folder holding the weights
    revision: str | None  # the hub commit, or None for a local folder
    source: str  # "local" or "hub"


def is_offline(offline: bool | None = None) -> bool:
    """Offline when asked explicitly, else when ``HF_HUB_OFFLINE`` is set to a true value."""
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The hub cache folder (``HF_HUB_CACHE``, or ``HF_HOME/hub``, or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def _canonical(model: str) -> str:
    if model in MODEL_ALIASES:
        target = MODEL_ALIASES[model]
        if model.startswith("runwayml/"):
            log.warning("'%s' was deleted from the hub in 2024; using its mirror '%s'", model, target)
        return target
    return model


def check_model_name(model: str | os.PathLike, what: str = "model") -> str:
    """Refuse a model name that names no model: empty, only whitespace, ``.`` or ``..``.

    ``Path("")`` is the working folder, so without this check ``download ''`` or ``--model ''`` would take
    whatever folder the user stands in. Every function here that takes a model name calls it first.

    Returns:
        the name as text.

    Raises:
        InvalidInputError: names ``what`` and the value.
    """
    text = os.fspath(model)
    if text.strip() in ("", ".", ".."):
        raise InvalidInputError(Arg(what) if what.isidentifier() else what,
                                f" {text!r} names no model; pass a hub id such as '{DEFAULT_MODEL}' or a "
                                "model folder by its name (e.g. '../my-model')")
    return text


def resolve_model(model: str | os.PathLike, *, offline: bool | None = None, revision: str | None = None,
                  what: str = "model") -> ResolvedModel:
    """Turn a local folder or hub id into a local folder, downloading only when online.

    Raises:
        InvalidInputError: ``model`` is neither an existing folder nor a well-formed hub id.
        ModelNotFoundError: the hub id is not cached (offline) or cannot be fetched (online).
    """
    text = check_model_name(model, what)
    local = Path(text).expanduser()
    if local.is_dir():
        return ResolvedModel(model_id=str(local), path=local.resolve(), revision=None, source="local")
    if local.exists():
        raise InvalidInputError(f"{what} '{text}' is a file; pass a model folder or a hub id such as '{DEFAULT_MODEL}'")
    model_id = _canonical(text)
    if not _HUB_ID.match(model_id):
        raise InvalidInputError(
            f"{what} '{text}' is neither an existing folder nor a hub id of the form 'owner/name'; check the path"
        )
    return _snapshot(model_id, offline=is_offline(offline), revision=revision, what=what)


def _snapshot(model_id: str, *, offline: bool, revision: str | None, what: str, progress: bool = False) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            model_id, revision=revision, cache_dir=cache_dir(), local_files_only=offline, ignore_patterns=_IGNORE
        )
    except LocalEntryNotFoundError as exc:
        if offline:
            raise ModelNotFoundError(
                f"{what} '{model_id}' is not in the cache at '{cache_dir()}' and offline mode is on; "
                f"run 'prefpaint download {model_id}' on a machine with network, or pass a local folder"
            ) from exc
        raise ModelNotFoundError(
            f"{what} '{model_id}' could not be downloaded (no connection to the hub?) and is not in the cache at "
            f"'{cache_dir()}'; check the network, or run 'prefpaint download {model_id}' where there is one"
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as exc:
        raise ModelNotFoundError(
            f"{what} '{model_id}' (revision {revision or 'main'}) was not found on the hub or needs access; "
            "check the id, or log in with 'hf auth login' for a gated repo"
        ) from exc
    except (HfHubHTTPError, OSError) as exc:
        raise ModelNotFoundError(f"{what} '{model_id}' could not be fetched: {exc}; try again, or pass ", Arg("offline", True),
                                 " with a cached copy") from exc
    path = Path(folder)
    return ResolvedModel(model_id=model_id, path=path, revision=path.name, source="hub")


def download_model(model: str, *, revision: str | None = None) -> ResolvedModel:
    """Fetch a hub model into the cache (with the hub's own progress bars) and return where it is."""
    local = Path(check_model_name(model)).expanduser()
    if local.is_dir():
        return ResolvedModel(model_id=str(local), path=local.resolve(), revision=None, source="local")
    model_id = _canonical(model)
    if not _HUB_ID.match(model_id):
        raise InvalidInputError(f"'{model}' is not a hub id of the form 'owner/name'")
    return _snapshot(model_id, offline=False, revision=revision, what="model")


def is_cached(model: str) -> bool:
    """Whether a hub id is fully available offline (a local folder counts as cached)."""
    if Path(check_model_name(model)).expanduser().is_dir():
        return True
    try:
        _snapshot(_canonical(model), offline=True, revision=None, what="model")
        return True
    except ModelNotFoundError:
        return False
