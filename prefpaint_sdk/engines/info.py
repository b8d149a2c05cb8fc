"""What a model is, from its config files alone: family, working size, size multiple and defaults.

:func:`model_info` reads a folder's (or a hub id's cached) ``model_index.json``, scheduler config and each
component's ``config.json``, never the weights, and imports no torch, so an app can plan (``extend
--dry-run``) before any load. The facts themselves are the family engine's: :meth:`Engine.read_resolution`
and :meth:`Engine.read_size_multiple` read a :class:`Configs`, which is backed either by files
(:class:`FolderConfigs`) or by a loaded pipeline (:class:`PipelineConfigs`), so a loaded engine and
``model_info`` give the same numbers from one formula.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Arg, InvalidInputError, ModelNotFoundError

__all__ = ["Configs", "FolderConfigs", "PipelineConfigs", "ModelInfo", "model_info", "training_presets"]


class Configs:
    """A model's config dicts by component (``"unet"``, ``"vae"``, ``"transformer"``, ``"scheduler"``)."""

    def get(self, component: str) -> dict:
        """The component's config (``{}`` when it has none)."""
        raise NotImplementedError

    def value(self, component: str, key: str, default=None):
        return self.get(component).get(key, default)


class FolderConfigs(Configs):
    """Configs read from a diffusers folder's JSON files (or fetched one by one through ``fetch``)."""

    def __init__(self, folder: str | os.PathLike | None = None, fetch=None):
        self.folder = Path(folder) if folder is not None else None
        self.fetch = fetch
        self._cache: dict[str, dict] = {}

    def _path(self, relative: str) -> Path | None:
        if self.fetch is not None:
            return self.fetch(relative)
        return self.folder / relative

    def get(self, component: str) -> dict:
        if component not in self._cache:
            name = "scheduler_config.json" if component == "scheduler" else "config.json"
            self._cache[component] = _read_json(self._path(f"{component}/{name}")) or {}
        return self._cache[component]


class PipelineConfigs(Configs):
    """Configs of a loaded diffusers pipeline's components."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def get(self, component: str) -> dict:
        part = getattr(self.pipeline, component, None)
        config = getattr(part, "config", None)
        return dict(config) if config is not None else {}


@dataclass(frozen=True)
class ModelInfo:
    """A model's facts, known before it loads.

    Attributes:
        model: what was asked for (folder or hub id, after alias mapping).
        family: the engine family (``"sd"``, ``"sdxl"``, ``"flux-fill"``, ``"qwen-image"``, ...).
        pipeline_class: the diffusers pipeline class name of ``model_index.json``.
        resolution: the working size in pixels (what ``Inpainter.resolution`` reports once loaded).
        size_multiple: both sides of the model's input are multiples of this.
        defaults: ``steps``, ``guidance_scale``, ``eta`` (``None``: no eta) and ``strength``, the family's.
        guidance: what ``guidance_scale`` is for the family: ``"cfg"``, ``"true-cfg"`` or ``"distilled"``.
        has_negative_prompt / alignable: whether the family takes a negative prompt / can be aligned.
        training_presets: the family's values of the named alignment presets (``Engine.training_presets``).
        scheduler: what ``scheduler="auto"`` samples it with: "native" (a base model) or "ddim" (PrefPaint,
            or a model aligned with DDIM whose export records it); ``defaults`` are that sampler's.
    """

    model: str
    family: str
    pipeline_class: str
    resolution: int
    size_multiple: int
    defaults: dict[str, Any] = field(default_factory=dict)
    guidance: str = "cfg"
    has_negative_prompt: bool = True
    alignable: bool = False
    training_presets: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    scheduler: str = "native"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_info(model: str | os.PathLike, *, offline: bool | None = None, revision: str | None = None) -> ModelInfo:
    """The family, working size, size multiple and defaults of a model folder or hub id, from its config files.

    A local folder is read as it is; a hub id (or alias such as ``sdxl-inpaint``) reads its small config files
    from the hub cache, fetching them when online. A published id whose files are out of reach (offline,
    not cached) is still told by the family engine that lists it (``Engine.hub_models``). No torch import.

    Raises:
        InvalidInputError: not a diffusers inpainting folder of a known family.
        ModelNotFoundError: a hub id whose configs cannot be read here and which no family lists.
    """
    from . import engine_class, engine_classes, family_of_folder

    text = os.fspath(model)
    local = Path(text).expanduser()
    if local.is_dir():
        family = family_of_folder(local)
        cls = engine_class(family)
        return _info(cls, str(local), FolderConfigs(local))
    from .. import hub

    model_id = hub._canonical(text)
    if not hub._HUB_ID.match(model_id):
        raise InvalidInputError(f"model '{text}' is neither an existing folder nor a hub id of the form 'owner/name'; "
                                "check the path")
    configs = _hub_configs(model_id, offline=offline, revision=revision)
    if configs is not None:
        cls = engine_class(family_of_folder(configs.folder, model_id))
        return _info(cls, model_id, configs)
    for cls in engine_classes():
        if model_id in cls.hub_models:
            return _info(cls, model_id, None, resolution=cls.hub_models[model_id])
    raise ModelNotFoundError(f"cannot read the config files of '{text}' here (not a folder, not in the hub cache"
                             f"{' and offline' if hub.is_offline(offline) else ''}); download it first "
                             "(prefpaint download ID), or pass the sizes explicitly (extend: ", Arg("window"), ")")


def _info(cls, model: str, configs: Configs | None, resolution: int | None = None) -> ModelInfo:
    from .sampler_record import auto_scheduler

    scheduler, record = auto_scheduler(cls, getattr(configs, "folder", None), model)
    if configs is not None:
        resolution = cls.read_resolution(configs)
        multiple = cls.read_size_multiple(configs)
    else:
        multiple = cls.published_size_multiple
    return ModelInfo(model=model, family=cls.family, pipeline_class=cls.pipeline_class_name,
                     resolution=int(resolution), size_multiple=int(multiple),
                     defaults=cls.defaults_for(scheduler, configs, record),
                     guidance=cls.guidance_kind, has_negative_prompt=cls.has_negative_prompt,
                     alignable=bool(cls.alignable), training_presets=copy.deepcopy(cls.training_presets),
                     scheduler=scheduler)


def training_presets() -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Every registered family's values of the named alignment presets: preset -> family -> part ->
    values, where a part is ``"common"`` (the shared settings) or an algorithm's name (its own settings).
    From the engine classes alone (no torch), so a run resolves its preset before any model loads."""
    from . import engine_classes

    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for cls in engine_classes():
        for preset, parts in cls.training_presets.items():
            out.setdefault(preset, {})[cls.family] = copy.deepcopy(parts)
    return out


def _hub_configs(model_id: str, *, offline, revision) -> FolderConfigs | None:
    """The hub id's configs from the cache (or fetched when online); ``None`` when ``model_index.json`` is out
    of reach. Components' configs come one file at a time, as they are asked for."""
    from .. import hub

    try:
        from huggingface_hub import hf_hub_download

        def fetch(relative: str) -> Path | None:
            try:
                return Path(hf_hub_download(model_id, relative, revision=revision, cache_dir=hub.cache_dir(),
                                            local_files_only=hub.is_offline(offline)))
            except Exception:  # noqa: BLE001 - a component without that file: no config
                return None

        index = fetch("model_index.json")
    except Exception:  # noqa: BLE001 - a malformed id: the caller reports it
        return None
    if index is None:
        return None
    configs = FolderConfigs(index.parent, fetch=fetch)
    return configs


def _read_json(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"'{path}' is not readable JSON ({exc})") from exc
    return data if isinstance(data, dict) else None
