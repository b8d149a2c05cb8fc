"""Stable Diffusion 1.x/2.x inpainting (``StableDiffusionInpaintPipeline``, 9-channel UNet), native or DDIM.

The family PrefPaint was aligned on: DDIM with ``eta = 1.0`` (as PrefPaint samples), 50 steps, guidance 7.5;
the model's own noise schedule is kept when the scheduler is swapped to DDIM. ``scheduler="auto"`` samples
PrefPaint and models aligned with DDIM so, and base models with their shipped scheduler (:mod:`.sampler_record`). Alignment uses the DDIM
rollout with per-step log-probabilities of :mod:`.ddim_rollout`.
"""

from __future__ import annotations

from typing import ClassVar

from .. import hub
from ..errors import InvalidInputError
from ..validation import at_least, bad_value
from .base import Engine, vae_factor

__all__ = ["SDInpaintEngine", "LATENT_DDIM_DEFAULTS", "ddim_max_steps", "check_ddim_steps"]

LATENT_DDIM_DEFAULTS = {"set_alpha_to_one": False, "clip_sample": False}
"""DDIM settings of a latent model (Stable Diffusion's own configs) where a shipped non-DDIM scheduler config
does not say: DDIM's defaults are ``set_alpha_to_one=True``, which makes the last step deterministic (zero
variance, so no log-probability), and ``clip_sample=True``, which clamps every step's predicted x0 to
[-1, 1]. That clamp is meant for pixel-space models; latents are not bounded so, and it both distorts the
samples and cuts the UNet out of the step wherever it binds (no gradient through it): RL on the tiny SDXL
fixture, whose Euler config has neither key, did not learn until this was fixed."""


class SDInpaintEngine(Engine):
    family = "sd"
    pipeline_class_name = "StableDiffusionInpaintPipeline"
    default_steps = 50
    default_guidance = 7.5
    default_eta: ClassVar[float | None] = 1.0
    trainable_module = "unet"
    alignable: ClassVar[bool] = True
    hub_models: ClassVar[dict[str, int]] = {hub.DEFAULT_MODEL: 512, hub.BASE_MODEL: 512}
    load_kwargs: ClassVar[dict] = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    ddim_sampler: ClassVar[bool] = True
    # PrefPaint's documented use is DDIM with eta 1 (shared/prefpaint-method.md): scheduler="auto" gives it that
    ddim_models: ClassVar[tuple[str, ...]] = (hub.DEFAULT_MODEL,)

    # The pipeline's own __call__ defaults (tests check them against its signature): what scheduler="native"
    # samples with, known without importing diffusers (model_info); eta where the shipped scheduler takes one.
    native_defaults: ClassVar[dict] = dict(steps=50, guidance_scale=7.5, strength=1.0)
    eta_schedulers: ClassVar[tuple[str, ...]] = ("DDIMScheduler", "DDIMParallelScheduler", "TCDScheduler")

    @classmethod
    def defaults_for(cls, scheduler, configs=None, record=None):
        if scheduler == "ddim":
            values = cls.default_values()
            if record is not None and record.get("eta") is not None:
                values["eta"] = float(record["eta"])
            return values
        shipped = configs.value("scheduler", "_class_name") if configs is not None else None
        return dict(cls.native_defaults, eta=0.0 if shipped in cls.eta_schedulers else None)

    def _prepare(self) -> None:
        from diffusers import DDIMScheduler

        pipe = self.pipeline
        if self.scheduler_mode == "native":
            # The shipped scheduler and the pipeline's own defaults (SDXL: 50 steps, guidance 7.5, strength
            # 0.9999), with its eta where the scheduler's step takes one.
            import inspect

            call = inspect.signature(type(pipe).__call__).parameters
            self.default_steps = int(call["num_inference_steps"].default)
            self.default_guidance = float(call["guidance_scale"].default)
            self.default_strength = float(call["strength"].default)
            takes_eta = "eta" in inspect.signature(pipe.scheduler.step).parameters
            self.default_eta = float(call["eta"].default) if takes_eta else None
            return
        if not isinstance(pipe.scheduler, DDIMScheduler):
            # PrefPaint samples with DDIM (eta=1.0); keep the model's own noise schedule. Keys the shipped
            # config lacks take a latent model's values, not DDIM's pixel-space defaults.
            config = dict(pipe.scheduler.config)
            extra = {key: value for key, value in LATENT_DDIM_DEFAULTS.items() if key not in config}
            pipe.scheduler = DDIMScheduler.from_config(config, **extra)

    def rebuild_pipeline(self, trained, **components):
        # no safety checker or feature extractor, as the toolkit loads SD (load_kwargs)
        pipe = self.pipeline
        return self.pipeline_class()(
            vae=components.get("vae", pipe.vae), text_encoder=components.get("text_encoder", pipe.text_encoder),
            tokenizer=pipe.tokenizer, unet=trained, scheduler=pipe.scheduler, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )

    def check_model(self, model_id: str) -> None:
        channels = self.pipeline.unet.config.in_channels
        if channels != 9:
            raise InvalidInputError(
                f"model '{model_id}' has a {channels}-channel UNet; an inpainting model has 9 "
                "(4 latents + 1 mask + 4 masked-image latents). Use an inpainting checkpoint"
            )

    @classmethod
    def read_resolution(cls, configs) -> int:
        """``unet.sample_size * vae factor``: 512 for SD 1.x/2.x inpainting, 1024 for SDXL."""
        sample = configs.value("unet", "sample_size", 64)
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * vae_factor(configs)

    @classmethod
    def read_size_multiple(cls, configs) -> int:
        """8: the SD and SDXL pipelines refuse other sizes (``check_inputs``), whatever the VAE's factor."""
        return max(8, vae_factor(configs))

    def _ddim_limits(self) -> bool:
        """Whether the sampling scheduler is a DDIM (swapped in, or shipped: its steps_offset limits it)."""
        return self.scheduler_mode == "ddim" or type(self.pipeline.scheduler).__name__ == "DDIMScheduler"

    @property
    def max_steps(self) -> int:
        """The most DDIM steps the loaded scheduler supports (999 for Stable Diffusion's schedule)."""
        if not self._ddim_limits():
            return super().max_steps
        return ddim_max_steps(self.pipeline.scheduler.config)

    @classmethod
    def check_scheduler_steps(cls, steps, config: dict) -> int:
        return check_ddim_steps(steps, config)

    def check_steps(self, steps) -> int:
        if not self._ddim_limits():  # the shipped scheduler's own limit, not DDIM's
            return Engine.check_scheduler_steps(steps, self.pipeline.scheduler.config)
        return check_ddim_steps(steps, self.pipeline.scheduler.config)

    def encode_conditions(self, images, masks, height: int, width: int, device=None, dtype=None):
        from .ddim_rollout import encode_conditions

        return encode_conditions(self.pipeline, images, masks, height, width, device=device, dtype=dtype)

    def encode_prompts(self, prompt, negative_prompt, n, guidance_scale, device, size=None):
        from .ddim_rollout import encode_prompts

        return encode_prompts(self.pipeline, prompt, negative_prompt, n, guidance_scale, device, size=size)

    def rollout(self, conditions, groups, generators, *, model=None, sde_noise=None, window=None, **kwargs):
        """DDIM trajectories with per-step log-probabilities; see :func:`.ddim_rollout.rollout` (``model`` is its
        ``unet``; the flow-matching ``sde_noise`` and ``window`` do not apply)."""
        from .ddim_rollout import rollout

        if model is not None:
            kwargs["unet"] = model
        return rollout(self.pipeline, conditions, groups, generators, **kwargs)

    def cat_rollouts(self, chunks):
        from .ddim_rollout import cat_rollouts

        return cat_rollouts(chunks)

    def step_context(self, num_steps, device):
        from .ddim_rollout import make_scheduler

        return make_scheduler(self.pipeline, num_steps, device)

    def policy_step(self, model, rollout, b, tidx, *, context=None, guidance_scale=1.0, eta=1.0, sde_noise=0.7,
                    reduction="mean"):
        from .ddim_rollout import policy_step

        ro = rollout
        b = b.to(ro.latents.device)
        tidx = tidx.to(ro.latents.device)
        sched = context if context is not None else self.step_context(ro.latents.shape[1], ro.latents.device)
        t = ro.timesteps.to(ro.latents.device)[tidx]
        neg = ro.negative_embeds[b] if ro.negative_embeds is not None else None
        return policy_step(model, sched, ro.latents[b, tidx], t, ro.next_latents[b, tidx], ro.mask_latents[b],
                           ro.masked_image_latents[b], ro.prompt_embeds[b], neg, guidance_scale=guidance_scale,
                           eta=eta, reduction=reduction, region=None if ro.region is None else ro.region[b])


# --- DDIM step limits (read from the scheduler config only, so they run before any weights load) ---------

def _ddim_steps_ok(config: dict, steps: int) -> bool:
    """Whether DDIM can run ``steps`` steps on this schedule: the scheduler accepts them and every timestep
    it schedules lies below ``num_train_timesteps`` (with ``steps_offset`` = 1 the last one may not)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(dict(config))
    try:
        sched.set_timesteps(steps)
    except ValueError:
        return False
    return int(sched.timesteps.max()) < int(sched.config.num_train_timesteps)


_MAX_STEPS_CACHE: dict[str, int] = {}


def ddim_max_steps(config: dict) -> int:
    """The most DDIM steps a scheduler config supports (999 for Stable Diffusion's: 1000 would schedule
    timestep 1000 of a 1000-entry table). Reads only the config, so it runs before any weights load:
    pass the dict of a model folder's ``scheduler/scheduler_config.json``."""
    key = repr(sorted((k, v) for k, v in dict(config).items() if not k.startswith("_")))
    if key not in _MAX_STEPS_CACHE:
        n = int(dict(config).get("num_train_timesteps", 1000))
        while n > 1 and not _ddim_steps_ok(config, n):
            n -= 1
        _MAX_STEPS_CACHE[key] = n
    return _MAX_STEPS_CACHE[key]


def check_ddim_steps(steps, config: dict) -> int:
    """``steps`` if DDIM on this scheduler config can run it, else an ``InvalidInputError`` naming the limit."""
    steps = at_least("steps", steps, 1)
    limit = ddim_max_steps(config)
    if steps > limit or not _ddim_steps_ok(config, steps):
        timesteps = dict(config).get("num_train_timesteps", 1000)
        raise bad_value("steps", f"steps must be ≤ {limit} for this model's scheduler ({timesteps} training timesteps), "
                                 f"got {steps}")
    return steps
