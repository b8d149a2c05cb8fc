"""Model families behind one protocol (:class:`~.base.Engine`): the only place that names a diffusers pipeline.

* :mod:`.sd`: Stable Diffusion 1.x/2.x inpainting (``StableDiffusionInpaintPipeline``), DDIM;
* :mod:`.sdxl`: SDXL inpainting (``StableDiffusionXLInpaintPipeline``), DDIM;
* :mod:`.flux_fill`: FLUX.1 Fill (``FluxFillPipeline``), flow matching;
* :mod:`.qwen_image`, :mod:`.flux2_klein`, :mod:`.z_image`: latent-blend inpainting on Qwen-Image, FLUX.2 klein
  and Z-Image base models (``QwenImageInpaintPipeline``, ``Flux2KleinInpaintPipeline``, ``ZImageInpaintPipeline``);
* :mod:`.qwen_image_edit`: Qwen-Image-Edit (``QwenImageEditInpaintPipeline``), the prompt as an instruction;
* :mod:`.info`: :func:`model_info`, a model's family, working size and defaults from its config files (no torch);
* :mod:`.ddim_rollout`: the DDIM rollout with per-step log-probabilities (alignment; the step's maths is
  :mod:`prefpaint_sdk.samplers.ddim`).

The family of a folder comes from its ``model_index.json`` ``_class_name``. To add a family, write one module
with an :class:`~.base.Engine` subclass (its defaults, ``read_resolution``/``read_size_multiple`` from config
files, its call), list it in :data:`FAMILIES` and its pipeline class in :data:`PIPELINE_FAMILIES`, and add its
tiny fixture to :data:`prefpaint_sdk.testing.pipelines.BUILDERS`. Nothing else in the toolkit names a family:
the apps read :func:`model_info` and ``Inpainter.defaults`` (``tests/test_family_seam.py`` proves it with a
dummy family).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from ..errors import InvalidInputError
from .base import OFFLOAD_MODES, Engine, NotAlignableError
from .info import ModelInfo, model_info

__all__ = ["Engine", "NotAlignableError", "OFFLOAD_MODES", "FAMILIES", "PIPELINE_FAMILIES", "engine_class",
           "engine_classes", "family_of_folder", "family_of_model", "check_model_limits", "engine_for_pipeline",
           "load_engine", "ModelInfo", "model_info"]

FAMILIES = {
    "sd": "sd:SDInpaintEngine",
    "sdxl": "sdxl:SDXLInpaintEngine",
    "flux-fill": "flux_fill:FluxFillEngine",
    "qwen-image": "qwen_image:QwenImageEngine",
    "qwen-image-edit": "qwen_image_edit:QwenImageEditEngine",
    "flux2-klein": "flux2_klein:Flux2KleinEngine",
    "z-image": "z_image:ZImageEngine",
}
"""Family name -> ``module:class`` of its engine (a module of this package, a full dotted module path, or a
top-level module such as ``__main__``)."""

PIPELINE_FAMILIES = {
    "StableDiffusionInpaintPipeline": "sd",
    # An SD folder saved from the text-to-image class still loads as inpainting when its UNet has 9 channels
    # (the SD engine checks); the toolkit has always accepted those.
    "StableDiffusionPipeline": "sd",
    "StableDiffusionXLInpaintPipeline": "sdxl",
    "FluxFillPipeline": "flux-fill",
    "QwenImageInpaintPipeline": "qwen-image",
    # Qwen-Image and Z-Image folders are published as text-to-image pipelines; the inpaint class loads them.
    "QwenImagePipeline": "qwen-image",
    "QwenImageEditInpaintPipeline": "qwen-image-edit",
    # Qwen-Image-Edit is published as the edit pipeline; the edit-inpaint class loads it.
    "QwenImageEditPipeline": "qwen-image-edit",
    "Flux2KleinInpaintPipeline": "flux2-klein",
    "Flux2KleinPipeline": "flux2-klein",
    "ZImageInpaintPipeline": "z-image",
    "ZImagePipeline": "z-image",
}
"""diffusers pipeline class name (``model_index.json``'s ``_class_name``) -> family."""


def engine_class(family: str) -> type[Engine]:
    """The engine class of a family name."""
    if family not in FAMILIES:
        raise InvalidInputError(f"unknown model family '{family}'; the families are {', '.join(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    # A module of this package by its name; a family registered from elsewhere by its full dotted path, or by a
    # top-level module's name (a user's own ``my_family.py``, or ``__main__`` for a script run as one).
    if "." in module:
        return getattr(importlib.import_module(module), name)
    try:
        return getattr(importlib.import_module(f".{module}", __name__), name)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{module}":
            raise
    return getattr(importlib.import_module(module), name)


def engine_classes() -> list[type[Engine]]:
    """Every registered family's engine class, in :data:`FAMILIES` order."""
    return [engine_class(family) for family in FAMILIES]


def family_of_folder(folder: str | os.PathLike, model_id: str | None = None) -> str:
    """The family of a diffusers pipeline folder, from ``model_index.json``'s ``_class_name`` (no torch import).

    Raises:
        InvalidInputError: no ``model_index.json``, an unreadable one, or a pipeline class of no known family.
    """
    folder = Path(folder)
    name = model_id or str(folder)
    index = folder / "model_index.json"
    if not index.is_file():
        raise InvalidInputError(
            f"'{name}' has no model_index.json, so it is not a diffusers pipeline folder; "
            "save one with pipe.save_pretrained(folder)"
        )
    try:
        cls = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"'{name}': model_index.json is not a readable JSON object ({exc})") from exc
    if cls not in PIPELINE_FAMILIES:
        known = ", ".join(f"{c} ({f})" for c, f in PIPELINE_FAMILIES.items())
        raise InvalidInputError(f"'{name}' is a {cls!s} pipeline, which is no inpainting family the toolkit runs; "
                                f"it runs {known}")
    return PIPELINE_FAMILIES[cls]


def family_of_model(model: str | os.PathLike, *, offline: bool | None = None, revision: str | None = None) -> str | None:
    """The family of a model folder or hub id from its ``model_index.json`` alone (a hub id's is the one file
    fetched, or read from the cache), before anything else is read or loaded; ``None`` when it cannot be told
    here (loading the model then reports why)."""
    from .. import hub

    local = Path(model).expanduser()
    try:
        if local.is_dir():
            return family_of_folder(local)
        from huggingface_hub import hf_hub_download

        index = hf_hub_download(hub._canonical(os.fspath(model)), "model_index.json", revision=revision,
                                cache_dir=hub.cache_dir(), local_files_only=hub.is_offline(offline))
        return family_of_folder(Path(index).parent, os.fspath(model))
    except Exception:  # noqa: BLE001 - a bad id, no network, no such file: loading says which, with its fix
        return None


def _config_file(model: str | os.PathLike, name: str, *, offline: bool | None, revision: str | None) -> dict | None:
    """A model's config file as a dict: from its folder, or (a hub id) the one file fetched or read from the
    cache; ``None`` when it cannot be had here."""
    from .. import hub

    local = Path(model).expanduser()
    try:
        if local.is_dir():
            path = local / name
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(hub._canonical(os.fspath(model)), name, revision=revision,
                                        cache_dir=hub.cache_dir(), local_files_only=hub.is_offline(offline)))
        data = json.loads(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - no such file, no network: loading the model says why, with its fix
        return None
    return data if isinstance(data, dict) else None


def check_model_limits(model: str | os.PathLike, *, steps: int | None = None, offline: bool | None = None,
                       revision: str | None = None) -> str | None:
    """The limits a model's config files set, checked before any weights load: its family (``model_index.json``)
    and, when ``steps`` is given, the most steps its scheduler runs (``scheduler/scheduler_config.json``).

    Returns the family, or ``None`` when the config files cannot be read here (a model that is not cached
    offline: loading it reports that).

    Raises:
        InvalidInputError: ``steps`` beyond the scheduler's limit (naming it).
    """
    family = family_of_model(model, offline=offline, revision=revision)
    if family is None or steps is None:
        return family
    config = _config_file(model, "scheduler/scheduler_config.json", offline=offline, revision=revision)
    if config is not None:
        engine_class(family).check_scheduler_steps(steps, config)
    return family


def engine_for_pipeline(pipeline, *, training: bool = False) -> Engine:
    """Wrap an already built diffusers pipeline in its family's engine (by its class, or a parent's), with
    ``scheduler="auto"`` (``native``: a built pipeline carries no record of an alignment), or with the
    sampler the family trains on (``training``: ``ddim`` where it has one), so exports keep that scheduler."""
    if isinstance(pipeline, Engine):
        if training and pipeline.ddim_sampler and pipeline.scheduler_mode != "ddim":  # e.g. an Inpainter's, native
            return type(pipeline)(pipeline.pipeline, scheduler="ddim")
        return pipeline
    for klass in type(pipeline).__mro__:
        family = PIPELINE_FAMILIES.get(klass.__name__)
        if family is not None:
            cls = engine_class(family)
            return cls(pipeline, scheduler="ddim" if training and cls.ddim_sampler else "auto")
    raise InvalidInputError(f"a {type(pipeline).__name__} is no inpainting pipeline of a known family; "
                            f"the toolkit runs {', '.join(PIPELINE_FAMILIES)}")


def load_engine(folder: str | os.PathLike, *, model_id: str | None = None, **options) -> Engine:
    """Load a local pipeline folder with its family's engine; ``options`` go to :meth:`Engine.load`."""
    family = family_of_folder(folder, model_id)
    return engine_class(family).load(folder, model_id=model_id, **options)
