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

**On N processes.** Under ``torchrun --nproc_per_node N`` or ``accelerate launch --num_processes N``, with a
:class:`prefpaint_sdk.jobs.JobContext` as ``ctx`` (:func:`prefpaint_sdk.jobs.run_eval_job` passes it), case
``name`` is computed by rank ``sha256(name) mod N`` only, the share manifest jobs use. Every rank checks the
folder's settings before rank 0 records them; each case is published as one output set as above; rank 0
shows progress counted from the cache entries on the shared disk; after every rank is done, every rank
reads all cases from the cache (the other ranks' failures come through the process group as JSON) and rank
0 writes the report. The seeds depend on the case alone, so the report equals the one-process run's. A
rerun with any N skips the finished cases; a case a killed process left unfinished (its temporary files
included) is computed again by its owner.

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
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import Arg, ConfigError, CorruptFileError, DataError, Hint, InvalidInputError, PrefPaintError
from ..files import atomic_write_json
from ..imaging import check_image_file
from ..reward.winrate import check_tie_tolerance
from ..validation import validated_by
from .cases import CaseRunner
from .checks import CONFIG_FILE, _check_samples, _jsonable, validate_evaluation
from .data import EvalCase, as_cases
from .identity import model_key, read_memo
from .masksets import normalize_kind
from .report import REPORT_FILES, EvalReport
from .shares import SOLO, ProcessGroup

__all__ = ["evaluate", "PROTOCOL_VERSION"]

log = logging.getLogger(__name__)

# 2: rewards framed by the context box (reward.framing), models keyed by fingerprint, ``box`` in each case.
PROTOCOL_VERSION = 2
FINGERPRINTS_FILE = "fingerprints.json"


@validated_by(validate_evaluation)
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
    steps: int | None = None,
    prompt: str = "",
    ground_truth: str = "auto",
    common_seeds: bool = True,
    tie_tolerance: float = 0.0,
    ci: str = "wilson",
    confidence: float = 0.95,
    reward_weights: Sequence[float] | str | None = None,
    inpaint_kwargs: dict[str, Any] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    offline: bool | None = None,
    overwrite: bool = False,
    write_report: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    ctx: ProcessGroup | None = None,
) -> EvalReport:
    """Compare ``model`` with ``baseline`` by the PrefPaint WinRate protocol.

    Args:
        model / baseline: inpainters, called as ``m(image, mask, prompt=, num_candidates=, seed=, steps=,
            **inpaint_kwargs)`` and returning an object with ``.candidates`` (a list of PIL images at the
            input's size), like :class:`~prefpaint_sdk.Inpainter`; or a model id / folder to load one.
            ``baseline=None`` loads the base SD-inpainting model.
        reward_model: anything with ``.score(images, masked_images=...)`` returning ``.scores`` (and
            ``.bounds`` or ``None``), like :class:`~prefpaint_sdk.RewardModel`; or an id / folder;
            ``None`` loads the default PrefPaint reward model. Or a reward stack: a list of specs
            (``["prefpaint=RM", "seam", "clip=FOLDER"]``, see :mod:`prefpaint_sdk.reward.specs`) or a
            :class:`~prefpaint_sdk.reward.RewardStack`. Each sample is then judged by one reward's own score
            (a stack of one) or the weighted raw sum ``sum_r w_r s_r`` (fixed per sample, so a resumed run
            keeps its scores; choose weights that put the rewards on comparable scales), and every reward's
            score is recorded per sample and reported in its own column (``rewards``).
        pairs: a data folder (see :mod:`prefpaint_sdk.evaluation.data`) or a list of cases.
        samples: the S values to report; the model draws ``max(samples)`` per case.
        out_dir: folder for images, cache and results (a new temporary folder when ``None``).
        masks: "auto" (given masks; generated "random" ones where missing), "given" (every case must have
            one), or a kind to generate for every case: "warp", "outpaint", "outpaint-square",
            "outpaint-strip", "strokes", "random" (see :mod:`prefpaint_sdk.evaluation.masksets`).
        seed: the run's seed; each case's seeds derive from it and the case name.
        steps: denoising steps for both models; ``None``: each model's family default (SD 50, SDXL 30, ...), so
            models of different families compare at their own settings.
        prompt: text prompt for both models (PrefPaint uses none).
        ground_truth: "auto" (the case's target; else the input image itself where the mask was generated,
            since the hole's real pixels were hidden from the models), "input" (always the input image), or
            "none". Masked PSNR/SSIM are reported where there is ground truth.
        common_seeds: the baseline reuses the seed of the model's sample 0 (see the module docstring).
        reward_weights: one weight per spec of a stack given as a list (default 1 each).
        tie_tolerance / ci / confidence: how outcomes and intervals are computed (:mod:`.stats`); they do not
            affect the cache and can be changed later with :meth:`EvalReport.with_stats`. ``tie_tolerance``
            must be finite and >= 0.
        inpaint_kwargs: more keyword arguments for both models' calls (``guidance_scale``, ``mask_blur``, ...).
        device / dtype / offline: used only for models given by id.
        overwrite: clear a cache made with other settings instead of refusing.
        write_report: write results.json, results.csv, report.html and contact_sheet.png to ``out_dir``.
        progress: called as ``progress(done, total, case_name)`` after each case (on several processes: on
            rank 0, counting every rank's cases, with an empty name).
        ctx: the processes sharing the cases, a :class:`prefpaint_sdk.jobs.JobContext` (see "On N
            processes" above; :func:`prefpaint_sdk.jobs.run_eval_job` passes it); ``None``: this process alone.

    Returns:
        An :class:`~prefpaint_sdk.evaluation.EvalReport`.

    Raises:
        InvalidInputError: bad samples, masks, ground_truth, steps, tie_tolerance, ci or confidence; an
            ``out_dir`` that is a file or cannot be written; no ``out_dir`` on several processes. All raised
            before any model loads.
        ConfigError: ``out_dir`` holds a run with other settings (and not ``overwrite``).
        CorruptFileError: ``out_dir``'s ``eval_config.json`` is unreadable (and not ``overwrite``).
        DataError: the data cannot be read, or every case failed or was skipped (then the run leaves the
            output folder as it found it: no folder when it made it).
        ModelNotFoundError: a model given by id cannot be loaded.
    """
    ctx = ctx or SOLO
    validate_evaluation(pairs, samples, out_dir=out_dir, masks=masks, steps=steps, ground_truth=ground_truth,
                        tie_tolerance=tie_tolerance, ci=ci, confidence=confidence, reward_model=reward_model,
                        reward_weights=reward_weights, inpaint_kwargs=inpaint_kwargs, world_size=ctx.world_size)
    samples_t = _check_samples(samples)
    smax = samples_t[-1]
    mask_mode = masks if masks in ("auto", "given") else normalize_kind(masks)
    tie_tolerance = check_tie_tolerance(tie_tolerance)
    stack = None
    if isinstance(reward_model, (list, tuple)):  # a stack by specs: names, weights, files and servers first
        from ..reward.choice import check_stack

        stack = check_stack(list(reward_model), reward_weights, offline=offline)
    kwargs = dict(inpaint_kwargs or {})
    cases = as_cases(pairs)
    out = Path(out_dir) if out_dir is not None else None
    failed: dict[str, str] = _screen_inputs(cases, mask_mode, ground_truth)
    if len(failed) == len(cases):
        first = next(iter(failed.values()))
        raise DataError(f"all {len(cases)} cases failed their input checks, before any model loaded; the first: {first}")
    if ctx.world_size > 1:  # rank 0 downloads into the shared cache first; then every rank loads at once
        from ..hub import BASE_MODEL, DEFAULT_REWARD_MODEL

        ids = [BASE_MODEL if m is None and what == "baseline" else m for what, m in (("model", model), ("baseline", baseline))]
        judge = DEFAULT_REWARD_MODEL if reward_model is None else reward_model
        ctx.prefetch(offline, [m for m in ids if isinstance(m, (str, os.PathLike))],
                     judge if isinstance(judge, (str, os.PathLike)) else None)
    model, baseline, reward_model = _load_models(model, baseline, reward_model, ctx.device_for(device), dtype, offline,
                                                 stack)

    made = out is None or not out.exists()  # this run makes the folder: one whose every case fails removes it
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="prefpaint-eval-"))
        log.info("writing evaluation outputs to %s", out)
    memo = read_memo(out / FINGERPRINTS_FILE)
    config = dict(
        protocol=PROTOCOL_VERSION, model=model_key(model, memo), baseline=model_key(baseline, memo),
        reward_model=_judge_key(reward_model, memo), steps=steps, seed=int(seed), masks=masks, prompt=prompt,
        ground_truth=ground_truth, common_seeds=bool(common_seeds), inpaint_kwargs=_jsonable(kwargs),
    )
    # Every rank reads the folder's settings (and refuses other ones alike) before rank 0 changes anything.
    stale = _check_folder(out, config, overwrite)
    ctx.wait()
    created = [p for p in (out / CONFIG_FILE, out / FINGERPRINTS_FILE, out / "cache", out / "images") if not p.exists()]
    if ctx.is_main:
        _claim_folder(out, config, stale)
        if memo:
            atomic_write_json(out / FINGERPRINTS_FILE, memo)
    ctx.wait()

    runner = CaseRunner(model, baseline, reward_model, out, config, mask_mode, smax, kwargs)
    mine = {c.name for c in cases if c.name not in failed and ctx.owns(c.name)}
    report_progress = None
    if ctx.world_size > 1:
        if progress is not None and ctx.is_main:
            # Rank 0 counts every rank's finished cases from the cache entries on the shared disk.
            pending = [c.name for c in cases if c.name not in failed and not runner.finished(c)]
            report_progress = ctx.disk_progress(out / "cache", pending, len(cases) - len(pending), len(cases),
                                                lambda done, total, cb=progress: cb(done, total, ""))
        progress = None  # the other ranks report nothing
    computed: dict[str, dict] = {}
    for i, case in enumerate(cases):
        if case.name in mine:
            try:
                computed[case.name] = runner.run(case)
            except (PrefPaintError, OSError) as exc:
                # One bad input must not stop an evaluation of hundreds: report it and go on.
                log.warning("case '%s' skipped: %s", case.name, exc)
                failed[case.name] = str(exc)
        if report_progress is not None:
            report_progress()
        elif progress is not None:
            progress(i + 1, len(cases), case.name)
    if ctx.world_size > 1:
        ctx.wait(poll=report_progress)
        # The other ranks' failures (their successes are on the disk); then every rank reads every case.
        shares = ctx.gather_json({"failed": failed, "computed": runner.computed})
        for share in shares:
            failed.update(share["failed"])
        runner.computed = sum(share["computed"] for share in shares)
    records = []
    for case in cases:
        if case.name in failed:
            continue
        rec = computed.get(case.name) or runner.cached(case)
        if rec is None:  # only if its process died between its barrier and now
            failed[case.name] = "no result: the process that owned this case did not finish it; run again"
        else:
            records.append(rec)
    failures = [dict(name=c.name, error=failed[c.name]) for c in cases if c.name in failed]
    if report_progress is not None:
        report_progress(force=True)
    if not records:
        if ctx.is_main:  # every rank is past its cases (gather_json above): nothing writes into the folder now
            _remove_created(out, created, made)
        raise DataError(f"all {len(cases)} cases failed; the first error: {failures[0]['error']}")
    log.info("%d cases evaluated (%d computed, %d from the cache), %d skipped",
             len(records), runner.computed, len(records) - runner.computed, len(failures))
    report = EvalReport(config=config, samples=samples_t, cases=records, failures=failures, out_dir=out,
                        tie_tolerance=tie_tolerance, ci=ci, confidence=confidence)
    if write_report and ctx.is_main:
        report.write(out)
    return report


def _load_models(model, baseline, reward_model, device, dtype, offline, stack=None):
    from ..hub import BASE_MODEL
    from ..inpainter import Inpainter

    # every model's files before any weights load: a bad baseline or reward file is named before a slow load
    for m in (model, BASE_MODEL if baseline is None else baseline):
        if isinstance(m, (str, os.PathLike)):
            Inpainter.check_files(m, offline=offline, device=device)
    if stack is None and (reward_model is None or isinstance(reward_model, (str, os.PathLike))):
        from ..reward.checks import check_reward_model

        check_reward_model(reward_model, offline=offline)
    if isinstance(model, (str, os.PathLike)) or isinstance(baseline, (str, os.PathLike)) or baseline is None:

        def load(m):
            return Inpainter.from_pretrained(m, device=device, dtype=dtype, offline=offline)

        model = load(model) if isinstance(model, (str, os.PathLike)) else model
        baseline = load(BASE_MODEL if baseline is None else baseline) if not callable(baseline) else baseline
    if stack is not None:  # checked before (check_stack): loaded after the inpainters' files were checked
        from ..reward.specs import load_stack

        reward_model = load_stack(stack[0], stack[1], device=str(device), offline=offline)
    elif reward_model is None or isinstance(reward_model, (str, os.PathLike)):
        from ..reward import RewardModel

        reward_model = RewardModel.from_pretrained(reward_model, device=device, offline=offline)
    for what, m in (("model", model), ("baseline", baseline)):
        if not callable(m):
            raise InvalidInputError(f"{what} is a {type(m).__name__}; pass an Inpainter (or anything called like one) or a model id")
    if not hasattr(reward_model, "score") and not hasattr(reward_model, "score_image"):
        raise InvalidInputError(f"reward_model is a {type(reward_model).__name__} without .score(); pass a RewardModel or its id")
    return model, baseline, reward_model


def _judge_key(judge, memo) -> str:
    """The cache key of the judge: a reward model's :func:`model_key`; a stack's labels, members' keys and weights."""
    if not hasattr(judge, "labels") or not hasattr(judge, "rewards"):
        return model_key(judge, memo)

    def member(r):
        inner = getattr(r, "fn", r)
        inner = getattr(inner, "model", inner)  # a PrefPaint or clip model behind its reward
        return getattr(inner, "url", None) or getattr(inner, "__name__", None) or model_key(inner, memo)

    parts = [f"{lab}={member(r)}" for lab, r in zip(judge.labels, judge.rewards)]
    return f"stack[{'; '.join(parts)}; weights={list(judge.weights)}]"


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
    raise CorruptFileError(f"'{path}' is not a readable evaluation config ({problem}); use another output folder",
                           Hint(", or pass ", Arg("overwrite", True), " to discard that evaluation"))


def _check_folder(out: Path, config: dict, overwrite: bool) -> bool:
    """Whether ``out`` holds an evaluation to discard (other settings, or a corrupt config, with ``overwrite``).

    Reads only, so every rank can check before rank 0 changes anything.

    Raises:
        ConfigError: ``out`` holds an evaluation with other settings and not ``overwrite``.
        CorruptFileError: its ``eval_config.json`` is unreadable and not ``overwrite``.
        InvalidInputError: ``out`` is a file.
    """
    path = out / CONFIG_FILE
    if not path.is_file():
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"output '{out}' is a file; pass a folder")
        return False
    old = _read_config(path, overwrite)
    diff = sorted(k for k in set(old or {}) | set(config) if (old or {}).get(k) != config.get(k))
    if old is not None and diff and not overwrite:
        detail = "; ".join(f"{k}: {old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
        raise ConfigError(f"'{out}' holds an evaluation with other settings ({detail}); "
                          "use another output folder", Hint(", or pass ", Arg("overwrite", True), " to discard it"))
    if diff and old is not None:
        log.warning("discarding the cached evaluation in %s (settings changed: %s)", out, ", ".join(diff))
    return bool(diff)


def _claim_folder(out: Path, config: dict, stale: bool) -> None:
    """Record the run's settings in ``eval_config.json``, first removing a ``stale`` evaluation's cache and results."""
    if stale:
        for sub in ("cache", "images"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for name in REPORT_FILES:  # results of the old run must not outlive its cache
            (out / name).unlink(missing_ok=True)
    atomic_write_json(out / CONFIG_FILE, config)


def _remove_created(out: Path, created: list[Path], made: bool) -> None:
    """An evaluation whose every case failed leaves only what was there before it: the files and folders it
    created (``created``: what did not exist when it claimed ``out``; folders only while empty, as no case
    was published), and ``out`` itself when it ``made`` it and nothing else is in it."""
    for path in created:
        if path.is_dir():
            for sub in sorted((d for d in path.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
                _rmdir(sub)
            _rmdir(path)
        else:
            path.unlink(missing_ok=True)
    if made:
        _rmdir(out)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty (something else was put there) or already gone: leave it
        pass
