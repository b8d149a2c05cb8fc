"""Sharded full fine-tuning (``fsdp=true``): torch's FSDP2 (``fully_shard``) instead of DDP.

Each process holds 1/N of the trained model's parameters, gradients and AdamW state; a block's full weights
exist only while it runs. The same ``fully_shard`` path serves CPU (gloo) and accelerators: accelerate 1.16
applies its FSDP plugin only on accelerators (on CPU processes it silently wraps DDP), so going through torch
directly is the one path that can be tested on a CPU machine and behaves the same on a GPU.

Sharded parameters are DTensors. What needs whole tensors (checkpoints, the merged export) gathers them here,
collectively: every process must call these functions in the same order.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["clip_grad_norm", "full_tensors", "is_sharded", "local_like", "shard_model", "unsharded_copy"]


def is_sharded(tensor: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch built without distributed support shards nothing
        return False
    return isinstance(tensor, DTensor)


def shard_model(model: torch.nn.Module) -> torch.nn.Module:
    """``fully_shard`` each block of the UNet/transformer (``*blocks`` lists and ``mid_block``), then the root
    (what is left: embeddings, norms, in/out convolutions), over all processes. In place; returns ``model``."""
    from torch.distributed.fsdp import fully_shard

    for name, child in model.named_children():
        if isinstance(child, torch.nn.ModuleList) and name.endswith("blocks"):
            for block in child:
                fully_shard(block)
        elif name == "mid_block" and child is not None:
            fully_shard(child)
    fully_shard(model)
    return model


def full_tensors(tensors: dict[str, Any]) -> dict[str, Any]:
    """``tensors`` with every DTensor gathered into a whole tensor (collective); other values as they are."""
    return {k: (v.full_tensor() if is_sharded(v) else v) for k, v in tensors.items()}


def local_like(full: torch.Tensor, like) -> torch.Tensor:
    """This process's shard of the whole tensor ``full``, placed as ``like`` (a DTensor); no communication,
    since every process holds ``full``."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements, src_data_rank=None)


def optimizer_full_state(optimizer) -> dict:
    """``optimizer.state_dict()`` with the sharded moments gathered (collective)."""
    state = optimizer.state_dict()
    state["state"] = {idx: full_tensors(st) for idx, st in state["state"].items()}
    return state


def optimizer_local_state(optimizer, state: dict) -> dict:
    """A whole-tensor optimizer state (as :func:`optimizer_full_state` gives) with every moment of a sharded
    parameter turned into this process's shard, ready for ``optimizer.load_state_dict``."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for idx, st in state["state"].items():
        p = params[int(idx)] if int(idx) < len(params) else None
        out[idx] = {k: (local_like(v, p) if (p is not None and is_sharded(p) and torch.is_tensor(v)
                                             and tuple(v.shape) == tuple(p.shape) and v.ndim) else v)
                    for k, v in st.items()}
    return {**state, "state": out}


def clip_grad_norm(params, max_norm: float) -> float:
    """Clip the sharded gradients to ``max_norm`` over the whole model; returns the whole model's norm."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm)
    return float(norm.full_tensor() if is_sharded(norm) else norm)


def unsharded_copy(model: torch.nn.Module, main: bool) -> torch.nn.Module | None:
    """A whole, unsharded CPU copy of the sharded ``model`` on the main process (``None`` elsewhere).

    Every process gathers the weights (collective); the copy is built without initialising weights
    (accelerate's ``init_empty_weights``) and takes the gathered tensors, so the main process holds one
    whole model, not two.
    """
    from accelerate import init_empty_weights
    from torch.distributed.fsdp import FSDPModule

    state = {k: v.detach().cpu() for k, v in full_tensors(model.state_dict()).items()}
    if not main:
        return None
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # fully_shard subclasses it
    with init_empty_weights():
        fresh = cls.from_config(model.config)
    fresh.load_state_dict(state, assign=True, strict=True)
    return fresh.eval()
