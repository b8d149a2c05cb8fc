"""``AlignConfig``: every knob of RL alignment, with help text, named presets, TOML and CLI overrides.

The shared settings are here; each algorithm's own (``clip_range``, ``kl_coef``, ...) are its config in
:mod:`prefpaint_sdk.align.algorithms`, set by the same flat names and kept in ``algo_settings``.

Batch arithmetic (per iteration, for PPO/GRPO; each algorithm's ``batch_summary`` gives its own):

* samples per iteration = processes x prompts_per_iter x samples_per_prompt (one trajectory each);
* trained (sample, timestep) pairs = samples x timesteps_per_traj;
* optimizer steps per process = (prompts_per_iter x samples_per_prompt) / (train_batch_size x grad_accum_steps)
  per inner epoch; each optimizer step accumulates the gradients of all its samples' K timesteps.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..errors import Arg, ConfigError, require
from ..files import read_toml_table
from ..settings import Settings, setting

log = logging.getLogger(__name__)

__all__ = ["AlignConfig", "PRESETS", "batch_summary", "family_presets", "family_values", "load_config", "preset_family",
           "preset_part"]


@dataclass
class AlignConfig(Settings):
    """Hyper-parameters of :class:`~prefpaint_sdk.align.Aligner` (defaults = the paper, with LoRA)."""

    _what: ClassVar[str] = "align"
    _names_hint: ClassVar[str] = "see `prefpaint train align --help` for the names"

    # --- the algorithm (align/algorithms/) ---
    algo: str = setting("", "the alignment algorithm: a module of prefpaint_sdk/align/algorithms (ppo, grpo, ...); "
                            "'' = the family's default (its engine's default_algo)")
    algo_settings: dict = setting({}, "the algorithm's own settings by name (e.g. clip_range); set them by their flat "
                                      "names like the others; resolve() fills in every value")
    preset: str = setting("", "the named preset the values started from (set by load_config; recorded)")
    preset_family: str = setting("", "the model family whose preset values were applied ('' none; set by load_config)")
    # --- sampling (rollouts) ---
    num_steps: int = setting(50, "sampling steps per rollout (DDIM steps, or flow steps for a flow family; paper: 50)")
    eta: float = setting(1.0, "DDIM eta (DDIM families); > 0 so each step has a log-probability (paper: 1.0)")
    sde_noise: float = setting(0.7, "flow families: noise level a of the flow SDE, std_dev = a*sqrt(sigma/(1-sigma)) "
                                    "(Flow-GRPO: 0.7); > 0")
    sde_window: int = setting(2, "flow families: k consecutive SDE steps per rollout (the rest ODE), the only steps "
                                 "trained; 0 = every step (Flow-GRPO)")
    sde_window_start: int = setting(-1, "flow families: first step of the SDE window; -1 = seeded-random per iteration "
                                        "(Flow-GRPO-Fast / MixGRPO)")
    guidance_scale: float = setting(1.0, "classifier-free guidance; with an empty prompt it changes nothing, so 1.0 (skip)")
    prompt: str = setting("", "text prompt (PrefPaint: empty)")
    negative_prompt: str = setting("", "negative prompt (PrefPaint: empty)")
    resolution: int = setting(0, "working size in pixels; 0 = the model's own (its engine reads it from the configs)")
    prompts_per_iter: int = setting(4, "(image, mask) groups sampled per process per iteration")
    samples_per_prompt: int = setting(4, "trajectories per (image, mask) group; they share its encoded masked image")
    rollout_batch_size: int = setting(8, "UNet batch size while sampling rollouts")
    # --- policy update ---
    train_batch_size: int = setting(4, "samples (trajectories, pairs) per backward pass")
    grad_accum_steps: int = setting(1, "backward passes accumulated per optimizer step")
    inner_epochs: int = setting(1, "passes over each iteration's rollouts")
    use_trust: bool = setting(True, "weight each sample's loss by the reward's trust weight gamma (paper: on)")
    trust_k: float = setting(0.05, "gamma = clamp(exp(-k*bound + b)): k (paper: 0.05)")
    trust_b: float = setting(0.7, "gamma: b (paper: 0.7)")
    trust_min: float = setting(1.0, "gamma lower clamp (release: 1.0)")
    trust_max: float = setting(2.21, "gamma upper clamp (release: 2.21)")
    max_grad_norm: float = setting(1.0, "gradient-norm clip; 0 disables")
    grad_spike_factor: float = setting(10.0, "skip an optimizer step whose grad norm is non-finite or above this "
                                             "factor x the median of the last 20 norms; 0 disables the median test")
    # --- optimizer ---
    learning_rate: float = setting(2e-6, "AdamW learning rate (paper, full UNet: 2e-6)")
    adam_beta1: float = setting(0.9, "AdamW beta1")
    adam_beta2: float = setting(0.999, "AdamW beta2")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    adam_eps: float = setting(1e-8, "AdamW eps")
    lr_schedule: str = setting("constant", "'constant' (paper), 'linear' or 'cosine' decay over all optimizer steps")
    warmup_steps: int = setting(0, "linear warm-up optimizer steps")
    # --- model ---
    finetune: str = setting("lora", "'lora' (adapters via peft) or 'full' (the whole UNet, as the paper)")
    lora_rank: int = setting(8, "LoRA rank")
    lora_alpha: float = setting(8.0, "LoRA alpha (scale = alpha / rank)")
    lora_targets: list = setting([], "module names of the UNet/transformer that get LoRA adapters; [] = the "
                                     "family's (its engine's lora_targets: the attention projections)")
    mixed_precision: str = setting("no", "'no', 'fp16' or 'bf16' (paper: bf16)")
    gradient_checkpointing: bool = setting(False, "recompute UNet activations in backward to save memory")
    fsdp: bool = setting(False, "shard the trained model over the processes (torch FSDP2) instead of replicating it "
                                "(DDP): full fine-tuning under N > 1 processes, each holding 1/N of the weights, "
                                "gradients and AdamW state")
    # --- schedule ---
    iterations: int = setting(100, "RL iterations (sample, then update)")
    seed: int = setting(0, "seed of rollouts, timestep choice, masks and data order")
    mask_kinds: list = setting(["outpaint_square", "outpaint_strip", "stroke"], "mask kinds generated when the data has no masks")
    max_bad_fraction: float = setting(0.1, "share of the data's images that may be unreadable (each is skipped with a "
                                           "warning); above it the run is refused before any model loads")
    eval_every: int = setting(10, "evaluate on the held-out set every N iterations; 0 disables")
    eval_size: int = setting(4, "held-out (image, mask) pairs (taken from the data when no eval data is given)")
    eval_samples: int = setting(1, "samples per held-out pair in evaluation (same seeds for the starting model)")
    save_every: int = setting(10, "checkpoint every N iterations; 0 = only at the end and on Ctrl-C")
    keep_checkpoints: int = setting(2, "checkpoints kept (older ones are deleted)")
    log_with: str = setting("tensorboard", "accelerate tracker: 'tensorboard', 'wandb' or 'none'")
    # --- guards (against reward hacking; see align/guards.py and align/audit.py) ---
    on_hacking: str = setting("warn", "'warn' or 'stop' when the held-out proxy reward rises while the gold reward "
                                      "falls for hacking_patience consecutive evaluations (needs a gold reward)")
    hacking_patience: int = setting(3, "consecutive evaluations of rising proxy and falling gold reward that count as hacking")
    hacking_min_drop: float = setting(0.0, "the gold reward must also fall by more than this over the streak (e.g. 2x its "
                                           "seed noise) to count as hacking; 0: any fall")
    audit_ring: int = setting(8, "width in pixels of the context ring around the hole that the bias audit compares it with")

    # ------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "AlignConfig":
        """A copy with ``changes`` applied; an algorithm's setting (``clip_range``, ...) goes to ``algo_settings``.

        Raises:
            ConfigError: a name that neither the shared config nor any algorithm has, a value that does not
                convert, ``preset`` (pass it to :func:`load_config`), or an ``adv_mode`` that cannot be mapped.
        """
        from .algorithms import get_algorithm, setting_owners

        changes = _legacy(changes, self.algo)
        for name in ("preset", "preset_family"):
            if name in changes:
                raise ConfigError(f"{name} is not a setting; pass the preset to load_config(preset=..., family=...) "
                                  "or Aligner.from_pretrained(preset=...) (`--preset` on the command line)")
        own = {f.name for f in fields(self)}
        owners = setting_owners()
        algo = {k: v for k, v in changes.items() if k not in own and k in owners}
        out = super().replace(**{k: v for k, v in changes.items() if k not in algo})
        if algo:
            # coerced like the first algorithm that has it, so a bad value fails here, not at resolve()
            coerced = {k: getattr(get_algorithm(owners[k][0]).config_cls().replace(**{k: v}), k) for k, v in algo.items()}
            out.algo_settings = {**out.algo_settings, **coerced}
        return out

    def resolve(self, default_algo: str = "ppo") -> "AlignConfig":
        """A copy naming its algorithm (``algo``, else the family's ``default_algo``) with every one of its
        settings in ``algo_settings``: the algorithm's defaults, then its values for ``preset`` (and
        ``preset_family``), then the user's. Idempotent.

        Raises:
            ConfigError: an unknown algorithm, or a setting that belongs to another algorithm.
        """
        from .algorithms import get_algorithm, setting_owners

        name = self.algo or default_algo
        algo = get_algorithm(name)
        known = {f.name for f in fields(algo.config_cls)}
        foreign = sorted(set(self.algo_settings) - known)
        if foreign:
            k = foreign[0]
            raise ConfigError(f"{k} is a setting of {', '.join(setting_owners().get(k, ('no algorithm',)))}, not of "
                              f"algo='{name}'; drop it or choose that algorithm")
        cfg = algo.config_cls().replace(**algo.preset_values(self.preset, self.preset_family)).replace(**self.algo_settings)
        return dataclasses.replace(self, algo=name, algo_settings=cfg.to_dict())

    @property
    def algo_config(self):
        """The algorithm's own config (an :class:`~prefpaint_sdk.align.algorithms.AlgoConfig`) of a resolved config.

        Raises:
            ConfigError: the config names no algorithm yet (call :meth:`resolve`).
        """
        from .algorithms import get_algorithm

        if not self.algo:
            raise ConfigError("this align config names no algorithm yet; call resolve(default_algo) first")
        return get_algorithm(self.algo).config_cls().replace(**self.algo_settings)

    def validate(self, num_processes: int | None = None, sampler: str | None = None) -> "AlignConfig":
        """Refuse inconsistent settings, naming the values and the fix; with an algorithm named (see
        :meth:`resolve`), its own settings too.

        ``num_processes`` defaults to the launcher's (``WORLD_SIZE``: torchrun, accelerate launch), else 1.
        ``sampler`` is the family's :attr:`~prefpaint_sdk.engines.Engine.sampler_kind` ("ddim" or "flow") when
        known: ``eta`` is checked for DDIM (and unknown) families only, the SDE window for flow matching.
        Returns ``self``, marked as checked for ``sampler`` (:meth:`checked_for`), so a run validates once.

        Raises:
            ConfigError: the first inconsistency found.
        """
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        self.check_finite()
        self._check_seed()

        for name in ("num_steps", "prompts_per_iter", "samples_per_prompt", "rollout_batch_size",
                     "train_batch_size", "grad_accum_steps", "inner_epochs", "iterations",
                     "lora_rank", "keep_checkpoints", "eval_samples"):
            need(int(getattr(self, name)) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        flow = sampler == "flow"
        need(self.sde_window >= 0, f"sde_window must be >= 0 (0 = every step), got {self.sde_window}")
        need(self.sde_window_start >= -1, f"sde_window_start must be >= 0, or -1 for random, got {self.sde_window_start}")
        if flow and self.sde_window:
            need(self.sde_window_start < self.num_steps,
                 f"sde_window_start={self.sde_window_start} is past the last of num_steps={self.num_steps} steps")
        need(self.grad_spike_factor >= 0, f"grad_spike_factor must be >= 0 (0 disables), got {self.grad_spike_factor}")
        per_proc = self.prompts_per_iter * self.samples_per_prompt
        per_step = self.train_batch_size * self.grad_accum_steps
        need(per_proc % per_step == 0,
             f"prompts_per_iter x samples_per_prompt = {per_proc} samples per process is not a multiple of "
             f"train_batch_size x grad_accum_steps = {per_step}; change one so it divides")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.finetune in ("lora", "full"), f"finetune must be 'lora' or 'full', got '{self.finetune}'")
        need(self.mixed_precision in ("no", "fp16", "bf16"), f"mixed_precision must be no, fp16 or bf16, got '{self.mixed_precision}'")
        need(self.lr_schedule in ("constant", "linear", "cosine"), f"lr_schedule must be constant, linear or cosine, got '{self.lr_schedule}'")
        need(self.trust_min <= self.trust_max, f"trust_min={self.trust_min} exceeds trust_max={self.trust_max}")
        need(self.log_with in ("tensorboard", "wandb", "none"), f"log_with must be tensorboard, wandb or none, got '{self.log_with}'")
        if self.log_with != "none":  # the tracker comes with an extra: a missing one fails here, before any model loads
            require(self.log_with, extra="train" if self.log_with == "tensorboard" else "wandb",
                    purpose=f"log_with='{self.log_with}' (log_with='none' trains without a tracker)")
        need(self.resolution == 0 or self.resolution % 8 == 0, f"resolution={self.resolution} must be a multiple of 8 (or 0)")
        need(self.guidance_scale >= 1.0 or self.guidance_scale == 0,
             f"guidance_scale={self.guidance_scale} must be >= 1 (1 = no guidance)")
        if num_processes is None:
            num_processes = int(os.environ.get("WORLD_SIZE", "1") or 1)
        need(num_processes >= 1, f"num_processes={num_processes} must be >= 1")
        self._validate_fsdp(num_processes)
        from ..masks import MASK_KINDS

        need(0 <= self.max_bad_fraction < 1, f"max_bad_fraction must lie in [0, 1), got {self.max_bad_fraction}")
        bad = [k for k in self.mask_kinds if k not in MASK_KINDS and k != "random"]
        need(not bad, f"mask_kinds {bad} are unknown; use {', '.join(MASK_KINDS)}")
        self._validate_guards()
        if self.algo:
            algo_cfg = self.resolve().algo_config  # with the preset's values for it, as the run will have them
            algo_cfg.check_finite()
            algo_cfg.validate(self, sampler)
        elif self.algo_settings:  # checked by name now; by value once resolve() names the algorithm
            from .algorithms import setting_owners

            unknown = sorted(set(self.algo_settings) - set(setting_owners()))
            need(not unknown, f"unknown align setting(s) {unknown}; {self._names_hint}")
        self._checked = (sampler, bool(self.algo))
        return self

    def checked_for(self, sampler: str | None) -> bool:
        """Whether :meth:`validate` passed for this ``sampler`` with the algorithm named (a copy is unchecked)."""
        return getattr(self, "_checked", None) == (sampler, True)

    def _validate_fsdp(self, num_processes: int) -> None:
        """What sharding (``fsdp``) works with; see :mod:`prefpaint_sdk.align.fsdp`."""
        if not self.fsdp:
            return
        if self.finetune != "full":
            raise ConfigError(Arg("fsdp", True), f" shards full fine-tuning, but finetune='{self.finetune}' trains "
                              "small adapters that every process holds whole; drop fsdp or set finetune='full'")
        if num_processes < 2:
            raise ConfigError(Arg("fsdp", True), f" shards the model over processes, but this run has {num_processes}; "
                              "launch 2 or more (torchrun --nproc_per_node N, accelerate launch --num_processes N) or drop fsdp")
        if self.mixed_precision == "fp16":
            raise ConfigError(Arg("fsdp", True), " does not take mixed_precision='fp16' (its loss scaler is not "
                              "wired for sharded gradients); use mixed_precision='bf16' or 'no'")

    def _validate_guards(self) -> None:
        """The guards block's checks (see :mod:`prefpaint_sdk.align.guards`)."""
        if self.on_hacking not in ("warn", "stop"):
            raise ConfigError(Arg("on_hacking"), f" must be 'warn' or 'stop', got '{self.on_hacking}'")
        if int(self.hacking_patience) < 1:
            raise ConfigError(Arg("hacking_patience"), f" must be >= 1, got {self.hacking_patience}")
        if not self.hacking_min_drop >= 0:
            raise ConfigError(Arg("hacking_min_drop"), f" must be >= 0, got {self.hacking_min_drop}")
        if int(self.audit_ring) < 1:
            raise ConfigError(Arg("audit_ring"), f" must be >= 1 pixel, got {self.audit_ring}")
        if self.on_hacking == "stop" and not self.eval_every:
            raise ConfigError("on_hacking='stop' watches the evaluations, but eval_every=0 disables them; "
                              "set eval_every >= 1 or on_hacking='warn'")


# The shared values of each named preset; each algorithm's own values of the same presets are its
# module's ``presets`` (align/algorithms/ppo.py, ...), and each model family's values of them are its engine's
# ``training_presets`` (prefpaint_sdk/engines/), all applied when the config is resolved.
_SHARED_PRESETS: dict[str, dict[str, Any]] = {
    # The release's recipe: full UNet, bf16, 16 samples per GPU (4 groups x 4), K=5 of 50 steps, M=15.
    "paper": dict(finetune="full", learning_rate=2e-6, mixed_precision="bf16", gradient_checkpointing=True,
                  prompts_per_iter=4, samples_per_prompt=4, rollout_batch_size=16, train_batch_size=4,
                  grad_accum_steps=4, num_steps=50, iterations=1000, eval_every=50, save_every=50),
    # One 24 GB GPU: LoRA on the attention projections, fp16 activations, checkpointing, same batch.
    "lora-24gb": dict(finetune="lora", lora_rank=16, lora_alpha=16.0, learning_rate=1e-4, mixed_precision="fp16",
                      gradient_checkpointing=True, prompts_per_iter=4, samples_per_prompt=4, rollout_batch_size=8,
                      train_batch_size=2, grad_accum_steps=8, num_steps=50, iterations=1000, eval_every=50, save_every=50),
    # Minutes on a laptop CPU with the tiny test pipeline (prefpaint_sdk.testing) and --reward brightness:
    # 32 px, 4 DDIM steps, all 4 trained, one optimizer step per iteration. Full fine-tuning (1M params):
    # a random tiny VAE hides a global latent shift behind GroupNorm, so hole brightness moves only through
    # hole-specific latents, which attention-only LoRA reaches slowly (--finetune lora uses conv_out too).
    # Outpainting masks only: this decoder brightens some regions at the expense of others, so training and
    # held-out holes must be alike for the gain to show.
    "cpu-smoke": dict(finetune="full", learning_rate=6e-4, lora_rank=4, lora_alpha=4.0, mixed_precision="no",
                      lora_targets=["to_q", "to_k", "to_v", "to_out.0", "conv_out"], resolution=32,
                      num_steps=4, prompts_per_iter=4, samples_per_prompt=4,
                      rollout_batch_size=16, train_batch_size=16, grad_accum_steps=1, inner_epochs=1, iterations=12, eval_every=6, eval_size=4, eval_samples=2,
                      save_every=6, seed=0, mask_kinds=["outpaint_square", "outpaint_strip"],
                      # a flow family (tiny fixture): every one of the 4 flow steps is an SDE step (window 0 =
                      # all), so the same K = 4 trained steps per trajectory as DDIM; the family's default algorithm.
                      sde_window=0, sde_noise=0.7),
}


def _family_presets() -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """preset -> family -> part ("common" or an algorithm's name) -> values, from the engines (no torch)."""
    from ..engines.info import training_presets

    return training_presets()


def _preset_own(preset: str, part: str = "common") -> dict[str, Any] | None:
    """A preset's own values of ``part``: align's shared ones, or those of the family that defines the preset
    (a preset align does not define); ``None`` for an unknown preset."""
    if preset in _SHARED_PRESETS:
        return dict(_SHARED_PRESETS[preset]) if part == "common" else {}
    owners = _family_presets().get(preset)
    if not owners:
        return None
    return dict(next(iter(owners.values())).get(part, {}))


def preset_part(preset: str | None, family: str | None, part: str) -> dict[str, Any]:
    """The values ``preset`` sets for ``part`` ("common": the shared settings, or an algorithm's name) on a
    model of ``family``: the preset's own, then the family's over them (empty for no or an unknown preset)."""
    if not preset:
        return {}
    own = _preset_own(preset, part) or {}
    return {**own, **_family_presets().get(preset, {}).get(family or "", {}).get(part, {})}


PRESETS: dict[str, dict[str, Any]] = {**_SHARED_PRESETS, **{name: _preset_own(name) for name in _family_presets()
                                                            if name not in _SHARED_PRESETS}}
"""Every named preset's own shared values: align's, and those a family defines (its engine's
``training_presets``); a family's values of a preset apply over these (:func:`family_presets`)."""


def family_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """preset -> family -> the shared values the family sets over a preset of align's (its engine's
    ``training_presets``); a family's algorithm values are its engine's too (:func:`preset_part`)."""
    return {preset: {fam: dict(parts.get("common", {})) for fam, parts in fams.items() if parts.get("common")}
            for preset, fams in _family_presets().items() if preset in _SHARED_PRESETS}


def preset_family(preset: str | None, model, *, offline: bool | None = None) -> str | None:
    """The model family whose values of ``preset`` apply to ``model`` (a folder or hub id), read from its
    ``model_index.json`` before anything loads; ``None`` when the preset has no per-family values or the family
    cannot be told here (loading the model then says why)."""
    if preset not in _family_presets():
        return None
    from ..engines import family_of_model

    return family_of_model(model, offline=offline)


def family_values(preset: str | None, family: str | None, part: str = "common") -> dict[str, Any]:
    """The values a family sets for ``part`` over a preset of align's (empty when it has none)."""
    if preset not in _SHARED_PRESETS:
        return {}
    return dict(_family_presets().get(preset or "", {}).get(family or "", {}).get(part, {}))


def load_config(preset: str | None = None, toml_path: str | os.PathLike | None = None,
                overrides: dict[str, Any] | None = None, family: str | None = None) -> AlignConfig:
    """Build a config: defaults, then a preset, then the preset's values for the model ``family`` (its engine's
    ``training_presets``), then a TOML file, then explicit overrides; so a user's value always wins.
    The algorithm's own values of the preset come in at :meth:`AlignConfig.resolve`, under the user's.
    :meth:`Aligner.from_pretrained <prefpaint_sdk.align.Aligner.from_pretrained>` does all of this for a model.

    The TOML file holds flat ``name = value`` pairs, or the same under an ``[align]`` table.

    Raises:
        ConfigError: an unknown preset or setting, an unreadable TOML file.
    """
    cfg = AlignConfig()
    if preset:
        if _preset_own(preset) is None:
            names = [*_SHARED_PRESETS, *(n for n in _family_presets() if n not in _SHARED_PRESETS)]
            raise ConfigError(f"unknown preset '{preset}'; use one of {', '.join(names)}")
        cfg = dataclasses.replace(cfg.replace(**preset_part(preset, family, "common")), preset=preset,
                                  preset_family=family or "")
    if toml_path:
        cfg = cfg.replace(**read_toml_table(toml_path, "align"))
    if overrides:
        cfg = cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
    return cfg


def batch_summary(cfg: AlignConfig, num_processes: int = 1) -> dict[str, int]:
    """The derived batch arithmetic of one iteration (printed before training), from the config's algorithm
    (the family's default when it names none: resolve it first for the numbers that will run)."""
    from .algorithms import get_algorithm

    cfg = cfg if cfg.algo else cfg.resolve()
    return get_algorithm(cfg.algo)(cfg.algo_config).batch_summary(cfg, num_processes)


_ADV_MODE_GROUP = ("adv_mode='group' is algo='grpo' now (advantages relative to each (image, mask) group; a group "
                   "whose rewards are all equal no longer counts in the loss mean)")


def _legacy(changes: dict[str, Any], algo: str) -> dict[str, Any]:
    """Map the settings of older configs and run records: ``adv_mode`` became the algorithm's choice."""
    if "adv_mode" not in changes:
        return changes
    changes = dict(changes)
    mode = str(changes.pop("adv_mode")).strip()
    asked = str(changes.get("algo", algo) or "")
    if mode == "group":
        if asked not in ("", "grpo"):
            raise ConfigError(f"{_ADV_MODE_GROUP}, but algo='{asked}' was asked for too; drop adv_mode or use algo='grpo'")
        log.warning("%s: using algo='grpo'", _ADV_MODE_GROUP)
        changes["algo"] = "grpo"
    elif mode == "batch":  # the old default: what PPO does (and GRPO ignored it)
        log.info("adv_mode='batch' is gone: it is what algo='ppo' does; ignored")
    else:
        raise ConfigError(f"adv_mode is gone ({_ADV_MODE_GROUP}; 'batch' is algo='ppo'), got adv_mode='{mode}'")
    return changes


def lr_lambda(cfg: AlignConfig, total: int):
    """The LR multiplier per optimizer step: warm-up, then constant, linear or cosine decay to 0 over ``total``."""
    warm, kind, total = cfg.warmup_steps, cfg.lr_schedule, max(total, 1)

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        frac = min(1.0, (step - warm) / max(1, total - warm))
        return 1.0 - frac if kind == "linear" else 0.5 * (1 + math.cos(math.pi * frac))

    return f
