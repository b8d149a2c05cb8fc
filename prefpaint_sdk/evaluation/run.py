"""``evaluate``: the PrefPaint WinRate protocol over a set of (image, mask) cases, resumable.

For each case the model draws ``max(samples)`` samples in one batched call (sample k uses seed
``case_seed + k``), the baseline draws one, and the reward model scores them all in one call (the shared
masked prompt image is encoded once). Best-of-S takes the model's first S samples, so the samples of a
smaller S are a subset of a larger S's and the WinRate cannot decrease with S.

**Common random numbers.** By default the baseline's sample uses the same seed as the model's sample 0,
so the comparison at S = 1 is paired on the noise: differences come from the models, and two identical
models tie on every case (WinRate exactly 50%, ties counting half). ``common_seeds=False`` draws the
baseline's seed independently instead.

**Reward framing.** The reward model judges each case in one frame: the context box the model inpainted
(``InpaintResult.box``; the whole image for a model that reports none), through the one framing function
:func:`prefpaint_sdk.reward.framing.reward_views` that best-of-N and the aligner use too. The baseline's
sample is scored in the same frame, so the comparison is paired on the framing as well. The box is
recorded in each case (``box``).

**Cache and resume.** With an output folder, each finished case is written as one output set: its new
images and ``cache/<name>.json`` appear together or not at all (the cache entry is the commit). The run's
settings go to ``eval_config.json``. Running again with the same settings skips finished cases; asking for
more samples than a case has draws only the missing ones (sample k is reproducible alone). Different
settings on the same folder are refused, naming the differences, unless ``overwrite=True`` (which clears
the cache and the old results).

The settings name the models by what they *are* (:mod:`.identity`): hub id and commit, or a SHA-256 of a
local folder's weight files, or of an in-memory model's tensors. Retraining ``runs/x/merged`` therefore
changes the settings, and its old samples are never reused. Per-file digests are memoised in
``fingerprints.json`` by (path, size, mtime_ns).

**Corrupt cache entries** (a truncated, empty or wrong-type ``cache/<name>.json``, or a missing or
truncated image it refers to) are a cache miss: a warning names the file, and the case is computed again
from its seeds. A corrupt ``eval_config.json`` is refused with a
:class:`~prefpaint_sdk.errors.CorruptFileError` naming it (its settings decide whether the cache may be
reused at all), unless ``overwrite=True``.

**Bad inputs are skipped, the run goes on.** Before any model loads, every case's image, mask and target
files are checked by their headers (readable, within the pixel limit of
:func:`prefpaint_sdk.imaging.get_max_pixels`); a case that fails, or that fails later while it runs, is
reported in ``EvalReport.failures`` (and the report's "Skipped cases") and the others go on.

Output folder layout::

    eval_config.json   results.json   results.csv   report.html   contact_sheet.png   fingerprints.json
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

from ..errors import ConfigError, CorruptFileError, DataError, InvalidInputError, PrefPaintError
from ..files import atomic_write_json, check_output_dir, check_outputs, image_writer, json_writer, write_set
from ..imaging import check_image_file, dilate_mask, fit_mask_to_image, load_image, load_mask
from ..reward.framing import mask_fill_of, reward_views
from ..reward.winrate import check_tie_tolerance, win_stats
from ..validation import finite
from .data import EvalCase, as_cases
from .identity import model_key, read_memo
from .masksets import case_seed, mask_for, normalize_kind
from .metrics import masked_psnr, masked_ssim
from .report import REPORT_FILES, EvalReport

__all__ = ["evaluate", "PROTOCOL_VERSION"]

log = logging.getLogger(__name__)

# 2: rewards framed by the context box (reward.framing), models keyed by fingerprint, ``box`` in each case.
PROTOCOL_VERSION = 2
_GT_MODES = ("auto", "input", "none")
CONFIG_FILE = "eval_config.json"
FINGERPRINTS_FILE = "fingerprints.json"


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
            affect the cache and can be changed later with :meth:`EvalReport.with_stats`. ``tie_tolerance``
            must be finite and >= 0.
        inpaint_kwargs: more keyword arguments for both models' calls (``guidance_scale``, ``mask_blur``, ...).
        device / dtype / offline: used only for models given by id.
        overwrite: clear a cache made with other settings instead of refusing.
        write_report: write results.json, results.csv, report.html and contact_sheet.png to ``out_dir``.
        progress: called as ``progress(done, total, case_name)`` after each case.

    Returns:
        An :class:`~prefpaint_sdk.evaluation.EvalReport`.

    Raises:
        InvalidInputError: bad samples, masks, ground_truth, steps, tie_tolerance, ci or confidence; an
            ``out_dir`` that is a file or cannot be written. All raised before any model loads.
        ConfigError: ``out_dir`` holds a run with other settings (and not ``overwrite``).
        CorruptFileError: ``out_dir``'s ``eval_config.json`` is unreadable (and not ``overwrite``).
        DataError: the data cannot be read, or every case failed or was skipped.
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
    tie_tolerance = check_tie_tolerance(tie_tolerance)
    win_stats([1.0], [0.0], tie_tolerance=tie_tolerance, ci=ci, confidence=confidence, n_boot=10)
    kwargs = dict(inpaint_kwargs or {})
    _jsonable(kwargs)  # settings that cannot be recorded are refused before the models load
    cases = as_cases(pairs)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        _check_out_dir(out)
    failed: dict[str, str] = _screen_inputs(cases, mask_mode, ground_truth)
    if len(failed) == len(cases):
        first = next(iter(failed.values()))
        raise DataError(f"all {len(cases)} cases failed their input checks, before any model loaded; the first: {first}")
    model, baseline, reward_model = _load_models(model, baseline, reward_model, device, dtype, offline)

    if out is None:
        out = Path(tempfile.mkdtemp(prefix="prefpaint-eval-"))
        log.info("writing evaluation outputs to %s", out)
    memo = read_memo(out / FINGERPRINTS_FILE)
    config = dict(
        protocol=PROTOCOL_VERSION, model=model_key(model, memo), baseline=model_key(baseline, memo),
        reward_model=model_key(reward_model, memo), steps=steps, seed=int(seed), masks=masks, prompt=prompt,
        ground_truth=ground_truth, common_seeds=bool(common_seeds), inpaint_kwargs=_jsonable(kwargs),
    )
    _claim_folder(out, config, overwrite)
    if memo:
        atomic_write_json(out / FINGERPRINTS_FILE, memo)

    runner = _CaseRunner(model, baseline, reward_model, out, config, mask_mode, smax, kwargs)
    records = []
    for i, case in enumerate(cases):
        if case.name not in failed:
            try:
                records.append(runner.run(case))
            except (PrefPaintError, OSError) as exc:
                # One bad input must not stop an evaluation of hundreds: report it and go on.
                log.warning("case '%s' skipped: %s", case.name, exc)
                failed[case.name] = str(exc)
        if progress is not None:
            progress(i + 1, len(cases), case.name)
    failures = [dict(name=c.name, error=failed[c.name]) for c in cases if c.name in failed]
    if not records:
        raise DataError(f"all {len(cases)} cases failed; the first error: {failures[0]['error']}")
    log.info("%d cases evaluated (%d computed, %d from the cache), %d skipped",
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
    for key, value in obj.items():
        if isinstance(value, float):
            finite(key, value)
    try:
        return json.loads(json.dumps(obj, default=str, allow_nan=False))
    except ValueError as exc:
        raise InvalidInputError(f"inpaint_kwargs must be finite values that JSON can record ({exc}); got {obj!r}") from None


def _check_out_dir(out: Path) -> None:
    """The output folder can hold the evaluation: not a file, and creatable and writable (before models load)."""
    check_output_dir(out, overwrite=True)  # a resumable cache: existing is fine, a file or a bad name is not
    check_outputs([out / CONFIG_FILE], overwrite=True)


def _screen_inputs(cases: list[EvalCase], mask_mode: str, ground_truth: str) -> dict[str, str]:
    """Check every case's input files by their headers; ``{case name: why}`` for the cases to skip.

    Cheap (no pixels decoded), so a decompression bomb, an oversized, unreadable or missing file is
    reported before any model loads, and the other cases still run.
    """
    skipped: dict[str, str] = {}
    for case in cases:
        files = [("image", case.image)]
        if mask_mode in ("auto", "given"):
            files.append(("mask", case.mask))
        if ground_truth == "auto":
            files.append(("target", case.target))
        for what, src in files:
            if isinstance(src, (str, os.PathLike)):
                try:
                    check_image_file(src, what=what)
                except (PrefPaintError, OSError) as exc:
                    log.warning("case '%s' skipped: %s", case.name, exc)
                    skipped[case.name] = str(exc)
                    break
    return skipped


def _read_config(path: Path, overwrite: bool) -> dict | None:
    """The settings recorded in ``eval_config.json``; ``None`` when corrupt and ``overwrite``."""
    try:
        old = json.loads(path.read_text())
        problem = None if isinstance(old, dict) else f"it holds a JSON {type(old).__name__}, not an object"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return old
    if overwrite:
        log.warning("discarding the evaluation in %s: its %s is unreadable (%s)", path.parent, path.name, problem)
        return None
    raise CorruptFileError(f"'{path}' is not a readable evaluation config ({problem}); pass --overwrite "
                           "(overwrite=True) to discard that evaluation, or use another output folder")


def _claim_folder(out: Path, config: dict, overwrite: bool) -> None:
    """Record the run's settings in ``eval_config.json``, refusing a folder that holds another run's cache."""
    path = out / CONFIG_FILE
    if path.is_file():
        old = _read_config(path, overwrite)
        diff = sorted(k for k in set(old or {}) | set(config) if (old or {}).get(k) != config.get(k))
        if old is not None and diff and not overwrite:
            detail = "; ".join(f"{k}: {old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
            raise ConfigError(f"'{out}' holds an evaluation with other settings ({detail}); "
                              "use another output folder, or pass --overwrite (overwrite=True) to discard it")
        if diff:
            if old is not None:
                log.warning("discarding the cached evaluation in %s (settings changed: %s)", out, ", ".join(diff))
            for sub in ("cache", "images"):
                shutil.rmtree(out / sub, ignore_errors=True)
            for name in REPORT_FILES:  # results of the old run must not outlive its cache
                (out / name).unlink(missing_ok=True)
    elif out.exists() and not out.is_dir():
        raise InvalidInputError(f"output '{out}' is a file; pass a folder")
    atomic_write_json(path, config)


def _record_problem(rec, name: str, out: Path) -> str | None:
    """Why a cache entry cannot be reused (wrong type, inconsistent, missing or truncated image), or None."""
    if not isinstance(rec, dict):
        return f"it holds a JSON {type(rec).__name__}, not an object"
    m, b = rec.get("model"), rec.get("baseline")
    if rec.get("name") != name or not isinstance(m, dict) or not isinstance(b, dict):
        return "it is not a case record of this evaluation"
    keys = ("seeds", "scores", "bounds", "files", "psnr", "ssim")
    if not all(isinstance(m.get(k), list) for k in keys) or len({len(m[k]) for k in keys}) != 1 or not m["seeds"]:
        return "its model samples are incomplete"
    scores = m["scores"] + [b.get("score")]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in scores):
        return "it holds a score that is not a finite number"
    box = rec.get("box")
    if box is not None and not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box)):
        return f"its box {box!r} is not four integers"
    files = rec.get("files")
    if not isinstance(files, dict):
        return "its input files are not recorded"
    for rel in [*files.values(), *m["files"], b.get("file")]:
        problem = _image_problem(out / rel) if isinstance(rel, str) else f"a file entry {rel!r} is not a path"
        if problem:
            return problem
    return None


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _image_problem(path: Path) -> str | None:
    """Why a cached image cannot be used (missing, empty, unreadable, truncated), or None; cheap for PNGs."""
    try:
        size = path.stat().st_size
        if size == 0:
            return f"image '{path}' is empty"
        with Image.open(path) as im:
            if im.format == "PNG":
                with open(path, "rb") as f:
                    f.seek(max(0, size - len(_PNG_END)))
                    if f.read() != _PNG_END:
                        return f"image '{path}' is truncated"
            else:
                im.verify()
    except FileNotFoundError:
        return f"image '{path}' is missing"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a damaged file
        return f"image '{path}' is unreadable ({type(exc).__name__}: {exc})"
    return None


class _CaseRunner:
    """Runs (or resumes) one case at a time; counts the cases it had to compute."""

    def __init__(self, model, baseline, reward_model, out: Path, config: dict, mask_mode: str, smax: int, kwargs):
        self.model, self.baseline, self.rm = model, baseline, reward_model
        self.out, self.config, self.mask_mode, self.smax, self.kwargs = out, config, mask_mode, smax, kwargs
        self.computed = 0

    def run(self, case: EvalCase) -> dict:
        cache = self.out / "cache" / f"{case.name}.json"
        rec = self._cached(cache, case.name)
        if rec is not None and len(rec["model"]["seeds"]) >= self.smax:
            return rec
        t0 = time.perf_counter()
        rec, images = self._compute(case, rec)
        rec["seconds"] = rec.get("seconds", 0.0) + time.perf_counter() - t0
        # The case's new images and its cache entry appear together or not at all (the entry is the commit).
        writers = {path: image_writer(im, path) for path, im in images.items()}
        writers[cache] = json_writer(rec, cache)
        write_set(writers, overwrite=True)
        self.computed += 1
        return rec

    def _cached(self, cache: Path, name: str) -> dict | None:
        """The case's cache entry, or ``None`` when there is none or it is corrupt (a warning names it)."""
        if not cache.exists():
            return None
        try:
            rec = json.loads(cache.read_text())
            problem = _record_problem(rec, name, self.out)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return rec
        log.warning("cache entry '%s' is corrupt (%s); discarding it and computing case '%s' again", cache, problem, name)
        return None

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

    def _compute(self, case: EvalCase, rec: dict | None) -> tuple[dict, dict[Path, Image.Image]]:
        """Draw the missing samples of a case and score them; returns the record and the images to write."""
        image, hole, kind, target = self._inputs(case)
        name = case.name
        folder = self.out / "images" / name
        rel = lambda p: p.relative_to(self.out).as_posix()  # noqa: E731
        s0 = case_seed(self.config["seed"], name)
        b_seed = s0 if self.config["common_seeds"] else case_seed(self.config["seed"], name, "baseline")
        images: dict[Path, Image.Image] = {}
        if rec is None:
            files = dict(input=folder / "input.png", mask=folder / "mask.png", overlay=folder / "overlay.png")
            images[files["input"]] = image
            images[files["mask"]] = Image.fromarray(hole.astype(np.uint8) * 255, "L")
            images[files["overlay"]] = mask_overlay(image, hole)
            if target is not None and target is not image:
                files["target"] = folder / "target.png"
                images[files["target"]] = target
            rec = dict(name=name, size=list(image.size), mask_kind=kind, coverage=float(hole.mean()), seed=s0,
                       files={k: rel(v) for k, v in files.items()}, has_ground_truth=target is not None,
                       box=None, model=dict(seeds=[], scores=[], bounds=[], files=[], psnr=[], ssim=[]), baseline=None)
        have = len(rec["model"]["seeds"])
        need = self.smax - have
        call = dict(prompt=self.config["prompt"], steps=self.config["steps"], **self.kwargs)
        result = self.model(image, hole, num_candidates=need, seed=s0 + have, **call)
        new = list(result.candidates)[:need]
        if len(new) != need:
            raise DataError(f"model returned {len(new)} candidates for case '{name}', {need} were asked for")
        if have == 0:
            box = getattr(result, "box", None)
            rec["box"] = [int(v) for v in box] if box is not None else None
        to_score = new
        if rec["baseline"] is None:
            to_score = new + [list(self.baseline(image, hole, num_candidates=1, seed=b_seed, **call).candidates)[0]]
        # One frame for the case (the model's context box), framed as best-of-N and the aligner frame it.
        reward_hole = dilate_mask(hole, int(self.kwargs.get("mask_dilate") or 0))
        views, masked = reward_views(to_score, image, reward_hole, rec["box"], mask_fill_of(self.rm))
        out = self.rm.score(views, masked_images=[masked] * len(views))
        scores = [float(x) for x in np.asarray(out.scores, dtype=np.float64).ravel()]
        bounds = getattr(out, "bounds", None)
        bounds = [float(x) for x in np.asarray(bounds, dtype=np.float64).ravel()] if bounds is not None else None
        if len(scores) != len(to_score) or not np.all(np.isfinite(scores)):
            raise DataError(f"the reward model returned {scores} for the {len(to_score)} samples of case '{name}'; "
                            "a WinRate needs one finite score per sample")
        if bounds is not None and not np.all(np.isfinite(bounds)):
            bounds = [b if np.isfinite(b) else None for b in bounds]
        for k, im in enumerate(to_score):
            is_base = k >= len(new)
            seed_k = b_seed if is_base else s0 + have + k
            path = folder / (f"baseline_seed{seed_k}.png" if is_base else f"model_k{have + k}_seed{seed_k}.png")
            images[path] = im
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
        return rec, images


def mask_overlay(image: Image.Image, hole: np.ndarray, color=(255, 0, 180), alpha: float = 0.55) -> Image.Image:
    """The input with the hole tinted, so a reader sees what was masked."""
    a = np.asarray(image.convert("RGB"), dtype=np.float32)
    a[hole] = a[hole] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
