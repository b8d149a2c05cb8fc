"""Uploaded images and masks, decoded under the server's pixel limit; an SDK refusal becomes a JSON error
naming the API's field (400, or 413 for too many pixels)."""

import io
import warnings

import numpy as np
from PIL import Image

from prefpaint_sdk import ImageTooLargeError, InvalidInputError, load_image, load_mask
from prefpaint_sdk.utils import check_image_file

from .forms import ApiError, api_text, sniff_image

__all__ = ["Uploads", "sdk_error"]

# SDK parameter names -> the API's field names
_FIELD_OF = {"num_candidates": "n", "guidance_scale": "guidance"}


def sdk_error(exc: InvalidInputError, fields: dict | None = None) -> ApiError:
    """The API error of an SDK refusal, naming the field (``fields`` maps SDK names to this request's)."""
    param = getattr(exc, "param", None)
    param = (fields or {}).get(param, _FIELD_OF.get(param, param))
    status = 413 if isinstance(exc, ImageTooLargeError) else 400
    return ApiError(status, api_text(exc), param=param)


class Uploads:
    """Decoders of uploaded files under ``max_pixels`` (checked from the header before any pixel is decoded)."""

    def __init__(self, max_pixels: int):
        self.max_pixels = max_pixels

    def image(self, data: bytes, what: str):
        sniff_image(data, what)
        try:
            return load_image(data, max_pixels=self.max_pixels)
        except InvalidInputError as exc:
            raise sdk_error(exc, {"max_pixels": what}) from None

    def mask(self, data: bytes, what: str, invert: bool, from_alpha: bool) -> np.ndarray:
        sniff_image(data, what)
        try:
            return load_mask(data, invert=invert, from_alpha=from_alpha, max_pixels=self.max_pixels)
        except InvalidInputError as exc:
            raise sdk_error(exc, {"max_pixels": what}) from None

    def transparent(self, data: bytes, what: str) -> np.ndarray | None:
        """OpenAI's convention: the pixels with alpha 0 (None when the file has no alpha channel)."""
        rgba = self.rgba(data, what)
        return None if rgba is None else rgba[..., 3] == 0

    def rgba(self, data: bytes, what: str) -> np.ndarray | None:
        """The file's pixels as RGBA (H, W, 4) when it has an alpha channel, else None."""
        sniff_image(data, what)
        try:
            check_image_file(data, what=what, max_pixels=self.max_pixels)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    im.load()
                    if "A" not in im.getbands() and not (im.mode == "P" and "transparency" in im.info):
                        return None
                    return np.asarray(im.convert("RGBA"))
        except InvalidInputError as exc:
            raise sdk_error(exc, {"max_pixels": what}) from None
        except Image.DecompressionBombError:
            raise ApiError(413, f"{what} has more pixels than this process allows", param=what) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ApiError(400, f"{what} is not a readable image ({exc.__class__.__name__}); re-export it as PNG",
                           param=what) from None
