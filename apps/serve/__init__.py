"""``prefpaint serve``: an HTTP API (OpenAI-compatible image edits, with reward scores) and a mask-painting page.

>>> from prefpaint_sdk import Inpainter
>>> from prefpaint_apps.serve import create_app
>>> app = create_app(Inpainter.from_pretrained())      # then: uvicorn.run(app, host="127.0.0.1", port=7860)

Built on the public ``prefpaint_sdk`` API only (``Inpainter.__call__``, ``RewardModel.score``, the image
loaders and the validation layer), so any engine behind ``Inpainter`` is served unchanged. Needs the
``[serve]`` extra (FastAPI, uvicorn, python-multipart).

Rooms: :mod:`.app` (settings, middleware), :mod:`.routes` (one router per resource), :mod:`.state` (what routes
share, on ``app.state.serve``), :mod:`.edit_request` (OpenAI's edit fields, multipart or JSON with data: URLs),
:mod:`.formats` (PNG/WebP/JPEG, background), :mod:`.stream` (server-sent events), :mod:`.schema` (the OpenAPI
bodies and answers), :mod:`.origin` (the Origin and Host checks), :mod:`.errors` (JSON errors, the API key), :mod:`.params` (request values), :mod:`.jobs` (the bounded queue and its worker
thread), :mod:`.forms` (bodies in memory, multipart, field values), :mod:`.work` (what a job does with the
model), :mod:`.png` and :mod:`.answers` (the answers' PNGs and their JSON bytes) and ``static/`` (the page, its script and style: no asset comes from another origin).
"""

from __future__ import annotations

from .app import DEFAULT_SERVE_MAX_PIXELS, MAX_N, create_app
from .forms import ApiError
from .jobs import Cancelled, Job, JobQueue, QueueFull

__all__ = ["ApiError", "Cancelled", "DEFAULT_SERVE_MAX_PIXELS", "Job", "JobQueue", "MAX_N", "QueueFull", "create_app"]
