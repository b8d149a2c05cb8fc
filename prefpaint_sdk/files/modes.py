"""Modes from the user's umask: what a plain ``open``/``mkdir`` would give, for temporary files and stages."""

from __future__ import annotations

import os
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. ``os.umask`` can only be read by setting it, so set it to the strict 0o077 for the
    instant between the two calls (a file another thread creates then is private, never too open)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, 'w')`` gives a new file: ``0o666 & ~umask`` (0644 under 022)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder: ``0o777 & ~umask`` (0755 under 022)."""
    return 0o777 & ~_umask()


def apply_umask_modes(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or a folder and everything under it) the modes the umask gives new files.

    Files keep any executable bits they had (``0o777`` then, masked). Symbolic links are left alone.
    """
    p = Path(path)
    umask = _umask()
    fmode, dmode = 0o666 & ~umask, 0o777 & ~umask

    def fix(q: Path, is_dir: bool) -> None:
        if q.is_symlink():
            return
        if is_dir:
            os.chmod(q, dmode)
        else:
            executable = os.stat(q).st_mode & 0o111
            os.chmod(q, (0o777 & ~umask) if executable else fmode)

    if p.is_dir() and not p.is_symlink():
        for root, dirs, files in os.walk(p):
            for name in dirs:
                fix(Path(root) / name, True)
            for name in files:
                fix(Path(root) / name, False)
        fix(p, True)
    elif p.exists():
        fix(p, False)
