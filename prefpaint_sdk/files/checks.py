"""Checks of a whole output set before any work starts: names, folders, writable parents, existing files."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import Arg, Hint, InvalidInputError, OutputExistsError


def _check_name(p: Path, what: str = "output") -> None:
    """A path the system can use at all: an over-long name or a path through a file fails here, by name."""
    try:
        os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise InvalidInputError(
            f"cannot use {what} '{p}': {exc.strerror or exc}; choose a shorter or valid path"
        ) from None


def _nearest_existing(p: Path) -> Path:
    q = p.absolute()
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def _check_parent(p: Path) -> None:
    """The folder that will hold ``p`` exists or can be created, and can be written."""
    parent = p.parent
    anc = _nearest_existing(parent)
    shown = str(anc) if parent.is_absolute() else os.path.relpath(anc)
    if not anc.is_dir():
        raise InvalidInputError(
            f"cannot write '{p}': '{shown}' is a file, not a folder; choose another output location"
        )
    problem = None
    if not os.access(anc, os.W_OK | os.X_OK):
        problem = "is not writable"
    else:
        # os.access says yes to root everywhere; a nameless probe file (O_TMPFILE) is the real test and
        # leaves nothing behind.
        try:
            tempfile.TemporaryFile(dir=anc).close()
        except OSError as exc:
            why = "" if exc.errno in (errno.ENOENT, None) else f" ({exc.strerror or exc})"
            problem = f"does not accept new files{why}"
    if problem:
        where = "folder" if anc == parent.absolute() else "folder (the nearest existing one above it)"
        raise InvalidInputError(
            f"cannot write '{p}': the {where} '{shown}' {problem}; choose another output location"
        )


def check_image_suffix(path: str | os.PathLike) -> Path:
    """Refuse an image output whose suffix no image format claims (no suffix means PNG).

    Raises:
        InvalidInputError: the suffix is unknown, e.g. ``out.txt``.
    """
    p = Path(path)
    if p.suffix:
        try:
            _format_for(p)
        except KeyError:
            raise InvalidInputError(
                f"cannot write an image to '{p}': unknown suffix '{p.suffix}'; use .png, .jpg or .webp"
            ) from None
    return p


def output_key(path: str | os.PathLike) -> str:
    """The identity of an output location: the absolute path with its folders' links resolved (the file itself
    is not followed: renaming onto a link replaces the link)."""
    p = os.path.abspath(path)
    return os.path.normcase(os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p)))


def check_outputs(paths: Iterable[str | os.PathLike], overwrite: bool = False,
                  own: Iterable[str | os.PathLike] | None = None) -> list[Path]:
    """Check a whole set of output files before any work starts; returns them as paths.

    Each member must not be a folder or a device, must not exist unless ``overwrite`` (or it is one of
    ``own``: files the caller wrote itself and may replace), must differ from the other members, and its
    folder must exist or be creatable and be writable.

    Raises:
        InvalidInputError: a folder (or a device such as ``/dev/null``) where a file must go, two members
            with the same path, or a parent that cannot be created or written (a file in the way, no
            permission, a read-only place).
        OutputExistsError: a member exists, is not in ``own`` and ``overwrite`` is false (names the first one).
    """
    out: list[Path] = []
    seen: dict[str, Path] = {}
    for path in paths:
        p = Path(path)
        _check_name(p)
        if p.is_dir():
            raise InvalidInputError(f"output '{p}' is a folder; pass a file name such as '{p / 'out.png'}'")
        if p.exists() and not p.is_file():  # a device, pipe or socket: renaming onto it would replace it
            raise InvalidInputError(f"output '{p}' is not a regular file (a device, pipe or socket); pass a file name")
        key = os.path.normcase(os.path.abspath(p))
        if key in seen:
            raise InvalidInputError(
                f"output '{p}' is written twice in one output set (also as '{seen[key]}'); "
                "choose another name, e.g. a different suffix for the image"
            )
        seen[key] = p
        out.append(p)
    mine = {output_key(p) for p in own} if own is not None else set()
    for p in out:
        if p.exists() and not overwrite and output_key(p) not in mine:
            if own is not None:
                raise OutputExistsError(f"output '{p}' exists and was not written by this job; choose another output folder",
                                        Hint(", or pass ", Arg("overwrite", True), " to replace it"))
            raise OutputExistsError(f"output '{p}' already exists", Hint("; pass ", Arg("overwrite", True), " to replace it"))
    checked: set[Path] = set()
    for p in out:
        if p.parent not in checked:
            _check_parent(p)
            checked.add(p.parent)
    return out


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check one output file: :func:`check_outputs` with one member.

    Raises:
        InvalidInputError: a folder is there, or its folder cannot be created or written.
        OutputExistsError: it exists and ``overwrite`` is false.
    """
    return check_outputs([path], overwrite)[0]


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Check an output folder before any work starts.

    Raises:
        InvalidInputError: a file is where the folder must go, or its parent cannot be created or written.
        OutputExistsError: the folder exists, is not empty, and ``overwrite`` is false.
    """
    p = Path(path)
    _check_name(p, "output folder")
    if p.exists() and not p.is_dir():
        raise InvalidInputError(f"output folder '{p}' is a file; pass a folder path, or remove the file")
    if p.is_dir() and not overwrite and any(p.iterdir()):
        raise OutputExistsError(
            f"output folder '{p}' already exists and is not empty", Hint("; pass ", Arg("overwrite", True), " to replace it")
        )
    _check_parent(p)
    return p


def _format_for(path: Path) -> str:
    from PIL import Image

    Image.init()
    ext = path.suffix.lower()
    if ext not in Image.EXTENSION:
        raise KeyError(ext)
    return Image.EXTENSION[ext]
