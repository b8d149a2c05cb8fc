"""The ``Inpainter`` facade: any image size in, exactly that size out, only the hole changed.

One call crops a context box around the mask, resizes it to the model's working size, samples N
candidates in one batched diffusers call (candidate k uses seed + k, so each can be reproduced alone),
resizes back, and composites into the original with a feathered seam. Pixels farther than the feather
band from the (dilated) mask are returned byte for byte.
"""

from __future__ import annotations

import logging
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image

from .devices import quiet_loading, resolve_device, resolve_dtype
from .errors import InvalidInputError, ModelNotFoundError
from .hub import DEFAULT_MODEL, ResolvedModel, resolve_model
from .imaging import (
    Box,
    ImageLike,
    composite_box,
    context_box,
    dilate_mask,
    feather_bbox,
    fit_mask_to_image,
    load_image,
    load_mask,
    working_size,
)
from .validation import at_least, bad_value, check_seed, finite, non_negative

__all__ = ["Inpainter", "InpaintResult"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class InpaintResult:
    """What one inpainting call produced, with everything needed to reproduce it.

    Attributes:
        image: the chosen candidate, composited, exactly the input's size.
        candidates: every candidate, composited, in seed order.
        seeds: the seed of each candidate (candidate k used ``seeds[0] + k``).
        scores: reward of each candidate when a reward model is attached, else ``None``.
        bounds: the reward model's error bound for each candidate, when available.
        best_index: index of ``image`` in ``candidates``.
        box: the context box (x0, y0, x1, y1) the model saw, in input pixels; ``None`` for an empty mask.
        params: the parameters of the call, after defaults.
        timings: seconds spent per phase.
        model_id / revision: which weights made it.
    """

    image: Image.Image
    candidates: list[Image.Image]
    seeds: list[int]
    scores: list[float] | None = None
    bounds: list[float] | None = None
    best_index: int = 0
    box: tuple[int, int, int, int] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    model_id: str | None = None
    revision: str | None = None

    @property
    def seed(self) -> int:
        """The seed that reproduces :attr:`image` alone."""
        return self.seeds[self.best_index]

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, save_all: bool = False) -> list[str]:
        """Write the image, a sidecar ``.json`` with every fact of :meth:`to_dict`, and optionally all
        candidates (``<stem>_cand<k><suffix>``), as one output set: the whole set is checked first, every
        member is written under a temporary name, and only then are all renamed into place, so the set
        appears whole or not at all (an error or Ctrl-C leaves existing files untouched and no new ones).
        Files get the umask's modes. Returns the paths written.

        Raises:
            OutputExistsError: a member exists and ``overwrite`` is false (checked before writing any).
            InvalidInputError: an unknown image suffix, a folder where a file must go, an unwritable
                folder, two members with one name (``out.json`` would be its own sidecar), or a fact that
                is NaN/Infinity (strict JSON); every message names the user's path.
        """
        from pathlib import Path

        from .files import image_writer, json_writer, sidecar_path, write_set

        path = Path(path)
        cand_paths = [path.with_name(f"{path.stem}_cand{k}{path.suffix or '.png'}") for k in range(len(self.candidates))]
        facts = self.to_dict()
        writers = {path: image_writer(self.image, path)}
        if save_all:
            facts["candidate_files"] = [p.name for p in cand_paths]
            for im, p in zip(self.candidates, cand_paths):
                writers[p] = image_writer(im, p)
        side = sidecar_path(path)
        writers[side] = json_writer(facts, side)
        write_set(writers, overwrite)
        targets = [path, side] + (cand_paths if save_all else [])
        return [str(t) for t in targets]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able facts (everything but the pixels), as written to the CLI's sidecar file."""
        d = asdict(self)
        for key in ("image", "candidates"):
            d.pop(key)
        d["seed"] = self.seed
        d["size"] = list(self.image.size)
        return d


class Inpainter:
    """Preference-aligned inpainting with a diffusers ``StableDiffusionInpaintPipeline``.

    Build it with :meth:`from_pretrained`; call it on an image and a mask (white = fill).

    Example:
        >>> inpainter = Inpainter.from_pretrained()            # kd5678/prefpaint-v1.0
        >>> result = inpainter("photo.png", "mask.png", seed=0)
        >>> result.image.save("out.png")
    """

    max_batch = 8  # candidates per diffusers call; more are split into chunks

    def __init__(self, pipeline, *, model_id: str = "<in-memory>", revision: str | None = None,
                 reward_model=None, select: str = "reward", lcb_c: float = 1.0):
        from diffusers import DDIMScheduler

        unet = pipeline.unet
        if unet.config.in_channels != 9:
            raise InvalidInputError(
                f"model '{model_id}' has a {unet.config.in_channels}-channel UNet; an inpainting model has 9 "
                "(4 latents + 1 mask + 4 masked-image latents). Use an inpainting checkpoint"
            )
        if not isinstance(pipeline.scheduler, DDIMScheduler):
            # PrefPaint samples with DDIM (eta=1.0); keep the model's own noise schedule.
            pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline
        self.model_id = model_id
        self.revision = revision
        self.reward_model = reward_model
        if select not in ("reward", "lcb"):
            raise InvalidInputError(f"select must be 'reward' or 'lcb', got '{select}'")
        self.select = select
        self.lcb_c = lcb_c
        self.load_seconds = 0.0

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_MODEL, *, device="auto", dtype="auto",
                        reward_model=None, offline: bool | None = None, revision: str | None = None,
                        select: str = "reward", lcb_c: float = 1.0) -> "Inpainter":
        """Load an inpainting pipeline from a hub id or a local diffusers folder.

        Args:
            model: hub id (default ``kd5678/prefpaint-v1.0``), alias (``prefpaint``, ``base``) or folder.
            device: "auto" (cuda, then mps, then cpu), or a device name.
            dtype: "auto" (fp16 on cuda, fp32 elsewhere), "float32", "float16" or "bfloat16".
            reward_model: a reward model (or its id/folder) used to score and pick among candidates.
            offline: never touch the network (default: the ``HF_HUB_OFFLINE`` environment variable).
            revision: a hub branch, tag or commit.
            select: "reward" picks the highest score; "lcb" the highest ``score - lcb_c * bound``.

        Raises:
            ModelNotFoundError: the weights are neither local, cached nor downloadable.
            InvalidInputError: the folder is not a diffusers inpainting pipeline.
        """
        from diffusers import StableDiffusionInpaintPipeline

        t0 = time.perf_counter()
        resolved: ResolvedModel = resolve_model(model, offline=offline, revision=revision)
        if not (resolved.path / "model_index.json").is_file():
            raise InvalidInputError(
                f"'{resolved.model_id}' has no model_index.json, so it is not a diffusers pipeline folder; "
                "save one with pipe.save_pretrained(folder)"
            )
        from .state import check_pipeline_folder  # noqa: PLC0415

        check_pipeline_folder(resolved.path)  # damaged files and pickle-only components: our line, before loading
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        try:
            with warnings.catch_warnings(), quiet_loading():
                # diffusers >= 0.42 renames torch_dtype to dtype; the old name still works everywhere.
                warnings.simplefilter("ignore", FutureWarning)
                pipe = StableDiffusionInpaintPipeline.from_pretrained(
                    resolved.path, torch_dtype=dt, safety_checker=None, feature_extractor=None,
                    requires_safety_checker=False, use_safetensors=True,
                )
        except (OSError, EnvironmentError) as exc:
            raise ModelNotFoundError(f"could not load '{resolved.model_id}' from '{resolved.path}': {exc}") from exc
        pipe = pipe.to(dev)
        if reward_model is not None and isinstance(reward_model, (str, os.PathLike)):
            from .reward import RewardModel  # noqa: PLC0415 - optional, loaded only when asked for

            reward_model = RewardModel.from_pretrained(reward_model, device=dev, offline=offline)
        self = cls(pipe, model_id=resolved.model_id, revision=resolved.revision, reward_model=reward_model,
                   select=select, lcb_c=lcb_c)
        self.load_seconds = time.perf_counter() - t0
        return self

    # ---------------------------------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        """The model's working size in pixels (512 for Stable Diffusion inpainting)."""
        return int(self.pipeline.unet.config.sample_size) * int(self.pipeline.vae_scale_factor)

    @property
    def device(self):
        return self.pipeline.unet.device

    @property
    def dtype(self):
        return self.pipeline.unet.dtype

    @property
    def max_steps(self) -> int:
        """The most DDIM steps the loaded scheduler supports (999 for Stable Diffusion's schedule)."""
        return ddim_max_steps(self.pipeline.scheduler.config)

    def check_steps(self, steps: int) -> int:
        """``steps`` if the scheduler supports it, else an ``InvalidInputError`` naming the limit."""
        return check_ddim_steps(steps, self.pipeline.scheduler.config)

    # ---------------------------------------------------------------------------------------------
    def __call__(
        self,
        image: ImageLike,
        mask: ImageLike,
        prompt: str = "",
        negative_prompt: str = "",
        num_candidates: int = 1,
        seed: int | None = None,
        steps: int = 50,
        guidance_scale: float = 7.5,
        eta: float = 1.0,
        mask_dilate: int = 0,
        mask_blur: int = 8,
        crop_margin: int = 128,
        keep_unmasked: bool = True,
        strength: float = 1.0,
        invert_mask: bool = False,
        mask_from_alpha: bool = False,
        resize_mask: bool = False,
        progress: ProgressFn | None = None,
    ) -> InpaintResult:
        """Inpaint ``image`` where ``mask`` is white.

        Args:
            image: path, PIL image, numpy array or torch tensor (see :mod:`prefpaint_sdk.imaging`).
            mask: same kinds; white (>= 50%) means fill. L, RGB, RGBA and 1-bit masks are accepted.
            prompt / negative_prompt: text conditioning; PrefPaint is used with both empty. When they are
                equal, classifier-free guidance cannot change the result, so it is skipped (half the cost).
            num_candidates: N candidates in one batched call; candidate k uses ``seed + k``.
            seed: base seed; a random one is drawn (and reported) when ``None``.
            steps: DDIM steps. guidance_scale: CFG scale. eta: DDIM noise (1.0 as PrefPaint samples).
            mask_dilate: grow the hole by this many pixels before inpainting.
            mask_blur: width in pixels of the feathered seam outside the hole.
            crop_margin: context in pixels around the hole's box; the box is cropped, resized to the
                working size and inpainted. A negative value disables cropping (the whole image is used).
            keep_unmasked: composite into the original (default); ``False`` returns the model's whole
                context box as generated.
            strength: 1.0 inpaints from noise; lower values re-render the hole starting from its content.
            invert_mask / mask_from_alpha / resize_mask: see :func:`~prefpaint_sdk.imaging.load_mask` and
                :func:`~prefpaint_sdk.imaging.fit_mask_to_image`.
            progress: called as ``progress(step, total)`` after every denoising step.

        Returns:
            An :class:`InpaintResult` whose ``image`` has exactly the input's size.

        Raises:
            InvalidInputError: unreadable inputs, mismatched sizes, or out-of-range parameters.
        """
        t_start = time.perf_counter()
        num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin = _check_params(
            num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin)
        self.check_steps(steps)
        for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if not isinstance(text, str):
                raise bad_value(name, f"{name} must be text, got {type(text).__name__}")
        img = load_image(image)
        hole = load_mask(mask, invert=invert_mask, from_alpha=mask_from_alpha)
        hole = fit_mask_to_image(hole, img.size, resize=resize_mask)
        if seed is None:
            seed = random.SystemRandom().randrange(2**31 - num_candidates)
        seeds = [seed + k for k in range(num_candidates)]
        params = dict(
            prompt=prompt, negative_prompt=negative_prompt, num_candidates=num_candidates, seed=seed, steps=steps,
            guidance_scale=guidance_scale, eta=eta, mask_dilate=mask_dilate, mask_blur=mask_blur,
            crop_margin=crop_margin, keep_unmasked=keep_unmasked, strength=strength, invert_mask=invert_mask,
            mask_from_alpha=mask_from_alpha, resize_mask=resize_mask,
        )

        if not hole.any():
            log.warning("the mask is empty (nothing to fill); returning the input unchanged")
            return InpaintResult(image=img, candidates=[img.copy() for _ in seeds], seeds=seeds, params=params,
                                 timings={"total_s": time.perf_counter() - t_start},
                                 model_id=self.model_id, revision=self.revision)

        # Memory follows the image's bytes: the hole stays a bool mask, the feathered alpha is computed in
        # row stripes on the context box only, the model input is resized straight from the image (no
        # crop copy when the box is the whole image), and each candidate is composited stripe by stripe.
        hole = dilate_mask(hole, mask_dilate)
        if crop_margin is None or crop_margin < 0:
            box = Box(0, 0, img.width, img.height)
        else:
            box = context_box(None, crop_margin, min_side=self.resolution, bbox=feather_bbox(hole, mask_blur),
                              shape=hole.shape)
        work_w, work_h = working_size(box.width, box.height, self.resolution)
        whole = box == Box(0, 0, img.width, img.height)
        if whole:
            model_image = img if img.size == (work_w, work_h) else img.resize((work_w, work_h), Image.LANCZOS)
        else:
            crop = img.crop(box.as_tuple())
            model_image = crop if crop.size == (work_w, work_h) else crop.resize((work_w, work_h), Image.LANCZOS)
            del crop
        model_mask = _resize_mask_covering(hole[box.y0:box.y1, box.x0:box.x1], (work_w, work_h))
        t_prep = time.perf_counter()

        generated = self._sample(model_image, model_mask, prompt, negative_prompt, seeds, steps, guidance_scale,
                                 eta, strength, work_w, work_h, progress)
        del model_image, model_mask
        params["guidance_scale_effective"] = guidance_scale if prompt != negative_prompt else 1.0
        t_sample = time.perf_counter()

        candidates = []
        size = (box.width, box.height)
        for k in range(len(generated)):
            gen, generated[k] = generated[k], None  # free each model output once it is used
            gen = gen.resize(size, Image.LANCZOS) if gen.size != size else gen  # ours: blended in place
            candidates.append(composite_box(img, gen, box, hole if keep_unmasked else None, mask_blur))
            del gen
        t_comp = time.perf_counter()

        scores, bounds, best = self._score(candidates, img, hole, box)
        t_end = time.perf_counter()
        return InpaintResult(
            image=candidates[best], candidates=candidates, seeds=seeds, scores=scores, bounds=bounds,
            best_index=best, box=box.as_tuple(), params=params, model_id=self.model_id, revision=self.revision,
            timings=dict(prepare_s=t_prep - t_start, sample_s=t_sample - t_prep, composite_s=t_comp - t_sample,
                         score_s=t_end - t_comp, total_s=t_end - t_start),
        )

    # ---------------------------------------------------------------------------------------------
    def _sample(self, image, mask, prompt, negative_prompt, seeds, steps, guidance_scale, eta, strength,
                width, height, progress) -> list[Image.Image]:
        import torch

        # Equal prompts make the guided and unguided predictions identical, so CFG only doubles the cost.
        cfg = guidance_scale if prompt != negative_prompt else 1.0
        outputs: list[Image.Image] = []
        total = len(seeds) * _effective_steps(steps, strength)
        done = 0

        def on_step(pipe, i, t, kwargs):
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)
            return kwargs

        for start in range(0, len(seeds), self.max_batch):
            chunk = seeds[start:start + self.max_batch]
            n = len(chunk)
            # One generator and one copy of each input per candidate: the pipeline then draws every
            # candidate's noise (latents, VAE sample, DDIM steps) from its own generator, in the same
            # order a single call does, so candidate k equals a lone call with seed + k.
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in chunk]
            with torch.inference_mode():
                out = self.pipeline(
                    prompt=[prompt] * n, negative_prompt=[negative_prompt] * n if cfg > 1 else None,
                    image=[image] * n, mask_image=[mask] * n, height=height, width=width,
                    num_inference_steps=steps, guidance_scale=cfg, eta=eta, strength=strength,
                    generator=generators, output_type="pil", callback_on_step_end=on_step,
                )
            outputs.extend(out.images)
        return outputs

    def _score(self, candidates, image, hole, box: Box | None = None) -> tuple[list[float] | None, list[float] | None, int]:
        """Score candidates with the attached reward model and pick the best; index 0 without one.

        The reward sees the context box the model inpainted, framed by the one function every scoring
        path uses (:func:`prefpaint_sdk.reward.framing.reward_views`).
        """
        if self.reward_model is None:
            return None, None, 0
        from .reward.framing import mask_fill_of, reward_views  # noqa: PLC0415 - only with a reward model

        candidates, masked = reward_views(candidates, image, hole, box, mask_fill_of(self.reward_model))
        # The candidates share one masked prompt image: RewardModel.score encodes identical masked images
        # once, so N candidates cost N + 1 backbone passes, not 2N.
        out = self.reward_model.score(candidates, masked_images=[masked] * len(candidates))
        scores = [float(s) for s in out.scores]
        bounds = [float(b) for b in out.bounds] if getattr(out, "bounds", None) is not None else None
        if self.select == "lcb" and bounds is None and len(candidates) > 1:
            log.warning("select='lcb' but the reward model has no trust matrix; selecting by score")
        if self.select == "lcb" and bounds is not None:
            keys = [s - self.lcb_c * b for s, b in zip(scores, bounds)]
        else:
            keys = scores
        return scores, bounds, int(np.argmax(keys))


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


def _effective_steps(steps: int, strength: float) -> int:
    return max(1, min(int(steps * strength), steps))


def _resize_mask_covering(mask: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Resize a hole mask so that every pixel the hole touches stays a hole (no thin holes lost)."""
    im = Image.fromarray(np.multiply(mask, 255, dtype=np.uint8), "L")
    if im.size == size:
        return im
    soft = np.asarray(im.resize(size, Image.BILINEAR))
    del im
    return Image.fromarray(np.where(soft > 0, 255, 0).astype(np.uint8), "L")


def _check_params(num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin):
    """Every number of a call, checked before any image is read or any sampling: the checked values."""
    num_candidates = at_least("num_candidates", num_candidates, 1)
    steps = at_least("steps", steps, 1)
    guidance_scale = finite("guidance_scale", guidance_scale, 0.0)
    eta = finite("eta", eta, 0.0, 1.0)
    mask_dilate = non_negative("mask_dilate", mask_dilate)
    mask_blur = non_negative("mask_blur", mask_blur)
    strength = finite("strength", strength)
    if not 0.0 < strength <= 1.0:
        raise bad_value("strength", f"strength must lie in (0, 1], got {strength!r}")
    if int(steps * strength) < 1:
        raise bad_value(
            "steps",
            f"steps x strength = {steps} x {strength} leaves no denoising step; raise steps to at least "
            f"{int(np.ceil(1 / strength))}",
        )
    seed = check_seed(seed, count=num_candidates)
    if crop_margin is not None:
        crop_margin = at_least("crop_margin", crop_margin, minimum=-(2**62))
    return num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin
