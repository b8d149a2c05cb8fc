"""The PrefPaint reward model: a shared CLIP ViT encoder over (inpainted, masked prompt) + the paper's head.

Architecture (``shared/prefpaint-method.md``):

* a transformers ``CLIPVisionModelWithProjection`` (QuickGELU) encodes the inpainted image and the masked
  prompt image (the input with the hole blanked, black by default) with the same weights; each gives the
  projected embedding (512-d for ViT-B/32);
* the two are concatenated (inpainted first) and passed, as a length-1 sequence, through one
  ``nn.TransformerEncoderLayer`` (d_model 1024, 16 heads, feed-forward 1024, dropout 0.1, batch_first);
* Linear 1024→512, Dropout 0.2, Linear 512→256 (no activation) gives the reward embedding ``z``;
* a Linear 256→1 without bias gives the score.

Weights are saved as ``model.safetensors`` + ``config.json`` (``PyTorchModelHubMixin``, so ``push_to_hub``
works), and the trust matrix, when fitted or imported, as ``trust.safetensors`` (float64).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..errors import Arg, Hint, InvalidInputError
from ..imaging import check_masked_image_size, fit_mask_to_image, load_image, load_mask, masked_image
from .preprocess import preprocess_images, preprocess_tensor
from .trust import TRUST_FILE, TrustStats

__all__ = ["SCORE_SCALE", "SCORE_SHIFT", "VIT_B32_CONFIG", "RewardModel", "RewardOutput", "save_atomic"]

log = logging.getLogger(__name__)

# The official release optionally normalises scores as (s - 0.4064) / 2.3021 (affine: rankings unchanged).
SCORE_SHIFT = 0.4064
SCORE_SCALE = 2.3021

# OpenAI CLIP ViT-B/32's image tower (transformers' CLIPVisionConfig defaults, spelled out).
VIT_B32_CONFIG = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                      "image_size": 224, "patch_size": 32, "projection_dim": 512, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}

WEIGHTS_FILE = "model.safetensors"


@dataclass
class RewardOutput:
    """Scores of a batch, with the embedding each came from and how far it can be trusted.

    Attributes:
        scores: (N,) float32 scores (raw, or normalised when asked).
        embeddings: (N, D) reward embeddings ``z`` (D = 256 for the paper's head).
        bounds: (N,) float64 error bounds ``||z||_{V^-1}``, or ``None`` when the model has no trust matrix.
        trust: (N,) float64 trust weights ``gamma``, or ``None`` likewise.
    """

    scores: torch.Tensor
    embeddings: torch.Tensor
    bounds: torch.Tensor | None = None
    trust: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def lcb(self, c: float = 1.0) -> torch.Tensor:
        """Lower confidence bound ``score - c * bound`` (the score itself when there is no bound)."""
        s = self.scores.detach().double().cpu()
        return s if self.bounds is None else s - c * self.bounds.double().cpu()

    def to_records(self) -> list[dict[str, float | None]]:
        """One JSON-able dict per image with keys ``score``, ``bound``, ``trust``."""
        out = []
        for i in range(len(self)):
            out.append({
                "score": float(self.scores[i]),
                "bound": None if self.bounds is None else float(self.bounds[i]),
                "trust": None if self.trust is None else float(self.trust[i]),
            })
        return out


class RewardModel(nn.Module, PyTorchModelHubMixin, library_name="prefpaint", tags=["prefpaint", "reward-model"]):
    """PrefPaint reward model (see the module docstring for the architecture).

    Args:
        vision_config: keyword arguments of a transformers ``CLIPVisionConfig`` (ViT-B/32 by default).
        head_heads: attention heads of the fusion layer (16 in the paper; any divisor of 2*projection_dim).
        head_ff: feed-forward width of the fusion layer (default: 2*projection_dim, 1024 in the paper).
        head_dropout / mlp_hidden / mlp_dropout / embed_dim: the rest of the paper's head.
        score_shift / score_scale: the release's optional normalisation ``(s - shift) / scale``.
        mask_fill: RGB colour of the hole in the masked prompt image (black, as the release).

    Example:
        >>> rm = RewardModel.from_pretrained()               # kd5678/prefpaintReward, converted once
        >>> out = rm.score("inpainted.png", masks="mask.png")
        >>> out.scores, out.bounds, out.trust
    """

    def __init__(self, vision_config: dict | None = None, head_heads: int = 16, head_ff: int | None = None,
                 head_dropout: float = 0.1, mlp_hidden: int = 512, mlp_dropout: float = 0.2, embed_dim: int = 256,
                 score_shift: float = SCORE_SHIFT, score_scale: float = SCORE_SCALE,
                 mask_fill: Sequence[int] = (0, 0, 0)):
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        cfg = dict(VIT_B32_CONFIG)
        cfg.update(vision_config or {})
        proj = int(cfg["projection_dim"])
        d_model = 2 * proj
        if d_model % head_heads:
            raise InvalidInputError(f"head_heads={head_heads} does not divide the fusion width 2*projection_dim={d_model}")
        self.vision_config = cfg
        self.backbone = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg))
        self.fusion = nn.TransformerEncoderLayer(d_model=d_model, nhead=head_heads, dim_feedforward=head_ff or d_model,
                                                 dropout=head_dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_hidden), nn.Dropout(mlp_dropout), nn.Linear(mlp_hidden, embed_dim))
        self.last_layer = nn.Linear(embed_dim, 1, bias=False)
        self.score_shift = float(score_shift)
        self.score_scale = float(score_scale)
        self.mask_fill = tuple(int(c) for c in mask_fill)
        self.trust: TrustStats | None = None
        self.model_id: str | None = None
        self.revision: str | None = None

    # ------------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return int(self.vision_config["image_size"])

    @property
    def embed_dim(self) -> int:
        return int(self.last_layer.in_features)

    @property
    def device(self) -> torch.device:
        return self.last_layer.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.last_layer.weight.dtype

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLIP ``pixel_values`` (B, 3, S, S) → projected image embeddings (B, projection_dim)."""
        return self.backbone(pixel_values=pixel_values.to(self.device, self.dtype)).image_embeds

    def head(self, image_embeds: torch.Tensor, masked_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of (inpainted, masked prompt) → (scores (B,), reward embeddings z (B, embed_dim))."""
        x = torch.cat([image_embeds, masked_embeds], dim=-1).unsqueeze(1)
        x = self.fusion(x).squeeze(1)
        z = self.mlp(x)
        return self.last_layer(z).squeeze(-1), z

    def forward(self, pixel_values: torch.Tensor, masked_pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable scores and embeddings from preprocessed pixel tensors (what training calls)."""
        if masked_pixel_values.shape[0] == 1 and pixel_values.shape[0] > 1:
            m = self.encode(masked_pixel_values).expand(pixel_values.shape[0], -1)
        else:
            m = self.encode(masked_pixel_values)
        return self.head(self.encode(pixel_values), m)

    # ------------------------------------------------------------------------------------------
    def freeze_backbone(self, fraction: float = 0.7) -> int:
        """Freeze the patch/position embeddings, the pre-norm and the first ``round(fraction * L)`` layers.

        Returns the number of frozen transformer layers.
        """
        if not 0.0 <= fraction <= 1.0:
            raise InvalidInputError(f"freeze fraction must lie in [0, 1], got {fraction}")
        vm = self.backbone.vision_model
        layers = vm.encoder.layers
        n = round(fraction * len(layers))
        for p in self.parameters():
            p.requires_grad_(True)
        if n > 0:
            for module in (vm.embeddings, vm.pre_layrnorm, *layers[:n]):
                for p in module.parameters():
                    p.requires_grad_(False)
        return n

    # ------------------------------------------------------------------------------------------
    def score(self, images, masks=None, masked_images=None, *, batch_size: int = 16, normalize: bool = False,
              grad: bool = False, mask_fill: Sequence[int] | None = None) -> RewardOutput:
        """Score inpainted images against their masked prompt images.

        Args:
            images: one image or a list (path, PIL, numpy, tensor; see :mod:`prefpaint_sdk.imaging`). With
                ``grad=True``: a float tensor (B, 3, H, W) in [0, 1].
            masks: one mask (shared) or one per image, white = hole. Used to derive the masked prompt image
                (the image with the hole set to ``mask_fill``) when ``masked_images`` is not given. It is then
                built from the inpainted image, whose pixels outside the hole equal the input's only where the
                result was composited without a feathered seam; pass ``masked_images`` built from the input
                (:func:`~prefpaint_sdk.imaging.masked_image`) when you have it.
            masked_images: one masked prompt image (shared by all) or one per image. Identical masked images
                (the usual best-of-N case) are encoded once: N candidates cost N+1 backbone passes, not 2N.
            batch_size: images per backbone pass.
            normalize: return ``(s - score_shift) / score_scale`` instead of the raw score.
            grad: keep the autograd graph (differentiable path through :func:`preprocess_tensor`; the model's
                train/eval mode is left as it is). Without it, scoring runs in eval mode and inference mode.
            mask_fill: hole colour for derived masked images (default: the model's, black).

        Returns:
            :class:`RewardOutput`; ``bounds`` and ``trust`` are ``None`` when the model has no trust matrix.

        Raises:
            InvalidInputError: no masks and no masked images, mismatched counts or sizes, unreadable inputs.
        """
        from ..validation import at_least

        batch_size = at_least("batch_size", batch_size)
        fill = tuple(mask_fill) if mask_fill is not None else self.mask_fill
        if grad:
            scores, z = self._score_tensors(images, masks, masked_images, fill)
        else:
            was_training = self.training
            self.eval()  # no dropout when scoring, whatever mode the caller left the model in
            try:
                with torch.inference_mode():
                    scores, z = self._score_pil(images, masks, masked_images, fill, batch_size)
            finally:
                self.train(was_training)
        if normalize:
            scores = (scores - self.score_shift) / self.score_scale
        bounds = trust = None
        if self.trust is not None:
            bounds = self.trust.bound(z.detach())
            trust = self.trust.weight(bound=bounds)
        return RewardOutput(scores=scores if grad else scores.float().cpu(), embeddings=z if grad else z.float().cpu(),
                            bounds=bounds, trust=trust)

    def _score_pil(self, images, masks, masked_images, fill, batch_size):
        imgs = [load_image(x) for x in _as_list(images)]
        if not imgs:
            raise InvalidInputError("score() got no images")
        n = len(imgs)
        if masked_images is not None:
            prompts = [load_image(x) for x in _broadcast(masked_images, n, "masked_images")]
            for im, p in zip(imgs, prompts):
                check_masked_image_size(p.size, im.size)
        elif masks is not None:
            holes = _broadcast(masks, n, "masks")
            prompts = [masked_image(im, fit_mask_to_image(load_mask(m), im.size), fill) for im, m in zip(imgs, holes)]
        else:
            raise InvalidInputError("score() needs masks= or masked_images= to know the hole; pass the inpainting mask")
        # Encode each distinct masked prompt image once (best-of-N candidates share theirs).
        keys: dict[str, int] = {}
        index = []
        unique = []
        for p in prompts:
            key = _pixel_key(p)
            if key not in keys:
                keys[key] = len(unique)
                unique.append(p)
            index.append(keys[key])
        emb = self._encode_pil(imgs + unique, batch_size)  # one stream of N + U images through the backbone
        return self.head(emb[:n], emb[n:][torch.tensor(index)])

    def _encode_pil(self, images, batch_size):
        out = []
        for i in range(0, len(images), batch_size):
            out.append(self.encode(preprocess_images(images[i:i + batch_size], self.image_size)))
        return torch.cat(out)

    def _score_tensors(self, images, masks, masked_images, fill):
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise InvalidInputError("score(grad=True) needs images as a float tensor (B, 3, H, W) in [0, 1]")
        x = images if images.ndim == 4 else images.unsqueeze(0)
        if masked_images is None:
            if masks is None:
                raise InvalidInputError("score() needs masks= or masked_images= to know the hole; pass the inpainting mask")
            m = torch.as_tensor(masks, device=x.device)
            m = m if m.ndim == 4 else m.reshape(1, 1, *m.shape[-2:])
            hole = (m.float() >= 0.5) if m.is_floating_point() else (m >= 128) if m.dtype == torch.uint8 else m.bool()
            color = torch.tensor(fill, device=x.device, dtype=x.dtype).view(1, 3, 1, 1) / 255
            masked_images = torch.where(hole, color, x)
        mp = masked_images if masked_images.ndim == 4 else masked_images.unsqueeze(0)
        if mp.shape[0] not in (1, x.shape[0]):
            raise InvalidInputError(f"{mp.shape[0]} masked images for {x.shape[0]} images; pass one, or one per image")
        check_masked_image_size((mp.shape[-1], mp.shape[-2]), (x.shape[-1], x.shape[-2]))
        return self(preprocess_tensor(x, self.image_size), preprocess_tensor(mp, self.image_size))

    # ------------------------------------------------------------------------------------------
    def set_trust(self, trust: TrustStats | None) -> None:
        """Attach a trust matrix (fitted with :func:`fit_trust` or imported) or remove it with ``None``."""
        if trust is not None and trust.dim != self.embed_dim:
            raise InvalidInputError(f"trust matrix is {trust.dim}x{trust.dim} but the reward embedding has {self.embed_dim} dims")
        self.trust = trust

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        save_directory = Path(save_directory)
        save_model(self, str(save_directory / WEIGHTS_FILE))
        trust_path = save_directory / TRUST_FILE
        if self.trust is not None:
            self.trust.save(trust_path)
        elif trust_path.exists():
            trust_path.unlink()

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike | None = None, *, device="auto", dtype="float32",
                        offline: bool | None = None, revision: str | None = None,
                        v_inverse: str | os.PathLike | None = None) -> RewardModel:
        """Load from a folder, a hub id, or the official ``prefpaintReward.pt`` (converted once and cached).

        Args:
            model: folder saved with :meth:`save_pretrained`, hub id, or an official ``.pt`` file.
                Default: ``kd5678/prefpaintReward``.
            device: "auto" (cuda, then mps, then cpu) or a device name. dtype: "float32" (default), "auto", ...
            offline: never touch the network (default: ``HF_HUB_OFFLINE``).
            v_inverse: attach the official ``V_inverse.pt`` trust matrix (overrides a saved one).

        Raises:
            ModelNotFoundError: not local, not cached and not downloadable.
            InvalidInputError: the folder is not a reward model.
        """

        from ..devices import resolve_device, resolve_dtype
        from ..state import read_json, read_tensors, state_errors
        from .checks import check_reward_model, reward_fix
        from .trust import load_official_v_inverse

        # the device and every file first (headers, pickles, V^-1), so a bad one is named before any tensor is read
        dev = resolve_device(device)
        resolved = check_reward_model(model, offline=offline, revision=revision, v_inverse=v_inverse)
        folder = resolved.path
        cfg_path, w_path = folder / "config.json", folder / WEIGHTS_FILE
        fix = reward_fix(folder)
        config = read_json(cfg_path, what="reward model config", fix=fix)
        with state_errors(cfg_path, "reward model config", fix):
            self = cls(**config)
        state = read_tensors(w_path, what="reward weights", fix=fix, finite=True)
        with state_errors(w_path, "reward weights", fix):
            missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise InvalidInputError(
                f"reward weights '{w_path}' do not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        if (folder / TRUST_FILE).is_file():
            # checked here (complete, finite) so a bad trust file is one line, whatever TrustStats.load does with it
            read_tensors(folder / TRUST_FILE, what="trust matrix", fix=fix, finite=True)
            with state_errors(folder / TRUST_FILE, "trust matrix", fix):
                self.trust = TrustStats.load(folder / TRUST_FILE)
        if v_inverse is not None:
            self.set_trust(load_official_v_inverse(v_inverse))
        self.to(dev, resolve_dtype(dtype, dev))
        self.eval()
        self.model_id, self.revision = resolved.model_id, resolved.revision
        return self


def _as_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, torch.Tensor) and x.ndim == 4:
        return list(x.unbind(0))
    if isinstance(x, np.ndarray) and x.ndim == 4:
        return list(x)
    return [x]


def _broadcast(x, n: int, what: str) -> list:
    items = _as_list(x)
    if len(items) == 1:
        return items * n
    if len(items) != n:
        raise InvalidInputError(f"{len(items)} {what} for {n} images; pass one (shared) or one per image")
    return items


def _pixel_key(image) -> str:
    h = hashlib.blake2b(image.tobytes(), digest_size=16)
    h.update(repr(image.size).encode())
    return h.hexdigest()


def save_atomic(model: RewardModel, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """``model.save_pretrained`` into a temporary folder renamed onto ``folder``: complete or absent."""
    from ..errors import OutputExistsError
    from ..files import atomic_dir

    out = Path(folder)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder '{out}' already exists and is not empty",
                                Hint("; pass ", Arg("overwrite", True), " to replace it"))
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
    return out
