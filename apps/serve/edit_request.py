"""An ``/v1/images/edits`` request, as OpenAI's current clients send it, checked into an :class:`EditRequest`.

Two bodies carry it. ``multipart/form-data`` (the ``openai`` packages): ``image`` or ``image[]`` parts (several
images: the first is edited), ``mask`` or ``mask_image`` (vLLM-Omni's name). JSON (gateways and SDKs): the same
fields, images as ``data:`` URLs, ``images: [{"image_url": "data:..."}]`` and ``mask: {"image_url": ...}`` (or
plain strings). Any other URL scheme is refused: this server fetches nothing, so a request cannot make it reach
another host (no SSRF). A field the server does not know is refused with 400 naming it, never ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from .formats import FORMATS
from .forms import ApiError, Form, read_body, read_form, sniff_image

__all__ = ["EDIT_FIELDS", "MAX_IMAGES", "QUALITIES", "EditRequest", "read_edit"]

MAX_IMAGES = 16
"""Most images one request may send (OpenAI's limit)."""
QUALITIES = ("low", "medium", "high", "auto")
BACKGROUNDS = ("transparent", "opaque", "auto")
EDIT_FIELDS = {
    "image", "image[]", "images", "mask", "mask_image", "prompt", "model", "n", "size", "quality", "output_format",
    "output_compression", "background", "response_format", "stream", "partial_images", "user",
    "safety_identifier",
    # this server's own: reproducible seeds, explicit step count and guidance, the pick among candidates
    "seed", "steps", "guidance", "select",
}
_IMAGE_SNIFF = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp",
                "TIFF": "image/tiff", "GIF": "image/gif"}
_DATA_URL = re.compile(r"data:([^;,]*)((?:;[^;,]*)*),", re.IGNORECASE)


@dataclass
class EditRequest:
    """The checked fields of one edit request (images still as file bytes: decoding is the threadpool's)."""

    form: Form
    images: list[bytes]
    mask: bytes | None
    mask_field: str
    prompt: str
    model: str | None
    n: int
    size: str
    quality: str
    output_format: str
    output_compression: int
    background: str
    response_format: str
    stream: bool
    partial_images: int


async def read_edit(request, cap: int, timeout: float) -> EditRequest:
    """Read and check one edit request, multipart or JSON (400/413/415/422 naming the field)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        form = _json_form(await read_body(request, cap, timeout), cap)
    else:
        form = await read_form(request, cap, allowed=None, timeout=timeout)
    unknown = sorted(form.names() - EDIT_FIELDS)
    if unknown:
        name = unknown[0][:60]
        raise ApiError(400, f"unknown field '{name}': this server does not support it; it takes "
                            f"{', '.join(sorted(EDIT_FIELDS))}", param=name, code="unknown_field")
    images = _files(form, "image", "image[]", "images")
    if not images:
        raise ApiError(422, "'image' is required: upload it as a file part (or a data: URL in a JSON body)",
                       param="image")
    if len(images) > MAX_IMAGES:
        raise ApiError(400, f"{len(images)} images were sent; at most {MAX_IMAGES} are taken", param="image")
    masks = _files(form, "mask", "mask_image")
    if len(masks) > 1:
        raise ApiError(400, f"{len(masks)} masks were sent; send one ('mask' or 'mask_image')", param="mask")
    mask_field = "mask_image" if "mask_image" in form.names() else "mask"
    fmt = form.choice("output_format", FORMATS, "png")
    compression = form.integer("output_compression", 100)
    if not 0 <= compression <= 100:
        raise ApiError(400, f"'output_compression' must lie in 0..100, got {compression}", param="output_compression")
    background = form.choice("background", BACKGROUNDS, "auto")
    if background == "transparent" and fmt == "jpeg":
        raise ApiError(400, "background=transparent needs output_format png or webp: JPEG has no alpha channel",
                       param="background")
    stream = form.boolean("stream")
    partial = form.integer("partial_images", 0)
    if not 0 <= partial <= 3:
        raise ApiError(400, f"'partial_images' must lie in 0..3, got {partial}", param="partial_images")
    if partial and not stream:
        raise ApiError(400, "'partial_images' needs stream=true", param="partial_images")
    response_format = form.choice("response_format", ("b64_json", "url"), "b64_json")
    if stream and response_format == "url":
        raise ApiError(400, "a stream sends its images as b64_json; leave response_format unset", param="response_format")
    form.text("user")
    form.text("safety_identifier")
    return EditRequest(form=form, images=images, mask=masks[0] if masks else None, mask_field=mask_field,
                       prompt=form.text("prompt", "") or "", model=form.text("model"), n=form.integer("n", 1),
                       size=form.text("size", "auto") or "auto", quality=form.choice("quality", QUALITIES, "auto"),
                       output_format=fmt, output_compression=compression, background=background,
                       response_format=response_format, stream=stream, partial_images=partial)


def _files(form: Form, *names: str) -> list[bytes]:
    out = []
    for name in names:
        if form.fields.get(name, [""]) != [""]:
            raise ApiError(422, f"'{name}' must be a file upload (multipart part with a filename) or a data: URL, "
                                "not a text field", param=name)
        for data in form.files.get(name, []):
            if not data:
                raise ApiError(400, f"'{name}' is an empty file", param=name)
            out.append(data)
    return out


# ---- the JSON body ------------------------------------------------------------------------------------
def _json_form(body: bytes, cap: int) -> Form:
    """A JSON body as a :class:`Form`: scalars as text fields, ``data:`` URLs decoded into file parts."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "the JSON body must be an object of fields")
    form = Form()
    for name, value in obj.items():
        if value is None:
            continue
        if name in ("image", "image[]", "images", "mask", "mask_image"):
            items = value if isinstance(value, list) else [value]
            if name in ("mask", "mask_image") and isinstance(value, list):
                raise ApiError(400, f"'{name}' must be one image, not a list", param=name)
            for k, item in enumerate(items):
                form.files.setdefault(name, []).append(_image_of(item, name if len(items) == 1 else f"{name}[{k}]",
                                                                 cap))
        elif isinstance(value, bool):
            form.fields[name] = ["true" if value else "false"]
        elif isinstance(value, (int, float, str)):
            form.fields[name] = [str(value)]
        else:
            raise ApiError(422, f"'{name[:60]}' must be a string, number or boolean", param=name[:60])
    return form


def _image_of(item, where: str, cap: int) -> bytes:
    """One image of a JSON body: a ``data:`` URL, as a string or as ``{"image_url": ...}``."""
    if isinstance(item, dict):
        extra = sorted(set(item) - {"image_url"})
        if "file_id" in item:
            raise ApiError(400, f"{where}: file_id is not supported (this server keeps no uploaded files); send "
                                "the image as a data: URL", param=where)
        if extra:
            raise ApiError(400, f"{where}: unknown key '{extra[0][:40]}'; send {{\"image_url\": \"data:...\"}}",
                           param=where)
        url = item.get("image_url")
        if isinstance(url, dict):  # {"image_url": {"url": ...}} as chat APIs nest it
            url = url.get("url")
    else:
        url = item
    if not isinstance(url, str):
        raise ApiError(422, f"{where} must be a data: URL string or {{\"image_url\": \"data:...\"}}", param=where)
    return decode_data_url(url, where, cap)


def decode_data_url(url: str, where: str, cap: int) -> bytes:
    """The bytes of a base64 ``data:`` URL whose declared type is the image's own; anything else is refused.

    Raises:
        ApiError: another scheme (400, nothing is fetched), not base64, over ``cap`` (413), a declared type
            that is not an image or not the file's real type (415).
    """
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url[:32] else ""
    if scheme != "data":
        shown = f"'{scheme[:20]}:'" if scheme else "no scheme"
        raise ApiError(400, f"{where}: only data: URLs are taken (got {shown}); this server fetches nothing, send "
                            "the image inline as data:image/png;base64,...", param=where, code="unsupported_url")
    head = _DATA_URL.match(url)
    if head is None:
        raise ApiError(400, f"{where}: malformed data: URL (expected data:<type>;base64,<data>)", param=where)
    declared = head.group(1).strip().lower()
    if ";base64" not in head.group(2).lower():
        raise ApiError(400, f"{where}: the data: URL must be base64 (data:{declared or 'image/png'};base64,...)",
                       param=where)
    text = url[head.end():]
    if len(text) * 3 // 4 > cap:
        raise ApiError(413, f"{where} is over this server's upload limit of {cap:,} bytes (max_upload_mb)",
                       param=where, code="upload_too_large")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where}: the data: URL is not valid base64", param=where) from None
    if not data:
        raise ApiError(400, f"{where} is an empty image", param=where)
    kind = sniff_image(data, where)
    real = _IMAGE_SNIFF[kind]
    if declared != real:
        raise ApiError(415, f"{where}: the data: URL says '{declared[:40] or 'nothing'}' but holds a {kind} file "
                            f"({real}); declare the image's real type", param=where, code="unsupported_image_type")
    return data
