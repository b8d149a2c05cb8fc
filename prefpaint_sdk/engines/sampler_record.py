"""What ``scheduler="auto"`` samples a model with, and the record an alignment export leaves for it.

``auto`` is ``native`` (the shipped scheduler and the pipeline's defaults, what a diffusers user gets) for a
base model, and ``ddim`` (the alignment sampler) for a model aligned with DDIM: PrefPaint (the published
model, which its authors sample with DDIM, eta 1; the family engine lists it in ``ddim_models``) and any model
this toolkit aligned with DDIM, whose merged export holds :data:`SAMPLER_RECORD`.

Why a file of our own and not the exported scheduler config: a scheduler config says which scheduler class a
folder ships, not that the weights were trained on DDIM rollouts with a given eta. Base models ship DDIM
configs too (so the config would turn them to ``ddim``), and a user who swaps the scheduler and saves the
pipeline again would silently lose the fact. diffusers ignores the extra file, so the folder still loads with
plain ``DiffusionPipeline.from_pretrained``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

__all__ = ["SAMPLER_RECORD", "auto_scheduler", "read_sampler_record", "sampler_record", "write_sampler_record"]

SAMPLER_RECORD = "prefpaint_sampler.json"
"""The file, beside ``model_index.json``, that names the sampler a model was aligned with."""


def sampler_record(engine, *, eta: float | None = None, algo: str | None = None) -> dict[str, Any]:
    """The record of a model aligned through ``engine``: its sampler (``ddim`` where the family trains on DDIM
    rollouts, else ``native``), the eta it was trained with, and the algorithm."""
    scheduler = "ddim" if engine.ddim_sampler and engine.sampler_kind == "ddim" else "native"
    record: dict[str, Any] = {"scheduler": scheduler}
    if scheduler == "ddim" and eta is not None:
        record["eta"] = float(eta)
    if algo:
        record["algo"] = algo
    return record


def write_sampler_record(folder: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` into ``folder`` (a folder being built: the caller makes the whole folder atomic)."""
    path = Path(folder) / SAMPLER_RECORD
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_sampler_record(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """The folder's record, or ``None`` when it has none.

    Raises:
        InvalidInputError: a record that is not a JSON object naming ``scheduler`` as ``native`` or ``ddim``.
    """
    if folder is None:
        return None
    path = Path(folder) / SAMPLER_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"'{path}' is not readable JSON ({exc}); delete it or write it again") from exc
    if not isinstance(record, dict) or record.get("scheduler") not in ("native", "ddim"):
        raise InvalidInputError(f"'{path}' must be a JSON object with \"scheduler\": \"native\" or \"ddim\"; "
                                "delete it or write it again")
    eta = record.get("eta")
    if eta is not None and not (isinstance(eta, (int, float)) and 0 <= eta <= 1):
        raise InvalidInputError(f"'{path}': eta must be a number in [0, 1], got {eta!r}")
    return record


def auto_scheduler(engine_cls, folder: str | os.PathLike | None, model_id: str | None) -> tuple[str, dict | None]:
    """``(scheduler, record)``: what ``scheduler="auto"`` means for a model of ``engine_cls``'s family in
    ``folder`` (published as ``model_id``), and the folder's record (``None`` without one)."""
    record = read_sampler_record(folder)
    if not engine_cls.ddim_sampler:
        return "native", record
    if record is not None:
        return record["scheduler"], record
    if model_id is not None and model_id in engine_cls.ddim_models:
        return "ddim", None
    return "native", None
