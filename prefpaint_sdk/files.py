"""Safe output files: never overwrite without permission, never leave a half-written file.

Every output goes to a temporary file in the destination folder and is renamed into place, so a crash
or Ctrl-C leaves either the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import InvalidInputError, OutputExistsError

__all__ = [
    "check_output_path", "atomic_path", "atomic_write_bytes", "atomic_write_json", "save_image", "sidecar_path",
    "read_toml_table", "atomic_dir", "replace_dir", "load_torch_file",
]


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate an output path: refuse an existing file unless ``overwrite``, and a folder always."""
    p = Path(path)
    if p.is_dir():
        raise InvalidInputError(f"output '{p}' is a folder; pass a file name such as '{p / 'out.png'}'")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"output '{p}' already exists; pass --overwrite (overwrite=True) to replace it")
    return p


@contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` atomically."""
    dest = check_output_path(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp" + dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a new temporary folder beside ``dest``; when the block succeeds it replaces ``dest``.

    Model folders and checkpoints are written this way, so ``dest`` is always either the old complete
    folder or the new complete one; a failed or interrupted write leaves no trace.
    """
    import shutil

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        replace_dir(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(tmp: Path, dest: Path) -> None:
    """Move a finished folder onto ``dest``; an existing ``dest`` is removed only after the swap.

    (A directory cannot be renamed onto a non-empty one, so the old folder is first moved aside.)
    """
    import shutil

    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, overwrite: bool = True) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode(), overwrite)


def save_image(image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a PIL image atomically; the format follows the suffix (PNG when there is none)."""
    dest = Path(path)
    fmt = None if dest.suffix else "PNG"
    with atomic_path(dest, overwrite) as tmp:
        try:
            image.save(tmp, format=fmt or _format_for(dest))
        except (KeyError, ValueError) as exc:
            raise InvalidInputError(f"cannot write an image to '{dest}': unknown suffix '{dest.suffix}'; use .png, .jpg or .webp") from exc
    return dest


def sidecar_path(image_path: str | os.PathLike) -> Path:
    """The JSON file that records how an output image was made: ``out.png`` → ``out.json``."""
    return Path(image_path).with_suffix(".json")


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
    import sys

    from .errors import ConfigError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist; pass an existing .toml file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file '{p}' is not valid TOML: {exc}") from exc
    return data.get(table, data)


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
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not what we can read safely
        raise InvalidInputError(f"{what} '{p}' cannot be read with torch.load(weights_only=True): {exc}") from exc
