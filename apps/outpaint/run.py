"""Running an extension plan with an inpainter: prefill, inpaint, composite, optional seam pass."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prefpaint_sdk import InvalidInputError, PrefPaintError, load_image
from prefpaint_sdk.utils import Arg, image_writer, json_writer, sidecar_path, write_set

from .blend import PREFILL_MODES, derive_seed, reach, seam_band
from .blend import prefill as prefill_window
from .plan import DEFAULT_MAX_SIZE, ExtendPlan, PlanStep, plan_extension

__all__ = ["ExtendResult", "StepRecord", "check_run_options", "extend"]

log = logging.getLogger("prefpaint_apps.outpaint")

ProgressFn = Callable[[int, int], None]

DEFAULT_SEAM_STRENGTH = 0.3
_SEAM_PURPOSE = 1  # seed stream of the seam passes, apart from the steps' stream 0


@dataclass
class StepRecord:
    """What one step did: its box, the seeds it used, and the reward scores when a reward model picked.

    ``new`` is the step's (first) new box; ``new_extra`` the rest of an L-shaped new area, if any.
    ``seed`` is the step's base seed (candidate k used ``seed + k``); ``best_index`` the candidate kept.
    ``seam_seed`` / ``seam_scores`` describe the seam pass, when it ran.
    """

    index: int
    side: str
    window: tuple[int, int, int, int]
    new: tuple[int, int, int, int]
    seed: int
    new_extra: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] | None = None
    best_index: int = 0
    seam_seed: int | None = None
    seam_scores: list[float] | None = None
    seconds: float = 0.0


@dataclass
class ExtendResult:
    """An extended image with everything needed to reproduce it.

    Attributes:
        image: the extended image, exactly ``plan.canvas_size``.
        plan: the :class:`~prefpaint_apps.outpaint.plan.ExtendPlan` that was run.
        seed: the base seed; every step's seed derives from it (:func:`~prefpaint_apps.outpaint.blend.derive_seed`).
        steps: one :class:`StepRecord` per plan step.
        params: the call's parameters, after defaults.
        timings: seconds per phase.
        model_id / revision: the inpainter's weights, when it reports them.
    """

    image: Image.Image
    plan: ExtendPlan
    seed: int
    steps: list[StepRecord]
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    model_id: str | None = None
    revision: str | None = None

    @property
    def seeds(self) -> list[int]:
        """Per-step seeds."""
        return [s.seed for s in self.steps]

    @property
    def scores(self) -> list[list[float] | None]:
        """Per-step candidate scores (``None`` for a step scored by no reward model)."""
        return [s.scores for s in self.steps]

    @property
    def model_calls(self) -> int:
        """Inpainter calls made: one per step, plus one per seam pass."""
        return len(self.steps) + sum(s.seam_seed is not None for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able facts (everything but the pixels), as written to the sidecar file."""
        return {
            "kind": "extend",
            "model_id": self.model_id,
            "revision": self.revision,
            "size": list(self.image.size),
            "seed": self.seed,
            "params": self.params,
            "plan": self.plan.to_dict(),
            "steps": [
                {
                    "index": s.index, "side": s.side, "window": list(s.window), "new": list(s.new),
                    **({"new_extra": [list(b) for b in s.new_extra]} if s.new_extra else {}),
                    "seed": s.seed, "scores": s.scores, "best_index": s.best_index, "seam_seed": s.seam_seed,
                    "seam_scores": s.seam_scores, "seconds": round(s.seconds, 4),
                }
                for s in self.steps
            ],
            "model_calls": self.model_calls,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def save(self, path: str | os.PathLike, overwrite: bool = False, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
        """Write the image and its sidecar JSON (``out.png`` → ``out.json``) as one output set.

        Both are checked before either is written, both are written under temporary names, and only then
        are both renamed into place: an error or Ctrl-C leaves neither (and existing files untouched).

        Args:
            path: the image file; the format follows the suffix.
            overwrite: replace existing files.
            extra: more facts for the sidecar (the CLI adds the input path).

        Returns:
            (image path, sidecar path).

        Raises:
            OutputExistsError: a file exists and ``overwrite`` is false.
            InvalidInputError: a folder given as the path, an unknown image suffix, a path ending in
                ``.json`` (it would be its own sidecar), an unwritable folder, or NaN in the facts.
        """
        image_path = Path(path)
        json_path = sidecar_path(image_path)
        if image_path.suffix.lower() == ".json":
            raise InvalidInputError(f"output '{image_path}' ends in .json; give an image suffix such as .png")
        write_set({image_path: image_writer(self.image, image_path),
                   json_path: json_writer({**self.to_dict(), **(extra or {})}, json_path)}, overwrite)
        return image_path, json_path


# --------------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(Arg(name), f" must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_run_options(*, window: int | None = None, feather: int | None = None, prefill: str = "replicate",
                      seam_pass: bool = False, seam_strength: float | None = None, strength: float = 1.0,
                      num_candidates: int = 1, steps: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """Validate :func:`extend`'s run options without a model, so a CLI can fail before loading one.

    Args:
        as :func:`extend`; ``window=None`` stands for the model's size (unknown here: pass the model's
        working size, ``prefpaint_sdk.model_info(model).resolution``, to check ``feather`` against it);
        ``steps=None`` for the model family's default (checked once the model is known).

    Returns:
        The options after defaults: ``window``, ``feather`` (``max(1, window // 32)`` when ``None`` and the
        window is known), ``num_candidates``, ``steps``, ``seed`` (may stay ``None``) and ``seam_strength`` (0.3
        with a seam pass when ``None``).

    Raises:
        InvalidInputError: a value out of range; the message names it, its value and the range.
    """
    window = None if window is None else _check_int("window", window, 8)
    if feather is not None:
        feather = _check_int("feather", feather, 0)
    elif window is not None:
        feather = max(1, window // 32)
    if prefill not in PREFILL_MODES:
        raise InvalidInputError(Arg("prefill"), f" must be one of {', '.join(PREFILL_MODES)}; got '{prefill}'")
    num_candidates = _check_int("num_candidates", num_candidates, 1)
    steps = None if steps is None else _check_int("steps", steps, 1)
    if not 0.0 < float(strength) <= 1.0:
        raise InvalidInputError(Arg("strength"), f" must lie in (0, 1], got {strength}")
    if steps is None:
        pass  # the family's default steps: checked by extend() once the model is known
    # diffusers runs int(steps * strength) denoising steps and refuses zero.
    elif int(steps * float(strength)) < 1:
        raise InvalidInputError(Arg("steps", steps), " at ", Arg("strength", strength), " leaves no denoising step; raise ", Arg("steps"),
                                f" to at least {math.ceil(1 / float(strength))}")
    if seam_strength is not None and not seam_pass:
        raise InvalidInputError(Arg("seam_strength"), " has no effect without ", Arg("seam_pass", True), "; add ",
                                Arg("seam_pass", True), " or drop ", Arg("seam_strength"))
    if seam_pass:
        seam_strength = DEFAULT_SEAM_STRENGTH if seam_strength is None else seam_strength
        if not 0.0 < float(seam_strength) < 1.0:
            raise InvalidInputError(Arg("seam_strength"), f" must lie in (0, 1) (a low-strength re-render), got {seam_strength}")
        if steps is not None and int(steps * float(seam_strength)) < 1:
            raise InvalidInputError(
                Arg("steps", steps), " at ", Arg("seam_strength", seam_strength), " leaves the seam pass no denoising step; raise ",
                Arg("steps"), f" to at least {math.ceil(1 / float(seam_strength))} or ", Arg("seam_strength")
            )
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    return dict(window=window, feather=feather, num_candidates=num_candidates, steps=steps, seed=seed,
                seam_strength=seam_strength)


def extend(
    inpainter,
    image,
    ratio: float | None = None,
    *,
    ratio_x: float | None = None,
    ratio_y: float | None = None,
    left: int | None = None,
    right: int | None = None,
    top: int | None = None,
    bottom: int | None = None,
    anchor: str = "center",
    window: int | None = None,
    step_frac: float = 0.3,
    overlap: int | None = None,
    feather: int | None = None,
    prefill: str = "replicate",
    seam_pass: bool = False,
    seam_strength: float | None = None,
    num_candidates: int = 1,
    prompt: str = "",
    negative_prompt: str = "",
    seed: int | None = None,
    steps: int | None = None,
    guidance_scale: float | None = None,
    eta: float | None = None,
    strength: float = 1.0,
    max_size: int = DEFAULT_MAX_SIZE,
    progress: ProgressFn | None = None,
) -> ExtendResult:
    """Extend (outpaint) ``image`` step by step, each step an inpainting of new border beside known pixels.

    Each step prefills its new area, inpaints its window, and composites the result with a feathered
    seam. Only the new area and ``feather`` px around it change, so the original keeps its pixels byte
    for byte except within ``feather`` px of its extended edges.

    Args:
        inpainter: an :class:`prefpaint_sdk.Inpainter`, or anything with its call signature.
        image: path, PIL image, numpy array or torch tensor.
        ratio: scale both sides: the canvas is ``ratio·W × ratio·H``. Default 2 when no size is given.
        ratio_x / ratio_y: scale one side each instead.
        left / right / top / bottom: pixels to add per side instead of ratios.
        anchor: where the original sits for the ratio forms: center, left, right, top or bottom.
        window: largest window side in canvas px; default the inpainter's working size, so the model
            sees every pixel at its own resolution however large the image.
        step_frac: the most new area one step may add, as a share of its window, in (0, 0.5].
        overlap: least overlap between neighbouring windows of a strip, px; default ``window // 4``.
        feather: width of the blended seam on the known side, px; default ``max(1, window // 32)``.
        prefill: how new pixels start: replicate, blur or grey (see :data:`PREFILL_MODES`).
        seam_pass: after each step, re-render a thin band across its seam at ``seam_strength``.
        seam_strength: denoising strength of the seam pass, in (0, 1); default 0.3. Refused without
            ``seam_pass`` (it would have no effect).
        num_candidates: candidates per step; with a reward model on the inpainter the best is kept.
        prompt / negative_prompt / steps / guidance_scale / eta: passed to the inpainter; ``None`` means the
            model family's default (``inpainter.defaults``; passed on as ``None`` by an inpainter without them).
        seed: base seed; step ``i`` uses ``derive_seed(seed, i)``. Drawn at random (and recorded) if ``None``.
        strength: denoising strength of the steps; below 1 the prefill shapes the result.
        max_size: largest canvas side accepted, px.
        progress: called as ``progress(calls_done, calls_total)`` after every model call.

    Returns:
        An :class:`ExtendResult` whose image is exactly the planned canvas size.

    Raises:
        InvalidInputError: unreadable image; ratio below 1; zero or negative extension; a canvas beyond
            ``max_size``; any other parameter out of range (the message names it and the fix).
        ConfigError: size arguments of two kinds at once.
        PrefPaintError: the inpainter returned an image of the wrong size.
    """
    from .checks import validate

    validate(seed=seed, window=window, feather=feather, prefill=prefill, seam_pass=seam_pass,
             seam_strength=seam_strength, strength=strength, num_candidates=num_candidates, steps=steps)
    t0 = time.perf_counter()
    img = load_image(image)
    if window is None:
        window = int(inpainter.resolution)
    # The family's defaults; an inpainter without them resolves its own (None is passed through).
    defaults = getattr(inpainter, "defaults", None) or {}
    steps = defaults.get("steps") if steps is None else steps
    guidance_scale = defaults.get("guidance_scale") if guidance_scale is None else guidance_scale
    eta = defaults.get("eta") if eta is None else eta
    opts = check_run_options(window=window, feather=feather, prefill=prefill, seam_pass=seam_pass,
                             seam_strength=seam_strength, strength=strength, num_candidates=num_candidates,
                             steps=steps, seed=seed)
    window, feather, num_candidates, steps = opts["window"], opts["feather"], opts["num_candidates"], opts["steps"]
    seam_strength = opts["seam_strength"]
    seed = random.SystemRandom().randrange(2**31) if seed is None else opts["seed"]

    plan = plan_extension(img.size, ratio=ratio, ratio_x=ratio_x, ratio_y=ratio_y, left=left, right=right, top=top,
                          bottom=bottom, anchor=anchor, window=window, step_frac=step_frac, overlap=overlap,
                          max_size=max_size)
    t_plan = time.perf_counter()
    W, H = plan.canvas_size
    log.info("extending %dx%d to %dx%d in %d steps (max new share %.2f)", img.width, img.height, W, H,
             plan.num_steps, plan.max_new_fraction)

    canvas = np.zeros((H, W, 3), np.uint8)
    b = plan.image_box
    canvas[b.y0:b.y1, b.x0:b.x1] = np.asarray(img)
    # Seam band: the new side gets the full feather width; the known side is split between the band and
    # the SDK's feather around it, so the seam pass reaches no further into known pixels than a step does.
    seam_out = feather // 2
    seam_blur = feather - seam_out
    seam_in = max(2, feather)

    call_kwargs = dict(prompt=prompt, negative_prompt=negative_prompt, num_candidates=num_candidates, steps=steps,
                       guidance_scale=guidance_scale, eta=eta, crop_margin=-1, keep_unmasked=True)
    total_calls = plan.num_steps * (2 if seam_pass else 1)
    calls = 0
    records: list[StepRecord] = []
    for step in plan.steps:
        ts = time.perf_counter()
        rec = _run_step(inpainter, canvas, step, seed, feather, prefill, strength, call_kwargs)
        calls += 1
        if progress is not None:
            progress(calls, total_calls)
        if seam_pass:
            _run_seam_pass(inpainter, canvas, step, seed, rec, seam_in, seam_out, seam_blur, seam_strength, call_kwargs)
            calls += 1
            if progress is not None:
                progress(calls, total_calls)
        rec.seconds = time.perf_counter() - ts
        records.append(rec)
    t_end = time.perf_counter()

    params = dict(
        ratio=ratio, ratio_x=ratio_x, ratio_y=ratio_y, left=left, right=right, top=top, bottom=bottom,
        anchor=anchor, window=window, step_frac=plan.step_frac, overlap=plan.overlap, feather=feather,
        prefill=prefill, seam_pass=seam_pass, seam_strength=seam_strength if seam_pass else None,
        num_candidates=num_candidates, prompt=prompt, negative_prompt=negative_prompt, seed=seed, steps=steps,
        guidance_scale=guidance_scale, eta=eta, strength=strength, max_size=max_size,
    )
    return ExtendResult(
        image=Image.fromarray(canvas, "RGB"), plan=plan, seed=seed, steps=records, params=params,
        timings=dict(plan_s=t_plan - t0, steps_s=t_end - t_plan, total_s=t_end - t0),
        model_id=getattr(inpainter, "model_id", None), revision=getattr(inpainter, "revision", None),
    )


def _window_view(canvas: np.ndarray, step: PlanStep) -> tuple[np.ndarray, np.ndarray]:
    """The step's window as a writable view of the canvas, and its new-area mask."""
    w = step.window
    view = canvas[w.y0:w.y1, w.x0:w.x1]
    new = np.zeros(view.shape[:2], bool)
    for n in step.parts:  # one box for a strip step, an L-shape (several boxes) for a corner step
        new[n.y0 - w.y0:n.y1 - w.y0, n.x0 - w.x0:n.x1 - w.x0] = True
    return view, new


def _call(inpainter, pixels: np.ndarray, mask: np.ndarray, what: str, **kwargs):
    result = inpainter(Image.fromarray(pixels, "RGB"), mask, **kwargs)
    out = np.asarray(result.image.convert("RGB"))
    if out.shape != pixels.shape:
        raise PrefPaintError(
            f"the inpainter returned a {out.shape[1]}x{out.shape[0]} image for a {pixels.shape[1]}x{pixels.shape[0]} "
            f"window ({what}); an inpainter must return exactly its input's size"
        )
    return result, out


def _run_step(inpainter, canvas, step, base_seed, feather, prefill, strength, call_kwargs) -> StepRecord:
    view, new = _window_view(canvas, step)
    pixels = prefill_window(view, new, prefill)
    seed = derive_seed(base_seed, step.index)
    result, out = _call(inpainter, pixels, new, f"step {step.index}", seed=seed, mask_blur=feather,
                        strength=strength, **call_kwargs)
    # Write back only what this step may change: the new area and its feather band. The inpainter
    # already keeps other pixels byte for byte; this makes the guarantee hold for any inpainter.
    touched = reach(new, feather)
    view[touched] = out[touched]
    return StepRecord(index=step.index, side=step.side, window=step.window.as_tuple(), new=step.new.as_tuple(),
                      new_extra=[b.as_tuple() for b in step.extra], seed=seed, scores=_floats(result.scores), best_index=int(getattr(result, "best_index", 0)))


def _run_seam_pass(inpainter, canvas, step, base_seed, rec, seam_in, seam_out, seam_blur, seam_strength,
                   call_kwargs) -> None:
    view, new = _window_view(canvas, step)
    band = seam_band(new, seam_in, seam_out)
    if not band.any():
        return
    seed = derive_seed(base_seed, step.index, _SEAM_PURPOSE)
    result, out = _call(inpainter, np.ascontiguousarray(view), band, f"seam pass of step {step.index}", seed=seed,
                        mask_blur=seam_blur, strength=seam_strength, **call_kwargs)
    touched = reach(band, seam_blur)
    view[touched] = out[touched]
    rec.seam_seed = seed
    rec.seam_scores = _floats(result.scores)


def _floats(values) -> list[float] | None:
    return None if values is None else [float(v) for v in values]
