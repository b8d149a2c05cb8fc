"""The algorithm seam: what an alignment algorithm is, and what the shared loop gives it.

An algorithm is one module ``prefpaint_sdk/align/algorithms/<name>.py`` that defines

* a config dataclass, subclass of :class:`AlgoConfig`, holding only the algorithm's own settings (each a
  :func:`~prefpaint_sdk.settings.setting` with help text); the shared ones (sampling, batch sizes, optimizer,
  LoRA, schedule, evaluation, guards, trust) live in :class:`~prefpaint_sdk.align.config.AlignConfig`;
* a subclass of :class:`Algorithm` (``name`` = the module's name, ``config_cls``, ``data_kind``, its preset
  values, :meth:`Algorithm.step` and the optional hooks below);
* ``ALGORITHM = <the class>``, which the registry (:mod:`prefpaint_sdk.align.algorithms`) finds by scanning
  this package: adding an algorithm needs no edit anywhere else.

**Settings.** Users set an algorithm's settings by their flat names, like the shared ones: ``--set
clip_range=1e-3``, ``clip_range = 1e-3`` in a TOML file, ``Aligner.from_pretrained(..., clip_range=1e-3)``
or ``AlignConfig().replace(clip_range=1e-3)``. :class:`AlignConfig` keeps such names in ``algo_settings``
and :meth:`AlignConfig.resolve` builds the algorithm's config from, lowest first: the config class's
defaults, ``Algorithm.presets[preset]``, the model family's values of the preset for this algorithm (its
engine's ``training_presets[preset][name]``; :func:`~prefpaint_sdk.align.config.preset_part`), the user's values.
A name that no registered algorithm (and no shared field) has is refused at once; a name of another
algorithm is refused at :meth:`AlignConfig.resolve` ("clip_range is a setting of ppo, grpo; algo='nft'
has none"). So two algorithms may share a name (``kl_coef``), each with its own default and help. The run
record (``align_config.json``) holds ``"algo": name`` and every resolved value under ``"algo_settings"``.

**Data.** ``data_kind`` says how the algorithm gets its training data:

* ``"rollouts"``: online trajectories with per-step log-probabilities (PPO, GRPO): :meth:`TrainLoop.sample`;
* ``"samples"``: online clean samples and their rewards, no log-probabilities needed (DiffusionNFT): the
  same :meth:`TrainLoop.sample` (ignore ``log_probs``), or the engine's own inference path;
* ``"pairs"``: offline preference pairs (Diffusion-DPO): :meth:`Algorithm.open_data` reads them.

Whatever the kind, the loop's ``data`` (the result of :meth:`Algorithm.open_data`) must offer the prompt
set: ``len(data)`` and ``data.get(index, mask_seed=...) -> AlignItem`` (an input image and its mask, as
:class:`~prefpaint_sdk.align.data.AlignDataset`), because the loop splits it into training and held-out
indices and evaluates on the held-out prompts (reward, WinRate, gold reward, bias audit) for every
algorithm. The default :meth:`Algorithm.open_data` returns an ``AlignDataset``.

**One iteration** is :meth:`Algorithm.step`: get the data (roll out, sample, or draw pairs), compute the
loss, call :meth:`TrainLoop.backward` per micro-batch inside :meth:`TrainLoop.grad_sync` and
:meth:`TrainLoop.optimizer_step` per optimizer step, and return the iteration's metrics. The loop owns
everything else: seeding, the data split, the accelerator, the model (LoRA or full), the optimizer and its
LR schedule, the grad-spike guard, the old-policy snapshot, checkpoints and exact resume, evaluation, the
gold-reward and ``on_hacking`` guards, the bias audit, logs and exports.

**Exact resume.** Draw every random choice from :meth:`TrainLoop.generator` (seeded by seed, stream,
iteration and process), never from global RNG state; keep any state that outlives an iteration in
:meth:`Algorithm.state_dict` (JSON values, checkpointed with the run) or in ``loop.old`` (tensors,
checkpointed). Then a run resumed from a checkpoint continues exactly as an uninterrupted one.

**Trust weights.** :meth:`TrainLoop.trust` gives gamma per scored sample (ones when ``use_trust`` is off or
the reward has no bound). Weight each sample's loss by it; an algorithm whose loss has another unit (a
pair) says in its module docstring how it applies them (e.g. the mean of the pair's two gammas).

**Family code.** An algorithm never names a family or a pipeline: the model calls go through
``loop.engine`` (``encode_conditions``, ``encode_prompts``, ``rollout``, ``policy_step``, ``step_context``,
``train_steps``, ``sampler_kind``; see :class:`~prefpaint_sdk.engines.base.Engine`). A new kind of model
call (e.g. one denoiser prediction on forward-noised latents) is a new engine method, implemented by each
alignable family. Sampler maths (the DDIM log-prob step, the flow SDE step) live in
:mod:`prefpaint_sdk.samplers`.

**Tests** of an algorithm: one exact-value test of its loss, a short run on the tiny fixture of a DDIM family (and
of a flow family where it applies) that changes the trained weights and nothing frozen, an exact-resume test, and a
learning test (slow tier). ``tests/test_align_units.py`` runs every registered algorithm through the shared
contract (help on every setting, preset values that exist, resolve round trip, batch summary);
``tests/test_align_refactor_hash.py`` pins PPO's and GRPO's trained weights.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ...errors import ConfigError
from ...settings import Settings

if TYPE_CHECKING:  # only for the annotations below
    import torch

    from ..config import AlignConfig
    from ..data import AlignDataset, AlignItem
    from ..rewards import RewardBatch

__all__ = ["DATA_KINDS", "AlgoConfig", "Algorithm", "StepOutcome", "TrainLoop"]

DATA_KINDS = ("rollouts", "samples", "pairs")


class AlgoConfig(Settings):
    """Base of an algorithm's own settings: subclass it as a ``@dataclass`` of ``setting(...)`` fields.

    The fields must have defaults; values arrive coerced from strings (TOML, ``--set``) by
    :meth:`~prefpaint_sdk.settings.Settings.replace`.
    """

    _what: ClassVar[str] = "align"
    _names_hint: ClassVar[str] = "see `prefpaint train align --help` for the names"

    def validate(self, shared: "AlignConfig", sampler: str | None) -> None:
        """Refuse inconsistent values of this config, and of this config with the shared one.

        ``sampler`` is the family's ``Engine.sampler_kind`` ("ddim" or "flow"), or ``None`` when the family
        is not known yet. Called once per run by :meth:`AlignConfig.validate`, after the shared checks and
        after this config's floats were checked finite. Override and call ``super().validate``.

        Raises:
            ConfigError: the first inconsistency, naming both values and the fix.
        """


@dataclass(frozen=True)
class StepOutcome:
    """What :meth:`TrainLoop.optimizer_step` returns: the gradient norm before clipping (NaN when unknown)
    and whether the step was applied (``False``: a NaN or a spike; the gradients were dropped)."""

    norm: float
    applied: bool


class TrainLoop(Protocol):
    """What the shared loop (:class:`~prefpaint_sdk.align.trainer.Aligner`) gives an algorithm.

    Attributes:
        config: the shared, resolved and validated :class:`~prefpaint_sdk.align.config.AlignConfig`
            (``config.algo`` is this algorithm's name; its own settings are the algorithm's ``config``).
        accelerator: the ``accelerate.Accelerator`` (device, ``num_processes``, ``process_index``, ``gather``,
            ``reduce``, ``is_main_process``); ``accelerator.device`` is where the model lives.
        engine: the family's engine (model calls; see the module docstring).
        policy: a :class:`~prefpaint_sdk.align.policy.Policy`: ``model`` (accelerate-prepared; call it for
            training forwards so DDP syncs), ``raw`` (the unwrapped module: sampling, adapters), ``params``
            (name -> trainable parameter), ``optimizer``, ``lr_scheduler``, ``ref``.
        old: an :class:`~prefpaint_sdk.align.policy.OldPolicy`: a snapshot of the trainable tensors that
            the loop checkpoints and restores, and never changes itself. ``old.sync()`` copies the current
            weights into it; ``with old.active():`` makes the model compute with it. PPO/GRPO sample from
            it (re-synced every ``resync_every``); other algorithms may keep any snapshot there (an EMA, a
            refreshed reference), writing ``old.tensors[name]`` in place.
        data: the training data, from :meth:`Algorithm.open_data`; ``train_indices`` the indices of ``data``
            the algorithm may train on (the held-out ones are left out).
        resolution: the working size in pixels (square).
        iteration: the number of iterations done (the one being run is ``iteration``, counting from 0).
        output_dir: the run folder (an algorithm may write files under ``output_dir / name`` on the main
            process; checkpointed state belongs in :meth:`Algorithm.state_dict` instead).
    """

    config: "AlignConfig"
    accelerator: Any
    engine: Any
    policy: Any
    old: Any
    data: "AlignDataset"
    train_indices: list[int]
    resolution: int
    iteration: int
    output_dir: Any

    def generator(self, stream: int, it: int) -> "torch.Generator":
        """A CPU generator seeded by (seed, ``stream``, ``it``, process index). The loop uses streams 1, 2, 17,
        29 and 41; an algorithm picks its own numbers from 100 up (one per kind of choice)."""

    def items_for_iteration(self, it: int) -> list[tuple["AlignItem", int]]:
        """This process's ``prompts_per_iter`` prompts of iteration ``it`` from ``train_indices``, each with
        its group id, unique over all processes (a seeded epoch-permutation stream)."""

    def sample_seeds(self, it: int) -> list[int]:
        """The sampling seeds of this process's ``prompts_per_iter x samples_per_prompt`` samples."""

    def sde_window(self, it: int) -> list[int]:
        """The stochastic (stored, trainable) steps of iteration ``it`` (flow matching's SDE window; every
        step for DDIM); the same on every process."""

    def sample(self, items: list["AlignItem"], seeds: list[int], samples_per_item: int,
               window: list[int] | None = None, reduction: str = "mean", region: str = "auto") -> tuple:
        """Roll out ``samples_per_item`` samples per item with the model's current weights (wrap the call in
        ``with loop.old.active():`` to sample from the snapshot), through ``engine.rollout`` in chunks of
        ``rollout_batch_size``, no grad. ``window``: the stored steps (:meth:`sde_window`; default all);
        ``reduction``: how each step's log-probability reduces over latent elements ("mean" or "sum");
        ``region``: which elements it counts ("auto": the family's, "full" or "mask"; the rollout keeps it,
        so ``engine.policy_step`` counts the same).

        Returns:
            ``(rollout, images, masks)``: the engine's rollout (``latents``, ``next_latents``, ``log_probs``
            (n, T), ``means``, ``groups`` (n,) = index into ``items``, the conditioning, ...), the pasted-back
            images (n, 3, H, W) in [0, 1] and the hole masks (n, 1, H, W) bool.
        """

    def score(self, images: "torch.Tensor", masks: "torch.Tensor") -> "RewardBatch":
        """The training reward of pasted-back images: ``scores`` (n,) (NaN where it failed), bounds/trust."""

    def trust(self, rewards: "RewardBatch") -> "torch.Tensor":
        """Per-sample trust weights gamma (n,) float32 on the device; ones when ``use_trust`` is off or the
        reward has no bound."""

    def gather(self, tensor: "torch.Tensor") -> "torch.Tensor":
        """``tensor`` concatenated over all processes (process order), as ``accelerator.gather``."""

    def reward_metrics(self, rewards: "torch.Tensor", trust: "torch.Tensor") -> dict[str, float]:
        """The metrics every algorithm logs for its gathered rewards and trust weights: ``reward_mean``,
        ``reward_std``, ``reward_nan``, ``trust_mean``, ``trust_min``."""

    def grad_sync(self, sync: bool) -> AbstractContextManager:
        """Wrap each micro-batch's forward and :meth:`backward` in this; ``sync=False`` skips the gradient
        all-reduce under several processes (every micro-batch of an optimizer step but its last)."""

    def backward(self, loss: "torch.Tensor") -> None:
        """``accelerator.backward(loss)``. The gradients accumulate until :meth:`optimizer_step`, so divide
        ``loss`` by the number of micro-batches (and inner terms) accumulated per optimizer step first."""

    def optimizer_step(self) -> StepOutcome:
        """Clip the gradients to ``max_grad_norm``, apply the step unless the grad-spike guard refuses it,
        advance the LR schedule and zero the gradients. The loop counts the steps and skips and logs
        ``grad_norm``, ``grad_norm_max``, ``optimizer_steps`` and ``skipped_updates`` for the iteration."""

    def reference(self) -> AbstractContextManager:
        """``with loop.reference() as ref:`` the frozen starting model, for no-grad forwards (KL, DPO's
        reference): the model with its LoRA adapters disabled, or under full fine-tuning a frozen copy made
        at the start (only when :meth:`Algorithm.needs_reference` said so)."""


class Algorithm:
    """One alignment algorithm over the shared loop (see the module docstring).

    Class attributes:
        name: the registry name, equal to the module's name ("ppo").
        summary: one line for help texts and the README ("clipped policy gradient on DDIM/SDE rollouts").
        config_cls: the :class:`AlgoConfig` subclass.
        data_kind: "rollouts", "samples" or "pairs".
        presets: preset name -> values of ``config_cls`` that preset sets (the shared values are in
            :data:`prefpaint_sdk.align.config.PRESETS`); a preset that is not listed keeps the defaults. A
            model family's values of a preset for the algorithm are the family engine's (``training_presets``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    config_cls: ClassVar[type[AlgoConfig]] = AlgoConfig
    data_kind: ClassVar[str] = "rollouts"
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: AlgoConfig):
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"algorithm '{self.name}' needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config

    # --- what the loop asks before training -----------------------------------------------------
    @classmethod
    def preset_values(cls, preset: str | None, family: str | None) -> dict[str, Any]:
        """The values ``preset`` sets for this algorithm on ``family`` (the family's values over its own)."""
        from ..config import preset_part

        return {**cls.presets.get(preset or "", {}), **preset_part(preset, family, cls.name)}

    @classmethod
    def open_data(cls, data, shared: "AlignConfig", seed: int, resolution: int | None) -> "AlignDataset":
        """The training data from what the user passed as ``data`` (a folder, a manifest, or an object).

        Must return an object with the prompt interface of :class:`~prefpaint_sdk.align.data.AlignDataset`
        (``len()``, ``get(index, mask_seed=...)``, a settable ``resolution``); "pairs" algorithms return
        their own reader that has it too. Called before any model loads: check the data here (cheaply) and
        raise :class:`~prefpaint_sdk.errors.DataError` with the fix.
        """
        from ..data import AlignDataset

        if isinstance(data, AlignDataset):
            if data.resolution is None:
                data.resolution = resolution
            return data
        return AlignDataset(data, resolution, shared.mask_kinds, seed, max_bad_fraction=shared.max_bad_fraction)

    def needs_reference(self) -> bool:
        """Whether :meth:`TrainLoop.reference` is used; under full fine-tuning the loop then keeps a frozen
        copy of the starting model (memory!). LoRA needs no copy (the adapters are disabled instead)."""
        return False

    def batch_summary(self, shared: "AlignConfig", num_processes: int) -> dict[str, int]:
        """The derived batch arithmetic of one iteration, printed before training and written to the run
        record. Must hold ``optimizer_steps_per_iteration`` (the LR schedule's length is built from it)."""
        raise NotImplementedError

    # --- one iteration --------------------------------------------------------------------------
    def setup(self, loop: TrainLoop) -> None:
        """Called once after the model, optimizer and (on resume) checkpoint are in place, before the first
        evaluation; build caches here. Default: nothing."""

    def step(self, loop: TrainLoop, it: int) -> dict[str, float]:
        """Run iteration ``it`` (0-based): get its data, compute the loss, and update through
        :meth:`TrainLoop.backward` / :meth:`TrainLoop.optimizer_step`. Every process calls it.

        Returns:
            the iteration's metrics (floats; the same on every process is not needed, the main process's are
            logged). Include :meth:`TrainLoop.reward_metrics` for online algorithms; the loop adds the grad
            norms, step counts, ``lr`` and ``s_per_iter``.
        """
        raise NotImplementedError

    def eval_metrics(self, loop: TrainLoop) -> dict[str, float]:
        """Extra held-out figures logged with every evaluation (main process only, no grad), e.g. DPO's
        implicit-reward accuracy on held-out pairs; keys without a slash get ``eval/``. Default: none."""
        return {}

    # --- checkpointed state ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state that outlives an iteration (checkpointed with the run). Default: none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` on resume (an empty dict for a checkpoint written without one)."""
