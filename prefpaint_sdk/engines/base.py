"""The engine protocol: what the toolkit needs from one family of diffusers inpainting models.

An engine wraps one loaded diffusers pipeline and answers, for its family:

* ``family``: the name users see (``"sd"``, ``"sdxl"``, ``"flux-fill"``) and the diffusers class it wraps;
* :attr:`Engine.resolution`: the working size, read from the model's own config, and
  :attr:`Engine.size_multiple`: what both sides of the model's input must be a multiple of;
* defaults for steps, guidance and the scheduler, and which knobs the family has (``eta``, a negative prompt);
* :meth:`Engine.load`: from a folder, with device, dtype and memory options (CPU offload, VAE tiling);
* :meth:`Engine.sample`: one batched pipeline call with one generator per candidate;
* :attr:`Engine.trainable_module` and :attr:`Engine.lora_targets` for alignment, and :meth:`Engine.rollout`
  (trajectories with per-step log-probabilities) where the family can be aligned.

Adding a family is one module here (a subclass of :class:`Engine` registered in
:data:`prefpaint_sdk.engines.FAMILIES`) plus one tiny fixture in :mod:`prefpaint_sdk.testing`.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..devices import quiet_loading, resolve_device, resolve_dtype
from ..errors import Arg, InvalidInputError, ModelNotFoundError
from ..validation import at_least, bad_value

__all__ = ["Engine", "OFFLOAD_MODES", "SCHEDULERS", "NotAlignableError", "vae_factor", "check_scheduler"]

log = logging.getLogger(__name__)

SCHEDULERS = ("auto", "native", "ddim")
"""The sampler: ``native`` keeps the model's shipped scheduler and its pipeline's defaults (what a diffusers
user gets); ``ddim`` is the alignment sampler (DDIM on the model's own noise schedule, η = 1) of the families
that have one; ``auto`` is ``native`` for a base model and ``ddim`` for a model aligned with DDIM (PrefPaint,
or an export that records it: see :mod:`.sampler_record`)."""

OFFLOAD_MODES = ("none", "model", "sequential")
"""CPU offload: ``none`` keeps the whole pipeline on the device; ``model`` moves each model there only while
it runs (diffusers' ``enable_model_cpu_offload``); ``sequential`` moves each layer (``enable_sequential_cpu_offload``,
slowest, least memory)."""

StepFn = Callable[[], None]
PreviewFn = Callable[[int, list], None]


class NotAlignableError(InvalidInputError):
    """The family has no RL rollout (yet): it can sample but not be aligned."""


class Engine:
    """One family of diffusers inpainting pipelines. Subclasses set the class attributes and, where the
    family differs, override :meth:`_prepare`, :meth:`_call_kwargs` or :meth:`rollout`.

    Attributes:
        pipeline: the loaded diffusers pipeline.
    """

    family: ClassVar[str] = ""
    pipeline_class_name: ClassVar[str] = ""
    default_steps: ClassVar[int] = 50
    default_guidance: ClassVar[float] = 7.5
    default_eta: ClassVar[float | None] = None  # None: the family's sampler has no eta
    has_negative_prompt: ClassVar[bool] = True
    alignable: ClassVar[bool] = False  # whether the Aligner can train this family (it needs :meth:`rollout`)
    trainable_module: ClassVar[str] = "unet"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")
    load_kwargs: ClassVar[dict[str, Any]] = {}
    default_strength: ClassVar[float] = 1.0  # the pipeline's own ``strength`` default
    guidance_kind: ClassVar[str] = "cfg"  # "cfg", "true-cfg" (a second pass with a negative prompt) or "distilled"
    # published hub id (named in :mod:`prefpaint_sdk.hub`, the one place of ids and aliases) -> working size, for
    # model_info when the id's config files are out of reach
    hub_models: ClassVar[dict[str, int]] = {}
    published_size_multiple: ClassVar[int] = 8  # size multiple of the published models (no files at hand)

    @classmethod
    def default_values(cls) -> dict[str, Any]:
        """The family's defaults: ``steps``, ``guidance_scale``, ``eta`` (``None``: no eta) and ``strength``."""
        return dict(steps=cls.default_steps, guidance_scale=cls.default_guidance, eta=cls.default_eta,
                    strength=cls.default_strength)

    @classmethod
    def defaults_for(cls, scheduler: str, configs=None, record: dict | None = None) -> dict[str, Any]:
        """:meth:`default_values` under ``scheduler`` ("native" or "ddim", as ``auto`` resolved it), from the
        config files alone (``model_info``); ``record``: the folder's :mod:`.sampler_record`."""
        return cls.default_values()

    @classmethod
    def read_resolution(cls, configs) -> int:
        """The working size in pixels from the model's configs (a :class:`.info.Configs`: files or a pipeline)."""
        raise NotImplementedError

    @classmethod
    def read_size_multiple(cls, configs) -> int:
        """What both sides of the input must be a multiple of, from the configs (the VAE's factor by default)."""
        return vae_factor(configs)

    default_scheduler: ClassVar[str] = "native"  # what scheduler="auto" means without a folder (a built pipeline)
    ddim_sampler: ClassVar[bool] = False  # whether scheduler="ddim" applies (the DDIM-aligned families)
    ddim_models: ClassVar[tuple[str, ...]] = ()  # published ids aligned with DDIM: "auto" samples them with ddim

    def __init__(self, pipeline, scheduler: str = "auto"):
        self.pipeline = pipeline
        self.offload = "none"  # set by :meth:`load`
        scheduler = check_scheduler(scheduler)
        self.scheduler_mode = self.default_scheduler if scheduler == "auto" else scheduler
        if self.scheduler_mode == "ddim" and not self.ddim_sampler:
            raise bad_value("scheduler", f"the {self.family} family samples with its own scheduler only; use ",
                                Arg("scheduler", "native"), " (or auto)")
        self._prepare()
        pipeline.set_progress_bar_config(disable=True)

    # --- loading -----------------------------------------------------------------------------------
    @classmethod
    def pipeline_class(cls):
        """The diffusers pipeline class this family wraps (imported on first use)."""
        import diffusers

        return getattr(diffusers, cls.pipeline_class_name)

    @classmethod
    def load(cls, path: str | Path, *, device="auto", dtype="auto", offload: str = "none", vae_tiling: bool = False,
             model_id: str | None = None, scheduler: str = "auto") -> "Engine":
        """Load the pipeline from a local diffusers folder (safetensors only).

        Args:
            path: a folder with ``model_index.json``.
            device / dtype: see :func:`~prefpaint_sdk.devices.resolve_device` and ``resolve_dtype``.
            offload: one of :data:`OFFLOAD_MODES`; offloading needs an accelerator device.
            vae_tiling: decode (and encode) in tiles, for large images on small GPUs.
            model_id: the name used in error messages (default: the folder).
            scheduler: one of :data:`SCHEDULERS`.

        Raises:
            InvalidInputError: a bad offload mode, offload on CPU, or a folder of another family.
            ModelNotFoundError: the folder's weights cannot be loaded.
        """
        offload = check_offload(offload)
        scheduler = check_scheduler(scheduler)
        dev = resolve_device(device)
        if offload != "none" and dev.type == "cpu":
            raise bad_value("offload", f"offload '{offload}' moves models between CPU and an accelerator, but the "
                                       "device is cpu; use ", Arg("offload", "none"), " (or a cuda device)")
        dt = resolve_dtype(dtype, dev)
        name = model_id or str(path)
        record = None
        if scheduler == "auto":  # native for a base model, ddim for one aligned with DDIM (.sampler_record)
            from .sampler_record import auto_scheduler

            scheduler, record = auto_scheduler(cls, path, model_id)
        try:
            with warnings.catch_warnings(), quiet_loading():
                # diffusers >= 0.42 renames torch_dtype to dtype; the old name still works everywhere.
                warnings.simplefilter("ignore", FutureWarning)
                pipe = cls.pipeline_class().from_pretrained(path, torch_dtype=dt, use_safetensors=True,
                                                            **cls.load_kwargs, **cls.load_components(path))
        except (OSError, EnvironmentError) as exc:
            raise ModelNotFoundError(f"could not load '{name}' from '{path}': {exc}") from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"'{name}' is not a loadable {cls.family} inpainting pipeline: {exc}") from exc
        engine = cls(pipe, scheduler=scheduler)
        if record is not None and record.get("eta") is not None and engine.scheduler_mode == "ddim":
            engine.default_eta = float(record["eta"])  # the eta it was aligned with
        engine.check_model(name)
        if offload == "model":
            pipe.enable_model_cpu_offload(device=dev)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=dev)
        else:
            pipe.to(dev)
        if vae_tiling:
            pipe.vae.enable_tiling()
        engine.offload = offload
        return engine

    @classmethod
    def load_components(cls, path: str | Path) -> dict[str, Any]:
        """Components built here instead of by ``from_pretrained`` (none by default; e.g. a processor whose
        stock class needs a package the family does not)."""
        return {}

    def _prepare(self) -> None:
        """Family-specific set-up after loading (e.g. the sampling scheduler)."""

    def check_model(self, model_id: str) -> None:
        """Raise ``InvalidInputError`` when the loaded weights are not an inpainting model of this family."""

    # --- what the model is ---------------------------------------------------------------------------
    @property
    def model(self):
        """The denoiser (``unet`` or ``transformer``): what alignment trains."""
        return getattr(self.pipeline, self.trainable_module)

    @property
    def resolution(self) -> int:
        """The working size in pixels, from the model's own config (:meth:`read_resolution`)."""
        from .info import PipelineConfigs

        return int(self.read_resolution(PipelineConfigs(self.pipeline)))

    @property
    def size_multiple(self) -> int:
        """Both sides of the model's input are multiples of this (8 for SD/SDXL, 16 for FLUX at real size)."""
        from .info import PipelineConfigs

        return int(self.read_size_multiple(PipelineConfigs(self.pipeline)))

    @property
    def device(self):
        """Where the model computes (the accelerator when offloading)."""
        if self.offload != "none":
            return self.pipeline._execution_device
        return self.model.device

    @property
    def dtype(self):
        return self.model.dtype

    @property
    def max_steps(self) -> int:
        """The most sampling steps the family's scheduler supports."""
        return int(self.pipeline.scheduler.config.get("num_train_timesteps", 1000))

    def check_steps(self, steps) -> int:
        """``steps`` if the scheduler supports it, else an ``InvalidInputError`` naming the limit."""
        return self.check_scheduler_steps(steps, self.pipeline.scheduler.config)

    @classmethod
    def check_scheduler_steps(cls, steps, config: dict) -> int:
        """:meth:`check_steps` from a scheduler config alone (``scheduler/scheduler_config.json``), so it runs
        before any weights load."""
        steps = at_least("steps", steps, 1)
        limit = int(dict(config).get("num_train_timesteps", 1000))
        if steps > limit:
            raise bad_value("steps", f"steps must be ≤ {limit} for this model's scheduler, got {steps}")
        return steps

    def describe(self) -> dict[str, Any]:
        """The facts a sidecar records about the engine."""
        return dict(family=self.family, resolution=self.resolution, scheduler=type(self.pipeline.scheduler).__name__,
                    sampler=self.scheduler_mode)

    # --- sampling ------------------------------------------------------------------------------------
    def check_knobs(self, *, negative_prompt: str, eta: float | None) -> None:
        """Refuse a knob the family lacks, naming it, before anything is loaded or sampled."""
        if negative_prompt and not self.has_negative_prompt:
            raise bad_value("negative_prompt", f"the {self.family} family takes no negative prompt; leave it empty")
        if eta is not None and self.default_eta is None:
            raise bad_value("eta", f"the {self.family} family's sampler has no eta; leave it unset")

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        """The guidance the pipeline is called with. With classifier-free guidance, equal prompts make the
        guided and unguided predictions identical, so guidance is skipped (1.0, half the cost)."""
        return guidance_scale if prompt != negative_prompt else 1.0

    def passes_per_step(self, guidance_used: float) -> int:
        """Denoiser evaluations per candidate and step: two under classifier-free guidance (the pipeline's own
        test, guidance above 1), else one."""
        return 2 if guidance_used > 1 else 1

    def sample(self, image, mask, *, prompt: str, negative_prompt: str, generators: list, steps: int,
               guidance_scale: float, eta: float | None, strength: float, width: int, height: int,
               on_step: StepFn | None = None, preview_steps=(), on_preview: PreviewFn | None = None) -> list:
        """One batched pipeline call: candidate k uses ``generators[k]``; returns PIL images at (width, height).

        One generator and one copy of each input per candidate: the pipeline then draws every candidate's
        noise from its own generator, in the same order a single call does, so candidate k equals a lone
        call with that generator. After each step numbered in ``preview_steps`` (1-based), ``on_preview(step,
        images)`` gets the scheduler's prediction of the final images (x0) decoded as PIL images; the sampling
        itself is unchanged by it.
        """
        import torch

        n = len(generators)
        cfg = self.guidance_used(guidance_scale, prompt, negative_prompt)
        wanted = set(preview_steps) if on_preview is not None else set()
        scheduler = self.pipeline.scheduler
        real_step = scheduler.step
        x0: list = [None]

        # wraps: the pipeline reads step's signature to decide whether to pass eta and the generators
        @functools.wraps(real_step)
        def step(model_output, timestep, sample, *args, **kw):
            out = real_step(model_output, timestep, sample, *args, **kw)
            x0[0] = self.predicted_x0(scheduler, out, model_output, sample)
            return out

        def callback(pipe, i, t, kwargs):
            if on_step is not None:
                on_step()
            if i + 1 in wanted and x0[0] is not None:
                on_preview(i + 1, self.decode_preview(x0[0], height, width))
            return kwargs

        kwargs = self._call_kwargs(prompt=prompt, negative_prompt=negative_prompt, n=n, guidance=cfg, eta=eta)
        if wanted:  # only this call's scheduler instance, restored below: the class is never patched
            scheduler.step = step
        try:
            with torch.inference_mode():
                out = self.pipeline(
                    image=[image] * n, mask_image=[mask] * n, height=height, width=width, num_inference_steps=steps,
                    strength=strength, generator=list(generators), output_type="pil",
                    callback_on_step_end=callback, **kwargs,
                )
        finally:
            if wanted:
                del scheduler.step
        return list(out.images)

    def predicted_x0(self, scheduler, out, model_output, sample):
        """The scheduler's prediction of the clean latents at this step (DDIM's ``pred_original_sample``)."""
        return out[1] if isinstance(out, tuple) else out.pred_original_sample

    def decode_preview(self, latents, height: int, width: int) -> list:
        """Predicted latents as PIL images, decoded as the pipeline decodes its final ones."""
        pipe = self.pipeline
        vae = pipe.vae
        images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return pipe.image_processor.postprocess(images.float(), output_type="pil")

    def _call_kwargs(self, *, prompt: str, negative_prompt: str, n: int, guidance: float, eta) -> dict[str, Any]:
        """The family's text and guidance arguments of the pipeline call."""
        kw = dict(prompt=[prompt] * n, guidance_scale=guidance)
        if self.has_negative_prompt:
            # No negative prompt is passed as none, as a diffusers user does: SDXL then zeroes its negative
            # embeddings (force_zeros_for_empty_prompt); SD encodes "" either way.
            kw["negative_prompt"] = [negative_prompt] * n if guidance > 1 and negative_prompt else None
        if self.default_eta is not None:
            kw["eta"] = self.default_eta if eta is None else eta
        return kw

    # --- alignment -----------------------------------------------------------------------------------
    # What the Aligner needs from a family (it never reads a pipeline's internals itself):
    # encode_conditions -> rollout (chunks joined by cat_rollouts) -> policy_step on stored steps.
    default_algo: ClassVar[str] = "ppo"  # the RL algorithm an AlignConfig with algo="" uses
    # The family's values of the named training presets (align/config.py's PRESETS): preset -> "common" (the
    # shared AlignConfig settings) or an algorithm's name -> values over the preset's own. A preset named here
    # that align does not define is the family's own preset (listed with the others, for any model).
    training_presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    sampler_kind: ClassVar[str] = "ddim"  # "ddim" (eta > 0 needed) or "flow" (sde_noise / sde_window)
    # the components alignment never trains (those the pipeline has): frozen, and cast under mixed precision
    frozen_modules: ClassVar[tuple[str, ...]] = ("vae", "text_encoder", "text_encoder_2")

    # Where a stored step's log-probability counts: "full" (every latent element) or "mask" (the hole's latent
    # elements only); the first is what logprob_region="auto" means. The fill families keep "full" first, as
    # they trained before the setting existed; the latent-blend families have "mask" only.
    logprob_regions: ClassVar[tuple[str, ...]] = ("full", "mask")

    @classmethod
    def check_logprob_region(cls, region: str) -> str:
        """``region`` ("auto", "full" or "mask") resolved for the family; a value it cannot take is refused."""
        if region == "auto":
            return cls.logprob_regions[0]
        if region not in cls.logprob_regions:
            raise bad_value("logprob_region", f"logprob_region must be auto or one of "
                                              f"{', '.join(cls.logprob_regions)} for the {cls.family} family, got {region!r}")
        return region

    def frozen_parts(self) -> list[str]:
        """The names of this pipeline's frozen components (of :attr:`frozen_modules`, those it has)."""
        return [n for n in self.frozen_modules if getattr(self.pipeline, n, None) is not None]

    def lora_modules(self, model) -> list[str]:
        """The peft ``target_modules`` of ``model`` (the trainable module) for LoRA: :attr:`lora_targets`; a
        family whose module names need the model's own layout (a layer count) adds them here."""
        return list(self.lora_targets)

    def rebuild_pipeline(self, trained, **components):
        """A new pipeline of this family with ``trained`` as its :attr:`trainable_module` and the given
        ``components`` in place of the pipeline's (the merged export passes the frozen parts in the base
        model's dtype); the rest is the pipeline's own."""
        pipe = self.pipeline
        return type(pipe)(**{**pipe.components, **components, self.trainable_module: trained})

    def encode_conditions(self, images, masks, height: int, width: int, device=None, dtype=None):
        """The per-(image, mask) inputs of :meth:`rollout`, encoded once per group."""
        raise self.not_alignable()

    def encode_prompts(self, prompt: str, negative_prompt: str, n: int, guidance_scale: float, device,
                       size: tuple[int, int] | None = None):
        """``(prompt_embeds, negative_embeds or None)`` for ``n`` samples, as the pipeline builds them."""
        raise self.not_alignable()

    def rollout(self, conditions, groups, generators, **kwargs):
        """Trajectories with per-step log-probabilities for RL (see :mod:`.ddim_rollout`, :mod:`.flow_rollout`).

        Common keyword arguments: ``num_steps``, ``guidance_scale``, ``prompt_embeds``, ``negative_embeds``,
        ``model`` (the policy to sample with), ``reduction``, and the sampler's noise: ``eta`` (DDIM) or
        ``sde_noise`` and ``window`` (flow matching); a family ignores the noise arguments of the other kind;
        ``logprob_region`` ("full" or "mask", resolved by :meth:`check_logprob_region`), kept in the rollout so
        :meth:`policy_step` counts the same elements.
        """
        raise self.not_alignable()

    def cat_rollouts(self, chunks: list):
        """Join rollouts of the same schedule along the sample axis."""
        raise self.not_alignable()

    def train_steps(self, num_steps: int, window_size: int, window_start: int) -> list[int]:
        """The schedule indices a rollout stores for training (every step for DDIM)."""
        return list(range(num_steps))

    def step_context(self, num_steps: int, device):
        """What :meth:`policy_step` needs that is the same for every step (DDIM: the scheduler); built once."""
        return None

    def policy_step(self, model, rollout, b, tidx, *, context=None, guidance_scale: float = 1.0, eta: float = 1.0,
                    sde_noise: float = 0.7, reduction: str = "mean"):
        """Re-evaluate stored steps under ``model`` (with grad): trajectories ``b`` (B,) at stored step
        indices ``tidx`` (B,). Returns an object with ``log_prob`` (B,), ``mean`` and ``std``."""
        raise self.not_alignable()

    # Training on the forward process (DiffusionNFT, Diffusion-DPO; see .forward_training): a DDIM family
    # predicts noise (or v), a flow family velocity. A family of another parameterisation overrides these.
    def clean_batch(self, conditions, groups, images, text, *, num_steps: int, ring: int | None = 16,
                    guidance_scale: float = 1.0, latents=None):
        """Clean images (B, 3, H, W) in [0, 1] encoded for forward-process training (a
        :class:`~.forward_training.CleanBatch`); ``conditions`` from :meth:`encode_conditions`, ``text`` the
        first value of :meth:`encode_prompts` for B samples; ``latents`` a rollout's ``final_latents``."""
        if not self.alignable:
            raise self.not_alignable()
        from .forward_training import clean_batch

        kind = "flow" if self.sampler_kind == "flow" else "eps"
        return clean_batch(self.pipeline, kind, conditions, groups, images, text, num_steps=num_steps, ring=ring,
                           guidance_scale=guidance_scale, latents=latents)

    def forward_predict(self, model, batch, b, tidx, noise):
        """Noise samples ``b`` of a clean batch at schedule indices ``tidx`` with ``noise`` and predict with
        ``model`` (with grad): a :class:`~.forward_training.Denoised` (prediction, target, implied x0)."""
        from .forward_training import forward_predict

        return forward_predict(model, batch, b, tidx, noise)

    @classmethod
    def not_alignable(cls) -> NotAlignableError:
        return NotAlignableError(
            f"the {cls.family} family cannot be aligned yet: it has no rollout with per-step log-probabilities; "
            "sample and score it (best-of-N, eval) instead"
        )


def vae_factor(configs) -> int:
    """The VAE's spatial factor from its config: ``2 ** (levels - 1)`` (an ``AutoencoderKL``), or
    ``2 ** len(temperal_downsample)`` for the video-style VAEs of Qwen-Image and Wan."""
    vae = configs.get("vae")
    if "temperal_downsample" in vae:
        return 2 ** len(vae["temperal_downsample"])
    return 2 ** (len(vae.get("block_out_channels", (0,) * 4)) - 1)


def check_scheduler(scheduler: str) -> str:
    if scheduler not in SCHEDULERS:
        raise bad_value("scheduler", f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    return scheduler


def check_offload(offload: str) -> str:
    if offload not in OFFLOAD_MODES:
        raise bad_value("offload", f"offload must be one of {', '.join(OFFLOAD_MODES)}, got {offload!r}")
    return offload


class PatchedLatentEngine(Engine):
    """A transformer family whose latents are packed in 2x2 patches (FLUX.1 Fill, FLUX.2 klein, Z-Image,
    Qwen-Image): sides are a multiple of ``2 * vae factor`` and the working size is the VAE's ``sample_size``."""

    @classmethod
    def read_resolution(cls, configs) -> int:
        return int(configs.value("vae", "sample_size", 1024))

    @classmethod
    def read_size_multiple(cls, configs) -> int:
        return 2 * vae_factor(configs)
