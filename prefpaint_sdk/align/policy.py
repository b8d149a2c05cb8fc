"""The trained policy: LoRA (peft) or full-UNet parameters, the old-policy snapshot, and exports.

The old (rollout) policy is kept as a copy of the trainable tensors only (the LoRA matrices, or the
whole UNet for full fine-tuning). Sampling from it swaps those tensors into the live UNet and back,
which moves no memory and needs no second UNet. Sharded parameters (``fsdp``, DTensors) keep their storage,
which FSDP all-gathers from: their values are copied in and back instead (one shard's worth of memory).
"""

from __future__ import annotations

import copy
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..files import atomic_dir
from .seeding import derive_seed

_LORA_STREAM = 131  # derive_seed stream of the LoRA initialisation (unused by any other stream)

__all__ = ["LORA_WEIGHT_NAME", "BaseWeights", "OldPolicy", "Policy", "prepare_weights", "add_lora", "export_lora", "export_merged", "lora_merged_state", "trainable_parameters"]

log = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass
class Policy:
    """What an algorithm trains: the (accelerate-prepared) ``model`` and its unwrapped ``raw`` module, the
    trainable ``params``, the optimizer and LR scheduler, and the frozen ``ref`` model of full fine-tuning
    (``None`` for LoRA, whose reference is the model with its adapters disabled)."""

    model: Any
    raw: Any
    params: dict[str, torch.nn.Parameter]
    optimizer: Any
    lr_scheduler: Any
    ref: Any = None


@dataclass
class BaseWeights:
    """What the merged export needs of the base model: the frozen components' names, every component's base
    dtype, and a CPU copy of the base weights of each component that training casts (none without a cast)."""

    frozen: list[str]
    trained: str
    dtypes: dict[str, Any]
    states: dict[str, dict[str, torch.Tensor]]

    def export_merged(self, engine, model, folder, record: dict[str, Any] | None = None) -> Path:
        """:func:`export_merged` with the frozen components and the trained one in the base model's dtype and
        values (LoRA deltas added to the uncast base weights)."""
        frozen = {}
        for name in self.frozen:
            if name in self.states:
                module = copy.deepcopy(getattr(engine.pipeline, name)).to("cpu", self.dtypes[name])
                module.load_state_dict(self.states[name])
                frozen[name] = module
        return export_merged(engine, model, folder, dtype=self.dtypes[self.trained], frozen=frozen,
                             base_state=self.states.get(self.trained), record=record)


def prepare_weights(engine, cfg, device) -> BaseWeights:
    """Freeze and cast the frozen components (half under mixed precision) and make the family's trainable
    module train (LoRA adapters on it, or all of it in fp32), on ``device``; returns the base weights the
    merged export needs."""
    pipeline = engine.pipeline
    wdtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
    # The merged export keeps the base model's dtype for what was not trained: remember the base weights
    # of every component that the cast below would round (a CPU copy; nothing when no cast happens).
    frozen = engine.frozen_parts()
    tm = engine.trainable_module  # "unet" or "transformer"
    dtypes = {n: getattr(pipeline, n).dtype for n in (*frozen, tm)}
    cast = frozen + ([tm] if cfg.finetune == "lora" else [])
    states = {n: {k: v.detach().to("cpu", copy=True) for k, v in getattr(pipeline, n).state_dict().items()}
              for n in cast if dtypes[n] != wdtype}
    for name in frozen:  # eval: no dropout in frozen encoders (a T5 built from a config trains)
        getattr(pipeline, name).requires_grad_(False).eval().to(device, dtype=wdtype)
    model = engine.model
    if cfg.finetune == "lora":
        model.to(device, dtype=wdtype)
        add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets or engine.lora_modules(model),
                 seed=derive_seed(cfg.seed, _LORA_STREAM))
    else:
        model.requires_grad_(True).to(device, dtype=torch.float32)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return BaseWeights(frozen=frozen, trained=tm, dtypes=dtypes, states=states)


def add_lora(unet, rank: int, alpha: float, targets, seed: int | None = None) -> None:
    """Add a LoRA adapter (peft, Gaussian init of A, zero B, so the model starts unchanged) and freeze the rest.

    ``seed``: A's initial values are drawn from it, leaving torch's global generator as it was, so a run's
    start depends on its own seed only (not on what the process drew before); ``None`` draws from the global one.
    """
    from peft import LoraConfig

    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(targets))
    if seed is None:
        unet.add_adapter(config)
    else:
        with torch.random.fork_rng():  # CPU and every CUDA device: peft may draw on either
            torch.manual_seed(seed)
            unet.add_adapter(config)
    for n, p in unet.named_parameters():
        if "lora_" in n:
            p.requires_grad_(True)
            p.data = p.data.float()  # adapters train in fp32 even when the base weights are half


def trainable_parameters(unet) -> dict[str, torch.nn.Parameter]:
    """Name -> parameter of everything that trains (LoRA matrices, or the whole UNet)."""
    return {n: p for n, p in unet.named_parameters() if p.requires_grad}


class OldPolicy:
    """A frozen snapshot of the trainable tensors; :meth:`active` swaps it into the UNet for sampling."""

    def __init__(self, params: dict[str, torch.nn.Parameter], reshard=None):
        self.params = params
        self.tensors = {n: p.detach().clone() for n, p in params.items()}
        # Sharded: FSDP2 keeps the root's own parameters gathered after a no-grad forward, so values copied into
        # the shards reach the next forward only after this (the model's ``reshard``).
        self.reshard = reshard

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the current trained weights into the snapshot (the paper re-syncs every M iterations)."""
        for n, p in self.params.items():
            self.tensors[n].copy_(p.detach())

    @contextmanager
    def active(self):
        """Inside the block the UNet computes with the old policy's weights (swap by reference, no copy)."""
        from .fsdp import is_sharded

        saved, copied = {}, {}
        try:
            with torch.no_grad():
                for n, p in self.params.items():
                    if is_sharded(p):
                        copied[n] = p.detach().clone()
                        p.copy_(self.tensors[n])
                    else:
                        saved[n] = p.data
                        p.data = self.tensors[n]
            if copied and self.reshard is not None:
                self.reshard()
            yield
        finally:
            with torch.no_grad():
                for n, p in self.params.items():
                    if n in saved:
                        p.data = saved[n]
                    elif n in copied:
                        p.copy_(copied[n])
            if copied and self.reshard is not None:
                self.reshard()


def _lora_state(unet, module_name: str = "unet") -> dict[str, torch.Tensor]:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet)
    # As diffusers' own LoRA training scripts save: a UNet's keys in the diffusers naming, a transformer's in
    # peft's (lora_A/lora_B). The diffusers naming renames only to_q/k/v/out.0 (lora.down/up), which some
    # loaders do not map back: a pipeline's loader then silently dropped those adapters (seen on a blend family).
    return convert_state_dict_to_diffusers(state) if module_name == "unet" else state


def export_lora(unet, folder: str | os.PathLike, pipeline_cls, module_name: str = "unet") -> Path:
    """Save the model's LoRA adapter where diffusers' ``pipe.load_lora_weights(folder)`` reads it
    (``module_name``: the engine's ``trainable_module``; the pipeline saves ``<module_name>_lora_layers``).

    Raises:
        ConfigError: the UNet has no LoRA adapter (full fine-tuning: export the merged pipeline instead).
    """
    if not getattr(unet, "peft_config", None):
        raise ConfigError("this model was fine-tuned without LoRA (finetune='full'); export the merged pipeline instead")
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        state = {k: v.detach().float().cpu().contiguous() for k, v in _lora_state(unet, module_name).items()}
        layers = {f"{module_name}_lora_layers": state}
        pipeline_cls.save_lora_weights(tmp, **layers, safe_serialization=True, weight_name=LORA_WEIGHT_NAME)
    return folder


def lora_merged_state(unet, base_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The UNet's state with every LoRA delta added to ``base_state`` (the base weights before any cast), in fp32.

    Fusing the adapter into base weights that were cast to half precision for training would export
    rounded base weights; adding the fp32 deltas to the untouched base keeps every weight LoRA did not
    change bit-identical.
    """
    from peft.tuners.lora import LoraLayer

    out = {k: v.float() for k, v in base_state.items()}
    for name, module in unet.named_modules():
        if not isinstance(module, LoraLayer) or not hasattr(module, "get_delta_weight"):
            continue
        key = f"{name.removesuffix('.base_layer')}.weight"
        if key not in out:
            raise ConfigError(f"LoRA layer '{name}' has no base weight '{key}' in the base model; cannot merge")
        with torch.no_grad():
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    delta = module.get_delta_weight(adapter).detach().to("cpu", torch.float32)
                    out[key] = out[key] + delta.reshape(out[key].shape)
    return out


def export_merged(engine, model, folder: str | os.PathLike, dtype=torch.float32, *,
                  frozen: dict[str, Any] | None = None, base_state: dict[str, torch.Tensor] | None = None,
                  record: dict[str, Any] | None = None) -> Path:
    """Save a full diffusers pipeline of ``engine``'s family with the trained ``model`` (LoRA fused in),
    loadable by ``Inpainter.from_pretrained``; the family rebuilds it (:meth:`Engine.rebuild_pipeline`).

    Args:
        dtype: the exported model's dtype (the base model's).
        frozen: frozen components to save instead of the pipeline's, by name: pass the base model's untouched
            modules when the pipeline's were cast to half precision for training, so the export does not hold
            rounded copies.
        base_state: for LoRA, the model's base weights before any cast; the LoRA deltas are added to them
            (see :func:`lora_merged_state`) instead of being fused into cast weights.
        record: the sampler it was aligned with (:mod:`prefpaint_sdk.engines.sampler_record`), saved beside
            ``model_index.json`` so ``scheduler="auto"`` samples the export with it.
    """
    merged = copy.deepcopy(model).to("cpu")
    if getattr(merged, "peft_config", None):
        if base_state is not None:
            state = lora_merged_state(merged, base_state)
            merged.unload_lora()
            merged = merged.to(dtype)
            missing, unexpected = merged.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
            if missing or unexpected:
                raise ConfigError(f"merging LoRA into the base model: missing {missing[:3]}, unexpected {unexpected[:3]}")
        else:
            merged = merged.float()
            merged.fuse_lora()
            merged.unload_lora()
    out = engine.rebuild_pipeline(merged.to(dtype), **(frozen or {}))
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        out.save_pretrained(tmp, safe_serialization=True)
        if record is not None:
            from ..engines.sampler_record import write_sampler_record

            write_sampler_record(tmp, record)
    return folder
