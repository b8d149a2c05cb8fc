"""``evaluate``: the PrefPaint WinRate protocol over a set of (image, mask) cases, resumable.

For each case the model draws ``max(samples)`` samples in one batched call (sample k uses seed
``case_seed + k``), the baseline draws one, and the reward model scores them all in one call (the shared
masked prompt image is encoded once). Best-of-S takes the model's first S samples, so the samples of a
smaller S are a subset of a larger S's and the WinRate cannot decrease with S.

**Common random numbers.** By default the baseline's sample uses the same seed as the model's sample 0,
so the comparison at S = 1 is paired on the noise: differences come from the models, and two identical
models tie on every case (WinRate exactly 50%, ties counting half). ``common_seeds=False`` draws the
baseline's seed independently instead.

**Cache and resume.** With an output folder, each finished case is written to ``cache/<name>.json``
(atomically, after its images), and the run's settings to ``eval_config.json``. Running again with the
same settings skips finished cases; asking for more samples than a case has draws only the missing ones
(sample k is reproducible alone). Different settings on the same folder are refused, naming the
differences, unless ``overwrite=True`` (which clears the cache).

Output folder layout::

    eval_config.json   results.json   results.csv   report.html   contact_sheet.png
    cache/<case>.json
    images/<case>/input.png  mask.png  overlay.png  [target.png]
                  model_k{k}_seed{seed}.png  baseline_seed{seed}.png
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError, InvalidInputError, PrefPaintError
from ..files import atomic_write_json, save_image
from ..imaging import fit_mask_to_image, load_image, load_mask, masked_image
from .data import EvalCase, as_cases
from .masksets import case_seed, mask_for, normalize_kind
from .metrics import masked_psnr, masked_ssim
from .report import EvalReport
from .stats import win_stats

__all__ = ["evaluate", "PROTOCOL_VERSION"]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
_GT_MODES = ("auto", "input", "none")


def _model_id(obj) -> str:
    """The id recorded in the cache's settings: a new hub revision must not reuse another's samples."""
    ident = str(getattr(obj, "model_id", None) or getattr(obj, "name", None) or type(obj).__name__)
    revision = getattr(obj, "revision", None)
    return f"{ident}@{revision}" if isinstance(revision, str) and revision else ident


def _check_samples(samples) -> tuple[int, ...]:
    s = (samples,) if isinstance(samples, int) else tuple(samples)
    if not s or any(not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < 1 for x in s):
        raise InvalidInputError(f"samples must be integers >= 1, got {samples!r}; e.g. samples=(1, 3, 10)")
    return tuple(sorted({int(x) for x in s}))


def evaluate(
    model,
    baseline,
    reward_model,
    pairs,
    samples: int | Sequence[int] = (1, 3, 10),
    *,
    out_dir: str | os.PathLike | None = None,
    masks: str = "auto",
    seed: int = 0,
    steps: int = 50,
    prompt: str = "",
    ground_truth: str = "auto",
    common_seeds: bool = True,
    tie_tolerance: float = 0.0,
    ci: str = "wilson",
    confidence: float = 0.95,
    inpaint_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    offline: bool | None = None,
    overwrite: bool = False,
    write_report: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> EvalReport:
    """Compare ``model`` with ``baseline`` by the PrefPaint WinRate protocol.

    Args:
        model / baseline: inpainters, called as ``m(image, mask, prompt=, num_candidates=, seed=, steps=,
            **inpaint_kwargs)`` and returning an object with ``.candidates`` (a list of PIL images at the
            input's size), like :class:`~prefpaint_sdk.Inpainter`; or a model id / folder to load one.
            ``baseline=None`` loads the base SD-inpainting model.
        reward_model: anything with ``.score(images, masked_images=...)`` returning ``.scores`` (and
            ``.bounds`` or ``None``), like :class:`~prefpaint_sdk.RewardModel`; or an id / folder;
            ``None`` loads the default PrefPaint reward model.
        pairs: a data folder (see :mod:`prefpaint_sdk.evaluation.data`) or a list of cases.
        samples: the S values to report; the model draws ``max(samples)`` per case.
        out_dir: folder for images, cache and results (a new temporary folder when ``None``).
        masks: "auto" (given masks; generated "random" ones where missing), "given" (every case must have
            one), or a kind to generate for every case: "warp", "outpaint", "outpaint-square",
            "outpaint-strip", "strokes", "random" (see :mod:`prefpaint_sdk.evaluation.masksets`).
        seed: the run's seed; each case's seeds derive from it and the case name.
        steps: denoising steps for both models.
        prompt: text prompt for both models (PrefPaint uses none).
        ground_truth: "auto" (the case's target; else the input image itself where the mask was generated,
            since the hole's real pixels were hidden from the models), "input" (always the input image), or
            "none". Masked PSNR/SSIM are reported where there is ground truth.
        common_seeds: the baseline reuses the seed of the model's sample 0 (see the module docstring).
        tie_tolerance / ci / confidence: how outcomes and intervals are computed (:mod:`.stats`); they do not
            affect the cache and can be changed later with :meth:`EvalReport.with_stats`.
        inpaint_kwargs: more keyword arguments for both models' calls (``guidance_scale``, ``mask_blur``, ...).
        device / dtype / offline: used only for models given by id.
        overwrite: clear a cache made with other settings instead of refusing.
        write_report: write results.json, results.csv, report.html and contact_sheet.png to ``out_dir``.
        progress: called as ``progress(done, total, case_name)`` after each case.

    Returns:
        An :class:`~prefpaint_sdk.evaluation.EvalReport`.

    Raises:
        InvalidInputError: bad samples, masks, ground_truth or steps.
        ConfigError: ``out_dir`` holds a run with other settings (and not ``overwrite``).
        DataError: the data cannot be read, or every case failed.
        ModelNotFoundError: a model given by id cannot be loaded.
    """
    samples_t = _check_samples(samples)
    smax = samples_t[-1]
    if smax > 1000:
        raise InvalidInputError(f"samples up to {smax} per case is more than the 1000 the seed layout allows")
    mask_mode = masks if masks in ("auto", "given") else normalize_kind(masks)
    if ground_truth not in _GT_MODES:
        raise InvalidInputError(f"ground_truth must be one of {', '.join(_GT_MODES)}, got '{ground_truth}'")
    if not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"steps must be an integer >= 1, got {steps!r}")
    # Statistics settings are checked now, not after hours of sampling.
    win_stats([1.0], [0.0], tie_tolerance=tie_tolerance, ci=ci, confidence=confidence, n_boot=10)
    cases = as_cases(pairs)
    model, baseline, reward_model = _load_models(model, baseline, reward_model, device, dtype, offline)
    kwargs = dict(inpaint_kwargs or {})

    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="prefpaint-eval-"))
    if out_dir is None:
        log.info("writing evaluation outputs to %s", out)
    config = dict(
        protocol=PROTOCOL_VERSION, model=_model_id(model), baseline=_model_id(baseline),
        reward_model=_model_id(reward_model), steps=steps, seed=int(seed), masks=masks, prompt=prompt,
        ground_truth=ground_truth, common_seeds=bool(common_seeds), inpaint_kwargs=_jsonable(kwargs),
    )
    _claim_folder(out, config, overwrite)

    runner = _CaseRunner(model, baseline, reward_model, out, config, mask_mode, smax, kwargs)
    records, failures = [], []
    for i, case in enumerate(cases):
        try:
            records.append(runner.run(case))
        except (PrefPaintError, OSError) as exc:
            # One bad input must not stop an evaluation of hundreds: report it and go on.
            log.warning("case '%s' failed: %s", case.name, exc)
            failures.append(dict(name=case.name, error=str(exc)))
        if progress is not None:
            progress(i + 1, len(cases), case.name)
    if not records:
        raise DataError(f"all {len(cases)} cases failed; the first error: {failures[0]['error']}")
    log.info("%d cases evaluated (%d computed, %d from the cache), %d failed",
             len(records), runner.computed, len(records) - runner.computed, len(failures))
    report = EvalReport(config=config, samples=samples_t, cases=records, failures=failures, out_dir=out,
                        tie_tolerance=tie_tolerance, ci=ci, confidence=confidence)
    if write_report:
        report.write(out)
    return report


def _load_models(model, baseline, reward_model, device, dtype, offline):
    if isinstance(model, (str, os.PathLike)) or isinstance(baseline, (str, os.PathLike)) or baseline is None:
        from ..hub import BASE_MODEL
        from ..inpainter import Inpainter

        def load(m):
            return Inpainter.from_pretrained(m, device=device, dtype=dtype, offline=offline)

        model = load(model) if isinstance(model, (str, os.PathLike)) else model
        baseline = load(BASE_MODEL if baseline is None else baseline) if not callable(baseline) else baseline
    if reward_model is None or isinstance(reward_model, (str, os.PathLike)):
        from ..reward import RewardModel

        reward_model = RewardModel.from_pretrained(reward_model, device=device, offline=offline)
    for what, m in (("model", model), ("baseline", baseline)):
        if not callable(m):
            raise InvalidInputError(f"{what} is a {type(m).__name__}; pass an Inpainter (or anything called like one) or a model id")
    if not hasattr(reward_model, "score"):
        raise InvalidInputError(f"reward_model is a {type(reward_model).__name__} without .score(); pass a RewardModel or its id")
    return model, baseline, reward_model


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _claim_folder(out: Path, config: dict, overwrite: bool) -> None:
    """Record the run's settings in ``eval_config.json``, refusing a folder that holds another run's cache."""
    path = out / "eval_config.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if diff and not overwrite:
            detail = "; ".join(f"{k}: {old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
            raise ConfigError(f"'{out}' holds an evaluation with other settings ({detail}); "
                              "use another output folder, or pass --overwrite (overwrite=True) to discard it")
        if diff:
            log.warning("discarding the cached evaluation in %s (settings changed: %s)", out, ", ".join(diff))
            for sub in ("cache", "images"):
                shutil.rmtree(out / sub, ignore_errors=True)
    elif out.exists() and not out.is_dir():
        raise InvalidInputError(f"output '{out}' is a file; pass a folder")
    atomic_write_json(path, config)


class _CaseRunner:
    """Runs (or resumes) one case at a time; counts the cases it had to compute."""

    def __init__(self, model, baseline, reward_model, out: Path, config: dict, mask_mode: str, smax: int, kwargs):
        self.model, self.baseline, self.rm = model, baseline, reward_model
        self.out, self.config, self.mask_mode, self.smax, self.kwargs = out, config, mask_mode, smax, kwargs
        self.computed = 0

    def run(self, case: EvalCase) -> dict:
        cache = self.out / "cache" / f"{case.name}.json"
        rec = None
        if cache.is_file():
            try:
                rec = json.loads(cache.read_text())
            except json.JSONDecodeError:
                log.warning("cache file %s is unreadable; recomputing the case", cache)
        if rec is not None and len(rec["model"]["seeds"]) >= self.smax:
            return rec
        t0 = time.perf_counter()
        rec = self._compute(case, rec)
        rec["seconds"] = rec.get("seconds", 0.0) + time.perf_counter() - t0
        atomic_write_json(cache, rec)
        self.computed += 1
        return rec

    def _inputs(self, case: EvalCase):
        image = load_image(case.image)
        kind = "given"
        if case.mask is not None and self.mask_mode in ("auto", "given"):
            hole = fit_mask_to_image(load_mask(case.mask), image.size)
        elif self.mask_mode == "given":
            raise DataError(f"case '{case.name}' has no mask but masks='given'; add masks/{case.name}.png or use --masks strokes")
        else:
            hole, kind = mask_for("random" if self.mask_mode == "auto" else self.mask_mode, image.size, case.name,
                                  self.config["seed"], case.depth)
        if not hole.any():
            raise DataError(f"the mask of case '{case.name}' is empty (nothing to inpaint); fix or drop it")
        gt_mode = self.config["ground_truth"]
        target = None
        if gt_mode == "input" or (gt_mode == "auto" and case.target is None and kind != "given"):
            target = image
        elif gt_mode == "auto" and case.target is not None:
            target = load_image(case.target)
            if target.size != image.size:
                raise DataError(f"target of case '{case.name}' is {target.size[0]}x{target.size[1]} but its image is "
                                f"{image.size[0]}x{image.size[1]}; give ground truth at the input's size")
        return image, hole, kind, target

    def _compute(self, case: EvalCase, rec: dict | None) -> dict:
        image, hole, kind, target = self._inputs(case)
        name = case.name
        folder = self.out / "images" / name
        rel = lambda p: p.relative_to(self.out).as_posix()  # noqa: E731
        s0 = case_seed(self.config["seed"], name)
        b_seed = s0 if self.config["common_seeds"] else case_seed(self.config["seed"], name, "baseline")
        if rec is None:
            files = dict(input=folder / "input.png", mask=folder / "mask.png", overlay=folder / "overlay.png")
            save_image(image, files["input"], overwrite=True)
            save_image(Image.fromarray(hole.astype(np.uint8) * 255, "L"), files["mask"], overwrite=True)
            save_image(mask_overlay(image, hole), files["overlay"], overwrite=True)
            if target is not None and target is not image:
                files["target"] = folder / "target.png"
                save_image(target, files["target"], overwrite=True)
            rec = dict(name=name, size=list(image.size), mask_kind=kind, coverage=float(hole.mean()), seed=s0,
                       files={k: rel(v) for k, v in files.items()}, has_ground_truth=target is not None,
                       model=dict(seeds=[], scores=[], bounds=[], files=[], psnr=[], ssim=[]), baseline=None)
        have = len(rec["model"]["seeds"])
        need = self.smax - have
        call = dict(prompt=self.config["prompt"], steps=self.config["steps"], **self.kwargs)
        new = list(self.model(image, hole, num_candidates=need, seed=s0 + have, **call).candidates)[:need]
        if len(new) != need:
            raise DataError(f"model returned {len(new)} candidates for case '{name}', {need} were asked for")
        to_score = new
        if rec["baseline"] is None:
            to_score = new + [list(self.baseline(image, hole, num_candidates=1, seed=b_seed, **call).candidates)[0]]
        masked = masked_image(image, hole, tuple(getattr(self.rm, "mask_fill", (0, 0, 0))))
        out = self.rm.score(to_score, masked_images=[masked] * len(to_score))
        scores = [float(x) for x in np.asarray(out.scores, dtype=np.float64).ravel()]
        bounds = getattr(out, "bounds", None)
        bounds = [float(x) for x in np.asarray(bounds, dtype=np.float64).ravel()] if bounds is not None else None
        for k, im in enumerate(to_score):
            is_base = k >= len(new)
            seed_k = b_seed if is_base else s0 + have + k
            path = folder / (f"baseline_seed{seed_k}.png" if is_base else f"model_k{have + k}_seed{seed_k}.png")
            save_image(im, path, overwrite=True)
            psnr = masked_psnr(im, target, hole) if target is not None else None
            ssim = masked_ssim(im, target, hole) if target is not None else None
            bound = bounds[k] if bounds is not None else None
            if is_base:
                rec["baseline"] = dict(seed=seed_k, score=scores[k], bound=bound, file=rel(path), psnr=psnr, ssim=ssim)
            else:
                m = rec["model"]
                m["seeds"].append(seed_k)
                m["scores"].append(scores[k])
                m["bounds"].append(bound)
                m["files"].append(rel(path))
                m["psnr"].append(psnr)
                m["ssim"].append(ssim)
        return rec


def mask_overlay(image: Image.Image, hole: np.ndarray, color=(255, 0, 180), alpha: float = 0.55) -> Image.Image:
    """The input with the hole tinted, so a reader sees what was masked."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    a[hole] = a[hole] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
