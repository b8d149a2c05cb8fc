"""Safe readers of foreign files: TOML configs, ``.npy`` arrays without pickles, and ``torch.save`` files with
``weights_only=True`` only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError, InvalidInputError


def read_toml_table(path: str | os.PathLike, table: str) -> dict[str, Any]:
    """Settings from a TOML file: the ``[table]`` section when present, else the top level.

    Raises:
        ConfigError: the file is missing or is not valid TOML.
    """
    import tomllib

    from ..errors import ConfigError

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

        from ..errors import PickleRefusedError

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


def load_npy(path: str | os.PathLike, what: str):
    """Read a ``.npy`` array with ``allow_pickle=False``; every failure is one line of our own.

    numpy refuses a file without the ``.npy`` header (text, a pickle) with advice to load it unsafely; that
    advice never reaches the user. Also used as the model for the apps' own ``.npy`` readers.

    Raises:
        DataError: names ``what`` and ``path``: not a ``.npy`` array (text, or a pickle, which is never loaded),
            or truncated/unreadable.
    """
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{what} '{path}' is not a NumPy array file (no .npy header: text, or a pickle, which is "
                            "never loaded); save it with numpy.save") from None
        raise DataError(f"{what} '{path}' is truncated or not a .npy array ({str(exc).splitlines()[0]}); "
                        "save it again with numpy.save") from None
    except (OSError, EOFError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise DataError(f"{what} '{path}' is unreadable ({detail}); save it again with numpy.save") from None
