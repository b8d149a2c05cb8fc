"""Answer bodies built as bytes: each image's base64 text goes into the JSON once, never re-encoded.

An answer of ``prefpaint serve`` is a few hundred bytes of facts around one base64 PNG per candidate
(~600 KB for 512x512). FastAPI's default path turns the PNG into base64 bytes, then a ``str``, walks it with
``jsonable_encoder``, escapes it in ``json.dumps`` and encodes the result to UTF-8 again: three passes over
the largest part of the body, all holding the GIL while the model's worker thread wants it (on a small model
the call is mostly Python dispatch; ``benchmarks/bench_serve.py``). Here the base64 text stays the bytes
``binascii`` made (:class:`B64`), the facts around it are dumped on their own, and the two are joined once.
The body parses to the same JSON the default path gave (``tests/test_serve_answers.py``).
"""

from __future__ import annotations

import binascii
import json
import secrets
from typing import Any

from .png import png_bytes

__all__ = ["B64", "b64_bytes", "b64_png", "json_body"]


class B64(bytes):
    """Base64 text (ASCII, no newline) that :func:`json_body` writes as a JSON string as it is."""


def b64_png(image) -> B64:
    """A PIL image as base64 PNG text (lossless: pixels outside the hole stay byte-equal to the input)."""
    return B64(binascii.b2a_base64(png_bytes(image), newline=False))


def b64_bytes(data: bytes) -> B64:
    """A file's bytes as base64 text for :func:`json_body`."""
    return B64(binascii.b2a_base64(data, newline=False))


def json_body(obj: Any) -> bytes:
    """``obj`` as the UTF-8 JSON bytes FastAPI's ``JSONResponse`` would send, with every :class:`B64` value
    written as a string without being copied into a ``str`` or escaped (base64 needs no escaping).

    Other values JSON lacks (a ``Path``, a numpy number) go through FastAPI's ``jsonable_encoder`` as before.

    Raises:
        ValueError: NaN or infinity in ``obj`` (as ``JSONResponse``: they are not JSON).
    """
    # Each B64 becomes a placeholder string with a fresh random token, which no other string in the body can
    # hold (a prompt is the client's text, but it cannot guess 128 random bits made after it was sent).
    token = secrets.token_hex(16)
    raw: list[bytes] = []

    def default(value):
        if isinstance(value, B64):
            raw.append(value)
            return f"{token}:{len(raw) - 1}"
        from fastapi.encoders import jsonable_encoder

        return jsonable_encoder(value)

    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=default)
    body = text.encode("utf-8")
    if not raw:
        return body
    head, *rest = body.split(f'"{token}:'.encode("ascii"))
    out = [head]
    for part in rest:
        index, tail = part.split(b'"', 1)
        out += [b'"', raw[int(index)], b'"', tail]
    return b"".join(out)
