"""``POST /v1/inpaint``: the native inpainting call (white-means-fill mask, every SDK knob, reward scores)."""

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import at_least, fit_mask_to_image

from ..forms import ApiError, api_text, read_form
from ..schema import INPAINT_FIELDS, JOB, WAIT, body, responses
from ..state import encoded_answer, wants_wait
from ..uploads import sdk_error
from ..work import inpaint_job
from . import authenticated, state

router = APIRouter(dependencies=[Depends(authenticated)])

FIELDS = {"image", "mask", "prompt", "negative_prompt", "n", "seed", "steps", "guidance", "select", "eta",
          "crop_margin", "mask_dilate", "mask_blur", "invert_mask", "mask_from_alpha", "resize_mask", "model"}


@router.post("/v1/inpaint", responses=responses({200: ("the inpainting: images (base64 PNG), seeds, scores", {
    "application/json": {"type": "object"}}), 202: ("queued (wait=false): the job", {"application/json": JOB})},
    400, 401, 404, 408, 409, 413, 415, 422, 429, 500),
    openapi_extra={**body(INPAINT_FIELDS, ["image", "mask"]), "parameters": WAIT})
async def inpaint(request: Request):
    st = state(request)
    wait = wants_wait(request)
    form = await read_form(request, st.cap, allowed=FIELDS, timeout=st.upload_timeout_s)
    served = st.model(form.text("model"))
    params, inpainter = served.params, served.inpainter
    image_bytes = form.file("image", required=True)
    mask_bytes = form.file("mask", required=True)
    invert, from_alpha = form.boolean("invert_mask"), form.boolean("mask_from_alpha")
    resize = form.boolean("resize_mask")
    n = form.integer("n", 1)
    seed = form.integer("seed")
    steps = params.steps_of(form)
    guidance = params.guidance_of(form)
    eta = form.number("eta")
    select = form.choice("select", ("reward", "lcb"), inpainter.select)
    call = dict(prompt=form.text("prompt", ""), negative_prompt=form.text("negative_prompt", ""),
                num_candidates=n, seed=seed, steps=steps, guidance_scale=guidance, eta=eta,
                crop_margin=form.integer("crop_margin", 128), mask_dilate=form.integer("mask_dilate", 0),
                mask_blur=form.integer("mask_blur", 8))
    call["steps"] = params.check(n, seed, steps, guidance, call["negative_prompt"], eta)
    for name in ("mask_dilate", "mask_blur"):
        try:
            at_least(name, call[name], 0)
        except InvalidInputError as exc:
            raise sdk_error(exc) from None

    def decode():
        image = st.uploads.image(image_bytes, "image")
        hole = st.uploads.mask(mask_bytes, "mask", invert, from_alpha)
        try:
            hole = fit_mask_to_image(hole, image.size, resize=resize)
        except InvalidInputError as exc:
            raise ApiError(400, api_text(exc, fields={"resize_mask"}), param="mask") from None
        return image, hole

    image, hole = await run_in_threadpool(decode)
    job = st.submit(served, "inpaint", lambda j: inpaint_job(j, inpainter, st.reward_model, image, hole, call,
                                                             select, st.out_dir))
    if not wait:
        return st.accepted(job, served.queue)
    facts = await st.finish(request, job, served.queue, encode=False)
    if not isinstance(facts, dict):
        return facts  # the client went away
    # Encoding and serialising in one threadpool hop: the event loop only sends the bytes.
    return await run_in_threadpool(encoded_answer, facts)
