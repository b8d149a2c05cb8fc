"""Library noise to our logger: Open3D's log lines and scipy's warnings go to debug level, never to stdout/stderr.

Open3D prints its log through Python's ``sys.stdout`` (``[Open3D WARNING] ...``, coloured); scipy warns
through :mod:`warnings`, which prints the message and its source line on stderr. Both are noise to someone
who asked for a mesh, and both stay reachable with ``--debug``.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from typing import ParamSpec, TypeVar

__all__ = ["library_noise_to_log", "quiet_libraries"]

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("prefpaint_apps.recon3d")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LIBRARIES = ("open3d", "scipy")


class _Open3DLines(io.TextIOBase):
    """``sys.stdout`` for the block: lines Open3D prints become debug records; anything else passes through."""

    def __init__(self, real) -> None:
        self.real = real
        self.pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._emit(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self._emit(line)
        self.real.flush()

    def _emit(self, line: str) -> None:
        text = _ANSI.sub("", line).strip()
        if text.startswith("[Open3D"):
            log.debug("%s", text)
        else:
            self.real.write(line)


def _from_library(category: type, filename: str) -> bool:
    module = getattr(category, "__module__", "") or ""
    path = str(filename).replace("\\", "/")
    return module.split(".")[0] in _LIBRARIES or any(f"/{name}/" in path for name in _LIBRARIES)


@contextmanager
def library_noise_to_log() -> Iterator[None]:
    """For the block: Open3D's printed lines and scipy's and Open3D's warnings become debug records of our
    logger; other output and other warnings are untouched."""
    with warnings.catch_warnings():  # restores showwarning (and the filters) on the way out
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if _from_library(category, filename):
                log.debug("%s: %s (%s:%s)", category.__name__, message, filename, lineno)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        out = _Open3DLines(sys.stdout)
        try:
            with redirect_stdout(out):
                yield
        finally:
            out.flush()


def quiet_libraries(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` inside :func:`library_noise_to_log` (the entry points of the app use it)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with library_noise_to_log():
            return fn(*args, **kwargs)

    return wrapper
