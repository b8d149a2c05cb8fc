"""``imagereward=SOURCE``: ImageReward (BLIP ViT-L + an MLP head), without the image-reward package.

That package imports torchvision, which does not load beside the pinned CPU torch; so ``ImageReward.pt`` is
renamed onto ``transformers``' BLIP towers (``BlipVisionModel``; ``BlipTextModel`` with cross-attention, BLIP's
``med.py`` BERT under the same names) and scored as ``ImageReward.score`` does: the prompt tokenised by BLIP's
BERT tokenizer (``max_length`` padding to 35), the image's ViT tokens as cross-attention input to the text
encoder, its first token's feature through the MLP (five Linear layers, no activation: the published code
comments them out), then ``(x - 0.16717362830052426) / 1.0333394966054072``.

SOURCE is a local folder, or the checkpoint file in one, holding ``ImageReward.pt`` (read with
``weights_only=True``, its pickle scanned first) or a ``.safetensors`` of the same keys, ``med_config.json``
(the BERT config ImageReward publishes) and the ``bert-base-uncased`` tokenizer (``vocab.txt``). The ViT's
shapes come from the weights; its heads are width / 64, as in BLIP's ViT-B and ViT-L.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import Arg, ConfigError, InvalidInputError, ModelNotFoundError
from .base import RewardScores, to_pil

__all__ = ["IMAGEREWARD_MEAN", "IMAGEREWARD_STD", "ImageRewardModel", "check_imagereward_source"]

IMAGEREWARD_MEAN, IMAGEREWARD_STD = 0.16717362830052426, 1.0333394966054072
_FIX = "pass a folder holding ImageReward.pt, med_config.json and the bert-base-uncased vocab.txt (THUDM/ImageReward)"
_HEAD = (0, 2, 4, 6, 7)  # the Linear layers of the MLP's Sequential (the others are Dropout)
_V, _T = "blip.visual_encoder.", "blip.text_encoder."


def check_imagereward_source(source: str | os.PathLike) -> tuple[Path, Path]:
    """``(folder, checkpoint)``, checked without reading weights.

    Raises:
        ModelNotFoundError: no such path or checkpoint. InvalidInputError: no med_config.json or tokenizer.
        PickleRefusedError / CorruptFileError: a checkpoint that pickles more than tensors, or is not one.
    """
    from ..state import check_tensor_file
    from .weights import check_pickle

    path = Path(source).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"imagereward source '{path}' does not exist; {_FIX}")
    if path.is_dir():
        found = [path / "ImageReward.pt"] if (path / "ImageReward.pt").is_file() else sorted(path.glob("*.safetensors"))
        if len(found) != 1:
            raise ModelNotFoundError(f"imagereward folder '{path}' holds {len(found)} checkpoints (ImageReward.pt or one "
                                     f".safetensors); {_FIX}")
        folder, ckpt = path, found[0]
    else:
        folder, ckpt = path.parent, path
    if ckpt.suffix == ".safetensors":
        check_tensor_file(ckpt, what="imagereward checkpoint", fix=_FIX)
    else:
        check_pickle(ckpt, "imagereward checkpoint", _FIX)
    for name in ("med_config.json", "vocab.txt"):
        if not (folder / name).is_file():
            raise InvalidInputError(f"imagereward folder '{folder}' has no {name}; {_FIX}")
    try:
        json.loads((folder / "med_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"imagereward folder '{folder}': med_config.json is not readable JSON ({exc})") from None
    return folder, ckpt


def _rename(sd: dict) -> tuple[dict, dict, list]:
    """ImageReward's keys -> (BlipVisionModel state, BlipTextModel state, the head's [(weight, bias)])."""
    vision, text = {}, {}
    for k, v in sd.items():
        if k.startswith(_V):
            k = k[len(_V):]
            k = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
                 "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
                 "patch_embed.proj.bias": "embeddings.patch_embedding.bias", "norm.weight": "post_layernorm.weight",
                 "norm.bias": "post_layernorm.bias"}.get(k, k)
            for a, b in (("blocks.", "encoder.layers."), (".norm1.", ".layer_norm1."), (".norm2.", ".layer_norm2."),
                         (".attn.qkv.", ".self_attn.qkv."), (".attn.proj.", ".self_attn.projection.")):
                k = k.replace(a, b)
            vision[k] = v
        elif k.startswith(_T) and not k.endswith("position_ids"):
            text[k[len(_T):]] = v  # BLIP's med.py BERT and transformers' BlipTextModel share their names
    head = [(sd[f"mlp.layers.{i}.weight"], sd[f"mlp.layers.{i}.bias"]) for i in _HEAD]
    return vision, text, head


def _load(module, state: dict, ckpt: Path, what: str) -> None:
    import torch

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in type(module)(module.config, **_kw(module)).state_dict().items()}
    bad = next((k for k, v in state.items() if k not in shapes or tuple(v.shape) != shapes[k]), None)
    missing = [k for k in shapes if k not in state and not k.endswith("position_ids")]
    if bad is not None or missing:
        detail = (f"'{bad}' is {tuple(state[bad].shape)}, the config wants {shapes.get(bad, 'no such tensor')}"
                  if bad is not None else f"it lacks '{missing[0]}'")
        raise InvalidInputError(f"imagereward checkpoint '{ckpt}' does not fit its {what}: {detail}; {_FIX}")
    module.load_state_dict(state, strict=False)


def _kw(module) -> dict:
    return {"add_pooling_layer": False} if type(module).__name__ == "BlipTextModel" else {}


class ImageRewardModel:
    """ImageReward: BLIP's text encoder over the prompt, cross-attending to the image, then the MLP, standardised.

    Args:
        vision: ``BlipVisionModel``; text: ``BlipTextModel`` (cross-attention); head: ``torch.nn.Sequential`` of
        the five Linear layers; tokenizer: BLIP's BERT tokenizer; batch_size: images per pass.
    """

    needs_original = False
    needs_prompts = True

    def __init__(self, vision, text, head, tokenizer, batch_size: int = 16):
        self.vision, self.text, self.head, self.tokenizer = vision, text, head, tokenizer
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, device: str = "auto",
                        batch_size: int = 16) -> "ImageRewardModel":
        """Check ``source`` (:func:`check_imagereward_source`), rename its weights and load them, fp32, eval mode."""
        import torch
        from transformers import BertTokenizer, BlipTextConfig, BlipVisionConfig
        from transformers.models.blip.modeling_blip import BlipVisionModel
        from transformers.models.blip.modeling_blip_text import BlipTextModel

        from ..devices import resolve_device
        from .weights import read_state_dict

        folder, ckpt = check_imagereward_source(source)
        sd = read_state_dict(ckpt, "imagereward checkpoint", _FIX)
        try:
            vis_sd, txt_sd, head_sd = _rename(sd)
            width, patch = int(vis_sd["embeddings.class_embedding"].shape[-1]), int(vis_sd[
                "embeddings.patch_embedding.weight"].shape[-1])
            grid = round((vis_sd["embeddings.position_embedding"].shape[1] - 1) ** 0.5)
            depth = len({k.split(".")[2] for k in vis_sd if k.startswith("encoder.layers.")})
            mlp = int(vis_sd["encoder.layers.0.mlp.fc1.weight"].shape[0])
        except (KeyError, IndexError) as exc:
            raise InvalidInputError(f"imagereward checkpoint '{ckpt}' is not ImageReward's BLIP + MLP state dict "
                                    f"(no {exc}); {_FIX}") from None
        med = json.loads((folder / "med_config.json").read_text())
        vision = BlipVisionModel(BlipVisionConfig(hidden_size=width, intermediate_size=mlp, num_hidden_layers=depth,
                                                  num_attention_heads=max(1, width // 64), image_size=grid * patch,
                                                  patch_size=patch, layer_norm_eps=1e-6, hidden_act="gelu"))
        keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "layer_norm_eps", "hidden_act", "pad_token_id")
        text = BlipTextModel(BlipTextConfig(**{k: med[k] for k in keys if k in med}, encoder_hidden_size=width,
                                            is_decoder=True, bos_token_id=None, sep_token_id=None),
                             add_pooling_layer=False)  # is_decoder=True builds the cross-attention layers
        _load(vision, vis_sd, ckpt, "ViT")
        _load(text, txt_sd, ckpt, "med_config.json")
        head = torch.nn.Sequential(*[torch.nn.Linear(w.shape[1], w.shape[0]) for w, _ in head_sd])
        for layer, (w, b) in zip(head, head_sd):
            if tuple(layer.weight.shape) != tuple(w.shape) or tuple(b.shape) != (w.shape[0],):
                raise InvalidInputError(f"imagereward checkpoint '{ckpt}': the MLP head's shapes do not chain; {_FIX}")
            layer.weight.data.copy_(w)
            layer.bias.data.copy_(b)
        if head[0].in_features != text.config.hidden_size:
            raise InvalidInputError(f"imagereward checkpoint '{ckpt}': the MLP takes {head[0].in_features} features, "
                                    f"the text encoder gives {text.config.hidden_size}; {_FIX}")
        tokenizer = BertTokenizer.from_pretrained(folder)
        # BLIP's init_tokenizer: [DEC] as bos, [ENC] as an extra special token (ids after the vocabulary)
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
        tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
        dev = resolve_device(device)
        return cls(vision.eval().to(dev), text.eval().to(dev), head.eval().to(dev), tokenizer, batch_size)

    def __call__(self, images, masks, masked_images=None, *, prompts=None) -> RewardScores:
        import torch

        from .preprocess import open_clip_pixels

        n = images.shape[0]
        if prompts is None:
            raise ConfigError("the imagereward reward scores an image against its prompt; pass ", Arg("prompt", "TEXT"))
        prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise InvalidInputError(f"{len(prompts)} prompts for {n} images; give one per image")
        pils = to_pil(images)
        device = next(self.head.parameters()).device
        size = int(self.vision.config.image_size)
        out = []
        with torch.inference_mode():
            for i in range(0, n, self.batch_size):
                t = self.tokenizer(prompts[i:i + self.batch_size], padding="max_length", truncation=True, max_length=35,
                                   return_tensors="pt")
                pix = torch.from_numpy(np.stack([open_clip_pixels(p, size) for p in pils[i:i + self.batch_size]])).to(device)
                img = self.vision(pixel_values=pix).last_hidden_state
                hidden = self.text(input_ids=t["input_ids"].to(device), attention_mask=t["attention_mask"].to(device),
                                   encoder_hidden_states=img,
                                   encoder_attention_mask=torch.ones(img.shape[:-1], dtype=torch.long, device=device),
                                   is_decoder=False).last_hidden_state
                x = self.head(hidden[:, 0].float()).squeeze(-1)
                out.append(((x - IMAGEREWARD_MEAN) / IMAGEREWARD_STD).cpu())
        return RewardScores(torch.cat(out))
