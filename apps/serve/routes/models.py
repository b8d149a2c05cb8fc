"""``GET /v1/models`` (the served models, with their family and defaults) and ``GET /health``."""

import time

from fastapi import APIRouter, Depends, Request

from ..params import MAX_N
from ..schema import responses
from ..work import model_facts
from . import authenticated, state

router = APIRouter()


def _entry(st, served) -> dict:
    facts = model_facts(served.inpainter, st.reward_model)
    return {**facts, "id": served.name, "model_id": facts["id"], "object": "model", "created": int(st.started),
            "owned_by": "prefpaint", "defaults": served.params.defaults()}


@router.get("/v1/models", dependencies=[Depends(authenticated)],
            responses=responses({200: ("the served models", {"application/json": {"type": "object"}})}, 401))
async def models(request: Request):
    st = state(request)
    return {"object": "list", "data": [_entry(st, m) for m in st.models.values()]}


@router.get("/health")
async def health(request: Request):
    st = state(request)
    first = st.default
    return {"status": "ok", "model": first.inpainter.model_id, "family": first.inpainter.family,
            "models": list(st.models), "reward_model": st.reward_model is not None, "auth": bool(st.api_key),
            "queue": {"busy": sum(q.busy for q in st.queues), "max": st.max_queue},
            "uptime_s": round(time.time() - st.started, 3),
            "limits": {"max_upload_bytes": st.cap, "max_pixels": st.max_pixels, "max_n": MAX_N},
            "default_steps": st.default_steps}
