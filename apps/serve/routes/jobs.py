"""``/v1/jobs/{id}``: a queued job's state and result, its cancellation, and its events as server-sent events."""

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..answers import json_body
from ..jobs import FINISHED
from ..schema import JOB, SSE, responses
from ..state import json_answer, ready
from . import authenticated, state

router = APIRouter(dependencies=[Depends(authenticated)])


@router.get("/v1/jobs/{job_id}", responses=responses({200: ("the job", {"application/json": JOB})}, 401, 404))
async def job_status(job_id: str, request: Request):
    st = state(request)
    job = st.find(job_id)
    await ready(job)
    return json_answer(st.job_view(job))


@router.delete("/v1/jobs/{job_id}", responses=responses({200: ("the job", {"application/json": JOB})}, 401, 404))
async def job_cancel(job_id: str, request: Request):
    st = state(request)
    job = st.find(job_id)
    queue = st.queue_of(job)
    queue.cancel(job)
    return queue.snapshot(job)


@router.get("/v1/jobs/{job_id}/events", responses=responses({200: ("the job's states as server-sent events", SSE)}, 401, 404))
async def job_events(job_id: str, request: Request):
    st = state(request)
    job = st.find(job_id)

    async def stream():
        last = None
        while True:
            await ready(job)
            view = st.job_view(job)
            mark = (view["status"], view.get("position"), view.get("step"))
            if mark != last:
                last = mark
                yield b"event: %s\ndata: %s\n\n" % (view["status"].encode(), json_body(view))
            if job.state in FINISHED or await request.is_disconnected():
                return
            await asyncio.sleep(0.1)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
