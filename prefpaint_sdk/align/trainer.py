"""``Aligner``: RL fine-tuning of a diffusers inpainting pipeline toward a reward (PrefPaint / DDPO).

One iteration:

1. every M iterations, re-sync the old policy to the trained weights;
2. sample ``prompts_per_iter x samples_per_prompt`` trajectories per process from the old policy
   (DDIM, eta = 1), storing every step's latents and log-probability;
3. paste the known region back, score, gather the rewards from all processes, standardise them into
   advantages (NaN rewards dropped, clipped to +-10), and take trust weights gamma from the reward's bound;
4. for each trajectory train K random timesteps with the clipped PPO loss: each optimizer step
   accumulates the gradients of ``train_batch_size x grad_accum_steps`` trajectories x K timesteps.

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
from ..errors import ConfigError, DataError, InvalidInputError
from ..files import atomic_write_json
from . import checkpoint as ckpt
from . import sampling
from .config import AlignConfig, batch_summary, lr_lambda
from .data import AlignDataset, AlignItem
from .evaluation import EvalResult, evaluate_heldout, heldout_prompts, log_eval_grid
from .guards import EvalGuards, check_guards
from .loss import compute_advantages, grpo_advantages
from .policy import OldPolicy, add_lora, export_lora, export_merged, trainable_parameters
from .rewards import RewardBatch, as_reward_fn
from .seeding import derive_seed
from .tracking import log_metrics
from .update import GradSpikeGuard, Policy, update_policy

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


class Aligner:
    """RL alignment of an inpainting pipeline to any reward, with trust weights (see the module docstring).

    Args:
        pipeline: a diffusers inpainting pipeline of an alignable family (today SD inpainting,
            ``StableDiffusionInpaintPipeline``), or its engine; fp32 weights; it is modified in place.
        reward: a built-in reward name ("brightness"), a ``RewardModel``-like object with ``.score``, or a
            callable ``reward_fn(images, masks, masked_images) -> scores | (scores, bounds)``.
        config: an :class:`AlignConfig` (validated here).
        data: a data folder (see :mod:`prefpaint_sdk.align.data`) or an :class:`AlignDataset`.
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
                 gold_reward=None):
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

        self.engine = engine = engine_for_pipeline(pipeline)
        if not engine.alignable:
            raise engine.not_alignable()
        self.config = cfg = config.validate(acc.num_processes, sampler=engine.sampler_kind)
        #: "ppo" or "grpo": the config's, or the family's default
        self.algo = cfg.algo or engine.default_algo
        self.model_id = model_id
        self.progress = progress
        self.pipe = pipeline = engine.pipeline
        pipeline.set_progress_bar_config(disable=True)
        try:
            engine.check_model(model_id)  # e.g. a 9-channel inpainting UNet, a Fill transformer
        except InvalidInputError as exc:
            raise ConfigError(f"{exc}; alignment needs an inpainting model") from exc
        self.resolution = cfg.resolution or engine.resolution
        self.reward_fn = as_reward_fn(reward, trust_k=cfg.trust_k, trust_b=cfg.trust_b,
                                      trust_clamp=(cfg.trust_min, cfg.trust_max))
        check_guards(cfg, gold_reward)
        self.gold_fn = None if gold_reward is None else as_reward_fn(gold_reward, trust_k=cfg.trust_k, trust_b=cfg.trust_b,
                                                                      trust_clamp=(cfg.trust_min, cfg.trust_max))

        data = _dataset(data, cfg, cfg.seed, self.resolution)
        if eval_data is not None:
            self.eval_set = _dataset(eval_data, cfg, cfg.seed + 1, self.resolution)
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
        wdtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
        # The merged export keeps the base model's dtype for what was not trained: remember the base weights
        # of every component that the cast below would round (a CPU copy; nothing when no cast happens).
        # The frozen parts: the VAE and the text encoder(s) (SDXL has two).
        self._frozen = [n for n in ("vae", "text_encoder", "text_encoder_2") if getattr(pipeline, n, None) is not None]
        self._trained = tm = engine.trainable_module  # "unet" or "transformer"
        self._base_dtypes = {n: getattr(pipeline, n).dtype for n in (*self._frozen, tm)}
        cast = self._frozen + ([tm] if cfg.finetune == "lora" else [])
        self._base_states = {n: {k: v.detach().to("cpu", copy=True) for k, v in getattr(pipeline, n).state_dict().items()}
                             for n in cast if self._base_dtypes[n] != wdtype}
        for name in self._frozen:  # eval: no dropout in frozen encoders (a T5 built from a config trains)
            getattr(pipeline, name).requires_grad_(False).eval().to(acc.device, dtype=wdtype)
        model = engine.model
        if cfg.finetune == "lora":
            model.to(acc.device, dtype=wdtype)
            add_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets or engine.lora_targets)
        else:
            model.requires_grad_(True).to(acc.device, dtype=torch.float32)
        if cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        self.params = trainable_parameters(model)
        self.old = OldPolicy(self.params)
        self.ref_model = None
        if cfg.kl_coef > 0 and cfg.finetune == "full":
            import copy

            self.ref_model = copy.deepcopy(model).requires_grad_(False).eval()

        optimizer = torch.optim.AdamW(list(self.params.values()), lr=cfg.learning_rate,
                                      betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay, eps=cfg.adam_eps)
        total_steps = cfg.iterations * batch_summary(cfg, acc.num_processes)["optimizer_steps_per_iteration"]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total_steps))
        self.model, self.optimizer, self.lr_scheduler = acc.prepare(model, optimizer, scheduler)
        self.raw_model = model
        self.guard = GradSpikeGuard(cfg.grad_spike_factor)
        self.iteration = 0
        self.baseline: list[float] | None = None
        self._stop = False
        self._prompts = sampling.PromptCache(engine, cfg, acc.device, self.resolution)

    # The names of the UNet era, kept for evaluation.py and users' scripts (the model may be a transformer).
    @property
    def unet(self):
        return self.model

    @property
    def raw_unet(self):
        return self.raw_model

    @property
    def ref_unet(self):
        return self.ref_model

    @property
    def policy(self) -> Policy:
        return Policy(model=self.model, raw=self.raw_model, params=self.params, optimizer=self.optimizer,
                      lr_scheduler=self.lr_scheduler, ref=self.ref_model)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model, reward, config: AlignConfig, data, output_dir, *, offline: bool | None = None,
                        revision: str | None = None, **kwargs) -> "Aligner":
        """Load the pipeline to align from a hub id or folder (fp32, DDIM) through its family's engine and
        build an ``Aligner``.

        Raises:
            ModelNotFoundError: the model is neither local, cached nor downloadable.
            NotAlignableError: the model's family has no rollout yet (SDXL, FLUX Fill).
        """
        import json

        from ..engines import engine_class, family_of_folder
        from ..engines.sd import check_ddim_steps
        from ..hub import resolve_model
        from ..state import check_pipeline_folder

        # Everything cheap first: the data (headers only), then the model's own configs, then the weights.
        data = _dataset(data, config, config.seed, config.resolution)
        if kwargs.get("eval_data") is not None:
            kwargs["eval_data"] = _dataset(kwargs["eval_data"], config, config.seed + 1, config.resolution)
        from .reward_specs import load_reward, resolve_reward

        # the rewards' names and folders (no weights read), so a bad one fails before the pipeline loads
        check_guards(config, kwargs.get("gold_reward"))
        reward = resolve_reward(reward, offline=offline)
        if kwargs.get("gold_reward") is not None:
            kwargs["gold_reward"] = resolve_reward(kwargs["gold_reward"], offline=offline, flag="--gold-reward")
        resolved = resolve_model(model, offline=offline, revision=revision)
        engine_cls = engine_class(family_of_folder(resolved.path, resolved.model_id))
        if not engine_cls.alignable:
            raise engine_cls.not_alignable()
        config.validate(sampler=engine_cls.sampler_kind)  # eta for DDIM, the SDE window for flow matching
        scheduler_config = resolved.path / "scheduler" / "scheduler_config.json"
        if engine_cls.sampler_kind == "ddim" and scheduler_config.is_file():  # DDIM steps must fit the scheduler
            check_ddim_steps(config.num_steps, json.loads(scheduler_config.read_text()))
        check_pipeline_folder(resolved.path)
        # Loaded on the CPU in fp32; the constructor moves and casts each component for training.
        pipe = engine_cls.load(resolved.path, device="cpu", dtype=torch.float32, model_id=resolved.model_id).pipeline
        device = kwargs.get("device", "auto")
        reward = load_reward(reward, device=device, offline=offline)
        if kwargs.get("gold_reward") is not None:
            kwargs["gold_reward"] = load_reward(kwargs["gold_reward"], device=device, offline=offline, flag="--gold-reward")
        return cls(pipe, reward, config, data, output_dir, model_id=resolved.model_id, **kwargs)

    # ------------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def batch_summary(self) -> dict[str, int]:
        """The derived batch arithmetic of one iteration."""
        return batch_summary(self.config, self.accelerator.num_processes)

    def _items_for_iteration(self, it: int) -> list[tuple[AlignItem, int]]:
        """This process's (item, group id) prompts of iteration ``it``: a seeded epoch-permutation stream."""
        acc = self.accelerator
        return sampling.items_for_iteration(self.data, self.train_indices, self.config, it, acc.process_index,
                                            acc.num_processes)

    # ------------------------------------------------------------------------------------------
    def _sample(self, items: list[AlignItem], seeds: list[int], samples_per_item: int,
                window: list[int] | None = None) -> tuple:
        """Roll out ``samples_per_item`` trajectories per item with the current weights (for flow matching,
        SDE steps on ``window``, default all).

        Returns the concatenated rollout, and per sample the pasted-back images and the masks (pixel size).
        """
        return sampling.sample(self.engine, self.raw_model, items, seeds, samples_per_item, cfg=self.config,
                               resolution=self.resolution, device=self.accelerator.device, prompts=self._prompts,
                               window=window, autocast=self.accelerator.autocast)

    def _score(self, images, masks) -> RewardBatch:
        """Score pasted-back images; the masked prompt image is the input with the hole black."""
        return sampling.score(self.reward_fn, images, masks)

    # ------------------------------------------------------------------------------------------
    def train(self, resume: bool = False, overwrite: bool = False) -> AlignResult:
        """Run ``config.iterations`` iterations (from the latest checkpoint when ``resume``).

        Ctrl-C finishes the current iteration, saves a checkpoint and returns (a second Ctrl-C aborts).

        Args:
            resume: continue from the newest checkpoint in ``output_dir``.
            overwrite: replace an earlier run in ``output_dir`` (its checkpoints, logs, evaluations and
                exports are removed first). Without ``resume`` or ``overwrite`` a folder that already holds a
                run is refused, so nothing is silently overwritten.

        Raises:
            OutputExistsError: ``output_dir`` holds a run and neither ``resume`` nor ``overwrite`` is given.
            CorruptFileError, DataError: the checkpoint to resume from is damaged or does not fit.
        """
        cfg, acc = self.config, self.accelerator
        result = AlignResult()
        found = ckpt.check_run_folder(self.output_dir, resume=resume, overwrite=overwrite)
        # Every process has looked before anything is removed or written: otherwise a slower rank would find
        # the main process's align_config.json and refuse the folder as a used one.
        acc.wait_for_everyone()
        if found and overwrite:
            if acc.is_main_process:
                ckpt.remove_run_files(self.output_dir, found)
            acc.wait_for_everyone()
        if resume:
            self.load_checkpoint()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.output_dir / "align_config.json", {"model": self.model_id, **cfg.to_dict(),
                                                                      "batch": self.batch_summary()})
        if cfg.log_with != "none":
            acc.init_trackers("align", config={k: v for k, v in cfg.to_dict().items() if isinstance(v, (int, float, str, bool))})
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
        """One iteration: sample from the old policy, score, and update. Returns the logged metrics."""
        cfg, acc = self.config, self.accelerator
        it = self.iteration
        if it % cfg.resync_every == 0:
            self.old.sync()
        self.model.eval()
        items = self._items_for_iteration(it)
        n_local = cfg.prompts_per_iter * cfg.samples_per_prompt
        base = acc.process_index * n_local
        seeds = [derive_seed(cfg.seed, 1, it, base + k) for k in range(n_local)]
        window = sampling.sde_window(self.engine, cfg, it)
        with self.old.active():
            ro, images, masks = self._sample([i for i, _ in items], seeds, cfg.samples_per_prompt, window=window)
        rb = self._score(images, masks)

        # Advantages over the batch gathered from every process (same on all of them), then our slice.
        dev = acc.device
        rewards = acc.gather(rb.scores.to(dev).float().contiguous())
        group_ids = torch.tensor([items[int(g)][1] for g in ro.groups], device=dev)
        all_groups = acc.gather(group_ids)
        extra = {}
        if self.algo == "grpo":
            ga = grpo_advantages(rewards, all_groups, cfg.adv_std, cfg.adv_clip)
            adv_all, valid_all = ga.advantages, ga.valid
            extra["zero_std_ratio"] = ga.zero_std_ratio
        else:
            adv_all, valid_all = compute_advantages(rewards, all_groups, cfg.adv_mode, cfg.adv_clip)
        sl = slice(acc.process_index * n_local, (acc.process_index + 1) * n_local)
        adv, valid = adv_all[sl], valid_all[sl]
        trust = rb.trust if (cfg.use_trust and rb.trust is not None) else torch.ones(n_local)
        trust = trust.to(dev).float()
        all_trust = acc.gather(trust.contiguous())

        train_metrics = update_policy(self.engine, self.policy, acc, cfg, ro, adv, valid, trust, it, self.guard)
        finite = rewards[torch.isfinite(rewards)]
        out = {
            "reward_mean": float(finite.mean()) if finite.numel() else float("nan"),
            "reward_std": float(finite.std(unbiased=False)) if finite.numel() else float("nan"),
            "reward_nan": float((~torch.isfinite(rewards)).sum()),
            "trust_mean": float(all_trust.mean()),
            "trust_min": float(all_trust.min()),
            "lr": float(self.lr_scheduler.get_last_lr()[0]),
            **extra,
            **train_metrics,
        }
        if self.algo == "grpo" and acc.is_main_process and it == 0:
            log.info("GRPO: %d groups of %d per iteration; stochastic steps %s", len(all_groups) // cfg.samples_per_prompt,
                     cfg.samples_per_prompt, window)
        return out

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, tag: str | None = None) -> EvalResult:
        """Sample the held-out pairs with fixed seeds; mean reward and WinRate against the starting model.

        With a gold reward, it is scored on the same samples; the bias audit compares each hole with its
        context ring. Runs on the main process (others wait); logs the metrics and an image grid.
        """
        cfg, acc = self.config, self.accelerator
        result = EvalResult(rewards=[], mean_reward=float("nan"), win_rate=None)
        if acc.is_main_process and self.eval_indices:
            items, seeds = heldout_prompts(self.eval_set, self.eval_indices, cfg.seed, cfg.eval_samples)
            self.unet.eval()
            result = evaluate_heldout(self._sample, self.reward_fn, items, seeds, cfg.eval_samples, baseline=self.baseline,
                                      gold_fn=self.gold_fn, ring_width=cfg.audit_ring)
            log_metrics(self, result.metrics(), eval_tag=tag)
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
                 "config": self.config.to_dict(), "grad_guard": self.guard.state()}
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
        self.iteration = state["iteration"]
        self.baseline = state["baseline"]
        self.guard.load(state["grad_guard"])
        return True

    # ------------------------------------------------------------------------------------------
    def export_lora(self, folder) -> Path:
        """Save the LoRA adapter for ``pipe.load_lora_weights(folder)`` (main process only)."""
        return export_lora(self.raw_model, folder, pipeline_cls=type(self.pipe), module_name=self._trained)

    def export_merged(self, folder) -> Path:
        """Save a full pipeline with the trained UNet, loadable by ``Inpainter.from_pretrained(folder)``.

        Components that were not trained keep the base model's dtype and values exactly, even when they
        ran in half precision during training (mixed precision); the UNet is saved in the base UNet's dtype.
        """
        import copy

        frozen = {}
        for name in self._frozen:
            if name in self._base_states:
                module = copy.deepcopy(getattr(self.pipe, name)).to("cpu", self._base_dtypes[name])
                module.load_state_dict(self._base_states[name])
                frozen[name] = module
        return export_merged(self.pipe, self.raw_model, folder, dtype=self._base_dtypes[self._trained],
                             unet_base_state=self._base_states.get(self._trained), module_name=self._trained,
                             **frozen)


def _dataset(data, cfg: AlignConfig, seed: int, resolution: int | None) -> AlignDataset:
    """``data`` as an :class:`AlignDataset` at ``resolution`` (a path is scanned and checked here)."""
    if not isinstance(data, AlignDataset):
        return AlignDataset(data, resolution, cfg.mask_kinds, seed)
    if data.resolution is None:
        data.resolution = resolution
    return data
