"""Folder outputs: built in a stage beside the destination and swapped in whole."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import interrupts
from ..errors import Arg, Hint, InvalidInputError, OutputExistsError
from .checks import check_output_dir
from .modes import apply_umask_modes
from .sets import _make_parents, _remove_dirs


@contextmanager
def staged_dir(dest: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a stage beside ``dest``; on success the stage replaces ``dest`` whole.

    So ``dest`` is always the old complete folder or the new complete one: with ``overwrite`` no old file
    survives in it, and a failed or interrupted block (KeyboardInterrupt included) removes the stage and
    any folder created for it, leaving ``dest`` untouched. Every file and folder in it gets the modes the
    umask gives (0644/0755 under umask 022). See :func:`replace_dir` for the swap.

    Raises:
        InvalidInputError: a file where the folder must go, an unwritable parent, or an ``OSError`` while
            writing into the stage (named as ``dest``).
        OutputExistsError: ``dest`` is a non-empty folder and ``overwrite`` is false.
    """
    dest = check_output_dir(dest, overwrite)
    made = _make_parents(dest)
    ok = False
    tmp: Path | None = None
    try:
        try:
            # The name is known before the folder exists, so an interrupt at any instant leaves nothing the
            # cleanup below does not know about (with mkdtemp it could land between creation and return).
            while True:
                tmp = dest.parent / f".{dest.name}.{secrets.token_hex(4)}.stage"
                try:
                    os.mkdir(tmp, 0o700)
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            raise InvalidInputError(
                f"cannot write the folder '{dest}': {exc.strerror or exc}; choose another output location"
            ) from None
        try:
            yield tmp
        except OSError as exc:
            name = getattr(exc, "filename", None)
            if name is not None and not str(os.path.abspath(name)).startswith(str(tmp.absolute())):
                raise
            raise InvalidInputError(
                f"cannot write the folder '{dest}': {exc.strerror or exc}; "
                "check free space and permissions, or choose another output location"
            ) from exc
        if not overwrite and dest.is_dir() and any(dest.iterdir()):
            raise OutputExistsError(
                f"output folder '{dest}' already exists and is not empty (it appeared while writing)",
                Hint("; pass ", Arg("overwrite", True), " to replace it")
            )
        replace_dir(tmp, dest)
        ok = True
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            _remove_dirs(made)


def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """:func:`staged_dir` with ``overwrite=True``: for model folders and checkpoints the caller already
    decided may be replaced."""
    return staged_dir(dest, overwrite=True)


def replace_dir(tmp: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` onto ``dest`` (same file system), giving its tree the umask's modes.

    A folder cannot be renamed onto a non-empty one, so an existing ``dest`` is first renamed aside to a
    hidden ``.<name>.old-…`` and removed after the swap. Ctrl-C is held back during the two renames. Only
    a hard kill between them leaves ``dest`` missing, with the old folder still whole under that name.
    """
    tmp, dest = Path(tmp), Path(dest)
    apply_umask_modes(tmp)
    old: Path | None = None
    try:
        with interrupts.deferred():
            if dest.exists() or dest.is_symlink():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{os.urandom(4).hex()}")
                os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except BaseException:
                if old is not None and not dest.exists():
                    os.replace(old, dest)
                    old = None
                raise
    finally:
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
