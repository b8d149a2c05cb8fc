"""Train a PrefPaint reward model on rated inpaintings, on ``accelerate`` (multi-GPU/multi-node, mixed precision).

Recipe (paper defaults, :mod:`.config`): regression (MSE) on standardised scores, or the pairwise
Bradley–Terry loss; the first 70% of the CLIP layers frozen; AdamW, lr 1e-5, cosine schedule; batch 5.

* Data is split by prompt image (:func:`~.data.split_by_group`); a prompt's inpaintings never straddle sets.
* Every epoch ends with validation metrics (pairwise accuracy within each prompt's group, MSE, Spearman),
  logged to tensorboard through accelerate's trackers, and an atomic checkpoint
  ``checkpoints/epoch-NNNN/`` (model + optimizer in safetensors, the rest in JSON; written to a temporary
  folder and renamed). ``resume=True`` continues from the newest one and ends bit-identical to an
  uninterrupted run: the data order and dropout are seeded per epoch.
* At the end the trust matrix is fitted on the training embeddings, and ``model/`` is saved with it.
  ``metrics.json`` holds the per-epoch history and the test metrics.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Arg, ConfigError, DataError, Hint, ModelNotFoundError
from ..files import atomic_dir, atomic_write_json
from ..imaging import fit_mask_to_image, load_image, load_mask, masked_image
from ..state import (
    json_safe,
    read_json,
    read_tensors,
    remove_run_files,
    remove_unstarted_run,
    state_errors,
    write_json_state,
)
from ..validation import validated_by
from .config import RewardTrainConfig, reward_batch_summary, validate_training
from .data import RewardData, read_reward_data, split_by_group
from .model import RewardModel, save_atomic
from .preprocess import preprocess_image
from .trust import TrustAccumulator

__all__ = ["TrainResult", "check_reward_run_folder", "predict", "reward_metrics", "train_reward"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)
_RESUME_KEYS = ("loss", "epochs", "batch_size", "gradient_accumulation_steps", "lr", "weight_decay", "warmup_steps",
                "freeze_fraction", "init_backbone", "init_reward", "vision_config", "head", "normalize_labels",
                "split", "seed")


@dataclass
class TrainResult:
    """Where the trained model is and how well it does."""

    model_dir: Path | None  # None when the run stopped early (stop_after_epochs)
    epochs_done: int
    history: list[dict]
    test: dict | None


# ------------------------------------------------------------------------------------------------
class _Images(torch.utils.data.Dataset):
    """(pixel_values, masked_pixel_values, target, index) per sample, CLIP-preprocessed."""

    def __init__(self, data: RewardData, targets: np.ndarray, size: int, fill):
        self.samples, self.targets, self.size, self.fill = data.samples, targets, size, tuple(fill)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        try:
            img = load_image(s.image)
            if s.masked is not None:
                prompt = load_image(s.masked)
            else:
                prompt = masked_image(img, fit_mask_to_image(load_mask(s.mask), img.size, resize=True), self.fill)
        except Exception as exc:
            raise DataError(f"cannot read sample {s.image}: {exc}") from exc
        return (preprocess_image(img, self.size), preprocess_image(prompt, self.size),
                np.float32(self.targets[i]), i)


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, images: _Images, pairs):
        self.images, self.pairs = images, pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, k):
        b, w = self.pairs[k]
        return self.images[b], self.images[w]


# ------------------------------------------------------------------------------------------------
def _label_stats(train: RewardData) -> dict[str, list[float]]:
    by: dict[str, list[float]] = {}
    for s in train.samples:
        by.setdefault(s.mask_type, []).append(s.score)
    return {k: [float(np.mean(v)), float(np.std(v)) or 1.0] for k, v in by.items()}


def _targets(data: RewardData, stats: dict | None) -> np.ndarray:
    if not data.has_scores:
        return np.zeros(len(data.samples), np.float32)
    if stats is None:
        return np.array([s.score for s in data.samples], np.float32)
    overall = [float(np.mean([m for m, _ in stats.values()])), float(np.mean([d for _, d in stats.values()]))]
    return np.array([(s.score - stats.get(s.mask_type, overall)[0]) / stats.get(s.mask_type, overall)[1]
                     for s in data.samples], np.float32)


@torch.inference_mode()
def predict(model: RewardModel, dataset, batch_size: int, num_workers: int = 0, *, trust: TrustAccumulator | None = None):
    """Scores (N,) of every sample of ``dataset``; feeds each embedding to ``trust`` when given."""
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = []
    for px, pm, _, _ in loader:
        s, z = model(px.to(model.device), pm.to(model.device))
        out.append(s.float().cpu())
        if trust is not None:
            trust.update(z.float())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def reward_metrics(pred: np.ndarray, data: RewardData, targets: np.ndarray | None = None) -> dict[str, float]:
    """Pairwise accuracy within prompt groups (ties count half), and MSE + Spearman when scores are known."""
    from scipy.stats import spearmanr

    pairs = data.group_pairs()
    m: dict[str, float] = {"pairs": float(len(pairs))}
    if pairs:
        b, w = np.array(pairs).T
        m["pairwise_accuracy"] = float(np.mean((pred[b] > pred[w]) + 0.5 * (pred[b] == pred[w])))
    if targets is not None and data.has_scores and len(pred) > 1:
        m["mse"] = float(np.mean((pred - targets) ** 2))
        with warnings.catch_warnings(record=True) as caught:  # constant predictions: scipy warns, we report 0
            warnings.simplefilter("always")
            rho = spearmanr(pred, targets).statistic
        for w in caught:
            log.debug("spearman: %s: %s", w.category.__name__, w.message)
        m["spearman"] = float(rho) if np.isfinite(rho) else 0.0
    return m


# ------------------------------------------------------------------------------------------------
def _build_model(cfg: RewardTrainConfig) -> RewardModel:
    torch.manual_seed(cfg.seed)
    if cfg.init_reward:
        model = RewardModel.from_pretrained(cfg.init_reward, device="cpu", dtype="float32")
        model.set_trust(None)
        return model
    if cfg.init_backbone == "random":
        return RewardModel(vision_config=cfg.vision_config or None, **cfg.head)
    from transformers import CLIPVisionModelWithProjection

    from ..hub import resolve_model
    from ..state import refuse_pickle_folder

    folder = resolve_model(cfg.init_backbone, what="CLIP backbone").path
    refuse_pickle_folder(folder, "CLIP backbone weights", recursive=False)
    try:
        clip = CLIPVisionModelWithProjection.from_pretrained(folder, use_safetensors=True)
    except OSError as exc:
        raise ModelNotFoundError(f"CLIP backbone '{cfg.init_backbone}' ({folder}) could not be loaded from safetensors "
                                 f"weights: {str(exc).splitlines()[0]}") from exc
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size",
            "projection_dim", "hidden_act", "layer_norm_eps")
    model = RewardModel(vision_config={k: getattr(clip.config, k) for k in keys}, **cfg.head)
    model.backbone.load_state_dict(clip.state_dict())
    return model


def _checkpoints(out: Path) -> list[Path]:
    return sorted(d for d in (out / "checkpoints").glob("epoch-*") if (d / "state.json").is_file())


def _save_checkpoint(out: Path, epoch: int, model, optimizer, scheduler, state: dict, keep: int) -> Path:
    from safetensors.torch import save_file

    root = out / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    dest = root / f"epoch-{epoch:04d}"
    with atomic_dir(dest) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        state = dict(state, epoch=epoch, optimizer=opt_meta, scheduler=scheduler.state_dict())
        write_json_state(tmp / "state.json", state)  # written last: marks completeness
    for old in _checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def _flatten_optimizer(sd: dict):
    tensors, state = {}, {}
    for idx, st in sd["state"].items():
        state[str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.detach().cpu().contiguous()
                state[str(idx)][k] = "__tensor__"
            else:
                state[str(idx)][k] = v
    return tensors, {"state": state, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state = {int(i): {k: (tensors[f"{i}.{k}"] if v == "__tensor__" else v) for k, v in st.items()}
             for i, st in meta["state"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------------------------------------
def _read_resume(ckpt: Path, cfg: RewardTrainConfig):
    """Read and check a checkpoint's files: (folder, state, model tensors, optimizer tensors, fix)."""
    fix = (f"delete '{ckpt}' to resume from the checkpoint before it, or start over in a new output folder",
           Hint("; or start over in place with ", Arg("overwrite", True)))
    state = read_json(ckpt / "state.json", what="resume state", fix=fix,
                      keys={"epoch": int, "history": list, "optimizer": dict, "scheduler": dict, "config": dict})
    saved = state["config"]
    for key in _RESUME_KEYS:
        if key in saved and saved[key] != cfg.to_dict()[key]:
            raise ConfigError(f"cannot resume: {key} was {saved[key]!r} in '{ckpt}' but is {cfg.to_dict()[key]!r} now")
    weights = read_tensors(ckpt / "model.safetensors", what="checkpoint weights", fix=fix, finite=True)
    opt_tensors = read_tensors(ckpt / "optimizer.safetensors", what="checkpoint optimizer state", fix=fix)
    return ckpt, state, weights, opt_tensors, fix


_RUN_FILES = ("checkpoints", "model", "metrics.json", "train_config.json", "logs")


def check_reward_run_folder(out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> list[Path]:
    """Refuse an output folder that already holds a reward-training run, unless resuming or overwriting.

    Call it before loading anything (``train_reward`` does). Returns the folder's complete checkpoints (oldest
    first) when resuming, else ``[]``. With ``overwrite`` the old run's files are removed (only those; other
    files in the folder stay).

    Raises:
        OutputExistsError: the folder holds a run and neither ``resume`` nor ``overwrite`` is given.
        InvalidInputError: ``out`` is a file, or both ``resume`` and ``overwrite`` are given.
    """
    from ..state import find_run

    out = Path(out)
    found = find_run(out, _RUN_FILES, "training run", resume=resume, overwrite=overwrite)
    if not found:
        return []
    if resume:
        return _checkpoints(out)
    remove_run_files(out, found)  # every process may get here (before the process group forms): it tolerates that
    return []


@validated_by(validate_training)
def train_reward(data: str | os.PathLike | RewardData, out: str | os.PathLike, config: RewardTrainConfig | None = None,
                 *, resume: bool = False, overwrite: bool = False, progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume training) a reward model; see the module docstring for what is written under ``out``.

    Args:
        data: a dataset folder/manifest (:func:`~.data.read_reward_data`) or an already read :class:`RewardData`.
        out: output folder (``checkpoints/``, ``logs/``, ``model/``, ``metrics.json``, ``train_config.json``).
        config: :class:`RewardTrainConfig` (default: the paper's preset).
        resume: continue from the newest checkpoint in ``out``.
        overwrite: replace a run already in ``out`` (its checkpoints, model, logs and metrics are removed).
        progress: called as ``progress(phase, done, total)`` with phase "epoch" or "step".

    Raises:
        DataError, ConfigError, OutputExistsError: bad data, inconsistent settings, an existing run without ``resume``
        or ``overwrite``. CorruptFileError: a checkpoint to resume from is truncated, empty or of the wrong type.
    """
    out = Path(out)
    run = _NewRun(existed=out.exists())
    try:
        return _train(data, out, config, resume, overwrite, progress, run)
    except BaseException:
        if run.started and not resume and run.epochs == 0 and run.main:
            remove_unstarted_run(out, _RUN_FILES, run.existed)
        raise


@dataclass
class _NewRun:
    """What :func:`train_reward` needs to undo a new run that failed before its first epoch ended."""

    existed: bool  # the output folder was there before the run
    started: bool = False  # the checks passed and the run began writing its own files
    main: bool = True  # this is the main process (the one that writes)
    epochs: int = 0  # epochs this run completed (checkpoint saved)


def _train(data, out: Path, config, resume: bool, overwrite: bool, progress, run: _NewRun) -> TrainResult:
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    cfg = validate_training(data, out, config or RewardTrainConfig())
    done = check_reward_run_folder(out, resume=resume, overwrite=overwrite)
    resumed = _read_resume(done[-1], cfg) if done else None  # every resume file is checked before a model loads

    dataset = data if isinstance(data, RewardData) else read_reward_data(data, max_bad_fraction=cfg.max_bad_fraction)
    if cfg.loss == "regression" and not dataset.has_scores:
        raise ConfigError(f"loss='regression' needs scored samples, but '{dataset.source}' holds preference pairs; "
                          "use ", Arg("loss", "bradley-terry"), " (the bradley-terry preset)")
    train, val, test = split_by_group(dataset, cfg.split, seed=cfg.seed)
    if not train.samples:
        raise DataError(f"the training split of '{dataset.source}' is empty; add data or change split={cfg.split}")
    stats = _label_stats(train) if (cfg.normalize_labels and dataset.has_scores) else None

    trackers = None if cfg.log_with == "none" else cfg.log_with
    # On a machine without CUDA, a multi-process launch (torchrun) runs as MULTI_CPU (gloo) only with cpu=True.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              log_with=trackers, project_dir=str(out / "logs"), cpu=multi_cpu)
    model = _build_model(cfg)
    frozen = model.freeze_backbone(cfg.freeze_fraction)
    size, fill = model.image_size, model.mask_fill
    sets = {name: _Images(d, _targets(d, stats), size, fill) for name, d in (("train", train), ("val", val), ("test", test))}
    train_pairs = train.group_pairs()
    if cfg.loss == "bradley-terry" and not train_pairs:
        raise DataError("loss='bradley-terry' found no preference pairs in the training split (all scores tie?)")
    train_items = _Pairs(sets["train"], train_pairs) if cfg.loss == "bradley-terry" else sets["train"]
    summary = reward_batch_summary(cfg, len(train_items), accelerator.num_processes)
    log.info("reward training: %d/%d/%d samples (train/val/test) in %d/%d/%d prompt groups; %d of %d CLIP layers frozen",
             len(train.samples), len(val.samples), len(test.samples), len(train.groups), len(val.groups),
             len(test.groups), frozen, len(model.backbone.vision_model.encoder.layers))
    log.info("batch arithmetic: %s", ", ".join(f"{k}={v}" for k, v in summary.items()))

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = summary["optimizer_steps_total"]
    if cfg.warmup_steps >= total_steps:
        raise ConfigError(f"warmup_steps={cfg.warmup_steps} is not below the total optimizer steps {total_steps}; lower it")
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    core: RewardModel = accelerator.unwrap_model(model)

    start_epoch, history = 0, []
    if resumed is not None:
        ckpt, state, weights, opt_tensors, fix = resumed
        with state_errors(ckpt / "model.safetensors", "checkpoint weights", fix):
            core.load_state_dict(weights)
        with state_errors(ckpt / "state.json", "resume state", fix):
            optimizer.load_state_dict(_unflatten_optimizer(opt_tensors, state["optimizer"]))
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, history = int(state["epoch"]), list(state["history"])
        log.info("resuming from %s (epoch %d of %d)", ckpt, start_epoch, cfg.epochs)
    elif resume:
        log.warning("%s given but '%s' holds no checkpoint; starting from scratch", Arg("resume", True), out)

    accelerator.wait_for_everyone()  # every process checked the run folder before the main one writes into it
    run.started, run.main = True, accelerator.is_main_process  # from here on the folder's run files are ours
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "train_config.json", dict(cfg.to_dict(), label_stats=stats, batch=summary))
    if trackers:
        accelerator.init_trackers("reward", config={k: v for k, v in cfg.to_dict().items()
                                                    if isinstance(v, (int, float, str, bool))})

    step = start_epoch * summary["optimizer_steps_per_epoch"]
    for ran, epoch in enumerate(range(start_epoch, cfg.epochs), 1):
        # Seeded per epoch: the order and the dropout masks depend only on (seed, epoch), so resume is exact.
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train_items)).tolist()
        loader = accelerator.prepare(torch.utils.data.DataLoader(
            torch.utils.data.Subset(train_items, order), batch_size=cfg.batch_size, shuffle=False,
            num_workers=cfg.num_workers))
        model.train()
        losses = []
        for i, batch in enumerate(loader):
            with accelerator.accumulate(model):
                loss = _loss(model, batch, cfg.loss)
                accelerator.backward(loss)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                    step += 1
                optimizer.zero_grad()
            losses.append(float(loss.detach()))
            if accelerator.sync_gradients and trackers:
                accelerator.log({"train/loss": losses[-1], "train/lr": scheduler.get_last_lr()[0]}, step=step)
            if progress:
                progress("step", i + 1, len(loader))
        accelerator.wait_for_everyone()
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if accelerator.is_main_process:
            if val.samples:
                pred = predict(core, sets["val"], cfg.eval_batch_size, cfg.num_workers)
                record.update({f"val_{k}": v for k, v in reward_metrics(pred, val, sets["val"].targets).items()})
            history.append(record)
            state = {"config": cfg.to_dict(), "history": history, "label_stats": stats, "global_step": step}
            _save_checkpoint(out, epoch + 1, core, optimizer, scheduler, state, cfg.keep_checkpoints)
            log.info("epoch %d/%d: %s", epoch + 1, cfg.epochs,
                     ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
        if trackers:
            accelerator.log({k.replace("_", "/", 1): v for k, v in record.items() if k != "epoch"}, step=step)
        accelerator.wait_for_everyone()
        run.epochs += 1  # its checkpoint is saved: the run is no longer a new one that can be undone
        if progress:
            progress("epoch", epoch + 1, cfg.epochs)
        if cfg.stop_after_epochs and ran >= cfg.stop_after_epochs and epoch + 1 < cfg.epochs:
            log.info("stopping after %d epoch(s) as asked (stop_after_epochs); continue with %s", ran, Arg("resume", True))
            accelerator.end_training()
            return TrainResult(None, epoch + 1, history, None)

    test_metrics = None
    model_dir = out / "model"
    if accelerator.is_main_process:
        if test.samples:
            pred = predict(core, sets["test"], cfg.eval_batch_size, cfg.num_workers)
            test_metrics = reward_metrics(pred, test, sets["test"].targets)
            log.info("test: %s", ", ".join(f"{k}={v:.4g}" for k, v in test_metrics.items()))
        acc = TrustAccumulator(core.embed_dim, cfg.trust_lam)
        predict(core, sets["train"], cfg.eval_batch_size, cfg.num_workers, trust=acc)
        core.set_trust(acc.finalize())
        core.eval()
        save_atomic(core, model_dir, overwrite=True)
        atomic_write_json(out / "metrics.json", json_safe({
            "history": history, "test": test_metrics, "label_stats": stats,
            "split_groups": [len(train.groups), len(val.groups), len(test.groups)], "skipped_files": dataset.skipped}))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(model_dir, cfg.epochs, history, test_metrics)


def _loss(model, batch, kind: str) -> torch.Tensor:
    if kind == "bradley-terry":
        (pb, mb, _, _), (pw, mw, _, _) = batch
        s, _ = model(torch.cat([pb, pw]), torch.cat([mb, mw]))
        sb, sw = s.float().chunk(2)
        return -F.logsigmoid(sb - sw).mean()
    px, pm, y, _ = batch
    s, _ = model(px, pm)
    return F.mse_loss(s.float(), y.float())


