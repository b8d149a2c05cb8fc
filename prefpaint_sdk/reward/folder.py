"""Scoring many (image, mask) pairs: batched, with failures isolated per item, and a CSV of the results.

A folder score (``prefpaint score FOLDER MASKS``) is a job (:func:`~prefpaint_sdk.jobs.run_score_job` on the
folder's rows): :func:`score_folder_outputs` names its CSV and the job folder beside it (records and
``results.jsonl``), and the CSV is written from the job's results at the end (:func:`scores_csv_bytes`).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterator

from ..batch import check_pair
from ..data import InputPair
from ..errors import InvalidInputError
from ..files import atomic_write_bytes
from ..validation import at_least

__all__ = ["CSV_FIELDS", "score_folder_outputs", "score_pairs", "scores_csv_bytes", "write_scores_csv"]

CSV_FIELDS = ["image", "mask", "score", "bound", "trust"]


def score_pairs(model, pairs: list[InputPair], *, normalize: bool = False, batch_size: int = 16,
                max_pixels: int | None = None) -> Iterator[tuple[InputPair, dict | Exception]]:
    """Yield ``(pair, record)`` for every pair, in order, or ``(pair, exception)`` for one that could not be scored.

    Every file's header is checked first (readable, within the pixel limit): a decompression bomb, an
    oversized or unreadable file is reported with its :class:`~prefpaint_sdk.errors.ImageTooLargeError` or
    :class:`~prefpaint_sdk.errors.InvalidInputError` and skipped without being decoded. The rest are scored
    ``batch_size`` at a time; when a batch still fails, its items are retried one by one so that only the
    failing ones are reported and the others keep their scores.

    Raises:
        InvalidInputError: ``batch_size`` is not a whole number >= 1 (before anything is read).
    """
    batch_size = at_least("batch_size", batch_size, 1)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        results: dict[int, dict | Exception] = {}
        for i, p in enumerate(chunk):
            try:
                check_pair(p, max_pixels=max_pixels)
            except InvalidInputError as exc:
                results[i] = exc
        good = [i for i in range(len(chunk)) if i not in results]
        if good:
            try:
                out = model.score([chunk[i].image for i in good], masks=[chunk[i].mask for i in good],
                                  normalize=normalize, batch_size=batch_size)
                results.update(zip(good, out.to_records()))
            except Exception:  # noqa: BLE001 - find the failing items below
                for i in good:
                    p = chunk[i]
                    try:
                        results[i] = model.score(p.image, masks=p.mask, normalize=normalize).to_records()[0]
                    except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                        results[i] = exc
        for i, p in enumerate(chunk):
            yield p, results[i]


def score_folder_outputs(images: str | os.PathLike, output: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Where a folder score writes: ``(csv, job folder)``. The CSV is ``output`` (default
    ``<images>_scores.csv`` beside the folder); the job folder (``records/`` and ``results.jsonl``) sits beside
    the CSV, named as the CSV without its suffix (``imgs_scores/``; ``<name>_job/`` for a CSV name without one)."""
    images = Path(images)
    csv_path = Path(output) if output is not None else images.with_name(images.name + "_scores.csv")
    return csv_path, csv_path.with_name(csv_path.stem if csv_path.suffix else csv_path.name + "_job")


def scores_csv_bytes(rows: list[dict]) -> bytes:
    """Score records (keys of :data:`CSV_FIELDS`; a job's results rows, whose failed ones are left out) as CSV
    bytes; a missing bound is left empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in rows:
        if r.get("status", "ok") == "ok":
            writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    return buf.getvalue().encode()


def write_scores_csv(path: str | os.PathLike, rows: list[dict], overwrite: bool = False) -> None:
    """Write score records (keys of :data:`CSV_FIELDS`) as a CSV, atomically; a missing bound is left empty."""
    atomic_write_bytes(path, scores_csv_bytes(rows), overwrite=overwrite)
