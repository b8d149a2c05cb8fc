"""``hpsv2=SOURCE``: HPSv2 / HPSv2.1 (an open_clip ViT-H-14 fine-tuned on human preferences), without open_clip.

open_clip imports torchvision, which does not load beside the pinned CPU torch; so the checkpoint's open_clip
state dict is renamed onto a ``transformers`` ``CLIPModel`` (the two share one architecture: pre-LN towers, a
class token pooled after ``ln_post``, projections without bias) and scored as HPSv2's ``img_score.py`` does:
``image_features @ text_features.T`` on L2-normalised features, the diagonal. **No logit scale multiplies**: the
HPS score is the plain cosine (about 0.2-0.3 for real pairs).

SOURCE is a local folder, or a checkpoint file in one, holding:

* the checkpoint: ``HPS_v2.1_compressed.pt`` / ``HPS_v2_compressed.pt`` (read with ``weights_only=True``; a
  pickle of anything but tensors is refused before any model loads) or a ``.safetensors`` of the same keys;
* the CLIP BPE tokenizer (``vocab.json`` + ``merges.txt`` or ``tokenizer.json``, e.g. from
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``): open_clip's SimpleTokenizer is that tokenizer, context 77;
* optionally ``config.json`` (a ``CLIPConfig``); without it the ViT-H-14 shapes (:data:`VIT_H_14`) apply.

Images follow open_clip's eval transform: shortest side to the tower's size (Pillow bicubic), centre crop
with torchvision's rounding, CLIP mean/std. Text is pooled at the highest token id (the end token), as
open_clip does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import Arg, ConfigError, InvalidInputError, ModelNotFoundError
from .base import RewardScores, to_pil

__all__ = ["HpsReward", "VIT_H_14", "check_hps_source", "open_clip_to_transformers"]

# open_clip's ViT-H-14 (model_configs/ViT-H-14.json): vision head_width 80 -> 16 heads; GELU, not QuickGELU
VIT_H_14 = {
    "projection_dim": 1024,
    "vision_config": dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                          patch_size=14, image_size=224, hidden_act="gelu"),
    "text_config": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                        max_position_embeddings=77, vocab_size=49408, hidden_act="gelu"),
}
_FIX = "pass a folder holding HPS_v2.1_compressed.pt (or HPS_v2_compressed.pt) and the CLIP tokenizer files"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


def _checkpoint_in(folder: Path) -> Path:
    named = [folder / n for n in ("HPS_v2.1_compressed.pt", "HPS_v2_compressed.pt") if (folder / n).is_file()]
    found = named or sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".safetensors") and p.is_file())
    if not found:
        raise ModelNotFoundError(f"hpsv2 folder '{folder}' holds no checkpoint (.pt or .safetensors); {_FIX}")
    if len(found) > 1 and not named:
        raise InvalidInputError(f"hpsv2 folder '{folder}' holds several checkpoints ({', '.join(p.name for p in found)}); "
                                "pass the file itself: hpsv2=FILE")
    return found[0]


def check_hps_source(source: str | os.PathLike) -> tuple[Path, Path]:
    """``(folder, checkpoint)`` for a local HPSv2 source, checked without reading weights.

    Raises:
        ModelNotFoundError: no such path, or no checkpoint in the folder. InvalidInputError: no tokenizer, several
        checkpoints, an unreadable config.json. PickleRefusedError / CorruptFileError: a checkpoint that is a
        pickle of more than tensors, or not a checkpoint at all.
    """
    from ..state import check_tensor_file
    from .weights import check_pickle

    path = Path(source).expanduser()
    if not path.exists():
        raise ModelNotFoundError(f"hpsv2 source '{path}' does not exist; {_FIX}")
    folder, ckpt = (path, _checkpoint_in(path)) if path.is_dir() else (path.parent, path)
    if ckpt.suffix == ".safetensors":
        check_tensor_file(ckpt, what="hpsv2 checkpoint", fix=_FIX)
    else:
        check_pickle(ckpt, "hpsv2 checkpoint", _FIX)
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise InvalidInputError(f"hpsv2 folder '{folder}' has no tokenizer (tokenizer.json or vocab.json + merges.txt); "
                                "copy the CLIP ViT-H-14 tokenizer files (laion/CLIP-ViT-H-14-laion2B-s32B-b79K) beside "
                                "the checkpoint")
    if (folder / "config.json").is_file():
        try:
            model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"hpsv2 folder '{folder}': config.json is not readable JSON ({exc})") from None
        if model_type != "clip":
            raise InvalidInputError(f"hpsv2 folder '{folder}': config.json describes a '{model_type}' model, not a "
                                    "CLIPConfig; remove it (ViT-H-14 is the default) or save a CLIPConfig")
    return folder, ckpt


def _layers(sd: dict, src: str, dst: str, out: dict) -> None:
    """Rename one tower's open_clip residual blocks (``src``: ``visual.transformer.`` or ``transformer.``)."""
    n = 0
    while f"{src}resblocks.{n}.ln_1.weight" in sd:
        a, b = f"{src}resblocks.{n}.", f"{dst}layers.{n}."
        for kind in ("weight", "bias"):
            q, k, v = sd.pop(f"{a}attn.in_proj_{kind}").chunk(3)
            out[f"{b}self_attn.q_proj.{kind}"], out[f"{b}self_attn.k_proj.{kind}"] = q, k
            out[f"{b}self_attn.v_proj.{kind}"] = v
            for o, t in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[f"{b}{t}.{kind}"] = sd.pop(f"{a}{o}.{kind}")
        n += 1


def open_clip_to_transformers(sd: dict) -> dict:
    """An open_clip CLIP state dict (ViT towers) renamed to ``transformers`` ``CLIPModel`` keys.

    Raises:
        KeyError: a tensor open_clip's CLIP always has is missing. ValueError: tensors left over (another model).
    """
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    sd.pop("attn_mask", None)  # open_clip's causal mask buffer; transformers builds its own
    out = {"logit_scale": sd.pop("logit_scale")}
    v, t = "vision_model.", "text_model."
    out[f"{v}embeddings.patch_embedding.weight"] = sd.pop("visual.conv1.weight")
    out[f"{v}embeddings.class_embedding"] = sd.pop("visual.class_embedding")
    out[f"{v}embeddings.position_embedding.weight"] = sd.pop("visual.positional_embedding")
    for kind in ("weight", "bias"):
        out[f"{v}pre_layrnorm.{kind}"] = sd.pop(f"visual.ln_pre.{kind}")
        out[f"{v}post_layernorm.{kind}"] = sd.pop(f"visual.ln_post.{kind}")
        out[f"{t}final_layer_norm.{kind}"] = sd.pop(f"ln_final.{kind}")
    out["visual_projection.weight"] = sd.pop("visual.proj").t().contiguous()  # x @ proj == Linear(proj.T)
    out["text_projection.weight"] = sd.pop("text_projection").t().contiguous()
    out[f"{t}embeddings.token_embedding.weight"] = sd.pop("token_embedding.weight")
    out[f"{t}embeddings.position_embedding.weight"] = sd.pop("positional_embedding")
    _layers(sd, "visual.transformer.", f"{v}encoder.", out)
    _layers(sd, "transformer.", f"{t}encoder.", out)
    if sd:
        raise ValueError(f"{len(sd)} tensor(s) that an open_clip ViT CLIP does not have, e.g. '{next(iter(sd))}'")
    return out


class HpsReward:
    """HPSv2: ``cos(image, prompt)`` of the fine-tuned ViT-H-14 (no logit scale), as ``hpsv2.score`` returns.

    Args:
        model: a ``transformers.CLIPModel`` holding the converted weights (eval mode).
        tokenizer: the CLIP BPE tokenizer.
        batch_size: images per pass.
    """

    needs_original = False
    needs_prompts = True

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, device: str = "auto", batch_size: int = 16) -> "HpsReward":
        """Check ``source`` (:func:`check_hps_source`), convert its checkpoint and load it on ``device``, fp32."""
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        from ..devices import resolve_device
        from .weights import read_state_dict

        folder, ckpt = check_hps_source(source)
        config = (CLIPConfig.from_pretrained(folder) if (folder / "config.json").is_file()
                  else CLIPConfig(**{k: dict(v) if isinstance(v, dict) else v for k, v in VIT_H_14.items()}))
        sd = read_state_dict(ckpt, "hpsv2 checkpoint", _FIX)
        try:
            sd = open_clip_to_transformers(sd)
        except (KeyError, ValueError) as exc:
            raise InvalidInputError(f"hpsv2 checkpoint '{ckpt}' is not an open_clip ViT CLIP state dict ({exc}); "
                                    f"{_FIX}") from None
        import torch

        with torch.device("meta"):  # shapes first, without allocating a ViT-H-14
            shapes = {k: tuple(v.shape) for k, v in CLIPModel(config).state_dict().items()}
        where = "config.json" if (folder / "config.json").is_file() else "ViT-H-14"
        bad = next((k for k, v in sd.items() if k in shapes and tuple(v.shape) != shapes[k]), None)
        if bad is not None:
            raise InvalidInputError(f"hpsv2 checkpoint '{ckpt}' does not fit the config ({where}): '{bad}' is "
                                    f"{tuple(sd[bad].shape)}, the config wants {shapes[bad]}; {_FIX}")
        missing = [k for k in shapes if k not in sd and not k.endswith("position_ids")]
        if missing:
            raise InvalidInputError(f"hpsv2 checkpoint '{ckpt}' lacks {len(missing)} tensor(s) of the config ({where}), "
                                    f"e.g. '{missing[0]}'; {_FIX}")
        model = CLIPModel(config).eval()
        model.load_state_dict(sd, strict=False)  # only the position_ids buffers are not in sd
        return cls(model.to(resolve_device(device)), AutoTokenizer.from_pretrained(folder), batch_size)

    def __call__(self, images, masks, masked_images=None, *, prompts=None) -> RewardScores:
        import torch

        from .preprocess import open_clip_pixels

        n = images.shape[0]
        if prompts is None:
            raise ConfigError("the hpsv2 reward scores an image against its prompt; pass ", Arg("prompt", "TEXT"))
        prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
        if len(prompts) != n:
            raise InvalidInputError(f"{len(prompts)} prompts for {n} images; give one per image")
        pils = to_pil(images)
        device = next(self.model.parameters()).device
        size = int(self.model.config.vision_config.image_size)
        context = int(self.model.config.text_config.max_position_embeddings)
        out = []
        with torch.inference_mode():
            for i in range(0, n, self.batch_size):
                ids = self.tokenizer(prompts[i:i + self.batch_size], padding="max_length", truncation=True,
                                     max_length=context, return_tensors="pt")["input_ids"].to(device)
                pix = torch.from_numpy(np.stack([open_clip_pixels(p, size) for p in pils[i:i + self.batch_size]])).to(device)
                img = self.model.visual_projection(self.model.vision_model(pixel_values=pix).pooler_output)
                # open_clip: causal mask only, pooled at the highest id (the end token), after ln_final
                hidden = self.model.text_model(input_ids=ids).last_hidden_state
                txt = self.model.text_projection(hidden[torch.arange(ids.shape[0], device=device), ids.argmax(-1)])
                img = img / img.norm(dim=-1, keepdim=True)
                txt = txt / txt.norm(dim=-1, keepdim=True)
                out.append((img * txt).sum(-1).float().cpu())  # the diagonal of image_features @ text_features.T
        return RewardScores(torch.cat(out))
