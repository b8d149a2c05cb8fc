"""``POST /v1/images/edits``: OpenAI's image-edit call (transparent-means-edit mask), with reward scores.

The request (multipart or JSON, :mod:`..edit_request`) is checked in full before it is queued; the answer
echoes ``output_format``, ``size``, ``quality`` and ``background`` and counts what the call cost in ``usage``
(denoiser passes, pixels, seconds: diffusion has no tokens). ``stream=true`` answers with server-sent events
(:mod:`..stream`).
"""


import numpy as np
from fastapi import APIRouter, Depends, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ..answers import b64_bytes
from ..edit_request import read_edit
from ..formats import encode, with_background
from ..forms import ApiError
from ..origin import public_base
from ..params import parse_size
from ..schema import EDIT_ANSWER, EDIT_JSON, EDIT_MULTIPART, SSE, body, responses
from ..state import json_answer
from ..stream import stream_edit
from ..work import inpaint_job, usage
from . import authenticated, state

router = APIRouter(dependencies=[Depends(authenticated)])


@router.post("/v1/images/edits", responses=responses(
    {200: ("the edited images (or, with stream=true, server-sent events)", {"application/json": EDIT_ANSWER, **SSE})},
    400, 401, 404, 408, 409, 413, 415, 422, 429, 500, 507), openapi_extra=body(EDIT_MULTIPART, ["image"], EDIT_JSON))
async def edits(request: Request):
    st = state(request)
    req = await read_edit(request, st.cap, st.upload_timeout_s)
    served = st.model(req.model)
    params, inpainter = served.params, served.inpainter
    if len(req.images) > 1:
        raise ApiError(400, f"{len(req.images)} images were sent: the first is edited and the others would be "
                            f"reference images, which the {inpainter.family} family does not take (FLUX.2 klein and "
                            "Qwen-Image-Edit do); send one image", param="image", code="references_not_supported")
    form = req.form
    n = form.integer("n", 1)
    seed = form.integer("seed")
    steps = form.integer("steps")
    steps = params.steps_for_quality(req.quality) if steps is None else steps
    guidance = params.guidance_of(form)
    select = form.choice("select", ("reward", "lcb"), inpainter.select)
    steps = params.check(n, seed, steps, guidance)
    want = parse_size(req.size, st.max_pixels)
    transparent = req.background == "transparent"

    def decode():
        image_bytes, mask_field = req.images[0], req.mask_field
        image = st.uploads.image(image_bytes, "image")
        original = st.uploads.rgba(image_bytes, "image") if transparent else None
        if req.mask is not None:
            hole = st.uploads.transparent(req.mask, mask_field)
            if hole is None:
                raise ApiError(400, f"{mask_field} has no alpha channel: in OpenAI's convention its fully transparent "
                                    "pixels (alpha 0) mark the area to edit; for a white-means-fill mask use "
                                    "POST /v1/inpaint", param=mask_field)
            if hole.shape[::-1] != image.size:
                raise ApiError(400, f"{mask_field} is {hole.shape[1]}x{hole.shape[0]} but image is "
                                    f"{image.width}x{image.height}; they must match", param=mask_field)
        else:
            hole = st.uploads.transparent(image_bytes, "image")
            if hole is None or not hole.any():
                raise ApiError(400, "no mask was sent and the image has no fully transparent pixels to edit; "
                                    "send a mask whose transparent pixels mark the area", param="mask")
        if want is not None and want != image.size:
            image = image.resize(want, Image.LANCZOS)
            hole = np.asarray(Image.fromarray(hole).resize(want, Image.NEAREST), dtype=bool)
            if original is not None:
                original = np.asarray(Image.fromarray(original, "RGBA").resize(want, Image.LANCZOS))
        return image, hole, original

    image, hole, original = await run_in_threadpool(decode)
    call = dict(prompt=req.prompt, num_candidates=n, seed=seed, steps=steps, guidance_scale=guidance)
    echo = dict(output_format=req.output_format, size=f"{image.width}x{image.height}",
                quality="high" if req.quality == "auto" else req.quality,
                background="transparent" if transparent else "opaque")

    def finish_images(facts) -> list[bytes]:
        """The candidates with their background, as files of the asked format (threadpool)."""
        ims = facts["images"]
        if transparent:
            ims = [with_background(im, image, original, hole) for im in ims]
        return [encode(im, req.output_format, req.output_compression) for im in ims]

    def work(job, preview=None):
        return inpaint_job(job, inpainter, st.reward_model, image, hole, call, select, st.out_dir, preview=preview)

    if req.stream:
        return stream_edit(st, served, req, work, finish_images, echo, image, hole, original)
    job = st.submit(served, "edit", work)
    facts = await st.finish(request, job, served.queue, encode=False)
    if not isinstance(facts, dict):
        return facts  # the client went away
    base = public_base(request.scope, st.public_url)

    def answer():
        files = finish_images(facts)
        if req.response_format == "url":
            names = keep_files(st.store, files, req.output_format)
            return edit_answer(facts, [{"url": f"{base}/v1/files/{name}"} for name in names], echo)
        return edit_answer(facts, [{"b64_json": b64_bytes(f)} for f in files], echo)

    return json_answer(await run_in_threadpool(answer))


def edit_answer(facts, answers: list[dict], echo: dict) -> dict:
    data = []
    for k, answer in enumerate(answers):
        data.append({**answer, "revised_prompt": None, "seed": facts["seeds"][k],
                     "score": None if facts["scores"] is None else facts["scores"][k],
                     "bound": None if facts["bounds"] is None else facts["bounds"][k],
                     "trust": None if facts["trust"] is None else facts["trust"][k],
                     "chosen": k == facts["chosen"]})
        if facts.get("rewards"):  # a reward stack: every reward's own score of this image
            data[-1]["rewards"] = {lab: r["scores"][k] for lab, r in facts["rewards"].items()}
    return {"created": facts["created"], "data": data, "model": facts["model"]["id"], **echo, "usage": usage(facts),
            "chosen": facts["chosen"], "params": facts["params"], "timings": facts["timings"]}


def keep_files(store, files: list[bytes], fmt: str) -> list[str]:
    try:
        return [store.put(data, fmt) for data in files]
    except ValueError as exc:
        raise ApiError(507, f"{exc}; ask for response_format=b64_json", param="response_format",
                       code="answer_too_large") from None


__all__ = ["edit_answer", "router"]
