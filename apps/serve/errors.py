"""Every error the server answers is JSON naming the problem, and a wrong or missing key is a 401.

:func:`install_error_handlers` turns FastAPI's own errors (validation, 404/405, anything unexpected) into the
same JSON body as an :class:`~.forms.ApiError`; :func:`key_check` builds the per-request API-key check.
"""

from __future__ import annotations

import logging
import secrets
from typing import Callable

from .forms import ApiError

__all__ = ["check_api_key", "install_error_handlers", "key_check"]

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


def check_api_key(api_key: str | None) -> str | None:
    """``api_key`` if a client can send it: printable ASCII (HTTP headers carry nothing else reliably), without
    spaces at its ends (``Authorization: Bearer KEY`` loses them). The key itself is never shown.

    Raises:
        InvalidInputError: empty, or another character (its position is named, not the key).
    """
    from prefpaint_sdk.utils import bad_value

    if api_key is None:
        return None
    if not isinstance(api_key, str) or not api_key.strip():
        raise bad_value("api_key", "api_key must be a non-empty text; leave it unset for no key")
    for i, ch in enumerate(api_key):
        if not " " <= ch <= "~":
            what = "a control character" if ch.isascii() or not ch.isprintable() else "a non-ASCII character"
            raise bad_value("api_key", f"api_key must be printable ASCII, as no HTTP client can send anything else, "
                                       f"but character {i + 1} of {len(api_key)} is {what}; pick another key, such as "
                                       "one from Python's secrets.token_urlsafe(32)")
    if api_key != api_key.strip():
        raise bad_value("api_key", "api_key must not start or end with a space (clients strip it)")
    return api_key


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
