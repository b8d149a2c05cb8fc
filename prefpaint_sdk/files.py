"""Safe outputs: never overwrite without permission, never leave a half-written file or output set.

Every output is written under a temporary name beside its destination and renamed into place:
- one file (:func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_json`, :func:`save_image`);
- a whole set of files (:func:`output_set`, :func:`write_set`): every member is written first, then all are
  renamed, so an image, its candidates and its sidecar appear together or not at all;
- a folder (:func:`staged_dir`): it is built in a stage beside ``dest`` and replaces ``dest`` whole.

A crash or Ctrl-C leaves either the old outputs or the new ones and no temporary names. Every file and
folder gets its mode from the user's umask (0644/0755 under umask 022), as a plain ``open`` would give:
``mkstemp``/``mkdtemp`` alone would leave them private (0600/0700).

Check the whole output set before any work starts with :func:`check_outputs` (files) and
:func:`check_output_dir` (a folder). Errors name the user's path, never a temporary one, and raise
:class:`~prefpaint_sdk.errors.InvalidInputError` (exit code 2) rather than an ``OSError`` traceback.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, OutputExistsError

__all__ = [
    "apply_umask_modes",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "bytes_writer",
    "check_image_suffix",
    "check_output_dir",
    "check_output_path",
    "check_outputs",
    "dir_mode",
    "file_mode",
    "image_writer",
    "json_writer",
    "load_torch_file",
    "output_set",
    "read_toml_table",
    "replace_dir",
    "save_image",
    "sidecar_path",
    "staged_dir",
    "strict_json_dumps",
    "write_set",
]

# ---------------------------------------------------------------------------------------------- modes

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


# --------------------------------------------------------------------------------------------- checks

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


def check_outputs(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> list[Path]:
    """Check a whole set of output files before any work starts; returns them as paths.

    Each member must not be a folder or a device, must not exist unless ``overwrite``, must differ from
    the other members, and its folder must exist or be creatable and be writable.

    Raises:
        InvalidInputError: a folder (or a device such as ``/dev/null``) where a file must go, two members
            with the same path, or a parent that cannot be created or written (a file in the way, no
            permission, a read-only place).
        OutputExistsError: a member exists and ``overwrite`` is false (names the first one).
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
    for p in out:
        if p.exists() and not overwrite:
            raise OutputExistsError(f"output '{p}' already exists; pass --overwrite (overwrite=True) to replace it")
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
            f"output folder '{p}' already exists and is not empty; pass --overwrite (overwrite=True) to replace it"
        )
    _check_parent(p)
    return p


# -------------------------------------------------------------------------------------------- writing

@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT), and SIGTERM where Python handles it, for the few renames that publish an
    output set; a signal that arrives meanwhile is delivered right after.

    Only the main thread can own signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old = signal.getsignal(sig)
            if sig == signal.SIGINT or callable(old):
                previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except (ValueError, TypeError, OSError):  # pragma: no cover - no signal support here
        for sig, old in previous.items():
            signal.signal(sig, old)
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for sig in received:
            old = previous[sig]
            if callable(old):
                old(sig, None)
            elif old == signal.SIG_DFL and sig == signal.SIGINT:
                raise KeyboardInterrupt


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


def _publish(temps: Sequence[Path], dests: Sequence[Path], overwrite: bool) -> None:
    """Rename every finished temporary file onto its destination, Ctrl-C held back meanwhile.

    Without ``overwrite`` each rename refuses to replace a file that appeared since the check (a hard link
    is atomic and fails when the name exists); the members already placed are then taken back.
    """
    placed: list[Path] = []
    with _interrupts_deferred():
        try:
            for tmp, dest in zip(temps, dests):
                if not overwrite:
                    try:
                        os.link(tmp, dest)
                    except FileExistsError:
                        raise OutputExistsError(
                            f"output '{dest}' already exists (it appeared while writing); "
                            "pass --overwrite (overwrite=True) to replace it"
                        ) from None
                    except OSError:  # no hard links on this file system: plain rename
                        if dest.exists():
                            raise OutputExistsError(
                                f"output '{dest}' already exists; pass --overwrite (overwrite=True) to replace it"
                            ) from None
                        os.replace(tmp, dest)
                    else:
                        os.unlink(tmp)
                else:
                    os.replace(tmp, dest)
                placed.append(dest)
        except BaseException:
            if not overwrite:  # they did not exist before: take the partial set back
                for dest in placed:
                    dest.unlink(missing_ok=True)
            raise


@contextmanager
def output_set(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> Iterator[list[Path]]:
    """Write several files as one output set: all appear, or none.

    Checks the whole set with :func:`check_outputs`, then yields one temporary path per member (beside
    it, ending in its suffix). When the block finishes, every temporary file gets its umask mode and is
    renamed into place; if the block raises (KeyboardInterrupt included), every temporary file and any
    folder created for the set is removed, and existing files are untouched.

    The renames run one after another, with Ctrl-C held back; only a hard kill or power loss within
    that window (microseconds per file) can leave part of a set renamed. With ``overwrite`` the window can
    then hold a mix of old and new members; without it, a partial set is never left by an error.

    Example:
        >>> with output_set(["out.png", "out.json"]) as (png, js):   # doctest: +SKIP
        ...     image.save(png, format="PNG"); js.write_text("{}")

    Raises:
        InvalidInputError: a member cannot be written (see :func:`check_outputs`), or writing failed with an
            ``OSError`` about a member (disk full, permission): the message names the user's path.
        OutputExistsError: a member exists and ``overwrite`` is false.
    """
    dests = check_outputs(paths, overwrite)
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
        _publish(temps, dests, overwrite)
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


def write_set(writers: Mapping[str | os.PathLike, Callable[[Path], Any]], overwrite: bool = False) -> list[Path]:
    """Write an output set from ``{destination: writer}``; each writer gets its temporary path.

    Use :func:`image_writer`, :func:`json_writer` and :func:`bytes_writer` for the common members; they do
    their own checks (image suffix, strict JSON) when they are made, before any file is touched.
    Returns the destinations. See :func:`output_set` for the guarantees and the errors raised.
    """
    items = list(writers.items())
    with output_set([p for p, _ in items], overwrite) as temps:
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


# -------------------------------------------------------------------------------------------- folders

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
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".stage", dir=dest.parent))
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
                f"output folder '{dest}' already exists and is not empty (it appeared while writing); "
                "pass --overwrite (overwrite=True) to replace it"
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
        with _interrupts_deferred():
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


def _format_for(path: Path) -> str:
    from PIL import Image

    Image.init()
    ext = path.suffix.lower()
    if ext not in Image.EXTENSION:
        raise KeyError(ext)
    return Image.EXTENSION[ext]


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(o)
    return str(o)


def read_toml_table(path: str | os.PathLike, table: str) -> dict[str, Any]:
    """Settings from a TOML file: the ``[table]`` section when present, else the top level.

    Raises:
        ConfigError: the file is missing or is not valid TOML.
    """
    import tomllib

    from .errors import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist; pass an existing .toml file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file '{p}' is not a UTF-8 text file; pass a .toml config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{p}' is not valid TOML: {exc}") from None
    section = data.get(table, data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file '{p}': '{table}' must be a [{table}] table, not a {type(section).__name__}")
    return section


def load_torch_file(path: str | os.PathLike, what: str, fix: str):
    """Read a foreign ``torch.save`` file safely: always ``weights_only=True``, never arbitrary unpickling.

    This is the toolkit's only ``torch.load``. ``what`` names the file in errors, ``fix`` says what to pass.

    Raises:
        InvalidInputError: the file is missing, or is not a plain tensor/state-dict file.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{what} '{p}' does not exist; {fix}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        import pickle

        from .errors import PickleRefusedError

        with open(p, "rb") as fh:
            head = fh.read(2)
        is_pickle = head == b"PK" or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
        if is_pickle and (isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc)):
            # a pickle of arbitrary objects: our own line, never torch's advice to set weights_only=False
            raise PickleRefusedError.for_file(p, what) from None
        lines = str(exc).splitlines()  # torch can raise with an empty message (an empty file)
        detail = lines[0] if lines and "weights_only" not in str(exc) else exc.__class__.__name__
        raise InvalidInputError(f"{what} '{p}' is not a readable tensor file (truncated or another format: {detail}); "
                                f"{fix}") from None
