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

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import Arg, ConfigError, DataError, Hint
from ..files import atomic_write_json, replace_dir
from ..state import check_tensor_file, read_json, read_tensors, remove_run_files, state_errors, write_json_state

log = logging.getLogger(__name__)

__all__ = [
    "open_run",
    "check_resume_algo",
    "check_run_folder",
    "finalize_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "load_tensors",
    "optimizer_from_flat",
    "optimizer_to_flat",
    "prune_checkpoints",
    "recorded_algo",
    "rng_state",
    "save_checkpoint",
    "save_tensors",
    "set_rng_state",
]


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def _fix(path: Path) -> tuple:
    """What a user can do about a bad file in checkpoint folder ``path.parent`` (message parts)."""
    return (f"delete the checkpoint folder '{path.parent}' (and checkpoints/latest.json if it names it) to resume "
            "from an earlier one, or start over in a new output folder", Hint("; or start over in place with ", Arg("overwrite", True)))


def load_tensors(path: Path, keys=None) -> dict[str, torch.Tensor]:
    """A checkpoint's safetensors file; a missing, truncated or foreign file is one ``CorruptFileError`` line."""
    return read_tensors(path, what="checkpoint file", fix=_fix(path), keys=keys)


def _read_state(path: Path, keys=None) -> dict[str, Any]:
    return read_json(path, what="checkpoint file", fix=_fix(path), keys=keys)


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


def _parse_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]):
    """Check and convert saved RNG states (raises ``KeyError``/``ValueError``/``TypeError`` when malformed)."""
    cpu = tensors["torch_cpu"]
    if cpu.dtype != torch.uint8 or cpu.ndim != 1:
        raise ValueError(f"torch_cpu must be a 1-D uint8 tensor, got {cpu.dtype} {tuple(cpu.shape)}")
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    n = meta["numpy"]
    if len(n) != 5:
        raise ValueError(f"numpy state has {len(n)} fields, not 5")
    np_state = (str(n[0]), np.asarray(n[1], dtype=np.uint32), int(n[2]), int(n[3]), float(n[4]))
    if np_state[1].shape != (624,):
        raise ValueError(f"numpy state holds {np_state[1].size} words, not 624")
    p = meta["python"]
    if len(p) != 3:
        raise ValueError(f"python state has {len(p)} fields, not 3")
    py_state = (int(p[0]), tuple(int(v) for v in p[1]), p[2])
    return cpu, cuda, np_state, py_state


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s output (raises ``KeyError``/``ValueError``/... on malformed input)."""
    cpu, cuda, np_state, py_state = _parse_rng(tensors, meta)
    rs = np.random.RandomState()
    rs.set_state(np_state)  # validated on a scratch generator first: the global one changes only when all are good
    random.Random().setstate(py_state)
    torch.set_rng_state(cpu)
    if torch.cuda.is_available() and cuda:
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(np_state)
    random.setstate(py_state)


def latest_checkpoint(root: Path) -> Path | None:
    """The folder named by ``root/latest.json``, or ``None`` when there is no checkpoint."""
    pointer = root / "latest.json"
    if not pointer.is_file():
        return None
    fix = (f"delete '{pointer}' to resume from scratch, or write the name of a complete checkpoint folder into it "
           'as {"checkpoint": "iter_000010"}')
    name = read_json(pointer, what="checkpoint pointer", fix=fix, keys={"checkpoint": str})["checkpoint"]
    path = root / name
    if not name or Path(name).name != name or not path.is_dir():
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


_STATE_KEYS = {"iteration": int, "num_processes": int, "lr_scheduler": dict, "baseline": (list, type(None))}

# What an alignment run writes into its output folder (the rest of the folder is the user's).
RUN_FILES = ("checkpoints", "log.jsonl", "align_config.json", "eval", "logs", "lora", "merged")


def check_run_folder(output_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> list[str]:
    """Refuse an output folder that already holds an alignment run, unless resuming or overwriting.

    Cheap and model-free: call it before loading anything (``Aligner.train`` calls it too). Returns the
    names of the earlier run's files and folders found (``overwrite`` removes exactly these).

    Raises:
        OutputExistsError: the folder holds a run and neither ``resume`` nor ``overwrite`` is given.
        InvalidInputError: ``output_dir`` is a file, or both ``resume`` and ``overwrite`` are given.
    """
    from ..state import find_run

    out = Path(output_dir)
    found = find_run(out, RUN_FILES, "alignment run", resume=resume, overwrite=overwrite)
    if resume:
        check_checkpoint(out / "checkpoints")
    return found


def check_checkpoint(root: str | os.PathLike, path: str | os.PathLike | None = None) -> Path | None:
    """Check the latest (or given) checkpoint's files without a model: JSON keys, safetensors headers.

    Cheap (no tensor is read), so a damaged checkpoint is reported before any model loads. Returns the
    checkpoint folder, or ``None`` when there is none.

    Raises:
        CorruptFileError: a missing, empty, truncated or wrong-type file, naming it and the fix.
    """
    path = Path(path) if path else latest_checkpoint(Path(root))
    if path is None:
        return None
    if not path.is_dir():
        raise DataError(f"checkpoint '{path}' is not a folder; pass a checkpoint folder such as checkpoints/iter_000010")
    state = _read_state(path / "state.json", keys=_STATE_KEYS)
    _read_state(path / "optimizer.json", keys={"state": dict, "param_groups": list})
    for name in ("trainable", "old_policy", "optimizer"):
        check_tensor_file(path / f"{name}.safetensors", what="checkpoint file", fix=_fix(path / f"{name}.safetensors"))
    for r in range(max(1, state["num_processes"])):
        _read_state(path / f"rng_rank{r}.json", keys={"numpy": list, "python": list})
        check_tensor_file(path / f"rng_rank{r}.safetensors", what="checkpoint file", fix=_fix(path / "x"),
                          keys=["torch_cpu"])
    return path


RECORD = "align_config.json"


def recorded_algo(output_dir: str | os.PathLike, default_algo: str) -> str | None:
    """The algorithm a run folder's record (``align_config.json``) names, or ``None`` without a record.

    Records written before the algorithm seam may say ``"algo": ""`` (the family's default: ``default_algo``)
    and carry ``adv_mode``: ``"group"`` there was GRPO.

    Raises:
        CorruptFileError: a damaged record.
    """
    path = Path(output_dir) / RECORD
    if not path.exists():
        return None
    rec = read_json(path, what="run record", fix=("delete it", Hint(", or start a new run with ", Arg("overwrite", True))))
    algo = rec.get("algo") or ""
    if not isinstance(algo, str):
        algo = ""
    return algo or ("grpo" if rec.get("adv_mode") == "group" else default_algo)


def check_resume_algo(output_dir: str | os.PathLike, algo: str, default_algo: str) -> None:
    """Refuse to resume a run recorded under another algorithm than ``algo`` (model-free).

    Raises:
        ConfigError: the record names another algorithm. CorruptFileError: a damaged record.
    """
    recorded = recorded_algo(output_dir, default_algo)
    if recorded is not None and recorded != algo:
        raise ConfigError(f"the run in '{output_dir}' was trained with algo='{recorded}' but algo='{algo}' was asked "
                          "for; resume with ", Arg("algo", recorded), ", or start a new run in another output folder")


# ------------------------------------------------------------------------------------------------
def save_checkpoint(root: Path, accelerator, params: dict, old_tensors: dict, optimizer, lr_scheduler,
                    state: dict[str, Any], keep: int) -> Path:
    """Write an atomic checkpoint ``root/iter_NNNNNN`` (all processes call it).

    Args:
        params / old_tensors: the trained tensors and the old policy's snapshot, by name.
        state: JSON-able run state; needs ``iteration`` and ``baseline`` (the trainer adds the model, config
            and the grad-spike guard's history).
        keep: checkpoints kept (older ones are deleted).
    """
    from .fsdp import full_tensors, optimizer_full_state

    acc = accelerator
    name = f"iter_{int(state['iteration']):06d}"
    tmp = root / f".{name}.tmp"  # same name on every process; renamed into place when complete
    # Sharded (fsdp) tensors are gathered whole by every process together, so the files are the unsharded run's.
    params, old_tensors = full_tensors(params), full_tensors(old_tensors)
    opt_state = optimizer_full_state(optimizer)
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_tensors(params, tmp / "trainable.safetensors")
        save_tensors(old_tensors, tmp / "old_policy.safetensors")
        opt_t, opt_meta = optimizer_to_flat(opt_state)
        save_tensors(opt_t, tmp / "optimizer.safetensors")
        write_json_state(tmp / "optimizer.json", opt_meta)
        sched = {k: v for k, v in lr_scheduler.state_dict().items() if k != "lr_lambdas"}
        write_json_state(tmp / "state.json", {**state, "lr_scheduler": sched, "num_processes": acc.num_processes})
    acc.wait_for_everyone()
    rng_t, rng_meta = rng_state()
    save_tensors(rng_t, tmp / f"rng_rank{acc.process_index}.safetensors")
    write_json_state(tmp / f"rng_rank{acc.process_index}.json", rng_meta)
    acc.wait_for_everyone()
    dest = root / name
    if acc.is_main_process:
        finalize_checkpoint(tmp, dest, root)
        prune_checkpoints(root, keep)
        log.info("checkpoint saved: %s", dest)
    acc.wait_for_everyone()
    return dest


def load_checkpoint(root: Path, accelerator, params: dict, old_tensors: dict, optimizer, lr_scheduler,
                    path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """Restore the latest (or given) checkpoint into the tensors, optimizer, LR scheduler and RNGs.

    Returns the run state (``iteration``, ``baseline`` with NaN restored, ``grad_guard`` or ``None``), or
    ``None`` when there is nothing to resume from. Every file is read and checked before anything changes.

    Raises:
        DataError: an incomplete checkpoint, or one saved with another number of processes.
    """
    acc = accelerator
    path = Path(path) if path else latest_checkpoint(root)
    if path is None:
        log.warning("no checkpoint in '%s'; starting from the beginning", root)
        return None
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"checkpoint '{path}' is not a folder; pass a checkpoint folder such as checkpoints/iter_000010")
    state = _read_state(path / "state.json", keys=_STATE_KEYS)
    if state["num_processes"] != acc.num_processes:
        raise DataError(f"checkpoint '{path}' was saved with {state['num_processes']} processes but this run has "
                        f"{acc.num_processes}; resume with the same number of processes")
    # Read and check every file before anything is changed, so a bad checkpoint leaves the run untouched.
    trained = load_tensors(path / "trainable.safetensors")
    missing = sorted(set(params) ^ set(trained))
    if missing:
        raise DataError(f"checkpoint '{path}' does not match this model/finetune setting (e.g. {missing[:3]}); "
                        "resume with the settings it was saved with")
    old = load_tensors(path / "old_policy.safetensors", keys=params)
    for n, p in params.items():
        for f, t in (("trainable", trained[n]), ("old_policy", old[n])):
            if tuple(t.shape) != tuple(p.shape):
                raise DataError(f"checkpoint '{path}' ({f}.safetensors) holds '{n}' with shape {tuple(t.shape)} but this model "
                                f"has {tuple(p.shape)}; resume with the settings it was saved with")
    opt_path = path / "optimizer.json"
    opt_meta = _read_state(opt_path, keys={"state": dict, "param_groups": list})
    opt_tensors = load_tensors(path / "optimizer.safetensors")
    with state_errors(opt_path, "checkpoint file", _fix(opt_path)):
        opt_state = optimizer_from_flat(opt_tensors, opt_meta)
    r = acc.process_index
    rng_path = path / f"rng_rank{r}.json"
    rng_t = load_tensors(path / f"rng_rank{r}.safetensors", keys=["torch_cpu"])
    rng_meta = _read_state(rng_path, keys={"numpy": list, "python": list})
    with state_errors(rng_path, "checkpoint file", _fix(rng_path)):
        _parse_rng(rng_t, rng_meta)
    from .fsdp import is_sharded, local_like, optimizer_local_state

    with torch.no_grad():
        for n, p in params.items():
            if is_sharded(p):  # this process's shard of the whole tensors
                p.copy_(local_like(trained[n], p))
                old_tensors[n].copy_(local_like(old[n], old_tensors[n]))
                continue
            p.copy_(trained[n].to(p.device, p.dtype))
            old_tensors[n].copy_(old[n].to(p.device, p.dtype))
    with state_errors(opt_path, "checkpoint file", _fix(opt_path)):
        optimizer.load_state_dict(optimizer_local_state(optimizer, opt_state))
    sched_path = path / "state.json"
    with state_errors(sched_path, "checkpoint file", _fix(sched_path)):
        sched_state = lr_scheduler.state_dict()
        sched_state.update(state["lr_scheduler"])
        lr_scheduler.load_state_dict(sched_state)
    with state_errors(rng_path, "checkpoint file", _fix(rng_path)):
        set_rng_state(rng_t, rng_meta)
    base = state.get("baseline")  # NaN rewards are stored as null (strict JSON)
    guard = state.get("grad_guard")
    log.info("resumed from %s (iteration %d)", path, int(state["iteration"]))
    return {"iteration": int(state["iteration"]), "path": path,
            "baseline": None if base is None else [float("nan") if v is None else float(v) for v in base],
            "grad_guard": guard if isinstance(guard, dict) else None,
            "algorithm": state.get("algorithm") if isinstance(state.get("algorithm"), dict) else {}}


def open_run(aligner, *, resume: bool, overwrite: bool) -> None:
    """The start of a run, on every process: the output folder checked (a used one needs ``resume`` or
    ``overwrite``), an overwritten run's files removed, a resumed run's algorithm checked and its checkpoint
    loaded, the algorithm set up, the run record (``align_config.json``) written and the trackers started."""
    cfg, acc, out = aligner.config, aligner.accelerator, aligner.output_dir
    found = check_run_folder(out, resume=resume, overwrite=overwrite)
    # Every process has looked before anything is removed or written: otherwise a slower rank would find
    # the main process's align_config.json and refuse the folder as a used one.
    acc.wait_for_everyone()
    if found and overwrite:
        if acc.is_main_process:
            remove_run_files(out, found)
        acc.wait_for_everyone()
    if resume:
        check_resume_algo(out, aligner.algo, aligner.engine.default_algo)
        aligner.load_checkpoint()
    aligner._started = True  # from here on the run's files are this run's own
    aligner.algorithm.setup(aligner)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        stack = aligner.train_reward.record()
        atomic_write_json(out / "align_config.json", {"model": aligner.model_id, **cfg.to_dict(),
                                                      "batch": aligner.batch_summary(),
                                                      **({"reward": stack} if stack else {})})
    if cfg.log_with != "none":
        flat = {**cfg.to_dict(), **cfg.algo_settings}  # the algorithm's settings by name, as the user sets them
        acc.init_trackers("align", config={k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))})
