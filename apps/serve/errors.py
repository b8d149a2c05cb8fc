"""Every error the server answers is JSON naming the problem, and a wrong or missing key is a 401.

:func:`install_error_handlers` turns FastAPI's own errors (validation, 404/405, anything unexpected) into the
same JSON body as an :class:`~.forms.ApiError`; :func:`key_check` builds the per-request API-key check.
"""

from __future__ import annotations

import logging
import secrets
from typing import Callable

from .forms import ApiError

__all__ = ["install_error_handlers", "key_check"]

log = logging.getLogger(__name__)


def install_error_handlers(app) -> None:
    """Answer every error of ``app`` as JSON: ours as they are, FastAPI's and unexpected ones translated."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def error_response(err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request, exc):
        first = (exc.errors() or [{}])[0]
        loc = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        return error_response(ApiError(422, f"invalid field '{loc}': {first.get('msg', 'invalid')}", param=loc or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc):
        msg = "not found" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            msg = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(ApiError(exc.status_code, msg))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error_response(ApiError(500, f"internal error: {exc.__class__.__name__}"))


def key_check(api_key: str | None) -> Callable[[object], None]:
    """The check every ``/v1`` request passes: none without a key; else the key from ``Authorization: Bearer``
    or ``X-API-Key``, compared in constant time (401 naming what is wrong)."""
    key = api_key.encode() if api_key else None

    def auth(request) -> None:
        if key is None:
            return
        sent = request.headers.get("x-api-key")
        header = request.headers.get("authorization", "")
        if sent is None and header[:7].lower() == "bearer ":
            sent = header[7:].strip()
        if not sent:
            raise ApiError(401, "this server needs an API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                           headers={"WWW-Authenticate": "Bearer"}, code="missing_api_key")
        if not secrets.compare_digest(sent.encode("utf-8", "surrogateescape"), key):
            raise ApiError(401, "wrong API key", headers={"WWW-Authenticate": "Bearer"}, code="invalid_api_key")

    return auth
