"""Output ownership of a manifest job: a job replaces only files it wrote itself, and no output of it is another
item's output or an input.

**What a job owns.** The files its per-item records name (``OUT/records/<id>.json``): ``files``, the set an "ok"
record published, and ``owned``, files of earlier sets of that id still on disk (kept by "error" records and by
the next "ok" one). Just before it publishes an item's set, the runner writes a claim,
``OUT/records/.<id>.owned``, naming every file of the set and every file it owned before: a kill between
the renames leaves the claim, so the rerun knows the half-published files as its own. The record, published last
with the set, takes over and the claim is removed. ``OUT/results.jsonl`` is the job's own when the folder holds
records of a job.

**The check before any model loads** (:func:`check_ownership`, on every item of the manifest):

* every output (the set's files, the item's record, ``results.jsonl``) differs from every other item's outputs
  and from every input (images, masks, the manifest): refused with one line naming both, even with
  ``--overwrite`` (``x`` with 2 candidates under ``--save-all`` writes ``x_cand0.png``, which is also the output
  image of id ``x_cand0``; ``-o .`` can make an output the input image itself);
* for the items left to do, an output that exists and is not the job's own is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ..errors import Arg, Hint, InvalidInputError, OutputExistsError
from .manifest import JobItem

__all__ = ["check_ownership", "claim_path", "is_record_of", "owned_names", "read_claim", "still_there"]

_CLAIM = ".owned"  # not ".json": the records folder holds only records under that suffix


def claim_path(records: Path, item_id: str) -> Path:
    """Where the claim of ``item_id`` lives (a hidden name: an id never starts with a dot)."""
    return records / f".{item_id}{_CLAIM}"


def is_record_of(rec: object, item_id: str) -> bool:
    """Whether ``rec`` (a parsed JSON file) is a job's record of ``item_id``."""
    return isinstance(rec, dict) and rec.get("id") == item_id and isinstance(rec.get("status"), str)


def owned_names(*records: object) -> set[str]:
    """The output names (relative to OUT, ``/``-separated) that records or claims say the job wrote."""
    names: set[str] = set()
    for rec in records:
        if isinstance(rec, dict):
            for key in ("files", "owned"):
                value = rec.get(key)
                if isinstance(value, list):
                    names.update(n for n in value if isinstance(n, str))
    return names


def still_there(out: Path, names: Iterable[str]) -> list[str]:
    """The ``names`` whose file still exists in ``out`` (a claim never outlives its file: a name whose file went
    away may later hold someone else's file)."""
    return sorted(n for n in set(names) if (out / n).is_file())


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_claim(records: Path, item_id: str) -> set[str]:
    """The names a leftover claim of ``item_id`` holds (none when there is no claim)."""
    claim = _read_json(claim_path(records, item_id))
    return owned_names(claim) if is_record_of(claim, item_id) else set()


class _Keys:
    """Output identities (:func:`~prefpaint_sdk.files.checks.output_key`), with each folder resolved once (a
    manifest of 100,000 rows shares a few folders)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def output(self, p: os.PathLike | str) -> str:
        d, name = os.path.split(os.fspath(p))
        if d not in self.folders:
            self.folders[d] = os.path.realpath(d or ".")
        return os.path.normcase(os.path.join(self.folders[d], name))

    def input(self, p: os.PathLike | str) -> str:
        if os.path.islink(p):  # an input behind a link is the file the link names
            return os.path.normcase(os.path.realpath(p))
        return self.output(p)


def _label(it: JobItem) -> str:
    return f"id '{it.id}' (line {it.line})"


def check_ownership(items: list[JobItem], out: Path, *, records: Path, results: Path,
                    outputs: Callable[[JobItem], list[Path]], inputs: Callable[[JobItem], Mapping[str, Path]],
                    job_inputs: Mapping[str, Path], found: Mapping[str, object], todo: set[str],
                    overwrite: bool, summaries: Iterable[Path] = ()) -> dict[str, set[str]]:
    """Check every output of the job before any work (see the module docstring); return each id's own names.

    Args:
        items: every item of the manifest.
        out: the output folder.
        records: the records folder; ``results``: the merged results file.
        outputs: the files an item's set writes (paths under ``out``, as its work names them).
        inputs: an item's input files by what they are (``{"image": ..., "mask": ...}``).
        job_inputs: the job's own inputs by what they are (``{"manifest": ...}``).
        found: each id's record as read from disk (None when absent or unreadable).
        todo: the ids that will be (re)done.
        overwrite: replace existing files that are not the job's own.
        summaries: the job's own outputs besides ``results`` (a folder score's CSV): the job's own, as
            ``results``, when ``records`` holds records of a job.

    Raises:
        InvalidInputError: two outputs are the same file, or an output is an input.
        OutputExistsError: an output of an item to do exists, is not the job's own, and ``overwrite`` is false.
    """
    keys = _Keys()
    # key -> (path, item or None for the job, "record" for the item's record): labels are made only for an error
    written: dict[str, tuple[object, JobItem | None, str]] = {}
    plans: dict[str, list] = {}

    def who(it: JobItem | None, what: str) -> str:
        return "the job (its merged results)" if it is None else _label(it) + (" (its record)" if what else "")

    def claim(p, it: JobItem | None, what: str = "") -> None:
        k = keys.output(p)
        if k in written:
            q, other, other_what = written[k]
            also = "" if os.fspath(q) == os.fspath(p) else f" ('{q}')"
            raise InvalidInputError(f"output '{p}' of {who(it, what)} is also an output of {who(other, other_what)}"
                                    f"{also}; give one of them another id")
        written[k] = (p, it, what)

    summaries = list(summaries)
    for p in (results, *summaries):
        claim(p, None, "results")
    rec_dir = os.fspath(records)
    for it in items:
        plans[it.id] = list(outputs(it))
        for p in plans[it.id]:
            claim(p, it)
        claim(os.path.join(rec_dir, f"{it.id}.json"), it, "record")
    sources = [(what, p, None) for what, p in job_inputs.items()]
    sources += [(what, p, it) for it in items for what, p in inputs(it).items()]
    for what, p, it in sources:
        k = keys.input(p)
        if k in written:
            q, owner, owner_what = written[k]
            of = f" of {_label(it)}" if it is not None else ""
            also = "" if os.fspath(q) == os.fspath(p) else f" ('{p}')"
            raise InvalidInputError(f"output '{q}' of {who(owner, owner_what)} would replace the {what}{of}{also}; "
                                    "choose another output folder")
    claims = _claimed(records)
    owned: dict[str, set[str]] = {}
    for it in items:
        rec = found.get(it.id)
        mine = owned_names(rec) if is_record_of(rec, it.id) else set()
        if it.id in claims:
            mine |= read_claim(records, it.id)
        owned[it.id] = set(still_there(out, mine)) if mine else set()
    if overwrite:
        return owned
    for it in items:
        if it.id not in todo:
            continue
        rec_path = records / f"{it.id}.json"
        if rec_path.exists() and not is_record_of(found.get(it.id), it.id):
            raise OutputExistsError(f"'{rec_path}' exists and is not a record of this job ({_label(it)}); choose another output folder",
                                    Hint(", or pass ", Arg("overwrite", True), " to replace it"))
        for p in plans[it.id]:
            if os.path.lexists(p) and _rel(p, out) not in owned[it.id]:
                raise OutputExistsError(f"output '{p}' of {_label(it)} exists and was not written by this job; choose another output folder",
                                        Hint(", or pass ", Arg("overwrite", True), " to replace it"))
    taken = [p for p in (results, *summaries) if os.path.lexists(p)]
    if taken and not _has_records(records, found):
        raise OutputExistsError(f"output '{taken[0]}' exists and was not written by a job in '{out}'; choose another output folder",
                                Hint(", or pass ", Arg("overwrite", True), " to replace it"))
    return owned


def _rel(p: Path, out: Path) -> str:
    return Path(p).relative_to(out).as_posix()


def _claimed(records: Path) -> set[str]:
    """The ids with a claim in ``records`` (one listing, not one look-up per item)."""
    if not records.is_dir():
        return set()
    return {e.name[1:-len(_CLAIM)] for e in os.scandir(records) if e.name.startswith(".") and e.name.endswith(_CLAIM)}


def _has_records(records: Path, found: Mapping[str, object]) -> bool:
    """Whether ``records`` holds a job's record (one of this manifest's, or any other id's)."""
    if any(is_record_of(rec, i) for i, rec in found.items()):
        return True
    if not records.is_dir():
        return False
    for entry in os.scandir(records):
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            if is_record_of(_read_json(Path(entry.path)), entry.name[:-5]):
                return True
    return False
