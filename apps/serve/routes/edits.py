"""``POST /v1/images/edits``: OpenAI's image-edit call (transparent-means-edit mask), with reward scores."""

import numpy as np
from fastapi import APIRouter, Depends, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ..forms import ApiError, read_form
from ..origin import public_base
from ..params import parse_size
from ..png import png_bytes
from ..state import json_answer
from ..work import inpaint_job
from . import authenticated, state

router = APIRouter(dependencies=[Depends(authenticated)])


@router.post("/v1/images/edits")
async def edits(request: Request):
    st = state(request)
    form = await read_form(request, st.cap, allowed=None, timeout=st.upload_timeout_s)  # OpenAI clients send extras
    served = st.model(form.text("model"))
    params, inpainter = served.params, served.inpainter
    image_bytes = form.file("image", "image[]", required=True)
    mask_bytes = form.file("mask")
    n = form.integer("n", 1)
    size = form.text("size", "auto") or "auto"
    fmt = form.choice("response_format", ("b64_json", "url"), "b64_json")
    if form.boolean("stream"):
        raise ApiError(400, "stream=true is not supported by this server", param="stream")
    seed = form.integer("seed")
    steps = params.steps_of(form)
    guidance = params.guidance_of(form)
    select = form.choice("select", ("reward", "lcb"), inpainter.select)
    steps = params.check(n, seed, steps, guidance)
    want = parse_size(size, st.max_pixels)

    def decode():
        image = st.uploads.image(image_bytes, "image")
        if mask_bytes is not None:
            hole = st.uploads.transparent(mask_bytes, "mask")
            if hole is None:
                raise ApiError(400, "mask has no alpha channel: in OpenAI's convention its fully transparent "
                                    "pixels (alpha 0) mark the area to edit; for a white-means-fill mask use "
                                    "POST /v1/inpaint", param="mask")
            if hole.shape[::-1] != image.size:
                raise ApiError(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but image is "
                                    f"{image.width}x{image.height}; they must match", param="mask")
        else:
            hole = st.uploads.transparent(image_bytes, "image")
            if hole is None or not hole.any():
                raise ApiError(400, "no mask was sent and the image has no fully transparent pixels to edit; "
                                    "send a mask whose transparent pixels mark the area", param="mask")
        if want is not None and want != image.size:
            image = image.resize(want, Image.LANCZOS)
            hole = np.asarray(Image.fromarray(hole).resize(want, Image.NEAREST), dtype=bool)
        return image, hole

    image, hole = await run_in_threadpool(decode)
    call = dict(prompt=form.text("prompt", ""), num_candidates=n, seed=seed, steps=steps, guidance_scale=guidance)
    job = st.submit(served, "edit", lambda j: inpaint_job(j, inpainter, st.reward_model, image, hole, call, select,
                                                          st.out_dir))
    facts = await st.finish(request, job, served.queue, encode=fmt == "b64_json")
    if not isinstance(facts, dict):
        return facts  # the client went away
    if fmt == "url":
        names = await run_in_threadpool(keep_files, st.store, facts["images"])
        base = public_base(request.scope, st.public_url)
        answers = [{"url": f"{base}/v1/files/{name}"} for name in names]
    else:
        answers = [{"b64_json": b64} for b64 in facts["images"]]
    data = []
    for k, answer in enumerate(answers):
        data.append({**answer, "revised_prompt": None, "seed": facts["seeds"][k],
                     "score": None if facts["scores"] is None else facts["scores"][k],
                     "bound": None if facts["bounds"] is None else facts["bounds"][k],
                     "trust": None if facts["trust"] is None else facts["trust"][k],
                     "chosen": k == facts["chosen"]})
    return json_answer({"created": facts["created"], "data": data, "model": facts["model"]["id"],
                        "chosen": facts["chosen"], "params": facts["params"], "timings": facts["timings"]})


def keep_files(store, images) -> list[str]:
    try:
        return [store.put(png_bytes(im)) for im in images]
    except ValueError as exc:
        raise ApiError(507, f"{exc}; ask for response_format=b64_json", param="response_format",
                       code="answer_too_large") from None
