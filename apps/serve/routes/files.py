"""``GET /v1/files/{name}``: the kept images of ``response_format=url`` answers (no key: the name is the key)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..forms import ApiError
from . import state

router = APIRouter()


@router.get("/v1/files/{name}", include_in_schema=False)
async def get_file(name: str, request: Request):
    # No API key: the 192-bit random name is the capability, and it expires (as OpenAI's image URLs do).
    store = state(request).store
    found = store.get(name)
    if found is None:
        raise ApiError(404, f"no such file (unknown, or expired: answers are kept {store.ttl_s:g} s, at most "
                            f"{store.max_files} of them)", code="file_not_found")
    data, left = found
    return Response(data, media_type=store.media_type(name), headers={
        "Cache-Control": f"private, max-age={max(0, int(left))}", "X-Content-Type-Options": "nosniff"})
