"""Writing files and output sets: temporary names beside the destination, renamed together when all are written."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import interrupts
from ..errors import Arg, Hint, InvalidInputError, OutputExistsError
from .checks import _format_for, check_image_suffix, check_outputs, output_key
from .modes import file_mode


def _make_parents(p: Path) -> list[Path]:
    """Create the missing folders above ``p`` (modes from the umask); returns them, outermost first."""
    missing: list[Path] = []
    q = p.parent
    while not q.exists() and q != q.parent:
        missing.append(q)
        q = q.parent
    missing.reverse()
    made: list[Path] = []
    try:
        for q in missing:
            q.mkdir()
            made.append(q)
    except OSError as exc:
        _remove_dirs(made)
        raise InvalidInputError(
            f"cannot write '{p}': cannot create the folder '{q}' ({exc.strerror or exc}); choose another output location"
        ) from None
    return made


def _remove_dirs(made: Sequence[Path]) -> None:
    """Remove folders that :func:`_make_parents` created, innermost first, if they are still empty."""
    for q in reversed(made):
        try:
            q.rmdir()
        except OSError:
            break


def _write_error(exc: OSError, dests: Sequence[Path], temps: Sequence[Path]) -> BaseException:
    """An ``OSError`` raised while writing an output set, as an error that names the user's path."""
    name = getattr(exc, "filename", None)
    dest: Path | None = None
    if name is not None:
        for d, t in zip(dests, temps):
            if os.path.abspath(name) == os.path.abspath(t) or str(name).startswith(str(t) + os.sep):
                dest = d
                break
        else:
            return exc  # about some other file (an input, say): not ours to rename
    elif len(dests) == 1:
        dest = dests[0]
    what = f"'{dest}'" if dest is not None else ", ".join(f"'{d}'" for d in dests)
    return InvalidInputError(
        f"cannot write {what}: {exc.strerror or exc}; check free space and permissions, or choose another output location"
    )


def _temp_beside(dest: Path) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp" + dest.suffix, dir=dest.parent)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write '{dest}': {exc.strerror or exc}; choose another output location"
        ) from None
    os.close(fd)
    return Path(tmp)


def _publish(temps: Sequence[Path], dests: Sequence[Path], overwrite: bool, own: set[str] = frozenset()) -> None:
    """Rename every finished temporary file onto its destination, Ctrl-C held back meanwhile.

    A member may replace a file only with ``overwrite`` or when it is in ``own`` (keys of
    :func:`~.checks.output_key`). Any other rename refuses to replace a file that appeared since the check (a
    hard link is atomic and fails when the name exists); the members placed that way are then taken back.
    """
    placed: list[Path] = []
    with interrupts.deferred():
        try:
            for tmp, dest in zip(temps, dests):
                if not overwrite and output_key(dest) not in own:
                    try:
                        os.link(tmp, dest)
                    except FileExistsError:
                        raise OutputExistsError(
                            f"output '{dest}' already exists (it appeared while writing)",
                            Hint("; pass ", Arg("overwrite", True), " to replace it")
                        ) from None
                    except OSError:  # no hard links on this file system: plain rename
                        if dest.exists():
                            raise OutputExistsError(
                                f"output '{dest}' already exists", Hint("; pass ", Arg("overwrite", True), " to replace it")
                            ) from None
                        os.replace(tmp, dest)
                    else:
                        os.unlink(tmp)
                    placed.append(dest)
                else:
                    os.replace(tmp, dest)
        except BaseException:
            for dest in placed:  # they did not exist before: take them back (a replaced file cannot be)
                dest.unlink(missing_ok=True)
            raise


@contextmanager
def output_set(paths: Iterable[str | os.PathLike], overwrite: bool = False,
               own: Iterable[str | os.PathLike] | None = None) -> Iterator[list[Path]]:
    """Write several files as one output set: all appear, or none.

    Checks the whole set with :func:`check_outputs`, then yields one temporary path per member (beside
    it, ending in its suffix). When the block finishes, every temporary file gets its umask mode and is
    renamed into place; if the block raises (KeyboardInterrupt included), every temporary file and any
    folder created for the set is removed, and existing files are untouched.

    The renames run one after another, with Ctrl-C held back; only a hard kill or power loss within
    that window (microseconds per file) can leave part of a set renamed. With ``overwrite`` the window can
    then hold a mix of old and new members; without it, a partial set is never left by an error.

    ``own`` names files the caller wrote itself (a job's earlier outputs): they may be replaced without
    ``overwrite``; any other existing member is refused.

    Example:
        >>> with output_set(["out.png", "out.json"]) as (png, js):   # doctest: +SKIP
        ...     image.save(png, format="PNG"); js.write_text("{}")

    Raises:
        InvalidInputError: a member cannot be written (see :func:`check_outputs`), or writing failed with an
            ``OSError`` about a member (disk full, permission): the message names the user's path.
        OutputExistsError: a member exists and ``overwrite`` is false.
    """
    own = list(own) if own is not None else None
    dests = check_outputs(paths, overwrite, own)
    made: list[Path] = []
    temps: list[Path] = []
    ok = False
    try:
        for d in dests:
            made += _make_parents(d)
        for d in dests:
            temps.append(_temp_beside(d))
        try:
            yield list(temps)
        except OSError as exc:
            err = _write_error(exc, dests, temps)
            if err is exc:
                raise
            raise err from exc
        mode = file_mode()
        for t in temps:
            os.chmod(t, mode)
        _publish(temps, dests, overwrite, {output_key(p) for p in own or ()})
        ok = True
    finally:
        for t in temps:
            try:
                t.unlink()
            except FileNotFoundError:
                pass
            except OSError:  # pragma: no cover - best effort
                pass
        if not ok:
            _remove_dirs(made)


def write_set(writers: Mapping[str | os.PathLike, Callable[[Path], Any]], overwrite: bool = False,
              own: Iterable[str | os.PathLike] | None = None) -> list[Path]:
    """Write an output set from ``{destination: writer}``; each writer gets its temporary path.

    Use :func:`image_writer`, :func:`json_writer` and :func:`bytes_writer` for the common members; they do
    their own checks (image suffix, strict JSON) when they are made, before any file is touched.
    Returns the destinations. See :func:`output_set` for the guarantees and the errors raised.
    """
    items = list(writers.items())
    with output_set([p for p, _ in items], overwrite, own) as temps:
        for tmp, (_, write) in zip(temps, items):
            write(tmp)
    return [Path(p) for p, _ in items]


def image_writer(image, dest: str | os.PathLike) -> Callable[[Path], None]:
    """A writer for :func:`write_set` that saves a PIL image in the format of ``dest``'s suffix (PNG if none).

    Raises:
        InvalidInputError: ``dest`` has a suffix no image format claims (raised now, not when writing).
    """
    d = check_image_suffix(dest)
    fmt = _format_for(d) if d.suffix else "PNG"

    def write(tmp: Path) -> None:
        image.save(tmp, format=fmt)

    return write


def json_writer(obj: Any, dest: str | os.PathLike | None = None) -> Callable[[Path], None]:
    """A writer for :func:`write_set` of strict JSON (no NaN or Infinity); the text is made now.

    Raises:
        InvalidInputError: ``obj`` holds NaN or ±Infinity (the message names ``dest`` and the key).
    """
    data = strict_json_dumps(obj, where=dest).encode() + b"\n"
    return bytes_writer(data)


def bytes_writer(data: bytes) -> Callable[[Path], None]:
    """A writer for :func:`write_set` of raw bytes."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (an output set of one).

    Raises:
        InvalidInputError, OutputExistsError: as :func:`output_set`.
    """
    with output_set([path], overwrite) as (tmp,):
        yield tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically, with the umask's mode."""
    return write_set({path: bytes_writer(data)}, overwrite)[0]


def atomic_write_json(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    """Write ``obj`` as strict, indented JSON to ``path`` atomically.

    Raises:
        InvalidInputError: ``obj`` holds NaN or ±Infinity; the message names the file and the key.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    return write_set({path: json_writer(obj, path)}, overwrite)[0]


def strict_json_dumps(obj: Any, *, where: str | os.PathLike | None = None, indent: int | None = 2) -> str:
    """``obj`` as strict JSON text (``allow_nan=False``); numpy values, paths and dataclasses are converted.

    Use it for every JSON a user reads (sidecars, ``--json`` output): NaN is not JSON, and most readers
    reject it.

    Raises:
        InvalidInputError: ``obj`` holds NaN or ±Infinity; names ``where`` (a file) and the key, e.g.
            ``scores[2]``.
    """
    try:
        return json.dumps(obj, indent=indent, default=_json_default, allow_nan=False)
    except ValueError as exc:
        found = _find_nonfinite(obj, "")
        target = f"'{where}'" if where is not None else "JSON"
        if found is None:
            raise InvalidInputError(f"cannot write {target}: {exc}") from None
        key, value = found
        at = f"'{key}'" if key else "the value"
        raise InvalidInputError(
            f"cannot write {target}: {at} is {value}, which JSON cannot hold; fix the input that produced it"
        ) from None


def _find_nonfinite(obj: Any, key: str) -> tuple[str, float] | None:
    """The first NaN/±Infinity in ``obj`` as (key path, value), or None."""
    if isinstance(obj, float):
        return (key, obj) if not math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return None
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            hit = _find_nonfinite(v, f"{key}.{k}" if key else str(k))
            if hit:
                return hit
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            hit = _find_nonfinite(v, f"{key}[{i}]")
            if hit:
                return hit
        return None
    if hasattr(obj, "tolist") or hasattr(obj, "__dataclass_fields__"):
        return _find_nonfinite(_json_default(obj), key)
    return None


def save_image(image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a PIL image atomically with the umask's mode; the format follows the suffix (PNG when none).

    Raises:
        InvalidInputError: unknown suffix, a folder in the way, or an unwritable place (names ``path``).
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    return write_set({path: image_writer(image, path)}, overwrite)[0]


def sidecar_path(image_path: str | os.PathLike) -> Path:
    """The JSON file that records how an output image was made: ``out.png`` → ``out.json``."""
    return Path(image_path).with_suffix(".json")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)
