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
from typing import Any, Callable

import numpy as np
from PIL import Image

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
from .inpaint_checks import check_call_numbers, effective_steps
from .inpaint_result import InpaintResult, check_select, score_and_choose
from .validation import at_least, bad_value

__all__ = ["Inpainter"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
class Inpainter:
    """Preference-aligned inpainting with any supported diffusers inpainting model (see
    :mod:`prefpaint_sdk.engines`: SD 1.x/2.x inpainting, SDXL inpainting, FLUX.1 Fill).

    Build it with :meth:`from_pretrained`; call it on an image and a mask (white = fill).

    Example:
        >>> inpainter = Inpainter.from_pretrained()            # kd5678/prefpaint-v1.0
        >>> result = inpainter("photo.png", "mask.png", seed=0)
        >>> result.image.save("out.png")
    """

    max_batch = 8  # candidates per diffusers call; more are split into chunks

    def __init__(self, pipeline, *, model_id: str = "<in-memory>", revision: str | None = None,
                 reward_model=None, select: str = "reward", lcb_c: float = 1.0):
        """Wrap a diffusers inpainting pipeline of a known family, or an :class:`~prefpaint_sdk.engines.Engine`."""
        from .engines import engine_for_pipeline

        engine = engine_for_pipeline(pipeline)
        engine.check_model(model_id)
        self.engine = engine
        self.pipeline = engine.pipeline
        self.model_id = model_id
        self.revision = revision
        self.reward_model = reward_model
        self.select = check_select(select)
        self.lcb_c = lcb_c
        self.load_seconds = 0.0

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str | os.PathLike = DEFAULT_MODEL, *, device="auto", dtype="auto",
                        reward_model=None, offline: bool | None = None, revision: str | None = None,
                        select: str = "reward", lcb_c: float = 1.0, offload: str = "none",
                        vae_tiling: bool = False, steps: int | None = None, scheduler: str = "auto",
                        reward=None, reward_weights=None, reward_norm: str = "gdpo") -> "Inpainter":
        """Load an inpainting pipeline from a hub id or a local diffusers folder, of any supported family.

        Args:
            model: hub id (default ``kd5678/prefpaint-v1.0``), alias (``prefpaint``, ``base``, ``sdxl-inpaint``,
                ``flux-fill``) or folder. The family comes from the folder's ``model_index.json``.
            device: "auto" (cuda, then mps, then cpu), or a device name.
            dtype: "auto" (fp16 on cuda, fp32 elsewhere), "float32", "float16" or "bfloat16".
            reward_model: a reward model (or its id/folder) used to score and pick among candidates.
            offline: never touch the network (default: the ``HF_HUB_OFFLINE`` environment variable).
            revision: a hub branch, tag or commit.
            select: "reward" picks the highest score; "lcb" the highest ``score - lcb_c * bound``.
            offload: "none", "model" or "sequential": diffusers' CPU offload for models larger than the GPU.
            vae_tiling: encode and decode in tiles (large images on small GPUs).
            steps: the steps you will sample with, checked against the model's scheduler config before any
                weights load (each call checks its own steps again).
            scheduler: "native" (the model's shipped scheduler and its pipeline's defaults, as diffusers samples),
                "ddim" (the alignment sampler: DDIM, η 1; SD and SDXL) or "auto": ddim for PrefPaint and for a
                model this toolkit aligned with DDIM (its export records the sampler and eta), native for a base
                model.
            reward / reward_weights / reward_norm: a reward stack that scores and picks among candidates instead:
                specs ``NAME`` or ``NAME=SOURCE`` (``prefpaint=RM``, ``clip=FOLDER``, ``seam``, ``outside-change``,
                ``remote=http://HOST:PORT``, ...; see :mod:`prefpaint_sdk.reward.specs`), one weight per spec
                (default 1 each) and ``gdpo``, ``sum`` or ``rank`` (:mod:`prefpaint_sdk.reward.choice`). A
                ``reward_model`` given as well joins the stack first, as ``prefpaint=`` it. Every spec is checked
                (and every remote server probed) before any weights load.

        Raises:
            ModelNotFoundError: the weights are neither local, cached nor downloadable.
            InvalidInputError: the folder is not a diffusers inpainting pipeline of a known family.
            ConfigError: an unknown reward name, weights that do not match the rewards, an unknown norm.
        """
        from .engines import engine_class

        t0 = time.perf_counter()
        # everything that needs no weights first (issue 19); then the weights
        cls.validate(offload=offload, select=select, scheduler=scheduler)
        stack = None
        if reward is not None:
            from .reward.choice import check_stack  # noqa: PLC0415 - only with a reward stack

            if reward_model is not None and not isinstance(reward_model, (str, os.PathLike)):
                raise bad_value("reward_model", "reward_model joins a reward stack by its id or folder; pass it as "
                                                "text, or build a RewardStack with it and pass that as reward_model")
            first = [f"prefpaint={os.fspath(reward_model)}"] if reward_model is not None else []
            stack = check_stack(first + ([reward] if isinstance(reward, str) else list(reward)), reward_weights,
                                reward_norm, offline=offline)
            reward_model = None
        resolved, family = cls.check_files(model, offline=offline, revision=revision, device=device, steps=steps,
                                           reward_model=reward_model)
        engine = engine_class(family).load(resolved.path, model_id=resolved.model_id, device=device, dtype=dtype,
                                           offload=offload, vae_tiling=vae_tiling, scheduler=scheduler)
        if reward_model is not None and isinstance(reward_model, (str, os.PathLike)):
            from .reward import RewardModel  # noqa: PLC0415 - optional, loaded only when asked for

            reward_model = RewardModel.from_pretrained(reward_model, device=engine.device, offline=offline)
        if stack is not None:
            from .reward.specs import load_stack  # noqa: PLC0415

            reward_model = load_stack(stack[0], stack[1], reward_norm, device=str(engine.device), offline=offline)
        self = cls(engine, model_id=resolved.model_id, revision=resolved.revision, reward_model=reward_model,
                   select=select, lcb_c=lcb_c)
        self.load_seconds = time.perf_counter() - t0
        return self

    @staticmethod
    def validate(*, offload: str = "none", select: str = "reward", scheduler: str = "auto", num_candidates: int = 1,
                 seed: int | None = None, steps: int | None = None, guidance_scale: float | None = None,
                 mask_dilate: float = 0, mask_blur: float = 0, crop_margin: int | None = None) -> None:
        """Every check of :meth:`from_pretrained` and of a call that needs no model and no file: the names
        (``offload``, ``select``, ``scheduler``) and the numbers (``None`` steps or guidance: the family's,
        checked once the model is known). Front ends call it first, before anything loads.

        Raises:
            InvalidInputError: naming the parameter and the value.
        """
        from .engines.base import check_offload, check_scheduler

        check_offload(offload)
        check_select(select)
        check_scheduler(scheduler)
        check_call_numbers(num_candidates, 1 if steps is None else steps, 0.0 if guidance_scale is None else guidance_scale,
                      None, mask_dilate, mask_blur, 1.0, seed, crop_margin)

    @staticmethod
    def check_files(model: str | os.PathLike = DEFAULT_MODEL, *, offline: bool | None = None,
                    revision: str | None = None, device="auto", steps: int | None = None,
                    reward_model=None) -> tuple[ResolvedModel, str]:
        """Every check of :meth:`from_pretrained` that needs no weights, in its order: the device, the limits
        in the model's config files (``steps``), the reward model's files, then the pipeline's own files
        (JSON, safetensors headers, pickles). Returns the resolved model and its family.

        Call it for each model before loading any, so a bad second file is named before a slow first load.
        """
        from .devices import resolve_device
        from .engines import check_model_limits, family_of_folder
        from .state import check_pipeline_folder  # noqa: PLC0415

        resolve_device(device)
        check_model_limits(model, steps=steps, offline=offline, revision=revision)
        if reward_model is not None and isinstance(reward_model, (str, os.PathLike)):
            from .reward.checks import check_reward_model  # noqa: PLC0415 - optional, checked only when asked for

            check_reward_model(reward_model, offline=offline)
        resolved = resolve_model(model, offline=offline, revision=revision)
        # the family from model_index.json: a folder of no known family fails before any load
        family = family_of_folder(resolved.path, resolved.model_id)
        check_pipeline_folder(resolved.path)  # damaged files and pickle-only components: our line, before loading
        return resolved, family

    def with_reward_model(self, reward_model) -> "Inpainter":
        """A copy of this inpainter that scores with ``reward_model`` (``None``: none); it shares the loaded
        pipeline (no memory is copied) and this one is left unchanged."""
        import copy

        other = copy.copy(self)
        other.reward_model = reward_model
        return other

    # ---------------------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        """The model family: "sd", "sdxl", "flux-fill", "qwen-image", "flux2-klein" or "z-image"."""
        return self.engine.family

    @property
    def defaults(self) -> dict[str, Any]:
        """The family's defaults for ``steps``, ``guidance_scale``, ``eta`` (``None``: the family has no eta) and
        ``strength``."""
        e = self.engine  # the loaded engine's (with scheduler="native", its pipeline's own)
        return dict(steps=e.default_steps, guidance_scale=e.default_guidance, eta=e.default_eta,
                    strength=e.default_strength)

    @property
    def resolution(self) -> int:
        """The model's working size in pixels (512 for Stable Diffusion inpainting, 1024 for SDXL and FLUX Fill)."""
        return self.engine.resolution

    @property
    def device(self):
        return self.engine.device

    @property
    def dtype(self):
        return self.engine.dtype

    @property
    def max_steps(self) -> int:
        """The most steps the loaded scheduler supports (999 for Stable Diffusion's DDIM schedule)."""
        return self.engine.max_steps

    def check_steps(self, steps: int) -> int:
        """``steps`` if the scheduler supports it, else an ``InvalidInputError`` naming the limit."""
        return self.engine.check_steps(steps)

    def check_knobs(self, *, negative_prompt: str = "", eta: float | None = None) -> None:
        """Refuse a setting the model's family lacks (FLUX Fill: a negative prompt, ``eta``) before any sampling.

        Raises:
            InvalidInputError: naming the setting.
        """
        self.engine.check_knobs(negative_prompt=negative_prompt, eta=eta)

    # ---------------------------------------------------------------------------------------------
    def __call__(
        self,
        image: ImageLike,
        mask: ImageLike,
        prompt: str = "",
        negative_prompt: str = "",
        num_candidates: int = 1,
        seed: int | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        eta: float | None = None,
        mask_dilate: int = 0,
        mask_blur: int = 8,
        crop_margin: int = 128,
        keep_unmasked: bool = True,
        strength: float | None = None,
        invert_mask: bool = False,
        mask_from_alpha: bool = False,
        resize_mask: bool = False,
        progress: ProgressFn | None = None,
        previews: int = 0,
        on_preview: Callable[[int, int, list[Image.Image]], None] | None = None,
    ) -> InpaintResult:
        """Inpaint ``image`` where ``mask`` is white.

        Args:
            image: path, PIL image, numpy array or torch tensor (see :mod:`prefpaint_sdk.imaging`).
            mask: same kinds; white (>= 50%) means fill. L, RGB, RGBA and 1-bit masks are accepted.
            prompt / negative_prompt: text conditioning; PrefPaint is used with both empty. When they are
                equal, classifier-free guidance cannot change the result, so it is skipped (half the cost).
            num_candidates: N candidates in one batched call; candidate k uses ``seed + k``.
            seed: base seed; a random one is drawn (and reported) when ``None``.
            steps / guidance_scale: default to the family's (SD 50 / 7.5, SDXL 30 / 8.0, FLUX Fill 50 / 30).
                guidance_scale is classifier-free guidance for SD/SDXL and FLUX's distilled guidance.
            eta: DDIM noise for SD/SDXL (default 1.0, as PrefPaint samples); FLUX Fill has none (leave it unset).
            mask_dilate: grow the hole by this many pixels before inpainting.
            mask_blur: width in pixels of the feathered seam outside the hole.
            crop_margin: context in pixels around the hole's box; the box is cropped, resized to the
                working size and inpainted. A negative value disables cropping (the whole image is used).
            keep_unmasked: composite into the original (default); ``False`` returns the model's whole
                context box as generated.
            strength: 1.0 inpaints from noise; lower values re-render the hole starting from its content.
                Default: the family's (1.0 for SD, SDXL, FLUX Fill and Z-Image; 0.6 Qwen-Image; 0.8 FLUX.2 klein).
            invert_mask / mask_from_alpha / resize_mask: see :func:`~prefpaint_sdk.imaging.load_mask` and
                :func:`~prefpaint_sdk.imaging.fit_mask_to_image`.
            progress: called as ``progress(step, total)`` after every denoising step.
            previews / on_preview: at ``previews`` evenly spaced steps (not the last), ``on_preview(k, step,
                images)`` gets preview ``k`` (0-based): the model's prediction of the finished candidates at that
                step, decoded and composited as the final ones are (the first chunk of ``max_batch`` candidates).
                The candidates themselves are the same with or without previews.

        Returns:
            An :class:`InpaintResult` whose ``image`` has exactly the input's size.

        Raises:
            InvalidInputError: unreadable inputs, mismatched sizes, or out-of-range parameters.
        """
        t_start = time.perf_counter()
        engine = self.engine
        steps = engine.default_steps if steps is None else steps
        guidance_scale = engine.default_guidance if guidance_scale is None else guidance_scale
        engine.check_knobs(negative_prompt=negative_prompt if isinstance(negative_prompt, str) else "", eta=eta)
        eta = engine.default_eta if eta is None else eta
        strength = engine.default_strength if strength is None else strength
        num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin = check_call_numbers(
            num_candidates, steps, guidance_scale, eta, mask_dilate, mask_blur, strength, seed, crop_margin)
        self.check_steps(steps)
        previews = at_least("previews", previews, 0)
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
            mask_from_alpha=mask_from_alpha, resize_mask=resize_mask, family=engine.family,
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
        work_w, work_h = working_size(box.width, box.height, self.resolution, engine.size_multiple)
        whole = box == Box(0, 0, img.width, img.height)
        if whole:
            model_image = img if img.size == (work_w, work_h) else img.resize((work_w, work_h), Image.LANCZOS)
        else:
            crop = img.crop(box.as_tuple())
            model_image = crop if crop.size == (work_w, work_h) else crop.resize((work_w, work_h), Image.LANCZOS)
            del crop
        model_mask = _resize_mask_covering(hole[box.y0:box.y1, box.x0:box.x1], (work_w, work_h))
        t_prep = time.perf_counter()

        preview = None
        if on_preview is not None and previews:
            total = effective_steps(steps, strength)
            at = sorted({max(1, round((k + 1) * total / (previews + 1))) for k in range(int(previews))})
            size = (box.width, box.height)

            def preview(step, images):
                shown = [composite_box(img, im.resize(size, Image.LANCZOS) if im.size != size else im, box,
                                       hole if keep_unmasked else None, mask_blur) for im in images]
                on_preview(at.index(step), step, shown)

            preview = (at, preview)
        generated = self._sample(model_image, model_mask, prompt, negative_prompt, seeds, steps, guidance_scale,
                                 eta, strength, work_w, work_h, progress, preview)
        del model_image, model_mask
        params["guidance_scale_effective"] = engine.guidance_used(guidance_scale, prompt, negative_prompt)
        # What the call cost the denoiser, in evaluations of one candidate (no tokens to count in diffusion).
        params["denoiser_passes"] = (len(seeds) * effective_steps(steps, strength)
                                     * engine.passes_per_step(params["guidance_scale_effective"]))
        t_sample = time.perf_counter()

        candidates = []
        size = (box.width, box.height)
        for k in range(len(generated)):
            gen, generated[k] = generated[k], None  # free each model output once it is used
            gen = gen.resize(size, Image.LANCZOS) if gen.size != size else gen  # ours: blended in place
            candidates.append(composite_box(img, gen, box, hole if keep_unmasked else None, mask_blur))
            del gen
        t_comp = time.perf_counter()

        per_reward: dict[str, Any] = {}
        scores, bounds, trust, best = self._score(candidates, img, hole, box, prompt, params, per_reward)
        t_end = time.perf_counter()
        return InpaintResult(
            image=candidates[best], candidates=candidates, seeds=seeds, scores=scores, bounds=bounds, trust=trust,
            rewards=per_reward or None, best_index=best, box=box.as_tuple(), params=params, model_id=self.model_id, revision=self.revision,
            timings=dict(prepare_s=t_prep - t_start, sample_s=t_sample - t_prep, composite_s=t_comp - t_sample,
                         score_s=t_end - t_comp, total_s=t_end - t_start),
        )

    # ---------------------------------------------------------------------------------------------
    def _sample(self, image, mask, prompt, negative_prompt, seeds, steps, guidance_scale, eta, strength,
                width, height, progress, preview=None) -> list[Image.Image]:
        import torch

        outputs: list[Image.Image] = []
        total = len(seeds) * effective_steps(steps, strength)
        done = 0

        def on_step():
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        for start in range(0, len(seeds), self.max_batch):
            chunk = seeds[start:start + self.max_batch]
            # One generator per candidate: candidate k equals a lone call with seed + k.
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in chunk]
            shown = dict(preview_steps=preview[0], on_preview=preview[1]) if preview and not start else {}
            outputs.extend(self.engine.sample(
                image, mask, prompt=prompt, negative_prompt=negative_prompt, generators=generators, steps=steps,
                guidance_scale=guidance_scale, eta=eta, strength=strength, width=width, height=height,
                on_step=on_step, **shown))
        return outputs

    def _score(self, candidates, image, hole, box: Box | None = None, prompt: str = "", params=None, per_reward=None):
        """Score candidates with the attached reward model (or stack) and pick the best
        (:func:`~prefpaint_sdk.inpaint_result.score_and_choose`); ``(None, None, None, 0)`` without one."""
        return score_and_choose(self.reward_model, candidates, image, hole, box, prompt, select=self.select,
                                lcb_c=self.lcb_c, params=params, per_reward=per_reward)


def _resize_mask_covering(mask: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Resize a hole mask so that every pixel the hole touches stays a hole (no thin holes lost)."""
    im = Image.fromarray(np.multiply(mask, 255, dtype=np.uint8), "L")
    if im.size == size:
        return im
    soft = np.asarray(im.resize(size, Image.BILINEAR))
    del im
    return Image.fromarray(np.where(soft > 0, 255, 0).astype(np.uint8), "L")
