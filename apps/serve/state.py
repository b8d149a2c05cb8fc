"""What every route shares, kept on ``app.state.serve``: the served models, their queues, the limits, and the
steps of a job's life (submit, await, answer) that every resource goes through.

One :class:`ServedModel` per model: the caller's ``Inpainter`` is never changed (a copy that scores with the
server's reward model is served), and each model has its own bounded queue and worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefpaint_sdk import InvalidInputError

from .answers import json_body
from .errors import key_check
from .forms import ApiError, api_text
from .jobs import CANCELLED, DONE, FAILED, Job, JobQueue, QueueFull
from .params import Params
from .store import FileStore
from .uploads import Uploads, sdk_error
from .work import encode_images

__all__ = ["ServeState", "ServedModel"]

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One model the server runs: its name in requests, the inpainter it calls, its checks and its queue."""

    name: str
    inpainter: Any
    params: Params
    queue: JobQueue


@dataclass
class ServeState:
    """The server's settings and shared objects (built once by ``create_app``)."""

    models: dict[str, ServedModel]
    reward_model: Any
    api_key: str | None
    cap: int
    max_pixels: int
    max_queue: int
    default_steps: int | None
    store: FileStore
    out_dir: Path | None
    public_url: str | None
    upload_timeout_s: float
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        self.uploads = Uploads(self.max_pixels)
        self.auth = key_check(self.api_key)

    # ---- models ---------------------------------------------------------------------------
    @property
    def default(self) -> ServedModel:
        return next(iter(self.models.values()))

    def model(self, name: str | None) -> ServedModel:
        """The model a request names; 404 naming the served ones. With one model served, any name (or none) is
        that model: OpenAI's clients must send a ``model`` and default to their own ids."""
        if not name or len(self.models) == 1:
            return self.default
        found = self.models.get(name)
        if found is None:
            aliases = {m.inpainter.model_id: m for m in self.models.values()}
            found = aliases.get(name)
        if found is None:
            raise ApiError(404, f"no model named {name[:80]!r} is served here; served: {', '.join(self.models)}",
                           param="model", code="model_not_found")
        return found

    @property
    def queues(self) -> list[JobQueue]:
        return [m.queue for m in self.models.values()]

    # ---- a job's life ---------------------------------------------------------------------
    def submit(self, served: ServedModel, kind: str, fn) -> Job:
        try:
            return served.queue.submit(kind, fn)
        except QueueFull as exc:
            raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}, code="queue_full") from None

    def queue_of(self, job: Job) -> JobQueue:
        for q in self.queues:
            if q.get(job.id) is job:
                return q
        return self.default.queue

    def find(self, job_id: str) -> Job:
        job = None
        if len(job_id) <= 64:
            job = next((j for j in (q.get(job_id) for q in self.queues) if j is not None), None)
        if job is None:
            raise ApiError(404, "no such job (unknown, or finished long ago and forgotten)", param="id",
                           code="job_not_found")
        return job

    @staticmethod
    def job_error(job: Job) -> ApiError:
        exc = job.error
        if isinstance(exc, ApiError):
            return exc
        if isinstance(exc, InvalidInputError):
            return sdk_error(exc)
        if job.state == CANCELLED:
            return ApiError(409, "the job was cancelled", code="cancelled")
        log.error("job %s failed: %s: %s", job.id, type(exc).__name__, exc)
        return ApiError(500, f"the model failed: {type(exc).__name__}: {api_text(exc)[:300]}", code="job_failed")

    async def finish(self, request, job: Job, queue: JobQueue, encode: bool = True):
        """Await ``job``; a client that goes away cancels it (dropped if queued, stopped if running).

        With ``encode`` its images come back as base64 PNG text, else as the PIL images the job made."""
        from fastapi.responses import Response

        fut = job.future()
        # One waiter for the client's disconnect instead of polling it every 0.2 s: with K clients queued each
        # poll was a task, a cancel scope and a timer on the event loop, Python holding the GIL the job needs.
        gone = asyncio.ensure_future(disconnected(request))
        try:
            await asyncio.wait({fut, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not fut.done():
            queue.cancel(job)
            log.info("client went away; job %s cancelled", job.id)
            return Response(status_code=499)
        queue.forget(job)
        if job.state != DONE:
            raise self.job_error(job)
        if encode:
            await ready(job)
        return job.result

    def job_view(self, job: Job) -> dict[str, Any]:
        snap = self.queue_of(job).snapshot(job)
        if job.state == DONE:
            snap["result"] = job.result
        elif job.state in (FAILED, CANCELLED):
            snap["error"] = self.job_error(job).body()["error"]
        return snap

    def accepted(self, job: Job, queue: JobQueue):
        from fastapi.responses import JSONResponse

        snap = queue.snapshot(job)
        snap.update(status_url=f"/v1/jobs/{job.id}", events_url=f"/v1/jobs/{job.id}/events")
        return JSONResponse(snap, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def json_answer(body: Any, status_code: int = 200):
    """``body`` as JSON, its images' base64 text written once (:mod:`.answers`)."""
    from fastapi.responses import Response

    return Response(json_body(body), status_code=status_code, media_type="application/json")


def encoded_answer(facts: dict[str, Any]):
    """A finished inpainting's answer: PNG and base64 of its images, then the JSON bytes (threadpool)."""
    return json_answer(encode_images(facts))


async def ready(job: Job) -> None:
    """A finished job's images as PNG text, encoded in the threadpool: not on the queue's one worker thread,
    where encoding would add to every job (benchmarks/bench_serve.py)."""
    from starlette.concurrency import run_in_threadpool

    if job.state == DONE and isinstance(job.result, dict):
        await run_in_threadpool(encode_images, job.result)


def wants_wait(request) -> bool:
    raw = request.query_params.get("wait", "true").strip().lower()
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ApiError(422, f"'wait' must be true or false, got {raw[:20]!r}", param="wait")
    return raw in ("1", "true", "yes")


async def disconnected(request) -> None:
    """Return once the client has gone away. Called after the body was read: the server's next message is then
    ``http.disconnect`` (sent when the connection drops, or once the answer is complete)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.2)  # a server that answers at once with an empty body: poll as before, never spin
