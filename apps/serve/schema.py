"""The OpenAPI schema of the routes, kept true: request bodies (multipart and JSON) and every answer they give.

The handlers read their bodies themselves (:mod:`.forms`: in memory, under the cap, with the upload timeout), so
FastAPI cannot derive these from their signatures; each route passes its part here as ``openapi_extra`` and
``responses``. ``tests/test_serve_schema.py`` fuzzes the live server from this schema (schemathesis).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERRORS", "body", "responses"]

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
ERRORS = {400: "a field's value is refused", 401: "a missing or wrong API key", 403: "a foreign Origin",
          404: "no such model, job or file", 408: "the upload stalled", 409: "the job was cancelled",
          413: "the body, an image or a field is too large", 415: "not a body or image type this server takes",
          421: "a Host name that is not the server's", 422: "a field is missing or malformed",
          429: "the model's queue is full", 500: "the model failed", 507: "the answer is too large to keep"}

_STR, _INT, _NUM, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "string"}
_FILE = {"type": "string", "format": "binary"}
_OBJ = {"type": "object"}


def responses(ok: dict[int, tuple[str, dict]], *errors: int) -> dict[int | str, Any]:
    """FastAPI ``responses``: the successes as ``{status: (description, {media type: schema})}``, each error as
    the JSON error body."""
    out: dict[int | str, Any] = {}
    for status, (text, media) in ok.items():
        out[status] = {"description": text, "content": {m: {"schema": s} for m, s in media.items()}}
    for status in errors:
        out[status] = {"description": ERRORS[status], "content": {"application/json": {"schema": _ERROR}}}
    return out


def body(multipart: dict[str, dict], required: list[str], json_form: dict[str, dict] | None = None) -> dict:
    """``openapi_extra`` declaring a multipart body (and optionally the same fields as a JSON object)."""
    content = {"multipart/form-data": {"schema": {"type": "object", "properties": multipart, "required": required}}}
    if json_form is not None:
        content["application/json"] = {"schema": {"type": "object", "properties": json_form}}
    return {"requestBody": {"required": True, "content": content}}


WAIT = [{"name": "wait", "in": "query", "required": False,
         "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]}}]
JOB = {"type": "object", "required": ["id", "object", "status"],
       "properties": {"id": _STR, "object": _STR, "status": _STR, "kind": _STR}}

INPAINT_FIELDS = {"image": _FILE, "mask": _FILE, "prompt": _STR, "negative_prompt": _STR, "n": _INT,
                  "seed": _INT, "steps": _INT, "guidance": _NUM, "select": {"type": "string", "enum": ["reward", "lcb"]},
                  "eta": _NUM, "crop_margin": _INT, "mask_dilate": _INT, "mask_blur": _INT, "invert_mask": _BOOL,
                  "mask_from_alpha": _BOOL, "resize_mask": _BOOL, "model": _STR}
SCORE_FIELDS = {"image": _FILE, "mask": _FILE, "masked_image": _FILE, "invert_mask": _BOOL,
                "mask_from_alpha": _BOOL, "normalize": _BOOL,
                # part of the score protocol (prefpaint_sdk.reward.remote) for judges that read it; ours does not
                "prompt": _STR}
_EDIT_COMMON = {"prompt": _STR, "model": _STR, "n": _INT, "size": _STR,
                "quality": {"type": "string", "enum": ["low", "medium", "high", "auto"]},
                "output_format": {"type": "string", "enum": ["png", "webp", "jpeg"]},
                "output_compression": _INT,
                "background": {"type": "string", "enum": ["transparent", "opaque", "auto"]},
                "response_format": {"type": "string", "enum": ["b64_json", "url"]},
                "partial_images": _INT, "user": _STR, "safety_identifier": _STR, "seed": _INT, "steps": _INT,
                "guidance": _NUM, "select": {"type": "string", "enum": ["reward", "lcb"]}}
EDIT_MULTIPART = {"image": _FILE, "image[]": {"type": "array", "items": _FILE}, "mask": _FILE, "mask_image": _FILE,
                  "stream": _BOOL, **_EDIT_COMMON}
_DATA_URL = {"type": "string", "description": "a data: URL (data:image/png;base64,...); no other scheme"}
_IMAGE_REF = {"anyOf": [_DATA_URL, {"type": "object", "properties": {"image_url": _DATA_URL}}]}
EDIT_JSON = {"image": _IMAGE_REF, "images": {"type": "array", "items": _IMAGE_REF}, "mask": _IMAGE_REF,
             "mask_image": _IMAGE_REF, "stream": {"type": "boolean"},
             **{k: ({"type": "integer"} if v is _INT else {"type": "number"} if v is _NUM else v)
                for k, v in _EDIT_COMMON.items()}}
EDIT_ANSWER = {"type": "object", "required": ["created", "data"],
               "properties": {"created": _INT, "data": {"type": "array", "items": _OBJ}, "model": _STR,
                              "output_format": _STR, "size": _STR, "quality": _STR, "background": _STR,
                              "usage": _OBJ}}
SSE = {"text/event-stream": {"type": "string"}}
