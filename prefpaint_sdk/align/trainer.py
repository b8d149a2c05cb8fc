"""``Aligner``: the shared alignment loop; each algorithm is a module of :mod:`.algorithms` (PPO, GRPO, ...).

The loop owns what every algorithm needs: the data and its held-out split, the accelerator, the trained
weights (LoRA or full), the optimizer and its LR schedule, the grad-spike guard, the old-policy snapshot,
checkpoints and exact resume, evaluation with the gold reward, ``on_hacking`` and the bias audit, logs and
exports. One iteration is the algorithm's :meth:`~.algorithms.base.Algorithm.step`, which calls back into
the loop through the :class:`~.algorithms.base.TrainLoop` methods (:mod:`.loop`).

Every random choice is drawn from generators seeded by (seed, iteration, process), so an interrupted
run resumed from its checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .. import interrupts
from ..errors import Arg, ConfigError, DataError, InvalidInputError
from ..state import remove_unstarted_run
from . import checkpoint as ckpt
from . import sampling
from .algorithms import get_algorithm
from .config import AlignConfig, lr_lambda
from .evaluation import EvalResult, evaluate_heldout, heldout_prompts, log_eval_grid
from .guards import EvalGuards, check_guards
from .loop import GradSpikeGuard, LoopServices
from .policy import OldPolicy, Policy, export_lora, prepare_weights, trainable_parameters
from .reward_stack import TrainReward
from .rewards import as_reward_fn
from .tracking import log_metrics

__all__ = ["Aligner", "AlignResult"]

log = logging.getLogger(__name__)


@dataclass
class AlignResult:
    """What :meth:`Aligner.train` did: per-iteration logs, evaluations and where things were written."""

    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    iterations_done: int = 0
    interrupted: bool = False
    checkpoint: str | None = None
    stopped_reason: str | None = None  # why the run ended early on its own (the hacking guard); None otherwise
    best: dict[str, Any] | None = None  # the evaluation with the best gold reward (eval/best/), when there is one


class Aligner(LoopServices):
    """Alignment of an inpainting pipeline to any reward, with trust weights, by the config's algorithm.

    Most users call :meth:`from_pretrained`, which resolves the config for the model and checks everything
    before loading it; the constructor takes an already built pipeline.

    Args:
        pipeline: a diffusers inpainting pipeline of an alignable family (``Engine.alignable``), or its
            engine; fp32 weights; it is modified in place.
        reward: a built-in reward name ("brightness"), a ``RewardModel``-like object with ``.score``, a
            callable ``reward_fn(images, masks, masked_images) -> scores | (scores, bounds)``, or a list of these
            (a stack, see :mod:`.reward_stack`); or a :class:`~.reward_stack.TrainReward`.
        reward_weights / reward_norm: a stack's weights (one per reward; default 1 each) and its normalisation,
            ``gdpo`` (default), ``sum`` or ``rank``.
        config: an :class:`AlignConfig`; resolved (``algo=""``: the family's default) and validated here
            unless :meth:`from_pretrained` already did.
        data: a data folder (see :mod:`prefpaint_sdk.align.data`) or an :class:`AlignDataset` (or what the
            algorithm's ``open_data`` reads).
        output_dir: checkpoints, logs, evaluation grids and exports go here.
        eval_data: a separate held-out folder; default: the last ``eval_size`` items of ``data``.
        accelerator: an ``accelerate.Accelerator``; default one is built from the config (CPU when
            ``device="cpu"``).
        device: "auto" or a device name, used when no accelerator is given.
        model_id: recorded in logs and exports.
        progress: called as ``progress(iteration, total, metrics)`` after every iteration.
        gold_reward: a second reward (same forms as ``reward``, or a ``RewardEnsemble``) scored on the held-out
            samples at every evaluation and watched against the training reward (see :mod:`.guards`).

    Raises:
        ConfigError: inconsistent settings. DataError: unusable data.
    """

    def __init__(self, pipeline, reward, config: AlignConfig, data, output_dir, *, eval_data=None, accelerator=None,
                 device: str = "auto", model_id: str = "<in-memory>", progress: Callable | None = None,
                 gold_reward=None, reward_weights=None, reward_norm: str | None = None):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        self.output_dir = Path(output_dir)
        if accelerator is None:
            from ..devices import resolve_device

            dev = resolve_device(device)
            log_with = None if config.log_with == "none" else config.log_with
            accelerator = Accelerator(
                cpu=dev.type == "cpu", mixed_precision=config.mixed_precision, log_with=log_with,
                project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
            )
        self.accelerator = acc = accelerator
        from ..engines import engine_for_pipeline

        self.engine = engine = engine_for_pipeline(pipeline, training=True)
        if not engine.alignable:
            raise engine.not_alignable()
        if not (config.algo and config.checked_for(engine.sampler_kind)):  # from_pretrained validated it already
            config = config.resolve(engine.default_algo).validate(acc.num_processes, sampler=engine.sampler_kind)
        self.config = cfg = config
        self.algorithm = get_algorithm(cfg.algo)(cfg.algo_config)
        #: the algorithm's name ("ppo", "grpo", ...)
        self.algo = cfg.algo
        self.model_id = model_id
        self.progress = progress
        self.pipe = pipeline = engine.pipeline
        pipeline.set_progress_bar_config(disable=True)
        try:
            engine.check_model(model_id)  # e.g. a 9-channel inpainting UNet, a Fill transformer
        except InvalidInputError as exc:
            raise ConfigError(f"{exc}; alignment needs an inpainting model") from exc
        self.resolution = cfg.resolution or engine.resolution
        #: the training reward, one or a stack: what every algorithm trains on (see :mod:`.reward_stack`)
        self.train_reward = reward if isinstance(reward, TrainReward) else TrainReward(
            reward, weights=reward_weights, norm=reward_norm, prompt=cfg.prompt, trust_k=cfg.trust_k,
            trust_b=cfg.trust_b, trust_clamp=(cfg.trust_min, cfg.trust_max))
        self.reward_fn = self.train_reward.evaluation  # held-out scoring: a stack's proxy, each reward in ``parts``
        check_guards(cfg, gold_reward)
        self.gold_fn = None if gold_reward is None else as_reward_fn(gold_reward, trust_k=cfg.trust_k, trust_b=cfg.trust_b,
                                                                      trust_clamp=(cfg.trust_min, cfg.trust_max))

        open_data = type(self.algorithm).open_data
        data = open_data(data, cfg, cfg.seed, self.resolution)
        if eval_data is not None:
            self.eval_set = open_data(eval_data, cfg, cfg.seed + 1, self.resolution)
            self.train_indices = list(range(len(data)))
            self.eval_indices = list(range(min(cfg.eval_size, len(self.eval_set))))
        else:
            if cfg.eval_every and len(data) <= cfg.eval_size:
                raise DataError(f"the data has {len(data)} items but eval_size={cfg.eval_size} are held out; add images, "
                                "lower eval_size, pass eval data, or set eval_every=0")
            n_eval = cfg.eval_size if cfg.eval_every else 0
            self.eval_set = data
            self.train_indices = list(range(len(data) - n_eval))
            self.eval_indices = list(range(len(data) - n_eval, len(data)))
        self.data = data

        # Weights: frozen VAE/text encoder (half under mixed precision), trainable LoRA or full UNet.
        self._weights = prepare_weights(engine, cfg, acc.device)
        self._trained = engine.trainable_module  # "unet" or "transformer"
        model = engine.model
        self.ref_model = None
        if self.algorithm.needs_reference() and cfg.finetune == "full":
            import copy

            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval()
        self.sharded = cfg.fsdp
        if self.sharded:  # FSDP2 in place of DDP: the parameters become DTensor shards (align/fsdp.py)
            if acc.num_processes < 2:
                raise ConfigError(Arg("fsdp", True), f" shards the model over processes, but this run has "
                                  f"{acc.num_processes}; launch 2 or more or drop fsdp")
            from .fsdp import shard_model

            shard_model(model)
            if self.ref_model is not None:  # the frozen reference is sharded the same way
                shard_model(self.ref_model)
        self.params = trainable_parameters(model)
        self.old = OldPolicy(self.params, reshard=model.reshard if self.sharded else None)

        optimizer = torch.optim.AdamW(list(self.params.values()), lr=cfg.learning_rate,
                                      betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
        total_steps = cfg.iterations * self.batch_summary()["optimizer_steps_per_iteration"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
        if self.sharded:  # accelerate would wrap the sharded model in DDP; it prepares only the optimizer and schedule
            self.optimizer, self.lr_scheduler = acc.prepare(optimizer, scheduler)
            self.model = model
        else:
            self.model, self.optimizer, self.lr_scheduler = acc.prepare(model, optimizer, scheduler)
        self.raw_model = model
        self.guard = GradSpikeGuard(cfg.grad_spike_factor)
        self._reset_step_counters()
        self.iteration = 0
        self.baseline: list[float] | None = None
        self._stop = False
        self._run_flags: dict[str, bool] = {}  # resume / overwrite as from_pretrained checked them
        self._prompts = sampling.PromptCache(engine, cfg, acc.device, self.resolution)

    @property
    def policy(self) -> Policy:
        return Policy(model=self.model, raw=self.raw_model, params=self.params, optimizer=self.optimizer,
                      lr_scheduler=self.lr_scheduler, ref=self.ref_model)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model, reward=None, config=None, data=None, output_dir=None, *, preset: str | None = None,
                        algo: str | None = None, eval_data=None, gold_reward=None, resume: bool = False,
                        overwrite: bool = False, offline: bool | None = None, revision: str | None = None,
                        device: str = "auto", accelerator=None, progress: Callable | None = None,
                        settings: dict[str, Any] | None = None, reward_weights=None, reward_norm: str | None = None,
                        **overrides) -> "Aligner":
        """Resolve the run for ``model`` and check everything that needs no model, once, then load the pipeline
        (fp32, on the CPU; the constructor moves it) through its family's engine and build the ``Aligner``.

        The config is built from, lowest first: the defaults, ``preset``, the preset's values for the model's
        family, ``config`` (a TOML file, or an :class:`AlignConfig` to start from instead of a preset), then
        ``algo`` and ``overrides`` (any setting by name, the algorithm's included: ``clip_range=1e-3``). The
        algorithm is ``algo``, else the config's, else (resuming) the run record's, else the family's
        default. ``prefpaint train align`` is this call with flags. See :mod:`.resolve` for the checks.

        Args:
            model: hub id or diffusers folder. reward: as the constructor, or specs (``"prefpaint=RM"``,
                ``"seam"``, ``"remote=http://HOST:PORT"``; a list is a stack), resolved before the model loads.
                reward_weights / reward_norm: a stack's weights (a list or ``"1,0.5"``) and normalisation; on
                resume, the run record's unless given (another stack than the record's is refused).
                data / output_dir / eval_data / gold_reward / device / accelerator / progress: as the constructor. resume / overwrite: as :meth:`train` (checked here, before
                loading; :meth:`train` then does the same by default). settings: more settings by name, as ``overrides``
                (a dict, or ``NAME=VALUE`` texts; ``overrides`` win).

        Raises:
            ModelNotFoundError: the model is neither local, cached nor downloadable.
            NotAlignableError: the family has no training path.
            ConfigError: and DataError, InvalidInputError, OutputExistsError, CorruptFileError: see
                :func:`~prefpaint_sdk.align.resolve.plan_run`.
        """
        from ..reward.specs import load_reward
        from .resolve import parse_settings, plan_run

        cls.validate(reward=reward, data=data, output_dir=output_dir, device=device, preset=preset, algo=algo,
                     gold_reward=gold_reward, reward_weights=reward_weights, reward_norm=reward_norm, settings=settings)
        plan = plan_run(model, reward=reward, data=data, output_dir=output_dir, config=config, preset=preset, algo=algo,
                        eval_data=eval_data, gold_reward=gold_reward, resume=resume, overwrite=overwrite,
                        offline=offline, revision=revision, overrides={**parse_settings(settings), **overrides},
                        reward_weights=reward_weights, reward_norm=reward_norm)
        # Loaded on the CPU in fp32; the constructor moves and casts each component for training.
        pipe = plan.engine_cls.load(plan.model_path, device="cpu", dtype=torch.float32, model_id=plan.model_id).pipeline
        cfg = plan.config
        if isinstance(plan.reward, list):
            loaded = [load_reward(r, device=device, offline=offline, param="reward") for r in plan.reward]
        else:
            loaded = load_reward(plan.reward, device=device, offline=offline)
        reward = TrainReward(loaded, weights=plan.reward_weights, norm=plan.reward_norm, specs=plan.reward_specs,
                             prompt=cfg.prompt, trust_k=cfg.trust_k, trust_b=cfg.trust_b,
                             trust_clamp=(cfg.trust_min, cfg.trust_max))
        gold = None if plan.gold_reward is None else load_reward(plan.gold_reward, device=device, offline=offline,
                                                                 param="gold_reward")
        aligner = cls(pipe, reward, plan.config, plan.data, output_dir, eval_data=plan.eval_data, accelerator=accelerator,
                      device=device, model_id=plan.model_id, progress=progress, gold_reward=gold)
        #: what the preset set for this model's family, with the values in effect (to show the user)
        aligner.family_values = plan.family_values
        aligner._run_flags = {"resume": resume, "overwrite": overwrite}
        return aligner

    @staticmethod
    def validate(*, reward=None, data=None, output_dir=None, device: str = "auto", preset: str | None = None,
                 algo: str | None = None, gold_reward=None, reward_weights=None, reward_norm: str | None = None,
                 settings=None) -> None:
        """Every check of :meth:`from_pretrained` that needs no model and no file, in one call: the device, the
        arguments a run needs, the names (preset, algorithm, reward specs, settings) and a stack's weights and
        norm. Front ends call it first, before anything is read or loaded; :meth:`from_pretrained` does too.

        Raises:
            ConfigError: naming the parameter and the value. InvalidInputError: an unusable device.
        """
        from .resolve import check_run_args

        check_run_args(reward=reward, data=data, output_dir=output_dir, device=device, preset=preset, algo=algo,
                       gold_reward=gold_reward, reward_weights=reward_weights, reward_norm=reward_norm,
                       settings=settings)

    # ------------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def batch_summary(self) -> dict[str, int]:
        """The derived batch arithmetic of one iteration (the algorithm's)."""
        return self.algorithm.batch_summary(self.config, self.accelerator.num_processes)

    def _items_for_iteration(self, it: int) -> list:
        return self.items_for_iteration(it)

    def train(self, resume: bool | None = None, overwrite: bool | None = None) -> AlignResult:
        """Run ``config.iterations`` iterations (from the latest checkpoint when ``resume``).

        Ctrl-C finishes the current iteration, saves a checkpoint and returns (a second Ctrl-C aborts).

        Args:
            resume: continue from the newest checkpoint in ``output_dir`` (default: what
                :meth:`from_pretrained` was given, else no).
            overwrite: replace an earlier run in ``output_dir`` (its checkpoints, logs, evaluations and
                exports are removed first). Without ``resume`` or ``overwrite`` a folder that already holds a
                run is refused, so nothing is silently overwritten. Default as ``resume``.

        A new run that fails before its first iteration ends leaves no run behind: no ``align_config.json``,
        logs or evaluations, and no ``output_dir`` when it made the folder (a resumed run keeps its folder).

        Raises:
            OutputExistsError: ``output_dir`` holds a run and neither ``resume`` nor ``overwrite`` is given.
            CorruptFileError, DataError: the checkpoint to resume from is damaged or does not fit.
        """
        existed, start, self._started = self.output_dir.exists(), self.iteration, False
        try:
            return self._train(resume, overwrite)
        except BaseException:
            if self._started and not resume and self.iteration == start and self.accelerator.is_main_process:
                remove_unstarted_run(self.output_dir, ckpt.RUN_FILES, existed)
            raise

    def _train(self, resume: bool, overwrite: bool) -> AlignResult:
        cfg, acc = self.config, self.accelerator
        resume = self._run_flags.get("resume", False) if resume is None else resume
        overwrite = self._run_flags.get("overwrite", False) if overwrite is None else overwrite
        result = AlignResult()
        ckpt.open_run(self, resume=resume, overwrite=overwrite)
        guards = EvalGuards(cfg, self.output_dir, acc, self.params, self.gold_fn is not None, self.iteration)
        if cfg.eval_every and self.baseline is None:
            ev = self.evaluate(tag="start")
            self.baseline = ev.rewards
            result.evals.append(guards.record(ev, self.iteration, result.history))
        stopping = ExitStack()
        try:
            # Ctrl-C or SIGTERM (a cluster's notice) finishes the iteration and saves a checkpoint; a second one
            # aborts. Outside the main thread, stopping is the caller's.
            stopping.enter_context(interrupts.graceful(self._on_interrupt))
            while self.iteration < cfg.iterations and not self._stop and not guards.stop:
                t0 = time.perf_counter()
                metrics = self.step()
                metrics["s_per_iter"] = time.perf_counter() - t0
                self.iteration += 1
                result.history.append({"iteration": self.iteration, **metrics})
                log_metrics(self, metrics)
                if cfg.eval_every and self.iteration % cfg.eval_every == 0:
                    ev = self.evaluate()
                    result.evals.append(guards.record(ev, self.iteration, result.history))
                if (cfg.save_every and self.iteration % cfg.save_every == 0 and self.iteration < cfg.iterations
                        and not guards.stop):
                    result.checkpoint = str(self.save_checkpoint())
                if self.progress is not None:
                    self.progress(self.iteration, cfg.iterations, metrics)
                if acc.num_processes > 1:
                    # Ctrl-C may reach the processes in different iterations: stop all of them together.
                    flag = acc.reduce(torch.tensor([float(self._stop)], device=acc.device), reduction="sum")
                    self._stop = bool(flag.item() > 0)
            result.interrupted = self._stop
            result.checkpoint = str(self.save_checkpoint())
            result.best = guards.best
            if guards.stop:  # the checkpoint keeps the last weights; the Aligner (and its exports) get the best
                result.stopped_reason = guards.stopped_reason
                guards.restore_best()
        finally:
            stopping.close()
            if cfg.log_with != "none":
                acc.end_training()
        result.iterations_done = self.iteration
        return result

    def _on_interrupt(self, signum: int) -> None:
        self._stop = True
        what = "Ctrl-C" if signum == interrupts.SIGNALS[0] else "SIGTERM"
        log.warning("%s: finishing iteration %d, then saving a checkpoint (press Ctrl-C again to abort)", what,
                    self.iteration + 1)

    # ------------------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One iteration of the algorithm (every process calls it). Returns the logged metrics."""
        self._reset_step_counters()
        metrics = self.algorithm.step(self, self.iteration)
        return {**metrics, "lr": float(self.lr_scheduler.get_last_lr()[0]), **self._step_metrics()}

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, tag: str | None = None) -> EvalResult:
        """Sample the held-out pairs with fixed seeds; mean reward and WinRate against the starting model.

        With a gold reward, it is scored on the same samples; the bias audit compares each hole with its
        context ring. Runs on the main process (others wait); logs the metrics and an image grid. Sharded
        (``fsdp``), every process samples the same held-out pairs, since each forward needs all of them.
        """
        cfg, acc = self.config, self.accelerator
        result = EvalResult(rewards=[], mean_reward=float("nan"), win_rate=None)
        if (acc.is_main_process or self.sharded) and self.eval_indices:
            items, seeds = heldout_prompts(self.eval_set, self.eval_indices, cfg.seed, cfg.eval_samples)
            self.model.eval()
            result = evaluate_heldout(self._sample, self.reward_fn, items, seeds, cfg.eval_samples, baseline=self.baseline,
                                      gold_fn=self.gold_fn, ring_width=cfg.audit_ring)
            extra = {k if "/" in k else f"eval/{k}": v for k, v in self.algorithm.eval_metrics(self).items()}
            if acc.is_main_process:
                log_metrics(self, {**result.metrics(), **extra}, eval_tag=tag)
                log_eval_grid(self, result.images, cfg.eval_samples)
        acc.wait_for_everyone()
        return result

    # ------------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.output_dir / "checkpoints"

    def save_checkpoint(self) -> Path:
        """Write an atomic checkpoint of the current iteration (all processes must call it)."""
        state = {"iteration": self.iteration, "baseline": self.baseline, "model": self.model_id,
                 "config": self.config.to_dict(), "grad_guard": self.guard.state(),
                 "algorithm": self.algorithm.state_dict()}
        return ckpt.save_checkpoint(self.checkpoint_root, self.accelerator, self.params, self.old.tensors,
                                    self.optimizer, self.lr_scheduler, state, self.config.keep_checkpoints)

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> bool:
        """Restore the latest (or given) checkpoint: weights, old policy, optimizer, scheduler, RNG, position.

        Returns ``False`` when there is nothing to resume from.

        Raises:
            DataError: an incomplete checkpoint, or one saved with another number of processes.
        """
        state = ckpt.load_checkpoint(self.checkpoint_root, self.accelerator, self.params, self.old.tensors,
                                     self.optimizer, self.lr_scheduler, path)
        if state is None:
            return False
        if self.sharded:  # new values in the shards: no forward may reuse gathered ones (see OldPolicy)
            self.raw_model.reshard()
        self.iteration = state["iteration"]
        self.baseline = state["baseline"]
        self.guard.load(state["grad_guard"])
        self.algorithm.load_state_dict(state["algorithm"])
        return True

    # ------------------------------------------------------------------------------------------
    def export(self, folder) -> dict[str, Path]:
        """The run's exports under ``folder``: ``lora/`` (LoRA fine-tuning only) and ``merged/`` (always), on the
        main process (others return ``{}``). Returns what was written, by name. Sharded (``fsdp``): every
        process must call it, since they gather the weights together."""
        if self.sharded and not self.is_main:
            self.export_merged(None)  # its part of gathering the sharded weights
            return {}
        if not self.is_main:
            return {}
        out = {}
        if self.config.finetune == "lora":
            out["lora"] = self.export_lora(Path(folder) / "lora")
        out["merged"] = self.export_merged(Path(folder) / "merged")
        return out

    def export_lora(self, folder) -> Path:
        """Save the LoRA adapter for ``pipe.load_lora_weights(folder)`` (main process only)."""
        return export_lora(self.raw_model, folder, pipeline_cls=type(self.pipe), module_name=self._trained)

    def export_merged(self, folder) -> Path:
        """Save a full pipeline with the trained UNet, loadable by ``Inpainter.from_pretrained(folder)``.

        Components that were not trained keep the base model's dtype and values exactly, even when they
        ran in half precision during training (mixed precision); the UNet is saved in the base UNet's dtype.
        Sharded (``fsdp``): every process calls it (they gather the weights); only the main process writes.
        """
        from ..engines.sampler_record import sampler_record

        # the sampler it was aligned with, so scheduler="auto" samples the export the same way
        record = sampler_record(self.engine, eta=self.config.eta, algo=self.config.algo)
        model = self.raw_model
        if self.sharded:  # a whole copy on the main process, gathered by all (every process calls this)
            from .fsdp import unsharded_copy

            model = unsharded_copy(model, self.is_main)
            if model is None:
                return None
        return self._weights.export_merged(self.engine, model, folder, record=record)

