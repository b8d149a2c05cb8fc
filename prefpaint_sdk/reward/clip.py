"""``clip``: any ``transformers`` ``CLIPModel`` checkpoint as a text-image preference reward (PickScore, CLIPScore).

The score is the one PickScore's published code computes (``model.logit_scale.exp() * text_embs @
image_embs.T`` on L2-normalised embeddings), i.e. ``exp(logit_scale) * cos(image, prompt)``; CLIP's own
``logits_per_image`` is exactly that. For OpenAI CLIP ``exp(logit_scale) = 100``, which is torchmetrics'
CLIPScore ``100 * cos`` without its clamp at 0 (we keep negative values, so rankings stay strict).

The image is scored whole (an inpainting is judged as the picture a user gets) against the prompt it was
made for: ``prompts`` is required. Images go through the folder's ``preprocessor_config.json`` when it has one
(``CLIPImageProcessor``), else through CLIP's own preprocessing at the vision tower's size.
Weights load from safetensors only; a folder whose only weights are a pickle is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import Arg, ConfigError, InvalidInputError, ModelNotFoundError, PickleRefusedError
from .base import RewardScores, to_pil

__all__ = ["ClipReward", "check_clip_folder"]

_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def check_clip_folder(folder: str | os.PathLike) -> Path:
    """Check, without reading weights, that ``folder`` holds a CLIPModel with safetensors weights and a tokenizer.

    Raises:
        ModelNotFoundError: no config.json. InvalidInputError: not a CLIP model, or no tokenizer.
        PickleRefusedError: its only weights are a pickle (``pytorch_model.bin``).
    """
    folder = Path(folder)
    config = folder / "config.json"
    if not config.is_file():
        raise ModelNotFoundError(f"clip model '{folder}' has no config.json; pass a folder saved with "
                                 "CLIPModel.save_pretrained, or a hub id such as yuvalkirstain/PickScore_v1")
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"clip model '{folder}': config.json is not readable JSON ({exc}); re-download it") from None
    if model_type != "clip":
        raise InvalidInputError(f"clip model '{folder}' is a '{model_type}' model, not a CLIPModel; pass a CLIP checkpoint")
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise PickleRefusedError(f"clip model '{folder}' has only pickled weights (.bin/.pt); PrefPaint does not "
                                     "load pickles: convert them to model.safetensors")
        raise ModelNotFoundError(f"clip model '{folder}' has no model.safetensors; download the weights")
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise InvalidInputError(f"clip model '{folder}' has no tokenizer (tokenizer.json or vocab.json); save the "
                                "tokenizer (or the processor) into the same folder")
    return folder


class ClipReward:
    """A CLIPModel scoring each image against its prompt: ``exp(logit_scale) * cos(image, text)``.

    Args:
        model: a ``transformers.CLIPModel`` (eval mode).
        tokenizer: its tokenizer.
        image_processor: a ``CLIPImageProcessor``, or ``None`` for CLIP's preprocessing at the tower's size.
        batch_size: images per pass.
    """

    needs_original = False
    needs_prompts = True

    def __init__(self, model, tokenizer, image_processor=None, batch_size: int = 16):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, *, device: str = "auto", batch_size: int = 16) -> "ClipReward":
        """Load a checked CLIP folder (see :func:`check_clip_folder`) on ``device``, fp32, eval mode."""
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        from ..devices import resolve_device

        folder = check_clip_folder(folder)
        model = CLIPModel.from_pretrained(folder, use_safetensors=True).eval().to(resolve_device(device))
        tokenizer = AutoTokenizer.from_pretrained(folder)
        processor = CLIPImageProcessor.from_pretrained(folder) if (folder / "preprocessor_config.json").is_file() else None
        return cls(model, tokenizer, processor, batch_size)

    def _pixels(self, pils):
        if self.image_processor is not None:
            return self.image_processor(images=pils, return_tensors="pt")["pixel_values"]
        from .preprocess import preprocess_images

        return preprocess_images(pils, int(self.model.config.vision_config.image_size))

    def __call__(self, images, masks, masked_images=None, *, prompts=None) -> RewardScores:
        import torch

        n = images.shape[0]
        if prompts is None:
            raise ConfigError("the clip reward scores an image against its prompt; pass ", Arg("prompt", "TEXT"))
        prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise InvalidInputError(f"{len(prompts)} prompts for {n} images; give one per image")
        pils = to_pil(images)
        device = next(self.model.parameters()).device
        max_len = int(self.model.config.text_config.max_position_embeddings)
        out = []
        with torch.inference_mode():
            for i in range(0, n, self.batch_size):
                text = self.tokenizer(prompts[i:i + self.batch_size], padding=True, truncation=True,
                                      max_length=max_len, return_tensors="pt")
                res = self.model(input_ids=text["input_ids"].to(device), attention_mask=text["attention_mask"].to(device),
                                 pixel_values=self._pixels(pils[i:i + self.batch_size]).to(device))
                out.append(res.logits_per_image.diagonal().float().cpu())  # image k against its own prompt k
        return RewardScores(torch.cat(out))
