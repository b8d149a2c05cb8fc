"""``stream=true`` on ``/v1/images/edits``: the answer as server-sent events, as OpenAI's clients read them.

``partial_images`` (0-3) events ``image_edit.partial_image`` come while the model runs: the model's prediction
of the finished image (x0) at evenly spaced denoising steps, decoded and composited as the final image is
(:meth:`prefpaint_sdk.Inpainter.__call__`'s ``previews``; of the first candidate). Then one
``image_edit.completed`` per candidate, in seed order, with its score, and the call's ``usage``. A failure is one
``error`` event. A client that goes away stops its job: queued, it never runs; running, it stops at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .answers import b64_bytes, json_body
from .formats import encode, with_background
from .jobs import DONE, FINISHED
from .work import usage

__all__ = ["stream_edit"]

log = logging.getLogger(__name__)


def _event(kind: str, body) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), json_body(body))


def stream_edit(st, served, req, work, finish_images, echo: dict, image, hole, original):
    """The streaming answer of one edit request (already checked); its job is queued now (429 when full)."""
    from fastapi.responses import StreamingResponse

    loop = asyncio.get_running_loop()
    partials: asyncio.Queue = asyncio.Queue()

    def on_preview(k, step, images):  # the worker thread: encode here, hand the bytes to the event loop
        shown = images[0]
        if original is not None:
            shown = with_background(shown, image, original, hole)
        data = encode(shown, req.output_format, req.output_compression)
        loop.call_soon_threadsafe(partials.put_nowait, (k, data))

    job = st.submit(served, "edit", lambda j: work(j, preview=(req.partial_images, on_preview)))

    def partial(k: int, data: bytes) -> bytes:
        return _event("image_edit.partial_image", {
            "type": "image_edit.partial_image", "b64_json": b64_bytes(data), "created_at": int(time.time()),
            "partial_image_index": k, **echo})

    async def events():
        from starlette.concurrency import run_in_threadpool

        done = job.future()
        try:
            while True:
                got = asyncio.ensure_future(partials.get())
                await asyncio.wait({got, done}, return_when=asyncio.FIRST_COMPLETED)
                if not got.done():
                    got.cancel()
                    break
                yield partial(*got.result())
            while not partials.empty():  # previews that came with the job's last steps
                yield partial(*partials.get_nowait())
            served.queue.forget(job)
            if job.state != DONE:
                yield _event("error", st.job_error(job).body())
                return
            facts = job.result
            files = await run_in_threadpool(finish_images, facts)
            for k, data in enumerate(files):
                yield _event("image_edit.completed", {
                    "type": "image_edit.completed", "b64_json": b64_bytes(data), "created_at": int(time.time()), **echo,
                    "usage": usage(facts), "index": k, "seed": facts["seeds"][k],
                    "score": None if facts["scores"] is None else facts["scores"][k],
                    "bound": None if facts["bounds"] is None else facts["bounds"][k],
                    "trust": None if facts["trust"] is None else facts["trust"][k], "chosen": k == facts["chosen"],
                    "model": facts["model"]["id"]})
        finally:
            # The client went away (the response was cancelled mid-stream) or the stream ended: a job still
            # queued or running is no one's now.
            if job.state not in FINISHED:
                served.queue.cancel(job)
                log.info("stream client went away; job %s cancelled", job.id)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


