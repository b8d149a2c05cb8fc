"""Qwen-Image-Edit inpainting (``QwenImageEditInpaintPipeline``): the prompt is an edit instruction.

A latent-blend inpainter like :mod:`.qwen_image`, with two differences that come from the pipeline itself:

* the Qwen2.5-VL text encoder sees the image as well as the instruction (through ``Qwen2VLProcessor``), and the
  transformer reads the image's latents beside the noisy ones;
* the pipeline always works at a 1024x1024 area with the image's aspect ratio (``calculate_dimensions``),
  whatever height and width it is given. The engine hands the inpainter its result resized back to the size
  asked for (Lanczos), so the result's size is the caller's, as in every other family.

**Loading without torchvision.** transformers builds ``Qwen2VLProcessor`` with a video processor, and its video
processors need torchvision (no CPU build of torchvision imports beside the toolkit's pinned CPU torch). The
pipeline never passes videos, so where torchvision is missing the engine loads the folder's processor as
:class:`ImageOnlyQwen2VLProcessor`: the same tokenizer and the same image processor settings (transformers'
PIL backend), no video processor. Where torchvision is installed, the folder loads exactly as diffusers loads it.

Sampling only: the edit family is not alignable (its reward would have to judge an instruction, not a hole).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, ClassVar

from .. import hub
from .qwen_image import QwenImageEngine

__all__ = ["QwenImageEditEngine", "EDIT_SIDE", "torchvision_available"]  # and ImageOnlyQwen2VLProcessor, built on first use

EDIT_SIDE = 1024
"""The pipeline's working area is ``EDIT_SIDE ** 2`` pixels at the input's aspect ratio (its
``calculate_dimensions(1024 * 1024, ratio)``), whatever the VAE or the requested size."""


@functools.cache
def _image_only_processor_class():
    from transformers import Qwen2VLProcessor

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        """``Qwen2VLProcessor`` without its video processor (which needs torchvision); text and images only.

        ``save_pretrained`` writes the tokenizer and the image processor, the files ``from_folder`` reads."""

        def check_argument_for_proper_class(self, attribute_name, arg):
            if attribute_name == "video_processor" and arg is None:
                return None
            return super().check_argument_for_proper_class(attribute_name, arg)

        @classmethod
        def from_folder(cls, folder: str | os.PathLike):
            """The processor of a pipeline's ``processor/`` folder (tokenizer files beside the image processor's
            ``preprocessor_config.json``, as Qwen publishes it)."""
            from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

            folder = os.fspath(folder)
            return cls(image_processor=Qwen2VLImageProcessorPil.from_pretrained(folder),
                       tokenizer=AutoTokenizer.from_pretrained(folder), video_processor=None)

        def save_pretrained(self, save_directory, **kwargs):
            os.makedirs(save_directory, exist_ok=True)
            self.tokenizer.save_pretrained(save_directory)
            self.image_processor.save_pretrained(save_directory)
            return [save_directory]

    # A pipeline saved with this processor must read as the published layout, ("transformers",
    # "Qwen2VLProcessor") in model_index.json, so plain diffusers code (with torchvision) loads it too: diffusers
    # names a component by its class's module and name.
    ImageOnlyQwen2VLProcessor.__module__ = Qwen2VLProcessor.__module__
    ImageOnlyQwen2VLProcessor.__name__ = ImageOnlyQwen2VLProcessor.__qualname__ = "Qwen2VLProcessor"
    return ImageOnlyQwen2VLProcessor


def __getattr__(name: str):
    # The class derives from transformers' processor: built on first use, so importing engines stays torch-free.
    if name == "ImageOnlyQwen2VLProcessor":
        return _image_only_processor_class()
    raise AttributeError(name)


def torchvision_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401 - a CUDA-only torchvision beside a CPU torch fails here
    except Exception:  # noqa: BLE001
        return False
    return True


class QwenImageEditEngine(QwenImageEngine):
    family = "qwen-image-edit"
    pipeline_class_name = "QwenImageEditInpaintPipeline"
    hub_models: ClassVar[dict[str, int]] = {hub.MODEL_ALIASES["qwen-image-edit"]: EDIT_SIDE}
    alignable: ClassVar[bool] = False  # not inherited from Qwen-Image: a hole reward cannot judge an instruction

    @classmethod
    def read_resolution(cls, configs) -> int:
        return EDIT_SIDE

    @classmethod
    def load_components(cls, path: str | Path) -> dict[str, Any]:
        processor = Path(path) / "processor"
        if torchvision_available() or not processor.is_dir():
            return {}
        return {"processor": _image_only_processor_class().from_folder(processor)}

    def sample(self, image, mask, *, width: int, height: int, **kwargs) -> list:
        from PIL import Image

        images = super().sample(image, mask, width=width, height=height, **kwargs)
        return [im if im.size == (width, height) else im.resize((width, height), Image.LANCZOS) for im in images]
