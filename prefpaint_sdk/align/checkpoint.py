"""Atomic, pickle-free training checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint folder ``checkpoints/iter_000010/`` holds

* ``trainable.safetensors``: the trained tensors (LoRA matrices or the whole UNet);
* ``old_policy.safetensors``: the rollout policy's snapshot;
* ``optimizer.safetensors`` + ``optimizer.json``: the optimizer state's tensors and the rest;
* ``rng_rank{r}.safetensors`` + ``state.json``: every process's torch RNG states (as uint8 tensors), the
  numpy/python RNG states, the iteration, the data cursor, the LR scheduler, the evaluation baseline.

It is written to a temporary folder and renamed into place, and ``checkpoints/latest.json`` is updated
last, so a crash leaves the previous checkpoint usable. Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import DataError
from ..files import atomic_write_json, replace_dir

log = logging.getLogger(__name__)

__all__ = ["save_checkpoint", "load_checkpoint", "save_tensors", "optimizer_to_flat", "optimizer_from_flat", "rng_state", "set_rng_state",
           "latest_checkpoint", "finalize_checkpoint", "prune_checkpoints", "load_tensors"]


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"checkpoint file '{path}' is missing; the checkpoint is incomplete, delete it to use the previous one")
    return load_file(str(path))


def optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (safetensors) and JSON-able rest."""
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, st in state["state"].items():
        entry = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v
                entry[k] = "__tensor__"
            else:
                entry[k] = v
        meta["state"][str(idx)] = entry
    return tensors, meta


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict:
    state = {}
    for idx, entry in meta["state"].items():
        state[int(idx)] = {k: (tensors[f"{idx}.{k}"] if v == "__tensor__" else v) for k, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states: torch (CPU, CUDA) as tensors; numpy and python as JSON."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    np_state = np.random.get_state()
    py = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)
    n = meta["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def latest_checkpoint(root: Path) -> Path | None:
    """The folder named by ``root/latest.json``, or ``None`` when there is no checkpoint."""
    pointer = root / "latest.json"
    if not pointer.is_file():
        return None
    name = json.loads(pointer.read_text())["checkpoint"]
    path = root / name
    if not path.is_dir():
        raise DataError(f"'{pointer}' names '{name}', which is missing; delete latest.json to start over")
    return path


def finalize_checkpoint(tmp: Path, dest: Path, root: Path) -> Path:
    """Rename the finished temporary folder into place, then point ``latest.json`` at it."""
    replace_dir(tmp, dest)
    atomic_write_json(root / "latest.json", {"checkpoint": dest.name})
    return dest


def prune_checkpoints(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (the one ``latest.json`` names is always kept)."""
    latest = latest_checkpoint(root)
    ckpts = sorted(p for p in root.glob("iter_*") if p.is_dir())
    for p in ckpts[:-keep] if keep > 0 else []:
        if latest is None or p.resolve() != latest.resolve():
            shutil.rmtree(p, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
def save_checkpoint(self) -> Path:  # noqa: ANN001 - self is the Aligner
    """Write an atomic checkpoint of an :class:`Aligner` at its current iteration (all processes call it)."""
    acc, root = self.accelerator, self.checkpoint_root
    name = f"iter_{self.iteration:06d}"
    tmp = root / f".{name}.tmp"  # same name on every process; renamed into place when complete
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_tensors(self.params, tmp / "trainable.safetensors")
        save_tensors(self.old.tensors, tmp / "old_policy.safetensors")
        opt_t, opt_meta = optimizer_to_flat(self.optimizer.state_dict())
        save_tensors(opt_t, tmp / "optimizer.safetensors")
        atomic_write_json(tmp / "optimizer.json", opt_meta)
        sched = {k: v for k, v in self.lr_scheduler.state_dict().items() if k != "lr_lambdas"}
        atomic_write_json(tmp / "state.json", {
            "iteration": self.iteration, "lr_scheduler": sched, "baseline": self.baseline,
            "num_processes": acc.num_processes, "model": self.model_id, "config": self.config.to_dict(),
        })
    acc.wait_for_everyone()
    rng_t, rng_meta = rng_state()
    save_tensors(rng_t, tmp / f"rng_rank{acc.process_index}.safetensors")
    atomic_write_json(tmp / f"rng_rank{acc.process_index}.json", rng_meta)
    acc.wait_for_everyone()
    dest = root / name
    if acc.is_main_process:
        finalize_checkpoint(tmp, dest, root)
        prune_checkpoints(root, self.config.keep_checkpoints)
        log.info("checkpoint saved: %s", dest)
    acc.wait_for_everyone()
    return dest

def load_checkpoint(self, path: str | os.PathLike | None = None) -> bool:
    """Restore the latest (or given) checkpoint: weights, old policy, optimizer, scheduler, RNG, position.

    Returns ``False`` when there is nothing to resume from.

    Raises:
        DataError: an incomplete checkpoint, or one saved with another number of processes.
    """
    acc = self.accelerator
    path = Path(path) if path else latest_checkpoint(self.checkpoint_root)
    if path is None:
        log.warning("no checkpoint in '%s'; starting from the beginning", self.checkpoint_root)
        return False
    state = json.loads((path / "state.json").read_text())
    if state["num_processes"] != acc.num_processes:
        raise DataError(f"checkpoint '{path}' was saved with {state['num_processes']} processes but this run has "
                        f"{acc.num_processes}; resume with the same number of processes")
    trained = load_tensors(path / "trainable.safetensors")
    old = load_tensors(path / "old_policy.safetensors")
    missing = sorted(set(self.params) ^ set(trained))
    if missing:
        raise DataError(f"checkpoint '{path}' does not match this model/finetune setting (e.g. {missing[:3]}); "
                        "resume with the settings it was saved with")
    with torch.no_grad():
        for n, p in self.params.items():
            p.copy_(trained[n].to(p.device, p.dtype))
            self.old.tensors[n].copy_(old[n].to(p.device, p.dtype))
    opt_meta = json.loads((path / "optimizer.json").read_text())
    opt_state = optimizer_from_flat(load_tensors(path / "optimizer.safetensors"), opt_meta)
    self.optimizer.load_state_dict(opt_state)
    sched_state = self.lr_scheduler.state_dict()
    sched_state.update(state["lr_scheduler"])
    self.lr_scheduler.load_state_dict(sched_state)
    r = acc.process_index
    set_rng_state(load_tensors(path / f"rng_rank{r}.safetensors"),
                  json.loads((path / f"rng_rank{r}.json").read_text()))
    self.iteration = int(state["iteration"])
    self.baseline = state.get("baseline")
    log.info("resumed from %s (iteration %d)", path, self.iteration)
    return True
