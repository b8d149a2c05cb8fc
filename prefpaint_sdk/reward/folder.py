"""Scoring many (image, mask) pairs: batched, with failures isolated per item, and a CSV of the results."""

from __future__ import annotations

import csv
import io
import os
from typing import Iterator

from ..batch import InputPair
from ..files import atomic_write_bytes

__all__ = ["CSV_FIELDS", "score_pairs", "write_scores_csv"]

CSV_FIELDS = ["image", "mask", "score", "bound", "trust"]


def score_pairs(model, pairs: list[InputPair], *, normalize: bool = False,
                batch_size: int = 16) -> Iterator[tuple[InputPair, dict | Exception]]:
    """Yield ``(pair, record)`` for every pair, or ``(pair, exception)`` for one that could not be scored.

    Pairs are scored ``batch_size`` at a time; when a batch fails, its items are retried one by one so
    that only the unreadable ones are reported and the rest still get their scores.
    """
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        try:
            out = model.score([p.image for p in chunk], masks=[p.mask for p in chunk], normalize=normalize,
                              batch_size=batch_size)
            yield from zip(chunk, out.to_records())
        except Exception:  # noqa: BLE001 - find the failing items below
            for p in chunk:
                try:
                    yield p, model.score(p.image, masks=p.mask, normalize=normalize).to_records()[0]
                except Exception as exc:  # noqa: BLE001 - reported per item by the caller
                    yield p, exc


def write_scores_csv(path: str | os.PathLike, rows: list[dict], overwrite: bool = False) -> None:
    """Write score records (keys of :data:`CSV_FIELDS`) as a CSV, atomically; a missing bound is left empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    atomic_write_bytes(path, buf.getvalue().encode(), overwrite=overwrite)
