"""``prefpaint eval`` on N processes: :func:`~prefpaint_sdk.evaluation.evaluate` with this process's share of the cases.

Launch the same command under ``torchrun --nproc_per_node N`` or ``accelerate launch --num_processes N``.
Case ``name`` goes to rank ``sha256(name) mod N`` (:func:`~prefpaint_sdk.jobs.shard_of`, as manifest items);
each case is published as one output set (its images and ``cache/<name>.json``); after every rank is done,
every rank reads all cases from the cache and rank 0 writes the report. A rerun (with any N) skips the
finished cases, so after a crash or ``kill -9`` of any process each case ends up computed exactly once.
"""

from __future__ import annotations

from typing import Any

from ..evaluation import EvalReport, evaluate
from .runner import JobContext

__all__ = ["run_eval_job"]


def run_eval_job(model, baseline, reward_model, pairs, *, out_dir, device: str = "auto",
                 ctx: JobContext | None = None, **kwargs: Any) -> EvalReport:
    """:func:`~prefpaint_sdk.evaluation.evaluate` on the processes the launcher started (one without a launcher).

    Takes :func:`evaluate`'s arguments; ``out_dir`` is required (every process must see it). Every rank returns
    the same report; only rank 0 writes the report files. Call ``ctx.close()`` at the end when you pass ``ctx``.

    Raises:
        The errors of :func:`evaluate`, on every rank alike.
    """
    ctx = ctx or JobContext.detect(cpu=device == "cpu")
    return evaluate(model, baseline, reward_model, pairs, out_dir=out_dir, device=device, ctx=ctx, **kwargs)
