"""Stable Diffusion 1.x/2.x inpainting (``StableDiffusionInpaintPipeline``, 9-channel UNet), sampled with DDIM.

The family PrefPaint was aligned on: DDIM with ``eta = 1.0`` (as PrefPaint samples), 50 steps, guidance 7.5;
the model's own noise schedule is kept when the scheduler is swapped to DDIM. Alignment uses the DDIM
rollout with per-step log-probabilities of :mod:`.ddim_rollout`.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import InvalidInputError
from ..validation import at_least, bad_value
from .base import Engine

__all__ = ["SDInpaintEngine", "ddim_max_steps", "check_ddim_steps"]


class SDInpaintEngine(Engine):
    family = "sd"
    pipeline_class_name = "StableDiffusionInpaintPipeline"
    default_steps = 50
    default_guidance = 7.5
    default_eta: ClassVar[float | None] = 1.0
    trainable_module = "unet"
    alignable: ClassVar[bool] = True
    load_kwargs: ClassVar[dict] = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def _prepare(self) -> None:
        from diffusers import DDIMScheduler

        pipe = self.pipeline
        if not isinstance(pipe.scheduler, DDIMScheduler):
            # PrefPaint samples with DDIM (eta=1.0); keep the model's own noise schedule.
            pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)

    def check_model(self, model_id: str) -> None:
        channels = self.pipeline.unet.config.in_channels
        if channels != 9:
            raise InvalidInputError(
                f"model '{model_id}' has a {channels}-channel UNet; an inpainting model has 9 "
                "(4 latents + 1 mask + 4 masked-image latents). Use an inpainting checkpoint"
            )

    @property
    def resolution(self) -> int:
        """``unet.sample_size * vae_scale_factor``: 512 for SD 1.x/2.x inpainting, 1024 for SDXL."""
        sample = self.pipeline.unet.config.sample_size
        sample = sample[0] if isinstance(sample, (list, tuple)) else sample
        return int(sample) * int(self.pipeline.vae_scale_factor)

    @property
    def size_multiple(self) -> int:
        """8: the SD and SDXL pipelines refuse other sizes (``check_inputs``), whatever the VAE's factor."""
        return max(8, int(self.pipeline.vae_scale_factor))

    @property
    def max_steps(self) -> int:
        """The most DDIM steps the loaded scheduler supports (999 for Stable Diffusion's schedule)."""
        return ddim_max_steps(self.pipeline.scheduler.config)

    def check_steps(self, steps) -> int:
        return check_ddim_steps(steps, self.pipeline.scheduler.config)

    def rollout(self, conditions, groups, generators, **kwargs):
        """DDIM trajectories with per-step log-probabilities; see :func:`.ddim_rollout.rollout`."""
        from .ddim_rollout import rollout

        return rollout(self.pipeline, conditions, groups, generators, **kwargs)


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
