"""``POST /v1/score``: the reward model's score, bound and trust of one (image, mask) pair."""

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ..forms import ApiError, read_form
from ..schema import JOB, SCORE_FIELDS, WAIT, body, responses
from ..state import wants_wait
from ..work import is_stack, score_job
from . import authenticated, state

router = APIRouter(dependencies=[Depends(authenticated)])

FIELDS = set(SCORE_FIELDS)  # the schema's fields are the ones accepted


@router.post("/v1/score", responses=responses({200: ("score, bound and trust", {"application/json": {"type": "object"}}),
                                               202: ("queued (wait=false): the job", {"application/json": JOB})},
                                              400, 401, 408, 409, 413, 415, 422, 429, 500),
             openapi_extra={**body(SCORE_FIELDS, ["image"]), "parameters": WAIT})
async def score(request: Request):
    st = state(request)
    rm = st.reward_model
    if rm is None:
        raise ApiError(400, "no reward model is loaded; start the server with --reward-model", code="no_reward_model")
    wait = wants_wait(request)
    form = await read_form(request, st.cap, allowed=FIELDS, timeout=st.upload_timeout_s)
    image_bytes = form.file("image", required=True)
    mask_bytes = form.file("mask")
    masked_bytes = form.file("masked_image")
    if mask_bytes is None and masked_bytes is None:
        raise ApiError(422, "'mask' is required (or 'masked_image', the input with the hole blanked)", param="mask")
    invert, from_alpha = form.boolean("invert_mask"), form.boolean("mask_from_alpha")
    normalize = form.boolean("normalize")
    prompt = form.text("prompt") if "prompt" in form.fields else None
    if is_stack(rm):
        if mask_bytes is None:
            raise ApiError(422, "'mask' is required: the reward stack scores the hole (seam, outside-change)", param="mask")
        if normalize:
            raise ApiError(400, "'normalize' is the PrefPaint model's release scale; this server scores with a reward "
                                "stack (every reward on its own scale): leave it out", param="normalize")

    def decode():
        image = st.uploads.image(image_bytes, "image")
        masked = st.uploads.image(masked_bytes, "masked_image") if masked_bytes is not None else None
        hole = None
        if mask_bytes is not None:
            hole = st.uploads.mask(mask_bytes, "mask", invert, from_alpha)
            if hole.shape[::-1] != image.size:
                raise ApiError(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but image is "
                                    f"{image.width}x{image.height}; they must match", param="mask")
        if masked is not None and masked.size != image.size:
            raise ApiError(400, f"masked_image is {masked.width}x{masked.height} but image is "
                                f"{image.width}x{image.height}; they must match", param="masked_image")
        return image, hole, masked

    image, hole, masked = await run_in_threadpool(decode)
    # Scores run on the first model's queue: one reward model, one worker at a time on its device.
    served = st.default
    job = st.submit(served, "score", lambda j: score_job(j, rm, image, hole, masked, normalize, prompt))
    if not wait:
        return st.accepted(job, served.queue)
    return await st.finish(request, job, served.queue)
