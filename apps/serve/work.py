"""What a job does with the model: inpaint or score, and the JSON facts of the answer.

These functions run on the queue's worker thread. They take decoded inputs (a PIL image and a boolean
hole mask, checked by the request handler) and only call the public SDK: ``Inpainter.__call__`` and
``RewardModel.score``. Any engine whose ``Inpainter`` keeps that call signature is served unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .answers import B64, b64_png

__all__ = ["encode_images", "inpaint_job", "model_facts", "reward_facts", "score_job", "usage"]


def encode_images(facts: dict[str, Any]) -> dict[str, Any]:
    """A finished inpaint job's facts with its images as base64 PNG text (:class:`.answers.B64`, for
    :func:`.answers.json_body`; idempotent: encoded ones stay)."""
    images = facts.get("images")
    if images and not all(isinstance(im, B64) for im in images):
        facts["images"] = [im if isinstance(im, B64) else b64_png(im) for im in images]
    return facts


def model_facts(inpainter, reward_model) -> dict[str, Any]:
    """The served model's id, family and revision (and the reward model's), as every answer reports them."""
    facts = {"id": inpainter.model_id, "revision": inpainter.revision, "family": inpainter.family}
    if reward_model is not None:
        facts["reward_model"] = reward_facts(reward_model)
    return facts


def reward_facts(reward_model) -> dict[str, Any]:
    if is_stack(reward_model):
        return reward_model.facts()
    return {"id": reward_model.model_id, "revision": reward_model.revision}


def is_stack(reward_model) -> bool:
    """Whether the server scores with a reward stack (``--reward``), not one reward model."""
    return hasattr(reward_model, "score_image") and hasattr(reward_model, "labels")



def inpaint_job(job, inpainter, reward_model, image, hole, call: dict, select: str,
                output_dir: Path | None, preview=None) -> dict[str, Any]:
    """Run one inpainting call and return its JSON facts: the sidecar's, plus the images and trust.

    ``preview``: ``(count, on_preview)`` for a stream's partial images (``Inpainter``'s ``previews``)."""
    t0 = time.perf_counter()
    queued_s = time.time() - job.created
    shown = dict(previews=preview[0], on_preview=preview[1]) if preview else {}
    result = inpainter(image, hole, progress=job.progress, **call, **shown)
    if job.cancelled:  # cancelled during the last step or the scoring: nobody wants the answer
        from .jobs import Cancelled

        raise Cancelled()
    chosen = result.choose(select, inpainter.lcb_c)
    facts = result.to_dict()
    facts["params"] = dict(facts.get("params", {}), select=select)
    facts.update(
        # PIL images here; the request's handler encodes them (encode_images) so the worker can start the next job
        id=job.id, created=int(job.created), images=list(result.candidates),
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


def usage(facts: dict[str, Any]) -> dict[str, Any]:
    """What an inpainting cost, honestly counted (diffusion has no tokens): denoiser evaluations of one candidate
    (two per step under classifier-free guidance), output images and pixels, seconds of model time."""
    w, h = facts["size"]
    n = len(facts["seeds"])
    return {"denoiser_passes": int(facts["params"].get("denoiser_passes", 0)), "images": n,
            "pixels": int(w) * int(h) * n, "seconds": round(facts["timings"]["job_s"], 6)}


def score_job(job, reward_model, image, hole, masked, normalize: bool, prompt: str | None = None) -> dict[str, Any]:
    """Score one (image, mask) pair: reward, bound and trust (with a stack: every reward's too)."""
    if is_stack(reward_model):
        rec = reward_model.score_image(image, hole, masked_image=masked, prompt=prompt)
        rec.update(id=job.id, created=int(job.created), normalized=False, reward_model=reward_facts(reward_model))
        return rec
    kw = {"masked_images": masked} if masked is not None else {"masks": hole}
    out = reward_model.score(image, normalize=normalize, **kw)
    rec = out.to_records()[0]
    rec.update(id=job.id, created=int(job.created), normalized=normalize,
               reward_model=reward_facts(reward_model))
    return rec
