"""``RewardTrainConfig``: every knob of reward-model training, with help text, presets, TOML and CLI overrides.

Batch arithmetic: effective batch per optimizer step = batch_size x gradient_accumulation_steps x processes;
optimizer steps per epoch = ceil(train items per process / batch_size) / gradient_accumulation_steps, where an
item is a sample (regression) or a preference pair (Bradley–Terry).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import Arg, ConfigError, require
from ..files import read_toml_table
from ..settings import Settings, setting

__all__ = ["LOSSES", "REWARD_PRESETS", "RewardTrainConfig", "load_reward_config", "reward_batch_summary"]

LOSSES = ("regression", "bradley-terry")


@dataclass
class RewardTrainConfig(Settings):
    """Hyper-parameters of :func:`~prefpaint_sdk.reward.train.train_reward` (defaults = the paper)."""

    _what: ClassVar[str] = "reward training"

    loss: str = setting("regression", "'regression' (MSE on normalised scores, the paper) or 'bradley-terry' (pairwise)")
    epochs: int = setting(10, "passes over the training set")
    batch_size: int = setting(5, "samples (or pairs) per process per backward pass (paper: 5)")
    gradient_accumulation_steps: int = setting(1, "backward passes accumulated per optimizer step")
    lr: float = setting(1e-5, "AdamW learning rate (paper: 1e-5), cosine-decayed to 0")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    warmup_steps: int = setting(0, "linear warm-up optimizer steps before the cosine decay")
    freeze_fraction: float = setting(0.7, "fraction of the CLIP transformer layers frozen, from the input side (paper: 0.7)")
    init_backbone: str = setting("openai/clip-vit-base-patch32",
                            "CLIP weights to start from (hub id or folder of a transformers CLIP model), or 'random'")
    init_reward: str = setting("", "a reward model (folder, hub id or official .pt) to fine-tune instead; overrides init_backbone")
    vision_config: dict = setting({}, "CLIPVisionConfig overrides for init_backbone='random' (default: ViT-B/32)")
    head: dict = setting({}, "RewardModel head overrides: head_heads, head_ff, mlp_hidden, embed_dim, ...")
    normalize_labels: bool = setting(True, "standardise scores with the training set's mean/std, per mask_type when given")
    split: list = setting([0.7, 0.18, 0.12], "train/val/test fractions of prompt groups (a manifest's split column wins)")
    seed: int = setting(0, "seed of the split, the initial weights, the data order and dropout")
    mixed_precision: str = setting("no", "'no', 'fp16' or 'bf16' (accelerate)")
    num_workers: int = setting(0, "DataLoader worker processes decoding images")
    eval_batch_size: int = setting(32, "images per backbone pass when evaluating and fitting the trust matrix")
    max_bad_fraction: float = setting(0.01, "stop with an error when more than this fraction of samples is unreadable")
    trust_lam: float = setting(0.01, "ridge lambda of the trust matrix fitted on the training embeddings at the end")
    log_with: str = setting("tensorboard", "accelerate tracker: 'tensorboard', 'wandb' or 'none'")
    keep_checkpoints: int = setting(2, "per-epoch checkpoints kept (older ones are deleted)")
    stop_after_epochs: int = setting(0, "stop this run after N epochs even if more are scheduled (0 = never); resume later")

    def validate(self) -> RewardTrainConfig:
        self.check_finite()
        self._check_seed()
        if self.loss not in LOSSES:
            raise ConfigError(Arg("loss"), f" must be one of {', '.join(LOSSES)}, got '{self.loss}'")
        for name in ("epochs", "batch_size", "gradient_accumulation_steps", "eval_batch_size", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(Arg(name), f" must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(Arg("lr"), f" must be > 0, got {self.lr}")
        if not 0.0 <= self.freeze_fraction <= 1.0:
            raise ConfigError(Arg("freeze_fraction"), f" must lie in [0, 1], got {self.freeze_fraction}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(Arg("mixed_precision"), f" must be no, fp16 or bf16, got '{self.mixed_precision}'")
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(Arg("split"), f" must be three fractions summing to 1, got {self.split}")
        if self.stop_after_epochs < 0:
            raise ConfigError(Arg("stop_after_epochs"), f" must be >= 0, got {self.stop_after_epochs}")
        if self.log_with not in ("tensorboard", "wandb", "none"):
            raise ConfigError(Arg("log_with"), f" must be tensorboard, wandb or none, got '{self.log_with}'")
        if self.log_with != "none":  # the tracker comes with an extra: a missing one fails here, before any model loads
            require(self.log_with, extra="train" if self.log_with == "tensorboard" else "wandb",
                    purpose=f"log_with='{self.log_with}' (log_with='none' trains without a tracker)")
        return self


# A CLIP tower small enough to learn a synthetic reward in a CPU minute (32 px input, 8 px patches).
_TINY_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32,
                    "patch_size": 8, "projection_dim": 32, "hidden_act": "quick_gelu"}

REWARD_PRESETS: dict[str, dict[str, Any]] = {
    # The paper: regression on normalised scores, 70% of CLIP ViT-B/32 frozen, AdamW 1e-5, batch 5, cosine.
    "paper": {"loss": "regression", "lr": 1e-5, "batch_size": 5, "freeze_fraction": 0.7, "epochs": 10},
    # Same set-up with the pairwise Bradley–Terry loss (also for manifests of preference pairs).
    "bradley-terry": {"loss": "bradley-terry", "lr": 1e-5, "batch_size": 5, "freeze_fraction": 0.7, "epochs": 10},
    # Minutes on a CPU: a tiny random backbone, a higher learning rate; for smoke tests and the learning test.
    "cpu-smoke": {"init_backbone": "random", "vision_config": _TINY_VISION,
                      "head": {"head_heads": 4, "mlp_hidden": 64, "embed_dim": 32}, "lr": 1e-3, "batch_size": 16, "epochs": 6,
                      "freeze_fraction": 0.5, "eval_batch_size": 64, "weight_decay": 0.0},
}


def load_reward_config(preset: str | None = "paper", toml_path: str | os.PathLike | None = None,
                       overrides: dict[str, Any] | None = None) -> RewardTrainConfig:
    """Defaults, then a preset, then a TOML file (flat, or under ``[reward]``), then explicit overrides.

    Raises:
        ConfigError: unknown preset or setting, unreadable TOML, inconsistent values.
    """
    cfg = RewardTrainConfig()
    if preset:
        if preset not in REWARD_PRESETS:
            raise ConfigError(f"unknown preset '{preset}'; use one of {', '.join(REWARD_PRESETS)}")
        cfg = cfg.replace(**REWARD_PRESETS[preset])
    if toml_path:
        cfg = cfg.replace(**read_toml_table(toml_path, "reward"))
    if overrides:
        cfg = cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
    return cfg.validate()


def reward_batch_summary(cfg: RewardTrainConfig, train_items: int, num_processes: int = 1) -> dict[str, int]:
    """The derived batch arithmetic, printed before training starts."""
    per_proc = math.ceil(train_items / num_processes)
    batches = math.ceil(per_proc / cfg.batch_size)
    steps = math.ceil(batches / cfg.gradient_accumulation_steps)
    return {
        "processes": num_processes,
        "train_items": train_items,
        "batch_per_process": cfg.batch_size,
        "effective_batch": cfg.batch_size * cfg.gradient_accumulation_steps * num_processes,
        "optimizer_steps_per_epoch": steps,
        "optimizer_steps_total": steps * cfg.epochs,
    }


def validate_training(data, out, config: RewardTrainConfig | str | os.PathLike | None = None, *,
                      preset: str | None = None, overrides: dict[str, Any] | None = None) -> RewardTrainConfig:
    """Every check of :func:`~prefpaint_sdk.reward.train.train_reward` that needs no model: the data path exists,
    the TOML file exists, the output folder is usable (an earlier run in it is the trainer's to judge), and the
    config (``config`` itself, or ``preset`` < the TOML file ``config`` < ``overrides``) is consistent.

    Returns:
        the validated config, for :func:`~prefpaint_sdk.reward.train.train_reward`.

    Raises:
        DataError: a missing data path. InvalidInputError: a missing TOML file, an unusable output folder.
        ConfigError: an unknown preset or setting, inconsistent values.
    """
    from pathlib import Path

    from ..errors import DataError, InvalidInputError
    from ..files import check_output_dir

    if isinstance(data, (str, os.PathLike)) and not Path(data).exists():
        raise DataError(f"data '{data}' does not exist; pass the dataset folder or a manifest file")
    if isinstance(config, (str, os.PathLike)) and not Path(config).is_file():
        raise InvalidInputError(f"config '{config}' does not exist or is not a file; check the path")
    check_output_dir(out, overwrite=True)  # a file in the way, or an unwritable place (a used run: the trainer)
    if isinstance(config, RewardTrainConfig):
        if preset:
            raise ConfigError("give a preset or a config object, not both")
        return config.replace(**{k: v for k, v in (overrides or {}).items() if v is not None}).validate()
    return load_reward_config(preset, config, overrides)
