"""``--manifest`` mode of ``prefpaint inpaint`` and ``prefpaint score``, and folder batches (a manifest of the
folder's images): parse, call the SDK's job runner, report.

Launch the same command line under ``torchrun --nproc_per_node N`` or ``accelerate launch`` to run on N
processes; rank 0 shows the one progress bar and the summary, the other ranks stay quiet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import typer

from ._common import EXIT_FAILED, failed, progress, say, say_error
from ._flags import cli_message


def check_manifest_mode(manifest: Path | None, image: Path | None, mask: Path | None, output: Path | None) -> bool:
    """True in manifest mode. IMAGE and MASK are required without --manifest and refused with it."""
    from prefpaint_sdk.errors import InvalidInputError

    if manifest is None:
        if image is None or mask is None:
            raise InvalidInputError("pass IMAGE and MASK, or --manifest jobs.jsonl -o OUT")
        return False
    if image is not None or mask is not None:
        raise InvalidInputError("--manifest takes the images and masks from its rows; pass no IMAGE or MASK with it")
    if output is None:
        raise InvalidInputError("--manifest needs -o OUT, the folder for every item's outputs and results.jsonl")
    return True


def quiet_rank(quiet: bool) -> bool:
    """Only rank 0 shows progress and messages when launched on several processes."""
    return quiet or int(os.environ.get("RANK", "0") or 0) != 0


@contextmanager
def job_context(cpu: bool = False) -> Iterator[Any]:
    """This process's :class:`~prefpaint_sdk.jobs.JobContext`, left cleanly at the end (or on an error)."""
    from prefpaint_sdk.jobs import JobContext

    ctx = JobContext.detect(cpu=cpu)
    try:
        yield ctx
    finally:
        ctx.close()


def run(what: str, quiet: bool, job: Callable[..., Any], cpu: bool = False, noun: str = "items",
        done: Callable[[Any], None] | None = None) -> None:
    """Call ``job(progress=..., ctx=...)`` with rank 0's progress bar, then report (``done(summary)`` first, on
    rank 0) and set the exit code. A failed item's stored message names its parameters as this command's flags."""
    with progress(quiet_rank(quiet)) as bar, job_context(cpu) as ctx:
        task = bar.add_task(what, total=None)
        summary = job(progress=lambda done, total: bar.update(task, completed=done, total=total), ctx=ctx)
    if not ctx.is_main:
        return
    if not quiet:
        n = ctx.world_size
        say(f"{summary.total} items on {n} process{'es' if n > 1 else ''}: {summary.total - len(summary.failures)} "
            f"done, {len(summary.failures)} failed; results in {summary.results}")
    if done is not None:
        done(summary)
    for item_id, msg in summary.failures:
        failed(item_id, cli_message(getattr(msg, "parts", None) or (str(msg),)))
    if summary.failures:
        say_error(f"{len(summary.failures)} of {summary.total} {noun} failed (rerun the command to retry them)",
                  prefix="")
        raise typer.Exit(EXIT_FAILED)
