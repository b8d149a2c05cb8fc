"""What a job does with the model: inpaint or score, and the JSON facts of the answer.

These functions run on the queue's worker thread. They take decoded inputs (a PIL image and a boolean
hole mask, checked by the request handler) and only call the public SDK: ``Inpainter.__call__`` and
``RewardModel.score``. Any engine whose ``Inpainter`` keeps that call signature is served unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .answers import B64, b64_png

__all__ = ["chosen_index", "encode_images", "inpaint_job", "model_facts", "score_job", "trust_of"]


def encode_images(facts: dict[str, Any]) -> dict[str, Any]:
    """A finished inpaint job's facts with its images as base64 PNG text (:class:`.answers.B64`, for
    :func:`.answers.json_body`; idempotent: encoded ones stay)."""
    images = facts.get("images")
    if images and not all(isinstance(im, B64) for im in images):
        facts["images"] = [im if isinstance(im, B64) else b64_png(im) for im in images]
    return facts


def trust_of(reward_model, bounds: list[float] | None) -> list[float] | None:
    """Trust weights for the bounds, from the reward model's trust statistics (``None`` without them)."""
    trust = getattr(reward_model, "trust", None) if reward_model is not None else None
    if bounds is None or trust is None:
        return None
    import torch

    return [float(t) for t in trust.weight(bound=torch.tensor(bounds, dtype=torch.float64))]


def chosen_index(scores, bounds, select: str, lcb_c: float, default: int = 0) -> int:
    """The candidate to show first: highest score ("reward") or lower confidence bound ("lcb")."""
    if not scores:
        return default
    keys = np.asarray(scores, dtype=np.float64)
    if select == "lcb" and bounds is not None:
        keys = keys - lcb_c * np.asarray(bounds, dtype=np.float64)
    return int(np.argmax(keys))


def model_facts(inpainter, reward_model) -> dict[str, Any]:
    """The served model's id, family and revision (and the reward model's), as every answer reports them."""
    facts = {"id": getattr(inpainter, "model_id", None), "revision": getattr(inpainter, "revision", None),
             "family": family_of(inpainter)}
    if reward_model is not None:
        facts["reward_model"] = {"id": getattr(reward_model, "model_id", None),
                                 "revision": getattr(reward_model, "revision", None)}
    return facts


def family_of(inpainter) -> str | None:
    """The engine family of the served inpainter (``None`` for one without a family)."""
    family = getattr(inpainter, "family", None)
    return str(family) if family else None


def inpaint_job(job, inpainter, reward_model, image, hole, call: dict, select: str,
                output_dir: Path | None) -> dict[str, Any]:
    """Run one inpainting call and return its JSON facts: the sidecar's, plus the images and trust."""
    t0 = time.perf_counter()
    queued_s = time.time() - job.created
    result = inpainter(image, hole, progress=job.progress, **call)
    if job.cancelled:  # cancelled during the last step or the scoring: nobody wants the answer
        from .jobs import Cancelled

        raise Cancelled()
    trust = trust_of(reward_model, result.bounds)
    chosen = chosen_index(result.scores, result.bounds, select, getattr(inpainter, "lcb_c", 1.0), result.best_index)
    facts = result.to_dict()
    facts["params"] = dict(facts.get("params", {}), select=select)
    facts.update(
        # PIL images here; the request's handler encodes them (encode_images) so the worker can start the next job
        id=job.id, created=int(job.created), images=list(result.candidates), trust=trust,
        chosen=chosen, best_index=chosen, seed=result.seeds[chosen], model=model_facts(inpainter, reward_model),
    )
    timings = dict(facts.get("timings") or {})
    timings.update(queue_s=queued_s, job_s=time.perf_counter() - t0)
    facts["timings"] = timings
    if output_dir is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(job.created))
        # The name comes from the server (time and job id), never from the request.
        written = result.save(output_dir / f"{stamp}-{job.id}.png", save_all=len(result.candidates) > 1)
        facts["files"] = [Path(w).name for w in written]
    return facts


def score_job(job, reward_model, image, hole, masked, normalize: bool) -> dict[str, Any]:
    """Score one (image, mask) pair: reward, bound and trust."""
    kw = {"masked_images": masked} if masked is not None else {"masks": hole}
    out = reward_model.score(image, normalize=normalize, **kw)
    rec = out.to_records()[0]
    rec.update(id=job.id, created=int(job.created), normalized=normalize,
               reward_model={"id": getattr(reward_model, "model_id", None),
                             "revision": getattr(reward_model, "revision", None)})
    return rec
