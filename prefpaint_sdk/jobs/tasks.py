"""The manifest jobs: ``run_inpaint_job`` (the Inpainter on every row) and ``run_score_job`` (the reward model)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..devices import resolve_device
from ..errors import DataError
from ..files import check_image_suffix
from ..validation import validated_by
from .manifest import JobItem, check_item_files, read_job_manifest
from .progress import ProgressFn
from .runner import JobContext, JobSummary, run_items

__all__ = ["fetch_first", "run_inpaint_job", "run_score_job"]


def fetch_first(ctx: JobContext, offline: bool | None, model=None, reward_model=None) -> None:
    """Rank 0 downloads (or converts) the models into the shared cache while the others wait; then every rank
    loads from the cache at once. Loading itself is not serialised: only the download is."""
    from ..hub import resolve_model

    with ctx.main_process_first():
        if model is not None and not isinstance(model, Path) and not Path(str(model)).is_dir():
            resolve_model(model, offline=offline)
        if reward_model is not None and isinstance(reward_model, (str, os.PathLike)):
            from ..reward.convert import resolve_reward_model

            resolve_reward_model(reward_model, offline=offline)


def model_key(model) -> str:
    """How a model is named in the settings fingerprint: a local folder by its absolute path (the same folder
    from another working directory is the same model), anything else as given."""
    if model is not None and not isinstance(model, str | os.PathLike):
        return getattr(model, "model_id", type(model).__name__)
    p = Path(str(model))
    return str(p.resolve()) if model is not None and p.exists() else str(model)


# Inpainter.from_pretrained's defaults of the settings a job passes through
_LOAD_DEFAULTS = {"offload": "none", "vae_tiling": False, "scheduler": "auto"}
_NONE = object()


def _usable(items: list[JobItem], max_pixels: int | None, mask_from_alpha: bool = False,
            what: str = "item of the manifest", resize_mask: bool | None = None) -> dict[str, Exception]:
    """Every item's files, checked from their headers (a mask read from its alpha must have one; for inpainting,
    ``resize_mask`` not None, the mask-size rule): ``{id: error}`` of the unusable ones.

    When no item is usable the whole job is refused before any model loads (one line: the first problem)."""
    bad: dict[str, Exception] = {}
    first_exc = None
    for it in items:
        try:
            check_item_files(it, max_pixels=max_pixels)
            if it.params.get("mask_from_alpha", mask_from_alpha):
                from ..imaging import check_alpha_mask

                check_alpha_mask(it.mask)
            if resize_mask is not None:
                from ..imaging import check_image_file, check_mask_size

                check_mask_size(check_image_file(it.mask, what="mask"), check_image_file(it.image),
                                resize=it.params.get("resize_mask", resize_mask))
        except Exception as exc:  # noqa: BLE001 - the item fails alone
            bad[it.id] = exc  # raised again by its item's work: its record keeps the parts (parameters as data)
            first_exc = first_exc or exc
    if bad and len(bad) == len(items):
        # the first problem's own parts (its parameter and fix as data), so each front end names them its way
        first = getattr(first_exc, "parts", None) or (" ".join(str(first_exc).split()),)
        raise DataError(f"no {what} is usable ({len(bad)} of {len(items)} failed); the first: ", *first)
    return bad


def _job(manifest, kind: str) -> tuple[list[JobItem], dict[str, Path], str]:
    """The rows of ``manifest`` (a file, or rows already made: a folder batch's :func:`folder_job`), the job's
    own input files, and what an item is called in a message."""
    if isinstance(manifest, (str, os.PathLike)):
        return read_job_manifest(manifest, kind), {"manifest": Path(manifest)}, "item of the manifest"
    return list(manifest), {}, "image of the folder"


def _inpaint_files(out: Path, item: JobItem, suffix: str, save_all: bool, n: int) -> list[Path]:
    from ..batch import result_files

    return result_files(out / f"{item.id}{suffix}", item.n or n, save_all)


def validate_inpaint_job(*, defaults: dict[str, Any] | None = None, suffix: str = ".png", select: str = "reward",
                         inpainter_kw: dict[str, Any] | None = None) -> None:
    """Every check of :func:`run_inpaint_job` that needs no model and reads no file: the output suffix, and
    :meth:`Inpainter.validate <prefpaint_sdk.Inpainter.validate>` of the job's settings (``defaults``, ``select``,
    ``inpainter_kw``'s ``offload`` and ``scheduler``).

    Raises:
        InvalidInputError: naming the parameter and the value.
    """
    from ..inpainter import Inpainter

    d, kw = defaults or {}, inpainter_kw or {}
    numbers = ("num_candidates", "seed", "steps", "guidance_scale", "mask_dilate", "mask_blur", "crop_margin")
    Inpainter.validate(offload=kw.get("offload", "none"), scheduler=kw.get("scheduler", "auto"), select=select,
                       **{k: d[k] for k in numbers if d.get(k) is not None})
    check_image_suffix(Path("x" + suffix))


@validated_by(validate_inpaint_job)
def run_inpaint_job(manifest: str | os.PathLike | list[JobItem], out: str | os.PathLike, *,
                    model: str | os.PathLike | None = None,
                    defaults: dict[str, Any] | None = None, save_all: bool = False, suffix: str = ".png",
                    overwrite: bool = False, device: str = "auto", dtype: str = "auto", reward_model=None,
                    select: str = "reward", offline: bool | None = None, max_pixels: int | None = None,
                    inpainter=None, progress: ProgressFn | None = None,
                    on_item: Callable[[JobItem, dict], None] | None = None, ctx: JobContext | None = None,
                    inpainter_kw: dict[str, Any] | None = None) -> JobSummary:
    """Inpaint every row of a manifest into ``out``, on this process's share (see :mod:`prefpaint_sdk.jobs`).

    ``manifest`` is a ``jobs.jsonl`` file or its rows (a folder batch: :func:`~prefpaint_sdk.jobs.folder_job`);
    both run alike, with the same skip, resume and report. ``inpainter_kw`` holds more keyword arguments of
    :meth:`Inpainter.from_pretrained` (``offload``, ``vae_tiling``, ``scheduler``, ...); those not at their default,
    but ``offload`` (it only places the weights), are part of each item's fingerprint.

    Each item writes ``OUT/<id><suffix>``, its sidecar ``OUT/<id>.json`` (and with ``save_all`` every
    candidate ``OUT/<id>_cand<k><suffix>``) plus its record, as one output set. Row values win over
    ``defaults`` (the command's flags: ``prompt``, ``num_candidates``, ``seed``, ``steps``,
    ``guidance_scale``, ...).

    Raises:
        InvalidInputError / DataError: the manifest is refused (before any model loads), or no row is usable.
        OutputExistsError: an id's outputs were made from another row and ``overwrite`` is false.
    """
    from ..hub import DEFAULT_MODEL
    from ..inpainter import Inpainter

    validate_inpaint_job(defaults=defaults, suffix=suffix, select=select, inpainter_kw=inpainter_kw)
    defaults = dict(defaults or {})
    load_kw = dict(inpainter_kw or {})
    items, job_inputs, what = _job(manifest, "inpaint")
    bad = _usable(items, max_pixels, bool(defaults.get("mask_from_alpha")), what, bool(defaults.get("resize_mask")))
    ctx = ctx or JobContext.detect(cpu=device == "cpu")
    if inpainter is None:
        resolve_device(ctx.device_for(device))  # a device this machine lacks: before any model is fetched
    loaded = {"inpainter": inpainter}

    def load() -> None:
        if loaded["inpainter"] is None:
            fetch_first(ctx, offline, model or DEFAULT_MODEL, reward_model)
            dev = ctx.device_for(device)
            loaded["inpainter"] = Inpainter.from_pretrained(model or DEFAULT_MODEL, device=dev, dtype=dtype,
                                                            reward_model=reward_model, offline=offline, select=select,
                                                            steps=defaults.get("steps"), **load_kw)
    base_seed = defaults.pop("seed", None)
    base_prompt = defaults.pop("prompt", "")
    base_n = defaults.pop("num_candidates", 1)
    model_name = model or (inpainter.model_id if inpainter is not None else DEFAULT_MODEL)
    settings = {"model": model_key(model_name), "reward_model": model_key(reward_model), "select": select,
                "seed": base_seed, "prompt": base_prompt, "n": base_n, "save_all": save_all, "suffix": suffix,
                **defaults}
    # what changes the images, unless it is the default (so records made before these settings existed still match)
    settings.update({k: v for k, v in load_kw.items() if k != "offload" and _LOAD_DEFAULTS.get(k, _NONE) != v})

    def work(it: JobItem):
        if it.id in bad:
            raise bad[it.id]
        kw = {**defaults, **it.params}
        seed = it.seed if it.seed is not None else base_seed
        prompt = it.prompt if it.prompt is not None else base_prompt
        result = loaded["inpainter"](it.image, it.mask, prompt=prompt, num_candidates=it.n or base_n, seed=seed, **kw)
        writers = result.writers(Path(out) / f"{it.id}{suffix}", save_all=save_all)
        best = result.scores[result.best_index] if result.scores is not None else None
        return writers, {"seed": result.seed, "seeds": result.seeds, "score": best}

    return run_items(items, out, work, ctx=ctx, overwrite=overwrite, progress=progress, on_item=on_item,
                     outputs=lambda it: _inpaint_files(Path(out), it, suffix, save_all, base_n),
                     job_inputs=job_inputs, settings=settings, load=load)


def run_score_job(manifest: str | os.PathLike | list[JobItem], out: str | os.PathLike, *, reward_model=None, normalize: bool = False,
                  overwrite: bool = False, device: str = "auto", offline: bool | None = None,
                  v_inverse: str | os.PathLike | None = None, max_pixels: int | None = None, model=None,
                  progress: ProgressFn | None = None, on_item: Callable[[JobItem, dict], None] | None = None,
                  ctx: JobContext | None = None, reward: Sequence[str] = (), reward_weights: str | None = None,
                  reward_norm: str = "gdpo", prompt: str | None = None, batch_size: int = 16,
                  csv: str | os.PathLike | None = None) -> JobSummary:
    """Score every row (``id``, ``image`` = the inpainting, ``mask``) into ``out``: with the reward model, or with
    the stack ``reward`` (specs; ``reward_model`` joins it as ``prefpaint=RM``).

    ``manifest`` is a ``jobs.jsonl`` file or its rows (a folder score: :func:`~prefpaint_sdk.jobs.folder_job`);
    both run alike, with the same skip, resume and report. Each item's record holds ``score``, ``bound`` and
    ``trust`` (a stack: ``rewards``, ``{NAME: {score, bound, trust}}``); ``OUT/results.jsonl`` gathers them, and
    the summary's ``rows`` (rank 0) are the scored ones, in the order of the rows (a stack's with ``advantage``). The
    reward model scores ``batch_size`` items per backbone pass (a stack: one item at a time). With ``csv``, the
    scored rows are also written there at the end, atomically (a stack's with its ``advantage`` over all of
    them): the CSV of a folder score, the job's own output (see :func:`~prefpaint_sdk.reward.folder.score_folder_outputs`).

    Raises:
        InvalidInputError / DataError: the manifest or the stack is refused (before any model loads), or no row
            is usable.
        OutputExistsError: ``csv`` exists and ``out`` holds no records of a job, without ``overwrite``.
    """
    from ..data import InputPair
    from ..reward import RewardModel
    from ..reward.folder import score_pairs, scores_csv_bytes
    from ..reward.scoring import score_files, score_specs, stack_csv_bytes, validate_score, with_advantage
    from ..reward.specs import stack_specs

    validate_score(mode="manifest", reward_model=reward_model, reward=reward, reward_weights=reward_weights,
                   reward_norm=reward_norm, prompt=prompt, normalize=normalize, v_inverse=v_inverse, batch_size=batch_size)
    specs = score_specs(reward_model, reward) if reward else []
    if specs:
        parsed, weights = stack_specs(specs, reward_weights, reward_norm)  # before any file or model
        labels = [p.name for p in parsed]
    items, job_inputs, what = _job(manifest, "score")
    bad = _usable(items, max_pixels, what=what)
    ctx = ctx or JobContext.detect(cpu=device == "cpu")
    if model is None:
        resolve_device(ctx.device_for(device))  # a device this machine lacks: before any model is fetched
    loaded: dict[str, Any] = {"model": model, "scored": {}}

    def load() -> None:
        if loaded["model"] is not None:
            return
        from ..hub import DEFAULT_REWARD_MODEL

        dev = ctx.device_for(device)
        if specs:
            from ..reward.specs import load_stack

            with ctx.main_process_first():
                loaded["model"] = load_stack(specs, reward_weights, reward_norm, device=dev, offline=offline,
                                             batch_size=batch_size)
            return
        fetch_first(ctx, offline, reward_model=reward_model if reward_model is not None else DEFAULT_REWARD_MODEL)
        loaded["model"] = RewardModel.from_pretrained(reward_model, device=dev, offline=offline, v_inverse=v_inverse)

    def prepare(chunk: list[JobItem]) -> None:
        """One backbone pass for the chunk's usable items (a failing pass is retried item by item)."""
        good = [it for it in chunk if it.id not in bad]
        pairs = [InputPair(it.image, it.mask, it.id) for it in good]
        loaded["scored"] = {pair.name: rec for pair, rec in score_pairs(loaded["model"], pairs, normalize=normalize,
                                                                         batch_size=len(pairs) or 1,
                                                                         max_pixels=max_pixels)}

    def work(it: JobItem):
        if it.id in bad:
            raise bad[it.id]
        if specs:
            return {}, {"rewards": score_files(loaded["model"], it.image, it.mask, prompt=prompt, max_pixels=max_pixels)}
        rec = loaded["scored"].pop(it.id)
        if isinstance(rec, Exception):
            raise rec
        return {}, rec

    def scored(rows: list[dict]) -> list[dict]:
        """The scored rows; a stack's with its advantage over all of them (one group)."""
        if specs:
            return with_advantage(rows, labels, weights, reward_norm)
        return [r for r in rows if r.get("status") == "ok"]

    def summary(rows: list[dict]) -> bytes:
        return stack_csv_bytes(scored(rows), labels) if specs else scores_csv_bytes(scored(rows))

    settings = {"reward_model": model_key(reward_model), "normalize": normalize, "v_inverse": model_key(v_inverse)}
    if specs:  # only then: the records of a PrefPaint score keep matching the settings they were made with
        settings.update(reward=[str(s) for s in specs], prompt=prompt)
    result = run_items(items, out, work, ctx=ctx, overwrite=overwrite, progress=progress, on_item=on_item,
                       job_inputs=job_inputs, settings=settings, load=load, batch_size=batch_size,
                       prepare=None if specs else prepare, summaries={Path(csv): summary} if csv is not None else None)
    if result.rows is not None:  # rank 0: what the CSV holds
        result.rows = scored(result.rows)
    return result
