"""Progress of a job on a shared disk: rank 0 counts every rank's finished items from their record files."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["DiskProgress", "ProgressFn"]

ProgressFn = Callable[[int, int], None]


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


class DiskProgress:
    """``progress(done, total)`` counted from files on a shared disk, so rank 0 reports every rank's work.

    ``done`` = ``done_before`` + how many of the ``pending`` names have a ``folder/<name>.json`` that is new or
    changed since this object was made. Calls closer than 0.5 s apart are dropped unless forced.
    """

    def __init__(self, folder: Path, pending: list[str], done_before: int, total: int, progress: ProgressFn | None):
        self.folder, self.done_before, self.total, self.progress = Path(folder), done_before, total, progress
        self.seen = {n: _mtime(self.folder / f"{n}.json") for n in pending} if progress else {}
        self.last = 0.0

    def count(self) -> int:
        """How many of the pending names have a new or changed file."""
        if not self.seen or not self.folder.is_dir():
            return 0
        n = 0
        for entry in os.scandir(self.folder):
            name = entry.name
            if name.endswith(".json") and name[:-5] in self.seen:
                try:
                    if entry.stat().st_mtime_ns != self.seen[name[:-5]]:
                        n += 1
                except OSError:
                    pass
        return n

    def __call__(self, force: bool = False) -> None:
        if self.progress is None or (not force and time.monotonic() - self.last < 0.5):
            return
        self.last = time.monotonic()
        self.progress(self.done_before + self.count(), self.total)
