"""The FastAPI application: its routes (keys and error answers: :mod:`.errors`; request values: :mod:`.params`).

``create_app(inpainter, reward_model)`` serves one model already in memory. Every request is checked in
the handler (key, size, type, fields, images, mask) before it is queued, so a bad request costs no model
time and gets a JSON error naming the problem; the model runs on the queue's worker thread
(:mod:`.jobs`), so the event loop keeps answering ``/health`` during a long job.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) as objects.
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prefpaint_sdk import (
    InvalidInputError,
    at_least,
    check_output_dir,
    fit_mask_to_image,
    positive,
    require,
)

from .answers import json_body
from .errors import check_api_key, install_error_handlers, key_check
from .forms import ApiError, api_text, read_form
from .jobs import CANCELLED, DONE, FAILED, FINISHED, Job, JobQueue, QueueFull
from .origin import OriginGuard, check_allowed_host, check_cors_origin, check_public_url, public_base
from .params import MAX_N, Params, parse_size
from .png import png_bytes
from .store import FileStore
from .uploads import Uploads, sdk_error
from .work import encode_images, family_of, inpaint_job, model_facts, score_job

__all__ = ["create_app", "DEFAULT_SERVE_MAX_PIXELS", "MAX_N"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
DEFAULT_SERVE_MAX_PIXELS = 16_777_216
"""The server's default pixel limit per uploaded image: 16 megapixels (4096x4096)."""

_INPAINT_FIELDS = {"image", "mask", "prompt", "negative_prompt", "n", "seed", "steps", "guidance", "select",
                   "eta", "crop_margin", "mask_dilate", "mask_blur", "invert_mask", "mask_from_alpha", "resize_mask"}
# "prompt" is part of the score protocol (prefpaint_sdk.reward.remote) for judges that read it; ours does not
_SCORE_FIELDS = {"image", "mask", "masked_image", "invert_mask", "mask_from_alpha", "normalize", "prompt"}


def create_app(inpainter, reward_model=None, *, api_key: str | None = None, max_queue: int = 16,
               max_upload_mb: float = 20, max_pixels: int = DEFAULT_SERVE_MAX_PIXELS, default_steps: int | None = None,
               output_dir=None, cors: str | list[str] | None = None, url_ttl_s: float = 3600.0,
               url_max_files: int = 256, url_max_mb: float = 512, public_url: str | None = None,
               allowed_hosts: list[str] | None = None, upload_timeout_s: float = 60.0):
    """A FastAPI app serving ``inpainter`` (any engine's :class:`prefpaint_sdk.Inpainter`).

    Args:
        inpainter: the loaded model; it stays in memory and runs one job at a time.
        reward_model: a :class:`prefpaint_sdk.RewardModel` that scores candidates and ``/v1/score``; it is
            attached to ``inpainter`` (whose own reward model is used when this is ``None``).
        api_key: when set, every ``/v1`` request must send it (``Authorization: Bearer KEY`` or
            ``X-API-Key: KEY``); compared in constant time.
        max_queue: jobs waiting or running at once; one more gets 429 with ``Retry-After``.
        max_upload_mb: request body limit in MiB (413 past it).
        max_pixels: pixel limit of each uploaded image, checked from its header (413 past it).
        default_steps: denoising steps of a request that does not say (default: the inpainter's, 50).
        output_dir: when set, every inpainting's output set (image, candidates, sidecar) is also written
            there under a server-made name; nothing is written anywhere else.
        cors: allowed origin(s) for cross-origin browser calls; CORS is off when ``None``. A request from a
            browser page of any other origin gets 403 before any work (:mod:`.origin`).
        public_url: base of the URLs in ``response_format=url`` answers (default: the address the request's
            connection arrived on, never its ``Host`` header); its host is one of the server's names.
        allowed_hosts: more ``Host`` names the server answers to (``"*"``: any). Without them, a request that
            arrived on loopback must name a loopback host, one that arrived elsewhere an IP address or this
            machine's name; others get 421 (DNS rebinding, :mod:`.origin`).
        upload_timeout_s: an upload whose bytes stop for this long (or that trickles slower than 16 KiB/s past
            it) is dropped with 408 and its connection closed.
        url_ttl_s / url_max_files / url_max_mb: how long, and how many and how many MiB of, the PNGs of
            ``response_format=url`` answers are kept in memory (the oldest go first; see :mod:`.store`).

    Raises:
        MissingDependencyError: FastAPI is not installed (``pip install 'prefpaint[serve]'``).
        InvalidInputError: a limit is not a positive number, ``default_steps`` is out of the model's range,
            ``output_dir`` cannot be written, ``api_key`` is not printable ASCII, or ``public_url``, a ``cors``
            origin or an ``allowed_hosts`` name is malformed.
    """
    fastapi = require("fastapi", extra="serve", purpose="prefpaint serve")
    require("python_multipart", extra="serve", purpose="form uploads")
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    max_queue = at_least("max_queue", max_queue, 1)
    cap = int(positive("max_upload_mb", max_upload_mb) * 2**20)
    max_pixels = at_least("max_pixels", max_pixels, 1)
    store = FileStore(max_files=at_least("url_max_files", url_max_files, 1),
                      max_bytes=int(positive("url_max_mb", url_max_mb) * 2**20),
                      ttl_s=positive("url_ttl_s", url_ttl_s))
    if default_steps is not None:
        default_steps = inpainter.check_steps(at_least("steps", default_steps, 1))
    check_api_key(api_key)
    upload_timeout_s = positive("upload_timeout_s", upload_timeout_s)
    public_url = check_public_url(public_url) if public_url is not None else None
    origins = [] if not cors else [check_cors_origin(o) for o in ([cors] if isinstance(cors, str) else cors)]
    hosts = [check_allowed_host(h) for h in allowed_hosts or ()]
    out_dir = None
    if output_dir is not None:
        out_dir = check_output_dir(output_dir, overwrite=True)
        out_dir.mkdir(parents=True, exist_ok=True)
    if reward_model is not None:
        inpainter.reward_model = reward_model
    rm = reward_model if reward_model is not None else getattr(inpainter, "reward_model", None)
    queue = JobQueue(max_queue=max_queue, keep_finished=max(64, 4 * max_queue))
    started = time.time()
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        queue.start()
        yield
        await run_in_threadpool(queue.stop)

    app = fastapi.FastAPI(title="PrefPaint", version=_version(), lifespan=lifespan, docs_url="/docs",
                          redoc_url=None, openapi_url="/openapi.json")
    app.state.queue = queue
    app.state.inpainter = inpainter
    app.state.reward_model = rm
    app.state.files = store
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    # Added last, so outermost: a foreign Origin or Host is refused before CORS or any route sees it.
    app.add_middleware(OriginGuard, cors=origins, allowed_hosts=hosts, public_url=public_url)

    install_error_handlers(app)
    auth = key_check(api_key)

    # ---- inputs -------------------------------------------------------------------------------
    uploads = Uploads(max_pixels)
    decode_image, decode_mask, transparent = uploads.image, uploads.mask, uploads.transparent

    params = Params(inpainter, default_steps)
    check_values, steps_of, guidance_of = params.check, params.steps_of, params.guidance_of

    # ---- running a job ------------------------------------------------------------------------
    def submit(kind: str, fn) -> Job:
        try:
            return queue.submit(kind, fn)
        except QueueFull as exc:
            raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}, code="queue_full") from None

    def job_error(job: Job) -> ApiError:
        exc = job.error
        if isinstance(exc, InvalidInputError):
            return sdk_error(exc)
        if job.state == CANCELLED:
            return ApiError(409, "the job was cancelled", code="cancelled")
        log.error("job %s failed: %s: %s", job.id, type(exc).__name__, exc)
        return ApiError(500, f"the model failed: {type(exc).__name__}: {api_text(str(exc))[:300]}", code="job_failed")

    async def finish(request, job: Job, encode: bool = True):
        """Await ``job``; a client that goes away cancels it (dropped if queued, stopped if running).

        With ``encode`` its images come back as base64 PNG text, else as the PIL images the job made."""
        fut = job.future()
        # One waiter for the client's disconnect instead of polling it every 0.2 s: with K clients queued each
        # poll was a task, a cancel scope and a timer on the event loop, Python holding the GIL the job needs.
        gone = asyncio.ensure_future(_disconnect(request))
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
            raise job_error(job)
        if encode:
            await ready(job)
        return job.result

    def json_answer(body: Any, status_code: int = 200):
        """``body`` as JSON, its images' base64 text written once (:mod:`.answers`)."""
        return Response(json_body(body), status_code=status_code, media_type="application/json")

    def encoded_answer(facts: dict[str, Any]):
        """A finished inpainting's answer: PNG and base64 of its images, then the JSON bytes (threadpool)."""
        return json_answer(encode_images(facts))

    async def ready(job: Job) -> None:
        """A finished job's images as PNG text, encoded in the threadpool: not on the queue's one worker thread,
        where encoding would add to every job (benchmarks/bench_serve.py)."""
        if job.state == DONE and isinstance(job.result, dict):
            await run_in_threadpool(encode_images, job.result)

    def wants_wait(request) -> bool:
        raw = request.query_params.get("wait", "true").strip().lower()
        if raw not in ("1", "true", "yes", "0", "false", "no"):
            raise ApiError(422, f"'wait' must be true or false, got {raw[:20]!r}", param="wait")
        return raw in ("1", "true", "yes")

    def accepted(job: Job):
        snap = queue.snapshot(job)
        snap.update(status_url=f"/v1/jobs/{job.id}", events_url=f"/v1/jobs/{job.id}/events")
        return JSONResponse(snap, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    # ---- routes -------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        # Every asset comes from this server: the policy forbids any other origin.
        csp = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return HTMLResponse(page, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": getattr(inpainter, "model_id", None), "family": family_of(inpainter),
                "reward_model": rm is not None, "auth": bool(api_key),
                "queue": {"busy": queue.busy, "max": max_queue}, "uptime_s": round(time.time() - started, 3),
                "limits": {"max_upload_bytes": cap, "max_pixels": max_pixels, "max_n": MAX_N},
                "default_steps": default_steps}

    @app.get("/v1/models")
    async def models(request: Request):
        auth(request)
        facts = model_facts(inpainter, rm)
        return {"object": "list", "data": [{"id": facts["id"], "object": "model", "created": int(started),
                                            "owned_by": "prefpaint", **facts}]}

    @app.post("/v1/inpaint")
    async def inpaint(request: Request):
        auth(request)
        wait = wants_wait(request)
        form = await read_form(request, cap, allowed=_INPAINT_FIELDS, timeout=upload_timeout_s)
        image_bytes = form.file("image", required=True)
        mask_bytes = form.file("mask", required=True)
        invert, from_alpha = form.boolean("invert_mask"), form.boolean("mask_from_alpha")
        resize = form.boolean("resize_mask")
        n = form.integer("n", 1)
        seed = form.integer("seed")
        steps = steps_of(form)
        guidance = guidance_of(form)
        eta = form.number("eta")
        select = form.choice("select", ("reward", "lcb"), getattr(inpainter, "select", "reward"))
        call = dict(prompt=form.text("prompt", ""), negative_prompt=form.text("negative_prompt", ""),
                    num_candidates=n, seed=seed, steps=steps, guidance_scale=guidance, eta=eta,
                    crop_margin=form.integer("crop_margin", 128), mask_dilate=form.integer("mask_dilate", 0),
                    mask_blur=form.integer("mask_blur", 8))
        call["steps"] = check_values(n, seed, steps, guidance, call["negative_prompt"], eta)
        for name in ("mask_dilate", "mask_blur"):
            try:
                at_least(name, call[name], 0)
            except InvalidInputError as exc:
                raise sdk_error(exc) from None

        def decode():
            image = decode_image(image_bytes, "image")
            hole = decode_mask(mask_bytes, "mask", invert, from_alpha)
            try:
                hole = fit_mask_to_image(hole, image.size, resize=resize)
            except InvalidInputError as exc:
                raise ApiError(400, api_text(str(exc)).replace("pass resize_mask", "send resize_mask=true"),
                               param="mask") from None
            return image, hole

        image, hole = await run_in_threadpool(decode)
        job = submit("inpaint", lambda j: inpaint_job(j, inpainter, rm, image, hole, call, select, out_dir))
        if not wait:
            return accepted(job)
        facts = await finish(request, job, encode=False)
        if not isinstance(facts, dict):
            return facts  # the client went away
        # Encoding and serialising in one threadpool hop: the event loop only sends the bytes.
        return await run_in_threadpool(encoded_answer, facts)

    @app.post("/v1/images/edits")
    async def edits(request: Request):
        auth(request)
        form = await read_form(request, cap, allowed=None, timeout=upload_timeout_s)  # OpenAI clients send extras
        image_bytes = form.file("image", "image[]", required=True)
        mask_bytes = form.file("mask")
        n = form.integer("n", 1)
        size = form.text("size", "auto") or "auto"
        fmt = form.choice("response_format", ("b64_json", "url"), "b64_json")
        if form.boolean("stream"):
            raise ApiError(400, "stream=true is not supported by this server", param="stream")
        seed = form.integer("seed")
        steps = steps_of(form)
        guidance = guidance_of(form)
        select = form.choice("select", ("reward", "lcb"), getattr(inpainter, "select", "reward"))
        steps = check_values(n, seed, steps, guidance)
        want = parse_size(size, max_pixels)

        def decode():
            image = decode_image(image_bytes, "image")
            if mask_bytes is not None:
                hole = transparent(mask_bytes, "mask")
                if hole is None:
                    raise ApiError(400, "mask has no alpha channel: in OpenAI's convention its fully transparent "
                                        "pixels (alpha 0) mark the area to edit; for a white-means-fill mask use "
                                        "POST /v1/inpaint", param="mask")
                if hole.shape[::-1] != image.size:
                    raise ApiError(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but image is "
                                        f"{image.width}x{image.height}; they must match", param="mask")
            else:
                hole = transparent(image_bytes, "image")
                if hole is None or not hole.any():
                    raise ApiError(400, "no mask was sent and the image has no fully transparent pixels to edit; "
                                        "send a mask whose transparent pixels mark the area", param="mask")
            if want is not None and want != image.size:
                image = image.resize(want, Image.LANCZOS)
                hole = np.asarray(Image.fromarray(hole).resize(want, Image.NEAREST), dtype=bool)
            return image, hole

        image, hole = await run_in_threadpool(decode)
        call = dict(prompt=form.text("prompt", ""), num_candidates=n, seed=seed, steps=steps, guidance_scale=guidance)
        job = submit("edit", lambda j: inpaint_job(j, inpainter, rm, image, hole, call, select, out_dir))
        facts = await finish(request, job, encode=fmt == "b64_json")
        if not isinstance(facts, dict):
            return facts  # the client went away
        if fmt == "url":
            names = await run_in_threadpool(keep_files, facts["images"])
            base = public_base(request.scope, public_url)
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

    def keep_files(images) -> list[str]:
        try:
            return [store.put(png_bytes(im)) for im in images]
        except ValueError as exc:
            raise ApiError(507, f"{exc}; ask for response_format=b64_json", param="response_format",
                           code="answer_too_large") from None

    @app.get("/v1/files/{name}", include_in_schema=False)
    async def get_file(name: str):
        # No API key: the 192-bit random name is the capability, and it expires (as OpenAI's image URLs do).
        found = store.get(name)
        if found is None:
            raise ApiError(404, f"no such file (unknown, or expired: answers are kept {store.ttl_s:g} s, at most "
                                f"{store.max_files} of them)", code="file_not_found")
        data, left = found
        return Response(data, media_type="image/png", headers={
            "Cache-Control": f"private, max-age={max(0, int(left))}", "X-Content-Type-Options": "nosniff"})

    @app.post("/v1/score")
    async def score(request: Request):
        auth(request)
        if rm is None:
            raise ApiError(400, "no reward model is loaded; start the server with --reward-model", code="no_reward_model")
        wait = wants_wait(request)
        form = await read_form(request, cap, allowed=_SCORE_FIELDS, timeout=upload_timeout_s)
        image_bytes = form.file("image", required=True)
        mask_bytes = form.file("mask")
        masked_bytes = form.file("masked_image")
        if mask_bytes is None and masked_bytes is None:
            raise ApiError(422, "'mask' is required (or 'masked_image', the input with the hole blanked)", param="mask")
        invert, from_alpha = form.boolean("invert_mask"), form.boolean("mask_from_alpha")
        normalize = form.boolean("normalize")

        def decode():
            image = decode_image(image_bytes, "image")
            masked = decode_image(masked_bytes, "masked_image") if masked_bytes is not None else None
            hole = None
            if mask_bytes is not None:
                hole = decode_mask(mask_bytes, "mask", invert, from_alpha)
                if hole.shape[::-1] != image.size:
                    raise ApiError(400, f"mask is {hole.shape[1]}x{hole.shape[0]} but image is "
                                        f"{image.width}x{image.height}; they must match", param="mask")
            if masked is not None and masked.size != image.size:
                raise ApiError(400, f"masked_image is {masked.width}x{masked.height} but image is "
                                    f"{image.width}x{image.height}; they must match", param="masked_image")
            return image, hole, masked

        image, hole, masked = await run_in_threadpool(decode)
        job = submit("score", lambda j: score_job(j, rm, image, hole, masked, normalize))
        if not wait:
            return accepted(job)
        return await finish(request, job)

    def find(job_id: str) -> Job:
        job = queue.get(job_id) if len(job_id) <= 64 else None
        if job is None:
            raise ApiError(404, "no such job (unknown, or finished long ago and forgotten)", param="id",
                           code="job_not_found")
        return job

    def job_view(job: Job) -> dict[str, Any]:
        snap = queue.snapshot(job)
        if job.state == DONE:
            snap["result"] = job.result
        elif job.state in (FAILED, CANCELLED):
            snap["error"] = job_error(job).body()["error"]
        return snap

    @app.get("/v1/jobs/{job_id}")
    async def job_status(job_id: str, request: Request):
        auth(request)
        job = find(job_id)
        await ready(job)
        return json_answer(job_view(job))

    @app.delete("/v1/jobs/{job_id}")
    async def job_cancel(job_id: str, request: Request):
        auth(request)
        job = find(job_id)
        queue.cancel(job)
        return queue.snapshot(job)

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request):
        auth(request)
        job = find(job_id)

        async def stream():
            last = None
            while True:
                await ready(job)
                view = job_view(job)
                mark = (view["status"], view.get("position"), view.get("step"))
                if mark != last:
                    last = mark
                    yield b"event: %s\ndata: %s\n\n" % (view["status"].encode(), json_body(view))
                if job.state in FINISHED or await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return app


async def _disconnect(request) -> None:
    """Return once the client has gone away. Called after the body was read: the server's next message is then
    ``http.disconnect`` (sent when the connection drops, or once the answer is complete)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.2)  # a server that answers at once with an empty body: poll as before, never spin


def _version() -> str:
    import prefpaint_sdk

    return prefpaint_sdk.__version__

