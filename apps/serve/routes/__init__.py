"""The server's resources, one ``APIRouter`` each: edits (OpenAI's), inpaint, score, jobs, files, models.

Every route reads the server's :class:`~..state.ServeState` through :func:`state` and, under ``/v1`` (but
``/v1/files``, whose random name is its capability), passes :func:`authenticated` first.
"""

from starlette.requests import Request

__all__ = ["authenticated", "state"]


def state(request: Request):
    """The server's shared state (``app.state.serve``)."""
    return request.app.state.serve


def authenticated(request: Request) -> None:
    """The API-key check as a dependency: 401 before the body is read when the key is missing or wrong."""
    request.app.state.serve.auth(request)
