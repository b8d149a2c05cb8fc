"""Request bodies in memory: the upload cap, multipart forms, image types and field values.

Nothing here touches the disk. The body is read up to the cap (``413`` past it, before the rest is read),
parsed as ``multipart/form-data`` with every part kept in memory (Starlette would spool parts over 1 MB
to a temporary file), and each field is parsed into a value or refused with an :class:`ApiError` naming
the field. File names sent by a client are never used for anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "Form", "api_text", "read_form", "sniff_image"]

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as JSON: ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 415: "unsupported_media_type", 422: "invalid_request_error",
             429: "rate_limit_error", 500: "server_error", 503: "server_error", 507: "server_error"}

    def __init__(self, status: int, message: str, param: str | None = None, headers: dict | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.headers = headers or {}
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


_FLAG_CLAUSE = re.compile(r"; [^;]*--[a-z][a-z0-9-]*[^;]*")


def api_text(error, fields=()) -> str:
    """An SDK error (or message) in an HTTP client's terms: one line, no command-line flag or Python call.

    An error that carries its parts (``Arg``/``Hint``) is rendered from them: a parameter that is one of this
    request's form ``fields`` reads as the field (``resize_mask=true``); advice about any other parameter (a
    server setting, a Python-only argument) is left out. A plain message loses its flag clauses by pattern.
    """
    parts = getattr(error, "parts", None)
    if parts:
        from prefpaint_sdk.utils import render

        return " ".join(render(parts, lambda a: _field_text(a, fields)).split())
    text = " ".join(str(error).split())
    text = re.sub(r"\b([a-z_][a-z0-9_]*) \(--[a-z0-9-]+\)", r"\1", text)  # "max_pixels (--max-pixels)"
    text = re.sub(r" \(?--([a-z0-9-]+)\)? \(([a-z_]+)=[^)]*\)", lambda m: " " + m.group(2), text)
    text = _FLAG_CLAUSE.sub("", text)
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), text)


def _field_text(arg, fields) -> str | None:
    """A parameter as this request's form field (``name`` or ``name=value``, JSON-style), or None."""
    if arg.name not in fields:
        return None
    if not arg.has_value:
        return arg.name
    value = arg.value
    shown = ("true" if value else "false") if isinstance(value, bool) else value
    return f"{arg.name}={shown}"


# ---- the body --------------------------------------------------------------------------------------
MIN_UPLOAD_RATE = 16 * 1024
"""Bytes per second a body must average, past its ``timeout``: slower is a slow-loris, not a slow link."""


async def read_body(request, cap: int, timeout: float | None = None) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``cap`` bytes (by Content-Length or as read).

    With ``timeout`` (seconds), a body whose bytes stop coming for that long, or that has taken longer than
    ``timeout`` plus one second per :data:`MIN_UPLOAD_RATE` bytes received, is dropped with 408 and the
    connection closed, so a stalled or trickling client holds nothing. A client that goes away mid-upload is
    one info line (and a 499 nobody receives), not a traceback.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length is not a number: {declared[:40]!r}") from None
        if n > cap:
            raise ApiError(413, f"the request is {n:,} bytes, over this server's upload limit of {cap:,} bytes "
                                "(max_upload_mb)", code="upload_too_large")
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks, size = [], 0
    while True:
        wait = None
        if timeout is not None:
            wait = min(timeout, start + timeout + size / MIN_UPLOAD_RATE - loop.time())
        try:
            if wait is not None and wait <= 0:
                raise asyncio.TimeoutError
            message = await asyncio.wait_for(request.receive(), wait)
        except asyncio.TimeoutError:
            log.info("dropped an upload to %s after %.0f s: %s bytes came (upload_timeout)", request.url.path,
                     loop.time() - start, f"{size:,}")
            raise ApiError(408, f"the upload stalled or was too slow: {size:,} bytes in {loop.time() - start:.0f} s "
                                f"(this server waits {timeout:g} s for data; upload_timeout)",
                           headers={"Connection": "close"}, code="upload_timeout") from None
        if message["type"] == "http.disconnect":
            log.info("client went away during its upload to %s (%s bytes came)", request.url.path, f"{size:,}")
            raise ApiError(499, "the client closed the connection during its upload", code="client_closed")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise ApiError(413, f"the request passed this server's upload limit of {cap:,} bytes (max_upload_mb)",
                           headers={"Connection": "close"}, code="upload_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass
class Form:
    """A parsed form: text fields and file parts (bytes), each by name, in the order sent."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return set(self.fields) | set(self.files)

    def file(self, name: str, *aliases: str, required: bool = False) -> bytes | None:
        """The one file of ``name`` (or an alias, e.g. OpenAI's ``image[]``); 400 for several, 422 if missing."""
        parts = []
        for n in (name, *aliases):
            parts += self.files.get(n, [])
            if n in self.fields and not self.fields[n] == [""]:
                raise ApiError(422, f"'{n}' must be a file upload (multipart part with a filename), not a text "
                                    "field", param=name)
        if not parts:
            if required:
                raise ApiError(422, f"'{name}' is required: upload it as a file part", param=name)
            return None
        if len(parts) > 1:
            raise ApiError(400, f"'{name}' was sent {len(parts)} times; send one", param=name)
        if not parts[0]:
            raise ApiError(400, f"'{name}' is an empty file", param=name)
        return parts[0]

    def text(self, name: str, default: str | None = None) -> str | None:
        if name in self.files:
            raise ApiError(422, f"'{name}' must be a text field, not a file", param=name)
        values = self.fields.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise ApiError(422, f"'{name}' was sent {len(values)} times; send one", param=name)
        return values[0]

    def integer(self, name: str, default: int | None = None) -> int | None:
        raw = self.text(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return int(raw.strip())
        except ValueError:
            raise ApiError(422, f"'{name}' must be a whole number, got {raw[:40]!r}", param=name) from None

    def number(self, name: str, default: float | None = None) -> float | None:
        raw = self.text(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            v = float(raw.strip())
        except ValueError:
            raise ApiError(422, f"'{name}' must be a number, got {raw[:40]!r}", param=name) from None
        if not math.isfinite(v):
            raise ApiError(422, f"'{name}' must be a finite number, got {raw[:40]!r}", param=name)
        return v

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.text(name)
        if raw is None or raw.strip() == "":
            return default
        v = raw.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise ApiError(422, f"'{name}' must be true or false, got {raw[:40]!r}", param=name)

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        if raw not in choices:
            raise ApiError(422, f"'{name}' must be one of {', '.join(choices)}; got {raw[:40]!r}", param=name)
        return raw


async def read_form(request, cap: int, allowed: set[str] | None = None, max_parts: int = 64,
                    timeout: float | None = None) -> Form:
    """Parse a ``multipart/form-data`` body held in memory.

    Args:
        cap: the upload limit in bytes (413 past it).
        allowed: the field names this endpoint knows; another name is a 422 naming it (``None``: any).
        timeout: seconds the body may stall (see :func:`read_body`).

    Raises:
        ApiError: 415 for another content type, 413 past the cap or a text field past its limit, 408 for a
            stalled upload, 400 for a malformed body, 422 for an unknown field.
    """
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartException, MultiPartParser

    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        shown = ctype.split(";")[0][:60] or "none"
        raise ApiError(415, f"the body must be multipart/form-data (as curl -F sends it), got content type '{shown}'",
                       code="unsupported_media_type")
    body = await read_body(request, cap, timeout)

    async def stream():
        yield body

    field_cap = min(cap, 1 << 20)
    parser = MultiPartParser(Headers({"content-type": ctype}), stream(), max_files=max_parts, max_fields=max_parts,
                             max_part_size=field_cap)
    parser.spool_max_size = cap + 1  # every part stays in memory: a request never becomes a file
    try:
        data = await parser.parse()
    except MultiPartException as exc:
        # Starlette limits only text parts (files have the body's cap), and says so in these words.
        if "exceeded maximum size" in str(exc):
            raise ApiError(413, f"a text field is longer than this server's limit of {field_cap:,} bytes per field; "
                                "send large data as a file part", code="field_too_large") from None
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    form = Form()
    try:
        for name, value in data.multi_items():
            if isinstance(value, str):
                form.fields.setdefault(name, []).append(value)
            else:
                form.files.setdefault(name, []).append(await value.read())
    finally:
        await data.close()
    if allowed is not None:
        unknown = sorted(form.names() - allowed)
        if unknown:
            raise ApiError(422, f"unknown field '{unknown[0][:60]}'; this endpoint takes: {', '.join(sorted(allowed))}",
                           param=unknown[0][:60])
    return form


# ---- image types -----------------------------------------------------------------------------------
IMAGE_TYPES = "PNG, JPEG, WebP, BMP, TIFF or GIF"


def sniff_image(data: bytes, what: str) -> str:
    """The format of an uploaded image from its first bytes, or 415 naming the types taken."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    raise ApiError(415, f"{what} is not an image type this server takes ({IMAGE_TYPES})", param=what,
                   code="unsupported_image_type")
