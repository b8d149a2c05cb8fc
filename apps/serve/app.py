"""The FastAPI application: settings checked once, state on ``app.state.serve`` (:mod:`.state`), one router per
resource (:mod:`.routes`), the Origin/Host guard in front (:mod:`.origin`).

``create_app(inpainter, reward_model)`` serves one model already in memory. Every request is checked in
the handler (key, size, type, fields, images, mask) before it is queued, so a bad request costs no model
time and gets a JSON error naming the problem; the model runs on the queue's worker thread
(:mod:`.jobs`), so the event loop keeps answering ``/health`` during a long job.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from prefpaint_sdk.utils import Arg, at_least, check_output_dir, positive, require

from .errors import check_api_key, install_error_handlers
from .jobs import JobQueue
from .origin import OriginGuard, check_allowed_host, check_cors_origin, check_public_url
from .params import MAX_N, Params
from .routes import edits, files, inpaint, jobs, models, score
from .state import ServedModel, ServeState
from .store import FileStore

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
        inpainter: the loaded model; it stays in memory and runs one job at a time. Or several, as a dict of
            ``{name: Inpainter}``: a request's ``model`` picks one by name (the first when it names none), each has
            its own queue of ``max_queue`` jobs, and one ``reward_model`` scores them all.
        reward_model: a :class:`prefpaint_sdk.RewardModel` that scores candidates and ``/v1/score`` (default:
            ``inpainter``'s own). ``inpainter`` itself is never changed: the server runs a copy of it that
            scores with this one (:meth:`prefpaint_sdk.Inpainter.with_reward_model`).
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
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    max_queue = at_least("max_queue", max_queue, 1)
    cap = int(positive("max_upload_mb", max_upload_mb) * 2**20)
    max_pixels = at_least("max_pixels", max_pixels, 1)
    store = FileStore(max_files=at_least("url_max_files", url_max_files, 1),
                      max_bytes=int(positive("url_max_mb", url_max_mb) * 2**20),
                      ttl_s=positive("url_ttl_s", url_ttl_s))
    named = check_models(inpainter)
    if default_steps is not None:
        default_steps = at_least("steps", default_steps, 1)
        for inp in named.values():
            inp.check_steps(default_steps)
    check_api_key(api_key)
    upload_timeout_s = positive("upload_timeout_s", upload_timeout_s)
    public_url = check_public_url(public_url) if public_url is not None else None
    origins = [] if not cors else [check_cors_origin(o) for o in ([cors] if isinstance(cors, str) else cors)]
    hosts = [check_allowed_host(h) for h in allowed_hosts or ()]
    out_dir = None
    if output_dir is not None:
        out_dir = check_output_dir(output_dir, overwrite=True)
        out_dir.mkdir(parents=True, exist_ok=True)
    first = next(iter(named.values()))
    rm = reward_model if reward_model is not None else first.reward_model
    served_models = {}
    for name, inp in named.items():
        # The caller's Inpainter is left as it is: the server runs a copy that scores with the server's one reward
        # model, so every model's scores are comparable. Each model has its own queue: a slow one starves no other.
        served = inp if inp.reward_model is rm else inp.with_reward_model(rm)
        queue = JobQueue(max_queue=max_queue, keep_finished=max(64, 4 * max_queue))
        served_models[name] = ServedModel(name, served, Params(served, default_steps), queue)
    first_model = next(iter(served_models.values()))
    st = ServeState(models=served_models, reward_model=rm, api_key=api_key, cap=cap, max_pixels=max_pixels,
                    max_queue=max_queue, default_steps=default_steps, store=store, out_dir=out_dir,
                    public_url=public_url, upload_timeout_s=upload_timeout_s)
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        for q in st.queues:
            q.start()
        yield
        for q in st.queues:
            await run_in_threadpool(q.stop)

    app = fastapi.FastAPI(title="PrefPaint", version=_version(), lifespan=lifespan, docs_url="/docs",
                          redoc_url=None, openapi_url="/openapi.json")
    app.state.serve = st
    app.state.queue = first_model.queue  # the first model's (tests and benchmarks hold jobs on it)
    app.state.inpainter = first_model.inpainter
    app.state.reward_model = rm
    app.state.files = store
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    # Added last, so outermost: a foreign Origin or Host is refused before CORS or any route sees it.
    app.add_middleware(OriginGuard, cors=origins, allowed_hosts=hosts, public_url=public_url)

    install_error_handlers(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        # Every asset comes from this server: the policy forbids any other origin.
        csp = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
        return HTMLResponse(page, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (models, edits, inpaint, score, jobs, files):
        app.include_router(module.router)
    return app


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")


def split_model_arg(text: str) -> tuple[str | None, str]:
    """``NAME=SOURCE`` as (NAME, SOURCE); a plain source as (None, SOURCE) (named by its model id).

    Raises:
        InvalidInputError: an empty name or source, or a name a request could not send.
    """
    from prefpaint_sdk.utils import bad_value

    name, sep, source = text.partition("=")
    if not sep:
        return None, text
    if not MODEL_NAME.fullmatch(name) or not source.strip():
        raise bad_value("model", Arg("model"), f" {text[:80]!r}: write NAME=SOURCE, NAME of letters, digits and . _ : / - "
                                 "(at most 128), SOURCE a hub id, alias or folder")
    return name, source


def check_models(inpainter) -> dict:
    """``{name: Inpainter}`` from one inpainter (named by its model id) or a mapping of names to inpainters.

    Raises:
        InvalidInputError: no model, or a name a request could not send (empty, or not printable).
    """
    from prefpaint_sdk.utils import bad_value

    named = dict(inpainter) if isinstance(inpainter, dict) else {inpainter.model_id: inpainter}
    if not named:
        raise bad_value("model", "serve at least one model")
    for name in named:
        # A model id (a hub id or a folder's path) names a model given without a name: any printable text.
        if not isinstance(name, str) or not name.strip() or not name.isprintable():
            raise bad_value("model", f"model name {str(name)[:80]!r} is not one a request can send: use printable "
                                     "text, such as letters, digits and . _ : / -")
    return named


def _version() -> str:
    import prefpaint_sdk

    return prefpaint_sdk.__version__

