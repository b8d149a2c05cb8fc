"""Run a manifest on N processes: a stable share per rank, whole output sets, exactly once, one merged result.

Launch the same command under ``torchrun --nproc_per_node N`` or ``accelerate launch --num_processes N``
(multi-node through accelerate's config); one plain process is N = 1. No process management of our own:
the launcher starts and stops the processes, and this module only decides who does what.

* **Shares.** Item ``id`` goes to rank ``sha256(id) mod N``. The share depends on the id alone, never on
  the row's position, so a rerun (with any N) finds the work where it was left.
* **Whole output sets.** Each item writes its files and its record ``OUT/records/<id>.json`` as one output
  set (:func:`~prefpaint_sdk.files.write_set`); the record is published last, so a record means the set
  is complete. A rerun skips an item whose record says "ok", matches the row (its fingerprint) and whose
  files all exist; anything else is redone (a set without its record, left by a kill in the microseconds
  of publishing, is replaced whole: the claim written before publishing names it as the job's own).
* **Only its own files.** Before any model loads, every output of every item is checked against the other
  items' outputs and the inputs, and an existing file the job did not write is refused without
  ``overwrite`` (:mod:`~prefpaint_sdk.jobs.ownership`).
* **Errors.** An item that fails gets a record with status "error" and the message; the others go on. A
  rerun retries it.
* **Merge.** After every rank is done, rank 0 writes ``OUT/results.jsonl`` from the records: one row per
  id, sorted. It reads only records, so a rerun after a crash merges every rank's earlier work too.
* **Progress.** Rank 0 reports items done by all ranks (counted from the records on disk).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Arg, Hint, InvalidInputError, OutputExistsError, StoredMessage, parts_from_json, parts_to_json
from ..files import atomic_write_bytes, check_output_dir, json_writer, strict_json_dumps, write_set
from .manifest import JobItem
from .ownership import check_ownership, claim_path, is_record_of, still_there
from .progress import DiskProgress, ProgressFn

__all__ = ["JobContext", "JobSummary", "RECORDS", "RESULTS", "merge_results", "run_items", "shard_of"]

log = logging.getLogger(__name__)

RECORDS = "records"
RESULTS = "results.jsonl"
# An item's work: returns {destination: writer} of its files (without the record) and the facts to record.
WorkFn = Callable[[JobItem], tuple[Mapping[Path, Callable[[Path], Any]], dict[str, Any]]]


def shard_of(item_id: str, world_size: int) -> int:
    """The rank that owns ``item_id`` among ``world_size`` processes (stable across runs and machines)."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % world_size


@dataclass
class JobContext:
    """Who this process is. Build it with :meth:`detect`; call :meth:`close` at the end."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    state: Any = None  # accelerate's PartialState when launched on several processes

    @classmethod
    def detect(cls, cpu: bool = False) -> "JobContext":
        """Rank and world size from the launcher (``torchrun`` / ``accelerate launch`` set ``WORLD_SIZE``).

        One process needs no process group, so a plain run never touches ``torch.distributed``.
        """
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=cpu)
        return cls(rank=state.process_index, world_size=state.num_processes, local_rank=state.local_process_index,
                   state=state)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, item_id: str) -> bool:
        """Whether this process does ``item_id`` (:func:`shard_of`)."""
        return shard_of(item_id, self.world_size) == self.rank

    def gather_json(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (any JSON value), in rank order, on every rank.

        Sent as JSON bytes in tensors, not through ``all_gather_object``, which would unpickle what the
        other ranks send (the toolkit never unpickles).
        """
        if self.state is None:
            return [obj]
        import torch
        import torch.distributed as dist

        dev = self.state.device  # NCCL sends only tensors on this rank's GPU; gloo takes CPU ones
        data = torch.frombuffer(bytearray(strict_json_dumps(obj, indent=None).encode()), dtype=torch.uint8).to(dev)
        sizes = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(self.world_size)]
        dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=dev))
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8, device=dev)
        padded[:data.numel()] = data
        got = [torch.zeros(longest, dtype=torch.uint8, device=dev) for _ in range(self.world_size)]
        dist.all_gather(got, padded)
        return [json.loads(bytes(g[:int(n.item())].cpu().tolist())) for g, n in zip(got, sizes)]

    def prefetch(self, offline: bool | None, models=(), reward_model=None) -> None:
        """Rank 0 downloads (or converts) models given by id into the shared cache first; see :func:`fetch_first`."""
        from .tasks import fetch_first

        for m in models:
            fetch_first(self, offline, model=m)
        if reward_model is not None:
            fetch_first(self, offline, reward_model=reward_model)

    def disk_progress(self, folder: Path, pending: list[str], done_before: int, total: int,
                      progress: ProgressFn | None) -> "DiskProgress":
        """Rank 0's progress over all ranks, counted from the ``<name>.json`` files in ``folder``."""
        return DiskProgress(folder, pending if self.is_main and progress else [], done_before, total,
                            progress if self.is_main else None)

    @property
    def device(self) -> str | None:
        """This process's accelerator (``cuda:<local rank>``) when launched on several, else None."""
        return None if self.state is None else str(self.state.device)

    def device_for(self, device: str) -> str:
        """The device this rank uses for ``device``: "auto" or a bare "cuda" becomes this rank's own GPU when
        launched on several processes (else every rank would load onto cuda:0); anything else is kept."""
        if self.device is not None and (device == "auto" or (device == "cuda" and self.device.startswith("cuda"))):
            return self.device
        return device

    def main_process_first(self):
        """Rank 0 runs the block first (a download or conversion into a shared cache), the others after it."""
        from contextlib import nullcontext

        return nullcontext() if self.state is None else self.state.main_process_first()

    def wait(self, poll: Callable[[], None] | None = None) -> None:
        """Wait for every rank; rank 0 calls ``poll`` meanwhile (to refresh its progress bar)."""
        if self.state is None:
            return
        import torch.distributed as dist

        work = dist.barrier(async_op=True)
        while poll is not None and not work.is_completed():
            poll()
            time.sleep(0.2)
        work.wait()

    def close(self) -> None:
        """Leave the process group (without it one rank could abort at exit)."""
        if self.state is None:
            return
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class JobSummary:
    """What one run did, on this rank, and (on rank 0) in all."""

    total: int
    mine: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    results: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, message), all ranks (rank 0)
    rows: list[dict] | None = None  # rank 0: every item's results row, in the order of the items


def _record_path(out: Path, item_id: str) -> Path:
    return out / RECORDS / f"{item_id}.json"


def _read_record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _finished(out: Path, item: JobItem, defaults: dict | None, rec: dict | None) -> bool | None:
    """True: a complete, valid set for this row. None: nothing (or a failure) to redo. False: a set made from
    another row (refused without overwrite)."""
    if not is_record_of(rec, item.id) or rec.get("status") != "ok":
        return None
    if rec.get("fingerprint") != item.fingerprint(defaults):
        return False
    files = rec.get("files") or []
    whole = all((out / f).is_file() and (out / f).stat().st_size > 0 for f in files)
    return True if whole else None


def _clean_stale_temps(out: Path, names: list[str]) -> None:
    """Remove temporary files a killed process left for these output names (``.<name>.XXXX.tmp<suffix>``)."""
    prefixes = tuple(f".{n}." for n in names)
    if not out.is_dir():
        return
    folders = [out] + [d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")]
    for folder in folders:
        for p in folder.iterdir():
            if p.name.startswith(prefixes) and ".tmp" in p.name and p.is_file():
                p.unlink(missing_ok=True)


def run_items(items: list[JobItem], out: str | os.PathLike, work: WorkFn, *, ctx: JobContext | None = None,
              overwrite: bool = False, outputs: Callable[[JobItem], list[Path]] | None = None,
              inputs: Callable[[JobItem], Mapping[str, Path]] | None = None,
              job_inputs: Mapping[str, Path] | None = None,
              progress: ProgressFn | None = None, on_item: Callable[[JobItem, dict], None] | None = None,
              settings: dict[str, Any] | None = None, load: Callable[[], Any] | None = None,
              batch_size: int = 1, prepare: Callable[[list[JobItem]], Any] | None = None,
              summaries: Mapping[Path, Callable[[list[dict]], bytes]] | None = None) -> JobSummary:
    """Run this rank's share of ``items`` into ``out``, then (rank 0) merge ``results.jsonl``.

    Args:
        items: the whole manifest (every rank passes the same list).
        out: the output folder.
        work: makes one item's files (see :data:`WorkFn`); an exception fails that item only.
        ctx: this process (default: :meth:`JobContext.detect`).
        overwrite: redo every item of this run (finished ones included), replacing files the job did not write.
        outputs: the files an item's set writes (paths under ``out``, as ``work`` names them): checked against
            each other, the inputs and the files on disk before any work; ``work`` may write no other.
        inputs: an item's input files by what they are (default: its ``image`` and ``mask``).
        job_inputs: the job's own input files by what they are (``{"manifest": path}``).
        progress: ``progress(done, total)`` on rank 0, counting every rank's finished items.
        on_item: called after each of this rank's items with its record.
        load: loads the model, called on every rank only when some item is left to do (so it may hold a
            collective step such as :meth:`JobContext.main_process_first`).
        settings: the command's settings that shape every item (model, defaults): part of each item's
            fingerprint, so outputs made with other settings are not taken as finished.
        batch_size, prepare: ``prepare(chunk)`` is called with each run of up to ``batch_size`` of this rank's
            items to do, before their ``work`` (one model pass for the chunk; ``work`` then picks its result). An
            exception from it fails every item of the chunk.
        summaries: the job's own outputs made from every item's results row (``{path: rows -> bytes}``), written
            atomically by rank 0 after ``results.jsonl``: checked before any work as ``results.jsonl`` is (not an
            input, and an existing file is replaced only when ``out`` holds records of a job, or with
            ``overwrite``).

    Raises:
        InvalidInputError: ``out`` is a file or cannot be written; two outputs are the same file, or an output
            is an input.
        OutputExistsError: an item's finished outputs were made from a different row, or an output exists that
            the job did not write (without ``overwrite``).
    """
    ctx = ctx or JobContext.detect()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"output '{out}' is a file; a batch writes into a folder: pass a folder path")
    check_output_dir(out, overwrite=True)
    check_output_dir(out / RECORDS, overwrite=True)
    outputs = outputs or (lambda it: [])
    summary = JobSummary(total=len(items))
    # Every rank plans every item (the records are on a shared disk), so all agree whether a model is needed.
    found = {it.id: _read_record(_record_path(out, it.id)) for it in items}
    pending: list[JobItem] = []
    for it in items:
        state = None if overwrite else _finished(out, it, settings, found[it.id])
        if state is False:
            raise OutputExistsError(
                f"outputs of id '{it.id}' in '{out}' were made from a different manifest row or other settings; "
                "use another output folder", Hint(", or pass ", Arg("overwrite", True), " to redo them"))
        if not state:
            pending.append(it)
    owned = check_ownership(
        items, out, records=out / RECORDS, results=out / RESULTS, outputs=outputs,
        inputs=inputs or (lambda it: {"image": it.image, "mask": it.mask}), job_inputs=job_inputs or {},
        found=found, todo={it.id for it in pending}, overwrite=overwrite, summaries=list(summaries or {}))
    mine = [it for it in items if shard_of(it.id, ctx.world_size) == ctx.rank]
    todo = [it for it in pending if shard_of(it.id, ctx.world_size) == ctx.rank]
    summary.mine, summary.skipped = len(mine), len(mine) - len(todo)
    # Only the owner ever writes an item's names, so its leftovers are safe to remove; the claim of a finished
    # item is obsolete (its record names the set).
    _clean_stale_temps(out, [n for it in mine for n in [p.name for p in outputs(it)]
                             + [f"{it.id}.json", claim_path(out, it.id).name]])
    left = {it.id for it in todo}
    for it in mine:
        if it.id not in left:
            claim_path(out / RECORDS, it.id).unlink(missing_ok=True)
    if summary.skipped:
        who = f"rank {ctx.rank}: " if ctx.world_size > 1 else ""
        log.info("%s%d of %d items already finished in '%s'", who, summary.skipped, len(mine), out)
    ctx.wait()  # nobody writes before everyone has planned
    if pending and load is not None:
        load()  # on every rank (it may use ctx.main_process_first() for a download into a shared cache)
    # Progress counts every rank's items from the records on disk: those finished before this run, plus the
    # pending ones whose record changed since planning (a stale failure record does not count until redone).
    report = ctx.disk_progress(out / RECORDS, [it.id for it in pending], len(items) - len(pending), len(items),
                               progress)
    report(force=True)
    for k, it in enumerate(todo):
        if prepare is not None and k % max(1, batch_size) == 0:
            chunk = todo[k:k + max(1, batch_size)]
            try:
                prepare(chunk)
                broken = None
            except Exception as exc:  # noqa: BLE001 - the chunk's items fail with it, below
                broken = exc
        rec_path = _record_path(out, it.id)
        base = {"id": it.id, "line": it.line, "image": str(it.image), "mask": str(it.mask),
                "fingerprint": it.fingerprint(settings)}
        t0 = time.time()
        before = owned[it.id]
        claim = claim_path(out / RECORDS, it.id)
        try:
            if prepare is not None and broken is not None:
                raise broken
            writers, facts = work(it)
            files = [Path(p).relative_to(out).as_posix() for p in writers]
            planned = {Path(p).relative_to(out).as_posix() for p in outputs(it)}
            stray = [f for f in files if f not in planned]
            if stray:  # the check before the run covered the planned files only
                raise InvalidInputError(f"id '{it.id}' would write '{out / stray[0]}', which its job did not plan")
            earlier = sorted(set(still_there(out, before)) - set(files))  # files of an earlier set, still its own
            record = {**base, "status": "ok", "files": files, "owned": earlier, **facts, "rank": ctx.rank,
                      "elapsed_s": round(time.time() - t0, 4), "finished_at": round(time.time(), 3)}
            members = dict(writers)
            members[rec_path] = json_writer(record, rec_path)  # last: a record means the whole set is there
            own = [out / n for n in before] + [rec_path]
            # A kill between the renames leaves the claim: the rerun knows the published part as its own. A set
            # of the record alone (a score) is one rename and owns nothing: no claim (two file operations less).
            claimed = {**base, "status": "claim", "owned": sorted(before | set(files))}
            if claimed["owned"]:
                atomic_write_bytes(claim, strict_json_dumps(claimed).encode() + b"\n")
            write_set(members, overwrite=overwrite, own=own)
            if claimed["owned"]:
                claim.unlink(missing_ok=True)
            summary.done += 1
        except KeyboardInterrupt:
            # A signal never splits the renames (they hold it back): the set is either all published (the signal
            # took effect right after them) or not at all, so the claim, kept for a hard kill, is not needed.
            claim.unlink(missing_ok=True)
            raise
        except Exception as exc:  # noqa: BLE001 - one bad item is recorded; the others go on
            msg = " ".join(str(exc).split()) or exc.__class__.__name__
            # the parts too (each parameter as data), so a report read back later names it in its reader's terms
            parts = parts_to_json(getattr(exc, "parts", None) or (msg,))
            record = {**base, "status": "error", "error": msg, "error_parts": parts, "error_type": exc.__class__.__name__,
                      "owned": still_there(out, before), "rank": ctx.rank, "finished_at": round(time.time(), 3)}
            atomic_write_bytes(rec_path, strict_json_dumps(record).encode() + b"\n")
            claim.unlink(missing_ok=True)
            summary.failed += 1
        if on_item is not None:
            on_item(it, record)
        report()
    ctx.wait(poll=report if ctx.is_main else None)
    if ctx.is_main:
        rows = _gather(out, items)
        summary.results, summary.failures = _write_merged(out, rows, summaries)
        summary.rows = list(rows.values())
        report(force=True)
    return summary


def merge_results(out: str | os.PathLike, items: list[JobItem],
                  summaries: Mapping[Path, Callable[[list[dict]], bytes]] | None = None
                  ) -> tuple[Path, list[tuple[str, str]]]:
    """Write ``OUT/results.jsonl`` from the per-item records: one row per id of ``items``, sorted by id; then
    each of ``summaries`` (``{path: rows -> bytes}``) from the same rows, in the order of ``items``, atomically.

    An id without a record (its rank never reached it) gets ``{"id": ..., "status": "missing"}``; a rerun
    fills it in. Returns the path and the failed items' ``(id, message)``: the message is a
    :class:`~prefpaint_sdk.errors.StoredMessage`, text in Python's terms whose ``.parts`` keep the parameters.
    """
    return _write_merged(Path(out), _gather(Path(out), items), summaries)


def _gather(out: Path, items: list[JobItem]) -> dict[str, dict]:
    """Each item's results row from its record, in the order of ``items``."""
    rows = {}
    for it in items:
        rec = _read_record(_record_path(out, it.id))
        if rec is None:
            rec = {"id": it.id, "status": "missing"}
        rec.pop("fingerprint", None)
        rec.pop("owned", None)
        rows[it.id] = rec
    return rows


def _write_merged(out: Path, rows: dict[str, dict], summaries) -> tuple[Path, list[tuple[str, str]]]:
    lines, failures = [], []
    for item_id in sorted(rows):
        rec = rows[item_id]
        if rec.get("status") != "ok":
            text = str(rec.get("error", rec.get("status", "missing")))
            failures.append((item_id, StoredMessage(parts_from_json(rec.get("error_parts")) or (text,), text)))
        lines.append(strict_json_dumps(rec, indent=None))
    path = atomic_write_bytes(out / RESULTS, ("\n".join(lines) + "\n").encode())
    for dest, make in (summaries or {}).items():
        atomic_write_bytes(dest, make(list(rows.values())), overwrite=True)
    return path, failures
