"""``prefpaint serve``'s front door before any model loads: :func:`validate`, every check that needs no model."""

from __future__ import annotations

import socket
from typing import Any

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import Arg, at_least, check_output_dir, check_stack, positive, require

__all__ = ["validate"]


def validate(*, model=None, host: str = "127.0.0.1", port: int = 7860, max_queue: int = 16,
             max_upload_mb: float = 20, select: str = "reward", api_key: str | None = None,
             upload_timeout: float = 60.0, public_url: str | None = None, cors=None, allowed_hosts=None,
             output_dir=None, reward_model=None, reward=(), reward_weights=None, reward_norm: str = "gdpo",
             offline: bool | None = None) -> dict[str, Any]:
    """Every check of a server that needs no model, in the command's order: the numbers and names, the key,
    the Origin, Host and upload settings, the output folder, the reward stack (names, weights, files, servers),
    the address (bound and released: a port in use is refused now), the ``[serve]`` extra, each
    ``NAME=SOURCE`` model argument.

    Returns:
        ``public_url``, ``cors``, ``allowed_hosts`` normalised; ``stack`` (the checked stack, or None) and
        ``sources`` (``(name or None, source)`` per model).

    Raises:
        InvalidInputError: naming the parameter and the value. MissingDependencyError: the extra is missing.
    """
    from prefpaint_sdk import DEFAULT_MODEL, Inpainter

    from .app import split_model_arg
    from .errors import check_api_key
    from .origin import check_allowed_host, check_cors_origin, check_public_url

    if not 1 <= port <= 65535:
        raise InvalidInputError(Arg("port"), f" must lie in 1..65535, got {port}")
    at_least("max_queue", max_queue, 1)
    positive("max_upload_mb", max_upload_mb)
    Inpainter.validate(select=select)
    if api_key is not None and not api_key.strip():
        raise InvalidInputError(Arg("api_key"), " is empty; pass a key, or leave it (and PREFPAINT_API_KEY) unset")
    # Origin, Host and upload settings (issue 19): malformed ones are refused before the model loads.
    check_api_key(api_key)
    positive("upload_timeout", upload_timeout)
    public_url = check_public_url(public_url) if public_url is not None else None
    cors = [check_cors_origin(o) for o in cors or ()]
    allowed_hosts = [check_allowed_host(h) for h in allowed_hosts or ()]
    if output_dir is not None:
        check_output_dir(output_dir, overwrite=True)
    if (reward_weights is not None or reward_norm != "gdpo") and not reward:
        raise InvalidInputError(Arg("reward_weights"), " and ", Arg("reward_norm"), " weigh a stack; add ",
                                Arg("reward", "NAME"), " or drop them")
    stack = None
    if reward:  # every reward checked (names, weights, files, servers) before any model loads
        stack = check_stack(([f"prefpaint={reward_model}"] if reward_model else []) + list(reward), reward_weights,
                            reward_norm, offline=offline)
    check_bind(host, port)
    # The extra before the model loads: a missing one is exit 2 naming pip install 'prefpaint[serve]'.
    require("fastapi", extra="serve", purpose="prefpaint serve")
    require("uvicorn", extra="serve", purpose="prefpaint serve")
    require("python_multipart", extra="serve", purpose="form uploads")
    sources = [split_model_arg(m) for m in model or [DEFAULT_MODEL]]
    return dict(public_url=public_url, cors=cors, allowed_hosts=allowed_hosts, stack=stack, sources=sources)


def check_bind(host: str, port: int) -> None:
    """Refuse an address this machine cannot listen on (or a port in use) before the model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(Arg("host"), f" '{host}' is not an address of this machine ({exc})") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another ",
                                    Arg("port"), " or stop what uses it") from None
